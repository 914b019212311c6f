/*
 * The thread pool's hand-over between jobs: short jobs back to back whose task counts grow
 * (2, 3, 5, 8), as the bf16 GEMM's three jobs a batch are. Every task of a job runs exactly
 * once before mk_parallel_for returns, and nothing of it runs after: a worker that claimed a
 * task of a finished job while the next one was being set up ran a task of the next job outside
 * it (counted twice, or the caller returned before a task ended), which the close of a finished
 * job in threadpool.c prevents.
 */
#include <stdatomic.h>

#include "kernels_check.h"
#include "threadpool.h"

#define POOL_JOBS 200000
#define POOL_MAX_TASKS 8

typedef struct {
  int64_t n;
  _Atomic int *count;
  _Atomic int *stray;
} pool_job;

static void pool_task(void *ctx, int64_t i, int tid) {
  (void)tid;
  const pool_job *j = (const pool_job *)ctx;
  if (i < j->n)
    atomic_fetch_add(&j->count[i], 1);
  else
    atomic_fetch_add(j->stray, 1);
}

/* Each count of a job of n tasks: 1 below n, 0 above. */
static int counts_ok(_Atomic int *count, int n) {
  for (int i = 0; i < POOL_MAX_TASKS; i++)
    if (atomic_load(&count[i]) != (i < n)) return 0;
  return 1;
}

void kc_check_pool(void) {
  static const int sizes[] = {2, 3, 5, 8};
  static _Atomic int counts[2][POOL_MAX_TASKS];
  _Atomic int stray = 0;
  int prev_n = 0;
  for (int r = 0; r < POOL_JOBS; r++) {
    _Atomic int *count = counts[r & 1], *prev = counts[(r + 1) & 1];
    const int n = sizes[r % 4];
    for (int i = 0; i < POOL_MAX_TASKS; i++) atomic_store(&count[i], 0);
    pool_job job = {n, count, &stray};
    mk_parallel_for(n, pool_task, &job);
    if (!counts_ok(count, n) || (r > 0 && !counts_ok(prev, prev_n)) || atomic_load(&stray) != 0) {
      kc_fail("thread pool: job %d of %d tasks: a task ran twice, outside its job or after the job returned", r, n);
      return;
    }
    prev_n = n;
  }
}

/*
 * The scheduling of the grouped GEMMs (moe.h): a GEMM's task list, one pool task per (expert,
 * row block, column block), and batches of independent GEMMs run in one pool pass.
 */
#include <stdlib.h>

#include "moe.h"
#include "threadpool.h"

int mk_moe_task_cmp(const void *x, const void *y) {
  const mk_moe_task *a = (const mk_moe_task *)x, *b = (const mk_moe_task *)y;
  if (a->cost != b->cost) return a->cost > b->cost ? -1 : 1;
  if (a->e != b->e) return a->e < b->e ? -1 : 1;
  if (a->m0 != b->m0) return a->m0 < b->m0 ? -1 : 1;
  return a->n0 < b->n0 ? -1 : a->n0 > b->n0;
}

/* Block size <= blk, a multiple of unit, splitting n evenly. */
static int64_t even_block(int64_t n, int64_t blk, int64_t unit) {
  if (n <= blk) return n;
  int64_t nb = (n + blk - 1) / blk;
  int64_t b = (n + nb - 1) / nb;
  return (b + unit - 1) / unit * unit;
}

static int64_t count_tasks(int mode, int64_t E, const int32_t *seg, int64_t M, int64_t N, int64_t mb, int64_t nb,
                           int mr, int nr) {
  int64_t total = 0, ncols = (N + even_block(N, nb, nr) - 1) / even_block(N, nb, nr);
  for (int64_t e = 0; e < E; e++) {
    int64_t rows = mode == MK_MOE_ROWS ? seg[e + 1] - seg[e] : M;
    if (rows <= 0) continue;
    int64_t b = even_block(rows, mb, mr);
    total += (rows + b - 1) / b * ncols;
  }
  return total;
}

/* The task list: (expert, row block, column block), unsorted (the runner sorts it, or a
 * batch sorts all its jobs' tasks together). It starts `head` bytes into a malloc'd block, the
 * room for the caller's job (a batch keeps job and list in one block); free the block, not
 * the list, when head > 0. Returns the count (0: no list). */
int64_t mk_moe_plan(int mode, int64_t E, const int32_t *seg, int64_t M, int64_t N, int64_t K, int mr, int nr, int mc,
                    int threads, size_t head, mk_moe_task **out) {
  *out = NULL;
  if (N <= 0) return 0;
  /* Row blocks start large: every task of an expert packs that expert's B block again, so
   * fewer, taller tasks pack less and run faster than blocks of 2·mc
   * (docs/performance.md: native/moe/moe_sched.c: mk_moe_plan); the loop below splits them when
   * there are too few tasks to balance. */
  int64_t mb = 4 * (int64_t)mc, nb = 512;
  nb = nb / nr * nr;
  if (nb < nr) nb = nr;
  int64_t want = 4 * (int64_t)threads;
  while (threads > 1 && count_tasks(mode, E, seg, M, N, mb, nb, mr, nr) < want) {
    if (nb > 4 * nr && nb >= 128)
      nb = (nb / 2 + nr - 1) / nr * nr;
    else if (mb > 2 * mr)
      mb = (mb / 2 + mr - 1) / mr * mr;
    else
      break;
  }
  int64_t nt = count_tasks(mode, E, seg, M, N, mb, nb, mr, nr);
  if (nt == 0) return 0;
  char *block = (char *)malloc(head + sizeof(mk_moe_task) * (size_t)nt);
  if (!block) return -1;
  mk_moe_task *t = (mk_moe_task *)(block + head);
  const int64_t nbs = even_block(N, nb, nr);
  int64_t k = 0;
  for (int64_t e = 0; e < E; e++) {
    const int64_t seglen = seg[e + 1] - seg[e];
    const int64_t rows = mode == MK_MOE_ROWS ? seglen : M;
    if (rows <= 0) continue;
    const int64_t kk = mode == MK_MOE_ROWS ? K : seglen;
    const int64_t mbs = even_block(rows, mb, mr);
    for (int64_t m0 = 0; m0 < rows; m0 += mbs)
      for (int64_t n0 = 0; n0 < N; n0 += nbs) {
        int64_t m1 = m0 + mbs < rows ? m0 + mbs : rows, n1 = n0 + nbs < N ? n0 + nbs : N;
        t[k++] = (mk_moe_task){e, m0, m1, n0, n1, (double)(m1 - m0) * (n1 - n0) * (kk + 8)};
      }
  }
  *out = t;
  return nt;
}

/* ---- batches: independent grouped GEMMs in one pool run -----------------------------------
 * Between moeBatchBegin() and moeBatchRun() a grouped-GEMM call only plans its job; the run
 * takes the tasks of all of them, biggest first, in one mk_parallel_for: one wait for the
 * slowest thread instead of one per GEMM, and the small tasks of one GEMM fill the other
 * threads' gaps in another's. Per thread (a Node worker may run kernels of its own). */
typedef struct {
  mk_task_fn fn;
  void *job;
  int64_t task;
  double cost;
  int64_t seq; /* queueing order, the tie-break */
} mk_moe_batch_task;

static _Thread_local struct {
  int open;
  mk_moe_batch_task *tasks;
  int64_t n, cap;
} tl_batch;

int mk_moe_batch_open(void) { return tl_batch.open; }

int mk_moe_batch_begin(void) {
  if (tl_batch.open) return -1;
  tl_batch.open = 1;
  return 0;
}

/* Queues the nt > 0 tasks of `job`, a malloc'd block the batch now owns (freed after the run
 * through its task 0). */
void mk_moe_batch_add(mk_task_fn fn, void *job, const mk_moe_task *tasks, int64_t nt) {
  if (tl_batch.n + nt > tl_batch.cap) {
    while (tl_batch.n + nt > tl_batch.cap) tl_batch.cap = tl_batch.cap ? 2 * tl_batch.cap : 256;
    tl_batch.tasks = (mk_moe_batch_task *)realloc(tl_batch.tasks, sizeof *tl_batch.tasks * (size_t)tl_batch.cap);
    if (!tl_batch.tasks) abort();
  }
  for (int64_t i = 0; i < nt; i++, tl_batch.n++)
    tl_batch.tasks[tl_batch.n] = (mk_moe_batch_task){fn, job, i, tasks[i].cost, tl_batch.n};
}

static int batch_task_cmp(const void *x, const void *y) {
  const mk_moe_batch_task *a = (const mk_moe_batch_task *)x, *b = (const mk_moe_batch_task *)y;
  if (a->cost != b->cost) return a->cost > b->cost ? -1 : 1;
  return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void batch_task(void *ctx, int64_t t, int tid) {
  const mk_moe_batch_task *bt = &((const mk_moe_batch_task *)ctx)[t];
  bt->fn(bt->job, bt->task, tid);
}

void mk_moe_batch_run(void) {
  tl_batch.open = 0;
  qsort(tl_batch.tasks, (size_t)tl_batch.n, sizeof *tl_batch.tasks, batch_task_cmp);
  if (tl_batch.n > 0) mk_parallel_for(tl_batch.n, batch_task, tl_batch.tasks);
  for (int64_t i = 0; i < tl_batch.n; i++)
    if (tl_batch.tasks[i].task == 0) free(tl_batch.tasks[i].job);
  tl_batch.n = 0;
}

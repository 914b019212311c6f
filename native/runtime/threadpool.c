/*
 * Persistent pthread pool; see threadpool.h for the contract.
 *
 * Protocol. One job at a time is published in g_state = (generation << 40) |
 * next_task. A thread claims task i by CAS-ing (gen, i) -> (gen, i + 1); the
 * CAS fails for a worker that woke up late and still holds an older
 * generation, so it can never run a task of a job it did not see published.
 * The job fields (fn, ctx, n) are only rewritten after every task of the
 * previous job has finished and the caller has closed it: g_state = (gen,
 * TASK_MASK), so that no claim of it can succeed any more. Without the close, a
 * worker holding (gen, n_old) could read the next job's larger n before that
 * job's generation is published and claim (gen, n_old) -> n_old + 1: it would
 * run a task of the next job outside it and count it in that job's g_done, and
 * the caller would return while a task still ran (wrong outputs and writes into
 * freed packs; seen with the bf16 GEMM's three short jobs a batch).
 * The caller counts finished tasks in g_done and returns when all are done.
 *
 * Sleeping. Workers spin on g_state for g_spin_ns, then sleep on g_cv. The
 * sleeper count and g_state form a Dekker pair (both seq_cst), so the caller
 * either sees a sleeper and broadcasts under the mutex, or the sleeper sees
 * the new generation before it waits: no lost wake-ups.
 */
#define _GNU_SOURCE
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

#define MAX_THREADS 256
#define TASK_BITS 40
#define TASK_MASK ((UINT64_C(1) << TASK_BITS) - 1)
/* 0.2 ms covers the gap between back-to-back kernels. A longer spin wakes late workers less
 * often but did not make the step faster and slowed CT-MoE training (the spinning worker takes
 * the core V8's GC and compiler threads need between kernels)
 * (docs/performance.md: native/runtime/threadpool.c: SPIN_NS). */
#define SPIN_NS 200000
static int64_t g_spin_ns = SPIN_NS; /* MOEKIT_POOL_SPIN_US overrides */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_spawned = 0;       /* workers started (thread ids 1..g_spawned) */
static atomic_int g_active = 1; /* threads a job uses, caller included */
static atomic_int g_sleepers = 0;
static atomic_flag g_busy = ATOMIC_FLAG_INIT; /* a caller owns the pool */

static _Atomic uint64_t g_state = TASK_MASK; /* generation 0, closed */
static _Atomic(mk_task_fn) g_fn = NULL;
static _Atomic(void *) g_ctx = NULL;
static _Atomic int64_t g_n = 0;
static _Atomic int64_t g_done = 0;

static _Thread_local int tl_inside = 0; /* set in workers and during a job */

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int mk_default_num_threads(void) {
  const char *env = getenv("MOEKIT_NUM_THREADS");
  if (env && *env) {
    long v = strtol(env, NULL, 10);
    if (v >= 1) return v > MAX_THREADS ? MAX_THREADS : (int)v;
  }
  int n = 0;
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
#endif
  if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (n <= 0) n = 1;
  return n > MAX_THREADS ? MAX_THREADS : n;
}

/* Claim and run tasks of generation `gen` until none are left. */
static void run_tasks(uint64_t gen, int tid) {
  uint64_t s = atomic_load_explicit(&g_state, memory_order_acquire);
  for (;;) {
    if ((s >> TASK_BITS) != gen) return;
    uint64_t i = s & TASK_MASK;
    /* acquire: a new job's n is seen only with its caller's close of the old job before it */
    if ((int64_t)i >= atomic_load_explicit(&g_n, memory_order_acquire)) return;
    if (atomic_compare_exchange_weak_explicit(&g_state, &s, s + 1, memory_order_acq_rel, memory_order_acquire)) {
      mk_task_fn fn = atomic_load_explicit(&g_fn, memory_order_relaxed);
      fn(atomic_load_explicit(&g_ctx, memory_order_relaxed), (int64_t)i, tid);
      atomic_fetch_add_explicit(&g_done, 1, memory_order_release);
      s = atomic_load_explicit(&g_state, memory_order_acquire);
    }
  }
}

static void *worker_main(void *arg) {
  int tid = (int)(intptr_t)arg;
  tl_inside = 1;
  uint64_t seen = atomic_load(&g_state) >> TASK_BITS;
  for (;;) {
    /* Spin a while, then sleep until a new generation is published. */
    int64_t t0 = now_ns();
    unsigned spins = 0;
    while ((atomic_load_explicit(&g_state, memory_order_acquire) >> TASK_BITS) == seen) {
      CPU_RELAX();
      if ((++spins & 255) == 0 && now_ns() - t0 > g_spin_ns) {
        pthread_mutex_lock(&g_mu);
        atomic_fetch_add(&g_sleepers, 1);
        while ((atomic_load(&g_state) >> TASK_BITS) == seen) pthread_cond_wait(&g_cv, &g_mu);
        atomic_fetch_sub(&g_sleepers, 1);
        pthread_mutex_unlock(&g_mu);
        break;
      }
    }
    seen = atomic_load_explicit(&g_state, memory_order_acquire) >> TASK_BITS;
    if (tid < atomic_load_explicit(&g_active, memory_order_relaxed)) run_tasks(seen, tid);
  }
  return NULL;
}

/* Start workers up to n-1 of them. Called with g_mu held. */
static void spawn_up_to(int n) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old); /* workers never handle signals */
  while (g_spawned < n - 1) {
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&th, &attr, worker_main, (void *)(intptr_t)(g_spawned + 1));
    pthread_attr_destroy(&attr);
    if (rc != 0) break;
    g_spawned++;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  atomic_store(&g_active, n < g_spawned + 1 ? n : g_spawned + 1);
}

static void init_once(void) {
  const char *spin = getenv("MOEKIT_POOL_SPIN_US");
  if (spin && *spin) {
    long v = strtol(spin, NULL, 10);
    if (v >= 0) g_spin_ns = (int64_t)v * 1000;
  }
  pthread_mutex_lock(&g_mu);
  spawn_up_to(mk_default_num_threads());
  pthread_mutex_unlock(&g_mu);
}

int mk_get_num_threads(void) {
  pthread_once(&g_once, init_once);
  return atomic_load(&g_active);
}

void mk_set_num_threads(int n) {
  pthread_once(&g_once, init_once);
  if (n <= 0) n = mk_default_num_threads();
  if (n > MAX_THREADS) n = MAX_THREADS;
  pthread_mutex_lock(&g_mu);
  spawn_up_to(n);
  pthread_mutex_unlock(&g_mu);
}

void mk_parallel_for(int64_t n_tasks, mk_task_fn fn, void *ctx) {
  if (n_tasks <= 0) return;
  pthread_once(&g_once, init_once);
  int serial = n_tasks == 1 || (uint64_t)n_tasks > TASK_MASK || tl_inside ||
               atomic_load_explicit(&g_active, memory_order_relaxed) <= 1;
  if (!serial && atomic_flag_test_and_set_explicit(&g_busy, memory_order_acquire)) serial = 1;
  if (serial) {
    for (int64_t i = 0; i < n_tasks; i++) fn(ctx, i, 0);
    return;
  }
  tl_inside = 1;
  atomic_store_explicit(&g_fn, fn, memory_order_relaxed);
  atomic_store_explicit(&g_ctx, ctx, memory_order_relaxed);
  atomic_store_explicit(&g_n, n_tasks, memory_order_release);
  atomic_store_explicit(&g_done, 0, memory_order_relaxed);
  uint64_t gen = (atomic_load(&g_state) >> TASK_BITS) + 1;
  gen &= (UINT64_C(1) << (64 - TASK_BITS)) - 1;
  atomic_store(&g_state, gen << TASK_BITS); /* seq_cst: publishes the fields */
  if (atomic_load(&g_sleepers) > 0) {
    pthread_mutex_lock(&g_mu);
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
  }
  run_tasks(gen, 0);
  unsigned spins = 0;
  while (atomic_load_explicit(&g_done, memory_order_acquire) < n_tasks) {
    CPU_RELAX();
    if ((++spins & 1023) == 0) sched_yield(); /* a worker may be descheduled */
  }
  atomic_store(&g_state, (gen << TASK_BITS) | TASK_MASK); /* closed: see the protocol above */
  tl_inside = 0;
  atomic_flag_clear_explicit(&g_busy, memory_order_release);
}

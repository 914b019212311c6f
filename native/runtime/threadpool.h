/*
 * moekit thread pool: one persistent pool of pthreads shared by every kernel.
 *
 *   mk_parallel_for(n_tasks, fn, ctx) runs fn(ctx, task, thread_id) for every
 *   task in [0, n_tasks) and returns when all of them have finished.
 *
 * - The calling thread takes part (it is thread_id 0); workers are 1..n-1.
 *   thread_id < mk_get_num_threads(), so it can index per-thread scratch.
 * - Tasks are handed out dynamically (atomic counter), in increasing order;
 *   make tasks coarse (>= ~10 us of work each) and prefer n_tasks a multiple
 *   of the thread count when tasks are equal-sized.
 * - Nested calls (fn calling mk_parallel_for) and calls that arrive while the
 *   pool is busy with another caller run serially on the calling thread, with
 *   thread_id 0, so they are always safe (but per-thread scratch indexed by
 *   thread_id must then be used by one caller at a time: use _Thread_local
 *   scratch if a kernel may be called from several Node worker threads).
 * - Idle workers spin for a short while, then sleep on a condition variable,
 *   so an idle process does not burn cores.
 * - Thread count: number of CPUs this process may run on (sched_getaffinity),
 *   overridden by env MOEKIT_NUM_THREADS, and at run time by mk_set_num_threads.
 */
#ifndef MOEKIT_THREADPOOL_H
#define MOEKIT_THREADPOOL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*mk_task_fn)(void *ctx, int64_t task, int thread_id);

void mk_parallel_for(int64_t n_tasks, mk_task_fn fn, void *ctx);

/* Number of threads mk_parallel_for uses (>= 1), including the caller. */
int mk_get_num_threads(void);

/* Set the thread count (clamped to [1, 256]); n <= 0 restores the default.
 * Must not be called from inside a task. */
void mk_set_num_threads(int n);

/* Default thread count: env MOEKIT_NUM_THREADS, else the usable CPU count. */
int mk_default_num_threads(void);

#ifdef __cplusplus
}
#endif

#endif

/*
 * MPI collectives for src/dist/ (Open MPI or MPICH, loaded at first use).
 *
 * The addon is built without MPI headers: mpiOpen() dlopens the library with
 * RTLD_GLOBAL (Open MPI's plugins need its symbols) and looks the functions up
 * by name. The predefined handles come in two ABIs: Open MPI's are pointers to
 * its predefined objects (MPI_COMM_WORLD is &ompi_mpi_comm_world, ...), looked
 * up by name; MPICH's (shared by Intel MPI and MVAPICH) are fixed integers
 * (mpi.h's values below). Both fit the pointer-sized mpi_handle: an integer
 * handle passed in a 64-bit register or stack slot is read from its low half
 * on x86-64 and aarch64, and MPI_Comm_split's integer result lands in the low
 * half of a zeroed handle (both little-endian).
 *
 * Every collective takes a trailing `async` flag: true runs the blocking MPI
 * call on a libuv worker (napi_async_work) and returns a Promise; false runs
 * it on the JS thread (autograd's backward is synchronous). The JS side keeps
 * at most one call in flight per process (MPI_THREAD_SERIALIZED).
 *
 * Exports: mpiProbe(lib) -> null | why it cannot be loaded (no MPI_Init),
 * mpiOpen(lib) -> {rank, size, thread}, mpiCommRank(c), mpiCommSize(c),
 * mpiSplit(c, color, key, async) -> comm id, mpiBarrier(c, async),
 * mpiBcast(c, buf, root, async), mpiAllreduce(c, buf, op, async) (in place;
 * op 0 sum, 1 max, 2 min), mpiAllgather(c, send, recv, async),
 * mpiAlltoall(c, send, recv, async) (equal blocks), mpiAlltoallv(c, send,
 * sendCounts, sendDispls, recv, recvCounts, recvDispls, async) (in elements),
 * mpiAbort(c, code), mpiFinalize().
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addon.h"

typedef void *mpi_handle;

/* The MPI functions used, with Open MPI's pointer handles. */
static struct {
  int (*Init_thread)(int *, char ***, int, int *);
  int (*Initialized)(int *);
  int (*Finalized)(int *);
  int (*Finalize)(void);
  int (*Abort)(mpi_handle, int);
  int (*Comm_rank)(mpi_handle, int *);
  int (*Comm_size)(mpi_handle, int *);
  int (*Comm_split)(mpi_handle, int, int, mpi_handle *);
  int (*Barrier)(mpi_handle);
  int (*Bcast)(void *, int, mpi_handle, int, mpi_handle);
  int (*Allreduce)(const void *, void *, int, mpi_handle, mpi_handle, mpi_handle);
  int (*Allgather)(const void *, int, mpi_handle, void *, int, mpi_handle, mpi_handle);
  int (*Alltoall)(const void *, int, mpi_handle, void *, int, mpi_handle, mpi_handle);
  int (*Alltoallv)(const void *, const int *, const int *, mpi_handle, void *, const int *, const int *, mpi_handle,
                   mpi_handle);
  int (*Error_string)(int, char *, int *);
  mpi_handle comm_world, t_float, t_double, t_int, op_sum, op_max, op_min;
} g_mpi;

static int g_open = 0;

typedef enum { MK_ABI_OPENMPI, MK_ABI_MPICH } mk_mpi_abi;
static void *g_in_place;

/* MPICH's mpi.h (stable since MPICH 3; Intel MPI and MVAPICH share it) */
#define MPICH_COMM_WORLD 0x44000000
#define MPICH_FLOAT 0x4c00040a
#define MPICH_DOUBLE 0x4c00080b
#define MPICH_INT 0x4c000405
#define MPICH_MAX 0x58000001
#define MPICH_MIN 0x58000002
#define MPICH_SUM 0x58000003
#define MPICH_IN_PLACE ((void *)-1)
#define OMPI_IN_PLACE ((void *)1)

/* Which ABI the library `h` has: Open MPI exports its predefined objects; an MPICH-ABI library
 * names itself in MPI_Get_library_version (callable before MPI_Init). 0 when neither. */
static int abi_of(void *h, mk_mpi_abi *abi) {
  if (dlsym(h, "ompi_mpi_comm_world")) {
    *abi = MK_ABI_OPENMPI;
    return 1;
  }
  int (*version)(char *, int *) = NULL;
  *(void **)(&version) = dlsym(h, "MPI_Get_library_version");
  char text[8192] = {0}; /* MPI_MAX_LIBRARY_VERSION_STRING is 8192 in MPICH */
  int len = 0;
  if (!version || version(text, &len) != 0) return 0;
  if (!strstr(text, "MPICH") && !strstr(text, "Intel(R) MPI") && !strstr(text, "MVAPICH")) return 0;
  *abi = MK_ABI_MPICH;
  return 1;
}

#define MK_MAX_COMMS 256
static mpi_handle g_comms[MK_MAX_COMMS];
static int g_num_comms = 0;

#define MPI_THREAD_SERIALIZED 2 /* the standard's order: both ABIs */

/* mpiOpen(lib: string): { rank, size, thread } — idempotent. */
static napi_value mpi_open(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!mk_napi_args(env, info, 1, argv, "mpiOpen")) return NULL;
  char lib[256] = {0};
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[0], lib, sizeof lib, &len) != napi_ok)
    return mk_throw_type(env, "mpiOpen: lib must be a string");
  int provided = MPI_THREAD_SERIALIZED;
  if (!g_open) {
    void *h = dlopen(lib, RTLD_NOW | RTLD_GLOBAL);
    if (!h) return mk_throw_error(env, "mpi: %s", dlerror());
    mk_mpi_abi abi;
    if (!abi_of(h, &abi))
      return mk_throw_error(env, "mpi: %s is neither Open MPI nor an MPICH-ABI library (MPICH, Intel MPI, MVAPICH)",
                            lib);
    const char *missing = NULL;
#define SYM(field, name)                          \
  do {                                            \
    *(void **)(&g_mpi.field) = dlsym(h, name);    \
    if (!g_mpi.field && !missing) missing = name; \
  } while (0)
    SYM(Init_thread, "MPI_Init_thread");
    SYM(Initialized, "MPI_Initialized");
    SYM(Finalized, "MPI_Finalized");
    SYM(Finalize, "MPI_Finalize");
    SYM(Abort, "MPI_Abort");
    SYM(Comm_rank, "MPI_Comm_rank");
    SYM(Comm_size, "MPI_Comm_size");
    SYM(Comm_split, "MPI_Comm_split");
    SYM(Barrier, "MPI_Barrier");
    SYM(Bcast, "MPI_Bcast");
    SYM(Allreduce, "MPI_Allreduce");
    SYM(Allgather, "MPI_Allgather");
    SYM(Alltoall, "MPI_Alltoall");
    SYM(Alltoallv, "MPI_Alltoallv");
    SYM(Error_string, "MPI_Error_string");
    if (abi == MK_ABI_OPENMPI) {
      SYM(comm_world, "ompi_mpi_comm_world");
      SYM(t_float, "ompi_mpi_float");
      SYM(t_double, "ompi_mpi_double");
      SYM(t_int, "ompi_mpi_int");
      SYM(op_sum, "ompi_mpi_op_sum");
      SYM(op_max, "ompi_mpi_op_max");
      SYM(op_min, "ompi_mpi_op_min");
      g_in_place = OMPI_IN_PLACE;
    } else {
      g_mpi.comm_world = (mpi_handle)(uintptr_t)MPICH_COMM_WORLD;
      g_mpi.t_float = (mpi_handle)(uintptr_t)MPICH_FLOAT;
      g_mpi.t_double = (mpi_handle)(uintptr_t)MPICH_DOUBLE;
      g_mpi.t_int = (mpi_handle)(uintptr_t)MPICH_INT;
      g_mpi.op_sum = (mpi_handle)(uintptr_t)MPICH_SUM;
      g_mpi.op_max = (mpi_handle)(uintptr_t)MPICH_MAX;
      g_mpi.op_min = (mpi_handle)(uintptr_t)MPICH_MIN;
      g_in_place = MPICH_IN_PLACE;
    }
#undef SYM
    if (missing)
      return mk_throw_error(env, "mpi: %s has no symbol %s (moekit supports Open MPI 4 or 5, MPICH 3 or 4)", lib,
                            missing);
    int inited = 0;
    g_mpi.Initialized(&inited);
    if (!inited) {
      int rc = g_mpi.Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
      if (rc != 0) return mk_throw_error(env, "mpi: MPI_Init_thread failed (code %d)", rc);
    }
    g_comms[0] = g_mpi.comm_world;
    g_num_comms = 1;
    g_open = 1;
  }
  int rank = 0, size = 0;
  g_mpi.Comm_rank(g_comms[0], &rank);
  g_mpi.Comm_size(g_comms[0], &size);
  napi_value obj;
  if (napi_create_object(env, &obj) != napi_ok) return NULL;
  napi_set_named_property(env, obj, "rank", mk_napi_make_i64(env, rank));
  napi_set_named_property(env, obj, "size", mk_napi_make_i64(env, size));
  napi_set_named_property(env, obj, "thread", mk_napi_make_i64(env, provided));
  return obj;
}

/* mpiProbe(lib: string): null when lib loads and has MPI_Init_thread, else the reason (a string). */
static napi_value mpi_probe(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!mk_napi_args(env, info, 1, argv, "mpiProbe")) return NULL;
  char lib[256] = {0};
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[0], lib, sizeof lib, &len) != napi_ok)
    return mk_throw_type(env, "mpiProbe: lib must be a string");
  void *h = dlopen(lib, RTLD_LAZY | RTLD_LOCAL);
  if (!h) return mk_napi_make_string(env, dlerror());
  mk_mpi_abi abi;
  if (!dlsym(h, "MPI_Init_thread") || !abi_of(h, &abi))
    return mk_napi_make_string(env, "neither Open MPI nor an MPICH-ABI library (MPICH, Intel MPI, MVAPICH)");
  napi_value null_value;
  napi_get_null(env, &null_value);
  return null_value;
}

static int need_open(napi_env env, const char *fn) {
  if (g_open) return 1;
  mk_throw_error(env, "%s: MPI is not open (call mpiOpen first)", fn);
  return 0;
}

static int get_comm(napi_env env, napi_value v, const char *fn, mpi_handle *out) {
  int64_t c;
  if (!need_open(env, fn) || !mk_napi_i64(env, v, "communicator id", 0, g_num_comms - 1, &c)) return 0;
  *out = g_comms[c];
  return 1;
}

/* The MPI datatype of a typed array (moekit's dtypes: f32, f64, i32). */
static int dtype_of(napi_env env, const mk_typed *t, const char *what, mpi_handle *out) {
  switch (t->type) {
    case napi_float32_array:
      *out = g_mpi.t_float;
      return 1;
    case napi_float64_array:
      *out = g_mpi.t_double;
      return 1;
    case napi_int32_array:
      *out = g_mpi.t_int;
      return 1;
    default:
      mk_throw_type(env, "%s must be a Float32Array, Float64Array or Int32Array (got %s)", what,
                    mk_napi_typed_name(t->type));
      return 0;
  }
}

/* ---- one collective call, described so it can run on any thread ---- */

typedef enum { OP_SPLIT, OP_BARRIER, OP_BCAST, OP_ALLREDUCE, OP_ALLGATHER, OP_ALLTOALL, OP_ALLTOALLV } op_kind;

#define MK_MAX_REFS 3

typedef struct {
  op_kind kind;
  mpi_handle comm, dtype, op;
  void *send, *recv;
  int count, root, color, key;
  int *counts; /* alltoallv: sendCounts, sendDispls, recvCounts, recvDispls (4 * size ints) */
  int rc;
  mpi_handle new_comm;
  /* async only */
  napi_async_work work;
  napi_deferred deferred;
  napi_ref refs[MK_MAX_REFS];
  int num_refs;
  const char *name;
} mk_call;

static void run_call(mk_call *c) {
  int n = 0;
  switch (c->kind) {
    case OP_SPLIT:
      c->new_comm = NULL; /* MPICH writes an int: the upper half must be zero */
      c->rc = g_mpi.Comm_split(c->comm, c->color, c->key, &c->new_comm);
      break;
    case OP_BARRIER:
      c->rc = g_mpi.Barrier(c->comm);
      break;
    case OP_BCAST:
      c->rc = g_mpi.Bcast(c->send, c->count, c->dtype, c->root, c->comm);
      break;
    case OP_ALLREDUCE:
      c->rc = g_mpi.Allreduce(g_in_place, c->send, c->count, c->dtype, c->op, c->comm);
      break;
    case OP_ALLGATHER:
      c->rc = g_mpi.Allgather(c->send, c->count, c->dtype, c->recv, c->count, c->dtype, c->comm);
      break;
    case OP_ALLTOALL:
      c->rc = g_mpi.Alltoall(c->send, c->count, c->dtype, c->recv, c->count, c->dtype, c->comm);
      break;
    case OP_ALLTOALLV:
      g_mpi.Comm_size(c->comm, &n);
      c->rc = g_mpi.Alltoallv(c->send, c->counts, c->counts + n, c->dtype, c->recv, c->counts + 2 * n,
                              c->counts + 3 * n, c->dtype, c->comm);
      break;
  }
}

static void error_text(const mk_call *c, char *buf, size_t cap) {
  char s[256] = {0};
  int len = 0;
  if (g_mpi.Error_string(c->rc, s, &len) != 0) snprintf(s, sizeof s, "code %d", c->rc);
  snprintf(buf, cap, "%s: MPI error: %s", c->name, s);
}

/* The JS result of a finished call: a new communicator id for split, else undefined. */
static napi_value call_result(napi_env env, mk_call *c) {
  if (c->kind != OP_SPLIT) return mk_napi_undefined(env);
  if (g_num_comms >= MK_MAX_COMMS) return mk_throw_error(env, "%s: more than %d communicators", c->name, MK_MAX_COMMS);
  g_comms[g_num_comms] = c->new_comm;
  return mk_napi_make_i64(env, g_num_comms++);
}

static void free_call(napi_env env, mk_call *c) {
  for (int i = 0; i < c->num_refs; i++) napi_delete_reference(env, c->refs[i]);
  free(c->counts);
  free(c);
}

static void async_execute(napi_env env, void *data) {
  (void)env;
  run_call((mk_call *)data);
}

static void async_complete(napi_env env, napi_status status, void *data) {
  mk_call *c = (mk_call *)data;
  napi_value result = NULL;
  if (status == napi_ok && c->rc == 0) result = call_result(env, c);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (result && !pending) {
    napi_resolve_deferred(env, c->deferred, result);
  } else {
    char msg[400];
    if (pending) {
      napi_value exc;
      napi_get_and_clear_last_exception(env, &exc);
      napi_reject_deferred(env, c->deferred, exc);
    } else {
      if (status != napi_ok)
        snprintf(msg, sizeof msg, "%s: the worker was cancelled", c->name);
      else
        error_text(c, msg, sizeof msg);
      napi_value m, err;
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
      napi_create_error(env, NULL, m, &err);
      napi_reject_deferred(env, c->deferred, err);
    }
  }
  napi_delete_async_work(env, c->work);
  free_call(env, c);
}

/* Run now (sync) or queue on a worker and return a Promise (async). Takes ownership of c. */
static napi_value dispatch_call(napi_env env, mk_call *c, napi_value *keep, int num_keep, int async) {
  if (!async) {
    run_call(c);
    napi_value r;
    if (c->rc != 0) {
      char msg[400];
      error_text(c, msg, sizeof msg);
      r = mk_throw_error(env, "%s", msg);
    } else {
      r = call_result(env, c);
    }
    free_call(env, c);
    return r;
  }
  for (int i = 0; i < num_keep; i++) {
    if (napi_create_reference(env, keep[i], 1, &c->refs[c->num_refs]) != napi_ok) {
      const char *name = c->name;
      free_call(env, c);
      return mk_throw_error(env, "%s: cannot keep its buffers alive", name);
    }
    c->num_refs++;
  }
  napi_value promise, name;
  napi_create_string_utf8(env, c->name, NAPI_AUTO_LENGTH, &name);
  if (napi_create_promise(env, &c->deferred, &promise) != napi_ok ||
      napi_create_async_work(env, NULL, name, async_execute, async_complete, c, &c->work) != napi_ok ||
      napi_queue_async_work(env, c->work) != napi_ok) {
    const char *name = c->name;
    free_call(env, c);
    return mk_throw_error(env, "%s: cannot queue the call", name);
  }
  return promise;
}

static mk_call *new_call(napi_env env, op_kind kind, const char *name, mpi_handle comm) {
  mk_call *c = (mk_call *)calloc(1, sizeof *c);
  if (!c) {
    mk_throw_error(env, "%s: out of memory", name);
    return NULL;
  }
  c->kind = kind;
  c->name = name;
  c->comm = comm;
  return c;
}

static int get_async(napi_env env, napi_value v, int *out) { return mk_napi_bool(env, v, "async", out); }

static int count_of(napi_env env, const mk_typed *t, const char *fn, int *out) {
  if (t->length > INT_MAX) {
    mk_throw_range(env, "%s: %zu elements exceed MPI's int count", fn, t->length);
    return 0;
  }
  *out = (int)t->length;
  return 1;
}

/* mpiCommRank(c) / mpiCommSize(c): numbers (local, no communication). */
static napi_value comm_query(napi_env env, napi_callback_info info, const char *name, int want_size) {
  napi_value argv[1];
  mpi_handle comm;
  int v = 0;
  /* get_comm loads libmpi on first use: g_mpi's entries are read only after it */
  if (!mk_napi_args(env, info, 1, argv, name) || !get_comm(env, argv[0], name, &comm)) return NULL;
  (want_size ? g_mpi.Comm_size : g_mpi.Comm_rank)(comm, &v);
  return mk_napi_make_i64(env, v);
}

static napi_value mpi_comm_rank(napi_env env, napi_callback_info info) {
  return comm_query(env, info, "mpiCommRank", 0);
}

static napi_value mpi_comm_size(napi_env env, napi_callback_info info) {
  return comm_query(env, info, "mpiCommSize", 1);
}

static napi_value mpi_split(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  mpi_handle comm;
  int64_t color, key;
  int async;
  if (!mk_napi_args(env, info, 4, argv, "mpiSplit") || !get_comm(env, argv[0], "mpiSplit", &comm) ||
      !mk_napi_i64(env, argv[1], "mpiSplit: color", 0, INT_MAX, &color) ||
      !mk_napi_i64(env, argv[2], "mpiSplit: key", INT_MIN, INT_MAX, &key) || !get_async(env, argv[3], &async))
    return NULL;
  mk_call *c = new_call(env, OP_SPLIT, "mpiSplit", comm);
  if (!c) return NULL;
  c->color = (int)color;
  c->key = (int)key;
  return dispatch_call(env, c, NULL, 0, async);
}

static napi_value mpi_barrier(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  mpi_handle comm;
  int async;
  if (!mk_napi_args(env, info, 2, argv, "mpiBarrier") || !get_comm(env, argv[0], "mpiBarrier", &comm) ||
      !get_async(env, argv[1], &async))
    return NULL;
  mk_call *c = new_call(env, OP_BARRIER, "mpiBarrier", comm);
  return c ? dispatch_call(env, c, NULL, 0, async) : NULL;
}

static napi_value mpi_bcast(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  mpi_handle comm, dt;
  mk_typed buf;
  int64_t root;
  int async, n;
  if (!mk_napi_args(env, info, 4, argv, "mpiBcast") || !get_comm(env, argv[0], "mpiBcast", &comm) ||
      !mk_napi_typed(env, argv[1], "mpiBcast: buf", &buf) || !dtype_of(env, &buf, "mpiBcast: buf", &dt) ||
      !mk_napi_i64(env, argv[2], "mpiBcast: root", 0, INT_MAX, &root) || !get_async(env, argv[3], &async) ||
      !count_of(env, &buf, "mpiBcast", &n))
    return NULL;
  mk_call *c = new_call(env, OP_BCAST, "mpiBcast", comm);
  if (!c) return NULL;
  c->send = buf.data;
  c->count = n;
  c->dtype = dt;
  c->root = (int)root;
  return dispatch_call(env, c, &argv[1], 1, async);
}

static napi_value mpi_allreduce(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  mpi_handle comm, dt;
  mk_typed buf;
  int64_t op;
  int async, n;
  if (!mk_napi_args(env, info, 4, argv, "mpiAllreduce") || !get_comm(env, argv[0], "mpiAllreduce", &comm) ||
      !mk_napi_typed(env, argv[1], "mpiAllreduce: buf", &buf) || !dtype_of(env, &buf, "mpiAllreduce: buf", &dt) ||
      !mk_napi_i64(env, argv[2], "mpiAllreduce: op (0 sum, 1 max, 2 min)", 0, 2, &op) ||
      !get_async(env, argv[3], &async) || !count_of(env, &buf, "mpiAllreduce", &n))
    return NULL;
  mk_call *c = new_call(env, OP_ALLREDUCE, "mpiAllreduce", comm);
  if (!c) return NULL;
  c->send = buf.data;
  c->count = n;
  c->dtype = dt;
  c->op = op == 0 ? g_mpi.op_sum : op == 1 ? g_mpi.op_max : g_mpi.op_min;
  return dispatch_call(env, c, &argv[1], 1, async);
}

/* Allgather and Alltoall: equal blocks; recv must hold size x send (allgather) or send (alltoall). */
static napi_value equal_blocks(napi_env env, napi_callback_info info, op_kind kind, const char *name) {
  napi_value argv[4];
  mpi_handle comm, dt, dt2;
  mk_typed send, recv;
  int async, size = 0;
  if (!mk_napi_args(env, info, 4, argv, name) || !get_comm(env, argv[0], name, &comm) ||
      !mk_napi_typed(env, argv[1], "send", &send) || !dtype_of(env, &send, "send", &dt) ||
      !mk_napi_typed(env, argv[2], "recv", &recv) || !dtype_of(env, &recv, "recv", &dt2) ||
      !get_async(env, argv[3], &async))
    return NULL;
  g_mpi.Comm_size(comm, &size);
  if (dt != dt2) return mk_throw_type(env, "%s: send and recv must have the same element type", name);
  size_t want = kind == OP_ALLGATHER ? send.length * (size_t)size : send.length;
  if (recv.length != want || (kind == OP_ALLTOALL && send.length % (size_t)size != 0) || want > INT_MAX)
    return mk_throw_range(env, "%s: send has %zu elements and recv %zu; with %d ranks recv must have %zu%s", name,
                          send.length, recv.length, size, want,
                          kind == OP_ALLTOALL ? " and send a multiple of the ranks" : "");
  mk_call *c = new_call(env, kind, name, comm);
  if (!c) return NULL;
  c->send = send.data;
  c->recv = recv.data;
  c->count = kind == OP_ALLGATHER ? (int)send.length : (int)(send.length / (size_t)size);
  c->dtype = dt;
  return dispatch_call(env, c, &argv[1], 2, async);
}

static napi_value mpi_allgather(napi_env env, napi_callback_info info) {
  return equal_blocks(env, info, OP_ALLGATHER, "mpiAllgather");
}

static napi_value mpi_alltoall(napi_env env, napi_callback_info info) {
  return equal_blocks(env, info, OP_ALLTOALL, "mpiAlltoall");
}

/* Checks counts/displacements (size ints each) against a buffer of `length` elements. */
static int check_splits(napi_env env, const mk_typed *counts, const mk_typed *displs, int size, size_t length,
                        const char *what, int *dst) {
  if (counts->type != napi_int32_array || displs->type != napi_int32_array || counts->length != (size_t)size ||
      displs->length != (size_t)size) {
    mk_throw_type(env, "mpiAlltoallv: %s counts and displacements must be Int32Arrays of %d (one per rank)", what,
                  size);
    return 0;
  }
  const int *cn = (const int *)counts->data, *dp = (const int *)displs->data;
  for (int r = 0; r < size; r++) {
    if (cn[r] < 0 || dp[r] < 0 || (size_t)dp[r] + (size_t)cn[r] > length) {
      mk_throw_range(env, "mpiAlltoallv: %s block for rank %d (offset %d, count %d) is outside its %zu elements", what,
                     r, dp[r], cn[r], length);
      return 0;
    }
    dst[r] = cn[r];
    dst[size + r] = dp[r];
  }
  return 1;
}

static napi_value mpi_alltoallv(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  mpi_handle comm, dt, dt2;
  mk_typed send, sc, sd, recv, rc, rd;
  int async, size = 0;
  const char *fn = "mpiAlltoallv";
  if (!mk_napi_args(env, info, 8, argv, fn) || !get_comm(env, argv[0], fn, &comm) ||
      !mk_napi_typed(env, argv[1], "send", &send) || !dtype_of(env, &send, "send", &dt) ||
      !mk_napi_typed(env, argv[2], "sendCounts", &sc) || !mk_napi_typed(env, argv[3], "sendDispls", &sd) ||
      !mk_napi_typed(env, argv[4], "recv", &recv) || !dtype_of(env, &recv, "recv", &dt2) ||
      !mk_napi_typed(env, argv[5], "recvCounts", &rc) || !mk_napi_typed(env, argv[6], "recvDispls", &rd) ||
      !get_async(env, argv[7], &async))
    return NULL;
  if (dt != dt2) return mk_throw_type(env, "%s: send and recv must have the same element type", fn);
  g_mpi.Comm_size(comm, &size);
  int *counts = (int *)malloc(sizeof(int) * 4 * (size_t)size);
  if (!counts) return mk_throw_error(env, "%s: out of memory", fn);
  if (!check_splits(env, &sc, &sd, size, send.length, "send", counts) ||
      !check_splits(env, &rc, &rd, size, recv.length, "recv", counts + 2 * size)) {
    free(counts);
    return NULL;
  }
  mk_call *c = new_call(env, OP_ALLTOALLV, fn, comm);
  if (!c) {
    free(counts);
    return NULL;
  }
  c->send = send.data;
  c->recv = recv.data;
  c->dtype = dt;
  c->counts = counts;
  napi_value keep[2] = {argv[1], argv[4]};
  return dispatch_call(env, c, keep, 2, async);
}

static napi_value mpi_abort(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  mpi_handle comm;
  int64_t code;
  if (!mk_napi_args(env, info, 2, argv, "mpiAbort") || !get_comm(env, argv[0], "mpiAbort", &comm) ||
      !mk_napi_i64(env, argv[1], "mpiAbort: code", 0, 255, &code))
    return NULL;
  g_mpi.Abort(comm, (int)code);
  return mk_napi_undefined(env);
}

static napi_value mpi_finalize(napi_env env, napi_callback_info info) {
  (void)info;
  int done = 0;
  if (g_open && g_mpi.Finalized(&done) == 0 && !done) g_mpi.Finalize();
  return mk_napi_undefined(env);
}

napi_status mk_register_dist(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {
      {"mpiProbe", mpi_probe},        {"mpiOpen", mpi_open},           {"mpiCommRank", mpi_comm_rank},
      {"mpiCommSize", mpi_comm_size}, {"mpiSplit", mpi_split},         {"mpiBarrier", mpi_barrier},
      {"mpiBcast", mpi_bcast},        {"mpiAllreduce", mpi_allreduce}, {"mpiAllgather", mpi_allgather},
      {"mpiAlltoall", mpi_alltoall},  {"mpiAlltoallv", mpi_alltoallv}, {"mpiAbort", mpi_abort},
      {"mpiFinalize", mpi_finalize},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_status st = mk_napi_export_fn(env, exports, fns[i].name, fns[i].fn);
    if (st != napi_ok) return st;
  }
  return napi_ok;
}

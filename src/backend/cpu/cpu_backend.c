/* The CPU backend: host memory, a thread pool per device, and the vtable
 * that points at the op kernels in this folder. Streams on the CPU run ops
 * synchronously, so stream_sync has nothing to wait for. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cpu/cpu_ops.h"
#include "core/internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
/* F16C straight from CPUID leaf 1: clang 14's __builtin_cpu_supports does
 * not know "f16c" (a compile error), gcc's does. */
static int cpu_has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

const char *mlxn_cpu_isa_name(mlxn_cpu_isa isa) {
    switch (isa) {
    case MLXN_CPU_ISA_SCALAR: return "scalar";
    case MLXN_CPU_ISA_AVX2: return "avx2";
    case MLXN_CPU_ISA_AVX512: return "avx512";
    default: return "auto";
    }
}

mlxn_cpu_isa mlxn_cpu_detect_isa(mlxn_cpu_isa cap) {
    mlxn_cpu_isa best = MLXN_CPU_ISA_SCALAR;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c())
        best = MLXN_CPU_ISA_AVX2;
    if (best == MLXN_CPU_ISA_AVX2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
        best = MLXN_CPU_ISA_AVX512;
#endif
    if (cap != MLXN_CPU_ISA_AUTO && cap < best) best = cap;
    return best;
}

static mlxn_status cpu_device_init(mlxn_device *dev, const mlxn_device_params *p) {
    cpu_device *c = calloc(1, sizeof *c);
    if (!c) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "cpu device: out of memory");
    int n = p->n_threads;
    if (n <= 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n = online > 0 ? (int)online : 1;
    }
    mlxn_status st = mlxn_threadpool_new(n, &c->pool);
    if (st != MLXN_OK) {
        free(c);
        return st;
    }
    c->isa = mlxn_cpu_detect_isa(p->isa);
    c->float_activations = p->float_activations != 0;
    dev->ctx = c;
    snprintf(dev->name, sizeof dev->name, "cpu (%d thread%s, %s)", n, n == 1 ? "" : "s",
             mlxn_cpu_isa_name(c->isa));
    return MLXN_OK;
}

static void cpu_device_free(mlxn_device *dev) {
    cpu_device *c = dev->ctx;
    if (!c) return;
    mlxn_threadpool_free(c->pool);
    free(c);
}

int mlxn_device_threads(const mlxn_device *dev) {
    if (!dev || dev->kind != MLXN_DEVICE_CPU) return 1;
    return mlxn_threadpool_size(((const cpu_device *)dev->ctx)->pool);
}

static mlxn_status cpu_alloc(mlxn_device *dev, size_t bytes, void **ptr) {
    (void)dev;
    /* 64-byte alignment: one cache line, and the widest vector load */
    size_t rounded = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, rounded);
    if (!p) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "cpu: could not allocate %zu bytes", bytes);
    *ptr = p;
    return MLXN_OK;
}

static void cpu_free(mlxn_device *dev, void *ptr) {
    (void)dev;
    free(ptr);
}

static mlxn_status cpu_copy(mlxn_device *dev, void *dst, const void *src, size_t n) {
    (void)dev;
    memmove(dst, src, n);
    return MLXN_OK;
}

static mlxn_status cpu_stream_init(mlxn_stream *s) {
    s->ctx = NULL;
    return MLXN_OK;
}
static void cpu_stream_free(mlxn_stream *s) { (void)s; }
static mlxn_status cpu_stream_sync(mlxn_stream *s) {
    (void)s;
    return MLXN_OK;
}

static mlxn_status cpu_host_alloc(mlxn_device *dev, size_t bytes, void **ptr) { return cpu_alloc(dev, bytes, ptr); }

/* The CPU runs every op at its call, so a stream-ordered copy is a copy. */
static mlxn_status cpu_stream_upload(mlxn_stream *s, void *dst, const void *src, size_t n, int src_pinned) {
    (void)src_pinned;
    return cpu_copy(s->dev, dst, src, n);
}
static mlxn_status cpu_stream_download(mlxn_stream *s, void *dst, const void *src, size_t n) {
    return cpu_copy(s->dev, dst, src, n);
}

/* kv_write: the slot is host-visible here; a view of the destination rows
 * and a plain copy. kv_write2: both pairs' ranges checked first (nothing
 * written when either fails), then the same two copies, keys first. */
static mlxn_status kv_slot_check(const char *op, const char *sn, const mlxn_tensor *src, const mlxn_tensor *slot,
                                 const mlxn_tensor *dst, int64_t *at) {
    int n = src->ndim;
    int64_t T = src->shape[n - 2], cap = dst->shape[n - 2];
    *at = *(const int32_t *)mlxn_tensor_host(slot);
    if (*at < 0 || *at > cap - T)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT,
                         "%s: slot %lld is outside [0, %lld] (%lld rows%s%s into %lld slots)", op, (long long)*at,
                         (long long)(cap - T), (long long)T, sn ? " of " : "", sn ? sn : "", (long long)cap);
    return MLXN_OK;
}
static mlxn_status kv_rows(mlxn_stream *s, const mlxn_tensor *src, int64_t at, const mlxn_tensor *dst) {
    int n = src->ndim;
    mlxn_tensor d = *dst;
    d.shape[n - 2] = src->shape[n - 2];
    d.offset += (size_t)(at * dst->strides[n - 2]) * mlxn_dtype_size(dst->dtype);
    return cpu_copy_tensor(s, src, &d);
}
static mlxn_status cpu_kv_write(mlxn_stream *s, const mlxn_tensor *src, const mlxn_tensor *slot, mlxn_tensor *dst) {
    int64_t at;
    MLXN_TRY(kv_slot_check("kv_write", NULL, src, slot, dst, &at));
    return kv_rows(s, src, at, dst);
}
static mlxn_status cpu_kv_write2(mlxn_stream *s, const mlxn_tensor *k_src, const mlxn_tensor *v_src,
                                 const mlxn_tensor *slot, mlxn_tensor *k_dst, mlxn_tensor *v_dst) {
    bool k = mlxn_tensor_numel(k_src) > 0, v = mlxn_tensor_numel(v_src) > 0; /* an empty pair: as kv_write, unchecked */
    int64_t at = 0;
    if (k) MLXN_TRY(kv_slot_check("kv_write2", "k_src", k_src, slot, k_dst, &at));
    if (v) MLXN_TRY(kv_slot_check("kv_write2", "v_src", v_src, slot, v_dst, &at));
    if (k) MLXN_TRY(kv_rows(s, k_src, at, k_dst));
    return v ? kv_rows(s, v_src, at, v_dst) : MLXN_OK;
}
/* rope_kv_write: the ranges checked first (nothing written when either
 * fails), then rope of q, rope of k into an f32 temporary and its copy into
 * the cache, and the values' copy: the calls it stands for, in order. */
static mlxn_status cpu_rope_kv_write(mlxn_stream *s, const mlxn_tensor *q, const mlxn_tensor *k, const mlxn_tensor *v,
                                     const mlxn_rope_params *p, const mlxn_tensor *slot, mlxn_tensor *q_out,
                                     mlxn_tensor *k_dst, mlxn_tensor *v_dst) {
    bool kn = mlxn_tensor_numel(k) > 0, vn = mlxn_tensor_numel(v) > 0;
    int64_t at = 0;
    if (kn) MLXN_TRY(kv_slot_check("rope_kv_write", "k", k, slot, k_dst, &at));
    if (vn) MLXN_TRY(kv_slot_check("rope_kv_write", "v", v, slot, v_dst, &at));
    if (mlxn_tensor_numel(q) > 0) MLXN_TRY(cpu_rope(s, q, p, q_out));
    if (kn) {
        mlxn_tensor kr;
        MLXN_TRY(mlxn_tensor_alloc(s->dev, MLXN_DTYPE_F32, k->ndim, k->shape, &kr));
        mlxn_status st = cpu_rope(s, k, p, &kr);
        if (st == MLXN_OK) st = kv_rows(s, &kr, at, k_dst);
        mlxn_tensor_release(&kr);
        MLXN_TRY(st);
    }
    return vn ? kv_rows(s, v, at, v_dst) : MLXN_OK;
}

const mlxn_backend_i mlxn_cpu_backend = {
    .name = "cpu",
    .device_init = cpu_device_init,
    .device_free = cpu_device_free,
    .host_visible = 1,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .stream_init = cpu_stream_init,
    .stream_free = cpu_stream_free,
    .stream_sync = cpu_stream_sync,
    .host_alloc = cpu_host_alloc,
    .host_free = cpu_free,
    .stream_upload = cpu_stream_upload,
    .stream_download = cpu_stream_download,
    .matmul = cpu_matmul,
    .quantized_matmul = cpu_quantized_matmul,
    .embedding = cpu_embedding,
    .quantized_embedding = cpu_quantized_embedding,
    .rms_norm = cpu_rms_norm,
    .add_rms_norm = cpu_add_rms_norm,
    .layer_norm = cpu_layer_norm,
    .rope = cpu_rope,
    .sdpa = cpu_sdpa,
    .softmax = cpu_softmax,
    .gelu = cpu_gelu,
    .silu = cpu_silu,
    .swiglu = cpu_swiglu,
    .geglu = cpu_geglu,
    .argmax = cpu_argmax,
    .hadamard = cpu_hadamard,
    .add = cpu_add,
    .scale = cpu_scale,
    .copy = cpu_copy_tensor,
    .tq_append = cpu_tq_append,
    .tq_rope_append = cpu_tq_rope_append,
    .tq_sdpa = cpu_tq_sdpa,
    .tq_dequantize = cpu_tq_dequantize,
    .sample = cpu_sample,
    .kv_write = cpu_kv_write,
    .kv_write2 = cpu_kv_write2,
    .rope_kv_write = cpu_rope_kv_write,
};

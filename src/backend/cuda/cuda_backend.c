/* The CUDA backend's vtable. With CUDA (MLXN_HAVE_CUDA) memory, streams and
 * every op run on the GPU through the entry points in cuda_ops.h; an op
 * variant that has no kernel yet returns MLXN_ERR_NOT_IMPLEMENTED ("not
 * built yet"), never a wrong answer. Without CUDA, opening a cuda device
 * fails with a message saying how to get one, and the bench helpers of
 * cuda_bench.h fail the same way. */
#include "backend/backend.h"
#include "backend/cuda/cuda_bench.h"
#include "core/internal.h"

#ifdef MLXN_HAVE_CUDA
#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/cuda_runtime.h"
#include "backend/cuda/cuda_tq.h"

static mlxn_status cuda_device_init(mlxn_device *dev, const mlxn_device_params *p) {
    dev->ctx = NULL;
    return mlxn_cuda_open(p->index, dev->name, sizeof dev->name);
}
static void cuda_device_free(mlxn_device *dev) { (void)dev; }
static mlxn_status cuda_alloc(mlxn_device *dev, size_t bytes, void **ptr) {
    return mlxn_cuda_malloc(dev->index, bytes, ptr);
}
static void cuda_free(mlxn_device *dev, void *ptr) { mlxn_cuda_free(dev->index, ptr); }
static mlxn_status cuda_upload(mlxn_device *dev, void *dst, const void *src, size_t n) {
    return mlxn_cuda_memcpy_h2d(dev->index, dst, src, n);
}
static mlxn_status cuda_download(mlxn_device *dev, void *dst, const void *src, size_t n) {
    return mlxn_cuda_memcpy_d2h(dev->index, dst, src, n);
}
static mlxn_status cuda_stream_init(mlxn_stream *s) { return mlxn_cuda_stream_create(s->dev->index, &s->ctx); }
static void cuda_stream_free(mlxn_stream *s) { mlxn_cuda_stream_destroy(s->dev->index, s->ctx); }
static mlxn_status cuda_stream_sync(mlxn_stream *s) { return mlxn_cuda_stream_sync(s->dev->index, s->ctx); }
static mlxn_status cuda_host_alloc(mlxn_device *dev, size_t bytes, void **ptr) {
    return mlxn_cuda_host_alloc(dev->index, bytes, ptr);
}
static void cuda_host_free(mlxn_device *dev, void *ptr) { mlxn_cuda_host_free(dev->index, ptr); }
static mlxn_status cuda_stream_upload(mlxn_stream *s, void *dst, const void *src, size_t n, int pinned) {
    return mlxn_cuda_stream_upload(s->ctx, dst, src, n, pinned);
}
static mlxn_status cuda_stream_download(mlxn_stream *s, void *dst, const void *src, size_t n) {
    return mlxn_cuda_stream_download(s->ctx, dst, src, n);
}
static mlxn_status cuda_reader_new(mlxn_stream *s, size_t max_bytes, void **impl) {
    return mlxn_cuda_reader_new(s->ctx, max_bytes, impl);
}
static mlxn_status cuda_reader_begin(mlxn_stream *s, void *impl, const void *src, size_t n) {
    return mlxn_cuda_reader_begin(s->ctx, impl, src, n);
}
static mlxn_status cuda_reader_end(mlxn_stream *s, void *impl, void *dst, size_t n) {
    return mlxn_cuda_reader_end(s->ctx, impl, dst, n);
}
static void cuda_reader_free(mlxn_stream *s, void *impl) { mlxn_cuda_reader_free(s->ctx, impl); }
static mlxn_status cuda_graph_begin(mlxn_stream *s) { return mlxn_cuda_graph_begin(s->ctx); }
static mlxn_status cuda_graph_end(mlxn_stream *s, void **graph) { return mlxn_cuda_graph_end(s->ctx, graph); }
static mlxn_status cuda_graph_launch(mlxn_stream *s, void *graph) { return mlxn_cuda_graph_launch(s->ctx, graph); }
static void cuda_graph_free(mlxn_device *dev, void *graph) { mlxn_cuda_graph_free(dev->index, graph); }

const mlxn_backend_i mlxn_cuda_backend = {
    .name = "cuda",
    .device_init = cuda_device_init,
    .device_free = cuda_device_free,
    .host_visible = 0,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .stream_init = cuda_stream_init,
    .stream_free = cuda_stream_free,
    .stream_sync = cuda_stream_sync,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .stream_upload = cuda_stream_upload,
    .stream_download = cuda_stream_download,
    .reader_new = cuda_reader_new,
    .reader_begin = cuda_reader_begin,
    .reader_end = cuda_reader_end,
    .reader_free = cuda_reader_free,
    .graph_begin = cuda_graph_begin,
    .graph_end = cuda_graph_end,
    .graph_launch = cuda_graph_launch,
    .graph_free = cuda_graph_free,
    .matmul = cu_op_matmul,
    .quantized_matmul = cu_op_quantized_matmul_any,
    .quantized_matmul_fuses = cu_op_quantized_matmul_fuses,
    .quantized_matmul_fused = cu_op_quantized_matmul_fused,
    .quantized_tile = cu_op_quantized_tile,
    .embedding = cu_op_embedding,
    .quantized_embedding = cu_op_quantized_embedding,
    .rms_norm = cu_op_rms_norm,
    .add_rms_norm = cu_op_add_rms_norm,
    .layer_norm = cu_op_layer_norm,
    .rope = cu_op_rope,
    .sdpa = cu_op_sdpa,
    .softmax = cu_op_softmax,
    .gelu = cu_op_gelu,
    .silu = cu_op_silu,
    .swiglu = cu_op_swiglu,
    .geglu = cu_op_geglu,
    .argmax = cu_op_argmax,
    .hadamard = cu_op_hadamard,
    .add = cu_op_add,
    .scale = cu_op_scale,
    .copy = cu_op_copy,
    .sample = cu_op_sample,
    .kv_write = cu_op_kv_write,
    .kv_write2 = cu_op_kv_write2,
    .rope_kv_write = cu_op_rope_kv_write,
    .tq_append = cu_op_tq_append,
    .tq_rope_append = cu_op_tq_rope_append,
    .tq_sdpa = cu_op_tq_sdpa,
    .tq_dequantize = cu_op_tq_dequantize,
};

#else /* no CUDA in this build */

#define NO_CUDA() return mlxn_fail(MLXN_ERR_DEVICE, "cuda: this build of mlx-native has no CUDA backend; use --device cpu")
#define UNUSED(x) (void)(x)

static mlxn_status cuda_device_init(mlxn_device *dev, const mlxn_device_params *p) {
    (void)dev;
    return mlxn_fail(MLXN_ERR_DEVICE,
                     "cuda:%d: this build of mlx-native has no CUDA backend (configure with nvcc on PATH "
                     "and -DMLXN_CUDA=ON); use --device cpu",
                     p->index);
}
/* Unreachable without a device, but the vtable is complete. */
static void cuda_device_free(mlxn_device *dev) { (void)dev; }
static mlxn_status cuda_alloc(mlxn_device *dev, size_t bytes, void **ptr) {
    UNUSED(dev), UNUSED(bytes), UNUSED(ptr);
    NO_CUDA();
}
static void cuda_free(mlxn_device *dev, void *ptr) { (void)dev, (void)ptr; }
static mlxn_status cuda_upload(mlxn_device *dev, void *dst, const void *src, size_t n) {
    UNUSED(dev), UNUSED(dst), UNUSED(src), UNUSED(n);
    NO_CUDA();
}
static mlxn_status cuda_stream_init(mlxn_stream *s) {
    UNUSED(s);
    NO_CUDA();
}
static void cuda_stream_free(mlxn_stream *s) { (void)s; }
static mlxn_status cuda_host_alloc(mlxn_device *dev, size_t bytes, void **ptr) {
    UNUSED(dev), UNUSED(bytes), UNUSED(ptr);
    NO_CUDA();
}
static mlxn_status cuda_stream_upload(mlxn_stream *s, void *dst, const void *src, size_t n, int pinned) {
    UNUSED(s), UNUSED(dst), UNUSED(src), UNUSED(n), UNUSED(pinned);
    NO_CUDA();
}
static mlxn_status cuda_stream_download(mlxn_stream *s, void *dst, const void *src, size_t n) {
    UNUSED(s), UNUSED(dst), UNUSED(src), UNUSED(n);
    NO_CUDA();
}

/* Every op: unreachable (no device can be opened), but never a wrong answer. */
#define STUB(name, ...)                               \
    static mlxn_status name(__VA_ARGS__) { NO_CUDA(); }
#define P mlxn_stream *s, const mlxn_tensor *
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
STUB(st_matmul, P x, const mlxn_tensor *w, bool t, mlxn_tensor *o)
STUB(st_qmm, P x, const mlxn_tensor *wq, const mlxn_tensor *sc, const mlxn_tensor *bi, const mlxn_quant_params *q,
     bool t, mlxn_tensor *o)
STUB(st_emb, P ids, const mlxn_tensor *tb, mlxn_tensor *o)
STUB(st_qemb, P ids, const mlxn_tensor *wq, const mlxn_tensor *sc, const mlxn_tensor *bi, const mlxn_quant_params *q,
     mlxn_tensor *o)
STUB(st_rms, P x, const mlxn_tensor *w, float eps, float off, mlxn_tensor *o)
STUB(st_add_rms, P a, const mlxn_tensor *b, const mlxn_tensor *w, float eps, float off, mlxn_tensor *sum,
     mlxn_tensor *o)
STUB(st_ln, P x, const mlxn_tensor *w, const mlxn_tensor *b, float eps, mlxn_tensor *o)
STUB(st_rope, P x, const mlxn_rope_params *p, mlxn_tensor *o)
STUB(st_sdpa, P q, const mlxn_tensor *k, const mlxn_tensor *v, const mlxn_sdpa_params *p, mlxn_tensor *o)
STUB(st_unary, P x, mlxn_tensor *o)
STUB(st_gelu, P x, mlxn_gelu_kind k, mlxn_tensor *o)
STUB(st_gated, P g, const mlxn_tensor *u, mlxn_tensor *o)
STUB(st_geglu, P g, const mlxn_tensor *u, mlxn_gelu_kind k, mlxn_tensor *o)
STUB(st_hadamard, P x, float scale, mlxn_tensor *o)
STUB(st_add, P a, const mlxn_tensor *b, mlxn_tensor *o)
STUB(st_scale, P x, float alpha, mlxn_tensor *o)
STUB(st_copy, P src, mlxn_tensor *dst)
STUB(st_sample, P logits, const mlxn_sample_params *p, mlxn_tensor *tok)
STUB(st_kv_write, P src, const mlxn_tensor *slot, mlxn_tensor *dst)
STUB(st_kv_write2, P ks, const mlxn_tensor *vs, const mlxn_tensor *slot, mlxn_tensor *kd, mlxn_tensor *vd)
STUB(st_rope_kv_write, P q, const mlxn_tensor *k, const mlxn_tensor *v, const mlxn_rope_params *p,
     const mlxn_tensor *slot, mlxn_tensor *qo, mlxn_tensor *kd, mlxn_tensor *vd)

mlxn_status mlxn_cuda_timer_begin(mlxn_stream *s, int n_marks, double hold_us, mlxn_cuda_timer **out) { NO_CUDA(); }
mlxn_status mlxn_cuda_timer_mark(mlxn_cuda_timer *t, int i) { NO_CUDA(); }
mlxn_status mlxn_cuda_timer_end(mlxn_cuda_timer *t, double *us) { NO_CUDA(); }
mlxn_status mlxn_cuda_device_info(mlxn_device *dev, size_t *l2_bytes, int *sm_count) { NO_CUDA(); }
mlxn_status mlxn_cuda_copy_bandwidth(mlxn_device *dev, size_t bytes, int reps, double *gb_s) { NO_CUDA(); }
#pragma GCC diagnostic pop
#undef P

const mlxn_backend_i mlxn_cuda_backend = {
    .name = "cuda",
    .device_init = cuda_device_init,
    .device_free = cuda_device_free,
    .host_visible = 0,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .upload = cuda_upload,
    .download = cuda_upload,
    .stream_init = cuda_stream_init,
    .stream_free = cuda_stream_free,
    .stream_sync = cuda_stream_init,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_free,
    .stream_upload = cuda_stream_upload,
    .stream_download = cuda_stream_download,
    .matmul = st_matmul,
    .quantized_matmul = st_qmm,
    .embedding = st_emb,
    .quantized_embedding = st_qemb,
    .rms_norm = st_rms,
    .add_rms_norm = st_add_rms,
    .layer_norm = st_ln,
    .rope = st_rope,
    .sdpa = st_sdpa,
    .softmax = st_unary,
    .gelu = st_gelu,
    .silu = st_unary,
    .swiglu = st_gated,
    .geglu = st_geglu,
    .argmax = st_unary,
    .hadamard = st_hadamard,
    .add = st_add,
    .scale = st_scale,
    .copy = st_copy,
    .sample = st_sample,
    .kv_write = st_kv_write,
    .kv_write2 = st_kv_write2,
    .rope_kv_write = st_rope_kv_write,
};
#endif

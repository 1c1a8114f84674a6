/* The CUDA backend's vtable. Memory and streams are real when the library
 * is built with CUDA (MLXN_HAVE_CUDA); every op reports "not built yet"
 * until the CUDA backend issue lands its kernels. Without CUDA, opening a
 * cuda device fails with a message saying how to get one. */
#include "backend/backend.h"
#include "core/internal.h"

#ifdef MLXN_HAVE_CUDA
#include "backend/cuda/cuda_runtime.h"

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
#else
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
    (void)dev, (void)bytes, (void)ptr;
    return mlxn_fail(MLXN_ERR_DEVICE, "cuda: not built");
}
static void cuda_free(mlxn_device *dev, void *ptr) { (void)dev, (void)ptr; }
static mlxn_status cuda_upload(mlxn_device *dev, void *dst, const void *src, size_t n) {
    (void)dev, (void)dst, (void)src, (void)n;
    return mlxn_fail(MLXN_ERR_DEVICE, "cuda: not built");
}
#define cuda_download cuda_upload
static mlxn_status cuda_stream_init(mlxn_stream *s) {
    (void)s;
    return mlxn_fail(MLXN_ERR_DEVICE, "cuda: not built");
}
static void cuda_stream_free(mlxn_stream *s) { (void)s; }
#define cuda_stream_sync cuda_stream_init
#endif

/* Every op: a clear "not built yet" status, never a wrong answer. */
#define NOT_BUILT(op) return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "cuda: op %s is not built yet", op)
#define UNUSED(x) (void)(x)

static mlxn_status cu_matmul(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, bool t, mlxn_tensor *o) {
    UNUSED(s), UNUSED(x), UNUSED(w), UNUSED(t), UNUSED(o);
    NOT_BUILT("matmul");
}
static mlxn_status cu_qmm(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *wq, const mlxn_tensor *sc,
                          const mlxn_tensor *bi, const mlxn_quant_params *q, bool t, mlxn_tensor *o) {
    UNUSED(s), UNUSED(x), UNUSED(wq), UNUSED(sc), UNUSED(bi), UNUSED(q), UNUSED(t), UNUSED(o);
    NOT_BUILT("quantized_matmul");
}
static mlxn_status cu_embedding(mlxn_stream *s, const mlxn_tensor *ids, const mlxn_tensor *tb, mlxn_tensor *o) {
    UNUSED(s), UNUSED(ids), UNUSED(tb), UNUSED(o);
    NOT_BUILT("embedding");
}
static mlxn_status cu_qembedding(mlxn_stream *s, const mlxn_tensor *ids, const mlxn_tensor *wq,
                                 const mlxn_tensor *sc, const mlxn_tensor *bi, const mlxn_quant_params *q,
                                 mlxn_tensor *o) {
    UNUSED(s), UNUSED(ids), UNUSED(wq), UNUSED(sc), UNUSED(bi), UNUSED(q), UNUSED(o);
    NOT_BUILT("quantized_embedding");
}
static mlxn_status cu_rms_norm(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, float eps, float off,
                               mlxn_tensor *o) {
    UNUSED(s), UNUSED(x), UNUSED(w), UNUSED(eps), UNUSED(off), UNUSED(o);
    NOT_BUILT("rms_norm");
}
static mlxn_status cu_layer_norm(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, const mlxn_tensor *b,
                                 float eps, mlxn_tensor *o) {
    UNUSED(s), UNUSED(x), UNUSED(w), UNUSED(b), UNUSED(eps), UNUSED(o);
    NOT_BUILT("layer_norm");
}
static mlxn_status cu_rope(mlxn_stream *s, const mlxn_tensor *x, const mlxn_rope_params *p, mlxn_tensor *o) {
    UNUSED(s), UNUSED(x), UNUSED(p), UNUSED(o);
    NOT_BUILT("rope");
}
static mlxn_status cu_sdpa(mlxn_stream *s, const mlxn_tensor *q, const mlxn_tensor *k, const mlxn_tensor *v,
                           const mlxn_sdpa_params *p, mlxn_tensor *o) {
    UNUSED(s), UNUSED(q), UNUSED(k), UNUSED(v), UNUSED(p), UNUSED(o);
    NOT_BUILT("sdpa");
}
static mlxn_status cu_unary(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *o) {
    UNUSED(s), UNUSED(x), UNUSED(o);
    NOT_BUILT("softmax/silu/argmax");
}
static mlxn_status cu_gelu(mlxn_stream *s, const mlxn_tensor *x, mlxn_gelu_kind k, mlxn_tensor *o) {
    UNUSED(s), UNUSED(x), UNUSED(k), UNUSED(o);
    NOT_BUILT("gelu");
}
static mlxn_status cu_swiglu(mlxn_stream *s, const mlxn_tensor *g, const mlxn_tensor *u, mlxn_tensor *o) {
    UNUSED(s), UNUSED(g), UNUSED(u), UNUSED(o);
    NOT_BUILT("swiglu");
}
static mlxn_status cu_geglu(mlxn_stream *s, const mlxn_tensor *g, const mlxn_tensor *u, mlxn_gelu_kind k,
                            mlxn_tensor *o) {
    UNUSED(s), UNUSED(g), UNUSED(u), UNUSED(k), UNUSED(o);
    NOT_BUILT("geglu");
}
static mlxn_status cu_hadamard(mlxn_stream *s, const mlxn_tensor *x, float scale, mlxn_tensor *o) {
    UNUSED(s), UNUSED(x), UNUSED(scale), UNUSED(o);
    NOT_BUILT("hadamard");
}
static mlxn_status cu_add(mlxn_stream *s, const mlxn_tensor *a, const mlxn_tensor *b, mlxn_tensor *o) {
    UNUSED(s), UNUSED(a), UNUSED(b), UNUSED(o);
    NOT_BUILT("add");
}
static mlxn_status cu_scale(mlxn_stream *s, const mlxn_tensor *x, float alpha, mlxn_tensor *o) {
    UNUSED(s), UNUSED(x), UNUSED(alpha), UNUSED(o);
    NOT_BUILT("scale");
}
static mlxn_status cu_copy(mlxn_stream *s, const mlxn_tensor *src, mlxn_tensor *dst) {
    UNUSED(s), UNUSED(src), UNUSED(dst);
    NOT_BUILT("copy");
}

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
    .matmul = cu_matmul,
    .quantized_matmul = cu_qmm,
    .embedding = cu_embedding,
    .quantized_embedding = cu_qembedding,
    .rms_norm = cu_rms_norm,
    .layer_norm = cu_layer_norm,
    .rope = cu_rope,
    .sdpa = cu_sdpa,
    .softmax = cu_unary,
    .gelu = cu_gelu,
    .silu = cu_unary,
    .swiglu = cu_swiglu,
    .geglu = cu_geglu,
    .argmax = cu_unary,
    .hadamard = cu_hadamard,
    .add = cu_add,
    .scale = cu_scale,
    .copy = cu_copy,
};

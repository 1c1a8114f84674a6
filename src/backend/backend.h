/* The private backend interface: one vtable per backend (cpu, cuda) plus
 * the device, stream and buffer structs that carry it. src/ops validates
 * every call and then dispatches through s->dev->be; a backend may assume
 * its arguments are valid (shapes agree, dtypes accepted, tensors on this
 * device, outputs contiguous). */
#ifndef MLXN_BACKEND_H
#define MLXN_BACKEND_H

#include "backend/tq_cache.h"
#include "mlxn/ops.h"

typedef struct mlxn_backend_i {
    const char *name;
    /* device */
    mlxn_status (*device_init)(mlxn_device *dev, const mlxn_device_params *p);
    void (*device_free)(mlxn_device *dev);
    /* memory; host_visible backends give pointers usable from the CPU */
    int host_visible;
    mlxn_status (*alloc)(mlxn_device *dev, size_t bytes, void **ptr);
    void (*free)(mlxn_device *dev, void *ptr);
    mlxn_status (*upload)(mlxn_device *dev, void *dst, const void *src, size_t n);
    mlxn_status (*download)(mlxn_device *dev, void *dst, const void *src, size_t n);
    /* streams */
    mlxn_status (*stream_init)(mlxn_stream *s);
    void (*stream_free)(mlxn_stream *s);
    mlxn_status (*stream_sync)(mlxn_stream *s);
    /* Host memory the device copies from fastest (page-locked on CUDA). */
    mlxn_status (*host_alloc)(mlxn_device *dev, size_t bytes, void **ptr);
    void (*host_free)(mlxn_device *dev, void *ptr);
    /* Stream-ordered copies (after everything queued on s). upload: src may
     * be reused when the call returns, unless src_pinned (src came from
     * host_alloc and is read when the copy runs: a captured graph re-reads
     * it on every replay). download: waits for the stream, so dst holds the
     * data (and any device-side error is reported) when it returns. */
    mlxn_status (*stream_upload)(mlxn_stream *s, void *dst, const void *src, size_t n, int src_pinned);
    mlxn_status (*stream_download)(mlxn_stream *s, void *dst, const void *src, size_t n);
    /* reads that do not wait for later work (mlxn_reader): impl is what one read needs (a GPU: pinned
       memory and an event); NULL: mlxn_reader reads at begin through stream_download */
    mlxn_status (*reader_new)(mlxn_stream *s, size_t max_bytes, void **impl);
    mlxn_status (*reader_begin)(mlxn_stream *s, void *impl, const void *src, size_t n);
    mlxn_status (*reader_end)(mlxn_stream *s, void *impl, void *dst, size_t n);
    void (*reader_free)(mlxn_stream *s, void *impl);
    /* Graphs (NULL when the backend has none): capture the ops queued on s
     * between begin and end into an executable graph, replay it on s, free it. */
    mlxn_status (*graph_begin)(mlxn_stream *s);
    mlxn_status (*graph_end)(mlxn_stream *s, void **graph);
    mlxn_status (*graph_launch)(mlxn_stream *s, void *graph);
    void (*graph_free)(mlxn_device *dev, void *graph);
    /* ops: the same arguments as the public functions in mlxn/ops.h */
    mlxn_status (*matmul)(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, bool transpose,
                          mlxn_tensor *out);
    mlxn_status (*quantized_matmul)(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *wq,
                                    const mlxn_tensor *scales, const mlxn_tensor *biases,
                                    const mlxn_quant_params *q, bool transpose, mlxn_tensor *out);
    /* Optional (NULL: mlxn_quantized_matmul_fused runs the parts apart).
     * quantized_matmul_fuses: the backend has one kernel for these weights
     * and M x rows. quantized_matmul_fused is called only then, and may
     * still decline a call (x or norm_w laid out in a way its kernel does
     * not take) by setting *done = 0 without queuing anything. */
    bool (*quantized_matmul_fuses)(mlxn_stream *s, const mlxn_tensor *wq, const mlxn_tensor *scales,
                                   const mlxn_tensor *biases, const mlxn_quant_params *q, int64_t M);
    mlxn_status (*quantized_matmul_fused)(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *wq,
                                          const mlxn_tensor *scales, const mlxn_tensor *biases,
                                          const mlxn_quant_params *q, const mlxn_qmm_fusion *f, mlxn_tensor *out,
                                          int *done);
    /* Optional (NULL: the backend's kernels read only the ROWS layout):
     * mlxn_quantized_tile in place, called with checked, tileable,
     * contiguous tensors; MLXN_ERR_NOT_IMPLEMENTED declines (nothing
     * changed). */
    mlxn_status (*quantized_tile)(mlxn_stream *s, mlxn_tensor *wq, mlxn_tensor *scales, mlxn_tensor *biases,
                                  const mlxn_quant_params *q);
    mlxn_status (*embedding)(mlxn_stream *s, const mlxn_tensor *ids, const mlxn_tensor *table,
                             mlxn_tensor *out);
    mlxn_status (*quantized_embedding)(mlxn_stream *s, const mlxn_tensor *ids, const mlxn_tensor *wq,
                                       const mlxn_tensor *scales, const mlxn_tensor *biases,
                                       const mlxn_quant_params *q, mlxn_tensor *out);
    mlxn_status (*rms_norm)(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, float eps,
                            float w_offset, mlxn_tensor *out);
    mlxn_status (*add_rms_norm)(mlxn_stream *s, const mlxn_tensor *a, const mlxn_tensor *b, const mlxn_tensor *w,
                                float eps, float w_offset, mlxn_tensor *sum, mlxn_tensor *out);
    mlxn_status (*layer_norm)(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w,
                              const mlxn_tensor *b, float eps, mlxn_tensor *out);
    mlxn_status (*rope)(mlxn_stream *s, const mlxn_tensor *x, const mlxn_rope_params *p,
                        mlxn_tensor *out);
    mlxn_status (*sdpa)(mlxn_stream *s, const mlxn_tensor *q, const mlxn_tensor *k,
                        const mlxn_tensor *v, const mlxn_sdpa_params *p, mlxn_tensor *out);
    mlxn_status (*softmax)(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out);
    mlxn_status (*gelu)(mlxn_stream *s, const mlxn_tensor *x, mlxn_gelu_kind kind, mlxn_tensor *out);
    mlxn_status (*silu)(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out);
    mlxn_status (*swiglu)(mlxn_stream *s, const mlxn_tensor *gate, const mlxn_tensor *up,
                          mlxn_tensor *out);
    mlxn_status (*geglu)(mlxn_stream *s, const mlxn_tensor *gate, const mlxn_tensor *up,
                         mlxn_gelu_kind kind, mlxn_tensor *out);
    mlxn_status (*argmax)(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out);
    mlxn_status (*hadamard)(mlxn_stream *s, const mlxn_tensor *x, float scale, mlxn_tensor *out);
    mlxn_status (*add)(mlxn_stream *s, const mlxn_tensor *a, const mlxn_tensor *b, mlxn_tensor *out);
    mlxn_status (*scale)(mlxn_stream *s, const mlxn_tensor *x, float alpha, mlxn_tensor *out);
    mlxn_status (*copy)(mlxn_stream *s, const mlxn_tensor *src, mlxn_tensor *dst);
    /* TurboQuant KV cache (mlxn/turboquant.h); NULL = not built yet for this
     * backend (the op then fails with MLXN_ERR_NOT_IMPLEMENTED). Positions are
     * resolved by the caller only when no pos tensor is given: a backend reads
     * pos_tensor itself (on the device, for graph replay). which_v: 0 keys, 1 values. */
    mlxn_status (*tq_append)(mlxn_stream *s, mlxn_tq_cache *c, const mlxn_tensor *k, const mlxn_tensor *v,
                             int64_t pos, const mlxn_tensor *pos_tensor);
    /* validated by mlxn_tq_rope_append (q and k roped, k and v appended) */
    mlxn_status (*tq_rope_append)(mlxn_stream *s, mlxn_tq_cache *c, const mlxn_tensor *q, const mlxn_tensor *k,
                                  const mlxn_tensor *v, const mlxn_rope_params *p, mlxn_tensor *q_out, int64_t pos,
                                  const mlxn_tensor *pos_tensor);
    mlxn_status (*tq_sdpa)(mlxn_stream *s, const mlxn_tq_cache *c, const mlxn_tensor *q,
                           const mlxn_tq_sdpa_params *p, mlxn_tensor *out);
    mlxn_status (*tq_dequantize)(mlxn_stream *s, const mlxn_tq_cache *c, int which_v, int64_t pos,
                                 mlxn_tensor *out);
    mlxn_status (*sample)(mlxn_stream *s, const mlxn_tensor *logits, const mlxn_sample_params *p,
                          mlxn_tensor *token);
    mlxn_status (*kv_write)(mlxn_stream *s, const mlxn_tensor *src, const mlxn_tensor *slot, mlxn_tensor *dst);
    /* both pairs validated by mlxn_kv_write2; the slot's range checked for
       every non-empty pair before either is written */
    mlxn_status (*kv_write2)(mlxn_stream *s, const mlxn_tensor *k_src, const mlxn_tensor *v_src,
                             const mlxn_tensor *slot, mlxn_tensor *k_dst, mlxn_tensor *v_dst);
    /* validated by mlxn_rope_kv_write; the slot's range checked for every
       non-empty pair before anything is written */
    mlxn_status (*rope_kv_write)(mlxn_stream *s, const mlxn_tensor *q, const mlxn_tensor *k, const mlxn_tensor *v,
                                 const mlxn_rope_params *p, const mlxn_tensor *slot, mlxn_tensor *q_out,
                                 mlxn_tensor *k_dst, mlxn_tensor *v_dst);
} mlxn_backend_i;

struct mlxn_device {
    const mlxn_backend_i *be;
    void *ctx;                 /* the backend's per-device state */
    mlxn_device_kind kind;
    int index;
    char name[128];
    mlxn_stream *default_stream;
};

struct mlxn_stream {
    mlxn_device *dev;
    void *ctx;                 /* the backend's per-stream state */
};

struct mlxn_buffer {
    mlxn_device *dev;
    void *ptr;                 /* device (or host) address of byte 0 */
    size_t size;
    int owned;                 /* 1: free ptr through the backend on release */
    void (*release)(void *user);
    void *user;
};

/* The backends compiled into this build. cuda's device_init fails with
 * MLXN_ERR_DEVICE when the library was built without CUDA or no GPU is present. */
extern const mlxn_backend_i mlxn_cpu_backend;
extern const mlxn_backend_i mlxn_cuda_backend;

#endif

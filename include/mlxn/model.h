/* Models and sessions: run an mlx-lm model directory (config.json plus
 * model*.safetensors) on a device, token ids in, logits out.
 *
 * A model is the immutable part (configuration and weights, mmap'd and
 * shared); a session is one conversation's state (the KV cache and scratch
 * buffers). Several sessions may use one model, one at a time per session;
 * a session is not safe to use from two threads at once.
 *
 * Supported: the architectures mlxn_model_supported() lists (llama and
 * mistral, qwen2, qwen3, gemma3_text and the text part of gemma3
 * checkpoints, whose tensors carry a `language_model.` prefix), dense
 * f32/f16/bf16 weights and every quantization mlx-lm writes
 * (config["quantization"]: affine 2..8 bits, mxfp4, mxfp8, nvfp4, with
 * per-layer overrides; quantized embeddings; tied embeddings used as the
 * output head). Anything else is an error that names it.
 *
 * Numerics: activations are f32 whatever the weight dtype (mlx-lm computes
 * in the weight dtype: for f32 models the results agree to summation
 * order, for bf16 ones to bf16 rounding); the KV cache holds f32 on the CPU
 * and bf16 on a GPU unless the session asks otherwise (bf16/f16/f32, or a
 * TurboQuant cache: kv_k_bits/kv_v_bits).
 *
 * Devices: a model lives on the device it was loaded onto (cpu, cuda,
 * cuda:N); its sessions run there, one stream each. Errors on a GPU (out of
 * device memory, with the bytes needed; a failed kernel, with CUDA's text)
 * come back as statuses from the call that meets them. Models on several
 * devices, or several models on one, live side by side in one process. */
#ifndef MLXN_MODEL_H
#define MLXN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "mlxn/device.h"
#include "mlxn/dtype.h"
#include "mlxn/tensor.h"
#include "mlxn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mlxn_model mlxn_model;
typedef struct mlxn_session mlxn_session;

typedef struct mlxn_model_params {
    /* 0 (default): a tensor in the files that the architecture does not
     * use is an error naming it, as mlx-lm's strict load; 1: ignore it. */
    int allow_unused_tensors;
    /* Optional: called after each tensor is placed on the device (on a GPU,
     * uploaded from the mapped file through pinned staging memory) with
     * the bytes done so far and the total, and once at the end with
     * done == total. */
    void (*progress)(void *user, int64_t done_bytes, int64_t total_bytes);
    void *progress_user;
    /* Fuse each layer's q/k/v projections into one matmul, and gate/up
     * into another, where the parts are quantized alike (mode, bits,
     * group, scale/bias dtypes; biases on all or none): their rows are
     * stacked into one weight at load, so decode runs 4 quantized mat-vecs
     * per layer instead of 7. Exact: each output is the same row of the
     * same weights. Layers a mixed recipe quantizes differently, and dense
     * layers, stay apart. 0 = the device's default (MLXN_FUSE_DEFAULT_*),
     * 1 = on, -1 = off. The stacked weight is a copy: on a GPU it replaces
     * the parts (no extra memory); on the CPU, where weights are otherwise
     * used in place from the mapped files, it is extra anonymous memory. */
    int fuse_projections;
} mlxn_model_params;

/* The fuse_projections default per device kind (docs/architecture.md). */
#define MLXN_FUSE_DEFAULT_CPU 1
#define MLXN_FUSE_DEFAULT_GPU 1

/* What a loaded model is (strings owned by the model). */
typedef struct mlxn_model_info {
    const char *arch;          /* "llama", "qwen3", "gemma3_text", ... (after aliases) */
    const char *model_type;    /* config.json's model_type as written */
    int vocab_size;
    int hidden_size;
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int intermediate_size;
    int max_position_embeddings; /* 0 when the config has none */
    int n_sliding_layers;      /* layers with a sliding window (rotating cache) */
    int sliding_window;        /* their window, 0 when none */
    int tied_embeddings;       /* the output head is the embedding */
    int n_quantized;           /* linear/embedding weights that are quantized */
    int n_fused;               /* projection groups fused at load (q/k/v, gate/up: 2 a layer at most) */
    int n_tiled;               /* quantized matrices in the device's tiled layout (mlxn/quant.h TILED16) */
} mlxn_model_info;

/* Load an mlx-lm model directory onto `dev`, or a llama-architecture .gguf
 * file: it is converted in memory to exactly the MLX model `mlxn convert`
 * writes (mlxn/convert.h: GGML blocks mapped onto MLX affine quantization
 * without loss where the math allows), so the same kernels run and the
 * results equal the converted directory's. params may be NULL. Errors name
 * the file and the tensor or config/metadata key at fault. */
mlxn_status mlxn_model_load(const char *path, mlxn_device *dev, const mlxn_model_params *params,
                            mlxn_model **out);
void mlxn_model_free(mlxn_model *m);
const mlxn_model_info *mlxn_model_get_info(const mlxn_model *m);
/* Comma-separated model_type values this build runs. */
const char *mlxn_model_supported(void);

typedef struct mlxn_session_params {
    int prefill_chunk;   /* tokens per forward pass of a long prompt; 0 = 2048 */
    int max_context;     /* positions the session may hold; 0 = the model's
                            max_position_embeddings (unbounded when it has none) */
    mlxn_stream *stream; /* NULL = the device's default stream */
    mlxn_dtype kv_dtype; /* KV cache element type: MLXN_DTYPE_F32, MLXN_DTYPE_BF16 or
                            MLXN_DTYPE_F16 (half the memory; mlx-lm's cache has the
                            model's dtype); 0 = the device's default: f32 on the
                            CPU, bf16 on a GPU (decode there reads the whole cache
                            every token, so half the bytes is most of the speed) */
    int kv_layout;       /* 0 = the device's default: growing on the CPU; fixed on a
                            GPU when the context is bounded (its memory, for every
                            position of max_context, is taken when the session is
                            made: bound max_context to what you need). 1 = growing: buffers
                            grow in steps, sliding-window layers keep up to about
                            2 windows (truncation back by up to a window works).
                            2 = fixed: every buffer allocated once for max_context
                            (which must be bounded), sliding-window layers a ring
                            of exactly `window` slots (truncation can then only
                            drop the last token there); single-token steps read
                            their position from device memory, which is what
                            lets a GPU replay one captured graph per token. */
    int decode_graphs;   /* GPU, fixed layout: 0 = default (on, unless the
                            environment sets MLXN_CUDA_GRAPHS=0), 1 = on, -1 = off.
                            On: the first single-token step runs op by op, the
                            second is captured into a graph, and every later one
                            replays it (the host writes the token and position
                            into pinned memory and launches it). */
    /* Both > 0: a TurboQuant cache (mlxn/turboquant.h) with keys coded in
     * kv_k_bits and values in kv_v_bits bits (2..8) instead of the dense
     * one (kv_dtype is then unused). Needs a head_dim that is a power of
     * two from 64 to 512 and a bounded context (max_context, or the
     * model's max_position_embeddings): full-attention layers get one
     * cache of that many positions at creation; sliding-window layers a
     * ring of max(2 window, window - 1 + prefill_chunk) positions (exactly
     * window in the fixed kv_layout, which decode graphs replay). Anything
     * else fails here with a message naming the model's head_dim or the
     * width, not at the first token. See docs/turboquant.md. */
    int kv_k_bits, kv_v_bits;
} mlxn_session_params;

/* Set the KV cache kind of *p from its name: "f32", "f16", "bf16" (dense),
 * "tq2" .. "tq8" (TurboQuant, the same width for keys and values), "tq"
 * (TurboQuant at MLXN_KV_TQ_DEFAULT_BITS) or "kXvY" (keys X bits, values
 * Y bits, e.g. "k4v8"). Other fields are untouched; an unknown name is
 * MLXN_ERR_INVALID_ARGUMENT with a message listing the forms. */
mlxn_status mlxn_kv_cache_parse(const char *name, mlxn_session_params *p);
#define MLXN_KV_TQ_DEFAULT_BITS 8


/* A fresh session (empty cache) on model m; params may be NULL. The model
 * must outlive its sessions. */
mlxn_status mlxn_session_new(mlxn_model *m, const mlxn_session_params *params, mlxn_session **out);
void mlxn_session_free(mlxn_session *s);

/* KV cache bytes one position costs in this session, summed over layers:
 * dense 2 x n_kv_heads x head_dim x the element size per layer,
 * TurboQuant mlxn_tq_bytes_per_token (codes and norms of K and V). */
size_t mlxn_session_kv_bytes_per_token(const mlxn_session *s);

/* Tokens the session holds (the position of the next token). */
int64_t mlxn_session_position(const mlxn_session *s);
/* Forget every token (keeps the allocated cache for reuse). */
void mlxn_session_reset(mlxn_session *s);
/* Keep only the first n tokens, so a shared prefix is not recomputed. A
 * sliding-window layer keeps a bounded history; when the positions it would
 * need are gone the call fails with MLXN_ERR_UNSUPPORTED and changes
 * nothing (reset and run the prefix again). */
mlxn_status mlxn_session_truncate(mlxn_session *s, int64_t n);

typedef enum mlxn_logits_mode {
    MLXN_LOGITS_NONE = 0, /* only fill the cache */
    MLXN_LOGITS_LAST,     /* logits of the last token: [vocab] */
    MLXN_LOGITS_ALL,      /* logits of every token: [n, vocab] */
} mlxn_logits_mode;

/* Run n tokens (ids in [0, vocab)) after what the session holds, in chunks
 * of prefill_chunk, appending them to the cache. logits: host memory of
 * the size `mode` says (NULL with MLXN_LOGITS_NONE). On failure the
 * session goes back to the position it had before the call (or is reset,
 * when a sliding-window layer has already dropped what that needs).
 * With MLXN_LOGITS_LAST, logits may be NULL: the logits then stay in the
 * session's buffer on its device (mlxn_session_logits) and the call
 * returns as soon as the work is queued, without waiting for it or copying
 * vocab floats back; a GPU decode loop samples there (mlxn_sample on the
 * session's stream) and reads back only the token. A device error of that work is reported by
 * the next wait on the stream (the token's read, or the next call on the
 * session), and the session keeps the new position. */
mlxn_status mlxn_session_forward(mlxn_session *s, const int32_t *tokens, int64_t n, mlxn_logits_mode mode,
                                 float *logits);

/* The logits of the last token the last mlxn_session_forward call computed
 * with MLXN_LOGITS_LAST, as a view (f32 [vocab]) of the session's buffer on
 * its device: valid until the next call on the session. A GPU decode loop
 * samples there (mlxn_sample) and reads back only the token id. */
mlxn_status mlxn_session_logits(mlxn_session *s, mlxn_tensor *out);

/* Decode with the token kept on the device (fixed KV layout: a GPU
 * session's default). mlxn_session_token_slot gives the i32 [1] tensor, on
 * the session's device, that mlxn_session_forward_next reads its token
 * from; mlxn_sample into it on the session's stream. mlxn_session_forward_next
 * then runs one token after what the session holds, as
 * mlxn_session_forward(s, &token, 1, MLXN_LOGITS_LAST, NULL) would with
 * the token the slot holds when the step runs: it queues the step and
 * returns without waiting for earlier work, the logits left on the device
 * (mlxn_session_logits). So a decode loop can queue step t + 1 (and its
 * sampling) before token t reaches the host, and the GPU never waits for
 * the host between steps. The slot is also where mlxn_session_forward puts
 * a single host token, so read a sampled token from it (or copy it away)
 * before the next step's sampling overwrites it. An id outside [0, vocab)
 * in the slot is a device error, reported by the next wait on the stream.
 * On failure the session goes back to its position before the call (or is
 * reset, as mlxn_session_forward says). */
mlxn_status mlxn_session_token_slot(mlxn_session *s, mlxn_tensor *out);
mlxn_status mlxn_session_forward_next(mlxn_session *s);

#ifdef __cplusplus
}
#endif
#endif

/* The model runner's private structures.
 *
 * One configuration struct (mlxn_model_config) describes every supported
 * architecture: what differs between llama, qwen2/3 and gemma3 is data
 * (norm offset, q/k norms, sandwich norms, MLP activation, biases, scales,
 * per-layer window and rope). An architecture is therefore a table entry
 * (src/model/arch_*.c) whose parse hook fills this struct from config.json;
 * the one transformer block (block.c) reads it. Adding an architecture that
 * fits this block is a short file plus one line in arch.c. */
#ifndef MLXN_MODEL_INTERNAL_H
#define MLXN_MODEL_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>

#include "mlxn/model.h"
#include "mlxn/ops.h"
#include "mlxn/safetensors.h"

/* ---- configuration -------------------------------------------------------- */

typedef enum model_rope_kind {
    ROPE_DEFAULT = 0, /* theta base, positions times `scale` (linear scaling: 1/factor) */
    ROPE_FREQS,       /* explicit per-pair frequencies (llama3 scaling) */
} model_rope_kind;

typedef struct model_rope {
    model_rope_kind kind;
    float base;
    float scale;     /* ROPE_DEFAULT */
    float *freqs;    /* ROPE_FREQS: host [dims/2], owned by the config */
    bool traditional;
} model_rope;

typedef struct model_layer_cfg {
    int window;      /* > 0: sliding-window attention over this many keys (rotating cache) */
    model_rope rope; /* rope of this layer (gemma3: local vs global) */
} model_layer_cfg;

typedef struct mlxn_model_config {
    char arch[32];        /* canonical architecture name */
    char model_type[64];  /* config.json's model_type */
    char prefix[32];      /* tensor-name prefix: "" or "language_model." */
    int vocab, hidden, n_layers, n_heads, n_kv_heads, head_dim, inter;
    int max_pos;          /* max_position_embeddings, 0 = none */
    float norm_eps;
    float norm_offset;    /* 0, or 1 for Gemma's (1 + w) RMSNorm */
    float attn_scale;     /* multiplies q.k */
    float embed_scale;    /* 0 = none; Gemma: sqrt(hidden) rounded to bf16 */
    bool qk_norm;         /* per-head RMSNorm of q and k before rope */
    bool sandwich_norms;  /* Gemma: post-attention and pre/post-feedforward norms */
    bool gelu_mlp;        /* gelu(tanh) gate (GeGLU) instead of SwiGLU */
    bool q_bias, k_bias, v_bias, o_bias, mlp_bias;
    bool tied;            /* the head is the embedding */
    bool tie_from_files;  /* Gemma: tied unless the files hold lm_head.weight */
    model_layer_cfg *layers; /* [n_layers] */
} mlxn_model_config;

/* ---- architectures -------------------------------------------------------- */

typedef struct model_arch {
    const char *name;             /* canonical model_type */
    const char *const *aliases;   /* other model_type values that map here (NULL-terminated), or NULL */
    /* Fill c from the parsed config.json (root) for this architecture. The
     * common helpers below read keys with defaults and name missing ones. */
    mlxn_status (*parse)(const json_t *root, const char *path, mlxn_model_config *c);
} model_arch;

extern const model_arch model_arch_llama;
extern const model_arch model_arch_qwen2;
extern const model_arch model_arch_qwen3;
extern const model_arch model_arch_gemma3_text;
extern const model_arch model_arch_gemma3;

/* The architecture for a model_type, or NULL. */
const model_arch *model_arch_find(const char *model_type);
/* "llama, mistral, qwen2, ..." */
const char *model_arch_list(void);

/* config.json readers: `path` names the file in messages. A key that is
 * absent takes `def` unless `required`; a key of the wrong type is an error. */
mlxn_status cfg_int(const json_t *o, const char *path, const char *key, int def, bool required, int *out);
mlxn_status cfg_float(const json_t *o, const char *path, const char *key, double def, bool required,
                      double *out);
mlxn_status cfg_bool(const json_t *o, const char *path, const char *key, bool def, bool *out);
/* The common shape keys (hidden_size, num_hidden_layers, intermediate_size,
 * num_attention_heads, num_key_value_heads (default = heads), vocab_size,
 * rms_norm_eps, max_position_embeddings) and allocation of c->layers. */
mlxn_status cfg_common(const json_t *o, const char *path, mlxn_model_config *c, bool eps_required,
                       double eps_default);
/* The rope of config `o` with base `theta` and an optional rope_scaling
 * object (default, linear, llama3; others are MLXN_ERR_UNSUPPORTED). */
mlxn_status cfg_rope(const json_t *scaling, const char *path, int dims, double theta, bool traditional,
                     model_rope *out);
/* A copy of rope r (duplicating the freqs array). */
mlxn_status cfg_rope_copy(const model_rope *r, int dims, model_rope *out);
void cfg_free(mlxn_model_config *c);

/* ---- weights -------------------------------------------------------------- */

/* A linear layer y = x W^T (+ b), W logical [out, in], dense or quantized. */
typedef struct model_linear {
    int64_t in, out;
    bool quantized;
    mlxn_quant_params q;
    mlxn_tensor w;              /* dense [out, in] f32/f16/bf16, or u32 [out, in*bits/32] */
    mlxn_tensor scales, biases; /* quantized: [out, in/group]; biases affine only */
    bool has_bias;
    mlxn_tensor bias;           /* [out] */
} model_linear;

typedef struct model_layer {
    mlxn_tensor attn_norm;      /* input_layernorm [hidden] */
    mlxn_tensor mlp_norm;       /* post_attention_layernorm (llama) or pre_feedforward_layernorm (gemma) */
    mlxn_tensor post_attn_norm; /* gemma: post_attention_layernorm */
    mlxn_tensor post_mlp_norm;  /* gemma: post_feedforward_layernorm */
    mlxn_tensor q_norm, k_norm; /* [head_dim] when qk_norm */
    model_linear q, k, v, o;
    model_linear gate, up, down;
    /* Sibling projections fused at load (mlxn_model_params.fuse_projections),
     * so the block runs one matmul where it ran two or three: qkv's output
     * rows are q's, k's, v's in order ([n_heads*D + 2*n_kv_heads*D, hidden]),
     * gu's are gate's then up's ([2*inter, hidden]). When set, the parts
     * above keep their shapes and quantization but no tensors. */
    bool fused_qkv, fused_gu;
    model_linear qkv, gu;
    mlxn_tensor rope_freqs;     /* f32 [head_dim/2] on the device when the rope has freqs */
} model_layer;

struct cv_set;

struct mlxn_model {
    mlxn_device *dev;
    mlxn_weights *weights;      /* safetensors files, or NULL when `mem` holds the tensors */
    struct cv_set *mem;         /* an in-memory MLX model (a GGUF converted at load), or NULL */
    mlxn_weight_info *mem_info; /* [mem->n] views of mem's tensors, in name order */
    bool dry;                   /* check names, shapes and dtypes only (no device, no tensors) */
    bool fuse;                  /* fuse q/k/v and gate/up where they are quantized alike */
    mlxn_model_config cfg;
    mlxn_model_info info;
    model_linear embed;         /* [vocab, hidden]; also the head when tied */
    model_linear head;          /* lm_head when untied */
    mlxn_tensor final_norm;
    model_layer *layers;
    /* tensors this model allocated (weights copied to a non-host device,
       rope frequency tables); released on free */
    mlxn_tensor *owned;
    int n_owned, cap_owned;
    /* upload progress (mlxn_model_params.progress) */
    void (*progress)(void *user, int64_t done_bytes, int64_t total_bytes);
    void *progress_user;
    int64_t up_done, up_total;
};

/* Map every tensor of the architecture from m->weights (or m->mem) into m
 * (shapes, dtypes and quantization checked); quant is config["quantization"]
 * or NULL. */
mlxn_status model_bind_weights(mlxn_model *m, const char *dir, const json_t *quant, bool allow_unused);

/* The tensors a model reads: its safetensors files or its in-memory set. */
size_t model_src_count(const mlxn_model *m);
const mlxn_weight_info *model_src_at(const mlxn_model *m, size_t i);
const mlxn_weight_info *model_src_find(const mlxn_model *m, const char *name);
/* A tensor of the source on m->dev (zero-copy on the CPU). */
mlxn_status model_src_tensor(mlxn_model *m, const mlxn_weight_info *info, mlxn_tensor *out);
/* One fresh tensor on m->dev holding the rows of parts[0..n) in order
 * (same dtype and trailing dims; shapes only for a dry model). */
mlxn_status model_src_concat(mlxn_model *m, const mlxn_weight_info *const *parts, int n, mlxn_tensor *out);
/* Read tensors from an in-memory set (kept; freed with the model). */
mlxn_status model_src_set(mlxn_model *m, struct cv_set *set);
/* Remember a tensor the model must release. */
mlxn_status model_own(mlxn_model *m, const mlxn_tensor *t);

/* Check that an in-memory MLX model (config and tensors) is one this
 * runner accepts, exactly as loading it would, without a device. `label`
 * names it in messages. */
mlxn_status model_check_set(struct cv_set *set, const char *label);

/* ---- the forward pass ------------------------------------------------------ */

/* One layer's KV cache: keys/values of positions [start, start + len) in
 * buffers [n_kv_heads, cap, head_dim].
 *  - growing layout: in slots [0, len), in order. Full-attention layers
 *    keep start = 0 and grow; sliding-window layers drop their oldest keys
 *    (keeping at least window - 1) when they need room, as mlx-lm's
 *    RotatingKVCache does, so what attention sees is the same window.
 *  - fixed layout: allocated once. Full-attention layers: position p in
 *    slot p (cap = the context). Sliding-window layers (ring): cap = the
 *    window, position p in slot p % cap, start = max(0, end - cap). */
typedef struct model_kv {
    mlxn_tensor k, v; /* kv_dtype [n_kv_heads, cap, head_dim] */
    int64_t cap, start, len;
    bool ring;
} model_kv;

/* Scratch activations for chunks of up to `rows` tokens. */
typedef struct model_scratch {
    int64_t rows;
    mlxn_tensor ids;                    /* i32 [rows] */
    mlxn_tensor x, xn, o, mlp_out, tmp; /* f32 [rows, hidden] */
    mlxn_tensor q, qn, qr, att, att_t;  /* f32 [rows * n_heads * head_dim] */
    mlxn_tensor k, kn, kr, v;           /* f32 [rows * n_kv_heads * head_dim] */
    mlxn_tensor gate, up, act;          /* f32 [rows, inter] */
    mlxn_tensor qkv;                    /* f32 [rows, (n_heads + 2 n_kv_heads) * head_dim], fused models */
    mlxn_tensor gu;                     /* f32 [rows, 2 * inter], fused models */
    mlxn_tensor logits;                 /* f32 [rows, vocab] */
    /* fixed layout with sliding layers: a chunk's keys in order, after the
       window - 1 before it: kv_dtype [n_kv_heads, window - 1 + rows, head_dim] */
    mlxn_tensor ring_k, ring_v;
} model_scratch;

/* Keys a single-token step at position p attends over in a layer holding
 * cap slots: the smallest power of two >= max(p + 1, MODEL_SPAN_MIN),
 * capped at cap. Why: attention sizes its key splits on the span it is
 * given, not on kv_len (which only the device reads), so handing it the
 * whole preallocated capacity made every short-context step pay for a
 * full-context split and merge. A step's graph is captured once per span
 * bucket (model_step_bucket) and op-by-op steps use the same spans, so the
 * two give the same bits. The smallest span is 64 keys (one attention
 * tile): on CUDA, spans up to 128 keys are not split at all, where a
 * 256-key span cut the first 128 steps' few keys into 4 split blocks and
 * a cluster merge (an H100: Llama-3.2-1B tg128 1714 -> 1830 tok/s,
 * docs/perf.md); two more graphs are captured as a context grows. */
enum { MODEL_SPAN_MIN = 64, MODEL_SPAN_BUCKETS = 32 };
static inline int64_t model_step_span(int64_t p, int64_t cap) {
    int64_t b = MODEL_SPAN_MIN;
    while (b < p + 1) b *= 2;
    return b < cap ? b : cap;
}
static inline int model_step_bucket(int64_t p) {
    int k = 0;
    for (int64_t b = MODEL_SPAN_MIN; b < p + 1 && k < MODEL_SPAN_BUCKETS - 1; b *= 2) k++;
    return k;
}

/* The step block of a single-token step in the fixed layout, i32 on the
 * device (and its pinned host mirror): everything that changes from one
 * token to the next, so the ops of a step (and a graph of them) are the
 * same every token. */
enum { STEP_TOKEN = 0, STEP_POS = 1, STEP_LAYERS = 2 };
#define STEP_SLOT(l) (STEP_LAYERS + 2 * (l))    /* where layer l writes its K/V */
#define STEP_KV_LEN(l) (STEP_LAYERS + 2 * (l) + 1) /* keys layer l attends to: slots [0, len) */
#define STEP_SIZE(n_layers) (STEP_LAYERS + 2 * (n_layers))

struct mlxn_session {
    mlxn_model *m;
    mlxn_stream *st;
    int chunk;
    int64_t max_context;
    mlxn_dtype kv_dtype;
    int64_t pos;       /* tokens held */
    model_kv *kv;      /* [n_layers] */
    model_scratch sc;
    bool fixed;        /* fixed KV layout (mlxn_session_params.kv_layout) */
    bool step_mode;    /* the chunk being run is a single-token step reading step_dev */
    mlxn_tensor step_dev;  /* i32 [STEP_SIZE] on the device */
    int32_t *step_host;    /* [STEP_SIZE] pinned host memory */
    /* decode graphs */
    bool graphs;       /* enabled for this session */
    bool warm;         /* a step ran op by op since the scratch was (re)made */
    bool queued;       /* the last forward returned without waiting for its work (logits left on the
                          device): its step block and scratch may still be in use */
    void *graph[MODEL_SPAN_BUCKETS]; /* the captured step (with the head) per attention span
                                        bucket (model_step_span), or NULL */
    int64_t graph_replays;
    int64_t step_host_ns; /* host time spent queuing single-token steps (not waiting) */
    /* TurboQuant cache (session_tq.c), NULL when the session is dense */
    struct mlxn_tq_cache **tq; /* [n_layers] */
    int64_t *tq_hi;            /* [n_layers] one past the highest position appended since reset */
    struct mlxn_tq_cache *tq_chunk; /* fixed layout: where a chunk runs on a ring layer, or NULL */
};

/* Graph replays of session s so far (tests). */
int64_t model_session_graph_replays(const mlxn_session *s);
/* Host nanoseconds spent queuing single-token steps so far: filling the
 * step block and launching the graph, or queuing the ops one by one; the
 * wait for the device and the logits' download are not included. */
int64_t model_session_step_host_ns(const mlxn_session *s);

/* Run T = ids->shape[0] tokens at position s->pos through the model,
 * appending to the caches (the caller has made room). Logits of the rows
 * [first_logit_row, T) go to s->sc.logits rows [0, T - first_logit_row);
 * first_logit_row == T computes none. */
mlxn_status model_forward_chunk(mlxn_session *s, int64_t T, int64_t first_logit_row);

/* TurboQuant sessions (session_tq.c). model_tq_new validates and
 * allocates every layer's cache (nothing when p asks for a dense cache;
 * after the fixed layout's kv[] ring flags are set); model_tq_truncate_check
 * fails, changing nothing, when a sliding layer's ring no longer holds what
 * position n's query needs; model_tq_mark_written counts positions before
 * `end` as written in every layer (a replayed step runs no host code);
 * model_tq_attention ropes the chunk's queries and keys (q [Hq, T, D], k
 * [Hkv, T, D] views, under rope params rp) and appends its keys and values
 * (v [Hkv, T, D]) in one op (mlxn_tq_rope_append: qr [Hq, T, D] receives
 * the roped queries; q4 is qr as [1, Hq, T, D]) at s->pos, or at the
 * position in `at` (i32 [1] on the device: a single-token step) when
 * given, then runs attention of q4 into out [1, Hq, T, D]. */
mlxn_status model_tq_new(mlxn_session *s, const mlxn_session_params *p);
void model_tq_free(mlxn_session *s);
mlxn_status model_tq_truncate_check(const mlxn_session *s, int64_t n);
void model_tq_mark_written(mlxn_session *s, int64_t end);
mlxn_status model_tq_attention(mlxn_session *s, int l, const mlxn_tensor *q, const mlxn_tensor *k,
                               const mlxn_tensor *v, const mlxn_rope_params *rp, mlxn_tensor *qr,
                               const mlxn_tensor *q4, const mlxn_tensor *at, mlxn_tensor *out);
size_t model_tq_bytes_per_token(const mlxn_session *s);

/* Make room for T more tokens in every layer's cache. */
mlxn_status model_kv_reserve(mlxn_session *s, int64_t T);

#endif

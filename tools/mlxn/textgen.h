/* What `mlxn generate`, `chat`, `tokenize` and `bench model` share:
 * opening a device, a model and its tokenizer (an MLX model directory or
 * a .gguf file) with messages that say what to do; rendering a prompt
 * through the chat template; and the generation loop (prefix reuse in the
 * KV cache, sampling, stop tokens, streamed text, Ctrl-C, statistics). */
#ifndef MLXN_TOOL_TEXTGEN_H
#define MLXN_TOOL_TEXTGEN_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "mlxn/mlxn.h"
#include "options.h"

/* The options every model command has (embedded in each command's struct). */
typedef struct tg_model_opts {
    const char *model;  /* directory or .gguf */
    const char *device; /* "cpu", "cuda", "cuda:N" */
    int threads;        /* 0: one per core */
    int ctx_size;       /* 0: the model's max_position_embeddings */
    int kv_dtype;       /* index in TG_KV_CHOICES (the older form of --kv-cache) */
    const char *kv_cache; /* --kv-cache: f32, f16, bf16, tq, tq2..tq8, kXvY (mlxn_kv_cache_parse) */
    int prefill_chunk;  /* 0: 512 */
    int fuse;           /* index in TG_FUSE_CHOICES: mlxn_model_params.fuse_projections 0, 1, -1 */
    int kv_layout;      /* index in TG_LAYOUT_CHOICES: mlxn_session_params.kv_layout 0, 1, 2 */
    int float_activations; /* --float-activations: mlxn_device_params.float_activations */
    int isa;            /* --isa: index in "auto|scalar|avx2|avx512" = mlxn_cpu_isa */
} tg_model_opts;

#define TG_LAYOUT_CHOICES "auto|growing|fixed"

#define TG_FUSE_CHOICES "auto|on|off"

#define TG_KV_CHOICES "auto|f32|bf16|f16"

/* Table rows for tg_model_opts inside struct T at member M. */
#define TG_MODEL_ROWS(T, M)                                                                                      \
    {"model", 'm', OPT_STRING, offsetof(T, M.model), "PATH",                                                  \
     "The model: an MLX model directory (config.json + *.safetensors, as mlx-lm and `mlxn convert` write) "   \
     "or a .gguf file.", NULL, 0, 0, NULL},                                                                     \
    {"device", 0, OPT_STRING, offsetof(T, M.device), "DEV", "Where to run: cpu, cuda or cuda:N.", "cpu", 0, 0, \
     NULL},                                                                                                     \
    {"threads", 't', OPT_INT, offsetof(T, M.threads), "N", "CPU worker threads (0: one per core).", "0", 0,   \
     4096, NULL},                                                                                               \
    {"isa", 0, OPT_CHOICE, offsetof(T, M.isa), "I",                                                           \
     "CPU: cap the instruction set (auto: the best this processor has).", "auto", 0, 0,                       \
     "auto|scalar|avx2|avx512"},                                                                                \
    {"ctx-size", 'c', OPT_INT, offsetof(T, M.ctx_size), "N",                                                  \
     "Context length: the most positions the KV cache may hold (0: the model's max_position_embeddings).",    \
     "0", 0, 1 << 24, NULL},                                                                                    \
    {"kv-dtype", 0, OPT_CHOICE, offsetof(T, M.kv_dtype), "T",                                                 \
     "Element type of the KV cache: auto is f32 on the CPU, bf16 on a GPU (bf16/f16 halve its memory).",    \
     "auto", 0, 0, TG_KV_CHOICES},               \
    {"kv-cache", 0, OPT_STRING, offsetof(T, M.kv_cache), "KIND",                                              \
     "The KV cache: dense f32, f16 or bf16, or TurboQuant (docs/turboquant.md): tq2..tq8 (keys and values "    \
     "in 2..8 bits), kXvY (keys X bits, values Y bits, e.g. k4v8), tq (tq8). TurboQuant needs a head_dim "     \
     "that is a power of two in 64..512.", "--kv-dtype", 0, 0, NULL},                                                 \
    {"prefill-chunk", 0, OPT_INT, offsetof(T, M.prefill_chunk), "N",                                          \
     "Prompt tokens per forward pass (0: 512).", "0", 0, 1 << 20, NULL},                                       \
    {"fuse", 0, OPT_CHOICE, offsetof(T, M.fuse), "WHEN",                                                      \
     "Run each layer's q/k/v projections as one matmul and gate/up as another, where they are quantized "    \
     "alike (weights stacked at load: exact; extra memory on the CPU). auto: the device's default (on).",    \
     "auto", 0, 0, TG_FUSE_CHOICES},                                                                            \
    {"kv-layout", 0, OPT_CHOICE, offsetof(T, M.kv_layout), "L",                                               \
     "How the KV cache is allocated. growing: in steps as it fills; fixed: once, for all of --ctx-size (set "  \
     "it), which lets decode replay captured GPU graphs and take each next token on the device. auto: fixed " \
     "on a GPU when the context is bounded, else growing.",                                                    \
     "auto", 0, 0, TG_LAYOUT_CHOICES},                                                                          \
    {"float-activations", 0, OPT_FLAG, offsetof(T, M.float_activations), NULL,                                \
     "CPU: keep x in f32 in every quantized matmul, so products are float-exact as MLX computes them, and "  \
     "TurboQuant attention in f32. By default decode's mat-vecs round x to 16 bits per group and work in "    \
     "integers (2-3x faster without AVX-512; relative error ~1e-5 to 1e-4 per product), and decode works "   \
     "on a TurboQuant cache's 4-bit keys and values in 16-bit integers (AVX2 or AVX-512; attention output "  \
     "within ~1e-6 NMSE).",                                                                                    \
     NULL, 0, 0, NULL}

/* The opened model. */
typedef struct tg_ctx {
    const char *cmd;          /* "generate", for messages */
    mlxn_device *dev;
    mlxn_model *model;        /* NULL when only the tokenizer was opened */
    mlxn_session *session;
    mlxn_tokenizer *tok;
    mlxn_gguf *gguf;          /* the .gguf the tokenizer came from, or NULL */
    const mlxn_model_info *info;
    int64_t ctx;              /* most positions the session holds (0: unbounded) */
    int chunk;                /* prefill chunk */
    double load_s;            /* wall time to open everything */
    size_t kv_bytes_per_token;
    const char *kv_name;      /* "f32", "tq4", "k4v8", ... */
    float *logits;            /* [vocab] */
    int32_t *held;            /* [n_held] the tokens in the session's cache */
    int64_t n_held, cap_held;
    mlxn_chat_format chat;    /* from the template (or --chat-format) */
    /* sampling on the model's device (mlxn_sample on the session's logits,
       4 bytes back) instead of the host sampler; see --sampler */
    int dev_sampling;
    mlxn_sample_params dev_sample;
    uint64_t dev_draws;       /* random draws so far (temperature > 0) */
    mlxn_tensor dev_token;    /* i32 [1] on dev */
    /* decode with each token's read overlapping the next step (device
       sampling on a fixed-layout session, a GPU's default): the sampler
       writes the session's token slot, mlxn_session_forward_next reads it
       there, and two readers in turn bring the tokens back */
    int overlap;
    mlxn_tensor slot;         /* i32 [1]: the session's token slot */
    mlxn_reader *reader[2];
    int reading[2];           /* reader i has a read pending */
} tg_ctx;

/* The KV cache kind of --kv-cache / --kv-dtype into sp (its name, for
 * messages, into *name). Prints the error and returns non-zero (2) for an
 * unknown kind or a conflict between the two flags. */
int tg_kv_cache(const char *cmd, mlxn_device *dev, const tg_model_opts *o, mlxn_session_params *sp, const char **name);

/* Open the tokenizer and, when with_model, the device, model and one
 * session; with_model == TG_OPEN_MODEL_ONLY opens no tokenizer (timing
 * needs none, and random-weight models have none). Prints the error
 * (naming what to do) and returns non-zero on failure; tg_close is safe
 * either way. */
#define TG_OPEN_MODEL_ONLY 2
int tg_open(tg_ctx *c, const char *cmd, const tg_model_opts *o, int with_model);
void tg_close(tg_ctx *c);

/* Pick the chat format: `name` (--chat-format) when given, else detected
 * from the tokenizer's template (a warning on stderr when it is unknown).
 * Returns non-zero after printing an error for an unknown name. */
int tg_pick_chat(tg_ctx *c, const char *name);

/* Encode text (validated as UTF-8; the error names the byte). chat:
 * render [system,] user through the template with the generation prompt
 * first. Prints the error and returns non-zero on failure. */
int tg_encode_prompt(tg_ctx *c, const char *text, size_t len, int chat, const char *system, int32_t **ids,
                     size_t *n);

/* Read all of a stream (stdin) into a NUL-terminated buffer. */
char *tg_read_all(FILE *f, size_t *len);
char *tg_read_file(const char *path, size_t *len);

/* Sampling flags (embedded in generate's and chat's structs). */
typedef struct tg_sample_opts {
    float temp, top_p, min_p;
    int top_k, min_tokens_to_keep;
    float repetition_penalty, presence_penalty, frequency_penalty;
    int repetition_context_size, presence_context_size, frequency_context_size;
    opt_list logit_bias;
    uint64_t seed;
    int where;          /* index in TG_SAMPLER_CHOICES */
} tg_sample_opts;

#define TG_SAMPLER_CHOICES "auto|host|device"


#define TG_SAMPLE_ROWS(T, M)                                                                                    \
    {"temp", 0, OPT_FLOAT, offsetof(T, M.temp), "T", "Sampling temperature; 0 is greedy (argmax).", "0", 0,  \
     OPT_NO_MAX, NULL},                                                                                               \
    {"top-k", 0, OPT_INT, offsetof(T, M.top_k), "K", "Keep the K most likely tokens (0: off).", "0", 0,       \
     1 << 30, NULL},                                                                                           \
    {"top-p", 0, OPT_FLOAT, offsetof(T, M.top_p), "P",                                                       \
     "Nucleus sampling: keep the most likely tokens whose probabilities add up to P (1: off).", "1", 0, 1,   \
     NULL},                                                                                                    \
    {"min-p", 0, OPT_FLOAT, offsetof(T, M.min_p), "P",                                                       \
     "Drop tokens less likely than P times the most likely one (0: off).", "0", 0, 1, NULL},                 \
    {"min-tokens-to-keep", 0, OPT_INT, offsetof(T, M.min_tokens_to_keep), "N",                               \
     "Tokens --min-p always keeps.", "1", 1, 1 << 30, NULL},                                                  \
    {"repetition-penalty", 0, OPT_FLOAT, offsetof(T, M.repetition_penalty), "F",                             \
     "Divide positive (multiply negative) logits of recent tokens by F (0 or 1: off).", "0", 0, OPT_NO_MAX, NULL},   \
    {"repetition-context-size", 0, OPT_INT, offsetof(T, M.repetition_context_size), "N",                     \
     "Recent tokens --repetition-penalty looks at.", "20", 1, 1 << 30, NULL},                                \
    {"presence-penalty", 0, OPT_FLOAT, offsetof(T, M.presence_penalty), "F",                                 \
     "Subtract F from the logits of tokens present in the recent context (0: off).", "0", -1e6, 1e6, NULL},   \
    {"presence-context-size", 0, OPT_INT, offsetof(T, M.presence_context_size), "N",                         \
     "Recent tokens --presence-penalty looks at.", "20", 1, 1 << 30, NULL},                                  \
    {"frequency-penalty", 0, OPT_FLOAT, offsetof(T, M.frequency_penalty), "F",                               \
     "Subtract F times its count in the recent context from each token's logit (0: off).", "0", -1e6, 1e6,   \
     NULL},                                                                                                    \
    {"frequency-context-size", 0, OPT_INT, offsetof(T, M.frequency_context_size), "N",                       \
     "Recent tokens --frequency-penalty looks at.", "20", 1, 1 << 30, NULL},                                 \
    {"logit-bias", 0, OPT_LIST, offsetof(T, M.logit_bias), "ID=BIAS",                                        \
     "Add BIAS to token ID's logit; repeat the option or separate pairs by commas.", NULL, 0, 0, NULL},      \
    {"seed", 0, OPT_U64, offsetof(T, M.seed), "N", "Seed of the sampler's random numbers.",                  \
     "from the clock (printed with the statistics)", 0, 0, NULL},                                              \
    {"sampler", 0, OPT_CHOICE, offsetof(T, M.where), "WHERE",                                                 \
     "Where tokens are picked: device (the sampling op on the model's device: only the token id comes back "  \
     "each step; penalties and logit bias are host-only), host (the host sampler), or auto (device on a GPU " \
     "when no penalty or logit bias is set, else host). Both draw the same tokens for the same seed.",        \
     "auto", 0, 0, TG_SAMPLER_CHOICES}

void tg_sample_defaults(tg_sample_opts *s);
/* Build the sampler (seed from the clock when not given). Prints the error. */
int tg_make_sampler(tg_ctx *c, const tg_sample_opts *s, int seed_given, mlxn_sampler **out, uint64_t *seed_used);

/* Set by SIGINT while tg_interrupt_install is in force; checked per token. */
extern volatile sig_atomic_t tg_interrupted;
/* Install a SIGINT handler that sets tg_interrupted (no SA_RESTART, so a
 * blocked read returns EINTR). */
void tg_interrupt_install(void);

typedef struct tg_gen_opts {
    int max_tokens;
    int ignore_eos;
    const int32_t *stop_ids;
    size_t n_stop;
    mlxn_sampler *sampler;
    FILE *out;       /* the streamed text; NULL: nothing written */
    int keep_text;   /* collect the text into tg_stats.text */
} tg_gen_opts;

typedef struct tg_stats {
    int64_t n_prompt, n_reused;  /* prompt tokens; of them already in the cache */
    double prompt_s;
    int64_t n_gen;               /* tokens generated (stop token not counted) */
    int64_t n_decode;            /* one-token forward passes they took */
    double gen_s;                /* time from the prompt's logits to the end */
    const char *stop;            /* "eos", "max-tokens", "context", "interrupted" */
    char *text;                  /* keep_text: the generated text (malloc'ed) */
    size_t text_len;
} tg_stats;

/* Run the prompt (reusing the longest prefix the session already holds)
 * and generate. Returns 0, or prints the error and returns non-zero. */
int tg_generate(tg_ctx *c, const int32_t *prompt, int64_t n, const tg_gen_opts *g, tg_stats *st);

/* The statistics lines on stderr. */
void tg_print_stats(const tg_ctx *c, const tg_stats *st, uint64_t seed, int sampled);
/* Peak resident memory of the process in bytes (getrusage). */
double tg_peak_rss(void);

#endif

/* Text in, text out: the tokenizer, chat templates and the sampler.
 *
 * Tokenizer. Loaded from a Hugging Face tokenizer.json (+ the optional
 * tokenizer_config.json and chat_template.jinja beside it), or built from
 * a GGUF file's tokenizer.ggml.* metadata. It implements the BPE model of
 * the `tokenizers` library with the pieces the supported families use:
 *   - byte-level BPE (GPT-2 / Llama-3 / Qwen / SmolLM): the ByteLevel and
 *     Split pre-tokenizers (their regexes run by PCRE2), Digits;
 *   - SentencePiece-style BPE (Llama-2 / Gemma): Prepend / Replace
 *     normalizers or the Metaspace pre-tokenizer, "<0xXX>" byte fallback;
 *   - NFC / NFD / NFKC / NFKD (utf8proc), Lowercase, Strip normalizers;
 *   - ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip decoders;
 *   - added tokens (matched before normalization and pre-tokenization,
 *     leftmost-longest, honouring special / lstrip / rstrip / single_word /
 *     normalized), TemplateProcessing / Roberta / Bert post-processors.
 * Anything else in a tokenizer.json (WordPiece, Unigram, a precompiled
 * charsmap, ...) is MLXN_ERR_UNSUPPORTED with a message naming it.
 * Encoding and decoding give the ids and text of `tokenizers` (tested on a
 * corpus against its output). Text must be valid UTF-8: anything else is
 * MLXN_ERR_INVALID_ARGUMENT naming the byte offset.
 *
 * A tokenizer is immutable after loading except for an internal cache of
 * encoded words guarded by a mutex: one tokenizer may be shared by threads.
 *
 * Chat templates. The chat formats of the supported families are rendered
 * in C (no Jinja engine). A model's chat_template is recognized by its
 * distinctive text; an unknown template gets MLXN_CHAT_PLAIN and a warning.
 *
 * Sampler. The logits processors and sampling filters of mlx-lm
 * (mlx_lm/sample_utils.py), in its order, with a seeded generator owned by
 * each sampler. */
#ifndef MLXN_TEXT_H
#define MLXN_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "mlxn/gguf.h"
#include "mlxn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Tokenizer                                                            */
/* ------------------------------------------------------------------ */
typedef struct mlxn_tokenizer mlxn_tokenizer;

/* `path` is a model directory (reads tokenizer.json, and
 * tokenizer_config.json / chat_template.jinja when present) or the path of
 * a tokenizer.json file (its directory is searched for the others). */
mlxn_status mlxn_tokenizer_load(const char *path, mlxn_tokenizer **out);
/* The same from memory. `name` appears in error messages; config_json may
 * be NULL (config_len is then ignored). */
mlxn_status mlxn_tokenizer_load_json(const char *name, const char *json, size_t json_len,
                                     const char *config_json, size_t config_len,
                                     mlxn_tokenizer **out);
/* From a GGUF file's metadata: tokenizer.ggml.model "gpt2" (byte-level BPE;
 * tokenizer.ggml.pre picks the split regex) or "llama" (SentencePiece BPE
 * with byte fallback; merges derived from the scores, or for Gemma from the
 * token order, as transformers does). Control tokens become special added
 * tokens, user-defined ones plain added tokens. */
mlxn_status mlxn_tokenizer_from_gguf(const mlxn_gguf *g, mlxn_tokenizer **out);
void mlxn_tokenizer_free(mlxn_tokenizer *t);

enum {
    /* Run the post-processor (e.g. prepend BOS), as encode(add_special_tokens=True). */
    MLXN_TOKENIZE_ADD_SPECIAL = 1u << 0,
    /* Do not match special added tokens in the text (their text is then
     * tokenized as ordinary text), as encode_special_tokens=True. */
    MLXN_TOKENIZE_SPLIT_SPECIAL = 1u << 1,
};

/* Encode `len` bytes of UTF-8. *ids is malloc'ed (free() it), *n_ids its
 * length; an empty text gives *ids == NULL (or an allocation) and 0 ids. */
mlxn_status mlxn_tokenizer_encode(const mlxn_tokenizer *t, const char *text, size_t len,
                                  unsigned flags, int32_t **ids, size_t *n_ids);
/* Decode ids to UTF-8 (invalid byte sequences become U+FFFD as in
 * `tokenizers`; unknown ids are skipped). *text is malloc'ed and
 * NUL-terminated; len (optional) receives its byte length. */
mlxn_status mlxn_tokenizer_decode(const mlxn_tokenizer *t, const int32_t *ids, size_t n_ids,
                                  int skip_special, char **text, size_t *len);

/* One more than the largest id (model vocabulary and added tokens). */
size_t mlxn_tokenizer_vocab_size(const mlxn_tokenizer *t);
/* The token's string as stored (byte-level or "▁" spelling); NULL for an
 * id with no token. Valid until mlxn_tokenizer_free. */
const char *mlxn_tokenizer_id_to_token(const mlxn_tokenizer *t, int32_t id);
/* -1 when absent. Added tokens are looked up first. */
int32_t mlxn_tokenizer_token_to_id(const mlxn_tokenizer *t, const char *token);
/* 1 for an added token marked special (skipped by skip_special). */
int mlxn_tokenizer_is_special(const mlxn_tokenizer *t, int32_t id);
/* BOS / EOS ids from tokenizer_config.json or GGUF metadata; -1 if none. */
int32_t mlxn_tokenizer_bos_id(const mlxn_tokenizer *t);
int32_t mlxn_tokenizer_eos_id(const mlxn_tokenizer *t);
/* The BOS / EOS token text ("" when none). */
const char *mlxn_tokenizer_bos_token(const mlxn_tokenizer *t);
const char *mlxn_tokenizer_eos_token(const mlxn_tokenizer *t);
/* The raw chat template (tokenizer_config.json's chat_template, a
 * chat_template.jinja file, or tokenizer.chat_template in GGUF); NULL if
 * none. */
const char *mlxn_tokenizer_chat_template(const mlxn_tokenizer *t);

/* Streaming decode: push ids one at a time and receive the text they
 * complete. Text is released only when it ends on a whole UTF-8 character
 * (never a partial sequence), following `tokenizers`' DecodeStream: the
 * pieces pushed so far concatenate to mlxn_tokenizer_decode of all ids
 * (when no id decodes to U+FFFD). The returned pointer is valid until the
 * next call on the stream. */
typedef struct mlxn_detokenizer mlxn_detokenizer;
mlxn_status mlxn_detokenizer_new(const mlxn_tokenizer *t, int skip_special, mlxn_detokenizer **out);
mlxn_status mlxn_detokenizer_push(mlxn_detokenizer *d, int32_t id, const char **text, size_t *len);
/* Release whatever is held back (possibly ending in U+FFFD) and reset. */
mlxn_status mlxn_detokenizer_flush(mlxn_detokenizer *d, const char **text, size_t *len);
void mlxn_detokenizer_free(mlxn_detokenizer *d);

/* ------------------------------------------------------------------ */
/* Chat templates                                                       */
/* ------------------------------------------------------------------ */
typedef enum mlxn_chat_format {
    MLXN_CHAT_PLAIN = 0,   /* no template: contents joined by blank lines */
    MLXN_CHAT_CHATML,      /* <|im_start|>role\n...<|im_end|>\n, no default system */
    MLXN_CHAT_SMOLLM,      /* ChatML + SmolLM2's default system prompt */
    MLXN_CHAT_QWEN2,       /* ChatML + "You are a helpful assistant." */
    MLXN_CHAT_QWEN25,      /* ChatML + Qwen2.5's default system prompt */
    MLXN_CHAT_LLAMA3,      /* Llama 3.0: headers, trimmed contents, <|eot_id|> */
    MLXN_CHAT_LLAMA31,     /* Llama 3.1/3.3: plus the system header; date "26 Jul 2024" */
    MLXN_CHAT_LLAMA32,     /* Llama 3.2: the same; date = today (strftime_now) */
    MLXN_CHAT_GEMMA,       /* Gemma 2/3: <start_of_turn>user/model, system folded into the first user turn */
} mlxn_chat_format;

typedef struct mlxn_chat_message {
    const char *role;      /* "system", "user" or "assistant" */
    const char *content;   /* UTF-8, NUL-terminated */
} mlxn_chat_message;

/* Recognize a chat template by its distinctive text. NULL or an unknown
 * template gives MLXN_CHAT_PLAIN; *warning (optional) then receives a
 * static sentence saying so (NULL when the template was recognized). */
mlxn_chat_format mlxn_chat_detect(const char *chat_template, const char **warning);
/* "plain", "chatml", "smollm", "qwen2", "qwen2.5", "llama3", "llama3.1", "llama3.2", "gemma". */
const char *mlxn_chat_format_name(mlxn_chat_format f);
mlxn_status mlxn_chat_format_from_name(const char *name, mlxn_chat_format *out);

typedef struct mlxn_chat_params {
    mlxn_chat_format format;
    /* The text written where a template writes bos_token (Llama 3, Gemma);
     * NULL = the family's usual token ("<|begin_of_text|>", "<bos>"). */
    const char *bos_token;
    int add_generation_prompt;
    /* Llama 3.1+: the "Today Date:" text; NULL = the template's default
     * ("26 Jul 2024" for 3.1, today's date as "%d %b %Y" for 3.2, as
     * transformers' strftime_now gives it). */
    const char *date_string;
} mlxn_chat_params;

/* Render the conversation. *out is malloc'ed and NUL-terminated; len
 * optional. The rendered text already holds BOS where the template writes
 * it: encode it without MLXN_TOKENIZE_ADD_SPECIAL. A role the format does
 * not accept (or Gemma's roles not alternating) is
 * MLXN_ERR_INVALID_ARGUMENT. */
mlxn_status mlxn_chat_render(const mlxn_chat_params *p, const mlxn_chat_message *msgs, size_t n_msgs,
                             char **out, size_t *len);
/* The token strings that end an assistant turn in this format, NULL
 * terminated (e.g. {"<|im_end|>", "<|endoftext|>", NULL}). */
const char *const *mlxn_chat_stop_strings(mlxn_chat_format f);
/* The ids generation stops at: the tokenizer's EOS plus the format's stop
 * tokens present in the vocabulary, without repeats. Writes at most `cap`
 * ids and returns how many there are. */
size_t mlxn_tokenizer_stop_ids(const mlxn_tokenizer *t, mlxn_chat_format f, int32_t *ids, size_t cap);

/* ------------------------------------------------------------------ */
/* Sampler                                                              */
/* ------------------------------------------------------------------ */
typedef struct mlxn_sampler mlxn_sampler;

/* Zero-initialized means greedy with no penalties. A *_context_size of 0
 * means mlx-lm's default, 20. */
typedef struct mlxn_sampler_params {
    float temperature;          /* 0 = greedy (argmax) */
    int top_k;                  /* 0 = off; >= vocab keeps everything */
    float top_p;                /* applied when 0 < top_p < 1 */
    float min_p;                /* 0 = off, else in (0, 1] */
    int min_tokens_to_keep;     /* for min_p; 0 means 1 */
    float repetition_penalty;   /* 0 = off (1 is a no-op) */
    int repetition_context_size;
    float presence_penalty;     /* 0 = off */
    int presence_context_size;
    float frequency_penalty;    /* 0 = off */
    int frequency_context_size;
    const int32_t *logit_bias_ids;   /* [n_logit_bias] */
    const float *logit_bias_values;  /* [n_logit_bias] */
    size_t n_logit_bias;
    uint64_t seed;
} mlxn_sampler_params;

/* Validates the parameters against vocab_size (copies logit_bias). */
mlxn_status mlxn_sampler_new(const mlxn_sampler_params *p, int32_t vocab_size, mlxn_sampler **out);
void mlxn_sampler_free(mlxn_sampler *s);
/* Pick the next token. logits: [vocab_size], overwritten (penalties, then
 * log-softmax, then filters). history: the tokens so far (prompt and
 * generated), oldest first; only the last context_size count. */
mlxn_status mlxn_sampler_sample(mlxn_sampler *s, float *logits, const int32_t *history, size_t n_history,
                                int32_t *token);

/* The stages, exposed for tests and for callers that sample elsewhere. */
/* Logits processors in mlx-lm's order: logit_bias, repetition, presence, frequency. */
mlxn_status mlxn_sampler_apply_penalties(const mlxn_sampler *s, float *logits, const int32_t *history,
                                         size_t n_history);
/* Filters on log-probabilities in mlx-lm's order: top_p, min_p, top_k
 * (removed entries become -inf). Does nothing at temperature 0. */
mlxn_status mlxn_sampler_apply_filters(const mlxn_sampler *s, float *logprobs);

#ifdef __cplusplus
}
#endif
#endif

/* Chat templates of the supported families, rendered in C. Each renderer
 * reproduces the output of the family's Jinja template (as transformers'
 * apply_chat_template renders it) for text-only messages without tools;
 * tests compare against transformers' output. Templates are recognized by
 * their distinctive text rather than executed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include "mlxn/text.h"
#include "text/text_util.h"

static const char SMOLLM_SYSTEM[] = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
static const char QWEN2_SYSTEM[] = "You are a helpful assistant.";
static const char QWEN25_SYSTEM[] = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

mlxn_chat_format mlxn_chat_detect(const char *tmpl, const char **warning) {
    if (warning) *warning = NULL;
    if (!tmpl || !*tmpl) {
        if (warning) *warning = "the model has no chat template: the messages are joined as plain text";
        return MLXN_CHAT_PLAIN;
    }
    if (strstr(tmpl, "<|im_start|>")) {
        if (strstr(tmpl, "named SmolLM")) return MLXN_CHAT_SMOLLM;
        if (strstr(tmpl, "You are Qwen, created by Alibaba Cloud")) return MLXN_CHAT_QWEN25;
        if (strstr(tmpl, "You are a helpful assistant.<|im_end|>")) return MLXN_CHAT_QWEN2;
        return MLXN_CHAT_CHATML;
    }
    if (strstr(tmpl, "<|start_header_id|>") && strstr(tmpl, "<|eot_id|>")) {
        if (strstr(tmpl, "Cutting Knowledge Date")) return strstr(tmpl, "strftime_now") ? MLXN_CHAT_LLAMA32 : MLXN_CHAT_LLAMA31;
        return MLXN_CHAT_LLAMA3;
    }
    if (strstr(tmpl, "<start_of_turn>") && strstr(tmpl, "<end_of_turn>")) return MLXN_CHAT_GEMMA;
    if (warning) *warning = "the model's chat template is not one we recognize: the messages are joined as plain text";
    return MLXN_CHAT_PLAIN;
}

static const char *const NAMES[] = {"plain", "chatml", "smollm", "qwen2", "qwen2.5", "llama3", "llama3.1", "llama3.2", "gemma"};

const char *mlxn_chat_format_name(mlxn_chat_format f) {
    return (unsigned)f < sizeof NAMES / sizeof NAMES[0] ? NAMES[f] : "unknown";
}

mlxn_status mlxn_chat_format_from_name(const char *name, mlxn_chat_format *out) {
    if (!name || !out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "chat_format_from_name: NULL argument");
    for (unsigned i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++) {
        if (!strcmp(name, NAMES[i])) {
            *out = (mlxn_chat_format)i;
            return MLXN_OK;
        }
    }
    return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT,
                     "unknown chat format '%s' (known: plain, chatml, smollm, qwen2, qwen2.5, llama3, llama3.1, llama3.2, gemma)", name);
}

static const char *const STOP_CHATML[] = {"<|im_end|>", "<|endoftext|>", NULL};
static const char *const STOP_LLAMA[] = {"<|eot_id|>", "<|end_of_text|>", "<|eom_id|>", NULL};
static const char *const STOP_GEMMA[] = {"<end_of_turn>", "<eos>", NULL};
static const char *const STOP_NONE[] = {NULL};

const char *const *mlxn_chat_stop_strings(mlxn_chat_format f) {
    switch (f) {
    case MLXN_CHAT_CHATML: case MLXN_CHAT_SMOLLM: case MLXN_CHAT_QWEN2: case MLXN_CHAT_QWEN25: return STOP_CHATML;
    case MLXN_CHAT_LLAMA3: case MLXN_CHAT_LLAMA31: case MLXN_CHAT_LLAMA32: return STOP_LLAMA;
    case MLXN_CHAT_GEMMA: return STOP_GEMMA;
    default: return STOP_NONE;
    }
}

size_t mlxn_tokenizer_stop_ids(const mlxn_tokenizer *t, mlxn_chat_format f, int32_t *ids, size_t cap) {
    int32_t found[8];
    size_t n = 0;
    int32_t eos = mlxn_tokenizer_eos_id(t);
    if (eos >= 0) found[n++] = eos;
    for (const char *const *s = mlxn_chat_stop_strings(f); *s && n < 8; s++) {
        int32_t id = mlxn_tokenizer_token_to_id(t, *s);
        bool dup = false;
        for (size_t k = 0; k < n; k++) dup = dup || found[k] == id;
        if (id >= 0 && !dup) found[n++] = id;
    }
    for (size_t k = 0; k < n && k < cap; k++) ids[k] = found[k];
    return n;
}

/* Python's str.isspace (what Jinja's trim strips). */
static bool py_space(uint32_t cp) { return tx_is_whitespace(cp) || (cp >= 0x1C && cp <= 0x1F); }

static mlxn_status add_trimmed(tx_buf *b, const char *s) {
    size_t len = strlen(s), a = 0, e = len;
    while (a < e) {
        uint32_t cp;
        size_t k = tx_utf8_next(s + a, e - a, &cp);
        if (!py_space(cp)) break;
        a += k;
    }
    while (e > a) {
        size_t k = e - 1;
        while (k > a && ((uint8_t)s[k] & 0xC0) == 0x80) k--;
        uint32_t cp;
        tx_utf8_next(s + k, e - k, &cp);
        if (!py_space(cp)) break;
        e = k;
    }
    return tx_buf_add(b, s + a, e - a);
}

static mlxn_status cat(tx_buf *b, const char *a, const char *c, const char *d, const char *e) {
    MLXN_TRY(tx_buf_adds(b, a));
    if (c) MLXN_TRY(tx_buf_adds(b, c));
    if (d) MLXN_TRY(tx_buf_adds(b, d));
    if (e) MLXN_TRY(tx_buf_adds(b, e));
    return MLXN_OK;
}

static mlxn_status render_chatml(const mlxn_chat_params *p, const mlxn_chat_message *m, size_t n, tx_buf *b) {
    const char *def = p->format == MLXN_CHAT_SMOLLM ? SMOLLM_SYSTEM
                      : p->format == MLXN_CHAT_QWEN2 ? QWEN2_SYSTEM
                      : p->format == MLXN_CHAT_QWEN25 ? QWEN25_SYSTEM : NULL;
    /* SmolLM2 and Qwen2 insert the default inside the loop (so not for an
     * empty conversation); Qwen2.5 writes it before the loop. */
    bool has_system = n > 0 && !strcmp(m[0].role, "system");
    if (def && !has_system && (n > 0 || p->format == MLXN_CHAT_QWEN25))
        MLXN_TRY(cat(b, "<|im_start|>system\n", def, "<|im_end|>\n", NULL));
    for (size_t i = 0; i < n; i++) {
        MLXN_TRY(cat(b, "<|im_start|>", m[i].role, "\n", m[i].content));
        MLXN_TRY(tx_buf_adds(b, "<|im_end|>\n"));
    }
    if (p->add_generation_prompt) MLXN_TRY(tx_buf_adds(b, "<|im_start|>assistant\n"));
    return MLXN_OK;
}

static mlxn_status llama_turn(tx_buf *b, const char *role, const char *content) {
    MLXN_TRY(cat(b, "<|start_header_id|>", role, "<|end_header_id|>\n\n", NULL));
    MLXN_TRY(add_trimmed(b, content));
    return tx_buf_adds(b, "<|eot_id|>");
}

static mlxn_status render_llama(const mlxn_chat_params *p, const mlxn_chat_message *m, size_t n, tx_buf *b) {
    const char *bos = p->bos_token ? p->bos_token : "<|begin_of_text|>";
    if (p->format == MLXN_CHAT_LLAMA3) {
        /* Llama 3.0 writes BOS before the first message only. */
        for (size_t i = 0; i < n; i++) {
            if (i == 0) MLXN_TRY(tx_buf_adds(b, bos));
            MLXN_TRY(llama_turn(b, m[i].role, m[i].content));
        }
    } else {
        char today[64];
        const char *date = p->date_string;
        if (!date && p->format == MLXN_CHAT_LLAMA31) date = "26 Jul 2024";
        if (!date) {
            time_t now = time(NULL);
            struct tm tm;
            localtime_r(&now, &tm);
            strftime(today, sizeof today, "%d %b %Y", &tm);
            date = today;
        }
        size_t start = 0;
        MLXN_TRY(cat(b, bos, "<|start_header_id|>system<|end_header_id|>\n\n", "Cutting Knowledge Date: December 2023\n", "Today Date: "));
        MLXN_TRY(cat(b, date, "\n\n", NULL, NULL));
        if (n > 0 && !strcmp(m[0].role, "system")) {
            MLXN_TRY(add_trimmed(b, m[0].content));
            start = 1;
        }
        MLXN_TRY(tx_buf_adds(b, "<|eot_id|>"));
        for (size_t i = start; i < n; i++) MLXN_TRY(llama_turn(b, m[i].role, m[i].content));
    }
    if (p->add_generation_prompt) MLXN_TRY(tx_buf_adds(b, "<|start_header_id|>assistant<|end_header_id|>\n\n"));
    return MLXN_OK;
}

static mlxn_status render_gemma(const mlxn_chat_params *p, const mlxn_chat_message *m, size_t n, tx_buf *b) {
    MLXN_TRY(tx_buf_adds(b, p->bos_token ? p->bos_token : "<bos>"));
    const char *prefix = NULL;
    size_t start = 0;
    if (n > 0 && !strcmp(m[0].role, "system")) {
        prefix = m[0].content;
        start = 1;
    }
    for (size_t i = start; i < n; i++) {
        size_t k = i - start;
        if ((strcmp(m[i].role, "user") == 0) != (k % 2 == 0))
            return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT,
                             "chat (gemma): message %zu has role '%s': roles must alternate user/assistant/user/...", i, m[i].role);
        const char *role = !strcmp(m[i].role, "assistant") ? "model" : m[i].role;
        MLXN_TRY(cat(b, "<start_of_turn>", role, "\n", NULL));
        if (k == 0 && prefix) MLXN_TRY(cat(b, prefix, "\n\n", NULL, NULL));
        MLXN_TRY(add_trimmed(b, m[i].content));
        MLXN_TRY(tx_buf_adds(b, "<end_of_turn>\n"));
    }
    if (p->add_generation_prompt) MLXN_TRY(tx_buf_adds(b, "<start_of_turn>model\n"));
    return MLXN_OK;
}

static mlxn_status render_plain(const mlxn_chat_message *m, size_t n, tx_buf *b) {
    for (size_t i = 0; i < n; i++) {
        if (i) MLXN_TRY(tx_buf_adds(b, "\n\n"));
        MLXN_TRY(tx_buf_adds(b, m[i].content));
    }
    return MLXN_OK;
}

mlxn_status mlxn_chat_render(const mlxn_chat_params *p, const mlxn_chat_message *msgs, size_t n, char **out, size_t *len) {
    if (!p || !out || (!msgs && n)) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "chat_render: NULL argument");
    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role || !msgs[i].content)
            return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "chat_render: message %zu has a NULL role or content", i);
        if (strcmp(msgs[i].role, "system") && strcmp(msgs[i].role, "user") && strcmp(msgs[i].role, "assistant"))
            return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "chat_render: message %zu has role '%s' (expected system, user or assistant)",
                             i, msgs[i].role);
        size_t cl = strlen(msgs[i].content);
        size_t bad = tx_utf8_check(msgs[i].content, cl);
        if (bad != cl) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "chat_render: message %zu is not valid UTF-8 (offset %zu)", i, bad);
    }
    tx_buf b = {0};
    mlxn_status st = tx_buf_reserve(&b, 256);
    if (!st) b.s[0] = '\0';
    if (!st) {
        switch (p->format) {
        case MLXN_CHAT_PLAIN: st = render_plain(msgs, n, &b); break;
        case MLXN_CHAT_CHATML: case MLXN_CHAT_SMOLLM: case MLXN_CHAT_QWEN2: case MLXN_CHAT_QWEN25:
            st = render_chatml(p, msgs, n, &b);
            break;
        case MLXN_CHAT_LLAMA3: case MLXN_CHAT_LLAMA31: case MLXN_CHAT_LLAMA32: st = render_llama(p, msgs, n, &b); break;
        case MLXN_CHAT_GEMMA: st = render_gemma(p, msgs, n, &b); break;
        default: st = mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "chat_render: unknown format %d", (int)p->format); break;
        }
    }
    if (st) {
        tx_buf_free(&b);
        return st;
    }
    *out = b.s;
    if (len) *len = b.len;
    return MLXN_OK;
}

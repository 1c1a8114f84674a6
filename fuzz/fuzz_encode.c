/* libFuzzer target: encode arbitrary bytes with real tokenizers (the
 * committed SmolLM2 byte-level BPE and the SentencePiece-style goldens,
 * loaded once). The first input byte picks the tokenizer and the flags,
 * the rest is the text. Invalid UTF-8 must be rejected with a message
 * naming the offset; valid text must encode, every id must be in range,
 * SmolLM2 must decode back to the exact input (when every byte of it has
 * a byte token: its vocabulary lacks 21 of the 256, which `tokenizers`
 * drops as well), and the streamed pieces
 * must concatenate to the full decode whenever it holds no U+FFFD. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlxn/mlxn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const NAMES[] = {"smollm2", "spm_llama", "spm_legacy", "spm_nfkc", "spm_gemma"};
#define N_TOK (sizeof NAMES / sizeof NAMES[0])
static mlxn_tokenizer *toks[N_TOK]; /* the fuzzer's fixture: loaded once, read-only afterwards */

static mlxn_tokenizer *get(size_t i) {
    if (!toks[i]) {
        char path[1024];
        snprintf(path, sizeof path, "%s/tests/golden/text/%s", MLXN_SOURCE_DIR, NAMES[i]);
        if (mlxn_tokenizer_load(path, &toks[i]) != MLXN_OK) {
            fprintf(stderr, "fuzz_encode: cannot load %s: %s\n", path, mlxn_last_error());
            __builtin_trap();
        }
    }
    return toks[i];
}

/* byte_ok[b]: SmolLM2 has a token for byte b (GPT-2's byte -> code point map). */
static int byte_ok[256], byte_ok_ready;

static void init_bytes(mlxn_tokenizer *t) {
    for (int b = 0, n = 0; b < 256; b++) {
        int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        unsigned cp = printable ? (unsigned)b : 256u + (unsigned)n++;
        char u[4] = {0};
        if (cp < 0x80) u[0] = (char)cp;
        else { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 63)); }
        byte_ok[b] = mlxn_tokenizer_token_to_id(t, u) >= 0;
    }
    byte_ok_ready = 1;
}

static int has_fffd(const char *s, size_t n) {
    for (size_t i = 0; i + 2 < n; i++)
        if ((uint8_t)s[i] == 0xEF && (uint8_t)s[i + 1] == 0xBF && (uint8_t)s[i + 2] == 0xBD) return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    size_t which = data[0] % N_TOK;
    unsigned flags = (data[0] / N_TOK) & 3;
    mlxn_tokenizer *t = get(which);
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int32_t *ids = NULL;
    size_t n = 0;
    mlxn_status st = mlxn_tokenizer_encode(t, text, len, flags, &ids, &n);
    if (st != MLXN_OK) {
        if (st != MLXN_ERR_INVALID_ARGUMENT || !strstr(mlxn_last_error(), "UTF-8") || ids) __builtin_trap();
        return 0;
    }
    size_t vs = mlxn_tokenizer_vocab_size(t);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= vs) __builtin_trap();
    char *out = NULL;
    size_t ol = 0;
    if (mlxn_tokenizer_decode(t, ids, n, 0, &out, &ol) != MLXN_OK) __builtin_trap();
    if (which == 0 && !(flags & MLXN_TOKENIZE_ADD_SPECIAL)) {
        if (!byte_ok_ready) init_bytes(t);
        int all = 1;
        for (size_t i = 0; i < len; i++) all = all && byte_ok[(uint8_t)text[i]];
        if (all && (ol != len || memcmp(out, text, len) != 0)) __builtin_trap();
    }
    mlxn_detokenizer *d = NULL;
    if (mlxn_detokenizer_new(t, 0, &d) != MLXN_OK) __builtin_trap();
    char *cat = malloc(ol + 1);
    size_t cl = 0;
    int fits = 1;
    for (size_t i = 0; i <= n; i++) {
        const char *p;
        size_t pl;
        st = i < n ? mlxn_detokenizer_push(d, ids[i], &p, &pl) : mlxn_detokenizer_flush(d, &p, &pl);
        if (st != MLXN_OK) __builtin_trap();
        if (cl + pl > ol) fits = 0;
        else memcpy(cat + cl, p, pl);
        cl += pl;
    }
    if (!has_fffd(out, ol) && (!fits || cl != ol || memcmp(cat, out, ol) != 0)) __builtin_trap();
    mlxn_detokenizer_free(d);
    free(cat);
    free(out);
    free(ids);
    return 0;
}

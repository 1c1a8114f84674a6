/* libFuzzer target: tokenizer.json loading on arbitrary bytes. The input
 * is split at the first NUL byte: before it the tokenizer.json, after it a
 * tokenizer_config.json (optional). A rejected input must leave no
 * tokenizer and a message naming the input. An accepted one is exercised:
 * encode (with and without specials, on fixed texts that reach the added
 * tokens, digits, spaces and bytes), decode of every id, streaming decode,
 * accessors, so ASan/UBSan see everything the loader let through. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlxn/mlxn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

static const char *const TEXTS[] = {
    "Hello world 12345 <s> </s> <unk> <mask> [WORD] hello world",
    "  caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD\t\n\n x",
    "",
    "a",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t jl = nul ? (size_t)(nul - data) : size;
    const char *cfg = nul ? (const char *)nul + 1 : NULL;
    size_t cl = nul ? size - jl - 1 : 0;
    mlxn_tokenizer *t = NULL;
    mlxn_status st = mlxn_tokenizer_load_json("fuzz.json", (const char *)data, jl, cfg, cl, &t);
    if (st != MLXN_OK) {
        if (t || !strstr(mlxn_last_error(), "fuzz.json")) {
            fprintf(stderr, "rejection without the input name: %s\n", mlxn_last_error());
            __builtin_trap();
        }
        return 0;
    }
    size_t vs = mlxn_tokenizer_vocab_size(t);
    for (size_t k = 0; k < sizeof TEXTS / sizeof TEXTS[0]; k++) {
        for (unsigned flags = 0; flags < 4; flags++) {
            int32_t *ids = NULL;
            size_t n = 0;
            if (mlxn_tokenizer_encode(t, TEXTS[k], strlen(TEXTS[k]), flags, &ids, &n) != MLXN_OK) {
                free(ids);
                continue;
            }
            for (size_t i = 0; i < n; i++)
                if (ids[i] < 0 || (size_t)ids[i] >= vs) __builtin_trap();
            char *text = NULL;
            size_t tl = 0;
            if (mlxn_tokenizer_decode(t, ids, n, (int)(flags & 1), &text, &tl) == MLXN_OK) {
                if (text[tl] != '\0') __builtin_trap();
                sink += tl;
            }
            free(text);
            mlxn_detokenizer *d = NULL;
            if (mlxn_detokenizer_new(t, 0, &d) == MLXN_OK) {
                const char *p;
                size_t pl;
                for (size_t i = 0; i < n; i++)
                    if (mlxn_detokenizer_push(d, ids[i], &p, &pl) == MLXN_OK) sink += pl;
                if (mlxn_detokenizer_flush(d, &p, &pl) == MLXN_OK) sink += pl;
                mlxn_detokenizer_free(d);
            }
            free(ids);
        }
    }
    /* every id through decode and the accessors (bounded for huge vocabularies) */
    size_t lim = vs < 4096 ? vs : 4096;
    int32_t *all = malloc((lim + 1) * sizeof *all);
    for (size_t i = 0; all && i < lim; i++) {
        all[i] = (int32_t)i;
        const char *s = mlxn_tokenizer_id_to_token(t, (int32_t)i);
        if (s) {
            sink += strlen(s);
            if (mlxn_tokenizer_token_to_id(t, s) < 0) __builtin_trap();
        }
        sink += (size_t)mlxn_tokenizer_is_special(t, (int32_t)i);
    }
    char *text = NULL;
    if (all && mlxn_tokenizer_decode(t, all, lim, 0, &text, NULL) == MLXN_OK) sink += strlen(text);
    free(text);
    free(all);
    sink += (size_t)mlxn_tokenizer_bos_id(t) + (size_t)mlxn_tokenizer_eos_id(t);
    const char *ct = mlxn_tokenizer_chat_template(t);
    sink += (size_t)mlxn_chat_detect(ct, NULL);
    mlxn_tokenizer_free(t);
    return 0;
}

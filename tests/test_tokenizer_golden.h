/* Shared by the tokenizer tests: compare a tokenizer with the ids, texts
 * and stream chunks that Hugging Face `tokenizers` recorded in
 * tests/golden/text/<name>_ids.json (written by tests/golden/gen_text.py). */
#ifndef MLXN_TEST_TOKENIZER_GOLDEN_H
#define MLXN_TEST_TOKENIZER_GOLDEN_H

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static json_t *tg_load(const char *rel) {
    char path[1024];
    snprintf(path, sizeof path, "%s/text/%s", MLXN_TEST_GOLDEN_DIR, rel);
    json_error_t err;
    json_t *j = json_load_file(path, JSON_ALLOW_NUL, &err);
    CHECK(j != NULL, "cannot read %s: %s", path, err.text);
    return j;
}

static int tg_ids_equal(const json_t *want, const int32_t *got, size_t n) {
    if (!json_is_array(want) || json_array_size(want) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (json_integer_value(json_array_get(want, i)) != got[i]) return 0;
    return 1;
}

static void tg_print_ids(const char *what, const json_t *want, const int32_t *got, size_t n) {
    fprintf(stderr, "  %s want:", what);
    for (size_t i = 0; i < json_array_size(want); i++) fprintf(stderr, " %lld", (long long)json_integer_value(json_array_get(want, i)));
    fprintf(stderr, "\n  %s got: ", what);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", got[i]);
    fprintf(stderr, "\n");
}

/* Every case of <golden>_ids.json against tokenizer t. */
static void tg_check_all(mlxn_tokenizer *t, const char *golden, const char *label) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s_ids.json", golden);
    json_t *doc = tg_load(rel);
    if (!doc) return;
    json_t *cases = json_object_get(doc, "cases");
    CHECK(json_array_size(cases) > 10, "%s: too few cases", rel);
    int bad = 0;
    for (size_t c = 0; c < json_array_size(cases); c++) {
        json_t *k = json_array_get(cases, c);
        const char *text = json_string_value(json_object_get(k, "text"));
        size_t tl = json_string_length(json_object_get(k, "text"));
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(mlxn_tokenizer_encode(t, text, tl, 0, &ids, &n));
        int ok = tg_ids_equal(json_object_get(k, "ids"), ids, n);
        CHECK(ok, "%s case %zu: encode differs from tokenizers for '%.60s'", label, c, text);
        if (!ok && bad++ < 3) tg_print_ids("ids", json_object_get(k, "ids"), ids, n);
        int32_t *ids2 = NULL;
        size_t n2 = 0;
        CHECK_OK(mlxn_tokenizer_encode(t, text, tl, MLXN_TOKENIZE_ADD_SPECIAL, &ids2, &n2));
        ok = tg_ids_equal(json_object_get(k, "ids_special"), ids2, n2);
        CHECK(ok, "%s case %zu: encode(add_special) differs for '%.60s'", label, c, text);
        if (!ok && bad++ < 3) tg_print_ids("ids_special", json_object_get(k, "ids_special"), ids2, n2);
        free(ids2);

        /* decode the reference ids (not ours), with and without specials */
        json_t *want_ids = json_object_get(k, "ids");
        size_t wn = json_array_size(want_ids);
        int32_t *w = malloc((wn + 1) * sizeof *w);
        for (size_t i = 0; i < wn; i++) w[i] = (int32_t)json_integer_value(json_array_get(want_ids, i));
        for (int skip = 0; skip < 2; skip++) {
            char *out = NULL;
            size_t ol = 0;
            CHECK_OK(mlxn_tokenizer_decode(t, w, wn, skip, &out, &ol));
            const json_t *d = json_object_get(k, skip ? "decoded_skip" : "decoded");
            CHECK(out && ol == json_string_length(d) && memcmp(out, json_string_value(d), ol) == 0,
                  "%s case %zu: decode(skip=%d) '%.60s' != '%.60s'", label, c, skip, out ? out : "(null)", json_string_value(d));
            free(out);
        }
        /* streaming: the same chunk as DecodeStream after every id */
        mlxn_detokenizer *ds = NULL;
        CHECK_OK(mlxn_detokenizer_new(t, 0, &ds));
        json_t *chunks = json_object_get(k, "stream");
        char *all = calloc(1, 1);
        size_t all_len = 0;
        int stream_ok = json_array_size(chunks) == wn;
        for (size_t i = 0; ds && i < wn; i++) {
            const char *piece;
            size_t pl;
            CHECK_OK(mlxn_detokenizer_push(ds, w[i], &piece, &pl));
            const json_t *want = json_array_get(chunks, i);
            if (pl != json_string_length(want) || memcmp(piece, json_string_value(want), pl) != 0) stream_ok = 0;
            all = realloc(all, all_len + pl + 1);
            memcpy(all + all_len, piece, pl);
            all_len += pl;
        }
        CHECK(stream_ok, "%s case %zu: streamed chunks differ from DecodeStream for '%.60s'", label, c, text);
        const char *rest;
        size_t rl;
        CHECK_OK(mlxn_detokenizer_flush(ds, &rest, &rl));
        all = realloc(all, all_len + rl + 1);
        memcpy(all + all_len, rest, rl);
        all_len += rl;
        const json_t *d = json_object_get(k, "decoded");
        CHECK(all_len == json_string_length(d) && memcmp(all, json_string_value(d), all_len) == 0,
              "%s case %zu: stream + flush != decode", label, c);
        free(all);
        mlxn_detokenizer_free(ds);
        free(w);
        free(ids);
    }
    json_decref(doc);
}

#endif

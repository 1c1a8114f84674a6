/* mlxn generate: one prompt in (-p, -f or stdin), the model's continuation
 * streamed to stdout as it is produced, statistics on stderr. With --chat
 * the prompt is the user's message, rendered through the model's chat
 * template (textgen.c does the work). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "textgen.h"

typedef struct gen_opts {
    tg_model_opts mo;
    tg_sample_opts so;
    const char *prompt, *prompt_file, *system, *chat_format;
    int max_tokens, chat, truncate, ignore_eos, quiet;
} gen_opts;

static const opt_spec gen_rows[] = {
    TG_MODEL_ROWS(gen_opts, mo),
    {"prompt", 'p', OPT_STRING, offsetof(gen_opts, prompt), "TEXT",
     "The prompt; '-' or no -p/-f reads it from stdin.", NULL, 0, 0, NULL},
    {"prompt-file", 'f', OPT_STRING, offsetof(gen_opts, prompt_file), "FILE", "Read the prompt from FILE.", NULL, 0,
     0, NULL},
    {"max-tokens", 'n', OPT_INT, offsetof(gen_opts, max_tokens), "N", "Generate at most N tokens.", "256", 0,
     1 << 30, NULL},
    {"chat", 0, OPT_FLAG, offsetof(gen_opts, chat), NULL,
     "The prompt is a user message: apply the model's chat template (with the generation prompt).", NULL, 0, 0,
     NULL},
    {"system", 's', OPT_STRING, offsetof(gen_opts, system), "TEXT",
     "A system message before the prompt (with --chat; else the template's default, if it has one).", NULL, 0,
     0, NULL},
    {"chat-format", 0, OPT_STRING, offsetof(gen_opts, chat_format), "NAME",
     "Use this chat format instead of the one recognized from the template: plain, chatml, smollm, qwen2, "
     "qwen2.5, llama3, llama3.1, llama3.2, gemma.",
     NULL, 0, 0, NULL},
    {"truncate", 0, OPT_FLAG, offsetof(gen_opts, truncate), NULL,
     "When the prompt does not fit the context, keep its last tokens instead of failing.", NULL, 0, 0, NULL},
    {"ignore-eos", 0, OPT_FLAG, offsetof(gen_opts, ignore_eos), NULL,
     "Do not stop at the end-of-sequence and stop tokens.", NULL, 0, 0, NULL},
    TG_SAMPLE_ROWS(gen_opts, so),
    {"quiet", 'q', OPT_FLAG, offsetof(gen_opts, quiet), NULL, "Print no statistics.", NULL, 0, 0, NULL},
    {0},
};

const opt_command generate_command = {
    .name = "generate",
    .synopsis = "-m MODEL [-p PROMPT | -f FILE] [options]",
    .summary = "Generate text from a prompt, streamed to stdout; statistics on stderr.",
    .description =
        "The prompt comes from -p, -f or stdin. Generation stops after --max-tokens tokens, at the model's "
        "end-of-sequence or chat stop tokens, when the context is full, or at Ctrl-C. Sampling follows mlx-lm "
        "(penalties, then temperature with top-p, min-p and top-k); the default --temp 0 is greedy. The "
        "statistics (stderr) give the load time, prompt and generation speed, peak memory and the KV cache "
        "size per token.\n\nExit status: 0 done, 1 failure, 2 bad usage, 130 interrupted.",
    .opts = gen_rows,
    .positional = NULL,
    .max_positional = 0,
    .examples = "mlxn generate -m SmolLM2-135M-Instruct-4bit --chat -p \"What is the capital of France?\"\n"
                "echo \"Once upon a time\" | mlxn generate -m model.gguf -n 64 --temp 0.8 --top-p 0.95 --seed 1",
};

int cmd_generate(int argc, char **argv) {
    gen_opts o = {.max_tokens = 256};
    tg_sample_defaults(&o.so);
    opt_args a;
    opt_given given;
    int pr = opt_parse(&generate_command, argc, argv, 1, &o, &a, &given);
    if (pr != OPT_OK) return pr == OPT_HELP ? 0 : 2;
    if (o.prompt && o.prompt_file) {
        opt_error(&generate_command, "give the prompt once: -p or -f, not both");
        return 2;
    }
    if ((o.system || o.chat_format) && !o.chat) {
        opt_error(&generate_command, "--system and --chat-format apply to chat prompts: add --chat");
        return 2;
    }
    if (!o.mo.model) {
        opt_error(&generate_command, "no model given: add -m PATH (an MLX model directory or a .gguf file)");
        return 2;
    }
    char *text = NULL;
    size_t len = 0;
    if (o.prompt_file) {
        text = tg_read_file(o.prompt_file, &len);
        if (!text) {
            fprintf(stderr, "mlxn generate: cannot read the prompt file '%s'\n", o.prompt_file);
            return 1;
        }
    } else if (o.prompt && strcmp(o.prompt, "-")) {
        len = strlen(o.prompt);
        text = malloc(len + 1);
        if (text) memcpy(text, o.prompt, len + 1);
    } else {
        if (isatty(STDIN_FILENO)) fprintf(stderr, "mlxn generate: reading the prompt from stdin (end it with Ctrl-D)\n");
        text = tg_read_all(stdin, &len);
        if (!text) {
            fprintf(stderr, "mlxn generate: cannot read the prompt from stdin\n");
            return 1;
        }
    }
    if (!text) return 1;

    int rc = 1;
    tg_ctx c;
    int32_t *ids = NULL;
    size_t n = 0;
    mlxn_sampler *sampler = NULL;
    uint64_t seed = 0;
    int orc = tg_open(&c, "generate", &o.mo, 1);
    if (orc) {
        rc = orc;
        goto done;
    }
    if (o.chat && tg_pick_chat(&c, o.chat_format)) {
        rc = 2;
        goto done;
    }
    if (tg_encode_prompt(&c, text, len, o.chat, o.system, &ids, &n)) goto done;
    if (n == 0) {
        fprintf(stderr, "mlxn generate: the prompt is empty: give some text with -p, -f or stdin\n");
        goto done;
    }
    if (c.ctx > 0 && (int64_t)n >= c.ctx) {
        if (!o.truncate) {
            fprintf(stderr,
                    "mlxn generate: the prompt has %zu tokens but the context holds %lld: shorten it, raise "
                    "--ctx-size (up to the model's %d), or add --truncate to keep its last tokens\n",
                    n, (long long)c.ctx, c.info->max_position_embeddings);
            goto done;
        }
        /* room for the answer: up to half the context */
        int64_t room = o.max_tokens < c.ctx / 2 ? o.max_tokens : c.ctx / 2;
        int64_t keep = c.ctx - (room > 0 ? room : 1);
        fprintf(stderr, "mlxn generate: the prompt has %zu tokens; --truncate keeps its last %lld\n", n,
                (long long)keep);
        memmove(ids, ids + (n - (size_t)keep), sizeof *ids * (size_t)keep);
        n = (size_t)keep;
    }
    int32_t stop[16];
    size_t n_stop = mlxn_tokenizer_stop_ids(c.tok, o.chat ? c.chat : MLXN_CHAT_PLAIN, stop, 16);
    if (n_stop > 16) n_stop = 16;
    int src = tg_make_sampler(&c, &o.so, opt_was_given(&generate_command, &given, "seed"), &sampler, &seed);
    if (src) {
        rc = src;
        goto done;
    }
    tg_interrupt_install();
    tg_gen_opts g = {.max_tokens = o.max_tokens, .ignore_eos = o.ignore_eos, .stop_ids = stop, .n_stop = n_stop,
                     .sampler = sampler, .out = stdout};
    tg_stats st;
    if (tg_generate(&c, ids, (int64_t)n, &g, &st)) goto done;
    fputc('\n', stdout);
    fflush(stdout);
    if (!o.quiet) tg_print_stats(&c, &st, seed, o.so.temp > 0);
    /* An instruct model given a bare question often ends the text at once: say what to do. */
    if (!o.quiet && !o.chat && st.n_gen == 0 && !strcmp(st.stop, "eos") && c.chat != MLXN_CHAT_PLAIN)
        fprintf(stderr, "mlxn generate: the model ended the text at once; it has a chat template, so for an "
                        "answer to the prompt add --chat\n");
    rc = strcmp(st.stop, "interrupted") ? 0 : 130;
done:
    mlxn_sampler_free(sampler);
    free(ids);
    free(text);
    tg_close(&c);
    return rc;
}

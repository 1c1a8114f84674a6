/* mlxn chat: an interactive multi-turn conversation on the terminal.
 *
 * Each turn renders the whole conversation through the chat template and
 * runs only what the KV cache does not already hold (textgen.c keeps the
 * session's tokens and reuses the longest common prefix), so a turn costs
 * the new message, not the history. Ctrl-C sets a flag that the
 * generation loop checks per token: it ends the current answer (kept in
 * the history as far as it got); at the prompt it just clears the line.
 * Ctrl-D (end of input) or /exit quits. The terminal's modes are never
 * changed (the line discipline edits input), so there is nothing to
 * restore on any exit path. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "textgen.h"

typedef struct chat_opts {
    tg_model_opts mo;
    tg_sample_opts so;
    const char *system, *chat_format;
    int max_tokens, stats;
} chat_opts;

static const opt_spec chat_rows[] = {
    TG_MODEL_ROWS(chat_opts, mo),
    {"system", 's', OPT_STRING, offsetof(chat_opts, system), "TEXT",
     "The system message (else the template's default, if it has one).", NULL, 0, 0, NULL},
    {"chat-format", 0, OPT_STRING, offsetof(chat_opts, chat_format), "NAME",
     "Use this chat format instead of the one recognized from the template: plain, chatml, smollm, qwen2, "
     "qwen2.5, llama3, llama3.1, llama3.2, gemma.",
     NULL, 0, 0, NULL},
    {"max-tokens", 'n', OPT_INT, offsetof(chat_opts, max_tokens), "N", "Longest answer, in tokens.", "1024", 1,
     1 << 30, NULL},
    TG_SAMPLE_ROWS(chat_opts, so),
    {"stats", 0, OPT_FLAG, offsetof(chat_opts, stats), NULL,
     "After each answer print its statistics (tokens, speed, cache reuse) on stderr.", NULL, 0, 0, NULL},
    {0},
};

const opt_command chat_command = {
    .name = "chat",
    .synopsis = "-m MODEL [options]",
    .summary = "Talk with a model: an interactive multi-turn conversation.",
    .description =
        "Type a message and press Enter; the answer streams back. The conversation goes through the model's "
        "chat template, and the KV cache is kept between turns, so only the new message is computed. "
        "Ctrl-C stops the current answer; Ctrl-D (or /exit) quits; /reset starts a new conversation. When the "
        "conversation outgrows the context, the oldest turns are dropped. Without a terminal, messages are "
        "read one per line from stdin.",
    .opts = chat_rows,
    .positional = NULL,
    .max_positional = 0,
    .examples = "mlxn chat -m SmolLM2-135M-Instruct-4bit\n"
                "mlxn chat -m model.gguf --system \"Answer in one sentence.\" --temp 0.7 --seed 3",
};

typedef struct history {
    mlxn_chat_message *m; /* [n]; contents malloc'ed */
    size_t n, cap;
    size_t first_turn;    /* 1 when a system message comes first */
} history;

static int push(history *h, const char *role, const char *text) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 16;
        mlxn_chat_message *m = realloc(h->m, sizeof *m * cap);
        if (!m) return 1;
        h->m = m;
        h->cap = cap;
    }
    char *t = strdup(text ? text : "");
    if (!t) return 1;
    h->m[h->n++] = (mlxn_chat_message){role, t};
    return 0;
}

static void drop(history *h, size_t at, size_t count) {
    if (!count) return;
    for (size_t i = at; i < at + count; i++) free((char *)h->m[i].content);
    memmove(h->m + at, h->m + at + count, sizeof *h->m * (h->n - at - count));
    h->n -= count;
}

/* Render and encode the whole conversation with the generation prompt. */
static int encode(tg_ctx *c, const history *h, int32_t **ids, size_t *n) {
    mlxn_chat_params p = {.format = c->chat, .add_generation_prompt = 1,
                          .bos_token = *mlxn_tokenizer_bos_token(c->tok) ? mlxn_tokenizer_bos_token(c->tok) : NULL};
    char *r = NULL;
    size_t rl = 0;
    if (mlxn_chat_render(&p, h->m, h->n, &r, &rl) != MLXN_OK) {
        fprintf(stderr, "mlxn chat: cannot apply the chat template: %s\n", mlxn_last_error());
        return 1;
    }
    mlxn_status s = mlxn_tokenizer_encode(c->tok, r, rl, 0, ids, n);
    free(r);
    if (s != MLXN_OK) {
        fprintf(stderr, "mlxn chat: %s\n", mlxn_last_error());
        return 1;
    }
    return 0;
}

int cmd_chat(int argc, char **argv) {
    chat_opts o = {.max_tokens = 1024};
    tg_sample_defaults(&o.so);
    opt_args a;
    opt_given given;
    int pr = opt_parse(&chat_command, argc, argv, 1, &o, &a, &given);
    if (pr != OPT_OK) return pr == OPT_HELP ? 0 : 2;
    if (!o.mo.model) {
        opt_error(&chat_command, "no model given: add -m PATH (an MLX model directory or a .gguf file)");
        return 2;
    }
    int rc = 1, tty = isatty(STDIN_FILENO);
    tg_ctx c;
    history h = {0};
    mlxn_sampler *sampler = NULL;
    uint64_t seed = 0;
    char *line = NULL;
    size_t line_cap = 0;
    int orc = tg_open(&c, "chat", &o.mo, 1);
    if (orc) {
        rc = orc;
        goto done;
    }
    if (tg_pick_chat(&c, o.chat_format)) {
        rc = 2;
        goto done;
    }
    int32_t stop[16];
    size_t n_stop = mlxn_tokenizer_stop_ids(c.tok, c.chat, stop, 16);
    if (n_stop > 16) n_stop = 16;
    int src = tg_make_sampler(&c, &o.so, opt_was_given(&chat_command, &given, "seed"), &sampler, &seed);
    if (src) {
        rc = src;
        goto done;
    }
    if (o.system && push(&h, "system", o.system)) goto oom;
    h.first_turn = h.n;
    tg_interrupt_install();
    if (tty)
        fprintf(stderr, "mlxn chat: %s (%s, %s chat format). Ctrl-C stops an answer, Ctrl-D or /exit quits, "
                        "/reset starts over.\n",
                o.mo.model, c.info->arch, mlxn_chat_format_name(c.chat));
    for (;;) {
        if (tty) {
            fputs(">>> ", stdout);
            fflush(stdout);
        }
        tg_interrupted = 0;
        errno = 0;
        ssize_t r = getline(&line, &line_cap, stdin);
        if (r < 0) {
            if (errno == EINTR && tg_interrupted) { /* Ctrl-C at the prompt */
                clearerr(stdin);
                fputs("\n(Ctrl-D or /exit quits)\n", stdout);
                continue;
            }
            if (tty) fputc('\n', stdout); /* leave the shell prompt on a fresh line */
            break;
        }
        while (r > 0 && (line[r - 1] == '\n' || line[r - 1] == '\r')) line[--r] = '\0';
        if (r == 0) continue;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) {
            drop(&h, h.first_turn, h.n - h.first_turn);
            mlxn_session_reset(c.session);
            c.n_held = 0;
            fputs("(new conversation)\n", stdout);
            continue;
        }
        if (!strcmp(line, "/help")) {
            fputs("Type a message. Ctrl-C stops an answer; /reset starts over; /exit or Ctrl-D quits.\n", stdout);
            continue;
        }
        if (push(&h, "user", line)) goto oom;
        int32_t *ids = NULL;
        size_t n = 0;
        for (;;) {
            if (encode(&c, &h, &ids, &n)) break;
            /* leave room for an answer (up to half the context) */
            int64_t room = o.max_tokens < c.ctx / 2 ? o.max_tokens : c.ctx / 2;
            if (c.ctx <= 0 || (int64_t)n + room <= c.ctx) break;
            free(ids);
            ids = NULL;
            if (h.n - h.first_turn < 3) { /* only this message left */
                fprintf(stderr, "mlxn chat: this message (%zu tokens with the template) does not fit the context of "
                                "%lld tokens (--ctx-size); send a shorter one\n",
                        n, (long long)c.ctx);
                break;
            }
            drop(&h, h.first_turn, 2); /* the oldest user/assistant pair */
            fprintf(stderr, "(the conversation outgrew the context: the oldest turn is dropped)\n");
        }
        if (!ids) {
            drop(&h, h.n - 1, 1);
            continue;
        }
        tg_gen_opts g = {.max_tokens = o.max_tokens, .stop_ids = stop, .n_stop = n_stop, .sampler = sampler,
                         .out = stdout, .keep_text = 1};
        tg_stats st;
        int grc = tg_generate(&c, ids, (int64_t)n, &g, &st);
        free(ids);
        fputc('\n', stdout);
        fflush(stdout);
        if (grc) {
            free(st.text);
            drop(&h, h.n - 1, 1);
            continue;
        }
        int interrupted = !strcmp(st.stop, "interrupted");
        if (interrupted) fputs("(stopped)\n", stdout);
        if (push(&h, "assistant", st.text ? st.text : "")) {
            free(st.text);
            goto oom;
        }
        free(st.text);
        if (o.stats)
            fprintf(stderr, "[%lld tokens, %.1f tok/s; prompt %lld tokens, %lld from the cache, %.1f tok/s; stop: %s]\n",
                    (long long)st.n_gen, st.gen_s > 0 ? (double)st.n_decode / st.gen_s : 0.0,
                    (long long)st.n_prompt, (long long)st.n_reused,
                    st.prompt_s > 0 ? (double)(st.n_prompt - st.n_reused) / st.prompt_s : 0.0, st.stop);
    }
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "mlxn chat: out of memory\n");
done:
    free(line);
    drop(&h, 0, h.n);
    free(h.m);
    mlxn_sampler_free(sampler);
    tg_close(&c);
    return rc;
}

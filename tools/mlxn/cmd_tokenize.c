/* mlxn tokenize: text to token ids with a model's tokenizer (only the
 * tokenizer is loaded: tokenizer.json of a model directory, or a GGUF
 * file's vocabulary), and ids back to text with --decode. */
#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "textgen.h"

typedef struct tok_opts {
    tg_model_opts mo;
    const char *system, *chat_format;
    int json, decode, chat, no_add_special, split_special, skip_special;
} tok_opts;

static const opt_spec tok_rows[] = {
    {"model", 'm', OPT_STRING, offsetof(tok_opts, mo.model), "PATH",
     "The model whose tokenizer to use: an MLX model directory (tokenizer.json) or a .gguf file.", NULL, 0, 0,
     NULL},
    {"json", 0, OPT_FLAG, offsetof(tok_opts, json), NULL,
     "Print JSON: each token's id, its piece (the vocabulary's spelling) and its text; with --decode, "
     "{\"text\": ...}.",
     NULL, 0, 0, NULL},
    {"decode", 'd', OPT_FLAG, offsetof(tok_opts, decode), NULL,
     "The input is token ids (separated by spaces or commas): print their text.", NULL, 0, 0, NULL},
    {"chat", 0, OPT_FLAG, offsetof(tok_opts, chat), NULL,
     "Tokenize TEXT as a user message rendered through the chat template (with the generation prompt), as "
     "`mlxn generate --chat` does.",
     NULL, 0, 0, NULL},
    {"system", 's', OPT_STRING, offsetof(tok_opts, system), "TEXT", "A system message (with --chat).", NULL, 0, 0,
     NULL},
    {"chat-format", 0, OPT_STRING, offsetof(tok_opts, chat_format), "NAME",
     "Use this chat format instead of the one recognized from the template.", NULL, 0, 0, NULL},
    {"no-add-special", 0, OPT_FLAG, offsetof(tok_opts, no_add_special), NULL,
     "Do not add the tokenizer's special tokens (e.g. BOS) around the text.", NULL, 0, 0, NULL},
    {"split-special", 0, OPT_FLAG, offsetof(tok_opts, split_special), NULL,
     "Tokenize the text of special tokens (e.g. \"<|im_end|>\") as ordinary text.", NULL, 0, 0, NULL},
    {"skip-special", 0, OPT_FLAG, offsetof(tok_opts, skip_special), NULL,
     "With --decode: leave special tokens out of the text.", NULL, 0, 0, NULL},
    {0},
};

const opt_command tokenize_command = {
    .name = "tokenize",
    .synopsis = "-m MODEL [options] [TEXT]",
    .summary = "Print the token ids of a text (or, with --decode, the text of token ids).",
    .description = "TEXT is one argument; without it (or with '-') the whole of stdin is read, trailing newline "
                   "included. Ids are printed on one line, separated by spaces; decoded text is followed by a "
                   "newline.",
    .opts = tok_rows,
    .positional = "TEXT",
    .max_positional = 1,
    .examples = "mlxn tokenize -m SmolLM2-135M-Instruct-4bit \"Hello, world\"\n"
                "mlxn tokenize -m model.gguf --json \"naïve café\"\n"
                "mlxn tokenize -m SmolLM2-135M-Instruct-4bit --decode \"19556 28 905\"",
};

static int parse_ids(const char *s, int32_t **out, size_t *n) {
    size_t cap = 64, k = 0;
    int32_t *t = malloc(sizeof *t * cap);
    if (!t) return -1;
    while (*s) {
        while (*s == ' ' || *s == ',' || *s == '\n' || *s == '\t' || *s == '\r') s++;
        if (!*s) break;
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > 2147483647L ||
            (*end && *end != ' ' && *end != ',' && *end != '\n' && *end != '\t' && *end != '\r')) {
            free(t);
            return -1;
        }
        if (k == cap) {
            int32_t *nt = realloc(t, sizeof *t * (cap *= 2));
            if (!nt) {
                free(t);
                return -1;
            }
            t = nt;
        }
        t[k++] = (int32_t)v;
        s = end;
    }
    *out = t;
    *n = k;
    return 0;
}

static int print_json(json_t *j) {
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s) {
        fprintf(stderr, "mlxn tokenize: cannot build the JSON output\n");
        return 1;
    }
    printf("%s\n", s);
    free(s);
    return 0;
}

static int decode(tg_ctx *c, const tok_opts *o, const char *text) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (parse_ids(text, &ids, &n) != 0) {
        fprintf(stderr, "mlxn tokenize: --decode wants token ids (non-negative integers separated by spaces or "
                        "commas)\n");
        return 2;
    }
    size_t V = mlxn_tokenizer_vocab_size(c->tok);
    for (size_t i = 0; i < n; i++)
        if ((size_t)ids[i] >= V) {
            fprintf(stderr, "mlxn tokenize: id %d is outside the vocabulary (0..%zu)\n", ids[i], V - 1);
            free(ids);
            return 1;
        }
    char *out = NULL;
    size_t len = 0;
    mlxn_status s = mlxn_tokenizer_decode(c->tok, ids, n, o->skip_special, &out, &len);
    free(ids);
    if (s != MLXN_OK) {
        fprintf(stderr, "mlxn tokenize: %s\n", mlxn_last_error());
        return 1;
    }
    int rc = 0;
    if (o->json) {
        rc = print_json(json_pack("{s:s%}", "text", out, len));
    } else {
        fwrite(out, 1, len, stdout);
        fputc('\n', stdout);
    }
    free(out);
    return rc;
}

static int encode(tg_ctx *c, const tok_opts *o, const char *text, size_t len) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (o->chat) {
        if (tg_encode_prompt(c, text, len, 1, o->system, &ids, &n)) return 1;
    } else {
        unsigned flags = (o->no_add_special ? 0 : MLXN_TOKENIZE_ADD_SPECIAL) |
                         (o->split_special ? MLXN_TOKENIZE_SPLIT_SPECIAL : 0);
        if (mlxn_tokenizer_encode(c->tok, text, len, flags, &ids, &n) != MLXN_OK) {
            fprintf(stderr, "mlxn tokenize: %s\n", mlxn_last_error());
            return 1;
        }
    }
    int rc = 0;
    if (o->json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++) {
            const char *piece = mlxn_tokenizer_id_to_token(c->tok, ids[i]);
            char *t = NULL;
            size_t tl = 0;
            if (mlxn_tokenizer_decode(c->tok, &ids[i], 1, 0, &t, &tl) != MLXN_OK) t = NULL;
            json_t *e = json_pack("{s:i, s:s?, s:s%, s:b}", "id", (int)ids[i], "piece", piece, "text", t ? t : "",
                                  t ? tl : (size_t)0, "special", mlxn_tokenizer_is_special(c->tok, ids[i]));
            free(t);
            if (!e || json_array_append_new(arr, e)) {
                json_decref(arr);
                arr = NULL;
            }
        }
        rc = print_json(arr);
    } else {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        fputc('\n', stdout);
    }
    free(ids);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    tok_opts o = {0};
    opt_args a;
    int pr = opt_parse(&tokenize_command, argc, argv, 1, &o, &a, NULL);
    if (pr != OPT_OK) return pr == OPT_HELP ? 0 : 2;
    if (!o.mo.model) {
        opt_error(&tokenize_command, "no model given: add -m PATH (an MLX model directory or a .gguf file)");
        return 2;
    }
    if ((o.system || o.chat_format) && !o.chat) {
        opt_error(&tokenize_command, "--system and --chat-format apply with --chat");
        return 2;
    }
    if (o.decode && (o.chat || o.no_add_special || o.split_special)) {
        opt_error(&tokenize_command, "--decode takes ids: --chat, --no-add-special and --split-special are for text");
        return 2;
    }
    char *text = NULL;
    size_t len = 0;
    if (a.n_pos == 1 && strcmp(a.pos[0], "-")) {
        len = strlen(a.pos[0]);
        text = strdup(a.pos[0]);
    } else {
        if (isatty(STDIN_FILENO)) fprintf(stderr, "mlxn tokenize: reading the text from stdin (end it with Ctrl-D)\n");
        text = tg_read_all(stdin, &len);
    }
    if (!text) {
        fprintf(stderr, "mlxn tokenize: cannot read the input\n");
        return 1;
    }
    tg_ctx c;
    int rc = tg_open(&c, "tokenize", &o.mo, 0);
    if (!rc && o.chat && tg_pick_chat(&c, o.chat_format)) rc = 2;
    if (!rc) rc = o.decode ? decode(&c, &o, text) : encode(&c, &o, text, len);
    free(text);
    tg_close(&c);
    return rc;
}

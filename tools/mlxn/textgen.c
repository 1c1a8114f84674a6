/* The shared model commands' machinery (see textgen.h). */
#include "textgen.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"

volatile sig_atomic_t tg_interrupted;

static void on_sigint(int sig) {
    (void)sig;
    tg_interrupted = 1;
}

void tg_interrupt_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocked read on the terminal returns EINTR */
    sigaction(SIGINT, &sa, NULL);
}

double tg_peak_rss(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_maxrss * 1024.0; /* Linux reports KiB */
}

static void err(const tg_ctx *c, const char *what) {
    fprintf(stderr, "mlxn %s: %s: %s\n", c->cmd, what, mlxn_last_error());
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static int open_tokenizer(tg_ctx *c, const char *path, int is_dir) {
    if (is_dir) {
        char tj[4096];
        snprintf(tj, sizeof tj, "%s/tokenizer.json", path);
        if (access(tj, R_OK) != 0) {
            fprintf(stderr,
                    "mlxn %s: %s has no tokenizer.json; copy the model's tokenizer files there (or convert it "
                    "again with `mlxn convert`)\n",
                    c->cmd, path);
            return 1;
        }
        if (mlxn_tokenizer_load(path, &c->tok) != MLXN_OK) {
            err(c, "cannot load the tokenizer");
            return 1;
        }
        return 0;
    }
    if (mlxn_gguf_open(path, &c->gguf) != MLXN_OK) {
        err(c, "cannot open the GGUF file");
        return 1;
    }
    if (mlxn_tokenizer_from_gguf(c->gguf, &c->tok) != MLXN_OK) {
        err(c, "cannot build the tokenizer from the GGUF metadata");
        return 1;
    }
    return 0;
}

int tg_kv_cache(const char *cmd, mlxn_device *dev, const tg_model_opts *o, mlxn_session_params *sp,
                const char **name) {
    /* --kv-dtype auto (0): the library's default for the device (f32 on the CPU, bf16 on a GPU) */
    static const mlxn_dtype kv_types[] = {0, MLXN_DTYPE_F32, MLXN_DTYPE_BF16, MLXN_DTYPE_F16};
    static const char *const kv_names[] = {"auto", "f32", "bf16", "f16"};
    if (!o->kv_cache || (o->kv_dtype != 0 && !strcmp(o->kv_cache, kv_names[o->kv_dtype]))) {
        int kv = o->kv_dtype ? o->kv_dtype : mlxn_device_get_kind(dev) == MLXN_DEVICE_CPU ? 1 : 2;
        sp->kv_dtype = kv_types[kv];
        *name = kv_names[kv];
        return 0;
    }
    if (o->kv_dtype != 0) {
        fprintf(stderr, "mlxn %s: --kv-dtype %s and --kv-cache %s disagree: give --kv-cache only\n", cmd,
                kv_names[o->kv_dtype], o->kv_cache);
        return 2;
    }
    if (mlxn_kv_cache_parse(o->kv_cache, sp) != MLXN_OK) {
        fprintf(stderr, "mlxn %s: --kv-cache: %s\n", cmd, mlxn_last_error());
        return 2;
    }
    *name = o->kv_cache;
    return 0;
}

static void load_progress(void *user, int64_t done, int64_t total) {
    progress_update((progress *)user, (double)done, (double)total, "MB");
}

int tg_open(tg_ctx *c, const char *cmd, const tg_model_opts *o, int with_model) {
    memset(c, 0, sizeof *c);
    c->cmd = cmd;
    if (!o->model) {
        fprintf(stderr,
                "mlxn %s: no model given: add -m PATH (an MLX model directory or a .gguf file)\n"
                "Run `mlxn %s --help` for the options.\n",
                cmd, cmd);
        return 2;
    }
    struct stat st;
    if (stat(o->model, &st) != 0) {
        fprintf(stderr,
                "mlxn %s: no model at '%s' (%s): give an MLX model directory (config.json + *.safetensors) or a "
                ".gguf file; `mlxn convert` writes one, `make demo` fetches one\n",
                cmd, o->model, strerror(errno));
        return 1;
    }
    int is_dir = S_ISDIR(st.st_mode);
    if (!is_dir && !ends_with(o->model, ".gguf")) {
        fprintf(stderr, "mlxn %s: '%s' is neither a model directory nor a .gguf file\n", cmd, o->model);
        return 1;
    }
    double t0 = progress_now();
    if (with_model != TG_OPEN_MODEL_ONLY) {
        if (open_tokenizer(c, o->model, is_dir)) return 1;
        const char *warn = NULL;
        c->chat = mlxn_chat_detect(mlxn_tokenizer_chat_template(c->tok), &warn);
    }
    if (!with_model) {
        c->load_s = progress_now() - t0;
        return 0;
    }
    mlxn_device_params dp = {.kind = MLXN_DEVICE_CPU, .n_threads = o->threads};
    if (mlxn_device_parse(o->device ? o->device : "cpu", &dp) != MLXN_OK) {
        fprintf(stderr, "mlxn %s: --device: %s\n", cmd, mlxn_last_error());
        return 2;
    }
    dp.n_threads = o->threads;
    dp.float_activations = o->float_activations;
    dp.isa = (mlxn_cpu_isa)o->isa; /* the choices are listed in the enum's order */
    if (mlxn_device_new(&dp, &c->dev) != MLXN_OK) {
        const char *why = mlxn_last_error();
        fprintf(stderr, "mlxn %s: cannot open device '%s': %s%s\n", cmd, o->device ? o->device : "cpu", why,
                strstr(why, "--device cpu") ? "" : " (use --device cpu)");
        return 1;
    }
    progress_prefetch(o->model);
    progress p;
    progress_start(&p, is_dir ? "loading model" : "loading model (converting the GGUF in memory)");
    progress_update(&p, 0, 0, NULL);
    /* on a GPU the bar follows the upload of the weights */
    static const int fuse_of[] = {0, 1, -1}; /* TG_FUSE_CHOICES */
    mlxn_model_params mp = {.progress = load_progress, .progress_user = &p, .fuse_projections = fuse_of[o->fuse]};
    mlxn_status s = mlxn_model_load(o->model, c->dev, &mp, &c->model);
    progress_end(&p);
    if (s != MLXN_OK) {
        err(c, "cannot load the model");
        return 1;
    }
    c->info = mlxn_model_get_info(c->model);
    c->chunk = o->prefill_chunk > 0 ? o->prefill_chunk : 512;
    mlxn_session_params sp = {.prefill_chunk = c->chunk, .max_context = o->ctx_size, .kv_layout = o->kv_layout};
    if (tg_kv_cache(cmd, c->dev, o, &sp, &c->kv_name)) return 2;
    if (mlxn_session_new(c->model, &sp, &c->session) != MLXN_OK) {
        err(c, "cannot start a session");
        return 1;
    }
    c->ctx = o->ctx_size > 0 ? o->ctx_size : c->info->max_position_embeddings;
    c->kv_bytes_per_token = mlxn_session_kv_bytes_per_token(c->session);
    c->logits = malloc(sizeof(float) * (size_t)c->info->vocab_size);
    if (!c->logits) {
        fprintf(stderr, "mlxn %s: out of memory\n", cmd);
        return 1;
    }
    c->load_s = progress_now() - t0;
    return 0;
}

void tg_close(tg_ctx *c) {
    mlxn_reader_free(c->reader[0]);
    mlxn_reader_free(c->reader[1]);
    if (c->dev_token.buf) mlxn_tensor_release(&c->dev_token);
    free(c->logits);
    free(c->held);
    mlxn_session_free(c->session);
    mlxn_model_free(c->model);
    mlxn_tokenizer_free(c->tok);
    mlxn_gguf_free(c->gguf);
    mlxn_device_free(c->dev);
    memset(c, 0, sizeof *c);
}

int tg_pick_chat(tg_ctx *c, const char *name) {
    if (name) {
        if (mlxn_chat_format_from_name(name, &c->chat) != MLXN_OK) {
            fprintf(stderr,
                    "mlxn %s: --chat-format '%s' is not known: use plain, chatml, smollm, qwen2, qwen2.5, llama3, "
                    "llama3.1, llama3.2 or gemma\n",
                    c->cmd, name);
            return 2;
        }
        return 0;
    }
    const char *warn = NULL;
    c->chat = mlxn_chat_detect(mlxn_tokenizer_chat_template(c->tok), &warn);
    if (warn) fprintf(stderr, "mlxn %s: warning: %s (pick one with --chat-format)\n", c->cmd, warn);
    return 0;
}

int tg_encode_prompt(tg_ctx *c, const char *text, size_t len, int chat, const char *system, int32_t **ids,
                     size_t *n) {
    *ids = NULL;
    *n = 0;
    if (!chat) {
        if (mlxn_tokenizer_encode(c->tok, text, len, MLXN_TOKENIZE_ADD_SPECIAL, ids, n) != MLXN_OK) {
            err(c, "cannot tokenize the prompt");
            return 1;
        }
        return 0;
    }
    if (memchr(text, '\0', len)) {
        fprintf(stderr, "mlxn %s: the prompt contains a NUL byte at offset %zu\n", c->cmd,
                (size_t)((const char *)memchr(text, '\0', len) - text));
        return 1;
    }
    mlxn_chat_message m[2];
    size_t k = 0;
    if (system) m[k++] = (mlxn_chat_message){"system", system};
    m[k++] = (mlxn_chat_message){"user", text};
    mlxn_chat_params p = {.format = c->chat, .add_generation_prompt = 1,
                          .bos_token = *mlxn_tokenizer_bos_token(c->tok) ? mlxn_tokenizer_bos_token(c->tok) : NULL};
    char *r = NULL;
    size_t rl = 0;
    if (mlxn_chat_render(&p, m, k, &r, &rl) != MLXN_OK) {
        err(c, "cannot apply the chat template");
        return 1;
    }
    mlxn_status s = mlxn_tokenizer_encode(c->tok, r, rl, 0, ids, n);
    free(r);
    if (s != MLXN_OK) {
        err(c, "cannot tokenize the prompt");
        return 1;
    }
    return 0;
}

char *tg_read_all(FILE *f, size_t *len) {
    size_t cap = 4096, n = 0, r;
    char *b = malloc(cap);
    while (b && (r = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n < 2) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) free(b);
            b = nb;
        }
    }
    if (b && ferror(f)) {
        free(b);
        return NULL;
    }
    if (b) b[n] = '\0';
    if (len) *len = n;
    return b;
}

char *tg_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = tg_read_all(f, len);
    fclose(f);
    return b;
}

void tg_sample_defaults(tg_sample_opts *s) {
    memset(s, 0, sizeof *s);
    s->top_p = 1.0f;
    s->min_tokens_to_keep = 1;
    s->repetition_context_size = s->presence_context_size = s->frequency_context_size = 20;
}

int tg_make_sampler(tg_ctx *c, const tg_sample_opts *s, int seed_given, mlxn_sampler **out, uint64_t *seed_used) {
    int32_t ids[OPT_LIST_MAX * 8];
    float vals[OPT_LIST_MAX * 8];
    size_t nb = 0;
    for (int i = 0; i < s->logit_bias.n; i++) {
        const char *p = s->logit_bias.v[i];
        while (*p) {
            char *end;
            errno = 0;
            long id = strtol(p, &end, 10);
            if (end == p || (*end != '=' && *end != ':') || errno || id < 0 || id > 2147483647L) goto bad;
            p = end + 1;
            float v = strtof(p, &end);
            if (end == p || (*end && *end != ',')) goto bad;
            if (nb == sizeof ids / sizeof ids[0]) goto bad;
            ids[nb] = (int32_t)id;
            vals[nb++] = v;
            p = *end ? end + 1 : end;
        }
        continue;
    bad:
        fprintf(stderr, "mlxn %s: --logit-bias wants ID=BIAS pairs separated by commas (e.g. 13=-5,42=2), got '%s'\n",
                c->cmd, s->logit_bias.v[i]);
        return 2;
    }
    uint64_t seed = s->seed;
    if (!seed_given) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    }
    *seed_used = seed;
    mlxn_sampler_params p = {.temperature = s->temp,
                             .top_k = s->top_k,
                             .top_p = s->top_p,
                             .min_p = s->min_p,
                             .min_tokens_to_keep = s->min_tokens_to_keep,
                             .repetition_penalty = s->repetition_penalty,
                             .repetition_context_size = s->repetition_context_size,
                             .presence_penalty = s->presence_penalty,
                             .presence_context_size = s->presence_context_size,
                             .frequency_penalty = s->frequency_penalty,
                             .frequency_context_size = s->frequency_context_size,
                             .logit_bias_ids = nb ? ids : NULL,
                             .logit_bias_values = nb ? vals : NULL,
                             .n_logit_bias = nb,
                             .seed = seed};
    if (mlxn_sampler_new(&p, c->info->vocab_size, out) != MLXN_OK) {
        fprintf(stderr, "mlxn %s: bad sampling options: %s\n", c->cmd, mlxn_last_error());
        return 2;
    }
    /* penalties and logit bias need the history and the host's logits: host sampler only */
    int host_only = nb || (s->repetition_penalty != 0.0f && s->repetition_penalty != 1.0f) ||
                    s->presence_penalty != 0.0f || s->frequency_penalty != 0.0f;
    if (s->where == 2 && host_only) {
        fprintf(stderr,
                "mlxn %s: --sampler device does not apply penalties or --logit-bias (they run on the host): drop "
                "them or use --sampler host\n",
                c->cmd);
        return 2;
    }
    c->dev_sampling = s->where == 2 || (s->where == 0 && !host_only && mlxn_device_get_kind(c->dev) != MLXN_DEVICE_CPU);
    if (c->dev_sampling) {
        int64_t one[1] = {1};
        c->dev_sample = (mlxn_sample_params){.temperature = s->temp, .top_p = s->top_p, .min_p = s->min_p,
                                             .min_tokens_to_keep = s->min_tokens_to_keep, .top_k = s->top_k,
                                             .seed = seed};
        c->dev_draws = 0;
        if (mlxn_tensor_alloc(c->dev, MLXN_DTYPE_I32, 1, one, &c->dev_token) != MLXN_OK) {
            err(c, "cannot allocate the sampled token on the device");
            return 1;
        }
        /* a fixed-layout session takes its next token from its slot: then each token's read overlaps the
           next step (decode_overlapped); others (no model, or a growing cache) read before each step */
        if (c->session && !c->overlap && mlxn_session_token_slot(c->session, &c->slot) == MLXN_OK) {
            mlxn_stream *st = mlxn_device_stream(c->dev);
            if (mlxn_reader_new(st, sizeof(int32_t), &c->reader[0]) != MLXN_OK ||
                mlxn_reader_new(st, sizeof(int32_t), &c->reader[1]) != MLXN_OK) {
                err(c, "cannot set up the token reads");
                return 1;
            }
            c->overlap = 1;
        }
        mlxn_clear_error(); /* a session without a slot is not an error */
    }
    return 0;
}

/* Queue the device sampler on the session's last logits, its pick into
 * dst (i32 [1] on the device); prints the error and returns non-zero on
 * failure. */
static int sample_into(tg_ctx *c, mlxn_tensor *dst) {
    mlxn_tensor lt;
    mlxn_sample_params p = c->dev_sample;
    if (p.temperature != 0.0f) c->dev_draws++;
    p.counter = c->dev_draws ? c->dev_draws : 1; /* greedy draws nothing; the op wants a counter >= 1 */
    if (mlxn_session_logits(c->session, &lt) != MLXN_OK || mlxn_sample(mlxn_device_stream(c->dev), &lt, &p, dst) != MLXN_OK) {
        err(c, "sampling on the device failed");
        return 1;
    }
    return 0;
}

/* A device sampler's pick: -1 when every logit was -inf or NaN (printed, non-zero) */
static int bad_pick(const tg_ctx *c, int32_t tok) {
    if (tok >= 0) return 0;
    fprintf(stderr, "mlxn %s: sampling failed: every logit is -inf or NaN\n", c->cmd);
    return 1;
}

/* The next token from the logits of the last forward pass: on the device
 * (only the id comes back) or with the host sampler on c->logits; prints
 * the error and returns non-zero on failure. The device path numbers its
 * draws as the host sampler does, so the same seed picks the same tokens
 * either way. */
static int pick_token(tg_ctx *c, const tg_gen_opts *g, int32_t *tok) {
    if (!c->dev_sampling) {
        if (mlxn_sampler_sample(g->sampler, c->logits, c->held, (size_t)c->n_held, tok) == MLXN_OK) return 0;
        err(c, "sampling failed");
        return 1;
    }
    if (sample_into(c, &c->dev_token)) return 1;
    if (mlxn_stream_read(mlxn_device_stream(c->dev), c->dev_token.buf, c->dev_token.offset, tok, sizeof *tok) != MLXN_OK) {
        err(c, "sampling on the device failed");
        return 1;
    }
    return bad_pick(c, *tok);
}

static int hold(tg_ctx *c, const int32_t *t, int64_t n) {
    if (c->n_held + n > c->cap_held) {
        int64_t cap = c->cap_held ? c->cap_held : 256;
        while (cap < c->n_held + n) cap *= 2;
        int32_t *h = realloc(c->held, sizeof *h * (size_t)cap);
        if (!h) return 1;
        c->held = h;
        c->cap_held = cap;
    }
    memcpy(c->held + c->n_held, t, sizeof *t * (size_t)n);
    c->n_held += n;
    return 0;
}

static int append_text(tg_stats *st, const char *t, size_t n, size_t *cap) {
    if (st->text_len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (nc < st->text_len + n + 1) nc *= 2;
        char *b = realloc(st->text, nc);
        if (!b) return 1;
        st->text = b;
        *cap = nc;
    }
    memcpy(st->text + st->text_len, t, n);
    st->text_len += n;
    st->text[st->text_len] = '\0';
    return 0;
}

/* Write and keep a piece of streamed text. */
static int emit(const tg_gen_opts *g, tg_stats *st, const char *t, size_t n, size_t *cap) {
    if (!n) return 0;
    if (g->out) {
        fwrite(t, 1, n, g->out);
        fflush(g->out);
    }
    return g->keep_text ? append_text(st, t, n, cap) : 0;
}

/* The decode loop where each token's read overlaps the next step: the
 * device sampler writes the session's token slot, a reader begins copying
 * it back, and step t + 1 (mlxn_session_forward_next, which takes its
 * token from the slot on the device) and its sampling are queued before
 * the host waits for token t. So the host prints token t while the device
 * runs step t + 1, and the device never waits for the host between steps.
 * Same tokens, stops and counts as tg_generate's other loop, with one
 * difference: a step is queued before the host knows whether its token is
 * a stop token (or whether Ctrl-C came); that step's token then stays in
 * the cache and in c->held (a chat's next prompt repeats the stop token,
 * so the cached prefix still matches), and its sampler draw is not
 * counted. Returns 0, 1 (error, printed) or 2 (out of memory). */
static int decode_overlapped(tg_ctx *c, const tg_gen_opts *g, tg_stats *st, mlxn_detokenizer *d, size_t *cap) {
    const char *piece;
    size_t plen;
    int k = 0, rc = 0; /* k: the reader of the token the host waits for next */
    if (sample_into(c, &c->slot)) return 1;
    if (mlxn_reader_begin(c->reader[k], c->slot.buf, c->slot.offset, sizeof(int32_t)) != MLXN_OK) goto fail;
    c->reading[k] = 1;
    for (;;) {
        /* whether a step may follow this token (the other loop's max-tokens and context tests, a token early) */
        const int more = st->n_gen + 1 < g->max_tokens && !(c->ctx > 0 && mlxn_session_position(c->session) >= c->ctx);
        if (more) {
            if (mlxn_session_forward_next(c->session) != MLXN_OK) {
                err(c, "generation failed");
                rc = 1;
                break;
            }
            if (sample_into(c, &c->slot)) {
                rc = 1;
                break;
            }
            if (mlxn_reader_begin(c->reader[k ^ 1], c->slot.buf, c->slot.offset, sizeof(int32_t)) != MLXN_OK) goto fail;
            c->reading[k ^ 1] = 1;
        }
        int32_t tok;
        c->reading[k] = 0;
        if (mlxn_reader_end(c->reader[k], &tok) != MLXN_OK) goto fail;
        if (bad_pick(c, tok)) {
            rc = 1;
            break;
        }
        int is_stop = 0;
        for (size_t i = 0; i < g->n_stop; i++) is_stop |= g->stop_ids[i] == tok;
        if (tg_interrupted || (is_stop && !g->ignore_eos)) {
            st->stop = tg_interrupted ? "interrupted" : "eos";
            if (more) { /* the step queued after tok ran it: the cache holds it; its pick is dropped */
                if (hold(c, &tok, 1)) rc = 2;
                if (c->dev_sample.temperature != 0.0f) c->dev_draws--;
            }
            break;
        }
        st->n_gen++;
        if (mlxn_detokenizer_push(d, tok, &piece, &plen) != MLXN_OK || emit(g, st, piece, plen, cap)) {
            err(c, "cannot decode the output");
            rc = 1;
            break;
        }
        if (!more) {
            if (st->n_gen < g->max_tokens) st->stop = "context";
            break;
        }
        st->n_decode++;
        if (hold(c, &tok, 1)) {
            rc = 2;
            break;
        }
        k ^= 1;
    }
    goto drain;
fail:
    err(c, "reading the sampled token failed");
    rc = 1;
drain: /* a read still pending (the step after a stop): end it, so the readers are free for the next call */
    for (int i = 0; i < 2; i++) {
        if (!c->reading[i]) continue;
        int32_t unused;
        c->reading[i] = 0;
        if (mlxn_reader_end(c->reader[i], &unused) != MLXN_OK && rc == 0) {
            err(c, "generation failed");
            rc = 1;
        }
    }
    return rc;
}

int tg_generate(tg_ctx *c, const int32_t *prompt, int64_t n, const tg_gen_opts *g, tg_stats *st) {
    memset(st, 0, sizeof *st);
    st->n_prompt = n;
    st->stop = "max-tokens";
    if (n < 1) {
        fprintf(stderr, "mlxn %s: the prompt is empty (no tokens)\n", c->cmd);
        return 1;
    }
    /* the longest prefix the cache already holds; the last prompt token is
       always run again, for its logits */
    int64_t keep = 0;
    while (keep < c->n_held && keep < n - 1 && c->held[keep] == prompt[keep]) keep++;
    if (keep < mlxn_session_position(c->session)) {
        if (mlxn_session_truncate(c->session, keep) != MLXN_OK) {
            mlxn_session_reset(c->session); /* a sliding window dropped what the prefix needs */
            keep = 0;
        }
    }
    c->n_held = keep;
    st->n_reused = keep;
    double t0 = progress_now();
    progress p;
    progress_start(&p, "prompt");
    for (int64_t i = keep; i < n;) {
        int64_t m = n - i < c->chunk ? n - i : c->chunk;
        int last = i + m == n;
        if (tg_interrupted) {
            progress_end(&p);
            st->stop = "interrupted";
            st->prompt_s = progress_now() - t0;
            return 0;
        }
        if (mlxn_session_forward(c->session, prompt + i, m, last ? MLXN_LOGITS_LAST : MLXN_LOGITS_NONE,
                                 last ? c->logits : NULL) != MLXN_OK) {
            progress_end(&p);
            err(c, "the prompt failed");
            return 1;
        }
        if (hold(c, prompt + i, m)) goto oom;
        i += m;
        if (n - keep > c->chunk) progress_update(&p, (double)(i - keep), (double)(n - keep), "tokens");
    }
    progress_end(&p);
    double t1 = progress_now();
    st->prompt_s = t1 - t0;

    mlxn_detokenizer *d = NULL;
    if (mlxn_detokenizer_new(c->tok, 0, &d) != MLXN_OK) {
        err(c, "cannot start decoding");
        return 1;
    }
    size_t cap = 0;
    int rc = 0;
    const char *piece;
    size_t plen;
    if (c->overlap) {
        rc = decode_overlapped(c, g, st, d, &cap);
        if (rc == 2) {
            mlxn_detokenizer_free(d);
            goto oom;
        }
    } else {
        while (st->n_gen < g->max_tokens) {
            if (tg_interrupted) {
                st->stop = "interrupted";
                break;
            }
            int32_t tok;
            if (pick_token(c, g, &tok)) {
                rc = 1;
                break;
            }
            int is_stop = 0;
            for (size_t k = 0; k < g->n_stop; k++) is_stop |= g->stop_ids[k] == tok;
            if (is_stop && !g->ignore_eos) {
                st->stop = "eos";
                break;
            }
            st->n_gen++;
            if (mlxn_detokenizer_push(d, tok, &piece, &plen) != MLXN_OK || emit(g, st, piece, plen, &cap)) {
                err(c, "cannot decode the output");
                rc = 1;
                break;
            }
            if (st->n_gen == g->max_tokens) break;
            if (c->ctx > 0 && mlxn_session_position(c->session) >= c->ctx) {
                st->stop = "context";
                break;
            }
            /* sampling on the device: the logits stay there (pick_token reads back only the id) */
            if (mlxn_session_forward(c->session, &tok, 1, MLXN_LOGITS_LAST, c->dev_sampling ? NULL : c->logits) != MLXN_OK) {
                err(c, "generation failed");
                rc = 1;
                break;
            }
            st->n_decode++;
            if (hold(c, &tok, 1)) {
                mlxn_detokenizer_free(d);
                goto oom;
            }
        }
    }
    if (mlxn_detokenizer_flush(d, &piece, &plen) == MLXN_OK) emit(g, st, piece, plen, &cap);
    mlxn_detokenizer_free(d);
    st->gen_s = progress_now() - t1;
    return rc;
oom:
    fprintf(stderr, "mlxn %s: out of memory\n", c->cmd);
    return 1;
}

static void human_bytes(double b, char *buf, size_t n) {
    if (b >= 1024.0 * 1024 * 1024) snprintf(buf, n, "%.2f GiB", b / (1024.0 * 1024 * 1024));
    else if (b >= 1024.0 * 1024) snprintf(buf, n, "%.1f MiB", b / (1024.0 * 1024));
    else snprintf(buf, n, "%.1f KiB", b / 1024.0);
}

void tg_print_stats(const tg_ctx *c, const tg_stats *st, uint64_t seed, int sampled) {
    char kv[32], kvall[32], rss[32];
    human_bytes((double)c->kv_bytes_per_token, kv, sizeof kv);
    human_bytes((double)c->kv_bytes_per_token * (double)mlxn_session_position(c->session), kvall, sizeof kvall);
    human_bytes(tg_peak_rss(), rss, sizeof rss);
    int64_t run = st->n_prompt - st->n_reused;
    fprintf(stderr, "load: %.2f s (%s, %s)\n", c->load_s, c->info->arch, mlxn_device_name(c->dev));
    fprintf(stderr, "prompt: %lld tokens", (long long)st->n_prompt);
    if (st->n_reused) fprintf(stderr, " (%lld reused from the cache)", (long long)st->n_reused);
    fprintf(stderr, ", %.3f s, %.1f tok/s\n", st->prompt_s, st->prompt_s > 0 ? (double)run / st->prompt_s : 0.0);
    fprintf(stderr, "generation: %lld tokens, %.3f s, %.1f tok/s (stopped: %s)\n", (long long)st->n_gen, st->gen_s,
            st->gen_s > 0 ? (double)st->n_decode / st->gen_s : 0.0, st->stop);
    fprintf(stderr, "memory: peak RSS %s; KV cache %s per token (%s), %s for %lld tokens\n", rss, kv, c->kv_name,
            kvall, (long long)mlxn_session_position(c->session));
    if (sampled) fprintf(stderr, "seed: %llu\n", (unsigned long long)seed);
}

/* mlxn bench model: a model's prompt-processing and generation speed, in
 * the manner of llama-bench. Each test starts from an empty KV cache:
 *   ppN  runs N prompt tokens (in --prefill-chunk chunks), logits of the
 *        last one: N / seconds;
 *   tgN  runs N single-token forward passes, each followed by a greedy
 *        pick on the model's device from the logits left there and a read
 *        of the 4-byte token (what `mlxn generate` does per token; the
 *        next step's id is still the seeded one): N / seconds. With
 *        --tokens-on-device, the pick goes into the session's token slot
 *        and the next step reads it there (mlxn_session_forward_next):
 *        nothing comes back to the host until the end, so the steps run
 *        back to back (a fixed-layout session: a GPU's default).
 * Token ids are seeded random ids of the vocabulary (speed does not
 * depend on them). Each test runs --warmup untimed times, then -r timed
 * times; the median is the figure, with mean, standard deviation, min and
 * max. The clock is read after the device's stream is synchronized, so a
 * GPU's queued work is inside the interval.
 *
 * Beside each tgN figure: the time per token and the weight bytes one
 * decode step reads (every weight tensor once, except an untied input
 * embedding, of which a step reads one row), so bytes x tok/s is the
 * achieved weight bandwidth; on a GPU it is also given as a percentage of
 * a device-to-device copy measured in the same process (the practical
 * ceiling of a memory-bound decode). */
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>

#include "backend/cuda/cuda_bench.h"
#include "bench_util.h"
#include "commands.h"
#include "progress.h"
#include "textgen.h"

typedef struct bm_opts {
    tg_model_opts mo;
    const char *pp, *tg;
    int reps, warmup, json, depth, dev_tokens, overlap;
} bm_opts;

static const opt_spec bm_rows[] = {
    TG_MODEL_ROWS(bm_opts, mo),
    {"n-prompt", 'p', OPT_STRING, offsetof(bm_opts, pp), "N[,N...]",
     "Prompt lengths to time (0 skips the prompt tests).", "512", 0, 0, NULL},
    {"n-gen", 'n', OPT_STRING, offsetof(bm_opts, tg), "N[,N...]",
     "Generation lengths to time (0 skips the generation tests).", "128", 0, 0, NULL},
    {"depth", 'd', OPT_INT, offsetof(bm_opts, depth), "D",
     "Tokens already in the KV cache when a generation test starts (prefilled untimed before each run; "
     "decode speed at a context depth).", "0", 0, 1 << 24, NULL},
    {"repetitions", 'r', OPT_INT, offsetof(bm_opts, reps), "R", "Timed runs of each test.", "3", 1, 1000, NULL},
    {"warmup", 0, OPT_INT, offsetof(bm_opts, warmup), "W", "Untimed runs of each test first.", "1", 0, 1000,
     NULL},
    {"json", 0, OPT_FLAG, offsetof(bm_opts, json), NULL, "Print a JSON array, one object per test.", NULL, 0, 0,
     NULL},
    {"tokens-on-device", 0, OPT_FLAG, offsetof(bm_opts, dev_tokens), NULL,
     "Generation tests: each greedy pick stays on the device and the next step reads it there "
     "(mlxn_session_forward_next), instead of coming back to the host before the next step "
     "(a fixed-layout session: a GPU's default).",
     NULL, 0, 0, NULL},
    {"overlap-reads", 0, OPT_FLAG, offsetof(bm_opts, overlap), NULL,
     "Generation tests: as --tokens-on-device, and each pick also comes back to the host while the next "
     "step runs (mlxn_reader), as `mlxn generate` decodes on a fixed-layout session.",
     NULL, 0, 0, NULL},
    {0},
};

const opt_command bench_model_command = {
    .name = "bench model",
    .synopsis = "-m MODEL [-p 512] [-n 128] [-r 3] [options]",
    .summary = "Time a model's prompt processing (ppN) and generation (tgN) in tokens per second.",
    .description =
        "Like llama-bench: every test starts from an empty KV cache. ppN runs an N-token prompt; tgN runs N "
        "one-token steps (the decoding loop without sampling). Token ids are seeded random ids. Each test runs "
        "--warmup untimed times and then -r timed times; the table shows the median tokens per second with "
        "mean, standard deviation, min and max. The clock is read with the device's stream synchronized. Beside "
        "each tgN: milliseconds per token and the achieved weight bandwidth (the bytes of weights one decode step "
        "reads, every tensor once except an untied input embedding, times tokens per second); on a GPU also its "
        "percentage of a device-to-device copy measured in the same process. Random-weight models (`mlxn convert "
        "--random PRESET -q`) need no tokenizer.",
    .opts = bm_rows,
    .examples = "mlxn bench model -m SmolLM2-135M-Instruct-4bit -p 512 -n 128 -r 3\n"
                "mlxn bench model -m model.gguf -p 128,512 -n 0 -t 1 --json\n"
                "mlxn bench model -m llama-1b-4bit --device cuda --kv-dtype bf16 -p 512 -n 128 -r 5\n"
                "mlxn bench model -m gemma-4b-4bit --device cuda --kv-cache tq4 -p 0 -n 64 -d 16384 -c 16448",
};

static int parse_list(const char *s, int *v, int cap) {
    int n = 0;
    while (*s) {
        char *end;
        long x = strtol(s, &end, 10);
        if (end == s || x < 0 || x > (1 << 24) || (*end && *end != ',') || n == cap) return -1;
        if (x > 0) v[n++] = (int)x;
        s = *end ? end + 1 : end;
    }
    return n;
}

static double model_bytes(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    if (!S_ISDIR(st.st_mode)) return (double)st.st_size;
    double total = 0;
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 12 || strcmp(e->d_name + l - 12, ".safetensors")) continue;
        char f[4096];
        snprintf(f, sizeof f, "%s/%s", path, e->d_name);
        if (stat(f, &st) == 0) total += (double)st.st_size;
    }
    if (d) closedir(d);
    return total;
}

/* Bytes of weights one decode step reads: every tensor of the weight files
 * once, except an untied input embedding (a step reads one row of it).
 * A .gguf counts its file (an upper bound). 0 when unknown. */
static double decode_weight_bytes(const char *path, const mlxn_model_info *info, double file_bytes) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return file_bytes;
    mlxn_weights *w = NULL;
    if (mlxn_weights_open(path, &w) != MLXN_OK) return file_bytes;
    double total = 0, embed = 0;
    for (size_t i = 0; i < mlxn_weights_count(w); i++) {
        const mlxn_weight_info *t = mlxn_weights_at(w, i);
        total += (double)t->nbytes;
        if (strstr(t->name, "embed_tokens.")) embed += (double)t->nbytes;
    }
    mlxn_weights_free(w);
    if (!info->tied_embeddings && info->vocab_size > 0) total -= embed - embed / info->vocab_size;
    return total;
}

/* One run of a test; returns seconds, or < 0 after printing the error.
 * tok: i32 [1] on the model's device, the greedy pick of each generated
 * token. */
static double run_once(tg_ctx *c, const int32_t *ids, int n, int gen, int depth, int dev_tokens, int overlap,
                       mlxn_tensor *tok) {
    mlxn_session_reset(c->session);
    mlxn_stream *s = mlxn_device_stream(c->dev);
    mlxn_reader *rd[2] = {NULL, NULL}; /* overlap: token i's read is rd[i % 2] */
    if (gen && overlap &&
        (mlxn_reader_new(s, sizeof(int32_t), &rd[0]) != MLXN_OK || mlxn_reader_new(s, sizeof(int32_t), &rd[1]) != MLXN_OK))
        goto fail;
    /* a generation test at depth D: the first D ids go in as an untimed prompt */
    if (gen && depth > 0) {
        if (mlxn_session_forward(c->session, ids, depth, MLXN_LOGITS_LAST, c->logits) != MLXN_OK) goto fail;
        ids += depth;
    }
    if (mlxn_stream_sync(s) != MLXN_OK) goto fail;
    double t0 = progress_now();
    if (!gen) {
        if (mlxn_session_forward(c->session, ids, n, MLXN_LOGITS_LAST, c->logits) != MLXN_OK) goto fail;
    } else if (dev_tokens || overlap) {
        /* the first step takes the seeded id; each later one the pick before it, from the slot; with
           overlap, pick i's read is begun behind its sampling and ended after step i + 1 is queued */
        const mlxn_sample_params greedy = {.temperature = 0, .counter = 1};
        mlxn_tensor slot, lt;
        int32_t id;
        if (mlxn_session_token_slot(c->session, &slot) != MLXN_OK) goto fail;
        for (int i = 0; i < n; i++) {
            if ((i == 0 ? mlxn_session_forward(c->session, ids, 1, MLXN_LOGITS_LAST, NULL)
                        : mlxn_session_forward_next(c->session)) != MLXN_OK ||
                mlxn_session_logits(c->session, &lt) != MLXN_OK || mlxn_sample(s, &lt, &greedy, &slot) != MLXN_OK)
                goto fail;
            if (overlap && (mlxn_reader_begin(rd[i & 1], slot.buf, slot.offset, sizeof id) != MLXN_OK ||
                            (i > 0 && mlxn_reader_end(rd[(i - 1) & 1], &id) != MLXN_OK)))
                goto fail;
        }
        if (overlap && mlxn_reader_end(rd[(n - 1) & 1], &id) != MLXN_OK) goto fail;
    } else {
        const mlxn_sample_params greedy = {.temperature = 0, .counter = 1};
        for (int i = 0; i < n; i++) {
            mlxn_tensor lt;
            int32_t id;
            if (mlxn_session_forward(c->session, &ids[i], 1, MLXN_LOGITS_LAST, NULL) != MLXN_OK ||
                mlxn_session_logits(c->session, &lt) != MLXN_OK || mlxn_sample(s, &lt, &greedy, tok) != MLXN_OK ||
                mlxn_stream_read(s, tok->buf, tok->offset, &id, sizeof id) != MLXN_OK)
                goto fail;
        }
    }
    if (mlxn_stream_sync(s) != MLXN_OK) goto fail;
    double sec = progress_now() - t0;
    mlxn_reader_free(rd[0]);
    mlxn_reader_free(rd[1]);
    return sec;
fail:
    fprintf(stderr, "mlxn bench model: %s\n", mlxn_last_error());
    mlxn_reader_free(rd[0]);
    mlxn_reader_free(rd[1]);
    return -1;
}

int cmd_bench_model(int argc, char **argv) {
    bm_opts o = {.pp = "512", .tg = "128", .reps = 3, .warmup = 1};
    opt_args a;
    int pr = opt_parse(&bench_model_command, argc, argv, 2, &o, &a, NULL);
    if (pr != OPT_OK) return pr == OPT_HELP ? 0 : 2;
    int pp[32], tg[32];
    int npp = parse_list(o.pp, pp, 32), ntg = parse_list(o.tg, tg, 32);
    if (npp < 0 || ntg < 0) {
        opt_error(&bench_model_command, "-p and -n want lengths separated by commas (e.g. 128,512), got '%s'",
                  npp < 0 ? o.pp : o.tg);
        return 2;
    }
    if (npp + ntg == 0) {
        opt_error(&bench_model_command, "nothing to time: give a non-zero -p or -n");
        return 2;
    }
    if (!o.mo.model) {
        opt_error(&bench_model_command, "no model given: add -m PATH (an MLX model directory or a .gguf file)");
        return 2;
    }
    tg_ctx c;
    int rc = tg_open(&c, "bench model", &o.mo, TG_OPEN_MODEL_ONLY);
    if (rc) {
        tg_close(&c);
        return rc;
    }
    rc = 1;
    int longest = 0;
    for (int i = 0; i < npp; i++) longest = pp[i] > longest ? pp[i] : longest;
    for (int i = 0; i < ntg; i++) longest = o.depth + tg[i] > longest ? o.depth + tg[i] : longest;
    json_t *results = o.json ? json_array() : NULL;
    double *samples = malloc(sizeof(double) * (size_t)o.reps);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)longest);
    mlxn_tensor tok = {0};
    const int64_t one[1] = {1};
    if (mlxn_tensor_alloc(c.dev, MLXN_DTYPE_I32, 1, one, &tok) != MLXN_OK) {
        fprintf(stderr, "mlxn bench model: %s\n", mlxn_last_error());
        goto done;
    }
    if (!samples || !ids || (o.json && !results)) {
        fprintf(stderr, "mlxn bench model: out of memory\n");
        goto done;
    }
    if (c.ctx > 0 && longest > c.ctx) {
        fprintf(stderr, "mlxn bench model: a test of %d tokens does not fit the context of %lld (--ctx-size)\n",
                longest, (long long)c.ctx);
        goto done;
    }
    uint64_t s = 0x853c49e6748fea9bull;
    for (int i = 0; i < longest; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((s >> 33) % (uint64_t)c.info->vocab_size);
    }
    double bytes = model_bytes(o.mo.model);
    double wtok = decode_weight_bytes(o.mo.model, c.info, bytes);
    const char *dev = mlxn_device_name(c.dev);
    const mlxn_model_info *mi = c.info;
    /* the ceiling beside the decode figures: a device-to-device copy in this process (GPU only) */
    double copy_gbs = 0;
    if (mlxn_device_get_kind(c.dev) == MLXN_DEVICE_CUDA &&
        mlxn_cuda_copy_bandwidth(c.dev, (size_t)256 << 20, 20, &copy_gbs) != MLXN_OK) {
        fprintf(stderr, "mlxn bench model: copy bandwidth: %s\n", mlxn_last_error());
        goto done;
    }
    if (!o.json) {
        printf("model: %s (%s, %.1f MiB, %d layers), device: %s, KV cache %s (%zu bytes per token)\n", o.mo.model,
               mi->arch, bytes / 1048576.0, mi->n_layers, dev, c.kv_name, c.kv_bytes_per_token);
        printf("shape: hidden %d, %d heads (%d KV) of %d, FFN %d, vocab %d, %s embeddings, %d quantized "
               "matrices (%d fused groups, %d tiled); a decode step reads %.1f MB of weights\n",
               mi->hidden_size, mi->n_heads, mi->n_kv_heads, mi->head_dim, mi->intermediate_size, mi->vocab_size,
               mi->tied_embeddings ? "tied" : "untied", mi->n_quantized, mi->n_fused, mi->n_tiled, wtok / 1e6);
        if (copy_gbs > 0) printf("device-to-device copy: %.1f GB/s (read + write)\n", copy_gbs);
        printf("| test   |     t/s (median) |       mean ± sd |      min |      max | runs | ms/token |    GB/s "
               "| %% copy |\n");
        printf("| ------ | ---------------: | --------------: | -------: | -------: | ---: | -------: | ------: "
               "| -----: |\n");
        fflush(stdout);
    }
    for (int t = 0; t < npp + ntg; t++) {
        int gen = t >= npp, n = gen ? tg[t - npp] : pp[t];
        char name[32];
        if (gen && o.depth > 0) snprintf(name, sizeof name, "tg%d@d%d", n, o.depth);
        else snprintf(name, sizeof name, "%s%d", gen ? "tg" : "pp", n);
        progress p;
        progress_start(&p, name);
        for (int r = 0; r < o.warmup + o.reps; r++) {
            progress_update(&p, r, o.warmup + o.reps, "runs");
            double sec = run_once(&c, ids, n, gen, o.depth, o.dev_tokens, o.overlap, &tok);
            if (sec < 0) {
                progress_end(&p);
                goto done;
            }
            if (r >= o.warmup) samples[r - o.warmup] = (double)n / sec;
        }
        progress_end(&p);
        double mean = 0, var = 0;
        for (int r = 0; r < o.reps; r++) mean += samples[r] / o.reps;
        for (int r = 0; r < o.reps; r++) var += (samples[r] - mean) * (samples[r] - mean);
        double sd = o.reps > 1 ? sqrt(var / (o.reps - 1)) : 0.0;
        json_t *arr = o.json ? json_array() : NULL;
        for (int r = 0; arr && r < o.reps; r++) json_array_append_new(arr, json_real(samples[r]));
        qsort(samples, (size_t)o.reps, sizeof *samples, bench_cmp_double);
        double med = o.reps % 2 ? samples[o.reps / 2] : 0.5 * (samples[o.reps / 2 - 1] + samples[o.reps / 2]);
        /* decode only: a prompt reads the weights once for many tokens */
        double ms_tok = 1e3 / med, gbs = gen ? wtok * med / 1e9 : 0, pct = copy_gbs > 0 ? 100 * gbs / copy_gbs : 0;
        if (o.json) {
            json_t *j = json_pack("{s:s, s:s, s:f, s:s, s:i, s:s, s:s, s:i, s:i, s:i, s:o, s:f, s:f, s:f, s:f, s:f}",
                                  "model", o.mo.model, "arch", mi->arch, "model_bytes", bytes, "device", dev,
                                  "threads", mlxn_device_threads(c.dev), "kv_dtype", c.kv_name, "test", name,
                                  "n_prompt", gen ? 0 : n, "n_gen", gen ? n : 0, "reps", o.reps, "samples_ts",
                                  arr ? arr : json_null(), "median_ts", med, "mean_ts", mean, "stddev_ts", sd,
                                  "min_ts", samples[0], "max_ts", samples[o.reps - 1]);
            json_t *shape = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:b, s:i}", "hidden_size", mi->hidden_size,
                                      "n_layers", mi->n_layers, "n_heads", mi->n_heads, "n_kv_heads", mi->n_kv_heads,
                                      "head_dim", mi->head_dim, "intermediate_size", mi->intermediate_size,
                                      "vocab_size", mi->vocab_size, "tied_embeddings", mi->tied_embeddings,
                                      "n_quantized", mi->n_quantized);
            if (shape && (json_object_set_new(shape, "n_fused", json_integer(mi->n_fused)) ||
                          json_object_set_new(shape, "n_tiled", json_integer(mi->n_tiled)))) {
                json_decref(shape);
                shape = NULL;
            }
            if (j && (!shape || json_object_set_new(j, "shape", shape) ||
                      json_object_set_new(j, "ms_per_token", json_real(ms_tok)) ||
                      json_object_set_new(j, "kv_bytes_per_token", json_integer((json_int_t)c.kv_bytes_per_token)) ||
                      json_object_set_new(j, "decode_weight_bytes", json_real(wtok)) ||
                      json_object_set_new(j, "gb_s", gen ? json_real(gbs) : json_null()) ||
                      json_object_set_new(j, "copy_gb_s", copy_gbs > 0 ? json_real(copy_gbs) : json_null()) ||
                      json_object_set_new(j, "pct_of_copy", gen && copy_gbs > 0 ? json_real(pct) : json_null()))) {
                json_decref(j);
                j = NULL;
            } else if (!j) {
                json_decref(shape);
            }
            if (!j || json_array_append_new(results, j)) {
                fprintf(stderr, "mlxn bench model: cannot build the JSON output\n");
                goto done;
            }
        } else {
            char gb[16] = "", pc[16] = "";
            if (gen) snprintf(gb, sizeof gb, "%.1f", gbs);
            if (gen && copy_gbs > 0) snprintf(pc, sizeof pc, "%.0f%%", pct);
            printf("| %-6s | %16.2f | %7.2f ± %5.2f | %8.2f | %8.2f | %4d | %8.3f | %7s | %6s |\n", name, med, mean, sd,
                   samples[0], samples[o.reps - 1], o.reps, ms_tok, gb, pc);
            fflush(stdout);
        }
    }
    if (o.json) {
        char *txt = json_dumps(results, JSON_INDENT(2));
        if (!txt) {
            fprintf(stderr, "mlxn bench model: cannot build the JSON output\n");
            goto done;
        }
        printf("%s\n", txt);
        free(txt);
    }
    rc = 0;
done:
    json_decref(results);
    free(samples);
    free(ids);
    if (tok.buf) mlxn_tensor_release(&tok);
    tg_close(&c);
    return rc;
}

/* mlxn convert: write an MLX model directory (what mlx-lm loads) from a
 * GGUF file, a Hugging Face checkpoint directory, or a named random shape.
 * The options follow mlx_lm.convert (-q, --q-bits, --q-group-size,
 * --q-mode, --quant-predicate, --dtype) under shorter names; the work is
 * mlxn_convert (include/mlxn/convert.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "progress.h"
#include "mlxn/mlxn.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: mlxn convert -i SRC -o DIR [options]\n"
            "       mlxn convert --random PRESET -o DIR [options]\n\n"
            "Write an MLX model directory (config.json, model*.safetensors, index, tokenizer).\n"
            "SRC is a .gguf file (llama architecture; Q4_0/Q4_1/Q8_0/Q4_K/Q5_K map onto MLX\n"
            "affine quantization without loss, Q6_K is requantized, tokenizer.json is written\n"
            "from the GGUF vocabulary) or a Hugging Face directory (config.json + safetensors\n"
            "in bf16/f16/f32). DIR must not exist; it appears only when complete.\n\n"
            "  -i, --input SRC        the GGUF file or HF directory\n"
            "  -o, --output DIR       the directory to create\n"
            "  --random PRESET        random weights of a named shape (%s)\n"
            "  --seed N               seed for --random (default 0)\n"
            "  -q, --quantize         quantize linear and embedding weights (HF, --random, dense GGUF tensors)\n"
            "  --bits N               bits per weight (default: 4; mxfp8: 8)\n"
            "  --group-size N         group size (default: affine 64, mxfp4/mxfp8 32, nvfp4 16)\n"
            "  --mode M               affine | mxfp4 | mxfp8 | nvfp4 (default affine)\n"
            "  --recipe R             mlx-lm's mixed recipe: mixed_2_6 | mixed_3_4 | mixed_3_6 | mixed_4_6\n"
            "                         (implies -q; also spelled --quant-predicate)\n"
            "  --dtype T              f16 | bf16 | f32 for dense tensors (default: HF torch_dtype,\n"
            "                         GGUF as stored, random bf16)\n"
            "  --max-shard-mb N       shard size (default 5120, as mlx-lm)\n"
            "  -h, --help             this help\n"
            "For GGUF blocks without an exact MLX form (Q6_K): requantized with --bits/--group-size/\n"
            "--mode when --bits is given, else affine 8-bit group 32.\n",
            mlxn_convert_presets());
}

/* The library reports bytes written after each tensor; the bar draws only
 * when stderr is a terminal. */
static void convert_progress(void *user, int64_t done, int64_t total) {
    progress_update((progress *)user, (double)done, (double)total, "MB");
}

int cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    mlxn_convert_params p = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "-q") || !strcmp(a, "--quantize")) {
            p.quantize = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "mlxn convert: unknown option or missing value: %s\n\n", a);
            usage(stderr);
            return 2;
        }
        i++;
        if (!strcmp(a, "-i") || !strcmp(a, "--input")) in = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v;
        else if (!strcmp(a, "--random")) p.random_preset = v;
        else if (!strcmp(a, "--seed")) p.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--bits")) p.bits = atoi(v);
        else if (!strcmp(a, "--group-size")) p.group_size = atoi(v);
        else if (!strcmp(a, "--recipe") || !strcmp(a, "--quant-predicate")) p.recipe = v;
        else if (!strcmp(a, "--max-shard-mb")) p.max_shard_bytes = (int64_t)(atof(v) * 1048576.0);
        else if (!strcmp(a, "--mode")) {
            if (mlxn_quant_mode_parse(v, &p.mode) != MLXN_OK) {
                fprintf(stderr, "mlxn convert: --mode %s: %s\n", v, mlxn_last_error());
                return 2;
            }
        } else if (!strcmp(a, "--dtype")) {
            if (!strcmp(v, "f16") || !strcmp(v, "float16")) p.dtype = MLXN_DTYPE_F16;
            else if (!strcmp(v, "bf16") || !strcmp(v, "bfloat16")) p.dtype = MLXN_DTYPE_BF16;
            else if (!strcmp(v, "f32") || !strcmp(v, "float32")) p.dtype = MLXN_DTYPE_F32;
            else {
                fprintf(stderr, "mlxn convert: --dtype must be f16, bf16 or f32 (got %s)\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "mlxn convert: unknown option %s\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!out || (!in && !p.random_preset) || (in && p.random_preset)) {
        fprintf(stderr, "mlxn convert: give -o DIR and exactly one of -i SRC or --random PRESET\n\n");
        usage(stderr);
        return 2;
    }
    progress bar;
    progress_start(&bar, "converting");
    p.progress = convert_progress;
    p.progress_user = &bar;
    mlxn_status st = mlxn_convert(in, out, &p);
    progress_end(&bar);
    if (st != MLXN_OK) {
        fprintf(stderr, "mlxn convert: %s: %s\n", mlxn_status_str(st), mlxn_last_error());
        return 1;
    }
    printf("wrote %s\n", out);
    return 0;
}

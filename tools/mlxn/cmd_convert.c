/* mlxn convert: write an MLX model directory (what mlx-lm loads) from a
 * GGUF file, a Hugging Face checkpoint directory, or a named random shape.
 * The options follow mlx_lm.convert (-q, --q-bits, --q-group-size,
 * --q-mode, --quant-predicate, --dtype) under shorter names; the work is
 * mlxn_convert (include/mlxn/convert.h). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "progress.h"
#include "mlxn/mlxn.h"

typedef struct convert_opts {
    const char *in, *out, *random, *recipe;
    uint64_t seed;
    int quantize, bits, group_size, mode, dtype;
    float max_shard_mb;
} convert_opts;

/* The --mode and --dtype choices, in the order of their `choices` text. */
static const mlxn_quant_mode modes[] = {MLXN_QUANT_AFFINE, MLXN_QUANT_MXFP4, MLXN_QUANT_MXFP8, MLXN_QUANT_NVFP4};
static const mlxn_dtype dtypes[] = {MLXN_DTYPE_F16,  MLXN_DTYPE_BF16, MLXN_DTYPE_F32,
                                    MLXN_DTYPE_F16,  MLXN_DTYPE_BF16, MLXN_DTYPE_F32};
#define DTYPE_UNSET (-1)

static const opt_spec convert_rows[] = {
    {"input", 'i', OPT_STRING, offsetof(convert_opts, in), "SRC",
     "The source: a .gguf file (llama architecture) or a Hugging Face directory (config.json + safetensors in "
     "bf16/f16/f32).",
     NULL, 0, 0, NULL},
    {"output", 'o', OPT_STRING, offsetof(convert_opts, out), "DIR",
     "The directory to create; it must not exist, and appears only when complete.", NULL, 0, 0, NULL},
    {"random", 0, OPT_STRING, offsetof(convert_opts, random), "PRESET",
     "Write random weights of a named shape instead of reading a source (the presets are listed below).", NULL, 0,
     0, NULL},
    {"seed", 0, OPT_U64, offsetof(convert_opts, seed), "N", "The seed of --random.", "0", 0, 0, NULL},
    {"quantize", 'q', OPT_FLAG, offsetof(convert_opts, quantize), NULL,
     "Quantize linear and embedding weights (HF input, --random, dense GGUF tensors).", NULL, 0, 0, NULL},
    {"bits", 0, OPT_INT, offsetof(convert_opts, bits), "N", "Bits per weight.", "4; mxfp8: 8", 0, OPT_NO_MAX,
     NULL},
    {"group-size", 0, OPT_INT, offsetof(convert_opts, group_size), "N", "Weights per scale (the group size).",
     "affine 64, mxfp4/mxfp8 32, nvfp4 16", 0, OPT_NO_MAX, NULL},
    {"mode", 0, OPT_CHOICE, offsetof(convert_opts, mode), "MODE", "The quantization mode.", "affine", 0, 0,
     "affine|mxfp4|mxfp8|nvfp4"},
    {"recipe", 0, OPT_STRING, offsetof(convert_opts, recipe), "RECIPE",
     "mlx-lm's mixed recipe: mixed_2_6, mixed_3_4, mixed_3_6 or mixed_4_6 (affine; implies -q).", NULL, 0, 0,
     NULL},
    {"quant-predicate", 0, OPT_STRING, offsetof(convert_opts, recipe), "RECIPE",
     "The same as --recipe (mlx_lm.convert's name for it).", NULL, 0, 0, NULL},
    {"dtype", 0, OPT_CHOICE, offsetof(convert_opts, dtype), "T", "The dtype of dense tensors.",
     "HF: config.json's torch_dtype; GGUF: as stored; random: bf16", 0, 0,
     "f16|bf16|f32|float16|bfloat16|float32"},
    {"max-shard-mb", 0, OPT_FLOAT, offsetof(convert_opts, max_shard_mb), "MB",
     "The largest safetensors shard, in MiB (0: the default).", "5120, as mlx-lm", 0, OPT_NO_MAX, NULL},
    {0},
};

/* The library owns the list of presets. */
static void presets_note(FILE *f) { fprintf(f, "Presets of --random: %s.", mlxn_convert_presets()); }

const opt_command convert_command = {
    .name = "convert",
    .synopsis = "(-i SRC | --random PRESET) -o DIR [options]",
    .summary = "Write an MLX model directory from GGUF, a Hugging Face checkpoint or a random shape.",
    .description = "Writes what mlx-lm loads: config.json, model*.safetensors (with their index) and the "
                   "tokenizer. A GGUF file's Q4_0/Q4_1/Q8_0/Q4_K/Q5_K blocks map onto MLX affine quantization "
                   "without loss; Q6_K is requantized (with --bits/--group-size/--mode when --bits is given, else "
                   "affine 8-bit group 32), and tokenizer.json is written from the GGUF vocabulary. The options "
                   "follow mlx_lm.convert.",
    .opts = convert_rows,
    .examples = "mlxn convert -i SmolLM2-135M-Instruct.Q4_1.gguf -o SmolLM2-135M-Instruct-4bit\n"
                "mlxn convert -i Llama-3.2-1B-Instruct -o llama-1b-4bit -q\n"
                "mlxn convert --random tiny-llama -q --mode mxfp4 -o tiny",
    .note = presets_note,
};

/* The library reports bytes written after each tensor; the bar draws only
 * when stderr is a terminal. */
static void convert_progress(void *user, int64_t done, int64_t total) {
    progress_update((progress *)user, (double)done, (double)total, "MB");
}

int cmd_convert(int argc, char **argv) {
    convert_opts o = {.dtype = DTYPE_UNSET};
    opt_args a;
    int pr = opt_parse(&convert_command, argc, argv, 1, &o, &a, NULL);
    if (pr != OPT_OK) return pr == OPT_HELP ? 0 : 2;
    if (!o.out) {
        opt_error(&convert_command, "no output given: add -o DIR (the model directory to create)");
        return 2;
    }
    if (!o.in == !o.random) {
        opt_error(&convert_command, o.in ? "give either -i SRC or --random PRESET, not both"
                                         : "no source given: add -i SRC (a .gguf file or HF directory) or "
                                           "--random PRESET");
        return 2;
    }
    mlxn_convert_params p = {
        .random_preset = o.random,
        .seed = o.seed,
        .quantize = o.quantize,
        .mode = modes[o.mode],
        .bits = o.bits,
        .group_size = o.group_size,
        .recipe = o.recipe,
        .dtype = o.dtype == DTYPE_UNSET ? (mlxn_dtype)0 : dtypes[o.dtype], /* 0: the source's own */
        .max_shard_bytes = (int64_t)((double)o.max_shard_mb * 1048576.0),
    };
    const char *in = o.in, *out = o.out;
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

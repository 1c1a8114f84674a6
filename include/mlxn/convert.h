/* Convert: write an MLX model directory (what mlx-lm's convert writes and
 * loads) from
 *   - a GGUF file (llama architecture): config.json from the llama.* keys,
 *     weights renamed to mlx-lm's names, the q/k rows put back in the order
 *     the Hugging Face checkpoint had (convert_hf_to_gguf permutes them for
 *     ggml's interleaved rope), GGML blocks mapped onto MLX affine
 *     quantization without loss where the math allows:
 *         Q4_0 -> affine 4-bit group 32, scale d, bias -8d        (f16)
 *         Q4_1 -> affine 4-bit group 32, scale d, bias m          (f16)
 *         Q8_0 -> affine 8-bit group 32, codes q + 128, scale d,
 *                 bias -128d                                      (f16)
 *         Q4_K -> affine 4-bit group 32, scale d*sc, bias -dmin*m (f32:
 *         Q5_K -> affine 5-bit group 32, likewise                  the
 *                 products need 17 bits of mantissa)
 *         F32/F16/BF16 -> dense, same dtype
 *     (an f16 scale or bias that would overflow makes that tensor's scales
 *     f32); other block types that can be dequantized (Q6_K) are
 *     dequantized and requantized with the given bits/group (default affine
 *     8-bit group 32). tokenizer.json and tokenizer_config.json are written
 *     from the GGUF vocabulary (byte-level BPE, tokenizer.ggml.model "gpt2").
 *   - a Hugging Face directory (config.json + *.safetensors in bf16, f16 or
 *     f32; llama, mistral, qwen2, qwen3, gemma3_text): cast to `dtype`,
 *     quantized as mlx-lm's convert quantizes (every linear layer and the
 *     embedding whose input size is a multiple of the group; MLX's
 *     rounding, bit for bit) with bits/group/mode or a mixed recipe;
 *     tokenizer and generation files are copied.
 *   - a named shape with random weights (mlxn_convert_presets() lists
 *     them), for benchmarks and tests: quantized models get random codes
 *     and scales directly, so even 8B shapes take seconds.
 * The directory is built under a temporary name next to `dst` and renamed
 * at the end: on any error nothing is left at `dst`. `dst` must not exist.
 * Weights go to model.safetensors, or model-0000i-of-0000n.safetensors
 * shards of at most max_shard_bytes (mlx-lm's rule), with
 * model.safetensors.index.json either way, as mlx-lm writes them. */
#ifndef MLXN_CONVERT_H
#define MLXN_CONVERT_H

#include <stdint.h>

#include "mlxn/dtype.h"
#include "mlxn/quant.h"
#include "mlxn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mlxn_convert_params {
    /* Non-NULL: ignore `src` and write a random model of this shape. */
    const char *random_preset;
    uint64_t seed;          /* random weights: the seed */
    /* Quantize dense linear and embedding weights (HF input, random
     * presets, dense tensors of a GGUF). A recipe implies it. */
    int quantize;
    mlxn_quant_mode mode;   /* default affine */
    int bits;               /* 0: the mode's default (affine 4, mxfp8 8, else 4) */
    int group_size;         /* 0: the mode's default (affine 64, mxfp* 32, nvfp4 16) */
    /* (GGUF blocks without an exact MLX form, Q6_K, are requantized with
     * mode/bits/group_size when bits is given, else affine 8-bit group 32.) */
    /* mlx-lm's mixed recipes: "mixed_2_6", "mixed_3_4", "mixed_3_6",
     * "mixed_4_6" (affine only). NULL: uniform. */
    const char *recipe;
    /* Dense tensor dtype: 0 = HF: config.json's torch_dtype (else as
     * stored); random: bf16; GGUF: as stored. Or F16, BF16, F32. */
    mlxn_dtype dtype;
    int64_t max_shard_bytes; /* 0 = 5 GiB, mlx-lm's shard size */
    /* Optional: called after each tensor is produced and added to its shard
     * (where the time goes: tensors are converted as they are written) with
     * the bytes written so far and the total. */
    void (*progress)(void *user, int64_t done_bytes, int64_t total_bytes);
    void *progress_user;
} mlxn_convert_params;

/* Convert `src` (a .gguf file or a Hugging Face model directory; ignored
 * with a random preset) into a new MLX model directory `dst`. params may
 * be NULL for a plain conversion. Errors name the file and tensor. */
mlxn_status mlxn_convert(const char *src, const char *dst, const mlxn_convert_params *params);

/* "tiny-llama, tiny-qwen3, ..." the random presets. */
const char *mlxn_convert_presets(void);

#ifdef __cplusplus
}
#endif
#endif

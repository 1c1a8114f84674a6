/* Element types: every dtype safetensors/MLX can store, plus conversions
 * between f32 and the 16-bit float formats (round-to-nearest-even, the
 * same rounding MLX and numpy use). */
#ifndef MLXN_DTYPE_H
#define MLXN_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mlxn_dtype {
    MLXN_DTYPE_BOOL = 0,
    MLXN_DTYPE_U8,
    MLXN_DTYPE_I8,
    MLXN_DTYPE_U16,
    MLXN_DTYPE_I16,
    MLXN_DTYPE_U32,
    MLXN_DTYPE_I32,
    MLXN_DTYPE_U64,
    MLXN_DTYPE_I64,
    MLXN_DTYPE_F16,
    MLXN_DTYPE_BF16,
    MLXN_DTYPE_F32,
    MLXN_DTYPE_F64,
    MLXN_DTYPE_F8_E4M3,
    MLXN_DTYPE_F8_E5M2,
    MLXN_DTYPE_C64, /* complex64: two f32 */
    MLXN_DTYPE_COUNT
} mlxn_dtype;

/* Bytes per element; 0 for an invalid dtype. */
size_t mlxn_dtype_size(mlxn_dtype dt);
/* Lower-case name ("bf16"); "invalid" for an invalid dtype. */
const char *mlxn_dtype_name(mlxn_dtype dt);
/* 1 for f16/bf16/f32/f64/f8 types. */
int mlxn_dtype_is_float(mlxn_dtype dt);

float mlxn_f16_to_f32(uint16_t h);
uint16_t mlxn_f32_to_f16(float f);
float mlxn_bf16_to_f32(uint16_t b);
uint16_t mlxn_f32_to_bf16(float f);

#ifdef __cplusplus
}
#endif
#endif

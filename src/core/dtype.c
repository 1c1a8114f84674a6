/* dtype sizes and names, and f32 <-> f16/bf16 conversion with
 * round-to-nearest-even (NaN stays NaN, overflow goes to infinity). */
#include <string.h>

#include "mlxn/dtype.h"

static const struct {
    const char *name;
    size_t size;
    int is_float;
} dtype_table[MLXN_DTYPE_COUNT] = {
    [MLXN_DTYPE_BOOL] = {"bool", 1, 0},    [MLXN_DTYPE_U8] = {"u8", 1, 0},
    [MLXN_DTYPE_I8] = {"i8", 1, 0},        [MLXN_DTYPE_U16] = {"u16", 2, 0},
    [MLXN_DTYPE_I16] = {"i16", 2, 0},      [MLXN_DTYPE_U32] = {"u32", 4, 0},
    [MLXN_DTYPE_I32] = {"i32", 4, 0},      [MLXN_DTYPE_U64] = {"u64", 8, 0},
    [MLXN_DTYPE_I64] = {"i64", 8, 0},      [MLXN_DTYPE_F16] = {"f16", 2, 1},
    [MLXN_DTYPE_BF16] = {"bf16", 2, 1},    [MLXN_DTYPE_F32] = {"f32", 4, 1},
    [MLXN_DTYPE_F64] = {"f64", 8, 1},      [MLXN_DTYPE_F8_E4M3] = {"f8_e4m3", 1, 1},
    [MLXN_DTYPE_F8_E5M2] = {"f8_e5m2", 1, 1}, [MLXN_DTYPE_C64] = {"c64", 8, 0},
};

static int valid(mlxn_dtype dt) { return (unsigned)dt < MLXN_DTYPE_COUNT; }

size_t mlxn_dtype_size(mlxn_dtype dt) { return valid(dt) ? dtype_table[dt].size : 0; }
const char *mlxn_dtype_name(mlxn_dtype dt) { return valid(dt) ? dtype_table[dt].name : "invalid"; }
int mlxn_dtype_is_float(mlxn_dtype dt) { return valid(dt) ? dtype_table[dt].is_float : 0; }

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float mlxn_bf16_to_f32(uint16_t b) { return bits_f32((uint32_t)b << 16); }

uint16_t mlxn_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

float mlxn_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) return bits_f32(sign | 0x7f800000u | (m << 13)); /* inf / NaN */
    if (e == 0) {
        /* zero or subnormal: m * 2^-24, exact in f32 */
        float f = (float)m * 5.9604644775390625e-08f;
        return sign ? -f : f;
    }
    return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

uint16_t mlxn_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu)); /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds past 65504: inf */
    if (a < 0x38800000u) {
        /* below the smallest normal (2^-14): subnormal or zero. Scaling by
         * 2^24 makes the f16 unit 1.0; rint-style rounding via the magic
         * 0.5 * 2^24 addend gives round-to-nearest-even. */
        float af = bits_f32(a);
        float r = af * 16777216.0f; /* exact: power-of-two scale */
        uint32_t q = (uint32_t)r;
        float frac = r - (float)q;
        if (frac > 0.5f || (frac == 0.5f && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t e = (a >> 23) - 112u, m = a & 0x7fffffu;
    uint32_t h = (e << 10) | (m >> 13);
    uint32_t rest = m & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++; /* may carry into exponent: fine */
    return (uint16_t)(sign | h);
}

/* add / scale / copy (mlxn_add, mlxn_scale, mlxn_copy) on the CPU backend,
 * against a reference written here that walks every element by its index:
 *  - add: same shape and a broadcast of b over a's leading dims (a bias),
 *    b in f32/f16/bf16, a strided a, in place (out == a); exact (one f32
 *    addition per element, the same one the reference does).
 *  - scale: exact, in place and not.
 *  - copy: contiguous -> strided slot range of a [H, cap, D] cache,
 *    strided (transposed) -> contiguous, every dtype pair; exact for same
 *    dtype and f32 -> f16/bf16 rounding (round to nearest even as
 *    mlxn_f32_to_bf16), and untouched bytes outside the destination view.
 *  - with 1 and 3 threads; outputs poisoned (NaN) first.
 *  - bad arguments: shapes, dtypes, aliasing, zero dst stride. */
#include <string.h>

#include "harness.h"

static mlxn_tensor alloc_contig(mlxn_device *dev, mlxn_dtype dt, int ndim, const int64_t *shape) {
    int64_t st[MLXN_MAX_DIMS], s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        st[i] = s;
        s *= shape[i];
    }
    return t_tensor_strided(dev, dt, ndim, shape, st);
}

static int64_t offset_of(const mlxn_tensor *t, int64_t flat) {
    int64_t off = 0;
    for (int i = t->ndim - 1; i >= 0; i--) {
        off += (flat % t->shape[i]) * t->strides[i];
        flat /= t->shape[i];
    }
    return off;
}

static float get(const mlxn_tensor *t, int64_t flat) {
    const char *base = (const char *)mlxn_buffer_host(t->buf) + t->offset;
    int64_t o = offset_of(t, flat);
    switch (t->dtype) {
    case MLXN_DTYPE_F16: return mlxn_f16_to_f32(((const uint16_t *)base)[o]);
    case MLXN_DTYPE_BF16: return mlxn_bf16_to_f32(((const uint16_t *)base)[o]);
    default: return ((const float *)base)[o];
    }
}

/* Fill every element of t's view with random values (rounded to its dtype). */
static void fill(mlxn_tensor *t) {
    char *base = (char *)mlxn_buffer_host(t->buf) + t->offset;
    int64_t n = mlxn_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        int64_t o = offset_of(t, i);
        float v = t_randn();
        switch (t->dtype) {
        case MLXN_DTYPE_F16: ((uint16_t *)base)[o] = mlxn_f32_to_f16(v); break;
        case MLXN_DTYPE_BF16: ((uint16_t *)base)[o] = mlxn_f32_to_bf16(v); break;
        default: ((float *)base)[o] = v; break;
        }
    }
}

static float round_to(mlxn_dtype dt, float v) {
    if (dt == MLXN_DTYPE_F16) return mlxn_f16_to_f32(mlxn_f32_to_f16(v));
    if (dt == MLXN_DTYPE_BF16) return mlxn_bf16_to_f32(mlxn_f32_to_bf16(v));
    return v;
}

static const mlxn_dtype FLOATS[3] = {MLXN_DTYPE_F32, MLXN_DTYPE_F16, MLXN_DTYPE_BF16};

static void test_add(mlxn_device *dev) {
    mlxn_stream *s = mlxn_device_stream(dev);
    const int64_t shape[3] = {3, 5, 37};
    for (int bd = 0; bd < 3; bd++) {
        for (int bcast = 0; bcast < 2; bcast++) {
            for (int strided = 0; strided < 2; strided++) {
                /* a: [3, 5, 37], contiguous or with padded rows (stride 40) */
                int64_t ast[3] = {5 * 40, 40, 1};
                mlxn_tensor a = strided ? t_tensor_strided(dev, MLXN_DTYPE_F32, 3, shape, ast)
                                        : alloc_contig(dev, MLXN_DTYPE_F32, 3, shape);
                mlxn_tensor b = bcast ? alloc_contig(dev, FLOATS[bd], 1, shape + 2)
                                      : alloc_contig(dev, FLOATS[bd], 3, shape);
                mlxn_tensor out = alloc_contig(dev, MLXN_DTYPE_F32, 3, shape);
                fill(&a);
                fill(&b);
                CHECK_OK(mlxn_add(s, &a, &b, &out));
                int bad = 0;
                for (int64_t i = 0; i < 3 * 5 * 37; i++) {
                    float want = get(&a, i) + get(&b, bcast ? i % 37 : i);
                    if (get(&out, i) != want) bad++;
                }
                CHECK(bad == 0, "add b=%s bcast=%d strided=%d: %d wrong", mlxn_dtype_name(FLOATS[bd]), bcast,
                      strided, bad);
                mlxn_buffer_free(a.buf);
                mlxn_buffer_free(b.buf);
                mlxn_buffer_free(out.buf);
            }
        }
    }
    /* in place: out == a */
    int64_t sh[2] = {4, 67};
    mlxn_tensor a = alloc_contig(dev, MLXN_DTYPE_F32, 2, sh), b = alloc_contig(dev, MLXN_DTYPE_F32, 1, sh + 1);
    mlxn_tensor ref = alloc_contig(dev, MLXN_DTYPE_F32, 2, sh);
    fill(&a);
    fill(&b);
    for (int64_t i = 0; i < 4 * 67; i++) ((float *)mlxn_buffer_host(ref.buf))[i] = get(&a, i) + get(&b, i % 67);
    CHECK_OK(mlxn_add(s, &a, &b, &a));
    CHECK(memcmp(mlxn_buffer_host(a.buf), mlxn_buffer_host(ref.buf), sizeof(float) * 4 * 67) == 0,
          "add in place differs");
    /* bad arguments */
    int64_t bad_b[1] = {66};
    mlxn_tensor bb = alloc_contig(dev, MLXN_DTYPE_F32, 1, bad_b);
    CHECK_FAILS(mlxn_add(s, &a, &bb, &ref), MLXN_ERR_SHAPE);
    mlxn_tensor ai = alloc_contig(dev, MLXN_DTYPE_I32, 2, sh);
    CHECK_FAILS(mlxn_add(s, &ai, &b, &ref), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_add(s, &a, &b, &ai), MLXN_ERR_DTYPE);
    mlxn_tensor half = a; /* out overlapping a without being a */
    half.offset = sizeof(float) * 67;
    half.shape[0] = 3;
    mlxn_tensor a3 = a;
    a3.shape[0] = 3;
    CHECK_FAILS(mlxn_add(s, &a3, &b, &half), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_add(NULL, &a, &b, &ref), MLXN_ERR_INVALID_ARGUMENT);
    mlxn_buffer_free(a.buf);
    mlxn_buffer_free(b.buf);
    mlxn_buffer_free(ref.buf);
    mlxn_buffer_free(bb.buf);
    mlxn_buffer_free(ai.buf);
}

static void test_scale(mlxn_device *dev) {
    mlxn_stream *s = mlxn_device_stream(dev);
    int64_t sh[2] = {7, 129};
    mlxn_tensor x = alloc_contig(dev, MLXN_DTYPE_F32, 2, sh), out = alloc_contig(dev, MLXN_DTYPE_F32, 2, sh);
    fill(&x);
    CHECK_OK(mlxn_scale(s, &x, 8.0f, &out));
    int bad = 0;
    for (int64_t i = 0; i < 7 * 129; i++) bad += get(&out, i) != get(&x, i) * 8.0f;
    CHECK(bad == 0, "scale: %d wrong", bad);
    CHECK_OK(mlxn_scale(s, &x, -0.5f, &x));
    bad = 0;
    for (int64_t i = 0; i < 7 * 129; i++) bad += get(&x, i) != get(&out, i) * (-0.5f / 8.0f);
    CHECK(bad == 0, "scale in place: %d wrong", bad);
    mlxn_tensor o2 = out;
    o2.shape[1] = 128;
    CHECK_FAILS(mlxn_scale(s, &x, 1.0f, &o2), MLXN_ERR_SHAPE);
    mlxn_buffer_free(x.buf);
    mlxn_buffer_free(out.buf);
}

static void test_copy(mlxn_device *dev) {
    mlxn_stream *s = mlxn_device_stream(dev);
    for (int sd = 0; sd < 3; sd++) {
        for (int dd = 0; dd < 3; dd++) {
            /* new keys [H=3, T=5, D=19] into slots 7..11 of a cache [3, cap=16, 19] */
            int64_t csh[3] = {3, 16, 19};
            mlxn_tensor cache = alloc_contig(dev, FLOATS[dd], 3, csh);
            size_t cbytes = mlxn_tensor_nbytes(&cache);
            int64_t ksh[3] = {3, 5, 19};
            mlxn_tensor k = alloc_contig(dev, FLOATS[sd], 3, ksh);
            fill(&k);
            mlxn_tensor slot = cache;
            slot.shape[1] = 5;
            slot.offset = 7 * 19 * mlxn_dtype_size(FLOATS[dd]);
            CHECK_OK(mlxn_copy(s, &k, &slot));
            int bad = 0;
            for (int64_t i = 0; i < 3 * 5 * 19; i++)
                if (get(&slot, i) != round_to(FLOATS[dd], get(&k, i))) bad++;
            /* everything outside the slot range is still the poison pattern */
            const unsigned char *cb = mlxn_buffer_host(cache.buf);
            size_t esz = mlxn_dtype_size(FLOATS[dd]);
            for (int64_t h = 0; h < 3; h++)
                for (int64_t t = 0; t < 16; t++) {
                    if (t >= 7 && t < 12) continue;
                    const unsigned char *p = cb + ((h * 16 + t) * 19) * esz;
                    for (size_t b = 0; b < 19 * esz; b++) bad += p[b] != 0xFF;
                }
            (void)cbytes;
            CHECK(bad == 0, "copy %s -> %s cache slots: %d wrong", mlxn_dtype_name(FLOATS[sd]),
                  mlxn_dtype_name(FLOATS[dd]), bad);
            /* transposed view [T, H, D] of a [H, T, D] tensor -> contiguous */
            mlxn_tensor tv = k;
            tv.shape[0] = 5, tv.shape[1] = 3;
            tv.strides[0] = 19, tv.strides[1] = 5 * 19;
            int64_t tsh[3] = {5, 3, 19};
            mlxn_tensor dst = alloc_contig(dev, FLOATS[dd], 3, tsh);
            CHECK_OK(mlxn_copy(s, &tv, &dst));
            bad = 0;
            for (int64_t t = 0; t < 5; t++)
                for (int64_t h = 0; h < 3; h++)
                    for (int64_t d = 0; d < 19; d++)
                        bad += get(&dst, (t * 3 + h) * 19 + d) != round_to(FLOATS[dd], get(&k, (h * 5 + t) * 19 + d));
            CHECK(bad == 0, "copy transposed %s -> %s: %d wrong", mlxn_dtype_name(FLOATS[sd]),
                  mlxn_dtype_name(FLOATS[dd]), bad);
            mlxn_buffer_free(cache.buf);
            mlxn_buffer_free(k.buf);
            mlxn_buffer_free(dst.buf);
        }
    }
    /* f32 -> bf16 rounds to nearest even: 1 + 2^-8 is a tie, goes to 1 */
    int64_t one = 2;
    mlxn_tensor f = alloc_contig(dev, MLXN_DTYPE_F32, 1, &one), h = alloc_contig(dev, MLXN_DTYPE_BF16, 1, &one);
    float *fv = mlxn_buffer_host(f.buf);
    fv[0] = 1.0f + 1.0f / 256.0f;
    fv[1] = 1.0f + 3.0f / 256.0f;
    CHECK_OK(mlxn_copy(s, &f, &h));
    uint16_t *hv = mlxn_buffer_host(h.buf);
    CHECK(hv[0] == 0x3F80 && hv[1] == 0x3F82, "bf16 rounding: %04x %04x", hv[0], hv[1]);
    /* bad arguments */
    mlxn_tensor z = h;
    z.strides[0] = 0;
    CHECK_FAILS(mlxn_copy(s, &f, &z), MLXN_ERR_SHAPE);
    mlxn_tensor ov = f; /* dst overlapping src */
    CHECK_FAILS(mlxn_copy(s, &f, &ov), MLXN_ERR_INVALID_ARGUMENT);
    int64_t three = 3;
    mlxn_tensor f3 = alloc_contig(dev, MLXN_DTYPE_F32, 1, &three);
    CHECK_FAILS(mlxn_copy(s, &f, &f3), MLXN_ERR_SHAPE);
    mlxn_tensor iv = alloc_contig(dev, MLXN_DTYPE_I32, 1, &one);
    CHECK_FAILS(mlxn_copy(s, &iv, &h), MLXN_ERR_DTYPE);
    mlxn_buffer_free(f.buf);
    mlxn_buffer_free(h.buf);
    mlxn_buffer_free(f3.buf);
    mlxn_buffer_free(iv.buf);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_ops_elementwise");
    const int threads[2] = {1, 3};
    for (int i = 0; i < 2; i++) {
        mlxn_device *dev = t_cpu_device(threads[i], MLXN_CPU_ISA_AUTO);
        if (!dev) break;
        test_add(dev);
        test_scale(dev);
        test_copy(dev);
        mlxn_device_free(dev);
    }
    return t_finish();
}

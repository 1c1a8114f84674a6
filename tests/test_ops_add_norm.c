/* add_rms_norm on the CPU: on every ISA x thread count, the fused op gives
 * the very bits of mlxn_add followed by mlxn_rms_norm on the same device
 * (sum and out, every layout and in-place form of add_norm_cases.h), sum is
 * exactly a + b, out is within f32 rounding of a double-precision
 * reference, nothing outside the outputs is written; and bad arguments
 * fail with a message naming them. */
#include "add_norm_cases.h"

#define REF_NMSE 1e-12 /* as test_ops_norm: a few ulp per element */

static const mlxn_cpu_isa isas[3] = {MLXN_CPU_ISA_SCALAR, MLXN_CPU_ISA_AVX2, MLXN_CPU_ISA_AVX512};
static const char *isa_names[3] = {"scalar", "avx2", "avx512"};

static double worst_ref;

static void test_cases(void) {
    for (int ii = 0; ii < 3; ii++) {
        for (int th = 1; th <= 3; th++) {
            mlxn_device *dev = t_cpu_device(th, isas[ii]);
            for (int si = 0; si < AN_N_SHAPES; si++) {
                for (int v = 0; v < AN_N_VARIANTS; v++) {
                    an_case c = an_make(si, v);
                    char desc[200], label[260];
                    an_describe(&c, desc, sizeof desc);
                    snprintf(label, sizeof label, "%s/%dt %s", isa_names[ii], th, desc);
                    an_inputs in = an_inputs_new(&c, si);
                    size_t n = (size_t)an_n(&c), bytes = (n ? n : 1) * 4;
                    float *fs = malloc(bytes), *fo = malloc(bytes), *us = malloc(bytes), *uo = malloc(bytes);
                    float *rs = malloc(bytes), *ro = malloc(bytes);
                    an_run(dev, &c, &in, 1, fs, fo, label);
                    an_run(dev, &c, &in, 0, us, uo, label);
                    CHECK(memcmp(fs, us, n * 4) == 0, "%s: sum differs from mlxn_add's", label);
                    CHECK(memcmp(fo, uo, n * 4) == 0, "%s: out differs from mlxn_add + mlxn_rms_norm", label);
                    an_reference(&c, &in, rs, ro);
                    an_check_reference(&c, rs, ro, fs, fo, REF_NMSE, &worst_ref, label);
                    free(fs), free(fo), free(us), free(uo), free(rs), free(ro);
                    an_inputs_free(&in);
                }
            }
            mlxn_device_free(dev);
        }
    }
}

/* A contiguous f32 view [3, 8] at element `at` of buffer buf. */
static mlxn_tensor at_elem(mlxn_buffer *buf, int64_t at) {
    mlxn_tensor t;
    int64_t shape[2] = {3, 8};
    memset(&t, 0, sizeof t);
    CHECK_OK(mlxn_tensor_view(buf, MLXN_DTYPE_F32, 2, shape, (size_t)at * 4, &t));
    return t;
}

static void test_bad_args(void) {
    mlxn_device *dev = t_cpu_device(1, MLXN_CPU_ISA_AVX2);
    mlxn_stream *s = mlxn_device_stream(dev);
    int64_t xs[2] = {3, 8}, x9[2] = {3, 9}, x38[3] = {1, 3, 8}, ws[1] = {8}, w9[1] = {9}, s0[1] = {0};
    mlxn_buffer *big = NULL;
    CHECK_OK(mlxn_buffer_new(dev, 200 * 4, &big));
    if (!big) return;
    float zeros[200] = {0};
    CHECK_OK(mlxn_buffer_write(big, 0, zeros, sizeof zeros));
    /* a at 0, b at 24, sum at 48, out at 72 of one buffer: legal, disjoint */
    mlxn_tensor a = at_elem(big, 0), b = at_elem(big, 24), sum = at_elem(big, 48), out = at_elem(big, 72);
    mlxn_tensor w, w9t, wint, ah, b9, b3, ostr, scalar, sum9;
    memset(&w, 0, sizeof w);
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_BF16, 1, ws, &w));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 1, w9, &w9t));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_I32, 1, ws, &wint));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F16, 2, xs, &ah));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 2, x9, &b9));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 3, x38, &b3));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 0, s0, &scalar));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 2, x9, &sum9));
    ostr = at_elem(big, 100);
    ostr.strides[0] = 11; /* rows 11 apart: not contiguous */
    const float e = 1e-5f;
    CHECK_OK(mlxn_add_rms_norm(s, &a, &b, &w, e, 0, &sum, &out));
    CHECK_OK(mlxn_add_rms_norm(s, &a, &b, &w, e, 1, &a, &out)); /* in place over a */
    CHECK_OK(mlxn_add_rms_norm(s, &a, &b, NULL, e, 0, &b, &out)); /* in place over b */
    CHECK_FAILS(mlxn_add_rms_norm(NULL, &a, &b, &w, e, 0, &sum, &out), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_add_rms_norm(s, NULL, &b, &w, e, 0, &sum, &out), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_add_rms_norm(s, &a, NULL, &w, e, 0, &sum, &out), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_add_rms_norm(s, &a, &b, &w, e, 0, NULL, &out), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_add_rms_norm(s, &a, &b, &w, e, 0, &sum, NULL), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_add_rms_norm(s, &ah, &b, &w, e, 0, &sum, &out), MLXN_ERR_DTYPE);    /* a f16 */
    CHECK_FAILS(mlxn_add_rms_norm(s, &a, &ah, &w, e, 0, &sum, &out), MLXN_ERR_DTYPE);    /* b f16 */
    CHECK_FAILS(mlxn_add_rms_norm(s, &a, &b, &wint, e, 0, &sum, &out), MLXN_ERR_DTYPE);  /* w i32 */
    CHECK_FAILS(mlxn_add_rms_norm(s, &a, &b, &w, e, 0, &ah, &out), MLXN_ERR_DTYPE);     /* sum f16 */
    CHECK_FAILS(mlxn_add_rms_norm(s, &a, &b, &w, e, 0, &sum, &ah), MLXN_ERR_DTYPE);     /* out f16 */
    CHECK_FAILS(mlxn_add_rms_norm(s, &a, &b9, &w, e, 0, &sum, &out), MLXN_ERR_SHAPE);   /* b [3, 9] */
    CHECK_FAILS(mlxn_add_rms_norm(s, &a, &b3, &w, e, 0, &sum, &out), MLXN_ERR_SHAPE);   /* b [1, 3, 8]: no broadcast */
    CHECK_FAILS(mlxn_add_rms_norm(s, &a, &b, &w9t, e, 0, &sum, &out), MLXN_ERR_SHAPE);  /* w [9] */
    CHECK_FAILS(mlxn_add_rms_norm(s, &a, &b, &w, e, 0, &sum9, &out), MLXN_ERR_SHAPE);   /* sum [3, 9] */
    CHECK_FAILS(mlxn_add_rms_norm(s, &a, &b, &w, e, 0, &sum, &sum9), MLXN_ERR_SHAPE);   /* out [3, 9] */
    CHECK_FAILS(mlxn_add_rms_norm(s, &a, &b, &w, e, 0, &ostr, &out), MLXN_ERR_SHAPE);   /* sum strided */
    CHECK_FAILS(mlxn_add_rms_norm(s, &a, &b, &w, e, 0, &sum, &ostr), MLXN_ERR_SHAPE);   /* out strided */
    CHECK_FAILS(mlxn_add_rms_norm(s, &scalar, &scalar, NULL, e, 0, &scalar, &scalar), MLXN_ERR_SHAPE);
    /* overlaps: sum over part of a or b, out over any of a, b, sum, w */
    mlxn_tensor sum_in_a = at_elem(big, 4), sum_in_b = at_elem(big, 30);
    CHECK_FAILS(mlxn_add_rms_norm(s, &a, &b, &w, e, 0, &sum_in_a, &out), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_add_rms_norm(s, &a, &b, &w, e, 0, &sum_in_b, &out), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_add_rms_norm(s, &a, &b, &w, e, 0, &sum, &a), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_add_rms_norm(s, &a, &b, &w, e, 0, &sum, &b), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_add_rms_norm(s, &a, &b, &w, e, 0, &sum, &sum), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_add_rms_norm(s, &a, &b, &w, e, 0, &a, &a), MLXN_ERR_INVALID_ARGUMENT);
    mlxn_tensor wf = at_elem(big, 72); /* a weight inside out */
    wf.ndim = 1;
    wf.shape[0] = 8;
    wf.strides[0] = 1;
    CHECK_FAILS(mlxn_add_rms_norm(s, &a, &b, &wf, e, 0, &sum, &out), MLXN_ERR_INVALID_ARGUMENT);
    mlxn_clear_error();
    CHECK(mlxn_add_rms_norm(s, &a, &b, &w9t, e, 0, &sum, &out) == MLXN_ERR_SHAPE &&
              strstr(mlxn_last_error(), "add_rms_norm") && strstr(mlxn_last_error(), "w"),
          "the message names the op and the argument: '%s'", mlxn_last_error());
    mlxn_clear_error();
    CHECK(mlxn_add_rms_norm(s, &a, &b, &w, e, 0, &sum_in_b, &out) == MLXN_ERR_INVALID_ARGUMENT &&
              strstr(mlxn_last_error(), "sum overlaps b"),
          "the overlap message names sum and b: '%s'", mlxn_last_error());
    /* a tensor on another device */
    mlxn_device *other = t_cpu_device(1, MLXN_CPU_ISA_SCALAR);
    mlxn_tensor bo;
    CHECK_OK(mlxn_tensor_alloc(other, MLXN_DTYPE_F32, 2, xs, &bo));
    CHECK_FAILS(mlxn_add_rms_norm(s, &a, &bo, &w, e, 0, &sum, &out), MLXN_ERR_INVALID_ARGUMENT);
    mlxn_tensor_release(&bo);
    mlxn_device_free(other);
    mlxn_tensor *owned[] = {&w, &w9t, &wint, &ah, &b9, &b3, &scalar, &sum9};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) mlxn_tensor_release(owned[i]);
    mlxn_buffer_free(big);
    mlxn_device_free(dev);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_ops_add_norm");
    test_cases();
    test_bad_args();
    printf("worst NMSE of out vs the double reference: %.3g\n", worst_ref);
    return t_finish();
}

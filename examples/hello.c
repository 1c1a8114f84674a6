/* The smallest mlx-native program: open the CPU device, put a vector in a
 * tensor, run two ops, read the result back. Built by `make check` against
 * the installed library through pkg-config, so it also proves the install. */
#include <stdio.h>

#include <mlxn/mlxn.h>

#define TRY(expr)                                                              \
    do {                                                                       \
        if ((expr) != MLXN_OK) {                                               \
            fprintf(stderr, "%s failed: %s\n", #expr, mlxn_last_error());      \
            return 1;                                                          \
        }                                                                      \
    } while (0)

int main(void) {
    mlxn_device *cpu;
    TRY(mlxn_device_new(&(mlxn_device_params){.kind = MLXN_DEVICE_CPU}, &cpu));
    mlxn_stream *s = mlxn_device_stream(cpu);

    int64_t shape[2] = {1, 4};
    mlxn_tensor x, y;
    TRY(mlxn_tensor_alloc(cpu, MLXN_DTYPE_F32, 2, shape, &x));
    TRY(mlxn_tensor_alloc(cpu, MLXN_DTYPE_F32, 2, shape, &y));
    const float v[4] = {1, 2, 3, 4};
    TRY(mlxn_buffer_write(x.buf, 0, v, sizeof v));

    TRY(mlxn_rms_norm(s, &x, NULL, 1e-6f, 0.0f, &y)); /* y = x / rms(x) */
    TRY(mlxn_silu(s, &y, &x));                       /* x = silu(y) */

    float out[4];
    TRY(mlxn_buffer_read(x.buf, 0, out, sizeof out));
    printf("silu(rms_norm([1 2 3 4])) = %.4f %.4f %.4f %.4f on %s\n", out[0], out[1], out[2], out[3],
           mlxn_device_name(cpu));

    /* a bad call is a status and a message, never a crash */
    if (mlxn_rms_norm(s, &x, &x, 1e-6f, 0.0f, &y) != MLXN_OK) printf("as expected: %s\n", mlxn_last_error());

    mlxn_tensor_release(&x);
    mlxn_tensor_release(&y);
    mlxn_device_free(cpu);
    return 0;
}

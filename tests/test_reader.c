/* mlxn_reader: reads that do not wait for the work queued after them.
 *
 * On the CPU and, when there is one, on a CUDA device (reads of 64 and of
 * 4000 bytes, the two ways CUDA reads): a read begun before
 * an op that overwrites the buffer gives the bytes from before the op (the
 * copy is ordered behind the work queued before it, and only that); 200
 * such rounds with two readers in turn, as a decode loop uses them, each
 * with fresh values; the stream's later work lands too. Then the misuse:
 * a second begin while one is pending, an end with none, more bytes than
 * the reader holds, a range outside the buffer, a buffer of another
 * device, a zero-sized reader: each an error with a message, and the
 * reader still usable after it. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

enum { N = 1031 }; /* floats per buffer */

static mlxn_buffer *filled(mlxn_device *dev, float *v) {
    mlxn_buffer *b = NULL;
    t_fill_randn(v, N, 1.0f);
    CHECK_OK(mlxn_buffer_new(dev, N * sizeof(float), &b));
    if (b) CHECK_OK(mlxn_buffer_write(b, 0, v, N * sizeof(float)));
    return b;
}

/* The rounds read NF floats at a time (CUDA: up to 256 bytes a kernel
 * stores them into pinned memory, longer reads are copies), then the
 * misuse. */
enum { NF_BIG = 1000 };
static void rounds(mlxn_device *dev, const char *name, int nf) {
    mlxn_stream *s = mlxn_device_stream(dev);
    float *a = malloc(N * sizeof(float)), *c = malloc(N * sizeof(float)), *got = malloc(N * sizeof(float));
    mlxn_buffer *ab = filled(dev, a), *cb = filled(dev, c);
    mlxn_reader *r[2] = {NULL, NULL};
    const size_t rb = (size_t)nf * sizeof(float); /* bytes per read */
    CHECK_OK(mlxn_reader_new(s, rb, &r[0]));
    CHECK_OK(mlxn_reader_new(s, rb, &r[1]));
    if (!ab || !cb || !r[0] || !r[1]) goto done;
    int64_t n = N;
    mlxn_tensor at, ct;
    CHECK_OK(mlxn_tensor_view(ab, MLXN_DTYPE_F32, 1, &n, 0, &at));
    CHECK_OK(mlxn_tensor_view(cb, MLXN_DTYPE_F32, 1, &n, 0, &ct));
    int bad = 0;
    static float want[2][NF_BIG], g[NF_BIG];
    for (int i = 0; i < 200; i++) {
        const int k = i & 1;
        /* a holds this round's values; read nf of them at an odd offset, then overwrite a with c */
        const size_t off = (size_t)(i % 7) * sizeof(float) * 3;
        memcpy(want[k], (const char *)a + off, rb);
        CHECK_OK(mlxn_reader_begin(r[k], ab, off, rb));
        CHECK_OK(mlxn_copy(s, &ct, &at));
        if (i > 0) { /* the previous round's read, ended after this round's work was queued */
            t_poison(g, rb);
            CHECK_OK(mlxn_reader_end(r[k ^ 1], g));
            bad += memcmp(g, want[k ^ 1], rb) != 0;
        }
        /* next round: a = c, c = fresh values (queued behind the copy) */
        memcpy(a, c, N * sizeof(float));
        CHECK_OK(mlxn_stream_sync(s));
        t_fill_randn(c, N, 1.0f);
        CHECK_OK(mlxn_buffer_write(cb, 0, c, N * sizeof(float)));
    }
    t_poison(g, rb);
    CHECK_OK(mlxn_reader_end(r[1], g));
    bad += memcmp(g, want[1], rb) != 0;
    CHECK(bad == 0, "%s: %d of 200 reads of %zu bytes gave bytes other than those before the op queued after them", name,
          bad, rb);
    CHECK_OK(mlxn_buffer_read(ab, 0, got, N * sizeof(float)));
    CHECK(!memcmp(got, a, N * sizeof(float)), "%s: the work queued after the reads did not land", name);

    /* misuse */
    CHECK_OK(mlxn_reader_begin(r[0], ab, 0, 8));
    CHECK_FAILS(mlxn_reader_begin(r[0], ab, 0, 8), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_OK(mlxn_reader_end(r[0], g));
    CHECK(!memcmp(g, a, 8), "%s: the read after a refused begin is wrong", name);
    CHECK_FAILS(mlxn_reader_end(r[0], g), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_reader_begin(r[0], ab, 0, rb + 1), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_reader_begin(r[0], ab, N * sizeof(float) - 4, 8), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_reader_begin(NULL, ab, 0, 4), MLXN_ERR_INVALID_ARGUMENT);
    mlxn_reader *z = NULL;
    CHECK_FAILS(mlxn_reader_new(s, 0, &z), MLXN_ERR_INVALID_ARGUMENT);
    CHECK(z == NULL, "%s: a refused reader was handed out", name);
    CHECK_OK(mlxn_reader_begin(r[0], ab, 4, 4));
    CHECK_OK(mlxn_reader_end(r[0], g));
    CHECK(!memcmp(g, (const char *)a + 4, 4), "%s: the reader is not usable after refused calls", name);
    /* freed with a read pending: waits for it */
    CHECK_OK(mlxn_reader_begin(r[1], ab, 0, rb));
done:
    mlxn_reader_free(r[0]);
    mlxn_reader_free(r[1]);
    mlxn_buffer_free(ab);
    mlxn_buffer_free(cb);
    free(a), free(c), free(got);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_reader");
    mlxn_device_params cp = {.kind = MLXN_DEVICE_CPU};
    mlxn_device *cpu = NULL;
    CHECK_OK(mlxn_device_new(&cp, &cpu));
    if (cpu) rounds(cpu, "cpu", 16);
    mlxn_device_params gp = {.kind = MLXN_DEVICE_CUDA, .index = 0};
    mlxn_device *gpu = NULL;
    if (mlxn_device_new(&gp, &gpu) != MLXN_OK) {
        printf("cuda: skipped: no CUDA device\n");
    } else {
        rounds(gpu, "cuda", 16);
        rounds(gpu, "cuda", NF_BIG);
        /* a buffer of another device */
        mlxn_reader *r = NULL;
        mlxn_buffer *b = NULL;
        CHECK_OK(mlxn_reader_new(mlxn_device_stream(gpu), 16, &r));
        CHECK_OK(mlxn_buffer_new(cpu, 64, &b));
        if (r && b) CHECK_FAILS(mlxn_reader_begin(r, b, 0, 4), MLXN_ERR_INVALID_ARGUMENT);
        mlxn_buffer_free(b);
        mlxn_reader_free(r);
        mlxn_device_free(gpu);
    }
    mlxn_device_free(cpu);
    return t_finish();
}

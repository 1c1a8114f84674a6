/* mlxn_stream_write: host bytes into a device buffer, in stream order.
 *
 * On the CPU and, when there is one, on a CUDA device (where host bytes go
 * up through pinned staging, two halves of 4 MB in turn, by a copy, or up
 * to 1 KB by a kernel that loads them through the staging's mapping; the
 * sizes below straddle that bound): 40 batches of 8
 * writes of fresh random bytes, at odd offsets, of sizes from 1 byte to
 * 9000. After each write its host bytes are poisoned at once (the call
 * must have taken them), and a reader is begun over the whole buffer, so
 * it sees that write and every earlier one, and none queued after it. Each
 * read is compared with a host model of the buffer at that point. Then one
 * write of 9 MB (more than both staging halves) read back whole, and a
 * write past the buffer's end refused. Then a write inside a graph capture
 * is refused with a message (a replay would not carry new host bytes), and
 * the stream still works after it. */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "harness.h"

enum { NB = 12000, BATCH = 8, BATCHES = 40 };

static const size_t sizes[] = {1, 2, 3, 4, 7, 64, 264, 1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096, 4097, 9000};

static void rounds(mlxn_device *dev, const char *name) {
    mlxn_stream *s = mlxn_device_stream(dev);
    unsigned char *model = malloc(NB), *want = malloc((size_t)BATCH * NB), *got = malloc(NB), *src = malloc(NB);
    mlxn_buffer *b = NULL;
    mlxn_reader *r[BATCH] = {NULL};
    CHECK_OK(mlxn_buffer_new(dev, NB, &b));
    for (int j = 0; j < BATCH; j++) CHECK_OK(mlxn_reader_new(s, NB, &r[j]));
    if (!model || !want || !got || !src || !b || !r[BATCH - 1]) goto done;
    for (size_t i = 0; i < NB; i++) model[i] = (unsigned char)t_rand_u64();
    CHECK_OK(mlxn_buffer_write(b, 0, model, NB));
    int bad = 0, writes = 0;
    for (int k = 0; k < BATCHES; k++) {
        for (int j = 0; j < BATCH; j++) {
            const size_t n = sizes[t_rand_u64() % (sizeof sizes / sizeof sizes[0])];
            const size_t off = (size_t)(t_rand_u64() % (NB - n + 1));
            for (size_t i = 0; i < n; i++) src[i] = (unsigned char)t_rand_u64();
            CHECK_OK(mlxn_stream_write(s, b, off, src, n, 0));
            memcpy(model + off, src, n);
            t_poison(src, n); /* the call has taken the bytes; the device must not see these */
            memcpy(want + (size_t)j * NB, model, NB);
            CHECK_OK(mlxn_reader_begin(r[j], b, 0, NB));
            writes++;
        }
        for (int j = 0; j < BATCH; j++) {
            t_poison(got, NB);
            CHECK_OK(mlxn_reader_end(r[j], got));
            bad += memcmp(got, want + (size_t)j * NB, NB) != 0;
        }
    }
    CHECK(bad == 0, "%s: %d of %d reads behind a write gave other bytes than the writes so far", name, bad, writes);
    t_poison(got, NB);
    CHECK_OK(mlxn_buffer_read(b, 0, got, NB));
    CHECK(!memcmp(got, model, NB), "%s: the buffer after %d writes is not what was written", name, writes);
    CHECK_FAILS(mlxn_stream_write(s, b, NB - 4, src, 8, 0), MLXN_ERR_INVALID_ARGUMENT); /* past the end */

    /* one write longer than the staging */
    {
        const size_t nbig = (size_t)9 << 20;
        unsigned char *big = malloc(nbig), *back = malloc(nbig);
        mlxn_buffer *bb = NULL;
        CHECK_OK(mlxn_buffer_new(dev, nbig, &bb));
        if (big && back && bb) {
            for (size_t i = 0; i < nbig; i++) big[i] = (unsigned char)t_rand_u64();
            CHECK_OK(mlxn_stream_write(s, bb, 0, big, nbig, 0));
            t_poison(back, nbig);
            CHECK_OK(mlxn_buffer_read(bb, 0, back, nbig));
            CHECK(!memcmp(back, big, nbig), "%s: a write of %zu bytes did not land whole", name, nbig);
        }
        mlxn_buffer_free(bb);
        free(big), free(back);
    }

    if (mlxn_stream_has_graphs(s)) {
        CHECK_OK(mlxn_stream_capture_begin(s));
        CHECK_FAILS(mlxn_stream_write(s, b, 5, src, 16, 0), MLXN_ERR_INVALID_ARGUMENT);
        CHECK_FAILS(mlxn_stream_write(s, b, 5, src, 9000, 0), MLXN_ERR_INVALID_ARGUMENT);
        void *g = NULL;
        (void)mlxn_stream_capture_end(s, &g);
        if (g) mlxn_stream_graph_free(s, g);
        for (size_t i = 0; i < 16; i++) src[i] = (unsigned char)(i * 37 + 1);
        CHECK_OK(mlxn_stream_write(s, b, 5, src, 16, 0));
        memcpy(model + 5, src, 16);
        t_poison(got, NB);
        CHECK_OK(mlxn_buffer_read(b, 0, got, NB));
        CHECK(!memcmp(got, model, NB), "%s: a write after a refused one inside a capture did not land", name);
    }
done:
    for (int j = 0; j < BATCH; j++) mlxn_reader_free(r[j]);
    mlxn_buffer_free(b);
    free(model), free(want), free(got), free(src);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_stream_write");
    mlxn_device_params cp = {.kind = MLXN_DEVICE_CPU};
    mlxn_device *cpu = NULL;
    CHECK_OK(mlxn_device_new(&cp, &cpu));
    if (cpu) rounds(cpu, "cpu");
    mlxn_device_free(cpu);
    mlxn_device_params gp = {.kind = MLXN_DEVICE_CUDA, .index = 0};
    mlxn_device *gpu = NULL;
    if (mlxn_device_new(&gp, &gpu) != MLXN_OK) {
        printf("cuda: skipped: no CUDA device\n");
    } else {
        rounds(gpu, "cuda");
        mlxn_device_free(gpu);
    }
    return t_finish();
}

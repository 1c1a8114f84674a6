/* Devices, streams and buffers.
 *
 * A device (the CPU, or one CUDA GPU) owns its worker threads and its
 * allocator; nothing is shared between devices, so two devices (and two
 * models) live side by side in one process. A stream is where ops run, in
 * order; every device has a default stream, and more can be made. A buffer
 * is a block of device memory, or host memory the caller lends (an mmap'd
 * weight file), that tensors view. */
#ifndef MLXN_DEVICE_H
#define MLXN_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "mlxn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mlxn_device mlxn_device;
typedef struct mlxn_stream mlxn_stream;
typedef struct mlxn_buffer mlxn_buffer;

typedef enum mlxn_device_kind {
    MLXN_DEVICE_CPU = 0,
    MLXN_DEVICE_CUDA = 1,
} mlxn_device_kind;

/* Highest instruction set the CPU backend may use. AUTO picks the best the
 * processor has; a lower cap forces slower paths (tests use it to check
 * every path against the scalar reference on one machine). */
typedef enum mlxn_cpu_isa {
    MLXN_CPU_ISA_AUTO = 0,
    MLXN_CPU_ISA_SCALAR,
    MLXN_CPU_ISA_AVX2,
    MLXN_CPU_ISA_AVX512,
} mlxn_cpu_isa;

typedef struct mlxn_device_params {
    mlxn_device_kind kind;
    int index;          /* CUDA ordinal; ignored for the CPU */
    int n_threads;      /* CPU worker threads; 0 = one per online core */
    mlxn_cpu_isa isa;   /* CPU only */
    /* CPU only. 0 (default): the quantized mat-vec of decode may quantize x
     * to 16-bit integers per weight group and multiply in integers where the
     * processor has a kernel for it (AVX-512 VNNI; AVX2 for affine 2..6- and 8-bit),
     * 2-4x faster, ~1e-8 normalized error per product; and at the AVX2 and
     * AVX-512 levels TurboQuant attention in decode scores 4-bit keys with the query, and
     * sums 4-bit values with the softmax weights, in 16-bit integers
     * (outputs within ~1e-6 NMSE of f32). 1: x stays f32 in every quantized matmul and
     * TurboQuant attention works in f32 (results match the float reference
     * to summation order). */
    int float_activations;
} mlxn_device_params;

/* Open a device. params may be NULL (CPU, all cores, best ISA). */
mlxn_status mlxn_device_new(const mlxn_device_params *params, mlxn_device **out);
/* Parse "cpu", "cuda", "cuda:N" into params->kind/index. */
mlxn_status mlxn_device_parse(const char *spec, mlxn_device_params *params);
void mlxn_device_free(mlxn_device *dev);
mlxn_device_kind mlxn_device_get_kind(const mlxn_device *dev);
/* Human description, e.g. "cpu (2 threads, avx512)". */
const char *mlxn_device_name(const mlxn_device *dev);
int mlxn_device_threads(const mlxn_device *dev);
/* The device's default stream (owned by the device; do not free). */
mlxn_stream *mlxn_device_stream(mlxn_device *dev);

mlxn_status mlxn_stream_new(mlxn_device *dev, mlxn_stream **out);
void mlxn_stream_free(mlxn_stream *s);
mlxn_device *mlxn_stream_device(mlxn_stream *s);
/* Wait until every op queued on the stream has finished. */
mlxn_status mlxn_stream_sync(mlxn_stream *s);

/* Allocate `bytes` of device memory (64-byte aligned on the CPU). */
mlxn_status mlxn_buffer_new(mlxn_device *dev, size_t bytes, mlxn_buffer **out);
/* Wrap caller-owned host memory without copying (CPU devices only).
 * release(user) is called when the buffer is freed; it may be NULL. */
mlxn_status mlxn_buffer_wrap(mlxn_device *dev, void *host, size_t bytes,
                             void (*release)(void *user), void *user, mlxn_buffer **out);
void mlxn_buffer_free(mlxn_buffer *buf);
size_t mlxn_buffer_size(const mlxn_buffer *buf);
mlxn_device *mlxn_buffer_device(const mlxn_buffer *buf);
/* Host pointer to the contents, or NULL when the memory is not host-visible. */
void *mlxn_buffer_host(mlxn_buffer *buf);
/* Copy host -> buffer and buffer -> host (any device), bounds-checked. */
mlxn_status mlxn_buffer_write(mlxn_buffer *buf, size_t offset, const void *src, size_t n);
mlxn_status mlxn_buffer_read(mlxn_buffer *buf, size_t offset, void *dst, size_t n);
/* Copy n bytes of buf at offset to host dst after the work queued on
 * stream s, and wait for them: one round trip, the way to read a result
 * each token (a sampled id). mlxn_buffer_read waits for the whole device
 * first and then copies, two. Reports any error the device recorded, as
 * mlxn_stream_sync does. */
mlxn_status mlxn_stream_read(mlxn_stream *s, mlxn_buffer *buf, size_t offset, void *dst, size_t n);

/* A read that does not wait for the work queued after it. mlxn_reader_begin
 * queues a copy of n bytes (at most the reader's max_bytes) of buf at
 * offset behind the work queued on the reader's stream so far, and returns
 * at once; mlxn_reader_end waits for that copy alone (work queued after the
 * begin may still be running) and gives the bytes. Why: a decode loop
 * begins the read of token t, queues step t + 1 (mlxn_session_forward_next)
 * and only then ends the read, so the device runs the step while the host
 * handles the token. A reader holds one read at a time: begin, end, begin
 * again (a begin while one is pending, or an end without one, is
 * MLXN_ERR_INVALID_ARGUMENT). end reports errors the device recorded, as
 * mlxn_stream_read does. On the CPU, which runs work at each call, begin
 * copies at once. Not inside a graph capture (a replay would not read). */
typedef struct mlxn_reader mlxn_reader;
mlxn_status mlxn_reader_new(mlxn_stream *s, size_t max_bytes, mlxn_reader **out);
mlxn_status mlxn_reader_begin(mlxn_reader *r, mlxn_buffer *buf, size_t offset, size_t n);
mlxn_status mlxn_reader_end(mlxn_reader *r, void *dst);
/* Waits for a pending read first; free a reader before its stream. NULL is
 * fine. */
void mlxn_reader_free(mlxn_reader *r);

#ifdef __cplusplus
}
#endif
#endif

/* Private helpers shared by every layer of the library (never installed). */
#ifndef MLXN_CORE_INTERNAL_H
#define MLXN_CORE_INTERNAL_H

#include "mlxn/status.h"

#if defined(__GNUC__)
#define MLXN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define MLXN_PRINTF(a, b)
#endif

/* Record a formatted message as the calling thread's last error and
 * return `st`, so failures read `return mlxn_fail(MLXN_ERR_SHAPE, "...")`. */
mlxn_status mlxn_fail(mlxn_status st, const char *fmt, ...) MLXN_PRINTF(2, 3);

/* Prepend context ("loading x.safetensors: ") to the current message and
 * return st unchanged. */
mlxn_status mlxn_fail_context(mlxn_status st, const char *fmt, ...) MLXN_PRINTF(2, 3);

#define MLXN_TRY(expr)                       \
    do {                                     \
        mlxn_status mlxn_try_st_ = (expr);   \
        if (mlxn_try_st_ != MLXN_OK) return mlxn_try_st_; \
    } while (0)

/* ---- stream-level helpers for the model runner (src/core/device.c) ---- */

#include <stddef.h>

struct mlxn_stream;
struct mlxn_buffer;
struct mlxn_device;

/* Host memory the device copies from fastest (pinned on CUDA, plain on
 * the CPU); free with mlxn_host_free. */
mlxn_status mlxn_host_alloc(struct mlxn_device *dev, size_t bytes, void **ptr);
void mlxn_host_free(struct mlxn_device *dev, void *ptr);
/* Copy n bytes of host memory into buf at offset, in order on stream s (no
 * device-wide wait). src_pinned: src came from mlxn_host_alloc and is read
 * when the copy runs (it must stay unchanged until then); otherwise it may
 * be reused as soon as the call returns. */
mlxn_status mlxn_stream_write(struct mlxn_stream *s, struct mlxn_buffer *buf, size_t offset, const void *src,
                              size_t n, int src_pinned);
/* Graph capture of a stream's work: 1 when the device's backend has it. */
int mlxn_stream_has_graphs(const struct mlxn_stream *s);
mlxn_status mlxn_stream_capture_begin(struct mlxn_stream *s);
mlxn_status mlxn_stream_capture_end(struct mlxn_stream *s, void **graph);
mlxn_status mlxn_stream_graph_launch(struct mlxn_stream *s, void *graph);
void mlxn_stream_graph_free(struct mlxn_stream *s, void *graph);

#endif

/* extern "C" entry points of the CUDA runtime glue (cuda_runtime.cu), used
 * by the C vtable in cuda_backend.c. Only compiled with MLXN_HAVE_CUDA. */
#ifndef MLXN_CUDA_RUNTIME_H
#define MLXN_CUDA_RUNTIME_H

#include <stddef.h>

#include "mlxn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Selects GPU `index`; writes its name ("NVIDIA H100 80GB HBM3") into name. */
mlxn_status mlxn_cuda_open(int index, char *name, size_t name_cap);
mlxn_status mlxn_cuda_malloc(int index, size_t bytes, void **ptr);
void mlxn_cuda_free(int index, void *ptr);
mlxn_status mlxn_cuda_memcpy_h2d(int index, void *dst, const void *src, size_t n);
mlxn_status mlxn_cuda_memcpy_d2h(int index, void *dst, const void *src, size_t n);
mlxn_status mlxn_cuda_stream_create(int index, void **stream);
void mlxn_cuda_stream_destroy(int index, void *stream);
mlxn_status mlxn_cuda_stream_sync(int index, void *stream);
mlxn_status mlxn_cuda_host_alloc(int index, size_t bytes, void **ptr);
void mlxn_cuda_host_free(int index, void *ptr);
mlxn_status mlxn_cuda_stream_upload(void *stream, void *dst, const void *src, size_t n, int src_pinned);
mlxn_status mlxn_cuda_stream_download(void *stream, void *dst, const void *src, size_t n);
/* mlxn_reader's deferred reads: pinned memory and an event per reader */
mlxn_status mlxn_cuda_reader_new(void *stream, size_t max_bytes, void **impl);
mlxn_status mlxn_cuda_reader_begin(void *stream, void *impl, const void *src, size_t n);
mlxn_status mlxn_cuda_reader_end(void *stream, void *impl, void *dst, size_t n);
void mlxn_cuda_reader_free(void *stream, void *impl);
mlxn_status mlxn_cuda_graph_begin(void *stream);
mlxn_status mlxn_cuda_graph_end(void *stream, void **graph);
mlxn_status mlxn_cuda_graph_launch(void *stream, void *graph);
void mlxn_cuda_graph_free(int index, void *graph);

#ifdef __cplusplus
}
#endif
#endif

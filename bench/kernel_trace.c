/* kernel_trace: a preloaded library that records every kernel the program
 * runs on the GPU (graph nodes included) with CUPTI's activity API, and at
 * exit writes one line per kernel to the file named by MLXN_KTRACE:
 *
 *     start_ns end_ns correlation graph_id grid_x block_x name
 *
 * Why: a decode step replays one CUDA graph whose kernels overlap through
 * programmatic launch; Nsight Compute times each kernel alone, so the step's
 * wall time cannot be split over its kernels from it. The activity records
 * carry the kernels' real start and end inside the replay.
 * bench/kernel_trace.py turns the file into a per-step table.
 *
 * Build (a GPU machine with the CUDA toolkit):
 *   cc -O2 -shared -fPIC bench/kernel_trace.c -I$CUDA/include -L$CUDA/lib64 -lcupti -o kernel_trace.so
 * Use:
 *   MLXN_KTRACE=trace.txt LD_PRELOAD=./kernel_trace.so mlxn bench model ...
 * It is a measuring tool: it is not built by the project's CMake. */
#include <cupti.h>
#include <stdio.h>
#include <stdlib.h>

#define KT_BUF_BYTES (8u << 20)

static FILE *kt_out; /* the trace file, opened at load */

static void CUPTIAPI kt_buffer_requested(uint8_t **buf, size_t *size, size_t *max_records) {
    *buf = (uint8_t *)aligned_alloc(8, KT_BUF_BYTES);
    *size = *buf ? KT_BUF_BYTES : 0;
    *max_records = 0;
}

static void CUPTIAPI kt_buffer_completed(CUcontext ctx, uint32_t stream, uint8_t *buf, size_t size,
                                         size_t valid) {
    (void)ctx, (void)stream, (void)size;
    CUpti_Activity *rec = NULL;
    while (cuptiActivityGetNextRecord(buf, valid, &rec) == CUPTI_SUCCESS) {
        if (rec->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && rec->kind != CUPTI_ACTIVITY_KIND_KERNEL) continue;
        const CUpti_ActivityKernel10 *k = (const CUpti_ActivityKernel10 *)rec;
        fprintf(kt_out, "%llu %llu %u %u %d %d %s\n", (unsigned long long)k->start, (unsigned long long)k->end,
                k->correlationId, k->graphId, k->gridX, k->blockX, k->name ? k->name : "?");
    }
    size_t dropped = 0;
    if (cuptiActivityGetNumDroppedRecords(ctx, stream, &dropped) == CUPTI_SUCCESS && dropped)
        fprintf(stderr, "kernel_trace: %zu records dropped\n", dropped);
    free(buf);
}

__attribute__((constructor)) static void kt_start(void) {
    const char *path = getenv("MLXN_KTRACE");
    if (!path || !(kt_out = fopen(path, "w"))) {
        fprintf(stderr, "kernel_trace: set MLXN_KTRACE to a writable file; not tracing\n");
        return;
    }
    if (cuptiActivityRegisterCallbacks(kt_buffer_requested, kt_buffer_completed) != CUPTI_SUCCESS ||
        cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS) {
        fprintf(stderr, "kernel_trace: CUPTI refused the activity API; not tracing\n");
        fclose(kt_out);
        kt_out = NULL;
    }
}

__attribute__((destructor)) static void kt_stop(void) {
    if (!kt_out) return;
    cuptiActivityFlushAll(1);
    fclose(kt_out);
    kt_out = NULL;
}

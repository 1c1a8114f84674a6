/* What a kernel boundary costs inside a captured decode step, measured on
 * its own: a graph of K kernels, each of which reads what the one before
 * wrote (and optionally streams its own slice of "weights" from HBM), timed
 * over many replays. Three ways to hand over from one kernel to the next:
 *   plain  - stream order (no programmatic launch): the next kernel is
 *            launched when the previous one has completed;
 *   pdl    - programmatic dependent launch, as the library's kernels do
 *            (cu_launch): the next kernel is resident early, prefetches its
 *            first weights into the L2, then griddepcontrol.wait until the
 *            previous grid has completed and its writes are visible;
 *   flags  - programmatic launch, but no griddepcontrol.wait: each block of
 *            the previous kernel publishes its end (a fence, then an atomic
 *            add on a counter), and the next kernel's blocks poll that
 *            counter until every block has arrived (the counters are zeroed
 *            by a memset node at the start of the graph).
 * The difference between pdl and flags is the time from the last block's
 * end to the dependent's release: the grid's teardown and memory flush.
 *   nvcc -O3 -arch=sm_90a -o handoff bench/handoff.cu && ./handoff
 * Prints, for each weight size, the median time per kernel of each mode. */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <algorithm>
#include <vector>

#define CK(x)                                                                                  \
    do {                                                                                       \
        cudaError_t e_ = (x);                                                                  \
        if (e_ != cudaSuccess) {                                                               \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

enum { THREADS = 256 };

/* MODE 0 plain, 1 pdl, 2 flags. in: the previous kernel's output [THREADS];
 * out [blocks * THREADS]; w: this kernel's weights, wn 16-byte words per
 * block; prev: the previous kernel's counter (flags), expect its blocks;
 * self: this kernel's counter. */
template <int MODE>
__global__ void __launch_bounds__(THREADS) step_kernel(const float *in, float *out, const uint4 *w, int wn,
                                                       const unsigned *prev, unsigned expect, unsigned *self) {
    const uint4 *wb = w + (size_t)blockIdx.x * wn;
    if (wn > (int)threadIdx.x) asm volatile("prefetch.global.L2 [%0];" ::"l"(wb + threadIdx.x));
    if (MODE == 1) {
        asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
        asm volatile("griddepcontrol.wait;" ::: "memory");
    }
    if (MODE == 2) {
        asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
        if (threadIdx.x == 0 && prev) {
            unsigned v;
            do asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(prev) : "memory");
            while (v < expect);
        }
        __syncthreads();
    }
    float v = *(volatile const float *)(in + threadIdx.x);
    unsigned acc = 0;
    for (int i = threadIdx.x; i < wn; i += THREADS) {
        uint4 q;
        asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                     : "=r"(q.x), "=r"(q.y), "=r"(q.z), "=r"(q.w)
                     : "l"(wb + i));
        acc += q.x ^ q.y ^ q.z ^ q.w;
    }
    out[(size_t)blockIdx.x * THREADS + threadIdx.x] = v + (float)(acc & 1);
    if (MODE == 2) {
        __syncthreads();
        if (threadIdx.x == 0) {
            __threadfence();
            atomicAdd(self, 1u);
        }
    }
}

template <int MODE>
static float run(int K, int blocks, int wn, int reps, const uint4 *w, size_t wstride, float *buf, unsigned *ctr) {
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaGraph_t g;
    cudaGraphExec_t ge;
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    if (MODE == 2) CK(cudaMemsetAsync(ctr, 0, sizeof(unsigned) * (K + 1), s));
    for (int k = 0; k < K; k++) {
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = dim3(blocks), cfg.blockDim = dim3(THREADS), cfg.stream = s;
        cudaLaunchAttribute at[1];
        at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        at[0].val.programmaticStreamSerializationAllowed = 1;
        cfg.attrs = at, cfg.numAttrs = MODE == 0 || k == 0 ? 0 : 1;
        const float *in = buf + (size_t)(k & 1) * blocks * THREADS;
        float *out = buf + (size_t)((k + 1) & 1) * blocks * THREADS;
        CK(cudaLaunchKernelEx(&cfg, step_kernel<MODE>, in, out, w + (size_t)k * wstride, wn,
                              (const unsigned *)(k ? ctr + k - 1 : nullptr), (unsigned)blocks, ctr + k));
    }
    CK(cudaStreamEndCapture(s, &g));
    CK(cudaGraphInstantiate(&ge, g, 0));
    for (int i = 0; i < 5; i++) CK(cudaGraphLaunch(ge, s));
    CK(cudaStreamSynchronize(s));
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    std::vector<float> t;
    for (int r = 0; r < 7; r++) {
        CK(cudaEventRecord(a, s));
        for (int i = 0; i < reps; i++) CK(cudaGraphLaunch(ge, s));
        CK(cudaEventRecord(b, s));
        CK(cudaEventSynchronize(b));
        float ms;
        CK(cudaEventElapsedTime(&ms, a, b));
        t.push_back(ms * 1000.0f / (float)(reps * K));
    }
    std::sort(t.begin(), t.end());
    CK(cudaGraphExecDestroy(ge));
    CK(cudaGraphDestroy(g));
    CK(cudaStreamDestroy(s));
    return t[t.size() / 2];
}

int main() {
    cudaDeviceProp p;
    CK(cudaGetDeviceProperties(&p, 0));
    const int K = 64, reps = 20;
    printf("device: %s, %d SMs; graph of %d kernels, %d threads a block; us per kernel (median of 7 x %d replays)\n",
           p.name, p.multiProcessorCount, K, THREADS, reps);
    const size_t wbytes_max = (size_t)16 << 20; /* per kernel */
    uint4 *w;
    float *buf;
    unsigned *ctr;
    CK(cudaMalloc(&w, wbytes_max * K));
    CK(cudaMemset(w, 1, wbytes_max * K));
    CK(cudaMalloc(&buf, sizeof(float) * 2 * 8 * p.multiProcessorCount * THREADS));
    CK(cudaMemset(buf, 0, sizeof(float) * 2 * 8 * p.multiProcessorCount * THREADS));
    CK(cudaMalloc(&ctr, sizeof(unsigned) * (K + 1)));
    printf("%-10s %-8s %8s %8s %8s %10s\n", "weights", "blocks", "plain", "pdl", "flags", "pdl-flags");
    const int sms = p.multiProcessorCount;
    const int grids[] = {8, sms, 2 * sms};
    const size_t sizes[] = {0, (size_t)1 << 20, (size_t)4 << 20, (size_t)9 << 20};
    for (size_t wb : sizes)
        for (int blocks : grids) {
            const int wn = (int)(wb / 16 / blocks);
            const size_t wstride = wbytes_max / 16;
            const float t0 = run<0>(K, blocks, wn, reps, w, wstride, buf, ctr);
            const float t1 = run<1>(K, blocks, wn, reps, w, wstride, buf, ctr);
            const float t2 = run<2>(K, blocks, wn, reps, w, wstride, buf, ctr);
            printf("%-7zu MB %-8d %8.2f %8.2f %8.2f %10.2f\n", wb >> 20, blocks, t0, t1, t2, t1 - t2);
        }
    return 0;
}

/* CPU scaled dot-product attention: turns the validated op arguments into
 * an sdpa_problem (strides, broadcast mask strides, GQA group, kv_len read
 * from its host-visible tensor as the key count) and runs the
 * scalar reference (SCALAR ISA) or the flash-style kernels with the AVX2 or
 * AVX-512 primitives. Semantics: sdpa_kernels.h. */
#include <stdlib.h>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/sdpa_kernels.h"
#include "core/internal.h"

static void view_of(const mlxn_tensor *t, sdpa_view *v) {
    v->base = mlxn_tensor_host(t);
    v->dt = t->dtype;
    for (int i = 0; i < 4; i++) v->s[i] = t->strides[i];
}

typedef struct ref_job {
    const sdpa_problem *p;
    float *scratch; /* [threads][Tk + D] */
} ref_job;

static void ref_task(void *arg, int64_t begin, int64_t end, int thread) {
    const ref_job *j = arg;
    sdpa_ref_rows(j->p, begin, end, j->scratch + (int64_t)thread * (j->p->Tk + j->p->D));
}

mlxn_status cpu_sdpa(mlxn_stream *s, const mlxn_tensor *q, const mlxn_tensor *k, const mlxn_tensor *v,
                     const mlxn_sdpa_params *prm, mlxn_tensor *out) {
    cpu_device *dev = cpu_dev(s);
    sdpa_problem p = {
        .B = q->shape[0], .Hq = q->shape[1], .Hkv = k->shape[1], .Tq = q->shape[2], .Tk = k->shape[2],
        .D = q->shape[3], .Dv = v->shape[3], .scale = prm->scale, .softcap = prm->softcap,
        .causal = prm->causal, .window = prm->window, .out = mlxn_tensor_host(out),
    };
    if (prm->kv_len) {
        /* keys past kv_len are capacity: the problem simply has fewer keys
         * (the views keep their strides, so nothing moves) */
        const int32_t n = *(const int32_t *)mlxn_tensor_host(prm->kv_len);
        if (n < 0 || n > p.Tk)
            return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sdpa: kv_len is %d, outside [0, %lld] (the keys k holds)",
                             (int)n, (long long)p.Tk);
        p.Tk = n;
    }
    if (p.B == 0 || p.Hq == 0 || p.Tq == 0 || p.Dv == 0) return MLXN_OK;
    p.G = p.Hq / p.Hkv;
    view_of(q, &p.q);
    view_of(k, &p.k);
    view_of(v, &p.v);
    if (prm->mask) {
        /* right-aligned broadcast to [B, Hq, Tq, Tk]; a size-1 axis reads index 0 */
        const mlxn_tensor *m = prm->mask;
        p.mask = mlxn_tensor_host(m);
        p.mdt = m->dtype;
        for (int i = 0; i < m->ndim; i++) p.ms[4 - m->ndim + i] = m->shape[i] == 1 ? 0 : m->strides[i];
    }
    if (prm->sinks) {
        p.sinks = mlxn_tensor_host(prm->sinks);
        p.sink_stride = prm->sinks->strides[0];
    }

    const sdpa_kernels *kr = NULL;
    if (dev->isa >= MLXN_CPU_ISA_AVX512) kr = sdpa_kernels_avx512();
    else if (dev->isa >= MLXN_CPU_ISA_AVX2) kr = sdpa_kernels_avx2();
    if (kr) return sdpa_flash(dev->pool, &p, kr);

    int threads = mlxn_threadpool_size(dev->pool);
    ref_job j = {&p, malloc((size_t)threads * (size_t)(p.Tk + p.D + 1) * sizeof(float))};
    if (!j.scratch) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "sdpa: no memory for score rows of %lld keys",
                                     (long long)p.Tk);
    mlxn_parallel_for(dev->pool, p.B * p.Hq * p.Tq, 1, ref_task, &j);
    free(j.scratch);
    return MLXN_OK;
}

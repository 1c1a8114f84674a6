/* CPU backend private state: the device's thread pool and instruction set. */
#ifndef MLXN_CPU_BACKEND_H
#define MLXN_CPU_BACKEND_H

#include "backend/backend.h"
#include "core/threadpool.h"

typedef struct cpu_device {
    mlxn_threadpool *pool;
    mlxn_cpu_isa isa; /* resolved: never AUTO */
    int float_activations; /* mlxn_device_params.float_activations: no integer mat-vecs */
} cpu_device;

static inline cpu_device *cpu_dev(mlxn_stream *s) { return (cpu_device *)s->dev->ctx; }

/* Best ISA this processor supports, capped by `cap` (AUTO = no cap). */
mlxn_cpu_isa mlxn_cpu_detect_isa(mlxn_cpu_isa cap);
const char *mlxn_cpu_isa_name(mlxn_cpu_isa isa);

#endif

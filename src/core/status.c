/* Status names and the per-thread last-error message. The message lives in
 * thread-local storage (like errno): no state is shared between threads,
 * devices or models. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

#define MLXN_ERROR_CAP 1024

static _Thread_local char last_error[MLXN_ERROR_CAP];

const char *mlxn_status_str(mlxn_status st) {
    switch (st) {
    case MLXN_OK: return "OK";
    case MLXN_ERR_INVALID_ARGUMENT: return "invalid argument";
    case MLXN_ERR_SHAPE: return "shape mismatch";
    case MLXN_ERR_DTYPE: return "unsupported dtype";
    case MLXN_ERR_OUT_OF_MEMORY: return "out of memory";
    case MLXN_ERR_IO: return "I/O error";
    case MLXN_ERR_FORMAT: return "malformed file";
    case MLXN_ERR_UNSUPPORTED: return "unsupported";
    case MLXN_ERR_NOT_IMPLEMENTED: return "not implemented";
    case MLXN_ERR_DEVICE: return "device error";
    }
    return "unknown status";
}

const char *mlxn_last_error(void) { return last_error; }

void mlxn_clear_error(void) { last_error[0] = '\0'; }

mlxn_status mlxn_fail(mlxn_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return st;
}

mlxn_status mlxn_fail_context(mlxn_status st, const char *fmt, ...) {
    char prefix[MLXN_ERROR_CAP], old[MLXN_ERROR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    size_t k = strlen(prefix);
    memcpy(last_error, prefix, k + 1);
    if (k < sizeof last_error - 1) {
        size_t room = sizeof last_error - 1 - k;
        size_t m = strnlen(old, room);
        memcpy(last_error + k, old, m);
        last_error[k + m] = '\0';
    }
    return st;
}

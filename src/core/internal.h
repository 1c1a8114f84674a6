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

#endif

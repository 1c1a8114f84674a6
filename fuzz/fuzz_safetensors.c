/* libFuzzer target: the safetensors header parser and weight-set accessors
 * on arbitrary bytes. The input is parsed from memory (the same code path
 * as a mmap'd file, via mlxn_weights_open_memory); when it is accepted,
 * every tensor's bytes are read end to end and every lookup is exercised,
 * so ASan catches any offset the validation let through. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "io/st_internal.h"
#include "mlxn/mlxn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mlxn_weights *w = NULL;
    mlxn_status st = mlxn_weights_open_memory("fuzz.safetensors", data, size, &w);
    if (st != MLXN_OK) {
        /* a rejection must say why, and name the input */
        if (!strstr(mlxn_last_error(), "fuzz.safetensors")) __builtin_trap();
        return 0;
    }
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < mlxn_weights_count(w); i++) {
        const mlxn_weight_info *info = mlxn_weights_at(w, i);
        if (mlxn_weights_find(w, info->name) != info) __builtin_trap();
        const uint8_t *p = mlxn_weights_data(w, info);
        if (!p || (uintptr_t)p % mlxn_dtype_size(info->dtype)) __builtin_trap();
        for (size_t j = 0; j < info->nbytes; j++) sink ^= p[j];
    }
    (void)mlxn_weights_metadata(w, "format");
    (void)sink;
    mlxn_weights_free(w);
    return 0;
}

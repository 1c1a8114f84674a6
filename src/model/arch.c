/* The architecture registry: model_type -> table entry. To add an
 * architecture that fits the shared block, write src/model/arch_<name>.c
 * (a parse hook filling mlxn_model_config) and list it here. */
#include <string.h>

#include "model/model_internal.h"

static const model_arch *const ARCHS[] = {
    &model_arch_llama, &model_arch_qwen2, &model_arch_qwen3, &model_arch_gemma3_text, &model_arch_gemma3,
};

const model_arch *model_arch_find(const char *model_type) {
    if (!model_type) return NULL;
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++) {
        if (strcmp(ARCHS[i]->name, model_type) == 0) return ARCHS[i];
        for (const char *const *a = ARCHS[i]->aliases; a && *a; a++)
            if (strcmp(*a, model_type) == 0) return ARCHS[i];
    }
    return NULL;
}

const char *model_arch_list(void) {
    return "llama, mistral, qwen2, qwen3, gemma3_text, gemma3 (text part)";
}

const char *mlxn_model_supported(void) { return model_arch_list(); }

/* mlxn: the command-line front end. `mlxn <command> --help` for each. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "mlxn/mlxn.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    {"info", cmd_info, "list the tensors of a safetensors file or model directory"},
    {"bench", cmd_bench, "time kernels (qmv: quantized mat-vec)"},
    {"convert", cmd_convert, "write an MLX model directory from GGUF, a HF checkpoint or a random shape"},
    {"eval", cmd_eval, "run token ids through a model; top-1 ids, logits as .npy"},
};

static void usage(FILE *f) {
    fprintf(f, "mlx-native %s\nusage: mlxn <command> [options]\n\ncommands:\n", MLXN_VERSION_STRING);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`mlxn <command> --help` describes each command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("mlx-native %s\n", MLXN_VERSION_STRING);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "mlxn: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}

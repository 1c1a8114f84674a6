/* mlxn info: placeholder until the safetensors reader lands. */
#include <stdio.h>

#include "commands.h"

int cmd_info(int argc, char **argv) {
    (void)argc, (void)argv;
    fprintf(stderr, "mlxn info: not implemented yet\n");
    return 1;
}

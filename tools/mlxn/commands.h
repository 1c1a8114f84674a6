/* The mlxn subcommands: each takes argc/argv after the subcommand name and
 * returns a process exit code (0 ok, 1 failure, 2 bad usage). Each
 * exports its option tables (options.h) for `mlxn --help` and the
 * generated docs/cli.md. */
#ifndef MLXN_TOOL_COMMANDS_H
#define MLXN_TOOL_COMMANDS_H

#include "options.h"

int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_bench_model(int argc, char **argv); /* argv[0] "bench", argv[1] "model" */
int cmd_bench_tq(int argc, char **argv);    /* argv[0] "bench", argv[1] "tq" */
int cmd_bench_sample(int argc, char **argv); /* argv[0] "bench", argv[1] "sample" */
int cmd_bench_sdpa(int argc, char **argv);  /* argv[0] "bench", argv[1] "sdpa" */
int cmd_convert(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);

extern const opt_command generate_command, chat_command, tokenize_command;
extern const opt_command info_command, convert_command, eval_command;
extern const opt_command bench_command, bench_model_command, bench_qmv_command, bench_qmm_command,
    bench_tq_command, bench_sample_command, bench_sdpa_command;

#endif

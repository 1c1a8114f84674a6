/* The mlxn subcommands: each takes argc/argv after the subcommand name and
 * returns a process exit code (0 ok, 1 failure, 2 bad usage). */
#ifndef MLXN_TOOL_COMMANDS_H
#define MLXN_TOOL_COMMANDS_H

int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_eval(int argc, char **argv);

#endif

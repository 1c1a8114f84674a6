/* Option tables for the mlxn subcommands.
 *
 * Each subcommand describes its options once, in a table of opt_spec rows;
 * the same table drives the parser (opt_parse), `--help` (opt_help) and
 * the generated reference docs/cli.md (opt_markdown, `mlxn
 * --markdown-help`), so the three cannot disagree. A row names the field
 * it fills by its offset in the command's own options struct. */
#ifndef MLXN_TOOL_OPTIONS_H
#define MLXN_TOOL_OPTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum opt_type {
    OPT_END = 0, /* terminates a table */
    OPT_FLAG,    /* int: set to 1 when present, no value */
    OPT_STRING,  /* const char *: the argument as given */
    OPT_INT,     /* int: a whole number in [min, max] */
    OPT_FLOAT,   /* float: a number in [min, max] */
    OPT_U64,     /* uint64_t: a non-negative whole number (seeds) */
    OPT_CHOICE,  /* int: the index of the value in `choices` ("a|b|c") */
    OPT_LIST,    /* opt_list: every occurrence appended (repeatable) */
} opt_type;

/* The values of a repeatable option, in order (pointers into argv). */
#define OPT_LIST_MAX 64
typedef struct opt_list {
    const char *v[OPT_LIST_MAX];
    int n;
} opt_list;

#define OPT_NO_MAX 1e300

typedef struct opt_spec {
    const char *name;     /* long name without the dashes, e.g. "max-tokens" */
    char short_name;      /* e.g. 'n', or 0 */
    opt_type type;
    size_t offset;        /* offsetof(the command's struct, its field) */
    const char *metavar;  /* what the value is called in help, e.g. "N" */
    const char *help;     /* one or two sentences */
    const char *def;      /* the default as shown in help, or NULL */
    double min, max;      /* OPT_INT / OPT_FLOAT range, inclusive (ignored when min == max;
                             max OPT_NO_MAX: no upper bound) */
    const char *choices;  /* OPT_CHOICE: "f32|bf16|f16" */
} opt_spec;

typedef struct opt_command {
    const char *name;        /* "generate", "bench model" */
    const char *synopsis;    /* after "mlxn NAME ": "-m MODEL [-p PROMPT] [options]" */
    const char *summary;     /* one line, for `mlxn --help` */
    const char *description; /* paragraphs (blank-line separated) */
    const opt_spec *opts;    /* ends with an OPT_END row */
    const char *positional;  /* what positional arguments are, e.g. "TEXT", or NULL for none */
    int max_positional;      /* how many are allowed */
    const char *examples;    /* command lines, one per line, or NULL */
    /* Optional: writes a paragraph known only at run time (a list the
     * library provides, so it is spelled in one place) to f, shown after
     * the options in help and docs. */
    void (*note)(FILE *f);
} opt_command;

typedef struct opt_args {
    const char *pos[8]; /* positional arguments, in order */
    int n_pos;
} opt_args;

enum { OPT_OK = 0, OPT_HELP = 1, OPT_ERROR = 2 };

/* Which rows of a table were given on the command line (bit i = row i). */
typedef struct opt_given {
    uint64_t bits;
} opt_given;

/* Parse argv[first..argc) into `dst` (the command's options struct, whose
 * defaults the caller has set); `given` (optional) records which options
 * appeared. `-h`/`--help` prints help to stdout and returns OPT_HELP; a
 * usage error prints what was wrong and what to do on stderr and returns
 * OPT_ERROR. Accepts "--name value", "--name=value", "-x value" and "--"
 * (the rest is positional). */
int opt_parse(const opt_command *c, int argc, char **argv, int first, void *dst, opt_args *args,
              opt_given *given);
/* Whether the option with this long name was given. */
int opt_was_given(const opt_command *c, const opt_given *g, const char *name);

/* A usage error found after parsing: "mlxn NAME: <message>" and the hint
 * to run --help, on stderr. */
void opt_error(const opt_command *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void opt_help(const opt_command *c, FILE *f);
/* The command's section of docs/cli.md. */
void opt_markdown(const opt_command *c, FILE *f);

#endif

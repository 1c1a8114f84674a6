/* A progress line on stderr for long work (reading weights, prefill),
 * drawn only when stderr is a terminal (isatty): redirected output and
 * logs stay free of carriage returns. */
#ifndef MLXN_TOOL_PROGRESS_H
#define MLXN_TOOL_PROGRESS_H

#include <stdint.h>

typedef struct progress {
    int active;        /* stderr is a terminal */
    const char *label;
    double t0, last;   /* start and last redraw (seconds) */
    int drawn;         /* something is on the line */
} progress;

/* Start a progress line (draws nothing until the first update). */
void progress_start(progress *p, const char *label);
/* done of total (total 0: unknown, shows only the label and elapsed time);
 * unit "MB" shows byte counts in MB, anything else plain counts. Redraws
 * at most ten times a second. */
void progress_update(progress *p, double done, double total, const char *unit);
/* Clear the line. */
void progress_end(progress *p);

/* Read the weight files of `path` (an MLX model directory's *.safetensors,
 * or a single file) once with a progress bar, so the model's mmap then
 * finds them in the page cache. Does nothing when stderr is not a
 * terminal. Errors are ignored: the loader reports them properly. */
void progress_prefetch(const char *path);

double progress_now(void);

#endif

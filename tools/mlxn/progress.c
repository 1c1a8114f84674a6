/* Progress lines (see progress.h): "\r" redraws of one stderr line,
 * cleared at the end. */
#include "progress.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double progress_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_start(progress *p, const char *label) {
    p->active = isatty(STDERR_FILENO);
    p->label = label;
    p->t0 = progress_now();
    p->last = 0;
    p->drawn = 0;
}

void progress_update(progress *p, double done, double total, const char *unit) {
    if (!p->active) return;
    double t = progress_now();
    if (p->drawn && t - p->last < 0.1 && (total <= 0 || done < total)) return;
    p->last = t;
    int mb = unit && !strcmp(unit, "MB");
    double scale = mb ? 1e-6 : 1.0;
    if (total > 0) {
        enum { W = 30 };
        int fill = (int)(W * (done / total));
        if (fill > W) fill = W;
        char bar[W + 1];
        for (int i = 0; i < W; i++) bar[i] = i < fill ? '#' : '.';
        bar[W] = '\0';
        fprintf(stderr, "\r\033[K%s [%s] %3.0f%% %.0f/%.0f%s%s %.1f s", p->label, bar, 100.0 * done / total,
                done * scale, total * scale, mb ? " " : "", mb ? "MB" : "", t - p->t0);
    } else {
        fprintf(stderr, "\r\033[K%s ... %.1f s", p->label, t - p->t0);
    }
    fflush(stderr);
    p->drawn = 1;
}

void progress_end(progress *p) {
    if (p->active && p->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    p->drawn = 0;
}

static int is_weight_file(const char *name) {
    size_t l = strlen(name);
    return (l > 12 && !strcmp(name + l - 12, ".safetensors")) || (l > 5 && !strcmp(name + l - 5, ".gguf"));
}

void progress_prefetch(const char *path) {
    if (!isatty(STDERR_FILENO)) return;
    enum { MAXF = 256 };
    char *files[MAXF];
    int nf = 0;
    double total = 0;
    struct stat st;
    if (stat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return;
        struct dirent *e;
        while ((e = readdir(d)) && nf < MAXF) {
            if (!is_weight_file(e->d_name)) continue;
            size_t l = strlen(path) + strlen(e->d_name) + 2;
            char *f = malloc(l);
            if (!f) break;
            snprintf(f, l, "%s/%s", path, e->d_name);
            struct stat fs;
            if (stat(f, &fs) == 0 && S_ISREG(fs.st_mode)) {
                files[nf++] = f;
                total += (double)fs.st_size;
            } else {
                free(f);
            }
        }
        closedir(d);
    } else if (S_ISREG(st.st_mode)) {
        files[nf] = strdup(path);
        if (files[nf]) nf++;
        total = (double)st.st_size;
    }
    progress p;
    progress_start(&p, "reading weights");
    enum { CHUNK = 8 << 20 };
    char *buf = malloc(CHUNK);
    double done = 0;
    for (int i = 0; i < nf; i++) {
        int fd = buf ? open(files[i], O_RDONLY) : -1;
        ssize_t r;
        while (fd >= 0 && (r = read(fd, buf, CHUNK)) > 0) {
            done += (double)r;
            progress_update(&p, done, total, "MB");
        }
        if (fd >= 0) close(fd);
        free(files[i]);
    }
    free(buf);
    progress_end(&p);
}

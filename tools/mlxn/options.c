/* The option-table parser, `--help` printer and Markdown writer (see
 * options.h). Errors name the option, what it wants and what was given,
 * suggest the nearest option name for a typo, and point at --help. */
#include "options.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void *field(void *dst, const opt_spec *o) { return (char *)dst + o->offset; }

static int n_specs(const opt_command *c) {
    int n = 0;
    while (c->opts && c->opts[n].type != OPT_END) n++;
    return n;
}

static void hint(const opt_command *c) { fprintf(stderr, "Run `mlxn %s --help` for the options.\n", c->name); }

void opt_error(const opt_command *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mlxn %s: ", c->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    hint(c);
}

/* Edit distance (insert/delete/substitute), for "did you mean". */
static int distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40) return 99;
    int row[41];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

static const opt_spec *nearest(const opt_command *c, const char *name) {
    const opt_spec *best = NULL;
    int bd = 3; /* suggest only close names */
    for (int i = 0; i < n_specs(c); i++) {
        int d = distance(name, c->opts[i].name);
        if (d < bd) bd = d, best = &c->opts[i];
    }
    return best;
}

static int choice_index(const char *choices, const char *v) {
    size_t lv = strlen(v);
    int k = 0;
    for (const char *p = choices; *p; k++) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == lv && !strncmp(p, v, l)) return k;
        if (!e) break;
        p = e + 1;
    }
    return -1;
}

static void range_text(const opt_spec *o, char *buf, size_t n) {
    if (o->min == o->max) snprintf(buf, n, "a %s", o->type == OPT_INT ? "whole number" : "number");
    else if (o->max >= 1e300) snprintf(buf, n, "a %s >= %g", o->type == OPT_INT ? "whole number" : "number", o->min);
    else snprintf(buf, n, "a %s in [%g, %g]", o->type == OPT_INT ? "whole number" : "number", o->min, o->max);
}

/* Store `v` into the field of `o`. Returns 0, or prints the error and returns -1. */
static int store(const opt_command *c, const opt_spec *o, const char *v, void *dst) {
    char *end = NULL, want[96];
    switch (o->type) {
    case OPT_STRING: *(const char **)field(dst, o) = v; return 0;
    case OPT_LIST: {
        opt_list *l = field(dst, o);
        if (l->n == OPT_LIST_MAX) {
            opt_error(c, "--%s is given more than %d times", o->name, OPT_LIST_MAX);
            return -1;
        }
        l->v[l->n++] = v;
        return 0;
    }
    case OPT_CHOICE: {
        int k = choice_index(o->choices, v);
        if (k < 0) {
            opt_error(c, "--%s must be one of %s, got '%s'", o->name, o->choices, v);
            return -1;
        }
        *(int *)field(dst, o) = k;
        return 0;
    }
    case OPT_U64: {
        errno = 0;
        unsigned long long x = strtoull(v, &end, 10);
        if (!*v || *end || errno || v[0] == '-') {
            opt_error(c, "--%s wants a non-negative whole number, got '%s'", o->name, v);
            return -1;
        }
        *(uint64_t *)field(dst, o) = (uint64_t)x;
        return 0;
    }
    case OPT_INT:
    case OPT_FLOAT: {
        errno = 0;
        double x;
        if (o->type == OPT_INT) {
            long long i = strtoll(v, &end, 10);
            x = (double)i;
        } else {
            x = strtod(v, &end);
        }
        int bad = !*v || *end || errno || !isfinite(x) || (o->min != o->max && (x < o->min || x > o->max));
        if (o->type == OPT_INT && (x < -2147483648.0 || x > 2147483647.0)) bad = 1;
        if (bad) {
            range_text(o, want, sizeof want);
            opt_error(c, "--%s wants %s, got '%s'", o->name, want, v);
            return -1;
        }
        if (o->type == OPT_INT) *(int *)field(dst, o) = (int)x;
        else *(float *)field(dst, o) = (float)x;
        return 0;
    }
    default: return -1;
    }
}

int opt_parse(const opt_command *c, int argc, char **argv, int first, void *dst, opt_args *args,
              opt_given *given) {
    memset(args, 0, sizeof *args);
    if (given) given->bits = 0;
    int n = n_specs(c), only_pos = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || !a[1]) { /* positional ("-" alone is one too) */
            if (args->n_pos >= c->max_positional || args->n_pos >= 8) {
                if (c->max_positional == 0) opt_error(c, "unexpected argument '%s' (this command takes options only)", a);
                else opt_error(c, "unexpected argument '%s' (at most %d %s)", a, c->max_positional, c->positional);
                return OPT_ERROR;
            }
            args->pos[args->n_pos++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            opt_help(c, stdout);
            return OPT_HELP;
        }
        const opt_spec *o = NULL;
        const char *inline_val = NULL;
        char name[64];
        if (a[1] == '-') {
            const char *eq = strchr(a + 2, '=');
            size_t l = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
            if (l >= sizeof name) l = sizeof name - 1;
            memcpy(name, a + 2, l);
            name[l] = '\0';
            if (eq) inline_val = eq + 1;
            for (int k = 0; k < n; k++)
                if (!strcmp(c->opts[k].name, name)) o = &c->opts[k];
        } else if (!a[2]) {
            snprintf(name, sizeof name, "%s", a + 1);
            for (int k = 0; k < n; k++)
                if (c->opts[k].short_name && c->opts[k].short_name == a[1]) o = &c->opts[k];
        }
        if (!o) {
            /* a negative number where a positional is allowed */
            char *end;
            strtod(a, &end);
            if (!*end && c->max_positional > args->n_pos) {
                args->pos[args->n_pos++] = a;
                continue;
            }
            const opt_spec *near = a[1] == '-' ? nearest(c, name) : NULL;
            if (near) opt_error(c, "unknown option '%s' (did you mean --%s?)", a, near->name);
            else opt_error(c, "unknown option '%s'", a);
            return OPT_ERROR;
        }
        if (given) given->bits |= 1ull << (o - c->opts);
        if (o->type == OPT_FLAG) {
            if (inline_val) {
                opt_error(c, "--%s takes no value (got '%s')", o->name, inline_val);
                return OPT_ERROR;
            }
            *(int *)field(dst, o) = 1;
            continue;
        }
        const char *v = inline_val;
        if (!v) {
            if (i + 1 >= argc) {
                opt_error(c, "%s needs a value (%s)", a, o->metavar ? o->metavar : "VALUE");
                return OPT_ERROR;
            }
            v = argv[++i];
        }
        if (store(c, o, v, dst) != 0) return OPT_ERROR;
    }
    return OPT_OK;
}

int opt_was_given(const opt_command *c, const opt_given *g, const char *name) {
    for (int k = 0; k < n_specs(c); k++)
        if (!strcmp(c->opts[k].name, name)) return (int)((g->bits >> k) & 1);
    return 0;
}

/* "-m, --model PATH" */
static void spec_head(const opt_spec *o, char *buf, size_t n) {
    char s[8] = "";
    if (o->short_name) snprintf(s, sizeof s, "-%c, ", o->short_name);
    const char *meta = o->type == OPT_FLAG ? "" : o->metavar ? o->metavar : "VALUE";
    snprintf(buf, n, "%s--%s%s%s", s, o->name, *meta ? " " : "", meta);
}

/* Print `text` word-wrapped to `width`, continuation lines indented by `indent`. */
static void wrap(FILE *f, const char *text, int col, int indent, int width) {
    const char *p = text;
    while (*p) {
        const char *w = p;
        while (*w && *w != ' ') w++;
        int l = (int)(w - p);
        if (col > indent && col + 1 + l > width) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', f);
            col++;
        }
        fwrite(p, 1, (size_t)l, f);
        col += l;
        p = w;
        while (*p == ' ') p++;
    }
}

void opt_help(const opt_command *c, FILE *f) {
    fprintf(f, "usage: mlxn %s %s\n\n%s\n", c->name, c->synopsis, c->summary);
    /* the description, paragraph by paragraph, wrapped */
    for (const char *p = c->description; p && *p;) {
        const char *e = strstr(p, "\n\n");
        size_t l = e ? (size_t)(e - p) : strlen(p);
        char para[2048];
        snprintf(para, sizeof para, "%.*s", (int)l, p);
        fputc('\n', f);
        wrap(f, para, 0, 0, 100);
        fputc('\n', f);
        p += l + (e ? 2 : 0);
    }
    int n = n_specs(c);
    fprintf(f, "\noptions:\n");
    for (int k = 0; k <= n; k++) {
        const opt_spec help = {.name = "help", .short_name = 'h', .type = OPT_FLAG, .help = "show this help"};
        const opt_spec *o = k < n ? &c->opts[k] : &help;
        char head[96], text[1024];
        spec_head(o, head, sizeof head);
        if (!o->short_name) {
            memmove(head + 4, head, strlen(head) + 1);
            memcpy(head, "    ", 4);
        }
        int col = fprintf(f, "  %-26s", head);
        if (strlen(head) > 25) { /* no room for a space before the text */
            fprintf(f, "\n%28s", "");
            col = 28;
        }
        snprintf(text, sizeof text, "%s%s%s%s%s%s", o->help, o->choices ? " One of " : "",
                 o->choices ? o->choices : "", o->choices ? "." : "", o->def ? " Default: " : "",
                 o->def ? o->def : "");
        if (o->def) strncat(text, ".", sizeof text - strlen(text) - 1);
        wrap(f, text, col, 28, 100);
        fputc('\n', f);
    }
    if (c->note) {
        fputc('\n', f);
        c->note(f);
        fputc('\n', f);
    }
    if (c->examples) {
        fprintf(f, "\nexamples:\n");
        for (const char *p = c->examples; *p;) {
            const char *e = strchr(p, '\n');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            fprintf(f, "  %.*s\n", (int)l, p);
            p += l + (e != NULL);
        }
    }
}

/* Markdown table cell: '|' escaped. */
static void cell(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '|') fputs("\\|", f);
        else fputc(*s, f);
    }
}

void opt_markdown(const opt_command *c, FILE *f) {
    fprintf(f, "## mlxn %s\n\n%s\n\n```\nmlxn %s %s\n```\n\n", c->name, c->summary, c->name, c->synopsis);
    if (c->description) fprintf(f, "%s\n\n", c->description);
    int n = n_specs(c);
    if (n) {
        fprintf(f, "| Option | Value | Default | Description |\n|---|---|---|---|\n");
        for (int k = 0; k < n; k++) {
            const opt_spec *o = &c->opts[k];
            fputs("| ", f);
            if (o->short_name) fprintf(f, "`-%c`, ", o->short_name);
            fprintf(f, "`--%s` | ", o->name);
            if (o->type == OPT_CHOICE) cell(f, o->choices);
            else if (o->type != OPT_FLAG) cell(f, o->metavar ? o->metavar : "VALUE");
            fputs(" | ", f);
            cell(f, o->def);
            fputs(" | ", f);
            cell(f, o->help);
            fputs(" |\n", f);
        }
        fputc('\n', f);
    }
    if (c->note) {
        c->note(f);
        fputs("\n\n", f);
    }
    if (c->examples) fprintf(f, "Examples:\n\n```\n%s\n```\n\n", c->examples);
}

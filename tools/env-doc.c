/* env-doc.c - print the documentation of the HAKMEM_* variables from the
 * option table in src/options.c, so the documentation cannot drift from the
 * code.  Used by `make env-doc`, which rewrites the table in README.md and the
 * ENVIRONMENT section of man/hakmem.3, and by the tests that check both.
 *   env-doc         the README table (Markdown)
 *   env-doc --man   the man page entries (roff: one .TP per variable) */
#include <stdio.h>
#include <string.h>

#include "hak_internal.h"

static int roff;   /* --man: escape for roff instead of Markdown */

/* Text for the current output format: in roff a backslash is \e and a dash
 * that starts a word (an option, "--set") is a minus sign, \-. */
static void put_text(const char *s) {
    if (!roff) {
        fputs(s, stdout);
        return;
    }
    for (const char *p = s; *p; p++) {
        if (*p == '\\') fputs("\\e", stdout);
        else if (*p == '-' && (p == s || p[-1] == ' ' || p[-1] == '-' || p[-1] == '/' || p[-1] == '(' || p[1] == '-'))
            fputs("\\-", stdout);
        else putchar(*p);
    }
}

static void print_size(uint64_t v) {
    static const char *const unit[] = {"", " KiB", " MiB", " GiB", " TiB"};
    int u = 0;
    while (v >= 1024 && v % 1024 == 0 && u < 4) {
        v /= 1024;
        u++;
    }
    printf("%llu%s", (unsigned long long)v, unit[u]);
}

static void print_value(const hak_option_def_t *d, uint64_t v) {
    if (d->kind == HAK_OPT_SIZE) print_size(v);
    else if (d->kind == HAK_OPT_ENUM) put_text(d->choices[v]);
    else printf("%llu", (unsigned long long)v);
}

static void print_default(const hak_option_def_t *d) {
    if (d->kind == HAK_OPT_STR) printf("(unset)");
    else print_value(d, d->def);
}

static void print_range(const hak_option_def_t *d) {
    switch (d->kind) {
    case HAK_OPT_STR: printf("a file path"); break;
    case HAK_OPT_BOOL: printf("0/1, off/on, false/true"); break;
    case HAK_OPT_ENUM:
        for (size_t k = 0; d->choices[k]; k++) {
            printf("%s", k ? ", " : "");
            put_text(d->choices[k]);
        }
        break;
    default:
        print_value(d, d->min);
        printf(" .. ");
        print_value(d, d->max);
        if (d->kind == HAK_OPT_SIZE) printf(" (K/M/G suffixes)");
    }
}

int main(int argc, char **argv) {
    roff = argc > 1 && strcmp(argv[1], "--man") == 0;
    if (argc > 2 || (argc == 2 && !roff)) {
        fprintf(stderr, "usage: env-doc [--man]\n");
        return 2;
    }
    size_t n;
    const hak_option_def_t *t = hak_option_table(&n);
    if (!roff) printf("| variable | default | range | meaning |\n|---|---|---|---|\n");
    for (size_t i = 0; i < n; i++) {
        const hak_option_def_t *d = &t[i];
        if (roff) {
            printf(".TP\n.B %s\n%s", d->name, d->help[0] == '.' || d->help[0] == '\'' ? "\\&" : "");
            put_text(d->help);
            printf(".\n.br\nDefault: ");
            print_default(d);
            printf("; values: ");
            print_range(d);
            printf(".\n");
            continue;
        }
        printf("| `%s` | ", d->name);
        print_default(d);
        printf(" | ");
        print_range(d);
        printf(" | %s |\n", d->help);
    }
    return 0;
}

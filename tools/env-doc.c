/* env-doc.c - print the README table of HAKMEM_* variables from the option
 * table in src/options.c, so the documentation cannot drift from the code.
 * Used by `make env-doc` (rewrites README.md between markers) and by a test. */
#include <stdio.h>

#include "hak_internal.h"

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
    else if (d->kind == HAK_OPT_ENUM) printf("%s", d->choices[v]);
    else printf("%llu", (unsigned long long)v);
}

int main(void) {
    size_t n;
    const hak_option_def_t *t = hak_option_table(&n);
    printf("| variable | default | range | meaning |\n|---|---|---|---|\n");
    for (size_t i = 0; i < n; i++) {
        const hak_option_def_t *d = &t[i];
        printf("| `%s` | ", d->name);
        if (d->kind == HAK_OPT_STR) printf("(unset)");
        else print_value(d, d->def);
        printf(" | ");
        switch (d->kind) {
        case HAK_OPT_STR: printf("a file path"); break;
        case HAK_OPT_BOOL: printf("0/1, off/on, false/true"); break;
        case HAK_OPT_ENUM:
            for (size_t k = 0; d->choices[k]; k++) printf("%s%s", k ? ", " : "", d->choices[k]);
            break;
        default:
            print_value(d, d->min);
            printf(" .. ");
            print_value(d, d->max);
            if (d->kind == HAK_OPT_SIZE) printf(" (K/M/G suffixes)");
        }
        printf(" | %s |\n", d->help);
    }
    return 0;
}

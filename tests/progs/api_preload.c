/* api_preload.c - the replaced malloc family, checked through the public
 * symbols a program calls (run under LD_PRELOAD=libhakmem.so, or linked with
 * libhakmem.a).  Prints one line per check; exits 1 on the first failure. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hakmem.h"

static int failures;
#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                     \
        }                                                                   \
    } while (0)

int main(void) {
    int (*owns)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "hak_owns");
    if (owns == NULL) {
        fprintf(stderr, "hakmem is not loaded (hak_owns not found)\n");
        return 2;
    }
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    volatile size_t huge = SIZE_MAX;   /* volatile: keep the compiler from judging the calls */

    /* malloc / free / malloc_usable_size */
    char *big = malloc(1 << 20);
    CHECK(big && owns(big));
    CHECK(malloc_usable_size(big) >= (1u << 20));
    char *small = malloc(100);
    CHECK(small && !owns(small));
    CHECK(malloc_usable_size(small) >= 100);
    free(small);
    free(big);
    free(NULL);
    void *z = malloc(0);
    CHECK(z != NULL);
    free(z);
    errno = 0;
    CHECK(malloc(huge) == NULL && errno == ENOMEM);

    /* calloc */
    errno = 0;
    CHECK(calloc(huge / 4, 8) == NULL && errno == ENOMEM);
    unsigned char *c = calloc(1, 2 << 20);
    CHECK(c && owns(c) && c[0] == 0 && c[(2 << 20) - 1] == 0);
    free(c);

    /* realloc / reallocarray */
    char *r = realloc(NULL, 200 << 10);
    CHECK(r && owns(r));
    memset(r, 'x', 200 << 10);
    r = realloc(r, 10);
    CHECK(r && !owns(r) && r[0] == 'x' && r[9] == 'x');
    r = realloc(r, 3 << 20);
    CHECK(r && owns(r) && r[9] == 'x');
    CHECK(realloc(r, 0) == NULL);
    errno = 0;
    CHECK(reallocarray(NULL, huge / 2, 4) == NULL && errno == ENOMEM);
    int *ra = reallocarray(NULL, 100000, sizeof(int));
    CHECK(ra && owns(ra));
    free(ra);

    /* posix_memalign: returns the error, leaves errno and *out alone */
    void *p = (void *)0x1;
    errno = 0;
    CHECK(posix_memalign(&p, 3, 64) == EINVAL && p == (void *)0x1 && errno == 0);
    CHECK(posix_memalign(&p, 2, 64) == EINVAL);
    CHECK(posix_memalign(&p, 1 << 21, 5 << 20) == 0 && ((uintptr_t)p & ((1u << 21) - 1)) == 0 && owns(p));
    free(p);
    CHECK(posix_memalign(&p, 64, 100) == 0 && ((uintptr_t)p & 63) == 0);
    free(p);
    CHECK(posix_memalign(&p, 4096, SIZE_MAX - 4096) == ENOMEM);

    /* aligned_alloc: power of two alignment, else EINVAL */
    errno = 0;
    CHECK(aligned_alloc(3, 64) == NULL && errno == EINVAL);
    void *a = aligned_alloc(1 << 16, 1 << 20);
    CHECK(a && ((uintptr_t)a & 0xffff) == 0 && owns(a));
    free(a);

    /* memalign: non-power-of-two alignments round up (glibc) */
    void *m = memalign(48, 100);
    CHECK(m && ((uintptr_t)m & 63) == 0);
    free(m);
    m = memalign(1 << 20, 256 << 10);
    CHECK(m && ((uintptr_t)m & ((1u << 20) - 1)) == 0);
    free(m);

    /* valloc / pvalloc */
    void *v = valloc(100);
    CHECK(v && ((uintptr_t)v & (page - 1)) == 0);
    free(v);
    void *pv = pvalloc(1);
    CHECK(pv && ((uintptr_t)pv & (page - 1)) == 0 && malloc_usable_size(pv) >= page);
    free(pv);
    pv = pvalloc(100 << 10);
    CHECK(pv && owns(pv) && malloc_usable_size(pv) >= (100u << 10));
    free(pv);
    errno = 0;
    CHECK(pvalloc(SIZE_MAX - 10) == NULL && errno == ENOMEM);

    /* strdup & friends (glibc internals calling malloc) still work */
    char *d = strdup("hakmem");
    CHECK(d && strcmp(d, "hakmem") == 0);
    free(d);

    printf("api_preload: %d failure(s)\n", failures);
    return failures ? 1 : 0;
}

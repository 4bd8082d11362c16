/*
 * libc.c - glibc's own allocator for blocks below large_min (and mode=off).
 * __libc_malloc & co. are glibc's exported internal entry points; the one
 * function without such an alias, malloc_usable_size, is looked up once.
 */
#define _GNU_SOURCE
#include <dlfcn.h>

#include "hak_internal.h"

static size_t (*libc_usable)(void *);
static int (*libc_trim)(size_t);

void hak_libc_resolve(void) {
    if (libc_usable == NULL)
        libc_usable = (size_t (*)(void *))dlvsym(RTLD_NEXT, "malloc_usable_size", "GLIBC_2.2.5");
}

int hak_libc_malloc_trim(size_t pad) {
#ifdef HAK_SANITIZER_BUILD
    return malloc_trim(pad);
#else
    int (*fn)(size_t) = __atomic_load_n(&libc_trim, __ATOMIC_ACQUIRE);
    if (fn == NULL) {
        fn = (int (*)(size_t))dlvsym(RTLD_NEXT, "malloc_trim", "GLIBC_2.2.5");
        __atomic_store_n(&libc_trim, fn, __ATOMIC_RELEASE);
    }
    /* (linked statically, RTLD_NEXT may find no other: never call ourselves) */
    return fn != NULL && fn != malloc_trim ? fn(pad) : 0;
#endif
}

size_t hak_libc_usable_size(void *p) {
    if (p == NULL) return 0;
#ifdef HAK_SANITIZER_BUILD
    return malloc_usable_size(p);
#endif
    if (libc_usable == NULL && !hak_tls.in_init) hak_libc_resolve();
    if (libc_usable != NULL) return libc_usable(p);
    /* Not resolvable (static binary without dlvsym support): glibc's chunk
     * header, as its own malloc_usable_size reads it. */
    size_t head = ((const size_t *)p)[-1];
    size_t csize = head & ~(size_t)7;
    return (head & 2) ? csize - 2 * sizeof(size_t) : csize - sizeof(size_t);
}

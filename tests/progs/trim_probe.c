/*
 * trim_probe - malloc_trim(0) under LD_PRELOAD=libhakmem.so releases the large
 * blocks hakmem keeps warm.  Frees N blocks of SIZE (they go to the caches),
 * reads hakmem's counters through hak_stats_get (dlsym), calls malloc_trim(0)
 * and reads them again.  Prints
 *   cached_before=B pending_before=B rc=R cached_after=B pending_after=B munmaps=N
 * and exits 0 when the cache held bytes before, holds none after and
 * malloc_trim returned 1; 1 otherwise; 2 when not run under libhakmem.
 *   trim_probe [blocks [size]]
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 8;
    size_t size = argc > 2 ? strtoull(argv[2], NULL, 0) : (size_t)1 << 20;
    void (*get)(hak_stats_t *) = (void (*)(hak_stats_t *))dlsym(RTLD_DEFAULT, "hak_stats_get");
    if (get == NULL || n <= 0 || n > 64) {
        fprintf(stderr, "trim_probe: run under LD_PRELOAD=libhakmem.so (blocks 1..64)\n");
        return 2;
    }
    void *p[64];
    for (int i = 0; i < n; i++) {
        p[i] = malloc(size);
        if (p[i] == NULL) return 1;
        memset(p[i], 0x5a, size);
    }
    for (int i = 0; i < n; i++) free(p[i]);
    hak_stats_t a, b;
    get(&a);
    int rc = malloc_trim(0);
    get(&b);
    printf("cached_before=%llu pending_before=%llu rc=%d cached_after=%llu pending_after=%llu munmaps=%llu\n",
           (unsigned long long)a.bytes_cached, (unsigned long long)a.bytes_pending, rc,
           (unsigned long long)b.bytes_cached, (unsigned long long)b.bytes_pending,
           (unsigned long long)(b.munmap_calls - a.munmap_calls));
    return a.bytes_cached > 0 && b.bytes_cached == 0 && b.bytes_pending == 0 && rc == 1 ? 0 : 1;
}

/* arena_probe - run under LD_PRELOAD=libhakmem.so: mallocs a 4 MiB block and
 * prints "arenas=N block_in_arena=B": N the inaccessible 1 GiB mappings of
 * /proc/self/maps (hakmem's arenas), B whether the block lies inside one.
 * Exit 0, or 1 when malloc or /proc/self/maps fails. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    unsigned char *p = malloc((size_t)4 << 20);
    if (p == NULL) {
        perror("arena_probe: malloc");
        return 1;
    }
    p[0] = 1;
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL) {
        perror("arena_probe: /proc/self/maps");
        return 1;
    }
    char line[512];
    int arenas = 0, inside = 0;
    uintptr_t u = (uintptr_t)p;
    /* an arena is one mapping of 1 GiB at first; carved blocks split it, so
     * look for the reservation's pieces around the block as well */
    uintptr_t lo_prev = 0, hi_prev = 0;
    while (fgets(line, sizeof line, f)) {
        uintptr_t lo, hi;
        char perms[8];
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s", &lo, &hi, perms) != 3) continue;
        if (strcmp(perms, "---p") == 0 && hi - lo >= ((uintptr_t)512 << 20)) arenas++;
        /* the block's mapping, with an inaccessible piece right after it */
        if (strcmp(perms, "---p") == 0 && lo == hi_prev && u >= lo_prev && u < hi_prev) inside = 1;
        lo_prev = lo;
        hi_prev = hi;
    }
    fclose(f);
    printf("arenas=%d block_in_arena=%d\n", arenas, inside);
    free(p);
    return 0;
}

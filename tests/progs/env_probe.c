/* env_probe.c - the options the allocator core resolved from the environment
 * in this process, for tests/integration/setuid_env.sh (linked with
 * libhakmem_core.a, no preload: what it prints is what hak_init read).
 *
 *   env_probe [MS]     one large malloc/free (starts the tuner thread in
 *                      evolving mode), MS milliseconds of sleep (default 0),
 *                      then one line: secure=<AT_SECURE> mode=<mode>
 *                      ring_cap=<n> history=<path or "">
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "hak_internal.h"

int main(int argc, char **argv) {
    void *p = hak_alloc(1 << 20);
    if (p == NULL) return 2;
    hak_free(p);
    if (argc > 1) usleep((useconds_t)atoi(argv[1]) * 1000u);
    printf("secure=%lu mode=%s ring_cap=%llu history=%s\n", getauxval(AT_SECURE), hak_mode_str(hak_opt.mode),
           (unsigned long long)hak_opt.ring_cap, hak_opt.history);
    return 0;
}

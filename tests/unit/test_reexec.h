/* test_reexec.h - the library reads its options once, when it starts: a unit
 * test that needs evolving mode runs itself again with them set (unless they
 * are: sanitizers.sh sets them for valgrind, which cannot follow the exec). */
#ifndef HAKMEM_TEST_REEXEC_H
#define HAKMEM_TEST_REEXEC_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* env: NULL-terminated NAME, VALUE pairs besides HAKMEM_MODE=evolving and
 * HAKMEM_STATS=1; HAKMEM_HISTORY is unset.  Returns only when already in
 * evolving mode; exits 1 when the exec fails. */
static inline void reexec_evolving(char **argv, const char *const *env) {
    const char *mode = getenv("HAKMEM_MODE");
    if (mode != NULL && strcmp(mode, "evolving") == 0) return;
    setenv("HAKMEM_MODE", "evolving", 1);
    setenv("HAKMEM_STATS", "1", 1);
    for (; env[0] != NULL; env += 2) setenv(env[0], env[1], 1);
    unsetenv("HAKMEM_HISTORY");
    execv("/proc/self/exe", argv);
    perror("execv /proc/self/exe");
    exit(1);
}

#endif

/*
 * unshare_probe - does a program stay single-threaded under the allocator?
 * Makes large and small allocations (the first large one is where a lazily
 * started thread would appear), then counts its threads in /proc/self/task
 * and calls unshare(CLONE_NEWUSER), which the kernel refuses (EINVAL) to a
 * multi-threaded process.
 * Exit: 0 single-threaded and unshare worked; 1 more than one thread;
 *       2 unshare failed (errno printed); 3 allocation failed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int count_threads(void) {
    DIR *d = opendir("/proc/self/task");
    if (d == NULL) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 8;
    for (int r = 0; r < rounds; r++) {
        void *big[4];
        for (int i = 0; i < 4; i++) {
            big[i] = malloc((size_t)(256 << 10) << i);
            void *small = malloc(64);
            if (big[i] == NULL || small == NULL) return 3;
            memset(big[i], r, 4096);
            free(small);
        }
        for (int i = 0; i < 4; i++) free(big[i]);
    }
    int n = count_threads();
    if (n != 1) {
        fprintf(stderr, "unshare_probe: %d threads after large allocations (want 1)\n", n);
        return 1;
    }
    if (unshare(CLONE_NEWUSER) != 0) {
        fprintf(stderr, "unshare_probe: unshare(CLONE_NEWUSER): %s\n", strerror(errno));
        return 2;
    }
    printf("unshare_probe: 1 thread, unshare(CLONE_NEWUSER) ok\n");
    return 0;
}

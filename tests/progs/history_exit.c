/*
 * history_exit.c - a program that churns large blocks until a file appears,
 * then returns from main (destructors run: the library stops its tuner
 * thread, which closes the run in HAKMEM_HISTORY).  For
 * tests/integration/tuner_exit.sh.
 *
 * Usage: history_exit GO_FILE [max_seconds]
 * Exit 0 once GO_FILE exists, 2 usage, 3 GO_FILE never appeared.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: history_exit GO_FILE [max_seconds]\n");
        return 2;
    }
    int max_s = argc > 2 ? atoi(argv[2]) : 60;
    time_t end = time(NULL) + max_s;
    void *p[16];
    while (access(argv[1], F_OK) != 0) {
        if (time(NULL) > end) return 3;
        for (int i = 0; i < 16; i++) {
            p[i] = malloc((size_t)2 << 20);
            if (p[i] == NULL) return 1;
            memset(p[i], i, 4096);
        }
        for (int i = 0; i < 16; i++) free(p[i]);
        struct timespec ts = {0, 2000000L};
        nanosleep(&ts, NULL);
    }
    printf("history_exit: go\n");
    return 0;
}

/*
 * instr_pair - a loop of malloc+free pairs, for counting the instructions of
 * one pair (bench/instructions.sh runs it under callgrind with N and 2N pairs:
 * the difference over N is one pair, with start-up and exit cancelled out).
 *
 *   instr_pair large SIZE N   N times: malloc(SIZE), write its first byte, free
 *                             (after the first pair, a cache hit in any
 *                             allocator that keeps a freed block)
 *   instr_pair small N        64 live blocks of 8-1024 bytes; N times: free a
 *                             random one, malloc a random size, write it
 *
 * The allocator is whatever malloc the process has (LD_PRELOAD).  Exit 0, or
 * 2 on a usage error, 1 when malloc fails.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 64

static void usage(FILE *f) {
    fprintf(f, "usage: instr_pair large SIZE N | small N\n"
               "  large SIZE N  N pairs of malloc(SIZE) and free, the block's first byte written\n"
               "  small N       N replacements among 64 live blocks of 8-1024 bytes\n");
}

static int parse_count(const char *s, unsigned long long *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v == 0 || s[0] == '-') return -1;
    *out = v;
    return 0;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

int main(int argc, char **argv) {
    unsigned long long n, size = 0;
    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    int large = argc == 4 && strcmp(argv[1], "large") == 0;
    int small = argc == 3 && strcmp(argv[1], "small") == 0;
    if ((!large && !small) || (large && (parse_count(argv[2], &size) != 0 || parse_count(argv[3], &n) != 0)) ||
        (small && parse_count(argv[2], &n) != 0)) {
        usage(stderr);
        return 2;
    }
    volatile unsigned char sink = 0;
    if (large) {
        for (unsigned long long i = 0; i < n; i++) {
            unsigned char *p = malloc((size_t)size);
            if (p == NULL) {
                perror("instr_pair: malloc");
                return 1;
            }
            p[0] = (unsigned char)i;
            sink += p[0];
            free(p);
        }
        return 0;
    }
    unsigned char *s[SLOTS];
    for (int k = 0; k < SLOTS; k++)
        if ((s[k] = malloc(8 + (size_t)(rnd() % 1017))) == NULL) {
            perror("instr_pair: malloc");
            return 1;
        }
    for (unsigned long long i = 0; i < n; i++) {
        int k = (int)(rnd() % SLOTS);
        free(s[k]);
        if ((s[k] = malloc(8 + (size_t)(rnd() % 1017))) == NULL) {
            perror("instr_pair: malloc");
            return 1;
        }
        s[k][0] = (unsigned char)i;
        sink += s[k][0];
    }
    for (int k = 0; k < SLOTS; k++) free(s[k]);
    return 0;
}

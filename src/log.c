/*
 * log.c - messages on stderr without calling malloc (a stack buffer and write(2)),
 * so they are safe inside the allocator.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hak_internal.h"

static void hak_vlog(const char *prefix, const char *fmt, va_list ap) {
    char buf[512];
    int n = snprintf(buf, sizeof buf, "hakmem[%d]: %s", (int)getpid(), prefix);
    if (n < 0) return;
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    if (m < 0) return;
    size_t len = strlen(buf);
    if (len + 1 < sizeof buf && (len == 0 || buf[len - 1] != '\n')) buf[len++] = '\n';
    ssize_t w = write(2, buf, len);
    (void)w;
}

void hak_log(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    hak_vlog("", fmt, ap);
    va_end(ap);
}

void hak_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    hak_vlog("warning: ", fmt, ap);
    va_end(ap);
}

void hak_fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    hak_vlog("fatal: ", fmt, ap);
    va_end(ap);
    abort();
}

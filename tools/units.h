/*
 * tools/units.h - how the tools write a figure for a reader: bytes, byte
 * rates, durations.  ONE formatter, shared by hakmem-stat and hakmem-report
 * (header-only, so every tool can include it without a link dependency), so a
 * size class reads "1.25 MiB" in both.
 *
 *   hak_fmt_bytes     binary units, up to two decimals, trailing zeros dropped:
 *                     "0 B", "512 B", "80 KiB", "1.25 MiB", "240.17 MiB"
 *   hak_fmt_rate      the same per second: "5 MiB/s"
 *   hak_fmt_duration  seconds in the unit that reads best, three significant
 *                     digits: "0 s", "850 ns", "107 us", "2.26 ms", "1.5 s",
 *                     "2.5 min", "3.2 h"
 * Each writes at most n bytes into buf (NUL-terminated) and returns buf.
 */
#ifndef HAKMEM_TOOLS_UNITS_H
#define HAKMEM_TOOLS_UNITS_H

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Drop the trailing zeros of the decimals of a number at the start of buf
 * ("2.50 MiB" -> "2.5 MiB", "2.00 MiB" -> "2 MiB"). */
static inline void hak_fmt_trim_(char *buf) {
    char *dot = strchr(buf, '.');
    if (dot == NULL) return;
    char *end = dot + 1;
    while (*end >= '0' && *end <= '9') end++;
    char *z = end;
    while (z > dot + 1 && z[-1] == '0') z--;
    if (z == dot + 1) z = dot;
    memmove(z, end, strlen(end) + 1);
}

static inline const char *hak_fmt_bytes(char *buf, size_t n, double v) {
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double a = fabs(v);
    int u = 0;
    while (a >= 1024.0 && u < 6) a /= 1024.0, u++;
    /* 1023.999 KiB rounds to "1024 KiB": step up instead */
    if (u > 0 && u < 6 && a >= 1023.995) a /= 1024.0, u++;
    if (u == 0) snprintf(buf, n, "%.0f B", v);
    else snprintf(buf, n, "%.2f %s", v < 0 ? -a : a, unit[u]);
    hak_fmt_trim_(buf);
    return buf;
}

static inline const char *hak_fmt_rate(char *buf, size_t n, double bytes_per_s) {
    hak_fmt_bytes(buf, n, bytes_per_s);
    size_t l = strlen(buf);
    if (l + 3 <= n) memcpy(buf + l, "/s", 3);
    return buf;
}

static inline const char *hak_fmt_duration(char *buf, size_t n, double s) {
    static const struct { double scale; const char *unit; } u[] = {
        {1e-9, "ns"}, {1e-6, "us"}, {1e-3, "ms"}, {1.0, "s"}, {60.0, "min"}, {3600.0, "h"}};
    double a = fabs(s);
    if (a == 0.0 || !isfinite(s)) {
        snprintf(buf, n, isfinite(s) ? "0 s" : "-");
        return buf;
    }
    int i = 0;
    /* the largest unit that keeps the value >= 1 (minutes and hours from 2 of them) */
    while (i < 5 && a >= u[i + 1].scale * (u[i + 1].scale >= 60.0 ? 2.0 : 1.0)) i++;
    double x = s / u[i].scale, ax = fabs(x);
    snprintf(buf, n, "%.*f %s", ax >= 100 ? 0 : ax >= 10 ? 1 : 2, x, u[i].unit);
    hak_fmt_trim_(buf);
    return buf;
}

#endif /* HAKMEM_TOOLS_UNITS_H */

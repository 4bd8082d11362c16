/*
 * hak_probe.h - USDT probes (sys/sdt.h); an unattached probe is one nop.
 */
#ifndef HAK_PROBE_H
#define HAK_PROBE_H

#if defined(HAK_HAVE_SDT) && __has_include(<sys/sdt.h>)
#include <sys/sdt.h>
#define HAK_PROBE2(n, a, b)       DTRACE_PROBE2(hakmem, n, a, b)
#define HAK_PROBE3(n, a, b, c)    DTRACE_PROBE3(hakmem, n, a, b, c)
#else
#define HAK_PROBE2(n, a, b)       do { (void)(a); (void)(b); } while (0)
#define HAK_PROBE3(n, a, b, c)    do { (void)(a); (void)(b); (void)(c); } while (0)
#endif

#endif

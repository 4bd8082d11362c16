/*
 * tuner/listen.h - hakmem-tuner --listen: a minimal HTTP endpoint serving the
 * live telemetry of every hakmem process of this user in the Prometheus text
 * format (GET /metrics), for a Prometheus server and the Grafana dashboard
 * dashboards/hakmem-grafana.json.  The exposition is tools/metrics.c, the same
 * writer as `hakmem-stat --prometheus`, so both print the same names.
 *
 * Single-threaded and served from the tuner's own loop between samples: one
 * connection at a time, a request head of at most 8 KiB, 2 s socket timeouts
 * (a stuck client delays sampling by at most that), HTTP/1.0-style
 * "Connection: close".  Loopback (127.0.0.1:9464) by default.
 */
#ifndef HAKMEM_TUNER_LISTEN_H
#define HAKMEM_TUNER_LISTEN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#define TUNER_LISTEN_DEFAULT "127.0.0.1:9464"

typedef struct tuner_listen tuner_listen_t;

/* Bind and listen on spec: "ADDR:PORT", "[IPv6]:PORT", ":PORT" or "PORT"
 * (ADDR defaults to 127.0.0.1; PORT 0 picks a free port).  NULL and a message
 * in err on failure. */
tuner_listen_t *tuner_listen_open(const char *spec, char *err, size_t errlen);

/* "http://127.0.0.1:9464/metrics" (with the port actually bound). */
const char *tuner_listen_url(const tuner_listen_t *l);

/* 1 when bound to a loopback address only. */
int tuner_listen_is_loopback(const tuner_listen_t *l);

/* Serve requests until CLOCK_MONOTONIC reaches deadline_ns or *stop is set. */
void tuner_listen_serve_until(tuner_listen_t *l, uint64_t deadline_ns, volatile sig_atomic_t *stop);

/* Requests served (any path). */
uint64_t tuner_listen_requests(const tuner_listen_t *l);

void tuner_listen_close(tuner_listen_t *l);

#endif /* HAKMEM_TUNER_LISTEN_H */

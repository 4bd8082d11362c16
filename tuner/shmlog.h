/*
 * tuner/shmlog.h - write tuner decisions (and later their grades) into the
 * decision log ring of a telemetry segment (hak_shm_t.decisions/decision_head),
 * for hakmem-stat and dashboards.  Used by the daemon (--drive) and the
 * in-process tuner; no allocation, no locks, no I/O.
 *
 * Protocol (single writer per segment: the in-process tuner in evolving mode,
 * the daemon only for fixed-mode processes): entry n-1 % HAK_SHM_DECISIONS is
 * invalidated (seq = 0), filled, published with seq = n (release), then
 * decision_head = n (release).  A reader copies an entry and trusts it only
 * when its seq reads n before and after the copy.
 */
#ifndef HAKMEM_TUNER_SHMLOG_H
#define HAKMEM_TUNER_SHMLOG_H

#include <stdint.h>

#include "hakmem/shm.h"
#include "policy.h"

/* Append d (CLOCK_REALTIME time_ns) to shm's decision log; returns its seq
 * (1-based decision number), the value to pass to tuner_note_decision. */
uint64_t tuner_shm_log_decision(hak_shm_t *shm, const tuner_decision_t *d, uint64_t time_ns);

/* Store g->grade into the log entry of g->decision_seq if it is still in the ring. */
void tuner_shm_log_grade(hak_shm_t *shm, const tuner_grade_t *g);

#endif /* HAKMEM_TUNER_SHMLOG_H */

/*
 * test_idle_tick.c - the in-process tuner's host (tuner/inproc.c) when the
 * program goes idle: once the idle trim is done its ticks back off (a
 * sleeping program does not wake its tuner every period), and they come back
 * to the period when the program does.  The thread is found by its name,
 * hakmem-tuner; its wake-ups are counted (voluntary context switches in
 * /proc/self/task/TID/status), with wide margins and no timing finer than
 * half a second.  While idle it also keeps only one of its two snapshots
 * resident (pagemap).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "hak_internal.h"
#include "test_reexec.h"
#include "test_pages.h"
#include "../../tuner/policy.h"

#define MiB ((size_t)1 << 20)
#define PERIOD_MS 20

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void churn(void) {
    void *p[8];
    for (int i = 0; i < 8; i++) assert_non_null(p[i] = hak_alloc(2 * MiB));
    for (int i = 0; i < 8; i++) hak_free(p[i]);
}

/* The tid of the thread named hakmem-tuner, or 0. */
static pid_t tuner_tid(void) {
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    pid_t tid = 0;
    for (struct dirent *e; tid == 0 && (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.') continue;
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL) continue;
        if (fgets(comm, sizeof comm, f) && strcmp(comm, "hakmem-tuner\n") == 0) tid = (pid_t)atoi(e->d_name);
        fclose(f);
    }
    closedir(d);
    return tid;
}

static long wakeups(pid_t tid) {
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    long n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1) break;
    fclose(f);
    assert_true(n >= 0);
    return n;
}

static int idle_trims(void) {
    int n = 0;
    uint64_t head = atomic_load((_Atomic uint64_t *)&hak_seg->decision_head);
    for (uint64_t i = head > HAK_SHM_DECISIONS ? head - HAK_SHM_DECISIONS : 0; i < head; i++) {
        const hak_shm_decision_t *d = &hak_seg->decisions[i % HAK_SHM_DECISIONS];
        n += d->knob == HAK_KNOB_TRIM && d->reason == TUNER_R_IDLE;
    }
    return n;
}

static void test_idle_backs_off(void **state) {
    (void)state;
    churn();                                           /* starts the thread */
    pid_t tid = 0;
    for (int i = 0; i < 500 && tid == 0; i++, sleep_ms(10)) tid = tuner_tid();
    assert_true(tid > 0);
    /* busy: a tick every period */
    long w0 = wakeups(tid);
    for (int i = 0; i < 50; i++, sleep_ms(10)) churn();
    long busy = wakeups(tid) - w0;
    /* idle: the trim comes after HAKMEM_IDLE_MS, then the ticks thin out */
    for (int i = 0; i < 1000 && idle_trims() == 0; i++) sleep_ms(10);
    assert_true(idle_trims() >= 1);
    sleep_ms(500);
    w0 = wakeups(tid);
    sleep_ms(2000);
    long idle = wakeups(tid) - w0;
    print_message("tuner wake-ups: %ld in 0.5 s busy, %ld in 2 s idle (period %d ms)\n", busy, idle, PERIOD_MS);
    assert_true(busy >= 10);                           /* 25 expected */
    assert_true(idle <= 15);                           /* 100 without the back-off, 2-4 with it */
    /* and of its two snapshots only the newer one stays resident: the
     * fewest of 5 looks 100 ms apart, since a tick writes the newer one
     * before it gives back the older (both resident in between: a window
     * that valgrind, which runs one thread at a time, makes wide) */
    size_t len;
    const char *s0 = hak_evolve_snapshot(0, &len), *s1 = hak_evolve_snapshot(1, &len);
    int whole = (int)(len / HAK_PAGE), present = 2 * whole;
    for (int i = 0; i < 5; i++, sleep_ms(100)) {
        int n = pages_present(s0, s0 + len) + pages_present(s1, s1 + len);
        if (n < present) present = n;
    }
    print_message("tuner snapshots: %d of %d whole pages resident while idle\n", present, 2 * whole);
    assert_true(present <= whole);
    /* the program is back (busy for longer than the longest idle step):
     * so are the ticks */
    for (int i = 0; i < 250; i++, sleep_ms(10)) churn();
    w0 = wakeups(tid);
    for (int i = 0; i < 50; i++, sleep_ms(10)) churn();
    assert_true(wakeups(tid) - w0 >= 10);
}

int main(int argc, char **argv) {
    (void)argc;
    char period[16];
    snprintf(period, sizeof period, "%d", PERIOD_MS);
    reexec_evolving(argv, (const char *const[]){"HAKMEM_TUNE_INTERVAL_MS", period, "HAKMEM_IDLE_MS", "100", NULL});
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_backs_off),
    };
    return cmocka_run_group_tests_name("idle_tick", tests, NULL, NULL);
}

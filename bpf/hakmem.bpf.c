// SPDX-License-Identifier: GPL-2.0
/*
 * hakmem.bpf.c - kernel-side view of one process running libhakmem.
 *
 * Syscall tracepoints: mmap, munmap, madvise, mremap (enter + exit) of the
 * target tgid only: calls, bytes, errors, log2 latency histograms.
 * USDT probes in libhakmem.so (attached by hakmem-probe, not by the skeleton):
 *   hakmem:batch_flush_begin(nblocks, bytes)      opens a flush window
 *   hakmem:batch_flush_end(ranges, munmaps, ns)   closes it, one ring-buffer event
 *   hakmem:bigcache_evict(class, size, reason)    counted per reason
 *   hakmem:knob_change(knob, old, new)            one ring-buffer event
 * A flush window is per thread (depth in TASK_STORAGE): a munmap made by thread
 * T while T is between begin and end is "inside"; every other munmap of the
 * process is "outside", whatever other threads are doing.
 *
 * Outside-window munmaps are classified two ways:
 *   caller   - the user return address of the libc wrapper (the word at the
 *              user stack pointer: glibc's munmap is a leaf syscall stub) lies
 *              in libhakmem.so's text (vma lookup by inode) -> "hakmem code";
 *   hakmem map - the munmap starts at a mapping that libhakmem code created
 *              (tracked from sys_exit_mmap/mremap while attached).
 * Both must stay 0 for hakmem blocks: only Batch unmaps them, inside windows.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/usdt.bpf.h>

#include "hakmem_bpf.h"

char LICENSE[] SEC("license") = "GPL";   /* usdt.bpf.h uses GPL-only helpers */

/* Set by the loader between open and load. */
const volatile __u32 target_tgid = 0;
const volatile __u64 hak_ino = 0;        /* inode of libhakmem.so */
const volatile __u32 hak_dev = 0;        /* its device, kernel encoding (major << 20 | minor) */
const volatile __u32 trace_outside = 0;  /* emit one event per outside-window munmap */

/* Read by the loader through the skeleton's .bss mmap. */
struct hp_counters counters = {};
__u64 flush_seq = 0;
/* libhakmem.so text range in the target: learned on first use (or set by the loader). */
__u64 hak_lo = 0, hak_hi = 0;

#define ADD(field, v) __sync_fetch_and_add(&counters.field, (v))


struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* Waking the reader for every record costs the traced program a cross-CPU
 * wakeup (or a preemption) per flush: measured +25% on a churn benchmark.
 * The loader polls with a timeout anyway, so wake it only when the ring
 * fills up. */
#define RB_WAKE_BYTES (64 * 1024)
static __always_inline __u64 rb_flags(void) {
    return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= RB_WAKE_BYTES ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, HP_NHIST * HP_HIST_SLOTS);
    __type(key, __u32);
    __type(value, __u64);
} hists SEC(".maps");

/* Mappings created by libhakmem code: start -> length. */
#define HP_MAX_MAPS (256 * 1024)
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __uint(max_entries, HP_MAX_MAPS);
    __type(key, __u64);
    __type(value, __u64);
} hakmaps SEC(".maps");

/* Per-thread state: flush window and the syscall in progress. */
struct tstate {
    __u64 depth;
    __u64 flush_id, begin_ns, blocks, bytes;
    __u64 w_calls, w_bytes, w_ns, w_errors;   /* inside the current window */
    __u64 enter_ns, a0, a1, a2;               /* syscall in progress */
    __u32 in_window, from_hak;
    __u32 caller, hak_map;
    __u64 ret_addr;
};

struct {
    __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct tstate);
} tstates SEC(".maps");

static __always_inline bool is_target(void) {
    return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

static __always_inline struct tstate *tstate_get(void) {
    return bpf_task_storage_get(&tstates, bpf_get_current_task_btf(), NULL, BPF_LOCAL_STORAGE_GET_F_CREATE);
}

static __always_inline __u32 log2_slot(__u64 v) {
    __u32 r = 0;
    if (v >> 32) { v >>= 32; r += 32; }
    if (v >> 16) { v >>= 16; r += 16; }
    if (v >> 8) { v >>= 8; r += 8; }
    if (v >> 4) { v >>= 4; r += 4; }
    if (v >> 2) { v >>= 2; r += 2; }
    if (v >> 1) r += 1;
    return r;
}

static __always_inline void hist_add(__u32 h, __u64 ns) {
    __u32 key = h * HP_HIST_SLOTS + log2_slot(ns);
    __u64 *slot = bpf_map_lookup_elem(&hists, &key);
    if (slot) *slot += 1;   /* per-CPU: no atomic needed */
}

static __always_inline bool is_err(__s64 ret) {
    return ret < 0 && ret >= -4095;
}

/* ---- is an address in libhakmem.so's text? ---- */

struct vma_ctx {
    __u64 lo, hi;
    __u32 match;
};

static long vma_cb(struct task_struct *task, struct vm_area_struct *vma, void *data) {
    struct vma_ctx *c = data;
    struct file *f = BPF_CORE_READ(vma, vm_file);
    if (!f) return 0;
    struct inode *ino = BPF_CORE_READ(f, f_inode);
    if (!ino) return 0;
    if (BPF_CORE_READ(ino, i_ino) == hak_ino && BPF_CORE_READ(ino, i_sb, s_dev) == hak_dev &&
        (BPF_CORE_READ(vma, vm_flags) & 0x4 /* VM_EXEC */)) {
        c->match = 1;
        c->lo = BPF_CORE_READ(vma, vm_start);
        c->hi = BPF_CORE_READ(vma, vm_end);
    }
    return 0;
}

/* The vma that holds addr, whatever its file (addr is known to be libhakmem's). */
static long vma_any_cb(struct task_struct *task, struct vm_area_struct *vma, void *data) {
    struct vma_ctx *c = data;
    c->match = 1;
    c->lo = BPF_CORE_READ(vma, vm_start);
    c->hi = BPF_CORE_READ(vma, vm_end);
    return 0;
}

/* Fallback when the inode given by the loader never matched (a filesystem
 * that maps another inode than stat() reports, e.g. overlayfs): a USDT probe
 * fires at an address inside libhakmem's text, so its vma is the range. */
static __always_inline void learn_range_from_probe(struct pt_regs *regs) {
    if (hak_hi != 0) return;
    struct vma_ctx c = {};
    if (bpf_find_vma(bpf_get_current_task_btf(), PT_REGS_IP(regs), vma_any_cb, &c, 0) == 0 && c.match) {
        hak_lo = c.lo;
        hak_hi = c.hi;
        ADD(hakmem_range_from_usdt, 1);
    }
}

/* Returns HP_CALLER_HAKMEM, HP_CALLER_OTHER or HP_CALLER_UNKNOWN. */
static __always_inline __u32 classify(__u64 addr) {
    if (addr == 0) return HP_CALLER_UNKNOWN;
    __u64 lo = hak_lo, hi = hak_hi;
    if (hi != 0) return addr >= lo && addr < hi ? HP_CALLER_HAKMEM : HP_CALLER_OTHER;
    struct vma_ctx c = {};
    long rc = bpf_find_vma(bpf_get_current_task_btf(), addr, vma_cb, &c, 0);
    if (rc == -EBUSY) return HP_CALLER_UNKNOWN;
    if (c.match) {
        hak_lo = c.lo;
        hak_hi = c.hi;
        return HP_CALLER_HAKMEM;
    }
    return HP_CALLER_OTHER;
}

/* The libc wrapper's return address: the word at the user stack pointer
 * (glibc's mmap/munmap on x86-64 are leaf stubs that do not touch the stack). */
static __always_inline __u64 user_return_address(void) {
    struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
    __u64 sp = PT_REGS_SP_CORE(regs);
    __u64 ra = 0;
    if (bpf_probe_read_user(&ra, sizeof ra, (void *)sp) != 0) return 0;
    return ra;
}

/* ---- hakmem mapping tracker ---- */

struct walk_ctx {
    __u64 k, end;
};

static long walk_cb(__u32 i, void *data) {
    struct walk_ctx *w = data;
    if (w->k >= w->end) return 1;
    __u64 key = w->k;
    __u64 *len = bpf_map_lookup_elem(&hakmaps, &key);
    if (!len) return 1;
    __u64 l = *len;
    bpf_map_delete_elem(&hakmaps, &key);
    if (l == 0) return 1;
    w->k = key + l;
    return 0;
}

/* Forget the tracked mappings that tile [addr, addr+len) from addr on. */
static __always_inline void untrack(__u64 addr, __u64 len) {
    struct walk_ctx w = {.k = addr, .end = addr + len};
    bpf_loop(8192, walk_cb, &w, 0);
}

static __always_inline void track(__u64 addr, __u64 len) {
    len = (len + 4095) & ~4095ULL;
    if (bpf_map_update_elem(&hakmaps, &addr, &len, BPF_ANY) == 0) ADD(hakmem_maps_tracked, 1);
    else ADD(hakmem_maps_overflow, 1);
}

/* ---- munmap ---- */

SEC("tracepoint/syscalls/sys_enter_munmap")
int tp_enter_munmap(struct trace_event_raw_sys_enter *ctx) {
    if (!is_target()) return 0;
    struct tstate *t = tstate_get();
    if (!t) return 0;
    t->a0 = ctx->args[0];
    t->a1 = ctx->args[1];
    t->in_window = t->depth > 0;
    if (!t->in_window) {
        t->ret_addr = user_return_address();
        t->caller = classify(t->ret_addr);
        t->hak_map = bpf_map_lookup_elem(&hakmaps, &t->a0) != NULL;
    }
    t->enter_ns = bpf_ktime_get_ns();
    return 0;
}

SEC("tracepoint/syscalls/sys_exit_munmap")
int tp_exit_munmap(struct trace_event_raw_sys_exit *ctx) {
    if (!is_target()) return 0;
    __u64 now = bpf_ktime_get_ns();
    struct tstate *t = tstate_get();
    if (!t || t->enter_ns == 0) return 0;
    __u64 ns = now - t->enter_ns, addr = t->a0, len = t->a1;
    __s64 ret = ctx->ret;
    bool err = is_err(ret);
    t->enter_ns = 0;

    ADD(munmap_calls, 1);
    ADD(munmap_bytes, len);
    ADD(munmap_ns, ns);
    if (err) ADD(munmap_errors, 1);
    if (t->in_window) {
        ADD(munmap_in_calls, 1);
        ADD(munmap_in_bytes, len);
        ADD(munmap_in_ns, ns);
        t->w_calls++;
        t->w_bytes += len;
        t->w_ns += ns;
        if (err) t->w_errors++;
        hist_add(HP_HIST_MUNMAP_IN, ns);
    } else {
        ADD(munmap_out_calls, 1);
        ADD(munmap_out_bytes, len);
        ADD(munmap_out_ns, ns);
        if (t->caller == HP_CALLER_HAKMEM) {
            ADD(munmap_out_hakmem_code_calls, 1);
            ADD(munmap_out_hakmem_code_bytes, len);
        } else if (t->caller == HP_CALLER_UNKNOWN) {
            ADD(munmap_out_caller_unknown, 1);
        }
        if (t->hak_map) {
            ADD(munmap_out_hakmem_map_calls, 1);
            ADD(munmap_out_hakmem_map_bytes, len);
        }
        hist_add(HP_HIST_MUNMAP_OUT, ns);
        if (trace_outside) {
            struct hp_ev_outside *e = bpf_ringbuf_reserve(&events, sizeof *e, 0);
            if (e) {
                e->type = HP_EV_OUTSIDE;
                e->tid = (__u32)bpf_get_current_pid_tgid();
                e->addr = addr;
                e->len = len;
                e->ns = ns;
                e->caller = t->caller;
                e->hakmem_map = t->hak_map;
                e->ret = (__u64)ret;
                e->ret_addr = t->ret_addr;
                e->ts_ns = now;
                bpf_ringbuf_submit(e, rb_flags());
            } else {
                ADD(ringbuf_drops, 1);
            }
        }
    }
    if (!err) untrack(addr, len);
    return 0;
}

/* ---- mmap ---- */

SEC("tracepoint/syscalls/sys_enter_mmap")
int tp_enter_mmap(struct trace_event_raw_sys_enter *ctx) {
    if (!is_target()) return 0;
    struct tstate *t = tstate_get();
    if (!t) return 0;
    t->a1 = ctx->args[1];
    t->from_hak = classify(user_return_address()) == HP_CALLER_HAKMEM;
    t->enter_ns = bpf_ktime_get_ns();
    return 0;
}

SEC("tracepoint/syscalls/sys_exit_mmap")
int tp_exit_mmap(struct trace_event_raw_sys_exit *ctx) {
    if (!is_target()) return 0;
    struct tstate *t = tstate_get();
    if (!t || t->enter_ns == 0) return 0;
    __s64 ret = ctx->ret;
    t->enter_ns = 0;
    ADD(mmap_calls, 1);
    ADD(mmap_bytes, t->a1);
    if (is_err(ret)) {
        ADD(mmap_errors, 1);
        return 0;
    }
    __u64 addr = (__u64)ret;
    if (t->from_hak) track(addr, t->a1);
    else bpf_map_delete_elem(&hakmaps, &addr);   /* address reused: an old entry is stale */
    return 0;
}

/* ---- madvise ---- */

SEC("tracepoint/syscalls/sys_enter_madvise")
int tp_enter_madvise(struct trace_event_raw_sys_enter *ctx) {
    if (!is_target()) return 0;
    struct tstate *t = tstate_get();
    if (!t) return 0;
    t->a1 = ctx->args[1];
    t->enter_ns = bpf_ktime_get_ns();
    return 0;
}

SEC("tracepoint/syscalls/sys_exit_madvise")
int tp_exit_madvise(struct trace_event_raw_sys_exit *ctx) {
    if (!is_target()) return 0;
    __u64 now = bpf_ktime_get_ns();
    struct tstate *t = tstate_get();
    if (!t || t->enter_ns == 0) return 0;
    __u64 ns = now - t->enter_ns;
    t->enter_ns = 0;
    ADD(madvise_calls, 1);
    ADD(madvise_bytes, t->a1);
    ADD(madvise_ns, ns);
    if (is_err(ctx->ret)) ADD(madvise_errors, 1);
    hist_add(HP_HIST_MADVISE, ns);
    return 0;
}

/* ---- mremap ---- */

SEC("tracepoint/syscalls/sys_enter_mremap")
int tp_enter_mremap(struct trace_event_raw_sys_enter *ctx) {
    if (!is_target()) return 0;
    struct tstate *t = tstate_get();
    if (!t) return 0;
    t->a0 = ctx->args[0];
    t->a1 = ctx->args[1];
    t->a2 = ctx->args[2];
    t->enter_ns = bpf_ktime_get_ns();
    return 0;
}

SEC("tracepoint/syscalls/sys_exit_mremap")
int tp_exit_mremap(struct trace_event_raw_sys_exit *ctx) {
    if (!is_target()) return 0;
    struct tstate *t = tstate_get();
    if (!t || t->enter_ns == 0) return 0;
    __s64 ret = ctx->ret;
    t->enter_ns = 0;
    ADD(mremap_calls, 1);
    ADD(mremap_bytes, t->a2);
    if (is_err(ret)) {
        ADD(mremap_errors, 1);
        return 0;
    }
    /* A tracked hakmem mapping that moved or changed size stays tracked. */
    __u64 old = t->a0, addr = (__u64)ret;
    if (bpf_map_lookup_elem(&hakmaps, &old)) {
        bpf_map_delete_elem(&hakmaps, &old);
        track(addr, t->a2);
    } else if (addr != old) {
        bpf_map_delete_elem(&hakmaps, &addr);
    }
    return 0;
}

/* ---- USDT probes in libhakmem.so ---- */

SEC("usdt")
int BPF_USDT(usdt_flush_begin, __u64 nblocks, __u64 bytes) {
    if (!is_target()) return 0;
    learn_range_from_probe(ctx);
    struct tstate *t = tstate_get();
    if (!t) return 0;
    ADD(flush_begins, 1);
    ADD(flush_blocks, nblocks);
    ADD(flush_bytes, bytes);
    if (t->depth++ == 0) {
        t->flush_id = __sync_fetch_and_add(&flush_seq, 1) + 1;
        t->begin_ns = bpf_ktime_get_ns();
        t->blocks = nblocks;
        t->bytes = bytes;
        t->w_calls = t->w_bytes = t->w_ns = t->w_errors = 0;
    }
    return 0;
}

SEC("usdt")
int BPF_USDT(usdt_flush_end, __u64 ranges, __u64 calls, __u64 ns) {
    if (!is_target()) return 0;
    struct tstate *t = tstate_get();
    if (!t) return 0;
    if (t->depth == 0) {            /* attached in the middle of a flush */
        ADD(flush_unmatched_ends, 1);
        return 0;
    }
    ADD(flush_ends, 1);
    ADD(flush_ranges, ranges);
    ADD(flush_lib_calls, calls);
    ADD(flush_lib_ns, ns);
    if (--t->depth != 0) return 0;
    __u64 now = bpf_ktime_get_ns();
    hist_add(HP_HIST_FLUSH, now - t->begin_ns);
    struct hp_ev_flush *e = bpf_ringbuf_reserve(&events, sizeof *e, 0);
    if (!e) {
        ADD(ringbuf_drops, 1);
        return 0;
    }
    e->type = HP_EV_FLUSH;
    e->tid = (__u32)bpf_get_current_pid_tgid();
    e->id = t->flush_id;
    e->begin_ns = t->begin_ns;
    e->end_ns = now;
    e->blocks = t->blocks;
    e->bytes = t->bytes;
    e->ranges = ranges;
    e->lib_calls = calls;
    e->lib_ns = ns;
    e->k_calls = t->w_calls;
    e->k_bytes = t->w_bytes;
    e->k_ns = t->w_ns;
    e->k_errors = t->w_errors;
    bpf_ringbuf_submit(e, rb_flags());
    return 0;
}

SEC("usdt")
int BPF_USDT(usdt_evict, __u64 cls, __u64 size, __s64 reason) {
    if (!is_target()) return 0;
    if (reason >= 0 && reason < HP_EVICT_REASONS) {
        __u32 r = (__u32)reason;
        __sync_fetch_and_add(&counters.evictions[r], 1);
        __sync_fetch_and_add(&counters.evict_bytes[r], size);
    }
    return 0;
}

SEC("usdt")
int BPF_USDT(usdt_knob_change, __s64 knob, __u64 old_value, __u64 new_value) {
    if (!is_target()) return 0;
    ADD(knob_changes, 1);
    struct hp_ev_knob *e = bpf_ringbuf_reserve(&events, sizeof *e, 0);
    if (!e) {
        ADD(ringbuf_drops, 1);
        return 0;
    }
    e->type = HP_EV_KNOB;
    e->tid = (__u32)bpf_get_current_pid_tgid();
    e->knob = (__u64)knob;
    e->old_value = old_value;
    e->new_value = new_value;
    e->ts_ns = bpf_ktime_get_ns();
    bpf_ringbuf_submit(e, rb_flags());
    return 0;
}

/*
 * hakmem_bpf.h - types shared by the BPF program (hakmem.bpf.c) and its loader
 * (hakmem-probe.c).  Only __u64/__u32: both vmlinux.h and <linux/types.h>
 * define them, so this header includes nothing.
 *
 * Everything is about ONE target process (tgid set in .rodata before load).
 * A "flush window" is the stretch of one thread between the USDT probes
 * hakmem:batch_flush_begin and hakmem:batch_flush_end; Batch issues all of
 * hakmem's block munmaps inside such windows and nothing else does.
 */
#ifndef HAKMEM_BPF_H
#define HAKMEM_BPF_H

/* Latency histograms: key = HP_HIST_* * HP_HIST_SLOTS + log2(ns). */
#define HP_HIST_SLOTS 64u
enum hp_hist {
    HP_HIST_MUNMAP_IN = 0,      /* munmap inside flush windows */
    HP_HIST_MUNMAP_OUT = 1,     /* munmap outside flush windows */
    HP_HIST_MADVISE = 2,        /* every madvise of the target */
    HP_HIST_FLUSH = 3,          /* whole flush windows (begin -> end, kernel clock) */
    HP_NHIST = 4
};

#define HP_EVICT_REASONS 5u     /* enum hak_evict_reason (include/hakmem/shm.h) */

/* Caller classes of a munmap outside a flush window (HP_EV_OUTSIDE.caller). */
enum hp_caller {
    HP_CALLER_OTHER = 0,        /* the program, libc, ld.so... */
    HP_CALLER_HAKMEM = 1,       /* code of libhakmem.so itself */
    HP_CALLER_UNKNOWN = 2,      /* could not tell (vma lookup busy) */
};

/* Counters: one global struct in .bss, read by the loader through the mmap. */
struct hp_counters {
    /* syscalls of the target */
    __u64 mmap_calls, mmap_bytes, mmap_errors;
    __u64 munmap_calls, munmap_bytes, munmap_errors, munmap_ns;
    __u64 madvise_calls, madvise_bytes, madvise_errors, madvise_ns;
    __u64 mremap_calls, mremap_bytes, mremap_errors;          /* bytes = new length */
    /* munmap split by flush window */
    __u64 munmap_in_calls, munmap_in_bytes, munmap_in_ns;
    __u64 munmap_out_calls, munmap_out_bytes, munmap_out_ns;
    /* outside-window munmaps issued by libhakmem code (must be 0: only Batch munmaps) */
    __u64 munmap_out_hakmem_code_calls, munmap_out_hakmem_code_bytes;
    /* outside-window munmaps that start at a hakmem mapping (block or metadata)
     * mapped while the probe was attached, whoever issued them */
    __u64 munmap_out_hakmem_map_calls, munmap_out_hakmem_map_bytes;
    __u64 munmap_out_caller_unknown;
    /* USDT */
    __u64 flush_begins, flush_ends, flush_unmatched_ends;
    __u64 flush_blocks, flush_bytes, flush_ranges, flush_lib_calls, flush_lib_ns;
    __u64 evictions[HP_EVICT_REASONS], evict_bytes[HP_EVICT_REASONS];
    __u64 knob_changes;
    /* bookkeeping */
    __u64 hakmem_maps_tracked;   /* mappings made by libhakmem code, seen by the probe */
    __u64 hakmem_maps_overflow;  /* ... that did not fit in the tracking map */
    __u64 ringbuf_drops;         /* events lost because the ring buffer was full */
    __u64 hakmem_range_from_usdt;/* libhakmem's text found from a USDT probe, not by inode */
};

/* Ring buffer records: each starts with a __u32 type. */
enum hp_ev_type {
    HP_EV_FLUSH = 1,            /* one Batch flush (always) */
    HP_EV_KNOB = 2,             /* hakmem:knob_change */
    HP_EV_OUTSIDE = 3,          /* one munmap outside flush windows (only with trace_outside) */
};

struct hp_ev_flush {
    __u32 type, tid;
    __u64 id;                   /* 1-based flush number as seen by the probe */
    __u64 begin_ns, end_ns;     /* bpf_ktime_get_ns at the two probes */
    /* from the USDT probes (the library's own view) */
    __u64 blocks, bytes;        /* batch_flush_begin(nblocks, bytes) */
    __u64 ranges, lib_calls, lib_ns; /* batch_flush_end(ranges, munmap_calls, ns) */
    /* what the kernel saw inside this window on this thread */
    __u64 k_calls, k_bytes, k_ns, k_errors;
};

struct hp_ev_knob {
    __u32 type, tid;
    __u64 knob, old_value, new_value;   /* enum hakmem_knob (include/hakmem.h) */
    __u64 ts_ns;
};

struct hp_ev_outside {
    __u32 type, tid;
    __u64 addr, len;
    __u64 ns;                   /* kernel time of the munmap */
    __u32 caller;               /* enum hp_caller */
    __u32 hakmem_map;           /* 1 = [addr...) starts a tracked hakmem mapping */
    __u64 ret;                  /* syscall return value (two's complement) */
    __u64 ret_addr;             /* user return address of the libc wrapper */
    __u64 ts_ns;                /* bpf_ktime_get_ns at the syscall exit */
};

#endif /* HAKMEM_BPF_H */

/*
 * hak_libc.h - glibc's own allocator entry points (the small sizes, mode=off), and
 * what sanitizer builds use instead.
 */
#ifndef HAK_LIBC_H
#define HAK_LIBC_H

#include <stddef.h>

#include "hak_base.h"

/* noplt (GCC): called through the GOT (one indirect jump), not a PLT stub. */
#if defined(__GNUC__) && !defined(__clang__)
#define HAK_NOPLT __attribute__((noplt))
#else
#define HAK_NOPLT
#endif
extern void *__libc_malloc(size_t) HAK_NOPLT;
extern void  __libc_free(void *) HAK_NOPLT;
extern void *__libc_calloc(size_t, size_t) HAK_NOPLT;
extern void *__libc_realloc(void *, size_t) HAK_NOPLT;
extern void *__libc_memalign(size_t, size_t) HAK_NOPLT;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HAK_SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HAK_SANITIZER_BUILD 1
#endif
#endif
#ifdef HAK_SANITIZER_BUILD
/* Sanitizer builds (make SAN=...) link the core without the overrides, and
 * the sanitizer intercepts some __libc_* entry points (__libc_memalign) but
 * not others: the small path uses the sanitizer's malloc family throughout so
 * that a block is always freed by the allocator that made it. */
#define hak_libc_malloc   malloc
#define hak_libc_free     free
#define hak_libc_calloc   calloc
#define hak_libc_realloc  realloc
#define hak_libc_memalign memalign
#else
#define hak_libc_malloc   __libc_malloc
#define hak_libc_free     __libc_free
#define hak_libc_calloc   __libc_calloc
#define hak_libc_realloc  __libc_realloc
#define hak_libc_memalign __libc_memalign
#endif
HAK_HIDDEN size_t hak_libc_usable_size(void *p);
HAK_HIDDEN void   hak_libc_resolve(void);
/* glibc's own malloc_trim(pad) (looked up once), or 0 when there is none. */
HAK_HIDDEN int    hak_libc_malloc_trim(size_t pad);

#endif

/* A cache of large blocks of memory for the arrays the products return (NumPy's memory
 * handler interface, NEP 49), so that a loop of products of one size reuses memory whose
 * pages are already mapped instead of asking the kernel for fresh ones every call.
 *
 * Why: glibc hands a request above 32 MiB straight to mmap and gives it back to the
 * kernel on free, so every large output costs a page fault per page and the kernel's
 * zeroing of every byte -- measured 5-7 ms for 42 MB on the Intel Xeon of
 * docs/performance.rst, half the time of the grid's SpGEMM. torch's CUDA allocator
 * caches for the same reason.
 *
 * Every block this handler gives out starts with a 64-byte header (its capacity and
 * whether it is a big block), so the data are 64-byte aligned: a row of 64 bytes is one
 * cache line. Big blocks (SR_POOL_MIN bytes or more) come from sparse_ref_big_alloc
 * (2 MiB aligned, transparent huge pages) and go back to the cache when NumPy frees them;
 * the cache keeps at most SR_POOL_SLOTS blocks and sr_pool_limit bytes, oldest out
 * first. Small blocks are plain malloc/free. A block comes back from the cache only for a
 * request of at least 3/4 of its capacity, so little is wasted.
 *
 * NumPy calls these with the GIL held; the spin lock is for the day it does not.
 */
#ifndef SPARSE_REF_POOL_H
#define SPARSE_REF_POOL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_big_alloc.h"

#define SR_POOL_HEADER 64
#define SR_POOL_SLOTS 16
#define SR_POOL_MIN ((size_t)4 << 20)

typedef struct { size_t capacity; int big; } sr_pool_header;

static struct { char* raw; size_t capacity; } sr_pool_slot[SR_POOL_SLOTS];
static int sr_pool_count = 0;
static size_t sr_pool_bytes = 0;            /* bytes held in the cache */
static size_t sr_pool_limit = 0;            /* at most this many (0: no cache) */
static uint64_t sr_pool_hits = 0, sr_pool_misses = 0;
static volatile char sr_pool_busy = 0;

static void sr_pool_lock(void) { while (__atomic_test_and_set(&sr_pool_busy, __ATOMIC_ACQUIRE)) { } }
static void sr_pool_unlock(void) { __atomic_clear(&sr_pool_busy, __ATOMIC_RELEASE); }

/* Drop the oldest cached blocks until `room` more bytes and one more slot fit. */
static void sr_pool_trim(size_t room) {
    while (sr_pool_count > 0 && (sr_pool_bytes + room > sr_pool_limit || sr_pool_count >= SR_POOL_SLOTS)) {
        free(sr_pool_slot[0].raw);
        sr_pool_bytes -= sr_pool_slot[0].capacity;
        memmove(sr_pool_slot, sr_pool_slot + 1, (size_t)(sr_pool_count - 1) * sizeof(sr_pool_slot[0]));
        sr_pool_count--;
    }
}

static void* sr_pool_malloc(void* ctx, size_t size) {
    sr_pool_header* h;
    char* raw = NULL;
    size_t capacity = 0;
    int i, best = -1;
    (void)ctx;
    if (size > SIZE_MAX - 2 * SR_POOL_HEADER - ((size_t)1 << 21)) return NULL;
    if (size < SR_POOL_MIN) {
        raw = (char*)malloc(size + SR_POOL_HEADER);
        if (raw == NULL) return NULL;
        h = (sr_pool_header*)raw;
        h->capacity = size;
        h->big = 0;
        return raw + SR_POOL_HEADER;
    }
    sr_pool_lock();
    for (i = 0; i < sr_pool_count; i++) {  /* the smallest block that fits, not too big */
        size_t c = sr_pool_slot[i].capacity;
        if (c >= size && c / 4 * 3 <= size && (best < 0 || c < sr_pool_slot[best].capacity)) best = i;
    }
    if (best >= 0) {
        raw = sr_pool_slot[best].raw;
        capacity = sr_pool_slot[best].capacity;
        sr_pool_bytes -= capacity;
        memmove(sr_pool_slot + best, sr_pool_slot + best + 1, (size_t)(sr_pool_count - best - 1) * sizeof(sr_pool_slot[0]));
        sr_pool_count--;
        sr_pool_hits++;
    } else {
        sr_pool_misses++;
    }
    sr_pool_unlock();
    if (raw == NULL) {
        /* whole 2 MiB pages: the capacity is what the allocation really holds */
        capacity = (size + SR_POOL_HEADER + ((size_t)1 << 21) - 1) / ((size_t)1 << 21) * ((size_t)1 << 21) - SR_POOL_HEADER;
        raw = (char*)sparse_ref_big_alloc(capacity + SR_POOL_HEADER);
        if (raw == NULL) return NULL;
    }
    h = (sr_pool_header*)raw;
    h->capacity = capacity;
    h->big = 1;
    return raw + SR_POOL_HEADER;
}

static void sr_pool_free(void* ctx, void* ptr, size_t size) {
    char* raw;
    sr_pool_header* h;
    (void)ctx;
    (void)size;
    if (ptr == NULL) return;
    raw = (char*)ptr - SR_POOL_HEADER;
    h = (sr_pool_header*)raw;
    if (h->big) {
        sr_pool_lock();
        if (h->capacity <= sr_pool_limit) {
            sr_pool_trim(h->capacity);
            sr_pool_slot[sr_pool_count].raw = raw;
            sr_pool_slot[sr_pool_count].capacity = h->capacity;
            sr_pool_count++;
            sr_pool_bytes += h->capacity;
            raw = NULL;
        }
        sr_pool_unlock();
    }
    free(raw);
}

static void* sr_pool_calloc(void* ctx, size_t n, size_t each) {
    void* p;
    if (each != 0 && n > SIZE_MAX / each) return NULL;
    p = sr_pool_malloc(ctx, n * each);
    if (p != NULL) memset(p, 0, n * each);
    return p;
}

static void* sr_pool_realloc(void* ctx, void* ptr, size_t size) {
    sr_pool_header* h;
    void* p;
    if (ptr == NULL) return sr_pool_malloc(ctx, size);
    h = (sr_pool_header*)((char*)ptr - SR_POOL_HEADER);
    if (size <= h->capacity && (size >= SR_POOL_MIN) == (h->big != 0)) return ptr;
    p = sr_pool_malloc(ctx, size);
    if (p == NULL) return NULL;
    memcpy(p, ptr, size < h->capacity ? size : h->capacity);
    sr_pool_free(ctx, ptr, 0);
    return p;
}

/* Set the limit (bytes); returns the previous one. A lower limit frees at once. */
static size_t sr_pool_set_limit(size_t limit) {
    size_t previous;
    sr_pool_lock();
    previous = sr_pool_limit;
    sr_pool_limit = limit;
    sr_pool_trim(0);
    sr_pool_unlock();
    return previous;
}

#endif /* SPARSE_REF_POOL_H */

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
 * Big blocks (a request of SR_POOL_MIN bytes or more) are whole 2 MiB pages mapped for
 * this cache alone (mmap, marked for transparent huge pages; posix_memalign where there
 * is no mmap), so they start on a 2 MiB boundary and go straight back to the system
 * when the cache lets them go. A table of the live big blocks (sorted by address) says a
 * block's size when NumPy frees or resizes it. A freed big block is kept, up to
 * SR_POOL_SLOTS blocks and sr_pool_limit bytes, oldest out first, and comes back for a
 * request that fits in it and whose own pages are 3/4 of its size or more. When the system refuses a new block, the cache is
 * emptied and the request tried once more. Small requests (a resize, or any small array
 * NumPy makes while an op runs with this handler: sparse_ref/_memory.py call_pooled) are
 * malloc'd with a 64-byte header that says so.
 *
 * NumPy calls these with the GIL held; the spin lock is for the day it does not.
 */
#ifndef SPARSE_REF_POOL_H
#define SPARSE_REF_POOL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__) || defined(__APPLE__)
#include <sys/mman.h>
#define SR_POOL_MMAP 1
#endif

#define SR_POOL_HEADER 64
#define SR_POOL_SLOTS 16
#define SR_POOL_MIN ((size_t)4 << 20)
#define SR_POOL_PAGE ((size_t)1 << 21)

typedef struct { char* ptr; size_t capacity; } sr_pool_block;

static sr_pool_block sr_pool_slot[SR_POOL_SLOTS];   /* cached, oldest first */
static int sr_pool_count = 0;
static size_t sr_pool_bytes = 0;                     /* bytes held in the cache */
static size_t sr_pool_limit = 0;                     /* at most this many (0: no cache) */
static uint64_t sr_pool_hits = 0, sr_pool_misses = 0;
static sr_pool_block* sr_pool_live = NULL;           /* big blocks in use, by address */
static size_t sr_pool_n_live = 0, sr_pool_live_room = 0;
static volatile char sr_pool_busy = 0;

static void sr_pool_lock(void) { while (__atomic_test_and_set(&sr_pool_busy, __ATOMIC_ACQUIRE)) { } }
static void sr_pool_unlock(void) { __atomic_clear(&sr_pool_busy, __ATOMIC_RELEASE); }

/* A new big block of `capacity` bytes (a multiple of SR_POOL_PAGE), or NULL. */
static char* sr_pool_map(size_t capacity) {
#ifdef SR_POOL_MMAP
    char *raw, *p;
    size_t head;
    raw = (char*)mmap(NULL, capacity + SR_POOL_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == (char*)MAP_FAILED) return NULL;
    /* keep the 2 MiB-aligned part, give back what is before and after it */
    head = (SR_POOL_PAGE - (uintptr_t)raw % SR_POOL_PAGE) % SR_POOL_PAGE;
    p = raw + head;
    if (head > 0) munmap(raw, head);
    if (SR_POOL_PAGE - head > 0) munmap(p + capacity, SR_POOL_PAGE - head);
#if defined(MADV_HUGEPAGE)
    madvise(p, capacity, MADV_HUGEPAGE);
#endif
    return p;
#else
    void* p = NULL;
    return posix_memalign(&p, SR_POOL_PAGE, capacity) == 0 ? (char*)p : NULL;
#endif
}

static void sr_pool_unmap(char* p, size_t capacity) {
#ifdef SR_POOL_MMAP
    munmap(p, capacity);
#else
    (void)capacity;
    free(p);
#endif
}

/* Where ptr is, or would go, in the table of live blocks (lock held). */
static size_t sr_pool_find(const char* ptr) {
    size_t lo = 0, hi = sr_pool_n_live, mid;
    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        if (sr_pool_live[mid].ptr < ptr) lo = mid + 1; else hi = mid;
    }
    return lo;
}

static int sr_pool_is_live(const char* ptr, size_t* capacity) {
    size_t at;
    int found;
    sr_pool_lock();
    at = sr_pool_find(ptr);
    found = at < sr_pool_n_live && sr_pool_live[at].ptr == ptr;
    if (found && capacity != NULL) *capacity = sr_pool_live[at].capacity;
    sr_pool_unlock();
    return found;
}

enum { SR_EVICT_FOR_ONE_MORE, SR_EVICT_TO_LIMIT, SR_EVICT_ALL };

/* Drop the oldest cached blocks (lock held): until `room` more bytes and one more slot fit
 * under the limit, or until the cache is under the limit, or all of them. Fills `out` with
 * the blocks to unmap once the lock is released; returns how many. */
static int sr_pool_evict(size_t room, int how, sr_pool_block* out) {
    int n = 0;
    while (sr_pool_count > 0 && (how == SR_EVICT_ALL || sr_pool_bytes + room > sr_pool_limit
                                 || (how == SR_EVICT_FOR_ONE_MORE && sr_pool_count >= SR_POOL_SLOTS))) {
        out[n++] = sr_pool_slot[0];
        sr_pool_bytes -= sr_pool_slot[0].capacity;
        memmove(sr_pool_slot, sr_pool_slot + 1, (size_t)(sr_pool_count - 1) * sizeof(sr_pool_block));
        sr_pool_count--;
    }
    return n;
}

static void sr_pool_unmap_all(sr_pool_block* list, int n) {
    int i;
    for (i = 0; i < n; i++) sr_pool_unmap(list[i].ptr, list[i].capacity);
}

/* Hand every cached block back to the system; the limit stays. */
static void sr_pool_clear(void) {
    sr_pool_block gone[SR_POOL_SLOTS];
    int n;
    sr_pool_lock();
    n = sr_pool_evict(0, SR_EVICT_ALL, gone);
    sr_pool_unlock();
    sr_pool_unmap_all(gone, n);
}

static void* sr_pool_malloc(void* ctx, size_t size) {
    char* p = NULL;
    size_t capacity = 0, at;
    int i, best = -1, tries;
    (void)ctx;
    if (size > SIZE_MAX / 2) return NULL;
    if (size < SR_POOL_MIN) {  /* the header holds the size */
        char* raw = (char*)malloc(size + SR_POOL_HEADER);
        if (raw == NULL) return NULL;
        *(size_t*)raw = size;
        return raw + SR_POOL_HEADER;
    }
    capacity = (size + SR_POOL_PAGE - 1) / SR_POOL_PAGE * SR_POOL_PAGE;
    for (tries = 0; tries < 2 && p == NULL; tries++) {
        sr_pool_lock();
        for (i = 0; i < sr_pool_count; i++) {  /* the smallest cached block that fits, not too big */
            size_t c = sr_pool_slot[i].capacity;
            /* "not too big": at most 4/3 of the pages the request needs (against the request
             * itself, no block would serve one just over a page boundary, as 4.2 MiB in 6) */
            if (c >= size && c / 4 * 3 <= capacity && (best < 0 || c < sr_pool_slot[best].capacity)) best = i;
        }
        if (best >= 0) {
            p = sr_pool_slot[best].ptr;
            capacity = sr_pool_slot[best].capacity;
            sr_pool_bytes -= capacity;
            memmove(sr_pool_slot + best, sr_pool_slot + best + 1, (size_t)(sr_pool_count - best - 1) * sizeof(sr_pool_block));
            sr_pool_count--;
            sr_pool_hits++;
        } else if (tries == 0) {
            sr_pool_misses++;
        }
        sr_pool_unlock();
        if (p == NULL) {
            p = sr_pool_map(capacity);
            if (p == NULL) sr_pool_clear();  /* the system said no: give it the cache, try again */
        }
    }
    if (p == NULL) return NULL;
    sr_pool_lock();
    if (sr_pool_n_live == sr_pool_live_room) {  /* room in the table, under the same lock */
        size_t room = sr_pool_live_room ? 2 * sr_pool_live_room : 64;
        sr_pool_block* grown = (sr_pool_block*)realloc(sr_pool_live, room * sizeof(sr_pool_block));
        if (grown == NULL) {
            sr_pool_unlock();
            sr_pool_unmap(p, capacity);
            return NULL;
        }
        sr_pool_live = grown;
        sr_pool_live_room = room;
    }
    at = sr_pool_find(p);
    memmove(sr_pool_live + at + 1, sr_pool_live + at, (sr_pool_n_live - at) * sizeof(sr_pool_block));
    sr_pool_live[at].ptr = p;
    sr_pool_live[at].capacity = capacity;
    sr_pool_n_live++;
    sr_pool_unlock();
    return p;
}

static void sr_pool_free(void* ctx, void* ptr, size_t size) {
    sr_pool_block gone[SR_POOL_SLOTS];
    size_t at, capacity;
    int n = 0, keep = 0;
    (void)ctx;
    (void)size;
    if (ptr == NULL) return;
    sr_pool_lock();
    at = sr_pool_find((char*)ptr);
    if (at < sr_pool_n_live && sr_pool_live[at].ptr == (char*)ptr) {
        capacity = sr_pool_live[at].capacity;
        memmove(sr_pool_live + at, sr_pool_live + at + 1, (sr_pool_n_live - at - 1) * sizeof(sr_pool_block));
        sr_pool_n_live--;
        if (capacity <= sr_pool_limit) {
            n = sr_pool_evict(capacity, SR_EVICT_FOR_ONE_MORE, gone);
            sr_pool_slot[sr_pool_count].ptr = (char*)ptr;
            sr_pool_slot[sr_pool_count].capacity = capacity;
            sr_pool_count++;
            sr_pool_bytes += capacity;
            keep = 1;
        }
        sr_pool_unlock();
        sr_pool_unmap_all(gone, n);
        if (!keep) sr_pool_unmap((char*)ptr, capacity);
        return;
    }
    sr_pool_unlock();
    free((char*)ptr - SR_POOL_HEADER);  /* a small block */
}

static void* sr_pool_calloc(void* ctx, size_t n, size_t each) {
    void* p;
    if (each != 0 && n > SIZE_MAX / each) return NULL;
    p = sr_pool_malloc(ctx, n * each);
    if (p != NULL) memset(p, 0, n * each);
    return p;
}

static void* sr_pool_realloc(void* ctx, void* ptr, size_t size) {
    size_t capacity;
    void* p;
    if (ptr == NULL) return sr_pool_malloc(ctx, size);
    if (sr_pool_is_live((char*)ptr, &capacity)) {
        if (size <= capacity && size >= SR_POOL_MIN && capacity / 4 * 3 <= size) return ptr;  /* as a cache hit */
        p = sr_pool_malloc(ctx, size);
        if (p == NULL) return NULL;
        memcpy(p, ptr, size < capacity ? size : capacity);
        sr_pool_free(ctx, ptr, 0);
        return p;
    }
    capacity = *(size_t*)((char*)ptr - SR_POOL_HEADER);  /* a small block: its header */
    if (size < SR_POOL_MIN) {  /* small stays small: libc's realloc, header and all */
        char* raw = (char*)realloc((char*)ptr - SR_POOL_HEADER, size + SR_POOL_HEADER);
        if (raw == NULL) return NULL;
        *(size_t*)raw = size;
        return raw + SR_POOL_HEADER;
    }
    p = sr_pool_malloc(ctx, size);  /* small to big */
    if (p == NULL) return NULL;
    memcpy(p, ptr, capacity);
    free((char*)ptr - SR_POOL_HEADER);
    return p;
}

/* Set the limit (bytes); returns the previous one. A lower limit frees at once. */
static size_t sr_pool_set_limit(size_t limit) {
    sr_pool_block gone[SR_POOL_SLOTS];
    size_t previous;
    int n;
    sr_pool_lock();
    previous = sr_pool_limit;
    sr_pool_limit = limit;
    n = sr_pool_evict(0, SR_EVICT_TO_LIMIT, gone);
    sr_pool_unlock();
    sr_pool_unmap_all(gone, n);
    return previous;
}

#endif /* SPARSE_REF_POOL_H */

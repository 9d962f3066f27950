# The one sort of the kernels (cdef inline, so each kernel compiles its own copy): SpGEMM
# sorts a row's columns with it, and coalesce its packed (column digit, rank) keys.
#
# Keys are unique unsigned 64-bit integers, so any correct sort gives the same result:
# there are no ties to order. Sorting integers lets the compiler use conditional moves
# instead of branches, which matters for random keys.
from libc.stdint cimport uint64_t

from sparse_ref._kernels._types cimport idx_t


cdef inline void compare_exchange(uint64_t* k, idx_t i, idx_t j) noexcept nogil:
    cdef uint64_t x = k[i], y = k[j]
    k[i] = x if x < y else y
    k[j] = y if x < y else x


cdef inline void merge_keys(const uint64_t* left, idx_t n_left, const uint64_t* right,
                            idx_t n_right, uint64_t* out) noexcept nogil:
    cdef idx_t a = 0, b = 0, c = 0
    cdef uint64_t x, y
    cdef idx_t take_right
    while a < n_left and b < n_right:
        x = left[a]
        y = right[b]
        take_right = y < x
        out[c] = y if take_right else x
        b += take_right
        a += 1 - take_right
        c += 1
    while a < n_left:
        out[c] = left[a]
        a += 1
        c += 1
    while b < n_right:
        out[c] = right[b]
        b += 1
        c += 1


cdef inline void sort8(uint64_t* k) noexcept nogil:
    # An optimal 19-comparator sorting network for 8 keys (checked by the 0-1 principle).
    compare_exchange(k, 0, 2); compare_exchange(k, 1, 3); compare_exchange(k, 4, 6); compare_exchange(k, 5, 7)
    compare_exchange(k, 0, 4); compare_exchange(k, 1, 5); compare_exchange(k, 2, 6); compare_exchange(k, 3, 7)
    compare_exchange(k, 0, 1); compare_exchange(k, 2, 3); compare_exchange(k, 4, 5); compare_exchange(k, 6, 7)
    compare_exchange(k, 2, 4); compare_exchange(k, 3, 5)
    compare_exchange(k, 1, 4); compare_exchange(k, 3, 6)
    compare_exchange(k, 1, 2); compare_exchange(k, 3, 4); compare_exchange(k, 5, 6)


cdef inline void insertion_sort_keys(uint64_t* k, idx_t n) noexcept nogil:
    # The largest key so far stays in a register: a key that is already in place (most of
    # them, when the keys arrive nearly sorted) is compared with it and stored nowhere, so
    # the next comparison does not wait for a key just stored to come back from memory.
    cdef idx_t i, j
    cdef uint64_t x, last
    if n < 2:
        return
    last = k[0]
    for i in range(1, n):
        x = k[i]
        if x > last:
            last = x
            continue
        k[i] = last
        j = i - 1
        while j > 0 and k[j - 1] > x:
            k[j] = k[j - 1]
            j -= 1
        k[j] = x


cdef inline uint64_t* sort_keys(uint64_t* k, uint64_t* tmp, idx_t n) noexcept nogil:
    """Sort unique keys: 8-key sorting networks, then bottom-up branch-free merges; up to
    16 keys, insertion sort (few moves when the keys arrive nearly sorted, as in banded
    matrices). Returns the buffer (k or tmp) that holds the result."""
    cdef idx_t s = 0, lo, mid, hi, width
    cdef uint64_t* src = k
    cdef uint64_t* dst = tmp
    cdef uint64_t* swap
    if n <= 16:
        insertion_sort_keys(k, n)
        return k
    while s + 8 <= n:
        sort8(k + s)
        s += 8
    insertion_sort_keys(k + s, n - s)
    width = 8
    while width < n:
        lo = 0
        while lo < n:
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            merge_keys(src + lo, mid - lo, src + mid, hi - mid, dst + lo)
            lo += 2 * width
        swap = src
        src = dst
        dst = swap
        width *= 2
    return src


cdef inline uint64_t* merge_runs(uint64_t* k, uint64_t* tmp, idx_t* starts, idx_t n_runs) noexcept nogil:
    """Sort unique keys that arrive as ``n_runs`` ascending runs (run r is
    ``k[starts[r]:starts[r + 1]]``; ``starts`` has n_runs + 1 entries) by merging
    neighbouring runs pairwise, bottom-up, with the branch-free merge: a SpGEMM row is the
    new columns of each row of B in turn, each run already sorted, so no sorting network
    is needed. Returns the buffer (k or tmp) that holds the result; ``starts`` is used up."""
    cdef uint64_t* src = k
    cdef uint64_t* dst = tmp
    cdef uint64_t* swap
    cdef idx_t r, out_runs, lo, mid, hi, q
    while n_runs > 1:
        out_runs = 0
        r = 0
        while r + 1 < n_runs:  # runs r and r + 1 become run out_runs (written at an index <= r)
            lo = starts[r]
            mid = starts[r + 1]
            hi = starts[r + 2]
            merge_keys(src + lo, mid - lo, src + mid, hi - mid, dst + lo)
            starts[out_runs] = lo
            out_runs += 1
            r += 2
        if r < n_runs:  # the odd run out, copied as it is
            lo = starts[r]
            hi = starts[r + 1]
            for q in range(lo, hi):
                dst[q] = src[q]
            starts[out_runs] = lo
            out_runs += 1
        starts[out_runs] = starts[n_runs]
        n_runs = out_runs
        swap = src
        src = dst
        dst = swap
    return src

"""Coalescing a COO matrix: sort row-major, sum duplicates in storage order.

Typed twin of ``sparse_ref/reference/coalesce.py``: same functions, same arguments, same
contracts, and bit for bit the same results.
"""

from cython.parallel cimport parallel, prange
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from sparse_ref._kernels._openmp cimport omp_get_thread_num
from sparse_ref._kernels._types cimport idx_t, value_t

# Runs of this length are sorted by insertion sort before merging.
cdef enum:
    RUN = 16


cdef struct entry_t:
    idx_t col   # the sort key
    idx_t pos   # storage position: ascending among equal columns, which keeps the sort stable


cdef inline void insertion_sort(entry_t* a, idx_t n) noexcept nogil:
    cdef idx_t i, j
    cdef entry_t x
    for i in range(1, n):
        x = a[i]
        j = i
        while j > 0 and a[j - 1].col > x.col:   # strict: equal columns keep their order
            a[j] = a[j - 1]
            j -= 1
        a[j] = x


cdef inline void merge(const entry_t* left, idx_t n_left, const entry_t* right,
                       idx_t n_right, entry_t* out) noexcept nogil:
    cdef idx_t a = 0, b = 0, c = 0
    while a < n_left and b < n_right:
        if right[b].col < left[a].col:   # ties take the left run first: stable
            out[c] = right[b]
            b += 1
        else:
            out[c] = left[a]
            a += 1
        c += 1
    while a < n_left:
        out[c] = left[a]
        a += 1
        c += 1
    while b < n_right:
        out[c] = right[b]
        b += 1
        c += 1


cdef inline entry_t* stable_sort(entry_t* a, entry_t* tmp, idx_t n) noexcept nogil:
    """Bottom-up merge sort by column; returns whichever of a / tmp holds the result."""
    cdef idx_t s, lo, mid, hi, width
    cdef entry_t* src = a
    cdef entry_t* dst = tmp
    cdef entry_t* swap
    s = 0
    while s < n:
        insertion_sort(a + s, min(<idx_t>RUN, n - s))
        s += RUN
    width = RUN
    while width < n:
        lo = 0
        while lo < n:
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            merge(src + lo, mid - lo, src + mid, hi - mid, dst + lo)
            lo += 2 * width
        swap = src
        src = dst
        dst = swap
        width *= 2
    return src


cdef inline idx_t sort_row(const idx_t* a_col, idx_t* perm, idx_t start, idx_t end,
                           entry_t* buf, entry_t* tmp) noexcept nogil:
    """Sort perm[start:end] by column (stably) and return the number of distinct columns."""
    cdef idx_t n = end - start, q, distinct
    cdef bint is_sorted = True
    cdef entry_t* sorted_entries
    if n == 0:
        return 0
    for q in range(n):
        buf[q].pos = perm[start + q]
        buf[q].col = a_col[buf[q].pos]
        if q > 0 and buf[q].col < buf[q - 1].col:
            is_sorted = False
    if is_sorted:
        sorted_entries = buf
    else:
        sorted_entries = stable_sort(buf, tmp, n)
    distinct = 1
    perm[start] = sorted_entries[0].pos
    for q in range(1, n):
        perm[start + q] = sorted_entries[q].pos
        if sorted_entries[q].col != sorted_entries[q - 1].col:
            distinct += 1
    return distinct


def coalesce_symbolic(const idx_t[::1] a_row, const idx_t[::1] a_col, idx_t nrows,
                      idx_t[::1] out_perm, idx_t[::1] out_seg, idx_t[::1] out_crow,
                      int n_threads=1):
    """Find the row-major order of a COO matrix and the size of its coalesced form.

    Inputs
    ------
    a_row, a_col : int64[nnz]
        Row and column of each stored entry, in storage order, any order, duplicates allowed.
    nrows : int
        Number of rows; every ``a_row[p]`` is in ``[0, nrows)``.

    Outputs
    -------
    out_perm : int64[nnz]
        Storage positions in row-major order; duplicates stay in storage order (stable).
    out_seg : int64[nrows + 1]
        Row i's entries are ``out_perm[out_seg[i]:out_seg[i + 1]]`` (duplicates included).
    out_crow : int64[nrows + 1]
        Row pointers of the coalesced matrix: row i keeps ``out_crow[i + 1] - out_crow[i]``
        distinct columns, and ``out_crow[nrows]`` is its nnz.

    Preconditions
    -------------
    Indices in range (the tensor layer checks this). Columns may be any int64.

    Complexity
    ----------
    O(nnz + nrows) for the counting sort by row, plus O(L log L) to sort each row of L
    entries by column. Extra memory O(nrows) plus, in the kernel, two buffers of the
    longest row per thread.

    Parallelism
    -----------
    The counting sort is serial (it is bound by memory); the per-row sorts run in a
    ``prange`` over rows, each thread with its own buffers. Every row is sorted by a
    stable sort, so the result does not depend on the thread count.

    Reference
    ---------
    Counting sort: Knuth, TAOCP vol. 3, 5.2; SciPy's ``coo_tocsr`` uses the same
    count / prefix sum / fill pattern.
    """
    cdef idx_t nnz = a_row.shape[0]
    cdef idx_t i, p, longest = 0
    cdef idx_t* next_slot
    cdef entry_t* buffers
    cdef entry_t* mine = NULL
    cdef int n_workers = max(n_threads, 1)
    cdef const idx_t* col_ptr = &a_col[0] if nnz > 0 else NULL
    cdef idx_t* perm_ptr = &out_perm[0] if nnz > 0 else NULL

    # 1. Counting sort by row, stable.
    next_slot = <idx_t*> malloc(max(nrows, 1) * sizeof(idx_t))
    if next_slot == NULL:
        raise MemoryError("coalesce_symbolic: no memory for the row counts")
    with nogil:
        for i in range(nrows + 1):
            out_seg[i] = 0
        for p in range(nnz):
            out_seg[a_row[p] + 1] += 1
        for i in range(nrows):
            out_seg[i + 1] += out_seg[i]
            longest = max(longest, out_seg[i + 1] - out_seg[i])
        if nrows > 0:
            memcpy(next_slot, &out_seg[0], nrows * sizeof(idx_t))
        for p in range(nnz):
            i = a_row[p]
            out_perm[next_slot[i]] = p
            next_slot[i] += 1
    free(next_slot)

    # 2. Sort each row by column; two buffers of the longest row per thread.
    buffers = <entry_t*> malloc(max(2 * longest * n_workers, 1) * sizeof(entry_t))
    if buffers == NULL:
        raise MemoryError("coalesce_symbolic: no memory for the row-sort buffers")
    with nogil, parallel(num_threads=n_workers):
        mine = buffers + 2 * longest * omp_get_thread_num()
        for i in prange(nrows, schedule="guided"):
            out_crow[i + 1] = sort_row(col_ptr, perm_ptr, out_seg[i], out_seg[i + 1],
                                       mine, mine + longest)
    free(buffers)
    out_crow[0] = 0
    for i in range(nrows):
        out_crow[i + 1] += out_crow[i]


cdef inline void write_row(const idx_t* a_col, const value_t* a_val, const idx_t* perm,
                           idx_t start, idx_t end, idx_t first_out,
                           idx_t* out_col, value_t* out_val, idx_t* out_pos) noexcept nogil:
    cdef idx_t q, p, q_out = first_out - 1
    for q in range(start, end):
        p = perm[q]
        if q == start or a_col[p] != out_col[q_out]:
            q_out += 1
            out_col[q_out] = a_col[p]
            out_val[q_out] = a_val[p]
        else:
            out_val[q_out] = out_val[q_out] + a_val[p]
        out_pos[p] = q_out


def coalesce_numeric(const idx_t[::1] a_col, const value_t[::1] a_val, const idx_t[::1] perm,
                     const idx_t[::1] seg, const idx_t[::1] crow, idx_t[::1] out_col,
                     value_t[::1] out_val, idx_t[::1] out_pos, int n_threads=1):
    """Write the coalesced matrix: one entry per distinct (row, column), duplicates summed.

    Inputs
    ------
    a_col : int64[nnz]
        Column of each stored entry, in storage order.
    a_val : value[nnz]
        Value of each stored entry, in storage order.
    perm, seg, crow : int64[nnz], int64[nrows + 1], int64[nrows + 1]
        The outputs of ``coalesce_symbolic``.

    Outputs
    -------
    out_col : int64[crow[nrows]]
        Columns of the coalesced matrix, ascending within each row.
    out_val : value[crow[nrows]]
        ``out_val[q] = ((a_val[p0] + a_val[p1]) + a_val[p2]) + ...`` over the duplicates
        p0 < p1 < p2 < ... of that (row, column), summed in storage order and starting
        from the first value itself (not from 0, which would turn -0.0 into 0.0).
        Explicit zeros and exact cancellations are kept as stored zeros.
    out_pos : int64[nnz]
        ``out_pos[p]`` is the position in the coalesced matrix of stored entry p; the
        backward of coalesce gathers the gradient with it.

    Preconditions
    -------------
    ``perm``, ``seg`` and ``crow`` come from ``coalesce_symbolic`` on the same matrix.

    Complexity
    ----------
    O(nnz + nrows) time, no extra memory.

    Parallelism
    -----------
    A ``prange`` over rows: each row writes only its own slice of the outputs.
    """
    cdef idx_t nrows = seg.shape[0] - 1
    cdef idx_t i
    if perm.shape[0] == 0:
        return
    with nogil:
        for i in prange(nrows, schedule="guided", num_threads=max(n_threads, 1)):
            write_row(&a_col[0], &a_val[0], &perm[0], seg[i], seg[i + 1], crow[i],
                      &out_col[0], &out_val[0], &out_pos[0])

"""Coalescing a COO matrix: sort row-major, sum duplicates in storage order.

Typed twin of ``sparse_ref/reference/coalesce.py``: same function, same arguments, same
contract, same helpers (``count_chunk``, ``scatter_chunk``, ``sort_row``, ``write_row``),
and bit for bit the same results. Both move each entry's column with what step 3 needs
of it, so that step 2 sorts contiguous memory and step 3 reads the columns in order:
here 16-byte entries, (column, position), or (column, value) when no ``out_pos`` is asked
for and a value fits in 8 bytes -- step 3 then reads the values in order too, instead of
gathering them from storage at random.
"""

from cython.parallel cimport parallel, prange
from libc.stdint cimport uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy

from sparse_ref._kernels._openmp cimport omp_get_thread_num
from sparse_ref._kernels._sort cimport sort_keys
from sparse_ref._kernels._types cimport big_alloc, dynamic_chunk, idx_t, prefetch, prefetch_w, thread_stride, value_t

include "_simd.pxi"

__all__ = ["coalesce"]

cdef struct entry_t:
    idx_t col   # the sort key
    idx_t pos   # storage position, or (carried) the value's bits: see scatter_chunk


# Sorting a row: sort packed 8-byte keys ``digit << rank_bits | rank`` with the one merge
# sort of _sort.pxd, where the digit is the column's offset ``col - lowest col of the
# row`` and the rank the entry's place in the row (storage order, since the counting sort
# is stable). The rank breaks ties, so keys are unique and the sort is stable by
# construction. rank_bits is 32 (more only for rows over 2**32 entries), which leaves
# 32 bits for the digit: the whole offset when the row's columns span less than 2**32.
# Wider rows sort by the offset's top bits first, then sort again each run of entries
# that tie there (few, and short) by their full columns.

# Rows of more than rank_min and at most rank_max entries are put in order by rank, at the
# AVX2 and AVX-512 levels (sr_key_ranks in _simd.h: each key's place is the number of keys
# below it, vector comparisons and no branch on the data), as SpGEMM's rows (spgemm.pyx);
# the others, and every row at SSE2, are sorted. The keys are distinct, so the order is
# the sort's. Measured (bench_levers.py "coalesce ranks"): see docs/algorithms/coalesce.rst.
include "_ranks.pxi"


cdef inline void sort_pass(entry_t* row_entries, idx_t n, uint64_t lowest, int shift,
                           int rank_bits, entry_t* scratch) noexcept nogil:
    """Stable sort of one row's entries by the digit ``(col - lowest) >> shift``.

    ``scratch`` holds 2 * n entries: 2n keys (the keys and the merge buffer), then the
    positions (and, when shift > 0, the columns) in their order before the sort."""
    cdef idx_t q, rank
    cdef uint64_t* keys = <uint64_t*> scratch
    cdef uint64_t* sorted_keys
    cdef idx_t* positions = <idx_t*> (scratch + n)
    cdef idx_t* columns = positions + n
    cdef uint64_t rank_mask = ((<uint64_t>1) << rank_bits) - 1
    cdef idx_t* ranks = <idx_t*> (keys + n)  # in the merge buffer, which ranks leave unused
    for q in range(n):
        keys[q] = (((<uint64_t>row_entries[q].col - lowest) >> shift) << rank_bits) | <uint64_t>q
        positions[q] = row_entries[q].pos
    if rank_min < n <= rank_max and key_ranks(keys, n, ranks):
        if shift > 0:
            for q in range(n):
                columns[q] = row_entries[q].col
        for q in range(n):  # entry q goes to its rank's place
            rank = ranks[q]
            row_entries[rank].col = (<idx_t>(lowest + (keys[q] >> rank_bits)) if shift == 0
                                     else columns[q])
            row_entries[rank].pos = positions[q]
        return
    if shift == 0:  # the key holds the whole offset: the column comes back from it
        sorted_keys = sort_keys(keys, keys + n, n)
        for q in range(n):
            row_entries[q].col = <idx_t>(lowest + (sorted_keys[q] >> rank_bits))
            row_entries[q].pos = positions[<idx_t>(sorted_keys[q] & rank_mask)]
    else:
        for q in range(n):
            columns[q] = row_entries[q].col
        sorted_keys = sort_keys(keys, keys + n, n)
        for q in range(n):
            rank = <idx_t>(sorted_keys[q] & rank_mask)
            row_entries[q].col = columns[rank]
            row_entries[q].pos = positions[rank]


cdef inline idx_t sort_row(entry_t* row_entries, idx_t n, entry_t* scratch) noexcept nogil:
    """Sort one row's entries by column, stably, in place; return its distinct columns.

    ``scratch`` holds 2 * n entries."""
    cdef idx_t q, start, distinct
    cdef idx_t lowest, highest
    cdef bint in_order = True
    cdef int rank_bits = 32, shift = 0
    cdef uint64_t span
    if n <= 1:
        return n
    lowest = row_entries[0].col
    highest = lowest
    for q in range(1, n):
        in_order = in_order & (row_entries[q].col >= row_entries[q - 1].col)
        lowest = min(lowest, row_entries[q].col)
        highest = max(highest, row_entries[q].col)
    if not in_order:
        while (<uint64_t>(n - 1)) >> rank_bits:
            rank_bits += 1
        span = <uint64_t>highest - <uint64_t>lowest
        while shift < 64 and (span >> shift) >> (64 - rank_bits):
            shift += 1   # the offset's bits that do not fit beside the rank
        sort_pass(row_entries, n, <uint64_t>lowest, shift, rank_bits, scratch)
        if shift > 0:    # runs that tie on the top bits: sort each by its full columns
            start = 0
            for q in range(1, n + 1):
                if q == n or ((<uint64_t>row_entries[q].col - <uint64_t>lowest) >> shift
                              != (<uint64_t>row_entries[start].col - <uint64_t>lowest) >> shift):
                    if q - start > 1:
                        sort_row(row_entries + start, q - start, scratch)
                    start = q
    distinct = 1
    for q in range(1, n):
        distinct += row_entries[q].col != row_entries[q - 1].col
    return distinct


# Entries per chunk below which the count and scatter passes are not split across
# threads. A variable, not a constant, so that tests can lower it (_set_min_chunk) and
# reach the several-chunk path with a few entries.
cdef idx_t MIN_CHUNK = 65536


def _set_min_chunk(idx_t min_chunk):
    """Test hook (not part of the kernel interface): set the entries per chunk below which
    the counting sort runs as one chunk; returns the previous value."""
    global MIN_CHUNK
    previous = MIN_CHUNK
    MIN_CHUNK = max(min_chunk, 1)
    return previous


cdef idx_t chunk_count(idx_t nnz, idx_t nrows, int n_workers) noexcept nogil:
    """One contiguous chunk of at least MIN_CHUNK entries per thread; splitting costs
    n_chunks * nrows counts, so only when rows are few."""
    cdef idx_t n_chunks = max(1, min(<idx_t>n_workers, nnz // MIN_CHUNK))
    if n_chunks * nrows > 4 * nnz + 1024:
        return 1
    return n_chunks


def _chunk_count(idx_t nnz, idx_t nrows, int n_threads):
    """Test hook: how many chunks the counting sort of ``coalesce`` uses."""
    return chunk_count(nnz, nrows, max(n_threads, 1))


# Rows up to this long are sorted in parallel, each thread with a buffer of this size;
# longer rows are sorted one after another with one shared buffer, so scratch memory
# does not grow with threads x the longest row.
cdef enum:
    SHORT_ROW = 4096

# How many entries ahead the random gathers and scatters prefetch.
cdef enum:
    AHEAD = 16


cdef inline void count_chunk(const idx_t* a_row, idx_t lo, idx_t hi, idx_t* counts) noexcept nogil:
    cdef idx_t p
    for p in range(lo, hi):
        counts[a_row[p]] += 1


cdef inline void scatter_chunk(const idx_t* a_row, const idx_t* a_col, const value_t* a_val,
                               bint carry, idx_t lo, idx_t hi, idx_t* next_slot,
                               entry_t* entries) noexcept nogil:
    """Drop the entries ``lo:hi``, in storage order, into the next free slot of their row:
    the column, and the storage position -- or, when ``carry``, the value's own bits."""
    cdef idx_t p, slot
    for p in range(lo, hi):
        if p + AHEAD < hi:
            prefetch_w(entries + next_slot[a_row[p + AHEAD]])
        slot = next_slot[a_row[p]]
        entries[slot].col = a_col[p]
        if carry:
            memcpy(&entries[slot].pos, a_val + p, sizeof(value_t))
        else:
            entries[slot].pos = p
        next_slot[a_row[p]] = slot + 1


cdef inline void write_row(const entry_t* row_entries, idx_t n, const value_t* a_val,
                           bint carry, idx_t first_out, idx_t* out_col, value_t* out_val,
                           idx_t* out_pos) noexcept nogil:
    cdef idx_t q, q_out = first_out - 1
    cdef value_t value
    for q in range(n):
        if carry:  # the value came with the entry
            memcpy(&value, &row_entries[q].pos, sizeof(value_t))
        else:
            if q + AHEAD < n:
                prefetch(a_val + row_entries[q + AHEAD].pos)
            value = a_val[row_entries[q].pos]
        if q == 0 or row_entries[q].col != out_col[q_out]:
            q_out += 1
            out_col[q_out] = row_entries[q].col
            out_val[q_out] = value
        else:
            out_val[q_out] = out_val[q_out] + value
        if out_pos != NULL:
            out_pos[row_entries[q].pos] = q_out


def coalesce(const idx_t[::1] a_row, const idx_t[::1] a_col, const value_t[::1] a_val,
             idx_t nrows, idx_t[::1] out_crow, idx_t[::1] out_col, value_t[::1] out_val,
             idx_t[::1] out_pos, int n_threads=1):
    """Sort a COO matrix row-major and sum its duplicates in storage order.

    Simple version
    --------------
    The same result (``out_pos`` aside), without the sort's details; outputs start as
    zeros::

        sums = {}                                      # (i, j) -> its values, summed
        for p in range(len(a_row)):                    # in storage order
            sums[a_row[p], a_col[p]] = sums.get((a_row[p], a_col[p]), 0) + a_val[p]
        for q, (i, j) in enumerate(sorted(sums)):      # row-major
            out_col[q], out_val[q] = j, sums[i, j]
            out_crow[i + 1:] = q + 1                   # rows <= i end before q + 1

    Inputs
    ------
    a_row, a_col : int64[nnz]
        Row and column of each stored entry, in storage order: any order, duplicates allowed.
    a_val : value[nnz]
        Value of each stored entry.
    nrows : int
        Number of rows; every ``a_row[p]`` is in ``[0, nrows)``.

    Outputs
    -------
    out_crow : int64[nrows + 1]
        Row pointers of the result: row i holds ``out_crow[i]:out_crow[i + 1]``, and
        ``nnz_out = out_crow[nrows]``.
    out_col : int64[>= nnz_out]
        Columns of the result, strictly ascending within each row (first nnz_out used).
    out_val : value[>= nnz_out]
        ``out_val[q] = ((a_val[p0] + a_val[p1]) + a_val[p2]) + ...`` over the duplicates
        p0 < p1 < p2 < ... of that (row, column): storage order, starting from the first
        value itself (not from 0, which would turn -0.0 into 0.0). Explicit zeros and
        exact cancellations stay as stored zeros.
    out_pos : int64[nnz] or int64[0]
        If it has length nnz: ``out_pos[p]`` is the position in the result of stored
        entry p (the backward of coalesce gathers with it). Length 0 skips it.

    Preconditions
    -------------
    Indices in range (the tensor layer checks); columns may be any int64. The caller
    allocates ``out_col`` and ``out_val`` with nnz entries (an upper bound on nnz_out)
    and keeps the first ``out_crow[nrows]``.

    Complexity
    ----------
    O(nnz + nrows) for the counting sort, plus O(L log L) to sort each row of L entries
    by column (a row put in order by rank instead, 17-128 entries with AVX2 or AVX-512,
    costs O(L squared / vector lanes)). Extra memory in the kernel: O(nnz + threads * nrows) for the sort and the
    per-chunk counts, plus 2 * min(longest row, 4096) entries per thread and twice the
    longest row once.

    Parallelism
    -----------
    The kernel splits the entries into one contiguous chunk per thread: each chunk
    counts its rows, a serial pass turns the counts into per-chunk offsets (chunk c
    writes after chunks < c within every row, so the sort stays stable), and each chunk
    scatters its entries. Rows are then sorted and written in ``prange`` loops over rows,
    each thread with its own buffer (rows longer than 4096 entries are sorted one at a
    time afterwards, with one shared buffer). No step depends on the thread count's
    scheduling, so the result is the same bit for bit for any number of threads.

    Reference
    ---------
    Counting sort: Knuth, TAOCP vol. 3, 5.2. SciPy's ``coo_tocsr`` and
    ``csr_sum_duplicates`` (sparsetools) use the same count / prefix sum / fill pattern.
    """
    cdef idx_t nnz = a_row.shape[0]
    cdef int n_workers = max(n_threads, 1)
    cdef idx_t n_chunks = chunk_count(nnz, nrows, n_workers)
    cdef idx_t c, i, total, count, short, stride, longest = 0
    cdef idx_t* offsets      # offsets[c * nrows + i]: counts, then next free slot, of chunk c in row i
    cdef idx_t* start        # start[i]: first slot of row i among the sorted entries
    cdef entry_t* entries    # (column, position) pairs, sorted by row, then by column
    cdef entry_t* buffers    # per thread thread_stride(2 * short) entries (at most 2 * SHORT_ROW and a
                             # cache line's gap), or 2 * longest shared when longer rows exist
    cdef entry_t* mine = NULL
    cdef idx_t* pos_ptr = &out_pos[0] if out_pos.shape[0] > 0 else NULL
    # no positions asked for: carry each value in its entry (step 3 then reads in order)
    cdef bint carry = pos_ptr == NULL and sizeof(value_t) <= sizeof(idx_t)

    out_crow[0] = 0
    if nnz == 0:
        for i in range(nrows):
            out_crow[i + 1] = 0
        return
    offsets = <idx_t*> calloc(n_chunks * nrows, sizeof(idx_t))
    start = <idx_t*> malloc((nrows + 1) * sizeof(idx_t))
    entries = <entry_t*> big_alloc(nnz * sizeof(entry_t))
    buffers = NULL
    try:
        if offsets == NULL or start == NULL or entries == NULL:
            raise MemoryError("coalesce: no memory for the sort buffers")
        with nogil:
            # 1. Stable counting sort by row, one contiguous chunk of entries per thread.
            for c in prange(n_chunks, schedule="static", num_threads=n_chunks):
                count_chunk(&a_row[0], c * nnz // n_chunks, (c + 1) * nnz // n_chunks,
                            offsets + c * nrows)
            start[0] = 0
            for i in range(nrows):
                total = start[i]
                for c in range(n_chunks):
                    count = offsets[c * nrows + i]
                    offsets[c * nrows + i] = total
                    total = total + count
                start[i + 1] = total
                longest = max(longest, total - start[i])
            for c in prange(n_chunks, schedule="static", num_threads=n_chunks):
                scatter_chunk(&a_row[0], &a_col[0], &a_val[0], carry, c * nnz // n_chunks,
                              (c + 1) * nnz // n_chunks, offsets + c * nrows, entries)
        short = min(longest, <idx_t>SHORT_ROW)
        stride = thread_stride(2 * short)  # a thread's buffer shares no cache line with another's
        buffers = <entry_t*> malloc(max(stride * n_workers, 2 * longest) * sizeof(entry_t))
        if buffers == NULL:
            raise MemoryError("coalesce: no memory for the row-sort buffers")
        with nogil:
            # 2. Sort each row by column and count its distinct columns: short rows in
            #    parallel, long ones after, one at a time.
            with parallel(num_threads=n_workers):
                mine = buffers + stride * omp_get_thread_num()
                for i in prange(nrows, schedule="dynamic", chunksize=dynamic_chunk(nrows, n_workers)):
                    if start[i + 1] - start[i] <= short:
                        out_crow[i + 1] = sort_row(entries + start[i], start[i + 1] - start[i], mine)
            if longest > short:
                for i in range(nrows):
                    if start[i + 1] - start[i] > short:
                        out_crow[i + 1] = sort_row(entries + start[i], start[i + 1] - start[i], buffers)
            for i in range(nrows):
                out_crow[i + 1] += out_crow[i]
            # 3. Write each distinct (row, column) once, duplicates summed in storage order.
            for i in prange(nrows, schedule="dynamic", chunksize=dynamic_chunk(nrows, n_workers), num_threads=n_workers):
                write_row(entries + start[i], start[i + 1] - start[i], &a_val[0], carry, out_crow[i],
                          &out_col[0], &out_val[0], pos_ptr)
    finally:
        free(offsets)
        free(start)
        free(entries)
        free(buffers)

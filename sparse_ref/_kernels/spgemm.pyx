"""Sparse x sparse (SpGEMM): ``C = A @ B`` for CSR matrices, by Gustavson's row-by-row
algorithm in two passes: a symbolic pass that counts each output row exactly, then (after
the caller allocates the output) a numeric pass that fills it.
Typed twin of ``sparse_ref/reference/spgemm.py``.
"""

from cython.parallel cimport parallel, prange
from libc.stdint cimport int32_t, uint64_t
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy

from sparse_ref._kernels._arith cimport mul
from sparse_ref._kernels._openmp cimport omp_get_thread_num
from sparse_ref._kernels._sort cimport merge_runs, sort_keys
from sparse_ref._kernels._types cimport dynamic_chunk, idx_t, prefetch, thread_stride, value_t

__all__ = ["spgemm_bounds", "spgemm_symbolic", "spgemm_numeric", "spgemm_onepass", "spgemm_masked"]

# Streaming (non-temporal) stores of the output's columns and values, as SpMM's (spmm.pyx):
# each thread writes its rows' output in order, so the stores fill whole lines without the
# line being read first, and they push nothing out of the cache that the accumulation
# needs. The same bits, only another store instruction. Measured (bench_levers.py
# "spgemm streaming stores", Intel Xeon model 207, four runs): outputs of 315-320 MB (the
# uniform and power-law A @ A) 0.99-1.28x, most runs 1.1-1.2x; the Laplacian's 42 MB
# anywhere from 0.76x to 1.38x, a spread wider than any effect. So only an output of
# STREAM_MIN_BYTES (128 MiB) or more is streamed: one far larger than the cache.
cdef extern from "_simd.h":
    bint CAN_STREAM "SR_CAN_STREAM"
    void stream_8 "sr_stream_8"(void* p, const void* v) noexcept nogil
    void stream_4 "sr_stream_4"(void* p, const void* v) noexcept nogil
    void store_fence "sr_store_fence"() noexcept nogil
    void stream_copy "sr_stream_copy"(void* dst, const void* src, size_t n) noexcept nogil
    bint band_row "sr_band_row"(const idx_t* col, idx_t start, idx_t end, idx_t band) noexcept nogil

include "_simd.pxi"

cdef Py_ssize_t STREAM_MIN_BYTES = 128 << 20


def _set_stream(Py_ssize_t min_bytes):
    """Tuning hook for benchmarks and tests (not public API): stream the output of
    ``spgemm_numeric`` when it has ``min_bytes`` or more (-1: never); returns the previous
    value (default 128 MiB)."""
    global STREAM_MIN_BYTES
    previous = STREAM_MIN_BYTES
    STREAM_MIN_BYTES = min_bytes
    return previous


cdef inline void store_entry(idx_t* out_col, value_t* out_val, idx_t t, idx_t j, value_t v,
                             bint stream) noexcept nogil:
    if not stream:
        out_col[t] = j
        out_val[t] = v
        return
    stream_8(&out_col[t], &j)
    if sizeof(value_t) == 8:
        stream_8(&out_val[t], &v)
    elif sizeof(value_t) == 4:
        stream_4(&out_val[t], &v)
    else:  # 16 bytes: complex128
        stream_8(&out_val[t], &v)
        stream_8(<char*> &out_val[t] + 8, <char*> &v + 8)


def spgemm_bounds(const idx_t[::1] a_crow, const idx_t[::1] a_col, const idx_t[::1] b_crow,
                  idx_t[::1] out_flops, idx_t[::1] out_longest, int n_threads=1):
    """Per-row bounds on the size of ``C = A @ B``, from row lengths alone, before any
    product is formed (how SpGEMM refuses an impossible output in O(nnz(A))).

    Simple version
    --------------
    The same result, with NumPy::

        lengths = np.diff(b_crow)[a_col]           # the length of row k of B, per stored (i, k)
        for i in range(len(a_crow) - 1):
            out_flops[i] = lengths[a_crow[i]:a_crow[i + 1]].sum()
            out_longest[i] = lengths[a_crow[i]:a_crow[i + 1]].max(initial=0)

    Inputs
    ------
    a_crow, a_col : int64[nrows + 1], int64[nnz_a]
        The pattern of A (CSR).
    b_crow : int64[ncols_a + 1]
        Row pointers of B.

    Outputs
    -------
    out_flops : int64[nrows]
        ``out_flops[i]`` = the number of products a_ik * b_kj of row i: the sum of the
        lengths of the rows k of B that row i of A reaches. An upper bound on the entries
        of row i of C, and the work of row i.
    out_longest : int64[nrows]
        ``out_longest[i]`` = the longest of those rows of B (0 for an empty row): a lower
        bound on the entries of row i of C, since the columns of one row of B are distinct.

    Preconditions
    -------------
    Columns of A in ``[0, ncols_a)``.

    Complexity
    ----------
    O(nrows + nnz(A)) time, no extra memory.

    Parallelism
    -----------
    A ``prange`` over rows of A; each writes its own two outputs.
    """
    cdef idx_t nrows = a_crow.shape[0] - 1
    cdef idx_t i, q, n, flops, longest
    if nrows <= 0:
        return
    with nogil:
        for i in prange(nrows, schedule="static", num_threads=max(n_threads, 1)):
            flops = 0
            longest = 0
            for q in range(a_crow[i], a_crow[i + 1]):
                n = b_crow[a_col[q] + 1] - b_crow[a_col[q]]
                flops = flops + n
                if n > longest:
                    longest = n
            out_flops[i] = flops
            out_longest[i] = longest


# The per-column arrays of both passes (markers, slots) are int32: half the bytes of int64,
# so that for 200,000 columns they fit in a 1 MiB L2 cache, and the random access to them
# on every product misses less. Their entries are tags that only grow; before a tag could
# pass tag_limit, the array is reset to -1 and the tags start again at 0.
cdef idx_t tag_limit = 2147483647  # INT32_MAX


# Rows per chunk of both passes' dynamic schedule: as many as make about chunk_products
# products (by the average row: nnz(A) / rows of A x nnz(B) / rows of B), between the
# other kernels' chunk (1/64 of a thread's share of the rows, at most 1024: _types.pxd)
# and 1/16 of a thread's share. A row of the random matrices makes about 100 products,
# so they keep 1024 rows; the Laplacian's make 25, so its chunks are 4096 rows: each
# chunk starts by reading the rows of B its first rows reach (a band's 900 rows, for rows
# of 1024), which the previous chunk, on another core, had in its cache. The same bits
# either way (a row's work is the same whichever thread does it). Measured (bench_levers.py
# "spgemm chunks", AMD EPYC, 2 threads): the Laplacian's numeric pass 1.04-1.07x, with a
# core busy 0.99-1.04x; chunks of 1/16 of a share on the random matrices lost (0.88-0.93x with
# a core busy), so they keep theirs. Tuning hook _set_chunk_products (0: the other
# kernels' chunk, as before).
cdef idx_t chunk_products = 102400


def _set_chunk_products(idx_t products):
    """Tuning hook (not public API): products per chunk of rows of both passes (0: the
    chunk of the other kernels' dynamic schedule); returns the previous value."""
    global chunk_products
    previous = chunk_products
    chunk_products = max(products, 0)
    return previous


cdef inline idx_t row_chunk(idx_t nrows, int n_workers, idx_t a_nnz, idx_t b_nnz, idx_t b_rows) noexcept nogil:
    cdef idx_t base = dynamic_chunk(nrows, n_workers)
    cdef double per_row
    if chunk_products <= 0 or nrows <= 0 or b_rows <= 0:
        return base
    per_row = max(1.0, (<double>a_nnz / <double>nrows) * (<double>b_nnz / <double>b_rows))
    return max(base, min(<idx_t>min(chunk_products / per_row, <double>nrows),
                         nrows // (16 * <idx_t>max(n_workers, 1))))


def _row_chunk(idx_t nrows, int n_workers, idx_t a_nnz, idx_t b_nnz, idx_t b_rows):
    """Test hook: the rows per chunk of both passes for these sizes."""
    return row_chunk(nrows, n_workers, a_nnz, b_nnz, b_rows)


def _set_tag_limit(idx_t limit):
    """Test hook (not public API): lower the tag limit so that tests reach the resets
    (at the real limit they need 2**31 rows or output entries)."""
    global tag_limit
    tag_limit = min(max(limit, 1), 2147483647)


# How many entries of A ahead both passes prefetch the row of B that an entry reaches
# (its first column, and in the numeric pass its first value), and twice that far ahead
# the row pointer that locates it: random rows of a large B are a cache miss each. The
# prefetch runs on past the end of the row, into the rows this thread does next.
# A variable for the tuning hook _set_prefetch (0: no prefetch).
cdef idx_t prefetch_ahead = 8

# A row of A of two or more entries whose columns span fewer than prefetch_band rows of B
# (a band: a mesh or stencil matrix) is not prefetched for: the rows of B it reaches are
# those its neighbours reached, still in the cache, plus one more at the band's leading
# edge, in the order the hardware prefetcher follows by itself; the prefetch instructions
# and the loads of the indices ahead are then only work. A wider row, or a row of one
# entry (which says nothing of its neighbours), keeps the prefetch (sr_band_row in _simd.h,
# SpMM's rule too). The same products in the same order: the same bits. Tuning hook
# _set_prefetch_band (0: every row prefetched, as before). Measured: bench_levers.py
# "spgemm band prefetch".
cdef idx_t prefetch_band = 4096


def _set_prefetch_band(idx_t rows):
    """Tuning hook (not part of the kernel interface): rows of A of two or more entries whose
    columns span fewer than ``rows`` rows of B skip the prefetch (0: none skips); returns
    the previous value."""
    global prefetch_band
    previous = prefetch_band
    prefetch_band = max(rows, 0)
    return previous


cdef inline idx_t row_ahead(const idx_t* a_col, idx_t start, idx_t end) noexcept nogil:
    """How far ahead a row of A prefetches: 0 for a band row (prefetch_band)."""
    return 0 if band_row(a_col, start, end, prefetch_band) else prefetch_ahead


def _set_prefetch(idx_t ahead):
    """Tuning hook (not part of the kernel interface): entries of A ahead to prefetch
    rows of B (0: none); returns the previous value."""
    global prefetch_ahead
    previous = prefetch_ahead
    prefetch_ahead = max(ahead, 0)
    return previous


cdef inline void prefetch_b_row(const idx_t* a_col, idx_t q, idx_t a_nnz, idx_t ahead,
                                const idx_t* b_crow, const idx_t* b_col,
                                const void* b_val_row0, Py_ssize_t itemsize) noexcept nogil:
    """Prefetch for entry q of A: the row of B of entry q + ahead, and the row pointer of
    entry q + 2 * ahead (``b_val_row0``: B's values, or NULL for the symbolic pass)."""
    cdef idx_t k
    if q + 2 * ahead < a_nnz:
        prefetch(b_crow + a_col[q + 2 * ahead])
    if q + ahead < a_nnz:
        k = a_col[q + ahead]
        prefetch(b_col + b_crow[k])
        if b_val_row0 != NULL:
            prefetch(<const char*> b_val_row0 + b_crow[k] * itemsize)


cdef inline idx_t count_row(const idx_t* a_col, idx_t start, idx_t end, idx_t a_nnz, const idx_t* b_crow,
                            const idx_t* b_col, int32_t tag, int32_t* marker) noexcept nogil:
    cdef idx_t q, r, j, k, count = 0
    cdef idx_t ahead = row_ahead(a_col, start, end)
    for q in range(start, end):
        if ahead > 0:
            prefetch_b_row(a_col, q, a_nnz, ahead, b_crow, b_col, NULL, 0)
        k = a_col[q]
        for r in range(b_crow[k], b_crow[k + 1]):
            j = b_col[r]
            if marker[j] != tag:   # first time this row meets column j
                marker[j] = tag
                count += 1
    return count


def spgemm_symbolic(const idx_t[::1] a_crow, const idx_t[::1] a_col, const idx_t[::1] b_crow,
                    const idx_t[::1] b_col, idx_t ncols, idx_t[::1] out_crow, int n_threads=1):
    """Count the entries of each row of ``C = A @ B`` (the structural product).

    Simple version
    --------------
    The same result, once the outputs are set to zero (the kernel does not need that:
    it writes every element)::

        for i in range(len(a_crow) - 1):
            ks = a_col[a_crow[i]:a_crow[i + 1]]    # the rows of B that row i of A reaches
            row = {j for k in ks for j in b_col[b_crow[k]:b_crow[k + 1]]}
            out_crow[i + 1] = out_crow[i] + len(row)

    Inputs
    ------
    a_crow, a_col : int64[nrows + 1], int64[nnz_a]
        The pattern of A (CSR, coalesced).
    b_crow, b_col : int64[ncols_a + 1], int64[nnz_b]
        The pattern of B (CSR, coalesced).
    ncols : int
        Number of columns of B (and C).

    Outputs
    -------
    out_crow : int64[nrows + 1]
        Row pointers of C: row i of C has one entry for every column j such that some
        stored (i, k) of A meets some stored (k, j) of B, whatever the values (explicit
        zeros and exact cancellations count). ``out_crow[nrows]`` is nnz(C), counted in
        int64.

    Preconditions
    -------------
    Columns of A in ``[0, ncols_a)``, of B in ``[0, ncols)``.

    Complexity
    ----------
    O(flops) time, where flops = sum over stored (i, k) of A of the length of row k of
    B; O(threads * ncols) extra memory in the kernel (one marker array per thread).

    Parallelism
    -----------
    A ``prange`` over rows of A; each thread owns its marker array. The prefix sum that
    turns counts into row pointers is serial.

    Reference
    ---------
    F. G. Gustavson, "Two fast algorithms for sparse matrices: multiplication and
    permuted transposition", ACM TOMS 4(3), 1978; R. E. Bank and C. C. Douglas, "Sparse
    matrix multiplication package (SMMP)", 1993. SciPy: ``csr_matmat_maxnnz``.
    """
    cdef idx_t nrows = a_crow.shape[0] - 1
    cdef int n_workers = max(n_threads, 1)
    cdef idx_t i, j, first, last
    cdef int32_t* markers
    cdef int32_t* mine = NULL
    cdef const idx_t* a_col_ptr = &a_col[0] if a_col.shape[0] > 0 else NULL
    cdef const idx_t* b_col_ptr = &b_col[0] if b_col.shape[0] > 0 else NULL
    out_crow[0] = 0
    if nrows <= 0:
        return
    cdef idx_t stride = thread_stride(ncols)  # each thread's markers (no cache line shared)
    cdef idx_t chunk = row_chunk(nrows, n_workers, a_crow[nrows] - a_crow[0], b_col.shape[0], b_crow.shape[0] - 1)
    if stride > PY_SSIZE_T_MAX // <Py_ssize_t>sizeof(int32_t) // n_workers:
        raise MemoryError(f"spgemm_symbolic: {ncols} columns x {n_workers} threads of markers")
    markers = <int32_t*> malloc(stride * n_workers * sizeof(int32_t))
    if markers == NULL:
        raise MemoryError("spgemm_symbolic: no memory for the marker arrays")
    try:
        with nogil:
            first = 0
            while first < nrows:  # row i's tag is i - first (one round below 2**31 rows)
                last = min(nrows, first + tag_limit)
                for j in range(stride * n_workers):
                    markers[j] = -1
                with parallel(num_threads=n_workers):
                    mine = markers + stride * omp_get_thread_num()
                    for i in prange(first, last, schedule="dynamic", chunksize=chunk):
                        out_crow[i + 1] = count_row(a_col_ptr, a_crow[i], a_crow[i + 1], a_col.shape[0], &b_crow[0],
                                                    b_col_ptr, <int32_t>(i - first), mine)
                first = first + tag_limit
            for i in range(nrows):
                out_crow[i + 1] += out_crow[i]
    finally:
        free(markers)


# Rows of C of more than rank_min and at most rank_max entries are put in order by rank
# (sr_key_ranks in _simd.h: each column's place is the number of columns below it, counted
# with vector comparisons, no branch on the data), at the AVX2 and AVX-512 levels; other
# rows, and every row at SSE2, are sorted (_sort.pxd). Rows of 16 or fewer keep the
# insertion sort: they gain little when their columns are random, and lose when the
# columns come nearly in order, as the Laplacian's 13 do (its insertion sort moves a few
# keys, and the vector loads of keys just stored one by one cannot be forwarded from the
# stores). The figures: bench_levers.py "spgemm ranks" and docs/algorithms/spgemm.rst.
include "_ranks.pxi"


# A dense accumulator: each thread keeps one sum per column of B (Gustavson's own "SPA")
# when they take at most DENSE_MAX_BYTES, and a row whose columns span less than
# DENSE_SPAN_BYTES of it (a band) keeps its sums there instead of in its short list of
# slots. The slot of a product then need not wait for the load of ``where[j]`` (only the
# "new column?" branch does, and it is predicted): on the Laplacian the chain b_col ->
# where -> slot -> sum was about a third of the numeric pass. A row spread wider keeps its
# slots (the sums stay in L1 there, where the dense array would miss the cache on every
# product). The same sums in the same order, so the same bits. On the Laplacian it paid on
# 2 threads (mostly 1.03-1.15x) and not on one (0.96-0.99x): docs/algorithms/spgemm.rst.
# The span is found first, from the first and last column of each row of B the row meets:
# those loads fetch the lines of the columns at both ends of every one of those rows at
# once, before the first product waits for one (``span_first``; on random matrices that is
# worth more than the dense array; the rest of each row and its values still come from the
# prefetch 8 entries ahead).
# Measured: bench_levers.py "spgemm dense accumulator".
cdef Py_ssize_t DENSE_MAX_BYTES = 4 << 20
cdef idx_t DENSE_SPAN_BYTES = 32 << 10
cdef bint span_first = True


def _set_dense_limit(Py_ssize_t max_bytes, idx_t span_bytes=32 << 10, bint first=True):
    """Tuning hook for benchmarks and tests (not public API): keep the sums of a row in a
    dense array of one per column of B when that takes at most ``max_bytes`` per thread
    (-1: never) and the row's columns span less than ``span_bytes`` of it; ``first``: find
    every row's span first even when there is no dense array. Returns the previous triple
    (default 4 MiB, 32 KiB, True)."""
    global DENSE_MAX_BYTES, DENSE_SPAN_BYTES, span_first
    previous = (DENSE_MAX_BYTES, DENSE_SPAN_BYTES, span_first)
    DENSE_MAX_BYTES, DENSE_SPAN_BYTES, span_first = max_bytes, span_bytes, first
    return previous


# Each thread's stamp sits on its own cache line: threads update theirs on every row, and
# two stamps on one line would make the line bounce between cores (false sharing).
cdef enum:
    STAMP_STRIDE = 8


# What each thread of the numeric pass (and of the one pass) keeps, in one allocation per
# kind, one region per thread (thread_stride: no cache line shared between threads):
# the slots over the columns of B (``where``), the short list of sums of the current row
# (``vals``, values of ``itemsize`` bytes), the dense sums (``dense``, one per column of B,
# or NULL: DENSE_MAX_BYTES; zero between rows), a bit per column of B for a band row's
# columns (``bits``, with ``dense`` under bitmap_scan, else NULL; zero between rows), the
# keys and their sort buffer, where each row of B's new columns begin (``runs``), the
# ranks of a row (``ranks``) and the stamp.
cdef struct workspace:
    int32_t* where
    char* vals
    char* dense
    uint64_t* bits
    uint64_t* keys
    idx_t* runs
    idx_t* ranks
    idx_t* stamps
    idx_t where_stride, vals_stride, keys_stride, runs_stride, ranks_stride, rank_low, rank_high, bits_stride


cdef int workspace_alloc(workspace* w, idx_t ncols, idx_t longest, idx_t a_longest, int n_workers,
                         Py_ssize_t itemsize, str who) except -1:
    """Each thread's region of every kind, for rows of C of at most ``longest`` entries
    and rows of A of at most ``a_longest``; the slots set to -1 (no column seen). Raises
    MemoryError (naming ``who``) with nothing left allocated."""
    cdef idx_t j
    w.where, w.vals, w.dense, w.keys, w.runs, w.ranks, w.stamps = NULL, NULL, NULL, NULL, NULL, NULL, NULL
    w.bits = NULL
    w.bits_stride = thread_stride(ncols // 64 + 1)
    w.rank_low, w.rank_high = rank_min, rank_max  # (read once: ranks are sized by it)
    w.where_stride = thread_stride(ncols)
    w.vals_stride = thread_stride(longest)
    w.keys_stride = thread_stride(2 * longest)
    w.runs_stride = thread_stride(a_longest + 2)
    w.ranks_stride = thread_stride(min(longest, w.rank_high))
    if (w.where_stride > PY_SSIZE_T_MAX // <Py_ssize_t>sizeof(int32_t) // n_workers
            or w.keys_stride > PY_SSIZE_T_MAX // <Py_ssize_t>sizeof(uint64_t) // n_workers):
        raise MemoryError(f"{who}: {ncols} columns x {n_workers} threads of accumulator slots")
    w.where = <int32_t*> malloc(w.where_stride * n_workers * sizeof(int32_t))
    w.vals = <char*> malloc(w.vals_stride * n_workers * itemsize)
    w.keys = <uint64_t*> malloc(w.keys_stride * n_workers * sizeof(uint64_t))
    w.stamps = <idx_t*> malloc(n_workers * STAMP_STRIDE * sizeof(idx_t))
    w.runs = <idx_t*> malloc(w.runs_stride * n_workers * sizeof(idx_t))
    w.ranks = <idx_t*> malloc(w.ranks_stride * n_workers * sizeof(idx_t))
    if (w.where == NULL or w.vals == NULL or w.keys == NULL or w.stamps == NULL or w.runs == NULL
            or w.ranks == NULL):
        workspace_free(w)
        raise MemoryError(f"{who}: no memory for the accumulators")
    if ncols <= DENSE_MAX_BYTES // itemsize:
        w.dense = <char*> calloc(w.where_stride * n_workers, itemsize)  # NULL: slots only
        if w.dense != NULL and bitmap_scan:
            w.bits = <uint64_t*> calloc(w.bits_stride * n_workers, sizeof(uint64_t))
    with nogil:
        for j in range(w.where_stride * n_workers):
            w.where[j] = -1
    return 0


cdef void workspace_free(workspace* w) noexcept nogil:
    free(w.where)
    free(w.vals)
    free(w.dense)
    free(w.bits)
    free(w.keys)
    free(w.runs)
    free(w.ranks)
    free(w.stamps)
    w.where, w.vals, w.dense, w.keys, w.runs, w.ranks, w.stamps = NULL, NULL, NULL, NULL, NULL, NULL, NULL
    w.bits = NULL


# A band row's columns in order without sorting them: a row that keeps its sums in the
# dense array and whose span takes fewer 64-column words than twice its products (plus 4)
# marks each column it meets in a bitmap over the columns of B, one bit each, and then
# reads the words of its span in turn: the set bits, lowest first, are its columns in
# order (the Laplacian's 13 columns span 1801, 29 words, from 25 products). No ``where``
# stamp, no key list, no sort, and no "new column?" branch: the dense array is kept at
# zero between rows (allocated zeroed, and each row sets the sums it wrote back to zero as
# it writes them out), so every product is added to its column's sum as it comes, and the
# bitmap's words are cleared as they are read. The same sums in the same order (each
# column's starts from 0, as a new column's does): the same bits. Measured
# (bench_levers.py "spgemm bitmap scan", kernels alone, interleaved) on both families:
# - AMD EPYC (four runs): the Laplacian's one pass 0.96-1.07x on 1 thread and 1.00-1.07x
#   on 2, its numeric pass 0.99-1.10x, the whole sr.sparse.mm(A, A) 1.00-1.10x; a uniform
#   matrix of 4000 columns (every row a "band", rows of C of about 100) 1.51-1.69x, and
#   of 2000 columns 1.7-2.6x;
# - the Intel Xeon of 2026-12-02 evening (model 167; 2 MiB L2 a core, 105 MiB L3; four
#   runs): the Laplacian's one pass 0.98-1.08x on 1 thread and 1.04-1.06x on 2, its
#   numeric pass 0.94-1.05x, the whole call 0.95-1.04x; uniform 4000 1.38-1.48x on 1
#   thread, 1.28-1.32x on 2, its numeric pass 1.32-1.40x, the whole call 1.27-1.38x.
# A few percent at most on the Laplacian, within the hosts' noise, and a clear gain where
# rows are bands of about 100 columns: on for every CPU. (A first bitmap, which kept the
# branch, a test of the bit, ran at 0.73x on another Intel Xeon: docs/algorithms/spgemm.rst.)
cdef bint bitmap_scan = 1


def _set_bitmap_scan(int on):
    """Tuning hook for benchmarks and tests (not public API): whether band rows are put in
    order by the bitmap scan (1) or by their ranks or a sort as other rows (0); -1: the
    default (on). Returns the previous setting (0 or 1)."""
    global bitmap_scan
    previous = bitmap_scan
    bitmap_scan = 1 if on < 0 else on != 0
    return previous


cdef extern from *:
    int ctz64 "__builtin_ctzll"(unsigned long long x) noexcept nogil  # the lowest set bit's place (x != 0)


cdef inline idx_t fill_row(const idx_t* a_col, const value_t* a_val, idx_t start, idx_t end,
                           idx_t a_nnz, const idx_t* b_crow, const idx_t* b_col, const value_t* b_val,
                           idx_t stamp, int32_t* where, value_t* vals, value_t* dense, uint64_t* bits, uint64_t* keys,
                           idx_t* runs, idx_t* ranks, idx_t rank_low, idx_t rank_high, idx_t* out_col,
                           value_t* out_val, bint stream) noexcept nogil:
    """Accumulate one row of C and write it sorted; return the next stamp.

    ``where[j] - stamp`` is column j's slot in this row's short list (``vals``, which stays
    in L1) when it is >= 0; stamps only grow, so the array is not reset between rows (only
    when the next stamp could pass tag_limit). With ``dense`` (one sum per column of B,
    DENSE_MAX_BYTES), column j's sum is ``dense[j]`` instead of its slot's: ``where`` then
    only says whether j is new in this row (the same stamps), and no load of ``where``
    lies on the way to the sum (DENSE_MAX_BYTES says why); the sums written out are set
    back to zero. With ``bits`` too (``bitmap_scan``), a band row marks its columns there
    and reads them back in order instead (no ``where``, no keys)."""
    cdef idx_t q, r, j, k, t, slot, n_keys = 0
    cdef value_t a
    cdef uint64_t* sorted_keys
    cdef idx_t ahead = row_ahead(a_col, start, end)
    cdef idx_t n_runs = 0   # runs[r]: where the new columns of the r-th row of B begin
    cdef idx_t lo, hi, products = 0
    cdef uint64_t word
    runs[0] = 0
    if dense != NULL or span_first:  # the row's span of columns (DENSE_MAX_BYTES)
        lo, hi = PY_SSIZE_T_MAX, -1
        for q in range(start, end):
            k = a_col[q]
            if b_crow[k] < b_crow[k + 1]:
                lo = min(lo, b_col[b_crow[k]])
                hi = max(hi, b_col[b_crow[k + 1] - 1])
                products = products + b_crow[k + 1] - b_crow[k]
        if hi < lo or hi - lo >= DENSE_SPAN_BYTES // <idx_t>sizeof(value_t):
            dense = NULL
        elif bits != NULL and (hi >> 6) - (lo >> 6) < 2 * products + 4:  # (bitmap_scan)
            for q in range(start, end):
                if ahead > 0:
                    prefetch_b_row(a_col, q, a_nnz, ahead, b_crow, b_col, b_val, sizeof(value_t))
                k = a_col[q]
                a = a_val[q]
                for r in range(b_crow[k], b_crow[k + 1]):
                    j = b_col[r]
                    lo = min(lo, j)  # (the span again, from every column: a row of B out of order,
                    hi = max(hi, j)  # from check_invariants=False, still has all its bits read)
                    bits[j >> 6] = bits[j >> 6] | ((<uint64_t>1) << (j & 63))
                    dense[j] = dense[j] + mul(a, b_val[r])
            for r in range(lo >> 6, (hi >> 6) + 1):
                word = bits[r]
                if word != 0:
                    bits[r] = 0
                    while word != 0:
                        j = (r << 6) + ctz64(word)
                        store_entry(out_col, out_val, n_keys, j, dense[j], stream)
                        dense[j] = 0
                        n_keys += 1
                        word = word & (word - 1)
            return stamp + n_keys
    for q in range(start, end):
        if ahead > 0:
            prefetch_b_row(a_col, q, a_nnz, ahead, b_crow, b_col, b_val, sizeof(value_t))
        if n_keys > runs[n_runs]:
            n_runs += 1
            runs[n_runs] = n_keys
        k = a_col[q]
        a = a_val[q]
        if dense != NULL:
            for r in range(b_crow[k], b_crow[k + 1]):
                j = b_col[r]
                if where[j] < stamp:   # first time this row meets column j
                    where[j] = <int32_t>(stamp + n_keys)
                    dense[j] = 0
                    keys[n_keys] = <uint64_t>j
                    n_keys += 1
                dense[j] = dense[j] + mul(a, b_val[r])
            continue
        for r in range(b_crow[k], b_crow[k + 1]):
            j = b_col[r]
            slot = where[j] - stamp
            if slot < 0:   # first time this row meets column j
                slot = n_keys
                where[j] = <int32_t>(stamp + slot)
                vals[slot] = 0
                keys[slot] = <uint64_t>j   # columns are unique within the row: unique keys
                n_keys += 1
            vals[slot] = vals[slot] + mul(a, b_val[r])
    if n_keys > runs[n_runs]:
        n_runs += 1
        runs[n_runs] = n_keys
    if rank_low < n_keys <= rank_high and key_ranks(keys, n_keys, ranks):
        sorted_keys = keys + n_keys
        for t in range(n_keys):  # the slots in the order of their columns
            sorted_keys[ranks[t]] = <uint64_t>t
        if dense != NULL:
            for t in range(n_keys):
                j = <idx_t>keys[<idx_t>sorted_keys[t]]
                store_entry(out_col, out_val, t, j, dense[j], stream)
                dense[j] = 0
            return stamp + n_keys
        for t in range(n_keys):
            slot = <idx_t>sorted_keys[t]
            store_entry(out_col, out_val, t, <idx_t>keys[slot], vals[slot], stream)
        return stamp + n_keys
    # the keys are n_runs ascending runs (each row of B's new columns, in turn): merge them
    # when they are long, else sort from scratch (networks of 8 keys, then merges)
    if n_keys > 16 and 8 * n_runs <= n_keys:
        sorted_keys = merge_runs(keys, keys + n_keys, runs, n_runs)
    else:
        sorted_keys = sort_keys(keys, keys + n_keys, n_keys)
    if dense != NULL:
        for t in range(n_keys):
            j = <idx_t>sorted_keys[t]
            store_entry(out_col, out_val, t, j, dense[j], stream)
            dense[j] = 0
        return stamp + n_keys
    for t in range(n_keys):
        j = <idx_t>sorted_keys[t]
        store_entry(out_col, out_val, t, j, vals[where[j] - stamp], stream)
    return stamp + n_keys


def spgemm_numeric(const idx_t[::1] a_crow, const idx_t[::1] a_col, const value_t[::1] a_val,
                   const idx_t[::1] b_crow, const idx_t[::1] b_col, const value_t[::1] b_val,
                   idx_t ncols, const idx_t[::1] crow, idx_t[::1] out_col, value_t[::1] out_val,
                   int n_threads=1):
    """Fill ``C = A @ B`` into the row pointers that ``spgemm_symbolic`` counted.

    Simple version
    --------------
    The same result up to rounding::

        for i in range(len(a_crow) - 1):
            row = {}                                          # j -> C[i, j]
            for q in range(a_crow[i], a_crow[i + 1]):
                for r in range(b_crow[a_col[q]], b_crow[a_col[q] + 1]):
                    row[b_col[r]] = row.get(b_col[r], 0) + a_val[q] * b_val[r]
            out_col[crow[i]:crow[i + 1]] = sorted(row)
            out_val[crow[i]:crow[i + 1]] = [row[j] for j in sorted(row)]

    Inputs
    ------
    a_crow, a_col, a_val
        A in CSR form, coalesced.
    b_crow, b_col, b_val
        B in CSR form, coalesced.
    ncols : int
        Number of columns of B.
    crow : int64[nrows + 1]
        The output of ``spgemm_symbolic``.

    Outputs
    -------
    out_col : int64[crow[nrows]]
        Columns of C, ascending within each row.
    out_val : value[crow[nrows]]
        ``C[i, j] = ((0 + a_ik0 * b_k0j) + a_ik1 * b_k1j) + ...``: for row i, the stored
        (i, k) of A in ascending k, and for each the stored (k, j) of B in ascending j,
        each product added to its column's running sum as it comes.

    Preconditions
    -------------
    ``crow`` comes from ``spgemm_symbolic`` on the same patterns.

    Complexity
    ----------
    O(flops + nnz(C) log(row length of C)) time; a row put in order by rank (of 17-128
    entries, with AVX2 or AVX-512) costs O(its length squared / vector lanes) instead.
    Extra memory in the kernel, per thread: a slot array over the columns (where column
    j's running sum sits in this row's short list), 3 x the longest output row (the short
    list of sums and a sort buffer), the ranks of a row of up to 128 columns, the
    longest row of A (where each row of B's new columns begin, for the sort), and one sum
    per column when that takes at most 4 MiB (for the rows whose columns lie close
    together: the dense accumulator).

    Parallelism
    -----------
    A ``prange`` over rows of A; each thread owns its slot array, sums and sort buffer,
    allocated once before the parallel block. Rows write disjoint slices of the
    output, and each C[i, j] is summed in the order above on any number of threads.

    Reference
    ---------
    Gustavson 1978 (dense accumulator, "SPA"); SciPy: ``csr_matmat``.
    """
    cdef idx_t nrows = a_crow.shape[0] - 1
    cdef int n_workers = max(n_threads, 1)
    cdef idx_t i, j, longest = 0, a_longest = 0
    cdef workspace w
    cdef idx_t* my_runs = NULL
    cdef idx_t* my_stamp = NULL
    cdef idx_t* my_ranks = NULL
    cdef int32_t* my_where = NULL
    cdef value_t* my_vals = NULL
    cdef value_t* my_dense = NULL
    cdef uint64_t* my_bits = NULL
    cdef uint64_t* my_keys = NULL
    cdef idx_t* out_col_ptr
    cdef value_t* out_val_ptr
    if nrows <= 0 or crow[nrows] == 0:
        return
    cdef bint stream = CAN_STREAM and 0 <= STREAM_MIN_BYTES <= (crow[nrows] - crow[0]) * <idx_t>(8 + sizeof(value_t))
    out_col_ptr = &out_col[0]
    out_val_ptr = &out_val[0]
    for i in range(nrows):
        longest = max(longest, crow[i + 1] - crow[i])
        a_longest = max(a_longest, a_crow[i + 1] - a_crow[i])
    cdef idx_t chunk = row_chunk(nrows, n_workers, a_crow[nrows] - a_crow[0], b_col.shape[0], b_crow.shape[0] - 1)
    workspace_alloc(&w, ncols, longest, a_longest, n_workers, sizeof(value_t), "spgemm_numeric")
    try:
        with nogil, parallel(num_threads=n_workers):
            my_where = w.where + w.where_stride * omp_get_thread_num()
            my_vals = <value_t*> w.vals + w.vals_stride * omp_get_thread_num()
            my_dense = <value_t*> w.dense + w.where_stride * omp_get_thread_num() if w.dense != NULL else NULL
            my_bits = w.bits + w.bits_stride * omp_get_thread_num() if w.bits != NULL else NULL
            my_keys = w.keys + w.keys_stride * omp_get_thread_num()
            my_runs = w.runs + w.runs_stride * omp_get_thread_num()
            my_ranks = w.ranks + w.ranks_stride * omp_get_thread_num()
            my_stamp = w.stamps + STAMP_STRIDE * omp_get_thread_num()
            my_stamp[0] = 0
            for i in prange(nrows, schedule="dynamic", chunksize=chunk):
                if my_stamp[0] > tag_limit - longest:  # the next row's slots could pass it
                    for j in range(ncols):
                        my_where[j] = -1
                    my_stamp[0] = 0
                my_stamp[0] = fill_row(&a_col[0], &a_val[0], a_crow[i], a_crow[i + 1], a_col.shape[0], &b_crow[0],
                                       &b_col[0], &b_val[0], my_stamp[0], my_where, my_vals,
                                       my_dense, my_bits, my_keys, my_runs, my_ranks, w.rank_low, w.rank_high, out_col_ptr + crow[i],
                                       out_val_ptr + crow[i], stream)
            if stream:  # each thread's streaming stores are done before the region ends
                store_fence()
    finally:
        workspace_free(&w)


# The one pass's chunks tell one another where they go through one status word each (on a
# cache line of its own): 0 while the chunk is being computed, then its count of entries
# (AGGREGATE), then where it ends in the output (INCLUSIVE: its count plus those of every
# chunk before it). GCC's and Clang's __atomic builtins; x86's pause in the wait loop.
cdef extern from *:
    """
    static inline long long sr_fetch_add(long long* p, long long v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
    static inline long long sr_load_acquire(const long long* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline void sr_store_release(long long* p, long long v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    static inline void sr_fetch_or(long long* p, long long v) { __atomic_fetch_or(p, v, __ATOMIC_ACQ_REL); }
    #if defined(__x86_64__) || defined(__i386__)
    static inline void sr_pause(void) { __builtin_ia32_pause(); }
    #else
    static inline void sr_pause(void) { }
    #endif
    """
    long long fetch_add "sr_fetch_add"(long long* p, long long v) noexcept nogil
    long long load_acquire "sr_load_acquire"(const long long* p) noexcept nogil
    void store_release "sr_store_release"(long long* p, long long v) noexcept nogil
    void fetch_or "sr_fetch_or"(long long* p, long long v) noexcept nogil
    void cpu_pause "sr_pause"() noexcept nogil

cdef enum:
    STATUS_STRIDE = 8   # long longs: one status word a cache line
    AGGREGATE = 1       # status = count << 2 | AGGREGATE
    INCLUSIVE = 2       # status = end << 2 | INCLUSIVE


# The one pass stages each chunk's rows in a buffer of its thread's, as long as the chunk
# could need: its products, counted in a pass over the chunk's entries of A before its rows
# (a load of a column of A and two row pointers of B each). When every row of the chunk
# has a short bound (``longest``: the longest row of A times the longest row of B, at most
# ncols) and the chunk's rows times that bound is at most stage_bound entries (2 MiB of
# float64 entries and columns), that product is room enough and the count is skipped: the
# Laplacian's chunks of 4096 rows of at most 25 products each. Only the size of a buffer
# changes, never a bit. Measured (Intel Xeon model 167): the Laplacian's whole
# sr.sparse.mm(A, A) 0.99-1.04x on 1 thread and 1.02-1.04x on 2 (30 interleaved calls a
# side, three runs); bench_levers.py "spgemm stage bound": its one pass 1.03x on 1 thread
# and 1.07x on 2, the whole call 1.05x (the random matrices, whose bounds are too long for
# it: the same code either way, 0.87-1.05x).
# Tuning hook _set_stage_bound (0: always count, as before).
cdef idx_t stage_bound = 131072


def _set_stage_bound(idx_t entries):
    """Tuning hook for benchmarks and tests (not public API): the most entries a chunk's
    buffer may take from its rows' bound instead of a count of its products (0: always
    count). Returns the previous setting."""
    global stage_bound
    previous = stage_bound
    stage_bound = max(entries, 0)
    return previous


# Whether the one pass copies each chunk to the output with streaming stores (sr_stream_copy
# in _simd.h): the copy is a sixth of its time on the Laplacian, and its target lines,
# cold, are otherwise read before they are written. Tuning hook _set_stream_copy.
cdef bint stream_copies = True


def _set_stream_copy(bint on):
    """Tuning hook (not part of the kernel interface): copy the one pass's chunks with
    streaming stores (True, the default) or with memcpy; returns the previous setting."""
    global stream_copies
    previous = stream_copies
    stream_copies = on
    return previous


cdef inline idx_t look_back(long long* status, idx_t c) noexcept nogil:
    """Where chunk c starts: the counts of the chunks before it, read back from c - 1 until
    a chunk that knows where it ends; waits on a chunk still being computed (one that a
    thread took before c: chunks are taken in order, so it is not waiting on c)."""
    cdef idx_t start = 0, back = c - 1
    cdef long long word
    while back >= 0:
        word = load_acquire(&status[back * STATUS_STRIDE])
        if word & INCLUSIVE:
            return start + (word >> 2)
        if word & AGGREGATE:
            start = start + (word >> 2)
            back = back - 1
        else:
            cpu_pause()
    return start


def spgemm_onepass(const idx_t[::1] a_crow, const idx_t[::1] a_col, const value_t[::1] a_val,
                   const idx_t[::1] b_crow, const idx_t[::1] b_col, const value_t[::1] b_val,
                   idx_t ncols, idx_t[::1] out_crow, idx_t[::1] out_col, value_t[::1] out_val,
                   int n_threads=1):
    """``C = A @ B`` in one pass, with no count first: each row of C is written packed
    after the one before, into output arrays long enough for C (a bound on its entries,
    such as its products, known before any product is formed).

    Simple version
    --------------
    The same result up to rounding; ``out_col[:out_crow[nrows]]`` and
    ``out_val[:out_crow[nrows]]`` are C's columns and values, the rest is left as it was::

        out_crow[0] = 0
        for i in range(len(a_crow) - 1):
            row = {}                                          # j -> C[i, j]
            for q in range(a_crow[i], a_crow[i + 1]):
                for r in range(b_crow[a_col[q]], b_crow[a_col[q] + 1]):
                    row[b_col[r]] = row.get(b_col[r], 0) + a_val[q] * b_val[r]
            out_crow[i + 1] = out_crow[i] + len(row)
            out_col[out_crow[i]:out_crow[i + 1]] = sorted(row)
            out_val[out_crow[i]:out_crow[i + 1]] = [row[j] for j in sorted(row)]

    Inputs
    ------
    a_crow, a_col, a_val
        A in CSR form, coalesced.
    b_crow, b_col, b_val
        B in CSR form, coalesced.
    ncols : int
        Number of columns of B.

    Outputs
    -------
    out_crow : int64[nrows + 1]
        Row pointers of C, as ``spgemm_symbolic`` counts them (``out_crow[0] = 0``).
    out_col : int64[at least nnz(C)]
        Columns of C in its first ``out_crow[nrows]`` entries, ascending within each row;
        the entries past them are left as they were.
    out_val : value[as long as out_col]
        Values of C in its first ``out_crow[nrows]`` entries, summed as in
        ``spgemm_numeric``.

    Preconditions
    -------------
    Columns of A in ``[0, ncols_a)``, of B in ``[0, ncols)``. ``out_col`` and ``out_val``
    hold C: C's products, the ``out_flops`` of ``spgemm_bounds`` summed, are always room
    enough. Shorter arrays raise ValueError, with nothing written past them.

    Complexity
    ----------
    As ``spgemm_numeric``, with its per-thread memory sized for rows of C of at most
    min(longest row of A x longest row of B, ncols) entries, plus a buffer per thread for
    one chunk of rows (its products, or its rows times that bound when this is at most
    131,072 entries); the symbolic pass is not needed, at the price of output arrays as
    long as the bound.

    Parallelism
    -----------
    The rows are cut into chunks (``row_chunk``), handed to the threads in order (an
    atomic counter). A thread writes its chunk's rows packed into its own buffer (in its
    cache), publishes their count, and adds up the counts of the chunks before it, looking
    back until it meets one that knows where it ends (waiting on one still being computed):
    that is where its chunk starts. It publishes where its chunk ends, copies the buffer
    there and moves the chunk's row pointers by the same amount. Each C[i, j] is summed in
    the order above on any number of threads: the same bits as the two passes.

    Reference
    ---------
    Gustavson 1978; the upper-bound allocation of one-pass SpGEMM: Nagasaka, Matsuoka,
    Azad and Buluç, "Performance optimization, modeling and analysis of sparse
    matrix-matrix products on multi-core and many-core processors", Parallel Computing
    90, 2019; the look-back: D. Merrill and M. Garland, "Single-pass parallel prefix scan
    with decoupled look-back", NVIDIA technical report NVR-2016-002, 2016.
    """
    cdef idx_t nrows = a_crow.shape[0] - 1
    cdef int n_workers = max(n_threads, 1)
    cdef idx_t i, j, q, c, r0, r1, n, start, a_longest = 0, b_longest = 0, longest
    cdef idx_t room = min(out_col.shape[0], out_val.shape[0])
    cdef idx_t stamp, products, capacity
    cdef long long next_chunk = 0, failed = 0, needed = 0
    cdef bint copy_streamed = CAN_STREAM and stream_copies
    cdef long long* status = NULL
    cdef idx_t* staged_col = NULL
    cdef value_t* staged_val = NULL
    cdef workspace w
    cdef int32_t* my_where = NULL
    cdef value_t* my_vals = NULL
    cdef value_t* my_dense = NULL
    cdef uint64_t* my_bits = NULL
    cdef uint64_t* my_keys = NULL
    cdef idx_t* my_runs = NULL
    cdef idx_t* my_ranks = NULL
    out_crow[0] = 0
    if nrows <= 0:
        return
    for i in range(nrows):
        a_longest = max(a_longest, a_crow[i + 1] - a_crow[i])
    for i in range(b_crow.shape[0] - 1):
        b_longest = max(b_longest, b_crow[i + 1] - b_crow[i])
    # a row of C has at most as many entries as its products, and at most ncols
    longest = min(a_longest * b_longest if a_longest == 0 or b_longest <= ncols // a_longest else ncols, ncols)
    cdef idx_t chunk = row_chunk(nrows, n_workers, a_crow[nrows] - a_crow[0], b_col.shape[0], b_crow.shape[0] - 1)
    cdef idx_t n_chunks = (nrows + chunk - 1) // chunk
    status = <long long*> calloc(n_chunks * STATUS_STRIDE, sizeof(long long))
    if status == NULL:
        raise MemoryError("spgemm_onepass: no memory for the chunks' counts")
    try:
        workspace_alloc(&w, ncols, longest, a_longest, n_workers, sizeof(value_t), "spgemm_onepass")
        with nogil, parallel(num_threads=n_workers):
            my_where = w.where + w.where_stride * omp_get_thread_num()
            my_vals = <value_t*> w.vals + w.vals_stride * omp_get_thread_num()
            my_dense = <value_t*> w.dense + w.where_stride * omp_get_thread_num() if w.dense != NULL else NULL
            my_bits = w.bits + w.bits_stride * omp_get_thread_num() if w.bits != NULL else NULL
            my_keys = w.keys + w.keys_stride * omp_get_thread_num()
            my_runs = w.runs + w.runs_stride * omp_get_thread_num()
            my_ranks = w.ranks + w.ranks_stride * omp_get_thread_num()
            stamp, capacity, staged_col, staged_val = 0, 0, NULL, NULL
            while True:
                c = fetch_add(&next_chunk, 1)
                if c >= n_chunks:
                    break
                r0, r1, n = c * chunk, min(nrows, (c + 1) * chunk), 0
                if r1 > r0 and longest <= stage_bound // (r1 - r0):
                    products = (r1 - r0) * longest  # room for the chunk: its rows' bound
                else:
                    products = 0  # room for the chunk: its products
                    for q in range(a_crow[r0], a_crow[r1]):
                        products = products + b_crow[a_col[q] + 1] - b_crow[a_col[q]]
                if products > capacity and load_acquire(&failed) == 0:
                    free(staged_col)
                    free(staged_val)
                    staged_col = <idx_t*> malloc(products * sizeof(idx_t))
                    staged_val = <value_t*> malloc(products * sizeof(value_t))
                    capacity = products
                    if staged_col == NULL or staged_val == NULL:
                        fetch_or(&failed, 1)
                if load_acquire(&failed) == 0:
                    for i in range(r0, r1):
                        if stamp > tag_limit - longest:  # the next row's slots could pass it
                            for j in range(ncols):
                                my_where[j] = -1
                            stamp = 0
                        q = fill_row(&a_col[0], &a_val[0], a_crow[i], a_crow[i + 1], a_col.shape[0], &b_crow[0],
                                     &b_col[0], &b_val[0], stamp, my_where, my_vals, my_dense, my_bits, my_keys, my_runs,
                                     my_ranks, w.rank_low, w.rank_high, staged_col + n, staged_val + n, False)
                        n = n + q - stamp
                        stamp = q
                        out_crow[i + 1] = n
                store_release(&status[c * STATUS_STRIDE], (n << 2) | AGGREGATE)
                start = look_back(status, c)
                store_release(&status[c * STATUS_STRIDE], ((start + n) << 2) | INCLUSIVE)
                if start + n > room:
                    store_release(&needed, start + n)  # (any thread's figure will do for the message)
                    fetch_or(&failed, 2)
                elif load_acquire(&failed) == 0:
                    if n > 0 and copy_streamed:  # (an empty chunk may have no buffer, and start may be past the arrays)
                        stream_copy(&out_col[start], staged_col, n * sizeof(idx_t))
                        stream_copy(&out_val[start], staged_val, n * sizeof(value_t))
                    elif n > 0:
                        memcpy(&out_col[start], staged_col, n * sizeof(idx_t))
                        memcpy(&out_val[start], staged_val, n * sizeof(value_t))
                    for i in range(r0, r1):
                        out_crow[i + 1] = out_crow[i + 1] + start
            if copy_streamed:  # each thread's streaming stores are done before the region ends
                store_fence()
            free(staged_col)
            free(staged_val)
    finally:
        free(status)
        workspace_free(&w)
    if failed & 1:
        raise MemoryError("spgemm_onepass: no memory for a chunk's rows")
    if failed & 2:
        raise ValueError(f"spgemm_onepass: the output arrays hold {room} entries, fewer than C has "
                         f"(at least {needed})")


cdef inline value_t masked_dot(const idx_t* x_col, const value_t* x_val, idx_t s, idx_t s_end,
                               const idx_t* y_col, const value_t* y_val, idx_t t,
                               idx_t t_end) noexcept nogil:
    cdef value_t acc = 0
    while s < s_end and t < t_end:
        if x_col[s] < y_col[t]:
            s += 1
        elif y_col[t] < x_col[s]:
            t += 1
        else:
            acc = acc + mul(x_val[s], y_val[t])
            s += 1
            t += 1
    return acc


def spgemm_masked(const idx_t[::1] p_row, const idx_t[::1] p_col, const idx_t[::1] x_crow,
                  const idx_t[::1] x_col, const value_t[::1] x_val, const idx_t[::1] y_crow,
                  const idx_t[::1] y_col, const value_t[::1] y_val, value_t[::1] out,
                  int n_threads=1):
    """Masked sparse-sparse product: ``out[p] = sum_c x[p_row[p], c] * y[p_col[p], c]``.

    The entries of ``X @ Y^T`` at the sampled positions only, for sparse X and Y: the
    backward of SpGEMM (``grad_A = mask(G @ B^H, A)`` with X = G, Y = conj(B); and
    ``grad_B = mask(A^H @ G, B)`` with X = A^H, Y = G^T, both in CSR form).

    Simple version
    --------------
    The same result up to rounding, once the outputs are set to zero (the kernel does
    not need that: it writes every element)::

        for p in range(len(p_row)):
            i, k = p_row[p], p_col[p]
            for s in range(x_crow[i], x_crow[i + 1]):         # x[i, c] ...
                for t in range(y_crow[k], y_crow[k + 1]):     # ... meets y[k, c]
                    if x_col[s] == y_col[t]:
                        out[p] += x_val[s] * y_val[t]

    Inputs
    ------
    p_row, p_col : int64[nnz]
        The sampled positions.
    x_crow, x_col, x_val
        X in CSR form, coalesced (columns ascending within each row).
    y_crow, y_col, y_val
        Y in CSR form, coalesced; X and Y have the same number of columns.

    Outputs
    -------
    out : value[nnz]
        ``out[p] = ((0 + x[i, c0] * y[k, c0]) + x[i, c1] * y[k, c1]) + ...`` over the
        columns c0 < c1 < ... stored in both row i = p_row[p] of X and row k = p_col[p] of
        Y (a merge of the two sorted rows). No common column gives 0.

    Preconditions
    -------------
    Rows in range; both matrices coalesced.

    Complexity
    ----------
    O(sum over p of (length of row i of X + length of row k of Y)) time, no extra memory:
    never the dense product.

    Parallelism
    -----------
    A ``prange`` over sampled positions; each output is independent.
    """
    cdef idx_t nnz = p_row.shape[0]
    cdef idx_t p, i, k
    cdef const idx_t* xc = &x_col[0] if x_col.shape[0] > 0 else NULL
    cdef const value_t* xv = &x_val[0] if x_val.shape[0] > 0 else NULL
    cdef const idx_t* yc = &y_col[0] if y_col.shape[0] > 0 else NULL
    cdef const value_t* yv = &y_val[0] if y_val.shape[0] > 0 else NULL
    if nnz == 0:
        return
    with nogil:
        for p in prange(nnz, schedule="dynamic", chunksize=dynamic_chunk(nnz, n_threads), num_threads=max(n_threads, 1)):
            i = p_row[p]
            k = p_col[p]
            out[p] = masked_dot(xc, xv, x_crow[i], x_crow[i + 1], yc, yv, y_crow[k], y_crow[k + 1])

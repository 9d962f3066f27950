"""Sparse x dense (SpMM): ``out = A @ B`` for a CSR matrix A and a dense matrix B, and the
row-wise reductions ``reduce='sum' | 'mean' | 'amax' | 'amin'``.
Typed twin of ``sparse_ref/reference/spmm.py``.
"""

from cython.parallel cimport parallel, prange

from libc.stdint cimport int32_t, int64_t

from sparse_ref._kernels._arith cimport div_count, mul
from sparse_ref._kernels._types cimport idx_t, prefetch, value_t

__all__ = ["spmm", "spmm_reduce", "spmv"]

# float64 and float32 rows run in C with vectors as wide as the CPU has (AVX-512, AVX2 or
# SSE2, chosen at run time); each lane is one column of the output and adds in the order
# of spmm_row below, so the bits are the same on every level (_simd.h says how).
cdef extern from "_simd.h":
    void simd_row_f64 "sr_spmm_row_f64"(const idx_t* col, const double* val, idx_t start,
                                        idx_t end, idx_t nnz, const double* b, idx_t n,
                                        idx_t j0, idx_t j1, double* out, int stream) noexcept nogil
    void simd_row_f32 "sr_spmm_row_f32"(const idx_t* col, const float* val, idx_t start,
                                        idx_t end, idx_t nnz, const float* b, idx_t n,
                                        idx_t j0, idx_t j1, float* out, int stream) noexcept nogil
    void simd_rows_f64 "sr_spmm_rows_f64"(const idx_t* crow, const idx_t* col, const double* val,
                                          idx_t nnz, const double* b, idx_t n, idx_t j0, idx_t j1,
                                          double* out, idx_t lo, idx_t hi, int stream) noexcept nogil
    void simd_rows_f32 "sr_spmm_rows_f32"(const idx_t* crow, const idx_t* col, const float* val,
                                          idx_t nnz, const float* b, idx_t n, idx_t j0, idx_t j1,
                                          float* out, idx_t lo, idx_t hi, int stream) noexcept nogil
    int fixed_vectors "sr_spmm_fixed_vectors"(const void* b, idx_t row_bytes) noexcept nogil
    idx_t reduce_pick_f32 "sr_reduce_pick_f32"(const idx_t* col, const float* val, idx_t start,
                                              idx_t end, idx_t nnz, const float* b, idx_t n,
                                              int amin, float* out, idx_t* arg) noexcept nogil
    idx_t reduce_pick_f64 "sr_reduce_pick_f64"(const idx_t* col, const double* val, idx_t start,
                                              idx_t end, idx_t nnz, const double* b, idx_t n,
                                              int amin, double* out, idx_t* arg) noexcept nogil
    void store_fence "sr_store_fence"() noexcept nogil
    void simd_set_prefetch "sr_set_prefetch"(idx_t ahead, idx_t nbytes, idx_t from_line,
                                             idx_t ahead_narrow, idx_t ahead_tiny,
                                             idx_t outer, idx_t band) noexcept nogil
    int cpu_is_amd "sr_cpu_is_amd"() noexcept nogil
    idx_t get_prefetch_outer "sr_get_prefetch_outer"() noexcept nogil
    int outer_hint "sr_outer_hint"(idx_t reach, const idx_t* col, idx_t start, idx_t end) noexcept nogil

include "_simd.pxi"
include "_args.pxi"


def _set_prefetch(idx_t ahead, idx_t nbytes, bint from_line=True, idx_t ahead_narrow=20,
                  idx_t ahead_tiny=40, int outer=-1, idx_t band=4096):
    """Tuning hook for benchmarks (not public API): the float rows ask for the row of B
    of the entry ``ahead`` places on (``ahead_narrow`` for rows under 512 bytes,
    ``ahead_tiny`` for rows of 128 bytes or less), every cache line its first ``nbytes``
    touch; defaults 10, 20, 40 and 512. ``from_line=False`` asks for lines from the row's
    first byte on instead, as before (one line short when a row does not start on a
    line). ``outer=1`` asks for the lines of rows of B of 64 to 511 bytes with locality 1
    (x86's prefetcht2) instead of into every level of cache (prefetcht0, ``outer=0``),
    except in rows of A of two or more entries whose columns span fewer than ``band``
    rows of B; ``outer=-1``, the default: 1 on an AMD CPU, else 0 (_simd.h says why)."""
    simd_set_prefetch(max(ahead, 1), max(nbytes, 0), from_line, max(ahead_narrow, 1), max(ahead_tiny, 1),
                      outer, max(band, 0))


def _prefetch_outer():
    """Test hook: (the hint in use, this CPU's default): 1 when the float rows ask for
    narrow rows of B with prefetcht2, 0 for prefetcht0."""
    return get_prefetch_outer(), cpu_is_amd()


def _outer_hint(idx_t reach, const idx_t[::1] row_cols):
    """Test hook: 1 when a row of A with these columns asks for ``reach`` bytes of each
    row of B with prefetcht2 under the current settings, else 0."""
    cdef idx_t dummy = 0
    return outer_hint(reach, &row_cols[0] if row_cols.shape[0] > 0 else &dummy, 0, row_cols.shape[0])



# _gathers_only's loop, in C as the float rows are: the loads of one thread's share of the
# entries, nothing else in the way.
cdef extern from *:
    """
    static unsigned long long sr_gather_share(const int64_t* col, int64_t lo, int64_t hi, int64_t nnz,
                                              const unsigned char* b, int64_t rows, int64_t width,
                                              int64_t ahead, int* bad) {
        /* every line of a row: its first byte's, one each 64 bytes on, and (when rows are
           not whole lines apart, or B does not start on a line) its last byte's; a column
           that is not a row of B is skipped and flagged in *bad (checked here, in the
           threads, rather than in a pass of its own that would read A once more first) */
        unsigned long long seen = 0;
        int64_t q, off, last = width - 1;
        int extra = !(width % 64 == 0 && (uintptr_t)b % 64 == 0);
        for (q = lo; q < hi; q++) {
            const unsigned char* row;
            if ((uint64_t)col[q] >= (uint64_t)rows) {
                __atomic_store_n(bad, 1, __ATOMIC_RELAXED);
                continue;
            }
            row = b + col[q] * width;
            if (ahead > 0 && q + ahead < nnz && (uint64_t)col[q + ahead] < (uint64_t)rows) {
                const unsigned char* next = b + col[q + ahead] * width;
                for (off = 0; off < width; off += 64) SPARSE_REF_PREFETCH(next + off);
                if (extra) SPARSE_REF_PREFETCH(next + last);
            }
            for (off = 0; off < width; off += 64) seen += row[off];
            if (extra) seen += row[last];
        }
        return seen;
    }
    """
    unsigned long long gather_share "sr_gather_share"(const idx_t* col, idx_t lo, idx_t hi, idx_t nnz,
                                                      const unsigned char* b, idx_t rows, idx_t width,
                                                      idx_t ahead, int* bad) noexcept nogil


cdef enum:
    GATHER_SHARE = 16384


def _gathers_only(const idx_t[::1] a_col, const unsigned char[:, ::1] b, idx_t ahead=0, int n_threads=1):
    """Benchmark hook (not public API): read every cache line of the rows of ``b`` (B's
    bytes, one row per row of B) that ``spmm`` gathers for A's columns ``a_col``, in that
    order, and nothing else: no product, no sum, no output. Asks for the row of the entry
    ``ahead`` places on (0: no prefetch) as ``spmm`` does; ``n_threads`` threads take
    the entries GATHER_SHARE at a time (dynamic schedule: a thread the host preempts holds
    up no more than that). Returns the sum of the bytes read (at offsets 0, 64, 128, ...
    of each row, and its last byte when rows are not whole lines apart or ``b`` does not
    start on one), so that the reads are kept. Its time, at the best ``ahead``, is what
    the wait for B's lines alone costs: benchmarks/bench_products.py records it with each
    SpMM (``gathers_only_ms``), to show how much of ``spmm``'s time is that wait."""
    cdef idx_t nnz = a_col.shape[0], rows = b.shape[0], width = b.shape[1], q, t, share
    cdef int nt = max(n_threads, 1)
    cdef unsigned long long seen = 0
    cdef int bad = 0
    if nnz == 0 or width == 0:
        return 0
    share = GATHER_SHARE
    with nogil:
        for t in prange((nnz + share - 1) // share, schedule="dynamic", num_threads=nt):
            seen += gather_share(&a_col[0], t * share, min(t * share + share, nnz), nnz, &b[0, 0], rows,
                                 width, ahead, &bad)
    if bad:
        for q in range(nnz):
            if a_col[q] < 0 or a_col[q] >= rows:
                raise ValueError(f"_gathers_only: column {a_col[q]} at {q} is not a row of b ({rows} rows)")
    return seen


_set_prefetch(10, 512)  # the defaults, with this CPU's choice of hint

REDUCTIONS = ("sum", "mean", "amax", "amin")

cdef enum:
    SUM = 0
    MEAN = 1
    AMAX = 2
    AMIN = 3

# Column blocks ("tiling"): when B is larger than CACHE_BYTES, the columns of B can be
# processed in blocks of CACHE_BYTES // (rows of B * item size) columns (never fewer than
# MIN_BLOCK_BYTES' worth), so that the rows of B one block touches stay in the cache.
# Measured on the benchmark machine (2 cores, 1 MiB L2 per core, 32 MiB L3), every budget
# tried (8-24 MiB, blocks of 128 B to 2 KiB per row) was slower than one pass, because
# each block streams A and the output once more: uniform n = 200,000, k = 64, 2 threads,
# 72 ms in one pass, 80-122 ms tiled; k = 1024 (n = 50,000): 274 ms vs 319-354 ms. So
# tiling is off by default (CACHE_BYTES = 0); benchmarks/bench_products.py can turn it
# on to repeat the measurement. Blocks never change the order of additions of an element.
cdef Py_ssize_t CACHE_BYTES = 0
cdef Py_ssize_t MIN_BLOCK_BYTES = 512


def _set_blocking(Py_ssize_t cache_bytes, Py_ssize_t min_block_bytes):
    """Tuning hook for benchmarks and tests (not public API): ``cache_bytes = 0`` turns
    column blocks off."""
    global CACHE_BYTES, MIN_BLOCK_BYTES
    CACHE_BYTES = cache_bytes
    MIN_BLOCK_BYTES = min_block_bytes


cdef idx_t column_block(idx_t k_rows, idx_t n, Py_ssize_t itemsize) noexcept nogil:
    cdef idx_t least = max(MIN_BLOCK_BYTES // itemsize, 1)
    cdef idx_t width
    if CACHE_BYTES <= 0 or k_rows * n * itemsize <= CACHE_BYTES or k_rows == 0:
        return max(n, 1)
    width = max(CACHE_BYTES // (k_rows * itemsize), least)
    width = (width + least - 1) // least * least
    return min(width, n)


# Rows of B are gathered in a random order; the kernel asks for the row of the entry this
# many positions ahead (possibly in the next row of A) before it needs it.
cdef enum:
    AHEAD = 6


cdef inline void spmm_row(const idx_t* a_col, const value_t* a_val, idx_t start, idx_t end,
                          idx_t nnz, const value_t* b, idx_t n, idx_t j0, idx_t j1,
                          value_t* out_row, int stream) noexcept nogil:
    cdef idx_t q, j
    cdef value_t a
    cdef const value_t* b_row
    cdef const char* ahead
    cdef Py_ssize_t line, row_bytes = (j1 - j0) * sizeof(value_t)
    cdef value_t acc = 0
    if j1 - j0 == 1:
        # one column (a matrix-vector product): keep the running sum in a register
        for q in range(start, end):
            acc = acc + mul(a_val[q], b[a_col[q] * n + j0])
        out_row[j0] = acc
        return
    if value_t is double:  # vectors as wide as the CPU has, the same order (_simd.h)
        simd_row_f64(a_col, a_val, start, end, nnz, b, n, j0, j1, out_row, stream)
    elif value_t is float:
        simd_row_f32(a_col, a_val, start, end, nnz, b, n, j0, j1, out_row, stream)
    else:
        for j in range(j0, j1):
            out_row[j] = 0
        for q in range(start, end):
            if q + AHEAD < nnz:
                ahead = <const char*> (b + a_col[q + AHEAD] * n + j0)
                for line in range(0, row_bytes, 64):
                    prefetch(ahead + line)
            a = a_val[q]
            b_row = b + a_col[q] * n
            for j in range(j0, j1):
                out_row[j] = out_row[j] + mul(a, b_row[j])


# The rows go to the threads in blocks of up to ROWS_PER_TASK rows (guided schedule: each
# thread gets long runs of neighbouring rows, whose rows of B a band matrix shares, so they
# stay in that core's L2. The dynamic schedule of SpGEMM and coalesce, _types.pxd, was
# mostly 0.92-0.95x here on a quiet machine on the Laplacian at k = 16 (0.89-1.10x in
# seven runs), 0.97-1.04x on the uniform matrix; with one core busy its medians scattered
# from 0.69x to 2.9x, calls of 1-20 ms against time slices of a few ms: bench_levers.py
# "dynamic schedule"), and
# the float rows to C a block at a time (sr_spmm_rows_*), so that the SIMD level is chosen
# and the row loop's width is fixed once per block rather than once per row. A matrix of
# few rows gets smaller blocks, at least 4 per thread (down to one row), so that every
# thread has work. The order of each element's additions is the row's own, so blocks
# change no bit.
cdef enum:
    ROWS_PER_TASK = 64


cdef inline idx_t rows_per_task(idx_t nrows, int n_threads) noexcept nogil:
    cdef idx_t most = (nrows + 4 * n_threads - 1) // (4 * n_threads)
    return max(min(<idx_t>ROWS_PER_TASK, most), 1)


cdef inline void spmm_rows(const idx_t* a_crow, const idx_t* a_col, const value_t* a_val,
                           idx_t nnz, const value_t* b, idx_t n, idx_t j0, idx_t j1,
                           value_t* out, idx_t lo, idx_t hi, int stream) noexcept nogil:
    cdef idx_t i
    if value_t is double and j1 - j0 > 1:
        simd_rows_f64(a_crow, a_col, a_val, nnz, b, n, j0, j1, out, lo, hi, stream)
    elif value_t is float and j1 - j0 > 1:
        simd_rows_f32(a_crow, a_col, a_val, nnz, b, n, j0, j1, out, lo, hi, stream)
    else:
        for i in range(lo, hi):
            spmm_row(a_col, a_val, a_crow[i], a_crow[i + 1], nnz, b, n, j0, j1, out + i * n, stream)


# Streaming stores: the float rows write their block of ``out`` straight to memory (x86's
# non-temporal stores), without first reading each line of ``out`` into the cache and
# without pushing rows of B out of it. Same values, same bits: only the store instruction
# changes. Measured (benchmarks/bench_levers.py, "streaming stores") on rows of B of 64 to
# 256 bytes, where each stored entry fetches one to four lines of B (two runs): k = 16
# float32 1.26-1.44x on the random matrices, float64 1.02-1.11x, the Laplacian 1.02-1.32x;
# rows of 512 bytes and more, streamed through ``_set_stream(4096)``, were 0.8-1.05x (the
# Laplacian k = 64 float64 0.84x, k = 256 0.82x), so they keep cached stores. An output under
# STREAM_MIN_BYTES (4 MiB) is likely to be read again from the cache soon, and the
# library's own outputs of that size start on a 2 MiB page (_pool.h), so on a line, while
# the output cache is on (the default; with it off, an output is streamed only when
# malloc happens to start it on a line: a fresh mmap starts 16 bytes into one).
cdef Py_ssize_t STREAM_ROW_BYTES = 256
cdef Py_ssize_t STREAM_MIN_BYTES = 4 << 20


def _set_stream(Py_ssize_t row_bytes, Py_ssize_t min_bytes=4 << 20):
    """Tuning hook for benchmarks and tests (not public API): stream rows of ``out`` of at
    most ``row_bytes`` (0: never) when ``out`` has ``min_bytes`` or more; defaults 256
    and 4 MiB. Returns the previous pair."""
    global STREAM_ROW_BYTES, STREAM_MIN_BYTES
    previous = (STREAM_ROW_BYTES, STREAM_MIN_BYTES)
    STREAM_ROW_BYTES, STREAM_MIN_BYTES = row_bytes, min_bytes
    return previous


cdef bint streams(idx_t nrows, idx_t n, Py_ssize_t itemsize, idx_t width, const void* out) noexcept nogil:
    """Whether spmm streams ``out``: whole rows of whole cache lines (each starting on a line),
    at most STREAM_ROW_BYTES each, STREAM_MIN_BYTES in all, no column blocks."""
    cdef Py_ssize_t row_bytes = n * itemsize
    return (width == n and row_bytes % 64 == 0 and row_bytes <= STREAM_ROW_BYTES
            and nrows * row_bytes >= STREAM_MIN_BYTES and (<size_t> out) % 64 == 0)


cdef bint last_streamed = False


def _last_streamed():
    """For tests (not public API): whether this module's last ``spmm`` call used streaming
    stores (one module-wide flag: meaningful when no other thread calls ``spmm``)."""
    return bool(last_streamed)


def _streams(value_t[:, ::1] out):
    """For tests (not public API): whether ``spmm`` into ``out`` would use streaming stores
    (column blocks off, as by default)."""
    if value_t is double or value_t is float:
        return out.shape[0] > 0 and out.shape[1] > 0 and streams(
            out.shape[0], out.shape[1], sizeof(value_t), out.shape[1], &out[0, 0])
    return False


def _fixed_vectors(const value_t[:, ::1] b):
    """For tests (not public API): how many vectors wide the loop compiled for one width is
    that ``spmm`` runs for whole rows of ``b`` (0: the general loop, which takes any width).
    The vectors are those of the level the rows run at (_simd.h's sr_rows_level): the
    current one, or for rows of 16 or 32 bytes the level whose vector they fill (8 floats
    under AVX-512: one AVX2 vector)."""
    if value_t is double or value_t is float:
        if b.shape[0] > 0 and b.shape[1] > 1:
            return fixed_vectors(&b[0, 0], b.shape[1] * sizeof(value_t))
    return 0


cdef bint use_spmv = True


def _set_spmv(bint on):
    """Tuning hook for benchmarks (not public API): whether one column takes ``spmv``
    (the default) or the general row loop; returns the previous setting."""
    global use_spmv
    previous = use_spmv
    use_spmv = on
    return previous


# Column indices of one of two widths: spmv also takes int32 (_tensor's cached copy of a
# CSR matrix's columns), so that a matrix-vector product, which reads little else, reads 4
# bytes less per stored entry.
ctypedef fused col_t:
    int32_t
    int64_t


cdef void spmv_rows(const idx_t* a_crow, const col_t* a_col, const value_t* a_val, idx_t nrows,
                    const value_t* x, value_t* out, int n_threads) noexcept nogil:
    """``out[i] = ((0 + a_val[q0] * x[k0]) + a_val[q1] * x[k1]) + ...`` over row i: the
    order of ``spmm_row`` for one column. Rows of a few entries (a stencil's 5) cost about
    as much to set up as to sum, so this loop does nothing else per row. float32 and
    float64 rows run in C (spmv_block), blocks of rows_per_task rows at a time."""
    cdef idx_t i, t, per, tasks
    if value_t is float or value_t is double:
        per = rows_per_task(nrows, max(n_threads, 1))
        tasks = (nrows + per - 1) // per
        if n_threads <= 1:
            spmv_block(a_crow, a_col, a_val, x, out, 0, nrows)
        else:
            for t in prange(tasks, schedule="guided", num_threads=n_threads):
                spmv_block(a_crow, a_col, a_val, x, out, t * per, min(t * per + per, nrows))
    elif n_threads <= 1:  # no parallel region at all, as in spmm
        for i in range(nrows):
            out[i] = spmv_row(a_col, a_val, a_crow[i], a_crow[i + 1], x)
    else:
        for i in prange(nrows, schedule="guided", num_threads=n_threads):
            out[i] = spmv_row(a_col, a_val, a_crow[i], a_crow[i + 1], x)


# spmv's rows for float32 and float64 in C, in loops the compiler must not turn into
# vectors: for int32 columns and float32 values GCC 12 multiplied 4 entries at a time
# (the sums still one after another, so the same bits), and a stencil's rows of 3 to 5
# entries then paid for the vector loop's setup: 0.81-0.89x against int64 columns on the
# Laplacian, where it does not vectorize; scalar, int32 columns were 1.07-1.24x faster
# than int64 for float32 and float64 (uniform and Laplacian, 1 and 2 threads).
cdef extern from *:
    """
    #if defined(__GNUC__) && !defined(__clang__)
    #define SR_SCALAR __attribute__((optimize("no-tree-vectorize")))
    #else
    #define SR_SCALAR
    #endif
    #define SR_SPMV_BLOCK(NAME, T, C)                                                        \
        SR_SCALAR static void NAME(const int64_t* crow, const C* col, const T* val,          \
                                   const T* x, T* out, int64_t lo, int64_t hi) {             \
            int64_t i, q;                                                                    \
            for (i = lo; i < hi; i++) {                                                      \
                T acc = 0;                                                                   \
                for (q = crow[i]; q < crow[i + 1]; q++) acc = acc + val[q] * x[col[q]];      \
                out[i] = acc;                                                                \
            }                                                                                \
        }
    SR_SPMV_BLOCK(sr_spmv_block_f32_i32, float, int32_t)
    SR_SPMV_BLOCK(sr_spmv_block_f32_i64, float, int64_t)
    SR_SPMV_BLOCK(sr_spmv_block_f64_i32, double, int32_t)
    SR_SPMV_BLOCK(sr_spmv_block_f64_i64, double, int64_t)
    """
    void spmv_block_f32_i32 "sr_spmv_block_f32_i32"(const idx_t* crow, const int32_t* col, const float* val,
                                                    const float* x, float* out, idx_t lo, idx_t hi) noexcept nogil
    void spmv_block_f32_i64 "sr_spmv_block_f32_i64"(const idx_t* crow, const int64_t* col, const float* val,
                                                    const float* x, float* out, idx_t lo, idx_t hi) noexcept nogil
    void spmv_block_f64_i32 "sr_spmv_block_f64_i32"(const idx_t* crow, const int32_t* col, const double* val,
                                                    const double* x, double* out, idx_t lo, idx_t hi) noexcept nogil
    void spmv_block_f64_i64 "sr_spmv_block_f64_i64"(const idx_t* crow, const int64_t* col, const double* val,
                                                    const double* x, double* out, idx_t lo, idx_t hi) noexcept nogil


cdef inline void spmv_block(const idx_t* a_crow, const col_t* a_col, const value_t* a_val, const value_t* x,
                            value_t* out, idx_t lo, idx_t hi) noexcept nogil:
    """Rows lo <= i < hi of ``spmv_rows`` (float32 and float64 only), in C."""
    if value_t is float:
        if col_t is int32_t:
            spmv_block_f32_i32(a_crow, a_col, a_val, x, out, lo, hi)
        else:
            spmv_block_f32_i64(a_crow, a_col, a_val, x, out, lo, hi)
    elif value_t is double:
        if col_t is int32_t:
            spmv_block_f64_i32(a_crow, a_col, a_val, x, out, lo, hi)
        else:
            spmv_block_f64_i64(a_crow, a_col, a_val, x, out, lo, hi)


cdef inline value_t spmv_row(const col_t* a_col, const value_t* a_val, idx_t start, idx_t end,
                             const value_t* x) noexcept nogil:
    cdef idx_t q
    cdef value_t acc = 0
    for q in range(start, end):
        acc = acc + mul(a_val[q], x[a_col[q]])
    return acc


cdef void spmv_typed(int t, const idx_t* a_crow, const col_t* a_col, const void* a_val, idx_t nrows,
                     const void* x, void* out, int n_threads) noexcept nogil:
    """``spmv_rows`` for the value type ``t`` (a NumPy type number of VALUE_TYPES)."""
    if t == cnp.NPY_FLOAT64:
        spmv_rows(a_crow, a_col, <const double*>a_val, nrows, <const double*>x, <double*>out, n_threads)
    elif t == cnp.NPY_FLOAT32:
        spmv_rows(a_crow, a_col, <const float*>a_val, nrows, <const float*>x, <float*>out, n_threads)
    elif t == cnp.NPY_COMPLEX128:
        spmv_rows(a_crow, a_col, <const double complex*>a_val, nrows, <const double complex*>x,
                  <double complex*>out, n_threads)
    elif t == cnp.NPY_COMPLEX64:
        spmv_rows(a_crow, a_col, <const float complex*>a_val, nrows, <const float complex*>x,
                  <float complex*>out, n_threads)
    elif t == cnp.NPY_INT64:
        spmv_rows(a_crow, a_col, <const int64_t*>a_val, nrows, <const int64_t*>x, <int64_t*>out, n_threads)
    else:
        spmv_rows(a_crow, a_col, <const int32_t*>a_val, nrows, <const int32_t*>x, <int32_t*>out, n_threads)


# spmm's and spmm_reduce's arrays once checked: they are checked as ``const int64[::1]``
# a_crow and a_col, ``const value[::1]`` a_val, ``const value[:, ::1]`` b and
# ``value[:, ::1]`` out would be (_args.pxi says why not with memoryviews), with the
# lengths they share; then the value type ``t`` picks the typed body.
cdef struct Operands:
    int t
    const idx_t* crow
    const idx_t* col
    const void* val
    const void* b
    void* out
    idx_t nrows, nnz, b_rows, n


cdef int operands(Operands* o, a_crow, a_col, a_val, b, out) except -1:
    o.t = value_type(a_val, "a_val")
    o.crow = <const idx_t*>data(a_crow, cnp.NPY_INT64, 1, False, "a_crow")
    o.col = <const idx_t*>data(a_col, cnp.NPY_INT64, 1, False, "a_col")
    o.val = data(a_val, o.t, 1, False, "a_val")
    o.b = data(b, o.t, 2, False, "b", "a_val")
    o.out = data(out, o.t, 2, True, "out", "a_val")
    o.nrows, o.nnz, o.b_rows, o.n = length(a_crow, 0) - 1, length(a_col, 0), length(b, 0), length(b, 1)
    sized(a_val, o.nnz, -1, "a_val", "one value per column in a_col")
    if o.nrows >= 0:
        sized(out, o.nrows, o.n, "out", "a row per row of A, a column per column of b")
    return 0


def spmm(a_crow, a_col, a_val, b, out, int n_threads=1):
    """Sparse times dense: ``out[i, :] = sum_q a_val[q] * b[a_col[q], :]`` over row i.

    Simple version
    --------------
    The same result up to rounding, once the outputs are set to zero (the kernel does
    not need that: it writes every element)::

        for i in range(len(a_crow) - 1):
            for q in range(a_crow[i], a_crow[i + 1]):
                out[i] += a_val[q] * b[a_col[q]]

    Inputs
    ------
    a_crow : int64[nrows + 1]
        Row pointers of A.
    a_col : int64[nnz]
        Columns of A, ascending within each row (A is coalesced).
    a_val : value[nnz]
        Values of A.
    b : value[ncols_a, n], C-contiguous
        The dense matrix B.

    Outputs
    -------
    out : value[nrows, n], C-contiguous
        ``out[i, j] = ((0 + a_val[q0] * b[k0, j]) + a_val[q1] * b[k1, j]) + ...`` over the
        stored entries q0 < q1 < ... of row i, in that order: one multiply and one add each.
        Empty rows give 0. Every element of ``out`` is written.

    Preconditions
    -------------
    Columns in ``[0, ncols_a)``; ``b`` and ``out`` do not overlap; same value type.

    Complexity
    ----------
    O(nnz * n + nrows * n) time, no extra memory.

    Parallelism
    -----------
    A ``prange`` over blocks of up to 64 rows of A (guided schedule, since rows differ in
    length; smaller blocks when A has few rows, at least 4 per thread); a row's work is
    sequential, so every element of ``out`` sees the same order of additions on any
    number of threads. The kernel can split the columns of B into blocks that fit
    in the cache (off by default: measured slower here); blocks change which element is
    computed when, never the order of additions within an element.

    Reference
    ---------
    The row-by-row product of CSR and dense matrices, as in SciPy's ``csr_matvecs``.
    """
    cdef Operands o
    operands(&o, a_crow, a_col, a_val, b, out)
    with nogil:
        if o.t == cnp.NPY_FLOAT64:
            spmm_typed(o.crow, o.col, <const double*>o.val, o.nrows, o.nnz,
                       <const double*>o.b, o.b_rows, o.n, <double*>o.out, n_threads)
        elif o.t == cnp.NPY_FLOAT32:
            spmm_typed(o.crow, o.col, <const float*>o.val, o.nrows, o.nnz,
                       <const float*>o.b, o.b_rows, o.n, <float*>o.out, n_threads)
        elif o.t == cnp.NPY_COMPLEX128:
            spmm_typed(o.crow, o.col, <const double complex*>o.val, o.nrows, o.nnz,
                       <const double complex*>o.b, o.b_rows, o.n,
                       <double complex*>o.out, n_threads)
        elif o.t == cnp.NPY_COMPLEX64:
            spmm_typed(o.crow, o.col, <const float complex*>o.val, o.nrows, o.nnz,
                       <const float complex*>o.b, o.b_rows, o.n,
                       <float complex*>o.out, n_threads)
        elif o.t == cnp.NPY_INT64:
            spmm_typed(o.crow, o.col, <const int64_t*>o.val, o.nrows, o.nnz,
                       <const int64_t*>o.b, o.b_rows, o.n, <int64_t*>o.out, n_threads)
        else:
            spmm_typed(o.crow, o.col, <const int32_t*>o.val, o.nrows, o.nnz,
                       <const int32_t*>o.b, o.b_rows, o.n, <int32_t*>o.out, n_threads)


def spmv(a_crow, a_col, a_val, b, out, int n_threads=1):
    """Sparse matrix times one column: ``spmm`` for a ``b`` of one column, whose column
    indices may be int32 as well as int64.

    Simple version
    --------------
    The same result up to rounding::

        for i in range(len(a_crow) - 1):
            out[i, 0] = sum(a_val[q] * b[a_col[q], 0] for q in range(a_crow[i], a_crow[i + 1]))

    Inputs
    ------
    a_crow : int64[nrows + 1]
        Row pointers of A.
    a_col : int32[nnz] or int64[nnz]
        Columns of A, ascending within each row (A is coalesced). A product with one
        column reads little besides A's arrays (a value per entry, and the vector, mostly
        from the cache), so int32 columns, 4 bytes less per entry, make it faster.
    a_val : value[nnz]
        Values of A.
    b : value[ncols_a, 1], C-contiguous
        The vector, as a matrix of one column.

    Outputs
    -------
    out : value[nrows, 1], C-contiguous
        ``out[i, 0] = ((0 + a_val[q0] * b[k0, 0]) + a_val[q1] * b[k1, 0]) + ...`` over the
        stored entries q0 < q1 < ... of row i, in that order: ``spmm``'s sums, bit for bit,
        empty rows giving 0.

    Preconditions
    -------------
    As ``spmm``'s.

    Complexity
    ----------
    O(nnz + nrows) time, no extra memory.

    Parallelism
    -----------
    A ``prange`` over blocks of up to 64 rows of A (guided schedule); a row's sum is
    sequential, so ``out`` has the same bits on any number of threads.

    Reference
    ---------
    SciPy's ``csr_matvec``, which also reads int32 indices when they fit.
    """
    cdef int t = value_type(a_val, "a_val")
    cdef bint narrow = cnp.PyArray_Check(a_col) and cnp.PyArray_EquivTypenums(
        cnp.PyArray_TYPE(<cnp.ndarray>a_col), cnp.NPY_INT32)
    if cnp.PyArray_Check(a_col) and not narrow and not cnp.PyArray_EquivTypenums(
            cnp.PyArray_TYPE(<cnp.ndarray>a_col), cnp.NPY_INT64):
        raise TypeError(f"a_col: expected int32 or int64, got {a_col.dtype}")
    cdef const idx_t* crow = <const idx_t*>data(a_crow, cnp.NPY_INT64, 1, False, "a_crow")
    cdef const void* col = data(a_col, cnp.NPY_INT32 if narrow else cnp.NPY_INT64, 1, False, "a_col")
    cdef const void* val = data(a_val, t, 1, False, "a_val")
    cdef const void* x = data(b, t, 2, False, "b", "a_val")
    cdef void* y = data(out, t, 2, True, "out", "a_val")
    cdef idx_t nrows = length(a_crow, 0) - 1
    sized(a_val, length(a_col, 0), -1, "a_val", "one value per column in a_col")
    sized(b, length(b, 0), 1, "b", "one column")
    if nrows >= 0:
        sized(out, nrows, 1, "out", "a row per row of A, one column")
    if nrows <= 0:
        return
    with nogil:
        if narrow:
            spmv_typed(t, crow, <const int32_t*>col, val, nrows, x, y, max(n_threads, 1))
        else:
            spmv_typed(t, crow, <const int64_t*>col, val, nrows, x, y, max(n_threads, 1))


cdef void spmm_typed(const idx_t* a_crow, const idx_t* a_col, const value_t* a_val, idx_t nrows, idx_t nnz,
                     const value_t* b, idx_t b_rows, idx_t n, value_t* out, int n_threads) noexcept nogil:
    """``spmm`` on checked arrays: A's row pointers, columns and values, B (b_rows x n) and
    the output (nrows x n)."""
    cdef idx_t t, tasks, per, j0, width
    cdef int stream
    global last_streamed
    if nrows <= 0 or n == 0:
        return
    width = column_block(b_rows, n, sizeof(value_t))
    stream = (value_t is double or value_t is float) and streams(nrows, n, sizeof(value_t), width, out)
    last_streamed = stream  # never for one column (rows of 4 or 8 bytes)
    if n == 1 and use_spmv:  # a matrix-vector product: spmm_row's one-column case, without its per-row setup
        spmv_rows(a_crow, a_col, a_val, nrows, b, out, n_threads)
        return
    per = rows_per_task(nrows, max(n_threads, 1))
    tasks = (nrows + per - 1) // per
    j0 = 0
    while j0 < n:
        if n_threads <= 1:  # no parallel region at all: it costs about 1 us, a small call's whole work
            spmm_rows(a_crow, a_col, a_val, nnz, b, n, j0, min(j0 + width, n), out, 0, nrows, stream)
        else:
            with parallel(num_threads=n_threads):
                for t in prange(tasks, schedule="guided"):
                    spmm_rows(a_crow, a_col, a_val, nnz, b, n, j0, min(j0 + width, n), out, t * per,
                              min(t * per + per, nrows), stream)
                if stream:  # each thread's streaming stores are done before the region ends
                    store_fence()
        j0 = j0 + width
    if stream and n_threads <= 1:
        store_fence()


# amax/amin ask for the row of B of the entry this many places on (the sum's rows do it in C)
cdef enum:
    REDUCE_AHEAD = 16


cdef inline void reduce_row(const idx_t* a_col, const value_t* a_val, idx_t start, idx_t end,
                            idx_t nnz, const value_t* b, idx_t n, int op, value_t* out_row,
                            idx_t* arg_row) noexcept nogil:
    # `nnz`: all of A's entries, so that the prefetch reaches into the rows after this one
    # (with `end` there, a row of 10 entries never asked for a row of B: "mean" took twice
    # the time of "sum", which runs as spmm)
    cdef idx_t q, j, j0, line, reach
    cdef value_t v, s, cur
    cdef const value_t* brow
    cdef bint better
    if start == end:
        for j in range(n):
            out_row[j] = 0
        if op == AMAX or op == AMIN:
            for j in range(n):
                arg_row[j] = -1
        return
    if op == SUM or op == MEAN:
        spmm_row(a_col, a_val, start, end, nnz, b, n, 0, n, out_row, 0)
        if op == MEAN:
            for j in range(n):
                out_row[j] = div_count(out_row[j], end - start)
        return
    if value_t is floatcomplex or value_t is doublecomplex:
        return  # amax/amin of complex values are rejected before the kernel
    else:
        # float64 and float32: a vector of columns at a time in C (_simd.h, sr_reduce_pick),
        # the same products and choices; the columns it leaves (SSE2: all) run here
        j0 = 0
        if value_t is float:
            j0 = reduce_pick_f32(a_col, a_val, start, end, nnz, b, n, op == AMIN, out_row, arg_row)
        elif value_t is double:
            j0 = reduce_pick_f64(a_col, a_val, start, end, nnz, b, n, op == AMIN, out_row, arg_row)
        if j0 >= n:
            return
        for j in range(j0, n):
            out_row[j] = mul(a_val[start], b[a_col[start] * n + j])
            arg_row[j] = start
        reach = min(n * <idx_t>sizeof(value_t), 512)
        for q in range(start + 1, end):
            if q + REDUCE_AHEAD < nnz:
                line = 0
                while line < reach:
                    prefetch(<const char*>(b + a_col[q + REDUCE_AHEAD] * n) + line)
                    line = line + 64
            s = a_val[q]
            brow = b + a_col[q] * n
            # no branch on the data: which entry wins changes from entry to entry, and a
            # branch on it mispredicted often enough to make amax 18-28x slower than the sum
            for j in range(j0, n):
                v = mul(s, brow[j])
                cur = out_row[j]
                better = (v > cur) if op == AMAX else (v < cur)
                if value_t is float or value_t is double:
                    better = better | ((v != v) & (cur == cur))  # the first NaN wins
                out_row[j] = v if better else cur
                arg_row[j] = q if better else arg_row[j]


def spmm_reduce(a_crow, a_col, a_val, b, reduce, out, out_arg, int n_threads=1):
    """Sparse times dense with a row-wise reduction instead of a sum:
    ``out[i, j] = reduce_q (a_val[q] * b[a_col[q], j])`` over the stored entries q of row i.

    Simple version
    --------------
    The same ``out`` up to rounding (``out_arg`` aside)::

        pick = {"sum": np.sum, "mean": np.mean, "amax": np.max, "amin": np.min}[reduce]
        for i in range(len(a_crow) - 1):
            q = np.arange(a_crow[i], a_crow[i + 1])          # row i's stored entries
            products = a_val[q][:, None] * b[a_col[q]]       # one row per entry
            out[i] = pick(products, axis=0) if len(q) else 0

    Inputs
    ------
    a_crow, a_col, a_val
        A in CSR form, as for ``spmm``.
    b : value[ncols_a, n], C-contiguous
        The dense matrix B.
    reduce : str
        ``"sum"``, ``"mean"`` (the sum divided by the row's stored count), ``"amax"`` or
        ``"amin"``; anything else is refused (ValueError) before anything is written.

    Outputs
    -------
    out : value[nrows, n]
        The reduction. Explicit zeros take part like any stored entry; empty rows give 0.
        ``sum`` and ``mean`` add in the order of ``spmm``. ``amax``/``amin``: NaN
        propagates (the first NaN wins); among equal values the first stored entry wins.
    out_arg : int64[nrows, n] or int64[0, 0]
        For ``amax``/``amin``: the position q of the winning entry, or -1 for an empty
        row (the backward routes the gradient there). Not written for sum and mean.

    Preconditions
    -------------
    As ``spmm``. ``amax``/``amin`` take real values only.

    Complexity
    ----------
    O(nnz * n + nrows * n) time, no extra memory.

    Parallelism
    -----------
    A ``prange`` over rows of A, as ``spmm``: each row's work is sequential.
    """
    # (the arrays are checked as for spmm, out_arg as ``int64[:, ::1]``)
    if reduce not in REDUCTIONS:
        raise ValueError(f"spmm_reduce: reduce must be one of {REDUCTIONS}, got {reduce!r}")
    cdef int op = REDUCTIONS.index(reduce)
    cdef Operands o
    operands(&o, a_crow, a_col, a_val, b, out)
    cdef idx_t* arg = <idx_t*>data(out_arg, cnp.NPY_INT64, 2, True, "out_arg")
    if op != AMAX and op != AMIN:
        arg = NULL  # (not written for sum and mean: it may have no rows)
    elif o.nrows >= 0:
        sized(out_arg, o.nrows, o.n, "out_arg", "out's shape")
    with nogil:
        if o.t == cnp.NPY_FLOAT64:
            reduce_typed(o.crow, o.col, <const double*>o.val, o.nrows, o.nnz,
                         <const double*>o.b, o.n, op, <double*>o.out, arg,
                         n_threads)
        elif o.t == cnp.NPY_FLOAT32:
            reduce_typed(o.crow, o.col, <const float*>o.val, o.nrows, o.nnz,
                         <const float*>o.b, o.n, op, <float*>o.out, arg,
                         n_threads)
        elif o.t == cnp.NPY_COMPLEX128:
            reduce_typed(o.crow, o.col, <const double complex*>o.val, o.nrows, o.nnz,
                         <const double complex*>o.b, o.n, op,
                         <double complex*>o.out, arg, n_threads)
        elif o.t == cnp.NPY_COMPLEX64:
            reduce_typed(o.crow, o.col, <const float complex*>o.val, o.nrows, o.nnz,
                         <const float complex*>o.b, o.n, op,
                         <float complex*>o.out, arg, n_threads)
        elif o.t == cnp.NPY_INT64:
            reduce_typed(o.crow, o.col, <const int64_t*>o.val, o.nrows, o.nnz,
                         <const int64_t*>o.b, o.n, op, <int64_t*>o.out, arg,
                         n_threads)
        else:
            reduce_typed(o.crow, o.col, <const int32_t*>o.val, o.nrows, o.nnz,
                         <const int32_t*>o.b, o.n, op, <int32_t*>o.out, arg,
                         n_threads)


cdef void reduce_typed(const idx_t* a_crow, const idx_t* a_col, const value_t* a_val, idx_t nrows, idx_t nnz,
                       const value_t* b, idx_t n, int op, value_t* out, idx_t* arg, int n_threads) noexcept nogil:
    """``spmm_reduce`` on checked arrays (``arg``: NULL for sum and mean)."""
    cdef idx_t i
    if nrows <= 0 or n == 0:
        return
    for i in prange(nrows, schedule="guided", num_threads=max(n_threads, 1)):
        reduce_row(a_col, a_val, a_crow[i], a_crow[i + 1], nnz, b, n, op, out + i * n,
                   arg + i * n if arg != NULL else NULL)

"""Sampled dense-dense product (SDDMM): the entries of ``X @ Y^T`` at a given sparsity
pattern only. It is the masked gradient of SpMM and the core of ``sampled_addmm``.
Typed twin of ``sparse_ref/reference/sddmm.py``.
"""

from cython.parallel cimport prange

from libc.stdint cimport int32_t, int64_t

from sparse_ref._kernels._arith cimport mul
from sparse_ref._kernels._types cimport idx_t, prefetch, value_t

__all__ = ["sddmm"]

# float64 and float32 run in C with AVX-512 where the CPU has it: a thread's share of
# positions in one loop whose dot products keep the 8 partial sums in the lanes of one
# vector (the same order; _simd.h). Elsewhere, and for the other types, the loop below
# with its 8 scalar sums (measured faster there than the C vectors).
cdef extern from "_simd.h":
    bint simd_dot_wide "sr_dot_wide"() noexcept nogil
    void simd_sddmm_f64 "sr_sddmm_f64"(const idx_t* p_row, const idx_t* p_col, const double* x, const double* y,
                                       idx_t p0, idx_t p1, idx_t nnz, idx_t n, idx_t ahead,
                                       double* out) noexcept nogil
    void simd_sddmm_f32 "sr_sddmm_f32"(const idx_t* p_row, const idx_t* p_col, const float* x, const float* y,
                                       idx_t p0, idx_t p1, idx_t nnz, idx_t n, idx_t ahead,
                                       float* out) noexcept nogil

include "_simd.pxi"
include "_args.pxi"

# The sum over j runs as LANES interleaved partial sums (the contract's order).
cdef enum:
    LANES = 8

# The rows of y are gathered in a random order: ask for the one this many positions ahead.
cdef enum:
    AHEAD = 8


cdef inline void prefetch_row(const value_t* row, idx_t n) noexcept nogil:
    cdef const char* start = <const char*> row
    cdef Py_ssize_t line
    for line in range(0, n * sizeof(value_t), 64):
        prefetch(start + line)


cdef inline value_t dot(const value_t* x, const value_t* y, idx_t n) noexcept nogil:
    # LANES = 8 independent partial sums, s_r over j = r, r + 8, ...: the compiler keeps
    # them in SIMD registers.
    cdef value_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0
    cdef idx_t j = 0
    while j + LANES <= n:
        s0 = s0 + mul(x[j], y[j])
        s1 = s1 + mul(x[j + 1], y[j + 1])
        s2 = s2 + mul(x[j + 2], y[j + 2])
        s3 = s3 + mul(x[j + 3], y[j + 3])
        s4 = s4 + mul(x[j + 4], y[j + 4])
        s5 = s5 + mul(x[j + 5], y[j + 5])
        s6 = s6 + mul(x[j + 6], y[j + 6])
        s7 = s7 + mul(x[j + 7], y[j + 7])
        j += LANES
    if j < n:
        s0 = s0 + mul(x[j], y[j])
    if j + 1 < n:
        s1 = s1 + mul(x[j + 1], y[j + 1])
    if j + 2 < n:
        s2 = s2 + mul(x[j + 2], y[j + 2])
    if j + 3 < n:
        s3 = s3 + mul(x[j + 3], y[j + 3])
    if j + 4 < n:
        s4 = s4 + mul(x[j + 4], y[j + 4])
    if j + 5 < n:
        s5 = s5 + mul(x[j + 5], y[j + 5])
    if j + 6 < n:
        s6 = s6 + mul(x[j + 6], y[j + 6])
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


def sddmm(p_row, p_col, x, y, out, int n_threads=1):
    """``out[p] = sum_j x[p_row[p], j] * y[p_col[p], j]`` for every sampled position p.

    Simple version
    --------------
    The same result up to rounding, with one running sum per output::

        for p in range(len(p_row)):
            out[p] = x[p_row[p]] @ y[p_col[p]]        # no conjugate

    Inputs
    ------
    p_row, p_col : int64[nnz]
        The sampled positions (any order; duplicates allowed).
    x : value[nrows, n], C-contiguous
        Left factor (for the gradient of SpMM: the incoming gradient G).
    y : value[ncols, n], C-contiguous
        Right factor, one row per column of the pattern (for the gradient of SpMM: the
        conjugate of B; for ``sampled_addmm``: mat2 transposed).

    Outputs
    -------
    out : value[nnz]
        The sampled dot products. The sum over j runs as 8 interleaved partial sums:
        ``s_r`` adds ``x[i, j] * y[k, j]`` for j = r, r + 8, r + 16, ... in ascending
        order starting from 0, and ``out[p] = ((s_0 + s_1) + (s_2 + s_3)) + ((s_4 + s_5)
        + (s_6 + s_7))``. This order (rather than one running sum) lets the kernel use
        SIMD registers; the reference follows it, so both agree bit for bit.

    Preconditions
    -------------
    Rows in ``[0, nrows)``, columns in ``[0, ncols)``; x and y have n columns.

    Complexity
    ----------
    O(nnz * n) time, no extra memory: never the dense nrows x ncols product.

    Parallelism
    -----------
    A ``prange`` over sampled positions; each output is independent.
    """
    # (the arrays are checked as ``const int64[::1]`` p_row and p_col, ``const value[:, ::1]``
    # x and y and ``value[::1]`` out would be: _args.pxi says why not with memoryviews; then
    # the value type picks the typed body)
    cdef int t = value_type(out, "out")
    cdef const idx_t* rows = <const idx_t*>data(p_row, cnp.NPY_INT64, 1, False, "p_row")
    cdef const idx_t* cols = <const idx_t*>data(p_col, cnp.NPY_INT64, 1, False, "p_col")
    cdef const void* xp = data(x, t, 2, False, "x", "out")
    cdef const void* yp = data(y, t, 2, False, "y", "out")
    cdef void* outp = data(out, t, 1, True, "out")
    cdef idx_t nnz = length(p_row, 0), n = length(x, 1)
    sized(p_col, nnz, -1, "p_col", "one column per row in p_row")
    sized(out, nnz, -1, "out", "one value per sampled position")
    sized(y, length(y, 0), n, "y", "as many columns as x")
    with nogil:
        if t == cnp.NPY_FLOAT64:
            sddmm_typed(rows, cols, <const double*>xp, <const double*>yp, nnz, n, <double*>outp, n_threads)
        elif t == cnp.NPY_FLOAT32:
            sddmm_typed(rows, cols, <const float*>xp, <const float*>yp, nnz, n, <float*>outp, n_threads)
        elif t == cnp.NPY_COMPLEX128:
            sddmm_typed(rows, cols, <const double complex*>xp, <const double complex*>yp, nnz, n,
                        <double complex*>outp, n_threads)
        elif t == cnp.NPY_COMPLEX64:
            sddmm_typed(rows, cols, <const float complex*>xp, <const float complex*>yp, nnz, n,
                        <float complex*>outp, n_threads)
        elif t == cnp.NPY_INT64:
            sddmm_typed(rows, cols, <const int64_t*>xp, <const int64_t*>yp, nnz, n, <int64_t*>outp, n_threads)
        else:
            sddmm_typed(rows, cols, <const int32_t*>xp, <const int32_t*>yp, nnz, n, <int32_t*>outp, n_threads)


cdef inline idx_t share(idx_t nnz, idx_t threads, idx_t t) noexcept nogil:
    """Where thread t's positions start (t = threads: nnz), shares differing by at most one."""
    return t * (nnz // threads) + min(t, nnz % threads)


cdef void sddmm_typed(const idx_t* p_row, const idx_t* p_col, const value_t* x, const value_t* y, idx_t nnz,
                      idx_t n, value_t* out, int n_threads) noexcept nogil:
    """``sddmm`` on checked arrays: x's and y's rows have n columns."""
    cdef idx_t p, t, threads = max(n_threads, 1)
    if nnz == 0:
        return
    if n == 0:
        for p in range(nnz):
            out[p] = 0
        return
    if (value_t is double or value_t is float) and simd_dot_wide():
        # with AVX-512: each thread's share of positions in one C loop (_simd.h), the same
        # static split and the same bits as the loop below
        for t in prange(threads, schedule="static", num_threads=threads):
            if value_t is double:
                simd_sddmm_f64(p_row, p_col, x, y, share(nnz, threads, t), share(nnz, threads, t + 1), nnz, n,
                               AHEAD, out)
            else:
                simd_sddmm_f32(p_row, p_col, x, y, share(nnz, threads, t), share(nnz, threads, t + 1), nnz, n,
                               AHEAD, out)
        return
    for p in prange(nnz, schedule="static", num_threads=max(n_threads, 1)):
        if p + AHEAD < nnz:
            prefetch_row(y + p_col[p + AHEAD] * n, n)
        out[p] = dot(x + p_row[p] * n, y + p_col[p] * n, n)

"""Format conversions as counting sorts: COO rows -> CSR row pointers, CSR -> COO rows,
and the transpose of a CSR matrix; and the one rounding of float32 values to the half
types (float16, bfloat16), on bit patterns. Typed twin of ``sparse_ref/reference/convert.py``.
"""

from cython.parallel cimport prange
from libc.stdint cimport uint16_t, uint32_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from sparse_ref._kernels._types cimport idx_t

__all__ = ["coo_to_csr", "csr_to_coo", "csr_transpose", "round_to_float16", "round_to_bfloat16"]


def coo_to_csr(const idx_t[::1] a_row, idx_t nrows, idx_t[::1] out_crow, int n_threads=1):
    """Row pointers of a COO matrix whose entries are sorted by row.

    Simple version
    --------------
    The same result, once the outputs are set to zero (the kernel does not need that:
    it writes every element)::

        for i in a_row:
            out_crow[i + 1:] += 1          # an entry of row i counts for every later row

    Inputs
    ------
    a_row : int64[nnz]
        Row of each stored entry, non-decreasing.
    nrows : int
        Number of rows; every ``a_row[p]`` is in ``[0, nrows)``.

    Outputs
    -------
    out_crow : int64[nrows + 1]
        ``out_crow[i]`` is the number of entries in rows ``< i``, so row i holds the
        entries ``out_crow[i]:out_crow[i + 1]``.

    Preconditions
    -------------
    ``a_row`` sorted and in range.

    Complexity
    ----------
    O(nnz + nrows) time, no extra memory.

    Parallelism
    -----------
    Serial: a count and a prefix sum, bound by memory.
    """
    cdef idx_t i, p
    with nogil:
        for i in range(nrows + 1):
            out_crow[i] = 0
        for p in range(a_row.shape[0]):
            out_crow[a_row[p] + 1] += 1
        for i in range(nrows):
            out_crow[i + 1] += out_crow[i]


def csr_to_coo(const idx_t[::1] a_crow, idx_t[::1] out_row, int n_threads=1):
    """Expand CSR row pointers into one row index per stored entry.

    Simple version
    --------------
    The same result::

        out_row[:] = np.repeat(np.arange(len(a_crow) - 1), np.diff(a_crow))

    Inputs
    ------
    a_crow : int64[nrows + 1]
        Row pointers, non-decreasing, ``a_crow[0] == 0``.

    Outputs
    -------
    out_row : int64[a_crow[nrows]]
        ``out_row[q] = i`` for every q in ``a_crow[i]:a_crow[i + 1]``.

    Preconditions
    -------------
    ``a_crow`` is a valid row-pointer array.

    Complexity
    ----------
    O(nnz + nrows) time, no extra memory.

    Parallelism
    -----------
    A ``prange`` over rows; each row writes its own slice.
    """
    cdef idx_t i, q
    cdef idx_t nrows = a_crow.shape[0] - 1
    with nogil:
        for i in prange(nrows, schedule="static", num_threads=max(n_threads, 1)):
            for q in range(a_crow[i], a_crow[i + 1]):
                out_row[q] = i


def csr_transpose(const idx_t[::1] a_crow, const idx_t[::1] a_col, idx_t ncols,
                  idx_t[::1] out_crow, idx_t[::1] out_col, idx_t[::1] out_perm,
                  int n_threads=1):
    """The transpose of a CSR matrix, as a CSR matrix with sorted columns.

    Simple version
    --------------
    The same result, once the outputs are set to zero (the kernel does not need that:
    it writes every element)::

        entries = sorted((a_col[q], i, q) for i in range(len(a_crow) - 1)
                         for q in range(a_crow[i], a_crow[i + 1]))   # by column, then row
        for t, (j, i, q) in enumerate(entries):
            out_col[t], out_perm[t] = i, q
            out_crow[j + 1:] = t + 1       # rows <= j of A^T end before t + 1

    Inputs
    ------
    a_crow : int64[nrows + 1]
        Row pointers of A.
    a_col : int64[nnz]
        Column of each stored entry of A.
    ncols : int
        Number of columns of A (rows of the transpose).

    Outputs
    -------
    out_crow : int64[ncols + 1]
        Row pointers of A^T.
    out_col : int64[nnz]
        Columns of A^T (the rows of A), ascending within each row of A^T.
    out_perm : int64[nnz]
        ``out_perm[q]`` is the position in A of the entry stored at q in A^T, so the
        values of A^T are ``a_val[out_perm]`` (conjugated for A^H).

    Preconditions
    -------------
    Columns in ``[0, ncols)``. If A is sorted and unique within rows, so is A^T.

    Complexity
    ----------
    O(nnz + nrows + ncols) time, O(ncols) extra memory.

    Parallelism
    -----------
    Serial counting sort (count by column, prefix sum, fill in row order), which is
    what makes it stable: entries of one column of A land in ascending row order.

    Reference
    ---------
    SciPy's ``csr_tocsc`` (sparsetools/csr.h) is the same counting sort.
    """
    cdef idx_t nrows = a_crow.shape[0] - 1
    cdef idx_t i, j, q, slot
    cdef idx_t* next_slot = <idx_t*> malloc(max(ncols, 1) * sizeof(idx_t))
    if next_slot == NULL:
        raise MemoryError("csr_transpose: no memory for the column counts")
    with nogil:
        for j in range(ncols + 1):
            out_crow[j] = 0
        for q in range(a_col.shape[0]):
            out_crow[a_col[q] + 1] += 1
        for j in range(ncols):
            out_crow[j + 1] += out_crow[j]
        if ncols > 0:
            memcpy(next_slot, &out_crow[0], ncols * sizeof(idx_t))
        for i in range(nrows):
            for q in range(a_crow[i], a_crow[i + 1]):
                j = a_col[q]
                slot = next_slot[j]
                out_col[slot] = i
                out_perm[slot] = q
                next_slot[j] = slot + 1
    free(next_slot)


# float32:  sign (1 bit) | exponent e (8 bits, bias 127) | fraction (23 bits)
# float16:  sign (1 bit) | exponent   (5 bits, bias 15)  | fraction (10 bits)
# bfloat16: sign (1 bit) | exponent   (8 bits, bias 127) | fraction (7 bits)

cdef inline uint16_t float16_bits(uint32_t x) noexcept nogil:
    """The float16 nearest to the float32 with bits x (ties to even; NaN made quiet)."""
    cdef uint32_t sign = (x >> 16) & 0x8000
    cdef uint32_t mag = x & 0x7FFFFFFF
    cdef int e = <int>(mag >> 23)
    cdef uint32_t frac = (mag & 0x7FFFFF) | 0x800000
    cdef uint32_t shift, kept, rest, half, up
    if mag > 0x7F800000:                      # NaN: quiet, with the top of its payload
        return <uint16_t>(sign | 0x7E00 | ((mag >> 13) & 0x3FF))
    if mag >= 0x477FF000:                     # 65520 and up (and inf): inf
        return <uint16_t>(sign | 0x7C00)
    if e < 102:                               # below 2**-25: zero
        return <uint16_t>sign
    shift = 13 if e >= 113 else <uint32_t>(126 - e)   # normal: 11 bits kept; subnormal: fewer
    kept = frac >> shift
    rest = frac & ((1u << shift) - 1)
    half = 1u << (shift - 1)
    up = 1 if (rest > half or (rest == half and (kept & 1))) else 0
    if e >= 113:                              # the carry of up runs into the exponent by itself
        return <uint16_t>(sign | ((<uint32_t>(e - 113) << 10) + kept + up))
    return <uint16_t>(sign | (kept + up))


cdef inline uint16_t bfloat16_bits(uint32_t x) noexcept nogil:
    """The bfloat16 nearest to the float32 with bits x (ties to even; NaN: 0x7FC0 signed)."""
    if (x & 0x7FFFFFFF) > 0x7F800000:
        return <uint16_t>(((x >> 16) & 0x8000) | 0x7FC0)
    return <uint16_t>((x + 0x7FFF + ((x >> 16) & 1)) >> 16)


def round_to_float16(const uint32_t[::1] a_bits, uint16_t[::1] out_bits, int n_threads=1):
    """Round float32 values to float16, to nearest with ties to even, on bit patterns.

    Simple version
    --------------
    The same result for every value but a signalling NaN (NumPy keeps it signalling;
    this kernel sets the quiet bit)::

        out_bits[:] = a_bits.view(np.float32).astype(np.float16).view(np.uint16)

    Inputs
    ------
    a_bits : uint32[n]
        The bit patterns of float32 values (``x.view(np.uint32)``).

    Outputs
    -------
    out_bits : uint16[n]
        The bit patterns of the float16 values nearest to them, ties to the even
        pattern: magnitudes from 65520 (half way between the largest finite float16,
        65504, and 2**16) up become inf; below 2**-14 the result is subnormal (a
        multiple of 2**-24), and 2**-25 and less become (signed) zero. NaN stays NaN,
        quiet, with its sign and the top 9 bits of its payload. -0.0 stays -0.0.

    Preconditions
    -------------
    None: every bit pattern is a valid input.

    Complexity
    ----------
    O(n) time, no extra memory in the Cython kernel.

    Parallelism
    -----------
    A ``prange`` over the values; each writes its own output.
    """
    cdef Py_ssize_t i
    with nogil:
        for i in prange(a_bits.shape[0], schedule="static", num_threads=max(n_threads, 1)):
            out_bits[i] = float16_bits(a_bits[i])


def round_to_bfloat16(const uint32_t[::1] a_bits, uint16_t[::1] out_bits, int n_threads=1):
    """Round float32 values to bfloat16, to nearest with ties to even, on bit patterns.

    Simple version
    --------------
    The same result (ml_dtypes is the package that gives NumPy a bfloat16 dtype)::

        import ml_dtypes
        out_bits[:] = a_bits.view(np.float32).astype(ml_dtypes.bfloat16).view(np.uint16)

    Inputs
    ------
    a_bits : uint32[n]
        The bit patterns of float32 values (``x.view(np.uint32)``).

    Outputs
    -------
    out_bits : uint16[n]
        The bit patterns of the bfloat16 values nearest to them, ties to the even
        pattern. bfloat16 has float32's exponent range, so this keeps the top 16 bits,
        rounded: subnormals stay subnormal, and values from half way above the largest
        finite bfloat16 become inf. NaN becomes the quiet NaN of its sign
        (0x7FC0 / 0xFFC0), as ml_dtypes gives it. -0.0 stays -0.0.

    Preconditions
    -------------
    None: every bit pattern is a valid input.

    Complexity
    ----------
    O(n) time, no extra memory in the Cython kernel.

    Parallelism
    -----------
    A ``prange`` over the values; each writes its own output.
    """
    cdef Py_ssize_t i
    with nogil:
        for i in prange(a_bits.shape[0], schedule="static", num_threads=max(n_threads, 1)):
            out_bits[i] = bfloat16_bits(a_bits[i])

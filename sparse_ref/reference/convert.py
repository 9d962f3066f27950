"""Format conversions as counting sorts: COO rows -> CSR row pointers, CSR -> COO rows,
and the transpose of a CSR matrix; and the one rounding of float32 values to the half
types (float16, bfloat16), on bit patterns. Twin of ``sparse_ref/_kernels/convert.pyx``.
"""

import numpy as np

__all__ = ["coo_to_csr", "csr_to_coo", "csr_transpose", "round_to_float16", "round_to_bfloat16"]


def coo_to_csr(a_row, nrows, out_crow, n_threads=1):
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
    for i in range(nrows + 1):
        out_crow[i] = 0
    for p in range(len(a_row)):
        out_crow[a_row[p] + 1] += 1
    for i in range(nrows):
        out_crow[i + 1] += out_crow[i]


def csr_to_coo(a_crow, out_row, n_threads=1):
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
    for i in range(len(a_crow) - 1):
        for q in range(a_crow[i], a_crow[i + 1]):
            out_row[q] = i


def csr_transpose(a_crow, a_col, ncols, out_crow, out_col, out_perm, n_threads=1):
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
    nrows = len(a_crow) - 1
    for j in range(ncols + 1):
        out_crow[j] = 0
    for q in range(len(a_col)):
        out_crow[a_col[q] + 1] += 1
    for j in range(ncols):
        out_crow[j + 1] += out_crow[j]
    next_slot = [out_crow[j] for j in range(ncols)]
    for i in range(nrows):
        for q in range(a_crow[i], a_crow[i + 1]):
            j = a_col[q]
            out_col[next_slot[j]] = i
            out_perm[next_slot[j]] = q
            next_slot[j] += 1


# The two roundings below are the only place where a float32 becomes a half value in a
# product: NumPy integer arithmetic on the bit patterns, one array operation for every
# element at once (the Cython twin does the same steps element by element).
#
# float32:  sign (1 bit) | exponent e (8 bits, bias 127) | fraction (23 bits)
# float16:  sign (1 bit) | exponent   (5 bits, bias 15)  | fraction (10 bits)
# bfloat16: sign (1 bit) | exponent   (8 bits, bias 127) | fraction (7 bits)


def round_to_float16(a_bits, out_bits, n_threads=1):
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
    x = np.asarray(a_bits, dtype=np.uint32)
    sign = ((x >> 16) & 0x8000).astype(np.uint32)
    mag = x & 0x7FFFFFFF                                   # |x| as bits
    e = (mag >> 23).astype(np.int64)                       # biased float32 exponent
    frac = (mag & 0x7FFFFF) | 0x800000                     # 24-bit significand with its 1
    # a normal float16 (|x| >= 2**-14, exponent e >= 113) keeps the top 11 significand
    # bits (shift 13); a subnormal one is a multiple of 2**-24 (shift 126 - e, 14..24)
    shift = np.where(e >= 113, 13, np.clip(126 - e, 14, 25)).astype(np.uint32)
    kept = frac >> shift
    rest = frac & ((np.uint32(1) << shift) - 1)
    half = np.uint32(1) << (shift - 1)
    up = (rest > half) | ((rest == half) & ((kept & 1) == 1))  # ties to the even neighbour
    # a normal result: exponent e - 112 above the kept 1 bit; adding the rounding bit
    # carries into the exponent (and from 2047 * 2**e to the next power) by itself
    normal = (((e - 113) << 10).clip(0) + kept + up).astype(np.uint32)
    subnormal = (kept + up).astype(np.uint32)
    out = np.where(e >= 113, normal, np.where(e >= 102, subnormal, 0))
    out = np.where(mag >= 0x477FF000, 0x7C00, out)           # 65520 and up (and inf): inf
    out = np.where(mag > 0x7F800000, 0x7E00 | ((mag >> 13) & 0x3FF), out)  # NaN, made quiet
    out_bits[:] = (sign | out).astype(np.uint16)


def round_to_bfloat16(a_bits, out_bits, n_threads=1):
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
    x = np.asarray(a_bits, dtype=np.uint32)
    lowest_kept = (x >> 16) & 1
    # adding 0x7FFF (plus 1 when the kept part is odd) carries into bit 16 exactly when
    # the dropped 16 bits are above half, or at half with an odd kept part
    rounded = (x + 0x7FFF + lowest_kept) >> 16
    nan = (x & 0x7FFFFFFF) > 0x7F800000
    out_bits[:] = np.where(nan, ((x >> 16) & 0x8000) | 0x7FC0, rounded).astype(np.uint16)

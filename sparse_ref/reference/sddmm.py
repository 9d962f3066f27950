"""Sampled dense-dense product (SDDMM): the entries of ``X @ Y^T`` at a given sparsity
pattern only. It is the masked gradient of SpMM and the core of ``sampled_addmm``.
Twin of ``sparse_ref/_kernels/sddmm.pyx``.
"""

from sparse_ref.reference._arith import mul

__all__ = ["sddmm"]

# The sum over j runs as LANES interleaved partial sums (the contract's order).
LANES = 8


def sddmm(p_row, p_col, x, y, out, n_threads=1):
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
    for p in range(len(p_row)):
        out[p] = dot(x[p_row[p]], y[p_col[p]])


def dot(x_row, y_row):
    """``sum_j x_row[j] * y_row[j]`` as LANES interleaved partial sums: lane r adds the
    products j = r, r + LANES, ... in turn, starting from 0; then the lanes are combined
    pairwise. (The kernel keeps the lanes in SIMD registers.)"""
    lanes = [x_row.dtype.type(0)] * LANES
    for j in range(len(x_row)):
        lanes[j % LANES] = lanes[j % LANES] + mul(x_row[j], y_row[j])
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + (
        (lanes[4] + lanes[5]) + (lanes[6] + lanes[7])
    )

"""Sampled dense-dense product (SDDMM): the entries of ``X @ Y^T`` at a given sparsity
pattern only. It is the masked gradient of SpMM and the core of ``sampled_addmm``.
Twin of ``sparse_ref/_kernels/sddmm.pyx``.
"""

from sparse_ref.reference._arith import mul

LANES = 8


def sddmm(p_row, p_col, x, y, out, n_threads=1):
    """``out[p] = sum_j x[p_row[p], j] * y[p_col[p], j]`` for every sampled position p.

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
    n = x.shape[1]
    for p in range(len(p_row)):
        x_row, y_row = x[p_row[p]], y[p_col[p]]
        lanes = [out.dtype.type(0)] * LANES
        for j in range(n):
            lanes[j % LANES] = lanes[j % LANES] + mul(x_row[j], y_row[j])
        out[p] = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + (
            (lanes[4] + lanes[5]) + (lanes[6] + lanes[7])
        )

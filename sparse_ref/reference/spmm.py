"""Sparse x dense (SpMM): ``out = A @ B`` for a CSR matrix A and a dense matrix B, and the
row-wise reductions ``reduce='sum' | 'mean' | 'amax' | 'amin'``.
Twin of ``sparse_ref/_kernels/spmm.pyx``.
"""

import numpy as np

from sparse_ref.reference._arith import div_count, mul

REDUCTIONS = ("sum", "mean", "amax", "amin")


def spmm(a_crow, a_col, a_val, b, out, n_threads=1):
    """Sparse times dense: ``out[i, :] = sum_q a_val[q] * b[a_col[q], :]`` over row i.

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
    A ``prange`` over rows of A (guided schedule, since rows differ in length); a row's
    work is sequential, so every element of ``out`` sees the same order of additions on
    any number of threads. The kernel can split the columns of B into blocks that fit
    in the cache (off by default: measured slower here); blocks change which element is
    computed when, never the order of additions within an element.

    Reference
    ---------
    The row-by-row product of CSR and dense matrices, as in SciPy's ``csr_matvecs``.
    """
    for i in range(len(a_crow) - 1):
        acc = np.zeros(b.shape[1], dtype=out.dtype)
        for q in range(a_crow[i], a_crow[i + 1]):
            acc = acc + mul(a_val[q], b[a_col[q]])
        out[i] = acc


def spmm_reduce(a_crow, a_col, a_val, b, reduce, out, out_arg, n_threads=1):
    """Sparse times dense with a row-wise reduction instead of a sum:
    ``out[i, j] = reduce_q (a_val[q] * b[a_col[q], j])`` over the stored entries q of row i.

    Inputs
    ------
    a_crow, a_col, a_val
        A in CSR form, as for ``spmm``.
    b : value[ncols_a, n], C-contiguous
        The dense matrix B.
    reduce : str
        ``"sum"``, ``"mean"`` (the sum divided by the row's stored count), ``"amax"`` or
        ``"amin"``.

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
    for i in range(len(a_crow) - 1):
        start, end = a_crow[i], a_crow[i + 1]
        if start == end:
            out[i] = 0
            if reduce in ("amax", "amin"):
                out_arg[i] = -1
            continue
        if reduce in ("sum", "mean"):
            acc = np.zeros(b.shape[1], dtype=out.dtype)
            for q in range(start, end):
                acc = acc + mul(a_val[q], b[a_col[q]])
            out[i] = div_count(acc, end - start) if reduce == "mean" else acc
        else:
            best = mul(a_val[start], b[a_col[start]])
            arg = np.full(b.shape[1], start, dtype=np.int64)
            for q in range(start + 1, end):
                v = mul(a_val[q], b[a_col[q]])
                # strictly better, or the first NaN: ties keep the earlier entry
                better = (v > best) if reduce == "amax" else (v < best)
                better = better | (np.isnan(v) & ~np.isnan(best))
                best = np.where(better, v, best)
                arg = np.where(better, q, arg)
            out[i] = best
            out_arg[i] = arg

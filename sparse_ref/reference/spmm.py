"""Sparse x dense (SpMM): ``out = A @ B`` for a CSR matrix A and a dense matrix B, and the
row-wise reductions ``reduce='sum' | 'mean' | 'amax' | 'amin'``.
Twin of ``sparse_ref/_kernels/spmm.pyx``.
"""

import numpy as np

from sparse_ref.reference._arith import div_count, mul

__all__ = ["spmm", "spmm_reduce", "spmv"]

REDUCTIONS = ("sum", "mean", "amax", "amin")


def spmm(a_crow, a_col, a_val, b, out, n_threads=1):
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
    for i in range(len(a_crow) - 1):
        out[i] = spmm_row(a_col, a_val, a_crow[i], a_crow[i + 1], b)


def spmm_row(a_col, a_val, start, end, b):
    """Row i of A @ B from its stored entries ``start:end``: one running sum per column,
    from 0, one multiply and one add per entry, in storage order."""
    acc = np.zeros(b.shape[1], dtype=b.dtype)
    for q in range(start, end):
        acc = acc + mul(a_val[q], b[a_col[q]])
    return acc


def spmm_reduce(a_crow, a_col, a_val, b, reduce, out, out_arg, n_threads=1):
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
    if reduce not in REDUCTIONS:
        raise ValueError(f"spmm_reduce: reduce must be one of {REDUCTIONS}, got {reduce!r}")
    for i in range(len(a_crow) - 1):
        arg_row = out_arg[i] if reduce in ("amax", "amin") else None
        reduce_row(a_col, a_val, a_crow[i], a_crow[i + 1], b, reduce, out[i], arg_row)


def reduce_row(a_col, a_val, start, end, b, reduce, out_row, arg_row):
    """Row i of ``spmm_reduce`` from its stored entries ``start:end``, written into
    ``out_row`` (and, for amax/amin, the winners' positions into ``arg_row``)."""
    if start == end:  # an empty row gives 0, and no winner
        out_row[:] = 0
        if arg_row is not None:
            arg_row[:] = -1
    elif reduce in ("sum", "mean"):
        out_row[:] = spmm_row(a_col, a_val, start, end, b)
        if reduce == "mean":
            out_row[:] = div_count(out_row, end - start)
    else:
        out_row[:] = mul(a_val[start], b[a_col[start]])
        arg_row[:] = start
        for q in range(start + 1, end):
            v = mul(a_val[q], b[a_col[q]])
            # strictly better, or the first NaN: ties keep the earlier entry
            better = (v > out_row) if reduce == "amax" else (v < out_row)
            better |= np.isnan(v) & ~np.isnan(out_row)
            out_row[better] = v[better]
            arg_row[better] = q


def spmv(a_crow, a_col, a_val, b, out, n_threads=1):
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
    if a_col.dtype not in (np.int32, np.int64):
        raise TypeError(f"a_col: expected int32 or int64, got {a_col.dtype}")
    if b.ndim != 2 or b.shape[1] != 1:
        raise ValueError(f"b: expected {b.shape[0] if b.ndim else 0} x 1 (one column), got {' x '.join(map(str, b.shape))}")
    spmm(a_crow, a_col, a_val, b, out)

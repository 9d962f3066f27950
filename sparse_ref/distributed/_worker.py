"""What a Dask worker runs: plain functions of NumPy arrays, no Dask in sight.

Each function is pure (its result depends on its arguments alone), so Dask may run it
again on any worker when the one holding its result is lost. They call the array-level
ops of one machine (``sparse_ref._products``, ``_formats``) on the backend the client
names, so each output element is computed by the same kernel, from the same inputs, in
the same order as on one machine.

A *part* is a block of whole rows ``[r0, r1)`` of a coalesced sparse matrix, as a tuple
``(crow, col, val)``: ``crow`` holds local row pointers (``r1 - r0 + 1`` of them),
``col`` the global columns (ascending within each row), ``val`` the values. The client
knows every part's ``r0``; a part never needs it except where it says so.
"""

from __future__ import annotations

import contextlib

import numpy as np

from sparse_ref import _backend, _formats, _products
from sparse_ref.autograd.dense_ops import conj
from sparse_ref.autograd.sparse_ops import combine

I64 = np.int64


@contextlib.contextmanager
def kernels(backend: str):
    """Run the block on the kernels the client's call used (its backend's name)."""
    token = _backend._enter(backend)
    try:
        yield
    finally:
        if token is not None:
            _backend._context.reset(token)


# -- parts -------------------------------------------------------------------------------

def part(crow, col, val):
    """A part from its arrays (what a source task returns: the arrays travel inside the
    task, so the scheduler can run it again after a worker is lost)."""
    return crow, col, val


def array(x):
    """A dense array, from inside its task (a source, like :func:`part`)."""
    return x


def with_values(p, val):
    """Part p's pattern holding ``val``."""
    return p[0], p[1], val


def values(p):
    return p[2]


def add(x, y):
    return x + y


def added_values(p, val):
    """Part p's pattern holding p's values + val (a leaf's ``.grad`` accumulating)."""
    return p[0], p[1], p[2] + val


def scaled(x, c):
    """``x * c`` in x's dtype."""
    return x * x.dtype.type(c)


def nnz(p) -> int:
    return int(p[1].shape[0])


def col_counts_in(p, starts, widths, nbins):
    """How many entries of part p fall in each bin of columns: interval t has ``nbins[t]``
    bins of ``widths[t]`` columns from column ``starts[t]`` (disjoint intervals, ascending);
    the counts of all intervals, one after the other."""
    col = p[1]
    out = []
    for start, width, n in zip(starts, widths, nbins):
        inside = col[(col >= start) & (col < start + width * n)]
        out.append(np.bincount((inside - start) // width, minlength=n).astype(I64)[:n])
    return np.concatenate(out) if out else np.zeros(0, I64)


# -- the transpose, as a shuffle: split every part by column ranges, join by target ----------

def split_by_columns(backend, p, r0: int, ncols: int, cuts):
    """Part p's entries cut by the column ranges ``[cuts[q], cuts[q + 1])``: a list with one
    piece ``(k, i, v)`` per range, entries sorted by column k, then by (global) row i --
    the transpose of the part (a stable counting sort), cut where the ranges meet."""
    crow, col, val = p
    with kernels(backend):
        _, t_col, perm, _ = _formats.csr_transpose(crow, col, ncols)
    k = col[perm]
    i = t_col + r0
    v = val[perm]
    at = np.searchsorted(k, cuts, side="left")
    return [(k[a:b], i[a:b], v[a:b]) for a, b in zip(at[:-1], at[1:])]


def join_rows(backend, pieces, k0: int, k1: int):
    """The part of the transpose that holds rows ``[k0, k1)``, from its pieces in the order
    of the source parts (so of ascending i). A stable sort by k keeps i ascending within a
    row: each row of the transpose holds its entries in the order one machine's transpose
    has them."""
    k = np.concatenate([piece[0] for piece in pieces])
    i = np.concatenate([piece[1] for piece in pieces])
    v = np.concatenate([piece[2] for piece in pieces])
    order = np.argsort(k, kind="stable")
    with kernels(backend):
        crow = _formats.coo_to_csr(np.ascontiguousarray(k[order] - k0), k1 - k0)
    return crow, np.ascontiguousarray(i[order]), np.ascontiguousarray(v[order])


# -- the rows a part needs from another operand ------------------------------------------------

def needed(p):
    """The columns part p stores anything in (sorted): the rows it needs of a right operand.
    A mark per column (O(nnz + columns)) unless the columns are far more than the entries."""
    col = p[1]
    n = int(col.max()) + 1 if col.shape[0] else 0
    if _formats.too_many_pointers(n, col.shape[0]):
        return np.unique(col)
    seen = np.zeros(n, dtype=bool)
    seen[col] = True
    return np.flatnonzero(seen)


def local_cols(p, need):
    """Part p's columns renumbered to their positions in ``need`` (which holds them all;
    the order is kept): a table lookup, or a binary search where a table would be large."""
    col = p[1]
    n = int(need[-1]) + 1 if need.shape[0] else 0
    if _formats.too_many_pointers(n, col.shape[0] + need.shape[0]):
        return np.searchsorted(need, col)
    rank = np.empty(n, dtype=I64)
    rank[need] = np.arange(need.shape[0], dtype=I64)
    return rank[col]


def split_sorted(keys, cuts):
    """Sorted ``keys`` cut by the ranges ``[cuts[q], cuts[q + 1])``: one array per range
    (what a part asks of each part that holds some of the rows it needs)."""
    at = np.searchsorted(keys, cuts, side="left")
    return [keys[a:b] for a, b in zip(at[:-1], at[1:])]


def pick_rows(p, r0: int, ask):
    """The rows ``ask`` (sorted, all among part p's rows ``r0, r0 + 1, ...``) of part p,
    empty ones too, as ``(lengths, col, val)``."""
    crow, col, val = p
    sel = ask - r0
    lengths = crow[sel + 1] - crow[sel]
    offsets = np.cumsum(lengths) - lengths  # where each picked row starts among the picked entries
    at = np.repeat(crow[sel] - offsets, lengths) + np.arange(int(lengths.sum()), dtype=I64)
    return lengths, col[at], val[at]


def stack_rows(pieces):
    """The rows picked from every part, one after the other (so in the order of ``need``),
    as CSR ``(crow, col, val)``."""
    lengths = np.concatenate([piece[0] for piece in pieces])
    crow = np.concatenate([[0], np.cumsum(lengths)]).astype(I64)
    return (crow, np.concatenate([piece[1] for piece in pieces]),
            np.concatenate([piece[2] for piece in pieces]))


def pick_dense(block, r0: int, ask):
    """The rows ``ask`` (all among the block's rows ``r0, r0 + 1, ...``) of a dense block."""
    return block[ask - r0]


# -- SpMM: C = A @ B, B dense -----------------------------------------------------------------

def spmm(backend, p, b, reduce: str):
    """Rows of ``A @ B`` for part p of A, as on one machine; for amax/amin ``(out, arg)``
    with the winners (positions in the part)."""
    with kernels(backend):
        if reduce == "sum":
            return _products.spmm(p[0], p[1], p[2], b)
        out, arg = _products.spmm_reduce(p[0], p[1], p[2], b, reduce)
    return out if arg is None else (out, arg)


def mean_scaled(p, g):
    """G's rows divided by their row's stored count (at least 1), as on one machine."""
    counts = np.maximum(np.diff(p[0]), 1).astype(g.real.dtype)
    return g / counts[:, None]


def sddmm(backend, p, g, b):
    """``mask(G @ B^H, A)`` at part p's entries: ``sum_j g[i, j] * conj(b[k, j])``."""
    with kernels(backend):
        rows = _formats.csr_to_coo(p[0])
        return _products.sddmm(rows, p[1], np.ascontiguousarray(g), np.ascontiguousarray(conj(b)))


def transposed_spmm(backend, t, need, pieces):
    """Rows ``[k0, k1)`` of ``A^H @ G`` from the part t of A's transpose holding them and
    G's rows that t needs: ``out[k] = sum_i conj(a_ik) g[i]`` over row k of t, i ascending,
    exactly as one machine's SpMM with the transpose adds them."""
    g = np.concatenate(pieces)
    with kernels(backend):
        return _products.spmm(t[0], local_cols(t, need), conj(t[2]), np.ascontiguousarray(g))


def routed_a(p, arg, g, b):
    """amax/amin: the gradient of part p's entries, each from the outputs it won, in the
    row-major order one machine adds them in (``SparseMm._routed``)."""
    crow, col, val = p
    i, j = np.nonzero(arg >= 0)
    q = arg[i, j]
    out = np.zeros(val.shape[0], dtype=val.dtype)
    np.add.at(out, q, g[i, j] * conj(b[col[q], j]))
    return out


def routed_b_split(p, arg, g, cuts):
    """amax/amin: what part p adds to ``grad_B[k, j]``, as ``(k, j, value)`` in the part's
    row-major order, cut by the row ranges of grad_B ``[cuts[q], cuts[q + 1])``."""
    crow, col, val = p
    i, j = np.nonzero(arg >= 0)
    q = arg[i, j]
    k = col[q]
    v = conj(val[q]) * g[i, j]
    order = np.argsort(k, kind="stable")  # by range; row-major order kept within a range
    k, j, v = k[order], j[order], v[order]
    at = np.searchsorted(k, cuts, side="left")
    return [(k[a:b], j[a:b], v[a:b]) for a, b in zip(at[:-1], at[1:])]


def routed_b_join(pieces, k0: int, k1: int, n: int, dtype):
    """Rows ``[k0, k1)`` of grad_B: the pieces of every part in part order (so each element
    receives its terms in the order of ascending i), added from 0 as one machine does."""
    out = np.zeros((k1 - k0, n), dtype=dtype)
    for k, j, v in pieces:
        np.add.at(out, (k - k0, j), v)
    return out


# -- SpGEMM: C = A @ B, both sparse --------------------------------------------------------------

def spgemm(backend, p, need, b_rows, ncols: int):
    """Rows of ``C = A @ B`` for part p of A, from the rows of B it needs (stacked in the
    order of ``need``): Gustavson's order as on one machine, the shared index renamed
    (order kept) to positions among those rows."""
    b_crow, b_col, b_val = b_rows
    with kernels(backend):
        indices, val, crow = _products.spgemm(p[0], local_cols(p, need), p[2], b_crow, b_col, b_val, ncols)
    return crow, np.ascontiguousarray(indices[1]), val


def masked_a(backend, p, need, c, g, b_rows):
    """``mask(G @ B^H, A)`` at part p's entries (SpGEMM backward): for entry (i, k), the
    merge of row i of G (C's part, same rows) with row k of B, ascending in the column."""
    b_crow, b_col, b_val = b_rows
    with kernels(backend):
        rows = _formats.csr_to_coo(p[0])
        return _products.spgemm_masked(rows, local_cols(p, need), c[0], c[1], g,
                                       b_crow, b_col, conj(b_val))


def masked_b(backend, p, need, at, gt_pieces):
    """``mask(A^H @ G, B)`` at part p's entries of B (rows ``[k0, k1)``): for entry (k, j),
    the merge of row k of A^H (``at``: the transpose's part with B's rows) with row j of
    G^T (the rows of G^T that p needs), ascending in i."""
    gt_crow, gt_col, gt_val = stack_rows(gt_pieces)
    with kernels(backend):
        rows = _formats.csr_to_coo(p[0])
        return _products.spgemm_masked(rows, local_cols(p, need), at[0], at[1], conj(at[2]),
                                       gt_crow, gt_col, gt_val)


# -- SDDMM: sampled_addmm(S, X, Y) ----------------------------------------------------------------

def sampled_addmm(backend, p, x, yt, beta, alpha):
    """``beta * s + alpha * (X @ Y)`` at part p's entries (x: X's rows of the part, yt: Y^T)."""
    with kernels(backend):
        product = _products.sddmm(_formats.csr_to_coo(p[0]), p[1], np.ascontiguousarray(x), yt)
    return p[0], p[1], combine(p[2], product, beta, alpha)


def sampled_grad_x(backend, p, g, yt, alpha):
    """Rows of ``conj(alpha) G @ Y^H`` for part p (G on p's pattern)."""
    with kernels(backend):
        return _products.spmm(p[0], p[1], g, np.ascontiguousarray(conj(yt))) * alpha


def sampled_grad_y(backend, t, need, pieces, alpha):
    """Rows ``[j0, j1)`` of ``(conj(alpha) X^H @ G)^T = conj(alpha) G^T @ conj(X)``, from
    the part t of G's transpose and X's rows that t needs."""
    x = np.concatenate(pieces)
    with kernels(backend):
        return _products.spmm(t[0], local_cols(t, need), t[2], np.ascontiguousarray(conj(x))) * alpha

"""The distributed products, forward and backward side by side, each bit for bit the
one-machine op (``sparse_ref.autograd.sparse_ops``).

Why the bits agree: every output element is made by the same kernel, from the same
values, adding the same terms in the same order as on one machine; only the rows are
split among parts.

- Forward, row partitions do that by themselves: row i of ``A @ B`` (dense or sparse B)
  and the entries of row i of an SDDMM need row i of A and rows of the other operand;
  a part holds whole rows, so each element is one kernel call's work, never a sum of
  partial results.
- A sum *across* row parts -- ``A^H @ G``, the gradient of the dense (or sparse) right
  operand -- adds over the rows i of A. It is not computed as partial sums per part (that
  would add in another order) but on the transpose, partitioned by its own rows (a Dask
  shuffle): the part of A^H that holds row k holds all of it, in ascending i, exactly
  as the one-machine transpose does.

A part needs only some rows of the other operand: dense B goes to every worker once;
sparse B, and G in the backward passes, go by the rows each part needs.
"""

from __future__ import annotations

import numpy as np

from sparse_ref import _dtypes, _validate
from sparse_ref._errors import ArgumentTypeError
from sparse_ref._tensor import SparseTensor, Tensor
from sparse_ref.autograd.engine import Function
from sparse_ref.autograd.sparse_ops import fits
from sparse_ref.distributed import _worker as w
from sparse_ref.distributed._matrix import (
    Batch,
    DistSparse,
    Distribute,
    DistValues,
    column_cuts,
    current_client,
    exchange,
    transpose_parts,
    worker_backend,
)


def _blocks(batch: Batch, what: str, x: np.ndarray, row_starts) -> list:
    """The row blocks of a local dense array, one per part (each inside its task)."""
    return [batch.source(what, w.array, x[r0:r1], p=p)
            for p, (r0, r1) in enumerate(zip(row_starts[:-1].tolist(), row_starts[1:].tolist()))]


def _gather_rows(batch: Batch, futures) -> np.ndarray:
    """Row blocks computed on the workers, one after the other, in this process."""
    return np.concatenate(batch.gather(futures))


def _asks(batch: Batch, need, row_starts) -> list:
    """``asks[p][q]``: the rows part p needs (``need[p]``, sorted) that part q holds (rows
    ``row_starts[q]`` on), cut where need[p] lives, so each holder receives only its own."""
    splits = batch.map("ask", w.split_sorted, need, row_starts)
    return [[batch.field(f"ask-{q}", split, q, p=p) for q in range(row_starts.shape[0] - 1)]
            for p, split in enumerate(splits)]


def _picked(batch: Batch, what: str, pick, holders, row_starts, need) -> list:
    """``picked[p][q]``: the rows part p needs, picked by ``pick`` from holder q (where it
    lives), so p receives only the rows it needs, in the order of ``need[p]``."""
    asks = _asks(batch, need, row_starts)
    return [[batch.submit(f"{what}-{q}", pick, holder, int(row_starts[q]), asks[p][q], p=p)
             for q, holder in enumerate(holders)]
            for p in range(len(need))]


def _with_needed_rows(batch: Batch, t_parts, blocks, row_starts, fn, *args) -> list:
    """For every part t of a transpose: ``fn(backend, t, need, pieces, *args)``, with the
    rows of the dense row blocks (``blocks``, rows from ``row_starts``) that t needs."""
    need = batch.map("need", w.needed, t_parts)
    pieces = _picked(batch, "pick", w.pick_dense, blocks, row_starts, need)
    return batch.map("rows", fn, worker_backend(), t_parts, need, pieces, *args)


class DistMm(Function):
    """``C = A @ B``, A distributed, B dense (C dense, in this process), with ``reduce``:

    forward     row block p of C from part p of A and B (sent once to every worker)
    grad_A      mask(G @ B^H, A), part by part (SDDMM on G's row block p)
    grad_B      A^H @ G on the parts of A's transpose, with the rows of G each needs
    mean        G's rows divided by their row's stored count first
    amax/amin   both gradients routed to the winners (grad_B: each part's terms moved to
                the part of B's rows they add into, then added in the order of ascending i)
    """

    _name = "SparseAddmmBackward0"

    def forward(self, a, b, reduce):
        if reduce != "sum":
            self._name = "SparseMmReduceImplBackward0"
        batch = Batch(a.client, "spmm")
        data = fits(b._data, a.shape[1], None, "mm")  # (read once: see sparse_ops.fits)
        self.b = batch.source("b", w.array, data)  # one copy per worker
        rows = batch.map("rows", w.spmm, worker_backend(), a._parts, self.b, reduce)
        self.arg = None
        if reduce in ("amax", "amin"):
            self.arg = [batch.field("arg", r, 1, p=p) for p, r in enumerate(rows)]
            rows = [batch.field("out", r, 0, p=p) for p, r in enumerate(rows)]
        out = _gather_rows(batch, rows)
        self.a, self.reduce, self.n = a, reduce, b.shape[1]
        return Tensor(out)

    def backward(self, grad):
        a, batch, backend = self.a, Batch(self.a.client, "spmm-backward"), worker_backend()
        g = _blocks(batch, "g", grad, a.row_starts)
        if self.reduce == "mean":
            g = batch.map("mean", w.mean_scaled, a._parts, g)
        if self.reduce in ("amax", "amin"):
            return (*self._routed(batch, g), None)
        grad_a = grad_b = None
        if self.needs[0]:
            grad_a = DistValues(a.client, batch.map("grad-a", w.sddmm, backend, a._parts, g, self.b))
        if self.needs[1]:
            t = a._transposed(a._column_cuts())
            grad_b = _gather_rows(batch, _with_needed_rows(batch, t, g, a.row_starts, w.transposed_spmm))
        return grad_a, grad_b, None

    def _routed(self, batch, g):
        a = self.a
        grad_a = grad_b = None
        if self.needs[0]:
            grad_a = DistValues(a.client, batch.map("grad-a", w.routed_a, a._parts, self.arg, g, self.b))
        if self.needs[1]:
            cuts = a._column_cuts()  # B's rows are A's columns
            splits = batch.map("split", w.routed_b_split, a._parts, self.arg, g, cuts)
            pieces = exchange(batch, splits, a.nparts)
            grad_b = _gather_rows(batch, batch.map("rows", w.routed_b_join, pieces, cuts[:-1].tolist(),
                                                   cuts[1:].tolist(), self.n, a.dtype))
        return grad_a, grad_b


class DistSpgemm(Function):
    """``C = A @ B``, both distributed (C distributed, with A's row blocks):

    forward     part p of C: Gustavson on part p of A and the rows of B it needs
    grad_A      mask(G @ B^H, A), part by part, with the same rows of B
    grad_B      mask(A^H @ G, B), part by part of B: A^H on B's row blocks, and the rows
                of G^T (G's transpose, a shuffle) that each part of B needs
    """

    _name = "SparseSparseMatmulBackward0"

    def forward(self, a, b):
        batch = Batch(a.client, "spgemm")
        self.need = batch.map("need", w.needed, a._parts)
        picked = _picked(batch, "pick", w.pick_rows, b._parts, b.row_starts, self.need)
        self.b_rows = batch.map("b-rows", w.stack_rows, picked)
        self.c = batch.map("rows", w.spgemm, worker_backend(), a._parts, self.need, self.b_rows, b.shape[1])
        self.a, self.b = a, b
        layout = _dtypes.sparse_csr if a.layout == b.layout == _dtypes.sparse_csr else _dtypes.sparse_coo
        return DistSparse(a.client, self.c, a.row_starts, (a.shape[0], b.shape[1]), a.dtype, layout)

    def backward(self, grad: DistValues):
        a, b = self.a, self.b
        batch, backend = Batch(a.client, "spgemm-backward"), worker_backend()
        grad_a = grad_b = None
        if self.needs[0]:
            grad_a = DistValues(a.client, batch.map("grad-a", w.masked_a, backend, a._parts, self.need,
                                                    self.c, grad.futures, self.b_rows))
        if self.needs[1]:
            at = a._transposed(b.row_starts)  # A^T, cut as B's rows
            g = batch.map("g", w.with_values, self.c, grad.futures)
            g_cuts = column_cuts(batch, g, b.shape[1], a.nparts)
            gt = transpose_parts(batch, g, a.row_starts, b.shape[1], g_cuts)
            need = batch.map("need", w.needed, b._parts)
            pieces = _picked(batch, "pick", w.pick_rows, gt, g_cuts, need)
            grad_b = DistValues(a.client, batch.map("grad-b", w.masked_b, backend, b._parts, need, at,
                                                    pieces))
        return grad_a, grad_b


class DistSampledAddmm(Function):
    """``out = beta * S + alpha * mask(X @ Y, S)``, S distributed (out distributed, S's
    pattern), X and Y dense:

    forward     part p: SDDMM with X's row block p and Y^T (sent once to every worker)
    grad_S      conj(beta) G, part by part
    grad_X      conj(alpha) G @ Y^H, part by part (an SpMM on S's pattern)
    grad_Y      conj(alpha) X^H @ G, on the parts of G's transpose with the rows of X each
                needs
    """

    _name = "SparseSampledAddmmBackward0"

    def forward(self, s, x, y, beta, alpha):
        batch = Batch(s.client, "sddmm")
        x_data, y_data = x._data, y._data  # (each read once: see sparse_ops.fits)
        fits(x_data, s.shape[0], None, "sampled_addmm")
        fits(y_data, x_data.shape[1], s.shape[1], "sampled_addmm")
        self.x = _blocks(batch, "x", x_data, s.row_starts)
        self.yt = batch.source("yt", w.array, y_data.T)
        parts = batch.map("out", w.sampled_addmm, worker_backend(), s._parts, self.x, self.yt, beta, alpha)
        self.s, self.beta, self.alpha = s, beta, alpha
        return s._with_parts(parts)

    def backward(self, grad: DistValues):
        s, batch, backend = self.s, Batch(self.s.client, "sddmm-backward"), worker_backend()
        alpha = s.dtype.type(np.conjugate(self.alpha))
        grad_s = grad_x = grad_y = None
        if self.needs[0]:
            beta = np.conjugate(self.beta)
            grad_s = DistValues(s.client, batch.map("grad-s", w.scaled, grad.futures, beta))
        if self.needs[1]:
            grad_x = _gather_rows(batch, batch.map("grad-x", w.sampled_grad_x, backend, s._parts,
                                                   grad.futures, self.yt, alpha))
        if self.needs[2]:
            g = batch.map("g", w.with_values, s._parts, grad.futures)
            cuts = column_cuts(batch, g, s.shape[1], s.nparts)
            gt = transpose_parts(batch, g, s.row_starts, s.shape[1], cuts)
            rows = _gather_rows(batch, _with_needed_rows(batch, gt, self.x, s.row_starts,
                                                         w.sampled_grad_y, alpha))
            grad_y = np.ascontiguousarray(rows.T)
        return grad_s, grad_x, grad_y, None, None


SPARSE = (SparseTensor, DistSparse)


def mm(mat1, mat2, reduce: str | None = None):
    """``mat1 @ mat2`` for a distributed ``mat1``, bit for bit ``sr.sparse.mm`` on one machine.

    Parameters
    ----------
    mat1 : DistSparse
        From :func:`from_sparse`.
    mat2 : Tensor, SparseTensor or DistSparse
        Dense: the result is a dense ``sr.Tensor`` in this process, and ``reduce`` works as
        in ``sr.sparse.mm``. Sparse: the result is a DistSparse with mat1's row blocks (a
        local sparse ``mat2`` is first cut as mat1 is, with :func:`from_sparse`).
    reduce : {None, "sum", "mean", "amax", "amin"}, optional
        As ``sr.sparse.mm``; only with a dense ``mat2``.

    Both are differentiable: the gradients equal the one-machine ones bit for bit too.

    Examples
    --------
    >>> import sparse_ref as sr, sparse_ref.distributed as srd
    >>> a = sr.sparse_coo_tensor([[0, 1, 2], [1, 0, 2]], [1., 2., 3.], (3, 3), dtype=sr.float64)
    >>> b = sr.ones(3, 2, dtype=sr.float64)
    >>> A = srd.from_sparse(a, 2)
    >>> srd.mm(A, b)
    tensor([[1., 1.],
            [2., 2.],
            [3., 3.]], dtype=sparse_ref.float64)
    >>> srd.mm(A, A).gather().to_dense()
    tensor([[2., 0., 0.],
            [0., 2., 0.],
            [0., 0., 9.]], dtype=sparse_ref.float64)
    """
    reduce = _validate.mm_operands(mat1, mat2, reduce, "mm", sparse=SPARSE)
    worker_backend()  # (refused before any work is sent)
    if not isinstance(mat1, DistSparse):
        raise ArgumentTypeError(f"mm: mat1 must be distributed (sparse_ref.distributed.from_sparse), got "
                                f"{type(mat1).__name__}; for local operands use sr.sparse.mm")
    if isinstance(mat2, Tensor):
        return DistMm.apply(mat1, mat2, reduce)
    if not isinstance(mat2, DistSparse):  # cut as mat1 is, however many rows it has (checked above)
        mat2 = Distribute.apply(mat2, mat1.nparts, current_client(mat1.client, "mm"))
    elif mat2.client is not mat1.client:
        raise ArgumentTypeError("mm: mat1 and mat2 were made with different Dask Client objects (two clients of "
                                "one cluster count as two): make both with the same client")
    return DistSpgemm.apply(mat1, mat2)


def sampled_addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat1 @ mat2)`` at the stored entries of a distributed
    ``input`` only (SDDMM), bit for bit ``sr.sparse.sampled_addmm`` on one machine.

    ``mat1`` and ``mat2`` are dense tensors in this process: each part receives its rows of
    ``mat1``, every worker one copy of ``mat2``. The result is a DistSparse with
    ``input``'s pattern and row blocks; differentiable.

    Examples
    --------
    >>> import sparse_ref as sr, sparse_ref.distributed as srd
    >>> mask = srd.from_sparse(sr.sparse_coo_tensor([[0, 1], [1, 0]], [0., 10.], (2, 2)), 2)
    >>> x = sr.tensor([[1., 2.], [3., 4.]])
    >>> srd.sampled_addmm(mask, x, x).gather().to_dense()
    tensor([[ 0., 10.],
            [25.,  0.]])
    """
    _validate.sampled_addmm_operands(input, mat1, mat2, beta, alpha, "sampled_addmm", sparse=DistSparse)
    worker_backend()
    return DistSampledAddmm.apply(input, mat1, mat2, beta, alpha)

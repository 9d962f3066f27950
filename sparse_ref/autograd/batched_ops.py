"""Re-indexing ops for batched (3-D) products: a batch of B sparse matrices of shape
(m, n) as one block-diagonal matrix of shape (B*m, B*n), and back.

A batch needs no kernel of its own. Entry (b, r, c) of a 3-D tensor becomes entry
(b*m + r, b*n + c) of the block-diagonal matrix::

    [ S_0              ]
    [      S_1         ]     (B*m) x (B*n); block b holds S_b
    [           ...    ]
    [              S_B-1]

and ``blockdiag(A) @ blockdiag(B) = blockdiag(A_0 @ B_0, ..., A_B-1 @ B_B-1)``: one 2-D
product computes every batch. Row b*m + r of the block-diagonal matrix holds exactly the
entries of row r of batch b, with the same columns in the same order (shifted by b*n),
so each row is reduced in the order the 2-D kernels define for batch b alone: batch b of
the result is bit for bit the 2-D product of batch b.

Both ops keep the values and their order, so their gradients pass through unchanged.
The batch-major coalesced order (b, r, c) and the row-major order of the block-diagonal
matrix are the same order: b*m + r grows with (b, r), and within a row the columns
b*n + c grow with c (b is fixed by the row). A gradient carried as one value per
coalesced entry (``engine``) therefore means the same entries on either side.
"""

from __future__ import annotations

import numpy as np

from sparse_ref import _backend
from sparse_ref._tensor import SparseTensor
from sparse_ref.autograd.engine import Function


def block_diagonal_indices(idx: np.ndarray, shape: tuple) -> np.ndarray:
    """The (2, nnz) indices of the block-diagonal matrix of a batch with (3, nnz) indices
    (batch, row, column) and shape (B, m, n): (b*m + r, b*n + c). Callers have checked
    that B*m and B*n fit in int64."""
    _, m, n = shape
    return np.stack([idx[0] * m + idx[1], idx[0] * n + idx[2]])


def batch_indices(idx: np.ndarray, shape: tuple) -> np.ndarray:
    """The inverse of :func:`block_diagonal_indices`: (3, nnz) indices (b, r, c) of the
    entries (i, j) of a block-diagonal matrix of blocks (m, n), each inside its block."""
    _, m, n = shape
    out = np.empty((3, idx.shape[1]), dtype=np.int64)
    if idx.shape[1]:  # (no entries when m == 0 or n == 0)
        np.divmod(idx[0], m, out=(out[0], out[1]))
        out[2] = idx[1] - out[0] * n
    return out


class BlockDiagonal(Function):
    """``D = blockdiag(S)``: a 3-D sparse S of shape (B, m, n) as the 2-D matrix of shape
    (B*m, B*n) with S's batch b as its diagonal block b. D is coalesced, its entries in
    the order of S's coalesced entries, so grad_S = grad_D (unchanged).

    D's indices (and the CSR forms the products derive from them) are kept with S, so a
    tensor used again pays for them once. D's values are S's values (the same memory)."""

    _name = "BlockDiagonalBackward0"
    saves = ()  # backward reads no input data

    def forward(self, s):
        c = s._coalesced_form()
        cache = c._cache if _backend.trusted() else {}  # (a registered backend's: not kept)
        if "block_diagonal" not in cache:  # made once per tensor, like its CSR form
            batches, m, n = s.shape
            indices = block_diagonal_indices(c._idx, s.shape)
            cache["block_diagonal"] = SparseTensor._make(indices, c._val, (batches * m, batches * n),
                                                         coalesced=True)
        d = cache["block_diagonal"]
        out = SparseTensor._make(d._idx, d._val, d.shape, coalesced=True)  # a new node of the graph
        out._cache = d._cache  # the same entries: its CSR forms are made once, for every call
        return out

    def backward(self, grad):
        return (grad,)


class Unblock(Function):
    """``S = unblock(D)``: the diagonal blocks of a 2-D sparse D of shape (B*m, B*n), whose
    entries all lie in those blocks (a product of block-diagonal matrices), as a 3-D
    tensor of shape (B, m, n). S is coalesced, in the order of D's coalesced entries, so
    grad_D = grad_S (unchanged)."""

    _name = "UnblockBackward0"
    saves = ()  # backward reads no input data

    def forward(self, d, shape):
        c = d._coalesced_form()
        return SparseTensor._make(batch_indices(c._idx, shape), c._val, shape, coalesced=True)

    def backward(self, grad):
        return grad, None

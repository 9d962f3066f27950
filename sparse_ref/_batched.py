"""Batched products (layer 5): ``sr.bmm``, and ``sr.sparse.mm``, ``sr.sparse.sampled_addmm``
and ``@`` with 3-D operands, each batch ``b`` multiplied by its own matrix.

No kernel of its own: a batch runs as ONE 2-D product of block-diagonal matrices
(``sparse_ref.autograd.batched_ops``), through the 2-D ops of ``sparse_ops`` and their
gradients. With A of shape (B, m, n), X and S of shape (B, n, p)::

    sparse @ dense   blockdiag(A) @ X.reshape(B*n, p)          -> (B*m, p)   -> (B, m, p)
    sparse @ sparse  blockdiag(A) @ blockdiag(S)               -> (B*m, B*p) -> its blocks
    dense @ sparse   [Y_0 Y_1 ...] @ blockdiag(S)              -> (m, B*p)   -> (B, m, p)
                     (Y = A dense: its batches side by side, (m, B*n))

Every row of the 2-D product is row r of one batch b, with that batch's entries in that
batch's order, so batch b of the result is bit for bit the 2-D product of batch b (the
tests compare against per-batch 2-D calls). The gradient of a sparse operand is a 3-D
sparse tensor with the operand's own coalesced pattern: the re-indexing ops pass the
masked gradients of the 2-D ops through unchanged.

The callers have checked the operands (``_validate.bmm_operands``,
``_validate.batched_sampled_addmm_operands``).
"""

from __future__ import annotations

from sparse_ref._tensor import SparseTensor
from sparse_ref.autograd import sparse_ops as ops
from sparse_ref.autograd.batched_ops import BlockDiagonal, Unblock
from sparse_ref.autograd.dense_ops import MatMul, Permute, Reshape


def _side_by_side(x, batches: int, rows: int, cols: int):
    """A dense (B, rows, cols) batch as one (rows, B*cols) matrix: its batches side by side."""
    return Reshape.apply(Permute.apply(x, (1, 0, 2)), (rows, batches * cols))


class _BmmView(Reshape):
    """The reshape that ends a batched product called as ``sr.bmm``: torch names that
    node ``BmmBackward0``, so ``y.grad_fn`` prints as it does in torch."""

    _name = "BmmBackward0"


class _BmmPermute(Permute):
    """As :class:`_BmmView`, for the permute that ends dense x sparse."""

    _name = "BmmBackward0"


class _BmmMatMul(MatMul):
    """As :class:`_BmmView`, for dense x dense."""

    _name = "BmmBackward0"


def mm(mat1, mat2, reduce: str = "sum", max_nnz=None, bmm: bool = False):
    """The batched product ``mat1[b] @ mat2[b]`` for every b, as one 2-D product.

    sparse x dense -> dense (``reduce`` allowed), sparse x sparse -> sparse (coalesced,
    3-D), dense x sparse -> dense, dense x dense -> dense. ``bmm``: called as ``sr.bmm``,
    whose dense result's node is named as torch's (``BmmBackward0``)."""
    batches, m, n = mat1.shape
    p = mat2.shape[2]
    sparse1, sparse2 = isinstance(mat1, SparseTensor), isinstance(mat2, SparseTensor)
    if sparse1 and sparse2:
        product = ops.sparse_sparse_mm(BlockDiagonal.apply(mat1), BlockDiagonal.apply(mat2), max_nnz)
        return Unblock.apply(product, (batches, m, p))
    if sparse1:
        product = ops.SparseMm.apply(BlockDiagonal.apply(mat1), Reshape.apply(mat2, (batches * n, p)), reduce)
        return (_BmmView if bmm else Reshape).apply(product, (batches, m, p))
    if sparse2:
        product = ops.DenseSparseMm.apply(_side_by_side(mat1, batches, m, n), BlockDiagonal.apply(mat2))
        return (_BmmPermute if bmm else Permute).apply(Reshape.apply(product, (m, batches, p)), (1, 0, 2))
    return (_BmmMatMul if bmm else MatMul).apply(mat1, mat2)


def sampled_addmm(input, mat1, mat2, beta, alpha):
    """``beta * input[b] + alpha * (mat1[b] @ mat2[b])`` at the stored positions of
    ``input[b]``, for every b: one SDDMM of ``blockdiag(input)`` (B*m, B*p) with mat1 as
    (B*m, k) and mat2's batches side by side (k, B*p). The result has input's coalesced
    pattern (3-D)."""
    batches, m, p = input.shape
    k = mat1.shape[2]
    product = ops.SparseSampledAddmm.apply(BlockDiagonal.apply(input), Reshape.apply(mat1, (batches * m, k)),
                                           _side_by_side(mat2, batches, k, p), beta, alpha)
    return Unblock.apply(product, (batches, m, p))

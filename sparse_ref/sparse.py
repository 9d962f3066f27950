"""``sparse_ref.sparse``: the products of ``torch.sparse``, with the same names and arguments.

``mm`` dispatches on the layouts of its operands:

==============  ==============  ==========================================
mat1            mat2            result
==============  ==============  ==========================================
sparse COO      dense           dense (SpMM; ``reduce=`` allowed)
sparse COO      sparse COO      sparse COO, coalesced (SpGEMM)
dense           sparse COO      dense
dense           dense           dense
==============  ==============  ==========================================

Every check runs before any kernel (``sparse_ref._validate``); uncoalesced operands are
coalesced first, so results follow the accumulation order in the kernels' docstrings.
"""

from __future__ import annotations

import numpy as np

from sparse_ref import _products, _validate
from sparse_ref._tensor import SparseTensor, Tensor

__all__ = ["addmm", "mm", "sampled_addmm"]


def mm(mat1, mat2, reduce: str | None = None):
    """Matrix product of two 2-D tensors, at least one of them sparse, like ``torch.sparse.mm``.

    Parameters
    ----------
    mat1, mat2 : SparseTensor or Tensor
        The operands; see the table in the module docstring for the result's layout.
    reduce : {None, "sum", "mean", "amax", "amin"}, optional
        Only for sparse ``mat1`` and dense ``mat2``: reduce each row's products
        ``mat1[i, k] * mat2[k, j]`` over the stored entries of row i instead of summing
        them. ``"max"``/``"min"`` are aliases. Explicit zeros take part, empty rows give 0,
        NaN propagates, and among equal values the first stored entry wins.

    Returns
    -------
    Tensor or SparseTensor
        Dense for a dense operand; sparse COO (coalesced, the structural product: exact
        cancellations and products of explicit zeros stay as stored zeros) for two sparse
        operands.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> a = sr.sparse_coo_tensor([[0, 1], [2, 0]], [2., 3.], (2, 3))
    >>> b = sr.tensor([[1., 2.], [3., 4.], [5., 6.]])
    >>> sr.sparse.mm(a, b)
    tensor([[10., 12.],
            [ 3.,  6.]])
    >>> sr.sparse.mm(a, b, reduce="amax")
    tensor([[10., 12.],
            [ 3.,  6.]])
    """
    reduce = _validate.mm_operands(mat1, mat2, reduce, "mm")
    if isinstance(mat1, SparseTensor) and isinstance(mat2, SparseTensor):
        return _sparse_sparse(mat1, mat2)
    if isinstance(mat1, SparseTensor):
        return Tensor(_sparse_dense(mat1, mat2._data, reduce)[0])
    if isinstance(mat2, SparseTensor):
        return Tensor(_dense_sparse(mat1._data, mat2))
    return Tensor(np.matmul(mat1._data, mat2._data))


def _sparse_dense(a: SparseTensor, b: np.ndarray, reduce: str = "sum"):
    """``(out, arg)`` of a sparse @ dense product (arg: the amax/amin winners, else None)."""
    crow, col, val = a._csr()
    b = np.ascontiguousarray(b)
    if reduce == "sum":
        return _products.spmm(crow, col, val, b), None
    return _products.spmm_reduce(crow, col, val, b, reduce)


def _dense_sparse(x: np.ndarray, s: SparseTensor) -> np.ndarray:
    """``X @ S`` as ``(S^T @ X^T)^T``: SpMM with the transposed CSR of S."""
    t_crow, t_col, t_val, _ = s._csr_t()
    out_t = _products.spmm(t_crow, t_col, t_val, np.ascontiguousarray(x.T))
    return np.ascontiguousarray(out_t.T)


def _sparse_sparse(a: SparseTensor, b: SparseTensor) -> SparseTensor:
    a_crow, a_col, a_val = a._csr()
    b_crow, b_col, b_val = b._csr()
    indices, val, crow = _products.spgemm(a_crow, a_col, a_val, b_crow, b_col, b_val, b.shape[1])
    out = SparseTensor._make(indices, val, (a.shape[0], b.shape[1]), coalesced=True)
    out._cache["csr"] = (crow, out._idx[1], out._val)
    return out


def addmm(mat, mat1, mat2, *, beta=1, alpha=1):
    """``beta * mat + alpha * (mat1 @ mat2)`` for a sparse ``mat1`` and a dense ``mat2``,
    like ``torch.sparse.addmm``; ``mat`` broadcasts to the result's shape.

    With ``beta == 0`` the values of ``mat`` are ignored (NaN and inf in it do not
    propagate), as in torch.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> a = sr.sparse_coo_tensor([[0, 1], [1, 0]], [1., 2.], (2, 2))
    >>> sr.sparse.addmm(sr.ones(2, 2), a, sr.tensor([[1., 0.], [0., 1.]]), beta=0.5, alpha=2)
    tensor([[0.5000, 2.5000],
            [4.5000, 0.5000]])
    """
    _validate.addmm_operands(mat, mat1, mat2, beta, alpha, "addmm")
    product, _ = _sparse_dense(mat1, mat2._data)
    return Tensor(_combine(mat._data, product, beta, alpha))


def _combine(base: np.ndarray, product: np.ndarray, beta, alpha) -> np.ndarray:
    """``beta * base + alpha * product`` in the product's dtype; beta == 0 drops base."""
    dt = product.dtype
    scaled = product if alpha == 1 else product * dt.type(alpha)
    if beta == 0:
        return np.ascontiguousarray(np.broadcast_to(scaled, product.shape)) if alpha != 1 else scaled
    base = base if beta == 1 else base * dt.type(beta)
    return np.ascontiguousarray(np.broadcast_to(base, product.shape) + scaled)


def sampled_addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat1 @ mat2)``, computed only at the stored positions of the
    sparse ``input`` (SDDMM), like ``torch.sparse.sampled_addmm``.

    The result is sparse with ``input``'s coalesced pattern; explicit zeros of ``input``
    are sampled too. torch takes a CSR ``input`` only; sparse_ref takes COO. With
    ``beta == 0`` the values of ``input`` are ignored.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> mask = sr.sparse_coo_tensor([[0, 1], [1, 0]], [0., 10.], (2, 2))
    >>> x = sr.tensor([[1., 2.], [3., 4.]])
    >>> sr.sparse.sampled_addmm(mask, x, x).to_dense()
    tensor([[ 0., 10.],
            [25.,  0.]])
    """
    _validate.sampled_addmm_operands(input, mat1, mat2, beta, alpha, "sampled_addmm")
    c = input._coalesced_form()
    y = np.ascontiguousarray(mat2._data.T)
    x = np.ascontiguousarray(mat1._data)
    product = _products.sddmm(c._idx[0], c._idx[1], x, y)
    return SparseTensor._make(c._idx, _combine(c._val, product, beta, alpha), c.shape, coalesced=True)

"""The functions behind the tensor methods (layer 5), spelled as torch spells them.

``sr.add(a, b)`` is ``a + b``, ``sr.sum(x)`` is ``x.sum()``, ``sr.matmul(a, b)`` is
``a @ b``: each function checks what only it can check, then runs one differentiable op
of ``sparse_ref.autograd`` (or ``sr.sparse.mm``). The tensor methods call these
functions -- the one edge of the package that runs up a layer, bound once in
``sparse_ref/__init__.py`` (see the docstring of ``sparse_ref._tensor``).

The sparse-only ones (``coalesce``, ``to_dense``, ``values``, ...) are methods in torch
and are not exported as ``sr.<name>``; they are here so that every method has its body
in one place.
"""

from __future__ import annotations

from sparse_ref import _dtypes, _validate, sparse
from sparse_ref._errors import ArgumentError
from sparse_ref._tensor import SparseTensor, Tensor
from sparse_ref.autograd import dense_ops, sparse_ops
from sparse_ref.autograd.engine import backward  # noqa: F401  (Tensor.backward runs it)

__all__ = ["add", "div", "matmul", "mean", "mm", "mul", "neg", "pow", "sub", "sum", "t"]


def _dense(input, other, op: str):
    """``(input, other)`` as two dense tensors of one dtype (a number takes input's dtype)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a dense Tensor, got {type(input).__name__}")
    return input, input._operand(other, op)


def add(input, other) -> Tensor:
    """``input + other`` (dense; ``other`` may be a number); broadcasts, differentiable.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.add(sr.tensor([1., 2.]), 1.5)
    tensor([2.5000, 3.5000])
    """
    return dense_ops.Add.apply(*_dense(input, other, "add"))


def sub(input, other) -> Tensor:
    """``input - other`` (see :func:`add`).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.sub(sr.tensor([1., 2.]), sr.tensor([0.5, 0.5]))
    tensor([0.5000, 1.5000])
    """
    return dense_ops.Sub.apply(*_dense(input, other, "sub"))


def mul(input, other) -> Tensor:
    """``input * other`` elementwise (see :func:`add`).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.mul(sr.tensor([1., 2.]), 3.)
    tensor([3., 6.])
    """
    return dense_ops.Mul.apply(*_dense(input, other, "mul"))


def div(input, other) -> Tensor:
    """``input / other`` elementwise, for floating and complex dtypes (see :func:`add`).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.div(sr.tensor([1., 2.]), 4.)
    tensor([0.2500, 0.5000])
    """
    input, other = _dense(input, other, "div")
    if input.dtype.kind not in "fc":
        raise TypeError(f"/: needs a floating or complex dtype, got {input.dtype.name}")
    return dense_ops.Div.apply(input, other)


def neg(input) -> Tensor:
    """``-input``; differentiable.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.neg(sr.tensor([1., -2.]))
    tensor([-1.,  2.])
    """
    return dense_ops.Neg.apply(input)


def pow(input, exponent) -> Tensor:
    """``input ** exponent`` for a real number ``exponent``; differentiable.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.pow(sr.tensor([2., 3.]), 2)
    tensor([4., 9.])
    """
    if isinstance(exponent, bool) or not isinstance(exponent, (int, float)):
        raise TypeError(f"**: the exponent must be a real number, got {type(exponent).__name__}")
    if input.dtype.kind in "iu" and (exponent != int(exponent) or exponent < 0):
        raise TypeError(f"**: exponent {exponent} needs a floating tensor, got {input.dtype.name}")
    return dense_ops.Pow.apply(input, exponent)


def sum(input, dim: int | None = None, keepdim: bool = False) -> Tensor:  # noqa: A001 (torch's name)
    """The sum of all elements, or along ``dim``; of a sparse tensor, the sum of its stored
    values (every stored entry receives the gradient, explicit zeros included), along one
    ``dim`` a sparse vector (:func:`sparse_ref.sparse.sum`).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.sum(sr.tensor([[1., 2.], [3., 4.]]), 1)
    tensor([3., 7.])
    """
    if isinstance(input, SparseTensor):
        return sparse_sum(input, dim, keepdim)
    return dense_ops.Sum.apply(input, dim, keepdim)


def mean(input, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """The mean of all elements, or along ``dim``, for floating and complex dtypes.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.mean(sr.tensor([[1., 2.], [3., 4.]]), 0)
    tensor([2., 3.])
    """
    if input.dtype.kind not in "fc":
        raise TypeError(f"mean: needs a floating or complex dtype, got {input.dtype.name}")
    return dense_ops.Mean.apply(input, dim, keepdim)


def t(input):
    """The transpose of a matrix; a tensor of 0 or 1 dimensions as it is. A sparse
    tensor's transpose swaps its indices and, as in torch, is flagged uncoalesced.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.t(sr.tensor([[1., 2.]]))
    tensor([[1.],
            [2.]])
    """
    if isinstance(input, SparseTensor):
        return sparse_ops.SparseTranspose.apply(input) if input.ndim == 2 else input  # a sparse vector
    if input.ndim > 2:
        raise ArgumentError(f"t() expects a tensor with <= 2 dimensions, but self is {input.ndim}D")
    return dense_ops.Transpose.apply(input)


def matmul(input, other):
    """``input @ other`` for 2-D operands, dense or sparse (:func:`sparse_ref.sparse.mm`).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> a = sr.sparse_coo_tensor([[0, 1], [1, 0]], [2., 3.], (2, 2))
    >>> sr.matmul(a, sr.tensor([[1.], [1.]]))
    tensor([[2.],
            [3.]])
    """
    return sparse.mm(input, other)


mm = matmul


# -- method bodies with no torch function of their own --------------------------------------

def to_sparse(input) -> SparseTensor:
    """``Tensor.to_sparse()``: the nonzero entries as a coalesced COO tensor."""
    return sparse_ops.ToSparse.apply(input)


def to_sparse_csr(input):
    """``SparseTensor.to_sparse_csr()``."""
    _validate.sparse_matrix(input, "self", "to_sparse_csr")  # not a sparse vector
    return sparse_ops.ToCsr.apply(input)


def to_sparse_coo(input) -> SparseTensor:
    """``SparseCsrTensor.to_sparse()``."""
    return sparse_ops.ToCoo.apply(input)


def to_dense(input) -> Tensor:
    """``SparseTensor.to_dense()``."""
    return sparse_ops.ToDense.apply(input)


def coalesce(input) -> SparseTensor:
    """``SparseTensor.coalesce()`` of an uncoalesced tensor."""
    return sparse_ops.Coalesce.apply(input)


def values(input) -> Tensor:
    """``SparseTensor.values()`` of a coalesced tensor."""
    return sparse_ops.Values.apply(input)


# -- sparse arithmetic ------------------------------------------------------------------------
# The bodies of SparseTensor's arithmetic methods, sums and casts: check (``_validate``),
# then run one op of ``sparse_ops``, where each rule and its gradient are written. Results
# keep a CSR input's layout where torch does (and for ``s - t``, ``s / c`` and ``s * t``
# with a COO ``t``, where torch raises); a sum over one dim is a COO sparse vector.

def sparse_mul(input, other):
    """``input * other`` (and ``other * input``) for a sparse ``input``: with a number or a
    dense tensor (broadcast to input's shape), input's stored entries scaled, its pattern
    kept; with a sparse tensor, the intersection of the two patterns (coalesced)."""
    if isinstance(other, SparseTensor):
        _validate.sparse_pair(input, other, "mul")
        return sparse_ops.SparseMul.apply(input, other)
    if isinstance(other, Tensor):
        _validate.sparse_dense_pair(input, other, "mul")
        return sparse_ops.SparseDenseMul.apply(input, other)
    return sparse_ops.SparseScale.apply(input, _validate.scalar_operand(other, input.dtype, "mul"))


def sparse_div(input, other):
    """``input / other`` for a sparse ``input`` and a number or 0-d dense ``other``."""
    return sparse_ops.SparseDiv.apply(input, _validate.divisor(input, other, "div"))


def sparse_neg(input):
    """``-input`` for a sparse ``input``."""
    return sparse_ops.SparseNeg.apply(input)


def sparse_add(input, other):
    """``input + other``, both sparse: the union of their patterns."""
    _validate.sparse_add_operand(other, "add")
    _validate.sparse_pair(input, other, "add")
    return sparse_ops.SparseAdd.apply(input, other, 1)


def sparse_sub(input, other):
    """``input - other``, both sparse: the union of their patterns."""
    _validate.sparse_add_operand(other, "sub")
    _validate.sparse_pair(input, other, "sub")
    return sparse_ops.SparseAdd.apply(input, other, -1)


def sparse_sum(input, dim=None, keepdim: bool = False):
    """``SparseTensor.sum(dim, keepdim)``: see :func:`sparse_ref.sparse.sum`."""
    return sparse_ops.sparse_sum(input, _validate.reduce_dims(dim, input.ndim, "sum"), keepdim)


def sparse_to(input, dtype, copy: bool = False):
    """``SparseTensor.to(dtype)``, ``.double()``, ``.float()``."""
    if dtype is None:  # np.dtype(None) would be float64
        raise TypeError("to: expected a dtype (sr.float64, ...), got None")
    return sparse_ops.cast(input, _dtypes.as_dtype(dtype, "to"), copy)

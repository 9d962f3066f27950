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

import builtins  # this module defines sum, max, min, abs and pow, as torch does

import numpy as np

from sparse_ref import _batched, _dtypes, _errors, _validate, sparse
from sparse_ref._errors import ArgumentError, ShapeError
from sparse_ref._grad_mode import is_grad_enabled, no_grad
from sparse_ref._tensor import SparseTensor, Tensor
from sparse_ref.autograd import dense_ops, sparse_ops
from sparse_ref.autograd.engine import backward  # noqa: F401  (Tensor.backward runs it)

__all__ = ["abs", "add", "argmax", "argmin", "bmm", "cat", "clamp", "div", "exp", "flatten", "log", "log_softmax",
           "matmul", "max", "maximum", "mean", "min", "minimum", "mm", "mul", "neg", "norm", "permute",
           "pow", "relu", "reshape", "sigmoid", "softmax", "sqrt", "squeeze", "stack", "sub", "sum", "t",
           "tanh", "transpose", "unsqueeze", "where"]


def _dense_of(s, like, op: str) -> Tensor:
    """The dense matrix of sparse ``s`` (differentiable), for an op with a dense ``like``."""
    if isinstance(like, Tensor):
        _validate.same_dtype_arg(like, s, op)
    return s.to_dense()


def _dense(input, other, op: str, opmath: bool = False):
    """``(input, other)`` as two dense tensors of one dtype (a number takes input's dtype;
    with ``opmath``, float32 for a half input: ``Tensor._operand``)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a dense Tensor, got {type(input).__name__}")
    other = input._operand(other, op, opmath)
    _broadcast(input, other, op)
    return input, other


def alpha_number(alpha, op: str):
    """torch's ``alpha=`` (a Scalar) as a number: a number, or a dense 0-d tensor, which
    stands for its value (``alpha=sr.tensor(2.)``, as torch takes it). No gradient could
    flow to alpha, so a tensor that requires one is refused, as torch refuses it; so are
    a bool, an array and a tensor of one or more dims."""
    if isinstance(alpha, Tensor) and alpha.ndim == 0 and not alpha.requires_grad:
        alpha = alpha.item()
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, (int, float, complex, np.number)):
        raise TypeError(f"{op}: alpha must be a number, not {type(alpha).__name__}")
    return alpha


def _scaled_other(other, alpha, op: str, input=None):
    """``alpha * other`` for torch's ``add(input, other, alpha=)`` (``other`` as it is when
    alpha is 1), and whether ``input`` is a number before a dense tensor (``add(2, x)``);
    a non-integer alpha with integer tensors, and a number with a sparse tensor (a dense
    result), refused as torch's."""
    alpha = alpha_number(alpha, op)
    integral = [t for t in (input, other) if isinstance(t, (Tensor, SparseTensor)) and t.dtype.kind in "iub"]
    if integral and not isinstance(alpha, (int, np.integer)):
        raise TypeError(f"{op}: for integral input tensors, argument alpha must not be a floating point number "
                        f"(got {alpha!r})")
    number_first = not isinstance(input, (Tensor, SparseTensor)) and isinstance(other, (Tensor, SparseTensor))
    if number_first and isinstance(other, SparseTensor):
        raise TypeError(f"{op}: a number and a sparse tensor would make a dense result (torch has no such op for "
                        "sparse tensors either); use t.to_dense()")
    return (other if alpha == 1 else other * alpha), number_first


def add(input, other, *, alpha=1) -> Tensor:
    """``input + alpha * other`` (dense; either may be a number); broadcasts,
    differentiable.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.add(sr.tensor([1., 2.]), 1.5)
    tensor([2.5000, 3.5000])
    >>> sr.add(sr.tensor([1., 2.]), sr.tensor([1., 1.]), alpha=2)
    tensor([3., 4.])
    """
    other, number_first = _scaled_other(other, alpha, "add", input)
    if number_first:  # add(2, x), as torch
        return other + input
    if isinstance(input, SparseTensor):
        return sparse_add(input, other)
    if isinstance(other, SparseTensor):  # dense + sparse: a dense result, as torch
        return dense_ops.Add.apply(*_dense(input, _dense_of(other, input, "add"), "add"))
    return dense_ops.Add.apply(*_dense(input, other, "add", opmath=True))


def sub(input, other, *, alpha=1) -> Tensor:
    """``input - alpha * other`` (see :func:`add`).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.sub(sr.tensor([1., 2.]), sr.tensor([0.5, 0.5]))
    tensor([0.5000, 1.5000])
    """
    other, number_first = _scaled_other(other, alpha, "sub", input)
    if number_first:  # sub(2, x), as torch
        return input - other
    if isinstance(input, SparseTensor):
        return sparse_sub(input, other)
    if isinstance(other, SparseTensor):  # dense - sparse: a dense result, as torch
        return dense_ops.Sub.apply(*_dense(input, _dense_of(other, input, "sub"), "sub"))
    return dense_ops.Sub.apply(*_dense(input, other, "sub", opmath=True))


def mul(input, other) -> Tensor:
    """``input * other`` elementwise (see :func:`add`).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.mul(sr.tensor([1., 2.]), 3.)
    tensor([3., 6.])
    """
    if isinstance(input, SparseTensor):
        return sparse_mul(input, other)
    if isinstance(other, SparseTensor):  # dense * sparse: a sparse result, as torch
        return sparse_mul(other, input)
    return dense_ops.Mul.apply(*_dense(input, other, "mul", opmath=True))


def div(input, other) -> Tensor:
    """``input / other`` elementwise, for floating and complex dtypes (see :func:`add`).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.div(sr.tensor([1., 2.]), 4.)
    tensor([0.2500, 0.5000])
    """
    if isinstance(input, SparseTensor):
        return sparse_div(input, other)
    if isinstance(other, SparseTensor):
        raise _errors.ArgumentTypeError("div: a sparse divisor is not supported (as in torch); divide by a "
                                        "number or a 0-d tensor, or call .to_dense() first")
    input, other = _dense(input, other, "div", opmath=True)
    if _dtypes.kind(input.dtype) not in "fc":
        raise TypeError(f"/: needs a floating or complex dtype, got {input.dtype.name}")
    return dense_ops.Div.apply(input, other)


def clone(input):
    """A copy of ``input`` (dense or sparse, same layout and pattern) that is part of the
    graph, as torch's: the gradient of the copy flows back to ``input`` unchanged.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> x = sr.tensor([1., 2.], requires_grad=True)
    >>> y = sr.clone(x)
    >>> y.grad_fn.name()
    'CloneBackward0'
    >>> (y * y).sum().backward()
    >>> x.grad
    tensor([2., 4.])
    """
    if isinstance(input, SparseTensor):
        return sparse_ops.SparseClone.apply(input)
    if not isinstance(input, Tensor):
        raise TypeError(f"clone(): argument 'input' (position 1) must be Tensor, not {type(input).__name__}")
    return dense_ops.Clone.apply(input)


def neg(input) -> Tensor:
    """``-input`` (sparse too: the pattern kept); differentiable.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.neg(sr.tensor([1., -2.]))
    tensor([-1.,  2.])
    """
    if isinstance(input, SparseTensor):
        return sparse_neg(input)
    return dense_ops.Neg.apply(input)


def pow(input, exponent) -> Tensor:
    """``input ** exponent`` for a real number ``exponent``, or elementwise for a floating
    dense ``exponent`` of input's dtype (broadcast); differentiable. A sparse
    input: its stored values' powers, its pattern kept (exponent 0 is refused, as torch).
    Or a number to the power of a dense tensor (``2 ** t``, ``sr.pow(2, t)``), in the
    tensor's dtype, differentiable in the tensor.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.pow(sr.tensor([2., 3.]), 2)
    tensor([4., 9.])
    >>> 2 ** sr.tensor([0., 0.5, 3.])
    tensor([1.0000, 1.4142, 8.0000])
    """
    if not isinstance(input, (Tensor, SparseTensor)):
        if isinstance(exponent, (Tensor, SparseTensor)):
            return _number_to_the(input, exponent)
        raise TypeError(f"pow: expected a tensor as the base or the exponent, got {type(input).__name__} and "
                        f"{type(exponent).__name__}")
    if isinstance(exponent, Tensor) and isinstance(input, SparseTensor):
        raise TypeError("**: a sparse tensor to the power of a tensor is not supported (torch's neither); "
                        "use a number exponent, or input.to_dense()")
    if isinstance(exponent, Tensor) and not isinstance(input, SparseTensor):  # x ** y, elementwise
        x, y = _dense(input, exponent, "**")
        if _dtypes.kind(x.dtype) not in "fc":
            raise _errors.DTypeError(f"**: a tensor exponent needs floating tensors (sparse_ref does not promote "
                                     f"dtypes), got {x.dtype.name}; cast first: t.float()")
        return dense_ops.PowTensor.apply(x, y)
    if isinstance(exponent, bool) or not isinstance(exponent, (int, float)):
        raise TypeError(f"**: the exponent must be a real number or a dense tensor, got {type(exponent).__name__}")
    if isinstance(input, SparseTensor):  # the stored values' powers, as torch's
        if exponent == 0:
            raise ArgumentError("pow: cannot raise to zeroth power on sparse tensor; it would make the "
                                "result tensor dense")
        if input.dtype.kind in "iu" and (exponent != int(exponent) or exponent < 0):
            raise _errors.DTypeError(f"**: exponent {exponent} needs a floating tensor, got {input.dtype.name}")
        return _sparse_valuewise(dense_ops.Pow.apply, input, exponent)
    if input.dtype == np.bool_:  # (NumPy gave int8, a dtype sparse_ref does not have)
        raise _errors.DTypeError("**: a bool tensor has no powers in sparse_ref (it does not promote dtypes); "
                                 "cast first: t.long() or t.float()")
    if input.dtype.kind in "iu" and (exponent != int(exponent) or exponent < 0):
        raise _errors.DTypeError(f"**: exponent {exponent} needs a floating tensor, got {input.dtype.name}")
    return dense_ops.Pow.apply(input, exponent)


def _number_to_the(base, exponent) -> Tensor:
    """``base ** exponent`` for a number base and a dense tensor exponent (torch's
    ``pow(Scalar, Tensor)``): the base taken in the tensor's dtype, as any number meeting
    a tensor here (so a float base needs a floating tensor, a complex one a complex
    tensor); an integer tensor's negative exponents give what torch's give (0, or 1 and
    -1 for the bases 1 and -1)."""
    if isinstance(exponent, SparseTensor):
        raise TypeError("**: a number to the power of a sparse tensor would be dense (torch has no such op "
                        "for sparse tensors either); use t.to_dense()")
    if exponent.dtype == np.bool_:
        raise _errors.DTypeError("**: a bool tensor as an exponent: sparse_ref does not promote dtypes; "
                                 "cast first: t.long() or t.float()")
    base = exponent._operand(base, "**")._data.item()  # (checked as any number meeting this tensor)
    return dense_ops.RPow.apply(exponent, base)


def sum(input, dim: int | None = None, keepdim: bool = False, *, dtype=None) -> Tensor:  # noqa: A001
    """The sum of all elements, or along ``dim`` (with ``dtype``, of the input cast to it
    first); of a sparse tensor, the sum of its stored
    values (every stored entry receives the gradient, explicit zeros included), along one
    ``dim`` a sparse vector (:func:`sparse_ref.sparse.sum`).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.sum(sr.tensor([[1., 2.], [3., 4.]]), 1)
    tensor([3., 7.])
    """
    if dtype is not None:  # the input cast first, then summed, the sum in that dtype (torch's dtype=;
        # an int32 sum that int32 cannot hold is refused, where torch's wraps around; an int64
        # one wraps, as torch's and as every integer sum and product here, the kernels' included)
        input = input.to(dtype)
        out = sum(input, dim, keepdim)
        return out if out.dtype == input.dtype else out.to(input.dtype)
    if isinstance(input, SparseTensor):
        return sparse_sum(input, dim, keepdim)
    return dense_ops.Sum.apply(input, _dims(dim, input.ndim, "sum"), keepdim)


def mean(input, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """The mean of all elements, or along ``dim``, for floating and complex dtypes.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.mean(sr.tensor([[1., 2.], [3., 4.]]), 0)
    tensor([2., 3.])
    """
    if isinstance(input, SparseTensor):  # torch: NotImplementedError (a RuntimeError)
        raise _errors.ArgumentTypeError("mean: not supported for a sparse tensor (nor in torch); use "
                                        "s.sum() divided by the number of elements, or s.to_dense().mean()")
    if _dtypes.kind(input.dtype) not in "fc":
        raise TypeError(f"mean: needs a floating or complex dtype, got {input.dtype.name}")
    return dense_ops.Mean.apply(input, _dims(dim, input.ndim, "mean"), keepdim)


def _dims(dim, ndim: int, where: str):
    """None, one dimension or a tuple of them, checked (torch's message when out of range)."""
    if dim is None:
        return None
    if isinstance(dim, (tuple, list)):
        if len(dim) == 0:  # torch reads an empty list of dims as every dim
            return None
        dims = tuple(_validate.dim_arg(d, ndim, where) for d in dim)
        if len(set(dims)) != len(dims):
            raise ArgumentError(f"{where}: dim {list(dim)} names a dimension twice")
        return None if ndim == 0 else dims  # (a scalar's dim 0 or -1 is the whole of it, as torch)
    dim = _validate.dim_arg(dim, ndim, where)
    return None if ndim == 0 else dim


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
        if input.sparse_dim() > 2 or input.dense_dim() > 0:
            raise ArgumentError(f"t() expects a tensor with <= 2 sparse and 0 dense dimensions, but got "
                                f"{input.sparse_dim()} sparse and {input.dense_dim()} dense dimensions")
        return sparse_ops.SparseTranspose.apply(input) if input.ndim == 2 else input  # a sparse vector
    if input.ndim > 2:
        raise ArgumentError(f"t() expects a tensor with <= 2 dimensions, but self is {input.ndim}D")
    return dense_ops.Transpose.apply(input)


def matmul(input, other):
    """``input @ other`` as torch's ``matmul``: 2-D operands dense or sparse
    (:func:`sparse_ref.sparse.mm`); a 1-D operand is a vector (``v @ v`` is their dot
    product, ``A @ v`` a vector; a sparse vector takes a dense matrix, as torch's, and its
    gradient has its own pattern); dense operands of more dimensions are batches.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> a = sr.sparse_coo_tensor([[0, 1], [1, 0]], [2., 3.], (2, 2))
    >>> sr.matmul(a, sr.tensor([[1.], [1.]]))
    tensor([[2.],
            [3.]])
    >>> sr.matmul(a, sr.tensor([1., 1.]))
    tensor([2., 3.])
    """
    if _validate.plain_sparse_dense(input, other):  # the commonest call: straight to the product
        return sparse.mm(input, other)
    for name, x in (("mat1", input), ("mat2", other)):
        if isinstance(x, SparseTensor) and (x.sparse_dim() > 3 or x.dense_dim() > 0):
            _validate.sparse_layout(x, name, "matmul")  # refuses: the product's rule, by name
    if not (isinstance(input, (Tensor, SparseTensor)) and isinstance(other, (Tensor, SparseTensor))) or (
            input.ndim == 2 and other.ndim == 2):
        return sparse.mm(input, other)  # its checks name a bad operand
    if input.ndim == 0 or other.ndim == 0:
        raise ArgumentError("matmul: both arguments need at least 1 dimension, got "
                            f"{input.ndim}D and {other.ndim}D")
    if isinstance(input, SparseTensor) or isinstance(other, SparseTensor):
        if isinstance(input, SparseTensor) and input.ndim == 1 and isinstance(other, Tensor) and other.ndim == 2:
            return squeeze(sparse.mm(_vector_as_matrix(input, row=True), other), 0)  # as torch: v @ M
        if isinstance(other, SparseTensor) and other.ndim == 1 and isinstance(input, Tensor) and input.ndim == 2:
            return squeeze(sparse.mm(input, _vector_as_matrix(other, row=False)), 1)  # M @ v
        for name, x in (("input", input), ("other", other)):
            if isinstance(x, SparseTensor) and x.ndim == 1:  # (torch cannot either: "aten::dot", "as_strided")
                raise ArgumentError(f"matmul: {name} is a sparse vector (1-D), which takes a dense matrix (2-D) "
                                    f"as its partner, got {input.ndim}-D and {other.ndim}-D: use x.to_dense()")
        if input.ndim == 3 or other.ndim == 3:  # a batch of sparse matrices: bmm (torch refuses)
            if input.ndim != other.ndim:
                raise ArgumentError(f"matmul: a batch of matrices (3-D) with a sparse operand takes a 3-D partner "
                                    f"(batch b times batch b, as sr.bmm), got {input.ndim}-D and {other.ndim}-D")
            return bmm(input, other)
        if input.ndim == 2 and other.ndim == 1:
            return squeeze(sparse.mm(input, unsqueeze(other, 1)), 1)
        if input.ndim == 1 and other.ndim == 2:
            return squeeze(sparse.mm(unsqueeze(input, 0), other), 0)
        raise ArgumentError(f"matmul: a sparse matrix takes a 1-D or 2-D partner, got {input.ndim}D "
                            f"and {other.ndim}D")
    _validate.same_dtype_arg(input, other, "matmul")
    if input.ndim == 1 and other.ndim == 1:
        if input.shape != other.shape:
            raise _errors.ShapeError(f"inconsistent tensor size, expected tensor [{input.shape[0]}] and "
                                     f"src [{other.shape[0]}] to have the same number of elements")
        return squeeze(squeeze(dense_ops.MatMul.apply(unsqueeze(input, 0), unsqueeze(other, 1)), 1), 0)
    if input.ndim == 1:
        return squeeze(matmul(unsqueeze(input, 0), other), -2)
    if other.ndim == 1:
        return squeeze(matmul(input, unsqueeze(other, 1)), -1)
    if input.shape[-1] != other.shape[-2]:
        raise _errors.ShapeError(f"matmul: shapes cannot be multiplied ({list(input.shape)} and "
                                 f"{list(other.shape)})")
    try:
        np.broadcast_shapes(input.shape[:-2], other.shape[:-2])
    except ValueError:
        raise _errors.ShapeError(f"matmul: batch shapes {list(input.shape[:-2])} and "
                                 f"{list(other.shape[:-2])} do not broadcast") from None
    return dense_ops.MatMul.apply(input, other)


def bmm(input, mat2):
    """``input[b] @ mat2[b]`` for every b, as ``torch.bmm``: two batches of matrices (3-D),
    (B, m, n) and (B, n, p), each dense or sparse COO (a 3-D sparse tensor: indices of
    (batch, row, column)). sparse x dense -> dense, as torch; sparse x sparse -> sparse
    (3-D, coalesced) and dense x sparse -> dense, which torch 2.13 refuses. Differentiable:
    the gradient of a sparse operand has that operand's own coalesced pattern (torch gives
    a dense one). A batch runs as one block-diagonal 2-D product (``sparse_ref._batched``);
    batch b is bit for bit the 2-D product of batch b.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> a = sr.sparse_coo_tensor([[0, 1], [0, 1], [1, 0]], [2., 3.], (2, 2, 2))
    >>> sr.bmm(a, sr.ones(2, 2, 1))
    tensor([[[2.],
             [0.]],
    <BLANKLINE>
            [[0.],
             [3.]]])
    """
    reduce = _validate.bmm_operands(input, mat2, None, "bmm")
    return _batched.mm(input, mat2, reduce, bmm=True)


def mm(input, mat2):
    """``input @ mat2`` for two matrices (2-D), dense or sparse, as ``torch.mm``.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.mm(sr.tensor([[1., 2.]]), sr.tensor([[3.], [4.]]))
    tensor([[11.]])
    """
    return sparse.mm(input, mat2)



# -- shapes ---------------------------------------------------------------------------------

def _dense_arg(x, where: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{where}: expected a dense Tensor, got {type(x).__name__}")
    return x


def reshape(input, *shape) -> Tensor:
    """The same elements in another shape (one size may be -1); a view when it can be.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.reshape(sr.tensor([1., 2., 3., 4.]), (2, -1))
    tensor([[1., 2.],
            [3., 4.]])
    """
    _dense_arg(input, "reshape")
    return dense_ops.Reshape.apply(input, _validate.new_shape(shape, input.numel(), "reshape"))


def flatten(input, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Dimensions ``start_dim`` .. ``end_dim`` merged into one.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.flatten(sr.zeros(2, 3, 4), 1).shape
    (2, 12)
    """
    _dense_arg(input, "flatten")
    a = _validate.dim_arg(start_dim, input.ndim, "flatten")
    b = _validate.dim_arg(end_dim, input.ndim, "flatten")
    if input.ndim == 0:
        return reshape(input, (1,))
    if a > b:
        raise ArgumentError("flatten() has invalid args: start_dim cannot come after end_dim")
    shape = input.shape
    return reshape(input, shape[:a] + (int(np.prod(shape[a:b + 1])),) + shape[b + 1:])


def _values_and_pattern(s: SparseTensor):
    """``(s.coalesce().values(), pattern)``: the values in the graph, and the coalesced
    tensor they are the values of, as one state (``SparseTensor._now``), for an op that
    puts new values on that pattern. Another thread may change ``s`` in place between
    the two reads; then its pattern counter moved, and they are read again."""
    c = s.coalesce()
    for _ in range(1000):
        now = c._now()
        values = c.values()
        if c._pattern == now._pattern:  # no new pattern between the two reads
            return values, now
    raise RuntimeError(f"{s.layout!r} tensor: another thread changed its stored entries during "
                       "every one of 1000 reads")


def _vector_as_matrix(v: SparseTensor, row: bool) -> SparseTensor:
    """A sparse vector as a 1 x n (``row``) or n x 1 sparse matrix whose values are the
    vector's coalesced values, so that its gradient goes back to them (masked, as every
    sparse gradient here; torch's is dense)."""
    values, c = _values_and_pattern(v)
    k = c._idx[0]
    idx = np.stack([np.zeros_like(k), k] if row else [k, np.zeros_like(k)])
    return sparse_ops.SparseFromValues.apply(values, idx, values._data.copy(),
                                             (1, v.shape[0]) if row else (v.shape[0], 1))


def unsqueeze(input, dim: int) -> Tensor:
    """A new dimension of size 1 at ``dim``.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.unsqueeze(sr.tensor([1., 2.]), 1).shape
    (2, 1)
    """
    _dense_arg(input, "unsqueeze")
    d = _validate.dim_arg(dim, input.ndim + 1, "unsqueeze")
    return dense_ops.Reshape.apply(input, input.shape[:d] + (1,) + input.shape[d:])


def squeeze(input, dim=None) -> Tensor:
    """The dimensions of size 1 removed (only ``dim``, if given and of size 1).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.squeeze(sr.zeros(2, 1, 3)).shape
    (2, 3)
    """
    _dense_arg(input, "squeeze")
    if dim is None:
        shape = tuple(n for n in input.shape if n != 1)
    elif isinstance(dim, (tuple, list)):  # each of these dims of size 1 removed, as torch
        dims = _dims(dim, input.ndim, "squeeze") or ()
        dims = (dims,) if isinstance(dims, int) else dims
        shape = tuple(n for i, n in enumerate(input.shape) if not (i in dims and n == 1))
    else:
        d = _validate.dim_arg(dim, input.ndim, "squeeze")
        shape = input.shape if input.ndim == 0 or input.shape[d] != 1 else input.shape[:d] + input.shape[d + 1:]
    return dense_ops.Reshape.apply(input, shape)


def permute(input, dims) -> Tensor:
    """The dimensions in the order ``dims`` (a view).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.permute(sr.zeros(2, 3, 4), (2, 0, 1)).shape
    (4, 2, 3)
    """
    _dense_arg(input, "permute")
    dims = tuple(_validate.dim_arg(d, input.ndim, "permute") for d in dims)
    if sorted(dims) != list(range(input.ndim)):
        raise ArgumentError(f"permute: dims {list(dims)} must name each of the {input.ndim} dimensions once")
    return dense_ops.Permute.apply(input, dims)


def transpose(input, dim0: int, dim1: int) -> Tensor:
    """Dimensions ``dim0`` and ``dim1`` swapped (a view); of a sparse matrix, ``t()``.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.transpose(sr.zeros(2, 3, 4), 0, 2).shape
    (4, 3, 2)
    """
    if isinstance(input, SparseTensor):
        _validate.sparse_layout(input, "input", "transpose", sparse_dims=(1, 2))
        a, b = (_validate.dim_arg(d, 2, "transpose") for d in (dim0, dim1))
        return input if a == b else t(input)
    _dense_arg(input, "transpose")
    a, b = (_validate.dim_arg(d, input.ndim, "transpose") for d in (dim0, dim1))
    if input.ndim == 0:  # (dims 0 and -1 of a scalar: itself, as torch)
        return dense_ops.Permute.apply(input, ())
    dims = list(range(input.ndim))
    dims[a], dims[b] = dims[b], dims[a]
    return dense_ops.Permute.apply(input, tuple(dims))


def stack(tensors, dim: int = 0) -> Tensor:
    """Tensors of one shape joined along a new dimension ``dim``; differentiable.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.stack([sr.tensor([1., 2.]), sr.tensor([3., 4.])], 1)
    tensor([[1., 3.],
            [2., 4.]])
    """
    return _join("stack", tensors, dim)


def cat(tensors, dim: int = 0) -> Tensor:
    """Tensors joined along the existing dimension ``dim``; differentiable.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.cat([sr.tensor([1., 2.]), sr.tensor([3.])])
    tensor([1., 2., 3.])
    """
    return _join("cat", tensors, dim)


def _join(join: str, tensors, dim: int) -> Tensor:
    tensors = list(tensors) if isinstance(tensors, (list, tuple)) else None
    if not tensors:
        raise ArgumentError(f"{join}: expected a non-empty list or tuple of Tensors")
    for k, x in enumerate(tensors):
        _dense_arg(x, f"{join}: tensors[{k}]")
        _validate.same_dtype_arg(tensors[0], x, join)
    if join == "cat":
        for k, x in enumerate(tensors):
            if x.ndim == 0:
                raise ArgumentError(f"cat: zero-dimensional tensor (at position {k}) cannot be concatenated")
    # torch's legacy rule for cat: an empty 1-D tensor (shape [0]) among others is skipped (Stack)
    kept = [x for x in tensors if x.shape != (0,)] if join == "cat" else tensors
    first = (kept or tensors)[0]
    d = _validate.dim_arg(dim, first.ndim + (join == "stack"), join)
    for k, x in enumerate(tensors):
        if join == "cat" and kept and x.shape == (0,):
            continue
        same = x.shape == first.shape if join == "stack" else (
            x.ndim == first.ndim and x.shape[:d] + x.shape[d + 1:] == first.shape[:d] + first.shape[d + 1:])
        if not same:
            raise _errors.ShapeError(f"{join}: tensors[{k}] has shape {list(x.shape)}, which does not fit "
                                     f"tensors[0]'s {list(first.shape)}")
    if join == "cat" and not kept:  # (all empty 1-D: torch's result is the empty 1-D tensor)
        d = 0
    return dense_ops.Stack.apply(join, d, *tensors)


# -- elementwise math -----------------------------------------------------------------------

def _unary(op, x, where: str, complex_ok: bool = True):
    if isinstance(x, SparseTensor) and where in _ZERO_AT_ZERO:
        _validate.floating_arg(x, where, complex_ok)
        return _sparse_valuewise(op.apply, x)
    _dense_arg(x, where)
    _validate.floating_arg(x, where, complex_ok)
    return op.apply(x)


# Elementwise ops that map 0 to 0 also take a sparse tensor, as torch's COO does.
_ZERO_AT_ZERO = ("sqrt", "tanh")


def _sparse_valuewise(op, input, *args):
    """``op`` (a dense elementwise op with f(0) = 0) of a sparse tensor: the op of its
    coalesced values, with its pattern (coalesced; a CSR input stays CSR), as torch computes
    ``abs``, ``sqrt``, ``pow``, ``relu``, ``tanh`` of a COO tensor. Differentiable through
    the dense op's own gradient, masked to the pattern as every sparse gradient here (torch
    has no backward for sqrt or tanh of a sparse tensor)."""
    values, c = _values_and_pattern(input)
    values = op(values, *args)
    if c.is_sparse_csr:
        crow, col, _ = c._csr()
        return sparse_ops.CsrFromValues.apply(values, crow, col, values._data, c.shape)
    out = sparse_ops.SparseFromValues.apply(values, c._idx, values._data, c.shape)
    out._coalesced = True  # c's entries, in c's order
    return out


def exp(input) -> Tensor:
    """``e ** input`` elementwise; differentiable.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.exp(sr.tensor([0., 1.]))
    tensor([1.0000, 2.7183])
    """
    return _unary(dense_ops.Exp, input, "exp")


def log(input) -> Tensor:
    """The natural logarithm elementwise (``-inf`` at 0, NaN below, as torch).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.log(sr.tensor([1., 4.]))
    tensor([0.0000, 1.3863])
    """
    return _unary(dense_ops.Log, input, "log")


def sqrt(input) -> Tensor:
    """The square root elementwise (a sparse input: of its stored values, pattern kept).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.sqrt(sr.tensor([4., 9.]))
    tensor([2., 3.])
    """
    return _unary(dense_ops.Sqrt, input, "sqrt")


def abs(input) -> Tensor:  # noqa: A001 (torch's name)
    """``|input|`` elementwise (the modulus, for complex values: a real result; a sparse
    input: of its stored values, pattern kept).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.abs(sr.tensor([-1., 2.]))
    tensor([1., 2.])
    """
    if isinstance(input, SparseTensor):
        return _sparse_valuewise(dense_ops.Abs.apply, input)
    _dense_arg(input, "abs")
    return dense_ops.Abs.apply(input)


def relu(input) -> Tensor:
    """``max(input, 0)`` elementwise (real dtypes; a sparse input: of its stored values,
    pattern kept, a negative value becoming a stored 0 as in torch).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.relu(sr.tensor([-1., 2.]))
    tensor([0., 2.])
    """
    if not isinstance(input, SparseTensor):
        _dense_arg(input, "relu")
    if input.dtype.kind == "c":
        raise _errors.DTypeError("relu: complex values have no order; use a real dtype")
    if isinstance(input, SparseTensor):
        return _sparse_valuewise(dense_ops.Relu.apply, input)
    return dense_ops.Relu.apply(input)


def sigmoid(input) -> Tensor:
    """``1 / (1 + exp(-input))`` elementwise.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.sigmoid(sr.tensor([0.]))
    tensor([0.5000])
    """
    return _unary(dense_ops.Sigmoid, input, "sigmoid")


def tanh(input) -> Tensor:
    """The hyperbolic tangent elementwise (a sparse input: of its stored values, pattern kept).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.tanh(sr.tensor([0.]))
    tensor([0.])
    """
    return _unary(dense_ops.Tanh, input, "tanh")


def clamp(input, min=None, max=None) -> Tensor:  # noqa: A002 (torch's names)
    """Every element limited to ``[min, max]`` (either may be None); real dtypes.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.clamp(sr.tensor([-2., 0.5, 3.]), min=0., max=1.)
    tensor([0.0000, 0.5000, 1.0000])
    """
    _dense_arg(input, "clamp")
    if min is None and max is None:
        raise ArgumentError("clamp: at least one of 'min' or 'max' must not be None")
    if input.dtype.kind == "c":
        raise _errors.DTypeError("clamp is not supported for complex types")
    lo = None if min is None else input._operand(min, "clamp")
    hi = None if max is None else input._operand(max, "clamp")
    return dense_ops.Clamp.apply(input, lo, hi)


def maximum(input, other) -> Tensor:
    """The larger of two tensors elementwise (a tie gives each half the gradient).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.maximum(sr.tensor([1., 5.]), sr.tensor([3., 2.]))
    tensor([3., 5.])
    """
    return _pick(input, other, np.maximum, "maximum")


def minimum(input, other) -> Tensor:
    """The smaller of two tensors elementwise.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.minimum(sr.tensor([1., 5.]), sr.tensor([3., 2.]))
    tensor([1., 2.])
    """
    return _pick(input, other, np.minimum, "minimum")


def _pick(input, other, pick, where: str) -> Tensor:
    input, other = _dense(input, other, where)
    if input.dtype.kind == "c":
        raise _errors.DTypeError(f"{where} is not implemented for complex tensors.")
    return dense_ops.Maximum.apply(input, other, pick)


def _broadcast(a, b, where: str) -> None:
    """Refuse shapes that do not broadcast, in torch's words."""
    if a.shape == b.shape:
        return
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        for k in range(1, 1 + builtins.min(a.ndim, b.ndim)):
            if a.shape[-k] != b.shape[-k] and 1 not in (a.shape[-k], b.shape[-k]):
                raise _errors.ShapeError(
                    f"{where}: The size of tensor a ({a.shape[-k]}) must match the size of tensor b "
                    f"({b.shape[-k]}) at non-singleton dimension {builtins.max(a.ndim, b.ndim) - k}") from None


def nonzero(input, *, as_tuple: bool = False):
    """The indices of the nonzero (True) elements, in row-major order: an (n, ndim) int64
    tensor, or with ``as_tuple`` one 1-D tensor of indices per dim (a 0-d input counts as
    1-D, as torch's).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.nonzero(sr.tensor([[0, 3], [1, 0]]))
    tensor([[0, 1],
            [1, 0]])
    >>> sr.nonzero(sr.tensor([0., 2., 5.]), as_tuple=True)
    (tensor([1, 2]),)
    """
    _dense_arg(input, "nonzero")
    data = input._data
    if as_tuple:
        return tuple(Tensor(np.asarray(i, dtype=np.int64)) for i in np.nonzero(np.atleast_1d(data)))
    return Tensor(np.asarray(np.argwhere(data), dtype=np.int64))


def where(condition, input=None, other=None) -> Tensor:
    """``input`` where ``condition`` holds, else ``other`` (numbers take the tensor's dtype).
    With the condition alone, ``nonzero(condition, as_tuple=True)``, as torch's.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> x = sr.tensor([-1., 2.])
    >>> sr.where(x > 0, x, 0.)
    tensor([0., 2.])
    >>> sr.where(x > 0)
    (tensor([1]),)
    """
    if input is None and other is None:
        return nonzero(condition, as_tuple=True)
    if input is None or other is None:
        raise TypeError("where() takes the condition alone, or the condition, input and other")
    cond = np.array(condition._data if isinstance(condition, Tensor) else condition)  # a copy: backward
    # reads the condition forward read, whatever the caller's tensor holds by then
    if cond.dtype != np.bool_:
        raise _errors.DTypeError(f"where: expected condition to be a boolean tensor, got {cond.dtype.name}")
    if not isinstance(input, Tensor):
        if not isinstance(other, Tensor):
            raise TypeError("where: input or other must be a Tensor")
        input = other._operand(input, "where")
    other = input._operand(other, "where")
    try:
        np.broadcast_shapes(cond.shape, input.shape, other.shape)
    except ValueError:
        raise _errors.ShapeError(f"where: condition {list(cond.shape)}, input {list(input.shape)} and "
                                 f"other {list(other.shape)} do not broadcast") from None
    return dense_ops.Where.apply(cond, input, other)


# -- reductions -----------------------------------------------------------------------------

class _ValuesIndices(tuple):
    """``(values, indices)`` of ``max(dim)`` / ``min(dim)``, like torch's named tuple."""

    @property
    def values(self):
        return self[0]

    @property
    def indices(self):
        return self[1]


def max(input, dim=None, keepdim: bool = False, *, other=None):  # noqa: A001 (torch's name)
    """The largest element; with ``dim``, ``(values, indices)`` along it (the first of
    equal ones), as torch. Real dtypes. ``max(x, y)`` or ``max(x, other=y)``: the larger
    of each pair of elements (:func:`maximum`).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> x = sr.tensor([[1., 5.], [4., 2.]])
    >>> sr.max(x)
    tensor(5.)
    >>> sr.max(x, 1).indices
    tensor([1, 0])
    """
    if other is not None:
        _other_alone(other, dim, keepdim, "max")
        return maximum(input, other)
    if isinstance(dim, (Tensor, SparseTensor)):  # max(x, y): torch's maximum
        return maximum(input, dim)
    return _extreme(input, dim, keepdim, "max")


def min(input, dim=None, keepdim: bool = False, *, other=None):  # noqa: A001 (torch's name)
    """The smallest element; with ``dim``, ``(values, indices)`` along it (see :func:`max`;
    ``min(x, other=y)``: :func:`minimum`).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.min(sr.tensor([[1., 5.], [4., 2.]]), 0).values
    tensor([1., 2.])
    """
    if other is not None:
        _other_alone(other, dim, keepdim, "min")
        return minimum(input, other)
    if isinstance(dim, (Tensor, SparseTensor)):  # min(x, y): torch's minimum
        return minimum(input, dim)
    return _extreme(input, dim, keepdim, "min")


def _other_alone(other, dim, keepdim, where: str) -> None:
    """``max``/``min`` with ``other=`` takes a tensor and nothing else, as torch's."""
    if not isinstance(other, (Tensor, SparseTensor)):
        raise TypeError(f"{where}(): other= must be a Tensor, got {type(other).__name__}")
    if dim is not None or keepdim:
        raise TypeError(f"{where}(): other= compares two tensors element by element and takes no dim or "
                        f"keepdim (got dim={dim!r}, keepdim={keepdim!r})")


def _extreme(input, dim, keepdim, where: str):
    _dense_arg(input, where)
    if input.dtype.kind == "c":
        raise _errors.DTypeError(f"{where} is not implemented for complex tensors.")
    if dim is None:
        if keepdim:
            raise TypeError(f"{where}(): keepdim=True needs a dim (torch's {where}() takes no keepdim without one)")
        if input.numel() == 0:
            raise ArgumentError(f"{where}(): Expected reduction dim to be specified for input.numel() == 0. "
                                "Specify the reduction dim with the 'dim' argument.")
        return dense_ops.MaxAll.apply(input, np.max if where == "max" else np.min)
    d = _validate.dim_arg(dim, input.ndim, where)
    if input.ndim and input.shape[d] == 0:  # (an empty tensor along another dim: an empty result)
        raise _errors.IndexRangeError(f"{where}(): Expected reduction dim {d} to have non-zero size.")
    if input.ndim == 0:  # (dim 0 or -1 of a scalar: the scalar, at index 0, as torch)
        values = dense_ops.MaxAll.apply(input, np.max if where == "max" else np.min)
        return _ValuesIndices((values, Tensor(np.zeros((), dtype=np.int64))))
    arg = np.argmax if where == "max" else np.argmin
    values = dense_ops.MaxDim.apply(input, d, keepdim, arg)
    indices = np.expand_dims(arg(input._data, axis=d), d) if keepdim else arg(input._data, axis=d)
    return _ValuesIndices((values, Tensor(np.asarray(indices, dtype=np.int64))))


def argmax(input, dim=None, keepdim: bool = False) -> Tensor:
    """The index of the largest element (of the flattened tensor, or along ``dim``).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.argmax(sr.tensor([[1., 5.], [4., 2.]]), dim=1)
    tensor([1, 0])
    """
    return _arg(input, dim, keepdim, np.argmax, "argmax")


def argmin(input, dim=None, keepdim: bool = False) -> Tensor:
    """The index of the smallest element (of the flattened tensor, or along ``dim``).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.argmin(sr.tensor([3., 1., 2.]))
    tensor(1)
    """
    return _arg(input, dim, keepdim, np.argmin, "argmin")


def _arg(input, dim, keepdim, arg, where: str) -> Tensor:
    _dense_arg(input, where)
    if input.dtype.kind == "c":
        raise _errors.DTypeError(f"{where} is not implemented for complex tensors.")
    if dim is None:
        if input.numel() == 0:
            raise ArgumentError(f"{where}(): Expected reduction dim to be specified for input.numel() == 0.")
        out = np.asarray(arg(input._data))
        return Tensor(out.reshape((1,) * input.ndim) if keepdim else out.astype(np.int64))
    d = _validate.dim_arg(dim, input.ndim, where)
    if input.ndim and input.shape[d] == 0:
        raise _errors.IndexRangeError(f"{where}(): Expected reduction dim {d} to have non-zero size.")
    return Tensor(np.asarray(arg(input._data, axis=d, keepdims=keepdim), dtype=np.int64))


def norm(input, p=2, dim=None, keepdim: bool = False) -> Tensor:
    """The p-norm of all elements, or along ``dim`` (one or a tuple of dims; ``p="fro"`` is
    p = 2, ``p=inf`` the largest ``|x|``, ``-inf`` the smallest, ``0`` the count of
    nonzeros, which has no gradient; p < 0 as torch, 0 when an element is 0); a real
    result. Its gradient is torch's, branch by branch.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.norm(sr.tensor([3., 4.]))
    tensor(5.)
    """
    _dense_arg(input, "norm")
    _validate.floating_arg(input, "norm")
    p = 2 if p == "fro" else p
    if isinstance(p, bool) or not isinstance(p, (int, float)) or p != p:
        raise ArgumentError(f"norm: p must be a number (not NaN), inf, -inf or 'fro', got {p!r}")
    dim = _dims(dim, input.ndim, "norm")  # (one dim or a tuple of them; a scalar's is the whole of it)
    reduced = range(input.ndim) if dim is None else ((dim,) if isinstance(dim, int) else dim)
    if (p < 0 or p == float("inf")) and (input.numel() == 0 if dim is None else
                                          any(input.shape[d] == 0 for d in reduced)):
        # (an empty max, min or sum of |x|^p for p < 0, whose p-th root is infinite)
        raise ArgumentError(f"linalg.vector_norm cannot compute the {float(p):g} norm on an empty tensor "
                            "because the operation does not have an identity")
    return dense_ops.Norm.apply(input, float(p) if p in (float("inf"), float("-inf")) else p, dim, keepdim)


def softmax(input, dim: int) -> Tensor:
    """``exp(input) / sum(exp(input), dim)``, computed stably; real floating dtypes.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.softmax(sr.tensor([0., 0.]), dim=0)
    tensor([0.5000, 0.5000])
    """
    _dense_arg(input, "softmax")
    _validate.floating_arg(input, "softmax", complex_ok=False)
    return dense_ops.Softmax.apply(input, _validate.dim_arg(dim, input.ndim, "softmax"))


def log_softmax(input, dim: int) -> Tensor:
    """``input - log(sum(exp(input), dim))``, computed stably; real floating dtypes.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.log_softmax(sr.tensor([0., 0.]), dim=0)
    tensor([-0.6931, -0.6931])
    """
    _dense_arg(input, "log_softmax")
    _validate.floating_arg(input, "log_softmax", complex_ok=False)
    return dense_ops.LogSoftmax.apply(input, _validate.dim_arg(dim, input.ndim, "log_softmax"))


# -- dtypes ---------------------------------------------------------------------------------

def to(input, dtype):
    """``input`` as ``dtype`` (itself when the dtype is already right); between floating and
    complex dtypes differentiable. A value the dtype cannot represent is refused.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.tensor([1.5]).to(sr.float64)
    tensor([1.5000], dtype=sparse_ref.float64)
    """
    _dense_arg(input, "to")
    if dtype is None:
        return input
    dt = _dtypes.as_dtype(dtype, "to", dense=True)
    if dt == input.dtype:
        return input
    data = _validate.cast_data(input, dt, "to")
    if _dtypes.kind(dt) in "fc":
        return dense_ops.Cast.apply(input, data)
    return Tensor(data)  # an integer or bool result has no gradient (as torch)


# -- comparisons (no gradient) ------------------------------------------------------------

def compare(input, other, op: str) -> Tensor:
    """``input <op> other`` elementwise as a bool tensor (``<``, ``<=``, ``>``, ``>=``,
    ``==``, ``!=``); no gradient flows through a comparison. A real number meets a bool or
    integer tensor as the number it is, as torch's (``mask == 0.5`` is all False, ``ints >
    0.5`` compares with 0.5), not converted to the tensor's dtype first."""
    numbers = (int, float, np.integer, np.floating) + ((complex, np.complexfloating) if op in ("==", "!=") else ())
    if (isinstance(input, Tensor) and input.dtype.kind in "biu" and isinstance(other, numbers)
            and not isinstance(other, (bool, np.bool_))):
        return Tensor(_COMPARE[op](input._data, other))
    input, other = _dense(input, other, op)
    if input.dtype.kind == "c" and op not in ("==", "!="):
        raise _errors.DTypeError(f"{op}: complex values have no order")
    return Tensor(_COMPARE[op](input._data, other._data))


_COMPARE = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
            "==": np.equal, "!=": np.not_equal}


# -- indexing and casts (method bodies) -----------------------------------------------------

def index(input, key) -> Tensor:
    """``input[key]``: a view for ints and slices, a gather for integer tensors, arrays or
    lists and for boolean masks; differentiable (the gradient is scattered back)."""
    if input.ndim == 0 and not (key is None or key is Ellipsis or (type(key) is tuple and len(key) == 0)):
        shape = _scalar_key_shape(key)
        if shape is None:
            raise IndexError("invalid index of a 0-dim tensor. Use tensor.item() to get a Python number")
        if 0 in shape:  # a False mask: nothing taken (still from the graph, as torch's)
            return reshape(dense_ops.Index.apply(reshape(input, (1,)), slice(0, 0)), shape)
        return reshape(input, shape)
    key = _validate.index_key(key, input.shape)
    split = _validate.ints_first(key)
    if split is not None:  # torch's layout: the ints select first (see ints_first)
        return dense_ops.Index.apply(dense_ops.Index.apply(input, split[0]), split[1])
    return dense_ops.Index.apply(input, key)


def _scalar_key_shape(key):
    """The shape of ``x[key]`` for a 0-d x and a key of None, ``...`` and boolean masks
    (bools or 0-d bool tensors), as torch's (and NumPy's): each None a dim of 1, the masks
    together one dim of 1 (all True) or 0; None for any other key (an int has nothing to
    index)."""
    parts = key if isinstance(key, tuple) else (key,)
    plain = []
    for part in parts:
        if isinstance(part, Tensor) and part.ndim == 0 and part.dtype == np.bool_:
            part = bool(part._data)
        if not (part is None or part is Ellipsis or isinstance(part, (bool, np.bool_))):
            return None
        plain.append(part)
    return np.empty((), dtype=np.int8)[tuple(plain)].shape


index_key = _validate.index_key  # __setitem__ checks its key the same way
ints_first = _validate.ints_first


def to_args(args, dtype, kwargs):
    """The dtype of ``x.to(...)``: ``to(dtype)``, ``to(dtype=...)``, ``to("cpu", dtype)``;
    a device may only be the CPU, and no other keyword is taken."""
    extra = set(kwargs) - {"device", "copy", "non_blocking"}
    if extra:
        raise TypeError(f"to() got an unexpected keyword argument {sorted(extra)[0]!r}")
    devices = [a for a in args if isinstance(a, str) and not _is_dtype_name(a)] + (
        [kwargs["device"]] if kwargs.get("device") is not None else [])
    for device in devices:
        if str(device) != "cpu":
            raise ArgumentError(f"to: sparse_ref runs on the CPU only, got device {device!r}")
    dtypes = [a for a in args if not (isinstance(a, str) and not _is_dtype_name(a))]
    if dtype is not None:
        dtypes.append(dtype)
    if len(dtypes) > 1:
        raise TypeError("to() received more than one dtype")
    return dtypes[0] if dtypes else None


def _is_dtype_name(text: str) -> bool:
    try:
        np.dtype(text)
    except TypeError:
        return False
    return True

# -- method bodies with no torch function of their own --------------------------------------

def to_sparse(input, sparse_dim=None) -> SparseTensor:
    """``Tensor.to_sparse(sparse_dim)``: the leading ``sparse_dim`` dims (default: all)
    sparse, the rest dense; a coalesced COO tensor."""
    return sparse_ops.ToSparse.apply(input, _validate.sparse_dim_arg(sparse_dim, input.ndim, "to_sparse"))


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


def check_unpickled(t) -> None:
    """``SparseTensor.__setstate__``: the arrays a pickle brought, checked as the
    constructors check them (indices against the shape, CSR row pointers, the coalesced
    flag), put back as checked copies; raises as the constructors do."""
    where = "unpickle"
    if t.is_sparse_csr:
        t._crow, t._col, t._val, t._shape = _validate.csr_arrays(t._crow, t._col, t._val, t._shape,
                                                                 t._val.dtype, True, where)
        return
    idx = _validate.coo_indices(t._idx, where)
    val = _validate.coo_values(t._val, idx.shape[1], t._val.dtype, where)
    shape = _validate.coo_shape(t._shape, idx.shape[0], val.shape, where)
    _validate.index_bounds(idx, shape, where)
    if t._coalesced:
        _validate.coalesced_claim(idx, where)
    t._idx, t._val, t._shape = idx, val, tuple(shape)


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
    """``input + other``, both sparse: the union of their patterns. A CSR matrix plus a
    dense tensor is dense, as torch's (a COO one plus a dense tensor is refused, as in
    torch)."""
    if input.is_sparse_csr and isinstance(other, Tensor):
        return add(other, input)  # dense + sparse (elementwise: the same sums either way)
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
    _validate.sparse_layout(input, "self", "sum", sparse_dims=(1, 2, 3))
    dims = _validate.reduce_dims(dim, input.ndim, "sum")
    _validate.sparse_sum_dims(input, dims, "sum")
    return sparse_ops.sparse_sum(input, dims, keepdim)


def sparse_to(input, dtype, copy: bool = False):
    """``SparseTensor.to(dtype)``, ``.double()``, ``.float()``."""
    if dtype is None:  # np.dtype(None) would be float64
        raise TypeError("to: expected a dtype (sr.float64, ...), got None")
    return sparse_ops.cast(input, _dtypes.as_dtype(dtype, "to"), copy)


# -- tests of values: bool results, no gradient ------------------------------------------------

def isnan(input) -> Tensor:
    """Where ``input`` is NaN (a complex value: either part), as a bool tensor.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.isnan(sr.tensor([1., float("nan")]))
    tensor([False,  True])
    """
    return Tensor(np.isnan(_dense_arg(input, "isnan")._data))


def isinf(input) -> Tensor:
    """Where ``input`` is +inf or -inf (a complex value: either part), as a bool tensor.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.isinf(sr.tensor([1., float("inf"), -float("inf")]))
    tensor([False,  True,  True])
    """
    return Tensor(np.isinf(_dense_arg(input, "isinf")._data))


def isfinite(input) -> Tensor:
    """Where ``input`` is neither NaN nor inf, as a bool tensor.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.isfinite(sr.tensor([1., float("nan"), float("inf")]))
    tensor([ True, False, False])
    """
    return Tensor(np.isfinite(_dense_arg(input, "isfinite")._data))


def equal(input, other) -> bool:
    """True when both tensors have the same shape and the same elements (NaN equals
    nothing), as ``torch.equal``; dense or sparse (a sparse one compares as its dense
    matrix), and of one dtype (sparse_ref does not promote).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.equal(sr.tensor([1., 2.]), sr.tensor([1., 2.])), sr.equal(sr.tensor([1.]), sr.tensor([1., 1.]))
    (True, False)
    """
    a, b = _values_to_compare(input, other, "equal")
    return a.shape == b.shape and bool(np.array_equal(a, b))


def allclose(input, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
    """True when ``|input - other| <= atol + rtol * |other|`` everywhere (broadcasting), as
    ``torch.allclose``.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.allclose(sr.tensor([1., 2.]), sr.tensor([1., 2.000001]))
    True
    """
    a, b = _values_to_compare(input, other, "allclose")
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ShapeError(f"allclose: shapes {list(a.shape)} and {list(b.shape)} do not broadcast") from None
    with np.errstate(all="ignore"):
        return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


def _values_to_compare(input, other, where: str):
    for name, x in (("input", input), ("other", other)):
        if not isinstance(x, (Tensor, SparseTensor)):
            raise TypeError(f"{where}: {name} must be a Tensor, got {type(x).__name__}")
    if input.dtype != other.dtype:
        raise _errors.DTypeError(f"{where}: dtypes {input.dtype.name} and {other.dtype.name} differ; sparse_ref "
                                 "does not promote dtypes")
    with no_grad():
        a, b = (x.to_dense() if isinstance(x, SparseTensor) else x for x in (input, other))
    a, b = a._data, b._data
    if _dtypes.is_half(a.dtype):  # (NumPy's comparisons of ml_dtypes' bfloat16: through float32)
        a, b = a.astype(np.float32), b.astype(np.float32)
    return a, b


# -- floor division and remainder: index arithmetic (i // n, i % n), no gradient ------------------

def floor_divide(input, other) -> Tensor:
    """``input // other``, rounded down (toward -inf), as torch's ``//``; for index
    arithmetic, so no gradient (refused on a tensor that requires one). An integer
    division by zero raises, as torch's.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.floor_divide(sr.tensor([7, -7]), 2)
    tensor([ 3, -4])
    """
    return _no_grad_division(input, other, "//", np.floor_divide)


def remainder(input, other) -> Tensor:
    """``input % other``, with the sign of ``other`` (Python's and torch's ``%``); no
    gradient, as :func:`floor_divide`.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.remainder(sr.tensor([7, -7]), 3)
    tensor([1, 2])
    """
    return _no_grad_division(input, other, "%", np.remainder)


def _no_grad_division(input, other, op: str, ufunc) -> Tensor:
    if isinstance(input, SparseTensor) or isinstance(other, SparseTensor):
        raise TypeError(f"{op}: sparse tensors have no {op} in sparse_ref (torch's is dense only too)")
    input, other = _dense(input, other, op)
    if input.dtype.kind in "bc":
        raise _errors.DTypeError(f"{op}: needs integer or floating tensors, got {input.dtype.name}")
    if is_grad_enabled() and (input.requires_grad or other.requires_grad):
        raise RuntimeError(f"{op}: not differentiable in sparse_ref (it serves index arithmetic); use it on "
                           "detached data (x.detach() or under sr.no_grad())")
    if input.dtype.kind in "iu" and (other._data == 0).any():
        raise ZeroDivisionError(f"{op}: integer division by zero")
    with np.errstate(all="ignore"):  # (floats: x // 0 is inf or nan, as torch's)
        return Tensor(ufunc(input._data, other._data))

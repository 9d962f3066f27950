"""``sr.nn.utils``: torch's gradient clipping and parameter-vector helpers (layer 5).

Examples
--------
>>> import sparse_ref as sr
>>> w = sr.nn.Parameter(sr.tensor([3., 4.]))
>>> (w * w).sum().backward()              # w.grad = [6, 8], norm 10
>>> sr.nn.utils.clip_grad_norm_([w], max_norm=1.0)
tensor(10.)
>>> w.grad
tensor([0.6000, 0.8000])
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from sparse_ref import _functions
from sparse_ref._arrays import converted
from sparse_ref._errors import ArgumentError, ShapeError, missing
from sparse_ref._tensor import SparseTensor, Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "vector_to_parameters"]


def _params(parameters, where: str) -> list:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    for p in params:
        if not isinstance(p, Tensor) or isinstance(p, SparseTensor):
            raise TypeError(f"{where}: expected dense tensors (a model's parameters), got {type(p).__name__}")
    return params


def _norm_type(norm_type, where: str) -> float:
    if isinstance(norm_type, str) and norm_type in ("inf", "-inf"):
        return float(norm_type)
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real) or math.isnan(norm_type):
        raise ArgumentError(f"{where}: norm_type must be a number or 'inf', got {norm_type!r}")
    return float(norm_type)


def _grads(params: list, where: str) -> list:
    grads = [p.grad for p in params if p.grad is not None]
    for g in grads:
        if isinstance(g, SparseTensor):
            raise TypeError(f"{where}: a sparse gradient (an embedding's, sparse=True) has no norm here, as in "
                            "torch (its linalg_vector_norm has no sparse kernel); clip the dense ones, or use "
                            "sparse=False")
    return grads


def _scale_in_place(g: Tensor, coef) -> None:
    """``g *= coef``, in place as torch's (whoever holds the .grad sees it); a read-only
    gradient array is replaced by a scaled copy."""
    if g._data.flags.writeable:
        np.multiply(g._data, g._data.dtype.type(coef), out=g._data)
    else:
        g._data = g._data * g._data.dtype.type(coef)
    g._version[0] += 1


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite: bool = False, foreach=None) -> Tensor:
    """Scale the gradients of ``parameters`` in place so that their total ``norm_type``
    norm (the norm of the gradients' norms) is at most ``max_norm``, as torch's: each is
    multiplied by ``min(1, max_norm / (total + 1e-6))``. Returns the total norm before
    clipping; a non-finite one is refused with ``error_if_nonfinite``. Sparse gradients
    are refused, as torch's.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> w = sr.nn.Parameter(sr.tensor([1., 1.]))
    >>> (w * 0.5).sum().backward()
    >>> sr.nn.utils.clip_grad_norm_(w, 10.0), w.grad    # under the limit: unchanged
    (tensor(0.7071), tensor([0.5000, 0.5000]))
    """
    where = "clip_grad_norm_"
    params = _params(parameters, where)
    norm_type = _norm_type(norm_type, where)
    if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real):
        raise ArgumentError(f"{where}: max_norm must be a number, got {max_norm!r}")
    grads = _grads(params, where)
    if not grads:
        return Tensor(np.array(0.0, dtype=np.float32))
    norms = [_functions.norm(Tensor(g._data), p=norm_type) for g in grads]  # (no graph: the data)
    widest = np.result_type(*[n.dtype for n in norms])  # (torch's stack promotes: float32 and float64 -> float64)
    total = _functions.norm(_functions.stack([n.to(widest) for n in norms]), p=norm_type)
    value = float(total._data)
    if error_if_nonfinite and not math.isfinite(value):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so "
                           "it cannot be clipped. To disable this error and scale the gradients by the non-finite "
                           "norm anyway, set `error_if_nonfinite=False`")
    dtype = total._data.dtype.type
    coef = min(dtype(max_norm) / (total._data + dtype(1e-6)), dtype(1.0))
    for g in grads:
        _scale_in_place(g, coef)
    return total


def clip_grad_value_(parameters, clip_value, foreach=None) -> None:
    """Clamp every gradient of ``parameters`` to ``[-clip_value, clip_value]`` in place,
    as torch's.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> w = sr.nn.Parameter(sr.tensor([1., 1.]))
    >>> (w * sr.tensor([3., -5.])).sum().backward()
    >>> sr.nn.utils.clip_grad_value_([w], 4.0); w.grad
    tensor([ 3., -4.])
    """
    where = "clip_grad_value_"
    if isinstance(clip_value, bool) or not isinstance(clip_value, numbers.Real) or math.isnan(clip_value):
        raise ArgumentError(f"{where}: clip_value must be a number, got {clip_value!r}")
    grads = _grads(_params(parameters, where), where)
    if any(g.dtype.kind == "c" for g in grads):  # (before any is changed)
        raise TypeError(f"{where}: clamp is not supported for complex types (a complex gradient has no order)")
    if any(g.dtype.kind in "iu" for g in grads):  # (torch's clamps it with a float bound, which it refuses)
        raise TypeError(f"{where}: an integer gradient cannot be clipped (torch refuses it too: its float "
                        "result cannot be cast back to the integer type)")
    for g in grads:
        clipped = np.clip(g._data, -clip_value, clip_value)
        if g._data.flags.writeable:
            g._data[...] = clipped
        else:
            g._data = clipped
        g._version[0] += 1


def parameters_to_vector(parameters) -> Tensor:
    """The parameters flattened and joined into one vector (differentiable), as torch's.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.nn.utils.parameters_to_vector(sr.nn.Linear(2, 1).parameters()).shape
    (3,)
    """
    params = _params(parameters, "parameters_to_vector")
    if not params:
        raise ArgumentError("parameters_to_vector: no parameters")
    return _functions.cat([p.reshape(-1) for p in params])


def vector_to_parameters(vec, parameters) -> None:
    """Copy the pieces of ``vec`` into the parameters, in order, as torch's (under no_grad:
    each parameter's data is written in place, its version counter moved).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> lin = sr.nn.Linear(2, 1)
    >>> sr.nn.utils.vector_to_parameters(sr.tensor([1., 2., 3.]), lin.parameters())
    >>> lin.weight.tolist(), lin.bias.tolist()
    ([[1.0, 2.0]], [3.0])
    """
    where = "vector_to_parameters"
    if not isinstance(vec, Tensor) or isinstance(vec, SparseTensor):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__name__}")
    params = _params(parameters, where)
    if vec.ndim != 1 or vec.shape[0] != sum(p.numel() for p in params):
        raise ShapeError(f"{where}: the vector has shape {list(vec.shape)}, the parameters "
                         f"{sum(p.numel() for p in params)} values in all")
    for p in params:
        if not p._data.flags.writeable:
            raise RuntimeError(f"{where}: a parameter's data is read-only; nothing was written")
    pieces, at = [], 0
    for p in params:  # each piece in its parameter's dtype (a value it cannot hold is refused), then written
        n = p.numel()
        pieces.append(converted(vec._data[at:at + n].reshape(p.shape), p._data.dtype, where))
        at += n
    for p, piece in zip(params, pieces):
        p._data[...] = piece
        p._version[0] += 1


def __getattr__(name):
    """A torch name sparse_ref does not have: an AttributeError that says so."""
    raise missing("module 'sparse_ref.nn.utils'", name)

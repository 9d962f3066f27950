"""``sr.nn.functional``: activations, dropout and losses as ``torch.nn.functional`` spells
them (layer 5). Each is a few lines over the differentiable ops of ``sparse_ref``; the
gradients are those of the ops (``BinaryCrossEntropyWithLogits`` has its own, stable one).

Examples
--------
>>> import sparse_ref as sr
>>> import sparse_ref.nn.functional as F
>>> logits = sr.tensor([[2., 0.], [0., 2.]], requires_grad=True)
>>> loss = F.cross_entropy(logits, sr.tensor([0, 1]))
>>> round(loss.item(), 4)
0.1269
"""

from __future__ import annotations

import numpy as np

from sparse_ref import _dtypes, _factories, _functions
from sparse_ref._errors import ArgumentError, DTypeError, ShapeError, missing
from sparse_ref._tensor import Tensor
from sparse_ref.autograd import dense_ops

REDUCTIONS = ("mean", "sum", "none")

relu = _functions.relu
sigmoid = _functions.sigmoid
tanh = _functions.tanh


def softmax(input, dim: int) -> Tensor:
    """See :func:`sparse_ref.softmax`."""
    return _functions.softmax(input, dim)


def log_softmax(input, dim: int) -> Tensor:
    """See :func:`sparse_ref.log_softmax`."""
    return _functions.log_softmax(input, dim)


def leaky_relu(input, negative_slope: float = 0.01) -> Tensor:
    """``input`` where it is positive, else ``negative_slope * input``.

    Examples
    --------
    >>> import sparse_ref as sr, sparse_ref.nn.functional as F
    >>> F.leaky_relu(sr.tensor([-1., 2.]), 0.1)
    tensor([-0.1000,  2.0000])
    """
    return _functions.where(input > 0, input, input * negative_slope)


def linear(input, weight, bias=None) -> Tensor:
    """``input @ weight.T + bias``."""
    out = _functions.matmul(input, weight.t())
    return out if bias is None else out + bias


def dropout(input, p: float = 0.5, training: bool = True, generator=None) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``
    while ``training``; the identity otherwise. The draws come from ``generator`` or the
    generator :func:`sparse_ref.manual_seed` seeds (not torch's: the same seed gives other
    masks than in torch).

    Examples
    --------
    >>> import sparse_ref as sr, sparse_ref.nn.functional as F
    >>> F.dropout(sr.ones(4), p=0.5, training=False)
    tensor([1., 1., 1., 1.])
    """
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ArgumentError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not isinstance(input, Tensor) or _dtypes.kind(input.dtype) not in "fc":
        raise DTypeError(f"dropout: needs a floating or complex tensor, got "
                         f"{getattr(input, 'dtype', type(input).__name__)} (the kept values are scaled by 1 / (1 - p))")
    if not training or p == 0:
        return input
    keep = _factories._rng(generator, "dropout").random(input.shape) >= p
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    return input * Tensor((keep * scale).astype(input.dtype))


def _check_reduction(reduction: str, where: str) -> None:
    if reduction not in REDUCTIONS:
        raise ArgumentError(f"{where}: {reduction!r} is not a valid value for reduction (mean, sum, none)")


def _reduce(loss: Tensor, reduction: str, where: str) -> Tensor:
    _check_reduction(reduction, where)
    return loss if reduction == "none" else (loss.sum() if reduction == "sum" else loss.mean())


def _one_sample(loss, input, target, reduction: str, ignore_index: int, where: str):
    """An unbatched call (input of C scores, a 0-d target), as torch takes it: the batched
    loss of one row; with ``reduction="none"`` a 0-d loss."""
    if not isinstance(target, Tensor) or target.ndim != 0:
        raise ArgumentError(f"{where}: with a 1-D input (one sample of C classes) the target must be a 0-d "
                            f"integer tensor, got {getattr(target, 'shape', type(target).__name__)}")
    out = loss(input.unsqueeze(0), target.reshape(1), reduction, ignore_index)
    return out.reshape(()) if reduction == "none" else out


def _targets(input, target, where: str, ignore_index: int):
    if not isinstance(input, Tensor) or input.ndim != 2:
        raise ArgumentError(f"{where}: input must be a 2-D tensor (N x C) or 1-D (one sample of C), got "
                            f"{getattr(input, 'ndim', type(input).__name__)}")
    if not isinstance(target, Tensor):
        raise ArgumentError(f"{where}: target must be a sparse_ref tensor (sr.tensor(...)), got "
                            f"{type(target).__module__.split('.')[0]}.{type(target).__name__}")
    if target.dtype.kind not in "iu" or target.shape != input.shape[:1]:
        raise ArgumentError(f"{where}: target must be an integer tensor of shape [{input.shape[0]}], got "
                            f"{target.dtype.name} {list(target.shape)}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"{where}: ignore_index must be an int, got {type(ignore_index).__name__}")
    t = target._data
    counted = t[t != ignore_index]
    if counted.size and (counted.min() < 0 or counted.max() >= input.shape[1]):
        bad = counted.max() if counted.max() >= input.shape[1] else counted.min()
        raise IndexError(f"{where}: Target {bad} is out of bounds.")
    return t


def nll_loss(input, target, reduction: str = "mean", ignore_index: int = -100) -> Tensor:
    """``-input[i, target[i]]``, averaged (or summed) over the rows: the loss for
    log-probabilities. Rows whose target is ``ignore_index`` (-100, as torch's default)
    count for nothing: their loss is 0 with ``reduction="none"``, and the mean is over
    the other rows (NaN when there are none, as torch's).

    Examples
    --------
    >>> import sparse_ref as sr, sparse_ref.nn.functional as F
    >>> F.nll_loss(sr.tensor([[-0.5, -1.0], [-2.0, -0.1]]), sr.tensor([0, 1]))
    tensor(0.3000)
    >>> F.nll_loss(sr.tensor([[-0.5, -1.0], [-2.0, -0.1]]), sr.tensor([0, -100]))
    tensor(0.5000)
    >>> F.nll_loss(sr.tensor([-0.5, -1.0]), sr.tensor(1))  # one sample, unbatched
    tensor(1.)
    """
    if isinstance(input, Tensor) and input.ndim == 1:
        return _one_sample(nll_loss, input, target, reduction, ignore_index, "nll_loss")
    t = _targets(input, target, "nll_loss", ignore_index)
    _check_reduction(reduction, "nll_loss")
    kept = t != ignore_index
    if kept.all():
        return _reduce(-input[np.arange(input.shape[0]), t], reduction, "nll_loss")
    if reduction == "none":  # a 0 where the target is ignored (column 0 is gathered there, then dropped)
        picked = -input[np.arange(input.shape[0]), np.where(kept, t, 0)]
        return _functions.where(Tensor(kept), picked, 0.0)
    rows = np.flatnonzero(kept)
    loss = (-input[rows, t[rows]]).sum()
    if reduction == "sum":
        return loss
    # every target ignored: NaN, as torch's 0 / 0 (its gradient: zeros, nothing was read)
    return loss / float(rows.shape[0]) if rows.shape[0] else loss * float("nan")


def cross_entropy(input, target, reduction: str = "mean", ignore_index: int = -100) -> Tensor:
    """``nll_loss(log_softmax(input, 1), target)``: the loss for unnormalised scores
    (``ignore_index`` as there); a 1-D input with a 0-d target is one sample, unbatched."""
    if isinstance(input, Tensor) and input.ndim == 1:
        return _one_sample(cross_entropy, input, target, reduction, ignore_index, "cross_entropy")
    _targets(input, target, "cross_entropy", ignore_index)
    _check_reduction(reduction, "cross_entropy")
    return nll_loss(log_softmax(input, 1), target, reduction, ignore_index)


def mse_loss(input, target, reduction: str = "mean") -> Tensor:
    """``(input - target) ** 2``, averaged (or summed).

    Examples
    --------
    >>> import sparse_ref as sr, sparse_ref.nn.functional as F
    >>> F.mse_loss(sr.tensor([1., 2.]), sr.tensor([1., 4.]))
    tensor(2.)
    """
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError("mse_loss: input and target must be dense Tensors")
    if input.shape != target.shape:
        raise ShapeError(f"mse_loss: input shape {list(input.shape)} and target shape {list(target.shape)} differ")
    diff = input - target
    return _reduce(diff * diff, reduction, "mse_loss")


def binary_cross_entropy_with_logits(input, target, reduction: str = "mean") -> Tensor:
    """The binary cross entropy of ``sigmoid(input)`` against ``target`` in [0, 1], in the
    stable form ``max(x, 0) - x y + log(1 + exp(-|x|))``.

    Examples
    --------
    >>> import sparse_ref as sr, sparse_ref.nn.functional as F
    >>> F.binary_cross_entropy_with_logits(sr.tensor([0.]), sr.tensor([1.]))
    tensor(0.6931)
    """
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError("binary_cross_entropy_with_logits: input and target must be dense Tensors")
    if input.shape != target.shape:
        raise ShapeError(f"binary_cross_entropy_with_logits: Target size ({list(target.shape)}) must be the "
                         f"same as input size ({list(input.shape)})")
    if input.dtype != target.dtype or _dtypes.kind(input.dtype) != "f":
        raise DTypeError(f"binary_cross_entropy_with_logits: input and target must share one real floating "
                         f"dtype, got {input.dtype.name} and {target.dtype.name}")
    if reduction not in REDUCTIONS:
        raise ArgumentError(f"binary_cross_entropy_with_logits: {reduction!r} is not a valid value for "
                            "reduction (mean, sum, none)")
    return dense_ops.BinaryCrossEntropyWithLogits.apply(input, target, reduction)


def __getattr__(name):
    """A torch name sparse_ref does not have: an AttributeError that says so."""
    raise missing("module 'sparse_ref.nn.functional'", name)

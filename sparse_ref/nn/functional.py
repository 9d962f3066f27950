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

import numbers

import numpy as np

from sparse_ref import _dtypes, _factories, _functions
from sparse_ref._errors import ArgumentError, DTypeError, ShapeError, missing
from sparse_ref._grad_mode import no_grad
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


def _dropout_probability(p) -> None:
    """Refuse a dropout probability outside [0, 1] (or not a number), as torch's."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ArgumentError(f"dropout probability has to be between 0 and 1, but got {p}")


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
    _dropout_probability(p)
    if not isinstance(input, Tensor) or _dtypes.kind(input.dtype) not in "fc":
        raise DTypeError(f"dropout: needs a floating or complex tensor, got "
                         f"{getattr(input, 'dtype', type(input).__name__)} (the kept values are scaled by 1 / (1 - p))")
    if not training or p == 0:
        return input
    keep = _factories._rng(generator, "dropout").random(input.shape) >= p
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    return input * Tensor((keep * scale).astype(input.dtype))


def _padding_index(padding_idx, rows: int, where: str):
    """``padding_idx`` as a row of a weight of ``rows`` rows (a negative one counts from
    the end), checked as torch checks it; None stays None."""
    if padding_idx is None:
        return None
    if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)):
        raise TypeError(f"{where}: padding_idx must be an int or None, got {type(padding_idx).__name__}")
    if not -rows <= padding_idx < rows:
        raise ArgumentError(f"{where}: Padding_idx must be within num_embeddings (got {padding_idx} "
                            f"for {rows} embeddings)")
    return int(padding_idx) % rows


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Row ``input[...]`` of ``weight`` for each index: a tensor of shape
    ``input.shape + (embedding_dim,)``. It is the product ``one_hot(input) @ weight``
    without the one-hot matrix, so ``weight``'s gradient is the sum of the output
    gradient's rows for each index (the row ``padding_idx`` gets none). With
    ``max_norm``, each row that ``input`` takes whose ``norm_type``-norm exceeds it is
    first scaled in place to norm ``max_norm`` (as torch's, which changes ``weight``).

    With ``sparse=True`` the weight's gradient is sparse, as torch's: a COO tensor with
    one sparse dim (the rows) and one entry per index (the padding's left out), not
    coalesced, which ``SGD`` and ``SparseAdam`` take (``Adam`` refuses it, as torch's).
    Where the weight is not a leaf (``embedding(ids, w * 2, sparse=True)``) the gradient
    reaches the op that made it dense (torch keeps it sparse through some ops). Such a
    gradient has a dense dim (each entry a row), and sparse_ref's sparse arithmetic takes
    2-D sparse matrices only: ``coalesce()``, ``to_dense()``, the optimisers
    and ``w.add_(w.grad, alpha=...)`` take it; ``w.grad + w.grad`` does not (torch's does).

    Examples
    --------
    >>> import sparse_ref as sr, sparse_ref.nn.functional as F
    >>> weight = sr.tensor([[0., 0.], [1., 2.], [3., 4.]], requires_grad=True)
    >>> F.embedding(sr.tensor([[2, 1], [1, 1]]), weight).shape
    (2, 2, 2)
    >>> F.embedding(sr.tensor([2, 1, 1]), weight, padding_idx=2).sum().backward()
    >>> weight.grad
    tensor([[0., 0.],
            [2., 2.],
            [0., 0.]])
    >>> weight.grad = None
    >>> F.embedding(sr.tensor([2, 1, 1]), weight, padding_idx=2, sparse=True).sum().backward()
    >>> weight.grad.is_coalesced(), weight.grad.coalesce().indices(), weight.grad.coalesce().values()
    (False, tensor([[1]]), tensor([[2., 2.]]))
    """
    where = "embedding"
    if not isinstance(input, Tensor):
        raise TypeError(f"{where}: input must be a dense tensor of indices, got {type(input).__name__}")
    if input.dtype not in (np.dtype(np.int64), np.dtype(np.int32)):
        raise DTypeError(f"{where}: expected indices of dtype int64 or int32 (Long or Int), got {input.dtype.name}")
    if not isinstance(weight, Tensor):
        raise TypeError(f"{where}: weight must be a dense tensor, got {type(weight).__name__}")
    if weight.ndim != 2:
        raise ShapeError(f"{where}: 'weight' must be 2-D, got shape {list(weight.shape)}")
    rows = weight.shape[0]
    padding = _padding_index(padding_idx, rows, where)
    ids = np.array(input._data, dtype=np.int64)  # (a copy: backward reads it, whatever the caller does later)
    if ids.size and (ids.min() < 0 or ids.max() >= rows):
        bad = ids[(ids < 0) | (ids >= rows)].flat[0]
        raise IndexError(f"{where}: index out of range in self (index {bad}, {rows} embeddings)")
    if not isinstance(scale_grad_by_freq, (bool, np.bool_)):
        raise TypeError(f"{where}: scale_grad_by_freq must be a bool, got {type(scale_grad_by_freq).__name__}")
    if scale_grad_by_freq and sparse:
        raise ArgumentError("embedding_backward: scale_grad_by_freq not supported with sparse gradients")
    if max_norm is not None:
        _renorm_rows(weight, ids, max_norm, norm_type, where)
    return dense_ops.Embedding.apply(weight, ids, padding, bool(scale_grad_by_freq), bool(sparse))


def _renorm_rows(weight: Tensor, ids: np.ndarray, max_norm, norm_type, where: str) -> None:
    """torch's ``embedding_renorm_``: each row of ``weight`` that ``ids`` takes, whose
    ``norm_type``-norm is over ``max_norm``, scaled in place by ``max_norm / (norm + 1e-7)``
    (not recorded by autograd, as torch's; the version counter moves)."""
    for name, value in (("max_norm", max_norm), ("norm_type", norm_type)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or np.isnan(value) or (name == "max_norm" and not np.isfinite(value)):
            raise ArgumentError(f"{where}: {name} must be a number (max_norm finite), got {value!r}")
    if _dtypes.kind(weight.dtype) not in "fc":
        raise DTypeError(f"{where}: max_norm needs a floating weight, got {weight.dtype.name}")
    if not weight._data.flags.writeable:
        raise RuntimeError(f"{where}: max_norm scales rows of weight in place, and its data is read-only")
    rows = np.unique(ids)
    norms = np.linalg.norm(weight._data[rows], ord=float(norm_type), axis=1)
    over = norms > max_norm
    if over.any():
        scale = (max_norm / (norms[over] + 1e-7)).astype(weight._data.real.dtype)
        weight._data[rows[over]] *= scale[:, None]
        weight._version[0] += 1


def _normalized(x: Tensor, dims: tuple, eps: float, mean=None, var=None) -> Tensor:
    """``(x - mean) / sqrt(var + eps)`` over ``dims``: the batch's own mean and biased
    variance when none are given (differentiable through both, as torch's)."""
    if mean is None:
        mean = x.mean(dim=dims, keepdim=True)
        centred = x - mean
        var = (centred * centred).mean(dim=dims, keepdim=True)
    else:
        centred = x - mean
    return centred / _functions.sqrt(var + eps)


def _real_number(value, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value):
        raise ArgumentError(f"{where}: {name} must be a finite number, got {value!r}")
    return float(value)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Each sample normalised over its last ``len(normalized_shape)`` dims, as torch's:
    ``(x - mean) / sqrt(var + eps) * weight + bias``, with the mean and the biased
    variance of those dims. The gradient is that of these ops.

    Examples
    --------
    >>> import sparse_ref as sr, sparse_ref.nn.functional as F
    >>> F.layer_norm(sr.tensor([[1., 2., 3.], [2., 2., 2.]]), (3,))
    tensor([[-1.2247,  0.0000,  1.2247],
            [ 0.0000,  0.0000,  0.0000]])
    """
    where = "layer_norm"
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
    if not isinstance(input, Tensor) or _dtypes.kind(input.dtype) != "f":
        raise DTypeError(f"{where}: needs a real floating dense tensor (torch has no complex one), got "
                         f"{getattr(input, 'dtype', type(input).__name__)}")
    if not shape or input.ndim < len(shape) or tuple(input.shape[input.ndim - len(shape):]) != shape:
        raise ShapeError(f"{where}: Given normalized_shape={list(shape)}, expected input with shape "
                         f"[*, {', '.join(map(str, shape))}], but got input of size {list(input.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and (not isinstance(t, Tensor) or tuple(t.shape) != shape):
            raise ShapeError(f"{where}: {name} must be a tensor of shape {list(shape)}, got "
                             f"{list(getattr(t, 'shape', ())) if isinstance(t, Tensor) else type(t).__name__}")
    eps = _real_number(eps, "eps", where)
    out = _normalized(input, tuple(range(input.ndim - len(shape), input.ndim)), eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum=0.1, eps: float = 1e-5) -> Tensor:
    """Each channel (dim 1 of an (N, C) or (N, C, L) input) normalised, as torch's: by the
    batch's mean and biased variance while ``training`` (then ``running_mean`` and
    ``running_var``, if given, move towards the batch's mean and unbiased variance by
    ``momentum``, in place), else by ``running_mean`` and ``running_var``; then scaled by
    ``weight`` and shifted by ``bias`` (each of C values). The gradient is that of these
    ops (the running statistics take none).

    Examples
    --------
    >>> import sparse_ref as sr, sparse_ref.nn.functional as F
    >>> mean, var = sr.zeros(2), sr.ones(2)
    >>> F.batch_norm(sr.tensor([[1., 10.], [3., 30.]]), mean, var, training=True)
    tensor([[-1.0000, -1.0000],
            [ 1.0000,  1.0000]])
    >>> mean, var
    (tensor([0.2000, 2.0000]), tensor([ 1.1000, 20.9000]))
    """
    where = "batch_norm"
    if not isinstance(input, Tensor) or _dtypes.kind(input.dtype) != "f":
        raise DTypeError(f"{where}: needs a real floating dense tensor (torch has no complex one), got "
                         f"{getattr(input, 'dtype', type(input).__name__)}")
    if input.ndim < 2:
        raise ShapeError(f"{where}: expected an input of at least 2 dims (N, C, ...), got shape {list(input.shape)}")
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if t is not None and (not isinstance(t, Tensor) or tuple(t.shape) != (c,)):
            raise ShapeError(f"{where}: {name} must be a tensor of {c} values (one a channel), got "
                             f"{list(t.shape) if isinstance(t, Tensor) else type(t).__name__}")
    eps = _real_number(eps, "eps", where)
    for name, t in (("running_mean", running_mean), ("running_var", running_var)):
        if t is not None and t.requires_grad:
            raise ArgumentError(f"{where}: {name} requires grad; the running statistics take no gradient "
                                "(torch refuses them too): pass a tensor that does not require grad")
    dims = (0,) + tuple(range(2, input.ndim))
    count = input.numel() // c if c else 0
    per_channel = (1, c) + (1,) * (input.ndim - 2)
    if training:
        if count <= 1:
            raise ArgumentError(f"Expected more than 1 value per channel when training, got input size "
                                f"{list(input.shape)}")
        momentum = _real_number(momentum, "momentum", where)
        out = _normalized(input, dims, eps)
        with no_grad():  # the running statistics: no graph, changed in place
            data = input.detach()
            mean = data.mean(dim=dims)
            unbiased = ((data - mean.reshape(per_channel)) ** 2).sum(dim=dims) / (count - 1)
            for stat, batch in ((running_mean, mean), (running_var, unbiased)):
                if stat is not None:
                    if not stat._data.flags.writeable:
                        raise RuntimeError(f"{where}: a running statistic is read-only; nothing was changed")
                    stat.mul_(1 - momentum).add_(batch.to(stat.dtype) * momentum)
    else:
        if running_mean is None or running_var is None:
            raise ArgumentError(f"{where}: running_mean and running_var are needed when not training")
        out = _normalized(input, dims, eps, running_mean.reshape(per_channel), running_var.reshape(per_channel))
    if weight is not None:
        out = out * weight.reshape(per_channel)
    if bias is not None:
        out = out + bias.reshape(per_channel)
    return out


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

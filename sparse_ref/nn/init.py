"""``sr.nn.init``: torch's parameter initialisations, with torch's formulas for the bounds
and standard deviations (the draws come from sparse_ref's generator, so the values are
not torch's: the same distributions, other samples).

Each function fills a dense floating tensor in place, outside the graph (as torch's run
under ``no_grad``), bumps its version counter and returns it.

Examples
--------
>>> import sparse_ref as sr
>>> w = sr.nn.init.xavier_uniform_(sr.zeros(64, 32))
>>> bound = (6 / (64 + 32)) ** 0.5
>>> bool(w.abs().max().item() <= bound)
True
>>> sr.nn.init.calculate_gain("relu") == 2 ** 0.5
True
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from sparse_ref import _dtypes, _factories
from sparse_ref._arrays import converted
from sparse_ref._errors import missing
from sparse_ref._tensor import SparseTensor, Tensor

__all__ = ["calculate_gain", "constant_", "eye_", "kaiming_normal_", "kaiming_uniform_", "normal_", "ones_",
           "uniform_", "xavier_normal_", "xavier_uniform_", "zeros_"]

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
           "sigmoid")


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The gain torch recommends for a nonlinearity: 1 for linear layers and sigmoid, 5/3
    for tanh, sqrt(2) for relu, sqrt(2 / (1 + slope^2)) for leaky_relu (slope 0.01 unless
    ``param``), 3/4 for selu."""
    if nonlinearity in _LINEAR:
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, numbers.Real) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _target(tensor, where: str) -> Tensor:
    if isinstance(tensor, SparseTensor) or not isinstance(tensor, Tensor):
        raise TypeError(f"{where}: expected a dense tensor, got {type(tensor).__name__}")
    if _dtypes.kind(tensor.dtype) != "f":
        raise TypeError(f"{where}: needs a floating tensor, got {tensor.dtype.name}")
    if not tensor._data.flags.writeable:
        raise ValueError(f"{where}: the tensor's data is read-only (it views a sparse tensor's values or a "
                         "read-only array): fill a clone()")
    return tensor


def _fill(tensor: Tensor, values, where: str) -> Tensor:
    """``values`` (float64) into ``tensor`` in place, refusing a value its dtype cannot hold."""
    tensor._data[...] = converted(np.asarray(values, dtype=np.float64), tensor.dtype, where)
    tensor._version[0] += 1
    return tensor


def _real(name: str, value, where: str, finite: bool = True) -> float:
    """``value`` (a Python or NumPy real number) as a float; refused unless finite, where
    ``finite``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or (
            finite and not math.isfinite(value)):
        raise TypeError(f"{where}: {name} must be a {'finite ' if finite else ''}real number, got {value!r}")
    return float(value)


def uniform_(tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    """Fill with draws uniform on ``[a, b)``: never ``b`` itself, in any dtype (a draw
    that would round up to ``b`` takes the dtype's largest value below it). Bounds the
    dtype cannot hold, or a range wider than its largest value, are refused (as torch)."""
    t = _target(tensor, "uniform_")
    a, b = _real("a", a, "uniform_"), _real("b", b, "uniform_")
    if a > b:
        raise ValueError(f"uniform_: expects to return a [a, b) range, but found a={a} > b={b}")
    top = float(_dtypes.finfo(t.dtype).max)
    if max(abs(a), abs(b)) > top or b - a > top:
        raise ValueError(f"uniform_: the range [{a}, {b}) does not fit in {t.dtype.name} (largest value {top})")
    values = converted(_factories._rng(generator, "uniform_").uniform(a, b, t.shape), t.dtype, "uniform_")
    if a < b:  # (rounded into a narrower type, a draw just below b can become b)
        below = np.array(b, dtype=t.dtype)
        while float(below) >= b:
            below = np.nextafter(below, np.array(-np.inf, dtype=t.dtype))
        values[values.astype(np.float64) >= b] = below
    t._data[...] = values
    t._version[0] += 1
    return t


def normal_(tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    """Fill with draws from the normal distribution N(mean, std^2). A distribution whose
    draws could overflow the dtype (``|mean| + 10 std`` above its largest value) is
    refused before drawing, so the answer never depends on the draw."""
    t = _target(tensor, "normal_")
    mean, std = _real("mean", mean, "normal_"), _real("std", std, "normal_")
    if std < 0:
        raise ValueError(f"normal_: expects std >= 0.0, but found std {std}")
    top = float(_dtypes.finfo(t.dtype).max)
    if abs(mean) + 10 * std > top:
        raise ValueError(f"normal_: N({mean}, {std}^2) would overflow {t.dtype.name} (largest value {top})")
    return _fill(t, _factories._rng(generator, "normal_").normal(mean, std, t.shape), "normal_")


def constant_(tensor, val: float) -> Tensor:
    """Fill with ``val`` (inf and NaN too, as torch's)."""
    t = _target(tensor, "constant_")
    return _fill(t, np.full(t.shape, _real("val", val, "constant_", finite=False)), "constant_")


def ones_(tensor) -> Tensor:
    """Fill with 1."""
    return constant_(tensor, 1.0)


def zeros_(tensor) -> Tensor:
    """Fill with 0."""
    return constant_(tensor, 0.0)


def eye_(tensor) -> Tensor:
    """A 2-D tensor set to the identity (ones on the diagonal, as many as fit)."""
    t = _target(tensor, "eye_")
    if len(t.shape) != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    return _fill(t, np.eye(*t.shape), "eye_")


def _fans(tensor: Tensor, where: str) -> tuple:
    """``(fan_in, fan_out)``: the tensor's second and first sizes, times the product of
    the rest (a convolution's receptive field), as torch counts them."""
    if len(tensor.shape) < 2:
        raise ValueError(f"{where}: Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    field = math.prod(tensor.shape[2:])
    return tensor.shape[1] * field, tensor.shape[0] * field


def _glorot_std(t: Tensor, gain, where: str) -> float:
    fan_in, fan_out = _fans(t, where)
    gain = _real("gain", gain, where)
    if gain < 0:
        raise ValueError(f"{where}: gain must be >= 0, got {gain}")
    return gain * math.sqrt(2.0 / float(fan_in + fan_out))


def xavier_uniform_(tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot's uniform: on ``[-a, a]`` with ``a = gain * sqrt(6 / (fan_in + fan_out))``."""
    t = _target(tensor, "xavier_uniform_")
    if t._data.size == 0:
        return t
    a = math.sqrt(3.0) * _glorot_std(t, gain, "xavier_uniform_")
    return uniform_(t, -a, a, generator)


def xavier_normal_(tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot's normal: N(0, std^2) with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    t = _target(tensor, "xavier_normal_")
    if t._data.size == 0:
        return t
    return normal_(t, 0.0, _glorot_std(t, gain, "xavier_normal_"), generator)


def _kaiming_std(t: Tensor, a, mode: str, nonlinearity: str, where: str) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{where}: Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _fans(t, where)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)


def _empty(t: Tensor) -> bool:
    if t._data.size == 0:
        warnings.warn("Initializing zero-element tensors is a no-op", UserWarning, stacklevel=3)  # (as torch)
        return True
    return False


def kaiming_uniform_(tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator=None) -> Tensor:
    """He's uniform: on ``[-bound, bound]`` with ``bound = gain * sqrt(3 / fan)``, the gain
    of ``nonlinearity`` (with slope ``a`` for leaky_relu) and fan ``mode``'s."""
    t = _target(tensor, "kaiming_uniform_")
    if _empty(t):
        return t
    bound = math.sqrt(3.0) * _kaiming_std(t, a, mode, nonlinearity, "kaiming_uniform_")
    return uniform_(t, -bound, bound, generator)


def kaiming_normal_(tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator=None) -> Tensor:
    """He's normal: N(0, std^2) with ``std = gain / sqrt(fan)``."""
    t = _target(tensor, "kaiming_normal_")
    if _empty(t):
        return t
    return normal_(t, 0.0, _kaiming_std(t, a, mode, nonlinearity, "kaiming_normal_"), generator)


def __getattr__(name):
    """An initialisation torch has and sparse_ref does not: an AttributeError that says so."""
    raise missing("module 'sparse_ref.nn.init'", name)

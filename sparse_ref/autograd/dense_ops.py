"""Differentiable dense ops, forward and backward side by side.

Conventions (as in torch): for an op ``out = f(x)`` the gradient passed back is
``conj(df/dx) * grad`` for complex values (so real-valued losses get
``dL/dRe + i dL/dIm``), and gradients of broadcast inputs are summed back to their shape.
"""

from __future__ import annotations

import numpy as np

from sparse_ref import _dtypes, _precision
from sparse_ref._arrays import c_order
from sparse_ref._errors import ConversionError
from sparse_ref._tensor import Tensor
from sparse_ref.autograd.engine import Function, RowGrad


def ieee(cls):
    """Class decorator for a division or a power: its forward and backward give IEEE's inf
    and NaN (1 / 0, 0 ** -1) without NumPy's RuntimeWarning, as torch warns of none. (Not
    on every elementwise op: ``np.errstate`` costs about 1.5 us a call, half the time of a
    small ``x + y``; an overflow or ``0 * inf`` there still warns.)"""
    for name in ("forward", "backward"):
        method = getattr(cls, name)

        def quiet(self, *args, _method=method):
            with np.errstate(all="ignore"):
                return _method(self, *args)

        quiet.__doc__, quiet.__name__ = method.__doc__, method.__name__
        setattr(cls, name, quiet)
    return cls


def _each_reads_the_other(cls, needs, n_args):
    """``saved_positions`` of a product of two inputs (Mul, MatMul): x's gradient reads y's
    data and y's reads x's, so a weight changed by an optimizer step between forward and
    backward is no matter when the input needs no gradient (a Linear layer's first input),
    as in torch."""
    return [p for p, other in ((1, 0), (0, 1)) if needs[other]]


def conj(x: np.ndarray) -> np.ndarray:
    """The complex conjugate; real arrays are returned as they are (no copy)."""
    return np.conj(x) if np.iscomplexobj(x) else x


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` over the dimensions that broadcasting added or stretched; a float16 or
    bfloat16 ``grad`` is summed in float32 and rounded once, as torch accumulates it
    (bfloat16 summed in bfloat16 drifted: -12.0 for torch's -11.875 over 64 rows)."""
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + axis for axis, n in enumerate(shape)
                                      if n == 1 and grad.shape[lead + axis] != 1)
    if not axes:
        return grad
    summed = _precision.reduced(lambda g: g.sum(axis=axes, keepdims=True), grad)
    return summed.reshape(shape)


class Sum(Function):
    """``out = x.sum(dim)``; the gradient spreads ``grad`` back over the summed dims."""

    _name = "SumBackward0"
    saves = ()  # backward reads no input data

    def forward(self, x, dim, keepdim):
        self.shape, self.dim, self.keepdim = x.shape, dim, keepdim
        return Tensor(_precision.reduced(lambda d: d.sum(axis=dim, keepdims=keepdim), x._data))

    def backward(self, grad):
        if self.dim is not None and not self.keepdim:
            grad = np.expand_dims(grad, self.dim)
        # a read-only broadcast view, not a copy: a consumer that needs memory copies it,
        # one that can read the one row (sparse_ops.same_rows) does not
        return np.broadcast_to(grad, self.shape), None, None


class Mean(Function):
    """``out = x.mean(dim)``; the gradient is ``grad / count`` on every averaged element."""

    _name = "MeanBackward0"
    saves = ()  # backward reads no input data

    def forward(self, x, dim, keepdim):
        self.shape, self.dim, self.keepdim = x.shape, dim, keepdim
        data = x._data
        self.count = data.size if dim is None else int(np.prod([data.shape[d] for d in np.atleast_1d(dim)]))
        return Tensor(_precision.reduced(lambda d: d.mean(axis=dim, keepdims=keepdim), data))

    def backward(self, grad):
        if self.dim is not None and not self.keepdim:
            grad = np.expand_dims(grad, self.dim)
        # as torch: G / count in float32 for a half dtype (count itself may not fit one:
        # float16 stops at 65504), rounded once; a broadcast view, as Sum's
        grad = np.asarray(grad)
        small = _precision.small_dtype(grad)
        if small is not None:
            grad = grad.astype(np.float32)
        return np.broadcast_to(_precision.finish(grad / self.count, small), self.shape), None, None


class Add(Function):
    """``out = x + y`` (broadcasting); each input gets ``grad`` summed to its shape."""

    _name = "AddBackward0"
    saves = ()  # backward reads no input data

    def forward(self, x, y):
        self.shapes = (x.shape, y.shape)
        return Tensor(_precision.rounded(x._data + y._data, x._data, y._data))

    def backward(self, grad):
        return unbroadcast(grad, self.shapes[0]), unbroadcast(grad, self.shapes[1])


class Sub(Function):
    """``out = x - y``; x gets ``grad``, y gets ``-grad``."""

    _name = "SubBackward0"
    saves = ()  # backward reads no input data

    def forward(self, x, y):
        self.shapes = (x.shape, y.shape)
        return Tensor(_precision.rounded(x._data - y._data, x._data, y._data))

    def backward(self, grad):
        return unbroadcast(grad, self.shapes[0]), unbroadcast(-grad, self.shapes[1])


class Mul(Function):
    """``out = x * y`` elementwise; ``grad_x = conj(y) * grad``, ``grad_y = conj(x) * grad``."""

    _name = "MulBackward0"

    saved_positions = classmethod(_each_reads_the_other)

    def forward(self, x, y):
        self.x, self.y = x._data, y._data
        return Tensor(_precision.rounded(x._data * y._data, x._data, y._data))

    def backward(self, grad):  # (a half tensor's number is float32: summed, then rounded once)
        return (_precision.rounded(unbroadcast(conj(self.y) * grad, self.x.shape), grad),
                _precision.rounded(unbroadcast(conj(self.x) * grad, self.y.shape), grad))


@ieee
class Div(Function):
    """``out = x / y`` elementwise; ``grad_x = grad / conj(y)``,
    ``grad_y = -grad * conj(x / y**2)``."""

    _name = "DivBackward0"

    def forward(self, x, y):
        self.x, self.y = x._data, y._data
        return Tensor(_precision.rounded(x._data / y._data, x._data, y._data))

    def backward(self, grad):  # half operands: computed in float32, rounded once, as forward
        x, y, g = _precision.wide(self.x), _precision.wide(self.y), _precision.wide(grad)
        return (_precision.rounded(unbroadcast(g / conj(y), self.x.shape), grad),
                _precision.rounded(unbroadcast(-g * conj(x / (y * y)), self.y.shape), grad))


class Neg(Function):
    """``out = -x``; ``grad_x = -grad``."""

    _name = "NegBackward0"
    saves = ()  # backward reads no input data

    def forward(self, x):
        return Tensor(-x._data)

    def backward(self, grad):
        return (-grad,)


class Clone(Function):
    """``out = x.clone()``, a copy of the data; ``grad_x = grad``."""

    _name = "CloneBackward0"
    saves = ()

    def forward(self, x):
        return Tensor(x._data.copy())

    def backward(self, grad):
        return (grad,)


@ieee
class Pow(Function):
    """``out = x ** p`` for a number p; ``grad_x = conj(p * x ** (p - 1)) * grad``."""

    _name = "PowBackward0"

    def forward(self, x, p):
        self.x, self.p = x._data, p
        return Tensor(_power(x._data, p))

    def backward(self, grad):
        if self.p == 0:  # x ** 0 is constant: no gradient (not 0 * x ** -1, NaN at 0)
            return np.zeros_like(grad), None
        return conj(self.x.dtype.type(self.p) * _power(self.x, self.p - 1)) * grad, None


def _power(x: np.ndarray, p) -> np.ndarray:
    """``x ** p`` for a number ``p``, taken in x's dtype, as torch's vectorised kernel takes
    it (so a float32 tensor's ``16777217`` is 16777216, even: ``(-1.) ** 16777217`` is 1 in
    torch too, but for tensors of fewer elements than a vector). Where the dtype makes
    ``p`` inf, as a float16 tensor's 70001, it is refused, as torch refuses any ``p``
    beyond the dtype's largest value (65504 for float16)."""
    dt = x.dtype
    if _dtypes.kind(dt) == "f" and abs(p) > float(_dtypes.finfo(dt).max):
        raise ConversionError(f"**: the exponent {p} cannot be converted to type {dt.name} without overflow")
    return x ** dt.type(p)


@ieee
class RPow(Function):
    """``out = c ** x`` for a number c (``2 ** x``); ``grad_x = conj(out * log(c)) * grad``,
    and 0 where c is 0 and x >= 0 (where torch's is 0 too: no ``0 * log(0)``). A half x
    is computed in float32 with c as a float32 and rounded once, as torch computes it. The
    values are NumPy's ``power``: to rounding those of torch, whose code differs, and
    where a complex power has special values, NumPy's (a complex ``0 ** 0`` is 1, as
    Python's ``0j ** 0j``; torch's gives nan + nanj)."""

    _name = "PowBackward2"
    saves_output = True  # backward reads forward's output

    def forward(self, x, c):
        self.x, self.small = x._data, _precision.small_dtype(x._data)
        self.c = _precision.wide(x._data).dtype.type(c)
        self.out = _integer_power(self.c, x._data) if x.dtype.kind in "iu" else \
            np.power(self.c, _precision.wide(x._data))
        return Tensor(_precision.finish(self.out, self.small))

    def backward(self, grad):
        # log(c) in double, then in the dtype, as torch's Scalar log; a half result is the
        # rounded one times it, rounded, then times grad, rounded: torch's steps in half
        log_c = np.log(np.complex128(self.c) if self.out.dtype.kind == "c" else np.float64(self.c))
        log_c = self.out.dtype.type(log_c)
        if self.small is None:
            g = grad * conj(self.out * log_c)
        else:
            rounded_out = _precision.wide(_precision.finish(self.out, self.small))
            g = _precision.wide(grad) * _precision.wide(_precision.finish(rounded_out * log_c, self.small))
        if self.c == 0:
            x = _precision.wide(self.x)
            g = np.where((x.real >= 0) & (x.imag == 0) if x.dtype.kind == "c" else x >= 0, 0, g)
        return _precision.finish(np.asarray(g, dtype=self.out.dtype), self.small), None


@ieee
class PowTensor(Function):
    """``out = x ** y`` elementwise for two floating tensors (broadcast);
    ``grad_x = conj(y * x ** (y - 1)) * grad``, ``grad_y = conj(out * log(x)) * grad``, 0
    where x is 0 and y >= 0 (as torch's: no ``0 * log(0)``); each summed back to its shape."""

    _name = "PowBackward1"
    saves_output = True

    def forward(self, x, y):
        self.x, self.y = x._data, y._data
        self.out = np.power(self.x, self.y)
        return Tensor(self.out)

    def backward(self, grad):
        x, y = self.x, self.y
        gx = np.where(y == 0, 0, conj(y * x ** (y - 1))) * grad  # (x ** 0 is constant: 0, not 0 * x ** -1)
        log_x = np.log(x)
        real = x.dtype.kind != "c"
        gy = conj(self.out * log_x) * grad
        gy = np.where((x == 0) & ((y >= 0) if real else ((y.real >= 0) & (y.imag == 0))), 0, gy)
        return (np.asarray(unbroadcast(gx, x.shape), dtype=x.dtype),
                np.asarray(unbroadcast(gy, y.shape), dtype=y.dtype))


def _integer_power(c, e: np.ndarray) -> np.ndarray:
    """``c ** e`` for an integer c and integer exponents as torch computes them: a negative
    exponent gives 0, except for c = 1 (1) and c = -1 (1 or -1 by the exponent's parity);
    NumPy refuses negative exponents of integers instead."""
    out = np.power(c, np.maximum(e, 0)).astype(e.dtype, copy=False)
    negative = e < 0
    if negative.any():
        out[negative] = 1 if c == 1 else np.where(e[negative] % 2 == 0, 1, -1) if c == -1 else 0
    return out


class MatMul(Function):
    """Dense ``out = A @ B``; ``grad_A = grad @ B^H``, ``grad_B = A^H @ grad``."""

    _name = "MmBackward0"

    saved_positions = classmethod(_each_reads_the_other)

    def forward(self, a, b):
        self.a, self.b = a._data, b._data
        return Tensor(_matmul(a._data, b._data))

    def backward(self, grad):
        a, b = self.a, self.b  # batched operands broadcast as np.matmul does
        return (unbroadcast(_matmul(grad, np.swapaxes(conj(b), -1, -2)), a.shape),
                unbroadcast(_matmul(np.swapaxes(conj(a), -1, -2), grad), b.shape))


def _matmul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``np.matmul``, with float16 and bfloat16 multiplied in float32 and rounded once to
    the half type, as every product here (``_precision``): ml_dtypes' bfloat16 matmul
    would return float32, and NumPy's float16 one adds in its own order."""
    small = _precision.small_dtype(x, y)
    if small is None:
        return np.matmul(x, y)
    return _precision.finish(np.matmul(_precision.wide(x), _precision.wide(y)), small)


class Transpose(Function):
    """``out = x.t()``; ``grad_x = grad.t()``."""

    _name = "TBackward0"
    saves = ()  # backward reads no input data

    def forward(self, x):
        out = Tensor(x._data.T)
        out._version = x._version  # a view: an in-place change of either is a change of both
        return out

    def backward(self, grad):
        return (c_order(grad.T),)


def _view(out: Tensor, x: Tensor) -> Tensor:
    """Mark ``out`` as a view of ``x``: an in-place change of either is a change of both,
    so they share the version counter (as torch's views do)."""
    if np.shares_memory(out._data, x._data):
        out._version = x._version
    return out


# -- shapes: views, with the gradient taken back to the input's shape ---------------------

class Reshape(Function):
    """``out = x.reshape(shape)`` (also view, flatten, squeeze, unsqueeze);
    ``grad_x = grad.reshape(x.shape)``."""

    _name = "ViewBackward0"
    saves = ()

    def forward(self, x, shape):
        self.shape = x.shape
        return _view(Tensor(x._data.reshape(shape)), x)

    def backward(self, grad):
        return grad.reshape(self.shape), None


class Permute(Function):
    """``out = x.permute(dims)`` (also transpose, .T, .mT); ``grad_x`` is ``grad`` permuted back."""

    _name = "PermuteBackward0"
    saves = ()

    def forward(self, x, dims):
        self.inverse = tuple(np.argsort(dims))
        return _view(Tensor(np.transpose(x._data, dims)), x)

    def backward(self, grad):
        return c_order(np.transpose(grad, self.inverse)), None


def _basic_key(key) -> bool:
    """Whether an index takes a view (ints, slices, None, ...), not a gather."""
    parts = key if isinstance(key, tuple) else (key,)
    return all(isinstance(k, (int, np.integer, slice, type(None), type(Ellipsis))) and not isinstance(k, bool)
               for k in parts)


class Index(Function):
    """``out = x[key]``: a view for ints and slices, a gather for integer arrays and
    boolean masks. ``grad_x`` is ``grad`` put back at the indexed places (added up where
    an index repeats)."""

    _name = "IndexBackward0"
    saves = ()

    def forward(self, x, key):
        self.shape, self.key, self.basic = x.shape, key, _basic_key(key)
        data = x._data[key]
        if self.basic and isinstance(data, np.generic):  # an int for every dim: NumPy gives a
            # scalar (a copy), torch a 0-d view; an Ellipsis after the key gives the view
            data = x._data[(key if isinstance(key, tuple) else (key,)) + (Ellipsis,)]
        out = Tensor(data)
        return _view(out, x) if self.basic else out

    def backward(self, grad):
        out = np.zeros(self.shape, dtype=grad.dtype)
        if self.basic:
            out[self.key] = grad
        else:
            np.add.at(out, self.key, grad)
        return out, None


class Cast(Function):
    """``out = x.to(dtype)`` between floating and complex dtypes; the gradient is cast
    back (its real part, for a real input)."""

    _name = "ToCopyBackward0"
    saves = ()

    def forward(self, x, data):
        self.dtype = x.dtype
        return Tensor(data)

    def backward(self, grad):
        if self.dtype.kind != "c" and np.iscomplexobj(grad):
            grad = grad.real
        return grad.astype(self.dtype), None


class Stack(Function):
    """``out = stack(xs, dim)`` or ``cat(xs, dim)``; each input gets its slice of ``grad``."""

    _name = "StackBackward0"
    saves = ()

    def forward(self, join, dim, *xs):
        self.dim, self.join = dim, join
        # cat's legacy rule: an empty 1-D tensor among others is skipped (it gets an empty gradient)
        self.skip = [join == "cat" and x.shape == (0,) and any(y.shape != (0,) for y in xs) for x in xs]
        kept = [x for x, skip in zip(xs, self.skip) if not skip]
        self.sizes = [x.shape[dim] if join == "cat" else 1 for x in kept]
        data = [x._data for x in kept]
        return Tensor(np.concatenate(data, axis=dim) if join == "cat" else np.stack(data, axis=dim))

    def name(self) -> str:
        return "CatBackward0" if self.join == "cat" else "StackBackward0"

    def backward(self, grad):
        parts = iter(np.split(grad, np.cumsum(self.sizes)[:-1], axis=self.dim))
        if self.join == "stack":
            parts = iter([np.squeeze(p, axis=self.dim) for p in parts])
        return (None, None, *[np.zeros(0, dtype=grad.dtype) if skip else c_order(next(parts)) for skip in self.skip])


# -- elementwise math -----------------------------------------------------------------------

class Exp(Function):
    """``out = exp(x)``; ``grad_x = conj(out) * grad``."""

    _name = "ExpBackward0"
    saves_output = True  # backward reads forward's output
    saves = ()  # and no input's data: an input changed in place since is no matter, as in torch

    def forward(self, x):
        self.out = np.exp(x._data)
        return Tensor(self.out)

    def backward(self, grad):
        return (conj(self.out) * grad,)


class Log(Function):
    """``out = log(x)``; ``grad_x = grad / conj(x)``."""

    _name = "LogBackward0"

    def forward(self, x):
        self.x = x._data
        with np.errstate(divide="ignore", invalid="ignore"):  # log(0) = -inf, log(-1) = nan, as torch
            return Tensor(np.log(x._data))

    def backward(self, grad):
        with np.errstate(divide="ignore", invalid="ignore"):
            return (grad / conj(self.x),)


class Sqrt(Function):
    """``out = sqrt(x)``; ``grad_x = grad / (2 conj(out))``."""

    _name = "SqrtBackward0"
    saves_output = True  # backward reads forward's output
    saves = ()  # and no input's data: an input changed in place since is no matter, as in torch

    def forward(self, x):
        with np.errstate(invalid="ignore"):
            self.out = np.sqrt(x._data)
        return Tensor(self.out)

    def backward(self, grad):
        with np.errstate(divide="ignore", invalid="ignore"):
            return (grad / (2 * conj(self.out)),)


class Abs(Function):
    """``out = |x|``; ``grad_x = sgn(x) * grad`` with ``sgn(x) = x / |x|`` (0 at 0), as torch."""

    _name = "AbsBackward0"

    def forward(self, x):
        self.x = x._data
        return Tensor(np.abs(x._data))

    def backward(self, grad):
        if np.iscomplexobj(self.x):
            size = np.abs(self.x)
            sgn = np.divide(self.x, size, out=np.zeros_like(self.x), where=size != 0)
            return (sgn * grad,)
        return (np.sign(self.x) * grad,)


class Relu(Function):
    """``out = max(x, 0)``; ``grad_x = grad`` where ``x > 0``, else 0."""

    _name = "ReluBackward0"
    saves_output = True  # backward reads forward's output
    saves = ()  # and no input's data: an input changed in place since is no matter, as in torch

    def forward(self, x):
        self.out = np.maximum(x._data, 0)
        return Tensor(self.out)

    def backward(self, grad):
        return (np.where(self.out > 0, grad, 0).astype(grad.dtype),)


class Sigmoid(Function):
    """``out = 1 / (1 + exp(-x))``; ``grad_x = conj(out (1 - out)) * grad``."""

    _name = "SigmoidBackward0"
    saves_output = True  # backward reads forward's output
    saves = ()  # and no input's data: an input changed in place since is no matter, as in torch

    def forward(self, x):
        data = x._data
        if data.dtype.kind == "c":
            self.out = 1 / (1 + np.exp(-data))
        else:  # the stable form: no overflow of exp for large |x|
            e = np.exp(-np.abs(data))
            self.out = np.where(data >= 0, 1 / (1 + e), e / (1 + e)).astype(data.dtype)
        return Tensor(self.out)

    def backward(self, grad):
        return (conj(self.out * (1 - self.out)) * grad,)


class Tanh(Function):
    """``out = tanh(x)``; ``grad_x = conj(1 - out^2) * grad``."""

    _name = "TanhBackward0"
    saves_output = True  # backward reads forward's output
    saves = ()  # and no input's data: an input changed in place since is no matter, as in torch

    def forward(self, x):
        self.out = np.tanh(x._data)
        return Tensor(self.out)

    def backward(self, grad):
        return (conj(1 - self.out * self.out) * grad,)


class Clamp(Function):
    """``out = min(max(x, lo), hi)`` (lo, hi: tensors of x's dtype that broadcast, or None);
    ``grad_x = grad`` where ``lo <= x <= hi``, else 0; ``grad_lo = grad`` where ``x < lo``,
    ``grad_hi = grad`` where ``x > hi`` (summed to their shapes), as torch's."""

    _name = "ClampBackward1"

    def forward(self, x, lo, hi):
        self.x = x._data
        self.lo, self.hi = (None if b is None else b._data for b in (lo, hi))
        return Tensor(np.clip(x._data, self.lo, self.hi).astype(x.dtype))

    def backward(self, grad):
        zero = np.zeros((), dtype=grad.dtype)
        keep = np.ones(self.x.shape, dtype=bool)
        grads = []
        for bound, outside in ((self.lo, np.less), (self.hi, np.greater)):
            if bound is None:
                grads.append(None)
                continue
            out = outside(self.x, bound)
            keep &= ~out
            grads.append(unbroadcast(np.where(out, grad, zero), bound.shape))
        return (np.where(keep, grad, zero),) + tuple(grads)


class Maximum(Function):
    """``out = maximum(x, y)`` (``minimum`` with ``pick=np.minimum``); the larger gets
    ``grad``, a tie gives each half, and where either is NaN both get ``grad``, as torch."""

    _name = "MaximumBackward0"

    def forward(self, x, y, pick):
        self.x, self.y, self.pick = x._data, y._data, pick
        if pick is np.minimum:
            self._name = "MinimumBackward0"
        a, b = x._data, y._data
        if _dtypes.kind(a.dtype) != "f":
            return Tensor(pick(a, b))
        # torch gives its first operand at a tie (0. and -0.), and a NaN from either side;
        # NumPy's float32/float64 give the second at a tie (its float16, the first)
        wins = np.greater_equal(a, b) if pick is np.maximum else np.less_equal(a, b)
        return Tensor(np.where(wins | np.isnan(a), a, b))

    def backward(self, grad):
        # torch's rule: each side gets grad (half of it at a tie) unless it lost. A NaN on
        # either side loses no comparison, so then both sides get all of grad.
        loses_x, loses_y = (np.less, np.greater) if self.pick is np.maximum else (np.greater, np.less)
        zero = np.zeros((), dtype=grad.dtype)
        share = np.where(self.x == self.y, grad / 2, grad).astype(grad.dtype)
        return (unbroadcast(np.where(loses_x(self.x, self.y), zero, share), self.x.shape),
                unbroadcast(np.where(loses_y(self.x, self.y), zero, share), self.y.shape), None)


class Where(Function):
    """``out = where(cond, x, y)``; x gets ``grad`` where cond holds, y elsewhere."""

    _name = "WhereBackward0"
    saves = (1, 2)

    def forward(self, cond, x, y):
        self.cond, self.shapes = cond, (x.shape, y.shape)
        return Tensor(np.where(cond, x._data, y._data))

    def backward(self, grad):
        zero = np.zeros((), dtype=grad.dtype)
        return (None, unbroadcast(np.where(self.cond, grad, zero), self.shapes[0]),
                unbroadcast(np.where(self.cond, zero, grad), self.shapes[1]))


# -- reductions -----------------------------------------------------------------------------

class MaxAll(Function):
    """``out = x.max()`` (or ``min``) over every element; ties share ``grad`` evenly, as torch."""

    _name = "MaxBackward1"
    saves_output = True  # backward reads forward's output

    def forward(self, x, pick):
        self.x = x._data
        self.out = pick(x._data)
        if pick is np.min:
            self._name = "MinBackward1"
        return Tensor(np.asarray(self.out))

    def backward(self, grad):
        hit = self.x == self.out
        return np.where(hit, grad / hit.sum(), 0).astype(grad.dtype), None


class MaxDim(Function):
    """``values = x.max(dim)`` (or ``min``): ``grad`` goes to the element each index names
    (the first of equal ones); the indices are returned by ``indices``."""

    _name = "MaxBackward0"

    def forward(self, x, dim, keepdim, arg):
        self.shape, self.dim, self.keepdim = x.shape, dim, keepdim
        self.indices = np.expand_dims(arg(x._data, axis=dim), dim)
        if arg is np.argmin:
            self._name = "MinBackward0"
        values = np.take_along_axis(x._data, self.indices, axis=dim)
        return Tensor(values if keepdim else np.squeeze(values, axis=dim))

    def backward(self, grad):
        if not self.keepdim:
            grad = np.expand_dims(grad, self.dim)
        out = np.zeros(self.shape, dtype=grad.dtype)
        np.put_along_axis(out, self.indices, grad, axis=self.dim)
        return out, None, None, None


class Norm(Function):
    """``out = ||x||_p`` over all elements or ``dim``; the gradient is torch's
    ``norm_backward``, with ``sgn(x) = x / |x|`` (0 at 0 and at a real NaN):
    ``sgn(x) * grad`` for p = 1; ``x / out * grad`` for p = 2;
    ``sgn(x) |x|^(p-1) / out^(p-1) * grad`` for 1 < p < 2 and ``x |x|^(p-2) / out^(p-1) * grad``
    above, 0 where out is 0; ``sgn(x) |x|^(p-1) out^(1-p) * grad`` for p < 1 (p < 0 too), 0
    where x is 0. ``p = inf`` (``-inf``): the largest (smallest) ``|x|``, its gradient
    ``sgn(x) * grad`` split evenly among the elements that reach it (or are NaN). ``p = 0``:
    the count of nonzeros, no gradient at all (None)."""

    _name = "NormBackward1"
    saves_output = True  # backward reads forward's output

    def forward(self, x, p, dim, keepdim):
        # a half tensor's norm is taken in float32 and rounded once, as torch's (its squares
        # would overflow or vanish in float16: [300, 400] gave inf)
        self.small = _precision.small_dtype(x._data)
        self.x, self.p, self.dim, self.keepdim = _precision.wide(x._data), p, dim, keepdim
        size = np.abs(self.x)
        if p == np.inf or p == -np.inf:  # the largest (smallest) |x|
            out = (np.max if p > 0 else np.min)(size, axis=dim, keepdims=True)
        elif p == 0:  # how many are not zero
            out = np.sum(size != 0, axis=dim, keepdims=True)
        elif p == 2:
            out = np.sqrt(np.sum(size * size, axis=dim, keepdims=True))
        else:
            with np.errstate(divide="ignore", over="ignore"):  # (p < 0: 0 ** p is inf, the norm then 0, as torch's)
                out = np.sum(size ** p, axis=dim, keepdims=True) ** (1.0 / p)
        self.out = out.astype(size.dtype)
        return Tensor(_precision.finish(np.asarray(self.out if keepdim else (
            self.out.reshape(()) if dim is None else np.squeeze(self.out, axis=dim))), self.small))

    def backward(self, grad):
        # torch's norm_backward, branch by branch (the same formulas, so the same values at
        # 0, inf and NaN): sgn is torch's (0 for a real NaN), |x|^(p-1) rather than
        # x |x|^(p-2) below p = 2 (no inf * 0 at a tiny or infinite element), and 0 wherever
        # the norm is 0
        grad = grad.reshape(self.out.shape) if self.dim is None else (
            grad if self.keepdim else np.expand_dims(grad, self.dim))
        x, p, out, grad = self.x, self.p, self.out, _precision.wide(grad)
        if p == 0:  # a count: no gradient at all (None, not zeros), as torch's
            return None, None, None, None
        size = np.abs(x)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # (torch's sgn: x / |x| for complex, NaN where a part is infinite; 0 for a real NaN)
            sgn = np.where(size == 0, 0, x / size) if x.dtype.kind == "c" else np.where(np.isnan(x), 0, np.sign(x))
            if p == 1:
                g = sgn * grad
            elif p == 2:
                g = grad * np.where(out == 0, 0, x / out)
            elif p in (np.inf, -np.inf):  # split evenly among the elements at the extreme (or NaN)
                at = (size == out) | np.isnan(size)
                g = sgn * (grad / np.sum(at, axis=self.dim, keepdims=True) * at)
            elif p < 1:
                g = sgn * np.where(x == 0, 0, size ** (p - 1)) * grad * out ** (1 - p)
            elif p < 2:
                g = sgn * size ** (p - 1) * np.where(out == 0, 0, grad / out ** (p - 1))
            else:
                g = x * size ** (p - 2) * np.where(out == 0, 0, grad / out ** (p - 1))
        return _precision.finish(np.asarray(g).astype(x.dtype), self.small), None, None, None


def _row_max(data: np.ndarray, dim: int) -> np.ndarray:
    """The largest value along ``dim`` (kept), the shift that makes softmax stable; of an
    empty tensor, an empty shift (NumPy's max has no value for an empty axis)."""
    if data.size == 0:  # (never 0-d: a scalar has one element)
        return np.zeros_like(data, shape=data.shape[:dim] + (1,) + data.shape[dim + 1:])
    return np.max(data, axis=dim, keepdims=True)


class Softmax(Function):
    """``out = exp(x) / sum(exp(x), dim)``; ``grad_x = out * (grad - sum(grad * out, dim))``."""

    _name = "SoftmaxBackward0"
    saves_output = True  # backward reads forward's output
    saves = ()  # and no input's data: an input changed in place since is no matter, as in torch

    def forward(self, x, dim):
        self.dim = dim
        shifted = x._data - _row_max(x._data, dim)
        e = np.exp(shifted)
        self.out = e / e.sum(axis=dim, keepdims=True)
        return Tensor(self.out)

    def backward(self, grad):
        return self.out * (grad - np.sum(grad * self.out, axis=self.dim, keepdims=True)), None


class LogSoftmax(Function):
    """``out = x - log(sum(exp(x), dim))``; ``grad_x = grad - exp(out) * sum(grad, dim)``."""

    _name = "LogSoftmaxBackward0"
    saves_output = True  # backward reads forward's output
    saves = ()  # and no input's data: an input changed in place since is no matter, as in torch

    def forward(self, x, dim):
        self.dim = dim
        shifted = x._data - _row_max(x._data, dim)
        with np.errstate(divide="ignore"):  # (an empty axis sums to 0: log 0, into no element)
            self.out = shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))
        return Tensor(self.out)

    def backward(self, grad):
        return grad - np.exp(self.out) * np.sum(grad, axis=self.dim, keepdims=True), None


# -- losses ---------------------------------------------------------------------------------

class BinaryCrossEntropyWithLogits(Function):
    """``loss = max(x, 0) - x y + log(1 + exp(-|x|))`` elementwise (the stable form of
    ``-[y log s(x) + (1 - y) log(1 - s(x))]``, s the sigmoid), summed or averaged;
    ``grad_x = (s(x) - y) * grad`` (divided by the count for the mean), ``grad_y = -x * grad``."""

    _name = "BinaryCrossEntropyWithLogitsBackward0"

    def forward(self, x, y, reduction):
        self.x, self.y, self.reduction = x._data, y._data, reduction
        loss = np.maximum(self.x, 0) - self.x * self.y + np.log1p(np.exp(-np.abs(self.x)))
        out = loss if reduction == "none" else (loss.sum() if reduction == "sum" else loss.mean())
        return Tensor(np.asarray(out, dtype=self.x.dtype))

    def backward(self, grad):
        e = np.exp(-np.abs(self.x))
        s = np.where(self.x >= 0, 1 / (1 + e), e / (1 + e))
        scale = grad / self.x.size if self.reduction == "mean" else grad
        return ((s - self.y) * scale).astype(self.x.dtype), (-self.x * scale).astype(self.x.dtype), None


class Embedding(Function):
    """``out = weight[ids]``: row ``ids[...]`` of ``weight`` for each index, a gather.
    ``grad_weight`` is each index's row of ``grad`` added into its row of ``weight`` (a
    scatter-add: the product ``one_hot(ids)^T @ grad``), in the order of ``ids`` flattened;
    the row ``padding`` gets none, and with ``by_freq`` each row's sum is divided by how
    often its index occurs in ``ids``, as torch's ``scale_grad_by_freq``. With ``sparse``
    the rows are not added up: the gradient is a :class:`RowGrad` (a sparse COO
    ``.grad``, one entry per index, as torch's)."""

    _name = "EmbeddingBackward0"
    saves = ()  # (backward reads the indices only, which forward copied)

    def forward(self, weight, ids, padding, by_freq, sparse=False):
        self.ids, self.shape, self.padding, self.by_freq, self.sparse = ids, weight.shape, padding, by_freq, sparse
        return Tensor(np.take(weight._data, ids, axis=0))

    def backward(self, grad):
        flat = self.ids.reshape(-1)
        rows = grad.reshape(flat.shape[0], self.shape[1])
        if self.by_freq:
            rows = rows / np.bincount(flat, minlength=self.shape[0])[flat][:, None].astype(rows.real.dtype)
        if self.sparse:  # the rows as they are, one per index (the padding's left out), as torch's
            keep = slice(None) if self.padding is None else flat != self.padding
            return RowGrad(flat[keep], np.array(rows[keep], dtype=grad.dtype), self.shape), None, None, None, None
        out = np.zeros(self.shape, dtype=grad.dtype)
        np.add.at(out, flat, rows)
        if self.padding is not None:
            out[self.padding] = 0
        return out, None, None, None, None

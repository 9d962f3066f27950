"""Differentiable dense ops, forward and backward side by side.

Conventions (as in torch): for an op ``out = f(x)`` the gradient passed back is
``conj(df/dx) * grad`` for complex values (so real-valued losses get
``dL/dRe + i dL/dIm``), and gradients of broadcast inputs are summed back to their shape.
"""

from __future__ import annotations

import numpy as np

from sparse_ref._tensor import Tensor
from sparse_ref.autograd.engine import Function


def conj(x: np.ndarray) -> np.ndarray:
    """The complex conjugate; real arrays are returned as they are (no copy)."""
    return np.conj(x) if np.iscomplexobj(x) else x


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` over the dimensions that broadcasting added or stretched."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, n in enumerate(shape):
        if n == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


class Sum(Function):
    """``out = x.sum(dim)``; the gradient spreads ``grad`` back over the summed dims."""

    _name = "SumBackward0"
    saves = ()  # backward reads no input data

    def forward(self, x, dim, keepdim):
        self.shape, self.dim, self.keepdim = x.shape, dim, keepdim
        return Tensor(np.asarray(x._data.sum(axis=dim, keepdims=keepdim)))

    def backward(self, grad):
        if self.dim is not None and not self.keepdim:
            grad = np.expand_dims(grad, self.dim)
        return np.ascontiguousarray(np.broadcast_to(grad, self.shape)), None, None


class Mean(Function):
    """``out = x.mean(dim)``; the gradient is ``grad / count`` on every averaged element."""

    _name = "MeanBackward0"
    saves = ()  # backward reads no input data

    def forward(self, x, dim, keepdim):
        self.shape, self.dim, self.keepdim = x.shape, dim, keepdim
        data = x._data
        self.count = data.size if dim is None else int(np.prod([data.shape[d] for d in np.atleast_1d(dim)]))
        return Tensor(np.asarray(data.mean(axis=dim, keepdims=keepdim)))

    def backward(self, grad):
        if self.dim is not None and not self.keepdim:
            grad = np.expand_dims(grad, self.dim)
        return np.ascontiguousarray(np.broadcast_to(grad / self.count, self.shape)), None, None


class Add(Function):
    """``out = x + y`` (broadcasting); each input gets ``grad`` summed to its shape."""

    _name = "AddBackward0"
    saves = ()  # backward reads no input data

    def forward(self, x, y):
        self.shapes = (x.shape, y.shape)
        return Tensor(x._data + y._data)

    def backward(self, grad):
        return unbroadcast(grad, self.shapes[0]), unbroadcast(grad, self.shapes[1])


class Sub(Function):
    """``out = x - y``; x gets ``grad``, y gets ``-grad``."""

    _name = "SubBackward0"
    saves = ()  # backward reads no input data

    def forward(self, x, y):
        self.shapes = (x.shape, y.shape)
        return Tensor(x._data - y._data)

    def backward(self, grad):
        return unbroadcast(grad, self.shapes[0]), unbroadcast(-grad, self.shapes[1])


class Mul(Function):
    """``out = x * y`` elementwise; ``grad_x = conj(y) * grad``, ``grad_y = conj(x) * grad``."""

    _name = "MulBackward0"

    def forward(self, x, y):
        self.x, self.y = x._data, y._data
        return Tensor(x._data * y._data)

    def backward(self, grad):
        return (unbroadcast(conj(self.y) * grad, self.x.shape),
                unbroadcast(conj(self.x) * grad, self.y.shape))


class Div(Function):
    """``out = x / y`` elementwise; ``grad_x = grad / conj(y)``,
    ``grad_y = -grad * conj(x / y**2)``."""

    _name = "DivBackward0"

    def forward(self, x, y):
        self.x, self.y = x._data, y._data
        return Tensor(x._data / y._data)

    def backward(self, grad):
        return (unbroadcast(grad / conj(self.y), self.x.shape),
                unbroadcast(-grad * conj(self.x / (self.y * self.y)), self.y.shape))


class Neg(Function):
    """``out = -x``; ``grad_x = -grad``."""

    _name = "NegBackward0"
    saves = ()  # backward reads no input data

    def forward(self, x):
        return Tensor(-x._data)

    def backward(self, grad):
        return (-grad,)


class Pow(Function):
    """``out = x ** p`` for a number p; ``grad_x = conj(p * x ** (p - 1)) * grad``."""

    _name = "PowBackward0"

    def forward(self, x, p):
        self.x, self.p = x._data, p
        return Tensor(x._data ** x.dtype.type(p))

    def backward(self, grad):
        if self.p == 0:  # x ** 0 is constant: no gradient (not 0 * x ** -1, NaN at 0)
            return np.zeros_like(grad), None
        p = self.x.dtype.type(self.p)
        return conj(p * self.x ** (p - 1)) * grad, None


class MatMul(Function):
    """Dense ``out = A @ B``; ``grad_A = grad @ B^H``, ``grad_B = A^H @ grad``."""

    _name = "MmBackward0"

    def forward(self, a, b):
        self.a, self.b = a._data, b._data
        return Tensor(np.matmul(a._data, b._data))

    def backward(self, grad):
        return grad @ conj(self.b).T, conj(self.a).T @ grad


class Transpose(Function):
    """``out = x.t()``; ``grad_x = grad.t()``."""

    _name = "TBackward0"
    saves = ()  # backward reads no input data

    def forward(self, x):
        out = Tensor(x._data.T)
        out._version = x._version  # a view: an in-place change of either is a change of both
        return out

    def backward(self, grad):
        return (np.ascontiguousarray(grad.T),)

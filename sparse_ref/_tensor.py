"""The tensor classes (layer 2): a dense ``Tensor`` over a NumPy array, a ``SparseTensor``
in COO form (indices, values, size, coalesced flag) and a ``SparseCsrTensor``. Names and
behaviour follow torch.

This module holds the classes only: what a tensor stores, its invariants, the arrays the
kernels take (made once, through the array-level ops of ``_formats``), and its methods.
Printing is in ``_tensor_str``; the factories (``sr.tensor``, ``sr.sparse_coo_tensor``,
...) are in ``_factories``. It never loops over entries.

The one edge that runs up
-------------------------
A method such as ``a.sum()``, ``a @ b`` or ``s.coalesce()`` runs an op of a higher layer
(an autograd Function, ``sr.sparse.mm``), just as torch's ``Tensor.sum`` runs
``torch.sum``. This module cannot import those layers (they import it), so the package
hands the module of public functions down to it once, when ``sparse_ref`` is imported::

    _tensor.bind(_functions)          # in sparse_ref/__init__.py

and every such method is one line, ``return _F.<name>(self, ...)``. No other module
imports or reaches upward; ``tests/test_layers.py`` holds the package to that.
"""

from __future__ import annotations

import copy
import itertools
import math
import threading
import warnings
import weakref

import numpy as np

from sparse_ref import _backend, _dtypes, _formats, _precision, _tensor_str
from sparse_ref._arrays import converted, freeze, own_values, read_only_window
from sparse_ref._errors import ArgumentError, DTypeError, missing
from sparse_ref._grad_mode import is_grad_enabled, no_grad

_CONTEXT = _backend._context  # use_backend's choice (None: the process default, built in)


class _Unbound:
    """What ``_F`` is until ``bind`` runs: any use says what is missing."""

    def __getattr__(self, name):
        raise RuntimeError(f"Tensor.{name}: sparse_ref._tensor is used before sparse_ref was imported "
                           "(import sparse_ref binds the tensor methods)")


_F = _Unbound()  # the public functions the methods call (sparse_ref/_functions.py)
# SparseTensor._update: a number no pattern had before (next() is one step, so two threads
# changing one tensor at once never give two patterns the same number, as "old + 1" could)
_NEW_PATTERN = itertools.count(1)
_ROWS_LOCK = threading.Lock()  # SparseTensor._write_rows: a lazy result's indices are made once
# A tensor's autograd attributes (``.grad``, ``requires_grad``, ``retain_grad``) are set under
# this lock, and a sparse in-place op (``SparseTensor._update``) copies the tensor's state and
# swaps in the new one under it too: a ``.grad`` set on another thread lands before the copy
# (and is kept) or after the swap (in the new state), never in the old state in between,
# where it was lost.
_ATTR_LOCK = threading.Lock()


def bind(functions) -> None:
    """Hand the tensor methods the module of public functions they call (once, from
    ``sparse_ref/__init__.py``)."""
    global _F
    _F = functions


def _number_meets_half(a: "Tensor", b: "Tensor") -> bool:
    """Whether one of two dense tensors is a number taken as float32 for an op with the
    other, a half tensor (``Tensor._operand``)."""
    return (a._number and _dtypes.is_half(b.dtype)) or (b._number and _dtypes.is_half(a.dtype))


def _check_inplace_operand(other, op: str) -> None:
    """torch's check on the operand of an in-place op: one that requires grad would put the
    result in a graph, which in-place ops here never record."""
    if isinstance(other, _Differentiable) and other.requires_grad and is_grad_enabled():
        raise RuntimeError(f"{op}: an operand that requires grad would make this tensor part "
                           "of a graph; in-place ops do not record one (use sr.no_grad())")


class _Differentiable:
    """What both tensor types carry for autograd: ``requires_grad``, ``grad``, ``grad_fn``."""

    def _start_autograd(self, requires_grad: bool) -> None:
        self._requires_grad = False
        self.grad = None
        self.grad_fn = None
        # The version counter: every in-place write adds 1 (shared with detach()es of this
        # tensor, as in torch); backward refuses data saved at another version.
        self._version = [0]
        if requires_grad:
            self.requires_grad_(True)

    def requires_grad_(self, requires_grad: bool = True):
        """Mark the tensor as a leaf whose gradient ``backward`` should compute."""
        if self.grad_fn is not None and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables; "
                               "use .detach() to get a tensor cut from the graph")
        if requires_grad and _dtypes.kind(self.dtype) not in "fc":
            raise RuntimeError("only Tensors of floating point and complex dtype can require gradients")
        with _ATTR_LOCK:
            self._requires_grad = bool(requires_grad)
        return self

    @property
    def requires_grad(self) -> bool:
        """Whether backward computes a gradient for this tensor (a leaf) or through it."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value) -> None:
        # ``t.requires_grad = v`` with torch's checks, as requires_grad_(v): an op's result
        # cannot be cut from its graph this way, nor an integer tensor made to need a gradient
        self.requires_grad_(value)

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    def _clear_grad(self, set_to_none: bool) -> None:
        """``zero_grad`` for this tensor (Module's and Optimizer's): drop ``.grad``, or
        zero it in place, as torch, so that whoever holds the ``.grad`` sees zeros (a new
        array of zeros when it is read-only)."""
        if set_to_none:
            self.grad = None
        elif isinstance(self.grad, SparseTensor):
            self.grad.zero_()  # no stored entries left, as torch's sparse zero_()
        elif self.grad is not None:
            if self.grad._data.flags.writeable:
                self.grad._data[...] = 0
                self.grad._version[0] += 1
            else:
                self.grad = Tensor(np.zeros_like(self.grad._data))

    # -- in-place ops: torch's checks, shared by both tensor types -----------------------
    def _check_inplace(self, op: str) -> None:
        if self.requires_grad and is_grad_enabled():
            if self.grad_fn is None:
                raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                                   f"operation ({op}); do the update inside `with sr.no_grad():`")
            raise RuntimeError(f"{op}: in-place ops on a tensor that is part of a graph are not "
                               "supported by sparse_ref; use the out-of-place op")

    # `x += y` etc.: in place, as torch does, except where torch would record the in-place
    # op in the graph (x is a result of the graph, or y requires grad): sparse_ref records
    # no in-place ops, so there x is rebound to the out-of-place result -- the same values
    # and gradients, though other references to the old x do not see the change. A leaf
    # that requires grad still raises torch's error outside no_grad.
    def _records_graph(self, other, op: str) -> bool:
        if not is_grad_enabled() or (self.requires_grad and self.grad_fn is None):
            return False
        if not (self.grad_fn is not None or (isinstance(other, _Differentiable) and other.requires_grad)):
            return False
        data = self.__dict__.get("_data")
        if data is not None and data.base is not None:  # a view, or a caller's array (from_numpy)
            raise RuntimeError(
                f"x {op}= y: x shares its memory with another tensor or array (a view of it, or "
                "sr.from_numpy), and this op would have to be recorded in the graph; torch writes "
                "through to the other and records it, sparse_ref records no in-place op, and "
                "changing x alone would leave the other behind in silence. Write x = x "
                f"{op} y (a new tensor), or do the update under sr.no_grad()")
        return True

    def __iadd__(self, other):
        return self + other if self._records_graph(other, "+") else self.add_(other)

    def __isub__(self, other):
        return self - other if self._records_graph(other, "-") else self.sub_(other)

    def __imul__(self, other):
        return self * other if self._records_graph(other, "*") else self.mul_(other)

    def __itruediv__(self, other):
        return self / other if self._records_graph(other, "/") else self.div_(other)

    def __getattr__(self, name):
        # only reached when the name is nowhere: a torch method sparse_ref lacks says so
        raise missing(f"'{type(self).__name__}' object", name)

    # -- pickle and deepcopy, as torch: a pickle keeps the data and requires_grad, never
    # the graph that made the tensor (which would travel whole, saved arrays and all) nor
    # its .grad; it comes back a leaf with a version counter of its own. deepcopy copies a
    # leaf with its .grad and refuses a tensor made by an op.
    def _state(self) -> dict:
        return self.__dict__

    def __getstate__(self):
        # (a sparse tensor's derived forms, "_cache", are made again on load: never stored)
        state = {k: v for k, v in self._state().items() if k not in ("_retains_grad", "_guarded", "_cache")}
        state.update(_grad=None, grad_fn=None, _version=[0])
        return state

    def __setstate__(self, state):
        # a dense tensor's data as construction would take it: an ndarray of a dtype
        # sparse_ref has, in this machine's byte order (a review: an object array or a
        # '>f4' one from a file loaded, and reached ops and kernels); SparseTensor has its own
        data = state.get("_data")
        if not isinstance(data, np.ndarray):
            raise TypeError(f"unpickle: a dense tensor's data must be an array, got {type(data).__name__}")
        _dtypes.as_dtype(data.dtype, "unpickle", dense=True)
        self.__dict__.update(state)

    def __deepcopy__(self, memo):
        if self.grad_fn is not None:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) support the "
                               "deepcopy protocol at the moment; deepcopy x.detach() (and set requires_grad)")
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        state = {k: v for k, v in self._state().items() if k not in ("_guarded", "_cache")}  # (a copy of its own)
        new.__setstate__(copy.deepcopy(state, memo))
        return new

    _retains_grad = False  # set by retain_grad() on a tensor made by an op

    @property
    def grad(self):
        """The gradient ``backward`` accumulated: for a leaf that requires grad, and for a
        tensor made by an op after ``retain_grad()``; on any other non-leaf it stays None
        and reading it warns, as torch does."""
        if self.grad_fn is not None and not self._retains_grad:
            warnings.warn(
                "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its .grad "
                "attribute won't be populated during autograd.backward(). If you indeed want the .grad "
                "field to be populated for a non-leaf Tensor, use .retain_grad() on the non-leaf Tensor.",
                UserWarning, stacklevel=2)
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is not None:
            kind = SparseTensor if isinstance(self, SparseTensor) else Tensor
            if kind is Tensor and isinstance(value, SparseTensor) and not value.is_sparse_csr:
                kind = SparseTensor  # a dense tensor's sparse gradient (an embedding's, sparse=True), as torch's
            if not isinstance(value, kind):
                raise TypeError(f"assigned grad expected to be a {kind.__name__}, got {type(value).__name__}")
            if value.shape != self.shape:
                raise RuntimeError(f"attempting to assign a gradient of size '{list(value.shape)}' to a tensor "
                                   f"of size '{list(self.shape)}'. Please ensure that the gradient and the tensor "
                                   "are the same size")
            if value.dtype != self.dtype:
                raise RuntimeError(f"attempting to assign a gradient with dtype '{value.dtype.name}' to a tensor "
                                   f"with dtype '{self.dtype.name}'. Please ensure that the gradient and the "
                                   "tensor have the same dtype")
        with _ATTR_LOCK:
            self._grad = value

    def retain_grad(self) -> None:
        """Let ``backward`` fill ``.grad`` of this non-leaf tensor too (a no-op on a leaf)."""
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        with _ATTR_LOCK:
            if self.grad_fn is not None and not self._retains_grad:
                self._retains_grad = True
                self.grad_fn.retained = weakref.ref(self)

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad


def _comparable(other) -> bool:
    """Whether ``==`` with a tensor is an elementwise comparison (a tensor, a number, an
    array) rather than Python's identity (None, a string, any other object)."""
    return isinstance(other, (_Differentiable, int, float, complex, np.number, np.ndarray, np.bool_))


class Tensor(_Differentiable):
    """A dense tensor: a NumPy array, plus ``requires_grad``, ``grad`` and ``grad_fn``.

    Build one with :func:`tensor`, :func:`randn`, :func:`zeros` or :func:`ones`; NumPy
    sees its data through ``np.asarray(t)`` or ``t.numpy()`` (shared memory, as in torch).

    Examples
    --------
    >>> import numpy as np, sparse_ref as sr
    >>> t = sr.tensor([[1., 2.]], requires_grad=True)
    >>> (t * 3.0).sum()
    tensor(9., grad_fn=<SumBackward0>)
    >>> np.asarray(t.detach()).shape
    (1, 2)
    """

    __array_priority__ = 1000
    is_sparse = False
    is_sparse_csr = False
    layout = _dtypes.strided

    def __init__(self, data: np.ndarray, requires_grad: bool = False):
        if isinstance(data, np.generic):  # a NumPy scalar (x.sum() of NumPy, a gather of one
            data = np.array(data)         # element): always an array, as every op expects
        self._data = data
        self._start_autograd(requires_grad)

    # -- what it is -----------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def dim(self) -> int:
        return self._data.ndim

    def size(self, dim: int | None = None):
        return self._data.shape if dim is None else self._data.shape[dim]

    def numel(self) -> int:
        return int(self._data.size)

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (shared memory, like ``torch.Tensor.numpy``).

        It is read-only when the data belongs to a graph (the tensor, or the tensor it was
        detached from, requires grad): a write through NumPy would change what backward
        reads without a trace. Change such data with the in-place methods (``add_``,
        ``copy_``, ...), which backward checks, or work on a ``clone()``.
        """
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        return self._exposed()

    def _exposed(self) -> np.ndarray:
        """``_data`` for NumPy: a view of it, writable when the tensor may be written.

        Never ``_data`` itself: assigning ``.shape`` or ``.dtype`` to the array handed out
        would change the tensor (and arrays the autograd saved for a kernel). The view of
        a tensor in a graph is read-only against slips; since ``_data`` itself stays
        writable (for in-place ops), NumPy lets a caller turn writing back on, and a write
        then changes values, as through torch's ``detach().numpy()``, never a shape."""
        view = self._data.view()
        if not self._data.flags.writeable or self.requires_grad or getattr(self, "_guarded", False):
            view.flags.writeable = False
        return view

    def __array__(self, dtype=None, copy=None):
        if copy is False and dtype is not None and np.dtype(dtype) != self._data.dtype:
            raise ValueError("np.asarray(tensor, copy=False) cannot change the dtype without a copy")
        data = self._exposed()
        out = data if dtype is None else data.astype(dtype, copy=False)
        return out.copy() if copy else out

    # DLPack (torch.from_dlpack, np.from_dlpack, ...): the memory shared, as numpy() shares
    # it. Not where numpy() hands out a read-only view (data a graph reads, or read-only
    # data): torch's from_dlpack ignores DLPack's read-only flag and would write through it.
    def __dlpack__(self, **kwargs):
        if self.requires_grad:
            raise BufferError("Can't export tensors that require gradient, use tensor.detach()")
        if self.dtype == _dtypes.bfloat16:  # NumPy's DLPack has no bfloat16 (ml_dtypes' type is not its own)
            raise BufferError("can't export a bfloat16 tensor through NumPy's DLPack, which has no bfloat16: "
                              "use sr.to_torch(t) (it keeps the dtype), or export t.float()")
        view = self._exposed()
        if not view.flags.writeable:
            raise BufferError("can't export this tensor through DLPack: its data is read-only here "
                              "(as numpy() gives it: it is detached from a graph, or views read-only "
                              "memory), and a consumer may write to it; export a .clone()")
        if any(step < 0 for step in view.strides):  # torch 2.13 aborts the process on one
            raise BufferError("can't export a tensor with a negative stride (a reversed view) "
                              "through DLPack: export a .clone()")
        return view.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._data.__dlpack_device__()

    def item(self):
        if self._data.size != 1:
            raise ArgumentError(f"a Tensor with {self._data.size} elements cannot be converted to a Python scalar")
        return self._data.reshape(()).item()

    def tolist(self):
        return self._data.tolist()

    # float(t), int(t), complex(t) and operator.index(t), as torch's: one element only, and
    # a complex value with a nonzero imaginary part is refused by float() and int()
    def _python_scalar(self):
        if self._data.size != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return self._data.reshape(()).item()

    def __float__(self) -> float:
        value = self._python_scalar()
        if self.requires_grad:  # torch's warning, for float() alone (item() and int() say nothing)
            warnings.warn("Converting a tensor with requires_grad=True to a scalar may lead to unexpected "
                          "behavior.\nConsider using tensor.detach() first.", UserWarning, stacklevel=2)
        if isinstance(value, complex):
            if value.imag != 0:
                raise RuntimeError("value cannot be converted to type double without overflow")
            value = value.real
        return float(value)

    def __int__(self) -> int:
        value = self._python_scalar()
        if isinstance(value, complex):  # torch checks a complex value against int64 itself
            if value.imag != 0 or not -2.0**63 <= value.real < 2.0**63:
                raise RuntimeError("value cannot be converted to type int64_t without overflow")
            value = value.real
        return int(value)

    def __complex__(self) -> complex:
        return complex(self._python_scalar())

    def __format__(self, spec: str) -> str:
        """``f"{loss:.4f}"``: a 0-d tensor formats as its value, as torch's does (so does
        ``f"{loss}"``); any other tensor takes an empty spec only (its ``str``)."""
        if self._data.ndim == 0:
            return format(self._data.item(), spec)
        return object.__format__(self, spec)

    def __index__(self) -> int:
        if self._data.size != 1 or self._data.dtype.kind not in "iub":
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self._data.reshape(()).item())

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        """Its rows, as ``self[0], self[1], ...``; a 0-d tensor is refused, as torch's."""
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def detach(self) -> "Tensor":
        """The same data, cut from the graph (shares memory and the version counter, like
        torch's; NumPy sees it read-only when this tensor requires grad)."""
        out = Tensor(self._data)
        out._version = self._version
        out._guarded = self.requires_grad or getattr(self, "_guarded", False)
        return out

    @property
    def data(self) -> "Tensor":
        """The data as a tensor outside the graph that shares memory but not the version
        counter (torch's ``.data``: a change through it is not seen by backward; prefer
        ``detach()`` or an update under ``sr.no_grad()``)."""
        return Tensor(self._data)

    @data.setter
    def data(self, value) -> None:
        if not isinstance(value, Tensor):
            raise TypeError(f"data: expected a dense Tensor, got {type(value).__name__}")
        if self.requires_grad and _dtypes.kind(value.dtype) not in "fc":
            raise RuntimeError("data set to a tensor that requires gradients must be floating point or complex "
                               f"dtype, got {value.dtype.name}")
        if self._grad is not None and (value.shape != self.shape or value.dtype != self.dtype):  # (not .grad: it warns on a non-leaf)
            self._grad = None  # a gradient of the old shape or dtype no longer fits (torch keeps it and fails later)
        self._data = value._data

    # -- in-place ops (torch's rules; each bumps the version counter) -----------------
    def _inplace(self, op: str) -> np.ndarray:
        """The writable data of ``self`` for an in-place op, after torch's checks."""
        self._check_inplace(op)
        if not self._data.flags.writeable:
            raise RuntimeError(f"{op}: this tensor's data is read-only (it views a sparse tensor's "
                               "indices or values, or a read-only array); clone() it first")
        return self._data

    def _inplace_operand(self, other, op: str, opmath: bool = False) -> np.ndarray:
        _check_inplace_operand(other, op)
        value = self._operand(other, op, opmath)._data
        try:
            np.broadcast_to(value, self._data.shape)
        except ValueError:
            raise RuntimeError(f"{op}: output with shape {list(self.shape)} doesn't match the "
                               f"broadcast shape of an operand of shape {list(np.shape(value))}") from None
        return value

    def _bump(self):
        self._version[0] += 1
        return self

    def add_(self, other, *, alpha=1) -> "Tensor":
        """``self += alpha * other`` in place (torch's rules: a leaf that requires grad only
        inside ``sr.no_grad()``); bumps the version counter.

        Examples
        --------
        >>> import sparse_ref as sr
        >>> w = sr.tensor([1., 2.], requires_grad=True)
        >>> with sr.no_grad():
        ...     _ = w.add_(sr.tensor([1., 1.]), alpha=-0.5)
        >>> w
        tensor([0.5000, 1.5000], requires_grad=True)

        ``other`` may be sparse (``add_`` and ``sub_``, and ``+=``, ``-=``), of this tensor's
        shape: only the elements it stores change.

        >>> d = sr.zeros(2, 2)
        >>> d += sr.sparse_coo_tensor([[0, 1, 1], [1, 0, 0]], [1., 2., 3.], (2, 2))
        >>> d
        tensor([[0., 1.],
                [5., 0.]])
        """
        return self._update("add_", np.add, other, alpha)

    def sub_(self, other, *, alpha=1) -> "Tensor":
        """``self -= alpha * other`` in place (see ``add_``; ``other`` may be sparse)."""
        return self._update("sub_", np.subtract, other, alpha)

    def mul_(self, other) -> "Tensor":
        """``self *= other`` in place (see ``add_``)."""
        return self._update("mul_", np.multiply, other)

    def div_(self, other) -> "Tensor":
        """``self /= other`` in place (see ``add_``); floating and complex dtypes only."""
        if _dtypes.kind(self.dtype) not in "fc":  # torch: "result type Float can't be cast to ... Long"
            raise DTypeError(f"div_: needs a floating or complex dtype, got {self.dtype.name}")
        return self._update("div_", np.divide, other)

    def _update(self, op: str, ufunc, other, alpha=1) -> "Tensor":
        """``self = ufunc(self, alpha * other)`` in place, after torch's checks."""
        if isinstance(other, SparseTensor) and op in ("add_", "sub_"):
            return self._update_at_entries(op, ufunc, other, alpha)
        data = self._inplace(op)
        value = self._inplace_operand(other, op, opmath=True)
        scale = self._alpha(alpha, op)
        if scale is not None:
            value = value * scale
        with np.errstate(all="ignore"):  # IEEE's inf and NaN, unwarned, as torch's
            if value.dtype != data.dtype:  # a number met a half tensor as float32: round once
                data[...] = _precision.rounded(ufunc(data, value), data)
            else:
                ufunc(data, value, out=data, casting="no")
        return self._bump()

    def _alpha(self, alpha, op: str):
        """``alpha`` of ``add_``/``sub_`` as a scalar of this dtype, or None for an exact 1
        (no multiply); a number only, as torch's "alpha must be Number" (or a 0-d tensor,
        which stands for its value: ``_F.alpha_number``)."""
        alpha = _F.alpha_number(alpha, op)
        value = self._operand(alpha, op, opmath=True)._data
        return None if alpha == 1 else value

    def _update_at_entries(self, op: str, ufunc, other: "SparseTensor", alpha) -> "Tensor":
        """``self (+|-)= alpha * other`` for a sparse ``other`` of self's shape, as torch's
        dense ``add_(sparse)``: only the elements other stores change, each once, by its
        coalesced value (duplicates summed first, in their stored order)."""
        _check_inplace_operand(other, op)
        if tuple(other.shape) != tuple(self.shape):
            raise RuntimeError(f"{op}: expected 'self' and 'other' to have same size, but self has size "
                               f"{list(self.shape)} while other has size {list(other.shape)} (FYI: "
                               "dense-sparse addition does not currently support broadcasting)")
        if other.dtype != self.dtype:
            raise TypeError(f"{op}: dtypes {self.dtype.name} and {other.dtype.name} differ; "
                            "sparse_ref does not promote dtypes")
        scale = self._alpha(alpha, op)
        data = self._inplace(op)
        c = other._now()._coalesced_form()
        value = c._val if scale is None else c._val * scale  # (a half tensor's alpha: float32)
        where = tuple(c._idx)
        data[where] = _precision.rounded(ufunc(data[where], value), data)  # rounded once, if so
        return self._bump()

    def zero_(self) -> "Tensor":
        """Set every element to 0 in place (see ``add_``)."""
        self._inplace("zero_")[...] = 0
        return self._bump()

    def fill_(self, value) -> "Tensor":
        """Set every element to ``value`` in place (see ``add_``)."""
        data = self._inplace("fill_")
        data[...] = self._inplace_operand(value, "fill_")
        return self._bump()

    def copy_(self, src) -> "Tensor":
        """Copy ``src`` (same dtype, broadcastable) into this tensor in place (see ``add_``)."""
        data = self._inplace("copy_")
        if not isinstance(src, Tensor):
            raise TypeError(f"copy_: src must be a Tensor, got {type(src).__name__}")
        data[...] = self._inplace_operand(src, "copy_")
        return self._bump()

    def clone(self) -> "Tensor":
        """A copy, part of the graph as torch's (``sr.clone``)."""
        return _F.clone(self)

    # -- conversions ----------------------------------------------------------------
    def to_dense(self) -> "Tensor":
        """The tensor itself, as torch's ``to_dense()`` of a dense tensor (so code that
        densifies whatever it is handed works on dense tensors too).

        Examples
        --------
        >>> import sparse_ref as sr
        >>> x = sr.tensor([1., 2.])
        >>> x.to_dense() is x
        True
        """
        return self

    def to_sparse(self, sparse_dim: int | None = None) -> "SparseTensor":
        """The nonzero entries as a coalesced COO tensor: zeros (and -0.0) are dropped, NaN kept.

        With ``sparse_dim=k`` (torch's rule), the leading k dimensions are sparse and the
        rest dense: the result is a *hybrid* tensor that stores, for every index tuple of
        the leading k dims whose block ``self[i0, ..., ik-1]`` holds any nonzero, that whole
        block. Without it every dimension is sparse (a 3-D tensor gives sparse_dim 3).

        Examples
        --------
        >>> import sparse_ref as sr
        >>> sr.tensor([[0., 2.], [3., 0.]]).to_sparse()
        tensor(indices=tensor([[0, 1],
                               [1, 0]]),
               values=tensor([2., 3.]),
               size=(2, 2), nnz=2, layout=sparse_ref.sparse_coo)
        >>> h = sr.tensor([[[1., 2.], [0., 0.]], [[0., 0.], [0., 3.]]]).to_sparse(2)
        >>> h.sparse_dim(), h.dense_dim(), h.indices().tolist(), h.values().tolist()
        (2, 1, [[0, 1], [0, 1]], [[1.0, 2.0], [0.0, 3.0]])
        """
        return _F.to_sparse(self, sparse_dim)

    def to_sparse_csr(self) -> "SparseCsrTensor":
        """The nonzero entries in CSR form (like ``to_sparse()``, then CSR); differentiable."""
        return self.to_sparse().to_sparse_csr()

    def t(self) -> "Tensor":
        """The transpose of a matrix (a tensor of 0 or 1 dimensions as it is); differentiable."""
        return _F.t(self)

    @property
    def T(self) -> "Tensor":
        """The transpose of a matrix; of a tensor of more dimensions, all reversed, with
        torch's deprecation warning."""
        if self.ndim <= 2:
            return self.t()
        warnings.warn("The use of `x.T` on tensors of dimension other than 2 to reverse their shape is "
                      "deprecated and it will throw an error in a future release. Consider `x.mT` to "
                      "transpose batches of matrices or `x.permute(*torch.arange(x.ndim - 1, -1, -1))` to "
                      "reverse the dimensions of a tensor.", UserWarning, stacklevel=2)
        return _F.permute(self, tuple(range(self.ndim))[::-1])

    def __matmul__(self, other):
        return _F.matmul(self, other)

    def __rmatmul__(self, other):
        return _F.matmul(other, self)

    # -- differentiable arithmetic (sparse_ref.autograd.dense_ops) ---------------------
    # a 0-d float32 tensor made of a number for an arithmetic op with a half tensor
    _number = False

    def _operand(self, other, op: str, opmath: bool = False) -> "Tensor":
        """``other`` (a tensor of this dtype, or a number) as a tensor for an op with this
        one. ``opmath`` (+, -, *, / and their in-place forms): a number meeting a float16 or
        bfloat16 tensor is taken as float32, as torch computes those ops in float32 and
        rounds the result once (a number rounded to the half type first is up to an ulp
        off, in about a third of the results)."""
        if isinstance(other, Tensor):
            if other.dtype != self.dtype and not _number_meets_half(self, other):
                raise TypeError(f"{op}: dtypes {self.dtype.name} and {other.dtype.name} differ; "
                                "sparse_ref does not promote dtypes")
            return other
        if isinstance(other, (bool, np.bool_)) and self.dtype == np.bool_:  # mask[0] = False
            return Tensor(np.asarray(other, dtype=np.bool_))
        if self.dtype == np.bool_ and isinstance(other, (int, float, complex, np.number)):
            if op in ("setitem", "fill_") and other in (0, 1):  # mask[0] = 1: exactly True
                return Tensor(np.asarray(bool(other)))
            # (torch's result would be an integer or a float tensor; a number taken as a
            # bool gave m * 2.5 == m and m + 1 all True)
            raise TypeError(f"{op}: a bool tensor and the number {other!r}: sparse_ref does not promote dtypes; "
                            "cast first: t.long() or t.float()")
        if isinstance(other, (bool, np.bool_)) or not isinstance(other, (int, float, complex, np.number)):
            raise TypeError(f"{op}: expected a Tensor or a number, got {type(other).__name__}")
        if isinstance(other, (complex, np.complexfloating)) and self.dtype.kind != "c":
            raise TypeError(f"{op}: a complex number needs a complex tensor, got {self.dtype.name}")
        if self.dtype.kind in "iu" and isinstance(other, (float, np.floating)) and (
                not np.isfinite(other) or other != int(other)):
            raise TypeError(f"{op}: {other} would be truncated to the integer dtype {self.dtype.name}; "
                            "sparse_ref does not promote dtypes")
        if opmath and _dtypes.is_half(self.dtype):
            out = Tensor(converted(np.asarray(other), np.dtype(np.float32), op))
            out._number = True
            return out
        return Tensor(converted(np.asarray(other), self.dtype, op))

    def __add__(self, other):
        if isinstance(other, SparseTensor):
            return _F.add(self, other)  # dense + sparse: a dense result, as torch
        return _F.add(self, self._operand(other, "+", opmath=True))

    def __radd__(self, other):
        if isinstance(other, SparseTensor):
            return NotImplemented  # SparseTensor's reflected op (a sparse result, as torch)
        return _F.add(self._operand(other, "+", opmath=True), self)

    def __sub__(self, other):
        if isinstance(other, SparseTensor):
            return _F.sub(self, other)  # dense - sparse: a dense result, as torch
        return _F.sub(self, self._operand(other, "-", opmath=True))

    def __rsub__(self, other):
        if isinstance(other, SparseTensor):
            return NotImplemented  # SparseTensor's reflected op (a sparse result, as torch)
        return _F.sub(self._operand(other, "-", opmath=True), self)

    def __mul__(self, other):
        if isinstance(other, SparseTensor):
            return NotImplemented  # SparseTensor's reflected op (a sparse result, as torch)
        return _F.mul(self, self._operand(other, "*", opmath=True))

    def __rmul__(self, other):
        if isinstance(other, SparseTensor):
            return NotImplemented  # SparseTensor's reflected op (a sparse result, as torch)
        return _F.mul(self._operand(other, "*", opmath=True), self)

    def __truediv__(self, other):
        if isinstance(other, SparseTensor):
            return _F.div(self, other)  # refused, as torch, with the reason
        return _F.div(self, self._operand(other, "/", opmath=True))

    def __rtruediv__(self, other):
        return _F.div(self._operand(other, "/", opmath=True), self)

    def __neg__(self):
        return _F.neg(self)

    def __floordiv__(self, other):
        return _F.floor_divide(self, other)

    def __rfloordiv__(self, other):
        return _F.floor_divide(self._operand(other, "//"), self)

    def __mod__(self, other):
        return _F.remainder(self, other)

    def __rmod__(self, other):
        return _F.remainder(self._operand(other, "%"), self)

    # bitwise and logical ops of bool and integer tensors, as torch's (no gradient: no such
    # dtype can require one); ``~mask`` and ``(a > 1) & (a < 3)`` are the common ones
    def _bitwise(self, other, ufunc, op: str) -> "Tensor":
        if self.dtype.kind not in "biu":
            raise DTypeError(f"{op}: needs a bool or integer tensor (as torch's bitwise ops), got {self.dtype.name}")
        other = self._operand(other, op)
        _F._broadcast(self, other, op)
        return Tensor(ufunc(self._data, other._data))

    def __and__(self, other):
        return self._bitwise(other, np.bitwise_and, "&")

    def __or__(self, other):
        return self._bitwise(other, np.bitwise_or, "|")

    def __xor__(self, other):
        return self._bitwise(other, np.bitwise_xor, "^")

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__

    def __invert__(self):
        if self.dtype.kind not in "biu":
            raise DTypeError(f"~: needs a bool or integer tensor (as torch's bitwise_not), got {self.dtype.name}")
        return Tensor(np.invert(self._data))

    def __pow__(self, p):
        return _F.pow(self, p)

    def __rpow__(self, base):
        return _F.pow(base, self)

    def pow(self, p):
        return _F.pow(self, p)

    def sum(self, dim: int | None = None, keepdim: bool = False, *, dtype=None) -> "Tensor":
        """Sum of all elements, or along ``dim`` (differentiable; ``dtype``: cast first).

        Examples
        --------
        >>> import sparse_ref as sr
        >>> sr.tensor([[1., 2.], [3., 4.]]).sum(0)
        tensor([4., 6.])
        """
        return _F.sum(self, dim, keepdim, dtype=dtype)

    def mean(self, dim: int | None = None, keepdim: bool = False) -> "Tensor":
        """Mean of all elements, or along ``dim`` (differentiable).

        Examples
        --------
        >>> import sparse_ref as sr
        >>> sr.tensor([[1., 2.], [3., 4.]]).mean()
        tensor(2.5000)
        """
        return _F.mean(self, dim, keepdim)

    def max(self, dim=None, keepdim: bool = False, *, other=None):
        """See :func:`sparse_ref.max`."""
        return _F.max(self, dim, keepdim, other=other)

    def min(self, dim=None, keepdim: bool = False, *, other=None):
        """See :func:`sparse_ref.min`."""
        return _F.min(self, dim, keepdim, other=other)

    def argmax(self, dim=None, keepdim: bool = False) -> "Tensor":
        return _F.argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim: bool = False) -> "Tensor":
        return _F.argmin(self, dim, keepdim)

    def norm(self, p=2, dim=None, keepdim: bool = False) -> "Tensor":
        return _F.norm(self, p, dim, keepdim)

    def softmax(self, dim: int) -> "Tensor":
        return _F.softmax(self, dim)

    def log_softmax(self, dim: int) -> "Tensor":
        return _F.log_softmax(self, dim)

    # -- elementwise math (sparse_ref._functions) -------------------------------------
    def exp(self) -> "Tensor":
        return _F.exp(self)

    def log(self) -> "Tensor":
        return _F.log(self)

    def sqrt(self) -> "Tensor":
        return _F.sqrt(self)

    def abs(self) -> "Tensor":
        return _F.abs(self)

    __abs__ = abs

    def relu(self) -> "Tensor":
        return _F.relu(self)

    def sigmoid(self) -> "Tensor":
        return _F.sigmoid(self)

    def tanh(self) -> "Tensor":
        return _F.tanh(self)

    def clamp(self, min=None, max=None) -> "Tensor":  # noqa: A002 (torch's names)
        return _F.clamp(self, min, max)

    def clamp_(self, min=None, max=None) -> "Tensor":  # noqa: A002
        """Limit every element to ``[min, max]`` in place (see ``add_``)."""
        data = self._inplace("clamp_")
        if min is None and max is None:
            raise ArgumentError("clamp_: at least one of 'min' or 'max' must not be None")
        lo = None if min is None else self._operand(min, "clamp_")._data
        hi = None if max is None else self._operand(max, "clamp_")._data
        np.clip(data, lo, hi, out=data)
        return self._bump()

    def nonzero(self, *, as_tuple: bool = False):
        """See :func:`sparse_ref.nonzero`."""
        return _F.nonzero(self, as_tuple=as_tuple)

    def maximum(self, other) -> "Tensor":
        return _F.maximum(self, other)

    def minimum(self, other) -> "Tensor":
        return _F.minimum(self, other)

    def matmul(self, other):
        return _F.matmul(self, other)

    def mm(self, other):
        return _F.mm(self, other)

    def bmm(self, other):
        return _F.bmm(self, other)

    # -- comparisons: bool tensors, no gradient ---------------------------------------
    def __lt__(self, other):
        return _F.compare(self, other, "<")

    def __le__(self, other):
        return _F.compare(self, other, "<=")

    def __gt__(self, other):
        return _F.compare(self, other, ">")

    def __ge__(self, other):
        return _F.compare(self, other, ">=")

    def __eq__(self, other):  # (None, a string: Python's answer, False, as torch's)
        return _F.compare(self, other, "==") if _comparable(other) else NotImplemented

    def __ne__(self, other):
        return _F.compare(self, other, "!=") if _comparable(other) else NotImplemented

    __hash__ = object.__hash__  # by identity, as torch's (== compares elements)

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {'more than one value' if self._data.size else 'no values'} "
                               "is ambiguous")
        return bool(self._data.reshape(()))

    # -- shapes and indexing ----------------------------------------------------------
    def __getitem__(self, key) -> "Tensor":
        return _F.index(self, key)

    def __setitem__(self, key, value) -> None:
        """``x[key] = value`` in place (torch's rules for in-place ops, see ``add_``)."""
        data = self._inplace("setitem")
        key = _F.index_key(key, self.shape, "setitem", stacklevel=3)
        if isinstance(value, Tensor) and value.requires_grad and is_grad_enabled():
            raise RuntimeError("setitem: a value that requires grad would make this tensor part of a graph; "
                               "in-place ops do not record one (use sr.no_grad())")
        split = _F.ints_first(key)
        if split is not None:  # torch's layout: the ints select first (as x[key] reads)
            data, key = data[split[0]], split[1]
        data[key] = self._operand(value, "setitem")._data
        self._bump()

    def reshape(self, *shape) -> "Tensor":
        return _F.reshape(self, *shape)

    def view(self, *shape) -> "Tensor":
        """The same data in another shape, sharing memory and the version counter; as
        torch's, refused when the strides cannot give that shape without a copy (a
        transpose's ``view(-1)``: ``reshape`` copies there)."""
        out = _F.reshape(self, *shape)
        if out._data.size and not np.may_share_memory(out._data, self._data):
            raise RuntimeError("view size is not compatible with input tensor's size and stride (at least one "
                               "dimension spans across two contiguous subspaces). Use .reshape(...) instead.")
        return out

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        return _F.flatten(self, start_dim, end_dim)

    def unsqueeze(self, dim: int) -> "Tensor":
        return _F.unsqueeze(self, dim)

    def squeeze(self, dim=None, *more) -> "Tensor":  # x.squeeze(0, 2) as x.squeeze((0, 2)), as torch's
        return _F.squeeze(self, (dim,) + more if more else dim)

    def permute(self, *dims) -> "Tensor":
        return _F.permute(self, dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims)

    def transpose(self, dim0: int, dim1: int) -> "Tensor":
        return _F.transpose(self, dim0, dim1)

    @property
    def mT(self) -> "Tensor":
        """The last two dimensions swapped (a batch of matrix transposes)."""
        if self.ndim == 0:  # (torch's mT gives a scalar back as it is, with this warning)
            warnings.warn("Tensor.mT is deprecated on 0-D tensors. This function is the identity in these cases.",
                          UserWarning, stacklevel=2)
            return _F.reshape(self, ())
        if self.ndim < 2:
            raise ArgumentError(f"tensor.mT is only supported on matrices or batches of matrices. Got {self.ndim}-D tensor.")
        return _F.transpose(self, -2, -1)

    # -- dtypes -------------------------------------------------------------------------
    def to(self, *args, dtype=None, **kwargs) -> "Tensor":
        """This tensor as ``dtype`` (``x.to(sr.float64)``, ``x.to(dtype=...)``); a device
        argument may only be "cpu". Differentiable between floating and complex dtypes."""
        return _F.to(self, _F.to_args(args, dtype, kwargs))

    # -- torch's method forms of the operators and tests (each calls its function) ------
    def add(self, other, *, alpha=1) -> "Tensor":
        """``self + alpha * other`` (a new tensor; ``add_`` is the in-place form)."""
        return _F.add(self, other, alpha=alpha)

    def sub(self, other, *, alpha=1) -> "Tensor":
        """``self - alpha * other``."""
        return _F.sub(self, other, alpha=alpha)

    def mul(self, other) -> "Tensor":
        return self * other

    def div(self, other) -> "Tensor":
        return self / other

    def neg(self) -> "Tensor":
        return _F.neg(self)

    def eq(self, other) -> "Tensor":
        return _F.compare(self, other, "==")

    def ne(self, other) -> "Tensor":
        return _F.compare(self, other, "!=")

    lt, le, gt, ge = __lt__, __le__, __gt__, __ge__  # (eq and ne refuse what == leaves to Python)

    def isnan(self) -> "Tensor":
        return _F.isnan(self)

    def isinf(self) -> "Tensor":
        return _F.isinf(self)

    def isfinite(self) -> "Tensor":
        return _F.isfinite(self)

    def equal(self, other) -> bool:
        return _F.equal(self, other)

    def allclose(self, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
        return _F.allclose(self, other, rtol, atol, equal_nan)

    def is_floating_point(self) -> bool:
        return _dtypes.kind(self.dtype) == "f"

    def is_complex(self) -> bool:
        return self.dtype.kind == "c"

    def cpu(self) -> "Tensor":
        """``self``: sparse_ref runs on the CPU."""
        return self

    def is_contiguous(self) -> bool:
        return bool(self._data.flags.c_contiguous)

    def contiguous(self) -> "Tensor":
        """``self`` when its data are C-contiguous, else a contiguous copy (differentiable)."""
        return self if self._data.flags.c_contiguous else self.clone()

    def double(self) -> "Tensor":
        return _F.to(self, _dtypes.float64)

    def half(self) -> "Tensor":
        """``self.to(sr.float16)``."""
        return _F.to(self, _dtypes.float16)

    def bfloat16(self) -> "Tensor":
        """``self.to(sr.bfloat16)`` (needs the ml_dtypes package)."""
        return _F.to(self, _dtypes.bfloat16 if _dtypes.bfloat16 is not None else "bfloat16")

    def float(self) -> "Tensor":
        return _F.to(self, _dtypes.float32)

    def long(self) -> "Tensor":
        return _F.to(self, _dtypes.int64)

    def int(self) -> "Tensor":
        return _F.to(self, _dtypes.int32)

    def bool(self) -> "Tensor":
        return _F.to(self, _dtypes.bool_)

    def type(self, dtype=None):
        """Without an argument, the type's name (``"sparse_ref.FloatTensor"``); with one,
        ``to(dtype)``."""
        if dtype is None:
            return f"sparse_ref.{_dtypes.tensor_type_name(self.dtype)}"
        if isinstance(dtype, str) and dtype.rpartition(".")[0] in ("torch", "sparse_ref"):
            # a type's name, as torch takes it: x.type(y.type()), x.type("torch.IntTensor")
            name = dtype.rpartition(".")[2]
            by_name = {_dtypes.tensor_type_name(d): d for d in (_dtypes.bool_, *_dtypes.SUPPORTED)}
            if name not in by_name:  # (bfloat16 is among them when ml_dtypes is installed)
                missing = f" ({_dtypes.BFLOAT16_MISSING})" if name == "BFloat16Tensor" else ""
                raise TypeError(f"type: invalid type: {dtype!r}{missing}")
            dtype = by_name[name]
        return _F.to(self, dtype)

    def backward(self, gradient: "Tensor | None" = None, retain_graph: bool = False) -> None:
        """Add the gradient of this tensor to ``.grad`` of every leaf it depends on.

        Examples
        --------
        >>> import sparse_ref as sr
        >>> x = sr.tensor([1., 2.], requires_grad=True)
        >>> (x * x).sum().backward()
        >>> x.grad
        tensor([2., 4.])
        """
        _F.backward(self, gradient, retain_graph)

    def __repr__(self) -> str:
        return _tensor_str.dense_str(self)


class _LaterRows:
    """A coalesced matrix's COO indices whose row half is written on first use, shared by
    the tensors made from it. ``buf`` is the (2, nnz) index array a kernel made (a
    product's or coalesce's), columns written in row 1, row 0 not yet written (its memory
    not even touched); ``crow`` its row pointers. Both stay ours: the tensors see only
    read-only windows of ``buf`` (``col``, then the whole of it from ``indices()``) that
    nobody can make writable, so row 0 can be written in place later, in parallel, with
    nothing copied. Call ``indices()`` under ``_ROWS_LOCK``."""

    __slots__ = ("crow", "col", "_buf", "_window", "_indices")

    def __init__(self, crow: np.ndarray, buf: np.ndarray):
        freeze(crow)
        assert buf.shape[0] == 2 and buf.dtype == np.int64 and buf[1].flags.c_contiguous
        self._buf, self._window = buf, read_only_window(buf)
        self.crow, self.col, self._indices = crow, self._window[1], None

    def indices(self) -> np.ndarray:
        if self._indices is None:
            _formats.csr_to_coo(self.crow, out=self._buf[0])
            self._indices, self._buf = self._window, None  # row 0 is never written again
        return self._indices


class SparseTensor(_Differentiable):
    """A sparse tensor in COO form: ``indices`` (S x nnz, int64), ``values`` (nnz, then
    the dense sizes), ``size`` and a ``coalesced`` flag (index tuples sorted
    lexicographically -- row-major for a matrix --, no duplicates).

    ``sparse_dim()`` is S, ``dense_dim()`` is ``values.ndim - 1``; the shape is the S
    sparse sizes, then the dense sizes. The common case is a 2-D matrix (S = 2, one value
    per entry); with dense_dim > 0 each stored entry holds a dense block (a *hybrid*
    tensor, as ``to_sparse(2)`` of a 3-D tensor gives). Any S and dense dims construct,
    coalesce, convert (``to_dense``, ``values``, ``sr.to_torch``) and differentiate through
    those; every matrix operation (products, ``t``, CSR, arithmetic between tensors, sums
    over a dim, softmax) needs sparse_dim 2 and dense_dim 0 and says so otherwise. The
    products also take sparse_dim 3 with dense_dim 0 as a batch of matrices (``sr.bmm``).

    Build one with :func:`sparse_coo_tensor` or ``Tensor.to_sparse()``. The stored arrays
    are read-only: no operation writes into a tensor it was given.

    Arithmetic follows torch (see ``sparse_ref.autograd.sparse_ops`` for every rule):
    ``s * 2``, ``s / 2``, ``-s`` and ``s * x`` (x dense, broadcast to s's shape) keep s's
    stored entries; ``s + t`` and ``s - t`` hold the union of the two patterns, ``s * t``
    their intersection. Every gradient of a sparse operand has that operand's coalesced
    pattern.

    A sum over one dimension (``s.sum(1)``, :func:`sparse_ref.sparse.sum`) is, as in torch,
    a 1-D sparse tensor (a sparse vector: indices 1 x nnz): it has ``to_dense()``,
    ``values()``, ``indices()``, ``sum()``, casts and arithmetic with numbers; the matrix
    operations refuse it by name.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> s = sr.tensor([[0., 1.], [2., 0.]]).to_sparse()
    >>> s.layout, s._nnz(), s.is_coalesced()
    (sparse_ref.sparse_coo, 2, True)
    >>> (2 * s - s).to_dense()
    tensor([[0., 1.],
            [2., 0.]])
    >>> s.sum(1)
    tensor(indices=tensor([[0, 1]]),
           values=tensor([1., 2.]),
           size=(2,), nnz=2, layout=sparse_ref.sparse_coo)
    """

    is_sparse = True
    is_sparse_csr = False
    layout = _dtypes.sparse_coo
    __array_ufunc__ = None  # ndarray @ sparse calls __rmatmul__, which names the problem

    def __init__(self, *args, **kwargs):
        raise TypeError("build a SparseTensor with sr.sparse_coo_tensor(indices, values, size)")

    # a == b of sparse tensors: torch has no such op (NotImplementedError); without these,
    # Python would answer whether a and b are the same object, in silence. Against anything
    # that is not a tensor or a number (None, a string), Python's own answer, as torch's:
    # ``s == None`` is False, ``s in [None, s]`` True.
    def __eq__(self, other):
        if not _comparable(other):
            return NotImplemented
        raise NotImplementedError("== is not supported for sparse tensors (as in torch): compare "
                                  "a.to_dense() == b.to_dense(), or use `is` for the same tensor")

    def __ne__(self, other):
        if not _comparable(other):
            return NotImplemented
        raise NotImplementedError("!= is not supported for sparse tensors (as in torch): compare "
                                  "a.to_dense() != b.to_dense(), or use `is not` for another tensor")

    __hash__ = object.__hash__  # by identity, as torch's

    def __bool__(self) -> bool:
        """As torch's: the truth of the one element of a one-element tensor (False when
        nothing is stored); more elements are ambiguous."""
        count = math.prod(self._shape)  # exact: np.prod wraps at 2**64 (2**32 x 2**32 gave 0)
        if count != 1:
            raise RuntimeError(f"Boolean value of Tensor with {'more than one value' if count else 'no values'} "
                               "is ambiguous")
        return bool(self._now()._coalesced_form()._val.sum())

    def __dlpack__(self, **kwargs):
        raise BufferError("Can't export tensors with layout other than strided: use .to_dense() first")

    def __dlpack_device__(self):
        raise BufferError("Can't export tensors with layout other than strided: use .to_dense() first")

    def __array__(self, dtype=None, copy=None):
        # NumPy would otherwise wrap the tensor in a 0-d object array, in silence
        raise TypeError(f"can't convert a {self.layout!r} tensor to NumPy: use .to_dense() first "
                        "(or sr.to_scipy for a SciPy sparse array), as torch says")

    @classmethod
    def _make(cls, indices: np.ndarray, values: np.ndarray, shape, coalesced: bool,
              requires_grad: bool = False) -> "SparseTensor":
        """Wrap arrays that already satisfy every invariant (no checks, no copies)."""
        self = object.__new__(cls)
        if indices.dtype != np.int64 or indices.strides[1] != 8:  # each row must be contiguous
            indices = np.ascontiguousarray(indices, dtype=np.int64)
        freeze(indices)  # ours (validated copies or kernel outputs): read-only to the root
        values, self._shared_values = own_values(np.ascontiguousarray(values))
        self._idx = indices
        self._val = values
        self._shape = tuple(int(n) for n in shape)  # sparse sizes, then dense sizes: (nrows, ncols) mostly
        self._coalesced = bool(coalesced) or values.shape[0] <= 1
        self._cache = {}  # derived arrays (coalesced form, CSR, transpose), made on first use
        self._start_autograd(requires_grad)
        return self

    @classmethod
    def _make_rows_later(cls, later: "_LaterRows", values: np.ndarray, shape) -> "SparseTensor":
        """A coalesced 2-D COO matrix from CSR arrays (a product's or coalesce's output),
        whose row indices are written on first use: when anything reads ``_idx``
        (``indices()``, printing, a COO op), from ``later``'s row pointers, in place. A
        result that is only multiplied again, summed, or converted to CSR or SciPy never
        makes them: the row array is a third of the output's bytes. Tensors made from one
        another (``detach``, ``_with_values``) share ``later``, so the indices are made once."""
        self = object.__new__(cls)
        values, self._shared_values = own_values(np.ascontiguousarray(values))
        self._rows_later = later  # no _idx yet: __getattr__ makes it
        self._val = values
        self._shape = (int(shape[0]), int(shape[1]))
        self._coalesced = True
        self._cache = {"csr": (later.crow, later.col, values)}
        self._start_autograd(False)
        return self

    @classmethod
    def _coalesced_of(cls, indices: np.ndarray, values: np.ndarray, shape) -> "SparseTensor":
        """The coalesced tensor of COO arrays (any sparse_dim and dense dims). A matrix
        keeps the row pointers the coalesce kernel made: its row indices are written from
        them on first use, and its products need no conversion to CSR."""
        idx, val, _, crow = _formats.coalesce_coo(indices, values, shape, rows_later=True)
        if crow is not None:  # idx's row 0 is then not written yet
            return cls._make_rows_later(_LaterRows(crow, idx), val, shape)
        return cls._make(idx, val, shape, coalesced=True)

    def __getattr__(self, name):
        # reached only for a name that is not set: _idx of a _make_rows_later tensor. Another
        # thread may have written the rows since the lookup missed (_write_rows sets _idx
        # before it drops _rows_later, so one of the two is always there)
        if name == "_idx" and ("_rows_later" in self.__dict__ or "_idx" in self.__dict__):
            return self._write_rows()
        return super().__getattr__(name)

    def _state(self) -> dict:  # pickle and deepcopy: the COO indices made first
        s = self._now()  # one state, read once (another thread's in-place op swaps in a new one)
        d = s.__dict__
        if "_rows_later" in d:
            idx = s._write_rows()
            if "_rows_later" in d:  # (a registered backend's rows: not kept, _write_rows)
                d = {k: v for k, v in d.items() if k != "_rows_later"}
                d["_idx"] = idx
        return d

    def __setstate__(self, state):
        # A pickle's arrays are checked as construction checks them, since a file changed
        # on disk would otherwise reach a kernel (a probe's edited column index killed the
        # process), and the forms derived from them (CSR, coalesced, transpose) are made
        # again, not taken from the file. The checked arrays are the tensor's own and
        # read-only, as they were; its values are its own now, not a caller's. Arrays a
        # state of this layout never has (another layout's, a product's rows to write
        # later) are dropped, unchecked as they would be (a review's crafted _rows_later).
        state = {k: v for k, v in state.items()
                 if k not in ("_rows_later", "_cache", "_idx" if self.is_sparse_csr else "_crow",
                              "_data") and (self.is_sparse_csr or k != "_col")}
        self.__dict__.update(state)
        self._cache = {}
        _F.check_unpickled(self)
        for value in self.__dict__.values():
            if isinstance(value, np.ndarray):
                freeze(value)
        self._shared_values = False
        if self.is_sparse_csr:
            self._cache["csr"] = (self._crow, self._col, self._val)

    def _write_rows(self) -> np.ndarray:
        d = self.__dict__  # one state (an in-place op on another thread swaps in a new one)
        later = d.get("_rows_later")
        if later is not None and not _backend.trusted():  # a registered backend's rows: made, not kept
            idx = np.empty((2, later.col.shape[0]), dtype=np.int64)
            idx[0] = _formats.csr_to_coo(later.crow)
            idx[1] = later.col
            freeze(idx)
            return idx
        with _ROWS_LOCK:  # two threads asking at once: one makes them, both get the same array
            later = d.get("_rows_later")
            if later is not None:
                d["_idx"] = later.indices()
                del d["_rows_later"]
        return d["_idx"]

    def _now(self) -> "SparseTensor":
        """This tensor as it is now: a tensor that no in-place op changes.

        An in-place op (``_update``) gives the tensor a new ``__dict__`` in one step, so
        one attribute read is always whole, but two reads may see two states: the row
        pointers of one pattern and the columns or values of another, which a kernel would
        read past their ends (a reader thread crashed the process so). Code that reads
        several arrays of a tensor that another thread may change reads them from this:
        ``Function.apply`` hands every op its sparse inputs so, and the forms made below
        (``_csr``, ``_csr_t``) are made from it.

        It is another object on the same ``__dict__`` (which ``_update`` never changes,
        it swaps in a new one): nothing is copied, and the forms it makes (cached in that
        state's ``_cache``) serve the tensor too. So set no attribute on it, and never hand
        it out: ``Function.apply`` turns an input handed back into a new tensor."""
        now = object.__new__(type(self))
        now.__dict__ = self.__dict__
        return now

    # -- what it is -----------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self._shape

    def size(self, dim: int | None = None):
        return self._shape if dim is None else self._shape[dim]

    @property
    def dtype(self) -> np.dtype:
        return self._val.dtype

    @property
    def ndim(self) -> int:
        return len(self._shape)

    def dim(self) -> int:
        return len(self._shape)

    def sparse_dim(self) -> int:
        """The number of sparse dimensions: rows of ``indices`` (2 for a matrix)."""
        return 2 if "_rows_later" in self.__dict__ else self._idx.shape[0]

    def dense_dim(self) -> int:
        """The number of dense dimensions: those of a stored value block (0 for a matrix)."""
        return self._val.ndim - 1

    def _nnz(self) -> int:
        return int(self._val.shape[0])

    def is_coalesced(self) -> bool:
        """Whether the entries are sorted row-major with no duplicates (a flag, as in torch).

        Examples
        --------
        >>> import sparse_ref as sr
        >>> s = sr.sparse_coo_tensor([[1, 0], [0, 0]], [1., 2.], (2, 2))
        >>> s.is_coalesced(), s.coalesce().is_coalesced()
        (False, True)
        """
        return self._coalesced

    def _indices(self) -> Tensor:
        """The stored indices (sparse_dim x nnz), coalesced or not."""
        return Tensor(read_only_window(self._idx))  # (see read_only_window)

    def _values(self) -> Tensor:
        """The stored values, coalesced or not."""
        return Tensor(self._val)

    def indices(self) -> Tensor:
        """The indices of a coalesced tensor (raises on an uncoalesced one, as torch does)."""
        self._require_coalesced("indices")
        return Tensor(read_only_window(self._idx))  # (see read_only_window)

    def values(self) -> Tensor:
        """The values of a coalesced tensor (raises on an uncoalesced one, as torch does);
        differentiable."""
        self._require_coalesced("values")
        return _F.values(self)

    def _require_coalesced(self, what: str) -> None:
        if not self._coalesced:
            raise RuntimeError(f"Cannot get {what} on an uncoalesced tensor, please call .coalesce() first")

    def detach(self) -> "SparseTensor":
        s = self._now()  # (pattern and values of one state: see _now)
        return s._with_values(s._val)

    def _with_values(self, values: np.ndarray) -> "SparseTensor":
        """A tensor with this one's pattern, layout and flag, holding ``values`` (row
        indices not yet written stay so: both tensors share them, written once)."""
        s = self._now()
        later = s.__dict__.get("_rows_later")
        if later is not None:
            return SparseTensor._make_rows_later(later, values, s._shape)
        return SparseTensor._make(s._idx, values, s._shape, s._coalesced)

    def clone(self) -> "SparseTensor":
        """A copy with the same pattern, part of the graph as torch's (``sr.clone``)."""
        return _F.clone(self)

    # float(s), int(s), complex(s) and s.item() of a one-element sparse tensor, as torch's
    # COO: its stored values summed as coalesce sums them, 0 when none is stored
    def _one_element(self) -> Tensor:
        if math.prod(self._shape) != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return self.detach().to_dense()

    def item(self):
        return self._one_element().item()

    def __float__(self) -> float:
        return float(self._one_element())

    def __int__(self) -> int:
        return int(self._one_element())

    def __complex__(self) -> complex:
        return complex(self._one_element())

    # -- operations -----------------------------------------------------------------
    def coalesce(self) -> "SparseTensor":
        """Sort the entries row-major and sum duplicates in storage order.

        Explicit zeros and exact cancellations stay as stored zeros. A coalesced tensor
        is returned as it is. Any sparse_dim sorts its index tuples lexicographically (a
        3-D tensor batch-major); duplicate value blocks of a hybrid tensor are summed in
        storage order, element by element.

        Examples
        --------
        >>> import sparse_ref as sr
        >>> s = sr.sparse_coo_tensor([[1, 0, 1], [0, 2, 0]], [1., 2., 3.], (2, 3))
        >>> s.is_coalesced()
        False
        >>> c = s.coalesce()
        >>> c.indices().tolist(), c.values().tolist()
        ([[0, 1], [2, 0]], [2.0, 4.0])
        """
        return self if self._coalesced else _F.coalesce(self)

    def to_dense(self) -> Tensor:
        """The dense matrix; duplicates are summed as ``coalesce`` sums them.

        Examples
        --------
        >>> import sparse_ref as sr
        >>> sr.sparse_coo_tensor([[0, 1, 1], [1, 0, 0]], [5., 1., 2.], (2, 2)).to_dense()
        tensor([[0., 5.],
                [3., 0.]])
        """
        return _F.to_dense(self)

    def to_sparse(self, sparse_dim: int | None = None) -> "SparseTensor":
        """``self`` (torch refuses another ``sparse_dim``, and so does sparse_ref)."""
        if sparse_dim is not None and sparse_dim != self.sparse_dim():
            raise RuntimeError("to_sparse: conversion from Sparse to Sparse with sparse_dim argument "
                               f"!=self.sparse_dim() is not supported (sparse_dim is {self.sparse_dim()}, "
                               f"got {sparse_dim})")
        return self

    def to_sparse_coo(self) -> "SparseTensor":
        return self

    def to_sparse_csr(self) -> "SparseCsrTensor":
        """The same matrix in CSR form (coalesced first); differentiable.

        Examples
        --------
        >>> import sparse_ref as sr
        >>> sr.sparse_coo_tensor([[1, 0], [0, 2]], [5., 6.], (2, 3)).to_sparse_csr()
        tensor(crow_indices=tensor([0, 1, 2]),
               col_indices=tensor([2, 0]),
               values=tensor([6., 5.]), size=(2, 3), nnz=2,
               layout=sparse_ref.sparse_csr)
        """
        return _F.to_sparse_csr(self)

    def t(self) -> "SparseTensor":
        """The transpose (indices swapped; like torch, the result is flagged uncoalesced)."""
        return _F.t(self)

    def sum(self, dim=None, keepdim: bool = False, *, dtype=None):
        """The sum of the stored values (a 0-d dense tensor), or along ``dim``: then, as in
        torch, a sparse vector holding one entry per row (``dim=1``) or column (``dim=0``)
        that stores anything, explicit zeros included (``keepdim=True``: a sparse n x 1 or
        1 x n matrix); with ``dtype``, of the values cast to it first (:func:`sparse_ref.sum`).
        Differentiable: every stored entry receives its sum's gradient.

        Examples
        --------
        >>> import sparse_ref as sr
        >>> s = sr.sparse_coo_tensor([[0, 0, 2], [0, 1, 1]], [2., 3., 0.], (3, 2))
        >>> s.sum()
        tensor(5.)
        >>> s.sum(1).to_dense()         # row 1 stores nothing, row 2 an explicit zero
        tensor([5., 0., 0.])
        >>> s.sum(1).indices()
        tensor([[0, 2]])
        """
        return _F.sum(self, dim, keepdim, dtype=dtype) if dtype is not None else _F.sparse_sum(self, dim, keepdim)

    # -- arithmetic (sparse_ref.autograd.sparse_ops; results keep a CSR input's layout) --
    def __mul__(self, other):
        return _F.sparse_mul(self, other)

    def __rmul__(self, other):
        return _F.sparse_mul(self, other)  # elementwise products commute

    def __truediv__(self, other):
        return _F.sparse_div(self, other)

    def __neg__(self):
        return _F.sparse_neg(self)

    def __add__(self, other):
        return _F.sparse_add(self, other)

    def __sub__(self, other):
        return _F.sparse_sub(self, other)

    # the method forms, as torch's
    def add(self, other, *, alpha=1) -> "SparseTensor":
        """``self + alpha * other`` (``other`` sparse: the union of the patterns)."""
        return _F.sparse_add(self, self._scaled(other, alpha, "add"))

    def sub(self, other, *, alpha=1) -> "SparseTensor":
        """``self - alpha * other`` (``other`` sparse: the union of the patterns)."""
        return _F.sparse_sub(self, self._scaled(other, alpha, "sub"))

    def mul(self, other) -> "SparseTensor":
        """``self * other`` (see ``sr.mul``)."""
        return _F.sparse_mul(self, other)

    def div(self, other) -> "SparseTensor":
        """``self / other`` for a number or a 0-d tensor."""
        return _F.sparse_div(self, other)

    def neg(self) -> "SparseTensor":
        return _F.sparse_neg(self)

    # elementwise ops that keep 0 at 0: of the stored values (coalesced), the pattern kept
    def abs(self) -> "SparseTensor":
        """``|self|`` of the stored values (``sr.abs``).

        Examples
        --------
        >>> import sparse_ref as sr
        >>> sr.sparse_coo_tensor([[0, 1], [1, 0]], [-2., 3.], (2, 2)).abs().values()
        tensor([2., 3.])
        """
        return _F.abs(self)

    def __abs__(self):
        return _F.abs(self)

    def sqrt(self) -> "SparseTensor":
        return _F.sqrt(self)

    def pow(self, exponent) -> "SparseTensor":
        return _F.pow(self, exponent)

    def __pow__(self, exponent):
        return _F.pow(self, exponent)

    def __rpow__(self, base):  # (refused, with the reason: the result would be dense)
        return _F.pow(base, self)

    def relu(self) -> "SparseTensor":
        return _F.relu(self)

    def tanh(self) -> "SparseTensor":
        return _F.tanh(self)

    def transpose(self, dim0: int, dim1: int) -> "SparseTensor":
        """The two dims swapped: ``t()`` of a matrix (flagged uncoalesced, as torch's)."""
        for d in (dim0, dim1):
            if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)) or not -self.ndim <= d < self.ndim:
                raise IndexError(f"Dimension out of range (expected to be in range of [{-self.ndim}, "
                                 f"{self.ndim - 1}], but got {d!r})")
        if dim0 % self.ndim == dim1 % self.ndim:  # nothing to swap: a copy, as torch's is a new tensor
            return _F.clone(self)
        if self.ndim != 2 or self.dense_dim() != 0:
            raise ArgumentError(f"transpose: sparse_ref transposes sparse matrices (2-D) only, got a "
                                f"{self.ndim}-D tensor")
        return self.t()

    @property
    def mT(self) -> "SparseTensor":  # noqa: N802 (torch's name)
        """The transpose of a matrix (``t()``)."""
        return self.transpose(-2, -1)

    # -- in-place ops. A sparse tensor's arrays never change (they were checked once, and
    # the forms made from them are kept), so an in-place op computes the out-of-place
    # result and this tensor takes its arrays and flag, bumping the version counter: every
    # name bound to this tensor sees the change, and a backward that saved the tensor
    # refuses, as torch's. Unlike torch's, tensors made from the old arrays before
    # (``values()``, ``detach()``, a NumPy array it shares) keep the old values.
    _pattern = 0  # which stored entries: a new number whenever an in-place op changes them (the graph checks it)

    @staticmethod
    def _index_arrays(d: dict) -> tuple:
        """The objects that hold the stored entries' positions in a tensor's ``__dict__``
        (the same objects: the same pattern, as an op that keeps the pattern shares them)."""
        return (d.get("_idx"), d.get("_rows_later"), d.get("_crow"), d.get("_col"))

    def _update(self, op: str, compute) -> "SparseTensor":
        """``self`` with the arrays of ``compute()``, after torch's checks. The tensor's
        ``__dict__`` is replaced in one step, so another thread reading it sees the old
        arrays or the new ones, never a tensor without them."""
        self._check_inplace(op)
        with no_grad():
            result = compute()
        if type(result) is not type(self):  # sparse + dense is dense, as torch's add
            raise RuntimeError(f"{op}: the result is {result.layout!r}, not {self.layout!r} like this "
                               f"tensor; in torch too, add(sparse, dense) is not supported. Use "
                               f"add(dense, sparse) instead")
        keep = ("_requires_grad", "grad_fn", "_grad", "_version", "_retains_grad", "_guarded", "_pattern")
        state = {k: v for k, v in vars(result).items() if k not in keep}
        with _ATTR_LOCK:  # (no .grad set between the copy and the swap: see _ATTR_LOCK)
            mine = self.__dict__.copy()  # (one step: _write_rows on another thread may add _idx)
            state.update((k, v) for k, v in mine.items() if k in keep)
            if any(a is not b for a, b in zip(self._index_arrays(mine), result._index_arrays(result.__dict__))):
                state["_pattern"] = next(_NEW_PATTERN)
            self.__dict__ = state
        self._version[0] += 1
        return self

    def _scaled(self, other, alpha, op: str):
        alpha = _F.alpha_number(alpha, op)
        return other if alpha == 1 else other * alpha

    def add_(self, other, *, alpha=1) -> "SparseTensor":
        """``self += alpha * other`` in place, ``other`` sparse: this tensor becomes the
        union ``self + alpha * other`` (see ``_update`` above for what in place means here).

        Examples
        --------
        >>> import sparse_ref as sr
        >>> s = sr.sparse_coo_tensor([[0], [1]], [1.], (2, 2))
        >>> t = s
        >>> s += sr.sparse_coo_tensor([[1], [0]], [2.], (2, 2))
        >>> t is s, t.to_dense()
        (True, tensor([[0., 1.],
                [2., 0.]]))
        """
        _check_inplace_operand(other, "add_")
        return self._update("add_", lambda: self + self._scaled(other, alpha, "add_"))

    def sub_(self, other, *, alpha=1) -> "SparseTensor":
        """``self -= alpha * other`` in place (see ``add_``)."""
        _check_inplace_operand(other, "sub_")
        return self._update("sub_", lambda: self - self._scaled(other, alpha, "sub_"))

    def mul_(self, other) -> "SparseTensor":
        """``self *= other`` in place: a number or dense tensor scales the stored entries, a
        sparse one leaves the intersection (see ``add_``)."""
        _check_inplace_operand(other, "mul_")
        return self._update("mul_", lambda: self * other)

    def div_(self, other) -> "SparseTensor":
        """``self /= other`` in place, ``other`` a number or 0-d tensor (see ``add_``)."""
        _check_inplace_operand(other, "div_")
        return self._update("div_", lambda: self / other)

    def neg_(self) -> "SparseTensor":
        """``self = -self`` in place (see ``add_``)."""
        return self._update("neg_", lambda: -self)

    def zero_(self) -> "SparseTensor":
        """No stored entries left (nnz 0, coalesced), the shape and dtype kept, as torch's."""
        return self._update("zero_", self._emptied)

    def _emptied(self) -> "SparseTensor":
        if self.is_sparse_csr:
            return SparseCsrTensor._make_csr(np.zeros(self._shape[0] + 1, np.int64), np.zeros(0, np.int64),
                                             np.zeros(0, self.dtype), self._shape)
        return SparseTensor._make(np.zeros((self.sparse_dim(), 0), np.int64),
                                  np.zeros((0,) + self._val.shape[1:], self.dtype), self._shape, True)

    def to(self, dtype, *, copy: bool = False) -> "SparseTensor":
        """The same entries as ``dtype`` (the pattern, flag and layout kept); ``self`` when
        it has that dtype already, unless ``copy``. A value the dtype cannot hold (a
        complex number with an imaginary part for a real dtype, an out-of-range integer) is
        refused, never changed in silence. Differentiable between floating dtypes.

        Examples
        --------
        >>> import sparse_ref as sr
        >>> s = sr.sparse_coo_tensor([[0, 1], [1, 0]], [1.5, 2.], (2, 2)).coalesce()
        >>> s.to(sr.float64).values()
        tensor([1.5000, 2.0000], dtype=sparse_ref.float64)
        >>> s.double().dtype, s.double().float().dtype
        (dtype('float64'), dtype('float32'))
        """
        return _F.sparse_to(self, dtype, copy)

    def double(self) -> "SparseTensor":
        """``self.to(sr.float64)``."""
        return _F.sparse_to(self, _dtypes.float64)

    def half(self) -> "SparseTensor":
        """``self.to(sr.float16)``."""
        return _F.sparse_to(self, _dtypes.float16)

    def bfloat16(self) -> "SparseTensor":
        """``self.to(sr.bfloat16)`` (needs the ml_dtypes package)."""
        return _F.sparse_to(self, _dtypes.bfloat16 if _dtypes.bfloat16 is not None else "bfloat16")

    def float(self) -> "SparseTensor":
        """``self.to(sr.float32)``."""
        return _F.sparse_to(self, _dtypes.float32)

    def long(self) -> "SparseTensor":
        """``self.to(sr.int64)`` (a bool tensor's to_sparse() too: True is 1)."""
        return _F.sparse_to(self, _dtypes.int64)

    def int(self) -> "SparseTensor":
        """``self.to(sr.int32)``."""
        return _F.sparse_to(self, _dtypes.int32)

    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        """Backward from a sparse tensor; ``gradient`` may be dense (it is masked to this
        tensor's pattern) or sparse."""
        _F.backward(self, gradient, retain_graph)

    @property
    def T(self) -> "SparseTensor":
        return self.t()

    def __matmul__(self, other):
        return _F.matmul(self, other)

    def __rmatmul__(self, other):
        return _F.matmul(other, self)

    def bmm(self, other):
        """``sr.bmm(self, other)``: a batch of products (3-D operands)."""
        return _F.bmm(self, other)

    # -- the arrays the kernels take (computed once: the stored arrays never change) ------
    def _coalesced_form(self) -> "SparseTensor":
        """``coalesce()`` outside the graph, computed once per tensor: ``self`` when it is
        coalesced (so call it on ``_now()`` of a tensor another thread may change)."""
        d = self.__dict__  # (one state)
        if d["_coalesced"]:
            return self
        cache = d["_cache"] if _backend.trusted() else {}  # (a registered backend's: not kept)
        c = cache.get("coalesced")
        if c is None:  # (an uncoalesced tensor's indices are never made later: _idx is there)
            c = cache["coalesced"] = SparseTensor._coalesced_of(d["_idx"], d["_val"], d["_shape"])
        return c

    def _csr(self):
        """``(crow, col, val)`` of the coalesced matrix (as it is now: see ``_now``)."""
        if _CONTEXT.get() is not None and not _backend.trusted():  # (no use_backend in force: trusted)
            return self._now()._csr_afresh()
        csr = self._cache.get("csr")  # (one read: a state's cache holds that state's arrays)
        if csr is None:
            s = self._now()
            c = s._coalesced_form()
            idx = c._idx
            csr = s._cache["csr"] = (_formats.coo_to_csr(idx[0], s._shape[0]), idx[1], c._val)
        return csr

    def _csr_col32(self):
        """The columns of ``_csr()`` as int32, made on the first call and kept (4 bytes a
        stored entry), or None: a matrix of 2**31 columns or more, or a registered
        backend's op (``_backend.trusted``: nothing is kept for it). A product with one
        column reads these instead of the int64 columns (``_products.spmm``'s ``col32``):
        it reads little else, and 4 bytes less per stored entry made whole calls 0.95-1.25x
        as fast, 1.07-1.25x on a stencil (docs/algorithms/spmm.rst)."""
        if not _backend.trusted() or self._shape[-1] > np.iinfo(np.int32).max:
            return None
        col32 = self._cache.get("col32")  # (one read: a state's cache holds that state's arrays)
        if col32 is None:
            s = self._now()
            col = s._csr()[1]
            col32 = s._cache.get("col32")
            if col32 is None:
                col32 = col.astype(np.int32)
                freeze(col32)
                s._cache["col32"] = col32
        return col32

    def _csr_afresh(self):
        """``_csr()`` under a registered backend (of one state: ``_now()``): its arrays
        when it has them (a CSR tensor, or a product's or coalesce's matrix), else made
        by that backend's kernels and not kept (``_backend.trusted``)."""
        d = self.__dict__
        if "_crow" in d:  # a CSR tensor's own arrays
            return d["_crow"], d["_col"], d["_val"]
        c = self._coalesced_form().__dict__  # (made afresh too, unless it is coalesced)
        later = c.get("_rows_later")
        if later is not None:
            return later.crow, later.col, c["_val"]
        idx = c["_idx"]
        return _formats.coo_to_csr(idx[0], d["_shape"][0]), idx[1], c["_val"]

    def _csr_t(self):
        """``(crow, col, val, perm)`` of the transpose, as CSR: ``val = csr val[perm]``.
        The pattern is computed once; the values too, unless they are shared with the
        caller's array (then a change of it must show up here as well)."""
        if not _backend.trusted():  # a registered backend's: made, not kept
            crow, col, val = self._csr()
            t_crow, t_col, perm, _ = _formats.csr_transpose(crow, col, self._shape[1], rename=False)
            return t_crow, t_col, val[perm], perm
        cache = self._cache  # (one read: a state's cache holds that state's arrays)
        csr_t = cache.get("csr_t")
        if csr_t is not None and csr_t[2] is not None:
            return csr_t
        s = self._now()
        crow, col, val = s._csr()
        csr_t = s._cache.get("csr_t")
        if csr_t is None:
            t_crow, t_col, perm, _ = _formats.csr_transpose(crow, col, s._shape[1], rename=False)
            csr_t = s._cache["csr_t"] = (t_crow, t_col, None if s._shared_values else val[perm], perm)
        t_crow, t_col, t_val, perm = csr_t
        return t_crow, t_col, (val[perm] if t_val is None else t_val), perm

    def __repr__(self) -> str:
        return _tensor_str.coo_str(self)


class SparseCsrTensor(SparseTensor):
    """A 2-D sparse matrix in CSR form: ``crow_indices`` (nrows + 1 row pointers),
    ``col_indices`` and ``values`` (nnz each), columns sorted and unique within each row.

    It is always coalesced, so it can stand wherever a coalesced COO tensor can: every
    product takes it, its gradient is a CSR tensor with the same ``crow_indices`` and
    ``col_indices``, and the kernels read its arrays as they are (no conversion).
    Build one with :func:`sparse_csr_tensor`, ``to_sparse_csr()`` or ``sr.from_scipy``.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> a = sr.tensor([[0., 1.], [2., 0.]]).to_sparse_csr()
    >>> a.layout, a.crow_indices().tolist(), a.col_indices().tolist()
    (sparse_ref.sparse_csr, [0, 1, 2], [1, 0])
    """

    is_sparse = False
    is_sparse_csr = True
    layout = _dtypes.sparse_csr

    @classmethod
    def _make_csr(cls, crow: np.ndarray, col: np.ndarray, values: np.ndarray, shape,
                  requires_grad: bool = False) -> "SparseCsrTensor":
        """Wrap CSR arrays that satisfy every invariant (no checks)."""
        self = object.__new__(cls)
        freeze(crow)  # index arrays are ours (validated copies or kernel outputs)
        freeze(col)
        values, self._shared_values = own_values(values)
        self._crow, self._col, self._val = crow, col, values
        self._shape = (int(shape[0]), int(shape[1]))
        self._coalesced = True
        self._cache = {"csr": (crow, col, values)}
        self._start_autograd(requires_grad)
        return self

    @property
    def _idx(self) -> np.ndarray:
        """COO indices (2 x nnz), made from the row pointers on first use."""
        s = self._now()  # (row pointers and columns of one state)
        keep = _backend.trusted()  # (a registered backend's: made, not kept)
        idx = s._cache.get("idx") if keep else None
        if idx is None:
            idx = np.empty((2, s._col.shape[0]), dtype=np.int64)
            idx[0] = _formats.csr_to_coo(s._crow)
            idx[1] = s._col
            idx.flags.writeable = False
            if keep:
                s._cache["idx"] = idx
        return idx

    def sparse_dim(self) -> int:
        """2, always (without building the COO indices that ``_idx`` would make)."""
        return 2

    def crow_indices(self) -> Tensor:
        """The row pointers (nrows + 1 of them).

        Examples
        --------
        >>> import sparse_ref as sr
        >>> sr.sparse_csr_tensor([0, 1, 3], [2, 0, 1], [1., 2., 3.], (2, 3)).crow_indices()
        tensor([0, 1, 3])
        """
        return Tensor(read_only_window(self._crow))

    def col_indices(self) -> Tensor:
        """The column of every stored entry, ascending within each row.

        Examples
        --------
        >>> import sparse_ref as sr
        >>> sr.sparse_csr_tensor([0, 1, 3], [2, 0, 1], [1., 2., 3.], (2, 3)).col_indices()
        tensor([2, 0, 1])
        """
        return Tensor(read_only_window(self._col))

    def _with_values(self, values: np.ndarray) -> "SparseCsrTensor":
        s = self._now()  # (row pointers and columns of one state)
        return SparseCsrTensor._make_csr(s._crow, s._col, np.ascontiguousarray(values), s._shape)

    def to_sparse(self, sparse_dim: int | None = None) -> SparseTensor:
        """The same matrix as a (coalesced) COO tensor; differentiable (``sparse_dim``, if
        given, must be 2).

        Examples
        --------
        >>> import sparse_ref as sr
        >>> sr.sparse_csr_tensor([0, 1, 2], [1, 0], [5., 6.], (2, 2)).to_sparse().indices()
        tensor([[0, 1],
                [1, 0]])
        """
        if sparse_dim is not None and sparse_dim != 2:
            raise RuntimeError(f"to_sparse: a CSR matrix converts to sparse_dim 2 only, got sparse_dim={sparse_dim}")
        return _F.to_sparse_coo(self)

    def to_sparse_coo(self) -> SparseTensor:
        return self.to_sparse()

    def to_sparse_csr(self) -> "SparseCsrTensor":
        return self

    def __repr__(self) -> str:
        return _tensor_str.csr_str(self)

"""``sr.save`` and ``sr.load``: tensors, parameters and state dicts to a file and back, as
``torch.save`` and ``torch.load`` (a student's ``torch.save(model.state_dict(), path)``
runs with ``sr`` in its place).

The file is a pickle in which every tensor is written as plain data: its kind, dtype
name, shape and the raw bytes of its arrays (no NumPy object, no class of sparse_ref).
``load`` reads it with ``weights_only=True`` by default, as torch does since 2.6: then
the file may name no class at all but ``collections.OrderedDict`` (a state dict), so a
file from elsewhere cannot run code as it is read, nor make an array that reads memory
it does not own (NumPy's own pickles can: an ``ndarray`` of dtype object over bytes the
file chooses). Every tensor is then built by the public constructors, with their checks
(a dtype sparse_ref has, bytes that fill the shape, indices within the size, CSR row
pointers in order), so a file changed on disk raises their error instead of reaching a
kernel. ``weights_only=False`` reads any pickle, for files you trust. A file
``torch.save`` wrote is a zip archive torch alone reads: load it with ``torch.load`` and
convert with ``sr.from_torch``.
"""

from __future__ import annotations

import collections
import io
import os
import pickle

import numpy as np

from sparse_ref import _dtypes, nn
from sparse_ref._factories import sparse_coo_tensor, sparse_csr_tensor
from sparse_ref._grad_mode import no_grad
from sparse_ref._tensor import SparseCsrTensor, SparseTensor, Tensor

__all__ = ["save", "load"]

_TAG = "sparse_ref.tensor.v1"  # the first element of a tuple that stands for a tensor
_ZIP_MAGIC = b"PK\x03\x04"
_DTYPES = ("bool", "int32", "int64", "float16", "bfloat16", "float32", "float64", "complex64", "complex128")


# -- save: tensors as plain data --------------------------------------------------------------

def save(obj, f, pickle_protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
    """Write ``obj`` (a tensor, a ``state_dict()``, a dict, list or tuple of them, plain
    numbers and strings) to ``f``, a path or a binary file.

    Examples
    --------
    >>> import io
    >>> import sparse_ref as sr
    >>> net = sr.nn.Linear(3, 2)
    >>> buf = io.BytesIO()
    >>> sr.save(net.state_dict(), buf)
    >>> _ = buf.seek(0)
    >>> again = sr.nn.Linear(3, 2)
    >>> again.load_state_dict(sr.load(buf))
    <All keys matched successfully>
    >>> sr.equal(again.weight, net.weight)
    True
    """
    data = _plain(obj)
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as file:
            pickle.dump(data, file, protocol=pickle_protocol)
        return
    if not hasattr(f, "write"):
        raise TypeError(f"save: f must be a path or a binary file, got {type(f).__name__}")
    pickle.dump(data, f, protocol=pickle_protocol)


def _mapped(obj, is_leaf, leaf, done: dict):
    """``obj`` with each leaf (``is_leaf``) replaced by ``leaf(it)``, its dicts, lists and
    tuples walked; an object met twice is mapped once and shared (``done``, by id): a
    tensor saved twice is stored once, and a small file of shared references cannot
    expand into an exponential copy on load (a second review's 693 bytes asked for
    gigabytes)."""
    if id(obj) in done:
        return done[id(obj)][1]
    if is_leaf(obj):
        out = leaf(obj)
    elif isinstance(obj, collections.OrderedDict):
        out = collections.OrderedDict((k, _mapped(v, is_leaf, leaf, done)) for k, v in obj.items())
    elif type(obj) is dict:
        out = {k: _mapped(v, is_leaf, leaf, done) for k, v in obj.items()}
    elif type(obj) in (list, tuple):
        out = type(obj)(_mapped(v, is_leaf, leaf, done) for v in obj)
    else:
        return obj
    done[id(obj)] = (obj, out)  # (obj kept alive, so its id is not reused meanwhile)
    return out


def _plain(obj):
    """``obj`` with each tensor replaced by a tagged tuple of plain data."""
    return _mapped(obj, lambda o: isinstance(o, (Tensor, SparseTensor)), _tensor_data, {})


def _array_data(arr: np.ndarray) -> tuple:
    # (tobytes is in C order whatever the layout; np.ascontiguousarray would make a 0-d array 1-d)
    return (arr.dtype.name, tuple(int(n) for n in arr.shape), arr.tobytes(order="C"))


def _tensor_data(t) -> tuple:
    with no_grad():
        if isinstance(t, SparseCsrTensor):
            s = t._now()
            return (_TAG, "csr", tuple(t.shape), _array_data(s._crow), _array_data(s._col), _array_data(s._val),
                    bool(t.requires_grad))
        if isinstance(t, SparseTensor):
            s = t._now()
            return (_TAG, "coo", tuple(t.shape), _array_data(s._idx), _array_data(s._val), bool(s._coalesced),
                    bool(t.requires_grad))
        kind = "parameter" if isinstance(t, nn.Parameter) else "dense"
        return (_TAG, kind, _array_data(t._data), bool(t.requires_grad))


# -- load: plain data back into tensors, by the constructors --------------------------------------

class _WeightsOnly(pickle._Unpickler):
    """Python's own unpickler (the pure-Python one: its steps can be checked), admitting no
    class but ``OrderedDict``, made only empty (``OrderedDict()``, then filled), never given
    a state (BUILD); a dict key or set element must be a number, a string, bytes or a
    shallow tuple of them: hashing a tuple nested 200,000 deep overflows the C stack
    (a second review's file killed the process so, as it kills ``pickle.loads``)."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str):
        if (module, name) != ("collections", "OrderedDict"):
            raise pickle.UnpicklingError(
                f"load: the file names {module}.{name}, which weights_only=True does not allow (only tensors, "
                "numbers, strings and plain containers); pass weights_only=False for a file you trust: "
                "unpickling runs whatever code a file names")
        return collections.OrderedDict

    def load_reduce(self):
        args = self.stack[-1]
        if args != ():
            raise pickle.UnpicklingError("load: an OrderedDict is made empty in a file sr.save writes")
        pickle._Unpickler.load_reduce(self)
    dispatch[pickle.REDUCE[0]] = load_reduce

    def load_newobj(self):
        raise pickle.UnpicklingError("load: NEWOBJ is not in a file sr.save writes")
    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj

    def load_build(self):
        raise pickle.UnpicklingError("load: BUILD (an object's state) is not in a file sr.save writes")
    dispatch[pickle.BUILD[0]] = load_build

    def load_setitem(self):
        _hashable(self.stack[-2])
        pickle._Unpickler.load_setitem(self)
    dispatch[pickle.SETITEM[0]] = load_setitem

    def load_setitems(self):
        for key in self.stack[::2]:  # (since MARK: the whole stack, the rest is on the metastack)
            _hashable(key)
        pickle._Unpickler.load_setitems(self)
    dispatch[pickle.SETITEMS[0]] = load_setitems

    def load_additems(self):
        for item in self.stack:  # (since MARK, as above)
            _hashable(item)
        pickle._Unpickler.load_additems(self)
    dispatch[pickle.ADDITEMS[0]] = load_additems

    def load_frozenset(self):
        for item in self.stack:  # (since MARK, as above)
            _hashable(item)
        pickle._Unpickler.load_frozenset(self)
    dispatch[pickle.FROZENSET[0]] = load_frozenset


def _hashable(key) -> None:
    """A key a file may hash: a number, a string, bytes, None, or a tuple of them at most
    8 deep (checked without recursion into the depth a file chose)."""
    todo = [(key, 0)]
    while todo:
        k, d = todo.pop()
        if type(k) in (int, float, complex, bool, str, bytes, type(None)):
            continue
        if type(k) is tuple and d < 8:
            todo.extend((x, d + 1) for x in k)
            continue
        raise pickle.UnpicklingError(f"load: a dict key or set element of type {type(k).__name__}, or nested more "
                                     "than 8 deep, is not in a file sr.save writes")


def load(f, map_location=None, weights_only: bool = True):
    """What :func:`save` wrote to ``f`` (a path or a binary file). ``map_location`` may
    only be None or "cpu" (sparse_ref runs on the CPU); ``weights_only=False`` lets the
    file name any class, for files you trust.

    Examples
    --------
    >>> import io
    >>> import sparse_ref as sr
    >>> buf = io.BytesIO()
    >>> sr.save({"a": sr.tensor([[0., 2.], [3., 0.]]).to_sparse(), "step": 3}, buf)
    >>> _ = buf.seek(0)
    >>> back = sr.load(buf, map_location="cpu")
    >>> back["a"].to_dense().tolist(), back["step"]
    ([[0.0, 2.0], [3.0, 0.0]], 3)
    """
    if map_location is not None and str(map_location).split(":")[0] != "cpu":
        raise ValueError(f"load: sparse_ref runs on the CPU only, got map_location={map_location!r}")
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as file:
            return _load(file, weights_only)
    if not hasattr(f, "read"):
        raise TypeError(f"load: f must be a path or a binary file, got {type(f).__name__}")
    return _load(f, weights_only)


def _load(file, weights_only: bool):
    head = file.read(4)
    if head == _ZIP_MAGIC:
        raise pickle.UnpicklingError("load: this is a zip archive, as torch.save writes: read it with torch.load "
                                     "and convert the tensors with sr.from_torch")
    stream = io.BufferedReader(_Joined(head, file)) if head else file
    data = (_WeightsOnly(stream) if weights_only else pickle.Unpickler(stream)).load()
    return _rebuilt(data)


def _rebuilt(obj):
    """``obj`` with each tensor node built."""
    return _mapped(obj, lambda o: type(o) is tuple and len(o) >= 2 and o[0] == _TAG, _tensor_of, {})


def _bad(what: str) -> pickle.UnpicklingError:
    return pickle.UnpicklingError(f"load: a tensor in the file is not whole: {what}")


def _array_of(data) -> np.ndarray:
    """An array from ``(dtype name, shape, bytes)``: a dtype of sparse_ref's, native order,
    bytes that fill the shape exactly; a private, writable copy."""
    if type(data) is not tuple or len(data) != 3:
        raise _bad("an array is not (dtype, shape, bytes)")
    name, shape, raw = data
    if name not in _DTYPES:
        raise _bad(f"dtype {name!r} is not one of sparse_ref's ({', '.join(_DTYPES)})")
    dt = np.dtype(bool) if name == "bool" else _dtypes.as_dtype(name, "load")
    if (type(shape) is not tuple or not all(type(n) is int and n >= 0 for n in shape)
            or type(raw) is not bytes):
        raise _bad(f"shape {shape!r} or its bytes are not plain data")
    count = 1
    for n in shape:
        count *= n
    if count * dt.itemsize != len(raw):
        raise _bad(f"{len(raw)} bytes for shape {shape} of {name} ({count * dt.itemsize} needed)")
    return np.frombuffer(raw, dtype=dt).reshape(shape).copy()


def _tensor_of(node):
    kind = node[1]
    try:
        if kind in ("dense", "parameter") and len(node) == 4:
            _, _, data, grad = node
            t = Tensor(_array_of(data))
            return nn.Parameter(t, requires_grad=bool(grad)) if kind == "parameter" else t.requires_grad_(bool(grad))
        if kind in ("coo", "csr") and len(node) == 7 and not (
                type(node[2]) is tuple and all(type(n) is int for n in node[2])):
            raise _bad(f"size {node[2]!r} is not a tuple of ints")
        if kind == "coo" and len(node) == 7:
            _, _, size, idx, val, coalesced, grad = node
            return sparse_coo_tensor(_array_of(idx), _array_of(val), tuple(size), is_coalesced=bool(coalesced) or None,
                                     requires_grad=bool(grad))
        if kind == "csr" and len(node) == 7:
            _, _, size, crow, col, val, grad = node
            return sparse_csr_tensor(_array_of(crow), _array_of(col), _array_of(val), tuple(size),
                                     requires_grad=bool(grad))
    except pickle.UnpicklingError:
        raise
    except (TypeError, ValueError, IndexError, RuntimeError) as exc:  # the constructors' checks
        raise _bad(f"{type(exc).__name__}: {exc}") from None
    raise _bad(f"unknown kind {kind!r} or fields {len(node)}")


class _Joined(io.RawIOBase):
    """The bytes already read, then the rest of the file."""

    def __init__(self, head: bytes, rest):
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._rest.read(len(b))
        b[:len(data)] = data
        return len(data)

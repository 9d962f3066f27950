"""``sr.save`` and ``sr.load``: tensors, parameters and state dicts to a file and back, as
``torch.save`` and ``torch.load`` (a student's ``torch.save(model.state_dict(), path)``
runs with ``sr`` in its place).

The file is a pickle. ``load`` reads it with ``weights_only=True`` by default, as torch
does since 2.6: only sparse_ref's tensors, NumPy arrays and dtypes and Python's plain
containers and numbers may be in it, so a file from elsewhere cannot run code as it is
read. A tensor in the file is checked as a pickle always is (its index arrays against its
shape, its row pointers: ``docs/field.rst``), so a file changed on disk raises the
constructors' error rather than reaching a kernel. A file ``torch.save`` wrote is a zip
archive torch alone reads: load it with ``torch.load`` and convert with ``sr.from_torch``.
"""

from __future__ import annotations

import io
import os
import pickle

__all__ = ["save", "load"]

# what a file may name with weights_only=True: sparse_ref's tensors, NumPy's arrays,
# dtypes and scalars (either package path of NumPy 1 and 2), bfloat16, an OrderedDict
_ALLOWED = {
    ("sparse_ref._tensor", "Tensor"), ("sparse_ref._tensor", "SparseTensor"),
    ("sparse_ref._tensor", "SparseCsrTensor"), ("sparse_ref.nn", "Parameter"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("ml_dtypes", "bfloat16"),
    ("collections", "OrderedDict"),
    *((f"numpy.{core}.{module}", name) for core in ("core", "_core")
      for module, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))),
}

_ZIP_MAGIC = b"PK\x03\x04"


class _WeightsOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(
                f"load: the file names {module}.{name}, which weights_only=True does not allow (only tensors, "
                "NumPy arrays and plain containers); pass weights_only=False for a file you trust: unpickling "
                "runs whatever code a file names")
        return super().find_class(module, name)


def save(obj, f, pickle_protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
    """Write ``obj`` (a tensor, a ``state_dict()``, a dict or list of them) to ``f``, a
    path or a binary file.

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
    >>> sr.equal(again.weight, net.weight)
    True
    """
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as file:
            pickle.dump(obj, file, protocol=pickle_protocol)
        return
    if not hasattr(f, "write"):
        raise TypeError(f"save: f must be a path or a binary file, got {type(f).__name__}")
    pickle.dump(obj, f, protocol=pickle_protocol)


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
    return (_WeightsOnly(stream) if weights_only else pickle.Unpickler(stream)).load()


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

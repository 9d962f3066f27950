"""Array-level safety (layer 1): lossless dtype conversion and who owns an array's memory.

Two rules of the field-safety contract live here, below the tensor classes that rely on
them:

- **No silent conversion.** :func:`converted` copies data to a dtype and refuses every
  value that dtype cannot represent (overflow, NaN to an integer, complex to real).
- **Nobody can change what a kernel reads.** A sparse tensor's index arrays and values
  are its own, read-only down to the array that holds their memory (:func:`freeze`). A
  dense tensor's data may be a caller's array (``sr.from_numpy``: torch's sharing,
  :func:`callers_view`), which is remembered as the caller's (:func:`is_callers`) so that
  nothing derived from it is ever cached.
"""

import weakref

import numpy as np

from sparse_ref import _dtypes
from sparse_ref._errors import ConversionError
from sparse_ref._memory import empty


def converted(arr: np.ndarray, dt: np.dtype, where: str) -> np.ndarray:
    """A private C-contiguous copy of ``arr`` as ``dt``, refusing every value that ``dt``
    cannot represent (torch's rules for Python data, applied to every input).

    Refused: a complex value with an imaginary part to a real type (TypeError); NaN or inf
    to an integer type, an integer or float out of the integer type's range, a finite
    float that would become inf in a narrower float type (ConversionError). Kept, as in
    torch: ordinary rounding (float64 -> float32, int64 -> float) and the truncation of a
    float's fraction to an integer. The half types follow the same rules: a float16 or
    bfloat16 source is widened to float32 first (exactly), and a value (integers
    included) that would round to inf in float16 or bfloat16 is refused as for float32 --
    from the largest finite value plus half a unit in the last place up (65520 for
    float16: 65510 rounds to 65504, as in torch); in range, NumPy (and ml_dtypes) round to
    nearest, ties to even (ml_dtypes rounds a float64 to float32 first, as torch does).
    """
    src = arr.dtype
    if src == object:  # Python integers beyond int64 (see _as_array)
        if dt.kind in "iu":
            info = np.iinfo(dt)
            x = next((v for v in arr.flat if not info.min <= v <= info.max), None)
            if x is not None:
                raise ConversionError(f"{where}: value {x} cannot be converted to type {dt.name} without "
                                      f"overflow (its range is {info.min} .. {info.max})")
        arr = arr.astype(np.int64 if dt.kind in "iu" else np.float64)
        src = arr.dtype
    if src != dt and _dtypes.is_half(src):  # float32 holds every half value exactly
        arr = arr.astype(np.float32)
        src = arr.dtype
    if src != dt and arr.size:
        if src.kind == "c" and dt.kind != "c":
            bad = arr.imag != 0
            if bad.any():
                x = arr.reshape(-1)[int(np.argmax(bad.reshape(-1)))]
                raise TypeError(f"{where}: value {x} has an imaginary part, so it cannot become "
                                f"{dt.name} (must be real number, not complex); take .real first")
            arr = arr.real
        if dt.kind in "iu" and arr.dtype.kind in "fiu":
            _fits_integer(arr, dt, where)
        elif _dtypes.kind(dt) in "fc" and (arr.dtype.kind in "fc" and _part_bytes(arr.dtype) > _part_bytes(dt)
                                            or arr.dtype.kind in "iu" and _dtypes.is_half(dt)):
            # compared in the source's own type (a long double beyond float64 would be inf
            # in float64 already), an integer source as float64
            part = arr.real if arr.dtype.kind == "c" else arr if arr.dtype.kind == "f" else arr.astype(np.float64)
            parts = (part, arr.imag) if arr.dtype.kind == "c" else (part,)
            for p in parts:
                bad = np.isfinite(p) & (np.abs(p) >= _overflow_limit(dt, p.dtype))
                if bad.any():
                    x = p.reshape(-1)[int(np.argmax(bad.reshape(-1)))]
                    raise ConversionError(f"{where}: value {x!s} cannot be converted to type {dt.name} "
                                          "without overflow (it would become inf)")  # (!s: a long double's digits)
    out = empty(arr.shape, dt)  # a large array from the output cache: on a page of its own
    np.copyto(out, arr, casting="unsafe")  # (every value was checked above)
    return out


def c_order(arr: np.ndarray) -> np.ndarray:
    """``arr`` in C order, its shape kept: a 0-d array stays 0-d (``np.ascontiguousarray``
    makes it 1-d, which a gradient of a scalar must not become)."""
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def _part_bytes(dt: np.dtype) -> int:
    """The bytes of one real number of ``dt``: its own, or half a complex one's (float64
    into complex64 narrows: 8 bytes of a real part into 4)."""
    return dt.itemsize // 2 if _dtypes.kind(dt) == "c" else dt.itemsize


def _overflow_limit(dt: np.dtype, src: np.dtype = np.dtype(np.float64)):
    """The smallest magnitude that rounds to inf in the float type ``dt`` (to nearest, ties
    to even): its largest finite value plus half a unit in the last place there (65520 for
    float16), in the source's type ``src`` (for float64 that sum is inf as a float64: a
    long double source compares with it in long double). Anything below rounds to a
    finite value, the largest at worst."""
    info = _dtypes.finfo(dt)
    src = np.dtype(src) if np.dtype(src).itemsize > 8 else np.dtype(np.float64)
    ulp_at_max = src.type(float(info.eps)) * src.type(2.0) ** (int(info.maxexp) - 1)
    return src.type(float(info.max)) + ulp_at_max / 2


def _fits_integer(arr: np.ndarray, dt: np.dtype, where: str) -> None:
    info = np.iinfo(dt)
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            x = arr.reshape(-1)[int(np.argmax(bad.reshape(-1)))]
            raise ConversionError(f"{where}: value {x} cannot be converted to type {dt.name} "
                                  "(NaN and inf have no integer value)")
        # as torch, a value beyond the range before its fraction is dropped is refused
        # (2147483647.5 for int32). The bounds in the source's own type: the minimum (a
        # power of two) exactly; the maximum may round up (to 2**63 in float64, to 2**31 in
        # float32), and is then itself out of range
        lo, hi = arr.dtype.type(info.min), arr.dtype.type(info.max)
        bad = (arr < lo) | ((arr > hi) if int(hi) == info.max else (arr >= hi))
    else:
        lo_ok = arr.min() >= info.min if arr.dtype.kind == "i" or info.min == 0 else True
        hi_ok = int(arr.max()) <= info.max
        bad = None if (lo_ok and hi_ok) else ((arr < info.min) | (arr > info.max))
    if bad is not None and bad.any():
        x = arr.reshape(-1)[int(np.argmax(bad.reshape(-1)))]
        raise ConversionError(f"{where}: value {x} cannot be converted to type {dt.name} without "
                              f"overflow (its range is {info.min} .. {info.max})")


def _numpy_owned(arr: np.ndarray) -> bool:
    """Whether ``arr``'s memory belongs to a NumPy array (so it lives as long as ``arr`` and
    nothing can shrink or unmap it): not a memmap, not a view of torch's or another
    library's buffer."""
    base = root(arr)
    return _BASE(base) is None and np.ndarray.flags.__get__(base).owndata and not isinstance(base, np.memmap)


# The arrays whose memory a tensor shares with its caller (by id, while they live): every
# other array behind a tensor is the tensor's own and is made read-only down to its root.
_caller_roots = weakref.WeakValueDictionary()


_BASE = np.ndarray.base.__get__  # NumPy's own attribute, whatever a subclass overrides


def root(arr: np.ndarray) -> np.ndarray:
    """The array that holds ``arr``'s memory (the end of its chain of ndarray bases)."""
    while isinstance(_BASE(arr), np.ndarray):
        arr = _BASE(arr)
    return arr


def is_callers(arr: np.ndarray) -> bool:
    """Whether ``arr``'s memory belongs to an array a caller handed to a tensor."""
    r = root(arr)
    return _caller_roots.get(id(r)) is r


def _remember_callers(arr: np.ndarray) -> None:
    r = root(arr)
    _caller_roots[id(r)] = r


def callers_view(arr: np.ndarray) -> np.ndarray | None:
    """A plain ndarray view of ``arr`` for a dense tensor that shares its memory
    (``sr.from_numpy``), or None when that memory is not NumPy's own (a memmap, another
    library's buffer: it could be unmapped or resized under the tensor; the caller
    copies then). The view keeps the tensor's shape and dtype whatever is later assigned
    to ``arr.shape``, and is a plain ndarray whatever subclass ``arr`` is (np.matrix's
    ``*`` is a matrix product; a subclass may report another shape than its buffer's);
    its root is remembered as the caller's (see :func:`is_callers`)."""
    if not _numpy_owned(arr):
        return None
    _remember_callers(arr)
    return np.ndarray.view(arr, np.ndarray)


def freeze(arr: np.ndarray) -> None:
    """Make an index array the tensor owns read-only down to the array that holds its
    memory (NumPy lets a view turn writing back on while its base is writable): indices
    reach the kernels, and a changed one could send them out of bounds. The owner itself
    may still turn writing on, so a tensor shows its index arrays only through
    :func:`read_only_window`."""
    while isinstance(arr, np.ndarray):
        arr.flags.writeable = False
        arr = arr.base


class _ReadOnlyWindow:
    """The memory of an array we keep writing to, shown through NumPy's array interface
    as read-only. An array made from it has this object as its base, which has no buffer
    to write through, so NumPy refuses to turn writing on for it or any view of it."""

    __slots__ = ("_arr", "_face")

    def __init__(self, arr: np.ndarray):
        self._arr = arr  # keeps the memory alive
        face = dict(arr.__array_interface__)
        face["data"] = (face["data"][0], True)
        self._face = tuple(face.items())

    @property
    def __array_interface__(self) -> dict:
        # a new dict on every read: changing the one you get (its read-only flag) changes
        # nothing here, so np.asarray(window) stays read-only
        return dict(self._face)


def read_only_window(arr: np.ndarray) -> np.ndarray:
    """A read-only array over ``arr``'s memory that nobody can make writable, while the
    holder of ``arr`` (kept private) can still write to it. How a tensor shows its index
    arrays (``indices()``, ``crow_indices()``, ...): :func:`freeze` alone leaves the array
    that owns the memory reachable as ``.base``, and NumPy lets its owner turn writing
    back on; a changed index would then reach a kernel. Also for arrays shown before all
    of them is written (a lazy result's row indices, ``_tensor._LaterRows``)."""
    out = np.asarray(_ReadOnlyWindow(arr))
    assert not out.flags.writeable
    return out


def own_values(values: np.ndarray):
    """``(view, shared)``: a read-only view of a tensor's values, and whether their memory
    is a caller's array (torch's ``from_numpy`` sharing). Values that are the tensor's own
    are made read-only down to their root as well, so nobody can turn writing back on;
    a caller's array keeps its flags."""
    shared = is_callers(values)
    if not shared:
        freeze(values)
    view = values.view()
    view.flags.writeable = False
    return view, shared

"""Dtypes and layouts, named as in torch.

A sparse_ref dtype *is* a NumPy dtype (``sr.float64 == np.dtype("float64")``), so arrays
move between the two without translation. ``dtype=`` arguments also take NumPy scalar
types and strings.

The two 16-bit floating types: ``float16`` is NumPy's own; ``bfloat16`` is the dtype of
the ``ml_dtypes`` package (the NumPy extension JAX uses), an optional dependency. Without
it ``bfloat16`` is None here and ``sr.bfloat16`` raises an error that says to install it.
NumPy reports bfloat16's kind as ``"V"``, so code asks :func:`kind` (``"f"`` for both)
and :func:`finfo`, never ``dt.kind`` or ``np.finfo``, where a half type may arrive.
"""

import numpy as np

try:
    import ml_dtypes as _ml_dtypes
except ImportError:  # optional: only sr.bfloat16 needs it
    _ml_dtypes = None

int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
complex64 = np.dtype(np.complex64)
complex128 = np.dtype(np.complex128)
float16 = np.dtype(np.float16)
bfloat16 = np.dtype(_ml_dtypes.bfloat16) if _ml_dtypes is not None else None

# The half types: values stored in 16 bits, every product computed in float32 and rounded
# once (see sparse_ref._precision).
HALF = (float16,) if bfloat16 is None else (float16, bfloat16)
HALF_SET = frozenset(HALF)
BFLOAT16_MISSING = ("sparse_ref.bfloat16 needs the ml_dtypes package (NumPy's bfloat16 dtype, as JAX "
                    "uses it): pip install ml_dtypes")

bool_ = np.dtype(np.bool_)  # dense tensors only: masks and the results of comparisons

SUPPORTED = (int32, int64, float32, float64, complex64, complex128, *HALF)
SUPPORTED_NAMES = ", ".join(d.name for d in SUPPORTED)

# torch's defaults: Python floats become float32, ints int64, complex numbers complex64.
default_dtype = float32


class Layout:
    """A storage layout: ``sr.strided`` (dense), ``sr.sparse_coo``, ``sr.sparse_csr``.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.ones(1, 1).layout, sr.ones(1, 1).to_sparse().layout
    (sparse_ref.strided, sparse_ref.sparse_coo)
    """

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"sparse_ref.{self.name}"


strided = Layout("strided")
sparse_coo = Layout("sparse_coo")
sparse_csr = Layout("sparse_csr")


def kind(dt: np.dtype) -> str:
    """``dt.kind``, except ``"f"`` for bfloat16 (which NumPy calls ``"V"``)."""
    return "f" if bfloat16 is not None and dt == bfloat16 else dt.kind


def is_half(dt: np.dtype) -> bool:
    """Whether ``dt`` is float16 or bfloat16 (a set look-up: every product asks it)."""
    return dt in HALF_SET


def finfo(dt: np.dtype):
    """``np.finfo`` for every floating dtype, bfloat16 included."""
    if bfloat16 is not None and dt == bfloat16:
        return _ml_dtypes.finfo(bfloat16)
    return np.finfo(dt)


def as_dtype(dtype, where: str = "dtype", dense: bool = False) -> np.dtype:
    """Turn a dtype-like (sr dtype, NumPy type, string) into a supported NumPy dtype
    (``bool`` too, for a dense tensor)."""
    if bfloat16 is None and getattr(dtype, "__name__", dtype) == "bfloat16":
        raise TypeError(f"{where}: {BFLOAT16_MISSING}")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{where}: {dtype!r} is not a dtype; use one of {SUPPORTED_NAMES}") from None
    if dense and dt == bool_:
        return dt
    if not dt.isnative and dt.newbyteorder("=") in SUPPORTED:
        raise TypeError(f"{where}: {describe(dt)} is not supported: sparse_ref stores numbers in this "
                        f"machine's byte order; use dtype={dt.newbyteorder('=').name}")
    if dt not in SUPPORTED:
        raise TypeError(f"{where}: sparse_ref does not support dtype {dt.name}; use one of {SUPPORTED_NAMES}")
    return dt


def natural_dtype(array: np.ndarray, from_python: bool, where: str, dense: bool = False) -> np.dtype:
    """The dtype a new tensor takes when ``dtype=None``.

    Data given as NumPy arrays or tensors keeps its dtype; Python numbers and lists follow
    torch: floats -> float32, ints -> int64, complex -> complex64.
    """
    k = kind(array.dtype)
    if not array.dtype.isnative and array.dtype.newbyteorder("=") in SUPPORTED:
        return array.dtype.newbyteorder("=")  # the same numbers, in this machine's byte order
    if k == "b":
        if dense:
            return bool_
        raise TypeError(f"{where}: bool values are not supported; use one of {SUPPORTED_NAMES}")
    if from_python:
        if k == "f":
            return float32
        if k == "c":
            return complex64
        if k in "iu":
            return int64
    return as_dtype(array.dtype, where, dense)


_TYPE_NAMES = {"float16": "HalfTensor", "bfloat16": "BFloat16Tensor", "float32": "FloatTensor",
               "float64": "DoubleTensor", "int32": "IntTensor",
               "int64": "LongTensor", "complex64": "ComplexFloatTensor",
               "complex128": "ComplexDoubleTensor", "bool": "BoolTensor"}


def tensor_type_name(dt: np.dtype) -> str:
    """torch's name of a dense tensor type ("FloatTensor" for float32)."""
    return _TYPE_NAMES[dt.name]


def repr_name(dt: np.dtype) -> str:
    return f"sparse_ref.{dt.name}"


def describe(dt: np.dtype) -> str:
    """A dtype's name that says its byte order when it is not this machine's
    ("big-endian float64 ('>f8')"), so two dtypes never read alike in a message."""
    if dt.isnative or dt.byteorder == "|":
        return dt.name
    order = "big" if dt.byteorder == ">" else "little"
    return f"{order}-endian {dt.name} ({dt.str!r})"

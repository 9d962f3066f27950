"""Every input check, in one module, before any kernel runs.

A kernel is only called with arrays that satisfy its documented preconditions (int64,
C-contiguous, indices in range), so no input can crash the process. Messages name the
argument, what was expected and what was given, in torch's words where torch has them.
"""

import warnings

import numpy as np

from sparse_ref import _dtypes
from sparse_ref._arrays import converted
from sparse_ref._errors import (  # noqa: F401  (re-exported: sparse_ref._validate.DTypeError etc.)
    ArgumentError,
    ArgumentTypeError,
    ConversionError,
    DTypeError,
    IndexRangeError,
    ShapeError,
)
from sparse_ref._tensor import SparseTensor, Tensor

INT64_MAX = int(np.iinfo(np.int64).max)
EXPECTED_2D = "expected a 2-D sparse matrix (sparse_dim=2, dense_dim=0)"


def torch_values(v, where: str) -> np.ndarray:
    """A CPU torch tensor's values as a NumPy array. NumPy has no bfloat16, and torch will
    not hand one over: its 16 bits go across as int16 and become ml_dtypes' bfloat16."""
    if str(v.dtype) == "torch.bfloat16":
        if _dtypes.bfloat16 is None:
            raise TypeError(f"{where}: {_dtypes.BFLOAT16_MISSING}")
        import torch  # (loaded already: v is one of its tensors)
        return v.resolve_neg().contiguous().view(torch.int16).numpy().view(_dtypes.bfloat16)
    return np.asarray(v.resolve_conj().resolve_neg().numpy())


def _as_array(data, where: str):
    """An ndarray view of array-likes, sr tensors and torch tensors; a flag says if it came
    from plain Python numbers (which take torch's default dtypes)."""
    if isinstance(data, Tensor):
        return data._data, False
    if isinstance(data, SparseTensor):
        raise TypeError(f"{where}: expected dense data, got a sparse tensor")
    if isinstance(data, np.ma.MaskedArray):
        raise TypeError(f"{where}: masked arrays are not supported (the mask would be ignored); "
                        "fill the masked entries (arr.filled(0)) or drop them (arr.compressed())")
    if isinstance(data, np.ndarray):
        return _numbers(data, where), False
    if isinstance(data, np.generic):  # a NumPy scalar keeps its dtype, as in torch
        return _numbers(np.asarray(data), where), False
    if type(data).__module__.startswith("torch"):
        return torch_values(data.detach().cpu(), where), False
    if isinstance(data, (list, tuple)):
        data = _one_element_tensors_as_numbers(data, where)
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{where}: cannot make an array of {type(data).__name__}: {exc}") from None
    except OverflowError as exc:
        raise ConversionError(f"{where}: {exc}") from None
    if arr.dtype == object:
        if _python_ints(arr):
            return arr, True  # integers beyond int64: `converted` takes them to a float dtype or refuses
        if arr.size and all(type(x) in (int, float) for x in arr.flat):  # [2**70, 1.5]: floats, as torch
            try:
                return arr.astype(np.float64), True
            except OverflowError:
                raise ConversionError(f"{where}: an integer in {type(data).__name__} is too large for a float") from None
        raise TypeError(f"{where}: expected numbers, got {type(data).__name__} of mixed or ragged entries")
    if arr.dtype.kind == "f" and arr.size and (np.abs(arr) >= 2.0 ** 63).any() and _int_leaves(data):
        # NumPy makes [2**63, 1] a float64 array; Python integers are integers (torch
        # refuses them, as sr.tensor([2**63]) is refused), not floats rounded in silence
        return np.array(data, dtype=object), True
    return _numbers(arr, where), True


def _int_leaves(data) -> bool:
    """Whether every leaf of a nested list or tuple is a Python int (not a bool)."""
    if isinstance(data, (list, tuple)):
        return all(_int_leaves(x) for x in data)
    return type(data) is int


def _numbers(arr: np.ndarray, where: str) -> np.ndarray:
    """``arr`` if it holds numbers (bool, integers, floats, complex, the half types);
    an object array of Python integers as int64 when they fit (else as it is, for
    ``converted`` to refuse or take to a float dtype). Strings, dates, objects: refused
    (NumPy would cast '1e39' to inf, or a date to its count of seconds, in silence)."""
    if arr.dtype == object:
        if _python_ints(arr):
            info = np.iinfo(np.int64)
            return arr.astype(np.int64) if all(info.min <= v <= info.max for v in arr.flat) else arr
        if arr.size == 0:
            return arr.astype(np.float64)
        raise TypeError(f"{where}: expected numbers, got an object array (of {type(arr.flat[0]).__name__}, ...)")
    if _dtypes.kind(arr.dtype) not in "biufc":
        raise TypeError(f"{where}: expected numbers, got an array of dtype {arr.dtype.name} "
                        f"({'strings' if arr.dtype.kind in 'US' else 'dates or times' if arr.dtype.kind in 'mM' else 'not numbers'})")
    return arr


def _one_element_tensors_as_numbers(data, where: str):
    """A list (or tuple) with each one-element tensor among its leaves replaced by its value
    as a Python number, as torch reads ``[t0, t1]`` (exact: a Python int or float holds
    any int64 or float value); the dtype is inferred from the leaves (``_leaf_dtype``). A
    tensor of several elements in a list is refused, as torch refuses it."""
    if isinstance(data, (list, tuple)):
        return [_one_element_tensors_as_numbers(x, where) for x in data]
    if isinstance(data, Tensor):
        if data._data.size != 1:
            raise ArgumentError(f"{where}: only one element tensors can be converted to Python scalars "
                             f"(a list holds a tensor of shape {tuple(data.shape)}); join tensors "
                             "with sr.stack or sr.cat")
        return data._data.reshape(()).item()
    return data


def target_dtype(arr: np.ndarray, from_python: bool, dtype, where: str, dense: bool = False) -> np.dtype:
    """The dtype a new tensor takes: ``dtype`` if given, else the data's natural one
    (``bool`` only for a dense tensor)."""
    if dtype is not None:
        return _dtypes.as_dtype(dtype, where, dense)
    if arr.dtype == object:  # Python integers beyond int64, torch's dtype for Python ints
        big = next(x for x in arr.flat if not -2**63 <= x < 2**63)
        raise ConversionError(f"{where}: value {big} does not fit in int64, the dtype of Python "
                              "integers; pass dtype=float64 to store it as a float")
    return _dtypes.natural_dtype(arr, from_python, where, dense)


def _python_ints(arr: np.ndarray) -> bool:
    return arr.size > 0 and all(type(x) is int for x in arr.flat)


def numpy_to_share(data, where: str) -> np.ndarray:
    """``data`` as a plain ndarray view when a dense tensor can share it (``from_numpy``):
    an ndarray of a supported dtype (or bool) in this machine's byte order, no negative
    stride; torch's messages otherwise."""
    if isinstance(data, np.ma.MaskedArray):
        _as_array(data, where)  # its message: the mask would be ignored
    if not isinstance(data, np.ndarray):
        kind = type(data).__name__ if type(data).__module__ == "builtins" else \
            f"{type(data).__module__.split('.')[0]}.{type(data).__name__}"
        raise TypeError(f"{where}: expected np.ndarray (got {kind})")
    data = np.ndarray.view(data, np.ndarray)  # a subclass's own shape, dtype or strides do not count
    native = data.dtype.newbyteorder("=") if data.dtype.byteorder in "<>" else data.dtype
    if native not in _dtypes.SUPPORTED and native != np.bool_ or data.dtype.hasobject:
        name = data.dtype.type.__name__
        raise TypeError(f"{where}: can't convert np.ndarray of type numpy.{name}. The only supported "
                        f"types are: {_dtypes.SUPPORTED_NAMES}, and bool.")
    # (torch raises ValueError for these two, not RuntimeError: the same class here)
    if not data.dtype.isnative:
        raise ValueError(f"{where}: given numpy array has byte order different from the native byte "
                         "order. Conversion between byte orders is currently not supported.")
    if any(st < 0 for st in data.strides):
        raise ValueError(f"{where}: At least one stride in the given numpy array is negative, and "
                         "tensors with negative strides are not currently supported. (You can "
                         "probably work around this by making a copy of your array with array.copy().)")
    return data


# torch's dtype for a list: each leaf's own (a Python float the default float32, an int
# int64, a complex complex64; a NumPy scalar or array, or a tensor, its dtype), promoted as
# torch promotes: the higher kind wins (bool < int < float < complex), the wider within a
# kind, float16 with bfloat16 gives float32, and a complex is as wide as the widest float.
_KIND_RANK = {"b": 0, "i": 1, "u": 1, "f": 2, "c": 3}


def _promoted(a: np.dtype, b: np.dtype) -> np.dtype:
    ka, kb = _KIND_RANK[_dtypes.kind(a)], _KIND_RANK[_dtypes.kind(b)]
    if ka != kb:
        high, low = (a, b) if ka > kb else (b, a)
        if _dtypes.kind(high) == "c" and _dtypes.kind(low) == "f" and low == np.float64:
            return np.dtype(np.complex128)
        return high
    if a == b:
        return a
    if {a, b} == {np.dtype(np.float16), _dtypes.bfloat16}:
        return np.dtype(np.float32)
    return a if a.itemsize > b.itemsize else b


def _leaf_dtype(data):
    """The dtype torch infers for a list or tuple that holds a NumPy scalar or array, or a
    tensor, among its leaves (see _promoted), or None: only Python numbers (whose dtypes
    ``natural_dtype`` gives), or a dtype sparse_ref lacks (its message comes later)."""
    found, seen = [], False
    for x in _leaves(data):
        if isinstance(x, (np.ndarray, np.generic, Tensor)):
            seen = True
            found.append(np.dtype(x.dtype))
        elif isinstance(x, bool):
            found.append(np.dtype(np.bool_))
        elif isinstance(x, int):
            found.append(np.dtype(np.int64))
        elif isinstance(x, float):
            found.append(_dtypes.default_dtype)
        elif isinstance(x, complex):
            found.append(np.dtype(np.complex64))
        elif type(x).__module__.startswith("torch"):
            seen = True
            found.append(np.asarray(x.detach().cpu().numpy()).dtype)
    if not seen or not found:
        return None
    if any(d not in _dtypes.SUPPORTED and d != np.bool_ for d in found):
        return None
    out = found[0]
    for d in found[1:]:
        out = _promoted(out, d)
    return out


def dense_data(data, dtype, where: str) -> np.ndarray:
    """A private, writable ndarray for a new dense tensor (never the caller's memory)."""
    arr, from_python = _as_array(data, where)
    dt = target_dtype(arr, from_python, dtype, where, dense=True)
    if from_python and dtype is None:
        dt = _leaf_dtype(data) or dt
    if from_python and dt.kind in "iub" and _float_tensor_leaf(data):
        # torch reads a tensor in a list of an integer dtype through __index__
        raise TypeError(f"{where}: only integer tensors of a single element can be converted to an index")
    return converted(arr, dt, where)


def _float_tensor_leaf(data) -> bool:
    return any(isinstance(x, Tensor) and x._data.dtype.kind not in "iub" for x in _leaves(data))


def _leaves(data):
    """The leaves of nested lists and tuples, in order (``data`` itself if it is neither)."""
    if isinstance(data, (list, tuple)):
        for x in data:
            yield from _leaves(x)
    else:
        yield data


def size_arg(size, where: str) -> tuple:
    """A shape given as ints or as one tuple/list, each a non-negative int."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for n in size:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"{where}: size must be ints, got {size!r}")
        if n < 0:
            raise ArgumentError(f"{where}: size must be non-negative, got {tuple(size)!r}")
        if n > INT64_MAX:
            raise ArgumentError(f"{where}: size {n} does not fit in int64, got {tuple(size)!r}")
    return tuple(int(n) for n in size)


def sparse_shape(size, where: str) -> tuple:
    if not isinstance(size, (tuple, list)) and not hasattr(size, "__len__"):
        raise TypeError(f"{where}: size must be a pair (nrows, ncols), got {size!r}")
    size = tuple(size)
    if len(size) != 2:
        raise ArgumentError(f"{where}: {EXPECTED_2D}, got size {size!r} with {len(size)} dims")
    return size_arg(size, where)


def coo_shape(size, sparse_dim: int, values_shape: tuple, where: str = "sparse_coo_tensor") -> tuple:
    """The size of a COO tensor: ``sparse_dim`` sparse sizes, then the dense sizes, which
    must be the values' block shape (torch's messages)."""
    if not isinstance(size, (tuple, list)) and not hasattr(size, "__len__"):
        raise TypeError(f"{where}: size must be a sequence of ints (sparse sizes, then dense sizes), "
                        f"got {size!r}")
    size = size_arg(tuple(size), where)
    dense_dim = len(values_shape) - 1
    if len(size) != sparse_dim + dense_dim:
        raise ArgumentError(f"{where}: 'len(size) == sparse_dim + dense_dim' is not satisfied: len(size) = "
                         f"{len(size)}, sparse_dim = {sparse_dim}, dense_dim = {dense_dim}")
    if size[sparse_dim:] != tuple(values_shape[1:]):
        raise ArgumentError(f"{where}: values has incorrect size, expected {[values_shape[0], *size[sparse_dim:]]}, "
                         f"got {list(values_shape)}")
    return size


def coo_indices(indices, where: str = "sparse_coo_tensor") -> np.ndarray:
    """A read-only, C-contiguous int64 (sparse_dim, nnz) copy of COO indices, sparse_dim >= 1."""
    arr, from_python = _as_array(indices, where)
    if from_python and arr.size == 0:
        arr = arr.astype(np.int64)  # [[], []]: no entries, no dtype to infer
    if arr.dtype == object:  # Python integers beyond int64
        raise IndexRangeError(f"{where}: index {max(arr.flat, key=abs)} does not fit in int64")
    if arr.dtype.kind not in "iu":
        raise DTypeError(f"{where}: indices must be an integer array, got dtype {arr.dtype.name}")
    if arr.ndim != 2:
        raise ArgumentError(f"{where}: indices must be sparse_dim x nnz, but got: {list(arr.shape)} "
                         "(one row of indices per sparse dimension)")
    if arr.shape[0] == 0:
        raise ArgumentError(f"{where}: indices of shape {arr.shape} have sparse_dim 0; sparse_ref needs "
                         "sparse_dim >= 1 (a tensor with no sparse dimension is a dense one: sr.tensor)")
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise IndexRangeError(f"{where}: index {arr.max()} does not fit in int64")
    out = np.array(arr, dtype=np.int64, copy=True, order="C")
    out.flags.writeable = False
    return out


def coo_values(values, nnz: int, dtype, where: str = "sparse_coo_tensor", blocks: bool = True) -> np.ndarray:
    """A read-only copy of the values: shape (nnz, *dense_sizes) (``blocks``), else (nnz,)."""
    arr, from_python = _as_array(values, where)
    if not blocks and arr.ndim != 1:
        raise ArgumentError(
            f"{where}: {EXPECTED_2D}, got values of shape {arr.shape} "
            f"(dense_dim={max(arr.ndim - 1, 0)}); values must be 1-D with one value per entry"
        )
    if arr.ndim == 0:
        raise ArgumentError(f"{where}: values must have shape (nnz, *dense_sizes), one value or block per "
                         "entry; got a 0-d array")
    if arr.shape[0] != nnz:
        raise ArgumentError(
            f"{where}: indices and values must have the same number of entries (nnz), "
            f"got {nnz} indices and {arr.shape[0]} values"
        )
    dt = target_dtype(arr, from_python, dtype, where)
    if from_python and dtype is None:
        dt = _leaf_dtype(values) or dt
        if dt == np.bool_:
            dt = target_dtype(arr, from_python, dtype, where)  # its message: no bool values
    out = converted(arr, dt, where)
    out.flags.writeable = False
    return out


def coalesced_flag(is_coalesced, where: str = "sparse_coo_tensor") -> bool:
    """``is_coalesced`` must be None, True or False (a string such as 'no' is an error, not
    a truthy claim)."""
    if is_coalesced is None:
        return False
    if not isinstance(is_coalesced, (bool, np.bool_)):
        raise TypeError(f"{where}: is_coalesced must be a bool or None, got {is_coalesced!r}")
    return bool(is_coalesced)


def index_bounds(indices: np.ndarray, shape: tuple, where: str = "sparse_coo_tensor") -> None:
    """Reject negative and out-of-range indices (two vectorised passes: every dimension's
    least and largest index)."""
    if indices.shape[1] == 0:
        return
    lows, highs = indices.min(axis=1), indices.max(axis=1)
    for dim in range(indices.shape[0]):
        lo, hi = lows[dim], highs[dim]
        if lo < 0:
            raise IndexRangeError(f"{where}: found negative index {lo} for dim {dim} (size {shape[dim]})")
        if hi >= shape[dim]:
            raise IndexRangeError(
                f"{where}: size is inconsistent with indices: for dim {dim}, "
                f"size is {shape[dim]} but found index {hi}"
            )


def inferred_shape(indices: np.ndarray, dense_sizes: tuple = ()) -> tuple:
    """max index + 1 in every sparse dim (0 when nothing is stored), then the dense sizes."""
    if indices.shape[1] == 0:
        return (0,) * indices.shape[0] + tuple(dense_sizes)
    if indices.min() < 0:
        dim = int(np.argmin(indices.min(axis=1)))
        raise IndexRangeError(f"sparse_coo_tensor: found negative index {indices[dim].min()} for dim {dim}")
    shape = tuple(int(m) + 1 for m in indices.max(axis=1))
    for dim, n in enumerate(shape):
        if n > INT64_MAX:
            raise IndexRangeError(f"sparse_coo_tensor: index {n - 1} for dim {dim} leaves no size that fits "
                             f"in int64 (the largest size is {INT64_MAX}); give size= explicitly")
    return shape + tuple(dense_sizes)


def coalesced_claim(indices: np.ndarray, where: str = "sparse_coo_tensor") -> None:
    """``is_coalesced=True`` is checked, not trusted: kernels rely on it. The index tuples
    must ascend strictly in lexicographic order (row-major for a matrix)."""
    n = indices.shape[1]
    if n < 2:
        return
    decided = np.zeros(n - 1, dtype=bool)  # the first differing index decides each pair
    ok = np.zeros(n - 1, dtype=bool)
    for dim in range(indices.shape[0]):
        step = np.diff(indices[dim])
        ok |= ~decided & (step > 0)
        decided |= step != 0
    if not ok.all():
        p = int(np.argmin(ok)) + 1
        here, before = tuple(indices[:, p].tolist()), tuple(indices[:, p - 1].tolist())
        raise ArgumentError(
            f"{where}: is_coalesced=True but the indices are not sorted row-major and unique "
            f"(entry {p} at {here} follows {before}); leave is_coalesced unset and call .coalesce()"
        )


def sparse_dim_arg(sparse_dim, ndim: int, where: str = "to_sparse") -> int:
    """``Tensor.to_sparse(sparse_dim)``: None means every dim; else in [1, ndim] (torch's
    messages; torch's sparse_dim 0 of a 0-d tensor is refused: sparse_ref needs S >= 1)."""
    if ndim == 0:
        raise ArgumentError(f"{where}: a 0-d tensor has no dimension to make sparse (sparse_ref's sparse "
                         "tensors have sparse_dim >= 1)")
    if sparse_dim is None:
        return ndim
    if isinstance(sparse_dim, (bool, np.bool_)) or not isinstance(sparse_dim, (int, np.integer)):
        raise TypeError(f"{where}: sparse_dim must be an int, got {sparse_dim!r}")
    if not 0 <= sparse_dim <= ndim:
        raise ArgumentError(f"dense_to_sparse: sparse_dim argument must be in [0,{ndim}] range, but "
                         f"{sparse_dim} is given")
    if sparse_dim == 0:
        raise ArgumentError("dense_to_sparse: sparse_dim argument must be in >0 when self.dim()>0")
    return int(sparse_dim)


def sparse_layout(t, name: str, where: str, sparse_dims: tuple = (2,)) -> None:
    """The one check of every op that needs a sparse matrix (products, ``t``, CSR,
    arithmetic, sums over a dim, softmax): sparse_dim 2 (or one of ``sparse_dims``) and
    dense_dim 0. A hybrid tensor (dense_dim > 0) and a tensor of more sparse dims are
    refused by the rule they break, before any kernel runs."""
    if t.sparse_dim() not in sparse_dims or t.dense_dim() != 0:
        want = " or ".join(str(d) for d in sparse_dims) if len(sparse_dims) < 3 else \
            ", ".join(str(d) for d in sparse_dims[:-1]) + f" or {sparse_dims[-1]}"
        needs = "a 2-D sparse matrix" if sparse_dims == (2,) else f"one value per entry of a sparse_dim {want} tensor"
        raise ArgumentError(f"{where}: {name} must have sparse_dim {want} and dense_dim 0, got sparse_dim "
                            f"{t.sparse_dim()} and dense_dim {t.dense_dim()} ({where} needs {needs})")


# -- products ---------------------------------------------------------------------------------

REDUCE_ALIASES = {None: "sum", "sum": "sum", "mean": "mean", "amax": "amax", "amin": "amin",
                  "max": "amax", "min": "amin"}
FLOATING = "fc"


def _elsewhere(t) -> str:
    """A pointer for an operand of the distributed kind (sparse_ref.distributed, a layer
    above this one: known here by its name only)."""
    return ("; for a distributed matrix use the ops of sparse_ref.distributed (srd.mm, srd.sampled_addmm), "
            "or .gather() it" if type(t).__name__ == "DistSparse" else "")


def _operand(t, name: str, where: str, sparse=SparseTensor):
    if not isinstance(t, (sparse, Tensor)):
        raise TypeError(f"{where}: {name} must be a sparse_ref Tensor or SparseTensor, got {type(t).__name__}"
                        + _elsewhere(t))
    if isinstance(t, SparseTensor):
        sparse_layout(t, name, where)
    dt = t._data.dtype if isinstance(t, Tensor) else t._val.dtype if isinstance(t, SparseTensor) else t.dtype
    if dt.kind == "b":  # (a bool sparse tensor from to_sparse() reached the kernels: "No matching signature";
        # the arrays' dtype, not the property: a hot path)
        raise DTypeError(f"{where}: {name} is bool; the products take int32, int64, float and complex values: "
                         "convert first, e.g. x.long() or x.float()")
    if t.ndim != 2:
        hint = "; batches of matrices (3-D) multiply with sr.bmm or sr.sparse.mm" if t.ndim == 3 else ""
        raise ArgumentError(f"{where}: {name} must be a 2-D matrix, got a {t.ndim}-D tensor of shape "
                            f"{tuple(t.shape)}{hint}")
    return t


def _same_dtype(pairs, where: str):
    (first_name, first), *rest = pairs
    for name, t in rest:
        if t.dtype != first.dtype:
            _dtype_mismatch(first_name, first, name, t, where)


def _dtype_mismatch(first_name: str, first, name: str, t, where: str):
    raise DTypeError(
        f"{where}: {first_name} dtype {_dtypes.describe(first.dtype)} does not match {name} "
        f"dtype {_dtypes.describe(t.dtype)}; sparse_ref does not promote dtypes, so give both the same dtype"
    )


def _shapes_multiply(mat1, mat2, where: str):
    if mat1.shape[1] != mat2.shape[0]:
        raise ShapeError(
            f"{where}: mat1 and mat2 shapes cannot be multiplied "
            f"({mat1.shape[0]}x{mat1.shape[1]} and {mat2.shape[0]}x{mat2.shape[1]})"
        )


def reduce_arg(reduce, dtype, where: str) -> str:
    if reduce is None:  # the common case, asked on every product
        return "sum"
    if reduce == "prod":
        raise ArgumentError(f"{where}: reduce='prod' is not supported (torch.sparse.mm rejects it too); "
                         "use 'sum', 'mean', 'amax' or 'amin'")
    if not isinstance(reduce, (str, type(None))) or reduce not in REDUCE_ALIASES:
        raise ArgumentError(f"{where}: reduce argument must be either sum, prod, mean, amax or amin, got {reduce}")
    op = REDUCE_ALIASES[reduce]
    if op in ("amax", "amin") and dtype.kind == "c":
        raise DTypeError(f"{where}: reduce='{op}' needs ordered values; complex dtype {dtype.name} has no order")
    if op == "mean" and _dtypes.kind(dtype) not in FLOATING:
        raise DTypeError(f"{where}: reduce='mean' needs a floating or complex dtype, got {dtype.name}")
    return op


def mm_operands(mat1, mat2, reduce, where: str = "mm", sparse=SparseTensor) -> str:
    """Check the operands of ``sparse.mm``; return the reduction's canonical name.
    ``sparse``: the class (or classes) of sparse operand accepted (``sparse_ref.distributed``
    adds its own)."""
    _operand(mat1, "mat1", where, sparse)
    _operand(mat2, "mat2", where, sparse)
    _shapes_multiply(mat1, mat2, where)
    if mat1.dtype is not mat2.dtype and mat1.dtype != mat2.dtype:
        _dtype_mismatch("mat1", mat1, "mat2", mat2, where)
    if reduce is not None and not (isinstance(mat1, sparse) and not isinstance(mat2, sparse)):
        raise ArgumentError(f"{where}: reduce={reduce!r} needs a sparse mat1 and a dense mat2, got "
                         f"{mat1.layout!r} and {mat2.layout!r}")
    if isinstance(mat1, sparse) and isinstance(mat2, sparse) and _dtypes.kind(mat1.dtype) not in FLOATING:
        raise DTypeError(f"{where}: sparse x sparse needs float16, bfloat16, float32, float64, complex64 or complex128, "
                        f"got {mat1.dtype.name}")
    return reduce_arg(reduce, mat1.dtype, where)


def plain_sparse_dense(mat1, mat2) -> bool:
    """True when ``mm(mat1, mat2)`` is the commonest product and certainly valid: a 2-D COO
    matrix (one value per entry) times a 2-D dense matrix of the same dtype whose rows match
    its columns. A quick accept for small calls, which otherwise spend half their time in
    checks; False means only "ask :func:`mm_operands`", which names any problem.
    ``tests/test_validate_fast.py`` checks that every True here passes those checks."""
    if type(mat1) is not SparseTensor or type(mat2) is not Tensor:
        return False
    data = mat2._data
    return (mat1.sparse_dim() == 2 and mat1._val.ndim == 1 and data.ndim == 2
            and mat1._shape[1] == data.shape[0] and mat1._val.dtype is data.dtype)


def max_nnz_arg(max_nnz, both_sparse: bool, where: str):
    if max_nnz is None:
        return None
    if not both_sparse:
        raise ArgumentError(f"{where}: max_nnz is for a product of two sparse operands")
    if isinstance(max_nnz, bool) or not isinstance(max_nnz, (int, np.integer)) or max_nnz < 0:
        raise TypeError(f"{where}: max_nnz must be a non-negative int, got {max_nnz!r}")
    return int(max_nnz)


def _scalar(x, name: str, dtype, where: str):
    if isinstance(x, bool) or not isinstance(x, (int, float, complex, np.number)):
        raise TypeError(f"{where}: {name} must be a number, got {type(x).__name__}")
    if isinstance(x, (complex, np.complexfloating)) and dtype.kind != "c":
        raise DTypeError(f"{where}: a complex {name} needs complex operands, got {dtype.name}")
    if dtype.kind in "iu" and isinstance(x, (float, np.floating)):
        if not np.isfinite(x):
            raise ConversionError(f"{where}: {name}={x} has no integer value; integer operands "
                                  f"({dtype.name}) need a whole-number {name}")
        if x != int(x):
            raise DTypeError(f"{where}: a fractional {name} needs floating operands, got {dtype.name}")
    if dtype.kind in "iu" and isinstance(x, (int, float, np.integer, np.floating)):
        info = np.iinfo(dtype)
        if not info.min <= int(x) <= info.max:
            raise ConversionError(f"{where}: {name}={x} does not fit in the operands' dtype "
                                  f"{dtype.name} (range {info.min} .. {info.max})")
    elif dtype.kind not in "iu":  # float or complex operands: a finite scalar that would
        if _dtypes.is_half(dtype):  # become inf there is refused (half operands: in float32,
            dtype = np.dtype(np.float32)  # where their products are scaled, as scalar_operand)
        try:
            converted(np.asarray(x), dtype, f"{where}: {name}")
        except OverflowError:  # a Python int beyond float64
            raise ConversionError(f"{where}: {name}={x} cannot be converted to type {dtype.name} "
                                  "without overflow (it would become inf)") from None


def addmm_operands(mat, mat1, mat2, beta, alpha, where: str = "addmm") -> None:
    if not isinstance(mat1, SparseTensor):
        raise ArgumentTypeError(f"{where}: mat1 must be a sparse matrix, got {type(mat1).__name__}")
    if not isinstance(mat2, Tensor):
        raise ArgumentTypeError(f"{where}: mat2 must be a dense Tensor, got {type(mat2).__name__}")
    if not isinstance(mat, Tensor):
        raise ArgumentTypeError(f"{where}: mat must be a dense Tensor, got {type(mat).__name__}")
    _operand(mat1, "mat1", where)
    _operand(mat2, "mat2", where)
    _shapes_multiply(mat1, mat2, where)
    _same_dtype([("mat", mat), ("mat1", mat1), ("mat2", mat2)], where)
    out_shape = (mat1.shape[0], mat2.shape[1])
    try:
        shape = np.broadcast_shapes(mat.shape, out_shape)
    except ValueError:
        shape = None
    if shape != out_shape:
        raise ArgumentError(f"{where}: mat of shape {tuple(mat.shape)} does not broadcast to the "
                         f"product's shape {out_shape}")
    _scalar(beta, "beta", mat1.dtype, where)
    _scalar(alpha, "alpha", mat1.dtype, where)


def sampled_addmm_operands(input, mat1, mat2, beta, alpha, where: str = "sampled_addmm",
                           sparse=SparseTensor) -> None:
    if not isinstance(input, sparse):
        if isinstance(input, SparseTensor):  # a local one, where sparse_ref.distributed wants its own
            raise ArgumentTypeError(f"{where}: input must be distributed (sparse_ref.distributed.from_sparse), "
                                    "got a local SparseTensor; for local operands use sr.sparse.sampled_addmm")
        raise ArgumentTypeError(f"{where}: input must be a sparse matrix (its pattern is sampled), "
                                f"got {type(input).__name__}" + _elsewhere(input))
    if isinstance(input, SparseTensor):
        sparse_layout(input, "input", where)
    for name, t in (("mat1", mat1), ("mat2", mat2)):
        if not isinstance(t, Tensor):
            raise ArgumentTypeError(f"{where}: {name} must be a dense Tensor (strided layout), got "
                                    f"{type(t).__name__}")
        if t.ndim == 3 and input.ndim == 2:
            raise ArgumentError(f"{where}: a 2-D input is not broadcast over a batch of 3-D mat1 and mat2 "
                                f"({name} has shape {tuple(t.shape)}), as torch's is; give input one matrix "
                                "per batch (a 3-D sparse tensor)")
        _operand(t, name, where)
    _shapes_multiply(mat1, mat2, where)
    if input.shape != (mat1.shape[0], mat2.shape[1]):
        raise ShapeError(f"{where}: input of shape {input.shape} does not match the product's shape "
                         f"({mat1.shape[0]}, {mat2.shape[1]})")
    _same_dtype([("input", input), ("mat1", mat1), ("mat2", mat2)], where)
    if _dtypes.kind(input.dtype) not in FLOATING:
        raise DTypeError(f"{where}: needs float32, float64, complex64 or complex128, got {input.dtype.name}")
    _scalar(beta, "beta", input.dtype, where)
    _scalar(alpha, "alpha", input.dtype, where)


# -- batched (3-D) products ---------------------------------------------------------------
# A batch runs as one block-diagonal 2-D product (sparse_ref.autograd.batched_ops), so
# besides torch.bmm's checks, B*m, B*n and B*p must fit in int64.

def is_batch(t) -> bool:
    """A batch of sparse matrices: a sparse tensor with 3 sparse dims (batch, row, column)
    and one value per entry. A product with one runs batched (and checks its partner with
    ``bmm_operands``); any other layout, a hybrid tensor included, meets the matrix rule
    (:func:`sparse_layout`) in the 2-D checks."""
    # the number of dims first: the cheap answer for every matrix (asked on every product)
    return isinstance(t, SparseTensor) and len(t.shape) == 3 and t.sparse_dim() == 3 and t.dense_dim() == 0


def _batch_operand(t, name: str, where: str) -> None:
    """A batch of matrices: dense 3-D, or sparse COO with 3 sparse dims and no dense dim
    (torch's messages)."""
    if isinstance(t, SparseTensor):
        if t.is_sparse_csr:
            raise ArgumentTypeError(f"{where}: {name} is a sparse CSR matrix; a batch of sparse matrices is "
                                    "a 3-D sparse COO tensor (indices of (batch, row, column))")
        if t.sparse_dim() != 3:
            raise ArgumentError(f"{where}: Tensor '{name}' must have 3 sparse dims, but has {t.sparse_dim()}")
        if t.dense_dim() != 0:
            raise ArgumentError(f"{where}: Tensor '{name}' must have 0 dense dims, but has {t.dense_dim()}")
    elif isinstance(t, Tensor):
        if t.ndim != 3:
            raise ArgumentError(f"{where}: Tensor '{name}' must have 3 dims, but has {t.ndim}")
    else:
        raise TypeError(f"{where}: {name} must be a sparse_ref Tensor or SparseTensor, got {type(t).__name__}"
                        + _elsewhere(t))


def block_diagonal_sizes(batches: int, sizes, where: str) -> None:
    """Refuse a batch whose block-diagonal matrix could not be numbered in int64: each of
    ``batches * size`` (B*m, B*n, B*p) must fit."""
    for n in sizes:
        if batches * n > INT64_MAX:
            raise ArgumentError(f"{where}: a batch of {batches} matrices with a dimension of size {n} runs as one "
                             f"block-diagonal matrix with {batches * n} rows or columns, more than int64 can "
                             f"number ({INT64_MAX}); split the batch")


def bmm_operands(mat1, mat2, reduce, where: str = "bmm", names=("self", "mat2")) -> str:
    """The operands of a batched product ``mat1 @ mat2`` (``bmm``, ``sparse.mm`` and ``@``
    with 3-D operands): (B, m, n) and (B, n, p), sparse or dense, one dtype. Returns the
    reduction's canonical name (only for sparse x dense). ``names``: the operands' names
    in messages (torch.bmm's are self and mat2)."""
    one, two = names
    _batch_operand(mat1, one, where)
    _batch_operand(mat2, two, where)
    if mat1.shape[0] != mat2.shape[0]:
        raise ShapeError(f"{where}: '{one}.size(0)' and '{two}.size(0)' must match (the batch sizes are "
                         f"{mat1.shape[0]} and {mat2.shape[0]})")
    if mat1.shape[2] != mat2.shape[1]:
        raise ShapeError(f"{where}: '{one}.size(2)' and '{two}.size(1)' must match (shapes {list(mat1.shape)} "
                         f"and {list(mat2.shape)})")
    _same_dtype([(one, mat1), (two, mat2)], where)
    sparse1, sparse2 = isinstance(mat1, SparseTensor), isinstance(mat2, SparseTensor)
    if reduce is not None and not (sparse1 and not sparse2):
        raise ArgumentError(f"{where}: reduce={reduce!r} needs a sparse mat1 and a dense mat2, got "
                            f"{mat1.layout!r} and {mat2.layout!r}")
    if sparse1 and sparse2 and _dtypes.kind(mat1.dtype) not in FLOATING:
        raise DTypeError(f"{where}: sparse x sparse needs float16, bfloat16, float32, float64, complex64 or complex128, "
                        f"got {mat1.dtype.name}")
    batches, m, n = mat1.shape
    block_diagonal_sizes(batches, (m, n, mat2.shape[2]), where)
    return reduce_arg(reduce, mat1.dtype, where)


def batched_sampled_addmm_operands(input, mat1, mat2, beta, alpha, where: str = "sampled_addmm") -> None:
    """``sampled_addmm`` of a batch: a 3-D sparse ``input`` (B, m, p) and dense mat1
    (B, m, k) and mat2 (B, k, p) (torch takes a batch of CSR matrices there)."""
    if not isinstance(input, SparseTensor):
        raise ArgumentTypeError(f"{where}: input must be a sparse tensor (its pattern is sampled), "
                                f"got {type(input).__name__}")
    _batch_operand(input, "input", where)
    for name, t in (("mat1", mat1), ("mat2", mat2)):
        if not isinstance(t, Tensor):
            raise ArgumentTypeError(f"{where}: {name} must be a dense Tensor (strided layout), got "
                                    f"{type(t).__name__}")
        if t.ndim != 3:
            raise ArgumentError(f"{where}: a 3-D (batched) input needs 3-D mat1 and mat2, got {name} of shape "
                                f"{tuple(t.shape)}")
    if mat1.shape[0] != mat2.shape[0]:
        raise ShapeError(f"{where}: Expected mat1 and mat2 to have the same batch size, but got "
                         f"[{mat1.shape[0]}] and [{mat2.shape[0]}]")
    if mat1.shape[2] != mat2.shape[1]:
        raise ShapeError(f"{where}: mat1 and mat2 shapes cannot be multiplied "
                         f"({mat1.shape[1]}x{mat1.shape[2]} and {mat2.shape[1]}x{mat2.shape[2]})")
    product = (mat1.shape[0], mat1.shape[1], mat2.shape[2])
    if input.shape != product:
        raise ShapeError(f"{where}: input of shape {input.shape} does not match the product's shape {product}")
    _same_dtype([("input", input), ("mat1", mat1), ("mat2", mat2)], where)
    if _dtypes.kind(input.dtype) not in FLOATING:
        raise DTypeError(f"{where}: needs float32, float64, complex64 or complex128, got {input.dtype.name}")
    block_diagonal_sizes(product[0], product[1:], where)
    _scalar(beta, "beta", input.dtype, where)
    _scalar(alpha, "alpha", input.dtype, where)


# -- CSR ----------------------------------------------------------------------------------

def _index_vector(data, name: str, where: str) -> np.ndarray:
    """A private, read-only 1-D int64 copy: the tensor owns its index arrays, so no later
    change to the caller's array can send a kernel out of bounds."""
    arr, from_python = _as_array(data, where)
    if from_python and arr.size == 0:
        arr = arr.astype(np.int64)
    if arr.dtype == object:  # Python integers beyond int64
        raise IndexRangeError(f"{where}: {name} holds {max(arr.flat, key=abs)}, which does not fit in int64")
    if arr.dtype.kind not in "iu":
        raise DTypeError(f"{where}: {name} must be an integer array, got dtype {arr.dtype.name}")
    if arr.ndim != 1:
        raise ArgumentError(f"{where}: {EXPECTED_2D}: {name} must be 1-D, got shape {arr.shape}")
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise IndexRangeError(f"{where}: {name} holds {arr.max()}, which does not fit in int64")
    out = np.array(arr, dtype=np.int64, copy=True, order="C")
    out.flags.writeable = False
    return out


def unsorted_position(crow: np.ndarray, col: np.ndarray):
    """The first position q whose column is not above the previous one in its row (a CSR
    matrix that is not sorted and unique), or None. ``crow`` must be valid already."""
    nnz = col.shape[0]
    if nnz <= 1:
        return None
    starts = np.zeros(nnz, dtype=bool)
    starts[crow[:-1][crow[:-1] < nnz]] = True
    bad = ~starts[1:] & (np.diff(col) <= 0)
    return int(np.argmax(bad)) + 1 if bad.any() else None


def csr_arrays(crow_indices, col_indices, values, size, dtype, check_invariants: bool,
               where: str = "sparse_csr_tensor"):
    """Checked ``(crow, col, values, shape)`` of a CSR matrix (see ``sparse_csr_tensor``)."""
    crow = _index_vector(crow_indices, "crow_indices", where)
    col = _index_vector(col_indices, "col_indices", where)
    nnz = col.shape[0]
    val = coo_values(values, nnz, dtype, where, blocks=False)  # a copy, as COO's (and torch's)
    if crow.shape[0] == 0:
        raise ArgumentError(f"{where}: crow_indices must have nrows + 1 entries (at least 1), got 0")
    if crow[0] != 0:
        raise ArgumentError(f"{where}: crow_indices must start at 0, got {crow[0]}")
    steps = np.diff(crow)
    if (steps < 0).any():
        i = int(np.argmax(steps < 0)) + 1
        raise ArgumentError(f"{where}: crow_indices must not decrease: crow_indices[{i}] = {crow[i]} "
                         f"< crow_indices[{i - 1}] = {crow[i - 1]}")
    if crow[-1] != nnz:
        raise ArgumentError(f"{where}: crow_indices must end at nnz = {nnz} (the length of col_indices), "
                         f"got {crow[-1]}")
    nrows = crow.shape[0] - 1
    if size is None:
        shape = (nrows, int(col.max()) + 1 if nnz else 0)
    else:
        shape = sparse_shape(size, where)
        if shape[0] != nrows:
            raise ArgumentError(f"{where}: crow_indices has {crow.shape[0]} entries, so the matrix has "
                             f"{nrows} rows, but size is {shape}")
    if nnz:
        if col.min() < 0:
            raise IndexRangeError(f"{where}: found negative column index {col.min()}")
        if col.max() >= shape[1]:
            raise IndexRangeError(f"{where}: column index {col.max()} is out of range for {shape[1]} columns")
    if check_invariants:
        bad = unsorted_position(crow, col)
        if bad is not None:
            row = int(np.searchsorted(crow, bad, side="right")) - 1
            raise ArgumentError(
                f"{where}: col_indices must be sorted and unique within each row: row {row} has "
                f"column {col[bad]} after column {col[bad - 1]} (check_invariants=False is only for "
                "input you vouch for)"
            )
    return crow, col, val, shape


# -- dense tensor ops ---------------------------------------------------------------------------

def dim_arg(dim, ndim: int, where: str) -> int:
    """A dimension in ``[-ndim, ndim)`` as a non-negative int (torch's message otherwise)."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{where}: dim must be an int, got {type(dim).__name__}")
    lo, hi = -max(ndim, 1), max(ndim, 1) - 1
    if not lo <= dim <= hi:
        raise IndexRangeError(f"{where}: Dimension out of range (expected to be in range of [{lo}, {hi}], "
                         f"but got {dim})")
    return int(dim) % max(ndim, 1)


def _sequence_as_tuple(key) -> bool:
    """torch's rule for a list key (``treatSequenceAsTuple``): a list of fewer than 32 items
    holding a tensor, an array, a sequence, a slice, None or Ellipsis is read as a tuple,
    one index per dimension (``x[[t1, t2]]`` is ``x[t1, t2]``); NumPy reads it as one array."""
    if not isinstance(key, list) or len(key) >= 32:
        return False
    return any(k is None or k is Ellipsis or isinstance(k, (Tensor, SparseTensor, np.ndarray, list, tuple, slice))
               for k in key)


def index_key(key, shape: tuple, where: str = "index", stacklevel: int = 4):
    """A key for ``x[key]`` with tensors turned into arrays and every integer array and
    boolean mask checked against ``shape`` (NumPy would raise too, but a bad gather must
    be refused before backward could scatter with it). ``stacklevel``: the caller's frame
    for the warning of a list read as a tuple (4 from ``x[key]``, 3 from ``x[key] = v``)."""
    if _sequence_as_tuple(key):
        warnings.warn(f"{where}: using a non-tuple sequence for multidimensional indexing is deprecated "
                      "in torch (a later torch reads x[seq] as x[tensor(seq)]); it is read as x[tuple(seq)], "
                      "as torch 2.13 reads it: write x[tuple(seq)]", UserWarning, stacklevel=stacklevel)
        key = tuple(key)
    parts = key if isinstance(key, tuple) else (key,)
    out, axis = [], 0
    for n, k in enumerate(parts):
        if isinstance(k, SparseTensor):
            raise TypeError(f"{where}: a sparse tensor cannot index")
        if isinstance(k, Tensor):
            k = k._data
        elif isinstance(k, list):
            k = np.asarray(k)
            if k.size == 0:  # x[[]]: no index at all (NumPy reads [] as float64)
                k = k.astype(np.int64)
        if isinstance(k, np.ndarray):  # a copy: backward scatters with the indices forward read,
            k = np.array(k)            # whatever the caller's tensor or array holds by then
        if k is Ellipsis:  # the dims the parts after it do not take
            axis = len(shape) - _dims_taken(parts[n + 1:])
        if isinstance(k, slice) and k.step is not None and (
                k.step._data if isinstance(k.step, Tensor) else k.step) < 0:
            raise ValueError(f"{where}: step must be greater than zero (as in torch, whose tensors have "
                             "no reversed views)")
        if isinstance(k, np.ndarray):
            if k.dtype.kind == "b":
                if k.shape != shape[axis:axis + k.ndim]:
                    raise IndexRangeError(f"{where}: the shape of the mask {list(k.shape)} does not match the "
                                     f"shape of the indexed tensor {list(shape[axis:axis + k.ndim])}")
                axis += k.ndim
            elif k.dtype.kind in "iu":
                if axis >= len(shape):
                    raise IndexRangeError(f"{where}: too many indices for a tensor of dimension {len(shape)}")
                if k.size and (k.min() < -shape[axis] or k.max() >= shape[axis]):
                    bad = k.max() if k.max() >= shape[axis] else k.min()
                    raise IndexRangeError(f"{where}: index {bad} is out of bounds for dimension {axis} "
                                     f"with size {shape[axis]}")
                axis += 1
            else:
                raise IndexRangeError(f"{where}: tensors used as indices must be long, int or bool, "
                                 f"got {k.dtype.name}")
        elif isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            if axis >= len(shape):
                raise IndexRangeError(f"{where}: too many indices for a tensor of dimension {len(shape)}")
            if not -shape[axis] <= k < shape[axis]:
                raise IndexRangeError(f"{where}: index {k} is out of bounds for dimension {axis} with size {shape[axis]}")
            axis += 1
        elif k is not None and k is not Ellipsis and not isinstance(k, (bool, np.bool_)):
            axis += 1  # (a Python bool is a 0-d mask: it adds a dim, as None does, and takes none)
        out.append(k)
    return tuple(out) if isinstance(key, tuple) else out[0]


def _dims_taken(parts) -> int:
    """How many dims of the indexed tensor ``parts`` of a key take (None takes none, a mask
    as many as it has)."""
    taken = 0
    for k in parts:
        k = k._data if isinstance(k, Tensor) else k
        if isinstance(k, np.ndarray) and k.dtype.kind == "b":
            taken += k.ndim
        elif k is not None and k is not Ellipsis and not isinstance(k, (bool, np.bool_)):
            taken += 1
    return taken


def ints_first(key):
    """``(ints, rest)`` for a key with both Python ints and index arrays, else None. NumPy
    counts an int among arrays as one more array, and advanced indices apart from each other
    put their dims first (``x[0, 1:, [1, 2]]`` is 2 x 2 with the list's dim first); torch
    applies an int as a select first, then the rest. So: ``x[ints][rest]``, ``ints`` with
    every other part as full slices."""
    if not isinstance(key, tuple) or not any(isinstance(k, np.ndarray) for k in key) or not any(
            isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in key):
        return None
    first, rest = [], []
    for k in key:
        if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            first.append(k)
        elif k is None:
            rest.append(k)
        elif k is Ellipsis:
            first.append(k)
            rest.append(k)
        else:
            first.extend([slice(None)] * (k.ndim if isinstance(k, np.ndarray) and k.dtype.kind == "b" else 1))
            rest.append(k)
    return tuple(first), tuple(rest)


def cast_data(x: Tensor, dtype, where: str = "to") -> np.ndarray:
    """``x``'s data as ``dtype``, refusing what that dtype cannot represent (see
    ``_arrays.converted``); the data itself when the dtype is already right."""
    dt = _dtypes.as_dtype(dtype, where, dense=True)
    return x._data if dt == x.dtype else converted(x._data, dt, where)


def same_dtype_arg(input, other, where: str) -> None:
    """Two tensors of one dtype (sparse_ref never promotes)."""
    _same_dtype((("input", input), ("other", other)), where)


def floating_arg(x, where: str, complex_ok: bool = True) -> None:
    """A tensor of a floating (or, where torch allows it, complex) dtype."""
    kinds = "fc" if complex_ok else "f"
    if _dtypes.kind(x.dtype) not in kinds:
        raise DTypeError(f"{where}: needs a floating{' or complex' if complex_ok else ''} dtype, "
                         f"got {x.dtype.name}")


def new_shape(shape, numel: int, where: str) -> tuple:
    """A shape for ``numel`` elements, given as ints or one tuple/list; one size may be -1."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) for n in shape):
        raise TypeError(f"{where}: sizes must be ints, got {list(shape)}")
    shape = tuple(int(n) for n in shape)
    known = int(np.prod([n for n in shape if n != -1], dtype=object))
    free = shape.count(-1)
    ok = free <= 1 and all(n >= -1 for n in shape) and (
        known == numel if free == 0 else (known != 0 and numel % known == 0))
    if not ok:
        raise ArgumentError(f"{where}: shape '{list(shape)}' is invalid for input of size {numel}")
    return tuple(numel // known if n == -1 else n for n in shape)


# -- sparse arithmetic ----------------------------------------------------------------------

def sparse_tensor(t, name: str, where: str) -> None:
    """A sparse tensor: a matrix (COO or CSR) or a sum's sparse vector."""
    if not isinstance(t, SparseTensor):
        raise ArgumentTypeError(f"{where}: {name} must be a sparse tensor, got {type(t).__name__}")


def sparse_matrix(t, name: str, where: str) -> None:
    """A 2-D sparse tensor, COO or CSR (not a dense one, and not a sum's sparse vector)."""
    sparse_tensor(t, name, where)
    sparse_layout(t, name, where)


def sparse_pair(a, b, where: str) -> None:
    """Two sparse matrices of one shape and one dtype (``a + b``, ``a - b``, ``a * b``)."""
    sparse_matrix(a, "self", where)
    sparse_matrix(b, "other", where)
    if a.shape != b.shape:
        raise ShapeError(f"{where}: expected sizes of 'self' and 'other' to match, but "
                         f"{list(a.shape)} != {list(b.shape)}")
    _same_dtype([("self", a), ("other", b)], where)


def sparse_dense_pair(s, x, where: str) -> None:
    """A sparse matrix and a dense tensor that broadcasts to its shape (``s * x``): the
    result has s's pattern, so x may not make it bigger."""
    sparse_matrix(s, "self", where)
    if x.ndim > 2 or any(n not in (1, m) for n, m in zip(x.shape[::-1], s.shape[::-1])):
        raise ShapeError(f"{where}: the dense operand of shape {tuple(x.shape)} does not broadcast to "
                         f"the sparse operand's shape {s.shape} (the result keeps the sparse pattern)")
    _same_dtype([("self", s), ("other", x)], where)


def scalar_operand(x, dtype: np.dtype, where: str):
    """A number as a scalar of ``dtype`` (float32 for float16 and bfloat16: torch computes
    their ops in float32 and rounds once, as ``Tensor._operand`` does). sparse_ref never
    promotes: a complex number for a real tensor, a fraction (or NaN, inf) for an integer
    one, and a number out of the dtype's range are refused."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, complex, np.number)):
        raise TypeError(f"{where}: expected a sparse tensor, a dense Tensor or a number, got "
                        f"{type(x).__name__}")
    if isinstance(x, (complex, np.complexfloating)) and dtype.kind != "c":
        raise DTypeError(f"{where}: the complex number {x} needs a complex tensor, got {dtype.name}; "
                        "sparse_ref does not promote dtypes")
    if dtype.kind in "iu" and isinstance(x, (float, np.floating)) and not (np.isfinite(x) and x == int(x)):
        raise DTypeError(f"{where}: {x} would be truncated to the integer dtype {dtype.name}; "
                        "sparse_ref does not promote dtypes")
    if _dtypes.is_half(dtype):
        dtype = np.dtype(np.float32)
    return converted(np.asarray(x), dtype, where)[()]


def floating(t, where: str) -> None:
    if _dtypes.kind(t.dtype) not in FLOATING:
        raise DTypeError(f"{where}: needs a floating or complex dtype, got {t.dtype.name}; "
                         "sparse_ref does not promote dtypes (cast first: .double())")


def divisor(s, y, where: str):
    """The divisor of ``s / y``: a number (as a scalar of s's dtype) or a 0-d dense tensor of
    s's dtype, as torch allows; s must be floating or complex."""
    floating(s, where)
    if isinstance(y, (Tensor, SparseTensor)):
        if isinstance(y, SparseTensor) or y.ndim != 0:
            raise ArgumentError(f"{where}: Sparse division requires a scalar or zero-dim dense tensor "
                                f"divisor (got shape {list(y.shape)} for divisor)")
        _same_dtype([("self", s), ("other", y)], where)
        return y
    return scalar_operand(y, s.dtype, where)


def sparse_add_operand(other, where: str) -> None:
    """The right operand of ``s + other`` / ``s - other`` must be sparse (torch's rule)."""
    if not isinstance(other, SparseTensor):
        raise ArgumentTypeError(f"{where}: {where}(sparse, {type(other).__name__}) is not supported (as in "
                                "torch); add two sparse tensors, or call .to_dense() first")


def reduce_dims(dim, ndim: int, where: str) -> tuple:
    """``dim`` (None, an int, or a tuple or list of ints) as sorted dims in [0, ndim); None
    means every dim. Messages as torch's."""
    if dim is None:
        return tuple(range(ndim))
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    out = []
    for d in dims:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"{where}: dim must be an int or a tuple of ints, got {dim!r}")
        if not -ndim <= d < ndim:
            raise IndexRangeError(f"{where}: Dimension out of range (expected to be in range of "
                             f"[{-ndim}, {ndim - 1}], but got {d})")
        d = int(d) % ndim
        if d in out:
            raise ArgumentError(f"{where}: dim {d} appears multiple times in the list of dims")
        out.append(d)
    return tuple(sorted(out))


def sparse_sum_dims(input, dims: tuple, where: str) -> None:
    """A sum of a 3-D sparse tensor (a batch) runs over every dim or none: the sums over
    some of them are not written yet (torch has them)."""
    if input.ndim > 2 and 0 < len(dims) < input.ndim:
        raise ArgumentError(f"{where}: summing a {input.ndim}-D sparse tensor over dims {list(dims)} is not "
                            "supported by sparse_ref yet; sum over every dim, or call .to_dense() first")


def softmax_dim(input, dim, where: str) -> int:
    """The dim of ``softmax(input, dim)``: one int, for a 2-D sparse matrix."""
    sparse_matrix(input, "input", where)
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{where}: dim must be an int, got {dim!r}")
    return reduce_dims(dim, 2, where)[0]


def softmax_dtype(input, where: str) -> None:
    if _dtypes.kind(input.dtype) != "f" or _dtypes.is_half(input.dtype):  # torch: not for Half either
        raise DTypeError(f'{where}: "{where}" not implemented for {input.dtype.name} (nor in torch); '
                         "it needs float32 or float64")

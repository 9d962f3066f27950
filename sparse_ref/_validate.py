"""Every input check, in one module, before any kernel runs.

A kernel is only called with arrays that satisfy its documented preconditions (int64,
C-contiguous, indices in range), so no input can crash the process. Messages name the
argument, what was expected and what was given, in torch's words where torch has them.
"""

import numpy as np

from sparse_ref import _dtypes

EXPECTED_2D = "expected a 2-D sparse matrix (sparse_dim=2, dense_dim=0)"


def _as_array(data, where: str):
    """An ndarray view of array-likes, sr tensors and torch tensors; a flag says if it came
    from plain Python numbers (which take torch's default dtypes)."""
    from sparse_ref._tensor import SparseTensor, Tensor

    if isinstance(data, Tensor):
        return data._data, False
    if isinstance(data, SparseTensor):
        raise TypeError(f"{where}: expected dense data, got a sparse tensor")
    if isinstance(data, np.ndarray):
        return data, False
    if type(data).__module__.startswith("torch"):
        return np.asarray(data.detach().cpu().numpy()), False
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{where}: cannot make an array of {type(data).__name__}: {exc}") from None
    if arr.dtype == object:
        raise TypeError(f"{where}: expected numbers, got {type(data).__name__} of mixed or ragged entries")
    return arr, True


def dense_data(data, dtype, where: str) -> np.ndarray:
    """A private, writable ndarray for a new dense tensor (never the caller's memory)."""
    arr, from_python = _as_array(data, where)
    dt = _dtypes.as_dtype(dtype, where) if dtype is not None else _dtypes.natural_dtype(arr, from_python, where)
    return np.array(arr, dtype=dt, copy=True, order="C")


def size_arg(size, where: str) -> tuple:
    """A shape given as ints or as one tuple/list, each a non-negative int."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for n in size:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"{where}: size must be ints, got {size!r}")
        if n < 0:
            raise ValueError(f"{where}: size must be non-negative, got {tuple(size)!r}")
    return tuple(int(n) for n in size)


def sparse_shape(size, where: str) -> tuple:
    if not isinstance(size, (tuple, list)) and not hasattr(size, "__len__"):
        raise TypeError(f"{where}: size must be a pair (nrows, ncols), got {size!r}")
    size = tuple(size)
    if len(size) != 2:
        raise ValueError(f"{where}: {EXPECTED_2D}, got size {size!r} with {len(size)} dims")
    return size_arg(size, where)


def coo_indices(indices, where: str = "sparse_coo_tensor") -> np.ndarray:
    """A read-only, C-contiguous int64 (2, nnz) copy of COO indices."""
    arr, _ = _as_array(indices, where)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{where}: indices must be an integer array, got dtype {arr.dtype.name}")
    if arr.ndim != 2:
        raise ValueError(
            f"{where}: indices must have shape (2, nnz), got an array with {arr.ndim} dims "
            f"of shape {arr.shape}"
        )
    if arr.shape[0] != 2:
        raise ValueError(
            f"{where}: {EXPECTED_2D}, got indices of shape {arr.shape} "
            f"(sparse_dim={arr.shape[0]}); indices must have shape (2, nnz)"
        )
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise IndexError(f"{where}: index {arr.max()} does not fit in int64")
    out = np.array(arr, dtype=np.int64, copy=True, order="C")
    out.flags.writeable = False
    return out


def coo_values(values, nnz: int, dtype, where: str = "sparse_coo_tensor") -> np.ndarray:
    arr, from_python = _as_array(values, where)
    if arr.ndim != 1:
        raise ValueError(
            f"{where}: {EXPECTED_2D}, got values of shape {arr.shape} "
            f"(dense_dim={max(arr.ndim - 1, 0)}); values must be 1-D with one value per entry"
        )
    if arr.shape[0] != nnz:
        raise ValueError(
            f"{where}: indices and values must have the same number of entries (nnz), "
            f"got {nnz} indices and {arr.shape[0]} values"
        )
    dt = _dtypes.as_dtype(dtype, where) if dtype is not None else _dtypes.natural_dtype(arr, from_python, where)
    out = np.array(arr, dtype=dt, copy=True, order="C")
    out.flags.writeable = False
    return out


def index_bounds(indices: np.ndarray, shape: tuple, where: str = "sparse_coo_tensor") -> None:
    """Reject negative and out-of-range indices (one vectorised pass per dimension)."""
    if indices.shape[1] == 0:
        return
    for dim in range(2):
        lo, hi = indices[dim].min(), indices[dim].max()
        if lo < 0:
            raise IndexError(f"{where}: found negative index {lo} for dim {dim} (size {shape[dim]})")
        if hi >= shape[dim]:
            raise IndexError(
                f"{where}: size is inconsistent with indices: for dim {dim}, "
                f"size is {shape[dim]} but found index {hi}"
            )


def inferred_shape(indices: np.ndarray) -> tuple:
    if indices.shape[1] == 0:
        return (0, 0)
    if indices.min() < 0:
        dim = int(np.argmin(indices.min(axis=1)))
        raise IndexError(f"sparse_coo_tensor: found negative index {indices[dim].min()} for dim {dim}")
    return (int(indices[0].max()) + 1, int(indices[1].max()) + 1)


def coalesced_claim(indices: np.ndarray, where: str = "sparse_coo_tensor") -> None:
    """``is_coalesced=True`` is checked, not trusted: kernels rely on it."""
    row, col = indices[0], indices[1]
    if row.shape[0] < 2:
        return
    dr = np.diff(row)
    ok = (dr > 0) | ((dr == 0) & (np.diff(col) > 0))
    if not ok.all():
        p = int(np.argmin(ok)) + 1
        raise ValueError(
            f"{where}: is_coalesced=True but the indices are not sorted row-major and unique "
            f"(entry {p} at ({row[p]}, {col[p]}) follows ({row[p - 1]}, {col[p - 1]})); "
            "leave is_coalesced unset and call .coalesce()"
        )

"""Conversions to and from SciPy and torch (optional dependencies, imported on use).

NumPy needs nothing here: ``sr.tensor(array)`` and ``np.asarray(t)`` already convert.
"""

import importlib

import numpy as np

from sparse_ref import _dtypes, _validate
from sparse_ref._errors import ArgumentError
from sparse_ref._factories import sparse_coo_tensor, tensor
from sparse_ref._tensor import SparseCsrTensor, SparseTensor, Tensor


def _require(name: str, purpose: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        package = name.split(".")[0]
        raise ImportError(
            f"{purpose} needs the optional package {package!r}, which is not installed "
            f"(pip install {package})"
        ) from None


def from_scipy(matrix) -> SparseTensor:
    """A sparse tensor from any ``scipy.sparse`` matrix or array (indices are checked).

    CSR gives a ``SparseCsrTensor`` (duplicates are summed first if SciPy has any); every
    other format gives a COO tensor, coalesced when SciPy's is in canonical form. SciPy's
    ``has_canonical_format`` flag is verified, never trusted (it goes stale when SciPy's
    arrays are edited).

    Ownership: every array is copied (the tensor owns them, so no later change to the
    SciPy matrix -- ``m.indices[0] = ...``, ``m.data *= 2``, ``m.eliminate_zeros()``,
    which compacts ``m.data`` in place -- reaches the tensor).

    Examples
    --------
    >>> import scipy.sparse, sparse_ref as sr
    >>> sr.from_scipy(scipy.sparse.coo_array(([1.0, 2.0], ([0, 1], [1, 0])), shape=(2, 2))).to_dense()
    tensor([[0., 1.],
            [2., 0.]], dtype=sparse_ref.float64)
    """
    sp = _require("scipy.sparse", "from_scipy")
    if not sp.issparse(matrix):
        raise TypeError(f"from_scipy: expected a scipy.sparse matrix or array, got {type(matrix).__name__}")
    # SciPy's own methods (copy, sum_duplicates, tocoo) trust the index arrays, and its C++
    # dies on a corrupted one: every array is checked here, by us, before SciPy touches it.
    if matrix.format in ("csr", "csc"):
        return _from_compressed(matrix)
    if matrix.format == "coo":
        coo = matrix
    else:
        if hasattr(matrix, "check_format"):
            matrix = matrix.copy()  # check_format may tidy the matrix: never the caller's
            matrix.check_format(full_check=True)
        coo = matrix.tocoo()
    canonical = bool(getattr(coo, "has_canonical_format", False))
    # (a 1-D coo_array, as to_scipy makes of a sparse vector, has one coordinate array)
    coords = getattr(coo, "coords", None) or (coo.row, coo.col)
    indices = np.stack([np.asarray(c) for c in coords]) if coo.nnz else np.zeros((len(coo.shape), 0), np.int64)
    # SciPy's canonical flag can go stale if its arrays are edited: verify it, don't trust it
    if canonical:
        try:
            return sparse_coo_tensor(indices, np.asarray(coo.data), coo.shape, is_coalesced=True)
        except ValueError:
            pass  # not sorted and unique after all: keep it as an uncoalesced tensor
    return sparse_coo_tensor(indices, np.asarray(coo.data), coo.shape)


def _from_compressed(matrix):
    """CSR -> SparseCsrTensor, CSC -> COO (see :func:`_compressed`)."""
    csc = matrix.format == "csc"
    where = "from_scipy (a CSC matrix, read as the CSR arrays of its transpose)" if csc else "from_scipy"
    return _compressed(matrix.indptr, matrix.indices, matrix.data, matrix.shape, csc, where)


def _compressed(indptr, indices, data, shape, csc: bool, where: str):
    """CSR arrays -> SparseCsrTensor, CSC arrays -> COO; the index arrays are checked (and
    copied) by sparse_ref first, duplicates and unsorted columns summed by sparse_ref's own
    coalesce (neither SciPy's canonical flag nor a torch CSR tensor's order is trusted)."""
    shape = shape[::-1] if csc else shape  # CSC is the CSR of the transpose
    ptr, idx, val, shape = _validate.csr_arrays(indptr, indices, data, shape, None, check_invariants=False,
                                                where=where)
    if not csc and _validate.unsorted_position(ptr, idx) is None:
        return SparseCsrTensor._make_csr(ptr, idx, val, shape)
    major = np.repeat(np.arange(shape[0], dtype=np.int64), np.diff(ptr))
    indices = np.stack([idx, major]) if csc else np.stack([major, idx])
    coo = sparse_coo_tensor(indices, val, shape[::-1] if csc else shape)
    return coo if csc else coo.coalesce().to_sparse_csr()


def to_scipy(t: SparseTensor):
    """A ``scipy.sparse.coo_array`` with the same stored entries (duplicates kept), or a
    ``csr_array`` for a CSR tensor.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.to_scipy(sr.tensor([[0., 3.]]).to_sparse()).toarray()
    array([[0., 3.]], dtype=float32)
    """
    sp = _require("scipy.sparse", "to_scipy")
    if not isinstance(t, SparseTensor):
        raise TypeError(f"to_scipy: expected a sparse_ref SparseTensor, got {type(t).__name__}")
    if _dtypes.is_half(t.dtype):  # COO and CSR alike
        raise TypeError(f"to_scipy: scipy.sparse has no {t.dtype.name}; convert first, e.g. t.float()")
    t = t._now()  # (its arrays of one state, if another thread changes it in place)
    if isinstance(t, SparseCsrTensor):
        return sp.csr_array((t._val.copy(), t._col.copy(), t._crow.copy()), shape=t.shape)
    _validate.sparse_layout(t, "t", "to_scipy", sparse_dims=(1, 2))  # SciPy has no hybrid or 3-D arrays
    coords = tuple(row.copy() for row in t._idx)  # one row for a sum's sparse vector
    out = sp.coo_array((t._val.copy(), coords), shape=t.shape)
    if t.is_coalesced():
        out.has_canonical_format = True
    return out


def _torch_values(arr: np.ndarray, torch):
    """A copy of a NumPy array as a torch tensor (bfloat16 through its 16 bits)."""
    if _dtypes.bfloat16 is not None and arr.dtype == _dtypes.bfloat16:
        return torch.from_numpy(np.array(arr.view(np.int16), copy=True)).view(torch.bfloat16)
    return torch.from_numpy(np.array(arr, copy=True))


def from_torch(t):
    """A sparse_ref tensor from a torch tensor: strided -> ``Tensor``, sparse COO ->
    ``SparseTensor`` (the coalesced flag carries over), sparse CSR -> ``SparseCsrTensor``.
    Data is copied.

    Examples
    --------
    >>> import torch, sparse_ref as sr
    >>> sr.from_torch(torch.tensor([[0., 2.]]).to_sparse()).values()
    tensor([2.])
    """
    if not type(t).__module__.startswith("torch"):  # no torch needed to refuse a non-tensor
        raise TypeError(f"from_torch: expected a torch.Tensor, got {type(t).__name__}")
    torch = _require("torch", "from_torch")
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"from_torch: expected a torch.Tensor, got {type(t).__name__}")
    t = t.detach().cpu()
    if t.layout == torch.strided:
        return tensor(_validate.torch_values(t, "from_torch"))
    if t.layout == torch.sparse_coo:
        indices, values = t._indices().numpy(), _validate.torch_values(t._values(), "from_torch")
        if t.is_coalesced():  # torch trusts is_coalesced=True unchecked: verify it
            try:
                return sparse_coo_tensor(indices, values, tuple(t.shape), is_coalesced=True)
            except ArgumentError:
                pass  # not sorted and unique after all: an uncoalesced tensor, as from_scipy
        return sparse_coo_tensor(indices, values, tuple(t.shape))
    if t.layout == torch.sparse_csr:  # (torch accepts unsorted columns unless asked to check)
        return _compressed(t.crow_indices().numpy(), t.col_indices().numpy(),
                           _validate.torch_values(t.values(), "from_torch"), tuple(t.shape), False, "from_torch")
    raise TypeError(f"from_torch: layout {t.layout} is not supported; use strided, sparse_coo or sparse_csr")


def to_torch(t):
    """A torch tensor with the same data (copied): ``Tensor`` -> strided, ``SparseTensor`` ->
    sparse COO carrying the coalesced flag, ``SparseCsrTensor`` -> sparse CSR.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.to_torch(sr.tensor([[0., 2.]]).to_sparse()).is_coalesced()
    True
    """
    if not isinstance(t, (Tensor, SparseTensor)):
        raise TypeError(f"to_torch: expected a sparse_ref Tensor or SparseTensor, got {type(t).__name__}")
    torch = _require("torch", "to_torch")
    if isinstance(t, Tensor):
        return _torch_values(t._data, torch)
    t = t._now()  # (its arrays of one state: torch will not check them)
    if isinstance(t, SparseCsrTensor):
        return torch.sparse_csr_tensor(torch.from_numpy(t._crow.copy()), torch.from_numpy(t._col.copy()),
                                       _torch_values(t._val, torch), t.shape, check_invariants=False)
    if isinstance(t, SparseTensor):
        return torch.sparse_coo_tensor(
            torch.from_numpy(t._idx.copy()), _torch_values(t._val, torch), t.shape,
            is_coalesced=t.is_coalesced(), check_invariants=False,  # our indices are checked
        )
    raise TypeError(f"to_torch: expected a sparse_ref Tensor or SparseTensor, got {type(t).__name__}")

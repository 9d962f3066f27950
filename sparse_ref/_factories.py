"""The factories (layer 5): ``tensor``, ``zeros``, ``ones``, ``randn``, ``manual_seed``,
``sparse_coo_tensor`` and ``sparse_csr_tensor``, as torch spells them.

Each checks its arguments (``_validate``) and wraps the checked arrays in a tensor class;
``sparse_coo_tensor`` of values that require grad records the op in the graph.
"""

from __future__ import annotations

import numpy as np

from sparse_ref import _dtypes, _validate
from sparse_ref._grad_mode import is_grad_enabled
from sparse_ref._tensor import SparseCsrTensor, SparseTensor, Tensor
from sparse_ref.autograd.sparse_ops import SparseFromValues

_generator = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed the generator behind :func:`randn` (like ``torch.manual_seed``).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.manual_seed(0); a = sr.randn(2)
    >>> sr.manual_seed(0); b = sr.randn(2)
    >>> bool((a.numpy() == b.numpy()).all())
    True
    """
    global _generator
    _generator = np.random.default_rng(seed)


def sparse_csr_tensor(crow_indices, col_indices, values, size=None, *, dtype=None,
                      requires_grad: bool = False, check_invariants: bool = True) -> SparseCsrTensor:
    """A 2-D sparse CSR tensor, like ``torch.sparse_csr_tensor``.

    ``crow_indices`` must have nrows + 1 entries, start at 0, never decrease and end at
    nnz; every column must be in range. Columns must also be sorted and unique within each
    row; ``check_invariants=False`` skips only that O(nnz) check, for input the caller
    vouches for (a violation then gives wrong results, never a crash).

    Ownership: the index arrays are copied, so the tensor owns them and no later change to
    the caller's arrays can reach a kernel. ``values`` is shared, not copied, when it is a
    plain NumPy array of the right dtype whose memory NumPy owns (torch's ``from_numpy``
    rule): a later change to it shows up as changed values, never as a crash. Anything
    else (a memmap, a view of another library's buffer, a list) is copied.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> a = sr.sparse_csr_tensor([0, 2, 3], [0, 2, 1], [1., 2., 3.], (2, 3))
    >>> a.to_dense()
    tensor([[1., 0., 2.],
            [0., 3., 0.]])
    """
    crow, col, val, shape = _validate.csr_arrays(crow_indices, col_indices, values, size, dtype,
                                                 check_invariants)
    return SparseCsrTensor._make_csr(crow, col, val, shape, requires_grad=requires_grad)

def sparse_coo_tensor(indices, values, size=None, *, dtype=None, requires_grad: bool = False,
                      is_coalesced: bool | None = None) -> SparseTensor:
    """A 2-D sparse COO tensor from indices (2 x nnz) and values (nnz), like torch's.

    Every index is checked against ``size`` (negative and out-of-range indices raise
    ``IndexError``); when ``size`` is omitted it is inferred as max index + 1. Inputs are
    copied, so later changes to them do not reach the tensor. ``is_coalesced=True`` is
    verified, not trusted.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.sparse_coo_tensor([[0, 0, 1], [0, 2, 1]], [1., 0., 2.], (2, 3))
    tensor(indices=tensor([[0, 0, 1],
                           [0, 2, 1]]),
           values=tensor([1., 0., 2.]),
           size=(2, 3), nnz=3, layout=sparse_ref.sparse_coo)
    """
    idx = _validate.coo_indices(indices)
    val = _validate.coo_values(values, idx.shape[1], dtype)
    if size is None:
        shape = _validate.inferred_shape(idx)
    else:
        shape = _validate.sparse_shape(size, "sparse_coo_tensor")
    _validate.index_bounds(idx, shape)
    is_coalesced = _validate.coalesced_flag(is_coalesced)
    if is_coalesced:
        _validate.coalesced_claim(idx)
    if isinstance(values, Tensor) and values.requires_grad:
        if is_grad_enabled():  # differentiable in the values, like torch's
            out = SparseFromValues.apply(values, idx, val, shape)
            out._coalesced = is_coalesced or val.shape[0] <= 1
            return out
    return SparseTensor._make(idx, val, shape, coalesced=is_coalesced, requires_grad=requires_grad)


def tensor(data, *, dtype=None, requires_grad: bool = False) -> Tensor:
    """A dense tensor from a list, a NumPy array or a tensor (always copied).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.tensor([[1., 2.], [3., 4.]], dtype=sr.float64)
    tensor([[1., 2.],
            [3., 4.]], dtype=sparse_ref.float64)
    """
    return Tensor(_validate.dense_data(data, dtype, "tensor"), requires_grad=requires_grad)


def _filled(fill, size, dtype, requires_grad, where):
    shape = _validate.size_arg(size, where)
    dt = _dtypes.as_dtype(dtype, where, dense=True) if dtype is not None else _dtypes.default_dtype
    return Tensor(np.full(shape, fill, dtype=dt), requires_grad=requires_grad)


def zeros(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    """A dense tensor of zeros (float32 unless ``dtype`` says otherwise).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.zeros(2, 2, dtype=sr.int64)
    tensor([[0, 0],
            [0, 0]])
    """
    return _filled(0, size, dtype, requires_grad, "zeros")


def ones(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    """A dense tensor of ones (float32 unless ``dtype`` says otherwise).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.ones(3)
    tensor([1., 1., 1.])
    """
    return _filled(1, size, dtype, requires_grad, "ones")


def randn(*size, dtype=None, requires_grad: bool = False, generator=None) -> Tensor:
    """Standard normal samples (float32 unless ``dtype`` says otherwise).

    ``generator`` is a ``numpy.random.Generator``; without one the generator seeded by
    :func:`manual_seed` is used. Complex dtypes get real and imaginary parts each of
    variance 1/2, as in torch.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.randn(2, 3).shape
    (2, 3)
    """
    shape = _validate.size_arg(size, "randn")
    dt = _dtypes.as_dtype(dtype, "randn") if dtype is not None else _dtypes.default_dtype
    if dt.kind not in "fc":
        raise TypeError(f"randn: expected a floating or complex dtype, got {dt.name}")
    rng = generator if generator is not None else _generator
    if dt.kind == "c":
        data = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)
    else:
        data = rng.standard_normal(shape)
    return Tensor(np.ascontiguousarray(data, dtype=dt), requires_grad=requires_grad)

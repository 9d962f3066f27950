"""The factories (layer 5): ``tensor``, ``from_numpy``, ``as_tensor``, ``zeros``, ``ones``,
``randn``, ``manual_seed``, ``sparse_coo_tensor`` and ``sparse_csr_tensor``, as torch
spells them.

Each checks its arguments (``_validate``) and wraps the checked arrays in a tensor class;
``sparse_coo_tensor`` of values that require grad records the op in the graph.
"""

from __future__ import annotations

import warnings

import numpy as np

from sparse_ref import _arrays, _dtypes, _memory, _validate
from sparse_ref._errors import ArgumentError, ConversionError
from sparse_ref._grad_mode import is_grad_enabled
from sparse_ref._tensor import SparseCsrTensor, SparseTensor, Tensor
from sparse_ref.autograd.sparse_ops import CsrFromValues, SparseFromValues


def _new(shape, dt, data) -> np.ndarray:
    """A new C-contiguous array of ``data`` (a number or an array, cast as NumPy's ``full``
    and ``astype`` cast). A large one (4 MiB or more) comes from the output cache, so it
    starts on a 2 MiB page, as torch's arrays start on a cache line: SpMM gathers rows of
    a dense operand, and a row of 64 bytes that starts 16 bytes into a line touches two
    lines instead of one (1.24-2.57x slower measured: docs/algorithms/spmm.rst)."""
    out = _memory.empty(shape, dt)
    np.copyto(out, data, casting="unsafe")
    return out

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
    _generator = np.random.default_rng(_seed(seed))


def _differentiable(values, val: np.ndarray) -> bool:
    """Whether a sparse tensor made of ``values`` records the graph: they require grad,
    grad mode is on, and the stored values are floating or complex (torch: only those
    dtypes can require gradients)."""
    return (isinstance(values, Tensor) and values.requires_grad and is_grad_enabled()
            and _dtypes.kind(val.dtype) in "fc")


def sparse_csr_tensor(crow_indices, col_indices, values, size=None, *, dtype=None,
                      requires_grad: bool = False, check_invariants: bool = True) -> SparseCsrTensor:
    """A 2-D sparse CSR tensor, like ``torch.sparse_csr_tensor``.

    ``crow_indices`` must have nrows + 1 entries, start at 0, never decrease and end at
    nnz; every column must be in range. Columns must also be sorted and unique within each
    row; ``check_invariants=False`` skips only that O(nnz) check, for input the caller
    vouches for (a violation then gives wrong results, never a crash).

    Ownership: every array is copied, as torch's constructor copies NumPy arrays, so no
    later change to the caller's arrays reaches the tensor (values used to be shared with
    a plain NumPy array, and a change to it after a forward gave backward other values
    than the forward's, unseen).

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
    if _differentiable(values, val):
        return CsrFromValues.apply(values, crow, col, val, shape)  # differentiable in the values
    return SparseCsrTensor._make_csr(crow, col, val, shape, requires_grad=requires_grad)

def sparse_coo_tensor(indices, values, size=None, *, dtype=None, requires_grad: bool = False,
                      check_invariants: bool | None = None, is_coalesced: bool | None = None) -> SparseTensor:
    """A sparse COO tensor from indices (S x nnz) and values ``(nnz, *dense_sizes)``, like torch's.

    S = ``indices.shape[0]`` >= 1 is the tensor's ``sparse_dim()``; the values hold one
    number per entry (dense_dim 0: a matrix when S = 2, a batch of matrices for ``sr.bmm``
    when S = 3, indices of (batch, row, column)) or one dense block per entry (a *hybrid*
    tensor, ``dense_dim() = values.ndim - 1``). The size is the S sparse sizes, then the
    block's sizes.

    Every index is checked against ``size`` (negative and out-of-range indices raise
    ``IndexError``); when ``size`` is omitted it is inferred as max index + 1 in every
    sparse dim, then the block's shape. Inputs are copied, so later changes to them do not
    reach the tensor. ``is_coalesced=True`` is verified, not trusted. ``check_invariants``
    is taken as torch takes it, and the indices are checked either way (a kernel never
    reads an index out of range).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.sparse_coo_tensor([[0, 0, 1], [0, 2, 1]], [1., 0., 2.], (2, 3))
    tensor(indices=tensor([[0, 0, 1],
                           [0, 2, 1]]),
           values=tensor([1., 0., 2.]),
           size=(2, 3), nnz=3, layout=sparse_ref.sparse_coo)
    >>> h = sr.sparse_coo_tensor([[0, 1], [2, 0]], [[1., 2.], [3., 4.]])   # hybrid
    >>> h.shape, h.sparse_dim(), h.dense_dim()
    ((2, 3, 2), 2, 1)
    """
    idx = _validate.coo_indices(indices)
    val = _validate.coo_values(values, idx.shape[1], dtype)
    if size is None:
        shape = _validate.inferred_shape(idx, val.shape[1:])
    else:
        shape = _validate.coo_shape(size, idx.shape[0], val.shape)
    _validate.index_bounds(idx, shape)
    is_coalesced = _validate.coalesced_flag(is_coalesced)
    if is_coalesced:
        _validate.coalesced_claim(idx)
    if _differentiable(values, val):  # differentiable in the values, like torch's
        out = SparseFromValues.apply(values, idx, val, shape)
        out._coalesced = is_coalesced or val.shape[0] <= 1
        return out
    return SparseTensor._make(idx, val, shape, coalesced=is_coalesced, requires_grad=requires_grad)


def tensor(data, *, dtype=None, requires_grad: bool = False) -> Tensor:
    """A dense tensor from a list, a NumPy array or a tensor (always copied).

    Without ``dtype``, an array or a tensor keeps its dtype, and a list takes the one torch
    infers: Python floats float32, ints int64, complex numbers complex64, NumPy numbers
    and arrays their own dtypes, promoted as torch promotes (``[np.float64(1), 2.0]`` is
    float64, ``[np.int64(1), 2.0]`` float32).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.tensor([[1., 2.], [3., 4.]], dtype=sr.float64)
    tensor([[1., 2.],
            [3., 4.]], dtype=sparse_ref.float64)
    """
    return Tensor(_validate.dense_data(data, dtype, "tensor"), requires_grad=requires_grad)


def from_numpy(ndarray) -> Tensor:
    """A dense tensor that shares ``ndarray``'s memory, like ``torch.from_numpy``: a change
    made through either shows in the other (in-place ops of the tensor write into the
    array). The tensor keeps the array's dtype, shape and strides.

    The array must be an ``np.ndarray`` of a supported dtype (or bool), in this machine's
    byte order, with no negative stride (torch's messages otherwise). A read-only array
    gives a tensor whose in-place ops raise. Unlike torch, sparse_ref shares only memory
    that NumPy owns: a memmap or a view of another library's buffer could be unmapped
    or resized under the tensor, so the tensor gets a copy, with a warning.

    Examples
    --------
    >>> import numpy as np
    >>> import sparse_ref as sr
    >>> x = np.array([1., 2., 3.])
    >>> t = sr.from_numpy(x)
    >>> x[0] = 10.
    >>> t
    tensor([10.,  2.,  3.], dtype=sparse_ref.float64)
    >>> with sr.no_grad():
    ...     _ = t.add_(sr.ones(3, dtype=sr.float64))
    >>> x
    array([11.,  3.,  4.])
    """
    return _shared(ndarray, "from_numpy")


def _shared(ndarray, where: str) -> Tensor:
    arr = _validate.numpy_to_share(ndarray, where)
    view = _arrays.callers_view(arr)
    if view is None:
        warnings.warn(f"{where}: the array's memory is not held by a NumPy array that owns it (a "
                      "memmap, another library's buffer, an as_strided view: memory that could be "
                      "unmapped or resized under the tensor), so the tensor holds a copy: later "
                      "changes to either do not show in the other", stacklevel=3)
        view = np.array(arr, copy=True)
    return Tensor(view)


def as_tensor(data, dtype=None) -> Tensor:
    """``data`` as a tensor, like ``torch.as_tensor``: a tensor of the dtype asked for is
    returned as it is, a NumPy array of that dtype is shared as :func:`from_numpy` shares
    it, and anything else (a list, another dtype) is converted into a new tensor, as
    :func:`tensor` does.

    Examples
    --------
    >>> import numpy as np
    >>> import sparse_ref as sr
    >>> x = np.zeros(2)
    >>> t = sr.as_tensor(x)
    >>> x[1] = 5.
    >>> t
    tensor([0., 5.], dtype=sparse_ref.float64)
    >>> sr.as_tensor(t) is t, sr.as_tensor([1, 2]).dtype
    (True, dtype('int64'))
    """
    dt = None if dtype is None else _dtypes.as_dtype(dtype, "as_tensor", dense=True)
    if isinstance(data, (Tensor, SparseTensor)):
        return data if dt is None or data.dtype == dt else data.to(dt)
    if isinstance(data, np.ndarray) and not isinstance(data, np.ma.MaskedArray) \
            and (dt is None or data.dtype == dt):
        return _shared(data, "as_tensor")
    return tensor(data, dtype=dt)


def _size(size, where):
    """The shape of ``*size`` (ints, or one tuple or list of them; ``()`` for a 0-d tensor):
    at least one argument, as torch asks."""
    if not size:
        raise TypeError(f'{where}() missing 1 required positional arguments: "size" (pass () for a 0-d tensor)')
    return _validate.size_arg(size, where)


def _filled(fill, size, dtype, requires_grad, where):
    shape = _size(size, where)
    dt = _dtypes.as_dtype(dtype, where, dense=True) if dtype is not None else _dtypes.default_dtype
    return Tensor(_new(shape, dt, fill), requires_grad=requires_grad)


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


class Generator:
    """A seedable source of random numbers, like ``torch.Generator``: pass it as
    ``generator=`` to :func:`randn`, :func:`rand` or :func:`randint` (a
    ``numpy.random.Generator`` works there too).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> g = sr.Generator().manual_seed(7)
    >>> a = sr.rand(2, generator=g)
    >>> b = sr.rand(2, generator=sr.Generator().manual_seed(7))
    >>> a.tolist() == b.tolist()
    True
    """

    def __init__(self, device: str = "cpu"):
        if str(device) != "cpu":
            raise ValueError(f"Generator: sparse_ref runs on the CPU only, got device {device!r}")
        self._rng = np.random.default_rng()
        self._seed = None

    def manual_seed(self, seed: int) -> "Generator":
        """Seed it; returns the generator (as torch's)."""
        self._seed = _seed(seed)
        self._rng = np.random.default_rng(self._seed)
        return self

    def initial_seed(self):
        return self._seed


def _seed(seed) -> int:
    """A seed as torch takes it: an int in [-2**63, 2**64), negative ones wrapped to 64 bits."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__}")
    if not -2**63 <= int(seed) < 2**64:
        raise RuntimeError(f"manual_seed: seed {seed} is out of range: it must be within [-2**63, 2**64)")
    return int(seed) & 0xFFFF_FFFF_FFFF_FFFF


def _rng(generator, where: str):
    if generator is None:
        return _generator
    if isinstance(generator, Generator):
        return generator._rng
    if isinstance(generator, np.random.Generator):
        return generator
    raise TypeError(f"{where}: generator must be an sr.Generator or a numpy.random.Generator, "
                    f"got {type(generator).__name__}")


def _float_dtype(dtype, where: str) -> np.dtype:
    dt = _dtypes.as_dtype(dtype, where) if dtype is not None else _dtypes.default_dtype
    if _dtypes.kind(dt) not in "fc":
        raise TypeError(f"{where}: expected a floating or complex dtype, got {dt.name}")
    return dt


def randn(*size, dtype=None, requires_grad: bool = False, generator=None) -> Tensor:
    """Standard normal samples (float32 unless ``dtype`` says otherwise).

    ``generator`` is an :class:`sr.Generator <Generator>` or a ``numpy.random.Generator``;
    without one the generator seeded by :func:`manual_seed` is used. Complex dtypes get
    real and imaginary parts each of variance 1/2, as in torch.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.randn(2, 3).shape
    (2, 3)
    """
    shape = _size(size, "randn")
    dt = _float_dtype(dtype, "randn")
    rng = _rng(generator, "randn")
    if dt.kind == "c":
        data = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)
    else:
        data = rng.standard_normal(shape)
    return Tensor(_new(shape, dt, data), requires_grad=requires_grad)


def rand(*size, dtype=None, requires_grad: bool = False, generator=None) -> Tensor:
    """Samples uniform on [0, 1) (float32 unless ``dtype`` says otherwise; a complex dtype
    gets uniform real and imaginary parts, as torch).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> x = sr.rand(1000)
    >>> bool((x >= 0).numpy().all() and (x < 1).numpy().all())
    True
    """
    shape = _size(size, "rand")
    dt = _float_dtype(dtype, "rand")
    rng = _rng(generator, "rand")
    data = rng.random(shape) + (1j * rng.random(shape) if dt.kind == "c" else 0)
    return Tensor(_new(shape, dt, data), requires_grad=requires_grad)


def randint(low, high=None, size=None, *, dtype=None, generator=None) -> Tensor:
    """Integers uniform on [low, high) (``randint(high, size)`` starts at 0); int64 unless
    ``dtype`` says otherwise.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> x = sr.randint(0, 3, (100,))
    >>> x.dtype == sr.int64, sorted(set(x.tolist()))
    (True, [0, 1, 2])
    """
    if size is None:  # randint(high, size)
        low, high, size = 0, low, high
    if size is None:
        raise TypeError("randint: size is required, e.g. randint(0, 10, (3,))")
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"randint: {name} must be an int, got {type(v).__name__}")
    if not low < high:
        raise ArgumentError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    shape = _validate.size_arg(tuple(size) if isinstance(size, (tuple, list)) else (size,), "randint")
    dt = _dtypes.as_dtype(dtype, "randint") if dtype is not None else _dtypes.int64
    kind = _dtypes.kind(dt)
    if kind in "iu":
        info = np.iinfo(dt)
        if low < info.min or high - 1 > info.max:
            raise _validate.ConversionError(f"randint: [{low}, {high}) does not fit in {dt.name}")
    elif kind in "fc":  # a float type: every integer drawn must be exact there, or a draw
        # could round (up to high itself, outside the range; torch warns of that)
        exact = 2 ** (int(_dtypes.finfo(dt).nmant) + 1)  # (a complex type's: its parts')
        if max(abs(low), abs(high - 1)) > exact:
            raise _validate.ConversionError(f"randint: [{low}, {high}) has integers {dt.name} cannot hold exactly "
                                            f"(it holds every integer up to 2**{exact.bit_length() - 1} = {exact} "
                                            "in magnitude); a draw would be rounded")
    data = _rng(generator, "randint").integers(low, high, shape)
    return Tensor(_new(shape, dt, data))


def full(size, fill_value, *, dtype=None, requires_grad: bool = False) -> Tensor:
    """A dense tensor of ``fill_value``; its dtype is ``dtype`` or, as torch, the value's
    (a float gives float32, an int int64, a bool bool).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.full((2,), 7)
    tensor([7, 7])
    """
    shape = _validate.size_arg(tuple(size) if isinstance(size, (tuple, list)) else (size,), "full")
    value = _validate.dense_data(fill_value, dtype, "full")
    if value.ndim != 0:
        raise TypeError(f"full: fill_value must be a number, got {type(fill_value).__name__}")
    return Tensor(_new(shape, value.dtype, value), requires_grad=requires_grad)


def zeros_like(input, *, dtype=None, requires_grad: bool = False) -> Tensor:
    """Zeros of ``input``'s shape and (unless ``dtype`` is given) dtype; for a sparse
    ``input``, as torch: a sparse tensor of its layout that stores nothing.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.zeros_like(sr.ones(2, dtype=sr.float64))
    tensor([0., 0.], dtype=sparse_ref.float64)
    >>> sr.zeros_like(sr.eye(2).to_sparse())
    tensor(indices=tensor([], size=(2, 0)),
           values=tensor([], size=(0,)),
           size=(2, 2), nnz=0, layout=sparse_ref.sparse_coo)
    """
    if isinstance(input, SparseTensor):
        return _empty_sparse_like(input, dtype, requires_grad)
    return _like(input, 0, dtype, requires_grad, "zeros_like")


def _empty_sparse_like(input: SparseTensor, dtype, requires_grad: bool) -> SparseTensor:
    """A sparse tensor of ``input``'s layout, shape and (sparse, dense) dims, storing nothing."""
    dt = _dtypes.as_dtype(dtype, "zeros_like") if dtype is not None else input.dtype
    if isinstance(input, SparseCsrTensor):
        return SparseCsrTensor._make_csr(np.zeros(input.shape[0] + 1, np.int64), np.zeros(0, np.int64),
                                         np.zeros(0, dt), input.shape, requires_grad=requires_grad)
    sparse_dims = input.sparse_dim()
    values = np.zeros((0,) + tuple(input.shape[sparse_dims:]), dt)
    return SparseTensor._make(np.zeros((sparse_dims, 0), np.int64), values, input.shape, True,
                              requires_grad=requires_grad)


def ones_like(input, *, dtype=None, requires_grad: bool = False) -> Tensor:
    """Ones of ``input``'s shape and (unless ``dtype`` is given) dtype; dense, also for a
    sparse ``input`` (whose every element would be stored: torch refuses that case).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.ones_like(sr.zeros(2, 1))
    tensor([[1.],
            [1.]])
    """
    return _like(input, 1, dtype, requires_grad, "ones_like")


def _like(input, fill, dtype, requires_grad, where):
    if not isinstance(input, (Tensor, SparseTensor)):
        raise TypeError(f"{where}: expected a Tensor, got {type(input).__name__}")
    dt = _dtypes.as_dtype(dtype, where, dense=True) if dtype is not None else input.dtype
    return Tensor(_new(input.shape, dt, fill), requires_grad=requires_grad)


def eye(n, m=None, *, dtype=None, requires_grad: bool = False) -> Tensor:
    """The n x m identity matrix (m = n unless given).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.eye(2)
    tensor([[1., 0.],
            [0., 1.]])
    """
    shape = _validate.size_arg((n,) if m is None else (n, m), "eye")
    shape = shape * 2 if m is None else shape
    dt = _dtypes.as_dtype(dtype, "eye", dense=True) if dtype is not None else _dtypes.default_dtype
    return Tensor(np.eye(shape[0], shape[1], dtype=dt), requires_grad=requires_grad)


def arange(start, end=None, step=1, *, dtype=None, requires_grad: bool = False) -> Tensor:
    """``start, start + step, ...`` below ``end`` (``arange(end)`` starts at 0); int64 when
    every argument is an int, else float32, unless ``dtype`` says otherwise.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.arange(4), sr.arange(0, 1, 0.25)
    (tensor([0, 1, 2, 3]), tensor([0.0000, 0.2500, 0.5000, 0.7500]))
    """
    if end is None:
        start, end = 0, start
    for name, v in (("start", start), ("end", end), ("step", step)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or (
                not isinstance(v, (int, np.integer)) and not np.isfinite(v)):  # (a Python int may pass int64)
            raise TypeError(f"arange: {name} must be a finite number, got {v!r}")
    if step == 0:
        raise ArgumentError("arange: step must be nonzero")
    if (end - start) * step < 0:
        raise ArgumentError("arange: upper bound and larger bound inconsistent with step sign")
    ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    dt = _dtypes.as_dtype(dtype, "arange") if dtype is not None else (_dtypes.int64 if ints else _dtypes.default_dtype)
    if dt.kind in "iu":
        for name, v in (("start", start), ("end", end), ("step", step)):
            # (torch truncates start and step, and counts from end as given for int32 but
            # truncated for int64: arange(0, 10, 2.5) is [0, 2, 4, 6] or [0, 2, 4, 6, 8])
            if not isinstance(v, (int, np.integer)) and not float(v).is_integer():
                raise TypeError(f"arange: {name} {v} would be truncated to the integer dtype {dt.name}; "
                                "pass whole numbers")
    count = int(np.ceil((end - start) / step))
    if ints and count:  # every value an exact Python int first: int64 arithmetic would wrap
        info = np.iinfo(np.int64)
        for v in (int(start), int(start) + int(step) * (count - 1)):
            if not info.min <= v <= info.max:
                raise ConversionError(f"arange: value {v} cannot be converted to type int64 without overflow")
    data = start + step * np.arange(count, dtype=np.float64 if not ints else np.int64)
    return Tensor(_validate.converted(data, dt, "arange"), requires_grad=requires_grad)

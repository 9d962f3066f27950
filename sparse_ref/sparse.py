"""``sparse_ref.sparse``: the products of ``torch.sparse``, with the same names and arguments.

``mm`` dispatches on the layouts of its operands:

==============  ==============  ==========================================
mat1            mat2            result
==============  ==============  ==========================================
sparse          dense           dense (SpMM; ``reduce=`` allowed)
sparse CSR      sparse CSR      sparse CSR (SpGEMM)
sparse          sparse          sparse COO, coalesced (SpGEMM), when
                                either operand is COO
dense           sparse          dense
dense           dense           dense
==============  ==============  ==========================================

"sparse" is COO or CSR (``SparseCsrTensor``); the kernels read a CSR operand's arrays
as they are, and a COO operand's CSR form is computed once and kept with the tensor.

Batches: when an operand is a 3-D sparse COO tensor (a batch, indices of (batch, row,
column)), ``mm`` multiplies batch b by batch b (both operands 3-D, sparse or dense, as
``sr.bmm``), ``reduce=`` included, and ``sampled_addmm`` takes a 3-D sparse ``input``
with 3-D dense ``mat1`` and ``mat2``. A batch runs as one block-diagonal 2-D product
(``sparse_ref._batched``).

Every check runs before any kernel (``sparse_ref._validate``); uncoalesced operands are
coalesced first, so results follow the accumulation order in the kernels' docstrings.
Each product is a differentiable op of ``sparse_ref.autograd.sparse_ops``, where its
forward and backward stand side by side.
"""

from __future__ import annotations

from sparse_ref import _batched, _dtypes, _products, _validate
from sparse_ref._errors import missing
from sparse_ref._tensor import SparseTensor
from sparse_ref._grad_mode import no_grad
from sparse_ref.autograd import sparse_ops as ops
from sparse_ref.autograd.dense_ops import MatMul

__all__ = ["addmm", "log_softmax", "mm", "sampled_addmm", "softmax", "spgemm_nnz", "sum"]


def mm(mat1, mat2, reduce: str | None = None, *, max_nnz: int | None = None):
    """Matrix product of two 2-D tensors, at least one of them sparse, like ``torch.sparse.mm``.

    Parameters
    ----------
    mat1, mat2 : SparseTensor or Tensor
        The operands; see the table in the module docstring for the result's layout. With
        a 3-D sparse operand, both are batches, (B, m, n) and (B, n, p): batch b of the
        result is ``mat1[b] @ mat2[b]`` (sparse results 3-D and coalesced), and
        ``reduce`` works per batch.
    reduce : {None, "sum", "mean", "amax", "amin"}, optional
        Only for sparse ``mat1`` and dense ``mat2``: reduce each row's products
        ``mat1[i, k] * mat2[k, j]`` over the stored entries of row i instead of summing
        them. ``"max"``/``"min"`` are aliases. Explicit zeros take part, empty rows give 0,
        NaN propagates, and among equal values the first stored entry wins.
    max_nnz : int, optional
        Only for two sparse operands: refuse (MemoryError) a product with more stored
        entries than this. Whatever it says, a product that cannot fit in the memory this
        process can still allocate is refused before any work, with the sizes named (see
        :func:`spgemm_nnz`).

    Returns
    -------
    Tensor or SparseTensor
        Dense for a dense operand; sparse COO (coalesced, the structural product: exact
        cancellations and products of explicit zeros stay as stored zeros) for two sparse
        operands.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> a = sr.sparse_coo_tensor([[0, 1], [2, 0]], [2., 3.], (2, 3))
    >>> b = sr.tensor([[1., 2.], [3., 4.], [5., 6.]])
    >>> sr.sparse.mm(a, b)
    tensor([[10., 12.],
            [ 3.,  6.]])
    >>> sr.sparse.mm(a, b, reduce="amax")
    tensor([[10., 12.],
            [ 3.,  6.]])
    >>> batch = sr.sparse_coo_tensor([[0, 1], [0, 0], [1, 0]], [2., 3.], (2, 1, 2))
    >>> sr.sparse.mm(batch, sr.ones(2, 2, 1), reduce="mean")
    tensor([[[2.]],
    <BLANKLINE>
            [[3.]]])
    """
    if reduce is None and max_nnz is None and _validate.plain_sparse_dense(mat1, mat2):
        return ops.SparseMm.apply(mat1, mat2, "sum")  # the commonest call, certainly valid
    if _validate.is_batch(mat1) or _validate.is_batch(mat2):  # a 3-D sparse operand: a batch of products
        reduce = _validate.bmm_operands(mat1, mat2, reduce, "mm", ("mat1", "mat2"))
        both_sparse = isinstance(mat1, SparseTensor) and isinstance(mat2, SparseTensor)
        max_nnz = None if max_nnz is None else _validate.max_nnz_arg(max_nnz, both_sparse, "mm")
        return _batched.mm(mat1, mat2, reduce, max_nnz)
    reduce = _validate.mm_operands(mat1, mat2, reduce, "mm")
    both_sparse = isinstance(mat1, SparseTensor) and isinstance(mat2, SparseTensor)
    if max_nnz is not None:
        max_nnz = _validate.max_nnz_arg(max_nnz, both_sparse, "mm")
    if both_sparse:
        return ops.sparse_sparse_mm(mat1, mat2, max_nnz)
    if isinstance(mat1, SparseTensor):
        return ops.SparseMm.apply(mat1, mat2, reduce)
    if isinstance(mat2, SparseTensor):
        return ops.DenseSparseMm.apply(mat1, mat2)
    return MatMul.apply(mat1, mat2)


def spgemm_nnz(mat1, mat2) -> int:
    """The number of stored entries of ``mm(mat1, mat2)`` for two sparse operands, counted
    exactly without computing a value (Gustavson's symbolic pass alone).

    Two bounds come first, in O(nnz(mat1)): each row of the product holds at least as many
    entries as the longest row of mat2 that it reaches, and at most its number of products.
    When they agree, that is the answer; otherwise the count runs in chunks of rows that
    Ctrl-C can stop. Use it to size work before you commit to it; ``mm(..., max_nnz=n)``
    refuses a product with more than n entries.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> col = sr.sparse_coo_tensor([[0, 1, 2], [0, 0, 0]], [1., 1., 1.], (3, 1))
    >>> row = sr.sparse_coo_tensor([[0, 0], [0, 2]], [1., 1.], (1, 3))
    >>> sr.sparse.spgemm_nnz(col, row)   # the outer product: 3 x 2 entries
    6
    >>> sr.sparse.spgemm_nnz(row, col)   # the inner product: 1 entry
    1
    """
    _validate.mm_operands(mat1, mat2, None, "spgemm_nnz")
    if not (isinstance(mat1, SparseTensor) and isinstance(mat2, SparseTensor)):
        raise _validate.ArgumentTypeError(
            f"spgemm_nnz: needs two sparse operands, got {mat1.layout!r} and {mat2.layout!r}")
    with no_grad():
        if ops.needs_relabel(mat1, mat2):
            mat1, mat2, _ = ops.relabeled_operands(mat1, mat2)
        a_crow, a_col, _ = mat1._csr()
        b_crow, b_col, _ = mat2._csr()
    return _products.spgemm_nnz(a_crow, a_col, b_crow, b_col, mat2.shape[1])


def addmm(mat, mat1, mat2, *, beta=1, alpha=1):
    """``beta * mat + alpha * (mat1 @ mat2)`` for a sparse ``mat1`` and a dense ``mat2``,
    like ``torch.sparse.addmm``; ``mat`` broadcasts to the result's shape.

    With ``beta == 0`` the values of ``mat`` are ignored (NaN and inf in it do not
    propagate), as in torch.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> a = sr.sparse_coo_tensor([[0, 1], [1, 0]], [1., 2.], (2, 2))
    >>> sr.sparse.addmm(sr.ones(2, 2), a, sr.tensor([[1., 0.], [0., 1.]]), beta=0.5, alpha=2)
    tensor([[0.5000, 2.5000],
            [4.5000, 0.5000]])
    """
    _validate.addmm_operands(mat, mat1, mat2, beta, alpha, "addmm")
    return ops.SparseAddmm.apply(mat, mat1, mat2, beta, alpha)


def sampled_addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat1 @ mat2)``, computed only at the stored positions of the
    sparse ``input`` (SDDMM), like ``torch.sparse.sampled_addmm``.

    The result is sparse with ``input``'s coalesced pattern; explicit zeros of ``input``
    are sampled too. torch takes a CSR ``input`` only; sparse_ref takes COO. With
    ``beta == 0`` the values of ``input`` are ignored. A 3-D sparse ``input`` (B, m, p)
    samples a batch: ``mat1`` (B, m, k) and ``mat2`` (B, k, p), batch b with batch b
    (torch 2.13 runs a batch of CSR inputs forward, not backward).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> mask = sr.sparse_coo_tensor([[0, 1], [1, 0]], [0., 10.], (2, 2))
    >>> x = sr.tensor([[1., 2.], [3., 4.]])
    >>> sr.sparse.sampled_addmm(mask, x, x).to_dense()
    tensor([[ 0., 10.],
            [25.,  0.]])
    """
    if _validate.is_batch(input):  # 3-D: a batch of sampled products
        _validate.batched_sampled_addmm_operands(input, mat1, mat2, beta, alpha, "sampled_addmm")
        return _batched.sampled_addmm(input, mat1, mat2, beta, alpha)
    _validate.sampled_addmm_operands(input, mat1, mat2, beta, alpha, "sampled_addmm")
    return ops.SparseSampledAddmm.apply(input, mat1, mat2, beta, alpha)


# -- sums and softmax over the stored entries ---------------------------------------------------

def sum(input, dim=None, dtype=None):  # noqa: A001 (torch's name)
    """The sum of a sparse tensor's stored values over ``dim``, like ``torch.sparse.sum``.

    Parameters
    ----------
    input : SparseTensor
        COO or CSR (or a sparse vector, from an earlier sum).
    dim : int or tuple of ints, optional
        The dims to sum over; all of them when omitted.
    dtype : dtype, optional
        Cast ``input`` to it first (refusing values it cannot hold), and sum in it: without
        it, integer and bool values sum to int64 over every dim, as in torch, and keep
        their dtype over one dim, as ``torch.sparse.sum`` does (int32 wraps, bool stays
        bool; ``input.sum(dim)`` widens to int64, as torch's ``Tensor.sum``). float16 and
        bfloat16 are summed in float32 and rounded once.

    Returns
    -------
    Tensor or SparseTensor
        Over every dim: a 0-d dense tensor. Over one dim of a matrix: a sparse vector (COO,
        coalesced) with one entry per row (``dim=1``) or column (``dim=0``) that stores
        anything -- a row of explicit zeros gives a stored 0, an empty row no entry -- as
        torch returns it. Over no dim (``dim=()``): ``input`` coalesced.

    Each row (column) is summed in the order of its coalesced entries with
    ``np.add.reduceat``. Every stored entry receives its sum's gradient (explicit zeros
    included), so the gradient has ``input``'s coalesced pattern.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> a = sr.sparse_coo_tensor([[0, 0, 2], [0, 2, 1]], [1., 2., 0.], (3, 3))
    >>> sr.sparse.sum(a)
    tensor(3.)
    >>> rows = sr.sparse.sum(a, 1)        # row 1 stores nothing: no entry
    >>> rows.indices().tolist(), rows.values().tolist(), rows.shape
    ([[0, 2]], [3.0, 0.0], (3,))
    >>> sr.sparse.sum(a, 0).to_dense()
    tensor([1., 0., 2.])
    """
    _validate.sparse_tensor(input, "input", "sum")
    _validate.sparse_layout(input, "input", "sum", sparse_dims=(1, 2, 3))
    dims = _validate.reduce_dims(dim, input.ndim, "sum")
    _validate.sparse_sum_dims(input, dims, "sum")
    if dtype is not None:
        input = ops.cast(input, _dtypes.as_dtype(dtype, "sum"))
    # over one dim, torch.sparse.sum keeps the dtype (int32 wraps, bool stays bool; a
    # tensor's own .sum(dim) widens to int64, as torch's does); over every dim, int64
    return ops.sparse_sum(input, dims, keep_dtype=dtype is not None or 0 < len(dims) < input.ndim)


def softmax(input, dim: int, *, dtype=None):
    r"""Softmax over the stored entries of each row (``dim=1``) or column (``dim=0``) of a
    sparse matrix, like ``torch.sparse.softmax``: entries that are not stored count as
    -inf, so they are left out and stay unstored. Explicit zeros are stored values (they
    count as 0, i.e. weight exp(0)).

    .. math::

       Y_{ij} = \frac{\exp(S_{ij})}{\sum_{k:\,(i,k)\ \mathrm{stored}} \exp(S_{ik})}
       \qquad \text{for every stored } (i, j) \quad (\texttt{dim=1})

    computed as ``exp(x - max) / sum(exp(x - max))`` per row. The result has ``input``'s
    coalesced pattern (CSR for a CSR input; torch takes COO only). float32 and float64
    only (as torch); ``dtype`` casts ``input`` first. Differentiable: the gradient has
    ``input``'s coalesced pattern (see the Gradients page). This is the normalisation of
    attention weights over the edges of a graph (GAT).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> scores = sr.sparse_coo_tensor([[0, 0, 1], [0, 2, 1]], [1., 1., 5.], (2, 3))
    >>> w = sr.sparse.softmax(scores, dim=1)
    >>> w.indices().tolist(), w.values().tolist()
    ([[0, 0, 1], [0, 2, 1]], [0.5, 0.5, 1.0])
    """
    dim = _validate.softmax_dim(input, dim, "softmax")
    if dtype is not None:
        input = ops.cast(input, _dtypes.as_dtype(dtype, "softmax"))
    _validate.softmax_dtype(input, "softmax")
    return ops.SparseSoftmax.apply(input, dim, False)


def log_softmax(input, dim: int, *, dtype=None):
    """``log(softmax(input, dim))`` over the stored entries, computed as
    ``(x - max) - log(sum(exp(x - max)))`` per row (or column), like
    ``torch.sparse.log_softmax``; see :func:`softmax` for the pattern and the dtypes.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> scores = sr.sparse_coo_tensor([[0, 0, 1], [0, 2, 1]], [1., 1., 5.], (2, 3), dtype=sr.float64)
    >>> sr.sparse.log_softmax(scores, dim=1).values()
    tensor([-0.6931, -0.6931,  0.0000], dtype=sparse_ref.float64)
    """
    dim = _validate.softmax_dim(input, dim, "log_softmax")
    if dtype is not None:
        input = ops.cast(input, _dtypes.as_dtype(dtype, "log_softmax"))
    _validate.softmax_dtype(input, "log_softmax")
    return ops.SparseSoftmax.apply(input, dim, True)


def __getattr__(name):
    """A torch name sparse_ref does not have: an AttributeError that says so."""
    raise missing("module 'sparse_ref.sparse'", name)

"""Differentiable sparse ops: every product of ``sparse_ref.sparse`` and the sparse tensor
methods, forward and backward side by side.

Notation: G is the gradient of the output, ^H the conjugate transpose, and
``mask(M, A)`` the entries of M at the stored positions of A's coalesced pattern. A sparse
input's gradient is carried as one value per entry of its coalesced pattern (see
``engine``), so every sparse gradient below is a *masked* one, computed without ever
forming the dense matrix:

=============================  ==============================================  ============================
op                             gradient of a sparse operand                    of a dense operand
=============================  ==============================================  ============================
``C = A @ B`` (B dense)        ``mask(G @ B^H, A)``: SDDMM                     ``A^H @ G``: SpMM
``C = X @ S`` (X dense)        ``mask(X^H @ G, S)``: SDDMM                     ``G @ S^H``: SpMM
``C = A @ B`` (sparse)         ``mask(G @ B^H, A)``, ``mask(A^H @ G, B)``:
                               masked SpGEMM
``sampled_addmm``              ``conj(beta) G`` (input)                        ``conj(alpha) G @ mat2^H``,
                                                                               ``conj(alpha) mat1^H @ G``
``c * S``, ``S / c``, ``-S``   ``conj(c) G``, ``G / conj(c)``, ``-G``
``S * X`` (X dense)            ``G conj(X)`` at S's entries                    ``G conj(S)`` at S's entries
``A + B``, ``A - B``           ``mask(G, A)``, ``+-mask(G, B)``
``A * B`` (both sparse)        ``mask(G conj(B), A)``, ``mask(G conj(A), B)``
``S.sum(dim)``                 G of the sum each entry is in
``softmax(S, dim)``            ``Y (G - rowsum(G Y))``
``log_softmax(S, dim)``        ``G - exp(Y) rowsum(G)``
``S.to(dtype)``                G converted back to S's dtype
=============================  ==============================================  ============================
"""

from __future__ import annotations

import numpy as np

from sparse_ref import _backend, _dtypes, _formats, _precision, _products
from sparse_ref._arrays import converted
from sparse_ref._errors import ShapeError
from sparse_ref._grad_mode import no_grad
from sparse_ref._tensor import SparseCsrTensor, SparseTensor, Tensor, _LaterRows
from sparse_ref.autograd.dense_ops import conj, ieee, unbroadcast
from sparse_ref.autograd.engine import Function


def _pattern(s):
    """Row and column of every entry of s's coalesced pattern."""
    idx = s._coalesced_form()._idx
    return idx[0], idx[1]


# -- forward helpers (shared by the ops below) ---------------------------------------------

def fits(x: np.ndarray, rows, cols, where: str) -> np.ndarray:
    """``x``, a dense operand's array, once its rows and columns are the ones a kernel will
    index by (None: any). The call checked the operand's shape, but the op reads its data
    after that, and another thread may have set ``.data`` to an array of another shape in
    between: the kernels do not check bounds, so it is checked here, on the array they get."""
    if x.ndim != 2 or (rows is not None and x.shape[0] != rows) or (cols is not None and x.shape[1] != cols):
        want = "x".join("*" if n is None else str(n) for n in (rows, cols))
        raise ShapeError(f"{where}: a dense operand is {list(x.shape)} now, not {want} as when the call "
                         "checked it (was its .data set on another thread meanwhile?)")
    return x


def sparse_dense(a, b: np.ndarray, reduce: str = "sum", wide: bool = False):
    """``(out, arg)`` of ``A @ B`` for sparse A and dense B (arg: amax/amin winners);
    ``wide``: a half product in float32, not yet rounded."""
    col32 = None
    if b.ndim == 2 and b.shape[1] == 1 and reduce == "sum":  # a vector: int32 columns, read faster
        a = a._now()  # (both forms from one state: SparseMm.reads_whole hands over the tensor itself)
        col32 = a._csr_col32()
    crow, col, val = a._csr()
    if b.ndim != 2 or b.shape[0] != a._shape[1]:  # (fits, inline: every product asks it)
        fits(b, a._shape[1], None, "mm")
    b = np.ascontiguousarray(b)
    if reduce == "sum":
        return _products.spmm(crow, col, val, b, wide=wide, col32=col32), None
    return _products.spmm_reduce(crow, col, val, b, reduce)


def same_rows(g: np.ndarray):
    """The row of a 2-D gradient whose rows are all one array in memory (row stride 0: a
    sum's or mean's gradient, broadcast), as a (1, k) array; else None. A kernel that
    gathers rows of G can then point every index at that one row: the same products in
    the same order, so the same bits, without making the n x k copy.

    On the Cython kernels only: the reference kernels (and a backend of your own) get G
    whole and the pattern's own rows, so that stepping through them shows the arrays the
    math names (docs/stepping.rst)."""
    if g.ndim == 2 and g.shape[0] > 1 and g.strides[0] == 0 and _backend.get_backend() == "cython":
        return np.ascontiguousarray(g[:1])
    return None


def sparse_h_dense(a, g: np.ndarray, wide: bool = False) -> np.ndarray:
    """``A^H @ G``: SpMM with A's transposed CSR and conjugated values."""
    t_crow, t_col, t_val, _ = a._csr_t()
    row = same_rows(g)
    if row is not None:  # G's rows are one row: every entry of A^H reads row 0 of it
        return _products.spmm(t_crow, np.zeros(t_col.shape[0], dtype=t_col.dtype), conj(t_val), row, wide=wide)
    return _products.spmm(t_crow, t_col, conj(t_val), np.ascontiguousarray(g), wide=wide)


def dense_sparse(x: np.ndarray, s) -> np.ndarray:
    """``X @ S`` as ``(S^T @ X^T)^T``: SpMM with the transposed CSR of S."""
    t_crow, t_col, t_val, _ = s._csr_t()
    x = fits(x, None, s.shape[0], "mm")
    return np.ascontiguousarray(_products.spmm(t_crow, t_col, t_val, np.ascontiguousarray(x.T)).T)


def combine(base: np.ndarray, product: np.ndarray, beta, alpha, small=None) -> np.ndarray:
    """``beta * base + alpha * product`` in the product's dtype; beta == 0 drops base.
    For a half dtype ``small``, ``product`` is the unrounded float32 product: base is
    widened, the whole expression formed in float32 and rounded once."""
    dt = product.dtype
    scaled = product if alpha == 1 else product * dt.type(alpha)
    if beta == 0:
        return _precision.finish(scaled, small)
    base = _precision.wide(base)
    base = base if beta == 1 else base * dt.type(beta)
    return _precision.finish(np.ascontiguousarray(np.broadcast_to(base, product.shape) + scaled), small)


def scaled(x: np.ndarray, c, small=None) -> np.ndarray:
    """``x * c`` in x's dtype (c rounded to it first, as for float32). For a half dtype
    ``small``, x is (or is widened to) float32 and the product is rounded once."""
    x = _precision.wide(x)
    return _precision.finish(x * x.dtype.type(c), small)


# -- products -------------------------------------------------------------------------------

class SparseMm(Function):
    """``C = A @ B``, A sparse, B dense, with ``reduce`` in sum | mean | amax | amin.

    sum:        grad_A = mask(G @ B^H, A) (SDDMM),        grad_B = A^H @ G (SpMM)
    mean:       the same with G's row i divided by row i's stored count
    amax/amin:  C[i, j] = a_q * B[k_q, j] for the winning entry q = arg[i, j]; only it
                gets gradient: grad_A[q] += G[i, j] * conj(B[k_q, j]),
                grad_B[k_q, j] += conj(a_q) * G[i, j] (empty rows give nothing)
    """

    _name = "SparseAddmmBackward0"
    fresh_grads = True  # both gradients are new kernel outputs (sddmm, spmm, or np.zeros)
    reads_whole = True  # forward reads A through _csr() alone, or with _csr_col32() from one _now() (sparse_dense)

    def forward(self, a, b, reduce="sum"):
        if reduce != "sum":
            self._name = "SparseMmReduceImplBackward0"
        self.a, self.b, self.reduce = a, b._data, reduce  # (b's data read once: what both use)
        out, self.arg = sparse_dense(a, self.b, reduce)
        return Tensor(out)

    def backward(self, grad):
        a, b, reduce = self.a, self.b, self.reduce
        need_a, need_b = self.needs[0], self.needs[1]
        if reduce in ("amax", "amin"):
            return (*self._routed(grad, need_a, need_b), None)
        if reduce == "mean":  # (half: G / count in float32, rounded once with the product)
            crow = a._csr()[0]
            grad = _precision.wide(grad)
            counts = np.maximum(np.diff(crow), 1).astype(grad.real.dtype)
            grad = grad / counts[:, None]
        grad_a = grad_b = None
        if need_a:
            rows, cols = _pattern(a)
            row = same_rows(grad)
            if row is not None:  # G's rows are one row (see same_rows): every entry reads it
                grad_a = _products.sddmm(np.zeros(rows.shape[0], dtype=rows.dtype), cols, row, np.ascontiguousarray(conj(b)))
            else:
                grad_a = _products.sddmm(rows, cols, np.ascontiguousarray(grad), np.ascontiguousarray(conj(b)))
        if need_b:
            grad_b = sparse_h_dense(a, grad)
        return grad_a, grad_b, None

    def _routed(self, grad, need_a, need_b):
        crow, col, val = self.a._csr()
        arg, b = self.arg, self.b
        small = _precision.small_dtype(val)  # half: the sums in float32, rounded once
        grad, val, b = _precision.wide(grad), _precision.wide(val), _precision.wide(b)
        i, j = np.nonzero(arg >= 0)  # row-major: contributions are added in this order
        q = arg[i, j]
        k = col[q]
        grad_a = grad_b = None
        if need_a:
            grad_a = np.zeros(val.shape[0], dtype=val.dtype)
            np.add.at(grad_a, q, grad[i, j] * conj(b[k, j]))
            grad_a = _precision.finish(grad_a, small)
        if need_b:
            grad_b = np.zeros(b.shape, dtype=b.dtype)
            np.add.at(grad_b, (k, j), conj(val[q]) * grad[i, j])
            grad_b = _precision.finish(grad_b, small)
        return grad_a, grad_b


class DenseSparseMm(Function):
    """``C = X @ S``, X dense, S sparse: grad_X = G @ S^H, grad_S = mask(X^H @ G, S)."""

    _name = "MmBackward0"

    def forward(self, x, s):
        self.x, self.s = x._data, s
        return Tensor(dense_sparse(self.x, s))

    def backward(self, grad):
        grad_x = grad_s = None
        if self.needs[0]:
            crow, col, val = self.s._csr()  # G @ S^H = (conj(S) @ G^T)^T
            grad_x = np.ascontiguousarray(
                _products.spmm(crow, col, conj(val), np.ascontiguousarray(grad.T)).T)
        if self.needs[1]:
            rows, cols = _pattern(self.s)
            grad_s = _products.sddmm(rows, cols, np.ascontiguousarray(conj(self.x).T),
                                     np.ascontiguousarray(grad.T))
        return grad_x, grad_s


class SparseSparseMm(Function):
    """``C = A @ B``, both sparse, C the structural product (coalesced):
    grad_A = mask(G @ B^H, A), grad_B = mask(A^H @ G, B), as masked SpGEMMs. G is masked to
    C's pattern, which holds every (i, j) that any a_ik * b_kj reaches, so nothing is lost.
    """

    _name = "SparseSparseMatmulBackward0"

    def forward(self, a, b, max_nnz=None):
        a_crow, a_col, a_val = a._csr()
        b_crow, b_col, b_val = b._csr()
        csr = a.is_sparse_csr and b.is_sparse_csr  # CSR @ CSR -> CSR, like torch
        idx, val, crow = _products.spgemm(a_crow, a_col, a_val, b_crow, b_col, b_val, b.shape[1],
                                          max_nnz=max_nnz, rows=None if csr else False)
        shape = (a.shape[0], b.shape[1])
        if csr:
            out = SparseCsrTensor._make_csr(crow, idx[0], val, shape)
        else:  # COO: its row indices are written into idx[0] from crow on first use
            out = SparseTensor._make_rows_later(_LaterRows(crow, idx), val, shape)
        self.a, self.b, self.c_crow, self.c_col = a, b, crow, out._csr()[1]
        return out

    def backward(self, grad):
        a, b = self.a, self.b
        grad_a = grad_b = None
        if self.needs[0]:
            rows, cols = _pattern(a)
            b_crow, b_col, b_val = b._csr()
            grad_a = _products.spgemm_masked(rows, cols, self.c_crow, self.c_col, grad,
                                             b_crow, b_col, conj(b_val))
        if self.needs[1]:
            rows, cols = _pattern(b)
            at_crow, at_col, at_val, _ = a._csr_t()
            gt_crow, gt_col, perm, names = _formats.csr_transpose(self.c_crow, self.c_col, b.shape[1])
            if names is not None:  # G^T's rows are the columns of C that occur: look B's up
                rank = np.searchsorted(names, cols)
                found = np.zeros(cols.shape[0], dtype=bool)
                inside = rank < names.shape[0]
                found[inside] = names[rank[inside]] == cols[inside]
                gt_crow = np.append(gt_crow, gt_crow[-1])  # an empty row for columns C lacks
                cols = np.where(found, rank, names.shape[0])
            grad_b = _products.spgemm_masked(rows, cols, at_crow, at_col, conj(at_val),
                                             gt_crow, gt_col, grad[perm])
        return grad_a, grad_b, None


class Relabel(Function):
    """The same stored values under new row and column numbers (an order-preserving
    renaming, so the coalesced order of the values does not change): the gradient passes
    unchanged. Used to multiply matrices whose row or shared dimension is too large for
    row pointers: the rows and columns that occur are numbered 0, 1, ... first."""

    _name = "RelabelBackward0"

    def forward(self, s, rows, cols, shape):
        val = s._coalesced_form()._val
        if val.shape[0] != rows.shape[0]:  # (the renaming was made from the pattern before)
            raise RuntimeError("mm: an operand's stored entries changed while the product ran (an "
                               "in-place op on another thread?)")
        return SparseTensor._make(np.stack([rows, cols]), val, shape, coalesced=True)

    def backward(self, grad):
        return grad, None, None, None


def relabeled_operands(a, b):
    """``(a_small, b_small, row_names)``: A and B with the rows of A, and the shared
    indices, that occur numbered 0, 1, ... (differentiable through ``Relabel``)."""
    a_row, a_col = _pattern(a)
    b_row, b_col = _pattern(b)
    row_names, a_rows = np.unique(a_row, return_inverse=True)
    shared = np.unique(np.concatenate([a_col, b_row]))
    a_small = Relabel.apply(a, a_rows.astype(np.int64), np.searchsorted(shared, a_col),
                            (row_names.shape[0], shared.shape[0]))
    b_small = Relabel.apply(b, np.searchsorted(shared, b_row), b_col, (shared.shape[0], b.shape[1]))
    return a_small, b_small, row_names


def huge_sparse_sparse(a, b, max_nnz=None):
    """``A @ B`` when A's row count or the shared dimension is far larger than nnz (say
    2**40): number the rows of A, and the shared indices, that occur; multiply the small
    matrices; name the rows back. Differentiable through ``Relabel``."""
    a_small, b_small, row_names = relabeled_operands(a, b)
    c_small = SparseSparseMm.apply(a_small, b_small, max_nnz)
    rows, cols = c_small._idx
    return Relabel.apply(c_small, row_names[rows], cols, (a.shape[0], b.shape[1]))


# Below this many rows or columns, an operand's pointers cost at most 512 MiB: SpGEMM keeps
# them rather than relabel both operands (an extra pass), even when most are empty.
RELABEL_ABOVE = 2**26


def _huge(n: int, nnz: int) -> bool:
    """A dimension too long to give every index a pointer (``_formats.too_many_pointers``),
    and long enough that its pointers would cost real memory."""
    return _formats.too_many_pointers(n, nnz) and n > RELABEL_ABOVE


def needs_relabel(a, b) -> bool:
    """Whether ``A @ B`` should run on relabelled operands (:func:`huge_sparse_sparse`)."""
    return _huge(a.shape[0], a._nnz()) or _huge(a.shape[1], a._nnz() + b._nnz())


def sparse_sparse_mm(a, b, max_nnz=None):
    """``A @ B`` for two (checked) sparse matrices: ``SparseSparseMm``, or, when A's rows or
    the shared dimension are far too many for row pointers, on relabelled operands."""
    if needs_relabel(a, b):
        return huge_sparse_sparse(a, b, max_nnz)
    return SparseSparseMm.apply(a, b, max_nnz)


class SparseAddmm(Function):
    """``out = beta * mat + alpha * (A @ B)``, A sparse: grad_mat = conj(beta) G (summed
    over broadcast dims), grad_A = conj(alpha) mask(G @ B^H, A), grad_B = conj(alpha) A^H G.
    (torch 2.13 leaves alpha and beta unconjugated in the first two; this is the math.)"""

    _name = "SparseAddmmBackward0"
    saves = (2,)  # backward reads mat2's data (mat1 is sparse)

    def forward(self, mat, a, b, beta, alpha):
        self.mat_shape, self.a, self.b, self.beta, self.alpha = mat.shape, a, b._data, beta, alpha
        product, _ = sparse_dense(a, self.b, wide=True)
        return Tensor(combine(mat._data, product, beta, alpha, _precision.small_dtype(self.b)))

    def backward(self, grad):
        small = _precision.small_dtype(grad)  # half: each gradient in float32, rounded once
        beta, alpha = np.conjugate(self.beta), np.conjugate(self.alpha)
        grad_mat = grad_a = grad_b = None
        if self.needs[0]:
            grad_mat = _precision.finish(unbroadcast(scaled(grad, beta), self.mat_shape), small)
        if self.needs[1]:
            rows, cols = _pattern(self.a)
            grad_a = _products.sddmm(rows, cols, np.ascontiguousarray(grad), np.ascontiguousarray(conj(self.b)),
                                     wide=True)
            grad_a = scaled(grad_a, alpha, small)
        if self.needs[2]:
            grad_b = scaled(sparse_h_dense(self.a, grad, wide=True), alpha, small)
        return grad_mat, grad_a, grad_b, None, None


class SparseSampledAddmm(Function):
    """``out = beta * input + alpha * mask(mat1 @ mat2, input)`` (SDDMM), sparse ``input``:
    grad_input = conj(beta) G, grad_mat1 = conj(alpha) G @ mat2^H (SpMM),
    grad_mat2 = conj(alpha) mat1^H @ G (SpMM with G's transposed pattern)."""

    _name = "SparseSampledAddmmBackward0"

    def forward(self, input, mat1, mat2, beta, alpha):
        c = input._coalesced_form()
        m1, m2 = mat1._data, mat2._data  # (each read once: see fits)
        fits(m1, c.shape[0], None, "sampled_addmm")
        fits(m2, m1.shape[1], c.shape[1], "sampled_addmm")
        x = np.ascontiguousarray(m1)
        y = np.ascontiguousarray(m2.T)
        product = _products.sddmm(c._idx[0], c._idx[1], x, y, wide=True)
        self.input, self.mat1, self.mat2, self.beta, self.alpha = input, m1, m2, beta, alpha
        small = _precision.small_dtype(x)
        return c._with_values(combine(c._val, product, beta, alpha, small))  # input's pattern and layout

    def backward(self, grad):
        small = _precision.small_dtype(grad)  # half: each gradient in float32, rounded once
        alpha = np.conjugate(self.alpha)
        grad_in = grad_1 = grad_2 = None
        if self.needs[0]:
            grad_in = scaled(grad, np.conjugate(self.beta), small)
        crow, col, _ = self.input._csr()
        if self.needs[1]:
            grad_1 = scaled(_products.spmm(crow, col, grad, np.ascontiguousarray(conj(self.mat2).T), wide=True),
                            alpha, small)
        if self.needs[2]:
            t_crow, t_col, _, perm = self.input._csr_t()
            grad_2 = np.ascontiguousarray(scaled(
                _products.spmm(t_crow, t_col, grad[perm], np.ascontiguousarray(conj(self.mat1)), wide=True),
                alpha, small).T)
        return grad_in, grad_1, grad_2, None, None


# -- conversions and views --------------------------------------------------------------------

class SparseFromValues(Function):
    """``S = sparse_coo_tensor(indices, v)`` with values v that require grad: S's gradient
    (one value per coalesced entry) goes back to every stored value, duplicates each
    receiving their merged entry's gradient."""

    _name = "SparseCooTensorWithDimsAndTensorsBackward0"
    saves = ()  # backward reads no input data

    def forward(self, values, indices, data, shape):
        self.values_dtype = values.dtype
        out = SparseTensor._make(indices, data, shape, coalesced=False)
        self.out_idx, self.out_val, self.shape = out._idx, out._val, shape
        return out

    def backward(self, grad):
        _, _, pos = _formats.coalesce_coo(self.out_idx, self.out_val, self.shape, with_pos=True)
        return grad[pos].astype(self.values_dtype, copy=False), None, None, None


class CsrFromValues(Function):
    """``C = sparse_csr_tensor(crow, col, v)`` with values v that require grad: C's
    entries are v's, in order, so grad_v = G."""

    _name = "SparseCompressedTensorBackward0"
    saves = ()  # backward reads no input data

    def forward(self, values, crow, col, data, shape):
        self.values_dtype = values.dtype
        return SparseCsrTensor._make_csr(crow, col, data, shape)

    def backward(self, grad):
        return grad.astype(self.values_dtype, copy=False), None, None, None, None


class ToCsr(Function):
    """``C = S.to_sparse_csr()``: the same coalesced entries in CSR order, so the gradient
    passes unchanged."""

    _name = "ToSparseCsrBackward0"
    saves = ()  # backward reads no input data

    def forward(self, s):
        crow, col, val = s._csr()
        return SparseCsrTensor._make_csr(crow, col, val, s.shape)

    def backward(self, grad):
        return (grad,)


class ToCoo(Function):
    """``S = C.to_sparse()`` of a CSR tensor: the same entries, so the gradient passes
    unchanged."""

    _name = "ToSparseBackward0"
    saves = ()  # backward reads no input data

    def forward(self, c):
        return SparseTensor._make(c._idx, c._val, c.shape, coalesced=True)

    def backward(self, grad):
        return (grad,)


class ToDense(Function):
    """``D = S.to_dense()``: grad_S = mask(G, S). (S may have any number of index rows and
    dense dims: every index below is the tuple of the index rows, which picks a whole dense
    block per entry, ``D[i0, i1, ...] = block``.)"""

    _name = "ToDenseBackward0"
    saves = ()  # backward reads S's pattern only (the engine checks it)

    def forward(self, s):
        self.s = s
        c = s._coalesced_form()
        out = np.zeros(s.shape, dtype=s.dtype)
        out[tuple(c._idx)] = c._val
        return Tensor(out)

    def backward(self, grad):
        return (np.ascontiguousarray(grad[tuple(self.s._coalesced_form()._idx)]),)


class ToSparse(Function):
    """``S = X.to_sparse(k)``: the leading k dims of X sparse, the rest dense. An index tuple
    is stored when its block ``X[i0, ..., ik-1]`` holds any nonzero (NaN counts; 0 and -0.0
    do not), with its whole block. grad_X = G's blocks scattered at S's pattern."""

    _name = "ToSparseBackward0"
    saves = ()  # backward reads no input data

    def forward(self, x, sparse_dim):
        data = x._data
        lead = data.shape[:sparse_dim]
        block = int(np.prod(data.shape[sparse_dim:], dtype=np.int64))
        stored = (data != 0).reshape(lead + (block,)).any(axis=-1)  # any nonzero in the block
        self.shape, self.where = x.shape, np.nonzero(stored)  # row-major: the result is coalesced
        indices = np.stack(self.where).astype(np.int64, copy=False)
        return SparseTensor._make(indices, data[self.where], x.shape, coalesced=True)

    def backward(self, grad):
        out = np.zeros(self.shape, dtype=grad.dtype)
        out[self.where] = grad
        return out, None


class Coalesce(Function):
    """``C = S.coalesce()``: the same matrix, so the masked gradient passes unchanged (each
    stored duplicate of S receives the gradient of its merged entry)."""

    _name = "CoalesceBackward0"
    saves = ()  # backward reads no input data

    def forward(self, s):
        out = SparseTensor._coalesced_of(s._idx, s._val, s.shape)
        if _backend.trusted():  # (a registered backend's coalesce is not kept: _backend.trusted)
            s._cache.setdefault("coalesced", out.detach())
        return out

    def backward(self, grad):
        return (grad,)


class Values(Function):
    """``v = S.values()`` of a coalesced S: grad_S = G (one value per stored entry)."""

    _name = "ValuesBackward0"
    saves = ()  # backward reads no input data

    def forward(self, s):
        return Tensor(s._val)

    def backward(self, grad):
        return (grad,)


class SparseTranspose(Function):
    """``T = S.t()``: T's coalesced entry q is S's coalesced entry perm[q], so
    grad_S[perm] = G."""

    _name = "TBackward0"
    saves = ()  # backward reads S's pattern only (the engine checks it)

    def forward(self, s):
        self.s = s
        out = SparseTensor._make(s._idx[::-1], s._val, s.shape[::-1], coalesced=False)
        out._coalesced = s._val.shape[0] == 0  # (one entry is flagged uncoalesced too, as torch's)
        return out

    def backward(self, grad):
        # S's coalesced pattern in CSR form, its rows renamed first when there are far more
        # rows than entries (2**40, say): the forward took any shape, so backward does too.
        row, col = _pattern(self.s)
        rows, nrows, _ = _formats.renamed_keys(row, self.s.shape[0])
        crow = _formats.coo_to_csr(rows, nrows)
        perm = _formats.csr_transpose(crow, col, self.s.shape[1])[2]  # renames huge column counts
        out = np.empty_like(grad)
        out[perm] = grad
        return (out,)


class SparseSum(Function):
    """``s = S.sum()`` over the stored entries: grad_S = G on every stored entry. Integer
    and bool values sum to int64, as torch's; ``keep_dtype`` (a ``dtype=`` asked for) sums
    in S's own dtype, wrapping as torch's does."""

    _name = "SumBackward0"
    saves = ()  # backward reads no input data

    def forward(self, s, keep_dtype=False):
        c = s._coalesced_form()
        self.nnz = c._nnz()
        self.n_args = 2 if keep_dtype else 1
        return Tensor(_precision.reduced(lambda v: v.sum(dtype=v.dtype if keep_dtype else None), c._val))

    def backward(self, grad):
        return (np.full(self.nnz, grad.reshape(()), dtype=grad.dtype),) + (None,) * (self.n_args - 1)


# -- sparse arithmetic ------------------------------------------------------------------------
#
# Ops that keep S's pattern (c * S, S / c, -S, S * X for a dense X, casts) keep S's stored
# entries -- duplicates, explicit zeros, the coalesced flag and the layout -- as torch does.
# The output's coalesced pattern is then S's, so the carried gradient maps one to one.
# The union (S + T) and the intersection (S * T) are built from the coalesced patterns.

def with_layout_of(s, indices: np.ndarray, values: np.ndarray, shape) -> SparseTensor:
    """A coalesced result: CSR when s is CSR (torch keeps CSR there), else COO."""
    if s.is_sparse_csr:  # (indices taken with a fancy index may be laid out by column)
        return SparseCsrTensor._make_csr(_formats.coo_to_csr(np.ascontiguousarray(indices[0]), shape[0]),
                                         np.ascontiguousarray(indices[1]), values, shape)
    return SparseTensor._make(indices, values, shape, coalesced=True)


class SparseScale(Function):
    """``out = c * S`` for a number c: every stored value times c. grad_S = conj(c) G."""

    _name = "MulBackward0"
    saves = ()  # backward reads no input data

    def forward(self, s, c):  # (c: float32 for a half S, rounded back: _validate.scalar_operand)
        self.c = c
        return s._with_values(_precision.rounded(s._val * c, s._val))

    def backward(self, grad):
        return _precision.rounded(grad * np.conj(self.c), grad), None


class SparseNeg(Function):
    """``out = -S``: every stored value negated (an explicit 0 becomes -0.0, as in torch).
    grad_S = -G."""

    _name = "NegBackward0"
    saves = ()  # backward reads no input data

    def forward(self, s):
        return s._with_values(-s._val)

    def backward(self, grad):
        return (-grad,)


class SparseClone(Function):
    """``out = S.clone()``: the same pattern, the values copied. grad_S = G."""

    _name = "CloneBackward0"
    saves = ()

    def forward(self, s):
        return s._with_values(s._val.copy())

    def backward(self, grad):
        return (grad,)


@ieee
class SparseDiv(Function):
    """``out = S / y`` for a number or a 0-d dense tensor y: every stored value divided by y.
    grad_S = G / conj(y); grad_y = -sum(G * conj(s / y**2)) over S's coalesced values s."""

    _name = "DivBackward0"

    def forward(self, s, y):
        self.s, self.y = s, (y._data if isinstance(y, Tensor) else y)
        if np.ndim(self.y) != 0:  # (the call checked y; another thread may have set y.data since)
            raise ShapeError(f"div: the divisor is {list(np.shape(self.y))} now, not a 0-d tensor as when "
                             "the call checked it (was its .data set on another thread meanwhile?)")
        return s._with_values(_precision.rounded(s._val / self.y, s._val))  # (as SparseScale)

    def backward(self, grad):
        grad_s = grad_y = None
        if self.needs[0]:
            grad_s = _precision.rounded(grad / np.conj(self.y), grad)
        if self.needs[1]:
            x = self.s._coalesced_form()._val
            grad_y = np.asarray(-np.sum(grad * np.conj(x / (self.y * self.y))), dtype=grad.dtype)
        return grad_s, grad_y


def _broadcast_where(shape: tuple, rows: np.ndarray, cols: np.ndarray):
    """``(shape2, (r, c))``: an operand of ``shape`` (at most 2-D) as a matrix, and where its
    element broadcast to (rows, cols) of a matrix lies in it: 0 along a dim of length 1.
    Never a view of the operand broadcast to the whole matrix, whose size (rows x columns)
    need not even fit in an index."""
    shape2 = (1,) * (2 - len(shape)) + tuple(shape)
    return shape2, (rows if shape2[0] != 1 else np.zeros(rows.shape[0], dtype=rows.dtype),
                    cols if shape2[1] != 1 else np.zeros_like(cols))


def read_broadcast(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``x`` broadcast to a matrix, read at (rows, cols)."""
    shape2, where = _broadcast_where(x.shape, rows, cols)
    return x.reshape(shape2)[where]


def scatter_to(values: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple) -> np.ndarray:
    """The dense gradient of an operand of ``shape`` that was broadcast to a matrix and read
    at (rows, cols): every value added into the element it was read from."""
    shape2, where = _broadcast_where(shape, rows, cols)
    out = np.zeros(shape2, dtype=values.dtype)
    np.add.at(out, where, values)
    return out.reshape(shape)


class SparseDenseMul(Function):
    """``out = S * X`` (and ``X * S``), X dense and broadcast to S's shape: S's stored
    values times X at their positions, S's pattern kept (as torch). At S's coalesced
    entries p = (i, j): grad_S[p] = G[p] conj(X[i, j]); grad_X[i, j] += G[p] conj(s_p)
    (summed over the dims X was broadcast along; zero where S stores nothing)."""

    _name = "MulBackward0"

    def forward(self, s, x):
        self.s, self.x = s, x._data
        return s._with_values(s._val * read_broadcast(x._data, s._idx[0], s._idx[1]))

    def backward(self, grad):
        rows, cols = _pattern(self.s)
        grad_s = grad_x = None
        if self.needs[0]:
            grad_s = grad * conj(read_broadcast(self.x, rows, cols))
        if self.needs[1]:
            grad_x = scatter_to(grad * conj(self.s._coalesced_form()._val), rows, cols, self.x.shape)
        return grad_s, grad_x


def union(a, b, sign: int):
    """``(indices, values, pos)`` of A + sign * B on the union of the coalesced patterns:
    ``_formats.coalesce`` of the two coalesced lists one after the other, so a shared
    entry is a + sign * b (in that order) and explicit zeros and cancellations stay.
    ``pos[p]`` is the union position of A's coalesced entry p (p < nnz(A)), then of B's."""
    ca, cb = a._coalesced_form(), b._coalesced_form()
    idx = np.concatenate([ca._idx, cb._idx], axis=1)
    val = np.concatenate([ca._val, cb._val if sign > 0 else -cb._val])
    return _formats.coalesce(idx[0], idx[1], val, a.shape[0], with_pos=True)


class SparseAdd(Function):
    """``out = A + B`` (sign 1) or ``A - B`` (sign -1), both sparse. When both are coalesced
    (or A is CSR: then the result is CSR), the coalesced union of the patterns, as torch
    gives it bit for bit. Otherwise, like torch, an uncoalesced result: the two lists of
    stored entries one after the other (torch runs its two-pointer merge on the unsorted
    lists, which merges some equal neighbours; the matrix and the flag are the same).
    Either way the coalesced pattern is the union, so grad_A = mask(G, A) and
    grad_B = sign * mask(G, B): G read at each operand's own entries (``pos``)."""

    _name = "AddBackward0"
    saves = ()  # backward reads no input data

    def forward(self, a, b, sign):
        if sign < 0:
            self._name = "SubBackward0"
        self.a, self.b, self.sign, self.pos = a, b, sign, None
        if a.is_sparse_csr or (a.is_coalesced() and b.is_coalesced()):
            indices, val, self.pos = union(a, b, sign)
            return with_layout_of(a, indices, val, a.shape)
        val = np.concatenate([a._val, b._val if sign > 0 else -b._val])
        return SparseTensor._make(np.concatenate([a._idx, b._idx], axis=1), val, a.shape, coalesced=False)

    def backward(self, grad):
        pos = self.pos if self.pos is not None else union(self.a, self.b, self.sign)[2]
        n_a = self.a._coalesced_form()._nnz()
        grad_a = grad[pos[:n_a]] if self.needs[0] else None
        grad_b = None
        if self.needs[1]:
            grad_b = grad[pos[n_a:]] if self.sign > 0 else -grad[pos[n_a:]]
        return grad_a, grad_b, None


class SparseMul(Function):
    """``out = A * B`` elementwise, both sparse: the intersection of the coalesced patterns
    (coalesced; CSR when A is CSR), explicit zeros kept. At a shared entry a_p b_q:
    grad_A[p] = G conj(b_q), grad_B[q] = G conj(a_p); A's and B's other entries get 0
    (masked: each gradient has its operand's own pattern)."""

    _name = "MulBackward0"

    def forward(self, a, b):
        ca, cb = a._coalesced_form(), b._coalesced_form()
        # position of each of A's entries among B's (-1: B does not store it)
        in_b = _formats.values_at(cb._idx, np.arange(1, cb._nnz() + 1), ca._idx) - 1
        self.p = np.flatnonzero(in_b >= 0)
        self.q = in_b[self.p]
        self.a_val, self.b_val = ca._val, cb._val
        return with_layout_of(a, ca._idx[:, self.p], ca._val[self.p] * cb._val[self.q], a.shape)

    def backward(self, grad):
        grad_a = grad_b = None
        if self.needs[0]:
            grad_a = np.zeros(self.a_val.shape[0], dtype=grad.dtype)
            grad_a[self.p] = grad * conj(self.b_val[self.q])
        if self.needs[1]:
            grad_b = np.zeros(self.b_val.shape[0], dtype=grad.dtype)
            grad_b[self.q] = grad * conj(self.a_val[self.p])
        return grad_a, grad_b


class SparseTo(Function):
    """``out = S.to(dtype)``: the stored values converted (a value the dtype cannot hold is
    refused), S's pattern kept. grad_S = G converted back (its real part for a real S)."""

    _name = "ToCopyBackward0"
    saves = ()  # backward reads no input data

    def forward(self, s, dtype):
        self.source = s.dtype
        return s._with_values(converted(s._val, dtype, "to"))

    def backward(self, grad):
        if self.source.kind != "c":
            grad = grad.real
        return grad.astype(self.source), None


def cast(s, dtype, copy: bool = False):
    """``s.to(dtype)``: s itself when it has that dtype (unless copy), as in torch. A cast to
    an integer dtype is not differentiable (its result cannot require grad)."""
    if s.dtype == dtype and not copy:
        return s
    if _dtypes.kind(dtype) not in "fc":
        with no_grad():
            return SparseTo.apply(s, dtype)
    return SparseTo.apply(s, dtype)


# Reductions and softmax over one dim work on groups of S's coalesced entries: the entries
# of one row (dim=1) or of one column (dim=0), each group in ascending order of the other
# index. Rows are groups in the coalesced (row-major) order already; columns come from one
# stable sort by column. No group is empty, so np.*.reduceat over the group starts is exact.

def groups(s, dim: int):
    """``(order, starts, counts, keys)`` of S's coalesced entries grouped along ``dim``:
    entry ``order[k]`` is the k-th in group order (order is None for rows: the identity),
    group g starts at ``starts[g]``, holds ``counts[g]`` entries and is row (or column)
    ``keys[g]``."""
    key = s._coalesced_form()._idx[1 - dim]
    order = None if dim == 1 else np.argsort(key, kind="stable")
    key = key if order is None else key[order]
    n = key.shape[0]
    starts = np.flatnonzero(np.concatenate([[n > 0], key[1:] != key[:-1]]))
    counts = np.diff(np.append(starts, n))
    return order, starts, counts, key[starts]


def grouped(values: np.ndarray, order) -> np.ndarray:
    return values if order is None else values[order]


def ungrouped(values: np.ndarray, order) -> np.ndarray:
    if order is None:
        return values
    out = np.empty_like(values)
    out[order] = values
    return out


def group_sums(values: np.ndarray, starts: np.ndarray, dtype=None) -> np.ndarray:
    """The sum of every group (np.add.reduceat in the group order; no group is empty), in
    ``dtype`` (default: the values' own)."""
    dtype = values.dtype if dtype is None else dtype
    if values.shape[0] == 0:
        return values[:0].astype(dtype)
    return np.add.reduceat(values, starts, dtype=dtype)


class SparseSumDim(Function):
    """``v = S.sum(dim)`` for one dim of a 2-D S: a sparse vector with one entry per row
    (dim=1) or column (dim=0) that stores anything, coalesced (with keepdim: a sparse
    m x 1 or 1 x n matrix). Each entry of S feeds its group's sum, so grad_S[p] = G[group
    of p] (np.repeat over the group sizes). Integer and bool values sum to int64, as
    torch's ``Tensor.sum(dim)`` (``keep_dtype``, from ``sr.sparse.sum``: in S's own, as
    ``torch.sparse.sum``); float16 and bfloat16 in float32, rounded once (torch adds them
    in their own type here, and 3000 ones of bfloat16 sum to 256)."""

    _name = "SparseSumBackward0"
    saves = ()  # backward reads no input data

    def forward(self, s, dim, keepdim, keep_dtype=False):
        self.order, starts, self.counts, keys = groups(s, dim)
        values = grouped(s._coalesced_form()._val, self.order)
        wide = np.int64 if not keep_dtype and _dtypes.kind(values.dtype) in "biu" else None
        sums = _precision.reduced(lambda v: group_sums(v, starts, wide), values)
        if not keepdim:
            return SparseTensor._make(keys[None, :], sums, (s.shape[1 - dim],), coalesced=True)
        zeros = np.zeros_like(keys)
        indices = np.stack([keys, zeros] if dim == 1 else [zeros, keys])
        shape = (s.shape[0], 1) if dim == 1 else (1, s.shape[1])
        return SparseTensor._make(indices, sums, shape, coalesced=True)

    def backward(self, grad):
        return ungrouped(np.repeat(grad, self.counts), self.order), None, None, None


def sparse_sum(s, dims: tuple, keepdim: bool = False, keep_dtype: bool = False):
    """The sum of s over ``dims`` (checked, sorted): every dim -> a 0-d dense tensor
    (keepdim: 1 x 1), one dim -> ``SparseSumDim``, none -> s coalesced (as torch).
    ``keep_dtype``: the caller asked for s's dtype (``dtype=``), so a sum over every dim
    stays in it instead of widening integers to int64."""
    if len(dims) == s.ndim:
        if keepdim:
            return SparseSumKeepdim.apply(s, (1,) * s.ndim, keep_dtype)
        return SparseSum.apply(s, True) if keep_dtype else SparseSum.apply(s)
    if not dims:
        return s.coalesce()
    return SparseSumDim.apply(s, dims[0], keepdim, keep_dtype)


class SparseSumKeepdim(SparseSum):
    """``S.sum(every dim, keepdim=True)``: the sum as a dense 1 x 1 tensor, as torch gives it."""

    def forward(self, s, shape, keep_dtype=False):
        return Tensor(super().forward(s, keep_dtype)._data.reshape(shape))

    def backward(self, grad):
        return super().backward(grad)[0], None, None


class SparseSoftmax(Function):
    """``Y = softmax(S, dim)`` (``log=True``: log_softmax) over the stored entries of each
    row (dim=1) or column (dim=0); entries S does not store count as -inf (they are left
    out), so Y has S's coalesced pattern. In a group with values x and maximum m:

        softmax:      y = exp(x - m) / sum(exp(x - m))
        log_softmax:  y = (x - m) - log(sum(exp(x - m)))

    Backward, per group (real dtypes only): softmax grad_x = y * (G - sum(G * y));
    log_softmax grad_x = G - exp(y) * sum(G)."""

    _name = "SparseSoftmaxBackward0"

    def forward(self, s, dim, log):
        if log:
            self._name = "SparseLogSoftmaxBackward0"
        c = s._coalesced_form()
        self.order, self.starts, self.counts, _ = groups(c, dim)
        x = grouped(c._val, self.order)
        if x.shape[0]:
            with np.errstate(invalid="ignore"):  # inf - inf: NaN for the whole group, as torch
                shifted = x - np.repeat(np.maximum.reduceat(x, self.starts), self.counts)
            e = np.exp(shifted)
            total = np.repeat(group_sums(e, self.starts), self.counts)
            y = shifted - np.log(total) if log else e / total
        else:
            y = x.copy()
        self.log, self.y = log, y
        return c._with_values(ungrouped(y, self.order))

    def backward(self, grad):
        g = grouped(grad, self.order)
        if self.log:
            gx = g - np.exp(self.y) * np.repeat(group_sums(g, self.starts), self.counts)
        else:
            gx = self.y * (g - np.repeat(group_sums(g * self.y, self.starts), self.counts))
        return ungrouped(gx, self.order), None, None

"""Differentiable sparse ops: every product of ``sparse_ref.sparse`` and the sparse tensor
methods, forward and backward side by side.

Notation: G is the gradient of the output, ^H the conjugate transpose, and
``mask(M, A)`` the entries of M at the stored positions of A's coalesced pattern. A sparse
input's gradient is carried as one value per entry of its coalesced pattern (see
``engine``), so every sparse gradient below is a *masked* one, computed without ever
forming the dense matrix:

==========================  ==========================================  ===================
op                          gradient of the sparse operand              of a dense operand
==========================  ==========================================  ===================
``C = A @ B`` (B dense)     ``mask(G @ B^H, A)``: SDDMM                 ``A^H @ G``: SpMM
``C = X @ S`` (X dense)     ``mask(X^H @ G, S)``: SDDMM                 ``G @ S^H``: SpMM
``C = A @ B`` (sparse)      ``mask(G @ B^H, A)``, ``mask(A^H @ G, B)``:
                            masked SpGEMM
``sampled_addmm``           ``conj(beta) G`` (input)                    ``conj(alpha) G @ mat2^H``,
                                                                        ``conj(alpha) mat1^H @ G``
==========================  ==========================================  ===================
"""

from __future__ import annotations

import numpy as np

from sparse_ref import _formats, _products
from sparse_ref._tensor import SparseCsrTensor, SparseTensor, Tensor
from sparse_ref._validate import EXPECTED_2D
from sparse_ref.autograd.dense_ops import conj, unbroadcast
from sparse_ref.autograd.engine import Function


def _pattern(s):
    """Row and column of every entry of s's coalesced pattern."""
    idx = s._coalesced_form()._idx
    return idx[0], idx[1]


# -- forward helpers (shared by the ops below) ---------------------------------------------

def sparse_dense(a, b: np.ndarray, reduce: str = "sum"):
    """``(out, arg)`` of ``A @ B`` for sparse A and dense B (arg: amax/amin winners)."""
    crow, col, val = a._csr()
    b = np.ascontiguousarray(b)
    if reduce == "sum":
        return _products.spmm(crow, col, val, b), None
    return _products.spmm_reduce(crow, col, val, b, reduce)


def sparse_h_dense(a, g: np.ndarray) -> np.ndarray:
    """``A^H @ G``: SpMM with A's transposed CSR and conjugated values."""
    t_crow, t_col, t_val, _ = a._csr_t()
    return _products.spmm(t_crow, t_col, conj(t_val), np.ascontiguousarray(g))


def dense_sparse(x: np.ndarray, s) -> np.ndarray:
    """``X @ S`` as ``(S^T @ X^T)^T``: SpMM with the transposed CSR of S."""
    t_crow, t_col, t_val, _ = s._csr_t()
    return np.ascontiguousarray(_products.spmm(t_crow, t_col, t_val, np.ascontiguousarray(x.T)).T)


def combine(base: np.ndarray, product: np.ndarray, beta, alpha) -> np.ndarray:
    """``beta * base + alpha * product`` in the product's dtype; beta == 0 drops base."""
    dt = product.dtype
    scaled = product if alpha == 1 else product * dt.type(alpha)
    if beta == 0:
        return scaled
    base = base if beta == 1 else base * dt.type(beta)
    return np.ascontiguousarray(np.broadcast_to(base, product.shape) + scaled)


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

    def forward(self, a, b, reduce="sum"):
        if reduce != "sum":
            self._name = "SparseMmReduceImplBackward0"
        self.a, self.b, self.reduce = a, b._data, reduce
        out, self.arg = sparse_dense(a, b._data, reduce)
        return Tensor(out)

    def backward(self, grad):
        a, b, reduce = self.a, self.b, self.reduce
        need_a, need_b = self.needs[0], self.needs[1]
        if reduce in ("amax", "amin"):
            return (*self._routed(grad, need_a, need_b), None)
        if reduce == "mean":
            crow = a._csr()[0]
            counts = np.maximum(np.diff(crow), 1).astype(grad.real.dtype)
            grad = grad / counts[:, None]
        grad_a = grad_b = None
        if need_a:
            rows, cols = _pattern(a)
            grad_a = _products.sddmm(rows, cols, np.ascontiguousarray(grad), np.ascontiguousarray(conj(b)))
        if need_b:
            grad_b = sparse_h_dense(a, grad)
        return grad_a, grad_b, None

    def _routed(self, grad, need_a, need_b):
        crow, col, val = self.a._csr()
        arg, b = self.arg, self.b
        i, j = np.nonzero(arg >= 0)  # row-major: contributions are added in this order
        q = arg[i, j]
        k = col[q]
        grad_a = grad_b = None
        if need_a:
            grad_a = np.zeros(val.shape[0], dtype=val.dtype)
            np.add.at(grad_a, q, grad[i, j] * conj(b[k, j]))
        if need_b:
            grad_b = np.zeros(b.shape, dtype=b.dtype)
            np.add.at(grad_b, (k, j), conj(val[q]) * grad[i, j])
        return grad_a, grad_b


class DenseSparseMm(Function):
    """``C = X @ S``, X dense, S sparse: grad_X = G @ S^H, grad_S = mask(X^H @ G, S)."""

    _name = "MmBackward0"

    def forward(self, x, s):
        self.x, self.s = x._data, s
        return Tensor(dense_sparse(x._data, s))

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
        indices, val, crow = _products.spgemm(a_crow, a_col, a_val, b_crow, b_col, b_val, b.shape[1],
                                              max_nnz=max_nnz)
        shape = (a.shape[0], b.shape[1])
        if a.is_sparse_csr and b.is_sparse_csr:  # CSR @ CSR -> CSR, like torch
            out = SparseCsrTensor._make_csr(crow, indices[1], val, shape)
        else:
            out = SparseTensor._make(indices, val, shape, coalesced=True)
            out._cache["csr"] = (crow, out._idx[1], out._val)
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
        return SparseTensor._make(np.stack([rows, cols]), s._coalesced_form()._val, shape, coalesced=True)

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


class SparseAddmm(Function):
    """``out = beta * mat + alpha * (A @ B)``, A sparse: grad_mat = conj(beta) G (summed
    over broadcast dims), grad_A = conj(alpha) mask(G @ B^H, A), grad_B = conj(alpha) A^H G.
    (torch 2.13 leaves alpha and beta unconjugated in the first two; this is the math.)"""

    _name = "SparseAddmmBackward0"
    saves = (2,)  # backward reads mat2's data (mat1 is sparse)

    def forward(self, mat, a, b, beta, alpha):
        self.mat_shape, self.a, self.b, self.beta, self.alpha = mat.shape, a, b._data, beta, alpha
        product, _ = sparse_dense(a, b._data)
        return Tensor(combine(mat._data, product, beta, alpha))

    def backward(self, grad):
        dt = grad.dtype.type
        grad_mat = grad_a = grad_b = None
        if self.needs[0]:
            grad_mat = unbroadcast(grad * dt(np.conjugate(self.beta)), self.mat_shape)
        if self.needs[1]:
            rows, cols = _pattern(self.a)
            grad_a = _products.sddmm(rows, cols, np.ascontiguousarray(grad), np.ascontiguousarray(conj(self.b)))
            grad_a = grad_a * dt(np.conjugate(self.alpha))
        if self.needs[2]:
            grad_b = sparse_h_dense(self.a, grad) * dt(np.conjugate(self.alpha))
        return grad_mat, grad_a, grad_b, None, None


class SparseSampledAddmm(Function):
    """``out = beta * input + alpha * mask(mat1 @ mat2, input)`` (SDDMM), sparse ``input``:
    grad_input = conj(beta) G, grad_mat1 = conj(alpha) G @ mat2^H (SpMM),
    grad_mat2 = conj(alpha) mat1^H @ G (SpMM with G's transposed pattern)."""

    _name = "SparseSampledAddmmBackward0"

    def forward(self, input, mat1, mat2, beta, alpha):
        c = input._coalesced_form()
        x = np.ascontiguousarray(mat1._data)
        y = np.ascontiguousarray(mat2._data.T)
        product = _products.sddmm(c._idx[0], c._idx[1], x, y)
        self.input, self.mat1, self.mat2, self.beta, self.alpha = input, mat1._data, mat2._data, beta, alpha
        return c._with_values(combine(c._val, product, beta, alpha))  # input's pattern and layout

    def backward(self, grad):
        dt = grad.dtype.type
        alpha = dt(np.conjugate(self.alpha))
        grad_in = grad_1 = grad_2 = None
        if self.needs[0]:
            grad_in = grad * dt(np.conjugate(self.beta))
        crow, col, _ = self.input._csr()
        if self.needs[1]:
            grad_1 = _products.spmm(crow, col, grad, np.ascontiguousarray(conj(self.mat2).T)) * alpha
        if self.needs[2]:
            t_crow, t_col, _, perm = self.input._csr_t()
            grad_2 = np.ascontiguousarray(
                _products.spmm(t_crow, t_col, grad[perm], np.ascontiguousarray(conj(self.mat1))).T) * alpha
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
        _, _, pos = _formats.coalesce(self.out_idx[0], self.out_idx[1], self.out_val, self.shape[0],
                                      with_pos=True)
        return grad[pos].astype(self.values_dtype, copy=False), None, None, None


class ToCsr(Function):
    """``C = S.to_sparse_csr()``: the same coalesced entries in CSR order, so the gradient
    passes unchanged."""

    _name = "ToSparseCsrBackward0"

    def forward(self, s):
        crow, col, val = s._csr()
        return SparseCsrTensor._make_csr(crow, col, val, s.shape)

    def backward(self, grad):
        return (grad,)


class ToCoo(Function):
    """``S = C.to_sparse()`` of a CSR tensor: the same entries, so the gradient passes
    unchanged."""

    _name = "ToSparseBackward0"

    def forward(self, c):
        return SparseTensor._make(c._idx, c._val, c.shape, coalesced=True)

    def backward(self, grad):
        return (grad,)


class ToDense(Function):
    """``D = S.to_dense()``: grad_S = mask(G, S)."""

    _name = "ToDenseBackward0"

    def forward(self, s):
        self.s = s
        c = s._coalesced_form()
        out = np.zeros(s.shape, dtype=s.dtype)
        out[c._idx[0], c._idx[1]] = c._val
        return Tensor(out)

    def backward(self, grad):
        rows, cols = _pattern(self.s)
        return (np.ascontiguousarray(grad[rows, cols]),)


class ToSparse(Function):
    """``S = X.to_sparse()`` (the nonzeros of X): grad_X = G scattered at S's pattern."""

    _name = "ToSparseBackward0"
    saves = ()  # backward reads no input data

    def forward(self, x):
        if x._data.ndim != 2:
            raise ValueError(f"to_sparse: {EXPECTED_2D}, got a {x._data.ndim}-D tensor")
        row, col = np.nonzero(x._data)  # row-major order, so the result is coalesced
        self.shape, self.row, self.col = x.shape, row, col
        return SparseTensor._make(np.stack([row, col]), x._data[row, col], x.shape, coalesced=True)

    def backward(self, grad):
        out = np.zeros(self.shape, dtype=grad.dtype)
        out[self.row, self.col] = grad
        return (out,)


class Coalesce(Function):
    """``C = S.coalesce()``: the same matrix, so the masked gradient passes unchanged (each
    stored duplicate of S receives the gradient of its merged entry)."""

    _name = "CoalesceBackward0"

    def forward(self, s):
        indices, val, _ = _formats.coalesce(s._idx[0], s._idx[1], s._val, s.shape[0])
        out = SparseTensor._make(indices, val, s.shape, coalesced=True)
        s._cache.setdefault("coalesced", out.detach())
        return out

    def backward(self, grad):
        return (grad,)


class Values(Function):
    """``v = S.values()`` of a coalesced S: grad_S = G (one value per stored entry)."""

    _name = "ValuesBackward0"

    def forward(self, s):
        return Tensor(s._val)

    def backward(self, grad):
        return (grad,)


class SparseTranspose(Function):
    """``T = S.t()``: T's coalesced entry q is S's coalesced entry perm[q], so
    grad_S[perm] = G."""

    _name = "TBackward0"

    def forward(self, s):
        self.s = s
        return SparseTensor._make(s._idx[::-1], s._val, s.shape[::-1], coalesced=False)

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
    """``s = S.sum()`` over the stored entries: grad_S = G on every stored entry."""

    _name = "SumBackward0"

    def forward(self, s):
        c = s._coalesced_form()
        self.nnz = c._nnz()
        return Tensor(np.asarray(c._val.sum()))

    def backward(self, grad):
        return (np.full(self.nnz, grad.reshape(()), dtype=grad.dtype),)

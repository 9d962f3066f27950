"""Fuzzing. Hypothesis draws COO operands with every awkward feature (0 rows or columns,
empty rows, duplicates, unsorted storage order, explicit zeros, -0.0, NaN, inf, every
dtype) and runs each op on the reference kernels and on the Cython kernels at 1 and 2
threads: the three must agree bit for bit, and on finite input match NumPy, SciPy and
torch. Then, in child processes, a table of malformed calls and a table of aliasing tricks
(the caller changes the arrays a tensor was built from) must end in ordinary exceptions,
never in the death of the process.

The differential tests switch kernels themselves, so the suite's second run (with
SPARSE_REF_BACKEND=reference) repeats them with fewer examples; the child processes run on
the backend of the suite.
"""

import json
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import dense_oracle, run_child, same_bits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sparse_ref as sr

try:
    import torch
except ImportError:  # the torch oracles are skipped, the rest runs
    torch = None

try:
    import scipy.sparse as scipy_sparse
except ImportError:
    scipy_sparse = None

REFERENCE_RUN = sr.get_backend() == "reference"

# NaN and inf go through the kernels on purpose: NumPy's warnings about them are noise here
pytestmark = pytest.mark.filterwarnings("ignore:(invalid value|overflow|divide by zero) encountered:RuntimeWarning")


def fuzz(examples: int):
    """Hypothesis settings: reproducible (derandomized, no example database), no deadline,
    and a quarter of the examples in the reference run, which repeats the same examples."""
    return settings(
        max_examples=max(examples // 4, 10) if REFERENCE_RUN else examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large],
    )


F32, F64, C64, C128, I32, I64 = sr.float32, sr.float64, sr.complex64, sr.complex128, sr.int32, sr.int64
INT_DTYPES = [I32, I64]
FLOAT_DTYPES = [F32, F64, C64, C128]
ALL_DTYPES = INT_DTYPES + FLOAT_DTYPES
PATHS = (("reference", 1), ("cython", 1), ("cython", 2))
MAX_DIM = 6  # most dimensions; some are WIDE (past the kernels' 8 lanes) or HUGE
WIDE = (9, 17)
MAX_NNZ = 40  # rows of more than 16 stored entries take the merge sort in coalesce
HUGE = 2**40  # a dimension only the renaming paths can handle (no row pointers, no dense)

# Values that are not "nice": signed zeros, NaN, infinities, an overflow in float32,
# subnormals of both widths.
SPECIALS = [0.0, -0.0, float("nan"), float("inf"), float("-inf"), 1e30, -3e38, 1e-40, 5e-324, 1.5]


# -- strategies -----------------------------------------------------------------------------

def scalars(dtype, special: bool):
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        return st.integers(-9, 9)
    width = 32 if dtype in (F32, C64) else 64
    real = st.one_of(st.floats(-4, 4, width=width), st.sampled_from(SPECIALS if special else [0.0, -0.0, 1.0]))
    return st.builds(complex, real, real) if dtype.kind == "c" else real


def values(dtype, n: int, special: bool):
    return st.lists(scalars(dtype, special), min_size=n, max_size=n).map(lambda v: np.array(v, dtype=dtype))


def dense_arrays(dtype, shape, special: bool):
    n = int(np.prod(shape))
    return values(dtype, n, special).map(lambda v: v.reshape(shape))


@st.composite
def coo_arrays(draw, shape, dtype, special: bool):
    """``(indices, values)`` in storage order: a few distinct cells, each stored 0 or more
    times in any order (so duplicates, unsorted entries and empty rows are common)."""
    m, k = shape
    if m == 0 or k == 0:
        return np.zeros((2, 0), np.int64), np.zeros(0, dtype)
    cell = st.tuples(st.integers(0, m - 1) if m < HUGE else st.sampled_from([0, 1, m - 1]),
                     st.integers(0, k - 1) if k < HUGE else st.sampled_from([0, 2, k - 1]))
    cells = draw(st.lists(cell, min_size=1, max_size=8))
    stored = draw(st.lists(st.sampled_from(cells), max_size=MAX_NNZ))
    idx = np.array(stored, dtype=np.int64).reshape(-1, 2).T.copy()
    return idx, draw(values(dtype, len(stored), special))


def dims(huge: bool = False):
    """Mostly 0..MAX_DIM; 1 in 10 WIDE[0], 1 in 10 WIDE[1], and with ``huge`` 1 in 10 HUGE."""
    extra = list(WIDE) + [HUGE if huge else MAX_DIM]
    return st.integers(0, MAX_DIM + 3).map(lambda d: extra[d - MAX_DIM - 1] if d > MAX_DIM else d)


class Operand:
    """A sparse operand as raw arrays: ``build()`` makes a fresh tensor on the current path
    (tensors cache their coalesced and CSR forms, so no tensor crosses from one path to
    another)."""

    def __init__(self, idx, val, shape, layout="coo"):
        self.idx, self.val, self.shape, self.layout = idx, val, shape, layout

    def build(self, requires_grad=False):
        t = sr.sparse_coo_tensor(self.idx, self.val, self.shape)
        if self.layout == "csr":
            t = t.to_sparse_csr()
        return t.requires_grad_(True) if requires_grad else t

    def dense(self):
        return dense_oracle(self.idx, self.val, self.shape)

    def coalesced(self):
        return coalesce_oracle(self.idx, self.val)

    def __repr__(self):
        return (f"Operand(idx={self.idx.tolist()}, val={self.val!r}, shape={self.shape}, "
                f"layout={self.layout!r})")


@st.composite
def operands(draw, shape, dtype, special, layouts=("coo", "csr")):
    idx, val = draw(coo_arrays(shape, dtype, special))
    layout = draw(st.sampled_from(layouts)) if max(shape) < HUGE else "coo"
    return Operand(idx, val, shape, layout)


@st.composite
def dense_operands(draw, dtype, shape, special):
    """A dense operand's array and whether to hand it over as a transposed view."""
    arr = draw(dense_arrays(dtype, shape, special))
    return arr, draw(st.booleans())


def as_tensor(arr, transposed_view=False, requires_grad=False):
    t = sr.tensor(arr.T).t() if transposed_view else sr.tensor(arr)  # .t(): not C-contiguous
    return t.detach().requires_grad_(True) if requires_grad else t


# -- running an op on every path --------------------------------------------------------------

def arrays_of(x):
    """Every array (and flag) that defines a result, for a bit-for-bit comparison:
    COO ``[indices, values, (coalesced, *shape)]``, CSR ``[crow, col, values, shape]``,
    dense ``[data]``."""
    if x is None:
        return [np.array([-1])]
    if isinstance(x, sr.SparseCsrTensor):
        x = x.detach()
        return [x.crow_indices().numpy(), x.col_indices().numpy(), x.values().numpy(), np.array(x.shape)]
    if isinstance(x, sr.SparseTensor):
        x = x.detach()
        return [x._indices().numpy(), x._values().numpy(), np.array([x.is_coalesced(), *x.shape])]
    if isinstance(x, sr.Tensor):
        return [x.detach().numpy()]
    return [np.asarray(x)]


def on_every_path(fn):
    """``fn()`` (a list of results) on the reference kernels, then on the Cython kernels
    at 1 and 2 threads. Checks that every path gives the same bits and returns the
    reference path's ``arrays_of`` of each result. Use with the ``tiny_work_uses_threads``
    fixture, so that small inputs really run on 2 threads."""
    old = sr.get_num_threads()
    results = {}
    try:
        for backend, n in PATHS:
            sr.set_num_threads(n)
            with sr.use_backend(backend):
                results[(backend, n)] = [arrays_of(item) for item in fn()]
    finally:
        sr.set_num_threads(old)
    expected = results[PATHS[0]]
    for path, got in results.items():
        assert [len(g) for g in got] == [len(e) for e in expected], path
        for i, (gs, es) in enumerate(zip(got, expected)):
            for j, (g, e) in enumerate(zip(gs, es)):
                assert same_bits(g, e), f"result {i}, array {j} on {path} differs from the reference path:\n{g!r}\n{e!r}"
    return expected


def sparse_parts(arrays):
    """``(indices, values)`` of a sparse result's arrays, COO or CSR."""
    if len(arrays) == 4:  # CSR
        crow, col, val = arrays[0], arrays[1], arrays[2]
        return np.stack([np.repeat(np.arange(crow.shape[0] - 1), np.diff(crow)), col]), val
    assert arrays[2][0], "a sparse result is coalesced"
    return arrays[0], arrays[1]


# -- oracles ------------------------------------------------------------------------------------

def coalesce_oracle(idx, val):
    """Sorted unique (row, col) keys and the values summed in storage order (np.add.at)."""
    if idx.shape[1] == 0:
        return idx, val
    keys, inverse = np.unique(idx.T, axis=0, return_inverse=True)
    out = np.zeros(keys.shape[0], dtype=val.dtype)
    np.add.at(out, inverse.ravel(), val)
    return np.ascontiguousarray(keys.T), out


def tol(dtype):
    return (1e-4, 1e-3) if np.dtype(dtype) in (F32, C64) else (1e-10, 1e-10)


def close(actual, expected, dtype, what=""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, what
    if np.dtype(dtype).kind in "iu":
        assert np.array_equal(actual, expected), what
        return
    rtol, atol = tol(dtype)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


def reduce_oracle(a: Operand, b: np.ndarray, reduce: str) -> np.ndarray:
    """Each row's products over its stored (coalesced) entries, reduced with NumPy."""
    keys, vals = a.coalesced()
    out = np.zeros((a.shape[0], b.shape[1]), dtype=b.dtype)
    for i in range(a.shape[0]):
        sel = keys[0] == i
        if sel.any():
            prods = vals[sel][:, None] * b[keys[1][sel]]
            out[i] = {"sum": np.sum, "mean": np.mean, "amax": np.max, "amin": np.min}[reduce](prods, axis=0)
    return out


def structural_product(a: Operand, b: Operand):
    """The structural product by dictionaries: every (i, j) that some a_ik * b_kj reaches
    (cancellations and explicit zeros included), sorted row-major, with its value."""
    (ai, av), (bi, bv) = a.coalesced(), b.coalesced()
    by_row = {}
    for k, j, v in zip(bi[0].tolist(), bi[1].tolist(), bv):
        by_row.setdefault(k, []).append((j, v))
    acc = {}
    for i, k, v in zip(ai[0].tolist(), ai[1].tolist(), av):
        for j, w in by_row.get(k, ()):
            acc[(i, j)] = acc.get((i, j), 0) + v * w
    keys = sorted(acc)
    idx = np.array(keys, dtype=np.int64).reshape(-1, 2).T
    return idx, np.array([acc[key] for key in keys], dtype=a.val.dtype)


def scipy_csr(a: Operand):
    return scipy_sparse.coo_array((a.val, (a.idx[0], a.idx[1])), shape=a.shape).tocsr()


def torch_coo(a: Operand):
    return torch.sparse_coo_tensor(torch.from_numpy(a.idx), torch.from_numpy(a.val), a.shape)


def torch_dense(arr):
    return torch.from_numpy(np.array(arr, copy=True, order="C"))  # writable, own memory


def masked(dense: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return dense[idx[0], idx[1]] if idx.shape[1] else np.zeros(0, dense.dtype)


# -- 1. coalesce, to_dense, transpose, CSR ------------------------------------------------------

@st.composite
def single_cases(draw):
    dtype = draw(st.sampled_from(ALL_DTYPES))
    special = draw(st.booleans())
    shape = (draw(dims(huge=True)), draw(dims(huge=True)))
    return draw(operands(shape, dtype, special, layouts=("coo",))), special


@fuzz(300)
@given(case=single_cases())
def test_coalesce_and_conversions_agree_bitwise_and_match_np_add_at(case, tiny_work_uses_threads):
    a, special = case
    small = max(a.shape) < HUGE

    def run():
        t = a.build()
        c = t.coalesce()
        out = [c, t.t().coalesce(), t.t().t().coalesce()]
        if small:
            out += [t.to_dense(), t.to_sparse_csr(), t.to_sparse_csr().to_sparse(), t.to_dense().to_sparse()]
        return out

    got = on_every_path(run)
    idx, val = sparse_parts(got[0])
    keys, sums = a.coalesced()
    assert np.array_equal(idx, keys)
    # np.add.at adds in storage order too: the same sums, up to the sign of a zero
    close(val, sums, a.val.dtype, "coalesced values")
    t_idx, t_val = sparse_parts(got[1])
    t_keys, t_sums = coalesce_oracle(a.idx[::-1], a.val)
    assert np.array_equal(t_idx, t_keys)
    close(t_val, t_sums, a.val.dtype, "values of the coalesced transpose")
    assert np.array_equal(got[2][0], idx) and same_bits(got[2][1], val)  # t.t().t() is t
    if small:
        (dense,) = got[3]
        close(dense, a.dense(), a.val.dtype, "to_dense")
        crow, col, cval, _ = got[4]
        assert np.array_equal(col, idx[1]) and same_bits(cval, val)
        assert np.array_equal(crow, np.searchsorted(idx[0], np.arange(a.shape[0] + 1)))
        assert np.array_equal(got[5][0], idx) and same_bits(got[5][1], val)  # CSR -> COO round trip
        nonzero = np.stack(np.nonzero(dense))  # to_sparse drops zeros (both signs), keeps NaN
        assert np.array_equal(got[6][0], nonzero) and same_bits(got[6][1], dense[nonzero[0], nonzero[1]])


# -- 2. sparse x dense, every reduce; dense x sparse ---------------------------------------------

REDUCES = {"i": [None, "sum", "amax", "amin", "max"], "f": [None, "sum", "mean", "amax", "amin", "min"],
           "c": [None, "sum", "mean"]}


@st.composite
def spmm_cases(draw):
    dtype = draw(st.sampled_from(ALL_DTYPES))
    special = draw(st.booleans())
    m, k, n = draw(dims()), draw(dims()), draw(dims())
    a = draw(operands((m, k), dtype, special))
    b, b_view = draw(dense_operands(dtype, (k, n), special))
    reduce = draw(st.sampled_from(REDUCES[np.dtype(dtype).kind]))
    return a, b, b_view, reduce, special


@fuzz(400)
@given(case=spmm_cases())
def test_spmm_with_every_reduce_agrees_bitwise_and_matches_numpy_scipy_torch(case, tiny_work_uses_threads):
    a, b, b_view, reduce, special = case
    ((out,),) = on_every_path(lambda: [sr.sparse.mm(a.build(), as_tensor(b, b_view), reduce=reduce)])
    assert out.shape == (a.shape[0], b.shape[1]) and out.dtype == b.dtype
    if special:
        return
    op = {None: "sum", "max": "amax", "min": "amin"}.get(reduce, reduce)
    expected = reduce_oracle(a, b, op)
    close(out, expected, b.dtype, f"reduce={reduce}")
    if op == "sum":
        close(out, a.dense() @ b, b.dtype, "dense matmul")
        if scipy_sparse is not None:
            close(out, scipy_csr(a) @ b, b.dtype, "scipy csr @ dense")
    if torch is not None and b.dtype.kind in "fc":
        if op == "sum":
            theirs = torch.sparse.mm(torch_coo(a), torch_dense(b))
        elif b.dtype.kind == "f" and a.idx.shape[1] and b.shape[1]:
            theirs = torch.sparse.mm(torch_coo(a).coalesce().to_sparse_csr(), torch_dense(b), op)
        else:
            return
        close(out, theirs.numpy(), b.dtype, "torch")


@st.composite
def dense_sparse_cases(draw):
    dtype = draw(st.sampled_from(ALL_DTYPES))
    special = draw(st.booleans())
    m, k, n = draw(dims()), draw(dims()), draw(dims())
    x, x_view = draw(dense_operands(dtype, (m, k), special))
    s = draw(operands((k, n), dtype, special))
    return x, x_view, s, special


@fuzz(200)
@given(case=dense_sparse_cases())
def test_dense_times_sparse_agrees_bitwise_and_matches_numpy(case, tiny_work_uses_threads):
    x, x_view, s, special = case
    ((out,),) = on_every_path(lambda: [sr.sparse.mm(as_tensor(x, x_view), s.build())])
    assert out.shape == (x.shape[0], s.shape[1])
    if not special:
        close(out, x @ s.dense(), x.dtype, "dense @ sparse")


# -- 3. sparse x sparse -----------------------------------------------------------------------------

@st.composite
def spgemm_cases(draw):
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    special = draw(st.booleans())
    m, k, n = draw(dims(huge=True)), draw(dims(huge=True)), draw(dims(huge=True))
    return draw(operands((m, k), dtype, special)), draw(operands((k, n), dtype, special)), special


@fuzz(300)
@given(case=spgemm_cases())
def test_sparse_times_sparse_agrees_bitwise_and_is_the_structural_product(case, tiny_work_uses_threads):
    a, b, special = case
    (got,) = on_every_path(lambda: [sr.sparse.mm(a.build(), b.build())])
    assert len(got) == (4 if a.layout == b.layout == "csr" else 3), "CSR @ CSR is CSR, else COO"
    idx, val = sparse_parts(got)
    keys, expected = structural_product(a, b)
    assert np.array_equal(idx, keys), "the pattern is the structural product"
    if special:
        return
    close(val, expected, a.val.dtype, "structural product values")
    if max(a.shape + b.shape) == HUGE:
        return
    dense = np.zeros((a.shape[0], b.shape[1]), a.val.dtype)
    dense[idx[0], idx[1]] = val
    close(dense, a.dense() @ b.dense(), a.val.dtype, "dense matmul")
    if scipy_sparse is not None:
        close(dense, (scipy_csr(a) @ scipy_csr(b)).toarray(), a.val.dtype, "scipy csr @ csr")
    if torch is not None:
        close(dense, torch.sparse.mm(torch_coo(a), torch_coo(b)).to_dense().numpy(), a.val.dtype, "torch")


# -- 4. sampled_addmm and addmm --------------------------------------------------------------------

def scalar_choices(dtype):
    kind = np.dtype(dtype).kind
    if kind in "iu":
        return st.sampled_from([1, 0, -2, 3])
    base = [1, 0, 0.5, -2.0, 1.0]
    return st.sampled_from(base + ([1j, 0.5 - 1j] if kind == "c" else []))


@st.composite
def sampled_cases(draw):
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    special = draw(st.booleans())
    m, k, n = draw(dims()), draw(dims()), draw(dims())
    inp = draw(operands((m, n), dtype, special))
    x, x_view = draw(dense_operands(dtype, (m, k), special))
    y, y_view = draw(dense_operands(dtype, (k, n), special))
    return inp, x, x_view, y, y_view, draw(scalar_choices(dtype)), draw(scalar_choices(dtype)), special


@fuzz(300)
@given(case=sampled_cases())
def test_sampled_addmm_agrees_bitwise_and_matches_numpy_and_torch(case, tiny_work_uses_threads):
    inp, x, x_view, y, y_view, beta, alpha, special = case
    (got,) = on_every_path(lambda: [sr.sparse.sampled_addmm(inp.build(), as_tensor(x, x_view),
                                                            as_tensor(y, y_view), beta=beta, alpha=alpha)])
    keys, vals = inp.coalesced()
    assert len(got) == (4 if inp.layout == "csr" else 3), "the result has the input's layout"
    idx, val = sparse_parts(got)
    assert np.array_equal(idx, keys), "the result has the input's coalesced pattern"
    if special:
        return
    dt = x.dtype.type
    expected = dt(alpha) * masked(x @ y, keys)
    if beta != 0:
        expected = expected + dt(beta) * vals
    close(val, expected, x.dtype, "sampled_addmm")
    if torch is not None and keys.shape[1] and min(inp.shape) > 0 and x.shape[1] > 0:
        tin = torch_coo(inp).coalesce().to_sparse_csr()
        theirs = torch.sparse.sampled_addmm(tin, torch_dense(x), torch_dense(y), beta=beta, alpha=alpha)
        close(val, theirs.values().numpy(), x.dtype, "torch")


@st.composite
def addmm_cases(draw):
    dtype = draw(st.sampled_from(ALL_DTYPES))
    special = draw(st.booleans())
    m, k, n = draw(dims()), draw(dims()), draw(dims())
    a = draw(operands((m, k), dtype, special))
    b, b_view = draw(dense_operands(dtype, (k, n), special))
    mat_shape = draw(st.sampled_from([(m, n), (1, n), (m, 1), (n,), (), (1, 1)]))
    mat = draw(dense_arrays(dtype, mat_shape, special))
    return mat, a, b, b_view, draw(scalar_choices(dtype)), draw(scalar_choices(dtype)), special


@fuzz(300)
@given(case=addmm_cases())
def test_addmm_agrees_bitwise_and_matches_numpy_and_torch(case, tiny_work_uses_threads):
    mat, a, b, b_view, beta, alpha, special = case
    ((out,),) = on_every_path(lambda: [sr.sparse.addmm(sr.tensor(mat), a.build(), as_tensor(b, b_view),
                                                       beta=beta, alpha=alpha)])
    assert out.shape == (a.shape[0], b.shape[1])
    if special:
        return
    dt = b.dtype.type
    expected = dt(alpha) * (a.dense() @ b)
    if beta != 0:
        expected = expected + dt(beta) * mat
    close(out, expected, b.dtype, "addmm")
    if torch is not None and b.dtype.kind in "fc":
        theirs = torch.sparse.addmm(torch_dense(np.broadcast_to(mat, out.shape)), torch_coo(a), torch_dense(b),
                                    beta=beta, alpha=alpha)
        close(out, theirs.numpy(), b.dtype, "torch")


# -- 5. forward and backward ------------------------------------------------------------------------

GRAD_OPS = ["mm", "mm_mean", "mm_amax", "mm_amin", "dense_sparse", "spgemm", "addmm", "sampled_addmm"]


@st.composite
def grad_cases(draw):
    op = draw(st.sampled_from(GRAD_OPS))
    kinds = "fc" if op in ("mm", "mm_mean", "dense_sparse", "spgemm", "addmm", "sampled_addmm") else "f"
    dtype = draw(st.sampled_from([d for d in FLOAT_DTYPES if d.kind in kinds]))
    special = draw(st.booleans())
    m, k, n = draw(dims()), draw(dims()), draw(dims())
    if op == "dense_sparse":
        ops = (draw(dense_arrays(dtype, (m, k), special)), draw(operands((k, n), dtype, special)))
    elif op == "spgemm":
        ops = (draw(operands((m, k), dtype, special)), draw(operands((k, n), dtype, special)))
    elif op == "sampled_addmm":
        ops = (draw(operands((m, n), dtype, special)), draw(dense_arrays(dtype, (m, k), special)),
               draw(dense_arrays(dtype, (k, n), special)))
    else:
        ops = (draw(operands((m, k), dtype, special)), draw(dense_arrays(dtype, (k, n), special)))
        if op == "addmm":
            ops = (draw(dense_arrays(dtype, draw(st.sampled_from([(m, n), (1, n), (n,)])), special)),) + ops
    scal = (draw(scalar_choices(dtype)), draw(scalar_choices(dtype)))
    grad = draw(dense_arrays(dtype, (m, n), special))
    return op, ops, scal, grad, special


def leaf(x):
    return x.build(requires_grad=True) if isinstance(x, Operand) else sr.tensor(x, requires_grad=True)


def forward(op, leaves, scal):
    beta, alpha = scal
    if op.startswith("mm"):
        reduce = op[3:] or None
        return sr.sparse.mm(leaves[0], leaves[1], reduce=reduce)
    if op in ("dense_sparse", "spgemm"):
        return sr.sparse.mm(leaves[0], leaves[1])
    if op == "addmm":
        return sr.sparse.addmm(*leaves, beta=beta, alpha=alpha)
    return sr.sparse.sampled_addmm(*leaves, beta=beta, alpha=alpha)


def grad_oracle(op, ops, scal, g):
    """The gradients by dense NumPy: for the loss Re(sum(conj(G) * out)), sparse operands
    get the masked gradient at their coalesced pattern."""
    beta, alpha = scal
    H = lambda m: np.conj(m).T  # noqa: E731
    if op in ("mm", "mm_mean", "addmm"):
        a, b = ops[-2], ops[-1]
        keys = a.coalesced()[0]
        if op == "mm_mean":
            counts = np.bincount(keys[0], minlength=a.shape[0]).clip(1)
            g = g / counts[:, None].astype(g.real.dtype)
        s = np.conj(alpha) if op == "addmm" else 1
        out = [s * masked(g @ H(b), keys), s * (H(a.dense()) @ g)]
        if op == "addmm":  # mat broadcasts over the rows: its gradient sums them
            gm = np.conj(beta) * g
            if len(ops[0].shape) == 1:
                gm = gm.sum(axis=0)
            elif ops[0].shape[0] == 1:
                gm = gm.sum(axis=0, keepdims=True)
            out = [gm] + out
        return out
    if op == "dense_sparse":
        x, s = ops
        return [g @ H(s.dense()), masked(H(x) @ g, s.coalesced()[0])]
    if op == "spgemm":
        a, b = ops
        c_keys = structural_product(a, b)[0]
        gm = np.zeros_like(g)
        gm[c_keys[0], c_keys[1]] = masked(g, c_keys)
        return [masked(gm @ H(b.dense()), a.coalesced()[0]), masked(H(a.dense()) @ gm, b.coalesced()[0])]
    if op == "sampled_addmm":
        inp, x, y = ops
        keys = inp.coalesced()[0]
        gs = np.zeros_like(g)
        gs[keys[0], keys[1]] = masked(g, keys)
        return [np.conj(beta) * masked(g, keys), np.conj(alpha) * (gs @ H(y)), np.conj(alpha) * (H(x) @ gs)]
    return None


@fuzz(400)
@given(case=grad_cases())
def test_gradients_of_every_operand_agree_bitwise_and_match_numpy(case, tiny_work_uses_threads):
    op, ops, scal, g, special = case

    def run():
        leaves = [leaf(x) for x in ops]
        out = forward(op, leaves, scal)
        out.backward(sr.tensor(g))
        return [out] + [t.grad for t in leaves]

    got = on_every_path(run)
    grads, layouts = [], []
    for x, arrays in zip(ops, got[1:]):
        if isinstance(x, Operand):
            assert len(arrays) == (4 if x.layout == "csr" else 3), f"the gradient of a {x.layout} operand"
            idx, grad = sparse_parts(arrays)
            assert np.array_equal(idx, x.coalesced()[0]), "a sparse gradient has the operand's coalesced pattern"
            layouts.append(x.layout)
        else:
            (grad,) = arrays
            assert grad.shape == x.shape
            layouts.append("dense")
        grads.append(grad)
    if special or op in ("mm_amax", "mm_amin"):
        return
    for i, (grad, expected) in enumerate(zip(grads, grad_oracle(op, ops, scal, g))):
        close(grad, np.asarray(expected, dtype=grad.dtype), grad.dtype, f"gradient of operand {i} ({layouts[i]})")


# -- 6. malformed input and aliasing, in child processes ---------------------------------------------

PROBES = Path(__file__).with_name("_probes.py")


def describe_exit(rc) -> str:
    if rc == "timeout":
        return "hung (timeout)"
    if isinstance(rc, int) and rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit code {rc}"


NAMES = {}  # (table, index) -> probe name, as the children report them


def run_range(table, lo, hi, tmp_path, timeout=60):
    """Run probes lo..hi-1 of a table in one child: ``(rc, results, total, dying, stderr)``,
    ``dying`` the probe that started but never finished (None if none). A whole table
    takes a few seconds; a damaged heap can also hang a child (a timeout is a death)."""
    args = [str(PROBES), table, str(lo)] + ([str(hi)] if hi is not None else [])
    try:
        out = run_child(args, tmp_path, timeout=timeout)
        rc, stdout, stderr = out.returncode, out.stdout, out.stderr
    except subprocess.TimeoutExpired as exc:
        rc = "timeout"
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    results, total, reached, ended = {}, None, None, False
    for line in stdout.splitlines():
        kind, _, rest = line.partition("\t")
        if kind == "TOTAL":
            total = int(rest)
        elif kind == "REACHED":
            reached = (int(rest.split("\t")[0]), rest.split("\t", 1)[1])
            NAMES[(table, reached[0])] = reached[1]
        elif kind == "RESULT":
            r = json.loads(rest)
            results[r["i"]] = r
        elif kind == "END":
            ended = True
    dying = reached if reached is not None and reached[0] not in results else None
    if rc == 0 and not ended:
        rc = "no END line"
    return rc, results, total, dying, stderr


def dies(table, lo, hi, tmp_path, tries=2) -> bool:
    """Whether a child running probes lo..hi-1 dies (damage that shows only sometimes gets
    ``tries`` runs)."""
    return any(run_range(table, lo, hi, tmp_path, timeout=30)[0] != 0 for _ in range(tries))


def find_deadly(table, a, b, tmp_path):
    """Halve [a, b), a range of probes whose child died, down to one probe whose child dies
    on its own; if neither half dies, the range is returned as it is."""
    while b - a > 1:
        mid = (a + b) // 2
        if dies(table, a, mid, tmp_path):
            b = mid
        elif dies(table, mid, b, tmp_path):
            a = mid
        else:
            break
    return a, b


def run_probe_table(table, tmp_path):
    """Every probe of a table in one child process. If the child dies, the probes that
    killed it are found (the one that was running, if it dies alone too; and by halving,
    any before it whose damage showed only later: heap damage often kills in another
    probe or at exit), and a new child goes on after the last of them, so one run names
    every deadly probe."""
    results, deaths, lo = {}, [], 0

    def record(a, b, rc, note, stderr):
        names = " .. ".join(repr(NAMES.get((table, i), "?")) for i in sorted({a, b - 1}))
        tail = "\n".join(stderr.strip().splitlines()[:12])
        deaths.append(f"probe {b - 1} {names}: {describe_exit(rc)} ({note})\n{tail}")

    while True:
        rc, found, total, dying, stderr = run_range(table, lo, None, tmp_path)
        results.update(found)
        if rc == 0 or total is None:
            if total is None:
                deaths.append(f"the child did not start: {describe_exit(rc)}\n{stderr[-2000:]}")
            return results, deaths, total
        running_dies = dying is not None and dies(table, dying[0], dying[0] + 1, tmp_path)
        end = dying[0] if running_dies else (dying[0] + 1 if dying is not None else total)
        start = lo
        while start < end and dies(table, start, end, tmp_path):  # damage done before
            a, b = find_deadly(table, start, end, tmp_path)
            note = "found by halving" if b - a == 1 else f"no single probe of {a}..{b - 1} dies alone"
            if dying is not None:
                note += f"; the child died while probe {dying[0]} {dying[1]!r} ran"
            record(a, b, rc, note, stderr)
            start = b
        if running_dies:
            record(dying[0], dying[0] + 1, rc, "while it ran", stderr)
            start = dying[0] + 1
        lo = max(start, lo + 1)
        if lo >= total:
            return results, deaths, total


def probe_report(table, results, deaths, total, bad):
    lines = [f"{table}: {total} probes, {len(deaths)} deaths, {len(bad)} broken contracts"]
    lines += [f"DEATH {d}" for d in deaths]
    lines += [f"BAD probe {r['i']} {r['name']!r} ({r['expect']}): {r.get('outcome')} "
              f"{r.get('type', '')} {r.get('msg', '')}".rstrip() for r in bad]
    return "\n".join(lines)


def test_malformed_input_raises_ordinary_exceptions_and_never_kills_the_process(tmp_path):
    results, deaths, total = run_probe_table("malformed", tmp_path)
    bad = [r for _, r in sorted(results.items()) if not r["ok"]]
    assert total and not deaths and not bad, probe_report("malformed", results, deaths, total, bad)
    assert len(results) == total


def test_caller_changes_to_shared_arrays_never_reach_the_indices_or_kill_the_process(tmp_path):
    results, deaths, total = run_probe_table("aliasing", tmp_path)
    bad = [r for _, r in sorted(results.items()) if not r["ok"]]
    assert total and not deaths and not bad, probe_report("aliasing", results, deaths, total, bad)
    assert len(results) == total


def test_index_arrays_handed_out_cannot_be_made_writable_again(tmp_path):
    results, deaths, total = run_probe_table("unlock", tmp_path)
    bad = [r for _, r in sorted(results.items()) if not r["ok"]]
    assert total and not deaths and not bad, probe_report("unlock", results, deaths, total, bad)
    assert len(results) == total

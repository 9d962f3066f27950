"""COO -> CSR row pointers, CSR -> COO rows and the CSR transpose, on both paths."""

import numpy as np
import pytest
from conftest import THREADS, random_coo
from hypothesis import given, settings
from hypothesis import strategies as st

import sparse_ref as sr
from sparse_ref._backend import kernel_module


def csr_of(rng, shape, nnz):
    indices, values = random_coo(rng, shape, nnz)
    c = sr.sparse_coo_tensor(indices, values, shape).coalesce()
    crow, col, val = c._csr()
    return c, crow, col, val


@pytest.mark.parametrize("shape,nnz", [((6, 5), 14), ((0, 3), 0), ((4, 0), 0), ((7, 7), 0), ((1, 40), 30)])
def test_coo_to_csr_and_back_match_scipy(shape, nnz, rng):
    sp = pytest.importorskip("scipy.sparse")
    c, crow, col, val = csr_of(rng, shape, nnz)
    ref = sp.csr_array(c.to_dense().numpy())
    ref = sp.csr_array((val, col, crow), shape=shape)  # scipy accepts our arrays as they are
    assert np.array_equal(crow, ref.indptr) and np.array_equal(col, ref.indices)
    for backend in ("reference", "cython"):
        out_row = np.empty(col.shape[0], np.int64)
        kernel_module("convert", backend).csr_to_coo(crow, out_row, 2)
        assert np.array_equal(out_row, c.indices().numpy()[0])


@pytest.mark.parametrize("n_threads", THREADS)
@pytest.mark.parametrize("shape,nnz", [((6, 5), 14), ((5, 9), 40), ((0, 3), 0), ((3, 0), 0), ((8, 1), 8)])
def test_csr_transpose_matches_scipy_and_both_paths_agree(shape, nnz, n_threads, rng):
    sp = pytest.importorskip("scipy.sparse")
    c, crow, col, val = csr_of(rng, shape, nnz)
    outs = {}
    for backend in ("reference", "cython"):
        t_crow = np.empty(shape[1] + 1, np.int64)
        t_col = np.empty(col.shape[0], np.int64)
        perm = np.empty(col.shape[0], np.int64)
        kernel_module("convert", backend).csr_transpose(crow, col, shape[1], t_crow, t_col, perm, n_threads)
        outs[backend] = (t_crow, t_col, perm)
    for a, b in zip(outs["reference"], outs["cython"]):
        assert np.array_equal(a, b)
    t_crow, t_col, perm = outs["cython"]
    ref = sp.csr_array((val, col, crow), shape=shape).T.tocsr()
    ref.sort_indices()
    assert np.array_equal(t_crow, ref.indptr) and np.array_equal(t_col, ref.indices)
    assert np.array_equal(val[perm], ref.data)


def test_transpose_of_huge_column_count_renames_columns():
    from sparse_ref import _formats

    crow = np.array([0, 2, 3], np.int64)
    col = np.array([5, 2**62, 5], np.int64)
    t_crow, t_col, perm, names = _formats.csr_transpose(crow, col, 2**62 + 1)
    assert names.tolist() == [5, 2**62]
    assert t_crow.tolist() == [0, 2, 3] and t_col.tolist() == [0, 1, 0] and perm.tolist() == [0, 2, 1]


# -- the two paths agree bit for bit, for every thread count ------------------------------

@st.composite
def csr_cases(draw):
    """A CSR pattern (sorted rows, empty rows, repeated columns within a row allowed)."""
    nrows = draw(st.integers(0, 9))
    ncols = draw(st.integers(1, 7))
    lengths = draw(st.lists(st.integers(0, 6), min_size=nrows, max_size=nrows))
    crow = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)
    col = np.array(draw(st.lists(st.integers(0, ncols - 1), min_size=int(crow[-1]),
                                 max_size=int(crow[-1]))), np.int64)
    return crow, col, ncols, draw(st.sampled_from(THREADS))


def both_paths(kernel, *args, outputs):
    """Run ``kernel`` on both backends into fresh outputs (filled with -7 to catch a slot
    left unwritten); return {backend: outputs}."""
    results = {}
    for backend in ("reference", "cython"):
        outs = [np.full(n, -7, np.int64) for n in outputs]
        getattr(kernel_module("convert", backend), kernel)(*args[:-1], *outs, args[-1])
        results[backend] = outs
    return results


@settings(max_examples=150, deadline=None)
@given(case=csr_cases())
def test_conversions_cython_equal_reference_bitwise(case):
    crow, col, ncols, n_threads = case
    nrows, nnz = crow.shape[0] - 1, col.shape[0]
    row = np.repeat(np.arange(nrows, dtype=np.int64), np.diff(crow))
    runs = [
        both_paths("coo_to_csr", row, nrows, n_threads, outputs=[nrows + 1]),
        both_paths("csr_to_coo", crow, n_threads, outputs=[nnz]),
        both_paths("csr_transpose", crow, col, ncols, n_threads, outputs=[ncols + 1, nnz, nnz]),
    ]
    for run in runs:
        for ref, fast in zip(run["reference"], run["cython"]):
            assert ref.dtype == fast.dtype == np.int64 and np.array_equal(ref, fast)
    assert np.array_equal(runs[0]["cython"][0], crow)
    assert np.array_equal(runs[1]["cython"][0], row)

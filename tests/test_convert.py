"""COO -> CSR row pointers, CSR -> COO rows and the CSR transpose, on both paths."""

import numpy as np
import pytest
from conftest import THREADS, random_coo

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

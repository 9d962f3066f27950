"""The CSR layout: construction and its checks, conversions, every product with CSR
operands (both paths, equal to COO bit for bit), CSR gradients, torch and SciPy parity."""

import numpy as np
import pytest
from conftest import VALUE_DTYPES, random_dense, random_sparse, same_bits, torch_or_skip

import sparse_ref as sr
from sparse_ref.autograd import gradcheck

F64, C128 = sr.float64, sr.complex128


def csr_of(coo):
    return coo.detach().to_sparse_csr().detach()


def test_sparse_csr_tensor_accessors_and_repr_match_torch():
    a = sr.sparse_csr_tensor([0, 2, 3], [0, 2, 1], [1.0, 2.0, 3.0], (2, 3))
    assert a.layout is sr.sparse_csr and a.is_sparse_csr and not a.is_sparse and a.is_coalesced()
    assert a.crow_indices().tolist() == [0, 2, 3] and a.col_indices().tolist() == [0, 2, 1]
    assert a.values().tolist() == [1.0, 2.0, 3.0] and a._nnz() == 3 and a.shape == (2, 3)
    assert a.to_dense().tolist() == [[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]]
    torch = pytest.importorskip("torch")
    expected = repr(torch.sparse_csr_tensor([0, 2, 3], [0, 2, 1], [1.0, 2.0, 3.0], (2, 3)))
    assert repr(a) == expected.replace("torch.", "sparse_ref.")


def test_size_is_inferred_and_int32_is_widened():
    a = sr.sparse_csr_tensor(np.array([0, 1, 1], np.int32), np.array([4], np.int32), [2.0])
    assert a.shape == (2, 5) and a.crow_indices().dtype == sr.int64


def test_conversions_round_trip(rng):
    coo = random_sparse(rng, (7, 6), 20, F64)
    csr = coo.to_sparse_csr()
    c = coo.coalesce()
    assert same_bits(csr.to_dense().numpy(), coo.to_dense().numpy())
    back = csr.to_sparse()
    assert back.layout is sr.sparse_coo and back.is_coalesced()
    assert same_bits(back.indices().numpy(), c.indices().numpy()) and same_bits(back.values().numpy(), c.values().numpy())
    d = random_dense(rng, (4, 5), F64)
    assert same_bits(d.to_sparse_csr().to_dense().numpy(), d.numpy())


def test_every_array_is_owned_and_inputs_stay_writable():
    crow, col, val = np.array([0, 1, 2]), np.array([1, 0]), np.array([5.0, 6.0])
    a = sr.sparse_csr_tensor(crow, col, val, (2, 2))
    assert not np.shares_memory(a.crow_indices().numpy(), crow)  # indices: the tensor's own copy
    assert not np.shares_memory(a.col_indices().numpy(), col)
    assert not np.shares_memory(a.values().numpy(), val)  # values too, as torch copies NumPy's
    assert crow.flags.writeable and val.flags.writeable  # the caller's arrays are untouched
    with pytest.raises(ValueError, match="read-only"):
        a.values().numpy()[0] = 1.0


def test_from_scipy_csr_owns_its_arrays_and_to_scipy_keeps_csr():
    sp = pytest.importorskip("scipy.sparse")
    m = sp.random_array((30, 20), density=0.2, format="csr", rng=np.random.default_rng(0))
    m.indptr, m.indices = m.indptr.astype(np.int64), m.indices.astype(np.int64)
    a = sr.from_scipy(m)
    assert a.layout is sr.sparse_csr
    assert not np.shares_memory(a.col_indices().numpy(), m.indices)
    assert not np.shares_memory(a.values().numpy(), m.data)
    back = sr.to_scipy(a)
    assert back.format == "csr" and same_bits(back.toarray(), m.toarray())


def test_from_scipy_csr_with_duplicates_is_summed():
    sp = pytest.importorskip("scipy.sparse")
    m = sp.csr_array((np.array([1.0, 2.0, 3.0]), np.array([1, 1, 0]), np.array([0, 2, 3])), shape=(2, 2))
    assert not m.has_canonical_format
    a = sr.from_scipy(m)
    assert a.col_indices().tolist() == [1, 0] and a.values().tolist() == [3.0, 3.0]


def test_torch_round_trip_keeps_the_layout(rng):
    torch = torch_or_skip()
    a = csr_of(random_sparse(rng, (5, 4), 10, F64))
    t = sr.to_torch(a)
    assert t.layout == torch.sparse_csr
    back = sr.from_torch(t)
    assert back.layout is sr.sparse_csr and same_bits(back.to_dense().numpy(), a.to_dense().numpy())


# -- invalid CSR input ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "crow,col,val,size,exc,message",
    [
        ([], [], [], (0, 0), ValueError, r"crow_indices must have nrows \+ 1 entries \(at least 1\), got 0"),
        ([1, 2], [0], [1.0], (1, 2), ValueError, "crow_indices must start at 0, got 1"),
        ([0, 2, 1, 2], [0, 1], [1.0, 2.0], (3, 2), ValueError,
         r"crow_indices must not decrease: crow_indices\[2\] = 1 < crow_indices\[1\] = 2"),
        ([0, 1, 3], [0, 1], [1.0, 2.0], (2, 2), ValueError, "crow_indices must end at nnz = 2 .*got 3"),
        ([0, 1, 2], [0, 1], [1.0, 2.0], (3, 2), ValueError, r"crow_indices has 3 entries, so the matrix has 2 rows"),
        ([0, 1, 2], [0, 5], [1.0, 2.0], (2, 3), IndexError, "column index 5 is out of range for 3 columns"),
        ([0, 1, 2], [0, -1], [1.0, 2.0], (2, 3), IndexError, "found negative column index -1"),
        ([0, 2], [2, 1], [1.0, 2.0], (1, 3), ValueError,
         "col_indices must be sorted and unique within each row: row 0 has column 1 after column 2"),
        ([0, 2], [1, 1], [1.0, 2.0], (1, 3), ValueError, "row 0 has column 1 after column 1"),
        ([0, 1], [0], [1.0, 2.0], (1, 3), ValueError, "same number of entries"),
        ([0.0, 1.0], [0], [1.0], (1, 3), TypeError, "crow_indices must be an integer array"),
        ([[0, 1]], [0], [1.0], (1, 3), ValueError, "crow_indices must be 1-D"),
        ([0, 1], [0], [1.0], (1, 3, 1), ValueError, "expected a 2-D sparse matrix"),
        ([0, 1], [0], [True], (1, 3), TypeError, "bool values are not supported"),
    ],
)
def test_invalid_csr_input_is_rejected(crow, col, val, size, exc, message):
    with pytest.raises(exc, match=message):
        sr.sparse_csr_tensor(crow, col, val, size)


def test_check_invariants_false_skips_only_the_order_check():
    a = sr.sparse_csr_tensor([0, 2], [2, 1], [1.0, 2.0], (1, 3), check_invariants=False)
    assert a._nnz() == 2
    with pytest.raises(IndexError, match="out of range"):  # bounds are always checked
        sr.sparse_csr_tensor([0, 2], [2, 9], [1.0, 2.0], (1, 3), check_invariants=False)


# -- products: CSR equals COO bit for bit, on both paths ------------------------------------------

@pytest.mark.parametrize("backend", ["reference", "cython"])
@pytest.mark.parametrize("dtype", VALUE_DTYPES)
def test_products_with_csr_equal_products_with_coo(backend, dtype, rng):
    a = random_sparse(rng, (8, 6), 25, dtype)
    b = random_sparse(rng, (6, 7), 20, dtype)
    x = random_dense(rng, (6, 5), dtype)
    w = random_dense(rng, (3, 8), dtype)
    ac, bc = csr_of(a), csr_of(b)
    with sr.use_backend(backend):
        assert same_bits(sr.sparse.mm(ac, x).numpy(), sr.sparse.mm(a, x).numpy())
        for reduce in ("mean",) + (("amax", "amin") if np.dtype(dtype).kind == "f" else ()):
            assert same_bits(sr.sparse.mm(ac, x, reduce=reduce).numpy(), sr.sparse.mm(a, x, reduce=reduce).numpy())
        assert same_bits(sr.sparse.mm(w, ac).numpy(), sr.sparse.mm(w, a).numpy())
        cc, co = sr.sparse.mm(ac, bc), sr.sparse.mm(a, b)
        assert cc.layout is sr.sparse_csr and co.layout is sr.sparse_coo
        assert same_bits(cc.to_sparse().indices().numpy(), co.indices().numpy())
        assert same_bits(cc.values().numpy(), co.values().numpy())
        mixed = sr.sparse.mm(ac, b)
        assert mixed.layout is sr.sparse_coo and same_bits(mixed.values().numpy(), co.values().numpy())
        s = sr.sparse.sampled_addmm(ac, random_dense(rng, (8, 4), dtype), random_dense(rng, (4, 6), dtype))
        assert s.layout is sr.sparse_csr and same_bits(s.crow_indices().numpy(), ac.crow_indices().numpy())
        assert same_bits(sr.sparse.addmm(random_dense(rng, (8, 5), dtype) * 0, ac, x, beta=0).numpy(),
                         sr.sparse.mm(a, x).numpy())


# -- gradients --------------------------------------------------------------------------------------

def csr_leaf(rng, shape, nnz, dtype):
    return csr_of(random_sparse(rng, shape, nnz, dtype)).requires_grad_(True)


@pytest.mark.parametrize("dtype", [F64, C128])
def test_gradcheck_with_csr_operands(dtype, rng):
    a = csr_leaf(rng, (5, 4), 10, dtype)
    x = random_dense(rng, (4, 3), dtype).requires_grad_()
    assert gradcheck(sr.sparse.mm, (a, x))
    assert gradcheck(sr.sparse.mm, (random_dense(rng, (2, 5), dtype).requires_grad_(), a))
    assert gradcheck(sr.sparse.mm, (a, csr_leaf(rng, (4, 6), 9, dtype)))
    assert gradcheck(lambda a, x, y: sr.sparse.sampled_addmm(a, x, y, beta=0.5, alpha=2.0),
                     (a, random_dense(rng, (5, 2), dtype).requires_grad_(), random_dense(rng, (2, 4), dtype).requires_grad_()))
    assert gradcheck(lambda a: a.to_sparse(), (a,))
    assert gradcheck(lambda a: a.to_dense(), (a,))


@pytest.mark.parametrize("reduce", ["sum", "mean", "amax", "amin"])
def test_gradcheck_reduce_with_csr(reduce, rng):
    a = csr_leaf(rng, (5, 4), 12, F64)
    assert gradcheck(lambda a, x: sr.sparse.mm(a, x, reduce=reduce), (a, random_dense(rng, (4, 3), F64).requires_grad_()))


def test_csr_gradients_have_the_operand_crow_and_col_explicit_zeros_kept(rng):
    a = sr.sparse_csr_tensor([0, 2, 2, 3], [0, 2, 1], [0.0, 2.0, 3.0], (3, 3), dtype=F64, requires_grad=True)
    b = sr.sparse_csr_tensor([0, 1, 2, 3], [1, 0, 1], [1.0, 2.0, 0.0], (3, 2), dtype=F64, requires_grad=True)
    sr.sparse.mm(a, b).sum().backward()  # torch 2.13 raises for CSR @ CSR backward
    for t in (a, b):
        assert t.grad.layout is sr.sparse_csr
        assert same_bits(t.grad.crow_indices().numpy(), t.crow_indices().numpy())
        assert same_bits(t.grad.col_indices().numpy(), t.col_indices().numpy())


@pytest.mark.parametrize("reduce", ["sum", "mean", "amax", "amin"])
def test_csr_mm_matches_torch_values_and_gradients(reduce, rng):
    torch = torch_or_skip()
    a = csr_leaf(rng, (6, 5), 14, F64)
    x = random_dense(rng, (5, 3), F64).requires_grad_()
    ta = sr.to_torch(a.detach()).requires_grad_(True)
    tx = torch.from_numpy(x.detach().numpy().copy()).requires_grad_(True)
    y, ty = sr.sparse.mm(a, x, reduce=reduce), torch.sparse.mm(ta, tx, reduce)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = random_dense(rng, (6, 3), F64)
    y.backward(g)
    ty.backward(torch.from_numpy(g.numpy()))
    np.testing.assert_allclose(a.grad.values().numpy(), ta.grad.values().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_csr_times_csr_and_sampled_addmm_match_torch(rng):
    torch = torch_or_skip()
    a, b = csr_of(random_sparse(rng, (6, 5), 14, F64)), csr_of(random_sparse(rng, (5, 4), 10, F64))
    ours, theirs = sr.sparse.mm(a, b), torch.sparse.mm(sr.to_torch(a), sr.to_torch(b))
    assert theirs.layout == torch.sparse_csr
    assert same_bits(ours.crow_indices().numpy(), theirs.crow_indices().numpy())
    assert same_bits(ours.col_indices().numpy(), theirs.col_indices().numpy())
    np.testing.assert_allclose(ours.values().numpy(), theirs.values().numpy(), rtol=1e-12)
    x, y = random_dense(rng, (6, 3), F64), random_dense(rng, (3, 5), F64)
    s = sr.sparse.sampled_addmm(a, x, y, beta=0.5, alpha=2.0)
    t = torch.sparse.sampled_addmm(sr.to_torch(a), torch.from_numpy(x.numpy()), torch.from_numpy(y.numpy()),
                                   beta=0.5, alpha=2.0)
    np.testing.assert_allclose(s.values().numpy(), t.values().numpy(), rtol=1e-12)


def test_a_csr_tensor_of_values_that_require_grad_is_differentiable_in_them():
    torch = torch_or_skip()
    v = sr.tensor([1.0, -2.0, 3.0], dtype=sr.float64, requires_grad=True)
    c = sr.sparse_csr_tensor([0, 2, 3], [0, 2, 1], v, (2, 3))
    assert c.requires_grad and c.grad_fn.name() == "SparseCompressedTensorBackward0"
    g = np.arange(6.0).reshape(3, 2)
    (sr.sparse.mm(c, sr.tensor(g)) * sr.tensor(g[:2] + 1)).sum().backward()
    tv = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64, requires_grad=True)
    tc = torch.sparse_csr_tensor(torch.tensor([0, 2, 3]), torch.tensor([0, 2, 1]), tv, (2, 3))
    (torch.sparse.mm(tc, torch.tensor(g)) * torch.tensor(g[:2] + 1)).sum().backward()
    assert v.grad.numpy().tolist() == tv.grad.tolist()
    with sr.no_grad():
        assert not sr.sparse_csr_tensor([0, 2, 3], [0, 2, 1], v, (2, 3)).requires_grad
    for make in (lambda: sr.sparse_csr_tensor([0, 2, 3], [0, 2, 1], v, (2, 3), dtype=sr.int64),
                 lambda: sr.sparse_coo_tensor([[0, 0, 1], [0, 2, 1]], v, (2, 3), dtype=sr.int64)):
        assert not make().requires_grad  # integer values cannot require grad (torch's rule)


def test_a_change_to_the_callers_values_reaches_neither_values_nor_gradients():
    """(probe) CSR values were shared with a plain NumPy array: SciPy's eliminate_zeros()
    compacts m.data in place, which moved values onto other entries of the tensor, and a
    change after a forward gave backward other values than the forward used, unseen
    (b.grad [[200, 200], [100, 100]] instead of torch's [[4, 4], [2, 2]])."""
    sp = pytest.importorskip("scipy.sparse")
    m = sp.csr_array((np.array([1., 0., 3.]), np.array([0, 1, 0]), np.array([0, 2, 3])), shape=(2, 2))
    t = sr.from_scipy(m)
    m.eliminate_zeros()
    assert t.to_dense().tolist() == [[1., 0.], [3., 0.]]
    v = np.array([1., 2., 3.])
    a = sr.sparse_csr_tensor([0, 2, 3], [0, 1, 0], v, (2, 2))
    b = sr.ones(2, 2, dtype=sr.float64, requires_grad=True)
    y = a @ b
    v[:] = 100.0
    y.sum().backward()
    assert b.grad.tolist() == [[4., 4.], [2., 2.]]


def test_csr_plus_dense_is_dense_as_in_torch():
    """(probe) refused "as in torch", but torch 2.13 adds a CSR matrix and a dense tensor
    (only COO + dense is refused there, and CSR - dense)."""
    torch = torch_or_skip()
    c = sr.tensor([[1., 0.], [0., 2.]], dtype=sr.float64).to_sparse_csr()
    d = sr.ones(2, 2, dtype=sr.float64)
    tc = torch.tensor([[1., 0.], [0., 2.]], dtype=torch.float64).to_sparse_csr()
    for ours, theirs in [(c + d, tc + torch.ones(2, 2, dtype=torch.float64)), (c.add(d), tc.add(torch.ones(2, 2, dtype=torch.float64)))]:
        assert ours.layout == sr.strided and ours.tolist() == theirs.tolist()
    with pytest.raises(RuntimeError, match="not supported"):
        c - d
    with pytest.raises(RuntimeError, match="not supported"):
        c.to_sparse() + d

"""Sparse COO tensors of any sparse_dim and hybrid tensors (dense dims in the values):
construction, coalesce, to_dense, to_sparse(k) and interop, against torch 2.13 and a
storage-order oracle; both kernel paths bit for bit; every matrix op refuses them by rule."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sparse_ref as sr

torch = pytest.importorskip("torch")

F64 = sr.float64
RULE = "must have sparse_dim 2 and dense_dim 0, got sparse_dim {} and dense_dim {}"


def torch_coo(indices, values, size=None):
    """torch's tensor from the same arrays (its invariant checks on, so no silent garbage)."""
    i, v = torch.from_numpy(np.asarray(indices, np.int64)), torch.from_numpy(np.asarray(values))
    if size is None:
        return torch.sparse_coo_tensor(i, v, check_invariants=True)
    return torch.sparse_coo_tensor(i, v, size, check_invariants=True)


def same_as_torch(ours, theirs):
    """Indices, values (exactly), size, sparse/dense dims and the coalesced flag agree."""
    assert ours.shape == tuple(theirs.shape)
    assert (ours.sparse_dim(), ours.dense_dim()) == (theirs.sparse_dim(), theirs.dense_dim())
    assert ours.is_coalesced() == theirs.is_coalesced()
    assert ours._indices().numpy().tolist() == theirs._indices().numpy().tolist()
    np.testing.assert_array_equal(ours._values().numpy(), theirs._values().numpy(), strict=True)


def storage_order_oracle(indices, values):
    """Coalesce by the definition: a dict of index tuples, each block added in storage
    order (element by element), then the tuples sorted lexicographically."""
    sums = {}
    for p in range(indices.shape[1]):
        key = tuple(indices[:, p].tolist())
        sums[key] = values[p].copy() if key not in sums else sums[key] + values[p]
    keys = sorted(sums)
    idx = np.array(keys, dtype=np.int64).T.reshape(indices.shape[0], len(keys))
    val = np.array([sums[k] for k in keys], dtype=values.dtype).reshape((len(keys),) + values.shape[1:])
    return idx, val


def random_case(rng, sparse_sizes, dense_sizes, nnz, dtype=np.float64, integral=True):
    indices = np.stack([rng.integers(0, n, nnz) for n in sparse_sizes]).astype(np.int64).reshape(
        len(sparse_sizes), nnz)
    values = rng.integers(-5, 6, (nnz, *dense_sizes)) if integral else rng.standard_normal((nnz, *dense_sizes))
    return indices, values.astype(dtype)


# -- construction ---------------------------------------------------------------------------

CASES = [
    ([[0, 1, 1], [2, 0, 2]], [[1., 2.], [3., 4.], [5., 6.]], None),          # hybrid, size inferred
    ([[0, 1, 1], [2, 0, 2]], [[1., 2.], [3., 4.], [5., 6.]], (4, 3, 2)),
    ([[0, 1], [1, 0], [2, 2]], [1., 2.], (2, 2, 3)),                           # 3-D, sparse_dim 3
    ([[0, 1], [1, 0], [2, 2]], [1., 2.], None),
    ([[3, 0, 3]], [5., 6., 7.], None),                                         # sparse vector, duplicates
    ([[1, 0]], [[[1., 2.]], [[3., 4.]]], (2, 1, 2)),                           # sparse_dim 1, dense_dim 2
    ([[0, 0], [1, 1], [2, 0], [0, 3]], [[1.], [2.]], (1, 2, 3, 4, 1)),         # sparse_dim 4
    (np.zeros((3, 0), np.int64), np.zeros((0, 2), np.float32), None),          # empty hybrid: (0, 0, 0, 2)
    (np.zeros((2, 0), np.int64), np.zeros((0, 3, 0), np.float32), (5, 4, 3, 0)),
]


@pytest.mark.parametrize("indices,values,size", CASES)
def test_construction_matches_torch(indices, values, size):
    values = np.asarray(values, dtype=np.float32)
    ours = sr.sparse_coo_tensor(indices, values, size)
    theirs = torch_coo(indices, values, size)
    same_as_torch(ours, theirs)
    assert ours.dim() == ours.sparse_dim() + ours.dense_dim() == theirs.dim()
    assert ours.sparse_dim() == np.asarray(indices).shape[0]
    assert ours.dense_dim() == values.ndim - 1


@pytest.mark.parametrize("indices,values,size", CASES[:7])
def test_repr_is_torchs(indices, values, size):
    values = np.asarray(values, dtype=np.float32)
    ours = repr(sr.sparse_coo_tensor(indices, values, size))
    theirs = repr(torch_coo(indices, values, size)).replace("torch.", "sparse_ref.")
    assert ours == theirs


def test_repr_of_a_float64_hybrid_names_the_dtype_as_torch():
    s = sr.sparse_coo_tensor([[0, 1], [1, 0]], [[1.5, 2.], [3., 4.]], dtype=F64)
    theirs = torch_coo([[0, 1], [1, 0]], np.array([[1.5, 2.], [3., 4.]]))
    assert repr(s) == repr(theirs).replace("torch.", "sparse_ref.")


# -- coalesce and to_dense ------------------------------------------------------------------

SHAPES = [((4,), ()), ((4,), (3,)), ((3, 5), (2,)), ((3, 5), (2, 3)), ((2, 3, 4), ()),
          ((2, 3, 4), (2,)), ((2, 2, 2, 3), ()), ((3, 4), (0,))]


@pytest.mark.parametrize("sparse_sizes,dense_sizes", SHAPES)
@pytest.mark.parametrize("seed", range(3))
def test_coalesce_and_to_dense_match_torch(sparse_sizes, dense_sizes, seed):
    rng = np.random.default_rng(seed)
    indices, values = random_case(rng, sparse_sizes, dense_sizes, nnz=25)
    size = sparse_sizes + dense_sizes
    ours, theirs = sr.sparse_coo_tensor(indices, values, size), torch_coo(indices, values, size)
    same_as_torch(ours.coalesce(), theirs.coalesce())
    np.testing.assert_array_equal(ours.to_dense().numpy(), theirs.to_dense().numpy(), strict=True)
    dense = np.zeros(size, values.dtype)  # integral values: any order of addition is exact
    np.add.at(dense, tuple(indices), values)
    np.testing.assert_array_equal(ours.to_dense().numpy(), dense)


def test_a_3d_tensor_coalesces_batch_major():
    s = sr.sparse_coo_tensor([[1, 0, 1, 0], [0, 1, 0, 0], [2, 0, 1, 2]], [1., 2., 3., 4.], (2, 2, 3))
    c = s.coalesce()
    assert c.indices().tolist() == [[0, 0, 1, 1], [0, 1, 0, 0], [2, 0, 1, 2]]
    assert c.values().tolist() == [4., 2., 3., 1.]


def test_duplicate_blocks_are_summed_in_storage_order_on_both_paths():
    # (1e16 + 1) - 1e16 = 0 in storage order; 1 in any order that adds 1e16 - 1e16 first
    values = np.array([[1e16, 1.], [1., 1e16], [-1e16, -1e16], [7., 8.]])
    indices = [[1, 1, 1, 0], [0, 0, 0, 0]]
    out = {}
    for backend in ("reference", "cython"):
        with sr.use_backend(backend):
            c = sr.sparse_coo_tensor(indices, values, (2, 1, 2)).coalesce()
            out[backend] = (c.indices().numpy().copy(), c.values().numpy().copy(), c.to_dense().numpy().copy())
    assert out["reference"][1].tobytes() == out["cython"][1].tobytes()
    assert out["reference"][2].tobytes() == out["cython"][2].tobytes()
    assert out["cython"][0].tolist() == [[0, 1], [0, 0]]
    assert out["cython"][1].tolist() == [[7., 8.], [0., 0.]]


def test_negative_zero_and_nan_blocks_are_kept_as_stored():
    c = sr.sparse_coo_tensor([[0, 1, 1]], np.array([[-0.0, np.nan], [2., 3.], [-2., -3.]])).coalesce()
    assert np.signbit(c.values().numpy()[0, 0]) and np.isnan(c.values().numpy()[0, 1])
    assert c.values().tolist()[1] == [0.0, 0.0] and c._nnz() == 2  # a cancellation stays stored


@st.composite
def hybrid_cases(draw):
    s = draw(st.integers(1, 4))
    sparse_sizes = tuple(draw(st.integers(1, 4)) for _ in range(s))
    dense_sizes = tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
    nnz = draw(st.integers(0, 30))
    seed = draw(st.integers(0, 2**32 - 1))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.complex128, np.int64]))
    return sparse_sizes, dense_sizes, nnz, seed, dtype


@settings(max_examples=80, deadline=None)
@given(case=hybrid_cases())
def test_coalesce_is_the_storage_order_definition_bit_for_bit_on_both_paths(case):
    sparse_sizes, dense_sizes, nnz, seed, dtype = case
    rng = np.random.default_rng(seed)
    indices, values = random_case(rng, sparse_sizes, dense_sizes, nnz, integral=False)
    if np.dtype(dtype).kind == "c":
        values = values + 1j * rng.standard_normal(values.shape)
    values = (values * 10).astype(dtype) if np.dtype(dtype).kind == "i" else values.astype(dtype)
    want_idx, want_val = storage_order_oracle(indices, values)
    for backend in ("reference", "cython"):
        with sr.use_backend(backend):
            c = sr.sparse_coo_tensor(indices, values, sparse_sizes + dense_sizes).coalesce()
            assert c.indices().numpy().tolist() == want_idx.tolist()
            assert c.values().numpy().tobytes() == want_val.tobytes()
            assert c.values().shape == want_val.shape


def test_coalesce_when_the_leading_sizes_overflow_int64():
    n = 2**40  # 2**40 * 2**40 * 2**40 leading sizes: no int64 row key, the tuples are ranked
    indices = np.array([[n - 1, 5, n - 1, 5, 0], [3, n - 2, 3, n - 2, 0], [0, 2, 0, 1, 7], [1, 1, 1, 0, 2]])
    values = np.array([[1., 2.], [3., 4.], [5., 6.], [7., 8.], [9., 10.]])
    s = sr.sparse_coo_tensor(indices, values, (n, n, n, 3, 2))
    c = s.coalesce()
    want_idx, want_val = storage_order_oracle(indices, values)
    assert c.indices().numpy().tolist() == want_idx.tolist()
    assert c.values().numpy().tolist() == want_val.tolist()  # (torch: "numel: integer multiplication overflow")


def test_coalesce_when_the_leading_sizes_just_fit_int64():
    n = 2**31  # rows 2**62: a row key fits, and the rows that occur are renamed
    indices = np.array([[n - 1, 0, n - 1], [n - 1, 1, n - 1], [2, 0, 2]])
    s = sr.sparse_coo_tensor(indices, [1., 2., 3.], (n, n, 3)).coalesce()
    assert s.indices().tolist() == [[0, n - 1], [1, n - 1], [0, 2]] and s.values().tolist() == [2., 4.]


# -- to_sparse(sparse_dim) ------------------------------------------------------------------

def example_3d():
    x = np.arange(60.).reshape(4, 5, 3)
    x[1] = 0
    x[2, 3] = 0
    x[3, 1] = [0., -0.0, 0.]   # a block of zeros (one negative): not stored
    x[0, 2] = [0., np.nan, 0.]  # NaN is nonzero: stored
    return x


@pytest.mark.parametrize("k", [None, 1, 2, 3])
def test_to_sparse_matches_torch(k):
    x = example_3d()
    ours = sr.tensor(x).to_sparse() if k is None else sr.tensor(x).to_sparse(k)
    theirs = torch.from_numpy(x).to_sparse() if k is None else torch.from_numpy(x).to_sparse(k)
    same_as_torch(ours, theirs)
    assert ours.is_coalesced()
    np.testing.assert_array_equal(ours.to_dense().numpy(), x)


@pytest.mark.parametrize("shape,k", [((0, 3), 1), ((3, 0), 1), ((2, 0, 2), 1), ((2, 0, 2), 3), ((0,), 1)])
def test_to_sparse_of_zero_size_tensors_matches_torch(shape, k):
    same_as_torch(sr.zeros(*shape).to_sparse(k), torch.zeros(*shape).to_sparse(k))


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(0, 3), min_size=1, max_size=4), seed=st.integers(0, 2**32 - 1),
       data=st.data())
def test_to_sparse_matches_torch_on_random_tensors(shape, seed, data):
    k = data.draw(st.integers(1, len(shape)))
    rng = np.random.default_rng(seed)
    x = rng.integers(-1, 2, shape) * (rng.random(shape) < 0.3)  # mostly zeros, some blocks all zero
    x = x.astype(np.float64)
    same_as_torch(sr.tensor(x).to_sparse(k), torch.from_numpy(x).to_sparse(k))
    np.testing.assert_array_equal(sr.tensor(x).to_sparse(k).to_dense().numpy(), x)


def test_to_sparse_of_a_3d_tensor_is_sparse_dim_3_and_of_a_vector_1():
    assert sr.tensor(example_3d()).to_sparse().sparse_dim() == 3
    v = sr.tensor([0., 2., 0.]).to_sparse()
    assert (v.sparse_dim(), v.dense_dim(), v.indices().tolist()) == (1, 0, [[1]])


@pytest.mark.parametrize("k", [0, 4, -1])
def test_to_sparse_refuses_a_sparse_dim_out_of_range_with_torchs_message(k):
    with pytest.raises(RuntimeError) as theirs:
        torch.zeros(4, 5, 3).to_sparse(k)
    with pytest.raises(ValueError, match=re.escape(str(theirs.value).split("\n")[0])):
        sr.zeros(4, 5, 3).to_sparse(k)


def test_sparse_to_sparse_keeps_its_own_sparse_dim_only():
    h = sr.tensor(example_3d()).to_sparse(2)
    assert h.to_sparse(2) is h and h.to_sparse() is h
    with pytest.raises(RuntimeError, match=re.escape("conversion from Sparse to Sparse with sparse_dim argument "
                                                     "!=self.sparse_dim() is not supported")):
        h.to_sparse(1)
    with pytest.raises(RuntimeError, match="!=self.sparse_dim"):
        torch.from_numpy(example_3d()).to_sparse(2).to_sparse(1)


# -- methods and interop --------------------------------------------------------------------

def test_indices_values_nnz_clone_detach():
    h = sr.tensor(example_3d()).to_sparse(2)
    assert h._nnz() == 13 and h.values().shape == (13, 3) and h.indices().shape == (2, 13)
    c = h.clone()
    assert c is not h and c.values().numpy().tobytes() == h.values().numpy().tobytes()
    assert h.detach().shape == h.shape and h.detach().dense_dim() == 1
    u = sr.sparse_coo_tensor([[1, 0], [0, 0]], [[1., 2.], [3., 4.]])
    with pytest.raises(RuntimeError, match="uncoalesced"):
        u.values()
    assert u._values().shape == (2, 2)


def test_scaling_and_casts_keep_the_blocks():
    h = sr.sparse_coo_tensor([[1, 0], [0, 0]], [[1., 2.], [3., 4.]])
    assert (2 * h).to_dense().tolist() == (h.to_dense() * 2).tolist()
    assert (-h / 2)._values().tolist() == [[-0.5, -1.0], [-1.5, -2.0]]
    assert h.double().dtype == np.float64 and h.double().dense_dim() == 1


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("coalesce", [False, True])
def test_torch_round_trip(k, coalesce):
    x = example_3d()
    t = torch.from_numpy(x).to_sparse(k)
    if not coalesce:  # an uncoalesced one: duplicates in storage order
        t = torch.sparse_coo_tensor(torch.cat([t._indices(), t._indices()], 1),
                                    torch.cat([t._values(), t._values()]), t.shape)
    ours = sr.from_torch(t)
    same_as_torch(ours, t)
    back = sr.to_torch(ours)
    assert back.is_coalesced() == t.is_coalesced()
    assert torch.equal(back._indices(), t._indices())
    np.testing.assert_array_equal(back._values().numpy(), t._values().numpy())


def test_scipy_conversion_stays_two_dimensional():
    with pytest.raises(ValueError, match=re.escape("must have sparse_dim 1 or 2 and dense_dim 0, got sparse_dim 2 "
                                                   "and dense_dim 1")):
        sr.to_scipy(sr.tensor(example_3d()).to_sparse(2))
    with pytest.raises(ValueError, match="got sparse_dim 3 and dense_dim 0"):
        sr.to_scipy(sr.tensor(example_3d()).to_sparse())


# -- autograd ---------------------------------------------------------------------------------

def test_gradcheck_through_construction_coalesce_values_and_to_dense():
    rng = np.random.default_rng(1)
    indices, values = random_case(rng, (3, 2), (2,), nnz=6, integral=False)
    v = sr.tensor(values, requires_grad=True)

    def f(v):
        return sr.sparse_coo_tensor(indices, v, (3, 2, 2)).to_dense()

    assert sr.autograd.gradcheck(f, (v,))
    assert sr.autograd.gradcheck(lambda v: sr.sparse_coo_tensor(indices, v, (3, 2, 2)).coalesce().values(), (v,))
    # (finite values: with example_3d's NaN every numerical slope was NaN, which gradcheck
    # let pass until it learned, as torch's, that a NaN on either side is a failure)
    x = sr.tensor(np.nan_to_num(example_3d()[:, :, :2], nan=2.5) + 1, dtype=F64, requires_grad=True)
    assert sr.autograd.gradcheck(lambda x: x.to_sparse(2).values() * 3.0, (x,))


def test_a_hybrid_leafs_gradient_is_masked_to_its_pattern():
    s = sr.sparse_coo_tensor([[1, 0, 1], [0, 1, 0]], [[1., 2.], [3., 4.], [5., 6.]], (2, 3, 2),
                             dtype=F64, requires_grad=True)
    w = sr.tensor(np.arange(12.).reshape(2, 3, 2))
    (s.to_dense() * w).sum().backward()
    g = s.grad
    assert isinstance(g, sr.SparseTensor) and g.is_coalesced()
    assert g.indices().tolist() == [[0, 1], [1, 0]] and g.dense_dim() == 1
    assert g.values().tolist() == [w.numpy()[0, 1].tolist(), w.numpy()[1, 0].tolist()]
    x = sr.tensor(example_3d()[:, :, :2].copy(), dtype=F64, requires_grad=True)
    x.to_sparse(2).values().sum().backward()
    stored = (example_3d()[:, :, :2] != 0).any(axis=-1)  # NaN counts as nonzero
    assert x.grad.numpy().tolist() == np.repeat(stored[:, :, None], 2, axis=2).astype(float).tolist()


def test_backward_from_a_hybrid_root_masks_a_sparse_or_dense_gradient():
    s = sr.sparse_coo_tensor([[1, 0, 1], [0, 1, 0]], [[1., 2.], [3., 4.], [5., 6.]], (2, 3, 2),
                             dtype=F64, requires_grad=True)
    g = sr.sparse_coo_tensor([[0, 1], [2, 0]], [[7., 8.], [9., 10.]], (2, 3, 2), dtype=F64)  # (0, 2): not s's
    s.coalesce().backward(g)
    assert s.grad.indices().tolist() == [[0, 1], [1, 0]]
    assert s.grad.values().tolist() == [[0., 0.], [9., 10.]]
    s.grad = None
    s.coalesce().backward(g.to_dense())
    assert s.grad.values().tolist() == [[0., 0.], [9., 10.]]


# -- errors -------------------------------------------------------------------------------------

def torch_message(call):
    with pytest.raises(RuntimeError) as info:
        call()
    return str(info.value).split("\n")[0]


@pytest.mark.parametrize("indices,values,size", [
    ([[0, 1, 1], [2, 0, 2]], [[1., 2.], [3., 4.], [5., 6.]], (2, 3)),         # len(size) too short
    ([[0, 1, 1], [2, 0, 2]], [[1., 2.], [3., 4.], [5., 6.]], (2, 3, 2, 1)),   # too long
    ([[0, 1, 1], [2, 0, 2]], [[1., 2.], [3., 4.], [5., 6.]], (2, 3, 3)),      # dense size differs
    (np.zeros((1, 1, 1), np.int64), [1.], (2,)),                              # indices not 2-D
])
def test_construction_errors_are_torchs(indices, values, size):
    theirs = torch_message(lambda: torch.sparse_coo_tensor(torch.tensor(np.asarray(indices)),
                                                           torch.tensor(values), size))
    with pytest.raises(ValueError, match=re.escape(theirs)):
        sr.sparse_coo_tensor(indices, values, size)


@pytest.mark.parametrize("indices,values,size,exc,message", [
    (np.zeros((0, 1), np.int64), [[1., 2.]], (2,), ValueError, "sparse_ref needs sparse_dim >= 1"),
    ([[0], [0], [5]], [1.], (2, 2, 3), IndexError, "for dim 2, size is 3 but found index 5"),
    ([[0], [0], [-1]], [1.], (2, 2, 3), IndexError, "found negative index -1 for dim 2"),
    ([[0]], 1.0, (2,), ValueError, "values must have shape"),
    ([[1, 0], [0, 0], [0, 0]], [1., 2.], (2, 2, 2), ValueError,
     re.escape("not sorted row-major and unique (entry 1 at (0, 0, 0) follows (1, 0, 0))")),
])
def test_construction_refuses_what_torch_would_store_unchecked(indices, values, size, exc, message):
    with pytest.raises(exc, match=message):
        sr.sparse_coo_tensor(indices, values, size, is_coalesced=True if "sorted" in message else None)


def hybrid():
    return sr.tensor(np.arange(60.).reshape(4, 5, 3)).to_sparse(2)


def vector_hybrid():  # sparse_dim 1, dense_dim 1: 2-D, yet no matrix
    return sr.sparse_coo_tensor([[0, 2]], [[1., 2.], [3., 4.]], (4, 2), dtype=sr.float32)


@pytest.mark.parametrize("make", [hybrid, vector_hybrid])
@pytest.mark.parametrize("name,call", [
    ("mat1", lambda h: sr.sparse.mm(h, sr.ones(h.shape[1], 2))),
    ("mat2", lambda h: sr.sparse.mm(sr.ones(2, h.shape[0]), h)),
    ("mat1", lambda h: sr.sparse.mm(h, h)),
    ("mat1", lambda h: sr.sparse.addmm(sr.zeros(h.shape[0], 2), h, sr.ones(h.shape[1], 2))),
    ("input", lambda h: sr.sparse.sampled_addmm(h, sr.ones(h.shape[0], 1), sr.ones(1, h.shape[1]))),
    ("mat1", lambda h: h @ sr.ones(h.shape[1], 2)),
    ("mat1", lambda h: sr.matmul(h, sr.ones(h.shape[1]))),
    ("mat2", lambda h: sr.ones(h.shape[0]) @ h),
    ("self", lambda h: h.to_sparse_csr()),
    ("self", lambda h: h + h),
    ("self", lambda h: h * h),
    ("self", lambda h: h * sr.ones(*h.shape)),
    ("self", lambda h: h.sum(0)),
    ("input", lambda h: sr.sparse.sum(h, 0)),
    ("input", lambda h: sr.sparse.softmax(h, 0)),
    ("input", lambda h: sr.transpose(h, 0, 1)),
])
def test_matrix_ops_refuse_by_the_rule(make, name, call):
    h = make()
    rule = re.escape(RULE.format(h.sparse_dim(), h.dense_dim())).replace(
        "sparse_dim\\ 2", "sparse_dim\\ ((1\\ or\\ )?2|1,\\ 2\\ or\\ 3)")
    with pytest.raises(ValueError, match=f"{name} {rule}"):  # (sums also take a sparse vector and a batch: "1, 2 or 3")
        call(h)


def test_the_issue_example_names_the_rule_where_torch_does_not():
    x = np.arange(60.).reshape(4, 5, 3)
    theirs = torch_message(lambda: torch.sparse.mm(torch.from_numpy(x).to_sparse(2), torch.ones(5, 2, dtype=torch.float64)))
    assert "The expanded size of the tensor (4) must match the existing size (5)" in theirs
    with pytest.raises(ValueError, match=re.escape("mm: mat1 must have sparse_dim 2 and dense_dim 0, got sparse_dim 2 "
                                                   "and dense_dim 1")):
        sr.sparse.mm(sr.tensor(x).to_sparse(2), sr.ones(5, 2, dtype=F64))
    with pytest.raises(ValueError, match=re.escape("mat1 " + RULE.format(4, 0))):
        sr.sparse.mm(sr.tensor(x.reshape(2, 2, 5, 3)).to_sparse(), sr.ones(5, 2, dtype=F64))
    with pytest.raises(ValueError, match=re.escape("mat1 " + RULE.format(3, 1))):  # a batch of hybrids
        sr.sparse.mm(sr.tensor(x.reshape(2, 2, 5, 3)).to_sparse(3), sr.ones(2, 5, 2, dtype=F64))
    # sparse_dim 3, dense_dim 0 is a batch of matrices (sr.bmm): its partner must be a batch too
    with pytest.raises(ValueError, match="Tensor 'mat2' must have 3 dims, but has 2"):
        sr.sparse.mm(sr.tensor(x).to_sparse(), sr.ones(5, 2, dtype=F64))


def test_t_refuses_with_torchs_message():
    theirs = torch_message(lambda: torch.from_numpy(example_3d()).to_sparse(2).t())
    with pytest.raises(ValueError, match=re.escape(theirs)):
        sr.tensor(example_3d()).to_sparse(2).t()
    with pytest.raises(ValueError, match=re.escape("but got 3 sparse and 0 dense dimensions")):
        sr.tensor(example_3d()).to_sparse().t()


def test_refusals_leave_the_tensor_as_it_was():
    h = hybrid()
    before = (h._indices().numpy().copy(), h._values().numpy().copy())
    for call in (lambda: h @ sr.ones(5, 2, dtype=F64), lambda: h + h, lambda: h.to_sparse_csr()):
        with pytest.raises(ValueError):
            call()
    assert h._indices().numpy().tolist() == before[0].tolist()
    assert h._values().numpy().tobytes() == before[1].tobytes()

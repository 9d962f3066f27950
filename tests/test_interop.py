"""Round trips through NumPy, SciPy and torch keep indices, values, dtype and flags."""

import numpy as np
import pytest
from conftest import VALUE_DTYPES, random_coo, same_bits, torch_or_skip

import sparse_ref as sr


@pytest.mark.parametrize("dtype", VALUE_DTYPES)
def test_scipy_round_trip_keeps_entries_and_duplicates(dtype, rng):
    pytest.importorskip("scipy")
    indices, values = random_coo(rng, (6, 5), 20, dtype)
    s = sr.sparse_coo_tensor(indices, values, (6, 5))
    m = sr.to_scipy(s)
    assert m.shape == (6, 5) and m.nnz == 20 and m.dtype == dtype
    back = sr.from_scipy(m)
    assert not back.is_coalesced()
    assert same_bits(back._indices().numpy(), indices) and same_bits(back._values().numpy(), values)


def test_from_scipy_canonical_csr_is_coalesced():
    sp = pytest.importorskip("scipy.sparse")
    m = sp.random_array((7, 9), density=0.3, format="csr", rng=np.random.default_rng(1))
    s = sr.from_scipy(m)
    assert s.is_coalesced() and s.dtype == sr.float64
    assert same_bits(s.to_dense().numpy(), m.toarray())


def test_to_scipy_of_a_coalesced_tensor_is_canonical():
    pytest.importorskip("scipy")
    m = sr.to_scipy(sr.tensor([[0.0, 1.0], [2.0, 0.0]]).to_sparse())
    assert m.has_canonical_format


@pytest.mark.parametrize("dtype", VALUE_DTYPES)
def test_torch_round_trip_keeps_entries_dtype_and_flag(dtype, rng):
    torch = pytest.importorskip("torch")
    indices, values = random_coo(rng, (6, 5), 20, dtype)
    s = sr.sparse_coo_tensor(indices, values, (6, 5))
    t = sr.to_torch(s)
    assert t.layout == torch.sparse_coo and tuple(t.shape) == (6, 5) and not t.is_coalesced()
    back = sr.from_torch(t)
    assert same_bits(back._indices().numpy(), indices) and same_bits(back._values().numpy(), values)
    c = sr.from_torch(t.coalesce())
    assert c.is_coalesced()
    d = sr.randn(3, 4, dtype=dtype)
    assert same_bits(sr.from_torch(sr.to_torch(d)).numpy(), d.numpy())


def test_from_torch_rejects_other_layouts_and_types():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="layout torch.sparse_csc is not supported"):
        sr.from_torch(torch.eye(2).to_sparse_csc())
    with pytest.raises(TypeError, match="expected a torch.Tensor"):
        sr.from_torch(np.eye(2))


def test_interop_names_the_missing_package(monkeypatch):
    import sparse_ref.interop as interop

    real_import = interop.importlib.import_module

    def without_scipy(name, *args, **kwargs):
        if name.split(".")[0] == "scipy":
            raise ImportError("No module named 'scipy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(interop.importlib, "import_module", without_scipy)
    with pytest.raises(ImportError, match=r"to_scipy needs the optional package 'scipy'.*pip install scipy"):
        sr.to_scipy(sr.tensor([[1.0]]).to_sparse())


def test_numpy_sees_dense_tensors_directly():
    t = sr.tensor([[1.0, 2.0]], dtype=sr.float64)
    assert same_bits(np.asarray(t), np.array([[1.0, 2.0]]))
    assert np.asarray(t, dtype=np.float32).dtype == np.float32


# -- sr.from_numpy and sr.as_tensor: a dense tensor that shares the caller's array --------


def test_from_numpy_shares_memory_both_ways_and_keeps_dtype_shape_and_strides():
    x = np.arange(12.0).reshape(3, 4)
    t = sr.from_numpy(x[:, ::2])  # a strided view shares too
    assert t.dtype == np.float64 and t.shape == (3, 2)
    x[0, 0] = 100.0
    assert t.numpy()[0, 0] == 100.0
    with sr.no_grad():
        t.add_(sr.ones(3, 2, dtype=sr.float64))
    assert x[:, ::2].tolist() == [[101.0, 3.0], [5.0, 7.0], [9.0, 11.0]]
    assert x[:, 1].tolist() == [1.0, 5.0, 9.0]  # the columns the view skips are untouched
    whole = sr.from_numpy(x)
    x.shape = (12,)  # reshaping the caller's array object leaves the tensor's shape alone
    assert whole.shape == (3, 4) and t.shape == (3, 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128, np.int32, np.int64, np.bool_])
def test_from_numpy_takes_every_dense_dtype(dtype):
    x = np.zeros(4, dtype=dtype)
    t = sr.from_numpy(x)
    x[1] = 1
    assert t.dtype == dtype and t.numpy()[1] == 1


def test_from_numpy_refuses_what_torch_refuses_with_torchs_messages():
    torch = pytest.importorskip("torch")
    for bad in ([1.0, 2.0], np.float64(3.0), np.ones(3)[::-1], np.ones(3, ">f8"), np.ones(3, object)):
        with pytest.raises((TypeError, ValueError)) as ours:
            sr.from_numpy(bad)
        with pytest.raises((TypeError, ValueError)) as theirs:
            torch.from_numpy(bad)
        assert ours.type is theirs.type
        # torch lists its own dtypes after "supported types are:"; the rest is the same words
        words = [" ".join(str(e.value).split(" The only")[0].split()) for e in (ours, theirs)]
        assert words[0] == "from_numpy: " + words[1]
    with pytest.raises(TypeError, match="numpy.uint32. The only supported types are: int32, int64"):
        sr.from_numpy(np.ones(3, np.uint32))  # torch has uint32; sparse_ref has not


def test_from_numpy_of_a_read_only_array_reads_but_refuses_in_place_ops():
    x = np.ones(3)
    x.flags.writeable = False
    t = sr.from_numpy(x)
    assert (t * 2).numpy().tolist() == [2.0, 2.0, 2.0]
    with pytest.raises(RuntimeError, match="read-only"), sr.no_grad():
        t.add_(sr.ones(3, dtype=sr.float64))
    assert x.tolist() == [1.0, 1.0, 1.0]


def test_from_numpy_copies_memory_numpy_does_not_own_with_a_warning(tmp_path):
    m = np.memmap(tmp_path / "m.bin", dtype=np.float64, mode="w+", shape=(3,))
    with pytest.warns(UserWarning, match="not held by a NumPy array that owns it"):
        t = sr.from_numpy(m)
    m[0] = 5.0  # the file could be truncated under a shared tensor: it holds a copy
    assert t.numpy().tolist() == [0.0, 0.0, 0.0]
    buf = np.frombuffer(bytearray(16), dtype=np.float64)
    with pytest.warns(UserWarning, match="not held by a NumPy array that owns it"):
        assert sr.from_numpy(buf).shape == (2,)


def test_a_shared_array_goes_through_products_and_gradients_and_keeps_its_flags(rng):
    a = sr.randn(5, 4, dtype=sr.float64).to_sparse()
    x = rng.standard_normal((4, 3))
    b = sr.from_numpy(x).requires_grad_(True)
    y = sr.sparse.mm(a, b)
    assert same_bits(y.detach().numpy(), sr.sparse.mm(a, sr.tensor(x)).numpy())
    y.sum().backward()
    assert same_bits(b.grad.numpy(), (a.to_dense().numpy().T @ np.ones((5, 3))))
    v = np.array([1.0, 2.0, 3.0])
    s = sr.sparse_coo_tensor([[0, 1, 0], [1, 0, 1]], sr.from_numpy(v), (2, 2)).coalesce()
    assert s.values().tolist() == [4.0, 2.0]
    assert x.flags.writeable and v.flags.writeable  # sparse_ref never froze the caller's arrays
    x[0, 0] = 1.0
    v[0] = 1.0


def test_as_tensor_shares_a_matching_array_and_converts_anything_else():
    torch = pytest.importorskip("torch")
    x = np.zeros(3)
    t = sr.as_tensor(x)
    x[0] = 7.0
    assert t.numpy()[0] == 7.0 and torch.as_tensor(x)[0] == 7.0  # torch shares too
    assert sr.as_tensor(t) is t
    assert sr.as_tensor(t, dtype=sr.float32).dtype == np.float32
    u = sr.as_tensor(x, dtype=sr.float32)  # another dtype: a new tensor
    x[1] = 9.0
    assert u.numpy().tolist() == [7.0, 0.0, 0.0] and u.dtype == np.float32
    assert sr.as_tensor([1, 2]).dtype == np.int64 and sr.as_tensor([1.0]).dtype == np.float32
    s = sr.randn(2, 2).to_sparse()
    assert sr.as_tensor(s) is s
    with pytest.raises(TypeError, match="as_tensor: can't convert np.ndarray of type numpy.uint8"):
        sr.as_tensor(np.ones(2, np.uint8))
    with pytest.raises(TypeError, match="from_numpy: masked arrays are not supported"):
        sr.from_numpy(np.ma.masked_array([1.0, 2.0], mask=[0, 1]))


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_from_numpy_sees_a_subclass_as_the_plain_array_it_holds():
    class Liar(np.ndarray):  # reports a shape its buffer does not have
        shape = property(lambda self: (200000, 4))

    t = sr.from_numpy(np.ones((2, 4)).view(Liar))
    assert type(t.numpy()) is np.ndarray and t.shape == (2, 4)
    s = sr.sparse_coo_tensor([[0], [199999]], np.ones(1), (1, 200000))
    with pytest.raises(ValueError, match="cannot be multiplied"):
        sr.sparse.mm(s, t)
    m = np.matrix([[1.0, 2.0], [3.0, 4.0]])
    t = sr.as_tensor(m)
    assert (t * t).tolist() == [[1.0, 4.0], [9.0, 16.0]] and t[0].shape == (2,)  # elementwise, as torch
    m[0, 0] = 7.0
    assert t.tolist()[0][0] == 7.0


@pytest.mark.filterwarnings("ignore:Creating a tensor from a list of numpy.ndarrays:UserWarning")
def test_a_list_of_numpy_numbers_takes_the_dtype_torch_infers():
    torch = pytest.importorskip("torch")
    cases = [[np.float64(1.0), 2.0], [np.float32(1.0), 2.0], [np.int32(1), 2], [np.int64(1), 2.0],
             [np.int32(1), np.int32(2)], [np.float16(1.0), 2.0], [np.ones(2), np.ones(2)],
             [np.ones(2, np.float32), [1.0, 2.0]], [np.complex64(1), 2.0], [np.float64(1.0), 2j],
             [[1.0, 2.0], [np.float64(1.0), 2.0]], [np.ones(2, np.int32), [1.5, 2.0]], [1.0, 2.0], [1, 2]]
    for data in cases:
        expected = str(torch.tensor(data).dtype).removeprefix("torch.")
        assert sr.tensor(data).dtype == np.dtype(expected), data
        assert sr.as_tensor(data).dtype == np.dtype(expected), data
    s = sr.sparse_coo_tensor([[0, 1], [1, 0]], [np.float64(1.0), 2.0], (2, 2))
    assert s.dtype == np.float64  # values too, as torch.sparse_coo_tensor's
    with pytest.raises(ValueError):  # an explicit dtype still refuses what it cannot hold
        sr.tensor([np.float64(1e300), 2.0], dtype=sr.float32)


def test_a_sparse_vector_round_trips_through_scipy():
    """(probe) to_scipy makes a 1-D coo_array of a sparse vector, and from_scipy refused it
    with a message about sparse_dim."""
    sp = pytest.importorskip("scipy.sparse")
    v = sr.sparse.sum(sr.tensor([[1.0, 2.0], [0.0, 3.0]]).to_sparse(), 1)
    back = sr.from_scipy(sr.to_scipy(v))
    assert back.shape == (2,) and back.to_dense().tolist() == [3.0, 3.0]
    empty = sr.from_scipy(sp.coo_array((3,)))
    assert empty.shape == (3,) and empty._nnz() == 0


def test_from_torch_verifies_torchs_unchecked_claims_as_from_scipy_does():
    """(probe) a torch COO built with is_coalesced=True over unsorted indices, or a torch
    CSR with unsorted columns, both of which torch computes with, were refused with advice
    about arguments the caller never passed. Now they come over as from_scipy brings a
    stale canonical flag: the claim is checked, and the entries summed where it is false."""
    torch = torch_or_skip()
    for idx in ([[1, 0], [0, 1]], [[0, 0], [1, 1]]):  # unsorted; a duplicate
        t = torch.sparse_coo_tensor(idx, [3.0, 2.0], (2, 2), is_coalesced=True)
        s = sr.from_torch(t)
        assert not s.is_coalesced() and s.to_dense().tolist() == t.to_dense().tolist()
    t = torch.sparse_coo_tensor([[0, 1], [1, 0]], [3.0, 2.0], (2, 2), is_coalesced=True)
    assert sr.from_torch(t).is_coalesced()  # a true claim carries over
    c = torch.sparse_csr_tensor([0, 2, 3], [1, 0, 0], [1.0, 2.0, 3.0], (2, 2))
    s = sr.from_torch(c)
    assert s.layout == sr.sparse_csr and s.col_indices().tolist() == [0, 1, 0]
    assert s.to_dense().tolist() == c.to_dense().tolist()
    with pytest.raises(IndexError, match="out of range"):
        sr.from_torch(torch.sparse_csr_tensor([0, 1], [5], [1.0], (1, 2), check_invariants=False))


def test_a_torch_bfloat16_tensor_as_data():
    torch = torch_or_skip()
    pytest.importorskip("ml_dtypes")
    t = torch.tensor([1.5, -2.25, 3e38], dtype=torch.bfloat16)
    x = sr.tensor(t)  # it leaked torch's "Got unsupported ScalarType BFloat16"
    assert x.dtype == sr.bfloat16 and x.tolist() == t.tolist()
    s = sr.sparse_coo_tensor([[0, 1], [1, 0]], t[:2], (2, 2))
    assert s.dtype == sr.bfloat16 and s.to_dense().tolist() == [[0., 1.5], [-2.25, 0.]]
    assert sr.tensor(torch._neg_view(t[:2])).tolist() == [-1.5, 2.25]  # (a negative view: its sign resolved)

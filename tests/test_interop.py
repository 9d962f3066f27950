"""Round trips through NumPy, SciPy and torch keep indices, values, dtype and flags."""

import numpy as np
import pytest
from conftest import VALUE_DTYPES, random_coo, same_bits

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

"""sr.save / sr.load (torch.save / torch.load with sr in their place), and the small torch
names a student's code reaches for first: sr.long and the other dtype names, the method
forms of the operators, isnan / isinf / isfinite, equal and allclose."""

import io
import pickle

import numpy as np
import pytest
from conftest import torch_or_skip

import sparse_ref as sr


def test_a_state_dict_saved_and_loaded_restores_a_model(tmp_path):
    net = sr.nn.Sequential(sr.nn.Linear(3, 4), sr.nn.ReLU(), sr.nn.Linear(4, 1))
    path = tmp_path / "model.sr"
    sr.save(net.state_dict(), path)
    again = sr.nn.Sequential(sr.nn.Linear(3, 4), sr.nn.ReLU(), sr.nn.Linear(4, 1))
    again.load_state_dict(sr.load(path))
    x = sr.randn(5, 3)
    assert sr.equal(again(x), net(x))


def test_sparse_dense_and_half_tensors_come_back_whole():
    buf = io.BytesIO()
    product = sr.sparse.mm(sr.randn(4, 4).to_sparse(), sr.randn(4, 4).to_sparse())  # rows written later
    things = {"coo": sr.randn(3, 3).to_sparse(), "csr": sr.randn(3, 3).to_sparse_csr(), "product": product,
              "ints": sr.arange(4), "half": sr.ones(2, dtype=sr.float16), "c": sr.ones(2, dtype=sr.complex64),
              "mask": sr.tensor([True, False]), "list": [1, 2.5, "x"], "param": sr.nn.Parameter(sr.ones(2))}
    if sr.__dict__.get("bfloat16") is not None or hasattr(sr, "bfloat16"):
        things["bf16"] = sr.ones(2, dtype=sr.bfloat16)
    sr.save(things, buf)
    buf.seek(0)
    back = sr.load(buf, map_location="cpu")
    for name, value in things.items():
        if isinstance(value, (sr.Tensor, sr.SparseTensor)):
            assert type(back[name]) is type(value) and back[name].dtype == value.dtype, name
            assert sr.equal(back[name], value), name
        else:
            assert back[name] == value
    assert back["param"].requires_grad


def test_load_refuses_a_file_that_names_code_and_a_torch_archive(tmp_path):
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(print))
    with pytest.raises(pickle.UnpicklingError, match="names builtins.print, which weights_only=True does not allow"):
        sr.load(evil)
    assert sr.load(evil, weights_only=False) is print  # a file you trust
    torch = torch_or_skip()
    archive = tmp_path / "t.pt"
    torch.save({"a": torch.ones(2)}, archive)
    with pytest.raises(pickle.UnpicklingError, match="zip archive, as torch.save writes: read it with torch.load"):
        sr.load(archive)
    with pytest.raises(ValueError, match="CPU only"):
        sr.load(evil, map_location="cuda:0")


def test_a_changed_file_is_refused_as_the_constructors_refuse():
    """A tensor in the file is checked as a pickle is (docs/field.rst): an index beyond its
    shape raises, never reaches a kernel."""
    s = sr.sparse_coo_tensor([[0, 1], [1, 0]], [1.0, 2.0], (2, 2))
    data = pickle.dumps(s)
    hacked = data.replace(np.array([1, 0], dtype=np.int64).tobytes(), np.array([1, 9], dtype=np.int64).tobytes())
    assert hacked != data
    with pytest.raises(Exception, match="out of bounds|out of range|index"):
        sr.load(io.BytesIO(hacked))


def test_torch_names_of_the_dtypes():
    torch = torch_or_skip()
    for name in ("long", "int", "float", "double", "half", "cfloat", "cdouble"):
        assert getattr(sr, name).name == str(getattr(torch, name)).split(".")[1], name
    assert sr.zeros(2, dtype=sr.long).dtype == sr.int64


def test_method_forms_and_value_tests_match_torch():
    torch = torch_or_skip()
    data = [1.0, float("nan"), float("inf"), -2.0]
    x, t = sr.tensor(data), torch.tensor(data)
    for name in ("isnan", "isinf", "isfinite"):
        assert getattr(x, name)().tolist() == getattr(t, name)().tolist()
        assert getattr(sr, name)(x).tolist() == getattr(torch, name)(t).tolist()
    for name in ("eq", "ne", "lt", "le", "gt", "ge"):
        assert getattr(x, name)(1.0).tolist() == getattr(t, name)(1.0).tolist(), name
    y, u = sr.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])
    assert y.add(y, alpha=2).tolist() == u.add(u, alpha=2).tolist()
    assert y.sub(1.0, alpha=3).tolist() == u.sub(1.0, alpha=3).tolist()
    assert y.mul(y).tolist() == u.mul(u).tolist() and y.div(2.0).tolist() == u.div(2.0).tolist()
    assert y.neg().tolist() == u.neg().tolist()
    assert x.is_floating_point() and not sr.arange(2).is_floating_point() and y.cpu() is y
    z = sr.arange(6).reshape(2, 3).t()
    assert not z.is_contiguous() and z.contiguous().is_contiguous() and z.contiguous().tolist() == z.tolist()


def test_equal_and_allclose():
    a = sr.tensor([1.0, 2.0])
    assert sr.equal(a, sr.tensor([1.0, 2.0])) and not sr.equal(a, sr.tensor([1.0, 2.5]))
    assert not sr.equal(a, sr.tensor([1.0, 2.0, 3.0]))
    assert not sr.equal(sr.tensor([float("nan")]), sr.tensor([float("nan")]))  # as torch
    assert sr.allclose(a, a + 1e-9) and not sr.allclose(a, a + 1e-3)
    assert sr.allclose(sr.tensor([float("nan")]), sr.tensor([float("nan")]), equal_nan=True)
    s = sr.tensor([[0.0, 2.0], [3.0, 0.0]])
    assert sr.equal(s.to_sparse(), s) and a.equal(a) and a.allclose(a)
    with pytest.raises(TypeError, match="dtypes float32 and float64 differ"):
        sr.equal(a, a.double())
    with pytest.raises(sr._errors.ShapeError, match="do not broadcast"):
        sr.allclose(a, sr.ones(3))

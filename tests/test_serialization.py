"""sr.save / sr.load (torch.save / torch.load with sr in their place), and the small torch
names a student's code reaches for first: sr.long and the other dtype names, the method
forms of the operators, isnan / isinf / isfinite, equal and allclose."""

import io
import pickle
import re

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
    """Every tensor is built by the constructors, with their checks: an index beyond the
    size (an edited file) raises, and never reaches a kernel."""
    buf = io.BytesIO()
    sr.save({"s": sr.sparse_coo_tensor([[0, 1], [1, 0]], [1.0, 2.0], (2, 2))}, buf)
    data = buf.getvalue()
    hacked = data.replace(np.array([[0, 1], [1, 0]], dtype=np.int64).tobytes(),
                          np.array([[0, 1], [9, 0]], dtype=np.int64).tobytes())
    assert hacked != data
    with pytest.raises(pickle.UnpicklingError, match="a tensor in the file is not whole: .*9"):
        sr.load(io.BytesIO(hacked))


def _evil(obj) -> io.BytesIO:
    return io.BytesIO(pickle.dumps(obj))


def test_a_crafted_file_cannot_make_an_array_that_reads_foreign_memory():
    """A review: with NumPy's own pickles allowed, a 60-byte file called
    numpy.ndarray((1,), dtype('O8'), b'AAAAAAAA'): an object array over pointers the file
    chose, and printing it killed the process. The file now names no NumPy class, and a
    tensor's dtype, shape and bytes are checked before an array is made."""
    with pytest.raises(pickle.UnpicklingError, match="names numpy.*, which weights_only=True does not allow"):
        sr.load(_evil(np.array([1.0])))
    with pytest.raises(pickle.UnpicklingError, match="names sparse_ref._tensor.Tensor"):
        sr.load(_evil(sr.ones(2)))
    tag = "sparse_ref.tensor.v1"
    for node, why in [((tag, "dense", ("object", (1,), b"A" * 8), False), "dtype 'object' is not one of"),
                      ((tag, "dense", ("float64", (2,), b"A" * 8), False), "8 bytes for shape (2,) of float64"),
                      ((tag, "dense", ("float64", (-1,), b""), False), "shape (-1,)"),
                      ((tag, "dense", ("int8", (1,), b"A"), False), "dtype 'int8'"),
                      ((tag, "csr", (2, 2), ("int64", (3,), np.array([0, 5, 1]).tobytes()),
                        ("int64", (1,), np.array([0]).tobytes()), ("float64", (1,), b"A" * 8), False), "not whole"),
                      ((tag, "gadget"), "unknown kind 'gadget'")]:
        with pytest.raises(pickle.UnpicklingError, match=re.escape(why) if "(" in why else why):
            sr.load(_evil({"x": node}))


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


def test_an_unpickled_tensor_keeps_no_array_its_layout_never_has():
    """A review: a pickled COO state with a crafted _rows_later (row pointers of its own
    choosing) loaded, multiplied right once, then detach() or -s built a tensor on the
    unchecked arrays and mm killed the process; a dense state took an object or '>f4'
    array. Plain pickle (deepcopy, Dask) now drops such keys and refuses such data."""
    import copyreg

    s = sr.tensor([[0.0, 1.0], [2.0, 0.0]]).to_sparse()
    state = dict(s.__getstate__())
    state["_rows_later"] = "anything"
    state["_crow"] = np.array([0, 1, 1 << 28])
    loaded = copyreg.__newobj__(sr.SparseTensor)
    loaded.__setstate__(state)
    assert not {"_rows_later", "_crow"} & set(loaded.__dict__)
    for t in (loaded.detach(), -loaded, loaded * 2.0):
        assert sr.sparse.mm(t, sr.ones(2, 1)).shape == (2, 1)
    for data, why in ((np.array([1, "a"], dtype=object), "does not support dtype object"),
                      (np.array([1.0], dtype=">f4"), "big-endian"), ([1.0], "must be an array")):
        st = dict(sr.ones(1).__getstate__())
        st["_data"] = data
        with pytest.raises(TypeError, match=why):
            copyreg.__newobj__(sr.Tensor).__setstate__(st)


def test_a_small_file_cannot_crash_or_blow_up_load(tmp_path):
    """A second review: a dict key of a tuple nested 200,000 deep (hashing it overflowed
    the C stack: exit 139, as for pickle.loads); 693 bytes of shared references that
    load copied into gigabytes; a size given as bytes; an OrderedDict given a state."""
    from conftest import run_child

    deep = b"\x80\x05}" + b")" + b"\x85" * 200000 + b"K\x01s."
    (tmp_path / "deep.pkl").write_bytes(deep)
    script = ("import sparse_ref as sr\ntry:\n    sr.load('deep.pkl')\nexcept Exception as e:\n"
              "    print(type(e).__name__, e)\n")
    (tmp_path / "run.py").write_text(script)
    done = run_child(["run.py"], tmp_path)
    assert done.returncode == 0, done.stderr[-1000:]
    assert "UnpicklingError load: a dict key or set element of type tuple, or nested more than 8 deep" in done.stdout
    shared = b"\x80\x05]\x94"
    for level in range(1, 12):  # each list holds the one before it 10 times: 10**11 leaves, copied
        shared += b"(" + (b"h" + bytes([level - 1])) * 10 + b"l\x94"  # MARK, BINGET x10, LIST, MEMOIZE
    top = sr.load(io.BytesIO(shared + b"."))
    assert top[0] is top[1]  # shared as in the file, not copied
    node = ("sparse_ref.tensor.v1", "coo", b"\x02\x02", ("int64", (2, 1), bytes(16)), ("float64", (1,), bytes(8)),
            False, False)
    with pytest.raises(pickle.UnpicklingError, match="size b'\\\\x02\\\\x02' is not a tuple of ints"):
        sr.load(_evil({"x": node}))
    import collections

    odd = collections.OrderedDict(a=1)
    odd.items_note = "state"  # pickled with a BUILD of its __dict__
    with pytest.raises(pickle.UnpicklingError, match="BUILD"):
        sr.load(_evil(odd))


def test_a_tensor_saved_twice_is_stored_once_and_loads_shared():
    big = sr.ones(1 << 14, dtype=sr.float64)
    buf = io.BytesIO()
    sr.save({"a": big, "b": [big, big]}, buf)
    assert len(buf.getvalue()) < 2 * big.numel() * 8
    buf.seek(0)
    back = sr.load(buf)
    assert back["a"] is back["b"][0] is back["b"][1] and sr.equal(back["a"], big)


def test_a_zero_dimensional_tensor_keeps_its_shape_through_save_and_load(tmp_path):
    path = tmp_path / "scalars.pt"
    saved = {"loss": sr.tensor(0.25), "step": sr.tensor(3, dtype=sr.int64),
             "w": sr.nn.Parameter(sr.tensor(2.0)), "column": sr.tensor([[1.0], [2.0]]).t()}
    sr.save(saved, path)
    back = sr.load(path)
    for key, t in saved.items():
        assert back[key].shape == t.shape and back[key].dtype == t.dtype, key
        assert back[key].tolist() == t.tolist()
    assert isinstance(back["w"], sr.nn.Parameter)

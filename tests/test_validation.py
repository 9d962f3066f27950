"""Every bad input gets the right exception with a message that names the problem, and
no function writes into what it was given."""

import numpy as np
import pytest

import sparse_ref as sr
from sparse_ref._errors import ConversionError, DTypeError, IndexRangeError

IDX = [[0, 1], [1, 0]]


@pytest.mark.parametrize(
    "indices,values,size,kwargs,exc,message",
    [
        ([[0.0, 1.0], [1.0, 0.0]], [1.0, 2.0], (2, 2), {}, TypeError,
         "indices must be an integer array, got dtype float64"),
        ([0, 1], [1.0, 2.0], (2, 2), {}, ValueError, r"indices must be sparse_dim x nnz, but got: \[2\]"),
        ([[0, 1], [1, 0], [0, 0]], [1.0, 2.0], (2, 2), {}, ValueError,
         r"'len\(size\) == sparse_dim \+ dense_dim' is not satisfied: len\(size\) = 2, sparse_dim = 3, dense_dim = 0"),
        ([[0, 1], [1, 0], [0, 0], [0, 0]], [1.0, 2.0], (2, 2, 2), {}, ValueError,
         r"len\(size\) = 3, sparse_dim = 4, dense_dim = 0"),
        (IDX, [[1.0, 2.0], [3.0, 4.0]], (2, 2), {}, ValueError,
         r"'len\(size\) == sparse_dim \+ dense_dim' is not satisfied: len\(size\) = 2, sparse_dim = 2, dense_dim = 1"),
        (IDX, [1.0, 2.0, 3.0], (2, 2), {}, ValueError,
         r"indices and values must have the same number of entries \(nnz\), got 2 indices and 3 values"),
        (IDX, [1.0, 2.0], (2, 2, 2), {}, ValueError,
         r"len\(size\) = 3, sparse_dim = 2, dense_dim = 0"),
        (IDX, [1.0, 2.0], (2, -2), {}, ValueError, r"size must be non-negative, got \(2, -2\)"),
        (IDX, [1.0, 2.0], (2, 2.5), {}, TypeError, "size must be ints"),
        (IDX, [1.0, 2.0], 4, {}, TypeError, r"size must be a sequence of ints"),
        ([[0, -1], [1, 0]], [1.0, 2.0], (2, 2), {}, IndexError, r"found negative index -1 for dim 0 \(size 2\)"),
        ([[0, 1], [5, 0]], [1.0, 2.0], (2, 3), {}, IndexError,
         "size is inconsistent with indices: for dim 1, size is 3 but found index 5"),
        ([[0, 2], [1, 0]], [1.0, 2.0], (2, 3), {}, IndexError, "for dim 0, size is 2 but found index 2"),
        (IDX, [True, False], (2, 2), {}, TypeError, "bool values are not supported"),
        (IDX, np.array([1.0, 2.0], np.uint8), (2, 2), {}, TypeError,
         "sparse_ref does not support dtype uint8; use one of int32, int64, float32"),
        (IDX, [1.0, 2.0], (2, 2), {"dtype": "foo"}, TypeError, "'foo' is not a dtype"),
        (IDX, [1.0, 2.0], (2, 2), {"dtype": bool}, TypeError, "does not support dtype bool"),
        ([[1, 0], [0, 0]], [1.0, 2.0], (2, 2), {"is_coalesced": True}, ValueError,
         r"is_coalesced=True but the indices are not sorted row-major and unique \(entry 1 at \(0, 0\) follows \(1, 0\)\)"),
        ([[0, 0], [1, 1]], [1.0, 2.0], (2, 2), {"is_coalesced": True}, ValueError, "not sorted row-major and unique"),
        ([[0, 1], [1, 0]], ["a", "b"], (2, 2), {}, TypeError, "expected numbers, got an array of dtype str"),
    ],
)
def test_sparse_coo_tensor_rejects_bad_input(indices, values, size, kwargs, exc, message):
    with pytest.raises(exc, match=message):
        sr.sparse_coo_tensor(indices, values, size, **kwargs)


def test_inferred_size_rejects_negative_indices():
    with pytest.raises(IndexError, match="found negative index -3 for dim 1"):
        sr.sparse_coo_tensor([[0, 1], [-3, 0]], [1.0, 2.0])


def test_uint64_index_too_large_for_int64_is_rejected():
    with pytest.raises(IndexError, match="does not fit in int64"):
        sr.sparse_coo_tensor(np.array([[0], [2**63]], np.uint64), [1.0], (1, 2))


@pytest.mark.parametrize(
    "call,exc,message",
    [
        (lambda: sr.tensor([[1.0, 2.0], [3.0]]), TypeError, "cannot make an array|ragged"),
        (lambda: sr.tensor(sr.tensor([[1.0]]).to_sparse()), TypeError, "expected dense data, got a sparse tensor"),
        (lambda: sr.tensor(1.0).to_sparse(), ValueError, "a 0-d tensor has no dimension to make sparse"),
        (lambda: sr.zeros(2, -1), ValueError, "size must be non-negative"),
        (lambda: sr.randn(2, "3"), TypeError, "size must be ints"),
        (lambda: sr.set_num_threads(0), ValueError, "must not be 0"),
        (lambda: sr.set_num_threads(1.5), TypeError, "thread count must be an int"),
        (lambda: sr.use_backend("numba"), ValueError, "unknown backend 'numba': expected one of cython, reference"),
        (lambda: sr.SparseTensor(), TypeError, "sr.sparse_coo_tensor"),
        (lambda: sr.tensor([1.0]).item() + sr.tensor([1.0, 2.0]).item(), ValueError, "cannot be converted"),
    ],
)
def test_other_bad_input(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_no_function_writes_into_its_inputs():
    rng = np.random.default_rng(0)
    indices = np.stack([rng.integers(0, 5, 30), rng.integers(0, 4, 30)])
    values = rng.standard_normal(30)
    dense = rng.standard_normal((3, 4))
    keep = indices.copy(), values.copy(), dense.copy()
    s = sr.sparse_coo_tensor(indices, values, (5, 4))
    s_idx, s_val = s._indices().numpy().copy(), s._values().numpy().copy()
    for backend in ("reference", "cython"):
        with sr.use_backend(backend):
            s.coalesce().to_dense()
            s.t().coalesce()
            s._csr()
    d = sr.tensor(dense)
    d.to_sparse().to_dense()
    pytest.importorskip("scipy")
    sr.to_scipy(s)
    assert np.array_equal(indices, keep[0]) and np.array_equal(values, keep[1]) and np.array_equal(dense, keep[2])
    assert indices.flags.writeable and values.flags.writeable
    assert np.array_equal(s._indices().numpy(), s_idx) and np.array_equal(s._values().numpy(), s_val)
    assert not s.is_coalesced()


def test_a_failed_call_leaves_the_tensor_as_it_was():
    s = sr.sparse_coo_tensor([[2**40 - 1, 0], [0, 1]], [1.0, 2.0], (2**40, 2))
    with pytest.raises(MemoryError):
        s._csr()
    assert not s.is_coalesced() and s._indices().tolist() == [[2**40 - 1, 0], [0, 1]]


def test_integer_tensors_refuse_fractional_scalars():
    with pytest.raises(TypeError, match="would be truncated to the integer dtype int64"):
        sr.tensor([1, 2]) * 2.5
    with pytest.raises(TypeError, match="needs a floating tensor"):
        sr.tensor([4, 9]) ** 0.5
    assert (sr.tensor([1, 2]) * 2.0).tolist() == [2, 4]  # a whole number is fine


def test_empty_index_lists_are_accepted():
    s = sr.sparse_coo_tensor([[], []], [], (2, 2))
    assert s._nnz() == 0 and s.indices().dtype == sr.int64


def test_product_errors_are_also_runtime_errors_like_torch():
    s = sr.sparse_coo_tensor([[0], [0]], [1.0], (2, 3))
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        sr.sparse.mm(s, sr.ones(4, 2))
    with pytest.raises(RuntimeError, match="does not match mat2 dtype"):
        sr.sparse.mm(s, sr.ones(3, 2, dtype=sr.float64))


def test_numpy_array_times_sparse_gives_a_clear_error():
    s = sr.sparse_coo_tensor([[0], [0]], [1.0], (2, 3))
    with pytest.raises(TypeError, match="mat1 must be a sparse_ref Tensor or SparseTensor, got ndarray"):
        np.ones((2, 2)) @ s


def test_from_scipy_verifies_a_stale_canonical_flag():
    sp = pytest.importorskip("scipy.sparse")
    m = sp.coo_array(([1.0, 2.0], ([0, 1], [0, 0])), shape=(2, 1))
    m.sum_duplicates()
    m.row[:] = m.row[::-1].copy()  # edit the arrays: SciPy still claims canonical form
    s = sr.from_scipy(m)
    assert not s.is_coalesced()
    assert sr.sparse.mm(s, sr.ones(1, 1, dtype=sr.float64)).tolist() == [[2.0], [1.0]]


def test_argument_errors_are_runtime_errors_as_torchs():
    # (probe) these raised a plain ValueError; docs/semantics.rst promises that every
    # sparse_ref error also derives from RuntimeError, the class torch raises for them
    for make in (lambda: sr.tensor([[1.0, 2.0]]).to_sparse(0),
                 lambda: sr.sparse_coo_tensor([[0], [0]], [1.0], (2,)),
                 lambda: sr.sparse_coo_tensor([[0, 1], [0, 1]], [1.0], (2, 2)),
                 lambda: sr.sparse_coo_tensor([[1, 0], [1, 0]], [1.0, 2.0], (2, 2), is_coalesced=True),
                 lambda: sr.tensor([1.0, 2.0]).item(),
                 lambda: sr.arange(0, 1, 0)):
        with pytest.raises(RuntimeError):
            make()
        with pytest.raises(ValueError):  # and still the ValueError Python code expects
            make()


@pytest.mark.parametrize("make, builtin", [
    (lambda: sr.sparse_csr_tensor([0, 2, 3], [0, 5, 0], [1., 2., 3.], (2, 2)), IndexError),
    (lambda: sr.sparse_coo_tensor([[0, -1], [0, 0]], [1., 2.], (2, 2)), IndexError),
    (lambda: sr.sparse_coo_tensor([[0, 2], [0, 0]], [1., 2.], (2, 2)), IndexError),
    (lambda: sr.sparse_coo_tensor([[0], [0]], [1], (1, 1)) @ sr.sparse_coo_tensor([[0], [0]], [1], (1, 1)),
     TypeError),
    (lambda: sr.sparse_csr_tensor(np.array([0., 1.]), [0], [1.], (1, 1)), TypeError),
    (lambda: sr.sparse.mm(sr.sparse_coo_tensor([[0], [0]], [2], (1, 1)), sr.ones(1, 1, dtype=sr.int64),
                          reduce="mean"), TypeError),
    (lambda: sr.sparse_coo_tensor([[0], [0]], [2], (1, 1)) * 2.5, TypeError),
])
def test_index_and_dtype_errors_are_runtime_errors_as_torchs(make, builtin):
    """(probe) out-of-range indices raised a plain IndexError, and dtypes an op does not
    take a plain TypeError, where torch raises RuntimeError (or NotImplementedError, one):
    ``except RuntimeError`` written for torch missed them."""
    with pytest.raises(RuntimeError):
        make()
    with pytest.raises(builtin):
        make()


# -- values the target cannot hold, found by a probe: refused, not converted in silence ---------

def test_python_integers_beyond_int64_are_integers_whatever_their_neighbours():
    """NumPy makes [2**63, 1] a float64 array: sr.tensor gave float32 values, where
    sr.tensor([2**63]) alone is refused (torch: "Overflow when unpacking long long")."""
    for data in ([2 ** 63, 1], [-1, 2 ** 63], [[2 ** 63], [1]]):
        with pytest.raises(ConversionError, match="9223372036854775808 does not fit in int64"):
            sr.tensor(data)
    with pytest.raises(ConversionError, match="does not fit in int64"):
        sr.sparse_coo_tensor([[0, 1]], [2 ** 63 + 1, 1], (2,))
    with pytest.raises(IndexRangeError, match="index 9223372036854775808 does not fit in int64"):
        sr.sparse_coo_tensor([[0, 2 ** 63]], [1.0, 2.0], (2 ** 63 + 5,))
    assert sr.tensor([2 ** 63, 1], dtype=sr.float64).tolist() == [2.0 ** 63, 1.0]  # asked for
    assert sr.tensor([2 ** 63 + 1, 1.5]).dtype == sr.float32  # a float among them: floats, as torch


@pytest.mark.parametrize("data", [np.array(["1e39"]), np.array([b"1"]), np.array([2 ** 40], "m8[s]"),
                                  np.array(["2026-12-02"], "M8[D]"), np.array([1.5, 2], dtype=object)])
def test_strings_dates_and_objects_are_not_numbers(data):
    """'1e39' became inf in float32, a timedelta wrapped in int32, an object array raised a
    bare StopIteration (which map() swallows: an empty list and no error)."""
    for dtype in (None, sr.float32, sr.int32):
        with pytest.raises(TypeError, match="tensor: expected numbers, got an"):
            sr.tensor(data, dtype=dtype)
    with pytest.raises(TypeError, match="expected numbers"):
        sr.full((2,), "1e39", dtype=sr.float32)


def test_an_object_array_of_integers_is_taken_as_integers():
    assert sr.tensor(np.array([1, 2], dtype=object)).tolist() == [1, 2]
    assert list(map(sr.tensor, [np.array([1, 2], dtype=object)]))[0].tolist() == [1, 2]
    s = sr.sparse_coo_tensor(np.array([[0, 1]], dtype=object), [1.0, 2.0], (2,))
    assert s.coalesce().indices().tolist() == [[0, 1]]


def test_a_finite_long_double_beyond_float64_is_refused_by_its_value():
    """float64's limit (max + half an ulp) is inf as a float64, so no long double was ever
    refused: 1e4000 became inf. And the message printed the value as inf."""
    big = np.array([np.longdouble("1e4000")])
    if not np.isfinite(big[0]):
        pytest.skip("long double is float64 here")
    for dtype in (sr.float64, sr.float32, sr.complex128):
        with pytest.raises(ConversionError, match=r"value 1e\+4000 cannot be converted"):
            sr.tensor(big, dtype=dtype)
    assert sr.tensor(np.array([np.longdouble("1e300")]), dtype=sr.float64).tolist() == [1e300]


def test_arange_refuses_to_wrap_past_int64():
    with pytest.raises(ConversionError, match="arange: value 9223372036854775808 cannot be converted"):
        sr.arange(2 ** 63 - 2, 2 ** 63 + 1)
    assert sr.arange(2 ** 63 - 3, 2 ** 63 - 1).tolist() == [2 ** 63 - 3, 2 ** 63 - 2]
    assert sr.arange(-2 ** 63, 2 ** 63 - 1, 2 ** 62).tolist() == [-2 ** 63, -2 ** 62, 0, 2 ** 62]


def test_a_bool_sparse_tensor_is_refused_before_a_kernel():
    """A bool tensor's to_sparse() (its sums work, as torch's) reached the kernels in
    products, additions and coalesce, which failed inside with "No matching signature
    found"; each now says what to do first."""
    m = sr.tensor([[True, False], [True, True]])
    s, c = m.to_sparse(), m.to_sparse_csr()
    assert s.sum(0).to_dense().tolist() == [2, 1]
    for op in (lambda: sr.sparse.mm(s, s), lambda: sr.sparse.mm(c, m), lambda: s @ m.long(),
               lambda: sr.sparse.mm(s.long(), m)):
        with pytest.raises(DTypeError, match="is bool; the products take int32, int64, float and complex values"):
            op()
    for op in (lambda: s + s, lambda: s.t().coalesce()):
        with pytest.raises(DTypeError, match="coalesce: bool values cannot be summed by the kernels"):
            op()
    assert sr.sparse.mm(s.long(), m.long()).tolist() == [[1, 0], [2, 1]]


def test_a_float_beyond_an_integer_range_before_truncation_is_refused():
    # torch refuses 2147483647.5 and -2147483648.5 for int32; float32's 2**31 is refused too
    for v in (2147483647.5, -2147483648.5, -2147483649.0, 2.0 ** 31):
        with pytest.raises(ConversionError, match="int32 without overflow"):
            sr.tensor([v], dtype=sr.int32)
    with pytest.raises(ConversionError, match="int32 without overflow"):
        sr.tensor(np.array([2.0 ** 31], dtype=np.float32), dtype=sr.int32)
    assert sr.tensor([2147483647.0, -2147483648.0, -7.9], dtype=sr.int32).tolist() == [2147483647, -2147483648, -7]
    assert sr.tensor(np.array([2147483520.0], dtype=np.float32), dtype=sr.int32).tolist() == [2147483520]
    assert sr.tensor([-2.0 ** 63, 2147483647.5], dtype=sr.int64).tolist() == [-2 ** 63, 2147483647]
    with pytest.raises(ConversionError, match="int64 without overflow"):
        sr.tensor([2.0 ** 63], dtype=sr.int64)

"""Shared helpers. The suite runs on the backend named by SPARSE_REF_BACKEND (cython when
unset); tests that compare the two paths switch explicitly with sr.use_backend."""

import numpy as np
import pytest

import sparse_ref as sr

VALUE_DTYPES = [sr.float32, sr.float64, sr.complex64, sr.complex128]
ALL_DTYPES = [sr.int32, sr.int64, *VALUE_DTYPES]
THREADS = [1, 2, 4]


def random_values(rng, n, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        return (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dtype)
    if dtype.kind in "iu":
        return rng.integers(-9, 10, n).astype(dtype)
    return rng.standard_normal(n).astype(dtype)


def random_coo(rng, shape, nnz, dtype=np.float64):
    """Random COO arrays in storage order: unsorted, with duplicates when nnz is large."""
    row = rng.integers(0, max(shape[0], 1), nnz) if shape[0] else np.zeros(0, np.int64)
    col = rng.integers(0, max(shape[1], 1), nnz) if shape[1] else np.zeros(0, np.int64)
    if shape[0] == 0 or shape[1] == 0:
        row, col = row[:0], col[:0]
    return np.stack([row, col]).astype(np.int64), random_values(rng, row.shape[0], dtype)


def dense_oracle(indices, values, shape):
    """The dense matrix NumPy builds with np.add.at (its own summation order)."""
    out = np.zeros(shape, dtype=values.dtype)
    np.add.at(out, (indices[0], indices[1]), values)
    return out


def same_bits(x, y):
    """Bit for bit equal, except that any two NaNs count as equal: which NaN an addition
    of two NaNs (or of inf and -inf) returns, and its sign, depends on operand order,
    which C compilers may swap. Everything else, -0.0 included, must match exactly."""
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != y.dtype or x.shape != y.shape:
        return False
    if x.dtype.kind in "fc":
        xf = np.ascontiguousarray(x).view(x.real.dtype)  # complex: real and imaginary parts
        yf = np.ascontiguousarray(y).view(y.real.dtype)
        bits = np.dtype(f"u{xf.dtype.itemsize}")
        return bool(np.all((xf.view(bits) == yf.view(bits)) | (np.isnan(xf) & np.isnan(yf))))
    return x.tobytes() == y.tobytes()


def assert_same_sparse(x, y):
    assert x.shape == y.shape
    assert x.is_coalesced() == y.is_coalesced()
    assert same_bits(x._indices().numpy(), y._indices().numpy())
    assert same_bits(x._values().numpy(), y._values().numpy())


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def torch_or_skip():
    return pytest.importorskip("torch")


@pytest.fixture
def tiny_work_uses_threads(monkeypatch):
    """Let sr.set_num_threads / n_threads=None reach the kernels even for tiny inputs."""
    monkeypatch.setattr("sparse_ref._threads.SERIAL_BELOW", 0)


def random_sparse(rng, shape, nnz, dtype=np.float64, explicit_zeros=True):
    """An uncoalesced SparseTensor with duplicates, (optionally) explicit zeros, empty rows."""
    indices, values = random_coo(rng, shape, nnz, dtype)
    if explicit_zeros and values.size:
        values[:: 5] = 0
    return sr.sparse_coo_tensor(indices, values, shape)


def random_dense(rng, shape, dtype=np.float64):
    return sr.tensor(random_values(rng, int(np.prod(shape)), dtype).reshape(shape))

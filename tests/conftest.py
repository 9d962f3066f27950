"""Shared helpers. The suite runs on the backend named by SPARSE_REF_BACKEND (cython when
unset); tests that compare the two paths switch explicitly with sr.use_backend.

The suite tests the sparse_ref that Python imports: after ``pip install .``, run it with
``python -P -m pytest`` (``-P`` keeps the checkout's own folder off ``sys.path``) or from
any other folder. With SPARSE_REF_EXPECT_INSTALLED=1 (CI sets it) the session stops at once
if sparse_ref came from the checkout instead of site-packages.
"""

import os
from pathlib import Path

import numpy as np
import pytest

import sparse_ref as sr

CHECKOUT = Path(__file__).resolve().parent.parent


def imported_from_checkout() -> bool:
    where = Path(sr.__file__).resolve()
    return CHECKOUT in where.parents and "site-packages" not in where.parts


def pytest_report_header(config):
    return f"sparse_ref {sr.__version__} from {Path(sr.__file__).resolve().parent}"


def pytest_sessionstart(session):
    if os.environ.get("SPARSE_REF_EXPECT_INSTALLED") == "1" and imported_from_checkout():
        raise pytest.UsageError(
            f"sparse_ref was imported from the checkout ({sr.__file__}), not from the installed "
            "package: run the suite with `python -P -m pytest` or from another folder")

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


def openmp_or_skip():
    """Skip a test about thread counts, with the reason, when this build runs serial; where
    OpenMP is required (CI sets SPARSE_REF_FAIL_NO_OPENMP=1) a serial build fails instead."""
    if sr.openmp_enabled():
        return
    if os.environ.get("SPARSE_REF_FAIL_NO_OPENMP") == "1":
        pytest.fail("OpenMP is off in this build, and SPARSE_REF_FAIL_NO_OPENMP=1 requires it")
    pytest.skip("this build has no OpenMP (the compiler had no -fopenmp): every kernel runs serial")


@pytest.fixture
def tiny_work_uses_threads(monkeypatch):
    """Let sr.set_num_threads / n_threads=None reach the kernels even for tiny inputs, and
    on every core, even while other processes keep some busy."""
    from sparse_ref import _threads

    monkeypatch.setattr(_threads, "SERIAL_BELOW", 0)
    monkeypatch.setattr(_threads, "free_cores", _threads._cores)


def random_sparse(rng, shape, nnz, dtype=np.float64, explicit_zeros=True):
    """An uncoalesced SparseTensor with duplicates, (optionally) explicit zeros, empty rows."""
    indices, values = random_coo(rng, shape, nnz, dtype)
    if explicit_zeros and values.size:
        values[:: 5] = 0
    return sr.sparse_coo_tensor(indices, values, shape)


def random_dense(rng, shape, dtype=np.float64):
    return sr.tensor(random_values(rng, int(np.prod(shape)), dtype).reshape(shape))


def child_env(**extra) -> dict:
    """The environment for a child Python that must import the same sparse_ref as this one
    (run it with cwd outside the checkout: ``python -c`` puts its cwd first on sys.path)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(sr.__file__).resolve().parent.parent)
    env.update(extra)
    return env


def run_child(args, tmp_path, timeout=120, **extra_env):
    """Run ``python *args`` in tmp_path with the same sparse_ref; return the CompletedProcess."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=child_env(**extra_env),
                          capture_output=True, text=True, timeout=timeout)

"""The backend switch and the thread policy."""

import os

import pytest
from conftest import run_child

import sparse_ref as sr
from sparse_ref._threads import SERIAL_BELOW, effective_n_threads


def test_use_backend_is_a_context_manager_and_a_call():
    start = sr.get_backend()
    with sr.use_backend("reference"):
        assert sr.get_backend() == "reference"
        with sr.use_backend("cython"):
            assert sr.get_backend() == "cython"
        assert sr.get_backend() == "reference"
    assert sr.get_backend() == start
    sr.use_backend("reference")
    try:
        assert sr.get_backend() == "reference"
    finally:
        sr.use_backend(start)


def test_backend_comes_from_the_environment(tmp_path):
    code = "import sparse_ref as sr; print(sr.get_backend())"
    out = run_child(["-c", code], tmp_path, SPARSE_REF_BACKEND="reference")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "reference"
    bad = run_child(["-c", code], tmp_path, SPARSE_REF_BACKEND="fortran")
    assert bad.returncode != 0 and "unknown backend 'fortran'" in bad.stderr


def test_set_num_threads_round_trips():
    from sparse_ref._threads import _cores

    old = sr.get_num_threads()
    try:
        sr.set_num_threads(1)
        assert sr.get_num_threads() == 1
        sr.set_num_threads(3)
        assert sr.get_num_threads() == (min(3, _cores()) if sr.openmp_enabled() else 1)
    finally:
        sr.set_num_threads(old)


def test_thread_policy():
    from sparse_ref._threads import _cores

    n_cpu = _cores()
    if sr.openmp_enabled():
        assert effective_n_threads(2) == 2
        assert effective_n_threads(-1) == n_cpu
        assert effective_n_threads(None, work=SERIAL_BELOW - 1) == 1
        assert effective_n_threads(None, work=SERIAL_BELOW) == sr.get_num_threads()
        assert effective_n_threads(2, work=10) == min(2, n_cpu)  # an explicit count is honoured
        assert effective_n_threads(n_cpu + 3) == n_cpu  # ... up to the CPUs we may use
        assert effective_n_threads(1000) == n_cpu
    else:
        assert effective_n_threads(4) == 1
    with pytest.raises(ValueError, match="must not be 0"):
        effective_n_threads(0)
    with pytest.raises(ValueError, match="more than the 1024 sparse_ref allows"):
        sr.set_num_threads(2**31)


def test_openmp_is_on_when_ci_requires_it():
    if os.environ.get("SPARSE_REF_FAIL_NO_OPENMP") == "1":
        assert sr.openmp_enabled()
    else:
        assert isinstance(sr.openmp_enabled(), bool)

"""The backend switch and the thread policy."""

import os

import numpy as np
import pytest
from conftest import openmp_or_skip, run_child

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

    openmp_or_skip()
    old = sr.get_num_threads()
    try:
        sr.set_num_threads(1)
        assert sr.get_num_threads() == 1
        sr.set_num_threads(3)
        assert sr.get_num_threads() == min(3, _cores())
    finally:
        sr.set_num_threads(old)


def test_a_serial_build_reports_one_thread():
    if sr.openmp_enabled():
        pytest.skip("this build has OpenMP (the serial case is for builds without it)")
    old = sr.get_num_threads()
    try:
        sr.set_num_threads(3)
        assert sr.get_num_threads() == 1 and effective_n_threads(4) == 1
    finally:
        sr.set_num_threads(old)


def test_openmp_is_on_where_required():
    if os.environ.get("SPARSE_REF_FAIL_NO_OPENMP") != "1":
        pytest.skip("SPARSE_REF_FAIL_NO_OPENMP is not 1 here (CI sets it to require OpenMP)")
    assert sr.openmp_enabled()


def test_thread_policy(monkeypatch):
    from sparse_ref import _threads
    from sparse_ref._threads import _cores

    openmp_or_skip()
    monkeypatch.setattr(_threads, "free_cores", _cores)  # as if no other process ran
    n_cpu = _cores()
    assert effective_n_threads(2) == min(2, n_cpu)
    assert effective_n_threads(-1) == n_cpu
    assert effective_n_threads(None, work=SERIAL_BELOW - 1) == 1
    assert effective_n_threads(None, work=SERIAL_BELOW) == sr.get_num_threads()
    assert effective_n_threads(2, work=10) == min(2, n_cpu)  # an explicit count is honoured
    assert effective_n_threads(n_cpu + 3) == n_cpu  # ... up to the CPUs we may use
    assert effective_n_threads(1000) == n_cpu


def test_thread_counts_are_checked():
    with pytest.raises(ValueError, match="must not be 0"):
        effective_n_threads(0)
    with pytest.raises(ValueError, match="more than the 1024 sparse_ref allows"):
        sr.set_num_threads(2**31)
    with pytest.raises(TypeError, match="must be an int"):
        sr.set_num_threads(2.0)
    with pytest.raises(TypeError, match="must be an int"):
        sr.set_num_threads(np.bool_(True))
    old = sr.get_num_threads()
    try:  # a NumPy integer is taken, as torch takes it (probe)
        sr.set_num_threads(np.int64(1))
        assert sr.get_num_threads() == 1 and type(sr.get_num_threads()) is int
    finally:
        sr.set_num_threads(old)


# -- the backend interface ---------------------------------------------------------------------

def test_the_interface_is_what_the_reference_implements():
    """INTERFACE declares every public function of every reference kernel module, with its
    parameters in order (test_mirror holds the Cython twins to the reference)."""
    import importlib
    import inspect

    from sparse_ref import _backend, reference

    assert sorted(_backend.INTERFACE) == sorted(reference.KERNEL_MODULES)
    for name, functions in _backend.INTERFACE.items():
        module = importlib.import_module(f"sparse_ref.reference.{name}")
        public = {n for n, f in vars(module).items() if inspect.isfunction(f) and f.__module__ == module.__name__
                  and not n.startswith("_") and n in getattr(module, "__all__", functions)}
        assert public == set(functions), name
        for fname, params in functions.items():
            assert tuple(inspect.signature(getattr(module, fname)).parameters) == params, fname


def _fake_backend(tmp_path, monkeypatch, spmm_source):
    """A package of kernel modules: the reference's, except spmm.py."""
    import sys

    from sparse_ref import _backend

    package = tmp_path / "my_kernels"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in _backend.INTERFACE:
        if name != "spmm":
            (package / f"{name}.py").write_text(f"from sparse_ref.reference.{name} import *  # noqa: F403\n")
    (package / "spmm.py").write_text(spmm_source)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "my_kernels" or m.startswith("my_kernels.")]:
        monkeypatch.delitem(sys.modules, name)
    return _backend.Backend("mine", "my_kernels")


def test_a_backend_that_implements_the_interface_runs(tmp_path, monkeypatch):
    backend = _fake_backend(tmp_path, monkeypatch, "from sparse_ref.reference.spmm import spmm, spmm_reduce\n")
    backend.check()
    assert backend.module("spmm").spmm.__module__ == "sparse_ref.reference.spmm"


@pytest.mark.parametrize("source, problem", [
    ("from sparse_ref.reference.spmm import spmm\n", "spmm.spmm_reduce is missing"),
    ("from sparse_ref.reference.spmm import spmm_reduce\n"
     "def spmm(a_crow, a_col, a_val, out, b, n_threads=1):\n    pass\n",
     "spmm.spmm takes (a_crow, a_col, a_val, out, b, n_threads), the interface says "
     "(a_crow, a_col, a_val, b, out, n_threads)"),
])
def test_a_backend_that_breaks_the_interface_is_refused_by_name(tmp_path, monkeypatch, source, problem):
    from sparse_ref._backend import BackendError

    backend = _fake_backend(tmp_path, monkeypatch, source)
    with pytest.raises(BackendError, match="backend 'mine' does not implement the kernel interface") as info:
        backend.check()
    assert problem in str(info.value)
    with pytest.raises(BackendError):
        backend.module("spmm")  # refused on every use, not only the first


def test_a_backend_that_does_not_import_names_the_module(tmp_path, monkeypatch):
    from sparse_ref._backend import BackendError

    backend = _fake_backend(tmp_path, monkeypatch, "raise ImportError('no compiler')\n")
    with pytest.raises(BackendError, match=r"backend 'mine': cannot import my_kernels.spmm \(no compiler\)"):
        backend.check()



def test_the_default_count_leaves_the_cores_others_keep_busy(monkeypatch):
    """Another process spinning on one core: the default count drops to the free cores
    (an OpenMP barrier would wait a time slice for a preempted thread); explicit counts
    are honoured as given."""
    from sparse_ref import _threads

    openmp_or_skip()
    clock = {"wall": 100.0, "busy": 50.0, "mine": 5.0}
    monkeypatch.setattr(_threads, "_cores", lambda refresh=False: 4)
    monkeypatch.setattr(_threads, "_last", None)
    monkeypatch.setattr(_threads, "_busy_elsewhere", 0.0)
    monkeypatch.setattr(_threads.time, "monotonic", lambda: clock["wall"])
    monkeypatch.setattr(_threads, "_machine_busy_seconds", lambda: clock["busy"])
    monkeypatch.setattr(_threads.os, "times", lambda: (clock["mine"], 0.0, 0, 0, 0))
    assert _threads.free_cores() == 4  # the first look: nothing known yet
    # 1 s later: the machine was busy 2.9 core-seconds, 0.9 of them ours -> others held 2 cores
    clock.update(wall=101.0, busy=52.9, mine=5.9)
    assert _threads.free_cores() == 2
    monkeypatch.setattr(_threads, "get_num_threads", lambda: 4)
    assert _threads.effective_n_threads(None, work=10**9) == 2
    assert _threads.effective_n_threads(4, work=10**9) == min(4, _threads._cores()) == 4
    clock.update(wall=101.01)  # within SAMPLE_SECONDS: the last figure stands, no new read
    monkeypatch.setattr(_threads, "_machine_busy_seconds", lambda: 1 / 0)
    assert _threads.free_cores() == 2
    # our own threads' time does not count against us: all busy time ours -> all free
    monkeypatch.setattr(_threads, "_machine_busy_seconds", lambda: clock["busy"])
    clock.update(wall=102.0, busy=56.9, mine=9.9)
    assert _threads.free_cores() == 4


FP_MODE_CHILD = r"""
import numpy as np, torch, sparse_ref as sr
from sparse_ref import _threads
_threads.free_cores = lambda: 2  # two threads even while another process is busy
if {broken}:
    _threads._same_fp_mode = lambda n: None  # the workers keep the mode they started with
rng = np.random.default_rng(0)
dense = (rng.random((60000, 100)) < 0.1) * (rng.random((60000, 100)) + 0.25)  # big enough
a = sr.from_numpy(dense.astype(np.float32)).to_sparse()  # that both threads take rows
b = sr.from_numpy((rng.standard_normal((100, 16)) * 1e-39).astype(np.float32))  # subnormal
sr.set_num_threads(2)
if {ftz_first}:
    torch.set_flush_denormal(True)
sr.sparse.mm(a, b)  # the workers start here, with the caller's mode
torch.set_flush_denormal(not {ftz_first})  # ... which then changes on the caller only
two = sr.sparse.mm(a, b).numpy()
sr.set_num_threads(1)
one = sr.sparse.mm(a, b).numpy()
with sr.use_backend("reference"):
    ref = sr.sparse.mm(a, b).numpy()
print(two.tobytes() == one.tobytes(), one.tobytes() == ref.tobytes(),
      int(np.count_nonzero(one.view(np.uint32) & 0x7FFFFFFF)))
"""


@pytest.mark.parametrize("ftz_first", [False, True])
def test_workers_take_the_callers_flush_to_zero_mode(tmp_path, ftz_first):
    # flush-to-zero is a setting of each thread: torch.set_flush_denormal(True) after the
    # OpenMP workers started (or False after they started with it) changed the caller only,
    # so the worker's rows treated subnormals otherwise and the bits depended on the thread
    # count; the workers now take the caller's mode before a call on several threads
    openmp_or_skip()
    pytest.importorskip("torch")
    import platform

    if platform.machine() not in ("x86_64", "AMD64") or sr._threads._cores() < 2:
        pytest.skip("needs two cores and x86's MXCSR")
    results = {}
    for broken in (True, False):
        out = run_child(["-c", FP_MODE_CHILD.format(broken=broken, ftz_first=ftz_first)], tmp_path,
                        SPARSE_REF_BACKEND="cython")  # (the suite also runs on the reference)
        assert out.returncode == 0, out.stderr
        results[broken] = out.stdout.split()
    same_threads, same_reference, nonzero = results[False]
    assert same_threads == "True" and same_reference == "True"
    assert (int(nonzero) == 0) == (not ftz_first)  # flushed exactly when the caller flushes
    if results[True][0] == "True":  # (a worker that got no rows, on a loaded machine)
        pytest.skip("the worker thread took no rows this time: the scenario did not split")


STALE_POOL_CHILD = r"""
import numpy as np, torch, sparse_ref as sr  # torch first: both then use its libgomp
from sparse_ref import _threads
_threads._cores = lambda refresh=False: 4  # a team of 4 on any machine (the kernel splits rows)
_threads.free_cores = lambda: 4
torch.set_num_threads(4)
rng = np.random.default_rng(0)
dense = (rng.random((20000, 100)) < 0.1) * (rng.random((20000, 100)) + 0.25)
a = sr.from_numpy(dense.astype(np.float32)).to_sparse()
b = sr.from_numpy((rng.standard_normal((100, 16)) * 1e-39).astype(np.float32))  # subnormal
x = torch.ones(1 << 20)
sr.set_num_threads(4); sr.sparse.mm(a, b)
sr.set_num_threads(2); sr.sparse.mm(a, b)  # the team shrinks: workers 2 and 3 exit
torch.set_flush_denormal(True)
x.add_(1)  # torch's team of 4 starts new workers 2 and 3, with flush-to-zero
torch.set_flush_denormal(False)  # the caller is back where it was
sr.set_num_threads(4)
four = sr.sparse.mm(a, b).numpy()
sr.set_num_threads(1)
one = sr.sparse.mm(a, b).numpy()
with sr.use_backend("reference"):
    ref = sr.sparse.mm(a, b).numpy()
print(four.tobytes() == one.tobytes(), one.tobytes() == ref.tobytes())
"""


def test_workers_started_by_another_library_take_the_callers_mode(tmp_path):
    # the workers can change between two calls whose caller's mode did not: here torch,
    # sharing the OpenMP runtime, restarts two of them under flush-to-zero (a review's case)
    openmp_or_skip()
    pytest.importorskip("torch")
    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("needs x86's MXCSR")
    out = run_child(["-c", STALE_POOL_CHILD], tmp_path, SPARSE_REF_BACKEND="cython")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]


ROUNDING_CHILD = r"""
import ctypes, numpy as np, sparse_ref as sr
from sparse_ref import _threads
_threads.free_cores = lambda: 2
if {broken}:
    _threads._same_fp_mode = lambda n: None
libm = ctypes.CDLL("libm.so.6")
rng = np.random.default_rng(1)
dense = (rng.random((60000, 100)) < 0.1) * rng.standard_normal((60000, 100))
a = sr.from_numpy(dense).to_sparse()
b = sr.from_numpy(rng.standard_normal((100, 16)))
sr.set_num_threads(2)
sr.sparse.mm(a, b)  # the workers start, rounding to nearest
assert libm.fesetround(0x800) == 0  # FE_UPWARD, on the caller only
two = sr.sparse.mm(a, b).numpy()
sr.set_num_threads(1)
one = sr.sparse.mm(a, b).numpy()
with sr.use_backend("reference"):
    ref = sr.sparse.mm(a, b).numpy()
libm.fesetround(0)
print(two.tobytes() == one.tobytes(), one.tobytes() == ref.tobytes())
"""


def test_workers_take_the_callers_rounding_mode(tmp_path):
    # the rounding bits travel with flush-to-zero: fesetround(FE_UPWARD) on the caller
    # rounds every thread's rows upward, as the reference on the caller does
    openmp_or_skip()
    import platform
    import sys

    if platform.machine() not in ("x86_64", "AMD64") or not sys.platform.startswith("linux") \
            or sr._threads._cores() < 2:
        pytest.skip("needs two cores, x86's MXCSR and glibc's libm")
    results = {}
    for broken in (True, False):
        out = run_child(["-c", ROUNDING_CHILD.format(broken=broken)], tmp_path, SPARSE_REF_BACKEND="cython")
        assert out.returncode == 0, out.stderr
        results[broken] = out.stdout.split()
    assert results[False] == ["True", "True"]
    assert results[True][1] == "True"
    if results[True][0] == "True":  # (a worker that got no rows, on a loaded machine)
        pytest.skip("the worker thread took no rows this time: the scenario did not split")


FORK_CHILD = r"""
import os, signal, sys, time
import numpy as np, sparse_ref as sr
from sparse_ref import _threads
sr.set_num_threads(2)
rng = np.random.default_rng(0)
a = sr.tensor(rng.standard_normal((3000, 300)) * (rng.random((3000, 300)) < 0.05)).to_sparse()
b = sr.tensor(rng.standard_normal((300, 64)))
want = sr.sparse.mm(a, b).numpy().tobytes()   # on 2 threads: GNU OpenMP starts its worker
assert _threads._started
pid = os.fork()
if pid == 0:
    fresh = _threads._last is None and _threads._busy_elsewhere == 0.0
    if {broken}:
        _threads._forked = False   # as before the fix: the child asks for 2 threads again
    sr.set_num_threads(2)
    got = sr.sparse.mm(a, b).numpy().tobytes()
    os._exit(0 if got == want and fresh and sr.get_num_threads() == (2 if {broken} else 1) else 3)
deadline = time.monotonic() + {seconds}
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print("exit", os.waitstatus_to_exitcode(status))
        break
    time.sleep(0.05)
else:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    print("hang")
print("parent", sr.sparse.mm(a, b).numpy().tobytes() == want)   # the parent's threads still work
"""


def test_a_process_forked_after_threads_ran_runs_on_one_thread(tmp_path):
    # GNU OpenMP's workers do not survive fork(): a child of a process that had run a
    # call on several threads hung in its first parallel region (found by a probe with
    # os.fork and multiprocessing's fork start method). Now the child runs on one thread
    # and gets the same bits; the scenario without the fix is run too, to show it hangs
    openmp_or_skip()
    if not hasattr(os, "fork") or sr._threads._cores() < 2:
        pytest.skip("needs fork() and two cores")
    out = run_child(["-c", FORK_CHILD.format(broken=False, seconds=60)], tmp_path, SPARSE_REF_BACKEND="cython")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["exit", "0", "parent", "True"], out.stdout
    broken = run_child(["-c", FORK_CHILD.format(broken=True, seconds=5)], tmp_path, SPARSE_REF_BACKEND="cython")
    assert broken.returncode == 0, broken.stderr
    if broken.stdout.split()[:2] == ["exit", "0"]:  # (another OpenMP runtime may survive fork)
        pytest.skip("this OpenMP runtime's threads survive fork: the scenario does not hang here")
    assert broken.stdout.split() == ["hang", "parent", "True"], broken.stdout

"""Issue 9: installs and runs anywhere; no public call can crash it, corrupt its data or
lose a gradient. Every reproduction from the issue is a test here. The ones that used to
kill the interpreter run in a child process, so a regression fails one test (the child's
death by a signal is reported) instead of the whole session."""

import signal
import threading
import tomllib
from pathlib import Path

import numpy as np
import pytest
from conftest import CHECKOUT, imported_from_checkout, run_child, same_bits

import sparse_ref as sr
from sparse_ref import _backend
from sparse_ref._errors import ConversionError


def assert_child_ok(run):
    assert run.returncode >= 0, f"the child died by signal {-run.returncode}:\n{run.stdout}\n{run.stderr}"
    assert run.returncode == 0, f"the child failed:\n{run.stdout}\n{run.stderr}"


# -- 1. packaging ------------------------------------------------------------------------

def test_package_discovery_ships_every_subpackage():
    setuptools = pytest.importorskip("setuptools")
    pyproject = CHECKOUT / "pyproject.toml"
    if not pyproject.exists():
        pytest.skip("not run from a checkout")
    config = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]
    assert isinstance(config["packages"], dict), "a hand-written package list: use packages.find"
    found = set(setuptools.find_packages(str(CHECKOUT), **config["packages"]["find"]))
    source = {".".join(p.parent.relative_to(CHECKOUT).parts)
              for p in (CHECKOUT / "sparse_ref").rglob("__init__.py")}
    assert source <= found, f"not shipped: {sorted(source - found)}"
    assert "sparse_ref.autograd" in found


def test_installed_package_has_every_subpackage_of_the_source():
    if imported_from_checkout():
        pytest.skip("sparse_ref is imported from the checkout itself (an editable or in-place build)")
    installed = Path(sr.__file__).resolve().parent
    for init in (CHECKOUT / "sparse_ref").rglob("__init__.py"):
        rel = init.relative_to(CHECKOUT / "sparse_ref")
        assert (installed / rel).exists(), f"{rel} is in the source but not installed"


def test_kernels_are_not_borrowed_from_another_install():
    import sparse_ref._kernels as kernels

    assert len(kernels.__path__) == 1
    assert Path(kernels.__path__[0]).resolve() == Path(sr.__file__).resolve().parent / "_kernels"


def test_import_and_demo_from_another_folder(tmp_path):
    run = run_child(["-c", "import sparse_ref, sparse_ref.autograd; print(sparse_ref.__file__)"], tmp_path)
    assert_child_ok(run)
    assert_child_ok(run_child(["-m", "sparse_ref", "demo"], tmp_path))


# -- 2. ownership: changing what was handed over never crashes ---------------------------

OWNERSHIP_PROBES = r"""
import mmap, os, sys
import numpy as np, scipy.sparse as sp, sparse_ref as sr

d = sr.ones(3, 2, dtype=sr.float64)

# the caller changes the CSR index arrays after construction
crow, col, val = np.array([0, 2, 3]), np.array([0, 2, 1]), np.array([1., 2., 3.])
t = sr.sparse_csr_tensor(crow, col, val, (2, 3))
col[0] = 10**12; crow[1] = -7
assert sr.sparse.mm(t, d).tolist() == [[3., 3.], [3., 3.]], "indices must be the tensor's own"
print("csr arrays: ok")

# ... and a SciPy matrix's, in place
m = sp.random_array((50, 40), density=0.1, format="csr", rng=np.random.default_rng(0))
m.indptr, m.indices = m.indptr.astype(np.int64), m.indices.astype(np.int64)  # once shared as is
t = sr.from_scipy(m)
before = sr.sparse.mm(t, sr.ones(40, 2, dtype=sr.float64)).numpy().copy()
m.indices[0] = 10**12
m.indptr[3] = 10**9
sr.sparse.mm(t, sr.ones(40, 2, dtype=sr.float64))
print("scipy indices: ok")

m = sp.random_array((50, 40), density=0.2, format="csr", rng=np.random.default_rng(1))
m.data[::3] = 0
t = sr.from_scipy(m)
m.eliminate_zeros()   # SciPy compacts indices and data in place
m.sum_duplicates()
out = sr.sparse.mm(t, sr.ones(40, 2, dtype=sr.float64))
assert np.isfinite(out.numpy()).all()
print("scipy eliminate_zeros: ok")

# values in a memmap that is truncated after construction
path = os.path.join(os.getcwd(), "values.bin")
np.arange(1, 4, dtype=np.float64).tofile(path)
mm = np.memmap(path, dtype=np.float64, mode="r+", shape=(3,))
t = sr.sparse_csr_tensor([0, 2, 3], [0, 2, 1], mm, (2, 3))
os.truncate(path, 0)
print(sr.sparse.mm(t, d).tolist())
print("truncated memmap: ok")

# arrays handed out are read-only
s = sr.sparse_coo_tensor([[0, 1], [1, 0]], [1., 2.], (2, 2)).coalesce()
for name, arr in [("indices", s.indices().numpy()), ("values", s.values().numpy()),
                  ("crow", t.crow_indices().numpy()), ("col", t.col_indices().numpy())]:
    try:
        arr[0] = 10**12
    except ValueError as exc:
        assert "read-only" in str(exc)
    else:
        raise AssertionError(name + " was writable")
w = sr.randn(3, 2, requires_grad=True)
try:
    np.asarray(w)[0, 0] = 5.0
except ValueError:
    pass
else:
    raise AssertionError("np.asarray of a tensor that requires grad was writable")
print("handed-out arrays: ok")
"""


def test_changing_arrays_handed_over_never_crashes(tmp_path):
    pytest.importorskip("scipy")
    run = run_child(["-c", OWNERSHIP_PROBES], tmp_path)
    assert_child_ok(run)
    assert run.stdout.count(": ok") == 5


def test_coo_indices_and_csr_values_are_copied():
    idx, val = np.array([[0, 1], [1, 0]]), np.array([1.0, 2.0])
    s = sr.sparse_coo_tensor(idx, val, (2, 2))
    idx[0, 0] = 1
    assert s._indices().tolist() == [[0, 1], [1, 0]]
    val = np.array([1.0, 2.0])
    c = sr.sparse_csr_tensor([0, 1, 2], [1, 0], val, (2, 2))
    val[0] = 7.0  # copied, as torch's constructor copies a NumPy array (it was shared)
    assert c.values().tolist() == [1.0, 2.0]
    assert val.flags.writeable  # the caller's array keeps its flags


def test_values_from_foreign_memory_are_copied(tmp_path):
    path = tmp_path / "v.bin"
    np.arange(3, dtype=np.float64).tofile(path)
    mm = np.memmap(path, dtype=np.float64, mode="r+", shape=(3,))
    c = sr.sparse_csr_tensor([0, 2, 3], [0, 1, 0], mm, (2, 2))
    assert not np.shares_memory(c.values().numpy(), mm)


# -- 3. threads, as torch does it ---------------------------------------------------------

def _in_threads(*targets):
    errors = []

    def run(fn):
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(fn,), daemon=True) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]


def test_no_grad_in_one_thread_does_not_stop_another_threads_graph():
    inside, done = threading.Barrier(2, timeout=30), threading.Barrier(2, timeout=30)
    x = sr.tensor([1.0, 2.0], requires_grad=True)

    def quiet():
        with sr.no_grad():
            inside.wait()
            done.wait()

    def learner():
        inside.wait()  # the other thread is inside no_grad now
        assert sr.autograd.is_grad_enabled()
        (x * 3.0).sum().backward()
        done.wait()

    _in_threads(quiet, learner)
    assert x.grad.tolist() == [3.0, 3.0]


def test_overlapping_no_grad_blocks_leave_grad_mode_on():
    a_in, b_in, a_out = threading.Barrier(2, timeout=30), threading.Barrier(2, timeout=30), threading.Event()

    def a():
        with sr.no_grad():
            a_in.wait()
            b_in.wait()
        a_out.set()

    def b():
        a_in.wait()
        with sr.no_grad():
            b_in.wait()
            a_out.wait(10)  # a leaves first, then b

    _in_threads(a, b)
    assert sr.autograd.is_grad_enabled()
    assert (sr.tensor([1.0], requires_grad=True) * 2.0).requires_grad


def test_set_grad_enabled_and_enable_grad():
    x = sr.tensor([1.0], requires_grad=True)
    with sr.no_grad():
        with sr.enable_grad():
            assert (x * 2.0).requires_grad
        assert not (x * 2.0).requires_grad
    with sr.set_grad_enabled(False):
        assert not (x * 2.0).requires_grad
    assert sr.autograd.is_grad_enabled()
    sr.set_grad_enabled(False)
    try:
        assert not sr.autograd.is_grad_enabled()
    finally:
        sr.set_grad_enabled(True)


def test_leaf_gradients_from_many_threads_add_exactly():
    w = sr.tensor(np.ones(200_000), requires_grad=True)
    one = np.full(200_000, 2.0)

    def worker():
        for _ in range(30):
            (w * 2.0).sum().backward()

    _in_threads(*[worker] * 8)
    assert same_bits(w.grad.numpy(), one * 240)


def test_a_graph_freed_by_one_thread_raises_in_the_next():
    x = sr.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    _in_threads(y.backward)
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        _in_threads(y.backward)


def test_backend_choice_is_per_thread():
    default = sr.get_backend()
    other = "reference" if default == "cython" else "cython"
    inside, done = threading.Barrier(2, timeout=30), threading.Barrier(2, timeout=30)
    seen = []

    def switcher():
        with sr.use_backend(other):
            inside.wait()
            done.wait()

    def watcher():
        inside.wait()
        seen.append(sr.get_backend())
        done.wait()

    _in_threads(switcher, watcher)
    assert seen == [default] and sr.get_backend() == default


def test_backward_runs_on_the_backend_its_forward_ran_on(monkeypatch):
    import sparse_ref.reference.sddmm as ref_sddmm

    calls = []
    real = ref_sddmm.sddmm
    monkeypatch.setattr(ref_sddmm, "sddmm", lambda *a: (calls.append(1), real(*a))[1])
    a = sr.tensor([[1.0, 0.0], [2.0, 3.0]]).to_sparse().requires_grad_(True)
    b = sr.ones(2, 2)
    with sr.use_backend("reference"):
        y = sr.sparse.mm(a, b)
    with sr.use_backend("cython"):
        y.sum().backward()
    assert calls == [1]


def test_a_failed_backend_switch_changes_nothing(monkeypatch):
    cython = _backend.BACKENDS["cython"]
    monkeypatch.setattr(cython, "package", "sparse_ref._no_such_kernels")
    monkeypatch.setattr(cython, "_modules", {})
    monkeypatch.setattr(cython, "_checked", False)
    with sr.use_backend("reference"):
        with pytest.raises(ImportError, match="not built"):
            sr.use_backend("cython")
        assert sr.get_backend() == "reference"


# -- 4. lossy values refused --------------------------------------------------------------

@pytest.mark.parametrize("data, dtype, error, match", [
    ([2**40 + 5], sr.int32, RuntimeError, "cannot be converted to type int32"),
    ([float("nan")], sr.int64, RuntimeError, "NaN and inf have no integer value"),
    ([float("inf")], sr.int32, RuntimeError, "NaN and inf"),
    ([1 + 2j], sr.float64, TypeError, "imaginary part"),
    ([1e300], sr.float32, RuntimeError, "would become inf"),
    (np.array([3e9]), sr.int32, RuntimeError, "range is"),
])
def test_lossy_conversions_are_refused(data, dtype, error, match):
    with pytest.raises(error, match=match):
        sr.tensor(data, dtype=dtype)
    with pytest.raises(error, match=match):
        sr.sparse_coo_tensor([[0], [0]], data, (1, 1), dtype=dtype)


def test_ordinary_rounding_and_truncation_stay():
    assert sr.tensor([0.1], dtype=sr.float32).item() == np.float32(0.1)
    assert sr.tensor([2.7, -2.7], dtype=sr.int64).tolist() == [2, -2]
    assert sr.tensor([1 + 0j], dtype=sr.float64).tolist() == [1.0]


def test_masked_arrays_are_refused():
    m = np.ma.masked_array([1.0, 2.0], mask=[False, True])
    with pytest.raises(TypeError, match="masked arrays"):
        sr.tensor(m)
    with pytest.raises(TypeError, match="masked arrays"):
        sr.sparse_coo_tensor([[0, 1], [0, 1]], m, (2, 2))


def test_is_coalesced_must_be_a_bool():
    with pytest.raises(TypeError, match="is_coalesced must be a bool"):
        sr.sparse_coo_tensor([[0, 1], [0, 1]], [1.0, 2.0], (2, 2), is_coalesced="no")


def test_an_index_of_int64_max_without_a_size_is_an_error():
    with pytest.raises(IndexError, match="fits in int64"):
        sr.sparse_coo_tensor([[2**63 - 1], [0]], [1.0])
    with pytest.raises(ValueError, match="does not fit in int64"):
        sr.sparse_coo_tensor([[0], [0]], [1.0], (2**63, 1))


# -- 5. saved data is versioned -----------------------------------------------------------

def test_changing_saved_data_in_place_makes_backward_raise():
    w = sr.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    a = sr.tensor([[1.0, 0.0], [0.0, 2.0]]).to_sparse().requires_grad_(True)
    y = sr.sparse.mm(a, w)
    w.detach().mul_(2.0)  # shares w's data and version counter
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_numpy_views_of_a_graphs_data_are_read_only():
    w = sr.randn(2, 2, requires_grad=True)
    for arr in (np.asarray(w), np.asarray(w.detach()), w.detach().numpy(), np.asarray(w * 2.0)):
        assert not arr.flags.writeable
    plain = sr.randn(2, 2)
    assert np.asarray(plain).flags.writeable  # no graph: shared and writable, as in torch


def test_in_place_on_a_leaf_that_requires_grad_needs_no_grad():
    w = sr.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w.add_(1.0)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w -= 1.0


def test_the_torch_sgd_step_updates_in_place_and_training_goes_on():
    a = sr.tensor([[1.0, 0.0], [0.0, 2.0]]).to_sparse()
    w = sr.tensor([[1.0], [1.0]], requires_grad=True)
    for _ in range(3):
        loss = sr.sparse.mm(a, w).sum()
        loss.backward()
        with sr.no_grad():
            w -= 0.5 * w.grad
            w.grad.zero_()
    assert w.is_leaf and w.requires_grad
    assert w.tolist() == [[1.0 - 3 * 0.5], [1.0 - 3 * 1.0]]
    assert w._version[0] == 3


# -- 6. fail fast on impossible work --------------------------------------------------------

def test_a_huge_outer_product_is_refused_before_any_pass():
    n = 10**6
    col = sr.sparse_coo_tensor(np.stack([np.arange(n), np.zeros(n, np.int64)]), np.ones(n), (n, 1))
    row = sr.sparse_coo_tensor(np.stack([np.zeros(n, np.int64), np.arange(n)]), np.ones(n), (1, n))
    with pytest.raises(MemoryError, match="at least 1000000000000 stored entries"):
        sr.sparse.mm(col, row)
    assert sr.sparse.spgemm_nnz(row, col) == 1


def test_spgemm_nnz_is_exact_and_max_nnz_refuses(rng):
    from conftest import random_sparse

    a = random_sparse(rng, (30, 20), 80)
    b = random_sparse(rng, (20, 25), 70)
    nnz = sr.sparse.mm(a, b)._nnz()
    assert sr.sparse.spgemm_nnz(a, b) == nnz
    assert sr.sparse.mm(a, b, max_nnz=nnz)._nnz() == nnz
    with pytest.raises(MemoryError, match=f"max_nnz={nnz - 1}"):
        sr.sparse.mm(a, b, max_nnz=nnz - 1)
    with pytest.raises(ValueError, match="two sparse operands"):
        sr.sparse.mm(a, sr.ones(20, 2, dtype=sr.float64), max_nnz=3)


INTERRUPT_CHILD = r"""
import signal, sys, time, numpy as np, sparse_ref as sr
# Ctrl-C as a terminal delivers it: a child started from a background job inherits SIGINT
# ignored, and Python then installs no KeyboardInterrupt handler at all
signal.signal(signal.SIGINT, signal.default_int_handler)
n, per = 20000, 600
step = n // per
cols = np.sort((np.arange(n)[:, None] + np.arange(per)[None, :] * step) % n, axis=1).ravel()
a = sr.sparse_csr_tensor(np.arange(n + 1) * per, cols, np.ones(n * per), (n, n))
print("ready", flush=True)
try:
    sr.sparse.spgemm_nnz(a, a)
    print("finished", flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_a_long_sparse_product_answers_ctrl_c(tmp_path):
    import subprocess
    import sys
    import time

    from conftest import child_env

    proc = subprocess.Popen([sys.executable, "-c", INTERRUPT_CHILD], cwd=tmp_path, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out.strip() == "interrupted", out + err


THREADS_UNDER_LIMIT = r"""
import resource, numpy as np, sparse_ref as sr
with open("/proc/self/status") as f:
    vm = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + (256 << 20), resource.RLIM_INFINITY))
sr.set_num_threads(1024)
a = sr.sparse_coo_tensor(np.stack([np.arange(50000) % 500, np.arange(50000) % 400]), np.ones(50000), (500, 400))
print(sr.get_num_threads(), sr.sparse.mm(a, sr.ones(400, 8, dtype=sr.float64)).shape)
"""


def test_set_num_threads_1024_under_an_address_space_limit(tmp_path):
    run = run_child(["-c", THREADS_UNDER_LIMIT], tmp_path)
    assert_child_ok(run)


# -- 7. huge shapes, consistently ------------------------------------------------------------

def test_the_backward_of_a_transposed_2_40_row_operand():
    a = sr.sparse_coo_tensor([[0, 2**40 - 1, 5], [0, 1, 2]], [1.0, 2.0, 3.0], (2**40, 3),
                             dtype=sr.float64, requires_grad=True)
    c = sr.sparse.mm(a.t(), a)  # 3 x 3 = a^T a
    c.sum().backward()  # d/da_pq of sum(a^T a) = 2 * (row p of a).sum()
    assert a.grad._indices().tolist() == [[0, 5, 2**40 - 1], [0, 2, 1]]
    assert a.grad._values().tolist() == [2.0, 6.0, 4.0]


def test_dense_times_sparse_with_2_27_rows_is_not_refused():
    n = 2**27 + 5
    s = sr.sparse_coo_tensor([[0, n - 1], [0, 1]], [1.0, 2.0], (n, 2))
    x = sr.zeros(1, n)
    with sr.use_backend("cython"):  # the reference's loops over 2**27 rows take minutes
        out = x @ s
    assert out.shape == (1, 2)


def test_memory_refusals_read_real_memory():
    from sparse_ref import _memory

    room = _memory.available_bytes()
    assert room is None or room > 0
    with pytest.raises(MemoryError, match="more than the"):
        _memory.check_fits(2**62, "a test")


# -- 8. engine --------------------------------------------------------------------------------

class Identity(sr.autograd.Function):
    _name = "IdentityBackward"

    def forward(self, x):
        return sr.Tensor(x._data.copy())

    def backward(self, grad):
        return (grad,)


class NoGrad(sr.autograd.Function):
    _name = "NoGradBackward"

    def forward(self, x):
        return sr.Tensor(x._data.copy())

    def backward(self, grad):
        return (None,)


def test_a_node_whose_gradients_are_all_none_does_not_starve_other_paths():
    x = sr.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2.0
    (NoGrad.apply(Identity.apply(y)) + y * 3.0).sum().backward()
    assert x.grad.tolist() == [6.0, 6.0]


# -- 9. messages --------------------------------------------------------------------------------

def test_big_endian_dtypes_are_named_as_such():
    with pytest.raises(TypeError, match="big-endian float64"):
        sr.tensor([1.0], dtype=">f8")
    big = np.array([1.0, 2.0], dtype=">f8")
    assert sr.tensor(big).dtype == sr.float64  # the same numbers in native order
    a = sr.Tensor(np.ones((2, 2), dtype=">f8"))
    with pytest.raises(TypeError, match="big-endian float64"):
        sr.sparse.mm(sr.ones(2, 2, dtype=sr.float64).to_sparse(), a)


@pytest.mark.parametrize("alpha, match", [(float("nan"), "no integer value"), (1e20, "does not fit")])
def test_integer_addmm_with_an_impossible_alpha_says_why(alpha, match):
    a = sr.tensor([[1, 0], [0, 1]], dtype=sr.int64).to_sparse()
    m = sr.ones(2, 2, dtype=sr.int64)
    with pytest.raises((TypeError, RuntimeError), match=match):
        sr.sparse.addmm(m, a, m, alpha=alpha)


@pytest.mark.parametrize("dtype, big", [(sr.float32, 1e39), (sr.float16, 1e39), (sr.bfloat16, 1e39),
                                        (sr.complex64, 1e39j), (sr.complex64, 1e39), (sr.float32, 10**400)])
def test_a_scalar_that_would_become_inf_in_the_operands_dtype_is_refused(dtype, big):
    # (probe) alpha and beta of addmm and sampled_addmm were cast to the operands' float
    # type in silence: 1e39 became inf in float32, as torch refuses and sr's own a * 1e39
    # does; inf itself, and the largest finite values, stay allowed
    a = sr.tensor([[1.0, 0.0], [0.0, 1.0]]).to(dtype).to_sparse()
    m = sr.ones(2, 2, dtype=dtype)
    for name in ("alpha", "beta"):
        with pytest.raises(ConversionError, match=f"{name}.*without overflow"):
            sr.sparse.addmm(m, a, m, **{name: big})
        with pytest.raises(ConversionError, match=f"{name}.*without overflow"):
            sr.sparse.sampled_addmm(a, m, m, **{name: big})
    if isinstance(big, float):  # and the same value as data, or times a tensor (review: a real
        for make in (lambda: sr.tensor([big], dtype=dtype), lambda: m * big):  # into complex64 passed)
            with pytest.raises(ConversionError, match="without overflow"):
                make()
    if dtype != sr.complex64:  # (inf times a complex 1 has a NaN part, by IEEE's rules)
        assert np.isinf(sr.sparse.addmm(m, a, m, beta=float("inf")).to(sr.float64).numpy()).all()


def test_a_half_tensors_scalars_are_float32_so_only_the_result_may_overflow():
    """A number meets a float16 tensor as a float32 (docs/numerics.rst): 1e5, beyond
    float16's 65504, is a factor or a divisor like any other; a product that overflows
    float16 is inf, as an op's result (torch gives the same)."""
    m = sr.ones(2, 2, dtype=sr.float16)
    a = sr.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=sr.float16).to_sparse()
    assert np.isinf((m * 1e5).numpy()).all()
    assert ((m / 1e5).numpy() == np.float16(1e-5)).all()
    assert np.isinf(sr.sparse.addmm(m, a, m, alpha=1e5, beta=0.0).numpy()).all()
    assert (sr.sparse.addmm(m, a, m, alpha=1e-5, beta=0.0).numpy() == np.float16(1e-5)).all()
    assert np.isfinite(sr.sparse.addmm(m * 0, a, m, alpha=2.0).to(sr.complex128).numpy()).all()


def test_from_scipy_verifies_a_stale_csr_canonical_flag():
    sp = pytest.importorskip("scipy.sparse")
    m = sp.csr_array((np.array([1.0, 2.0, 3.0]), np.array([2, 0, 0]), np.array([0, 3])), shape=(1, 3))
    m.has_canonical_format = True  # stale: columns unsorted, with a duplicate
    t = sr.from_scipy(m)
    assert t.col_indices().tolist() == [0, 2] and t.values().tolist() == [5.0, 1.0]


def test_gradcheck_of_a_function_returning_a_non_tensor_says_so():
    x = sr.tensor([1.0], dtype=sr.float64, requires_grad=True)
    with pytest.raises(TypeError, match="must return one sparse_ref Tensor"):
        sr.autograd.gradcheck(lambda t: (t * 2.0, t), (x,))


@pytest.mark.parametrize("call", [
    lambda: sr.sparse.mm(sr.ones(2, 2).to_sparse(), sr.Tensor(np.ones((2, 2, 2), np.float32))),
    lambda: sr.sparse.addmm(sr.ones(3, 3), sr.ones(2, 2).to_sparse(), sr.ones(2, 2)),
    lambda: sr.sparse.sampled_addmm(sr.ones(3, 3).to_sparse(), sr.ones(2, 2), sr.ones(2, 2)),
    lambda: sr.sparse.sampled_addmm(sr.ones(2, 2), sr.ones(2, 2), sr.ones(2, 2)),
    lambda: sr.sparse.sampled_addmm(sr.ones(2, 2).to_sparse(), sr.ones(2, 2).to_sparse(), sr.ones(2, 2)),
    lambda: sr.sparse.mm(sr.ones(2, 2).to_sparse(), sr.ones(2, 2), reduce="foo"),
])
def test_what_torch_raises_as_runtime_error_is_a_runtime_error(call):
    with pytest.raises(RuntimeError):
        call()


def test_spgemm_bounds_hold_and_both_paths_agree(rng):
    from conftest import random_sparse

    from sparse_ref import _products

    for _ in range(5):
        a = random_sparse(rng, (40, 30), 150)
        b = random_sparse(rng, (30, 35), 120)
        a_crow, a_col, _ = a._csr()
        b_crow, _, _ = b._csr()
        with sr.use_backend("reference"):
            ref = _products.spgemm_bounds(a_crow, a_col, b_crow)
        with sr.use_backend("cython"):
            fast = _products.spgemm_bounds(a_crow, a_col, b_crow, n_threads=2)
        assert ref[:2] == fast[:2] and np.array_equal(ref[2], fast[2])
        lower, upper, _ = fast
        assert lower <= sr.sparse.mm(a, b)._nnz() <= upper


# -- found in review ------------------------------------------------------------------------

def test_set_grad_enabled_as_a_decorator_acts_only_inside():
    @sr.set_grad_enabled(False)
    def f(x):
        return x * 2.0

    assert sr.autograd.is_grad_enabled()
    x = sr.tensor([1.0], requires_grad=True)
    assert not f(x).requires_grad
    assert (x * 2.0).requires_grad


def test_augmented_assignment_inside_a_graph_stays_differentiable():
    w = sr.tensor([1.0, 2.0], requires_grad=True)
    loss = sr.tensor(0.0)
    loss += (w * w).sum()  # torch records this in place; sparse_ref rebinds, same gradient
    h = w * 2.0
    h += 1.0
    (loss + h.sum()).backward()
    assert w.grad.tolist() == [4.0, 6.0]


def test_a_transposed_view_shares_the_version_counter():
    w = sr.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    x = sr.tensor([[1.0, 2.0], [3.0, 4.0]])
    y = (w * x).sum()
    with sr.no_grad():
        x.t().add_(100.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_ops_that_save_no_data_do_not_check_versions():
    x = sr.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    s = x.to_sparse()
    with sr.no_grad():
        x.mul_(2.0)
    s.sum().backward()  # ToSparse's backward reads no data of x (torch agrees)
    assert x.grad.tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_csr_values_changed_later_reach_neither_forward_nor_backward():
    vals = np.array([1.0, 2.0])
    a = sr.sparse_csr_tensor([0, 1, 2], [1, 0], vals, (2, 2))
    x = sr.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=sr.float64, requires_grad=True)
    y = sr.sparse.mm(a, x)
    vals[:] = [10.0, 20.0]  # the tensor's values are a copy (they were shared)
    y.sum().backward()
    assert x.grad.tolist() == [[2.0, 2.0], [1.0, 1.0]]
    x.grad = None
    sr.sparse.mm(a, x).sum().backward()
    assert x.grad.tolist() == [[2.0, 2.0], [1.0, 1.0]]


def test_a_backward_with_the_wrong_number_of_gradients_raises():
    class Two(sr.autograd.Function):
        _name = "TwoBackward"

        def forward(self, x, y):
            return sr.Tensor(x._data + y._data)

        def backward(self, grad):
            return (grad,)  # one gradient for two inputs

    x = sr.tensor([1.0], requires_grad=True)
    y = sr.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="incorrect number of gradients"):
        Two.apply(x, y).sum().backward()


@pytest.mark.parametrize("call", [
    lambda: sr.Tensor(np.ones((2, 2, 2), np.float32)).t(),
    lambda: sr.tensor([1, 2]).div_(2),
])
def test_more_errors_torch_raises_as_runtime_error(call):
    with pytest.raises(RuntimeError):
        call()


def test_python_integers_beyond_int64_are_refused_or_stored_as_floats():
    with pytest.raises(RuntimeError, match="does not fit in int64"):
        sr.tensor([2**64])
    assert sr.tensor([2**64], dtype=sr.float64).item() == 2.0**64
    with pytest.raises(RuntimeError, match="without overflow"):
        sr.tensor([1, 2], dtype=sr.int32) + 2**70
    with pytest.raises(IndexError, match="does not fit in int64"):
        sr.sparse_coo_tensor([[0], [2**64]], [1.0])

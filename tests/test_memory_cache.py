"""The cache of large output blocks (sparse_ref/_kernels/_pool.h, sparse_ref/_memory.py):
outputs come from it and go back to it, a block in use is never handed out twice, the
limit holds, and results are the same bits with or without it."""

import threading

import numpy as np
import pytest

import sparse_ref as sr
from sparse_ref import _memory

from conftest import run_child

pool = _memory._load_pool()
needs_pool = pytest.mark.skipif(not pool, reason="the compiled kernels are not built")
_get_handler_name = (getattr(np, "_core", None) or np.core).multiarray.get_handler_name


def handler_name(arr):
    """The memory handler of the array that owns ``arr``'s memory (tensors hand out views)."""
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    assert arr.flags.owndata
    return _get_handler_name(arr)

BIG = (1000, 1000)  # 8 MB of float64: above the cache's 4 MiB floor


@pytest.fixture
def limit():
    """Run with a known limit, and leave the cache as it was found (emptied)."""
    previous = sr.set_cache_limit(256 << 20)
    sr.empty_cache()
    yield
    sr.set_cache_limit(previous)
    sr.empty_cache()


def product(n=1000, k=1000, seed=0):
    rng = np.random.default_rng(seed)
    a = sr.tensor(rng.standard_normal((n, n)) * (rng.random((n, n)) < 0.01)).to_sparse()
    b = sr.tensor(rng.standard_normal((n, k)))
    return a, b


@needs_pool
def test_large_outputs_come_from_the_cache_and_go_back(limit):
    a, b = product()
    before = sr.cache_info()
    y = sr.sparse.mm(a, b)
    arr = y.numpy()
    assert handler_name(arr) == "sparse_ref_pool"
    owner = arr.base  # numpy() hands out a view of the tensor's array
    assert type(owner) is np.ndarray and owner.flags.owndata and owner.base is None  # a plain array otherwise
    assert arr.ctypes.data % (2 << 20) == 0             # on a 2 MiB page: rows start on cache lines
    assert sr.cache_info()["misses"] == before["misses"] + 1
    del y, arr, owner
    assert sr.cache_info()["blocks"] == 1
    y = sr.sparse.mm(a, b)
    info = sr.cache_info()
    assert info["hits"] == before["hits"] + 1 and info["blocks"] == 0


@needs_pool
def test_small_outputs_do_not_use_it(limit):
    a, b = product(n=50, k=5)
    assert handler_name(sr.sparse.mm(a, b).numpy()) != "sparse_ref_pool"


@needs_pool
def test_a_block_in_use_is_never_handed_out_again(limit):
    a, b = product()
    first = sr.sparse.mm(a, b)
    keep = first.numpy().copy()
    second = sr.sparse.mm(a, sr.tensor(np.ones(BIG)))
    assert not np.shares_memory(first.numpy(), second.numpy())
    np.testing.assert_array_equal(first.numpy(), keep)
    view = first.numpy()[10:20]  # a view keeps the block alive as well
    del first
    third = sr.sparse.mm(a, b)
    assert not np.shares_memory(view, third.numpy())
    np.testing.assert_array_equal(view, keep[10:20])


@needs_pool
def test_same_bits_with_and_without_the_cache(limit):
    a, b = product(seed=3)
    s = sr.tensor(np.random.default_rng(4).standard_normal((3000, 3000)) *
                  (np.random.default_rng(5).random((3000, 3000)) < 0.01)).to_sparse()
    with_cache = [sr.sparse.mm(a, b).numpy().copy() for _ in range(2)]
    c = sr.sparse.mm(s, s)
    c_idx, c_val = c.indices().numpy().copy(), c.values().numpy().copy()
    sr.set_cache_limit(0)
    assert sr.cache_info()["bytes"] == 0
    without = sr.sparse.mm(a, b).numpy()
    d = sr.sparse.mm(s, s)
    for x in with_cache:
        np.testing.assert_array_equal(x, without)
    np.testing.assert_array_equal(c_idx, d.indices().numpy())
    np.testing.assert_array_equal(c_val, d.values().numpy())


@needs_pool
def test_limit_holds_and_lowering_it_frees(limit):
    arrays = [_memory.empty(BIG, np.float64) for _ in range(6)]  # 6 blocks of 8 MiB
    del arrays
    info = sr.cache_info()
    assert info["blocks"] == 6 and info["bytes"] <= 256 << 20
    previous = sr.set_cache_limit(20 << 20)
    assert previous == 256 << 20
    info = sr.cache_info()
    assert info["bytes"] <= 20 << 20 and info["blocks"] == 2  # the newest two stay
    sr.empty_cache()
    assert sr.cache_info()["bytes"] == 0 and sr.cache_info()["limit"] == 20 << 20
    big = _memory.empty((4000, 1000), np.float64)  # 32 MB: more than the limit, never kept
    del big
    assert sr.cache_info()["blocks"] == 0


@needs_pool
def test_at_most_sixteen_blocks(limit):
    sr.set_cache_limit(1 << 30)
    arrays = [_memory.empty(BIG, np.float64) for _ in range(20)]
    del arrays
    assert sr.cache_info()["blocks"] == 16


@needs_pool
def test_a_block_is_reused_only_for_a_request_near_its_size(limit):
    big = _memory.empty((4000, 1000), np.float64)  # 32 MB
    del big
    hits = sr.cache_info()["hits"]
    small = _memory.empty(BIG, np.float64)  # 8 MB: would waste 3/4 of it
    assert sr.cache_info()["hits"] == hits and sr.cache_info()["blocks"] == 1
    del small


@needs_pool
def test_a_request_just_over_a_page_boundary_reuses_its_block(limit):
    # 4.2 MiB needs three 2 MiB pages: the freed 6 MiB block serves the next such request
    # (against 3/4 of the request itself, none ever would: every call a fresh block)
    shape = (int(4.2 * (1 << 20)) // 8,)
    first = _memory.empty(shape, np.float64)
    del first
    before = sr.cache_info()
    for _ in range(5):
        again = _memory.empty(shape, np.float64)
        del again
    after = sr.cache_info()
    assert after["hits"] - before["hits"] == 5 and after["misses"] == before["misses"]
    assert after["blocks"] == 1


@needs_pool
def test_resize_of_a_cached_array_keeps_its_data(limit):
    x = _memory.empty(1 << 20, np.float64)
    x[:] = np.arange(1 << 20)
    x.resize(3 << 20, refcheck=False)  # NumPy reallocates through the same handler
    np.testing.assert_array_equal(x[:1 << 20], np.arange(1 << 20))
    x.resize(10, refcheck=False)
    np.testing.assert_array_equal(x, np.arange(10))
    y = _memory.empty(10, np.float64)  # a small array through the handler, then large
    y[:] = 7
    y.resize(1 << 20, refcheck=False)
    assert (y[:10] == 7).all()


@needs_pool
def test_threads_each_get_their_own_blocks(limit):
    a, b = product()
    expected = sr.sparse.mm(a, b).numpy().copy()
    errors = []

    def work():
        try:
            for _ in range(5):
                y = sr.sparse.mm(a, b).numpy()
                y_copy = y.copy()
                np.testing.assert_array_equal(y_copy, expected)
                y[:] = -1  # a block written by one thread must not show up in another's result
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_bad_limits_are_refused():
    for bad in (1.5, "1", True, None, np.bool_(True)):
        with pytest.raises(TypeError, match="set_cache_limit: nbytes must be an int, got"):
            sr.set_cache_limit(bad)
    for bad in (-1, 2**63, 2**64):
        with pytest.raises(ValueError, match=r"set_cache_limit: nbytes must be from 0 to 2\*\*63 - 1"):
            sr.set_cache_limit(bad)


@needs_pool
def test_limit_zero_is_numpys_allocator(limit):
    sr.set_cache_limit(0)
    arr = _memory.empty(BIG, np.float64)
    assert handler_name(arr) != "sparse_ref_pool"
    sr.set_cache_limit(1 << 20)
    assert handler_name(_memory.empty([1000, 1000], np.float64)) == "sparse_ref_pool"  # a list shape too


@needs_pool
def test_a_block_is_whole_pages_no_more(limit):
    x = _memory.empty(4 << 20, np.uint8)  # exactly two 2 MiB pages: no third for a header
    del x
    assert sr.cache_info()["bytes"] == 4 << 20


@needs_pool
def test_empty_cache_gives_the_memory_back_and_keeps_the_limit(limit):
    def rss():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) << 10 for line in f if line.startswith("VmRSS:"))

    arrays = [_memory.empty(BIG, np.float64) for _ in range(10)]
    for a in arrays:
        a.fill(1.0)  # resident
    del arrays, a
    held = rss()
    assert sr.cache_info()["blocks"] == 10
    sr.empty_cache()
    assert sr.cache_info()["bytes"] == 0 and sr.cache_info()["limit"] == 256 << 20
    assert held - rss() >= 60 << 20  # 80 MB were held: unmapped, not kept by malloc


@needs_pool
def test_the_memory_check_empties_the_cache_before_it_refuses(limit, monkeypatch):
    arrays = [_memory.empty(BIG, np.float64) for _ in range(4)]
    del arrays
    held = sr.cache_info()["bytes"]
    assert held >= 32 << 20
    room = {"free": 100 << 20}
    monkeypatch.setattr(_memory, "available_bytes", lambda: room["free"])
    real_clear = _memory._pool.clear

    def clear():  # what the system would see: the cache's memory is free again
        real_clear()
        room["free"] += held
    monkeypatch.setattr(_memory._pool, "clear", clear)
    _memory.check_fits(90 << 20, "small")  # fits: the cache is left alone
    assert sr.cache_info()["bytes"] == held
    _memory.check_fits(120 << 20, "needs the cache's memory")  # fits once the cache lets go
    assert sr.cache_info()["bytes"] == 0
    with pytest.raises(MemoryError, match="too big needs"):
        _memory.check_fits(1 << 40, "too big")


@needs_pool
def test_a_refused_block_empties_the_cache_and_tries_again(tmp_path):
    code = """if True:
        import resource, numpy as np
        import sparse_ref as sr
        from sparse_ref import _memory
        sr.set_cache_limit(1 << 30)
        def vmsize():
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) << 10 for line in f if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (vmsize() + (400 << 20), resource.RLIM_INFINITY))
        blocks = [_memory.empty(30 << 20, np.uint8) for _ in range(10)]  # 300 MB ...
        del blocks                                                      # ... idle in the cache
        assert sr.cache_info()["blocks"] == 10
        big = _memory.empty(200 << 20, np.uint8)  # fits only once the cache lets go
        big.fill(1)
        assert sr.cache_info()["blocks"] == 0
        print("ok")
    """
    out = run_child(["-c", code], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@needs_pool
def test_under_an_address_space_limit_the_default_limit_is_an_eighth_of_the_room(tmp_path):
    # memory idle in the cache is memory NumPy's own allocator cannot have: under ulimit -v
    # the cache keeps at most an eighth of what was left when the library was loaded
    code = """if True:
        import resource
        import numpy as np
        def vmsize():
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) << 10 for line in f if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (vmsize() + (1200 << 20), resource.RLIM_INFINITY))
        import os
        os.environ.pop("SPARSE_REF_CACHE_BYTES", None)  # the default limit
        import sparse_ref as sr
        limit = sr.cache_info()["limit"]
        assert 0 < limit <= (1200 << 20) // 8, limit
        x = sr.zeros(60_000_000, dtype=sr.float64)  # 480 MB
        y = x * 2.0                                 # 480 MB more, from the cache
        del y                                       # too big to keep: back to the system
        assert sr.cache_info()["bytes"] <= limit
        z = np.ones(60_000_000)                     # NumPy's allocator can have it
        print("ok")
    """
    out = run_child(["-c", code], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_a_users_function_runs_with_the_callers_allocator():
    # the library's ops allocate through the cache while an input is large; a Function of
    # the user's does not (tasks or callbacks it starts would keep that allocator)
    seen = []

    class Probe(sr.autograd.Function):
        def forward(self, x):
            seen.append(_get_handler_name())
            return x * 1.0

        def backward(self, grad):
            return grad

    y = Probe.apply(sr.zeros(1000, 1000, dtype=sr.float64))
    assert seen == ["default_allocator"] and _get_handler_name() == "default_allocator"
    assert y.numpy().sum() == 0


@needs_pool
def test_the_environment_sets_the_limit(tmp_path):
    code = "import sparse_ref as sr; print(sr.cache_info()['limit'])"
    out = run_child(["-c", code], tmp_path, SPARSE_REF_CACHE_BYTES="12345")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "12345"
    code = ("import numpy as np, sparse_ref as sr; from sparse_ref import _memory; "
            "default = _memory._default_limit(); print(sr.cache_info()['limit'] == default); "
            "a = sr.tensor(np.eye(3)).to_sparse(); print(sr.sparse.mm(a, a).to_dense().numpy().trace())")
    for bad in ("lots", "", "1e9", "-5", "99999999999999999999999"):
        out = run_child(["-W", "always", "-c", code], tmp_path, SPARSE_REF_CACHE_BYTES=bad)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["True", "3.0"]  # the default, and products work
        assert f"SPARSE_REF_CACHE_BYTES must be a whole number of bytes from 0 to {2**63 - 1}, got {bad!r}" \
            in out.stderr


@needs_pool
def test_large_dense_copies_start_on_a_page_of_their_own(limit):
    src = np.random.default_rng(0).standard_normal((2000, 16))[:, :15]  # not contiguous, 16 bytes into a line
    for data, dtype in ((np.ones(BIG), None), (np.ones((1 << 20, 3), np.float32), sr.float64), (src, None)):
        t = sr.tensor(data, dtype=dtype)
        arr = t.numpy()
        if arr.nbytes >= _memory._load_pool().MIN_BYTES:
            assert handler_name(arr) == "sparse_ref_pool" and arr.ctypes.data % (2 << 20) == 0
        np.testing.assert_array_equal(arr, data)
        assert not np.shares_memory(arr, data)


def test_a_large_output_that_cannot_fit_is_refused_before_it_is_written(monkeypatch):
    # a product's dense output was allocated unchecked: past the memory left, the system's
    # out-of-memory killer stopped the process when the kernel wrote it
    a = sr.sparse_coo_tensor([[0], [0]], [1.], (2**20, 2), dtype=sr.float64)
    b = sr.ones(2, 64, dtype=sr.float64)  # the product: 512 MiB
    monkeypatch.setattr(_memory, "available_bytes", lambda: 256 << 20)
    with pytest.raises(MemoryError, match=r"an array of shape \(1048576, 64\) and dtype float64 needs"):
        sr.sparse.mm(a, b)
    assert sr.sparse.mm(a, b[:, :16]).shape == (2**20, 16)  # 128 MiB: checked, and fits

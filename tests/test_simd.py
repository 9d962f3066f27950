"""SpMM's float rows run with vectors as wide as the CPU has (AVX-512, AVX2 or the SSE2
baseline, chosen at run time: sparse_ref/_kernels/_simd.h). Each vector lane is one output
column and adds in the contract's order, so every level must give the reference's bits,
for every width of B (every mix of 8-, 4-, 2- and 1-vector blocks and single columns), on
column blocks that start inside a row (the cache blocking), on any thread count."""

import itertools
import platform
import sys

import numpy as np
import pytest

from sparse_ref.reference import spmm as reference_spmm
from sparse_ref._kernels import sddmm as sddmm_kernel
from sparse_ref._kernels import spmm as kernel

LEVELS = ("baseline", "avx2", "avx512")
# below, at and above every block size of float64 and float32 on every level
WIDTHS = (1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 48, 63, 64, 65, 97, 128, 131, 257)


@pytest.fixture
def level():
    """Restores the widest level after a test that narrows it."""
    widest = kernel._simd_level()
    yield widest
    kernel._set_simd_level(widest)
    sddmm_kernel._set_simd_level(widest)


def matrices(rng, dtype, n):
    nrows, ncols, nnz = 37, 29, 260
    rows = np.sort(rng.integers(0, nrows, nnz))
    cols = rng.integers(0, ncols, nnz)
    keys = np.unique(rows * ncols + cols)  # coalesced: sorted, unique
    crow = np.searchsorted(keys // ncols, np.arange(nrows + 1)).astype(np.int64)
    col = (keys % ncols).astype(np.int64)
    # values spread over many magnitudes, so that another order of additions shows up
    val = (rng.standard_normal(col.shape[0]) * 10.0 ** rng.integers(-8, 9, col.shape[0])).astype(dtype)
    b = (rng.standard_normal((ncols, n)) * 10.0 ** rng.integers(-8, 9, (ncols, n))).astype(dtype)
    return crow, col, val, b


def expected(crow, col, val, b):
    out = np.full((crow.shape[0] - 1, b.shape[1]), np.nan, dtype=b.dtype)
    reference_spmm.spmm(crow, col, val, b, out)
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", WIDTHS)
def test_every_level_gives_the_reference_bits(level, dtype, n):
    rng = np.random.default_rng(n)
    crow, col, val, b = matrices(rng, dtype, n)
    want = expected(crow, col, val, b)
    for name in LEVELS[:LEVELS.index(level) + 1]:
        assert kernel._set_simd_level(name) == name
        for threads in (1, 2):
            out = np.full_like(want, np.nan)
            kernel.spmm(crow, col, val, b, out, threads)
            assert np.array_equal(out.view(np.uint8), want.view(np.uint8)), (name, threads)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_column_blocks_that_start_inside_a_row(level, dtype):
    # 2 KiB budget over 29 rows of B: blocks of a few columns, starting at j0 > 0
    rng = np.random.default_rng(3)
    crow, col, val, b = matrices(rng, dtype, 75)
    want = expected(crow, col, val, b)
    kernel._set_blocking(2048, 16)
    try:
        for name in LEVELS[:LEVELS.index(level) + 1]:
            kernel._set_simd_level(name)
            out = np.full_like(want, np.nan)
            kernel.spmm(crow, col, val, b, out, 2)
            assert np.array_equal(out.view(np.uint8), want.view(np.uint8)), name
    finally:
        kernel._set_blocking(0, 512)


def test_nan_inf_and_signed_zeros_pass_through_every_lane(level):
    crow = np.array([0, 3, 3, 5], dtype=np.int64)
    col = np.array([0, 1, 2, 0, 2], dtype=np.int64)
    val = np.array([1.0, -0.0, np.inf, -1.0, np.nan])
    b = np.tile(np.array([[0.0], [-0.0], [1e308], [np.inf]])[:3], (1, 40))
    b[1, ::2] = np.nan
    want = expected(crow, col, val, b)
    for name in LEVELS[:LEVELS.index(level) + 1]:
        kernel._set_simd_level(name)
        out = np.full_like(want, 7.0)
        kernel.spmm(crow, col, val, b, out, 1)
        assert np.array_equal(out.view(np.uint64), want.view(np.uint64)), name


def test_a_level_wider_than_the_cpu_is_never_used(level):
    assert kernel._set_simd_level("avx512") == level  # the widest it has, no wider
    with pytest.raises(ValueError, match="SIMD level must be one of"):
        kernel._set_simd_level("avx1024")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sddmm_dot_gives_the_reference_bits_on_every_level(level, dtype):
    # the 8 partial sums of the contract are the 8 lanes of one vector on every level
    from sparse_ref.reference import sddmm as slow

    rng = np.random.default_rng(5)
    for n in (0, 1, 5, 7, 8, 9, 15, 16, 17, 63, 64, 65, 130):
        x = (rng.standard_normal((6, n)) * 10.0 ** rng.integers(-8, 9, (6, n))).astype(dtype)
        y = (rng.standard_normal((7, n)) * 10.0 ** rng.integers(-8, 9, (7, n))).astype(dtype)
        row = rng.integers(0, 6, 30).astype(np.int64)
        col = rng.integers(0, 7, 30).astype(np.int64)
        want = np.full(30, np.nan, dtype=dtype)
        slow.sddmm(row, col, x, y, want)
        for name in LEVELS[:LEVELS.index(level) + 1]:
            assert sddmm_kernel._set_simd_level(name) == name
            for threads in (1, 2, 3, 7, 40):  # shares of 30 positions, even, uneven, some empty
                out = np.full(30, np.nan, dtype=dtype)
                sddmm_kernel.sddmm(row, col, x, y, out, threads)
                assert np.array_equal(out.view(np.uint8), want.view(np.uint8)), (name, n, threads)


def aligned(shape, dtype, offset=0):
    """An array of NaNs whose data start ``offset`` bytes after a 64-byte boundary."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + 128, dtype=np.uint8)
    start = (-raw.ctypes.data) % 64 + offset
    out = raw[start:start + nbytes].view(dtype).reshape(shape)
    out[...] = np.nan
    return out


@pytest.fixture
def streaming():
    """Streaming stores for outputs of any size (the default asks for 4 MiB)."""
    previous = kernel._set_stream(256, 0)
    yield
    kernel._set_stream(*previous)


@pytest.mark.parametrize("dtype, widths", [(np.float64, (8, 16, 24, 32, 40)),
                                           (np.float32, (16, 32, 48, 64, 80))])
def test_streaming_stores_give_the_reference_bits(level, streaming, dtype, widths):
    # rows of whole cache lines up to 256 bytes are streamed when out starts on a line;
    # 320-byte rows and an out 16 bytes into a line are not: every case, every level
    rng = np.random.default_rng(11)
    for n in widths:
        crow, col, val, b = matrices(rng, dtype, n)
        want = expected(crow, col, val, b)
        for offset in (0, 16):
            out = aligned(want.shape, dtype, offset)
            assert kernel._streams(out) == (offset == 0 and n * out.itemsize <= 256), (n, offset)
            for name in LEVELS[:LEVELS.index(level) + 1]:
                kernel._set_simd_level(name)
                for threads in (1, 2):
                    out[...] = np.nan
                    kernel.spmm(crow, col, val, b, out, threads)
                    assert kernel._last_streamed() == kernel._streams(out)
                    assert np.array_equal(out.view(np.uint8), want.view(np.uint8)), (n, offset, name, threads)


def test_streaming_needs_a_big_output():
    assert not kernel._streams(aligned((30000, 16), np.float64))  # 3.7 MiB, under the default 4 MiB
    assert kernel._streams(aligned((40000, 16), np.float64))  # 4.9 MiB
    assert not kernel._streams(aligned((40000, 16), np.float64, 16))
    assert not kernel._streams(aligned((40000, 64), np.float64))  # 512-byte rows


def test_the_librarys_big_outputs_are_streamed():
    # with the output cache on (the default), an output of 4 MiB or more starts on a 2 MiB
    # page; with it off, NumPy's array starts where malloc puts it: streamed only on a line
    import sparse_ref as sr

    n = 40_000
    diagonal = sr.sparse_coo_tensor(np.stack([np.arange(n)] * 2), np.ones(n), (n, n))
    b = sr.tensor(np.arange(n * 16, dtype=np.float64).reshape(n, 16))
    previous = sr.set_cache_limit(1 << 30)
    try:
        with sr.use_backend("cython"):  # also in the suite's run on the reference kernels
            y = sr.sparse.mm(diagonal, b)
            assert kernel._last_streamed() and kernel._streams(y.numpy())
            assert np.array_equal(y.numpy(), b.numpy())
            sr.set_cache_limit(0)
            y = sr.sparse.mm(diagonal, b)
            on_a_line = y.numpy().ctypes.data % 64 == 0
            assert kernel._last_streamed() == kernel._streams(y.numpy()) == on_a_line
            assert np.array_equal(y.numpy(), b.numpy())
    finally:
        sr.set_cache_limit(previous)


def tall_matrices(rng, dtype, n, nrows=300):
    """Rows in several tasks of 64 rows, empty rows, one long row, and the last entries
    near the end of the arrays (where the prefetch ahead stops)."""
    ncols = 90
    lengths = rng.integers(0, 12, nrows)
    lengths[::17] = 0
    lengths[5] = 80
    crow = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    col = np.concatenate([np.sort(rng.choice(ncols, size=k, replace=False)) for k in lengths]).astype(np.int64)
    val = (rng.standard_normal(col.shape[0]) * 10.0 ** rng.integers(-8, 9, col.shape[0])).astype(dtype)
    b = (rng.standard_normal((ncols, n)) * 10.0 ** rng.integers(-8, 9, (ncols, n))).astype(dtype)
    return crow, col, val, b


VECTOR_BYTES = {"baseline": 16, "avx2": 32, "avx512": 64}


def rows_level(name, row_bytes):
    """The level whole rows of ``row_bytes`` run at under level ``name`` (as _simd.h's
    sr_rows_level): rows of 16 or 32 bytes at the level whose vectors they fill, and under
    AVX2 a row narrower than its vector at SSE2."""
    if name == "avx512" and row_bytes in (16, 32):
        name = "avx2"
    if name == "avx2" and row_bytes < 32:
        name = "baseline"
    return name


def test_rows_of_16_and_32_bytes_run_at_the_level_they_fill(level):
    # the kernel's own answer, for each level this CPU has: 8 floats under AVX-512 are one
    # AVX2 vector, 4 floats one SSE2 vector, in the loop compiled for that width
    for name in LEVELS[:LEVELS.index(level) + 1]:
        kernel._set_simd_level(name)
        assert kernel._fixed_vectors(aligned((100, 8), np.float32)) == (1 if name != "baseline" else 2), name
        assert kernel._fixed_vectors(aligned((100, 4), np.float32)) == 1, name
        assert kernel._fixed_vectors(aligned((100, 2), np.float64)) == 1, name
        assert kernel._fixed_vectors(aligned((100, 4), np.float64)) == (1 if name != "baseline" else 2), name
        assert kernel._fixed_vectors(aligned((100, 12), np.float32)) == 0, name  # 48 bytes
        assert kernel._fixed_vectors(aligned((100, 8), np.float32, 16)) == 0, name  # off a line


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fixed_width_loops_give_the_reference_bits(level, dtype):
    # rows of B that are 1, 2, 4 or 8 vectors in whole cache lines, or one or two vectors
    # of 16 or 32 bytes (inside one line), starting on a line, run a loop compiled for that
    # width; 16 bytes off a line, or a width in between, run the general loop: the same bits
    # on every level and thread count, either way
    rng = np.random.default_rng(21)
    size = np.dtype(dtype).itemsize
    for name in LEVELS[:LEVELS.index(level) + 1]:
        kernel._set_simd_level(name)
        lanes = VECTOR_BYTES[name] // size
        for n in sorted({lanes, 2 * lanes, 4 * lanes, 8 * lanes, 16 * lanes, 3 * lanes, 64 // size + 1,
                         16 // size, 32 // size, 48 // size} - {1}):
            crow, col, val, b0 = tall_matrices(rng, dtype, n)
            want = expected(crow, col, val, b0)
            row_bytes = n * size
            vector = VECTOR_BYTES[rows_level(name, row_bytes)]
            vectors = row_bytes // vector
            for offset in (0, 16):
                b = aligned(b0.shape, dtype, offset)
                b[...] = b0
                fixed = offset == 0 and row_bytes % vector == 0 and (
                    row_bytes in (16, 32) or (row_bytes % 64 == 0 and row_bytes <= 512 and vectors in (1, 2, 4, 8)))
                assert kernel._fixed_vectors(b) == (vectors if fixed else 0), (name, n, offset)
                for threads in (1, 2, 3):
                    out = np.full_like(want, np.nan)
                    kernel.spmm(crow, col, val, b, out, threads)
                    assert np.array_equal(out.view(np.uint8), want.view(np.uint8)), (name, n, offset, threads)


def test_fixed_width_loops_follow_the_prefetch_size(level):
    # the fixed-width loops ask for every line of the row; when the prefetch is told to
    # ask for fewer bytes than a row has, the general loop runs instead (same bits)
    rng = np.random.default_rng(22)
    crow, col, val, b0 = tall_matrices(rng, np.float32, 32)
    b = aligned(b0.shape, np.float32)
    b[...] = b0
    want = expected(crow, col, val, b0)
    assert kernel._fixed_vectors(b) > 0
    try:
        kernel._set_prefetch(10, 64)
        assert kernel._fixed_vectors(b) == 0
        out = np.full_like(want, np.nan)
        kernel.spmm(crow, col, val, b, out, 2)
        assert np.array_equal(out.view(np.uint8), want.view(np.uint8))
    finally:
        kernel._set_prefetch(10, 512)
    assert kernel._fixed_vectors(b) > 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_prefetch_hint_changes_no_bit(level, dtype):
    # rows of B of 64 to 511 bytes are asked for with prefetcht2 on an AMD CPU, except in
    # band rows of A; the hint moves no value: every level, row width (48 to 512 bytes),
    # hint and band (every row prefetcht2, some rows, none), line-aligned B or not
    rng = np.random.default_rng(23)
    size = np.dtype(dtype).itemsize
    try:
        for name in LEVELS[:LEVELS.index(level) + 1]:
            kernel._set_simd_level(name)
            for n in sorted({48 // size, 64 // size, 128 // size, 256 // size, 512 // size, 100 // size}):
                crow, col, val, b0 = tall_matrices(rng, dtype, n)
                want = expected(crow, col, val, b0)
                for offset, outer, band in itertools.product((0, 16), (0, 1), (0, 50, 4096)):
                    b = aligned(b0.shape, dtype, offset)
                    b[...] = b0
                    kernel._set_prefetch(10, 512, True, 20, 40, outer, band)
                    for threads in (1, 2):
                        out = np.full_like(want, np.nan)
                        kernel.spmm(crow, col, val, b, out, threads)
                        where = (name, n, offset, outer, band, threads)
                        assert np.array_equal(out.view(np.uint8), want.view(np.uint8)), where
    finally:
        kernel._set_prefetch(10, 512)
        kernel._set_simd_level(level)


def test_the_prefetch_hint_is_chosen_by_the_cpus_maker():
    # prefetcht2 (1) on AMD, prefetcht0 (0) elsewhere: what /proc/cpuinfo says the CPU is
    vendor = next((line.split(":")[1].strip() for line in open("/proc/cpuinfo") if line.startswith("vendor_id")),
                  None) if sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64") else None
    if vendor is None:
        pytest.skip("no x86 vendor string to compare with")
    in_use, default = kernel._prefetch_outer()
    assert default == (vendor == "AuthenticAMD")
    assert in_use == default  # (every test that changes it puts it back)


def test_the_prefetch_hint_rule():
    # prefetcht2 for rows of B of 64 to 511 bytes, except in a row of A of two or more
    # entries whose columns span fewer than 4096 rows of B (a band); prefetcht0 on a CPU
    # whose choice is 0
    wide, band, edge = np.array([3, 90_000]), np.array([100, 4195]), np.array([100, 4196])
    try:
        kernel._set_prefetch(10, 512, True, 20, 40, 1)
        assert [kernel._outer_hint(r, wide) for r in (16, 48, 63, 64, 256, 511, 512, 2048)] == [0, 0, 0, 1, 1, 1, 0, 0]
        assert kernel._outer_hint(128, band) == 0 and kernel._outer_hint(128, edge) == 1
        assert kernel._outer_hint(128, np.array([7])) == 1  # one entry: no band
        assert kernel._outer_hint(128, np.array([], dtype=np.int64)) == 1
        kernel._set_prefetch(10, 512, True, 20, 40, 5, 0)  # any nonzero is 1; band 0: none
        assert kernel._prefetch_outer()[0] == 1 and kernel._outer_hint(128, band) == 1
        kernel._set_prefetch(10, 512, True, 20, 40, 0)
        assert kernel._prefetch_outer()[0] == 0
        assert [kernel._outer_hint(r, wide) for r in (16, 64, 256, 511)] == [0, 0, 0, 0]
        kernel._set_prefetch(10, 512)  # the CPU's choice again
        assert kernel._outer_hint(128, wide) == kernel._prefetch_outer()[1]
    finally:
        kernel._set_prefetch(10, 512)


def test_the_librarys_big_dense_arrays_start_on_a_line():
    # a dense operand made by the factories (or sr.tensor) starts on a 2 MiB page when it
    # is 4 MiB or more, so SpMM's rows of B are whole lines and take the fixed-width loops;
    # the values are the ones NumPy's generator draws, cast as before
    import sparse_ref as sr

    shape = (70_000, 16)  # 4.5 MB in float32
    previous = sr.set_cache_limit(1 << 30)  # (on, whatever SPARSE_REF_CACHE_BYTES says)
    made = {"randn": sr.randn(*shape, generator=np.random.default_rng(5)),
            "rand": sr.rand(*shape, dtype=sr.float64, generator=np.random.default_rng(6)),
            "zeros": sr.zeros(*shape), "ones": sr.ones(*shape, dtype=sr.float64),
            "full": sr.full(shape, 2.5), "ones_like": sr.ones_like(sr.zeros(*shape)),
            "randint": sr.randint(0, 7, shape, generator=np.random.default_rng(7)),
            "tensor": sr.tensor(np.ones(shape, dtype=np.float32))}
    try:
        for name, t in made.items():
            assert t.numpy().ctypes.data % 64 == 0, name
            if t.dtype in (sr.float32, sr.float64):
                assert kernel._fixed_vectors(t.numpy()) > 0, name
    finally:
        sr.set_cache_limit(previous)
    np.testing.assert_array_equal(made["randn"].numpy(),
                                  np.random.default_rng(5).standard_normal(shape).astype(np.float32))
    np.testing.assert_array_equal(made["rand"].numpy(), np.random.default_rng(6).random(shape))
    np.testing.assert_array_equal(made["randint"].numpy(), np.random.default_rng(7).integers(0, 7, shape))
    assert made["full"].dtype == sr.float32 and made["full"].numpy().min() == 2.5
    assert made["ones"].numpy().sum() == shape[0] * shape[1]


def test_ops_on_big_dense_tensors_make_line_aligned_outputs():
    # an op with a large dense input allocates through the output cache while it runs, so
    # `sr.randn(n, k) * 0.1` is as good a B for SpMM as sr.randn(n, k) itself; small ops
    # are left alone, and the values are NumPy's
    import sparse_ref as sr

    previous = sr.set_cache_limit(1 << 30)  # (on, whatever SPARSE_REF_CACHE_BYTES says)
    b = sr.randn(70_000, 16, generator=np.random.default_rng(8))
    try:
        outs = {"mul": b * 0.1, "add": b + b, "exp": b.exp(), "to": b.to(sr.float64), "neg": -b}
        for name, y in outs.items():
            assert y.numpy().ctypes.data % 64 == 0, name
            assert kernel._fixed_vectors(y.numpy()) > 0, name
        x = b.numpy()
        np.testing.assert_array_equal(outs["mul"].numpy(), x * np.float32(0.1))
        np.testing.assert_array_equal(outs["exp"].numpy(), np.exp(x))
        np.testing.assert_array_equal(outs["to"].numpy(), x.astype(np.float64))
        a = sr.sparse_coo_tensor(np.stack([np.arange(70_000)] * 2), np.full(70_000, 2.0, np.float32),
                                 (70_000, 70_000))
        np.testing.assert_array_equal(sr.sparse.mm(a, outs["mul"]).numpy(), 2 * (x * np.float32(0.1)))
    finally:
        sr.set_cache_limit(previous)


def spgemm_values(rng, n, dtype):
    """n values of dtype for SpGEMM's operands: complex, floats over many magnitudes (so
    that another order of additions shows), or small integers."""
    if np.dtype(dtype).kind == "c":
        return (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dtype)
    if np.dtype(dtype).kind == "f":
        return (rng.standard_normal(n) * 10.0 ** rng.integers(-8, 9, n)).astype(dtype)
    return rng.integers(-50, 50, n).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128, np.complex64, np.int64, np.int32])
def test_spgemm_streaming_stores_give_the_same_bits(dtype):
    # SpGEMM's numeric pass writes a large output with non-temporal stores: the same
    # bits as cached stores and as the reference, every value type, 1-3 threads
    from sparse_ref._kernels import spgemm as fast
    from sparse_ref.reference import spgemm as slow

    rng = np.random.default_rng(31)
    crow, col, _, _ = tall_matrices(rng, np.float64, 1)
    ncols = 90
    b_rows = rng.integers(0, 6, ncols)
    b_crow = np.concatenate([[0], np.cumsum(b_rows)]).astype(np.int64)
    b_col = np.concatenate([np.sort(rng.choice(ncols, size=k, replace=False)) for k in b_rows]).astype(np.int64)
    a_val, b_val = spgemm_values(rng, col.shape[0], dtype), spgemm_values(rng, b_col.shape[0], dtype)
    out_crow = np.empty(crow.shape[0], np.int64)
    slow.spgemm_symbolic(crow, col, b_crow, b_col, ncols, out_crow)
    nnz = int(out_crow[-1])
    want_col, want_val = np.full(nnz, -1, np.int64), np.zeros(nnz, dtype)
    slow.spgemm_numeric(crow, col, a_val, b_crow, b_col, b_val, ncols, out_crow, want_col, want_val)
    previous = fast._set_stream(0)  # stream whatever the size
    try:
        for min_bytes in (0, -1):
            fast._set_stream(min_bytes)
            for threads in (1, 2, 3):
                got_col, got_val = np.full(nnz, -1, np.int64), np.zeros(nnz, dtype)
                fast.spgemm_numeric(crow, col, a_val, b_crow, b_col, b_val, ncols, out_crow, got_col, got_val,
                                    threads)
                assert np.array_equal(got_col, want_col), (min_bytes, threads)
                assert np.array_equal(got_val.view(np.uint8), want_val.view(np.uint8)), (min_bytes, threads)
    finally:
        fast._set_stream(previous)


def _b_at_the_end_of_a_mapping(n_rows, n, dtype):
    """An array of shape (n_rows, n) whose last byte is the last of a mapping followed by a
    page that cannot be read: a kernel that reads one byte past B crashes the process."""
    import ctypes
    import mmap

    page = mmap.PAGESIZE
    nbytes = n_rows * n * np.dtype(dtype).itemsize
    pages = -(-nbytes // page) + 1
    buf = mmap.mmap(-1, (pages + 1) * page)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    assert libc.mprotect(base + pages * page, page, 0) == 0  # PROT_NONE
    start = pages * page - nbytes
    arr = np.frombuffer(buf, dtype=np.uint8, count=nbytes, offset=start).view(dtype).reshape(n_rows, n)
    return arr, buf


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_last_vectors_never_read_past_b(level, dtype):
    # a row that is not a whole number of vectors ends with a masked vector (AVX-512) or
    # one that overlaps the vector before it (AVX2, SSE2): neither reads past the row, so
    # the last row of B can end a mapping (the page after it unreadable) at every level
    # and width; and the bits are the reference's
    rng = np.random.default_rng(31)
    for name in LEVELS[:LEVELS.index(level) + 1]:
        kernel._set_simd_level(name)
        for n in (3, 5, 6, 7, 12, 13, 20, 24, 36, 40, 44, 72, 100, 131):
            crow, col, val, b0 = tall_matrices(rng, dtype, n)
            col[-1] = b0.shape[0] - 1  # the last entry reads the last row of B
            b, buf = _b_at_the_end_of_a_mapping(b0.shape[0], n, dtype)
            b[...] = b0
            want = expected(crow, col, val, b0)
            for threads in (1, 2):
                out = np.full_like(want, np.nan)
                kernel.spmm(crow, col, val, b, out, threads)
                assert np.array_equal(out.view(np.uint8), want.view(np.uint8)), (name, n, threads)
            del b


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reduce_amax_amin_never_read_past_b(level, dtype):
    # amax/amin run a vector of columns at a time (AVX-512: the last one masked, AVX2:
    # whole vectors, the rest in the scalar loop): B's last row can end a mapping
    from sparse_ref.reference import spmm as reference

    rng = np.random.default_rng(32)
    for name in LEVELS[:LEVELS.index(level) + 1]:
        kernel._set_simd_level(name)
        for n in (1, 3, 4, 5, 8, 12, 17, 33):
            crow, col, val, b0 = tall_matrices(rng, dtype, n)
            col[-1] = b0.shape[0] - 1
            b, buf = _b_at_the_end_of_a_mapping(b0.shape[0], n, dtype)
            b[...] = b0
            for reduce in ("amax", "amin"):
                want = np.empty((crow.shape[0] - 1, n), dtype)
                want_arg = np.empty(want.shape, np.int64)
                reference.spmm_reduce(crow, col, val, b0, reduce, want, want_arg)
                out, arg = np.full_like(want, np.nan), np.full_like(want_arg, -7)
                kernel.spmm_reduce(crow, col, val, b, reduce, out, arg, 2)
                assert np.array_equal(out.view(np.uint8), want.view(np.uint8)), (name, n, reduce)
                assert np.array_equal(arg, want_arg), (name, n, reduce)
            del b


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128, np.int64])
def test_spgemm_rows_put_in_order_by_rank_give_the_same_bits(dtype):
    # SpGEMM's numeric pass puts rows of 17 to 128 entries in order by rank (vector
    # comparisons, _simd.h's sr_key_ranks) at AVX2 and AVX-512, and sorts the others: every
    # level, every range of lengths (high 0: always sort; low 0: rows of any length),
    # streamed or not, sums in slots or in the dense array, 1-3 threads, gives the
    # reference's columns and bits. Rows of every
    # length from 0 to a few hundred, their columns arriving out of order (rows of B spread
    # over all the columns), so every remainder of a row's length by the vector groups.
    from sparse_ref._kernels import spgemm as fast
    from sparse_ref.reference import spgemm as slow

    rng = np.random.default_rng(53)
    nrows, ncols = 260, 3000
    lengths = rng.integers(0, 30, nrows)  # rows of A: up to 29 rows of B, 0-7 columns each
    lengths[7] = 120  # and one row of C longer than 128
    lengths[::23] = 0
    crow = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    k_rows = 400
    col = np.concatenate([np.sort(rng.choice(k_rows, size=k, replace=False)) for k in lengths]).astype(np.int64)
    b_rows = rng.integers(0, 8, k_rows)
    b_crow = np.concatenate([[0], np.cumsum(b_rows)]).astype(np.int64)
    b_col = np.concatenate([np.sort(rng.choice(ncols, size=k, replace=False)) for k in b_rows]).astype(np.int64)
    a_val, b_val = spgemm_values(rng, col.shape[0], dtype), spgemm_values(rng, b_col.shape[0], dtype)
    out_crow = np.empty(nrows + 1, np.int64)
    slow.spgemm_symbolic(crow, col, b_crow, b_col, ncols, out_crow)
    nnz = int(out_crow[-1])
    lengths_c = np.diff(out_crow)
    assert lengths_c.max() > 128 and ((lengths_c > 16) & (lengths_c <= 128)).sum() > 50
    want_col, want_val = np.full(nnz, -1, np.int64), np.zeros(nnz, dtype)
    slow.spgemm_numeric(crow, col, a_val, b_crow, b_col, b_val, ncols, out_crow, want_col, want_val)
    widest = fast._simd_level()
    previous_range, previous_stream = fast._set_rank_range(16, 128), fast._set_stream(-1)
    previous_dense = fast._set_dense_limit(-1)
    try:
        for name in LEVELS[:LEVELS.index(widest) + 1]:
            assert fast._set_simd_level(name) == name
            for low, high in ((16, 0), (16, 17), (16, 128), (0, 1000)):
                fast._set_rank_range(low, high)
                for stream in (-1, 0):
                    fast._set_stream(stream)
                    # every row's sums in its slots, or in the dense array (any span)
                    for dense in ((-1,), (4 << 20, 1 << 40)):
                        fast._set_dense_limit(*dense)
                        for threads in (1, 2, 3):
                            got_col, got_val = np.full(nnz, -1, np.int64), np.zeros(nnz, dtype)
                            fast.spgemm_numeric(crow, col, a_val, b_crow, b_col, b_val, ncols, out_crow,
                                                got_col, got_val, threads)
                            where = (name, low, high, stream, dense, threads)
                            assert np.array_equal(got_col, want_col), where
                            assert np.array_equal(got_val.view(np.uint8), want_val.view(np.uint8)), where
    finally:
        fast._set_simd_level(widest)
        fast._set_rank_range(*previous_range)
        fast._set_stream(previous_stream)
        fast._set_dense_limit(*previous_dense)


@pytest.mark.parametrize("width", [1, 4, 48, 64, 128, 200])
@pytest.mark.parametrize("ahead", [0, 3])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_the_gathers_only_hook_reads_every_line_of_the_rows_asked_for(width, ahead, n_threads):
    # bench_products.py times spmm's gathers alone with this hook; it must read what spmm
    # reads: each row of B named by A's columns, at every line (offsets 0, 64, ... and the
    # last byte when rows are not whole lines apart), in the order of A's entries
    rng = np.random.default_rng(width)
    big = np.zeros(64 * 40 * width + 64, np.uint8)  # a line-aligned start, as the library's arrays
    start = (-big.ctypes.data) % 64
    b = big[start:start + 40 * width].reshape(40, width)
    b[...] = rng.integers(0, 256, b.shape)
    col = rng.integers(0, 40, 50_000).astype(np.int64)  # more than one share of the dynamic schedule
    offsets = list(range(0, width, 64))
    if width % 64:
        offsets.append(width - 1)
    want = int(b[:, offsets].astype(np.int64).sum(axis=1)[col].sum())
    assert kernel._gathers_only(col, b, ahead, n_threads) == want
    assert kernel._gathers_only(col[:0], b, ahead, n_threads) == 0


def test_the_gathers_only_hook_refuses_a_row_b_does_not_have():
    b = np.zeros((4, 64), np.uint8)
    with pytest.raises(ValueError, match="column 4 at 1 is not a row of b"):
        kernel._gathers_only(np.array([0, 4], dtype=np.int64), b)
    with pytest.raises(ValueError, match="column -1 at 0"):
        kernel._gathers_only(np.array([-1], dtype=np.int64), b)

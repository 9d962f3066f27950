"""coalesce on both paths: semantics, edge cases, cross-checks with NumPy, SciPy, torch."""

import contextlib

import numpy as np
import pytest
from conftest import (
    ALL_DTYPES,
    THREADS,
    VALUE_DTYPES,
    assert_same_sparse,
    dense_oracle,
    random_coo,
    same_bits,
    torch_or_skip,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import sparse_ref as sr
from sparse_ref import _formats


def coalesce_on_threads(s, n_threads):
    """``s.coalesce()`` with an explicit thread count (even for tiny inputs)."""
    indices, values, _ = _formats.coalesce(s._idx[0], s._idx[1], s._val, s.shape[0], n_threads)
    return sr.SparseTensor._make(indices, values, s.shape, coalesced=True)


def coo(indices, values, shape, dtype=sr.float64):
    return sr.sparse_coo_tensor(indices, values, shape, dtype=dtype)


def test_coalesce_sorts_row_major_and_sums_duplicates():
    s = coo([[1, 0, 1, 0], [0, 2, 0, 1]], [1.0, 2.0, 3.0, 4.0], (2, 3))
    c = s.coalesce()
    assert c.is_coalesced()
    assert c.indices().tolist() == [[0, 0, 1], [1, 2, 0]]
    assert c.values().tolist() == [4.0, 2.0, 4.0]


def test_coalesce_sums_duplicates_in_storage_order():
    # torch 2.13 (docs/semantics.rst): [1e8, 1, -1e8] -> 0.0 and [1e8, -1e8, 1] -> 1.0 in float32
    a = coo([[0, 0, 0], [0, 0, 0]], [1e8, 1.0, -1e8], (1, 1), dtype=sr.float32).coalesce()
    b = coo([[0, 0, 0], [0, 0, 0]], [1e8, -1e8, 1.0], (1, 1), dtype=sr.float32).coalesce()
    assert a.values().tolist() == [0.0]
    assert b.values().tolist() == [1.0]


def test_coalesce_keeps_explicit_zeros_and_cancellations():
    c = coo([[0, 1, 1], [0, 1, 1]], [0.0, 2.5, -2.5], (2, 2)).coalesce()
    assert c.indices().tolist() == [[0, 1], [0, 1]]
    assert c.values().tolist() == [0.0, 0.0]


def test_coalesce_keeps_negative_zero_of_a_single_entry():
    c = coo([[0, 0], [1, 0]], [-0.0, 1.0], (1, 2)).coalesce()
    assert np.signbit(c.values().numpy()[1])  # the sum starts from the value, not from +0.0


def test_coalesce_returns_self_when_coalesced():
    c = coo([[0, 1], [0, 1]], [1.0, 2.0], (2, 2)).coalesce()
    assert c.coalesce() is c


def test_coalesce_does_not_change_the_tensor():
    s = coo([[1, 0, 1], [0, 2, 0]], [1.0, 2.0, 3.0], (2, 3))
    before_i, before_v = s._indices().numpy().copy(), s._values().numpy().copy()
    s.coalesce()
    assert not s.is_coalesced()
    assert same_bits(s._indices().numpy(), before_i) and same_bits(s._values().numpy(), before_v)


@pytest.mark.parametrize(
    "shape,indices",
    [
        ((3, 4), np.zeros((2, 0), np.int64)),  # nnz = 0
        ((0, 5), np.zeros((2, 0), np.int64)),  # 0 x N
        ((5, 0), np.zeros((2, 0), np.int64)),  # N x 0
        ((0, 0), np.zeros((2, 0), np.int64)),
        ((2, 2), np.array([[1] * 6, [1] * 6])),  # every entry a duplicate
        ((4, 3), np.array([[3, 2, 1, 0, 3], [2, 1, 0, 2, 0]])),  # unsorted, empty rows none
        ((6, 3), np.array([[5, 0, 5], [2, 2, 0]])),  # empty rows in the middle
    ],
)
def test_coalesce_edge_cases_match_the_dense_oracle(shape, indices, rng):
    values = rng.standard_normal(indices.shape[1])
    c = coo(indices, values, shape).coalesce()
    assert c.shape == shape and c.is_coalesced()
    np.testing.assert_allclose(c.to_dense().numpy(), dense_oracle(indices, values, shape), rtol=1e-12)
    idx = c.indices().numpy()
    keys = list(zip(idx[0].tolist(), idx[1].tolist()))
    assert keys == sorted(set(keys))


def test_coalesce_accepts_int32_and_non_contiguous_input(rng):
    base = rng.integers(0, 7, size=(2, 40))
    idx32 = np.asfortranarray(base.astype(np.int32))
    vals = rng.standard_normal(80)[::2]  # a strided view
    assert not vals.flags.c_contiguous
    c = sr.sparse_coo_tensor(idx32, vals, (7, 7)).coalesce()
    assert c.indices().dtype == sr.int64
    np.testing.assert_allclose(c.to_dense().numpy(), dense_oracle(base, vals, (7, 7)), rtol=1e-12)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_coalesce_every_dtype_matches_the_oracle(dtype, rng):
    indices, values = random_coo(rng, (9, 7), 60, dtype)
    c = sr.sparse_coo_tensor(indices, values, (9, 7)).coalesce()
    assert c.dtype == dtype
    np.testing.assert_allclose(c.to_dense().numpy(), dense_oracle(indices, values, (9, 7)), rtol=1e-5)


def test_coalesce_huge_shape_whose_size_overflows_int64():
    n = 2**40
    s = sr.sparse_coo_tensor([[n - 1, 5, n - 1, 0], [7, n - 2, 7, n - 1]], [1.0, 2.0, 3.0, 4.0], (n, n))
    for backend in ("reference", "cython"):
        with sr.use_backend(backend):
            c = s.coalesce()
        assert c.indices().tolist() == [[0, 5, n - 1], [n - 1, n - 2, 7]]
        assert c.values().tolist() == [4.0, 2.0, 4.0]
        t = c.t().coalesce()
        assert t.indices().tolist() == [[7, n - 2, n - 1], [n - 1, 5, 0]]


def test_csr_arrays_of_a_shape_whose_size_overflows_int64():
    s = sr.sparse_coo_tensor([[3, 0, 3], [2**62, 5, 1]], [1.0, 2.0, 3.0], (4, 2**62 + 1))
    crow, col, val = s._csr()
    assert crow.tolist() == [0, 1, 1, 1, 3]
    assert col.tolist() == [5, 1, 2**62]
    assert val.tolist() == [2.0, 3.0, 1.0]


def test_csr_arrays_refuse_a_row_count_too_large_to_allocate():
    s = sr.sparse_coo_tensor([[2**40 - 1], [0]], [1.0], (2**40, 2))
    with pytest.raises(MemoryError, match="row pointers"):
        s._csr()


# -- the two paths agree bit for bit, for every thread count ------------------------------

@st.composite
def coo_cases(draw):
    m = draw(st.integers(0, 8))
    n = draw(st.integers(0, 8))
    nnz = draw(st.integers(0, 40)) if m and n else 0
    rows = draw(st.lists(st.integers(0, max(m - 1, 0)), min_size=nnz, max_size=nnz))
    cols = draw(st.lists(st.integers(0, max(n - 1, 0)), min_size=nnz, max_size=nnz))
    # small integers and their halves make exact ties and cancellations likely
    vals = draw(st.lists(st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 3.0, -2.5, 1e8, -1e8, 1e-3]),
                         min_size=nnz, max_size=nnz))
    imag = draw(st.lists(st.sampled_from([0.0, 1.0, -0.5, 1e8]), min_size=nnz, max_size=nnz))
    dtype = draw(st.sampled_from(VALUE_DTYPES))
    values = np.array(vals, dtype=np.float64)
    if np.dtype(dtype).kind == "c":
        values = values + 1j * np.array(imag)
    indices = np.array([rows, cols], dtype=np.int64).reshape(2, nnz)
    return indices, values.astype(dtype), (m, n)


@settings(max_examples=150, deadline=None)
@given(case=coo_cases())
def test_cython_coalesce_equals_reference_bitwise(case):
    indices, values, shape = case
    s = sr.sparse_coo_tensor(indices, values, shape)
    with sr.use_backend("reference"):
        expected = s.coalesce()
    with sr.use_backend("cython"):
        for n_threads in THREADS:
            assert_same_sparse(coalesce_on_threads(s, n_threads), expected)
    np.testing.assert_allclose(expected.to_dense().numpy(), dense_oracle(indices, values, shape),
                               rtol=1e-5, atol=1e-5 * 1e8)


@pytest.mark.parametrize("n_threads", THREADS)
def test_cython_coalesce_equals_reference_on_long_rows(n_threads, rng):
    # rows far longer than the insertion-sort run, so the merge sort really merges
    indices, values = random_coo(rng, (3, 50), 700)
    s = sr.sparse_coo_tensor(indices, values, (3, 50))
    with sr.use_backend("reference"):
        expected = s.coalesce()
    with sr.use_backend("cython"):
        assert_same_sparse(coalesce_on_threads(s, n_threads), expected)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("with_pos", [False, True])
def test_values_carried_in_the_sort_entries_sum_as_gathered_ones(dtype, with_pos, rng):
    # without positions, the kernel carries values of up to 8 bytes in its sort entries
    # (complex128 and the with_pos path gather them from storage): every dtype and both
    # modes must give the reference's bits, duplicates summed in storage order from the
    # first value (so -0.0 alone stays -0.0)
    indices, values = random_coo(rng, (40, 30), 3000, dtype)
    if np.dtype(dtype).kind in "fc":  # (0, 0) gets 1e8, 1, -1e8 (first, middle, last); (39, 29) -0.0
        other = ((indices[0] != 0) | (indices[1] != 0)) & ((indices[0] != 39) | (indices[1] != 29))
        indices, values = indices[:, other], values[other]
        half = values.shape[0] // 2
        indices = np.concatenate([[[0], [0]], indices[:, :half], [[0, 39], [0, 29]], indices[:, half:],
                                  [[0], [0]]], axis=1)
        values = np.concatenate([[1e8], values[:half], [1.0, -0.0], values[half:], [-1e8]]).astype(dtype)
    row, col = np.ascontiguousarray(indices)
    got = {}
    for backend in ("reference", "cython"):
        with sr.use_backend(backend):
            got[backend] = [_formats.coalesce(row, col, values, 40, n, with_pos=with_pos) for n in THREADS]
    want_idx, want_val, want_pos = got["reference"][0]
    for idx, val, pos in got["reference"] + got["cython"]:
        assert same_bits(idx, want_idx) and same_bits(val, want_val)
        assert (pos is None) == (not with_pos) and (pos is None or same_bits(pos, want_pos))
    if np.dtype(dtype).kind in "fc":
        assert np.signbit(want_val[-1].real) and want_val[-1] == 0  # (39, 29): -0.0 alone
        first = want_val[0]  # (0, 0): (1e8 + 1) - 1e8, in storage order
        assert first == (np.array(1e8, dtype) + np.array(1.0, dtype)) - np.array(1e8, dtype)


def test_cython_coalesce_result_does_not_change_under_threadpool_limits(rng):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    indices, values = random_coo(rng, (300, 300), 30_000)
    s = sr.sparse_coo_tensor(indices, values, (300, 300))
    with sr.use_backend("cython"):
        free = s.coalesce()
        with threadpoolctl.threadpool_limits(1, "openmp"):
            limited = s.coalesce()
    assert_same_sparse(free, limited)


# -- SciPy and torch ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", VALUE_DTYPES)
def test_coalesce_matches_scipy_sum_duplicates(dtype, rng):
    sp = pytest.importorskip("scipy.sparse")
    indices, values = random_coo(rng, (30, 20), 400, dtype)
    ours = sr.sparse_coo_tensor(indices, values, (30, 20)).coalesce()
    ref = sp.coo_array((values, (indices[0], indices[1])), shape=(30, 20))
    ref.sum_duplicates()  # sorts row-major, sums duplicates (in its own order)
    assert ours.indices().numpy().tolist() == [ref.row.tolist(), ref.col.tolist()]
    np.testing.assert_allclose(ours.values().numpy(), ref.data, rtol=1e-5)


@pytest.mark.parametrize("dtype", VALUE_DTYPES)
def test_coalesce_matches_torch(dtype, rng):
    """Indices exactly; values to rounding: for runs of 3+ duplicates torch 2.13 does not
    add strictly in storage order (float32 runs accumulate in double, long runs are
    reduced in another order), while we do (the numerics contract, docs/numerics.rst)."""
    torch = torch_or_skip()
    indices, values = random_coo(rng, (30, 20), 400, dtype)
    ours = sr.sparse_coo_tensor(indices, values, (30, 20)).coalesce()
    theirs = torch.sparse_coo_tensor(torch.from_numpy(indices), torch.from_numpy(values), (30, 20)).coalesce()
    assert same_bits(ours.indices().numpy(), theirs.indices().numpy())
    np.testing.assert_allclose(ours.values().numpy(), theirs.values().numpy(), rtol=1e-5, atol=1e-6)


def test_coalesce_storage_order_example_matches_torch():
    torch = torch_or_skip()
    for vals in ([1e8, 1.0, -1e8], [1e8, -1e8, 1.0]):
        t = torch.sparse_coo_tensor([[0, 0, 0], [0, 0, 0]], vals, (1, 1), dtype=torch.float32).coalesce()
        s = coo([[0, 0, 0], [0, 0, 0]], vals, (1, 1), dtype=sr.float32).coalesce()
        assert s.values().tolist() == t.values().tolist()


@pytest.mark.parametrize("n_threads", THREADS)
def test_rows_spanning_more_than_2_to_the_32_columns_sort_correctly(n_threads, rng):
    # such rows cannot use the packed 64-bit keys: the kernel's general merge sort runs
    shape = (3, 2**40)
    indices = np.stack([rng.integers(0, 3, 300), rng.integers(0, 2**40, 300)])
    indices[1, ::7] = indices[1, 0]  # and some duplicates
    indices[0, ::7] = 1
    values = rng.standard_normal(300)
    s = sr.sparse_coo_tensor(indices, values, shape)
    with sr.use_backend("reference"):
        expected = s.coalesce()
    with sr.use_backend("cython"):
        assert_same_sparse(coalesce_on_threads(s, n_threads), expected)
    keys = list(zip(*expected.indices().tolist()))
    assert keys == sorted(set(zip(*indices.tolist())))


@pytest.mark.parametrize("n_threads", [1, 2])
def test_rows_longer_than_the_parallel_sort_buffers(n_threads, rng):
    # rows over 4096 entries are sorted one at a time with a shared buffer
    indices = np.stack([rng.integers(0, 2, 9000), rng.integers(0, 3000, 9000)])
    s = sr.sparse_coo_tensor(indices, rng.standard_normal(9000), (3, 3000))
    with sr.use_backend("reference"):
        expected = s.coalesce()
    with sr.use_backend("cython"):
        assert_same_sparse(coalesce_on_threads(s, n_threads), expected)


# -- the chunked counting sort: several chunks only from n_threads * MIN_CHUNK entries on,
# -- so the tests lower MIN_CHUNK to reach it with a few entries --------------------------

@contextlib.contextmanager
def tiny_chunks():
    """The Cython coalesce module with one entry per chunk allowed (restored afterwards)."""
    from sparse_ref._kernels import coalesce as kernel

    previous = kernel._set_min_chunk(1)
    try:
        yield kernel
    finally:
        kernel._set_min_chunk(previous)


def test_counting_sort_splits_into_chunks_only_for_many_entries():
    from sparse_ref._kernels import coalesce as kernel

    assert kernel._chunk_count(2 * 65536 - 1, 100, 2) == 1
    assert kernel._chunk_count(2 * 65536, 100, 2) == 2
    assert kernel._chunk_count(10**7, 10**8, 2) == 1  # more rows than entries: one chunk


def test_tiny_chunks_give_one_chunk_per_thread():
    with tiny_chunks() as kernel:
        assert kernel._chunk_count(40, 8, 8) == 8
        assert kernel._chunk_count(3, 8, 8) == 3  # never an empty chunk
        assert kernel._chunk_count(0, 8, 8) == 1
    assert kernel._chunk_count(40, 8, 8) == 1


@st.composite
def raw_coo_cases(draw):
    """Kernel arguments: unsorted rows (some empty), duplicates, explicit zeros, and now and
    then columns spanning 2**32 or more (sorted by their top bits, then each run of ties)."""
    nrows = draw(st.integers(1, 12))
    nnz = draw(st.integers(0, 80))
    rows = draw(st.lists(st.integers(0, nrows - 1), min_size=nnz, max_size=nnz))
    wide = draw(st.booleans())
    columns = st.integers(0, 6)
    if wide:  # near neighbours far apart: ties on the top bits, then a sort of each run
        columns = columns | st.integers(2**40, 2**40 + 3) | st.integers(2**62, 2**62 + 3)
    cols = draw(st.lists(columns, min_size=nnz, max_size=nnz))
    vals = draw(st.lists(st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 3.0, 1e8, -1e8]),
                         min_size=nnz, max_size=nnz))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.complex128]))
    values = np.array(vals, dtype=np.float64)
    if np.dtype(dtype).kind == "c":
        values = values - 1j * values[::-1]
    with_pos = draw(st.booleans())
    n_threads = draw(st.sampled_from([2, 3, 4, 8]))
    return (np.array(rows, np.int64), np.array(cols, np.int64), values.astype(dtype), nrows,
            with_pos, n_threads)


def run_coalesce(module, a_row, a_col, a_val, nrows, with_pos, n_threads):
    nnz = a_row.shape[0]
    out = (np.full(nrows + 1, -7, np.int64), np.full(nnz, -7, np.int64),
           np.zeros(nnz, a_val.dtype), np.full(nnz if with_pos else 0, -7, np.int64))
    module.coalesce(a_row, a_col, a_val, nrows, *out, n_threads)
    crow, col, val, pos = out
    return crow, col[:crow[-1]], val[:crow[-1]], pos


@settings(max_examples=200, deadline=None)
@given(case=raw_coo_cases())
def test_chunked_coalesce_equals_reference_bitwise(case):
    from sparse_ref.reference import coalesce as reference

    expected = run_coalesce(reference, *case)
    with tiny_chunks() as kernel:
        got = run_coalesce(kernel, *case)
    for name, e, g in zip(("crow", "col", "val", "pos"), expected, got):
        assert same_bits(e, g), name


# -- a coalesced matrix keeps the kernel's row pointers; its row indices are written on use ----

def _pending(t) -> bool:
    return "_rows_later" in vars(t)


def _shuffled_matrix(rng, shape=(50, 40), nnz=400, dtype=np.float64):
    row, col = rng.integers(0, shape[0], nnz), rng.integers(0, shape[1], nnz)
    return sr.sparse_coo_tensor(np.stack([row, col]), rng.standard_normal(nnz).astype(dtype), shape)


def _expected(s):
    dense = np.zeros(s.shape, dtype=np.float64)
    idx, val = s._indices().numpy(), s._values().numpy().astype(np.float64)
    np.add.at(dense, (idx[0], idx[1]), val)
    return dense


def test_a_coalesced_matrix_writes_its_row_indices_only_when_read():
    s = _shuffled_matrix(np.random.default_rng(11))
    c = s.coalesce()
    assert _pending(c) and c.is_coalesced() and c.sparse_dim() == 2
    product = sr.sparse.mm(c, sr.ones(40, 2, dtype=sr.float64))  # its CSR form is the kernel's
    assert _pending(c)
    np.testing.assert_allclose(product.numpy(), _expected(s) @ np.ones((40, 2)), rtol=1e-12)
    idx = c.indices().numpy()
    assert not _pending(c) and not idx.flags.writeable
    rows, cols = np.nonzero(_expected(s) != 0)
    np.testing.assert_array_equal(idx, np.stack([rows, cols]))
    np.testing.assert_allclose(c.to_dense().numpy(), _expected(s), rtol=1e-12)


def test_tensors_that_share_unwritten_rows_write_them_once():
    c = _shuffled_matrix(np.random.default_rng(12)).coalesce()
    d = c.detach()  # the same arrays, still unwritten
    e = c._with_values(c._values().numpy() * 2)
    assert _pending(c) and _pending(d) and _pending(e)
    first = e.indices().numpy()  # written through e ...
    assert not first.flags.writeable
    np.testing.assert_array_equal(c.indices().numpy(), first)  # ... and read through the others
    np.testing.assert_array_equal(d.indices().numpy(), first)
    assert np.shares_memory(c._idx, d._idx)


@pytest.mark.parametrize("case", ["blocks", "renamed rows", "hybrid", "float16", "reference"])
def test_every_coalesce_path_gives_the_same_indices_written_now_or_later(case, monkeypatch):
    rng = np.random.default_rng(13)
    s = _shuffled_matrix(rng)
    if case == "blocks":  # cut into blocks of rows: the rows are written at once
        monkeypatch.setattr(_formats, "COALESCE_BLOCK", 64)
    elif case == "renamed rows":  # far more rows than entries: renamed, written at once
        idx = s._indices().numpy().copy()
        idx[0] *= 10**12
        s = sr.sparse_coo_tensor(idx, s._values().numpy(), (50 * 10**12, 40))
    elif case == "hybrid":
        s = sr.sparse_coo_tensor(s._indices().numpy(), rng.standard_normal((400, 3)), (50, 40, 3))
    elif case == "float16":
        s = _shuffled_matrix(rng, dtype=np.float16)
    context = sr.use_backend("reference") if case == "reference" else contextlib.nullcontext()
    with context:
        c = s.coalesce()
        assert _pending(c) == (case in ("float16", "reference"))
        idx = s._indices().numpy()
        keys = np.unique(idx.T, axis=0).T  # the distinct (row, column) pairs, row-major
        np.testing.assert_array_equal(c.indices().numpy(), keys)
        assert not _pending(c)


# -- rows put in order by rank (vector comparisons) at AVX2 and AVX-512 ---------------------

@pytest.mark.parametrize("wide", [False, True])
def test_rows_put_in_order_by_rank_give_the_sorts_bits(wide, rng):
    # rows of 17 to 128 entries are put in order by rank at the vector levels, the others
    # sorted: every level, every range of lengths (high 0: sort every row; low 0: rows of
    # any length), 1-3 threads, with and without
    # positions, give the reference's bits; rows of every length from 0 to about 200, with
    # duplicates (the rank of equal columns follows storage order: the sum's order), and
    # (wide) columns spanning more than 2**32, whose keys use all 64 bits
    from sparse_ref._kernels import coalesce as kernel

    nrows, ncols = 120, (2**40 if wide else 400)
    lengths = rng.integers(0, 140, nrows)
    lengths[::11] = 0
    lengths[3] = 200
    row = np.repeat(np.arange(nrows), lengths)
    col = rng.integers(0, ncols, row.shape[0])
    col[::5] = col[::10].repeat(2)[:col[::5].shape[0]]  # duplicates
    if wide:
        col[::3] = rng.integers(0, 4, col[::3].shape[0]) << 36  # ties on the top bits too
    order = rng.permutation(row.shape[0])
    row, col = np.ascontiguousarray(row[order]), np.ascontiguousarray(col[order])
    values = rng.standard_normal(row.shape[0]) * 10.0 ** rng.integers(-8, 9, row.shape[0])
    per_row = np.bincount(row, minlength=nrows)
    assert ((per_row > 16) & (per_row <= 128)).sum() > 40 and per_row.max() > 128
    with sr.use_backend("reference"):
        want = [_formats.coalesce(row, col, values, nrows, 1, with_pos=p) for p in (False, True)]
    widest = kernel._simd_level()
    previous = kernel._set_rank_range(16, 128)
    try:
        with sr.use_backend("cython"):
            for name in ("baseline", "avx2", "avx512")[:("baseline", "avx2", "avx512").index(widest) + 1]:
                assert kernel._set_simd_level(name) == name
                for low, high in ((16, 0), (16, 17), (16, 128), (0, 1000)):
                    kernel._set_rank_range(low, high)
                    for n_threads in THREADS:
                        for p, (w_idx, w_val, w_pos) in zip((False, True), want):
                            idx, val, pos = _formats.coalesce(row, col, values, nrows, n_threads, with_pos=p)
                            where = (name, low, high, n_threads, p)
                            assert same_bits(idx, w_idx) and same_bits(val, w_val), where
                            assert (pos is None and w_pos is None) or same_bits(pos, w_pos), where
    finally:
        kernel._set_simd_level(widest)
        kernel._set_rank_range(*previous)

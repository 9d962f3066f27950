"""float16 and bfloat16: the rounding kernels bit for bit against NumPy and ml_dtypes, and
every product and gradient in the half types -- both paths bit for bit, equal to a
float32-accumulating oracle (widen, compute in float32 in the contract's order, round once)
exactly, and to torch 2.13 within the small type's rounding where torch has the op."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import torch_or_skip

import sparse_ref as sr
from sparse_ref import _dtypes
from sparse_ref._errors import ConversionError
from sparse_ref._kernels import convert as fast_convert
from sparse_ref.course import check
from sparse_ref.reference import convert as ref_convert

HALF = [sr.float16] + ([_dtypes.bfloat16] if _dtypes.bfloat16 is not None else [])
HALF_IDS = [d.name for d in HALF]
BACKENDS = ["reference", "cython"]
ROUND = {"float16": "round_to_float16", "bfloat16": "round_to_bfloat16"}


def bits16(x):
    return np.ascontiguousarray(x).view(np.uint16)


def same16(x, y):
    """Equal bit patterns (any two NaNs count as equal, as in conftest.same_bits)."""
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != y.dtype or x.shape != y.shape:
        return False
    nan = np.isnan(x.astype(np.float32)) & np.isnan(y.astype(np.float32))
    return bool(np.all((bits16(x) == bits16(y)) | nan))


def library_rounding(x32, dt):
    """NumPy's (float16) or ml_dtypes' (bfloat16) float32 -> half cast: the model."""
    with np.errstate(all="ignore"):
        return np.asarray(x32, dtype=np.float32).astype(dt)


# -- the rounding kernels ---------------------------------------------------------------------

def edge_patterns():
    """Every edge class: ties (even and odd kept part) and their neighbours at every
    exponent, subnormals of both types, the largest finite values and just above them,
    inf, NaN payloads (quiet and signalling), -0.0; both signs."""
    exps = np.arange(256, dtype=np.uint32) << 23
    low = np.arange(0, (1 << 14) + 3, dtype=np.uint32)  # every pattern of the 14 low bits
    high = np.uint32(0x7FFFFF) - low                      # and of the top of the fraction
    special = np.array([0x477FE000, 0x477FEFFF, 0x477FF000, 0x477FF001, 0x477FFFFF, 0x47800000,
                        0x7F7F7FFF, 0x7F7F8000, 0x7F7FFFFF, 0x7F800000, 0x7F800001, 0x7F802000,
                        0x7FA00000, 0x7FC00000, 0x7FC00001, 0x7FFFFFFF, 0x33000000, 0x33000001,
                        0x32FFFFFF, 0x38800000, 0x387FFFFF, 0x00000001, 0x007FFFFF, 0], dtype=np.uint32)
    # exact ties (and one below, one above) with the tie bit at every position s of the
    # fraction: float16 drops 13 bits (normal) to 24 (smallest subnormals), bfloat16 16
    s = np.arange(1, 24, dtype=np.uint32)[:, None]
    kept = np.array([0, 1, 2, 3, 0x7E, 0x7F, 0x3FE, 0x3FF, 0xFFFF], dtype=np.uint32)[None, :]
    tie = ((kept << s) | (np.uint32(1) << (s - 1))).ravel() & np.uint32(0x7FFFFF)
    near = np.concatenate([tie, tie - 1, tie + 1]) & np.uint32(0x7FFFFF)
    x = np.concatenate([(exps[:, None] | low).ravel(), (exps[:, None] | high).ravel(),
                        (exps[:, None] | near).ravel(), special])
    return np.concatenate([x, x | np.uint32(0x80000000)])


def random_patterns(n=1 << 20, seed=14):
    return np.random.default_rng(seed).integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)


def rounded(module, dt, x, n_threads=1):
    out = np.empty(x.shape[0], dtype=np.uint16)
    getattr(module, ROUND[dt.name])(x, out, n_threads)
    return out


def expected_bits(dt, x):
    """The library's bits, with one deliberate difference: our float16 rounding makes a
    NaN quiet (sets bit 9), where NumPy truncates a signalling NaN's payload and keeps it
    signalling (0x7F800001 -> 0x7C01; ours 0x7E00)."""
    want = library_rounding(x.view(np.float32), dt).view(np.uint16)
    if dt == sr.float16:
        nan = (x & 0x7FFFFFFF) > 0x7F800000
        want = np.where(nan, ((x >> 16) & 0x8000) | 0x7E00 | ((x >> 13) & 0x3FF), want).astype(np.uint16)
    return want


@pytest.mark.parametrize("module", [ref_convert, fast_convert], ids=BACKENDS)
@pytest.mark.parametrize("dt", HALF, ids=HALF_IDS)
@pytest.mark.parametrize("patterns", [edge_patterns, random_patterns])
def test_rounding_is_the_library_rounding_bit_for_bit(module, dt, patterns):
    x = patterns()
    assert np.array_equal(rounded(module, dt, x), expected_bits(dt, x))


@pytest.mark.parametrize("dt", HALF, ids=HALF_IDS)
def test_rounding_is_the_same_on_both_paths_and_every_thread_count(dt):
    x = np.concatenate([edge_patterns(), random_patterns(1 << 16, seed=3)])
    want = rounded(ref_convert, dt, x)
    for n_threads in (1, 2, 4):
        assert np.array_equal(rounded(fast_convert, dt, x, n_threads), want)


def test_rounding_edge_values():
    f = np.array([65504, 65519.99, 65520, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26, -0.0, 2049, 2051,
                  np.inf, -np.inf], dtype=np.float32)
    got = rounded(fast_convert, sr.float16, f.view(np.uint32)).view(np.float16).astype(np.float64)
    assert got.tolist()[:6] == [65504, 65504, np.inf, 2.0 ** -24, 0.0, 2.0 ** -24]
    assert np.signbit(got[6]) and got[7] == 2048 and got[8] == 2052  # ties to even
    assert got[9] == np.inf and got[10] == -np.inf
    nan = rounded(fast_convert, sr.float16, np.array([0x7F800001, 0xFF800001], np.uint32))
    assert nan.tolist() == [0x7E00, 0xFE00]  # NaN stays NaN, quiet, with its sign
    if _dtypes.bfloat16 is not None:
        nan = rounded(ref_convert, _dtypes.bfloat16, np.array([0x7F800001, 0xFFC12345], np.uint32))
        assert nan.tolist() == [0x7FC0, 0xFFC0]
        tie = np.array([1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8], np.float32).view(np.uint32)
        assert rounded(fast_convert, _dtypes.bfloat16, tie).view(_dtypes.bfloat16).astype(float).tolist() == [
            1.0, 1 + 4 * 2.0 ** -8]


@pytest.mark.skipif(os.environ.get("SPARSE_REF_ALL_BIT_PATTERNS") != "1",
                    reason="all 2**32 patterns take minutes (NumPy's and ml_dtypes' casts dominate); "
                           "set SPARSE_REF_ALL_BIT_PATTERNS=1 to run")
@pytest.mark.parametrize("dt", HALF, ids=HALF_IDS)
def test_cython_rounding_on_every_float32_pattern(dt):
    step = 1 << 26
    for start in range(0, 1 << 32, step):
        x = np.arange(start, start + step, dtype=np.uint64).astype(np.uint32)
        assert np.array_equal(rounded(fast_convert, dt, x, 2), expected_bits(dt, x)), hex(start)


# -- dtypes, casts, printing, interop -------------------------------------------------------

def test_dtypes_are_numpy_dtypes():
    assert sr.float16 == np.dtype(np.float16)
    if _dtypes.bfloat16 is not None:
        import ml_dtypes
        assert sr.bfloat16 == np.dtype(ml_dtypes.bfloat16)
        assert sr.ones(2).bfloat16().dtype == sr.bfloat16
        assert sr.ones(2, 2).to_sparse().bfloat16().dtype == sr.bfloat16
    assert sr.ones(2).half().dtype == sr.float16
    assert sr.ones(2, 2).to_sparse().to_sparse_csr().half().dtype == sr.float16


def test_without_ml_dtypes_bfloat16_says_what_to_install():
    code = ("import sys; sys.modules['ml_dtypes'] = None\n"
            "import sparse_ref as sr\n"
            "assert sr.float16.name == 'float16' and not hasattr(sr, 'bfloat16')\n"
            "for f in (lambda: sr.bfloat16, lambda: sr.ones(2).bfloat16(), lambda: sr.zeros(2, dtype='bfloat16')):\n"
            "    try:\n"
            "        f()\n"
            "    except (AttributeError, TypeError) as e:\n"
            "        assert 'pip install ml_dtypes' in str(e), e\n"
            "    else:\n"
            "        raise AssertionError('no error')\n"
            "print(sr.sparse.mm(sr.ones(2, 2).to_sparse().half(), sr.ones(2, 1).half()).dtype)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(sr.__file__))))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "float16"


@pytest.mark.parametrize("dt", HALF, ids=HALF_IDS)
def test_factories_casts_and_printing(dt):
    s = sr.sparse_coo_tensor([[0, 1], [1, 0]], [1.5, 2.0], (2, 2), dtype=dt)
    assert s.dtype == dt and s.to_sparse_csr().dtype == dt
    assert f"dtype=sparse_ref.{dt.name}" in repr(s)
    assert repr(sr.tensor([0.5, 2.0], dtype=dt)) == f"tensor([0.5000, 2.0000], dtype=sparse_ref.{dt.name})"
    assert sr.zeros(2, 3, dtype=dt).dtype == dt and sr.randn(3, dtype=dt).dtype == dt
    x = sr.tensor([1.0, 2.0], requires_grad=True)
    y = x.to(dt)
    (y.float() * sr.tensor([3.0, 4.0])).sum().backward()  # differentiable both ways
    assert x.grad.tolist() == [3.0, 4.0]


@pytest.mark.parametrize("dt", HALF, ids=HALF_IDS)
def test_casts_refuse_values_the_half_type_cannot_hold(dt):
    big = float(_dtypes.finfo(dt).max)
    assert sr.tensor([big]).to(dt).tolist() == [big]  # the largest finite value is kept
    with pytest.raises(ConversionError, match=f"cannot be converted to type {dt.name} without overflow"):
        sr.tensor([big * 1.01], dtype=sr.float64).to(dt)
    with pytest.raises(ConversionError, match="would become inf"):
        sr.sparse_coo_tensor([[0], [0]], [1e300], (1, 1), dtype=dt)
    with pytest.raises(ConversionError, match="NaN and inf have no integer value"):
        sr.tensor([np.nan], dtype=dt).to(sr.int32)
    assert np.isinf(sr.tensor([np.inf]).to(dt).numpy()[0])  # inf stays inf (not an overflow)
    # in range: round to nearest, ties to even (2049 lies half way between float16's 2048 and 2050)
    assert sr.tensor([2049.0]).to(sr.float16).tolist() == [2048.0]


@pytest.mark.parametrize("dt", HALF, ids=HALF_IDS)
def test_torch_interop_both_ways_keeps_the_bits(dt):
    torch = torch_or_skip()
    tdt = {"float16": torch.float16, "bfloat16": torch.bfloat16}[dt.name]
    raw = np.array([0x3C00, 0x8000, 0x7E00, 0x0001, 0x7BFF, 0xC500], np.uint16)
    s = sr.sparse_coo_tensor([[0, 1, 2, 3, 4, 5], [0] * 6], raw.view(dt), (6, 1))
    t = sr.to_torch(s)
    assert t.dtype == tdt
    assert np.array_equal(t._values().view(torch.int16).numpy().view(np.uint16), raw)
    back = sr.from_torch(t)
    assert back.dtype == dt and np.array_equal(back._val.view(np.uint16), raw)
    dense = sr.from_torch(torch.tensor([1.5, -2.0], dtype=tdt))
    assert dense.dtype == dt and sr.to_torch(dense).dtype == tdt
    csr = sr.to_torch(s.to_sparse_csr())
    assert csr.dtype == tdt and sr.from_torch(csr).dtype == dt


# -- products and gradients ------------------------------------------------------------------
#
# Every op runs three times from the same numbers: in the half type on each path, and in
# float32 (from the widened values) on the reference path. The half results must be the
# same bits on both paths and the float32 results rounded once (NumPy's or ml_dtypes'
# rounding, not ours).

M, K, N = 7, 9, 5


def make_inputs(rng, dt):
    """Half-type values: an uncoalesced COO A (M x K, with duplicates), a sparse A2 (K x N),
    dense B (K x N), X (N x M), C (M x N), S1 (M x 4), S2 (4 x K), and output gradients."""
    def vals(*shape):
        return (rng.standard_normal(shape) * 3).astype(np.float32).astype(dt)

    idx = np.stack([rng.integers(0, M, 30), rng.integers(0, K, 30)])
    idx2 = np.stack([rng.integers(0, K, 20), rng.integers(0, N, 20)])
    return dict(a=(idx, vals(30)), a2=(idx2, vals(20)), b=vals(K, N), x=vals(N, M), c=vals(M, N),
                s1=vals(M, 4), s2=vals(4, K), g_mn=vals(M, N), g_nk=vals(N, K), g_mk=vals(M, K))


def leaves(inputs, dt):
    """The inputs as tensors of dtype ``dt`` (float32 for the oracle: widened exactly);
    all but the output gradients require grad."""
    out = {}
    for key, v in inputs.items():
        if isinstance(v, tuple):
            shape = (M, K) if key == "a" else (K, N)
            out[key] = sr.sparse_coo_tensor(v[0], v[1].astype(dt), shape, requires_grad=True)
        else:
            out[key] = sr.tensor(v.astype(dt), requires_grad=not key.startswith("g_"))
    return out


OPS = {
    "coo @ dense": lambda t: (sr.sparse.mm(t["a"], t["b"]), "g_mn"),
    "csr @ dense": lambda t: (sr.sparse.mm(t["a"].to_sparse_csr(), t["b"]), "g_mn"),
    "dense @ coo": lambda t: (sr.mm(t["x"], t["a"]), "g_nk"),
    "coo @ coo": lambda t: (sr.sparse.mm(t["a"], t["a2"]), "g_mn"),
    "csr @ csr": lambda t: (sr.sparse.mm(t["a"].to_sparse_csr(), t["a2"].to_sparse_csr()), "g_mn"),
    "addmm": lambda t: (sr.sparse.addmm(t["c"], t["a"], t["b"], beta=0.75, alpha=-1.25), "g_mn"),
    "addmm, broadcast row": lambda t: (sr.sparse.addmm(t["c"][0], t["a"], t["b"], beta=0.3), "g_mn"),
    "sampled_addmm": lambda t: (sr.sparse.sampled_addmm(t["a"], t["s1"], t["s2"], beta=0.5, alpha=2.5), "g_mk"),
    "reduce sum": lambda t: (sr.sparse.mm(t["a"], t["b"], reduce="sum"), "g_mn"),
    "reduce mean": lambda t: (sr.sparse.mm(t["a"], t["b"], reduce="mean"), "g_mn"),
    "reduce amax": lambda t: (sr.sparse.mm(t["a"], t["b"], reduce="amax"), "g_mn"),
    "reduce amin, csr": lambda t: (sr.sparse.mm(t["a"].to_sparse_csr(), t["b"], reduce="amin"), "g_mn"),
    "reduce mean, csr": lambda t: (sr.sparse.mm(t["a"].to_sparse_csr(), t["b"], reduce="mean"), "g_mn"),
    "coalesce": lambda t: (t["a"].coalesce(), "g_mk"),
    "to_dense": lambda t: (t["a"].to_dense(), "g_mk"),
}


def arrays(t):
    """A tensor's data: a dense array, or a sparse tensor's (indices, values) coalesced."""
    if t is None:
        return None
    t = t.detach()
    if isinstance(t, sr.SparseTensor):
        c = t.to_sparse_coo().coalesce() if t.is_sparse_csr else t.coalesce()
        return c.indices().numpy(), c.values().numpy()
    return t.numpy()


def coalesced(coo, key, dt):
    """``(indices, values)`` of a sparse input coalesced in the half type."""
    c = sr.sparse_coo_tensor(coo[0], coo[1], (M, K) if key == "a" else (K, N), dtype=dt).coalesce()
    return c.indices().numpy(), c.values().numpy()


def run(op, inputs, dt, backend):
    """The op's output and every input's gradient (``None`` where it has none)."""
    with sr.use_backend(backend):
        t = leaves(inputs, dt)
        out, g = OPS[op](t)
        out.backward(t[g])
        return [arrays(out)] + [arrays(v.grad) for k, v in sorted(t.items()) if not k.startswith("g_")]


def flat(results):
    """Every array of ``run``'s results, indices and values alike, in order."""
    for r in results:
        if isinstance(r, tuple):
            yield from r
        elif r is not None:
            yield r


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("dt", HALF, ids=HALF_IDS)
def test_product_and_gradients_both_paths_and_the_float32_oracle(op, dt, rng):
    inputs = make_inputs(rng, dt)
    ref, fast = run(op, inputs, dt, "reference"), run(op, inputs, dt, "cython")
    if op not in ("coalesce", "to_dense"):
        # a product reads its sparse operand's coalesced values, which are stored in the
        # half type: the oracle starts from those (coalesce itself is tested on the raw ones)
        inputs = {k: (coalesced(v, k, dt) if isinstance(v, tuple) else v) for k, v in inputs.items()}
    wide = run(op, inputs, np.float32, "reference")
    assert [r is None for r in ref] == [r is None for r in fast] == [r is None for r in wide]
    for got, other, want in zip(flat(ref), flat(fast), flat(wide), strict=True):
        if got.dtype == np.int64:  # indices: the same patterns
            assert np.array_equal(got, other) and np.array_equal(got, want), op
            continue
        assert got.dtype == dt, op
        assert same16(got, other), f"{op}: the two paths differ"
        assert same16(got, library_rounding(want, dt)), f"{op}: not float32 rounded once"


# -- the float32-accumulating NumPy oracle, in each contract's order ---------------------------
#
# Written from the contracts (docs/numerics.rst), not from the kernels: widen, one float32
# multiply and one float32 add per product in the stated order, then one rounding.

F32 = np.float32


def oracle_coalesce(idx, val32):
    """Sorted row-major; duplicates summed in storage order (float32), not yet rounded."""
    order = np.lexsort((idx[1], idx[0]))  # stable: duplicates keep their storage order
    keys, sums = [], []
    for p in order:
        key = (int(idx[0, p]), int(idx[1, p]))
        if keys and keys[-1] == key:
            sums[-1] = F32(sums[-1] + val32[p])
        else:
            keys.append(key)
            sums.append(F32(val32[p]))
    return np.array(keys, dtype=np.int64).reshape(-1, 2).T, np.array(sums, dtype=F32)


def oracle_spmm(idx, val32, b32, nrows):
    """Row i: ``((0 + a_q0 * b[k0]) + a_q1 * b[k1]) + ...`` in ascending column order."""
    out = np.zeros((nrows, b32.shape[1]), dtype=F32)
    for (i, k), v in zip(idx.T, val32):  # coalesced: rows, then columns, ascending
        out[i] = out[i] + v * b32[k]
    return out


def oracle_spgemm(idx_a, val_a, idx_b, val_b):
    """Gustavson: for row i, for (i, k) in ascending k, for (k, j) in ascending j:
    ``acc[j] += a_ik * b_kj``; the row is emitted sorted by j."""
    out = {}
    for (i, k), a in zip(idx_a.T, val_a):
        for (k2, j), b in zip(idx_b.T, val_b):
            if k2 == k:
                out[(i, j)] = F32(out.get((i, j), F32(0)) + F32(a * b))
    keys = sorted(out)
    return np.array(keys, dtype=np.int64).reshape(-1, 2).T, np.array([out[q] for q in keys], dtype=F32)


def oracle_sddmm(idx, x32, y32):
    """``sum_j x[i, j] * y[k, j]`` as 8 interleaved partial sums combined pairwise."""
    out = []
    for i, k in idx.T:
        lanes = [F32(0)] * 8
        for j in range(x32.shape[1]):
            lanes[j % 8] = F32(lanes[j % 8] + F32(x32[i, j] * y32[k, j]))
        out.append(((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7])))
    return np.array(out, dtype=F32)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dt", HALF, ids=HALF_IDS)
def test_products_equal_the_numpy_float32_oracle(dt, backend, rng):
    inputs = make_inputs(rng, dt)
    (idx, raw), (idx2, raw2) = inputs["a"], inputs["a2"]
    b, c, s1, s2 = inputs["b"], inputs["c"], inputs["s1"], inputs["s2"]
    w = np.float32  # widening is exact: .astype(np.float32)
    with sr.use_backend(backend):
        a = sr.sparse_coo_tensor(idx, raw, (M, K))
        a2 = sr.sparse_coo_tensor(idx2, raw2, (K, N))
        # coalesce: the sums of duplicates in float32, in storage order, rounded once
        ci, cv = oracle_coalesce(idx, raw.astype(w))
        got = a.coalesce()
        assert np.array_equal(got.indices().numpy(), ci) and same16(got.values().numpy(), library_rounding(cv, dt))
        assert same16(a.to_dense().numpy(), library_rounding(oracle_spmm(ci, cv, np.eye(K, dtype=F32), M), dt))
        # the products read the coalesced operands as stored (in the half type)
        ci, cv = ci, got.values().numpy().astype(w)
        ci2, cv2 = oracle_coalesce(idx2, raw2.astype(w))
        cv2 = library_rounding(cv2, dt).astype(w)
        p32 = oracle_spmm(ci, cv, b.astype(w), M)
        assert same16(sr.sparse.mm(a, sr.tensor(b)).numpy(), library_rounding(p32, dt))
        assert same16(sr.sparse.mm(a.to_sparse_csr(), sr.tensor(b)).numpy(), library_rounding(p32, dt))
        # addmm: beta * M + alpha * P formed in float32 (beta, alpha as float32), rounded once
        want = c.astype(w) * F32(0.75) + p32 * F32(-1.25)
        got = sr.sparse.addmm(sr.tensor(c), a, sr.tensor(b), beta=0.75, alpha=-1.25).numpy()
        assert same16(got, library_rounding(want, dt))
        gi, gv = oracle_spgemm(ci, cv, ci2, cv2)
        got = sr.sparse.mm(a, a2)
        assert np.array_equal(got.indices().numpy(), gi) and same16(got.values().numpy(), library_rounding(gv, dt))
        # sampled_addmm: the SDDMM's float32 sums, then beta * input + alpha * them, rounded once
        want = cv * F32(0.5) + oracle_sddmm(ci, s1.astype(w), np.ascontiguousarray(s2.T).astype(w)) * F32(2.5)
        got = sr.sparse.sampled_addmm(a, sr.tensor(s1), sr.tensor(s2), beta=0.5, alpha=2.5)
        assert same16(got.values().numpy(), library_rounding(want, dt))


@pytest.mark.parametrize("dt", HALF, ids=HALF_IDS)
def test_long_sums_do_not_stall_where_torch_does(dt):
    """4096 products of ones: the contract's float32 sum is 4096, exact in both half
    types. torch 2.13's COO @ dense adds in the small type, where the running sum stalls at
    2048 (float16: 2048 + 1 rounds back to 2048) or 256 (bfloat16)."""
    a = sr.ones(1, 4096, dtype=dt).to_sparse()
    b = sr.ones(4096, 1, dtype=dt)
    assert sr.sparse.mm(a, b).tolist() == [[4096.0]]
    assert sr.sparse.mm(a, a.t()).to_dense().tolist() == [[4096.0]]
    torch = torch_or_skip()
    theirs = torch.sparse.mm(sr.to_torch(a), sr.to_torch(b))
    assert theirs.float().tolist() == [[2048.0 if dt == sr.float16 else 256.0]]


@pytest.mark.parametrize("dt", HALF, ids=HALF_IDS)
def test_sums_and_means_add_in_float32_and_round_once(dt, rng):
    """(probe) sum() and mean() of a half tensor, dense or sparse, over every dim or one:
    NumPy adds bfloat16 in bfloat16, where 3000 ones summed to 256 and their mean to
    0.085. Now each is the float32 sum (or mean) rounded once, as torch's dense sum and
    mean are; torch's sparse sum over one dim still adds in the half type (256)."""
    x32 = rng.uniform(0.5, 1.5, (300, 20)).astype(np.float32)
    x = sr.tensor(x32).to(dt)
    wide = x.numpy().astype(np.float32)
    cases = {"sum": (x.sum(), wide.sum()), "mean": (x.mean(), wide.mean()),
             "sum(0)": (x.sum(0), wide.sum(0)), "mean(1)": (x.mean(1), wide.mean(1)),
             "sparse sum": (x.to_sparse().sum(), wide.sum()),
             "sparse sum(0)": (x.to_sparse().sum(0).to_dense(), wide.sum(0)),
             "sparse sum(1), CSR": (x.to_sparse_csr().sum(1).to_dense(), wide.sum(1))}
    for name, (got, want) in cases.items():
        assert got.dtype == dt, name
        assert same16(got.numpy(), library_rounding(want, dt)), name
    ones = sr.ones(1, 3000, dtype=dt)
    assert ones.sum().item() == ones.to_sparse().sum().item() == ones.to_sparse().sum(1).values().item() \
        == library_rounding(3000.0, dt).item()
    assert ones.mean().item() == 1.0
    torch = torch_or_skip()
    t = torch.ones(1, 3000, dtype=torch_dtype(torch, dt))
    assert t.sum().item() == ones.sum().item() and t.mean().item() == 1.0


def torch_dtype(torch, dt):
    return {"float16": torch.float16, "bfloat16": torch.bfloat16}[dt.name]


@pytest.mark.parametrize("dt", HALF, ids=HALF_IDS)
def test_torch_parity_within_the_half_rounding(dt, rng):
    """Where torch 2.13 runs the op in the half type, ours agrees to the rounding of the
    small type: torch rounds every partial sum (error up to about one unit in the last
    place per addition), ours once. K = 9 additions at most, so the bound is 10 ulps of
    the sum of magnitudes."""
    torch = torch_or_skip()
    inputs = make_inputs(rng, dt)
    idx, raw = inputs["a"]
    eps = float(_dtypes.finfo(dt).eps)
    a = sr.sparse_coo_tensor(idx, raw, (M, K)).coalesce()
    abs_a = np.abs(a.to_dense().numpy().astype(F32))
    ta = sr.to_torch(a).requires_grad_()
    a.requires_grad_()
    b, tb = sr.tensor(inputs["b"], requires_grad=True), torch.tensor(inputs["b"].astype(np.float32)).to(
        torch_dtype(torch, dt)).requires_grad_()
    g = inputs["g_mn"]
    ours = sr.sparse.mm(a, b)
    ours.backward(sr.tensor(g))
    theirs = torch.sparse.mm(ta, tb)
    theirs.backward(torch.tensor(g.astype(np.float32)).to(torch_dtype(torch, dt)))
    scale_out = abs_a @ np.abs(inputs["b"].astype(F32))
    close(ours.detach().numpy(), theirs.detach().float().numpy(), 10 * eps * (scale_out + 1e-3))
    close(b.grad.numpy(), tb.grad.float().numpy(),
          10 * eps * (abs_a.T @ np.abs(g.astype(F32)) + 1e-3))
    ga = a.grad.coalesce()
    tga = ta.grad.coalesce()
    assert np.array_equal(ga.indices().numpy(), tga.indices().numpy())
    bound = np.abs(g.astype(F32)) @ np.abs(inputs["b"].astype(F32)).T
    close(ga.values().numpy(), tga.values().float().numpy(), 10 * eps * (bound[tuple(ga.indices().numpy())] + 1e-3))
    # addmm, dense @ sparse, coalesce, to_dense
    c = inputs["c"]
    got = sr.sparse.addmm(sr.tensor(c), a.detach(), b.detach(), beta=0.5, alpha=2.0).numpy()
    want = torch.sparse.addmm(torch.tensor(c.astype(F32)).to(torch_dtype(torch, dt)), ta.detach(), tb.detach(),
                              beta=0.5, alpha=2.0).float().numpy()
    close(got, want, 10 * eps * (2 * scale_out + np.abs(c.astype(F32)) + 1e-3))
    x = inputs["x"]
    got = sr.mm(sr.tensor(x), a.detach()).numpy()
    want = torch.mm(torch.tensor(x.astype(F32)).to(torch_dtype(torch, dt)), ta.detach()).float().numpy()
    close(got, want, 10 * eps * (np.abs(x.astype(F32)) @ abs_a + 1e-3))
    raw_a = sr.sparse_coo_tensor(idx, raw, (M, K))
    t_raw = sr.to_torch(raw_a)
    close(raw_a.to_dense().numpy(), t_raw.to_dense().float().numpy(),
          10 * eps * (sr.sparse_coo_tensor(idx, np.abs(raw.astype(F32)), (M, K)).to_dense().numpy() + 1e-3))
    close(raw_a.coalesce().values().numpy(), t_raw.coalesce().values().float().numpy(),
          10 * eps * (sr.sparse_coo_tensor(idx, np.abs(raw.astype(F32)), (M, K)).coalesce().values().numpy() + 1e-3))


def close(ours, theirs, bound):
    ours = np.asarray(ours).astype(F32)
    assert ours.shape == theirs.shape
    assert np.all(np.abs(ours - theirs) <= bound), np.max(np.abs(ours - theirs) - bound)


@pytest.mark.parametrize("dt", HALF, ids=HALF_IDS)
def test_products_torch_refuses_in_the_half_types_run_here(dt):
    """torch 2.13 has no half COO @ COO and no half CSR @ dense on the CPU; sparse_ref has
    both, with the contract's numerics."""
    torch = torch_or_skip()
    a = sr.sparse_coo_tensor([[0, 1, 1], [1, 0, 1]], [1.0, 2.0, 3.0], (2, 2), dtype=dt)
    b = sr.ones(2, 2, dtype=dt)
    name = "Half" if dt == sr.float16 else "BFloat16"
    with pytest.raises(RuntimeError, match=f'"sparse_matmul" not implemented for \'{name}\''):
        torch.sparse.mm(sr.to_torch(a), sr.to_torch(a))
    with pytest.raises(RuntimeError, match='"addmm_out_sparse_csr_impl_mkl" not implemented'):
        torch.sparse.mm(sr.to_torch(a.to_sparse_csr()), sr.to_torch(b))
    assert sr.sparse.mm(a, a).to_dense().tolist() == [[2.0, 3.0], [6.0, 11.0]]
    assert sr.sparse.mm(a.to_sparse_csr(), b).tolist() == [[1.0, 1.0], [5.0, 5.0]]


@pytest.mark.parametrize("dt", HALF, ids=HALF_IDS)
def test_the_cluster_refuses_half_types_with_a_clear_error(dt):
    srd = pytest.importorskip("sparse_ref.distributed")
    a = sr.sparse_coo_tensor([[0], [0]], [1.0], (1, 1), dtype=dt)
    with pytest.raises(TypeError, match=f"from_sparse: {dt.name} is not supported on a cluster"):
        srd.from_sparse(a, 1)


@pytest.mark.parametrize("dt", HALF, ids=HALF_IDS)
def test_to_scipy_says_scipy_has_no_half_types(dt):
    pytest.importorskip("scipy")
    with pytest.raises(TypeError, match=f"scipy.sparse has no {dt.name}; convert first"):
        sr.to_scipy(sr.sparse_coo_tensor([[0], [0]], [1.0], (1, 1), dtype=dt))


def test_course_checker_checks_the_rounding_kernels():
    results = check.check("sparse_ref._kernels", ["convert.round_to_float16", "convert.round_to_bfloat16"],
                          name="half-kernels")
    assert [r.status for r in results if not r.kernel.endswith("(gradients)")] == ["pass", "pass"]

    def truncating(a_bits, out_bits, n_threads=1):  # a student's first try: no rounding at all
        out_bits[:] = ((a_bits >> 16) & 0x8000) | (((a_bits & 0x7FFFFFFF) >> 13) - (112 << 10)) & 0x7FFF

    case, kwargs = next(iter(check.calls("convert", "round_to_float16")))
    found = check.compare_case("convert", "round_to_float16", kwargs, truncating)
    assert found is not None and found[0] == "out_bits" and found[1].startswith("differs, first at [0]: yours 16384")


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_hybrid_blocks_of_a_half_type_are_summed_in_float32(name):
    # Duplicated value blocks of a hybrid tensor follow the same rule as single values:
    # summed in float32 in storage order, rounded once. In the small type itself, each
    # 1 + 2**-11 (float16) or 1 + 2**-8 (bfloat16) would tie back down to 1.
    dt = getattr(sr, name)
    tiny = 2.0 ** (-11 if name == "float16" else -8)
    blocks = np.array([[1.0, 2.0]] + [[tiny, 1.0]] * 8, dtype=np.float32)
    s = sr.sparse_coo_tensor([[0] * 9, [1] * 9], sr.tensor(blocks).to(dt), (2, 2, 2))
    acc = blocks[0].copy()
    for block in blocks[1:]:
        acc = acc + block  # float32, storage order
    want = sr.tensor(acc).to(dt).numpy()
    for backend in ("reference", "cython"):
        with sr.use_backend(backend):
            got = s.coalesce().values().numpy()[0]
            assert got.tobytes() == want.tobytes()
            assert s.to_dense().numpy()[0, 1].tobytes() == want.tobytes()
    assert float(want[0].astype(np.float32)) > 1.0


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_batched_products_of_a_half_type_equal_each_batch_alone(name):
    # the batched products (one block-diagonal 2-D product) take the half types as the
    # 2-D ones do: batch b is bit for bit the 2-D product of batch b, sparse x sparse too
    dt = getattr(sr, name)
    rng = np.random.default_rng(7)
    dense = rng.standard_normal((3, 4, 4)) * (rng.random((3, 4, 4)) < 0.5)
    a = sr.tensor(dense).to(dt).to_sparse()
    x = sr.tensor(rng.standard_normal((3, 4, 2))).to(dt)
    both = sr.bmm(a, a).to_dense().numpy()
    mixed = sr.bmm(a, x).numpy()
    for b in range(3):
        ab = sr.tensor(dense[b]).to(dt).to_sparse()
        assert sr.sparse.mm(ab, ab).to_dense().numpy().tobytes() == both[b].tobytes()
        assert sr.sparse.mm(ab, sr.tensor(x.numpy()[b])).numpy().tobytes() == mixed[b].tobytes()


def test_a_value_that_rounds_to_the_largest_half_is_kept_and_one_that_rounds_to_inf_is_refused():
    # 65504 is float16's largest value and 32 its last step there: below 65520 a value rounds
    # to 65504 (as in torch), from 65520 up to inf (refused, integers as well as floats)
    from sparse_ref._errors import ConversionError

    assert sr.tensor([65510.0, 65519.99, -65519.0]).half().tolist() == [65504.0, 65504.0, -65504.0]
    for bad in ([65520.0], [-70000.0]):
        with pytest.raises(ConversionError, match="overflow"):
            sr.tensor(bad).half()
    with pytest.raises(ConversionError, match="overflow"):
        sr.tensor([70000], dtype=sr.float16)
    with pytest.raises(ConversionError, match="overflow"):
        sr.sparse_coo_tensor([[0], [0]], [100000], (1, 1)).half()
    if sr.bfloat16 is not None:
        big = float(np.finfo(np.float32).max)  # rounds to inf in bfloat16 (its max is 3.3895e38)
        with pytest.raises(ConversionError, match="overflow"):
            sr.tensor([big]).bfloat16()
        assert sr.tensor([3.39e38]).bfloat16().numpy().astype(np.float32)[0] == np.float32(3.3895313892515355e38)


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_sparse_softmax_refuses_the_half_types_as_torch_does(name):
    s = sr.sparse_coo_tensor([[0, 0, 1], [0, 1, 1]], [1.0, 2.0, 3.0], (2, 2), dtype=getattr(sr, name))
    for fn in (sr.sparse.softmax, sr.sparse.log_softmax):
        with pytest.raises(Exception, match="not implemented for"):
            fn(s, 1)


# -- found by a probe: dense products in bfloat16 came back in float32 (ml_dtypes' matmul) -------

@pytest.mark.parametrize("dt", HALF, ids=HALF_IDS)
def test_dense_products_keep_the_half_type_and_round_once(dt, rng):
    a32 = rng.standard_normal((2, 5, 7)).astype(np.float32)
    b32 = rng.standard_normal((7, 3)).astype(np.float32)
    a = sr.tensor(a32).to(dt)
    b = sr.tensor(b32).to(dt)
    want = ref_narrow(np.matmul(a.float().numpy(), b.float().numpy()), dt)
    for got in (a @ b, sr.matmul(a, b), sr.bmm(a, sr.stack([b, b]))):
        assert got.dtype == dt
        assert np.array_equal(got.numpy().view(np.uint16), want.view(np.uint16))
    x = a[0].detach().requires_grad_(True)
    w = b.detach().requires_grad_(True)
    (x @ w).sum().backward()
    assert x.grad.dtype == dt and w.grad.dtype == dt
    g = np.ones((5, 3), np.float32)
    assert np.array_equal(x.grad.numpy().view(np.uint16),
                          ref_narrow(g @ b.float().numpy().T, dt).view(np.uint16))
    lin = sr.nn.Linear(7, 3, dtype=dt)
    assert lin(a[0]).dtype == dt


def ref_narrow(x: np.ndarray, dt) -> np.ndarray:
    """float32 values rounded once to ``dt`` by the reference kernel."""
    bits = np.ascontiguousarray(x, dtype=np.float32).reshape(-1).view(np.uint32)
    out = np.empty(bits.shape[0], np.uint16)
    getattr(ref_convert, "round_to_" + dt.name)(bits, out)
    return out.view(dt).reshape(x.shape)


@pytest.mark.parametrize("dt", HALF, ids=HALF_IDS)
def test_randint_refuses_what_the_half_type_cannot_hold(dt):
    exact = 2048 if dt == sr.float16 else 256  # every integer up to it is exact in dt, not beyond
    for high in (10**6 if dt == sr.float16 else 2**130, exact + 4):  # inf there; rounded (to high, say)
        with pytest.raises(ConversionError, match="cannot hold exactly"):
            sr.randint(exact - 8 if high == exact + 4 else 0, high, (4,), dtype=dt)
    x = sr.randint(-exact, exact + 1, (2000,), dtype=dt)
    assert x.dtype == dt and -exact <= float(x.min()) <= float(x.max()) <= exact


def test_randint_refuses_a_float_range_it_would_round():
    # float32 holds every integer up to 2**24: beyond, a draw could round to high itself
    with pytest.raises(ConversionError, match="cannot hold exactly"):
        sr.randint(2**24, 2**24 + 8, (10,), dtype=sr.float32)
    x = sr.randint(2**24 - 8, 2**24 + 1, (2000,), dtype=sr.float32)
    assert float(x.max()) <= 2**24


# -- a number meets a half tensor in float32, and the result is rounded once ----------------

SCALAR_OPS = {  # name: (the op on a tensor, the op on float32 arrays)
    "x * c": (lambda a, c: a * c, np.multiply),
    "c * x": (lambda a, c: c * a, lambda a, c: np.multiply(c, a)),
    "x / c": (lambda a, c: a / c, np.divide),
    "c / x": (lambda a, c: c / a, lambda a, c: np.divide(c, a)),
    "x + c": (lambda a, c: a + c, np.add),
    "x - c": (lambda a, c: a - c, np.subtract),
    "c - x": (lambda a, c: c - a, lambda a, c: np.subtract(c, a)),
}


@pytest.mark.parametrize("dt", HALF, ids=HALF_IDS)
@pytest.mark.parametrize("op", SCALAR_OPS)
def test_a_number_meets_a_half_tensor_in_float32_rounded_once(dt, op):
    """``x16 / 1.0007`` divided by 1.0007 rounded to float16 first (1.0009765625): an ulp
    off in a third of the results. Now every arithmetic op with a number computes in
    float32 and rounds once, dense and sparse, forward, in place and backward: in this
    test the results are the exact ones rounded to the half type, except where the
    number itself is not a float32."""
    tensor_op, float32_op = SCALAR_OPS[op]
    rng = np.random.default_rng(5)
    v32 = sr.tensor(rng.standard_normal(600).astype(np.float32)).to(dt).to(sr.float32).numpy()
    for c in [1.0007, 0.3, 3.0, 1e-3, 1e5]:
        expected = library_rounding(float32_op(v32, np.float32(c)), dt)
        got = tensor_op(sr.tensor(v32).to(dt), c).numpy()
        assert same16(got, expected), (op, c)
        if op in ("x * c", "c * x", "x / c"):  # the sparse ops torch has
            s = sr.tensor(v32).to(dt).to_sparse()
            assert same16(tensor_op(s, c).to_dense().numpy(), expected), (op, c, "sparse")
        if op in ("x * c", "x / c", "x + c", "x - c"):
            y = sr.tensor(v32).to(dt)
            getattr(y, {"*": "mul_", "/": "div_", "+": "add_", "-": "sub_"}[op[2]])(c)
            assert same16(y.numpy(), expected), (op, c, "in place")


@pytest.mark.parametrize("dt", HALF, ids=HALF_IDS)
def test_half_scalar_ops_match_torch_where_torch_computes_in_float32(dt):
    """torch computes dense x * c, x / c and sparse s / c in float32 (its opmath type): the
    same bits as ours, gradients included. (It rounds c to the half type first in x + c,
    x - c and sparse s * c, and computes c / x as reciprocal(x) * c: ours are the correctly
    rounded ones there, see docs/numerics.rst.)"""
    torch = torch_or_skip()
    tdt = getattr(torch, dt.name)
    v = np.random.default_rng(6).standard_normal(400).astype(np.float32)
    for c in [1.0007, 0.3, 1e-3]:
        x = sr.tensor(v).to(dt).requires_grad_(True)
        tx = torch.from_numpy(v).to(tdt).requires_grad_(True)
        y, ty = (x * c) / (c * 3), (tx * c) / (c * 3)
        assert same16(y.detach().numpy(), library_rounding(ty.detach().float().numpy(), dt))
        y.sum().backward()
        ty.sum().backward()
        assert same16(x.grad.numpy(), library_rounding(tx.grad.float().numpy(), dt))
        s = sr.tensor(v).to(dt).to_sparse()
        ts = torch.from_numpy(v).to(tdt).to_sparse()
        assert same16((s / c).to_dense().numpy(), library_rounding((ts / c).to_dense().float().numpy(), dt))


@pytest.mark.parametrize("dt", HALF, ids=HALF_IDS)
def test_a_number_the_half_type_cannot_hold_still_scales_a_half_tensor(dt):
    """``x16 / 1e5`` was refused (1e5 is beyond float16's 65504); the quotient fits."""
    x = sr.tensor([3.0, -2.0]).to(dt)
    assert same16((x / 1e5).numpy(), library_rounding(np.float32([3.0, -2.0]) / np.float32(1e5), dt))
    with pytest.raises(ConversionError):
        x * 1e40  # beyond float32 as well: refused, never taken as inf


@pytest.mark.parametrize("dt", HALF, ids=HALF_IDS)
def test_type_by_name_of_a_half_type(dt):
    # x.type(y.type()) refused "sparse_ref.BFloat16Tensor" as an invalid type
    y = sr.tensor([1.5, -2.], dtype=dt)
    for name in (y.type(), "torch." + y.type().rpartition(".")[2]):
        x = sr.tensor([1.5, -2.]).type(name)
        assert x.dtype == dt and x.tolist() == [1.5, -2.]

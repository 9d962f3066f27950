"""Gradients: the torch doc example, gradcheck of every op (float64 and complex128, both
paths, awkward inputs), torch 2.13 parity, masked patterns, the engine's rules, memory."""

import numpy as np
import pytest
from conftest import random_dense, random_sparse, same_bits, torch_or_skip

import sparse_ref as sr
from sparse_ref.autograd import gradcheck

F64, C128 = sr.float64, sr.complex128


@pytest.fixture(params=["reference", "cython"])
def backend(request):
    with sr.use_backend(request.param):
        yield request.param


def leaf(t):
    return t.detach().requires_grad_(True)


# -- the doc example ---------------------------------------------------------------------------

def test_torch_doc_example_runs_as_written():
    a = sr.randn(2, 3).to_sparse().requires_grad_(True)
    b = sr.randn(3, 2, requires_grad=True)
    y = sr.sparse.mm(a, b)
    assert y.grad_fn.name() == "SparseAddmmBackward0"
    y.sum().backward()
    assert isinstance(a.grad, sr.SparseTensor) and a.grad.is_coalesced()
    assert a.grad.indices().tolist() == a.indices().tolist()
    rows_of_b = b.detach().numpy().sum(axis=1)
    np.testing.assert_allclose(a.grad.values().numpy(), rows_of_b[a.indices().numpy()[1]], rtol=1e-6)
    cols_of_a = a.detach().to_dense().numpy().sum(axis=0)
    np.testing.assert_allclose(b.grad.numpy(), np.repeat(cols_of_a[:, None], 2, axis=1), rtol=1e-6)


def test_uncoalesced_mat1_gets_the_coalesced_pattern():
    a = sr.sparse_coo_tensor([[1, 0, 1, 0], [0, 2, 0, 1]], [1.0, 2.0, 3.0, 0.0], (2, 3), dtype=F64,
                             requires_grad=True)
    b = sr.randn(3, 2, dtype=F64, requires_grad=True)
    sr.sparse.mm(a, b).sum().backward()
    assert a.grad._nnz() == 3 and a.grad.is_coalesced()
    assert a.grad.indices().tolist() == [[0, 0, 1], [1, 2, 0]]  # the explicit zero keeps a gradient
    np.testing.assert_allclose(a.grad.values().numpy(), b.detach().numpy().sum(axis=1)[[1, 2, 0]])


# -- gradcheck of every op, both paths, real and complex ----------------------------------------

def awkward_sparse(rng, shape, dtype):
    """Duplicates, an explicit zero and an empty row."""
    s = random_sparse(rng, shape, 3 * shape[0], dtype)
    idx, val = s._indices().numpy().copy(), s._values().numpy().copy()
    idx[0][idx[0] == 1] = 0  # row 1 empty
    idx[:, 1] = idx[:, 0]    # a duplicate
    val[2] = 0               # an explicit zero
    return sr.sparse_coo_tensor(idx, val, shape, requires_grad=True)


OPS = {
    "mm": (lambda a, b: sr.sparse.mm(a, b), "sd"),
    "mm_mean": (lambda a, b: sr.sparse.mm(a, b, reduce="mean"), "sd"),
    "spgemm": (lambda a, c: sr.sparse.mm(a, c), "ss"),
    "spgemm_dense_loss": (lambda a, c: sr.sparse.mm(a, c).to_dense(), "ss"),
    "dense_sparse": (lambda x, a: sr.sparse.mm(x, a), "xs"),
    "addmm": (lambda m, a, b: sr.sparse.addmm(m, a, b, beta=0.5, alpha=-2.0), "msd"),
    "sampled_addmm": (lambda a, x, y: sr.sparse.sampled_addmm(a, x, y, beta=0.5, alpha=2.0), "sxy"),
    "to_dense": (lambda a: a.to_dense(), "s"),
    "coalesce": (lambda a: a.coalesce(), "s"),
    "values": (lambda a: a.coalesce().values(), "s"),
    "transpose": (lambda a: a.t(), "s"),
    "sparse_sum": (lambda a: a.sum(), "s"),
    "to_sparse": (lambda x: x.to_sparse(), "x"),
}


def operands(kinds, rng, dtype):
    shapes = {"s": (4, 3), "d": (3, 5), "x": (2, 4), "m": (1, 5), "y": (4, 3)}
    out = []
    for k in kinds:
        if k == "s":
            out.append(awkward_sparse(rng, (4, 3), dtype))
        elif k == "ss":
            pass
        elif k == "x" and kinds == "sxy":
            out.append(leaf(random_dense(rng, (4, 6), dtype)))
        elif k == "y":
            out.append(leaf(random_dense(rng, (6, 3), dtype)))
        else:
            out.append(leaf(random_dense(rng, shapes[k], dtype)))
    if kinds == "ss":
        out = [awkward_sparse(rng, (4, 3), dtype), awkward_sparse(rng, (3, 5), dtype)]
    return out


@pytest.mark.parametrize("dtype", [F64, C128])
@pytest.mark.parametrize("op", sorted(OPS))
def test_gradcheck_every_op(op, dtype, backend, rng):
    fn, kinds = OPS[op]
    assert gradcheck(fn, operands(kinds, rng, dtype))


@pytest.mark.parametrize("reduce", ["sum", "mean", "amax", "amin"])
def test_gradcheck_reduce(reduce, backend, rng):
    a = awkward_sparse(rng, (4, 3), F64)
    b = leaf(random_dense(rng, (3, 5), F64))
    assert gradcheck(lambda a, b: sr.sparse.mm(a, b, reduce=reduce), (a, b))


def test_gradcheck_complex_scalars_follow_the_math(rng):
    m = leaf(random_dense(rng, (4, 5), C128))
    a = awkward_sparse(rng, (4, 3), C128)
    b = leaf(random_dense(rng, (3, 5), C128))
    assert gradcheck(lambda m, a, b: sr.sparse.addmm(m, a, b, beta=0.5 - 1j, alpha=2 + 0.5j), (m, a, b))
    x, y = leaf(random_dense(rng, (4, 6), C128)), leaf(random_dense(rng, (6, 3), C128))
    assert gradcheck(lambda a, x, y: sr.sparse.sampled_addmm(a, x, y, beta=1j, alpha=2 - 1j), (a, x, y))


def test_gradcheck_dense_ops(rng):
    x = leaf(random_dense(rng, (3, 4), F64))
    w = leaf(random_dense(rng, (4, 2), F64))
    assert gradcheck(lambda x, w: ((x @ w) * 2.0 - x.sum() + (-(w.t() @ x.t())).t() ** 2).mean(0), (x, w))
    assert gradcheck(lambda x: (1.0 - x * x + 3.0).sum(1, keepdim=True) - x.mean(), (x,))


@pytest.mark.parametrize("shape_a,shape_b", [((0, 3), (3, 2)), ((3, 0), (0, 2)), ((3, 2), (2, 0))])
def test_gradients_of_zero_size_operands(shape_a, shape_b):
    a = sr.sparse_coo_tensor(np.zeros((2, 0), np.int64), np.zeros(0), shape_a, requires_grad=True)
    b = sr.zeros(*shape_b, dtype=F64, requires_grad=True)
    sr.sparse.mm(a, b).sum().backward()
    assert a.grad._nnz() == 0 and a.grad.shape == shape_a
    assert b.grad.shape == shape_b and not b.grad.numpy().any()


def test_nnz_zero_operand_gets_an_empty_gradient(rng):
    a = sr.sparse_coo_tensor(np.zeros((2, 0), np.int64), np.zeros(0), (3, 4), requires_grad=True)
    b = leaf(random_dense(rng, (4, 2), F64))
    sr.sparse.mm(a, b).sum().backward()
    assert a.grad._nnz() == 0 and not b.grad.numpy().any()
    assert gradcheck(sr.sparse.mm, (a.detach().requires_grad_(), leaf(b)))


def test_both_paths_give_the_same_gradient_bits(rng):
    a0 = awkward_sparse(rng, (30, 20), F64)
    b0 = random_dense(rng, (20, 9), F64)
    c0 = awkward_sparse(rng, (20, 12), F64)
    grads = {}
    for backend in ("reference", "cython"):
        with sr.use_backend(backend):
            a, b, c = leaf(a0), leaf(b0), leaf(c0)
            (sr.sparse.mm(a, b).sum() + sr.sparse.mm(a, c).sum()).backward()
            grads[backend] = (a.grad.values().numpy(), b.grad.numpy(), c.grad.values().numpy())
    assert all(same_bits(x, y) for x, y in zip(grads["reference"], grads["cython"]))


@pytest.mark.parametrize("dtype", [np.float32, F64, C128, np.float16])
@pytest.mark.parametrize("backend", ["reference", "cython"])
@pytest.mark.parametrize("loss", ["sum", "mean"])
def test_a_sum_or_means_broadcast_gradient_gives_the_bits_of_the_full_one(dtype, backend, loss, rng):
    # sum()/mean() hand back a broadcast view (every row the same memory); mm's backward
    # then reads that one row instead of an n x k copy (sparse_ops.same_rows). The
    # gradients must be the bits of backward(G) with G materialized; CSR too
    a0 = awkward_sparse(rng, (30, 20), dtype)
    b0 = random_dense(rng, (20, 9), dtype)
    for make in (lambda t: t, lambda t: t.coalesce().to_sparse_csr()):
        got = []
        with sr.use_backend(backend):
            for full in (False, True):
                a, b = leaf(make(a0)), leaf(b0)
                y = sr.sparse.mm(a, b)
                if full:
                    g = np.full(y.shape, 1.0 if loss == "sum" else 1.0 / (30 * 9))
                    y.backward(sr.tensor(np.ascontiguousarray(g.astype(y.dtype))))
                else:  # (a complex loss needs its seed given, as in torch)
                    out = getattr(y, loss)()
                    out.backward(sr.ones_like(out) if np.dtype(dtype).kind == "c" else None)
                got.append((a.grad.values().numpy(), b.grad.numpy()))
        (ga, gb), (fa, fb) = got
        assert same_bits(ga, fa) and same_bits(gb, fb)
        assert gb.flags.writeable and gb.flags.c_contiguous  # .grad is its own array


def test_backward_reads_the_given_gradient_without_copying_it_and_no_grad_aliases_it(rng):
    # backward(G) passes G on as a read-only view (torch passes G itself); every .grad that
    # could end up holding it is its own copy, so changing G afterwards changes nothing
    g_np = rng.standard_normal((6, 4))
    g = sr.tensor(g_np)
    x = sr.tensor(rng.standard_normal((6, 4)), requires_grad=True)
    a = awkward_sparse(rng, (6, 5), F64).requires_grad_(True)
    b = sr.tensor(rng.standard_normal((5, 4)), requires_grad=True)
    for make in (lambda: x, lambda: x + 0.0, lambda: x + sr.sparse.mm(a, b)):
        for t in (x, a, b):
            t.grad = None
        y = make()
        y.backward(g)
        np.testing.assert_array_equal(x.grad.numpy(), g_np)
        assert not np.shares_memory(x.grad.numpy(), g.numpy())
        assert x.grad.numpy().flags.writeable
    before = (a.grad.values().numpy().copy(), b.grad.numpy().copy())
    g.numpy()[...] = 7.0  # the caller changes G afterwards: no gradient moves
    np.testing.assert_array_equal(x.grad.numpy(), g_np)
    assert same_bits(a.grad.values().numpy(), before[0]) and same_bits(b.grad.numpy(), before[1])


def test_a_function_of_your_own_may_change_its_incoming_gradient_in_place():
    # sparse_ref's ops get read-only views (backward(G)'s G, sum()'s broadcast); a Function
    # of your own gets an array it may scale in place, and the caller's G stays as it was
    class Double(sr.autograd.Function):
        def forward(self, x):
            return sr.Tensor(x._data * 2)

        def backward(self, grad):
            grad *= 2
            return (grad,)

    g = sr.tensor([[1.0, 2.0], [3.0, 4.0]])
    for loss in ("sum", "mean", "G"):
        x = sr.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        y = Double.apply(x)
        y.backward(g) if loss == "G" else getattr(y, loss)().backward()
        want = {"sum": np.full((2, 2), 2.0), "mean": np.full((2, 2), 0.5), "G": 2 * g.numpy()}[loss]
        np.testing.assert_array_equal(x.grad.numpy(), want)
    np.testing.assert_array_equal(g.numpy(), [[1.0, 2.0], [3.0, 4.0]])


@pytest.mark.parametrize("n", [70000, 2049, 5003])
def test_a_half_means_gradient_divides_in_float32_as_torch(n):
    # G / n with n in float16 was inf for n > 65504 (gradient 0) and one unit off elsewhere
    torch = torch_or_skip()
    x = sr.zeros(n, dtype=sr.float16).requires_grad_(True)
    x.mean().backward()
    t = torch.zeros(n, dtype=torch.float16, requires_grad=True)
    t.mean().backward()
    assert same_bits(x.grad.numpy(), t.grad.numpy())


# -- torch parity ---------------------------------------------------------------------------------

def torch_leaf(torch, t):
    out = sr.to_torch(t.detach())
    return out.requires_grad_(True)


@pytest.mark.parametrize("dtype", [F64, C128])
def test_coo_times_dense_gradients_match_torch(dtype, rng):
    torch = torch_or_skip()
    a, b = awkward_sparse(rng, (5, 4), dtype), leaf(random_dense(rng, (4, 3), dtype))
    ta, tb = torch_leaf(torch, a), torch_leaf(torch, b)
    g = random_dense(rng, (5, 3), dtype)
    sr.sparse.mm(a, b).backward(g)
    torch.sparse.mm(ta, tb).backward(torch.from_numpy(g.numpy()))
    tg = ta.grad.coalesce()
    assert a.grad.indices().tolist() == tg.indices().tolist()  # exact indices
    np.testing.assert_allclose(a.grad.values().numpy(), tg.values().numpy(), rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-12)


def test_addmm_gradients_match_torch_for_real_scalars(rng):
    torch = torch_or_skip()
    m, a, b = leaf(random_dense(rng, (1, 3), F64)), awkward_sparse(rng, (5, 4), F64), leaf(random_dense(rng, (4, 3), F64))
    tm, ta, tb = torch_leaf(torch, m), torch_leaf(torch, a), torch_leaf(torch, b)
    sr.sparse.addmm(m, a, b, beta=0.5, alpha=3.0).sum().backward()
    torch.sparse.addmm(tm, ta, tb, beta=0.5, alpha=3.0).sum().backward()
    np.testing.assert_allclose(m.grad.numpy(), tm.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(a.grad.values().numpy(), ta.grad.coalesce().values().numpy(), rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("reduce", ["sum", "mean", "amax", "amin"])
def test_reduce_gradients_match_torch_csr(reduce, rng):
    torch = torch_or_skip()
    a = random_sparse(rng, (6, 5), 18, F64, explicit_zeros=False).coalesce().detach().requires_grad_()
    b = leaf(random_dense(rng, (5, 3), F64))
    ta = sr.to_torch(a.detach()).to_sparse_csr().requires_grad_(True)
    tb = torch_leaf(torch, b)
    g = random_dense(rng, (6, 3), F64)
    sr.sparse.mm(a, b, reduce=reduce).backward(g)
    torch.sparse.mm(ta, tb, reduce).backward(torch.from_numpy(g.numpy()))
    np.testing.assert_allclose(a.grad.values().numpy(), ta.grad.values().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_sampled_addmm_gradients_match_torch_csr(rng):
    torch = torch_or_skip()
    s = random_sparse(rng, (5, 4), 9, F64, explicit_zeros=False).coalesce().detach().requires_grad_()
    x, y = leaf(random_dense(rng, (5, 6), F64)), leaf(random_dense(rng, (6, 4), F64))
    ts = sr.to_torch(s.detach()).to_sparse_csr().requires_grad_(True)
    tx, ty = torch_leaf(torch, x), torch_leaf(torch, y)
    sr.sparse.sampled_addmm(s, x, y, beta=0.5, alpha=2.0).sum().backward()
    torch.sparse.sampled_addmm(ts, tx, ty, beta=0.5, alpha=2.0).sum().backward()
    # torch 2.13 returns this gradient dense (strided); compare it at s's stored positions
    rows, cols = s.indices().numpy()
    tg = ts.grad.to_dense() if ts.grad.layout != torch.strided else ts.grad
    np.testing.assert_allclose(s.grad.values().numpy(), tg.numpy()[rows, cols], rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(y.grad.numpy(), ty.grad.numpy(), rtol=1e-12)


def test_coo_times_coo_with_a_sparse_gradient_matches_torch(rng):
    torch = torch_or_skip()
    a = random_sparse(rng, (5, 4), 9, F64, explicit_zeros=False).coalesce().detach().requires_grad_()
    c = random_sparse(rng, (4, 6), 10, F64, explicit_zeros=False).coalesce().detach().requires_grad_()
    ta, tc = torch_leaf(torch, a), torch_leaf(torch, c)
    z, tz = sr.sparse.mm(a, c), torch.sparse.mm(ta, tc)
    g_vals = rng.standard_normal(z._nnz())
    g = sr.sparse_coo_tensor(z.indices().numpy(), g_vals, z.shape)
    z.backward(g)
    tz.backward(torch.sparse_coo_tensor(tz.indices(), torch.from_numpy(g_vals), tz.shape))
    # torch's gradient pattern follows a heuristic; compare the dense values
    np.testing.assert_allclose(a.grad.to_dense().numpy(), ta.grad.to_dense().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c.grad.to_dense().numpy(), tc.grad.to_dense().numpy(), rtol=1e-12, atol=1e-14)


# -- where sparse_ref does better than torch -------------------------------------------------------

@pytest.mark.parametrize("loss", ["sum", "to_dense_sum"])
def test_sparse_times_sparse_backward_with_a_dense_gradient(loss, rng):
    a, c = awkward_sparse(rng, (4, 3), F64), awkward_sparse(rng, (3, 5), F64)
    z = sr.sparse.mm(a, c)
    (z.sum() if loss == "sum" else z.to_dense().sum()).backward()
    for t in (a, c):
        assert t.grad.is_coalesced()
        assert t.grad.indices().tolist() == t.coalesce().indices().tolist()
    # the masked rule, by hand: grad_a = mask(G @ c^T), G = ones on z's pattern
    g = (z.detach().to_dense().numpy() != 0) | np.isin(np.arange(20).reshape(4, 5), [])
    zi = z.detach().coalesce().indices().numpy()
    g = np.zeros((4, 5))
    g[zi[0], zi[1]] = 1
    rows, cols = a.coalesce().indices().numpy()
    np.testing.assert_allclose(a.grad.values().numpy(), (g @ c.detach().to_dense().numpy().T)[rows, cols])


def test_backward_from_a_sparse_output_with_a_dense_gradient(rng):
    a, c = awkward_sparse(rng, (4, 3), F64), awkward_sparse(rng, (3, 5), F64)
    z = sr.sparse.mm(a, c)
    g = random_dense(rng, (4, 5), F64)
    z.backward(g)  # masked to z's pattern
    a2, c2 = leaf(a), leaf(c)
    z2 = sr.sparse.mm(a2, c2)
    zc = z2.detach().coalesce()
    masked = sr.sparse_coo_tensor(zc.indices().numpy(), g.numpy()[tuple(zc.indices().numpy())], z2.shape)
    z2.backward(masked)
    assert same_bits(a.grad.values().numpy(), a2.grad.values().numpy())


def test_huge_sparse_backward_never_builds_a_dense_m_by_k_matrix():
    """Memory is decided above the kernels (what gets allocated), so one path shows it; the
    Cython one is used because the reference loops over 2**20 rows in Python. The time is
    measured in benchmarks/bench_autograd.py, not asserted here."""
    import tracemalloc

    n = 2**20
    a = sr.sparse_coo_tensor([[0, 5, n - 1], [n - 1, 3, 0]], [1.0, 2.0, 3.0], (n, n), dtype=F64,
                             requires_grad=True)
    b = sr.ones(n, 4, dtype=F64, requires_grad=True)
    tracemalloc.start()
    with sr.use_backend("cython"):
        sr.sparse.mm(a, b).sum().backward()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # a dense n x n gradient would be 8 TiB; the masked one needs a few n x 4 arrays
    assert peak < 200 * 2**20, peak
    assert a.grad.values().tolist() == [4.0, 4.0, 4.0]
    assert b.grad.numpy()[[n - 1, 3, 0], 0].tolist() == [1.0, 2.0, 3.0] and b.grad.numpy().sum() == 24.0


# -- engine rules ----------------------------------------------------------------------------------

def test_gradients_accumulate_across_backward_calls(rng):
    a, b = awkward_sparse(rng, (4, 3), F64), leaf(random_dense(rng, (3, 2), F64))
    sr.sparse.mm(a, b).sum().backward()
    first_a, first_b = a.grad.values().numpy().copy(), b.grad.numpy().copy()
    sr.sparse.mm(a, b).sum().backward()
    np.testing.assert_allclose(a.grad.values().numpy(), 2 * first_a)
    np.testing.assert_allclose(b.grad.numpy(), 2 * first_b)


def test_graph_is_freed_unless_retained(rng):
    a, b = awkward_sparse(rng, (4, 3), F64), leaf(random_dense(rng, (3, 2), F64))
    y = sr.sparse.mm(a, b).sum()
    y.backward(retain_graph=True)
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_backward_errors_like_torch(rng):
    x = leaf(random_dense(rng, (2, 2), F64))
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        (x * 2.0).backward()
    with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad"):
        random_dense(rng, (1,), F64).sum().backward()
    with pytest.raises(RuntimeError, match="gradient must be a dense tensor of shape"):
        (x * 2.0).backward(sr.ones(3, dtype=F64))


@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_a_gradient_of_another_dtype_is_cast_as_torch_casts_it(layout):
    """(probe) backward(G) with G float64 or int64 for a float32 output was refused; torch
    casts G to the output's dtype. A value it cannot hold is refused, as everywhere."""
    base = sr.tensor([[1.0, 0.0], [2.0, 3.0]])
    x = (base.to_sparse() if layout == "sparse" else base).requires_grad_(True)
    dense = (lambda t: t.to_dense()) if layout == "sparse" else (lambda t: t)
    for g in (sr.ones(2, 2, dtype=sr.float64), sr.tensor(np.ones((2, 2), np.int64))):
        x.grad = None
        (x * 3.0).backward(g)
        want = [[3.0, 0.0], [3.0, 3.0]] if layout == "sparse" else [[3.0, 3.0], [3.0, 3.0]]  # (x's pattern)
        assert x.grad.dtype == sr.float32 and dense(x.grad).tolist() == want
    for bad, error in ((sr.full((2, 2), 1e300, dtype=sr.float64), "overflow"),
                       (sr.tensor(np.full((2, 2), 1 + 1j)), "imaginary")):
        with pytest.raises((TypeError, ValueError), match=error):
            (x * 3.0).backward(bad)
    torch = torch_or_skip()
    tx = torch.tensor([[1.0, 0.0], [2.0, 3.0]], requires_grad=True)
    (tx * 3.0).backward(torch.ones(2, 2, dtype=torch.float64))
    assert tx.grad.dtype == torch.float32


def test_no_grad_records_nothing(rng):
    a, b = awkward_sparse(rng, (4, 3), F64), leaf(random_dense(rng, (3, 2), F64))
    with sr.no_grad():
        y = sr.sparse.mm(a, b)
    assert not y.requires_grad and y.grad_fn is None


def test_grad_fn_names_and_repr(rng):
    a, b = awkward_sparse(rng, (4, 3), F64), leaf(random_dense(rng, (3, 2), F64))
    names = {
        "SparseAddmmBackward0": sr.sparse.mm(a, b),
        "SparseMmReduceImplBackward0": sr.sparse.mm(a, b, reduce="amax"),
        "SparseSparseMatmulBackward0": sr.sparse.mm(a, a.t()),
        "SparseSampledAddmmBackward0": sr.sparse.sampled_addmm(a, leaf(random_dense(rng, (4, 2), F64)), b.t()),
        "SumBackward0": b.sum(),
        "ToDenseBackward0": a.to_dense(),
        "MulBackward0": b * 2.0,
    }
    for name, t in names.items():
        assert t.grad_fn.name() == name
    assert repr(sr.sparse.mm(a, b)).endswith("grad_fn=<SparseAddmmBackward0>)")


def test_ops_do_not_mutate_inputs_in_backward(rng):
    a, b = awkward_sparse(rng, (4, 3), F64), leaf(random_dense(rng, (3, 2), F64))
    saved = a._values().numpy().copy(), b.detach().numpy().copy()
    sr.sparse.mm(a, b, reduce="amax").sum().backward()
    assert same_bits(a._values().numpy(), saved[0]) and same_bits(b.detach().numpy(), saved[1])


def test_gradcheck_reports_a_wrong_gradient(monkeypatch, rng):
    from sparse_ref.autograd import sparse_ops

    original = sparse_ops.ToDense.backward
    monkeypatch.setattr(sparse_ops.ToDense, "backward", lambda self, g: (2 * original(self, g)[0],))
    a = awkward_sparse(rng, (3, 3), F64)
    with pytest.raises(AssertionError, match="gradcheck: input 0 \\(sparse\\)"):
        gradcheck(lambda a: a.to_dense(), (a,))


# -- review findings, pinned -----------------------------------------------------------------------

def test_a_result_used_twice_gets_both_gradients():
    x = sr.tensor([1.0], dtype=F64, requires_grad=True)
    y = x * 2.0
    (y + y * 3.0).sum().backward()
    assert x.grad.tolist() == [8.0]


def test_residual_connection_gradients(rng):
    a = awkward_sparse(rng, (4, 4), F64)
    x = leaf(random_dense(rng, (4, 2), F64))

    def layer(a, x):
        h = sr.sparse.mm(a, x)
        return h + sr.sparse.mm(a, h)

    assert gradcheck(layer, (a, x))
    torch = pytest.importorskip("torch")
    ta, tx = torch_leaf(torch, a), torch_leaf(torch, x)
    h = torch.sparse.mm(ta, tx)
    (h + torch.sparse.mm(ta, h)).sum().backward()
    layer(a, x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


def test_sparse_coo_tensor_is_differentiable_in_its_values():
    v = sr.tensor([1.0, 2.0, 3.0], dtype=F64, requires_grad=True)
    s = sr.sparse_coo_tensor([[0, 1, 0], [1, 0, 1]], v, (2, 2))
    assert s.grad_fn.name() == "SparseCooTensorWithDimsAndTensorsBackward0" and not s.is_coalesced()
    (s.to_dense() * sr.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=F64)).sum().backward()
    assert v.grad.tolist() == [2.0, 3.0, 2.0]  # the duplicates of (0, 1) both get its gradient
    w = sr.tensor([1.0, 2.0, 3.0], dtype=F64, requires_grad=True)
    assert gradcheck(lambda w: sr.sparse_coo_tensor([[0, 1, 0], [1, 0, 1]], w, (2, 2)).to_dense(), (w,))


def test_pow_zero_has_zero_gradient():
    x = sr.tensor([0.0, 2.0], dtype=F64, requires_grad=True)
    (x ** 0).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0]


def test_a_number_to_the_power_of_a_tensor_and_its_gradient(rng):
    """``2 ** t`` (torch's pow(Scalar, Tensor)): gradcheck in float64 and complex128,
    values and gradients as torch's (to rounding: NumPy's and torch's pow are different
    code), base 0 with a zero gradient where the exponent is >= 0, as torch's."""
    for dt in (F64, sr.complex128):
        x = leaf(random_dense(rng, (4,), dt))
        assert gradcheck(lambda x: 2.5 ** x + sr.pow(0.5, x), (x,))
    torch = torch_or_skip()
    for dt, tdt, tol in ((F64, torch.float64, 1e-15), (sr.float32, torch.float32, 1e-6),
                         (sr.complex128, torch.complex128, 1e-15)):
        data = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 3.0, -2.5])
        for c in ((2, 2.5, 0.1, 0, -1.5) if dt != sr.complex128 else (2, 2.5, 0.1, -1.5)):
            t, tt = leaf(sr.tensor(data, dtype=dt)), torch.tensor(data, dtype=tdt, requires_grad=True)
            y, ty = c ** t, c ** tt
            g = np.linspace(-1, 1, data.size)
            y.backward(sr.tensor(g, dtype=dt))
            ty.backward(torch.tensor(g, dtype=tdt))
            assert y.grad_fn is not None and y.dtype == dt
            np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=tol, atol=0)
            np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=10 * tol, atol=0)
    zero = leaf(sr.tensor([0.0, 2.0, -1.0], dtype=F64))
    (0 ** zero).sum().backward()
    assert zero.grad.tolist()[:2] == [0.0, 0.0] and zero.grad.tolist()[2] == -np.inf  # as torch's
    assert (2 ** sr.tensor([0, 1, 5])).tolist() == [1, 2, 32]  # an integer tensor stays integer
    for c in (2, 1, -1, 0, -3):  # negative integer exponents as torch's (NumPy refuses them)
        assert (c ** sr.tensor([-3, -2, -1, 0, 1, 2])).tolist() == \
            (c ** torch.tensor([-3, -2, -1, 0, 1, 2])).tolist()
    out = 2 ** leaf(sr.tensor([1.0, 2.0], dtype=F64))
    out.detach().mul_(10)  # backward reads the output: a change of it is refused, as torch's
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()
    # a complex 0 ** 0 is 1, as Python's 0j ** 0j and NumPy's (torch's gives nan + nanj)
    assert (0 ** sr.tensor([0j, 2 + 0j])).tolist() == [1 + 0j, 0j]


def test_a_number_to_the_power_of_a_tensor_refuses_what_it_cannot_represent():
    for call, exc, message in [
            (lambda: 2.5 ** sr.tensor([1, 2]), TypeError, "2.5 would be truncated to the integer dtype int64"),
            (lambda: sr.pow(2, 3), TypeError, "pow: expected a tensor as the base or the exponent, got int and int"),
            (lambda: 1j ** sr.tensor([1.0]), TypeError, "a complex number needs a complex tensor"),
            (lambda: 2 ** sr.tensor([True]), sr.DTypeError if hasattr(sr, "DTypeError") else TypeError,
             "a bool tensor as an exponent"),
            (lambda: 2 ** sr.tensor([[1.0, 0.0], [0.0, 1.0]]).to_sparse(), TypeError,
             "a number to the power of a sparse tensor would be dense"),
            (lambda: "a" ** sr.tensor([1.0]), TypeError, "expected a Tensor or a number, got str")]:
        with pytest.raises(exc, match=message):
            call()


def test_autograd_grad_returns_the_gradients_and_leaves_every_grad_alone(rng):
    """sr.autograd.grad (torch.autograd.grad): the torch doc example's gradients, returned,
    the same bits as backward's, with no leaf's .grad written."""
    torch = torch_or_skip()
    a = sr.randn(3, 4).to_sparse().requires_grad_(True)
    b = sr.randn(4, 2, requires_grad=True)
    y = sr.sparse.mm(a, b)
    y.retain_grad()
    ga, gb = sr.autograd.grad(y.sum(), [a, b], retain_graph=True)
    assert a.grad is None and b.grad is None
    assert y.grad.tolist() == [[1.0, 1.0]] * 3  # a retain_grad tensor's is kept, as torch keeps it
    assert ga.layout == sr.sparse_coo and ga.is_coalesced() and gb.shape == (4, 2)
    y.sum().backward()
    assert same_bits(ga.to_dense().numpy(), a.grad.to_dense().numpy())
    assert same_bits(gb.numpy(), b.grad.numpy())
    ta, tb = sr.to_torch(a.detach()).requires_grad_(True), sr.to_torch(b.detach()).requires_grad_(True)
    tga, tgb = torch.autograd.grad(torch.sparse.mm(ta, tb).sum(), [ta, tb])
    np.testing.assert_allclose(ga.to_dense().numpy(), tga.to_dense().numpy(), rtol=1e-14)
    np.testing.assert_allclose(gb.numpy(), tgb.numpy(), rtol=1e-14)


def test_autograd_grad_of_tensors_made_by_ops_of_several_outputs_and_unused_inputs():
    x = leaf(sr.tensor([1.0, 2.0, 3.0], dtype=F64))
    h = x * 2
    gh, gx = sr.autograd.grad((h * h).sum(), [h, x])  # an op's output: its whole gradient
    assert gh.tolist() == [4.0, 8.0, 12.0] and gx.tolist() == [8.0, 16.0, 24.0]
    u = x * 3  # two outputs of one graph: their gradients add, as torch's
    assert sr.autograd.grad([u.sum(), (u * u).sum()], x)[0].tolist() == [21.0, 39.0, 57.0]
    v = x * x  # a gradient for a non-scalar output
    assert sr.autograd.grad(v, x, grad_outputs=sr.tensor([1.0, 0.0, -1.0], dtype=F64))[0].tolist() == \
        [2.0, 0.0, -6.0]
    w = leaf(sr.tensor([1.0], dtype=F64))
    with pytest.raises(RuntimeError, match=r"inputs\[1\]\) appears to not have been used in the graph"):
        sr.autograd.grad((x * x).sum(), [x, w])
    assert sr.autograd.grad((x * x).sum(), [x, w], allow_unused=True)[1] is None
    assert sr.autograd.grad((x * x).sum(), [x, w], materialize_grads=True)[1].tolist() == [0.0]
    loss = (x * x).sum()
    assert sr.autograd.grad(loss, x, retain_graph=True)[0].tolist() == [2.0, 4.0, 6.0]
    sr.autograd.grad(loss, x)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        sr.autograd.grad(loss, x)
    assert x.grad is None and w.grad is None


def test_autograd_grad_runs_no_op_below_what_it_is_asked_for():
    """As torch's: an op below every input is not run, so not freed and not checked."""
    x = leaf(sr.tensor([1.0, 2.0], dtype=F64))
    h = x * x
    y1, y2 = (h * 3).sum(), (h * 4).sum()
    assert sr.autograd.grad(y1, h)[0].tolist() == [3.0, 3.0]
    y2.backward()  # h's op was not freed by grad
    assert x.grad.tolist() == [8.0, 16.0]
    a = x * x
    y = a * 3
    with sr.no_grad():
        x.mul_(5)  # below a: never read by grad(y, a)
    assert sr.autograd.grad(y.sum(), a)[0].tolist() == [3.0, 3.0]


def test_autograd_grad_refuses_what_it_cannot_do():
    x = leaf(sr.tensor([1.0, 2.0], dtype=F64))
    loss = (x * x).sum()
    for kwargs, exc, message in [({"create_graph": True}, NotImplementedError, "higher-order gradients"),
                                 ({"is_grads_batched": True}, NotImplementedError, "is_grads_batched"),
                                 ({"grad_outputs": [None, None]}, RuntimeError, "one grad_output per output"),
                                 ({"materialize_grads": True, "allow_unused": False}, ValueError,
                                  "Expected allow_unused to be True or not passed")]:
        with pytest.raises(exc, match=message):
            sr.autograd.grad(loss, x, **kwargs)
    with pytest.raises(RuntimeError, match=r"inputs\[0\]\) does not require grad"):
        sr.autograd.grad(loss, sr.tensor([1.0]))
    with pytest.raises(TypeError, match="inputs must be a tensor or a sequence of tensors, got int"):
        sr.autograd.grad(loss, 3)
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        sr.autograd.grad(x * x, x)
    assert sr.autograd.grad(loss, x)[0].tolist() == [2.0, 4.0]  # (nothing was freed by the refusals)


def test_division_and_its_gradient(rng):
    x, y = leaf(random_dense(rng, (3,), F64)), leaf(sr.tensor([1.5, -2.0, 3.0], dtype=F64))
    assert gradcheck(lambda x, y: x / y + 1.0 / y - y / 2.0, (x, y))


def test_requires_grad_false_on_a_non_leaf_raises(rng):
    y = leaf(random_dense(rng, (2,), F64)) * 2.0
    with pytest.raises(RuntimeError, match="only change requires_grad flags of leaf variables"):
        y.requires_grad_(False)


def test_gradcheck_refuses_single_precision_and_moving_patterns(rng):
    with pytest.raises(ValueError, match="should be float64 or complex128, got complex64"):
        gradcheck(lambda x: x * 2, (leaf(random_dense(rng, (2,), sr.complex64)),))
    x = leaf(sr.tensor([[0.0, 1.0]], dtype=F64))
    with pytest.raises(ValueError, match="sparsity pattern changed"):
        gradcheck(lambda x: x.to_sparse(), (x,))


def test_sparse_times_sparse_with_columns_beyond_any_array(rng):
    n = 2**61
    a = sr.sparse_coo_tensor([[0, 0], [0, 1]], [1.0, 2.0], (1, 2), dtype=F64, requires_grad=True)
    b = sr.sparse_coo_tensor([[0, 1, 1], [2**40, 5, 2**50]], [1.0, 3.0, 4.0], (2, n), dtype=F64, requires_grad=True)
    z = sr.sparse.mm(a, b)
    assert z.indices().tolist() == [[0, 0, 0], [5, 2**40, 2**50]] and z.values().tolist() == [6.0, 1.0, 8.0]
    z.sum().backward()
    assert a.grad.values().tolist() == [1.0, 7.0] and b.grad.values().tolist() == [1.0, 2.0, 2.0]
    assert gradcheck(sr.sparse.mm, (a.detach().requires_grad_(), b.detach().requires_grad_()))


@pytest.mark.parametrize("backend", ["reference", "cython"])
def test_sparse_times_sparse_with_rows_and_shared_dimension_of_2_to_the_40(backend):
    n = 2**40
    a = sr.sparse_coo_tensor([[n - 1, 5, n - 1], [n - 2, 3, 7]], [1.0, 2.0, 3.0], (n, n), dtype=F64,
                             requires_grad=True)
    b = sr.sparse_coo_tensor([[n - 2, 7, 3], [1, n - 1, 0]], [4.0, 5.0, 6.0], (n, n), dtype=F64,
                             requires_grad=True)
    with sr.use_backend(backend):
        c = sr.sparse.mm(a, b)
        assert c.is_coalesced() and c.shape == (n, n)
        assert c.indices().tolist() == [[5, n - 1, n - 1], [0, 1, n - 1]]
        assert c.values().tolist() == [12.0, 4.0, 15.0]
        c.sum().backward()
        assert a.grad.values().tolist() == [6.0, 5.0, 4.0] and b.grad.values().tolist() == [2.0, 3.0, 1.0]
        assert gradcheck(sr.sparse.mm, (a.detach().requires_grad_(), b.detach().requires_grad_()))


# -- a leaf's first gradient: taken as it is when nothing else holds it ------------------------

def test_sparse_mm_hands_its_fresh_gradients_to_the_leaves_without_a_copy(monkeypatch):
    from sparse_ref import _products

    made = []
    for name in ("spmm", "sddmm"):
        real = getattr(_products, name)

        def recording(*args, _real=real, **kwargs):
            out = _real(*args, **kwargs)
            made.append(out)
            return out

        monkeypatch.setattr(_products, name, recording)
    a = sr.randn(5, 4).to_sparse().requires_grad_(True)
    b = sr.randn(4, 3, requires_grad=True)
    sr.sparse.mm(a, b).sum().backward()
    assert any(b.grad._data is m for m in made)  # grad B = A^T G: the kernel's own output
    assert any(np.shares_memory(a.grad._val, m) for m in made)  # grad A: (a read-only view of) the SDDMM's values
    np.testing.assert_allclose(b.grad.numpy(), a.detach().to_dense().numpy().T @ np.ones((5, 3)), rtol=1e-5,
                               atol=1e-6)  # float32 sums of a few values near 0: an absolute bound


def test_a_gradient_returned_for_two_leaves_is_copied_for_each_even_when_fresh():
    class Twice(sr.autograd.Function):
        _name = "TwiceBackward0"
        fresh_grads = True  # but the one array goes to both inputs

        def forward(self, x, y):
            return sr.Tensor(x._data + y._data)

        def backward(self, grad):
            g = np.array(grad, copy=True)
            return g, g

    x, y = sr.randn(3, requires_grad=True), sr.randn(3, requires_grad=True)
    Twice.apply(x, y).sum().backward()
    assert not np.shares_memory(x.grad._data, y.grad._data)
    x.grad.zero_()
    np.testing.assert_array_equal(y.grad.numpy(), np.ones(3))  # untouched by x's in-place change


def test_a_second_backward_adds_into_the_gradient_a_loop_holds_as_torch():
    """(probe) g = w.grad, then w -= lr * g; g.zero_() in a loop: torch adds each backward
    into that same tensor; ours made a new one, so g stayed at its first value and the
    loop stopped learning, in silence."""
    a = sr.randn(4, 3).to_sparse().requires_grad_(True)
    b = sr.randn(3, 2, requires_grad=True)
    sr.sparse.mm(a, b).sum().backward()
    held = b.grad
    kept = held.numpy().copy()
    sr.sparse.mm(a, b).sum().backward()
    assert b.grad is held
    np.testing.assert_allclose(held.numpy(), 2 * kept)
    def train(lib):  # the same lines for either library
        w = lib.tensor([0., 0.], requires_grad=True)
        w.grad = lib.zeros_like(w)
        g = w.grad
        for _ in range(3):
            ((w - lib.tensor([1., 2.])) ** 2).sum().backward()
            with lib.no_grad():
                w -= 0.1 * g
            g.zero_()
        return w.detach().numpy()

    ours = train(sr)
    assert not np.array_equal(ours, [0., 0.])  # (it stayed at 0: g never saw a backward)
    np.testing.assert_allclose(ours, train(pytest.importorskip("torch")), rtol=1e-6)


# -- a Function of your own: what apply and backward check (second probe) -----------------------

class _OneValueGrad(sr.autograd.Function):
    def forward(self, s):
        return sr.Tensor(np.array(s._val.sum()))

    def backward(self, g):
        return (np.ones(1, np.float32) * g,)  # the pattern has many entries: wrong length


def test_a_custom_gradient_of_the_wrong_length_is_refused():
    # it was kept as the sparse leaf's .grad (200000 indices, 1 value), and a product of
    # that .grad read past the end of its values
    n = 2000
    s = sr.sparse_coo_tensor(np.stack([np.arange(n)] * 2), np.ones(n, np.float32), (n, n), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"invalid gradient at index 0 - got \[1\] but expected \[2000\]"):
        _OneValueGrad.apply(s).backward()
    assert s.grad is None

    class Dense(sr.autograd.Function):
        def forward(self, x):
            return sr.Tensor(x._data * 2)

        def backward(self, g):
            return (g[:1],)  # one value short of x's shape

    x = sr.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"got \[1\] but expected \[2\]"):
        Dense.apply(x).sum().backward()


def test_a_custom_gradient_comes_in_the_inputs_dtype():
    class Wide(sr.autograd.Function):
        def forward(self, x):
            return sr.Tensor(x._data * 2)

        def backward(self, g):
            return (np.asarray(g, np.float64) * 2,)  # float64 for a float32 input: cast, as torch

    x = sr.tensor([1.0, 2.0], dtype=sr.float32, requires_grad=True)
    Wide.apply(x).sum().backward()
    assert x.grad.dtype == sr.float32 and x.grad.tolist() == [2.0, 2.0]

    class Imaginary(Wide):
        def backward(self, g):
            return (np.asarray(g) * 1j,)  # an imaginary part cannot become float32

    x.grad = None
    with pytest.raises(TypeError, match="imaginary part"):
        Imaginary.apply(x).sum().backward()


@pytest.mark.parametrize("csr", [False, True])
def test_a_gradient_adds_to_an_assigned_grad_of_another_pattern_by_position(csr):
    # it was added entry by entry in storage order: [[120, 0], [0, 11]] where torch gives
    # [[21, 0], [0, 110]]
    s = sr.sparse_coo_tensor([[0, 1], [0, 1]], [1.0, 2.0], (2, 2)).coalesce()
    s = (s.to_sparse_csr() if csr else s).requires_grad_(True)
    g = sr.sparse_coo_tensor([[1, 0, 0], [1, 0, 1]], [10.0, 20.0, 5.0], (2, 2))
    s.grad = g.coalesce().to_sparse_csr() if csr else g
    (s.to_dense() * sr.tensor([[1.0, 0.0], [0.0, 100.0]])).sum().backward()
    assert s.grad.layout == s.layout
    assert s.grad.to_dense().tolist() == [[21.0, 5.0], [0.0, 110.0]]
    (s.to_dense() * 1.0).sum().backward()  # and again, on the union's pattern
    assert s.grad.to_dense().tolist() == [[22.0, 5.0], [0.0, 111.0]]


def test_apply_leaves_an_input_that_forward_hands_back_as_it_was():
    class Same(sr.autograd.Function):
        def forward(self, x, c):
            return x

        def backward(self, g):
            return g, None

    x = sr.tensor([1.0, 2.0], requires_grad=True)
    c = sr.tensor([3.0])
    y = Same.apply(x, c)
    assert y is not x and x.grad_fn is None and x.is_leaf and not c.requires_grad
    (y * y).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0]


def test_forward_runs_with_grad_mode_off_as_in_torch():
    class Twice(sr.autograd.Function):
        def forward(self, x):
            assert not sr.autograd.is_grad_enabled()
            out = x.clone()
            out.mul_(2.0)  # in place on a tensor that would be in a graph if forward recorded
            return out

        def backward(self, g):
            return (2 * g,)

    x = sr.tensor([1.0, 2.0], requires_grad=True)
    Twice.apply(x).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0] and sr.autograd.is_grad_enabled()


def test_grad_mode_decorators_hold_inside_a_generator_and_without_parentheses():
    # (probe) @sr.no_grad() on a generator function left recording on in its body, and a
    # bare @sr.no_grad raised TypeError; torch handles both
    x = sr.tensor([1.0, 2.0], requires_grad=True)

    @sr.no_grad()
    def batches():
        for _ in range(2):
            received = yield x * 2
            assert received is None or received == "sent"
        return "done"

    seen = []
    gen = batches()
    seen.append(next(gen).requires_grad)
    assert sr.autograd.is_grad_enabled()  # the caller's mode between resumptions
    seen.append(gen.send("sent").requires_grad)
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert seen == [False, False] and stop.value.value == "done"

    @sr.no_grad
    def bare():
        return (x * 2).requires_grad

    assert bare() is False and (x * 2).requires_grad

    @sr.enable_grad
    def inside():
        return (x * 2).requires_grad

    with sr.no_grad():
        assert inside() is True
    with pytest.raises(TypeError, match="takes no arguments"):
        sr.no_grad(3)

    def thrown():  # an exception thrown into the generator reaches its body, in its mode
        try:
            yield 1
        except KeyError:
            yield sr.autograd.is_grad_enabled()

    wrapped = sr.no_grad()(thrown)()
    next(wrapped)
    assert wrapped.throw(KeyError("k")) is False
    wrapped.close()


@pytest.mark.parametrize("op", ["t", "T", "permute", "stack"])
def test_a_scalars_gradient_through_a_reordering_op_stays_a_scalar(op):
    # (their backward made the gradient C-ordered with np.ascontiguousarray, which turns
    # a 0-d array into a 1-d one: backward then refused the scalar leaf's gradient)
    x = sr.tensor(2.0, requires_grad=True)
    y = {"t": lambda: x.t(), "T": lambda: x.T, "permute": lambda: x.permute(()),
         "stack": lambda: sr.stack([x, x * 2])}[op]()
    (y * 3).sum().backward()
    assert x.grad.shape == () and x.grad.item() == (9.0 if op == "stack" else 3.0)


@pytest.mark.parametrize("op", ["sum", "sum keepdim", "mean", "max", "min", "transpose"])
def test_a_scalars_dim_0_or_minus_1_is_the_whole_scalar_as_in_torch(op):
    x = sr.tensor(3.0, requires_grad=True)
    y = {"sum": lambda: x.sum(0), "sum keepdim": lambda: x.sum(-1, keepdim=True), "mean": lambda: x.mean(0),
         "max": lambda: x.max(0).values, "min": lambda: x.min(-1).values, "transpose": lambda: x.transpose(0, -1)}[op]()
    assert y.shape == () and y.item() == 3.0
    (y * 2).backward()
    assert x.grad.shape == () and x.grad.item() == 2.0
    with pytest.raises(IndexError, match="Dimension out of range"):
        x.sum(1)


def test_edge_shapes_as_torch_norm_of_a_scalar_softmax_and_max_of_empty_tensors_iteration():
    x = sr.tensor(3.0, requires_grad=True)
    x.norm(dim=0).backward()  # (the scalar's dim 0: its gradient stays 0-d)
    assert x.grad.shape == () and x.grad.item() == 1.0
    empty = sr.zeros(0, 3, requires_grad=True)
    for dim in (0, 1):
        out = empty.softmax(dim) + empty.log_softmax(dim)
        assert out.shape == (0, 3)
        out.sum().backward()
        assert empty.grad.shape == (0, 3)
    values, indices = sr.zeros(3, 0).max(0)  # an empty result, the reduced dim being 3 long
    assert values.shape == (0,) and indices.shape == (0,) and sr.zeros(0, 3).min(-1).values.shape == (0,)
    with pytest.raises(IndexError, match="Expected reduction dim 0 to have non-zero size"):
        sr.zeros(0, 3).max(0)
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        list(sr.tensor(3.0))
    with pytest.raises(IndexError, match="Dimension out of range"):
        sr.tensor(3.0).flatten(5)
    assert [t.tolist() for t in sr.tensor([[1.0, 2.0], [3.0, 4.0]])] == [[1.0, 2.0], [3.0, 4.0]]

"""Batched (3-D) sparse products: ``sr.bmm``, ``@``, ``sr.sparse.mm`` (with ``reduce=``)
and ``sr.sparse.sampled_addmm`` on batches of matrices, forward and backward.

A batch runs as one block-diagonal 2-D product (``sparse_ref._batched``), so the tests
check: batch b of every result is bit for bit the 2-D product of batch b; the values agree
with a dense NumPy oracle and with torch 2.13 where torch has the op; every gradient of a
sparse operand is a coalesced 3-D sparse tensor with exactly the operand's own pattern,
equal to the dense oracle's gradient there and passing ``gradcheck``; both kernel paths
and 1 or 2 threads give the same bits; empty batches, B = 0 and nnz = 0 work; and bad
input is refused with torch's words.
"""

import numpy as np
import pytest

import sparse_ref as sr
from sparse_ref import _formats
from sparse_ref.autograd.batched_ops import BlockDiagonal, batch_indices, block_diagonal_indices

from conftest import random_values, same_bits, torch_or_skip

F64, C128 = sr.float64, sr.complex128


# -- helpers ----------------------------------------------------------------------------------

def random_batch_coo(rng, shape, nnz, dtype=np.float64, empty_batch=None):
    """Random (3, nnz) indices in storage order (unsorted, with duplicates) and values,
    every fifth an explicit zero; no entry in batch ``empty_batch``."""
    if 0 in shape:
        return np.zeros((3, 0), np.int64), random_values(rng, 0, dtype)
    idx = np.stack([rng.integers(0, n, nnz) for n in shape]).astype(np.int64)
    if empty_batch is not None:
        idx = idx[:, idx[0] != empty_batch]
    val = random_values(rng, idx.shape[1], dtype)
    val[::5] = 0
    return idx, val


def random_batch(rng, shape, nnz, dtype=np.float64, empty_batch=None, requires_grad=False):
    idx, val = random_batch_coo(rng, shape, nnz, dtype, empty_batch)
    return sr.sparse_coo_tensor(idx, val, shape, requires_grad=requires_grad)


def random_dense(rng, shape, dtype=np.float64, requires_grad=False):
    data = random_values(rng, int(np.prod(shape)), dtype).reshape(shape)
    return sr.tensor(data, requires_grad=requires_grad)


def dense_of(s) -> np.ndarray:
    """The dense batch of a 3-D sparse tensor, duplicates added by np.add.at (the oracle)."""
    out = np.zeros(s.shape, dtype=s.dtype)
    np.add.at(out, tuple(s._idx), s._val)
    return out


def batch_matrix(s, b: int):
    """Batch b of a 3-D sparse tensor as a 2-D sparse matrix, its entries in storage order
    (so it coalesces to the same sums)."""
    keep = s._idx[0] == b
    return sr.sparse_coo_tensor(s._idx[1:, keep], s._val[keep], s.shape[1:])


def leaf(t):
    """A fresh leaf with t's data that requires grad."""
    if isinstance(t, sr.SparseTensor):
        return sr.sparse_coo_tensor(t._idx, t._val, t.shape, requires_grad=True)
    return sr.tensor(t.numpy(), requires_grad=True)


def to_torch_batch(torch, s):
    return torch.sparse_coo_tensor(torch.from_numpy(np.array(s._idx)), torch.from_numpy(np.array(s._val)), s.shape)


def assert_pattern_of(grad, operand):
    """A gradient of a sparse operand: coalesced, 3-D, exactly the operand's coalesced pattern."""
    c = operand.coalesce()
    assert isinstance(grad, sr.SparseTensor) and grad.is_coalesced()
    assert grad.shape == operand.shape
    assert np.array_equal(grad.indices().numpy(), c.indices().numpy())


# -- construction: 3-D COO, coalesced batch-major ---------------------------------------------

def test_construction_coalesce_and_to_dense_match_torch(rng):
    torch = torch_or_skip()
    idx, val = random_batch_coo(rng, (3, 4, 5), 40)
    val = np.round(val * 4)  # small integers: every sum is exact, whatever its order
    a = sr.sparse_coo_tensor(idx, val, (3, 4, 5))
    assert (a.sparse_dim(), a.dense_dim(), a.ndim, a.is_coalesced()) == (3, 0, 3, False)
    ta = torch.sparse_coo_tensor(torch.from_numpy(idx), torch.from_numpy(val), (3, 4, 5)).coalesce()
    c = a.coalesce()
    assert c.is_coalesced()
    assert np.array_equal(c.indices().numpy(), ta.indices().numpy())
    assert np.array_equal(c.values().numpy(), ta.values().numpy())
    assert np.array_equal(a.to_dense().numpy(), ta.to_dense().numpy())
    assert sr.sparse_coo_tensor(idx, val).shape == tuple(int(n) + 1 for n in idx.max(axis=1))


def test_coalesce_sums_duplicates_in_storage_order_as_2d(rng):
    """The 3-D coalesce is the 2-D one of the stacked (B*m, n) matrix: the same bits."""
    a = random_batch(rng, (4, 6, 5), 150)
    c = a.coalesce()
    stacked = sr.sparse_coo_tensor(np.stack([a._idx[0] * 6 + a._idx[1], a._idx[2]]), a._val, (24, 5)).coalesce()
    assert same_bits(c.values().numpy(), stacked.values().numpy())
    assert np.array_equal(c.indices().numpy()[0] * 6 + c.indices().numpy()[1], stacked.indices().numpy()[0])
    np.testing.assert_allclose(a.to_dense().numpy(), dense_of(a), rtol=1e-12, atol=1e-12)


def test_is_coalesced_claim_is_checked_in_batch_major_order():
    with pytest.raises(ValueError, match=r"entry 1 at \(0, 2, 1\) follows \(1, 0, 1\)"):
        sr.sparse_coo_tensor([[1, 0], [0, 2], [1, 1]], [1.0, 2.0], (2, 3, 2), is_coalesced=True)
    ok = sr.sparse_coo_tensor([[0, 0, 1], [0, 2, 0], [1, 0, 0]], [1.0, 2.0, 3.0], (2, 3, 2), is_coalesced=True)
    assert ok.is_coalesced()


def test_3d_construction_refuses_what_it_cannot_hold():
    with pytest.raises(ValueError, match=r"len\(size\) = 2, sparse_dim = 3, dense_dim = 0"):
        sr.sparse_coo_tensor([[0], [0], [0]], [1.0], (2, 2))
    with pytest.raises(IndexError, match="for dim 2, size is 2 but found index 2"):
        sr.sparse_coo_tensor([[0], [0], [2]], [1.0], (2, 2, 2))
    # B*m beyond int64: the tensor constructs and coalesces (ranked row keys), only a product,
    # which needs the block-diagonal matrix of B*m rows, refuses it
    huge = sr.sparse_coo_tensor([[1, 0, 1], [5, 0, 5], [1, 0, 1]], [1.0, 2.0, 3.0], (2**40, 2**30, 2))
    assert huge.coalesce().indices().tolist() == [[0, 1], [0, 5], [0, 1]]
    assert huge.coalesce().values().tolist() == [2.0, 4.0]
    with pytest.raises(ValueError, match="more than int64 can number"):
        sr.bmm(huge, sr.sparse_coo_tensor([[0], [0], [0]], [1.0], (2**40, 2, 1)))
    a = sr.sparse_coo_tensor([[0], [0], [0]], [1.0], (2, 2, 2))
    with pytest.raises(ValueError, match=r"t\(\) expects a tensor with <= 2 sparse and 0 dense dimensions, "
                                         r"but got 3 sparse and 0 dense dimensions"):
        a.t()
    with pytest.raises(ValueError, match=r"over dims \[1\] is not supported"):
        a.sum(1)
    assert a.sum().item() == 1.0


# -- the order the whole design rests on -------------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 4, 5), (5, 1, 7), (2, 6, 1), (1, 3, 3), (4, 0, 3), (0, 2, 2)])
def test_coalesced_batch_order_is_the_block_diagonal_row_major_order(shape, rng):
    """Sorting entries by (b, r, c) and sorting their block-diagonal positions
    (b*m + r, b*n + c) row-major give the same permutation, and the map is one to one:
    so a gradient carried in one order means the same entries in the other."""
    idx = (np.stack([rng.integers(0, n, 300) for n in shape]) if 0 not in shape
           else np.zeros((3, 0), np.int64)).astype(np.int64)
    bd = block_diagonal_indices(idx, shape)
    batch_order = np.lexsort(idx[::-1])
    block_order = np.lexsort(bd[::-1])
    assert np.array_equal(idx[:, batch_order], idx[:, block_order])  # the same order (up to equal keys)
    assert np.array_equal(batch_indices(bd, shape), idx)  # and back
    if idx.shape[1]:  # equal in one form <=> equal in the other
        same_batch_key = (np.diff(idx[:, batch_order], axis=1) == 0).all(axis=0)
        same_block_key = (np.diff(bd[:, batch_order], axis=1) == 0).all(axis=0)
        assert np.array_equal(same_batch_key, same_block_key)
    a = sr.sparse_coo_tensor(idx, np.ones(idx.shape[1]), shape)
    d = BlockDiagonal.apply(a)
    again, _, _ = _formats.coalesce(d._idx[0], d._idx[1], d._val, d.shape[0])
    assert d.is_coalesced() and np.array_equal(again, d._idx)  # already row-major and unique


# -- forward: torch, the dense oracle, per-batch 2-D calls -------------------------------------

def test_sparse_times_dense_matches_torch_bmm(rng):
    torch = torch_or_skip()
    a = random_batch(rng, (4, 6, 5), 60, empty_batch=2)
    x = random_dense(rng, (4, 5, 3))
    expected = torch.bmm(to_torch_batch(torch, a), torch.from_numpy(x.numpy())).numpy()
    np.testing.assert_allclose(sr.bmm(a, x).numpy(), expected, rtol=1e-12, atol=1e-12)
    # small integers: every order gives the same sums, so the values agree exactly
    ai = sr.sparse_coo_tensor(a._idx, np.round(a._val * 3), a.shape)
    xi = sr.tensor(np.round(x.numpy() * 3))
    expected = torch.bmm(to_torch_batch(torch, ai), torch.from_numpy(xi.numpy())).numpy()
    assert np.array_equal(sr.bmm(ai, xi).numpy(), expected)


def test_torch_refuses_what_sparse_ref_adds():
    """What the docs say torch 2.13 does with the products sparse_ref adds."""
    torch = torch_or_skip()
    a = torch.sparse_coo_tensor(torch.tensor([[0, 1], [0, 1], [1, 0]]), torch.tensor([2.0, 3.0]), (2, 2, 2))
    with pytest.raises(RuntimeError, match="bmm_sparse: Tensor 'mat2' must be dense"):
        torch.bmm(a, a)
    with pytest.raises(RuntimeError, match="bmm_sparse: Tensor 'mat2' must be dense"):
        torch.bmm(torch.ones(2, 2, 2), a)
    with pytest.raises(RuntimeError, match="expand is unsupported for Sparse tensors"):
        a @ torch.ones(2, 2, 1)
    al = a.coalesce().requires_grad_()
    torch.bmm(al, torch.ones(2, 2, 1)).sum().backward()
    assert al.grad.layout == torch.strided  # a dense gradient of a's full size


@pytest.mark.parametrize("dtype", [sr.float32, F64, sr.complex64, C128])
def test_every_product_is_the_2d_product_of_each_batch_bit_for_bit(dtype, rng):
    B, m, n, p = 4, 5, 6, 3
    a = random_batch(rng, (B, m, n), 50, dtype, empty_batch=1)
    s = random_batch(rng, (B, n, p), 40, dtype, empty_batch=3)
    x = random_dense(rng, (B, n, p), dtype)
    y = random_dense(rng, (B, p, m), dtype)
    sd, ss, ds = sr.bmm(a, x), sr.bmm(a, s), sr.bmm(y, a)
    assert ss.is_coalesced() and ss.shape == (B, m, p)
    for b in range(B):
        assert same_bits(sd.numpy()[b], sr.sparse.mm(batch_matrix(a, b), x[b]).numpy())
        assert same_bits(ds.numpy()[b], sr.sparse.mm(y[b], batch_matrix(a, b)).numpy())
        two_d = sr.sparse.mm(batch_matrix(a, b), batch_matrix(s, b))
        keep = ss.indices().numpy()[0] == b
        assert np.array_equal(ss.indices().numpy()[1:, keep], two_d.indices().numpy())
        assert same_bits(ss.values().numpy()[keep], two_d.values().numpy())
    rtol = 1e-4 if dtype in (sr.float32, sr.complex64) else 1e-12
    np.testing.assert_allclose(sd.numpy(), dense_of(a) @ x.numpy(), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(ss.to_dense().numpy(), dense_of(a) @ dense_of(s), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(ds.numpy(), y.numpy() @ dense_of(a), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("reduce", ["sum", "mean", "amax", "amin"])
def test_reduce_is_the_2d_reduce_of_each_batch(reduce, rng):
    a = random_batch(rng, (3, 5, 4), 30, empty_batch=0)
    x = random_dense(rng, (3, 4, 2))
    out = sr.sparse.mm(a, x, reduce=reduce)
    for b in range(3):
        assert same_bits(out.numpy()[b], sr.sparse.mm(batch_matrix(a, b), x[b], reduce=reduce).numpy())


def test_sampled_addmm_is_the_2d_one_of_each_batch_and_matches_torch(rng):
    torch = torch_or_skip()
    B, m, k, p = 3, 4, 5, 6
    # torch's batched CSR needs the same number of entries in every batch
    idx = np.concatenate([np.stack([np.full(7, b), *np.unravel_index(rng.choice(m * p, 7, replace=False), (m, p))])
                          for b in range(B)], axis=1).astype(np.int64)
    inp = sr.sparse_coo_tensor(idx, random_values(rng, idx.shape[1], np.float64), (B, m, p)).coalesce()
    x, y = random_dense(rng, (B, m, k)), random_dense(rng, (B, k, p))
    out = sr.sparse.sampled_addmm(inp, x, y, beta=0.5, alpha=2.0)
    assert out.is_coalesced() and np.array_equal(out.indices().numpy(), inp.indices().numpy())
    for b in range(B):
        two_d = sr.sparse.sampled_addmm(batch_matrix(inp, b), x[b], y[b], beta=0.5, alpha=2.0)
        assert same_bits(out.values().numpy()[inp.indices().numpy()[0] == b], two_d.values().numpy())
    expected = torch.sparse.sampled_addmm(torch.from_numpy(inp.to_dense().numpy()).to_sparse_csr(),
                                          torch.from_numpy(x.numpy()), torch.from_numpy(y.numpy()),
                                          beta=0.5, alpha=2.0)
    np.testing.assert_allclose(out.to_dense().numpy(), expected.to_dense().numpy(), rtol=1e-12, atol=1e-12)


def test_bmm_names_its_node_as_torch_does(rng):
    """torch.bmm's result prints ``grad_fn=<BmmBackward0>`` (sparse x dense and dense x
    dense; torch refuses the others); ours did ``ViewBackward0`` and ``MmBackward0``."""
    torch = torch_or_skip()
    a = random_batch(rng, (2, 3, 4), 10).requires_grad_(True)
    x, y = random_dense(rng, (2, 4, 2)), random_dense(rng, (2, 5, 3))
    x.requires_grad_(True)
    ta = to_torch_batch(torch, a.detach()).requires_grad_(True)
    tx = torch.tensor(x.detach().numpy(), requires_grad=True)
    assert torch.bmm(ta, tx).grad_fn.name() == "BmmBackward0"
    assert torch.bmm(tx.mT.contiguous(), tx).grad_fn.name() == "BmmBackward0"
    assert sr.bmm(a, x).grad_fn.name() == "BmmBackward0"
    assert sr.bmm(x.mT, x).grad_fn.name() == "BmmBackward0"
    assert sr.bmm(y, a).grad_fn.name() == "BmmBackward0"  # torch refuses dense x sparse
    sr.bmm(a, x).sum().backward()  # the named node is the same view: its gradient too
    b = a.detach().requires_grad_(True)
    (b @ x.detach()).sum().backward()
    assert same_bits(a.grad.values().numpy(), b.grad.values().numpy())

def test_matmul_operator_and_method_are_bmm(rng):
    a = random_batch(rng, (2, 3, 4), 10)
    x, y = random_dense(rng, (2, 4, 2)), random_dense(rng, (2, 5, 3))
    s = random_batch(rng, (2, 4, 3), 8)
    assert same_bits((a @ x).numpy(), sr.bmm(a, x).numpy())
    assert same_bits(sr.matmul(a, x).numpy(), a.bmm(x).numpy())
    assert same_bits((y @ a).numpy(), y.bmm(a).numpy())
    assert same_bits((a @ s).values().numpy(), sr.bmm(a, s).values().numpy())
    assert same_bits((x.mT @ x).numpy(), sr.bmm(x.mT, x).numpy())  # dense batches: torch.bmm as well


# -- gradients ------------------------------------------------------------------------------

def test_sparse_gradient_has_the_operand_pattern_and_the_oracle_values(rng):
    torch = torch_or_skip()
    a = random_batch(rng, (3, 4, 5), 34, requires_grad=True)
    x = random_dense(rng, (3, 5, 2), requires_grad=True)
    g = random_dense(rng, (3, 4, 2))
    sr.bmm(a, x).backward(g)
    assert_pattern_of(a.grad, a)
    full = g.numpy() @ x.detach().numpy().transpose(0, 2, 1)  # dense oracle: G X^T
    pattern = tuple(a.coalesce().indices().numpy())
    np.testing.assert_allclose(a.grad.values().numpy(), full[pattern], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), dense_of(a).transpose(0, 2, 1) @ g.numpy(), rtol=1e-12, atol=1e-12)
    # torch: the same numbers at the pattern, but a dense gradient of a's full size
    ta = to_torch_batch(torch, a).coalesce().requires_grad_()
    torch.bmm(ta, torch.from_numpy(x.detach().numpy().copy())).backward(torch.from_numpy(g.numpy()))
    assert ta.grad.layout == torch.strided and ta.grad.numel() == 60
    np.testing.assert_allclose(a.grad.values().numpy(), ta.grad.numpy()[pattern], rtol=1e-12, atol=1e-12)


def test_sparse_times_sparse_gradients_have_each_operand_pattern(rng):
    a = random_batch(rng, (3, 4, 5), 25, requires_grad=True)
    s = random_batch(rng, (3, 5, 3), 20, requires_grad=True)
    sr.bmm(a, s).sum().backward()
    assert_pattern_of(a.grad, a)
    assert_pattern_of(s.grad, s)
    ones = np.ones((3, 4, 3))
    np.testing.assert_allclose(a.grad.values().numpy(),
                               (ones @ dense_of(s).transpose(0, 2, 1))[tuple(a.coalesce().indices().numpy())])
    np.testing.assert_allclose(s.grad.values().numpy(),
                               (dense_of(a).transpose(0, 2, 1) @ ones)[tuple(s.coalesce().indices().numpy())])


def test_dense_times_sparse_and_sampled_gradients(rng):
    s = random_batch(rng, (2, 4, 3), 12, requires_grad=True)
    y = random_dense(rng, (2, 5, 4), requires_grad=True)
    g = random_dense(rng, (2, 5, 3))
    sr.bmm(y, s).backward(g)
    assert_pattern_of(s.grad, s)
    np.testing.assert_allclose(s.grad.values().numpy(),
                               (y.detach().numpy().transpose(0, 2, 1) @ g.numpy())[tuple(s.coalesce().indices().numpy())])
    np.testing.assert_allclose(y.grad.numpy(), g.numpy() @ dense_of(s).transpose(0, 2, 1))
    inp = random_batch(rng, (2, 5, 3), 9, requires_grad=True)
    out = sr.sparse.sampled_addmm(inp, y, s.detach().to_dense(), beta=3.0)
    out.backward(out.detach())
    assert_pattern_of(inp.grad, inp)
    np.testing.assert_allclose(inp.grad.values().numpy(), 3.0 * out.detach().values().numpy())


CASES = {
    "sparse@dense": (lambda rng, dt: (random_batch(rng, (3, 3, 4), 14, dt), random_dense(rng, (3, 4, 2), dt)),
                     sr.bmm),
    "sparse@sparse": (lambda rng, dt: (random_batch(rng, (2, 3, 4), 10, dt), random_batch(rng, (2, 4, 3), 9, dt)),
                      sr.bmm),
    "dense@sparse": (lambda rng, dt: (random_dense(rng, (3, 2, 3), dt), random_batch(rng, (3, 3, 4), 12, dt)),
                     sr.bmm),
    "mean": (lambda rng, dt: (random_batch(rng, (2, 4, 3), 12, dt), random_dense(rng, (2, 3, 2), dt)),
             lambda a, b: sr.sparse.mm(a, b, reduce="mean")),
    "amax": (lambda rng, dt: (random_batch(rng, (2, 4, 3), 12, dt), random_dense(rng, (2, 3, 2), dt)),
             lambda a, b: sr.sparse.mm(a, b, reduce="amax")),
    "amin": (lambda rng, dt: (random_batch(rng, (2, 4, 3), 12, dt), random_dense(rng, (2, 3, 2), dt)),
             lambda a, b: sr.sparse.mm(a, b, reduce="amin")),
}


@pytest.mark.parametrize("case,dtype", [(case, dtype) for case in sorted(CASES) for dtype in (F64, C128)
                                        if not (case in ("amax", "amin") and dtype == C128)])  # complex: no order
def test_gradcheck(case, dtype, rng):
    make, fn = CASES[case]
    a, b = make(rng, dtype)
    assert sr.autograd.gradcheck(fn, (leaf(a), leaf(b)))


@pytest.mark.parametrize("dtype", [F64, C128])
def test_gradcheck_sampled_addmm(dtype, rng):
    inp = random_batch(rng, (2, 3, 4), 10, dtype)
    x, y = random_dense(rng, (2, 3, 5), dtype), random_dense(rng, (2, 5, 4), dtype)
    alpha = 1.5 - 0.5j if dtype == C128 else 1.5
    assert sr.autograd.gradcheck(lambda i, u, v: sr.sparse.sampled_addmm(i, u, v, beta=0.5, alpha=alpha),
                                 (leaf(inp), leaf(x), leaf(y)))


def test_gradient_reaches_values_that_require_grad(rng):
    idx, val = random_batch_coo(rng, (2, 3, 3), 15)
    v = sr.tensor(val, requires_grad=True)
    a = sr.sparse_coo_tensor(idx, v, (2, 3, 3))
    sr.bmm(a, sr.ones(2, 3, 1, dtype=F64)).sum().backward()
    assert np.array_equal(v.grad.numpy(), np.ones(idx.shape[1]))  # every stored duplicate: d sum / d a_ij = 1


# -- paths and threads ----------------------------------------------------------------------

def run_all(a, s, x, y, inp, u, v):
    """Every batched product and every gradient, as arrays."""
    leaves = [leaf(t) for t in (a, s, x, y, inp, u, v)]
    la, ls, lx, ly, linp, lu, lv = leaves
    outs = [sr.bmm(la, lx), sr.bmm(la, ls), sr.bmm(ly, la), sr.sparse.mm(la, lx, reduce="amax"),
            sr.sparse.mm(la, lx, reduce="mean"), sr.sparse.sampled_addmm(linp, lu, lv, beta=0.5)]
    total = sum((o.sum() if isinstance(o, sr.Tensor) else sr.sparse.sum(o)) for o in outs)
    total.backward()
    arrays = [o.detach().numpy() if isinstance(o, sr.Tensor) else o.values().detach().numpy() for o in outs]
    return arrays + [t.grad._val if isinstance(t, sr.SparseTensor) else t.grad.numpy() for t in leaves]


def batch_operands(rng):
    return (random_batch(rng, (5, 7, 6), 90, empty_batch=2), random_batch(rng, (5, 6, 4), 70),
            random_dense(rng, (5, 6, 4)), random_dense(rng, (5, 3, 7)), random_batch(rng, (5, 7, 4), 40),
            random_dense(rng, (5, 7, 9)), random_dense(rng, (5, 9, 4)))


def test_both_kernel_paths_agree_bit_for_bit(rng):
    ops = batch_operands(rng)
    with sr.use_backend("reference"):
        expected = run_all(*ops)
    with sr.use_backend("cython"):
        got = run_all(*ops)
    assert all(same_bits(e, g) for e, g in zip(expected, got))


def test_one_and_two_threads_agree_bit_for_bit(rng, tiny_work_uses_threads):
    ops = batch_operands(rng)
    old = sr.get_num_threads()
    try:
        results = []
        for t in (1, 2):
            sr.set_num_threads(t)
            results.append(run_all(*ops))
    finally:
        sr.set_num_threads(old)
    assert all(same_bits(e, g) for e, g in zip(*results))


# -- empty and huge -------------------------------------------------------------------------

@pytest.mark.parametrize("shape,p", [((0, 3, 4), 2), ((2, 3, 4), 2), ((2, 0, 4), 2), ((2, 3, 0), 2), ((2, 3, 4), 0)])
def test_empty_batches(shape, p):
    a = sr.sparse_coo_tensor(np.zeros((3, 0), np.int64), np.zeros(0), shape, requires_grad=True)
    x = sr.ones(shape[0], shape[2], p, dtype=F64, requires_grad=True)
    y = sr.bmm(a, x)
    assert y.shape == (shape[0], shape[1], p) and not y.detach().numpy().any()
    y.sum().backward()
    assert a.grad._nnz() == 0 and a.grad.shape == shape and not x.grad.numpy().any()
    ss = sr.bmm(a, sr.sparse_coo_tensor(np.zeros((3, 0), np.int64), np.zeros(0), (shape[0], shape[2], p)))
    assert ss.shape == (shape[0], shape[1], p) and ss._nnz() == 0
    z = sr.ones(shape[0], p, shape[1], dtype=F64, requires_grad=True)
    ds = sr.bmm(z, a)
    assert ds.shape == (shape[0], p, shape[2]) and not ds.detach().numpy().any()
    ds.sum().backward()
    assert z.grad.shape == z.shape and not z.grad.numpy().any()


def test_huge_batches_run_or_are_refused_clearly():
    # B*m = 2**32 rows, a handful of entries: the 2-D product relabels the rows that occur
    a = sr.sparse_coo_tensor([[0, 2**22 - 1], [5, 1023], [1, 0]], [2.0, 3.0], (2**22, 1024, 2))
    s = sr.sparse_coo_tensor([[0, 2**22 - 1], [1, 0], [3, 1]], [5.0, 7.0], (2**22, 2, 4))
    c = sr.bmm(a, s)
    assert c.indices().tolist() == [[0, 2**22 - 1], [5, 1023], [3, 1]] and c.values().tolist() == [10.0, 21.0]
    wide = sr.sparse_coo_tensor([[0], [0], [0]], [1.0], (2**40, 1, 2**30))  # B*m fits, B*n does not
    with pytest.raises(ValueError, match="more than int64 can number"):
        sr.bmm(wide, sr.sparse_coo_tensor([[0], [0], [0]], [1.0], (2**40, 2**30, 1)))


# -- bad input: torch's words ---------------------------------------------------------------

A = sr.sparse_coo_tensor([[0, 1], [0, 1], [1, 0]], [2.0, 3.0], (2, 2, 2))


@pytest.mark.parametrize("call,exc,message", [
    (lambda: sr.bmm(A, sr.ones(3, 2, 1)), ValueError, r"'self.size\(0\)' and 'mat2.size\(0\)' must match"),
    (lambda: sr.bmm(A, sr.ones(2, 3, 1)), ValueError, r"'self.size\(2\)' and 'mat2.size\(1\)' must match"),
    (lambda: sr.bmm(A, sr.ones(2, 1)), ValueError, "Tensor 'mat2' must have 3 dims, but has 2"),
    (lambda: sr.bmm(sr.sparse_coo_tensor([[0], [0]], [1.0], (2, 2)), sr.ones(2, 2, 1)), ValueError,
     "Tensor 'self' must have 3 sparse dims, but has 2"),
    (lambda: sr.bmm(A, sr.ones(2, 2, 1, dtype=F64)), TypeError, "self dtype float32 does not match mat2 dtype float64"),
    (lambda: A @ sr.ones(2, 1), ValueError, "takes a 3-D partner"),
    (lambda: sr.ones(2, 2) @ A, ValueError, "takes a 3-D partner"),
    (lambda: sr.sparse.mm(A, sr.ones(2, 1)), ValueError, "Tensor 'mat2' must have 3 dims, but has 2"),
    (lambda: sr.sparse.mm(sr.ones(2, 2, 2), A, reduce="amax"), ValueError, "needs a sparse mat1 and a dense mat2"),
    (lambda: sr.sparse.mm(A, sr.ones(2, 2, 1), reduce="prod"), ValueError, "reduce='prod' is not supported"),
    (lambda: sr.bmm(A, sr.tensor([[0.0, 1.0], [1.0, 0.0]]).to_sparse_csr()), TypeError, "sparse CSR matrix"),
    (lambda: sr.sparse.sampled_addmm(A, sr.ones(3, 2, 2), sr.ones(2, 2, 2)), ValueError,
     r"Expected mat1 and mat2 to have the same batch size, but got \[3\] and \[2\]"),
    (lambda: sr.sparse.sampled_addmm(A, sr.ones(2, 2, 3), sr.ones(2, 2, 2)), ValueError,
     r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 2x2\)"),
    (lambda: sr.sparse.sampled_addmm(A, sr.ones(2, 2), sr.ones(2, 2)), ValueError, "needs 3-D mat1 and mat2"),
    (lambda: sr.sparse.sampled_addmm(A, sr.ones(2, 2, 2), sr.ones(2, 2, 3)), ValueError,
     r"input of shape \(2, 2, 2\) does not match the product's shape \(2, 2, 3\)"),
    (lambda: sr.sparse.sampled_addmm(sr.ones(2, 2, 2), sr.ones(2, 2, 2), sr.ones(2, 2, 2)), TypeError,
     "input must be a sparse matrix"),
])
def test_bad_input_is_refused_before_any_kernel(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_torch_says_the_same(rng):
    """The messages above are torch 2.13's (measured here, so a new torch shows up)."""
    torch = torch_or_skip()
    a = torch.sparse_coo_tensor(torch.tensor([[0, 1], [0, 1], [1, 0]]), torch.tensor([2.0, 3.0]), (2, 2, 2))
    for other, message in [(torch.ones(3, 2, 1), r"'self.size\(0\)' and 'mat2.size\(0\)' must match"),
                           (torch.ones(2, 3, 1), r"'self.size\(2\)' and 'mat2.size\(1\)' must match"),
                           (torch.ones(2, 1), "Tensor 'mat2' must have 3 dims, but has 2")]:
        with pytest.raises(RuntimeError, match=message):
            torch.bmm(a, other)


def test_batched_products_do_not_mutate_their_inputs(rng):
    ops = batch_operands(rng)
    before = [(t._idx.copy(), t._val.copy()) if isinstance(t, sr.SparseTensor) else t.numpy().copy() for t in ops]
    run_all(*ops)
    for t, b in zip(ops, before):
        if isinstance(t, sr.SparseTensor):
            assert same_bits(t._idx, b[0]) and same_bits(t._val, b[1])
        else:
            assert same_bits(t.numpy(), b)


def test_a_2d_input_of_sampled_addmm_over_a_batch_is_refused_by_name():
    # torch broadcasts it; sparse_ref asks for one matrix per batch (probe: the error named
    # only mat1's dimensions)
    with pytest.raises(sr._errors.ArgumentError, match="2-D input is not broadcast over a batch"):
        sr.sparse.sampled_addmm(sr.eye(2).to_sparse(), sr.ones(3, 2, 2), sr.ones(3, 2, 2))

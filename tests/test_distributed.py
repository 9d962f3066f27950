"""sparse_ref.distributed on a Dask LocalCluster (2 worker processes, loopback only): every
product and every gradient is bit for bit the one-machine result, for any number of parts,
and a worker lost between or during ops costs time, never the answer.

One cluster serves the whole module (starting one takes seconds); skipped, with the reason,
where Dask is not installed (the ``test`` and ``distributed`` extras install it).
"""

import os
import signal
import sys
import time

import numpy as np
import pytest

pytest.importorskip("distributed", reason="sparse_ref.distributed needs dask[distributed] "
                                          "(pip install \"sparse_ref[distributed]\")")

import cloudpickle  # noqa: E402 (after the skip)
from conftest import assert_same_sparse, random_dense, random_sparse, run_child, same_bits  # noqa: E402
from distributed import Client, LocalCluster, WorkerPlugin, wait  # noqa: E402

import sparse_ref as sr  # noqa: E402
import sparse_ref.distributed as srd  # noqa: E402

NPARTS = [1, 2, 3, 5]
DTYPES = [sr.float64, sr.complex128]

# The fault plugin below is defined here; workers get it by value, not by importing this file.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def sparse_ref_file():
    return sr.__file__


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    # the workers must run this sparse_ref, not another install
    assert set(client.run(sparse_ref_file).values()) == {sr.__file__}
    yield client
    client.close()
    cluster.close()


def local_and_distributed(x):
    """A local leaf and an equal one to give the distributed ops (each gets its own .grad)."""
    if isinstance(x, sr.Tensor):
        return (sr.tensor(x.detach().numpy().copy(), requires_grad=True),
                sr.tensor(x.detach().numpy().copy(), requires_grad=True))
    return x.detach().requires_grad_(True), x.detach().requires_grad_(True)


def assert_same_dense(x, y):
    assert same_bits(x.detach().numpy(), y.detach().numpy())


def operands(rng, dtype, m=23, k=17):
    """An uncoalesced sparse a (duplicates, explicit zeros, empty rows) and a dense b."""
    return random_sparse(rng, (m, k), 70, dtype), random_dense(rng, (k, 5), dtype)


def test_from_sparse_cuts_whole_rows_of_about_equal_entries(client, rng):
    a = random_sparse(rng, (40, 9), 200)
    A = srd.from_sparse(a, 4)
    assert A.wait() is A  # every part made, on the workers
    counts = A.nnz_per_part()
    assert A.shape == (40, 9) and A.nparts == 4 and sum(counts) == a.coalesce()._nnz()
    assert max(counts) - min(counts) <= 2 * max(np.diff(a._csr()[0]))  # cut between whole rows
    assert A.row_starts[0] == 0 and A.row_starts[-1] == 40
    assert_same_sparse(A.gather(), a.coalesce())
    assert srd.from_sparse(a.to_sparse_csr(), 3).gather().layout == sr.sparse_csr
    tiny = srd.from_sparse(sr.sparse_coo_tensor([[0, 1], [1, 0]], [1., 2.], (2, 2)), 5)
    assert tiny.nparts == 5 and sum(tiny.nnz_per_part()) == 2  # more parts than rows: some empty


def test_the_seed_example_with_a_distributed_operand(client):
    sr.manual_seed(0)
    a = sr.randn(2, 3, dtype=sr.float64).to_sparse().requires_grad_(True)
    b = sr.randn(3, 2, dtype=sr.float64, requires_grad=True)
    b_dist = sr.tensor(b.detach().numpy().copy(), requires_grad=True)
    sr.sparse.mm(a, b).sum().backward()
    A = srd.from_sparse(a.detach(), 4).requires_grad_(True)
    y = srd.mm(A, b_dist)
    y.sum().backward()
    assert isinstance(A.grad, srd.DistSparse)
    assert_same_sparse(A.grad.gather(), a.grad)
    assert_same_dense(b_dist.grad, b.grad)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nparts", NPARTS)
def test_spmm_forward_and_backward_are_the_local_bits(client, rng, nparts, dtype):
    a, b = operands(rng, dtype)
    g = random_dense(rng, (23, 5), dtype)
    a_loc, a_dist = local_and_distributed(a)
    b_loc, b_dist = local_and_distributed(b)
    y = sr.sparse.mm(a_loc, b_loc)
    y.backward(g)
    A = srd.from_sparse(a_dist.detach(), nparts).requires_grad_(True)
    y_dist = srd.mm(A, b_dist)
    assert_same_dense(y_dist, y)
    y_dist.backward(g)
    assert_same_sparse(A.grad.gather(), a_loc.grad)
    assert_same_dense(b_dist.grad, b_loc.grad)


@pytest.mark.parametrize("reduce", ["mean", "amax", "amin"])
@pytest.mark.parametrize("nparts", [2, 3])
def test_spmm_reduce_forward_and_backward_are_the_local_bits(client, rng, nparts, reduce):
    a, b = operands(rng, sr.float64)
    b = sr.tensor(np.round(b.numpy(), 1))  # ties: the first stored entry wins in both
    g = random_dense(rng, (23, 5))
    a_loc, _ = local_and_distributed(a)
    b_loc, b_dist = local_and_distributed(b)
    y = sr.sparse.mm(a_loc, b_loc, reduce=reduce)
    y.backward(g)
    A = srd.from_sparse(a.detach(), nparts).requires_grad_(True)
    y_dist = srd.mm(A, b_dist, reduce=reduce)
    assert_same_dense(y_dist, y)
    y_dist.backward(g)
    assert_same_sparse(A.grad.gather(), a_loc.grad)
    assert_same_dense(b_dist.grad, b_loc.grad)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nparts", NPARTS)
def test_spgemm_forward_and_backward_are_the_local_bits(client, rng, nparts, dtype):
    a = random_sparse(rng, (23, 17), 60, dtype)
    b = random_sparse(rng, (17, 11), 50, dtype)
    a_loc, _ = local_and_distributed(a)
    b_loc, _ = local_and_distributed(b)
    c = sr.sparse.mm(a_loc, b_loc)
    g = random_dense(rng, c.shape, dtype)
    c.backward(g)
    A = srd.from_sparse(a.detach(), nparts).requires_grad_(True)
    B = srd.from_sparse(b.detach(), nparts % 3 + 1).requires_grad_(True)  # B cut otherwise
    C = srd.mm(A, B)
    c_dist = C.gather()
    assert_same_sparse(c_dist, c)
    c_dist.backward(g)
    assert_same_sparse(A.grad.gather(), a_loc.grad)
    assert_same_sparse(B.grad.gather(), b_loc.grad)


def test_wide_operands_are_looked_up_without_a_table_per_column(client, rng):
    """Columns far more than entries: the rows a part needs are found by sorting, not by a
    mark per column (the other path of _worker.needed and local_cols), with the same bits."""
    a = random_sparse(rng, (6, 200_000), 30)
    b = random_sparse(rng, (200_000, 4), 40000)
    a_loc, _ = local_and_distributed(a)
    b_loc, _ = local_and_distributed(b)
    c = sr.sparse.mm(a_loc, b_loc)
    c.sum().backward()
    A = srd.from_sparse(a.detach(), 3).requires_grad_(True)
    B = srd.from_sparse(b.detach(), 2).requires_grad_(True)
    c_dist = srd.mm(A, B).gather()
    assert_same_sparse(c_dist, c)
    c_dist.sum().backward()
    assert_same_sparse(A.grad.gather(), a_loc.grad)
    assert_same_sparse(B.grad.gather(), b_loc.grad)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nparts", NPARTS)
def test_sddmm_forward_and_backward_are_the_local_bits(client, rng, nparts, dtype):
    s = random_sparse(rng, (23, 13), 60, dtype)
    x, y = random_dense(rng, (23, 9), dtype), random_dense(rng, (9, 13), dtype)
    beta, alpha = (0.5 - 1j, 2 + 0.25j) if dtype == sr.complex128 else (0.5, -2.0)
    s_loc, _ = local_and_distributed(s)
    (x_loc, x_dist), (y_loc, y_dist) = local_and_distributed(x), local_and_distributed(y)
    out = sr.sparse.sampled_addmm(s_loc, x_loc, y_loc, beta=beta, alpha=alpha)
    g = random_dense(rng, out.shape, dtype)
    out.backward(g)
    S = srd.from_sparse(s.detach(), nparts).requires_grad_(True)
    out_dist = srd.sampled_addmm(S, x_dist, y_dist, beta=beta, alpha=alpha).gather()
    assert_same_sparse(out_dist, out)
    out_dist.backward(g)
    assert_same_sparse(S.grad.gather(), s_loc.grad)
    assert_same_dense(x_dist.grad, x_loc.grad)
    assert_same_dense(y_dist.grad, y_loc.grad)


def test_operands_are_taken_as_they_are_at_the_call(client, rng):
    """What goes to the cluster is copied at the call: changing an operand in place after
    an op returns (before its tasks ran, say) does not reach the result."""
    s = random_sparse(rng, (23, 13), 60)
    x, y = random_dense(rng, (23, 9)), random_dense(rng, (9, 13))
    expected = sr.sparse.sampled_addmm(s, x, y)
    out = srd.sampled_addmm(srd.from_sparse(s, 3), x, y)  # returns before the parts are made
    x.add_(1.0)
    y.mul_(2.0)
    assert_same_sparse(out.gather(), expected)


def seed(loss):
    """``loss.backward()`` for a complex loss too, whose seed torch asks to be given."""
    loss.backward(sr.ones_like(loss))


def test_the_transpose_is_a_shuffle_and_differentiable(client, rng):
    a, _ = operands(rng, sr.complex128)
    b = random_dense(rng, (23, 4), sr.complex128)
    a_loc, _ = local_and_distributed(a)
    y = sr.sparse.mm(a_loc.t(), b)
    seed(y.sum())
    A = srd.from_sparse(a.detach(), 3).requires_grad_(True)
    T = A.t()
    assert T.shape == (17, 23) and T.nparts == 3
    assert_same_sparse(T.gather(), a.t().coalesce())
    y_dist = srd.mm(T, b)
    assert_same_dense(y_dist, y)
    seed(y_dist.sum())
    assert_same_sparse(A.grad.gather(), a_loc.grad)


def test_gradients_reach_local_sparse_leaves(client, rng):
    """A local sparse operand (distributed on the way) gets its gradient back."""
    a = random_sparse(rng, (23, 17), 60)
    b = random_sparse(rng, (17, 11), 50)
    a_loc, a_dist = local_and_distributed(a)
    b_loc, b_dist = local_and_distributed(b)
    sr.sparse.mm(a_loc, b_loc).sum().backward()
    srd.mm(srd.from_sparse(a_dist, 2), b_dist).gather().sum().backward()
    assert_same_sparse(a_dist.grad, a_loc.grad)
    assert_same_sparse(b_dist.grad, b_loc.grad)


def test_backward_runs_on_the_forward_backend(client, rng):
    a, b = operands(rng, sr.float64)
    A = srd.from_sparse(a, 2)
    with sr.use_backend("reference"):  # the workers run the readable kernels for this op
        y = srd.mm(A, b)
    assert_same_dense(y, sr.sparse.mm(a, b))


def test_bad_operands_are_refused_by_name(client, rng):
    a, b = operands(rng, sr.float64)
    A = srd.from_sparse(a, 2)
    with pytest.raises(ValueError, match=r"shapes cannot be multiplied \(23x17 and 5x17\)"):
        srd.mm(A, b.t())
    with pytest.raises(TypeError, match="does not match"):
        srd.mm(A, b.float())
    with pytest.raises(TypeError, match="mat1 must be distributed"):
        srd.mm(a, A.t())
    with pytest.raises(ValueError, match="nparts must be a positive int"):
        srd.from_sparse(a, 0)
    with pytest.raises(TypeError, match="a must be a sparse matrix"):
        srd.from_sparse(b, 2)
    with pytest.raises(ValueError, match="reduce"):
        srd.mm(A, A.t(), reduce="mean")


def test_the_transpose_cuts_a_narrow_band_of_columns_by_its_entries(client, rng):
    # every entry in the first 100 of 200,000 columns: narrower than any fixed bin of the
    # columns, the band is cut where its entries are (before, one part got all of them)
    n = 6000
    row, col = rng.integers(0, 2000, n), rng.integers(0, 100, n)
    a = sr.sparse_coo_tensor(np.stack([row, col]), rng.standard_normal(n), (2000, 200_000), dtype=sr.float64)
    for nparts in (2, 4):
        T = srd.from_sparse(a, nparts).t()
        counts = T.nnz_per_part()
        assert sum(counts) == a.coalesce()._nnz() and max(counts) < 1.2 * sum(counts) / nparts, counts
        assert_same_sparse(T.gather(), a.t().coalesce())


def test_more_messages_that_name_the_fix(client, rng):
    a, b = operands(rng, sr.float64)
    A = srd.from_sparse(a, 2)
    for many in (1025, 10**12, 2**63):  # more parts than rows are empty ones, up to 1024 of them
        with pytest.raises(ValueError, match=f"nparts={many} is more than the 23 rows of a and more than 1024"):
            srd.from_sparse(a, many)
    with pytest.raises(TypeError, match="client must be a dask.distributed.Client, got str"):
        srd.from_sparse(a, 2, client="tcp://127.0.0.1:1")
    with pytest.raises(TypeError, match="for a distributed matrix use the ops of sparse_ref.distributed"):
        sr.sparse.mm(A, b)
    with pytest.raises(TypeError, match="input must be distributed .* got a local SparseTensor"):
        srd.sampled_addmm(a, random_dense(rng, (23, 3), sr.float64), random_dense(rng, (3, 17), sr.float64))
    with pytest.raises(IndexError, match="Dimension out of range"):
        A.size(2)
    assert (A.is_sparse, A.is_sparse_csr) == (True, False)
    C = srd.from_sparse(a.to_sparse_csr(), 2)
    assert (C.is_sparse, C.is_sparse_csr) == (False, True)


def test_a_backend_registered_here_is_refused_before_work_is_sent(client, rng):
    a, b = operands(rng, sr.float64)
    A = srd.from_sparse(a, 2)
    sr.register_backend("here_only", "sparse_ref.reference")
    with sr.use_backend("here_only"):
        for call in (lambda: srd.mm(A, b), lambda: A.t(), lambda: srd.mm(A, A.t()),
                     lambda: srd.sampled_addmm(A, random_dense(rng, (23, 3), sr.float64),
                                               random_dense(rng, (3, 17), sr.float64))):
            with pytest.raises(RuntimeError, match="registered in this process only"):
                call()
    assert_same_dense(srd.mm(A, b), sr.sparse.mm(a, b))


def test_operands_of_two_clients_are_named_as_such(client, rng):
    a, _ = operands(rng, sr.float64)
    with Client(client.cluster, set_as_default=False) as other:
        with pytest.raises(TypeError, match="different Dask Client objects"):
            srd.mm(srd.from_sparse(a, 2), srd.from_sparse(a.t().coalesce(), 2, client=other))


def test_a_closed_client_is_named(rng):
    a, _ = operands(rng, sr.float64)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as own:
        A = srd.from_sparse(a, 2, client=own)
        assert A.wait().nparts == 2
    for use in (A.gather, A.wait, lambda: srd.mm(A, A.t())):
        with pytest.raises(RuntimeError, match="client of this distributed matrix is closed"):
            use()


def test_import_sparse_ref_works_without_dask(tmp_path):
    code = ("import sys; sys.modules['dask'] = sys.modules['distributed'] = None\n"
            "import sparse_ref\n"
            "try:\n    import sparse_ref.distributed\nexcept ImportError as e:\n    print(e)\n")
    run = run_child(["-c", code], tmp_path)
    assert run.returncode == 0, run.stderr
    assert 'pip install "sparse_ref[distributed]"' in run.stdout


# -- faults (last in the module: they restart workers) ------------------------------------------

class KillWhenArmed(WorkerPlugin):
    """Kill the worker process the moment a task of an armed op begins to run: an op is
    armed by a file named after its key prefix, and the first worker to remove it dies."""

    def __init__(self, folder: str):
        self.folder = folder

    def transition(self, key, start, finish, **kwargs):
        if finish != "executing":
            return
        for prefix in os.listdir(self.folder):
            if str(key).startswith(prefix):
                try:
                    os.remove(os.path.join(self.folder, prefix))
                except FileNotFoundError:
                    return
                os.kill(os.getpid(), signal.SIGKILL)


def settle(client, timeout=60.0):
    """Wait until both workers run (after a kill, the nanny starts a new process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(client.run(os.getpid)) == 2:
                return
        except Exception:  # a dead worker the scheduler has not dropped yet
            pass
        time.sleep(0.1)
    raise TimeoutError("the cluster did not get its 2 workers back")


def kill_holder(client, future):
    """Kill the worker process that holds ``future`` (between two ops), and wait until the
    scheduler knows."""
    wait(future)
    address = next(iter(client.who_has([future])[future.key]))
    os.kill(client.run(os.getpid)[address], signal.SIGKILL)
    while address in client.scheduler_info()["workers"]:
        time.sleep(0.05)


def test_a_worker_lost_between_or_during_ops_costs_time_not_bits(client, rng, tmp_path):
    a = random_sparse(rng, (60, 40), 400, sr.complex128)
    b = random_sparse(rng, (40, 30), 300, sr.complex128)
    x = random_dense(rng, (40, 6), sr.complex128)
    a_loc, _ = local_and_distributed(a)
    b_loc, _ = local_and_distributed(b)
    x_loc, x_dist = local_and_distributed(x)
    c = sr.sparse.mm(a_loc, b_loc)
    g = random_dense(rng, c.shape, sr.complex128)
    c.backward(g)
    a_loc2, _ = local_and_distributed(a)
    y = sr.sparse.mm(a_loc2, x_loc)
    seed(y.sum())

    settle(client)
    client.register_plugin(KillWhenArmed(str(tmp_path)), name="kill-when-armed")
    try:
        A = srd.from_sparse(a.detach(), 3).requires_grad_(True)
        B = srd.from_sparse(b.detach(), 2).requires_grad_(True)
        kill_holder(client, A._parts[0])                # between: a part of A is lost
        (tmp_path / "sr-spgemm-").touch()
        C = srd.mm(A, B).gather()                       # during: a worker dies in SpGEMM
        assert not (tmp_path / "sr-spgemm-").exists()
        assert_same_sparse(C, c)
        settle(client)
        kill_holder(client, A._parts[1])                # between forward and backward
        C.backward(g)
        assert_same_sparse(A.grad.gather(), a_loc.grad)
        assert_same_sparse(B.grad.gather(), b_loc.grad)

        settle(client)
        A.grad = None
        (tmp_path / "sr-spmm-backward-").touch()
        y_dist = srd.mm(A, x_dist)
        seed(y_dist.sum())                              # during: a worker dies in A^H G
        assert not (tmp_path / "sr-spmm-backward-").exists()
        assert_same_dense(y_dist, y)
        assert_same_sparse(A.grad.gather(), a_loc2.grad)
        assert_same_dense(x_dist.grad, x_loc.grad)
    finally:
        settle(client)
        client.unregister_worker_plugin("kill-when-armed")


class _HereBatch:
    """A stand-in for Batch that runs the workers' functions in this process (no cluster)."""

    def map(self, what, fn, *args):
        n = max(len(a) for a in args if isinstance(a, list))
        return [fn(*(a[p] if isinstance(a, list) else a for a in args)) for p in range(n)]

    def gather(self, results):
        return results


@pytest.mark.parametrize("seed", range(6))
def test_column_cuts_are_the_exact_cuts_of_the_entries(seed):
    # the interval narrowing (three rounds and more for 10M columns) finds, for every share,
    # the first column below which that share of the entries lies: entries before a band
    # count once (they once counted twice from the second round on, and the cut slid off)
    from sparse_ref.distributed._matrix import balanced, column_cuts
    rng = np.random.default_rng(seed)
    ncols = 10_000_000
    cols = np.concatenate([rng.integers(0, ncols, 20_000), rng.integers(5_000_000, 5_000_100, 10_000),
                           rng.integers(0, 50, 3000)])
    parts = [(None, np.sort(chunk), None) for chunk in np.array_split(rng.permutation(cols), 3)]
    counts = np.bincount(cols, minlength=ncols)
    exact = balanced(np.concatenate([[0], np.cumsum(counts)]), 4)
    got = column_cuts(_HereBatch(), parts, ncols, 4)
    assert got.tolist() == exact.tolist()
    assert column_cuts(_HereBatch(), parts, ncols, 4, total=cols.shape[0]).tolist() == exact.tolist()

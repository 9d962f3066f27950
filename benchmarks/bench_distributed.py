"""sparse_ref.distributed on one machine (issue 15): a Dask LocalCluster with 1 and 2 worker
processes against the local call, for SpMM and SpGEMM at the benchmark sizes
(``matrices.py``): what going through Dask costs, and what a second worker process buys.

Every configuration uses the machine's 2 cores: the local call runs its kernels on 2
OpenMP threads; 1 worker on 2; 2 workers on 1 each (one Dask thread per worker, nparts =
workers). Each result is checked bit for bit against the local one before it is timed.

- ``distribute``: ``from_sparse(a, nparts).wait()`` (the parts travel inside their tasks);
- ``spmm``: ``srd.mm(A, b)`` with B dense (n x k), the result back in this process;
- ``spmm_backward``: ``y.backward(g)`` of that product for A's and b's gradients, the
  transpose (a shuffle) made afresh each time;
- ``spgemm``: ``srd.mm(A, A).wait()`` (the product stays on the workers), and
  ``spgemm_gather`` with ``.gather()`` of the product into this process;
- ``spmm_10x10``: one tiny product, i.e. the fixed cost of a round trip through Dask.

    python benchmarks/bench_distributed.py [--quick] [--repeat 3]
"""

import argparse

import numpy as np
from _common import save, table, timeit
from distributed import Client, LocalCluster
from matrices import MATRICES

import sparse_ref as sr
import sparse_ref.distributed as srd

K = 16


def same_bits(x, y) -> bool:
    return x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small matrices, for a smoke run")
    args = parser.parse_args()
    sr.set_num_threads(2)
    rng = np.random.default_rng(42)
    mats = {name: (make(20_000) if name != "laplacian" else make(140)) if args.quick else make()
            for name, make in MATRICES.items()}
    rows = []

    def record(op, matrix, config, stats, **extra):
        rows.append({"op": op, "matrix": matrix, "config": config, **extra, **stats})

    # -- the local call, 2 threads
    local = {}
    for name, m in mats.items():
        a = sr.from_scipy(m).to_sparse()
        b = sr.tensor(rng.standard_normal((m.shape[1], K)))
        g = sr.tensor(rng.standard_normal((m.shape[0], K)))
        local[name] = (a, b, g, sr.sparse.mm(a, b).numpy(), backward_local(a, b, g), sr.sparse.mm(a, a))
        record("spmm", name, "local", timeit(lambda: sr.sparse.mm(a, b), args.repeat), k=K)
        record("spmm_backward", name, "local", timeit(lambda: backward_local(a, b, g), args.repeat), k=K)
        record("spgemm", name, "local", timeit(lambda: sr.sparse.mm(a, a), args.repeat))
        print(f"{name}: n = {m.shape[0]}, nnz = {m.nnz}, nnz(A @ A) = {local[name][-1]._nnz()}")
    tiny_a = sr.from_scipy(mats["uniform"][:10, :10]).to_sparse()
    tiny_b = sr.tensor(rng.standard_normal((10, 10)))
    record("spmm_10x10", "uniform[:10, :10]", "local", timeit(lambda: sr.sparse.mm(tiny_a, tiny_b), 200, 10), k=10)

    # -- LocalCluster: 1 worker with 2 threads for its kernels, 2 workers with 1 each
    for workers in (1, 2):
        config = f"{workers} worker" + "s" * (workers > 1)
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.run(sr.set_num_threads, 2 // workers)
            for name, (a, b, g, y, (grad_a, grad_b), c) in local.items():
                record("distribute", name, config, timeit(lambda: srd.from_sparse(a, workers).wait(), args.repeat))
                A = srd.from_sparse(a, workers).wait()
                assert same_bits(srd.mm(A, b).numpy(), y)
                record("spmm", name, config, timeit(lambda: srd.mm(A, b), args.repeat), k=K)
                grads = backward_distributed(A, b, g)
                assert same_bits(grads[0].gather().values().numpy(), grad_a.values().numpy())
                assert same_bits(grads[1].numpy(), grad_b.numpy())
                record("spmm_backward", name, config, timeit(lambda: backward_distributed(A, b, g), args.repeat),
                       k=K)
                A.requires_grad_(False)
                A.grad = None
                assert same_bits(srd.mm(A, A).gather().values().numpy(), c.values().numpy())
                record("spgemm", name, config, timeit(lambda: srd.mm(A, A).wait(), args.repeat))
                record("spgemm_gather", name, config, timeit(lambda: srd.mm(A, A).gather(), args.repeat))
                del A
            tiny = srd.from_sparse(tiny_a, workers)
            record("spmm_10x10", "uniform[:10, :10]", config, timeit(lambda: srd.mm(tiny, tiny_b), 50, 5), k=10)

    for r in rows:
        base = next((x for x in rows if x["config"] == "local" and x["op"] == r["op"]
                     and x["matrix"] == r["matrix"]), None)
        if base is None and r["op"] == "spgemm_gather":
            base = next(x for x in rows if x["config"] == "local" and x["op"] == "spgemm" and x["matrix"] == r["matrix"])
        r["ratio_vs_local"] = round(r["median_ms"] / base["median_ms"], 2) if base else None
    print(table(rows, ["op", "matrix", "config", "median_ms", "ratio_vs_local"]))
    if not args.quick:
        print(f"\nwrote {save('distributed', {'dtype': 'float64', 'cores': 2, 'k': K, 'results': rows})}")


def backward_local(a, b, g):
    """``mm(a, b).backward(g)``: both gradients (the forward included)."""
    a, b = a.detach().requires_grad_(True), sr.tensor(b.numpy(), requires_grad=True)
    sr.sparse.mm(a, b).backward(g)
    return a.grad, b.grad


def backward_distributed(A, b, g):
    """The same with a distributed a, its transpose (a shuffle) made afresh each time."""
    A._cache.clear()
    A.grad = None
    b = sr.tensor(b.numpy(), requires_grad=True)
    srd.mm(A.requires_grad_(True), b).backward(g)
    return A.grad.wait(), b.grad


if __name__ == "__main__":
    main()

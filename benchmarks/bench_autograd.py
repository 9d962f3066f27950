"""Forward + backward of both gradients, sparse_ref vs torch (issue 4).

1. The uniform matrix (n = 200,000, 10 stored entries per row), B dense n x 64, float64,
   2 threads: ``y = mm(A, B); y.sum().backward()`` with both A and B requiring grad.
   torch runs it with a CSR A (its COO path would build the dense n x n gradient, 320 GB,
   so it is not run).
2. The memory case: A is 2**20 x 2**20 with 3 stored entries, B is 2**20 x 4: time and
   peak traced memory of the same forward + backward (torch's COO path asks for 4 TB).

    python benchmarks/bench_autograd.py [--repeat 5]
"""

import argparse
import time
import tracemalloc

import numpy as np
from _common import bandwidth, save, table, timeit, timeit_interleaved
from matrices import uniform

import sparse_ref as sr


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    sr.set_num_threads(2)
    rows = []

    m = uniform()
    n, k = m.shape[0], 64
    b_np = np.random.default_rng(3).standard_normal((n, k))
    a0, b0 = sr.from_scipy(m).to_sparse(), sr.tensor(b_np)  # COO (a CSR mat1 works the same)
    a0._csr()  # the CSR arrays of the constant operand, as a training loop would have them

    def ours():
        a, b = a0.detach().requires_grad_(), b0.detach().requires_grad_()
        a._cache = a0._cache  # same stored arrays: reuse their CSR form
        sr.sparse.mm(a, b).sum().backward()
        return a.grad, b.grad

    crow = torch.from_numpy(m.indptr.astype(np.int64))
    col = torch.from_numpy(m.indices.astype(np.int64))
    vals = torch.from_numpy(m.data)

    tb0 = torch.from_numpy(b_np).clone()  # torch's own memory, as sr.tensor's copy is ours

    def theirs():
        a = torch.sparse_csr_tensor(crow, col, vals, (n, n)).requires_grad_(True)
        b = tb0.detach().requires_grad_(True)
        torch.sparse.mm(a, b).sum().backward()
        return a.grad, b.grad

    ga, gb = ours()
    ta, tb = theirs()
    np.testing.assert_allclose(gb.numpy(), tb.numpy(), rtol=1e-9, atol=1e-9)
    tav = ta.values().numpy() if ta.layout != torch.strided else ta.numpy()[m.nonzero()]
    np.testing.assert_allclose(ga.values().numpy(), tav, rtol=1e-9, atol=1e-9)
    # the least memory the three products move, each array once: y = A B (A, B, y);
    # grad B = A^T G (A^T, G, grad B); grad A = SDDMM (pattern, G, B, grad A's values)
    least = 2 * (8 * (n + 1) + 16 * m.nnz) + 24 * m.nnz + 6 * 8 * n * k
    stats = timeit_interleaved({"sparse_ref": ours, "torch_csr": theirs}, args.repeat)
    rows.append({"case": "uniform fwd+bwd k=64", "library": "sparse_ref", **stats["sparse_ref"], "min_bytes": least})
    rows.append({"case": "uniform fwd+bwd k=64", "library": "torch_csr", **stats["torch_csr"]})

    # the same with a gradient G of the output that is a full n x k array (y.backward(G)),
    # not sum()'s broadcast ones, whose single row sparse_ref's backward reads directly
    g_np = np.random.default_rng(4).standard_normal((n, k))
    g_ours, g_torch = sr.tensor(g_np), torch.from_numpy(g_np).clone()

    def ours_g():
        a, b = a0.detach().requires_grad_(), b0.detach().requires_grad_()
        a._cache = a0._cache
        sr.sparse.mm(a, b).backward(g_ours)
        return a.grad, b.grad

    def theirs_g():
        a = torch.sparse_csr_tensor(crow, col, vals, (n, n)).requires_grad_(True)
        b = tb0.detach().requires_grad_(True)
        torch.sparse.mm(a, b).backward(g_torch)
        return a.grad, b.grad

    ga, gb = ours_g()
    ta, tb = theirs_g()
    np.testing.assert_allclose(gb.numpy(), tb.numpy(), rtol=1e-9, atol=1e-9)
    stats = timeit_interleaved({"sparse_ref": ours_g, "torch_csr": theirs_g}, args.repeat)
    rows.append({"case": "uniform fwd+bwd k=64, full G", "library": "sparse_ref", **stats["sparse_ref"],
                 "min_bytes": least})
    rows.append({"case": "uniform fwd+bwd k=64, full G", "library": "torch_csr", **stats["torch_csr"]})

    big = 2**20
    a_big = sr.sparse_coo_tensor([[0, 5, big - 1], [big - 1, 3, 0]], [1.0, 2.0, 3.0], (big, big), dtype=sr.float64)
    b_big = sr.ones(big, 4, dtype=sr.float64)

    def huge():
        a, b = a_big.detach().requires_grad_(), b_big.detach().requires_grad_()
        sr.sparse.mm(a, b).sum().backward()

    stats = timeit(huge, args.repeat)
    tracemalloc.start()
    t0 = time.perf_counter()
    huge()
    once = (time.perf_counter() - t0) * 1e3
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rows.append({"case": "2**20 x 2**20, 3 nnz, fwd+bwd", "library": "sparse_ref", **stats,
                 "traced_peak_bytes": peak, "traced_run_ms": round(once, 3)})

    base = rows[0]["median_ms"]
    ceiling = bandwidth()["copy_2_threads"]
    for r in rows[:2]:
        r["ratio_vs_sparse_ref"] = round(r["median_ms"] / base, 2)
        r["fraction_of_bandwidth"] = round(least / (r["median_ms"] / 1e3) / 1e9 / ceiling, 3)
    print(table(rows, ["case", "library", "median_ms", "ratio_vs_sparse_ref", "traced_peak_bytes",
                       "fraction_of_bandwidth"]))
    print(f"\nwrote {save('autograd', {'dtype': 'float64', 'threads': 2, 'results': rows})}")


if __name__ == "__main__":
    main()

"""coalesce of 10M random (row, col) draws in a 100k x 100k matrix, float64.

Side by side, on the same arrays: sparse_ref (Cython kernels, 1 and 2 threads), SciPy
(``coo_array.tocsr()``: sorted, summed indices) and torch (``.coalesce()``, 2 threads).
Targets (issue 2), on 2 threads: at least 2x faster than SciPy, 5x faster than torch.

    python benchmarks/bench_coalesce.py [--nnz 10000000] [--n 100000] [--repeat 7]
"""

import argparse

import numpy as np
from _common import bandwidth, save, table, timeit, timeit_interleaved

import sparse_ref as sr


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--nnz", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    row = rng.integers(0, args.n, args.nnz)
    col = rng.integers(0, args.n, args.nnz)
    val = rng.standard_normal(args.nnz)
    shape = (args.n, args.n)
    s = sr.sparse_coo_tensor(np.stack([row, col]), val, shape)
    rows = []

    import scipy.sparse as sp
    import torch

    m = sp.coo_array((val, (row, col)), shape=shape)

    def scipy_coalesce():
        c = m.tocsr()
        c.sum_duplicates()  # no-op when tocsr already summed and sorted
        return c

    def ours_on(threads, read_rows=False):
        def run():
            sr.set_num_threads(threads)
            c = s.coalesce()
            return c.indices() if read_rows else c  # the row indices are written on first read
        return run

    with sr.use_backend("cython"):
        # side by side: one call of each in turn, so a slow spell falls on all alike
        stats = timeit_interleaved({1: ours_on(1), 2: ours_on(2), "rows": ours_on(2, read_rows=True),
                                    "scipy": scipy_coalesce}, args.repeat)
        ours = s.coalesce()
    rows.append({"library": "sparse_ref", "threads": 1, **stats[1]})
    rows.append({"library": "sparse_ref", "threads": 2, **stats[2]})
    rows.append({"library": "sparse_ref_rows", "threads": 2, **stats["rows"]})
    rows.append({"library": "scipy", "threads": 1, **stats["scipy"]})
    ref = scipy_coalesce()
    assert np.array_equal(ours._csr()[0], ref.indptr) and np.array_equal(ours.indices().numpy()[1], ref.indices)

    torch.set_num_threads(2)
    t = torch.sparse_coo_tensor(torch.from_numpy(np.stack([row, col])), torch.from_numpy(val), shape,
                                check_invariants=False)
    # torch's coalesce is slow: fewer calls, on their own
    rows.append({"library": "torch", "threads": 2, **timeit(lambda: t.coalesce(), max(3, args.repeat // 2))})
    assert np.array_equal(t.coalesce().indices().numpy(), ours.indices().numpy())

    ours2 = next(r for r in rows if r["library"] == "sparse_ref" and r["threads"] == 2)["median_ms"]
    # the least memory coalesce moves: the COO input read once (row, col, value), the
    # coalesced COO output written once; as a fraction of the copy bandwidth
    least = 24 * args.nnz + 24 * ours._nnz()
    ceiling = bandwidth()["copy_2_threads"]
    for r in rows:
        r["ratio_vs_sparse_ref_2t"] = round(r["median_ms"] / ours2, 2)
        r["min_bytes"] = least
        r["fraction_of_bandwidth"] = round(least / (r["median_ms"] / 1e3) / 1e9 / ceiling, 3)
    print(table(rows, ["library", "threads", "min_ms", "median_ms", "ratio_vs_sparse_ref_2t", "fraction_of_bandwidth"]))
    path = save("coalesce", {"params": vars(args), "dtype": "float64", "results": rows,
                             "unique_entries": ours._nnz()})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()

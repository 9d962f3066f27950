"""What ownership costs (issue 9): building tensors that own their index arrays.

A tensor copies the index arrays it is given (so no later change to them can reach a
kernel) and shares plain NumPy values, as torch's ``from_numpy`` does. This times, on the
same 10M-entry CSR matrix (float64, int64 indices): ``sr.from_scipy`` and
``sr.sparse_csr_tensor`` (validation + the index copies), the bare copy of the index
arrays (the floor of what ownership costs), SciPy building a ``csr_array`` around the same
arrays (no copy, no checks) and torch's ``sparse_csr_tensor`` from ``from_numpy`` arrays
(no copy; with and without its invariant check).

    python benchmarks/bench_ownership.py [--nnz 10000000] [--n 1000000] [--repeat 7]
"""

import argparse

import numpy as np
from _common import save, table, timeit

import sparse_ref as sr


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--nnz", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    m = sp.random_array((args.n, args.n), density=args.nnz / args.n**2, format="csr", rng=rng)
    m.indptr, m.indices = m.indptr.astype(np.int64), m.indices.astype(np.int64)
    m.has_canonical_format = True
    crow, col, val = m.indptr, m.indices, m.data
    nnz = int(col.shape[0])
    rows = [
        {"what": "sr.from_scipy(csr)", **timeit(lambda: sr.from_scipy(m), args.repeat)},
        {"what": "sr.sparse_csr_tensor(crow, col, val)",
         **timeit(lambda: sr.sparse_csr_tensor(crow, col, val, m.shape), args.repeat)},
        {"what": "copy of crow and col alone (np.array)",
         **timeit(lambda: (np.array(crow), np.array(col)), args.repeat)},
        {"what": "scipy csr_array((val, col, crow)) (no copy)",
         **timeit(lambda: sp.csr_array((val, col, crow), shape=m.shape), args.repeat)},
    ]
    try:
        import torch

        torch.set_num_threads(2)
        tc, tcol, tv = (torch.from_numpy(a) for a in (crow, col, val))
        rows.append({"what": "torch.sparse_csr_tensor (from_numpy, no check)",
                     **timeit(lambda: torch.sparse_csr_tensor(tc, tcol, tv, m.shape), args.repeat)})
        rows.append({"what": "torch.sparse_csr_tensor (check_invariants=True)",
                     **timeit(lambda: torch.sparse_csr_tensor(tc, tcol, tv, m.shape, check_invariants=True),
                              args.repeat)})
    except ImportError:
        pass
    base = rows[0]["median_ms"]
    for r in rows:
        r["ratio_vs_from_scipy"] = round(r["median_ms"] / base, 2)
    print(f"nnz = {nnz}, {args.n} x {args.n}, float64, int64 indices")
    print(table(rows, ["what", "median_ms", "min_ms", "ratio_vs_from_scipy"]))
    path = save("ownership", {"nnz": nnz, "n": args.n, "results": rows})
    print("wrote", path)


if __name__ == "__main__":
    main()

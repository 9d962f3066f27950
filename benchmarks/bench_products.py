"""SpMM, SpGEMM, SDDMM and the per-call overhead: sparse_ref vs SciPy vs torch (issue 3).

Everything runs in one process on the same arrays, float64, 2 threads for sparse_ref and
torch (SciPy is serial). sparse_ref is timed through its public API (``sr.sparse.mm``,
``sr.sparse.sampled_addmm``: validation, allocation and the kernel) with both layouts of
the sparse operand: ``sparse_ref`` is a coalesced COO tensor (its CSR arrays are made on
the first call and kept), ``sparse_ref_csr`` a CSR tensor sharing SciPy's arrays.

    python benchmarks/bench_products.py [--quick] [--repeat 5]
"""

import argparse
import gc

import numpy as np
from _common import bandwidth, per_call, save, table, timeit, timeit_interleaved
from matrices import MATRICES

import sparse_ref as sr
from sparse_ref._kernels.spmm import _gathers_only as gathers_only

# how far ahead (entries) the gathers-only loop asks for rows of B; 0: not at all
GATHER_AHEAD = (0, 10, 20, 40)  # none, and the distances spmm itself uses (_simd.h)


def peak_rss_delta(fn):
    """Extra resident memory (bytes) while fn runs, from Linux's peak-RSS counter."""
    def read(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        return 0

    gc.collect()
    sr.empty_cache()  # what the call needs, not blocks an earlier call left for it to reuse
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak to the current RSS
    except OSError:
        return None
    base = read("VmRSS:")
    result = fn()
    extra = read("VmHWM:") - base
    del result
    return extra


def spmm_rows(record, name, m, a, a_csr, ta_csr, ta_csr32, k, dt, rng, repeat):
    """SpMM with a dense B of k columns of dtype dt: sparse_ref (COO and CSR), torch CSR,
    SciPy, one after the other on the same arrays."""
    import torch

    n = m.shape[0]
    b_np = rng.standard_normal((n, k)).astype(dt)
    if dt != np.float64:
        a, a_csr = a.to(dt), a_csr.to(dt)
        ta_csr = ta_csr.to(getattr(torch, dt.name))
        m = m.astype(dt)
    # each library's dense operand in its own memory, as sr.tensor / torch.tensor make it
    # (both align large arrays: torch to 64 bytes, sparse_ref to a 2 MiB page)
    b, tb = sr.tensor(b_np), torch.from_numpy(b_np).clone()
    ours = sr.sparse.mm(a, b).numpy()
    np.testing.assert_allclose(ours, m @ b_np, rtol=1e-9 if dt == np.float64 else 1e-3,
                               atol=1e-9 if dt == np.float64 else 1e-3)
    size = dt.itemsize
    # the least memory SpMM can move: A's arrays, B and out once each; and what it must
    # gather when no row of B is reused from the cache: a row of B per stored entry
    least = 8 * (n + 1) + (8 + size) * m.nnz + 2 * size * n * k
    gathered = 8 * (n + 1) + (8 + size) * m.nnz + size * m.nnz * k + size * n * k
    extra = {"k": k, "dtype": dt.name}
    fns = {"sparse_ref": lambda: sr.sparse.mm(a, b), "sparse_ref_csr": lambda: sr.sparse.mm(a_csr, b),
           "torch_csr": lambda: torch.sparse.mm(ta_csr, tb)}
    if k == 1 and dt == np.float64:
        fns["torch_csr_int32"] = lambda: torch.sparse.mm(ta_csr32, tb)
    fns["scipy"] = lambda: m @ b_np
    # the gathers alone: the same rows of B read in the same order, no arithmetic, no
    # output (spmm._gathers_only), asking for rows GATHER_AHEAD entries on; the best of
    # those is recorded on sparse_ref's row
    col, b_bytes = np.ascontiguousarray(m.indices, dtype=np.int64), b.numpy().view(np.uint8)
    for ahead in GATHER_AHEAD:
        fns[f"gathers {ahead}"] = lambda ahead=ahead: gathers_only(col, b_bytes, ahead, 2)
    stats = timeit_interleaved(fns, repeat)
    gathers = min((stats.pop(f"gathers {ahead}")["median_ms"], ahead) for ahead in GATHER_AHEAD)
    for library, st in stats.items():
        more = ({"min_bytes": least, "gathered_bytes": gathered, "gathers_only_ms": gathers[0],
                 "gathers_ahead": gathers[1]} if library == "sparse_ref" else {})
        record("spmm", name, library, st, **extra, **more)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    sr.set_num_threads(2)
    rng = np.random.default_rng(42)
    rows = []
    ks = (1, 16) if args.quick else (1, 16, 64, 256)
    repeat = args.repeat

    def record(op, matrix, library, stats, **extra):
        rows.append({"op": op, "matrix": matrix, "library": library, **extra, **stats})

    for name, make in MATRICES.items():
        m = make(20_000) if (args.quick and name != "laplacian") else (make(100) if args.quick else make())
        n = m.shape[0]
        a_csr = sr.from_scipy(m)  # CSR, sharing SciPy's int64 arrays
        a = a_csr.to_sparse()  # coalesced COO
        crow = torch.from_numpy(m.indptr.astype(np.int64))
        col = torch.from_numpy(m.indices.astype(np.int64))
        ta_csr = torch.sparse_csr_tensor(crow, col, torch.from_numpy(m.data), (n, n))
        ta_csr32 = torch.sparse_csr_tensor(crow.int(), col.int(), torch.from_numpy(m.data), (n, n))
        print(f"{name}: n = {n}, nnz = {m.nnz}")

        # -- SpMM, float64 at every k, float32 at k >= 16 (and k = 1 on the grid)
        for k in ks:
            for dt in ("float64", "float32"):
                if dt == "float32" and k == 1 and name != "laplacian":
                    continue
                spmm_rows(record, name, m, a, a_csr, ta_csr, ta_csr32, k, np.dtype(dt), rng, repeat)

        # -- SpGEMM A @ A
        ours = sr.sparse.mm(a, a)
        ref = m @ m
        assert ours._nnz() >= ref.nnz
        ta_coo = sr.to_torch(a)
        # sparse_ref's COO result writes its row indices on first read: "sparse_ref_rows"
        # also reads them (the whole COO output), to show what that costs
        stats = timeit_interleaved({"sparse_ref": lambda: sr.sparse.mm(a, a),
                                    "sparse_ref_rows": lambda: sr.sparse.mm(a, a).indices(),
                                    "sparse_ref_csr": lambda: sr.sparse.mm(a_csr, a_csr),
                                    "scipy": lambda: m @ m}, repeat)
        record("spgemm", name, "sparse_ref", stats["sparse_ref"],
               out_nnz=ours._nnz(), out_bytes=ours._nnz() * 24,
               min_bytes=2 * (8 * (n + 1) + 16 * m.nnz) + ours._nnz() * 24,
               peak_extra_bytes=peak_rss_delta(lambda: sr.sparse.mm(a, a)))
        record("spgemm", name, "sparse_ref_rows", stats["sparse_ref_rows"], out_nnz=ours._nnz())
        record("spgemm", name, "sparse_ref_csr", stats["sparse_ref_csr"], out_nnz=ours._nnz())
        record("spgemm", name, "scipy", stats["scipy"], out_nnz=ref.nnz,
               peak_extra_bytes=peak_rss_delta(lambda: m @ m))
        # torch's COO x COO is slow: fewer calls, on their own
        record("spgemm", name, "torch_coo", timeit(lambda: torch.sparse.mm(ta_coo, ta_coo), max(2, repeat // 2)))
        del ours, ref

        # -- SDDMM, k = 64, on the uniform pattern
        if name == "uniform":
            k = 16 if args.quick else 64
            x_np, y_np = rng.standard_normal((n, k)), rng.standard_normal((n, k))
            x, mat2 = sr.tensor(x_np), sr.tensor(y_np).t()  # mat2 = y^T, a transposed view
            tx, tmat2 = torch.from_numpy(x_np).clone(), torch.from_numpy(y_np).clone().t()
            stats = timeit_interleaved({
                "sparse_ref": lambda: sr.sparse.sampled_addmm(a, x, mat2),
                "sparse_ref_csr": lambda: sr.sparse.sampled_addmm(a_csr, x, mat2),
                "torch_csr": lambda: torch.sparse.sampled_addmm(ta_csr, tx, tmat2)}, repeat)
            record("sddmm", name, "sparse_ref", stats["sparse_ref"], k=k,
                   min_bytes=8 * (n + 1) + 16 * m.nnz + 2 * 8 * n * k + 24 * m.nnz,
                   gathered_bytes=8 * (n + 1) + 16 * m.nnz + 8 * n * k + 8 * m.nnz * k + 24 * m.nnz)
            record("sddmm", name, "sparse_ref_csr", stats["sparse_ref_csr"], k=k)
            record("sddmm", name, "torch_csr", stats["torch_csr"], k=k)

    # -- per-call overhead of a 10 x 10 SpMM
    import scipy.sparse as sp

    small = sp.random_array((10, 10), density=0.3, format="csr", rng=np.random.default_rng(0))
    sb = np.random.default_rng(1).standard_normal((10, 10))
    s_small, t_sb = sr.from_scipy(small).to_sparse(), sr.tensor(sb)
    # calls of microseconds are timed in loops of 1000 (a single call is near the timer's
    # resolution and the results' 1 us rounding); the two libraries' loops alternate
    stats = per_call({"sparse_ref": lambda: sr.sparse.mm(s_small, t_sb), "scipy": lambda: small @ sb})
    for library in ("sparse_ref", "scipy"):
        record("spmm_10x10", "random", library, stats[library], k=10)
        rows[-1]["unit"] = "ms per call (median of 31 loops of 1000 calls, the libraries alternating)"

    # ratios: each library's median over sparse_ref's for the same op, matrix and k
    for r in rows:
        base = next(x for x in rows if x["library"] == "sparse_ref" and x["op"] == r["op"]
                    and x["matrix"] == r["matrix"] and x.get("k") == r.get("k")
                    and x.get("dtype") == r.get("dtype"))
        r["ratio_vs_sparse_ref"] = round(r["median_ms"] / base["median_ms"], 2)
    # as a fraction of the ceiling: the least bytes moved / time, against the copy bandwidth
    ceiling = bandwidth()["copy_2_threads"]
    for r in rows:
        for key, frac in (("min_bytes", "fraction_of_bandwidth"), ("gathered_bytes", "gathered_fraction")):
            if r.get(key):
                r[frac] = round(r[key] / (r["median_ms"] / 1e3) / 1e9 / ceiling, 3)
    print(table(rows, ["op", "matrix", "k", "dtype", "library", "median_ms", "ratio_vs_sparse_ref",
                       "peak_extra_bytes", "fraction_of_bandwidth", "gathered_fraction", "gathers_only_ms"]))
    if not args.quick:
        print(f"\nwrote {save('products', {'dtype': 'float64', 'threads': 2, 'results': rows})}")


if __name__ == "__main__":
    main()

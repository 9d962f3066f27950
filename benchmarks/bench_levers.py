"""The levers of issue 13, each measured against what it replaced, in one process.

Each lever is timed A/B, interleaved (A, B, A, B, ...) on the same arrays, 2 threads,
float64 unless named, and only the kernel call is timed (no Python layer):

- ``simd``: SpMM and SDDMM rows on each vector level the CPU has (``baseline`` = SSE2,
  ``avx2``, ``avx512``), chosen through the kernels' tuning hooks;
- ``prefetch``: SpMM's prefetch of the row of B ahead: 10 entries ahead (20 under 512
  bytes, 40 up to 128), the first 512 bytes (kept) against 6 ahead, every line of the row (the scalar kernel's choice);
- ``before``: with ``--old PATH``, the kernels of an older build (a checkout of the commit
  before the levers, built in place: ``python setup.py build_ext --inplace``) loaded
  beside the current ones -- SpMM (scalar rows: a load and a store of ``out`` per stored
  entry), SDDMM and SpGEMM (int64 markers and slots; the current SpGEMM also has the
  ``since`` levers below, so that row measures both sessions' SpGEMM levers together);
- ``since``: with ``--since PATH``, the kernels of the build before the third session's
  levers (commit 6b81644): SpGEMM without prefetch, with per-thread buffers that could
  share a cache line, and every output row sorted from scratch; coalesce with row-sort
  buffers that could share a line. ``spgemm prefetch`` also times the prefetch alone,
  through its tuning hook (``_set_prefetch(0)`` turns it off).
- ``start``: with ``--start PATH``, the build at the start of the fourth session (commit
  ca35b9d): coalesce with (column, position) sort entries, where the kernel now carries
  the values themselves when no positions are asked for.
- ``prefetch lines``: SpMM's prefetch asks for every cache line the first 512 bytes of
  the row touch, against lines from the row's first byte on (one short when the row
  does not start on a line, as in NumPy's big arrays, which start 16 bytes into one).
- ``gradient views``: forward + both gradients of ``mm`` (uniform, k = 64), with the
  gradients of ``sum()`` and of ``backward(G)`` passed on as read-only views (now)
  against the copies made before (the old code paths patched back in, same process).
- ``prefetch distance``: SpMM asks for the row of B 40 entries ahead when the row has
  128 bytes or less and 20 when it is under 512 bytes (now), against 20 under 512 bytes
  (the fifth session) and 10 ahead as for longer rows (before).
- ``spgemm bounds skip``: whole ``sr.sparse.mm(A, A)`` calls that skip the per-row
  bounds pass when nnz(A) x the longest row of B is at most one chunk of work (now)
  against always running it (before); the uniform matrix is above that size, so both
  of its variants run the same code (a control).
- ``spmv loop``: SpMM with one column through a loop of its own (now) against the general
  row loop's one-column case (before), kernel only.
- ``streaming stores``: SpMM writing ``out`` with non-temporal stores (now, for rows of
  64 to 256 bytes of an ``out`` of 4 MiB or more) against cached stores (before), kernel
  only, into an ``out`` that starts on a cache line; 512-byte rows are a control (cached
  in both: now as before).
- ``narrow tails``: with ``--only "narrow tails" --old PATH`` (``--old`` is then the build
  of commit 7adec07, not the one before all the levers), SpMM rows narrower
  than one vector of the widest level (4 and 6 doubles, 8 and 12 floats under AVX-512) through
  the narrower levels' vectors (now) against column by column (before), kernel only.
- ``fixed widths``: with ``--only "fixed widths" --old PATH`` (``--old`` is then the build
  of commit bdfdcce), SpMM's float rows handed to C 64 rows at a time, with a loop
  compiled for each width of 1, 2, 4 and 8 vectors in whole cache lines (now), against one
  call per row of the general loop (before), kernel only, into a line-aligned ``out`` from
  a line-aligned B (as the library's own big arrays are). Rows of 96 bytes and 2 KiB are
  controls: the general loop in both, 64 rows per call now.
- ``row widths``: with ``--only "row widths" --old PATH`` (``--old`` is then the build
  of commit d6f47bc), SpMM rows of 16 or 32 bytes at the level whose vector they fill, in
  the loop compiled for that width, and rows of other widths (48 to 400 bytes) in one pass
  with a masked last vector (now), against the general loop at the widest level, block by
  block and then narrower levels (before), kernel only, line-aligned B and ``out``, with
  torch's CSR product beside them.
- ``spgemm streaming stores``: SpGEMM's numeric pass writing its output with
  non-temporal stores (``spgemm._set_stream(0)``) against cached stores (``-1``), the
  kernel alone and the whole ``sr.sparse.mm(A, A)``, 2 threads; the default streams an
  output of 128 MiB or more (the random matrices' 315-320 MB, not the Laplacian's 42 MB).
- ``spgemm ranks``: SpGEMM's numeric pass putting rows of 17-128 entries in order by
  rank (vector comparisons, ``spgemm._set_rank_range(16, 128)``, the default) against
  sorting every row (``(16, 0)``), at each vector level, kernel alone, 2 threads; on the
  three matrices and on uniform ones of 3 and 5 entries a row (rows of C of about 9 and
  25); on the Laplacian and 3 a row also rows of any length by rank (``(0, 128)``).
- ``coalesce ranks``: the same for coalesce's rows, whole ``coalesce()`` calls, 2 threads:
  10M and 3M random draws in 100k x 100k (rows of about 100 and 30).
- ``spgemm dense accumulator``: SpGEMM's numeric pass, kernel alone, 2 threads, as before
  (``spgemm._set_dense_limit(-1, 32 << 10, False)``), with every row's span found first
  (``(-1, 32 << 10, True)``), and with band rows' sums in a dense array too (the default);
  the three matrices and a uniform one of 5 a row; the Laplacian's whole product as well.
- ``dynamic schedule``: with ``--only "dynamic schedule" --old PATH`` (``--old`` is then
  the build of commit 90e9bc9), the parallel row loops handing out chunks of about 1/64
  of a thread's share (dynamic schedule, now) against OpenMP's guided schedule (before),
  kernel only, 2 threads, on a quiet machine and with another process spinning on one
  core: SpGEMM's two passes and coalesce (kept); with ``--since`` the build of commit
  f69fc21, SpMM at k = 16 too (dropped: SpMM keeps the guided schedule).
- ``prefetch hint``: SpMM asking for the lines of rows of B of 64 to 511 bytes with
  locality 1 (x86's ``prefetcht2``) except in band rows of A (columns spanning fewer
  than 4096 rows of B), against locality 3 (``prefetcht0``) everywhere and against
  ``prefetcht2`` in every row, kernel only, with B cached by the call before and with B
  from memory; then whole ``sr.sparse.mm`` calls, ``prefetcht0`` against the CPU's
  choice. Kept: the CPU's own choice (``spmm._set_prefetch``'s ``outer=-1``): the hint
  with the band exception on AMD, ``prefetcht0`` elsewhere. The Intel Xeon's rows
  (2026-12-02, commit 94989ea's two variants, before the band exception) stay as saved.
- ``spgemm band prefetch``: SpGEMM's symbolic and numeric passes, kernel alone, 2
  threads, with the rows of A whose columns span fewer than 4096 rows of B (a band: the
  Laplacian's every row) not prefetching (now) against every row prefetching (before,
  ``spgemm._set_prefetch_band(0)``); the Laplacian's whole ``sr.sparse.mm(A, A)`` too;
  the random matrices' rows are wide, so both variants run the same code (controls).
- ``spgemm chunks``: SpGEMM's two passes, kernel alone, 2 threads, quiet and with a core
  busy, with chunks of rows of about 102,400 products by the average row (now: 4096 rows
  on the Laplacian, 1024 on the random matrices, controls) against 1024 rows at most, as
  the other kernels (before); the Laplacian's whole ``sr.sparse.mm(A, A)`` too.
- ``output cache``: whole user calls (``sr.sparse.mm``, ``coalesce()``, forward +
  backward) with large outputs allocated from the cache of freed blocks (the default)
  against its limit at 0, which is NumPy's own allocator as before the cache (glibc:
  fresh pages above 32 MiB, its heap below). The operands are made once, with the
  cache on (so on pages of their own in both variants). Each timed call follows an
  untimed call of the same variant, so the cache holds what a loop of such calls
  leaves in it.
- ``spgemm bitmap scan``: band rows of C put in order by a bitmap of their columns, read
  word by word, with the dense sums kept at zero between rows (the default),
  against their ranks or a sort, as before (``spgemm._set_bitmap_scan(0)``): one pass
  on 1 and 2 threads, the numeric pass on 2 (kernels alone), and the whole
  ``sr.sparse.mm(A, A)``; the random matrices' rows are wide (no row scans: controls),
  and a uniform matrix of 4000 columns has every row scanned.

- ``int32 columns``: whole ``sr.sparse.mm(A, x)`` calls with ``x`` of one column (a
  matrix-vector product, which reads little but A), on the int32 copy of A's columns
  that the tensor keeps (now) against its int64 columns (before: ``_csr_col32`` patched to
  give None), the same ``spmv`` kernel either way; a SciPy product of the same matrix runs
  untimed before each call, so that A's arrays are not all in the cache, as in a program
  that does other work between products.
- ``spgemm stage bound``: SpGEMM's one pass sizing a chunk's buffer from its rows' bound
  when that is at most 131,072 entries (now) against counting the chunk's products
  first (before: ``spgemm._set_stage_bound(0)``): the one pass on 1 and 2 threads
  (kernel alone, output as long as the bound) and the whole ``sr.sparse.mm(A, A)`` on 2,
  interleaved; the random matrices' bounds are too long (controls: a count either way).

    python benchmarks/bench_levers.py [--old /tmp/oldtree] [--since /tmp/sincetree]
        [--start /tmp/starttree] [--repeat 9]
    python benchmarks/bench_levers.py --only "output cache"   # that lever alone, its rows
                                                              # replaced in the saved file
    python benchmarks/bench_levers.py --only "prefetch distance"
    python benchmarks/bench_levers.py --only "narrow tails" --old /tmp/tree-7adec07
    python benchmarks/bench_levers.py --only "fixed widths" --old /tmp/tree-bdfdcce
    python benchmarks/bench_levers.py --only "spgemm streaming stores"
    python benchmarks/bench_levers.py --only "row widths" --old /tmp/tree-d6f47bc
    python benchmarks/bench_levers.py --only "spgemm ranks"
    python benchmarks/bench_levers.py --only "coalesce ranks"
    python benchmarks/bench_levers.py --only "spgemm dense accumulator"
    python benchmarks/bench_levers.py --only "dynamic schedule" --old /tmp/tree-90e9bc9 \
        --since /tmp/tree-f69fc21
    python benchmarks/bench_levers.py --only "spgemm band prefetch"
    python benchmarks/bench_levers.py --only "prefetch hint"
    python benchmarks/bench_levers.py --only "spgemm chunks"
    python benchmarks/bench_levers.py --only "spgemm bitmap scan"
"""

import argparse
import glob
import importlib.machinery
import importlib.util
import json
import os
import statistics
import time

import numpy as np
from _common import RESULTS, cpu_slug, save, table
from matrices import MATRICES

from sparse_ref._kernels import coalesce as COALESCE
from sparse_ref._kernels import sddmm as SDDMM
from sparse_ref._kernels import spgemm as SPGEMM
from sparse_ref._kernels import spmm as SPMM

THREADS = 2
LEVELS = ("baseline", "avx2", "avx512")


def load_old(tree: str, name: str):
    """The compiled kernel module ``name`` of another build, under its own module name."""
    path = glob.glob(os.path.join(tree, "sparse_ref", "_kernels", f"{name}.*.so"))[0]
    full = f"sparse_ref._kernels.{name}"
    loader = importlib.machinery.ExtensionFileLoader(full, path)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(full, loader))
    loader.exec_module(module)
    return module


def interleaved(variants: dict, repeat: int, between=None) -> dict:
    """{name: median ms} of each zero-argument callable, timed in turn ``repeat`` times
    (``between``, if given, is called untimed before each call)."""
    times = {name: [] for name in variants}
    for fn in variants.values():
        fn()  # warm up
    for _ in range(repeat):
        for name, fn in variants.items():
            if between is not None:
                between()
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: round(statistics.median(t), 3) for name, t in times.items()}


def with_level(module, level, fn):
    def run():
        module._set_simd_level(level)
        fn()
    return run


def spgemm_since(name, m, since, repeat, record):
    """SpGEMM A @ A and coalesce: this build against the build before the third session's
    levers; SpGEMM's prefetch alone through its hook."""
    crow, col, val = m.indptr.astype(np.int64), m.indices.astype(np.int64), m.data
    n = m.shape[1]
    out_crow = np.empty(m.shape[0] + 1, dtype=np.int64)
    SPGEMM.spgemm_symbolic(crow, col, crow, col, n, out_crow, THREADS)
    out_col, out_val = np.empty(out_crow[-1], np.int64), np.empty(out_crow[-1])

    def symbolic(module, ahead=None):
        def run():
            if ahead is not None:
                module._set_prefetch(ahead)
            module.spgemm_symbolic(crow, col, crow, col, n, np.empty_like(out_crow), THREADS)
        return run

    def numeric(module, ahead=None):
        def run():
            if ahead is not None:
                module._set_prefetch(ahead)
            module.spgemm_numeric(crow, col, val, crow, col, val, n, out_crow, out_col, out_val, THREADS)
        return run

    for what, make in (("symbolic", symbolic), ("numeric", numeric)):
        medians = interleaved({"since": make(since["spgemm"]), "now": make(SPGEMM)}, repeat)
        record("spgemm: prefetch, padded buffers, merged runs", f"{what} {name}", medians, "now")
        medians = interleaved({"no prefetch": make(SPGEMM, 0), "prefetch 8 ahead": make(SPGEMM, 8)}, repeat)
        SPGEMM._set_prefetch(8)
        record("spgemm prefetch", f"{what} {name}", medians, "prefetch 8 ahead")
    # coalesce of the matrix's entries in a random order (the Laplacian's rows are short:
    # its row-sort buffers are where two threads' could share a cache line)
    coalesce_against(m, "since", since["coalesce"], "coalesce: padded row-sort buffers", name, repeat, record)


def coalesce_against(m, label, other, lever, name, repeat, record):
    """coalesce of the matrix's entries in a random order, without positions: this build
    against ``other`` (an older build's coalesce module, named ``label``)."""
    coo = m.tocoo()
    order = np.random.default_rng(5).permutation(coo.nnz)
    row, pcol, pval = coo.row.astype(np.int64)[order], coo.col.astype(np.int64)[order], coo.data[order]
    c_crow, c_col, c_val = np.empty(m.shape[0] + 1, np.int64), np.empty(coo.nnz, np.int64), np.empty(coo.nnz)
    no_pos = np.empty(0, np.int64)
    medians = interleaved({
        label: lambda: other.coalesce(row, pcol, pval, m.shape[0], c_crow, c_col, c_val, no_pos, THREADS),
        "now": lambda: COALESCE.coalesce(row, pcol, pval, m.shape[0], c_crow, c_col, c_val, no_pos, THREADS)}, repeat)
    record(lever, f"coalesce {name} (shuffled)", medians, "now")


def gradient_views(m, repeat, record):
    """fwd + both gradients of mm with sum()'s and backward(G)'s gradients as views (now)
    against the copies made before this session (the old code patched back in)."""
    import sparse_ref as sr
    from sparse_ref.autograd import dense_ops, engine, sparse_ops

    sr.set_num_threads(THREADS)
    n, k = m.shape[0], 64
    a0 = sr.from_scipy(m).to_sparse()
    b0 = sr.tensor(np.random.default_rng(3).standard_normal((n, k)))
    g = sr.tensor(np.random.default_rng(4).standard_normal((n, k)))
    a0._csr()
    now = (dense_ops.Sum.backward, sparse_ops.same_rows, engine.seed_gradient)

    def old_sum(self, grad):
        return np.ascontiguousarray(np.broadcast_to(grad, self.shape)), None, None

    def old_seed(root, gradient):
        return np.array(gradient._data, copy=True) if gradient is not None else now[2](root, gradient)

    def run(views, full):
        def f():
            dense_ops.Sum.backward, sparse_ops.same_rows, engine.seed_gradient = (
                now if views else (old_sum, lambda grad: None, old_seed))
            a, b = a0.detach().requires_grad_(), b0.detach().requires_grad_()
            a._cache = a0._cache
            y = sr.sparse.mm(a, b)
            y.backward(g) if full else y.sum().backward()
        return f

    try:
        for full, case in ((False, "y.sum().backward()"), (True, "y.backward(G)")):
            medians = interleaved({"copies (before)": run(False, full), "views": run(True, full)}, repeat)
            record("gradient views", f"uniform fwd+bwd k=64, {case}", medians, "views")
    finally:
        dense_ops.Sum.backward, sparse_ops.same_rows, engine.seed_gradient = now


def prefetch_distance(repeat, record, quick=False):
    """SpMM's prefetch distance by the width of a row of B: 40 entries ahead for rows of
    128 bytes or less and 20 under 512 bytes (now), against 20 for every row under 512
    bytes (the fifth session) and 10 for every row (before that). B and out on pages of
    their own, as ``sr.tensor`` and the products allocate them (so out is streamed where
    the kernel streams it)."""
    from sparse_ref._memory import empty

    for name in ("uniform", "powerlaw", "laplacian"):
        m = MATRICES[name](*((2000,) if name != "laplacian" else (40,))) if quick else MATRICES[name]()
        crow, col = m.indptr.astype(np.int64), m.indices.astype(np.int64)
        for dt, k in ((np.float64, 8), (np.float64, 16), (np.float32, 16), (np.float64, 32), (np.float32, 64),
                      (np.float64, 64)):
            val = m.data.astype(dt)
            b = empty((m.shape[1], k), dt)
            b[...] = np.random.default_rng(k).standard_normal((m.shape[1], k))
            out = empty((m.shape[0], k), dt)

            def run(narrow, tiny, b=b, out=out, val=val):
                def f():
                    SPMM._set_prefetch(10, 512, True, narrow, tiny)
                    SPMM.spmm(crow, col, val, b, out, THREADS)
                return f
            medians = interleaved({"10 ahead": run(10, 10), "20 ahead under 512 bytes": run(20, 20),
                                   "40 up to 128 bytes, 20 under 512": run(20, 40)}, repeat)
            SPMM._set_prefetch(10, 512, True, 20, 40)
            record("prefetch distance", f"spmm {name} k={k} {np.dtype(dt).name} ({k * np.dtype(dt).itemsize} B rows)",
                   medians, "40 up to 128 bytes, 20 under 512")


def output_cache(repeat, record, quick=False):
    """Whole calls with the output cache on (the default limit) and off (limit 0)."""
    import sparse_ref as sr

    sr.set_num_threads(THREADS)
    default = sr.set_cache_limit(0)
    sr.set_cache_limit(default)
    mats = {name: MATRICES[name](*((2000,) if name != "laplacian" else (40,))) if quick else MATRICES[name]()
            for name in MATRICES}
    rng = np.random.default_rng(7)
    lap, uni = sr.from_scipy(mats["laplacian"]).to_sparse(), sr.from_scipy(mats["uniform"]).to_sparse()
    n = mats["uniform"].shape[0]
    coo = mats["uniform"].tocoo()
    order = rng.permutation(coo.nnz)
    shuffled = sr.sparse_coo_tensor(np.stack([coo.row[order], coo.col[order]]).astype(np.int64),
                                    coo.data[order], coo.shape)
    b64, b256 = (sr.tensor(rng.standard_normal((n, k))) for k in (64, 256))
    b64_32 = sr.tensor(rng.standard_normal((n, 64)).astype(np.float32))
    uni32 = uni.to(sr.float32)
    lapc = lap.to_sparse_csr()

    def fwd_bwd():
        a, b = uni.detach().requires_grad_(), b64.detach().requires_grad_()
        a._cache = uni._cache
        sr.sparse.mm(a, b).sum().backward()

    cases = {"spgemm laplacian A@A (COO)": lambda: sr.sparse.mm(lap, lap),
             "spgemm laplacian A@A (CSR)": lambda: sr.sparse.mm(lapc, lapc),
             "spgemm uniform A@A (COO)": lambda: sr.sparse.mm(uni, uni),
             "spmm uniform k=64": lambda: sr.sparse.mm(uni, b64),
             "spmm uniform k=64 float32": lambda: sr.sparse.mm(uni32, b64_32),
             "spmm uniform k=256": lambda: sr.sparse.mm(uni, b256),
             "coalesce uniform (shuffled)": lambda: shuffled.coalesce(),
             "fwd+bwd uniform k=64, y.sum().backward()": fwd_bwd}

    variants = (("NumPy's allocator (limit 0)", 0), ("cache", default))
    try:
        for case, fn in cases.items():
            times = {v: [] for v, _ in variants}
            for _ in range(max(repeat // 2, 2) if "uniform A@A" in case else repeat):
                for variant, limit in variants:
                    sr.set_cache_limit(limit)
                    fn()  # untimed: leaves in the cache what a loop of these calls would
                    t0 = time.perf_counter()
                    fn()
                    times[variant].append((time.perf_counter() - t0) * 1e3)
            record("output cache", case, {v: round(statistics.median(t), 3) for v, t in times.items()}, "cache")
    finally:
        sr.set_cache_limit(default)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--old", help="a checkout of the commit before the levers, built in place")
    parser.add_argument("--since", help="a checkout of the build before the third session's levers, built in place")
    parser.add_argument("--start", help="a checkout of the build at the start of the fourth session, built in place")
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="small matrices, nothing saved: a smoke run")
    parser.add_argument("--only", choices=["output cache", "prefetch distance", "spgemm bounds skip", "spmv loop",
                                           "streaming stores", "narrow tails", "fixed widths",
                                           "spgemm streaming stores", "row widths", "spgemm ranks",
                                           "coalesce ranks", "spgemm dense accumulator", "dynamic schedule",
                                           "spgemm band prefetch", "prefetch hint", "spgemm chunks",
                                           "spgemm one pass", "spgemm stream copy", "spgemm bitmap scan",
                                           "sddmm loop", "int32 columns", "spgemm stage bound"],
                        help="run this lever alone and replace its rows in the saved file (dated)")
    args = parser.parse_args()
    if args.only:
        return only(args)
    old = {name: load_old(args.old, name) for name in ("spmm", "sddmm", "spgemm")} if args.old else {}
    since = {name: load_old(args.since, name) for name in ("spgemm", "coalesce")} if args.since else {}
    start = {"coalesce": load_old(args.start, "coalesce")} if args.start else {}
    widest = SPMM._simd_level()
    levels = LEVELS[:LEVELS.index(widest) + 1]
    rows = []

    def record(lever, case, medians, kept):
        base = (medians.get("before") or medians.get("since") or medians.get("start")
                or medians[next(iter(medians))])
        for variant, ms in medians.items():
            rows.append({"lever": lever, "case": case, "variant": variant, "median_ms": ms,
                         "speedup_vs_first": round(base / ms, 2), "kept": variant == kept})

    for name in ("uniform", "powerlaw", "laplacian"):
        m = MATRICES[name](*((2000,) if name != "laplacian" else (40,))) if args.quick else MATRICES[name]()
        crow, col = m.indptr.astype(np.int64), m.indices.astype(np.int64)
        for dt in (np.float64, np.float32):
            val = m.data.astype(dt)
            for k in (16, 64, 256):
                if dt == np.float32 and k == 256:
                    continue
                b = np.random.default_rng(k).standard_normal((m.shape[1], k)).astype(dt)
                out = np.empty((m.shape[0], k), dtype=dt)
                variants = {}
                if old:
                    variants["before"] = lambda b=b, out=out: old["spmm"].spmm(crow, col, val, b, out, THREADS)
                for level in levels:
                    variants[level] = with_level(SPMM, level, lambda b=b, out=out: SPMM.spmm(crow, col, val, b, out,
                                                                                            THREADS))
                record("simd", f"spmm {name} k={k} {np.dtype(dt).name}", interleaved(variants, args.repeat), widest)
                SPMM._set_simd_level(widest)
                def lines(from_line, b=b, out=out):
                    def run():
                        SPMM._set_prefetch(10, 512, from_line, 20)
                        SPMM.spmm(crow, col, val, b, out, THREADS)
                    return run
                medians = interleaved({"from the row's first byte": lines(False),
                                       "every line touched": lines(True)}, args.repeat)
                SPMM._set_prefetch(10, 512, True, 20)
                record("prefetch lines", f"spmm {name} k={k} {np.dtype(dt).name}", medians, "every line touched")
                if dt == np.float64:
                    def prefetch(ahead, nbytes, narrow, b=b, out=out):
                        def run():  # rows of 128 bytes or less: the narrow distance, or 40 now
                            SPMM._set_prefetch(ahead, nbytes, True, narrow, 40 if narrow == 20 else narrow)
                            SPMM.spmm(crow, col, val, b, out, THREADS)
                        return run
                    medians = interleaved({"6 ahead, whole row": prefetch(6, 1 << 30, 6),
                                           "10 (20 under 512 B) ahead, 512 bytes": prefetch(10, 512, 20)},
                                          args.repeat)
                    SPMM._set_prefetch(10, 512, True, 20)
                    record("prefetch", f"spmm {name} k={k}", medians, "10 (20 under 512 B) ahead, 512 bytes")
        if name == "uniform":
            coo = m.tocoo()
            row, pcol = coo.row.astype(np.int64), coo.col.astype(np.int64)
            for dt in (np.float64, np.float32):
                x = np.random.default_rng(1).standard_normal((m.shape[0], 64)).astype(dt)
                y = np.random.default_rng(2).standard_normal((m.shape[0], 64)).astype(dt)
                out = np.empty(row.shape[0], dtype=dt)
                variants = {}
                if old:
                    variants["before"] = lambda x=x, y=y, out=out: old["sddmm"].sddmm(row, pcol, x, y, out, THREADS)
                for level in levels:
                    variants[level] = with_level(SDDMM, level, lambda x=x, y=y, out=out: SDDMM.sddmm(row, pcol, x, y,
                                                                                                     out, THREADS))
                record("simd", f"sddmm {name} k=64 {np.dtype(dt).name}", interleaved(variants, args.repeat), widest)
                SDDMM._set_simd_level(widest)
        if old:
            n = m.shape[1]
            val = m.data
            out_crow = np.empty(m.shape[0] + 1, dtype=np.int64)
            SPGEMM.spgemm_symbolic(crow, col, crow, col, n, out_crow, THREADS)
            out_col, out_val = np.empty(out_crow[-1], np.int64), np.empty(out_crow[-1])
            medians = interleaved({
                "before": lambda: old["spgemm"].spgemm_symbolic(crow, col, crow, col, n, np.empty_like(out_crow),
                                                                THREADS),
                "int32 tags": lambda: SPGEMM.spgemm_symbolic(crow, col, crow, col, n, np.empty_like(out_crow),
                                                             THREADS)}, args.repeat)
            record("spgemm since --old (int32 tags, then the --since levers)", f"symbolic {name}", medians, "int32 tags")
            medians = interleaved({
                "before": lambda: old["spgemm"].spgemm_numeric(crow, col, val, crow, col, val, n, out_crow, out_col,
                                                               out_val, THREADS),
                "int32 tags": lambda: SPGEMM.spgemm_numeric(crow, col, val, crow, col, val, n, out_crow, out_col,
                                                            out_val, THREADS)}, args.repeat)
            record("spgemm since --old (int32 tags, then the --since levers)", f"numeric {name}", medians, "int32 tags")
        if since:
            spgemm_since(name, m, since, args.repeat, record)
        if start:  # the values carried in the sort entries, against the session's start
            coalesce_against(m, "start", start["coalesce"], "coalesce: values carried in the sort entries", name,
                             args.repeat, record)
        if name == "uniform":
            gradient_views(m, args.repeat, record)
        print(f"{name} done", flush=True)

    prefetch_distance(args.repeat, record, args.quick)
    output_cache(args.repeat, record, args.quick)
    print(table(rows, ["lever", "case", "variant", "median_ms", "speedup_vs_first", "kept"]))
    if not args.quick:
        path = save("levers", {"threads": THREADS, "old_build": args.old, "since_build": args.since,
                               "start_build": args.start, "results": rows})
        print(f"\nwrote {path}")


def bounds_skip(repeat, record, quick=False):
    """Whole ``sr.sparse.mm(A, A)`` calls with the per-row bounds pass skipped for a small
    product (now) against always run (before, by patching the test that skips it)."""
    import sparse_ref as sr
    from sparse_ref import _products

    sr.set_num_threads(THREADS)
    small = _products._small_product
    for name in ("laplacian", "uniform"):
        m = MATRICES[name](*((2000,) if name != "laplacian" else (40,))) if quick else MATRICES[name]()
        coo, csr = sr.from_scipy(m).to_sparse(), sr.from_scipy(m)
        for layout, a in (("COO", coo), ("CSR", csr)):
            def call(skip, a=a):
                def run():
                    _products._small_product = small if skip else (lambda *args: None)
                    try:
                        sr.sparse.mm(a, a)
                    finally:
                        _products._small_product = small
                return run
            reps = repeat if name == "laplacian" else max(repeat // 3, 2)
            medians = interleaved({"bounds always": call(False), "skipped when small": call(True)}, reps)
            record("spgemm bounds skip", f"spgemm {name} A@A ({layout})", medians, "skipped when small")


def spmv_loop(repeat, record, quick=False):
    """SpMM with one column (a matrix-vector product): its own loop (now) against the
    general row loop's one-column case (before), kernel only, 1 and 2 threads."""
    for name in ("laplacian", "uniform", "powerlaw"):
        m = MATRICES[name](*((2000,) if name != "laplacian" else (40,))) if quick else MATRICES[name]()
        crow, col = m.indptr.astype(np.int64), m.indices.astype(np.int64)
        for dt in (np.float64, np.float32):
            val = m.data.astype(dt)
            x = np.random.default_rng(1).standard_normal((m.shape[1], 1)).astype(dt)
            out = np.empty((m.shape[0], 1), dtype=dt)
            for threads in (1, THREADS):
                def run(on, threads=threads, val=val, x=x, out=out):
                    def f():
                        SPMM._set_spmv(on)
                        SPMM.spmm(crow, col, val, x, out, threads)
                    return f
                medians = interleaved({"general row loop": run(False), "spmv loop": run(True)},
                                      repeat if name == "laplacian" else max(repeat // 3, 3))
                SPMM._set_spmv(True)
                record("spmv loop", f"spmm {name} k=1 {np.dtype(dt).name}, {threads} thread(s)", medians,
                       "spmv loop")


def int32_columns(repeat, record, quick=False):
    """Whole products with one column on int32 columns (the tensor's kept copy) against
    int64 ones (the same spmv kernel), 2 threads, a SciPy product untimed between calls."""
    import sparse_ref as sr
    from sparse_ref._tensor import SparseTensor

    sr.set_num_threads(THREADS)
    original = SparseTensor._csr_col32
    for name in ("laplacian", "uniform", "powerlaw"):
        m = MATRICES[name](*((2000,) if name != "laplacian" else (40,))) if quick else MATRICES[name]()
        for dt in (np.float64, np.float32):
            ms = m.astype(dt)
            a = sr.from_scipy(ms).to_sparse()
            x_np = np.random.default_rng(1).standard_normal((m.shape[1], 1)).astype(dt)
            x = sr.tensor(x_np)

            def run(narrow, a=a, x=x):
                def f():
                    SparseTensor._csr_col32 = original if narrow else (lambda self: None)
                    try:
                        sr.sparse.mm(a, x)
                    finally:
                        SparseTensor._csr_col32 = original
                return f
            medians = interleaved({"int64 columns": run(False), "int32 columns": run(True)},
                                  repeat * 3 if name == "laplacian" else repeat, between=lambda ms=ms, x_np=x_np: ms @ x_np)
            record("int32 columns", f"sr.sparse.mm {name} k=1 {np.dtype(dt).name}", medians, "int32 columns")


def line_aligned(shape, dtype):
    """An empty array whose data start on a 64-byte cache line, as the library's own big
    outputs do (they start on a 2 MiB page); NumPy's start 16 bytes into one."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + 64, dtype=np.uint8)
    start = (-raw.ctypes.data) % 64
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def streaming_stores(repeat, record, quick=False):
    """SpMM into a line-aligned ``out``: non-temporal stores (the default) against cached
    stores (``_set_stream(0)``), kernel only, 2 threads."""
    for name in ("uniform", "powerlaw", "laplacian"):
        m = MATRICES[name](*((2000,) if name != "laplacian" else (40,))) if quick else MATRICES[name]()
        crow, col = m.indptr.astype(np.int64), m.indices.astype(np.int64)
        for k, dt in ((16, np.float32), (16, np.float64), (32, np.float64), (64, np.float32), (64, np.float64)):
            val = m.data.astype(dt)
            b = np.random.default_rng(k).standard_normal((m.shape[1], k)).astype(dt)
            out = line_aligned((m.shape[0], k), dt)
            default = SPMM._set_stream(0)
            SPMM._set_stream(*default)
            streamed = SPMM._streams(out)

            def run(on, b=b, out=out, val=val):
                def f():
                    SPMM._set_stream(*(default if on else (0, default[1])))
                    SPMM.spmm(crow, col, val, b, out, THREADS)
                return f
            medians = interleaved({"cached stores": run(False), "default": run(True)}, repeat)
            SPMM._set_stream(*default)
            record("streaming stores", f"spmm {name} k={k} {np.dtype(dt).name} ({k * np.dtype(dt).itemsize} B rows, "
                   f"{'streamed' if streamed else 'cached: a control'})", medians, "default")


def narrow_tails(repeat, record, quick=False, old=None):
    """SpMM rows narrower than one vector of the widest level: the narrower levels' vectors
    (now) against column by column (the build ``old``), kernel only, 2 threads."""
    if old is None:
        raise SystemExit('--only "narrow tails" needs --old PATH: a build of commit 7adec07')
    before = load_old(old, "spmm")
    for name in ("uniform", "powerlaw", "laplacian"):
        m = MATRICES[name](*((2000,) if name != "laplacian" else (40,))) if quick else MATRICES[name]()
        crow, col = m.indptr.astype(np.int64), m.indices.astype(np.int64)
        for k, dt in ((4, np.float64), (6, np.float64), (8, np.float32), (12, np.float32)):
            val = m.data.astype(dt)
            b = np.random.default_rng(k).standard_normal((m.shape[1], k)).astype(dt)
            out = np.empty((m.shape[0], k), dtype=dt)
            medians = interleaved({"column by column": lambda b=b, out=out, val=val: before.spmm(
                                       crow, col, val, b, out, THREADS),
                                   "narrower vectors": lambda b=b, out=out, val=val: SPMM.spmm(
                                       crow, col, val, b, out, THREADS)}, repeat)
            record("narrow tails", f"spmm {name} k={k} {np.dtype(dt).name} ({SPMM._simd_level()})", medians,
                   "narrower vectors")


def sddmm_loop(repeat, record, quick=False, old=None):
    """SDDMM with AVX-512: a thread's share of positions in one C loop with the dot inlined
    (now) against a Cython loop calling the dot once per position (the build ``old``),
    kernel only, uniform pattern, line-aligned factors, 1 and 2 threads."""
    if old is None:
        raise SystemExit('--only "sddmm loop" needs --old PATH: a build of commit 784cee4')
    before = load_old(old, "sddmm")
    m = MATRICES["uniform"](*((2000,) if quick else ()))
    coo = m.tocoo()
    row, col = coo.row.astype(np.int64), coo.col.astype(np.int64)
    for threads in (2, 1):
        for k, dt in ((16, np.float64), (16, np.float32), (64, np.float64), (64, np.float32)):
            x, y = line_aligned((m.shape[0], k), dt), line_aligned((m.shape[1], k), dt)
            x[...] = np.random.default_rng(1).standard_normal(x.shape)
            y[...] = np.random.default_rng(2).standard_normal(y.shape)
            out = np.empty(row.shape[0], dtype=dt)
            medians = interleaved({"a call per position": lambda x=x, y=y, out=out, t=threads: before.sddmm(
                                       row, col, x, y, out, t),
                                   "one loop per thread": lambda x=x, y=y, out=out, t=threads: SDDMM.sddmm(
                                       row, col, x, y, out, t)}, repeat)
            record("sddmm loop", f"sddmm uniform k={k} {np.dtype(dt).name}, {threads} thread(s) "
                   f"({SDDMM._simd_level()})", medians, "one loop per thread")


def fixed_widths(repeat, record, quick=False, old=None):
    """SpMM's float rows 64 at a time through a loop compiled for their width (now) against
    a call per row of the general loop (the build ``old``), kernel only, 2 threads (and
    1 thread for k = 16 float32)."""
    if old is None:
        raise SystemExit('--only "fixed widths" needs --old PATH: a build of commit bdfdcce')
    before = load_old(old, "spmm")
    cases = ((16, np.float32), (32, np.float32), (64, np.float32), (8, np.float64), (16, np.float64),
             (64, np.float64), (24, np.float32), (256, np.float64))
    for name in ("uniform", "powerlaw", "laplacian"):
        m = MATRICES[name](*((2000,) if name != "laplacian" else (40,))) if quick else MATRICES[name]()
        crow, col = m.indptr.astype(np.int64), m.indices.astype(np.int64)
        for k, dt in cases:
            val = m.data.astype(dt)
            b = line_aligned((m.shape[1], k), dt)
            b[...] = np.random.default_rng(k).standard_normal(b.shape)
            out = line_aligned((m.shape[0], k), dt)
            vectors = SPMM._fixed_vectors(b)
            label = f"{vectors} vector(s)" if vectors else "general loop: a control"
            for threads in ((1, THREADS) if (k, dt) == (16, np.float32) else (THREADS,)):
                medians = interleaved({"a call per row": lambda b=b, out=out, val=val, t=threads: before.spmm(
                                           crow, col, val, b, out, t),
                                       "fixed widths": lambda b=b, out=out, val=val, t=threads: SPMM.spmm(
                                           crow, col, val, b, out, t)}, repeat)
                record("fixed widths", f"spmm {name} k={k} {np.dtype(dt).name} ({k * np.dtype(dt).itemsize} B "
                       f"rows, {label}; {threads} thread(s))", medians, "fixed widths")


def row_widths(repeat, record, quick=False, old=None):
    """SpMM rows of 16 or 32 bytes (4 or 8 floats, 2 or 4 doubles) at the level whose vector
    they fill, through the loop compiled for that width, and rows of other widths in one
    pass with a masked last vector (now), against the general loop at the widest level,
    block by block with narrower levels for the rest (the build ``old``), kernel only,
    2 threads, line-aligned B and ``out``; torch's CSR product of the same operands for
    scale."""
    if old is None:
        raise SystemExit('--only "row widths" needs --old PATH: a build of commit d6f47bc')
    import torch

    torch.set_num_threads(THREADS)
    before = load_old(old, "spmm")
    for name in ("uniform", "powerlaw", "laplacian"):
        m = MATRICES[name](*((2000,) if name != "laplacian" else (40,))) if quick else MATRICES[name]()
        crow, col = m.indptr.astype(np.int64), m.indices.astype(np.int64)
        for k, dt in ((4, np.float32), (8, np.float32), (2, np.float64), (4, np.float64), (12, np.float32),
                      (6, np.float64), (24, np.float32), (12, np.float64), (48, np.float32), (96, np.float32),
                      (100, np.float32)):
            val = m.data.astype(dt)
            b = line_aligned((m.shape[1], k), dt)
            b[...] = np.random.default_rng(k).standard_normal(b.shape)
            out = line_aligned((m.shape[0], k), dt)
            ta = torch.sparse_csr_tensor(torch.from_numpy(crow), torch.from_numpy(col), torch.from_numpy(val),
                                         m.shape)
            tb = torch.from_numpy(b)
            vectors = SPMM._fixed_vectors(b)
            label = f"{vectors} vector(s), fixed" if vectors else "general loop, one pass"
            medians = interleaved({"general loop": lambda b=b, out=out, val=val: before.spmm(
                                       crow, col, val, b, out, THREADS),
                                   "row widths": lambda b=b, out=out, val=val: SPMM.spmm(
                                       crow, col, val, b, out, THREADS),
                                   "torch CSR": lambda ta=ta, tb=tb: torch.sparse.mm(ta, tb)}, repeat)
            record("row widths", f"spmm {name} k={k} {np.dtype(dt).name} ({k * np.dtype(dt).itemsize} B rows, "
                   f"{label})", medians, "row widths")


def spgemm_arrays(m):
    """A @ A's kernel arguments for a SciPy CSR matrix m: A's arrays, n, and C's row
    pointers (the symbolic pass) and output arrays, for timing the numeric pass alone."""
    crow, col, val = m.indptr.astype(np.int64), m.indices.astype(np.int64), m.data
    n = m.shape[0]
    out_crow = np.empty(n + 1, np.int64)
    SPGEMM.spgemm_symbolic(crow, col, crow, col, n, out_crow, THREADS)
    nnz = int(out_crow[-1])
    return crow, col, val, n, out_crow, np.empty(nnz, np.int64), np.empty(nnz)


def switched(hook, call, settings: dict) -> dict:
    """{variant: a callable that sets ``hook(setting)``, then makes ``call``}, for
    :func:`interleaved`."""
    def run(setting):
        def f():
            hook(setting)
            call()
        return f
    return {variant: run(setting) for variant, setting in settings.items()}


def onepass_room(crow, col, n):
    """Output arrays for ``spgemm_onepass`` of A @ A as long as its products (the bound)."""
    flops = np.empty(n, np.int64)
    SPGEMM.spgemm_bounds(crow, col, crow, flops, np.empty(n, np.int64), THREADS)
    return np.zeros(int(flops.sum()), np.int64), np.zeros(int(flops.sum()))


def spgemm_streaming(repeat, record, quick=False):
    """SpGEMM's output written with non-temporal stores (the default for 128 MiB and more)
    against cached stores, the numeric kernel alone and the whole ``sr.sparse.mm(A, A)``."""
    import sparse_ref as sr

    sr.set_num_threads(THREADS)
    default = SPGEMM._set_stream(-1)
    SPGEMM._set_stream(default)
    for name in ("laplacian", "uniform", "powerlaw"):
        m = MATRICES[name](*((2000,) if name != "laplacian" else (40,))) if quick else MATRICES[name]()
        a = sr.from_scipy(m).to_sparse()
        crow, col, val, n, out_crow, out_col, out_val = spgemm_arrays(m)
        nnz = out_col.shape[0]

        def run(on, whole):
            def f():
                SPGEMM._set_stream(0 if on else -1)
                if whole:
                    sr.sparse.mm(a, a)
                else:
                    SPGEMM.spgemm_numeric(crow, col, val, crow, col, val, n, out_crow, out_col, out_val, THREADS)
            return f
        reps = repeat if name == "laplacian" else max(repeat // 3, 3)
        size = f"{nnz * 16 / 1e6:.0f} MB output"
        for whole, what in ((False, "numeric pass"), (True, "sr.sparse.mm(A, A)")):
            medians = interleaved({"cached stores": run(False, whole), "streamed": run(True, whole)}, reps)
            kept = "streamed" if 0 <= default <= nnz * 16 else "cached stores"
            record("spgemm streaming stores", f"spgemm {name} {what} ({size})", medians, kept)
        SPGEMM._set_stream(default)


def spgemm_ranks(repeat, record, quick=False):
    """Rows of C of 17-128 entries put in order by rank (the default) against sorted, the
    numeric kernel alone, at each vector level that puts rows in order by rank; on the
    Laplacian (rows of 13, below the range) also with rows of any length by rank."""
    import functools

    import matrices as M

    widest = SPGEMM._simd_level()
    default = SPGEMM._set_rank_range(16, 0)
    SPGEMM._set_rank_range(*default)
    cases = {"laplacian": MATRICES["laplacian"], "uniform": MATRICES["uniform"], "powerlaw": MATRICES["powerlaw"],
             "uniform, 3 a row": functools.partial(M.uniform, per_row=3),
             "uniform, 5 a row": functools.partial(M.uniform, per_row=5)}
    try:
        for name, make in cases.items():
            m = make(*((2000,) if name != "laplacian" else (40,))) if quick else make()
            crow, col, val, n, out_crow, out_col, out_val = spgemm_arrays(m)
            nnz = out_col.shape[0]
            mean = nnz / max(n, 1)

            def run(level, low, high):
                def f():
                    SPGEMM._set_simd_level(level)
                    SPGEMM._set_rank_range(low, high)
                    SPGEMM.spgemm_numeric(crow, col, val, crow, col, val, n, out_crow, out_col, out_val, THREADS)
                return f
            reps = repeat if nnz < 10_000_000 else max(repeat // 2, 3)
            for level in LEVELS[1:LEVELS.index(widest) + 1]:
                variants = {"sorted": run(level, default[0], 0), "by rank": run(level, *default)}
                if name == "laplacian" or name == "uniform, 3 a row":
                    variants["by rank, any length"] = run(level, 0, default[1])
                medians = interleaved(variants, reps)
                record("spgemm ranks", f"spgemm {name} numeric pass, {level} (rows of C: {mean:.0f} on average)",
                       medians, "by rank")
    finally:
        SPGEMM._set_simd_level(widest)
        SPGEMM._set_rank_range(*default)


def spgemm_dense(repeat, record, quick=False):
    """SpGEMM's numeric pass, kernel alone, 2 threads: as before (every row's sums in its
    slots), with each row's span found first (the loads of the ends of its rows of B), and
    with band rows' sums in the dense array as well (the default); on the Laplacian also
    the whole ``sr.sparse.mm(A, A)``."""
    import functools

    import matrices as M

    import sparse_ref as sr

    sr.set_num_threads(THREADS)
    default = SPGEMM._set_dense_limit(-1)
    SPGEMM._set_dense_limit(*default)
    cases = {"laplacian": MATRICES["laplacian"], "uniform": MATRICES["uniform"], "powerlaw": MATRICES["powerlaw"],
             "uniform, 5 a row": functools.partial(M.uniform, per_row=5)}
    variants = {"before": (-1, default[1], False), "span first": (-1, default[1], True), "span first + dense": default}
    try:
        for name, make in cases.items():
            m = make(*((2000,) if name != "laplacian" else (40,))) if quick else make()
            crow, col, val, n, out_crow, out_col, out_val = spgemm_arrays(m)
            nnz = out_col.shape[0]
            a = sr.from_scipy(m).to_sparse()

            def run(limits, whole):
                def f():
                    SPGEMM._set_dense_limit(*limits)
                    if whole:
                        sr.sparse.mm(a, a)
                    else:
                        SPGEMM.spgemm_numeric(crow, col, val, crow, col, val, n, out_crow, out_col, out_val, THREADS)
                return f
            reps = repeat if nnz < 10_000_000 else max(repeat // 2, 3)
            for whole in ((False, True) if name == "laplacian" else (False,)):
                medians = interleaved({v: run(limits, whole) for v, limits in variants.items()}, reps)
                what = "sr.sparse.mm(A, A)" if whole else "numeric pass"
                record("spgemm dense accumulator", f"spgemm {name} {what} (rows of C: {nnz / max(n, 1):.0f})",
                       medians, "span first + dense")
    finally:
        SPGEMM._set_dense_limit(*default)


def spgemm_hook_ab(repeat, record, quick, lever, hook, variants, kept, suffix=""):
    """SpGEMM's symbolic and numeric passes (kernel alone, 2 threads) on the three
    matrices, and the Laplacian's whole ``sr.sparse.mm(A, A)``, under each of ``variants``
    ({label: the value given to the tuning ``hook`` before each call}), interleaved."""
    import sparse_ref as sr

    for name in ("laplacian", "uniform", "powerlaw"):
        m = MATRICES[name](*((2000,) if name != "laplacian" else (40,))) if quick else MATRICES[name]()
        crow, col, val, n, out_crow, out_col, out_val = spgemm_arrays(m)
        a = sr.from_scipy(m).to_sparse()
        calls = {
            "symbolic pass": lambda: SPGEMM.spgemm_symbolic(crow, col, crow, col, n, np.empty_like(out_crow), THREADS),
            "numeric pass": lambda: SPGEMM.spgemm_numeric(crow, col, val, crow, col, val, n, out_crow, out_col,
                                                          out_val, THREADS)}
        if name == "laplacian":
            calls["sr.sparse.mm(A, A)"] = lambda: sr.sparse.mm(a, a)
        reps = repeat if out_col.shape[0] < 10_000_000 else max(repeat // 2, 3)
        for what, call in calls.items():
            def run(value, call=call):
                def f():
                    hook(value)
                    call()
                return f
            medians = interleaved({label: run(value) for label, value in variants.items()}, reps)
            record(lever, f"spgemm {name} {what}{suffix}", medians, kept)


def spgemm_chunks(repeat, record, quick=False):
    """SpGEMM's two passes, kernel alone, 2 threads, with chunks of rows of about 102,400
    products by the average row (the default: 4096 rows on the Laplacian, 1024 as before
    on the random matrices, controls) against the other kernels' chunk (1024 rows at
    most, ``spgemm._set_chunk_products(0)``), on a quiet machine and with another process
    spinning on one core; the Laplacian's whole ``sr.sparse.mm(A, A)`` too."""
    import subprocess
    import sys

    import sparse_ref as sr

    sr.set_num_threads(THREADS)
    default = SPGEMM._set_chunk_products(0)
    SPGEMM._set_chunk_products(default)
    try:
        for busy in (False, True):
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
            try:
                spgemm_hook_ab(repeat, record, quick, "spgemm chunks", SPGEMM._set_chunk_products,
                               {"1024 rows at most": 0, "about 102,400 products": default}, "about 102,400 products",
                               ", one core busy" if busy else "")
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
    finally:
        SPGEMM._set_chunk_products(default)


def prefetch_hint(repeat, record, quick=False):
    """SpMM's prefetch of rows of B under 512 bytes with locality 1 (prefetcht2) except in
    band rows of A (columns spanning fewer than 4096 rows of B), against locality 3
    (prefetcht0) everywhere, and against prefetcht2 in every row; kernel alone, with B
    left in the cache by the call before and with B from memory; 512-byte rows are a
    control. Kept: this CPU's default (prefetcht2 but in bands on AMD, prefetcht0 on
    others). Then whole ``sr.sparse.mm`` calls, prefetcht0 against this CPU's choice."""
    import sparse_ref as sr
    from sparse_ref._memory import empty

    sr.set_num_threads(THREADS)
    junk = np.ones((4 if quick else 400) << 17)  # 400 MiB: read between calls, nothing of B stays cached
    default = "prefetcht2, prefetcht0 in bands" if SPMM._prefetch_outer()[1] else "prefetcht0"

    def evict():
        junk.sum()

    try:
        for name in ("uniform", "powerlaw", "laplacian"):
            m = MATRICES[name](*((2000,) if name != "laplacian" else (40,))) if quick else MATRICES[name]()
            crow, col = m.indptr.astype(np.int64), m.indices.astype(np.int64)
            for dt, k in ((np.float32, 12), (np.float32, 16), (np.float64, 16), (np.float32, 32), (np.float64, 32),
                          (np.float32, 64), (np.float64, 64)):
                val = m.data.astype(dt)
                b = empty((m.shape[1], k), dt)
                b[...] = np.random.default_rng(k).standard_normal((m.shape[1], k))
                out = empty((m.shape[0], k), dt)

                def run(outer, band, b=b, out=out, val=val):
                    def f():
                        SPMM._set_prefetch(10, 512, True, 20, 40, outer, band)
                        SPMM.spmm(crow, col, val, b, out, THREADS)
                    return f
                width = k * np.dtype(dt).itemsize
                for where, between in (("B cached by the call before", None), ("B from memory", evict)):
                    medians = interleaved({"prefetcht0": run(0, 4096), "prefetcht2, prefetcht0 in bands": run(1, 4096),
                                           "prefetcht2": run(1, 0)}, repeat, between)
                    record("prefetch hint", f"spmm {name} k={k} {np.dtype(dt).name} ({width} B rows"
                           f"{', a control' if width >= 512 else ''}), {where}", medians, default)
        for name in ("uniform", "powerlaw", "laplacian"):
            m = MATRICES[name](*((2000,) if name != "laplacian" else (40,))) if quick else MATRICES[name]()
            for dt in (np.float64, np.float32):
                a = sr.from_scipy(m.astype(dt)).to_sparse()
                for k in (16, 64):
                    b = sr.from_numpy(np.random.default_rng(k).standard_normal((m.shape[1], k)).astype(dt))

                    def call(outer, a=a, b=b):
                        def f():
                            SPMM._set_prefetch(10, 512, True, 20, 40, outer)
                            sr.sparse.mm(a, b)
                        return f
                    medians = interleaved({"prefetcht0": call(0), "this CPU's choice": call(-1)}, repeat)
                    record("prefetch hint", f"sr.sparse.mm {name} k={k} {np.dtype(dt).name}", medians,
                           "this CPU's choice")
    finally:
        SPMM._set_prefetch(10, 512)


def spgemm_band_prefetch(repeat, record, quick=False):
    """SpGEMM's two passes, kernel alone, 2 threads, with band rows of A (two or more
    entries, columns spanning fewer than 4096 rows of B) not prefetching (the default)
    against every row prefetching (``spgemm._set_prefetch_band(0)``, as before); the
    Laplacian's whole ``sr.sparse.mm(A, A)`` too. The random matrices' rows are wide (or
    of one entry): the same code in both variants (controls)."""
    import sparse_ref as sr

    sr.set_num_threads(THREADS)
    default = SPGEMM._set_prefetch_band(0)
    SPGEMM._set_prefetch_band(default)
    try:
        spgemm_hook_ab(repeat, record, quick, "spgemm band prefetch", SPGEMM._set_prefetch_band,
                       {"every row prefetched": 0, "band rows not": default}, "band rows not")
    finally:
        SPGEMM._set_prefetch_band(default)


def coalesce_ranks(repeat, record, quick=False):
    """coalesce's rows of 17-128 entries put in order by rank (the default) against sorted,
    whole ``coalesce()`` calls on 2 threads, at each vector level that puts rows in order by
    rank: the benchmark's 10M draws in 100k x 100k (rows of about 100), and 3M (about 30)."""
    import sparse_ref as sr

    sr.set_num_threads(THREADS)
    widest = COALESCE._simd_level()
    default = COALESCE._set_rank_range(16, 0)
    COALESCE._set_rank_range(*default)
    rng = np.random.default_rng(0)
    n = 2000 if quick else 100_000
    try:
        for nnz in ((20_000, 6_000) if quick else (10_000_000, 3_000_000)):
            s = sr.sparse_coo_tensor(np.stack([rng.integers(0, n, nnz), rng.integers(0, n, nnz)]),
                                     rng.standard_normal(nnz), (n, n))

            def run(level, low, high):
                def f():
                    COALESCE._set_simd_level(level)
                    COALESCE._set_rank_range(low, high)
                    with sr.use_backend("cython"):
                        s.coalesce()
                return f
            for level in LEVELS[1:LEVELS.index(widest) + 1]:
                medians = interleaved({"sorted": run(level, default[0], 0), "by rank": run(level, *default)}, repeat)
                record("coalesce ranks", f"coalesce {nnz / 1e6:g}M draws, {n} x {n} (rows of {nnz / n:.0f}), {level}",
                       medians, "by rank")
    finally:
        COALESCE._set_simd_level(widest)
        COALESCE._set_rank_range(*default)


def dynamic_schedule(repeat, record, quick=False, old=None, since=None):
    """The parallel row loops in chunks of about 1/64 of a thread's share, dynamic schedule
    (now) against OpenMP's guided schedule (the build ``old``: commit 90e9bc9), kernel only,
    2 threads given explicitly, on a quiet machine and with another process spinning on one
    core: SpGEMM's numeric and symbolic passes and coalesce (10M draws), kept; with
    ``since`` (the build of commit f69fc21, whose SpMM had it too) SpMM at k = 16, dropped
    (SpMM keeps the guided schedule)."""
    import subprocess
    import sys

    if old is None:
        raise SystemExit('--only "dynamic schedule" needs --old PATH: a build of commit 90e9bc9')
    before = {name: load_old(old, name) for name in ("spgemm", "spmm", "coalesce")}
    now = {"spgemm": SPGEMM, "spmm": load_old(since, "spmm") if since else None, "coalesce": COALESCE}
    cases = []
    for name in ("laplacian", "uniform"):
        m = MATRICES[name](*((2000,) if name != "laplacian" else (40,))) if quick else MATRICES[name]()
        crow, col, val, n, out_crow, out_col, out_val = spgemm_arrays(m)
        cases.append((f"spgemm {name} numeric pass", "spgemm", lambda k, a=(crow, col, val, n, out_crow, out_col, out_val):
                      k.spgemm_numeric(a[0], a[1], a[2], a[0], a[1], a[2], a[3], a[4], a[5], a[6], THREADS)))
        cases.append((f"spgemm {name} symbolic pass", "spgemm", lambda k, a=(crow, col, n, out_crow):
                      k.spgemm_symbolic(a[0], a[1], a[0], a[1], a[2], a[3], THREADS)))
        for k_cols, dt in (((16, np.float32), (16, np.float64)) if since else ()):
            b = line_aligned((m.shape[1], k_cols), dt)
            b[...] = np.random.default_rng(k_cols).standard_normal(b.shape)
            out = line_aligned((m.shape[0], k_cols), dt)
            cases.append((f"spmm {name} k={k_cols} {np.dtype(dt).name}", "spmm",
                          lambda k, a=(crow, col, val.astype(dt), b, out): k.spmm(*a, THREADS)))
    rng = np.random.default_rng(0)
    n, nnz = (100_000, 10_000_000) if not quick else (1000, 100_000)
    row, col, val = rng.integers(0, n, nnz), rng.integers(0, n, nnz), rng.standard_normal(nnz)
    outs = (np.empty(n + 1, np.int64), np.empty(nnz, np.int64), np.empty(nnz), np.empty(0, np.int64))
    cases.append((f"coalesce {nnz / 1e6:g}M draws, {n} x {n}", "coalesce",
                  lambda k: k.coalesce(row, col, val, n, *outs, THREADS)))
    for busy in (False, True):
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            for label, module, call in cases:
                medians = interleaved({"guided": lambda: call(before[module]), "dynamic": lambda: call(now[module])},
                                      repeat)
                record("dynamic schedule", f"{label}{', one core busy' if busy else ''}", medians,
                       "guided" if module == "spmm" else "dynamic")
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()


def spgemm_one_pass(repeat, record, quick=False):
    """SpGEMM's two passes (symbolic, then numeric into the exact output) against one pass
    (``spgemm_onepass``: each chunk of rows packed in its thread's own buffer and copied to
    its place once the chunks before it are counted, by a look-back; no symbolic pass),
    kernels only, on 2 threads and on 1, interleaved, the outputs preallocated (the bound's
    length for one pass); then whole ``sr.sparse.mm(A, A)`` calls (COO and CSR), one pass
    against two (``_products._set_one_pass``), on a quiet machine and with another process
    spinning on one core."""
    import subprocess
    import sys

    import sparse_ref as sr
    from sparse_ref import _products

    sr.set_num_threads(THREADS)
    for name in ("laplacian", "uniform", "powerlaw"):
        m = MATRICES[name](*((2000,) if name != "laplacian" else (40,))) if quick else MATRICES[name]()
        crow, col, val, n, out_crow, out_col, out_val = spgemm_arrays(m)
        flops = np.empty(n, np.int64)
        SPGEMM.spgemm_bounds(crow, col, crow, flops, np.empty(n, np.int64), THREADS)
        upper = int(flops.sum())
        room_col, room_val = np.zeros(upper, np.int64), np.zeros(upper)
        size = f"{out_col.shape[0] * 16 / 1e6:.0f} MB output, bound {upper / out_col.shape[0]:.2f}x"
        reps = repeat if name == "laplacian" else max(repeat // 3, 3)
        for threads in (THREADS, 1):
            def two(threads=threads):
                c = np.empty(n + 1, np.int64)
                SPGEMM.spgemm_symbolic(crow, col, crow, col, n, c, threads)
                SPGEMM.spgemm_numeric(crow, col, val, crow, col, val, n, c, out_col, out_val, threads)

            def one(threads=threads):
                SPGEMM.spgemm_onepass(crow, col, val, crow, col, val, n, np.empty(n + 1, np.int64), room_col,
                                      room_val, threads)
            record("spgemm one pass", f"spgemm {name} kernels, {threads} thread(s) ({size})",
                   interleaved({"two passes": two, "one pass": one}, reps), "one pass")
        del room_col, room_val
        a = sr.from_scipy(m)
        for fmt, x in (("COO", a.to_sparse()), ("CSR", a)):
            for busy in (False, True):
                spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None

                def run(on, x=x):
                    def f():
                        previous = _products._set_one_pass(on)
                        try:
                            sr.sparse.mm(x, x)
                        finally:
                            _products._set_one_pass(previous)
                    return f
                try:
                    record("spgemm one pass", f"spgemm {name} sr.sparse.mm(A, A) ({fmt}){', one core busy' if busy else ''}",
                           interleaved({"two passes": run(False), "one pass": run(True)}, reps), "one pass")
                finally:
                    if spinner is not None:
                        spinner.kill()
                        spinner.wait()


def spgemm_stream_copy(repeat, record, quick=False):
    """SpGEMM's one pass copying each chunk from its thread's buffer to the output with
    streaming stores (the default) against memcpy (``spgemm._set_stream_copy``), kernel
    alone (2 threads, preallocated output as long as the bound) and whole
    ``sr.sparse.mm(A, A)`` calls, interleaved."""
    import sparse_ref as sr

    sr.set_num_threads(THREADS)
    try:
        for name in ("laplacian", "uniform", "powerlaw"):
            m = MATRICES[name](*((2000,) if name != "laplacian" else (40,))) if quick else MATRICES[name]()
            crow, col, val, n, out_crow, out_col, out_val = spgemm_arrays(m)
            room_col, room_val = onepass_room(crow, col, n)
            a = sr.from_scipy(m).to_sparse()
            calls = {"one pass": lambda: SPGEMM.spgemm_onepass(crow, col, val, crow, col, val, n, out_crow, room_col,
                                                              room_val, THREADS),
                     "sr.sparse.mm(A, A)": lambda: sr.sparse.mm(a, a)}
            reps = repeat if name == "laplacian" else max(repeat // 3, 3)
            for what, call in calls.items():
                record("spgemm stream copy", f"spgemm {name} {what} ({out_col.shape[0] * 16 / 1e6:.0f} MB output)",
                       interleaved(switched(SPGEMM._set_stream_copy, call, {"memcpy": False, "streaming stores": True}),
                                   reps), "streaming stores")
            del room_col, room_val
    finally:
        SPGEMM._set_stream_copy(True)


def lever_matrix(name: str, quick: bool):
    """A benchmark matrix by name (small with ``quick``); "uniform 4000" is a uniform one of
    4000 rows, all of whose rows of A @ A are bands of fewer than 4096 columns."""
    if name == "uniform 4000":
        return MATRICES["uniform"](400 if quick else 4000)
    return MATRICES[name](*((2000,) if name != "laplacian" else (40,))) if quick else MATRICES[name]()


def onepass_calls(m, numeric: bool) -> dict:
    """{label: call} for ``A @ A``: the one pass on 1 and THREADS threads (kernel alone,
    output as long as the bound), with ``numeric`` the numeric pass on THREADS, and the
    whole ``sr.sparse.mm(A, A)``."""
    import sparse_ref as sr

    crow, col, val, n, out_crow, out_col, out_val = spgemm_arrays(m)
    room_col, room_val = onepass_room(crow, col, n)
    one_crow = np.empty(n + 1, np.int64)
    a = sr.from_scipy(m).to_sparse()
    calls = {"one pass, 1 thread": lambda: SPGEMM.spgemm_onepass(crow, col, val, crow, col, val, n, one_crow,
                                                                  room_col, room_val, 1),
             f"one pass, {THREADS} threads": lambda: SPGEMM.spgemm_onepass(crow, col, val, crow, col, val, n,
                                                                           one_crow, room_col, room_val, THREADS)}
    if numeric:
        calls[f"numeric pass, {THREADS} threads"] = lambda: SPGEMM.spgemm_numeric(
            crow, col, val, crow, col, val, n, out_crow, out_col, out_val, THREADS)
    calls["sr.sparse.mm(A, A)"] = lambda: sr.sparse.mm(a, a)
    return calls


def onepass_ab(repeat, record, quick, lever, hook, variants, kept, names, numeric=False):
    """Each of ``onepass_calls`` on each matrix of ``names`` under each of ``variants``
    ({label: the value given to the tuning ``hook`` before each call}), interleaved; the
    random matrices fewer times (their products take seconds)."""
    import sparse_ref as sr

    sr.set_num_threads(THREADS)
    for name in names:
        calls = onepass_calls(lever_matrix(name, quick), numeric)
        reps = max(repeat // 3, 3) if name in ("uniform", "powerlaw") else 3 * repeat
        for what, call in calls.items():
            record(lever, f"spgemm {name} {what}", interleaved(switched(hook, call, variants), reps), kept)
        del calls  # (the output room of this matrix, before the next one's)


def spgemm_bitmap_scan(repeat, record, quick=False):
    """SpGEMM's band rows put in order by a bitmap scan (the default) against their ranks
    or a sort (``spgemm._set_bitmap_scan(0)``): the one pass on 1 and 2 threads (output
    as long as the bound) and the numeric pass on 2 (kernels alone), then whole
    ``sr.sparse.mm(A, A)`` calls, interleaved; the hook is read when a call allocates its
    workspace. The benchmark matrices, and a uniform one of 4000 rows (10 a row), all of
    whose rows take the scan."""
    try:
        onepass_ab(repeat, record, quick, "spgemm bitmap scan", SPGEMM._set_bitmap_scan,
                   {"ranks or sort": 0, "bitmap scan": 1}, "bitmap scan",  # (kept on both families)
                   ("laplacian", "uniform", "powerlaw", "uniform 4000"), numeric=True)
    finally:
        SPGEMM._set_bitmap_scan(-1)  # (the default)


def spgemm_stage_bound(repeat, record, quick=False):
    """SpGEMM's one pass with chunks' buffers from their rows' bound (the default) against
    a count of each chunk's products (``spgemm._set_stage_bound(0)``): the one pass on 1
    and 2 threads (output as long as the bound), then whole ``sr.sparse.mm(A, A)`` calls,
    interleaved."""
    default = SPGEMM._set_stage_bound(0)
    SPGEMM._set_stage_bound(default)
    try:
        onepass_ab(repeat, record, quick, "spgemm stage bound", SPGEMM._set_stage_bound,
                   {"count": 0, "rows' bound": default}, "rows' bound", ("laplacian", "uniform", "powerlaw"))
    finally:
        SPGEMM._set_stage_bound(default)


def only(args):
    """One lever; its rows (each with today's date) replace that lever's rows in this
    machine's saved file, and every other row is kept as it was."""
    rows = []

    def record(lever, case, medians, kept):
        base = medians[next(iter(medians))]
        for variant, ms in medians.items():
            rows.append({"lever": lever, "case": case, "variant": variant, "median_ms": ms,
                         "speedup_vs_first": round(base / ms, 2), "kept": variant == kept,
                         "date": time.strftime("%Y-%m-%d")})

    levers = {"output cache": output_cache, "prefetch distance": prefetch_distance,
              "spgemm bounds skip": bounds_skip, "spmv loop": spmv_loop, "streaming stores": streaming_stores,
              "narrow tails": lambda *a: narrow_tails(*a, old=args.old),
              "fixed widths": lambda *a: fixed_widths(*a, old=args.old),
              "row widths": lambda *a: row_widths(*a, old=args.old),
              "spgemm streaming stores": spgemm_streaming, "spgemm ranks": spgemm_ranks,
              "coalesce ranks": coalesce_ranks, "spgemm dense accumulator": spgemm_dense,
              "spgemm band prefetch": spgemm_band_prefetch, "prefetch hint": prefetch_hint,
              "spgemm chunks": spgemm_chunks,
              "dynamic schedule": lambda *a: dynamic_schedule(*a, old=args.old, since=args.since),
              "spgemm one pass": spgemm_one_pass, "spgemm stream copy": spgemm_stream_copy,
              "spgemm bitmap scan": spgemm_bitmap_scan,
              "sddmm loop": lambda *a: sddmm_loop(*a, old=args.old), "int32 columns": int32_columns,
              "spgemm stage bound": spgemm_stage_bound}
    levers[args.only](args.repeat, record, args.quick)
    print(table(rows, ["lever", "case", "variant", "median_ms", "speedup_vs_first", "kept"]))
    if args.quick:
        return
    path = RESULTS / cpu_slug() / "levers.json"
    kept = json.loads(path.read_text()) if path.exists() else {"threads": THREADS, "results": []}
    kept.pop("benchmark", None)
    kept.pop("machine", None)
    date = kept.pop("date", None)
    kept["results"] = [r if "date" in r or date is None else {**r, "date": date}
                       for r in kept["results"] if r["lever"] != args.only] + rows
    path = save("levers", kept)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()

"""``.. sr-targets::``: the performance targets of issue 13, one column per machine whose
results ``benchmarks/`` has kept (``benchmarks/results/`` itself and each folder in it),
read from the committed JSON files when the docs build -- nothing is timed here.

Each cell is a speed-up (the other library's median time over sparse_ref's; above 1 means
sparse_ref is faster) or, for the rows that say so, a ratio where lower is better, with a
mark saying whether the target holds. A result a machine has no file for shows a dash.
"""

import json
from pathlib import Path

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

HOLDS, MISSES = "\u2713", "\u2717"  # check mark, ballot x


def _load(folder: Path) -> dict:
    runs = {}
    for name in ("products", "coalesce", "autograd", "busy"):
        path = folder / f"{name}.json"
        if path.exists():
            runs[name] = json.loads(path.read_text())
    return runs


def _median(rows, **match):
    for r in rows:
        if all(r.get(k) == v for k, v in match.items()):
            return r["median_ms"]
    return None


def _spmm(runs, matrix, k, dtype, anchor):
    rows = runs.get("products", {}).get("results", [])
    # runs from before float32 was measured have no dtype key: they are float64
    dt = {"dtype": dtype} if any("dtype" in r for r in rows if r["op"] == "spmm") else {}
    if dt == {} and dtype != "float64":
        return None
    ours = _median(rows, op="spmm", matrix=matrix, k=k, library="sparse_ref", **dt)
    theirs = _median(rows, op="spmm", matrix=matrix, k=k, library=anchor, **dt)
    return theirs / ours if ours and theirs else None


def _spgemm(runs, matrix, layout="sparse_ref"):
    rows = runs.get("products", {}).get("results", [])
    ours = _median(rows, op="spgemm", matrix=matrix, library=layout)
    theirs = _median(rows, op="spgemm", matrix=matrix, library="scipy")
    return theirs / ours if ours and theirs else None


def _spgemm_memory(runs):
    worst = None
    for r in runs.get("products", {}).get("results", []):
        if r["op"] == "spgemm" and r["library"] == "sparse_ref" and r.get("peak_extra_bytes") is not None:
            ratio = r["peak_extra_bytes"] / r["out_bytes"]
            worst = ratio if worst is None else max(worst, ratio)
    return worst


def _coalesce(runs, anchor, ours_as="sparse_ref"):
    rows = runs.get("coalesce", {}).get("results", [])
    ours = _median(rows, library=ours_as, threads=2)
    theirs = _median(rows, library=anchor)
    return theirs / ours if ours and theirs else None


def _autograd(runs, case="uniform fwd+bwd k=64"):
    rows = runs.get("autograd", {}).get("results", [])
    ours = _median(rows, case=case, library="sparse_ref")
    theirs = _median(rows, case=case, library="torch_csr")
    return theirs / ours if ours and theirs else None


def _sddmm(runs):
    rows = runs.get("products", {}).get("results", [])
    ours = _median(rows, op="sddmm", matrix="uniform", library="sparse_ref")
    theirs = _median(rows, op="sddmm", matrix="uniform", library="torch_csr")
    return theirs / ours if ours and theirs else None


def _busy(runs):
    rows = runs.get("busy", {}).get("results", [])
    return max((r["slowdown_2_vs_1"] for r in rows), default=None)


def _overhead(runs):
    rows = runs.get("products", {}).get("results", [])
    ours = _median(rows, op="spmm_10x10", library="sparse_ref")
    theirs = _median(rows, op="spmm_10x10", library="scipy")
    return ours / theirs if ours and theirs else None


def _fraction(runs, op, matrix=None, k=None):
    if op in ("coalesce", "autograd"):
        rows = runs.get(op, {}).get("results", [])
        return rows[1 if op == "coalesce" else 0].get("fraction_of_bandwidth") if len(rows) > 1 else None
    for r in runs.get("products", {}).get("results", []):
        if (r["op"] == op and r["matrix"] == matrix and r.get("k") == k and r["library"] == "sparse_ref"
                and r.get("dtype", "float64") == "float64"):
            return r.get("fraction_of_bandwidth")
    return None


def _gathers(runs, matrix, k, dtype, anchor, goal):
    """(sparse_ref's time, the time the target asks for) over the time of the gathers alone
    (``gathers_only_ms``: the same rows of B read in the same order, nothing else), or None
    for a run that did not time them."""
    rows = runs.get("products", {}).get("results", [])
    for r in rows:
        if (r["op"] == "spmm" and r["matrix"] == matrix and r.get("k") == k and r["library"] == "sparse_ref"
                and r.get("dtype", "float64") == dtype and r.get("gathers_only_ms")):
            theirs = _median(rows, op="spmm", matrix=matrix, k=k, library=anchor, dtype=dtype)
            if theirs is None:
                return None
            return r["median_ms"] / r["gathers_only_ms"], theirs / goal / r["gathers_only_ms"]
    return None


def gathers_rows():
    """(label, figure(runs)) for every SpMM target: _gathers against its anchor and goal."""
    rows = []
    for dtype in ("float64", "float32"):
        for matrix, anchor, goal, ks in (("uniform", "torch_csr", 2.0, (16, 64, 256)),
                                         ("powerlaw", "torch_csr", 2.0, (16, 64, 256)),
                                         ("laplacian", "scipy", 1.2, (1, 16, 64, 256))):
            for k in ks:
                rows.append((f"{matrix}, k = {k}, {dtype}",
                             lambda r, m=matrix, k=k, d=dtype, a=anchor, g=goal: _gathers(r, m, k, d, a, g)))
    return rows


def targets():
    """(section, label, target, lower_is_better, figure(runs)) for every row of the table."""
    rows = []
    for dtype in ("float64", "float32"):
        for matrix in ("uniform", "powerlaw"):
            for k in (16, 64, 256):
                rows.append(("SpMM vs torch CSR", f"{matrix}, k = {k}, {dtype}", 2.0, False,
                             lambda r, m=matrix, k=k, d=dtype: _spmm(r, m, k, d, "torch_csr")))
        for k in (1, 16, 64, 256):
            rows.append(("SpMM vs SciPy", f"laplacian, k = {k}, {dtype}", 1.2, False,
                         lambda r, k=k, d=dtype: _spmm(r, "laplacian", k, d, "scipy")))
    for matrix in ("uniform", "powerlaw", "laplacian"):
        rows.append(("SpGEMM vs SciPy", f"{matrix} A @ A, COO", 1.5, False, lambda r, m=matrix: _spgemm(r, m)))
        rows.append(("SpGEMM vs SciPy", f"{matrix} A @ A, COO with its row indices read", 1.5, False,
                     lambda r, m=matrix: _spgemm(r, m, "sparse_ref_rows")))
        rows.append(("SpGEMM vs SciPy", f"{matrix} A @ A, CSR", 1.5, False,
                     lambda r, m=matrix: _spgemm(r, m, "sparse_ref_csr")))
    rows += [
        ("SpGEMM memory", "peak extra memory / output (worst matrix)", 1.2, True, _spgemm_memory),
        ("coalesce", "vs SciPy tocsr", 2.0, False, lambda r: _coalesce(r, "scipy")),
        ("coalesce", "vs SciPy tocsr, with the row indices read", 2.0, False,
         lambda r: _coalesce(r, "scipy", "sparse_ref_rows")),
        ("coalesce", "vs torch", 5.0, False, lambda r: _coalesce(r, "torch")),
        ("autograd", "forward + both gradients vs torch CSR (y.sum().backward())", 2.0, False, _autograd),
        ("autograd", "the same with a full n x k gradient (y.backward(G))", 2.0, False,
         lambda r: _autograd(r, "uniform fwd+bwd k=64, full G")),
        ("SDDMM", "vs torch sampled_addmm", 1.2, False, _sddmm),
        ("busy machine", "2 threads / 1 thread, one core busy (worst op)", 1.10, True, _busy),
        ("small calls", "10 x 10 SpMM, time / SciPy's", 2.0, True, _overhead),
    ]
    return rows


def bandwidth_rows():
    return [
        ("SpMM uniform, k = 64", lambda r: _fraction(r, "spmm", "uniform", 64)),
        ("SpMM laplacian, k = 64", lambda r: _fraction(r, "spmm", "laplacian", 64)),
        ("SpMM laplacian, k = 1", lambda r: _fraction(r, "spmm", "laplacian", 1)),
        ("SpGEMM uniform", lambda r: _fraction(r, "spgemm", "uniform")),
        ("SDDMM uniform, k = 64", lambda r: _fraction(r, "sddmm", "uniform", 64)),
        ("coalesce, 2 threads", lambda r: _fraction(r, "coalesce")),
        ("forward + backward", lambda r: _fraction(r, "autograd")),
    ]


def machines(results: Path):
    """(label, runs) for results/ and each machine folder in it, the oldest run first."""
    found = []
    for folder in [results] + sorted(p for p in results.iterdir() if p.is_dir()):
        runs = _load(folder)
        if not runs:
            continue
        first = next(iter(runs.values()))
        info = first.get("machine", {})
        caches = info.get("caches", {})
        label = info.get("processor", folder.name)
        if info.get("cpu_id"):  # (model numbers: from the twentieth session's runs on)
            label += f" ({info['cpu_id'].split(' stepping')[0]})"
        for level in ("L2", "L3"):  # (two Intel Xeons differ only in their L3)
            if caches.get(level):
                label += f", {level} {caches[level]}"
        label += f" ({first.get('date', '?')})"
        found.append((first.get("date", ""), label, runs))
    # by date (a folder's name says which CPU, not when: "amd-..." sorts before "intel-...")
    return [(label, runs) for _, label, runs in sorted(found, key=lambda f: f[0])]


def _table(header, body, widths):
    table = nodes.table()
    group = nodes.tgroup(cols=len(header))
    table += group
    for w in widths:
        group += nodes.colspec(colwidth=w)
    head = nodes.thead()
    group += head
    for cells in [header]:
        row = nodes.row()
        for text in cells:
            row += nodes.entry("", nodes.paragraph(text=text))
        head += row
    tbody = nodes.tbody()
    group += tbody
    for cells in body:
        row = nodes.row()
        for text in cells:
            row += nodes.entry("", nodes.paragraph(text=text))
        tbody += row
    return table


class SrTargets(SphinxDirective):
    has_content = False
    option_spec = {"bandwidth": lambda x: True, "levers": lambda x: True, "gathers": lambda x: True}

    def run(self):
        results = Path(self.env.srcdir).parent / "benchmarks" / "results"
        found = machines(results)
        for path in results.rglob("*.json"):
            self.env.note_dependency(str(path))
        if "levers" in self.options:
            return self._levers(results)
        header = ["target", "case", "goal"] + [label for label, _ in found]
        body = []
        if "bandwidth" in self.options:
            for label, figure in bandwidth_rows():
                cells = []
                for _, runs in found:
                    value = figure(runs)
                    cells.append("\u2014" if value is None else f"{value:.0%}")
                body.append(["fraction of copy bandwidth", label, ""] + cells)
            return [_table(header, body, [14, 22, 6] + [12] * len(found))]
        if "gathers" in self.options:  # only the machines whose runs timed the gathers alone
            timed = [(label, runs) for label, runs in found
                     if any(f(runs) is not None for _, f in gathers_rows())]
            for label, figure in gathers_rows():
                cells = []
                for _, runs in timed:
                    value = figure(runs)
                    cells.append("\u2014" if value is None else f"{value[0]:.2f} ({value[1]:.2f})")
                body.append(["SpMM / gathers alone (the target's)", label] + cells)
            return [_table(["", "case"] + [label for label, _ in timed], body, [14, 22] + [14] * len(timed))]
        for section, label, goal, lower, figure in targets():
            cells = []
            for _, runs in found:
                value = figure(runs)
                if value is None:
                    cells.append("\u2014")
                else:
                    ok = value <= goal if lower else value >= goal
                    cells.append(f"{value:.2f}x {HOLDS if ok else MISSES}")
            body.append([section, label, ("\u2264 " if lower else "\u2265 ") + f"{goal:g}x"] + cells)
        return [_table(header, body, [14, 22, 6] + [12] * len(found))]


    def _levers(self, results: Path):
        """One table per machine that ran benchmarks/bench_levers.py."""
        out = []
        for path in sorted(results.rglob("levers.json")):
            run = json.loads(path.read_text())
            info = run.get("machine", {})
            # a lever rerun alone (bench_levers.py --only) dates its rows; the others, the file
            dates = sorted({r.get("date", run.get("date", "?")) for r in run["results"]})
            title = f"{info.get('processor', path.parent.name)}, L2 {info.get('caches', {}).get('L2', '?')}, " \
                    f"SIMD {info.get('sparse_ref_simd', '?')} ({', '.join(dates)})"
            out.append(nodes.paragraph(text=title))
            body = [[r["lever"], r["case"], r["variant"] + (" (kept)" if r["kept"] else ""),
                     f"{r['median_ms']:.1f}", f"{r['speedup_vs_first']:.2f}x"]
                    + ([r.get("date", run.get("date", "?"))] if len(dates) > 1 else []) for r in run["results"]]
            out.append(_table(["lever", "case", "variant", "median ms", "speed-up vs the first"]
                              + (["run on"] if len(dates) > 1 else []), body,
                              [10, 20, 14, 8, 8] + ([8] if len(dates) > 1 else [])))
        return out


def setup(app):
    app.add_directive("sr-targets", SrTargets)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

"""Shared helpers for the benchmarks: timing, the machine description, result files.

Benchmarks are not tests: they never gate CI. Each script runs sparse_ref, SciPy and
torch side by side in one process, on the same data, and writes
``benchmarks/results/<name>.json`` (committed) plus a table on stdout.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

# SPARSE_REF_BENCH_RESULTS sends a run elsewhere (say, a baseline of an older commit)
RESULTS = Path(os.environ.get("SPARSE_REF_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")


def timeit(fn, repeat: int = 7, warmup: int = 1) -> dict:
    """Run ``fn`` ``warmup`` times untimed, then ``repeat`` times; times in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return {"min_ms": round(min(times), 3), "median_ms": round(statistics.median(times), 3), "repeat": repeat}


def machine() -> dict:
    import numpy

    import sparse_ref as sr

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "cores": os.cpu_count(),
        "numpy": numpy.__version__,
        "sparse_ref": sr.__version__,
        "sparse_ref_openmp": sr.openmp_enabled(),
    }
    for name in ("scipy", "torch"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = None
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def cpu_slug() -> str:
    """A folder name for this CPU model ("intel-r-xeon-r-processor-2-80ghz")."""
    import re

    return re.sub(r"[^a-z0-9]+", "-", _cpu_model().lower()).strip("-") or "unknown-cpu"


def save(name: str, payload: dict) -> Path:
    """Write ``results/<cpu>/<name>.json``: one folder per CPU model, so a run on one
    machine never overwrites another's. (The files directly in ``results/`` are the first
    runs, on an AMD EPYC, which the docs' plots read.)"""
    folder = RESULTS / cpu_slug()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    payload = {"benchmark": name, "date": time.strftime("%Y-%m-%d"), "machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    lines = [" | ".join(c.ljust(widths[c]) for c in columns)]
    lines.append("-+-".join("-" * widths[c] for c in columns))
    for r in rows:
        lines.append(" | ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns))
    return "\n".join(lines)

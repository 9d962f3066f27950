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


# Fast calls get more rounds than ``repeat``, up to MAX_ROUNDS, until the rounds take about
# ROUNDS_BUDGET_S: a median of 7 calls of 20 ms moves by 10-20 % between runs on a shared
# virtual machine, and every library's rounds grow alike.
ROUNDS_BUDGET_S = 1.5
MAX_ROUNDS = 31


def timeit_interleaved(fns: dict, repeat: int = 7, warmup: int = 1) -> dict:
    """Time several callables side by side: one call of each in turn, ``repeat`` rounds or
    more (see ROUNDS_BUDGET_S), so that a slow spell of a shared machine (another tenant,
    a frequency change) falls on every library alike instead of on whichever ran then.
    Each round starts one place further along (a, b, c; b, c, a; c, a, b; ...): the call
    that follows a long one of another library finds less of its data in the cache (on
    the Intel Xeon of 2026-12-01, 1.5 ms of 9 for SpMM right after SciPy's), and in a
    fixed order that would always be the same library.
    {name: stats as ``timeit``}."""
    t0 = time.perf_counter()
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    per_round = (time.perf_counter() - t0) / max(warmup, 1)
    if per_round > 0:
        repeat = max(repeat, min(MAX_ROUNDS, int(ROUNDS_BUDGET_S / per_round)))
    times = {name: [] for name in fns}
    order = list(fns.items())
    for r in range(repeat):
        for name, fn in order[r % len(order):] + order[:r % len(order)]:
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: {"min_ms": round(min(t), 3), "median_ms": round(statistics.median(t), 3), "repeat": repeat}
            for name, t in times.items()}


def per_call(fns: dict, calls: int = 1000, repeat: int = 31) -> dict:
    """Time calls of microseconds: each sample is a loop of ``calls`` calls (so the timer's
    own cost and resolution vanish), and the libraries' loops alternate, ``repeat`` rounds.
    {name: stats as ``timeit``, in ms per call (6 decimals)}."""
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - t0) * 1e3 / calls)
    return {name: {"min_ms": round(min(t), 6), "median_ms": round(statistics.median(t), 6), "repeat": repeat,
                   "calls_per_sample": calls}
            for name, t in times.items()}


_BANDWIDTH = None


def machine() -> dict:
    import numpy

    import sparse_ref as sr

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "cpu_id": _cpu_id(),
        "cores": os.cpu_count(),
        "caches": caches(),
        "bandwidth_gb_s": bandwidth(),
        "numpy": numpy.__version__,
        "sparse_ref": sr.__version__,
        "sparse_ref_openmp": sr.openmp_enabled(),
        "sparse_ref_simd": _simd_level(),
    }
    for name in ("scipy", "torch"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = None
    return info


def _simd_level() -> str | None:
    """The vectors SpMM's float rows use on this CPU (avx512, avx2 or baseline)."""
    try:
        from sparse_ref._kernels import spmm
    except ImportError:
        return None
    return spmm._simd_level()


def caches() -> dict:
    """The data caches of CPU 0 (Linux sysfs): {"L1d": "32K", "L2": "1024K", "L3": ...}."""
    out = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            kind = (index / "type").read_text().strip()
            if kind == "Instruction":
                continue
            level = (index / "level").read_text().strip()
            out[f"L{level}{'d' if kind == 'Data' else ''}"] = (index / "size").read_text().strip()
        except OSError:
            continue
    return out


def bandwidth() -> dict:
    """Memory bandwidth measured once per run (GB/s): a copy of 256 MiB (read + write
    counted), with 1 thread and with 2 threads each copying half; the best of 5. The
    ceiling a memory-bound kernel's figure is set against."""
    global _BANDWIDTH
    if _BANDWIDTH is not None:
        return _BANDWIDTH
    import threading

    import numpy as np

    n = 32 * 1024 * 1024  # 256 MiB of float64
    src, dst = np.ones(n), np.empty(n)
    np.copyto(dst, src)  # first touch

    def copy(lo, hi):
        np.copyto(dst[lo:hi], src[lo:hi])

    result = {}
    for threads in (1, 2):
        best = float("inf")
        for _ in range(5):
            parts = [threading.Thread(target=copy, args=(t * n // threads, (t + 1) * n // threads))
                     for t in range(threads)]
            t0 = time.perf_counter()
            for p in parts:
                p.start()
            for p in parts:
                p.join()
            best = min(best, time.perf_counter() - t0)
        result[f"copy_{threads}_thread{'s' if threads > 1 else ''}"] = round(2 * 8 * n / best / 1e9, 2)
    _BANDWIDTH = result
    return result


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _cpu_id() -> str | None:
    """"family F model M stepping S" from /proc/cpuinfo: the model names of these virtual
    machines ("Intel(R) Xeon(R) Processor") do not say which chip it is."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("cpu family", "model", "stepping") and key not in fields:
                fields[key] = value.strip()
            if not line.strip() and fields:
                break
    except OSError:
        return None
    if len(fields) < 3:
        return None
    return f"family {fields['cpu family']} model {fields['model']} stepping {fields['stepping']}"


def cpu_slug() -> str:
    """A folder name for this CPU: its model and, since one model name covers several
    chips (an "Intel Xeon Processor @ 2.80GHz" came with 1.25 MiB and with 4 MiB of L2),
    its L2 and L3 sizes ("intel-r-xeon-r-processor-2-80ghz-l2-1280k-l3-49152k")."""
    import re

    c = caches()
    sizes = "".join(f"-{level.lower()}-{c[level].lower()}" for level in ("L2", "L3") if level in c)
    return re.sub(r"[^a-z0-9]+", "-", (_cpu_model() + sizes).lower()).strip("-") or "unknown-cpu"


def save(name: str, payload: dict) -> Path:
    """Write ``results/<cpu>/<name>.json``: one folder per CPU model, so a run on one
    machine never overwrites another's. (The files directly in ``results/`` are the first
    runs, on an AMD EPYC on 2026-11-26.)"""
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

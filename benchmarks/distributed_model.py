"""The communication model of ``sparse_ref.distributed`` (docs: "Beyond one machine").

For each op: the bytes one worker receives (``worker_in``) and sends (``worker_out``), the
bytes the calling process receives and sends (``client_in``, ``client_out``; through the
scheduler, which relays what travels inside tasks), and the number of Dask tasks. Notation: A is m x k with z stored entries, cut into P parts, one per machine; a
value takes s bytes, an index 8; dense operands have n columns. ``distinct(x, N)`` is
the expected number of distinct rows among x entries spread uniformly over N rows (the
rows a part needs of another operand); a banded matrix needs far fewer.

The predicted time of an op on P machines is

    max(bytes in or out of one link) / bandwidth  +  one machine's time / P  +  tasks * t_task

(links full duplex, the network not the bottleneck between pairs, a part's work split
perfectly). Deliberately simple: it says which term grows with P, not the last 20 %.

    python benchmarks/distributed_model.py
"""

import math

GBIT = 1e9 / 8  # bytes per second of one Gbit/s


def distinct(x: float, n: float) -> float:
    return n * -math.expm1(-x / n) if n else 0.0


def spmm(m, k, n, z, P, s=8):
    """``srd.mm(A, B)``, B dense k x n: B to every worker once, C's rows back."""
    return {"worker_in": k * n * s, "worker_out": m / P * n * s,
            "client_in": m * n * s, "client_out": k * n * s, "tasks": P + 1}


def spmm_backward(m, k, n, z, P, s=8):
    """Both gradients of ``srd.mm(A, B)``: G's row block to each part (grad_A: SDDMM); A's
    transpose (a shuffle, made once and kept), the rows of G each part of it needs, and
    grad_B's rows back (grad_B = A^H G)."""
    moved = (P - 1) / P
    shuffle = z / P * (16 + s) * moved
    g_rows = distinct(z / P, m) * (n * s + 8) * moved
    return {"worker_in": m / P * n * s + shuffle + g_rows,
            "worker_out": k / P * n * s + shuffle + g_rows,
            "client_in": k * n * s, "client_out": m * n * s, "tasks": 3 * P * P + 7 * P}


def spgemm(m, k, n, z, P, s=8, z_b=None):
    """``srd.mm(A, B)``, B sparse k x n with z_b entries cut as rows: each part of A asks for
    the rows of B its columns name and receives them (the product stays on the workers)."""
    z_b = z if z_b is None else z_b
    rows = distinct(z / P, k) * (P - 1) / P
    per_row = 8 + z_b / k * (8 + s)
    return {"worker_in": rows * (8 + per_row), "worker_out": rows * (8 + per_row),
            "client_in": 0, "client_out": 0, "tasks": 2 * P * P + 4 * P}


def sddmm(m, k, n, z, P, s=8):
    """``srd.sampled_addmm(S, X, Y)``, S m x n with z entries, X m x k, Y k x n: X's row
    block to each part, Y to every worker once (the result stays on the workers)."""
    return {"worker_in": m / P * k * s + k * n * s, "worker_out": 0,
            "client_in": 0, "client_out": (m + n) * k * s, "tasks": 2 * P + 1}


def predict(op, one_machine_s, P, bandwidth=10 * GBIT, t_task=0.5e-3, **size):
    """Seconds for ``op`` on P machines, and the three terms."""
    c = op(P=P, **size)
    net = max(c["worker_in"], c["worker_out"], c["client_in"], c["client_out"]) / bandwidth
    return {"network": net, "compute": one_machine_s / P, "tasks": c["tasks"] * t_task,
            "total": net + one_machine_s / P + c["tasks"] * t_task}


# A uniform matrix 100 times the benchmark's (m = k = 2e7, 10 entries per row, float64),
# B with n = 16 columns. One machine's times are 100 times the local runs of the benchmark
# on 2 cores of the Intel Xeon, when it had them to itself (results/<cpu>/products.json
# and autograd.json at m = 2e5: SpMM 35 ms, its backward about 135 ms, SpGEMM A @ A 0.91 s).
SIZE = {"m": 2e7, "k": 2e7, "n": 16, "z": 2e8}
ONE_MACHINE = {spmm: 3.5, spmm_backward: 13.5, spgemm: 91.0}


def table(machines=(8, 64, 512), bandwidth=10 * GBIT) -> str:
    lines = [f"{'op':<14} {'P':>4} {'network s':>10} {'compute s':>10} {'tasks s':>8} {'total s':>8}"]
    for op, one in ONE_MACHINE.items():
        for P in machines:
            t = predict(op, one, P, bandwidth, **SIZE)
            lines.append(f"{op.__name__:<14} {P:>4} {t['network']:>10.2f} {t['compute']:>10.2f} "
                         f"{t['tasks']:>8.2f} {t['total']:>8.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())

"""``python -m sparse_ref demo``: the torch doc example, run through both kernel paths."""

import argparse
import sys

import numpy as np

import sparse_ref as sr


def _same(x: sr.SparseTensor, y: sr.SparseTensor) -> bool:
    return (
        x.shape == y.shape
        and np.array_equal(x._indices().numpy(), y._indices().numpy())
        and x._values().numpy().tobytes() == y._values().numpy().tobytes()
    )


def demo(out=sys.stdout) -> int:
    """Run the demo; return 0 when both paths agree bit for bit, 1 otherwise."""
    say = lambda *a: print(*a, file=out)  # noqa: E731
    say(f"sparse_ref {sr.__version__}: OpenMP {'on' if sr.openmp_enabled() else 'off'}, "
        f"{sr.get_num_threads()} thread(s)\n")

    say("# The torch.sparse.mm doc example, with sr in place of torch:")
    say(">>> a = sr.randn(2, 3).to_sparse().requires_grad_(True)")
    sr.manual_seed(0)
    a = sr.randn(2, 3).to_sparse().requires_grad_(True)
    say(a)
    say(f"a.is_coalesced() = {a.is_coalesced()}\n")

    say("# An uncoalesced tensor: rows out of order, duplicates, an explicit zero.")
    say("# (0, 1) is stored three times: 1e16 + 1 - 1e16 summed in storage order is 0.0;")
    say("# (1, 2) cancels exactly; both stay as stored zeros, like torch's.")
    s = sr.sparse_coo_tensor(
        [[0, 1, 0, 1, 0, 1], [1, 2, 1, 0, 1, 2]],
        [1e16, 3.0, 1.0, 0.0, -1e16, -3.0],
        (2, 3),
        dtype=sr.float64,
    )
    say(s)
    results = {}
    for backend in ("reference", "cython"):
        with sr.use_backend(backend):
            results[backend] = s.coalesce()
        say(f"\ncoalesce() on the {backend} path:")
        say(results[backend])
    agree = _same(results["reference"], results["cython"])
    say(f"\nreference and cython agree bit for bit: {agree}")
    try:
        import torch
    except ImportError:
        say("(torch is not installed: skipping the comparison with torch)")
    else:
        t = sr.to_torch(s).coalesce()
        matches = _same(sr.from_torch(t), results["cython"])
        say(f"torch {torch.__version__} .coalesce() gives the same indices and values: {matches}")
        agree = agree and matches
    return 0 if agree else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparse_ref", description=__doc__)
    parser.add_argument("command", choices=["demo"], help="what to run")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo()
    return 2


if __name__ == "__main__":
    sys.exit(main())

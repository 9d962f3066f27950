"""``python -m sparse_ref demo``: the torch doc example, run through both kernel paths;
``python -m sparse_ref check PACKAGE``: a package of kernels against the reference;
``python -m sparse_ref exercise NAME DIR``: the starter package of an exercise."""

import argparse
import sys
from pathlib import Path

import numpy as np

import sparse_ref as sr
from sparse_ref import course


def _bits(t) -> bytes:
    if isinstance(t, sr.SparseTensor):
        return t._indices().numpy().tobytes() + t._values().numpy().tobytes()
    return t.detach().numpy().tobytes()


def _doc_example(backend: str, a0: sr.SparseTensor, b0: sr.Tensor):
    """The example as the torch docs write it, with sr in place of torch."""
    with sr.use_backend(backend):
        a = a0.detach().requires_grad_(True)
        b = b0.detach().requires_grad_(True)
        y = sr.sparse.mm(a, b)
        y.sum().backward()
    return y, a.grad, b.grad


def demo(out=sys.stdout) -> int:
    """Run the demo; return 0 when both paths agree bit for bit (and torch, if installed,
    agrees to rounding), 1 otherwise."""
    say = lambda *a: print(*a, file=out)  # noqa: E731
    say(f"sparse_ref {sr.__version__}: OpenMP {'on' if sr.openmp_enabled() else 'off'}, "
        f"{sr.get_num_threads()} thread(s)\n")
    ok = True

    say("# The torch.sparse.mm doc example, with sr in place of torch:")
    say(">>> a = sr.randn(2, 3).to_sparse().requires_grad_(True)")
    say(">>> b = sr.randn(3, 2, requires_grad=True)")
    say(">>> y = sr.sparse.mm(a, b)")
    say(">>> y.sum().backward()")
    sr.manual_seed(0)
    a = sr.randn(2, 3).to_sparse().requires_grad_(True)
    b = sr.randn(3, 2, requires_grad=True)
    results = {backend: _doc_example(backend, a, b) for backend in ("reference", "cython")}
    y, a_grad, b_grad = results["cython"]
    say(f"\na =\n{a}\n\ny = sr.sparse.mm(a, b) =\n{y}\n\na.grad (coalesced: {a_grad.is_coalesced()}) =\n{a_grad}")
    say(f"\nb.grad =\n{b_grad}")
    say("\nThe rule: a.grad[i, j] = sum_n b[j, n] at every stored (i, j) (masked to a's pattern),")
    say("          b.grad[j, n] = sum_i a[i, j].")
    agree = all(_bits(x) == _bits(z) for x, z in zip(results["reference"], results["cython"]))
    say(f"\nforward and backward, reference and cython paths agree bit for bit: {agree}")
    ok &= agree

    say("\n# Coalescing: an uncoalesced tensor with rows out of order, duplicates, an explicit zero.")
    say("# (0, 1) is stored three times: 1e16 + 1 - 1e16 summed in storage order is 0.0;")
    say("# (1, 2) cancels exactly; both stay as stored zeros, like torch's.")
    s = sr.sparse_coo_tensor(
        [[0, 1, 0, 1, 0, 1], [1, 2, 1, 0, 1, 2]],
        [1e16, 3.0, 1.0, 0.0, -1e16, -3.0],
        (2, 3),
        dtype=sr.float64,
    )
    coalesced = {}
    for backend in ("reference", "cython"):
        with sr.use_backend(backend):
            coalesced[backend] = s.coalesce()
    say(coalesced["cython"])
    agree = _bits(coalesced["reference"]) == _bits(coalesced["cython"])
    say(f"coalesce(): reference and cython agree bit for bit: {agree}")
    ok &= agree

    try:
        import torch
    except ImportError:
        say("\n(torch is not installed: skipping the comparison with torch)")
        return 0 if ok else 1
    ta = sr.to_torch(a.detach()).requires_grad_(True)
    tb = sr.to_torch(b.detach()).requires_grad_(True)
    ty = torch.sparse.mm(ta, tb)
    ty.sum().backward()
    close = (np.allclose(ty.detach().numpy(), y.detach().numpy(), rtol=1e-6, atol=1e-6)
             and np.allclose(ta.grad.coalesce().values().numpy(), a_grad.values().numpy(), rtol=1e-6)
             and ta.grad.coalesce().indices().tolist() == a_grad.indices().tolist()
             and np.allclose(tb.grad.numpy(), b_grad.numpy(), rtol=1e-6))
    say(f"\ntorch {torch.__version__}: y, a.grad (same indices) and b.grad agree to float32 rounding: {close}")
    same = sr.from_torch(sr.to_torch(s).coalesce())
    matches = _bits(same) == _bits(coalesced["cython"])
    say(f"torch .coalesce() gives the same indices and values bit for bit: {matches}")
    ok &= close and matches
    return 0 if ok else 1


def _import_target(target: str) -> str:
    """The import name of PACKAGE: a folder (its parent goes on sys.path, so it imports
    even under ``python -P``) or an importable name."""
    path = Path(target)
    if path.is_dir():
        path = path.resolve()
        known = sys.modules.get(path.name)
        where = getattr(known, "__file__", None) or ""
        if known is not None and not Path(where).resolve().is_relative_to(path):
            raise ImportError(f"a module named {path.name!r} is already imported ({where or 'built in'}), so the "
                              f"folder {path} cannot be imported under that name: rename the folder")
        sys.path.insert(0, str(path.parent))
        return path.name
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparse_ref",
                                     description="sparse_ref's demo, checker and exercises.")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("demo", help="the torch.sparse.mm doc example through both kernel paths")
    check = commands.add_parser("check", help="check a package of kernels against the reference")
    check.add_argument("package", help="the package: a folder (my_kernels) or an import name")
    check.add_argument("--kernel", action="append", metavar="NAME",
                       help="only this kernel module or function (spmm, spmm.spmm_reduce, a task); repeatable")
    check.add_argument("--allow-reordering", action="store_true",
                       help="accept results equal to rounding only (another order of additions), and say so")
    check.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                       help="the most a kernel module's checks may take (each runs in a process of its own)")
    exercise = commands.add_parser("exercise", help="write the starter package of an exercise")
    exercise.add_argument("name", choices=sorted(course.exercises.EXERCISES))
    exercise.add_argument("directory", help="a new folder, named like a Python identifier")
    args = parser.parse_args(argv)
    if args.command is None:  # (argparse's own message is one line that names no command)
        parser.print_help()
        print("\nstart with: python -m sparse_ref demo")
        return 2
    if args.command == "demo":
        return demo()
    if args.command == "exercise":
        try:
            path = course.exercises.write_starter(args.name, args.directory)
        except (ValueError, OSError) as exc:
            print(f"exercise: {exc}", file=sys.stderr)
            return 2
        goal = course.exercises.EXERCISES[args.name][0]
        print(f"wrote {path}/ -- {goal}\nfill in the functions that raise NotImplementedError, then run:\n"
              f"    python -m sparse_ref check {path}")
        return 0
    try:
        results = course.check.check_apart(_import_target(args.package), args.kernel, args.allow_reordering,
                                           args.timeout)
    except (ImportError, ValueError) as exc:  # a package that does not import or breaks the interface; a bad name
        print(f"check: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # exit() at import time, or in code the checker ran outside a case
        print(f"check: the package called exit({exc.code!r}) while it was being checked", file=sys.stderr)
        return 2
    print("\n" + course.check.report(results).splitlines()[-1])  # (each result was said as it came)
    return 0 if results and all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

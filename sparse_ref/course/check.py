"""The checker: a package of kernels against the reference, kernel by kernel.

``python -m sparse_ref check PACKAGE [--kernel NAME]`` registers the package as a backend
and, for every kernel function it implements (see ``sparse_ref._backend.INTERFACE``):

1. runs it and the reference on the same small inputs -- random ones, and the edge cases
   a kernel gets wrong first: an empty matrix, empty rows, duplicates, explicit zeros,
   -0.0, NaN, one long row -- and compares every output **bit for bit** (the contract
   fixes the order of additions, so the bits are fixed too; ``allow_reordering`` accepts a
   difference of rounding only, and the report says so);
2. runs ``gradcheck`` on every op that uses the kernel, on this backend.

The report gives, per kernel function, PASS or the first failing case as a snippet that
reproduces it (the inputs, what the reference gives, what the package gives) and the
contract line that was broken. A function the package lacks is reported as taken from
the reference, not as passed; an optional one it lacks (``_backend.OPTIONAL``) as left
out, since the ops then run on its other kernels.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from dataclasses import dataclass, field

import numpy as np

from sparse_ref import _backend, _dtypes, reference
# calls() runs reference.coalesce, .convert and .spgemm to make its inputs, whichever
# kernels are checked: import them here (``--kernel convert`` alone once found them missing)
from sparse_ref.reference import coalesce as _coalesce, convert as _convert, spgemm as _spgemm  # noqa: F401
from sparse_ref._backend import INTERFACE, OPTIONAL, use_backend
from sparse_ref._factories import sparse_coo_tensor, tensor
from sparse_ref._threads import effective_n_threads
from sparse_ref._functions import mm
from sparse_ref.autograd.gradcheck import gradcheck
from sparse_ref.course import exercises
from sparse_ref.sparse import sampled_addmm

I64 = np.int64


# -- the inputs ---------------------------------------------------------------------------

def coo_cases():
    """``(name, (nrows, ncols), row, col, val)``: small COO matrices, the edge cases first."""
    rng = np.random.default_rng(20261130)
    f = np.float64
    yield "empty matrix (nnz = 0)", (3, 4), np.zeros(0, I64), np.zeros(0, I64), np.zeros(0, f)
    yield ("empty rows", (5, 3), np.array([1, 3, 3], I64), np.array([2, 0, 1], I64),
           np.array([1.5, -2.0, 0.25]))
    yield ("duplicates in storage order", (2, 3), np.array([1, 0, 1, 1, 0], I64), np.array([2, 1, 2, 0, 1], I64),
           np.array([0.1, 1e16, 0.2, 3.0, -1e16]))
    yield ("explicit zeros and -0.0", (3, 3), np.array([0, 0, 2, 2, 1], I64), np.array([1, 1, 0, 2, 1], I64),
           np.array([-0.0, -0.0, 0.0, -0.0, 0.0]))
    yield ("NaN and inf", (2, 2), np.array([0, 1, 1, 0], I64), np.array([0, 1, 1, 1], I64),
           np.array([np.nan, np.inf, 1.0, -np.inf]))
    yield "one long row", (2, 40), np.zeros(60, I64), rng.integers(0, 40, 60), rng.standard_normal(60)
    for k in range(3):
        shape = (int(rng.integers(1, 9)), int(rng.integers(1, 9)))
        nnz = int(rng.integers(0, 3 * shape[0] * shape[1] // 2 + 1))
        val = rng.standard_normal(nnz) * 10.0 ** rng.integers(-3, 4, nnz)
        yield (f"random {shape[0]}x{shape[1]}, {nnz} stored (seed {k})", shape, rng.integers(0, shape[0], nnz),
               rng.integers(0, shape[1], nnz), val)


def _csr(shape, row, col, val):
    """The coalesced CSR arrays of a COO matrix, made by the reference (the model)."""
    nrows, nnz = shape[0], row.shape[0]
    crow, out_col, out_val = np.empty(nrows + 1, I64), np.empty(nnz, I64), np.empty(nnz, val.dtype)
    reference.coalesce.coalesce(row, col, val, nrows, crow, out_col, out_val, np.empty(0, I64))
    m = int(crow[-1])
    return crow, out_col[:m].copy(), out_val[:m].copy()


def _transpose(shape, crow, col, val):
    row = np.empty(col.shape[0], I64)
    reference.convert.csr_to_coo(crow, row)
    return _csr((shape[1], shape[0]), col, row, val)


def calls(module: str, function: str):
    """``(case name, kwargs)`` for every call of ``module.function`` the checker makes; the
    outputs are preallocated and filled with a marker, so an output a kernel forgets to
    write shows up."""
    rng = np.random.default_rng(7)
    if module == "convert" and function in ("round_to_float16", "round_to_bfloat16"):
        # values, not matrices: the rounding's edge cases, then every case's values as float32
        yield ("ties, subnormals, overflow, inf, NaN payloads, -0.0",
               dict(a_bits=ROUNDING_EDGES, out_bits=_marker(ROUNDING_EDGES.shape[0], np.uint16)))
        for case, _, _, _, val in coo_cases():
            bits = np.ascontiguousarray(val.astype(np.float32).view(np.uint32))
            yield case, dict(a_bits=bits, out_bits=_marker(bits.shape[0], np.uint16))
        return
    for case, shape, row, col, val in coo_cases():
        nrows, ncols = shape
        nnz = row.shape[0]
        crow, ccol, cval = _csr(shape, row, col, val)
        m = ccol.shape[0]
        if (module, function) == ("coalesce", "coalesce"):
            for pos in (nnz, 0):
                yield (f"{case}, out_pos of length {pos}",
                       dict(a_row=row, a_col=col, a_val=val, nrows=nrows, out_crow=_marker(nrows + 1, I64),
                            out_col=_marker(nnz, I64), out_val=_marker(nnz, val.dtype), out_pos=_marker(pos, I64)))
        elif (module, function) == ("convert", "coo_to_csr"):
            coo_row = np.repeat(np.arange(nrows, dtype=I64), np.diff(crow))
            yield case, dict(a_row=coo_row, nrows=nrows, out_crow=_marker(nrows + 1, I64))
        elif (module, function) == ("convert", "csr_to_coo"):
            yield case, dict(a_crow=crow, out_row=_marker(m, I64))
        elif (module, function) == ("convert", "csr_transpose"):
            yield case, dict(a_crow=crow, a_col=ccol, ncols=ncols, out_crow=_marker(ncols + 1, I64),
                             out_col=_marker(m, I64), out_perm=_marker(m, I64))
        elif (module, function) == ("spmm", "spmm"):
            for k in (1, 3, 9):
                b = _dense(rng, (ncols, k), case)
                yield f"{case}, B with {k} columns", dict(a_crow=crow, a_col=ccol, a_val=cval, b=b,
                                                          out=_marker((nrows, k), val.dtype))
        elif (module, function) == ("spmm", "spmm_reduce"):
            b = _dense(rng, (ncols, 3), case)
            for reduce in ("sum", "mean", "amax", "amin"):
                arg = (nrows, 3) if reduce in ("amax", "amin") else (0, 0)
                yield f"{case}, reduce={reduce!r}", dict(a_crow=crow, a_col=ccol, a_val=cval, b=b, reduce=reduce,
                                                         out=_marker((nrows, 3), val.dtype), out_arg=_marker(arg, I64))
        elif module == "spgemm":
            t_crow, t_col, t_val = _transpose(shape, crow, ccol, cval)  # B = A^T: C = A @ A^T
            if function == "spgemm_bounds":
                yield case, dict(a_crow=crow, a_col=ccol, b_crow=t_crow, out_flops=_marker(nrows, I64),
                                 out_longest=_marker(nrows, I64))
                continue
            c_crow = np.empty(nrows + 1, I64)
            reference.spgemm.spgemm_symbolic(crow, ccol, t_crow, t_col, nrows, c_crow)
            if function == "spgemm_symbolic":
                yield case, dict(a_crow=crow, a_col=ccol, b_crow=t_crow, b_col=t_col, ncols=nrows,
                                 out_crow=_marker(nrows + 1, I64))
            elif function == "spgemm_numeric":
                yield case, dict(a_crow=crow, a_col=ccol, a_val=cval, b_crow=t_crow, b_col=t_col, b_val=t_val,
                                 ncols=nrows, crow=c_crow, out_col=_marker(int(c_crow[-1]), I64),
                                 out_val=_marker(int(c_crow[-1]), val.dtype))
            elif function == "spgemm_onepass":
                flops = np.empty(nrows, I64)
                reference.spgemm.spgemm_bounds(crow, ccol, t_crow, flops, np.empty(nrows, I64))
                bound = np.concatenate([[0], np.cumsum(flops)]).astype(I64)
                yield case, dict(a_crow=crow, a_col=ccol, a_val=cval, b_crow=t_crow, b_col=t_col, b_val=t_val,
                                 ncols=nrows, bound=bound, out_crow=_marker(nrows + 1, I64),
                                 out_col=_marker(int(bound[-1]), I64), out_val=_marker(int(bound[-1]), val.dtype))
            elif function == "spgemm_masked":
                p_row, p_col = rng.integers(0, nrows, 6), rng.integers(0, nrows, 6)
                yield case, dict(p_row=p_row, p_col=p_col, x_crow=crow, x_col=ccol, x_val=cval, y_crow=crow,
                                 y_col=ccol, y_val=cval, out=_marker(6, val.dtype))
        elif (module, function) == ("sddmm", "sddmm"):
            for n in (1, 5, 19):
                x, y = _dense(rng, (nrows, n), case), _dense(rng, (ncols, n), case)
                p_row, p_col = np.repeat(np.arange(nrows, dtype=I64), np.diff(crow)), ccol
                yield f"{case}, {n} columns", dict(p_row=p_row, p_col=p_col, x=x, y=y, out=_marker(m, val.dtype))


def _marker(shape, dtype):
    """An output array filled with a value no kernel computes here."""
    kind = np.dtype(dtype).kind
    return np.full(shape, -7777 if kind == "i" else 0x7777 if kind == "u" else 7.777e77, dtype=dtype)


# float32 bit patterns where a rounding to float16 or bfloat16 goes wrong first: exact ties
# (even and odd kept part) and their neighbours, float16's largest finite value and the
# tie above it (65520, which becomes inf), the subnormal range and the smallest values,
# float32 subnormals, inf, NaN with payloads (quiet and signalling), both zeros.
ROUNDING_EDGES = np.array(
    [0x00000000, 0x80000000, 0x3F800000, 0x3F801000, 0x3F803000, 0x3F800FFF, 0x3F801001,
     0x3F808000, 0x3F818000, 0x3F807FFF, 0x3F808001, 0x477FE000, 0x477FEFFF, 0x477FF000,
     0x477FFFFF, 0x47800000, 0x7F7FFFFF, 0x7F7F7FFF, 0x7F7F8000, 0x38800000, 0x387FFFFF,
     0x387FE000, 0x33800000, 0x33000000, 0x33000001, 0x32FFFFFF, 0x33C00000, 0x00000001,
     0x00400000, 0x007FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00001, 0x7F800001,
     0x7FA00000, 0x7FFFFFFF, 0xC7800000, 0xB8800000], dtype=np.uint32)


def _dense(rng, shape, case: str):
    b = rng.standard_normal(shape) * 10.0 ** rng.integers(-2, 3, shape)
    if "NaN" in case and b.size:
        b.flat[0] = np.nan
    return b


# -- comparing ------------------------------------------------------------------------------

@dataclass
class Result:
    """What the checker found for one kernel function."""

    kernel: str
    status: str  # "pass", "rounding", "fail", "fallback", "optional", "error"
    cases: int = 0
    detail: str = ""
    snippet: str = ""
    contract: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("pass", "rounding", "fallback", "optional")

    def __str__(self) -> str:
        cases = f"{self.cases} case{'s' if self.cases != 1 else ''}"
        passed = (f"gradcheck of {self.cases} op{'s' if self.cases != 1 else ''} on these kernels"
                  if self.kernel.endswith("(gradients)") else
                  f"{cases}, to rounding" if self.kernel.startswith("tasks.") and self.kernel != "tasks.chunked_sum"
                  else f"{cases}, bit for bit")
        head = {"pass": f"PASS  {self.kernel}: {passed}",
                "rounding": f"PASS  {self.kernel}: {cases}, equal to rounding only -- {self.detail}",
                "fallback": f"REF   {self.kernel}: not in the package; the reference ran in its place",
                "optional": f"SKIP  {self.kernel}: not in the package, and optional (the ops take "
                            "another way, on the package's own kernels)",
                "fail": f"FAIL  {self.kernel}: {self.detail}",
                "error": f"ERROR {self.kernel}: {self.detail}"}[self.status]
        parts = [head]
        if self.contract:
            parts.append("  the contract says:\n" + "\n".join("    " + line for line in self.contract))
        if self.snippet:
            parts.append("  to reproduce:\n" + "\n".join("    " + line for line in self.snippet.splitlines()))
        return "\n".join(parts)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _used(name: str, arrays: dict, out: np.ndarray, function: str) -> np.ndarray:
    """The part of an output the contract defines (coalesce and spgemm_onepass: the first
    nnz of C)."""
    if function in ("coalesce", "spgemm_onepass") and name in ("out_col", "out_val"):
        return out[: max(int(arrays["out_crow"][-1]), 0)] if arrays["out_crow"].size else out[:0]
    return out


ROUNDING_ONLY = "differs in the last bits only: the order of additions is not the contract's"


def compare_case(module: str, function: str, kwargs: dict, theirs):
    """Run the reference and the package's function once on copies of ``kwargs``: ``None``
    if every output has the reference's bits, else ``(output name, how, got, want)`` of the
    first real difference, or, when every difference is one of rounding only, of the first
    of those (``how`` is then :data:`ROUNDING_ONLY`)."""
    ref_args = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    our_args = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    getattr(importlib.import_module(f"sparse_ref.reference.{module}"), function)(**ref_args, n_threads=1)
    theirs(**our_args, n_threads=effective_n_threads(2))  # (the thread policy: 1 in a forked child)
    rounding = None
    for name in kwargs:
        if not (name.startswith("out_") or name == "out"):
            if isinstance(kwargs[name], np.ndarray) and not _same_bits(our_args[name], kwargs[name]):
                return name, "was changed, and it is an input (kernels never write their inputs)", \
                    our_args[name], kwargs[name]
            continue
        want = _used(name, ref_args, ref_args[name], function)
        got = _used(name, our_args, our_args[name], function)
        if _same_bits(got, want):
            continue
        if got.shape == want.shape and _dtypes.kind(got.dtype) in "fc" and np.allclose(got, want, rtol=1e-12, atol=0,
                                                                              equal_nan=True):
            rounding = rounding or (name, ROUNDING_ONLY, got, want)
            continue
        return name, "differs", got, want
    return rounding


def _contract_lines(module: str, function: str, output: str) -> list:
    """The lines of the contract docstring that define ``output``."""
    doc = inspect.getdoc(getattr(importlib.import_module(f"sparse_ref.reference.{module}"), function)) or ""
    lines = doc.splitlines()
    for k, line in enumerate(lines):
        names = line.split(" : ")[0].split(", ") if " : " in line and not line.startswith(" ") else []
        if output in names:
            block = [line]
            for nxt in lines[k + 1:]:
                if not nxt.startswith("    "):
                    break
                block.append(nxt)
            return block
    return []


def _snippet(package: str, module: str, function: str, kwargs: dict, output: str, got, want) -> str:
    lines = ["import numpy as np", f"from {package} import {module} as mine",
             f"from sparse_ref.reference import {module} as ref", "args = dict("]
    for k, v in kwargs.items():
        if isinstance(v, np.ndarray):
            lines.append(f"    {k}=np.array({np.array2string(v, separator=', ', threshold=10**6, floatmode='unique')}, "
                         f"dtype=np.{v.dtype.name}),")
        else:
            lines.append(f"    {k}={v!r},")
    lines += [")", "ours = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in args.items()}",
              f"ref.{function}(**args)", f"mine.{function}(**ours)",
              f"print('reference:', args[{output!r}])", f"print('yours:    ', ours[{output!r}])",
              f"# reference gives {np.array2string(np.asarray(want), separator=', ', floatmode='unique')}",
              f"# yours gives     {np.array2string(np.asarray(got), separator=', ', floatmode='unique')}"]
    return "\n".join(lines)


# -- gradients through the kernel --------------------------------------------------------------

def _gradient_checks(module: str):
    """``(name, fn, inputs)``: ops whose forward or backward runs a kernel of ``module``."""
    rng = np.random.default_rng(3)
    idx = np.array([[0, 2, 2, 1, 0], [1, 0, 2, 1, 1]])

    def coo(values):
        return sparse_coo_tensor(idx, values, (3, 3)).coalesce()

    def leaf(shape):
        return tensor(rng.standard_normal(shape), requires_grad=True)

    a = sparse_coo_tensor(idx, rng.standard_normal(5), (3, 3), requires_grad=True)
    checks = {
        "coalesce": [("coalesce()", lambda v: sparse_coo_tensor(idx, v, (3, 3)).coalesce(), (leaf(5),))],
        "convert": [("to_sparse_csr()", lambda x: x.to_sparse_csr(), (a,)),
                    ("t() then mm", lambda x, b: mm(x.t(), b), (a, leaf((3, 2))))],
        "spmm": [("sparse.mm(sparse, dense)", lambda x, b: mm(x, b), (a, leaf((3, 4))))],
        "sddmm": [("sampled_addmm", lambda x, y: sampled_addmm(coo(np.ones(5)), x, y), (leaf((3, 4)), leaf((4, 3))))],
        "spgemm": [("sparse.mm(sparse, sparse)", lambda x: mm(x, x.t()), (a,))],
    }
    return checks[module]


def _check_tasks(package: str, kernels) -> list:
    """The exercises that are not kernels (``tasks.py``): each against its model solution,
    to rounding; ``chunked_sum`` bit for bit across chunk counts."""
    try:
        module = importlib.import_module(f"{package}.tasks")
    except ModuleNotFoundError as exc:
        if exc.name != f"{package}.tasks":
            raise
        return []
    results = []
    for task, model in exercises.TASKS.items():
        theirs = getattr(module, task, None)
        if theirs is None or (kernels and task not in kernels):
            continue
        results.append(_check_task(package, task, model, theirs))
    return results


def _check_task(package, task, model, theirs) -> Result:
    count = 0
    for case, kwargs in exercises.task_cases(task):
        count += 1
        try:
            got = theirs(**{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()})
        except NotImplementedError as exc:
            return Result(f"tasks.{task}", "fail", count, f"not implemented yet ({exc or 'NotImplementedError'})")
        except Exception as exc:
            return Result(f"tasks.{task}", "error", count, f"case {case!r} raised {type(exc).__name__}: {exc}")
        want = model(**kwargs)
        pairs = list(zip(got, want)) if isinstance(want, tuple) else [(got, want)]
        for k, (a, b) in enumerate(pairs):
            a, b = np.asarray(a), np.asarray(b)
            ok = (a.shape == b.shape and a.tobytes() == b.astype(a.dtype).tobytes()) if task == "chunked_sum" else (
                a.shape == b.shape and np.allclose(a, b, rtol=1e-12, atol=1e-14))
            if not ok:
                what = "not the bits of the sequential sum" if task == "chunked_sum" else "differs from the model"
                part = f" (result {k})" if len(pairs) > 1 else ""
                return Result(f"tasks.{task}", "fail", count, f"case {case!r}{part}: {what}",
                              f"from {package}.tasks import {task}\n# inputs: exercises.task_cases({task!r}), "
                              f"case {case!r}\n# model gives {np.array2string(b, floatmode='unique')}\n"
                              f"# yours gives {np.array2string(a, floatmode='unique')}",
                              inspect.getdoc(model).splitlines()[:1])
    return Result(f"tasks.{task}", "pass", count)


def check(package: str, kernels=None, allow_reordering: bool = False, name: str = "student") -> list:
    """Check ``package`` (an import name) against the reference; returns one
    :class:`Result` per kernel function (``kernels``: names like "spmm" or
    "spmm.spmm_reduce" to check only those)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fallbacks are reported below, each by name
        backend = _backend.register_backend(name, package)
    results = []
    for module, functions in INTERFACE.items():
        for function in functions:
            kernel = f"{module}.{function}"
            if kernels and module not in kernels and kernel not in kernels:
                continue
            if kernel in backend.fallbacks:
                results.append(Result(kernel, "fallback"))
                continue
            if kernel in OPTIONAL and not hasattr(backend.module(module), function):
                results.append(Result(kernel, "optional"))
                continue
            results.append(_check_function(package, backend, module, function, allow_reordering))
        if not kernels or module in kernels or any(k.startswith(module + ".") for k in kernels):
            own = [f for f in functions if f"{module}.{f}" not in backend.fallbacks]
            if own:
                results.append(_check_gradients(name, module))
    return results + _check_tasks(package, kernels)


def _check_function(package, backend, module, function, allow_reordering) -> Result:
    kernel = f"{module}.{function}"
    theirs = getattr(backend.module(module), function)
    count, rounding = 0, False
    for case, kwargs in calls(module, function):
        count += 1
        try:
            found = compare_case(module, function, kwargs, theirs)
        except NotImplementedError as exc:
            return Result(kernel, "fail", count, f"not implemented yet ({exc or 'NotImplementedError'})")
        except Exception as exc:  # a student's kernel may raise anything: report it, with the case
            return Result(kernel, "error", count, f"case {case!r} raised {type(exc).__name__}: {exc}",
                          _snippet(package, module, function, kwargs, next(iter(kwargs)), "(raised)", "(no error)"))
        if found is not None and found[1] == ROUNDING_ONLY:
            rounding = True
            if allow_reordering:
                continue
        if found is not None:
            output, how, got, want = found
            return Result(kernel, "fail", count, f"case {case!r}: {output} {how}",
                          _snippet(package, module, function, kwargs, output, got, want),
                          _contract_lines(module, function, output))
    if rounding:
        return Result(kernel, "rounding", count, "your order of additions is not the contract's "
                      "(accepted with --allow-reordering)")
    return Result(kernel, "pass", count)


def _check_gradients(name: str, module: str) -> Result:
    kernel = f"{module} (gradients)"
    count = 0
    with use_backend(name):
        for label, fn, inputs in _gradient_checks(module):
            count += 1
            try:
                gradcheck(fn, inputs)
            except Exception as exc:
                return Result(kernel, "fail", count, f"gradcheck of {label} on your kernels: "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    return Result(kernel, "pass", count)


def report(results: list) -> str:
    lines = [str(r) for r in results]
    passed = sum(r.status in ("pass", "rounding") for r in results)
    failed = sum(not r.ok for r in results)
    taken = sum(r.status == "fallback" for r in results)
    lines.append(f"\n{passed} passed, {failed} failed, {taken} taken from the reference")
    return "\n".join(lines)

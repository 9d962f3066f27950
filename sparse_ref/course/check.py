"""The checker: a package of kernels against the reference, kernel by kernel.

``python -m sparse_ref check PACKAGE [--kernel NAME]`` registers the package as a backend
and, for every kernel function it implements (see ``sparse_ref._backend.INTERFACE``):

1. runs it and the reference on the same small inputs -- random ones, and the edge cases
   a kernel gets wrong first: an empty matrix, empty rows, duplicates, explicit zeros,
   -0.0, NaN, stored zeros that meet inf, one long row; in float64, float32 and
   complex128; SpGEMM with B = A^T and with a B of its own shape -- each at n_threads=1
   and at the thread counts the machine allows, and compares every output **bit for
   bit** (the contract fixes the order of additions, so the bits are fixed too; a NaN
   matches any NaN; ``allow_reordering`` accepts a difference of rounding only, and the
   report says so);
2. runs ``gradcheck`` on every op that uses the kernel, on this backend.

``python -m sparse_ref check`` runs each kernel module's cases, the gradients of the ops
on it, and the tasks in processes of their own with a time limit (:func:`check_apart`),
so a kernel that crashes or never returns is reported instead of ending the check.

The report gives, per kernel function, PASS or the first failing case as a snippet that
reproduces it (the inputs, what the reference gives, what the package gives) and the
contract line that was broken. A function the package lacks is reported as taken from
the reference, not as passed; an optional one it lacks (``_backend.OPTIONAL``) as left
out, since the ops then run on its other kernels; a public function whose name the
interface lacks is named (a misspelt kernel is not checked), and a package of which
nothing could be checked fails.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import traceback
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
    yield "no rows (0 x 4)", (0, 4), np.zeros(0, I64), np.zeros(0, I64), np.zeros(0, f)
    yield "no columns (3 x 0)", (3, 0), np.zeros(0, I64), np.zeros(0, I64), np.zeros(0, f)
    yield ("empty rows", (5, 3), np.array([1, 3, 3], I64), np.array([2, 0, 1], I64),
           np.array([1.5, -2.0, 0.25]))
    yield ("duplicates in storage order", (2, 3), np.array([1, 0, 1, 1, 0], I64), np.array([2, 1, 2, 0, 1], I64),
           np.array([0.1, 1e16, 0.2, 3.0, -1e16]))
    # sums whose bits depend on the order of additions: (1e16 + 1) - 1e16 is 0, (1e16 - 1e16) + 1
    # is 1; and hundreds of duplicates of mixed magnitude, which an unstable sort reorders
    yield ("three duplicates whose sum depends on their order", (2, 2), np.array([0, 1, 0, 0], I64),
           np.array([1, 0, 1, 1], I64), np.array([1e16, 2.0, 1.0, -1e16]))
    yield ("300 duplicates of 6 entries, mixed magnitudes", (2, 3), rng.integers(0, 2, 300), rng.integers(0, 3, 300),
           rng.standard_normal(300) * 10.0 ** rng.integers(-8, 9, 300))
    yield ("explicit zeros and -0.0", (3, 3), np.array([0, 0, 2, 2, 1], I64), np.array([1, 1, 0, 2, 1], I64),
           np.array([-0.0, -0.0, 0.0, -0.0, 0.0]))
    yield ("NaN and inf", (2, 2), np.array([0, 1, 1, 0], I64), np.array([0, 1, 1, 1], I64),
           np.array([np.nan, np.inf, 1.0, -np.inf]))
    yield "one long row", (2, 40), np.zeros(60, I64), rng.integers(0, 40, 60), rng.standard_normal(60)
    # a stored zero that meets inf or NaN gives NaN (0 * inf): a kernel that skips zeros does not
    yield ("stored zeros meet inf and NaN", (3, 3), np.array([0, 0, 1, 1, 2], I64), np.array([0, 1, 0, 1, 2], I64),
           np.array([0.0, np.inf, np.nan, 0.0, 2.0]))
    for k in range(3):
        shape = (int(rng.integers(1, 9)), int(rng.integers(1, 9)))
        nnz = int(rng.integers(0, 3 * shape[0] * shape[1] // 2 + 1))
        val = rng.standard_normal(nnz) * 10.0 ** rng.integers(-3, 4, nnz)
        yield (f"random {shape[0]}x{shape[1]}, {nnz} stored (seed {k})", shape, rng.integers(0, shape[0], nnz),
               rng.integers(0, shape[1], nnz), val)
    # the other value types a kernel must take (sr's default is float32): its own rounding
    # in float32, and complex products without a fused multiply-add
    for dtype in (np.float32, np.complex128):
        shape, nnz = (5, 6), 14
        val = rng.standard_normal(nnz) * 10.0 ** rng.integers(-3, 4, nnz)
        if dtype == np.complex128:
            val = val + 1j * rng.standard_normal(nnz)
        yield (f"random {shape[0]}x{shape[1]}, {nnz} stored, {np.dtype(dtype).name}", shape,
               rng.integers(0, shape[0], nnz), rng.integers(0, shape[1], nnz), val.astype(dtype))


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
            if val.dtype.kind == "c":
                continue
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
                b = _dense(rng, (ncols, k), case, val.dtype)
                yield f"{case}, B with {k} columns", dict(a_crow=crow, a_col=ccol, a_val=cval, b=b,
                                                          out=_marker((nrows, k), val.dtype))
        elif (module, function) == ("spmm", "spmv"):
            b = _dense(rng, (ncols, 1), case, val.dtype)
            for cols in (ccol, ccol.astype(np.int32)):
                yield f"{case}, {cols.dtype} columns", dict(a_crow=crow, a_col=cols, a_val=cval, b=b,
                                                             out=_marker((nrows, 1), val.dtype))
        elif (module, function) == ("spmm", "spmm_reduce"):
            b = _dense(rng, (ncols, 3), case, val.dtype)
            for reduce in ("sum", "mean") if val.dtype.kind == "c" else ("sum", "mean", "amax", "amin"):
                arg = (nrows, 3) if reduce in ("amax", "amin") else (0, 0)
                yield f"{case}, reduce={reduce!r}", dict(a_crow=crow, a_col=ccol, a_val=cval, b=b, reduce=reduce,
                                                         out=_marker((nrows, 3), val.dtype), out_arg=_marker(arg, I64))
        elif module == "spgemm":
            # C = A @ A^T (as many columns as A has rows), and C = A @ B for a B of its own
            # shape (ncols + 3 columns): a kernel that sizes anything by the wrong dimension fails
            b_shape = (ncols, ncols + 3)
            b_nnz = int(rng.integers(0, b_shape[0] * b_shape[1] // 2 + 1))
            b_val = rng.standard_normal(b_nnz) + (1j * rng.standard_normal(b_nnz) if val.dtype.kind == "c" else 0)
            products = [("C = A @ A^T", nrows, _transpose(shape, crow, ccol, cval)),
                        (f"C = A @ B, B {b_shape[0]}x{b_shape[1]}", b_shape[1],
                         _csr(b_shape, rng.integers(0, b_shape[0], b_nnz), rng.integers(0, b_shape[1], b_nnz),
                              b_val.astype(val.dtype)))]
            for label, n_out, (b_crow, b_col, b_val) in products:
                label = f"{case}, {label}"
                if function == "spgemm_bounds":
                    yield label, dict(a_crow=crow, a_col=ccol, b_crow=b_crow, out_flops=_marker(nrows, I64),
                                      out_longest=_marker(nrows, I64))
                    continue
                c_crow = np.empty(nrows + 1, I64)
                reference.spgemm.spgemm_symbolic(crow, ccol, b_crow, b_col, n_out, c_crow)
                if function == "spgemm_symbolic":
                    yield label, dict(a_crow=crow, a_col=ccol, b_crow=b_crow, b_col=b_col, ncols=n_out,
                                      out_crow=_marker(nrows + 1, I64))
                elif function == "spgemm_numeric":
                    yield label, dict(a_crow=crow, a_col=ccol, a_val=cval, b_crow=b_crow, b_col=b_col, b_val=b_val,
                                      ncols=n_out, crow=c_crow, out_col=_marker(int(c_crow[-1]), I64),
                                      out_val=_marker(int(c_crow[-1]), val.dtype))
                elif function == "spgemm_onepass":  # room for every product (spgemm_bounds)
                    flops = np.empty(nrows, I64)
                    reference.spgemm.spgemm_bounds(crow, ccol, b_crow, flops, np.empty(nrows, I64))
                    upper = int(flops.sum())
                    yield label, dict(a_crow=crow, a_col=ccol, a_val=cval, b_crow=b_crow, b_col=b_col, b_val=b_val,
                                      ncols=n_out, out_crow=_marker(nrows + 1, I64), out_col=_marker(upper, I64),
                                      out_val=_marker(upper, val.dtype))
            if function == "spgemm_masked":  # X = A, Y = A: out = (A @ A^T)[p_row, p_col]
                p = 6 if nrows else 0  # (no position to sample in a matrix of no rows)
                p_row, p_col = rng.integers(0, max(nrows, 1), p), rng.integers(0, max(nrows, 1), p)
                yield case, dict(p_row=p_row, p_col=p_col, x_crow=crow, x_col=ccol, x_val=cval, y_crow=crow,
                                 y_col=ccol, y_val=cval, out=_marker(p, val.dtype))
        elif (module, function) == ("sddmm", "sddmm"):
            for n in (1, 5, 19):
                x, y = _dense(rng, (nrows, n), case, val.dtype), _dense(rng, (ncols, n), case, val.dtype)
                p_row, p_col = np.repeat(np.arange(nrows, dtype=I64), np.diff(crow)), ccol
                yield f"{case}, {n} columns", dict(p_row=p_row, p_col=p_col, x=x, y=y, out=_marker(m, val.dtype))


def _marker(shape, dtype):
    """An output array filled with a value no kernel computes here."""
    dtype = np.dtype(dtype)
    big = 7.777e37 if dtype in (np.float32, np.complex64) else 7.777e77  # (finite in the type)
    return np.full(shape, -7777 if dtype.kind == "i" else 0x7777 if dtype.kind == "u" else big, dtype=dtype)


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


def _dense(rng, shape, case: str, dtype=np.float64):
    b = rng.standard_normal(shape) * 10.0 ** rng.integers(-2, 3, shape)
    if np.dtype(dtype).kind == "c":
        b = b + 1j * rng.standard_normal(shape)
    if "NaN" in case and b.size:
        b.flat[0] = np.nan
    if "meet inf" in case and b.size:
        b[0] = np.inf  # the stored zeros of column 0 meet it
    return b.astype(dtype)


# -- comparing ------------------------------------------------------------------------------

@dataclass
class Result:
    """What the checker found for one kernel function."""

    kernel: str
    status: str  # "pass", "rounding", "fail", "fallback", "optional", "note", "error"
    cases: int = 0
    detail: str = ""
    snippet: str = ""
    contract: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("pass", "rounding", "fallback", "optional", "note")

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
                "note": f"NOTE  {self.kernel}: {self.detail}",
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


def _real_parts(x) -> np.ndarray:
    """A complex array's real and imaginary parts as one real array; any other as it is."""
    x = np.asarray(x)
    return np.stack([x.real, x.imag]) if x.dtype.kind == "c" else x


def _same_bits_but_nans(a: np.ndarray, b: np.ndarray) -> bool:
    """The same bits, except that a NaN matches any NaN: where two NaNs meet in an
    addition, which one comes out (its sign, its payload) is the hardware's choice, and a
    compiler may swap the terms of an addition; no contract fixes it."""
    if not (a.shape == b.shape and a.dtype == b.dtype and _dtypes.kind(a.dtype) in "fc"):
        return False
    a, b = _real_parts(a), _real_parts(b)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    return bool(np.array_equal(nan_a, nan_b) and a[~nan_a].tobytes() == b[~nan_b].tobytes())


def _used(name: str, arrays: dict, out: np.ndarray, function: str) -> np.ndarray:
    """The part of an output the contract defines (coalesce and spgemm_onepass: the first
    nnz of C)."""
    if function in ("coalesce", "spgemm_onepass") and name in ("out_col", "out_val"):
        return out[: max(int(arrays["out_crow"][-1]), 0)] if arrays["out_crow"].size else out[:0]
    return out


ROUNDING_ONLY = "differs in the last bits only: the order of additions is not the contract's"
# NumPy's complex multiply may fuse a multiply and an add (it does with AVX-512): the
# contract's product is the textbook one, each part rounded on its own
ROUNDING_COMPLEX = ("differs in the last bits only: the order of additions is not the contract's, or the complex "
                    "products are not (ar*br - ai*bi) + (ar*bi + ai*br)j with each multiply rounded on its own "
                    "(NumPy's complex * may fuse them; sparse_ref.reference._arith.mul does not)")


def thread_counts() -> list:
    """The thread counts each case runs at: 1 (what small ops pass), what the thread
    policy gives for 2 and 3 (1 in a forked child or on one core), and the most the ops
    pass on this machine (its cores, or ``sr.set_num_threads``'s count), so that a kernel
    wrong only at 4 threads or more is not passed where the ops would run it so."""
    return sorted({1, effective_n_threads(2), effective_n_threads(3), effective_n_threads(None)})


def _zero_signs_differ(got: np.ndarray, want: np.ndarray) -> bool:
    """Whether a zero of one is -0.0 where the other's is 0.0 (no rounding does that)."""
    g, w = _real_parts(got), _real_parts(want)
    both = (g == 0) & (w == 0)
    return bool((np.signbit(g[both]) != np.signbit(w[both])).any())


def _rounding_rtol(dtype) -> float:
    """How far apart two results may be and still differ by rounding only: about 4096
    units in the last place of the type (1e-12 in float64, 5e-4 in float32)."""
    return max(1e-12, 4096 * float(np.finfo(dtype).eps))


def _first_difference(got, want, marked: bool = False) -> str:
    """Where ``got`` first differs from ``want``, for a report: its place, both values (every
    digit), how many elements differ; with ``marked``, whether it still holds the marker
    the checker filled the output with (never written)."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return f": shape {got.shape}, the reference's {want.shape}"
    if got.dtype != want.dtype:
        return f": dtype {got.dtype.name}, the reference's {want.dtype.name}"
    with np.errstate(all="ignore"):
        same = got == want
        if got.dtype.kind in "fc":
            same = same & (np.signbit(got.real) == np.signbit(want.real)) | (np.isnan(got) & np.isnan(want))
    where = np.argwhere(~same)
    if where.shape[0] == 0:
        return ""
    at = tuple(int(i) for i in where[0])
    g, w = got[at].item(), want[at].item()
    place = ", ".join(map(str, at))
    never = ""
    if marked and got[at] == _marker((), got.dtype)[()]:
        never = " (never written: the checker filled the output with that)"
    more = f"; {where.shape[0]} of {got.size} elements differ" if where.shape[0] > 1 else ""
    return f", first at [{place}]: yours {g!r}{never}, the reference's {w!r}{more}"


def compare_case(module: str, function: str, kwargs: dict, theirs, n_threads: int = 1):
    """Run the reference and the package's function (with ``n_threads``) once on copies of
    ``kwargs``: ``None`` if every output has the reference's bits, else ``(output name,
    how, got, want)`` of the first real difference, or, when every difference is one of
    rounding only, of the first of those (``how`` is then :data:`ROUNDING_ONLY`)."""
    ref_args = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    our_args = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    with np.errstate(all="ignore"):  # (0 * inf is NaN, as it should be: no warning about it)
        getattr(importlib.import_module(f"sparse_ref.reference.{module}"), function)(**ref_args, n_threads=1)
        returned = theirs(**our_args, n_threads=n_threads)
    hint = ("" if returned is None else f" (and your kernel returned a {type(returned).__name__}: a kernel writes "
            "into its out arrays and returns nothing)")
    rounding = None
    for name in kwargs:
        if not (name.startswith("out_") or name == "out"):
            if isinstance(kwargs[name], np.ndarray) and not _same_bits(our_args[name], kwargs[name]):
                return name, ("was changed, and it is an input (kernels never write their inputs)"
                              + _first_difference(our_args[name], kwargs[name])), our_args[name], kwargs[name]
            continue
        want = _used(name, ref_args, ref_args[name], function)
        got = _used(name, our_args, our_args[name], function)
        if _same_bits(got, want) or _same_bits_but_nans(got, want):
            continue
        if (got.shape == want.shape and got.dtype == want.dtype and _dtypes.kind(got.dtype) in "fc"
                and np.allclose(got, want, rtol=_rounding_rtol(got.dtype), atol=0, equal_nan=True)):
            if _zero_signs_differ(got, want):
                return name, "differs in the sign of a zero (-0.0 against 0.0): not a matter of rounding", got, want
            rounding = rounding or (name, ROUNDING_COMPLEX if got.dtype.kind == "c" else ROUNDING_ONLY, got, want)
            continue
        return name, "differs" + _first_difference(got, want, marked=True) + hint, got, want
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


def _snippet(package: str, module: str, function: str, kwargs: dict, output: str, got, want,
             n_threads: int = 1, raised: bool = False) -> str:
    """Code that reproduces a case: pasted into Python, it runs the reference and the
    package's function on the case and prints the output of both (as lists: every digit
    of a float, so a difference in the last bit shows)."""
    where = (f"from {package} import {module} as mine" if package.replace(".", "_").isidentifier() else
             f"import importlib; mine = importlib.import_module({package + '.' + module!r})")
    lines = ["import numpy as np", "from numpy import nan, inf  # (as NumPy prints them)", where,
             f"from sparse_ref.reference import {module} as ref", "args = dict("]
    for k, v in kwargs.items():
        if isinstance(v, np.ndarray):
            text = np.array2string(v, separator=", ", threshold=10**6, floatmode="unique")
            lines.append(f"    {k}=np.array({text}, dtype=np.{v.dtype.name}),")
        else:
            lines.append(f"    {k}={v!r},")
    lines += [")", "ours = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in args.items()}",
              f"ref.{function}(**args, n_threads=1)"]
    if raised:
        lines.append(f"mine.{function}(**ours, n_threads={n_threads})  # raises")
        return "\n".join(lines)
    lines += [f"mine.{function}(**ours, n_threads={n_threads})",
              f"print('reference:', args[{output!r}].tolist())", f"print('yours:    ', ours[{output!r}].tolist())"]
    for label, x in (("reference gives", want), ("yours gives", got)):
        text = np.array2string(np.asarray(x), separator=", ", floatmode="unique", threshold=200)
        lines += [f"# {label}:"] + [f"#   {line}" for line in text.splitlines()]
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
        "spmm": [("sparse.mm(sparse, dense)", lambda x, b: mm(x, b), (a, leaf((3, 4)))),
                 ("sparse.mm(sparse, one column)", lambda x, b: mm(x, b), (a, leaf((3, 1))))],  # (spmv's)
        "sddmm": [("sampled_addmm", lambda x, y: sampled_addmm(coo(np.ones(5)), x, y), (leaf((3, 4)), leaf((4, 3))))],
        "spgemm": [("sparse.mm(sparse, sparse)", lambda x: mm(x, x.t()), (a,))],
    }
    return checks[module]


def _import_tasks(package: str):
    """The package's ``tasks`` module, or None when it has none; one that fails as it is
    imported (a SyntaxError, a NameError) is a BackendError that says so, as a kernel
    module's is."""
    try:
        return importlib.import_module(f"{package}.tasks")
    except ModuleNotFoundError as exc:
        if exc.name != f"{package}.tasks":
            raise
        return None
    except Exception as exc:
        raise _backend.BackendError(f"{package}.tasks fails as it is imported: {type(exc).__name__}: {exc}") from exc


def _check_tasks(package: str, kernels) -> list:
    """The exercises that are not kernels (``tasks.py``): each against its model solution,
    to rounding; ``chunked_sum`` bit for bit across chunk counts."""
    module = _import_tasks(package)
    if module is None:
        return []
    results = []
    for task, model in exercises.TASKS.items():
        theirs = getattr(module, task, None)
        if theirs is None or (kernels and task not in kernels):
            continue
        results.append(_check_task(package, task, model, theirs))
    return results


def _task_mismatch(task: str, got, want) -> str | None:
    """What is wrong with a task's result ``got`` against the model's ``want``, or None.
    A tuple must have the model's length; each result the model's shape and kind of
    number (a bool or an int is not a float); chunked_sum also the model's dtype and bits."""
    if isinstance(want, tuple):
        if not isinstance(got, (tuple, list)) or len(got) != len(want):
            given = f"{len(got)} results" if isinstance(got, (tuple, list)) else type(got).__name__
            return f"returns {given}, the model {len(want)} results (a tuple)"
        for k, (a, b) in enumerate(zip(got, want)):
            problem = _task_mismatch(task, a, b)
            if problem is not None:
                return f"result {k}: {problem}"
        return None
    if got is None:
        return "returns None (a missing return?)"
    try:
        a = np.asarray(got)
    except (TypeError, ValueError) as exc:
        return f"returns something that is not an array ({type(exc).__name__}: {exc})"
    b = np.asarray(want)
    if a.dtype.kind not in "fc" or (a.dtype.kind == "f" and b.dtype.kind == "c"):
        return f"returns {a.dtype.name} values, the model {b.dtype.name}"
    if a.shape != b.shape:
        return f"returns shape {a.shape}, the model {b.shape}"
    if task == "chunked_sum":
        if a.dtype != b.dtype or a.tobytes() != b.tobytes():
            return (f"not the bits of the sequential sum ({a.dtype.name} {a.tolist()!r}, the model "
                    f"{b.dtype.name} {b.tolist()!r})")
        return None
    if np.allclose(a, b, rtol=1e-12, atol=1e-14):
        return None
    return "differs from the model" + _first_difference(a.astype(b.dtype) if a.dtype != b.dtype else a, b)


def _check_task(package, task, model, theirs) -> Result:
    count = 0
    for case, kwargs in exercises.task_cases(task):
        count += 1
        ours = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
        try:
            got = theirs(**ours)
        except NotImplementedError as exc:
            return Result(f"tasks.{task}", "fail", count, f"not implemented yet ({exc or 'NotImplementedError'})")
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # exit() too
            return Result(f"tasks.{task}", "error", count, f"case {case!r} raised {type(exc).__name__}: {exc}")
        changed = [k for k, v in kwargs.items() if isinstance(v, np.ndarray) and not _same_bits(ours[k], v)]
        if changed:
            return Result(f"tasks.{task}", "fail", count, f"case {case!r}: {changed[0]} was changed, and it is an "
                          "input (never write your inputs)")
        want = model(**kwargs)
        problem = _task_mismatch(task, got, want)
        if problem is not None:
            return Result(f"tasks.{task}", "fail", count, f"case {case!r}: {problem}",
                          f"from {package}.tasks import {task}\n# inputs: exercises.task_cases({task!r}), "
                          f"case {case!r}\n# model gives {want!r}\n# yours gives {got!r}",
                          inspect.getdoc(model).splitlines()[:1])
    return Result(f"tasks.{task}", "pass", count)


def check(package: str, kernels=None, allow_reordering: bool = False, name: str = "student",
          _whole: bool = True, _parts=("cases", "gradients")) -> list:
    """Check ``package`` (an import name) against the reference; returns one
    :class:`Result` per kernel function (``kernels``: names like "spmm" or
    "spmm.spmm_reduce" to check only those). The package is a backend named ``name``
    while it is checked; afterwards that name is what it was before (a backend the caller
    registered under it is back, or there is none)."""
    kernels = _known_names(kernels)
    before = _backend.BACKENDS.get(name) if isinstance(name, str) else None
    try:
        return _check_as(package, kernels, allow_reordering, name, _whole, _parts)
    finally:
        if isinstance(name, str) and name not in _backend.BUILT_IN:
            if before is None:
                _backend.BACKENDS.pop(name, None)
            else:
                _backend.BACKENDS[name] = before


def _check_as(package, kernels, allow_reordering, name, _whole, _parts) -> list:
    """:func:`check`'s work, with ``package`` registered as the backend ``name``."""
    _backend.forget_imports(package)  # its files as they are now (a student edits, checks again)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fallbacks are reported below, each by name
        backend = _backend.register_backend(name, package)
    groups = _groups(kernels)
    results = _unknown_functions(package, groups) if "cases" in _parts else []
    for module, functions in INTERFACE.items():
        for function in functions:
            kernel = f"{module}.{function}"
            if "cases" not in _parts or (kernels and module not in kernels and kernel not in kernels):
                continue
            if kernel in backend.fallbacks:
                results.append(Result(kernel, "fallback"))
                continue
            if kernel in OPTIONAL and not hasattr(backend.module(module), function):
                results.append(Result(kernel, "optional"))
                continue
            results.append(_check_function(package, backend, module, function, allow_reordering))
        if "gradients" in _parts and (not kernels or module in kernels
                                      or any(k.startswith(module + ".") for k in kernels)):
            own = [f for f in functions if f"{module}.{f}" not in backend.fallbacks
                   and hasattr(backend.module(module), f)]
            if own:
                results.append(_check_gradients(name, module, package))
    if "cases" in _parts and "tasks" in groups:
        results += _check_tasks(package, kernels)
    return _something_checked(results, kernels) if _whole else results


def _something_checked(results: list, kernels) -> list:
    """``results``, and a failure if none of them checked anything of the package."""
    if not any(r.status in ("pass", "rounding", "fail", "error") for r in results):
        results.append(Result("(nothing)", "fail", detail="nothing of the package was checked: it has no kernel "
                              "function of the interface and no task" + (" among --kernel's names" if kernels else "")))
    return results


def _groups(kernels) -> list:
    """The kernel modules (and "tasks") that ``kernels`` (known names, or None) reach."""
    return [g for g in (*INTERFACE, "tasks") if _names_of(g, kernels)]


def _names_of(group: str, kernels) -> list:
    """The names of ``kernels`` (all, when None) that fall in ``group``: a kernel module,
    or "tasks"."""
    if not kernels:
        return list(exercises.TASKS) if group == "tasks" else [group]
    if group == "tasks":
        return [k for k in kernels if k in exercises.TASKS]
    return [k for k in kernels if k == group or k.startswith(group + ".")]


def check_apart(package: str, kernels=None, allow_reordering: bool = False, timeout: float = 120.0,
                say=print) -> list:
    """:func:`check`, each kernel module's cases, the gradients of the ops on it, and the
    tasks, each in a process of its own with a time limit, their lines said (``say``) as
    they finish: a kernel that kills the process (a write out of bounds in compiled code)
    or never returns is an error of its module, and the rest is still checked. What
    ``python -m sparse_ref check`` runs (a script that calls it needs the
    ``if __name__ == "__main__":`` guard: the processes are spawned). A package that
    does not import raises as :func:`check` does."""
    import multiprocessing

    if not timeout > 0:
        raise ValueError(f"the time limit must be a positive number of seconds, got {timeout!r}")
    kernels = _known_names(kernels)
    spec = importlib.util.find_spec(package) if "." not in package else None
    where = spec.submodule_search_locations if spec is not None else None
    if spec is None and "." not in package:
        raise _backend.BackendError(f"cannot import {package}: no such package (a folder with an __init__.py, "
                                    "or an importable name)")
    context = multiprocessing.get_context("spawn")  # (no fork of a process with OpenMP threads)
    results = []
    for group in _groups(kernels):
        names = _names_of(group, kernels)
        if where is not None and importlib.machinery.PathFinder.find_spec(group, list(where)) is None:
            # not in the package (found without importing it here): nothing to run
            found = [] if group == "tasks" else [  # (an optional kernel is never taken from the reference)
                Result(f"{group}.{f}", "optional" if f"{group}.{f}" in OPTIONAL else "fallback")
                for f in INTERFACE[group] if not kernels or group in kernels or f"{group}.{f}" in kernels]
        else:
            found = []
            for parts in ((("cases",),) if group == "tasks" else (("cases",), ("gradients",))):
                found += _run_apart(context, package, group, names, allow_reordering, parts, timeout)
        results += found
        for r in found:
            say(str(r))
    told = len(results)
    results = _something_checked(results, kernels)
    for r in results[told:]:
        say(str(r))
    return results


def _run_apart(context, package, group, names, allow_reordering, parts, timeout) -> list:
    """One unit of :func:`check_apart` in a child process: its results, or an error that
    says how the child ended."""
    import signal

    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_check_in_child, args=(send, package, names, allow_reordering, parts))
    child.start()
    send.close()
    kind, payload = "died", None
    try:
        if receive.poll(timeout):
            kind, payload = receive.recv()
        elif child.is_alive():
            kind = "late"
    except EOFError:  # it died before it could send
        pass
    finally:
        receive.close()
        child.join(5 if kind != "late" else 0)  # (a thread left running may keep it from ending)
        if child.is_alive():
            child.kill()
            child.join()
        code = child.exitcode
        child.close()
    if kind == "raise":
        raise payload
    if kind == "exit":
        raise SystemExit(payload)
    if kind == "results":
        return payload
    what = f"{group} (gradients)" if parts == ("gradients",) else group  # (the ops run on all your kernels)
    if kind == "late":
        return [Result(what, "error", detail=f"no answer in {timeout:g} s: an endless loop? (--timeout sets the limit)")]
    if kind == "crash":
        return [Result(what, "error", detail=f"checking it raised {payload}")]
    signals = {sig.value: sig.name for sig in signal.Signals}
    how = (f"was killed by {signals[-code]}: a read or write out of bounds in a compiled kernel?"
           if code is not None and -code in signals else f"ended with exit code {code}")
    return [Result(what, "error", detail=f"the process checking it {how}")]


def _check_in_child(send, package, names, allow_reordering, parts):
    """A child of :func:`check_apart`: check ``names`` (their cases, or the gradients of the
    ops on them) and send back what it found, or what it raised."""
    try:
        send.send(("results", check(package, names, allow_reordering, _whole=False, _parts=parts)))
    except (ImportError, ValueError) as exc:
        send.send(("raise", type(exc)(str(exc))))
    except SystemExit as exc:
        send.send(("exit", exc.code))
    except Exception as exc:  # outside any case: say what, rather than die with a traceback
        send.send(("crash", f"{type(exc).__name__}: {exc}"))
    finally:
        send.close()


def _known_names(kernels):
    """``--kernel``'s names, each a kernel module, a "module.function" of the interface, a
    task ("tasks.name" as the report prints it, or just its name) or "tasks" (all of
    them), as check's names; an unknown one raises ValueError, naming them all."""
    if not kernels:
        return kernels
    known = set(INTERFACE) | {f"{m}.{f}" for m, fs in INTERFACE.items() for f in fs} | set(exercises.TASKS)
    names = []
    for k in kernels:
        got = list(exercises.TASKS) if k == "tasks" else [k[len("tasks."):] if k.startswith("tasks.") else k]
        if any(n not in known for n in got):
            raise ValueError(f"unknown kernel name {k!r}: the names are the kernel modules "
                             f"({', '.join(INTERFACE)}), module.function as the report prints them, and the tasks "
                             f"({', '.join(exercises.TASKS)}, or tasks for all)")
        names += got
    return names


def _unknown_functions(package: str, groups) -> list:
    """A note for each public function that the package's kernel modules and tasks.py
    define but the interface does not name (a kernel under a misspelt name is not checked)."""
    notes = []
    for module, names in [*INTERFACE.items(), ("tasks", exercises.TASKS)]:
        if module not in groups:
            continue
        if module == "tasks":
            mod = _import_tasks(package)
        else:
            try:
                mod = importlib.import_module(f"{package}.{module}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{package}.{module}":
                    raise
                mod = None
        if mod is None:
            continue
        # the reference's own helpers (fill_row, count_row, ...) are good names for yours too
        helpers = set(vars(exercises if module == "tasks" else importlib.import_module(f"sparse_ref.reference.{module}")))
        for fname, obj in vars(mod).items():
            if (not fname.startswith("_") and callable(obj) and not inspect.isclass(obj) and fname not in names
                    and fname not in helpers and getattr(obj, "__module__", None) == mod.__name__):
                notes.append(Result(f"{module}.{fname}", "note", detail=f"not a name of the interface, so not "
                                    f"checked ({module}'s are {', '.join(names)}): a misspelt one? (name a "
                                    "helper _like_this)"))
    return notes


def _check_function(package, backend, module, function, allow_reordering) -> Result:
    kernel = f"{module}.{function}"
    theirs = getattr(backend.module(module), function)
    theirs = getattr(theirs, "__wrapped__", theirs)  # (the kernel itself: the cases compare what it wrote)
    count, rounding = 0, False
    for case, kwargs in calls(module, function):
        count += 1
        for n_threads in thread_counts():
            on = f"case {case!r}, n_threads={n_threads}"
            try:
                found = compare_case(module, function, kwargs, theirs, n_threads)
            except NotImplementedError as exc:
                return Result(kernel, "fail", count, f"not implemented yet ({exc or 'NotImplementedError'})")
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # a student's kernel may raise anything (exit() too): report it
                return Result(kernel, "error", count, f"{on} raised {type(exc).__name__}: {exc}",
                              _snippet(package, module, function, kwargs, "", None, None, n_threads, raised=True))
            if found is not None and found[1] in (ROUNDING_ONLY, ROUNDING_COMPLEX):
                rounding = True
                if allow_reordering:
                    continue
            if found is not None:
                output, how, got, want = found
                return Result(kernel, "fail", count, f"{on}: {output} {how}",
                              _snippet(package, module, function, kwargs, output, got, want, n_threads),
                              _contract_lines(module, function, output))
    if rounding:
        return Result(kernel, "rounding", count, "your order of additions is not the contract's "
                      "(accepted with --allow-reordering)")
    return Result(kernel, "pass", count)


def _check_gradients(name: str, module: str, package: str | None = None) -> Result:
    kernel = f"{module} (gradients)"
    count = 0
    with use_backend(name):
        for label, fn, inputs in _gradient_checks(module):
            count += 1
            try:
                gradcheck(fn, inputs)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # exit() in a kernel too
                text = str(exc).splitlines()[0] if str(exc) else ""
                return Result(kernel, "fail", count, f"gradcheck of {label} on your kernels: "
                              f"{type(exc).__name__}: {text}{_raised_in(exc, package, module)}")
    return Result(kernel, "pass", count)


def _raised_in(exc: BaseException, package: str | None, module: str) -> str:
    """Where in the student's package an exception was raised, when that is a kernel of
    another module than the one checked (an unfinished coalesce failing spmm's gradients
    says so), or the line of the checked module's own: " (raised in your
    coalesce.py, line 12, in coalesce)"; "" when it came from elsewhere."""
    if package is None:
        return ""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return ""
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    if not roots:
        return ""
    mine = [f for f in traceback.extract_tb(exc.__traceback__)
            if any(os.path.abspath(f.filename).startswith(os.path.abspath(r) + os.sep) for r in roots)]
    if not mine:
        return ""
    last = mine[-1]
    where = os.path.relpath(os.path.abspath(last.filename), os.path.abspath(roots[0]))
    other = "" if os.path.splitext(where)[0] == module else f", not in {module}: fix that one first"
    return f" (raised in your {where}, line {last.lineno}, in {last.name}{other})"


def report(results: list) -> str:
    lines = [str(r) for r in results]
    passed = sum(r.status in ("pass", "rounding") for r in results)
    failed = sum(not r.ok for r in results)
    taken = sum(r.status == "fallback" for r in results)
    lines.append(f"\n{passed} passed, {failed} failed, {taken} taken from the reference")
    return "\n".join(lines)

"""Which kernels run: a backend is an object with a declared interface, chosen in one place.

A backend is a package of kernel modules that implements :data:`INTERFACE`: the kernel
modules, their functions and each function's parameters, in order. Two are built in:

- ``"cython"``: :mod:`sparse_ref._kernels`, typed Cython with OpenMP ``prange``;
- ``"reference"``: :mod:`sparse_ref.reference`, readable Python, the same names.

A backend is checked against the interface when it is first chosen or first used: every
module imports, every function is there, with these parameters. So a kernel package with a
missing function or a parameter out of order is refused by name before any op calls it
(the base on which a course's own kernels plug in).

The choice starts from the ``SPARSE_REF_BACKEND`` environment variable ("cython" when it
is unset) and changes with :func:`use_backend`, a plain call or a context manager that
restores the previous choice on exit. Threads, as in torch's grad mode: the choice is
context-local (a ``contextvars.ContextVar``: this thread, or this asyncio task) over the
process default, so one thread's switch never changes another thread's kernels.

Layer 0: this module imports nothing of the package; the array-level ops (``_formats``,
``_products``) ask it for a module with :func:`kernel_module`.
"""

import contextvars
import functools
import importlib
import importlib.machinery
import inspect
import os
import sys
import threading
import types
import warnings

import numpy as np

# module -> function -> its parameters, in order (each ends with n_threads=1). The contract
# of each function (inputs, outputs, preconditions, accumulation order) is the docstring
# the reference and the Cython twin share.
INTERFACE = {
    "coalesce": {
        "coalesce": ("a_row", "a_col", "a_val", "nrows", "out_crow", "out_col", "out_val", "out_pos",
                     "n_threads"),
    },
    "convert": {
        "coo_to_csr": ("a_row", "nrows", "out_crow", "n_threads"),
        "csr_to_coo": ("a_crow", "out_row", "n_threads"),
        "csr_transpose": ("a_crow", "a_col", "ncols", "out_crow", "out_col", "out_perm", "n_threads"),
        "round_to_float16": ("a_bits", "out_bits", "n_threads"),
        "round_to_bfloat16": ("a_bits", "out_bits", "n_threads"),
    },
    "sddmm": {
        "sddmm": ("p_row", "p_col", "x", "y", "out", "n_threads"),
    },
    "spgemm": {
        "spgemm_bounds": ("a_crow", "a_col", "b_crow", "out_flops", "out_longest", "n_threads"),
        "spgemm_symbolic": ("a_crow", "a_col", "b_crow", "b_col", "ncols", "out_crow", "n_threads"),
        "spgemm_numeric": ("a_crow", "a_col", "a_val", "b_crow", "b_col", "b_val", "ncols", "crow",
                           "out_col", "out_val", "n_threads"),
        "spgemm_onepass": ("a_crow", "a_col", "a_val", "b_crow", "b_col", "b_val", "ncols", "out_crow",
                           "out_col", "out_val", "n_threads"),
        "spgemm_masked": ("p_row", "p_col", "x_crow", "x_col", "x_val", "y_crow", "y_col", "y_val", "out",
                          "n_threads"),
    },
    "spmm": {
        "spmm": ("a_crow", "a_col", "a_val", "b", "out", "n_threads"),
        "spmm_reduce": ("a_crow", "a_col", "a_val", "b", "reduce", "out", "out_arg", "n_threads"),
        "spmv": ("a_crow", "a_col", "a_val", "b", "out", "n_threads"),
    },
}


# Kernels a backend may leave out, "module.function": the ops then reach the same result
# another way, on the backend's own kernels (SpGEMM without spgemm_onepass: its two passes,
# spgemm_symbolic then spgemm_numeric; a product with one column without spmv: spmm, with
# int64 columns). Nothing is taken from a fallback for them.
OPTIONAL = ("spgemm.spgemm_onepass", "spmm.spmv")


class BackendError(ImportError):
    """A backend that cannot run: a kernel module that does not import, or one that does
    not implement :data:`INTERFACE` (a function missing, parameters that differ)."""


class KernelOutputError(RuntimeError):
    """A registered backend's kernel wrote an output that breaks the structure the other
    kernels rely on (row pointers that go down, a column out of range, a row's columns out
    of order): refused before any tensor keeps it."""


def _first_bad(ok: np.ndarray) -> int:
    return int(np.flatnonzero(~ok)[0])


def _row_pointers(where: str, crow: np.ndarray, nrows: int | None = None, total: int | None = None,
                  at_most: int | None = None) -> None:
    """``crow`` must be row pointers: 0 first, never going down, ending at ``total`` (or
    at most ``at_most``)."""
    if crow.shape[0] == 0:
        return
    if crow[0] != 0:
        raise KernelOutputError(f"{where}[0] = {crow[0]}, not 0: row pointers start at 0")
    steps = np.diff(crow)
    if steps.shape[0] and steps.min() < 0:
        i = _first_bad(steps >= 0)
        raise KernelOutputError(f"{where}[{i + 1}] = {crow[i + 1]} < {where}[{i}] = {crow[i]}: row pointers never "
                                "go down (an entry left unwritten?)")
    if total is not None and crow[-1] != total:
        raise KernelOutputError(f"{where}[-1] = {crow[-1]}, not {total}: the last row pointer is the number of "
                                "entries (an entry left unwritten, or a row counted twice?)")
    if at_most is not None and crow[-1] > at_most:
        raise KernelOutputError(f"{where}[-1] = {crow[-1]}, more than the {at_most} entries there is room for")


def _in_range(where: str, a: np.ndarray, low: int, high: int) -> None:
    """Every element of ``a`` in low <= a < high."""
    if a.shape[0] and (a.min() < low or a.max() >= high):
        i = _first_bad((a >= low) & (a < high))
        raise KernelOutputError(f"{where}[{i}] = {a[i]}, outside {low}..{high - 1} (an entry left unwritten?)")


def _ascending_rows(where: str, crow: np.ndarray, col: np.ndarray) -> None:
    """Within each row of ``crow``, the columns strictly ascending (sorted, no duplicate)."""
    nnz = int(crow[-1]) if crow.shape[0] else 0
    if nnz < 2:
        return
    col = col[:nnz]
    same_row = np.ones(nnz - 1, dtype=bool)  # (q, q + 1) in one row
    starts = crow[1:-1]
    starts = starts[(starts > 0) & (starts < nnz)]
    same_row[starts - 1] = False
    bad = same_row & (col[1:] <= col[:-1])
    if bad.any():
        q = int(np.flatnonzero(bad)[0])
        row = int(np.searchsorted(crow, q, side="right")) - 1
        raise KernelOutputError(f"{where}[{q + 1}] = {col[q + 1]} after {col[q]} in row {row}: a row's columns "
                                "are ascending, each once")


def _check_outputs(module: str, function: str, a: dict) -> None:
    """The structure of a registered kernel's outputs that later kernels (the Cython ones
    too, which trust it) rely on: row pointers, columns in range and in order, positions
    in range. Values are the checker's business (sparse_ref.course.check), not this."""
    if function == "coo_to_csr":  # (fixed by the sorted rows: compared whole)
        _row_pointers("out_crow", a["out_crow"], total=a["a_row"].shape[0])
        want = np.searchsorted(a["a_row"], np.arange(a["out_crow"].shape[0], dtype=np.int64), side="left")
        if not np.array_equal(a["out_crow"], want):
            i = _first_bad(a["out_crow"] == want)
            raise KernelOutputError(f"out_crow[{i}] = {a['out_crow'][i]}, but {want[i]} entries lie in the rows "
                                    f"before row {i}")
    elif function == "csr_to_coo":  # (the rows are fixed by the row pointers: compared whole)
        crow = a["a_crow"]
        row = a["out_row"][:int(crow[-1]) if crow.shape[0] else 0]  # (the caller's array may be longer)
        want = np.repeat(np.arange(max(crow.shape[0] - 1, 0), dtype=np.int64), np.diff(crow))
        if not np.array_equal(row, want):
            q = _first_bad(row == want)
            raise KernelOutputError(f"out_row[{q}] = {row[q]}, where the row pointers put entry {q} in row {want[q]}")
    elif function == "csr_transpose":
        nnz = a["a_col"].shape[0]
        _row_pointers("out_crow", a["out_crow"], total=nnz)
        _in_range("out_col", a["out_col"], 0, max(a["a_crow"].shape[0] - 1, 0))
        _in_range("out_perm", a["out_perm"], 0, nnz)
        _ascending_rows("out_col", a["out_crow"], a["out_col"])
        # entry q of the transpose is entry out_perm[q] of A: its row is that entry's column
        # and its column that entry's row (so out_perm is a permutation, the right one)
        perm = a["out_perm"]
        a_rows = np.repeat(np.arange(a["a_crow"].shape[0] - 1, dtype=np.int64), np.diff(a["a_crow"]))
        t_rows = np.repeat(np.arange(a["out_crow"].shape[0] - 1, dtype=np.int64), np.diff(a["out_crow"]))
        ok = (a["a_col"][perm] == t_rows) & (a_rows[perm] == a["out_col"])
        if not ok.all():
            q = _first_bad(ok)
            raise KernelOutputError(f"out_perm[{q}] = {perm[q]}: entry {q} of the transpose, at ({t_rows[q]}, "
                                    f"{a['out_col'][q]}), is not entry {perm[q]} of A, at ({a_rows[perm[q]]}, "
                                    f"{a['a_col'][perm[q]]})")
    elif function == "coalesce":
        _row_pointers("out_crow", a["out_crow"], at_most=a["out_col"].shape[0])
        nnz = int(a["out_crow"][-1]) if a["out_crow"].shape[0] else 0
        high = int(a["a_col"].max()) + 1 if a["a_col"].shape[0] else 0
        _in_range("out_col", a["out_col"][:nnz], 0, high)
        _ascending_rows("out_col", a["out_crow"], a["out_col"])
        rows = np.repeat(np.arange(a["out_crow"].shape[0] - 1, dtype=np.int64), np.diff(a["out_crow"]))
        if a["out_pos"].shape[0]:  # each stored entry's place: the entry of its own row and column
            pos = a["out_pos"]
            _in_range("out_pos", pos, 0, nnz)
            ok = (a["out_col"][:nnz][pos] == a["a_col"]) & (rows[pos] == a["a_row"])
            if not ok.all():
                p = _first_bad(ok)
                raise KernelOutputError(f"out_pos[{p}] = {pos[p]}, an entry of row {rows[pos[p]]} and column "
                                        f"{a['out_col'][pos[p]]}, where entry {p} is ({a['a_row'][p]}, {a['a_col'][p]})")
            hit = np.zeros(nnz, dtype=bool)
            hit[pos] = True
        else:  # (no places asked for: the output's entries compared with the input's, sorted)
            order = np.lexsort((a["a_col"], a["a_row"]))
            r, c = a["a_row"][order], a["a_col"][order]
            first = np.ones(r.shape[0], dtype=bool)
            first[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
            r, c = r[first], c[first]
            m = min(nnz, r.shape[0])
            hit = np.zeros(nnz, dtype=bool)
            hit[:m] = (rows[:m] == r[:m]) & (a["out_col"][:m] == c[:m])
            if nnz < r.shape[0] and hit.all():
                raise KernelOutputError(f"out_crow[-1] = {nnz}, fewer entries than the input's "
                                        f"{r.shape[0]} distinct (row, column) pairs")
        if not hit.all():
            q = _first_bad(hit)
            raise KernelOutputError(f"out_col[{q}] = {a['out_col'][q]} in row {rows[q]}: an entry that no entry of "
                                    "the input has (or out of place)")
    elif function == "spgemm_bounds":  # (the chunks and the memory check rest on them: compared whole)
        lengths = np.diff(a["b_crow"])[a["a_col"]]
        ends = np.concatenate(([0], np.cumsum(lengths)))
        flops = ends[a["a_crow"][1:]] - ends[a["a_crow"][:-1]]
        longest = np.zeros_like(flops)
        rows = np.flatnonzero(np.diff(a["a_crow"]))
        if rows.shape[0]:
            longest[rows] = np.maximum.reduceat(lengths, a["a_crow"][rows])
        for name, want in (("out_flops", flops), ("out_longest", longest)):
            if not np.array_equal(a[name], want):
                i = _first_bad(a[name] == want)
                raise KernelOutputError(f"{name}[{i}] = {a[name][i]}, not {want[i]} (row {i} of A reaches rows of B "
                                        f"of {lengths[a['a_crow'][i]:a['a_crow'][i + 1]].tolist()} entries)")
    elif function == "spgemm_symbolic":
        _row_pointers("out_crow", a["out_crow"])
    elif function == "spgemm_numeric":
        crow = a["crow"] - a["crow"][0] if a["crow"].shape[0] else a["crow"]  # (a chunk of rows)
        nnz = int(crow[-1]) if crow.shape[0] else 0
        out_col = a["out_col"][a["crow"][0]:a["crow"][0] + nnz] if a["crow"].shape[0] else a["out_col"][:0]
        try:
            _in_range("out_col", out_col, 0, a["ncols"])
            _ascending_rows("out_col", crow, out_col)
        except KernelOutputError as exc:  # (the numeric pass fills what the symbolic pass counted)
            raise KernelOutputError(f"{exc}; or spgemm_symbolic counted more entries in that row than the "
                                    "row's distinct columns") from None
    elif function == "spgemm_onepass":  # C: the first out_crow[-1] entries, within the arrays
        _row_pointers("out_crow", a["out_crow"], at_most=min(a["out_col"].shape[0], a["out_val"].shape[0]))
        nnz = int(a["out_crow"][-1]) if a["out_crow"].shape[0] else 0
        _in_range("out_col", a["out_col"][:nnz], 0, a["ncols"])
        _ascending_rows("out_col", a["out_crow"], a["out_col"][:nnz])
    elif function == "spmm_reduce" and a["out_arg"].size:  # a winner of its own row, or -1 for an empty row
        arg, crow = a["out_arg"], a["a_crow"]
        lo, hi = crow[:-1, None], crow[1:, None]
        ok = ((arg >= lo) & (arg < hi)) | ((arg == -1) & (lo == hi))
        if not ok.all():
            i, j = (int(x) for x in np.argwhere(~ok)[0])
            raise KernelOutputError(f"out_arg[{i}, {j}] = {arg[i, j]}, not an entry of row {i} (its entries are "
                                    f"{crow[i]}..{crow[i + 1] - 1}; -1 for an empty row)")


def _is_output(name: str) -> bool:
    return name == "out" or name.startswith("out_")


def _unwritten(arr: np.ndarray) -> None:
    """Fill a scratch output with what no kernel computes here: -1 for integers (never a
    row, column or position), NaN for values, so an entry a kernel leaves unwritten shows
    the same way on every run (np.empty's leftovers passed the checks in some runs)."""
    if arr.dtype.kind in "iu":
        arr.fill(-1 if arr.dtype.kind == "i" else np.iinfo(arr.dtype).max)
    elif arr.dtype.kind in "fcV":
        arr.fill(np.nan)
    else:
        arr.fill(0)


def _guarded(backend: str, module: str, function: str, f):
    """``f`` (a registered backend's kernel) on arrays of its own: each input a private
    read-only copy (a kernel that writes one is refused by name; one that makes it
    writable again changes only its copy, since the checks read the caller's arrays),
    each output a scratch array filled with -1 or NaN. After the call every scratch array
    must still be the array it was given (dtype, shape, strides, memory); then a copy of
    each is taken, checked (``_check_outputs``) and copied into the real output -- for
    the numeric pass of a product in chunks, the chunk's part only. So nothing the kernel
    keeps (a reference to an output, a thread that writes later) reaches a tensor, and an
    ndarray trick (``out.dtype = ...``, ``out.resize(...)``) is refused, not trusted.
    ``__wrapped__`` is ``f`` itself."""
    params = INTERFACE[module][function]

    @functools.wraps(f)
    def run(*args):
        given, scratch, layout = [], {}, {}
        real = dict(zip(params, args))
        crow = real.get("crow") if function == "spgemm_numeric" else None
        # (the numeric pass of a product in chunks writes its chunk's rows only: the rest
        # keeps what the chunks before wrote, and only the chunk's part is taken back)
        part = slice(int(crow[0]), int(crow[-1])) if crow is not None and crow.shape[0] else slice(None)
        for name, value in zip(params, args):
            if isinstance(value, np.ndarray):
                copy = np.array(value, copy=True, order="K")
                if _is_output(name):
                    _unwritten(copy[part] if copy.ndim else copy)
                    scratch[name] = copy
                    layout[name] = (copy.dtype, copy.shape, copy.strides, copy.ctypes.data)
                else:
                    copy.flags.writeable = False  # (its own copy: writing it on harms no one)
                value = copy
            given.append(value)
        try:
            result = f(*given)
        except ValueError as exc:
            if "read-only" not in str(exc):
                raise
            raise KernelOutputError(f"backend {backend!r}: {module}.{function} wrote one of its inputs ({exc}): "
                                    "they are read-only copies; a kernel writes its out_ arrays only") from exc
        taken = {}
        try:
            for name, copy in scratch.items():
                if (copy.dtype, copy.shape, copy.strides, copy.ctypes.data) != layout[name]:
                    raise KernelOutputError(f"{name} is not the array it was given (its dtype, shape or memory "
                                            "changed): write into it, element by element or with out[...] = ...")
                # checked and taken back from a copy of our own: a thread the kernel left
                # running may still write its array, or make its input copies writable
                # again, so the inputs checked against are the caller's, which it never saw
                taken[name] = np.array(copy, copy=True)
            _check_outputs(module, function, {**real, **taken})
        except KernelOutputError as exc:
            raise KernelOutputError(f"backend {backend!r}: {module}.{function} wrote {exc}") from None
        for name, copy in taken.items():
            np.copyto(real[name][part] if copy.ndim else real[name], copy[part] if copy.ndim else copy)
        return result
    return run


class Backend:
    """A named package of kernel modules that implements :data:`INTERFACE`.

    ``module(name)`` imports a kernel module on first use and keeps it; ``check()``
    verifies the whole interface once and raises :class:`BackendError` naming every
    problem. With a ``fallback`` backend, a kernel module or function the package lacks is
    taken from the fallback instead (listed in ``fallbacks``); one that is there with
    other parameters is still refused.

    Examples
    --------
    >>> from sparse_ref._backend import Backend
    >>> ref = Backend("reference", "sparse_ref.reference")
    >>> ref.check()
    >>> ref.module("spmm").spmm.__name__
    'spmm'
    """

    def __init__(self, name: str, package: str, hint: str = "", fallback: "Backend | None" = None,
                 guarded: bool = False):
        self.name = name
        self.package = package
        self.fallback = fallback
        self.guarded = guarded  # its kernels' outputs are checked (_guarded): a registered backend
        self.fallbacks = ()  # "module.function" names taken from the fallback (after check())
        self._hint = hint  # what to do when a module does not import
        self._modules = {}
        self._checked = False
        self._lock = threading.Lock()

    def module(self, name: str):
        """The kernel module ``name`` ("coalesce", "spmm", ...) of this backend."""
        module = self._modules.get(name)
        if module is None:
            self.check()
            module = self._modules[name]
        return module

    def check(self) -> None:
        """Import every kernel module and check it against :data:`INTERFACE` (once)."""
        if self._checked:
            return
        with self._lock:
            if self._checked:
                return
            modules = {}
            for name in INTERFACE:
                try:
                    modules[name] = importlib.import_module(f"{self.package}.{name}")
                except ModuleNotFoundError as exc:
                    if self.fallback is None or exc.name != f"{self.package}.{name}":
                        raise BackendError(f"backend {self.name!r}: cannot import {self.package}.{name} "
                                           f"({exc}){self._hint}") from exc
                    modules[name] = None  # the whole module comes from the fallback
                except ImportError as exc:
                    raise BackendError(f"backend {self.name!r}: cannot import {self.package}.{name} "
                                       f"({exc}){self._hint}") from exc
                except Exception as exc:  # a module that fails as it runs: a SyntaxError, a NameError
                    raise BackendError(f"backend {self.name!r}: {self.package}.{name} fails as it is imported: "
                                       f"{type(exc).__name__}: {exc}") from exc
            problems = [p for name, module in modules.items() if module is not None
                        for p in interface_problems(module, name, missing_ok=self.fallback is not None)]
            if problems:
                raise BackendError(f"backend {self.name!r} does not implement the kernel interface: "
                                   + "; ".join(problems))
            if self.fallback is not None:
                modules, self.fallbacks = self._with_fallbacks(modules)
            self._modules.update(modules)
            self._checked = True

    def _with_fallbacks(self, modules):
        """Each kernel module as a namespace of this package's functions, the missing ones
        taken from the fallback; and the names of those."""
        merged, taken = {}, []
        for name, functions in INTERFACE.items():
            own = modules[name]
            table = {}
            for fname in functions:
                f = getattr(own, fname, None) if own is not None else None
                if f is None and f"{name}.{fname}" in OPTIONAL:
                    continue  # the ops take the other way, on this package's kernels
                if f is None:
                    f = getattr(self.fallback.module(name), fname)
                    taken.append(f"{name}.{fname}")
                if self.guarded:  # the fallback's too: it may be handed the package's outputs
                    f = _guarded(self.name, name, fname, f)
                table[fname] = f
            merged[name] = types.SimpleNamespace(__name__=f"{self.package}.{name}", **table)
        return merged, tuple(taken)

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, {self.package!r})"


def interface_problems(module, name: str, missing_ok: bool = False) -> list:
    """What keeps ``module`` from being the kernel module ``name`` of :data:`INTERFACE`
    (with ``missing_ok``, a missing function is not a problem: it falls back; an
    :data:`OPTIONAL` one never is)."""
    problems = []
    for fname, params in INTERFACE[name].items():
        f = getattr(module, fname, None)
        if f is None and (missing_ok or f"{name}.{fname}" in OPTIONAL):
            continue
        if not callable(f):
            problems.append(f"{name}.{fname} is missing")
            continue
        try:
            got = tuple(inspect.signature(f).parameters)
        except (TypeError, ValueError):
            problems.append(f"{name}.{fname} has no inspectable signature")
            continue
        if got != params:
            problems.append(f"{name}.{fname} takes ({', '.join(got)}), the interface says ({', '.join(params)})")
            continue
        by_keyword = [p.name for p in inspect.signature(f).parameters.values()
                      if p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD]
        if by_keyword:  # the ops pass every argument by position
            problems.append(f"{name}.{fname} takes {', '.join(by_keyword)} by keyword only (or by position "
                            "only); the ops pass each argument by position, and the checker by name")
    return problems


BACKENDS = {
    "cython": Backend("cython", "sparse_ref._kernels", hint=(
        "; the Cython kernels of sparse_ref are not built: install the package (pip install .) "
        'or build in place (python setup.py build_ext --inplace), or use sr.use_backend("reference")')),
    "reference": Backend("reference", "sparse_ref.reference"),
}


BUILT_IN = ("cython", "reference")


def register_backend(name: str, package) -> Backend:
    """Make a package of kernels a backend: ``sr.use_backend(name)`` then runs every op,
    forward and backward, on it.

    ``package`` is a package (or its import name) whose modules and functions have the
    names and parameters of :mod:`sparse_ref.reference` (``coalesce.coalesce``,
    ``spmm.spmm``, ...). What it lacks -- a whole module or one function -- falls back to
    the reference, and the fallback is visible: a warning names it, and the returned
    backend lists it in ``fallbacks``; an optional kernel it lacks (:data:`OPTIONAL`,
    ``spgemm.spgemm_onepass``, ``spmm.spmv``) is not taken from the reference: the ops then run on its
    other kernels. A function with other parameters is refused. A
    name may be registered again (say, after the student edited the package: its Python
    files are imported anew; a compiled module, such as a built Cython kernel, stays the
    one first imported: check a rebuilt one in a new Python process, as
    ``python -m sparse_ref check`` does).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> mine = sr.register_backend("mine", "sparse_ref.reference")   # the reference itself
    >>> mine.fallbacks
    ()
    >>> s = sr.sparse_coo_tensor([[1, 0], [0, 1]], [1., 2.], (2, 2))
    >>> with sr.use_backend("mine"):
    ...     s.coalesce().indices().tolist()
    [[0, 1], [1, 0]]
    """
    if not isinstance(name, str) or not name or name in BUILT_IN:
        raise ValueError(f"register_backend: name must be a new non-empty string (not {', '.join(BUILT_IN)}), "
                         f"got {name!r}")
    if isinstance(package, types.ModuleType):
        if not hasattr(package, "__path__"):
            raise TypeError(f"register_backend: {package.__name__} is a module, not a package: put each kernel "
                            "module (coalesce.py, spmm.py, ...) in a package folder")
        package = package.__name__
    if not isinstance(package, str):
        raise TypeError(f"register_backend: package must be a package or its import name, got "
                        f"{type(package).__name__}")
    if name in BACKENDS and BACKENDS[name].package == package:  # again: the edited files anew
        forget_imports(package)
    backend = Backend(name, package, fallback=BACKENDS["reference"], guarded=True)
    backend.check()
    BACKENDS[name] = backend
    _REGISTERED.add(package)
    if backend.fallbacks:
        warnings.warn(f"backend {name!r}: {', '.join(backend.fallbacks)} not found in {package}; "
                      "the reference runs in their place", UserWarning, stacklevel=2)
    return backend


_REGISTERED = set()  # the packages register_backend has taken as backends, by import name


def forget_imports(package: str) -> None:
    """Let the next import of ``package`` read its files anew. Only for a package that
    was registered as a backend before and is Python files alone: never one of this
    library, nor one with a compiled module loaded (such a module cannot be loaded twice in
    a process -- NumPy refuses, torch crashes -- and would stay the one first loaded), nor
    any other package a process may have imported (``numpy``, a name mistyped)."""
    if package.split(".")[0] == __name__.split(".")[0] or package not in _REGISTERED:
        return
    loaded = [m for m in sys.modules if m == package or m.startswith(package + ".")]
    if any(isinstance(getattr(sys.modules[m], "__spec__", None), importlib.machinery.ModuleSpec)
           and isinstance(sys.modules[m].__spec__.loader, importlib.machinery.ExtensionFileLoader)
           for m in loaded):
        return
    for module in loaded:
        del sys.modules[module]
    importlib.invalidate_caches()


def _check(name) -> Backend:
    backend = BACKENDS.get(name) if isinstance(name, str) else None
    if backend is None:
        raise ValueError(f"unknown backend {name!r}: expected one of {', '.join(BACKENDS)} "
                         "(sr.register_backend adds one)")
    return backend


_default = _check(os.environ.get("SPARSE_REF_BACKEND", "cython") or "cython").name
_context = contextvars.ContextVar("sparse_ref_backend", default=None)  # set by use_backend()


def _enter(name: str):
    """Switch this context to ``name`` (already checked) for a moment; returns the token
    for ``_context.reset`` (None when nothing changed). The engine runs each backward on
    its forward's backend with this."""
    if (_context.get() or _default) == name:
        return None
    return _context.set(name)


def trusted() -> bool:
    """Whether the current backend is built in: then the forms a tensor derives from its
    arrays (coalesced, CSR, transpose) may be kept on it and reused under either built-in
    backend, whose kernels agree bit for bit. A registered backend's are made afresh on
    every op and never kept: its kernels run on every op, and what they made does not
    outlive ``use_backend``."""
    name = _context.get()
    return name is None or name in BUILT_IN  # (the process default is always built in)


def get_backend() -> str:
    """The backend the ops use now: ``"cython"`` or ``"reference"``.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> with sr.use_backend("reference"):
    ...     sr.get_backend()
    'reference'
    """
    return _context.get() or _default


class use_backend:
    """Switch the kernels to ``"reference"`` or ``"cython"`` in the current thread.

    Used with ``with`` it switches back when the block ends; called plainly it switches
    the current thread (context) until the next call. Either way other threads keep their
    own choice, which starts at the process default (``SPARSE_REF_BACKEND``, else
    "cython") -- as torch's ``set_grad_enabled`` is per thread. A name that is unknown, or
    a backend that cannot be imported or does not implement the kernel interface, raises
    and changes nothing.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> s = sr.sparse_coo_tensor([[1, 0], [0, 1]], [1., 2.], (2, 2))
    >>> with sr.use_backend("reference"):   # the readable Python kernels
    ...     slow = s.coalesce()
    >>> slow.values().tolist() == s.coalesce().values().tolist()
    True
    """

    def __init__(self, name: str):
        _check(name).check()  # fail now, before anything has changed
        self._token = _context.set(name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _context.reset(self._token)
        return False


def kernel_module(name: str, backend: str | None = None):
    """The kernel module ``name`` (e.g. "coalesce") of the given or the current backend."""
    return _check(backend or _context.get() or _default).module(name)

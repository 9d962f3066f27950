"""Pictures and step-by-step tables for teaching: :func:`spy` draws where a matrix stores
its entries, :func:`trace` records what a readable kernel does at each line.

Layer 5: it uses the tensor classes (layer 2) and the reference kernels (layer 0) only.
matplotlib is optional: :func:`spy` imports it when it is called, and :func:`trace`
never needs it.
"""

from __future__ import annotations

import inspect
import sys
import types

import numpy as np

from sparse_ref import _dtypes, _validate
from sparse_ref._tensor import SparseTensor, Tensor

__all__ = ["Trace", "spy", "trace"]

# -- spy ------------------------------------------------------------------------------------


def _stored_entries(t):
    """``(shape, rows, cols, values, explicit)`` of what ``t`` stores: every stored entry of
    a sparse tensor as stored (``explicit=True``: a stored 0 is an explicit zero), the
    nonzero elements of a dense one."""
    if isinstance(t, SparseTensor):  # COO or CSR
        _validate.sparse_layout(t, "t", "spy")
        t = t._now()  # (its arrays of one state, if another thread changes it in place)
        idx = np.asarray(t._idx)
        return tuple(t.shape), idx[0], idx[1], np.asarray(t._val), True
    data = t._data if isinstance(t, Tensor) else np.asarray(t)
    if data.ndim != 2:
        raise ValueError(f"spy: expected a 2-D matrix, got a tensor of shape {data.shape}")
    rows, cols = np.nonzero(data)  # NaN is nonzero, as in matplotlib's spy
    return data.shape, rows, cols, data[rows, cols], False


def spy(t, ax=None, *, markersize=None, values=False, color="C0", zero_color="C3"):
    """Plot where a matrix stores its entries, like :func:`matplotlib.pyplot.spy`.

    A sparse tensor (COO or CSR) shows every stored entry, as stored (call
    ``.coalesce()`` first to see the canonical form): nonzero values as filled squares,
    **explicit zeros** (stored entries whose value is 0) as hollow circles of another
    colour. A dense tensor (or a NumPy array) shows its nonzero elements.

    Parameters
    ----------
    t : SparseTensor, SparseCsrTensor, Tensor or numpy.ndarray
        A 2-D matrix.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure's axes when omitted.
    markersize : float, optional
        In points; by default the markers nearly fill a cell of the matrix.
    values : bool
        Also write each stored value in its cell (for small matrices).
    color, zero_color
        Colours of the stored nonzero entries and of the explicit zeros.

    Returns
    -------
    matplotlib.axes.Axes
        The axes. Its lines labelled ``"stored"`` (or ``"nonzero"`` for a dense matrix)
        and ``"explicit zero"`` hold the points: x is the column, y the row.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> s = sr.sparse_coo_tensor([[0, 1, 2], [2, 0, 1]], [1., 0., 3.], (3, 3))
    >>> ax = sr.viz.spy(s)
    >>> [(line.get_label(), line.get_xdata().tolist(), line.get_ydata().tolist()) for line in ax.lines]
    [('stored', [2, 1], [0, 2]), ('explicit zero', [0], [1])]
    """
    (nrows, ncols), rows, cols, vals, explicit = _stored_entries(t)
    if ax is None:
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:  # matplotlib is an optional dependency
            raise ImportError("sr.viz.spy draws with matplotlib: pip install matplotlib") from exc
        _, ax = plt.subplots(figsize=(min(6.0, 1.5 + 0.45 * ncols), min(6.0, 1.2 + 0.45 * nrows)))
    if markersize is None:  # a marker nearly as large as one cell, within [2, 28] points
        fig = ax.figure
        width, height = ax.get_position().width * fig.get_figwidth(), ax.get_position().height * fig.get_figheight()
        cell = 72 * min(width / max(ncols, 1), height / max(nrows, 1))
        markersize = float(np.clip(0.7 * cell, 2, 28))
    zero = (vals == 0) if explicit else np.zeros(len(vals), dtype=bool)
    ax.plot(cols[~zero], rows[~zero], linestyle="none", marker="s", markersize=markersize, color=color,
            label="stored" if explicit else "nonzero")
    if zero.any():
        ax.plot(cols[zero], rows[zero], linestyle="none", marker="o", markersize=0.8 * markersize,
                markerfacecolor="none", markeredgecolor=zero_color, markeredgewidth=2, label="explicit zero")
    if values:
        for r, c, v in zip(rows, cols, vals):
            text = f"{v.item():g}" if np.isrealobj(v) else f"{complex(v):g}"
            ax.annotate(text, (c, r), ha="center", va="center", fontsize=8,
                        color=zero_color if v == 0 else "white")
    ax.set_xlim(-0.5, ncols - 0.5)
    ax.set_ylim(nrows - 0.5, -0.5)  # row 0 on top, as a matrix is written
    ax.set_aspect("equal")
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    from matplotlib.ticker import MaxNLocator  # matplotlib is there: ax is its object

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return ax


# -- trace ----------------------------------------------------------------------------------

_REFERENCE = "sparse_ref.reference"


def _snapshot(value):
    """A copy of a local variable's value that later steps cannot change, or None to
    leave it out (functions, modules, classes and other machinery)."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, complex, str, slice, range)):
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_snapshot(v) for v in value)
    if isinstance(value, dict):
        return {_snapshot(k): _snapshot(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return type(value)(_snapshot(v) for v in value)
    return None


def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return (a.shape == b.shape and a.dtype == b.dtype
                and np.array_equal(a, b, equal_nan=_dtypes.kind(a.dtype) in "fc"))
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # containers holding arrays: compare their reprs
        return repr(a) == repr(b)


def _short(value, width=48) -> str:
    if isinstance(value, np.ndarray):
        text = np.array2string(value, separator=", ", threshold=12, max_line_width=10_000)
    else:
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


class Trace(list):
    """The steps of one traced kernel call: a list of dicts, one per executed line.

    Each step holds ``"step"`` (its number), ``"function"`` (the kernel, or a helper of
    its module that it called), ``"line"`` (the line number in the module's file),
    ``"code"`` (that line's source) and the function's local variables **after** the line
    ran, copied (arrays too), so later steps cannot change them. ``"changed"`` lists the
    variables the line set or changed; a step that ends a call also holds ``"return"``,
    the value returned. ``str()`` prints one row per step with those changes.

    Attributes
    ----------
    kernel : str
        The traced kernel, ``module.function``.
    truncated : bool
        True when the kernel ran more steps than ``max_steps``: the rest ran unrecorded.
    result
        What the kernel returned (the reference kernels write into their outputs and
        return None).
    """

    kernel = ""
    truncated = False
    result = None

    def values(self, name: str) -> list:
        """The value of the local variable ``name`` at every step that has it."""
        return [step[name] for step in self if name in step]

    def __str__(self) -> str:
        lines = [f"trace of {self.kernel}: {len(self)} steps"]
        lines.append(f"{'step':>4}  {'line':<18} {'code':<52} changed")
        for step in self:
            where = f"{step['function']}:{step['line']}"
            code = step["code"] if len(step["code"]) <= 52 else step["code"][:49] + "..."
            changed = ", ".join(f"{name}={_short(step[name])}" for name in step["changed"])
            lines.append(f"{step['step']:>4}  {where:<18} {code:<52} {changed}".rstrip())
        if self.truncated:
            lines.append(f"... stopped recording after {len(self)} steps (max_steps); the kernel ran to the end")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Trace of {self.kernel}: {len(self)} steps{', truncated' if self.truncated else ''}>"


_RESERVED = ("step", "function", "line", "code", "changed")  # a local of that name gets a "_"


class _Tracer:
    """The ``sys.settrace`` hook: follows the frames of functions defined in the kernel's
    own module, and records their locals after each line."""

    def __init__(self, filename: str, max_steps: int, steps: Trace):
        self.filename = filename
        self.max_steps = max_steps
        self.steps = steps
        self.pending = {}  # frame -> the line it is executing (recorded at its next event)
        self.previous = {}  # frame -> the locals recorded at its last step

    def __call__(self, frame, event, arg):  # the global hook: called for every new frame
        if event != "call" or self.steps.truncated:
            return None
        code = frame.f_code
        # the kernel's module only (not _arith, NumPy, ...); no comprehensions or lambdas
        if code.co_filename != self.filename or code.co_name.startswith("<"):
            return None
        self.previous[frame] = {}
        return self.local

    def local(self, frame, event, arg):
        if frame in self.pending:
            self.record(frame, self.pending.pop(frame), event, arg)
        if self.steps.truncated:
            return None
        if event == "line":
            self.pending[frame] = frame.f_lineno
        elif event == "return":
            self.previous.pop(frame, None)
        return self.local

    def record(self, frame, lineno: int, event: str, arg) -> None:
        if len(self.steps) >= self.max_steps:
            self.steps.truncated = True
            return
        now = {}
        for name, value in frame.f_locals.items():
            copy = _snapshot(value)
            if copy is not None or value is None:
                now[name + "_" if name in _RESERVED else name] = copy
        before = self.previous.get(frame, {})
        changed = [name for name, value in now.items() if name not in before or not _same(value, before[name])]
        if not before:  # a new call: show its scalar arguments, not the (unchanged) input arrays
            changed = [name for name in changed if not isinstance(now[name], (np.ndarray, list, dict, set))
                       or name not in frame.f_code.co_varnames[: frame.f_code.co_argcount]]
        self.previous[frame] = now
        step = {"step": len(self.steps) + 1, "function": frame.f_code.co_name, "line": lineno,
                "code": _source_line(frame.f_code.co_filename, lineno), "changed": changed}
        step.update(now)
        if event == "return":  # the line was a return statement (or the function's last)
            step["return"] = _snapshot(arg)
            step["changed"].append("return")
        self.steps.append(step)


_LINES = {}


def _source_line(filename: str, lineno: int) -> str:
    if filename not in _LINES:
        with open(filename, encoding="utf-8") as f:
            _LINES[filename] = f.read().splitlines()
    lines = _LINES[filename]
    return lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""


def trace(kernel, *args, max_steps: int = 2000, **kwargs) -> Trace:
    """Run a **reference** kernel on ``args`` and record each line it executes.

    The kernel runs as it is (no copy of its code, nothing changed in it): a
    :func:`sys.settrace` hook watches the frames of the kernel and of the helpers of its
    own module, and after every line copies their local variables -- the loop indices
    (``i``, ``q``, ``k``, ``j``), the accumulators, the outputs being written. Use a small
    input: every step copies the locals.

    Parameters
    ----------
    kernel : function
        A function of :mod:`sparse_ref.reference` (``sparse_ref.reference.spmm.spmm``,
        ``...coalesce.coalesce``, ...). A compiled kernel of ``sparse_ref._kernels`` has
        no Python lines to step through and is refused.
    *args, **kwargs
        The kernel's arguments, outputs included, as its docstring lists them.
    max_steps : int
        Stop recording after this many steps (the kernel still runs to the end, and the
        trace says it was cut).

    Returns
    -------
    Trace
        A list of dicts, one per executed line (see :class:`Trace`); ``str()`` prints it as
        a table.

    Examples
    --------
    >>> from sparse_ref.reference import spmm
    >>> a_crow, a_col, a_val = np.array([0, 2, 3]), np.array([0, 2, 1]), np.array([1., 2., 3.])
    >>> b = np.array([[1., 10.], [2., 20.], [3., 30.]])
    >>> out = np.zeros((2, 2))
    >>> steps = sr.viz.trace(spmm.spmm, a_crow, a_col, a_val, b, out)
    >>> steps.values("acc")[-1].tolist(), out.tolist()     # the last row's accumulator, the output
    ([6.0, 60.0], [[7.0, 70.0], [6.0, 60.0]])
    """
    function = inspect.unwrap(kernel) if callable(kernel) else kernel
    module = getattr(function, "__module__", None) or ""
    if not isinstance(function, types.FunctionType) or not (module == _REFERENCE or module.startswith(_REFERENCE + ".")):
        name = getattr(kernel, "__qualname__", None) or type(kernel).__name__
        where = f" from {module}" if module else ""
        hint = ""
        if module.startswith("sparse_ref._kernels."):
            hint = (f": it is compiled Cython, with no Python lines to step through; trace its readable "
                    f"twin sparse_ref.reference.{module.rsplit('.', 1)[1]}.{name} instead")
        raise TypeError(f"trace steps through the reference kernels of {_REFERENCE} only, got {name}{where}{hint}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}")
    steps = Trace()
    steps.kernel = f"{module}.{function.__qualname__}"
    tracer = _Tracer(function.__code__.co_filename, max_steps, steps)
    outer = sys.gettrace()  # a debugger's or coverage's hook: put back afterwards
    sys.settrace(tracer)
    try:
        steps.result = function(*args, **kwargs)
    finally:
        sys.settrace(outer)
    return steps

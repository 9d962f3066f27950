"""How tensors print (layer 2, beside the classes; torch's module has the same name).

The format follows torch's: ``tensor([1., 2.])``, four decimals when a value has a
fraction, ``dtype=`` only when it is not the default for its kind, then ``grad_fn`` or
``requires_grad``. The functions take any object with the tensor attributes they read,
so this module imports no tensor class.
"""

import numpy as np

from sparse_ref import _dtypes


LINEWIDTH = 80  # torch's PRINT_OPTS.linewidth
THRESHOLD, EDGEITEMS = 1000, 3  # more elements than this print as the first and last 3 of each dim
PRECISION = 4


def _printed(arr: np.ndarray) -> np.ndarray:
    """The elements that print: all of them, or, past THRESHOLD, the EDGEITEMS first and
    last along every dimension (what torch formats; widths come from these alone, so a
    large tensor prints in the time of a small one)."""
    if arr.size <= THRESHOLD:
        return arr
    picks = [np.r_[0:EDGEITEMS, n - EDGEITEMS:n] if n > 2 * EDGEITEMS else np.arange(n) for n in arr.shape]
    return arr[np.ix_(*picks)]


def _float_formatter(values: np.ndarray):
    """torch's ``_Formatter`` for real floats: whole numbers as ``7.``; scientific notation
    when the nonzero finite magnitudes span more than 1000x or pass 1e8 (or, with
    fractions, fall below 1e-4); else four decimals; every element padded to one width."""
    vals = values.astype(np.float64).ravel()
    nz = vals[np.isfinite(vals) & (vals != 0)]
    sci, whole, width = False, True, 1
    if nz.size:
        small, big = np.abs(nz).min(), np.abs(nz).max()
        whole = bool(np.all(nz == np.ceil(nz)))
        sci = big / small > 1000.0 or big > 1.0e8 or (not whole and small < 1.0e-4)
        if sci:
            width = max(len(f"{v:.{PRECISION}e}") for v in nz)
        elif whole:
            width = max(len(f"{v:.0f}") + 1 for v in nz)
        else:
            width = max(len(f"{v:.{PRECISION}f}") for v in nz)

    def text(x) -> str:
        x = float(x)
        if sci:
            out = f"{x:{width}.{PRECISION}e}"
        elif whole:
            out = f"{x:.0f}" + ("." if np.isfinite(x) else "")
        else:
            out = f"{x:.{PRECISION}f}"
        return out.rjust(width)

    return text


def format_array(arr: np.ndarray, prefix: str) -> str:
    """The body of ``tensor(...)``: NumPy's ``array2string`` (its summary past 1000
    elements, as torch's) with torch's rules for floats (:func:`_float_formatter`;
    complex: one for the real parts and one for the imaginary ones, ``1.+2.j``)."""
    if arr.size == 0:  # torch's "[]", and the shape after it where it says more (_sized)
        return "[]"
    if _dtypes.is_half(arr.dtype):  # printed as torch prints them: the exact float32 value
        arr = arr.astype(np.float32)
    options = dict(separator=", ", prefix=prefix, max_line_width=LINEWIDTH, threshold=THRESHOLD,
                   edgeitems=EDGEITEMS)
    if arr.dtype.kind == "f":
        return _ellipsis(np.array2string(arr, formatter={"float_kind": _float_formatter(_printed(arr))},
                                         **options))
    if arr.dtype.kind == "c":
        printed = _printed(arr)
        real, imag = _float_formatter(printed.real), _float_formatter(printed.imag)

        def text(z) -> str:
            im = (imag(z.imag) + "j").lstrip()
            return real(z.real) + (im if im[0] in "+-" else "+" + im)

        return _ellipsis(np.array2string(arr, formatter={"complex_kind": text}, **options))
    return _ellipsis(np.array2string(arr, **options))


def _ellipsis(body: str) -> str:
    """torch's "..." inside a row takes a space more than NumPy's (``2,  ..., 998``)."""
    return body.replace(", ...,", ",  ...,")


def _sized(arr: np.ndarray, body: str, always: bool = False) -> str:
    """``body``, and ``, size=(2, 0)`` after it for an empty array, as torch prints it: a
    dense tensor's unless it is 1-D (``tensor([])``), a sparse tensor's parts always."""
    return f"{body}, size={arr.shape}" if arr.size == 0 and (always or arr.ndim != 1) else body


def dtype_suffix(dt: np.dtype, default_kinds=(_dtypes.float32, _dtypes.complex64, _dtypes.int64,
                                              _dtypes.bool_)) -> str:
    return "" if dt in default_kinds else f", dtype={_dtypes.repr_name(dt)}"


def _grad_suffix(t) -> str:
    if t.grad_fn is not None:
        return f", grad_fn=<{t.grad_fn.name()}>"
    return ", requires_grad=True" if t.requires_grad else ""


def dense_str(t) -> str:
    """``repr`` of a dense Tensor."""
    body = _sized(t._data, format_array(t._data, "tensor("))
    # an empty tensor names every dtype but the default float one, as torch's
    suffix = dtype_suffix(t.dtype, (_dtypes.float32,)) if t._data.size == 0 else dtype_suffix(t.dtype)
    return f"tensor({body}{suffix}{_grad_suffix(t)})"


def coo_str(s) -> str:
    """``repr`` of a COO SparseTensor: indices, values, size, nnz, layout."""
    pad = " " * len("tensor(")
    s = s._now()  # (its arrays of one state, if another thread changes it in place)
    idx = _sized(s._idx, format_array(s._idx, pad + "indices=tensor("), always=True)
    val = _sized(s._val, format_array(s._val, pad + "values=tensor("), always=True)
    return (
        f"tensor(indices=tensor({idx}),\n{pad}values=tensor({val}),\n{pad}"
        f"size={s._shape}, nnz={s._nnz()}{dtype_suffix(s.dtype)}, "
        f"layout={s.layout!r}{_grad_suffix(s)})"
    )


def csr_str(s) -> str:
    """``repr`` of a SparseCsrTensor: crow_indices, col_indices, values, size, nnz, layout."""
    pad = " " * len("tensor(")
    s = s._now()  # (as coo_str)
    crow = _sized(s._crow, format_array(s._crow, pad + "crow_indices=tensor("), always=True)
    col = _sized(s._col, format_array(s._col, pad + "col_indices=tensor("), always=True)
    val = _sized(s._val, format_array(s._val, pad + "values=tensor("), always=True)
    return (
        f"tensor(crow_indices=tensor({crow}),\n{pad}col_indices=tensor({col}),\n{pad}"
        f"values=tensor({val}), size={s._shape}, nnz={s._nnz()}"
        f"{dtype_suffix(s.dtype)},\n{pad}layout={s.layout!r}{_grad_suffix(s)})"
    )

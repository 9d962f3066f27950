"""How tensors print (layer 2, beside the classes; torch's module has the same name).

The format follows torch's: ``tensor([1., 2.])``, four decimals when a value has a
fraction, ``dtype=`` only when it is not the default for its kind, then ``grad_fn`` or
``requires_grad``. The functions take any object with the tensor attributes they read,
so this module imports no tensor class.
"""

import numpy as np

from sparse_ref import _dtypes


def format_array(arr: np.ndarray, prefix: str) -> str:
    """The body of ``tensor(...)``: NumPy's ``array2string`` with torch's float rules."""
    if arr.size == 0:  # torch's "[]", and the shape after it where it says more (_sized)
        return "[]"
    if _dtypes.is_half(arr.dtype):  # printed as torch prints them: the exact float32 value
        arr = arr.astype(np.float32)
    kind = arr.dtype.kind
    if kind in "fc":
        finite = arr[np.isfinite(arr)] if kind == "f" else arr
        integral = kind == "f" and finite.size and np.all(finite == np.round(finite))
        if integral and np.all(np.abs(finite) < 1e8):
            def text(x):
                return f"{x:.0f}." if np.isfinite(x) else str(x)

            width = max(len(text(x)) for x in arr.ravel())
            fmt = {"float_kind": lambda x: text(x).rjust(width)}
            return np.array2string(arr, separator=", ", prefix=prefix, formatter=fmt)
        return np.array2string(arr, separator=", ", prefix=prefix, precision=4, floatmode="fixed",
                               suppress_small=False)
    return np.array2string(arr, separator=", ", prefix=prefix)


def _sized(arr: np.ndarray, body: str, always: bool = False) -> str:
    """``body``, and ``, size=(2, 0)`` after it for an empty array, as torch prints it: a
    dense tensor's unless it is 1-D (``tensor([])``), a sparse tensor's parts always."""
    return f"{body}, size={arr.shape}" if arr.size == 0 and (always or arr.ndim != 1) else body


def dtype_suffix(dt: np.dtype, default_kinds=(_dtypes.float32, _dtypes.int64, _dtypes.bool_)) -> str:
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
    crow = _sized(s._crow, format_array(s._crow, pad + "crow_indices=tensor("), always=True)
    col = _sized(s._col, format_array(s._col, pad + "col_indices=tensor("), always=True)
    val = _sized(s._val, format_array(s._val, pad + "values=tensor("), always=True)
    return (
        f"tensor(crow_indices=tensor({crow}),\n{pad}col_indices=tensor({col}),\n{pad}"
        f"values=tensor({val}), size={s._shape}, nnz={s._nnz()}"
        f"{dtype_suffix(s.dtype)},\n{pad}layout={s.layout!r}{_grad_suffix(s)})"
    )

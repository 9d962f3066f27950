"""The half types in products (layer 1): widen to float32, compute, round once.

float16 and bfloat16 values are *stored* in 16 bits, but no product kernel computes in
them. Every product, gradient and sum of duplicates works like this:

1. :func:`wide`: the 16-bit values become float32 -- exactly, since float32 holds every
   float16 and every bfloat16 value;
2. the float32 kernels run, in the order of additions their contracts define (there is
   no half-precision kernel);
3. whatever combines the product further (addmm's ``beta * M + alpha * P``, a gradient
   scaled by alpha, a mean's division) is done on the float32 values too;
4. :func:`finish`: ONE rounding to the small type, to nearest with ties to even, by the
   backend's ``convert.round_to_float16`` / ``round_to_bfloat16`` kernel.

So a half result is the correctly rounded value of the float32 computation: as if the
whole op ran in float32 and only its result were stored in 16 bits. torch's COO @ dense
instead adds in the small type itself (see the numerics page of the docs).

For float32, float64, complex and integer arrays every function here returns its input:
the callers need no special case.
"""

import numpy as np

from sparse_ref import _dtypes
from sparse_ref._backend import kernel_module
from sparse_ref._threads import effective_n_threads

_ROUNDING = {"float16": "round_to_float16", "bfloat16": "round_to_bfloat16"}


def small_dtype(*arrays):
    """The half dtype of the first float16 or bfloat16 array among ``arrays``, else None:
    the dtype a product's result is rounded to."""
    for a in arrays:  # (the set look-up of _dtypes.is_half, inline: every product asks)
        if a is not None and a.dtype in _dtypes.HALF_SET:
            return a.dtype
    return None


def wide(arr: np.ndarray) -> np.ndarray:
    """A float16 or bfloat16 array as float32 (exact, C-contiguous); any other array as it is."""
    if _dtypes.is_half(arr.dtype):
        return np.ascontiguousarray(arr, dtype=np.float32)
    return arr


def narrow(x: np.ndarray, dt: np.dtype, n_threads=None) -> np.ndarray:
    """float32 values rounded once to the half type ``dt`` (to nearest, ties to even; NaN
    stays NaN; overflow becomes inf, as IEEE rounding gives it), by the current backend's
    rounding kernel on the bit patterns."""
    bits = np.ascontiguousarray(x, dtype=np.float32).reshape(-1).view(np.uint32)
    out = np.empty(bits.shape[0], dtype=np.uint16)
    nt = effective_n_threads(n_threads, work=bits.shape[0])
    getattr(kernel_module("convert"), _ROUNDING[dt.name])(bits, out, nt)
    return out.view(dt).reshape(np.shape(x))


def finish(x: np.ndarray, small) -> np.ndarray:
    """The end of a computation that was widened: ``x`` rounded once to ``small`` (a half
    dtype), or ``x`` itself when ``small`` is None (nothing was widened)."""
    return x if small is None else narrow(x, small)


def rounded(out: np.ndarray, *operands) -> np.ndarray:
    """``out`` of an elementwise op in which a number met a half array as float32 (as torch
    computes half ops in float32, its "opmath" type: ``Tensor._operand``), rounded once to
    that half type; any other ``out`` (both operands half, or no half at all) as it is."""
    if out.dtype != np.float32:
        return out
    return finish(out, small_dtype(*operands))


def reduced(fn, x: np.ndarray) -> np.ndarray:
    """``fn(x)`` for a reduction of x (a sum, a mean): a float16 or bfloat16 x is reduced
    in float32 and the result rounded once, as torch accumulates them (NumPy would add
    bfloat16 in bfloat16, where 256 + 1 is 256 again); any other x as it is."""
    small = small_dtype(x)
    if small is None:
        return np.asarray(fn(x))
    return finish(np.asarray(fn(x.astype(np.float32))), small)

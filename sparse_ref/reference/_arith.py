"""Scalar and vector arithmetic spelled out so that the reference rounds exactly as the C
kernels do (their twin is ``sparse_ref/_kernels/_arith.pxd``).

NumPy's own complex multiply may use fused multiply-adds on CPUs that have them, which
rounds differently from the textbook formula; so complex products are written out here
as two real products and a sum or difference, each rounded once.
"""

import numpy as np


def _complex(re, im, dtype):
    out = np.empty(np.shape(re), dtype=dtype)
    out.real = re
    out.imag = im
    return out[()] if out.ndim == 0 else out


def mul(x, y):
    """``x * y``; for complex values ``(xr*yr - xi*yi) + i (xr*yi + xi*yr)``."""
    if not (np.iscomplexobj(x) or np.iscomplexobj(y)):
        return x * y
    re = x.real * y.real - x.imag * y.imag
    im = x.real * y.imag + x.imag * y.real
    return _complex(re, im, np.result_type(x, y))


def div_count(x, count):
    """``x / count`` with the count in x's precision; complex parts divided separately;
    integers truncate toward zero, as C's division does. (The tensor layer refuses
    integer means, so that branch only keeps the twins equal.)"""
    x = np.asarray(x)
    if x.dtype.kind == "c":
        real_type = x.real.dtype.type
        return _complex(x.real / real_type(count), x.imag / real_type(count), x.dtype)
    if x.dtype.kind == "f":
        return x / x.dtype.type(count)
    floor = x // count  # Python floors; C truncates: one up where a negative x left a remainder
    return np.where((floor < 0) & (floor * count != x), floor + 1, floor).astype(x.dtype)

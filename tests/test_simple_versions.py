"""The "Simple version" in each kernel's docstring runs, and computes what the reference
computes (to rounding: the simple loops add in NumPy's order, not the contract's)."""

import importlib
import inspect
import textwrap

import numpy as np
import pytest
from conftest import random_coo, random_values

from sparse_ref import reference

KERNELS = [(name, k) for name in reference.KERNEL_MODULES
           for k in importlib.import_module(f"sparse_ref.reference.{name}").__all__]


def simple_version(kernel):
    """The code block of the docstring's "Simple version" section."""
    doc = inspect.cleandoc(kernel.__doc__)
    section = doc.split("Simple version\n--------------\n", 1)[1].split("\nInputs\n", 1)[0]
    return textwrap.dedent(section.split("::\n", 1)[1])


def csr(rng, shape, nnz, dtype):
    """A coalesced CSR matrix (crow, col, val) with explicit zeros and empty rows."""
    (row, col), val = random_coo(rng, shape, nnz, dtype)
    key = np.unique(row * shape[1] + col)
    row, col = key // shape[1], key % shape[1]
    crow = np.zeros(shape[0] + 1, np.int64)
    np.add.at(crow, row + 1, 1)
    val = random_values(rng, len(key), dtype)
    val[::4] = 0
    return np.cumsum(crow), col.astype(np.int64), val


def cases(name, kernel, rng, dtype):
    """(arguments, outputs to compare) for one call of the kernel; outputs start as zeros."""
    m, k, n, width = 7, 6, 5, 11
    z = np.zeros
    if kernel == "coalesce":
        (row, col), val = random_coo(rng, (m, n), 40, dtype)
        val[::5] = 0
        nnz = len(row)
        return (dict(a_row=row, a_col=col, a_val=val, nrows=m, out_crow=z(m + 1, np.int64),
                     out_col=z(nnz, np.int64), out_val=z(nnz, dtype), out_pos=z(nnz, np.int64)),
                ["out_crow", "out_col", "out_val"])
    if kernel in ("round_to_float16", "round_to_bfloat16"):  # values, whatever the dtype
        x = (rng.standard_normal(200) * 10.0 ** rng.integers(-9, 6, 200)).astype(np.float32)
        x[:4] = [np.inf, -np.inf, np.nan, -0.0]
        return dict(a_bits=x.view(np.uint32), out_bits=z(200, np.uint16)), ["out_bits"]
    a_crow, a_col, a_val = csr(rng, (m, k), 20, dtype)
    b_crow, b_col, b_val = csr(rng, (k, n), 15, dtype)
    nnz = len(a_col)
    if kernel == "coo_to_csr":
        row = np.repeat(np.arange(m), np.diff(a_crow))
        return dict(a_row=row, nrows=m, out_crow=z(m + 1, np.int64)), ["out_crow"]
    if kernel == "csr_to_coo":
        return dict(a_crow=a_crow, out_row=z(nnz, np.int64)), ["out_row"]
    if kernel == "csr_transpose":
        return (dict(a_crow=a_crow, a_col=a_col, ncols=k, out_crow=z(k + 1, np.int64),
                     out_col=z(nnz, np.int64), out_perm=z(nnz, np.int64)),
                ["out_crow", "out_col", "out_perm"])
    b = random_values(rng, k * width, dtype).reshape(k, width)
    if kernel == "spmm":
        return dict(a_crow=a_crow, a_col=a_col, a_val=a_val, b=b, out=z((m, width), dtype)), ["out"]
    if kernel == "spmv":  # one column, on int32 columns (it takes int64 too)
        return (dict(a_crow=a_crow, a_col=a_col.astype(np.int32), a_val=a_val, b=b[:, :1].copy(),
                     out=z((m, 1), dtype)), ["out"])
    if kernel == "spgemm_bounds":
        return (dict(a_crow=a_crow, a_col=a_col, b_crow=b_crow, out_flops=z(m, np.int64),
                     out_longest=z(m, np.int64)), ["out_flops", "out_longest"])
    if kernel == "spgemm_symbolic":
        return (dict(a_crow=a_crow, a_col=a_col, b_crow=b_crow, b_col=b_col, ncols=n,
                     out_crow=z(m + 1, np.int64)), ["out_crow"])
    if kernel == "spgemm_numeric":
        crow = z(m + 1, np.int64)
        reference.spgemm.spgemm_symbolic(a_crow, a_col, b_crow, b_col, n, crow)
        return (dict(a_crow=a_crow, a_col=a_col, a_val=a_val, b_crow=b_crow, b_col=b_col,
                     b_val=b_val, ncols=n, crow=crow, out_col=z(crow[-1], np.int64),
                     out_val=z(crow[-1], dtype)), ["out_col", "out_val"])
    if kernel == "spgemm_onepass":  # room for every product: the bound of spgemm_bounds
        flops = z(m, np.int64)
        reference.spgemm.spgemm_bounds(a_crow, a_col, b_crow, flops, z(m, np.int64))
        upper = int(flops.sum())
        return (dict(a_crow=a_crow, a_col=a_col, a_val=a_val, b_crow=b_crow, b_col=b_col,
                     b_val=b_val, ncols=n, out_crow=z(m + 1, np.int64),
                     out_col=z(upper, np.int64), out_val=z(upper, dtype)), ["out_crow", "out_col", "out_val"])
    p_row, p_col = rng.integers(0, m, 30), rng.integers(0, k, 30)
    if kernel == "spgemm_masked":  # X = A (m x k), Y = A as well: out = (A @ A^T)[p_row, p_col]
        p_col = rng.integers(0, m, 30)
        return (dict(p_row=p_row, p_col=p_col, x_crow=a_crow, x_col=a_col, x_val=a_val,
                     y_crow=a_crow, y_col=a_col, y_val=a_val, out=z(30, dtype)), ["out"])
    if kernel == "sddmm":
        x = random_values(rng, m * width, dtype).reshape(m, width)
        return dict(p_row=p_row, p_col=p_col, x=x, y=b, out=z(30, dtype)), ["out"]
    raise AssertionError(f"no case for {name}.{kernel}")


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("name,kernel", KERNELS + [("spmm", "spmm_reduce")])
def test_simple_version_computes_what_the_reference_computes(name, kernel, dtype, rng):
    module = importlib.import_module(f"sparse_ref.reference.{name}")
    reduces = ("sum", "mean", "amax", "amin") if kernel == "spmm_reduce" else (None,)
    for reduce in reduces:
        if reduce in ("amax", "amin") and dtype == np.complex128:
            continue
        if kernel == "spmm_reduce":
            args, compare = cases(name, "spmm", rng, dtype)
            m, width = args["out"].shape
            args.update(reduce=reduce, out_arg=np.zeros((m, width), np.int64))
        else:
            args, compare = cases(name, kernel, rng, dtype)
        # one namespace for the code (its comprehensions see the arguments), with copies
        simple = {"np": np} | {key: np.copy(v) if isinstance(v, np.ndarray) else v
                               for key, v in args.items()}
        with np.errstate(over="ignore"):  # (rounding to float16: overflow gives inf, as documented)
            exec(simple_version(getattr(module, kernel)), simple)
        getattr(module, kernel)(**args)
        for out in compare:
            want, got = simple[out], args[out]
            if kernel == "spgemm_onepass" and out != "out_crow":  # past the result: scratch
                assert args["out_crow"][-1] > 0
                want, got = want[:args["out_crow"][-1]], got[:args["out_crow"][-1]]
            if got.dtype.kind in "iu":
                assert np.array_equal(want, got), (kernel, reduce, out)
            else:
                np.testing.assert_allclose(want, got, rtol=1e-12, atol=1e-12, err_msg=f"{kernel} {reduce} {out}")

"""Array-level products: allocate the outputs, pick the thread count, call the kernels of
the current backend. No validation here: ``sparse_ref.sparse`` has checked everything.
"""

import numpy as np

from sparse_ref._backend import kernel_module
from sparse_ref._formats import _compress
from sparse_ref._threads import effective_n_threads

I64 = np.int64


def spmm(crow, col, val, b, n_threads=None):
    """Dense ``A @ B`` for A in CSR arrays and a C-contiguous B."""
    nrows, n = crow.shape[0] - 1, b.shape[1]
    out = np.empty((nrows, n), dtype=val.dtype)
    nt = effective_n_threads(n_threads, work=col.shape[0] * max(n, 1) + nrows)
    kernel_module("spmm").spmm(crow, col, val, b, out, nt)
    return out


def spmm_reduce(crow, col, val, b, reduce, n_threads=None):
    """``(out, arg)``: the row-wise reduction and, for amax/amin, the winning positions."""
    nrows, n = crow.shape[0] - 1, b.shape[1]
    out = np.empty((nrows, n), dtype=val.dtype)
    arg = np.empty((nrows, n) if reduce in ("amax", "amin") else (0, 0), dtype=I64)
    nt = effective_n_threads(n_threads, work=col.shape[0] * max(n, 1) + nrows)
    kernel_module("spmm").spmm_reduce(crow, col, val, b, reduce, out, arg, nt)
    return out, (arg if reduce in ("amax", "amin") else None)


def spgemm(a_crow, a_col, a_val, b_crow, b_col, b_val, ncols, n_threads=None):
    """``C = A @ B`` for CSR arrays; returns C's COO ``(indices, val)`` (rows sorted, then
    columns) and its row pointers. The column array is written straight into the second
    row of ``indices``, so the output is allocated once, at its exact size.

    The kernels keep one slot per column of B and thread: with very many columns, the
    columns that occur are numbered first (order-preserving) and named back after."""
    k = kernel_module("spgemm")
    nrows = a_crow.shape[0] - 1
    nt = effective_n_threads(n_threads, work=a_col.shape[0] + b_col.shape[0])
    b_col, ncols, names = _compress(b_col, ncols)
    crow = np.empty(nrows + 1, dtype=I64)
    k.spgemm_symbolic(a_crow, a_col, b_crow, b_col, ncols, crow, nt)
    nnz = int(crow[nrows])
    indices = np.empty((2, nnz), dtype=I64)
    out_val = np.empty(nnz, dtype=a_val.dtype)
    k.spgemm_numeric(a_crow, a_col, a_val, b_crow, b_col, b_val, ncols, crow, indices[1], out_val, nt)
    kernel_module("convert").csr_to_coo(crow, indices[0], nt)
    if names is not None:
        indices[1] = names[indices[1]]
    return indices, out_val, crow


def sddmm(row, col, x, y, n_threads=None):
    """``out[p] = sum_j x[row[p], j] * y[col[p], j]`` (C-contiguous x and y)."""
    out = np.empty(row.shape[0], dtype=x.dtype)
    nt = effective_n_threads(n_threads, work=row.shape[0] * max(x.shape[1], 1))
    kernel_module("sddmm").sddmm(row, col, x, y, out, nt)
    return out


def spgemm_masked(row, col, x_crow, x_col, x_val, y_crow, y_col, y_val, n_threads=None):
    """``out[p] = sum_c x[row[p], c] * y[col[p], c]`` for CSR X and Y (masked SpGEMM)."""
    out = np.empty(row.shape[0], dtype=x_val.dtype)
    nt = effective_n_threads(n_threads, work=row.shape[0] + x_col.shape[0] + y_col.shape[0])
    kernel_module("spgemm").spgemm_masked(row, col, x_crow, x_col, np.ascontiguousarray(x_val),
                                          y_crow, y_col, np.ascontiguousarray(y_val), out, nt)
    return out

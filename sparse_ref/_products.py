"""Array-level products: allocate the outputs, pick the thread count, call the kernels of
the current backend. No validation here: ``sparse_ref.sparse`` has checked everything.

float16 and bfloat16 operands are widened to float32 on the way in and the result is
rounded once on the way out (``sparse_ref._precision``); with ``wide=True`` the float32
result is returned unrounded, for a caller that combines it further (addmm, a gradient
scaled by alpha) and then rounds once itself.
"""

import numpy as np

from sparse_ref import _precision
from sparse_ref._backend import kernel_module
from sparse_ref._formats import renamed_keys
from sparse_ref._memory import check_fits, empty, fits
from sparse_ref._threads import effective_n_threads

I64 = np.int64


def spmm(crow, col, val, b, n_threads=None, wide=False, col32=None):
    """Dense ``A @ B`` for A in CSR arrays and a dense B (made C-contiguous, as the kernel
    needs: a gradient can arrive as a broadcast view, ``sum()``'s). A B of one column goes
    to the backend's ``spmv`` when it has one (an optional kernel), with ``col32``, the
    same columns as int32 (``SparseTensor._csr_col32``), when given: the same bits."""
    val, b = np.ascontiguousarray(val), np.ascontiguousarray(b)
    small = _precision.small_dtype(val, b)
    if small is not None:
        val, b = _precision.wide(val), _precision.wide(b)
    nrows, n = crow.shape[0] - 1, b.shape[1]
    out = empty((nrows, n), val.dtype)
    nt = effective_n_threads(n_threads, work=col.shape[0] * max(n, 1) + nrows)
    k = kernel_module("spmm")
    spmv = getattr(k, "spmv", None) if n == 1 else None
    if spmv is not None:
        spmv(crow, col if col32 is None else col32, val, b, out, nt)
    else:
        k.spmm(crow, col, val, b, out, nt)
    return out if wide else _precision.finish(out, small)


def spmm_reduce(crow, col, val, b, reduce, n_threads=None):
    """``(out, arg)``: the row-wise reduction and, for amax/amin, the winning positions."""
    val, b = np.ascontiguousarray(val), np.ascontiguousarray(b)  # (as spmm)
    small = _precision.small_dtype(val, b)
    val, b = _precision.wide(val), _precision.wide(b)
    nrows, n = crow.shape[0] - 1, b.shape[1]
    out = empty((nrows, n), val.dtype)
    arg = empty((nrows, n) if reduce in ("amax", "amin") else (0, 0), I64)
    nt = effective_n_threads(n_threads, work=col.shape[0] * max(n, 1) + nrows)
    kernel_module("spmm").spmm_reduce(crow, col, val, b, reduce, out, arg, nt)
    return _precision.finish(out, small), (arg if reduce in ("amax", "amin") else None)


# A kernel call does at most about this many products, so that a long SpGEMM returns to
# Python (which then answers Ctrl-C) a few times a second; small products are one call.
CHUNK_WORK = 1 << 24


def spgemm_bounds(a_crow, a_col, b_crow, n_threads=None):
    """Bounds on nnz(A @ B) in O(nnz(A)), before any pass over the products.

    Returns ``(lower, upper, flops_per_row)``: row i of C has at least as many entries as
    the longest row of B that row i of A reaches, and at most as many as its products
    (``flops_per_row[i]``); ``lower`` and ``upper`` are the sums over rows.
    """
    nrows = a_crow.shape[0] - 1
    flops = np.empty(nrows, dtype=I64)
    longest = np.empty(nrows, dtype=I64)
    nt = effective_n_threads(n_threads, work=a_col.shape[0])
    kernel_module("spgemm").spgemm_bounds(a_crow, a_col, b_crow, flops, longest, nt)
    return int(longest.sum()), int(flops.sum()), flops


def _quick_upper(a_col, b_crow) -> int:
    """nnz(A) x the longest row of B: an upper bound on the products of ``A @ B`` (so on
    nnz(C)) in O(rows of B)."""
    if a_col.shape[0] == 0 or b_crow.shape[0] < 2:
        return 0
    return a_col.shape[0] * int(np.subtract(b_crow[1:], b_crow[:-1]).max())


def _small_product(a_col, b_crow, max_nnz) -> int | None:
    """The quick upper bound when the product is small enough to skip the per-row bounds:
    one chunk of work (so no rows to cut into chunks, and a symbolic pass of a few
    milliseconds before the exact count is checked against memory), no ``max_nnz``
    (whose refusal comes before any pass), and B no longer in rows than A in entries (so
    the quick bound, O(rows of B), costs no more than the bounds, O(nnz(A))). Else None."""
    if max_nnz is not None or b_crow.shape[0] - 1 > a_col.shape[0]:
        return None  # a B of more rows than A has entries: its row lengths cost more than the bounds
    upper = _quick_upper(a_col, b_crow)
    return upper if upper <= CHUNK_WORK else None


def _chunks(nrows: int, flops, extra_per_chunk: int, total: int | None = None):
    """Row ranges ``(r0, r1)`` of about CHUNK_WORK products each (whole rows); ``total``,
    if known, is ``flops.sum()`` or a bound on it (the usual single chunk then needs no
    pass over flops, which may be None)."""
    target = max(CHUNK_WORK, 8 * extra_per_chunk)
    if total is not None and total <= target:
        return [(0, nrows)]
    cum = np.cumsum(flops)
    total = int(cum[-1]) if nrows else 0
    if total <= target:
        return [(0, nrows)]
    cuts = np.searchsorted(cum, np.arange(target, total, target), side="left") + 1
    edges = np.unique(np.concatenate([[0], cuts, [nrows]]))
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def _entry_bytes(dtype) -> int:
    return 2 * 8 + np.dtype(dtype).itemsize  # a COO entry: row, column, value


def _refuse(nnz: int, dtype, max_nnz, what: str) -> None:
    if max_nnz is not None and nnz > max_nnz:
        raise MemoryError(f"sparse x sparse: the product has {what} {nnz} stored entries, more than "
                          f"max_nnz={max_nnz}")
    check_fits(nnz * _entry_bytes(dtype), f"sparse x sparse: the product's {what} {nnz} stored entries")


def spgemm_symbolic(a_crow, a_col, b_crow, b_col, ncols, flops, n_threads=None, total=None):
    """Row pointers of ``C = A @ B`` (the exact count), in chunks that Ctrl-C can stop;
    ``total`` as for :func:`_chunks`."""
    k = kernel_module("spgemm")
    nrows = a_crow.shape[0] - 1
    nt = effective_n_threads(n_threads, work=a_col.shape[0] + b_col.shape[0])
    chunks = _chunks(nrows, flops, ncols * nt, total)
    if len(chunks) == 1:  # the usual case: one call, straight into the output
        crow = np.empty(nrows + 1, dtype=I64)
        k.spgemm_symbolic(a_crow, a_col, b_crow, b_col, ncols, crow, nt)
        return crow
    crow = np.zeros(nrows + 1, dtype=I64)
    for r0, r1 in chunks:
        part = np.empty(r1 - r0 + 1, dtype=I64)
        k.spgemm_symbolic(a_crow[r0:r1 + 1], a_col, b_crow, b_col, ncols, part, nt)
        crow[r0 + 1:r1 + 1] = part[1:] + crow[r0]
    return crow


# SpGEMM in one pass (spgemm_onepass: no symbolic pass, the output allocated as long as
# the bound on its entries) when the backend has that kernel and the bound fits in memory.
# Measured (bench_levers.py "spgemm one pass"; docs/algorithms/spgemm.rst).
_one_pass = True


def _set_one_pass(on: bool) -> bool:
    """Tuning hook for benchmarks and tests (not public API): let SpGEMM run in one pass
    where it can (the default) or always in two; returns the previous setting."""
    global _one_pass
    previous, _one_pass = _one_pass, bool(on)
    return previous


def _onepass_kernel(k, upper: int, dtype, max_nnz):
    """The backend's ``spgemm_onepass`` if this product may take it, else None: no
    ``max_nnz`` (whose refusal needs the exact count before the output is allocated), and
    output arrays as long as the bound ``upper`` fit in memory (the pages past the result
    are not touched, but they must be there to be had)."""
    onepass = getattr(k, "spgemm_onepass", None)  # an optional kernel (_backend.OPTIONAL)
    if onepass is None or not _one_pass or max_nnz is not None:
        return None
    copies = 2 if hasattr(onepass, "__wrapped__") else 1  # (a registered backend's: _backend._guarded's copy too)
    return onepass if fits(copies * upper * _entry_bytes(dtype)) else None


def _spgemm_onepass(onepass, a_crow, a_col, a_val, b_crow, b_col, b_val, ncols, flops, upper, nt, rows):
    """Both passes in one (``_onepass_kernel``): C's arrays are the first nnz entries of
    arrays as long as the bound ``upper`` (copied into arrays of their own when the bound
    is over 4x nnz: a result keeps no more than that); returns them as :func:`spgemm`
    does."""
    nrows = a_crow.shape[0] - 1
    buf = empty((1 if rows is None else 2, upper), I64)
    out_val = empty(upper, a_val.dtype)
    crow = np.empty(nrows + 1, dtype=I64)
    chunks = _chunks(nrows, flops, ncols * nt, upper)
    if len(chunks) == 1:
        onepass(a_crow, a_col, a_val, b_crow, b_col, b_val, ncols, crow, buf[-1], out_val, nt)
    else:  # chunk after chunk, each packed after the last
        crow[0] = 0
        for r0, r1 in chunks:
            part = np.empty(r1 - r0 + 1, dtype=I64)
            at = int(crow[r0])
            onepass(a_crow[r0:r1 + 1], a_col, a_val, b_crow, b_col, b_val, ncols, part, buf[-1, at:],
                    out_val[at:], nt)
            crow[r0 + 1:r1 + 1] = part[1:] + at
    nnz = int(crow[nrows])
    if 4 * nnz < upper:  # a loose bound (a small product's): keep arrays of C's size, never over 4x it
        indices, values = empty((buf.shape[0], nnz), I64), empty(nnz, out_val.dtype)
        indices[-1], values[:] = buf[-1, :nnz], out_val[:nnz]
        return indices, values, crow
    return buf[:, :nnz], out_val[:nnz], crow


def spgemm(a_crow, a_col, a_val, b_crow, b_col, b_val, ncols, n_threads=None, max_nnz=None,
           rows: bool = True):
    """``C = A @ B`` for CSR arrays; returns C's COO ``(indices, val)`` (rows sorted, then
    columns) and its row pointers. The column array is written straight into the second
    row of ``indices``, so the output is allocated once, at its exact size. With
    ``rows=False`` the first row of ``indices`` is left unwritten (its memory untouched),
    for a caller that writes the rows from the row pointers only if they are needed
    (``_tensor._LaterRows``); with ``rows=None`` there is no such row (``indices`` is
    1 x nnz: the columns of a CSR result).

    Fail fast: the bounds of :func:`spgemm_bounds` come first; an output whose lower
    bound cannot fit in memory (or exceeds ``max_nnz``) is refused in O(nnz(A)), before
    any pass over the products. Otherwise both passes run in chunks of whole rows, so
    Ctrl-C stops them within a fraction of a second, and the exact count is checked
    against memory before the output is allocated. A small product (at most CHUNK_WORK
    products by the bound nnz(A) x the longest row of B, no ``max_nnz``, and B no longer
    in rows than A in entries) skips the per-row bounds: one chunk of work, whose
    symbolic pass takes milliseconds before the exact count is checked.

    Where the backend has ``spgemm_onepass``, there is no ``max_nnz`` and arrays as long
    as the bound (C's products, or a small product's nnz(A) x the longest row of B) fit in
    memory, the symbolic pass is skipped: C's arrays are then the first nnz entries of
    arrays of that length (the pages past them are not touched), or copies of those when
    the bound is over 4x nnz.

    The kernels keep one slot per column of B and thread: with very many columns, the
    columns that occur are numbered first (order-preserving) and named back after."""
    k = kernel_module("spgemm")
    small = _precision.small_dtype(a_val, b_val)
    a_val, b_val = _precision.wide(np.ascontiguousarray(a_val)), _precision.wide(np.ascontiguousarray(b_val))
    nrows = a_crow.shape[0] - 1
    upper = _small_product(a_col, b_crow, max_nnz)
    if upper is not None:  # one chunk, nothing to refuse early: no per-row bounds
        lower, flops = 0, None
    else:
        lower, upper, flops = spgemm_bounds(a_crow, a_col, b_crow)
        _refuse(lower, a_val.dtype, max_nnz, "at least")
    nt = effective_n_threads(n_threads, work=a_col.shape[0] + b_col.shape[0])
    b_col, ncols, names = renamed_keys(b_col, ncols)
    onepass = _onepass_kernel(k, upper, a_val.dtype, max_nnz)
    if onepass is not None:
        indices, out_val, crow = _spgemm_onepass(onepass, a_crow, a_col, a_val, b_crow, b_col, b_val, ncols,
                                                 flops, upper, nt, rows)
    else:
        crow = spgemm_symbolic(a_crow, a_col, b_crow, b_col, ncols, flops, nt, upper)
        nnz = int(crow[nrows])
        if nnz > lower:
            _refuse(nnz, a_val.dtype, max_nnz, "exactly")
        indices = empty((1 if rows is None else 2, nnz), I64)
        out_val = empty(nnz, a_val.dtype)
        for r0, r1 in _chunks(nrows, flops, ncols * nt, upper):
            k.spgemm_numeric(a_crow[r0:r1 + 1], a_col, a_val, b_crow, b_col, b_val, ncols,
                             crow[r0:r1 + 1], indices[-1], out_val, nt)
    if rows:
        kernel_module("convert").csr_to_coo(crow, indices[0], nt)
    if names is not None:
        indices[-1] = names[indices[-1]]
    return indices, _precision.finish(out_val, small), crow


def spgemm_nnz(a_crow, a_col, b_crow, b_col, ncols, n_threads=None) -> int:
    """nnz(A @ B), exactly, without computing a value (the symbolic pass alone)."""
    lower, upper, flops = spgemm_bounds(a_crow, a_col, b_crow)
    if lower == upper:
        return upper
    b_col, ncols, _ = renamed_keys(b_col, ncols)
    return int(spgemm_symbolic(a_crow, a_col, b_crow, b_col, ncols, flops, n_threads, upper)[-1])


def sddmm(row, col, x, y, n_threads=None, wide=False):
    """``out[p] = sum_j x[row[p], j] * y[col[p], j]`` (C-contiguous x and y)."""
    x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)  # (as spmm)
    small = _precision.small_dtype(x, y)
    x, y = _precision.wide(x), _precision.wide(y)
    out = empty(row.shape[0], x.dtype)
    nt = effective_n_threads(n_threads, work=row.shape[0] * max(x.shape[1], 1))
    kernel_module("sddmm").sddmm(row, col, x, y, out, nt)
    return out if wide else _precision.finish(out, small)


def spgemm_masked(row, col, x_crow, x_col, x_val, y_crow, y_col, y_val, n_threads=None):
    """``out[p] = sum_c x[row[p], c] * y[col[p], c]`` for CSR X and Y (masked SpGEMM)."""
    small = _precision.small_dtype(x_val, y_val)
    x_val, y_val = _precision.wide(x_val), _precision.wide(y_val)
    out = empty(row.shape[0], x_val.dtype)
    nt = effective_n_threads(n_threads, work=row.shape[0] + x_col.shape[0] + y_col.shape[0])
    kernel_module("spgemm").spgemm_masked(row, col, x_crow, x_col, np.ascontiguousarray(x_val),
                                          y_crow, y_col, np.ascontiguousarray(y_val), out, nt)
    return _precision.finish(out, small)

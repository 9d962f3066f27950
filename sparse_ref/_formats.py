"""Array-level format operations: one call per op, validate-free (the tensor layer has
checked), then normalise -> allocate -> kernel. The kernels come from the current backend.

Huge shapes: a counting sort needs O(nrows) memory, which is impossible for, say, 2**40
rows. When the row count is much larger than nnz, the rows that occur are first renamed
to 0..r-1 (``np.unique``), the kernel works on r rows, and the names are restored. No
(row, col) pair is ever linearised into a single int64 key, so rows * cols may exceed
2**63. A tensor with more index rows (sparse_dim S > 2) keeps its last index as the column
and reads the leading S - 1 as one row key only when their sizes' product fits in int64
(else the tuples that occur are ranked): :func:`row_keys`.
"""

import numpy as np

from sparse_ref import _precision
from sparse_ref._backend import kernel_module
from sparse_ref._errors import DTypeError
from sparse_ref._memory import check_fits, empty
from sparse_ref._threads import effective_n_threads

I64 = np.int64


def too_many_pointers(n: int, nnz: int) -> bool:
    """Whether a dimension of ``n`` indices holding ``nnz`` entries is too long to give
    every index a row pointer (or a counter): then the indices that occur are renamed
    first (:func:`renamed_keys`). The one threshold for every such choice."""
    return n > 2 * nnz + 1024


def renamed_keys(keys: np.ndarray, n: int):
    """Rename ``keys`` (each in [0, n)) to ranks 0..r-1 when n is far larger than needed.

    Returns ``(keys, n, names)``: ``names`` maps a rank back to its key, or is None when
    nothing was renamed. Renaming keeps order, so sorted stays sorted.
    """
    if not too_many_pointers(n, keys.shape[0]):
        return keys, n, None
    names, ranks = np.unique(keys, return_inverse=True)
    return np.ascontiguousarray(ranks, dtype=I64), int(names.shape[0]), names


# Above this many entries, coalesce works on blocks of rows of about this size, one kernel
# call each, so that Python gets control (and answers Ctrl-C) between them.
COALESCE_BLOCK = 1 << 23


def coalesce(row, col, val, nrows: int, n_threads=None, with_pos: bool = False,
             rows_later: bool = False):
    """Coalesce COO arrays. Returns ``(indices, val, pos)``: indices (2, nnz_out) whose two
    rows are each contiguous, and, if ``with_pos``, ``pos[p]`` = the coalesced position of
    stored entry p (else None).

    With ``rows_later``, returns ``(indices, val, pos, crow)``: when ``crow`` (the row
    pointers the kernel made) is not None, the first row of ``indices`` is not written
    yet, for a tensor that writes it from crow on first use (``_tensor._LaterRows``);
    crow is None (and indices whole) for inputs cut into blocks or with renamed rows.

    Large inputs are cut into blocks of whole rows first (a stable partition, so every
    row keeps its storage order and the sums are the same bits); each block is one kernel
    call, and Ctrl-C stops the work between two of them.

    float16 and bfloat16 values are summed in float32 (in the same storage order) and
    each sum is rounded once at the end (``sparse_ref._precision``)."""
    small = _precision.small_dtype(val)
    val = _precision.wide(val)
    crow = None
    if row.shape[0] > 2 * COALESCE_BLOCK and nrows > 1:
        indices, values, pos = _coalesce_in_blocks(row, col, val, nrows, n_threads, with_pos)
    else:
        indices, values, pos, crow = _coalesce(row, col, val, nrows, n_threads, with_pos, rows_later)
    values = _precision.finish(values, small)
    return (indices, values, pos, crow) if rows_later else (indices, values, pos)


def _coalesce_in_blocks(row, col, val, nrows, n_threads, with_pos):
    nnz = row.shape[0]
    shift = max(int(nrows - 1).bit_length() - 16, 0)  # at most 65536 bins of rows
    bins = np.bincount(row >> shift)
    # consecutive bins make a block of about COALESCE_BLOCK entries (a bin is never split)
    block_of_bin = np.maximum(np.cumsum(bins) - 1, 0) // COALESCE_BLOCK
    block_of_bin = np.minimum(block_of_bin, 255).astype(np.uint8)
    block = block_of_bin[row >> shift]
    order = np.argsort(block, kind="stable")  # a radix sort for uint8 keys: O(nnz)
    sizes = np.bincount(block, minlength=int(block_of_bin[-1]) + 1)
    first_bin = np.searchsorted(block_of_bin, np.arange(sizes.shape[0]), side="left")
    parts, pos = [], (np.empty(nnz, dtype=I64) if with_pos else None)
    start = done = 0
    for b, size in enumerate(sizes.tolist()):
        if size == 0:
            continue
        take = order[start:start + size]
        lo = int(first_bin[b]) << shift
        hi = min((int(first_bin[b + 1]) << shift) if b + 1 < sizes.shape[0] else nrows, nrows)
        idx, v, p, _ = _coalesce(row[take] - lo, col[take], val[take], hi - lo, n_threads, with_pos)
        idx[0] += lo
        if with_pos:
            pos[take] = p + done
        parts.append((idx, v))
        start += size
        done += v.shape[0]
    indices = np.concatenate([i for i, _ in parts], axis=1) if parts else np.empty((2, 0), dtype=I64)
    values = np.concatenate([v for _, v in parts]) if parts else np.empty(0, dtype=val.dtype)
    return indices, values, pos


def _coalesce(row, col, val, nrows: int, n_threads=None, with_pos: bool = False, rows_later: bool = False):
    """``(indices, val, pos, crow)`` of one kernel call; see :func:`coalesce`."""
    if val.dtype == np.bool_:  # (a bool tensor's to_sparse(): the kernels sum numbers only)
        raise DTypeError("coalesce: bool values cannot be summed by the kernels; convert first, e.g. s.long()")
    nnz = row.shape[0]
    rows, r, names = renamed_keys(row, nrows)
    nt = effective_n_threads(n_threads, work=nnz)
    later = rows_later and names is None  # (renamed rows: crow counts the occurring rows only)
    out_crow = np.empty(r + 1, dtype=I64)
    out_idx = empty((2, nnz), I64)  # nnz: an upper bound on the result's size
    out_val = empty(nnz, val.dtype)
    out_pos = empty(nnz if with_pos else 0, I64)
    kernel_module("coalesce").coalesce(rows, col, val, r, out_crow, out_idx[-1], out_val, out_pos, nt)
    m = int(out_crow[r])
    if not later:
        kernel_module("convert").csr_to_coo(out_crow, out_idx[0], nt)
    if names is not None:
        out_idx[0, :m] = names[out_idx[0, :m]]
    # later: row 0 is written from out_crow if it is ever needed
    idx, values = out_idx[:, :m], out_val[:m]
    if m < 0.75 * nnz:  # many duplicates: give the unused memory back
        if later:  # (row 0 has nothing to copy yet)
            idx = empty((2, m), I64)
            idx[1] = out_idx[1, :m]
        else:
            idx = idx.copy()
        values = values.copy()
    return idx, values, (out_pos if with_pos else None), (out_crow if later else None)


def row_keys(indices: np.ndarray, shape: tuple):
    """``(row, col, nrows)`` of COO indices with any number S >= 1 of index rows: the last
    index is the column; the leading S - 1 indices, read as one number in mixed radix
    (``row = (i0 * n1 + i1) * n2 + i2 ...``), are the row. Row-major order of (row, col) is
    then the lexicographic order of the index tuples (a 3-D tensor is batch-major), so the
    2-D coalesce kernel sorts any S.

    No key overflows int64: when the product of the leading sizes does not fit, the index
    tuples that occur are ranked instead (``np.unique`` over columns, which keeps
    lexicographic order), as :func:`renamed_keys` ranks huge row numbers. S == 1 has one
    row (key 0) holding every entry."""
    nnz = indices.shape[1]
    lead, col = indices[:-1], np.ascontiguousarray(indices[-1])
    if lead.shape[0] == 0:
        return np.zeros(nnz, dtype=I64), col, 1
    if lead.shape[0] == 1:
        return np.ascontiguousarray(lead[0]), col, int(shape[0])
    nrows = 1
    for n in shape[:lead.shape[0]]:
        nrows *= int(n)  # Python ints: exact, however large
    if nrows <= np.iinfo(I64).max:
        row = np.zeros(nnz, dtype=I64)
        for d in range(lead.shape[0]):  # Horner's rule: every partial key is below nrows
            row *= shape[d]
            row += lead[d]
        return row, col, nrows
    names, ranks = np.unique(lead, axis=1, return_inverse=True)
    return np.ascontiguousarray(ranks.reshape(-1), dtype=I64), col, int(names.shape[1])


def coalesce_coo(indices: np.ndarray, values: np.ndarray, shape: tuple, n_threads=None,
                 with_pos: bool = False, rows_later: bool = False):
    """Coalesce a COO tensor of any sparse_dim S = ``indices.shape[0]`` and any dense dims
    (``values`` of shape (nnz, *dense_sizes)). Returns ``(indices, values, pos)`` as
    :func:`coalesce` does: the index tuples in lexicographic order, unique.

    A matrix (S == 2, one value per entry) is :func:`coalesce` itself. Otherwise the
    indices become (row, col) keys (:func:`row_keys`) and one kernel call sorts them and
    gives every stored entry's coalesced position ``pos``; the index tuples of the result
    are read back from the first stored entry of each position. With dense dims, a value
    block per entry, the blocks are summed in NumPy (the same code on both kernel paths)
    in one defined order, storage order: see :func:`sum_blocks` (float16 and bfloat16
    blocks in float32, each sum rounded once, as :func:`coalesce` does)."""
    s = indices.shape[0]
    if s == 2 and values.ndim == 1:  # (with rows_later: the 4-tuple of coalesce)
        return coalesce(indices[0], indices[1], values, shape[0], n_threads, with_pos, rows_later)
    row, col, nrows = row_keys(indices, shape)
    blocks = values.ndim > 1
    val = np.zeros(values.shape[0], dtype=values.dtype) if blocks else values
    _, out_val, pos = coalesce(row, col, val, nrows, n_threads, with_pos=True)
    by_entry, starts = grouped_by_position(pos)
    out_idx = np.ascontiguousarray(indices[:, by_entry[starts]])  # each entry's first stored copy
    if blocks:  # half blocks: summed in float32, each sum rounded once (as coalesce does)
        small = _precision.small_dtype(values)
        out_val = _precision.finish(sum_blocks(_precision.wide(values), by_entry, starts), small)
    out = (out_idx, out_val, (pos if with_pos else None))
    return out + (None,) if rows_later else out


def grouped_by_position(pos: np.ndarray):
    """``(by_entry, starts)``: the stored entries ordered by coalesced position, each
    position's duplicates in storage order (a stable sort), and where each position's
    group starts (position q's group is ``by_entry[starts[q]:starts[q + 1]]``)."""
    by_entry = np.argsort(pos, kind="stable")
    sorted_pos = pos[by_entry]
    starts = np.flatnonzero(np.concatenate([[True], sorted_pos[1:] != sorted_pos[:-1]])) if pos.shape[0] \
        else np.zeros(0, dtype=I64)
    return by_entry, starts


def sum_blocks(values: np.ndarray, by_entry: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The coalesced value blocks: ``out[q]`` = the sum of the blocks of the stored entries
    in group q (see :func:`grouped_by_position`), added in storage order,
    ``((v_p1 + v_p2) + v_p3) + ...`` for p1 < p2 < p3, each element of a block on its own,
    exactly as the coalesce kernel adds single values.

    Round k adds the k-th stored duplicate of every entry at once (round 0 copies the
    first, so -0.0 stays as stored); within a round every target is distinct, so a round
    is one vectorised NumPy add whose result has no order to depend on. There are as many
    rounds as the most duplicated entry has copies."""
    nnz, m = by_entry.shape[0], starts.shape[0]
    out = np.empty((m,) + values.shape[1:], dtype=values.dtype)
    if nnz == 0:
        return out
    sizes = np.diff(np.append(starts, nnz))
    target = np.repeat(np.arange(m), sizes)  # the position of by_entry[i]
    rank = np.arange(nnz) - np.repeat(starts, sizes)  # it is the rank-th copy of its entry
    order = np.argsort(rank, kind="stable")  # round 0's copies, then round 1's, ...
    bounds = np.searchsorted(rank[order], np.arange(int(sizes.max()) + 1))
    take, where = by_entry[order], target[order]
    out[where[:bounds[1]]] = values[take[:bounds[1]]]
    for k in range(1, bounds.shape[0] - 1):
        lo, hi = bounds[k], bounds[k + 1]
        out[where[lo:hi]] += values[take[lo:hi]]
    return out


def coo_to_csr(row, nrows: int, n_threads=None) -> np.ndarray:
    """Row pointers of a row-sorted COO matrix (nrows + 1 of them)."""
    if nrows + 1 > np.iinfo(np.intp).max // 8:
        raise MemoryError(f"CSR needs nrows + 1 = {nrows + 1} row pointers, more than an array can hold; "
                          "keep the matrix in COO")
    check_fits((nrows + 1) * 8, f"CSR of a matrix with {nrows} rows and {row.shape[0]} stored entries "
                                f"({nrows + 1} row pointers)")
    out_crow = np.empty(nrows + 1, dtype=I64)
    kernel_module("convert").coo_to_csr(row, nrows, out_crow, effective_n_threads(n_threads, work=row.shape[0]))
    return out_crow


def csr_to_coo(crow, n_threads=None, out: np.ndarray | None = None) -> np.ndarray:
    """The row of every stored entry of a CSR matrix (the inverse of :func:`coo_to_csr`),
    written into ``out`` (int64, crow[-1] of them) when given."""
    out_row = empty(int(crow[-1]), I64) if out is None else out
    kernel_module("convert").csr_to_coo(crow, out_row, effective_n_threads(n_threads, work=out_row.shape[0]))
    return out_row


def csr_transpose(crow, col, ncols: int, n_threads=None, rename: bool = True):
    """Transpose CSR structure. Returns ``(t_crow, t_col, perm, names)``; values are
    ``val[perm]``.

    With ``rename``, huge column counts are renamed first, so the transpose's row pointers
    stay small; the returned ``t_crow`` then has one pointer per *occurring* column and
    ``names`` (the column of each) is not None.
    """
    cols, c, names = renamed_keys(col, ncols) if rename else (col, ncols, None)
    out_crow = np.empty(c + 1, dtype=I64)
    out_col = empty(col.shape[0], I64)
    out_perm = empty(col.shape[0], I64)
    nt = effective_n_threads(n_threads, work=col.shape[0])
    kernel_module("convert").csr_transpose(crow, cols, c, out_crow, out_col, out_perm, nt)
    return out_crow, out_col, out_perm, names


def values_at(src_idx, src_val, dst_idx) -> np.ndarray:
    """The values of a coalesced matrix (src) at the positions of another coalesced pattern
    (dst), 0 where src stores nothing: how a sparse gradient with another pattern is masked.

    Both patterns are sorted row-major and unique, so one stable sort of the two lists of
    (row, column) keys puts every shared position's two copies side by side. (Any number of
    index rows works the same way: a sparse vector has one.)
    """
    n_dst = dst_idx.shape[1]
    keys = [np.concatenate([dst_idx[d], src_idx[d]]) for d in range(dst_idx.shape[0])]
    order = np.lexsort(keys[::-1])  # stable: a dst key comes before an equal src key
    first, second = order[:-1], order[1:]
    match = (first < n_dst) & (second >= n_dst)
    for key in keys:
        match &= key[first] == key[second]
    out = np.zeros((n_dst,) + src_val.shape[1:], dtype=src_val.dtype)  # a block per entry if hybrid
    out[first[match]] = src_val[second[match] - n_dst]
    return out

"""Coalescing a COO matrix: sort row-major, sum duplicates in storage order.

Twin of ``sparse_ref/_kernels/coalesce.pyx``. Three steps, the same in both:

1. a stable counting sort of the entries by row (count, prefix sum, fill), which moves
   each entry's column, position and value together (the typed kernel moves 16-byte
   (column, position) pairs, or (column, value) when no ``out_pos`` is asked for and a
   value fits in 8 bytes: step 3 then reads the values in order instead of gathering
   them from storage);
2. a stable sort of each row by column, counting the distinct columns; a prefix sum of
   those counts gives the row pointers of the result;
3. one pass that writes each distinct (row, column) once, summing its duplicates in
   storage order.
"""

__all__ = ["coalesce"]


def coalesce(a_row, a_col, a_val, nrows, out_crow, out_col, out_val, out_pos, n_threads=1):
    """Sort a COO matrix row-major and sum its duplicates in storage order.

    Simple version
    --------------
    The same result (``out_pos`` aside), without the sort's details; outputs start as
    zeros::

        sums = {}                                      # (i, j) -> its values, summed
        for p in range(len(a_row)):                    # in storage order
            sums[a_row[p], a_col[p]] = sums.get((a_row[p], a_col[p]), 0) + a_val[p]
        for q, (i, j) in enumerate(sorted(sums)):      # row-major
            out_col[q], out_val[q] = j, sums[i, j]
            out_crow[i + 1:] = q + 1                   # rows <= i end before q + 1

    Inputs
    ------
    a_row, a_col : int64[nnz]
        Row and column of each stored entry, in storage order: any order, duplicates allowed.
    a_val : value[nnz]
        Value of each stored entry.
    nrows : int
        Number of rows; every ``a_row[p]`` is in ``[0, nrows)``.

    Outputs
    -------
    out_crow : int64[nrows + 1]
        Row pointers of the result: row i holds ``out_crow[i]:out_crow[i + 1]``, and
        ``nnz_out = out_crow[nrows]``.
    out_col : int64[>= nnz_out]
        Columns of the result, strictly ascending within each row (first nnz_out used).
    out_val : value[>= nnz_out]
        ``out_val[q] = ((a_val[p0] + a_val[p1]) + a_val[p2]) + ...`` over the duplicates
        p0 < p1 < p2 < ... of that (row, column): storage order, starting from the first
        value itself (not from 0, which would turn -0.0 into 0.0). Explicit zeros and
        exact cancellations stay as stored zeros.
    out_pos : int64[nnz] or int64[0]
        If it has length nnz: ``out_pos[p]`` is the position in the result of stored
        entry p (the backward of coalesce gathers with it). Length 0 skips it.

    Preconditions
    -------------
    Indices in range (the tensor layer checks); columns may be any int64. The caller
    allocates ``out_col`` and ``out_val`` with nnz entries (an upper bound on nnz_out)
    and keeps the first ``out_crow[nrows]``.

    Complexity
    ----------
    O(nnz + nrows) for the counting sort, plus O(L log L) to sort each row of L entries
    by column (a row put in order by rank instead, 17-128 entries with AVX2 or AVX-512,
    costs O(L squared / vector lanes)). Extra memory in the kernel: O(nnz + threads * nrows) for the sort and the
    per-chunk counts, plus 2 * min(longest row, 4096) entries per thread and twice the
    longest row once.

    Parallelism
    -----------
    The kernel splits the entries into one contiguous chunk per thread: each chunk
    counts its rows, a serial pass turns the counts into per-chunk offsets (chunk c
    writes after chunks < c within every row, so the sort stays stable), and each chunk
    scatters its entries. Rows are then sorted and written in ``prange`` loops over rows,
    each thread with its own buffer (rows longer than 4096 entries are sorted one at a
    time afterwards, with one shared buffer). No step depends on the thread count's
    scheduling, so the result is the same bit for bit for any number of threads.

    Reference
    ---------
    Counting sort: Knuth, TAOCP vol. 3, 5.2. SciPy's ``coo_tocsr`` and
    ``csr_sum_duplicates`` (sparsetools) use the same count / prefix sum / fill pattern.
    """
    nnz = len(a_row)
    # 1. Stable counting sort by row: count each row, prefix-sum the counts into row
    #    starts, then drop each (column, position, value) into the next free slot of its
    #    row, scanning in storage order. (The kernel splits this into one chunk per
    #    thread; one chunk gives the same result.)
    counts = [0] * nrows
    count_chunk(a_row, 0, nnz, counts)
    start = [0] * (nrows + 1)
    for i in range(nrows):
        start[i + 1] = start[i] + counts[i]
    entries = [None] * nnz
    scatter_chunk(a_row, a_col, a_val, 0, nnz, start[:nrows], entries)
    rows = [entries[start[i]:start[i + 1]] for i in range(nrows)]

    # 2. Sort each row by column and count its distinct columns; the prefix sum of the
    #    counts is out_crow.
    out_crow[0] = 0
    for i in range(nrows):
        out_crow[i + 1] = out_crow[i] + sort_row(rows[i])

    # 3. Write each distinct (row, column) once, its duplicates summed in storage order.
    for i in range(nrows):
        write_row(rows[i], out_crow[i], out_col, out_val, out_pos)


def count_chunk(a_row, lo, hi, counts):
    """Count the entries ``lo:hi`` of each row."""
    for p in range(lo, hi):
        counts[a_row[p]] += 1


def scatter_chunk(a_row, a_col, a_val, lo, hi, next_slot, entries):
    """Drop the entries ``lo:hi``, in storage order, into the next free slot of their row."""
    for p in range(lo, hi):
        entries[next_slot[a_row[p]]] = (a_col[p], p, a_val[p])
        next_slot[a_row[p]] += 1


def sort_row(row_entries):
    """Sort one row's (column, position, value) entries by column, in place; return its
    distinct columns. Python's sort is stable, so duplicates keep their storage order (which fixes
    the order in which ``write_row`` adds them)."""
    row_entries.sort(key=lambda entry: entry[0])
    return len({entry[0] for entry in row_entries})


def write_row(row_entries, first_out, out_col, out_val, out_pos):
    """Write one sorted row from ``first_out`` on: each distinct column once, each
    duplicate added to the entry before it."""
    q_out = first_out - 1
    for q, (col, p, value) in enumerate(row_entries):
        if q == 0 or col != out_col[q_out]:
            q_out += 1
            out_col[q_out] = col
            out_val[q_out] = value
        else:
            out_val[q_out] += value
        if len(out_pos) > 0:
            out_pos[p] = q_out

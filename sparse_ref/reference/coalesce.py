"""Coalescing a COO matrix: sort row-major, sum duplicates in storage order.

Twin of ``sparse_ref/_kernels/coalesce.pyx``. Three steps, the same in both:

1. a stable counting sort of the entries by row (count, prefix sum, fill);
2. a stable sort of each row by column, counting the distinct columns; a prefix sum of
   those counts gives the row pointers of the result;
3. one pass that writes each distinct (row, column) once, summing its duplicates in
   storage order.
"""


def coalesce(a_row, a_col, a_val, nrows, out_crow, out_col, out_val, out_pos, n_threads=1):
    """Sort a COO matrix row-major and sum its duplicates in storage order.

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
    by column. Extra memory in the kernel: O(nnz + threads * nrows) for the sort and the
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
    #    starts, then drop every entry into the next free slot of its row, scanning in
    #    storage order. `order` lists storage positions, row by row.
    start = [0] * (nrows + 1)
    for p in range(nnz):
        start[a_row[p] + 1] += 1
    for i in range(nrows):
        start[i + 1] += start[i]
    next_slot = start[:nrows]
    order = [0] * nnz
    for p in range(nnz):
        i = a_row[p]
        order[next_slot[i]] = p
        next_slot[i] += 1

    # 2. Sort each row by column. Python's sort is stable, so duplicates keep their
    #    storage order (which fixes the order in which step 3 adds them). Count the
    #    distinct columns of each row; their prefix sum is out_crow.
    out_crow[0] = 0
    for i in range(nrows):
        order[start[i]:start[i + 1]] = sorted(order[start[i]:start[i + 1]], key=lambda p: a_col[p])
        distinct = 0
        for q in range(start[i], start[i + 1]):
            if q == start[i] or a_col[order[q]] != a_col[order[q - 1]]:
                distinct += 1
        out_crow[i + 1] = out_crow[i] + distinct

    # 3. Write each distinct (row, column) once; add each duplicate to the entry before.
    for i in range(nrows):
        q_out = out_crow[i] - 1
        for q in range(start[i], start[i + 1]):
            p = order[q]
            if q == start[i] or a_col[p] != out_col[q_out]:
                q_out += 1
                out_col[q_out] = a_col[p]
                out_val[q_out] = a_val[p]
            else:
                out_val[q_out] += a_val[p]
            if len(out_pos) > 0:
                out_pos[p] = q_out

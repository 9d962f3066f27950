"""Coalescing a COO matrix: sort row-major, sum duplicates in storage order.

Two passes, as in every kernel that makes a sparse output: a *symbolic* pass that finds
the order and the output size, then (after the caller allocates the output) a *numeric*
pass that writes it. Twin of ``sparse_ref/_kernels/coalesce.pyx``.
"""


def coalesce_symbolic(a_row, a_col, nrows, out_perm, out_seg, out_crow, n_threads=1):
    """Find the row-major order of a COO matrix and the size of its coalesced form.

    Inputs
    ------
    a_row, a_col : int64[nnz]
        Row and column of each stored entry, in storage order, any order, duplicates allowed.
    nrows : int
        Number of rows; every ``a_row[p]`` is in ``[0, nrows)``.

    Outputs
    -------
    out_perm : int64[nnz]
        Storage positions in row-major order; duplicates stay in storage order (stable).
    out_seg : int64[nrows + 1]
        Row i's entries are ``out_perm[out_seg[i]:out_seg[i + 1]]`` (duplicates included).
    out_crow : int64[nrows + 1]
        Row pointers of the coalesced matrix: row i keeps ``out_crow[i + 1] - out_crow[i]``
        distinct columns, and ``out_crow[nrows]`` is its nnz.

    Preconditions
    -------------
    Indices in range (the tensor layer checks this). Columns may be any int64.

    Complexity
    ----------
    O(nnz + nrows) for the counting sort by row, plus O(L log L) to sort each row of L
    entries by column. Extra memory O(nrows) plus, in the kernel, two buffers of the
    longest row per thread.

    Parallelism
    -----------
    The counting sort is serial (it is bound by memory); the per-row sorts run in a
    ``prange`` over rows, each thread with its own buffers. Every row is sorted by a
    stable sort, so the result does not depend on the thread count.

    Reference
    ---------
    Counting sort: Knuth, TAOCP vol. 3, 5.2; SciPy's ``coo_tocsr`` uses the same
    count / prefix sum / fill pattern.
    """
    nnz = len(a_row)
    # 1. Counting sort by row, stable: count each row, prefix-sum the counts, then drop
    #    every entry into the next free slot of its row, scanning in storage order.
    for i in range(nrows + 1):
        out_seg[i] = 0
    for p in range(nnz):
        out_seg[a_row[p] + 1] += 1
    for i in range(nrows):
        out_seg[i + 1] += out_seg[i]
    next_slot = [out_seg[i] for i in range(nrows)]
    for p in range(nnz):
        i = a_row[p]
        out_perm[next_slot[i]] = p
        next_slot[i] += 1

    # 2. Sort each row by column. Python's sort is stable, so duplicates keep their
    #    storage order, which fixes the order in which coalesce_numeric sums them.
    out_crow[0] = 0
    for i in range(nrows):
        start, end = out_seg[i], out_seg[i + 1]
        row_entries = sorted(out_perm[start:end], key=lambda p: a_col[p])
        distinct = 0
        for q, p in enumerate(row_entries):
            out_perm[start + q] = p
            if q == 0 or a_col[p] != a_col[row_entries[q - 1]]:
                distinct += 1
        out_crow[i + 1] = out_crow[i] + distinct


def coalesce_numeric(a_col, a_val, perm, seg, crow, out_col, out_val, out_pos, n_threads=1):
    """Write the coalesced matrix: one entry per distinct (row, column), duplicates summed.

    Inputs
    ------
    a_col : int64[nnz]
        Column of each stored entry, in storage order.
    a_val : value[nnz]
        Value of each stored entry, in storage order.
    perm, seg, crow : int64[nnz], int64[nrows + 1], int64[nrows + 1]
        The outputs of ``coalesce_symbolic``.

    Outputs
    -------
    out_col : int64[crow[nrows]]
        Columns of the coalesced matrix, ascending within each row.
    out_val : value[crow[nrows]]
        ``out_val[q] = ((a_val[p0] + a_val[p1]) + a_val[p2]) + ...`` over the duplicates
        p0 < p1 < p2 < ... of that (row, column), summed in storage order and starting
        from the first value itself (not from 0, which would turn -0.0 into 0.0).
        Explicit zeros and exact cancellations are kept as stored zeros.
    out_pos : int64[nnz]
        ``out_pos[p]`` is the position in the coalesced matrix of stored entry p; the
        backward of coalesce gathers the gradient with it.

    Preconditions
    -------------
    ``perm``, ``seg`` and ``crow`` come from ``coalesce_symbolic`` on the same matrix.

    Complexity
    ----------
    O(nnz + nrows) time, no extra memory.

    Parallelism
    -----------
    A ``prange`` over rows: each row writes only its own slice of the outputs.
    """
    nrows = len(seg) - 1
    for i in range(nrows):
        q_out = crow[i] - 1
        for q in range(seg[i], seg[i + 1]):
            p = perm[q]
            if q == seg[i] or a_col[p] != out_col[q_out]:
                q_out += 1
                out_col[q_out] = a_col[p]
                out_val[q_out] = a_val[p]
            else:
                out_val[q_out] += a_val[p]
            out_pos[p] = q_out

"""Sparse x sparse (SpGEMM): ``C = A @ B`` for CSR matrices, by Gustavson's row-by-row
algorithm in two passes: a symbolic pass that counts each output row exactly, then (after
the caller allocates the output) a numeric pass that fills it. Or in one pass, into output
arrays as long as a bound on C's entries (its products), packed row after row.
Twin of ``sparse_ref/_kernels/spgemm.pyx``.
"""

import numpy as np

from sparse_ref.reference._arith import mul

__all__ = ["spgemm_bounds", "spgemm_symbolic", "spgemm_numeric", "spgemm_onepass", "spgemm_masked"]


def spgemm_bounds(a_crow, a_col, b_crow, out_flops, out_longest, n_threads=1):
    """Per-row bounds on the size of ``C = A @ B``, from row lengths alone, before any
    product is formed (how SpGEMM refuses an impossible output in O(nnz(A))).

    Simple version
    --------------
    The same result, with NumPy::

        lengths = np.diff(b_crow)[a_col]           # the length of row k of B, per stored (i, k)
        for i in range(len(a_crow) - 1):
            out_flops[i] = lengths[a_crow[i]:a_crow[i + 1]].sum()
            out_longest[i] = lengths[a_crow[i]:a_crow[i + 1]].max(initial=0)

    Inputs
    ------
    a_crow, a_col : int64[nrows + 1], int64[nnz_a]
        The pattern of A (CSR).
    b_crow : int64[ncols_a + 1]
        Row pointers of B.

    Outputs
    -------
    out_flops : int64[nrows]
        ``out_flops[i]`` = the number of products a_ik * b_kj of row i: the sum of the
        lengths of the rows k of B that row i of A reaches. An upper bound on the entries
        of row i of C, and the work of row i.
    out_longest : int64[nrows]
        ``out_longest[i]`` = the longest of those rows of B (0 for an empty row): a lower
        bound on the entries of row i of C, since the columns of one row of B are distinct.

    Preconditions
    -------------
    Columns of A in ``[0, ncols_a)``.

    Complexity
    ----------
    O(nrows + nnz(A)) time, no extra memory.

    Parallelism
    -----------
    A ``prange`` over rows of A; each writes its own two outputs.
    """
    for i in range(len(a_crow) - 1):
        lengths = [b_crow[k + 1] - b_crow[k] for k in a_col[a_crow[i]:a_crow[i + 1]]]
        out_flops[i] = sum(lengths)
        out_longest[i] = max(lengths, default=0)


def spgemm_symbolic(a_crow, a_col, b_crow, b_col, ncols, out_crow, n_threads=1):
    """Count the entries of each row of ``C = A @ B`` (the structural product).

    Simple version
    --------------
    The same result, once the outputs are set to zero (the kernel does not need that:
    it writes every element)::

        for i in range(len(a_crow) - 1):
            ks = a_col[a_crow[i]:a_crow[i + 1]]    # the rows of B that row i of A reaches
            row = {j for k in ks for j in b_col[b_crow[k]:b_crow[k + 1]]}
            out_crow[i + 1] = out_crow[i] + len(row)

    Inputs
    ------
    a_crow, a_col : int64[nrows + 1], int64[nnz_a]
        The pattern of A (CSR, coalesced).
    b_crow, b_col : int64[ncols_a + 1], int64[nnz_b]
        The pattern of B (CSR, coalesced).
    ncols : int
        Number of columns of B (and C).

    Outputs
    -------
    out_crow : int64[nrows + 1]
        Row pointers of C: row i of C has one entry for every column j such that some
        stored (i, k) of A meets some stored (k, j) of B, whatever the values (explicit
        zeros and exact cancellations count). ``out_crow[nrows]`` is nnz(C), counted in
        int64.

    Preconditions
    -------------
    Columns of A in ``[0, ncols_a)``, of B in ``[0, ncols)``.

    Complexity
    ----------
    O(flops) time, where flops = sum over stored (i, k) of A of the length of row k of
    B; O(threads * ncols) extra memory in the kernel (one marker array per thread).

    Parallelism
    -----------
    A ``prange`` over rows of A; each thread owns its marker array. The prefix sum that
    turns counts into row pointers is serial.

    Reference
    ---------
    F. G. Gustavson, "Two fast algorithms for sparse matrices: multiplication and
    permuted transposition", ACM TOMS 4(3), 1978; R. E. Bank and C. C. Douglas, "Sparse
    matrix multiplication package (SMMP)", 1993. SciPy: ``csr_matmat_maxnnz``.
    """
    nrows = len(a_crow) - 1
    out_crow[0] = 0
    for i in range(nrows):
        out_crow[i + 1] = count_row(a_col, a_crow[i], a_crow[i + 1], b_crow, b_col)
    for i in range(nrows):  # the prefix sum turns the counts into row pointers
        out_crow[i + 1] += out_crow[i]


def count_row(a_col, start, end, b_crow, b_col):
    """The distinct columns j of one row of C, from the stored (i, k) ``start:end`` of A:
    the columns of every row k of B it reaches, counted once each."""
    columns = set()
    for q in range(start, end):
        k = a_col[q]
        for r in range(b_crow[k], b_crow[k + 1]):
            columns.add(b_col[r])
    return len(columns)

def spgemm_numeric(a_crow, a_col, a_val, b_crow, b_col, b_val, ncols, crow, out_col, out_val,
                   n_threads=1):
    """Fill ``C = A @ B`` into the row pointers that ``spgemm_symbolic`` counted.

    Simple version
    --------------
    The same result up to rounding::

        for i in range(len(a_crow) - 1):
            row = {}                                          # j -> C[i, j]
            for q in range(a_crow[i], a_crow[i + 1]):
                for r in range(b_crow[a_col[q]], b_crow[a_col[q] + 1]):
                    row[b_col[r]] = row.get(b_col[r], 0) + a_val[q] * b_val[r]
            out_col[crow[i]:crow[i + 1]] = sorted(row)
            out_val[crow[i]:crow[i + 1]] = [row[j] for j in sorted(row)]

    Inputs
    ------
    a_crow, a_col, a_val
        A in CSR form, coalesced.
    b_crow, b_col, b_val
        B in CSR form, coalesced.
    ncols : int
        Number of columns of B.
    crow : int64[nrows + 1]
        The output of ``spgemm_symbolic``.

    Outputs
    -------
    out_col : int64[crow[nrows]]
        Columns of C, ascending within each row.
    out_val : value[crow[nrows]]
        ``C[i, j] = ((0 + a_ik0 * b_k0j) + a_ik1 * b_k1j) + ...``: for row i, the stored
        (i, k) of A in ascending k, and for each the stored (k, j) of B in ascending j,
        each product added to its column's running sum as it comes.

    Preconditions
    -------------
    ``crow`` comes from ``spgemm_symbolic`` on the same patterns.

    Complexity
    ----------
    O(flops + nnz(C) log(row length of C)) time; a row put in order by rank (of 17-128
    entries, with AVX2 or AVX-512) costs O(its length squared / vector lanes) instead.
    Extra memory in the kernel, per thread: a slot array over the columns (where column
    j's running sum sits in this row's short list), 3 x the longest output row (the short
    list of sums and a sort buffer), the ranks of a row of up to 128 columns, the
    longest row of A (where each row of B's new columns begin, for the sort), and one sum
    per column when that takes at most 4 MiB (for the rows whose columns lie close
    together: the dense accumulator).

    Parallelism
    -----------
    A ``prange`` over rows of A; each thread owns its slot array, sums and sort buffer,
    allocated once before the parallel block. Rows write disjoint slices of the
    output, and each C[i, j] is summed in the order above on any number of threads.

    Reference
    ---------
    Gustavson 1978 (dense accumulator, "SPA"); SciPy: ``csr_matmat``.
    """
    for i in range(len(a_crow) - 1):
        row = slice(crow[i], crow[i + 1])
        fill_row(a_col, a_val, a_crow[i], a_crow[i + 1], b_crow, b_col, b_val,
                 out_col[row], out_val[row])


def spgemm_onepass(a_crow, a_col, a_val, b_crow, b_col, b_val, ncols, out_crow, out_col, out_val, n_threads=1):
    """``C = A @ B`` in one pass, with no count first: each row of C is written packed
    after the one before, into output arrays long enough for C (a bound on its entries,
    such as its products, known before any product is formed).

    Simple version
    --------------
    The same result up to rounding; ``out_col[:out_crow[nrows]]`` and
    ``out_val[:out_crow[nrows]]`` are C's columns and values, the rest is left as it was::

        out_crow[0] = 0
        for i in range(len(a_crow) - 1):
            row = {}                                          # j -> C[i, j]
            for q in range(a_crow[i], a_crow[i + 1]):
                for r in range(b_crow[a_col[q]], b_crow[a_col[q] + 1]):
                    row[b_col[r]] = row.get(b_col[r], 0) + a_val[q] * b_val[r]
            out_crow[i + 1] = out_crow[i] + len(row)
            out_col[out_crow[i]:out_crow[i + 1]] = sorted(row)
            out_val[out_crow[i]:out_crow[i + 1]] = [row[j] for j in sorted(row)]

    Inputs
    ------
    a_crow, a_col, a_val
        A in CSR form, coalesced.
    b_crow, b_col, b_val
        B in CSR form, coalesced.
    ncols : int
        Number of columns of B.

    Outputs
    -------
    out_crow : int64[nrows + 1]
        Row pointers of C, as ``spgemm_symbolic`` counts them (``out_crow[0] = 0``).
    out_col : int64[at least nnz(C)]
        Columns of C in its first ``out_crow[nrows]`` entries, ascending within each row;
        the entries past them are left as they were.
    out_val : value[as long as out_col]
        Values of C in its first ``out_crow[nrows]`` entries, summed as in
        ``spgemm_numeric``.

    Preconditions
    -------------
    Columns of A in ``[0, ncols_a)``, of B in ``[0, ncols)``. ``out_col`` and ``out_val``
    hold C: C's products, the ``out_flops`` of ``spgemm_bounds`` summed, are always room
    enough. Shorter arrays raise ValueError, with nothing written past them.

    Complexity
    ----------
    As ``spgemm_numeric``, with its per-thread memory sized for rows of C of at most
    min(longest row of A x longest row of B, ncols) entries, plus a buffer per thread for
    one chunk of rows (its products, or its rows times that bound when this is at most
    131,072 entries); the symbolic pass is not needed, at the price of output arrays as
    long as the bound.

    Parallelism
    -----------
    The rows are cut into chunks (``row_chunk``), handed to the threads in order (an
    atomic counter). A thread writes its chunk's rows packed into its own buffer (in its
    cache), publishes their count, and adds up the counts of the chunks before it, looking
    back until it meets one that knows where it ends (waiting on one still being computed):
    that is where its chunk starts. It publishes where its chunk ends, copies the buffer
    there and moves the chunk's row pointers by the same amount. Each C[i, j] is summed in
    the order above on any number of threads: the same bits as the two passes.

    Reference
    ---------
    Gustavson 1978; the upper-bound allocation of one-pass SpGEMM: Nagasaka, Matsuoka,
    Azad and Buluç, "Performance optimization, modeling and analysis of sparse
    matrix-matrix products on multi-core and many-core processors", Parallel Computing
    90, 2019; the look-back: D. Merrill and M. Garland, "Single-pass parallel prefix scan
    with decoupled look-back", NVIDIA technical report NVR-2016-002, 2016.
    """
    room = min(len(out_col), len(out_val))
    out_crow[0] = 0
    for i in range(len(a_crow) - 1):  # row i into room for its products, then where it goes
        products = sum(b_crow[k + 1] - b_crow[k] for k in a_col[a_crow[i]:a_crow[i + 1]])
        row_col, row_val = np.empty(products, out_col.dtype), np.empty(products, out_val.dtype)
        n = fill_row(a_col, a_val, a_crow[i], a_crow[i + 1], b_crow, b_col, b_val, row_col, row_val)
        if out_crow[i] + n > room:
            raise ValueError(f"spgemm_onepass: the output arrays hold {room} entries, fewer than C has "
                             f"(at least {out_crow[i] + n})")
        out_crow[i + 1] = out_crow[i] + n
        out_col[out_crow[i]:out_crow[i + 1]] = row_col[:n]
        out_val[out_crow[i]:out_crow[i + 1]] = row_val[:n]


def fill_row(a_col, a_val, start, end, b_crow, b_col, b_val, out_col, out_val):
    """One row of C, from the stored (i, k) ``start:end`` of A, written sorted by column
    into ``out_col`` and ``out_val`` (this row's slices of the outputs); returns its
    number of entries."""
    acc = {}  # column -> running sum, in the order the products arrive
    for q in range(start, end):
        k = a_col[q]
        for r in range(b_crow[k], b_crow[k + 1]):
            j = b_col[r]
            acc[j] = acc.get(j, out_val.dtype.type(0)) + mul(a_val[q], b_val[r])
    for t, j in enumerate(sorted(acc)):
        out_col[t] = j
        out_val[t] = acc[j]
    return len(acc)


def spgemm_masked(p_row, p_col, x_crow, x_col, x_val, y_crow, y_col, y_val, out, n_threads=1):
    """Masked sparse-sparse product: ``out[p] = sum_c x[p_row[p], c] * y[p_col[p], c]``.

    The entries of ``X @ Y^T`` at the sampled positions only, for sparse X and Y: the
    backward of SpGEMM (``grad_A = mask(G @ B^H, A)`` with X = G, Y = conj(B); and
    ``grad_B = mask(A^H @ G, B)`` with X = A^H, Y = G^T, both in CSR form).

    Simple version
    --------------
    The same result up to rounding, once the outputs are set to zero (the kernel does
    not need that: it writes every element)::

        for p in range(len(p_row)):
            i, k = p_row[p], p_col[p]
            for s in range(x_crow[i], x_crow[i + 1]):         # x[i, c] ...
                for t in range(y_crow[k], y_crow[k + 1]):     # ... meets y[k, c]
                    if x_col[s] == y_col[t]:
                        out[p] += x_val[s] * y_val[t]

    Inputs
    ------
    p_row, p_col : int64[nnz]
        The sampled positions.
    x_crow, x_col, x_val
        X in CSR form, coalesced (columns ascending within each row).
    y_crow, y_col, y_val
        Y in CSR form, coalesced; X and Y have the same number of columns.

    Outputs
    -------
    out : value[nnz]
        ``out[p] = ((0 + x[i, c0] * y[k, c0]) + x[i, c1] * y[k, c1]) + ...`` over the
        columns c0 < c1 < ... stored in both row i = p_row[p] of X and row k = p_col[p] of
        Y (a merge of the two sorted rows). No common column gives 0.

    Preconditions
    -------------
    Rows in range; both matrices coalesced.

    Complexity
    ----------
    O(sum over p of (length of row i of X + length of row k of Y)) time, no extra memory:
    never the dense product.

    Parallelism
    -----------
    A ``prange`` over sampled positions; each output is independent.
    """
    for p in range(len(p_row)):
        i, k = p_row[p], p_col[p]
        out[p] = masked_dot(x_col, x_val, x_crow[i], x_crow[i + 1],
                            y_col, y_val, y_crow[k], y_crow[k + 1])


def masked_dot(x_col, x_val, s, s_end, y_col, y_val, t, t_end):
    """``sum_c x[c] * y[c]`` over the columns c stored in both sparse rows (x's entries
    ``s:s_end``, y's ``t:t_end``, each sorted): a merge, adding in ascending c from 0."""
    acc = x_val.dtype.type(0)
    while s < s_end and t < t_end:
        if x_col[s] < y_col[t]:
            s += 1
        elif y_col[t] < x_col[s]:
            t += 1
        else:
            acc = acc + mul(x_val[s], y_val[t])
            s += 1
            t += 1
    return acc

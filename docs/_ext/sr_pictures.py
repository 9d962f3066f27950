"""The pictures of the docs, drawn when the docs build from what sparse_ref itself computes
(``.. plot::`` blocks call these functions; no image file is committed).

Each function builds its matrices with sparse_ref, runs the operation (or traces the
reference kernel with :func:`sparse_ref.viz.trace`), and draws the result with matplotlib.
"""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, Rectangle

import sparse_ref as sr
from sparse_ref.reference import coalesce as ref_coalesce
from sparse_ref.reference import spgemm as ref_spgemm

COLOURS = plt.rcParams["axes.prop_cycle"].by_key()["color"]
LIGHT = ["#dbe9f6", "#fde3cc", "#d9f0d3", "#f9d5d3", "#e8dff5", "#f3e3d3", "#fbe1f1", "#e5e5e5"]


def _fmt(v) -> str:
    return f"{float(v):g}"


def _cells(ax, x, y, texts, *, colours=None, width=0.9, height=0.8, label=None, fontsize=10):
    """A row of boxes with text, left edge at x, centre height y; a label on the left."""
    for t, text in enumerate(texts):
        face = colours[t] if colours is not None else "white"
        ax.add_patch(Rectangle((x + t * width, y - height / 2), width, height, facecolor=face, edgecolor="0.3"))
        ax.text(x + (t + 0.5) * width, y, text, ha="center", va="center", fontsize=fontsize)
    if label:
        ax.text(x - 0.15, y, label, ha="right", va="center", fontsize=10, family="monospace")


def _matrix(ax, dense, x0, y0, *, stored=None, title=None, colours=None, cell=0.8):
    """A dense grid of a matrix: stored entries shaded (colour per entry), others blank."""
    m, n = dense.shape
    for i in range(m):
        for j in range(n):
            face = "white"
            if stored is not None and (i, j) in stored:
                face = colours[stored[(i, j)]] if colours else "#dbe9f6"
            ax.add_patch(Rectangle((x0 + j * cell, y0 - i * cell - cell), cell, cell, facecolor=face, edgecolor="0.75"))
            if stored is None or (i, j) in stored:
                ax.text(x0 + (j + 0.5) * cell, y0 - (i + 0.5) * cell, _fmt(dense[i, j]), ha="center", va="center")
    for j in range(n):
        ax.text(x0 + (j + 0.5) * cell, y0 + 0.2, str(j), ha="center", va="bottom", fontsize=8, color="0.4")
    for i in range(m):
        ax.text(x0 - 0.15, y0 - (i + 0.5) * cell, str(i), ha="right", va="center", fontsize=8, color="0.4")
    if title:
        ax.text(x0 + n * cell / 2, y0 + 0.75, title, ha="center", va="bottom", fontsize=11)


def coo_vs_csr():
    """One 4 x 5 matrix, its COO arrays and its CSR arrays, with the row pointers drawn."""
    s = sr.sparse_coo_tensor([[0, 0, 1, 3, 3, 3], [1, 4, 2, 0, 2, 3]], [5., 8., 3., 6., 0., 7.], (4, 5),
                             dtype=sr.float64).coalesce()
    csr = s.to_sparse_csr()
    row, col = s.indices().numpy()
    val = s.values().numpy()
    crow = csr.crow_indices().numpy()
    dense = s.to_dense().numpy()
    colours = [LIGHT[r] for r in row]
    stored = {(r, c): p for p, (r, c) in enumerate(zip(row, col))}

    fig, ax = plt.subplots(figsize=(10, 4.2))
    _matrix(ax, dense, 0, 4, stored=stored, colours=colours,
            title="the matrix (shaded: stored; the 0 at (3, 2) is an explicit zero)")
    x = 6.2
    ax.text(x, 4.75, "COO: one (row, col, value) per stored entry", fontsize=11, va="bottom")
    _cells(ax, x, 4.1, [str(r) for r in row], colours=colours, label="row")
    _cells(ax, x, 3.2, [str(c) for c in col], colours=colours, label="col")
    _cells(ax, x, 2.3, [_fmt(v) for v in val], colours=colours, label="val")
    ax.text(x, 1.45, "CSR: the rows become pointers; row i is col[crow[i]:crow[i+1]]", fontsize=11, va="bottom")
    _cells(ax, x, 0.8, [str(c) for c in crow], colours=LIGHT[: len(crow) - 1] + ["white"], label="crow")
    _cells(ax, x, -0.6, [str(c) for c in col], colours=colours, label="col")
    _cells(ax, x, -1.5, [_fmt(v) for v in val], colours=colours, label="val")
    for i, start in enumerate(crow):
        ax.add_patch(FancyArrowPatch((x + (i + 0.5) * 0.9, 0.4), (x + start * 0.9 + 0.05, -0.2),
                                     arrowstyle="-|>", mutation_scale=10, color="0.35", lw=1))
    ax.text(x + 4.8, 0.8, "row 2 is empty:\ncrow[2] == crow[3]", fontsize=8, color="0.35", va="center")
    ax.set_xlim(-0.6, x + 6.3)
    ax.set_ylim(-2.1, 5.4)
    ax.set_axis_off()
    fig.tight_layout()
    return fig


def coalesce_steps():
    """Coalescing a 3 x 4 COO matrix: storage order, stable counting sort by row, each row
    sorted by column (duplicates keep their storage order), duplicates summed. The moves
    come from the reference kernel's ``out_pos`` (where each stored entry lands)."""
    row = np.array([2, 0, 1, 2, 0, 2, 1], dtype=np.int64)
    col = np.array([1, 3, 0, 1, 0, 0, 0], dtype=np.int64)
    val = np.array([1.5, 2., 4., 0.5, 1., 3., -4.])
    nnz, nrows = len(row), 3
    out_crow, out_col = np.zeros(nrows + 1, np.int64), np.zeros(nnz, np.int64)
    out_val, out_pos = np.zeros(nnz), np.zeros(nnz, np.int64)
    ref_coalesce.coalesce(row, col, val, nrows, out_crow, out_col, out_val, out_pos)
    # the same through the public API: what a user gets
    c = sr.sparse_coo_tensor(np.stack([row, col]), val, (nrows, 4), dtype=sr.float64).coalesce()
    assert c.values().numpy().tolist() == out_val[: out_crow[-1]].tolist()

    by_row = np.argsort(row, kind="stable")            # step 1: counting sort by row (stable)
    by_row_col = np.argsort(out_pos, kind="stable")     # step 2: then by column within a row
    colours = [LIGHT[q % len(LIGHT)] for q in out_pos]  # one colour per output entry

    fig, ax = plt.subplots(figsize=(10, 4.4))
    columns = [("stored (storage order)", list(range(nnz))), ("1. counting sort by row", list(by_row)),
               ("2. each row by column", list(by_row_col))]
    xs = [0, 3.2, 6.4]
    for x, (title, order) in zip(xs, columns):
        ax.text(x + 1.1, nnz + 0.2, title, ha="center", fontsize=10)
        for t, p in enumerate(order):
            y = nnz - 1 - t
            ax.add_patch(Rectangle((x, y), 2.2, 0.8, facecolor=colours[p], edgecolor="0.3"))
            ax.text(x + 1.1, y + 0.4, f"p={p}  ({row[p]}, {col[p]})  {_fmt(val[p])}", ha="center", va="center",
                    fontsize=9, family="monospace")
    for a, b in ((0, 1), (1, 2)):
        pos_a = {p: t for t, p in enumerate(columns[a][1])}
        pos_b = {p: t for t, p in enumerate(columns[b][1])}
        for p in range(nnz):
            ax.plot([xs[a] + 2.2, xs[b]], [nnz - 1 - pos_a[p] + 0.4, nnz - 1 - pos_b[p] + 0.4], color="0.6", lw=0.8)
    x = 9.8
    ax.text(x + 1.45, nnz + 0.2, "3. duplicates summed", ha="center", fontsize=10)
    pos_2 = {p: t for t, p in enumerate(columns[2][1])}
    for q in range(out_crow[-1]):
        y = nnz - 1 - q
        parts = [p for p in by_row_col if out_pos[p] == q]
        text = " + ".join(_fmt(val[p]) if t == 0 or val[p] >= 0 else f"({_fmt(val[p])})" for t, p in enumerate(parts))
        if len(parts) > 1:
            text += f" = {_fmt(out_val[q])}"
        r = int(np.searchsorted(out_crow, q, side="right") - 1)
        ax.add_patch(Rectangle((x, y), 2.9, 0.8, facecolor=LIGHT[q % len(LIGHT)], edgecolor="0.3"))
        ax.text(x + 1.45, y + 0.4, f"({r}, {out_col[q]})  {text}", ha="center", va="center", fontsize=9,
                family="monospace")
        for p in parts:
            ax.plot([xs[2] + 2.2, x], [nnz - 1 - pos_2[p] + 0.4, y + 0.4], color="0.6", lw=0.8)
    ax.text(x, -0.5, "the cancellation 4 + (-4) = 0 stays stored", fontsize=8, color="0.35")
    ax.set_xlim(-0.2, 12.9)
    ax.set_ylim(-0.8, nnz + 0.8)
    ax.set_axis_off()
    fig.tight_layout()
    return fig


def _csr(t):
    c = t.to_sparse_csr()
    return c.crow_indices().numpy(), c.col_indices().numpy(), c.values().numpy()


def gustavson_table():
    """Gustavson's SpGEMM on 4 x 4 matrices: A and B, then the accumulator of each row of
    C after every product, as the reference kernel's trace records it."""
    a = sr.sparse_coo_tensor([[0, 0, 1, 2, 2, 3], [0, 2, 1, 0, 3, 2]], [1., 2., 3., 4., 5., 6.], (4, 4),
                             dtype=sr.float64)
    b = sr.sparse_coo_tensor([[0, 0, 1, 2, 2, 3], [1, 3, 0, 1, 2, 0]], [1., 2., 3., -1., 4., 2.], (4, 4),
                             dtype=sr.float64)
    (a_crow, a_col, a_val), (b_crow, b_col, b_val) = _csr(a), _csr(b)
    crow = np.zeros(5, np.int64)
    ref_spgemm.spgemm_symbolic(a_crow, a_col, b_crow, b_col, 4, crow)
    out_col, out_val = np.zeros(crow[-1], np.int64), np.zeros(crow[-1])
    steps = sr.viz.trace(ref_spgemm.spgemm_numeric, a_crow, a_col, a_val, b_crow, b_col, b_val, 4, crow,
                         out_col, out_val)
    c = sr.sparse.mm(a, b)  # the product as a user gets it: the trace must end there
    assert out_val.tolist() == c.values().numpy().tolist()

    # one table row per product a_ik * b_kj: the accumulator after it is added
    table, i_now = [], None
    for step in steps:
        if step["function"] == "spgemm_numeric" and "i" in step:
            i_now = step["i"]
        if "acc" in step["changed"] and step["acc"]:
            q, r = step["q"], step["r"]
            table.append((i_now, int(a_col[q]), int(step["j"]), a_val[q], b_val[r], dict(step["acc"])))

    fig = plt.figure(figsize=(10, 4.6))
    grid = fig.add_gridspec(1, 3, width_ratios=[1, 1, 2.3])
    for g, (t, name) in enumerate(((a, "A"), (b, "B"))):
        ax = fig.add_subplot(grid[0, g])
        sr.viz.spy(t, ax=ax, values=True, markersize=22)
        ax.set_title(name)
    ax = fig.add_subplot(grid[0, 2])
    ax.set_axis_off()
    rows = []
    for i, k, j, av, bv, acc in table:
        cells = [_fmt(acc[col]) if col in acc else "" for col in range(4)]
        rows.append([str(i), f"a[{i},{k}]*b[{k},{j}] = {_fmt(av)}*{_fmt(bv) if bv >= 0 else f'({_fmt(bv)})'}"] + cells)
    tab = ax.table(cellText=rows, colLabels=["i", "product", "acc[0]", "acc[1]", "acc[2]", "acc[3]"],
                   loc="center", cellLoc="center", colWidths=[0.06, 0.46, 0.12, 0.12, 0.12, 0.12])
    tab.auto_set_font_size(False)
    tab.set_fontsize(8.5)
    tab.scale(1, 1.25)
    for t, (i, k, j, *_rest) in enumerate(table):
        tab[t + 1, 2 + j].set_facecolor("#fde3cc")  # the slot this product changed
        for col in range(6):
            if i % 2:
                cell = tab[t + 1, col]
                if col != 2 + j:
                    cell.set_facecolor("#f2f2f2")
    ax.set_title("accumulator of row i after each product (then emitted sorted by j)", fontsize=10)
    fig.tight_layout()
    return fig


def masked_vs_dense_gradient():
    """The gradient of a sparse A in y = A @ B: torch's dense rule G B^H everywhere, and
    the masked gradient sparse_ref returns, read at A's stored entries only."""
    sr.manual_seed(3)
    a = sr.sparse_coo_tensor([[0, 0, 1, 2, 3, 4], [0, 3, 2, 4, 1, 4]], [1., -2., 0., 3., 1., 2.], (5, 6),
                             dtype=sr.float64, requires_grad=True)
    b = sr.randn(6, 3, dtype=sr.float64)
    g = sr.randn(5, 3, dtype=sr.float64)
    sr.sparse.mm(a, b).backward(g)
    dense_a = sr.tensor(a.detach().to_dense().numpy(), requires_grad=True)
    sr.sparse.mm(dense_a, b).backward(g)  # a dense leaf gets the dense gradient
    full = dense_a.grad.numpy()
    idx = a.grad.indices().numpy()
    assert np.allclose(full[tuple(idx)], a.grad.values().numpy())

    masked = np.full(full.shape, np.nan)
    masked[tuple(idx)] = a.grad.values().numpy()
    zero = [(i, j) for (i, j), v in zip(idx.T, a.detach().coalesce().values().numpy()) if v == 0]

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.9))
    lim = np.abs(full).max()
    titles = ("dense rule: G @ B^H, 30 numbers\n(boxes: A's stored entries)",
              "masked: a.grad,\none number per stored entry of A")
    for ax, grid, title in zip(axes, (full, masked), titles):
        im = ax.imshow(grid, cmap="RdBu_r", vmin=-lim, vmax=lim)
        for (i, j), v in np.ndenumerate(grid):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8)
        for i, j in idx.T:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="k", lw=2))
        ax.set_title(title, fontsize=10)
        ax.xaxis.tick_top()
        ax.set_xticks(range(full.shape[1]))
        ax.set_yticks(range(full.shape[0]))
    for i, j in zero:
        axes[1].add_patch(Rectangle((j - 0.42, i - 0.42), 0.84, 0.84, fill=False, edgecolor="C3", lw=2, ls="--"))
        axes[1].set_xlabel(f"dashed: A stores an explicit 0 at ({i}, {j}); it gets its gradient too",
                           fontsize=9, color="C3")
    fig.colorbar(im, ax=axes, shrink=0.8)
    return fig


def sddmm_sampled():
    """SDDMM: the product X @ Y^T read only at the stored positions of S -- one dot product
    per stored entry -- drawn next to the full product (computed here for the picture)."""
    sr.manual_seed(1)
    s = sr.sparse_coo_tensor([[0, 0, 1, 2, 3, 3, 4], [1, 4, 2, 0, 3, 5, 1]], [1.] * 7, (5, 6), dtype=sr.float64)
    x = sr.randn(5, 3, dtype=sr.float64)
    y = sr.randn(3, 6, dtype=sr.float64)
    out = sr.sparse.sampled_addmm(s, x, y, beta=0.0, alpha=1.0)  # mask(X @ Y, S)
    full = x.numpy() @ y.numpy()
    idx = out.indices().numpy()
    assert np.allclose(out.values().numpy(), full[tuple(idx)])

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), layout="constrained")
    sr.viz.spy(s, ax=axes[0], markersize=22)
    axes[0].set_title("S: where to sample (7 entries)", fontsize=10, pad=8)
    lim = np.abs(full).max()
    axes[1].imshow(full, cmap="RdBu_r", vmin=-lim, vmax=lim, alpha=0.35)
    for (i, j), v in np.ndenumerate(full):
        axes[1].text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8, color="0.45")
    for i, j in idx.T:
        axes[1].add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="k", lw=2))
    axes[1].set_title("X @ Y: 30 dot products (never formed)", fontsize=10, pad=8)
    axes[2].imshow(np.full(full.shape, np.nan), cmap="RdBu_r", vmin=-lim, vmax=lim)
    for (i, j), v in zip(idx.T, out.values().numpy()):
        axes[2].add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=plt.cm.RdBu_r(0.5 + v / (2 * lim)),
                                    edgecolor="k", lw=2))
        axes[2].text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8,
                     color="white" if abs(v) > 0.6 * lim else "black")
    axes[2].set_title("SDDMM: the 7 sampled dot products", fontsize=10, pad=8)
    for ax in axes[1:]:
        ax.set_xlim(-0.5, 5.5)
        ax.set_ylim(4.5, -0.5)
        ax.xaxis.tick_top()
    return fig

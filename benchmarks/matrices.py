"""The benchmark matrices (issue 3), as SciPy CSR arrays with sorted, unique indices.

- ``uniform``: n = 200,000, 10 stored entries per row at uniformly random columns;
- ``powerlaw``: n = 200,000, row lengths drawn from a Pareto law (a few rows with
  thousands of entries, most with a handful), about 10 per row on average;
- ``laplacian``: the 5-point Laplacian of a 450 x 450 grid (n = 202,500).
"""

import numpy as np
import scipy.sparse as sp


def uniform(n=200_000, per_row=10, seed=0):
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n), per_row)
    cols = rng.integers(0, n, n * per_row)
    return _csr(rows, cols, rng.standard_normal(n * per_row), n)


def powerlaw(n=200_000, mean_per_row=10, seed=1):
    rng = np.random.default_rng(seed)
    lengths = np.minimum(rng.pareto(1.3, n) + 1, n // 20)
    lengths = np.maximum(np.round(lengths * mean_per_row / lengths.mean()), 1).astype(np.int64)
    rows = np.repeat(np.arange(n), lengths)
    cols = rng.integers(0, n, rows.shape[0])
    return _csr(rows, cols, rng.standard_normal(rows.shape[0]), n)


def laplacian(grid=450):
    one_d = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(grid, grid))
    eye = sp.eye_array(grid)
    lap = (sp.kron(one_d, eye) + sp.kron(eye, one_d)).tocsr()
    lap.sum_duplicates()
    lap.sort_indices()
    return lap


def _csr(rows, cols, vals, n):
    m = sp.csr_array((vals, (rows, cols)), shape=(n, n))
    m.sum_duplicates()
    m.sort_indices()
    return m


MATRICES = {"uniform": uniform, "powerlaw": powerlaw, "laplacian": laplacian}

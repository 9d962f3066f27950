"""Small built-in data for tutorials and tests (layer 5): typed in, never downloaded.

Examples
--------
>>> import sparse_ref as sr
>>> g = sr.datasets.karate_club()
>>> g.num_nodes, g.edge_index.shape, g.y.tolist().count(1)
(34, (2, 156), 17)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sparse_ref import _dtypes
from sparse_ref._factories import sparse_coo_tensor, tensor
from sparse_ref._tensor import SparseTensor, Tensor

# Zachary's karate club (1977): 34 members, 78 friendships, and the club each member
# joined when it split (0: the instructor "Mr. Hi", 1: the "Officer"). Each line lists
# a member's friends with a larger number (the numbering of networkx's karate_club_graph).
_FRIENDS = {
    0: [1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 17, 19, 21, 31],
    1: [2, 3, 7, 13, 17, 19, 21, 30], 2: [3, 7, 8, 9, 13, 27, 28, 32], 3: [7, 12, 13],
    4: [6, 10], 5: [6, 10, 16], 6: [16], 8: [30, 32, 33], 9: [33], 13: [33], 14: [32, 33],
    15: [32, 33], 18: [32, 33], 19: [33], 20: [32, 33], 22: [32, 33], 23: [25, 27, 29, 32, 33],
    24: [25, 27, 31], 25: [31], 26: [29, 33], 27: [33], 28: [31, 33], 29: [32, 33],
    30: [32, 33], 31: [32, 33], 32: [33],
}
_MR_HI = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 16, 17, 19, 21]


@dataclass
class Graph:
    """An undirected graph: ``edge_index`` (2 x E, each edge in both directions, sorted),
    the class ``y`` of every node, and ``num_nodes``."""

    edge_index: Tensor
    y: Tensor
    num_nodes: int

    def adjacency(self, dtype=None, self_loops: bool = False) -> SparseTensor:
        """The adjacency matrix as a coalesced sparse COO tensor of ones (float32 unless
        ``dtype`` says otherwise), with ``A[i, i] = 1`` added when ``self_loops``."""
        idx = self.edge_index.numpy()
        if self_loops:
            loops = np.arange(self.num_nodes)
            idx = np.concatenate([idx, np.stack([loops, loops])], axis=1)
        dt = _dtypes.as_dtype(dtype, "adjacency") if dtype is not None else _dtypes.default_dtype
        n = self.num_nodes
        return sparse_coo_tensor(idx, np.ones(idx.shape[1], dtype=dt), (n, n)).coalesce()


def karate_club() -> Graph:
    """Zachary's karate club: 34 nodes, 78 undirected edges (156 directed), two classes.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> a = sr.datasets.karate_club().adjacency()
    >>> a.shape, a._nnz(), a.sum().item()
    ((34, 34), 156, 156.0)
    """
    pairs = np.array([(u, v) for u, vs in _FRIENDS.items() for v in vs], dtype=np.int64).T
    both = np.concatenate([pairs, pairs[::-1]], axis=1)
    order = np.lexsort((both[1], both[0]))
    y = np.ones(34, dtype=np.int64)
    y[_MR_HI] = 0
    return Graph(edge_index=tensor(both[:, order]), y=tensor(y), num_nodes=34)

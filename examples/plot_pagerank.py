"""
PageRank by power iteration
===========================

PageRank (Brin and Page, 1998) ranks the members of the karate club by how often a random
walk along the friendships visits them. With the transition matrix
:math:`P_{ij} = A_{ij} / \\deg(i)`, the rank is the fixed point of

.. math:: r \\leftarrow \\alpha P^T r + (1 - \\alpha) / n,

one SpMM per iteration with the sparse :math:`P^T`, under ``no_grad``. The error shrinks
by a factor of at most :math:`\\alpha = 0.85` per iteration.
"""

import matplotlib.pyplot as plt
import numpy as np

import sparse_ref as torch  # the program below is torch code
from sparse_ref.datasets import karate_club

# %%
# The transition matrix
# ---------------------
graph = karate_club()
n, edges = graph.num_nodes, graph.edge_index.numpy()
alpha = 0.85
a = torch.sparse_coo_tensor(torch.tensor(edges), torch.ones(edges.shape[1], dtype=torch.float64), (n, n)).coalesce()
out_degree = torch.sparse.mm(a, torch.ones(n, 1, dtype=torch.float64)).squeeze(1)
src, dst = a.indices()[0], a.indices()[1]
p_t = torch.sparse_coo_tensor(torch.stack([dst, src]), a.values() / out_degree[src], (n, n))

# %%
# Power iteration
# ---------------
r = torch.full((n,), 1.0 / n, dtype=torch.float64)
changes = []
with torch.no_grad():
    for _ in range(60):
        new = alpha * torch.sparse.mm(p_t, r.unsqueeze(1)).squeeze(1) + (1 - alpha) / n
        changes.append((new - r).abs().sum().item())
        r = new
print(f"sum of ranks {r.sum().item():.12f}; top members: {np.argsort(-r.numpy())[:5].tolist()}")

# The same vector from a dense eigen-decomposition (fine for 34 nodes, not for millions).
google = alpha * p_t.to_dense().numpy() + (1 - alpha) / n
values, vectors = np.linalg.eig(google)
exact = np.real(vectors[:, np.argmax(np.real(values))])
exact /= exact.sum()
print(f"largest difference to the eigenvector: {np.abs(r.numpy() - exact).max():.1e}")

# %%
# Convergence and the ranks
# -------------------------
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4), width_ratios=[1, 1.6])
left.semilogy(changes, label="|r_t - r_(t-1)|_1")
left.semilogy(changes[0] * alpha ** np.arange(len(changes)), "--", color="0.5", label="0.85^t")
left.set_xlabel("iteration")
left.legend()
order = np.argsort(-r.numpy())
right.bar(range(n), r.numpy()[order], color=np.where(graph.y.numpy()[order] == 0, "C0", "C3"))
right.set_xticks(range(n), order, fontsize=6)
right.set_xlabel("member (blue: Mr. Hi's club, red: the Officer's)")
right.set_ylabel("PageRank")
fig.tight_layout()

"""
GCN on the karate club
======================

A two-layer graph convolutional network (Kipf and Welling, 2017) on Zachary's karate
club: 34 members, 78 friendships, and the club each member joined when it split. Only
four members are labelled (the two leaders and one friend of each); the network labels the
other thirty from the friendships alone.

Each layer is ``A_hat @ (H W)``: a sparse x dense product (SpMM) with the normalised
adjacency :math:`\\hat A = D^{-1/2}(A + I)D^{-1/2}`. Its backward is an SpMM with the
transpose for the features and would be an SDDMM for ``A_hat`` if it required grad.
"""

import matplotlib.pyplot as plt
import numpy as np

import sparse_ref as torch  # the program below is torch code
from sparse_ref.datasets import karate_club
from sparse_ref.viz import spy

F = torch.nn.functional
# sphinx_gallery_thumbnail_number = 3
torch.manual_seed(0)

# %%
# The graph, with self-loops, normalised
# --------------------------------------
graph = karate_club()
n = graph.num_nodes
edges = graph.edge_index.numpy()
loops = np.arange(n)
idx = torch.tensor(np.concatenate([edges, np.stack([loops, loops])], axis=1))
a = torch.sparse_coo_tensor(idx, torch.ones(idx.shape[1], dtype=torch.float64), (n, n)).coalesce()
deg = torch.sparse.mm(a, torch.ones(n, 1, dtype=torch.float64)).squeeze(1)
d = deg ** -0.5
rows, cols = a.indices()[0], a.indices()[1]
a_hat = torch.sparse_coo_tensor(a.indices(), d[rows] * a.values() * d[cols], (n, n))
print(a_hat.shape, a_hat._nnz(), "stored entries")

fig, ax = plt.subplots(figsize=(4, 4))
spy(a_hat, ax=ax, markersize=4)
ax.set_title("A_hat: 156 edges + 34 self-loops")
fig.tight_layout()

# %%
# The model: two sparse products
# ------------------------------
x = torch.eye(n, dtype=torch.float64)  # one-hot features: every member is its own feature
y = torch.tensor(graph.y.numpy())
train = torch.tensor([0, 1, 32, 33])


class GCN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = torch.nn.Linear(n, 16, dtype=torch.float64)
        self.l2 = torch.nn.Linear(16, 2, dtype=torch.float64)

    def forward(self, x):
        h = torch.relu(torch.sparse.mm(a_hat, self.l1(x)))
        return F.log_softmax(torch.sparse.mm(a_hat, self.l2(h)), dim=1)


model = GCN()
opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)

# %%
# Training: the loss sees four labels
# -----------------------------------
losses, accuracies = [], []
for epoch in range(200):
    opt.zero_grad()
    out = model(x)
    loss = F.nll_loss(out[train], y[train])
    loss.backward()
    opt.step()
    losses.append(loss.item())
    with torch.no_grad():
        accuracies.append((model(x).argmax(1) == y).double().mean().item())
print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f}; accuracy on all 34 members: {accuracies[-1]:.2f}")

fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
left.plot(losses)
left.set_xlabel("epoch")
left.set_ylabel("training loss (4 labelled members)")
right.plot(accuracies, color="C1")
right.set_ylim(0, 1.05)
right.set_xlabel("epoch")
right.set_ylabel("accuracy on all 34 members")
fig.tight_layout()

# %%
# The prediction on the graph
# ---------------------------
# A spectral layout (the Laplacian's 2nd and 3rd eigenvectors) places friends near each
# other; the colour is the predicted club, a ring marks a wrong prediction.
adjacency = torch.sparse_coo_tensor(torch.tensor(edges), torch.ones(edges.shape[1], dtype=torch.float64), (n, n))
lap = np.diag(np.bincount(edges[0], minlength=n)) - adjacency.to_dense().numpy()
pos = np.linalg.eigh(lap)[1][:, 1:3]
with torch.no_grad():
    pred = model(x).argmax(1).numpy()
fig, ax = plt.subplots(figsize=(5.5, 4.5))
for u, v in edges.T[edges[0] < edges[1]]:
    ax.plot(*pos[[u, v]].T, color="0.8", lw=0.7, zorder=0)
ax.scatter(*pos.T, c=pred, cmap="coolwarm", s=120, edgecolor="k")
wrong = pred != y.numpy()
ax.scatter(*pos[wrong].T, s=320, facecolor="none", edgecolor="k", lw=1.5, label="wrong")
for i in train.tolist():
    ax.annotate(str(i), pos[i], ha="center", va="center", fontsize=7, color="w")
ax.set_title("predicted club (numbers: the 4 labelled members)")
ax.set_axis_off()
ax.legend(loc="lower right")
fig.tight_layout()

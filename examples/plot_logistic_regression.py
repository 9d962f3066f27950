"""
Logistic regression on sparse features
======================================

200 samples with 50 features, of which each sample stores about 2.5: a sparse design
matrix ``X``. The logits are one SpMM, ``X @ w``; the gradient of the loss with respect to
``w`` is ``X^T @ (sigmoid(z) - y) / n``, which the backward of the SpMM computes with the
transposed CSR of ``X`` -- no dense 200 x 50 matrix is ever formed. SGD with momentum and
weight decay, as ``torch.optim.SGD``.
"""

import matplotlib.pyplot as plt
import numpy as np

import sparse_ref as torch  # the program below is torch code
from sparse_ref.viz import spy

F = torch.nn.functional
# sphinx_gallery_thumbnail_number = 2

# %%
# Data: a sparse design matrix and labels from a hidden linear rule
# -----------------------------------------------------------------
rng = np.random.default_rng(1)
n, d, nnz = 200, 50, 500
idx = np.stack([rng.integers(0, n, nnz), rng.integers(0, d, nnz)])
val = rng.standard_normal(nnz)
dense = np.zeros((n, d))
np.add.at(dense, (idx[0], idx[1]), val)
truth = rng.standard_normal(d)
labels = (dense @ truth + 0.1 * rng.standard_normal(n) > 0).astype(np.float64)

x = torch.sparse_coo_tensor(torch.tensor(idx), torch.tensor(val), (n, d)).coalesce()
y = torch.tensor(labels)
print(f"X: {n} x {d}, {x._nnz()} stored entries ({x._nnz() / (n * d):.1%} of the matrix)")

fig, ax = plt.subplots(figsize=(3.2, 6))
spy(x, ax=ax, markersize=2)
ax.set_title("X (samples x features)")
fig.tight_layout()

# %%
# Training
# --------
w = torch.tensor(0.01 * rng.standard_normal(d), requires_grad=True)
b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
opt = torch.optim.SGD([w, b], lr=0.5, momentum=0.9, weight_decay=1e-3)
losses, accuracies = [], []
for step in range(150):
    opt.zero_grad()
    logits = torch.sparse.mm(x, w.unsqueeze(1)).squeeze(1) + b
    loss = F.binary_cross_entropy_with_logits(logits, y)
    loss.backward()
    opt.step()
    losses.append(loss.item())
    accuracies.append(((logits > 0).double() == y).double().mean().item())
print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f}, training accuracy {accuracies[-1]:.2f}")

fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
left.plot(losses)
left.set_yscale("log")
left.set_xlabel("step")
left.set_ylabel("binary cross-entropy")
right.plot(accuracies, color="C1")
right.set_xlabel("step")
right.set_ylabel("training accuracy")
fig.tight_layout()

# %%
# What was learned
# ----------------
# The rule only sees features that some sample stores; the learned weights follow the
# hidden ones up to scale (a logistic model fixes only the direction of ``w``).
seen = np.bincount(idx[1], minlength=d) > 0
fig, ax = plt.subplots(figsize=(4.5, 4))
ax.scatter(truth[seen], w.detach().numpy()[seen], s=14)
ax.set_xlabel("hidden weight")
ax.set_ylabel("learned weight")
ax.axhline(0, color="0.8", lw=0.7)
ax.axvline(0, color="0.8", lw=0.7)
print("correlation:", round(float(np.corrcoef(truth[seen], w.detach().numpy()[seen])[0, 1]), 3))
fig.tight_layout()

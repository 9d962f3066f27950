"""
Matrix factorisation of sparse ratings
======================================

A 30 x 20 rating matrix of which 300 entries are known. Low-rank factors ``U`` (30 x 3)
and ``V`` (20 x 3) are fitted so that ``(U V^T)[i, j]`` matches each known rating: the
prediction is read at the known positions only -- the sampled product (SDDMM) written as
gathers, ``(u[rows] * v[cols]).sum(1)`` -- and nothing dense of size 30 x 20 enters the
loss. One fifth of the ratings are held out to show the test error.
"""

import matplotlib.pyplot as plt
import numpy as np

import sparse_ref as torch  # the program below is torch code
from sparse_ref.viz import spy

F = torch.nn.functional
# sphinx_gallery_thumbnail_number = 2

# %%
# Ratings from a hidden rank-2 taste model, plus noise
# ----------------------------------------------------
rng = np.random.default_rng(2)
m, n, k, count = 30, 20, 3, 300
flat = rng.choice(m * n, count, replace=False)
rows_all, cols_all = flat // n, flat % n
taste_u, taste_v = rng.standard_normal((m, 2)), rng.standard_normal((n, 2))
ratings_all = np.clip(3 + (taste_u @ taste_v.T)[rows_all, cols_all] + 0.3 * rng.standard_normal(count), 1, 5)
test = np.arange(count) % 5 == 0

ratings = torch.sparse_coo_tensor(torch.tensor(np.stack([rows_all, cols_all])), torch.tensor(ratings_all), (m, n))
fig, ax = plt.subplots(figsize=(4, 5.5))
spy(ratings.coalesce(), ax=ax, markersize=5)
ax.set_title("known ratings (users x items)")
fig.tight_layout()

# %%
# Fitting the factors
# -------------------
rows, cols, target = (torch.tensor(a[~test]) for a in (rows_all, cols_all, ratings_all))
rows_t, cols_t, target_t = (torch.tensor(a[test]) for a in (rows_all, cols_all, ratings_all))
u = torch.nn.Parameter(torch.tensor(0.5 * rng.standard_normal((m, k))))
v = torch.nn.Parameter(torch.tensor(0.5 * rng.standard_normal((n, k))))
mean = float(target.mean().item())
opt = torch.optim.Adam([u, v], lr=0.05)
train_losses, test_losses = [], []
for step in range(300):
    opt.zero_grad()
    pred = (u[rows] * v[cols]).sum(1) + mean
    loss = F.mse_loss(pred, target) + 0.3 * (u.norm() ** 2 + v.norm() ** 2) / len(target)
    loss.backward()
    opt.step()
    train_losses.append(loss.item())
    with torch.no_grad():
        test_losses.append(F.mse_loss((u[rows_t] * v[cols_t]).sum(1) + mean, target_t).item())
print(f"train MSE {train_losses[-1]:.3f}, held-out MSE {test_losses[-1]:.3f} "
      f"(predicting the mean: {float(((target_t - mean) ** 2).mean().item()):.3f})")

fig, ax = plt.subplots(figsize=(5.5, 3.4))
ax.plot(train_losses, label="training loss")
ax.plot(test_losses, label="held-out MSE")
ax.set_yscale("log")
ax.set_xlabel("step")
ax.legend()
fig.tight_layout()

# %%
# Predictions against the held-out ratings
# ----------------------------------------
with torch.no_grad():
    guess = ((u[rows_t] * v[cols_t]).sum(1) + mean).numpy()
fig, ax = plt.subplots(figsize=(4, 4))
ax.scatter(target_t.numpy(), guess, s=16)
ax.plot([1, 5], [1, 5], color="0.6", lw=0.8)
ax.set_xlabel("held-out rating")
ax.set_ylabel("prediction")
fig.tight_layout()

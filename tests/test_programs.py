"""A course's sparse-model programs, each written once as ``def run(torch, data)`` and run
with real torch and with ``sparse_ref`` in its place, line for line: losses, parameters
and gradients agree within float64 rounding after a fixed number of steps (seeded data,
the same initial values). The programs only use torch's spelling."""

import numpy as np
import pytest
from conftest import torch_or_skip

import sparse_ref

RTOL, ATOL = 1e-10, 1e-12


def karate():
    g = sparse_ref.datasets.karate_club()
    return {"edges": g.edge_index.numpy(), "y": g.y.numpy(), "n": g.num_nodes}


# -- the programs (torch code: `torch` is torch or sparse_ref) --------------------------------

def gcn(torch, data, steps=30):
    """A 2-layer GCN (Kipf and Welling) on the karate club, 4 labelled nodes, Adam."""
    F = torch.nn.functional
    n, edges = data["n"], data["edges"]
    loops = np.arange(n)
    idx = torch.tensor(np.concatenate([edges, np.stack([loops, loops])], axis=1))
    a = torch.sparse_coo_tensor(idx, torch.ones(idx.shape[1], dtype=torch.float64), (n, n)).coalesce()
    deg = torch.sparse.mm(a, torch.ones(n, 1, dtype=torch.float64)).squeeze(1)
    d = deg ** -0.5
    rows, cols = a.indices()[0], a.indices()[1]
    a_hat = torch.sparse_coo_tensor(a.indices(), d[rows] * a.values() * d[cols], (n, n))
    x = torch.eye(n, dtype=torch.float64)
    y = torch.tensor(data["y"])
    train = torch.tensor([0, 1, 32, 33])

    class GCN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.l1 = torch.nn.Linear(n, 16, dtype=torch.float64)
            self.l2 = torch.nn.Linear(16, 2, dtype=torch.float64)

        def forward(self, x):
            h = torch.relu(torch.sparse.mm(a_hat, self.l1(x)))
            h = F.dropout(h, p=0.0, training=self.training)
            return F.log_softmax(torch.sparse.mm(a_hat, self.l2(h)), dim=1)

    model = GCN()
    model.load_state_dict({k: torch.tensor(v) for k, v in data["init"].items()})
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        out = model(x)
        loss = F.nll_loss(out[train], y[train])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).double().mean().item()
    return losses, {k: p for k, p in model.named_parameters()}, accuracy


def gat(torch, data, steps=25):
    """GAT-style attention on the karate club: scores on the edges, a sparse softmax over
    each node's neighbours, a sparse product, Adam."""
    F = torch.nn.functional
    n, edges = data["n"], data["edges"]
    loops = np.arange(n)
    idx = torch.tensor(np.concatenate([edges, np.stack([loops, loops])], axis=1))
    src, dst = idx[0], idx[1]
    x = torch.eye(n, dtype=torch.float64)
    y = torch.tensor(data["y"])
    train = torch.tensor([0, 1, 32, 33])

    class GAT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(n, 8, bias=False, dtype=torch.float64)
            self.att_src = torch.nn.Parameter(torch.zeros(8, dtype=torch.float64))
            self.att_dst = torch.nn.Parameter(torch.zeros(8, dtype=torch.float64))
            self.out = torch.nn.Linear(8, 2, dtype=torch.float64)

        def forward(self, x):
            h = self.lin(x)
            scores = F.leaky_relu((h * self.att_src).sum(1)[src] + (h * self.att_dst).sum(1)[dst], 0.2)
            att = torch.sparse.softmax(torch.sparse_coo_tensor(torch.stack([src, dst]), scores, (n, n)), dim=1)
            h = torch.relu(torch.sparse.mm(att, h))
            return F.log_softmax(self.out(h), dim=1)

    model = GAT()
    model.load_state_dict({k: torch.tensor(v) for k, v in data["init"].items()})
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.nll_loss(model(x)[train], y[train])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).double().mean().item()
    return losses, {k: p for k, p in model.named_parameters()}, accuracy


def logistic_regression(torch, data, steps=25):
    """Logistic regression on sparse features, SGD with momentum and weight decay."""
    F = torch.nn.functional
    x = torch.sparse_coo_tensor(torch.tensor(data["idx"]), torch.tensor(data["val"]), data["shape"])
    y = torch.tensor(data["y"])
    w = torch.tensor(data["w0"], requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w, b], lr=0.5, momentum=0.9, weight_decay=1e-3)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        logits = torch.sparse.mm(x, w.unsqueeze(1)).squeeze(1) + b
        loss = F.binary_cross_entropy_with_logits(logits, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, {"w": w, "b": b}, None


def matrix_factorisation(torch, data, steps=30):
    """Low-rank factors of a sparse rating matrix: gathers, a squared error, Adam."""
    F = torch.nn.functional
    rows, cols = torch.tensor(data["rows"]), torch.tensor(data["cols"])
    ratings = torch.tensor(data["ratings"])
    u = torch.nn.Parameter(torch.tensor(data["u0"]))
    v = torch.nn.Parameter(torch.tensor(data["v0"]))
    opt = torch.optim.Adam([u, v], lr=0.05)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        pred = (u[rows] * v[cols]).sum(1)
        loss = F.mse_loss(pred, ratings) + 1e-3 * (u.norm() ** 2 + v.norm() ** 2)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, {"u": u, "v": v}, None


def pagerank(torch, data, iterations=50, alpha=0.85):
    """PageRank by power iteration with a sparse transition matrix (no gradients)."""
    n, edges = data["n"], data["edges"]
    idx = torch.tensor(edges)
    a = torch.sparse_coo_tensor(idx, torch.ones(idx.shape[1], dtype=torch.float64), (n, n)).coalesce()
    out_degree = torch.sparse.mm(a, torch.ones(n, 1, dtype=torch.float64)).squeeze(1)
    src, dst = a.indices()[0], a.indices()[1]
    p_t = torch.sparse_coo_tensor(torch.stack([dst, src]), a.values() / out_degree[src], (n, n))
    r = torch.full((n,), 1.0 / n, dtype=torch.float64)
    with torch.no_grad():
        for _ in range(iterations):
            r = alpha * torch.sparse.mm(p_t, r.unsqueeze(1)).squeeze(1) + (1 - alpha) / n
    return [r.sum().item()], {"rank": r}, int(r.argmax().item())


# -- the data (NumPy, seeded) ---------------------------------------------------------------------

def gcn_data():
    data = karate()
    rng = np.random.default_rng(0)
    bound1, bound2 = 1 / np.sqrt(34), 1 / np.sqrt(16)
    data["init"] = {"l1.weight": rng.uniform(-bound1, bound1, (16, 34)), "l1.bias": rng.uniform(-bound1, bound1, 16),
                    "l2.weight": rng.uniform(-bound2, bound2, (2, 16)), "l2.bias": rng.uniform(-bound2, bound2, 2)}
    return data


def gat_data():
    data = karate()
    rng = np.random.default_rng(3)
    data["init"] = {"lin.weight": rng.uniform(-0.2, 0.2, (8, 34)), "att_src": rng.standard_normal(8),
                    "att_dst": rng.standard_normal(8), "out.weight": rng.uniform(-0.35, 0.35, (2, 8)),
                    "out.bias": rng.uniform(-0.35, 0.35, 2)}
    return data


def logistic_data():
    rng = np.random.default_rng(1)
    n, d, nnz = 200, 50, 500
    idx = np.stack([rng.integers(0, n, nnz), rng.integers(0, d, nnz)])
    val = rng.standard_normal(nnz)
    dense = np.zeros((n, d))
    np.add.at(dense, (idx[0], idx[1]), val)
    truth = rng.standard_normal(d)
    y = (dense @ truth + 0.1 * rng.standard_normal(n) > 0).astype(np.float64)
    return {"idx": idx, "val": val, "shape": (n, d), "y": y, "w0": 0.01 * rng.standard_normal(d)}


def factorisation_data():
    rng = np.random.default_rng(2)
    m, n, k, count = 30, 20, 4, 150
    flat = rng.choice(m * n, count, replace=False)
    return {"rows": flat // n, "cols": flat % n, "ratings": rng.uniform(1, 5, count),
            "u0": 0.5 * rng.standard_normal((m, k)), "v0": 0.5 * rng.standard_normal((n, k))}


PROGRAMS = {
    "gcn": (gcn, gcn_data),
    "gat": (gat, gat_data),
    "logistic_regression": (logistic_regression, logistic_data),
    "matrix_factorisation": (matrix_factorisation, factorisation_data),
    "pagerank": (pagerank, karate),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_program_agrees_with_torch(name):
    torch = torch_or_skip()
    program, make_data = PROGRAMS[name]
    ours = program(sparse_ref, make_data())
    theirs = program(torch, make_data())
    np.testing.assert_allclose(ours[0], theirs[0], rtol=RTOL, atol=ATOL)
    assert ours[1].keys() == theirs[1].keys()
    for key in ours[1]:
        a, b = ours[1][key], theirs[1][key]
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg=key)
        if b.grad is not None:
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=key)
    assert ours[2] == theirs[2]


@pytest.mark.parametrize("name", ["gcn", "gat", "logistic_regression", "matrix_factorisation"])
def test_program_trains_on_both_paths(name):
    program, make_data = PROGRAMS[name]
    runs = []
    for backend in ("reference", "cython"):
        with sparse_ref.use_backend(backend):
            runs.append(program(sparse_ref, make_data(), steps=8))
    losses = runs[0][0]
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=RTOL, atol=ATOL)

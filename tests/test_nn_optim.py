"""sr.nn, sr.nn.functional, sr.optim and sr.datasets against torch 2.13, and the error a
torch name that sparse_ref lacks gives."""

import copy

import numpy as np
import pytest
from conftest import torch_or_skip

import sparse_ref as sr
import sparse_ref.nn.functional as F
from sparse_ref._errors import ConversionError
from sparse_ref.autograd import gradcheck


def arr(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# -- losses -----------------------------------------------------------------------------------

LOSSES = {
    "nll_loss": lambda m, x, t: m.nn.functional.nll_loss(m.log_softmax(x, 1), t["cls"], reduction=t["red"]),
    "cross_entropy": lambda m, x, t: m.nn.functional.cross_entropy(x, t["cls"], reduction=t["red"]),
    "mse_loss": lambda m, x, t: m.nn.functional.mse_loss(x, t["real"], reduction=t["red"]),
    "bce_with_logits": lambda m, x, t: m.nn.functional.binary_cross_entropy_with_logits(x, t["prob"],
                                                                                        reduction=t["red"]),
    "leaky_relu": lambda m, x, t: m.nn.functional.leaky_relu(x, 0.2),
    "linear": lambda m, x, t: m.nn.functional.linear(x, t["w"], t["b"]),
}


def targets(m, red):
    return {"cls": m.tensor([0, 2, 1, 2]), "real": m.tensor(arr((4, 3), 1)), "red": red,
            "prob": m.tensor(np.random.default_rng(2).uniform(0, 1, (4, 3))),
            "w": m.tensor(arr((5, 3), 3)), "b": m.tensor(arr(5, 4))}


@pytest.mark.parametrize("red", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_match_torch(name, red):
    torch = torch_or_skip()
    x = arr((4, 3))
    a, b = sr.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours, theirs = LOSSES[name](sr, a, targets(sr, red)), LOSSES[name](torch, b, targets(torch, red))
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-13, atol=1e-15)
    g = arr(theirs.shape, 5)
    ours.backward(sr.tensor(g))
    theirs.backward(torch.tensor(g))
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("backend", ["reference", "cython"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_pass_gradcheck(name, backend):
    with sr.use_backend(backend):
        assert gradcheck(lambda x: LOSSES[name](sr, x, targets(sr, "mean")), (sr.tensor(arr((4, 3)), requires_grad=True),))


def test_bce_with_logits_is_stable_and_differentiable_in_the_target():
    x = sr.tensor([-800.0, 0.0, 800.0], dtype=sr.float64, requires_grad=True)
    y = sr.tensor([1.0, 0.5, 0.0], dtype=sr.float64, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x, y, reduction="sum")
    assert np.isfinite(loss.item()) and loss.item() == pytest.approx(1600 + np.log(2))
    loss.backward()
    assert x.grad.tolist() == [-1.0, 0.0, 1.0] and y.grad.tolist() == [800.0, 0.0, -800.0]


def test_dropout_scales_what_it_keeps_and_is_off_in_eval():
    x = sr.ones(10000, dtype=sr.float64)
    out = F.dropout(x, p=0.25, generator=sr.Generator().manual_seed(0))
    kept = out.numpy() != 0
    assert np.allclose(out.numpy()[kept], 1 / 0.75) and 0.7 < kept.mean() < 0.8
    assert F.dropout(x, p=0.25, training=False) is x


@pytest.mark.parametrize("call, error, match", [
    (lambda: F.nll_loss(sr.zeros(2, 3), sr.tensor([0, 3])), IndexError, "Target 3 is out of bounds"),
    (lambda: F.nll_loss(sr.zeros(2, 3), sr.tensor([0.0, 1.0])), RuntimeError, "integer tensor"),
    (lambda: F.cross_entropy(sr.zeros(3), sr.tensor([0])), RuntimeError, "target must be a 0-d integer tensor"),
    (lambda: F.cross_entropy(sr.zeros(2, 3, 4), sr.tensor([0, 1])), RuntimeError, "2-D tensor"),
    (lambda: F.mse_loss(sr.zeros(2), sr.zeros(3)), RuntimeError, "differ"),
    (lambda: F.mse_loss(sr.zeros(2), sr.zeros(2), reduction="avg"), RuntimeError, "not a valid value"),
    (lambda: F.binary_cross_entropy_with_logits(sr.zeros(2), sr.zeros(3)), RuntimeError, "Target size"),
    (lambda: F.dropout(sr.zeros(2), p=1.5), RuntimeError, "between 0 and 1"),
])
def test_losses_refuse_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# -- optimisers -------------------------------------------------------------------------------

OPTIMISERS = {
    "sgd": lambda m, ps: m.optim.SGD(ps, lr=0.1),
    "sgd_momentum_wd": lambda m, ps: m.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01, dampening=0.1),
    "sgd_nesterov_maximize": lambda m, ps: m.optim.SGD(ps, lr=0.05, momentum=0.5, nesterov=True, maximize=True),
    "adam": lambda m, ps: m.optim.Adam(ps, lr=0.1),
    "adam_wd_amsgrad": lambda m, ps: m.optim.Adam(ps, lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1,
                                                  amsgrad=True),
    "adamw": lambda m, ps: m.optim.AdamW(ps, lr=0.1),
    "adamw_wd_amsgrad_maximize": lambda m, ps: m.optim.AdamW(ps, lr=0.05, betas=(0.8, 0.99), weight_decay=0.3,
                                                             amsgrad=True, maximize=True),
    "adam_decoupled": lambda m, ps: m.optim.Adam(ps, lr=0.1, weight_decay=0.2, decoupled_weight_decay=True),
}


def optimise(m, name, steps=6):
    w = m.tensor(arr((3, 2)), requires_grad=True)
    b = m.tensor(arr(2, 1), requires_grad=True)
    x = m.tensor(arr((5, 3), 2))
    opt = OPTIMISERS[name](m, [w, b])
    for _ in range(steps):
        opt.zero_grad()
        loss = ((x @ w + b).tanh() ** 2).sum()
        loss.backward()
        opt.step()
    return w.detach().numpy().copy(), b.detach().numpy().copy()


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_optimisers_follow_torchs_formulas(name):
    torch = torch_or_skip()
    for ours, theirs in zip(optimise(sr, name), optimise(torch, name)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-13, atol=1e-15)


def test_an_optimiser_step_bumps_the_version_and_keeps_the_leaf():
    w = sr.tensor([1.0, 2.0], requires_grad=True)
    opt = sr.optim.SGD([w], lr=0.1)
    (w * w).sum().backward()
    version = w._version[0]
    opt.step()
    assert w._version[0] == version + 1 and w.is_leaf and w.requires_grad
    opt.zero_grad()
    assert w.grad is None


@pytest.mark.parametrize("call, error, match", [
    (lambda: sr.optim.SGD([], lr=0.1), RuntimeError, "empty parameter list"),
    (lambda: sr.optim.SGD([sr.ones(2, requires_grad=True)], lr=-1), RuntimeError, "Invalid learning rate"),
    (lambda: sr.optim.Adam([sr.ones(2, requires_grad=True)], betas=(0.9, 1.0)), RuntimeError, "Invalid beta"),
    (lambda: sr.optim.SGD([sr.ones(2, requires_grad=True) * 2], lr=0.1), ValueError, "non-leaf"),
    (lambda: sr.optim.SGD([sr.ones(2, requires_grad=True)], lr=0.1, nesterov=True), RuntimeError, "Nesterov"),
])
def test_optimisers_refuse_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


# -- modules ----------------------------------------------------------------------------------

def test_module_finds_parameters_in_order_and_zero_grad_drops_them():
    net = sr.nn.Sequential(sr.nn.Linear(3, 4, dtype=sr.float64), sr.nn.Linear(4, 1, dtype=sr.float64))
    names = [n for n, _ in net.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias"]
    net(sr.ones(2, 3, dtype=sr.float64)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    assert not net.eval().training and all(not m.training for m in net.modules())
    state = net.state_dict()
    net.load_state_dict({k: v * 0 for k, v in state.items()})
    assert all((p.detach().numpy() == 0).all() for p in net.parameters())
    with pytest.raises(RuntimeError, match="missing keys"):
        net.load_state_dict({})


def test_a_modules_own_parameters_come_before_its_sub_modules_as_in_torch():
    """sr listed them in the order set, sub-modules' in between: ['lin.weight', 'lin.bias',
    'att'] where torch has ['att', 'lin.weight', 'lin.bias'] (a probe), so
    list(m.parameters())[0] and the state_dict's order differed."""
    class Net(sr.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = sr.nn.Linear(2, 3)
            self.att = sr.nn.Parameter(sr.ones(3))
            self.out = sr.nn.Sequential(sr.nn.Linear(3, 1))
            self.scale = sr.nn.Parameter(sr.ones(1))

    names = ["att", "scale", "lin.weight", "lin.bias", "out.0.weight", "out.0.bias"]
    net = Net()
    assert [n for n, _ in net.named_parameters()] == names
    assert list(net.state_dict()) == names
    assert list(net.parameters())[0] is net.att
    torch = torch_or_skip()

    class TorchNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 3)
            self.att = torch.nn.Parameter(torch.ones(3))
            self.out = torch.nn.Sequential(torch.nn.Linear(3, 1))
            self.scale = torch.nn.Parameter(torch.ones(1))

    assert [n for n, _ in TorchNet().named_parameters()] == names


def test_linear_matches_torch_given_the_same_weights():
    torch = torch_or_skip()
    ours, theirs = sr.nn.Linear(3, 2, dtype=sr.float64), torch.nn.Linear(3, 2, dtype=torch.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = arr((4, 3))
    got, want = ours(sr.tensor(x)).detach().numpy(), theirs(torch.tensor(x)).detach().numpy()
    # the same sum of three products and a bias, added in another order (torch's BLAS):
    # equal to within a few roundings of the terms' sizes (an element that cancels, as
    # torch's random weights sometimes give, differs by more than 1e-15 of itself)
    w, b = theirs.weight.detach().numpy(), theirs.bias.detach().numpy()
    err = 4 * np.finfo(np.float64).eps * (np.abs(x) @ np.abs(w).T + np.abs(b))
    assert np.all(np.abs(got - want) <= err), (got, want)
    bound = 1 / np.sqrt(3)
    fresh = sr.nn.Linear(3, 2).weight.detach().numpy()
    assert (np.abs(fresh) <= bound).all()


def test_parameter_is_a_leaf_sharing_memory():
    t = sr.zeros(2)
    p = sr.nn.Parameter(t)
    assert p.requires_grad and p.is_leaf and repr(p).startswith("Parameter containing:")
    with sr.no_grad():
        p.add_(1.0)
    assert t.tolist() == [1.0, 1.0]


# -- datasets ---------------------------------------------------------------------------------

def test_karate_club_is_zacharys_graph():
    g = sr.datasets.karate_club()
    e = g.edge_index.numpy()
    assert e.shape == (2, 156) and g.num_nodes == 34
    pairs = set(zip(e[0].tolist(), e[1].tolist()))
    assert all((v, u) in pairs for u, v in pairs) and not any(u == v for u, v in pairs)
    degree = np.bincount(e[0], minlength=34)
    assert degree[0] == 16 and degree[33] == 17 and degree[32] == 12 and degree.sum() == 156
    assert g.y.tolist()[0] == 0 and g.y.tolist()[33] == 1 and sum(g.y.tolist()) == 17
    a = g.adjacency(dtype=sr.float64, self_loops=True)
    assert a._nnz() == 190 and a.is_coalesced()


# -- what torch has and sparse_ref does not -----------------------------------------------------

@pytest.mark.parametrize("get, owner", [
    (lambda: sr.conv2d, "module 'sparse_ref'"),
    (lambda: sr.nn.Conv2d, "module 'sparse_ref.nn'"),
    (lambda: sr.nn.functional.gelu, "module 'sparse_ref.nn.functional'"),
    (lambda: sr.optim.RMSprop, "module 'sparse_ref.optim'"),
    (lambda: sr.sparse.spsolve, "module 'sparse_ref.sparse'"),
    (lambda: sr.ones(2).cumsum, "'Tensor' object"),
])
def test_a_missing_torch_name_says_so_and_where_to_look(get, owner):
    with pytest.raises(AttributeError, match=f"^{owner} has no attribute .*not \\(yet\\) part of it; see the API"):
        get()


# -- what the adversarial review found: refused at once, with torch's words ---------------------

@pytest.mark.parametrize("call, error, match", [
    (lambda x: setattr(x, "data", sr.tensor([1, 2])), RuntimeError, "must be floating point or complex"),
    (lambda x: setattr(x, "grad", 5), TypeError, "assigned grad expected to be a Tensor"),
    (lambda x: setattr(x, "grad", sr.tensor([1.0, 2.0, 3.0])), RuntimeError, "gradient of size '\\[3\\]'"),
    (lambda x: setattr(x, "grad", sr.tensor([1.0, 2.0], dtype=sr.float64)), RuntimeError, "dtype 'float64'"),
    (lambda x: F.dropout(sr.ones(4).int(), 0.3), TypeError, "needs a floating or complex tensor"),
    (lambda x: sr.Generator().manual_seed(2**70), RuntimeError, "out of range"),
    (lambda x: sr.optim.SGD([sr.nn.Parameter(sr.tensor([[0.0, 1.0]]).to_sparse().values())], lr=0.1),
     ValueError, "read-only"),
])
def test_silent_mistakes_are_refused(call, error, match):
    x = sr.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(error, match=match):
        call(x)


def test_a_parameter_cannot_be_replaced_by_a_plain_tensor():
    layer = sr.nn.Linear(2, 2)
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'weight'"):
        layer.weight = sr.ones(2, 2)
    layer.bias = None  # None is allowed, as in torch
    assert [n for n, _ in layer.named_parameters()] == ["weight"]


def test_replacing_data_of_another_shape_fails_backward_with_the_reason():
    x = sr.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    x.data = sr.tensor([5.0, 6.0, 7.0])
    with pytest.raises(RuntimeError, match="its .data was replaced"):
        y.backward()


def test_negative_seeds_wrap_as_in_torch():
    sr.manual_seed(-5)
    a = sr.rand(2).tolist()
    sr.manual_seed(2**64 - 5)
    assert sr.rand(2).tolist() == a


def test_load_state_dict_refuses_values_the_parameters_cannot_hold_and_writes_nothing():
    # (probe) astype turned float64 1e300 into inf in a float32 weight and dropped a
    # complex part, with only NumPy's warning
    layer = sr.nn.Linear(2, 1)
    before = {k: v.numpy().copy() for k, v in layer.state_dict().items()}
    for bad in (np.full((1, 2), 1e300), np.full((1, 2), 1 + 2j)):
        state = {"weight": bad, "bias": np.zeros(1)}
        with pytest.raises((ValueError, TypeError), match="overflow|imaginary"):
            layer.load_state_dict(state)
        for k, v in layer.state_dict().items():  # the bias, checked first or not, is untouched
            np.testing.assert_array_equal(v.numpy(), before[k])
    layer.load_state_dict({"weight": np.ones((1, 2)), "bias": np.zeros(1)})  # float64 that fits
    assert layer.weight.dtype == sr.float32 and layer.weight.tolist() == [[1.0, 1.0]]


@pytest.mark.parametrize("kw", [{}, {"amsgrad": True, "weight_decay": 0.1}, {"maximize": True},
                                {"weight_decay": 0.1, "decoupled_weight_decay": True}])
def test_adam_on_complex_parameters_matches_torch(kw):
    # (probe) sr used v = g conj(g), one v for both parts: -0.0707-0.0707j after a step of
    # lr 0.1 where torch (view_as_real: the parts are two parameters) gives -0.1-0.1j
    torch = torch_or_skip()
    rng = np.random.default_rng(5)
    w0 = (rng.standard_normal(3) + 1j * rng.standard_normal(3)).astype(np.complex64)
    w, tw = sr.tensor(w0, requires_grad=True), torch.tensor(w0, requires_grad=True)
    ours, theirs = sr.optim.Adam([w], lr=0.1, **kw), torch.optim.Adam([tw], lr=0.1, **kw)
    for _ in range(5):
        g = (rng.standard_normal(3) + 1j * rng.standard_normal(3)).astype(np.complex64)
        w.grad, tw.grad = sr.tensor(g), torch.tensor(g)
        ours.step()
        theirs.step()
    np.testing.assert_allclose(w.detach().numpy(), tw.detach().numpy(), rtol=1e-6, atol=1e-6)


def test_optimizer_arguments_as_torch_takes_them():
    # (probe) a bare tensor was taken row by row, a parameter in two groups stepped twice,
    # and zero_grad(set_to_none=False) replaced the .grad instead of zeroing it
    w = sr.tensor([[1.0, 2.0]], requires_grad=True)
    with pytest.raises(TypeError, match="iterable of Tensors"):
        sr.optim.SGD(w, lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        sr.optim.SGD([{"params": [w]}, {"params": [w], "lr": 0.5}], lr=0.1)
    opt = sr.optim.SGD([w], lr=0.1)
    (w * w).sum().backward()
    held = w.grad
    opt.zero_grad(set_to_none=False)
    assert w.grad is held and held.tolist() == [[0.0, 0.0]]


def test_a_parameter_shares_the_version_of_the_tensor_it_wraps():
    """(probe) Parameter(x.detach()) started a version counter of its own, so an optimizer
    step on it changed the data x's graph had saved and backward used it in silence;
    torch refuses that backward."""
    x = sr.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    p = sr.nn.Parameter(x.detach())
    opt = sr.optim.SGD([p], lr=1.0)
    p.grad = sr.ones(2)
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
    torch = torch_or_skip()
    tx = torch.tensor([1.0, 2.0], requires_grad=True)
    ty = (tx * tx).sum()
    tp = torch.nn.Parameter(tx.detach())
    tp.grad = torch.ones(2)
    torch.optim.SGD([tp], lr=1.0).step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        ty.backward()


def read_only_parameter():
    frozen = np.zeros(2, np.float32)
    frozen.flags.writeable = False
    return sr.nn.Parameter(sr.from_numpy(frozen))


def test_a_read_only_parameter_is_refused_before_anything_is_written():
    """(probe) load_state_dict and an optimizer step wrote the parameters before the
    read-only one, then failed with NumPy's own error: now they refuse first."""
    class Two(sr.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = sr.nn.Parameter(sr.zeros(2))
            self.b = read_only_parameter()

    m = Two()
    with pytest.raises(RuntimeError, match="b's data is read-only.*nothing was written"):
        m.load_state_dict({"a": np.ones(2), "b": np.ones(2)})
    assert m.a.tolist() == [0.0, 0.0]
    w1, w2 = sr.nn.Parameter(sr.zeros(2)), sr.nn.Parameter(sr.zeros(2))
    opt = sr.optim.SGD([w1, w2], lr=1.0)
    w2.data = read_only_parameter().data  # read-only since the optimizer was made
    w1.grad, w2.grad = sr.ones(2), sr.ones(2)
    with pytest.raises(RuntimeError, match="read-only.*nothing was updated"):
        opt.step()
    assert w1.tolist() == [0.0, 0.0]


def test_a_parameter_set_to_none_stays_a_parameters_place():
    """(probe) after lin.bias = None, a plain tensor was taken as an attribute that
    parameters() never lists; torch refuses it."""
    lin = sr.nn.Linear(2, 1)
    lin.bias = None
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'bias'"):
        lin.bias = sr.ones(1)
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    lin.bias = sr.nn.Parameter(sr.ones(1))
    assert [n for n, _ in lin.named_parameters()] == ["weight", "bias"]
    del lin.bias  # (review) deleted, the name is free again, as in torch
    lin.bias = sr.ones(1)
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    other = sr.nn.Linear(2, 1)  # (review) a shallow copy does not share the record of names
    twin = copy.copy(other)
    twin.extra = sr.nn.Parameter(sr.ones(1))
    other.extra = sr.ones(1)
    torch = torch_or_skip()
    tl = torch.nn.Linear(2, 1)
    tl.bias = None
    with pytest.raises(TypeError, match="cannot assign"):
        tl.bias = torch.ones(1)


@pytest.mark.parametrize("owner", ["module", "optimizer"])
def test_zero_grad_without_none_zeroes_the_gradient_in_place(owner):
    """(probe) Module.zero_grad(set_to_none=False) put a new tensor in .grad, so a caller
    holding the old one saw stale values; torch zeroes it in place (Optimizer's did)."""
    m = sr.nn.Linear(2, 1)
    m(sr.ones(3, 2)).sum().backward()
    held = m.weight.grad
    if owner == "module":
        m.zero_grad(set_to_none=False)
    else:
        sr.optim.SGD(m.parameters(), lr=0.1).zero_grad(set_to_none=False)
    assert m.weight.grad is held and held.tolist() == [[0.0, 0.0]]


@pytest.mark.parametrize("loss", ["nll_loss", "cross_entropy"])
@pytest.mark.parametrize("red", ["none", "sum", "mean"])
@pytest.mark.parametrize("target", [[0, -100, 1, 2], [-100] * 4, [2, 1, 1, 0]], ids=["some", "all", "other index"])
def test_ignored_targets_count_for_nothing_as_in_torch(loss, red, target):
    """(probe) a target of -100, torch's default ignore_index (padding, unlabelled nodes),
    was refused as out of bounds. Values and gradients against torch; 'other index' ignores
    class 1 instead."""
    torch = torch_or_skip()
    raw = arr((4, 3), seed=5)
    if loss == "nll_loss":
        raw = raw - np.log(np.exp(raw).sum(1, keepdims=True))
    ignore = 1 if target == [2, 1, 1, 0] else -100
    x, tx = sr.tensor(raw, requires_grad=True), torch.tensor(raw, requires_grad=True)
    ours = getattr(F, loss)(x, sr.tensor(np.array(target)), reduction=red, ignore_index=ignore)
    theirs = getattr(torch.nn.functional, loss)(tx, torch.tensor(target), reduction=red, ignore_index=ignore)
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-12)
    (ours.sum() if red == "none" else ours).backward()
    (theirs.sum() if red == "none" else theirs).backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-15)
    if red == "none":
        assert not np.signbit(ours.detach().numpy()[np.array(target) == ignore]).any()  # +0, not -0



def test_state_dict_shares_the_parameters_memory_as_torchs():
    """(probe) state_dict() returned copies: early stopping written for torch (best =
    model.state_dict() ... load_state_dict(best)) ended on other parameters. torch's shares
    memory with the parameters, so a snapshot is copy.deepcopy(model.state_dict())."""
    import copy

    layer = sr.nn.Linear(2, 1)
    live, snapshot = layer.state_dict(), copy.deepcopy(layer.state_dict())
    before = snapshot["weight"].numpy().copy()
    with sr.no_grad():
        layer.weight.mul_(0)
    assert (live["weight"].numpy() == 0).all() and live["weight"].grad_fn is None
    assert (snapshot["weight"].numpy() == before).all()
    layer.load_state_dict(snapshot)
    assert (layer.weight.detach().numpy() == before).all()


def test_an_optimizer_step_between_forward_and_backward_is_fine_when_torchs_is():
    """(probe) two losses of one forward, l1.backward(); opt.step(); l2.backward(): torch
    runs it, since a Linear layer whose input needs no gradient does not keep its weight
    for backward; ours raised "modified by an inplace operation". A product now keeps
    (and checks) only the data the needed gradients read."""
    torch = pytest.importorskip("torch")
    layer = sr.nn.Linear(2, 1)
    tl = torch.nn.Linear(2, 1)
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(layer.weight.detach().numpy().copy()))
        tl.bias.copy_(torch.from_numpy(layer.bias.detach().numpy().copy()))
    opt, topt = sr.optim.SGD(layer.parameters(), lr=0.1), torch.optim.SGD(tl.parameters(), lr=0.1)
    x, tx = sr.tensor([[1., 2.]]), torch.tensor([[1., 2.]])
    l1, l2 = layer(x).sum(), (layer(x) ** 2).sum()
    t1, t2 = tl(tx).sum(), (tl(tx) ** 2).sum()
    l1.backward(); opt.step(); l2.backward()  # noqa: E702
    t1.backward(); topt.step(); t2.backward()  # noqa: E702
    np.testing.assert_allclose(layer.weight.grad.numpy(), tl.weight.grad.numpy(), rtol=1e-6)
    w, v = sr.tensor([1., 2.], requires_grad=True), sr.tensor([3., 4.], requires_grad=True)
    y = (w * v).sum()
    with sr.no_grad():
        v.mul_(2)  # w's gradient reads v: still refused
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_activation_dropout_and_loss_modules_and_module_lists_as_torchs():
    """(probe) nn.ReLU, nn.Dropout, the loss modules and ModuleList were missing, and a
    Sequential could not be indexed or measured: a course's nn.Sequential(nn.Linear(...),
    nn.ReLU(), ...) failed at its first line."""
    torch = pytest.importorskip("torch")
    net = sr.nn.Sequential(sr.nn.Linear(3, 4), sr.nn.ReLU(), sr.nn.Linear(4, 2), sr.nn.Tanh())
    tnet = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2), torch.nn.Tanh())
    with torch.no_grad():
        for k in (0, 2):
            tnet[k].weight.copy_(torch.from_numpy(net[k].weight.detach().numpy().copy()))
            tnet[k].bias.copy_(torch.from_numpy(net[k].bias.detach().numpy().copy()))
    assert len(net) == 4 and type(net[-1]).__name__ == "Tanh" and len(list(net.parameters())) == 4
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    target = np.array([0, 1, 1, 0, 1])
    for ours, theirs in [(sr.nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()),
                         (sr.nn.NLLLoss(reduction="sum"), torch.nn.NLLLoss(reduction="sum"))]:
        loss = ours(net(sr.tensor(x)), sr.tensor(target))
        tloss = theirs(tnet(torch.from_numpy(x)), torch.from_numpy(target))
        np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-5)
    y = np.random.default_rng(1).standard_normal((5, 2)).astype(np.float32)
    np.testing.assert_allclose(sr.nn.MSELoss()(net(sr.tensor(x)), sr.tensor(y)).item(),
                               torch.nn.MSELoss()(tnet(torch.from_numpy(x)), torch.from_numpy(y)).item(), rtol=1e-5)
    np.testing.assert_allclose(sr.nn.BCEWithLogitsLoss()(sr.tensor(y), sr.tensor((y > 0).astype(np.float32))).item(),
                               torch.nn.BCEWithLogitsLoss()(torch.from_numpy(y), torch.from_numpy((y > 0).astype(np.float32))).item(),
                               rtol=1e-6)
    drop = sr.nn.Dropout(0.5)
    h = sr.ones(200, 10)
    kept = drop(h)
    assert set(np.unique(kept.numpy())) <= {0.0, 2.0} and 0 < (kept.numpy() == 0).mean() < 1
    drop.eval()
    assert drop(h).tolist() == h.tolist()
    assert sr.nn.LeakyReLU(0.1)(sr.tensor([-1., 2.])).tolist() == pytest.approx([-0.1, 2.0])

    class Stack(sr.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = sr.nn.ModuleList([sr.nn.Linear(2, 2) for _ in range(3)])

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    model = Stack()
    assert len(list(model.parameters())) == 6 and len(model.layers) == 3
    model.layers.append(sr.nn.Linear(2, 1))
    assert model(sr.ones(4, 2)).shape == (4, 1)
    with pytest.raises(IndexError, match="out of range"):
        model.layers[4]


def test_loss_messages_name_what_was_given_and_the_function_called():
    """(probe) a NumPy target was called "got int64 [2]", as if it were a tensor of the right
    dtype; a bad reduction of cross_entropy was reported by nll_loss."""
    import sparse_ref.nn.functional as F

    x = sr.randn(2, 3)
    with pytest.raises(RuntimeError, match="target must be a sparse_ref tensor .* got numpy.ndarray"):
        F.cross_entropy(x, np.array([0, 1]))
    with pytest.raises(RuntimeError, match="^cross_entropy: 'avg' is not a valid value for reduction"):
        F.cross_entropy(x, sr.tensor([0, 1]), reduction="avg")


def test_module_casts_and_freezes_its_parameters_as_torchs():
    """(probe) model.double(), model.to(...) and layer.requires_grad_(False) were missing."""
    torch = pytest.importorskip("torch")
    net = sr.nn.Sequential(sr.nn.Linear(3, 4), sr.nn.ReLU(), sr.nn.Linear(4, 1))
    tnet = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    with torch.no_grad():
        for k in (0, 2):
            tnet[k].weight.copy_(torch.from_numpy(net[k].weight.detach().numpy().copy()))
            tnet[k].bias.copy_(torch.from_numpy(net[k].bias.detach().numpy().copy()))
    opt = sr.optim.SGD(net.parameters(), lr=0.1)
    weight = net[0].weight
    assert net.double() is net and net[0].weight is weight and weight.dtype == sr.float64
    tnet.double()
    x = np.random.default_rng(2).standard_normal((5, 3))
    net(sr.tensor(x)).sum().backward()
    tnet(torch.from_numpy(x)).sum().backward()
    opt.step()  # the optimizer made before the cast holds the same parameters
    np.testing.assert_allclose(net[0].weight.grad.numpy(), tnet[0].weight.grad.numpy(), rtol=1e-12)
    assert net.to("cpu") is net and net.float()[2].bias.dtype == sr.float32
    net[0].requires_grad_(False)
    assert [p.requires_grad for p in net.parameters()] == [False, False, True, True]
    with pytest.raises(RuntimeError, match="CPU only"):
        net.to("cuda")


def test_module_repr_named_modules_apply_slices_and_extend_as_torch():
    """What a student's torch code does with a model besides training it (a probe found
    each missing: modules printed as <object at 0x...>, no named_modules, apply, cpu,
    slicing of a Sequential, ModuleList.extend or +=)."""
    torch = torch_or_skip()

    def make(nn):
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Dropout(0.1), nn.LeakyReLU())
                self.head = nn.Linear(4, 1, bias=False)
        return Net()

    ours, theirs = make(sr.nn), make(torch.nn)
    assert repr(ours) == repr(theirs)
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    order = []
    assert ours.apply(lambda m: order.append(type(m).__name__)) is ours and ours.cpu() is ours
    assert order == ["Linear", "ReLU", "Dropout", "LeakyReLU", "Sequential", "Linear", "Net"]
    tail = ours.body[1:]
    assert type(tail) is sr.nn.Sequential and len(tail) == 3 and tail[0] is ours.body[1]
    layers = sr.nn.ModuleList([sr.nn.ReLU()])
    layers += [sr.nn.Tanh()]
    layers.extend([sr.nn.Linear(2, 2)])
    assert [type(m).__name__ for m in layers] == ["ReLU", "Tanh", "Linear"] and len(list(layers.parameters())) == 2
    with pytest.raises(AttributeError, match="'Net' object has no attribute 'register_forward_hook': sparse_ref implements"):
        ours.register_forward_hook(lambda *a: None)


def test_slices_keep_names_a_shared_module_is_applied_once_and_numpy_ints_index():
    """A review against torch: body[1:] renumbered its modules (1.weight became 0.weight),
    apply called fn twice on a module held under two names, ModuleList[np.int64(0)] was
    out of range; a module held twice still runs twice in a Sequential."""
    torch = torch_or_skip()
    for nn in (sr.nn, torch.nn):
        relu = nn.ReLU()
        seq = nn.Sequential(nn.Linear(2, 3), relu, nn.Linear(3, 3), relu)
        assert [n for n, _ in seq[1:].named_parameters()] == ["2.weight", "2.bias"]
        assert type(seq[np.int64(0)]).__name__ == "Linear" and len(seq) == 4 and len(list(seq.children())) == 3
        calls = []
        seq.apply(lambda m: calls.append(type(m).__name__))
        assert calls == ["Linear", "ReLU", "Linear", "Sequential"]
        held = nn.ModuleList([relu, relu])
        held.append(nn.Tanh())
        assert [type(m).__name__ for m in held] == ["ReLU", "ReLU", "Tanh"]
    counted = []

    class Count(sr.nn.Module):
        def forward(self, x):
            counted.append(1)
            return x
    twice = Count()
    sr.nn.Sequential(twice, twice)(sr.ones(1))
    assert len(counted) == 2


def test_a_tied_layer_is_in_the_state_dict_under_each_name_and_strict_false_skips_keys():
    """As torch: state_dict lists a layer held under two names twice (sr listed it once,
    so a torch state dict of a tied model did not load), and load_state_dict(strict=False)
    loads what matches and returns the keys it skipped."""
    torch = torch_or_skip()
    got = []
    for nn in (sr.nn, torch.nn):
        class Tied(nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = nn.Linear(2, 2)
                self.tied = self.lin
        net = Tied()
        keys = list(net.state_dict())
        zero = net.lin.weight.detach() * 0
        result = net.load_state_dict({"lin.weight": zero, "extra": net.lin.bias.detach()}, strict=False)
        got.append((keys, result.missing_keys, result.unexpected_keys, float(net.lin.weight.detach().abs().sum())))
    assert got[0] == got[1]
    assert got[0][0] == ["lin.weight", "lin.bias", "tied.weight", "tied.bias"]


def test_load_state_dict_returns_what_it_skipped_printed_as_torchs():
    torch = torch_or_skip()
    ours, theirs = sr.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    assert repr(ours.load_state_dict(ours.state_dict())) == repr(theirs.load_state_dict(theirs.state_dict()))
    skipped = ours.load_state_dict({"weight": ours.weight.detach()}, strict=False)
    assert skipped.missing_keys == ["bias"] and skipped.unexpected_keys == []


# -- learning-rate schedules ------------------------------------------------------------------

SCHEDULES = {
    "step": lambda m, o: m.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
    "multistep": lambda m, o: m.optim.lr_scheduler.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3),
    "exponential": lambda m, o: m.optim.lr_scheduler.ExponentialLR(o, gamma=0.9),
    "cosine": lambda m, o: m.optim.lr_scheduler.CosineAnnealingLR(o, T_max=7, eta_min=0.01),
    "lambda": lambda m, o: m.optim.lr_scheduler.LambdaLR(o, lr_lambda=lambda e: 0.95 ** e),
    "lambdas": lambda m, o: m.optim.lr_scheduler.LambdaLR(o, lr_lambda=[lambda e: 1 / (e + 1), lambda e: 0.5]),
}


def schedule(m, name, steps=30):
    """The rates of two parameter groups over ``steps`` epochs, one set by hand midway
    (the chainable forms carry it on)."""
    w1, w2 = m.tensor([1.0], requires_grad=True), m.tensor([2.0], requires_grad=True)
    opt = m.optim.SGD([{"params": [w1]}, {"params": [w2], "lr": 0.3}], lr=0.1)
    sched, rates = SCHEDULES[name](m, opt), []
    for epoch in range(steps):
        opt.step()
        rates.append(tuple(sched.get_last_lr()))
        sched.step()
        if epoch == 12:
            for group in opt.param_groups:
                group["lr"] = group["lr"] * 0.7
    return rates


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_learning_rate_schedules_give_torchs_rates_to_the_bit(name):
    torch = torch_or_skip()
    assert schedule(sr, name) == schedule(torch, name)


@pytest.mark.parametrize("kwargs", [{}, {"patience": 2, "factor": 0.5}, {"mode": "max", "patience": 1},
                                    {"threshold_mode": "abs", "threshold": 0.05, "patience": 0},
                                    {"cooldown": 2, "patience": 1, "min_lr": [0.02, 0.001]},
                                    {"patience": 0, "factor": 0.9, "eps": 0.01}])
def test_reduce_on_plateau_gives_torchs_rates_to_the_bit(kwargs):
    """Forty epochs of a noisy, flattening loss (given as a number, a 0-d tensor and a
    one-element tensor in turn), two parameter groups: the same rates as torch's and the
    same counters (best, bad epochs, cooldown) in state_dict."""
    torch = torch_or_skip()
    rng = np.random.default_rng(8)
    losses = 1 / np.arange(1, 41) + 0.02 * rng.random(40)

    def rates(m):
        w1, w2 = m.tensor([1.0], requires_grad=True), m.tensor([2.0], requires_grad=True)
        opt = m.optim.SGD([{"params": [w1]}, {"params": [w2], "lr": 0.3}], lr=0.1)
        sched, out = m.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs), []
        for epoch, loss in enumerate(losses):
            opt.step()
            sched.step([float(loss), m.tensor(loss), m.tensor([loss])][epoch % 3])
            out.append(tuple(sched.get_last_lr()))
        state = sched.state_dict()
        return out, (state["best"], state["num_bad_epochs"], state["cooldown_counter"], state["last_epoch"])

    assert rates(sr) == rates(torch)


@pytest.mark.parametrize("kwargs", [{"total_steps": 23}, {"epochs": 4, "steps_per_epoch": 6, "pct_start": 0.25},
                                    {"total_steps": 20, "anneal_strategy": "linear", "three_phase": True},
                                    {"total_steps": 10, "cycle_momentum": False, "div_factor": 10.0},
                                    {"total_steps": 15, "max_lr": [0.5, 2.0], "base_momentum": [0.8, 0.7]}])
@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_one_cycle_gives_torchs_rates_momenta_and_weights_to_the_bit(kwargs, optimizer):
    """OneCycleLR over every step of its cycle, two groups: the rates and the momentum (SGD)
    or first beta (Adam) it sets, to the bit, and the weights the optimiser reaches, as
    torch's; one step past the end is refused as torch refuses it."""
    torch = torch_or_skip()
    kwargs = {"max_lr": 1.0, **kwargs}

    def run(m):
        w1 = m.tensor([1.0, -2.0], dtype=m.float64, requires_grad=True)
        w2 = m.tensor([0.5], dtype=m.float64, requires_grad=True)
        groups = [{"params": [w1]}, {"params": [w2], "lr": 0.3}]
        opt = m.optim.SGD(groups, lr=0.1, momentum=0.9) if optimizer == "SGD" else m.optim.Adam(groups, lr=0.1)
        sched, out = m.optim.lr_scheduler.OneCycleLR(opt, **kwargs), []
        steps = kwargs.get("total_steps") or kwargs["epochs"] * kwargs["steps_per_epoch"]
        for _ in range(steps):
            opt.zero_grad()
            ((w1 * w1).sum() * 0.1 + (w2 * w2).sum() * 0.2).backward()
            opt.step()
            key = "momentum" if optimizer == "SGD" else "betas"
            out.append((tuple(sched.get_last_lr()), tuple(str(g[key]) for g in opt.param_groups)))
            sched.step()
        with pytest.raises(ValueError, match=f"Tried to step {steps + 1} times"):
            sched.step()
        return out, np.concatenate([w1.detach().numpy(), w2.detach().numpy()])

    (ours, w_ours), (theirs, w_theirs) = run(sr), run(torch)
    assert ours == theirs  # (the rates and momenta to the bit)
    np.testing.assert_allclose(w_ours, w_theirs, rtol=1e-13)


def test_one_cycle_refuses_what_torch_refuses_and_changes_nothing():
    torch = torch_or_skip()
    for kwargs, match in (({}, "You must define either total_steps OR"),
                          ({"total_steps": 0}, "Expected positive integer total_steps"),
                          ({"epochs": 2, "steps_per_epoch": 0}, "Expected positive integer steps_per_epoch"),
                          ({"total_steps": 5, "pct_start": 1}, "Expected float between 0 and 1 pct_start"),
                          ({"total_steps": 5, "anneal_strategy": "exp"}, "anneal_strategy must be one of"),
                          ({"total_steps": 5, "max_lr": [1.0, 2.0]}, "max_lr must have the same length")):
        for m in (sr, torch):
            opt = m.optim.SGD([m.tensor([1.0], requires_grad=True)], lr=0.1)
            with pytest.raises(ValueError, match=match):
                m.optim.lr_scheduler.OneCycleLR(opt, **{"max_lr": 1.0, **kwargs})
            assert "initial_lr" not in opt.param_groups[0] and opt.param_groups[0]["lr"] == 0.1


def test_a_cosine_schedule_resumed_at_an_epoch_gives_torchs_rates():
    torch = torch_or_skip()

    def rates(m):
        w = m.tensor([1.0], requires_grad=True)
        opt = m.optim.SGD([w], lr=0.2)
        for group in opt.param_groups:
            group["initial_lr"] = 0.2  # (as a loaded checkpoint has it)
        sched = m.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=0.0, last_epoch=4)
        out = []
        for _ in range(8):
            opt.step()
            out.append(sched.get_last_lr()[0])
            sched.step()
        return out

    assert rates(sr) == rates(torch)


def test_learning_rate_schedules_refuse_what_torch_refuses():
    w = sr.tensor([1.0], requires_grad=True)
    opt = sr.optim.SGD([w], lr=0.1)
    lrs = sr.optim.lr_scheduler
    for call, exc, message in [
            (lambda: lrs.StepLR(w, step_size=2), TypeError, "Tensor is not an Optimizer"),
            (lambda: lrs.StepLR(opt, step_size=0), ValueError, "step_size must be a positive integer"),
            (lambda: lrs.ExponentialLR(opt, gamma="0.9"), TypeError, "gamma must be a finite number"),
            (lambda: lrs.LambdaLR(opt, lr_lambda=[lambda e: 1, lambda e: 2]), ValueError,
             "Expected 1 lr_lambdas, but got 2"),
            (lambda: lrs.CosineAnnealingLR(opt, T_max=5, last_epoch=3), KeyError, "initial_lr"),
            (lambda: lrs.StepLR(opt, step_size=2).step(3), TypeError, "step\\(epoch\\) is deprecated"),
            (lambda: lrs.CyclicLR, AttributeError, "not \\(yet\\) part of it"),
            (lambda: lrs.ReduceLROnPlateau(opt, factor=1.0), ValueError, "Factor should be < 1.0."),
            (lambda: lrs.ReduceLROnPlateau(opt, mode="low"), ValueError, "mode low is unknown!"),
            (lambda: lrs.ReduceLROnPlateau(opt, threshold_mode="x"), ValueError, "threshold mode x is unknown!"),
            (lambda: lrs.ReduceLROnPlateau(opt, min_lr=[0, 0]), ValueError, "expected 1 min_lrs, got 2"),
            (lambda: lrs.ReduceLROnPlateau(opt).step("low"), TypeError, "metrics must be a number"),
            (lambda: lrs.ReduceLROnPlateau(opt).step(sr.ones(2)), TypeError, "metrics must be a number")]:
        with pytest.raises(exc, match=message):
            call()
    sched = lrs.StepLR(opt, step_size=1, gamma=0.5)
    state = sched.state_dict()
    assert "optimizer" not in state and state["last_epoch"] == 0
    sched.step()
    sched.load_state_dict(state)
    assert sched.last_epoch == 0


# -- initialisations --------------------------------------------------------------------------

def test_initialisations_use_torchs_bounds_and_gains():
    """The same formulas as torch's (the samples are sparse_ref's own): every uniform draw
    inside its bound, the standard deviations within 3 % of the formula's, the gains
    equal to torch's."""
    import math

    init = sr.nn.init
    gen = sr.Generator().manual_seed(3)
    shape = (300, 200)
    glorot, he = math.sqrt(2.0 / 500), math.sqrt(2.0) / math.sqrt(200)  # (a = 0: leaky_relu of slope 0)
    for fill, bound, std in [(lambda t: init.xavier_uniform_(t, generator=gen), math.sqrt(3) * glorot, glorot),
                             (lambda t: init.xavier_normal_(t, generator=gen), None, glorot),
                             (lambda t: init.kaiming_uniform_(t, generator=gen), math.sqrt(3) * he, he),
                             (lambda t: init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu", generator=gen),
                              None, math.sqrt(2.0) / math.sqrt(300)),
                             (lambda t: init.uniform_(t, -0.5, 0.25, generator=gen), None, 0.75 / math.sqrt(12)),
                             (lambda t: init.normal_(t, 1.0, 0.1, generator=gen), None, 0.1)]:
        w = sr.zeros(*shape)
        version = w._version[0]
        assert fill(w) is w and w._version[0] == version + 1
        data = w.numpy()
        if bound is not None:
            assert np.abs(data).max() <= np.float32(bound)  # (the bound as float32 rounds it)
        assert abs(data.std() / std - 1) < 0.03
    torch = torch_or_skip()
    for name, param in [("linear", None), ("sigmoid", None), ("tanh", None), ("relu", None), ("selu", None),
                        ("leaky_relu", None), ("leaky_relu", 0.2), ("conv2d", None)]:
        assert init.calculate_gain(name, param) == torch.nn.init.calculate_gain(name, param)
    assert init.eye_(sr.zeros(2, 3)).tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    layer = sr.nn.Linear(3, 2)
    init.zeros_(layer.weight)
    assert layer.weight.tolist() == [[0.0] * 3] * 2 and layer.weight.requires_grad


def test_initialisations_refuse_what_they_cannot_fill():
    from sparse_ref._errors import ConversionError

    init = sr.nn.init
    for call, exc, message in [
            (lambda: init.xavier_uniform_(sr.zeros(3)), ValueError, "fewer than 2 dimensions"),
            (lambda: init.uniform_(sr.zeros(2, dtype=sr.int64)), TypeError, "needs a floating tensor, got int64"),
            (lambda: init.normal_(sr.zeros(2, 2).to_sparse()), TypeError, "expected a dense tensor"),
            (lambda: init.constant_(sr.zeros(2).to(sr.float16), 1e6), ConversionError, "would become inf"),
            (lambda: init.kaiming_uniform_(sr.zeros(2, 2), mode="x"), ValueError, "Mode x not supported"),
            (lambda: init.calculate_gain("swish"), ValueError, "Unsupported nonlinearity swish"),
            (lambda: init.normal_(sr.zeros(2), std=-1.0), ValueError, "expects std >= 0.0"),
            (lambda: init.orthogonal_, AttributeError, "not \\(yet\\) part of it")]:
        with pytest.raises(exc, match=message):
            call()


def test_probe_cases_of_init_schedules_and_adam():
    """(probe) uniform_ in a half type gave b itself (rounded up); NumPy numbers were
    refused; a range too wide for float16 was refused only when a draw overflowed; a
    zero-element kaiming init raised where torch warns; LambdaLR's state held its lambdas
    (no pickle, and loading took the other schedule's); an np.float64 rate broke Adam on
    a complex64 parameter after updating the others."""
    import pickle
    import warnings

    init, lrs = sr.nn.init, sr.optim.lr_scheduler
    gen = sr.Generator().manual_seed(7)
    for dt in (sr.float16, sr.bfloat16):
        assert init.uniform_(sr.zeros(100000, dtype=dt), generator=gen).numpy().astype(np.float32).max() < 1.0
    assert init.constant_(sr.zeros(2), np.float32(0.5)).tolist() == [0.5, 0.5]
    assert init.constant_(sr.zeros(1), float("inf")).tolist() == [float("inf")]  # (as torch)
    assert init.xavier_uniform_(sr.zeros(3, 4), gain=np.float64(2.0), generator=gen).shape == (3, 4)
    for call in (lambda: init.uniform_(sr.zeros(3, dtype=sr.float16), -6e4, 6e4),
                 lambda: init.normal_(sr.zeros(3, dtype=sr.float16), 0.0, 3e4)):
        with pytest.raises(ValueError, match="float16"):
            call()
    with pytest.raises(ValueError, match="gain must be >= 0"):
        init.xavier_uniform_(sr.zeros(2, 2), gain=-1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert init.kaiming_uniform_(sr.zeros(5, 0)).shape == (5, 0)
    assert any("zero-element tensors is a no-op" in str(w.message) for w in caught)

    p, q = sr.tensor([1.0], requires_grad=True), sr.tensor([1.0], requires_grad=True)
    first = lrs.LambdaLR(sr.optim.SGD([p], lr=1.0), lambda e: 0.5 ** e)
    for _ in range(3):
        first.step()
    second = lrs.LambdaLR(sr.optim.SGD([q], lr=1.0), lambda e: 0.1 * e)
    second.load_state_dict(pickle.loads(pickle.dumps(first.state_dict())))
    second.step()
    assert second.get_last_lr() == [0.1 * 4]  # its own function, at the loaded epoch (as torch)
    steps = lrs.MultiStepLR(sr.optim.SGD([p], lr=1.0), milestones=np.arange(2, 6, 2), gamma=np.float32(0.5))
    for _ in range(5):
        steps.step()
    assert steps.get_last_lr() == [0.25]

    a = sr.tensor([1.0, 2.0], requires_grad=True)
    b = sr.tensor([1 + 1j], dtype=sr.complex64, requires_grad=True)
    opt = sr.optim.AdamW([a, b], lr=np.float64(0.1))
    a.grad, b.grad = sr.tensor([1.0, 1.0]), sr.tensor([1 + 1j], dtype=sr.complex64)
    opt.step()
    assert b.dtype == sr.complex64 and abs(b.item() - (0.899 + 0.899j)) < 1e-6
    assert opt.state[a]["exp_avg"].dtype == np.float32


# -- optimizer checkpoints: state_dict / load_state_dict --------------------------------------

OPTIMIZERS = [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)), ("SGD", dict(lr=0.1)),
              ("Adam", dict(lr=0.1, amsgrad=True)), ("AdamW", dict(lr=0.1, weight_decay=0.1))]


def train(m, name, kw, before, after, reload, path=None):
    """``before`` steps, optionally a checkpoint (through sr.save/sr.load when ``path``) into
    a new optimizer over new parameters, then ``after`` steps: (w, z, the final state_dict)."""
    w0, z0 = arr((3, 2), 5), arr(4, 6) + 1j * arr(4, 7)

    def make(w_data, z_data):
        w, z = m.tensor(w_data, requires_grad=True), m.tensor(z_data, requires_grad=True)
        return w, z, getattr(m.optim, name)([{"params": [w]}, {"params": [z], "lr": 0.05}], **kw)

    w, z, opt = make(w0, z0)
    for t in range(before + after):
        if t == before and reload:
            state = opt.state_dict()
            if path is not None:
                sr.save(state, path)
                state = sr.load(path)
            w, z, opt = make(w.detach().numpy().copy(), z.detach().numpy().copy())
            opt.load_state_dict(state)
        opt.zero_grad()
        (w * w).sum().backward()
        z.grad = m.tensor(z.detach().numpy() * 0.5 + 0.25j)
        opt.step()
    return w.detach().numpy(), z.detach().numpy(), opt.state_dict()


@pytest.mark.parametrize("name, kw", OPTIMIZERS)
def test_an_optimizer_resumed_from_its_state_dict_takes_the_same_steps_bit_for_bit(name, kw, tmp_path):
    straight = train(sr, name, kw, 3, 3, reload=False)
    for path in (None, tmp_path / "opt.pt"):  # in memory, and through a file
        resumed = train(sr, name, kw, 3, 3, reload=True, path=path)
        for a, b in zip(straight[:2], resumed[:2]):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("name, kw", OPTIMIZERS)
def test_an_optimizer_state_dict_has_torchs_layout_and_values(name, kw):
    torch = torch_or_skip()
    ours, theirs = train(sr, name, kw, 3, 0, False)[2], train(torch, name, kw, 3, 0, False)[2]
    assert [g["params"] for g in ours["param_groups"]] == [[0], [1]]
    for g, tg in zip(ours["param_groups"], theirs["param_groups"]):
        assert {k: v for k, v in tg.items() if k in g} == g  # torch's settings, and a few more of its own
    assert ours["state"].keys() == theirs["state"].keys()
    for i, state in ours["state"].items():
        assert state.keys() == theirs["state"][i].keys()
        for key, value in state.items():
            want = theirs["state"][i][key].numpy()
            assert value.shape == want.shape and value.dtype == want.dtype, (i, key)
            np.testing.assert_allclose(value.numpy(), want, rtol=1e-12, atol=1e-15)


def test_a_state_dict_is_a_copy_and_loading_leaves_it_unchanged():
    w = sr.tensor([1., 2.], requires_grad=True)
    opt = sr.optim.SGD([w], lr=0.1, momentum=0.9)
    (w * w).sum().backward()
    opt.step()
    state = opt.state_dict()
    buf = state["state"][0]["momentum_buffer"]
    buf.mul_(0)  # the optimizer's buffer is not this tensor
    assert opt.state_dict()["state"][0]["momentum_buffer"].tolist() == [2.0, 4.0]  # the first gradient
    state["state"][0]["momentum_buffer"] = sr.tensor([1., 1.])
    opt.load_state_dict(state)
    state["state"][0]["momentum_buffer"].mul_(5)  # nor is the one loaded
    assert opt.state_dict()["state"][0]["momentum_buffer"].tolist() == [1.0, 1.0]


def test_a_state_dict_keeps_a_schedules_initial_rate():
    w = sr.tensor([1.], requires_grad=True)
    opt = sr.optim.SGD([w], lr=0.4)
    sched = sr.optim.lr_scheduler.StepLR(opt, 1, 0.5)
    opt.step()
    sched.step()
    state, sched_state = opt.state_dict(), sched.state_dict()
    w2 = sr.tensor([1.], requires_grad=True)
    opt2 = sr.optim.SGD([w2], lr=0.4)
    sched2 = sr.optim.lr_scheduler.StepLR(opt2, 1, 0.5)
    opt2.load_state_dict(state)
    sched2.load_state_dict(sched_state)
    assert opt2.param_groups[0]["lr"] == 0.2 and opt2.param_groups[0]["initial_lr"] == 0.4
    sched2.step()
    assert opt2.param_groups[0]["lr"] == 0.1


def test_load_state_dict_refuses_what_does_not_fit_and_changes_nothing():
    w, z = sr.tensor([1., 2.], requires_grad=True), sr.tensor([1 + 1j], requires_grad=True)
    opt = sr.optim.Adam([w, z], lr=0.1, amsgrad=True)
    (w * w).sum().backward()
    z.grad = sr.tensor([0.5j])
    opt.step()
    good = opt.state_dict()
    groups, s0, s1 = good["param_groups"], good["state"][0], good["state"][1]
    bad = [
        ({"state": {}}, "expected a dict with 'state' and 'param_groups'"),
        ([1, 2], "expected a dict"),
        ({"state": {}, "param_groups": []}, "different number of parameter groups"),
        ({"state": {}, "param_groups": [{**groups[0], "params": [0]}]}, "doesn't match the size"),
        ({"state": {5: s0}, "param_groups": groups}, r"state for \[5\]"),
        ({"state": {}, "param_groups": [{**groups[0], "params": [0, 0]}]}, "an index given twice"),
        ({"state": {}, "param_groups": [{**groups[0], "params": [0.0, 1]}]}, "indices"),
        ({"state": {0: {"momentum_buffer": sr.zeros(2)}}, "param_groups": groups}, "another optimizer's state"),
        ({"state": {0: {**s0, "exp_avg": sr.zeros(3)}}, "param_groups": groups}, r"shape \[2\], the saved value \[3\]"),
        ({"state": {0: s1}, "param_groups": groups}, r"shape \[2\], the saved value \[1\]"),
        ({"state": {0: {**s0, "exp_avg": sr.tensor([1j, 0])}}, "param_groups": groups}, "exp_avg"),  # complex
        ({"state": {0: {**s0, "step": 1.5}}, "param_groups": groups}, "whole number of steps"),
        ({"state": {0: {k: v for k, v in s0.items() if k != "max_exp_avg_sq"}}, "param_groups": groups},
         "max_exp_avg_sq"),  # amsgrad needs its maxima
        ({"state": {0: {**s0, "exp_avg": sr.tensor([1e300, 0.], dtype=sr.float64)}}, "param_groups": groups},
         "without overflow"),  # a float32 parameter: refused, never made inf
        ({"state": {}, "param_groups": [{**groups[0], "lr": -1}]}, "Invalid learning rate"),
        ({"state": {}, "param_groups": [{k: v for k, v in groups[0].items() if k != "betas"}]}, "betas"),
    ]
    before = opt.state_dict()
    for state_dict, message in bad:
        with pytest.raises((ValueError, TypeError, RuntimeError), match=message):
            opt.load_state_dict(state_dict)
        now = opt.state_dict()
        assert now["param_groups"] == before["param_groups"]
        for i in (0, 1):
            for key, value in before["state"][i].items():
                assert np.array_equal(now["state"][i][key].numpy(), value.numpy())


def test_a_groups_own_settings_are_checked_as_the_defaults_are():
    w = sr.tensor([1.], requires_grad=True)
    with pytest.raises(ValueError, match="Invalid learning rate value: -1"):
        sr.optim.SGD([{"params": [w], "lr": -1}], lr=0.1)
    with pytest.raises(ValueError, match="Invalid beta parameters"):
        sr.optim.Adam([{"params": [w], "betas": (0.9, 1.5)}])


def test_a_bfloat16_optimizer_takes_back_its_own_state_dict():
    for make in (lambda p: sr.optim.Adam(p, lr=0.1), lambda p: sr.optim.SGD(p, lr=0.1, momentum=0.9)):
        w = sr.tensor([1., 2.], dtype=sr.bfloat16, requires_grad=True)
        opt = make([w])
        w.grad = sr.ones_like(w)
        opt.step()
        state = opt.state_dict()
        opt.load_state_dict(state)
        for key, value in opt.state_dict()["state"][0].items():
            assert np.array_equal(value.numpy(), state["state"][0][key].numpy()), key


def test_a_copied_or_pickled_optimizer_keeps_its_state_with_the_copied_parameters():
    import pickle

    w = sr.tensor([1., 2.], requires_grad=True)
    opt = sr.optim.Adam([w], lr=0.1)
    w.grad = sr.ones_like(w)
    opt.step()
    for twin in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        p = twin.param_groups[0]["params"][0]
        assert p is not w and twin.state[p]["step"] == 1
        p.grad = sr.ones_like(p)
        twin.step()
        assert twin.state_dict()["state"][0]["step"].item() == 2.0
    assert opt.state[w]["step"] == 1


def test_an_optimizer_of_ones_own_uses_torchs_idioms_and_checkpoints():
    class Counting(sr.optim.Optimizer):  # as a torch user writes one
        def __init__(self, params, lr=0.1):
            super().__init__(params, dict(lr=lr))

        def step(self):
            for group in self.param_groups:
                for p in group["params"]:
                    state = self.state[p]  # torch's defaultdict(dict), keyed by the parameter
                    state["n"] = state.get("n", 0) + 1

    w = sr.tensor([1.], requires_grad=True)
    opt = Counting([w])
    opt.step()
    opt.step()
    assert opt.defaults == {"lr": 0.1}
    state = opt.state_dict()
    assert state == {"state": {0: {"n": 2}}, "param_groups": [{"lr": 0.1, "params": [0]}]}
    other = Counting([sr.tensor([1.], requires_grad=True)])
    other.load_state_dict(state)
    other.step()
    assert other.state_dict()["state"][0]["n"] == 3


def test_loading_keeps_a_schedule_made_before_it_and_copies_the_saved_settings():
    w = sr.tensor([1.], requires_grad=True)
    opt = sr.optim.Adam([w], lr=0.1)
    checkpoint = opt.state_dict()  # saved with no schedule
    w2 = sr.tensor([1.], requires_grad=True)
    opt2 = sr.optim.Adam([w2], lr=0.1)
    sched = sr.optim.lr_scheduler.StepLR(opt2, step_size=1, gamma=0.5)
    opt2.load_state_dict(checkpoint)
    assert opt2.param_groups[0]["initial_lr"] == 0.1
    checkpoint["param_groups"][0]["betas"] = (0.0, 0.0)  # the caller's dict stays its own
    assert opt2.param_groups[0]["betas"] == (0.9, 0.999)
    opt2.step()
    sched.step()
    assert opt2.param_groups[0]["lr"] == 0.05


def test_settings_may_be_numpy_numbers_and_a_group_may_be_one_tensor():
    w = sr.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    opt = sr.optim.SGD([{"params": w, "lr": np.float32(0.5)}], lr=np.int64(1), momentum=0.9)
    assert len(opt.param_groups[0]["params"]) == 1 and opt.param_groups[0]["params"][0] is w
    w.grad = sr.ones_like(w)
    opt.step()
    opt.load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match="a number is needed, not a Tensor"):
        sr.optim.SGD([w], lr=sr.tensor(0.1))


def test_a_multisteplr_checkpoint_loads_with_weights_only(tmp_path):
    w = sr.tensor([1.], requires_grad=True)
    opt = sr.optim.SGD([w], lr=0.1)
    sched = sr.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 2, 4], gamma=0.5)
    opt.step()
    sched.step()
    sr.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, tmp_path / "ck.pt")
    back = sr.load(tmp_path / "ck.pt")
    w2 = sr.tensor([1.], requires_grad=True)
    opt2 = sr.optim.SGD([w2], lr=0.1)
    sched2 = sr.optim.lr_scheduler.MultiStepLR(opt2, milestones=[1], gamma=0.5)
    opt2.load_state_dict(back["opt"])
    sched2.load_state_dict(back["sched"])
    rates = []
    for _ in range(4):
        opt.step(), sched.step(), opt2.step(), sched2.step()
        rates.append((opt.param_groups[0]["lr"], opt2.param_groups[0]["lr"]))
    assert all(a == b for a, b in rates) and rates[0][0] == 0.025  # (milestone 2 twice: gamma squared)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_an_unbatched_sample_takes_the_loss_and_gradient_of_a_batch_of_one_as_torch(name, reduction):
    torch = torch_or_skip()
    got = []
    for m in (sr, torch):
        x = m.tensor(arr(4, 8), requires_grad=True)
        for target in (2, -100):
            loss = getattr(m.nn.functional, name)(x if name == "cross_entropy" else x.log_softmax(0),
                                                   m.tensor(target), reduction=reduction)
            loss.sum().backward()
            got.append((tuple(loss.shape), loss.detach().numpy().copy(), x.grad.numpy().copy()))
            x.grad = None
    for ours, theirs in zip(got[:2], got[2:]):
        assert ours[0] == theirs[0] == ()
        np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-12, equal_nan=True)
        np.testing.assert_allclose(ours[2], theirs[2], rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="target must be a 0-d integer tensor"):
        getattr(sr.nn.functional, name)(sr.tensor(arr(4, 8)), sr.tensor([2]))


def _with_buffers(nn, lib):
    class Norm(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.register_buffer("mean", lib.tensor([0.5, -0.5]))
            self.register_buffer("count", lib.tensor([3, 4]))
            self.register_buffer("mask", lib.tensor([1., 0.]), persistent=False)
            self.register_buffer("empty", None)

        def forward(self, x):
            return self.lin(x - self.mean) * self.mask

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(lib.ones(2))
            self.register_buffer("scale", lib.tensor([2., 3.]))
            self.inner = Norm()
    return Outer()


def test_buffers_as_torch_names_order_state_dict_and_casts():
    """register_buffer: the buffers' names and order, state_dict's keys (a module's own
    parameters, then its persistent buffers, then each sub-module's), torch's refusals,
    and to(dtype) casting the floating-point buffers only: the same as torch 2.13."""
    torch = torch_or_skip()
    ours, theirs = _with_buffers(sr.nn, sr), _with_buffers(torch.nn, torch)
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.inner.named_buffers(prefix="x", recurse=False)] == \
        [n for n, _ in theirs.inner.named_buffers(prefix="x", recurse=False)]
    assert [n for n, _ in ours.named_parameters(prefix="m")] == [n for n, _ in theirs.named_parameters(prefix="m")]
    assert len(list(ours.buffers())) == len(list(theirs.buffers())) == 4
    np.testing.assert_array_equal(ours.state_dict()["inner.count"].numpy(), [3, 4])
    for model in (ours, theirs):  # the same refusals, the same exception types
        for name, value, kind in ((1, None, TypeError), ("a.b", None, KeyError), ("", None, KeyError),
                                  ("w", None, KeyError), ("lin", None, KeyError), ("q", 3, TypeError)):
            with pytest.raises(kind):
                (model.inner if name == "lin" else model).register_buffer(name, value)
        with pytest.raises(TypeError, match="as buffer 'scale'"):
            model.scale = 3
    ours.double(), theirs.double()
    assert str(ours.inner.mean.dtype) == "float64" and str(ours.inner.count.dtype) == "int64"
    assert str(theirs.inner.mean.dtype) == "torch.float64" and str(theirs.inner.count.dtype) == "torch.int64"
    assert str(ours.inner.mask.dtype) == "float64"  # (not persistent, still cast)
    # a Parameter set on a buffer's name makes it a parameter, None keeps the place
    for model, nn, lib in ((ours, sr.nn, sr), (theirs, torch.nn, torch)):
        model.scale = nn.Parameter(lib.ones(2, dtype=lib.float64))
        model.inner.mean = None
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()] == \
        ["inner.count", "inner.mask"]
    ours.inner.mean = sr.tensor([1., 2.], dtype=sr.float64)  # (still a buffer's place)
    assert "inner.mean" in dict(ours.named_buffers())


def test_buffers_load_and_save_with_the_checks_of_parameters(tmp_path):
    """load_state_dict writes persistent buffers in place (an int buffer as int), checks
    their shapes and dtypes before writing anything, and a missing buffer is a missing
    key; sr.save / sr.load carry them."""
    model = _with_buffers(sr.nn, sr)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["inner.count"] = sr.tensor([7, 8])
    state["scale"] = sr.tensor([5., 6.])
    mean = model.inner.mean
    assert model.load_state_dict(state).missing_keys == []
    assert model.inner.mean is mean  # (in place, as torch's copy_)
    np.testing.assert_array_equal(model.inner.count.numpy(), [7, 8])
    np.testing.assert_array_equal(model.scale.numpy(), [5., 6.])
    bad = dict(state, **{"inner.mean": sr.ones(3)})
    with pytest.raises(sr._errors.ShapeError, match="inner.mean"):
        model.load_state_dict(bad)
    np.testing.assert_array_equal(model.scale.numpy(), [5., 6.])
    too_big = dict(state, **{"inner.count": sr.tensor([2 ** 40, 1]).to(sr.float64)})
    model.inner.count = sr.tensor([1, 2], dtype=sr.int32)
    with pytest.raises(Exception, match="inner.count"):
        model.load_state_dict(too_big)  # (2**40 does not fit int32: refused, not wrapped)
    missing = {k: v for k, v in state.items() if k != "inner.mean"}
    with pytest.raises(sr._errors.ArgumentError, match="inner.mean"):
        model.load_state_dict(missing)
    assert model.load_state_dict(missing, strict=False).missing_keys == ["inner.mean"]
    sr.save(model.state_dict(), tmp_path / "m.pt")
    again = _with_buffers(sr.nn, sr)
    again.load_state_dict(sr.load(tmp_path / "m.pt"))
    np.testing.assert_array_equal(again.inner.count.numpy(), [7, 8])
    assert again.inner.count.dtype == sr.int64  # (the int32 buffer's values, into int64)


def test_a_sparse_buffer_is_saved_and_replaced_on_load():
    class M(sr.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("adj", sr.sparse_coo_tensor([[0, 1], [1, 0]], [1., 2.], (2, 2)).coalesce())
    m = M()
    other = sr.sparse_coo_tensor([[0], [0]], [5.], (2, 2)).coalesce()
    m.load_state_dict({"adj": other})
    assert m.adj is not other and m.adj.to_dense().tolist() == [[5., 0.], [0., 0.]]
    with pytest.raises(sr._errors.ArgumentError, match="adj"):
        m.load_state_dict({"adj": sr.zeros(2, 2)})
    with pytest.raises(sr._errors.ShapeError, match="adj"):
        m.load_state_dict({"adj": sr.sparse_coo_tensor([[0], [0]], [5.], (3, 3))})
    assert m.double().adj.dtype == sr.float64


@pytest.mark.parametrize("padding_idx", [None, 2, -1])
@pytest.mark.parametrize("by_freq", [False, True])
def test_embedding_forward_and_weight_gradient_as_torch(padding_idx, by_freq):
    """F.embedding and its weight's gradient (the padding row's none, scaled by each
    index's count with scale_grad_by_freq) against torch 2.13, on 2-D, 1-D, 0-d, int32
    and empty indices."""
    torch = torch_or_skip()
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal((6, 4))
    for ids in (np.array([[0, 5, 5, 2], [1, 0, 2, 2]]), np.array([3, 3, 3]), np.array(4),
                np.array([1, 5], dtype=np.int32), np.zeros((0, 2), dtype=np.int64)):
        g = rng.standard_normal(ids.shape + (4,))
        w = sr.tensor(w0.copy(), requires_grad=True)
        y = F.embedding(sr.tensor(ids), w, padding_idx=padding_idx, scale_grad_by_freq=by_freq)
        y.backward(sr.tensor(g))
        tw = torch.tensor(w0.copy(), requires_grad=True)
        ty = torch.nn.functional.embedding(torch.from_numpy(ids), tw, padding_idx=padding_idx,
                                           scale_grad_by_freq=by_freq)
        ty.backward(torch.from_numpy(g))
        assert y.shape == tuple(ty.shape)
        np.testing.assert_array_equal(y.detach().numpy(), ty.detach().numpy())
        np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-14, atol=0)


def test_embedding_max_norm_renormalises_the_rows_it_takes_in_place_as_torch():
    torch = torch_or_skip()
    rng = np.random.default_rng(4)
    w0 = rng.standard_normal((5, 3)) * 3
    ids = np.array([[0, 1], [1, 4]])
    for norm_type in (2.0, 1.0):
        w = sr.tensor(w0.copy(), requires_grad=True)
        version = w._version[0]
        y = F.embedding(sr.tensor(ids), w, max_norm=1.5, norm_type=norm_type)
        tw = torch.tensor(w0.copy(), requires_grad=True)
        ty = torch.nn.functional.embedding(torch.from_numpy(ids), tw, max_norm=1.5, norm_type=norm_type)
        np.testing.assert_allclose(w.detach().numpy(), tw.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-12)
        assert w._version[0] == version + 1  # (changed in place: the rows 0, 1 and 4)
        np.testing.assert_array_equal(w.detach().numpy()[[2, 3]], w0[[2, 3]])
        y.sum().backward()
        ty.sum().backward()
        np.testing.assert_array_equal(w.grad.numpy(), tw.grad.numpy())


def test_embedding_refuses_what_torch_refuses_before_any_work():
    w = sr.ones(5, 3, requires_grad=True)
    for ids, kind, match in ((sr.tensor([1, 5]), IndexError, "index out of range in self"),
                             (sr.tensor([-1]), IndexError, "index out of range in self"),
                             (sr.tensor([1.]), sr._errors.DTypeError, "int64 or int32"),
                             (sr.tensor([True]), sr._errors.DTypeError, "int64 or int32"),
                             (sr.tensor([1.], dtype=sr.float32), sr._errors.DTypeError, "int64 or int32"),
                             ([1, 2], TypeError, "dense tensor of indices")):
        with pytest.raises(kind, match=match):
            F.embedding(ids, w)
    with pytest.raises(sr._errors.ShapeError, match="must be 2-D"):
        F.embedding(sr.tensor([0]), sr.ones(5))
    for bad in (5, -6):
        with pytest.raises(sr._errors.ArgumentError, match="Padding_idx must be within num_embeddings"):
            F.embedding(sr.tensor([0]), w, padding_idx=bad)
        with pytest.raises(sr._errors.ArgumentError, match="Padding_idx must be within num_embeddings"):
            sr.nn.Embedding(5, 3, padding_idx=bad)
    with pytest.raises(sr._errors.ArgumentError, match="max_norm"):
        F.embedding(sr.tensor([0]), w, max_norm=float("nan"))
    assert w.grad is None and w._version[0] == 0


def test_embedding_module_as_torch_init_repr_from_pretrained_and_training():
    """nn.Embedding: torch's repr, the padding row zero (a negative padding_idx counted
    from the end), from_pretrained frozen by default and sharing memory, and a few SGD
    steps of a bag-of-embeddings classifier that move every row but the padding one."""
    torch = torch_or_skip()
    for kwargs in ({}, {"padding_idx": -1}, {"padding_idx": 0, "max_norm": 1.0},
                   {"norm_type": 1.0, "scale_grad_by_freq": True}):
        ours, theirs = sr.nn.Embedding(7, 2, **kwargs), torch.nn.Embedding(7, 2, **kwargs)
        assert repr(ours) == repr(theirs)
        assert ours.padding_idx == theirs.padding_idx
        if ours.padding_idx is not None:
            assert ours.weight.detach().numpy()[ours.padding_idx].tolist() == [0., 0.]
    assert sr.nn.Embedding(3, 2, dtype=sr.float64).weight.dtype == sr.float64
    table = sr.tensor([[1., 2.], [3., 4.]])
    frozen = sr.nn.Embedding.from_pretrained(table)
    assert not frozen.weight.requires_grad and frozen(sr.tensor([1])).tolist() == [[3., 4.]]
    assert sr.nn.Embedding.from_pretrained(table, freeze=False).weight.requires_grad
    with pytest.raises(sr._errors.ShapeError, match="2-dimensional"):
        sr.nn.Embedding.from_pretrained(sr.ones(3))

    class Bag(sr.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = sr.nn.Embedding(6, 4, padding_idx=0, generator=np.random.default_rng(0))
            self.out = sr.nn.Linear(4, 2, generator=np.random.default_rng(1))

        def forward(self, ids):
            return self.out(self.emb(ids).mean(dim=1))
    model = Bag()
    before = model.emb.weight.detach().numpy().copy()
    opt = sr.optim.SGD(model.parameters(), lr=0.5)
    ids, labels = sr.tensor([[1, 2, 0], [3, 4, 5]]), sr.tensor([0, 1])
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = F.cross_entropy(model(ids), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    after = model.emb.weight.detach().numpy()
    assert losses[-1] < losses[0]
    assert after[0].tolist() == [0.0] * 4 and (after[1:] != before[1:]).all()


def _same_forward_and_backward(ours, theirs, x0, g, torch):
    """Our layer and torch's on the same input and output gradient: the same output and
    input gradient (to float64 rounding)."""
    x, tx = sr.tensor(x0, requires_grad=True), torch.tensor(x0, requires_grad=True)
    y, ty = ours(x), theirs(tx)
    y.backward(sr.tensor(g))
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("shape,normalized", [((4, 5), (5,)), ((2, 3, 4), (3, 4)), ((3, 6), 6), ((7,), (7,))])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_values_and_gradients_as_torch(shape, normalized, affine):
    torch = torch_or_skip()
    rng = np.random.default_rng(6)
    x0, g = rng.standard_normal(shape) * 3 + 1, rng.standard_normal(shape)
    ours, theirs = sr.nn.LayerNorm(normalized, dtype=sr.float64), torch.nn.LayerNorm(normalized,
                                                                                     dtype=torch.float64)
    if not affine:
        ours, theirs = (sr.nn.LayerNorm(normalized, elementwise_affine=False),
                        torch.nn.LayerNorm(normalized, elementwise_affine=False))
    assert repr(ours) == repr(theirs)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    with sr.no_grad(), torch.no_grad():
        for p, q in zip(ours.parameters(), theirs.parameters()):  # (not ones and zeros: a real test)
            p._data[...] = rng.standard_normal(p.shape)
            q.copy_(torch.tensor(p.detach().numpy()))
    _same_forward_and_backward(ours, theirs, x0, g, torch)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-10, atol=1e-12)
    with pytest.raises(sr._errors.ShapeError, match="normalized_shape"):
        ours(sr.ones(2, 9, dtype=sr.float64))


@pytest.mark.parametrize("momentum", [0.1, None, 0.5])
@pytest.mark.parametrize("ndim", [2, 3])
def test_batch_norm_trains_and_evaluates_as_torch(momentum, ndim):
    """BatchNorm1d through three training batches (outputs, input and parameter gradients,
    running statistics and the batch count), then eval mode (the running statistics),
    its state_dict, against torch 2.13."""
    torch = torch_or_skip()
    rng = np.random.default_rng(7)
    ours = sr.nn.BatchNorm1d(3, momentum=momentum, dtype=sr.float64)
    theirs = torch.nn.BatchNorm1d(3, momentum=momentum, dtype=torch.float64)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    shape = (5, 3) if ndim == 2 else (4, 3, 6)
    for step in range(3):
        x0, g = rng.standard_normal(shape) * (step + 1) + step, rng.standard_normal(shape)
        _same_forward_and_backward(ours, theirs, x0, g, torch)
        for name in ("weight", "bias"):
            np.testing.assert_allclose(getattr(ours, name).grad.numpy(), getattr(theirs, name).grad.numpy(),
                                       rtol=1e-10, atol=1e-12)
    for name, value in ours.state_dict().items():
        np.testing.assert_allclose(value.numpy(), theirs.state_dict()[name].numpy(), rtol=1e-13, err_msg=name)
    assert ours.num_batches_tracked.item() == 3 and ours.num_batches_tracked.dtype == sr.int64
    ours.eval(), theirs.eval()
    x0 = rng.standard_normal(shape)
    np.testing.assert_allclose(ours(sr.tensor(x0)).detach().numpy(), theirs(torch.tensor(x0)).detach().numpy(),
                               rtol=1e-12)
    assert ours.num_batches_tracked.item() == 3  # (eval mode counts nothing)


def test_batch_norm_refusals_and_no_running_stats_as_torch():
    torch = torch_or_skip()
    bn = sr.nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        bn(sr.ones(1, 3))
    assert bn.num_batches_tracked.item() == 0 and bn.running_mean.tolist() == [0., 0., 0.]
    with pytest.raises(ValueError, match="expected 2D or 3D input"):
        bn(sr.ones(2, 3, 4, 5))
    with pytest.raises(ValueError, match="channels"):
        bn(sr.ones(2, 4))
    bn.eval()
    assert bn(sr.ones(1, 3)).shape == (1, 3)  # (eval mode: one sample is fine)
    assert repr(sr.nn.BatchNorm1d(3, bias=False)) == repr(torch.nn.BatchNorm1d(3, bias=False))
    assert list(sr.nn.BatchNorm1d(3, bias=False).state_dict()) == list(torch.nn.BatchNorm1d(3, bias=False).state_dict())
    ours = sr.nn.BatchNorm1d(2, track_running_stats=False, affine=False)
    theirs = torch.nn.BatchNorm1d(2, track_running_stats=False, affine=False)
    assert repr(ours) == repr(theirs) and list(ours.state_dict()) == list(theirs.state_dict()) == []
    x0 = np.array([[1., 2.], [3., 8.], [4., 4.]], dtype=np.float32)
    for m in (ours, theirs):
        m.eval()  # (no running statistics: the batch's, in eval mode too)
    np.testing.assert_allclose(ours(sr.tensor(x0)).numpy(), theirs(torch.tensor(x0)).numpy(), rtol=1e-6)


def _sparse_grad_parts(g):
    """A sparse gradient's raw entries (indices and values in their stored order)."""
    if hasattr(g, "_indices"):  # torch
        return g._indices().numpy().tolist(), g._values().detach().numpy()
    return g._now()._idx.tolist(), g._now()._val


@pytest.mark.parametrize("padding_idx", [None, 1])
def test_a_sparse_embedding_gradient_is_torchs_entries_and_accumulates_as_torch(padding_idx):
    """Embedding(sparse=True): weight.grad is an uncoalesced COO tensor with torch's
    entries in torch's order (the padding's left out); a second backward adds its
    entries (still sparse, the same coalesced tensor as torch's); a dense gradient on
    top makes it dense, as torch's."""
    torch = torch_or_skip()
    rng = np.random.default_rng(9)
    w0 = rng.standard_normal((6, 3))
    ids1, ids2 = np.array([[1, 4, 1], [0, 5, 1]]), np.array([2, 4])
    g1, g2 = rng.standard_normal((2, 3, 3)), rng.standard_normal((2, 3))
    grads = []
    for m in (sr, torch):
        emb = m.nn.Embedding(6, 3, padding_idx=padding_idx, sparse=True, dtype=m.float64)
        with m.no_grad():
            emb.weight.copy_(m.tensor(w0)) if m is torch else emb.weight._data.__setitem__(Ellipsis, w0)
        emb(m.tensor(ids1)).backward(m.tensor(g1))
        first = _sparse_grad_parts(emb.weight.grad)
        assert emb.weight.grad.is_sparse and not emb.weight.grad.is_coalesced()
        emb(m.tensor(ids2)).backward(m.tensor(g2))
        assert emb.weight.grad.is_sparse and not emb.weight.grad.is_coalesced()
        second = _sparse_grad_parts(emb.weight.grad.coalesce())  # (torch's entry order after an
        # addition depends on its sparse add's merge; ours appends: the same entries, coalesced)
        (emb.weight * 3).sum().backward()
        grads.append((first, second, emb.weight.grad.is_sparse, emb.weight.grad.detach().numpy()))
    (a1, a2, a_sparse, a_dense), (b1, b2, b_sparse, b_dense) = grads
    for (ia, va), (ib, vb) in ((a1, b1), (a2, b2)):
        assert ia == ib
        np.testing.assert_array_equal(va, vb)
    assert a_sparse is b_sparse is False
    np.testing.assert_allclose(a_dense, b_dense, rtol=1e-15)  # (a row's entries summed in another order)
    assert repr(sr.nn.Embedding(6, 3, sparse=True)) == repr(torch.nn.Embedding(6, 3, sparse=True))


@pytest.mark.parametrize("make", [
    lambda m, ps: m.optim.SGD(ps, lr=0.1),
    lambda m, ps: m.optim.SGD(ps, lr=0.1, maximize=True),
    lambda m, ps: m.optim.SparseAdam(ps, lr=0.1),
    lambda m, ps: m.optim.SparseAdam(ps, lr=0.05, betas=(0.8, 0.9), maximize=True),
    lambda m, ps: m.optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda m, ps: m.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
], ids=["sgd", "sgd-maximize", "sparse-adam", "sparse-adam-betas", "sgd-momentum", "sgd-nesterov"])
def test_optimisers_take_sparse_embedding_gradients_as_torch(make, request):
    """Ten steps of an embedding bag trained with sparse gradients, repeated indices in
    every batch: the weights are torch's up to rounding (a few units in the last place:
    torch's dense += sparse and its coalesce round in their own order; with momentum the
    buffer is dense here and sparse in torch); the state_dict's keys (and SparseAdam's
    kinds of state) as torch's."""
    torch = torch_or_skip()
    rng = np.random.default_rng(10)
    w0, batches = rng.standard_normal((7, 4)), [rng.integers(0, 7, (3, 5)) for _ in range(10)]
    targets = [rng.standard_normal((3, 4)) for _ in range(10)]
    out = []
    for m in (sr, torch):
        w = m.tensor(w0.copy(), requires_grad=True)
        opt = make(m, [w])
        for ids, y in zip(batches, targets):
            opt.zero_grad()
            e = m.nn.functional.embedding(m.tensor(ids), w, sparse=True)
            # (a loss whose gradient, y, both have exactly: the optimisers are compared)
            (e * m.tensor(y[:, None, :])).sum().backward()
            opt.step()
        state = opt.state_dict()["state"].get(0, {})
        out.append((w.detach().numpy().copy(), sorted(state), {k: type(v).__name__ for k, v in state.items()}))
    (ours, our_keys, our_types), (theirs, their_keys, their_types) = out
    assert our_keys == their_keys
    np.testing.assert_allclose(ours, theirs, rtol=1e-13, atol=1e-14)
    assert np.abs(ours - w0).max() > 0.1  # (they moved)
    if "sparse-adam" in request.node.callspec.id:
        assert our_types == their_types == {"step": "int", "exp_avg": "Tensor", "exp_avg_sq": "Tensor"}


def test_optimisers_refuse_the_gradients_torch_refuses_and_change_nothing():
    emb = sr.nn.Embedding(4, 2, sparse=True)
    dense = sr.nn.Linear(2, 2)
    emb(sr.tensor([1, 2])).sum().backward()
    dense(sr.ones(1, 2)).sum().backward()
    before = emb.weight.detach().clone().numpy(), dense.weight.detach().clone().numpy()
    for opt, match in ((sr.optim.Adam([dense.weight, emb.weight]), "Adam does not support sparse gradients, "
                        "please consider SparseAdam instead"),
                       (sr.optim.AdamW([emb.weight]), "AdamW does not support sparse gradients"),
                       (sr.optim.SparseAdam([emb.weight, dense.weight]), "SparseAdam does not support dense "
                        "gradients, please consider Adam instead"),
                       (sr.optim.SGD([dense.weight, emb.weight], lr=0.1, weight_decay=0.1),
                        "weight_decay with a sparse gradient")):
        with pytest.raises(RuntimeError, match=match):
            opt.step()
        np.testing.assert_array_equal(emb.weight.detach().numpy(), before[0])
        np.testing.assert_array_equal(dense.weight.detach().numpy(), before[1])
    opt = sr.optim.SparseAdam([emb.weight])
    opt.step()
    again = sr.optim.SparseAdam([sr.nn.Parameter(sr.zeros(4, 2))])
    again.load_state_dict(opt.state_dict())
    assert again.state_dict()["state"][0]["step"] == 1
    emb.zero_grad(set_to_none=False)  # (a sparse .grad zeroed: no entries left, as torch's)
    assert emb.weight.grad.is_sparse and emb.weight.grad._nnz() == 0


def test_probe_findings_on_the_new_layers_and_optimisers():
    """(probe, mended) SparseAdam did not count a step whose gradient had no entries (an
    all-padding batch), so its bias correction drifted from torch's; Module.to(int64)
    changed half a module and then failed, and double() cast an integer Parameter;
    layer_norm and batch_norm took complex input (a variance of c*c, not |c|^2);
    scale_grad_by_freq with sparse=True was taken; a Parameter or Module set on a
    buffer's name kept the buffer's place in the listings; a .grad assigned by hand with
    two sparse dims was refused by the optimisers."""
    torch = torch_or_skip()
    steps = []
    for m in (sr, torch):
        e = m.nn.Embedding(3, 2, padding_idx=0, sparse=True)
        opt = m.optim.SparseAdam(e.parameters(), lr=0.1)
        for ids in ([0, 0], [1], [2, 1]):
            opt.zero_grad()
            e(m.tensor(ids)).sum().backward()
            opt.step()
        steps.append(opt.state[e.weight]["step"])
    assert steps[0] == steps[1] == 3
    lin = sr.nn.Linear(2, 2)
    lin.weight.requires_grad_(False)
    with pytest.raises(TypeError, match="only accepts floating point or complex dtypes"):
        lin.to(sr.int64)
    assert lin.weight.dtype == lin.bias.dtype == sr.float32
    lin.idx = sr.nn.Parameter(sr.tensor([1, 2]), requires_grad=False)
    assert lin.double().idx.dtype == sr.int64 and lin.weight.dtype == sr.float64
    for f in (lambda x: F.layer_norm(x, (2,)), lambda x: F.batch_norm(x, None, None, training=True)):
        with pytest.raises(sr._errors.DTypeError, match="real floating"):
            f(sr.tensor([[1 + 1j, 2 - 1j], [0j, 1j]]))
    with pytest.raises(RuntimeError, match="scale_grad_by_freq not supported with sparse gradients"):
        F.embedding(sr.tensor([1]), sr.ones(3, 2), scale_grad_by_freq=True, sparse=True)
    with pytest.raises(RuntimeError, match="requires grad"):
        F.batch_norm(sr.ones(3, 2), sr.zeros(2, requires_grad=True), sr.ones(2), training=True)
    for m in (sr, torch):
        mod = m.nn.Module()
        mod.w = m.nn.Parameter(m.ones(1))
        mod.register_buffer("a", m.ones(1))
        mod.z = m.nn.Parameter(m.ones(1))
        mod.a = m.nn.Parameter(m.ones(1))
        mod.register_buffer("b", m.ones(1))
        mod.b = m.nn.Linear(1, 1)
        steps.append(([n for n, _ in mod.named_parameters()], list(mod.state_dict()), len(list(mod.buffers())),
                      len(list(mod.parameters(recurse=False)))))
    assert steps[2] == steps[3]
    w = sr.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    tw = torch.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    w.grad = sr.sparse_coo_tensor([[0, 1, 0], [1, 0, 1]], [1., 2., 4.], (2, 2))
    tw.grad = torch.sparse_coo_tensor([[0, 1, 0], [1, 0, 1]], [1., 2., 4.], (2, 2))
    sr.optim.SGD([w], lr=0.5).step()
    torch.optim.SGD([tw], lr=0.5).step()
    np.testing.assert_array_equal(w.detach().numpy(), tw.detach().numpy())
    w.grad, tw.grad = w.grad.coalesce(), tw.grad.coalesce()
    sr.optim.SparseAdam([w], lr=0.5).step()
    torch.optim.SparseAdam([tw], lr=0.5).step()
    np.testing.assert_allclose(w.detach().numpy(), tw.detach().numpy(), rtol=1e-6)
    ones = F.embedding(sr.tensor([[0, 1]]), sr.tensor([[3., 4.], [1., 0.]]), max_norm=2.0, norm_type=float("inf"))
    np.testing.assert_allclose(ones.numpy(), [[[1.5, 2.0], [1.0, 0.0]]], rtol=1e-6)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, "inf", 3.5])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_and_value_as_torch(norm_type, max_norm):
    """nn.utils.clip_grad_norm_ (the total norm returned, each gradient scaled in place, a
    reference to a .grad sees it) and clip_grad_value_, against torch 2.13, float64 and
    float32; non-finite and sparse refusals as torch's."""
    torch = torch_or_skip()
    rng = np.random.default_rng(12)
    for dtype in ("float64", "float32"):
        g1, g2 = rng.standard_normal((3, 2)).astype(dtype), rng.standard_normal(4).astype(dtype)
        results = []
        for m in (sr, torch):
            p1, p2, p3 = (m.nn.Parameter(m.zeros(3, 2, dtype=getattr(m, dtype))),
                          m.nn.Parameter(m.zeros(4, dtype=getattr(m, dtype))), m.nn.Parameter(m.zeros(1)))
            p1.grad, p2.grad = m.tensor(g1.copy()), m.tensor(g2.copy())  # (p3 has no gradient)
            held = p1.grad
            total = m.nn.utils.clip_grad_norm_([p1, p2, p3], max_norm, norm_type=norm_type)
            results.append((float(total), held.numpy().copy(), p2.grad.numpy().copy()))
            m.nn.utils.clip_grad_value_([p1, p2], 0.1)
            results.append((0.0, p1.grad.numpy().copy(), p2.grad.numpy().copy()))
        tol = 1e-12 if dtype == "float64" else 1e-5
        for ours, theirs in ((results[0], results[2]), (results[1], results[3])):
            for a, b in zip(ours, theirs):
                np.testing.assert_allclose(a, b, rtol=tol)
    w = sr.nn.Parameter(sr.zeros(2))
    w.grad = sr.tensor([3., float("nan")])
    with pytest.raises(RuntimeError, match="non-finite, so it cannot be clipped"):
        sr.nn.utils.clip_grad_norm_([w], 1.0, error_if_nonfinite=True)
    assert float(sr.nn.utils.clip_grad_norm_([], 1.0)) == 0.0
    emb = sr.nn.Embedding(3, 2, sparse=True)
    emb(sr.tensor([1])).sum().backward()
    with pytest.raises(TypeError, match="sparse gradient"):
        sr.nn.utils.clip_grad_norm_(emb.parameters(), 0.5)


def test_parameters_to_vector_and_back_as_torch():
    torch = torch_or_skip()
    ours, theirs = sr.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    vec = np.arange(8, dtype=np.float32)
    sr.nn.utils.vector_to_parameters(sr.tensor(vec), ours.parameters())
    torch.nn.utils.vector_to_parameters(torch.tensor(vec), theirs.parameters())
    np.testing.assert_array_equal(sr.nn.utils.parameters_to_vector(ours.parameters()).detach().numpy(),
                                  torch.nn.utils.parameters_to_vector(theirs.parameters()).detach().numpy())
    v = sr.nn.utils.parameters_to_vector(ours.parameters())
    (v * v).sum().backward()
    np.testing.assert_array_equal(ours.weight.grad.numpy(), 2 * vec[:6].reshape(2, 3))
    with pytest.raises(ValueError, match="8 values"):
        sr.nn.utils.vector_to_parameters(sr.ones(5), ours.parameters())


def test_clipping_follows_torchs_dtypes_and_refuses_complex_values():
    """(probe, mended) clip_grad_norm_ took the first gradient's dtype for the total (a
    float64 gradient after a float32 one was scaled by a float32 coefficient) and zeroed
    float16 gradients (their norm was inf); clip_grad_value_ ordered complex gradients."""
    torch = torch_or_skip()
    results = []
    for m in (sr, torch):
        a, b = m.nn.Parameter(m.zeros(1)), m.nn.Parameter(m.zeros(1, dtype=m.float64))
        a.grad, b.grad = m.tensor([3.]), m.tensor([4.], dtype=m.float64)
        total = m.nn.utils.clip_grad_norm_([a, b], 1.0)
        h = m.nn.Parameter(m.zeros(2, dtype=m.float16))
        h.grad = m.tensor([300., 400.], dtype=m.float16)
        results.append((str(total.dtype).replace("torch.", ""), b.grad.tolist(),
                        float(m.nn.utils.clip_grad_norm_([h], 1.0)), h.grad.numpy().astype(float).tolist()))
    assert results[0][:3] == results[1][:3]
    np.testing.assert_allclose(results[0][3], results[1][3], rtol=2e-3)
    q = sr.nn.Parameter(sr.zeros(1, dtype=sr.complex64))
    q.grad = sr.tensor([3 + 4j], dtype=sr.complex64)
    with pytest.raises(TypeError, match="clamp is not supported for complex types"):
        sr.nn.utils.clip_grad_value_([q], 1.0)
    assert q.grad.tolist() == [3 + 4j]


@pytest.mark.parametrize("make", [lambda ps: sr.optim.SGD(ps, lr=0.5), lambda ps: sr.optim.Adam(ps, lr=0.5),
                                  lambda ps: sr.optim.AdamW(ps, lr=0.5)])
def test_an_optimizer_refuses_an_integer_parameter(make):
    # it truncated (SGD: [1, 2] - 0.5 * [1, 1] -> [0, 1]) or wrapped; torch refuses too
    w = sr.tensor([1, 2])
    w.grad = sr.tensor([1, 1])
    x = sr.tensor([1., 2.], requires_grad=True)
    x.grad = sr.tensor([1., 1.])
    with pytest.raises(TypeError, match="int64 parameter"):
        make([x, w]).step()
    assert w.tolist() == [1, 2] and x.tolist() == [1., 2.]  # nothing was updated


def test_sgd_refuses_a_setting_the_half_parameter_cannot_hold():
    # lr=1e5 in a float16 product was inf: the parameter became -inf. torch refuses each
    # setting beyond 65504 at the step that multiplies by it (1 - dampening: from the second)
    torch = torch_or_skip()
    cases = (dict(lr=1e5), dict(lr=65510.), dict(lr=0.1, weight_decay=1e5), dict(lr=1e-4, momentum=0.5, dampening=-65519.),
             dict(lr=1e-4, momentum=0.5, dampening=-65000.))
    ours = []
    for settings in cases:
        fails_at = []
        for lib, error in ((sr, ConversionError), (torch, RuntimeError)):
            w = lib.nn.Parameter(lib.tensor([1.], dtype=lib.float16))
            opt = lib.optim.SGD([w], **settings)
            at = None
            for step in (1, 2):
                w.grad = lib.tensor([1e-3], dtype=lib.float16)
                try:
                    opt.step()
                except error as e:
                    assert "without overflow" in str(e)
                    at = step
                    break
            fails_at.append((at, w.tolist()))
        assert fails_at[0] == fails_at[1], settings
        ours.append(fails_at[0][0])
    assert ours == [1, 1, 1, 2, None]  # the step each case is refused at, in both libraries


def test_vector_to_parameters_refuses_what_a_parameter_cannot_hold():
    lin = sr.nn.Linear(1, 1)
    before = lin.weight.tolist(), lin.bias.tolist()
    with pytest.raises(RuntimeError, match="float32 without overflow"):
        sr.nn.utils.vector_to_parameters(sr.tensor([1e300, 2.], dtype=sr.float64), lin.parameters())
    with pytest.raises(TypeError, match="imaginary part"):
        sr.nn.utils.vector_to_parameters(sr.tensor([2., 1 + 5j]), lin.parameters())
    p = sr.nn.Parameter(sr.tensor([1, 2]), requires_grad=False)
    with pytest.raises(RuntimeError, match="NaN and inf"):
        sr.nn.utils.vector_to_parameters(sr.tensor([float("nan"), 2.5]), [p])
    assert (lin.weight.tolist(), lin.bias.tolist()) == before and p.tolist() == [1, 2]  # nothing written
    sr.nn.utils.vector_to_parameters(sr.tensor([3., 4.], dtype=sr.float64), lin.parameters())
    assert (lin.weight.tolist(), lin.bias.tolist()) == ([[3.]], [4.])


def test_clip_grad_value_refuses_an_integer_gradient():
    torch = torch_or_skip()
    for lib, error in ((sr, TypeError), (torch, RuntimeError)):
        p = lib.nn.Parameter(lib.tensor([5, -5]), requires_grad=False)
        p.grad = lib.tensor([5, -5])
        for bound in (2.5, 2.0, 2):  # 2.5 clipped to [2, -2] here; torch refuses every bound
            with pytest.raises(error):
                lib.nn.utils.clip_grad_value_([p], bound)
        assert p.grad.tolist() == [5, -5]


def test_third_probe_findings_on_modules_and_loaders():
    # a Parameter's deepcopy leaves its .grad behind, as torch's (a plain tensor's keeps it)
    p = sr.nn.Parameter(sr.ones(2))
    (p * 2).sum().backward()
    assert copy.deepcopy(p).grad is None and p.grad.tolist() == [2., 2.]
    t = sr.ones(2, requires_grad=True)
    (t * 2).sum().backward()
    assert copy.deepcopy(t).grad.tolist() == [2., 2.]
    # Dropout's probability is checked when the module is made, as torch's (and a bool is
    # refused, which torch takes as 0 or 1)
    for bad in (2.0, -0.1, True):
        with pytest.raises(ValueError, match="between 0 and 1"):
            sr.nn.Dropout(bad)
    assert sr.nn.Dropout(np.float32(0.25)).p == 0.25
    # shuffling an empty dataset is refused, as torch's RandomSampler refuses it
    empty = sr.utils.data.TensorDataset(sr.zeros(0, 2))
    with pytest.raises(ValueError, match="num_samples=0"):
        sr.utils.data.DataLoader(empty, shuffle=True)
    assert list(sr.utils.data.DataLoader(empty)) == []


@pytest.mark.parametrize("op", ["sigmoid", "exp", "relu", "tanh", "sqrt", "softmax", "log_softmax"])
def test_an_op_that_keeps_its_output_lets_its_input_change(op):
    # as torch's: backward reads the output, so an in-place change of the input under
    # no_grad between forward and backward is no error (it was refused here)
    torch = torch_or_skip()
    grads = []
    for lib in (sr, torch):
        w = lib.nn.Parameter(lib.tensor([0.5, 2.], dtype=lib.float64))
        f = getattr(lib, op) if op not in ("softmax", "log_softmax") else (lambda x, f=getattr(lib, op): f(x, 0))
        y = (f(w) * lib.tensor([1., 3.], dtype=lib.float64)).sum()
        with lib.no_grad():
            w.mul_(5)
        y.backward()
        grads.append(w.grad.tolist())
    assert np.allclose(grads[0], grads[1], rtol=1e-15, atol=0)


def test_torch_names_sparse_ref_lacks_say_so():
    # these were plain "has no attribute" or "unexpected keyword argument" errors
    w = sr.tensor([1.], requires_grad=True)
    for owner, name in ((sr.autograd, "detect_anomaly"), (sr.utils.data, "RandomSampler"), (sr.utils, "checkpoint"),
                        (sr.optim.Adam([w]), "add_param_group"), (sr.optim.SGD([w]), "register_step_pre_hook")):
        with pytest.raises(AttributeError, match="not \\(yet\\) part of it"):
            getattr(owner, name)
    for make in (lambda: sr.nn.ReLU(inplace=True), lambda: sr.nn.LeakyReLU(0.1, inplace=True),
                 lambda: sr.nn.Dropout(0.5, inplace=True)):
        with pytest.raises(ValueError, match="inplace=True is not supported"):
            make()
    assert sr.nn.ReLU(inplace=False)(sr.tensor([-1., 2.])).tolist() == [0., 2.]
    assert sr.is_grad_enabled()
    with sr.no_grad():
        assert not sr.is_grad_enabled()

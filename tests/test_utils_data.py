"""sr.utils.data against torch.utils.data: the batches (values, types, dtypes, lengths) of
the same loader over the same data, the collate rules, torch's refusals, and a training
loop over shuffled batches."""

import collections

import numpy as np
import pytest
from conftest import torch_or_skip

import sparse_ref as sr
from sparse_ref.utils.data import DataLoader, Dataset, Subset, TensorDataset, default_collate, random_split


def _same(ours, theirs):
    """The same nested structure, types and values (a tensor: shape, dtype and values)."""
    torch = torch_or_skip()
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, sr.Tensor), type(ours)
        assert ours.shape == tuple(theirs.shape)
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict) and list(ours) == list(theirs)
        for k in theirs:
            _same(ours[k], theirs[k])
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs), (type(ours), type(theirs))
        for a, b in zip(ours, theirs):
            _same(a, b)
    else:
        assert ours == theirs


@pytest.mark.parametrize("batch_size,drop_last", [(1, False), (2, False), (2, True), (5, False), (7, False),
                                                  (None, False)])
def test_a_tensor_dataset_gives_torch_batches(batch_size, drop_last):
    torch = torch_or_skip()
    x = np.arange(15, dtype=np.float32).reshape(5, 3)
    y = np.array([0, 1, 1, 0, 2])
    ours = DataLoader(TensorDataset(sr.tensor(x), sr.tensor(y)), batch_size=batch_size, drop_last=drop_last)
    theirs = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y)),
                                         batch_size=batch_size, drop_last=drop_last)
    assert len(ours) == len(theirs)
    got, want = list(ours), list(theirs)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        _same(a, b)


def test_default_collate_as_torch():
    torch = torch_or_skip()
    Point = collections.namedtuple("Point", "x y")
    for batch in ([(1, 2.5), (3, 4.5)], [[1, 2], [3, 4]], [1.5, 2.5], [True, False], ["a", "b"],
                  [np.array([1., 2.]), np.array([3., 4.])], [np.float32(1.5), np.float32(2.)],
                  [np.int32(3), np.int32(4)], [Point(1, 2.), Point(3, 4.)]):
        _same(default_collate(batch), torch.utils.data.default_collate(batch))
    _same(default_collate([{"a": 1, "b": sr.ones(2)}, {"a": 2, "b": sr.zeros(2)}]),
          torch.utils.data.default_collate([{"a": 1, "b": torch.ones(2)}, {"a": 2, "b": torch.zeros(2)}]))
    _same(default_collate([(sr.ones(2), 1)]), torch.utils.data.default_collate([(torch.ones(2), 1)]))


def test_a_dataset_of_its_own_and_a_list_give_torch_batches():
    torch = torch_or_skip()

    class Squares(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return {"x": np.full(2, i, dtype=np.float64), "y": i * i}
    ours, theirs = list(DataLoader(Squares(), batch_size=2)), list(torch.utils.data.DataLoader(Squares(), batch_size=2))
    for a, b in zip(ours, theirs):
        _same(a, b)
    _same(list(DataLoader([1.5, 2.5, 3.5], batch_size=2)), list(torch.utils.data.DataLoader([1.5, 2.5, 3.5],
                                                                                            batch_size=2)))
    batches = [[3, 1], [0, 4, 2]]
    _same(list(DataLoader(list(range(10, 15)), batch_sampler=batches)),
          list(torch.utils.data.DataLoader(list(range(10, 15)), batch_sampler=batches)))
    _same(list(DataLoader(list(range(10, 15)), sampler=[4, 0, 2], batch_size=2)),
          list(torch.utils.data.DataLoader(list(range(10, 15)), sampler=[4, 0, 2], batch_size=2)))


def test_shuffle_takes_every_sample_once_per_epoch_anew_and_reproducibly():
    ds = TensorDataset(sr.arange(20))
    loader = DataLoader(ds, batch_size=6, shuffle=True, generator=sr.Generator().manual_seed(5))
    epochs = [np.concatenate([b[0].numpy() for b in loader]) for _ in range(3)]
    for e in epochs:
        assert sorted(e.tolist()) == list(range(20))
    assert epochs[0].tolist() != epochs[1].tolist()  # (a new order each epoch: 20! orders)
    again = DataLoader(ds, batch_size=6, shuffle=True, generator=sr.Generator().manual_seed(5))
    assert np.concatenate([b[0].numpy() for b in again]).tolist() == epochs[0].tolist()
    sr.manual_seed(3)
    first = [b[0].tolist() for b in DataLoader(ds, batch_size=20, shuffle=True)]
    sr.manual_seed(3)
    assert [b[0].tolist() for b in DataLoader(ds, batch_size=20, shuffle=True)] == first


def test_random_split_as_torch_lengths():
    torch = torch_or_skip()
    for lengths in ([3, 7], [0.3, 0.7], [0.33, 0.33, 0.34], [0.5, 0.5], [10, 0], [1.0]):
        ours = random_split(range(10), lengths, generator=sr.Generator().manual_seed(0))
        theirs = torch.utils.data.random_split(range(10), lengths)
        assert [len(p) for p in ours] == [len(p) for p in theirs]
        assert all(isinstance(p, Subset) for p in ours)
        assert sorted(i for p in ours for i in p) == list(range(10))
    for bad in ([3, 4], [0.5, 0.4], [-1, 11]):
        with pytest.raises(ValueError):
            random_split(range(10), bad)


def test_refusals_as_torch_before_any_batch():
    ds = TensorDataset(sr.ones(4, 2))
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="batch_size should be a positive integer value"):
            DataLoader(ds, batch_size=bad)
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(ds, shuffle=True, sampler=[0, 1])
    with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive"):
        DataLoader(ds, batch_size=2, batch_sampler=[[0]])
    with pytest.raises(ValueError, match="num_workers"):
        DataLoader(ds, num_workers=-1)
    with pytest.raises(TypeError, match="generator"):
        DataLoader(ds, shuffle=True, generator=3)
    with pytest.raises(ValueError, match="Size mismatch between tensors"):
        TensorDataset(sr.ones(3), sr.ones(4))
    with pytest.raises(TypeError, match="dense tensor"):
        TensorDataset([1, 2])
    with pytest.raises(ValueError, match="equal size"):
        default_collate([sr.ones(2), sr.ones(3)])
    with pytest.raises(ValueError, match="equal size"):
        default_collate([[1, 2], [3]])
    with pytest.raises(TypeError, match="sparse"):
        default_collate([sr.ones(2).to_sparse()])
    with pytest.raises(TypeError, match="found object"):
        default_collate([object()])


def test_num_workers_gives_the_same_batches_and_a_loop_trains():
    """A course's loop: shuffled mini-batches of a TensorDataset through a model and SGD;
    num_workers=2 is accepted and gives the batches of num_workers=0."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = (x @ np.array([1., -2., .5], dtype=np.float32) > 0).astype(np.int64)
    ds = TensorDataset(sr.tensor(x), sr.tensor(y))
    a = [[t.tolist() for t in b] for b in DataLoader(ds, batch_size=10, num_workers=2)]
    b = [[t.tolist() for t in b] for b in DataLoader(ds, batch_size=10)]
    assert a == b
    model = sr.nn.Linear(3, 2, generator=np.random.default_rng(1))
    opt = sr.optim.SGD(model.parameters(), lr=0.5)
    loader = DataLoader(ds, batch_size=16, shuffle=True, generator=sr.Generator().manual_seed(0))

    def loss_of_all():
        with sr.no_grad():
            return sr.nn.functional.cross_entropy(model(sr.tensor(x)), sr.tensor(y)).item()
    before = loss_of_all()
    for _ in range(10):
        for xb, yb in loader:
            opt.zero_grad()
            sr.nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
    assert loss_of_all() < 0.5 * before


def test_samples_that_require_grad_are_stacked_with_their_graph():
    w = sr.ones(4, 2, requires_grad=True)
    (xb,) = next(iter(DataLoader(TensorDataset(w), batch_size=3)))
    xb.sum().backward()
    assert w.grad.tolist() == [[1., 1.]] * 3 + [[0., 0.]]


def test_a_batch_of_numbers_takes_torchs_dtype_from_all_of_them():
    """(probe) default_collate took the first sample's type for the whole batch: [0, 0.5,
    1.5] came out int64 [0, 0, 1], silently. torch infers from all of them."""
    torch = torch_or_skip()
    for batch in ([0, 0.5, 1.5], [True, 2], [True, False], [1, 2 + 1j], [1.5, 2], [np.int64(1), 2.5],
                  [np.float32(.25), np.float64(.1)], [np.int32(1), np.int32(2)]):
        _same(default_collate(batch), torch.utils.data.default_collate(batch))
    _same(next(iter(DataLoader([0, 0.5, 1.5], batch_size=3))),
          next(iter(torch.utils.data.DataLoader([0, 0.5, 1.5], batch_size=3))))
    with pytest.raises(ValueError, match="overflow"):
        default_collate([0, 1e300])  # (float32, torch's dtype here, cannot hold it: refused, not inf)


def test_loader_options_and_indices_as_torch_checks_them():
    """(probe) A float index took the rows' fast path and was truncated ([0.5, 1.7] gave
    rows 0 and 1); torch's options timeout, prefetch_factor, persistent_workers and
    worker_init_fn were refused as unknown; batch_size=None with drop_last was taken."""
    ds = TensorDataset(sr.arange(5))
    with pytest.raises(IndexError):
        list(DataLoader(ds, batch_size=2, sampler=[0.5, 1.7]))
    with pytest.raises(ValueError):
        list(DataLoader(ds, batch_sampler=[[]]))
    for kwargs, match in (({"timeout": -1}, "timeout option should be non-negative"),
                          ({"prefetch_factor": 2}, "prefetch_factor option could only be specified"),
                          ({"persistent_workers": True}, "persistent_workers option needs num_workers > 0"),
                          ({"batch_size": None, "drop_last": True}, "mutually exclusive with drop_last")):
        with pytest.raises(ValueError, match=match):
            DataLoader(ds, **kwargs)
    seen = []
    loader = DataLoader(ds, batch_size=2, num_workers=2, prefetch_factor=4, persistent_workers=True, timeout=5,
                        worker_init_fn=seen.append)
    assert [b[0].tolist() for b in loader] == [[0, 1], [2, 3], [4]] and seen == [0]
    assert Subset(ds, [4, 3, 2])[[0, 2]][0].tolist() == [4, 2]  # (the list handed on, as torch's)

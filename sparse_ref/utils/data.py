"""``sr.utils.data``: the part of ``torch.utils.data`` a training loop uses (layer 5).

:class:`Dataset` (``len`` and ``[i]``), :class:`TensorDataset` (rows of tensors with one
first dimension), :class:`Subset` and :func:`random_split`, and :class:`DataLoader`, which
hands out batches made by :func:`default_collate` as torch's does: a batch of tensors is
stacked, numbers become a tensor (ints as int64, floats as float64, as torch), a tuple
or list becomes a list of batches field by field, a dict a dict.

Differences from torch, on purpose:

- ``shuffle`` and ``random_split`` draw from sparse_ref's generator (or the one given),
  not torch's: the same seed gives other orders than torch.
- ``num_workers`` is accepted and the batches are made in the calling process, in the
  same order (the batches are the same as torch's with workers); ``worker_init_fn``, if
  given with workers, is called once per epoch with worker id 0, in this process.
  ``timeout``, ``prefetch_factor``, ``persistent_workers`` and ``pin_memory`` are checked
  as torch checks them and change nothing.

Examples
--------
>>> import sparse_ref as sr
>>> from sparse_ref.utils.data import DataLoader, TensorDataset
>>> x, y = sr.arange(10).reshape(5, 2).float(), sr.tensor([0, 1, 0, 1, 1])
>>> loader = DataLoader(TensorDataset(x, y), batch_size=2)
>>> len(loader)
3
>>> for xb, yb in loader:
...     print(xb.shape, yb.tolist())
(2, 2) [0, 1]
(2, 2) [0, 1]
(1, 2) [1]
"""

from __future__ import annotations

import collections.abc
import math
import numbers

import numpy as np

from sparse_ref import _dtypes, _factories, _functions
from sparse_ref._arrays import converted
from sparse_ref._errors import ArgumentError, ShapeError, missing
from sparse_ref._tensor import SparseTensor, Tensor

__all__ = ["DataLoader", "Dataset", "Subset", "TensorDataset", "default_collate", "random_split"]


class Dataset:
    """The base of a map-style dataset: define ``__getitem__(i)`` (one sample) and
    ``__len__``, as torch's."""

    def __getitem__(self, index):  # pragma: no cover - every dataset overrides it
        raise NotImplementedError(f"Dataset {type(self).__name__} is missing __getitem__")


class TensorDataset(Dataset):
    """Sample ``i`` is ``tuple(t[i] for t in tensors)``: the tensors share their first
    dimension (their rows), as torch's.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> from sparse_ref.utils.data import TensorDataset
    >>> ds = TensorDataset(sr.tensor([[1., 2.], [3., 4.]]), sr.tensor([0, 1]))
    >>> len(ds), ds[1]
    (2, (tensor([3., 4.]), tensor(1)))
    """

    def __init__(self, *tensors):
        for i, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                raise TypeError(f"TensorDataset: tensors[{i}] must be a dense tensor, got {type(t).__name__}")
            if t.ndim == 0:
                raise ShapeError(f"TensorDataset: tensors[{i}] is 0-d; each needs a first dimension (its rows)")
        if len({t.shape[0] for t in tensors}) > 1:
            raise ShapeError("Size mismatch between tensors: TensorDataset's tensors need one first dimension, "
                             f"got {[t.shape[0] for t in tensors]}")
        self.tensors = tuple(tensors)

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0] if self.tensors else 0


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __getitem__(self, index):
        if isinstance(index, list):  # (the dataset gets the list, as torch's Subset hands it on)
            return self.dataset[[self.indices[i] for i in index]]
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)


def random_split(dataset, lengths, generator=None) -> list:
    """``dataset`` cut into :class:`Subset` s of the given lengths, its samples shuffled
    first, as torch's. ``lengths`` may be fractions summing to 1: each part gets the floor
    of its share, and what is left goes one by one to the first parts (10 samples in
    [0.33, 0.33, 0.34]: 4, 3, 3). The draw is sparse_ref's generator's (or ``generator``,
    an ``sr.Generator`` or NumPy Generator).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> from sparse_ref.utils.data import random_split
    >>> train, test = random_split(range(10), [0.8, 0.2], generator=sr.Generator().manual_seed(0))
    >>> len(train), len(test), sorted(list(train) + list(test)) == list(range(10))
    (8, 2, True)
    """
    n = len(dataset)
    lengths = list(lengths)
    for x in lengths:
        if isinstance(x, bool) or not isinstance(x, numbers.Real) or x < 0:
            raise ArgumentError(f"random_split: lengths must be non-negative numbers, got {x!r}")
    if lengths and all(isinstance(x, float) or isinstance(x, np.floating) for x in lengths) \
            and math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    elif not all(isinstance(x, (int, np.integer)) for x in lengths):
        raise ArgumentError(f"random_split: lengths must be ints summing to the dataset's length ({n}) or "
                            f"fractions summing to 1, got {lengths}")
    if sum(lengths) != n:
        raise ArgumentError("Sum of input lengths does not equal the length of the input dataset! "
                            f"({sum(lengths)} against {n})")
    order = _factories._rng(generator, "random_split").permutation(n).tolist()
    parts, start = [], 0
    for length in lengths:
        parts.append(Subset(dataset, order[start:start + int(length)]))
        start += int(length)
    return parts


def default_collate(batch):
    """A list of samples as one batch, as torch's ``default_collate``: tensors stacked
    along a new first dimension; NumPy arrays and numbers as tensors (an int as int64, a
    float as float64, a bool as bool); strings kept as a list; a dict of batches for
    dicts; a list of batches, field by field, for tuples and lists (a named tuple stays
    one). Numbers take torch's dtype for the whole batch (``[0, 0.5]`` is a float batch).
    Samples of different shapes or lengths are refused."""
    if not isinstance(batch, (list, tuple)) or not batch:
        raise ArgumentError(f"default_collate: needs a non-empty list of samples, got {batch!r}")
    elem = batch[0]
    if isinstance(elem, SparseTensor):
        raise TypeError("default_collate: a batch of sparse tensors is not stacked by sparse_ref; pass a "
                        "collate_fn of your own (for instance one that keeps the list)")
    if isinstance(elem, Tensor):
        if any(not isinstance(b, Tensor) for b in batch):
            raise TypeError("default_collate: the samples mix tensors and other values")
        if len({b.shape for b in batch}) > 1:
            raise ShapeError(f"default_collate: stack expects each tensor to be equal size, got "
                             f"{sorted({tuple(b.shape) for b in batch})}")
        return _functions.stack(list(batch))
    if isinstance(elem, np.ndarray) and elem.dtype.kind not in "OSUV":
        return _functions.stack([Tensor(np.asarray(b)) for b in batch])
    if isinstance(elem, (numbers.Number, np.bool_)) and not isinstance(elem, np.ndarray):
        # (through converted: a value the batch's dtype cannot hold, 1e300 in float32, is refused)
        return Tensor(converted(np.array(batch), _numbers_dtype(batch), "default_collate"))
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, collections.abc.Mapping):
        return {key: default_collate([d[key] for d in batch]) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a named tuple stays one
        return type(elem)(*(default_collate(list(field)) for field in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        if len({len(b) for b in batch}) > 1:
            raise ArgumentError("each element in list of batch should be of equal size")
        return [default_collate(list(field)) for field in zip(*batch)]
    raise TypeError("default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
                    f"found {type(elem).__name__}")


_ORDER = "bifc"  # bool < integer < floating < complex


def _numbers_dtype(batch) -> np.dtype:
    """The dtype torch gives a batch of numbers: float64 when the first is a Python float
    (``torch.tensor(batch, dtype=float64)``), else torch's inference over all of them --
    the highest kind present (bool, integer, floating, complex), and in it the widest
    dtype present, a Python int counting as int64 and a Python float or complex as the
    default dtype's -- so ``[0, 0.5]`` is a float batch, not ``[0, 0]``."""
    default = _dtypes.default_dtype
    kinds = []
    for x in batch:
        if isinstance(x, (bool, np.bool_)):
            kinds.append(("b", np.dtype(bool)))
        elif isinstance(x, np.generic) and x.dtype.kind in "iufc":
            kinds.append(("i" if x.dtype.kind in "iu" else x.dtype.kind, x.dtype))
        elif isinstance(x, numbers.Integral):
            kinds.append(("i", np.dtype(np.int64)))
        elif isinstance(x, numbers.Real):
            kinds.append(("f", np.dtype(default)))
        elif isinstance(x, numbers.Complex):
            kinds.append(("c", np.result_type(default, np.complex64)))
        else:
            raise TypeError(f"default_collate: the samples mix numbers and {type(x).__name__}")
    top = max((k for k, _ in kinds), key=_ORDER.index)
    if isinstance(batch[0], float) and top != "c":
        return np.dtype(np.float64)
    return np.result_type(*[dt for k, dt in kinds if k == top])


def _convert(sample):
    """A sample with no batching (``batch_size=None``), as torch's ``default_convert``:
    NumPy arrays become tensors, tuples lists, the rest as it is."""
    if isinstance(sample, np.ndarray) and sample.dtype.kind not in "OSUV":
        return Tensor(sample)
    if isinstance(sample, collections.abc.Mapping):
        return {k: _convert(v) for k, v in sample.items()}
    if isinstance(sample, tuple) and hasattr(sample, "_fields"):
        return type(sample)(*(_convert(v) for v in sample))
    if isinstance(sample, (list, tuple)):
        return [_convert(v) for v in sample]
    return sample


class DataLoader:
    """Batches of ``dataset`` in turn, as torch's: ``batch_size`` samples each (the last
    one shorter unless ``drop_last``), in order or shuffled anew each epoch (``shuffle``,
    drawn from ``generator`` or sparse_ref's generator), put together by ``collate_fn``
    (:func:`default_collate`). ``sampler`` (the indices, in the order to take them) and
    ``batch_sampler`` (lists of indices) replace the order, with torch's rules on which
    options go together. ``batch_size=None`` hands out single samples. ``num_workers``
    and ``pin_memory`` are accepted; the batches are made in this process.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> from sparse_ref.utils.data import DataLoader
    >>> [b.tolist() for b in DataLoader([1.5, 2.5, 3.5], batch_size=2)]
    [[1.5, 2.5], [3.5]]
    """

    def __init__(self, dataset, batch_size=1, shuffle: bool = False, sampler=None, batch_sampler=None,
                 num_workers: int = 0, collate_fn=None, pin_memory: bool = False, drop_last: bool = False,
                 timeout: float = 0, worker_init_fn=None, generator=None, *, prefetch_factor=None,
                 persistent_workers: bool = False, pin_memory_device: str = "", in_order: bool = True):
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                       or batch_size <= 0):
            raise ArgumentError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) or num_workers < 0:
            raise ArgumentError("num_workers option should be non-negative; use num_workers=0 to disable "
                                f"multiprocessing (got {num_workers!r})")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise ArgumentError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ArgumentError("prefetch_factor option could only be specified in multiprocessing. let "
                                "num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to None.")
        if persistent_workers and num_workers == 0:
            raise ArgumentError("persistent_workers option needs num_workers > 0")
        if worker_init_fn is not None and not callable(worker_init_fn):
            raise TypeError(f"DataLoader: worker_init_fn must be callable, got {type(worker_init_fn).__name__}")
        if batch_size is None and drop_last:
            raise ArgumentError("batch_size=None option disables auto-batching and is mutually exclusive with "
                                "drop_last")
        if sampler is not None and shuffle:
            raise ArgumentError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None or drop_last):
            raise ArgumentError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
                                "and drop_last")
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: collate_fn must be callable, got {type(collate_fn).__name__}")
        if shuffle and hasattr(dataset, "__len__") and len(dataset) == 0:  # (torch's RandomSampler refuses it)
            raise ArgumentError("num_samples should be a positive integer value, but got num_samples=0")
        self.generator = generator
        _factories._rng(generator, "DataLoader")  # (checked now, not at the first epoch)
        self.dataset, self.shuffle, self.sampler, self.batch_sampler = dataset, bool(shuffle), sampler, batch_sampler
        self.batch_size = None if batch_sampler is not None else batch_size
        self.num_workers, self.pin_memory, self.drop_last = int(num_workers), bool(pin_memory), bool(drop_last)
        self.timeout, self.worker_init_fn, self.prefetch_factor = timeout, worker_init_fn, prefetch_factor
        self.persistent_workers = bool(persistent_workers)
        self.collate_fn = collate_fn if collate_fn is not None else (
            default_collate if self.batch_size is not None or batch_sampler is not None else _convert)

    def _order(self):
        if self.sampler is not None:
            return self.sampler
        n = len(self.dataset)
        if self.shuffle:
            return _factories._rng(self.generator, "DataLoader").permutation(n).tolist()
        return range(n)

    def _batches(self):
        if self.batch_sampler is not None:
            yield from self.batch_sampler
            return
        batch = []
        for i in self._order():
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __iter__(self):
        if self.worker_init_fn is not None and self.num_workers > 0:
            self.worker_init_fn(0)  # (the one "worker" is this process: see the module's notes)
        if self.batch_size is None and self.batch_sampler is None:
            for i in self._order():
                yield self.collate_fn(self.dataset[i])
            return
        fast = (self.collate_fn is default_collate and type(self.dataset) is TensorDataset
                and self.dataset.tensors and not any(t.requires_grad for t in self.dataset.tensors))
        for indices in self._batches():
            at = np.asarray(indices) if fast else None
            if at is not None and at.ndim == 1 and at.size and at.dtype.kind in "iu":
                # the rows at once: the same tensors as stacking the samples (any other index,
                # a float or an empty batch, goes the samples' way and meets their errors)
                yield [Tensor(t._data[at]) for t in self.dataset.tensors]
            else:
                yield self.collate_fn([self.dataset[i] for i in indices])

    def __len__(self) -> int:
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def __getattr__(name):
    """A torch name sparse_ref does not have: an AttributeError that says so."""
    raise missing("module 'sparse_ref.utils.data'", name)

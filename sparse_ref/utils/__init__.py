"""``sr.utils``: ``sr.utils.data``, the datasets and batch loader of ``torch.utils.data``
that a training loop uses (layer 5)."""

from sparse_ref.utils import data

__all__ = ["data"]

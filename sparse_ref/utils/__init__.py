"""``sr.utils``: ``sr.utils.data``, the datasets and batch loader of ``torch.utils.data``
that a training loop uses (layer 5)."""

from sparse_ref._errors import missing
from sparse_ref.utils import data

__all__ = ["data"]


def __getattr__(name):
    """A torch name sparse_ref does not have: an AttributeError that says so."""
    raise missing("module 'sparse_ref.utils'", name)

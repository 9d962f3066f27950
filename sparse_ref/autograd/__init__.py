"""A small reverse-mode autograd: ``requires_grad``, ``grad_fn``, ``backward``, ``grad``, ``no_grad``
and ``gradcheck``, with torch's names.

- grad mode (``no_grad`` and friends) lives in ``sparse_ref._grad_mode``, below the tensor
  classes, whose in-place ops ask it;
- ``engine``: graph nodes (:class:`Function`) and the backward pass;
- ``dense_ops``: sum, mean, +, -, *, unary -, ** n, @ and t() for dense tensors;
- ``sparse_ops``: the products of ``sr.sparse`` and the sparse tensor methods;
- ``batched_ops``: a batch of sparse matrices (3-D) as one block-diagonal matrix, and back;
- ``gradcheck``: analytical gradients against central differences.
"""

from sparse_ref._errors import missing
from sparse_ref._grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from sparse_ref.autograd.engine import Function, backward, grad
from sparse_ref.autograd.gradcheck import GradcheckError, gradcheck

__all__ = ["Function", "GradcheckError", "backward", "enable_grad", "grad", "gradcheck", "is_grad_enabled",
           "no_grad", "set_grad_enabled"]


def __getattr__(name):
    """A torch name sparse_ref does not have: an AttributeError that says so."""
    raise missing("module 'sparse_ref.autograd'", name)

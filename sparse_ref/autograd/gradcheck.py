"""``gradcheck``: compare the gradients ``backward`` computes with central differences.

For a function ``f`` of some inputs, pick a random ``v`` shaped like the output and look
at the real number ``L(x) = Re(sum(conj(v) * f(x)))``. ``backward(gradient=v)`` gives,
for every input, ``dL/dRe(x) + i dL/dIm(x)`` (torch's convention; for a real input just
``dL/dx``). The numerical side perturbs one real coordinate at a time by +-eps:

- dense inputs: every element (its real and, if complex, imaginary part);
- sparse inputs (masked semantics): every *stored* value, duplicates and explicit zeros
  included. Its analytical gradient is the value of ``.grad`` (a coalesced sparse tensor)
  at that entry's position, since every stored duplicate adds into the same matrix entry.
"""

from __future__ import annotations

import numpy as np

from sparse_ref import _formats
from sparse_ref._grad_mode import no_grad
from sparse_ref._tensor import SparseTensor, Tensor


def _data(t) -> np.ndarray:
    return t._val if isinstance(t, SparseTensor) else t._data


def _with_data(t, data: np.ndarray):
    """A fresh tensor like t (same pattern and flags) holding ``data``."""
    if isinstance(t, SparseTensor):
        return t._with_values(data)
    return Tensor(data)


def _loss(out, v, pattern) -> float:
    """``Re(sum(conj(v) * out))`` over the output's (coalesced) values."""
    if isinstance(out, SparseTensor):
        c = out._coalesced_form()
        if c._idx.shape != pattern.shape or not np.array_equal(c._idx, pattern):
            raise ValueError("gradcheck: the output's sparsity pattern changed when an input moved by eps; "
                             "gradients of a data-dependent pattern cannot be checked by differences")
        values = c._val
    else:
        values = out._data
    return float(np.real(np.sum(np.conj(v) * values)))


def _seed(out, rng):
    """A random gradient for the output, as a tensor, and its carried values."""
    values = out._coalesced_form()._val if isinstance(out, SparseTensor) else out._data
    v = rng.standard_normal(values.shape)
    if values.dtype.kind == "c":
        v = v + 1j * rng.standard_normal(values.shape)
    v = v.astype(values.dtype)
    if isinstance(out, SparseTensor):
        return out._coalesced_form()._with_values(v), v
    return Tensor(v), v


def _analytical_at_stored(t, grad) -> np.ndarray:
    """The gradient of every stored value of input t (dense: every element)."""
    if not isinstance(t, SparseTensor):
        return grad._data if grad is not None else np.zeros_like(t._data)
    if grad is None:
        return np.zeros_like(t._val)  # one value (or dense block) per stored entry
    _, _, pos = _formats.coalesce_coo(t._idx, t._val, t.shape, with_pos=True)
    return grad._val[pos]


class GradcheckError(AssertionError, RuntimeError):
    """A gradient that does not match its central differences: a RuntimeError, as torch's
    ``GradcheckError``, and the AssertionError it used to be."""


def gradcheck(fn, inputs, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              masked: bool = True, seed: int = 0) -> bool:
    """Check the analytical gradients of ``fn(*inputs)`` against central differences.

    Parameters
    ----------
    fn : callable
        Takes the inputs, returns one tensor (dense or sparse), and must not change them.
    inputs : tuple of Tensor / SparseTensor
        Those with ``requires_grad`` are checked; use float64 or complex128.
    eps, atol, rtol : float
        Step and tolerances: ``|analytical - numerical| <= atol + rtol * |numerical|``.
    masked : bool
        sparse_ref's gradients of sparse inputs are masked to the stored entries, so only
        ``masked=True`` is meaningful; False raises ``ValueError``.

    Returns
    -------
    bool
        True; a mismatch raises ``GradcheckError`` (a RuntimeError, as torch's, and an
        AssertionError) naming the input, the entry and the worst difference.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> a = sr.sparse_coo_tensor([[0, 1, 1], [1, 0, 0]], [1., 2., 3.], (2, 2),
    ...                          dtype=sr.float64, requires_grad=True)
    >>> b = sr.randn(2, 3, dtype=sr.float64, requires_grad=True)
    >>> sr.autograd.gradcheck(sr.sparse.mm, (a, b))
    True
    """
    if not masked:
        raise ValueError("gradcheck: sparse_ref's gradients of sparse inputs are masked; use masked=True")
    inputs = (inputs,) if isinstance(inputs, (Tensor, SparseTensor)) else tuple(inputs)  # one tensor, as torch
    # each sparse input as it is now (SparseTensor._now: every read below of one state, if
    # another thread changes it in place); only read here, never handed to fn
    views = tuple(t._now() if isinstance(t, SparseTensor) else t for t in inputs)
    checked = [k for k, t in enumerate(inputs) if getattr(t, "requires_grad", False)]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")
    for k in checked:
        if inputs[k].dtype not in (np.dtype(np.float64), np.dtype(np.complex128)):
            raise ValueError(f"gradcheck: input {k} should be float64 or complex128, got {inputs[k].dtype.name}")

    # analytical: one backward with a random output gradient v
    leaves = tuple(_with_data(t, _data(t)).requires_grad_(t.requires_grad) if k in checked else inputs[k]
                   for k, t in enumerate(views))
    out = fn(*leaves)
    if not isinstance(out, (SparseTensor, Tensor)):
        raise TypeError(f"gradcheck: fn must return one sparse_ref Tensor or SparseTensor, got "
                        f"{type(out).__name__}; wrap several outputs in separate checks")
    if not out.requires_grad:
        raise ValueError("gradcheck: fn's output does not depend on any input that requires grad "
                         "(was it computed under sr.no_grad(), or from .detach()ed data?)")
    seed_tensor, v = _seed(out, np.random.default_rng(seed))
    pattern = out._coalesced_form()._idx if isinstance(out, SparseTensor) else None
    out.backward(seed_tensor)

    def loss_with(k, data):
        args = list(inputs)
        args[k] = _with_data(views[k], data)
        with no_grad():
            return _loss(fn(*args), v, pattern)

    for k in checked:
        t = views[k]
        analytical = np.asarray(_analytical_at_stored(t, leaves[k].grad)).ravel()
        base = np.array(_data(t), copy=True)
        flat = base.reshape(-1)
        numerical = np.zeros(flat.shape[0], dtype=base.dtype)
        parts = (1.0, 1j) if base.dtype.kind == "c" else (1.0,)
        for idx in range(flat.shape[0]):
            for unit in parts:
                plus, minus = flat.copy(), flat.copy()
                plus[idx] += unit * eps
                minus[idx] -= unit * eps
                slope = (loss_with(k, plus.reshape(base.shape)) - loss_with(k, minus.reshape(base.shape))) / (2 * eps)
                numerical[idx] += unit * slope
        diff = np.abs(analytical - numerical)
        bad = ~(diff <= atol + rtol * np.abs(numerical))  # (a NaN on either side fails, as torch's allclose)
        if bad.any():
            worst = int(np.argmax(np.where(bad, np.nan_to_num(diff - (atol + rtol * np.abs(numerical)),
                                                              nan=np.inf), -np.inf)))
            raise GradcheckError(
                f"gradcheck: input {k} ({'sparse' if isinstance(t, SparseTensor) else 'dense'}), entry {worst}: "
                f"analytical {analytical[worst]} vs numerical {numerical[worst]} "
                f"({int(bad.sum())} of {bad.size} entries differ)"
            )
    return True

"""Which kernels run: the readable reference or the Cython twins, chosen in one place.

The choice starts from the ``SPARSE_REF_BACKEND`` environment variable ("cython" when it
is unset) and changes with :func:`use_backend`, which works as a plain call and as a
context manager that restores the previous choice on exit.

Threads, as in torch's grad mode: the choice is context-local (a ``contextvars.ContextVar``:
this thread, or this asyncio task) over the process default that the environment variable
sets, so one thread's switch never changes another thread's kernels.
"""

import contextvars
import importlib
import os

BACKENDS = ("cython", "reference")
_PACKAGES = {"cython": "sparse_ref._kernels", "reference": "sparse_ref.reference"}


def _check(name):
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: expected one of {', '.join(BACKENDS)}")
    return name


_default = _check(os.environ.get("SPARSE_REF_BACKEND", "cython") or "cython")
_context = contextvars.ContextVar("sparse_ref_backend", default=None)  # set by use_backend()


def _enter(name: str):
    """Switch this context to ``name`` (already checked) for a moment; returns the token
    for ``_context.reset`` (None when nothing changed). The engine runs each backward on
    its forward's backend with this."""
    if (_context.get() or _default) == name:
        return None
    return _context.set(name)


def get_backend() -> str:
    """The backend the ops use now: ``"cython"`` or ``"reference"``.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> with sr.use_backend("reference"):
    ...     sr.get_backend()
    'reference'
    """
    return _context.get() or _default


class use_backend:
    """Switch the kernels to ``"reference"`` or ``"cython"`` in the current thread.

    Used with ``with`` it switches back when the block ends; called plainly it switches
    the current thread (context) until the next call. Either way other threads keep their
    own choice, which starts at the process default (``SPARSE_REF_BACKEND``, else
    "cython") -- as torch's ``set_grad_enabled`` is per thread. A name that is unknown, or
    a backend that cannot be imported, raises and changes nothing.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> s = sr.sparse_coo_tensor([[1, 0], [0, 1]], [1., 2.], (2, 2))
    >>> with sr.use_backend("reference"):   # the readable Python kernels
    ...     slow = s.coalesce()
    >>> slow.values().tolist() == s.coalesce().values().tolist()
    True
    """

    def __init__(self, name: str):
        kernel_module("coalesce", _check(name))  # fail now, before anything has changed
        self._token = _context.set(name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _context.reset(self._token)
        return False


_modules = {}  # (backend, name) -> module: every op asks, so look each up only once


def kernel_module(name: str, backend: str | None = None):
    """The module ``name`` (e.g. "coalesce") of the given or the current backend."""
    key = (backend or _context.get() or _default, name)
    module = _modules.get(key)
    if module is None:
        module = _modules[key] = _import(name, _check(key[0]))
    return module


def _import(name: str, backend: str):
    try:
        return importlib.import_module(f"{_PACKAGES[backend]}.{name}")
    except ImportError as exc:
        if backend == "cython":
            raise ImportError(
                "the Cython kernels of sparse_ref are not built; install the package "
                "(pip install .) or build in place (python setup.py build_ext --inplace), "
                'or use sr.use_backend("reference")'
            ) from exc
        raise

"""Which kernels run: the readable reference or the Cython twins, chosen in one place.

The choice starts from the ``SPARSE_REF_BACKEND`` environment variable ("cython" when it
is unset) and changes with :func:`use_backend`, which works as a plain call and as a
context manager that restores the previous choice on exit.
"""

import importlib
import os

BACKENDS = ("cython", "reference")
_PACKAGES = {"cython": "sparse_ref._kernels", "reference": "sparse_ref.reference"}


def _check(name):
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: expected one of {', '.join(BACKENDS)}")
    return name


_current = _check(os.environ.get("SPARSE_REF_BACKEND", "cython") or "cython")


def get_backend() -> str:
    """The backend the ops use now: ``"cython"`` or ``"reference"``.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> with sr.use_backend("reference"):
    ...     sr.get_backend()
    'reference'
    """
    return _current


class use_backend:
    """Switch the kernels to ``"reference"`` or ``"cython"``.

    Called plainly it switches for the rest of the process; used with ``with`` it
    switches back when the block ends.

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
        global _current
        self._previous = _current
        _current = _check(name)
        kernel_module("coalesce")  # fail now, not in the middle of an op

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        global _current
        _current = self._previous
        return False


_modules = {}  # (backend, name) -> module: every op asks, so look each up only once


def kernel_module(name: str, backend: str | None = None):
    """The module ``name`` (e.g. "coalesce") of the given or the current backend."""
    key = (backend or _current, name)
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

"""Typed Cython kernels with OpenMP ``prange``.

Every public module here has a readable twin of the same name in
:mod:`sparse_ref.reference`, with the same functions, arguments and contract docstrings.
"""

import importlib.machinery
import os
import sys

KERNEL_MODULES = ("coalesce", "convert", "sddmm", "spgemm", "spmm")


def _has_built_modules(folder: str) -> bool:
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    try:
        return any(name.endswith(suffixes) for name in os.listdir(folder))
    except OSError:
        return False


def _use_installed_build() -> None:
    """Run from a source checkout after ``pip install .``, Python imports this unbuilt
    folder (the current directory comes first on sys.path) while the compiled modules sit
    in site-packages. Then, and only then, look for them there too."""
    here = os.path.dirname(os.path.abspath(__file__))
    if _has_built_modules(here):
        return
    for entry in sys.path:
        candidate = os.path.join(os.path.abspath(entry or os.curdir), "sparse_ref", "_kernels")
        if os.path.realpath(candidate) != os.path.realpath(here) and _has_built_modules(candidate):
            __path__.append(candidate)
            return


_use_installed_build()

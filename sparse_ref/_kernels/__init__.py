"""Typed Cython kernels with OpenMP ``prange``.

Every public module here has a readable twin of the same name in
:mod:`sparse_ref.reference`, with the same functions, arguments and contract docstrings.
"""

KERNEL_MODULES = ("coalesce", "convert")

"""Readable pure-Python kernels: the reference every fast kernel is checked against.

Each module here has a twin of the same name in :mod:`sparse_ref._kernels` (Cython with
OpenMP ``prange``). The twins share function names, argument order and contract
docstrings; they must also agree bit for bit, because both follow the accumulation order
that the docstring states. ``n_threads`` is accepted here and ignored.

These functions loop over entries in plain Python on purpose: they are written to be
read and stepped through, not to be fast. Keep inputs small when you call them.
"""

KERNEL_MODULES = ("coalesce", "convert", "sddmm", "spgemm", "spmm")

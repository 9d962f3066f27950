"""Readable pure-Python kernels: the reference every fast kernel is checked against.

Each module here has a twin of the same name in :mod:`sparse_ref._kernels` (Cython with
OpenMP ``prange``). The twins share function names, argument order and contract
docstrings; they must also agree bit for bit, because both follow the accumulation order
that the docstring states. ``n_threads`` is accepted here and ignored.

These functions loop over entries in plain Python on purpose: they are written to be
read and stepped through, not to be fast. Keep inputs small when you call them.

How a module reads: its ``__all__`` lists its kernels; each kernel's docstring opens
with a *Simple version* (the plain loops that compute the same result up to rounding,
with the kernel's own argument names and outputs that start as zeros), then the
contract. The kernel's body is the algorithm in a few lines; every detail that fixes the
order of operations lives in a helper named after the twin's ``cdef`` helper (``dot``,
``sort_row``, ``fill_row``, ...), so the two can be read side by side.
"""

KERNEL_MODULES = ("coalesce", "convert", "sddmm", "spgemm", "spmm")

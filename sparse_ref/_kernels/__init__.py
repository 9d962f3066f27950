"""Typed Cython kernels with OpenMP ``prange``.

Every public module here has a readable twin of the same name in
:mod:`sparse_ref.reference`, with the same kernels (``__all__``), arguments and contract
docstrings; the reference's helpers are named after the ``cdef`` helpers here.
The compiled modules live beside this file: in site-packages after ``pip install .``, in
the source tree after an editable install or ``python setup.py build_ext --inplace``.
"""

KERNEL_MODULES = ("coalesce", "convert", "sddmm", "spgemm", "spmm")

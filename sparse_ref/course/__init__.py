"""The course kit (layer 5): check a package of kernels against the reference
(:mod:`sparse_ref.course.check`) and write the starter package of an exercise
(:mod:`sparse_ref.course.exercises`). From the shell::

    python -m sparse_ref exercise spmm my_kernels      # a starter package to fill in
    python -m sparse_ref check my_kernels --kernel spmm

A package is any folder of modules named and shaped like :mod:`sparse_ref.reference`
(``coalesce.py``, ``spmm.py``, ...); ``sr.register_backend(name, package)`` runs every op
on it.
"""

from sparse_ref.course import check, exercises

__all__ = ["check", "exercises"]

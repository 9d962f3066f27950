"""``sparse_ref.distributed``: sparse products and their gradients on a Dask cluster, bit for
bit equal to one machine at any partitioning and worker count.

Needs the optional extra: ``pip install "sparse_ref[distributed]"`` (Dask's
``dask[distributed]``). ``import sparse_ref`` never imports it.

- :func:`from_sparse` cuts a sparse matrix into blocks of whole rows of about equal stored
  entries, kept on the workers (a :class:`DistSparse`);
- :func:`mm` multiplies it with a dense matrix (result dense, here) or a sparse one (result
  distributed), with ``reduce=`` as ``sr.sparse.mm``; :func:`sampled_addmm` is the SDDMM;
- every op is differentiable, and ``.gather()`` brings a matrix back.

Layout of the package: ``_worker`` holds what the workers run (functions of NumPy arrays
calling the one-machine array ops), ``_matrix`` the distributed matrix and the ops that
move it (distribute, gather, transpose), ``_ops`` the products.
"""

try:
    import distributed as _distributed  # noqa: F401 (only to fail early, with the fix)
except ImportError as exc:  # pragma: no cover - the test extra installs Dask
    raise ImportError("sparse_ref.distributed needs Dask: pip install \"sparse_ref[distributed]\" "
                      "(it installs dask[distributed])") from exc

from sparse_ref.distributed._matrix import DistSparse, from_sparse
from sparse_ref.distributed._ops import mm, sampled_addmm

__all__ = ["DistSparse", "from_sparse", "mm", "sampled_addmm"]

"""What the compiled kernels know about OpenMP (read by sparse_ref._threads)."""

from sparse_ref._kernels._openmp cimport SPARSE_REF_OPENMP, omp_get_max_threads


def openmp_enabled():
    """True if the kernels were compiled with OpenMP."""
    return bool(SPARSE_REF_OPENMP)


def max_threads():
    """OpenMP's default thread count (1 without OpenMP)."""
    return omp_get_max_threads()

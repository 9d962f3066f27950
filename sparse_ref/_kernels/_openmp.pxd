# The only place the kernels touch OpenMP (after scikit-learn's _openmp_helpers.pxd).
# With OpenMP the real functions are used; without it they become serial no-ops, and
# Cython's prange compiles to a plain loop.

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define SPARSE_REF_OPENMP 1
    #else
    #define SPARSE_REF_OPENMP 0
    #define omp_get_max_threads() 1
    #define omp_get_thread_num() 0
    #endif
    """
    bint SPARSE_REF_OPENMP
    int omp_get_max_threads() noexcept nogil
    int omp_get_thread_num() noexcept nogil

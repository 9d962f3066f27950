"""What the compiled kernels know about OpenMP (read by sparse_ref._threads)."""

from sparse_ref._kernels._openmp cimport SPARSE_REF_OPENMP, omp_get_max_threads


def openmp_enabled():
    """True if the kernels were compiled with OpenMP."""
    return bool(SPARSE_REF_OPENMP)


def max_threads():
    """OpenMP's default thread count (1 without OpenMP)."""
    return omp_get_max_threads()


from cython.parallel cimport parallel

cdef extern from *:
    """
    #if defined(__x86_64__) || defined(_M_X64) || defined(__SSE2__)
    #include <xmmintrin.h>
    /* MXCSR's flush-to-zero (bit 15), rounding (bits 13-14) and denormals-are-zero (bit 6):
     * how SSE and AVX arithmetic rounds and treats subnormal numbers, a setting of each
     * thread (the exception masks and flags are left alone). */
    #define SR_FP_BITS 0xE040u
    static unsigned sr_fp_mode(void) { return _mm_getcsr() & SR_FP_BITS; }
    static void sr_set_fp_mode(unsigned mode) { _mm_setcsr((_mm_getcsr() & ~SR_FP_BITS) | mode); }
    #else
    static unsigned sr_fp_mode(void) { return 0; }
    static void sr_set_fp_mode(unsigned mode) { (void)mode; }
    #endif
    """
    unsigned sr_fp_mode() noexcept nogil
    void sr_set_fp_mode(unsigned mode) noexcept nogil


def sync_fp_mode(int n_threads):
    """Give every thread of the calling thread's OpenMP team of ``n_threads`` the calling
    thread's flush-to-zero, rounding and denormals-are-zero bits (MXCSR on x86; nothing
    elsewhere). They are a setting of each thread: a worker keeps the ones it started
    with, and would round or treat a subnormal otherwise than the caller, so that the
    product would depend on which thread did a row."""
    cdef unsigned mode = sr_fp_mode()
    with nogil, parallel(num_threads=n_threads):
        sr_set_fp_mode(mode)

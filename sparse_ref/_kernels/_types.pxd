# Types shared by every kernel.
from libc.stdint cimport int32_t, int64_t

# Indices and row pointers are int64 throughout the public API.
ctypedef int64_t idx_t

# Every value dtype the kernels accept (int32/64, float32/64, complex64/128).
ctypedef fused value_t:
    int32_t
    int64_t
    float
    double
    float complex
    double complex

# A hint to the CPU to start loading a cache line that a random gather or scatter will
# touch a few iterations later (a no-op where the compiler has no such builtin).
cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define SPARSE_REF_PREFETCH(p) __builtin_prefetch(p)
    #define SPARSE_REF_PREFETCH_W(p) __builtin_prefetch((p), 1)
    #else
    #define SPARSE_REF_PREFETCH(p) ((void)0)
    #define SPARSE_REF_PREFETCH_W(p) ((void)0)
    #endif
    """
    void prefetch "SPARSE_REF_PREFETCH"(const void* p) noexcept nogil
    void prefetch_w "SPARSE_REF_PREFETCH_W"(const void* p) noexcept nogil

# Scratch buffers that random scatters and gathers touch: aligned to 2 MiB and, on Linux,
# marked for transparent huge pages, so that the walk over a buffer of hundreds of MB
# does not miss the TLB on nearly every access. Free with libc's free().
cdef extern from *:
    """
    #include <stdlib.h>
    #if defined(__linux__)
    #include <sys/mman.h>
    #endif
    static void* sparse_ref_big_alloc(size_t nbytes) {
        const size_t huge = (size_t)1 << 21;
        void* p = NULL;
        if (nbytes < huge) return malloc(nbytes > 0 ? nbytes : 1);
        nbytes = (nbytes + huge - 1) / huge * huge;
        if (posix_memalign(&p, huge, nbytes) != 0) return NULL;
    #if defined(__linux__) && defined(MADV_HUGEPAGE)
        madvise(p, nbytes, MADV_HUGEPAGE);
    #endif
        return p;
    }
    """
    void* big_alloc "sparse_ref_big_alloc"(size_t nbytes) noexcept nogil


# Per-thread scratch regions sit one after another in one allocation. A region's stride
# (in elements) is its size rounded up to 16, plus 16 more, so that two threads' regions
# never share a 64-byte cache line (for elements of 4 to 16 bytes). Without the gap, small
# regions (a 5-point Laplacian's 13-entry output rows in SpGEMM) bounced one line between
# the cores on every product, and 2 threads ran slower than 1.
cdef inline idx_t thread_stride(idx_t n) noexcept nogil:
    if n > (<idx_t>1 << 60):  # no rounding that could overflow (the caller's size check refuses it)
        return n
    return ((n + 15) // 16 + 1) * 16


# Parallel loops over n rows or entries (SpGEMM's passes, coalesce's rows) hand them out
# in chunks of this many (OpenMP's dynamic schedule): about 64 chunks a thread, at most
# 1024 each. A thread the system preempts (another process on its core, or a virtual
# machine's host) then holds up one small chunk while the others take the rest; a guided
# schedule's first chunk is 1/threads of the rows (half, on 2 threads), and a preempted
# thread that holds it keeps the whole team waiting. The same bits either way: each row's
# work is the same whichever thread does it. Measured (bench_levers.py "dynamic
# schedule", against guided, kernel only, 2 threads, three runs on the Intel Xeon model
# 207): on a quiet machine SpGEMM's Laplacian numeric pass 1.03-1.16x, its symbolic pass
# 1.0-1.06x, the uniform matrix's 0.95-1.18x, coalesce 1.0-1.05x; with another process
# spinning on one core the medians scatter both ways (SpGEMM 0.85-1.27x, coalesce
# 0.95-1.02x): calls of a few ms against time slices of a few ms. SpMM keeps the guided
# schedule (spmm.pyx says why).
cdef inline idx_t dynamic_chunk(idx_t n, int n_workers) noexcept nogil:
    return max(1, min(1024, n // (64 * <idx_t>max(n_workers, 1))))

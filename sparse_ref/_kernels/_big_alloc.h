/* Large buffers aligned to 2 MiB and, on Linux, marked for transparent huge pages
 * (_types.pxd says why). Free with libc's free(). */
#ifndef SPARSE_REF_BIG_ALLOC_H
#define SPARSE_REF_BIG_ALLOC_H

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

#endif /* SPARSE_REF_BIG_ALLOC_H */

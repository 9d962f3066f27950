# Which rows are put in order by rank (sr_key_ranks in _simd.h) instead of sorted, for the
# module that includes this file (SpGEMM's output rows, coalesce's rows; each module has
# its own copy of the range, so tests and benchmarks set each module's): rows of more than
# rank_min and at most rank_max entries, at the AVX2 and AVX-512 levels. Why these limits:
# spgemm.pyx, where the rows of 16 or fewer are discussed, and bench_levers.py's
# "spgemm ranks" and "coalesce ranks".
cdef extern from "_simd.h":
    int key_ranks "sr_key_ranks"(const uint64_t* k, idx_t n, idx_t* rank) noexcept nogil

cdef idx_t rank_min = 16
cdef idx_t rank_max = 128


def _set_rank_range(idx_t low, idx_t high):
    """Tuning hook for benchmarks and tests (not public API): put rows of more than
    ``low`` and at most ``high`` entries in order by rank (``high`` 0: sort every row);
    returns the previous pair (default (16, 128))."""
    global rank_min, rank_max
    previous = (rank_min, rank_max)
    rank_min, rank_max = max(low, 0), max(high, 0)
    return previous

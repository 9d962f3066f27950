# The SIMD level of the C code in _simd.h, for the module that includes this file (each
# compiled module has its own copy of the level: tests and benchmarks set each module's).
cdef extern from "_simd.h":
    int simd_current "sr_simd"() noexcept nogil
    int simd_best "sr_simd_best"() noexcept nogil
    void simd_set "sr_simd_set"(int level) noexcept nogil

SIMD_LEVELS = ("baseline", "avx2", "avx512")  # "baseline": SSE2 on x86-64


def _simd_level():
    """The vector instructions this module's float loops use: ``"avx512"``, ``"avx2"`` or
    ``"baseline"`` (SSE2 on x86-64; the compiler's own vectors elsewhere)."""
    return SIMD_LEVELS[simd_current()]


def _set_simd_level(str level):
    """Tuning hook for benchmarks and tests (not public API): use ``level`` or a narrower
    one, never a wider one than the CPU has. Returns the level now in use."""
    if level not in SIMD_LEVELS:
        raise ValueError(f"SIMD level must be one of {SIMD_LEVELS}, got {level!r}")
    simd_set(min(SIMD_LEVELS.index(level), simd_best()))
    return _simd_level()

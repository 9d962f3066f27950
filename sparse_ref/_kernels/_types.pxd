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

# Scalar arithmetic for every value type, spelled out so that C rounds exactly as the
# reference (sparse_ref/reference/_arith.py) does:
# - complex products are (ar*br - ai*bi) + i(ar*bi + ai*br), two roundings per part and no
#   fused multiply-add (the build passes -ffp-contract=off); C99's own complex multiply
#   would call a library routine with extra inf/NaN recovery;
# - dividing by a count divides the real and imaginary parts separately, and integers
#   truncate toward zero (C's division, whatever Cython's cdivision setting).
from sparse_ref._kernels._types cimport idx_t, value_t

cdef extern from *:
    """
    #include <complex.h>
    static inline double _Complex sparse_ref_zmul(double _Complex a, double _Complex b) {
        double ar = creal(a), ai = cimag(a), br = creal(b), bi = cimag(b);
        return CMPLX(ar * br - ai * bi, ar * bi + ai * br);
    }
    static inline float _Complex sparse_ref_cmul(float _Complex a, float _Complex b) {
        float ar = crealf(a), ai = cimagf(a), br = crealf(b), bi = cimagf(b);
        return CMPLXF(ar * br - ai * bi, ar * bi + ai * br);
    }
    static inline double _Complex sparse_ref_zdiv(double _Complex a, double d) {
        return CMPLX(creal(a) / d, cimag(a) / d);
    }
    static inline float _Complex sparse_ref_cdiv(float _Complex a, float d) {
        return CMPLXF(crealf(a) / d, cimagf(a) / d);
    }
    static inline long long sparse_ref_idiv(long long a, long long d) {
        return a / d;
    }
    """
    double complex zmul "sparse_ref_zmul"(double complex a, double complex b) noexcept nogil
    float complex cmul "sparse_ref_cmul"(float complex a, float complex b) noexcept nogil
    double complex zdiv "sparse_ref_zdiv"(double complex a, double d) noexcept nogil
    float complex cdiv "sparse_ref_cdiv"(float complex a, float d) noexcept nogil
    long long idiv "sparse_ref_idiv"(long long a, long long d) noexcept nogil


cdef inline value_t mul(value_t a, value_t b) noexcept nogil:
    if value_t is doublecomplex:
        return zmul(a, b)
    elif value_t is floatcomplex:
        return cmul(a, b)
    else:
        return a * b


cdef inline value_t div_count(value_t a, idx_t count) noexcept nogil:
    """a / count, the count converted to a's precision first; integers truncate toward
    zero. (The tensor layer refuses integer means, so that branch only keeps the twins
    equal.)"""
    if value_t is doublecomplex:
        return zdiv(a, <double>count)
    elif value_t is floatcomplex:
        return cdiv(a, <float>count)
    elif value_t is float:
        return a / <float>count
    elif value_t is double:
        return a / <double>count
    else:
        return <value_t>idiv(a, count)

# The arrays a kernel's entry takes, checked as typed memoryviews (``const double[::1]``,
# ``double[:, ::1]``) would check them, without making the memoryviews. Acquiring one costs
# about 0.2 us (a Python object, the buffer's format string parsed), and choosing among a
# fused type's versions 0.3 us more: measured, five memoryview arguments took 1.05-1.15 us
# a call against 0.1 us for these checks, a 10 x 10 product's whole work, and a fresh
# output costs more (NumPy describes its buffer on first export). So the entries that small
# calls go through (spmm, spmm_reduce and sddmm: a product and its gradients) take plain
# arrays, check them here, and pass pointers to a typed body; the checks name the argument
# that fails them. The other kernels, which run once per larger step (coalesce, the
# conversions, SpGEMM), keep their memoryviews.

cimport numpy as cnp

cnp.import_array()

# The value types of ``_types.value_t``, as NumPy type numbers, in its order.
cdef int VALUE_TYPES[6]
VALUE_TYPES[:] = [cnp.NPY_INT32, cnp.NPY_INT64, cnp.NPY_FLOAT32, cnp.NPY_FLOAT64,
                  cnp.NPY_COMPLEX64, cnp.NPY_COMPLEX128]


cdef int value_type(object x, str name) except -1:
    """The NumPy type number of ``x``'s values (one of VALUE_TYPES), or TypeError."""
    cdef int t, i
    if not cnp.PyArray_Check(x):
        raise TypeError(f"{name}: expected a NumPy array, got {type(x).__name__}")
    t = cnp.PyArray_TYPE(<cnp.ndarray>x)
    for i in range(6):
        if cnp.PyArray_EquivTypenums(t, VALUE_TYPES[i]):
            return VALUE_TYPES[i]
    raise TypeError(f"{name}: no kernel for dtype {(<cnp.ndarray>x).dtype}: int32, int64, float32, "
                    "float64, complex64 or complex128")


cdef inline void* data(object x, int typenum, int ndim, bint out, str name, str like=None) except? NULL:
    """The first element of ``x``, the argument ``name``, once it is an array of ``ndim``
    dimensions, of type ``typenum``, C-contiguous, in the machine's byte order and, for an
    ``out`` argument, writable; else TypeError (not an array, another dtype) or ValueError,
    as a typed memoryview would refuse it. ``like``: the argument whose dtype ``typenum``
    is (named in the message, so that the odd one out is plain). Like a memoryview, it
    takes an array whose data are not aligned to their type (NumPy can make one from a
    buffer, and a Dask worker does, from a message): the kernels read and write such data
    as x86 allows."""
    cdef cnp.ndarray a
    if not cnp.PyArray_Check(x):
        raise TypeError(f"{name}: expected a NumPy array, got {type(x).__name__}")
    a = <cnp.ndarray>x
    if cnp.PyArray_NDIM(a) != ndim:
        raise ValueError(f"{name}: expected {ndim} dimension{'s' if ndim > 1 else ''}, got {a.ndim}")
    if not cnp.PyArray_EquivTypenums(cnp.PyArray_TYPE(a), typenum):
        raise TypeError(f"{name}: expected {cnp.PyArray_DescrFromType(typenum)}, got {a.dtype}"
                        + (f" ({like} is {cnp.PyArray_DescrFromType(typenum)}; they must share one dtype)" if like else ""))
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError(f"{name}: must be C-contiguous")
    if not cnp.PyArray_ISNOTSWAPPED(a):
        raise ValueError(f"{name}: must be in the machine's byte order, not {a.dtype.str}")
    if out and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{name}: an output must be writable; this array is read-only")
    return cnp.PyArray_DATA(a)


cdef inline idx_t length(object x, int dim) noexcept:
    """Dimension ``dim`` of ``x``, an array that :func:`data` accepted."""
    return cnp.PyArray_DIM(<cnp.ndarray>x, dim)


cdef int sized(object x, idx_t rows, idx_t cols, str name, str what) except -1:
    """ValueError unless ``x`` (an array :func:`data` accepted) has ``rows`` rows and, when
    ``cols`` >= 0, ``cols`` columns: the lengths that the arrays of one call must share
    (``what`` says which), checked in O(1) before the kernel reads or writes past one.
    The values inside (columns in range, row pointers in order) stay the caller's
    preconditions, as with memoryviews."""
    cdef cnp.ndarray a = <cnp.ndarray>x
    if cnp.PyArray_DIM(a, 0) != rows or (cols >= 0 and cnp.PyArray_DIM(a, 1) != cols):
        want = f"{rows}" if cols < 0 else f"{rows} x {cols}"
        raise ValueError(f"{name}: expected {want} ({what}), got {' x '.join(map(str, x.shape))}")
    return 0

"""A cache of large blocks for the arrays the products return (not a kernel: the memory
they write into). NumPy's memory-handler interface (NEP 49) lets ``empty`` allocate one
array through it; NumPy frees that array through it too, whoever holds it by then, and
the block goes back to the cache instead of the kernel. _pool.h says why and how.
Read by ``sparse_ref._memory``."""

from cpython.pycapsule cimport PyCapsule_New

cdef extern from "_pool.h":
    size_t SR_POOL_MIN
    size_t sr_pool_bytes
    size_t sr_pool_limit
    int sr_pool_count
    unsigned long long sr_pool_hits
    unsigned long long sr_pool_misses
    size_t sr_pool_set_limit(size_t limit) noexcept nogil
    void sr_pool_clear() noexcept nogil

cdef extern from *:
    """
    #define NPY_NO_DEPRECATED_API NPY_1_22_API_VERSION
    #define NPY_TARGET_VERSION NPY_1_22_API_VERSION
    #include <numpy/arrayobject.h>
    static PyDataMem_Handler sr_pool_handler = {
        "sparse_ref_pool", 1, {NULL, sr_pool_malloc, sr_pool_calloc, sr_pool_realloc, sr_pool_free}};
    static void* sr_pool_handler_ptr(void) { return &sr_pool_handler; }
    static int sr_pool_import_numpy(void) { return _import_array(); }
    static PyObject* sr_pool_set_handler(PyObject* handler) { return PyDataMem_SetHandler(handler); }
    """
    void* sr_pool_handler_ptr()
    int sr_pool_import_numpy() except -1
    object sr_pool_set_handler(object handler)

import numpy as np

sr_pool_import_numpy()
# NumPy keeps a reference to this capsule in every array made through it
cdef object HANDLER = PyCapsule_New(sr_pool_handler_ptr(), "mem_handler", NULL)

MIN_BYTES = SR_POOL_MIN


def empty(shape, dtype):
    """``np.empty(shape, dtype)``, its memory from the cache when it is large (at least
    ``MIN_BYTES``: then it starts on a 2 MiB page); a plain NumPy array in every other
    respect."""
    previous = sr_pool_set_handler(HANDLER)
    try:
        return np.empty(shape, dtype)
    finally:
        sr_pool_set_handler(previous)


def call(fn, args):
    """``fn(*args)``, with every array NumPy makes meanwhile allocated through the cache
    (NumPy's handler is context-local: other threads keep theirs)."""
    previous = sr_pool_set_handler(HANDLER)
    try:
        return fn(*args)
    finally:
        sr_pool_set_handler(previous)


def set_limit(size_t limit):
    """Keep at most ``limit`` bytes of freed blocks (0: none, every block is freed at
    once); returns the previous limit. Lowering it frees the oldest blocks now."""
    return sr_pool_set_limit(limit)


def clear():
    """Hand every cached block back to the system; the limit stays."""
    sr_pool_clear()


def info():
    """The cache's state: bytes and blocks held, the limit, and how many large requests
    were met from it (hits) or from the system (misses)."""
    return {"bytes": sr_pool_bytes, "blocks": sr_pool_count, "limit": sr_pool_limit,
            "hits": sr_pool_hits, "misses": sr_pool_misses}

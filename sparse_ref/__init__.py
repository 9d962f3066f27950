"""sparse_ref: a teaching and reference implementation of ``torch.sparse.mm``.

``import sparse_ref as sr`` and use it as you would use torch::

    a = sr.randn(2, 3).to_sparse()
    a.coalesce()

Every kernel exists twice, as readable Python in :mod:`sparse_ref.reference` and as a
Cython/OpenMP kernel in :mod:`sparse_ref._kernels`; :func:`use_backend` picks one.
"""

from sparse_ref._backend import get_backend, register_backend, use_backend
from sparse_ref._errors import missing as _missing
from sparse_ref._dtypes import (
    Layout,
    bool_ as bool,  # noqa: A004 (torch's name: sr.bool)
    complex64,
    complex128,
    float16,
    float32,
    float64,
    int32,
    int64,
    sparse_coo,
    sparse_csr,
    strided,
)
# torch's other names of the same dtypes (sr.long, sr.float, ...; a student's dtype=torch.long)
from sparse_ref._dtypes import (  # noqa: A004
    complex64 as cfloat,
    complex128 as cdouble,
    float16 as half,
    float32 as float,
    float64 as double,
    int32 as int,
    int64 as long,
)
from sparse_ref._factories import (
    Generator, arange, as_tensor, eye, from_numpy, full, manual_seed, ones, ones_like, rand, randint, randn,
    sparse_coo_tensor, sparse_csr_tensor, tensor, zeros, zeros_like,
)
from sparse_ref._functions import (  # noqa: A004 (torch's names: sr.sum, sr.max, sr.abs, ...)
    abs, add, allclose, argmax, argmin, bmm, cat, clamp, clone, div, equal, exp, flatten, floor_divide, isfinite,
    isinf, isnan, log,
    log_softmax, matmul, max, maximum, mean, min, minimum, mm, mul, neg, nonzero, norm, permute, pow, relu,
    reshape, sigmoid,
    remainder, softmax, sqrt, squeeze, stack, sub, sum, t, tanh, transpose, unsqueeze, where,
)
from sparse_ref._grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from sparse_ref._memory import cache_info, empty_cache, set_cache_limit
from sparse_ref._tensor import SparseCsrTensor, SparseTensor, Tensor
from sparse_ref._threads import get_num_threads, openmp_enabled, set_num_threads
from sparse_ref.interop import from_scipy, from_torch, to_scipy, to_torch
from sparse_ref.serialization import load, save
from sparse_ref import _functions, _tensor, autograd, datasets, nn, optim, sparse, utils, viz  # sr.sparse.mm, like torch
from sparse_ref import _dtypes, _errors  # sr.bfloat16 (below)

# The one edge that runs up (see sparse_ref/_tensor.py): tensor methods call these functions.
_tensor.bind(_functions)


def __getattr__(name):
    """A torch name sparse_ref does not have: an AttributeError that says so. ``bfloat16``
    lives here when ml_dtypes is installed; without it, an error that says to install it
    (an AttributeError, so that ``hasattr`` answers False)."""
    if name == "bfloat16":
        if _dtypes.bfloat16 is not None:
            return _dtypes.bfloat16
        raise _errors.MissingDependency(_dtypes.BFLOAT16_MISSING)
    raise _missing("module 'sparse_ref'", name)

__version__ = "0.1.0"

__all__ = [
    "cache_info",
    "empty_cache",
    "set_cache_limit",
    "register_backend",
    "viz",
    "optim",
    "nn",
    "datasets",
    "utils",
    "zeros_like",
    "from_numpy",
    "as_tensor",
    "clone",
    "randint",
    "rand",
    "ones_like",
    "full",
    "eye",
    "arange",
    "Generator",
    "Layout",
    "SparseCsrTensor",
    "SparseTensor",
    "Tensor",
    "abs",
    "add",
    "argmax",
    "argmin",
    "autograd",
    "bool",
    "cat",
    "clamp",
    "complex64",
    "complex128",
    "div",
    "enable_grad",
    "is_grad_enabled",
    "exp",
    "flatten",
    "float16",
    "float32",
    "float64",
    "from_scipy",
    "from_torch",
    "get_backend",
    "get_num_threads",
    "int32",
    "int64",
    "log",
    "log_softmax",
    "manual_seed",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "mm",
    "bmm",
    "mul",
    "neg",
    "no_grad",
    "norm",
    "ones",
    "openmp_enabled",
    "permute",
    "pow",
    "randn",
    "relu",
    "reshape",
    "set_grad_enabled",
    "set_num_threads",
    "sigmoid",
    "softmax",
    "sparse",
    "sparse_coo",
    "sparse_coo_tensor",
    "sparse_csr",
    "sparse_csr_tensor",
    "sqrt",
    "squeeze",
    "stack",
    "strided",
    "sub",
    "sum",
    "t",
    "tanh",
    "tensor",
    "to_scipy",
    "to_torch",
    "transpose",
    "unsqueeze",
    "use_backend",
    "where",
    "nonzero",
    "zeros",
    "long",
    "int",
    "float",
    "double",
    "half",
    "cfloat",
    "cdouble",
    "isnan",
    "isinf",
    "isfinite",
    "equal",
    "allclose",
    "save",
    "load",
    "floor_divide",
    "remainder",
]

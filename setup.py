"""Build the Cython kernels in sparse_ref/_kernels/ (with OpenMP when the compiler has it)."""

import os
import sys
from glob import glob

from setuptools import Extension, setup

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build_tools.openmp import openmp_flags  # noqa: E402

# The numerics contract (docs/numerics.rst, docs/design.rst): no fast-math style flags and no tuning for the build machine's own
# processor, and no fused multiply-add contraction, so that C rounds exactly as NumPy and
# the reference do.
# -fwrapv: signed integer overflow wraps, as it does in NumPy (in C it would be undefined).
BASE_COMPILE_ARGS = (["-O3", "-ffp-contract=off", "-fwrapv"] if sys.platform != "win32"
                     else ["/O2", "/fp:precise"])

DEBUG = os.environ.get("SPARSE_REF_DEBUG") == "1"

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "binding": True,
    "embedsignature": False,
}


def extensions():
    import numpy
    from Cython.Build import cythonize

    omp_compile, omp_link = openmp_flags()
    exts = []
    for path in sorted(glob(os.path.join("sparse_ref", "_kernels", "*.pyx"))):
        name = path[:-4].replace(os.sep, ".")
        exts.append(
            Extension(
                name,
                [path],
                extra_compile_args=BASE_COMPILE_ARGS + omp_compile,
                extra_link_args=omp_link,
                include_dirs=[numpy.get_include()],  # _pool: NumPy's memory-handler interface
                depends=sorted(glob(os.path.join("sparse_ref", "_kernels", "*.h")) + glob(os.path.join("sparse_ref", "_kernels", "*.pxi"))),
            )
        )
    return cythonize(exts, compiler_directives=DIRECTIVES, annotate=os.environ.get("SPARSE_REF_ANNOTATE") == "1")


setup(ext_modules=extensions())

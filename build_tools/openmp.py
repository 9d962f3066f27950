"""OpenMP probe for setup.py.

setup.py calls :func:`openmp_flags` before it cythonizes the kernels. The probe compiles
and links a tiny OpenMP program with the compiler that setuptools will use. If that works,
the kernels are built with OpenMP; if not, a warning is printed and the kernels are built
serial (Cython's ``prange`` then runs as a plain loop). ``SPARSE_REF_FAIL_NO_OPENMP=1``
turns the warning into an error, so CI can insist on parallel kernels.

This module never imports ``sparse_ref``: it runs before the package exists.
"""

import os
import sys
import tempfile
import textwrap
import warnings

PROBE = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d\\n", n > 0);
        return 0;
    }
    """
)


def _compiler():
    # setuptools >= 64 ships distutils as setuptools._distutils.
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler

    cc = new_compiler()
    customize_compiler(cc)
    return cc


def _candidate_flags():
    if sys.platform == "win32":
        return ["/openmp"], []
    if sys.platform == "darwin":
        return ["-Xpreprocessor", "-fopenmp"], ["-lomp"]
    return ["-fopenmp"], ["-fopenmp"]


def openmp_flags():
    """Return ``(compile_args, link_args)`` for OpenMP, or ``([], [])`` if it does not work."""
    compile_args, link_args = _candidate_flags()
    if os.environ.get("SPARSE_REF_DISABLE_OPENMP") == "1":
        reason = "SPARSE_REF_DISABLE_OPENMP=1"
    else:
        reason = _probe(compile_args, link_args)
        if reason is None:
            return compile_args, link_args
    message = (
        f"sparse_ref: OpenMP is not usable ({reason}); the kernels are built serial. "
        "Install an OpenMP-capable compiler (gcc, or clang with libomp) to use threads."
    )
    if os.environ.get("SPARSE_REF_FAIL_NO_OPENMP") == "1":
        raise RuntimeError(message + " (SPARSE_REF_FAIL_NO_OPENMP=1 makes this fatal)")
    warnings.warn(message, stacklevel=2)
    print("WARNING:", message, file=sys.stderr)
    return [], []


def _probe(compile_args, link_args):
    """Compile, link and run the probe; return None on success or a short reason."""
    import subprocess

    cc = _compiler()
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(PROBE)
        try:
            objects = cc.compile([src], output_dir=tmp, extra_postargs=compile_args)
            exe = os.path.join(tmp, "probe")
            cc.link_executable(objects, exe, extra_postargs=link_args)
        except Exception as exc:  # any compiler or linker failure means "no OpenMP"
            return f"the probe program did not build: {type(exc).__name__}"
        try:
            out = subprocess.run([exe], capture_output=True, text=True, timeout=60)
        except Exception as exc:
            return f"the probe program did not run: {type(exc).__name__}"
        if out.returncode != 0 or out.stdout.strip() != "1":
            return "the probe program ran but gave a wrong answer"
    return None

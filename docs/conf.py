"""Sphinx configuration for the sparse_ref site (built with -W in CI: warnings are errors)."""

import os
import sys

# No sys.path entry for the checkout: the site documents (and its doctests run) the
# *installed* sparse_ref, as a user gets it. Build it with `python -P -m sphinx` from the
# checkout's root (or from docs/), after `pip install ".[docs]"`.

project = "sparse_ref"
author = "the sparse_ref team"
copyright = "2026, the sparse_ref team"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax served from the site itself: no network needed
    "matplotlib.sphinxext.plot_directive",
]

# Kernel docstrings carry a contract in numpydoc-like sections of their own.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_custom_sections = [
    "Simple version",
    ("Inputs", "params_style"),
    ("Outputs", "params_style"),
    "Preconditions",
    "Complexity",
    "Parallelism",
    ("Reference", "references"),
]
autodoc_member_order = "bysource"
autodoc_typehints = "none"

doctest_global_setup = f"""
import numpy as np
import sparse_ref as sr
sr.manual_seed(0)
REPO = {os.path.abspath("..")!r}
try:
    import torch
except ImportError:
    torch = None
"""

html_theme = "alabaster"
html_static_path = ["_static"]
exclude_patterns = ["_build"]

# Plots are drawn from the committed benchmark results: the docs build never times anything.
plot_working_directory = os.path.abspath(".")
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 100)]

# The `cython -a` annotation of every kernel, built into the site (annotate/<name>.html):
# white lines run as plain C, yellow ones call into Python.
ROOT = os.path.abspath("..")
ANNOTATE_DIR = os.path.join(os.path.abspath("."), "_build", "annotate")


def _annotate_kernels():
    import glob
    import shutil
    import subprocess

    out = os.path.join(ANNOTATE_DIR, "annotate")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    for pyx in sorted(glob.glob(os.path.join(ROOT, "sparse_ref", "_kernels", "*.pyx"))):
        name = os.path.splitext(os.path.basename(pyx))[0]
        if name.startswith("_"):
            continue
        subprocess.run(
            [sys.executable, "-m", "cython", "-3", "-a", "-I", ROOT, pyx,
             "-o", os.path.join(out, name + ".c")],
            check=True, cwd=ROOT, capture_output=True,
        )
        os.remove(os.path.join(out, name + ".c"))


_annotate_kernels()
html_extra_path = [ANNOTATE_DIR]

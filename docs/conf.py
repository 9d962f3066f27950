"""Sphinx configuration for the sparse_ref site (built with -W in CI: warnings are errors)."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "sparse_ref"
author = "the sparse_ref team"
copyright = "2026, the sparse_ref team"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
]

# Kernel docstrings carry a contract in numpydoc-like sections of their own.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_custom_sections = [
    ("Inputs", "params_style"),
    ("Outputs", "params_style"),
    "Preconditions",
    "Complexity",
    "Parallelism",
    ("Reference", "references"),
]
autodoc_member_order = "bysource"
autodoc_typehints = "none"

doctest_global_setup = """
import numpy as np
import sparse_ref as sr
sr.manual_seed(0)
"""

html_theme = "alabaster"
html_static_path = ["_static"]
exclude_patterns = ["_build"]

"""Sphinx configuration for the sparse_ref site (built with -W in CI: warnings are errors)."""

import os
import sys

# No sys.path entry for the checkout: the site documents (and its doctests run) the
# *installed* sparse_ref, as a user gets it. Build it with `python -P -m sphinx` from the
# checkout's root (or from docs/), after `pip install ".[docs]"`.

# docs/_ext holds the drawing code of the pictures (sr_pictures.py) and the sr-run directive,
# not the package.
sys.path.insert(0, os.path.join(os.path.abspath("."), "_ext"))

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
    "sphinx_copybutton",  # a copy button on every code block (prompts and output left out)
    "sphinx_gallery.gen_gallery",  # examples/*.py, run at build time, with their figures
    "sr_targets",  # docs/_ext/sr_targets.py: issue 13's targets, one column per machine's results
    "sr_run",  # docs/_ext/sr_run.py: code run at build time, shown with what it printed
    "sr_source",  # docs/_ext/sr_source.py: a kernel's simple version and its body without the docstring
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

# pydata-sphinx-theme: wide pages for code, a sidebar per section, light and dark. Nothing
# may load from the network (docs/check_offline.py): its icons and fonts are bundled, and
# no option below points outside the site.
html_theme = "pydata_sphinx_theme"
html_title = "sparse_ref"
html_static_path = ["_static"]
html_css_files = ["wide.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 5,
    "navbar_align": "left",
    "icon_links": [],
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": [],
    "show_prev_next": True,
}
# A left sidebar only where a section has pages to list (the algorithms, the gallery);
# elsewhere the page gets the width, for code.
html_sidebars = {page: [] for page in (
    "index", "tutorial", "training", "formats", "gradients", "autograd", "stepping", "numerics",
    "semantics", "design", "pitfalls", "field", "performance", "api")}
# Pictures included into the algorithm pages (docs/pictures/*.rst) are not pages of their own.
exclude_patterns = ["_build", "pictures/*", "auto_examples/*.ipynb", "auto_examples/*.py"]

# Copy button: copy the code of a doctest without its >>> / ... prompts and its output.
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
copybutton_only_copy_prompt_lines = True

# The gallery (as scikit-learn's): every examples/plot_*.py runs when the docs build, and
# its figures and printed output go on its page. An example that fails fails the build.
sphinx_gallery_conf = {
    "examples_dirs": os.path.join(os.path.abspath(".."), "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "show_signature": False,
    "line_numbers": False,
    "min_reported_time": 10,
    "abort_on_example_error": True,
    # its timing pages load jQuery and DataTables from CDNs: the site must work offline
    "write_computation_times": False,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
}

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
        _drop_raw_c_link(os.path.join(out, name + ".html"), name)


def _drop_raw_c_link(html_path: str, name: str) -> None:
    """`cython -a` links its page to the generated C file; the site does not publish that
    file (about 1.5 MB per kernel), so say where to get it instead of a dead link."""
    with open(html_path, encoding="utf-8") as f:
        html = f.read()
    link = f'<p>Raw output: <a href="{name}.c">{name}.c</a></p>'
    if link not in html:  # another Cython may word it differently: fail loudly, not silently
        raise RuntimeError(f"{html_path}: the 'Raw output' link to {name}.c was not found")
    html = html.replace(link, (
        "<p>Click a line to see the C it becomes. The whole generated C file is not part of this "
        f"site (about 1.5 MB); from a checkout, <code>cython -3 -a -I . sparse_ref/_kernels/{name}.pyx</code> "
        f"writes it, with this page, next to the <code>.pyx</code>.</p>"))
    with open(html_path, "w", encoding="utf-8") as f:
        f.write(html)


_annotate_kernels()
html_extra_path = [ANNOTATE_DIR]

"""Every public name is documented with an example, and the API page names them all."""

import inspect
from pathlib import Path

import pytest

import sparse_ref as sr

DOCS = Path(__file__).resolve().parent.parent / "docs"
DATA = {"float16", "float32", "float64", "complex64", "complex128", "int32", "int64", "bool", "strided", "sparse_coo",
        "sparse_csr", "sparse", "autograd", "nn", "optim", "datasets", "utils", "viz",
        "long", "int", "float", "double", "half", "cfloat", "cdouble"}  # dtypes, layouts and subpackages


@pytest.mark.parametrize("name", sorted(set(sr.__all__) - DATA))
def test_public_name_has_a_docstring_with_an_example(name):
    doc = inspect.getdoc(getattr(sr, name)) or ""
    assert "Examples\n--------" in doc, f"sr.{name} has no Examples section"


@pytest.mark.parametrize("name", ["mm", "addmm", "sampled_addmm"])
def test_products_have_examples(name):
    assert "Examples\n--------" in inspect.getdoc(getattr(sr.sparse, name))


def test_api_page_names_every_public_name():
    if not DOCS.exists():
        pytest.skip("docs/ is not part of this installation")
    api = (DOCS / "api.rst").read_text()
    assert [n for n in sr.__all__ if n not in api] == []

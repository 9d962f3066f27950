"""Every kernel exists twice, name for name: the reference and the Cython twin declare the
same kernels (each module's ``__all__``) with the same signatures and the same contract
docstrings, and the reference's helpers carry the names of the twin's ``cdef`` helpers.

A kernel module's ``__all__`` lists its kernels; every other function it defines is a
helper. Underscored names are neither (module-private details, such as test hooks)."""

import ast
import importlib
import inspect
import re
import textwrap
from pathlib import Path

import pytest

from sparse_ref import _backend, _kernels, reference

SECTIONS = ("Simple version", "Inputs", "Outputs", "Preconditions", "Complexity", "Parallelism")

# Modules of helpers shared by the kernels: reference/_arith.py and _kernels/_arith.pxd.
HELPER_MODULES = ("_arith",)


def defined_functions(module):
    """The public functions a module defines itself (not imported, not classes)."""
    return {
        name: obj
        for name, obj in vars(module).items()
        if not name.startswith("_") and callable(obj) and not inspect.isclass(obj) and not inspect.ismodule(obj)
        and getattr(obj, "__module__", module.__name__) == module.__name__
    }


def kernels(module):
    return {name: getattr(module, name) for name in getattr(module, "__all__", ())}


def helpers(module):
    return sorted(defined_functions(module).keys() - set(getattr(module, "__all__", ())))


def cython_sources(name):
    """The text of ``_kernels/<name>.pyx`` (or ``.pxd``) and of every ``.pxd`` it cimports,
    read from beside the compiled kernels (pyproject's package-data installs them)."""
    folder = Path(_kernels.__file__).resolve().parent
    first = next((p for p in (folder / f"{name}.pyx", folder / f"{name}.pxd") if p.exists()), None)
    if first is None:
        pytest.skip(f"no Cython source of {name} beside {folder} (sources not installed)")
    sources, todo = {}, [first]
    while todo:
        path = todo.pop()
        sources[path.name] = text = path.read_text()
        for dep in re.findall(r"^from sparse_ref\._kernels\.(\w+) cimport", text, re.M):
            if f"{dep}.pxd" not in sources and (folder / f"{dep}.pxd").exists():
                todo.append(folder / f"{dep}.pxd")
    return sources


def cdef_functions(text):
    """Names of the top-level ``cdef`` functions in Cython source text."""
    return set(re.findall(r"^cdef\b[^(\n:=]*?(\w+)\(", text, re.M))


def test_both_packages_list_the_same_kernel_modules():
    assert reference.KERNEL_MODULES == _kernels.KERNEL_MODULES


def test_cdef_functions_finds_helpers_and_nothing_else():
    text = ("cdef inline value_t mul(value_t a, value_t b) noexcept nogil:\n"
            "    cdef value_t acc = f(a)\n"
            "cdef idx_t chunk_count(idx_t nnz,\n                       idx_t nrows) noexcept nogil:\n"
            "cdef struct entry_t:\ncdef enum:\ncdef extern from *:\n    int g(int x)\n"
            "cdef Py_ssize_t CACHE_BYTES = 0\ndef spmm(a, b):\n")
    assert cdef_functions(text) == {"mul", "chunk_count"}


@pytest.mark.parametrize("name", reference.KERNEL_MODULES)
def test_twins_declare_the_interfaces_kernels_and_nothing_else_public(name):
    ref = importlib.import_module(f"sparse_ref.reference.{name}")
    fast = importlib.import_module(f"sparse_ref._kernels.{name}")
    assert ref.__all__ == fast.__all__ == list(_backend.INTERFACE[name])
    assert set(kernels(ref)) <= set(defined_functions(ref))
    # the Cython twin's helpers are cdef functions, invisible from Python: every public
    # def is a kernel
    assert set(defined_functions(fast)) == set(fast.__all__)


@pytest.mark.parametrize("name", reference.KERNEL_MODULES)
def test_twins_have_the_same_signatures_and_docstrings(name):
    ref = importlib.import_module(f"sparse_ref.reference.{name}")
    fast = importlib.import_module(f"sparse_ref._kernels.{name}")
    for fname, f in kernels(ref).items():
        g = getattr(fast, fname)
        p_ref = [(p.name, p.kind, p.default) for p in inspect.signature(f).parameters.values()]
        p_fast = [(p.name, p.kind, p.default) for p in inspect.signature(g).parameters.values()]
        assert p_ref == p_fast, fname
        assert inspect.cleandoc(f.__doc__) == inspect.cleandoc(g.__doc__), fname
        for section in SECTIONS:
            assert f"\n{section}\n{'-' * len(section)}\n" in inspect.cleandoc(f.__doc__), (fname, section)


@pytest.mark.parametrize("name", reference.KERNEL_MODULES + HELPER_MODULES)
def test_reference_helpers_are_named_after_cdef_helpers_of_the_twin(name):
    ref = importlib.import_module(f"sparse_ref.reference.{name}")
    cdefs = set().union(*map(cdef_functions, cython_sources(name).values()))
    missing = [h for h in helpers(ref) if h not in cdefs]
    assert missing == [], f"reference/{name}.py helpers with no cdef twin: {missing}"
    for h in helpers(ref):
        assert getattr(ref, h).__doc__, f"reference helper {name}.{h} has no docstring"


@pytest.mark.parametrize("name", reference.KERNEL_MODULES)
def test_reference_kernels_fit_on_one_screen(name):
    """A kernel's body is the algorithm in a few lines; the details live in helpers."""
    ref = importlib.import_module(f"sparse_ref.reference.{name}")
    for fname in [*kernels(ref), *helpers(ref)]:
        (fn,) = ast.parse(textwrap.dedent(inspect.getsource(getattr(ref, fname)))).body
        code = fn.body[1:] if ast.get_docstring(fn) else fn.body
        assert code[-1].end_lineno - code[0].lineno + 1 <= 40, fname


@pytest.mark.parametrize("name", reference.KERNEL_MODULES)
def test_every_kernel_module_has_a_twin_file(name):
    assert importlib.util.find_spec(f"sparse_ref._kernels.{name}") is not None
    assert importlib.util.find_spec(f"sparse_ref.reference.{name}") is not None

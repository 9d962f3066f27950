"""Every kernel exists twice, name for name: the reference and the Cython twin expose the
same functions with the same signatures and the same contract docstrings."""

import importlib
import inspect

import pytest

from sparse_ref import _kernels, reference


def public_functions(module):
    return {
        name: obj
        for name, obj in vars(module).items()
        if not name.startswith("_") and callable(obj) and not inspect.isclass(obj) and not inspect.ismodule(obj)
        and getattr(obj, "__module__", module.__name__) == module.__name__
    }


def test_both_packages_list_the_same_kernel_modules():
    assert reference.KERNEL_MODULES == _kernels.KERNEL_MODULES


@pytest.mark.parametrize("name", reference.KERNEL_MODULES)
def test_twins_have_the_same_functions_signatures_and_docstrings(name):
    ref = importlib.import_module(f"sparse_ref.reference.{name}")
    fast = importlib.import_module(f"sparse_ref._kernels.{name}")
    ref_funcs, fast_funcs = public_functions(ref), public_functions(fast)
    assert ref_funcs.keys() == fast_funcs.keys() and ref_funcs
    for fname, f in ref_funcs.items():
        g = fast_funcs[fname]
        p_ref = [(p.name, p.kind, p.default) for p in inspect.signature(f).parameters.values()]
        p_fast = [(p.name, p.kind, p.default) for p in inspect.signature(g).parameters.values()]
        assert p_ref == p_fast, fname
        assert inspect.cleandoc(f.__doc__) == inspect.cleandoc(g.__doc__), fname
        for section in ("Inputs", "Outputs", "Preconditions", "Complexity", "Parallelism"):
            assert f"\n{section}\n" in inspect.cleandoc(f.__doc__), (fname, section)


@pytest.mark.parametrize("name", reference.KERNEL_MODULES)
def test_every_kernel_module_has_a_twin_file(name):
    assert importlib.util.find_spec(f"sparse_ref._kernels.{name}") is not None
    assert importlib.util.find_spec(f"sparse_ref.reference.{name}") is not None

"""The package's imports point down its layers, with no circle: a reader can walk it from
the bottom up (docs: design page). The one edge that runs up -- tensor methods calling the
public functions -- is a binding made in ``__init__``, not an import; it is checked here too.

The layers (a module may import its own layer or lower ones):

    L0  _dtypes _errors _grad_mode _threads _memory _backend  reference/  _kernels/
    L1  _arrays _formats _products          (array-level ops: allocate, pick threads, call a kernel)
    L2  _tensor_str _tensor                 (the classes and how they print)
    L3  _validate                           (argument checks, torch's messages)
    L4  autograd/                           (engine and the Functions, forward beside backward)
    L5  sparse _batched _factories _functions interop serialization nn optim datasets utils course viz distributed
        (public functions; distributed needs the optional Dask)
    L6  __init__ __main__
"""

import ast
from pathlib import Path

import pytest

import sparse_ref

PACKAGE = Path(sparse_ref.__file__).resolve().parent

LAYERS = {
    0: ["_dtypes", "_errors", "_grad_mode", "_threads", "_memory", "_backend", "reference", "_kernels"],
    1: ["_arrays", "_formats", "_precision", "_products"],
    2: ["_tensor_str", "_tensor"],
    3: ["_validate"],
    4: ["autograd"],
    5: ["sparse", "_batched", "_factories", "_functions", "interop", "serialization", "nn", "optim", "datasets", "utils",
        "course",
        "viz", "distributed"],
    6: ["__init__", "__main__"],
}
LAYER_OF = {name: layer for layer, names in LAYERS.items() for name in names}

# Function-local imports of the package: only where the imported module may be missing.
LOCAL_IMPORTS_ALLOWED = {
    ("sparse_ref._threads", "sparse_ref._kernels._openmp_helpers"),  # the build may be absent
    ("sparse_ref._memory", "sparse_ref._kernels._pool"),  # likewise
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    """The layer of a module of the package, by its first name below ``sparse_ref``."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top not in LAYER_OF:
        raise AssertionError(f"{module} has no layer: add it to LAYERS here and to the design page")
    return LAYER_OF[top]


def package_modules():
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known: dict, source: str | None = None):
    """``(target, local)`` for every import of the package in ``path`` (or in ``source``
    read as that file): the module imported (``from sparse_ref import _formats`` imports
    the module ``sparse_ref._formats``), and whether the import sits inside a function."""
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node

    def in_function(node):
        while node in parents:
            node = parents[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                return True
        return False

    me = module_name(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = me.split(".")[: len(me.split(".")) - node.level + (path.name == "__init__.py")]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        for target in targets:
            if target == "sparse_ref" or target.startswith("sparse_ref."):
                yield target, in_function(node)


def graph():
    known = package_modules()
    # compiled kernels have no .py: count them as modules of _kernels
    known.update({f"sparse_ref._kernels.{p.name.split('.')[0]}": p
                  for p in (PACKAGE / "_kernels").glob("*.so")})
    return known, {name: sorted(set(imports(path, known))) for name, path in known.items() if path.suffix == ".py"}


def test_every_module_has_a_layer():
    for name in package_modules():
        layer(name)


def test_imports_point_down_only():
    known, edges = graph()
    upward = [f"{src} (L{layer(src)}) imports {dst} (L{layer(dst)})"
              for src, targets in edges.items() for dst, _ in targets if layer(dst) > layer(src)]
    assert upward == []


def test_no_function_local_imports_of_the_package():
    _, edges = graph()
    local = [(src, dst) for src, targets in edges.items() for dst, is_local in targets if is_local]
    assert [e for e in local if e not in LOCAL_IMPORTS_ALLOWED] == []


def test_no_import_circle():
    known, edges = graph()

    def resolve(target):  # `import sparse_ref.autograd.engine` -> that module; a name -> its module
        while target not in known and "." in target:
            target = target.rsplit(".", 1)[0]
        return target

    succ = {src: {resolve(dst) for dst, _ in targets} - {src} for src, targets in edges.items()}
    # a package's __init__ that re-exports its submodules is not a circle with them
    # (importing sparse_ref.autograd.engine runs sparse_ref/autograd/__init__ first by Python's
    # rule, not by an import statement); every other edge counts
    colour, stack, circles = {}, [], []

    def visit(node):
        colour[node] = "grey"
        stack.append(node)
        for nxt in sorted(succ.get(node, ())):
            if colour.get(nxt) == "grey":
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in colour:
                visit(nxt)
        stack.pop()
        colour[node] = "black"

    for node in sorted(succ):
        if node not in colour:
            visit(node)
    assert circles == []


def test_the_one_upward_edge_is_the_binding():
    """Tensor methods reach the public functions through ``_tensor.bind``, done at import."""
    from sparse_ref import _functions, _tensor

    assert _tensor._F is _functions
    x = sparse_ref.tensor([1.0, 2.0], requires_grad=True)
    assert (x + 1).grad_fn.name() == "AddBackward0"  # a method ran the public function's op


@pytest.mark.parametrize("bad", ["from sparse_ref import sparse\n",
                                 "def f():\n    from sparse_ref.autograd import engine\n"])
def test_the_layer_check_catches_an_upward_import(bad):
    """The checks above can fail: an upward import written into a copy of a low module is seen."""
    path = PACKAGE / "_formats.py"
    known = package_modules()
    found = [dst for dst, _ in imports(path, known, source=path.read_text() + "\n" + bad)]
    assert any(layer(dst) > layer("sparse_ref._formats") for dst in found)

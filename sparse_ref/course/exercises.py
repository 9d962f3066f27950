"""The exercises: ``python -m sparse_ref exercise NAME DIR`` writes a starter package.

A starter is a package whose functions raise ``NotImplementedError`` under the contract
docstring they must meet. Kernel exercises fill in modules of the kernel interface
(``coalesce.py``, ``spmm.py``, ...; whatever the package lacks falls back to the
reference); the other three fill in ``tasks.py``. ``python -m sparse_ref check DIR``
checks both kinds. The reference (:mod:`sparse_ref.reference`) is the model solution.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import keyword
import sys
import textwrap
from pathlib import Path

import numpy as np

from sparse_ref import _formats, _products, reference
from sparse_ref._backend import INTERFACE
from sparse_ref._factories import sparse_coo_tensor, tensor
from sparse_ref._functions import mm

# name -> (goal, kernel functions to write as "module.function", tasks to write)
EXERCISES = {
    "coalesce": ("Sort a COO matrix row-major and sum its duplicates in storage order.",
                 ["coalesce.coalesce"], []),
    "coo_to_csr": ("Turn the rows of a row-sorted COO matrix into CSR row pointers, and back.",
                   ["convert.coo_to_csr", "convert.csr_to_coo"], []),
    "spmm": ("Sparse (CSR) times dense, one row at a time, in the contract's order of additions.",
             ["spmm.spmm"], []),
    "spgemm": ("Gustavson's SpGEMM: count each row of C = A @ B (symbolic), then fill it (numeric).",
               ["spgemm.spgemm_symbolic", "spgemm.spgemm_numeric"], []),
    "sddmm": ("The sampled product: the entries of X @ Y^T at given positions only.",
              ["sddmm.sddmm"], []),
    "masked_gradient": ("The gradient of C = A @ B with respect to the sparse A, at A's stored entries "
                        "only: mask(G @ B^H, A), never the dense m x k matrix.", [], ["spmm_grad_a"]),
    "gcn_backward": ("The backward of a GCN layer out = A @ (X @ W): the gradients of X and W.",
                     [], ["gcn_backward"]),
    "determinism": ("A parallel sum whose bits do not depend on the number of threads.",
                    [], ["chunked_sum"]),
}


# -- the tasks: contract, model solution, cases ---------------------------------------------------

def spmm_grad_a(a_crow, a_col, b, g):
    """The gradient of ``C = A @ B`` with respect to the values of the sparse A.

    Inputs
    ------
    a_crow, a_col : int64[nrows + 1], int64[nnz]
        The pattern of A (CSR, coalesced).
    b : value[ncols_a, n]
        The dense B of the forward.
    g : value[nrows, n]
        The gradient of the loss with respect to C.

    Outputs
    -------
    return : value[nnz]
        ``out[q] = sum_j g[i, j] * conj(b[k, j])`` for stored entry q = (i, k): the entries
        of ``G @ B^H`` at A's stored positions (an SDDMM). Never form the dense m x k matrix.
    """
    row = _formats.csr_to_coo(a_crow)
    return _products.sddmm(row, a_col, np.ascontiguousarray(g), np.ascontiguousarray(np.conj(b)))


def gcn_backward(a_crow, a_col, a_val, x, w, g):
    """The backward of a GCN layer ``out = A @ (X @ W)`` (A sparse, X and W dense, real).

    Inputs
    ------
    a_crow, a_col, a_val
        A in CSR form (coalesced), nrows x nrows.
    x : float64[nrows, f_in], w : float64[f_in, f_out]
        The layer's input and weight.
    g : float64[nrows, f_out]
        The gradient of the loss with respect to ``out``.

    Outputs
    -------
    return : (grad_x, grad_w)
        ``grad_x = (A^T @ G) @ W^T`` and ``grad_w = X^T @ (A^T @ G)``: one SpMM with the
        transpose, then two dense products.
    """
    n = a_crow.shape[0] - 1
    row = _formats.csr_to_coo(a_crow)
    a = sparse_coo_tensor(np.stack([row, a_col]), a_val, (n, n))
    x_t, w_t = tensor(x, requires_grad=True), tensor(w, requires_grad=True)
    mm(a, mm(x_t, w_t)).backward(tensor(g))
    return x_t.grad.numpy(), w_t.grad.numpy()


def chunked_sum(values, n_chunks):
    """The sum of ``values`` as ``n_chunks`` threads would compute it -- with the same bits
    for every ``n_chunks``.

    Inputs
    ------
    values : float64[n]
    n_chunks : int
        How many parts the work is split into (as a ``prange`` would split it).

    Outputs
    -------
    return : float
        ``((values[0] + values[1]) + values[2]) + ...``, exactly, whatever ``n_chunks`` is.
        Splitting the sum into per-chunk partial sums and adding those changes the order
        of additions, and so the last bits: fix what each chunk computes so that the
        combined result is the sequential one (hint: let the chunks sort or split work
        that needs no additions, and keep the additions in one order).
    """
    total = np.float64(0.0)
    for v in np.asarray(values, dtype=np.float64):
        total = total + v
    return total


TASKS = {"spmm_grad_a": spmm_grad_a, "gcn_backward": gcn_backward, "chunked_sum": chunked_sum}


def task_cases(task: str):
    """``(case name, kwargs)`` for a task."""
    rng = np.random.default_rng(11)
    for k, (n, nnz) in enumerate([(3, 0), (4, 6), (6, 15), (5, 25)]):
        row, col = rng.integers(0, n, nnz), rng.integers(0, n, nnz)
        crow, ccol, cval = _csr_of(n, row, col, rng.standard_normal(nnz))
        name = f"{n}x{n} with {ccol.shape[0]} stored (seed {k})"
        if task == "spmm_grad_a":
            yield name, dict(a_crow=crow, a_col=ccol, b=rng.standard_normal((n, 3)), g=rng.standard_normal((n, 3)))
            if k == 2:  # complex: the conjugate of B (a real case cannot tell b from conj(b))
                b = rng.standard_normal((n, 3)) + 1j * rng.standard_normal((n, 3))
                g = rng.standard_normal((n, 3)) + 1j * rng.standard_normal((n, 3))
                yield f"{name}, complex128", dict(a_crow=crow, a_col=ccol, b=b, g=g)
        elif task == "gcn_backward":
            yield name, dict(a_crow=crow, a_col=ccol, a_val=cval, x=rng.standard_normal((n, 4)),
                             w=rng.standard_normal((4, 2)), g=rng.standard_normal((n, 2)))
    if task == "chunked_sum":
        values = rng.standard_normal(1000) * 10.0 ** rng.integers(-8, 9, 1000)
        for n_chunks in (1, 2, 3, 7, 16):
            yield f"1000 values of mixed magnitude, {n_chunks} chunks", dict(values=values, n_chunks=n_chunks)


def _csr_of(n, row, col, val):
    crow, out_col, out_val = np.empty(n + 1, np.int64), np.empty(row.shape[0], np.int64), np.empty(row.shape[0])
    reference.coalesce.coalesce(row, col, val, n, crow, out_col, out_val, np.empty(0, np.int64))
    m = int(crow[-1])
    return crow, out_col[:m].copy(), out_val[:m].copy()


# -- writing a starter -----------------------------------------------------------------------------

def _existing_module(name: str) -> str | None:
    """Where Python finds a module called ``name`` (not a bare folder of that name), or None."""
    if name in sys.builtin_module_names:
        return "built in"
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None and spec.origin is not None else None


def write_starter(name: str, directory) -> Path:
    """Write the starter package of exercise ``name`` into ``directory`` (a new folder whose
    name is the package's import name); returns its path."""
    if name not in EXERCISES:
        raise ValueError(f"unknown exercise {name!r}: one of {', '.join(EXERCISES)}")
    path = Path(directory)
    if not path.name.isidentifier() or keyword.iskeyword(path.name):
        raise ValueError(f"{path.name!r} cannot be imported as a package: name the folder like a Python "
                         "identifier (my_kernels)")
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a folder: choose a new folder")
    if path.exists() and any(path.iterdir()):
        raise FileExistsError(f"{path} exists and is not empty: choose a new folder")
    taken = _existing_module(path.name)
    if taken is not None:
        raise ValueError(f"{path.name!r} is the name of a module Python already has ({taken}): the package "
                         "would hide it, or it the package; choose another name")
    path.mkdir(parents=True, exist_ok=True)
    goal, kernels, tasks = EXERCISES[name]
    (path / "__init__.py").write_text(
        f'"""Exercise {name}: {goal}\n\nCheck it with:  python -m sparse_ref check {path.name}\n'
        f'(run from the folder that holds {path.name}/). The reference is the model solution.\n"""\n')
    modules = {}
    for kernel in kernels:
        module, function = kernel.split(".")
        modules.setdefault(module, []).append(function)
    for module, functions in modules.items():
        ref = importlib.import_module(f"sparse_ref.reference.{module}")
        body = [f'"""Your {module} kernels: {", ".join(functions)} (the contract is each docstring)."""\n',
                "import numpy as np  # noqa: F401\n"]
        for function in functions:
            params = ", ".join(p if p != "n_threads" else "n_threads=1" for p in INTERFACE[module][function])
            doc = inspect.getdoc(getattr(ref, function))
            body.append(f"\ndef {function}({params}):\n"
                        f'{textwrap.indent(chr(34) * 3 + doc + chr(10) + chr(34) * 3, "    ")}\n'
                        f'    raise NotImplementedError("{module}.{function}: your code here")\n')
        (path / f"{module}.py").write_text("\n".join(body))
    if tasks:
        body = [f'"""Exercise {name}: {goal}"""\n', "import numpy as np  # noqa: F401\n"]
        for task in tasks:
            fn = TASKS[task]
            params = ", ".join(inspect.signature(fn).parameters)
            body.append(f"\ndef {task}({params}):\n"
                        f'{textwrap.indent(chr(34) * 3 + inspect.getdoc(fn) + chr(10) + chr(34) * 3, "    ")}\n'
                        f'    raise NotImplementedError("{task}: your code here")\n')
        (path / "tasks.py").write_text("\n".join(body))
    return path

"""The course kit: student kernels plug in (sr.register_backend), the checker passes the
reference and catches a planted bug in each kernel by name and case, and every exercise's
starter fails the check until it is solved."""

import contextlib
import io
import itertools
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import child_env

import sparse_ref as sr
from sparse_ref._backend import INTERFACE, BackendError
from sparse_ref.course import check, exercises

_count = itertools.count()


def package(tmp_path, modules: dict) -> str:
    """A package in tmp_path with the given module sources; returns its import name."""
    name = f"student_{next(_count)}"
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text("")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    sys.path.insert(0, str(tmp_path))
    return name


@pytest.fixture(autouse=True)
def _restore_sys_path():
    before = list(sys.path)
    yield
    sys.path[:] = before


COPY = {m: f"from sparse_ref.reference.{m} import *  # noqa: F403\n" for m in INTERFACE}


def test_a_copy_of_the_reference_passes(tmp_path):
    results = check.check(package(tmp_path, COPY))
    assert results and all(r.status == "pass" for r in results), check.report(results)
    kernels = {r.kernel for r in results}
    assert {f"{m}.{f}" for m, fs in INTERFACE.items() for f in fs} <= kernels
    assert {f"{m} (gradients)" for m in INTERFACE} <= kernels


# module -> (function, planted bug as the source of a module that replaces it, the case it breaks)
BUGS = {
    "coalesce: a dropped duplicate": ("coalesce", "coalesce", """
        from sparse_ref.reference.coalesce import coalesce as _ref
        import numpy as np
        def coalesce(a_row, a_col, a_val, nrows, out_crow, out_col, out_val, out_pos, n_threads=1):
            keys = list(zip(a_row.tolist(), a_col.tolist()))
            val = a_val.copy()
            for p, key in enumerate(keys):
                if key in keys[:p]:  # every duplicate after the first is dropped
                    val[p] = 0
            _ref(a_row, a_col, val, nrows, out_crow, out_col, out_val, out_pos)
        """, "duplicates in storage order"),
    "convert: an off-by-one row pointer": ("convert", "coo_to_csr", """
        from sparse_ref.reference.convert import coo_to_csr as _ref
        def coo_to_csr(a_row, nrows, out_crow, n_threads=1):
            _ref(a_row, nrows, out_crow)
            out_crow[1:-1] -= 1
        """, "empty matrix"),
    "spmm: the wrong order of additions": ("spmm", "spmm", """
        import numpy as np
        def spmm(a_crow, a_col, a_val, b, out, n_threads=1):
            for i in range(len(a_crow) - 1):
                acc = np.zeros(b.shape[1], dtype=out.dtype)
                for q in reversed(range(a_crow[i], a_crow[i + 1])):  # last entry first
                    acc = acc + a_val[q] * b[a_col[q]]
                out[i] = acc
        """, "300 duplicates"),
    "coalesce: duplicates summed last first": ("coalesce", "coalesce", """
        from sparse_ref.reference.coalesce import coalesce as _ref
        def coalesce(a_row, a_col, a_val, nrows, out_crow, out_col, out_val, out_pos, n_threads=1):
            # the duplicates in reverse storage order, as an unstable sort may leave them
            _ref(a_row[::-1].copy(), a_col[::-1].copy(), a_val[::-1].copy(), nrows, out_crow, out_col, out_val,
                 out_pos)
            if len(out_pos):
                out_pos[:] = out_pos[::-1].copy()
        """, "duplicates"),
    "spmm: B's width read from its first row": ("spmm", "spmm", """
        from sparse_ref.reference.spmm import spmm as _ref
        def spmm(a_crow, a_col, a_val, b, out, n_threads=1):
            n = len(b[0])  # fails when B has no rows (A has no columns)
            _ref(a_crow, a_col, a_val, b, out)
        """, "no columns (3 x 0)"),
    "spgemm: the numeric pass in the wrong order": ("spgemm", "spgemm_numeric", """
        import numpy as np
        from sparse_ref.reference.spgemm import spgemm_numeric as _ref
        def spgemm_numeric(a_crow, a_col, a_val, b_crow, b_col, b_val, ncols, crow, out_col, out_val, n_threads=1):
            _ref(a_crow, a_col, a_val, b_crow, b_col, b_val, ncols, crow, out_col, out_val)
            out_val[:] = out_val * (1 + 2**-52)  # one ulp off: as if added in another order
        """, "empty rows"),
    "sddmm: one plain running sum instead of the contract's lanes": ("sddmm", "sddmm", """
        import numpy as np
        def sddmm(p_row, p_col, x, y, out, n_threads=1):
            for p in range(len(p_row)):
                acc = out.dtype.type(0)
                for j in range(x.shape[1]):
                    acc = acc + x[p_row[p], j] * y[p_col[p], j]
                out[p] = acc
        """, "19 columns"),
}


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_a_planted_bug_fails_and_the_report_names_the_kernel_and_case(tmp_path, bug):
    module, function, source, case = BUGS[bug]
    modules = dict(COPY)
    modules[module] = COPY[module] + textwrap.dedent(source)
    results = check.check(package(tmp_path, modules), kernels=[module])
    failed = [r for r in results if not r.ok]
    assert [r.kernel for r in failed][:1] == [f"{module}.{function}"], check.report(results)
    text = str(failed[0])
    assert text.startswith((f"FAIL  {module}.{function}: case ", f"ERROR {module}.{function}: case ")), text
    assert case in text.splitlines()[0], text
    assert "to reproduce:" in text and ("the contract says:" in text or "raised" in text)


def test_a_report_says_where_an_output_first_differs_and_whether_it_was_written(tmp_path):
    """Not just "out differs": the first differing element, both values, how many differ,
    and whether the kernel ever wrote it (the checker's marker still there)."""
    source = COPY["spmm"] + textwrap.dedent("""
        def spmm(a_crow, a_col, a_val, b, out, n_threads=1):
            for i in range(1, len(a_crow) - 1):  # row 0 forgotten
                out[i] = 0
                for q in range(a_crow[i], a_crow[i + 1]):
                    out[i] = out[i] + a_val[q] * b[a_col[q]]
        """)
    results = check.check(package(tmp_path, {**COPY, "spmm": source}), kernels=["spmm.spmm"])
    line = str([r for r in results if r.kernel == "spmm.spmm"][0]).splitlines()[0]
    assert line.endswith("out differs, first at [0, 0]: yours 7.777e+77 (never written: the checker filled the "
                         "output with that), the reference's 0.0"), line


def test_the_spmm_gradient_task_has_a_complex_case(tmp_path):
    """Without conj(B) the gradient of A is right for every real case: a complex one tells."""
    source = textwrap.dedent("""
        import numpy as np
        def spmm_grad_a(a_crow, a_col, b, g):
            out = np.zeros(len(a_col), dtype=np.result_type(b, g))
            for i in range(len(a_crow) - 1):
                for q in range(a_crow[i], a_crow[i + 1]):
                    out[q] = np.sum(g[i] * b[a_col[q]])  # conj(b) forgotten
            return out
        """)
    results = check.check(package(tmp_path, {"tasks": source}), kernels=["tasks.spmm_grad_a"])
    task = [r for r in results if r.kernel == "tasks.spmm_grad_a"][0]
    assert task.status == "fail" and "complex128" in task.detail, check.report(results)


def test_another_order_passes_with_allow_reordering_and_says_so(tmp_path):
    module, function, source, _ = BUGS["spmm: the wrong order of additions"]
    name = package(tmp_path, {"spmm": COPY["spmm"] + textwrap.dedent(source)})
    strict = {r.kernel: r for r in check.check(name, kernels=["spmm.spmm"])}
    assert strict["spmm.spmm"].status == "fail" and "order of additions" in strict["spmm.spmm"].detail
    loose = {r.kernel: r for r in check.check(name, kernels=["spmm.spmm"], allow_reordering=True)}
    assert loose["spmm.spmm"].status == "rounding" and "order of additions" in str(loose["spmm.spmm"])


def test_a_kernel_that_writes_its_input_fails(tmp_path):
    source = COPY["convert"] + textwrap.dedent("""
        from sparse_ref.reference.convert import csr_to_coo as _ref
        def csr_to_coo(a_crow, out_row, n_threads=1):
            _ref(a_crow, out_row)
            a_crow[0] = 99  # an input must never be written
        """)
    results = check.check(package(tmp_path, {"convert": source}), kernels=["convert.csr_to_coo"])
    assert results[0].status == "fail" and "it is an input" in results[0].detail


@pytest.mark.parametrize("name", sorted(exercises.EXERCISES))
def test_each_starter_fails_until_solved(tmp_path, name):
    path = exercises.write_starter(name, tmp_path / f"ex_{name}")
    sys.path.insert(0, str(tmp_path))
    results = check.check(path.name)
    failed = [r for r in results if not r.ok]
    assert failed and all("not implemented yet" in r.detail or "NotImplementedError" in r.detail for r in failed)
    goal, kernels, tasks = exercises.EXERCISES[name]
    assert {r.kernel for r in failed} >= set(kernels) | {f"tasks.{t}" for t in tasks}


@pytest.mark.parametrize("task", sorted(exercises.TASKS))
def test_the_model_solution_of_each_task_passes(tmp_path, task):
    name = package(tmp_path, {"tasks": f"from sparse_ref.course.exercises import {task}  # noqa: F401\n"})
    results = check.check(name, kernels=[task])
    assert [(r.kernel, r.status) for r in results if r.kernel.startswith("tasks.")] == [(f"tasks.{task}", "pass")]


def test_a_chunked_sum_that_adds_partial_sums_fails(tmp_path):
    source = """
        import numpy as np
        def chunked_sum(values, n_chunks):
            parts = np.array_split(np.asarray(values), n_chunks)
            total = 0.0
            for part in parts:  # per-chunk partial sums: the order depends on n_chunks
                s = 0.0
                for v in part:
                    s = s + v
                total = total + s
            return total
        """
    results = check.check(package(tmp_path, {"tasks": source}), kernels=["chunked_sum"])
    task = [r for r in results if r.kernel == "tasks.chunked_sum"][0]
    assert task.status == "fail" and "sequential sum" in task.detail


# -- register_backend ----------------------------------------------------------------------------

def test_a_registered_backend_runs_forward_and_backward_and_shows_its_fallbacks(tmp_path):
    calls = tmp_path / "calls.txt"
    source = COPY["spmm"] + textwrap.dedent(f"""
        from sparse_ref.reference.spmm import spmm as _ref
        def spmm(a_crow, a_col, a_val, b, out, n_threads=1):
            with open({str(calls)!r}, "a") as f:
                f.write("spmm\\n")
            _ref(a_crow, a_col, a_val, b, out)
        """)
    name = package(tmp_path, {"spmm": source})
    with pytest.warns(UserWarning, match="coalesce.coalesce, .* not found in .*; the reference runs in their place"):
        backend = sr.register_backend("mine", name)
    assert "spmm.spmm" not in backend.fallbacks and "coalesce.coalesce" in backend.fallbacks
    a = sr.sparse_coo_tensor([[0, 1], [1, 0]], [1.0, 2.0], (2, 2), dtype=sr.float64, requires_grad=True)
    b = sr.ones(2, 3, dtype=sr.float64, requires_grad=True)
    with sr.use_backend("mine"):
        y = sr.sparse.mm(a, b)
    y.sum().backward()  # backward runs on the forward's backend: A^H @ G is an SpMM too
    assert calls.read_text().count("spmm") == 2
    assert sr.get_backend() != "mine"


def test_register_backend_refuses_bad_packages(tmp_path):
    bad = package(tmp_path, {"spmm": "def spmm(a_crow, out, n_threads=1):\n    pass\n"})
    with pytest.raises(BackendError, match="spmm.spmm takes \\(a_crow, out, n_threads\\)"):
        sr.register_backend("bad", bad)
    with pytest.raises(ValueError, match="not cython, reference"):
        sr.register_backend("cython", bad)
    with pytest.raises(TypeError, match="is a module, not a package"):
        sr.register_backend("flat", textwrap)
    with pytest.raises(ValueError, match="unknown backend 'bad'"):
        sr.use_backend("bad")


# -- the command line ------------------------------------------------------------------------------

def test_the_commands_write_a_starter_and_check_it(tmp_path):
    env = child_env()
    run = lambda *args: subprocess.run([sys.executable, "-P", "-m", "sparse_ref", *args], cwd=tmp_path,  # noqa: E731
                                       env=env, capture_output=True, text=True, timeout=300)
    made = run("exercise", "coo_to_csr", "my_csr")
    assert made.returncode == 0 and "python -m sparse_ref check" in made.stdout, made.stderr
    failing = run("check", "my_csr", "--kernel", "convert")
    assert failing.returncode == 1 and "FAIL  convert.coo_to_csr: not implemented yet" in failing.stdout
    (tmp_path / "my_csr" / "convert.py").write_text("from sparse_ref.reference.convert import *  # noqa: F403\n")
    passing = run("check", "my_csr", "--kernel", "convert")
    assert passing.returncode == 0 and "PASS  convert.coo_to_csr" in passing.stdout, passing.stdout
    again = run("exercise", "coo_to_csr", "my_csr")
    assert again.returncode != 0 and "not empty" in again.stderr


def test_check_of_a_missing_package_says_so(tmp_path):
    out = subprocess.run([sys.executable, "-P", "-m", "sparse_ref", "check", "no_such_package_here"], cwd=tmp_path,
                         env=child_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "cannot import no_such_package_here" in out.stderr and "Traceback" not in out.stderr


# -- what an adversarial trial of the checker found (each of these passed or crashed before) ------

def _result(results, kernel):
    found = [r for r in results if r.kernel == kernel]
    assert found, check.report(results)
    return found[0]


STUDENT_BUGS = {
    # a float64 accumulator: right on float64 data, other bits on float32 (sr's default)
    "float64 accumulator": ("spmm", "spmm", """
        import numpy as np
        def spmm(a_crow, a_col, a_val, b, out, n_threads=1):
            for i in range(len(a_crow) - 1):
                acc = np.zeros(b.shape[1])
                for q in range(a_crow[i], a_crow[i + 1]):
                    acc = acc + np.float64(a_val[q].real) * b[a_col[q]].real.astype(np.float64)
                out[i] = acc
        """, "float32"),
    # right on several threads, another order on one (what small ops pass)
    "wrong on one thread": ("spmm", "spmm", """
        from sparse_ref.reference.spmm import spmm as _ref
        import numpy as np
        def spmm(a_crow, a_col, a_val, b, out, n_threads=1):
            if n_threads > 1:
                return _ref(a_crow, a_col, a_val, b, out)
            for i in range(len(a_crow) - 1):
                acc = np.zeros(b.shape[1], dtype=out.dtype)
                for q in reversed(range(a_crow[i], a_crow[i + 1])):
                    acc = acc + a_val[q] * b[a_col[q]]
                out[i] = acc
        """, "n_threads=1"),
    # the classic shortcut: 0 * inf is NaN, not nothing
    "skips stored zeros": ("spmm", "spmm", """
        import numpy as np
        from sparse_ref.reference._arith import mul
        def spmm(a_crow, a_col, a_val, b, out, n_threads=1):
            for i in range(len(a_crow) - 1):
                acc = np.zeros(b.shape[1], dtype=out.dtype)
                for q in range(a_crow[i], a_crow[i + 1]):
                    if a_val[q] != 0:
                        acc = acc + mul(a_val[q], b[a_col[q]])
                out[i] = acc
        """, "stored zeros meet inf"),
    # sums duplicates from 0.0: -0.0 + -0.0 gives 0.0, not -0.0 (not a matter of rounding)
    "starts a sum from 0.0": ("coalesce", "coalesce", """
        from sparse_ref.reference.coalesce import coalesce as _ref
        def coalesce(a_row, a_col, a_val, nrows, out_crow, out_col, out_val, out_pos, n_threads=1):
            _ref(a_row, a_col, a_val, nrows, out_crow, out_col, out_val, out_pos)
            out_val += 0.0  # (turns every -0.0 into 0.0)
        """, "sign of a zero"),
}


@pytest.mark.parametrize("bug", sorted(STUDENT_BUGS))
@pytest.mark.parametrize("allow_reordering", [False, True])
def test_student_bugs_the_first_checker_missed_fail(tmp_path, bug, allow_reordering):
    module, function, source, where = STUDENT_BUGS[bug]
    name = package(tmp_path, {module: COPY[module] + textwrap.dedent(source)})
    results = check.check(name, kernels=[f"{module}.{function}"], allow_reordering=allow_reordering)
    found = _result(results, f"{module}.{function}")
    if bug == "wrong on one thread" and allow_reordering:
        assert found.status == "rounding"  # another rounding, no more: accepted, and said
        return
    if bug == "float64 accumulator" and allow_reordering:  # float32 rounds otherwise; complex parts are lost
        where = "complex128"
    assert found.status == "fail" and where in str(found), str(found)
    assert "n_threads=" in found.snippet
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), np.errstate(all="ignore"):  # it pastes and runs (nan, inf, 2-D
        exec(compile(found.snippet, "snippet", "exec"), {})                   # outputs), showing the difference
    reference_line, yours_line = printed.getvalue().splitlines()
    assert reference_line.split(":", 1)[1].strip() != yours_line.split(":", 1)[1].strip()


def test_a_symbolic_pass_that_sizes_its_markers_by_the_rows_of_a_errors(tmp_path):
    # C = A @ A^T has as many columns as A has rows: only a B of its own shape shows it
    source = COPY["spgemm"] + textwrap.dedent("""
        def spgemm_symbolic(a_crow, a_col, b_crow, b_col, ncols, out_crow, n_threads=1):
            marker = [-1] * (len(a_crow) - 1)   # should be ncols
            out_crow[0] = 0
            for i in range(len(a_crow) - 1):
                count = 0
                for q in range(a_crow[i], a_crow[i + 1]):
                    for r in range(b_crow[a_col[q]], b_crow[a_col[q] + 1]):
                        if marker[b_col[r]] != i:
                            marker[b_col[r]] = i
                            count += 1
                out_crow[i + 1] = out_crow[i] + count
        """)
    results = check.check(package(tmp_path, {"spgemm": source}), kernels=["spgemm.spgemm_symbolic"])
    found = _result(results, "spgemm.spgemm_symbolic")
    assert found.status == "error" and "C = A @ B" in found.detail and "IndexError" in found.detail


def test_exit_in_a_kernel_is_an_error_of_that_kernel(tmp_path):
    source = COPY["spmm"] + "def spmm(a_crow, a_col, a_val, b, out, n_threads=1):\n    exit()\n"
    results = check.check(package(tmp_path, {"spmm": source}), kernels=["spmm.spmm"])
    found = _result(results, "spmm.spmm")
    assert found.status == "error" and "SystemExit" in found.detail and not found.ok


def test_keyword_only_n_threads_is_refused(tmp_path):
    source = "def csr_to_coo(a_crow, out_row, *, n_threads=1):\n    pass\n"
    with pytest.raises(BackendError, match="n_threads by keyword only"):
        check.check(package(tmp_path, {"convert": source}))


def test_a_misspelt_kernel_is_named_and_nothing_checked_fails(tmp_path):
    source = "def spmm_csr(a_crow, a_col, a_val, b, out, n_threads=1):\n    pass\n"
    results = check.check(package(tmp_path, {"spmm": source}))
    note = _result(results, "spmm.spmm_csr")
    assert note.status == "note" and "misspelt" in str(note)
    assert _result(results, "(nothing)").status == "fail"
    assert "tasks.chunked_sum" not in {r.kernel for r in results}


def test_unknown_kernel_names_are_refused_and_tasks_dot_name_is_known(tmp_path):
    name = package(tmp_path, {"tasks": "from sparse_ref.course.exercises import chunked_sum  # noqa: F401\n"})
    for bad in ("spmmm", "determinism", "spmm.smpm"):
        with pytest.raises(ValueError, match=f"unknown kernel name '{bad}'"):
            check.check(name, kernels=[bad])
    results = check.check(name, kernels=["tasks.chunked_sum"])
    assert [(r.kernel, r.status) for r in results] == [("tasks.chunked_sum", "pass")]


TASK_BUGS = {
    "a bool": ("chunked_sum", "def chunked_sum(values, n_chunks):\n    return True\n", "bool"),
    "an int": ("chunked_sum", "def chunked_sum(values, n_chunks):\n    return int(sum(values))\n", "int64"),
    "float32 partial sums": ("chunked_sum", """
        import numpy as np
        def chunked_sum(values, n_chunks):
            return np.float32(sum(np.sum(p) for p in np.array_split(np.asarray(values), n_chunks)))
        """, "float32"),
    "no results": ("gcn_backward", "def gcn_backward(a_crow, a_col, a_val, x, w, g):\n    return ()\n",
                   "0 results"),
    "one result": ("gcn_backward", """
        from sparse_ref.course.exercises import gcn_backward as _model
        def gcn_backward(a_crow, a_col, a_val, x, w, g):
            return _model(a_crow, a_col, a_val, x, w, g)[:1]
        """, "1 results"),
    "no return": ("gcn_backward", "def gcn_backward(a_crow, a_col, a_val, x, w, g):\n    pass\n", "returns NoneType"),
    "a None in a tuple": ("spmm_grad_a", """
        from sparse_ref.course.exercises import spmm_grad_a as _model
        def spmm_grad_a(a_crow, a_col, b, g):
            return _model(a_crow, a_col, b, g), None
        """, "not an array"),
    "writes its input": ("spmm_grad_a", """
        from sparse_ref.course.exercises import spmm_grad_a as _model
        def spmm_grad_a(a_crow, a_col, b, g):
            out = _model(a_crow, a_col, b, g)
            b[...] = 0
            return out
        """, "b was changed"),
}


@pytest.mark.parametrize("bug", sorted(TASK_BUGS))
def test_task_results_of_the_wrong_kind_or_count_fail(tmp_path, bug):
    task, source, where = TASK_BUGS[bug]
    results = check.check(package(tmp_path, {"tasks": textwrap.dedent(source)}), kernels=[task])
    found = _result(results, f"tasks.{task}")
    assert found.status == "fail" and where in found.detail, found.detail


def test_registering_a_package_again_imports_the_edited_files(tmp_path):
    name = package(tmp_path, {"convert": "def csr_to_coo(a_crow, out_row, n_threads=1):\n    out_row[:] = 1\n"})
    results = check.check(name, kernels=["convert.csr_to_coo"], name="again")
    assert _result(results, "convert.csr_to_coo").status == "fail"
    (tmp_path / name / "convert.py").write_text(COPY["convert"])
    results = check.check(name, kernels=["convert.csr_to_coo"], name="again")
    assert _result(results, "convert.csr_to_coo").status == "pass"


def test_check_leaves_a_backend_name_as_it_found_it(tmp_path):
    """check() registers the package under ``name`` while it checks: a backend the caller
    had under that name is back afterwards, and a name that was free is free again."""
    from sparse_ref import _backend

    name = package(tmp_path, {"convert": COPY["convert"]})
    mine = sr.register_backend("student", "sparse_ref.reference")
    try:
        assert _result(check.check(name, kernels=["convert.csr_to_coo"]), "convert.csr_to_coo").status == "pass"
        assert _backend.BACKENDS["student"] is mine
        with sr.use_backend("student"):  # still the caller's, and usable
            assert sr.sparse_coo_tensor([[1, 0], [0, 1]], [1., 2.], (2, 2)).coalesce().indices().tolist() == \
                [[0, 1], [1, 0]]
    finally:
        _backend.BACKENDS.pop("student", None)
    check.check(name, kernels=["convert.csr_to_coo"], name="free")
    assert "free" not in _backend.BACKENDS


def test_check_of_a_package_the_process_already_has_leaves_it_loaded():
    """Checking a name such as numpy (a slip, or a student's folder shadowing it) never
    unloads it: a compiled module loaded twice breaks NumPy and crashes torch."""
    numpy_module = sys.modules["numpy"]
    for name in ("numpy", "numpy"):  # (the second time too: it is no backend of ours to import anew)
        try:
            check.check(name, kernels=["convert.csr_to_coo"])
        except Exception:  # (whatever the checker says of numpy as a kernel package)
            pass
        assert sys.modules["numpy"] is numpy_module
    assert sr.tensor([1.0, 2.0]).sum().item() == 3.0


def test_exercise_refuses_a_module_name_python_has_and_says_so(tmp_path):
    for taken in ("numpy", "types", "sparse_ref", "sys"):
        with pytest.raises(ValueError, match="module Python already has"):
            exercises.write_starter("spmm", tmp_path / taken)
    from sparse_ref.__main__ import main
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("mine")
    assert main(["exercise", "spmm", str(tmp_path / "full")]) == 2
    assert (tmp_path / "full" / "x.txt").read_text() == "mine"


def test_check_of_a_package_that_does_not_compile_exits_2_with_a_message(tmp_path, capsys):
    from sparse_ref.__main__ import main
    name = package(tmp_path, {"spmm": "def spmm(:\n"})
    assert main(["check", str(tmp_path / name)]) == 2
    assert "SyntaxError" in capsys.readouterr().err
    other = package(tmp_path, {"spmm": "import sys\nsys.exit(0)\n"})
    assert main(["check", str(tmp_path / other)]) == 2
    assert "exit(0)" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="a crash there is an exit code, not SIGSEGV")
def test_the_command_checks_each_module_apart_a_crash_or_an_endless_loop_is_its_error(tmp_path, capsys):
    # python -m sparse_ref check runs each kernel module's checks in a process of its own:
    # a kernel that kills the process, or never returns, is reported, and the rest is checked
    from sparse_ref.__main__ import main
    name = package(tmp_path, {
        "convert": "import ctypes\ndef csr_to_coo(a_crow, out_row, n_threads=1):\n    ctypes.string_at(0)\n",
        "sddmm": "def sddmm(p_row, p_col, x, y, out, n_threads=1):\n    while True:\n        pass\n",
        "coalesce": COPY["coalesce"]})
    assert main(["check", str(tmp_path / name), "--timeout", "20"]) == 1
    out = capsys.readouterr().out
    assert "ERROR convert: the process checking it was killed by SIGSEGV" in out
    assert "ERROR sddmm: no answer in 20 s: an endless loop?" in out
    assert "PASS  coalesce.coalesce:" in out and "failed" in out.splitlines()[-1]


def test_a_child_that_does_not_end_and_a_tasks_module_that_fails_are_reported(tmp_path, capsys):
    # a kernel that leaves a thread running: its results arrive, its process is ended; a
    # tasks.py that fails as it is imported is named, and does not stop the kernels' check
    from sparse_ref.__main__ import main
    name = package(tmp_path, {
        "convert": COPY["convert"] + "import threading, time\n"
                   "threading.Thread(target=time.sleep, args=(3600,)).start()\n"})
    assert main(["check", str(tmp_path / name), "--kernel", "convert.csr_to_coo", "--timeout", "60"]) == 0
    assert "PASS  convert.csr_to_coo:" in capsys.readouterr().out
    bad = package(tmp_path, {"tasks": "def chunked_sum(values, n_chunks):\n    return undefined_name\nx = y\n",
                             "convert": COPY["convert"]})
    assert main(["check", str(tmp_path / bad), "--kernel", "convert.csr_to_coo"]) == 0
    assert main(["check", str(tmp_path / bad)]) == 2
    assert "tasks fails as it is imported: NameError" in capsys.readouterr().err
    assert main(["check", str(tmp_path / bad), "--timeout", "0"]) == 2


def test_helpers_named_as_the_references_are_not_noted(tmp_path):
    source = COPY["spmm"] + "def spmm_row(*args):\n    pass\n"
    results = check.check(package(tmp_path, {"spmm": source}), kernels=["spmm"])
    assert not [r for r in results if r.status == "note"], check.report(results)


def test_two_nans_that_differ_in_their_bits_match(tmp_path):
    # where 0 * nan meets inf * 0, which NaN survives is the hardware's choice
    source = COPY["spmm"] + textwrap.dedent("""
        from sparse_ref.reference.spmm import spmm as _ref
        import numpy as np
        def spmm(a_crow, a_col, a_val, b, out, n_threads=1):
            _ref(a_crow, a_col, a_val, b, out)
            if out.dtype.kind == "f":
                out[np.isnan(out)] = -np.abs(out[np.isnan(out)])  # the other sign
        """)
    results = check.check(package(tmp_path, {"spmm": source}), kernels=["spmm.spmm"])
    assert _result(results, "spmm.spmm").status == "pass"


# -- a registered backend's outputs: checked before anything keeps them, and never kept --------

COUNTS_DUPLICATES = """
import numpy as np

def coalesce(a_row, a_col, a_val, nrows, out_crow, out_col, out_val, out_pos, n_threads=1):
    # a typical bug: every stored entry counted in the row pointers, each column written once
    order = np.lexsort((a_col, a_row))
    out_crow[0] = 0
    out_crow[1:] = np.cumsum(np.bincount(a_row, minlength=nrows))
    for i in range(nrows):
        q, last = out_crow[i] - 1, None
        for p in order[out_crow[i]:out_crow[i + 1]]:
            if a_col[p] != last:
                q += 1
                out_col[q], out_val[q], last = a_col[p], a_val[p], a_col[p]
            else:
                out_val[q] += a_val[p]
            if len(out_pos):
                out_pos[p] = q
"""

NO_TRAILING_ROWS = """
import numpy as np

def coo_to_csr(a_row, nrows, out_crow, n_threads=1):
    counts = np.bincount(a_row)  # no minlength: the pointers of trailing empty rows never written
    out_crow[0] = 0
    out_crow[1:len(counts) + 1] = np.cumsum(counts)
"""

DROPS_DUPLICATES = """
import numpy as np
from sparse_ref.reference.coalesce import coalesce as reference

def coalesce(a_row, a_col, a_val, nrows, out_crow, out_col, out_val, out_pos, n_threads=1):
    # keeps the first of each duplicate: a wrong sum, in a valid structure
    seen, v = set(), np.array(a_val, copy=True)
    for p, key in enumerate(zip(a_row.tolist(), a_col.tolist())):
        if key in seen:
            v[p] = 0
        seen.add(key)
    reference(a_row, a_col, v, nrows, out_crow, out_col, out_val, out_pos)
"""


def test_a_registered_kernel_that_breaks_the_structure_is_refused_and_nothing_keeps_it(tmp_path):
    """A student's coalesce that leaves entries unwritten (np.empty's garbage as columns),
    or a coo_to_csr that leaves the last row pointers unwritten: the op raises
    KernelOutputError naming the kernel and the output, and the tensors of the session
    stay whole for the Cython kernels, which trust their arrays (before: a segfault in a
    later sr.sparse.mm, exit 139). In a child process, so a crash fails this test only."""
    script = textwrap.dedent(f"""
        import sys, warnings
        sys.path.insert(0, {str(tmp_path)!r})
        warnings.simplefilter("ignore")
        import numpy as np
        import sparse_ref as sr
        from sparse_ref._backend import KernelOutputError
        idx = np.array([[0, 3, 3, 7, 7, 7], [1, 2, 2, 5, 5, 9]])
        s = sr.sparse_coo_tensor(idx, [1., 2., 3., 4., 5., 6.], (30, 30), dtype=sr.float64)
        d = sr.ones(30, 2, dtype=sr.float64)
        want = sr.sparse.mm(s, d).numpy().tolist()
        c = s.coalesce()
        c.indices()  # (its CSR form is then made from its COO indices: coo_to_csr)
        for name in ("dups", "rows"):
            with sr.use_backend(name):
                for k, op in enumerate((lambda: sr.sparse.mm(s, d), lambda: s.coalesce(), lambda: s.to_sparse_csr(),
                                        lambda: sr.sparse.mm(s, s.t()), lambda: sr.sparse.mm(c, d))):
                    try:
                        op()
                    except KernelOutputError as exc:
                        print(name, k, "refused:", exc)
                    else:
                        print(name, k, "ran")
            assert sr.sparse.mm(s, d).numpy().tolist() == want
            fresh = sr.sparse_coo_tensor(idx, [1., 2., 3., 4., 5., 6.], (30, 30), dtype=sr.float64)
            assert sr.sparse.mm(fresh, d).numpy().tolist() == want
            assert sr.sparse.mm(s, s.t()).to_dense().numpy().sum() > 0
            assert sr.sparse.mm(c, d).numpy().tolist() == want
        print("whole")
    """)
    dups = package(tmp_path, {"coalesce": COUNTS_DUPLICATES})
    rows = package(tmp_path, {"convert": NO_TRAILING_ROWS})
    (tmp_path / "run.py").write_text(f"import sparse_ref as sr\nsr.register_backend('dups', {dups!r})\n"
                                     f"sr.register_backend('rows', {rows!r})\n" + script)
    from conftest import run_child
    done = run_child(["run.py"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert out.strip().endswith("whole")
    for k in range(4):  # each coalesces s first
        assert f"dups {k} refused: backend 'dups': coalesce.coalesce wrote out_col[" in out
    assert "outside 0..9 (an entry left unwritten?)" in out
    assert "dups 4 ran" in out  # c is coalesced
    assert "rows 4 refused: backend 'rows': convert.coo_to_csr wrote out_crow[" in out


ONEPASS_OUT_OF_RANGE = """
from sparse_ref.reference.spgemm import spgemm_onepass as reference

def spgemm_onepass(a_crow, a_col, a_val, b_crow, b_col, b_val, ncols, out_crow, out_col, out_val, n_threads=1):
    reference(a_crow, a_col, a_val, b_crow, b_col, b_val, ncols, out_crow, out_col, out_val)
    if out_crow[-1] > 0:
        out_col[0] = 10**6  # a column far outside C
"""

ONEPASS_TOO_MANY = """
from sparse_ref.reference.spgemm import spgemm_onepass as reference

def spgemm_onepass(a_crow, a_col, a_val, b_crow, b_col, b_val, ncols, out_crow, out_col, out_val, n_threads=1):
    reference(a_crow, a_col, a_val, b_crow, b_col, b_val, ncols, out_crow, out_col, out_val)
    out_crow[-1] = len(out_col) + 5  # more entries than the arrays hold
"""


def test_a_registered_one_pass_that_breaks_the_structure_is_refused(tmp_path):
    """A student's spgemm_onepass whose C has a column out of range, or more entries than
    its arrays: sr.sparse.mm refuses it (KernelOutputError naming the kernel) before any
    tensor holds it (before: a column of 10**6 passed, and the next product segfaulted).
    In a child process, so a crash fails this test only."""
    script = textwrap.dedent(f"""
        import sys, warnings
        sys.path.insert(0, {str(tmp_path)!r})
        warnings.simplefilter("ignore")
        import numpy as np
        import sparse_ref as sr
        from sparse_ref._backend import KernelOutputError
        a = sr.tensor([[1., 0., 2.], [0., 3., 0.], [4., 0., 5.]]).to_sparse()
        want = (a.to_dense() @ a.to_dense()).numpy().tolist()
        for name in ("range", "many"):
            with sr.use_backend(name):
                try:
                    c = sr.sparse.mm(a, a)
                except KernelOutputError as exc:
                    print(name, "refused:", exc)
                else:
                    print(name, "ran", c.indices().tolist())
            c = sr.sparse.mm(a, a)
            assert sr.sparse.mm(c, sr.ones(3, 2)).numpy().tolist() == (np.array(want) @ np.ones((3, 2))).tolist()
        print("whole")
    """)
    bad_range = package(tmp_path, {"spgemm": ONEPASS_OUT_OF_RANGE})
    bad_count = package(tmp_path, {"spgemm": ONEPASS_TOO_MANY})
    (tmp_path / "run.py").write_text(f"import sparse_ref as sr\nsr.register_backend('range', {bad_range!r})\n"
                                     f"sr.register_backend('many', {bad_count!r})\n" + script)
    from conftest import run_child
    done = run_child(["run.py"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert out.strip().endswith("whole"), out
    assert "range refused: backend 'range': spgemm.spgemm_onepass wrote out_col[" in out, out
    assert "many refused: backend 'many': spgemm.spgemm_onepass wrote out_crow[-1] = " in out, out


def test_what_a_registered_backend_makes_is_not_kept_on_a_tensor(tmp_path):
    """Under a registered backend a tensor's coalesced and CSR forms are made by its kernels
    on every op, not taken from what the built-in kernels kept, and not kept for after the
    ``with`` block (before: a wrong coalesce's sum stayed on the user's tensor, and a
    tensor multiplied before never reached the student's kernel)."""
    name = package(tmp_path, {"coalesce": DROPS_DUPLICATES})
    with pytest.warns(UserWarning):
        sr.register_backend("drops", name)
    idx = np.array([[0, 3, 3, 7], [1, 2, 2, 5]])
    d = sr.ones(30, 2, dtype=sr.float64)
    right = [1.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 4.0]
    for multiplied_before in (False, True):
        s = sr.sparse_coo_tensor(idx, [1.0, 2.0, 3.0, 4.0], (30, 30), dtype=sr.float64)
        if multiplied_before:
            assert sr.sparse.mm(s, d).numpy()[:8, 0].tolist() == right
        with sr.use_backend("drops"):
            assert sr.sparse.mm(s, d).numpy()[:8, 0].tolist() == [1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 4.0]
            assert s.to_sparse_csr().values().tolist() == [1.0, 2.0, 4.0]
        assert sr.sparse.mm(s, d).numpy()[:8, 0].tolist() == right
        assert s.to_sparse_csr().values().tolist() == [1.0, 5.0, 4.0]
        assert s.coalesce().values().tolist() == [1.0, 5.0, 4.0]


def test_registering_the_library_itself_again_reimports_nothing():
    """check("sparse_ref") run twice registered it twice, and the second time deleted
    every sparse_ref module from sys.modules: tensors made before were then refused as
    foreign ("mat1 must be a sparse_ref Tensor or SparseTensor, got SparseTensor")."""
    a = sr.randn(3, 3).to_sparse()
    modules = {name: mod for name, mod in sys.modules.items() if name.startswith("sparse_ref")}
    with pytest.warns(UserWarning):
        for _ in range(2):
            sr.register_backend("again", "sparse_ref")
    sr.register_backend("again_ref", "sparse_ref.reference")
    sr.register_backend("again_ref", "sparse_ref.reference")
    assert all(sys.modules.get(name) is mod for name, mod in modules.items())
    assert sr.sparse.mm(a, sr.ones(3, 1)).shape == (3, 1)


def test_a_gradient_failure_names_the_other_kernel_that_raised(tmp_path):
    """A correct spmm beside an unfinished coalesce failed "spmm (gradients)" with the
    coalesce's NotImplementedError and no word of where (a probe)."""
    stub = ("def coalesce(a_row, a_col, a_val, nrows, out_crow, out_col, out_val, out_pos, n_threads=1):\n"
            "    raise NotImplementedError('coalesce.coalesce: write me')\n")
    name = package(tmp_path, {"spmm": COPY["spmm"], "coalesce": stub})
    results = check.check(name, kernels=["spmm.spmm"])
    grad = [r for r in results if r.kernel == "spmm (gradients)"][0]
    assert [r.status for r in results if r.kernel == "spmm.spmm"] == ["pass"]
    assert grad.status == "fail" and grad.detail.endswith(
        "NotImplementedError: coalesce.coalesce: write me (raised in your coalesce.py, line 2, in coalesce, "
        "not in spmm: fix that one first)"), grad.detail


OVERCOUNTS = """
from sparse_ref.reference.spgemm import spgemm_bounds  # noqa: F401

def spgemm_symbolic(a_crow, a_col, b_crow, b_col, ncols, out_crow, n_threads=1):
    # counts the products, not the distinct columns: the (reference) numeric pass then
    # leaves slots unwritten
    out_crow[0] = 0
    for i in range(len(a_crow) - 1):
        out_crow[i + 1] = out_crow[i] + sum(b_crow[a_col[q] + 1] - b_crow[a_col[q]]
                                            for q in range(a_crow[i], a_crow[i + 1]))
"""

ROWS_ALL_ZERO = """
def csr_to_coo(a_crow, out_row, n_threads=1):
    out_row[:] = 0  # every entry in row 0: in range and in order, and wrong
"""


def test_the_guard_checks_what_a_fallback_kernel_wrote_from_the_packages_counts(tmp_path):
    """A review: a student's spgemm_symbolic that counts products passed the guard (its
    row pointers go up), the reference's numeric pass left the extra slots unwritten, and
    the product kept columns up to 4.6e18 (a later Cython mm: exit 139). And a csr_to_coo
    writing every row as 0 passed (in range, in order): the rows are now compared whole."""
    script = textwrap.dedent(f"""
        import sys, warnings
        sys.path.insert(0, {str(tmp_path)!r})
        warnings.simplefilter("ignore")
        import sparse_ref as sr
        from sparse_ref._backend import KernelOutputError
        sr.register_backend("over", {package(tmp_path, {"spgemm": OVERCOUNTS})!r})
        sr.register_backend("rows", {package(tmp_path, {"convert": ROWS_ALL_ZERO})!r})
        sr.manual_seed(0)
        a = (sr.rand(60, 60) < 0.2).float().to_sparse()
        c = sr.sparse.mm(a, a).to_sparse_csr()
        for name, op in (("over", lambda: sr.sparse.mm(a, a)), ("rows", lambda: c.to_sparse())):
            with sr.use_backend(name):
                try:
                    op()
                except KernelOutputError as exc:
                    print(name, "refused:", exc)
        print(sr.sparse.mm(a, a).to_dense().sum().item() > 0, "whole")
    """)
    (tmp_path / "run.py").write_text(script)
    from conftest import run_child
    done = run_child(["run.py"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "over refused: backend 'over': spgemm.spgemm_numeric wrote out_col[" in done.stdout
    assert "or spgemm_symbolic counted more entries in that row than the row's distinct columns" in done.stdout
    assert "rows refused: backend 'rows': convert.csr_to_coo wrote out_row[" in done.stdout
    assert "where the row pointers put entry" in done.stdout and done.stdout.strip().endswith("True whole")


def test_a_kernel_that_returns_its_result_instead_of_writing_it_is_told_so(tmp_path):
    source = COPY["spmm"] + textwrap.dedent("""
        import numpy as np
        def spmm(a_crow, a_col, a_val, b, out, n_threads=1):
            result = np.zeros_like(out)
            for i in range(len(a_crow) - 1):
                for q in range(a_crow[i], a_crow[i + 1]):
                    result[i] = result[i] + a_val[q] * b[a_col[q]]
            return result  # out never written
        """)
    results = check.check(package(tmp_path, {**COPY, "spmm": source}), kernels=["spmm.spmm"])
    line = str([r for r in results if r.kernel == "spmm.spmm"][0]).splitlines()[0]
    assert "never written" in line and line.endswith(
        "(and your kernel returned a ndarray: a kernel writes into its out arrays and returns nothing)"), line


PLANTED = {
    "stash": ("coalesce", """
        import numpy as np
        from sparse_ref.reference import coalesce as ref
        KEPT = []
        def coalesce(a_row, a_col, a_val, nrows, out_crow, out_col, out_val, out_pos, n_threads=1):
            for arr in KEPT:  # last call's output, kept as scratch: written after the op returned
                arr[:] = 1 << 40
            KEPT.clear()
            ref.coalesce(a_row, a_col, a_val, nrows, out_crow, out_col, out_val, out_pos, n_threads)
            KEPT.append(out_col)
        """),
    "dtype": ("coalesce", """
        import numpy as np
        from sparse_ref.reference import coalesce as ref
        def coalesce(a_row, a_col, a_val, nrows, out_crow, out_col, out_val, out_pos, n_threads=1):
            tmp = np.empty_like(out_col)
            ref.coalesce(a_row, a_col, a_val, nrows, out_crow, tmp, out_val, out_pos, n_threads)
            out_col.dtype = np.float64  # the int64 columns' memory, written as floats
            out_col[:] = tmp.astype(np.float64)
        """),
    "perm": ("convert", """
        from sparse_ref.reference import convert as ref
        from sparse_ref.reference.convert import coo_to_csr, csr_to_coo, round_to_float16, round_to_bfloat16
        def csr_transpose(a_crow, a_col, ncols, out_crow, out_col, out_perm, n_threads=1):
            ref.csr_transpose(a_crow, a_col, ncols, out_crow, out_col, out_perm, n_threads)
            out_perm[:] = 0  # in range, wrong: the gradient of B took every value from entry 0
        """),
    "pos": ("coalesce", """
        from sparse_ref.reference import coalesce as ref
        def coalesce(a_row, a_col, a_val, nrows, out_crow, out_col, out_val, out_pos, n_threads=1):
            ref.coalesce(a_row, a_col, a_val, nrows, out_crow, out_col, out_val, out_pos, n_threads)
            if out_pos.shape[0] and out_crow[-1]:
                out_pos[:] = out_crow[-1] - 1 - out_pos  # reversed: in range, wrong
        """),
    "inplace": ("spmm", """
        from sparse_ref.reference import spmm as ref
        from sparse_ref.reference.spmm import spmm_reduce
        def spmm(a_crow, a_col, a_val, b, out, n_threads=1):
            b *= 2  # scales the input in place, by mistake
            ref.spmm(a_crow, a_col, a_val, b, out, n_threads)
        """),
}


def _run_planted(tmp_path, planted: dict, body: str) -> str:
    """Register each planted kernel package in a child process, run ``body`` there (with
    ``np``, ``sr``, ``names`` and ``attempt(label, op)``, which prints what op did), and
    return its output (a crash would end the child, not the tests)."""
    names = {k: package(tmp_path, {module: textwrap.dedent(src)}) for k, (module, src) in planted.items()}
    script = textwrap.dedent(f"""
        import sys, warnings
        sys.path.insert(0, {str(tmp_path)!r})
        warnings.simplefilter("ignore")
        import numpy as np
        import sparse_ref as sr
        names = {names!r}
        for k, pkg in names.items():
            sr.register_backend(k, pkg)
        def attempt(label, op):
            try:
                out = op()
                print(label, "ran", *([int(np.asarray(out.indices())[1].max())] if hasattr(out, "indices") else []))
                return out
            except Exception as exc:
                print(label, type(exc).__name__, exc)
    """) + textwrap.dedent(body)
    (tmp_path / "run.py").write_text(script)
    from conftest import run_child
    done = run_child(["run.py"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_a_registered_kernel_works_on_arrays_of_its_own(tmp_path):
    """A second review: a kernel that kept its output and wrote it on the next call, or
    changed the output's dtype (out_col.dtype = float64), passed the guard and left
    columns of 2**40 in a tensor (a later Cython mm: exit 139); a csr_transpose whose
    out_perm was all 0, a coalesce whose out_pos was reversed, passed (in range) and gave
    wrong gradients; a kernel that wrote its input B doubled the user's tensor. Kernels
    now get private copies of the inputs and scratch outputs, checked (the permutation
    and the positions whole) before they are copied to the tensor's arrays."""
    out = _run_planted(tmp_path, PLANTED, """
        dup = sr.sparse_coo_tensor([[0, 1, 1, 0], [1, 0, 0, 1]], [1., 2., 3., 4.], (2, 2), dtype=sr.float64)
        three = sr.sparse_coo_tensor([[0, 0, 1], [1, 1, 0], [2, 2, 1]], [1., 2., 3.], (2, 2, 3), dtype=sr.float64)
        a = sr.sparse_coo_tensor([[0, 1, 2], [1, 2, 0]], [1., 2., 3.], (3, 3), dtype=sr.float64)
        b = sr.tensor(np.arange(6.).reshape(3, 2), requires_grad=True)
        with sr.use_backend("stash"):
            kept = [dup.coalesce() for _ in range(3)]
        with sr.use_backend("dtype"):
            attempt("dtype", lambda: dup.coalesce())
        def grad_b():
            a.detach().requires_grad_(False)
            sr.sparse.mm(a, b).sum().backward()
        with sr.use_backend("perm"):
            attempt("perm", grad_b)
        with sr.use_backend("pos"):
            attempt("pos", lambda: three.coalesce())
        before = b.detach().numpy().copy()
        with sr.use_backend("inplace"):
            attempt("inplace", lambda: sr.sparse.mm(a, b))
        print("b unchanged", bool((b.detach().numpy() == before).all()))
        for c in kept:
            assert c.indices().tolist() == [[0, 1], [1, 0]] and c.values().tolist() == [5.0, 5.0]
            assert sr.sparse.mm(c, sr.ones(2, 1, dtype=sr.float64)).tolist() == [[5.0], [5.0]]
        print("whole")
    """)
    assert "dtype KernelOutputError backend 'dtype': coalesce.coalesce wrote out_col is not the array it was given" in out
    assert "perm KernelOutputError backend 'perm': convert.csr_transpose wrote out_perm[" in out
    assert "pos KernelOutputError backend 'pos': coalesce.coalesce wrote out_pos[" in out
    assert "inplace KernelOutputError backend 'inplace': spmm.spmm wrote one of its inputs" in out
    assert "b unchanged True" in out
    assert out.strip().endswith("whole"), out


PLANTED_AGAIN = {
    "rewritable": ("coalesce", """
        from sparse_ref.reference import coalesce as ref
        def coalesce(a_row, a_col, a_val, nrows, out_crow, out_col, out_val, out_pos, n_threads=1):
            ref.coalesce(a_row, a_col, a_val, nrows, out_crow, out_col, out_val, out_pos, n_threads)
            a_col.flags.writeable = True  # its copy made writable: the guard read its bound from it
            a_col[0] = 10**12
            out_col[int(out_crow[-1]) - 1] = 10**12  # the last column: still ascending
        """),
    "crow": ("spgemm", """
        from sparse_ref.reference import spgemm as ref
        from sparse_ref.reference.spgemm import spgemm_bounds, spgemm_symbolic, spgemm_masked
        def spgemm_numeric(a_crow, a_col, a_val, b_crow, b_col, b_val, ncols, crow, out_col, out_val, n_threads=1):
            ref.spgemm_numeric(a_crow, a_col, a_val, b_crow, b_col, b_val, ncols, crow, out_col, out_val, n_threads)
            crow.flags.writeable = True
            crow[:] = crow[0]  # no entries to check, in the guard's view of its copy
            out_col[:] = 10**12
        """),
    "outside": ("spgemm", """
        from sparse_ref.reference import spgemm as ref
        from sparse_ref.reference.spgemm import spgemm_bounds, spgemm_symbolic, spgemm_masked
        CALLS = []
        def spgemm_numeric(a_crow, a_col, a_val, b_crow, b_col, b_val, ncols, crow, out_col, out_val, n_threads=1):
            CALLS.append(1)
            ref.spgemm_numeric(a_crow, a_col, a_val, b_crow, b_col, b_val, ncols, crow, out_col, out_val, n_threads)
            out_col[:int(crow[0])] = 2**40  # the rows of the chunks before, and after
            out_col[int(crow[-1]):] = 2**40
        """),
    "bounds": ("spgemm", """
        from sparse_ref.reference import spgemm as ref
        from sparse_ref.reference.spgemm import spgemm_symbolic, spgemm_numeric, spgemm_masked
        def spgemm_bounds(a_crow, a_col, b_crow, out_flops, out_longest, n_threads=1):
            ref.spgemm_bounds(a_crow, a_col, b_crow, out_flops, out_longest, n_threads)
            out_flops[:] = 1 << 24  # every row a chunk of its own
        """),
    "extra": ("coalesce", """
        from sparse_ref.reference import coalesce as ref
        def coalesce(a_row, a_col, a_val, nrows, out_crow, out_col, out_val, out_pos, n_threads=1):
            ref.coalesce(a_row, a_col, a_val, nrows, out_crow, out_col, out_val, out_pos, n_threads)
            if not out_pos.shape[0] and out_crow[-1] < out_col.shape[0]:  # an entry no input has
                out_col[out_crow[-1]] = out_col[out_crow[-1] - 1] + 1 if out_crow[-1] else 0
                out_val[out_crow[-1]] = 42.0
                out_crow[-1] += 1
        """),
}


def test_a_registered_kernel_cannot_reach_a_tensor_past_the_guard(tmp_path):
    """A probe (2026-12-03): three ways past the guard ended in a Cython mm reading column
    10**12 (exit 139) -- a kernel that made its input copies writable and changed what the
    checks compared with; a numeric pass of a product in chunks that wrote the rows of the
    other chunks (the guard checked the chunk's rows and copied the whole array); and a
    thread writing the output after the check. Also unchecked: spgemm_bounds' outputs, and
    a coalesce's extra entry when no positions were asked for. Now the checks read the
    caller's inputs and a copy of the outputs taken when the kernel returns, and a chunk's
    part only is taken back."""
    out = _run_planted(tmp_path, PLANTED_AGAIN, """
        from sparse_ref import _products
        rng = np.random.default_rng(0)
        a = sr.sparse_coo_tensor(np.stack([rng.integers(0, 40, 300), rng.integers(0, 40, 300)]),
                                 rng.standard_normal(300), (40, 40), dtype=sr.float64)
        c = a.coalesce()
        with sr.use_backend("rewritable"):
            attempt("rewritable", a.coalesce)
        with sr.use_backend("crow"):
            attempt("crow", lambda: sr.sparse.mm(c, c.t(), max_nnz=10**6))
        with sr.use_backend("bounds"):
            attempt("bounds", lambda: sr.sparse.mm(c, c, max_nnz=10**6))  # (max_nnz: the bounds run)
        with sr.use_backend("extra"):
            attempt("extra", a.coalesce)
        _products.CHUNK_WORK = 16  # a product in chunks
        with sr.use_backend("outside"):
            out = attempt("outside", lambda: sr.sparse.mm(c, c))
        mod = sys.modules[names["outside"] + ".spgemm"]
        want = sr.sparse.mm(c, c)
        print("chunks", len(mod.CALLS) > 2, "same", np.array_equal(np.asarray(out.indices()), np.asarray(want.indices()))
              and np.array_equal(np.asarray(out.values()), np.asarray(want.values())))
        print("whole")
    """)
    assert "rewritable KernelOutputError backend 'rewritable': coalesce.coalesce wrote out_col[" in out, out
    assert "crow KernelOutputError backend 'crow': spgemm.spgemm_numeric wrote out_col[0] = 1000000000000" in out, out
    assert "bounds KernelOutputError backend 'bounds': spgemm.spgemm_bounds wrote out_flops[0] = 16777216" in out, out
    assert "extra KernelOutputError backend 'extra': coalesce.coalesce wrote out_col[" in out, out
    assert "outside ran 39" in out and "chunks True same True" in out, out
    assert out.strip().endswith("whole"), out

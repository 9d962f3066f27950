"""sr.viz: spy draws the stored entries (explicit zeros apart), trace records a reference
kernel's steps without changing what it computes, and refuses a compiled kernel."""

import sys

import numpy as np
import pytest

import sparse_ref as sr
from sparse_ref.reference import coalesce as ref_coalesce
from sparse_ref.reference import spmm as ref_spmm

# -- spy --------------------------------------------------------------------------------------


@pytest.fixture
def plt():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def points(ax, label):
    line = next((line for line in ax.lines if line.get_label() == label), None)
    if line is None:
        return set()
    return {(int(y), int(x)) for x, y in zip(line.get_xdata(), line.get_ydata())}


def test_spy_marks_stored_entries_and_explicit_zeros_apart(plt):
    s = sr.sparse_coo_tensor([[0, 1, 2, 2], [2, 0, 1, 2]], [1., 0., 3., -4.], (3, 4))
    ax = sr.viz.spy(s)
    assert isinstance(ax, plt.Axes)
    assert points(ax, "stored") == {(0, 2), (2, 1), (2, 2)}
    assert points(ax, "explicit zero") == {(1, 0)}
    assert ax.get_xlim() == (-0.5, 3.5) and ax.get_ylim() == (2.5, -0.5)  # row 0 on top


def test_spy_of_a_csr_and_a_dense_matrix(plt):
    dense = np.array([[0., 2.], [3., 0.], [0., 0.]])
    csr = sr.tensor(dense).to_sparse_csr()
    assert points(sr.viz.spy(csr), "stored") == {(0, 1), (1, 0)}
    ax = sr.viz.spy(sr.tensor(dense))
    assert points(ax, "nonzero") == {(0, 1), (1, 0)}
    assert points(ax, "explicit zero") == set()  # a dense matrix stores no explicit zeros


def test_spy_draws_on_the_axes_given(plt):
    _, (left, right) = plt.subplots(1, 2)
    assert sr.viz.spy(sr.eye(3).to_sparse(), ax=right, values=True) is right
    assert len(left.lines) == 0 and points(right, "stored") == {(0, 0), (1, 1), (2, 2)}
    assert [t.get_text() for t in right.texts] == ["1", "1", "1"]


def test_spy_refuses_a_tensor_that_is_not_a_matrix(plt):
    with pytest.raises(ValueError, match="2-D"):
        sr.viz.spy(sr.ones(3))


# -- trace ------------------------------------------------------------------------------------

# A 3 x 3 matrix with a duplicate (1, 0), an unsorted row and an explicit zero.
ROW = np.array([1, 0, 1, 2, 0], dtype=np.int64)
COL = np.array([0, 2, 0, 1, 0], dtype=np.int64)
VAL = np.array([1.5, 2., 3., 0., -1.])


def run_coalesce(kernel, **kw):
    out = (np.zeros(4, np.int64), np.zeros(5, np.int64), np.zeros(5), np.zeros(5, np.int64))
    steps = kernel(ref_coalesce.coalesce, ROW, COL, VAL, 3, *out, **kw) if kw or kernel is sr.viz.trace \
        else kernel(ROW, COL, VAL, 3, *out)
    return steps, out


def csr_and_b():
    c = sr.sparse_coo_tensor(np.stack([ROW, COL]), VAL, (3, 3), dtype=sr.float64).to_sparse_csr()
    b = np.arange(6.).reshape(3, 2) - 2.5
    return c.crow_indices().numpy(), c.col_indices().numpy(), c.values().numpy(), b


def test_trace_of_coalesce_ends_with_the_kernels_outputs():
    steps, (crow, col, val, pos) = run_coalesce(sr.viz.trace)
    assert isinstance(steps, sr.viz.Trace) and not steps.truncated
    assert [s["step"] for s in steps] == list(range(1, len(steps) + 1))
    nnz = crow[-1]
    assert (crow.tolist(), col[:nnz].tolist(), val[:nnz].tolist()) == ([0, 2, 3, 4], [0, 2, 0, 1], [-1., 2., 4.5, 0.])
    # the accumulator is out_val: its last recorded value is what the kernel returned
    assert np.array_equal(steps.values("out_val")[-1], val)
    assert np.array_equal(steps.values("out_pos")[-1], pos)
    # each duplicate sum appears as a step: 1.5, then 1.5 + 3
    sums = [s["out_val"][2] for s in steps if "out_val" in s and "out_val" in s["changed"]]
    assert 1.5 in sums and 4.5 in sums


def test_trace_of_spmm_has_one_accumulator_per_row_equal_to_the_output():
    a_crow, a_col, a_val, b = csr_and_b()
    out = np.zeros((3, 2))
    steps = sr.viz.trace(ref_spmm.spmm, a_crow, a_col, a_val, b, out)
    expected = sr.sparse.mm(sr.sparse_csr_tensor(a_crow, a_col, a_val, (3, 3)), sr.tensor(b)).numpy()
    assert np.array_equal(out, expected)
    accumulators = steps.values("acc")
    for i in range(3):  # some step's accumulator holds row i exactly
        assert any(np.array_equal(acc, expected[i]) for acc in accumulators), i
    assert {"i", "q"} <= {name for s in steps for name in s}  # the loop variables are recorded
    text = str(steps)
    assert text.startswith("trace of sparse_ref.reference.spmm.spmm:") and "acc=" in text


def test_trace_does_not_change_the_kernels_results():
    _, traced = run_coalesce(sr.viz.trace)
    _, plain = run_coalesce(ref_coalesce.coalesce)
    for t, p in zip(traced, plain):
        assert t.tobytes() == p.tobytes()
    a_crow, a_col, a_val, b = csr_and_b()
    outs = [np.zeros((3, 2)), np.zeros((3, 2))]
    sr.viz.trace(ref_spmm.spmm, a_crow, a_col, a_val, b, outs[0])
    ref_spmm.spmm(a_crow, a_col, a_val, b, outs[1])
    assert outs[0].tobytes() == outs[1].tobytes()


def test_trace_steps_are_copies_that_later_steps_do_not_change():
    steps, _ = run_coalesce(sr.viz.trace)
    first = next(s["out_val"] for s in steps if "out_val" in s)
    assert first.tolist() == [0.] * 5  # as it was when first seen, not as it ended


def test_trace_caps_the_steps_and_still_runs_the_kernel_to_the_end():
    steps, (_, _, val, _) = run_coalesce(sr.viz.trace, max_steps=5)
    assert len(steps) == 5 and steps.truncated
    assert val[:4].tolist() == [-1., 2., 4.5, 0.]
    assert "stopped recording after 5 steps" in str(steps)


def test_trace_restores_the_previous_trace_hook():
    calls = []

    def hook(frame, event, arg):
        calls.append(event)

    outer = sys.gettrace()
    sys.settrace(hook)
    try:
        run_coalesce(sr.viz.trace)
        assert sys.gettrace() is hook
    finally:
        sys.settrace(outer)


def test_trace_refuses_a_kernel_that_is_not_a_reference_kernel():
    kernels = pytest.importorskip("sparse_ref._kernels.spmm")
    with pytest.raises(TypeError, match=r"compiled Cython.*sparse_ref\.reference\.spmm\.spmm"):
        sr.viz.trace(kernels.spmm, 1)
    with pytest.raises(TypeError, match="reference kernels of sparse_ref.reference only"):
        sr.viz.trace(np.sum, [1.0])
    with pytest.raises(TypeError, match="reference kernels"):
        sr.viz.trace(lambda x: x, 1)

"""`python -m sparse_ref demo` runs and shows the two paths agreeing."""

import io

from conftest import run_child
from sparse_ref.__main__ import demo


def test_demo_reports_agreement():
    out = io.StringIO()
    assert demo(out) == 0
    text = out.getvalue()
    assert "forward and backward, reference and cython paths agree bit for bit: True" in text
    assert "coalesce(): reference and cython agree bit for bit: True" in text
    assert "a = sr.randn(2, 3).to_sparse().requires_grad_(True)" in text
    assert "a.grad (coalesced: True)" in text


def test_demo_runs_as_a_module_from_another_folder(tmp_path):
    run = run_child(["-m", "sparse_ref", "demo"], tmp_path)
    assert run.returncode == 0, run.stderr
    assert "agree bit for bit: True" in run.stdout


def test_no_command_prints_the_commands_and_where_to_start(capsys):
    """(a new user's trial) `python -m sparse_ref` alone said only "the following arguments
    are required: command"."""
    from sparse_ref.__main__ import main

    assert main([]) == 2
    out = capsys.readouterr().out
    assert "demo" in out and "check" in out and "exercise" in out and "start with: python -m sparse_ref demo" in out

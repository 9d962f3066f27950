"""`python -m sparse_ref demo` runs and shows the two paths agreeing."""

import io
import subprocess
import sys

from sparse_ref.__main__ import demo


def test_demo_reports_agreement():
    out = io.StringIO()
    assert demo(out) == 0
    text = out.getvalue()
    assert "forward and backward, reference and cython paths agree bit for bit: True" in text
    assert "coalesce(): reference and cython agree bit for bit: True" in text
    assert "a = sr.randn(2, 3).to_sparse().requires_grad_(True)" in text
    assert "a.grad (coalesced: True)" in text


def test_demo_runs_as_a_module():
    run = subprocess.run([sys.executable, "-m", "sparse_ref", "demo"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "agree bit for bit: True" in run.stdout

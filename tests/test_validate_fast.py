"""The quick accept of ``sparse.mm`` (``_validate.plain_sparse_dense``) never lets through
what the full checks (``_validate.mm_operands``) refuse, and its path gives the same result.

A small product spends most of its time in Python; the commonest call (2-D COO times 2-D
dense, same dtype) skips the general checks. Here every operand pair of a wide catalogue
goes through both: a True from the quick accept must mean the full checks pass with the
plain sum, on an operand that is not a batch.
"""

import itertools

import numpy as np
import pytest

import sparse_ref as sr
from sparse_ref import _validate


def _operands():
    rng = np.random.default_rng(0)
    dense = rng.standard_normal((3, 4))
    coo = sr.tensor(dense).to_sparse()
    out = {
        "coo 3x4 f64": coo,
        "coo 3x4 uncoalesced": sr.sparse_coo_tensor([[0, 0, 2], [1, 1, 3]], [1.0, 2.0, 3.0], (3, 4)),
        "coo 4x2 f64": sr.tensor(rng.standard_normal((4, 2))).to_sparse(),
        "coo 4x2 f32": sr.tensor(rng.standard_normal((4, 2)).astype(np.float32)).to_sparse(),
        "coo 4x2 int64": sr.sparse_coo_tensor([[0, 3], [1, 0]], [1, 2], (4, 2)),
        "coo 3x4 empty": sr.sparse_coo_tensor(np.zeros((2, 0), dtype=np.int64), np.zeros(0), (3, 4)),
        "coo 0x4": sr.sparse_coo_tensor(np.zeros((2, 0), dtype=np.int64), np.zeros(0), (0, 4)),
        "csr 3x4": coo.to_sparse_csr(),
        "hybrid 3x4x2": sr.sparse_coo_tensor([[0, 2], [1, 3]], rng.standard_normal((2, 2)), (3, 4, 2)),
        "hybrid 4 (x2)": sr.sparse_coo_tensor([[0, 2]], rng.standard_normal((2, 2)), (4, 2)),
        "batch 2x3x4": sr.sparse_coo_tensor([[0, 1], [0, 2], [1, 3]], [1.0, 2.0], (2, 3, 4)),
        "1-D sparse": sr.sparse_coo_tensor([[1]], [1.0], (4,)),
        "dense 4x2 f64": sr.tensor(rng.standard_normal((4, 2))),
        "dense 4x2 f32": sr.tensor(rng.standard_normal((4, 2)).astype(np.float32)),
        "dense 4x2 int64": sr.tensor(np.arange(8).reshape(4, 2)),
        "dense 4x2 grad": sr.randn(4, 2, requires_grad=True),
        "dense 4x0": sr.tensor(np.zeros((4, 0))),
        "dense 3x2": sr.tensor(rng.standard_normal((3, 2))),
        "dense 4": sr.tensor(rng.standard_normal(4)),
        "dense 2x4x2": sr.tensor(rng.standard_normal((2, 4, 2))),
        "dense 4x2 non-contiguous": sr.tensor(rng.standard_normal((2, 4))).t(),
        "ndarray 4x2": rng.standard_normal((4, 2)),
        "float": 2.0,
        "None": None,
    }
    try:
        out["coo 4x2 f16"] = out["coo 4x2 f64"].to(sr.float16)
        out["dense 4x2 f16"] = out["dense 4x2 f64"].to(sr.float16)
        out["dense 2x2 f16"] = sr.tensor(rng.standard_normal((2, 2))).to(sr.float16)
    except Exception:  # pragma: no cover - float16 is always there; keep the catalogue going
        pass
    return out


OPERANDS = _operands()
PAIRS = list(itertools.product(OPERANDS, repeat=2))


@pytest.mark.parametrize("name1,name2", PAIRS, ids=[f"{a}|{b}" for a, b in PAIRS])
def test_the_quick_accept_lets_through_only_what_the_full_checks_accept(name1, name2):
    mat1, mat2 = OPERANDS[name1], OPERANDS[name2]
    if not _validate.plain_sparse_dense(mat1, mat2):
        return  # the general path decides; its messages are tested elsewhere
    assert not _validate.is_batch(mat1) and not _validate.is_batch(mat2)
    assert _validate.mm_operands(mat1, mat2, None, "mm") == "sum"


def test_the_quick_accept_takes_the_commonest_calls():
    # so the test above is not vacuous: these pairs do go the quick way
    taken = {pair for pair in PAIRS if _validate.plain_sparse_dense(*(OPERANDS[n] for n in pair))}
    assert ("coo 3x4 f64", "dense 4x2 f64") in taken
    assert ("coo 3x4 uncoalesced", "dense 4x2 grad") in taken
    assert ("coo 3x4 f64", "dense 4x2 non-contiguous") in taken
    assert ("coo 4x2 f16", "dense 2x2 f16") in taken
    assert ("csr 3x4", "dense 4x2 f64") not in taken  # CSR goes the general way
    assert ("coo 3x4 f64", "dense 4x2 f32") not in taken
    assert ("coo 3x4 f64", "dense 3x2") not in taken


@pytest.mark.parametrize("name1,name2", [p for p in PAIRS if _validate.plain_sparse_dense(*(OPERANDS[n] for n in p))],
                         ids=lambda x: x)
def test_the_quick_path_gives_the_general_paths_result(name1, name2):
    from sparse_ref.autograd import sparse_ops as ops

    mat1, mat2 = OPERANDS[name1], OPERANDS[name2]
    quick = sr.sparse.mm(mat1, mat2)
    general = ops.SparseMm.apply(mat1, mat2, _validate.mm_operands(mat1, mat2, None, "mm"))
    np.testing.assert_array_equal(quick.detach().numpy(), general.detach().numpy())
    np.testing.assert_array_equal((mat1 @ mat2).detach().numpy(), general.detach().numpy())  # matmul's quick way
    assert quick.requires_grad == general.requires_grad
    assert type(quick.grad_fn) is type(general.grad_fn)


def test_a_refused_call_still_names_its_problem():
    # the quick accept says no; the full checks then raise the same messages as before
    coo, dense32 = OPERANDS["coo 3x4 f64"], OPERANDS["dense 4x2 f32"]
    with pytest.raises(TypeError, match="mat1 dtype float64 does not match mat2 dtype float32"):
        sr.sparse.mm(coo, dense32)
    with pytest.raises(Exception, match=r"shapes cannot be multiplied \(3x4 and 3x2\)"):
        sr.sparse.mm(coo, OPERANDS["dense 3x2"])

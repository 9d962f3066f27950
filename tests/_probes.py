"""Probe tables that tests/test_fuzz.py runs in a child process, because a failure here can
be the death of the process (a segfault or a bus error in a kernel), not an exception.

    python _probes.py TABLE [START [STOP]]

runs the probes of TABLE ("malformed", "aliasing" or "unlock") from index START on (up
to STOP). For every probe
it prints, flushed, a ``REACHED`` line before and a ``RESULT`` line (JSON) after, so the
parent can name the probe that killed the child and start a new child after it.

- ``malformed``: bad calls. A probe marked "raise" must raise an ordinary exception
  (ValueError, TypeError, IndexError, RuntimeError, MemoryError); one marked "any" may also
  return (it is valid, if odd, input), but must not raise anything else.
- ``aliasing``: build a tensor from arrays, change the caller's arrays (or write through the
  arrays the tensor hands out), then run the ops. Any exception is fine; what must hold is
  the contract: index arrays are copied or owned, so the tensor's indices never change
  and nothing is stored outside its pattern. (Values may share memory with a plain
  in-memory array the caller passed in: a change there shows up as data only.)
- ``unlock``: like ``aliasing``, but the caller first sets ``flags.writeable = True`` on an
  index array the tensor handed out. NumPy refuses that only when the array's base is
  read-only too, so a read-only *view* of a writable internal array does not protect it.
"""

import faulthandler
import importlib.util
import json
import os
import sys

import numpy as np

ALLOWED = (ValueError, TypeError, IndexError, RuntimeError, MemoryError)


def _limit_memory():
    """Make a runaway allocation a MemoryError instead of a visit from the OOM killer."""
    try:
        import resource

        limit = 8 << 30
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or hard > limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass


# -- the malformed-input table ----------------------------------------------------------------

def malformed_table():
    import sparse_ref as sr

    F64 = sr.float64
    nan = float("nan")

    def S(dtype=F64):
        return sr.sparse_coo_tensor([[0, 1, 1], [1, 0, 0]], [1, 2, 3], (2, 2), dtype=dtype)

    def D(*shape, dtype=F64):
        return sr.ones(*shape, dtype=dtype)

    def S3(dtype=F64):
        """A batch of two sparse 2 x 2 matrices (3-D), with a duplicate."""
        return sr.sparse_coo_tensor([[0, 1, 1], [1, 0, 0], [0, 1, 1]], [1, 2, 3], (2, 2, 2), dtype=dtype)

    def coo(indices, values=(1.0,), size=(2, 2), **kw):
        return lambda: sr.sparse_coo_tensor(indices, values, size, **kw)

    def csr(crow, col, val, size=(1, 3), **kw):
        return lambda: sr.sparse_csr_tensor(crow, col, val, size, **kw)

    def grad_graph():
        a = S().requires_grad_(True)
        b = D(2, 3).requires_grad_(True)
        return sr.sparse.mm(a, b), a, b

    def spgemm_graph():
        a = S().requires_grad_(True)
        c = S().requires_grad_(True)
        return sr.sparse.mm(a, c)

    def huge_rows():
        return sr.sparse_coo_tensor([[2**62 - 1, 0], [0, 2]], [1.0, 2.0], (2**62, 3), dtype=F64)

    def huge_cols():
        return sr.sparse_coo_tensor([[0, 1], [2**62 - 1, 0]], [1.0, 2.0], (2, 2**62), dtype=F64)

    def unchecked_csr(col):
        return sr.sparse_csr_tensor([0, len(col)], col, np.arange(1.0, len(col) + 1), (1, 4),
                                    check_invariants=False)

    def masked(data, mask, dtype=None):
        return np.ma.array(np.array(data, dtype=dtype), mask=mask)

    def corrupted_scipy_csr():
        import scipy.sparse as sp

        # a row pointer far past nnz, set behind SciPy's back: if it reaches SciPy's C++
        # (sum_duplicates) unchecked, the heap is damaged (a small overshoot, like 5, kills
        # the process only sometimes, at exit; 64 kills it every time)
        m = sp.csr_array((np.array([1.0, 2.0]), np.array([0, 1], np.int64), np.array([0, 1, 2], np.int64)),
                         shape=(2, 2))
        m.indptr[1] = 64
        return sr.from_scipy(m)

    def same_as_native(values):
        """Valid but unusual value arrays: must give the same matrix as native float64."""
        t = sr.sparse_coo_tensor([[0, 1, 1], [1, 0, 0]], values, (2, 2))
        expected = np.array([[0.0, 1.0], [5.0, 0.0]])
        got = t.to_dense().numpy()
        assert np.array_equal(got, expected), f"{values!r} read as {got!r}"
        out = sr.sparse.mm(t, sr.ones(2, 1, dtype=t.dtype)).numpy()
        assert np.array_equal(out, expected.sum(axis=1, keepdims=True)), f"{values!r}: mm gave {out!r}"
        return t

    def corrupted_scipy_csc():
        import scipy.sparse as sp

        m = sp.csc_array((np.array([1.0, 2.0]), np.array([0, 1], np.int64), np.array([0, 1, 2], np.int64)),
                         shape=(2, 2))
        m.indptr[1] = 64  # the same damage for CSC, which from_scipy converts with m.tocoo()
        return sr.from_scipy(m)

    def corrupted_scipy_coo():
        import scipy.sparse as sp

        m = sp.coo_array((np.array([1.0, 2.0]), (np.array([0, 1]), np.array([0, 1]))), shape=(2, 2))
        m.row[0] = -7
        return sr.from_scipy(m)

    def scipy_col_out_of_range():
        import scipy.sparse as sp

        m = sp.csr_array((np.array([1.0]), np.array([0], np.int64), np.array([0, 1], np.int64)), shape=(1, 2))
        m.indices[0] = 10**12
        return sr.from_scipy(m)

    R, A = "raise", "any"
    return [
        # -- sparse_coo_tensor: indices
        ("coo indices 1-D", coo([0, 1], [1.0, 2.0]), R),
        ("coo indices 3-D", coo(np.zeros((2, 1, 1), np.int64)), R),
        ("coo indices 0-D", coo(np.int64(0)), R),
        ("coo indices with 3 rows, size of 2", coo([[0], [0], [0]], size=(1, 1)), R),
        ("coo indices with 3 rows (a batch, valid)", coo([[0], [0], [0]], size=(1, 1, 1)), A),
        ("coo indices with 4 rows (a 4-D tensor, valid)", coo([[0], [0], [0], [0]], size=(1, 1, 1, 1)), A),
        ("coo indices with 0 rows", coo(np.zeros((0, 1), np.int64), size=(1,)), R),
        ("coo batch of B*m rows beyond int64, coalesced (valid: ranked keys)",
         lambda: sr.sparse_coo_tensor([[0, 0], [3, 3], [0, 0]], [1.0, 2.0], (2**62, 4, 1)).coalesce(), A),
        ("coo hybrid, dense size wrong", lambda: sr.sparse_coo_tensor([[0], [0]], [[1.0, 2.0]], (1, 1, 3)), R),
        ("mm of a hybrid", lambda: sr.sparse.mm(sr.sparse_coo_tensor([[0], [0]], [[1.0, 2.0]]), sr.ones(1, 1)), R),
        ("mm of a 3-D sparse and a 2-D dense", lambda: sr.sparse.mm(sr.ones(1, 1, 1).to_sparse(), sr.ones(1, 1)), R),
        ("mm of a hybrid batch (sparse_dim 3, dense_dim 1)",
         lambda: sr.sparse.mm(sr.ones(1, 1, 1, 2).to_sparse(3), sr.ones(1, 1, 1)), R),
        ("bmm of a 3-D hybrid", lambda: sr.bmm(sr.ones(1, 1, 1).to_sparse(2), sr.ones(1, 1, 1)), R),
        ("matmul of a 3-D hybrid", lambda: sr.ones(1, 1, 1).to_sparse(2) @ sr.ones(1, 1, 1), R),
        ("bmm of a 4-D sparse", lambda: sr.bmm(sr.ones(1, 1, 1, 1).to_sparse(), sr.ones(1, 1, 1)), R),
        ("coo indices with 1 row", coo([[0]]), R),
        ("coo indices float", coo([[0.0], [1.0]]), R),
        ("coo indices float NaN", coo(np.array([[nan], [0.0]])), R),
        ("coo indices complex", coo(np.array([[0j], [1j]])), R),
        ("coo indices bool", coo(np.array([[True], [False]])), R),
        ("coo indices object", coo(np.array([[0], [None]], dtype=object)), R),
        ("coo indices strings", coo([["0"], ["1"]]), R),
        ("coo indices a str", coo("ab"), R),
        ("coo indices None", coo(None), R),
        ("coo indices ragged", coo([[0, 1], [0]]), R),
        ("coo indices mixed int/float", coo([[0, 1.5], [0, 0]], [1.0, 2.0]), R),
        ("coo negative row", coo([[-1], [0]]), R),
        ("coo negative col", coo([[0], [-1]]), R),
        ("coo int64 min index", coo(np.array([[-2**63], [0]], np.int64)), R),
        ("coo row == nrows", coo([[2], [0]]), R),
        ("coo col far out of range", coo([[0], [2**62]]), R),
        ("coo uint64 index > int64 max", coo(np.array([[2**64 - 1], [0]], np.uint64)), R),
        ("coo negative index, size inferred", lambda: sr.sparse_coo_tensor([[0, -5], [0, 0]], [1.0, 2.0]), R),
        ("coo int8 indices (valid)", coo(np.array([[1], [0]], np.int8)), A),
        ("coo masked indices (masked entry)", coo(masked([[0, 1], [1, 0]], [[0, 1], [0, 0]]), [1.0, 2.0]), R),
        ("coo masked indices hiding an out-of-range index",
         coo(masked([[0, 99], [1, 0]], [[0, 1], [0, 0]]), [1.0, 2.0]), R),
        # -- sparse_coo_tensor: values, nnz, dtype
        ("coo values 2-D", coo([[0, 1], [1, 0]], [[1.0], [2.0]]), R),
        ("coo values 0-D", coo([[0], [1]], np.float64(1.0)), R),
        ("coo values None", coo([[0], [1]], None), R),
        ("coo more values than indices", coo([[0], [1]], [1.0, 2.0]), R),
        ("coo fewer values than indices", coo([[0, 1], [1, 0]], [1.0]), R),
        ("coo empty values, one index", coo([[0], [1]], []), R),
        ("coo values strings", coo([[0], [1]], ["a"]), R),
        ("coo values bytes", coo([[0], [1]], [b"a"]), R),
        ("coo values mixed objects", coo([[0, 1], [1, 0]], [1.0, "x"]), R),
        ("coo values dict", coo([[0], [1]], {0: 1.0}), R),
        ("coo values bool", coo([[0], [1]], [True]), R),
        ("coo values float16", coo([[0], [1]], np.array([1.0], np.float16)), A),
        ("coo values uint8", coo([[0], [1]], np.array([1], np.uint8)), R),
        ("coo values datetime64", coo([[0], [1]], np.array(["2020-01-01"], "datetime64[D]")), R),
        ("coo masked values", coo([[0, 1], [1, 0]], masked([1.0, 2.0], [0, 1])), R),
        ("coo values NaN into int64", coo([[0], [1]], [nan], dtype=sr.int64), R),
        ("coo values inf into int32", coo([[0], [1]], [float("inf")], dtype=sr.int32), R),
        ("coo values 2**40 into int32", coo([[0], [1]], [2**40], dtype=sr.int32), R),
        ("coo values 1e300 into float32", coo([[0], [1]], [1e300], dtype=sr.float32), R),
        ("coo values complex into float64", coo([[0], [1]], [1 + 2j], dtype=F64), R),
        ("coo values big-endian float64", lambda: same_as_native(np.array([1.0, 2.0, 3.0], dtype=">f8")), A),
        ("coo values big-endian int32", lambda: same_as_native(np.array([1, 2, 3], dtype=">i4")), A),
        ("coo values strided view", lambda: same_as_native(np.array([1.0, 9.0, 2.0, 9.0, 3.0, 9.0])[::2]), A),
        ("coo values read-only foreign buffer",
         lambda: same_as_native(np.frombuffer(np.array([1.0, 2.0, 3.0]).tobytes(), dtype=np.float64)), A),
        ("coo indices big-endian", lambda: sr.sparse_coo_tensor(np.array([[0, 1, 1], [1, 0, 0]], dtype=">i8"),
                                                               [1.0, 2.0, 3.0], (2, 2)).coalesce(), A),
        ("coo dtype='foo'", coo([[0], [1]], dtype="foo"), R),
        ("coo dtype=float16", coo([[0], [1]], dtype=np.float16), A),
        ("coo dtype=object", coo([[0], [1]], dtype=object), R),
        ("coo dtype=int32 for complex values", coo([[0], [1]], [1 + 1j], dtype=sr.int32), A),
        ("coo is_coalesced=True, unsorted", coo([[1, 0], [0, 0]], [1.0, 2.0], is_coalesced=True), R),
        ("coo is_coalesced=True, duplicate", coo([[0, 0], [1, 1]], [1.0, 2.0], is_coalesced=True), R),
        ("coo requires_grad on int", coo([[0], [1]], [1], requires_grad=True), R),
        # -- sparse_coo_tensor: size
        ("coo size 3-D", coo([[0], [1]], size=(2, 2, 2)), R),
        ("coo size 1-D", coo([[0], [1]], size=(2,)), R),
        ("coo size negative", coo([[0], [1]], size=(2, -2)), R),
        ("coo size float", coo([[0], [1]], size=(2, 2.0)), R),
        ("coo size str", coo([[0], [1]], size="22"), R),
        ("coo size int", coo([[0], [1]], size=4), R),
        ("coo size bools", coo([[0], [1]], size=(True, True)), R),
        ("coo size NaN", coo([[0], [1]], size=(2, nan)), R),
        ("coo size 2**62 (valid)", coo([[2**62 - 1], [1]], size=(2**62, 2**62)), A),
        ("coo size 2**64 (beyond int64)", coo([[0], [1]], size=(2**64, 2)), A),
        ("coo size 2**64, coalesce", lambda: sr.sparse_coo_tensor([[5, 0], [1, 1]], [1.0, 2.0], (2**64, 2))
         .coalesce(), A),
        ("coo size 2**64, mm", lambda: sr.sparse.mm(sr.sparse_coo_tensor([[5], [1]], [1.0], (2**64, 2), dtype=F64),
                                                     D(2, 2)), R),
        # -- huge sizes through the ops
        ("2**62 rows: to_dense", lambda: huge_rows().to_dense(), R),
        ("2**62 rows: coalesce (valid)", lambda: huge_rows().coalesce(), A),
        ("2**62 rows: to_sparse_csr", lambda: huge_rows().to_sparse_csr(), R),
        ("2**62 rows: mm with dense", lambda: sr.sparse.mm(huge_rows(), D(3, 2)), R),
        ("2**62 rows: mm with dense, 0 columns", lambda: sr.sparse.mm(huge_rows(), D(3, 0)), A),
        ("2**62 rows: reduce amax", lambda: sr.sparse.mm(huge_rows(), D(3, 2), reduce="amax"), R),
        ("2**62 rows: sparse x sparse (valid)", lambda: sr.sparse.mm(huge_rows(), huge_rows().t()), A),
        ("2**62 rows: sparse x sparse backward",
         lambda: sr.sparse.mm(huge_rows().requires_grad_(), huge_cols().requires_grad_()).sum().backward(), A),
        ("2**62 cols: dense x sparse.t()", lambda: sr.sparse.mm(D(4, 3), huge_rows().t()), R),
        ("2**62 cols: sparse x sparse (valid)", lambda: sr.sparse.mm(huge_cols(), huge_cols().t()), A),
        ("2**62 cols: sampled_addmm", lambda: sr.sparse.sampled_addmm(huge_cols(), D(2, 1), D(1, 2**62)), R),
        ("dense 2**62 x 2**62", lambda: sr.zeros(2**62, 2**62), R),
        ("dense 2**40 randn", lambda: sr.randn(2**40), R),
        ("dense 2**31 x 2**31 ones, float64", lambda: sr.ones(2**31, 2**31, dtype=F64), R),
        # -- sparse_csr_tensor
        ("csr crow empty", csr([], [], [], (0, 0)), R),
        ("csr crow not starting at 0", csr([1, 2], [0], [1.0]), R),
        ("csr crow decreasing", csr([0, 2, 1, 2], [0, 1], [1.0, 2.0], (3, 3)), R),
        ("csr crow negative in the middle", csr([0, -1, 1], [0], [1.0], (2, 3)), R),
        ("csr crow end != nnz", csr([0, 3], [0, 1], [1.0, 2.0]), R),
        ("csr crow end 2**62", csr([0, 2**62], [0], [1.0]), R),
        ("csr crow too many for size", csr([0, 1, 1], [0], [1.0], (1, 3)), R),
        ("csr crow float", csr([0.0, 1.0], [0], [1.0]), R),
        ("csr crow 2-D", csr([[0, 1]], [0], [1.0]), R),
        ("csr crow None", csr(None, [0], [1.0]), R),
        ("csr crow str", csr("01", [0], [1.0]), R),
        ("csr crow uint64 huge", csr(np.array([0, 2**64 - 1], np.uint64), [0], [1.0]), R),
        ("csr crow masked", csr(masked([0, 1], [0, 1]), [0], [1.0]), R),
        ("csr col out of range", csr([0, 1], [3], [1.0]), R),
        ("csr col huge", csr([0, 1], [2**62], [1.0]), R),
        ("csr col negative", csr([0, 1], [-1], [1.0]), R),
        ("csr col float", csr([0, 1], [0.0], [1.0]), R),
        ("csr col 2-D", csr([0, 1], [[0]], [1.0]), R),
        ("csr col unsorted", csr([0, 2], [2, 1], [1.0, 2.0]), R),
        ("csr col duplicate", csr([0, 2], [1, 1], [1.0, 2.0]), R),
        ("csr col masked", csr([0, 1], masked([0], [1]), [1.0]), R),
        ("csr values longer", csr([0, 1], [0], [1.0, 2.0]), R),
        ("csr values 2-D", csr([0, 1], [0], [[1.0]]), R),
        ("csr values str", csr([0, 1], [0], ["x"]), R),
        ("csr values float16", csr([0, 1], [0], np.array([1.0], np.float16)), A),
        ("csr values masked", csr([0, 1], [0], masked([1.0], [1])), R),
        ("csr size 3-D", csr([0, 1], [0], [1.0], (1, 3, 1)), R),
        ("csr size rows mismatch", csr([0, 1], [0], [1.0], (4, 3)), R),
        ("csr size 2**62 columns (valid)", csr([0, 1], [2**62 - 1], [1.0], (1, 2**62)), A),
        ("csr check_invariants=False, col out of range", csr([0, 1], [9], [1.0], check_invariants=False), R),
        # check_invariants=False with unsorted or repeated columns: wrong results allowed, no crash
        ("unchecked csr (unsorted cols): mm", lambda: sr.sparse.mm(unchecked_csr([3, 0, 2, 0]), D(4, 2)), A),
        ("unchecked csr (unsorted cols): reduce", lambda: sr.sparse.mm(unchecked_csr([3, 0, 2, 0]), D(4, 2),
                                                                        reduce="amax"), A),
        ("unchecked csr (unsorted cols): sparse x sparse",
         lambda: sr.sparse.mm(unchecked_csr([3, 0, 2, 0]), unchecked_csr([3, 0, 2, 0]).t()), A),
        ("unchecked csr (unsorted cols): its transpose times it",
         lambda: sr.sparse.mm(unchecked_csr([3, 3, 3, 0]).t(), unchecked_csr([1, 1, 0, 2])), A),
        ("unchecked csr (unsorted cols): dense x sparse", lambda: sr.sparse.mm(D(2, 1), unchecked_csr([3, 0, 3, 0])), A),
        ("unchecked csr (unsorted cols): sampled_addmm",
         lambda: sr.sparse.sampled_addmm(unchecked_csr([3, 0, 2, 0]), D(1, 2), D(2, 4)), A),
        ("unchecked csr (unsorted cols): to_dense, to_sparse, coalesce",
         lambda: (unchecked_csr([3, 0, 2, 0]).to_dense(), unchecked_csr([2, 2, 0, 1]).to_sparse().coalesce()), A),
        ("unchecked csr (unsorted cols): backward",
         lambda: sr.sparse.mm(unchecked_csr([3, 0, 3, 0]).requires_grad_(),
                              unchecked_csr([1, 1, 0, 2]).t().requires_grad_()).to_dense().sum().backward(), A),
        ("unchecked csr (unsorted cols): spmm backward",
         lambda: sr.sparse.mm(unchecked_csr([3, 0, 3, 0]).requires_grad_(), D(4, 2).requires_grad_())
         .sum().backward(), A),
        # -- products
        ("mm dense 1-D", lambda: sr.sparse.mm(S(F64), D(2)), R),
        ("mm dense 0-D", lambda: sr.sparse.mm(S(F64), sr.tensor(1.0, dtype=F64)), R),
        ("mm dense 3-D", lambda: sr.sparse.mm(S(F64), D(2, 2, 2)), R),
        ("mm mat2 None", lambda: sr.sparse.mm(S(F64), None), R),
        ("mm mat1 None", lambda: sr.sparse.mm(None, S(F64)), R),
        ("mm mat1 str", lambda: sr.sparse.mm("a", S(F64)), R),
        ("mm mat2 ndarray", lambda: sr.sparse.mm(S(F64), np.ones((2, 2))), R),
        ("mm mat2 list", lambda: sr.sparse.mm(S(F64), [[1.0, 1.0], [1.0, 1.0]]), R),
        ("mm shapes mismatch", lambda: sr.sparse.mm(S(F64), D(3, 2)), R),
        ("mm mixed dtypes float64/float32", lambda: sr.sparse.mm(S(F64), D(2, 2, dtype=sr.float32)), R),
        ("mm mixed dtypes int64/int32", lambda: sr.sparse.mm(S(sr.int64), D(2, 2, dtype=sr.int32)), R),
        ("mm mixed dtypes complex/float", lambda: sr.sparse.mm(S(sr.complex128), D(2, 2)), R),
        ("mm mixed dtypes sparse x sparse", lambda: sr.sparse.mm(S(F64), S(sr.float32)), R),
        ("mm int sparse x sparse", lambda: sr.sparse.mm(S(sr.int64), S(sr.int64)), R),
        ("mm max_nnz negative", lambda: sr.sparse.mm(S(F64), S(F64), max_nnz=-1), R),
        ("mm max_nnz str", lambda: sr.sparse.mm(S(F64), S(F64), max_nnz="3"), R),
        ("mm max_nnz float", lambda: sr.sparse.mm(S(F64), S(F64), max_nnz=1.5), R),
        ("mm max_nnz too small", lambda: sr.sparse.mm(S(F64), S(F64), max_nnz=0), R),
        ("mm max_nnz with a dense operand", lambda: sr.sparse.mm(S(F64), D(2, 2), max_nnz=4), R),
        ("mm max_nnz 2**62 (valid)", lambda: sr.sparse.mm(S(F64), S(F64), max_nnz=2**62), A),
        ("spgemm_nnz with a dense operand", lambda: sr.sparse.spgemm_nnz(S(F64), D(2, 2)), R),
        ("spgemm_nnz shapes mismatch", lambda: sr.sparse.spgemm_nnz(S(F64), huge_rows()), R),
        ("mm reduce='prod'", lambda: sr.sparse.mm(S(F64), D(2, 2), reduce="prod"), R),
        ("mm reduce='foo'", lambda: sr.sparse.mm(S(F64), D(2, 2), reduce="foo"), R),
        ("mm reduce=1", lambda: sr.sparse.mm(S(F64), D(2, 2), reduce=1), R),
        ("mm reduce=b'sum'", lambda: sr.sparse.mm(S(F64), D(2, 2), reduce=b"sum"), R),
        ("mm reduce=['sum']", lambda: sr.sparse.mm(S(F64), D(2, 2), reduce=["sum"]), R),
        ("mm reduce with sparse mat2", lambda: sr.sparse.mm(S(F64), S(F64), reduce="sum"), R),
        ("mm reduce amax complex", lambda: sr.sparse.mm(S(sr.complex64), D(2, 2, dtype=sr.complex64),
                                                         reduce="amax"), R),
        ("mm reduce mean int", lambda: sr.sparse.mm(S(sr.int32), D(2, 2, dtype=sr.int32), reduce="mean"), R),
        ("addmm mat wrong shape", lambda: sr.sparse.addmm(D(3, 3), S(F64), D(2, 2)), R),
        ("addmm mat 3-D", lambda: sr.sparse.addmm(D(1, 2, 2), S(F64), D(2, 2)), R),
        ("addmm mat None", lambda: sr.sparse.addmm(None, S(F64), D(2, 2)), R),
        ("addmm mat sparse", lambda: sr.sparse.addmm(S(F64), S(F64), D(2, 2)), R),
        ("addmm mat dtype mismatch", lambda: sr.sparse.addmm(D(2, 2, dtype=sr.float32), S(F64), D(2, 2)), R),
        ("addmm mat1 dense", lambda: sr.sparse.addmm(D(2, 2), D(2, 2), D(2, 2)), R),
        ("addmm mat2 sparse", lambda: sr.sparse.addmm(D(2, 2), S(F64), S(F64)), R),
        ("addmm beta str", lambda: sr.sparse.addmm(D(2, 2), S(F64), D(2, 2), beta="1"), R),
        ("addmm alpha None", lambda: sr.sparse.addmm(D(2, 2), S(F64), D(2, 2), alpha=None), R),
        ("addmm alpha list", lambda: sr.sparse.addmm(D(2, 2), S(F64), D(2, 2), alpha=[1]), R),
        ("addmm complex beta, real operands", lambda: sr.sparse.addmm(D(2, 2), S(F64), D(2, 2), beta=1j), R),
        ("addmm fractional alpha, int operands",
         lambda: sr.sparse.addmm(D(2, 2, dtype=sr.int64), S(sr.int64), D(2, 2, dtype=sr.int64), alpha=0.5), R),
        ("addmm alpha NaN (valid)", lambda: sr.sparse.addmm(D(2, 2), S(F64), D(2, 2), alpha=nan), A),
        ("sampled_addmm input dense", lambda: sr.sparse.sampled_addmm(D(2, 2), D(2, 2), D(2, 2)), R),
        ("sampled_addmm input wrong shape", lambda: sr.sparse.sampled_addmm(S(F64), D(3, 2), D(2, 3)), R),
        ("sampled_addmm mat1 sparse", lambda: sr.sparse.sampled_addmm(S(F64), S(F64), D(2, 2)), R),
        ("sampled_addmm mat1 1-D", lambda: sr.sparse.sampled_addmm(S(F64), D(2), D(2, 2)), R),
        ("sampled_addmm shapes mismatch", lambda: sr.sparse.sampled_addmm(S(F64), D(2, 3), D(2, 2)), R),
        ("sampled_addmm int", lambda: sr.sparse.sampled_addmm(S(sr.int64), D(2, 2, dtype=sr.int64),
                                                              D(2, 2, dtype=sr.int64)), R),
        ("sampled_addmm mixed dtypes", lambda: sr.sparse.sampled_addmm(S(F64), D(2, 2, dtype=sr.float32),
                                                                       D(2, 2, dtype=sr.float32)), R),
        ("sampled_addmm beta str", lambda: sr.sparse.sampled_addmm(S(F64), D(2, 2), D(2, 2), beta="x"), R),
        ("matmul ndarray @ sparse", lambda: np.ones((2, 2)) @ S(F64), R),
        ("matmul sparse @ None", lambda: S(F64) @ None, R),
        # -- batched (3-D) products
        ("bmm batch sizes differ", lambda: sr.bmm(S3(), D(3, 2, 2)), R),
        ("bmm inner sizes differ", lambda: sr.bmm(S3(), D(2, 3, 2)), R),
        ("bmm 3-D sparse @ 2-D", lambda: sr.bmm(S3(), D(2, 2)), R),
        ("bmm 2-D sparse @ 3-D", lambda: sr.bmm(S(F64), D(2, 2, 2)), R),
        ("bmm sparse x None", lambda: sr.bmm(S3(), None), R),
        ("bmm mixed dtypes", lambda: sr.bmm(S3(), D(2, 2, 2, dtype=sr.float32)), R),
        ("bmm int sparse x sparse", lambda: sr.bmm(S3(sr.int64), S3(sr.int64)), R),
        ("bmm B*m beyond int64", lambda: sr.bmm(sr.sparse_coo_tensor([[0], [0], [0]], [1.0], (2**62, 4, 1)),
                                                sr.sparse_coo_tensor([[0], [0], [0]], [1.0], (2**62, 1, 1))), R),
        ("bmm B*n beyond int64", lambda: sr.bmm(sr.sparse_coo_tensor([[0], [0], [0]], [1.0], (2**40, 1, 2**30)),
                                                sr.sparse_coo_tensor([[0], [0], [0]], [1.0], (2**40, 2**30, 1))), R),
        ("bmm dense x sparse (valid)", lambda: sr.bmm(D(2, 3, 2), S3()), A),
        ("bmm sparse x sparse (valid)", lambda: sr.bmm(S3(), S3()), A),
        ("matmul 3-D sparse @ 2-D", lambda: S3() @ D(2, 2), R),
        ("mm reduce on dense x 3-D sparse", lambda: sr.sparse.mm(D(2, 2, 2), S3(), reduce="amax"), R),
        ("sampled_addmm 3-D input, 2-D mats", lambda: sr.sparse.sampled_addmm(S3(), D(2, 2), D(2, 2)), R),
        ("sampled_addmm 3-D, batch sizes differ", lambda: sr.sparse.sampled_addmm(S3(), D(3, 2, 2), D(2, 2, 2)), R),
        ("3-D sparse t()", lambda: S3().t(), R),
        ("3-D sparse sum(1)", lambda: S3().sum(1), R),
        # -- backward
        ("backward gradient wrong shape", lambda: grad_graph()[0].backward(D(3, 3)), R),
        ("backward gradient transposed shape", lambda: grad_graph()[0].backward(D(3, 2)), R),
        ("backward gradient of another dtype (cast, as torch)",
         lambda: grad_graph()[0].backward(D(2, 3, dtype=sr.float32)), A),
        ("backward gradient complex for a real output",
         lambda: grad_graph()[0].backward(sr.tensor(np.full((2, 3), 1 + 1j))), R),
        ("backward gradient ndarray", lambda: grad_graph()[0].backward(np.ones((2, 3))), R),
        ("backward gradient sparse wrong shape", lambda: grad_graph()[0].backward(S(F64)), R),
        ("backward gradient None, non-scalar", lambda: grad_graph()[0].backward(), R),
        ("backward gradient str", lambda: grad_graph()[0].backward("x"), R),
        ("backward twice", lambda: [y.sum().backward() for y in [grad_graph()[0]] * 2], R),
        ("backward without grad", lambda: sr.sparse.mm(S(F64), D(2, 3)).sum().backward(), R),
        ("sparse output backward, dense gradient wrong shape", lambda: spgemm_graph().backward(D(3, 3)), R),
        ("sparse output backward, sparse gradient wrong shape",
         lambda: spgemm_graph().backward(sr.sparse_coo_tensor([[2], [2]], [1.0], (3, 3), dtype=F64)), R),
        ("sparse output backward, no gradient", lambda: spgemm_graph().backward(), R),
        ("sparse output backward, gradient with NaN (valid)",
         lambda: spgemm_graph().backward(sr.tensor(np.full((2, 2), nan))), A),
        # -- dense construction, interop, settings
        ("tensor str", lambda: sr.tensor("abc"), R),
        ("tensor None", lambda: sr.tensor(None), R),
        ("tensor ragged", lambda: sr.tensor([[1.0, 2.0], [3.0]]), R),
        ("tensor object array", lambda: sr.tensor(np.array([1, "a"], dtype=object)), R),
        ("tensor datetime64", lambda: sr.tensor(np.array(["2020-01-01"], "datetime64[D]")), R),
        ("zeros negative", lambda: sr.zeros(2, -1), R),
        ("to_sparse of 3-D", lambda: D(2, 2, 2).to_sparse(), A),
        ("to_sparse(0) of 3-D", lambda: D(2, 2, 2).to_sparse(0), R),
        ("to_sparse(4) of 3-D", lambda: D(2, 2, 2).to_sparse(4), R),
        ("to_sparse of 0-D", lambda: sr.tensor(1.0).to_sparse(), R),
        ("from_scipy None", lambda: sr.from_scipy(None), R),
        ("from_scipy ndarray", lambda: sr.from_scipy(np.ones((2, 2))), R),
        ("from_scipy csr with corrupted indptr", corrupted_scipy_csr, R),
        ("from_scipy csc with corrupted indptr", corrupted_scipy_csc, R),
        ("from_scipy coo with a negative row", corrupted_scipy_coo, R),
        ("from_scipy csr with a column out of range", scipy_col_out_of_range, R),
        ("to_scipy None", lambda: sr.to_scipy(None), R),
        ("to_scipy dense", lambda: sr.to_scipy(D(2, 2)), R),
        ("from_torch None", lambda: sr.from_torch(None), R),
        ("to_torch str", lambda: sr.to_torch("x"), R),
        ("set_num_threads 0", lambda: sr.set_num_threads(0), R),
        ("set_num_threads 2**31", lambda: sr.set_num_threads(2**31), R),
        ("set_num_threads str", lambda: sr.set_num_threads("2"), R),
        ("use_backend unknown", lambda: sr.use_backend("fortran"), R),
        ("use_backend None", lambda: sr.use_backend(None), R),
    ]


# -- the aliasing table -------------------------------------------------------------------------

def aliasing_table(which="aliasing"):
    import sparse_ref as sr

    F64 = sr.float64
    shape = (3, 4)
    row = np.array([2, 0, 2, 1, 0], np.int64)
    col = np.array([1, 3, 1, 0, 2], np.int64)
    val = np.array([1.0, -2.0, 3.0, 0.0, 5.0])
    # the same matrix in CSR form (coalesced): rows 0: cols 2, 3; 1: col 0; 2: col 1 (4.0)
    c_crow = np.array([0, 2, 3, 4], np.int64)
    c_col = np.array([2, 3, 0, 1], np.int64)
    c_val = np.array([5.0, -2.0, 0.0, 4.0])

    def exercise(t):
        """Every op, each allowed to raise: only a death, or a broken contract, fails."""
        def attempt(fn):
            try:
                fn()
            except Exception:
                pass

        m, k = t.shape
        b = sr.ones(k, 2, dtype=F64)
        attempt(lambda: t.to_dense())
        attempt(lambda: t.coalesce())
        attempt(lambda: t.to_sparse_csr().to_sparse())
        attempt(lambda: sr.sparse.mm(t, b))
        for reduce in ("mean", "amax", "amin"):
            attempt(lambda: sr.sparse.mm(t, b, reduce=reduce))
        attempt(lambda: sr.sparse.mm(t, t.t()))
        attempt(lambda: sr.sparse.mm(t.t(), t))
        attempt(lambda: sr.sparse.mm(sr.ones(2, m, dtype=F64), t))
        attempt(lambda: sr.sparse.addmm(sr.ones(1, 2, dtype=F64), t, b, beta=0.5, alpha=2.0))
        attempt(lambda: sr.sparse.sampled_addmm(t, sr.ones(m, 2, dtype=F64), sr.ones(2, k, dtype=F64)))
        attempt(lambda: sr.to_scipy(t))

        def grads():
            leaf = t.detach().requires_grad_(True)
            x = sr.ones(k, 2, dtype=F64, requires_grad=True)
            (sr.sparse.mm(leaf, x).sum() + sr.sparse.mm(leaf, leaf.t()).to_dense().sum()).backward()
        attempt(grads)

    def pattern(t):
        """(row, col) of every stored entry, however the tensor stores them."""
        if t.layout is sr.sparse_csr:
            crow = t.crow_indices().numpy()
            return np.repeat(np.arange(crow.shape[0] - 1), np.diff(crow)), t.col_indices().numpy()
        idx = t._indices().numpy()
        return idx[0], idx[1]

    def snapshot(t):
        values = t._values().detach().numpy().copy()
        if t.layout is sr.sparse_csr:
            return ("csr", t.crow_indices().numpy().copy(), t.col_indices().numpy().copy(), t.shape), values
        return ("coo", t._indices().numpy().copy(), t.shape), values

    def unchanged(t, before, values_fixed=False):
        """None if the indices are as they were at construction (and, with
        ``values_fixed``, the values too); else what changed."""
        (now, now_values), (before, before_values) = snapshot(t), before
        same = now[0] == before[0] and now[-1] == before[-1] and all(
            x.shape == y.shape and np.array_equal(x, y) for x, y in zip(now[1:-1], before[1:-1]))
        if not same:
            return f"indices changed under the tensor: {_short(before)} -> {_short(now)}"
        if values_fixed and not np.array_equal(now_values, before_values, equal_nan=True):
            return f"values changed under the tensor: {_short(before_values)} -> {_short(now_values)}"
        return None

    def contract(t, before, values_fixed=False):
        """``unchanged``, and to_dense stores nothing outside the pattern."""
        changed = unchanged(t, before, values_fixed)
        if changed:
            return changed
        try:
            dense = t.to_dense().detach().numpy()
        except Exception:
            return None
        r, c = pattern(t)
        outside = np.ones(t.shape, dtype=bool)
        outside[r, c] = False
        if dense.shape != t.shape or np.any(dense[outside] != 0):
            return f"to_dense has entries outside the pattern: {dense!r}"
        return None

    def probe(build, mutate, *, after_first_use=False, values_fixed=False):
        """Build, (optionally use once, so caches fill), mutate, exercise, check."""
        def run():
            state = {}
            t = build(state)
            before = snapshot(t)
            if after_first_use:
                exercise(t)
            try:
                mutate(state, t)
            except Exception:  # "assignment destination is read-only" and friends
                pass
            changed = unchanged(t, before, values_fixed)
            if changed:  # the contract is broken already: say so before an op can crash on it
                return changed + " (right after the mutation, before any op ran)"
            exercise(t)
            return contract(t, before, values_fixed)
        return run

    def derived(kind):
        """A tensor an op made (its arrays are the library's own), from the COO matrix."""
        def build(state):
            t = coo_from_arrays(state)
            ones = lambda *size: sr.ones(*size, dtype=F64)  # noqa: E731
            if kind == "coalesce()":
                return t.coalesce()
            if kind == "to_sparse_csr()":
                return t.to_sparse_csr()
            if kind == "coo @ coo":
                return sr.sparse.mm(t, t.t())
            if kind == "csr @ csr":
                return sr.sparse.mm(t.to_sparse_csr(), t.t().to_sparse_csr())
            if kind == "sampled_addmm()":
                return sr.sparse.sampled_addmm(t, ones(3, 2), ones(2, 4))
            if kind == "dense.to_sparse()":
                return t.to_dense().to_sparse()
            if kind in ("coo leaf .grad", "csr leaf .grad"):
                leaf = (t if kind.startswith("coo") else t.to_sparse_csr()).detach().requires_grad_(True)
                sr.sparse.mm(leaf, ones(4, 2)).sum().backward()
                return leaf.grad
            if kind == "sparse_coo_tensor()":
                return t
            if kind == "sparse_csr_tensor()":
                return csr_from_arrays(state)
            raise AssertionError(kind)
        return build

    def coo_from_arrays(state):
        state["idx"], state["val"] = np.stack([row, col]), val.copy()
        return sr.sparse_coo_tensor(state["idx"], state["val"], shape)

    def csr_from_arrays(state):
        state["crow"], state["col"], state["val"] = c_crow.copy(), c_col.copy(), c_val.copy()
        return sr.sparse_csr_tensor(state["crow"], state["col"], state["val"], shape)

    def csr_from_slices(state):
        # contiguous int64 slices of larger arrays: whoever holds the parent can change them
        state["parent"] = np.concatenate([c_crow, c_col])
        state["val"] = c_val.copy()
        return sr.sparse_csr_tensor(state["parent"][:4], state["parent"][4:], state["val"], shape)

    def scipy_csr(state, explicit_zero=True):
        import scipy.sparse as sp

        data = c_val.copy() if explicit_zero else np.array([5.0, -2.0, 7.0, 4.0])
        m = sp.csr_array((data, c_col.copy(), c_crow.copy()), shape=shape)
        m.indptr, m.indices = m.indptr.astype(np.int64), m.indices.astype(np.int64)
        state["m"] = m
        return sr.from_scipy(m)

    def scipy_coo(state):
        import scipy.sparse as sp

        m = sp.coo_array((val.copy(), (row.copy(), col.copy())), shape=shape)
        state["m"] = m
        return sr.from_scipy(m)

    def memmap_csr(state, which):
        """CSR arrays, some of them np.memmap views of files in the cwd."""
        arrays = {"crow": c_crow.copy(), "col": c_col.copy(), "val": c_val.copy()}
        for name in which:
            path = f"alias_{name}_{os.getpid()}.bin"
            arrays[name].tofile(path)
            arrays[name] = np.memmap(path, dtype=arrays[name].dtype, mode="r+", shape=arrays[name].shape)
            state.setdefault("paths", []).append(path)
        return sr.sparse_csr_tensor(arrays["crow"], arrays["col"], arrays["val"], shape)

    def memmap_coo(state):
        path = f"alias_coo_{os.getpid()}.bin"
        np.stack([row, col]).tofile(path)
        idx = np.memmap(path, dtype=np.int64, mode="r+", shape=(2, row.shape[0]))
        vpath = f"alias_cooval_{os.getpid()}.bin"
        val.tofile(vpath)
        v = np.memmap(vpath, dtype=np.float64, mode="r+", shape=val.shape)
        state["paths"] = [path, vpath]
        return sr.sparse_coo_tensor(idx, v, shape)

    def truncate(state, t):
        for path in state["paths"]:
            os.truncate(path, 0)

    def torch_csr(state):
        import torch

        tc = torch.sparse_csr_tensor(torch.tensor(c_crow), torch.tensor(c_col), torch.tensor(c_val), shape)
        state["torch"] = tc
        return sr.from_torch(tc)

    def torch_coo(state):
        import torch

        tc = torch.sparse_coo_tensor(torch.tensor(np.stack([row, col])), torch.tensor(val), shape)
        state["torch"] = tc
        return sr.from_torch(tc)

    def write_out(get):
        """Write through an array the tensor hands out (it must be read-only or a copy)."""
        def mutate(state, t):
            arr = get(t)
            big = np.iinfo(arr.dtype).max if arr.dtype.kind in "iu" else np.nan
            arr[...] = big
        return mutate

    def write_out_forced(get):
        """The same, after turning the array's WRITEABLE flag back on."""
        def mutate(state, t):
            arr = get(t)
            arr.flags.writeable = True
            arr[...] = np.iinfo(arr.dtype).max if arr.dtype.kind in "iu" else np.nan
        return mutate

    def write_out_root_forced(get):
        """The same through the array that owns the memory, reached by ``.base``."""
        def mutate(state, t):
            arr = get(t)
            while isinstance(arr.base, np.ndarray):
                arr = arr.base
            arr.flags.writeable = True
            arr[...] = np.iinfo(arr.dtype).max if arr.dtype.kind in "iu" else np.nan
        return mutate

    def write_out_interface_forced(get):
        """The same through the object at the end of the ``.base`` chain: its array
        interface's read-only flag turned off, then ``np.asarray`` of it written."""
        def mutate(state, t):
            arr = get(t)
            while isinstance(arr, np.ndarray):
                arr = arr.base
            face = getattr(arr, "__array_interface__", None)
            if face is None:
                return
            try:
                face["data"] = (face["data"][0], False)
            except TypeError:
                return
            out = np.asarray(arr)
            out[...] = np.iinfo(out.dtype).max if out.dtype.kind in "iu" else np.nan
        return mutate

    def set_(key, index, value):
        def mutate(state, t):
            state[key][index] = value
        return mutate

    def nan_values(state, t):
        state["val"][:] = np.nan

    def grad_then_mutate(build, key, value):
        """Forward, change the caller's array, then backward."""
        def run():
            state = {}
            t = build(state)
            before = snapshot(t)
            try:
                leaf = t.detach().requires_grad_(True)
                x = sr.ones(shape[1], 2, dtype=F64, requires_grad=True)
                y = sr.sparse.mm(leaf, x)
                z = sr.sparse.mm(leaf, leaf.t())
                state[key][...] = value
                (y.sum() + z.to_dense().sum()).backward()
            except Exception:
                pass
            return contract(t, before)
        return run

    def scipy_mutate(action):
        def mutate(state, t):
            m = state["m"]
            if action == "eliminate_zeros":
                m.eliminate_zeros()
            elif action == "sum_duplicates":
                m.indices[1] = m.indices[0]  # a duplicate column in row 0, then let SciPy fix it
                m.has_canonical_format = False
                m.sum_duplicates()
            elif action == "sort_indices":
                m.indices[[0, 1]] = m.indices[[1, 0]]
                m.has_sorted_indices = False
                m.sort_indices()
            elif action == "indices":
                m.indices[:] = 10**12
            elif action == "indptr":
                m.indptr[1:] = 10**12
            elif action == "data":
                m.data[:] = np.nan
            elif action == "row":
                m.row[:] = 10**12
                m.col[:] = -1
            elif action == "resize":
                m.resize((1, 1))
        return mutate

    def torch_mutate(what):
        def mutate(state, t):
            import torch

            tc = state["torch"]
            with torch.no_grad():
                if what == "col":
                    tc.col_indices().fill_(10**12)
                elif what == "crow":
                    tc.crow_indices()[1:].fill_(10**12)
                elif what == "values":
                    tc.values().fill_(float("nan"))
                elif what == "indices":
                    tc._indices().fill_(10**12)
        return mutate

    probes = [
        ("coo: caller's indices changed", probe(coo_from_arrays, set_("idx", (slice(None), 0), 10**12))),
        ("coo: caller's indices made negative", probe(coo_from_arrays, set_("idx", (0, slice(None)), -3))),
        ("coo: caller's indices changed after first use",
         probe(coo_from_arrays, set_("idx", (1, slice(None)), 10**12), after_first_use=True)),
        ("coo: caller's values set to NaN", probe(coo_from_arrays, nan_values)),
        ("csr: caller's col changed", probe(csr_from_arrays, set_("col", 0, 10**12))),
        ("csr: caller's col made negative", probe(csr_from_arrays, set_("col", slice(None), -5))),
        ("csr: caller's col changed after first use",
         probe(csr_from_arrays, set_("col", slice(None), 10**12), after_first_use=True)),
        ("csr: caller's crow changed", probe(csr_from_arrays, set_("crow", slice(1, None), 10**12))),
        ("csr: caller's crow made decreasing", probe(csr_from_arrays, set_("crow", 1, 4))),
        ("csr: caller's crow changed after first use",
         probe(csr_from_arrays, set_("crow", slice(1, 3), -(10**12)), after_first_use=True)),
        ("csr: caller's values set to NaN", probe(csr_from_arrays, nan_values)),
        ("csr from slices: parent array changed", probe(csr_from_slices, set_("parent", slice(None), 10**12))),
        ("csr: caller's col changed between forward and backward", grad_then_mutate(csr_from_arrays, "col", 10**12)),
        ("csr: caller's crow changed between forward and backward", grad_then_mutate(csr_from_arrays, "crow", 0)),
        ("csr: caller's values changed between forward and backward",
         grad_then_mutate(csr_from_arrays, "val", np.nan)),
        ("coo: caller's indices changed between forward and backward",
         grad_then_mutate(coo_from_arrays, "idx", 10**12)),
        ("scipy csr: indices changed", probe(scipy_csr, scipy_mutate("indices"))),
        ("scipy csr: indptr changed", probe(scipy_csr, scipy_mutate("indptr"))),
        ("scipy csr: data set to NaN", probe(scipy_csr, scipy_mutate("data"))),
        ("scipy csr: eliminate_zeros()", probe(scipy_csr, scipy_mutate("eliminate_zeros"))),
        ("scipy csr: eliminate_zeros() after first use",
         probe(scipy_csr, scipy_mutate("eliminate_zeros"), after_first_use=True)),
        ("scipy csr: sum_duplicates()",
         probe(lambda s: scipy_csr(s, explicit_zero=False), scipy_mutate("sum_duplicates"))),
        ("scipy csr: sort_indices()", probe(scipy_csr, scipy_mutate("sort_indices"))),
        ("scipy csr: resize()", probe(scipy_csr, scipy_mutate("resize"))),
        ("scipy coo: row and col changed", probe(scipy_coo, scipy_mutate("row"))),
        ("handed out: np.asarray(sparse tensor) written", probe(coo_from_arrays, write_out(lambda t: np.asarray(t)))),
        ("memmap coo indices and values, file truncated", probe(memmap_coo, truncate)),
        ("memmap csr values, file truncated", probe(lambda s: memmap_csr(s, ["val"]), truncate)),
        ("memmap csr crow and col, file truncated", probe(lambda s: memmap_csr(s, ["crow", "col"]), truncate)),
    ]
    # every tensor an op makes hands out its index arrays (and values) read-only: writing
    # must fail; with WRITEABLE forced back on (the "unlock" table) it must fail too
    accessors = {
        "indices()": lambda t: t.indices().numpy(),
        "_indices()": lambda t: t._indices().numpy(),
        "crow_indices()": lambda t: t.crow_indices().numpy(),
        "col_indices()": lambda t: np.asarray(t.col_indices()),
        "values()": lambda t: t.values().detach().numpy(),
    }
    handed_out = [
        ("sparse_coo_tensor()", "_indices()"), ("sparse_csr_tensor()", "col_indices()"),
        ("coalesce()", "indices()"), ("coalesce()", "values()"),
        ("to_sparse_csr()", "crow_indices()"), ("to_sparse_csr()", "col_indices()"),
        ("to_sparse_csr()", "values()"), ("coo @ coo", "indices()"), ("csr @ csr", "col_indices()"),
        ("sampled_addmm()", "indices()"), ("dense.to_sparse()", "indices()"),
        ("coo leaf .grad", "indices()"), ("csr leaf .grad", "crow_indices()"),
    ]
    for kind, what in handed_out:
        probes.append((f"handed out: {kind}.{what} written", probe(derived(kind), write_out(accessors[what]),
                                                                   after_first_use=True, values_fixed=True)))
    # Forcing WRITEABLE back on must fail for index arrays (the tensor's own, read-only to
    # the root). A value array may be shared with memory the caller owns (torch's from_numpy
    # rule), so there a forced write may change data -- never crash, and never the indices.
    unlock = [(f"handed out, WRITEABLE forced on: {kind}.{what} written",
               probe(derived(kind), write_out_forced(accessors[what]), after_first_use=True,
                     values_fixed=what != "values()"))
              for kind, what in handed_out]
    unlock += [(f"handed out, WRITEABLE forced on at its .base root: {kind}.{what} written",
                probe(derived(kind), write_out_root_forced(accessors[what]), after_first_use=True,
                      values_fixed=what != "values()"))
               for kind, what in handed_out]
    unlock += [(f"handed out, its .base object's array interface made writable: {kind}.{what} written",
                probe(derived(kind), write_out_interface_forced(accessors[what]), after_first_use=True,
                      values_fixed=what != "values()"))
               for kind, what in handed_out]
    if which == "unlock":
        return unlock
    if importlib.util.find_spec("torch") is None:
        return probes
    return probes + [
        ("torch csr: col_indices changed in place", probe(torch_csr, torch_mutate("col"))),
        ("torch csr: crow_indices changed in place", probe(torch_csr, torch_mutate("crow"))),
        ("torch csr: values set to NaN in place", probe(torch_csr, torch_mutate("values"))),
        ("torch coo: indices changed in place", probe(torch_coo, torch_mutate("indices"))),
    ]


def _short(x) -> str:
    """A one-line description of arrays (or tuples of them) for a report."""
    if isinstance(x, tuple):
        return "(" + ", ".join(_short(v) for v in x) + ")"
    if isinstance(x, np.ndarray):
        return np.array2string(x, separator=",", threshold=8, edgeitems=2).replace("\n", "").replace(" ", "")
    return repr(x)


# -- the runner ---------------------------------------------------------------------------------

def _emit(*fields):
    sys.stdout.write("\t".join(str(f) for f in fields) + "\n")
    sys.stdout.flush()


def main(argv):
    table = argv[1]
    start = int(argv[2]) if len(argv) > 2 else 0
    stop = int(argv[3]) if len(argv) > 3 else None
    faulthandler.enable()  # a death leaves its traceback on stderr for the report
    _limit_memory()
    import sparse_ref as sr
    from sparse_ref import _threads

    _threads.SERIAL_BELOW = 0  # tiny inputs go through the threaded code too
    sr.set_num_threads(2)
    probes = {"malformed": malformed_table, "aliasing": aliasing_table,
              "unlock": lambda: aliasing_table("unlock")}[table]()
    _emit("TOTAL", len(probes))
    for i in range(start, len(probes) if stop is None else min(stop, len(probes))):
        entry = probes[i]
        name, fn = entry[0], entry[1]
        expect = entry[2] if len(entry) > 2 else "any"
        _emit("REACHED", i, name)
        result = {"i": i, "name": name, "expect": expect, "ok": True}
        try:
            value = fn()
        except BaseException as exc:  # noqa: BLE001 - the outcome is what is being probed
            result.update(outcome="raised", type=type(exc).__name__, msg=str(exc)[:300])
            # a malformed call must raise an ordinary exception; an aliasing probe catches
            # the ops' exceptions itself, so one escaping means it could not even be built
            if not isinstance(exc, ALLOWED if table == "malformed" else Exception):
                result["ok"] = False
        else:
            result["outcome"] = "returned"
            if table == "malformed" and expect == "raise":
                result["ok"] = False
            if table != "malformed" and value is not None:
                result.update(ok=False, msg=value)
        _emit("RESULT", json.dumps(result))
    _emit("END", len(probes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

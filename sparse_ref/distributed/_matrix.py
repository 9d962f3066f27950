"""The distributed sparse matrix: blocks of whole rows of a coalesced matrix, kept on Dask
workers as futures, and the ops that move it between machines (distribute, gather,
transpose), each differentiable.

Where the data lives, and why a lost worker costs time only
----------------------------------------------------------
Every array that enters the cluster from this process travels *inside* a task (a source
task, :func:`sparse_ref.distributed._worker.part`), never by ``client.scatter``; every
other array is the result of a task on such arrays. So the scheduler holds, for every
future, a recipe to make it again, and Dask remakes a future whose worker was lost -- as
it does for any task graph. Nothing here schedules, moves or repairs data itself.
"""

from __future__ import annotations

import operator
import uuid

import dask
import numpy as np
from distributed import Client, default_client, wait

from sparse_ref import _dtypes, _formats, _validate
from sparse_ref._errors import ArgumentError, ArgumentTypeError, DTypeError
from sparse_ref._backend import BUILT_IN, get_backend
from sparse_ref._tensor import SparseCsrTensor, SparseTensor
from sparse_ref.autograd.engine import External, Function
from sparse_ref.distributed import _worker as w

I64 = np.int64


class Batch:
    """The tasks of one op, named ``sr-<op>-<token>-<what>[-<part>]`` (so Dask's dashboard
    and logs say what each one is)."""

    def __init__(self, client, op: str):
        open_client(client, op)
        self.client = client
        self.prefix = f"sr-{op}-{uuid.uuid4().hex[:10]}"
        self.keys = set()

    def submit(self, what: str, fn, *args, p: int | None = None):
        key = self.prefix + "-" + what + ("" if p is None else f"-{p}")
        if key in self.keys:  # Dask would hand back the earlier task's future
            raise RuntimeError(f"two tasks of one op named {key!r}")
        self.keys.add(key)
        return self.client.submit(fn, *args, key=key, pure=False)

    def source(self, what: str, fn, *args, p: int | None = None):
        """A task that carries its arrays with it: the scheduler keeps them, so it can run
        the task again after a worker is lost (Dask would warn about the graph's size;
        here the size is the point). The arrays are copied first: they leave this process
        after the call returns, and a later change of the caller's array must not go
        with them."""
        args = [np.array(a, copy=True, order="C") if isinstance(a, np.ndarray) else a for a in args]
        with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1 PiB"}):
            return self.submit(what, fn, *args, p=p)

    def map(self, what: str, fn, *args) -> list:
        """``fn`` once per part p: an argument that is a ``list`` gives call p its item p
        (one future per part), any other argument goes to every call."""
        n = max(len(a) for a in args if isinstance(a, list))
        return [self.submit(what, fn, *(a[p] if isinstance(a, list) else a for a in args), p=p)
                for p in range(n)]

    def field(self, what: str, future, index: int, p: int | None = None):
        """Item ``index`` of a future's tuple, picked where it lives."""
        return self.submit(what, operator.getitem, future, index, p=p)

    def gather(self, futures) -> list:
        return self.client.gather(futures)


def balanced(cum: np.ndarray, nparts: int) -> np.ndarray:
    """Cut points ``b_0 = 0 <= b_1 <= ... <= b_nparts = U`` over U units whose cumulative
    weights are ``cum`` (``U + 1`` of them, from 0), so that each cut holds about
    ``cum[-1] / nparts``; units of no weight at all are cut evenly instead."""
    units, total = cum.shape[0] - 1, int(cum[-1])
    if total == 0:
        return (np.arange(nparts + 1, dtype=I64) * units) // nparts
    targets = (np.arange(nparts + 1, dtype=I64) * total) // nparts
    cuts = np.searchsorted(cum, targets, side="left").astype(I64)
    cuts[0], cuts[-1] = 0, units
    return cuts


def column_cuts(batch: Batch, parts, ncols: int, nparts: int, total: int | None = None) -> np.ndarray:
    """Column ranges holding about equal numbers of stored entries, as :func:`balanced`
    cuts whole rows: the cut for the q-th share is the first column below which that
    share of the entries lies. Found by narrowing a column interval around each cut,
    256 bins at a time (each round one small message per part): a band of columns
    narrower than any fixed bin is cut where its entries are, not left to one part.
    ``total``: the parts' stored entries, if known."""
    cuts = (np.arange(nparts + 1, dtype=I64) * ncols) // nparts
    if ncols == 0 or nparts == 1:
        return cuts
    if total is None:  # (the parts' stored entries, when the caller does not know them)
        total = sum(batch.gather(batch.map("nnz", w.nnz, parts)))
    if total == 0:
        return cuts  # no entries: cut evenly
    targets = [(q * total) // nparts for q in range(1, nparts)]
    # the interval [lo, hi] of each cut, with cum(lo) = the entries below column lo: the cut
    # is the first column c in (lo, hi] with cum(c) >= target (cum(0) = 0 < target)
    state = [[0, ncols, 0] for _ in targets]
    rounds = 0
    while any(hi - lo > 1 for lo, hi, _ in state):
        rounds += 1
        open_ = sorted({(lo, hi) for lo, hi, _ in state if hi - lo > 1})
        bins = [(lo, -(-(hi - lo) // 256)) for lo, hi in open_]  # (start, width): at most 256 bins
        nbins = [-(-(hi - lo) // width) for (lo, hi), (_, width) in zip(open_, bins)]
        counts = np.sum(batch.gather(batch.map(f"col-counts-{rounds}", w.col_counts_in, parts,  # (tuples: to
                                               tuple(b[0] for b in bins), tuple(b[1] for b in bins),  # every part)
                                               tuple(nbins))), axis=0)
        at = dict(zip(open_, np.split(counts, np.cumsum(nbins)[:-1])))
        for k, (lo, hi, below) in enumerate(state):
            if hi - lo <= 1:
                continue
            width = -(-(hi - lo) // 256)
            cum = below + np.cumsum(at[(lo, hi)])  # cum(lo + (j + 1) * width), j = 0 ...
            j = int(np.searchsorted(cum, targets[k], side="left"))  # first bin whose end reaches it
            state[k] = [lo + j * width, min(hi, lo + (j + 1) * width), int(cum[j - 1]) if j else below]
    cuts[1:-1] = [hi for _, hi, _ in state]
    return cuts


def worker_backend() -> str:
    """The backend the workers are to run: the current one, if they have it. A backend
    made with ``sr.register_backend`` exists in this process only; it is refused here,
    before any work is sent."""
    name = get_backend()
    if name not in BUILT_IN:
        raise RuntimeError(f"the backend {name!r} was registered in this process only; Dask's workers have the "
                           f"built-in ones ({', '.join(BUILT_IN)}): run the distributed ops outside "
                           f"use_backend({name!r})")
    return name


def transpose_parts(batch: Batch, parts, row_starts, ncols: int, cuts) -> list:
    """The parts of the transpose, rows ``[cuts[q], cuts[q + 1])`` in part q, as a Dask
    shuffle: every part splits its entries by those ranges (a stable transpose of the
    part), and part q of the transpose joins its pieces in the order of the source parts.
    Each row of the result then holds its entries in ascending column, as one machine's
    transpose does, and a value is moved, never changed."""
    cuts = np.asarray(cuts, dtype=I64)
    backend = worker_backend()
    splits = batch.map("split", w.split_by_columns, backend, parts, row_starts[:-1].tolist(), ncols, cuts)
    pieces = exchange(batch, splits, cuts.shape[0] - 1)
    return batch.map("join", w.join_rows, backend, pieces, cuts[:-1].tolist(), cuts[1:].tolist())


def exchange(batch: Batch, splits, ntargets: int) -> list:
    """The all-to-all step of a shuffle: ``splits[p]`` is a future of the list of what part
    p sends to each of ``ntargets`` targets; returns, for every target q, its pieces in the
    order of the source parts (each picked on the worker that made it)."""
    return [[batch.field(f"piece-{p}", split, q, p=q) for p, split in enumerate(splits)]
            for q in range(ntargets)]


class DistValues:
    """The gradient of a :class:`DistSparse`, as its ops carry it: one future per part,
    each an array with one value per stored entry of the part (the masked convention of
    ``sparse_ref.autograd.engine``, part by part)."""

    def __init__(self, client, futures):
        self.client = client
        self.futures = list(futures)

    def __add__(self, other: DistValues) -> DistValues:
        batch = Batch(self.client, "grad-add")
        return DistValues(self.client, batch.map("add", w.add, self.futures, other.futures))


class DistSparse(External):
    """A sparse matrix cut into blocks of whole rows, kept on the workers of a Dask cluster.

    Make one with :func:`~sparse_ref.distributed.from_sparse`. Part p holds rows
    ``row_starts[p]`` up to ``row_starts[p + 1]`` of the coalesced matrix, in CSR form; the
    parts are futures, so they stay on the workers until :meth:`gather` brings the matrix
    back. Products with it (:func:`~sparse_ref.distributed.mm`,
    :func:`~sparse_ref.distributed.sampled_addmm`) equal the one-machine products bit for
    bit, and their gradients flow through it as through a local tensor.

    Examples
    --------
    >>> import sparse_ref as sr, sparse_ref.distributed as srd
    >>> a = sr.sparse_coo_tensor([[0, 1, 2, 2], [1, 0, 0, 2]], [1., 2., 3., 4.], (3, 3))
    >>> A = srd.from_sparse(a, 2)        # Dask's current client
    >>> A
    DistSparse(shape=(3, 3), nparts=2, nnz=4, dtype=float32, layout=sparse_ref.sparse_coo)
    >>> A.row_starts.tolist()
    [0, 2, 3]
    >>> A.gather().to_dense()
    tensor([[0., 1., 0.],
            [2., 0., 0.],
            [3., 0., 4.]])
    >>> A.t().gather().to_dense()
    tensor([[0., 2., 3.],
            [1., 0., 0.],
            [0., 0., 4.]])
    """

    ndim = 2

    def __init__(self, client, parts, row_starts, shape, dtype, layout=_dtypes.sparse_coo, nnz=None):
        self._client = client
        self._parts = list(parts)
        self.row_starts = np.asarray(row_starts, dtype=I64)
        self.row_starts.flags.writeable = False
        self._shape = (int(shape[0]), int(shape[1]))
        self._dtype = np.dtype(dtype)
        self.layout = layout
        self._nnz_per_part = nnz  # known once the parts have been made or gathered
        self._cache = {}  # the column cuts and the transposes of this matrix, made once
        self.requires_grad = False
        self.grad = None
        self.grad_fn = None

    # -- what it is -------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def nparts(self) -> int:
        return len(self._parts)

    @property
    def client(self):
        """The Dask client whose cluster holds the parts."""
        return self._client

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def is_sparse(self) -> bool:  # as a local tensor of its layout says
        return self.layout == _dtypes.sparse_coo

    @property
    def is_sparse_csr(self) -> bool:
        return self.layout == _dtypes.sparse_csr

    def size(self, dim: int | None = None):
        if dim is None:
            return self._shape
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not -2 <= dim < 2:
            raise IndexError(f"Dimension out of range (expected to be in range of [-2, 1], but got {dim!r})")
        return self._shape[dim]

    def nnz_per_part(self) -> list:
        """The stored entries of every part (asks the workers once)."""
        if self._nnz_per_part is None:
            batch = Batch(self._client, "nnz")
            self._nnz_per_part = batch.gather(batch.map("nnz", w.nnz, self._parts))
        return list(self._nnz_per_part)

    def wait(self) -> DistSparse:
        """Block until every part has been computed (they stay on the workers); a task's
        error is raised here. Returns the matrix itself."""
        open_client(self._client, "wait")
        wait(self._parts)
        for future in self._parts:
            if future.status == "error":
                future.result()  # raises the task's exception
        return self

    def requires_grad_(self, requires_grad: bool = True) -> DistSparse:
        """Mark the matrix as a leaf whose gradient ``backward`` should compute: a
        DistSparse with this matrix's pattern (masked and coalesced), in ``.grad``."""
        if self.grad_fn is not None and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables")
        if requires_grad and _dtypes.kind(self._dtype) not in "fc":
            raise RuntimeError("only Tensors of floating point and complex dtype can require gradients")
        self.requires_grad = bool(requires_grad)
        return self

    def __repr__(self) -> str:
        nnz = "?" if self._nnz_per_part is None else sum(self._nnz_per_part)
        grad = f", grad_fn=<{self.grad_fn.name()}>" if self.grad_fn is not None else (
            ", requires_grad=True" if self.requires_grad else "")
        return (f"DistSparse(shape={self._shape}, nparts={self.nparts}, nnz={nnz}, "
                f"dtype={self._dtype.name}, layout={self.layout!r}{grad})")

    # -- what it does -------------------------------------------------------------------
    def gather(self):
        """The whole matrix in this process: a coalesced COO tensor (CSR when the matrix
        came from a CSR tensor); differentiable (its gradient goes back to the parts)."""
        return Gather.apply(self)

    def t(self) -> DistSparse:
        """The transpose, distributed by rows of the transpose (a Dask shuffle), each part
        holding about equal stored entries; coalesced; differentiable."""
        worker_backend()
        return Transpose.apply(self)

    @property
    def T(self) -> DistSparse:
        return self.t()

    # -- what the ops use -------------------------------------------------------------------
    def _column_cuts(self) -> np.ndarray:
        if "column_cuts" not in self._cache:
            batch = Batch(self._client, "cuts")
            self._cache["column_cuts"] = column_cuts(batch, self._parts, self._shape[1], self.nparts,
                                                     sum(self.nnz_per_part()))
        return self._cache["column_cuts"]

    def _transposed(self, cuts) -> list:
        """The parts of this matrix's transpose for the row ranges ``cuts`` (made once per
        cuts and kept, as a local tensor keeps its transposed CSR)."""
        key = ("transposed", np.asarray(cuts, dtype=I64).tobytes())
        if key not in self._cache:
            batch = Batch(self._client, "transpose")
            self._cache[key] = transpose_parts(batch, self._parts, self.row_starts, self._shape[1], cuts)
        return self._cache[key]

    def _with_parts(self, parts) -> DistSparse:
        return DistSparse(self._client, parts, self.row_starts, self._shape, self._dtype, self.layout,
                          self._nnz_per_part)

    def _accumulate(self, grad: DistValues) -> None:
        """Add a gradient to ``.grad``, part by part, as a local leaf adds its values."""
        batch = Batch(self._client, "grad")
        if self.grad is None:
            self.grad = self._with_parts(batch.map("grad", w.with_values, self._parts, grad.futures))
        else:
            self.grad = self._with_parts(batch.map("grad", w.added_values, self.grad._parts, grad.futures))


def open_client(client, where: str):
    """``client``, if it can still send work: a distributed matrix whose client was closed
    (say, after a ``with Client(...)`` block) is refused here, by name, before Dask fails
    somewhere inside."""
    if getattr(client, "status", None) in ("closing", "closed"):
        raise RuntimeError(f"{where}: the Dask client of this distributed matrix is closed; its parts are gone "
                           "with it: make the matrix again (from_sparse) on an open client")
    return client


def current_client(client, where: str):
    if client is not None:
        if not isinstance(client, Client):
            raise ArgumentTypeError(f"{where}: client must be a dask.distributed.Client, got {type(client).__name__}"
                                    " (for an address, pass Client(address))")
        return open_client(client, where)
    try:
        return open_client(default_client(), where)
    except ValueError:
        raise ArgumentError(f"{where}: no Dask client: start one (dask.distributed.Client(...)) "
                            "or pass client=") from None


class Distribute(Function):
    """``A = from_sparse(a, nparts)``: a's coalesced CSR cut into blocks of whole rows of
    about equal stored entries, each sent to the cluster inside its own task. The parts'
    values, one after the other, are a's coalesced values, so the gradient of a is the
    parts' gradients one after the other."""

    _name = "FromSparseBackward0"

    def forward(self, a, nparts, client):
        crow, col, val = a._csr()
        starts = balanced(crow, nparts)
        batch = Batch(client, "part")
        parts = []
        for p in range(nparts):
            r0, r1 = int(starts[p]), int(starts[p + 1])
            s, e = int(crow[r0]), int(crow[r1])
            parts.append(batch.source("part", w.part, crow[r0:r1 + 1] - crow[r0], col[s:e], val[s:e],
                                      p=p))
        self.client = client
        layout = _dtypes.sparse_csr if a.is_sparse_csr else _dtypes.sparse_coo
        nnz = np.diff(crow[starts]).tolist()
        return DistSparse(client, parts, starts, a.shape, val.dtype, layout, nnz)

    def backward(self, grad: DistValues):
        return np.concatenate(self.client.gather(grad.futures)), None, None


class Gather(Function):
    """``a = A.gather()``: the parts one after the other, which is the coalesced matrix.
    Backward sends each part its slice of the gradient."""

    _name = "GatherBackward0"

    def forward(self, dist):
        arrays = open_client(dist._client, "gather").gather(dist._parts)
        lengths = [p[1].shape[0] for p in arrays]
        dist._nnz_per_part = lengths
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(I64)
        crow = np.concatenate([[0]] + [p[0][1:] + offsets[i] for i, p in enumerate(arrays)]).astype(I64)
        col = np.concatenate([p[1] for p in arrays]).astype(I64, copy=False)
        val = np.concatenate([p[2] for p in arrays]).astype(dist.dtype, copy=False)
        self.client, self.offsets = dist._client, offsets
        if dist.layout == _dtypes.sparse_csr:
            return SparseCsrTensor._make_csr(crow, col, val, dist.shape)
        out = SparseTensor._make(np.stack([_formats.csr_to_coo(crow), col]), val, dist.shape, coalesced=True)
        out._cache["csr"] = (crow, out._idx[1], out._val)
        return out

    def backward(self, grad):
        batch, o = Batch(self.client, "gather-backward"), self.offsets
        slices = [grad[o[p]:o[p + 1]] for p in range(o.shape[0] - 1)]
        return (DistValues(self.client, [batch.source("grad", w.array, g, p=p)
                                         for p, g in enumerate(slices)]),)


class Transpose(Function):
    """``T = A.t()``, partitioned by T's rows (about equal stored entries each): a pure
    move of values, so T's gradient goes back to A by the transpose of the move."""

    _name = "TBackward0"

    def forward(self, dist):
        cuts = dist._column_cuts()
        self.dist, self.cuts = dist, cuts
        return DistSparse(dist._client, dist._transposed(cuts), cuts, dist.shape[::-1], dist.dtype)

    def backward(self, grad: DistValues):
        dist = self.dist
        batch = Batch(dist._client, "t-backward")
        parts = batch.map("grad", w.with_values, dist._transposed(self.cuts), grad.futures)
        back = transpose_parts(batch, parts, self.cuts, dist.shape[0], dist.row_starts)
        return (DistValues(dist._client, batch.map("values", w.values, back)),)


# from_sparse takes more parts than rows (the extra ones empty) up to this many: beyond,
# the count is refused by name, before NumPy fails to allocate the cuts or the backward's
# messages between every two parts (about 3 nparts^2 tasks) take minutes.
MAX_EMPTY_PARTS = 1024


def from_sparse(a, nparts: int, client=None) -> DistSparse:
    """A sparse matrix (COO or CSR) cut into ``nparts`` blocks of whole rows with about
    equal stored entries, kept on the workers of ``client``'s Dask cluster (by default
    Dask's current client).

    The parts hold the coalesced matrix, so ``from_sparse(a, n).gather()`` equals
    ``a.coalesce()``. Each part travels inside the task that makes it, so the cluster can
    make it again if its worker is lost. Differentiable: when ``a`` requires grad, the
    gradient of the result flows back to ``a``. ``nparts`` may exceed a's rows (the parts
    past them are empty), up to 1024 parts.

    Examples
    --------
    >>> import sparse_ref as sr, sparse_ref.distributed as srd
    >>> a = sr.sparse_coo_tensor([[0, 0, 1, 3], [0, 2, 1, 3]], [1., 2., 3., 4.], (4, 4))
    >>> A = srd.from_sparse(a, 2)
    >>> A.shape, A.nparts, A.nnz_per_part()
    ((4, 4), 2, [2, 2])
    """
    if not isinstance(a, SparseTensor):
        raise ArgumentTypeError("from_sparse: a must be a sparse matrix (COO or CSR), got "
                                f"{type(a).__name__}")
    _validate.sparse_layout(a, "a", "from_sparse")
    if isinstance(nparts, bool) or not isinstance(nparts, (int, np.integer)) or nparts < 1:
        raise ArgumentError(f"from_sparse: nparts must be a positive int, got {nparts!r}")
    if nparts > max(a.shape[0], MAX_EMPTY_PARTS):
        raise ArgumentError(f"from_sparse: nparts={nparts} is more than the {a.shape[0]} rows of a and more "
                            f"than {MAX_EMPTY_PARTS}: a part holds whole rows, so the parts past the rows are "
                            "empty, and the ops send a message between every two parts")
    if _dtypes.is_half(a.dtype):  # the workers scale and combine products in the stored dtype
        raise DTypeError(f"from_sparse: {a.dtype.name} is not supported on a cluster (yet): its products "
                         "would round more than once there; use a.float() or multiply on one machine")
    return Distribute.apply(a, int(nparts), current_client(client, "from_sparse"))

"""The reverse-mode engine: what a graph node is, and how ``backward`` walks the graph.

A tensor made by a differentiable op remembers that op as its ``grad_fn`` (a
:class:`Function` instance), and the op remembers its inputs. ``backward`` visits the ops
from the output back to the leaves in topological order, so that every op has received
the gradient from all of its consumers before it passes gradients on.

The walk is Kahn's algorithm: count, for every op, the edges that will bring it a
gradient; run an op when its count reaches zero, so a result used twice (``y + y * 3``,
a residual connection) has received both contributions before it passes them on.

How gradients are carried (the "masked" convention for sparse tensors):

- for a dense ``Tensor``: an ndarray of the tensor's shape;
- for a ``SparseTensor``: an ndarray with one value per entry of the tensor's *coalesced*
  pattern (row-major order). It is the gradient of the loss with respect to the dense
  matrix that the tensor represents, restricted to the stored positions: entries that
  are not stored get no gradient, and explicit zeros do. A leaf's ``.grad`` is then a
  coalesced ``SparseTensor`` with exactly that pattern.
"""

from __future__ import annotations

import threading

import numpy as np

from sparse_ref import _backend, _formats, _memory
from sparse_ref._arrays import converted
from sparse_ref._grad_mode import _state
from sparse_ref._tensor import SparseTensor, Tensor


class External:
    """A tensor whose data lives outside this process (the matrices of
    ``sparse_ref.distributed``, kept on Dask workers). The engine walks through it as
    through any tensor; its gradient is carried in whatever form its own ops return, and
    ``_accumulate`` adds one to its ``.grad`` (the engine never looks inside)."""

    requires_grad = False
    grad_fn = None

    def _accumulate(self, grad) -> None:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError


class RowGrad:
    """The gradient of a dense tensor that is zero outside some of its rows, carried as
    those rows: ``rows`` (int64, one per entry, repeats allowed) and ``values`` (one row
    each), torch's sparse gradient of an embedding (``sparse=True``). A leaf's ``.grad``
    gets it as an uncoalesced sparse COO tensor with one sparse dim (the rows), as
    torch's; an op's backward, or a dense gradient it meets, gets it dense."""

    __slots__ = ("rows", "values", "shape")
    __array_ufunc__ = None  # (ndarray + RowGrad comes here, to __radd__)

    def __init__(self, rows: np.ndarray, values: np.ndarray, shape: tuple):
        self.rows, self.values, self.shape = rows, values, tuple(shape)

    @property
    def dtype(self):
        return self.values.dtype

    def dense(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=self.values.dtype)
        np.add.at(out, self.rows, self.values)  # (in the entries' order, a repeated row summed in turn)
        return out

    def sparse(self) -> SparseTensor:
        return SparseTensor._make(self.rows.reshape(1, -1), self.values, self.shape, coalesced=False)

    def __add__(self, other):
        if isinstance(other, RowGrad):
            return RowGrad(np.concatenate([self.rows, other.rows]), np.concatenate([self.values, other.values]),
                           self.shape)
        return self.dense() + other

    def __radd__(self, other):
        return other + self.dense()


def _is_tensor(x) -> bool:
    return isinstance(x, (Tensor, SparseTensor, External))


def _any_requires_grad(args) -> bool:
    for a in args:  # (a loop, not any(): every op call asks it)
        if getattr(a, "requires_grad", False) is True:
            return True
    return False


def _prepared(args: tuple, pooled: bool, whole: bool):
    """``(seen, large)``: ``args``, with each sparse tensor as it is now if ``whole`` (a
    ``SparseTensor._now``, inlined: one state, which another thread's in-place op cannot
    change under the kernels), and whether a dense one is large (``pooled`` ops only: the
    library's own). A tensor given twice becomes two such objects, each whole (no op asks
    whether its operands are one object)."""
    seen, large = [], False
    limit = _memory.large_bytes() if pooled else -1
    for a in args:  # (one plain loop: every op call runs this)
        if whole and isinstance(a, SparseTensor):
            one = _new(type(a))
            one.__dict__ = a.__dict__
            a = one
        elif limit >= 0 and isinstance(a, Tensor) and a._data.nbytes >= limit:
            large = True
        seen.append(a)
    return tuple(seen), large


_new = object.__new__


class Function:
    """One differentiable op. Subclasses define ``forward`` and ``backward`` side by side.

    ``forward(self, *args)`` computes the output from the inputs (tensors and plain
    values) and keeps on ``self`` what ``backward`` will need. A sparse input arrives as
    it is at the call (``SparseTensor._now``: another thread's in-place op cannot change
    it under forward), so forward reads it, and changes nothing on it. ``backward(self, grad)``
    takes the gradient of the output and returns one gradient per argument of forward
    (None where there is none). ``name()`` is what ``grad_fn`` shows, as in torch.

    Examples
    --------
    >>> import numpy as np, sparse_ref as sr
    >>> class Square(sr.autograd.Function):
    ...     _name = "SquareBackward0"
    ...     def forward(self, x):
    ...         self.x = x._data
    ...         return sr.Tensor(x._data ** 2)
    ...     def backward(self, grad):
    ...         return (2 * np.conj(self.x) * grad,)
    >>> x = sr.tensor([3.], requires_grad=True)
    >>> Square.apply(x).sum().backward()
    >>> x.grad
    tensor([6.])
    """

    _name = "Function"
    active = 0  # how many backward passes are inside this node right now (see _run_node)
    # Positions of the arguments whose data backward reads (None: every tensor argument).
    # Their version counters are recorded at forward and checked before backward.
    saves = None
    # True: backward reads forward's output (exp, tanh, softmax, ...), so an in-place change
    # of the output (or of a view or detach() of it) makes backward raise, as torch's.
    saves_output = False
    # True: forward reads each sparse input's arrays in one read (``_csr()``: one state's
    # cache), so outside a graph it may get the inputs as they are, not ``_now()`` views
    # (the commonest product then makes no extra object: see the per-call benchmark)
    reads_whole = False
    out_version = None  # (the output's version counter, its version at forward)
    # A weak reference to the output, when it called retain_grad(): backward fills its .grad.
    retained = None
    # True: backward returns new arrays that nothing else holds (a kernel's fresh outputs),
    # so a leaf's first .grad may be one of them as it is instead of a copy (as torch
    # steals an unshared gradient). An array returned for two inputs is still copied.
    fresh_grads = False

    def name(self) -> str:
        return self._name

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # the library's own ops run with NumPy's allocator pointed at the output cache when
        # an input is large; a user's Function runs with the allocator it was called with
        # (its forward may start tasks or callbacks, which would keep the cache's allocator)
        cls._pooled = cls.__module__.startswith("sparse_ref.")

    _pooled = False

    def __init__(self):
        self.inputs: tuple = ()
        self.needs: tuple = ()
        self.released = False

    @classmethod
    def apply(cls, *args):
        fn = cls()
        recording = _state.enabled
        graph = recording and _any_requires_grad(args)
        # forward sees each sparse input in one state (unless it reads them whole itself and
        # nothing is saved for backward: then the objects are not worth making)
        seen, large = _prepared(args, cls._pooled, graph or not cls.reads_whole)
        _state.enabled = False  # forward runs with grad mode off, as torch runs it: ops
        try:                    # inside it record nothing (backward is this Function's)
            if large:  # large outputs start on a 2 MiB page, as torch's on a line
                out = _memory.call_pooled(fn.forward, seen)
            else:
                out = fn.forward(*seen)
        finally:
            _state.enabled = recording
        for a in seen:  # an input handed back: a new tensor on its data, so the caller's
            if out is a:  # stays as it was (a leaf stays a leaf). (A loop, not any(): every
                out = out.detach()  # op call asks it)
                break
        if graph:
            needs = tuple(_is_tensor(a) and a.requires_grad for a in args)
            if any(needs):
                fn.inputs = args
                fn.needs = needs
                # the versions of the saved inputs (a sparse tensor's in-place op gives it
                # new arrays, which backward would read instead of the ones forward used)
                saved = cls.saved_positions(needs, len(args))
                fn.versions = [(p, args[p]._version[0]) for p in saved
                               if isinstance(args[p], (Tensor, SparseTensor))]  # (External: no data here)
                # and the patterns of every sparse input: a gradient is carried as values on
                # an operand's coalesced pattern, which backward reads whatever the op saves
                fn.patterns = [(p, a._pattern) for p, a in enumerate(seen) if isinstance(a, SparseTensor)]
                fn._seen = seen  # (a sparse leaf's gradient takes the pattern forward saw)
                # what the gradient of the output must be: its shape, or (sparse) one value
                # for each entry of its coalesced pattern; _run_node checks it, since a
                # .data set on the output, or an in-place change of its entries under
                # no_grad, would otherwise hand backward a gradient its kernels read past
                if isinstance(out, Tensor):
                    fn.grad_shape = out._data.shape
                elif isinstance(out, SparseTensor):
                    fn.grad_shape = (out._now()._coalesced_form()._nnz(),)
                if cls.saves_output:
                    fn.out_version = (out._version, out._version[0])
                fn.backend = _backend.get_backend()  # backward runs on the forward's kernels
                if isinstance(out, (Tensor, SparseTensor)):  # (no check: an op's result, any dtype)
                    out._requires_grad = True
                else:  # an External tensor keeps its own flag
                    out.requires_grad = True
                out.grad_fn = fn
        return out

    patterns = ()

    @classmethod
    def saved_positions(cls, needs: tuple, n_args: int):
        """The positions of the arguments whose data backward will read, given which inputs
        need a gradient (``saves``, or every argument; an op can say more, as MatMul)."""
        return range(n_args) if cls.saves is None else cls.saves

    def check_versions(self) -> None:
        """Raise torch's error if an input whose data backward needs was changed in place, or
        a sparse input's pattern was (``SparseTensor._update``)."""
        for p, pattern in self.patterns:
            t = self.inputs[p]
            if t._pattern != pattern:
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified by an "
                    f"inplace operation: [{t.layout!r} {t.dtype.name} {list(t.shape)}] has other stored "
                    "entries than when the graph used it (an in-place op changed its pattern). Hint: do "
                    "the in-place change after backward, or on a .clone()."
                )
        if self.out_version is not None and self.out_version[0][0] != self.out_version[1]:
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: output 0 of {self._name} is at version {self.out_version[0][0]}; "
                f"expected version {self.out_version[1]} instead. Hint: do the in-place change after "
                "backward, or on a .clone()."
            )
        for p, version in self.versions:
            t = self.inputs[p]
            if t._version[0] != version:
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified by an "
                    f"inplace operation: [{t.layout!r} {t.dtype.name} {list(t.shape)}] is at version "
                    f"{t._version[0]}; expected version {version} instead. Hint: do the in-place "
                    "change after backward, or on a .clone()."
                )

    def forward(self, *args):  # pragma: no cover - every op overrides it
        raise NotImplementedError

    def backward(self, grad):  # pragma: no cover - every op overrides it
        raise NotImplementedError

    def release(self) -> None:
        """Drop what forward saved (after a backward without ``retain_graph``)."""
        keep = {"inputs", "needs", "released", "_name", "versions", "patterns", "out_version", "backend", "active",
                "retained"}
        for key in [k for k in vars(self) if k not in keep]:
            delattr(self, key)
        self.released = True

    def next_functions(self):
        return tuple((a.grad_fn if _is_tensor(a) else None) for a in self.inputs)

    def __repr__(self) -> str:
        return f"<{self._name}>"


def _consumer_counts(root_fn: Function) -> dict:
    """For every op reachable from root_fn: how many edges of the graph feed it a gradient."""
    counts, stack, seen = {id(root_fn): 0}, [root_fn], {id(root_fn)}
    while stack:
        fn = stack.pop()
        for a in fn.inputs:
            nxt = a.grad_fn if _is_tensor(a) else None
            if nxt is None:
                continue
            counts[id(nxt)] = counts.get(id(nxt), 0) + 1
            if id(nxt) not in seen:
                seen.add(id(nxt))
                stack.append(nxt)
    return counts


def seed_gradient(root, gradient):
    """The gradient that starts backward, in the carried form for ``root``."""
    if gradient is None:
        if isinstance(root, SparseTensor) or root._data.size != 1:
            raise RuntimeError("grad can be implicitly created only for scalar outputs")
        if root.dtype.kind == "c":  # d(complex)/dz has no one seed: torch asks for it too
            raise RuntimeError("grad can be implicitly created only for real scalar outputs but got "
                               f"sparse_ref.{root.dtype.name}")
        return np.ones(root.shape, dtype=root.dtype)
    # G of another dtype is cast to the output's, as torch casts it (a value the output's
    # dtype cannot hold, as a complex part for a real output, is refused)
    cast = (lambda x: x if x.dtype == root.dtype else converted(x, root.dtype, "backward: gradient"))
    if isinstance(root, Tensor):
        data = gradient._data if isinstance(gradient, Tensor) else None  # (read once)
        if data is None or data.shape != root.shape:
            raise RuntimeError(
                f"backward: gradient must be a dense tensor of shape {root.shape} and dtype "
                f"{root.dtype.name}, got {_describe(gradient)}"
            )
        # a read-only view, not a copy (as torch passes G itself): backward only reads it,
        # and whatever keeps a gradient (a leaf's .grad, retain_grad) keeps its own copy
        seed = np.asarray(cast(data)).view()
        seed.flags.writeable = False
        return seed
    pattern = root._now()._coalesced_form()._idx
    if isinstance(gradient, Tensor) and gradient.shape == root.shape:
        return np.ascontiguousarray(cast(gradient._data[tuple(pattern)]))  # a dense G, masked
    if isinstance(gradient, SparseTensor) and gradient.shape == root.shape:
        g = gradient._now()._coalesced_form()
        return _formats.values_at(g._idx, cast(g._val), pattern)
    raise RuntimeError(
        f"backward: gradient must be a tensor (dense or sparse) of shape {root.shape} and dtype "
        f"{root.dtype.name}, got {_describe(gradient)}"
    )


def _describe(x) -> str:
    if _is_tensor(x):
        return f"a {x.layout!r} tensor of shape {x.shape} and dtype {x.dtype.name}"
    return type(x).__name__


# One lock for every leaf's .grad: two threads' backward into one shared weight add exactly
# (a read-add-write without it loses updates). Held only for the addition itself.
_grad_lock = threading.Lock()
# Guards the "is this graph already freed?" check against another thread freeing it.
_graph_lock = threading.Lock()


def _accumulate_leaf(leaf, grad: np.ndarray, fresh: bool = False, seen=None) -> None:
    with _grad_lock:
        _add_to_grad(leaf, grad, fresh, seen)


def _add_to_grad(leaf, grad: np.ndarray, fresh: bool = False, seen=None) -> None:
    """Add ``grad`` to ``leaf.grad``. The first gradient is copied, unless ``fresh`` (an
    array that nothing else holds: see ``Function.fresh_grads``) -- a later in-place change
    of the .grad must not reach anything else. A sparse leaf's gradient has the coalesced
    pattern of ``seen`` (the leaf as the op's forward saw it), else of the leaf now."""
    if isinstance(leaf, External):  # its gradient's form is its own business
        leaf._accumulate(grad)
    else:
        leaf.grad = _plus(leaf, leaf.grad, grad, fresh, seen)


def _plus_rows(leaf, held, grad):
    """A dense leaf's gradient so far (``held``: None, dense, or the sparse one of earlier
    :class:`RowGrad` s) with ``grad`` added, as torch's: sparse while every part is a
    RowGrad (their entries one after the other, uncoalesced), dense once one is dense."""
    if grad.shape != leaf.shape:
        raise RuntimeError(f"backward: the gradient has shape {list(grad.shape)}, but the leaf now has shape "
                           f"{list(leaf.shape)} (its .data was replaced after the graph was built)")
    if isinstance(held, SparseTensor):
        held = held._now()
        if isinstance(grad, RowGrad) and held.sparse_dim() == 1 and held.dtype == grad.dtype:
            return SparseTensor._make(np.concatenate([held._idx, grad.rows.reshape(1, -1)], axis=1),
                                      np.concatenate([held._val, grad.values]), leaf.shape, coalesced=False)
        held = held.to_dense()  # (a sparse .grad of another form, assigned by hand: added densely)
    if held is None:
        return grad.sparse() if isinstance(grad, RowGrad) else Tensor(np.array(grad))
    if isinstance(grad, RowGrad) and held._data.flags.writeable and held._data.dtype == grad.dtype:
        np.add.at(held._data, grad.rows, grad.values)  # in place, as a dense .grad is added to
        held._version[0] += 1
        return held
    return Tensor(held._data + (grad.dense() if isinstance(grad, RowGrad) else grad))


def _plus(leaf, held, grad: np.ndarray, fresh: bool = False, seen=None):
    """``held`` (a gradient of ``leaf`` so far, or None) with ``grad`` added, as
    :func:`_add_to_grad` adds it to ``leaf.grad``: the tensor to keep (a dense ``held``
    that can be written is added to in place)."""
    if isinstance(leaf, SparseTensor):  # COO or CSR: the gradient has the coalesced pattern
        pattern = (leaf._now() if seen is None else seen)._coalesced_form()
        if grad.shape[:1] != (pattern._nnz(),):  # (another thread changed its pattern just now)
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: [{leaf.layout!r} {leaf.dtype.name} {list(leaf.shape)}] has other "
                "stored entries than its gradient (an in-place op changed its pattern during backward)")
        if isinstance(held, SparseTensor):
            held = held._now()  # (one state of it: see SparseTensor._now)
        if held is None:
            return pattern._with_values(np.array(grad, copy=not fresh))
        if held.is_coalesced() and held._nnz() == pattern._nnz() and (
                held._idx is pattern._idx or np.array_equal(held._idx, pattern._idx)):
            return held._with_values(held._val + grad)
        else:  # a .grad assigned with another pattern: added where each entry is (the union,
            # as torch), not by position: both sets of entries, coalesced (held's first)
            both = SparseTensor._make(np.concatenate([held._idx, pattern._idx], axis=1),
                                      np.concatenate([held._val, grad]), leaf.shape, coalesced=False)
            summed = both.coalesce()
            return summed.to_sparse_csr() if leaf.is_sparse_csr else summed
    else:
        if isinstance(grad, RowGrad) or isinstance(held, SparseTensor):
            return _plus_rows(leaf, held, grad)
        if grad.shape != leaf.shape:  # the leaf's .data was replaced by one of another shape
            raise RuntimeError(f"backward: the gradient has shape {list(grad.shape)}, but the leaf now has shape "
                               f"{list(leaf.shape)} (its .data was replaced after the graph was built)")
        if held is None:
            return Tensor(np.array(grad, copy=not fresh))
        if held._data.flags.writeable and held._data.dtype == grad.dtype:
            np.add(held._data, grad, out=held._data)  # in place, as torch's: g = x.grad sees it
            held._version[0] += 1
            return held
        # (a read-only .grad, or one of another dtype assigned by hand)
        return Tensor(held._data + grad)


def backward(root, gradient=None, retain_graph: bool = False) -> None:
    """Compute the gradients of ``root`` with respect to every leaf that requires them,
    and add them to the leaves' ``.grad`` (what ``tensor.backward()`` calls).

    ``gradient`` is required unless ``root`` has one element. For a sparse ``root`` it may
    be dense (it is then masked to root's pattern) or sparse. Without ``retain_graph`` the
    graph's saved arrays are freed, and a second backward through it raises.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> x = sr.tensor([1., 2.], requires_grad=True)
    >>> sr.autograd.backward((x * x).sum())
    >>> x.grad
    tensor([2., 4.])
    """
    if not root.requires_grad:
        raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    _backward(root, seed_gradient(root, gradient), retain_graph)


def _backward(root, seed, retain_graph: bool, into: dict | None = None) -> None:
    """The backward pass from ``root`` with its gradient ``seed`` (carried form). Into the
    leaves' ``.grad``, or, with ``into`` ({id(tensor): [tensor, gradient so far]}), only
    into the gradients of those tensors (leaves or not), and no ``.grad`` at all."""

    def deliver(tensor, g, fresh=False, seen=None):
        if into is None:
            _accumulate_leaf(tensor, g, fresh, seen)
        elif id(tensor) in into:
            slot = into[id(tensor)]
            with _grad_lock:
                slot[1] = _plus(tensor, slot[1], g, fresh, seen)

    if root.grad_fn is None:
        deliver(root, seed)
        return
    outputs = {}  # with ``into``: the tensors in it that an op made, by that op
    for tensor, _ in (into or {}).values():
        if tensor.grad_fn is not None:
            outputs.setdefault(id(tensor.grad_fn), []).append(tensor)
    needed = None if into is None else _leading_to(root.grad_fn, into)
    # Kahn's order: an op runs once every consumer of its output has passed its gradient.
    # An op whose incoming gradients were all None still "runs" (it passes None on), so
    # the ops below it are released and no other path into them is starved.
    pending = _consumer_counts(root.grad_fn)
    grads = {id(root.grad_fn): seed}
    ready = [root.grad_fn]
    while ready:
        fn = ready.pop()
        grad = grads.pop(id(fn), None)
        if grad is not None:
            for tensor in outputs.get(id(fn), ()):  # a tensor asked for: this output's whole gradient
                deliver(tensor, grad)
            if needed is not None and id(fn) not in needed:
                grad = None  # nothing asked for lies below: not run, not freed (as torch's grad)
        if grad is not None and fn.retained is not None and fn.retained() is not None:
            _accumulate_leaf(fn.retained(), grad)  # retain_grad(): this output's whole gradient
        seen = fn.__dict__.get("_seen")  # (the inputs as forward saw them; release drops it)
        if grad is None:
            in_grads = (None,) * len(fn.inputs)
        else:
            in_grads = _run_node(fn, grad, retain_graph)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)  # one input, one gradient: a bare return is allowed
            if len(in_grads) != len(fn.inputs):
                raise RuntimeError(f"function {fn.name()} returned an incorrect number of gradients "
                                   f"(expected {len(fn.inputs)}, got {len(in_grads)})")
            if not type(fn).__module__.startswith("sparse_ref."):
                in_grads = _checked_grads(fn, in_grads, seen)
        for i, (a, need, g) in enumerate(zip(fn.inputs, fn.needs, in_grads)):
            if not need:
                continue
            if a.grad_fn is None:
                if g is not None:
                    deliver(a, g, fn.fresh_grads and sum(x is g for x in in_grads) == 1, seen[i])
                continue
            key = id(a.grad_fn)
            if g is not None:
                if isinstance(g, RowGrad):  # (an op's backward takes a dense gradient)
                    g = g.dense()
                grads[key] = g if key not in grads else grads[key] + g
            pending[key] -= 1
            if pending[key] == 0:
                ready.append(a.grad_fn)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph: bool = False,
         allow_unused=None, is_grads_batched: bool = False, materialize_grads: bool = False) -> tuple:
    """The gradients of ``outputs`` with respect to ``inputs``, returned instead of added
    to ``.grad`` (torch's ``torch.autograd.grad``): no tensor's ``.grad`` changes.

    ``outputs`` and ``inputs`` are tensors or sequences of them; ``inputs`` may be leaves
    or tensors made by ops (their whole gradient). ``grad_outputs``, one per output, as
    ``backward``'s ``gradient`` (None for a one-element output). An input the outputs do
    not depend on is an error unless ``allow_unused`` (its gradient is then None, or zeros
    with ``materialize_grads``). The graph is freed unless ``retain_graph``. Higher-order
    gradients (``create_graph=True``) and ``is_grads_batched`` are not supported.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> x = sr.tensor([1., 2.], requires_grad=True)
    >>> sr.autograd.grad((x * x).sum(), x)
    (tensor([2., 4.]),)
    >>> x.grad is None
    True
    """
    if create_graph:
        raise NotImplementedError("grad: create_graph=True (higher-order gradients) is not supported in sparse_ref: "
                                  "its backward ops are not differentiable themselves")
    if is_grads_batched:
        raise NotImplementedError("grad: is_grads_batched=True is not supported in sparse_ref")
    if materialize_grads and allow_unused is False:
        raise ValueError("Expected allow_unused to be True or not passed when materialize_grads=True, but got: "
                         "allow_unused=False.")
    outputs = _tensors(outputs, "outputs")
    inputs = _tensors(inputs, "inputs")
    if not inputs:
        raise RuntimeError("grad requires non-empty inputs.")
    if grad_outputs is None or _is_tensor(grad_outputs):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    else:
        grad_outputs = list(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"grad requires one grad_output per output: got {len(grad_outputs)} for "
                           f"{len(outputs)} outputs")
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"One of the differentiated Tensors (inputs[{i}]) does not require grad")
    for i, out in enumerate(outputs):
        if not out.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
    seeds = [seed_gradient(out, g) for out, g in zip(outputs, grad_outputs)]  # (all checked first)
    into = {id(t): [t, None] for t in inputs}
    keep = bool(retain_graph)
    for k, (out, seed) in enumerate(zip(outputs, seeds)):  # each output's pass; a shared graph is
        _backward(out, seed, keep or k < len(outputs) - 1, into)  # kept until the last one
    result = []
    for i, t in enumerate(inputs):
        g = into[id(t)][1]
        if g is None:
            if not allow_unused and not materialize_grads:
                raise RuntimeError(f"One of the differentiated Tensors (inputs[{i}]) appears to not have been "
                                   "used in the graph. Set allow_unused=True if this is the desired behavior.")
            if materialize_grads:
                g = _zeros_like(t)
        result.append(g)
    return tuple(result)


def _tensors(x, what: str) -> list:
    if _is_tensor(x):
        return [x]
    if isinstance(x, (list, tuple)) and all(_is_tensor(t) for t in x):
        return list(x)
    raise TypeError(f"grad: {what} must be a tensor or a sequence of tensors, got {type(x).__name__}")


def _zeros_like(t):
    """A zero gradient of ``t``'s form: dense zeros, or ``t``'s coalesced pattern with zeros."""
    if isinstance(t, SparseTensor):
        pattern = t._now()._coalesced_form()
        return pattern._with_values(np.zeros_like(pattern._val))
    return Tensor(np.zeros(t.shape, dtype=t.dtype))


def _leading_to(root_fn: Function, into: dict) -> set:
    """The ids of the ops below ``root_fn`` whose backward a gradient of a tensor in
    ``into`` needs: an op with such a leaf among its inputs, or an input made by an op
    that is one or that ``into`` asks for."""
    wanted = {id(t.grad_fn) for t, _ in into.values() if t.grad_fn is not None}
    pending, order, ready = _consumer_counts(root_fn), [], [root_fn]
    while ready:  # Kahn's order, as backward walks: every op after all that feed it
        fn = ready.pop()
        order.append(fn)
        for a in fn.inputs:
            nxt = a.grad_fn if _is_tensor(a) else None
            if nxt is not None:
                pending[id(nxt)] -= 1
                if pending[id(nxt)] == 0:
                    ready.append(nxt)
    needed = set()
    for fn in reversed(order):  # each op after every op below it: one pass
        for a in fn.inputs:
            if not _is_tensor(a):
                continue
            below = a.grad_fn
            if (below is None and id(a) in into) or (below is not None and (
                    id(below) in needed or id(below) in wanted)):
                needed.add(id(fn))
                break
    return needed


def _checked_grads(fn: Function, in_grads: tuple, seen: tuple) -> tuple:
    """The gradients a Function of your own returned, checked as torch checks them: one
    for each value of its input -- a dense input's shape, a sparse input's values in its
    coalesced pattern (an array of another length was kept, and a kernel read past its
    end later) -- and in the input's dtype (cast, refusing what the dtype cannot hold)."""
    out = []
    for i, (a, need, g) in enumerate(zip(fn.inputs, fn.needs, in_grads)):
        if need and g is not None:
            if isinstance(g, Tensor) and not isinstance(g, SparseTensor):
                g = g._data
            if not isinstance(g, (np.ndarray, np.generic, int, float, complex)):
                raise RuntimeError(f"function {fn.name()} returned an invalid gradient at index {i}: "
                                   f"expected an array, got {type(g).__name__}")
            g = np.asarray(g)
            want = seen[i]._coalesced_form()._val.shape if isinstance(a, SparseTensor) else a.shape
            if g.shape != tuple(want):
                what = "its values in the coalesced pattern" if isinstance(a, SparseTensor) else "its shape"
                raise RuntimeError(f"function {fn.name()} returned an invalid gradient at index {i} - got "
                                   f"{list(g.shape)} but expected {list(want)} ({what})")
            if g.dtype != a.dtype:
                g = converted(g, a.dtype, f"function {fn.name()}, gradient at index {i}")
        out.append(g)
    return tuple(out)


def _run_node(fn: Function, grad, retain_graph: bool):
    """``fn.backward(grad)`` on the backend its forward ran on, after checking that the
    graph is still there and its saved inputs unchanged; frees fn unless retain_graph."""
    with _graph_lock:  # another thread's backward may be freeing this graph right now
        if fn.released:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved tensors "
                "after they have already been freed). Specify retain_graph=True if you need to backward "
                "through the graph a second time."
            )
        fn.active += 1
        if not retain_graph:
            fn.released = True  # claimed: from now on, any other backward through it raises
    token = None
    try:
        fn.check_versions()
        want = fn.__dict__.get("grad_shape")
        if want is not None and np.shape(grad)[:len(want)] != want:
            raise RuntimeError(
                f"Mismatch in shape: the gradient of the output of {fn.name()} has shape "
                f"{list(np.shape(grad))}, but the output's (its shape, or its stored entries if sparse) "
                f"was {list(want)} when the graph was built (was its .data set, or its stored entries "
                "changed in place, since?)")
        token = _backend._enter(fn.backend)
        if (isinstance(grad, np.ndarray) and not grad.flags.writeable
                and not type(fn).__module__.startswith("sparse_ref.")):
            # sparse_ref's own ops only read their gradient, which may be a read-only view
            # (backward(G)'s G, sum()'s broadcast); a Function of your own gets an array it
            # may change in place, as it always did
            grad = np.array(grad)
        return fn.backward(grad)
    finally:
        if token is not None:
            _backend._context.reset(token)
        with _graph_lock:
            fn.active -= 1
            if fn.released and fn.active == 0:
                fn.release()

"""``sr.nn``: the small part of ``torch.nn`` a course's models use (layer 5):
:class:`Module` (parameters, ``zero_grad``, ``train``/``eval``, ``__call__``),
:class:`Parameter`, :class:`Linear`, :class:`Sequential`, :class:`ModuleList`, the
activations, dropout and losses as modules, and :mod:`sparse_ref.nn.functional`.

Examples
--------
>>> import sparse_ref as sr
>>> class TwoLayer(sr.nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.hidden = sr.nn.Linear(3, 4)
...         self.out = sr.nn.Linear(4, 2)
...     def forward(self, x):
...         return self.out(sr.relu(self.hidden(x)))
>>> model = TwoLayer()
>>> [name for name, _ in model.named_parameters()]
['hidden.weight', 'hidden.bias', 'out.weight', 'out.bias']
>>> model(sr.ones(5, 3)).shape
(5, 2)
"""

from __future__ import annotations

import collections
import math

import numpy as np

from sparse_ref import _dtypes, _factories, _tensor_str
from sparse_ref._arrays import converted
from sparse_ref._errors import ArgumentError, ShapeError, missing
from sparse_ref._tensor import SparseTensor, Tensor
from sparse_ref.nn import functional, init, utils

__all__ = ["BatchNorm1d", "BCEWithLogitsLoss", "CrossEntropyLoss", "Dropout", "Embedding", "LayerNorm", "LeakyReLU",
           "Linear", "MSELoss", "Module", "ModuleList", "NLLLoss", "Parameter", "ReLU", "Sequential", "Sigmoid", "Tanh",
           "functional", "init", "utils"]


class Parameter(Tensor):
    """A tensor that is a model's weight: a leaf that requires grad (unless told not to),
    which :meth:`Module.parameters` finds. It shares the memory of the tensor it wraps.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> w = sr.nn.Parameter(sr.zeros(2))
    >>> w.requires_grad, w.is_leaf
    (True, True)
    """

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = Tensor(np.empty(0, dtype=_dtypes.default_dtype))
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter: data must be a dense Tensor, got {type(data).__name__}")
        super().__init__(data._data, requires_grad=requires_grad)
        # the same memory, so the same version counter (as detach() shares it): an in-place
        # step on the parameter is a change to the data a graph of ``data`` saved, and its
        # backward must refuse it, as torch's does
        self._version = data._version

    def __deepcopy__(self, memo):
        # as torch's: a copy of the data and of requires_grad, without the .grad (a plain
        # tensor's deepcopy keeps it)
        new = super().__deepcopy__(memo)
        new._grad = None
        return new

    def __repr__(self) -> str:
        return "Parameter containing:\n" + _tensor_str.dense_str(self)


class IncompatibleKeys(collections.namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` skipped; prints as torch's when nothing was."""

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()


class Module:
    """The base of a model: set :class:`Parameter` s and sub-modules as attributes in
    ``__init__`` and write ``forward``; calling the module calls ``forward``.
    ``parameters()`` lists a module's own parameters in the order they were set, then each
    sub-module's, as torch does."""

    training = True

    def __init__(self):
        self.training = True

    def __setattr__(self, name, value):
        # a name once set to a Parameter stays a parameter's place, also while it holds
        # None (as torch's: ``lin.bias = None`` then a plain tensor is refused, not taken
        # as an attribute that parameters() would never list)
        names = self.__dict__.get("_parameter_names", frozenset())
        if ((name in names or isinstance(self.__dict__.get(name), Parameter))
                and not (value is None or isinstance(value, Parameter))):
            raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                            "(sr.nn.Parameter or None expected)")
        buffers = self.__dict__.get("_buffer_names", {})
        if name in buffers:  # a buffer's place takes a tensor or None; a Parameter or a Module takes it over
            if isinstance(value, (Parameter, Module)):
                self.__dict__["_buffer_names"] = {k: v for k, v in buffers.items() if k != name}
                self.__dict__.pop(name, None)  # (so it comes after those set before, as torch lists it)
            elif not (value is None or isinstance(value, (Tensor, SparseTensor))):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                "(sr.Tensor or None expected)")
        if isinstance(value, Parameter) and name not in names:  # (a new set: a copy.copy shares none)
            self.__dict__["_parameter_names"] = names | {name}
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        object.__delattr__(self, name)
        names = self.__dict__.get("_parameter_names", frozenset())
        if name in names:  # deleted, the name is free again (as torch's)
            self.__dict__["_parameter_names"] = names - {name}
        buffers = self.__dict__.get("_buffer_names", {})
        if name in buffers:
            self.__dict__["_buffer_names"] = {k: v for k, v in buffers.items() if k != name}

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Keep ``tensor`` as ``self.<name>``: state of the module that is not a parameter
        (no gradient, no optimizer step), such as a running mean or a fixed mask, as
        torch's. ``state_dict`` and ``load_state_dict`` include it unless ``persistent``
        is False; ``to(dtype)`` casts it when it is floating point; ``buffers()`` and
        ``named_buffers()`` list it. Setting the attribute later replaces the buffer (a
        tensor or None).

        Examples
        --------
        >>> import sparse_ref as sr
        >>> class Scaled(sr.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.lin = sr.nn.Linear(2, 2)
        ...         self.register_buffer("scale", sr.tensor([1., 10.]))
        ...     def forward(self, x):
        ...         return self.lin(x) * self.scale
        >>> net = Scaled()
        >>> list(net.state_dict())
        ['scale', 'lin.weight', 'lin.bias']
        >>> [name for name, _ in net.named_parameters()]
        ['lin.weight', 'lin.bias']
        """
        if not isinstance(name, str):
            raise TypeError(f"buffer name should be a string. Got {type(name).__name__}")
        if "." in name:
            raise KeyError('buffer name can\'t contain "."')
        if name == "":
            raise KeyError('buffer name can\'t be empty string ""')
        buffers = self.__dict__.get("_buffer_names", {})
        if name not in buffers and (name in self.__dict__ or hasattr(type(self), name)):
            raise KeyError(f"attribute '{name}' already exists")
        if not (tensor is None or isinstance(tensor, (Tensor, SparseTensor))) or isinstance(tensor, Parameter):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            "(sr.Tensor or None required)")
        self.__dict__["_buffer_names"] = {**buffers, name: bool(persistent)}
        object.__setattr__(self, name, tensor)

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """``(name, buffer)`` of this module's buffers (those set, not None) and, with
        ``recurse``, its sub-modules', each once (unless ``remove_duplicate=False``), as
        torch's."""
        seen = set()
        for name, b, _ in self._named_buffers(prefix + "." if prefix else "", recurse):
            if id(b) not in seen or not remove_duplicate:
                seen.add(id(b))
                yield name, b

    def buffers(self, recurse: bool = True):
        return (b for _, b in self.named_buffers(recurse=recurse))

    def _named_buffers(self, prefix, recurse=True):
        # ``(name, buffer, persistent)``: a module's own first, in the order registered
        for name, persistent in self.__dict__.get("_buffer_names", {}).items():
            value = self.__dict__.get(name)
            if value is not None:
                yield prefix + name, value, persistent
        if recurse:
            for name, value in list(vars(self).items()):
                if isinstance(value, Module):
                    yield from value._named_buffers(f"{prefix}{name}.")

    def _named_state(self, prefix):
        # what state_dict holds, in torch's order: a module's own parameters, then its own
        # persistent buffers, then each sub-module's, depth first
        items = list(vars(self).items())
        for name, value in items:
            if isinstance(value, Parameter):
                yield prefix + name, value
        for name, value, persistent in self._named_buffers(prefix, recurse=False):
            if persistent:
                yield name, value
        for name, value in items:
            if isinstance(value, Module):
                yield from value._named_state(f"{prefix}{name}.")

    def forward(self, *args, **kwargs):  # pragma: no cover - every model overrides it
        raise NotImplementedError(f"Module [{type(self).__name__}] is missing the required \"forward\" function")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def named_children(self):
        """``(name, module)`` of each direct sub-module, each once (a module set under two
        names is listed under the first, as torch's)."""
        seen = set()
        for name, value in vars(self).items():
            if isinstance(value, Module) and id(value) not in seen:
                seen.add(id(value))
                yield name, value

    def children(self):
        return (m for _, m in self.named_children())

    def modules(self):
        yield self
        for child in self.children():
            yield from child.modules()

    def named_modules(self, prefix: str = ""):
        """``(name, module)`` of this module ("" for itself) and every sub-module, each
        once, as torch's."""
        seen = set()

        def walk(module, name):
            if id(module) in seen:
                return
            seen.add(id(module))
            yield name, module
            for child_name, child in module.named_children():
                yield from walk(child, f"{name}.{child_name}" if name else child_name)
        yield from walk(self, prefix)

    def apply(self, fn) -> "Module":
        """``fn(m)`` for every sub-module, then for this one (as torch's: to initialise
        weights, ``net.apply(init)``); returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def cpu(self) -> "Module":
        """``self``: sparse_ref runs on the CPU."""
        return self

    def __getattr__(self, name):
        # reached only for a name that is not set: torch's Module names sparse_ref lacks
        # (cuda, register_forward_hook, ...) say so, as sr's and Tensor's do
        raise missing(f"'{type(self).__name__}' object", name)

    def __repr__(self) -> str:
        """torch's layout: the class, its settings (``extra_repr``), each sub-module by name."""
        lines = [f"({name}): " + "\n  ".join(repr(child).splitlines()) for name, child in self.named_children()]
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        body = ([extra] if extra else []) + lines
        return f"{type(self).__name__}(\n  " + "\n  ".join(body) + "\n)"

    def extra_repr(self) -> str:
        """The settings a module prints inside its parentheses (override it, as in torch)."""
        return ""

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """``(name, parameter)`` of this module's and (with ``recurse``) its sub-modules',
        each once (unless ``remove_duplicate=False``), as torch's."""
        seen = set()
        for name, p in self._named_parameters(prefix + "." if prefix else "", recurse):  # ("x": x.weight, as torch)
            if id(p) not in seen or not remove_duplicate:
                seen.add(id(p))
                yield name, p

    def _named_parameters(self, prefix, recurse=True):
        # a module's own parameters first, then its sub-modules', each in the order set, as
        # torch's (it walks named_modules() and lists each module's own parameters)
        items = list(vars(self).items())
        for name, value in items:
            if isinstance(value, Parameter):
                yield prefix + name, value
        if recurse:
            for name, value in items:
                if isinstance(value, Module):
                    yield from value._named_parameters(f"{prefix}{name}.")

    def parameters(self, recurse: bool = True):
        return (p for _, p in self.named_parameters(recurse=recurse))

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (or, with ``set_to_none=False``, zero) every parameter's gradient."""
        for p in self.parameters():
            p._clear_grad(set_to_none)

    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Every parameter's ``requires_grad_`` (freezing a layer: ``layer.requires_grad_(False)``)."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def to(self, dtype) -> "Module":
        """Every parameter cast to ``dtype`` in place, as torch's (the same Parameter objects,
        so an optimizer made before still holds them; a gradient of the old dtype is
        dropped). ``"cpu"`` is accepted and changes nothing: sparse_ref has no other device.
        A value the dtype cannot hold is refused before any parameter changes."""
        if isinstance(dtype, str) and dtype.split(":")[0] in ("cpu", "cuda", "mps", "xpu"):
            if dtype.split(":")[0] != "cpu":
                raise ArgumentError(f"Module.to: sparse_ref runs on the CPU only, got device {dtype!r}")
            return self
        dt = _dtypes.as_dtype(dtype, "Module.to", dense=True)
        if _dtypes.kind(dt) not in "fc":  # (before anything changes)
            raise TypeError(f"nn.Module.to only accepts floating point or complex dtypes, but got desired "
                            f"dtype={dt.name}")
        # the floating-point parameters (an integer one, a count or an index, stays, as torch's)
        params = [p for p in self.parameters() if _dtypes.kind(p.dtype) in "fc"]
        cast = [p._data if p.dtype == dt else converted(p._data, dt, "Module.to") for p in params]
        # the floating-point buffers too (an integer one, a count or a mask, stays as it is,
        # as torch's): each becomes a new tensor of the dtype
        buffers = [(m, name, b.to(dt)) for m in self.modules() for name, b, _ in m._named_buffers("", recurse=False)
                   if b.dtype != dt and _dtypes.kind(b.dtype) in "fc" and _dtypes.kind(dt) in "fc"]
        for p, data in zip(params, cast):
            if p.dtype != dt:
                p.data = Tensor(data)
        for m, name, b in buffers:
            setattr(m, name, b)
        return self

    def double(self) -> "Module":
        return self.to(_dtypes.float64)

    def float(self) -> "Module":
        return self.to(_dtypes.float32)

    def half(self) -> "Module":
        return self.to(_dtypes.float16)

    def state_dict(self) -> dict:
        """Every parameter and persistent buffer (:meth:`register_buffer`), by name, in
        torch's order, as a tensor cut from the graph that shares its memory,
        as torch's: a later step changes it too, so keep a snapshot with
        ``copy.deepcopy(model.state_dict())`` (copies made here would make early stopping
        end on other parameters than the same script's in torch)."""
        return {name: p.detach() for name, p in self._named_state("")}  # (a tied layer under each name)

    def load_state_dict(self, state: dict, strict: bool = True):
        """Copy values into the parameters of the same names (shapes and dtypes must match).
        With ``strict=False``, keys on one side only are skipped; either way it returns
        ``(missing_keys, unexpected_keys)``, as torch's."""
        params = dict(self._named_state(""))  # (a layer held under two names: both, as state_dict)
        missing = [name for name in params if name not in state]  # (in their orders, as torch's)
        unexpected = [name for name in state if name not in params]
        if strict and (missing or unexpected):
            raise ArgumentError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        params = {name: p for name, p in params.items() if name in state}
        values = {}
        for name, p in params.items():  # every value checked before any is written
            value = state[name]
            if isinstance(p, SparseTensor) or isinstance(value, SparseTensor):
                if not (isinstance(p, SparseTensor) and isinstance(value, SparseTensor)
                        and value.layout == p.layout):
                    raise ArgumentError(f"load_state_dict: {name} is {p.layout!r}, the value "
                                        f"{getattr(value, 'layout', type(value).__name__)!r}")
                if value.shape != p.shape:
                    raise ShapeError(f"load_state_dict: {name} has shape {list(p.shape)}, the value "
                                     f"{list(value.shape)}")
                values[name] = value.detach().to(p.dtype, copy=True)  # (a sparse buffer is replaced, not written)
                continue
            value = value._data if isinstance(value, Tensor) else np.asarray(value)
            if value.shape != p.shape:
                raise ShapeError(f"load_state_dict: {name} has shape {list(p.shape)}, the value {list(value.shape)}")
            if not p._data.flags.writeable:
                raise RuntimeError(f"load_state_dict: {name}'s data is read-only (it views a sparse tensor's "
                                   "values or a read-only array); nothing was written")
            # a value the parameter's dtype cannot hold (inf from a finite float64, a complex
            # part, an integer out of range) is refused, as everywhere (docs/field.rst)
            values[name] = value if value.dtype == p.dtype else converted(value, p.dtype, f"load_state_dict: {name}")
        for name, p in params.items():
            if isinstance(p, SparseTensor):
                *path, attr = name.split(".")
                owner = self
                for part in path:
                    owner = getattr(owner, part)
                setattr(owner, attr, values[name])
                continue
            p._data[...] = values[name]
            p._version[0] += 1
        return IncompatibleKeys(missing, unexpected)


class Linear(Module):
    """``y = x @ weight.T + bias``, with ``weight`` (out x in) and ``bias`` (out) drawn
    uniform on ``[-1/sqrt(in), 1/sqrt(in)]`` as torch initialises them.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> layer = sr.nn.Linear(3, 2)
    >>> layer.weight.shape, layer.bias.shape, layer(sr.ones(4, 3)).shape
    ((2, 3), (2,), (4, 2))
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=None, generator=None):
        super().__init__()
        for name, n in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ArgumentError(f"Linear: {name} must be a non-negative int, got {n!r}")
        self.in_features, self.out_features = in_features, out_features
        dt = _dtypes.as_dtype(dtype, "Linear") if dtype is not None else _dtypes.default_dtype
        bound = 1 / math.sqrt(in_features) if in_features else 0.0
        rng = _factories._rng(generator, "Linear")
        self.weight = Parameter(Tensor(rng.uniform(-bound, bound, (out_features, in_features)).astype(dt)))
        self.bias = Parameter(Tensor(rng.uniform(-bound, bound, out_features).astype(dt))) if bias else None

    def forward(self, input):
        return functional.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A lookup table: ``forward(ids)`` is row ``ids[...]`` of ``weight``
    (``num_embeddings`` x ``embedding_dim``, drawn from N(0, 1) as torch's, the row
    ``padding_idx`` zero), shape ``ids.shape + (embedding_dim,)``; see
    :func:`sparse_ref.nn.functional.embedding`. With ``sparse=True`` the weight's
    gradient is a sparse COO tensor of the rows looked up, as torch's (for ``SGD`` or
    :class:`~sparse_ref.optim.SparseAdam`).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> emb = sr.nn.Embedding(10, 3, padding_idx=0)
    >>> emb
    Embedding(10, 3, padding_idx=0)
    >>> emb(sr.tensor([[1, 2, 0], [4, 0, 0]])).shape
    (2, 3, 3)
    >>> emb.weight[0].tolist()
    [0.0, 0.0, 0.0]
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None, max_norm=None,
                 norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False, _weight=None,
                 _freeze: bool = False, dtype=None, generator=None):
        super().__init__()
        for name, n in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
                raise ArgumentError(f"Embedding: {name} must be a non-negative int, got {n!r}")
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.padding_idx = functional._padding_index(padding_idx, self.num_embeddings, "Embedding")
        self.max_norm, self.norm_type = max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            dt = _dtypes.as_dtype(dtype, "Embedding") if dtype is not None else _dtypes.default_dtype
            rng = _factories._rng(generator, "Embedding")
            data = rng.standard_normal((self.num_embeddings, self.embedding_dim)).astype(dt)
            if self.padding_idx is not None:
                data[self.padding_idx] = 0
            self.weight = Parameter(Tensor(data), requires_grad=not _freeze)
        else:
            if not isinstance(_weight, Tensor) or _weight.shape != (self.num_embeddings, self.embedding_dim):
                raise ShapeError(f"Embedding: _weight must be a dense tensor of shape "
                                 f"{[self.num_embeddings, self.embedding_dim]}, got "
                                 f"{list(getattr(_weight, 'shape', ())) or type(_weight).__name__}")
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx=None, max_norm=None,
                        norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False):
        """An Embedding whose weight is ``embeddings`` (2-D; the same memory), frozen
        (``requires_grad=False``) unless ``freeze=False``, as torch's."""
        if not isinstance(embeddings, Tensor) or embeddings.ndim != 2:
            raise ShapeError("Embeddings parameter is expected to be 2-dimensional, got "
                             f"{list(getattr(embeddings, 'shape', ())) or type(embeddings).__name__}")
        rows, dim = embeddings.shape
        return cls(rows, dim, padding_idx=padding_idx, max_norm=max_norm, norm_type=norm_type,
                   scale_grad_by_freq=scale_grad_by_freq, sparse=sparse, _weight=embeddings, _freeze=freeze)

    def forward(self, input):
        return functional.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                                    self.scale_grad_by_freq, self.sparse)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq:
            s += f", scale_grad_by_freq={self.scale_grad_by_freq}"
        if self.sparse:
            s += ", sparse=True"
        return s


def _normalized_shape(shape, where: str) -> tuple:
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if not shape or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0 for n in shape):
        raise ArgumentError(f"{where}: normalized_shape must be positive ints, got {list(shape)}")
    return tuple(int(n) for n in shape)


class LayerNorm(Module):
    """Each sample normalised over its last dims (``normalized_shape``), then scaled by
    ``weight`` (ones) and shifted by ``bias`` (zeros) when ``elementwise_affine``; see
    :func:`sparse_ref.nn.functional.layer_norm`.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> norm = sr.nn.LayerNorm(4)
    >>> norm
    LayerNorm((4,), eps=1e-05, elementwise_affine=True, bias=True)
    >>> y = norm(sr.tensor([[1., 2., 3., 4.]]))
    >>> round(y.mean().item(), 6), round((y * y).mean().item(), 3)
    (0.0, 1.0)
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 dtype=None):
        super().__init__()
        self.normalized_shape = _normalized_shape(normalized_shape, "LayerNorm")
        self.eps, self.elementwise_affine = eps, bool(elementwise_affine)
        dt = _dtypes.as_dtype(dtype, "LayerNorm") if dtype is not None else _dtypes.default_dtype
        self.weight = Parameter(Tensor(np.ones(self.normalized_shape, dt))) if elementwise_affine else None
        self.bias = Parameter(Tensor(np.zeros(self.normalized_shape, dt))) if elementwise_affine and bias else None

    def forward(self, input):
        return functional.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class BatchNorm1d(Module):
    """Each channel of an (N, C) or (N, C, L) input normalised by the batch's statistics
    while training, by the running ones (buffers ``running_mean``, ``running_var``,
    ``num_batches_tracked``) in eval mode, then scaled by ``weight`` (ones) and shifted
    by ``bias`` (zeros; none with ``bias=False``) when ``affine``, as torch's.
    ``momentum=None`` makes the running statistics the plain average over the batches
    seen. See
    :func:`sparse_ref.nn.functional.batch_norm`.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> bn = sr.nn.BatchNorm1d(2)
    >>> bn
    BatchNorm1d(2, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
    >>> _ = bn(sr.tensor([[1., 10.], [3., 30.]]))
    >>> bn.running_mean, bn.num_batches_tracked
    (tensor([0.2000, 2.0000]), tensor(1))
    >>> list(bn.state_dict())
    ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype=None, *, bias: bool = True):
        super().__init__()
        if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)) or num_features <= 0:
            raise ArgumentError(f"BatchNorm1d: num_features must be a positive int, got {num_features!r}")
        if momentum is not None:
            functional._real_number(momentum, "momentum", "BatchNorm1d")
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        dt = _dtypes.as_dtype(dtype, "BatchNorm1d") if dtype is not None else _dtypes.default_dtype
        self.weight = Parameter(Tensor(np.ones(self.num_features, dt))) if affine else None
        self.bias = Parameter(Tensor(np.zeros(self.num_features, dt))) if affine and bias else None
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(self.num_features, dt)))
            self.register_buffer("running_var", Tensor(np.ones(self.num_features, dt)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def forward(self, input):
        if isinstance(input, Tensor) and input.ndim not in (2, 3):
            raise ShapeError(f"expected 2D or 3D input (got {input.ndim}D input)")
        if isinstance(input, Tensor) and input.ndim >= 2 and input.shape[1] != self.num_features:
            raise ShapeError(f"BatchNorm1d: the input has {input.shape[1]} channels (dim 1), the layer "
                             f"{self.num_features}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            if input.numel() // max(self.num_features, 1) > 1:  # (a refused batch counts for nothing)
                self.num_batches_tracked.add_(1)
            factor = 1.0 / max(int(self.num_batches_tracked.item()), 1) if self.momentum is None else self.momentum
        use_batch = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return functional.batch_norm(input, self.running_mean if track else None,
                                     self.running_var if track else None, self.weight, self.bias,
                                     use_batch, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class _Listed(Module):
    """Sub-modules held under the names "0", "1", ...: indexing, ``len`` and iteration, as
    torch's ``Sequential`` and ``ModuleList``."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module) -> "_Listed":
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: argument {len(self)} is not a Module, got "
                            f"{type(module).__name__}")
        setattr(self, str(len(self)), module)
        return self

    def extend(self, modules) -> "_Listed":
        """Append each of ``modules`` (as torch's ``ModuleList.extend``; ``+=`` too)."""
        for m in modules:
            self.append(m)
        return self

    def __iadd__(self, modules) -> "_Listed":
        return self.extend(modules)

    def _held(self) -> list:
        """Every module held, in order, a module held twice twice (children() lists it once)."""
        return [m for m in vars(self).values() if isinstance(m, Module)]

    def __len__(self) -> int:
        return len(self._held())

    def __iter__(self):
        return iter(self._held())

    def __getitem__(self, index):
        """The module at position ``index``; a slice gives a new container of those modules
        under their names here (``net[1:]`` holds "1", "2", ...: the same module objects
        and parameter names, as torch's)."""
        items = [(name, m) for name, m in vars(self).items() if isinstance(m, Module)]
        if isinstance(index, slice):
            out = type(self).__new__(type(self))
            Module.__init__(out)
            for name, m in items[index]:
                setattr(out, name, m)
            return out
        n = len(items)
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)) or not -n <= index < n:
            raise IndexError(f"index {index!r} is out of range for a {type(self).__name__} of {n} modules")
        return items[int(index)][1]


class Sequential(_Listed):
    """Modules applied one after the other.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> net = sr.nn.Sequential(sr.nn.Linear(3, 4), sr.nn.ReLU(), sr.nn.Linear(4, 1))
    >>> net(sr.ones(2, 3)).shape, len(list(net.parameters())), len(net), type(net[1]).__name__
    ((2, 1), 4, 3, 'ReLU')
    """

    def __init__(self, *modules):
        super().__init__(modules)

    def forward(self, input):
        for m in self._held():  # (a module held twice runs twice)
            input = m(input)
        return input


class ModuleList(_Listed):
    """A list of modules whose parameters the owner lists (``for layer in self.layers``)."""


# -- activations, dropout and losses as modules (each calls its sr.nn.functional twin) -----

def _out_of_place(inplace, name: str) -> None:
    """torch's ``inplace=`` of an activation or dropout: False only (an in-place ReLU in the
    middle of a graph is what torch's own autograd refuses most often)."""
    if inplace:
        raise ArgumentError(f"{name}: inplace=True is not supported (sparse_ref's modules do not change their "
                            f"input); use {name}() and its result")


class ReLU(Module):
    """``functional.relu`` as a module."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        _out_of_place(inplace, "ReLU")

    def forward(self, input):
        return functional.relu(input)


class Tanh(Module):
    """``functional.tanh`` as a module."""

    def forward(self, input):
        return functional.tanh(input)


class Sigmoid(Module):
    """``functional.sigmoid`` as a module."""

    def forward(self, input):
        return functional.sigmoid(input)


class LeakyReLU(Module):
    """``functional.leaky_relu`` as a module."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        _out_of_place(inplace, "LeakyReLU")
        self.negative_slope = negative_slope

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"

    def forward(self, input):
        return functional.leaky_relu(input, self.negative_slope)


class Dropout(Module):
    """``functional.dropout`` as a module: active in ``train()`` mode, the identity after
    ``eval()``."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        _out_of_place(inplace, "Dropout")
        functional._dropout_probability(p)  # (when made, as torch's)
        self.p = p

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace=False"

    def forward(self, input):
        return functional.dropout(input, self.p, self.training)


class _Loss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        functional._check_reduction(reduction, type(self).__name__)
        self.reduction = reduction


class _ClassLoss(_Loss):
    def __init__(self, reduction: str = "mean", ignore_index: int = -100):
        super().__init__(reduction)
        self.ignore_index = ignore_index


class CrossEntropyLoss(_ClassLoss):
    """``functional.cross_entropy`` as a module."""

    def forward(self, input, target):
        return functional.cross_entropy(input, target, self.reduction, self.ignore_index)


class NLLLoss(_ClassLoss):
    """``functional.nll_loss`` as a module."""

    def forward(self, input, target):
        return functional.nll_loss(input, target, self.reduction, self.ignore_index)


class MSELoss(_Loss):
    """``functional.mse_loss`` as a module."""

    def forward(self, input, target):
        return functional.mse_loss(input, target, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """``functional.binary_cross_entropy_with_logits`` as a module."""

    def forward(self, input, target):
        return functional.binary_cross_entropy_with_logits(input, target, self.reduction)


def __getattr__(name):
    """A torch name sparse_ref does not have: an AttributeError that says so."""
    raise missing("module 'sparse_ref.nn'", name)

"""``sr.optim``: SGD, Adam and AdamW with torch's update formulas (layer 5), step for step,
and torch's learning-rate schedules (``sr.optim.lr_scheduler``).

An optimiser holds the parameters and, per parameter, its state (momentum buffer, Adam's
moments) as NumPy arrays; ``step()`` changes each parameter in place, outside the graph,
and bumps its version counter, as torch's in-place update does.

Examples
--------
>>> import sparse_ref as sr
>>> w = sr.tensor([1., 2.], requires_grad=True)
>>> opt = sr.optim.SGD([w], lr=0.1)
>>> (w * w).sum().backward()
>>> opt.step(); opt.zero_grad()
>>> w
tensor([0.8000, 1.6000], requires_grad=True)
"""

from __future__ import annotations

import collections
import copy
import math
import numbers

import numpy as np

from sparse_ref import _dtypes
from sparse_ref._arrays import converted
from sparse_ref._errors import ArgumentError, ConversionError, DTypeError, ShapeError, missing
from sparse_ref._tensor import SparseTensor, Tensor

__all__ = ["Adam", "AdamW", "Optimizer", "SGD", "SparseAdam", "lr_scheduler"]


class Optimizer:
    """What the optimisers share: the parameter list, ``zero_grad`` and per-parameter state."""

    def __init__(self, params, defaults: dict):
        if isinstance(params, Tensor):  # (its rows would be taken for the parameters)
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            f"but got a {type(params).__name__}; pass [tensor]")
        params = list(params)
        if not params:
            raise ArgumentError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = []
        for group in groups:
            params_of = group["params"]  # (one tensor alone, as torch takes it)
            group = {**defaults, **group, "params": [params_of] if isinstance(params_of, Tensor) else list(params_of)}
            self._check_settings(group)  # (a group's own settings too)
            for p in group["params"]:
                if not isinstance(p, Tensor) or isinstance(p, SparseTensor):
                    raise TypeError(f"optimizer can only optimize dense Tensors, got {type(p).__name__}")
                if not p.is_leaf:
                    raise ValueError("can't optimize a non-leaf Tensor")
                if not p._data.flags.writeable:
                    raise ValueError("can't optimize a tensor whose data is read-only (it views a sparse "
                                     "tensor's values or a read-only array): optimize a clone()")
            self.param_groups.append(group)
        seen = [id(p) for group in self.param_groups for p in group["params"]]
        if len(seen) != len(set(seen)):  # a parameter twice would take each step twice
            raise ArgumentError("some parameters appear more than once in the parameter groups")
        self.defaults = dict(defaults)
        # each parameter's state, keyed by the parameter itself (tensors hash by identity), as
        # torch's: ``self.state[p]`` is a dict, empty at first; a deepcopy or pickle of the
        # optimizer keeps it with the copied parameters
        self.state = collections.defaultdict(dict)

    def __getattr__(self, name):
        """A torch name an optimizer here does not have (``add_param_group``, the step
        hooks): an AttributeError that says so."""
        raise missing(f"'{type(self).__name__}' object", name)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (or, with ``set_to_none=False``, zero) every parameter's gradient."""
        for group in self.param_groups:
            for p in group["params"]:
                p._clear_grad(set_to_none)

    def _params_with_grad(self) -> list:
        """``(group, p, grad)`` of every parameter with a gradient, after checking that each
        can be written: a step updates all of them or none (``p.data`` may have been set
        to a read-only array since the optimizer was made)."""
        todo = []
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is not None:  # a sparse gradient (an embedding's, sparse=True) as one state of it
                    todo.append((group, p, g._now() if isinstance(g, SparseTensor) else g._data))
        for group, p, g in todo:
            if not p._data.flags.writeable:
                raise RuntimeError("optimizer step: a parameter's data is read-only (it views a sparse "
                                   "tensor's values or a read-only array); nothing was updated")
            dt = p._data.dtype
            if _dtypes.kind(dt) not in "fc":  # (torch refuses too: an integral update's alpha is a float)
                raise DTypeError(f"{type(self).__name__}: a {dt.name} parameter has a gradient, but an "
                                 "optimizer updates floating or complex parameters only; nothing was updated")
            top = float(_dtypes.finfo(dt).max)  # (a complex dtype's: its parts')
            for name, value in self._settings_in_dtype(group, p):
                if abs(value) > top:  # as torch's Scalar conversion refuses it
                    raise ConversionError(f"{type(self).__name__}: {name} = {value} cannot be converted to type "
                                          f"{dt.name} without overflow (for a {dt.name} parameter)")
            self._check_gradient(group, g)
        return todo

    def _settings_in_dtype(self, group: dict, p: Tensor) -> list:
        """The settings this step multiplies by in p's own dtype, as ``(name, value)``: torch
        refuses one that dtype cannot hold (SGD's lr=1e5 for a float16 parameter, in a
        float16 product, would be inf). None by default (Adam's are combined in double)."""
        return []

    def _check_gradient(self, group: dict, g) -> None:
        """Refuse a gradient this optimizer cannot take (before any parameter changes):
        by default, a sparse one."""
        if isinstance(g, SparseTensor):
            raise RuntimeError(f"{type(self).__name__} does not support sparse gradients, please consider "
                               "SparseAdam instead")

    @staticmethod
    def _rows(g: SparseTensor, maximize: bool) -> tuple:
        """A dense parameter's sparse COO gradient as ``(where, values)``: ``where`` the
        tuple of its index arrays (one per sparse dim: an embedding's rows, or rows and
        columns of a ``.grad`` assigned by hand; a dense tensor's ``.grad`` setter takes COO
        only) for NumPy's indexing, its entries in order (one may repeat: it is added to in
        turn, as torch's dense += sparse)."""
        return tuple(g._idx), (-g._val if maximize else g._val)

    @staticmethod
    def _update(p: Tensor, new: np.ndarray) -> None:
        p._data[...] = new
        p._version[0] += 1

    # -- checkpoints: torch's layout, {"state": {index: {name: value}}, "param_groups": [...]}

    def state_dict(self) -> dict:
        """The settings of each group and the state of each parameter, as torch's: a
        parameter is its index in the order of the groups, its state a dict of tensors
        (copies) of the parameter's shape and dtype (Adam's ``step`` a 0-d float32 tensor).
        ``sr.save`` writes it; ``load_state_dict`` takes it back."""
        index = {id(p): i for i, p in enumerate(p for group in self.param_groups for p in group["params"])}
        groups = [{**{key: value for key, value in group.items() if key != "params"},
                   "params": [index[id(p)] for p in group["params"]]} for group in self.param_groups]
        state = {index[id(p)]: self._state_out(group, p, self.state[p])
                 for group in self.param_groups for p in group["params"] if p in self.state}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Take the settings and state of ``state_dict`` (made by ``state_dict()`` of an
        optimizer of the same kind over parameters of the same shapes, in the same groups).
        Everything is checked before anything changes: the groups and their sizes, each
        setting, each parameter's state (its names, shapes, and values its dtype can hold)."""
        where = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= state_dict.keys():
            has = f"a dict with the keys {list(state_dict)}" if isinstance(state_dict, dict) else _kind(state_dict)
            raise ArgumentError(f"{where}: expected a dict with 'state' and 'param_groups' (an optimizer's "
                                f"state_dict()), got {has}")
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(saved_groups, (list, tuple)) or not all(isinstance(g, dict) and isinstance(
                g.get("params"), (list, tuple)) for g in saved_groups):
            raise ArgumentError(f"{where}: 'param_groups' must be a list of dicts, each with a list 'params'")
        if len(saved_groups) != len(self.param_groups):
            raise ArgumentError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(mine["params"]) for g, mine in zip(saved_groups, self.param_groups)):
            raise ArgumentError("loaded state dict contains a parameter group that doesn't match the size of "
                                "optimizer's group")
        if not isinstance(saved_state, dict):
            raise ArgumentError(f"{where}: 'state' must be a dict of each parameter's state by its index")
        if not all(type(i) is int for g in saved_groups for i in g["params"]):
            raise ArgumentError(f"{where}: a saved group's 'params' must be the parameters' indices (ints)")
        params = {}  # saved index -> (this parameter, the number of its group)
        for number, (g, mine) in enumerate(zip(saved_groups, self.param_groups)):
            for i, p in zip(g["params"], mine["params"]):
                params[i] = (p, number)
        unknown = [i for i in saved_state if i not in params]
        if unknown or len(params) != sum(len(g["params"]) for g in saved_groups):
            raise ArgumentError(f"{where}: the saved parameter indices do not match its groups "
                                f"({'state for ' + repr(unknown) if unknown else 'an index given twice'})")
        groups = []
        for g, mine in zip(saved_groups, self.param_groups):
            missing_keys = [key for key in self.defaults if key not in g]
            if missing_keys:
                raise ArgumentError(f"{where}: a saved group has no {missing_keys}")
            # the saved settings (copies, as torch's: the caller's dict stays its own); a key
            # only this optimizer's group has (a schedule's initial_lr) is kept
            saved = copy.deepcopy({key: value for key, value in g.items() if key != "params"})
            group = {**{key: value for key, value in mine.items() if key not in g}, **saved,
                     "params": mine["params"]}
            self._check_settings(group)
            groups.append(group)
        state = collections.defaultdict(dict)
        for i, value in saved_state.items():
            p, number = params[i]
            state[p] = self._state_in(groups[number], p, value, f"{where}: state of parameter {i}")
        self.param_groups[:] = groups
        self.state = state

    # what each optimizer says of its settings and its state (SGD and Adam, below); an
    # optimizer of one's own keeps these: no check, and its state as it is
    def _check_settings(self, group: dict) -> None:
        pass

    def _state_out(self, group: dict, p: Tensor, state):
        return state

    def _state_in(self, group: dict, p: Tensor, value, where: str):
        return value


def _kind(x) -> str:
    return type(x).__name__


def _state_names(value, required: tuple, optional: tuple, where: str) -> None:
    if not isinstance(value, dict):
        raise ArgumentError(f"{where}: expected a dict, got {_kind(value)}")
    missing_names = [name for name in required if name not in value]
    allowed = required + tuple(name for name in optional if name not in required)
    unknown = [name for name in value if name not in allowed]
    if missing_names or unknown:
        raise ArgumentError(f"{where}: expected the names {list(allowed)}"
                            + (f"; {missing_names} missing" if missing_names else "")
                            + (f"; {unknown} unknown (another optimizer's state?)" if unknown else ""))


def _state_array(value, p: Tensor, where: str) -> np.ndarray:
    """A saved state tensor as a private array of p's shape and dtype (torch casts a
    floating state to the parameter's dtype; a value that dtype cannot hold is refused)."""
    if isinstance(value, SparseTensor) or not isinstance(value, (Tensor, np.ndarray)):
        raise ArgumentError(f"{where}: expected a dense tensor, got {_kind(value)}")
    arr = value._data if isinstance(value, Tensor) else value
    if arr.shape != p.shape:
        raise ShapeError(f"{where}: the parameter has shape {list(p.shape)}, the saved value {list(arr.shape)}")
    if arr.dtype.kind not in "fcbiu" and not _dtypes.is_half(arr.dtype):  # (bfloat16's kind is V)
        raise ArgumentError(f"{where}: a {arr.dtype} array is not a state tensor")
    return converted(arr, p._data.dtype, where)  # (a copy: the optimizer owns its state)


def _state_step(step, where: str) -> int:
    """A saved step count (Adam's 0-d tensor or SparseAdam's int) as an int, refused unless
    a whole number of steps."""
    step = step.item() if isinstance(step, Tensor) and step.numel() == 1 and not step.is_sparse else step
    if isinstance(step, bool) or not isinstance(step, numbers.Real) or not (
            0 <= step <= 2 ** 53 and step == int(step)):  # (NaN fails the first test)
        raise ArgumentError(f"{where}: step must be a whole number of steps (0 to 2**53), got {step!r}")
    return int(step)


def _out(arr: np.ndarray) -> Tensor:
    return Tensor(np.array(arr, copy=True))


def _check(name: str, value, low: float = 0.0) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # (NumPy numbers too)
        raise ArgumentError(f"Invalid {name} value: {value!r} (a number is needed, not a {_kind(value)})")
    if not value >= low:
        raise ArgumentError(f"Invalid {name} value: {value}")


class SGD(Optimizer):
    """Stochastic gradient descent, torch's formula: with weight decay ``wd``, momentum
    ``m`` and dampening ``d``, ``g = grad + wd p``; ``buf = g`` at the first step, else
    ``buf = m buf + (1 - d) g``; ``g = g + m buf`` (nesterov) or ``buf``; ``p = p - lr g``.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> w = sr.tensor([1.], requires_grad=True)
    >>> opt = sr.optim.SGD([w], lr=0.5, momentum=0.9)
    >>> for _ in range(2):
    ...     opt.zero_grad(); (w * w).sum().backward(); opt.step()
    >>> round(w.item(), 4)
    -0.9
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, maximize: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    def _settings_in_dtype(self, group: dict, p: Tensor) -> list:
        # (torch's steps: p.add_(g, alpha=-lr); g.add(p, alpha=wd); from the second step on,
        # buf.mul_(m).add_(g, alpha=1 - dampening); with nesterov, g.add(buf, alpha=m))
        lr, wd, m = float(group["lr"]), float(group["weight_decay"]), float(group["momentum"])
        out = [("lr", lr)] + ([("weight_decay", wd)] if wd else [])
        if m:
            out += [("momentum", m)]
            if "momentum_buffer" in self.state.get(p, {}):
                out += [("1 - dampening", 1 - float(group["dampening"]))]
        return out

    def _check_settings(self, group: dict) -> None:
        for name, key in (("learning rate", "lr"), ("momentum", "momentum"), ("weight_decay", "weight_decay")):
            _check(name, group[key])
        _check("dampening", group["dampening"], -math.inf)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ArgumentError("Nesterov momentum requires a momentum and zero dampening")

    def _state_out(self, group: dict, p: Tensor, state: dict) -> dict:
        return {"momentum_buffer": _out(state["momentum_buffer"])} if "momentum_buffer" in state else {}

    def _state_in(self, group: dict, p: Tensor, value, where: str):
        _state_names(value, (), ("momentum_buffer",), where)
        return {"momentum_buffer": _state_array(value["momentum_buffer"], p, f"{where}, momentum_buffer")
                } if "momentum_buffer" in value else {}

    def _check_gradient(self, group: dict, g) -> None:
        if isinstance(g, SparseTensor) and float(group["weight_decay"]):
            raise RuntimeError("SGD: weight_decay with a sparse gradient adds the dense parameter to it, which "
                               "torch refuses too (add(sparse, dense) is not supported); use weight_decay=0")

    def step(self) -> None:
        for group, p, g in self._params_with_grad():
            lr, wd, m = float(group["lr"]), float(group["weight_decay"]), float(group["momentum"])
            if isinstance(g, SparseTensor):  # an embedding's rows (sparse=True)
                rows, values = self._rows(g, group["maximize"])
                if not m:  # p + (-lr g), an entry at a time, as torch's dense += sparse
                    new = np.array(p._data, copy=True)
                    np.add.at(new, rows, -lr * values)
                    self._update(p, new)
                    continue
                g = np.zeros_like(p._data)  # with momentum the buffer is dense (torch's is sparse:
                np.add.at(g, rows, values)  # the same values, up to rounding)
            else:
                g = -g if group["maximize"] else g  # (settings as Python floats, as in Adam.step)
            if wd:
                g = g + wd * p._data
            if m:
                buf = self.state[p].get("momentum_buffer")
                buf = np.array(g, copy=True) if buf is None else buf * m + (1 - float(group["dampening"])) * g
                self.state[p]["momentum_buffer"] = buf
                g = g + m * buf if group["nesterov"] else buf
            self._update(p, p._data - lr * g)


class Adam(Optimizer):
    """Adam, torch's formula: ``g = grad + wd p``; ``m = m + (1 - b1)(g - m)``;
    ``v = b2 v + (1 - b2) g g``; ``p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.
    With ``decoupled_weight_decay`` (AdamW) the decay is taken from the parameter first,
    ``p = p (1 - lr wd)``, instead of being added to the gradient. A complex parameter is
    two real ones, its real and imaginary parts (torch's ``view_as_real``), each with its
    own ``m`` and ``v``.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> w = sr.tensor([1.], requires_grad=True)
    >>> opt = sr.optim.Adam([w], lr=0.1)
    >>> (w * w).sum().backward(); opt.step()
    >>> round(w.item(), 4)
    0.9
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False):
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ArgumentError(f"Invalid beta parameters: {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize,
                                      decoupled_weight_decay=bool(decoupled_weight_decay)))

    def _check_settings(self, group: dict) -> None:
        _check("learning rate", group["lr"])
        _check("epsilon", group["eps"])
        _check("weight_decay", group["weight_decay"])
        betas = group["betas"]
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2 and all(
                not isinstance(b, bool) and isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)):
            raise ArgumentError(f"Invalid beta parameters: {betas}")

    def _state_out(self, group: dict, p: Tensor, state: dict) -> dict:
        # (a complex parameter's moments are kept as its real view: handed out as complex)
        if not state:  # (a parameter not stepped yet whose state was looked at)
            return {}
        names = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())
        out = {"step": Tensor(np.array(float(state["step"]), dtype=np.float32))}
        out.update({name: _out(state[name].view(p._data.dtype).reshape(p.shape)) for name in names})
        return out

    def _state_in(self, group: dict, p: Tensor, value, where: str) -> dict:
        if isinstance(value, dict) and not value:  # not stepped yet
            return {}
        required = ("step", "exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())
        _state_names(value, required, ("max_exp_avg_sq",), where)
        step = _state_step(value["step"], where)
        arrays = {name: _state_array(value[name], p, f"{where}, {name}")
                  for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if name in value}
        arrays.setdefault("max_exp_avg_sq", np.zeros_like(arrays["exp_avg"]))
        if p._data.dtype.kind == "c":  # kept as the real view that step() works on
            real = np.dtype(p._data.dtype.char.lower())
            arrays = {name: np.ascontiguousarray(a).view(real) for name, a in arrays.items()}
        return {"step": step, **arrays}

    def step(self) -> None:
        for group, p, g in self._params_with_grad():
            # the settings as Python floats: a NumPy float64 (a schedule's rate may be one)
            # would turn float32 arithmetic into float64 (NumPy's promotion), not torch's
            lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
            beta1, beta2 = (float(b) for b in group["betas"])
            g = -g if group["maximize"] else g
            data, pairs = p._data, p._data.dtype.kind == "c"
            if pairs:  # as torch (view_as_real): the real and imaginary parts are two
                real = np.dtype(data.dtype.char.lower())  # parameters, each its own m and v
                data = np.ascontiguousarray(data).view(real)
                g = np.ascontiguousarray(g, dtype=p._data.dtype).view(real)
            state = self.state[p]
            if not state:
                state.update(step=0, exp_avg=np.zeros_like(data), exp_avg_sq=np.zeros_like(data),
                             max_exp_avg_sq=np.zeros_like(data))
            state["step"] += 1
            t = state["step"]
            if wd and group["decoupled_weight_decay"]:
                data = data * (1 - lr * wd)  # (AdamW: from p, first)
            elif wd:
                g = g + wd * data
            m = state["exp_avg"] = state["exp_avg"] + (1 - beta1) * (g - state["exp_avg"])  # torch's lerp
            v = state["exp_avg_sq"] = state["exp_avg_sq"] * beta2 + (1 - beta2) * g * g  # addcmul
            if group["amsgrad"]:
                v = state["max_exp_avg_sq"] = np.maximum(state["max_exp_avg_sq"], v)
            step_size = lr / (1 - beta1 ** t)
            denom = np.sqrt(v) / math.sqrt(1 - beta2 ** t) + eps
            new = data + (-step_size * m) / denom  # torch's addcdiv order
            if new.dtype != data.dtype:  # (never, with the settings as Python floats)
                raise RuntimeError(f"Adam: the update came out {new.dtype.name} for a {data.dtype.name} parameter")
            self._update(p, new.view(p._data.dtype) if pairs else new)


class SparseAdam(Optimizer):
    """Adam for sparse gradients (an embedding's, ``sparse=True``), torch's "lazy"
    version: only the rows in the gradient move, and only their moments are updated,
    ``m = m + (1 - b1)(g - m)``, ``v = v + (1 - b2)(g g - v)`` there, then
    ``p = p - lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)`` there (``t`` the
    parameter's steps). A dense gradient is refused, as torch's.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> emb = sr.nn.Embedding(5, 2, sparse=True)
    >>> opt = sr.optim.SparseAdam(emb.parameters(), lr=0.1)
    >>> before = emb.weight.detach().clone()
    >>> emb(sr.tensor([1, 3])).sum().backward(); opt.step()
    >>> (emb.weight.detach() != before).numpy().any(axis=1).tolist()
    [False, True, False, True, False]
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, maximize: bool = False):
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ArgumentError(f"Invalid beta parameters: {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, maximize=maximize))

    def _check_settings(self, group: dict) -> None:
        Adam._check_settings(self, {**group, "weight_decay": 0.0})

    def _check_gradient(self, group: dict, g) -> None:
        if not isinstance(g, SparseTensor):
            raise RuntimeError("SparseAdam does not support dense gradients, please consider Adam instead")

    def _state_out(self, group: dict, p: Tensor, state: dict) -> dict:
        if not state:
            return {}
        return {"step": int(state["step"]), **{name: _out(state[name]) for name in ("exp_avg", "exp_avg_sq")}}

    def _state_in(self, group: dict, p: Tensor, value, where: str) -> dict:
        if isinstance(value, dict) and not value:
            return {}
        _state_names(value, ("step", "exp_avg", "exp_avg_sq"), (), where)
        arrays = {name: _state_array(value[name], p, f"{where}, {name}") for name in ("exp_avg", "exp_avg_sq")}
        return {"step": _state_step(value["step"], where), **arrays}

    def step(self) -> None:
        for group, p, g in self._params_with_grad():
            g = g.coalesce()  # (the update is not linear: each row once, its entries summed)
            rows, values = self._rows(g, group["maximize"])
            lr, eps = float(group["lr"]), float(group["eps"])
            beta1, beta2 = (float(b) for b in group["betas"])
            state = self.state[p]
            if not state:
                state.update(step=0, exp_avg=np.zeros_like(p._data), exp_avg_sq=np.zeros_like(p._data))
            state["step"] += 1  # (a step with no entries counts too, as torch's: an all-padding batch)
            t = state["step"]
            if values.size == 0:
                continue
            m, v = state["exp_avg"], state["exp_avg_sq"]
            old_m, old_v = m[rows], v[rows]
            m_update = (values - old_m) * (1 - beta1)
            v_update = (values ** 2 - old_v) * (1 - beta2)
            m[rows] = old_m + m_update  # (the moments are the optimizer's own arrays: in place)
            v[rows] = old_v + v_update
            numer = m_update + old_m
            denom = np.sqrt(v_update + old_v) + eps
            step_size = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
            new = np.array(p._data, copy=True)
            new[rows] = new[rows] + (-step_size * (numer / denom))
            self._update(p, new)


class AdamW(Adam):
    """AdamW: Adam with the weight decay taken from the parameter, ``p = p (1 - lr wd)``,
    before the step (decoupled), as torch's; ``weight_decay`` defaults to 0.01.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> w = sr.tensor([1.], requires_grad=True)
    >>> opt = sr.optim.AdamW([w], lr=0.1, weight_decay=0.5)
    >>> (w * w).sum().backward(); opt.step()
    >>> round(w.item(), 4)
    0.85
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize, decoupled_weight_decay=True)


from sparse_ref.optim import lr_scheduler  # noqa: E402  (it builds on Optimizer, above)


def __getattr__(name):
    """A torch name sparse_ref does not have: an AttributeError that says so."""
    raise missing("module 'sparse_ref.optim'", name)

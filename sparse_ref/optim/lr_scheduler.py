"""``sr.optim.lr_scheduler``: torch's learning-rate schedules, step for step.

Each schedule sets ``group["lr"]`` of its optimiser's parameter groups when it is made
(its first rate) and at every ``step()``, by the same formula torch uses, including the
chainable forms that start from the group's current rate (so a rate changed by hand, or
by another schedule, is carried on as in torch), so the rates are torch's to the last bit.

Examples
--------
>>> import sparse_ref as sr
>>> w = sr.tensor([1.], requires_grad=True)
>>> opt = sr.optim.SGD([w], lr=1.0)
>>> sched = sr.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
>>> rates = []
>>> for epoch in range(5):
...     opt.step()
...     rates.append(sched.get_last_lr()[0])
...     sched.step()
>>> rates
[1.0, 1.0, 0.5, 0.5, 0.25]
"""

from __future__ import annotations

import math
import numbers
import types
from collections import Counter

from sparse_ref._errors import missing

__all__ = ["CosineAnnealingLR", "ExponentialLR", "LRScheduler", "LambdaLR", "MultiStepLR", "OneCycleLR",
           "ReduceLROnPlateau", "StepLR"]


class LRScheduler:
    """What the schedules share: the optimiser, its groups' first rates (``base_lrs``, kept
    in each group as ``"initial_lr"``), ``last_epoch`` and ``step()``."""

    def __init__(self, optimizer, last_epoch: int = -1):
        if not _is_optimizer(optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, int) or last_epoch < -1:
            raise ValueError(f"last_epoch must be an integer >= -1, got {last_epoch!r}")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] when resuming a "
                                   "scheduler with last_epoch >= 0")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self._initial = True  # the step the constructor takes (torch's "initial step")
        self.step()
        self._initial = False

    def get_lr(self) -> list:  # pragma: no cover - every schedule overrides it
        raise NotImplementedError

    def step(self, epoch=None) -> None:
        """The next epoch's rates, into the optimiser's groups (call it after
        ``optimizer.step()``, as in torch)."""
        if epoch is not None:
            raise TypeError("step(epoch) is deprecated in torch and not supported in sparse_ref: call step() once "
                            "per epoch")
        self._step_count += 1
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list:
        """The rates the last ``step()`` (or the constructor) set, one per group."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """Everything but the optimiser, as torch's."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(state_dict)

    def _rates(self) -> list:
        return [group["lr"] for group in self.optimizer.param_groups]


def _is_optimizer(x) -> bool:
    """An optimiser of ``sr.optim`` (this module is below it, so it is not imported here:
    anything with parameter groups, each with a rate, as torch's schedules use it)."""
    groups = getattr(x, "param_groups", None)
    return isinstance(groups, list) and all(isinstance(g, dict) and "lr" in g for g in groups)


def _positive_int(name: str, value) -> int:
    """``value`` as an int (a NumPy integer too), refused unless a positive integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _number(name: str, value) -> float:
    """``value`` as a float (a NumPy number too), refused unless a finite real number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite number, got {value!r}")
    return float(value)


class LambdaLR(LRScheduler):
    """``lr = base_lr * lr_lambda(epoch)``; ``lr_lambda`` a function of the epoch, or one
    per parameter group."""

    def __init__(self, optimizer, lr_lambda, last_epoch: int = -1):
        groups = optimizer.param_groups if _is_optimizer(optimizer) else []
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != len(groups):
                raise ValueError(f"Expected {len(groups)} lr_lambdas, but got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * len(groups)
        if not all(callable(f) for f in self.lr_lambdas):
            raise TypeError("lr_lambda must be a function of the epoch (or a list of them, one per group)")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        return [base * f(self.last_epoch) for f, base in zip(self.lr_lambdas, self.base_lrs)]

    def state_dict(self) -> dict:
        """As torch's: the functions are not saved (a plain function or lambda is None; a
        callable object, its attributes), so the state pickles and loading it keeps this
        schedule's own functions."""
        state = {key: value for key, value in self.__dict__.items() if key not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = [None if isinstance(f, types.FunctionType) else dict(f.__dict__)
                               for f in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        saved = state.pop("lr_lambdas", [None] * len(self.lr_lambdas))
        self.__dict__.update(state)
        for f, attributes in zip(self.lr_lambdas, saved):
            if attributes is not None:
                f.__dict__.update(attributes)


class StepLR(LRScheduler):
    """The rate times ``gamma`` every ``step_size`` epochs."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        self.step_size, self.gamma = _positive_int("step_size", step_size), _number("gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._rates()
        return [lr * self.gamma for lr in self._rates()]


class MultiStepLR(LRScheduler):
    """The rate times ``gamma`` at each epoch in ``milestones`` (times ``gamma`` twice at a
    milestone given twice, as torch's)."""

    def __init__(self, optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1):
        milestones = list(milestones)  # (np.arange(...) too: NumPy integers are taken as ints)
        if not all(isinstance(m, numbers.Integral) and not isinstance(m, bool) for m in milestones):
            raise TypeError(f"milestones must be integers, got {milestones!r}")
        self.milestones, self.gamma = Counter(int(m) for m in milestones), _number("gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        if self.last_epoch not in self.milestones:
            return self._rates()
        return [lr * self.gamma ** self.milestones[self.last_epoch] for lr in self._rates()]

    def state_dict(self) -> dict:
        """As torch's, with the milestones as a plain dict (a Counter is a class, which
        ``sr.load`` with ``weights_only=True`` does not make)."""
        state = super().state_dict()
        state["milestones"] = dict(self.milestones)
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self.milestones = Counter(self.milestones)


class ExponentialLR(LRScheduler):
    """The rate times ``gamma`` every epoch."""

    def __init__(self, optimizer, gamma: float, last_epoch: int = -1):
        self.gamma = _number("gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        if self._initial:
            return self._rates()
        return [lr * self.gamma for lr in self._rates()]


class CosineAnnealingLR(LRScheduler):
    """From the rate down to ``eta_min`` along half a cosine over ``T_max`` epochs (and
    back up over the next ``T_max``), in torch's recursive form: each rate from the one
    before, so it follows a rate set by hand as torch's does."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):  # noqa: N803
        self.T_max, self.eta_min = _positive_int("T_max", T_max), _number("eta_min", eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        t, n, low = self.last_epoch, self.T_max, self.eta_min
        if self._initial:
            return self._rates()
        if self._step_count == 1 and t > 0:  # resumed at epoch t: the closed form
            return [low + (base - low) * (1 + math.cos(t * math.pi / n)) / 2 for base in self.base_lrs]
        if (t - 1 - n) % (2 * n) == 0:  # the bottom of the cosine: back up
            return [lr + (base - low) * (1 - math.cos(math.pi / n)) / 2
                    for base, lr in zip(self.base_lrs, self._rates())]
        return [(1 + math.cos(math.pi * t / n)) / (1 + math.cos(math.pi * (t - 1) / n)) * (lr - low) + low
                for lr in self._rates()]


def _per_group(name: str, optimizer, value) -> list:
    """``value`` for each parameter group: one for all, or a list of one each."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(f"{name} must have the same length as optimizer.param_groups. {name} has "
                             f"{len(value)} values, param_groups has {len(optimizer.param_groups)}.")
        return [_number(name, v) for v in value]
    return [_number(name, value)] * len(optimizer.param_groups)


class OneCycleLR(LRScheduler):
    """The one-cycle policy (Smith and Topor 2017), a step per batch, as torch's: the rate
    climbs from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of
    ``total_steps`` (or ``epochs * steps_per_epoch``), then anneals to the start rate
    divided by ``final_div_factor`` (with ``three_phase``: back to the start rate first),
    along a cosine or a line (``anneal_strategy``). With ``cycle_momentum`` the
    optimiser's momentum (SGD) or first beta (Adam) moves the other way, between
    ``max_momentum`` and ``base_momentum``. Stepping past ``total_steps`` is refused.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> opt = sr.optim.SGD([sr.tensor([1.], requires_grad=True)], lr=0.1, momentum=0.9)
    >>> sched = sr.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=5, anneal_strategy="linear")
    >>> rates = []
    >>> for batch in range(5):
    ...     opt.step()
    ...     rates.append(round(sched.get_last_lr()[0], 4))
    ...     sched.step()
    >>> rates
    [0.04, 0.8571, 0.5714, 0.2857, 0.0]
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start: float = 0.3, anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum=0.85, max_momentum=0.95, div_factor: float = 25.0, final_div_factor: float = 1e4,
                 three_phase: bool = False, last_epoch: int = -1):
        if not _is_optimizer(optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        if total_steps is not None:
            if isinstance(total_steps, bool) or not isinstance(total_steps, numbers.Integral) or total_steps <= 0:
                raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
            self.total_steps = int(total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            for name, value in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch)):
                if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
                    raise ValueError(f"Expected positive integer {name}, but got {value}")
            self.total_steps = int(epochs) * int(steps_per_epoch)
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
        div_factor, final_div_factor = _number("div_factor", div_factor), _number("final_div_factor", final_div_factor)
        up = float(pct_start * self.total_steps) - 1
        # each phase: (its last step, the group keys of its start and end rate, of its
        # start and end momentum), as torch's _schedule_phases
        if three_phase:
            self._phases = [(up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                            (float(2 * pct_start * self.total_steps) - 2, "max_lr", "initial_lr",
                             "base_momentum", "max_momentum"),
                            (self.total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum")]
        else:
            self._phases = [(up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                            (self.total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")]
        self.anneal_strategy = anneal_strategy
        max_lrs = _per_group("max_lr", optimizer, max_lr)
        self.cycle_momentum = bool(cycle_momentum)
        if self.cycle_momentum:
            defaults = getattr(optimizer, "defaults", {})
            if "momentum" not in defaults and "betas" not in defaults:
                raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
            self.use_beta1 = "betas" in defaults
            max_momentums = _per_group("max_momentum", optimizer, max_momentum)
            base_momentums = _per_group("base_momentum", optimizer, base_momentum)
        if last_epoch == -1:  # (every check done: now the groups change)
            for i, group in enumerate(optimizer.param_groups):
                group["initial_lr"] = max_lrs[i] / div_factor
                group["max_lr"] = max_lrs[i]
                group["min_lr"] = group["initial_lr"] / final_div_factor
                if self.cycle_momentum:
                    if self.use_beta1:
                        group["betas"] = (max_momentums[i], *group["betas"][1:])
                    else:
                        group["momentum"] = max_momentums[i]
                    group["max_momentum"], group["base_momentum"] = max_momentums[i], base_momentums[i]
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list:
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"Tried to step {step} times. The specified number of total steps is {self.total_steps}")
        rates = []
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, (end, lr_from, lr_to, m_from, m_to) in enumerate(self._phases):
                if step <= end or i == len(self._phases) - 1:
                    pct = (step - start) / (end - start)
                    rates.append(self._anneal(group[lr_from], group[lr_to], pct))
                    if self.cycle_momentum:
                        momentum = self._anneal(group[m_from], group[m_to], pct)
                        if self.use_beta1:
                            group["betas"] = (momentum, *group["betas"][1:])
                        else:
                            group["momentum"] = momentum
                    break
                start = end
        return rates


class ReduceLROnPlateau(LRScheduler):
    """The rate times ``factor`` once a watched figure (``step(metric)``, a validation
    loss say) has not improved for more than ``patience`` epochs, as torch's: improved
    means below the best so far by more than ``threshold`` (relative, or absolute with
    ``threshold_mode="abs"``; above it with ``mode="max"``); after a cut, ``cooldown``
    epochs count no bad epoch; a rate never goes below ``min_lr`` (one for all groups,
    or one each), nor changes by ``eps`` or less.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> opt = sr.optim.SGD([sr.tensor([1.], requires_grad=True)], lr=1.0)
    >>> sched = sr.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    >>> rates = []
    >>> for loss in [3., 2., 2., 2., 2., 2., 1.]:
    ...     sched.step(loss)
    ...     rates.append(sched.get_last_lr()[0])
    >>> rates
    [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    """

    def __init__(self, optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0, min_lr=0.0,
                 eps: float = 1e-8):
        if not _is_optimizer(optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.factor = _number("factor", factor)
        if self.factor >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        groups = optimizer.param_groups
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(groups):
                raise ValueError(f"expected {len(groups)} min_lrs, got {len(min_lr)}")
            self.min_lrs = [_number("min_lr", m) for m in min_lr]
        else:
            self.min_lrs = [_number("min_lr", min_lr)] * len(groups)
        if mode not in ("min", "max"):
            raise ValueError(f"mode {mode} is unknown!")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold mode {threshold_mode} is unknown!")
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        self.optimizer, self.mode, self.threshold_mode = optimizer, mode, threshold_mode
        self.patience, self.cooldown = int(patience), int(cooldown)
        self.threshold, self.eps = _number("threshold", threshold), _number("eps", eps)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs, self.cooldown_counter, self.last_epoch = 0, 0, 0
        self._last_lr = self._rates()

    def step(self, metrics, epoch=None) -> None:
        """One epoch's figure (a number or a one-element tensor); cuts the rates when it
        is the ``patience + 1``-th epoch in a row without improvement."""
        if epoch is not None:
            raise TypeError("step(metrics, epoch) is deprecated in torch and not supported in sparse_ref: call "
                            "step(metrics) once per epoch")
        try:
            current = float(metrics)
        except (TypeError, ValueError) as e:
            raise TypeError(f"ReduceLROnPlateau.step: metrics must be a number or a one-element tensor, got "
                            f"{type(metrics).__name__} ({e})") from None
        self.last_epoch += 1
        if self._is_better(current):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # (no bad epoch counts in cooldown)
        if self.num_bad_epochs > self.patience:
            for group, low in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, low)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = self._rates()

    def _is_better(self, a: float) -> bool:
        best = self.best
        if self.mode == "min":
            return a < best * (1.0 - self.threshold) if self.threshold_mode == "rel" else a < best - self.threshold
        return a > best * (self.threshold + 1.0) if self.threshold_mode == "rel" else a > best + self.threshold


def __getattr__(name):
    """A schedule torch has and sparse_ref does not: an AttributeError that says so."""
    raise missing("module 'sparse_ref.optim.lr_scheduler'", name)

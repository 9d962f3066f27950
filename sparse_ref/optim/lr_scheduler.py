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

__all__ = ["CosineAnnealingLR", "ExponentialLR", "LRScheduler", "LambdaLR", "MultiStepLR", "StepLR"]


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


def __getattr__(name):
    """A schedule torch has and sparse_ref does not: an AttributeError that says so."""
    raise missing("module 'sparse_ref.optim.lr_scheduler'", name)

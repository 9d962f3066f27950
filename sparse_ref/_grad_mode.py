"""Grad mode (layer 0): whether ops record the graph, per thread, as in torch.

It sits below the tensor classes because their in-place ops ask it (torch refuses an
in-place change of a leaf that requires grad unless recording is off); the engine and
every op above ask it too. The public names are ``sr.no_grad``, ``sr.enable_grad``,
``sr.set_grad_enabled`` and ``sr.autograd.is_grad_enabled``.
"""

import functools
import inspect
import threading

# Grad mode is per thread, as in torch: one thread's `with no_grad():` never stops another
# thread's graph. Every thread starts with grad mode on.
class _GradState(threading.local):
    enabled = True  # every thread starts with grad mode on (a class default: no lookup miss)


_state = _GradState()


def is_grad_enabled() -> bool:
    """Whether ops record the graph in this thread (False inside ``sr.no_grad()``).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> with sr.no_grad():
    ...     sr.autograd.is_grad_enabled()
    False
    """
    return _state.enabled


def _set_enabled(mode: bool) -> None:
    _state.enabled = mode


class _GradMode:
    """Shared by no_grad, enable_grad and set_grad_enabled: set a mode for a block (this
    thread only) and put the previous one back when the block ends; also a decorator."""

    _mode = True

    def __enter__(self):
        self._previous = is_grad_enabled()
        _set_enabled(self._mode)
        return self

    def __exit__(self, *exc):
        _set_enabled(self._previous)
        return False

    def __call__(self, fn):
        mode = self._mode
        if inspect.isgeneratorfunction(fn):  # the mode holds inside the body, at every resumption
            return _generator_in_mode(fn, mode)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            previous = is_grad_enabled()
            _set_enabled(mode)
            try:
                return fn(*args, **kwargs)
            finally:
                _set_enabled(previous)

        return wrapper


def _generator_in_mode(fn, mode: bool):
    """A generator function whose body runs in ``mode`` each time it resumes, and the
    caller's mode in between (as torch's decorators wrap a generator)."""

    @functools.wraps(fn)
    def generator(*args, **kwargs):
        gen = fn(*args, **kwargs)
        throw, value = False, None
        while True:
            previous = is_grad_enabled()
            _set_enabled(mode)
            try:
                item = gen.throw(value) if throw else gen.send(value)
            except StopIteration as stop:
                return stop.value
            finally:
                _set_enabled(previous)
            try:
                throw, value = False, (yield item)
            except GeneratorExit:
                gen.close()
                raise
            except BaseException as exc:  # thrown into this generator: into fn's, in mode
                throw, value = True, exc

    return generator


class _Decorator(_GradMode):
    """``@sr.no_grad`` without the parentheses too, as torch allows."""

    def __new__(cls, fn=None):
        self = super().__new__(cls)
        if fn is None:
            return self
        if not callable(fn):
            raise TypeError(f"{cls.__name__}() takes no arguments (or, as a decorator, a function), "
                            f"got {type(fn).__name__}")
        return self(fn)

    def __init__(self, fn=None):
        pass


class no_grad(_Decorator):
    """Context manager (and decorator) in which no op records the graph, like torch's.
    It acts on the current thread only. As a decorator it may go without parentheses
    (``@sr.no_grad``), and on a generator function it holds inside the body each time the
    generator resumes (the caller's mode in between), as torch's does.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> x = sr.randn(2, requires_grad=True)
    >>> with sr.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    _mode = False


class enable_grad(_Decorator):
    """Context manager (and decorator) that turns recording back on inside ``no_grad``.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> x = sr.randn(2, requires_grad=True)
    >>> with sr.no_grad():
    ...     with sr.enable_grad():
    ...         y = x * 2
    >>> y.requires_grad
    True
    """

    _mode = True


class set_grad_enabled(_GradMode):
    """Turn recording on or off: as a call (this thread, until changed again) or for a
    ``with`` block, like ``torch.set_grad_enabled``.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> x = sr.randn(2, requires_grad=True)
    >>> with sr.set_grad_enabled(False):
    ...     (x * 2).requires_grad
    False
    """

    def __init__(self, mode: bool):
        if not isinstance(mode, bool):
            raise TypeError(f"set_grad_enabled: mode must be a bool, got {type(mode).__name__}")
        self._previous = is_grad_enabled()
        self._mode = mode
        _set_enabled(mode)  # a plain call takes effect at once, as in torch

    def __enter__(self):
        return self

    def __call__(self, fn):
        _set_enabled(self._previous)  # as a decorator it acts only while fn runs (torch's rule)
        return super().__call__(fn)

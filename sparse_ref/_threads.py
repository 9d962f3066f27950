"""How many threads a kernel gets: one policy, in one place.

``n_threads=None`` on a call means "the process-wide setting", which starts as OpenMP's
default (``OMP_NUM_THREADS`` or the core count) and changes with :func:`set_num_threads`,
lowered to the cores other processes leave free (:func:`free_cores`).
Negative numbers count back from the core count as in scikit-learn (-1 = all cores,
-2 = all but one); 0 is an error. Without OpenMP every kernel runs on one thread.
Small inputs run serial whatever the setting: starting threads costs more than it saves.

Every count is capped at the CPUs this process may run on (its affinity mask): more
threads than that only wait for each other, and an OpenMP runtime that cannot create the
threads it was asked for (under an address-space limit, say) ends the process instead of
raising, so sparse_ref never asks for more.

A process forked after sparse_ref ran a call on several threads runs every call on one
thread: GNU OpenMP's worker threads do not survive ``fork()`` (only the forking thread
does), and its first parallel region in the child waits for them forever. The child of a
process that never started them may use threads as usual.
"""

import os
import time

_num_threads = None  # None: OpenMP's default
_openmp = None  # whether the kernels have OpenMP, read once
_started = False  # whether a call ran on several threads in this process (or its parent)
_forked = False  # whether this process was forked after that: one thread from then on


def _after_fork_in_child():
    global _forked, _last, _busy_elsewhere
    _forked = _forked or _started
    _last, _busy_elsewhere = None, 0.0  # the child's own CPU clock starts again at 0


if hasattr(os, "register_at_fork"):  # (not on Windows, which has no fork)
    os.register_at_fork(after_in_child=_after_fork_in_child)

# Below this much work (roughly, entries touched) a kernel runs on one thread.
SERIAL_BELOW = 20_000

# Kernels keep buffers per thread: more threads than this is a mistake, not a setting.
MAX_THREADS = 1024


_cores_seen = None  # read once (every kernel call asks); set_num_threads reads it again


def _cores(refresh: bool = False) -> int:
    """The cores this process may run on (its affinity, not the machine's total)."""
    global _cores_seen
    if _cores_seen is None or refresh:
        try:
            _cores_seen = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            _cores_seen = os.cpu_count() or 1
    return _cores_seen


# -- cores other processes keep busy --------------------------------------------------------
# An OpenMP team waits at its barrier for its slowest thread: when another process holds a
# core, one of our threads waits for a time slice (10 ms or more), and two threads run far
# slower than one. So the default count never exceeds the cores that are free: the CPU
# time the whole machine spent (/proc/stat) minus this process's own, over the last
# SAMPLE_SECONDS, is what others use. Cheap (one read per SAMPLE_SECONDS), Linux only
# (elsewhere every core counts as free), and only for the default count: an explicit
# n_threads is honoured as given.

SAMPLE_SECONDS = 0.05
_last = None  # (wall, machine busy seconds, own cpu seconds) of the last sample
_busy_elsewhere = 0.0  # cores others kept busy over the last window


def _machine_busy_seconds():
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    # steal (a virtual machine's host running someone else) is not a process of ours to
    # leave room for: a thread started now still runs when the host gives the CPU back
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def free_cores() -> int:
    """The cores this process may use that other processes did not keep busy lately."""
    global _last, _busy_elsewhere
    now = time.monotonic()
    if _last is None or now - _last[0] >= SAMPLE_SECONDS:
        busy = _machine_busy_seconds()
        mine = sum(os.times()[:2])
        if busy is not None:
            if _last is not None:
                wall = now - _last[0]
                _busy_elsewhere = max(0.0, (busy - _last[1]) - (mine - _last[2])) / wall
            _last = (now, busy, mine)
    cores = _cores()
    return max(1, min(cores, cores - int(_busy_elsewhere + 0.5)))


def _helpers():
    from sparse_ref._kernels import _openmp_helpers

    return _openmp_helpers


def openmp_enabled() -> bool:
    """True if the Cython kernels were compiled with OpenMP.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> isinstance(sr.openmp_enabled(), bool)
    True
    """
    global _openmp
    if _openmp is None:
        _openmp = bool(_helpers().openmp_enabled())
    return _openmp


def _default_threads() -> int:
    return min(max(int(_helpers().max_threads()), 1), _cores())


def set_num_threads(n: int) -> None:
    """Set the number of threads the kernels use when a call does not say (like torch's).

    A count above the CPUs this process may use is lowered to that number.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> old = sr.get_num_threads()
    >>> sr.set_num_threads(1)
    >>> sr.get_num_threads()
    1
    >>> sr.set_num_threads(old)
    """
    global _num_threads
    _num_threads = _check_count(n, "set_num_threads")
    _cores(refresh=True)  # the affinity may have changed since the last look


def get_num_threads() -> int:
    """The number of threads a kernel uses when a call does not say (1 in a process forked
    after sparse_ref had run a call on several threads: see :doc:`/field`).

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.get_num_threads() >= 1
    True
    """
    if _forked:
        return 1
    if _num_threads is None:
        return _default_threads() if openmp_enabled() else 1
    return _resolve_threads(_num_threads)


def _is_numpy_integer(n) -> bool:
    import numpy as np

    return isinstance(n, np.integer) and not isinstance(n, np.bool_)


def _check_count(n, where):
    if isinstance(n, bool) or not isinstance(n, int) and not _is_numpy_integer(n):
        raise TypeError(f"{where}: the thread count must be an int, got {type(n).__name__}")
    n = int(n)  # (a NumPy integer, as torch takes one)
    if n == 0:
        raise ValueError(f"{where}: the thread count must not be 0 (use 1 for serial, -1 for all cores)")
    if abs(n) > MAX_THREADS:
        raise ValueError(f"{where}: {n} threads is more than the {MAX_THREADS} sparse_ref allows")
    return n


def effective_n_threads(n_threads=None, work: int | None = None) -> int:
    """Resolve a ``n_threads`` argument to the count a kernel will use.

    ``None`` takes the process-wide setting, except that ``work`` below
    :data:`SERIAL_BELOW` runs serial; an explicit count is honoured as given (so tests can
    run small inputs on several threads). A negative n means ``cores + 1 + n``. Without
    OpenMP the answer is always 1. Before a kernel runs on several threads, they take the
    caller's floating-point mode (:func:`_same_fp_mode`).
    """
    global _started
    n = _resolve_threads(n_threads, work)
    if n > 1:
        _started = True  # (before the threads start: a fork from another thread meanwhile sees it)
        _same_fp_mode(n)
    return n


def _resolve_threads(n_threads=None, work=None):
    if _forked:  # OpenMP's threads were lost in a fork: one thread (see the module's text)
        if n_threads is not None:
            _check_count(n_threads, "n_threads")
        return 1
    if n_threads is None:
        if work is not None and work < SERIAL_BELOW:
            return 1  # the common case of a small call: no more questions
        n = min(get_num_threads(), free_cores())
    else:
        n = _check_count(n_threads, "n_threads")
        if n < 0:
            n = max(_cores() + 1 + n, 1)
    return min(n, _cores()) if openmp_enabled() else 1


def _same_fp_mode(n):
    """Give the ``n`` threads of the calling thread's OpenMP team its flush-to-zero,
    denormals-are-zero and rounding bits (MXCSR on x86): they are a setting of each thread,
    and a worker keeps the ones it started with, or that the thread which started it had
    then. Without this, ``torch.set_flush_denormal(True)`` after the workers had started
    flushed subnormals in the caller's rows only: the bits of a product depended on the
    thread count. Every call on several threads, not only when the caller's bits change:
    the workers themselves can change (another user of the same OpenMP runtime, torch
    among them, shrinks and regrows the team, and a new worker copies the mode of the
    moment). A parallel region of one register write per thread, about 0.5 us."""
    _helpers().sync_fp_mode(n)

"""How much memory this process can still allocate (the one place that reads it), and the
cache that large outputs are allocated from (at the end).

A product whose output cannot fit is refused with a MemoryError that names the sizes,
before any work -- rather than allocated on trust and then killed by the kernel's
out-of-memory killer when its pages are touched. The figure is the smallest of:

- the memory the system can give without swapping (``MemAvailable`` in /proc/meminfo);
- the room left under this process's address-space limit (``ulimit -v``);
- the room left in its cgroup (``memory.max`` - ``memory.current``, cgroup v2).

Where none can be read (not Linux), nothing is refused on this ground.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _address_space_room() -> int | None:
    if resource is None:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return max(soft - int(line.split()[1]) * 1024, 0)
    except (OSError, ValueError, IndexError):
        pass
    return soft


def _cgroup_room() -> int | None:
    try:
        with open("/proc/self/cgroup") as f:
            path = next((line.strip().split(":", 2)[2] for line in f if line.startswith("0::")), None)
        if path is None:
            return None
        base = os.path.join("/sys/fs/cgroup", path.lstrip("/"))
        with open(os.path.join(base, "memory.max")) as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open(os.path.join(base, "memory.current")) as f:
            current = int(f.read().strip())
        return max(int(limit) - current, 0)
    except (OSError, ValueError, StopIteration):
        return None


def available_bytes() -> int | None:
    """Bytes this process can still allocate and use, or None when that is unknown."""
    figures = [x for x in (_meminfo_available(), _address_space_room(), _cgroup_room()) if x is not None]
    return min(figures) if figures else None


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


# Below this size an allocation is not checked: reading /proc costs tens of microseconds,
# more than a small product itself, and so little memory is never the problem.
CHECK_ABOVE = 64 << 20


def fits(nbytes: int) -> bool:
    """Whether ``nbytes`` can be had now (True when that is unknown): the question of
    :func:`check_fits`, for a caller with another way to go."""
    if nbytes <= CHECK_ABOVE:
        return True
    room = available_bytes()
    return room is None or nbytes <= room


def check_fits(nbytes: int, what: str) -> None:
    """Raise MemoryError, naming ``what`` and both sizes, if ``nbytes`` cannot be had."""
    if nbytes <= CHECK_ABOVE:
        return
    room = available_bytes()
    if room is not None and nbytes > room and _pool and _pool.info()["bytes"]:
        # the output cache's blocks are resident: give them back first (the system would
        # not take them back itself, and its out-of-memory killer strikes at first touch)
        _pool.clear()
        room = available_bytes()
    if room is not None and nbytes > room:
        raise MemoryError(f"{what} needs {gib(nbytes)} ({nbytes} bytes), more than the "
                          f"{gib(room)} of memory this process can still allocate")


# --- The cache of large output blocks (sparse_ref/_kernels/_pool.h) -------------------------
#
# A product's output of more than a few MiB is allocated through a cache: when the array
# is freed its block is kept (up to a limit), and the next output of about that size
# reuses it, pages already mapped. Without it every such output costs the kernel's page
# faults and zeroing, 5-7 ms per 42 MB measured on the Intel Xeon of
# docs/performance.rst. The limit: ``SPARSE_REF_CACHE_BYTES`` if set, else an eighth of
# the machine's memory, at most 1 GiB and at most an eighth of what the process could
# still allocate at load (``available_bytes``) (a value that is not a whole number of bytes is
# ignored with a warning); ``set_cache_limit`` changes it and ``empty_cache`` hands every
# block back to the system.

_pool = None  # the compiled module, once loaded; False without the compiled kernels
_use = False  # whether outputs come from it: there is one and its limit is above 0
_POOL_MIN = 4 << 20  # the smallest request the cache serves (read from the module on load)


LIMIT_MAX = 2**63 - 1


def _default_limit() -> int:
    env = os.environ.get("SPARSE_REF_CACHE_BYTES")
    if env is not None:
        try:
            value = int(env)
        except ValueError:
            value = -1
        if 0 <= value <= LIMIT_MAX:
            return value
        warnings.warn(f"SPARSE_REF_CACHE_BYTES must be a whole number of bytes from 0 to {LIMIT_MAX}, "
                      f"got {env!r}: using the default limit", RuntimeWarning, stacklevel=2)
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        total = 8 << 30
    room = available_bytes()  # under a ulimit or a cgroup, what the process may still take
    return min(total // 8, 1 << 30, (room if room is not None else total) // 8)


def _load_pool():
    global _pool, _POOL_MIN, _use
    if _pool is None:
        try:
            from sparse_ref._kernels import _pool as module
        except ImportError:
            _pool = False
        else:
            _POOL_MIN = module.MIN_BYTES
            limit = _default_limit()  # (never raises: a bad setting warns)
            module.set_limit(limit)
            _use = limit > 0
            _pool = module
    return _pool


def empty(shape, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)`` for a product's output: through the cache when it is
    large, a plain NumPy array either way (owns its memory, no base). One of more than
    ``CHECK_ABOVE`` bytes is refused first if it cannot fit (:func:`check_fits`)."""
    if _pool is None:
        _load_pool()
    # (the dtype's size without np.dtype() when it is one already: a small call's whole
    # allocation costs less than that conversion)
    nbytes = (dtype if isinstance(dtype, np.dtype) else np.dtype(dtype)).itemsize
    nbytes *= math.prod(shape) if isinstance(shape, (tuple, list)) else shape
    if nbytes > CHECK_ABOVE:  # refused now, not killed by the system when the kernel writes it
        check_fits(nbytes, f"an array of shape {tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)} "
                           f"and dtype {np.dtype(dtype).name}")
    if _use and nbytes >= _POOL_MIN:  # (a limit of 0: NumPy's own allocator, as if there were no cache)
        return _pool.empty(shape, dtype)
    return np.empty(shape, dtype)


def call_pooled(fn, args):
    """``fn(*args)`` with the large arrays NumPy makes meanwhile taken from the cache, so
    that they start on a 2 MiB page as :func:`empty`'s do (for an op whose inputs are
    large: one on small inputs makes no large arrays worth the detour)."""
    if _pool is None:
        _load_pool()
    return _pool.call(fn, args) if _use else fn(*args)


def large_bytes() -> int:
    """The size from which arrays come from the cache."""
    return _POOL_MIN


def set_cache_limit(nbytes: int) -> int:
    """Keep at most ``nbytes`` of freed output memory for reuse; returns the previous
    limit. Lowering it frees the oldest blocks at once; 0 turns the cache off (outputs
    then come from NumPy's own allocator). Without the compiled kernels there is no
    cache, and the limit reads 0.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> previous = sr.set_cache_limit(0)      # every output's memory goes back at once
    >>> sr.cache_info()["bytes"]
    0
    >>> _ = sr.set_cache_limit(previous)
    """
    global _use
    if isinstance(nbytes, (bool, np.bool_)) or not isinstance(nbytes, (int, np.integer)):
        raise TypeError(f"set_cache_limit: nbytes must be an int, got {type(nbytes).__name__}")
    if not 0 <= nbytes <= LIMIT_MAX:
        raise ValueError(f"set_cache_limit: nbytes must be from 0 to 2**63 - 1, got {nbytes!r}")
    pool = _load_pool()
    if not pool:
        return 0
    previous = int(pool.set_limit(int(nbytes)))
    _use = nbytes > 0
    return previous


def empty_cache() -> None:
    """Hand every cached block back to the system (as ``torch.cuda.empty_cache``); the
    limit stays as it was.

    Examples
    --------
    >>> import sparse_ref as sr
    >>> sr.empty_cache()
    >>> sr.cache_info()["blocks"]
    0
    """
    pool = _load_pool()
    if pool:
        pool.clear()


def cache_info() -> dict:
    """The cache's state: ``bytes`` and ``blocks`` held, the ``limit``, and how many large
    outputs were met from it (``hits``) or from the system (``misses``).

    Examples
    --------
    >>> import numpy as np
    >>> import sparse_ref as sr
    >>> a = sr.tensor(np.eye(2000)).to_sparse()
    >>> b = sr.ones(2000, 1000, dtype=sr.float64)   # the product: 16 MB, a large output
    >>> before = sr.cache_info()
    >>> for _ in range(3):
    ...     y = sr.sparse.mm(a, b)
    ...     del y                                   # its block goes back to the cache
    >>> sr.cache_info()["hits"] - before["hits"] >= 2
    True
    """
    pool = _load_pool()
    if not pool:
        return {"bytes": 0, "blocks": 0, "limit": 0, "hits": 0, "misses": 0}
    return {key: int(value) for key, value in pool.info().items()}

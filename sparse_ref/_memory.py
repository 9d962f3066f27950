"""How much memory this process can still allocate: the one place that reads it.

A product whose output cannot fit is refused with a MemoryError that names the sizes,
before any work -- rather than allocated on trust and then killed by the kernel's
out-of-memory killer when its pages are touched. The figure is the smallest of:

- the memory the system can give without swapping (``MemAvailable`` in /proc/meminfo);
- the room left under this process's address-space limit (``ulimit -v``);
- the room left in its cgroup (``memory.max`` - ``memory.current``, cgroup v2).

Where none can be read (not Linux), nothing is refused on this ground.
"""

from __future__ import annotations

import os

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


def check_fits(nbytes: int, what: str) -> None:
    """Raise MemoryError, naming ``what`` and both sizes, if ``nbytes`` cannot be had."""
    if nbytes <= CHECK_ABOVE:
        return
    room = available_bytes()
    if room is not None and nbytes > room:
        raise MemoryError(f"{what} needs {gib(nbytes)} ({nbytes} bytes), more than the "
                          f"{gib(room)} of memory this process can still allocate")

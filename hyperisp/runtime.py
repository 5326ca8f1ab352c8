"""Process-wide settings that make CPU inference fast.

Why the allocator matters here: inference on a photo allocates and frees feature maps
of tens to hundreds of MB many times per tile. glibc serves every allocation above
32 MB with a fresh ``mmap`` and returns it with ``munmap`` when freed, so each new map
is paid for again in page faults (the kernel zeroes every 4 KB page on first touch).
On the 2-core CI machine an element-wise add of two 64 MB maps took 55 ms into a new
tensor and 18 ms into an existing one, and the shipped ``isp`` network ran 2x slower
than with freed memory kept for reuse (``hyperisp bench`` measures both:
``--no-keep-memory`` turns this off).

:func:`keep_freed_memory` tells glibc to serve large blocks from the heap and to keep
freed memory (up to ``trim`` bytes at the top of the heap) for the next allocation.
The price is memory held between stages: freed blocks of the network stay resident while
the colour pipeline allocates its own, and a 24 MP develop peaked at 3.34 GB instead of
2.35 GB. :func:`release_freed_memory` (glibc's ``malloc_trim``) hands them back once the
network is done; the pipeline calls it after every network run, and tiled HyperUNet
inference after every tile of its final pass (the heap otherwise fragments from tile to tile). The CLI turns
:func:`keep_freed_memory` on; library users call it once if they want it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_applied = False


@functools.lru_cache(maxsize=None)
def _libc() -> ctypes.CDLL | None:
    """The C library, looked up once (``find_library`` runs ``ldconfig`` in a subprocess)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def keep_freed_memory(trim: int = 1 << 30) -> bool:
    """Keep freed memory for reuse instead of returning every large block to the OS.

    Args:
        trim: bytes of free memory at the top of the heap kept before glibc trims it.
    Returns:
        True if applied (Linux with glibc), False where it does not apply (other
        platforms and C libraries are left as they are).
    """
    global _applied
    if _applied:
        return True
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:  # not Linux, or musl and other C libraries without mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; M_MMAP_MAX = 0: large blocks come from the heap too.
    _applied = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, min(trim, 2**31 - 1)))
    return _applied


def release_freed_memory() -> None:
    """Return freed heap memory to the OS (glibc ``malloc_trim(0)``); a no-op where it does not apply."""
    if not _applied:  # glibc's defaults already hand large blocks back
        return
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
        trim(0)

"""Freed memory kept by the process, so that large temporaries are not faulted in again at every step.

glibc's ``malloc`` serves a large request with a fresh ``mmap`` and gives it back to the kernel when it is
freed; the next request faults every page in again, zeroed. A +G step in float64 allocates tens of
megabytes of temporaries (float64 convolution on CPU unfolds its whole batch: 94 MB for ten 32-channel
64 x 64 images), thousands of times, so on a 2-core virtual machine the page faults cost +G a fifth of its
time (``benchmarks/allocator.py``: 1.24 times faster with freed memory kept; img2img, 1.03 times).
:func:`keep_freed_memory` sets glibc's thresholds so that requests up to ``mmap_threshold`` come from the
heap and freed memory stays there for the next one.

It changes where memory comes from, not what is computed: PyTorch aligns every CPU buffer to 64 bytes
whatever the allocator returns, and the benchmark compares the outputs byte for byte. Requests above
``mmap_threshold`` are still mapped and unmapped, so NSD-sized arrays (a subject's betas: 1.5 GB) go back
to the system when freed. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

#: glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
#: requests up to 256 MB come from the heap: above the toy's largest temporary (94 MB), far below NSD's arrays
MMAP_THRESHOLD = 256 * 2**20
#: free memory at the top of the heap kept rather than returned: 1 GB
TRIM_THRESHOLD = 2**30

_applied: tuple[int, int] | None = None


def glibc_mallopt():
    """glibc's ``mallopt(parameter, value) -> 1 | 0``, typed; None elsewhere than glibc on Linux."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def keep_freed_memory(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Serve requests up to ``mmap_threshold`` bytes from the heap and keep up to ``trim_threshold`` bytes of it
    when freed, for the rest of this process. Returns whether glibc took both settings (False elsewhere)."""
    global _applied
    if _applied == (mmap_threshold, trim_threshold):
        return True
    mallopt = glibc_mallopt()
    if mallopt is None:
        return False
    # mallopt returns 1 on success, 0 for a value it refuses (both are C ints: at most 2 GB - 1)
    ok = bool(mallopt(M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(M_TRIM_THRESHOLD, int(trim_threshold)))
    if ok:
        _applied = (mmap_threshold, trim_threshold)
    return ok

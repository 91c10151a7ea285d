"""Return freed memory to the system during CPU training (Linux glibc only).

glibc raises its mmap threshold after every large free, up to 32 MB, so the many
1-30 MB activation and logit buffers of a training step end up on the heap and stay in the
process after they are freed: peak RSS grows by gigabytes that nothing uses. A fixed 2 MB
threshold keeps such buffers in mmap'ed memory, which is returned the moment it is freed.
Measured on Gemma 3 270M (benchmarks/train_throughput.py, same 6 steps): no change 3326 MB
peak in 93 s; 8 MB 2833 MB in 96 s; 2 MB 2435 MB in 113 s; 1 MB 2331 MB in 133 s (the
extra time is mmap system calls). 2 MB is the point where memory drops most per second.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def return_freed_memory(threshold: int = 2 << 20) -> bool:
    """Fix glibc's mmap and trim thresholds; False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, threshold))
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False

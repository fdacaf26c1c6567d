"""How the C allocator serves the large temporary tensors of a model stage on the CPU.

torch takes each CPU tensor from malloc and gives it back when it dies. glibc maps
every block above its mmap threshold (128 KiB in the service, `cog.yaml`, so that
long inputs hand their memory back) afresh and unmaps it on free, so each of the
ECAPA layers' 8-25 MB temporaries (a batch of 4 five-second pairs) costs the kernel
a page fault and a zeroed page per 4 KiB, every batch: on 2 CPU cores the embedding
stage of a 2-minute conversation took 24.5 s with that threshold and 20.0 s within
`freed_memory_reused`. Within `freed_memory_reused` blocks come from the heap and stay there
when freed, so the next batch reuses them; on exit the thresholds are restored
and the heap's free memory is handed back to the system (`malloc_trim`).
Elsewhere than glibc nothing changes. The settings are the process's: a block that
ends while another runs (nested, or in another thread) only costs the other its
speed.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
from collections.abc import Iterator

# mallopt's parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: glibc's initial mmap and trim thresholds
GLIBC_DEFAULT_THRESHOLD = 128 * 1024
#: the thresholds within the block: larger than any temporary of a model stage
STAGE_THRESHOLD = 1 << 30


@contextlib.contextmanager
def freed_memory_reused() -> Iterator[None]:
    """Within the block, large blocks come from the heap and stay there when freed."""
    libc = _glibc()
    if libc is None:
        yield
        return
    libc.mallopt(M_MMAP_THRESHOLD, STAGE_THRESHOLD)
    libc.mallopt(M_TRIM_THRESHOLD, STAGE_THRESHOLD)
    try:
        yield
    finally:
        # glibc's environment settings, else its initial values (without the dynamic
        # growth of the mmap threshold that a process starts with)
        for parameter, name in (
            (M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_"),
            (M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_"),
        ):
            libc.mallopt(parameter, _threshold_from_environment(name))
        libc.malloc_trim(0)


def _threshold_from_environment(name: str) -> int:
    """glibc's setting `name` from the environment, as mallopt's int takes it."""
    value = os.environ.get(name, "")
    return min(int(value), 2**31 - 1) if value.isdigit() else GLIBC_DEFAULT_THRESHOLD


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The process's C library if it is glibc (it has mallopt and malloc_trim)."""
    try:
        libc = ctypes.CDLL(None)  # the symbols the process has loaded, libc's among them
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None
    return libc

"""Process memory settings: large freed blocks go back to the system at once.

glibc's malloc serves a block of 128 KB or more with its own ``mmap`` and unmaps it when freed,
but it then raises that threshold to the freed block's size (up to 32 MB), so from the second
time on, blocks of a few MB (a batch of activations, one column of a table) come from the heap,
where freed memory stays with the process and fragments. Predicting 150,000 rows in chunks of
8,192 grew the process by 140-260 MB that way (the small outputs kept between chunks pin the
heap above each freed block), and the 1M-row command peaked ~170 MB higher. A fixed
threshold stops the raising: blocks of ``MMAP_THRESHOLD`` and more are always mapped and unmapped,
which costs a page fault per 4 KB on first touch, nothing measurable next to filling them.

pyarrow (the CSV reader, pandas' text columns) allocates with its own mimalloc, which keeps freed
pages for a while before handing them back: reading a 1M-row CSV peaked 130 MB higher for it.
``MIMALLOC_PURGE_DELAY=0`` hands them back at once; mimalloc reads it when pyarrow loads, so it is
set before that in this process, and is inherited by every process started from it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

MMAP_THRESHOLD = 4 * 2**20  # bytes; training batches stay well below it, whole columns above
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
ARROW_ALLOCATOR_SETTINGS = {"MIMALLOC_PURGE_DELAY": "0"}  # milliseconds before freed pages go back


def return_big_blocks_to_the_system() -> bool:
    """Fix glibc's mmap threshold for this process, and have pyarrow's allocator purge at once.

    Call it early in a process that handles big tables (the command line, a training worker),
    before pyarrow is imported where possible: the threshold applies to blocks allocated from then
    on, the allocator setting to a pyarrow loaded from then on (here or in a child process). A
    setting already in the environment is kept.

    Returns:
        Whether glibc's threshold was set (``False`` off Linux or off glibc).
    """
    for name, value in ARROW_ALLOCATOR_SETTINGS.items():
        os.environ.setdefault(name, value)
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        done = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt): its own policy stays
        return False
    log.debug("malloc mmap threshold %s: %d bytes", "set" if done else "unchanged", MMAP_THRESHOLD)
    return done

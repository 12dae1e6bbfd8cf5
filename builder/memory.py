"""Process memory settings: large freed blocks go back to the system at once.

glibc's malloc serves a block of 128 KB or more with its own ``mmap`` and unmaps it when freed,
but it then raises that threshold to the freed block's size (up to 32 MB), so from the second
time on, blocks of a few MB (a batch of activations, one column of a table) come from the heap,
where freed memory stays with the process and fragments. Predicting 150,000 rows in chunks of
8,192 grew the process by 140-260 MB that way (the small outputs kept between chunks pin the
heap above each freed block), and the 1M-row command peaked ~170 MB higher. A fixed
threshold stops the raising: blocks of ``MMAP_THRESHOLD`` and more are always mapped and unmapped,
which costs a page fault per 4 KB on first touch, nothing measurable next to filling them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

MMAP_THRESHOLD = 4 * 2**20  # bytes; training batches stay well below it, whole columns above
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


def return_big_blocks_to_the_system() -> bool:
    """Fix glibc's mmap threshold for this process; ``False`` (and nothing done) elsewhere.

    Call it early in a process that handles big tables (the command line, a training worker): it
    applies to blocks allocated from then on.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        done = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt): its own policy stays
        return False
    log.debug("malloc mmap threshold %s: %d bytes", "set" if done else "unchanged", MMAP_THRESHOLD)
    return done

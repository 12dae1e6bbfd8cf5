"""Process memory: freed blocks go back to the system at once, and big matrices change layout
without taking twice their size.

glibc's malloc serves a block of 128 KB or more with its own ``mmap`` and unmaps it when freed,
but it then raises that threshold to the freed block's size (up to 32 MB), so from the second
time on, blocks of a few MB (a batch of activations, one column of a table) come from the heap,
where freed memory stays with the process and fragments. Predicting 150,000 rows in chunks of
8,192 grew the process by 140-260 MB that way (the small outputs kept between chunks pin the
heap above each freed block), and the 1M-row command peaked ~170 MB higher. A fixed
threshold stops the raising: blocks of ``MMAP_THRESHOLD`` and more are always mapped and unmapped,
which costs a page fault per 4 KB on first touch, nothing measurable next to filling them.

pyarrow (the CSV reader, pandas' text columns) allocates with its own mimalloc, which keeps freed
pages for a while before handing them back: reading a 1M-row CSV peaked 35 MB higher for it (its
conversion to pandas alone, 115-130 MB).
``MIMALLOC_PURGE_DELAY=0`` hands them back at once; mimalloc reads it when pyarrow loads, so it is
set before that in this process, and is inherited by every process started from it.

A matrix filled column by column (a table's columns, each freed once written) is best kept
column-major: a row-major one takes its whole size from the first column written, since each column
touches every page. Training reads rows, so it is then copied row-major; ``to_row_major`` hands
each copied part of the column-major original back to the system at once, so the two do not both
take their full size (on 5M rows x 35 inputs: 467 MB each).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import mmap
import os
import sys

import numpy as np

log = logging.getLogger(__name__)

MMAP_THRESHOLD = 4 * 2**20  # bytes; training batches stay well below it, whole columns above
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
ARROW_ALLOCATOR_SETTINGS = {"MIMALLOC_PURGE_DELAY": "0"}  # milliseconds before freed pages go back
COPY_CHUNK_BYTES = 8 * 2**20  # row-major rows copied at a time by ``to_row_major``


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


def empty_column_major(rows: int, columns: int, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """An uninitialised ``(rows, columns)`` column-major array on a memory map of its own.

    Its pages take memory only once written, and ``to_row_major`` can hand them back part by part.
    """
    dtype = np.dtype(dtype)
    buffer = mmap.mmap(-1, max(1, rows * columns * dtype.itemsize))
    return np.frombuffer(buffer, dtype=dtype, count=rows * columns).reshape((rows, columns), order="F")


def to_row_major(matrix: np.ndarray) -> np.ndarray:
    """A row-major copy of a 2-D ``matrix``, made a few MB of rows at a time.

    When ``matrix`` comes from ``empty_column_major``, each part of it is handed back to the system
    as soon as it is copied, and the rest of ``matrix`` reads as zeros afterwards: the caller gives
    it up. Elsewhere (another array, or no ``madvise``) it is an ordinary copy.
    """
    buffer = _own_map(matrix)
    if buffer is None:
        return np.array(matrix, order="C")  # a copy even of a row-major matrix, as documented
    rows, columns = matrix.shape
    out = np.empty((rows, columns), dtype=matrix.dtype)
    column_bytes, page = rows * matrix.itemsize, mmap.PAGESIZE
    # Per column: where its pages not yet handed back start (a page shared with the column before
    # goes with the column after, once both are copied).
    released = [-(-(j * column_bytes) // page) * page for j in range(columns)]
    step = max(1, COPY_CHUNK_BYTES // max(1, columns * matrix.itemsize))
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        out[start:stop] = matrix[start:stop]
        for j in range(columns):
            copied = (j * column_bytes + stop * matrix.itemsize) // page * page  # whole pages copied
            if copied > released[j]:
                buffer.madvise(mmap.MADV_DONTNEED, released[j], copied - released[j])
                released[j] = copied
    return out


def _own_map(matrix: np.ndarray) -> mmap.mmap | None:
    """The memory map a column-major ``matrix`` fills from its start, as ``empty_column_major``
    makes it (the layout ``to_row_major``'s page arithmetic assumes); ``None`` otherwise."""
    if not hasattr(mmap, "MADV_DONTNEED") or not matrix.flags.f_contiguous:
        return None
    base = matrix
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):  # np.frombuffer's view of the map
        base = base.obj
    if not isinstance(base, mmap.mmap) or len(base) < matrix.nbytes:
        return None
    starts_at_its_start = matrix.ctypes.data == np.frombuffer(base, dtype=np.uint8).ctypes.data
    return base if starts_at_its_start else None

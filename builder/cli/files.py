"""The command line's paths and tables: checked before any slow work, with errors that list the columns."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.cli.args import DEFAULT_MAX_FILE_MB
from builder.errors import DataError

if TYPE_CHECKING:  # torch and pandas load only when a command needs them: --help stays instant
    import pandas as pd

log = logging.getLogger("builder.cli")  # one logger name for every command, as before the split

# The table size limit of the command running now (its --max-file-mb); None outside train and
# predict, whose reads then use DEFAULT_MAX_FILE_MB.
_max_file_mb: ContextVar[int | None] = ContextVar("max_file_mb", default=None)


def input_file(path: str, option: str) -> Path:
    """Check that ``path`` is a file before any slow work starts."""
    file = existing_path(path, option)
    if file.is_dir():
        raise DataError(f"{option} needs a file, but {path} is a folder.")
    return file


def existing_path(path: str, option: str) -> Path:
    """``path`` as a ``Path``, or a ``DataError`` when nothing is there."""
    file = Path(path).expanduser()
    if not file.exists():
        raise DataError(f"The file given to {option}, {path}, does not exist: check the path.")
    return file


def output_file(path: str, option: str, example: str) -> Path:
    """Check, before any slow work, that ``path`` can be a file. Its folder is made only when the
    file is written, so a command refused later leaves no empty folder behind."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise DataError(f"{option} needs a file name, but {path} is a folder: add a file name, e.g. "
                        f"{str(Path(path) / example)}.")
    existing = next((folder for folder in file.parents if folder.exists()), None)
    if existing is not None and not existing.is_dir():
        raise DataError(f"{option} cannot be written: {existing} is a file, not a folder. Choose another "
                        "place for it.")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise DataError(f"{option} cannot be written: the folder {existing} is not writable for you. "
                        "Choose another place for it.")
    return file


def is_zip(file: Path) -> bool:
    """Whether ``file`` is named like a zip (of images, for a command)."""
    return file.suffix.lower() == ".zip"


def is_image(file: Path) -> bool:
    """Whether ``file`` is named like one image file."""
    from builder.data.images import IMAGE_EXTENSIONS

    return file.suffix.lower() in IMAGE_EXTENSIONS


@contextlib.contextmanager
def max_file_mb(megabytes: int | None) -> Iterator[None]:
    """Within the block, table files up to ``megabytes`` MB are read (``None``: the default)."""
    token = _max_file_mb.set(megabytes or DEFAULT_MAX_FILE_MB)
    try:
        yield
    finally:
        _max_file_mb.reset(token)


def with_max_file_mb(run: Callable[[Any], int]) -> Callable[[Any], int]:
    """A command's ``run`` that reads table files up to its ``--max-file-mb``."""

    @functools.wraps(run)
    def limited(args: Any) -> int:
        with max_file_mb(getattr(args, "max_file_mb", None)):
            return run(args)

    return limited


def read_input_table(file: Path, option: str, drop_empty_rows: bool = True) -> pd.DataFrame:
    """Read a table file as the app reads it, and log its size.

    Raises:
        DataError: as ``read_table``; a file over the command's size limit names ``--max-file-mb``.
    """
    from builder.data import read_table

    flag = _max_file_mb.get()
    limit = flag or DEFAULT_MAX_FILE_MB
    size = file.stat().st_size
    if size > limit * 2**20:
        needed = 2 ** (math.ceil(size / 2**20) - 1).bit_length()  # the next power of two in MB
        how = (f"raise it with --max-file-mb (e.g. --max-file-mb {needed})" if flag
               else "train and predict take --max-file-mb to raise it")
        raise DataError(f"The file given to {option}, {file.name}, is {human_bytes(size)}, more than the "
                        f"command line's limit of {limit:,} MB: {how}, or use a smaller extract, or "
                        "save it as Parquet, which is smaller.")
    df = read_table(file, drop_empty_rows=drop_empty_rows, max_bytes=limit * 2**20)
    log.info("read %s: %d rows, %d columns", file.name, len(df), len(df.columns))
    return df


def column_list(columns: Sequence[Any], limit: int = 40) -> str:
    """Column names for a message: the first ``limit``, then how many more."""
    names = [str(c) for c in columns]
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_column(df: pd.DataFrame, name: str, file: Path, what: str) -> str:
    """``name`` if it is a column of ``df``, else a ``DataError`` that lists the columns."""
    columns = [str(c) for c in df.columns]
    if name not in columns:
        near = [c for c in columns if c.strip().lower() == name.strip().lower()]
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise DataError(f"There is no column {name!r} in {file.name}{hint}, given as {what}; the "
                        f"columns are: {column_list(columns)}.")
    return name


def require_target(df: pd.DataFrame, target: str | None, file: Path) -> str:
    """The target column, or a ``DataError`` that lists the columns to choose from."""
    if target is None:
        raise DataError(f"Choose the column to predict with --target; the columns of {file.name} "
                        f"are: {column_list([str(c) for c in df.columns])}.")
    return check_column(df, target, file, "--target")


def or_list(names: Sequence[str]) -> str:
    """Names joined for a message: "a, b or c"."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def human_bytes(n: int) -> str:
    """A size for people: "812 bytes", "3.4 MB"."""
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"

"""Failed writes: the operating system's refusal behind any exception a writer raises (:func:`os_write_error`),
the size a write of the same kind needs (:func:`folder_bytes`), and :func:`writing`, which says a refusal again
with what the caller knows. The sentence itself is :func:`cfld.errors.write_failure`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import SPACE_ERRNOS, CFLDError, WriteError, os_error_in_message, write_error


def os_write_error(error: BaseException) -> OSError | None:
    """The operating-system failure behind a failed write, or None when ``error`` is something else (a bug).

    ``error`` itself when it is an OSError; the OSError a :class:`~cfld.errors.WriteError` was made from; for an
    exception whose message holds Rust's ``(os error N)`` (safetensors' SafetensorError),
    ``OSError(N, os.strerror(N))``; else the first of these among the exceptions it was raised from or while
    handling (torch.save into a file raises a RuntimeError while handling the file's OSError). Our other errors
    (input errors) are not write failures.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, WriteError):
            return current.os_error
        if isinstance(current, CFLDError):
            return None
        if isinstance(current, OSError):
            return current
        found = os_error_in_message(current)
        if found is not None:
            return found
        current = current.__cause__ if current.__cause__ is not None else (
            None if current.__suppress_context__ else current.__context__)
    return None


def folder_bytes(path: str | os.PathLike) -> int:
    """The total size of the files under a folder (or of one file; 0 when nothing is there), each file counted
    once however many links it has: to say how much space a write of the same kind needs."""
    total, seen = 0, set()
    try:
        items = [Path(path)] if not Path(path).is_dir() else \
            [Path(root) / name for root, _, names in os.walk(path) for name in names]
    except OSError:
        return 0
    for item in items:
        try:
            stat = item.lstat()
        except OSError:
            continue
        if (stat.st_dev, stat.st_ino) not in seen:
            seen.add((stat.st_dev, stat.st_ino))
            total += stat.st_size
    return total


@contextlib.contextmanager
def writing(what: str | Callable[[Path], str | None] | None = None,
            kept: str | Callable[[], str | None] | None = None) -> Iterator[None]:
    """Say a failed write of the block again with what the caller knows: what is written (unless the write
    said it; ``what`` may be a function of the path that failed), and what is kept (``kept`` may be a function,
    asked at the failure: counts are known then).

    A :class:`WriteError` of the block is raised again with them; so is a full disk that an operating-system
    error of the block reports with its file (a plain ``open``, ``mkdir``). Other errors pass unchanged.
    """
    try:
        yield
    except WriteError as error:
        raise write_error(error.path, error.os_error, error.what or _what_of(what, error.path), error.needed,
                          _kept_now(kept) or error.kept) from None
    except OSError as error:
        if error.errno not in SPACE_ERRNOS or not isinstance(error.filename, (str, os.PathLike)):
            raise
        raise write_error(error.filename, error, _what_of(what, error.filename), None, _kept_now(kept)) from None


def _what_of(what: str | Callable[[Path], str | None] | None, path: str | os.PathLike) -> str | None:
    return what(Path(path)) if callable(what) else what


def _kept_now(kept: str | Callable[[], str | None] | None) -> str | None:
    return kept() if callable(kept) else kept

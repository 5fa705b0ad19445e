"""Errors that carry one clear sentence for the user.

Every problem with something a user handed us (a file, a keypoint row, a config, a checkpoint) is
raised as an :class:`InputError` whose message names the source and the fault. The command line prints
that sentence and exits with status 2 instead of showing a traceback.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path


class CFLDError(Exception):
    """Base class of the errors cfld raises on purpose. They pickle with everything they hold (an error raised in
    a worker process reaches the command's process whole)."""

    def __reduce__(self):
        return _rebuild, (type(self), self.args, dict(self.__dict__))


def _rebuild(cls: type, args: tuple, state: dict) -> CFLDError:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class InputError(CFLDError, ValueError):
    """A user-supplied input (file, keypoints, config, checkpoint) is invalid."""

    def __init__(self, source: object, problem: str):
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


class WriteError(InputError):
    """The operating system refused to write ``path`` (disk full, read-only, ...): an :class:`InputError` that
    keeps what its sentence was made of (made by :func:`write_failure`), so that a caller that knows more
    (what the file is, what an interrupted run keeps) can say it again with that (:func:`cfld.io.writing`)."""

    def __init__(self, path: object, problem: str, os_error: OSError, *, what: str | None = None,
                 needed: int | None = None, kept: str | None = None):
        super().__init__(path, problem)
        self.path = path
        self.os_error = os_error
        self.what = what
        self.needed = needed
        self.kept = kept


class MissingDependencyError(CFLDError, ImportError):
    """An optional extra that a feature needs (``pip install 'cfld[EXTRA]'``) is not installed."""


def one_line(error: BaseException, limit: int | None = None) -> str:
    """An exception's message as one line (white space folded), cut to ``limit`` characters; its type's name
    when it has no message. For the ``(Type: message)`` part of an error sentence."""
    text = " ".join(str(error).split())[:limit]
    return text or type(error).__name__


#: Errors of the operating system that mean the disk (or the user's quota on it) is full.
SPACE_ERRNOS = frozenset(n for n in (getattr(errno, "ENOSPC", None), getattr(errno, "EDQUOT", None)) if n is not None)
_OS_ERROR_IN_MESSAGE = re.compile(r"\(os error (\d+)\)")


def os_error_in_message(error: BaseException) -> OSError | None:
    """The OSError a library's own exception reports in its message as Rust does, ``... (os error 28)``
    (safetensors' SafetensorError), or None."""
    match = _OS_ERROR_IN_MESSAGE.search(str(error))
    if match is None:
        return None
    number = int(match[1])
    return OSError(number, os.strerror(number))


def format_size(size: int) -> str:
    """``512 bytes``, ``12.3 kB``, ``40.2 MB``, ``1.5 GB`` (powers of 1000, as disks are sold and ``df -H``)."""
    if size < 1000:
        return f"{size} byte{'' if size == 1 else 's'}"
    for unit in ("kB", "MB", "GB", "TB"):
        size /= 1000
        if size < 999.95 or unit == "TB":
            return f"{size:.1f} {unit}"
    raise AssertionError("unreachable")


def free_space(path: str | os.PathLike) -> int | None:
    """Bytes free to this user on the file system of ``path`` (its nearest existing folder), or None."""
    for folder in (Path(path), *Path(path).parents):
        try:
            if folder.is_dir():
                return shutil.disk_usage(folder).free
        except OSError:
            return None
    return None


def write_failure(path: str | os.PathLike, error: OSError, *, what: str | None = None, needed: int | None = None,
                  kept: str | None = None) -> InputError:
    """An operating-system failure to write ``path`` as one sentence naming it (a :class:`WriteError`).

    With only ``(path, error)``: ``PATH: cannot be written (REASON)``. ``what`` says what the file is, ``needed``
    how many bytes it needs, ``kept`` what an interrupted run keeps and how to go on; on a full disk the free space
    left (after the temporary was removed) is measured. Unknown parts are left out::

        runs/a/checkpoints/step-0000004: the checkpoint cannot be written (No space left on device; it needs about
        40.2 MB, 3.1 MB are free); the last good checkpoint is step-0000003: free space and run again with --resume
    """
    return write_error(path, error, what, needed, kept, space=(what, needed, kept) != (None, None, None))


def write_error(path: str | os.PathLike, error: OSError, what: str | None, needed: int | None, kept: str | None,
                space: bool = True) -> WriteError:
    """The :class:`WriteError` of a refused write of ``path``: the operating system's reason, then on a full disk
    (when ``space``) how much the write needs and how much is free, then what is kept."""
    details = [error.strerror or type(error).__name__]
    if space and error.errno in SPACE_ERRNOS:
        amounts = [] if needed is None else [f"it needs about {format_size(needed)}"]
        free = free_space(Path(path).parent) if error.errno == errno.ENOSPC else None  # a quota is not free space
        if free is not None:
            amounts.append(f"{format_size(free)} {'is' if free == 1 else 'are'} free")
        if amounts:
            details.append(", ".join(amounts))
    problem = f"{what + ' ' if what else ''}cannot be written ({'; '.join(details)})"
    if kept:
        problem += f"; {kept}"
    return WriteError(path, problem, error, what=what, needed=needed, kept=kept)


def describe_unexpected(err: BaseException, traceback_hint: str = "run again with --debug for the traceback"
                        ) -> tuple[str, int]:
    """One sentence for an exception that is not one of our input errors, and the exit status.

    A refusal of the operating system that names a file is the user's to fix (status 2), and so is a full disk,
    also where a library reports it in its own exception as Rust does (safetensors' SafetensorError
    ``... No space left on device (os error 28)``); running out of memory says so (status 1); anything else is
    a bug of ours (status 1).
    """
    if not isinstance(err, (OSError, CFLDError)):
        err = os_error_in_message(err) or err  # e.g. safetensors' "... No space left on device (os error 28)"
    if isinstance(err, OSError) and err.errno in SPACE_ERRNOS:
        if err.filename is not None:
            return str(write_failure(err.filename, err, kept="free space and run again")), 2
        return f"a file could not be written ({err.strerror}); free space and run again", 2
    if isinstance(err, OSError) and err.filename is not None:
        return f"{err.filename}: {err.strerror or type(err).__name__}", 2
    if isinstance(err, OSError) and err.strerror:
        return f"the system refused: {err.strerror}", 2
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return ("out of memory; use smaller sizes or batches (--batch-size), fp16 on a GPU, or a machine with "
                "more memory"), 1
    return (f"unexpected {type(err).__name__}: {one_line(err, 300)}; this is a bug in cfld: {traceback_hint} and "
            "please report it"), 1

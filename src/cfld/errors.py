"""Errors that carry one clear sentence for the user.

Every problem with something a user handed us (a file, a keypoint row, a config, a checkpoint) is
raised as an :class:`InputError` whose message names the source and the fault. The command line prints
that sentence and exits with status 2 instead of showing a traceback.
"""

from __future__ import annotations

import errno
import os
import re


class CFLDError(Exception):
    """Base class of the errors cfld raises on purpose."""


class InputError(CFLDError, ValueError):
    """A user-supplied input (file, keypoints, config, checkpoint) is invalid."""

    def __init__(self, source: object, problem: str):
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


class WriteError(InputError):
    """The operating system refused to write ``path`` (disk full, read-only, ...): an :class:`InputError` that
    keeps what its sentence was made of (made by :func:`cfld.io.write_failure`), so that a caller that knows more
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
        from .io import write_failure

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
    return f"unexpected {type(err).__name__}: {one_line(err, 300)}; this is a bug in cfld: {traceback_hint} and please report it", 1

"""Errors that carry one clear sentence for the user.

Every problem with something a user handed us (a file, a keypoint row, a config, a checkpoint) is
raised as an :class:`InputError` whose message names the source and the fault. The command line prints
that sentence and exits with status 2 instead of showing a traceback.
"""

from __future__ import annotations


class CFLDError(Exception):
    """Base class of the errors cfld raises on purpose."""


class InputError(CFLDError, ValueError):
    """A user-supplied input (file, keypoints, config, checkpoint) is invalid."""

    def __init__(self, source: object, problem: str):
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


class MissingDependencyError(CFLDError, ImportError):
    """An optional extra that a feature needs (``pip install 'cfld[EXTRA]'``) is not installed."""


def one_line(error: BaseException, limit: int | None = None) -> str:
    """An exception's message as one line (white space folded), cut to ``limit`` characters; its type's name
    when it has no message. For the ``(Type: message)`` part of an error sentence."""
    text = " ".join(str(error).split())[:limit]
    return text or type(error).__name__


def describe_unexpected(err: BaseException, traceback_hint: str = "run again with --debug for the traceback"
                        ) -> tuple[str, int]:
    """One sentence for an exception that is not one of our input errors, and the exit status.

    A refusal of the operating system that names a file is the user's to fix (status 2); running out of
    memory says so (status 1); anything else is a bug of ours (status 1).
    """
    if isinstance(err, OSError) and err.filename is not None:
        return f"{err.filename}: {err.strerror or type(err).__name__}", 2
    if isinstance(err, OSError) and err.strerror:
        return f"the system refused: {err.strerror}", 2
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return ("out of memory; use smaller sizes or batches (--batch-size), fp16 on a GPU, or a machine with "
                "more memory"), 1
    return f"unexpected {type(err).__name__}: {one_line(err, 300)}; this is a bug in cfld: {traceback_hint} and please report it", 1

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

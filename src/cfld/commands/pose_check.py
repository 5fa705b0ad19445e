"""The pose check of the generating commands: ``--pose-threshold``/``--no-pose-check``, one line per result,
a warning naming each result that misses its target pose, and ``scores.csv`` beside the results.

``cfld transfer``, ``animate``, ``edit`` and ``sample`` score what they made with
:mod:`cfld.metrics.pose_accuracy` (PCKh@0.5, PCK@0.1 and the share of joints found, docs/pose-check.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import click

from ..errors import MissingDependencyError
from ..io import atomic_write_text
from ..metrics.pose_accuracy import SCORES_FILE, WARN_BELOW, PoseScorer, scores_csv

MAX_WARNINGS = 10  # warnings named one by one; the rest are counted in one line (scores.csv lists them all)


def pose_check_options(command: Callable) -> Callable:
    """``--pose-threshold`` and ``--no-pose-check`` (in that order after the command's own options)."""
    command = click.option("--no-pose-check", "no_pose_check", is_flag=True,
                           help="Do not score the results against their target poses (no MediaPipe needed).")(command)
    return click.option("--pose-threshold", type=click.FloatRange(0, 1), default=WARN_BELOW, show_default=True,
                        metavar="SHARE",
                        help="Warn about a result whose PCK@0.1 (share of target joints found within 0.1 of the "
                             "pose's box diagonal) is below this; docs/pose-check.md says how it was chosen.")(command)


class PoseCheck:
    """Scores results against their target poses, prints a line each and warns on a miss.

    ``check = PoseCheck(threshold, enabled)``; ``check.run([(path, image, target_pose), ...], scores_file=...)``
    returns a :class:`~cfld.metrics.pose_accuracy.PoseScore` per result (all None when the check is off or MediaPipe
    is missing, which one line says) and writes them to ``scores_file``.
    """

    def __init__(self, threshold: float = WARN_BELOW, enabled: bool = True, echo: Callable[[str], None] = click.echo):
        self.threshold = threshold
        self.enabled = enabled
        self.echo = echo
        self.seconds = 0.0

    def run(self, results: Sequence[tuple[Path, object, object]], label: Callable[[Path], str] = str,
            scores_file: Path | None = None, overwrite: bool = True) -> list:
        """Score every ``(path, image, target pose)``; the lines name each result by ``label(path)``. With
        ``scores_file`` the scores are written there too (:meth:`write`), a row per result named ``Path(path).name``."""
        if not self.enabled or not results:
            return [None] * len(results)
        start = time.perf_counter()
        try:
            scorer = PoseScorer()
        except MissingDependencyError as error:
            self.echo(f"not checking the results' poses: {error} (or pass --no-pose-check)")
            return [None] * len(results)
        scores, misses = [], []
        with scorer:
            for path, image, target in results:
                if not target.visible.any():  # nothing to score against (a caller's empty pose): not checked
                    scores.append(None)
                    self.echo(f"{label(path)}: not checked, its target pose has no joint")
                    continue
                score = scorer(image, target, str(path))
                scores.append(score)
                self.echo(f"{label(path)}: {score.line()}")
                if score.misses(self.threshold):
                    misses.append((path, score))
        self.seconds = time.perf_counter() - start
        warn_misses(misses, self.threshold, scores_file.name if scores_file is not None else SCORES_FILE)
        checked = sum(score is not None for score in scores)
        self.echo(f"pose check: {checked} result{'s' * (checked != 1)} in {self.seconds:.1f} s, "
                  f"{len(misses)} below PCK@0.1 {self.threshold}")
        if scores_file is not None:
            self.write(scores_file, [(Path(path).name, score) for (path, _, _), score in zip(results, scores)],
                       overwrite)
        return scores

    def write(self, path: Path, rows: Sequence[tuple[str, object]], overwrite: bool = True) -> Path | None:
        """``scores.csv`` of ``(file name, score or None)`` rows; nothing when the check did not run."""
        if not rows or all(score is None for _, score in rows):
            return None
        written = atomic_write_text(path, scores_csv(rows, self.threshold), overwrite=overwrite)
        self.echo(f"wrote {written}")
        return written


def warn_misses(misses: Sequence[tuple[object, object]], threshold: float, scores_file: object,
                shown: int = MAX_WARNINGS) -> None:
    """On stderr, a warning sentence naming each ``(path, PoseScore)`` of ``misses``, the first ``shown``; then one
    saying how many more there are, which ``scores_file`` marks all (``misses_pose``)."""
    for path, score in misses[:shown]:
        click.echo(f"warning: {path} misses its target pose (PCK@0.1 {score.pck:.2f} < {threshold}); look at it "
                   "before using it", err=True)
    if len(misses) > shown:
        click.echo(f"warning: {len(misses) - shown} more results miss their target poses; {scores_file} marks every "
                   "one (misses_pose)", err=True)

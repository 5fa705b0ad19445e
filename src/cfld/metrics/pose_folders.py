"""The pose check over a set of results: each generated image scored against its target's pose, summed up as the
pose-transfer papers report it (pooled PCKh@0.5), for ``cfld evaluate --poses``, ``cfld sample`` and training's
periodic evaluation.

* :class:`PoseTargets`: the target pose of a ground-truth file, looked up in an annotation table by the name
  ``cfld evaluate`` matches files by (path-style and flattened DeepFashion names, any image extension).
* :class:`PoseTally`: scores image after image (or takes scores already made) and gives the three metrics
  (``pckh``, ``pck``, ``pose_found``), their protocols, :func:`~cfld.metrics.pose_accuracy.summarize`'s
  summary and one row per pair; :func:`merge_pose` adds them to an evaluation result.
* :func:`score_folder`: the results of a folder against their targets, written as ``scores.csv`` beside them;
  rows of an earlier ``scores.csv`` are reused for files not made again (:func:`read_scores`).
* :class:`BackgroundScoring`: results scored in a worker thread while the caller goes on sampling.

The scores themselves are :mod:`cfld.metrics.pose_accuracy`'s (docs/pose-check.md).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import time
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, MissingDependencyError
from ..io import atomic_write_text
from ..pose import Pose, PoseTable, read_annotation_csv
from .matching import image_key
from .pose_accuracy import SCORE_COLUMNS, SCORES_FILE, WARN_BELOW, PoseScore, PoseScorer, scores_csv, summarize

#: The metrics the pose check adds to an evaluation, in its ``metrics`` dict.
POSE_METRICS = ("pckh", "pck", "pose_found")
PROTOCOLS = {
    "pckh": "PCKh@0.5 pooled over all target joints, as the pose-transfer papers (PATN's calPCKH): hit within half "
            "the target's head box (nose, neck, eyes, ears); our MediaPipe detector, not OpenPose (docs/pose-check.md)",
    "pck": "PCK@0.1 pooled over all target joints: hit within 0.1 x the diagonal of the target joints' box; our "
           "MediaPipe detector (docs/pose-check.md)",
    "pose_found": "share of all target joints our MediaPipe detector found anywhere in the image "
                  "(docs/pose-check.md)",
}


def open_scorer(what: str = "the pose check (PCKh, PCK)") -> PoseScorer:
    """A :class:`PoseScorer`, or a MissingDependencyError in one sentence saying what needs MediaPipe."""
    try:
        return PoseScorer()
    except MissingDependencyError:
        raise MissingDependencyError(f"{what} needs MediaPipe to find the person in each image: "
                                     "pip install 'cfld[detect]'") from None


class PoseTargets:
    """The target poses of ground-truth images, from an annotation table (``name:keypoints_y:keypoints_x``).

    A file is looked up by :func:`~cfld.metrics.matching.image_key`, as ``cfld evaluate`` matches files:
    ``fashionWOMENDressesid0000262902_3back.png`` finds the row ``fashion/WOMEN/Dresses/id_00002629/02_3_back.jpg``
    (and its flattened name), whatever the extension; then by the file's name without its folders.
    """

    def __init__(self, table: PoseTable):
        self.table = table
        self._by_key: dict[str, str] = {}
        for name in table.names:
            self._by_key.setdefault(image_key(name), name)

    @classmethod
    def read(cls, path: str | os.PathLike, frame=None) -> PoseTargets:
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "no such file (the --poses annotation CSV)" if not path.exists()
                             else "is not a file (the --poses annotation CSV)")
        return cls(read_annotation_csv(path, frame))

    def pose(self, file: str | os.PathLike) -> Pose:
        """The target pose of ground-truth ``file`` (a path relative to its folder), or an InputError naming the
        annotation file and ``file``."""
        file = Path(file).as_posix()
        name = self._by_key.get(image_key(file), self._by_key.get(image_key(Path(file).name)))
        if name is None:
            example = f"; its names look like {self.table.names[0]!r}" if self.table.names else ""
            raise InputError(self.table.source, f"has no keypoint row for the ground-truth image {file} (looked up "
                                                f"as {image_key(file)}.jpg and the other extensions{example})")
        return self.table[name]


class PoseTally:
    """Pose scores of one evaluation, pair after pair; :meth:`result` sums them up.

    ``scorer``: an open :class:`PoseScorer` (the caller closes it), or None when every score is given to
    :meth:`add`. A target without any joint (or none at all) is not scored: its row is empty and it counts in
    ``pose["no_target_joints"]``.
    """

    def __init__(self, scorer: PoseScorer | None, threshold: float = WARN_BELOW):
        self.scorer = scorer
        self.threshold = threshold
        self.scores: list[PoseScore | None] = []
        self.seconds = 0.0

    def add(self, images: Sequence[Any], targets: Sequence[Pose | None],
            known: Sequence[PoseScore | None] | None = None,
            names: Sequence[str] | None = None) -> list[PoseScore | None]:
        """Score ``images`` (paths, PIL images, HxWx3 uint8 arrays, or a (B, 3, H, W) uint8 tensor) against
        ``targets`` (None, or a pose without joints: not scored); a score in ``known`` is taken as it is. Returns
        this batch's scores."""
        if hasattr(images, "permute"):  # a torch batch, as Evaluator.add takes it
            images = list(images.permute(0, 2, 3, 1).cpu().numpy())
        known = list(known) if known is not None else [None] * len(targets)
        start, out = time.perf_counter(), []
        for i, (image, target) in enumerate(zip(images, targets)):
            score = known[i]
            if score is None and target is not None and target.visible.any():
                if self.scorer is None:
                    raise ValueError("PoseTally has no scorer and no score was given")
                score = self.scorer(np.ascontiguousarray(image) if isinstance(image, np.ndarray) else image, target,
                                    names[i] if names is not None else None)
            out.append(score)
        self.scores.extend(out)
        self.seconds += time.perf_counter() - start
        return out

    def result(self) -> dict[str, Any]:
        """``{"metrics", "protocols", "pose", "rows"}``: the three pooled metrics (None without any scored
        pair), their protocols, :func:`summarize`'s dict (plus ``no_target_joints``), and one
        row per pair (``pckh``, ``pck``, ``pose_found``, ``person_found``, ``misses_pose``)."""
        scored = [s for s in self.scores if s is not None]
        summary = summarize(scored, self.threshold) if scored else {"images": 0, "threshold": self.threshold}
        summary["no_target_joints"] = len(self.scores) - len(scored)
        metrics = {"pckh": summary.get("pckh"), "pck": summary.get("pck"), "pose_found": summary.get("found")}
        return {"metrics": metrics, "protocols": dict(PROTOCOLS), "pose": summary,
                "rows": [pair_row(s, self.threshold) for s in self.scores]}


def pair_row(score: PoseScore | None, threshold: float = WARN_BELOW) -> dict[str, Any]:
    """A pair's pose numbers as ``per_pair`` rows hold them (all None when it was not scored)."""
    if score is None:
        return dict.fromkeys(("pckh", "pck", "pose_found", "person_found", "misses_pose"))
    row = score.to_dict(threshold)
    return {"pckh": row["pckh"], "pck": row["pck"], "pose_found": row["found"], "person_found": row["person_found"],
            "misses_pose": row["misses_pose"]}


def merge_pose(result: dict[str, Any], pose: dict[str, Any]) -> dict[str, Any]:
    """An evaluation ``result`` (:meth:`Evaluator.compute`'s dict) with :meth:`PoseTally.result` added: the
    metrics and their protocols, ``result["pose"]``, and the numbers in each ``per_pair`` row."""
    result["metrics"].update(pose["metrics"])
    result["protocols"].update(pose["protocols"])
    result["pose"] = pose["pose"]
    for row, extra in zip(result.get("per_pair", []), pose["rows"]):
        row.update(extra)
    return result


# -- scores.csv beside a folder of results ---------------------------------------------------------------------------


def read_scores(path: str | os.PathLike) -> dict[str, PoseScore]:
    """The scores of an earlier ``scores.csv`` by file name; rows left empty or unreadable are left out, and a file
    that cannot be read gives none (they are scored again)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        reader = csv.DictReader(io.StringIO(text))
        if not set(SCORE_COLUMNS) <= set(reader.fieldnames or ()):
            return {}
        rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}
    scores = {}
    for row in rows:
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            scores[row["file"]] = _score_from_row(row)
    return scores


def _score_from_row(row: dict[str, str]) -> PoseScore:
    """A row of ``scores.csv`` back as counts: each share times the joints, rounded (4 places suffice for 18)."""
    joints = int(row["joints"])
    if not 1 <= joints <= 1000 or row["person_found"] not in ("true", "false"):
        raise ValueError("not a scored row")

    def hits(share: str) -> int:
        count = round(float(share) * joints)
        if not 0 <= count <= joints:
            raise ValueError(share)
        return count

    return PoseScore(joints, hits(row["found"]), hits(row["pck"]), None if row["pckh"] == "" else hits(row["pckh"]),
                     person=row["person_found"] == "true")


@dataclass
class FolderScores:
    """The pose check of a folder of results: ``files`` and their ``scores`` (None: target without joints),
    how many were ``reused`` from an earlier ``scores.csv``, the ``seconds`` spent scoring, the file written."""

    path: Path
    files: list[str]
    scores: list[PoseScore | None]
    reused: int
    seconds: float
    threshold: float

    def by_file(self) -> dict[str, PoseScore]:
        return {f: s for f, s in zip(self.files, self.scores) if s is not None}

    def misses(self) -> list[tuple[str, PoseScore]]:
        return [(f, s) for f, s in zip(self.files, self.scores) if s is not None and s.misses(self.threshold)]

    def summary(self) -> dict[str, Any] | None:
        scored = [s for s in self.scores if s is not None]
        return summarize(scored, self.threshold) if scored else None


def score_folder(folder: str | os.PathLike, items: Sequence[tuple[str, Pose]], threshold: float = WARN_BELOW, *,
                 fresh: Collection[str] = (), scorer: PoseScorer | None = None,
                 known: Mapping[str, PoseScore] | None = None) -> FolderScores:
    """Score ``folder / file`` against its target for each ``(file, target)`` of ``items`` and write
    ``folder/scores.csv`` (a row per item, in order). A file not in ``fresh`` (the files made again just now) whose
    row an earlier ``scores.csv`` holds keeps that row's score; the earlier rows of other files still in the
    folder (an earlier run's other pairs, ``--pairs-from``/``--limit`` chunks) stay after them. MediaPipe is
    needed only when something is scored (``scorer`` or one opened here: a MissingDependencyError without it).
    ``known``: scores of this run's files already made (:class:`BackgroundScoring`), taken as they are."""
    folder = Path(folder)
    old = read_scores(folder / SCORES_FILE)
    fresh = set(fresh)
    scores = {file: old[file] for file, _ in items if file in old and file not in fresh}
    reused = len(scores)
    scores.update({file: known[file] for file, _ in items if known and file in known})
    todo = [(file, target) for file, target in items if file not in scores and target.visible.any()]
    start = time.perf_counter()
    if todo:
        with contextlib.nullcontext(scorer) if scorer is not None else open_scorer() as opened:
            for file, target in todo:
                scores[file] = opened(folder / file, target, str(folder / file))
    rows = [(file, scores.get(file)) for file, _ in items]
    chosen = {file for file, _ in items}
    others = [(file, score) for file, score in old.items() if file not in chosen and (folder / file).is_file()]
    path = folder / SCORES_FILE
    atomic_write_text(path, scores_csv(rows + others, threshold), overwrite=True)
    return FolderScores(path, [r[0] for r in rows], [r[1] for r in rows], reused,
                        time.perf_counter() - start, threshold)


class BackgroundScoring:
    """Results scored in one worker thread while the caller goes on: ``cfld sample`` hands each result over as soon
    as it is written, so that on a GPU the detector (on the CPU, about 30 ms an image) works while the next batch
    samples; MediaPipe lets go of the GIL while it runs. :meth:`results` waits for them: ``{path: PoseScore}``.
    Whatever could not be scored here (no MediaPipe, an unreadable file, a target without joints) is left out, for
    :func:`score_folder` to score or report. Call :meth:`close` (or :meth:`results`) in every case."""

    def __init__(self):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="cfld-pose-check")
        self._scorer: PoseScorer | None = None
        self._missing = False
        self._futures: dict[Path, Future] = {}

    def submit(self, path: str | os.PathLike, target: Pose) -> None:
        """Score the file ``path`` against ``target`` in the worker, after what was handed over before."""
        if target.visible.any():
            self._futures[Path(path)] = self._pool.submit(self._score, Path(path), target)

    def _score(self, path: Path, target: Pose) -> PoseScore | None:  # in the worker thread only
        if self._missing:
            return None
        if self._scorer is None:
            try:
                self._scorer = PoseScorer()
            except MissingDependencyError:
                self._missing = True
                return None
        return self._scorer(path, target, str(path))

    def results(self) -> dict[Path, PoseScore]:
        """Every score handed over so far, once made (then the worker is closed)."""
        scores = {}
        for path, future in self._futures.items():
            with contextlib.suppress(Exception):  # scored again, and reported, by score_folder
                if (score := future.result()) is not None:
                    scores[path] = score
        self.close()
        return scores

    def close(self) -> None:
        """Stop the worker (what was handed over is finished first) and close its detector."""
        if self._scorer is not None:
            self._pool.submit(self._scorer.close).result()
            self._scorer = None
        self._pool.shutdown(wait=True)


__all__ = ["BackgroundScoring", "POSE_METRICS", "PROTOCOLS", "SCORES_FILE", "FolderScores", "PoseTally", "PoseTargets",
           "merge_pose", "open_scorer", "pair_row", "read_scores", "score_folder"]

"""Framing a catalogue photo by photo, with a record of each photo kept as soon as it is made.

A photo's record is ``framing/<name>.json`` (:data:`RECORD_FORMAT`): the photo's path in the catalogue, its person,
the SHA-1 of its bytes, the framing settings, the outcome (``framed`` or the reason it is left out, one of
:data:`cfld.left_out.REASONS`) and, when framed, the crop box in the photo's own pixels and the pose in the
picture, which is ``framing/<name>.png``. A record of this photo as it is now, made with these settings, is taken
as it is by a later run, so an interrupted preparation goes on where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ...errors import InputError
from ...framing import Framer, FramingError
from ...images import load_image, save_image
from ...io import atomic_write_text, writing
from ...pose.detect import NO_PERSON
from ...pose.formats import pose_from_json, pose_to_json
from ...pose.skeleton import Pose, Size
from ...workers import Crashed, WorkerPool
from .catalogue import Photo
from .names import nfc
from .report import PhotosReport

FRAMING_DIR = "framing"
RECORD_FORMAT = "cfld.prepare-photo/v1"


@dataclass
class Record:
    """What framing one photo gave (kept in ``framing/<name>.json``): the pose in the picture, or why not."""

    outcome: str  # "framed" or one of cfld.left_out.REASONS
    message: str
    pose: Pose | None
    data: dict


def earlier_records(photos: Sequence[Photo], digests: dict[str, str], framing_dir: Path, settings: dict,
                    size: Size) -> tuple[dict[str, Record], list[Photo], list[str]]:
    """The records earlier runs kept for ``photos`` (name -> Record), the photos left to frame, and the names of
    those whose record is of another version of the photo or of other settings."""
    records: dict[str, Record] = {}
    todo, differing = [], []
    for photo in photos:
        record = _read_record(framing_dir / f"{Path(photo.name).stem}.json", photo, digests.get(photo.source),
                              settings, size)
        if isinstance(record, Record):
            records[photo.name] = record
        else:
            todo.append(photo)
            if record == "differs":
                differing.append(photo.name)
    return records, todo, differing


def _read_record(path: Path, photo: Photo, digest: str | None, settings: dict, size: Size) -> Record | str | None:
    """The record of an earlier run: a Record when it is of this photo as it is now (its bytes' SHA-1: copying or
    touching the catalogue frames nothing again), with these settings; "differs" when it is of another photo,
    another version of it, or other settings; None when there is none."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return "differs"
    try:
        if (data.get("format") != RECORD_FORMAT or nfc(data.get("source")) != nfc(photo.source)
                or data.get("sha1") != digest or data.get("settings") != settings):
            return "differs"
        pose = pose_from_json(data["pose"], str(path)) if data.get("pose") is not None else None
        if pose is not None and tuple(pose.frame) != tuple(size):
            return "differs"
        if data["outcome"] == "framed" and (pose is None or not path.with_suffix(".png").is_file()):
            return "differs"
        return Record(data["outcome"], data.get("message", ""), pose, data)
    except (KeyError, TypeError, AttributeError, InputError, OSError):
        return "differs"


def make_framer(factory: Callable[[Size, bool], object] | None, size: Size, plain_background: bool):
    """A worker's framer (one detector each): ``factory(size, plain_background)``, a :class:`Framer` by default."""
    if factory is not None:
        return factory(size, plain_background)
    return Framer(size, replace_background=plain_background)


def frame_all(todo: list[Photo], digests: dict[str, str], framing_dir: Path, settings: dict, size: Size,
              plain_background: bool, records: dict[str, Record], report: PhotosReport, progress: bool,
              framer_factory: Callable[[Size, bool], object] | None, workers: int = 1,
              desc: str = "framing photos") -> None:
    """Frame and detect every photo of ``todo`` in ``workers`` processes, one framer (one detector) each, each
    record kept by its worker as soon as it is made. A photo whose worker died twice gets a record of this run
    only (``unreadable``, not kept: a later run tries it again)."""
    from tqdm.auto import tqdm

    def kept() -> str:  # what a full disk leaves: each photo's framing is kept as it is made
        done = report.framed_before + report.framed_now
        return (f"the framing of the {done:,} photo(s) framed before is kept in {framing_dir}: free space and run the "
                "same command again to go on where it stopped") if done else "free space and run the same command again"

    with writing(kept=kept):
        framing_dir.mkdir(parents=True, exist_ok=True)
    pool = WorkerPool(partial(frame_record, framing_dir, settings),
                      partial(make_framer, framer_factory, size, plain_background), workers)
    items = [(photo, digests.get(photo.source)) for photo in todo]
    with writing(kept=kept), tqdm(total=len(items), desc=desc, unit="photo", disable=not progress) as bar:
        for index, result in pool.map(items):
            photo = todo[index]
            if isinstance(result, Crashed):
                records[photo.name] = Record("unreadable", result.sentence, None, {})
            else:
                records[photo.name], seconds = result
                for key, value in seconds.items():
                    report.seconds[key] += value
                report.framed_now += 1
            bar.update()
    report.peak_memory = pool.peak_memory


def frame_record(framing_dir: Path, settings: dict, framer, item: tuple[Photo, str | None],
                 attempt: int = 0) -> tuple[Record, dict[str, float]]:
    """Frame one photo (``item``: the photo and the SHA-1 of its bytes) and keep its record and picture in
    ``framing_dir``; returns the record and the seconds spent reading, framing and writing."""
    photo, digest = item
    seconds = {"reading": 0.0, "framing": 0.0, "writing": 0.0}
    outcome, message, framed = _frame_one(framer, photo, seconds)
    start = time.perf_counter()
    stem = Path(photo.name).stem
    pose = None if framed is None else framed.pose_at_size()
    data = _record_json(photo, digest, settings, outcome, message, framed, pose)
    if framed is not None:
        with writing("the framed photo"):
            save_image(framed.image_at_size(), framing_dir / f"{stem}.png", overwrite=True)
    with writing("the framing record"):
        atomic_write_text(framing_dir / f"{stem}.json", json.dumps(data, indent=1) + "\n", overwrite=True)
    seconds["writing"] += time.perf_counter() - start
    return Record(outcome, message, pose, data), seconds


def _frame_one(framer, photo: Photo, timings: dict[str, float]) -> tuple[str, str, object]:
    """(outcome, message, Framed or None) of one photo."""
    start = time.perf_counter()
    try:
        image = load_image(photo.path, photo.source)
    except InputError as error:
        timings["reading"] += time.perf_counter() - start
        return "unreadable", error.problem, None
    middle = time.perf_counter()
    timings["reading"] += middle - start
    try:
        framed = framer(image, source=photo.source)
    except FramingError as error:
        return error.reason, error.problem, None
    except InputError as error:
        return "unreadable", error.problem, None
    finally:
        timings["framing"] += time.perf_counter() - middle
    if framed.pose is None:  # a photo of the model's shape with nobody in it, which framing passes through
        return "no_person", NO_PERSON, None
    return "framed", "", framed


def _record_json(photo: Photo, digest: str | None, settings: dict, outcome: str, message: str, framed,
                 pose: Pose | None) -> dict:
    data = {"format": RECORD_FORMAT, "source": photo.source, "person": photo.person, "sha1": digest,
            "settings": settings, "outcome": outcome, "message": message}
    if framed is not None:
        data["framing"] = {key: value for key, value in framed.to_json().items() if key not in ("format", "pose")}
        data["pose"] = pose_to_json(pose)
    return data

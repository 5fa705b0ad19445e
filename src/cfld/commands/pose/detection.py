"""``cfld pose detect``: find the person in photos or folders of photos and write their poses, with a summary."""

from __future__ import annotations

import json
import os
import sys
import time
from functools import partial
from pathlib import Path

import click
import numpy as np
from tqdm import tqdm

from ... import pose as P
from ...errors import InputError
from ...images import load_image
from ...io import atomic_write_text, check_output_folder, path_kind
from ...left_out import DETECTION_LEFT_OUT
from ...pose.detect import MIN_JOINTS, NO_PERSON, PoseDetector, too_few_joints
from ...workers import Crashed, WorkerPool, default_workers
from ..options import FiniteFloat, check_targets, photo_arguments, same_file, workers_option

SUMMARY_NAME = "detect-summary.json"
SEVERAL_PEOPLE = "shows more than one person; the pose written is the most prominent one's"


@click.command("detect")
@click.argument("photos", nargs=-1, required=True, metavar="PHOTO|FOLDER...")
@click.option("--min-confidence", type=FiniteFloat(0, 1), default=0.5, show_default=True,
              help="Joints MediaPipe sees less surely than this are written as missing.")
@click.option("--draw", "drawing",
              help="Also draw the skeleton over the photo: a PNG file for one PHOTO, a folder (DIR2/<stem>.png) "
                   "for several.")
@click.option("-o", "--output", required=True,
              help="The pose JSON file for one PHOTO; the folder (DIR/<stem>.json and DIR/detect-summary.json) "
                   "for several photos or a FOLDER. Written atomically; never replaced without --overwrite.")
@click.option("--overwrite", is_flag=True, help="Replace outputs that exist.")
@workers_option
@click.option("--no-progress", is_flag=True, help="No progress bar (shown for several photos).")
def detect(photos: tuple[str, ...], min_confidence: float, drawing: str | None, output: str, overwrite: bool,
           workers: int | None, no_progress: bool) -> None:
    """Find the person in each photo and write their OpenPose-18 pose as our JSON, offline.

    \b
    Usage:
      cfld pose detect PHOTO -o pose.json [--draw pose.png]
      cfld pose detect PHOTO PHOTO... -o DIR [--draw DIR2]
      cfld pose detect FOLDER -o DIR [--draw DIR2]

    Uses MediaPipe's pose model (the optional extra: pip install 'cfld[detect]'), whose weights ship
    inside its wheel: nothing is downloaded. Its 33 landmarks are mapped onto the 18 OpenPose joints
    (the neck is the midpoint of the shoulders), each with MediaPipe's visibility as its confidence; the
    pose is in the photo's own pixel frame (give it to `cfld transfer -p`, which fits it to the model's
    frame, or `cfld pose retarget`).

    One PHOTO: -o is the JSON file and --draw the PNG file; a photo without a person is an error. When
    the photo shows more than one person, the most prominent one's pose is written and a note says so.

    Several photos, or a FOLDER (its .png .jpg .jpeg .bmp .tif .tiff .webp files, sorted by name; not
    its sub-folders; photos and folders may be mixed): they are shared out over --workers processes
    (default: every usable core), each with its own detector, and the files are the same whatever their
    number; -o
    is a folder that gets DIR/<stem>.json per photo and DIR/detect-summary.json, --draw a folder that
    gets DIR2/<stem>.png. A photo without a person, with fewer than 3 joints found, or that cannot be
    read is left out and listed, and the run goes on; a photo showing several people still gets the
    pose of its most prominent person and is listed as such. The summary holds the lists "detected"
    (every photo whose pose was written), "several_people" (some of those), "no_person",
    "too_few_joints" and "unreadable". The command fails only when no photo gave a pose. Two photos
    with the same name stem (a.jpg, a.png) are refused before anything is written.

    Existing outputs are never replaced without --overwrite; all of them are checked before detection.

    \b
    Examples:
      cfld pose detect photo.jpg -o pose.json
      cfld pose detect photo.jpg -o pose.json --draw pose.png --min-confidence 0.3
      cfld pose detect photos/ -o poses/ --draw drawings/
      cfld pose detect a.jpg b.jpg more_photos/ -o poses/ --overwrite
    """
    if len(photos) == 1 and path_kind(photos[0]) != "folder":
        _detect_one(photos[0], min_confidence, drawing, output, overwrite)
    else:
        _detect_many(photos, min_confidence, drawing, output, overwrite, progress=not no_progress,
                     workers=workers or default_workers())


def _detect_one(photo: str, min_confidence: float, drawing: str | None, output: str, overwrite: bool) -> None:
    """``cfld pose detect PHOTO -o pose.json``: any fault is an error."""
    if drawing is not None and same_file(drawing, output):
        raise InputError(drawing, "is also the -o file; give the drawing its own name")
    for path, option in ((output, "-o"), (drawing, "--draw")):
        if path is None:
            continue
        if path_kind(path) == "folder":
            raise InputError(path, f"is a folder; with one PHOTO, {option} names a file (a FOLDER of photos, or "
                                   f"several photos, write into folders)")
        if path_kind(path) is not None and not overwrite:
            raise InputError(path, "already exists; pass --overwrite to replace it")
        if same_file(path, photo):
            raise InputError(path, "is the photo itself; choose another output name")
    picture = load_image(photo)  # a bad photo is reported before MediaPipe starts
    with PoseDetector(min_confidence, segmentation=True) as detector:
        status, found, reason = _find_pose(detector, picture, photo, min_confidence)
    if found is None:
        raise InputError(photo, reason)
    if status == "several_people":
        click.echo(f"note: {photo}: {reason}", err=True)
    written = P.write_pose_json(found, output, overwrite=overwrite)
    height, width = found.frame
    click.echo(f"wrote {written} ({found.num_visible} of {P.NUM_JOINTS} joints found, frame {height}x{width})")
    if drawing:
        picture = P.draw_pose(found, None, np.asarray(picture))
        click.echo(f"wrote {P.write_png(picture, drawing, overwrite=overwrite)}")


def _detect_many(arguments: tuple[str, ...], min_confidence: float, drawing: str | None, output: str,
                 overwrite: bool, progress: bool, workers: int = 1) -> None:
    """``cfld pose detect PHOTO|FOLDER... -o DIR``: ``workers`` processes, one detector each; faulty photos are
    listed."""
    photos = photo_arguments(arguments, "both poses would be written to {stem}.json",
                             {Path(SUMMARY_NAME).stem: f"{SUMMARY_NAME}, the run's summary"})
    json_of, png_of, summary_path = _plan_outputs(photos, output, drawing, overwrite)
    for folder in (output, drawing):
        if folder is not None:
            check_output_folder(folder)  # a folder that cannot be written is refused before the detection
    found = {key: [] for key in ("detected", *DETECTION_LEFT_OUT)}
    reasons: dict[str, str] = {}
    start = time.perf_counter()
    tasks = [(photo, json_of[photo], png_of.get(photo)) for photo in photos]
    pool = WorkerPool(partial(detect_into, min_confidence, overwrite), partial(_detector, min_confidence), workers)
    statuses: dict[int, tuple[str, str]] = {}
    with tqdm(total=len(photos), desc="detecting poses", unit="photo", file=sys.stderr, leave=False,
              disable=not progress or len(photos) < 2) as bar:
        for index, result in pool.map(tasks):
            statuses[index] = ("unreadable", result.sentence) if isinstance(result, Crashed) else result
            bar.update()
    for index, photo in enumerate(photos):  # in the order the photos were given
        status, reason = statuses[index]
        if status in ("detected", "several_people"):
            found["detected"].append(photo.name)
        if status != "detected":
            found[status].append(photo.name)
            reasons[photo.name] = reason
    seconds = time.perf_counter() - start
    count = len(photos)
    left_out = [name for key in ("no_person", "too_few_joints", "unreadable") for name in found[key]]
    if not found["detected"]:
        for photo in photos:
            click.echo(f"  {photo.name}: {reasons[photo.name]}")
        kinds = ", ".join(f"{len(found[key])} {what}" for key, what in (
            ("no_person", "without a person"), ("too_few_joints", "with too few joints"),
            ("unreadable", "unreadable")) if found[key])  # fmt: skip
        raise InputError(arguments[0] if len(arguments) == 1 else "pose detect",
                         f"none of the {count} photos gave a pose ({kinds}); nothing was written")
    text = json.dumps(found, indent=2) + "\n"
    atomic_write_text(summary_path, text, overwrite=overwrite)
    click.echo(f"wrote the poses of {len(found['detected'])} of {count} photos to {output}"
               + (f", their drawings to {drawing}" if drawing is not None else "") + f"; summary: {summary_path}")
    if left_out:
        click.echo(f"left out {_count_photos(len(left_out))}:")
        for photo in photos:
            if photo.name in left_out:
                click.echo(f"  {photo.name}: {reasons[photo.name]}")
    if found["several_people"]:
        click.echo(f"several people in {_count_photos(len(found['several_people']))} (the most prominent one's pose "
                   "was written):")
        for name in found["several_people"]:
            click.echo(f"  {name}")
    click.echo(f"{_count_photos(count)} in {seconds:.1f} s ({1000 * seconds / count:.0f} ms per photo)")


def _detector(min_confidence: float) -> PoseDetector:
    return PoseDetector(min_confidence, segmentation=True)


def detect_into(min_confidence: float, overwrite: bool, detector: PoseDetector, task: tuple[Path, Path, Path | None],
                attempt: int = 0) -> tuple[str, str]:
    """One photo of a batch (``task``: the photo, its JSON file, its drawing or None): its pose found and written
    (by a worker process); ``(status, reason)`` as :func:`_find_pose`'s, or ``("unreadable", why)``. A second
    ``attempt`` (its worker died) may replace what the first wrote."""
    photo, json_file, drawing = task
    try:
        picture = load_image(photo)
    except InputError as error:
        return "unreadable", error.problem
    status, pose, reason = _find_pose(detector, picture, str(photo), min_confidence)
    if pose is not None:
        P.write_pose_json(pose, json_file, overwrite=overwrite or attempt > 0)
        if drawing is not None:
            P.write_png(P.draw_pose(pose, None, np.asarray(picture)), drawing, overwrite=overwrite or attempt > 0)
    return status, reason


def _count_photos(count: int) -> str:
    return f"{count} photo{'s' if count != 1 else ''}"


def _plan_outputs(photos: list[Path], output: str, drawing: str | None, overwrite: bool
                  ) -> tuple[dict[Path, Path], dict[Path, Path], Path]:
    """DIR/<stem>.json, DIR2/<stem>.png per photo and DIR/detect-summary.json, all checked before any work."""
    for folder, option, suffix in ((output, "-o", ".json"), (drawing, "--draw", ".png")):
        if folder is None:
            continue
        kind = path_kind(folder)
        if kind not in (None, "folder"):
            raise InputError(folder, f"is a {kind}; with several photos, {option} names a folder "
                                     f"(DIR/<stem>{suffix} per photo)")
        if kind is None and Path(folder).suffix.lower() == suffix:
            raise InputError(folder, f"looks like a file name, but with several photos {option} names a folder "
                                     f"(DIR/<stem>{suffix} per photo); give a folder name")
    json_of = {photo: Path(output) / f"{photo.stem}.json" for photo in photos}
    png_of = {photo: Path(drawing) / f"{photo.stem}.png" for photo in photos} if drawing is not None else {}
    summary = Path(output) / SUMMARY_NAME
    check_targets([*json_of.values(), *png_of.values(), summary], photos, overwrite)
    return json_of, png_of, summary


def _find_pose(detector, picture, photo: str, min_confidence: float) -> tuple[str, P.Pose | None, str]:
    """``(status, pose, reason)`` of one photo: status is "detected", "several_people" (with the pose of the most
    prominent person), "no_person" or "too_few_joints" (pose None); reason says why in one sentence."""
    found = detector.detect(picture, photo)
    if found is None:
        return "no_person", None, NO_PERSON
    pose = found.pose(min_confidence, os.path.basename(photo))
    if pose.num_visible < MIN_JOINTS:
        return "too_few_joints", None, too_few_joints(pose.num_visible, min_confidence)
    if detector.another_person(picture, _person_box(found)):
        return "several_people", pose, SEVERAL_PEOPLE
    return "detected", pose, ""


def _person_box(found) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) pixels of the person found: their mask's box, else their landmarks'."""
    if found.mask is not None:
        ys, xs = np.nonzero(found.mask > 0.5)
        if len(xs):
            return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
    height, width = found.frame
    xs = np.clip(found.landmarks[:, 0] * width, 0, width)
    ys = np.clip(found.landmarks[:, 1] * height, 0, height)
    return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())

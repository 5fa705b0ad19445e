"""``cfld pose``: read, convert, flip, retarget, draw and render OpenPose-18 poses."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import click

from .. import pose as P
from ..errors import InputError
from ..io import atomic_write
from ..left_out import DETECTION_LEFT_OUT
from ..pose.detect import MIN_JOINTS, NO_PERSON, too_few_joints
from .options import FiniteFloat, check_targets, parse_size_option, photo_arguments, same_file

SOURCE_HELP = """
\b
SOURCE is any of:
  pose.json                 our JSON format (cfld.pose/v1, written by `cfld pose convert`)
  result_keypoints.json     OpenPose --write_json output (COCO-18 or BODY_25); needs --frame
                            (or --image for `draw`), --person picks the person
  annotations.csv           a DeepFashion/Market annotation file; --name picks the row
  'name:[y0,...]:[x0,...]'  one annotation row given inline (-1 = missing joint)
Annotation rows are read in a 256x176 frame (128x64 for files named market*) unless --frame says.
Joints a little outside the frame are kept and drawn clipped at the border, as the original CFLD
renderer does (a note names them); joints more than a frame size outside are an error.
"""


def source_options(command):
    """The options that say which pose of SOURCE to read: --name, --person, --frame."""

    @click.argument("source")
    @click.option("--name", help="Row of an annotation file, path-style or flattened DeepFashion name.")
    @click.option("--person", type=click.IntRange(min=0), default=0, show_default=True,
                  help="Person of an OpenPose file (OpenPose's order).")
    @click.option("--frame", metavar="HxW",
                  help="Frame of the keypoints: the photo size for OpenPose files, the annotation frame for rows.")
    @functools.wraps(command)
    def wrapper(source: str, name: str | None, person: int, frame: str | None, **kwargs):
        pose = P.load_pose(source, name=name, person=person, frame=parse_size_option(frame, "--frame"))
        note = pose.outside_note()
        if note:
            click.echo(f"note: {note}", err=True)
        return command(pose, **kwargs)

    return wrapper


def output_options(command):
    command = click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")(command)
    return click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
                        help="File to write (written atomically; never replaced without --overwrite).")(command)


@click.group("pose", context_settings={"help_option_names": ["-h", "--help"]})
def pose() -> None:
    """Read, convert, flip, retarget, draw and render OpenPose-18 (COCO-18) poses.

    \b
    Examples:
      cfld pose convert fasion-resize-annotation-test.csv \\
          --name fashion/WOMEN/Tees_Tanks/id_00005085/45_1_front.jpg -o front.json
      cfld pose draw front.json -o front.png --image photo.jpg
      cfld pose flip front.json -o mirrored.json
      cfld pose retarget photo_keypoints.json --frame 1080x720 --to 256x176 -o pose.json
      cfld pose render front.json --size 256x256 -o front.safetensors
      cfld pose detect photo.jpg -o pose.json --draw pose.png
      cfld pose detect photos/ -o poses/
    """


@pose.command("convert", epilog=SOURCE_HELP)
@source_options
@output_options
def convert(pose: P.Pose, output: str, overwrite: bool) -> None:
    """Convert SOURCE into our JSON format (cfld.pose/v1).

    \b
    Examples:
      cfld pose convert annotations.csv --name fashionWOMENTees_Tanksid0000508545_1front.jpg -o pose.json
      cfld pose convert photo_keypoints.json --frame 1080x720 --person 1 -o pose.json
      cfld pose convert -o pose.json \\
          '[40,85,90,147,210,82,141,199,205,-1,-1,205,-1,-1,34,34,39,40]:[88,89,56,49,35,124,129,111,58,-1,-1,98,-1,-1,81,96,72,105]'
    """
    path = P.write_pose_json(pose, output, overwrite=overwrite)
    height, width = pose.frame
    click.echo(f"wrote {path} ({pose.num_visible} of {P.NUM_JOINTS} joints visible, frame {height}x{width})")


@pose.command("flip", epilog=SOURCE_HELP)
@source_options
@output_options
def flip(pose: P.Pose, output: str, overwrite: bool) -> None:
    """Mirror SOURCE left to right (left and right joints swap labels), write our JSON.

    \b
    Example:
      cfld pose flip front.json -o mirrored.json
    """
    path = P.write_pose_json(P.flip(pose), output, overwrite=overwrite)
    click.echo(f"wrote {path}")


@pose.command("retarget", epilog=SOURCE_HELP)
@source_options
@click.option("--to", "to", required=True, metavar="HxW", help="The new frame, e.g. 256x176 (DeepFashion).")
@click.option("--fit", type=click.Choice(["frame", "body"]), default="frame", show_default=True,
              help="frame: fit the whole old frame (like letterboxing the photo); body: fit the joints' box.")
@click.option("--padding", type=FiniteFloat(0, 10), default=0.1, show_default=True,
              help="With --fit body, margin around the joints as a fraction of their box.")
@output_options
def retarget(pose: P.Pose, to: str, fit: str, padding: float, output: str, overwrite: bool) -> None:
    """Scale and centre SOURCE into a frame of HxW pixels keeping its aspect ratio, write our JSON.

    \b
    Examples:
      cfld pose retarget photo_keypoints.json --frame 1080x720 --to 256x176 -o pose.json
      cfld pose retarget pose.json --to 256x176 --fit body --padding 0.05 -o tight.json
    """
    moved = P.retarget(pose, parse_size_option(to, "--to", P.MAX_PICTURE_SIDE), fit=fit, padding=padding)
    path = P.write_pose_json(moved, output, overwrite=overwrite)
    click.echo(f"wrote {path} (frame {moved.frame[0]}x{moved.frame[1]})")


@pose.command("draw", epilog=SOURCE_HELP)
@click.argument("source")
@click.option("--name", help="Row of an annotation file, path-style or flattened DeepFashion name.")
@click.option("--person", type=click.IntRange(min=0), default=0, show_default=True,
              help="Person of an OpenPose file (OpenPose's order).")
@click.option("--frame", metavar="HxW",
              help="Frame of the keypoints (default for OpenPose files: the size of --image).")
@click.option("--image", type=click.Path(dir_okay=False), help="Photo to draw the skeleton over.")
@click.option("--size", metavar="HxW", help="Picture size (default: the photo's, else the pose frame).")
@output_options
def draw(source: str, name: str | None, person: int, frame: str | None, image: str | None, size: str | None,
         output: str, overwrite: bool) -> None:
    """Draw SOURCE as a PNG: the coloured OpenPose skeleton, optionally over a photo.

    The pose frame is stretched onto the picture, as CFLD stretches its 256x176 annotations onto its
    256x256 pose images; the skeleton is drawn with the model's colours and line widths.

    \b
    Examples:
      cfld pose draw fasion-resize-annotation-test.csv --name fashionWOMENTees_Tanksid0000508545_1front.jpg -o pose.png
      cfld pose draw photo_keypoints.json --image photo.jpg -o overlay.png
    """
    background = P.read_image(image) if image else None
    frame_size = parse_size_option(frame, "--frame")
    if frame_size is None and background is not None and P.pose_format(source) == "openpose":
        frame_size = background.shape[:2]  # OpenPose coordinates are pixels of the photo it ran on
    pose = P.load_pose(source, name=name, person=person, frame=frame_size)
    note = pose.outside_note()
    if note:
        click.echo(f"note: {note}", err=True)
    picture_size = parse_size_option(size, "--size", P.MAX_PICTURE_SIDE)
    if picture_size is None and background is None and max(pose.frame) > P.MAX_PICTURE_SIDE:
        raise InputError(source, f"has a {pose.frame[0]}x{pose.frame[1]} frame, too large to draw at its own size; "
                                 "pass --size HxW (or --image)")
    picture = P.draw_pose(pose, picture_size, background)
    path = P.write_png(picture, output, overwrite=overwrite)
    click.echo(f"wrote {path} ({picture.shape[0]}x{picture.shape[1]})")


@pose.command("render", epilog=SOURCE_HELP)
@source_options
@click.option("--size", metavar="HxW", default="256x256", show_default=True,
              help="Size of the pose image (the paper uses 256x256).")
@click.option("--sigma", type=FiniteFloat(0, P.MAX_SIGMA, min_open=True), default=P.SIGMA, show_default=True,
              help="Standard deviation of the joint heatmaps, in output pixels.")
@output_options
def render(pose: P.Pose, size: str, sigma: float, output: str, overwrite: bool) -> None:
    """Render SOURCE as CFLD's 21-channel pose image (.safetensors or .npy).

    \b
    Channels: 0-2 the RGB skeleton / 255, 3-20 one Gaussian heatmap per COCO-18 joint, float32,
    exactly as the original CFLD data pipeline builds them. In .safetensors the tensor is called
    "pose_image" and the metadata records the frame, size, sigma and joint order.

    \b
    Examples:
      cfld pose render front.json -o front.safetensors
      cfld pose render annotations.csv --name fashionWOMENTees_Tanksid0000508545_1front.jpg --size 512x512 -o pose.npy
    """
    suffix = Path(output).suffix.lower()
    if suffix not in (".safetensors", ".npy"):
        raise InputError(output, "must end in .safetensors or .npy")
    size_hw = parse_size_option(size, "--size", P.MAX_POSE_IMAGE_SIDE)
    tensor = P.pose_image(pose, size_hw, sigma)
    if suffix == ".npy":
        import numpy as np

        def write_npy(tmp: Path) -> None:
            with open(tmp, "wb") as file:
                np.save(file, tensor.numpy())

        atomic_write(output, write_npy, overwrite=overwrite)
    else:
        from safetensors.torch import save_file

        metadata = {
            "format": "cfld.pose_image/v1",
            "source": pose.name or "",
            "frame": f"{pose.frame[0]}x{pose.frame[1]}",
            "size": f"{size_hw[0]}x{size_hw[1]}",
            "sigma": repr(sigma),
            "channels": json.dumps(["skeleton_r", "skeleton_g", "skeleton_b", *P.JOINT_NAMES]),
        }
        atomic_write(output, lambda tmp: save_file({"pose_image": tensor}, str(tmp), metadata), overwrite=overwrite)
    click.echo(f"wrote {output} (21x{size_hw[0]}x{size_hw[1]} float32)")


SUMMARY_NAME = "detect-summary.json"
SEVERAL_PEOPLE = "shows more than one person; the pose written is the most prominent one's"


@pose.command("detect")
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
@click.option("--no-progress", is_flag=True, help="No progress bar (shown for several photos).")
def detect(photos: tuple[str, ...], min_confidence: float, drawing: str | None, output: str, overwrite: bool,
           no_progress: bool) -> None:
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
    its sub-folders; photos and folders may be mixed): the detector is loaded once for all of them; -o
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
    from ..io import path_kind

    if len(photos) == 1 and path_kind(photos[0]) != "folder":
        _detect_one(photos[0], min_confidence, drawing, output, overwrite)
    else:
        _detect_many(photos, min_confidence, drawing, output, overwrite, progress=not no_progress)


def _detect_one(photo: str, min_confidence: float, drawing: str | None, output: str, overwrite: bool) -> None:
    """``cfld pose detect PHOTO -o pose.json``: any fault is an error."""
    import numpy as np

    from ..images import load_image
    from ..io import path_kind
    from ..pose.detect import PoseDetector

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
                 overwrite: bool, progress: bool) -> None:
    """``cfld pose detect PHOTO|FOLDER... -o DIR``: one detector for all photos; faulty photos are listed."""
    import sys
    import time

    import numpy as np
    from tqdm import tqdm

    from ..images import load_image
    from ..io import atomic_write_text, check_output_folder
    from ..pose.detect import PoseDetector

    photos = photo_arguments(arguments, "both poses would be written to {stem}.json",
                             {Path(SUMMARY_NAME).stem: f"{SUMMARY_NAME}, the run's summary"})
    json_of, png_of, summary_path = _plan_outputs(photos, output, drawing, overwrite)
    for folder in (output, drawing):
        if folder is not None:
            check_output_folder(folder)  # a folder that cannot be written is refused before the detection
    found = {key: [] for key in ("detected", *DETECTION_LEFT_OUT)}
    reasons: dict[str, str] = {}
    start = time.perf_counter()
    with PoseDetector(min_confidence, segmentation=True) as detector:
        bar = tqdm(photos, desc="detecting poses", unit="photo", file=sys.stderr, leave=False,
                   disable=not progress or len(photos) < 2)
        for photo in bar:
            try:
                picture = load_image(photo)
            except InputError as error:
                status, pose, reason = "unreadable", None, error.problem
            else:
                status, pose, reason = _find_pose(detector, picture, str(photo), min_confidence)
            if pose is not None:
                P.write_pose_json(pose, json_of[photo], overwrite=overwrite)
                if drawing is not None:
                    P.write_png(P.draw_pose(pose, None, np.asarray(picture)), png_of[photo], overwrite=overwrite)
                found["detected"].append(photo.name)
            if status != "detected":
                found[status].append(photo.name)
                reasons[photo.name] = reason
        bar.close()
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


def _count_photos(count: int) -> str:
    return f"{count} photo{'s' if count != 1 else ''}"


def _plan_outputs(photos: list[Path], output: str, drawing: str | None, overwrite: bool
                  ) -> tuple[dict[Path, Path], dict[Path, Path], Path]:
    """DIR/<stem>.json, DIR2/<stem>.png per photo and DIR/detect-summary.json, all checked before any work."""
    from ..io import path_kind

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
    import os

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
    import numpy as np

    if found.mask is not None:
        ys, xs = np.nonzero(found.mask > 0.5)
        if len(xs):
            return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
    height, width = found.frame
    xs = np.clip(found.landmarks[:, 0] * width, 0, width)
    ys = np.clip(found.landmarks[:, 1] * height, 0, height)
    return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())

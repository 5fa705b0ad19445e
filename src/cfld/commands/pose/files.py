"""``cfld pose`` file tools: read, convert, flip, retarget, draw and render OpenPose-18 pose files."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import click
import numpy as np

from ... import pose as P
from ...errors import InputError
from ...io import atomic_write
from ..options import FiniteFloat, parse_size_option

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


FRAME_HELP = "Frame of the keypoints: the photo size for OpenPose files, the annotation frame for rows."


def source_arguments(frame_help: str = FRAME_HELP):
    """SOURCE and the options that say which pose of it to read: --name, --person, --frame (``frame_help``)."""

    def decorate(command):
        command = click.option("--frame", metavar="HxW", help=frame_help)(command)
        command = click.option("--person", type=click.IntRange(min=0), default=0, show_default=True,
                               help="Person of an OpenPose file (OpenPose's order).")(command)
        command = click.option("--name", help="Row of an annotation file, path-style or flattened DeepFashion "
                                              "name.")(command)
        return click.argument("source")(command)

    return decorate


def read_source(source: str, name: str | None, person: int, frame: tuple[int, int] | None) -> P.Pose:
    """The pose of SOURCE that :func:`source_arguments` name; a note on stderr names joints outside its frame."""
    pose = P.load_pose(source, name=name, person=person, frame=frame)
    note = pose.outside_note()
    if note:
        click.echo(f"note: {note}", err=True)
    return pose


def source_options(command):
    """:func:`source_arguments`, read into the :class:`~cfld.pose.Pose` that ``command`` gets first."""

    @source_arguments()
    @functools.wraps(command)
    def wrapper(source: str, name: str | None, person: int, frame: str | None, **kwargs):
        return command(read_source(source, name, person, parse_size_option(frame, "--frame")), **kwargs)

    return wrapper


def output_options(command):
    command = click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")(command)
    return click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
                        help="File to write (written atomically; never replaced without --overwrite).")(command)


@click.command("convert", epilog=SOURCE_HELP)
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


@click.command("flip", epilog=SOURCE_HELP)
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


@click.command("retarget", epilog=SOURCE_HELP)
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


@click.command("draw", epilog=SOURCE_HELP)
@source_arguments("Frame of the keypoints (default for OpenPose files: the size of --image).")
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
    pose = read_source(source, name, person, frame_size)
    picture_size = parse_size_option(size, "--size", P.MAX_PICTURE_SIDE)
    if picture_size is None and background is None and max(pose.frame) > P.MAX_PICTURE_SIDE:
        raise InputError(source, f"has a {pose.frame[0]}x{pose.frame[1]} frame, too large to draw at its own size; "
                                 "pass --size HxW (or --image)")
    picture = P.draw_pose(pose, picture_size, background)
    path = P.write_png(picture, output, overwrite=overwrite)
    click.echo(f"wrote {path} ({picture.shape[0]}x{picture.shape[1]})")


@click.command("render", epilog=SOURCE_HELP)
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


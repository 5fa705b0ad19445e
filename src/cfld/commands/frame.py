"""``cfld frame``: photos framed the way the model's training photos are; and the framing that every command
taking a person photo does first (:class:`PhotoFraming`: ``--no-frame``, ``--save-framed``)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click

from ..errors import InputError
from ..image_processor import PersonImageProcessor
from ..images import MAX_OUTPUT_SIDE, load_image, save_image
from ..io import atomic_write_text, check_output_folder, path_kind
from .options import check_targets, parse_size_option, photo_arguments, real_path

FRAMED_SUFFIX = "_framed"  # --save-framed: <stem>_framed.png and <stem>_framed.json beside the results
NO_FRAME_HINT = "pass --no-frame to use the photo as it is (stretched to the model's shape)"


# -- the framing every command does to its person photos --------------------------------------------------------


def describe(framed, plain: bool = False) -> str:
    """What framing did to a photo, for the line a command prints about it (``plain``: its background was
    replaced)."""
    if not framed.cropped:
        plain = plain and framed.mask is not None  # a pass-through photo with nobody found keeps its background
        return "already framed, used as it is" + ("; background made plain" if plain else "")
    return f"framed ({framed.crop_text()}, HxW)" + ("; background made plain" if plain else "")


def frame_of(framed) -> tuple[int, int]:
    """(H, W) of the picture the pipeline gets from a framed photo (a pose in it uses this frame)."""
    return framed.image.height, framed.image.width


class PhotoFraming:
    """The framing of one command's person photos, with one :class:`~cfld.framing.Framer` (one detector) for all
    of them; with ``enabled`` False (``--no-frame``) nothing is framed and the photos go in as they are.

        framing = PhotoFraming(not no_frame, out_size, out_dir if save_framed else None, overwrite)
        targets = framing.plan([source, *pose_photos])   # --save-framed's files: check them before any work
        with framing:
            framed = framing(source, picture)            # prints a line; framed.image goes to the pipeline
        ...                                              # the results
        framing.save()                                   # <stem>_framed.png / .json, with --save-framed

    ``save_dir``: where ``--save-framed`` writes ``<stem>_framed.png`` (the framed picture) and
    ``<stem>_framed.json`` (its :meth:`~cfld.framing.Framed.to_json` record, with the crop box), or None.
    """

    def __init__(self, enabled: bool, size: tuple[int, int], save_dir: str | os.PathLike | None = None,
                 overwrite: bool = False):
        self.enabled = enabled
        self.size = size
        self.save_dir = Path(save_dir) if save_dir is not None and enabled else None
        self.overwrite = overwrite
        self.processor = PersonImageProcessor(hint=NO_FRAME_HINT)
        self._targets: dict[str, tuple[Path, Path]] = {}  # photo's real path -> (png, json)
        self._framed: dict[str, tuple[str, object]] = {}  # photo's real path -> (name, Framed)

    def plan(self, photos) -> list[Path]:
        """The files ``--save-framed`` will write for ``photos`` (the same file once); two photos with one name
        stem are refused."""
        if self.save_dir is None:
            return []
        by_stem: dict[str, tuple[str, str]] = {}
        for photo in photos:
            key, stem = real_path(photo), Path(photo).stem
            other = by_stem.get(stem.casefold())
            if other is not None and other[0] != key:
                raise InputError(photo, f"has the same name stem as {other[1]}: both framed pictures would be written "
                                        f"to {stem}{FRAMED_SUFFIX}.png; rename one of them")
            by_stem[stem.casefold()] = (key, str(photo))
            base = self.save_dir / f"{stem}{FRAMED_SUFFIX}"
            self._targets[key] = (base.with_name(base.name + ".png"), base.with_name(base.name + ".json"))
        return [path for pair in self._targets.values() for path in pair]

    def __enter__(self) -> PhotoFraming:
        self.processor.__enter__()  # one detector for all the photos
        return self

    def __exit__(self, *exc) -> None:
        self.processor.__exit__(*exc)

    @property
    def framer(self):
        """The :class:`~cfld.framing.Framer` this framing uses (inside the ``with`` block)."""
        return self.processor.framer(self.size)

    def __call__(self, photo: str | os.PathLike, picture):
        """``picture`` (the photo, read) framed as the pipeline frames photos (:class:`~cfld.image_processor.
        PersonImageProcessor`); a line says what was done. Needs ``enabled``."""
        if not self.enabled:
            raise RuntimeError("PhotoFraming frames only when enabled")
        framed = self.processor.frame(picture, self.size, source=str(photo))
        click.echo(f"{photo}: {describe(framed)}")
        self._framed[real_path(photo)] = (str(photo), framed)
        return framed

    def save(self) -> list[Path]:
        """Write ``<stem>_framed.png`` and ``<stem>_framed.json`` of every photo framed (with ``save_dir``)."""
        written = []
        if self.save_dir is None:
            return written
        for key, (_, framed) in self._framed.items():
            if key not in self._targets:
                continue
            png, record = self._targets[key]
            written.append(save_image(framed.image_at_size(), png, overwrite=self.overwrite))
            written.append(atomic_write_text(record, json.dumps(framed.to_json(), indent=2) + "\n",
                                             overwrite=self.overwrite))
            click.echo(f"wrote {png} and {record}")
        return written


# -- cfld frame ---------------------------------------------------------------------------------------------------


@click.command("frame")
@click.argument("photos", nargs=-1, required=True, metavar="PHOTO|FOLDER...")
@click.option("-o", "--output", required=True, metavar="DIR",
              help="Folder for DIR/<stem>.png (the framed picture) and DIR/<stem>.json (its record) per photo.")
@click.option("--size", default="256x176", show_default=True, metavar="HxW",
              help="The model's size: 256x176 (or 512x352) for DeepFashion models, 128x64 for Market-1501 ones.")
@click.option("--plain-background", is_flag=True,
              help="Lay everything away from the person on the training photos' plain light colour.")
@click.option("--overwrite", is_flag=True, help="Replace outputs that exist.")
@click.option("--no-progress", is_flag=True, help="No progress bar (shown for several photos).")
def frame(photos: tuple[str, ...], output: str, size: str, plain_background: bool, overwrite: bool,
          no_progress: bool) -> None:
    """Frame each photo the way the model's training photos are framed, as `cfld transfer`, `animate` and
    `edit` do to their photos before the model sees them.

    \b
    Usage:
      cfld frame PHOTO... -o DIR
      cfld frame FOLDER -o DIR

    The person is found with MediaPipe (the optional extra: pip install 'cfld[detect]'; nothing is
    downloaded) and a crop of the model's shape is cut around them as DeepFashion's photos are cut: the
    head at the top, the feet a little above the bottom (or the body cut by the bottom edge where the
    photo cuts it), the body centred; where the crop reaches beyond the photo it is padded with the
    photo's background colour. A photo already framed like that (a dataset photo) is written as it is.

    Every photo gets DIR/<stem>.png, the framed picture at --size, and DIR/<stem>.json, its record: the
    crop box in the photo's own pixels ("crop": top, left, height, width; it may reach beyond the
    photo), "size", "photo_size", "framed" (false: the photo was used as it is), the padding colour
    ("background") and the person's pose in the framed picture ("pose", our pose JSON; for a photo
    used as it is, in the photo's own frame, as its "frame" says), so that a result made from the
    framed picture can be put back into the original photo.

    A FOLDER's photos are its .png .jpg .jpeg .bmp .tif .tiff .webp files (not its sub-folders); photos
    and folders may be mixed. One detector serves all photos. A photo that cannot be framed (no person,
    several people, a person too small, a crop that would be mostly padding, an unreadable file) is
    reported in one line and the others are still written; the command fails only when none could be
    framed. Two photos with the same name stem are refused before anything is done, and existing
    outputs are never replaced without --overwrite (all are checked before any detection).

    \b
    Examples:
      cfld frame holiday.jpg -o framed/
      cfld frame photos/ -o framed/ --plain-background
      cfld frame a.jpg b.png more_photos/ -o framed/ --size 512x352 --overwrite
    """
    from tqdm import tqdm

    out_size = parse_size_option(size, "--size", MAX_OUTPUT_SIDE)
    listed = photo_arguments(photos, "both would be framed into {stem}.png")
    targets = _plan_outputs(listed, Path(output), overwrite)
    check_output_folder(output)  # a folder that cannot be written is refused before the detection
    written, failed = {}, {}
    start = time.perf_counter()
    read = {listed[0]: load_image(listed[0])} if len(listed) == 1 else {}  # one photo: a bad one before MediaPipe
    with PersonImageProcessor(replace_background=plain_background, hint=None) as processor:
        bar = tqdm(listed, desc="framing photos", unit="photo", file=sys.stderr, leave=False,
                   disable=no_progress or len(listed) < 2)
        for photo in bar:
            try:
                framed = processor.frame(read.pop(photo, None) or load_image(photo), out_size, source=str(photo))
            except InputError as error:
                if len(listed) == 1:
                    raise
                failed[photo] = error.problem
                continue
            png, record = targets[photo]
            save_image(framed.image_at_size(), png, overwrite=overwrite)
            atomic_write_text(record, json.dumps(framed.to_json(), indent=2) + "\n", overwrite=overwrite)
            written[photo] = framed
        bar.close()
    seconds = time.perf_counter() - start
    if not written:
        for photo, reason in failed.items():
            click.echo(f"  {photo}: {reason}")
        source = photos[0] if len(photos) == 1 else "frame"
        raise InputError(source, f"none of the {len(listed)} photos could be framed (each is listed above); nothing "
                                 "was written")
    for photo, framed in written.items():
        click.echo(f"{photo}: {describe(framed, plain_background)} -> {targets[photo][0]}, {targets[photo][1].name}")
    if failed:
        click.echo(f"left out {_count(len(failed))}:")
        for photo, reason in failed.items():
            click.echo(f"  {photo}: {reason}")
    click.echo(f"framed {len(written)} of {_count(len(listed))} into {output} in {seconds:.1f} s")


def _count(count: int) -> str:
    return f"{count} photo{'s' if count != 1 else ''}"


def _plan_outputs(photos: list[Path], output: Path, overwrite: bool) -> dict[Path, tuple[Path, Path]]:
    """DIR/<stem>.png and DIR/<stem>.json per photo, all checked before any work."""
    kind = path_kind(output)
    if kind not in (None, "folder"):
        raise InputError(output, f"is a {kind}; -o names a folder (DIR/<stem>.png and DIR/<stem>.json per photo)")
    if kind is None and output.suffix.lower() in (".png", ".json", ".jpg", ".jpeg"):
        raise InputError(output, "looks like a file name, but -o names a folder (DIR/<stem>.png and DIR/<stem>.json "
                                 "per photo); give a folder name")
    targets = {photo: (output / f"{photo.stem}.png", output / f"{photo.stem}.json") for photo in photos}
    check_targets([path for pair in targets.values() for path in pair], photos, overwrite)
    return targets

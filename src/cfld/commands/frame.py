"""``cfld frame``: photos framed the way the model's training photos are; and the framing that every command
taking a person photo does first (:class:`PhotoFraming`: ``--no-frame``, ``--save-framed``)."""

from __future__ import annotations

import json
import os
import sys
import time
from functools import partial
from pathlib import Path

import click

from ..errors import InputError
from ..framing import RECORD_FORMAT
from ..framing.files import FrameTask, describe, frame_into, make_framer, sha1
from ..image_processor import PersonImageProcessor
from ..images import MAX_OUTPUT_SIDE, MIN_SIDE, save_image
from ..io import atomic_write_text, check_output_folder, path_kind, writing
from ..left_out import REASONS
from ..workers import Crashed, WorkerPool, default_workers
from .options import check_targets, parse_size_option, photo_arguments, real_path, workers_option

FRAMED_SUFFIX = "_framed"  # --save-framed: <stem>_framed.png and <stem>_framed.json beside the results
NO_FRAME_HINT = "pass --no-frame to use the photo as it is (stretched to the model's shape)"


# -- the framing every command does to its person photos --------------------------------------------------------


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
              help="The model's size: 256x176 (or 512x352) for DeepFashion models, 128x64 for Market-1501 ones; "
                   f"each side from {MIN_SIDE} to {MAX_OUTPUT_SIDE} pixels.")
@click.option("--plain-background", is_flag=True,
              help="Lay everything away from the person on the training photos' plain light colour.")
@click.option("--overwrite", is_flag=True,
              help="Replace outputs that exist and differ from what this run writes (another photo's, other "
                   "settings); remove those of a photo left out.")
@workers_option
@click.option("--no-progress", is_flag=True, help="No progress bar (shown for several photos).")
def frame(photos: tuple[str, ...], output: str, size: str, plain_background: bool, overwrite: bool,
          workers: int | None, no_progress: bool) -> None:
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

    Every photo framed gets DIR/<stem>.png, the framed picture at --size, and DIR/<stem>.json, its
    record: the crop box in the photo's own pixels ("crop": top, left, height, width; it may reach
    beyond the photo), "size", "photo_size", "framed" (false: the photo was used as it is), the padding
    colour ("background") and the person's pose in the framed picture ("pose", our pose JSON; for a
    photo used as it is, in the photo's own frame, as its "frame" says), so that a result made from
    the framed picture can be put back into the original photo; and what the run was ("photo",
    "photo_sha1", "plain_background", "picture_sha1").

    A FOLDER's photos are its .png .jpg .jpeg .bmp .tif .tiff .webp files (not its sub-folders); photos
    and folders may be mixed. The photos are framed in --workers processes (default: every usable core),
    one detector each; the files are the same whatever their number. A photo that cannot be framed (nobody in
    it, several people, a person too small, a crop that would be mostly padding, an unreadable file)
    gets no file at all: it is listed as left out with its reason and the others are still written. The
    command exits 0 when at least one photo was framed, and fails (exit 2) when none was: one PHOTO
    that cannot be framed is that photo's own error.

    The run can be stopped and run again: the outputs an earlier run wrote for the same photo with the
    same --size and --plain-background are kept as they are (that photo is not framed again), so a run
    stopped by a full disk goes on where it stopped. Outputs that exist and differ (another photo's, other
    settings, changed since) are replaced only with --overwrite (those of a photo left out are then
    removed); they are all checked before any detection, as are two photos with the same name stem
    (refused). --size takes each side from 16 to 4096 pixels.

    \b
    Examples:
      cfld frame holiday.jpg -o framed/
      cfld frame photos/ -o framed/ --plain-background
      cfld frame a.jpg b.png more_photos/ -o framed/ --size 512x352 --overwrite
    """
    out_size = parse_size_option(size, "--size", MAX_OUTPUT_SIDE)
    listed = photo_arguments(photos, "both would be framed into {stem}.png")
    run = FrameRun(listed, Path(output), out_size, plain_background)
    run.plan(overwrite)  # every output checked before any detection
    check_output_folder(output)  # a folder that cannot be written is refused before the detection
    start = time.perf_counter()
    run.frame_all(progress=not no_progress, workers=workers or default_workers())
    run.report(photos, time.perf_counter() - start)


class FrameRun:
    """One ``cfld frame`` run: its photos, their outputs (DIR/<stem>.png and DIR/<stem>.json), what an earlier run
    left there, and what this one frames, writes and leaves out."""

    def __init__(self, photos: list[Path], output: Path, size: tuple[int, int], plain_background: bool):
        self.photos, self.output, self.size, self.plain_background = photos, output, size, plain_background
        self.targets = {photo: (output / f"{photo.stem}.png", output / f"{photo.stem}.json") for photo in photos}
        self.kept: list[Path] = []  # framed by an earlier run with these settings: kept as they are
        self.replace: set[Path] = set()  # photos whose existing outputs this run may replace
        self.written: dict[Path, str] = {}  # photo -> what framing did to it
        self.left_out: dict[Path, tuple[str, str]] = {}  # photo -> (reason, sentence)
        self._digests: dict[Path, str] = {}  # photo -> SHA-1 of its bytes, read once per run

    def plan(self, overwrite: bool) -> None:
        """Check every output before any work: refuse -o as a file and outputs that are photos or folders; sort the
        existing outputs into kept (an earlier run's, for this photo and these settings), unfinished (its record
        without its picture: framed again) and differing (replaced only with ``overwrite``)."""
        kind = path_kind(self.output)
        if kind not in (None, "folder"):
            raise InputError(self.output, f"is a {kind}; -o names a folder (DIR/<stem>.png and DIR/<stem>.json per "
                                          "photo)")
        if kind is None and self.output.suffix.lower() in (".png", ".json", ".jpg", ".jpeg"):
            raise InputError(self.output, "looks like a file name, but -o names a folder (DIR/<stem>.png and "
                                          "DIR/<stem>.json per photo); give a folder name")
        check_targets([path for pair in self.targets.values() for path in pair], self.photos, overwrite=True)
        differing = []
        for photo, (png, record) in self.targets.items():
            state = self._state(photo, png, record)
            if state == "kept":
                self.kept.append(photo)
            elif state != "new":
                self.replace.add(photo)
                if state == "differs":
                    differing += [path for path in (png, record) if path_kind(path) is not None]
        if differing and not overwrite:
            more = f" (and {len(differing) - 1} more of the outputs)" if len(differing) > 1 else ""
            raise InputError(differing[0], f"already exists and is not what this run writes (another photo's, other "
                                           f"settings, or changed since){more}; pass --overwrite to replace "
                                           f"{'them' if more else 'it'}")

    def _state(self, photo: Path, png: Path, record: Path) -> str:
        """"new" (nothing there), "kept", "unfinished" or "differs" (see :meth:`plan`)."""
        if path_kind(png) is None and path_kind(record) is None:
            return "new"
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
            ours = (isinstance(data, dict) and data.get("format") == RECORD_FORMAT
                    and data.get("size") == list(self.size) and data.get("plain_background") is self.plain_background
                    and data.get("photo_sha1") == self._photo_sha1(photo))
        except (OSError, ValueError):
            return "differs"
        if not ours:
            return "differs"
        if path_kind(png) is None:
            return "unfinished"
        try:
            return "kept" if sha1(png.read_bytes()) == data.get("picture_sha1") else "differs"
        except OSError:
            return "differs"

    def _photo_sha1(self, photo: Path) -> str:
        """The SHA-1 of ``photo``'s bytes, hashed once per run (by :meth:`plan` for an earlier record, else when its
        record is written)."""
        if photo not in self._digests:
            self._digests[photo] = sha1(photo.read_bytes())
        return self._digests[photo]

    def frame_all(self, progress: bool, workers: int = 1) -> None:
        """Frame every photo not kept in ``workers`` processes (one detector each), each photo's outputs written by
        its worker as soon as it is framed."""
        from tqdm import tqdm

        todo = [photo for photo in self.photos if photo not in self.kept]
        tasks = [FrameTask(photo, *self.targets[photo], self._digests.get(photo), photo in self.replace)
                 for photo in todo]
        pool = WorkerPool(partial(frame_into, self.plain_background), partial(make_framer, self.size,
                                                                              self.plain_background), workers)
        with writing(kept=self._kept_text), tqdm(total=len(todo), desc="framing photos", unit="photo",
                                                 file=sys.stderr, leave=False,
                                                 disable=not progress or len(todo) < 2) as bar:
            for index, result in pool.map(tasks):
                if isinstance(result, Crashed):
                    result = ("left_out", "unreadable", result.sentence)
                kind, what, sentence = result
                if kind == "written":
                    self.written[todo[index]] = what  # counted at once: a full disk says how many are kept
                elif len(self.photos) == 1:
                    raise InputError(todo[index], sentence)
                else:
                    self.left_out[todo[index]] = (what, sentence)
                bar.update()
        order = {photo: i for i, photo in enumerate(todo)}  # the workers finish in any order; lines go in the photos'
        self.written = dict(sorted(self.written.items(), key=lambda item: order[item[0]]))
        self.left_out = dict(sorted(self.left_out.items(), key=lambda item: order[item[0]]))

    def _kept_text(self) -> str:
        """What a refused write leaves, and how to go on."""
        done = len(self.kept) + len(self.written)
        if not done:
            return "nothing was written: free space and run the same command again"
        each = "its .png and .json" if done == 1 else "each its .png and .json"
        return (f"the {_count(done)} framed before {'is' if done == 1 else 'are'} kept in {self.output} ({each}): free "
                "space and run the same command again to go on where it stopped")

    def report(self, arguments: tuple[str, ...], seconds: float) -> None:
        """A line per photo framed or kept, the photos left out with their reasons, and the count; the command fails
        when no photo was framed."""
        if not self.written and not self.kept:
            self._list_left_out()
            source = arguments[0] if len(arguments) == 1 else "frame"
            raise InputError(source, f"none of the {len(self.photos)} photos could be framed (each is listed above); "
                                     "nothing was written")
        for photo in self.kept:
            png, record = self.targets[photo]
            click.echo(f"{photo}: kept as an earlier run framed it (same photo, same settings) -> {png}, {record.name}")
        for photo, what in self.written.items():
            png, record = self.targets[photo]
            click.echo(f"{photo}: {what} -> {png}, {record.name}")
        self._list_left_out()
        kept = f" ({len(self.kept)} of them kept from an earlier run)" if self.kept else ""
        click.echo(f"framed {len(self.written) + len(self.kept)} of {_count(len(self.photos))} into {self.output} in "
                   f"{seconds:.1f} s{kept}")

    def _list_left_out(self) -> None:
        if not self.left_out:
            return
        reasons = [reason for reason, _ in self.left_out.values()]
        counts = ", ".join(f"{reasons.count(key)} {words}" for key, words in REASONS.items() if key in reasons)
        click.echo(f"left out {_count(len(self.left_out))} ({counts}):")
        for photo, (_, sentence) in self.left_out.items():
            click.echo(f"  {photo}: {sentence}")


def _count(count: int) -> str:
    return f"{count} photo{'s' if count != 1 else ''}"



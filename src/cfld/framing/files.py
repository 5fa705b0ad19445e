"""One photo framed into its two files, ``DIR/<stem>.png`` (the framed picture) and ``DIR/<stem>.json`` (its
record): what ``cfld frame`` does for each photo, in its worker processes (:class:`cfld.workers.WorkerPool`)."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, MissingDependencyError
from ..images import load_image
from ..io import atomic_write, atomic_write_text, writing
from ..pose.detect import NO_PERSON
from .framed import FramingError
from .framer import Framer

#: Framing without MediaPipe installed: the sentence (a command adds how to go on without framing).
NEEDS_MEDIAPIPE = "framing a photo finds its person with MediaPipe: pip install 'cfld[detect]' (mediapipe==0.10.14)"


@dataclass(frozen=True)
class FrameTask:
    """One photo to frame: its outputs, the SHA-1 of its bytes when already read (else None), and whether its
    earlier outputs may be replaced (``--overwrite``, or the record of an unfinished run)."""

    photo: Path
    png: Path
    record: Path
    digest: str | None
    replace: bool


def describe(framed, plain: bool = False) -> str:
    """What framing did to a photo, for the line a command prints about it (``plain``: its background was
    replaced)."""
    if not framed.cropped:
        plain = plain and framed.mask is not None  # a pass-through photo with nobody found keeps its background
        return "already framed, used as it is" + ("; background made plain" if plain else "")
    return f"framed ({framed.crop_text()}, HxW)" + ("; background made plain" if plain else "")


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def make_framer(size: tuple[int, int], plain_background: bool) -> Framer:
    """A worker's framer, with its own detector."""
    try:
        return Framer(size, plain_background)
    except MissingDependencyError:
        raise MissingDependencyError(NEEDS_MEDIAPIPE) from None


def frame_into(plain_background: bool, framer: Framer, task: FrameTask, attempt: int = 0) -> tuple[str, str, str]:
    """Frame ``task.photo`` and write its two files: ``("written", what was done, "")``, or ``("left_out", reason,
    sentence)`` for a photo that cannot be framed (its earlier outputs removed where they may be). A second
    ``attempt`` (its worker died) may replace what the first left."""
    replace = task.replace or attempt > 0
    try:
        picture = load_image(task.photo)
        framed = framer(picture, source=str(task.photo))
        if framed.pose is None:  # shaped like the training photos, so framing passed it through
            raise FramingError(task.photo, NO_PERSON, "no_person")
    except InputError as error:
        return "left_out", getattr(error, "reason", "unreadable"), error.problem + _drop_earlier(task, replace)
    _write(task, framed, plain_background, replace)
    return "written", describe(framed, plain_background), ""


def _drop_earlier(task: FrameTask, replace: bool) -> str:
    """A photo left out whose earlier outputs this run may replace loses them, so that DIR holds nothing for it;
    what the photo's sentence adds to say so."""
    if not replace:
        return ""
    removed = []
    for path in (task.png, task.record):
        try:
            path.unlink()
            removed.append(path.name)
        except OSError:  # not there (or not ours to remove after all): left as it is
            continue
    if not removed:
        return ""
    return f"; its earlier {' and '.join(removed)} {'were' if len(removed) > 1 else 'was'} removed"


def _write(task: FrameTask, framed, plain_background: bool, replace: bool) -> None:
    """The record first, then the picture: a run stopped between them leaves a record without its picture, which
    the next run frames again; a picture that cannot be written takes its record with it."""
    buffer = io.BytesIO()
    framed.image_at_size().save(buffer, format="PNG")
    picture = buffer.getvalue()
    digest = task.digest or sha1(task.photo.read_bytes())
    data = {**framed.to_json(), "photo": task.photo.name, "photo_sha1": digest, "plain_background": plain_background,
            "picture_sha1": sha1(picture)}
    with writing("the framing record"):
        atomic_write_text(task.record, json.dumps(data, indent=2) + "\n", overwrite=replace)
    try:
        with writing("the framed picture"):
            atomic_write(task.png, lambda tmp: tmp.write_bytes(picture), overwrite=replace)
    except BaseException:
        task.record.unlink(missing_ok=True)
        raise

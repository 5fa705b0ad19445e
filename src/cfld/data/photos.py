"""Your own photos as a dataset: ``cfld prepare photos`` turns a catalogue into a prepared folder.

A **catalogue** is a folder with one subfolder per person (``FOLDER/<person>/...``, any depth, any number of
photos each, any size and format the image reader takes), or a CSV of ``photo,person`` rows (``--people``),
the photos named relative to the folder. What comes out is the layout ``cfld prepare deepfashion`` writes, so
``cfld train``, ``cfld sample`` and ``cfld evaluate`` take it unchanged:

* ``train_HxW/``, ``test_HxW/``: every usable photo **framed** the way the model's training photos are
  (:mod:`cfld.framing`: the person found, a crop of the model's aspect placed as DeepFashion's photos place
  their person), as a PNG at ``size`` (256x176 by default), under its flattened name ``<person>_<photo>.png``;
* ``annotation-{train,test}.csv``: the poses detected in those pictures, in the benchmark's format
  (``name:[y...]:[x...]``, whole pixels of the picture, -1 for a joint not found);
* ``pairs-{train,test}.csv``: the ordered pairs of two different photos of one person, at most
  ``max_pairs_per_person`` of them per person (drawn with the seed), so that one person with 40 photos does
  not dominate; ``{train,test}.lst``;
* ``people.csv`` (``name,person,split,source``): every prepared photo, its person, its split, and its path
  relative to the catalogue, so that the split can be checked and every name traced back;
* ``prepare-report.json``: every photo left out and why (no person, several people, a person too small, a crop
  mostly padding, too few joints, unreadable, a duplicate, the only usable photo of its person), the seconds
  spent, and the counts;
* ``cfld-dataset.json``, the manifest, written last (dataset ``photos``).

The split is **by person, never by photo**: people are ranked by a hash of (seed, person) and the first
``round(test_fraction x people)`` go to test, so adding people later leaves the others where they were.

It is **resumable**: each photo's framing is kept in ``framing/<name>.png`` and ``framing/<name>.json`` (the crop
box in the photo's own pixels, the pose, the SHA-1 of the photo's bytes) as soon as it is made, so an interrupted run
goes on where it stopped and a finished one re-runs in seconds. The dataset's files are built from those
records; a file that exists and differs from what this run would write (other options, changed photos) is
replaced only with ``overwrite``. Every file is written atomically. Framing and detection run in this process
with one detector (MediaPipe, the ``detect`` extra).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import permutations
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..images import PHOTO_SUFFIXES
from ..io import atomic_path, atomic_write_text, path_kind, read_text, remove_stale_temporaries, writing
from ..left_out import REASONS
from ..pose.skeleton import DEEPFASHION_SIZE, NUM_JOINTS, Pose, Size, parse_size
from .prepare import (
    MANIFEST,
    MANIFEST_FORMAT,
    ORIGINAL,
    check_output_dir,
    earlier_manifest,
    first_names,
    pairs_csv_text,
    refuse_differing,
    text_state,
)

DATASET = "photos"
SPLITS = ("train", "test")
FRAMING_DIR = "framing"
PEOPLE_CSV = "people.csv"
REPORT = "prepare-report.json"
RECORD_FORMAT = "cfld.prepare-photo/v1"
REPORT_FORMAT = "cfld.prepare-report/v1"
DEFAULT_SIZE = DEEPFASHION_SIZE
DEFAULT_TEST_FRACTION = 0.1
DEFAULT_MAX_PAIRS = 50
DEFAULT_MIN_JOINTS = 8  # of 18; the DeepFashion test rows the paper pairs have 13.5 on average


def pairs_file(split: str) -> str:
    return f"pairs-{split}.csv"


def annotations_file(split: str) -> str:
    return f"annotation-{split}.csv"


def image_dir(split: str, size: Size) -> str:
    return f"{split}_{size[0]}x{size[1]}"


# -- the catalogue ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Photo:
    """One photo of the catalogue: the file, its path relative to the catalogue, its person, its prepared name."""

    path: Path
    source: str
    person: str
    name: str


@dataclass
class Catalogue:
    """Every photo of a catalogue, people in order, and what was set aside while reading it."""

    root: Path
    photos: list[Photo]
    duplicates: dict[str, str] = field(default_factory=dict)  # source -> the photo of the same person it copies
    digests: dict[str, str] = field(default_factory=dict)  # source -> SHA-1 of the file (what a record is of)
    notes: list[str] = field(default_factory=list)

    def by_person(self) -> dict[str, list[Photo]]:
        people: dict[str, list[Photo]] = {}
        for photo in self.photos:
            if photo.source not in self.duplicates:
                people.setdefault(photo.person, []).append(photo)
        return people


def safe_part(text: str) -> str:
    """``text`` in the letters a file name can hold anywhere: ASCII letters and digits, other runs become ``-``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9]+", "-", ascii_text).strip("-") or "x"


def prepared_name(person: str, within: str) -> str:
    """``<person>_<photo>.png``: the one underscore separates the person from the photo's path (without its
    suffix, folders joined by ``-``), so names never hold the ``_2_`` of ``cfld sample``'s result names."""
    return f"{safe_part(person)}_{safe_part(str(Path(within).with_suffix('')))}.png"


def photos_key(name: str, source: str = "name") -> str:
    """A prepared photo's name as the pair and annotation files give it (a folder in front is dropped)."""
    base = name.strip().replace("\\", "/").rsplit("/", 1)[-1]
    if not base.lower().endswith(PHOTO_SUFFIXES):
        raise InputError(source, f"{name!r} is not a prepared photo's name like alice_front.png")
    return base


def _is_photo(path: Path) -> bool:
    return path.suffix.lower() in PHOTO_SUFFIXES and not path.name.startswith(".")


def _inside(root: Path, path: Path) -> Path:
    """``path`` resolved; a link that leads outside ``root`` is refused."""
    real = path.resolve()
    if real != root and root not in real.parents:
        raise InputError(path, f"is a symbolic link to {real}, outside {root}; copy the photo into the folder "
                               "(a catalogue holds its own photos)")
    return real


def read_folder_catalogue(folder: str | os.PathLike) -> Catalogue:
    """The catalogue of ``folder``: one subfolder per person, photos at any depth below it."""
    root = Path(folder)
    kind = path_kind(root)
    if kind != "folder":
        raise InputError(root, "no such folder" if kind is None else f"is a {kind}, not a folder of people")
    root = root.resolve()
    try:
        entries = sorted((p for p in root.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)
    except OSError as error:
        raise InputError(root, f"cannot be read ({error.strerror or type(error).__name__})") from None
    loose = [p.name for p in entries if p.is_file() and _is_photo(p)]
    if loose:
        raise InputError(root, f"holds {len(loose)} photo(s) directly ({first_names(loose)}); put each person's photos "
                               "in a subfolder of their own (FOLDER/<person>/photo.jpg), or name each photo's person "
                               "in a CSV given with --people")
    photos: list[Photo] = []
    ignored: list[str] = []
    empty: list[str] = []
    linked: list[str] = []
    for entry in entries:
        if not entry.is_dir():
            continue
        _inside(root, entry)
        found = 0
        for dirpath, dirnames, filenames in os.walk(entry):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for dirname in dirnames:
                if (Path(dirpath) / dirname).is_symlink():
                    _inside(root, Path(dirpath) / dirname)  # refused when it leads out of the catalogue
                    linked.append((Path(dirpath) / dirname).relative_to(root).as_posix())  # else not followed
            for filename in sorted(filenames):
                path = Path(dirpath) / filename
                if filename.startswith("."):
                    continue
                if not _is_photo(path):
                    ignored.append(path.relative_to(root).as_posix())
                    continue
                _inside(root, path)
                within = path.relative_to(entry).as_posix()
                photos.append(Photo(path, path.relative_to(root).as_posix(), entry.name, prepared_name(entry.name, within)))
                found += 1
        if not found:
            empty.append(entry.name)
    catalogue = Catalogue(root, photos)
    if ignored:
        catalogue.notes.append(f"{len(ignored)} file(s) that are not photos ({' '.join(PHOTO_SUFFIXES)}) were "
                               f"ignored: {first_names(ignored)}")
    if empty:
        catalogue.notes.append(f"{len(empty)} person folder(s) without photos: {first_names(empty)}")
    if linked:
        catalogue.notes.append(f"{len(linked)} linked folder(s) inside person folders were not followed (move the "
                               f"photos into the person's folder to include them): {first_names(linked)}")
    return _checked(catalogue)


def read_people_csv(path: str | os.PathLike, folder: str | os.PathLike | None = None) -> Catalogue:
    """The catalogue a CSV names: a header with ``photo`` and ``person`` columns, then one photo per row, its path
    relative to ``folder`` (default: the CSV's own folder)."""
    path = Path(path)
    if path_kind(path) != "file":
        raise InputError(path, "no such file (the --people CSV of photo,person)")
    root = Path(folder) if folder is not None else path.parent
    if path_kind(root) != "folder":
        raise InputError(root, "no such folder (the photos' folder, -i)")
    root = root.resolve()
    rows = list(csv.reader(io.StringIO(read_text(path, "people CSV"))))
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if "photo" not in header or "person" not in header:
        raise InputError(f"{path} line 1", "must be a header naming the columns photo and person (photo,person)")
    i_photo, i_person = header.index("photo"), header.index("person")
    photos, missing = [], []
    seen: dict[str, int] = {}
    for lineno, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path} line {lineno}"
        if len(row) <= max(i_photo, i_person) or not row[i_photo].strip() or not row[i_person].strip():
            raise InputError(where, "needs a photo and a person")
        given, person = row[i_photo].strip(), row[i_person].strip()
        file = root / given
        if not file.is_file():
            missing.append(given)
            continue
        real = _inside(root, file)
        source = real.relative_to(root).as_posix()
        if source in seen:
            raise InputError(where, f"names {given} again (first on line {seen[source]}); a photo belongs to one person")
        seen[source] = lineno
        if not _is_photo(file):
            raise InputError(where, f"{given} is not a photo ({' '.join(PHOTO_SUFFIXES)})")
        photos.append(Photo(real, source, person, prepared_name(person, source)))
    if missing:
        raise InputError(path, f"names {len(missing)} photo(s) that are not in {root}: {first_names(missing)}")
    return _checked(Catalogue(root, photos))


def _checked(catalogue: Catalogue) -> Catalogue:
    """Refuse an empty catalogue, two photos that would get one name, and one photo under two people; set aside a
    photo that copies another of the same person."""
    if not catalogue.photos:
        raise InputError(catalogue.root, "holds no photos; give a folder with one subfolder per person "
                                         "(FOLDER/<person>/photo.jpg), or a CSV of photo,person with --people")
    names: dict[str, Photo] = {}
    for photo in catalogue.photos:
        if photo.name in names:
            other = names[photo.name]
            raise InputError(catalogue.root, f"{other.source} and {photo.source} would both be prepared as "
                                             f"{photo.name}; rename one of them")
        names[photo.name] = photo
    digests: dict[str, Photo] = {}
    for photo in catalogue.photos:
        try:
            digest = hashlib.sha1(photo.path.read_bytes()).hexdigest()
        except OSError:
            continue  # reported as unreadable when it is read
        catalogue.digests[photo.source] = digest
        first = digests.setdefault(digest, photo)
        if first is photo:
            continue
        if first.person != photo.person:
            raise InputError(catalogue.root, f"{first.source} ({first.person}) and {photo.source} ({photo.person}) "
                                             "are the same photo under two people; a photo belongs to one person, "
                                             "or the split would show it in both train and test")
        catalogue.duplicates[photo.source] = first.source
    return catalogue


# -- the split and the pairs ----------------------------------------------------------------------------------------


def _hash(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "big")


def split_people(people: Sequence[str], test_fraction: float, seed: int) -> dict[str, str]:
    """Person -> ``"train"`` or ``"test"``: people ranked by a hash of (seed, person), the first
    ``round(test_fraction x people)`` in test, at least one on each side when the fraction is strictly between 0
    and 1."""
    ranked = sorted(people, key=lambda person: (_hash(seed, "split", person), person))
    count = round(test_fraction * len(ranked))
    if 0 < test_fraction < 1:
        if len(ranked) < 2:
            raise InputError("--test-fraction", f"{test_fraction:g} needs at least two people with two usable photos "
                                                f"each, one for each split, but there {'is' if ranked else 'are'} "
                                                f"{len(ranked)}; pass --test-fraction 0 to prepare a training set only")
        count = min(max(count, 1), len(ranked) - 1)
    return {person: "test" if i < count else "train" for i, person in enumerate(ranked)}


def person_pairs(names: Sequence[str], cap: int, seed: int, person: str) -> list[tuple[str, str]]:
    """The ordered pairs of two different photos of one person; more than ``cap`` are thinned to ``cap``, drawn
    with (seed, person), kept in order."""
    pairs = list(permutations(sorted(names), 2))
    if len(pairs) <= cap:
        return pairs
    rng = np.random.default_rng(_hash(seed, "pairs", person))
    keep = np.sort(rng.choice(len(pairs), size=cap, replace=False))
    return [pairs[i] for i in keep]


# -- framing, photo by photo ------------------------------------------------------------------------------------------


@dataclass
class Record:
    """What framing one photo gave (kept in ``framing/<name>.json``): the pose in the picture, or why not."""

    outcome: str  # "framed" or one of cfld.left_out.REASONS
    message: str
    pose: Pose | None
    data: dict


def _read_record(path: Path, photo: Photo, digest: str | None, settings: dict, size: Size) -> Record | str | None:
    """The record of an earlier run: a Record when it is of this photo as it is now (its bytes' SHA-1: copying or
    touching the catalogue frames nothing again), with these settings; "differs" when it is of another photo,
    another version of it, or other settings; None when there is none."""
    from ..pose.formats import pose_from_json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return "differs"
    try:
        if (data.get("format") != RECORD_FORMAT or data.get("source") != photo.source
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


def _frame_one(framer, photo: Photo, timings: dict[str, float]) -> tuple[str, str, object]:
    """(outcome, message, Framed or None) of one photo."""
    from ..framing import FramingError
    from ..images import load_image

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
        from ..pose.detect import NO_PERSON

        return "no_person", NO_PERSON, None
    return "framed", "", framed


def _record_json(photo: Photo, digest: str | None, settings: dict, outcome: str, message: str, framed,
                 pose: Pose | None) -> dict:
    from ..pose.formats import pose_to_json

    data = {"format": RECORD_FORMAT, "source": photo.source, "person": photo.person, "sha1": digest,
            "settings": settings, "outcome": outcome, "message": message}
    if framed is not None:
        data["framing"] = {key: value for key, value in framed.to_json().items() if key not in ("format", "pose")}
        data["pose"] = pose_to_json(pose)
    return data


# -- the whole preparation ---------------------------------------------------------------------------------------------


@dataclass
class PhotosReport:
    """What ``prepare_photos`` did: photos in and out, people and pairs per split, seconds."""

    photos: int = 0
    prepared: dict[str, int] = field(default_factory=dict)  # split -> photos
    people: dict[str, int] = field(default_factory=dict)
    pairs: dict[str, int] = field(default_factory=dict)
    pairs_possible: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, list[dict]] = field(default_factory=lambda: {key: [] for key in REASONS})
    framed_now: int = 0
    framed_before: int = 0
    files_written: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: {"reading": 0.0, "framing": 0.0, "writing": 0.0})
    notes: list[str] = field(default_factory=list)

    def to_dict(self, settings: dict) -> dict:
        framed = max(1, self.framed_now)
        return {
            "format": REPORT_FORMAT, "settings": settings, "photos": self.photos,
            "prepared": self.prepared, "people": self.people, "pairs": self.pairs,
            "pairs_before_cap": self.pairs_possible,
            "left_out": {key: len(value) for key, value in self.left_out.items()},
            "left_out_photos": self.left_out,
            "framed_in_this_run": self.framed_now, "framed_in_earlier_runs": self.framed_before,
            "seconds_in_this_run": {key: round(value, 3) for key, value in self.seconds.items()},
            "seconds_per_photo": {key: round(value / framed, 4) for key, value in self.seconds.items()},
            "notes": self.notes,
        }

    def lines(self, out: Path) -> list[str]:
        splits = [s for s in SPLITS if s in self.prepared]
        lines = [f"photos -> {out}: {sum(self.prepared.values()):,} of {self.photos:,} photos prepared"]
        for split in splits:
            capped = self.pairs_possible[split] - self.pairs[split]
            lines.append(f"{split}: {self.people[split]:,} people, {self.prepared[split]:,} photos, "
                         f"{self.pairs[split]:,} pairs" + (f" ({capped:,} more left out by the cap per person)"
                                                            if capped else ""))
        for key in REASONS:
            if entries := self.left_out[key]:
                lines.append(f"  left out, {REASONS[key]}: {len(entries):,} ({first_names([e['photo'] for e in entries])})")
        lines.extend(f"  {note}" for note in self.notes)
        if self.framed_now:
            per = {key: value / self.framed_now for key, value in self.seconds.items()}
            lines.append(f"framed {self.framed_now:,} photo(s) now ({self.framed_before:,} in earlier runs): "
                         f"{per['reading']:.3f} s reading, {per['framing']:.3f} s framing and detection, "
                         f"{per['writing']:.3f} s writing per photo")
        else:
            lines.append(f"all {self.framed_before:,} photo(s) were framed by earlier runs")
        lines.append(f"{self.files_written} dataset file(s) written; details in {REPORT}")
        return lines


def prepare_photos(
    folder: str | os.PathLike | None,
    out: str | os.PathLike,
    *,
    people: str | os.PathLike | None = None,
    size: Size = DEFAULT_SIZE,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = 0,
    max_pairs_per_person: int = DEFAULT_MAX_PAIRS,
    min_joints: int = DEFAULT_MIN_JOINTS,
    plain_background: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    framer_factory: Callable[[Size, bool], object] | None = None,
) -> tuple[dict, PhotosReport]:
    """Prepare a catalogue of your own photos (see the module docstring); returns the manifest and the report.

    Args:
        folder: the catalogue, one subfolder per person; with ``people``, the folder its paths are relative to
            (default: the CSV's folder).
        out: the prepared folder (created; never inside the catalogue).
        people: a CSV ``photo,person`` instead of person folders.
        size: (H, W) of the prepared pictures: 256x176 (DeepFashion's) or 512x352, or 128x64 (Market's shape).
        test_fraction: the share of people in the test split (0: train only, 1: test only).
        seed: draws the split and the pairs kept per person.
        max_pairs_per_person: cap on one person's ordered pairs.
        min_joints: a photo whose pose shows fewer joints (of 18) is left out.
        plain_background: lay everything outside the person on the training photos' plain colour.
        overwrite: replace files of an earlier preparation that differ from what this one writes.
        framer_factory: ``(size, plain_background) -> Framer`` (default: :class:`cfld.framing.Framer`).
    """
    size = parse_size(size, "--size")
    if not 0 <= test_fraction <= 1:
        raise InputError("--test-fraction", f"must lie between 0 and 1, got {test_fraction:g}")
    if max_pairs_per_person < 1:
        raise InputError("--max-pairs-per-person", f"must be at least 1, got {max_pairs_per_person}")
    if not 0 <= min_joints <= NUM_JOINTS:
        raise InputError("--min-joints", f"must lie between 0 and {NUM_JOINTS}, got {min_joints}")
    if people is not None:
        catalogue = read_people_csv(people, folder)
        sources = [catalogue.root, Path(people).resolve().parent]
    else:
        if folder is None:
            raise InputError("cfld prepare photos", "needs -i FOLDER (one subfolder per person) or --people FILE")
        catalogue = read_folder_catalogue(folder)
        sources = [catalogue.root]
    out = check_output_dir(Path(out), sources)
    settings = {"size": list(size), "plain_background": bool(plain_background)}
    options = {"test_fraction": test_fraction, "seed": seed, "max_pairs_per_person": max_pairs_per_person,
               "min_joints": min_joints}
    _check_earlier(out, size, overwrite)

    report = PhotosReport(photos=len(catalogue.photos), notes=list(catalogue.notes))
    by_person = catalogue.by_person()
    for source, original in catalogue.duplicates.items():
        report.left_out["duplicate"].append({"photo": source, "reason": f"the same file as {original}"})
    for person, photos in by_person.items():
        if len(photos) < 2:
            report.left_out["alone"].append({"photo": photos[0].source, "reason": f"the only photo of {person}"})
    candidates = [photo for photos in by_person.values() if len(photos) >= 2 for photo in photos]

    # 1. frame what earlier runs did not (records kept as they are made: an interrupted run goes on from here)
    framing_dir = out / FRAMING_DIR
    records: dict[str, Record] = {}
    todo, differing = [], []
    if framing_dir.is_dir():
        remove_stale_temporaries(framing_dir)
    for photo in candidates:
        record = _read_record(framing_dir / f"{Path(photo.name).stem}.json", photo, catalogue.digests.get(photo.source),
                              settings, size)
        if isinstance(record, Record):
            records[photo.name] = record
        else:
            todo.append(photo)
            if record == "differs":
                differing.append(photo.name)
    if differing and not overwrite:
        raise InputError(out, f"holds the framing of {len(differing):,} photo(s) made from other versions of them or "
                              f"with other options ({first_names(differing)}); pass --overwrite to frame them again")
    report.framed_before = len(records)
    if todo:
        _frame_all(todo, catalogue.digests, framing_dir, settings, size, plain_background, records, report, progress,
                   framer_factory)

    # 2. usable photos, the split, the pairs
    usable: dict[str, list[Photo]] = {}
    for photo in candidates:
        record = records[photo.name]
        if record.outcome != "framed":
            report.left_out[record.outcome].append({"photo": photo.source, "reason": record.message})
        elif record.pose.num_visible < min_joints:
            report.left_out["too_few_joints"].append({
                "photo": photo.source,
                "reason": f"only {record.pose.num_visible} of {NUM_JOINTS} joints were found (--min-joints {min_joints})"})
        else:
            usable.setdefault(photo.person, []).append(photo)
    for person in [p for p, photos in usable.items() if len(photos) < 2]:
        for photo in usable.pop(person):
            report.left_out["alone"].append({"photo": photo.source,
                                             "reason": f"the only usable photo of {person}; no pair is possible"})
    if not usable:
        where = f" (every photo left out is listed in {out / REPORT})" if _write_report(out, report, settings | options) else ""
        raise InputError(catalogue.root, f"has no person with two usable photos, so no pair can be made{where}")
    split_of = split_people(sorted(usable), test_fraction, seed)
    splits = [split for split in SPLITS if split in split_of.values()]
    files, images = _dataset_files(out, usable, split_of, splits, records, size, seed, max_pairs_per_person, report)

    # 3. the dataset's files: pictures (links to the framing), texts, the manifest last
    manifest = {"format": MANIFEST_FORMAT, "dataset": DATASET, "frame": list(size),
                "sources": {"images": str(catalogue.root)} | ({"people": str(Path(people).resolve())} if people else {}),
                "options": settings | options, "splits": {}}
    for split in splits:
        folder_entry = {"dir": image_dir(split, size), "suffix": ".png"}
        manifest["splits"][split] = {
            "pairs": pairs_file(split), "annotations": annotations_file(split), "list": f"{split}.lst",
            "images": {ORIGINAL: folder_entry, f"{size[0]}x{size[1]}": folder_entry},
            "report": {"people": report.people[split], "images": report.prepared[split], "pairs": report.pairs[split]},
        }
    kept = (f"the framing of every photo is kept in {framing_dir}: free space and run the same command again to "
            "finish (no photo is framed again)")
    with writing(kept=kept):  # a full disk: say what is kept and how to go on
        _write_dataset(out, files, images, [out / image_dir(split, size) for split in SPLITS], overwrite, report)
        with writing("the report"):
            _write_report(out, report, settings | options, must=True)
        text = json.dumps(manifest, indent=2) + "\n"
        if text_state(out / MANIFEST, text) != "same":
            with writing("the manifest"):
                atomic_write_text(out / MANIFEST, text, overwrite=True)
    return manifest, report


def _check_earlier(out: Path, size: Size, overwrite: bool) -> None:
    """Refuse a folder holding another dataset, or photos prepared at another size unless ``overwrite``."""
    earlier = earlier_manifest(out, DATASET)
    if not earlier or earlier.get("frame") == list(size):
        return
    if not overwrite:
        raise InputError(out, f"holds photos prepared at {'x'.join(map(str, earlier.get('frame', [])))}; prepare "
                              f"{size[0]}x{size[1]} in another folder, or pass --overwrite to replace them")
    for entry in (earlier.get("splits") or {}).values():  # --overwrite: the pictures of the other size go
        for images in (entry.get("images") or {}).values():
            folder = out / str(images.get("dir", ""))
            if folder.parent == out and folder.is_dir() and folder.name.startswith(SPLITS):
                shutil.rmtree(folder, ignore_errors=True)


def _frame_all(todo: list[Photo], digests: dict[str, str], framing_dir: Path, settings: dict, size: Size,
               plain_background: bool,
               records: dict[str, Record], report: PhotosReport, progress: bool, framer_factory) -> None:
    """Frame and detect every photo of ``todo`` with one framer, keeping each record as soon as it is made."""
    from tqdm.auto import tqdm

    from ..images import save_image

    if framer_factory is None:
        from ..framing import Framer

        def framer_factory(size, plain):
            return Framer(size, replace_background=plain)

    def kept() -> str:  # what a full disk leaves: each photo's framing is kept as it is made
        done = report.framed_before + report.framed_now
        return (f"the framing of the {done:,} photo(s) framed before is kept in {framing_dir}: free space and run the "
                "same command again to go on where it stopped") if done else "free space and run the same command again"

    with writing(kept=kept):
        framing_dir.mkdir(parents=True, exist_ok=True)
    framer = framer_factory(size, plain_background)
    try:
        for photo in tqdm(todo, desc="framing photos", unit="photo", disable=not progress):
            outcome, message, framed = _frame_one(framer, photo, report.seconds)
            start = time.perf_counter()
            stem = Path(photo.name).stem
            pose = None if framed is None else framed.pose_at_size()
            data = _record_json(photo, digests.get(photo.source), settings, outcome, message, framed, pose)
            if framed is not None:
                with writing("the framed photo", kept=kept):
                    save_image(framed.image_at_size(), framing_dir / f"{stem}.png", overwrite=True)
            with writing("the framing record", kept=kept):
                atomic_write_text(framing_dir / f"{stem}.json", json.dumps(data, indent=1) + "\n", overwrite=True)
            report.seconds["writing"] += time.perf_counter() - start
            records[photo.name] = Record(outcome, message, pose, data)
            report.framed_now += 1
    finally:
        close = getattr(framer, "close", None)
        if close is not None:
            close()


def _annotation_row(name: str, pose: Pose) -> str:
    """``name:[y...]:[x...]`` in whole pixels, as the benchmark's files; a joint outside the picture is -1 (a
    detector run on the picture would not report it)."""
    height, width = pose.frame
    ys, xs = [], []
    for (x, y), seen in zip(pose.xy, pose.visible):
        inside = seen and -0.5 <= x <= width - 0.5 and -0.5 <= y <= height - 0.5
        ys.append(str(min(max(round(y), 0), height - 1)) if inside else "-1")
        xs.append(str(min(max(round(x), 0), width - 1)) if inside else "-1")
    return f"{name}:[{','.join(ys)}]:[{','.join(xs)}]"


def _dataset_files(out: Path, usable: dict[str, list[Photo]], split_of: dict[str, str], splits: list[str],
                   records: dict[str, Record], size: Size, seed: int, cap: int,
                   report: PhotosReport) -> tuple[dict[Path, str], dict[Path, Path]]:
    """The text files (path -> text) and the pictures (dataset path -> framing picture) of the dataset."""
    files: dict[Path, str] = {}
    images: dict[Path, Path] = {}
    people_rows = ["name,person,split,source"]
    for split in splits:
        names, rows, pairs = [], ["name:keypoints_y:keypoints_x"], []
        people = [person for person in sorted(usable) if split_of[person] == split]
        possible = 0
        for person in people:
            photos = sorted(usable[person], key=lambda p: p.name)
            person_names = [photo.name for photo in photos]
            possible += len(person_names) * (len(person_names) - 1)
            pairs.extend(person_pairs(person_names, cap, seed, person))
            for photo in photos:
                names.append(photo.name)
                rows.append(_annotation_row(photo.name, records[photo.name].pose))
                images[out / image_dir(split, size) / photo.name] = out / FRAMING_DIR / photo.name
                people_rows.append(_csv_row(photo.name, person, split, photo.source))
        files[out / pairs_file(split)] = pairs_csv_text(pairs)
        files[out / annotations_file(split)] = "\n".join(rows) + "\n"
        files[out / f"{split}.lst"] = "".join(f"{name}\n" for name in names)
        report.people[split], report.prepared[split] = len(people), len(names)
        report.pairs[split], report.pairs_possible[split] = len(pairs), possible
    files[out / PEOPLE_CSV] = "\n".join(people_rows) + "\n"
    return files, images


def _csv_row(*cells: str) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(cells)
    return buffer.getvalue()


def _same_file(a: Path, b: Path) -> bool:
    try:
        sa, sb = a.stat(), b.stat()
    except OSError:
        return False
    if (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino):
        return True
    return sa.st_size == sb.st_size and a.read_bytes() == b.read_bytes()


def _write_dataset(out: Path, files: dict[Path, str], images: dict[Path, Path], folders: list[Path],
                   overwrite: bool, report: PhotosReport) -> None:
    """Check every file against what is there (a differing one is replaced only with ``overwrite``), then write
    the pictures (hard links to the framing, copies where links are refused) and the texts."""
    text_states = {path: text_state(path, text) for path, text in files.items()}
    pictures_done = {path for path, source in images.items() if path.exists() and _same_file(path, source)}
    differing = [path for path, state in text_states.items() if state == "differs"]
    differing += [path for path in images if path.exists() and path not in pictures_done]
    stale = [file for folder in folders if folder.is_dir() for file in sorted(folder.iterdir())
             if file.suffix == ".png" and file not in images]
    refuse_differing(out, [*differing, *stale], overwrite)
    for file in stale:
        file.unlink(missing_ok=True)
    for folder in folders:
        if folder.is_dir():
            remove_stale_temporaries(folder)
    for path, source in images.items():
        if path not in pictures_done:
            with atomic_path(path, overwrite=True, what="the prepared picture") as tmp:
                _link_or_copy(source, tmp)
            report.files_written += 1
    for path, text in files.items():
        if text_states[path] != "same":
            with writing("the list"):
                atomic_write_text(path, text, overwrite=True)
            report.files_written += 1


def _link_or_copy(source: Path, tmp: Path) -> None:
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)


def _write_report(out: Path, report: PhotosReport, settings: dict, must: bool = False) -> bool:
    """Write ``prepare-report.json``; where nothing could be prepared (not ``must``), a failure to write it is
    only reported by returning False, as the sentence saying why comes first."""
    try:
        atomic_write_text(out / REPORT, json.dumps(report.to_dict(settings), indent=1) + "\n", overwrite=True)
        return True
    except (OSError, InputError):
        if must:
            raise
        return False


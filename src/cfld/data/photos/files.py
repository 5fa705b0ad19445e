"""The files of a prepared photos folder, made from the usable photos and their framing records: the split by
person, the pairs of each person, and per split the pair, annotation and list files and the pictures; ``people.csv``
traces every prepared photo back to its file. They are checked against what is there and written atomically."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
from collections.abc import Sequence
from itertools import permutations
from pathlib import Path

import numpy as np

from ...errors import InputError
from ...io import atomic_path, atomic_write_text, remove_stale_temporaries, writing
from ...pose.skeleton import Pose, Size
from ..prepare import pairs_csv_text, refuse_differing, text_state
from .catalogue import Photo
from .framing_records import FRAMING_DIR, Record
from .names import nfc
from .report import PhotosReport

PEOPLE_CSV = "people.csv"


def pairs_file(split: str) -> str:
    return f"pairs-{split}.csv"


def annotations_file(split: str) -> str:
    return f"annotation-{split}.csv"


def image_dir(split: str, size: Size) -> str:
    return f"{split}_{size[0]}x{size[1]}"


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


def dataset_files(out: Path, usable: dict[str, list[Photo]], split_of: dict[str, str], splits: list[str],
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


def write_dataset(out: Path, files: dict[Path, str], images: dict[Path, Path], folders: list[Path],
                  overwrite: bool, report: PhotosReport) -> None:
    """Check every file against what is there (a differing one is replaced only with ``overwrite``), then write
    the pictures (hard links to the framing, copies where links are refused) and the texts."""
    text_states = {path: text_state(path, text) for path, text in files.items()}
    pictures_done = {path for path, source in images.items() if path.exists() and _same_file(path, source)}
    differing = [path for path, state in text_states.items() if state == "differs"]
    differing += [path for path in images if path.exists() and path not in pictures_done]
    prepared = {nfc(str(path)) for path in images}  # a file system that decomposes names (HFS+) lists them so
    stale = [file for folder in folders if folder.is_dir() for file in sorted(folder.iterdir())
             if file.suffix == ".png" and nfc(str(file)) not in prepared]
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

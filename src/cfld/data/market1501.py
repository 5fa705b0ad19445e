"""Market-1501: the pose-transfer train and test sets used since PATN, in its 128x64 frame.

The release (``Market-1501-v15.09.15/``) holds 128x64 person crops named ``<person>_c<cam>s<seq>_<frame>_<box>.jpg``
in ``bounding_box_train/`` (12,936) and ``bounding_box_test/`` (19,732, with distractors named ``-1_...``
and junk ``0000_...``). The pose-transfer community publishes ``market-annotation-{train,test}.csv``
(OpenPose-18 rows in the 128x64 frame) and the 12,000 test pairs ``market-pairs-test.csv``.

The training pairs are built as PATN's ``create_pairs_dataset.py`` builds them (and as its
``market-pairs-train.csv`` lists them): keep the training rows whose keypoints include both shoulders
and both hips and whose person is not a distractor, then take every ordered pair of two different
photos of the same person: 263,632 pairs from the published keypoints (:func:`market_train_pairs`).
A ``market-pairs-train.csv`` beside the keypoints is used instead when present.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from itertools import permutations
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..pose.formats import PoseTable, read_annotation_csv
from ..pose.skeleton import JOINT_NAMES, MARKET1501_SIZE, Size
from .prepare import SplitReport, SplitSource, check_output_dir, prepare_splits
from .published import find_file, read_pairs_csv

SPLITS = ("train", "test")
#: Release folders of each split's crops; a name not found there is looked up in the other folders.
SPLIT_FOLDERS = {"train": "bounding_box_train", "test": "bounding_box_test"}
#: Joints a training photo must show to be paired (PATN: both shoulders and both hips).
PAIR_JOINTS = ("right_shoulder", "left_shoulder", "right_hip", "left_hip")
#: Person ids that are not people: distractors and junk boxes.
NOT_A_PERSON = ("-1", "0000")


def market_key(name: str, source: str = "name") -> str:
    """A Market-1501 image name (a folder in front is dropped): ``0002_c1s1_000451_03.jpg``."""
    base = name.strip().replace("\\", "/").rsplit("/", 1)[-1]
    if "_" not in base or not base.lower().endswith((".jpg", ".jpeg", ".png")):
        raise InputError(source, f"{name!r} is not a Market-1501 image name like 0002_c1s1_000451_03.jpg")
    return base


def person_id(name: str) -> str:
    """The person a Market-1501 photo shows: the part of its name before the first underscore."""
    return name.split("_", 1)[0]


def market_train_pairs(table: PoseTable) -> list[tuple[str, str]]:
    """PATN's training pairs: every ordered pair of two photos of one person, both with shoulders and hips.

    Persons come in the order of their first row, pairs in ``itertools.permutations`` order of the
    rows of that person, so the list equals the published ``market-pairs-train.csv`` row for row.
    """
    joints = [JOINT_NAMES.index(name) for name in PAIR_JOINTS]
    visible = ((table.ys[:, joints] != -1) & (table.xs[:, joints] != -1)).all(axis=1)
    by_person: dict[str, list[str]] = {}
    for name, ok in zip(table.names, np.asarray(visible)):
        if ok and person_id(name) not in NOT_A_PERSON:
            by_person.setdefault(person_id(name), []).append(name)
    return [pair for names in by_person.values() for pair in permutations(names, 2)]


def index_market_images(root: Path) -> dict[str, dict[str, Path]]:
    """Folder name -> (image name -> photo) for every image below ``root``."""
    folders: dict[str, dict[str, Path]] = {}
    for folder, _, names in os.walk(root):
        images = {name: Path(folder) / name for name in names if name.lower().endswith((".jpg", ".jpeg", ".png"))}
        if images:
            folders.setdefault(Path(folder).name, {}).update(images)
    return folders


def find_market_root(images: str | os.PathLike) -> Path:
    path = Path(images)
    if not path.is_dir():
        raise InputError(path, "no such folder" if not path.exists() else "is not a folder")
    for candidate in (path, *sorted(p for p in path.iterdir() if p.is_dir())):
        if any((candidate / folder).is_dir() for folder in SPLIT_FOLDERS.values()):
            return candidate
    raise InputError(path, "holds no bounding_box_train/ or bounding_box_test/; give the unzipped Market-1501 release")


def prepare_market1501(
    images: str | os.PathLike,
    annotations: str | os.PathLike,
    out: str | os.PathLike,
    splits: Sequence[str] = SPLITS,
    sizes: Sequence[Size | None] = (None,),
    overwrite: bool = False,
    workers: int = 8,
    progress: bool = True,
) -> tuple[dict, list[SplitReport], dict[str, int]]:
    """Build the Market-1501 train/test sets in ``out``: ``train/``, ``test/``, the CSVs and the manifest.

    Args:
        images: the unzipped release (``Market-1501-v15.09.15/``, or the folder holding it).
        annotations: the folder of ``market-annotation-{train,test}.csv`` and ``market-pairs-test.csv``.
        out, splits, sizes, overwrite, workers: as :func:`cfld.data.prepare_deepfashion`.
    """
    root = find_market_root(images)
    annotations = Path(annotations)
    if not annotations.is_dir():
        raise InputError(annotations, "no such folder" if not annotations.exists() else "is not a folder")
    out = check_output_dir(Path(out), [root, annotations])
    unknown = [split for split in splits if split not in SPLITS]
    if unknown or not splits:
        raise InputError(f"split {unknown[0] if unknown else ''!r}", "is not a Market-1501 split (train, test)")
    folders = index_market_images(root)
    sources = []
    for split in dict.fromkeys(splits):
        table_path = find_file(annotations, [f"market-annotation-{split}.csv"], f"keypoints of the {split} split")
        table = read_annotation_csv(table_path, MARKET1501_SIZE)
        for name in table.names:
            market_key(name, f"{table_path} row {name[:60]!r}")
        pairs_path = annotations / f"market-pairs-{split}.csv"
        notes = []
        if pairs_path.is_file():
            pairs = read_pairs_csv(pairs_path, market_key)
        elif split == "train":
            pairs = market_train_pairs(table)
            notes.append(f"training pairs built from the keypoints as PATN does ({len(pairs):,})")
        else:
            raise InputError(annotations, f"has no market-pairs-{split}.csv, the pairs of the {split} split")
        preferred = folders.get(SPLIT_FOLDERS[split], {})
        files: dict[str, Path] = {}
        for folder in sorted(folders):
            if folder != SPLIT_FOLDERS[split]:
                files.update(folders[folder])
        files.update(preferred)
        names = [market_key(name) for name in table.names]
        sources.append(SplitSource(
            split=split, names=names, pairs=pairs, table=table, key=market_key, files=files,
            image_dir=split, pairs_file=f"market-pairs-{split}.csv", annotations_file=f"market-annotation-{split}.csv",
            notes=notes,
        ))
    return prepare_splits(
        "market1501", MARKET1501_SIZE, out, sources, sizes,
        sources={"images": str(root.resolve()), "annotations": str(annotations.resolve())},
        overwrite=overwrite, workers=workers, progress=progress,
    )

"""Generated images paired with their ground truth by file name, as ``cfld evaluate`` pairs them.

Both sides are compared by :func:`image_key` (DeepFashion's flattened name without its extension); a generated
file's name may also hold its target after ``___`` or ``_2_`` (:func:`generated_candidates`). A
``generated,ground_truth`` CSV (:func:`read_name_map`) pairs the names these rules do not.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..images import PHOTO_SUFFIXES as IMAGE_SUFFIXES  # the same files as a folder of photos
from ..pose import flat_name


def list_images(folder: str | os.PathLike, what: str) -> list[Path]:
    """Every image file under ``folder`` (recursively, sorted), or an InputError."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(root, f"no such folder (the {what})" if not root.exists() else f"is not a folder (the {what})")
    # hidden files are skipped: half-written temporaries of an interrupted run (.x.png.new-...tmp.png), and
    # the ._x.png companions macOS leaves on shared drives; neither is an image of the set
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise InputError(root, f"holds no images ({', '.join(IMAGE_SUFFIXES)}); it should be the {what}")
    return files


def _strip_image_suffix(name: str) -> str:
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def image_key(name: str) -> str:
    """The name an image is matched by: DeepFashion's flattened name without the file extension.

    ``fashion/WOMEN/Blouses_Shirts/id_00003372/03_3_back.jpg`` (path-style, as in the pairs CSV) and
    ``fashionWOMENBlouses_Shirtsid0000337203_3back.jpg`` (flattened, as in the ``*_highres`` folders)
    both become ``fashionWOMENBlouses_Shirtsid0000337203_3back``; any other name loses its extension.
    """
    return _strip_image_suffix(flat_name(_strip_image_suffix(name.replace(os.sep, "/")) + ".jpg"))


GENERATED_SEPARATORS = ("___", "_2_")  # <source>___<target>_vis.png / <source>_2_<target>.png
GENERATED_SUFFIXES = ("_vis", "_generated", "_pred", "_fake")


def generated_candidates(name: str) -> list[str]:
    """The keys a generated file may stand for, most specific first.

    The file's own name; then, with a trailing ``_vis`` (or ``_generated``, ``_pred``, ``_fake``)
    removed, the part after each ``___`` and each ``_2_`` (the target of ``<source>___<target>`` and
    ``<source>_2_<target>`` names, whose parts may keep their ``.jpg``).
    """
    stem = _strip_image_suffix(name.replace(os.sep, "/"))
    out = [image_key(stem)]
    for suffix in GENERATED_SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            out.append(image_key(stem))
            break
    for sep in GENERATED_SEPARATORS:
        start = stem.find(sep)
        while start >= 0:
            out.append(image_key(stem[start + len(sep):]))
            start = stem.find(sep, start + 1)
    return list(dict.fromkeys(out))


def read_name_map(path: str | os.PathLike) -> dict[str, str]:
    """A CSV with the header ``generated,ground_truth``: file names relative to the two folders."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file (the --name-map CSV)")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(path, f"cannot be read as a CSV ({err})") from None
    if not rows or not {"generated", "ground_truth"} <= set(rows[0]):
        raise InputError(path, "needs the header line 'generated,ground_truth' and at least one row")
    mapping = {}
    for i, row in enumerate(rows, start=2):
        gen, gt = (row.get("generated") or "").strip(), (row.get("ground_truth") or "").strip()
        if not gen or not gt:
            raise InputError(path, f"line {i} lacks a generated or ground_truth name")
        mapping[gen] = gt
    return mapping


@dataclass(frozen=True)
class Pair:
    generated: Path
    ground_truth: Path


def match_pairs(generated_dir: str | os.PathLike, ground_truth_dir: str | os.PathLike,
                name_map: dict[str, str] | str | os.PathLike | None = None) -> list[Pair]:
    """Pair every generated image with its ground truth by name (see :func:`generated_candidates`), or by
    ``name_map`` (generated name -> ground-truth name, both relative to their folders).

    Every generated image must find its ground truth; ground-truth images without a generated
    counterpart are simply not used.
    """
    gen_root, gt_root = Path(generated_dir), Path(ground_truth_dir)
    generated = list_images(gen_root, "generated images")
    truths = list_images(gt_root, "ground-truth images")
    if name_map is not None and not isinstance(name_map, dict):
        name_map = read_name_map(name_map)
    by_key: dict[str, Path] = {}
    for file in truths:
        key = image_key(file.relative_to(gt_root).as_posix())
        if key in by_key:
            raise InputError(gt_root, f"holds two images with the same name: {by_key[key].name} and {file.name}")
        by_key[key] = file
    pairs, unmatched = [], []
    for file in generated:
        rel = file.relative_to(gen_root).as_posix()
        if name_map is not None:
            target = name_map.get(rel, name_map.get(file.name))
            candidates = [image_key(target)] if target is not None else []
        else:
            candidates = generated_candidates(rel)
        match = next((by_key[c] for c in candidates if c in by_key), None)
        if match is None:
            unmatched.append(rel)
        else:
            pairs.append(Pair(file, match))
    if unmatched:
        how = ("--name-map" if name_map is not None
               else "its name (see `cfld evaluate --help` for the naming rules, or pass --name-map)")
        raise InputError(gen_root, f"{len(unmatched)} of {len(generated)} generated images match no image of "
                         f"{gt_root} by {how}, e.g. {unmatched[0]}")
    return pairs

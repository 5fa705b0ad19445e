"""DeepFashion In-shop: the train and test sets of the paper, from the release and the published files.

What the paper uses (Sec. 4, "the dataset split is the same as in PATN"): 52,712 photos of the In-shop
Clothes Retrieval benchmark, 101,966 training and 8,570 test pairs, OpenPose-18 keypoints in a 256x176
frame. The published files (from the DPTN/PATN repositories) are

* ``train.lst`` / ``test.lst``: the images of each split, 48,674 / 4,038 flattened names;
* ``fasion-resize-pairs-{train,test}.csv`` (the release's spelling; ``fashion-`` is accepted too):
  header ``from,to``;
* ``fasion-resize-annotation-{train,test}.csv``: ``name:[y...]:[x...]`` rows, header
  ``name:keypoints_y:keypoints_x`` (in some copies followed by stray commas).

Names come in two styles: path-style ``fashion/WOMEN/Blouses_Shirts/id_00003372/03_3_back.jpg`` (the
``fashion/`` folder being the unzipped ``img_highres/``) and the flattened
``fashionWOMENBlouses_Shirtsid0000337203_3back.jpg`` (:func:`cfld.pose.flat_name`). Both are read;
everything prepared uses the flattened names.

The original's ``generate_fashion_datasets.py`` copies every photo of ``train.lst`` into
``train_highres/`` and of ``test.lst`` into ``test_highres/`` under its flattened name, unresized
(750x1101); its data loader then resizes each photo on the fly. :func:`prepare_deepfashion` builds the
same folders (plus the CSVs in flattened names and :data:`~cfld.data.prepare.MANIFEST`), and on request
resized copies for faster loading (e.g. the paper's evaluation sizes 256x176 and 512x352).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError
from ..pose.formats import flat_name, read_annotation_csv
from ..pose.skeleton import DEEPFASHION_SIZE, Size
from .prepare import SplitReport, SplitSource, check_output_dir, prepare_splits
from .published import find_file, read_name_list, read_pairs_csv

SPLITS = ("train", "test")
#: Folders an In-shop name may start with instead of ``fashion/`` (the unzipped archive's own name).
_ROOT_NAMES = ("fashion", "img_highres", "img")
_GENDERS = ("MEN", "WOMEN")


def deepfashion_key(name: str, source: str = "name") -> str:
    """The flattened name of a DeepFashion image given in either naming style.

    ``fashion/WOMEN/Blouses_Shirts/id_00003372/03_3_back.jpg`` (also with ``img_highres/`` or without a
    root folder) and ``fashionWOMENBlouses_Shirtsid0000337203_3back.jpg`` both give the latter.
    """
    parts = name.strip().replace("\\", "/").split("/")
    if len(parts) == 1:
        if not parts[0].startswith("fashion"):
            raise InputError(source, f"{name!r} is neither a flattened DeepFashion name (fashionWOMEN...jpg) "
                                     "nor a path like fashion/WOMEN/<category>/id_<n>/<file>.jpg")
        return parts[0]
    if len(parts) == 5 and parts[0] in _ROOT_NAMES:
        parts = parts[1:]
    if len(parts) != 4 or parts[0] not in _GENDERS or not parts[2].startswith("id_"):
        raise InputError(source, f"{name!r} is not a DeepFashion In-shop path like "
                                 "fashion/WOMEN/<category>/id_<n>/<file>.jpg")
    return flat_name("/".join(["fashion", *parts]))


def find_inshop_root(images: str | os.PathLike) -> Path:
    """The folder holding ``MEN/`` and ``WOMEN/``: ``images`` itself, or its ``img_highres/`` or ``fashion/``."""
    path = Path(images)
    if not path.is_dir():
        raise InputError(path, "no such folder" if not path.exists() else "is not a folder")
    for candidate in (path, *(path / name for name in _ROOT_NAMES), path / "Img" / "img_highres"):
        if any((candidate / gender).is_dir() for gender in _GENDERS):
            return candidate
    raise InputError(path, "holds no MEN/ or WOMEN/ folder; give the unzipped img_highres/ of the In-shop release")


def index_inshop_images(root: Path) -> dict[str, Path]:
    """Flattened name -> photo, for every image under ``root/{MEN,WOMEN}/<category>/id_<n>/``."""
    files: dict[str, Path] = {}
    for gender in _GENDERS:
        top = root / gender
        if not top.is_dir():
            continue
        for folder, _, names in os.walk(top):
            rel = Path(folder).relative_to(root).parts
            if len(rel) != 3:
                continue
            for name in names:
                if name.lower().endswith((".jpg", ".jpeg", ".png")):
                    files[flat_name("/".join(["fashion", *rel, name]))] = Path(folder) / name
    return files


def _annotation_file(directory: Path, kind: str, split: str) -> Path:
    names = [f"{spelling}-resize-{kind}-{split}.csv" for spelling in ("fasion", "fashion")]
    hint = "" if split == "test" else ("; download the train/test pairs and keypoints "
                                       "(see docs/checkpoints-datasets.md) or pass --split test")
    return find_file(directory, names, f"{kind} of the {split} split", hint)


def prepare_deepfashion(
    images: str | os.PathLike,
    annotations: str | os.PathLike,
    out: str | os.PathLike,
    splits: Sequence[str] = SPLITS,
    sizes: Sequence[Size | None] = (None,),
    overwrite: bool = False,
    workers: int = 8,
    progress: bool = True,
) -> tuple[dict, list[SplitReport], dict[str, int]]:
    """Build the paper's DeepFashion train/test sets in ``out`` (see the module docstring for the layout).

    Args:
        images: the unzipped In-shop ``img_highres/`` (or a folder holding it, or the original's ``fashion/``).
        annotations: the folder of ``train.lst``, ``test.lst`` and the pair and keypoint CSVs.
        out: the prepared folder (created; never inside a source).
        splits: which splits to build.
        sizes: ``None`` for the byte-for-byte copies (``{split}_highres/``), ``(H, W)`` for bicubic
            antialiased PNG copies in ``{split}_{H}x{W}/``.
        overwrite: replace files already in ``out`` that differ from what would be written.
        workers: threads copying or resizing images.

    Returns the manifest written to ``out``, a report per split (missing images etc.) and write counts.
    """
    root = find_inshop_root(images)
    annotations = Path(annotations)
    if not annotations.is_dir():
        raise InputError(annotations, "no such folder" if not annotations.exists() else "is not a folder")
    out = check_output_dir(Path(out), [root, annotations])
    unknown = [split for split in splits if split not in SPLITS]
    if unknown or not splits:
        raise InputError(f"split {unknown[0] if unknown else ''!r}", "is not a DeepFashion split (train, test)")
    files = index_inshop_images(root)
    sources = []
    for split in dict.fromkeys(splits):
        list_path = find_file(annotations, [f"{split}.lst"], f"image list of the {split} split")
        pairs_path = _annotation_file(annotations, "pairs", split)
        table_path = _annotation_file(annotations, "annotation", split)
        table = read_annotation_csv(table_path, DEEPFASHION_SIZE)
        for name in table.names:  # every row must be named like a DeepFashion image
            deepfashion_key(name, f"{table_path} row {name[:60]!r}")
        sources.append(SplitSource(
            split=split,
            names=read_name_list(list_path, deepfashion_key),
            pairs=read_pairs_csv(pairs_path, deepfashion_key),
            table=table,
            key=deepfashion_key,
            files=files,
            image_dir=f"{split}_highres",
            pairs_file=f"fasion-resize-pairs-{split}.csv",
            annotations_file=f"fasion-resize-annotation-{split}.csv",
            list_file=f"{split}.lst",
        ))
    return prepare_splits(
        "deepfashion", DEEPFASHION_SIZE, out, sources, sizes,
        sources={"images": str(root.resolve()), "annotations": str(annotations.resolve())},
        overwrite=overwrite, workers=workers, progress=progress,
    )

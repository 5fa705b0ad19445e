"""The pose-transfer pairs of a prepared folder as a torch Dataset, with the original's transforms.

The original CFLD data loader (``datasets/deepfashion.py``), for a pair (source photo, target photo):

* ``img_src``, ``img_tgt``: each photo resized straight to the training image size, 512x512 for the
  paper: the 750x1101 (or 176x256) person photo is **stretched** to the square, not padded; bicubic,
  antialiased (PIL), then mapped to [-1, 1].
* ``img_cond``: the source photo resized (stretched) to the condition size, 256x256, for the source
  image encoder; in training, and only there, **this image alone** is flipped horizontally with
  probability 0.5 (``RandomHorizontalFlip``). The poses and ``img_src``/``img_tgt`` are never flipped.
* ``pose_img_src``, ``pose_img_tgt``: the 21-channel pose images of both photos rendered at the pose
  size (256x256) from their keypoint rows (:func:`cfld.pose.pose_image`, which stretches the 256x176
  annotation frame the same way).
* for evaluation, ``img_gt``: the target photo at the evaluation size (256x176 or 512x352 on
  DeepFashion, 128x64 on Market-1501) in [0, 1].

Sizes come from a :class:`~cfld.models.config.CFLDConfig` (``image_size``, ``cond_size``,
``pose_size``) and can be overridden one by one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import InputError
from ..images import load_image, to_model_input
from ..models.config import CFLDConfig
from ..pose.formats import read_annotation_csv
from ..pose.render import pose_image
from ..pose.skeleton import Size, parse_size
from .prepare import MANIFEST, MANIFEST_FORMAT, ORIGINAL
from .published import read_pairs_csv

#: The keys of every item; ``img_gt`` is added when an evaluation size is set.
ITEM_KEYS = ("img_src", "img_tgt", "img_cond", "pose_img_src", "pose_img_tgt", "name_src", "name_tgt")


def read_manifest(root: str | os.PathLike) -> dict:
    """The manifest of a prepared folder, or an InputError saying how to make one."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise InputError(root, f"has no {MANIFEST}; prepare it first with `cfld prepare deepfashion`, "
                               "`cfld prepare market1501` or `cfld prepare photos` (an interrupted preparation "
                               "finishes when re-run)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot be read as JSON ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise InputError(path, f"is not a prepared-dataset manifest ({MANIFEST_FORMAT})")
    try:
        parse_size(manifest["frame"], "frame")
        complete = all(
            isinstance(entry["pairs"], str) and isinstance(entry["annotations"], str)
            and all(isinstance(images["dir"], str) and "suffix" in images for images in entry["images"].values())
            for entry in manifest["splits"].values()
        )
    except (KeyError, TypeError, AttributeError, InputError):
        complete = False
    if not complete:
        raise InputError(path, "is incomplete or damaged; prepare the folder again (--overwrite)")
    return manifest


class PoseTransferDataset(Dataset):
    """(source, target) pairs of a folder made by ``cfld prepare``; items as the module docstring says.

    Args:
        root: the prepared folder (DeepFashion or Market-1501).
        split: ``"train"`` or ``"test"``.
        config: a CFLDConfig giving ``image_size``, ``cond_size`` and ``pose_size`` (default: the paper's
            512x512, 256x256, 256x256).
        images: which prepared images to read: ``"original"`` (the release's photos, as the original
            does) or a resized copy made with ``--size``, e.g. ``"256x176"``.
        image_size, cond_size, pose_size: override the config's sizes, as (height, width).
        flip_prob: probability of flipping ``img_cond`` (default 0.5 in training, 0 in test).
        eval_size: add ``img_gt`` at this (height, width) in [0, 1]; default: the annotation frame for
            the test split (256x176, 128x64), none for training. ``False`` leaves it out.
        generator: a torch Generator for the flips (default: torch's global generator, which the
            DataLoader seeds per worker).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        config=None,
        *,
        images: str = ORIGINAL,
        image_size: Size | None = None,
        cond_size: Size | None = None,
        pose_size: Size | None = None,
        flip_prob: float | None = None,
        eval_size: Size | bool | None = None,
        generator: torch.Generator | None = None,
    ):
        self.root = Path(root)
        manifest = read_manifest(root)
        splits = manifest.get("splits", {})
        if split not in splits:
            raise InputError(self.root, f"has no {split!r} split (prepared: {', '.join(splits) or 'none'})")
        entry = splits[split]
        if images not in entry["images"]:
            prepared = ", ".join(entry["images"])
            raise InputError(self.root, f"has no {images!r} images for {split} (prepared: {prepared}); "
                                        "prepare them with --size")
        if config is None and None in (image_size, cond_size, pose_size):
            config = CFLDConfig()
        self.dataset = manifest["dataset"]
        self.split = split
        self.frame: Size = tuple(manifest["frame"])
        self.image_size = parse_size(image_size or config.image_size, "image_size")
        self.cond_size = parse_size(cond_size or config.cond_size, "cond_size")
        self.pose_size = parse_size(pose_size or config.pose_size, "pose_size")
        self.flip_prob = (0.5 if split == "train" else 0.0) if flip_prob is None else float(flip_prob)
        if not 0.0 <= self.flip_prob <= 1.0:
            raise InputError("flip_prob", f"must be between 0 and 1, got {flip_prob}")
        if eval_size is None:
            eval_size = self.frame if split == "test" else False
        self.eval_size = parse_size(eval_size, "eval_size") if eval_size is not False else None
        self.generator = generator
        folder = entry["images"][images]
        self.image_dir = self.root / folder["dir"]
        self.suffix = folder["suffix"]
        self.pairs_path, self.annotations_path = self.root / entry["pairs"], self.root / entry["annotations"]
        self.pairs = read_pairs_csv(self.pairs_path, lambda name, source: name)
        self.table = read_annotation_csv(self.annotations_path, self.frame)
        rows = set(self.table.names)
        unposed = [name for pair in self.pairs for name in pair if name not in rows]
        if unposed:
            raise InputError(self.root / entry["pairs"],
                             f"names {unposed[0]!r}, which has no row in {entry['annotations']}")

    def __len__(self) -> int:
        return len(self.pairs)

    def image_path(self, name: str) -> Path:
        return self.image_dir / (name if self.suffix is None else Path(name).with_suffix(self.suffix).name)

    @property
    def manifest_path(self) -> Path:
        """The folder's manifest; a latent cache of these photos goes beside it (``latent-cache/``)."""
        return self.root / MANIFEST

    def data_files(self) -> dict[str, Path]:
        """The files besides the photos that training reads: the split's pairs and keypoints."""
        return {"pairs": self.pairs_path, "keypoints": self.annotations_path}

    def photo_names(self) -> list[str]:
        """Every photo the split's pairs name, once, in order of first appearance."""
        return list(dict.fromkeys(name for pair in self.pairs for name in pair))

    def photo(self, name: str) -> torch.Tensor:
        """Photo ``name`` as ``img_src``/``img_tgt`` hold it: (3, H, W) in [-1, 1] at the image size."""
        return to_model_input(load_image(self.image_path(name)), self.image_size)

    def pose_image(self, name: str) -> torch.Tensor:
        """The (21, H, W) pose image of photo ``name`` at the pose size."""
        return pose_image(self.table[name], self.pose_size)

    def __getitem__(self, index: int) -> dict:
        name_src, name_tgt = self.pairs[index]
        src = load_image(self.image_path(name_src))
        tgt = load_image(self.image_path(name_tgt))
        img_cond = to_model_input(src, self.cond_size)
        if self.flip_prob > 0 and torch.rand((), generator=self.generator).item() < self.flip_prob:
            img_cond = img_cond.flip(-1)
        item = {
            "img_src": to_model_input(src, self.image_size),
            "img_tgt": to_model_input(tgt, self.image_size),
            "img_cond": img_cond,
            "pose_img_src": self.pose_image(name_src),
            "pose_img_tgt": self.pose_image(name_tgt),
            "name_src": name_src,
            "name_tgt": name_tgt,
        }
        if self.eval_size is not None:
            item["img_gt"] = _unit_image(tgt, self.eval_size)
        return item

    def __repr__(self) -> str:
        return (f"PoseTransferDataset({self.dataset} {self.split}: {len(self):,} pairs, image {self.image_size}, "
                f"cond {self.cond_size}, pose {self.pose_size}, flip {self.flip_prob})")


def _unit_image(image: Image.Image, size: Size) -> torch.Tensor:
    """(3, H, W) in [0, 1]: bicubic antialiased resize then /255, as the original's ``transform_test``."""
    resized = image.resize((size[1], size[0]), Image.BICUBIC)
    return torch.from_numpy(np.asarray(resized, dtype=np.uint8).copy()).permute(2, 0, 1).float().div(255.0)

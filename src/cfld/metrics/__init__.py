"""The paper's evaluation metrics, computed as the original does, batched in torch.

* :mod:`cfld.metrics.image_quality`: PSNR, SSIM, SSIM_256 (scikit-image's numbers, whole batches).
* :mod:`cfld.metrics.lpips`: LPIPS with AlexNet.
* :mod:`cfld.metrics.fid`: FID with the original's torchvision Inception and the standard TF-Inception.
* :mod:`cfld.metrics.matching`: generated and ground-truth files paired by name.
* :mod:`cfld.metrics.pose_accuracy`: the pose check, PCKh@0.5 / PCK@0.1 of the person found in a generated
  image against the target pose (docs/pose-check.md).
* :mod:`cfld.metrics.evaluate`: the :class:`Evaluator` used by training, and ``cfld evaluate`` on two folders.
"""

from .evaluate import ALL_METRICS, EVAL_SIZE, Evaluator, available_metrics, evaluate_folders
from .fid import FeatureStats, OriginalInception, StandardInception, frechet_distance, frechet_distance_from_features
from .image_quality import pixel_metrics, psnr, ssim, ssim_256
from .lpips import LPIPSAlex
from .matching import match_pairs
from .pose_accuracy import PoseScore, PoseScorer, score_pose, summarize

__all__ = ["ALL_METRICS", "EVAL_SIZE", "Evaluator", "FeatureStats", "LPIPSAlex", "OriginalInception",
           "StandardInception", "available_metrics", "evaluate_folders", "frechet_distance",
           "frechet_distance_from_features", "match_pairs", "pixel_metrics", "PoseScore", "PoseScorer", "psnr",
           "score_pose", "ssim", "ssim_256", "summarize"]

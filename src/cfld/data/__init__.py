"""Datasets for CFLD: preparing DeepFashion and Market-1501, and reading the prepared pairs for training.

* :func:`prepare_deepfashion`, :func:`prepare_market1501` (``cfld prepare``): build the paper's train and
  test sets from the releases and the published pair/keypoint files, in a folder with a manifest.
* :class:`PoseTransferDataset`: the pairs of a prepared folder as torch items (``img_src``, ``img_tgt``,
  ``img_cond``, ``pose_img_src``, ``pose_img_tgt``, ``name_src``, ``name_tgt``; ``img_gt`` for evaluation)
  with the original's transforms.
* ``cfld.data.synthetic``: procedurally drawn persons for CPU training (its own module).
"""

from .dataset import ITEM_KEYS, PoseTransferDataset, read_manifest
from .deepfashion import deepfashion_key, prepare_deepfashion
from .market1501 import market_key, market_train_pairs, prepare_market1501
from .prepare import MANIFEST, ORIGINAL, SplitReport

__all__ = [
    "ITEM_KEYS", "MANIFEST", "ORIGINAL", "PoseTransferDataset", "SplitReport", "deepfashion_key", "market_key",
    "market_train_pairs", "prepare_deepfashion", "prepare_market1501", "read_manifest",
]  # fmt: skip

"""Datasets for CFLD: preparing DeepFashion and Market-1501, and reading the prepared pairs for training.

* :func:`prepare_deepfashion`, :func:`prepare_market1501` (``cfld prepare``): build the paper's train and
  test sets from the releases and the published pair/keypoint files, in a folder with a manifest.
* :func:`prepare_photos` (``cfld prepare photos``): a catalogue of your own photos, one folder per person,
  framed and posed into the same layout, split by person.
* :class:`PoseTransferDataset`: the pairs of a prepared folder as torch items with the original's
  transforms. Every item has the keys of :data:`ITEM_KEYS`:

  - ``img_src``, ``img_tgt``: (3, H, W) source and target photo at the training image size, in [-1, 1];
  - ``img_cond``: (3, Hc, Wc) source photo at the condition size for the source encoder, in [-1, 1]
    (flipped horizontally with probability 0.5 in training);
  - ``pose_img_src``, ``pose_img_tgt``: (21, Hp, Wp) pose images (:func:`cfld.pose.pose_image`);
  - ``name_src``, ``name_tgt``: the photos' names, for evaluation;

  and, when an evaluation size is set (test split by default), ``img_gt``: (3, He, We) target in [0, 1].
* :class:`SyntheticPersons` (``cfld.data.synthetic``): procedurally drawn people in real DeepFashion poses,
  pairs of one person in two poses, for proving on a CPU that training learns.

Names are imported lazily so that ``cfld prepare`` does not load torch.
"""

_LAZY = {
    "ITEM_KEYS": "cfld.data.dataset",
    "PoseTransferDataset": "cfld.data.dataset",
    "read_manifest": "cfld.data.dataset",
    "deepfashion_key": "cfld.data.deepfashion",
    "prepare_deepfashion": "cfld.data.deepfashion",
    "market_key": "cfld.data.market1501",
    "market_train_pairs": "cfld.data.market1501",
    "prepare_market1501": "cfld.data.market1501",
    "photos_key": "cfld.data.photos.catalogue",
    "prepare_photos": "cfld.data.photos",
    "MANIFEST": "cfld.data.prepare",
    "ORIGINAL": "cfld.data.prepare",
    "SplitReport": "cfld.data.prepare",
    "SyntheticPersons": "cfld.data.synthetic",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cfld.data' has no attribute {name!r}")


__all__ = sorted(_LAZY)

"""A bundled gallery of 24 real DeepFashion test poses, for the demo and the web app (no data needed).

The rows are copied unchanged from ``fasion-resize-annotation-test.csv`` (256x176 frame) and chosen
for variety: front, back and side views, full-body and close-up shots, raised arms, bent legs, men and
women, and three poses with a joint beyond the photo border (drawn clipped, as the original does).
"""

from __future__ import annotations

from importlib import resources

from .formats import PoseTable, read_annotation_csv
from .skeleton import DEEPFASHION_SIZE


def gallery() -> PoseTable:
    """The gallery as an ordered mapping: DeepFashion image name -> :class:`~cfld.pose.Pose`."""
    with resources.as_file(resources.files("cfld") / "assets" / "pose_gallery.csv") as path:
        return read_annotation_csv(path, DEEPFASHION_SIZE)

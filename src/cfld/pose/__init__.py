"""Human poses for CFLD: OpenPose-18 keypoints, their readers and writers, and the pose images.

The central type is :class:`Pose`: 18 COCO-18 keypoints in ``(x, y)`` pixel coordinates of a frame
of ``(height, width)``, with a confidence per joint (0 = missing). Typical use::

    from cfld import pose as P

    p = P.load_pose("fasion-resize-annotation-test.csv", name="fashion/WOMEN/.../45_1_front.jpg")
    image = P.pose_image(p, (256, 256))            # (21, 256, 256) float32, the model's pose input
    P.write_png(P.draw_pose(p), "pose.png")        # a picture for people
    P.write_pose_json(P.flip(p), "flipped.json")   # our JSON format, see POSE_JSON_FORMAT

``cfld pose --help`` offers the same on the command line.
"""

from .detect import PoseDetector, detect_pose, landmarks_to_openpose, pose_for_source
from .formats import (
    BODY25_TO_COCO18,
    POSE_JSON_FORMAT,
    PoseTable,
    flat_name,
    guess_annotation_frame,
    load_pose,
    parse_annotation_row,
    pose_format,
    pose_from_json,
    pose_from_openpose,
    pose_to_json,
    read_annotation_csv,
    read_openpose_json,
    read_pose_json,
    write_pose_json,
)
from .gallery import gallery
from .render import (
    LINE_WIDTH,
    MAX_PICTURE_SIDE,
    MAX_POSE_IMAGE_SIDE,
    MAX_SIGMA,
    SIGMA,
    draw_pose,
    pose_grid,
    pose_image,
    read_image,
    render_heatmaps,
    render_skeleton,
    write_png,
)
from .skeleton import (
    BONE_COLORS,
    BONES,
    DEEPFASHION_SIZE,
    FLIP_PERMUTATION,
    JOINT_COLORS,
    JOINT_NAMES,
    MARKET1501_SIZE,
    NUM_JOINTS,
    Pose,
    flip,
    parse_size,
    pck_counts,
    retarget,
)

__all__ = [
    "BODY25_TO_COCO18", "BONES", "BONE_COLORS", "DEEPFASHION_SIZE", "FLIP_PERMUTATION", "JOINT_COLORS", "JOINT_NAMES",
    "LINE_WIDTH", "MARKET1501_SIZE", "MAX_PICTURE_SIDE", "MAX_POSE_IMAGE_SIDE", "MAX_SIGMA", "NUM_JOINTS",
    "POSE_JSON_FORMAT", "SIGMA", "Pose", "PoseDetector", "PoseTable", "detect_pose", "draw_pose", "flat_name", "flip",
    "gallery", "guess_annotation_frame", "landmarks_to_openpose", "load_pose", "pose_for_source",
    "parse_annotation_row", "parse_size", "pck_counts", "pose_format", "pose_from_json", "pose_from_openpose",
    "pose_grid", "pose_image", "pose_to_json", "read_annotation_csv", "read_image", "read_openpose_json",
    "read_pose_json", "render_heatmaps", "render_skeleton", "retarget", "write_png", "write_pose_json",
]  # fmt: skip

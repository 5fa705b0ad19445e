"""Benchmark: our vectorised pose renderer against the original's joint-by-joint approach.

The "loop" renderer below re-implements how the original CFLD data pipeline builds a pose image:
for every visible joint a full-frame meshgrid and a float64 Gaussian written into an (H, W, 18)
float32 array, then the transposed copy into a tensor; the skeleton with OpenCV and a float64
division by 255. Both renderers run on the same real poses (the 24 of the bundled gallery) in one
process; their outputs are compared and the timings printed.

    python benchmarks/pose_rendering.py            # or: make bench
    python benchmarks/pose_rendering.py --sizes 256x256 --repeat 50
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
import torch

from cfld import pose as P
from cfld.pose import render as R


def loop_heatmaps(pose: P.Pose, size: tuple[int, int], sigma: float = P.SIGMA) -> np.ndarray:
    """One Gaussian per joint, each over its own full meshgrid, as the original computes them."""
    height, width = size
    frame_h, frame_w = pose.frame
    out = np.zeros((height, width, P.NUM_JOINTS), dtype="float32")
    for i, ((x, y), visible) in enumerate(zip(pose.xy, pose.visible)):
        if not visible:
            continue
        row, col = int(y / frame_h * height), int(x / frame_w * width)
        cols, rows = np.meshgrid(np.arange(width), np.arange(height))
        out[..., i] = np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * sigma**2))
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def loop_pose_image(pose: P.Pose, size: tuple[int, int]) -> torch.Tensor:
    """The whole 21-channel image the original way: loop heatmaps, OpenCV skeleton, float64 / 255."""
    height, width = size
    frame_h, frame_w = pose.frame
    scale_y, scale_x = height / frame_h, width / frame_w
    skeleton = np.zeros((height, width, 3), dtype=np.uint8)
    xy, visible = pose.xy, pose.visible
    for (start, end), color in zip(P.BONES, P.BONE_COLORS):
        if visible[start] and visible[end]:
            a = (int(xy[start, 0] * scale_x), int(xy[start, 1] * scale_y))
            b = (int(xy[end, 0] * scale_x), int(xy[end, 1] * scale_y))
            cv2.line(skeleton, a, b, color, 2, cv2.LINE_AA)
    for (x, y), v, color in zip(xy, visible, P.JOINT_COLORS):
        if v:
            cv2.circle(skeleton, (int(x * scale_x), int(y * scale_y)), 3, color, -1, cv2.LINE_AA)
    heat = torch.tensor(loop_heatmaps(pose, size), dtype=torch.float32)
    rgb = torch.tensor(skeleton.transpose(2, 0, 1) / 255.0, dtype=torch.float32)
    return torch.cat([rgb, heat])


def per_pose_ms(renderers, poses: list[P.Pose], size: tuple[int, int], repeat: int) -> list[float]:
    """For each renderer, the median over ``repeat`` rounds of its mean time per pose, in milliseconds.

    Rounds alternate between the renderers so that both see the same machine load.
    """
    rounds: list[list[float]] = [[] for _ in renderers]
    for _ in range(repeat):
        for times, render in zip(rounds, renderers):
            start = time.perf_counter()
            for pose in poses:
                render(pose, size)
            times.append((time.perf_counter() - start) / len(poses) * 1e3)
    return [statistics.median(times) for times in rounds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["64x64", "256x256", "512x512"], help="HxW sizes")
    parser.add_argument("--repeat", type=int, default=5, help="timing rounds over all poses (median reported)")
    args = parser.parse_args()
    poses = [pose for pose in P.gallery().values() if pose.num_visible]
    torch.set_num_threads(1)
    print(f"{len(poses)} real DeepFashion poses (bundled gallery), median of {args.repeat} rounds, "
          f"numpy {np.__version__}, opencv {cv2.__version__}")  # fmt: skip
    for text in args.sizes:
        height, width = (int(v) for v in text.lower().split("x"))
        size = (height, width)

        R._gaussian_table.cache_clear()
        start = time.perf_counter()
        P.render_heatmaps(poses[0], size)
        cold_ms = (time.perf_counter() - start) * 1e3

        diff = max(float(np.abs(P.render_heatmaps(p, size) - loop_heatmaps(p, size)).max()) for p in poses)
        loop_ms, ours_ms = per_pose_ms([loop_heatmaps, P.render_heatmaps], poses, size, args.repeat)
        print(f"heatmaps {text}: loop {loop_ms:.2f} ms, ours {ours_ms:.2f} ms, {loop_ms / ours_ms:.1f}x faster, "
              f"max|diff| {diff:g} (first call at this size, building the table: {cold_ms:.1f} ms)")  # fmt: skip

        diff = max(float((P.pose_image(p, size) - loop_pose_image(p, size)).abs().max()) for p in poses)
        loop_ms, ours_ms = per_pose_ms([loop_pose_image, P.pose_image], poses, size, args.repeat)
        print(f"pose image (21 ch) {text}: loop {loop_ms:.2f} ms, ours {ours_ms:.2f} ms, "
              f"{loop_ms / ours_ms:.1f}x faster, max|diff| {diff:g}")  # fmt: skip


if __name__ == "__main__":
    main()

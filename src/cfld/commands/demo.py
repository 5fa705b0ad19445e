"""``cfld demo``: the offline demo. For now it draws the bundled gallery of real DeepFashion poses."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option("-o", "--output", default="demo_output", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the demo's pictures (created if needed; the demo's own files in it are replaced).")
@click.option("--columns", type=click.IntRange(min=1), default=8, show_default=True, help="Poses per row of the grid.")
def demo(output: str, columns: int) -> None:
    """Run the offline demo: draw the bundled gallery of real DeepFashion test poses.

    Writes OUTPUT/pose_gallery.png, a grid of the 24 poses of `cfld.pose.gallery()` drawn as the
    CFLD model sees them (OpenPose-18 skeleton, 256x176 frame). Needs no network, no weights and no
    dataset. The files it writes are regenerated on every run, so they are replaced without asking.

    \b
    Example:
      cfld demo --output demo_output
    """
    from .. import pose as P

    poses = P.gallery()
    pictures = [P.draw_pose(pose) for pose in poses.values()]
    labels = ["/".join(name.split("/")[-2:]).removesuffix(".jpg") for name in poses]  # id/view
    path = P.write_png(P.pose_grid(pictures, labels, columns), Path(output) / "pose_gallery.png", overwrite=True)
    click.echo(f"wrote {path} ({len(pictures)} real DeepFashion poses)")

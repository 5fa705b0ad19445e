"""``cfld demo``: the offline demo, on the small CFLD model shipped inside the package.

The demo model (``cfld/assets/demo_model``, 14.6 MB of safetensors; ``-m demo`` in the other commands) was
trained with our own ``cfld train`` on procedurally drawn persons (:mod:`cfld.data.synthetic`) by
``benchmarks/train_synthetic.py`` (the ``synthetic-cpu`` recipe: a VAE in 20.5 minutes, then 6,144 CFLD steps in
54 minutes, on a 2-core CPU). The demo re-poses held-out synthetic persons into real DeepFashion poses and
scores the results against the ground truth beside four baselines (:mod:`cfld.training.held_out`). It shows
the whole pipeline running offline; real photos need the released CFLD weights (README, "Weights and quick start").
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from .. import pose as P
from ..images import to_uint8
from ..io import check_output_folder
from ..model_names import demo_model_dir
from .options import SEED, STEPS, load_pipeline

SHARED_POSES = Path("..") / "shared" / "data" / "deepfashion" / "fasion-resize-annotation-test.csv"


@click.command("demo")
@click.option("-o", "--output", default="demo_output", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the demo's pictures (created if needed; the demo's own files in it are replaced).")
@click.option("--pairs", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Held-out synthetic persons to re-pose.")
@click.option("--steps", type=STEPS, default=50, show_default=True,
              help="DDPM denoising steps (the paper's sampler).")
@click.option("--poses", type=click.Path(dir_okay=False), default=None,
              help="DeepFashion annotation CSV to take the target poses from (held-out rows). "
                   "Default: ../shared's test keypoints when present, else the 24 bundled real poses.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the sampling noise.")
@click.option("--columns", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Poses per row of the pose gallery picture.")
def demo(output: str, pairs: int, steps: int, poses: str | None, seed: int, columns: int) -> None:
    """Run the offline demo: re-pose synthetic persons with the bundled CFLD model, no downloads.

    Writes OUTPUT/demo_grid.png (one row per person: source | target pose | generated | ground truth) and
    prints SSIM, PSNR and the garment colour difference ΔE00 of the generated images against the ground truth,
    beside four baselines: copying the source, a different person in the right pose, the untrained model, and
    the VAE alone (its reconstruction of the ground truth, the ceiling). It also draws the gallery of real
    DeepFashion poses the app offers (OUTPUT/pose_gallery.png). The files it writes are regenerated on every
    run, so they are replaced without asking.

    \b
    Examples:
      cfld demo
      cfld demo --pairs 4 --steps 20 --output /tmp/demo
    """
    import torch

    from ..pipeline import check_schedule_runs
    from ..training.held_out import HeldOutPairs, generate, reconstruct, score_table, untrained_pipeline

    out = check_output_folder(output)
    model_dir = demo_model_dir()
    if not (model_dir / "model_index.json").is_file():
        raise click.ClickException(f"the demo model is missing from the installation ({model_dir}); reinstall cfld")
    torch.manual_seed(seed)
    pipe = load_pipeline(model_dir, device="cpu")
    check_schedule_runs(pipe.scheduler, steps)
    if poses is None and SHARED_POSES.is_file():
        poses = str(SHARED_POSES)
    pairs = HeldOutPairs.draw(pairs, pipe.model.config, poses)  # drawn as trained

    gallery = P.gallery()
    labels = ["/".join(name.split("/")[-2:]).removesuffix(".jpg") for name in gallery]  # id/view
    pictures = [P.draw_pose(pose) for pose in gallery.values()]
    path = P.write_png(P.pose_grid(pictures, labels, columns), out / "pose_gallery.png", overwrite=True)
    click.echo(f"wrote {path} ({len(pictures)} real DeepFashion poses)")
    where = f"held-out rows of {poses}" if poses else "the bundled gallery of real DeepFashion poses"
    click.echo(f"re-posing {len(pairs.items)} held-out synthetic persons into real DeepFashion poses ({where}), "
               f"DDPM {steps} steps, on the bundled demo model")
    generated = generate(pipe, pairs, steps, seed=seed, progress=True)
    skeleton = torch.stack([item["pose_img_tgt"][:3] for item in pairs.items])
    skeleton = torch.nn.functional.interpolate(skeleton, size=tuple(pairs.truth.shape[-2:]), mode="nearest")
    rows = torch.cat([pairs.source, skeleton, generated, pairs.truth], dim=3)  # (N, 3, H, 4W)
    grid = to_uint8(torch.cat(list(rows), dim=1).unsqueeze(0).clamp(0, 1))[0]
    path = P.write_png(np.ascontiguousarray(grid), out / "demo_grid.png", overwrite=True)
    click.echo(f"wrote {path} (rows: source | target pose | generated | ground truth)")

    predictions = {"CFLD demo model": generated, "copy the source": pairs.source,
                   "a different person": pairs.different_person,
                   "untrained model": generate(untrained_pipeline(pipe), pairs, steps, seed=seed),
                   "VAE alone (its ceiling)": reconstruct(pipe.vae, pairs.truth)}
    for line in score_table({name: pairs.score(images) for name, images in predictions.items()}):
        click.echo(line)
    click.echo("SSIM, PSNR (dB): higher is better. ΔE00: the colour difference of the upper and lower garment "
               "(CIEDE2000 of their mean colours), lower is better; below 3 is hard to see side by side.")
    click.echo("The demo model is tiny and trained on drawn persons only; real photos need the released CFLD weights "
               "(see README, 'Weights and quick start').")

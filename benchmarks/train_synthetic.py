"""Does CFLD training learn, and does it carry appearance? The run that makes cfld's demo model, on this CPU.

    python benchmarks/train_synthetic.py --output runs/demo     # the shipped model, see the README for its time

Recipe: the ``synthetic-cpu`` preset as it stands (a tiny VAE trained first and frozen, then the whole tiny UNet
and the condition model trained with L_mse + L_rec, cubic timesteps, 20 % prompt dropout, Adam with warmup
and x0.1 after 2 of 3 epochs), on ``--threads`` (2) threads, with poses from the real DeepFashion test
keypoints in ../shared (else the 24 bundled ones); every 10th drawable pose is held out of training. The run
is deterministic for a given thread count; ``<output>/model`` is the demo model shipped in
``cfld/assets/demo_model``. ``--vae`` reuses the ``vae/`` of an earlier run (the same VAE, so the same
model) and skips its training.

Held-out evaluation (:mod:`cfld.training.held_out`, as ``cfld demo``): ``--eval-pairs`` (64) persons never
seen in training in held-out poses; the source image and the target pose go in, the target image is the
ground truth. Predictions: the trained model; copying the source; a different person in the right pose; the
untrained model (the recipe's initial weights, same VAE); and the VAE's own reconstruction of the truth (the
ceiling). Sampling: the paper's, DDPM in 50 steps with w_pose = w_app = 2 (``--sampler``, ``--sample-steps``),
one fixed seed. Scores on uint8 images at 64x64: SSIM, PSNR and the garment colour difference ΔE00
(:mod:`cfld.metrics.appearance`). LPIPS (AlexNet) is added only when torchvision's AlexNet weights are already
in the torch hub cache: nothing is downloaded.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
SHARED_POSES = REPO.parent / "shared" / "data" / "deepfashion" / "fasion-resize-annotation-test.csv"

from cfld.images import to_uint8  # noqa: E402
from cfld.pipeline import CFLDPipeline  # noqa: E402
from cfld.training import TrainConfig, Trainer  # noqa: E402
from cfld.training.held_out import HeldOutPairs, generate, quantise, reconstruct, score_table, untrained_pipeline  # noqa: E402


def load_lpips():
    """LPIPS-AlexNet if its weights are available offline, else (None, why)."""
    try:
        import lpips
    except ImportError:
        return None, "the lpips package is not installed"
    weights = Path(torch.hub.get_dir()) / "checkpoints" / "alexnet-owt-7be5be79.pth"
    if not weights.is_file():
        return None, f"torchvision's AlexNet weights are not in {weights.parent} and cannot be downloaded here"
    return lpips.LPIPS(net="alex", verbose=False).eval(), ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, help="run folder (default: a temporary one)")
    parser.add_argument("--max-steps", type=int,
                        help="stop CFLD training after this many steps (default: the recipe's)")
    parser.add_argument("--vae-steps", type=int, help="VAE optimizer steps (default: the recipe's)")
    parser.add_argument("--vae", type=Path, help="use this VAE folder (the vae/ of an earlier run of this recipe) "
                                                 "instead of training one")
    parser.add_argument("--eval-pairs", type=int, default=64)
    parser.add_argument("--sampler", default="ddpm", help="a cfld.schedulers name (the paper: ddpm)")
    parser.add_argument("--sample-steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the shipped model: 2)")
    parser.add_argument("--save-grid", type=Path, help="write source | target | untrained | trained rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    output = args.output or Path(tempfile.mkdtemp(prefix="cfld-train-synthetic-"))
    poses = str(SHARED_POSES) if SHARED_POSES.is_file() else None

    config = TrainConfig.load("synthetic-cpu")
    config.data = dict(config.data, poses=poses)
    if args.vae_steps:
        config.vae = dict(config.vae, train_steps=args.vae_steps)
    vae_steps = config.vae["train_steps"]
    if args.vae:
        config.vae = str(args.vae)
    config.max_steps = args.max_steps
    config.checkpoint_every, config.sample_every, config.torch_threads = 0, 0, args.threads
    model_config = config.model_config()

    losses: list[float] = []
    start = time.time()
    final = Trainer(config, output, overwrite=True, progress=True).train(lambda r: losses.append(r.loss))
    train_time = time.time() - start

    pipe = CFLDPipeline.from_pretrained(final)
    pairs = HeldOutPairs.draw(args.eval_pairs, model_config, poses, config.data["photo_size"])
    start = time.time()
    untrained = untrained_pipeline(pipe, config.seed)
    predictions = {"VAE alone (its ceiling)": reconstruct(pipe.vae, pairs.truth), "copy the source": pairs.source,
                   "a different person": pairs.different_person,
                   "untrained model": generate(untrained, pairs, args.sample_steps, args.sampler),
                   "trained model": generate(pipe, pairs, args.sample_steps, args.sampler)}
    eval_time = time.time() - start

    lpips_model, why = load_lpips()
    rows = {name: pairs.score(images) for name, images in predictions.items()}
    if lpips_model is not None:
        to = lambda x: quantise(x).float() / 127.5 - 1  # noqa: E731 - [-1, 1] after the uint8 truncation
        with torch.no_grad():
            for name, images in predictions.items():
                rows[name]["LPIPS"] = float(lpips_model(to(images), to(pairs.truth)).mean())

    print(f"\nsynthetic persons, held-out persons and poses: {len(pairs.items)} pairs at {model_config.image_size[0]}x"
          f"{model_config.image_size[1]}; poses from "
          f"{'../shared DeepFashion test keypoints' if poses else 'the bundled gallery'}")
    vae = f"VAE from {args.vae}" if args.vae else f"VAE {vae_steps} steps"
    print(f"training: {vae}, CFLD {len(losses)} steps x {config.batch_size} pairs in {train_time / 60:.1f} min "
          f"({args.threads} thread(s)); loss first 20 steps {np.mean(losses[:20]):.4f} "
          f"-> last 20 {np.mean(losses[-20:]):.4f}")
    print(f"sampling: {args.sampler.upper()} {args.sample_steps} steps, w_pose = w_app = 2, "
          f"{eval_time:.0f} s for both models")
    print("\n".join(score_table(rows)))
    trained = rows["trained model"]
    for baseline in ("copy the source", "a different person", "untrained model"):
        print(f"trained vs {baseline}: SSIM {trained['SSIM'] / rows[baseline]['SSIM']:.3f}x, "
              f"PSNR {trained['PSNR'] - rows[baseline]['PSNR']:+.2f} dB, "
              f"ΔE00 {trained['ΔE00'] - rows[baseline]['ΔE00']:+.2f}"
              + (f", LPIPS {trained['LPIPS'] / rows[baseline]['LPIPS']:.3f}x (lower is better)" if lpips_model else ""))
    if lpips_model is None:
        print(f"LPIPS: not measured: {why}.")
    if args.save_grid:
        from PIL import Image

        columns = [pairs.source, pairs.truth, predictions["untrained model"], predictions["trained model"]]
        grid = torch.cat([torch.cat([c[i] for c in columns], dim=2) for i in range(min(8, len(pairs.items)))], dim=1)
        Image.fromarray(to_uint8(grid[None])[0]).save(args.save_grid)
    print(f"run folder: {output}")


if __name__ == "__main__":
    main()

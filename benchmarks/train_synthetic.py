"""Does CFLD training learn? A test-size run on synthetic persons, on this CPU, against two baselines.

    python benchmarks/train_synthetic.py     # ~30 min on 2 cores (the run that made cfld's demo model)

Recipe: the ``synthetic-cpu`` preset (tiny CFLD at 64x64; a tiny VAE trained first, then the whole tiny
UNet and the condition model trained with L_mse + L_rec, cubic timesteps, 20 % prompt dropout, Adam with
warmup and x0.1 at half the run): ``--steps`` (2000) steps, then a second stage of ``--extra-steps`` (2000)
from those weights with a fresh 20-step warmup and x0.1 decay at its half (``init_checkpoint``), on
``--threads`` (2) threads. Poses: the real DeepFashion test keypoints in ../shared (else the 24 bundled ones);
every 10th drawable pose is held out of training. The run is deterministic for a given thread count;
``<output>/stage2/model`` of the default run is the demo model shipped in ``cfld/assets/demo_model``.

Held-out evaluation: persons never seen in training (another dataset seed) in held-out poses. For each
pair the source image and the target pose go in, the target image is the ground truth. Three predictions:

* ``copy source``: the source image returned unchanged;
* ``untrained``: the same model (same seed, same VAE) before any CFLD step, sampled the same way;
* ``trained``: after training.

Sampling: the paper's, DDPM in 50 steps with w_pose = w_app = 2 (``--sampler``, ``--sample-steps``), one
fixed seed.
Metrics on uint8 images at 64x64: SSIM (scikit-image, 7x7 window, data range 1, channels separately) and
PSNR (data range 1). LPIPS (AlexNet) is reported only when torchvision's AlexNet weights are already in
the torch hub cache: nothing is downloaded.
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

from cfld.data.synthetic import HELD_OUT_SEED, SyntheticPersons  # noqa: E402
from cfld.pipeline import CFLDPipeline  # noqa: E402
from cfld.schedulers import make_scheduler  # noqa: E402
from cfld.training import TrainConfig, Trainer  # noqa: E402


def quantise(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) float in [0, 1] after the original's uint8 truncation."""
    return (images.float() * 255).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy().astype(np.float64) / 255


def metrics(predicted: np.ndarray, target: np.ndarray, lpips_model) -> dict[str, float]:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    ssim = [structural_similarity(p, t, channel_axis=2, data_range=1.0) for p, t in zip(predicted, target)]
    psnr = [peak_signal_noise_ratio(t, p, data_range=1.0) for p, t in zip(predicted, target)]
    result = {"SSIM": float(np.mean(ssim)), "PSNR": float(np.mean(psnr))}
    if lpips_model is not None:
        to = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2).float() * 2 - 1  # noqa: E731
        with torch.no_grad():
            result["LPIPS"] = float(lpips_model(to(predicted), to(target)).mean())
    return result


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


@torch.no_grad()
def generate(model, unet, vae, items, steps: int, sampler: str) -> torch.Tensor:
    pipe = CFLDPipeline(model, unet, vae, make_scheduler(sampler))
    out = pipe(torch.stack([i["img_cond"] for i in items]), torch.stack([i["pose_img_tgt"] for i in items]),
               paired=True, num_inference_steps=steps, output_type="pt", output_size=None,
               generator=torch.Generator().manual_seed(0), progress=False)
    return out.images.cpu()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, help="run folder (default: a temporary one)")
    parser.add_argument("--steps", type=int, default=2000, help="CFLD optimizer steps")
    parser.add_argument("--extra-steps", type=int, default=2000,
                        help="a second stage of this many steps from the first stage's weights (0: none)")
    parser.add_argument("--batch", type=int, default=8, help="pairs per step")
    parser.add_argument("--vae-steps", type=int, default=300)
    parser.add_argument("--eval-pairs", type=int, default=48)
    parser.add_argument("--sampler", default="ddpm", help="a cfld.schedulers name (the paper: ddpm)")
    parser.add_argument("--sample-steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 is faster on a busy machine)")
    parser.add_argument("--save-grid", type=Path, help="write source | target | untrained | trained rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    output = args.output or Path(tempfile.mkdtemp(prefix="cfld-train-synthetic-"))
    poses = str(SHARED_POSES) if SHARED_POSES.is_file() else None

    config = TrainConfig.load("synthetic-cpu")
    config.data = dict(config.data, poses=poses, length=args.steps * args.batch // 2)  # two epochs
    config.vae = dict(config.vae, train_steps=args.vae_steps)
    config.batch_size, config.epochs, config.decay_epochs = args.batch, 2, (1,)  # x0.1 at half the run
    config.checkpoint_every, config.sample_every, config.torch_threads = 0, 0, args.threads
    model_config = config.model_config()

    losses: list[float] = []
    start = time.time()
    trainer = Trainer(config, output, overwrite=True, progress=True)
    trainer.train(lambda r: losses.append(r.loss))
    final = output / "model"
    if args.extra_steps:  # stage 2: go on from stage 1's weights with a fresh warmup and decay
        stage2 = TrainConfig.from_dict(config.to_dict())
        stage2.init_checkpoint = str(output / "checkpoints" / f"step-{args.steps:07d}")
        stage2.vae, stage2.warmup_steps, stage2.max_steps = str(output / "vae"), 20, args.extra_steps
        final = Trainer(stage2, output / "stage2", overwrite=True, progress=True).train(lambda r: losses.append(r.loss))
    train_time = time.time() - start

    pipe = CFLDPipeline.from_pretrained(final)
    from accelerate.utils import set_seed

    set_seed(config.seed)
    untrained_model, untrained_unet = trainer.build_models(model_config)

    held_out = SyntheticPersons(args.eval_pairs, model_config.image_size, model_config.cond_size, model_config.pose_size,
                                seed=HELD_OUT_SEED, poses=poses, split="test", photo_size=config.data["photo_size"])
    items = [held_out[i] for i in range(len(held_out))]
    target = quantise(torch.stack([(i["img_tgt"] + 1) / 2 for i in items]))
    source = quantise(torch.stack([(i["img_src"] + 1) / 2 for i in items]))
    start = time.time()
    before = generate(untrained_model.eval(), untrained_unet.eval(), pipe.vae, items, args.sample_steps, args.sampler)
    after = generate(pipe.model, pipe.unet, pipe.vae, items, args.sample_steps, args.sampler)
    eval_time = time.time() - start

    lpips_model, why = load_lpips()
    rows = {"copy source": metrics(source, target, lpips_model),
            "untrained model": metrics(quantise(before), target, lpips_model),
            "trained model": metrics(quantise(after), target, lpips_model)}

    print(f"\nsynthetic persons, held-out persons and poses: {len(items)} pairs at {model_config.image_size[0]}x"
          f"{model_config.image_size[1]}; poses from {'../shared DeepFashion test keypoints' if poses else 'the bundled gallery'}")
    print(f"training: VAE {args.vae_steps} steps, CFLD {args.steps} + {args.extra_steps} steps x {args.batch} pairs in {train_time / 60:.1f} min "
          f"({args.threads} thread(s)); loss first 20 steps {np.mean(losses[:20]):.4f} -> last 20 {np.mean(losses[-20:]):.4f}")
    print(f"sampling: {args.sampler.upper()} {args.sample_steps} steps, w_pose = w_app = 2, {eval_time:.0f} s for both models")
    names = ["SSIM", "PSNR"] + (["LPIPS"] if lpips_model is not None else [])
    print(f"{'prediction':<18}" + "".join(f"{n:>10}" for n in names))
    for name, values in rows.items():
        print(f"{name:<18}" + "".join(f"{values[n]:>10.4f}" for n in names))
    trained = rows["trained model"]
    for baseline in ("copy source", "untrained model"):
        print(f"trained vs {baseline}: SSIM {trained['SSIM'] / rows[baseline]['SSIM']:.3f}x, "
              f"PSNR {trained['PSNR'] - rows[baseline]['PSNR']:+.2f} dB"
              + (f", LPIPS {trained['LPIPS'] / rows[baseline]['LPIPS']:.3f}x (lower is better)" if lpips_model else ""))
    if lpips_model is None:
        print(f"LPIPS: not measured: {why}.")
    if args.save_grid:
        from PIL import Image

        grid = np.concatenate([np.concatenate([s, t, b, a], axis=1) for s, t, b, a in
                               zip(source[:8], target[:8], quantise(before)[:8], quantise(after)[:8])], axis=0)
        Image.fromarray((grid * 255).round().astype(np.uint8)).save(args.save_grid)
    print(f"run folder: {output}")


if __name__ == "__main__":
    main()

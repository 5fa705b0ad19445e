"""The speed/quality frontier of CFLD sampling, measured in one run: what each shortcut saves and what it costs.

    python benchmarks/speed_quality.py                  # ~20 min on 2 cores: demo model + sd15 timings
    python benchmarks/speed_quality.py --no-sd15        # the demo-model table alone (~12 min)

Quality: the shipped demo model (``cfld/assets/demo_model``, trained, so quality means something) re-poses
``--pairs`` (48) held-out synthetic persons (a dataset seed never trained on) into held-out real DeepFashion
poses (../shared's test keypoints when present, else the bundled gallery). For every setting:

* wall time per image (the whole pipeline call: source encoding, pose adapter, sampling, VAE decode, at
  ``--batch`` pairs per UNet batch; ``--repeats`` passes over all settings in turn, the fastest run kept) and
  UNet evaluations per image (branches x steps, counted by a hook on the UNet, not computed);
* SSIM / PSNR against the ground truth (the target photo), as ``cfld demo`` measures them;
* SSIM / PSNR against the paper's DDPM-50 image of the same pair: how far the shortcut moves the picture.
  DDPM draws fresh noise at every step, so two DDPM-50 runs with different seeds also differ: the row
  ``DDPM 50 (other seed)`` shows that floor.

Speed at the paper's size: the same settings on the random-weight ``sd15`` model (Swin-B, SD 1.5 UNet and
VAE, 64x64 latents = 512x512 images), one image. Running 50 steps of each setting at that size takes an
hour on a CPU, so each scheduler's guided step is timed over ``--sd15-steps`` steps, the unguided step
(one branch) and the fixed costs (source encoding, pose adapter, VAE decode) once, and the seconds per image
of each setting are the sum (``sd15 s/img`` column).

The setting whose name ends in ``*`` is :data:`cfld.presets.FAST` (``--fast``). Print ``--markdown`` for the
README's table.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from cfld import presets
from cfld.metrics import pixel_metrics
from cfld.pipeline import CFLDPipeline
from cfld.training.held_out import HeldOutPairs, quantise
from common import PHOTO, REPO, first_steps, random_pipeline

SHARED_POSES = REPO.parent / "shared" / "data" / "deepfashion" / "fasion-resize-annotation-test.csv"


@dataclass(frozen=True)
class Setting:
    name: str
    scheduler: str
    steps: int
    interval: tuple[float, float] | None = None  # guidance interval (None: every step)

    def evaluations(self, branches: int = 2) -> int:
        return presets.unet_evaluations(self.steps, self.interval, branches)


def settings() -> list[Setting]:
    fast = presets.FAST
    rows = [
        Setting("DDPM 50 (paper)", "ddpm", 50),
        Setting("DDPM 25", "ddpm", 25),
        Setting("DDIM 50", "ddim", 50),
        Setting("DDIM 25", "ddim", 25),
        Setting("DDIM 15", "ddim", 15),
    ]
    for steps in (25, 20, 15, 10):
        rows.append(Setting(f"DPM++ 2M {steps}", "dpm++", steps))
    for steps in (25, 20, 15, 10):
        rows.append(Setting(f"DPM++ 2M Karras {steps}", "dpm++-karras", steps))
    rows += [
        Setting("UniPC 20", "unipc", 20),
        Setting("UniPC 10", "unipc", 10),
        Setting("Euler 25", "euler", 25),
        Setting("Euler 15", "euler", 15),
        # guidance on part of the trajectory only (the other steps: the conditioned branch alone)
        Setting("DDPM 50, guided 0-60%", "ddpm", 50, (0.0, 0.6)),
        Setting("DDPM 50, guided 20-100%", "ddpm", 50, (0.2, 1.0)),
        Setting("DDPM 50, no guidance", "ddpm", 50, (0.0, 0.0)),
        Setting("DPM++ 2M 20, guided 0-60%", "dpm++", 20, (0.0, 0.6)),
        Setting("DPM++ 2M 20, guided 0-40%", "dpm++", 20, (0.0, 0.4)),
        Setting("DPM++ 2M 15, guided 0-60%", "dpm++", 15, (0.0, 0.6)),
        Setting("DPM++ 2M 20, guided 20-100%", "dpm++", 20, (0.2, 1.0)),
        Setting("DPM++ 2M Karras 20, guided 0-60%", "dpm++-karras", 20, (0.0, 0.6)),
        Setting("DPM++ 2M Karras 15, guided 0-60%", "dpm++-karras", 15, (0.0, 0.6)),
        Setting("UniPC 15, guided 0-60%", "unipc", 15, (0.0, 0.6)),
    ]
    fast_interval = None if fast.guidance_interval == (0.0, 1.0) else fast.guidance_interval
    for i, row in enumerate(rows):
        if (row.scheduler, row.steps, row.interval) == (fast.scheduler, fast.num_inference_steps, fast_interval):
            rows[i] = Setting(row.name + " *", row.scheduler, row.steps, row.interval)
            break
    else:
        rows.append(Setting(f"fast preset ({fast.scheduler} {fast.num_inference_steps}) *", fast.scheduler,
                            fast.num_inference_steps, fast_interval))
    return rows


class UNetCounter:
    """Counts UNet forward calls and the batch entries (branch evaluations) they process."""

    def __init__(self, unet):
        self.calls = self.entries = 0
        unet.register_forward_pre_hook(self._hook)

    def _hook(self, module, args):
        self.calls += 1
        self.entries += int(args[0].shape[0])

    def reset(self):
        self.calls = self.entries = 0


def ssim_psnr(predicted: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """Mean SSIM and PSNR of uint8 images, as ``benchmarks/train_synthetic.py`` and ``cfld demo`` measure them."""
    result = pixel_metrics(target, predicted)
    return result["ssim"].mean().item(), result["psnr"].mean().item()


def run_setting(pipe, sources, poses, setting: Setting, seed: int, batch_size: int):
    return pipe(sources, poses, paired=True, num_inference_steps=setting.steps, scheduler=setting.scheduler,
                guidance_interval=setting.interval, generator=torch.Generator().manual_seed(seed),
                output_type="pt", output_size=None, batch_size=batch_size, progress=False).images


@torch.no_grad()
def demo_table(args, rows: list[Setting]) -> tuple[dict[str, dict], str]:
    from cfld.model_names import demo_model_dir

    pipe = CFLDPipeline.from_pretrained(demo_model_dir())
    config = pipe.model.config
    poses = str(SHARED_POSES) if SHARED_POSES.is_file() else None
    pairs = HeldOutPairs.draw(args.pairs, config, poses)
    items = pairs.items
    sources, target_poses = pairs.conditions
    truth = quantise(pairs.truth)
    counter = UNetCounter(pipe.unet)
    run_setting(pipe, sources, target_poses, Setting("warm-up", "ddpm", 2), 0, args.batch)  # allocator, caches

    def timed(row: Setting, seed: int):
        counter.reset()
        start = time.perf_counter()
        images = quantise(run_setting(pipe, sources, target_poses, row, seed, args.batch))
        return images, time.perf_counter() - start, counter.entries / len(items)

    results: dict[str, dict] = {}
    reference = None
    for row in rows:
        images, seconds, evaluations = timed(row, args.seed)
        result = {"times": [seconds], "evaluations": evaluations, "gt": ssim_psnr(images, truth)}
        if reference is None:
            reference = images
            other = quantise(run_setting(pipe, sources, target_poses, row, args.seed + 1, args.batch))
            results["DDPM 50 (other seed)"] = {"seconds": float("nan"), "evaluations": float("nan"),
                                               "gt": ssim_psnr(other, truth), "paper": ssim_psnr(other, reference)}
        result["paper"] = (1.0, float("inf")) if images is reference else ssim_psnr(images, reference)
        results[row.name] = result
        print(f"  {row.name:<32} {evaluations:5.0f} evals  {seconds / len(items) * 1000:7.1f} ms/img  "
              f"SSIM {result['gt'][0]:.4f}  PSNR {result['gt'][1]:.2f}", file=sys.stderr, flush=True)
    # more timing passes over all settings in turn: a slow spell of the machine then hurts every setting alike,
    # and each keeps its fastest run
    for _ in range(args.repeats - 1):
        for row in rows:
            results[row.name]["times"].append(timed(row, args.seed)[1])
    for row in rows:
        results[row.name]["seconds"] = min(results[row.name]["times"]) / len(items)
    where = "../shared DeepFashion test keypoints (held-out rows)" if poses else "the bundled pose gallery"
    return results, (f"{len(items)} held-out synthetic persons at {config.image_size[0]}x{config.image_size[1]}, "
                     f"poses from {where}")


@torch.no_grad()
def sd15_timings(args, rows: list[Setting]) -> tuple[dict[str, float], str]:
    from cfld.pose import gallery

    pipe = random_pipeline("sd15")
    table = gallery()
    pose = [table[table.names[0]]]

    start = time.perf_counter()
    encoding = pipe.encode_source(PHOTO)
    pipe.model.pose_adapter(pipe.pose_images(pose))
    encode = time.perf_counter() - start
    latents = pipe(encoding, pose, num_inference_steps=1, output_type="latent", progress=False).images
    start = time.perf_counter()
    pipe.decode_latents(latents)
    decode = time.perf_counter() - start

    def step_time(scheduler: str, steps: int, interval) -> float:
        """The fastest of the first steps after the first (which also holds the call's set-up)."""
        _, times = first_steps(pipe, encoding, pose, args.sd15_steps + 1, num_inference_steps=steps,
                               scheduler=scheduler, guidance_interval=interval,
                               generator=torch.Generator().manual_seed(0))
        return float(times[1:].min())

    unguided = step_time("ddpm", 50, (0.0, 0.0))
    guided = {}
    for row in rows:
        if row.scheduler not in guided:
            guided[row.scheduler] = step_time(row.scheduler, row.steps, None)
            print(f"  sd15 {row.scheduler}: guided step {guided[row.scheduler]:.2f} s", file=sys.stderr, flush=True)
    # a scheduler's own arithmetic is milliseconds against seconds of UNet: the guided steps of the schedulers differ
    # only by the machine's noise, so every setting is projected with their median (each is printed)
    step = float(np.median(list(guided.values())))
    seconds = {}
    for row in rows:
        steps_guided = sum(presets.guided_steps(row.steps, row.interval))
        seconds[row.name] = encode + decode + steps_guided * step + (row.steps - steps_guided) * unguided
    measured = ", ".join(f"{name} {t:.2f}" for name, t in guided.items())
    note = (f"sd15 (random weights, 512x512): guided step (2 branches) {step:.2f} s (median of {measured}), "
            f"unguided step (1 branch) {unguided:.2f} s, source encoding + pose adapter {encode:.2f} s, "
            f"VAE decode {decode:.2f} s; s/img = encoding + decode + steps x step time")
    return seconds, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=48, help="held-out persons (default 48)")
    parser.add_argument("--batch", type=int, default=16, help="pairs per UNet batch on the demo model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3,
                        help="timing passes over all settings on the demo model (each keeps its fastest)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-sd15", action="store_true", help="skip the sd15 timings")
    parser.add_argument("--sd15-steps", type=int, default=2, help="steps timed per scheduler on sd15")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (the README's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = settings()

    print("demo model:", file=sys.stderr)
    results, data_note = demo_table(args, rows)
    sd15, sd15_note = ({}, "sd15: not measured (--no-sd15)") if args.no_sd15 else sd15_timings(args, rows)

    paper = results[rows[0].name]
    head = ["setting", "UNet evals/img", "speed-up (evals)", "demo ms/img", "speed-up (demo wall)", "sd15 s/img",
            "speed-up (sd15)", "SSIM vs GT", "PSNR vs GT", "ΔSSIM", "ΔPSNR", "SSIM vs DDPM-50", "PSNR vs DDPM-50"]
    lines = []
    names = [rows[0].name, "DDPM 50 (other seed)"] + [r.name for r in rows[1:]]
    for name in names:
        r = results[name]
        timed = name != "DDPM 50 (other seed)"
        cells = [name,
                 f"{r['evaluations']:.0f}" if timed else "",
                 f"{paper['evaluations'] / r['evaluations']:.2f}x" if timed else "",
                 f"{r['seconds'] * 1000:.1f}" if timed else "",
                 f"{paper['seconds'] / r['seconds']:.2f}x" if timed else "",
                 f"{sd15[name]:.1f}" if timed and name in sd15 else "",
                 f"{sd15[rows[0].name] / sd15[name]:.2f}x" if timed and name in sd15 else "",
                 f"{r['gt'][0]:.4f}", f"{r['gt'][1]:.2f}",
                 f"{r['gt'][0] - paper['gt'][0]:+.4f}", f"{r['gt'][1] - paper['gt'][1]:+.2f}",
                 "1" if name == rows[0].name else f"{r['paper'][0]:.4f}",
                 "inf" if name == rows[0].name else f"{r['paper'][1]:.2f}"]
        lines.append(cells)
    print(f"\n{data_note}; DDPM-type noise and z_T from seed {args.seed}; w_pose = w_app = 2; {args.threads} threads")
    print(sd15_note)
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for cells in lines:
            print("| " + " | ".join(cells) + " |")
    else:
        widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]
        print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
        for cells in lines:
            print("  ".join(c.ljust(w) for c, w in zip(cells, widths)))
    ok = [n for n in names[2:] if results[n]["evaluations"] * 3 <= paper["evaluations"]
          and results[n]["seconds"] * 3 <= paper["seconds"] and (not sd15 or sd15[n] * 3 <= sd15[rows[0].name])
          and abs(results[n]["gt"][0] - paper["gt"][0]) <= 0.01 and abs(results[n]["gt"][1] - paper["gt"][1]) <= 0.3]
    print(f"\nsettings >= 3x cheaper than DDPM 50 (UNet evaluations, demo wall time{', sd15 time' if sd15 else ''}) "
          f"within 0.01 SSIM and 0.3 dB PSNR of it against the ground truth: {', '.join(ok) if ok else 'none'}")
    print(f"fast preset (cfld.presets.FAST): {presets.FAST}")


if __name__ == "__main__":
    main()

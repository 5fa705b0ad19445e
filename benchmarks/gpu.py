"""Sampling speed and memory on a GPU: ours vs the original-style loop, fp16 and bf16, batch 1/8/32, the paper's
setting and the fast one, and the 8,570-pair DeepFashion test split projected from them. One command:

    make setup && .venv/bin/python benchmarks/gpu.py            # ~5 min on one recent GPU

Without CUDA it says so and exits 0 (this project's CI has no GPU). ``--device cpu --preset tiny`` runs the
same code on a tiny random model, as the tests do, to check the script itself.

Model: the random-weight ``sd15`` model (the paper's sizes: Swin-B, SD 1.5 UNet and VAE, 512x512 images = 64x64
latents); weights do not change the speed. Per image: source encoding, pose adapter, every sampling step and
the VAE decode, at ``batch`` pairs per call. Rows:

* ``original-style``: what the original's ``sample()`` does, DDPM 50 steps with three UNet branches per step
  ([(∅,∅), (∅,pose), (src,pose)], Eq. 7);
* ``ours (paper)``: :class:`cfld.CFLDPipeline`, DDPM 50 steps, the two branches Eq. 7 needs when w_pose = w_app;
* ``ours (fast)``: ``fast=True`` (:data:`cfld.presets.FAST`).

Each is timed after a warm-up run (cuDNN autotuning, allocator), best of ``--repeats``, synchronised.

``--offload``: the small-GPU recipes of docs/python.md instead: one image (fp16, DDPM ``--steps``, batch 1) with no
offload, ``enable_model_cpu_offload()`` and ``enable_sequential_cpu_offload()``, each in a fresh pipeline: peak CUDA
memory (what the GPU needs) and seconds per image, and how far each image is from the plain pipeline's:

    .venv/bin/python benchmarks/gpu.py --offload         # ~3 min on one recent GPU

``--train``: a full-size training step instead (benchmarks/train_cost.py's, under autocast), at 8 and 28 pairs per
GPU, fp16 and bf16, with the levers off (the original's setting: fp32 frozen weights, UNet checkpointing only, the
VAE at every step) and on (the recipe default: frozen weights in 16 bits, condition checkpointing, the latent
cache), and on + ``adam8bit`` where bitsandbytes is installed: peak CUDA memory and seconds per step, one call:

    .venv/bin/python benchmarks/gpu.py --train           # ~5 min on one recent GPU
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from cfld import presets
from common import PHOTO, original_style_loop, random_pipeline

SPLIT_PAIRS = 8570  # DeepFashion's test pairs (the paper's Table 2)


@torch.no_grad()
def original_style(pipe, pixels, pose_maps, z_t, steps: int = 50) -> torch.Tensor:
    """The original's whole sampling of a batch: source encoding, the three-branch loop, the VAE decode."""
    return pipe.decode_latents(original_style_loop(pipe, pipe.encode_source(pixels), pose_maps, z_t, steps))


def measure(fn, device: torch.device, repeats: int) -> tuple[float, float | None]:
    """Best wall time of ``fn`` over ``repeats`` runs after one warm-up, and its peak GPU memory in GiB."""
    cuda = device.type == "cuda"
    fn()
    best = float("inf")
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    return best, peak


def train_row(preset: str, device: torch.device, dtype: torch.dtype, pairs: int, levers: str, scheduler,
              repeats: int) -> dict:
    """One training configuration (``levers``: off, on, on+adam8bit): seconds per step, peak memory, the loss."""
    from cfld.training.step import CFLDTrainingModule, adam_class, batch_loss, keep_frozen_in, trainable_parameters
    from train_cost import build, make_batch, make_cache

    on = levers != "off"
    config, model, unet, vae = build(preset, condition=on)
    keep_frozen_in(dtype, vae)  # the original keeps its VAE in 16 bits too
    if on:
        keep_frozen_in(dtype, unet)
    module = CFLDTrainingModule(model, unet, checkpoint_conditions=on).to(device)
    vae.to(device)
    batch = make_batch(config, pairs)
    with tempfile.TemporaryDirectory() as folder:
        cache = make_cache(batch, vae, Path(folder), config.image_size) if on else None
        adam = adam_class("adam8bit" if levers.endswith("adam8bit") else "adam")
        optimizer = adam(trainable_parameters(model, unet), lr=1e-6)
        scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16 and device.type == "cuda")

        def step():  # the trainer's loss of a batch, under autocast as accelerate runs it
            with torch.autocast(device.type, dtype=dtype):
                loss, _, _ = batch_loss(batch, module, vae, scheduler, device=device, cache=cache)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            return float(loss)

        try:
            seconds, peak = measure(step, device, repeats)
            loss = step()
        except torch.cuda.OutOfMemoryError:
            seconds, peak, loss = float("nan"), float("nan"), float("nan")
    return {"seconds_per_step": seconds, "peak_gib": peak, "loss": loss}


def train_rows(args, device: torch.device) -> int:
    """``--train``: see the module docstring."""
    import json

    from cfld.schedulers import SD15_SCHEDULER_CONFIG, make_scheduler

    dtypes = {"fp16": torch.float16, "bf16": torch.bfloat16}
    scheduler = make_scheduler("ddpm", SD15_SCHEDULER_CONFIG)
    settings = ["off", "on"]
    if device.type == "cuda":
        try:
            __import__("bitsandbytes")
            settings.append("on+adam8bit")
        except ImportError:
            print("bitsandbytes is not installed: no adam8bit rows (pip install bitsandbytes)")
    rows = []
    for dtype_name in args.dtypes.split(","):
        for pairs in (int(p) for p in args.pairs.split(",")):
            for levers in settings:
                row = train_row(args.preset, device, dtypes[dtype_name], pairs, levers, scheduler, args.repeats)
                rows.append({"dtype": dtype_name, "pairs": pairs, "levers": levers} | row)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                memory = "" if row["peak_gib"] is None else f"   peak {row['peak_gib']:.2f} GiB"
                print(f"train {dtype_name} {pairs:>3} pairs, levers {levers:<12} "
                      f"{row['seconds_per_step']:8.3f} s/step{memory}", flush=True)
    print(f"\n{'dtype':<6}{'pairs':>6}  {'levers':<13}{'s/step':>9}{'peak GiB':>10}{'memory vs off':>15}")
    for r in rows:
        off = next(o for o in rows if (o["dtype"], o["pairs"], o["levers"]) == (r["dtype"], r["pairs"], "off"))
        ratio = "-" if r["peak_gib"] is None else f"{r['peak_gib'] / off['peak_gib']:.2f}x"
        peak = "-" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
        print(f"{r['dtype']:<6}{r['pairs']:>6}  {r['levers']:<13}{r['seconds_per_step']:>9.2f}{peak:>10}{ratio:>15}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


def offload_rows(args, device: torch.device) -> int:
    """Peak GPU memory and s/image of one paper-size image: plain, model offload, sequential offload (see above)."""
    from cfld.pose import gallery

    table = gallery()
    pose = table[table.names[0]]
    rows, plain = [], None
    for mode in ("none", "model", "sequential"):
        torch.manual_seed(0)
        pipe = random_pipeline(args.preset).to(dtype=torch.float16)
        if mode == "none":
            pipe.to(device)
        elif mode == "model":
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.enable_sequential_cpu_offload(device=device)
        run = lambda pipe=pipe: pipe(PHOTO, pose, num_inference_steps=args.steps, frame=False, output_type="pt",  # noqa: E731
                           generator=torch.Generator().manual_seed(0), progress=False).images.float().cpu()
        torch.cuda.empty_cache()
        seconds, peak = measure(run, device, args.repeats)
        image = run()
        plain = image if plain is None else plain
        rows.append((mode, seconds, peak, (image - plain).abs().max().item()))
        print(f"offload {mode:<10} {seconds:8.2f} s/image   peak {peak:.2f} GiB", flush=True)
        pipe = run = None  # the next mode starts from an empty GPU
    print(f"\n{args.preset}, fp16, DDPM {args.steps} steps, one image at 256x176 (generated at 512x512)")
    print(f"{'offload':<12}{'s/image':>9}{'vs none':>9}{'peak GiB':>10}{'vs none':>9}{'max |image - none|':>20}")
    for mode, seconds, peak, diff in rows:
        print(f"{mode:<12}{seconds:>9.2f}{seconds / rows[0][1]:>8.2f}x"
              f"{peak:>10.2f}{peak / rows[0][2]:>8.2f}x{diff:>20.2e}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--preset", default="sd15", choices=["sd15", "tiny"])
    parser.add_argument("--batches", default="1,8,32", help="pairs per call, comma-separated")
    parser.add_argument("--dtypes", default="fp16,bf16")
    parser.add_argument("--steps", type=int, default=50, help="the paper's DDPM steps (fewer: a quicker, rougher run)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--train", action="store_true", help="a training step instead of sampling (see above)")
    parser.add_argument("--pairs", default="8,28", help="--train: pairs per GPU, comma-separated")
    parser.add_argument("--json", type=Path, default=None, help="--train: also write the rows here")
    parser.add_argument("--offload", action="store_true", help="no offload, model and sequential offload (see above)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device on this machine; nothing measured (run it where a GPU is).")
        return 0
    if args.train:
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True  # as the training recipe (allow_tf32)
            print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, {args.preset} (random weights)")
        return train_rows(args, device)
    if args.offload:
        if device.type != "cuda":
            print("benchmarks/gpu.py --offload: offload moves weights between the CPU and a GPU; give a CUDA device")
            return 0
        torch.backends.cuda.matmul.allow_tf32 = False
        print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, {args.preset} (random weights)")
        return offload_rows(args, device)
    dtypes = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
    pipe = random_pipeline(args.preset).to(device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # the same arithmetic as the CPU runs, no silent TF32
        print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, {args.preset} (random weights)")
    from cfld.images import load_image, to_model_input
    from cfld.pose import gallery

    table = gallery()
    pose_maps = pipe.pose_images([table[table.names[0]]])
    pixels = to_model_input(load_image(PHOTO), pipe.model.config.cond_size).unsqueeze(0)
    fast = presets.FAST
    rows = []
    for dtype_name in args.dtypes.split(","):
        pipe.to(dtype=dtypes[dtype_name])
        for batch in (int(b) for b in args.batches.split(",")):
            source = pixels.expand(batch, -1, -1, -1).to(device)
            poses = pose_maps.expand(batch, -1, -1, -1).to(device)
            z_t = torch.randn((batch, 4, *pipe.latent_size), generator=torch.Generator().manual_seed(0)).to(device)
            runs = {
                "original-style": lambda source=source, poses=poses, z_t=z_t: original_style(
                    pipe, source, poses, z_t, args.steps),
                "ours (paper)": lambda source=source, poses=poses, z_t=z_t, batch=batch: pipe(
                    source, poses, paired=True, latents=z_t, num_inference_steps=args.steps, batch_size=batch,
                    output_type="pt", output_size=None, progress=False),
                "ours (fast)": lambda source=source, poses=poses, z_t=z_t, batch=batch: pipe(
                    source, poses, paired=True, latents=z_t, fast=True, batch_size=batch, output_type="pt",
                    output_size=None, progress=False),
            }
            for name, fn in runs.items():
                try:
                    seconds, peak = measure(fn, device, args.repeats)
                except torch.cuda.OutOfMemoryError:
                    seconds, peak = float("nan"), float("nan")
                    torch.cuda.empty_cache()
                rows.append((dtype_name, batch, name, seconds / batch, peak))
                memory = "" if peak is None else f"   peak {peak:.2f} GiB"
                print(f"{dtype_name} batch {batch:>3} {name:<15} {seconds / batch:8.3f} s/image{memory}", flush=True)

    print(f"\nDDPM {args.steps} steps for the paper rows; fast = {fast.scheduler} {fast.num_inference_steps} steps")
    print(f"{'dtype':<6}{'batch':>6}  {'sampler':<16}{'s/image':>9}{'vs original':>13}{'peak GiB':>10}"
          f"{'test split (h)':>16}")
    for dtype_name, batch, name, per_image, peak in rows:
        base = next(r[3] for r in rows if r[:2] == (dtype_name, batch) and r[2] == "original-style")
        peak_text = "-" if peak is None else f"{peak:.2f}"
        print(f"{dtype_name:<6}{batch:>6}  {name:<16}{per_image:>9.3f}{base / per_image:>12.2f}x{peak_text:>10}"
              f"{per_image * SPLIT_PAIRS / 3600:>16.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

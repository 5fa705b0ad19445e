"""What one full-size CFLD training step costs, lever by lever: memory and seconds on this CPU, and the exact fixed
bytes per GPU with a projection to the paper's batch. One command:

    python benchmarks/train_cost.py                 # ~30 min on 2 CPU cores (each row a fresh process)
    python benchmarks/train_cost.py --fixed-only    # the exact bytes per GPU alone (seconds)

The step: SD 1.5's UNet and VAE and Swin-B with random weights, built without downloads (weights do not change the
cost), 512x512 images (64x64 latents), the doubled batch (source->source and source->target), Adam, fp32, 2 threads,
through the trainer's own pieces (:mod:`cfld.training.step`). Each row runs in a process of its own; the
high-water mark of its resident memory is reset (``/proc/self/clear_refs``) just before the first step, after the
models, the optimizer and the batch are built, and read after the last. The last step is timed by phase: VAE
(encoding, or reading the latent cache), forward (to the loss), backward, optimizer (Adam's step).

Rows (``--rows``): ``off`` is the original's setting (UNet checkpointing only, the VAE at every step); each
lever is then added: ``+condition`` (``condition_checkpointing``), ``+cache`` (``cache_latents``: the recipe
default on prepared data), and ``ddp``/``ddp-copy``: the default in a one-process gloo DDP with and without
``gradient_as_bucket_view``. ``unet-off``: no checkpointing at all (not run unless asked). The GPU levers
(``cast_frozen_weights``, whose fp32 originals stay in host memory for saving, and ``adam8bit``) change bytes on
the GPU only: they are counted exactly below, and ``benchmarks/gpu.py --train`` measures them.

The fixed bytes per GPU (weights, gradients, Adam's state, DDP buckets) are computed from the parameter counts and
dtypes; activations per pair come from the measured rows, so the projection to 28 pairs per GPU (the paper) and
to 8 pairs with gradient accumulation is fixed bytes + measured activations (fp32: an upper bound under autocast).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

GIB = 2**30
# the original's figures, measured on this CPU with its own pose_transfer_train.py pieces (issue 21)
ORIGINAL = {"peak_gib": {1: 10.17, 2: 13.35}, "step_s": {1: 57.3, 2: 102.3}, "fixed_gb": 7.5,
            "gpu_gb_28_pairs_fp16": 46.6}  # the last: the figure issue 21 gives for the paper's 8-GPU run
ROWS = {
    "off": dict(condition=False, cache=False),
    "+condition": dict(condition=True, cache=False),
    "+cache": dict(condition=True, cache=True),
    "ddp": dict(condition=True, cache=True, ddp=True, bucket_view=True),
    "ddp-copy": dict(condition=True, cache=True, ddp=True, bucket_view=False),
    "unet-off": dict(condition=False, cache=False, unet=False),
}
DEFAULT_ROWS = {"off": (1, 2), "+condition": (1, 2), "+cache": (1, 2), "ddp": (1,), "ddp-copy": (1,)}


# -- the models and a batch ------------------------------------------------------------------------------------------


def build(preset: str, condition: bool, unet_checkpointing: bool = True, seed: int = 0):
    """The condition model, UNet (``trainable: paper``) and VAE of ``preset`` with random weights, as
    :func:`cfld.training.step.build_models` builds them for a run without pretrained weights."""
    from diffusers import AutoencoderKL

    from cfld.checkpoint import SD15_VAE_CONFIG
    from cfld.models.config import CFLDConfig
    from cfld.training.step import build_models

    torch.manual_seed(seed)
    config = CFLDConfig.preset(preset)
    recipe = SimpleNamespace(init_checkpoint=None, unet=None, swin=None, trainable="paper",
                             gradient_checkpointing=unet_checkpointing, condition_checkpointing=condition)
    model, unet = build_models(recipe, config)
    vae_config = SD15_VAE_CONFIG if preset == "sd15" else dict(
        block_out_channels=(8, 8, 8, 8), norm_num_groups=8, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    vae = AutoencoderKL(**vae_config).eval().requires_grad_(False)
    return config, model, unet, vae


def make_batch(config, pairs: int, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "img_src": torch.rand(pairs, 3, *config.image_size, generator=g) * 2 - 1,
        "img_tgt": torch.rand(pairs, 3, *config.image_size, generator=g) * 2 - 1,
        "img_cond": torch.rand(pairs, 3, *config.cond_size, generator=g) * 2 - 1,
        "pose_img_src": torch.rand(pairs, config.pose_channels, *config.pose_size, generator=g),
        "pose_img_tgt": torch.rand(pairs, config.pose_channels, *config.pose_size, generator=g),
        "name_src": [f"src-{i}" for i in range(pairs)], "name_tgt": [f"tgt-{i}" for i in range(pairs)],
    }


def make_cache(batch: dict, vae, folder: Path, image_size):
    """A latent cache of the batch's photos, as :func:`cfld.training.latent_cache.build_latent_cache` writes one
    (the shards' layout; encoded here once, outside the timed steps)."""
    from safetensors.torch import save_file

    from cfld.training.latent_cache import Expected, LatentCache, latent_shape

    names = list(batch["name_src"]) + list(batch["name_tgt"])
    first = [names.index(name) for name in dict.fromkeys(names)]  # each photo once, as the cache holds them
    weight = next(vae.parameters())
    with torch.no_grad():
        images = torch.cat([batch["img_src"], batch["img_tgt"]])[first]
        posterior = vae.encode(images.to(weight.device, weight.dtype)).latent_dist
    mean, std = posterior.mean.float().cpu().contiguous(), posterior.std.float().cpu().contiguous()
    expected = Expected("benchmark", image_size, latent_shape(vae, image_size),
                        {names[i]: "not hashed here" for i in first}, len(first))
    metadata = expected.metadata(0, mean, std)
    save_file({"mean": mean, "std": std}, str(folder / "shard-00000.safetensors"), metadata=metadata)
    return LatentCache(folder, expected, [metadata["sha256"]])


# -- one row: a fresh process ----------------------------------------------------------------------------------------


def rss_peak_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / GIB
    return float("nan")


def rss_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / GIB
    return float("nan")


def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def timed_step(module, vae, scheduler, optimizer, batch, cache, device) -> tuple[dict, dict]:
    """One training step; the wall and CPU seconds of each phase (VAE, forward, backward, optimizer)."""
    from cfld.training.step import encode_latents, optimizer_step

    sync = (lambda: torch.cuda.synchronize(device)) if torch.device(device).type == "cuda" else (lambda: None)
    marks = [(time.perf_counter(), time.process_time())]

    def mark():
        sync()
        marks.append((time.perf_counter(), time.process_time()))

    latents = encode_latents(batch, vae, device, cache)
    mark()
    noise = torch.randn_like(latents)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],), device=device)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    pose = torch.cat([batch["pose_img_src"], batch["pose_img_tgt"]]).to(device)
    prediction = module(batch["img_cond"].to(device), pose, noisy, timesteps)
    loss = (prediction.float() - noise).pow(2).mean()
    mark()
    loss.backward()
    mark()
    optimizer_step(optimizer, SimpleNamespace(step=lambda: None))
    mark()
    phases = ("vae", "forward", "backward", "optimizer")
    return tuple({k: b[i] - a[i] for k, a, b in zip(phases, marks, marks[1:])} for i in (0, 1))


def run_row(preset: str, pairs: int, steps: int, threads: int, condition: bool, cache: bool, ddp: bool = False,
            bucket_view: bool = True, unet: bool = True) -> dict:
    """Measure one configuration in this process (see the module docstring)."""
    from cfld.schedulers import SD15_SCHEDULER_CONFIG, make_scheduler
    from cfld.training.step import CFLDTrainingModule, trainable_parameters

    torch.set_num_threads(threads)
    config, model, unet_model, vae = build(preset, condition, unet)
    module = CFLDTrainingModule(model, unet_model, checkpoint_conditions=condition)
    if ddp:
        import torch.distributed as dist

        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
        dist.init_process_group("gloo", rank=0, world_size=1)
        module = torch.nn.parallel.DistributedDataParallel(module, gradient_as_bucket_view=bucket_view)
    optimizer = torch.optim.Adam(trainable_parameters(model, unet_model), lr=1e-6)
    scheduler = make_scheduler("ddpm", SD15_SCHEDULER_CONFIG)
    batch = make_batch(config, pairs)
    with tempfile.TemporaryDirectory() as folder:
        latent_cache = make_cache(batch, vae, Path(folder), config.image_size) if cache else None
        before = rss_gib()
        reset = reset_peak()
        wall, cpu = [], []
        for _ in range(steps):
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            wall_phases, cpu_phases = timed_step(module, vae, scheduler, optimizer, batch, latent_cache, "cpu")
            wall.append(wall_phases | {"step": time.perf_counter() - start_wall})
            cpu.append(cpu_phases | {"step": time.process_time() - start_cpu})
        peak = rss_peak_gib()
    trainable = sum(p.numel() for p in trainable_parameters(model, unet_model))
    return {"pairs": pairs, "before_gib": before, "peak_gib": peak, "peak_reset": reset, "wall": wall[-1],
            "cpu": cpu[-1], "cpu_step": cpu[-1]["step"], "first_step_wall": wall[0]["step"], "trainable": trainable}


# -- exact fixed bytes per GPU ---------------------------------------------------------------------------------------


def parameter_table(preset: str = "sd15") -> dict[str, list[tuple[int, bool]]]:
    """(numel, trainable) of every parameter of the condition model, UNet and VAE, built on the meta device."""
    from diffusers import AutoencoderKL

    from cfld.checkpoint import SD15_VAE_CONFIG
    from cfld.models.cfld import CFLDModel, build_unet
    from cfld.models.config import CFLDConfig
    from cfld.training.step import set_trainable

    config = CFLDConfig.preset(preset)
    with torch.device("meta"):
        model, unet, vae = CFLDModel.from_config(config), build_unet(config), AutoencoderKL(**SD15_VAE_CONFIG)
    set_trainable(model, unet, "paper")
    return {"condition model": [(p.numel(), p.requires_grad) for p in model.parameters()],
            "unet": [(p.numel(), p.requires_grad) for p in unet.parameters()],
            "vae": [(p.numel(), False) for p in vae.parameters()]}


def adam8bit_bytes(numel: int, block: int = 256, min_size: int = 4096) -> int:
    """bitsandbytes' blockwise Adam8bit state of one tensor: two uint8 moments, a float32 absmax per block of each
    and their two 256-entry float32 code maps; tensors under ``min_size`` keep two fp32 moments."""
    if numel < min_size:
        return 8 * numel
    return 2 * numel + 2 * 4 * -(-numel // block) + 2 * 256 * 4


def fixed_bytes(table, frozen_bytes: int, bucket_view: bool, adam8bit: bool) -> dict[str, int]:
    """Weights (trainable fp32; frozen at ``frozen_bytes`` each, the VAE in 16 bits as the original keeps it on a
    GPU under mixed precision), gradients (fp32), Adam's state and DDP's buckets (a second copy of the gradients
    unless they are views of the buckets)."""
    trainable = [n for part in table.values() for n, t in part if t]
    frozen = sum(n for name in ("condition model", "unet") for n, t in table[name] if not t)
    vae = sum(n for n, _ in table["vae"])
    return {
        "weights": 4 * sum(trainable) + frozen_bytes * frozen + 2 * vae,
        "gradients": 4 * sum(trainable),
        "optimizer": sum(adam8bit_bytes(n) for n in trainable) if adam8bit else 8 * sum(trainable),
        "ddp buckets": 0 if bucket_view else 4 * sum(trainable),
    }


FIXED_ROWS = {
    "original (fp32 weights, bucket view)": dict(frozen_bytes=4, bucket_view=True, adam8bit=False),
    "ours before (fp32 weights, no bucket view)": dict(frozen_bytes=4, bucket_view=False, adam8bit=False),
    "ours default (frozen in 16 bits, bucket view)": dict(frozen_bytes=2, bucket_view=True, adam8bit=False),
    "ours default + adam8bit": dict(frozen_bytes=2, bucket_view=True, adam8bit=True),
}


def print_fixed(table) -> dict[str, int]:
    counts = {name: (sum(n for n, _ in part), sum(n for n, t in part if t)) for name, part in table.items()}
    total, trainable = sum(a for a, _ in counts.values()), sum(b for _, b in counts.values())
    print(f"parameters: {total:,} ({trainable:,} trainable, {100 * trainable / total:.1f}%): "
          + ", ".join(f"{k} {a:,}/{b:,}" for k, (a, b) in counts.items()))
    print("\nfixed bytes per GPU under fp16/bf16 (exact, from the parameter counts and dtypes), GB = 1e9 bytes")
    print("| setting | weights | gradients | Adam state | DDP buckets | total | vs original |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    totals = {}
    for name, options in FIXED_ROWS.items():
        parts = fixed_bytes(table, **options)
        totals[name] = sum(parts.values())
    base = totals["original (fp32 weights, bucket view)"]
    for name, options in FIXED_ROWS.items():
        parts = fixed_bytes(table, **options)
        print(f"| {name} | " + " | ".join(f"{v / 1e9:.2f}" for v in parts.values())
              + f" | {totals[name] / 1e9:.2f} | {totals[name] / base:.2f}x |")
    return totals


# -- the driver ------------------------------------------------------------------------------------------------------


def measure_rows(rows: dict[str, tuple[int, ...]], preset: str, steps: int, threads: int) -> dict:
    results = {}
    for row, pair_counts in rows.items():
        for pairs in pair_counts:
            command = [sys.executable, __file__, "--one", json.dumps({"row": row, "pairs": pairs}), "--preset", preset,
                       "--steps", str(steps), "--threads", str(threads)]
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{row} at {pairs} pair(s) failed:\n{done.stderr[-2000:]}")
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            results[(row, pairs)] = result
            w = result["wall"]
            print(f"  {row:11s} {pairs} pair(s): peak {result['peak_gib']:.2f} GiB (before the step "
                  f"{result['before_gib']:.2f}), step {w['step']:.1f} s wall / {result['cpu_step']:.1f} s CPU "
                  f"(VAE {w['vae']:.1f}, forward {w['forward']:.1f}, backward {w['backward']:.1f}, optimizer "
                  f"{w['optimizer']:.1f}); {time.perf_counter() - start:.0f} s in all", flush=True)
    return results


def report(results: dict, table, totals: dict) -> None:
    print("\n| row | pairs | peak GiB | rise per pair GiB | wall s/step | CPU s/step | wall (CPU) s: VAE | forward | "
          "backward | optimizer |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (row, pairs), r in results.items():
        rise = ""
        if pairs == 2 and (row, 1) in results:
            rise = f"{r['peak_gib'] - results[(row, 1)]['peak_gib']:.2f}"
        w, c = r["wall"], r.get("cpu", {})
        split = " | ".join(f"{w[k]:.1f} ({c[k]:.1f})" if k in c else f"{w[k]:.1f}"
                           for k in ("vae", "forward", "backward", "optimizer"))
        print(f"| {row} | {pairs} | {r['peak_gib']:.2f} | {rise} | {w['step']:.1f} | {r['cpu_step']:.1f} | {split} |")
    print("\nagainst the original (its figures measured on this CPU, issue 21) and our levers-off row of this run:")
    original_rise = ORIGINAL["peak_gib"][2] - ORIGINAL["peak_gib"][1]
    for row in ("+condition", "+cache"):
        if (row, 1) in results and (row, 2) in results:
            rise = results[(row, 2)]["peak_gib"] - results[(row, 1)]["peak_gib"]
            print(f"  {row}: memory rise per pair {rise:.2f} GiB = {rise / original_rise:.2f}x the original's "
                  f"{original_rise:.2f} (target <= 0.8x)", end="")
            if ("off", 1) in results and ("off", 2) in results:
                off = results[("off", 2)]["peak_gib"] - results[("off", 1)]["peak_gib"]
                print(f"; {rise / off:.2f}x our levers-off {off:.2f}", end="")
            print()
    for pairs in (1, 2):
        if ("+cache", pairs) in results:
            step = results[("+cache", pairs)]["wall"]["step"]
            line = (f"  +cache, {pairs} pair(s): {step:.1f} s/step = {step / ORIGINAL['step_s'][pairs]:.2f}x the "
                    f"original's {ORIGINAL['step_s'][pairs]} (target <= 0.85x)")
            if ("off", pairs) in results:
                line += f"; {step / results[('off', pairs)]['wall']['step']:.2f}x our levers-off"
            print(line)
    if ("ddp", 1) in results and ("ddp-copy", 1) in results:
        saved = results[("ddp-copy", 1)]["peak_gib"] - results[("ddp", 1)]["peak_gib"]
        trainable = results[("ddp", 1)]["trainable"]
        print(f"  DDP gradient_as_bucket_view: {saved:.2f} GiB less peak at 1 pair (a copy of the gradients is "
              f"{4 * trainable / GIB:.2f} GiB)")
    # the projection: fixed bytes (exact) + activations per pair (measured, fp32)
    best = "+cache" if ("+cache", 2) in results else "+condition" if ("+condition", 2) in results else None
    if best is None or ("off", 2) not in results:
        return
    print("\nprojected peak per GPU = fixed bytes (exact) + activations (measured here in fp32: an upper bound "
          "under autocast), GB")
    print("| setting | fixed | activations 1 pair | per pair | 8 pairs (+ accumulation) | 28 pairs (the paper) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, row, fixed_name in (("original-like (levers off)", "off", "original (fp32 weights, bucket view)"),
                                   ("ours default", best, "ours default (frozen in 16 bits, bucket view)"),
                                   ("ours default + adam8bit", best, "ours default + adam8bit")):
        one, two = results[(row, 1)], results[(row, 2)]
        dynamic_fixed = 12 * one["trainable"] / GIB  # gradients and Adam's moments appear during the steps
        act1 = (one["peak_gib"] - one["before_gib"] - dynamic_fixed) * GIB / 1e9
        per_pair = (two["peak_gib"] - one["peak_gib"]) * GIB / 1e9
        fixed = totals[fixed_name] / 1e9
        print(f"| {label} | {fixed:.2f} | {act1:.2f} | {per_pair:.2f} | {fixed + act1 + 7 * per_pair:.1f} | "
              f"{fixed + act1 + 27 * per_pair:.1f} |")
    # calibrated: the original's own GPU figure gives its activations per pair under fp16; ours scale by the ratio
    # of the per-pair rises measured here
    gpu_pair = (ORIGINAL["gpu_gb_28_pairs_fp16"] - totals["original (fp32 weights, bucket view)"] / 1e9) / 28
    ratio = ((results[(best, 2)]["peak_gib"] - results[(best, 1)]["peak_gib"])
             / (results[("off", 2)]["peak_gib"] - results[("off", 1)]["peak_gib"]))
    print(f"\ncalibrated on the original's {ORIGINAL['gpu_gb_28_pairs_fp16']} GB per GPU at 28 pairs (fp16): "
          f"{gpu_pair:.2f} GB a pair there, ours x{ratio:.2f}; GB")
    print("| setting | 8 pairs | 28 pairs |")
    print("| --- | --- | --- |")
    for label, fixed_name, scale in (("original's setting", "original (fp32 weights, bucket view)", 1.0),
                                     ("ours default", "ours default (frozen in 16 bits, bucket view)", ratio),
                                     ("ours default + adam8bit", "ours default + adam8bit", ratio)):
        fixed = totals[fixed_name] / 1e9
        print(f"| {label} | {fixed + 8 * gpu_pair * scale:.1f} | {fixed + 28 * gpu_pair * scale:.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="sd15", choices=["sd15", "tiny"])
    parser.add_argument("--rows", default=None, help="ROW:PAIRS[,PAIRS];... (default: " +
                        ";".join(f"{k}:{','.join(map(str, v))}" for k, v in DEFAULT_ROWS.items()) + ")")
    parser.add_argument("--steps", type=int, default=2, help="steps per row; the last one is timed (the first "
                                                             "allocates Adam's state)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fixed-only", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the measurements here")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        spec = json.loads(args.one)
        print(json.dumps(run_row(args.preset, spec["pairs"], args.steps, args.threads, **ROWS[spec["row"]])))
        return 0
    table = parameter_table("sd15")
    totals = print_fixed(table)
    base = totals["original (fp32 weights, bucket view)"]
    print(f"  ours default: {totals['ours default (frozen in 16 bits, bucket view)'] / base:.2f}x and with adam8bit "
          f"{totals['ours default + adam8bit'] / base:.2f}x the original's {base / 1e9:.2f} GB (target <= 0.6x)")
    if args.fixed_only:
        return 0
    rows = DEFAULT_ROWS
    if args.rows:
        rows = {part.split(":")[0]: tuple(int(n) for n in part.split(":")[1].split(","))
                for part in args.rows.split(";")}
    print(f"\nmeasured on this CPU ({args.threads} threads, fp32, {args.preset}, {args.steps} step(s) per row), "
          "each row in a fresh process:", flush=True)
    results = measure_rows(rows, args.preset, args.steps, args.threads)
    report(results, table, totals)
    if args.json:
        args.json.write_text(json.dumps({f"{row}@{pairs}": r for (row, pairs), r in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

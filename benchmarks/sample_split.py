"""Pairs per second of `cfld sample` against a loop written like the original's test script, in one run.

Both generate the same real DeepFashion test pairs (the first sources of the published pair list, with all
their pairs; names from ``../shared/data/deepfashion``, photos from the ten real photos there or in tests/data)
with the same random-weight `sd15` model (the paper's sizes), DDPM, w = 2, and the same per-pair noise:

* **original style**: pairs in file order, ``--original-batch`` (16, the original's TEST.MICRO_BATCH_SIZE)
  at a time; every pair's source is encoded (the original's data loader gives each pair its own source
  image); every step runs the UNet on the three branches [(∅,∅), (∅,pose), (src,pose)] of Eq. 7.
* **ours**: :func:`cfld.split_sampling.generate`, what `cfld sample` runs: pairs grouped by source, each source
  encoded once, the two branches Eq. 7 needs when w_pose == w_app; on the CPU one pair per network call
  (bit-identical results whatever the batching).

Both decode with the VAE. It prints seconds per pair and per stage (encoding, UNet steps, decoding), the
ratio, and the largest difference of the final latents. ``--steps`` is small on a CPU: what counts is the
share of each stage; at the paper's 50 steps the UNet's share only grows.

    python benchmarks/sample_split.py            # 7 pairs (2 sources), 1 step: about 8 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from cfld.checkpoint import SD15_VAE_CONFIG
from cfld.guidance import FULL, POSE_ONLY, UNCOND
from cfld.images import load_image, to_model_input
from cfld.models.cfld import CFLDModel, Conditions
from cfld.models.config import CFLDConfig
from cfld.pipeline import CFLDPipeline
from cfld.pose import gallery, pose_image, read_annotation_csv
from cfld.split_sampling import Pair, SamplingSettings, generate, order_by_source, pair_seed

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def test_pairs(count: int) -> tuple[list[Pair], dict, dict]:
    """The first sources of the real test pair list with all their pairs (about ``count`` pairs), in file
    order; {name: photo}, {name: pose}."""
    pairs_file = SHARED / "deepfashion" / "fasion-resize-pairs-test.csv"
    photos = sorted(p for p in (SHARED / "images").glob("*.*") if "_mask_" not in p.name) if SHARED.is_dir() else []
    photos = photos or sorted((REPO / "tests" / "data").glob("*.jpg"))
    if pairs_file.is_file():
        rows = [(r[0], r[1]) for r in csv.reader(pairs_file.open()) if r and r[0] != "from"]
        table = read_annotation_csv(SHARED / "deepfashion" / "fasion-resize-annotation-test.csv")
        sources: list[str] = []
        for a, _ in rows:
            if a not in sources:
                sources.append(a)
            if sum(1 for r in rows if r[0] in sources) >= count:
                break
        chosen = [Pair(a, b) for a, b in rows if a in sources]
        poses = {p.target: table[p.target] for p in chosen}
    else:  # without ../shared: gallery poses, three pairs per source
        table = gallery()
        chosen = [Pair(f"src{i // 3}", table.names[i % len(table.names)]) for i in range(count)]
        poses = {p.target: table[p.target] for p in chosen}
    names = list(dict.fromkeys(p.source for p in chosen))
    return chosen, {n: photos[i % len(photos)] for i, n in enumerate(names)}, poses


def original_style(pipe, pairs, photos, poses, steps, batch):
    """The original's test loop: per batch, encode every pair's source, three UNet branches per step."""
    times = {"encode": 0.0, "unet": 0.0, "decode": 0.0}
    latents_out = []
    for start in range(0, len(pairs), batch):
        chunk = pairs[start:start + batch]
        t0 = time.perf_counter()
        cond = torch.stack([to_model_input(load_image(photos[p.source]), pipe.model.config.cond_size) for p in chunk])
        encoding = pipe.encode_source(cond)
        pose = torch.stack([pose_image(poses[p.target], pipe.model.config.pose_size) for p in chunk])
        conditions = Conditions(encoding.prompt, pipe.model.pose_adapter(pose), encoding.query_biases)
        branches = pipe.model.guidance_batch(conditions, [UNCOND, POSE_ONLY, FULL])
        t1 = time.perf_counter()
        generators = [torch.Generator().manual_seed(pair_seed(0, p)) for p in chunk]
        latents = torch.cat([torch.randn((1, 4, *pipe.latent_size), generator=g) for g in generators])
        scheduler = pipe.scheduler
        scheduler.set_timesteps(steps)
        for t in scheduler.timesteps:
            eps = pipe.unet(scheduler.scale_model_input(torch.cat([latents] * 3), t), t,
                            **branches.unet_kwargs()).sample
            e_uc, e_pose, e_full = eps.chunk(3)
            eps = e_uc + 2.0 * (e_pose - e_uc) + 2.0 * (e_full - e_pose)
            latents = scheduler.step(eps, t, latents, generator=generators).prev_sample
        t2 = time.perf_counter()
        pipe.decode_latents(latents)
        t3 = time.perf_counter()
        times["encode"] += t1 - t0
        times["unet"] += t2 - t1
        times["decode"] += t3 - t2
        latents_out.append(latents)
    return torch.cat(latents_out), times


def ours(pipe, pairs, photos, poses, steps, batch):
    times = {"encode": 0.0, "unet": 0.0, "decode": 0.0}
    order = order_by_source(pairs)
    found = {}
    encode = pipe.encode_source

    def timed_encode(*args, **kwargs):  # the encoder's share of generate()'s time
        t = time.perf_counter()
        try:
            return encode(*args, **kwargs)
        finally:
            times["encode"] += time.perf_counter() - t
            times["unet"] -= time.perf_counter() - t

    pipe.encode_source = timed_encode
    start = time.perf_counter()
    for chunk, latents in generate(pipe, order,
                                   lambda n: to_model_input(load_image(photos[n]), pipe.model.config.cond_size),
                                   lambda p: pose_image(poses[p.target], pipe.model.config.pose_size),
                                   SamplingSettings(0, steps), batch_size=batch, output_type="latent"):
        t1 = time.perf_counter()
        pipe.decode_latents(latents)
        t2 = time.perf_counter()
        times["unet"] += t1 - start
        times["decode"] += t2 - t1
        start = time.perf_counter()
        found.update(zip(chunk, latents))
    del pipe.encode_source
    return torch.stack([found[p] for p in pairs]), times


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6, help="about this many pairs (whole sources)")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--original-batch", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8, help="our batch size (cfld sample --batch-size)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = CFLDConfig.preset("sd15")
    model = CFLDModel.from_config(config)
    for conv in model.appearance_encoder.zero_conv_outs:  # random, not zero: the HGA biases must not vanish
        torch.nn.init.normal_(conv.weight, std=0.02)
    pipe = CFLDPipeline(model, UNet2DConditionModel(**config.unet), AutoencoderKL(**SD15_VAE_CONFIG), "ddpm")
    pairs, photos, poses = test_pairs(args.pairs)
    print(f"random-weight sd15, {len(pairs)} real test pairs over {len(photos)} sources, DDPM {args.steps} steps, "
          f"w = 2, {args.threads} threads")

    t0 = time.perf_counter()
    z_base, base_times = original_style(pipe, pairs, photos, poses, args.steps, args.original_batch)
    base = time.perf_counter() - t0
    t0 = time.perf_counter()
    z_ours, our_times = ours(pipe, pairs, photos, poses, args.steps, args.batch)
    mine = time.perf_counter() - t0
    n = len(pairs)

    def stages(times, total):
        return ", ".join(f"{k} {v / n:.2f} s/pair ({100 * v / total:.0f}%)" for k, v in times.items())

    print(f"original style (batch {args.original_batch}, 3 branches, every source encoded): {base:.1f} s = "
          f"{n / base:.4f} pairs/s   [{stages(base_times, base)}]")
    print(f"cfld sample    (batch {args.batch}, 2 branches, sources once):         {mine:.1f} s = "
          f"{n / mine:.4f} pairs/s   [{stages(our_times, mine)}]")
    print(f"ratio {base / mine:.2f}x pairs per second at {args.steps} step(s)   "
          f"max |latent diff| {(z_ours - z_base).abs().max().item():.2e}")

    def at(times, steps):  # seconds per pair with `steps` steps: encoding and decoding once, the UNet per step
        return (times["encode"] + times["decode"] + times["unet"] * steps / args.steps) / n

    b50, o50 = at(base_times, 50), at(our_times, 50)
    print(f"at the paper's 50 steps (from the per-stage times above): original style {b50:.0f} s/pair, ours "
          f"{o50:.0f} s/pair: ratio {b50 / o50:.2f}x")


if __name__ == "__main__":
    main()

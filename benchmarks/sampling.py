"""Sampling speed: CFLDPipeline vs a plain three-branch loop like the original's, in one run.

Both samplers use the same random-weight `sd15` model (the paper's sizes: Swin-B, PRD R=8 Q=16 C=768,
HGA K=4, the Stable Diffusion 1.5 UNet), the same source photo, target pose and initial noise z_T at the
paper's latent size (64x64), and DDPM. The baseline does what the original's `sample()` does: every step
runs the UNet on the batch [z, z, z] with [(∅,∅), (∅,pose), (src,pose)] conditions and combines them by
Eq. 7. Ours runs the two branches Eq. 7 needs when w_pose == w_app. Timings alternate between the two
and keep the fastest of `--repeats` runs each, so that load from other processes hurts both alike.

Also prints the UNet's achieved FLOP/s against this machine's measured fp32 matmul peak.

    python benchmarks/sampling.py --steps 3 --repeats 2
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from cfld.guidance import FULL, UNCOND
from cfld.pose import gallery
from common import PHOTO, original_style_loop, random_pipeline


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    pipe = random_pipeline("sd15")
    unet = pipe.unet
    print(f"built the random-weight sd15 model in {time.perf_counter() - t0:.0f} s "
          f"(UNet {sum(p.numel() for p in unet.parameters()) / 1e6:.0f}M parameters), {args.threads} threads")

    encoding = pipe.encode_source(PHOTO)
    table = gallery()
    pose_img = pipe.pose_images([table[table.names[0]]])
    latent_shape = (1, 4, *pipe.latent_size)
    z_t = torch.randn(latent_shape, generator=torch.Generator().manual_seed(0))
    print(f"latent {tuple(latent_shape[2:])}, DDPM {args.steps} steps, w_pose = w_app = 2")

    def ours():
        return pipe(encoding, pose_img, latents=z_t, num_inference_steps=args.steps, output_type="latent",
                    generator=torch.Generator().manual_seed(1), progress=False).images

    def baseline():
        return original_style_loop(pipe, encoding, pose_img, z_t, args.steps, 2.0, 2.0,
                                   torch.Generator().manual_seed(1))

    ours_times, base_times = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        z_base = baseline()
        base_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        z_ours = ours()
        ours_times.append(time.perf_counter() - start)
    base, mine = min(base_times), min(ours_times)
    diff = (z_ours - z_base).abs().max().item()
    print(f"three-branch loop (original style): {base:.2f} s   ours: {mine:.2f} s   "
          f"speed-up {base / mine:.2f}x   max |latent diff| {diff:.2e}")

    # opt-in lower precision (not exact: bf16 rounding shows in the latents)
    if torch.backends.mkldnn.is_available():
        pipe.to(dtype=torch.bfloat16)
        start = time.perf_counter()
        z_bf16 = ours()
        half = time.perf_counter() - start
        pipe.to(dtype=torch.float32)
        print(f"ours with bf16 weights (opt-in, --dtype bf16): {half:.2f} s   speed-up {base / half:.2f}x   "
              f"max |latent diff| {(z_bf16.float() - z_base).abs().max().item():.2e} (not exact)")

    # achieved UNet FLOP/s in our sampler (two branches, batch 2) vs the measured matmul peak
    inputs = torch.cat([z_t] * 2)
    from cfld.models.cfld import Conditions

    batch = pipe.model.guidance_batch(
        Conditions(encoding.prompt, pipe.model.pose_adapter(pose_img), encoding.query_biases), [UNCOND, FULL])
    with FlopCounterMode(display=False) as counter:
        pipe.unet(inputs, 801, **batch.unet_kwargs())
    flops = counter.get_total_flops()
    seconds = min(_timed(lambda: pipe.unet(inputs, 801, **batch.unet_kwargs())) for _ in range(args.repeats))
    peak = matmul_peak()
    print(f"UNet forward (batch 2): {flops / 1e9:.0f} GFLOP in {seconds:.2f} s = {flops / seconds / 1e9:.1f} GFLOP/s; "
          f"fp32 matmul peak {peak / 1e9:.1f} GFLOP/s -> {100 * flops / seconds / peak:.0f}% of peak")


if __name__ == "__main__":
    main()

"""Exact-arithmetic speed levers on the paper-size model, on this machine's CPU, measured in one run.

    python benchmarks/cpu_levers.py                       # ~10-20 min on 2 cores (torch.compile dominates)
    python benchmarks/cpu_levers.py --compile-modes none  # skip torch.compile

Each lever changes how the same arithmetic is run, not what is computed: the SDPA backend of the attention
(default / math / flash), channels-last memory layout, the thread count, and ``torch.compile`` of the UNet
(``default`` and ``max-autotune`` modes). For each: the time of one guided sampling step (the UNet on two
branches, batch 2, plus the scheduler step) on the random-weight ``sd15`` model (64x64 latents = 512x512
images), the speed-up against the default path, and the max |Δ latent| after ``--steps`` DDPM steps from
the same z_T and noise. A lever is exact when that difference is 0; within 1e-4 it is float reordering.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

import torch

from common import PHOTO, first_steps, random_pipeline


@torch.no_grad()
def run(pipe, encoding, pose, steps, repeats):
    """z after ``steps`` DDPM steps (of 50; the run is stopped there), the fastest step time over ``repeats``
    runs, and the first run's first-step time (which includes compilation for a compiled UNet)."""
    best, first = float("inf"), None
    for _ in range(repeats):
        z_t = torch.randn((1, 4, *pipe.latent_size), generator=torch.Generator().manual_seed(0))
        latents, times = first_steps(pipe, encoding, pose, steps, latents=z_t, num_inference_steps=50,
                                     generator=torch.Generator().manual_seed(1))
        first = float(times[0]) if first is None else first
        best = min(best, float(times[1:].min()) if len(times) > 1 else float(times[0]))
    return latents, best, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3, help="DDPM steps per run (of 50)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--compile-modes", default="default,max-autotune",
                        help="torch.compile modes to try, comma-separated, or 'none'")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe = random_pipeline("sd15")
    from cfld.pose import gallery

    table = gallery()
    pose = [table[table.names[0]]]
    encoding = pipe.encode_source(PHOTO)
    base_z, base_t, _ = run(pipe, encoding, pose, args.steps, args.repeats)
    rows = [(f"default (fp32, SDPA default, NCHW, {args.threads} threads)", base_t, 0.0, "")]

    def lever(name, setup=contextlib.nullcontext, note=""):
        try:
            with setup():
                z, t, first = run(pipe, encoding, pose, args.steps, args.repeats)
            rows.append((name, t, float((z - base_z).abs().max()), note.format(first=first)))
        except Exception as error:  # noqa: BLE001 - a lever that does not work here is reported, not fatal
            rows.append((name, float("nan"), float("nan"), f"fails here: {type(error).__name__}: {str(error)[:120]}"))
        print(f"  {rows[-1]}", file=sys.stderr, flush=True)

    from torch.nn.attention import SDPBackend, sdpa_kernel

    lever("SDPA backend: math", lambda: sdpa_kernel([SDPBackend.MATH]))
    lever("SDPA backend: flash (CPU)", lambda: sdpa_kernel([SDPBackend.FLASH_ATTENTION]))

    @contextlib.contextmanager
    def channels_last():
        pipe.unet.to(memory_format=torch.channels_last)
        try:
            yield
        finally:
            pipe.unet.to(memory_format=torch.contiguous_format)

    lever("channels-last UNet", channels_last)
    for threads in sorted({1, args.threads} - {args.threads}):
        @contextlib.contextmanager
        def set_threads(n=threads):
            torch.set_num_threads(n)
            try:
                yield
            finally:
                torch.set_num_threads(args.threads)

        lever(f"{threads} thread(s)", set_threads)

    modes = [] if args.compile_modes == "none" else args.compile_modes.split(",")
    for mode in modes:
        @contextlib.contextmanager
        def compiled(mode=mode):
            original = pipe.unet
            torch._dynamo.reset()
            pipe.unet = torch.compile(original, mode=mode)
            try:
                yield
            finally:
                pipe.unet = original

        lever(f"torch.compile(unet, mode={mode!r})", compiled, "first step (compiling) {first:.0f} s")

    print(f"\nsd15 (random weights), one image at 512x512, one guided step = UNet on 2 branches + DDPM step; "
          f"max |Δ latent| after {args.steps} steps; {args.threads} threads")
    print(f"{'lever':<50}{'s/step':>9}{'speed-up':>10}{'max |Δ latent|':>16}  note")
    for name, t, diff, note in rows:
        print(f"{name:<50}{t:>9.2f}{base_t / t:>9.2f}x{diff:>16.2e}  {note}")


if __name__ == "__main__":
    main()

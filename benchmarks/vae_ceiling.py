"""The demo model's ceiling: how well its VAE alone reconstructs held-out synthetic persons.

    python benchmarks/vae_ceiling.py                       # 64 persons, the bundled demo model, ~10 s
    python benchmarks/vae_ceiling.py --save docs/vae_reconstruction.png

No diffusion model can draw better than its decoder: this encodes the ground-truth target images of
held-out persons in held-out poses (the pairs ``cfld demo`` scores) with the VAE (the posterior's mean) and
decodes them again. Printed: PSNR and SSIM of the reconstruction, and the garment colour difference ΔE00,
against the images themselves, as ``cfld demo`` scores (uint8, 64x64). ``--save`` writes a strip: the
persons in the top row, their reconstructions below.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
SHARED_POSES = REPO.parent / "shared" / "data" / "deepfashion" / "fasion-resize-annotation-test.csv"

from cfld.images import to_uint8  # noqa: E402
from cfld.model_names import demo_model_dir  # noqa: E402
from cfld.pipeline import CFLDPipeline  # noqa: E402
from cfld.training.held_out import HeldOutPairs, reconstruct, score_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=demo_model_dir(), help="a CFLD folder (default: the demo model)")
    parser.add_argument("--persons", type=int, default=64)
    parser.add_argument("--save", type=Path, help="write the strip (persons over their reconstructions) here")
    parser.add_argument("--columns", type=int, default=12, help="persons in the strip")
    args = parser.parse_args()
    pipe = CFLDPipeline.from_pretrained(args.model)
    poses = str(SHARED_POSES) if SHARED_POSES.is_file() else None
    pairs = HeldOutPairs.draw(args.persons, pipe.model.config, poses)
    rebuilt = reconstruct(pipe.vae, pairs.truth)
    scores = pairs.score(rebuilt)
    print(f"{args.persons} held-out synthetic persons at "
          f"{pipe.model.config.image_size[0]}x{pipe.model.config.image_size[1]}, "
          f"poses from {'../shared DeepFashion test keypoints (held-out rows)' if poses else 'the bundled gallery'}; "
          f"VAE {args.model / 'vae'}")
    print("\n".join(score_table({"VAE reconstruction": scores})))
    if args.save:
        from cfld.pose import write_png

        n = min(args.columns, args.persons)
        strip = torch.cat([torch.cat(list(images[:n]), dim=2) for images in (pairs.truth, rebuilt)], dim=1)
        path = write_png(to_uint8(strip[None])[0], args.save, overwrite=True)
        print(f"wrote {path} (top: the persons; bottom: the VAE's reconstructions)")


if __name__ == "__main__":
    main()

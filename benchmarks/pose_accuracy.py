"""Benchmark: does the pose check (cfld.metrics.pose_accuracy) tell the right pose from the wrong one on real images?

Every row scores images against the target pose they should show (the target's published DeepFashion keypoints),
over the 129 pairs of ``../shared/data/deepfashion-generated`` (Deformable GANs and VUNet outputs; every pair's
source and target photos are in ``../shared/data/deepfashion-real``):

* **real target photo**: the target photo itself, the detector's own ceiling;
* **Deformable GANs**, **VUNet**: the published methods' outputs for those pairs;
* **copy the source**: the source photo, the right person in the wrong pose;
* **another person**: a photo of somebody else whose published pose differs from the target (PCK@0.1 between
  the two annotations below 0.5), drawn with a fixed seed;
* **CFLD demo model**: the bundled demo model (``-m demo``) re-posing held-out drawn persons into real
  DeepFashion poses (64x64, scored in the 256x176 frame), and those drawn persons' own target pictures.

For each row: the pooled PCKh@0.5 the papers report, each image's mean and spread of PCKh@0.5, PCK@0.1 and
the share of joints found, images without a person, and images under the warning threshold. Then how the
share of images flagged moves with the threshold, and whether tighter alphas separate real from generated.

    python benchmarks/pose_accuracy.py                 # all rows (about 2 minutes on 2 CPU cores)
    python benchmarks/pose_accuracy.py --no-demo       # without sampling the demo model
    python benchmarks/pose_accuracy.py --timing        # also: scoring one image vs one sampling step (SD 1.5 sizes)
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
SHARED = REPO.parent / "shared" / "data"
REAL = SHARED / "deepfashion-real"
GENERATED = SHARED / "deepfashion-generated"

from cfld.metrics.pose_accuracy import WARN_BELOW, PoseScore, score_pose, summarize  # noqa: E402
from cfld.pose import DEEPFASHION_SIZE, PoseDetector, flat_name, read_annotation_csv  # noqa: E402

#: Published PCKh@0.5 on the DeepFashion test pairs, OpenPose-based detector: PATN (Zhu et al., CVPR 2019,
#: Table 1), which scored the authors' released models with the code of its tool/calPCKH_fashion.py.
PUBLISHED = {"Deformable GANs": 0.94, "VUNet": 0.93}
METHODS = {"Deform": "Deformable GANs", "VUNet": "VUNet"}
SWEEP = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
TIGHT = ((0.5, 0.1), (0.25, 0.05), (0.125, 0.025))  # (PCKh alpha, PCK alpha)


def photo(name: str) -> Path:
    return REAL / "images" / flat_name(name).replace(".jpg", ".png")


def person_of(name: str) -> str:
    return name.split("/")[-2]


def scored_rows(detector: PoseDetector, seed: int) -> dict[str, list[tuple]]:
    """Row name -> [(found pose or None, target pose)] over the generated pairs."""
    table = read_annotation_csv(REAL / "keypoints.csv")
    with open(GENERATED / "generated.csv", newline="") as f:
        pairs = list(csv.DictReader(f))
    rng = np.random.default_rng(seed)
    names = sorted(table)
    cache: dict[Path, object] = {}

    def found(path: Path):
        if path not in cache:
            with Image.open(path) as image:
                detection = detector.detect(np.asarray(image.convert("RGB")))
            cache[path] = None if detection is None else detection.pose(detector.min_confidence)
        return cache[path]

    rows: dict[str, list[tuple]] = {k: [] for k in
                                    ("real target photo", *METHODS.values(), "copy the source", "another person")}
    for pair in pairs:
        target = table[pair["target"]]
        rows[METHODS[pair["method"]]].append((found(GENERATED / pair["file"]), target))
        rows["real target photo"].append((found(photo(pair["target"])), target))
        rows["copy the source"].append((found(photo(pair["source"])), target))
        others = [n for n in names if person_of(n) != person_of(pair["target"])
                  and score_pose(table[n], target).pck < 0.5]
        other = others[rng.integers(len(others))]
        rows["another person"].append((found(photo(other)), target))
    return rows


def demo_rows(detector: PoseDetector, pairs: int, steps: int) -> dict[str, list[tuple]]:
    """The demo model's outputs and the drawn persons' own target pictures, with their target poses."""
    import torch

    from cfld.commands.options import load_pipeline
    from cfld.model_names import demo_model_dir
    from cfld.training.held_out import HeldOutPairs, generate

    pipe = load_pipeline(demo_model_dir(), device="cpu")
    poses = SHARED / "deepfashion" / "fasion-resize-annotation-test.csv"
    held = HeldOutPairs.draw(pairs, pipe.model.config, poses if poses.is_file() else None)
    from cfld.data.synthetic import SyntheticPersons  # the same persons, for their target poses
    from cfld.training.config import TrainConfig
    from cfld.training.held_out import HELD_OUT_SEED, RECIPE

    config = pipe.model.config
    persons = SyntheticPersons(pairs + 1, config.image_size, config.cond_size, config.pose_size, seed=HELD_OUT_SEED,
                               poses=poses if poses.is_file() else None, split="test",
                               photo_size=TrainConfig.load(RECIPE).data["photo_size"])
    targets = [persons._pair(i)[3] for i in range(pairs)]
    generated = generate(pipe, held, steps, seed=0, progress=True)

    def detect(images: torch.Tensor) -> list:
        out = []
        for image in images:
            pixels = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            big = Image.fromarray(pixels).resize(DEEPFASHION_SIZE[::-1], Image.BICUBIC)
            detection = detector.detect(np.asarray(big))
            out.append(None if detection is None else detection.pose(detector.min_confidence))
        return out

    return {"CFLD demo model (drawn persons)": list(zip(detect(generated), targets)),
            "drawn persons' own targets": list(zip(detect(held.truth), targets))}


def timing(detector: PoseDetector, repeats: int = 24) -> None:
    """Seconds to score one 256x176 result against one denoising step of the paper-size model for one image (random
    weights, which do not change the speed; DDPM with both guidance branches, as `cfld transfer` samples)."""
    import torch

    sys.path.insert(0, str(REPO / "benchmarks"))
    from cfld.metrics.pose_accuracy import PoseScorer
    from common import PHOTO, first_steps, random_pipeline

    table = read_annotation_csv(REAL / "keypoints.csv")
    names = sorted(table)[:repeats]
    with PoseScorer(detector) as scorer:
        scorer(photo(names[0]), table[names[0]])  # warm-up
        start = time.perf_counter()
        for name in names:
            scorer(photo(name), table[name])
        score_seconds = (time.perf_counter() - start) / len(names)
    torch.manual_seed(0)
    pipe = random_pipeline("sd15")
    with torch.inference_mode():
        _, steps = first_steps(pipe, str(PHOTO), table[names[0]], 4, num_inference_steps=50,
                               generator=torch.Generator().manual_seed(0))
    step_seconds = float(np.median(steps[1:]))
    print(f"\nscoring one result: {1000 * score_seconds:.0f} ms; one DDPM step of the SD 1.5-size model for one "
          f"image at 256x176 on {torch.get_num_threads()} CPU threads: {1000 * step_seconds:.0f} ms; "
          f"ratio {score_seconds / step_seconds:.3f} (scoring is {step_seconds / score_seconds:.0f}x faster)")


def scores(row: list[tuple], pckh_alpha: float = 0.5, pck_alpha: float = 0.1) -> list[PoseScore]:
    return [score_pose(None if f is None or not f.visible.any() else f, t, pckh_alpha=pckh_alpha,
                       pck_alpha=pck_alpha) for f, t in row]


def fmt(value: float | None, spread: float | None = None) -> str:
    if value is None:
        return "  -  "
    return f"{value:.2f}" if spread is None else f"{value:.2f} ± {spread:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-demo", action="store_true", help="skip the demo model's rows")
    parser.add_argument("--demo-pairs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timing", action="store_true", help="also time scoring against one sampling step")
    args = parser.parse_args()
    if not (GENERATED / "generated.csv").is_file():
        sys.exit(f"needs ../shared/data/deepfashion-generated and deepfashion-real beside the repository "
                 f"(looked for {GENERATED})")
    start = time.perf_counter()
    with PoseDetector() as detector:
        rows = scored_rows(detector, args.seed)
        images = sum(len({id(f) for f, _ in r}) for r in rows.values())
        seconds = (time.perf_counter() - start)
        if not args.no_demo:
            rows.update(demo_rows(detector, args.demo_pairs, args.steps))
    print(f"pose check on {sum(len(r) for r in rows.values())} scored images "
          f"(detection about {1000 * seconds / max(images, 1):.0f} ms per image on this machine)\n")
    print(f"{'row':34} {'n':>4}  {'PCKh pooled':>11}  {'published':>9}  {'PCKh mean ± std':>15}  "
          f"{'PCK@0.1 mean ± std':>18}  {'found':>5}  {'no person':>9}  {f'PCK<{WARN_BELOW}':>8}")
    for name, row in rows.items():
        s = summarize(scores(row), WARN_BELOW)
        print(f"{name:34} {s['images']:>4}  {fmt(s['pckh']):>11}  {fmt(PUBLISHED.get(name)):>9}  "
              f"{fmt(s['pckh_mean'], s['pckh_std']):>15}  {fmt(s['pck_mean'], s['pck_std']):>18}  "
              f"{fmt(s['found_mean']):>5}  {s['no_person']:>9}  {s['misses_pose']:>8}")
    print("\nshare of images flagged (PCK@0.1 below the threshold):")
    print(f"{'row':34} " + " ".join(f"{t:>6}" for t in SWEEP))
    for name, row in rows.items():
        row_scores = scores(row)
        print(f"{name:34} " + " ".join(f"{np.mean([s.misses(t) for s in row_scores]):>6.2f}" for t in SWEEP))
    print("\ntighter alphas, pooled PCKh and mean PCK (PCKh alpha / PCK alpha):")
    print(f"{'row':34} " + " ".join(f"{f'{a}/{b}':>16}" for a, b in TIGHT))
    for name, row in rows.items():
        cells = []
        for a, b in TIGHT:
            s = summarize(scores(row, a, b))
            cells.append(f"{fmt(s['pckh'])} / {fmt(s['pck_mean'])}")
        print(f"{name:34} " + " ".join(f"{c:>16}" for c in cells))
    if args.timing:
        with PoseDetector() as detector:
            timing(detector)


if __name__ == "__main__":
    main()

"""Benchmark: framing users' photos (cfld.framing) against stretching the whole photo into the model's frame.

The round trip: every real DeepFashion test photo of ``../shared/data/deepfashion-real`` (256x176, framed as
the model was trained) is pasted into canvases of other shapes (4:3 and 16:9 landscape, square, 3:4
portrait), the photo at 35-100% of the canvas height, anywhere in it, on plain, gradient and textured
backgrounds. The true answer is known: the rectangle where the photo was pasted, and its published
keypoints. For each canvas both ways are scored:

* the IoU of the recovered crop with that rectangle (stretching "recovers" the whole canvas);
* whether a person is found;
* PCK@0.05/0.1/0.2 of the detected pose in the recovered frame against the published keypoints moved
  into it (a joint is correct within that fraction of the diagonal of the annotated joints' box; a joint
  not found, or a photo where nobody is found, counts as wrong);
* seconds per photo.

It also checks that the dataset's own photos go through framing unchanged, and ``--derive`` prints the
placement statistics that ``cfld.framing.DEEPFASHION_PLACEMENT`` holds, measured on the same photos.

    python benchmarks/framing.py                      # all 246 photos x 4 canvas shapes (about 10 minutes)
    python benchmarks/framing.py --limit 40 --seed 1  # a quicker look, other canvases
    python benchmarks/framing.py --derive             # the placement numbers, from ../shared
    python benchmarks/framing.py --figure docs/framing.png
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
SHARED = REPO.parent / "shared"
REAL = SHARED / "data" / "deepfashion-real"

from cfld.errors import InputError  # noqa: E402
from cfld.framing import Crop, Framer, measure_placement  # noqa: E402
from cfld.pose import PoseDetector, flat_name, pck_counts, read_annotation_csv  # noqa: E402

SHAPES = {"4:3": (3, 4), "16:9": (9, 16), "1:1": (1, 1), "3:4": (4, 3)}  # (height, width) ratios
BACKGROUNDS = ("plain", "gradient", "textured")
THRESHOLDS = (0.05, 0.1, 0.2)


def real_photos(folder: Path = REAL) -> list[tuple[str, Image.Image, np.ndarray, np.ndarray]]:
    """(name, photo, (18, 2) published keypoints x/y, (18,) annotated) for every photo of deepfashion-real."""
    table = read_annotation_csv(folder / "keypoints.csv")
    photos = []
    for name in sorted(table):
        pose = table[name]
        path = folder / "images" / flat_name(name).replace(".jpg", ".png")
        with Image.open(path) as image:
            photos.append((path.name, image.convert("RGB"), np.nan_to_num(pose.xy, nan=-1.0), pose.visible))
    return photos


def background(kind: str, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A (H, W, 3) uint8 canvas: one colour, a two-colour gradient at any angle, or a coloured texture (noise of
    several scales with stripes)."""
    height, width = size
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    if kind == "plain":
        return np.broadcast_to(a.astype(np.uint8), (height, width, 3)).copy()
    ys, xs = np.mgrid[0:height, 0:width] / max(height, width)
    if kind == "gradient":
        angle = rng.uniform(0, 2 * math.pi)
        t = xs * math.cos(angle) + ys * math.sin(angle)
        t = (t - t.min()) / max(t.max() - t.min(), 1e-9)
        return (a * (1 - t[..., None]) + b * t[..., None]).astype(np.uint8)
    field = np.zeros((height, width))
    for cells in (4, 16, 64):
        noise = rng.random((cells, cells))
        field += np.asarray(Image.fromarray((noise * 255).astype(np.uint8)).resize((width, height), Image.BICUBIC),
                            dtype=np.float64) / 255 / 3
    period = rng.uniform(8, 40)
    stripes = 0.5 + 0.5 * np.sin(2 * math.pi * (xs + rng.uniform(-1, 1) * ys) * max(height, width) / period)
    t = np.clip(0.7 * field + 0.3 * stripes, 0, 1)[..., None]
    return (a * (1 - t) + b * t).astype(np.uint8)


@dataclass
class Canvas:
    image: Image.Image
    rect: Crop  # where the photo was pasted (canvas pixels)
    shape: str
    background: str


def make_canvas(photo: Image.Image, shape: str, rng: np.random.Generator, kind: str | None = None) -> Canvas:
    """``photo`` pasted into a canvas of ``shape`` at 35-100% of its height, anywhere, on a random background."""
    ratio_h, ratio_w = SHAPES[shape]
    fraction = rng.uniform(0.35, 1.0)
    pasted_h = int(rng.integers(224, 513))  # the photo resized to this height
    pasted_w = round(pasted_h * photo.width / photo.height)
    canvas_h = max(pasted_h, round(pasted_h / fraction))
    canvas_w = max(pasted_w, round(canvas_h * ratio_w / ratio_h))
    kind = kind or BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    canvas = Image.fromarray(background(kind, (canvas_h, canvas_w), rng))
    top, left = int(rng.integers(0, canvas_h - pasted_h + 1)), int(rng.integers(0, canvas_w - pasted_w + 1))
    canvas.paste(photo.resize((pasted_w, pasted_h), Image.BICUBIC), (left, top))
    return Canvas(canvas, Crop(top, left, pasted_h, pasted_w), shape, kind)


def to_frame(xy: np.ndarray, src: tuple[float, float, float, float],
             dst: tuple[float, float, float, float]) -> np.ndarray:
    """Pixel-centre coordinates moved from box ``src`` to box ``dst`` (both (left, top, width, height), edges)."""
    scale = np.array([dst[2] / src[2], dst[3] / src[3]])
    return (xy + 0.5 - [src[0], src[1]]) * scale + [dst[0], dst[1]] - 0.5


def pck(found: np.ndarray | None, truth: np.ndarray, annotated: np.ndarray) -> np.ndarray:
    """(len(THRESHOLDS), 2): joints correct and joints annotated, at each threshold."""
    return pck_counts(found, truth, annotated, THRESHOLDS)


def iou(a: Crop, b: Crop) -> float:
    ix = max(0, min(a.left + a.width, b.left + b.width) - max(a.left, b.left))
    iy = max(0, min(a.top + a.height, b.top + b.height) - max(a.top, b.top))
    inter = ix * iy
    return inter / (a.width * a.height + b.width * b.height - inter)


def run(limit: int | None, seed: int, shapes: list[str]) -> None:
    photos = real_photos()[:limit]
    rng = np.random.default_rng(seed)
    canvases = [(name, make_canvas(photo, shape, rng), xy, seen)
                for name, photo, xy, seen in photos for shape in shapes]
    size = (256, 176)
    frame_box = (0.0, 0.0, float(size[1]), float(size[0]))
    rows = {"stretch": [], "framing": []}
    times = {"stretch": 0.0, "framing": 0.0}
    failures: dict[str, int] = {}
    with PoseDetector(segmentation=True) as detector:
        framer = Framer(size, detector=detector)
        unchanged = sum(not framer(photo, name).cropped for name, photo, _, _ in photos)
        own = sum(pck(None if (d := detector.detect(photo)) is None else d.pose().xy, xy, seen)
                  for _, photo, xy, seen in photos)
        for name, canvas, xy, seen in canvases:
            rect = canvas.rect
            rect_box = (rect.left, rect.top, rect.width, rect.height)
            # today: the whole canvas stretched into the frame; the pose detected on it, stretched the same way
            start = time.perf_counter()
            found = detector.detect(canvas.image)
            times["stretch"] += time.perf_counter() - start
            whole = Crop(0, 0, canvas.image.height, canvas.image.width)
            whole_box = (0.0, 0.0, float(canvas.image.width), float(canvas.image.height))
            truth = to_frame(to_frame(xy, frame_box, rect_box), whole_box, frame_box)
            pose = None if found is None else found.pose().xy
            guess = None if pose is None else to_frame(pose, whole_box, frame_box)
            rows["stretch"].append((iou(whole, rect), found is not None, pck(guess, truth, seen), canvas))
            # framing
            start = time.perf_counter()
            try:
                framed = framer(canvas.image, name)
            except InputError as err:
                framed = None
                failures[err.problem[:60]] = failures.get(err.problem[:60], 0) + 1
            times["framing"] += time.perf_counter() - start
            if framed is None or framed.pose is None:
                rows["framing"].append((0.0, False, pck(None, xy, seen), canvas))
                continue
            crop = framed.crop
            truth = to_frame(to_frame(xy, frame_box, rect_box), (crop.left, crop.top, crop.width, crop.height),
                             frame_box)
            rows["framing"].append((iou(crop, rect), True, pck(framed.pose.xy, truth, seen), canvas))
    print(f"{len(photos)} real DeepFashion photos x {len(shapes)} canvas shapes ({', '.join(shapes)}) = "
          f"{len(canvases)} canvases, seed {seed}; own photos unchanged by framing: {unchanged}/{len(photos)}")
    print("the photos in their own frame (no canvas), detected as they are: PCK "
          + ", ".join(f"@{t} {100 * c / n:.1f}%" for t, (c, n) in zip(THRESHOLDS, own)))
    print(f"{'':10}{'IoU median':>11}{'IoU p10':>9}{'found':>8}" + "".join(f"{f'PCK@{t}':>10}" for t in THRESHOLDS)
          + f"{'s/photo':>9}")
    for method, results in rows.items():
        ious = np.array([r[0] for r in results])
        found = np.mean([r[1] for r in results])
        counts = sum(r[2] for r in results)
        pcks = counts[:, 0] / counts[:, 1]
        print(f"{method:10}{np.median(ious):11.3f}{np.percentile(ious, 10):9.3f}{100 * found:7.1f}%"
              + "".join(f"{100 * p:9.1f}%" for p in pcks) + f"{times[method] / len(results):9.3f}")
    print("framing by canvas shape and background (IoU median / p10, PCK@0.1):")
    for key, pick in [*((s, lambda c, s=s: c.shape == s) for s in shapes),
                      *((b, lambda c, b=b: c.background == b) for b in BACKGROUNDS)]:
        chosen = [r for r in rows["framing"] if pick(r[3])]
        if chosen:
            ious = np.array([r[0] for r in chosen])
            counts = sum(r[2] for r in chosen)
            print(f"  {key:9} {np.median(ious):.3f} / {np.percentile(ious, 10):.3f}   "
                  f"{100 * counts[1, 0] / counts[1, 1]:.1f}%   ({len(chosen)} canvases)")
    for problem, count in sorted(failures.items(), key=lambda kv: -kv[1]):
        print(f"  not framed ({count}x): {problem}...")


def derive() -> None:
    """The placement statistics of the training photos (cfld.framing.measure_placement on the real photos), and
    the horizontal centre of the joints' box over the annotation rows, which should agree."""
    photos = real_photos()
    placement, found = measure_placement([photo for _, photo, _, _ in photos])
    height, width = 256, 176
    print(f"person found in {found} of {len(photos)} real photos ({height}x{width}); medians:")
    print(f"  mask top {placement.top * height:.1f} px; bottom {height * (1 - placement.feet):.1f} px with the feet in "
          f"the picture, {height * (1 - placement.legs_cut):.1f} px where the legs are cut; box centre "
          f"{placement.centre * width:.1f} px; background {placement.background}")
    print(f"  as cfld.framing.Placement: {placement}")
    table = read_annotation_csv(SHARED / "data" / "deepfashion" / "fasion-resize-annotation-test.csv")
    centres = [(table[n].xy[table[n].visible, 0].min() + table[n].xy[table[n].visible, 0].max()) / 2
               for n in table if table[n].num_visible >= 3]
    print(f"annotation rows with >= 3 joints ({len(centres)} of {len(table)}): joints' box centre median "
          f"{np.median(centres):.1f} px of {width}")
    market_placement()


def market_placement() -> None:
    """Market-1501's placement, from its annotation rows: where the mask's top and bottom lie relative to the face
    joints and the ankles is measured on the real DeepFashion photos, then applied to the Market rows."""
    table = read_annotation_csv(REAL / "keypoints.csv")
    heads, feet = [], []
    with PoseDetector(segmentation=True) as detector:
        for name, photo, _, _ in real_photos():
            pose = table[next(n for n in table if flat_name(n).replace(".jpg", ".png") == name)]
            found = detector.detect(photo)
            if found is None or not (found.mask > 0.5).any():
                continue
            rows = np.nonzero((found.mask > 0.5).any(axis=1))[0]
            top, bottom = rows[0], rows[-1] + 1
            g, v = pose.xy, pose.visible
            face = [i for i in (0, 14, 15, 16, 17) if v[i]]
            if face and v[1] and top > 2:  # the head whole
                head = min(g[i, 1] for i in face)
                if g[1, 1] - head > 5:
                    heads.append((head - top) / (g[1, 1] - head))
            if v[[9, 10, 12, 13]].all() and bottom < 254:  # the feet whole
                ankle, knee = max(g[10, 1], g[13, 1]), max(g[9, 1], g[12, 1])
                if ankle - knee > 5:
                    feet.append((bottom - ankle) / (ankle - knee))
    k, j = float(np.median(heads)), float(np.median(feet))
    print(f"DeepFashion: mask top {k:.2f} x (neck - highest face joint) above that joint ({len(heads)} photos), "
          f"mask bottom {j:.2f} x (ankle - knee) below the lower ankle ({len(feet)})")
    market = read_annotation_csv(SHARED / "data" / "market1501" / "market-annotation-test.csv")
    tops, bottoms, centres = [], [], []
    for name in market:
        pose = market[name]
        g, v = pose.xy, pose.visible
        if pose.num_visible < 10:
            continue
        face = [i for i in (0, 14, 15, 16, 17) if v[i]]
        if face and v[1]:
            head = min(g[i, 1] for i in face)
            tops.append(head - k * (g[1, 1] - head))
        if v[[9, 10, 12, 13]].all():
            ankle, knee = max(g[10, 1], g[13, 1]), max(g[9, 1], g[12, 1])
            bottoms.append(ankle + 0.5 + j * (ankle - knee))
        centres.append((g[v, 0].min() + g[v, 0].max() + 1) / 2)
    print(f"Market-1501 ({len(centres)} test rows with >= 10 joints, 128x64): head top median {np.median(tops):.1f} "
          f"px, feet {np.median(bottoms):.1f} px, joints' box centre {np.median(centres):.1f} px")


def figure(path: Path) -> None:
    """docs/framing.png: photos that are not framed like the training data, one row each: the photo with the crop
    drawn on it | what stretching gave the model | the framed input | its detected pose. (No result column: the
    only model that runs offline, the demo model, knows synthetic persons only.)"""
    from PIL import ImageDraw

    from cfld.pose import draw_pose

    size = (256, 176)
    rng = np.random.default_rng(3)
    women = Image.open(REPO / "tests" / "data" / "women1.jpg").convert("RGB")
    wide = Image.fromarray(background("gradient", (500, 800), rng))
    wide.paste(women.resize((206, 300), Image.BICUBIC), (470, 150))  # the 800x500 photo, person 300 px
    rows = [wide, Image.open(SHARED / "data" / "images" / "ecommerce_1.jpg").convert("RGB")]
    tiles = []
    with Framer(size) as framer:
        for photo in rows:
            framed = framer(photo, "photo")
            shown = photo.copy()
            draw = ImageDraw.Draw(shown)
            left, top, right, bottom = framed.crop.box
            draw.rectangle((left, top, right - 1, bottom - 1), outline=(255, 0, 0), width=max(2, photo.height // 120))
            scale = size[0] / photo.height
            shown = shown.resize((round(photo.width * scale), size[0]), Image.BICUBIC)
            stretched = photo.resize((size[1], size[0]), Image.BICUBIC)
            pose = Image.fromarray(draw_pose(framed.pose, size, np.asarray(framed.image)))
            tiles.append([shown, stretched, framed.image, pose])
    width = max(sum(t.width for t in row) for row in tiles) + 3 * 4
    sheet = Image.new("RGB", (width, len(tiles) * (size[0] + 4)), (255, 255, 255))
    for r, row in enumerate(tiles):
        x = 0
        for tile in row:
            sheet.paste(tile, (x, r * (size[0] + 4)))
            x += tile.width + 4
    sheet.save(path)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="Only the first N photos.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the canvases.")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="Canvas shapes, comma-separated.")
    parser.add_argument("--derive", action="store_true", help="Print the placement statistics and stop.")
    parser.add_argument("--figure", metavar="PNG", help="Write the README's picture (e.g. docs/framing.png) and stop.")
    args = parser.parse_args()
    if not REAL.is_dir():
        sys.exit(f"{REAL} is missing: this benchmark needs ../shared beside the repository")
    if args.derive:
        derive()
    elif args.figure:
        figure(Path(args.figure))
    else:
        run(args.limit, args.seed, args.shapes.split(","))


if __name__ == "__main__":
    main()

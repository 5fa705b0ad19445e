"""`cfld prepare photos` on the 246 real DeepFashion test photos of ../shared, as a catalogue of 116 people.

Two catalogues, each prepared by `cfld.data.prepare_photos` in one process with one detector:

* **own**: the photos as they are (256x176 shop photos: framing leaves them unchanged, its cheapest case);
* **wide**: every photo pasted into a 16:9 canvas of another background (plain, gradient or texture) at 35-100% of
  its height (benchmarks/framing.py's canvases, seed 0): framing has to find the person and cut the crop.

For each it prints the seconds per photo spent reading, framing (of which MediaPipe's detections), and writing;
and PCK@0.05/0.1/0.2 of the prepared annotation rows against the published keypoints (keypoints.csv, moved into
the framed picture through the crop the record keeps), beside PCK of the detector run on the photos as they are
(the detector's own accuracy on these photos, the ceiling of the rows).

**Scaling** (``--scaling``): the catalogue as it is, prepared afresh with 1, 2, ... workers (one more than the
usable cores, to see that too many workers cost nothing): photos per second of the whole run and of the framing,
the speed-up over 1 worker, the CPU time per wall second, each worker's peak memory, and whether every file (the
report's seconds aside) is the one worker's byte for byte. The parts that do not spread over workers are timed on
their own (reading the catalogue and hashing its photos, writing the dataset's files), and the table projects the
run for 16 cores and for 8 machines of 16 from the measured parts.

    python benchmarks/prepare_photos.py              # both catalogues (about two minutes on 2 cores)
    python benchmarks/prepare_photos.py --limit 40   # a quicker look
    python benchmarks/prepare_photos.py --scaling    # workers: 1, 2, 3 on 2 cores (about a minute)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from cfld.data.photos import prepare_photos  # noqa: E402
from cfld.framing import Framer  # noqa: E402
from cfld.pose import PoseDetector, pck_counts, read_annotation_csv  # noqa: E402
from framing import REAL, THRESHOLDS, make_canvas, to_frame  # noqa: E402


def catalogue(root: Path, limit: int | None, wide: bool, seed: int = 0) -> dict[str, tuple]:
    """Write the catalogue (one folder per id_ folder); returns source -> (annotation name, pasted box or None)."""
    from PIL import Image

    rows = list(csv.DictReader((REAL / "provenance.csv").open()))[:limit]
    rng = np.random.default_rng(seed)
    sources = {}
    for row in rows:
        person = row["annotation_name"].split("/")[3]
        (root / person).mkdir(parents=True, exist_ok=True)
        source = f"{person}/{row['image']}"
        if wide:
            with Image.open(REAL / "images" / row["image"]) as photo:
                canvas = make_canvas(photo.convert("RGB"), "16:9", rng)
            canvas.image.save(root / source)
            sources[source] = (row["annotation_name"], canvas.rect)
        else:
            shutil.copy(REAL / "images" / row["image"], root / source)
            sources[source] = (row["annotation_name"], None)
    return sources


class TimedFramer(Framer):
    """A Framer that adds up the seconds its detector spends (landmarks, masks, the second-person check)."""

    def __init__(self, size, replace_background=False):
        super().__init__(size, replace_background=replace_background)
        self.detection = 0.0
        depth = [0]  # another_person calls detect: count the outer call only
        for method in ("detect", "another_person"):
            inner = getattr(self.detector, method)

            def timed(*args, inner=inner, **kwargs):
                start = time.perf_counter()
                depth[0] += 1
                try:
                    return inner(*args, **kwargs)
                finally:
                    depth[0] -= 1
                    if not depth[0]:
                        self.detection += time.perf_counter() - start

            setattr(self.detector, method, timed)


def measure(kind: str, limit: int | None) -> None:
    published = read_annotation_csv(REAL / "keypoints.csv", (256, 176))
    with tempfile.TemporaryDirectory() as tmp:
        root, out = Path(tmp) / "catalogue", Path(tmp) / "prepared"
        sources = catalogue(root, limit, wide=kind == "wide")
        framers = []

        def factory(size, plain):
            framers.append(TimedFramer(size, plain))
            return framers[-1]

        start = time.perf_counter()
        _, report = prepare_photos(root, out, progress=False, framer_factory=factory)
        total = time.perf_counter() - start
        n = report.framed_now
        s = report.seconds
        detection = framers[0].detection
        print(f"{kind}: {len(sources)} photos of {len({k.split('/')[0] for k in sources})} people, "
              f"{sum(report.prepared.values())} prepared "
              f"({', '.join(f'{k} {len(v)}' for k, v in report.left_out.items() if v) or 'none left out'})")
        print(f"  s/photo: reading {s['reading'] / n:.3f}, framing {s['framing'] / n:.3f} (of which detection "
              f"{detection / n:.3f}), writing {s['writing'] / n:.3f}; whole run {total / n:.3f} ({total:.1f} s)")
        counts = np.zeros((len(THRESHOLDS), 2))
        people = list(csv.DictReader((out / "people.csv").open()))
        tables = {split: read_annotation_csv(out / f"annotation-{split}.csv", (256, 176)) for split in report.prepared}
        frame_box = (0.0, 0.0, 176.0, 256.0)
        for row in people:
            annotation, rect = sources[row["source"]]
            truth = published[annotation]
            xy = truth.xy
            if rect is not None:  # the published joints: photo -> canvas -> the crop framing chose -> the picture
                record = json.loads((out / "framing" / row["name"].replace(".png", ".json")).read_text())
                crop = record["framing"]["crop"]
                xy = to_frame(to_frame(xy, frame_box, (rect.left, rect.top, rect.width, rect.height)),
                              (crop["left"], crop["top"], crop["width"], crop["height"]), frame_box)
            found = tables[row["split"]][row["name"]]
            counts += pck_counts(np.where(found.visible[:, None], found.xy, np.nan), xy, truth.visible, THRESHOLDS)
        print("  prepared annotation rows against the published keypoints: PCK "
              + ", ".join(f"@{t} {100 * c / m:.1f}%" for t, (c, m) in zip(THRESHOLDS, counts)))


def detector_ceiling(limit: int | None) -> None:
    from PIL import Image

    published = read_annotation_csv(REAL / "keypoints.csv", (256, 176))
    rows = list(csv.DictReader((REAL / "provenance.csv").open()))[:limit]
    counts = np.zeros((len(THRESHOLDS), 2))
    with PoseDetector(segmentation=True) as detector:
        for row in rows:
            truth = published[row["annotation_name"]]
            with Image.open(REAL / "images" / row["image"]) as photo:
                found = detector.detect(photo.convert("RGB"))
            counts += pck_counts(None if found is None else found.pose().xy, truth.xy, truth.visible, THRESHOLDS)
    print(f"the detector on the {len(rows)} photos as they are (its own accuracy): PCK "
          + ", ".join(f"@{t} {100 * c / m:.1f}%" for t, (c, m) in zip(THRESHOLDS, counts)))


def files_of(out: Path) -> dict[str, bytes]:
    """Every file of a prepared folder, the report without its seconds."""
    files = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name == "prepare-report.json":
            report = json.loads(data)
            data = json.dumps({k: v for k, v in report.items() if not k.startswith("seconds")}).encode()
        files[str(path.relative_to(out))] = data
    return files


def cpu_seconds() -> float:
    """CPU seconds of this process and its ended children (the workers, once joined)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def scaling(limit: int | None, counts: list[int]) -> None:
    """Prepare the catalogue as it is with each number of workers; the parts that do not spread, timed alone."""
    from cfld.data.photos.catalogue import read_folder_catalogue
    from cfld.workers import usable_cores

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "catalogue"
        catalogue(root, limit, wide=False)
        start = time.perf_counter()
        photos = len(read_folder_catalogue(root).photos)
        reading = (time.perf_counter() - start) / photos
        rows, reference = [], None
        for workers in counts:
            out = Path(tmp) / f"prepared-{workers}"
            cpu, start = cpu_seconds(), time.perf_counter()
            _, report = prepare_photos(root, out, progress=False, workers=workers)
            total = time.perf_counter() - start
            cpu = cpu_seconds() - cpu
            files = files_of(out)
            reference = reference or files
            same = files == reference
            rows.append((workers, total, report.wall, cpu / total, max(report.peak_memory), same))
            start = time.perf_counter()  # the dataset's files alone: a rerun finds every record and rewrites them
            for path in out.iterdir():
                if path.is_file() or path.name.startswith(("train_", "test_")):
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
            prepare_photos(root, out, progress=False, workers=1)
            dataset = (time.perf_counter() - start) / photos - reading  # the rerun reads the catalogue again
    one = rows[0]
    print(f"scaling: {photos} photos as they are, {usable_cores()} usable cores "
          f"({os.cpu_count()} in the machine)")
    print(f"{'workers':>7}  {'whole run':>10}  {'photos/s':>8}  {'framing photos/s':>16}  {'speed-up':>8}  "
          f"{'CPU s per s':>11}  {'peak MB per worker':>18}  same files as 1 worker")
    for workers, total, wall, use, peak, same in rows:
        print(f"{workers:>7}  {total:>9.1f}s  {photos / total:>8.1f}  {photos / wall:>16.1f}  "
              f"{one[1] / total:>7.2f}x  {use:>11.2f}  {peak / 1e6:>18.0f}  {'yes' if same else 'NO'}")
    per_worker = one[2] / photos  # framing seconds per photo in one worker
    best = max(rows[: usable_cores()], key=lambda row: one[1] / row[1])
    efficiency = (one[2] / best[2]) / best[0]
    print(f"parts that do not spread: reading the catalogue {1000 * reading:.1f} ms/photo (every process), writing "
          f"the dataset {1000 * dataset:.1f} ms/photo (the main process); framing {1000 * per_worker:.0f} ms/photo "
          f"in one worker, {100 * efficiency:.0f}% efficiency at {best[0]} workers")
    for label, cores in (("16 cores", 16), ("8 machines x 16 cores", 128)):
        seconds = reading + dataset + per_worker / (cores * efficiency)
        print(f"projected, {label}: {1 / seconds:.0f} photos/s, 100,000 photos in {100_000 * seconds / 60:.0f} min "
              f"(framing alone {cores * efficiency / per_worker:.0f} photos/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N photos")
    parser.add_argument("--only", choices=["own", "wide"], default=None, help="one catalogue")
    parser.add_argument("--scaling", action="store_true", help="only the workers' table")
    parser.add_argument("--workers", default=None, metavar="N,N,...",
                        help="the worker counts of --scaling (default: 1 to one more than the usable cores)")
    args = parser.parse_args()
    if not (REAL / "provenance.csv").is_file():
        sys.exit(f"needs ../shared/data/deepfashion-real beside the repository (looked for {REAL})")
    if args.scaling:
        from cfld.workers import usable_cores

        counts = [int(n) for n in args.workers.split(",")] if args.workers else list(range(1, usable_cores() + 2))
        scaling(args.limit, counts)
        return
    detector_ceiling(args.limit)
    for kind in [args.only] if args.only else ["own", "wide"]:
        measure(kind, args.limit)


if __name__ == "__main__":
    main()

"""What every dataset preparation shares: reading the published lists, planning outputs, writing them.

A prepared dataset is a folder the :class:`~cfld.data.PoseTransferDataset` reads and that also has the
layout the original CFLD code reads (images named as in the pairs and annotation files, one folder per
split). Preparation never touches its sources and works in two passes:

1. **Plan**: every output file (image copy, resized image, CSV, manifest) is compared with what is
   already there. A file that is up to date (same text; an image not older than its source) is
   skipped, so re-running is a no-op. A file that exists but differs is refused unless ``overwrite``.
2. **Write**: the remaining files are written atomically (temp file + rename), images on a few
   threads with a progress bar, the manifest :data:`MANIFEST` last, so a folder without a manifest
   is an unfinished preparation and a re-run simply completes it.

Images named in a list or pair file but absent from the sources are reported (count and the first
few names), as are unreadable photos; the pairs that use them are left out of the prepared pair file.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import InputError
from ..images import load_image
from ..io import atomic_path, atomic_write_text, check_output_folder, remove_stale_temporaries, writing
from ..pose.formats import PoseTable
from ..pose.skeleton import Size

#: The manifest of a prepared dataset folder; its ``format`` field is :data:`MANIFEST_FORMAT`.
MANIFEST = "cfld-dataset.json"
MANIFEST_FORMAT = "cfld.dataset/v1"
#: Label of the images copied byte for byte from the release (no resizing).
ORIGINAL = "original"
#: How many missing or unreadable names a report spells out.
SHOW = 5


# -- writing --------------------------------------------------------------------------------------


def annotation_csv_text(table: PoseTable, names: Iterable[str], key: Callable[[str], str] = lambda n: n) -> str:
    """Rows ``name:[y...]:[x...]`` (header ``name:keypoints_y:keypoints_x``) of ``names`` of ``table``.

    ``key`` renames a row (e.g. to DeepFashion's flattened name); coordinates are written as in the
    release (integers without a decimal point, -1 = missing joint).
    """
    index = {key(name): i for i, name in enumerate(table.names)}
    lines = ["name:keypoints_y:keypoints_x"]
    for name in names:
        i = index[name]
        lines.append(f"{name}:{_numbers(table.ys[i])}:{_numbers(table.xs[i])}")
    return "\n".join(lines) + "\n"


def _numbers(values: np.ndarray) -> str:
    return "[" + ",".join(str(int(v)) if float(v).is_integer() else repr(float(v)) for v in values) + "]"


def pairs_csv_text(pairs: Iterable[tuple[str, str]]) -> str:
    return "from,to\n" + "".join(f"{a},{b}\n" for a, b in pairs)


@dataclass
class ImageJob:
    """One image to put into the prepared folder: a byte copy (``size`` None) or a bicubic resize."""

    name: str
    source: Path
    dest: Path
    size: Size | None = None


@dataclass
class SplitReport:
    """What preparation found and did for one split (also recorded in the manifest)."""

    split: str
    found: int = 0
    images: int = 0
    pairs: int = 0
    pairs_listed: int = 0
    missing: list[str] = field(default_factory=list)
    no_pose: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        left_out = self.pairs_listed - self.pairs
        out = [f"{self.split}: {self.images:,} images, {self.pairs:,} pairs"
               + (f" ({left_out:,} of {self.pairs_listed:,} listed pairs left out)" if left_out else "")]
        for what, names in (("missing from the sources", self.missing),
                            ("without a keypoint row", self.no_pose),
                            ("unreadable", self.unreadable)):
            if names:
                out.append(f"  {len(names):,} image(s) {what}: {first_names(names)}")
        out.extend(f"  {note}" for note in self.notes)
        return out

    def to_dict(self) -> dict:
        return {
            "images": self.images, "pairs": self.pairs, "pairs_listed": self.pairs_listed,
            "missing": len(self.missing), "missing_first": self.missing[:SHOW],
            "no_pose": len(self.no_pose), "no_pose_first": self.no_pose[:SHOW],
            "unreadable": len(self.unreadable), "unreadable_first": self.unreadable[:SHOW],
        }


def first_names(names: Sequence[str]) -> str:
    """The first :data:`SHOW` of ``names``, and how many more, for a report line or an error sentence."""
    shown = ", ".join(names[:SHOW])
    return shown + (f", ... ({len(names) - SHOW:,} more)" if len(names) > SHOW else "")


def text_state(path: Path, text: str) -> str:
    """``"new"``, ``"same"`` or ``"differs"``: a text file of a prepared folder against what would be written."""
    if not path.exists():
        return "new"
    try:
        return "same" if path.read_text(encoding="utf-8") == text else "differs"
    except (OSError, UnicodeDecodeError):
        return "differs"


def refuse_differing(out: Path, paths: Sequence[Path], overwrite: bool) -> None:
    """One sentence for files of a prepared folder that exist and differ from what would be written, unless
    ``overwrite``."""
    if paths and not overwrite:
        names = [str(path.relative_to(out)) for path in paths]
        raise InputError(out, f"already holds {len(names):,} file(s) that differ from what this preparation writes "
                              f"({first_names(names)}); pass --overwrite (overwrite=True) to replace them")


#: Builds every text file of the folder (CSVs, lists, and the manifest last) given the names of the
#: images found unreadable while writing, whose pairs must be left out.
TextBuilder = Callable[[set[str]], dict[Path, str]]


@dataclass
class Plan:
    """Every file of a prepared folder: the images to copy or resize, and the text files built after."""

    out: Path
    overwrite: bool
    images: list[ImageJob]
    texts: TextBuilder

    def image_state(self, job: ImageJob) -> str:
        try:
            dest = job.dest.stat()
        except FileNotFoundError:
            return "new"
        src = job.source.stat()
        if dest.st_mtime_ns >= src.st_mtime_ns and (job.size is not None or dest.st_size == src.st_size):
            return "same"
        return "differs"

    def _refuse_differing(self, paths: list[Path]) -> None:
        refuse_differing(self.out, paths, self.overwrite)

    def run(self, workers: int = 8, progress: bool = True) -> tuple[dict[str, int], set[str]]:
        """Check everything, write the images that are not up to date, then the text files.

        Returns the counts (``images_written``, ``images_skipped``, ``files_written``) and the names of
        the unreadable images.
        """
        for folder in {self.out, *(job.dest.parent for job in self.images)}:
            remove_stale_temporaries(folder)  # half-written files of a preparation that was killed
        image_states = [self.image_state(job) for job in self.images]
        self._refuse_differing([job.dest for job, s in zip(self.images, image_states) if s == "differs"])
        texts = self.texts(set())
        self._refuse_differing([path for path, text in texts.items()
                                if path.name != MANIFEST and text_state(path, text) == "differs"])
        todo = [job for job, s in zip(self.images, image_states) if s != "same"]
        unreadable: set[str] = set()
        written = 0
        before = len(self.images) - len(todo)

        def kept() -> str:  # what a full disk leaves: every image written is whole and is not written again
            done = written + before
            return (f"the {done:,} image(s) already written are kept: free space and run the same command again to "
                    "go on (it skips them)") if done else "free space and run the same command again"

        if todo:
            from tqdm.auto import tqdm

            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, tqdm(
                total=len(todo), desc="preparing images", unit="img", disable=not progress
            ) as bar:
                try:
                    # threads read, check and resize; this thread writes (atomic writes are not thread-safe)
                    for job, data in zip(todo, pool.map(_image_bytes, todo)):
                        if data is None:
                            unreadable.add(job.name)
                        else:
                            with writing(kept=kept):
                                _write_with_mtime(job, data)
                            written += 1
                        bar.update()
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)  # not the reading of every image still queued
                    raise
        if unreadable:
            texts = self.texts(unreadable)
        states = {path: text_state(path, text) for path, text in texts.items()}
        self._refuse_differing([path for path, s in states.items() if s == "differs" and path.name != MANIFEST])
        for path, text in texts.items():  # in order: the manifest, last, marks the folder complete
            if states[path] != "same":
                with writing("the list" if path.name != MANIFEST else "the manifest", kept=(
                        f"all {len(self.images) - len(unreadable):,} image(s) are written and kept: free space and "
                        "run the same command again to write the lists and the manifest")):
                    atomic_write_text(path, text, overwrite=True)
        counts = {
            "images_written": sum(1 for job in todo if job.name not in unreadable),
            "images_skipped": len(self.images) - len(todo),
            "files_written": sum(1 for s in states.values() if s != "same"),
        }
        return counts, unreadable


def _image_bytes(job: ImageJob) -> bytes | None:
    """The bytes to write for one image: the source's own (checked) or a resized PNG; None if unreadable."""
    try:
        if job.size is None:
            with Image.open(job.source) as image:
                # a JPEG is decoded at 1/8 scale: fast, yet it reads the whole stream, so a truncated
                # or corrupt download is caught here rather than in the middle of training
                image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
            return job.source.read_bytes()
        # the one reader every other part uses (upright by EXIF, 16-bit scaled, size-guarded), so a resized copy
        # shows what training on the original would see
        resized = load_image(job.source).resize((job.size[1], job.size[0]), Image.BICUBIC)
    except (InputError, OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning):
        return None
    buffer = io.BytesIO()
    resized.save(buffer, format="PNG", compress_level=1)  # lossless either way; level 1 is ~1.7x faster
    return buffer.getvalue()


def _write_with_mtime(job: ImageJob, data: bytes) -> None:
    """Write atomically, giving the file its source's modification time (what "up to date" compares)."""
    stat = job.source.stat()
    what = "the copied photo" if job.size is None else "the resized picture"
    with atomic_path(job.dest, overwrite=True, what=what, needed=len(data)) as tmp:
        tmp.write_bytes(data)
        os.utime(tmp, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def size_label(size: Size | None) -> str:
    return ORIGINAL if size is None else f"{size[0]}x{size[1]}"


def resized_name(name: str) -> str:
    """Resized images are lossless PNGs next to the originals' names: ``x.jpg`` -> ``x.png``."""
    return str(Path(name).with_suffix(".png"))


def summary(title: str, out: Path, reports: Sequence[SplitReport], counts: dict[str, int]) -> str:
    """The lines `cfld prepare` prints at the end."""
    lines = [f"{title} -> {out}"]
    for report in reports:
        lines.extend(report.lines())
    lines.append(
        f"images: {counts['images_written']:,} written, {counts['images_skipped']:,} already up to date; "
        f"{counts['files_written']} list/manifest file(s) written"
    )
    return "\n".join(lines)


def check_output_dir(out: Path, sources: Sequence[Path]) -> Path:
    """The output folder, resolved; refuses a folder inside (or equal to) a source, which it must not touch."""
    out = Path(out).resolve()
    for source in sources:
        source = Path(source).resolve()
        if out == source or source in out.parents:
            raise InputError(out, f"lies inside the source folder {source}; preparation never writes into its sources")
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder")
    return check_output_folder(out)


# -- one split, any dataset -----------------------------------------------------------------------------


@dataclass
class SplitSource:
    """What the release offers for one split, with every name already turned into its key.

    Attributes:
        split: ``"train"`` or ``"test"``.
        names: the split's images, in list order (the images the prepared folder receives).
        pairs: the (source, target) pairs, as listed.
        table: the split's keypoint rows; ``key`` turns a row name into its key.
        files: key -> the source photo, for every key found among the sources.
        image_dir: the folder of the byte-for-byte copies (``train_highres`` as the original names it).
        pairs_file, annotations_file: names of the prepared CSVs.
        list_file: name of the prepared image list, if the dataset has one.
        notes: lines for the report (e.g. how the pairs were made).
    """

    split: str
    names: list[str]
    pairs: list[tuple[str, str]]
    table: PoseTable
    key: Callable[[str], str]
    files: dict[str, Path]
    image_dir: str
    pairs_file: str
    annotations_file: str
    list_file: str | None = None
    notes: list[str] = field(default_factory=list)


def prepare_splits(
    dataset: str,
    frame: Size,
    out: Path,
    splits: Sequence[SplitSource],
    sizes: Sequence[Size | None],
    sources: dict[str, str],
    overwrite: bool = False,
    workers: int = 8,
    progress: bool = True,
) -> tuple[dict, list[SplitReport], dict[str, int]]:
    """Plan and write a prepared folder; returns its manifest, the split reports and the write counts.

    The manifest is kept up to date rather than protected: splits and image sizes prepared by earlier
    runs stay listed, so ``--split test`` then ``--split train``, or adding ``--size 256x176`` later,
    just add to the folder.
    """
    sizes = list(dict.fromkeys(sizes)) or [None]
    earlier = earlier_manifest(out, dataset)
    reports = []
    images: list[ImageJob] = []
    for src in splits:
        report = SplitReport(src.split, notes=list(src.notes))
        wanted = list(dict.fromkeys([*src.names, *(name for pair in src.pairs for name in pair)]))
        extra = len(wanted) - len(dict.fromkeys(src.names))
        if extra:
            report.notes.append(f"{extra:,} image(s) used by pairs but not in the image list were added")
        report.missing = [name for name in wanted if name not in src.files]
        report.found = len(wanted) - len(report.missing)
        keyed_rows = {src.key(name) for name in src.table.names}
        paired = list(dict.fromkeys(name for pair in src.pairs for name in pair))
        report.no_pose = [name for name in paired if name not in keyed_rows]
        report.pairs_listed = len(src.pairs)
        reports.append(report)
        for name in wanted:
            if name in src.files:
                for size in sizes:
                    folder = image_folder(src, size)
                    dest = out / folder / (name if size is None else resized_name(name))
                    images.append(ImageJob(name, src.files[name], dest, size))

    def texts(unreadable: set[str]) -> dict[Path, str]:
        files: dict[Path, str] = {}
        manifest = {"format": MANIFEST_FORMAT, "dataset": dataset, "frame": list(frame), "sources": sources,
                    "splits": dict(earlier.get("splits", {}))}
        for src, report in zip(splits, reports):
            report.unreadable = [name for name in dict.fromkeys(n for p in src.pairs for n in p) if name in unreadable]
            report.unreadable += [name for name in src.names if name in unreadable and name not in report.unreadable]
            bad = set(report.missing) | set(report.no_pose) | unreadable
            kept = [pair for pair in src.pairs if pair[0] not in bad and pair[1] not in bad]
            report.pairs = len(kept)
            report.images = report.found - len(report.unreadable)
            files[out / src.pairs_file] = pairs_csv_text(kept)
            rows = [src.key(name) for name in src.table.names]
            files[out / src.annotations_file] = annotation_csv_text(src.table, rows, src.key)
            entry = {"pairs": src.pairs_file, "annotations": src.annotations_file}
            if src.list_file:
                present = [name for name in dict.fromkeys(src.names) if name in src.files and name not in unreadable]
                files[out / src.list_file] = "".join(f"{name}\n" for name in present)
                entry["list"] = src.list_file
            entry["images"] = dict(manifest["splits"].get(src.split, {}).get("images", {}))
            entry["images"].update({
                size_label(size): {"dir": image_folder(src, size), "suffix": None if size is None else ".png"}
                for size in sizes
            })
            entry["report"] = report.to_dict()
            manifest["splits"][src.split] = entry
        files[out / MANIFEST] = json.dumps(manifest, indent=2) + "\n"
        return files

    plan = Plan(out, overwrite, images, texts)
    counts, unreadable = plan.run(workers=workers, progress=progress)
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    return manifest, reports, counts


def earlier_manifest(out: Path, dataset: str) -> dict:
    """The manifest already in ``out`` (empty if none or unreadable); another dataset's is refused."""
    try:
        earlier = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(earlier, dict) or earlier.get("format") != MANIFEST_FORMAT:
        return {}
    if earlier.get("dataset") != dataset:
        raise InputError(out, f"holds a prepared {earlier.get('dataset')!r} dataset; "
                              f"prepare {dataset} in another folder")
    return earlier


def image_folder(src: SplitSource, size: Size | None) -> str:
    return src.image_dir if size is None else f"{src.split}_{size[0]}x{size[1]}"

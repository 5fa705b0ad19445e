"""Your own photos as a dataset: ``cfld prepare photos`` turns a catalogue into a prepared folder.

A **catalogue** is a folder with one subfolder per person (``FOLDER/<person>/...``, any depth, any number of
photos each, any size and format the image reader takes), or a CSV of ``photo,person`` rows (``--people``),
the photos named relative to the folder. What comes out is the layout ``cfld prepare deepfashion`` writes, so
``cfld train``, ``cfld sample`` and ``cfld evaluate`` take it unchanged:

* ``train_HxW/``, ``test_HxW/``: every usable photo **framed** the way the model's training photos are
  (:mod:`cfld.framing`: the person found, a crop of the model's aspect placed as DeepFashion's photos place
  their person), as a PNG at ``size`` (256x176 by default), under its flattened name ``<person>_<photo>.png``
  (:mod:`.names`: the letters of any script kept, valid on Windows, macOS and Linux);
* ``annotation-{train,test}.csv``: the poses detected in those pictures, in the benchmark's format
  (``name:[y...]:[x...]``, whole pixels of the picture, -1 for a joint not found);
* ``pairs-{train,test}.csv``: the ordered pairs of two different photos of one person, at most
  ``max_pairs_per_person`` of them per person (drawn with the seed), so that one person with 40 photos does
  not dominate; ``{train,test}.lst``;
* ``people.csv`` (``name,person,split,source``): every prepared photo, its person, its split, and its path
  relative to the catalogue, so that the split can be checked and every name traced back;
* ``prepare-report.json``: every photo left out and why (no person, several people, a person too small, a crop
  mostly padding, too few joints, unreadable (a link to no file too), a name that cannot be used, a duplicate,
  the only usable photo of its person), the seconds spent, and the counts;
* ``cfld-dataset.json``, the manifest, written last (dataset ``photos``).

The split is **by person, never by photo**: people are ranked by a hash of (seed, person) and the first
``round(test_fraction x people)`` go to test, so adding people later leaves the others where they were.

It is **resumable**: each photo's framing is kept in ``framing/<name>.png`` and ``framing/<name>.json`` (the crop
box in the photo's own pixels, the pose, the SHA-1 of the photo's bytes) as soon as it is made, so an interrupted run
goes on where it stopped and a finished one re-runs in seconds. The dataset's files are built from those
records; a file that exists and differs from what this run would write (other options, changed photos) is
replaced only with ``overwrite``. Every file is written atomically. Framing and detection run in ``workers``
processes, one detector each (MediaPipe, the ``detect`` extra), and over the processes a launcher started
(:mod:`.framing_run`); the files are the same byte for byte however the work is cut.

Its jobs: :mod:`.catalogue` reads and checks the catalogue, :mod:`.names` makes each photo's prepared name (valid
and distinct on Windows, macOS and Linux, in any script), :mod:`.framing_records` frames the photos and keeps
their records, :mod:`.framing_run` shares the photos over workers and launched processes, :mod:`.files` makes the
split, the pairs and the dataset's files, :mod:`.report` says what was done; :func:`prepare_photos` runs them in
three phases.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from ...errors import InputError
from ...images import MAX_OUTPUT_SIDE, MIN_SIDE
from ...io import atomic_write_text, writing
from ...launch import Processes
from ...pose.skeleton import DEEPFASHION_SIZE, NUM_JOINTS, Size, parse_size
from ..prepare import MANIFEST, MANIFEST_FORMAT, ORIGINAL, check_output_dir, earlier_manifest, text_state
from .catalogue import Catalogue, Photo, read_folder_catalogue, read_people_csv
from .files import annotations_file, dataset_files, image_dir, pairs_file, split_people, write_dataset
from .framing_records import FRAMING_DIR, Record
from .framing_run import FramingRun
from .report import REPORT, SPLITS, PhotosReport, write_report

DATASET = "photos"
DEFAULT_SIZE = DEEPFASHION_SIZE
DEFAULT_TEST_FRACTION = 0.1
DEFAULT_MAX_PAIRS = 50
DEFAULT_MIN_JOINTS = 8  # of 18; the DeepFashion test rows the paper pairs have 13.5 on average


def prepare_photos(
    folder: str | os.PathLike | None,
    out: str | os.PathLike,
    *,
    people: str | os.PathLike | None = None,
    size: Size = DEFAULT_SIZE,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = 0,
    max_pairs_per_person: int = DEFAULT_MAX_PAIRS,
    min_joints: int = DEFAULT_MIN_JOINTS,
    plain_background: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    framer_factory: Callable[[Size, bool], object] | None = None,
    workers: int = 1,
    processes: Processes | None = None,
    merge: bool = False,
) -> tuple[dict | None, PhotosReport]:
    """Prepare a catalogue of your own photos (see the module docstring); returns the manifest and the report.

    Args:
        folder: the catalogue, one subfolder per person; with ``people``, the folder its paths are relative to
            (default: the CSV's folder).
        out: the prepared folder (created; never inside the catalogue).
        people: a CSV ``photo,person`` instead of person folders.
        size: (H, W) of the prepared pictures: 256x176 (DeepFashion's) or 512x352, or 128x64 (Market's shape).
        test_fraction: the share of people in the test split (0: train only, 1: test only).
        seed: draws the split and the pairs kept per person.
        max_pairs_per_person: cap on one person's ordered pairs.
        min_joints: a photo whose pose shows fewer joints (of 18) is left out.
        plain_background: lay everything outside the person on the training photos' plain colour.
        overwrite: replace files of an earlier preparation that differ from what this one writes.
        framer_factory: ``(size, plain_background) -> Framer`` (default: :class:`cfld.framing.Framer`); with
            several workers it must pickle (a module-level function or class).
        workers: processes framing the photos, one detector each (:class:`cfld.workers.WorkerPool`; 1: here).
        processes: this process among several a launcher started (:func:`cfld.launch.launched`): each frames
            its share (every world-th photo), and the main one writes the dataset's files once all are done; the
            others return None for the manifest.
        merge: frame nothing; write the dataset from the framing records earlier runs (or launched processes)
            kept, refusing when a photo has none.
    """
    size = parse_size(size, "--size")
    if not all(MIN_SIDE <= side <= MAX_OUTPUT_SIDE for side in size):
        raise InputError("--size", f"{size[0]}x{size[1]} is out of range: each side must be from {MIN_SIDE} to "
                                   f"{MAX_OUTPUT_SIDE} pixels")
    if not 0 <= test_fraction <= 1:
        raise InputError("--test-fraction", f"must lie between 0 and 1, got {test_fraction:g}")
    if max_pairs_per_person < 1:
        raise InputError("--max-pairs-per-person", f"must be at least 1, got {max_pairs_per_person}")
    if not 0 <= min_joints <= NUM_JOINTS:
        raise InputError("--min-joints", f"must lie between 0 and {NUM_JOINTS}, got {min_joints}")
    catalogue, sources = _read_catalogue(folder, people)
    out = check_output_dir(Path(out), sources)
    settings = {"size": list(size), "plain_background": bool(plain_background)}
    options = settings | {"test_fraction": float(test_fraction), "seed": seed,
                          "max_pairs_per_person": max_pairs_per_person, "min_joints": min_joints}
    processes = processes or Processes()
    _check_earlier(out, size, overwrite, remove=processes.main)
    report = PhotosReport(photos=len(catalogue.photos) + len(catalogue.left_out), notes=list(catalogue.notes),
                          workers=workers, processes=processes.world)
    candidates = _candidates(catalogue, report)
    framing = FramingRun(out, catalogue.digests, settings, size, plain_background, framer_factory, workers, processes)
    records = framing.run(candidates, overwrite, merge, report, progress)
    if not processes.main:
        return None, report
    splits, files, images = _split_and_pair(out, catalogue, candidates, records, options, size, report)
    manifest = _write_prepared(out, catalogue, people, size, options, splits, files, images, overwrite, report)
    return manifest, report


def _read_catalogue(folder: str | os.PathLike | None,
                    people: str | os.PathLike | None) -> tuple[Catalogue, list[Path]]:
    """The catalogue of person folders, or of a CSV of ``photo,person``; and the folders it is read from."""
    if people is not None:
        catalogue = read_people_csv(people, folder)
        return catalogue, [catalogue.root, Path(people).resolve().parent]
    if folder is None:
        raise InputError("cfld prepare photos", "needs -i FOLDER (one subfolder per person) or --people FILE")
    catalogue = read_folder_catalogue(folder)
    return catalogue, [catalogue.root]


def _check_earlier(out: Path, size: Size, overwrite: bool, remove: bool = True) -> None:
    """Refuse a folder holding another dataset, or photos prepared at another size unless ``overwrite`` (then the
    pictures of the other size go, where ``remove``: by the main process only)."""
    earlier = earlier_manifest(out, DATASET)
    if not earlier or earlier.get("frame") == list(size):
        return
    if not overwrite:
        raise InputError(out, f"holds photos prepared at {'x'.join(map(str, earlier.get('frame', [])))}; prepare "
                              f"{size[0]}x{size[1]} in another folder, or pass --overwrite to replace them")
    if not remove:
        return
    for entry in (earlier.get("splits") or {}).values():  # --overwrite: the pictures of the other size go
        for images in (entry.get("images") or {}).values():
            folder = out / str(images.get("dir", ""))
            if folder.parent == out and folder.is_dir() and folder.name.startswith(SPLITS):
                shutil.rmtree(folder, ignore_errors=True)


def _candidates(catalogue: Catalogue, report: PhotosReport) -> list[Photo]:
    """The photos of people with at least two photos, in catalogue order; the photos set aside while reading the
    catalogue (a name that is not text, a link to no file), the duplicates and each person's only photo are
    reported as left out."""
    by_person = catalogue.by_person()
    for reason, source, sentence in catalogue.left_out:
        report.left_out[reason].append({"photo": source, "reason": sentence})
    for source, original in catalogue.duplicates.items():
        report.left_out["duplicate"].append({"photo": source, "reason": f"the same file as {original}"})
    for person, photos in by_person.items():
        if len(photos) < 2:
            report.left_out["alone"].append({"photo": photos[0].source, "reason": f"the only photo of {person}"})
    return [photo for photos in by_person.values() if len(photos) >= 2 for photo in photos]


def _split_and_pair(out: Path, catalogue: Catalogue, candidates: list[Photo], records: dict[str, Record],
                    options: dict, size: Size,
                    report: PhotosReport) -> tuple[list[str], dict[Path, str], dict[Path, Path]]:
    """2. The usable photos, the split by person, the pairs: the splits made, the dataset's text files (path ->
    text) and its pictures (path -> framing picture). Refused where no person has two usable photos."""
    min_joints = options["min_joints"]
    usable: dict[str, list[Photo]] = {}
    for photo in candidates:
        record = records[photo.name]
        if record.outcome != "framed":
            report.left_out[record.outcome].append({"photo": photo.source, "reason": record.message})
        elif record.pose.num_visible < min_joints:
            report.left_out["too_few_joints"].append({
                "photo": photo.source,
                "reason": f"only {record.pose.num_visible} of {NUM_JOINTS} joints were found "
                          f"(--min-joints {min_joints})"})
        else:
            usable.setdefault(photo.person, []).append(photo)
    for person in [p for p, photos in usable.items() if len(photos) < 2]:
        for photo in usable.pop(person):
            report.left_out["alone"].append({"photo": photo.source,
                                             "reason": f"the only usable photo of {person}; no pair is possible"})
    if not usable:
        listed = write_report(out, report, options)
        where = f" (every photo left out is listed in {out / REPORT})" if listed else ""
        raise InputError(catalogue.root, f"has no person with two usable photos, so no pair can be made{where}")
    split_of = split_people(sorted(usable), options["test_fraction"], options["seed"])
    splits = [split for split in SPLITS if split in split_of.values()]
    files, images = dataset_files(out, usable, split_of, splits, records, size, options["seed"],
                                  options["max_pairs_per_person"], report)
    return splits, files, images


def _write_prepared(out: Path, catalogue: Catalogue, people: str | os.PathLike | None, size: Size, options: dict,
                    splits: list[str], files: dict[Path, str], images: dict[Path, Path], overwrite: bool,
                    report: PhotosReport) -> dict:
    """3. The dataset's files: pictures (links to the framing), texts, the report, the manifest last; returns the
    manifest."""
    sources = {"images": str(catalogue.root)} | ({"people": str(Path(people).resolve())} if people else {})
    manifest = {"format": MANIFEST_FORMAT, "dataset": DATASET, "frame": list(size), "sources": sources,
                "options": options, "splits": {}}
    for split in splits:
        folder_entry = {"dir": image_dir(split, size), "suffix": ".png"}
        manifest["splits"][split] = {
            "pairs": pairs_file(split), "annotations": annotations_file(split), "list": f"{split}.lst",
            "images": {ORIGINAL: folder_entry, f"{size[0]}x{size[1]}": folder_entry},
            "report": {"people": report.people[split], "images": report.prepared[split], "pairs": report.pairs[split]},
        }
    kept = (f"the framing of every photo is kept in {out / FRAMING_DIR}: free space and run the same command again "
            "to finish (no photo is framed again)")
    with writing(kept=kept):  # a full disk: say what is kept and how to go on
        write_dataset(out, files, images, [out / image_dir(split, size) for split in SPLITS], overwrite, report)
        with writing("the report"):
            write_report(out, report, options, must=True)
        text = json.dumps(manifest, indent=2) + "\n"
        if text_state(out / MANIFEST, text) != "same":
            with writing("the manifest"):
                atomic_write_text(out / MANIFEST, text, overwrite=True)
    return manifest

"""``cfld prepare``: build the DeepFashion and Market-1501 train/test sets the paper uses, or a dataset of your own
photos (``cfld prepare photos``, :mod:`cfld.data.photos`)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..data.deepfashion import prepare_deepfashion
from ..data.market1501 import prepare_market1501
from ..data.photos import prepare_photos
from ..data.prepare import summary
from ..images import MAX_OUTPUT_SIDE
from .options import parse_size_option, workers_option

COMMON_HELP = """
\b
The sources are only read. Re-running is a no-op: files already up to date are skipped, and
files that exist but differ are replaced only with --overwrite. Images named by the lists but
absent from the sources are reported (how many, and the first few); pairs that use them are left
out. The manifest cfld-dataset.json, written last, records what was prepared.
"""


def _common(command):
    for decorator in reversed([
        click.option("-i", "--images", required=True, type=click.Path(exists=True, file_okay=False),
                     help="The unzipped release (see above)."),
        click.option("-a", "--annotations", required=True, type=click.Path(exists=True, file_okay=False),
                     help="Folder of the published pair and keypoint files."),
        click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
                     help="Folder to build (created)."),
        click.option("--split", "splits", multiple=True, type=click.Choice(["train", "test"]),
                     help="Split to build; repeat for both (default: train and test)."),
        click.option("--size", "sizes", multiple=True, metavar="original|HxW",
                     help="Images to write: 'original' copies the photos unchanged (the default, as the original "
                          "code); HxW writes bicubic-resized PNGs in <split>_HxW/. Repeat for several, e.g. "
                          "--size original --size 256x176."),
        click.option("-j", "--workers", type=click.IntRange(min=1), default=min(8, os.cpu_count() or 1),
                     show_default=True, help="Threads copying or resizing images."),
        click.option("--overwrite", is_flag=True,
                     help="Replace files in OUTPUT that differ from what would be written."),
        click.option("--no-progress", is_flag=True, help="No progress bar."),
    ]):
        command = decorator(command)
    return command


def _sizes(values: tuple[str, ...], original_names: tuple[str, ...]) -> list:
    sizes = []
    for value in values or ("original",):
        if value.lower() in original_names:
            sizes.append(None)
        else:
            sizes.append(parse_size_option(value, "--size", MAX_OUTPUT_SIDE))
    return sizes


def _run(prepare, images, annotations, output, splits, sizes, workers, overwrite, no_progress, title):
    manifest, reports, counts = prepare(
        images, annotations, output, splits=splits or ("train", "test"), sizes=sizes,
        overwrite=overwrite, workers=workers, progress=not no_progress,
    )
    click.echo(summary(title, os.path.abspath(output), reports, counts))


@click.group("prepare", context_settings={"help_option_names": ["-h", "--help"]})
def prepare() -> None:
    """Build the train and test sets of DeepFashion or Market-1501 from their releases, or of your own photos.

    \b
    Examples:
      cfld prepare deepfashion -i In-shop/img_highres -a fashion-annotations -o data/deepfashion
      cfld prepare deepfashion -i In-shop/img_highres -a fashion-annotations -o data/deepfashion \\
          --split test --size original --size 256x176
      cfld prepare market1501 -i Market-1501-v15.09.15 -a market-annotations -o data/market1501
      cfld prepare photos -i my-catalogue -o data/mine      # your own photos, one folder per person
    """


@prepare.command("deepfashion", epilog=COMMON_HELP)
@_common
def deepfashion(images, annotations, output, splits, sizes, workers, overwrite, no_progress) -> None:
    """DeepFashion In-shop: the paper's 101,966 training and 8,570 test pairs (256x176 keypoints).

    \b
    IMAGES: the unzipped Img/img_highres.zip of the In-shop Clothes Retrieval Benchmark
            (img_highres/WOMEN/Blouses_Shirts/id_00000001/02_1_front.jpg ...).
    ANNOTATIONS: train.lst, test.lst, fasion-resize-pairs-{train,test}.csv and
            fasion-resize-annotation-{train,test}.csv as published (either naming style,
            path-style fashion/WOMEN/... or flattened fashionWOMEN...; 'fashion-' spelling accepted).
    OUTPUT gets train_highres/ and test_highres/ (photos under their flattened names, as the
    original's generate_fashion_datasets.py makes them), the CSVs in flattened names, train.lst,
    test.lst and cfld-dataset.json.

    \b
    Example:
      cfld prepare deepfashion -i In-shop/img_highres -a fashion-annotations -o data/deepfashion --size 256x176
    """
    _run(prepare_deepfashion, images, annotations, output, splits, _sizes(sizes, ("original", "highres")),
         workers, overwrite, no_progress, "DeepFashion")


@prepare.command("market1501", epilog=COMMON_HELP)
@_common
def market1501(images, annotations, output, splits, sizes, workers, overwrite, no_progress) -> None:
    """Market-1501: 263,632 training pairs (built as PATN does) and 12,000 test pairs, 128x64.

    \b
    IMAGES: the unzipped Market-1501-v15.09.15/ (bounding_box_train/, bounding_box_test/).
    ANNOTATIONS: market-annotation-{train,test}.csv and market-pairs-test.csv as published; the
            training pairs are built from the keypoints (every ordered pair of photos of one person
            showing both shoulders and hips) unless a market-pairs-train.csv is there.
    OUTPUT gets train/ and test/ (the crops), the CSVs and cfld-dataset.json.

    \b
    Example:
      cfld prepare market1501 -i Market-1501-v15.09.15 -a market-annotations -o data/market1501
    """
    _run(prepare_market1501, images, annotations, output, splits, _sizes(sizes, ("original",)),
         workers, overwrite, no_progress, "Market-1501")


@prepare.command("photos")
@click.option("-i", "--images", "folder", type=click.Path(file_okay=False),
              help="The catalogue: one subfolder per person (FOLDER/<person>/photo.jpg, any depth). With --people, "
                   "the folder the CSV's paths are relative to (default: the CSV's folder).")
@click.option("--people", type=click.Path(dir_okay=False),
              help="A CSV with the header photo,person naming each photo's person, instead of person folders.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Folder to build (created).")
@click.option("--size", default="256x176", show_default=True, metavar="HxW",
              help="Size of the prepared pictures: 256x176 (DeepFashion's), 512x352, or a 2:1 size such as 128x64 "
                   "(framed as Market-1501's crops).")
@click.option("--test-fraction", type=click.FloatRange(0, 1), default=0.1, show_default=True,
              help="Share of the people (not photos) in the test split; 0: train only, 1: test only.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Draws the split and the pairs kept per person.")
@click.option("--max-pairs-per-person", type=click.IntRange(1), default=50, show_default=True,
              help="At most this many ordered pairs of one person's photos (n photos give n(n-1)).")
@click.option("--min-joints", type=click.IntRange(0, 18), default=8, show_default=True,
              help="Leave out a photo whose pose shows fewer of the 18 joints.")
@click.option("--plain-background", is_flag=True,
              help="Lay everything outside the person on the training photos' plain light grey.")
@click.option("--overwrite", is_flag=True,
              help="Replace files of an earlier preparation in OUTPUT that differ from what this one writes.")
@workers_option
@click.option("--merge", is_flag=True,
              help="Frame nothing: write the dataset from the framing records in OUTPUT/framing/ that other runs "
                   "(launched processes, or runs on other machines) kept; refused while a photo has none.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def photos(folder, people, output, size, test_fraction, seed, max_pairs_per_person, min_joints, plain_background,
           overwrite, workers, merge, no_progress) -> None:
    """Your own catalogue as a dataset that cfld train, cfld sample and cfld evaluate take unchanged.

    \b
    FOLDER/                    one subfolder per person, any number of photos each
    ├── alice/front.jpg, alice/back.png, alice/2024/side.jpg ...
    └── bob/...
    or --people people.csv     photo,person rows, paths relative to -i (or to the CSV's folder)

    Every photo is framed the way the model's training photos are (as cfld frame does: the person found
    with MediaPipe, a crop of the model's shape, the head at the top) and its pose detected in the framed
    picture, in --workers processes (one detector each; default: every usable core). OUTPUT gets what
    cfld prepare deepfashion writes:
    train_HxW/ and test_HxW/ (PNG pictures named <person>_<photo>.png), annotation-{train,test}.csv
    (the benchmark's keypoint format), pairs-{train,test}.csv, {train,test}.lst and cfld-dataset.json,
    plus people.csv (name,person,split,source: every prepared photo traced back to its file) and
    prepare-report.json (every photo left out and why: no person, several people, person too small,
    crop mostly padding, too few joints, unreadable, a duplicate, the only usable photo of its person).

    The split is by person, never by photo; pairs are the ordered pairs of two different photos of one
    person, capped per person. Each photo's framing is kept in OUTPUT/framing/ as it is made: an
    interrupted run goes on where it stopped, a finished one re-runs in seconds. Files that differ from
    what this run writes (other photos or options) are replaced only with --overwrite. The files are
    the same, byte for byte, whatever the number of workers or processes.

    Several machines: under torchrun (or accelerate launch, mpirun: the usual RANK/WORLD_SIZE variables)
    with OUTPUT on a disk they share, each process frames every world-th photo and the first one writes
    the dataset once all are done; an interrupted launched run goes on from the records kept. --merge
    writes the dataset from those records alone (say, when the processes framed all but the first one
    was stopped before writing).

    \b
    Examples:
      cfld prepare photos -i catalogue -o data/mine
      cfld prepare photos -i catalogue -o data/mine-512 --size 512x352 --test-fraction 0.2
      cfld prepare photos --people shoot/people.csv -o data/shoot --min-joints 12
      torchrun --nnodes 8 --node_rank R --nproc_per_node 1 --master_addr HOST \\
          -m cfld prepare photos -i /shared/catalogue -o /shared/data/mine
    """
    from ..launch import launched
    from ..workers import default_workers

    processes = launched()
    _, report = prepare_photos(
        folder, output, people=people, size=parse_size_option(size, "--size", MAX_OUTPUT_SIDE),
        test_fraction=test_fraction, seed=seed, max_pairs_per_person=max_pairs_per_person, min_joints=min_joints,
        plain_background=plain_background, overwrite=overwrite, progress=not no_progress,
        workers=workers or default_workers(), processes=processes, merge=merge)
    if not processes.main:  # the main process says what was done
        return
    for line in report.lines(Path(output).resolve()):
        click.echo(line)

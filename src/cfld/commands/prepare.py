"""``cfld prepare``: build the DeepFashion and Market-1501 train/test sets the paper uses."""

from __future__ import annotations

import os

import click

from .options import parse_size_option

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
            sizes.append(parse_size_option(value, "--size"))
    return sizes


def _run(prepare, images, annotations, output, splits, sizes, workers, overwrite, no_progress, title):
    manifest, reports, counts = prepare(
        images, annotations, output, splits=splits or ("train", "test"), sizes=sizes,
        overwrite=overwrite, workers=workers, progress=not no_progress,
    )
    from ..data.prepare import summary

    click.echo(summary(title, os.path.abspath(output), reports, counts))


@click.group("prepare", context_settings={"help_option_names": ["-h", "--help"]})
def prepare() -> None:
    """Build the train and test sets of DeepFashion or Market-1501 from their releases.

    \b
    Examples:
      cfld prepare deepfashion -i In-shop/img_highres -a fashion-annotations -o data/deepfashion
      cfld prepare deepfashion -i In-shop/img_highres -a fashion-annotations -o data/deepfashion \\
          --split test --size original --size 256x176
      cfld prepare market1501 -i Market-1501-v15.09.15 -a market-annotations -o data/market1501
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
    from ..data.deepfashion import prepare_deepfashion

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
    from ..data.market1501 import prepare_market1501

    _run(prepare_market1501, images, annotations, output, splits, _sizes(sizes, ("original",)),
         workers, overwrite, no_progress, "Market-1501")


"""``cfld evaluate``: the paper's metrics (FID, LPIPS, SSIM, PSNR) over folders of images."""

from __future__ import annotations

import json

import click

from ..devices import resolve_device
from ..images import MAX_OUTPUT_SIDE
from ..io import atomic_write_text, check_output_file
from .options import METRIC_NAMES, echo_metrics, parse_metric_list, parse_size_option


@click.command("evaluate")
@click.option("-g", "--generated", required=True, metavar="DIR",
              help="Folder of generated images (searched recursively).")
@click.option("-t", "--ground-truth", required=True, metavar="DIR", help="Folder of the real target images.")
@click.option("--fid-reference", metavar="DIR",
              help="Images FID compares against; the paper uses the training images (DeepFashion train_highres/). "
                   "Default: the ground-truth images (the output says so).")
@click.option("--size", default="256x176", show_default=True, metavar="HxW",
              help="Evaluation size; every image is resized to it (bicubic, antialiased) and quantised to uint8.")
@click.option("--metrics", "metric_list", default=",".join(METRIC_NAMES), show_default=True,
              help="Comma-separated subset of: " + ", ".join(METRIC_NAMES) + ".")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write all numbers (and per-pair values) as JSON.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --output file.")
@click.option("--name-map", type=click.Path(dir_okay=False),
              help="CSV 'generated,ground_truth' of file names, when the names follow none of the known conventions.")
@click.option("--size-mismatch", type=click.Choice(["resize", "error"]), default="resize", show_default=True,
              help="What to do with an image not already at --size: resize it (the original protocol) or stop.")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=16, show_default=True, help="Pairs per batch.")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available).")
@click.option("--inception-weights", type=click.Path(dir_okay=False),
              help="torchvision's inception_v3_google-0cc3c7bd.pth (default: torchvision's cache).")
@click.option("--alexnet-weights", type=click.Path(dir_okay=False),
              help="torchvision's alexnet-owt-7be5be79.pth for LPIPS (default: torchvision's cache).")
@click.option("--download-weights", is_flag=True, help="Download missing torchvision weights into its cache.")
@click.option("--fid-cache", type=click.Path(file_okay=False),
              help="Folder for cached FID reference statistics (default: ~/.cache/cfld/fid).")
@click.option("--no-fid-cache", is_flag=True, help="Neither read nor write cached reference statistics.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def evaluate(generated, ground_truth, fid_reference, size, metric_list, output, overwrite, name_map, size_mismatch,
             batch_size, device, inception_weights, alexnet_weights, download_weights, fid_cache, no_fid_cache,
             quiet) -> None:
    """Score generated images against their ground truth as the paper's Table 2 does.

    Generated files are matched to ground-truth files by name. The name of a generated file may be
    the target's own name, or name source and target as `<source>_2_<target>` or
    `<source>___<target>` (an extra `.jpg` inside and a trailing `_vis` are allowed), the conventions
    of published result sets. DeepFashion's path-style names
    (fashion/WOMEN/Blouses_Shirts/id_00003372/03_3_back.jpg) and flattened names
    (fashionWOMENBlouses_Shirtsid0000337203_3back.jpg) are the same image; extensions are ignored.

    PSNR, SSIM, SSIM_256, LPIPS and FID follow the original implementation exactly; fid_standard is
    the usual TF-Inception FID. Each number is printed with the protocol that produced it.

    \b
    Examples:
      cfld evaluate -g results/ -t deepfashion/test_highres --fid-reference deepfashion/train_highres -o metrics.json
      cfld evaluate -g results/ -t gt/ --metrics psnr,ssim,ssim_256
      cfld evaluate -g pidm_results/ -t gt/ --size 512x352 --inception-weights inception_v3_google-0cc3c7bd.pth
    """
    from ..metrics.evaluate import evaluate_folders

    eval_size = parse_size_option(size, "--size", MAX_OUTPUT_SIDE)
    device = resolve_device(device)
    metrics = parse_metric_list(metric_list)
    if output:
        check_output_file(output, overwrite)
    result = evaluate_folders(
        generated, ground_truth, fid_reference, size=eval_size, metrics=metrics, name_map=name_map,
        on_size_mismatch=size_mismatch, batch_size=batch_size, device=device,
        cache_dir=False if no_fid_cache else fid_cache, progress=not quiet,
        inception_weights=inception_weights, alexnet_weights=alexnet_weights, allow_download=download_weights)
    click.echo(f"{result['num_pairs']} pairs at {eval_size[0]}x{eval_size[1]}")
    echo_metrics(result)
    if output:
        atomic_write_text(output, json.dumps(result, indent=1, allow_nan=False) + "\n", overwrite=overwrite)
        click.echo(f"wrote {output}")

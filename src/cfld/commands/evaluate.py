"""``cfld evaluate``: the paper's metrics (FID, LPIPS, SSIM, PSNR) over folders of images, and with the targets'
poses the pose check (PCKh, PCK, joints found)."""

from __future__ import annotations

import json

import click

from ..devices import resolve_device
from ..images import MAX_OUTPUT_SIDE
from ..io import atomic_write_text, check_output_file
from ..metrics.pose_accuracy import WARN_BELOW
from .options import METRIC_NAMES, echo_metrics, echo_pose_misses, parse_metric_list, parse_size_option


@click.command("evaluate")
@click.option("-g", "--generated", required=True, metavar="DIR",
              help="Folder of generated images (searched recursively).")
@click.option("-t", "--ground-truth", metavar="DIR",
              help="Folder of the real target images (default with --data: the split's photos).")
@click.option("--fid-reference", metavar="DIR",
              help="Images FID compares against; the paper uses the training images (DeepFashion train_highres/). "
                   "Default: the ground-truth images (the output says so).")
@click.option("--size", default="256x176", show_default=True, metavar="HxW",
              help="Evaluation size; every image is resized to it (bicubic, antialiased) and quantised to uint8.")
@click.option("--metrics", "metric_list", default=",".join(METRIC_NAMES), show_default=True,
              help="Comma-separated subset of: " + ", ".join(METRIC_NAMES) + ".")
@click.option("--poses", metavar="CSV", type=click.Path(dir_okay=False),
              help="The targets' keypoints (annotation CSV name:keypoints_y:keypoints_x, path-style or flattened "
                   "names): adds the pose check, PCKh@0.5, PCK@0.1 and pose_found (needs MediaPipe).")
@click.option("--poses-frame", metavar="HxW",
              help="The --poses CSV's annotation frame (default: 128x64 when its name says market, else 256x176).")
@click.option("--data", "data_dir", metavar="DIR", type=click.Path(file_okay=False),
              help="A `cfld prepare` folder: its --split keypoints are the poses (as --poses) and its photos the "
                   "default --ground-truth.")
@click.option("--split", default="test", show_default=True, help="With --data: which prepared split.")
@click.option("--pose-threshold", type=click.FloatRange(0, 1), default=WARN_BELOW, show_default=True,
              metavar="SHARE",
              help="With poses: count an image whose PCK@0.1 is below this as missing its target pose.")
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
def evaluate(generated, ground_truth, fid_reference, size, metric_list, poses, poses_frame, data_dir, split,
             pose_threshold, output, overwrite, name_map, size_mismatch, batch_size, device, inception_weights,
             alexnet_weights, download_weights, fid_cache, no_fid_cache, quiet) -> None:
    """Score generated images against their ground truth as the paper's Table 2 does.

    Generated files are matched to ground-truth files by name. The name of a generated file may be
    the target's own name, or name source and target as `<source>_2_<target>` or
    `<source>___<target>` (an extra `.jpg` inside and a trailing `_vis` are allowed), the conventions
    of published result sets. DeepFashion's path-style names
    (fashion/WOMEN/Blouses_Shirts/id_00003372/03_3_back.jpg) and flattened names
    (fashionWOMENBlouses_Shirtsid0000337203_3back.jpg) are the same image; extensions are ignored.

    PSNR, SSIM, SSIM_256, LPIPS and FID follow the original implementation exactly; fid_standard is
    the usual TF-Inception FID. Each number is printed with the protocol that produced it.

    With the targets' poses (--poses, or --data), the pose check finds the person in each generated image
    (MediaPipe, pip install 'cfld[detect]') and scores it against its target's keypoints: pckh, the
    pooled PCKh@0.5 the pose-transfer papers report; pck, PCK@0.1; pose_found, the share of target joints
    found; and how many images miss their pose (PCK@0.1 below --pose-threshold). See docs/pose-check.md.

    \b
    Examples:
      cfld evaluate -g results/ -t deepfashion/test_highres --fid-reference deepfashion/train_highres -o metrics.json
      cfld evaluate -g results/ -t gt/ --metrics psnr,ssim,ssim_256
      cfld evaluate -g results/256x176 --data data/deepfashion --fid-reference data/deepfashion/train_highres
      cfld evaluate -g results/ -t gt/ --poses fasion-resize-annotation-test.csv --metrics ssim,lpips
      cfld evaluate -g pidm_results/ -t gt/ --size 512x352 --inception-weights inception_v3_google-0cc3c7bd.pth
    """
    eval_size = parse_size_option(size, "--size", MAX_OUTPUT_SIDE)
    metrics = parse_metric_list(metric_list)
    ground_truth, targets = _poses(poses, poses_frame, data_dir, split, ground_truth)
    from ..metrics.evaluate import evaluate_folders

    device = resolve_device(device)
    if output:
        check_output_file(output, overwrite)
    result = evaluate_folders(
        generated, ground_truth, fid_reference, size=eval_size, metrics=metrics, name_map=name_map,
        on_size_mismatch=size_mismatch, batch_size=batch_size, device=device,
        cache_dir=False if no_fid_cache else fid_cache, progress=not quiet, poses=targets,
        pose_threshold=pose_threshold, inception_weights=inception_weights, alexnet_weights=alexnet_weights,
        allow_download=download_weights)
    click.echo(f"{result['num_pairs']} pairs at {eval_size[0]}x{eval_size[1]}")
    echo_metrics(result)
    echo_pose_misses(result)
    if output:
        atomic_write_text(output, json.dumps(result, indent=1, allow_nan=False) + "\n", overwrite=overwrite)
        click.echo(f"wrote {output}")


def _poses(poses, poses_frame, data_dir, split, ground_truth):
    """(ground-truth folder, PoseTargets or None) from --poses / --data: one of them at most; with --data, the
    split's keypoints in the manifest's frame and, unless -t is given, its photos."""
    if poses and data_dir:
        raise click.UsageError("--poses and --data both give the targets' poses; give one of them")
    if poses_frame and not poses:
        raise click.UsageError("--poses-frame goes with --poses")
    if ground_truth is None and data_dir is None:
        raise click.UsageError("give the ground-truth folder (-t/--ground-truth), or --data DIR to take its photos")
    if poses:
        from ..metrics.pose_folders import PoseTargets

        frame = parse_size_option(poses_frame, "--poses-frame") if poses_frame else None
        return ground_truth, PoseTargets.read(poses, frame)
    if data_dir is None:
        return ground_truth, None
    from ..data.dataset import PoseTransferDataset, read_manifest
    from ..data.prepare import ORIGINAL
    from ..metrics.pose_folders import PoseTargets

    # the split as training and `cfld sample` read it: its keypoint table and photos (the originals when prepared)
    prepared = read_manifest(data_dir)["splits"].get(split, {}).get("images", {ORIGINAL: None})
    data = PoseTransferDataset(data_dir, split, images=ORIGINAL if ORIGINAL in prepared else next(iter(prepared)),
                               eval_size=False)
    return ground_truth if ground_truth is not None else data.image_dir, PoseTargets(data.table)

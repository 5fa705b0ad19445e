"""``cfld sample``: generate every pair of a prepared dataset split (the paper's test sets), resumable."""

from __future__ import annotations

import click

from ..devices import DTYPES, resolve_device, resolve_dtype
from ..errors import InputError
from ..images import MAX_OUTPUT_SIDE
from ..io import check_output_folder, is_temporary, writing
from .options import (
    SEED,
    echo_metrics,
    echo_pose_misses,
    guidance_options,
    load_pipeline,
    model_option,
    parse_metric_list,
    parse_size_option,
    sampling,
    sampling_options,
)
from .pose_check import pose_check_options, warn_misses

MISSES_SHOWN = 20  # results named one by one as missing their pose; the rest are in scores.csv


@click.command("sample")
@model_option("A CFLD folder (save_pretrained / `cfld convert`) or the original checkpoint folder (then --base).")
@click.option("--base", metavar="SD15", help="Stable Diffusion 1.5 for an original checkpoint folder.")
@click.option("-d", "--data", "data_dir", required=True, type=click.Path(file_okay=False),
              help="A folder written by `cfld prepare` (DeepFashion or Market-1501).")
@click.option("--split", default="test", show_default=True, help="Which prepared split's pairs to generate.")
@click.option("--pairs", "pairs_file", type=click.Path(dir_okay=False),
              help="A pair file (header from,to) to generate instead of the split's own pair list.")
@click.option("--pairs-from", type=click.IntRange(0), default=0, show_default=True,
              help="Skip the first K pairs of the list.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Generate at most N pairs (after --pairs-from).")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Results folder: OUTPUT/HxW/<source>_2_<target>.png per --size with OUTPUT/HxW/scores.csv (the "
                   "pose check), cfld-sample.json.")
@click.option("--size", "sizes", multiple=True, metavar="HxW",
              help="Output size (repeat for several, all from one generation; DeepFashion: 256x176 and "
                   "512x352). Default: the dataset's annotation frame (256x176, Market 128x64).")
@click.option("--vis", is_flag=True, help="Also write OUTPUT/vis/<source>_2_<target>.png: source | pose | result.")
@sampling_options("ddpm", "ddpm (the paper, whose numbers need it), ddim, dpm++, dpm++-karras, unipc, euler ...")
@guidance_options
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Each pair's noise comes from (seed, source, target) alone.")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=8, show_default=True,
              help="Pairs per batch (per process).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: this process's GPU if any).")
@click.option("--dtype", type=click.Choice(list(DTYPES)), default=None,
              help="Weights' precision (default: fp16 on CUDA, fp32 elsewhere).")
@click.option("--overwrite", is_flag=True, help="Generate every selected pair again, replacing its files.")
@click.option("--evaluate", "run_evaluation", is_flag=True,
              help="Then score the results with `cfld evaluate` against the split's photos and keypoints (metrics.json "
                   "beside them, with the pose check's PCKh unless --no-pose-check).")
@click.option("--metrics", "metric_list", default=None,
              help="With --evaluate: comma-separated metrics (default: those whose weights are on this machine).")
@click.option("--fid-reference", metavar="DIR",
              help="With --evaluate: FID's reference images (default: the prepared train photos, as the paper).")
@pose_check_options
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sample(model_dir, base, data_dir, split, pairs_file, pairs_from, limit, output, sizes, vis, steps, scheduler,
           guidance_interval, fast, guidance_pose, guidance_appearance, seed, batch_size, device, dtype, overwrite,
           run_evaluation, metric_list, fid_reference, pose_threshold, no_pose_check, quiet) -> None:
    """Generate one image per pair of a prepared split, as the paper's Table 2 needs.

    Pairs come from the split's pair list (as `cfld prepare` wrote it) or --pairs. A rerun skips pairs whose
    images already exist and read back, so an interrupted run continues where it stopped. Each pair's noise
    comes from (seed, source, target) alone: the images do not depend on the batch size, the number of
    processes or interruptions (bit-identical on the CPU, where pairs go through the networks one at a time).
    Under `accelerate launch` the pairs are shared out over the processes.

    Then each result is scored against its target's keypoints (docs/pose-check.md) into OUTPUT/HxW/scores.csv
    (rows of results not made again are kept), with a warning per result that misses its pose (PCK@0.1
    below --pose-threshold) and the pooled PCKh. Without MediaPipe (pip install 'cfld[detect]') it is skipped.

    \b
    Examples:
      cfld sample -m cfld-sd15 -d data/deepfashion -o results/ --evaluate
      cfld sample -m cfld-sd15 -d data/deepfashion -o results/ --size 256x176 --size 512x352 --vis
      cfld sample -m cfld-sd15 -d data/deepfashion -o results/ --limit 100 --steps 25
      cfld sample -m cfld-sd15 -d data/deepfashion -o results-fast/ --fast   (not the paper's sampler)
      accelerate launch --multi_gpu --num_processes 8 -m cfld sample -m cfld-sd15 -d data/deepfashion -o results/
    """
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    from .. import split_sampling as S
    from ..data.dataset import read_manifest
    from ..metrics.evaluate import available_metrics
    from ..metrics.pose_folders import BackgroundScoring
    from ..pipeline import check_sampling

    out_sizes = S.check_sizes([parse_size_option(s, "--size", MAX_OUTPUT_SIDE) for s in sizes], allow_none=True)
    steps, scheduler, interval = sampling(fast, steps, scheduler, guidance_interval, "ddpm")
    check_sampling(steps, guidance_pose, guidance_appearance, None, batch_size, 1000)
    metrics = _metrics(metric_list, available_metrics) if run_evaluation else []
    if (metric_list or fid_reference) and not run_evaluation:
        raise click.UsageError("--metrics and --fid-reference go with --evaluate")
    chosen = resolve_device(device) if device is not None else None
    # several CPU processes (no GPU, ACCELERATE_USE_CPU=1 or --device cpu) share the job over gloo
    use_cpu = (chosen is not None and chosen.type == "cpu") or not torch.cuda.is_available() or \
        parse_flag_from_env("ACCELERATE_USE_CPU")
    read_manifest(data_dir)  # an unprepared folder, or an unwritable output, is reported before the model loads
    check_output_folder(output)
    state = PartialState(cpu=use_cpu)
    device = chosen if chosen is not None else state.device
    torch_dtype = resolve_dtype(dtype, device)
    pipe = load_pipeline(model_dir, base=base, torch_dtype=torch_dtype, device=device)
    data = S.PreparedSplit(data_dir, split, pipe.model.config, pairs_file)
    selected = data.pairs[pairs_from:][:limit]
    if not selected:
        raise InputError("--pairs-from", f"{pairs_from} skips all {len(data.pairs)} pairs of the list")
    data.check_photos(selected)
    settings = S.SamplingSettings(seed, steps, scheduler, guidance_pose, guidance_appearance, interval)
    job = S.SplitJob(data, output, out_sizes or [data.data.frame], settings, str(model_dir), vis=vis,
                     overwrite=overwrite, pairs=selected)
    job.check()
    echo = click.echo if state.is_main_process else (lambda _: None)
    background = BackgroundScoring() if state.is_main_process and not no_pose_check else None
    counts, known = _run(S, job, pipe, background, batch_size=batch_size, state=state, progress=not quiet, echo=echo)
    echo(f"{counts['pairs']} pairs in {output} ({counts['generated']} generated now, "
         f"{counts['skipped']} already there)")
    poses = None if background is None else _check_poses(S, job, pose_threshold, echo, known)
    for size in job.sizes:
        folder = job.output / S.size_folder(size)
        if not run_evaluation:
            reference = fid_reference or data.train_image_dir()
            extra = f" --fid-reference {reference}" if reference else ""
            extra += f" --data {data_dir} --split {split}" if poses is not None else ""  # and the pose check
            echo(f"next: cfld evaluate -g {folder} -t {data.image_dir}{extra} --size {size[0]}x{size[1]} "
                 f"-o {folder / 'metrics.json'}")
        elif state.is_main_process:
            with writing("the scores", kept=f"the {counts['pairs']} results are kept: free space and run "
                                            "`cfld evaluate` as the line above says"):
                result = S.evaluate_job(job, size, metrics, fid_reference=fid_reference, progress=not quiet,
                                        device=device, poses=poses is not None, pose_threshold=pose_threshold,
                                        pose_scores=poses.get(size) if poses else None)
            _report(result, f"{size[0]}x{size[1]} against {data.image_dir}", folder / "metrics.json")
    state.wait_for_everyone()


def _report(result: dict, where: str, path) -> None:
    """An evaluation's numbers on the terminal (main process)."""
    click.echo(f"{result['num_pairs']} pairs at {where}")
    echo_metrics(result)
    echo_pose_misses(result)
    click.echo(f"wrote {path}")


def _kept(job) -> str:
    """What a failed write of sampling leaves: every pair whose files are all there is done and kept."""
    present = []
    for folder in job.folders():
        try:
            present.append({f.name for f in folder.iterdir() if not is_temporary(f)})
        except OSError:
            present.append(set())
    done = sum(1 for pair in job.pairs if all(pair.file_name in names for names in present))
    again = "free space and run the same command again to go on where it stopped (done pairs are skipped)"
    return f"the {done} of {len(job.pairs)} pairs already done are kept: {again}" if done else again


def _run(S, job, pipe, background, **options) -> tuple[dict, dict]:
    """``run_job`` with the main process's results scored by ``background`` while the next batch samples (on a GPU
    the detector would otherwise sit idle): (counts, scores by path)."""
    import torch

    what = lambda path: "the sampling record" if path.name == S.SAMPLE_MANIFEST else "the result"  # noqa: E731
    try:
        with torch.inference_mode(), writing(what, kept=lambda: _kept(job)):
            counts = S.run_job(job, pipe, on_written=None if background is None else _hand_over(S, job, background),
                               **options)
        return counts, background.results() if background is not None else {}
    finally:
        if background is not None:
            background.close()


def _hand_over(S, job, background):
    """``run_job``'s ``on_written``: each size's file of a written pair goes to the background scoring."""
    table = job.split.data.table

    def written(pair) -> None:
        target = table.pose(pair.target)
        for size in job.sizes:
            background.submit(job.output / S.size_folder(size) / pair.file_name, target)

    return written


def _check_poses(S, job, threshold: float, echo, known: dict) -> dict | None:
    """The pose check of every size's results (``scores.csv``), a warning for each result that misses its pose (the
    first :data:`MISSES_SHOWN`) and a summary line; ``{size: FolderScores}``, or None without MediaPipe (one line
    says so)."""
    from ..errors import MissingDependencyError

    checked = {}
    for size in job.sizes:
        try:
            with writing("the pose scores", kept=f"the {len(job.pairs)} results are kept"):
                result = S.score_job(job, size, threshold, known)
        except MissingDependencyError as error:
            echo(f"not checking the results' poses: {error} (or pass --no-pose-check)")
            return None
        misses = result.misses()
        warn_misses([(result.path.parent / file, score) for file, score in misses], threshold, result.path,
                    MISSES_SHOWN)
        summary = result.summary()
        pckh = "n/a" if summary is None or summary["pckh"] is None else f"{summary['pckh']:.4f}"
        pck = "n/a" if summary is None else f"{summary['pck_mean']:.4f}"
        reused = f", {result.reused} kept from the earlier scores.csv" if result.reused else ""
        echo(f"pose check {S.size_folder(size)}: PCKh {pckh} (pooled), PCK@0.1 {pck} (mean), {len(misses)} of "
             f"{len(result.files)} results miss their target pose (PCK@0.1 below {threshold}); "
             f"{result.seconds:.1f} s{reused}")
        echo(f"wrote {result.path}")
        checked[size] = result
    return checked


def _metrics(metric_list: str | None, available_metrics) -> list[str]:
    if metric_list is None:
        metrics, missing = available_metrics()
        for name, reason in missing.items():
            click.echo(f"not computing {name}: {reason}", err=True)
        return metrics
    return parse_metric_list(metric_list)

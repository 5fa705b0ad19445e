"""``cfld transfer``: re-pose a person photo into one or more target poses."""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from .. import images as I
from ..devices import DTYPES, resolve_device, resolve_dtype
from ..errors import InputError
from ..images import MAX_OUTPUT_SIDE
from ..io import check_output_folder
from ..metrics.pose_accuracy import SCORES_FILE
from ..pose import NUM_JOINTS, PoseDetector, load_pose, retarget
from .options import (
    SEED,
    check_framing,
    framing_options,
    guidance_options,
    load_pipeline,
    model_option,
    parse_size_option,
    sampling,
    sampling_options,
)
from .pose_check import PoseCheck, pose_check_options


@click.command("transfer")
@click.option("-s", "--source", "sources", multiple=True, required=True, metavar="PHOTO",
              help="Photo of the person to re-pose (repeat for several people).")
@click.option("-p", "--pose", "poses", multiple=True, metavar="POSE",
              help="Target pose: our pose JSON, OpenPose JSON, or an annotation row (repeat for several poses).")
@click.option("--pose-from", "pose_photos", multiple=True, metavar="PHOTO", type=click.Path(dir_okay=False),
              help="Take the target pose from the person in this photo (detected offline, needs the 'detect' "
                   "extra): the photo is framed like the sources, so the pose stands where theirs do (repeat for "
                   "several).")
@click.option("--pose-fit", type=click.Choice(["frame", "body"]), default="frame", show_default=True,
              help="With --pose-from and --no-frame: frame keeps the person's place and size in PHOTO; body makes "
                   "the body fill the source's frame.")
@model_option("A CFLD folder written by `CFLDPipeline.save_pretrained` / `cfld convert`, or the original "
                   "checkpoint folder (pytorch_model.bin + pytorch_model_1.bin, read with --base).")
@click.option("--base", metavar="SD15",
              help="Stable Diffusion 1.5 for an original checkpoint folder: hub id (the default), diffusers folder or "
                   "single file.")
@click.option("-o", "--output", default="outputs", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the results, one PNG per (source, pose): SOURCE_to_POSE.png, and their pose "
                   "check's scores.csv.")
@sampling_options("ddpm", "ddpm (the paper), ddim, dpm++, dpm++-karras, unipc, euler, euler-a or pndm.")
@guidance_options
@click.option("--seed", type=SEED, default=0, show_default=True, help="Random seed (same seed, same images).")
@click.option("--size", default="256x176", show_default=True, metavar="HxW",
              help="Output size; 512x352 is the paper's other benchmark size.")
@click.option("--pose-frame", metavar="HxW", help="Frame of OpenPose pose files (they do not record it).")
@click.option("--grid", is_flag=True, help="Also write grid.png: source | pose | result, one row per pair.")
@click.option("--device", default=None, help="cpu, cuda, cuda:1, mps ... (default: cuda if available).")
@click.option("--dtype", type=click.Choice(list(DTYPES)), default=None,
              help="Weights' precision (default: fp16 on CUDA, fp32 elsewhere).")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=4, show_default=True,
              help="(source, pose) pairs per UNet batch.")
@framing_options
@click.option("--overwrite", is_flag=True, help="Replace existing result files.")
@pose_check_options
def transfer(sources, poses, pose_photos, pose_fit, model_dir, base, output, steps, scheduler, guidance_interval, fast,
             guidance_pose, guidance_appearance, seed, size, pose_frame, grid, device, dtype, batch_size, no_frame,
             save_framed, overwrite, pose_threshold, no_pose_check) -> None:
    """Re-pose the person of each --source into each --pose.

    \b
    Examples:
      cfld transfer -s person.jpg -p pose.json -m checkpoints/cfld -o out/
      cfld transfer -s a.jpg -s b.jpg -p 'name:[34,59,...]:[104,99,...]' -m cfld-folder --grid
      cfld transfer -s person.jpg -p openpose_keypoints.json --pose-frame 1024x704 -m cfld-folder
      cfld transfer -s person.jpg --pose-from dancer.jpg -m cfld-folder --grid
      cfld transfer -s holiday.jpg -p pose.json -m cfld-folder --save-framed
      cfld transfer -s person.jpg -p pose.json -m cfld-folder --no-frame
    Poses come from `cfld pose convert` (any photo's OpenPose output, DeepFashion annotation rows),
    `cfld pose detect`, or straight from another photo with --pose-from.

    Each photo is first framed as the model's training photos are (see `cfld frame`; a line says how):
    a dataset photo goes through unchanged, any other gets a crop of the model's shape around its
    person. --save-framed keeps each framed picture and its crop box; --no-frame skips framing.

    Each result is then checked against its target pose (docs/pose-check.md): a line gives its PCKh,
    PCK and joints found, a warning names each result whose PCK@0.1 is below --pose-threshold, and
    the scores go to scores.csv beside the results (needs MediaPipe; --no-pose-check skips it).
    """
    import torch

    from .frame import PhotoFraming

    if not poses and not pose_photos:
        raise click.UsageError("give a target pose: --pose POSE or --pose-from PHOTO")
    check_framing(no_frame, save_framed)
    if not no_frame and pose_photos and _given(click.get_current_context(), "pose_fit"):
        raise click.UsageError("--pose-fit applies with --no-frame: a framed pose photo's person already stands "
                               "where the framed sources' do")
    out_size = parse_size_option(size, "--size", MAX_OUTPUT_SIDE)
    frame = parse_size_option(pose_frame, "--pose-frame")
    steps, scheduler, interval = sampling(fast, steps, scheduler, guidance_interval, "ddpm")
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    out_dir = Path(output)
    framing = PhotoFraming(not no_frame, out_size, out_dir if save_framed else None, overwrite)
    stems = [_pose_stem(p, i) for i, p in enumerate(poses)] + [Path(p).stem for p in pose_photos]
    names = [f"{Path(s).stem}_to_{stem}.png" for s in sources for stem in stems]
    saved = [path.name for path in framing.plan([*sources, *pose_photos])]
    if len(set(names + saved)) != len(names + saved):
        raise InputError(output, "two results would get the same file name; give the sources and poses distinct names")
    check = PoseCheck(pose_threshold, not no_pose_check)
    written = names + saved + (["grid.png"] if grid else []) + ([SCORES_FILE] if check.enabled else [])
    if not overwrite and (taken := [n for n in written if (out_dir / n).exists()]):
        raise InputError(out_dir / taken[0], "already exists; pass --overwrite to replace results")
    check_output_folder(out_dir)
    # every photo and pose file read once, here: a bad one is reported before anything slow starts
    pictures = {photo: I.load_image(photo) for photo in (*sources, *pose_photos)}
    file_poses = [load_pose(pose, frame=frame) for pose in poses]
    if no_frame:
        images = pictures
        detected = _detect_poses(pose_photos, sources, pose_fit, pictures) if pose_photos else {}
    else:
        images, detected = _frame_photos(framing, sources, pose_photos, pictures)
    pair_sources, pair_poses = _pairs(sources, file_poses, pose_photos, detected)

    pipe = load_pipeline(model_dir, base=base, torch_dtype=torch_dtype, device=device)
    generator = torch.Generator().manual_seed(seed)
    pose_maps = pipe.pose_images(pair_poses, frame)  # checks every pose before the long part starts
    # the photos were framed above by the pipeline's own image processor (PhotoFraming): not again
    encoding = pipe.encode_source([images[s] for s in sources], frame=False).select(torch.tensor(pair_sources))
    result = pipe(encoding, pose_maps, paired=True, num_inference_steps=steps, guidance_pose=guidance_pose,
                  guidance_appearance=guidance_appearance, scheduler=scheduler, guidance_interval=interval,
                  generator=generator, output_size=out_size, batch_size=batch_size)
    paths = [I.save_image(image, out_dir / name, overwrite=overwrite) for name, image in zip(names, result.images)]
    click.echo("\n".join(f"wrote {path}" for path in paths))
    if grid:
        rows = I.comparison_rows([images[sources[i]] for i in pair_sources], pose_maps, result.images, out_size,
                                 paired=True)
        click.echo(f"wrote {I.save_image(rows, out_dir / 'grid.png', overwrite=overwrite)}")
    framing.save()
    # each result against the pose it was asked for (stretched onto the result, as its pose image was drawn)
    check.run(list(zip(paths, result.images, pair_poses)), label=lambda path: path.name,
              scores_file=out_dir / SCORES_FILE, overwrite=overwrite)


def _given(ctx: click.Context, name: str) -> bool:
    """Whether the option ``name`` was given on the command line (not left at its default)."""
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)


def _pairs(sources, file_poses, pose_photos, detected):
    """(source index, pose) of every (source, pose) pair, source-major, as two lists: the pose files' poses, then
    each pose photo's pose fitted into the source's own frame (``detected[photo, source]``)."""
    pair_sources, pair_poses = [], []
    for s_index, source in enumerate(sources):
        for pose in file_poses:
            pair_sources.append(s_index)
            pair_poses.append(pose)
        for photo in pose_photos:
            pair_sources.append(s_index)
            pair_poses.append(detected[photo, source])
    return pair_sources, pair_poses


def _frame_photos(framing, sources, pose_photos, pictures):
    """({photo: its framed picture}, {(pose photo, source): its pose in the source's framed picture}): the sources
    and the pose photos framed with one detector. A framed pose photo's pose is in a picture of the sources'
    framed shape, where its person stands as theirs do: it is used as it is (resized to a source that went
    through unframed, of nearly the same shape)."""
    from .frame import frame_of

    images, found = {}, {}
    with framing:
        framed = {}
        for photo in dict.fromkeys((*sources, *pose_photos)):
            framed[photo] = framing(photo, pictures[photo])
            images[photo] = framed[photo].image
        for photo in pose_photos:
            pose = framed[photo].person_pose(photo)
            click.echo(f"{photo}: {pose.num_visible} of {NUM_JOINTS} joints found")
            for source in sources:
                target = frame_of(framed[source])
                found[photo, source] = pose if pose.frame == target else retarget(pose, target)
    return images, found


def _detect_poses(photos, sources, fit, pictures):
    """{(photo, source): the pose of photo's person fitted into source's frame}, one detection per photo;
    ``pictures``: every photo, read."""
    frames = {source: (pictures[source].height, pictures[source].width) for source in sources}
    found = {}
    with PoseDetector() as detector:
        for photo in photos:
            pose = detector(pictures[photo], photo)
            click.echo(f"{photo}: {pose.num_visible} of {NUM_JOINTS} joints found")
            for source in sources:
                found[photo, source] = retarget(pose, frames[source], fit=fit)
    return found


def _pose_stem(pose: str, index: int) -> str:
    path = Path(pose)
    return path.stem if path.suffix and len(path.stem) < 80 else f"pose{index}"

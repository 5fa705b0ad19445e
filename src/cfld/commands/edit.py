"""``cfld edit``: the paper's appearance editing (Sec. 4.6): style transfer by mask and style interpolation."""

from __future__ import annotations

from pathlib import Path

import click
from PIL import Image

from ..devices import resolve_device, resolve_dtype
from ..errors import InputError
from ..images import MAX_OUTPUT_SIDE, image_format, load_image, save_image
from ..io import check_output_file, check_writable
from ..pose import NUM_JOINTS, load_pose
from .options import (
    SEED,
    check_framing,
    framing_options,
    load_pipeline,
    model_option,
    parse_size_option,
    sampling,
    sampling_options,
)
from .pose_check import PoseCheck, pose_check_options

COMMON = [
    model_option("CFLD model folder (as for `cfld transfer`)."),
    click.option("--base", metavar="SD15", help="Stable Diffusion 1.5 for an original checkpoint folder."),
    sampling_options("ddpm", "ddpm, ddim, dpm++, dpm++-karras, unipc, euler ..."),
    click.option("--seed", type=SEED, default=0, show_default=True, help="Random seed."),
    click.option("--size", default="256x176", show_default=True, metavar="HxW", help="Output size."),
    click.option("--pose-frame", metavar="HxW", help="Frame of OpenPose pose files (they do not record it)."),
    click.option("--device", default=None, help="cpu, cuda, ... (default: cuda if available)."),
    framing_options,
    click.option("--overwrite", is_flag=True, help="Replace an existing output file (and its _scores.csv)."),
    pose_check_options,
]


def common_options(command):
    for option in reversed(COMMON):
        command = option(command)
    return command


def _check(output, overwrite, size, device, pose_frame, no_frame, save_framed, photos, check):
    """Everything the options decide, checked before any model is loaded: (output size, device, pose frame,
    framing); ``photos``: the photos that --save-framed would save beside ``output``; ``check``: the pose check,
    whose scores file must be free too."""
    from .frame import PhotoFraming  # imports torch (through the image processor)

    check_framing(no_frame, save_framed)
    out_size = parse_size_option(size, "--size", MAX_OUTPUT_SIDE)
    image_format(output)
    check_output_file(output, overwrite)
    if check.enabled:
        check_writable(scores_path(output), overwrite)
    framing = PhotoFraming(not no_frame, out_size, Path(output).parent if save_framed else None, overwrite)
    for path in framing.plan(photos):
        if path == Path(output):
            raise InputError(output, f"is also where --save-framed would write {path.name}; give the result another "
                                     "name")
        if path.exists() and not overwrite:
            raise InputError(path, "already exists; pass --overwrite to replace it")
    return out_size, resolve_device(device), parse_size_option(pose_frame, "--pose-frame"), framing


def scores_path(output) -> Path:
    """Where the pose check's scores of ``output`` go: ``OUTPUT-STEM_scores.csv`` beside it."""
    output = Path(output)
    return output.with_name(f"{output.stem}_scores.csv")


def _score(check, output, images, pose, notes, overwrite) -> None:
    """The pose check of the strip ``output``'s generated ``images``, all asked for ``pose``: a line each, named by
    its panel (numbered from the left) and what ``notes`` = {panel: note} adds, a warning for each that misses, and
    the scores in OUTPUT-STEM_scores.csv."""
    output = Path(output)
    panels = {f"{output} panel {k}": f"{output.name} panel {k} ({note})" for k, note in notes.items()}
    check.run(list(zip(panels, images, [pose] * len(images))), label=panels.get, scores_file=scores_path(output),
              overwrite=overwrite)


def _load(model_dir, base, device):
    from ..editing import CFLDEditPipeline

    return load_pipeline(model_dir, CFLDEditPipeline, base=base, device=device, torch_dtype=resolve_dtype(None, device))


def _strip(images):
    """Images side by side, left to right."""
    strip = Image.new("RGB", (sum(i.width for i in images), max(i.height for i in images)))
    x = 0
    for image in images:
        strip.paste(image, (x, 0))
        x += image.width
    return strip


@click.group("edit")
def edit() -> None:
    """Appearance editing without training (paper Sec. 4.6, Fig. 6)."""


@edit.command("style-transfer")
@click.option("-r", "--reference", required=True, metavar="PHOTO", help="The person to edit (pose and kept regions).")
@click.option("--reference-pose", metavar="POSE",
              help="The reference's own pose: pose JSON or annotation row (e.g. from `cfld pose convert`) in the "
                   "photo's frame; default: detected in the reference photo (needs the 'detect' extra).")
@click.option("-s", "--source", "sources", multiple=True, required=True, metavar="PHOTO",
              help="Photo whose appearance fills the masked region (repeat for several).")
@click.option("--mask", required=True, metavar="PNG",
              help="White where the reference is edited, e.g. upper clothes; of the reference photo's shape.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="PNG: reference | result per source, side by side.")
@common_options
def style_transfer(reference, reference_pose, sources, mask, output, model_dir, base, steps, scheduler,
                   guidance_interval, fast, seed, size, pose_frame, device, no_frame, save_framed, overwrite,
                   pose_threshold, no_pose_check) -> None:
    """Keep the reference's pose and the unmasked regions; take the masked region's look from each source.

    \b
    Examples:
      cfld edit style-transfer -r ref.png --reference-pose ref.json --mask ref_mask_upper.png \\
          -s other.jpg -m cfld-folder -o edited.png
      cfld edit style-transfer -r ref.png --mask ref_mask_lower.png -s other.jpg -m cfld-folder -o edited.png

    Every photo is first framed as the model's training photos are (see `cfld frame`); a framed
    reference's mask and --reference-pose (given in the photo's own frame) are cut with the same crop.
    --save-framed writes each framed picture and its crop box beside -o; --no-frame skips framing.

    Each result (panel 2 on) is then checked against the reference's pose: a line each, a warning
    below --pose-threshold, OUTPUT_scores.csv beside -o (docs/pose-check.md; --no-pose-check skips it).
    """
    import torch

    from ..editing import latent_mask, prepare_reference

    steps, scheduler, interval = sampling(fast, steps, scheduler, guidance_interval, "ddpm")
    check = PoseCheck(pose_threshold, not no_pose_check)
    out_size, device, frame, framing = _check(output, overwrite, size, device, pose_frame, no_frame, save_framed,
                                              [reference, *sources], check)
    # every photo, the mask and the pose read once: a bad one is reported before anything slow starts (the mask's
    # shape is checked against the reference's once a person is found in it: a photo with nobody is told so first)
    picture = load_image(reference)
    latent_mask(mask, (8, 8))
    pictures = {source: load_image(source) for source in sources}
    given_pose = None if reference_pose is None else load_pose(reference_pose, frame=frame)
    framed = None
    if not no_frame:
        with framing:
            framed = framing(reference, picture)
            for source in sources:
                pictures[source] = framing(source, pictures[source]).image
    prepared = prepare_reference(
        picture, framed, mask, given_pose, name=reference, mask_name=mask,
        way_around="(pass --no-frame to use the whole photo)",
        detected=lambda pose: click.echo(f"{reference}: pose detected ({pose.num_visible} of {NUM_JOINTS} joints)"))
    pipe = _load(model_dir, base, device)
    result = pipe.style_transfer(prepared.picture, prepared.pose, [pictures[s] for s in sources], prepared.mask,
                                 frame=False, num_inference_steps=steps, scheduler=scheduler,
                                 guidance_interval=interval, generator=torch.Generator().manual_seed(seed),
                                 output_size=out_size, pose_frame=frame)
    first = prepared.picture.resize((out_size[1], out_size[0]))
    click.echo(f"wrote {save_image(_strip([first, *result.images]), output, overwrite=overwrite)}")
    framing.save()
    _score(check, output, result.images, prepared.pose,
           {k: f"look of {Path(s).name}" for k, s in enumerate(sources, 2)}, overwrite)


@edit.command("interpolate")
@click.option("-a", "--source-a", required=True, metavar="PHOTO", help="First style (weight 0).")
@click.option("-b", "--source-b", required=True, metavar="PHOTO", help="Second style (weight 1).")
@click.option("-p", "--pose", required=True, metavar="POSE", help="Target pose for every image.")
@click.option("-n", "--num", type=click.IntRange(min=2), default=5, show_default=True, help="Images in the strip.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="PNG strip, A to B.")
@common_options
def interpolate(source_a, source_b, pose, num, output, model_dir, base, steps, scheduler, guidance_interval, fast,
                seed, size, pose_frame, device, no_frame, save_framed, overwrite, pose_threshold,
                no_pose_check) -> None:
    """Shift the appearance smoothly from A to B: coarse prompts and HGA biases interpolated linearly.

    \b
    Example:
      cfld edit interpolate -a a.jpg -b b.jpg -p pose.json -n 5 -m cfld-folder -o strip.png

    A and B are first framed as the model's training photos are (see `cfld frame`); --save-framed
    writes each framed picture and its crop box beside -o; --no-frame skips framing.

    Each image of the strip is then checked against --pose: a line each, a warning below
    --pose-threshold, OUTPUT_scores.csv beside -o (docs/pose-check.md; --no-pose-check skips it).
    """
    import torch

    steps, scheduler, interval = sampling(fast, steps, scheduler, guidance_interval, "ddpm")
    check = PoseCheck(pose_threshold, not no_pose_check)
    out_size, device, frame, framing = _check(output, overwrite, size, device, pose_frame, no_frame, save_framed,
                                              [source_a, source_b], check)
    pictures = {photo: load_image(photo) for photo in (source_a, source_b)}  # read once, before anything slow
    target = load_pose(pose, frame=frame)
    if not no_frame:
        with framing:
            for photo in pictures:
                pictures[photo] = framing(photo, pictures[photo]).image
    pipe = _load(model_dir, base, device)
    weights = [i / (num - 1) for i in range(num)]
    result = pipe.interpolate(pictures[source_a], pictures[source_b], target, weights, frame=False,
                              num_inference_steps=steps, scheduler=scheduler, guidance_interval=interval,
                              generator=torch.Generator().manual_seed(seed), output_size=out_size, pose_frame=frame)
    click.echo(f"wrote {save_image(_strip(result.images), output, overwrite=overwrite)}")
    framing.save()
    _score(check, output, result.images, target, {k: f"weight {w:.2f}" for k, w in enumerate(weights, 1)}, overwrite)

"""``cfld edit``: the paper's appearance editing (Sec. 4.6): style transfer by mask and style interpolation."""

from __future__ import annotations


import click

from .options import MAX_OUTPUT_SIDE, SEED, model_option, parse_size_option, sampling, sampling_options

COMMON = [
    model_option("CFLD model folder (as for `cfld transfer`)."),
    click.option("--base", metavar="SD15", help="Stable Diffusion 1.5 for an original checkpoint folder."),
    sampling_options("ddpm", "ddpm, ddim, dpm++, dpm++-karras, unipc, euler ..."),
    click.option("--seed", type=SEED, default=0, show_default=True, help="Random seed."),
    click.option("--size", default="256x176", show_default=True, metavar="HxW", help="Output size."),
    click.option("--pose-frame", metavar="HxW", help="Frame of OpenPose pose files (they do not record it)."),
    click.option("--device", default=None, help="cpu, cuda, ... (default: cuda if available)."),
    click.option("--overwrite", is_flag=True, help="Replace an existing output file."),
]


def common_options(command):
    for option in reversed(COMMON):
        command = option(command)
    return command


def _check(output, overwrite, size, device, pose_frame):
    """Everything the options decide, checked before any model is loaded: (output size, device, pose frame)."""
    from ..devices import resolve_device
    from ..images import image_format
    from ..io import check_output_file

    out_size = parse_size_option(size, "--size", MAX_OUTPUT_SIDE)
    image_format(output)
    check_output_file(output, overwrite)
    return out_size, resolve_device(device), parse_size_option(pose_frame, "--pose-frame")


def _load(model_dir, base, device):
    from ..devices import resolve_dtype
    from ..pipeline import CFLDPipeline

    return CFLDPipeline.from_pretrained(model_dir, base=base, device=device, torch_dtype=resolve_dtype(None, device))


def _strip(images):
    """Images side by side, left to right."""
    from PIL import Image

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
              help="The reference's own pose: pose JSON or annotation row (e.g. from `cfld pose convert`); "
                   "default: detected in the reference photo (needs the 'detect' extra).")
@click.option("-s", "--source", "sources", multiple=True, required=True, metavar="PHOTO",
              help="Photo whose appearance fills the masked region (repeat for several).")
@click.option("--mask", required=True, metavar="PNG", help="White where the reference is edited, e.g. upper clothes.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="PNG: reference | result per source, side by side.")
@common_options
def style_transfer(reference, reference_pose, sources, mask, output, model_dir, base, steps, scheduler,
                   guidance_interval, fast, seed, size, pose_frame, device, overwrite) -> None:
    """Keep the reference's pose and the unmasked regions; take the masked region's look from each source.

    \b
    Examples:
      cfld edit style-transfer -r ref.png --reference-pose ref.json --mask ref_mask_upper.png \\
          -s other.jpg -m cfld-folder -o edited.png
      cfld edit style-transfer -r ref.png --mask ref_mask_lower.png -s other.jpg -m cfld-folder -o edited.png
    """
    import torch

    from ..images import load_image, save_image
    from ..pipeline import latent_mask

    steps, scheduler, interval = sampling(fast, steps, scheduler, guidance_interval, "ddpm")
    out_size, device, frame = _check(output, overwrite, size, device, pose_frame)
    picture = load_image(reference)  # read once; a bad photo or mask is reported before anything slow starts
    latent_mask(mask, (8, 8), picture)
    if reference_pose is None:
        from ..pose import detect_pose

        reference_pose = detect_pose(picture, source=reference)
        click.echo(f"{reference}: pose detected ({reference_pose.num_visible} of 18 joints)")
    pipe = _load(model_dir, base, device)
    result = pipe.style_transfer(picture, reference_pose, list(sources), mask, num_inference_steps=steps,
                                 scheduler=scheduler, guidance_interval=interval, generator=torch.Generator().manual_seed(seed),
                                 output_size=out_size, pose_frame=frame)
    first = picture.resize((out_size[1], out_size[0]))
    click.echo(f"wrote {save_image(_strip([first, *result.images]), output, overwrite=overwrite)}")


@edit.command("interpolate")
@click.option("-a", "--source-a", required=True, metavar="PHOTO", help="First style (weight 0).")
@click.option("-b", "--source-b", required=True, metavar="PHOTO", help="Second style (weight 1).")
@click.option("-p", "--pose", required=True, metavar="POSE", help="Target pose for every image.")
@click.option("-n", "--num", type=click.IntRange(min=2), default=5, show_default=True, help="Images in the strip.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="PNG strip, A to B.")
@common_options
def interpolate(source_a, source_b, pose, num, output, model_dir, base, steps, scheduler, guidance_interval, fast,
                seed, size, pose_frame, device, overwrite) -> None:
    """Shift the appearance smoothly from A to B: coarse prompts and HGA biases interpolated linearly.

    \b
    Example:
      cfld edit interpolate -a a.jpg -b b.jpg -p pose.json -n 5 -m cfld-folder -o strip.png
    """
    import torch

    from ..images import save_image

    steps, scheduler, interval = sampling(fast, steps, scheduler, guidance_interval, "ddpm")
    out_size, device, frame = _check(output, overwrite, size, device, pose_frame)
    pipe = _load(model_dir, base, device)
    weights = [i / (num - 1) for i in range(num)]
    result = pipe.interpolate(source_a, source_b, pose, weights, num_inference_steps=steps, scheduler=scheduler,
                              guidance_interval=interval, generator=torch.Generator().manual_seed(seed), output_size=out_size,
                              pose_frame=frame)
    click.echo(f"wrote {save_image(_strip(result.images), output, overwrite=overwrite)}")

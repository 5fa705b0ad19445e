"""``cfld animate``: one person through a sequence of poses -> frames, GIF and MP4."""

from __future__ import annotations

from pathlib import Path

import click

from .. import images as I
from ..devices import DTYPES, resolve_device, resolve_dtype
from ..errors import InputError, MissingDependencyError
from ..images import MAX_OUTPUT_SIDE
from ..io import check_output_folder
from ..metrics.pose_accuracy import SCORES_FILE
from .options import (
    SEED,
    FiniteFloat,
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


@click.command("animate")
@click.option("-s", "--source", required=True, type=click.Path(dir_okay=False), metavar="PHOTO",
              help="Photo of the person to animate.")
@click.option("-p", "--poses", "poses_dir", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Folder of pose files (*.json, natural name order) or of video frames (pictures: their poses "
                   "are detected, needs the 'detect' extra).")
@model_option("CFLD model folder (as for `cfld transfer`).")
@click.option("--base", metavar="SD15", help="Stable Diffusion 1.5 for an original checkpoint folder.")
@click.option("-o", "--output", default="animation", show_default=True, type=click.Path(file_okay=False),
              help="Folder for frame_0000.png ..., animation.gif, animation.mp4 and the frames' pose check "
                   "(scores.csv).")
@click.option("--fps", type=FiniteFloat(0.1, 100), default=8, show_default=True,
              help="Frames per second of the GIF and MP4.")
@click.option("--no-mp4", is_flag=True, help="Write the frames and the GIF only.")
@click.option("--with-pose", is_flag=True, help="Show the pose skeleton beside each frame in the GIF and MP4.")
@sampling_options("ddim",
                  "ddim (no fresh noise per step: steadier frames), ddpm (the paper), dpm++, unipc, euler ...")
@guidance_options
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed of the initial noise, shared by all frames.")
@click.option("--size", default="256x176", show_default=True, metavar="HxW", help="Frame size.")
@click.option("--pose-fit", type=click.Choice(["frame", "body"]), default="frame", show_default=True,
              help="For video frames: frame keeps the person's moves through the clip (one crop for all frames; "
                   "with --no-frame: each whole frame); body frames each frame's person on their own, filling "
                   "the source's frame.")
@click.option("--pose-frame", metavar="HxW", help="Frame of OpenPose pose files (they do not record it).")
@click.option("--device", default=None, help="cpu, cuda, ... (default: cuda if available).")
@click.option("--dtype", type=click.Choice(list(DTYPES)), default=None,
              help="Weights' precision (default: fp16 on CUDA, fp32 elsewhere).")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=4, show_default=True, help="Frames per UNet batch.")
@framing_options
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@pose_check_options
def animate(source, poses_dir, model_dir, base, output, fps, no_mp4, with_pose, steps, scheduler, guidance_interval,
            fast, guidance_pose, guidance_appearance, seed, size, pose_fit, pose_frame, device, dtype, batch_size,
            no_frame, save_framed, overwrite, pose_threshold, no_pose_check) -> None:
    """Animate the person of --source through the poses of --poses: frames, a looping GIF and an MP4.

    The source is encoded once and every frame starts from the same noise, so only the pose changes.

    \b
    Examples:
      cfld animate -s person.jpg -p dance_poses/ -m cfld-folder -o dance/
      cfld animate -s person.jpg -p clip_frames/ -m cfld-folder -o dance/ --fps 12 --with-pose
    (`cfld pose detect` writes one pose file per photo; a folder of photos is detected on the fly.)

    The source photo, and each video frame, is first framed as the model's training photos are (see
    `cfld frame`): a dataset photo goes through unchanged, any other gets a crop of the model's shape
    around its person. The frames share one crop (the union of theirs), so the person's moves through
    the clip are kept; --pose-fit body frames each on its own. --save-framed keeps the framed source and
    its crop box; --no-frame skips framing.

    Each frame is then checked against its pose (docs/pose-check.md): a line per frame gives its
    PCKh, PCK and joints found, a warning names each frame whose PCK@0.1 is below --pose-threshold,
    and the scores go to scores.csv beside the frames (needs MediaPipe; --no-pose-check skips it).
    """
    from .. import animation as A
    from .frame import PhotoFraming, frame_of

    check_framing(no_frame, save_framed)
    out_size = parse_size_option(size, "--size", MAX_OUTPUT_SIDE)
    frame = parse_size_option(pose_frame, "--pose-frame")
    steps, scheduler, interval = sampling(fast, steps, scheduler, guidance_interval, "ddim")
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    if not no_mp4:
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise MissingDependencyError("writing animation.mp4 needs imageio-ffmpeg: pip install 'cfld[animate]', "
                                         "or pass --no-mp4") from None
    kind, files = A.sequence_files(poses_dir)
    out_dir = Path(output)
    framing = PhotoFraming(not no_frame, out_size, out_dir if save_framed else None, overwrite)
    names = [f"frame_{i:04d}.png" for i in range(len(files))] + ["animation.gif"]
    names += [] if no_mp4 else ["animation.mp4"]
    saved = [path.name for path in framing.plan([source])]
    check = PoseCheck(pose_threshold, not no_pose_check)
    written = names + saved + ([SCORES_FILE] if check.enabled else [])
    if not overwrite and (taken := [n for n in written if (out_dir / n).exists()]):
        raise InputError(out_dir / taken[0], "already exists; pass --overwrite to replace results")
    check_output_folder(out_dir)
    picture = I.load_image(source)  # read once; a bad photo is reported before anything slow starts
    if kind == "poses":  # pose files are read before any detection: a bad one is reported first
        poses = A.load_pose_sequence(poses_dir, frame=frame)
    if no_frame:
        if kind == "frames":
            poses = A.load_pose_sequence(poses_dir, picture, fit=pose_fit, frame=frame)
    else:
        with framing:
            framed = framing(source, picture)
            picture = framed.image
            if kind == "frames":
                poses = A.load_pose_sequence(poses_dir, frame_of(framed), fit=pose_fit, framer=framing.framer)
    click.echo(f"{len(poses)} poses from {kind} in {poses_dir}")

    pipe = load_pipeline(model_dir, base=base, torch_dtype=torch_dtype, device=device)
    frames = A.animate(pipe, picture, poses, frame=False, num_inference_steps=steps, guidance_pose=guidance_pose,
                       guidance_appearance=guidance_appearance, scheduler=scheduler, guidance_interval=interval,
                       seed=seed, output_size=out_size, batch_size=batch_size)
    paths = [I.save_image(image, out_dir / name, overwrite=overwrite) for name, image in zip(names, frames)]
    click.echo(f"wrote {len(frames)} frames to {out_dir}/frame_*.png")
    shown = A.with_poses(frames, pipe.pose_images(poses)) if with_pose else frames
    click.echo(f"wrote {A.write_gif(shown, out_dir / 'animation.gif', fps, overwrite=overwrite)}")
    if not no_mp4:
        click.echo(f"wrote {A.write_mp4(shown, out_dir / 'animation.mp4', fps, overwrite=overwrite)}")
    framing.save()
    # each frame against its pose (stretched onto the frame, as its pose image was drawn)
    check.run(list(zip(paths, frames, poses)), label=lambda path: path.name, scores_file=out_dir / SCORES_FILE,
              overwrite=overwrite)

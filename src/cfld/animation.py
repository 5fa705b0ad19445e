"""Animation: one person through a sequence of poses -> frames, an animated GIF and an MP4.

The paper shows a person re-posed into many poses; an animation is that with the poses of a clip, in
order. The source photo is encoded once (coarse prompt and HGA biases, :meth:`CFLDPipeline.encode_source`)
and every frame starts from the same initial noise, so that only the pose changes from frame to frame;
with a deterministic scheduler (DDIM, the default here) the frames then differ only where the pose
does, which keeps flicker down. The poses come from a folder of pose files (``*.json``: our pose
JSON, or OpenPose JSON given its frame) or of video frames (photos, whose poses are detected with MediaPipe
and fitted into the source photo's frame), taken in natural file-name order (``frame2`` before
``frame10``).

    from cfld import CFLDPipeline
    from cfld.animation import load_pose_sequence, animate, write_gif, write_mp4

    pipe = CFLDPipeline.from_pretrained("cfld-folder")
    poses = load_pose_sequence("clip_frames/", source="person.jpg")
    frames = animate(pipe, "person.jpg", poses, num_inference_steps=50)
    write_gif(frames, "person.gif", fps=8); write_mp4(frames, "person.mp4", fps=8)
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from . import presets
from .errors import InputError, MissingDependencyError
from .images import load_image, resize_output, to_pil
from .io import atomic_path
from .pose import DEEPFASHION_SIZE, Pose, load_pose, retarget
from .pose.detect import PoseDetector

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
POSE_SUFFIXES = (".json",)
MAX_FRAMES = 1000


def natural_key(path: Path) -> list:
    """Sort key that orders ``frame2`` before ``frame10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def sequence_files(folder: str | os.PathLike) -> tuple[str, list[Path]]:
    """``("poses" | "frames", files)``: the pose files or the photos of ``folder``, in natural order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "is not a folder of pose files or video frames")
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    poses = sorted((p for p in files if p.suffix.lower() in POSE_SUFFIXES), key=natural_key)
    photos = sorted((p for p in files if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
    if poses and photos:
        raise InputError(folder, f"holds both pose files ({poses[0].name}) and pictures ({photos[0].name}); "
                                 "give a folder of one kind")
    found = poses or photos
    if not found:
        raise InputError(folder, f"holds no pose files ({', '.join(POSE_SUFFIXES)}) and no pictures "
                                 f"({', '.join(IMAGE_SUFFIXES)})")
    if len(found) > MAX_FRAMES:
        raise InputError(folder, f"holds {len(found)} frames; at most {MAX_FRAMES} are animated at once")
    return ("poses" if poses else "frames"), found


def load_pose_sequence(
    folder: str | os.PathLike,
    source=None,
    *,
    fit: str = "frame",
    frame: tuple[int, int] | None = None,
    progress: bool = True,
    framer=None,
) -> list[Pose]:
    """The poses of a folder of pose files, or the poses detected in a folder of video frames.

    Args:
        folder: pose files (our JSON, or OpenPose JSON with ``frame``) or pictures.
        source: the person photo to be animated (path or image), or the ``(height, width)`` of the picture the
            model gets from it; detected poses are fitted into its frame (``fit`` as in :func:`cfld.pose.retarget`),
            as ``cfld transfer --pose-from`` does.
        frame: the ``(height, width)`` of OpenPose files, which do not record it.
        framer: a :class:`cfld.framing.Framer`: the video frames are framed as the training photos are and their
            poses taken in the framed pictures (:func:`framed_pose_sequence`); without it their poses are
            detected in the whole frames, tracked from frame to frame.
    """
    kind, files = sequence_files(folder)
    if kind == "poses":
        return [load_pose(str(path), frame=frame) for path in files]
    target = None
    if isinstance(source, tuple):
        target = source
    elif source is not None:
        picture = load_image(source)
        target = (picture.height, picture.width)
    if framer is not None:
        return framed_pose_sequence(files, framer, target, fit=fit, progress=progress)
    poses = []
    with PoseDetector(video=True) as detector:
        for path in tqdm(files, desc="detecting poses", disable=not progress, leave=False):
            pose = detector(path)
            poses.append(retarget(pose, target, fit=fit) if target else pose)
    return poses


def framed_pose_sequence(files: Sequence, framer, target: tuple[int, int] | None = None, *, fit: str = "frame",
                         progress: bool = True) -> list[Pose]:
    """The poses of the person in video frames (paths or pictures), each frame framed by ``framer`` (a
    :class:`cfld.framing.Framer`) as the training photos are, in a frame of ``framer.size`` (or ``target``).

    ``fit="frame"``: the poses are placed in one crop for all frames, the union of the frames' own crops grown
    to the model's shape (its top kept), so the person's moves through the clip are kept (a jump rises, a step
    sideways moves), as in the clip; frames of different sizes (not one clip) are each kept in their own crop.
    ``fit="body"``: each frame's pose as its own framing places it (every frame's person fills the frame, like
    a training photo). Poses are then resized into ``target`` where it differs.
    """
    if fit not in ("frame", "body"):
        raise InputError("fit", f"must be 'frame' or 'body', got {fit!r}")
    framed = []
    for path in tqdm(files, desc="framing frames", disable=not progress or len(files) < 2, leave=False):
        name = os.fspath(path) if isinstance(path, (str, os.PathLike)) else "frame"
        found = framer(path, source=name)
        found.person_pose(name)
        framed.append(found)
    size = tuple(framer.size)
    if fit == "frame" and len({f.photo_size for f in framed}) == 1:
        box = _common_crop([f.crop for f in framed], size)
        poses = [_into_crop(f.pose, f.crop, box, size) for f in framed]
    else:
        poses = [f.pose for f in framed]
    target = tuple(target) if target is not None else size
    return [pose if pose.frame == target else retarget(pose, target) for pose in poses]


def _common_crop(crops: Sequence, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """(top, left, height, width) of the union of ``crops`` (photo pixels), grown to the aspect of ``size`` = (H, W):
    downwards where it is too wide (the heads stay at the top, as in the training photos), on both sides where it
    is too tall."""
    top = min(c.top for c in crops)
    left = min(c.left for c in crops)
    height = max(c.top + c.height for c in crops) - top
    width = max(c.left + c.width for c in crops) - left
    aspect = size[0] / size[1]
    if height / width < aspect:
        height = width * aspect
    else:
        grown = height / aspect
        left -= (grown - width) / 2
        width = grown
    return float(top), float(left), float(height), float(width)


def _into_crop(pose: Pose, crop, box: tuple[float, float, float, float], size: tuple[int, int]) -> Pose:
    """``pose`` (in the framed picture of ``crop``) moved into the picture of ``box`` at ``size``: through the photo's
    pixels, whose edges the crops are given in (pixel centres at integers: a picture's left edge is x = -0.5)."""
    frame_h, frame_w = pose.frame
    top, left, height, width = box
    xy = pose.xy.copy()
    x_photo = crop.left + (xy[:, 0] + 0.5) * crop.width / frame_w
    y_photo = crop.top + (xy[:, 1] + 0.5) * crop.height / frame_h
    xy[:, 0] = (x_photo - left) * size[1] / width - 0.5
    xy[:, 1] = (y_photo - top) * size[0] / height - 0.5
    return pose.replace(xy=xy, frame=size)


@torch.no_grad()
def animate(
    pipe,
    source,
    poses: Sequence,
    *,
    num_inference_steps: int | None = None,
    guidance_pose: float = 2.0,
    guidance_appearance: float = 2.0,
    scheduler: str | None = None,
    guidance_interval: tuple[float, float] | None = None,
    fast: bool = False,
    seed: int = 0,
    output_size: tuple[int, int] | None = DEEPFASHION_SIZE,
    batch_size: int = 4,
    progress: bool = True,
    pose_frame: tuple[int, int] | None = None,
    frame: bool = True,
) -> list[Image.Image]:
    """The person of ``source`` in every pose of ``poses``, one frame each, in order (the source photo framed as
    the pipeline frames photos, unless ``frame`` is False).

    The source is encoded once; every frame starts from the same z_T drawn from ``seed``. ``scheduler``
    defaults to DDIM in 50 steps, whose steps add no fresh noise, so frames differ only through their poses
    (pass ``"ddpm"`` for the paper's sampler); ``fast`` takes the fast preset's steps and scheduler
    (:data:`cfld.presets.FAST`, also noise-free per step) where they are not given.
    """
    num_inference_steps, scheduler, guidance_interval = presets.resolve(
        fast, num_inference_steps, scheduler, guidance_interval, default_scheduler="ddim")
    if not len(poses):
        raise InputError("poses", "no pose to animate")
    encoding = pipe.encode_source(source, frame, output_size)
    if len(encoding) != 1:
        raise InputError("source", "animate one person at a time")
    generator = torch.Generator().manual_seed(seed)
    z_t = torch.randn((1, pipe.unet.config.in_channels, *pipe.latent_size), generator=generator)
    result = pipe(encoding, list(poses), latents=z_t.expand(len(poses), -1, -1, -1).clone(),
                  num_inference_steps=num_inference_steps, guidance_pose=guidance_pose,
                  guidance_appearance=guidance_appearance, scheduler=scheduler, guidance_interval=guidance_interval,
                  generator=generator, output_size=output_size, batch_size=batch_size, progress=progress,
                  pose_frame=pose_frame)
    return result.images


def with_poses(frames: Sequence[Image.Image], pose_images: torch.Tensor) -> list[Image.Image]:
    """Each frame with its pose skeleton (the first three channels of its pose image) on the left."""
    if len(frames) != pose_images.shape[0]:
        raise InputError("frames", f"{len(frames)} frames but {pose_images.shape[0]} poses")
    width, height = frames[0].size
    skeletons = to_pil(resize_output(pose_images[:, :3].float(), (height, width)).clamp(0, 1))
    out = []
    for frame, skeleton in zip(frames, skeletons):
        pair = Image.new("RGB", (2 * width, height))
        pair.paste(skeleton, (0, 0))
        pair.paste(frame, (width, 0))
        out.append(pair)
    return out


def _check_frames(frames: Sequence[Image.Image], path) -> None:
    if not len(frames):
        raise InputError(path, "no frame to write")
    sizes = {frame.size for frame in frames}
    if len(sizes) != 1:
        raise InputError(path, f"frames must all have one size, got {sorted(sizes)}")


def write_gif(frames: Sequence[Image.Image], path: str | os.PathLike, fps: float = 8, overwrite: bool = False) -> Path:
    """An animated GIF that loops forever, written atomically."""
    _check_frames(frames, path)
    if not 0 < fps <= 100:
        raise InputError("fps", f"must lie in (0, 100], got {fps}")
    duration = int(round(1000 / fps))
    first, *rest = [frame.convert("RGB") for frame in frames]
    with atomic_path(path, overwrite=overwrite) as tmp:
        first.save(tmp, format="GIF", save_all=True, append_images=rest, duration=duration, loop=0, optimize=False)
    return Path(path)


def write_mp4(frames: Sequence[Image.Image], path: str | os.PathLike, fps: float = 8, overwrite: bool = False) -> Path:
    """An H.264 MP4 (yuv420p, plays everywhere) through the ffmpeg binary that ships in imageio-ffmpeg's
    wheel (no download). Odd widths or heights are padded by one black pixel, as yuv420p needs even ones."""
    _check_frames(frames, path)
    if not 0 < fps <= 100:
        raise InputError("fps", f"must lie in (0, 100], got {fps}")
    try:
        import imageio_ffmpeg
    except ImportError as err:
        raise MissingDependencyError(f"writing MP4 needs imageio-ffmpeg: pip install 'cfld[animate]' ({err})") from None
    width, height = frames[0].size
    even = (width + width % 2, height + height % 2)
    with atomic_path(path, overwrite=overwrite) as tmp:
        writer = imageio_ffmpeg.write_frames(str(tmp), even, fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                             macro_block_size=1, quality=8, ffmpeg_log_level="error",
                                             output_params=["-movflags", "+faststart"])
        writer.send(None)
        try:
            for frame in frames:
                canvas = np.zeros((even[1], even[0], 3), np.uint8)
                canvas[:height, :width] = np.asarray(frame.convert("RGB"))
                writer.send(canvas)
        finally:
            writer.close()
    return Path(path)

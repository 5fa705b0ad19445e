"""Option types every command shares, so that a bad value is refused the same way everywhere, before any work.

Numbers must be finite (click's own ``FloatRange`` lets ``nan`` through), seeds fit the random generators,
step counts fit the 1,000 training timesteps, and sizes are bounded so that no option can ask for more
memory than a machine has: every ``--size`` takes HEIGHTxWIDTH with each side from 16 pixels (the least a person
photo or a framed picture can be) to 4,096 (``cfld pose draw`` 8,192, ``cfld pose render`` 2,048), and a pose
frame (``--frame``, ``--pose-frame``) at least 16 a side (:func:`parse_size_option`).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import click

from ..errors import InputError
from ..images import MIN_SIDE, PHOTO_SUFFIXES
from ..io import path_kind
from ..model_names import resolve_model_name
from ..presets import FAST, PAPER, check_interval, resolve
from ..schedulers import scheduler_key

MAX_SEED = 2**63 - 1
MAX_STEPS = 1000  # the DDPM training schedule has 1,000 timesteps; no sampler can take more steps


class FiniteFloat(click.ParamType):
    """A float that is finite (``nan``/``inf`` refused) and, optionally, within ``[min, max]``."""

    name = "number"

    def __init__(self, min: float | None = None, max: float | None = None, min_open: bool = False):
        self.min, self.max, self.min_open = min, max, min_open

    def convert(self, value, param, ctx):
        if isinstance(value, float) and math.isfinite(value):
            number = value
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a number", param, ctx)
            if not math.isfinite(number):
                self.fail(f"{value!r} is not a finite number", param, ctx)
        below = self.min is not None and (number <= self.min if self.min_open else number < self.min)
        if below or (self.max is not None and number > self.max):
            self.fail(f"{value} is not in {self._range()}", param, ctx)
        return number

    def _range(self) -> str:
        low = "-inf" if self.min is None else f"{self.min:g}"
        high = "inf" if self.max is None else f"{self.max:g}"
        return f"{'(' if self.min_open or self.min is None else '['}{low}, {high}]"

    def __repr__(self) -> str:
        return f"FiniteFloat{self._range()}"


SEED = click.IntRange(0, MAX_SEED)
STEPS = click.IntRange(1, MAX_STEPS)
STEPS_HELP = "Denoising steps: 1 to 1000, and at most 999 with ddpm, ddim and pndm (their spacing would reach t=1000)."
GUIDANCE = FiniteFloat(0, 100)


def resolve_model(ctx, param, value: str | None) -> str | Path | None:
    """``-m demo`` -> the bundled demo model, unless a file or folder named ``demo`` exists here (then that)."""
    return None if value is None else resolve_model_name(value)


def model_option(help: str, required: bool = True):
    """``-m``/``--model``: a model folder, a Hugging Face Hub id, or ``demo`` for the bundled demo model (see
    :func:`resolve_model`)."""
    return click.option("-m", "--model", "model_dir", required=required, type=click.Path(file_okay=False),
                        callback=resolve_model, help=f"{help} A Hugging Face Hub id (owner/name) is downloaded once "
                                                     "into the Hub cache (HF_HUB_OFFLINE=1: only the cache is read). "
                                                     "'demo': the small demo model shipped with cfld.")


def load_pipeline(model_dir, pipeline=None, **kwargs):
    """The pipeline of ``-m`` (``CFLDPipeline.from_pretrained``, or ``pipeline``'s), without diffusers' "Loading
    pipeline components" bar: a command's stderr holds its errors, one line each."""
    from diffusers.utils import logging

    from ..pipeline import CFLDPipeline

    shown = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        return (pipeline or CFLDPipeline).from_pretrained(model_dir, **kwargs)
    finally:
        if shown:
            logging.enable_progress_bar()


def parse_size_option(value: str | None, option: str, max_side: int | None = None,
                      min_side: int = MIN_SIDE) -> tuple[int, int] | None:
    """``"256x176"`` -> (256, 176) (height x width); ``"256"`` -> (256, 256). Each side is a whole number of pixels
    from ``min_side`` (:data:`~cfld.images.MIN_SIDE`, 16: no smaller picture holds a person, nor can be framed) to
    ``max_side`` (None: no upper bound; the commands' ``--size`` take :data:`~cfld.images.MAX_OUTPUT_SIDE`, 4096):
    anything else is refused in one sentence naming ``option``, before any work (and before any memory is
    asked for it)."""
    if value is None:
        return None
    shown = repr(value[:40])
    parts = [part.strip() for part in value.lower().replace("×", "x").split("x")]
    if len(parts) > 2 or not all(_WHOLE.fullmatch(part) for part in parts):
        raise InputError(option, f"expected HEIGHTxWIDTH in pixels, such as 256x176, got {shown}")
    sides = [_whole(part) for part in parts] * (3 - len(parts))
    bounds = f"from {min_side} to {max_side}" if max_side is not None else f"at least {min_side}"
    if min(sides) <= 0:
        raise InputError(option, f"{shown} is not a size: each side must be a positive whole number of pixels, "
                                 f"{bounds} (HEIGHTxWIDTH, such as 256x176)")
    small, large = min(sides) < min_side, max_side is not None and max(sides) > max_side
    if small or large:
        what = "out of range" if small and large else "too small" if small else "too large"
        raise InputError(option, f"{shown} is {what} here: each side must be {bounds} pixels (HEIGHTxWIDTH, such "
                                 "as 256x176)")
    return sides[0], sides[1]


_WHOLE = re.compile(r"[+-]?[0-9]+")
_MAX_DIGITS = 12  # a side written with more digits is taken as this large: int() of 5,000 digits would refuse it


def _whole(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-").lstrip("0") or "0"
    return sign * (int(digits) if len(digits) <= _MAX_DIGITS else 10**_MAX_DIGITS)


def guidance_options(command):
    """``--guidance-pose`` and ``--guidance-appearance``, w_pose and w_app of Eq. 7 (both 2.0 in the paper)."""
    command = click.option("--guidance-appearance", type=GUIDANCE, default=2.0, show_default=True,
                           help="w_app of Eq. 7.")(command)
    return click.option("--guidance-pose", type=GUIDANCE, default=2.0, show_default=True,
                        help="w_pose of Eq. 7.")(command)


FAST_HELP = ("Sample fast: {scheduler} in {steps} steps instead of the paper's DDPM in {paper} ({ratio:.1f}x fewer "
             "UNet evaluations, about 3x less time; on held-out persons of the demo model SSIM -0.03, PSNR +0.2 dB and "
             "garment colour as close as DDPM-50's, but not the same picture; see docs/fast-sampling.md). --steps, "
             "--scheduler and --guidance-interval still apply.")
INTERVAL_HELP = ("Guide only the steps i of n with START <= i/n < END (fractions, e.g. 0,0.6: the first 60%); the "
                 "others run one UNet branch instead of two. Default: every step (the paper).")


def sampling_options(default_scheduler: str, scheduler_help: str):
    """``--steps``, ``--scheduler``, ``--guidance-interval`` and ``--fast``; resolve them with :func:`sampling`."""

    def decorate(command):
        command = click.option("--fast", is_flag=True,
                               help=FAST_HELP.format(scheduler=FAST.scheduler, steps=FAST.num_inference_steps,
                                                     paper=PAPER.num_inference_steps,
                                                     ratio=PAPER.unet_evaluations() / FAST.unet_evaluations()))(command)
        command = click.option("--guidance-interval", metavar="START,END", default=None, help=INTERVAL_HELP)(command)
        command = click.option("--scheduler", default=None,
                               help=f"{scheduler_help} [default: {default_scheduler}; "
                                    f"with --fast: {FAST.scheduler}]")(command)
        return click.option("--steps", type=STEPS, default=None,
                            help=f"{STEPS_HELP} [default: {PAPER.num_inference_steps}; with --fast: "
                                 f"{FAST.num_inference_steps}]")(command)

    return decorate


def sampling(fast: bool, steps: int | None, scheduler: str | None, interval: str | None,
             default_scheduler: str) -> tuple[int, str, tuple[float, float] | None]:
    """The (steps, scheduler, guidance interval) of :func:`sampling_options`' values, checked."""
    if scheduler is not None:
        scheduler_key(scheduler)
    parsed = None
    if interval is not None:
        try:
            parsed = tuple(float(part) for part in interval.split(","))
        except ValueError:
            parsed = ()
        if len(parsed) != 2:
            raise InputError("--guidance-interval", f"expected START,END such as 0,0.6, got {interval[:40]!r}")
        parsed = check_interval(parsed, "--guidance-interval")
    return resolve(fast, steps, scheduler, parsed, default_scheduler)


NO_FRAME_HELP = ("Use the photos as they are, stretched to the model's shape (the behaviour before framing). By "
                 "default every person photo is framed as the model's training photos are: the person is found "
                 "(MediaPipe, the 'detect' extra) and a crop of the model's shape is cut around them, head at the top, "
                 "body centred; a photo already framed like that (a dataset photo) is used as it is, bit for bit.")
SAVE_FRAMED_HELP = ("Also write <stem>_framed.png and <stem>_framed.json beside the results for every photo: the "
                    "framed picture and its record (the crop box in the photo's own pixels, the pose), to composite "
                    "a result back into the original photo (as `cfld frame` writes them).")


def framing_options(command):
    """``--no-frame`` and ``--save-framed``: how the person photos of a command are framed (see
    :class:`cfld.commands.frame.PhotoFraming`); check them with :func:`check_framing`."""
    command = click.option("--save-framed", is_flag=True, help=SAVE_FRAMED_HELP)(command)
    return click.option("--no-frame", is_flag=True, help=NO_FRAME_HELP)(command)


def check_framing(no_frame: bool, save_framed: bool) -> None:
    """Refuse ``--save-framed`` with ``--no-frame``: nothing would be framed to save."""
    if no_frame and save_framed:
        raise click.UsageError("--save-framed writes the framed photos, and --no-frame frames none; give one of them")


def workers_option(command):
    """``-j/--workers N``: the worker processes of a per-photo command (:class:`cfld.workers.WorkerPool`); None
    when not given, for :func:`cfld.workers.default_workers`."""
    return click.option(
        "-j", "--workers", type=click.IntRange(min=1), default=None, metavar="N",
        help="Worker processes doing the per-photo work, one detector each (default: the usable cores, shared among "
             "the processes a launcher started on this machine); 1 works in this process.")(command)


METRIC_NAMES = ("psnr", "ssim", "ssim_256", "lpips", "fid", "fid_standard")  # cfld.metrics.ALL_METRICS, without torch


def parse_metric_list(value: str) -> list[str]:
    """``"psnr,ssim"`` -> ["psnr", "ssim"]; an unknown or empty list is an InputError naming ``--metrics``."""
    metrics = [m.strip() for m in value.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in METRIC_NAMES]
    if unknown or not metrics:
        raise InputError("--metrics", f"unknown metric {unknown[0]!r}; choose from {', '.join(METRIC_NAMES)}"
                         if unknown else "name at least one metric")
    return metrics


def echo_metrics(result: dict) -> None:
    """Each metric of an evaluation result on a line, with the protocol that produced it (a missing number: PSNR of
    identical images, ``inf``; a pose metric without any pair to score, ``n/a``)."""
    for name, value in result["metrics"].items():
        shown = ("inf" if name == "psnr" else "n/a") if value is None else f"{value:.4f}"
        click.echo(f"{name:<13} {shown:>10}   {result['protocols'][name]}")


def echo_pose_misses(result: dict) -> None:
    """With the pose check in an evaluation result: how many images miss their target pose, and how many show
    nobody at all."""
    pose = result.get("pose")
    if not pose:
        return
    line = (f"pose check: {pose.get('misses_pose', 0)} of {pose['images']} images miss their target pose (PCK@0.1 "
            f"below {pose['threshold']}), {pose.get('no_person', 0)} with no person found")
    if pose.get("no_target_joints"):
        line += f"; {pose['no_target_joints']} targets without any joint not scored"
    click.echo(line)


# -- PHOTO|FOLDER... arguments (cfld pose detect, cfld frame) -----------------------------------------------------



def real_path(path) -> str:
    """``path`` after links (as it is where that cannot be worked out): what tells two names of one file apart."""
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return os.fspath(path)


def same_file(a, b) -> bool:
    """Whether two paths name one file (after links)."""
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except (OSError, ValueError):
        return False


def photo_arguments(arguments, written_as: str, reserved: dict[str, str] | None = None) -> list[Path]:
    """The photos that PHOTO|FOLDER... name, in order, the same file once. Their name stems must differ
    (case-insensitively: ``<stem>`` names the outputs; ``written_as`` says what a clash would be written to, e.g.
    "both poses would be written to {stem}.json") and avoid ``reserved`` ({stem: what it would overwrite})."""
    photos, seen = [], set()
    for argument in arguments:
        kind = path_kind(argument)
        if kind == "folder":
            listed = folder_photos(Path(argument))
        elif kind == "file":
            listed = [Path(argument)]
        elif kind is None:
            raise InputError(argument, "no such file or folder")
        else:
            raise InputError(argument, "is neither a photo nor a folder")
        for photo in listed:
            key = real_path(photo)
            if key not in seen:
                seen.add(key)
                photos.append(photo)
    by_stem: dict[str, Path] = {}
    for photo in photos:
        stem = photo.stem.casefold()
        if reserved and stem in reserved:
            raise InputError(photo, f"would be written to {reserved[stem]}; rename the photo")
        if stem in by_stem:
            raise InputError(photo, f"has the same name stem as {by_stem[stem]}: {written_as.format(stem=photo.stem)}; "
                                    "rename one of them")
        by_stem[stem] = photo
    return photos


def folder_photos(folder: Path) -> list[Path]:
    """The photos directly inside ``folder`` (by suffix; hidden files skipped), sorted by name."""
    try:
        entries = sorted(folder.iterdir(), key=lambda path: path.name)
    except OSError as error:
        raise InputError(folder, f"cannot be read ({error.strerror or type(error).__name__})") from None
    if not entries:
        raise InputError(folder, "is a folder with nothing in it; give photos, or a folder of photos")
    photos = [path for path in entries
              if path.suffix.lower() in PHOTO_SUFFIXES and not path.name.startswith(".") and path.is_file()]
    if not photos:
        raise InputError(folder, f"is a folder without photos (no {' '.join(PHOTO_SUFFIXES)} files in it; "
                                 "sub-folders are not searched)")
    return photos


def check_targets(targets, photos, overwrite: bool) -> None:
    """Refuse, before any work, output files that are one of ``photos``, are folders, or exist (without
    ``overwrite``)."""
    keys = {real_path(photo) for photo in photos}
    for target in targets:
        if real_path(target) in keys:
            raise InputError(target, "is one of the photos, which an output would replace; write into another folder")
    for target in targets:
        if path_kind(target) == "folder":
            raise InputError(target, "is a folder, where an output file would go; move it or write elsewhere")
    existing = [target for target in targets if path_kind(target) is not None]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more of the outputs)" if len(existing) > 1 else ""
        raise InputError(existing[0], f"already exists{more}; pass --overwrite to replace them")

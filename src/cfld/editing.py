"""CFLDEditPipeline: appearance editing without training (paper Sec. 4.6, Fig. 6): style transfer by mask and
style interpolation.

    pipe = CFLDEditPipeline.from_pretrained("path/to/cfld-folder")  # or CFLDEditPipeline.from_pipe(a_CFLDPipeline)
    edited = pipe.style_transfer("ref.png", "ref_pose.json", "other.jpg", "ref_mask_upper.png").images
    strip = pipe.interpolate("a.jpg", "b.jpg", "pose.json", [0.0, 0.5, 1.0]).images

A :class:`CFLDEditPipeline` is a :class:`cfld.pipeline.CFLDPipeline` (same components, loading, saving and
sampling options; diffusers' ``from_pipe`` shares them at no cost): editing only prepares what the sampler starts
from (the source encodings, the initial noise) and, for style transfer, a :class:`KeepRegion`, a diffusers step-end
callback that keeps the reference outside the mask. Sampling itself, and how a generator's random numbers are
drawn, is described in :mod:`cfld.pipeline`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from .errors import InputError
from .framing import Framed, person_pose
from .images import BLACK, ImageInput, load_image, to_model_input
from .pipeline import DEFAULT_OUTPUT_SIZE, CFLDPipeline, CFLDPipelineOutput, PoseInput, SourceEncoding
from .pose import Pose, load_pose
from .pose.detect import MIN_JOINTS


@dataclass
class KeepRegion:
    """Style transfer by mask (paper Sec. 4.6): generate only inside ``mask``, keep the reference elsewhere.

    The paper writes the step as ``eps'_t = m * eps_t + (1 - m) * z_t^ref`` with ``z_t^ref`` the reference's
    latent ``z_0^ref = E(y_ref)`` noised to step t by Eq. 1. We apply that blend to the latent the sampler
    carries (as blended latent diffusion does): after every step, outside the mask the latent becomes
    ``z_{t-1}^ref``, and after the last step ``z_0^ref`` itself, so the unmasked region is the reference's
    own reconstruction and the masked region is generated in the reference's pose with the source's look.

    A diffusers step-end callback (``pipe(..., callback_on_step_end=keep)``): ``scheduler`` is a scheduler of the
    sampling's kind set to its ``steps``, whose timesteps say which step follows.
    """

    mask: torch.Tensor  # (N, 1, h, w) in [0, 1] at latent size; 1 = generate
    reference_latents: torch.Tensor  # z_0^ref, (N, 4, h, w)
    noise: torch.Tensor  # the fixed noise of Eq. 1, (N, 4, h, w)
    scheduler: Any
    steps: int
    tensor_inputs: list[str] = field(default_factory=lambda: ["latents"])

    def __post_init__(self):
        self.scheduler = type(self.scheduler).from_config(self.scheduler.config)  # our own copy of the schedule
        self.scheduler.set_timesteps(self.steps)

    def __call__(self, pipe, step: int, timestep, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        timesteps = self.scheduler.timesteps
        following = timesteps[step + 1] if step + 1 < len(timesteps) else None
        return {**tensors, "latents": self.blend(tensors["latents"], following)}

    def blend(self, latents: torch.Tensor, timestep) -> torch.Tensor:
        if timestep is None:
            reference = self.reference_latents
        else:
            reference = self.scheduler.add_noise(self.reference_latents, self.noise, torch.as_tensor([int(timestep)]))
        mask = self.mask.to(latents)
        return mask * latents + (1 - mask) * reference.to(latents)


class CFLDEditPipeline(CFLDPipeline):
    """The paper's appearance editing (Sec. 4.6) on a CFLD model: :meth:`style_transfer` and :meth:`interpolate`.

    Build it like a :class:`CFLDPipeline` (``from_pretrained``, ``save_pretrained`` and ``__call__`` are the same),
    or on an existing one's components: ``CFLDEditPipeline.from_pipe(pipe)`` (the networks are shared, not copied).
    """

    @torch.no_grad()
    def style_transfer(
        self,
        reference: ImageInput,
        reference_pose: PoseInput | None,
        source: ImageInput | Sequence[ImageInput],
        mask: ImageInput | torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        frame: bool = True,
        pose_frame: tuple[int, int] | None = None,
        **kwargs: Any,
    ) -> CFLDPipelineOutput:
        """Dress the person of ``reference`` in the masked region with the appearance of each ``source``.

        The pose is the reference's own: ``reference_pose`` given in the reference photo's own frame (e.g. its
        annotation row), or None for the one detected in it. Outside ``mask`` (a picture of the photo's shape,
        white = edit, e.g. an upper-clothes mask) the reference is kept. With ``frame`` (default) the reference
        and the sources are framed as the training photos are, and the reference's pose and mask cut with its
        crop. No training is involved: this is the paper's Fig. 6(a). ``kwargs`` go to :meth:`CFLDPipeline.__call__`
        (a ``callback_on_step_end`` of theirs runs after the blend).
        """
        photo, framed, name = load_image(reference), None, _name(reference, "reference")
        size = kwargs.get("output_size", DEFAULT_OUTPUT_SIZE) or self.model.config.image_size
        picture = photo
        if frame:
            framed = self.image_processor.frame(photo, size, source=name)
            picture = framed.image
        if isinstance(reference_pose, torch.Tensor):  # a ready pose image: already in the picture's frame
            pose = reference_pose
        elif reference_pose is not None:  # in the photo's own frame: moved into the framed picture
            pose = load_pose(reference_pose, frame=pose_frame)
            pose = framed.move_pose(pose) if framed is not None else pose
        else:
            pose = person_pose(photo, framed, name)
        region = latent_mask(mask, self.latent_size, photo, framed)
        encoding = self.encode_source(source, frame, size)
        n = len(encoding)
        reference_pixels = to_model_input(picture, self.model.config.image_size).unsqueeze(0)
        z_ref = self.encode_images(reference_pixels).float().expand(n, -1, -1, -1)
        latents = torch.randn(z_ref.shape, generator=generator)
        noise = torch.randn(z_ref.shape, generator=generator)
        steps, scheduler, _ = self.sampling_setup(kwargs.get("num_inference_steps"), kwargs.get("scheduler"), None,
                                                  kwargs.get("fast", False))
        device = self._execution_device
        keep = KeepRegion(region.expand(n, -1, -1, -1).to(device), z_ref.to(device), noise.to(device), scheduler,
                          steps)
        callback = _then(keep, kwargs.pop("callback_on_step_end", None))
        return self(encoding, [pose] * n, paired=True, latents=latents, generator=generator,
                    callback_on_step_end=callback, pose_frame=pose_frame, **kwargs)

    @torch.no_grad()
    def interpolate(
        self,
        source_a: ImageInput,
        source_b: ImageInput,
        pose: PoseInput,
        weights: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
        *,
        generator: torch.Generator | None = None,
        frame: bool = True,
        **kwargs: Any,
    ) -> CFLDPipelineOutput:
        """Style interpolation (paper Fig. 6(b)): coarse prompts and HGA biases linearly interpolated from
        ``source_a`` (weight 0) to ``source_b`` (weight 1), one image per weight, same pose, same noise. The two
        photos are framed unless ``frame`` is False. ``kwargs`` go to :meth:`CFLDPipeline.__call__`."""
        if not len(weights):
            raise InputError("weights", "no interpolation weight given")
        size = kwargs.get("output_size", DEFAULT_OUTPUT_SIZE) or self.model.config.image_size
        a, b = self.encode_source(source_a, frame, size), self.encode_source(source_b, frame, size)
        steps = [a.lerp(b, float(w)) for w in weights]
        encoding = SourceEncoding(
            torch.cat([e.prompt for e in steps]),
            {k: torch.cat([e.query_biases[k] for e in steps]) for k in a.query_biases},
        )
        z_t = torch.randn((1, self.unet.config.in_channels, *self.latent_size), generator=generator)
        return self(encoding, pose, latents=z_t.expand(len(weights), -1, -1, -1).clone(), generator=generator, **kwargs)


def _then(first, second):
    """Two step-end callbacks as one (the second sees what the first returned)."""
    if second is None:
        return first

    def both(pipe, step, timestep, tensors):
        return second(pipe, step, timestep, first(pipe, step, timestep, tensors))

    return both


def _name(image: ImageInput, default: str) -> str:
    return os.fspath(image) if isinstance(image, (str, os.PathLike)) else default


def latent_mask(mask: ImageInput | torch.Tensor, size: tuple[int, int], reference: Image.Image | None = None,
                framed=None) -> torch.Tensor:
    """A (1, 1, h, w) mask in [0, 1] at latent size from a picture (white = 1, transparent = 0) or a (H, W)
    tensor. It must have the reference photo's shape: a mask of another aspect ratio was made for another
    picture, and stretching it would edit the wrong region. With the reference's :class:`~cfld.framing.Framed`
    record, the mask is cut with its crop, as the photo was."""
    name = os.fspath(mask) if isinstance(mask, (str, os.PathLike)) else "mask"
    if isinstance(mask, torch.Tensor) and mask.ndim == 2:
        values = mask.float()
        if not torch.isfinite(values).all():
            raise InputError(name, "contains NaN or infinite values")
    else:
        picture = load_image(mask, name, background=BLACK).convert("L")
        values = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0)
    if reference is not None:
        check_mask_shape(tuple(values.shape), reference, name)
    if values.max() <= 0:
        raise InputError(name, "is empty (no white pixel): nothing would be edited")
    if framed is not None and framed.cropped:
        if isinstance(mask, torch.Tensor):
            picture = _mask_picture(values)
        cut = cut_mask(picture, framed, name, "(pass frame=False, or --no-frame, to use the whole photo)")
        values = torch.from_numpy(np.asarray(cut, dtype=np.float32) / 255.0)
    return torch.nn.functional.interpolate(values[None, None], size=size, mode="area").clamp(0, 1)


def _mask_picture(values: torch.Tensor) -> Image.Image:
    """(H, W) mask values in [0, 1] as a greyscale picture."""
    return Image.fromarray((values.float().clamp(0, 1) * 255).round().to(torch.uint8).numpy(), "L")


def check_mask_shape(shape: tuple[int, int], reference: Image.Image, name: object) -> None:
    """Refuse a mask of ``shape`` = (H, W) whose aspect ratio is not the reference photo's: it was made for another
    picture, and stretching it would edit the wrong region."""
    mask_ratio, photo_ratio = shape[1] / shape[0], reference.width / reference.height
    if abs(mask_ratio / photo_ratio - 1) > 0.02:
        raise InputError(name, f"is {shape[0]}x{shape[1]} (HxW) but the reference photo is "
                               f"{reference.height}x{reference.width}: a mask must have the photo's shape")


def cut_mask(mask: Image.Image, framed, name: object, way_around: str) -> Image.Image:
    """A mask drawn on the reference photo (a picture, white = edit) cut with its :class:`~cfld.framing.Framed` crop,
    as the photo was; one InputError naming ``name`` (and ``way_around``: how to use the whole photo instead) where
    no white pixel falls inside the crop."""
    cut = framed.apply_crop(mask.convert("L"))
    if max(cut.getextrema()) == 0:
        raise InputError(name, "has no white pixel inside the crop that frames the reference's person: nothing would "
                               f"be edited {way_around}")
    return cut


@dataclass(frozen=True)
class StyleReference:
    """A style-transfer reference as the model gets it (:func:`prepare_reference`)."""

    picture: Image.Image  # the framed picture, or the photo as it is where it was not framed
    pose: Pose  # the reference's pose in ``picture``
    mask: ImageInput  # the mask cut with the framing crop; as it was given where the photo was not cropped


def prepare_reference(photo: Image.Image, framed: Framed | None, mask: ImageInput, pose: Pose | None = None, *,
                      name: str, mask_name: object, way_around: str, give: str | None = None,
                      min_joints: int = MIN_JOINTS, detected: Callable[[Pose], None] | None = None) -> StyleReference:
    """The reference of a style transfer by mask (the photo, read, and its :class:`~cfld.framing.Framed` record, or
    None where it was not framed) prepared for the model: its picture, its pose and its mask in that picture.

    The pose is ``pose`` (the reference's own, in the photo's frame or stretched onto it) moved into the framed
    picture; without one, the framed picture's own (refused in one sentence naming ``name`` where nobody, or fewer
    than ``min_joints`` joints, were found; ``give``: what the sentence suggests instead), or, where the photo was not
    framed, detected in it; ``detected`` is called with a pose so found. Then the mask (white = edit, drawn on the
    photo) must have the photo's shape (:func:`check_mask_shape`; a photo with nobody in it is refused for that
    first) and is cut with the crop (:func:`cut_mask`: one sentence naming ``mask_name`` and ``way_around`` where no
    white pixel is left)."""
    if pose is not None:
        pose = framed.move_pose(pose) if framed is not None else pose
    else:
        pose = person_pose(photo, framed, name, give, min_joints)
        if detected is not None:
            detected(pose)
    if isinstance(mask, torch.Tensor) and mask.ndim == 2:  # (H, W) values, as latent_mask takes them
        picture, shape = None, tuple(mask.shape)
    else:
        picture = mask if isinstance(mask, Image.Image) else load_image(mask, str(mask_name), background=BLACK)
        shape = (picture.height, picture.width)
    check_mask_shape(shape, photo, mask_name)
    if framed is not None and framed.cropped:
        mask = cut_mask(picture if picture is not None else _mask_picture(mask), framed, mask_name, way_around)
    return StyleReference(photo if framed is None else framed.image, pose, mask)

"""PersonImageProcessor: what :class:`cfld.CFLDPipeline` does to person photos before the model and to images after it,
as diffusers' pipelines carry a ``VaeImageProcessor``.

    processor = pipe.image_processor
    framed = processor.frame("holiday.jpg", (256, 176))   # a cfld.framing.Framed: the picture, its crop box, its pose
    pose = framed.move_pose(pose_in_the_photo)              # a pose given in the photo's own pixels, into the picture

**Before**: a person photo is *framed* (:mod:`cfld.framing`) the way the model's training photos are: the person is
found (MediaPipe, the ``detect`` extra) and a crop of the model's shape is cut around them, so a holiday snapshot
is not stretched into a squashed figure; a dataset photo goes through unchanged. The pipeline's ``frame=False`` uses
photos as they are, stretched to the model's shape.
Then the picture is resized to the source encoder's size in [-1, 1] (bicubic, antialiased, as the original).

**After**: images in [0, 1] are resized to the requested output size (bicubic, antialiased) and returned as
diffusers returns them: ``"pil"`` (quantised by truncation, as the original), ``"np"`` (float32 ``(N, H, W, 3)`` in
[0, 1]) or ``"pt"`` (float ``(N, 3, H, W)`` in [0, 1]).

The ``cfld`` commands frame their photos with this same processor, so ``pipe("holiday.jpg", pose)`` and
``cfld transfer -s holiday.jpg -p pose`` see the same framed picture and give the same image.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .errors import InputError, MissingDependencyError
from .framing import Framer, FramingError
from .framing.files import NEEDS_MEDIAPIPE
from .images import ImageInput, load_image, resize_output, to_model_input, to_pil
from .models.config import POSE_CHANNELS
from .pose import PoseDetector, load_pose, pose_image

OUTPUT_TYPES = ("pil", "np", "pt", "latent")
NO_FRAME_HINT = "pass frame=False to use the photo as it is (stretched to the model's shape)"


class PersonImageProcessor:
    """Frames person photos for the model (see the module docstring) and turns decoded images into outputs.

    Args:
        replace_background: lay everything away from the framed person on the training photos' plain colour.
        hint: what an error that stops framing adds (how to go on without it; the command line says ``--no-frame``),
            None for nothing.

    Inside ``with processor:`` one MediaPipe detector serves every photo and size, and is closed at the end of the
    block; outside, each :meth:`frame` makes its own (cheap after the first) and closes it. Framing is serialised,
    so one processor may serve several threads.
    """

    def __init__(self, replace_background: bool = False, hint: str | None = NO_FRAME_HINT):
        self.replace_background = replace_background
        self.hint = hint
        self._detector = None
        self._framers: dict[tuple[int, int], Any] = {}
        self._lock = threading.RLock()
        self._open = 0  # with-blocks open

    # -- before the model --------------------------------------------------------------------------------------

    def frame(self, photo: ImageInput, size: tuple[int, int], source: str | None = None):
        """``photo`` framed for a model of ``size`` = (H, W): a :class:`cfld.framing.Framed` (the framed picture, the
        crop box in the photo's own pixels, the person's pose in the picture). A photo that cannot be framed is one
        :class:`~cfld.errors.InputError` saying why and how to go on without framing."""
        with self, self._lock:
            framer = self.framer(size)
            try:
                return framer(photo, source=source)
            except FramingError as error:
                if self.hint is None:
                    raise
                raise FramingError(error.source, f"{error.problem}; or {self.hint}", error.reason) from None

    @staticmethod
    def preprocess(pictures: ImageInput | Sequence[ImageInput] | torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``(B, 3, H, W)`` in [-1, 1] at ``size`` (bicubic, antialiased, as the original's transforms) of one picture
        or several; a 4-D tensor is taken as already preprocessed, and its shape checked."""
        if isinstance(pictures, torch.Tensor) and pictures.ndim == 4:
            if tuple(pictures.shape[1:]) != (3, *size):
                raise InputError("source tensor",
                                 f"has shape {tuple(pictures.shape)}, expected (B, 3, {size[0]}, {size[1]})")
            return pictures
        pictures = list(pictures) if isinstance(pictures, (list, tuple)) else [pictures]
        if not pictures:
            raise InputError("sources", "no source image given")
        return torch.stack([to_model_input(load_image(picture), tuple(size)) for picture in pictures])

    def pose_images(self, poses, size: tuple[int, int], frame: tuple[int, int] | None = None) -> torch.Tensor:
        """(N, 21, H, W) pose images at ``size`` from anything :func:`cfld.pose.load_pose` reads, or ready-made
        ``(21, H, W)`` tensors (or a stack of them); ``frame``: (H, W) of OpenPose files, which do not record it."""
        poses = poses if isinstance(poses, (list, tuple)) else [poses]
        if not len(poses):
            raise InputError("poses", "no target pose given")
        images = []
        for p in poses:
            if isinstance(p, torch.Tensor) and p.ndim == 4:
                images.extend(self.pose_images(list(p), size, frame))
            elif isinstance(p, torch.Tensor):
                if tuple(p.shape) != (POSE_CHANNELS, *size):
                    raise InputError("pose tensor", f"has shape {tuple(p.shape)}, expected {(POSE_CHANNELS, *size)}")
                images.append(p.float())
            else:
                images.append(pose_image(load_pose(p, frame=frame), tuple(size)))
        return torch.stack(images)

    def framer(self, size: tuple[int, int]):
        """The :class:`cfld.framing.Framer` of ``size`` on this processor's detector (use it inside ``with processor:``,
        which keeps the detector open)."""
        size = tuple(size)
        if size not in self._framers:
            try:
                if self._detector is None:
                    self._detector = PoseDetector(segmentation=True)
            except MissingDependencyError:
                way_around = "" if self.hint is None else f", or {self.hint}"
                raise MissingDependencyError(NEEDS_MEDIAPIPE + way_around) from None
            self._framers[size] = Framer(size, self.replace_background, detector=self._detector)
        return self._framers[size]

    # -- after the model ---------------------------------------------------------------------------------------

    @staticmethod
    def postprocess(images: torch.Tensor, output_type: str = "pil", size: tuple[int, int] | None = None) -> Any:
        """Images ``(N, 3, H, W)`` in [0, 1] resized to ``size`` (None: as they are) as ``output_type``."""
        check_output_type(output_type)
        if size is not None:
            images = resize_output(images, tuple(size))
        if output_type == "pil":
            return to_pil(images)
        if output_type == "np":
            return images.float().permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)
        return images

    # -- lifetime ----------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Free the MediaPipe detector now (a later photo makes a new one)."""
        with self._lock:
            if self._detector is not None:
                self._detector.close()
            self._detector, self._framers = None, {}

    def __enter__(self) -> PersonImageProcessor:
        with self._lock:
            self._open += 1
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._open -= 1
            if self._open == 0:
                self.close()


def check_output_type(output_type: Any) -> None:
    if output_type not in OUTPUT_TYPES:
        raise InputError("output_type", f"must be 'pil', 'np', 'pt' or 'latent', got {output_type!r}")

"""What the buttons of the app's three tabs do (:class:`App`), as plain methods, testable without a browser."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from PIL import Image

from ..errors import InputError
from ..framing import person_pose
from ..pose import draw_pose, gallery, retarget
from . import inputs
from .inputs import MAX_FRAMES, check_frames, read_photo, uploaded_pose
from .photo_framing import OUTPUT_SIZE, AppFraming
from .pose_scores import PoseScores
from .server import work_folder

POSE_MODES = ("gallery pose", "pose of another photo", "pose JSON file")
# the app takes a framed photo's pose as framing found it, however few of its joints were seen
ANY_JOINTS = 0


class App:
    """The app's actions as plain methods (what the buttons call), testable without a browser.

    Person photos are framed by one :class:`~cfld.app.photo_framing.AppFraming` and results scored against their
    target poses by one :class:`~cfld.app.pose_scores.PoseScores` (MediaPipe detectors made on first use and closed
    by :meth:`close`, registered with ``atexit``): each action also returns the pose check's markdown.
    """

    def __init__(self, pipe, default_steps: int = 50):
        from ..editing import CFLDEditPipeline

        self.pipe = pipe
        # the same networks, with the paper's editing (Sec. 4.6); diffusers' from_pipe would cast them to float32
        self.editor = CFLDEditPipeline.from_pipe(pipe, torch_dtype=pipe.dtype)
        self.default_steps = default_steps
        self.gallery = gallery()
        self.gallery_pictures = [(draw_pose(pose), _gallery_label(name)) for name, pose in self.gallery.items()]
        self.work_dir = work_folder()
        self.framing = AppFraming()
        self.pose_scores = PoseScores()
        atexit.register(self.close)

    # -- inputs ----------------------------------------------------------------------------------------------

    photo = staticmethod(read_photo)
    preview = staticmethod(inputs.preview)

    def frame(self, image, name: str, plain: bool = False):
        """``image`` framed like the training photos (:meth:`AppFraming.frame
        <cfld.app.photo_framing.AppFraming.frame>`), or None without MediaPipe."""
        return self.framing.frame(image, name, plain)

    def close(self) -> None:
        """Close the MediaPipe detectors (a later framing or pose check makes a new one)."""
        self.framing.close()
        self.pose_scores.close()

    def target_pose(self, source, mode: str, gallery_index: int | None, pose_photo: str | None,
                    pose_json: str | None, frame: bool = False):
        """The chosen pose, fitted into the frame of ``source`` (the picture the model is given). With ``frame``
        the pose of another photo is taken from that photo's own framed crop (already in the
        :data:`OUTPUT_SIZE` frame); without, it is detected in the whole photo and fitted."""
        target = (source.height, source.width)
        if mode == POSE_MODES[0]:
            pose = self._gallery_pose(0 if gallery_index is None else inputs.whole(gallery_index, "gallery pose"))
        elif mode == POSE_MODES[1]:
            picture = self.photo(pose_photo, "pose photo")
            name = f"pose photo ({Path(pose_photo).name})"
            framed = self.frame(picture, name) if frame else None
            pose = person_pose(picture, framed, name, "give a photo of one person", ANY_JOINTS)
        elif mode == POSE_MODES[2]:
            pose = uploaded_pose(pose_json, "pose JSON")
        else:
            raise InputError("pose", f"choose one of {', '.join(POSE_MODES)}")
        return retarget(pose, target)

    def _gallery_pose(self, index: int):
        if not 0 <= index < len(self.gallery):
            raise InputError("gallery", f"has no pose number {index}")
        return self.gallery[self.gallery.names[index]]

    # -- actions ---------------------------------------------------------------------------------------------

    def repose(self, source_path, mode, gallery_index, pose_photo, pose_json, steps, guidance_pose,
               guidance_appearance, seed, fast=False, frame=True, plain=False):
        """Re-pose tab: (result image, pose drawing, framed input at the output size, framing note, pose check).

        With ``frame`` the person photo is framed like the training photos (``plain``: on their plain
        background) and the pose fitted into the framed picture; without, the photo is used as it is."""
        import torch

        source = self.photo(source_path, "person photo")
        picture, _, note = self.framing.framed_input(source, f"person photo ({Path(source_path).name})", frame,
                                                     plain)
        pose = self.target_pose(picture, mode, gallery_index, pose_photo, pose_json, frame=bool(frame))
        result = self.pipe(picture, pose, **inputs.sampling(steps, fast), frame=False,
                           guidance_pose=float(guidance_pose), guidance_appearance=float(guidance_appearance),
                           output_size=OUTPUT_SIZE, generator=torch.Generator().manual_seed(inputs.seed(seed)))
        drawing = draw_pose(pose, OUTPUT_SIZE)
        shown = _at_output_size(picture)
        check = self.pose_scores.line(self.pose_scores.score(result.images[0], pose, "result"))
        return result.images[0], drawing, shown, note, check

    def style_transfer(self, reference_path, reference_pose_json, mask_path, source_path, steps, seed,
                       fast=False, frame=True):
        """Edit tab, style transfer by mask: (result, pose check): the reference's pose and unmasked regions, the
        source's look inside the mask. The reference's pose comes from a pose JSON, else it is detected in the photo.

        With ``frame`` both photos are framed like the training photos; the mask (drawn on the reference
        photo) is cut with the reference's crop, and a pose JSON (in the reference photo's pixels, or
        stretched onto them) is moved into the crop; a detected pose is the framed reference's own
        (:func:`cfld.editing.prepare_reference`)."""
        import torch

        from ..editing import prepare_reference

        reference = self.photo(reference_path, "reference photo")
        source = self.photo(source_path, "appearance photo")
        mask = self.photo(mask_path, "mask", background=(0, 0, 0))
        reference_name = f"reference photo ({Path(reference_path).name})"
        _, framed, _ = self.framing.framed_input(reference, reference_name, frame)
        source, _, _ = self.framing.framed_input(source, f"appearance photo ({Path(source_path).name})", frame)
        given = uploaded_pose(reference_pose_json, "reference's pose JSON") if reference_pose_json else None
        prepared = prepare_reference(
            reference, framed, mask, given, name=reference_name, mask_name=f"mask ({Path(mask_path).name})",
            way_around="(untick the framing box to use the photos as they are)",
            give="give a photo of one person or the reference's pose JSON", min_joints=ANY_JOINTS)
        result = self.editor.style_transfer(prepared.picture, prepared.pose, source, prepared.mask,
                                            **inputs.sampling(steps, fast), output_size=OUTPUT_SIZE, frame=False,
                                            generator=torch.Generator().manual_seed(inputs.seed(seed)))
        check = self.pose_scores.line(self.pose_scores.score(result.images[0], prepared.pose, "result"))
        return result.images[0], check

    def interpolate(self, path_a, path_b, gallery_index, count, steps, seed, fast=False, frame=True):
        """Edit tab, style interpolation: (a strip of images from A's look to B's, in one gallery pose, each
        captioned with its weight; the pose check of each). With ``frame``, A and B are framed like the training
        photos first."""
        import torch

        a, b = self.photo(path_a, "photo A"), self.photo(path_b, "photo B")
        count = inputs.whole(count, "number of images")
        if not 2 <= count <= 8:
            raise InputError("number of images", f"must lie between 2 and 8, got {count}")
        pose = self._gallery_pose(inputs.whole(gallery_index or 0, "pose"))
        a, _, _ = self.framing.framed_input(a, f"photo A ({Path(path_a).name})", frame)
        b, _, _ = self.framing.framed_input(b, f"photo B ({Path(path_b).name})", frame)
        weights = [i / (count - 1) for i in range(count)]
        result = self.editor.interpolate(a, b, pose, weights, **inputs.sampling(steps, fast),
                                         output_size=OUTPUT_SIZE, frame=False,
                                         generator=torch.Generator().manual_seed(inputs.seed(seed)))
        check = self.pose_scores.lines([(f"weight {w:.2f}", image, pose) for image, w in zip(result.images, weights)])
        return [(image, f"{w:.2f}") for image, w in zip(result.images, weights)], check

    def animate(self, source_path, files, fps, steps, seed, fast=False, frame=True):
        """Animate tab: (MP4 path, GIF path, pose check of each frame) of the person through the uploaded poses
        or frames. With ``frame`` the person photo is framed like the training photos first, and poses detected in
        video frames are fitted into the framed picture."""
        from .. import animation as A

        source = self.photo(source_path, "person photo")
        files = [f for f in (files or []) if f]
        if not files:
            raise InputError("poses", "upload pose JSON files or video frames")
        if len(files) > MAX_FRAMES:
            raise InputError("poses", f"{len(files)} files uploaded; the app animates at most {MAX_FRAMES}")
        check_frames(files)
        source, _, _ = self.framing.framed_input(source, f"person photo ({Path(source_path).name})", frame)
        job = Path(tempfile.mkdtemp(prefix="animation-", dir=self.work_dir))
        folder = job / "poses"
        folder.mkdir()
        for path in files:  # keep the uploaded names: they give the order
            shutil.copy(path, folder / Path(path).name)
        poses = A.load_pose_sequence(folder, source, progress=False)
        frames = A.animate(self.pipe, source, poses, **inputs.sampling(steps, fast), seed=inputs.seed(seed),
                           frame=False, output_size=OUTPUT_SIZE)
        shown = A.with_poses(frames, self.pipe.pose_images(poses))
        gif = A.write_gif(shown, job / "animation.gif", float(fps))
        mp4 = A.write_mp4(shown, job / "animation.mp4", float(fps))
        names = [f"frame {i} ({path.name})" for i, path in enumerate(A.sequence_files(folder)[1], 1)]
        check = self.pose_scores.lines(list(zip(names, frames, poses)))
        return str(mp4), str(gif), check


def _at_output_size(picture):
    """The picture as the model sees it: stretched to :data:`OUTPUT_SIZE`."""
    size = (OUTPUT_SIZE[1], OUTPUT_SIZE[0])
    return picture if picture.size == size else picture.resize(size, Image.BICUBIC)


def _gallery_label(name: str) -> str:
    return "/".join(name.split("/")[-2:]).removesuffix(".jpg")

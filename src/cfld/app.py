"""``cfld app``: a small web app (Gradio, ``pip install 'cfld[app]'``) around :class:`CFLDPipeline`.

Three tabs, each a thin layer over the library:

* **Re-pose**: upload a person photo, pick the target pose from the bundled gallery of real DeepFashion
  poses (:func:`cfld.pose.gallery`), from another uploaded photo (detected with MediaPipe, the ``detect``
  extra) or from a pose JSON file; choose steps, guidance and seed; get the result, the pose drawing and
  the framed input the model was given, with a line saying how the photo was framed.
* **Edit**: style transfer by mask and style interpolation (paper Sec. 4.6, :meth:`CFLDPipeline.style_transfer`
  and :meth:`CFLDPipeline.interpolate`).
* **Animate**: a person through a sequence of pose files or video frames -> GIF and MP4 (:mod:`cfld.animation`).

**Framing.** Every person photo is framed the way the model's training photos are (:mod:`cfld.framing`, as
the command line does): the person is found, a crop of the model's aspect is cut around them and resized to
:data:`OUTPUT_SIZE`; a photo already framed like the training photos (e.g. DeepFashion's own) goes through
unchanged. In the Re-pose tab the pose of another photo is taken from that photo's own framed crop, and
gallery poses and pose JSON files are fitted into the framed picture (:func:`cfld.pose.retarget`); "plain
background" lays the person on the training photos' plain colour. In the Edit tab the reference is framed
and its mask cut with the same crop; a reference pose JSON (in the reference photo's pixels) is moved into
the crop. A box in each tab turns framing off (the photo as it is, stretched to the model's size by the
model, as before). One MediaPipe detector serves the whole app (made on first use, closed at exit); without
the ``detect`` extra photos are used as they are and the page says so.

**Uploads.** Photos are taken as plain files (``gr.File``): Gradio stores them and decodes nothing, and the
only reader of their pixels is :func:`cfld.images.load_image`, which checks the width and height a file's
header declares against :data:`MAX_PIXELS` before decoding anything, so a decompression bomb or a huge
greyscale PNG costs a header read and one sentence. Each upload is shown as that reader reads it (a small
preview under it, :meth:`App.preview`).

The server listens on 127.0.0.1 only, loads nothing from the network (system fonts, no analytics), runs
one generation at a time (all buttons share one queue), and refuses uploads over :data:`MAX_FILE_SIZE` or
:data:`MAX_PIXELS`; every problem with an upload is shown as one sentence (the
:class:`~cfld.errors.InputError` text).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Any

from .errors import CFLDError, InputError, MissingDependencyError, describe_unexpected
from .pose.skeleton import DEEPFASHION_SIZE
from .presets import FAST, PAPER

HOST = "127.0.0.1"
MAX_PIXELS = 25_000_000  # per uploaded photo or frame; bigger photos gain nothing at 256x176
MAX_FILE_MIB = 20
MAX_FILE_SIZE = f"{MAX_FILE_MIB}mb"  # Gradio's "mb" is a MiB: 20,971,520 bytes
PREVIEW_SIDE = 512  # the preview under an upload, at most this many pixels per side
MAX_FRAMES = 64  # poses per animation in the app (the command line takes up to 1000)
OUTPUT_SIZE = DEEPFASHION_SIZE
FAST_LABEL = (f"fast: {FAST.scheduler} in {FAST.num_inference_steps} steps instead of DDPM in "
              f"{PAPER.num_inference_steps} (~3x faster, a slightly different picture)")
POSE_MODES = ("gallery pose", "pose of another photo", "pose JSON file")
FRAME_LABEL = "frame the photo like the training photos"
FRAME_PHOTOS_LABEL = "frame the photos like the training photos"
PLAIN_LABEL = "plain background"
UNFRAMED_NOTE = f"framing off: the photo is used as it is (the model stretches it to {OUTPUT_SIZE[0]}x{OUTPUT_SIZE[1]})"
PASSED_NOTE = "already framed like the training photos: used as it is"


def _import_gradio():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError as err:
        raise MissingDependencyError(f"the web app needs Gradio: pip install 'cfld[app]' ({err})") from None
    return gr


class App:
    """The app's actions as plain methods (what the buttons call), testable without a browser.

    Person photos are framed by one :class:`~cfld.framing.Framer` per background choice, all sharing one
    MediaPipe detector, made on first use and closed by :meth:`close` (registered with ``atexit``).
    MediaPipe is not thread safe: framing runs under a lock (the page runs one generation at a time anyway).
    """

    def __init__(self, pipe, default_steps: int = 50):
        from .editing import CFLDEditPipeline
        from .pose import draw_pose, gallery

        self.pipe = pipe
        # the same networks, with the paper's editing (Sec. 4.6); diffusers' from_pipe would cast them to float32
        self.editor = CFLDEditPipeline.from_pipe(pipe, torch_dtype=pipe.dtype)
        self.default_steps = default_steps
        self.gallery = gallery()
        self.gallery_pictures = [(draw_pose(pose), _gallery_label(name)) for name, pose in self.gallery.items()]
        self.work_dir = Path(tempfile.mkdtemp(prefix="cfld-app-"))  # animations; Gradio copies what it shows
        atexit.register(shutil.rmtree, self.work_dir, ignore_errors=True)
        self._detector = None  # the PoseDetector (with segmentation) that every framer shares
        self._framers: dict[bool, Any] = {}  # replace_background -> Framer
        self._lock = threading.Lock()
        atexit.register(self.close)

    # -- inputs ----------------------------------------------------------------------------------------------

    @staticmethod
    def photo(path: str | None, what: str, background: tuple[int, int, int] | None = None):
        """A validated upload as a PIL image; errors name the upload by its own file name. A file whose header
        declares more than :data:`MAX_PIXELS` pixels is refused before it is decoded. Transparent pixels are
        laid on ``background`` (default white, as for photos; masks pass black)."""
        from .images import WHITE, load_image

        if not path:
            raise InputError(what, "no photo uploaded")
        return load_image(path, f"{what} ({Path(path).name})", background=background or WHITE,
                          max_pixels=MAX_PIXELS)

    def preview(self, path: str | None, what: str, background: tuple[int, int, int] | None = None):
        """What is shown under an upload: the photo as :meth:`photo` reads it (so a refused upload is refused at
        once, in the same sentence), at most :data:`PREVIEW_SIDE` pixels per side; None without an upload."""
        from PIL import Image

        if not path:
            return None
        image = self.photo(path, what, background)
        image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.BICUBIC)
        return image

    def frame(self, image, name: str, plain: bool = False):
        """``image`` framed like the training photos at :data:`OUTPUT_SIZE` (a :class:`~cfld.framing.Framed`),
        or None without MediaPipe (the ``detect`` extra). Framing's errors are one sentence that also says how
        to use the photo as it is."""
        from .framing import Framer
        from .pose.detect import PoseDetector

        with self._lock:
            try:
                if self._detector is None:
                    self._detector = PoseDetector(segmentation=True)
            except MissingDependencyError:
                return None
            framer = self._framers.get(bool(plain))
            if framer is None:
                framer = self._framers[bool(plain)] = Framer(OUTPUT_SIZE, bool(plain), detector=self._detector)
            try:
                return framer(image, name)
            except InputError as err:
                raise InputError(err.source, _unframed_hint(err.problem)) from None

    def framed_input(self, image, name: str, frame: bool = True, plain: bool = False):
        """(the picture given to the model, its :class:`~cfld.framing.Framed` or None, a one-line note)."""
        if not frame:
            return image, None, UNFRAMED_NOTE
        framed = self.frame(image, name, plain)
        if framed is None:
            return image, None, ("not framed: framing needs MediaPipe (pip install 'cfld[detect]'); the photo is "
                                 "used as it is")
        return framed.image, framed, _framing_note(framed, plain)

    def close(self) -> None:
        """Close the shared MediaPipe detector (a later framing makes a new one)."""
        with self._lock:
            detector, self._detector, self._framers = self._detector, None, {}
        if detector is not None:
            detector.close()

    def target_pose(self, source, mode: str, gallery_index: int | None, pose_photo: str | None,
                    pose_json: str | None, frame: bool = False):
        """The chosen pose, fitted into the frame of ``source`` (the picture the model is given). With ``frame``
        the pose of another photo is taken from that photo's own framed crop (already in the
        :data:`OUTPUT_SIZE` frame); without, it is detected in the whole photo and fitted as before."""
        from .pose import retarget

        target = (source.height, source.width)
        if mode == POSE_MODES[0]:
            index = 0 if gallery_index is None else _whole(gallery_index, "gallery pose")
            if not 0 <= index < len(self.gallery):
                raise InputError("gallery", f"has no pose number {index}")
            pose = self.gallery[self.gallery.names[index]]
        elif mode == POSE_MODES[1]:
            picture = self.photo(pose_photo, "pose photo")
            name = f"pose photo ({Path(pose_photo).name})"
            framed = self.frame(picture, name) if frame else None
            pose = _person_pose(picture, framed, name, "give a photo of one person")
        elif mode == POSE_MODES[2]:
            pose = _uploaded_pose(pose_json, "pose JSON")
        else:
            raise InputError("pose", f"choose one of {', '.join(POSE_MODES)}")
        return retarget(pose, target)

    # -- actions ---------------------------------------------------------------------------------------------

    def repose(self, source_path, mode, gallery_index, pose_photo, pose_json, steps, guidance_pose,
               guidance_appearance, seed, fast=False, frame=True, plain=False):
        """Re-pose tab: (result image, pose drawing, framed input at the output size, framing note).

        With ``frame`` the person photo is framed like the training photos (``plain``: on their plain
        background) and the pose fitted into the framed picture; without, the photo is used as it is."""
        import torch

        from .pose import draw_pose

        source = self.photo(source_path, "person photo")
        picture, _, note = self.framed_input(source, f"person photo ({Path(source_path).name})", frame, plain)
        pose = self.target_pose(picture, mode, gallery_index, pose_photo, pose_json, frame=bool(frame))
        result = self.pipe(picture, pose, **_sampling(steps, fast), frame=False, guidance_pose=float(guidance_pose),
                           guidance_appearance=float(guidance_appearance), output_size=OUTPUT_SIZE,
                           generator=torch.Generator().manual_seed(_seed(seed)))
        drawing = draw_pose(pose, OUTPUT_SIZE)
        shown = _at_output_size(picture)
        return result.images[0], drawing, shown, note

    def style_transfer(self, reference_path, reference_pose_json, mask_path, source_path, steps, seed, fast=False,
                       frame=True):
        """Edit tab, style transfer by mask: the reference's pose and unmasked regions, the source's look
        inside the mask. The reference's pose comes from a pose JSON, else it is detected in the photo.

        With ``frame`` both photos are framed like the training photos; the mask (drawn on the reference
        photo) is cut with the reference's crop, and a pose JSON (in the reference photo's pixels, or
        stretched onto them) is moved into the crop; a detected pose is the framed reference's own."""
        import torch

        from .editing import cut_mask, latent_mask

        reference = self.photo(reference_path, "reference photo")
        source = self.photo(source_path, "appearance photo")
        mask = self.photo(mask_path, "mask", background=(0, 0, 0))
        latent_mask(mask, self.pipe.latent_size, reference)  # the mask's own checks, against the photo it was drawn on
        reference_name = f"reference photo ({Path(reference_path).name})"
        reference_picture, framed, _ = self.framed_input(reference, reference_name, frame)
        source, _, _ = self.framed_input(source, f"appearance photo ({Path(source_path).name})", frame)
        if framed is not None and framed.cropped:
            mask = cut_mask(mask, framed, f"mask ({Path(mask_path).name})",
                            "(untick the framing box to use the photos as they are)")
        if reference_pose_json:
            pose = _uploaded_pose(reference_pose_json, "reference's pose JSON")
            if framed is not None:
                pose = framed.move_pose(pose)
        else:
            pose = _person_pose(reference, framed, reference_name,
                                "give a photo of one person or the reference's pose JSON")
        result = self.editor.style_transfer(reference_picture, pose, source, mask, **_sampling(steps, fast),
                                            output_size=OUTPUT_SIZE, frame=False,
                                          generator=torch.Generator().manual_seed(_seed(seed)))
        return result.images[0]

    def interpolate(self, path_a, path_b, gallery_index, count, steps, seed, fast=False, frame=True):
        """Edit tab, style interpolation: a strip of images from A's look to B's, in one gallery pose (with
        ``frame``, A and B framed like the training photos first)."""
        import torch

        a, b = self.photo(path_a, "photo A"), self.photo(path_b, "photo B")
        count = _whole(count, "number of images")
        if not 2 <= count <= 8:
            raise InputError("number of images", f"must lie between 2 and 8, got {count}")
        index = _whole(gallery_index or 0, "pose")
        if not 0 <= index < len(self.gallery):
            raise InputError("gallery", f"has no pose number {index}")
        a, _, _ = self.framed_input(a, f"photo A ({Path(path_a).name})", frame)
        b, _, _ = self.framed_input(b, f"photo B ({Path(path_b).name})", frame)
        pose = self.gallery[self.gallery.names[index]]
        weights = [i / (count - 1) for i in range(count)]
        result = self.editor.interpolate(a, b, pose, weights, **_sampling(steps, fast),
                                         output_size=OUTPUT_SIZE, frame=False, generator=torch.Generator().manual_seed(_seed(seed)))
        return [(image, f"{w:.2f}") for image, w in zip(result.images, weights)]

    def animate(self, source_path, files, fps, steps, seed, fast=False, frame=True):
        """Animate tab: (MP4 path, GIF path) of the person through the uploaded poses or frames. With ``frame``
        the person photo is framed like the training photos first, and poses detected in video frames are
        fitted into the framed picture."""
        from . import animation as A

        source = self.photo(source_path, "person photo")
        files = [f for f in (files or []) if f]
        if not files:
            raise InputError("poses", "upload pose JSON files or video frames")
        if len(files) > MAX_FRAMES:
            raise InputError("poses", f"{len(files)} files uploaded; the app animates at most {MAX_FRAMES}")
        _check_frames(files)
        source, _, _ = self.framed_input(source, f"person photo ({Path(source_path).name})", frame)
        job = Path(tempfile.mkdtemp(prefix="animation-", dir=self.work_dir))
        folder = job / "poses"
        folder.mkdir()
        for path in files:  # keep the uploaded names: they give the order
            shutil.copy(path, folder / Path(path).name)
        poses = A.load_pose_sequence(folder, source, progress=False)
        frames = A.animate(self.pipe, source, poses, **_sampling(steps, fast), seed=_seed(seed), frame=False,
                           output_size=OUTPUT_SIZE)
        shown = A.with_poses(frames, self.pipe.pose_images(poses))
        gif = A.write_gif(shown, job / "animation.gif", float(fps))
        mp4 = A.write_mp4(shown, job / "animation.mp4", float(fps))
        return str(mp4), str(gif)


def build_app(pipe, default_steps: int = 50, title: str = "cfld: re-pose a person"):
    """The Gradio Blocks of the app around a loaded :class:`~cfld.pipeline.CFLDPipeline`."""
    gr = _import_gradio()
    app = App(pipe, default_steps)

    steps_slider = dict(minimum=1, maximum=100, step=1, value=default_steps, label="denoising steps")
    fast_box = dict(value=False, label=FAST_LABEL)
    frame_box = dict(value=True, label=FRAME_PHOTOS_LABEL)
    queue = dict(concurrency_id="generate")  # all buttons share one queue: one generation (and one framing) at a time

    def photo_input(label: str, what: str, height: int, elem_id: str | None = None, mask: bool = False):
        """A photo upload as a plain file (Gradio decodes nothing) with its preview under it, made by our reader
        (a refused upload is one sentence as soon as it arrives)."""
        upload = gr.File(label=label, file_types=["image"], type="filepath", file_count="single", height=110,
                         elem_id=elem_id)
        preview = gr.Image(label=f"{label}: preview", show_label=False, type="pil", format="png",
                           interactive=False, height=height, elem_id=elem_id and f"{elem_id}-preview")
        background = (0, 0, 0) if mask else None

        def show(path):
            return app.preview(path, what, background)

        show.__name__ = f"preview_{elem_id or what}".replace("-", "_").replace(" ", "_")
        # the old preview goes first: a refused upload leaves none behind
        upload.change(lambda: None, None, preview, queue=False, api_visibility="private").then(
            guarded(show), upload, preview, show_progress="hidden")
        return upload

    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(3600, 3600)) as blocks:
        gr.Markdown(
            f"## {title}\nCoarse-to-Fine Latent Diffusion (CVPR 2024). Upload a photo of one person, choose a "
            "pose, generate. Photos are framed like the model's training photos (the person found and cropped "
            f"around); photos up to {MAX_FILE_MIB} MiB and {MAX_PIXELS // 1_000_000} megapixels; one generation "
            "runs at a time."
        )
        with gr.Tab("Re-pose"):
            with gr.Row():
                with gr.Column():
                    source = photo_input("person photo", "person photo", 320, "source")
                    mode = gr.Radio(list(POSE_MODES), value=POSE_MODES[0], label="target pose from",
                                    elem_id="pose-mode")
                    pose_index = gr.State(0)
                    pose_gallery = gr.Gallery(value=app.gallery_pictures, label="real DeepFashion poses (click one)",
                                              columns=6, height=300, allow_preview=False, object_fit="contain",
                                              elem_id="pose-gallery")
                    with gr.Row():
                        with gr.Column():
                            pose_photo = photo_input("...or the pose of another photo", "pose photo", 200,
                                                     "pose-photo")
                        pose_json = gr.File(label="...or a pose JSON (cfld pose detect/convert)",
                                            file_types=[".json"], type="filepath", elem_id="pose-json")
                    with gr.Accordion("sampling", open=False):
                        steps = gr.Slider(**steps_slider, elem_id="steps")
                        guidance_pose = gr.Slider(0, 10, value=2.0, step=0.1, label="pose guidance (w_pose)")
                        guidance_app = gr.Slider(0, 10, value=2.0, step=0.1, label="appearance guidance (w_app)")
                        seed = gr.Number(value=0, precision=0, label="seed")
                    fast = gr.Checkbox(**fast_box, elem_id="fast")
                    with gr.Row():
                        frame = gr.Checkbox(value=True, label=FRAME_LABEL, elem_id="frame")
                        plain = gr.Checkbox(value=False, label=PLAIN_LABEL, elem_id="plain")
                    run = gr.Button("Generate", variant="primary", elem_id="generate")
                with gr.Column():
                    with gr.Row():
                        framed = gr.Image(label="framed input", type="pil", format="png", interactive=False,
                                          elem_id="framed")
                        result = gr.Image(label="result", type="pil", format="png", interactive=False,
                                          elem_id="result")
                    framing_note = gr.Markdown(elem_id="framing-note")
                    drawing = gr.Image(label="target pose", type="numpy", format="png", interactive=False,
                                       elem_id="pose-drawing")

            def pick(evt):
                return evt.index, POSE_MODES[0]

            pick.__annotations__ = {"evt": gr.SelectData}  # how Gradio knows to pass the selection

            pose_gallery.select(pick, None, [pose_index, mode])
            pose_photo.upload(lambda: POSE_MODES[1], None, mode)
            pose_json.upload(lambda: POSE_MODES[2], None, mode)
            run.click(guarded(app.repose),
                      [source, mode, pose_index, pose_photo, pose_json, steps, guidance_pose, guidance_app, seed, fast,
                       frame, plain],
                      [result, drawing, framed, framing_note], **queue)

        with gr.Tab("Edit"):
            gr.Markdown("**Style transfer by mask** (paper Sec. 4.6): keep the reference's pose and everything "
                        "outside the mask (white = edit), dress the masked region in the other photo's look.")
            with gr.Row():
                with gr.Column():
                    reference = photo_input("reference person", "reference photo", 240, "reference")
                with gr.Column():
                    mask = photo_input("mask (white = edit)", "mask", 240, "mask", mask=True)
                with gr.Column():
                    look = photo_input("appearance from", "appearance photo", 240, "look")
                edited = gr.Image(label="result", type="pil", format="png", interactive=False, height=240,
                                  elem_id="edited")
            with gr.Row():
                reference_pose = gr.File(label="reference's pose JSON (optional: detected if absent)",
                                         file_types=[".json"], type="filepath")
                edit_steps = gr.Slider(**steps_slider)
                edit_seed = gr.Number(value=0, precision=0, label="seed")
                edit_fast = gr.Checkbox(**fast_box)
                edit_frame = gr.Checkbox(**frame_box)
                edit_run = gr.Button("Transfer style", variant="primary")
            edit_run.click(guarded(app.style_transfer), [reference, reference_pose, mask, look, edit_steps, edit_seed,
                                                     edit_fast, edit_frame],
                           edited, **queue)
            gr.Markdown("**Style interpolation**: the look shifts from A to B (coarse prompts and fine-grained "
                        "biases interpolated linearly), in a gallery pose.")
            with gr.Row():
                with gr.Column():
                    photo_a = photo_input("photo A", "photo A", 240, "photo-a")
                with gr.Column():
                    photo_b = photo_input("photo B", "photo B", 240, "photo-b")
                with gr.Column():
                    interp_pose = gr.Dropdown([(label, i) for i, (_, label) in enumerate(app.gallery_pictures)],
                                              value=0, label="pose")
                    count = gr.Slider(2, 8, value=5, step=1, label="images")
                    interp_steps = gr.Slider(**steps_slider)
                    interp_seed = gr.Number(value=0, precision=0, label="seed")
                    interp_fast = gr.Checkbox(**fast_box)
                    interp_frame = gr.Checkbox(**frame_box)
                    interp_run = gr.Button("Interpolate", variant="primary")
            strip = gr.Gallery(label="A -> B", columns=8, height=300, elem_id="strip")
            interp_run.click(guarded(app.interpolate), [photo_a, photo_b, interp_pose, count, interp_steps, interp_seed,
                                                     interp_fast, interp_frame],
                             strip, **queue)

        with gr.Tab("Animate"):
            gr.Markdown(f"Upload pose JSON files (e.g. from `cfld pose detect`) or video frames, up to {MAX_FRAMES}; "
                        "they are taken in file-name order. The source is encoded once.")
            with gr.Row():
                with gr.Column():
                    anim_source = photo_input("person photo", "person photo", 280, "anim-source")
                anim_files = gr.File(label="pose JSON files or frames", file_count="multiple",
                                     file_types=[".json", "image"], type="filepath", elem_id="anim-files")
                with gr.Column():
                    fps = gr.Slider(1, 30, value=8, step=1, label="frames per second")
                    anim_steps = gr.Slider(**steps_slider)
                    anim_seed = gr.Number(value=0, precision=0, label="seed")
                    anim_fast = gr.Checkbox(**fast_box)
                    anim_frame = gr.Checkbox(value=True, label=FRAME_LABEL)
                    anim_run = gr.Button("Animate", variant="primary")
            with gr.Row():
                video = gr.Video(label="MP4", interactive=False, elem_id="video")
                gif = gr.File(label="GIF", interactive=False, elem_id="gif")
            anim_run.click(guarded(app.animate), [anim_source, anim_files, fps, anim_steps, anim_seed, anim_fast,
                                              anim_frame],
                           [video, gif], **queue)
    blocks.queue(default_concurrency_limit=1, max_size=16)
    blocks.cfld_app = app
    return blocks


def guarded(action):
    """``action`` as a Gradio event handler: our input errors, and any other failure, are one sentence in the
    page instead of a generic 'Error' (a bug's traceback goes to the server's log), and the sampling progress
    bar shows (Gradio passes a Progress to a function whose signature asks for one)."""
    import functools
    import inspect

    gr = _import_gradio()

    def run(*args):
        args = [a for a in args if not isinstance(a, gr.Progress)]
        try:
            return action(*args)
        except CFLDError as err:
            raise gr.Error(str(err), print_exception=False) from None
        except gr.Error:
            raise
        except Exception as err:  # noqa: BLE001 - one sentence in the page; a bug's traceback in the server log
            message, code = describe_unexpected(err, "the server's log shows the traceback")
            if code == 1:
                traceback.print_exc()
            raise gr.Error(message, print_exception=False) from None

    functools.update_wrapper(run, action)
    params = list(inspect.signature(action).parameters.values())
    progress = inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                 default=gr.Progress(track_tqdm=True))
    run.__signature__ = inspect.Signature([*params, progress])
    return run


def launch(blocks, port: int = 7860, open_browser: bool = False, block: bool = True):
    """Serve on 127.0.0.1:port with the upload limit, system fonts and no network calls of Gradio's own."""
    gr = _import_gradio()
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])
    return blocks.launch(server_name=HOST, server_port=port, inbrowser=open_browser, share=False,
                         max_file_size=MAX_FILE_SIZE, theme=theme, ssr_mode=False, footer_links=[],
                         prevent_thread_lock=not block, show_error=True, quiet=False, mcp_server=False)


# -- helpers ----------------------------------------------------------------------------------------------------


def _check_frames(files: list[str]) -> None:
    """The uploaded video frames' sizes, from their headers: one over :data:`MAX_PIXELS` is refused before any
    frame is decoded."""
    from .animation import IMAGE_SUFFIXES
    from .images import image_size

    for path in files:
        if Path(path).suffix.lower() in IMAGE_SUFFIXES:
            image_size(path, f"frame ({Path(path).name})", MAX_PIXELS)


def _uploaded_pose(path: str | None, what: str):
    """A pose file from an upload; errors name it by the user's file name, not Gradio's cache path."""
    from .pose import load_pose

    if not path:
        raise InputError(what, "no file uploaded")
    try:
        return load_pose(path)
    except InputError as err:
        raise InputError(f"{what} ({Path(path).name})", err.problem) from None


def _person_pose(picture, framed, name: str, give: str):
    """The pose of the person in ``picture``: its framed pose when it was framed (``framed``; nobody found there is
    one sentence ending in what to ``give`` instead), else detected in the whole picture."""
    if framed is None:
        from .pose.detect import PoseDetector

        with PoseDetector() as detector:
            return detector(picture, name)
    if framed.pose is None:
        from .pose.detect import NO_PERSON

        raise InputError(name, f"{NO_PERSON}; {give}")
    return framed.pose


def _unframed_hint(problem: str) -> str:
    """A framing error's sentence as the page words it: the command line's --no-frame is the framing box here."""
    hint = "untick the framing box to use the photo as it is"
    if "--no-frame" in problem:
        return problem.replace("pass --no-frame", hint)
    return f"{problem}; or {hint}"


def _framing_note(framed, plain: bool = False) -> str:
    """One line saying how a photo was framed (shown under the framed input)."""
    if framed.cropped:
        c, (height, width) = framed.crop, framed.photo_size
        note = (f"framed: a {c.height}x{c.width} crop at top {c.top}, left {c.left} of the {height}x{width} photo "
                f"(HxW), resized to {framed.size[0]}x{framed.size[1]}")
        if c.inside_fraction(framed.photo_size) < 1:
            note += "; padded with the photo's background where the crop leaves it"
    else:
        note = PASSED_NOTE
    if plain and framed.mask is not None:
        note += "; background made plain"
    return note


def _at_output_size(picture):
    """The picture as the model sees it: stretched to :data:`OUTPUT_SIZE`."""
    from PIL import Image

    size = (OUTPUT_SIZE[1], OUTPUT_SIZE[0])
    return picture if picture.size == size else picture.resize(size, Image.BICUBIC)


def _gallery_label(name: str) -> str:
    return "/".join(name.split("/")[-2:]).removesuffix(".jpg")


def _whole(value: Any, what: str) -> int:
    try:
        number = float(value)
        if number != int(number):
            raise ValueError
        return int(number)
    except (TypeError, ValueError, OverflowError):
        raise InputError(what, f"must be a whole number, got {value!r}") from None


def _steps(value: Any) -> int:
    steps = _whole(value, "steps")
    if not 1 <= steps <= 1000:
        raise InputError("steps", f"must lie between 1 and 1000, got {steps}")
    return steps


def _sampling(steps: Any, fast: Any) -> dict[str, Any]:
    """The pipeline's sampling arguments: the slider's steps, or with the fast box ticked the fast preset's
    steps and scheduler (the slider is then not used)."""
    return {"fast": True} if fast else {"num_inference_steps": _steps(steps)}


def _seed(value: Any) -> int:
    if value is None:
        return 0
    seed = _whole(value, "seed")
    if not 0 <= seed < 2**63:
        raise InputError("seed", f"must be a whole number from 0 to 2^63-1, got {seed}")
    return seed




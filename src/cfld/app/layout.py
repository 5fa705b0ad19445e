"""The page: :func:`build_app` lays out the three tabs, one function each, around an :class:`~cfld.app.actions.App`
whose methods the buttons call."""

from __future__ import annotations

from ..presets import FAST, PAPER
from .actions import POSE_MODES, App
from .inputs import MAX_FILE_MIB, MAX_FRAMES, MAX_PIXELS
from .server import guarded, import_gradio

FAST_LABEL = (f"fast: {FAST.scheduler} in {FAST.num_inference_steps} steps instead of DDPM in "
              f"{PAPER.num_inference_steps} (~3x faster, a slightly different picture)")
FRAME_LABEL = "frame the photo like the training photos"
FRAME_PHOTOS_LABEL = "frame the photos like the training photos"
PLAIN_LABEL = "plain background"


def build_app(pipe, default_steps: int = 50, title: str = "cfld: re-pose a person"):
    """The Gradio Blocks of the app around a loaded :class:`~cfld.pipeline.CFLDPipeline`."""
    gr = import_gradio()
    page = _Page(gr, App(pipe, default_steps), default_steps)
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(3600, 3600)) as blocks:
        gr.Markdown(
            f"## {title}\nCoarse-to-Fine Latent Diffusion (CVPR 2024). Upload a photo of one person, choose a "
            "pose, generate. Photos are framed like the model's training photos (the person found and cropped "
            f"around); photos up to {MAX_FILE_MIB} MiB and {MAX_PIXELS // 1_000_000} megapixels; one generation "
            "runs at a time."
        )
        with gr.Tab("Re-pose"):
            _repose_tab(page)
        with gr.Tab("Edit"):
            _style_transfer_rows(page)
            _interpolate_rows(page)
        with gr.Tab("Animate"):
            _animate_tab(page)
    blocks.queue(default_concurrency_limit=1, max_size=16)
    blocks.cfld_app = page.app
    return blocks


class _Page:
    """What every tab's layout uses: Gradio, the app, the settings shared by the tabs' controls, and photo uploads
    with their previews."""

    def __init__(self, gr, app: App, default_steps: int):
        self.gr = gr
        self.app = app
        self.steps_slider = dict(minimum=1, maximum=100, step=1, value=default_steps, label="denoising steps")
        self.fast_box = dict(value=False, label=FAST_LABEL)
        self.frame_box = dict(value=True, label=FRAME_PHOTOS_LABEL)
        # all buttons share one queue: one generation (and one framing) at a time
        self.queue = dict(concurrency_id="generate")

    def photo_input(self, label: str, what: str, height: int, elem_id: str | None = None, mask: bool = False):
        """A photo upload as a plain file (Gradio decodes nothing) with its preview under it, made by our reader
        (a refused upload is one sentence as soon as it arrives)."""
        gr, app = self.gr, self.app
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


def _repose_tab(page: _Page) -> None:
    """Re-pose: a person photo, a target pose (gallery, another photo, a pose JSON), sampling; the result, the
    framed input, the framing note, the pose check's line and the pose drawing."""
    gr = page.gr
    with gr.Row():
        with gr.Column():
            source = page.photo_input("person photo", "person photo", 320, "source")
            mode = gr.Radio(list(POSE_MODES), value=POSE_MODES[0], label="target pose from", elem_id="pose-mode")
            pose_index = gr.State(0)
            pose_gallery = gr.Gallery(value=page.app.gallery_pictures, label="real DeepFashion poses (click one)",
                                      columns=6, height=300, allow_preview=False, object_fit="contain",
                                      elem_id="pose-gallery")
            with gr.Row():
                with gr.Column():
                    pose_photo = page.photo_input("...or the pose of another photo", "pose photo", 200, "pose-photo")
                pose_json = gr.File(label="...or a pose JSON (cfld pose detect/convert)", file_types=[".json"],
                                    type="filepath", elem_id="pose-json")
            with gr.Accordion("sampling", open=False):
                steps = gr.Slider(**page.steps_slider, elem_id="steps")
                guidance_pose = gr.Slider(0, 10, value=2.0, step=0.1, label="pose guidance (w_pose)")
                guidance_app = gr.Slider(0, 10, value=2.0, step=0.1, label="appearance guidance (w_app)")
                seed = gr.Number(value=0, precision=0, label="seed")
            fast = gr.Checkbox(**page.fast_box, elem_id="fast")
            with gr.Row():
                frame = gr.Checkbox(value=True, label=FRAME_LABEL, elem_id="frame")
                plain = gr.Checkbox(value=False, label=PLAIN_LABEL, elem_id="plain")
            run = gr.Button("Generate", variant="primary", elem_id="generate")
        with gr.Column():
            with gr.Row():
                framed = gr.Image(label="framed input", type="pil", format="png", interactive=False, elem_id="framed")
                result = gr.Image(label="result", type="pil", format="png", interactive=False, elem_id="result")
            framing_note = gr.Markdown(elem_id="framing-note")
            pose_check = gr.Markdown(elem_id="pose-check")
            drawing = gr.Image(label="target pose", type="numpy", format="png", interactive=False,
                               elem_id="pose-drawing")

    def pick(evt):
        return evt.index, POSE_MODES[0]

    pick.__annotations__ = {"evt": gr.SelectData}  # how Gradio knows to pass the selection

    pose_gallery.select(pick, None, [pose_index, mode])
    pose_photo.upload(lambda: POSE_MODES[1], None, mode)
    pose_json.upload(lambda: POSE_MODES[2], None, mode)
    run.click(guarded(page.app.repose),
              [source, mode, pose_index, pose_photo, pose_json, steps, guidance_pose, guidance_app, seed, fast, frame,
               plain],
              [result, drawing, framed, framing_note, pose_check], **page.queue)


def _style_transfer_rows(page: _Page) -> None:
    """Edit, style transfer by mask: the reference, its mask and the look's photo; the result beside them, its pose
    check under it."""
    gr = page.gr
    gr.Markdown("**Style transfer by mask** (paper Sec. 4.6): keep the reference's pose and everything "
                "outside the mask (white = edit), dress the masked region in the other photo's look.")
    with gr.Row():
        with gr.Column():
            reference = page.photo_input("reference person", "reference photo", 240, "reference")
        with gr.Column():
            mask = page.photo_input("mask (white = edit)", "mask", 240, "mask", mask=True)
        with gr.Column():
            look = page.photo_input("appearance from", "appearance photo", 240, "look")
        with gr.Column():
            edited = gr.Image(label="result", type="pil", format="png", interactive=False, height=240,
                              elem_id="edited")
            edited_check = gr.Markdown(elem_id="edited-pose-check")
    with gr.Row():
        reference_pose = gr.File(label="reference's pose JSON (optional: detected if absent)", file_types=[".json"],
                                 type="filepath")
        steps = gr.Slider(**page.steps_slider)
        seed = gr.Number(value=0, precision=0, label="seed")
        fast = gr.Checkbox(**page.fast_box)
        frame = gr.Checkbox(**page.frame_box)
        run = gr.Button("Transfer style", variant="primary")
    run.click(guarded(page.app.style_transfer), [reference, reference_pose, mask, look, steps, seed, fast, frame],
              [edited, edited_check], **page.queue)


def _interpolate_rows(page: _Page) -> None:
    """Edit, style interpolation: photos A and B, a gallery pose; the strip from A's look to B's and its pose check."""
    gr = page.gr
    gr.Markdown("**Style interpolation**: the look shifts from A to B (coarse prompts and fine-grained "
                "biases interpolated linearly), in a gallery pose.")
    with gr.Row():
        with gr.Column():
            photo_a = page.photo_input("photo A", "photo A", 240, "photo-a")
        with gr.Column():
            photo_b = page.photo_input("photo B", "photo B", 240, "photo-b")
        with gr.Column():
            pose = gr.Dropdown([(label, i) for i, (_, label) in enumerate(page.app.gallery_pictures)], value=0,
                               label="pose")
            count = gr.Slider(2, 8, value=5, step=1, label="images")
            steps = gr.Slider(**page.steps_slider)
            seed = gr.Number(value=0, precision=0, label="seed")
            fast = gr.Checkbox(**page.fast_box)
            frame = gr.Checkbox(**page.frame_box)
            run = gr.Button("Interpolate", variant="primary")
    strip = gr.Gallery(label="A -> B", columns=8, height=300, elem_id="strip")
    strip_check = gr.Markdown(elem_id="strip-pose-check")
    run.click(guarded(page.app.interpolate), [photo_a, photo_b, pose, count, steps, seed, fast, frame],
              [strip, strip_check], **page.queue)


def _animate_tab(page: _Page) -> None:
    """Animate: a person photo and pose files or video frames; the MP4, the GIF and each frame's pose check."""
    gr = page.gr
    gr.Markdown(f"Upload pose JSON files (e.g. from `cfld pose detect`) or video frames, up to {MAX_FRAMES}; "
                "they are taken in file-name order. The source is encoded once.")
    with gr.Row():
        with gr.Column():
            source = page.photo_input("person photo", "person photo", 280, "anim-source")
        files = gr.File(label="pose JSON files or frames", file_count="multiple", file_types=[".json", "image"],
                        type="filepath", elem_id="anim-files")
        with gr.Column():
            fps = gr.Slider(1, 30, value=8, step=1, label="frames per second")
            steps = gr.Slider(**page.steps_slider)
            seed = gr.Number(value=0, precision=0, label="seed")
            fast = gr.Checkbox(**page.fast_box)
            frame = gr.Checkbox(value=True, label=FRAME_LABEL)
            run = gr.Button("Animate", variant="primary")
    with gr.Row():
        video = gr.Video(label="MP4", interactive=False, elem_id="video")
        gif = gr.File(label="GIF", interactive=False, elem_id="gif")
    frames_check = gr.Markdown(elem_id="frames-pose-check")
    run.click(guarded(page.app.animate), [source, files, fps, steps, seed, fast, frame], [video, gif, frames_check],
              **page.queue)

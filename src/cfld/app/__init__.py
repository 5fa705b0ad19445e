"""``cfld app``: a small web app (Gradio, ``pip install 'cfld[app]'``) around :class:`CFLDPipeline`.

Three tabs, each a thin layer over the library:

* **Re-pose**: upload a person photo, pick the target pose from the bundled gallery of real DeepFashion
  poses (:func:`cfld.pose.gallery`), from another uploaded photo (detected with MediaPipe, the ``detect``
  extra) or from a pose JSON file; choose steps, guidance and seed; get the result, the pose drawing and
  the framed input the model was given, with a line saying how the photo was framed.
* **Edit**: style transfer by mask and style interpolation (paper Sec. 4.6, :meth:`CFLDPipeline.style_transfer`
  and :meth:`CFLDPipeline.interpolate`).
* **Animate**: a person through a sequence of pose files or video frames -> GIF and MP4 (:mod:`cfld.animation`).

**The pose check.** Under every result a line gives its pose check (:mod:`~cfld.app.pose_scores`, as the commands
print it): PCKh, PCK and the target joints found in it, and a warning sentence when its PCK@0.1 is below 0.5 (the
result misses the pose it was asked for); without MediaPipe the line says that the check needs it.

**Framing.** Every person photo is framed the way the model's training photos are (:mod:`cfld.framing`, as
the command line does): the person is found, a crop of the model's aspect is cut around them and resized to
:data:`OUTPUT_SIZE`; a photo already framed like the training photos (e.g. DeepFashion's own) goes through
unchanged. In the Re-pose tab the pose of another photo is taken from that photo's own framed crop, and
gallery poses and pose JSON files are fitted into the framed picture (:func:`cfld.pose.retarget`); "plain
background" lays the person on the training photos' plain colour. In the Edit tab the reference is framed
and its mask cut with the same crop; a reference pose JSON (in the reference photo's pixels) is moved into
the crop. A box in each tab turns framing off (the photo as it is, stretched to the model's size by the
model). One MediaPipe detector serves the whole app (made on first use, closed at exit); without the
``detect`` extra photos are used as they are and the page says so.

**Uploads.** Photos are taken as plain files (``gr.File``): Gradio stores them and decodes nothing, and the
only reader of their pixels is :func:`cfld.images.load_image`, which checks the width and height a file's
header declares against :data:`MAX_PIXELS` before decoding anything, so a decompression bomb or a huge
greyscale PNG costs a header read and one sentence. Each upload is shown as that reader reads it (a small
preview under it, :meth:`App.preview`).

The server listens on 127.0.0.1 only, loads nothing from the network (system fonts, no analytics), runs
one generation at a time (all buttons share one queue), and refuses uploads over :data:`MAX_FILE_SIZE` or
:data:`MAX_PIXELS`; every problem with an upload is shown as one sentence (the
:class:`~cfld.errors.InputError` text).

The package, one job a module: :mod:`~cfld.app.inputs` (uploads and the page's values, read and checked),
:mod:`~cfld.app.photo_framing` (the app's framing and its note), :mod:`~cfld.app.pose_scores` (the pose check under
each result), :mod:`~cfld.app.actions` (:class:`App`: what the buttons do), :mod:`~cfld.app.layout`
(:func:`build_app`: the page, a function per tab) and :mod:`~cfld.app.server` (launching, the guard around every
action, the temporary folder). Importing it imports neither torch nor Gradio.
"""

from .actions import POSE_MODES, App
from .inputs import MAX_FILE_MIB, MAX_FILE_SIZE, MAX_FRAMES, MAX_PIXELS, PREVIEW_SIDE
from .layout import FAST_LABEL, FRAME_LABEL, FRAME_PHOTOS_LABEL, PLAIN_LABEL, build_app
from .photo_framing import OUTPUT_SIZE, PASSED_NOTE, UNFRAMED_NOTE
from .server import HOST, guarded, import_gradio, launch

__all__ = [
    "FAST_LABEL",
    "FRAME_LABEL",
    "FRAME_PHOTOS_LABEL",
    "HOST",
    "MAX_FILE_MIB",
    "MAX_FILE_SIZE",
    "MAX_FRAMES",
    "MAX_PIXELS",
    "OUTPUT_SIZE",
    "PASSED_NOTE",
    "PLAIN_LABEL",
    "POSE_MODES",
    "PREVIEW_SIDE",
    "UNFRAMED_NOTE",
    "App",
    "build_app",
    "guarded",
    "import_gradio",
    "launch",
]

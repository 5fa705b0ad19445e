"""How the app frames its person photos: through :class:`cfld.image_processor.PersonImageProcessor`, as the pipeline
and the command line do, one kept open per background choice; and the line under the framed input that says what
framing did."""

from __future__ import annotations

from ..errors import InputError, MissingDependencyError
from ..pose.skeleton import DEEPFASHION_SIZE

OUTPUT_SIZE = DEEPFASHION_SIZE
UNFRAMED_NOTE = f"framing off: the photo is used as it is (the model stretches it to {OUTPUT_SIZE[0]}x{OUTPUT_SIZE[1]})"
PASSED_NOTE = "already framed like the training photos: used as it is"
NO_MEDIAPIPE_NOTE = "not framed: framing needs MediaPipe (pip install 'cfld[detect]'); the photo is used as it is"


class AppFraming:
    """Person photos framed like the training photos at :data:`OUTPUT_SIZE` by one
    :class:`~cfld.image_processor.PersonImageProcessor` per background choice, each kept open: its MediaPipe
    detector is made on first use and lives until :meth:`close`. Each processor frames under its own lock
    (MediaPipe is not thread safe; the page runs one generation at a time anyway)."""

    def __init__(self):
        from ..image_processor import PersonImageProcessor  # imports torch: the app stays light until it serves

        self._processors = {plain: PersonImageProcessor(plain, hint=None).__enter__() for plain in (False, True)}

    def frame(self, image, name: str, plain: bool = False):
        """``image`` framed like the training photos at :data:`OUTPUT_SIZE` (a :class:`~cfld.framing.Framed`),
        or None without MediaPipe (the ``detect`` extra). Framing's errors are one sentence that also says how
        to use the photo as it is."""
        try:
            return self._processors[bool(plain)].frame(image, OUTPUT_SIZE, name)
        except MissingDependencyError:
            return None
        except InputError as err:
            raise InputError(err.source, _unframed_hint(err.problem)) from None

    def framed_input(self, image, name: str, frame: bool = True, plain: bool = False):
        """(the picture given to the model, its :class:`~cfld.framing.Framed` or None, a one-line note)."""
        if not frame:
            return image, None, UNFRAMED_NOTE
        framed = self.frame(image, name, plain)
        if framed is None:
            return image, None, NO_MEDIAPIPE_NOTE
        return framed.image, framed, framing_note(framed, plain)

    def close(self) -> None:
        """Close the MediaPipe detectors (a later framing makes a new one)."""
        for processor in self._processors.values():
            processor.close()


def framing_note(framed, plain: bool = False) -> str:
    """One line saying how a photo was framed (shown under the framed input)."""
    if framed.cropped:
        note = f"framed: {framed.crop_text()} (HxW), resized to {framed.size[0]}x{framed.size[1]}"
        if framed.crop.inside_fraction(framed.photo_size) < 1:
            note += "; padded with the photo's background where the crop leaves it"
    else:
        note = PASSED_NOTE
    if plain and framed.mask is not None:
        note += "; background made plain"
    return note


def _unframed_hint(problem: str) -> str:
    """A framing error's sentence as the page words it: the command line's --no-frame is the framing box here."""
    hint = "untick the framing box to use the photo as it is"
    if "--no-frame" in problem:
        return problem.replace("pass --no-frame", hint)
    return f"{problem}; or {hint}"

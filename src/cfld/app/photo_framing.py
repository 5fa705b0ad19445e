"""How the app frames its person photos (:mod:`cfld.framing`, as the command line does): one MediaPipe detector for
the whole app, one :class:`~cfld.framing.Framer` per background choice, and the line under the framed input that
says what framing did."""

from __future__ import annotations

import threading
from typing import Any

from ..errors import InputError, MissingDependencyError
from ..framing import Framer
from ..pose.detect import PoseDetector
from ..pose.skeleton import DEEPFASHION_SIZE

OUTPUT_SIZE = DEEPFASHION_SIZE
UNFRAMED_NOTE = f"framing off: the photo is used as it is (the model stretches it to {OUTPUT_SIZE[0]}x{OUTPUT_SIZE[1]})"
PASSED_NOTE = "already framed like the training photos: used as it is"
NO_MEDIAPIPE_NOTE = "not framed: framing needs MediaPipe (pip install 'cfld[detect]'); the photo is used as it is"


class PhotoFraming:
    """Person photos framed like the training photos at :data:`OUTPUT_SIZE`, by one :class:`~cfld.framing.Framer`
    per background choice, all sharing one MediaPipe detector, made on first use and closed by :meth:`close`.
    MediaPipe is not thread safe: framing runs under a lock (the page runs one generation at a time anyway)."""

    def __init__(self):
        self._detector = None  # the PoseDetector (with segmentation) that every framer shares
        self._framers: dict[bool, Any] = {}  # replace_background -> Framer
        self._lock = threading.Lock()

    def frame(self, image, name: str, plain: bool = False):
        """``image`` framed like the training photos at :data:`OUTPUT_SIZE` (a :class:`~cfld.framing.Framed`),
        or None without MediaPipe (the ``detect`` extra). Framing's errors are one sentence that also says how
        to use the photo as it is."""
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
            return image, None, NO_MEDIAPIPE_NOTE
        return framed.image, framed, framing_note(framed, plain)

    def close(self) -> None:
        """Close the shared MediaPipe detector (a later framing makes a new one)."""
        with self._lock:
            detector, self._detector, self._framers = self._detector, None, {}
        if detector is not None:
            detector.close()


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

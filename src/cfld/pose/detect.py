"""Pose from a photo, offline: MediaPipe's pose landmarker mapped onto OpenPose-18 (COCO-18).

CFLD was trained on OpenPose-18 keypoints (the DeepFashion annotations), but OpenPose itself needs a
separate build and a download. MediaPipe's BlazePose (``pip install 'cfld[detect]'``, mediapipe 0.10.14)
ships its full landmark model inside the wheel and runs on the CPU, so a pose can be taken from any
photo without network access. It finds one person and returns 33 landmarks in image-normalised
coordinates with a *visibility* score each; we map them onto the 18 OpenPose joints:

=============  ==========================================  ==========================================
OpenPose-18    MediaPipe landmark                          confidence
=============  ==========================================  ==========================================
nose, eyes,    nose (0), left/right eye (2/5),             that landmark's visibility
ears           left/right ear (7/8)
neck           midpoint of the shoulders (11, 12)          the smaller of the two shoulders'
shoulders,     11/12, 13/14, 15/16, 23/24, 25/26, 27/28    that landmark's visibility
elbows, ...
=============  ==========================================  ==========================================

Both name sides from the person's point of view (a person facing the camera has their right shoulder
on the image's left). A joint whose visibility is below ``min_confidence``, or which MediaPipe places
outside the photo (it extrapolates the legs of a half-body shot), is marked missing, as the DeepFashion
annotations leave out joints that are not in the picture.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import sys
import threading
import warnings
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import InputError, MissingDependencyError
from ..images import load_image
from .skeleton import JOINT_NAMES, NUM_JOINTS, Pose, retarget

#: OpenPose-18 joint -> MediaPipe pose landmark index (the neck is the shoulders' midpoint, see below).
MEDIAPIPE_INDEX: dict[str, int] = {
    "nose": 0,
    "right_shoulder": 12, "right_elbow": 14, "right_wrist": 16,
    "left_shoulder": 11, "left_elbow": 13, "left_wrist": 15,
    "right_hip": 24, "right_knee": 26, "right_ankle": 28,
    "left_hip": 23, "left_knee": 25, "left_ankle": 27,
    "right_eye": 5, "left_eye": 2, "right_ear": 8, "left_ear": 7,
}  # fmt: skip
NUM_MEDIAPIPE_LANDMARKS = 33
MIN_CONFIDENCE = 0.5  # MediaPipe's own threshold for drawing a landmark
NO_PERSON = "no person found in the photo (MediaPipe's pose detector saw nobody)"
MIN_JOINTS = 3  # a person with fewer joints found is refused: there is too little of them to re-pose


def too_few_joints(found: int, min_confidence: float | None = None) -> str:
    """The one sentence that refuses a person with fewer than :data:`MIN_JOINTS` joints found."""
    seen = "" if min_confidence is None else f" with confidence >= {min_confidence}"
    return f"only {found} of {NUM_JOINTS} joints were found{seen}; is a whole person in the photo?"
INSTALL_HINT = "pose detection needs MediaPipe: pip install 'cfld[detect]' (mediapipe==0.10.14)"


def landmarks_to_openpose(
    landmarks: np.ndarray,
    frame: tuple[int, int],
    min_confidence: float = MIN_CONFIDENCE,
    name: str | None = None,
) -> Pose:
    """Map MediaPipe's 33 pose landmarks onto an OpenPose-18 :class:`Pose`.

    Args:
        landmarks: ``(33, 3)`` array of ``(x, y, visibility)`` with ``x, y`` normalised to [0, 1] by the
            image width and height (MediaPipe's convention).
        frame: ``(height, width)`` of the photo, in pixels.
        min_confidence: joints less visible than this are marked missing (confidence 0).
        name: recorded as the pose's name (e.g. the photo's file name).
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (NUM_MEDIAPIPE_LANDMARKS, 3):
        raise InputError(name or "landmarks",
                         f"expected {NUM_MEDIAPIPE_LANDMARKS} (x, y, visibility) rows, got {landmarks.shape}")
    height, width = frame
    # MediaPipe's normalised coordinates put 0 and 1 at the outer image edges; ours put pixel centres
    # on integers, so the left edge is x = -0.5
    pixels = landmarks[:, :2] * [width, height] - 0.5
    visibility = np.clip(landmarks[:, 2], 0.0, 1.0)
    xy = np.full((NUM_JOINTS, 2), np.nan)
    confidence = np.zeros(NUM_JOINTS)
    for joint, index in MEDIAPIPE_INDEX.items():
        i = JOINT_NAMES.index(joint)
        xy[i], confidence[i] = pixels[index], visibility[index]
    neck = JOINT_NAMES.index("neck")
    xy[neck] = pixels[[11, 12]].mean(axis=0)
    confidence[neck] = visibility[[11, 12]].min()
    x, y = xy[:, 0], xy[:, 1]
    inside = (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)
    keep = (confidence >= min_confidence) & inside
    confidence = np.where(keep, confidence, 0.0)
    xy[~keep] = np.nan
    return Pose(xy, confidence, (height, width), name)


@dataclass(frozen=True)
class Detection:
    """One person as MediaPipe sees them in a picture of ``(height, width)`` pixels.

    ``landmarks``: ``(33, 3)`` ``(x, y, visibility)``, x and y normalised to [0, 1] by the picture's width
    and height; ``mask``: ``(height, width)`` float32 person probability in [0, 1], or None when the
    detector was made without ``segmentation``.
    """

    landmarks: np.ndarray
    mask: np.ndarray | None
    frame: tuple[int, int]

    def pose(self, min_confidence: float = MIN_CONFIDENCE, name: str | None = None) -> Pose:
        """The OpenPose-18 pose in the picture's pixel frame (:func:`landmarks_to_openpose`)."""
        return landmarks_to_openpose(self.landmarks, self.frame, min_confidence, name)


class PoseDetector:
    """MediaPipe's pose landmarker, loaded once, for one photo after another.

    ``video=True`` tracks the person from frame to frame (for the frames of one clip, in order);
    otherwise every photo is searched afresh. ``segmentation=True`` also gives each person's mask
    (:meth:`detect`), from the same model inside the wheel. Use as a context manager or call :meth:`close`.

        with PoseDetector() as detector:
            pose = detector("photo.jpg")          # a cfld.pose.Pose in the photo's pixel frame
    """

    def __init__(
        self,
        min_confidence: float = MIN_CONFIDENCE,
        min_detection_confidence: float = 0.5,
        video: bool = False,
        segmentation: bool = False,
    ):
        if not 0 <= min_confidence <= 1:
            raise InputError("min_confidence", f"must lie in [0, 1], got {min_confidence}")
        if not 0 <= min_detection_confidence <= 1:
            raise InputError("min_detection_confidence", f"must lie in [0, 1], got {min_detection_confidence}")
        solutions = _import_mediapipe()
        self.min_confidence = min_confidence
        self.segmentation = segmentation
        self._pose = None
        _STDERR.start()  # MediaPipe's C++ start-up chatter is dropped while a detector lives
        self._filtering = True
        # model_complexity=1 is pose_landmark_full.tflite, the model inside the wheel (0 and 2 would be
        # downloaded on first use)
        with _quiet():
            self._pose = solutions.pose.Pose(
                static_image_mode=not video,
                model_complexity=1,
                smooth_landmarks=video,
                enable_segmentation=segmentation,
                min_detection_confidence=min_detection_confidence,
                min_tracking_confidence=0.5,
            )
        _LIVE.add(self)

    def detect(self, image, source: str | None = None) -> Detection | None:
        """The person MediaPipe finds in the photo (landmarks, and the mask with ``segmentation``), or None."""
        pixels = np.ascontiguousarray(np.asarray(load_image(image, source), dtype=np.uint8))
        with _quiet():
            result = self._pose.process(pixels)
        if result.pose_landmarks is None:
            return None
        landmarks = np.array([(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark], dtype=np.float64)
        mask = None
        if self.segmentation and result.segmentation_mask is not None:
            mask = np.array(result.segmentation_mask, dtype=np.float32)
        return Detection(landmarks, mask, pixels.shape[:2])

    def another_person(self, image, box: tuple[float, float, float, float], min_joints: int = 10,
                       min_height: float = 0.5) -> bool:
        """Whether the photo shows a second person besides the one in ``box`` = (left, top, right, bottom), pixels.

        The box (grown by 5% of its height) is painted over with the colour of the photo's border and the photo
        searched again; a person found there counts when at least ``min_joints`` joints are seen with
        ``min_confidence`` and, with ``segmentation``, their mask is at least ``min_height`` of the box's height.
        """
        pixels = np.array(load_image(image), dtype=np.uint8)
        x0, y0, x1, y1 = box
        grow = 0.05 * (y1 - y0)
        top, bottom = max(0, int(y0 - grow)), min(pixels.shape[0], int(np.ceil(y1 + grow)))
        left, right = max(0, int(x0 - grow)), min(pixels.shape[1], int(np.ceil(x1 + grow)))
        pixels[top:bottom, left:right] = border_colour(pixels)
        other = self.detect(pixels)
        if other is None:
            return False
        xy, visibility = other.landmarks[:, :2], other.landmarks[:, 2]
        seen = int(((visibility >= self.min_confidence) & (xy >= 0).all(1) & (xy <= 1).all(1)).sum())
        if other.mask is None:
            tall = (xy[:, 1].max() - xy[:, 1].min()) * pixels.shape[0]
        else:
            rows = np.nonzero((other.mask > 0.5).any(axis=1))[0]
            tall = rows.max() + 1 - rows.min() if len(rows) else 0
        return seen >= min_joints and tall >= min_height * (y1 - y0)

    def landmarks(self, image, source: str | None = None) -> np.ndarray | None:
        """MediaPipe's ``(33, 3)`` ``(x, y, visibility)`` landmarks of the photo, or None if no person."""
        found = self.detect(image, source)
        return None if found is None else found.landmarks

    def __call__(self, image, source: str | None = None) -> Pose:
        """The OpenPose-18 pose of the person in ``image`` (a path, PIL image or HxWx3 uint8 array).

        Raises :class:`~cfld.errors.InputError` naming the photo when no person is found, or when the
        person found has no joint visible enough.
        """
        name = source or (os.fspath(image) if isinstance(image, (str, os.PathLike)) else "image")
        picture = load_image(image, name)
        landmarks = self.landmarks(picture, name)
        if landmarks is None:
            raise InputError(name, NO_PERSON)
        pose = landmarks_to_openpose(landmarks, (picture.height, picture.width), self.min_confidence,
                                     os.path.basename(name))
        if pose.num_visible < MIN_JOINTS:
            raise InputError(name, too_few_joints(pose.num_visible, self.min_confidence))
        return pose

    def close(self) -> None:
        _LIVE.discard(self)
        if self._pose is not None:
            self._pose.close()
            self._pose = None
        if getattr(self, "_filtering", False):
            self._filtering = False
            _STDERR.stop()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __enter__(self) -> PoseDetector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


#: Detectors not closed yet. MediaPipe's graph, left open when Python exits, hangs the exit for ever: whatever a
#: caller forgot to close is closed before then.
_LIVE: weakref.WeakSet[PoseDetector] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for detector in list(_LIVE):
        with contextlib.suppress(Exception):
            detector.close()


def border_colour(pixels: np.ndarray) -> np.ndarray:
    """The median colour of a (H, W, 3) picture's two outermost rows and columns on each side."""
    border = np.concatenate([pixels[:2].reshape(-1, 3), pixels[-2:].reshape(-1, 3), pixels[:, :2].reshape(-1, 3),
                             pixels[:, -2:].reshape(-1, 3)])
    return np.median(border, axis=0).astype(np.uint8)


def detect_pose(image, *, min_confidence: float = MIN_CONFIDENCE, source: str | None = None) -> Pose:
    """The OpenPose-18 pose of the person in one photo (see :class:`PoseDetector`)."""
    with PoseDetector(min_confidence) as detector:
        return detector(image, source)


def pose_for_source(
    photo,
    source,
    *,
    fit: str = "frame",
    detector: PoseDetector | None = None,
) -> Pose:
    """The pose of the person in ``photo``, retargeted into the frame of the ``source`` photo.

    This is "take the pose of one photo and apply it to another person": the pose is detected in
    ``photo``'s own pixel frame and moved by :func:`cfld.pose.retarget` into ``source``'s ``(height,
    width)`` keeping its aspect ratio, so that it is stretched onto the model's pose image exactly as the
    source photo is stretched onto its input. ``fit="frame"`` keeps the person's place and size in the
    photo (as letterboxing the photo would); ``fit="body"`` makes the body fill the source frame.
    """
    own = detector is None
    detector = detector or PoseDetector()
    try:
        pose = detector(photo)
    finally:
        if own:
            detector.close()
    if isinstance(source, tuple):
        frame = source
    else:
        picture = load_image(source)
        frame = (picture.height, picture.width)
    return retarget(pose, frame, fit=fit)


def _import_mediapipe():
    try:
        with _quiet():
            from mediapipe.python import solutions
    except ImportError as err:
        raise MissingDependencyError(f"{INSTALL_HINT} ({err})") from None
    return solutions


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide the protobuf deprecation warnings MediaPipe 0.10.14 raises inside itself (its C++ side's lines:
    :class:`_StderrFilter`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="google.protobuf")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield


class _StderrFilter:
    """While a detector lives, drop MediaPipe's C++ start-up lines from stderr and pass everything else on.

    MediaPipe's C++ side writes its chatter (``INFO: Created TensorFlow Lite XNNPACK delegate ...``, absl's
    ``WARNING: All log messages before absl::InitializeLog() ...``, glog-style ``W0000 ...
    inference_feedback_manager.cc ...`` lines) straight to file descriptor 2, from its own threads and at
    times of its choosing, so no Python setting reaches it. File descriptor 2 is pointed at a pipe instead;
    a thread forwards every line to the real stderr except those, so real errors (glog ``E``/``F`` lines,
    Python's own output, progress bars) still reach the terminal. Nested detectors share one filter.
    """

    CHATTER = re.compile(rb"^(INFO: Created TensorFlow Lite|WARNING: All log messages before absl::InitializeLog"
                         rb"|[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\])")

    def __init__(self) -> None:
        self.users = 0
        self.lock = threading.Lock()
        self.saved: int | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        with self.lock:
            self.users += 1
            if self.users > 1:
                return
            try:
                sys.stderr.flush()
                saved = os.dup(2)
                read, write = os.pipe()
                os.dup2(write, 2)
                os.close(write)
            except (OSError, ValueError, AttributeError):  # no usable fd 2 (an embedding host): filter nothing
                return
            self.saved = saved
            self.thread = threading.Thread(target=self._pump, args=(read, saved), daemon=True)
            self.thread.start()

    def stop(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users > 0 or self.saved is None:
                return
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(self.saved, 2)  # closes the pipe's last writer: the pump sees its end
            self.thread.join(timeout=2)
            os.close(self.saved)
            self.saved, self.thread = None, None

    @classmethod
    def _pump(cls, read: int, out: int) -> None:
        pending = b""
        with os.fdopen(read, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if not cls.CHATTER.match(line):
                        os.write(out, line + b"\n")
                # a partial line that may still become chatter waits for its end; anything else (a progress
                # bar redrawn with \r) goes out now
                if pending and not (pending[:1] in (b"I", b"W") and len(pending) < 300 and b"\r" not in pending):
                    os.write(out, pending)
                    pending = b""
        if pending and not cls.CHATTER.match(pending):
            os.write(out, pending)


_STDERR = _StderrFilter()

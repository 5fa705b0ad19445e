"""Reading and writing poses: annotation rows and files, our JSON, OpenPose JSON.

Three formats come in, one goes out:

* **Annotation rows** of the pose-transfer datasets, ``name:[y0,...,y17]:[x0,...,x17]`` with ``-1``
  for a missing joint, in a 256x176 frame (DeepFashion) or 128x64 (Market-1501). Whole files
  (``fasion-resize-annotation-test.csv``, ``market-annotation-*.csv``) load at once into a
  :class:`PoseTable`.
* **Our JSON** (``cfld.pose/v1``), the format we write; see :data:`POSE_JSON_FORMAT` and
  :func:`pose_to_json`.
* **OpenPose JSON** (``--write_json`` output): ``people[i].pose_keypoints_2d`` holds flat
  ``x, y, confidence`` triplets for the COCO-18 model (18 joints) or BODY_25 (25 joints, mapped to
  COCO-18 by joint name); confidence 0 marks a missing joint. OpenPose does not record the image
  size, so the caller supplies the frame.

Every problem is raised as :class:`~cfld.errors.InputError` naming the file (and line) and the fault.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io import atomic_write_text, path_kind, read_json, read_text
from .skeleton import DEEPFASHION_SIZE, JOINT_NAMES, MARKET1501_SIZE, NUM_JOINTS, Pose, Size, parse_size

#: The ``format`` tag of our JSON files. A file looks like::
#:
#:     {
#:       "format": "cfld.pose/v1",
#:       "name": "fashion/WOMEN/Tees_Tanks/id_00005085/45_1_front.jpg",   (optional)
#:       "frame": [256, 176],                                               ([height, width], pixels)
#:       "joints": [                                       (all 18 COCO-18 joints, each exactly once)
#:         {"name": "nose", "x": 88, "y": 40, "confidence": 1.0},
#:         {"name": "right_knee", "x": null, "y": null, "confidence": 0.0},  (missing: explicit)
#:         ...
#:       ]
#:     }
#:
#: ``x`` is the pixel column and ``y`` the row, pixel centres on integers. A joint is missing when
#: its confidence is 0 or its coordinates are null; ``confidence`` may be left out (1 for a joint
#: with coordinates). Joint names are those of :data:`cfld.pose.JOINT_NAMES`.
POSE_JSON_FORMAT = "cfld.pose/v1"

#: Which BODY_25 joint each COCO-18 joint is. The two models share joints 0-7 (nose to left wrist);
#: BODY_25 then inserts MidHip at 8, and appends toes and heels after the ears, which COCO-18 lacks.
BODY25_TO_COCO18: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)

_NUMERIC_TEXT = re.compile(r"[0-9\s,.eE+\-\[\]]*")


def guess_annotation_frame(path: str | os.PathLike) -> Size:
    """The annotation frame a file name suggests: 128x64 for Market-1501 files, else DeepFashion's 256x176."""
    return MARKET1501_SIZE if "market" in Path(path).name.lower() else DEEPFASHION_SIZE


def flat_name(name: str) -> str:
    """DeepFashion's flattened image name, as in ``train.lst``/``test.lst`` and the ``*_highres`` folders.

    ``fashion/WOMEN/Blouses_Shirts/id_00003372/03_3_back.jpg`` becomes
    ``fashionWOMENBlouses_Shirtsid0000337203_3back.jpg``: the parts are joined, the id loses its
    underscore and the file name keeps only its first one. Other names come back unchanged.
    """
    parts = name.split("/")
    if len(parts) != 5:
        return name
    head, *rest = parts[4].split("_")
    parts[3] = parts[3].replace("_", "")
    parts[4] = head + "_" + "".join(rest) if rest else head
    return "".join(parts)


# -- annotation rows ------------------------------------------------------------------------------


def _parse_numbers(text: str, what: str, source: str) -> np.ndarray:
    """``"[1, 2, -1]"`` -> array; exactly 18 finite numbers or an InputError."""
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise InputError(source, f"the {what} list must be written in brackets like [34,59,...], got {text[:40]!r}")
    tokens = text[1:-1].split(",")
    if len(tokens) != NUM_JOINTS:
        raise InputError(source, f"expected {NUM_JOINTS} {what} values (OpenPose COCO-18), found {len(tokens)}")
    values = []
    for token in tokens:
        try:
            value = float(token)
        except ValueError:
            raise InputError(source, f"{what} value {token.strip()!r} is not a number") from None
        if not math.isfinite(value):
            raise InputError(source, f"{what} value {token.strip()!r} is not a finite number")
        values.append(value)
    return np.array(values)


def _split_row(row: str, source: str) -> tuple[str | None, str, str]:
    parts = row.strip().rsplit(":", 2)
    if len(parts) == 2 and parts[0].lstrip().startswith("["):
        return None, parts[0], parts[1]
    if len(parts) != 3 or not parts[0]:
        raise InputError(source, "is not an annotation row of the form name:[y0,...,y17]:[x0,...,x17]")
    return parts[0], parts[1], parts[2]


def parse_annotation_row(row: str, frame: Size = DEEPFASHION_SIZE, source: str = "annotation row") -> Pose:
    """Parse one ``name:[y...]:[x...]`` row (the name may be left out) into a pose in ``frame``.

    ``-1`` in either coordinate marks a missing joint. The row must have at least one visible joint.
    """
    name, ys, xs = _split_row(row, source)
    ys_xs = _parse_numbers(ys, "y", source), _parse_numbers(xs, "x", source)
    return _with_source(lambda: Pose.from_yx(*ys_xs, frame, name), source).require_visible(source)


class PoseTable(Mapping[str, Pose]):
    """A whole annotation file: image name -> :class:`Pose`, stored as two ``(N, 18)`` arrays.

    Poses are built on lookup, so loading the 19,732 Market-1501 test rows takes a fraction of a
    second. DeepFashion rows can be looked up by their path-style name or by the flattened name
    of ``test.lst`` (see :func:`flat_name`). Rows without any visible joint are kept, as they are in
    the data (the original renders them as an empty pose image).
    """

    def __init__(self, names: list[str], ys: np.ndarray, xs: np.ndarray, frame: Size, source: str):
        self.names = names
        self.ys, self.xs = ys, xs
        self.frame = frame
        self.source = source
        self._index = {name: i for i, name in enumerate(names)}
        self._flat_index = {flat_name(name): i for i, name in enumerate(names)}

    def __getitem__(self, name: str) -> Pose:
        i = self._index.get(name, self._flat_index.get(name))
        if i is None:
            raise KeyError(name)
        return Pose.from_yx(self.ys[i], self.xs[i], self.frame, self.names[i])

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def pose(self, name: str) -> Pose:
        """The pose of row ``name``, or an InputError naming the file when there is no such row."""
        try:
            return self[name]
        except KeyError:
            example = f"; names look like {self.names[0]!r}" if self.names else ""
            raise InputError(self.source, f"has no row named {name!r} ({len(self)} rows{example})") from None


def read_annotation_csv(path: str | os.PathLike, frame: Size | None = None) -> PoseTable:
    """Read a DeepFashion/Market annotation file (``name:keypoints_y:keypoints_x`` header) into a table.

    Args:
        path: the file. A first line starting with ``name:`` is the header (trailing commas, as in
            ``fasion-resize-annotation-test.csv``, are ignored).
        frame: ``(height, width)`` of the annotation frame; by default guessed from the file name
            (:func:`guess_annotation_frame`).
    """
    source = str(path)
    frame = guess_annotation_frame(path) if frame is None else parse_size(frame, source)
    lines = _read_text(path).splitlines()
    start = 1 if lines and lines[0].startswith("name:") else 0
    numbered = [(n + 1, line) for n, line in enumerate(lines[start:], start) if line.strip()]
    names: list[str] = []
    raw_ys: list[str] = []
    raw_xs: list[str] = []
    for lineno, line in numbered:
        name, ys, xs = _split_row(line, f"{source} line {lineno}")
        if name is None:
            raise InputError(f"{source} line {lineno}", "has no image name before the keypoint lists")
        names.append(name)
        raw_ys.append(ys)
        raw_xs.append(xs)
    ys = _parse_columns(raw_ys, "y", numbered, source)
    xs = _parse_columns(raw_xs, "x", numbered, source)
    if len(set(names)) != len(names):
        seen: set[str] = set()
        for (lineno, _), name in zip(numbered, names):
            if name in seen:
                raise InputError(f"{source} line {lineno}", f"repeats the image name {name!r}")
            seen.add(name)
    _check_table_frame(ys, xs, frame, numbered, source)
    return PoseTable(names, ys, xs, frame, source)


def _parse_columns(raw: list[str], what: str, numbered: list[tuple[int, str]], source: str) -> np.ndarray:
    """All rows' ``what`` lists as one ``(N, 18)`` array, parsed in one go; on any fault, find the line."""
    joined = "[" + ",".join(raw) + "]"
    if _NUMERIC_TEXT.fullmatch(joined):
        try:
            values = np.array(json.loads(joined), dtype=np.float64)
        except ValueError:  # not JSON (e.g. ".5") or ragged: the careful path below decides
            values = None
        if values is not None and values.shape == (len(raw), NUM_JOINTS):
            return values
    rows = [_parse_numbers(text, what, f"{source} line {lineno}") for (lineno, _), text in zip(numbered, raw)]
    return np.stack(rows) if rows else np.zeros((0, NUM_JOINTS))


def _check_table_frame(ys: np.ndarray, xs: np.ndarray, frame: Size, numbered, source: str) -> None:
    """Apply the per-pose frame checks of :class:`Pose` to every row at once, naming the first bad line."""
    height, width = frame
    visible = (ys != -1) & (xs != -1)
    far = visible & ((xs < -width - 0.5) | (xs > 2 * width - 0.5) | (ys < -height - 0.5) | (ys > 2 * height - 0.5))
    inside = visible & (xs >= -0.5) & (xs <= width - 0.5) & (ys >= -0.5) & (ys <= height - 0.5)
    bad = far.any(axis=1) | (visible.any(axis=1) & ~inside.any(axis=1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        lineno = numbered[i][0]
        Pose.from_yx(ys[i], xs[i], frame, f"{source} line {lineno}")  # raises the precise message


# -- our JSON -------------------------------------------------------------------------------------


def _plain_number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def pose_to_json(pose: Pose) -> dict[str, Any]:
    """The pose as a JSON-ready dict in our ``cfld.pose/v1`` format (see :data:`POSE_JSON_FORMAT`)."""
    joints = []
    for name, (x, y), conf in zip(JOINT_NAMES, pose.xy, pose.confidence):
        if conf > 0:
            joints.append({"name": name, "x": _plain_number(x), "y": _plain_number(y), "confidence": float(conf)})
        else:
            joints.append({"name": name, "x": None, "y": None, "confidence": 0.0})
    out: dict[str, Any] = {"format": POSE_JSON_FORMAT}
    if pose.name is not None:
        out["name"] = pose.name
    out["frame"] = list(pose.frame)
    out["joints"] = joints
    return out


def _number(value: Any, what: str, source: str, allow_null: bool = False) -> float | None:
    if value is None and allow_null:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(source, f"{what} must be a finite number, got {value!r}")
    return float(value)


def pose_from_json(data: Any, source: str = "pose JSON") -> Pose:
    """Build a pose from a dict in our ``cfld.pose/v1`` format (the inverse of :func:`pose_to_json`)."""
    if not isinstance(data, dict) or "joints" not in data or "frame" not in data:
        raise InputError(
            source, "is neither a cfld pose (a JSON object with 'frame' and 'joints') nor OpenPose output ('people')"
        )
    if data.get("format", POSE_JSON_FORMAT) != POSE_JSON_FORMAT:
        raise InputError(source, f"has format {data['format']!r}; this version reads {POSE_JSON_FORMAT!r}")
    frame = parse_size(data["frame"], f"{source} 'frame'")
    joints = data["joints"]
    if not isinstance(joints, list) or len(joints) != NUM_JOINTS:
        count = len(joints) if isinstance(joints, list) else type(joints).__name__
        raise InputError(source, f"'joints' must list all {NUM_JOINTS} COCO-18 joints, found {count}")
    xy = np.full((NUM_JOINTS, 2), np.nan)
    confidence = np.zeros(NUM_JOINTS)
    seen: set[str] = set()
    for joint in joints:
        if not isinstance(joint, dict) or joint.get("name") not in JOINT_NAMES:
            got = joint.get("name") if isinstance(joint, dict) else joint
            raise InputError(source, f"unknown joint {got!r}; joints are named {', '.join(JOINT_NAMES)}")
        name = joint["name"]
        if name in seen:
            raise InputError(source, f"joint {name!r} appears twice")
        seen.add(name)
        x = _number(joint.get("x"), f"joint {name!r} x", source, allow_null=True)
        y = _number(joint.get("y"), f"joint {name!r} y", source, allow_null=True)
        has_xy = x is not None and y is not None
        conf = _number(joint.get("confidence", 1.0 if has_xy else 0.0), f"joint {name!r} confidence", source)
        if conf < 0:
            raise InputError(source, f"joint {name!r} has a negative confidence {conf}")
        if conf > 0 and not has_xy:
            raise InputError(
                source, f"joint {name!r} has confidence {conf} but no x and y; use confidence 0 for missing"
            )
        if conf > 0:
            i = JOINT_NAMES.index(name)
            xy[i] = (x, y)
            confidence[i] = conf
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise InputError(source, f"'name' must be a string, got {name!r}")
    return _with_source(lambda: Pose(xy, confidence, frame, name), source)


def write_pose_json(pose: Pose, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the pose as our JSON atomically; refuses to replace an existing file unless ``overwrite``."""
    data = pose_to_json(pose)
    joints = ",\n".join(f"    {json.dumps(joint)}" for joint in data.pop("joints"))
    head = "".join(f"  {json.dumps(key)}: {json.dumps(value)},\n" for key, value in data.items())
    text = f'{{\n{head}  "joints": [\n{joints}\n  ]\n}}\n'  # one joint per line: easy to read and diff
    return atomic_write_text(path, text, overwrite=overwrite)


def read_pose_json(path: str | os.PathLike) -> Pose:
    """Read a pose written by :func:`write_pose_json`; it must have a visible joint."""
    return pose_from_json(_read_json(path), str(path)).require_visible(path)


# -- OpenPose JSON --------------------------------------------------------------------------------


def pose_from_openpose(data: Any, frame: Size, person: int = 0, source: str = "OpenPose JSON") -> Pose:
    """Person ``person`` of an OpenPose result dict as a COCO-18 pose in ``frame`` (the photo's size)."""
    frame = parse_size(frame, f"{source} frame")
    people = data.get("people") if isinstance(data, dict) else None
    if not isinstance(people, list):
        raise InputError(source, "is not OpenPose output (no 'people' list)")
    if not people:
        raise InputError(source, "has no people (OpenPose found nobody in the photo)")
    if not 0 <= person < len(people):
        raise InputError(source, f"has {len(people)} people (0 to {len(people) - 1}); there is no person {person}")
    flat = people[person].get("pose_keypoints_2d") if isinstance(people[person], dict) else None
    if not isinstance(flat, list) or not flat:
        raise InputError(source, f"person {person} has no 'pose_keypoints_2d' (was OpenPose run with the body model?)")
    if len(flat) not in (3 * NUM_JOINTS, 3 * 25):
        raise InputError(
            source,
            f"person {person} has {len(flat)} pose_keypoints_2d values; expected 54 (COCO-18) or 75 (BODY_25) "
            "x, y, confidence triplets",
        )
    values = [_number(v, f"person {person} pose_keypoints_2d value", source) for v in flat]
    triplets = np.array(values).reshape(-1, 3)
    if len(triplets) == 25:
        triplets = triplets[list(BODY25_TO_COCO18)]
    name = f"{Path(source).name} person {person}"
    pose = _with_source(lambda: Pose(triplets[:, :2], triplets[:, 2], frame, name), source)
    return pose.require_visible(f"{source} person {person}")


def read_openpose_json(path: str | os.PathLike, frame: Size, person: int = 0) -> Pose:
    """Read person ``person`` of an OpenPose ``*_keypoints.json`` file; ``frame`` is the photo's (height, width)."""
    return pose_from_openpose(_read_json(path), frame, person, str(path))


# -- any of them ----------------------------------------------------------------------------------


def pose_format(source: str | os.PathLike) -> str:
    """Which reader :func:`load_pose` will use: "annotation row", "openpose", "cfld json" or "annotation file"."""
    text = os.fspath(source)
    path = Path(text)
    kind = path_kind(path)
    if kind != "file":
        if ":[" in text or text.lstrip().startswith("["):
            return "annotation row"
        if kind is not None:
            raise InputError(text[:200], "is not a file")
        raise InputError(text[:200], "no such file, and not an annotation row of the form name:[y0,...]:[x0,...]")
    if path.suffix.lower() == ".json":
        data = _read_json(path)
        return "openpose" if isinstance(data, dict) and "people" in data else "cfld json"
    return "annotation file"


def load_pose(
    source: str | os.PathLike | Pose,
    *,
    name: str | None = None,
    person: int = 0,
    frame: Size | None = None,
) -> Pose:
    """Read one pose from whatever the user handed us, with at least one visible joint.

    Args:
        source: a Pose (returned as is), our JSON, an OpenPose JSON, an annotation file, or an
            annotation row given inline (``name:[y...]:[x...]`` or ``[y...]:[x...]``).
        name: the row to take from an annotation file (path-style or flattened DeepFashion name);
            may be left out when the file has a single row.
        person: which person of an OpenPose file.
        frame: ``(height, width)``: required for OpenPose files (they do not record it); for
            annotation rows and files it overrides the default (guessed from the file name, else
            DeepFashion's 256x176); for our JSON it must match the frame the file records.
    """
    if isinstance(source, Pose):
        return source.require_visible()
    text = os.fspath(source)
    kind = pose_format(text)
    if kind == "annotation row":
        return parse_annotation_row(text, frame or DEEPFASHION_SIZE)
    path = Path(text)
    if kind in ("openpose", "cfld json"):
        data = _read_json(path)
        if kind == "openpose":
            if frame is None:
                raise InputError(
                    text,
                    "is OpenPose output, which does not record the image size; give the photo's frame "
                    "(--frame or --pose-frame HxW)",
                )
            return pose_from_openpose(data, frame, person, text)
        pose = pose_from_json(data, text).require_visible(text)
        if frame is not None and (wanted := parse_size(frame)) != pose.frame:
            raise InputError(
                text, f"records a {pose.frame[0]}x{pose.frame[1]} frame, not the {wanted[0]}x{wanted[1]} asked for"
            )
        return pose
    table = read_annotation_csv(path, frame)
    if name is None:
        if len(table) != 1:
            example = f", e.g. {table.names[0]!r}" if table.names else ""
            raise InputError(text, f"holds {len(table)} annotation rows; choose one by name (--name){example}")
        name = table.names[0]
    return table.pose(name).require_visible(f"{text} row {name!r}")


# -- helpers --------------------------------------------------------------------------------------


def _read_text(path: str | os.PathLike) -> str:
    return read_text(path, "pose or annotation file")


def _read_json(path: str | os.PathLike) -> Any:
    return read_json(path, "pose file")


def _with_source(build, source: str) -> Pose:
    """Run ``build()``; re-raise a Pose validation error under the name of the file it came from."""
    try:
        return build()
    except InputError as err:
        raise InputError(source, err.problem) from None

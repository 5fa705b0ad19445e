"""Synthetic persons: procedurally drawn people in real DeepFashion poses, pairs of one person in two poses.

It exists so that learning can be shown on a CPU in minutes: the task has the structure of DeepFashion
pose transfer (the same clothes, hair and skin must reappear in another real pose, and what the
back of a garment looks like cannot be read off its front) without needing the photos.

A person is drawn from a seeded random generator:

* skin tone, hair colour and length, body build (limb thickness relative to the torso length);
* a top with two colours and a pattern (plain, horizontal or vertical stripes, checks, dots) and long,
  short or no sleeves; its *front* carries the pattern and a chest emblem, its *back* is the main colour
  with a band of the second colour across the shoulders, so front and back views differ;
* trousers, shorts or a skirt in a third colour, and shoes;
* a light background shade (same in both views, like a studio session).

The person is posed with real OpenPose-18 keypoints (``fasion-resize-annotation-*.csv`` rows, 256x176
frame; by default the 24 bundled gallery poses of :func:`cfld.pose.gallery`), keeping only poses with the
neck, both shoulders and both hips visible. Whether a pose is seen from the front is read off the
keypoints: a visible face (nose or eyes) means front. Limbs whose joints are missing (close-ups) are not
drawn, as in the photos they are out of the frame.

Item ``i`` of ``SyntheticPersons(seed=s)`` depends only on ``(s, i)``: it is drawn on the fly with
OpenCV (antialiased polygons and lines, patterns as vectorised numpy masks), in some 10-20 ms per pair
with its pose images at a 128x88 photo size on one core. The photo is then resized exactly as a real
photo (bicubic, antialiased, to [-1, 1]).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from ..errors import InputError
from ..images import MAX_OUTPUT_SIDE, MIN_SIDE, to_model_input
from ..pose import DEEPFASHION_SIZE, Pose, PoseTable, gallery, parse_size, pose_image, read_annotation_csv
from ..pose.skeleton import JOINT_NAMES

J = {name: i for i, name in enumerate(JOINT_NAMES)}
REQUIRED = ("neck", "right_shoulder", "left_shoulder", "right_hip", "left_hip")
"""Joints a pose must have to be drawn as a person (3,264 of the 4,038 DeepFashion test rows have them)."""

SKIN_TONES = np.array([(255, 224, 196), (241, 194, 160), (224, 172, 130), (198, 134, 94), (141, 85, 54), (92, 58, 38)])
HAIR_COLOURS = np.array([(20, 16, 14), (70, 45, 25), (120, 80, 40), (220, 190, 120), (160, 60, 30), (150, 150, 150)])
PATTERNS = ("plain", "hstripes", "vstripes", "checks", "dots")
SLEEVES = ("long", "short", "none")
BOTTOMS = ("trousers", "shorts", "skirt")
SPLITS = ("all", "train", "test")
HELD_OUT_SEED = 12345
"""Seed of the held-out persons that ``benchmarks/train_synthetic.py`` and ``cfld demo`` score."""


def select_poses(table: PoseTable, split: str = "all", test_every: int = 10) -> list[Pose]:
    """The drawable poses of ``table`` (neck, shoulders and hips visible) in file order; ``split`` keeps
    all of them, or the ``test`` share (every ``test_every``-th drawable pose) or the rest (``train``)."""
    if split not in SPLITS:
        raise InputError(f"split {split!r}", f"is not one of {', '.join(SPLITS)}")
    visible = (table.ys >= 0) & (table.xs >= 0)
    usable = np.flatnonzero(visible[:, [J[n] for n in REQUIRED]].all(axis=1))
    if split == "test":
        usable = usable[::test_every]
    elif split == "train":
        usable = np.delete(usable, np.s_[::test_every])
    if len(usable) < 2:
        raise InputError(table.source, f"has {len(usable)} drawable poses in split {split!r}; a pair needs two "
                                       f"poses with the {', '.join(REQUIRED)} visible")
    return [table[table.names[i]] for i in usable]


MAX_LENGTH = 100_000_000  # pairs: more than any dataset of the field, and an epoch order still fits in memory

class SyntheticPersons(Dataset):
    """Pairs of one synthetic person in two real poses, generated on the fly from ``(seed, index)``.

    Args:
        length: number of pairs (``len(dataset)``).
        image_size: (H, W) of ``img_src`` / ``img_tgt`` (the training image size, e.g. the config's
            ``image_size``).
        cond_size, pose_size: (H, W) of ``img_cond`` and of the pose images (the config's).
        seed: the dataset's seed; two datasets with different seeds share no person.
        poses: an annotation CSV (256x176 DeepFashion frame) or a :class:`PoseTable`; default the bundled
            gallery of 24 real poses.
        split: ``"all"``, ``"train"`` or ``"test"``: which drawable poses to use (see :func:`select_poses`),
            so held-out evaluation can use poses never seen in training.
        photo_size: (H, W) at which the "photo" is drawn before resizing (default 256x176, DeepFashion's).
        flip_cond: mirror the condition image with probability 1/2 (the original's training augmentation).
    """

    def __init__(
        self,
        length: int,
        image_size: Sequence[int],
        cond_size: Sequence[int],
        pose_size: Sequence[int],
        seed: int = 0,
        poses: str | os.PathLike | PoseTable | None = None,
        split: str = "all",
        photo_size: Sequence[int] = DEEPFASHION_SIZE,
        flip_cond: bool = False,
    ):
        if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= MAX_LENGTH:
            raise InputError("synthetic dataset", f"length must be a whole number from 1 to {MAX_LENGTH:,} (pairs), "
                                                  f"got {str(length)[:40]}")
        self.length = length
        self.image_size = parse_size(tuple(image_size), "image_size")
        self.cond_size = parse_size(tuple(cond_size), "cond_size")
        self.pose_size = parse_size(tuple(pose_size), "pose_size")
        self.photo_size = parse_size(tuple(photo_size), "photo_size")
        if not all(MIN_SIDE <= side <= MAX_OUTPUT_SIDE for side in self.photo_size):
            raise InputError("synthetic dataset", f"photo_size must be from {MIN_SIDE} to {MAX_OUTPUT_SIDE} pixels a "
                                                  f"side, got {self.photo_size[0]}x{self.photo_size[1]}")
        self.seed = int(seed)
        table = gallery() if poses is None else poses if isinstance(poses, PoseTable) else read_annotation_csv(poses)
        self.poses = select_poses(table, split)
        self.flip_cond = flip_cond

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, object]:
        rng, person, src, tgt = self._pair(index)
        photo_src, photo_tgt = person.draw(src, self.photo_size), person.draw(tgt, self.photo_size)
        cond = Image.fromarray(photo_src)
        if self.flip_cond and rng.random() < 0.5:
            cond = cond.transpose(Image.FLIP_LEFT_RIGHT)
        name = f"synthetic{self.seed}_{index:06d}"
        return {
            "img_src": to_model_input(Image.fromarray(photo_src), self.image_size),
            "img_tgt": to_model_input(Image.fromarray(photo_tgt), self.image_size),
            "img_cond": to_model_input(cond, self.cond_size),
            "pose_img_src": pose_image(src, self.pose_size),
            "pose_img_tgt": pose_image(tgt, self.pose_size),
            "name_src": f"{name}_{src.name}",
            "name_tgt": f"{name}_{tgt.name}",
        }

    def _pair(self, index: int) -> tuple[np.random.Generator, Person, Pose, Pose]:
        """The generator of item ``index`` (after drawing), its person, source pose and target pose."""
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng((self.seed, index))
        person = Person.random(rng)
        first, second = rng.choice(len(self.poses), size=2, replace=False)
        return rng, person, self.poses[first], self.poses[second]

    def garment_masks(self, index: int) -> np.ndarray:
        """(2, H, W) booleans at ``image_size``: the pixels of ``img_tgt`` fully covered by the person's upper
        garment (top and sleeves) and by the lower one (trousers, shorts or skirt), as the person's own
        drawing puts them in the target pose, occlusions included. For :mod:`cfld.metrics.appearance`."""
        _, person, _, tgt = self._pair(index)
        labels = person.garment_look().draw(tgt, self.photo_size)[..., :2].astype(np.float32) / 255
        cover = cv2.resize(labels, self.image_size[::-1], interpolation=cv2.INTER_AREA)  # share of each pixel covered
        return np.moveaxis(cover >= 0.999, -1, 0)

    def target_worn_by(self, index: int, other: int):
        """``img_tgt`` of item ``index`` with the person of item ``other`` in it: the right pose, another look
        (the "different person" baseline of an appearance measure)."""
        _, _, _, tgt = self._pair(index)
        _, person, _, _ = self._pair(other)
        return to_model_input(Image.fromarray(person.draw(tgt, self.photo_size)), self.image_size)


class Person:
    """One synthetic person's look; :meth:`draw` puts it into a pose."""

    def __init__(self, **look):
        self.__dict__.update(look)

    @classmethod
    def random(cls, rng: np.random.Generator) -> Person:
        def colour(low: int = 0, high: int = 256) -> np.ndarray:
            return rng.integers(low, high, size=3)

        def jitter(base: np.ndarray, amount: int) -> np.ndarray:
            return np.clip(base + rng.integers(-amount, amount + 1, size=3), 0, 255)

        return cls(
            background=np.full(3, rng.integers(200, 246)) + rng.integers(-6, 7, size=3),
            skin=jitter(SKIN_TONES[rng.integers(len(SKIN_TONES))], 10),
            hair=jitter(HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))], 12),
            long_hair=bool(rng.random() < 0.5),
            top=colour(), top_second=colour(), emblem=colour(),
            pattern=PATTERNS[rng.integers(len(PATTERNS))],
            pattern_frequency=float(rng.uniform(3.0, 7.0)),
            emblem_round=bool(rng.random() < 0.5),
            sleeves=SLEEVES[rng.integers(len(SLEEVES))],
            bottom=colour(0, 200), bottom_kind=BOTTOMS[rng.integers(len(BOTTOMS))],
            shoes=colour(0, 120),
            build=float(rng.uniform(0.8, 1.2)),
        )

    def garment_look(self) -> Person:
        """This person with the upper garment in pure red, the lower one in pure green and all else black:
        drawn, its red and green channels are each garment's cover of every pixel."""
        black, red, green = np.zeros(3), np.array([255, 0, 0]), np.array([0, 255, 0])
        return Person(**(self.__dict__ | dict(background=black, skin=black, hair=black, shoes=black, top=red,
                                              top_second=red, emblem=red, bottom=green)))

    def draw(self, pose: Pose, size: tuple[int, int]) -> np.ndarray:
        """The person in ``pose`` as an (H, W, 3) uint8 RGB photo of ``size``; the pose's frame is
        stretched onto it, as pose images stretch it."""
        height, width = size
        canvas = np.empty((height, width, 3), np.uint8)
        canvas[:] = np.clip(self.background, 0, 255)
        xy = pose.xy * [width / pose.frame[1], height / pose.frame[0]]
        seen = pose.visible
        p = {name: xy[J[name]] for name in JOINT_NAMES}
        hips = (p["right_hip"] + p["left_hip"]) / 2
        torso = max(float(np.linalg.norm(hips - p["neck"])), 4.0)
        up = (p["neck"] - hips) / torso
        front = bool(seen[[J["nose"], J["right_eye"], J["left_eye"]]].any())
        arm, leg = max(2, round(0.17 * torso * self.build)), max(2, round(0.24 * torso * self.build))

        def pt(a: np.ndarray) -> tuple[int, int]:
            return int(round(a[0])), int(round(a[1]))

        def limb(a: str, b: str, colour, thickness: int, fraction: float = 1.0) -> None:
            if seen[J[a]] and seen[J[b]]:
                end = p[a] + fraction * (p[b] - p[a])
                cv2.line(canvas, pt(p[a]), pt(end), _rgb(colour), thickness, cv2.LINE_AA)

        # the head: at the nose, else between the ears/eyes, else above the neck
        face = [p[n] for n in ("nose", "right_eye", "left_eye", "right_ear", "left_ear") if seen[J[n]]]
        head = np.mean(face, axis=0) if face else p["neck"] + 0.45 * torso * up
        radius = max(2, round(0.2 * torso))
        if self.long_hair:  # hair falling behind the shoulders
            cv2.ellipse(canvas, pt(head + 0.35 * radius * -up), (radius + 1, round(2.1 * radius)), 0, 0, 360,
                        _rgb(self.hair), -1, cv2.LINE_AA)

        # legs, then the bottom garment over them
        for side in ("right", "left"):
            lower = self.skin if self.bottom_kind != "trousers" else self.bottom
            limb(f"{side}_hip", f"{side}_knee", lower, leg)
            limb(f"{side}_knee", f"{side}_ankle", lower, leg)
            if self.bottom_kind == "shorts":
                limb(f"{side}_hip", f"{side}_knee", self.bottom, leg + 1, 0.5)
            if seen[J[f"{side}_ankle"]]:
                cv2.circle(canvas, pt(p[f"{side}_ankle"]), max(2, leg // 2 + 1), _rgb(self.shoes), -1, cv2.LINE_AA)
        if self.bottom_kind == "skirt":
            knees = [p[f"{s}_knee"] for s in ("right", "left") if seen[J[f"{s}_knee"]]]
            hem = np.mean(knees, axis=0) if knees else hips - 0.6 * torso * up
            side = np.array([-up[1], up[0]])  # across the body
            half = 0.5 * float(np.linalg.norm(p["right_hip"] - p["left_hip"])) + 0.1 * torso
            polygon = [hips + half * side, hips - half * side, hem - 1.6 * half * side, hem + 1.6 * half * side]
            cv2.fillPoly(canvas, [np.round(polygon).astype(np.int32)], _rgb(self.bottom), cv2.LINE_AA)

        # the torso: a quad over shoulders and hips, widened a little, filled with the front or back look
        polygon = np.array([p["right_shoulder"], p["left_shoulder"], p["left_hip"], p["right_hip"]])
        centre = polygon.mean(axis=0)
        polygon = centre + (polygon - centre) * 1.1
        mask = np.zeros((height, width), np.uint8)
        cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 255, cv2.LINE_AA)
        cloth = self._garment(front, p["neck"], up, torso, size)
        alpha = (mask.astype(np.float32) / 255.0)[..., None]
        canvas[:] = np.round(canvas * (1 - alpha) + cloth * alpha).astype(np.uint8)

        # arms over the torso: sleeves, then skin below them
        for side in ("right", "left"):
            limb(f"{side}_shoulder", f"{side}_elbow", self.skin, arm)
            limb(f"{side}_elbow", f"{side}_wrist", self.skin, arm)
            if self.sleeves == "long":
                limb(f"{side}_shoulder", f"{side}_elbow", self.top, arm + 1)
                limb(f"{side}_elbow", f"{side}_wrist", self.top, arm + 1, 0.85)
            elif self.sleeves == "short":
                limb(f"{side}_shoulder", f"{side}_elbow", self.top, arm + 1, 0.5)

        # neck and head; the hair covers the whole head from behind, its top from the front
        if face:
            cv2.line(canvas, pt(p["neck"]), pt(head), _rgb(self.skin), max(2, arm), cv2.LINE_AA)
        centre = pt(head)
        if front:
            cv2.circle(canvas, centre, radius, _rgb(self.skin), -1, cv2.LINE_AA)
            angle = float(np.degrees(np.arctan2(-up[1], -up[0])))
            cv2.ellipse(canvas, centre, (radius + 1, radius + 1), angle, 110, 250, _rgb(self.hair), -1, cv2.LINE_AA)
        else:
            cv2.circle(canvas, centre, radius + 1, _rgb(self.hair), -1, cv2.LINE_AA)
        return canvas

    def _garment(self, front: bool, neck: np.ndarray, up: np.ndarray, torso: float,
                 size: tuple[int, int]) -> np.ndarray:
        """The top's fabric over the whole picture, in body coordinates (it moves and scales with the torso)."""
        height, width = size
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        across = np.array([-up[1], up[0]])
        u = ((xs - neck[0]) * across[0] + (ys - neck[1]) * across[1]) / torso  # across the body
        v = -((xs - neck[0]) * up[0] + (ys - neck[1]) * up[1]) / torso  # down the body, 0 at the neck
        if not front:  # the back: main colour, a band of the second colour over the shoulders
            second = (v > 0.08) & (v < 0.3)
        else:
            f = self.pattern_frequency
            second = {
                "plain": np.zeros_like(v, dtype=bool),
                "hstripes": np.floor(v * f) % 2 == 1,
                "vstripes": np.floor(u * f) % 2 == 1,
                "checks": (np.floor(u * f) + np.floor(v * f)) % 2 == 1,
                "dots": (np.mod(u * f, 1) - 0.5) ** 2 + (np.mod(v * f, 1) - 0.5) ** 2 < 0.09,
            }[self.pattern]
        cloth = np.where(second[..., None], self.top_second, self.top).astype(np.float32)
        if front:  # a chest emblem
            du, dv = u - 0.18, v - 0.3
            inside = (du**2 + dv**2 < 0.1**2) if self.emblem_round else (np.abs(du) < 0.09) & (np.abs(dv) < 0.07)
            cloth[inside] = self.emblem
        return cloth


def _rgb(colour) -> tuple[int, int, int]:
    return tuple(int(c) for c in np.clip(colour, 0, 255))


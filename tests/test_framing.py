"""Framing users' photos (cfld.framing): real DeepFashion photos pasted into other canvases come back framed as
they were; the dataset's own photos go through unchanged; the placement is the data's; bad photos get one sentence."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED

pytest.importorskip("mediapipe", reason="framing needs the 'detect' extra (mediapipe==0.10.14)")

from cfld import framing as F  # noqa: E402
from cfld.errors import InputError  # noqa: E402
from cfld.images import load_image  # noqa: E402
from cfld.pose import PoseDetector, pose_from_json  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
REAL = SHARED / "data" / "deepfashion-real"
PHOTO = DATA / "women1.jpg"  # a real 256x176 DeepFashion photo, full body, facing the camera
OTHER = DATA / "women2.jpg"  # another one
TEXTURE_SEED = 7


class RememberingDetector(PoseDetector):
    """A still-image detector (its finding depends on the pixels alone) that gives a picture it has seen the
    detection it made then: the 246 real photos are framed by one test and measured by another, once."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen: dict[tuple, object] = {}

    def detect(self, image, source=None):
        pixels = np.asarray(load_image(image, source), dtype=np.uint8)
        key = (pixels.shape, hashlib.sha1(pixels.tobytes()).hexdigest())
        if key not in self.seen:
            self.seen[key] = super().detect(pixels, source)
        return self.seen[key]


@pytest.fixture(scope="module")
def detector():
    with RememberingDetector(segmentation=True) as d:
        yield d


@pytest.fixture(scope="module")
def framer(detector):
    return F.Framer(detector=detector)


def need_shared() -> Path:
    if not REAL.is_dir():
        pytest.skip(f"needs ../shared/data/deepfashion-real beside the repository (looked for {REAL})")
    return REAL


def textured(height: int, width: int, seed: int = TEXTURE_SEED) -> Image.Image:
    """A coloured texture: noise of three scales and stripes, like the benchmark's textured canvases."""
    rng = np.random.default_rng(seed)
    field = sum(np.asarray(Image.fromarray((rng.random((c, c)) * 255).astype(np.uint8)).resize((width, height),
                                                                                             Image.BICUBIC), float)
                for c in (4, 16, 64)) / 765
    stripes = 0.5 + 0.5 * np.sin(np.arange(width) / 3.0)[None, :]
    t = np.clip(0.7 * field + 0.3 * stripes, 0, 1)[..., None]
    return Image.fromarray((np.array([200, 60, 40]) * (1 - t) + np.array([30, 90, 220]) * t).astype(np.uint8))


def paste(photo: Image.Image, canvas: Image.Image, top: int, left: int, height: int) -> F.Crop:
    width = round(height * photo.width / photo.height)
    canvas.paste(photo.resize((width, height), Image.BICUBIC), (left, top))
    return F.Crop(top, left, height, width)


def iou(a: F.Crop, b: F.Crop) -> float:
    ix = max(0, min(a.left + a.width, b.left + b.width) - max(a.left, b.left))
    iy = max(0, min(a.top + a.height, b.top + b.height) - max(a.top, b.top))
    return ix * iy / (a.width * a.height + b.width * b.height - ix * iy)


# -- the dataset's own photos -------------------------------------------------------------------------------------


def test_a_dataset_photo_goes_through_unchanged(framer):
    photo = Image.open(PHOTO).convert("RGB")
    framed = framer(photo, PHOTO.name)
    assert not framed.cropped
    assert np.array_equal(np.asarray(framed.image), np.asarray(photo))  # results on dataset photos cannot move
    assert framed.crop == F.Crop(0, 0, 256, 176)
    assert framed.pose is not None and framed.pose.frame == (256, 176) and framed.pose.num_visible >= 12
    assert np.array_equal(np.asarray(framed.image_at_size()), np.asarray(photo))


def test_every_real_test_photo_goes_through_unchanged(framer):
    """All 246 real DeepFashion test photos (and the same photos at 512x352) are left as they are."""
    photos = sorted((need_shared() / "images").glob("*.png"))
    assert len(photos) == 246
    moved = [p.name for p in photos if framer(p).cropped]
    assert moved == []
    big = Image.open(photos[0]).convert("RGB").resize((352, 512), Image.BICUBIC)
    assert not framer(big).cropped


# -- the round trip ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("canvas_size, top, left, height", [
    ((450, 800), 150, 520, 260),    # 16:9, person at 58% of the height, right of centre
    ((600, 600), 40, 30, 380),      # square, top left
    ((700, 520), 300, 200, 300),    # 3:4 portrait, low
])
def test_a_pasted_photo_is_found_where_it_was_pasted(framer, canvas_size, top, left, height):
    photo = Image.open(PHOTO).convert("RGB")
    canvas = textured(*canvas_size)
    rect = paste(photo, canvas, top, left, height)
    framed = framer(canvas, "canvas")
    assert framed.cropped and framed.size == (256, 176) and framed.image.size == (176, 256)
    assert iou(framed.crop, rect) >= 0.8, (framed.crop, rect)
    # the pose is in the framed picture's frame, where it agrees with the pose of the photo itself
    native = framer(photo).pose
    both = framed.pose.visible & native.visible
    assert both.sum() >= 12
    error = np.linalg.norm(framed.pose.xy[both] - native.xy[both], axis=1)
    assert np.median(error) < 0.05 * np.hypot(256, 176)
    # the framed picture shows what was pasted: close to the photo itself
    difference = np.abs(np.asarray(framed.image, float) - np.asarray(photo, float)).mean()
    assert difference < 25


def test_the_record_says_where_the_crop_is(framer):
    canvas = textured(500, 900)
    rect = paste(Image.open(PHOTO).convert("RGB"), canvas, 100, 300, 300)
    record = json.loads(json.dumps(framer(canvas, "canvas.png").to_json()))
    assert record["format"] == "cfld.framing/v1" and record["framed"] is True
    assert set(record["crop"]) == {"top", "left", "height", "width"}
    assert record["size"] == [256, 176] and record["photo_size"] == [500, 900]
    crop = F.Crop(**record["crop"])
    assert iou(crop, rect) >= 0.8
    assert abs(crop.height / crop.width - 256 / 176) < 0.01
    pose = pose_from_json(record["pose"])
    assert pose.frame == (256, 176) and pose.num_visible >= 12


def test_padding_takes_the_photos_background(framer):
    """A person at the left edge of a grey photo: the crop reaches beyond it and is padded grey, not black."""
    photo = Image.open(PHOTO).convert("RGB")
    canvas = Image.new("RGB", (700, 400), (120, 130, 140))
    # the photo's own light background would be the colour next to the person; paste only its middle part
    middle = photo.crop((30, 0, 146, 256))
    canvas.paste(middle.resize((116 * 300 // 256, 300), Image.BICUBIC), (0, 50))
    framed = framer(canvas, "edge")
    assert framed.crop.left < 0  # reaches beyond the left edge
    padded = np.asarray(framed.image)[:, :3]
    assert np.abs(padded.astype(int) - framed.background).max() <= 1
    assert framed.background != (0, 0, 0)


# -- the background --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(6))
def test_plain_background_keeps_the_person_and_flattens_the_rest(detector, index):
    """Built so that the answer is known: a real photo with clothing masks, pasted on a texture. The clothes
    (the person's pixels by the masks) come back unchanged, everything away from the person is one plain colour."""
    images = SHARED / "data" / "images"
    if not (images / f"deepfashion_ref_{index}_mask_upper.png").is_file():
        pytest.skip(f"needs ../shared/data/images (looked for {images})")
    photo = Image.open(images / f"deepfashion_ref_{index}.png").convert("RGB")
    clothes = np.zeros((photo.height, photo.width), bool)
    for part in ("upper", "lower"):
        clothes |= np.asarray(Image.open(images / f"deepfashion_ref_{index}_mask_{part}.png").convert("L")) > 127
    canvas = textured(600, 800)
    rect = paste(photo, canvas, 120, 420, photo.height)  # at its own size: the masks stay pixel-exact
    kept = F.Framer(detector=detector)(canvas, "canvas")
    plain = F.Framer(detector=detector, replace_background=True)(canvas, "canvas")
    assert kept.crop == plain.crop
    before, after = np.asarray(kept.image), np.asarray(plain.image)
    # the clothes, moved into the framed picture by the crop
    ys, xs = np.nonzero(clothes)
    fx = np.floor((xs + 0.5 + rect.left - kept.crop.left) * 176 / kept.crop.width).astype(int)
    fy = np.floor((ys + 0.5 + rect.top - kept.crop.top) * 256 / kept.crop.height).astype(int)
    inside = (fx >= 1) & (fx < 175) & (fy >= 1) & (fy < 255)
    same = (before[fy[inside], fx[inside]] == after[fy[inside], fx[inside]]).all(axis=1)
    assert same.mean() >= 0.99, same.mean()
    from scipy import ndimage

    # away from the person, their kept margin and its fade
    margin = 2 * max(2, round(F.KEEP_MARGIN * 256)) + 1
    far = ndimage.distance_transform_edt(plain.mask < F.KEEP_THRESHOLD) > margin
    assert far.mean() > 0.2
    assert (after[far] == F.DEEPFASHION_PLACEMENT.background).all()
    assert (before[far] != F.DEEPFASHION_PLACEMENT.background).any(axis=1).mean() > 0.5  # it was not plain before


# -- the placement is the data's ----------------------------------------------------------------------------------


def test_placement_is_measured_on_the_real_photos(detector):
    """DEEPFASHION_PLACEMENT holds what measure_placement finds on the 246 real test photos (and the joints' box
    centre of the 4,038 annotation rows agrees on the horizontal centre)."""
    from cfld.pose import read_annotation_csv

    photos = sorted((need_shared() / "images").glob("*.png"))
    measured, found = F.measure_placement(photos, detector)
    assert found >= 235
    expected = F.DEEPFASHION_PLACEMENT
    for field in ("top", "feet", "legs_cut", "centre"):
        assert getattr(measured, field) == pytest.approx(getattr(expected, field), abs=1 / 256), field
    assert np.abs(np.subtract(measured.background, expected.background)).max() <= 2
    table = read_annotation_csv(SHARED / "data" / "deepfashion" / "fasion-resize-annotation-test.csv")
    centres = [(table[n].xy[table[n].visible, 0].min() + table[n].xy[table[n].visible, 0].max()) / 2 / 176
               for n in table if table[n].num_visible >= 3]
    assert len(table) == 4038
    assert np.median(centres) == pytest.approx(expected.centre, abs=0.01)


# -- one sentence for a photo that cannot be framed ---------------------------------------------------------------


def test_nobody(framer):
    with pytest.raises(InputError, match=r"empty\.png: no person found"):
        framer(Image.new("RGB", (600, 400), (90, 90, 90)), "empty.png")


def test_nobody_in_a_photo_of_the_models_shape_is_used_as_it_is(framer):
    """As before framing: a picture shaped like the training photos, with nobody found, is not refused."""
    picture = Image.new("RGB", (176, 256), (90, 90, 90))
    framed = framer(picture, "grey.png")
    assert not framed.cropped and framed.pose is None
    assert np.array_equal(np.asarray(framed.image), np.asarray(picture))


def test_a_sliver_of_a_photo_is_named_with_its_own_size(framer):
    """A photo 20000x20 (or 20x20000) shrinks to a line in the detector's view: that view is not looked at (it said
    "image: is only 1024x1 pixels"); the photo is refused naming it and the width and height it has."""
    with pytest.raises(F.FramingError, match=r"^flat\.png: is only 20000x20 pixels \(width x height\), too low for a "
                                             r"person of the 64 pixels framing needs") as caught:
        framer(Image.new("RGB", (20000, 20), (200, 200, 200)), "flat.png")
    assert caught.value.reason == "too_small"
    with pytest.raises(F.FramingError, match=r"^thin\.png: no person found") as caught:
        framer(Image.new("RGB", (20, 20000), (200, 200, 200)), "thin.png")
    assert caught.value.reason == "no_person"


@pytest.mark.parametrize("size", [(1, 1), (15, 176), (256, 4097)])
def test_a_framing_size_it_cannot_make_is_refused(detector, size):
    with pytest.raises(InputError, match=rf"^framing size: {size[0]}x{size[1]} \(height x width\) is not a size "
                                         r"framing can make: each side must be from 16 to 4096 pixels"):
        F.Framer(size, detector=detector)


def test_several_people(framer):
    photo = Image.open(PHOTO).convert("RGB")
    other = Image.open(OTHER).convert("RGB")
    canvas = Image.new("RGB", (800, 450), (235, 235, 235))
    paste(photo, canvas, 60, 80, 360)
    paste(other, canvas, 60, 500, 360)
    with pytest.raises(InputError, match="several people"):
        framer(canvas, "two.png")


def test_a_person_too_small(framer):
    photo = Image.open(PHOTO).convert("RGB")
    canvas = Image.new("RGB", (170, 110), (240, 240, 240))
    paste(photo, canvas, 55, 60, 58)
    with pytest.raises(InputError, match=r"small\.png: the person is only \d+ pixels tall; framing needs at least 64"):
        framer(canvas, "small.png")


def test_a_crop_with_more_padding_than_photo(framer):
    """A narrow strip through the person: the crop of the model's shape would be mostly outside it."""
    strip = Image.open(PHOTO).convert("RGB").crop((58, 0, 118, 256)).resize((120, 512), Image.BICUBIC)
    with pytest.raises(InputError, match=r"strip\.png: the crop .* would be \d+% padding"):
        framer(strip, "strip.png")


def test_another_person(detector):
    photo = Image.open(PHOTO).convert("RGB")
    canvas = Image.new("RGB", (800, 450), (235, 235, 235))
    rect = paste(photo, canvas, 60, 80, 360)
    box = (rect.left, rect.top, rect.left + rect.width, rect.top + rect.height)
    assert not detector.another_person(canvas, box)
    paste(Image.open(OTHER).convert("RGB"), canvas, 60, 500, 360)
    assert detector.another_person(canvas, box)


def test_a_market_sized_model_gets_market_placement(framer, detector):
    """128x64 (Market-1501's 2:1 photos): a person with a little head and foot room, framed at that size."""
    assert F.placement_for((128, 64)) is F.MARKET1501_PLACEMENT
    assert F.placement_for((512, 352)) is F.DEEPFASHION_PLACEMENT
    canvas = textured(450, 800)
    paste(Image.open(PHOTO).convert("RGB"), canvas, 100, 420, 300)
    framed = F.Framer((128, 64), detector=detector)(canvas, "canvas")
    assert framed.cropped and framed.image.size == (64, 128) and framed.pose.frame == (128, 64)
    assert framed.crop.height == pytest.approx(2 * framed.crop.width, abs=2)


@pytest.mark.parametrize("grey", [60, 128])
def test_the_legs_are_found_below_where_the_mask_stopped(framer, grey):
    """On the whole 800x450 photo MediaPipe's mask stops at the hem and the ankles are unsure; the looks that reach
    further down find the legs (before: a 144x99 crop, cut at the knees)."""
    canvas = Image.new("RGB", (800, 450), (grey, grey, grey))
    rect = paste(Image.open(OTHER).convert("RGB"), canvas, 150, 520, 225)
    framed = framer(canvas, "canvas")
    assert framed.crop.height >= 0.9 * rect.height and iou(framed.crop, rect) >= 0.85


def test_framed_cut_and_move_pose_follow_a_known_crop():
    """Framed.apply_crop and Framed.move_pose on a crop that reaches above a 200x300 photo: a mask at half the photo's
    resolution (a box of half pixels whose whole-pixel span is the framed size) and a pose, exact answers; a photo
    used as it is leaves both as they are."""
    from cfld.pose import Pose

    photo_size, size = (200, 300), (64, 44)
    crop = F.Crop(top=-21, left=33, height=126, width=86)  # in the mask's pixels: 16.5, -10.5 .. 59.5, 52.5
    framed = F.Framed(Image.new("RGB", (44, 64)), crop, size, None, True, photo_size, (0, 0, 0))
    ramp = np.minimum(4 * np.arange(150), 255).astype(np.uint8)  # 4 per mask column, the same on every row
    cut = framed.apply_crop(Image.fromarray(np.tile(ramp, (100, 1))))
    assert cut.mode == "L" and cut.size == (44, 64)
    pixels = np.asarray(cut, float)
    assert (pixels[:10] == 0).all()  # the rows above the photo are padding
    columns = 16 + (np.arange(44) + 0.5) * 43 / 44  # where each framed pixel's centre falls in the mask
    assert np.abs(pixels[12:] - 4 * columns).max() <= 0.51  # bilinear on a ramp: the ramp at those places

    xy = np.full((18, 2), np.nan)
    xy[0], xy[1] = (32.5, -0.5), (118.5, 104.5)  # the crop's left edge at the photo's top; its right and bottom edges
    confidence = np.r_[1.0, 0.8, np.zeros(16)]
    pose = Pose(xy, confidence, photo_size, "given")
    moved = framed.move_pose(pose)
    assert moved.frame == size and moved.name == "given" and np.array_equal(moved.confidence, pose.confidence)
    assert np.allclose(moved.xy[:2], [(-0.5, 21 * 64 / 126 - 0.5), (43.5, 63.5)])
    assert np.isnan(moved.xy[2:]).all()
    # a pose in a frame of another size is stretched onto the photo first
    assert np.allclose(framed.move_pose(Pose((xy + 0.5) / 4 - 0.5, confidence, (50, 75))).xy[:2], moved.xy[:2])

    as_is = F.Framed(Image.new("RGB", (300, 200)), F.Crop(0, 0, 200, 300), size, None, False, photo_size, (0, 0, 0))
    mask = Image.new("L", (300, 200), 255)
    assert as_is.apply_crop(mask) is mask and as_is.move_pose(pose) is pose

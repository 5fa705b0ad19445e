"""Messages that name the right thing, met through the command line: a photo's fault names that photo and its own
size (width x height, as the file has it), never a picture made from it on the way; every --size is refused in one
sentence before any work when it is no size a command can make; a style-transfer reference with nobody in it is
told so before anything is said about its mask."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED, assert_fails, needs_mediapipe, run

DATA = Path(__file__).resolve().parent / "data"
PHOTO = DATA / "women1.jpg"  # a real 256x176 DeepFashion photo
OTHER = DATA / "women2.jpg"
REFERENCE, MASK = DATA / "deepfashion_ref_4.png", DATA / "deepfashion_ref_4_mask_upper.png"  # 256x256, its mask
IMAGES = SHARED / "data" / "images"  # real photos: ecommerce_1.jpg, ecommerce_2.jpg (shop photos of a person)


def needs_shared_images() -> Path:
    if not (IMAGES / "ecommerce_1.jpg").is_file():
        pytest.skip(f"needs ../shared/data/images beside the repository (looked for {IMAGES})")
    return IMAGES


def landscape(height: int = 400, width: int = 600) -> Image.Image:
    """A photo with nobody in it: sky over a field, with a little noise."""
    rows = np.linspace(0.0, 1.0, height)[:, None, None]
    pixels = np.array([120, 160, 235]) * (1 - rows) + np.array([70, 130, 50]) * rows
    noise = np.random.default_rng(0).normal(0, 6, (height, width, 3))
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))


# -- a photo's faults name the photo and its own size ----------------------------------------------------------------


@pytest.mark.parametrize("width, height, fragments", [
    (20000, 20, ["is only 20000x20 pixels (width x height)", "too low for a person"]),
    (20, 20000, ["no person found"]),
    (1, 1, ["is only 1x1 pixels (width x height)", "at least 16 per side"]),
])
def test_a_photo_of_an_odd_shape_is_named_with_its_own_size(tmp_path, capsys, width, height, fragments):
    """A 20000x20 photo was "image: is only 1024x1 pixels" (the detector's downsized view); now the file is named,
    with the width and height it has."""
    needs_mediapipe()
    photo = tmp_path / f"odd_{width}x{height}.png"
    Image.new("RGB", (width, height), (120, 130, 140)).save(photo)
    line = assert_fails(capsys, ["frame", photo, "-o", tmp_path / "out"], f"error: {photo}: ", *fragments)
    assert "image:" not in line and "1024" not in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage, fragment", [
    ("truncated", "cannot be read as an image: the file ends before its picture does"),
    ("empty", "cannot be read as an image: the file is empty (0 bytes)"),
])
def test_a_damaged_photo_says_what_is_wrong_with_it(tmp_path, capsys, damage, fragment):
    photo = tmp_path / f"{damage}.jpg"
    photo.write_bytes(PHOTO.read_bytes()[: len(PHOTO.read_bytes()) // 2] if damage == "truncated" else b"")
    assert_fails(capsys, ["frame", photo, "-o", tmp_path / "out"], f"error: {photo}: {fragment}")
    assert_fails(capsys, ["pose", "detect", photo, "-o", tmp_path / "pose.json"], f"error: {photo}: {fragment}")


def test_a_folder_with_a_good_photo_and_an_empty_one(tmp_path, capsys):
    """The good photo is framed, the empty one listed as unreadable with its reason; the run succeeds."""
    needs_mediapipe()
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(PHOTO, folder / "good.jpg")
    (folder / "empty.jpg").write_bytes(b"")
    code, stdout, err = run(capsys, "frame", folder, "-o", tmp_path / "out", "--no-progress")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.json", "good.png"]
    assert "left out 1 photo (1 unreadable):" in stdout
    assert f"  {folder / 'empty.jpg'}: cannot be read as an image: the file is empty (0 bytes)" in stdout
    assert "framed 1 of 2 photos" in stdout


def test_real_shop_photos_with_a_landscape_and_a_sliver(tmp_path, capsys):
    """Two real shop photos (../shared/data/images) are framed; a landscape and a 20000x20 strip are left out, each
    with its own reason, and nothing is written for them."""
    needs_mediapipe()
    images = needs_shared_images()
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("ecommerce_1.jpg", "ecommerce_2.jpg"):
        shutil.copy(images / name, folder / name)
    landscape().save(folder / "landscape.jpg")
    Image.new("RGB", (20000, 20), (200, 200, 200)).save(folder / "sliver.png")
    code, stdout, err = run(capsys, "frame", folder, "-o", tmp_path / "out", "--no-progress")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "ecommerce_1.json", "ecommerce_1.png", "ecommerce_2.json", "ecommerce_2.png"]
    assert "left out 2 photos (1 no person found, 1 person too small):" in stdout
    assert f"  {folder / 'landscape.jpg'}: no person found" in stdout
    assert f"  {folder / 'sliver.png'}: is only 20000x20 pixels (width x height)" in stdout


# -- --size: refused before any work -----------------------------------------------------------------------------------


def _size_commands(tmp: Path) -> dict[str, list]:
    """Every command that takes --size, with arguments that would otherwise start work."""
    from cfld.pose import gallery, write_pose_json

    pose = write_pose_json(gallery()[gallery().names[0]], tmp / "pose.json", overwrite=True)
    poses = tmp / "poses"
    poses.mkdir(exist_ok=True)
    write_pose_json(gallery()[gallery().names[0]], poses / "a.json", overwrite=True)
    folder = tmp / "folder"
    folder.mkdir(exist_ok=True)
    out = tmp / "out"
    return {
        "frame": ["frame", PHOTO, "-o", out],
        "transfer": ["transfer", "-s", PHOTO, "-p", pose, "-m", "demo", "-o", out],
        "animate": ["animate", "-s", PHOTO, "-p", poses, "-m", "demo", "-o", out, "--no-mp4"],
        "edit style-transfer": ["edit", "style-transfer", "-r", REFERENCE, "--mask", MASK, "-s", PHOTO, "-m", "demo",
                                "-o", out / "edited.png"],
        "edit interpolate": ["edit", "interpolate", "-a", PHOTO, "-b", OTHER, "-p", pose, "-m", "demo", "-o",
                             out / "strip.png"],
        "sample": ["sample", "-m", "demo", "-d", folder, "-o", out],
        "evaluate": ["evaluate", "-g", folder, "-t", folder],
        "prepare deepfashion": ["prepare", "deepfashion", "-i", folder, "-a", folder, "-o", out],
        "prepare market1501": ["prepare", "market1501", "-i", folder, "-a", folder, "-o", out],
        "prepare photos": ["prepare", "photos", "-i", folder, "-o", out],
        "pose draw": ["pose", "draw", pose, "-o", out / "pose.png"],
        "pose render": ["pose", "render", pose, "-o", out / "pose.npy"],
    }


BAD_SIZES = {
    "1x1": "'1x1' is too small here: each side must be from 16 to ",
    "0x0": "'0x0' is not a size: each side must be a positive whole number of pixels, from 16 to ",
    "-5x10": "'-5x10' is not a size: each side must be a positive whole number",
    "12x": "expected HEIGHTxWIDTH in pixels, such as 256x176, got '12x'",
    "abc": "expected HEIGHTxWIDTH in pixels, such as 256x176, got 'abc'",
    "1x2x3": "expected HEIGHTxWIDTH in pixels, such as 256x176, got '1x2x3'",
    "100000x100000": "'100000x100000' is too large here: each side must be from 16 to ",
    "9" * 5000 + "x8": "is out of range here",
}



SIZE_COMMANDS = ["frame", "transfer", "animate", "edit style-transfer", "edit interpolate", "sample", "evaluate",
                 "prepare deepfashion", "prepare market1501", "prepare photos", "pose draw", "pose render"]


@pytest.mark.parametrize("command", SIZE_COMMANDS)
def test_every_size_option_refuses_what_it_cannot_make_in_one_sentence(tmp_path, capsys, command):
    args = _size_commands(tmp_path)[command]
    for value, fragment in BAD_SIZES.items():
        start = time.perf_counter()
        line = assert_fails(capsys, [*args, "--size", value], "error: --size: ", fragment)
        assert time.perf_counter() - start < 10, (command, value)  # refused before any work, in no time
        assert len(line) < 300
        assert not (tmp_path / "out").exists(), (command, value)


def test_the_size_bounds_of_the_commands_that_make_pictures(tmp_path, capsys):
    """4096 a side for what the model and framing make (4097 refused, 16 the least); the pose pictures keep theirs
    (8192 for `pose draw`, 2048 for `pose render`)."""
    args = _size_commands(tmp_path)
    assert_fails(capsys, [*args["frame"], "--size", "4097x176"], "'4097x176' is too large here",
                 "each side must be from 16 to 4096 pixels")
    assert_fails(capsys, [*args["pose draw"], "--size", "8193x100"], "from 16 to 8192 pixels")
    assert_fails(capsys, [*args["pose render"], "--size", "2049x100"], "from 16 to 2048 pixels")
    code, stdout, err = run(capsys, *args["pose render"], "--size", "16x16")
    assert code == 0, err


def test_prepare_photos_refuses_a_huge_size_at_once(tmp_path, capsys):
    """It ran out of memory on --size 100000x100000; now the size is refused before the catalogue is read."""
    catalogue = tmp_path / "catalogue" / "alice"
    catalogue.mkdir(parents=True)
    shutil.copy(PHOTO, catalogue / "a.jpg")
    shutil.copy(OTHER, catalogue / "b.jpg")
    assert_fails(capsys, ["prepare", "photos", "-i", catalogue.parent, "-o", tmp_path / "out", "--size",
                          "100000x100000"], "error: --size: '100000x100000' is too large here")
    assert not (tmp_path / "out").exists()


def test_frame_size_1x1_names_the_option_not_an_image(tmp_path, capsys):
    """`cfld frame --size 1x1` said "image: is only 1x1 pixels"."""
    line = assert_fails(capsys, ["frame", PHOTO, "-o", tmp_path / "out", "--size", "1x1"], "error: --size: '1x1'")
    assert "image:" not in line


# -- style transfer: a reference with nobody in it -----------------------------------------------------------------


@pytest.mark.parametrize("shape, frame", [((400, 600), []), ((400, 600), ["--no-frame"]), ((512, 352), []),
                                          ((512, 352), ["--no-frame"])])
def test_a_style_transfer_reference_with_nobody_says_so_not_the_masks_shape(tmp_path, capsys, shape, frame):
    """The mask (256x256) was made for another photo; but the reference has nobody in it, and that is what is said
    first, naming the reference (of the models' shape, which framing passes through, or another)."""
    needs_mediapipe()
    from cfld.pose import gallery, write_pose_json

    reference = tmp_path / "landscape.png"
    landscape(*shape).save(reference)
    line = assert_fails(capsys, ["edit", "style-transfer", "-r", reference, "--mask", MASK, "-s", PHOTO, "-m", "demo",
                                 "-o", tmp_path / "edited.png", *frame], f"error: {reference}: no person found")
    assert "mask" not in line
    # with the reference's pose given, nothing needs finding: then the mask's shape is what is wrong
    pose = write_pose_json(gallery()[gallery().names[0]], tmp_path / "pose.json")
    assert_fails(capsys, ["edit", "style-transfer", "-r", REFERENCE.parent / "women1.jpg", "--reference-pose", pose,
                          "--mask", MASK, "-s", PHOTO, "-m", "demo", "-o", tmp_path / "edited.png", *frame],
                 f"error: {MASK}: is 256x256 (HxW) but the reference photo is 256x176")
    assert not (tmp_path / "edited.png").exists()

"""`cfld pose ...` and `cfld demo` through the real entry point, cfld.cli.main."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from cfld import pose as P
from conftest import assert_fails, run

ROW = (
    "fashion/WOMEN/Tees_Tanks/id_00005085/45_1_front.jpg:"
    "[40,85,90,147,210,82,141,199,205,-1,-1,205,-1,-1,34,34,39, 40]:"
    "[88,89,56,49,35,124,129,111,58,-1,-1,98,-1,-1,81,96,72, 105]"
)
NAME = ROW.split(":")[0]
FLAT = "fashionWOMENTees_Tanksid0000508545_1front.jpg"


@pytest.fixture
def annotations(tmp_path):
    path = tmp_path / "fasion-resize-annotation-test.csv"
    other = ROW.replace("45_1_front", "46_2_side")
    path.write_text("name:keypoints_y:keypoints_x,,,,\n" + ROW + "\n" + other + "\n")
    return path


@pytest.fixture
def pose_json(tmp_path):
    return P.write_pose_json(P.parse_annotation_row(ROW), tmp_path / "pose.json")


def test_convert_annotation_row_by_name(capsys, tmp_path, annotations):
    out = tmp_path / "out" / "front.json"  # parent folders are created
    code, stdout, _ = run(capsys, "pose", "convert", annotations, "--name", FLAT, "-o", out)
    assert code == 0 and "14 of 18 joints visible" in stdout
    assert P.read_pose_json(out) == P.parse_annotation_row(ROW)
    assert json.loads(out.read_text())["frame"] == [256, 176]


def test_convert_inline_row_and_frame(capsys, tmp_path):
    out = tmp_path / "row.json"
    code, _, _ = run(capsys, "pose", "convert", ROW.split(":", 1)[1], "--frame", "512x352", "-o", out)
    assert code == 0
    pose = P.read_pose_json(out)
    assert pose.frame == (512, 352) and pose.name is None and pose.num_visible == 14


def test_outputs_are_never_replaced_without_overwrite(capsys, tmp_path, pose_json):
    out = tmp_path / "flipped.json"
    assert run(capsys, "pose", "flip", pose_json, "-o", out)[0] == 0
    out.write_text("precious")
    assert_fails(capsys, ["pose", "flip", pose_json, "-o", out], str(out), "already exists", "--overwrite")
    assert out.read_text() == "precious"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left behind
    assert run(capsys, "pose", "flip", pose_json, "-o", out, "--overwrite")[0] == 0
    assert P.read_pose_json(out) == P.flip(P.read_pose_json(pose_json))


def test_retarget(capsys, tmp_path, pose_json):
    out = tmp_path / "square.json"
    code, stdout, _ = run(capsys, "pose", "retarget", pose_json, "--to", "256x256", "-o", out)
    assert code == 0 and "256x256" in stdout
    assert P.read_pose_json(out) == P.retarget(P.read_pose_json(pose_json), (256, 256))
    tight = tmp_path / "tight.json"
    code, _, _ = run(capsys, "pose", "retarget", pose_json, "--to", "256", "--fit", "body", "--padding", "0",
                     "-o", tight)  # fmt: skip
    assert code == 0
    assert P.read_pose_json(tight) == P.retarget(P.read_pose_json(pose_json), (256, 256), fit="body", padding=0)
    bad_size = ["pose", "retarget", pose_json, "--to", "wide", "-o", tmp_path / "x.json"]
    assert_fails(capsys, bad_size, "--to", "HEIGHTxWIDTH")


def test_draw(capsys, tmp_path, pose_json):
    out = tmp_path / "pose.png"
    code, stdout, _ = run(capsys, "pose", "draw", pose_json, "-o", out)
    assert code == 0 and "256x176" in stdout
    assert np.array_equal(P.read_image(out), P.draw_pose(P.read_pose_json(pose_json)))
    big = tmp_path / "big.png"
    assert run(capsys, "pose", "draw", pose_json, "--size", "512x352", "-o", big)[0] == 0
    assert P.read_image(big).shape == (512, 352, 3)


def test_draw_openpose_over_photo_uses_the_photo_frame(capsys, tmp_path):
    from PIL import Image

    photo = tmp_path / "photo.jpg"
    Image.fromarray(np.full((300, 200, 3), 180, np.uint8)).save(photo)
    keypoints = np.zeros((18, 3))
    keypoints[:, :2] = [150, 250]  # in the photo's pixels, beyond a 256x176 frame's width
    keypoints[:, 2] = 0.9
    keypoints[0, :2] = [100, 50]
    result = tmp_path / "photo_keypoints.json"
    result.write_text(json.dumps({"people": [{"pose_keypoints_2d": keypoints.ravel().tolist()}]}))
    assert_fails(capsys, ["pose", "draw", result, "-o", tmp_path / "a.png"], "does not record the image size")
    out = tmp_path / "overlay.png"
    code, _, err = run(capsys, "pose", "draw", result, "--image", photo, "-o", out)
    assert code == 0 and "note" not in err
    picture = P.read_image(out)
    assert picture.shape == (300, 200, 3)
    assert tuple(picture[50, 100]) == P.JOINT_COLORS[0]  # nose where OpenPose saw it
    assert tuple(picture[0, 0]) == (108, 108, 108)  # the photo, darkened


def test_render_safetensors_and_npy(capsys, tmp_path, pose_json):
    from safetensors import safe_open

    pose = P.read_pose_json(pose_json)
    out = tmp_path / "pose.safetensors"
    code, stdout, _ = run(capsys, "pose", "render", pose_json, "-o", out)
    assert code == 0 and "21x256x256" in stdout
    with safe_open(str(out), "pt") as file:
        assert np.array_equal(file.get_tensor("pose_image").numpy(), P.pose_image(pose, (256, 256)).numpy())
        meta = file.metadata()
    assert meta["frame"] == "256x176" and meta["size"] == "256x256" and float(meta["sigma"]) == 6.0
    assert json.loads(meta["channels"])[3:] == list(P.JOINT_NAMES)
    npy = tmp_path / "pose.npy"
    assert run(capsys, "pose", "render", pose_json, "--size", "64x48", "--sigma", "3", "-o", npy)[0] == 0
    assert np.array_equal(np.load(npy), P.pose_image(pose, (64, 48), sigma=3).numpy())
    assert_fails(capsys, ["pose", "render", pose_json, "-o", tmp_path / "pose.pt"], "pose.pt", ".safetensors or .npy")


def test_outside_joints_are_noted(capsys, tmp_path):
    row = ROW.replace("[88,89,", "[-18,89,")
    code, _, err = run(capsys, "pose", "convert", row, "-o", tmp_path / "p.json")
    assert code == 0
    assert "note:" in err and "nose" in err and "outside the 256x176 frame" in err


@pytest.mark.parametrize(
    "make_source, extra, fragments",
    [
        (lambda d: d / "missing.json", [], ["missing.json", "no such file"]),
        (lambda d: _write(d / "broken.json", "{"), [], ["broken.json", "is not valid JSON"]),
        (lambda d: _write(d / "empty_op.json", '{"people": []}'), ["--frame", "100x100"], ["has no people"]),
        (lambda d: "x:[1,2,3]:[4,5,6]", [], ["annotation row", "expected 18 y values (OpenPose COCO-18), found 3"]),
        (lambda d: "x:[" + ",".join(["nan"] * 18) + "]:[" + ",".join(["1"] * 18) + "]", [], ["not a finite number"]),
        (lambda d: "x:[" + ",".join(["-1"] * 18) + "]:[" + ",".join(["-1"] * 18) + "]", [], ["no visible joint"]),
        (lambda d: "x:[" + ",".join(["200"] * 18) + "]:[" + ",".join(["100"] * 18) + "]", ["--frame", "64x32"],
         ["frame size right"]),
        (lambda d: "x:[" + ",".join(["20"] * 18) + "]:[" + ",".join(["10"] * 18) + "]", ["--frame", "0x32"],
         ["--frame", "positive"]),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_with_status_2(capsys, tmp_path, make_source, extra, fragments):
    for command in ("convert", "draw"):
        suffix = ".json" if command == "convert" else ".png"
        out = tmp_path / f"out{suffix}"
        assert_fails(capsys, ["pose", command, make_source(tmp_path), *extra, "-o", out], *fragments)
        assert not out.exists()


def _write(path, text):
    path.write_text(text)
    return path


def test_annotation_file_needs_a_name(capsys, tmp_path, annotations):
    assert_fails(capsys, ["pose", "convert", annotations, "-o", tmp_path / "a.json"], "holds 2 annotation rows")
    assert_fails(capsys, ["pose", "convert", annotations, "--name", "nobody.jpg", "-o", tmp_path / "a.json"],
                 "has no row named 'nobody.jpg'")  # fmt: skip


@pytest.mark.parametrize("command", ["convert", "flip", "retarget", "draw", "render"])
def test_help_has_examples(capsys, command):
    code, out, _ = run(capsys, "pose", command, "--help")
    assert code == 0 and "Example" in out and "SOURCE is any of" in out and "cfld pose " + command in out


def test_group_help_lists_commands(capsys):
    code, out, _ = run(capsys, "pose", "--help")
    assert code == 0
    for command in ("convert", "flip", "retarget", "draw", "render"):
        assert command in out


def test_demo_draws_the_gallery_offline(capsys, tmp_path):
    out = tmp_path / "demo"
    for _ in range(2):  # the demo regenerates its own pictures
        code, stdout, _ = run(capsys, "demo", "--output", out, "--pairs", 1, "--steps", 1)
        assert code == 0 and "24 real DeepFashion poses" in stdout  # the model's part: tests/test_demo.py
    grid = P.read_image(out / "pose_gallery.png")
    assert grid.shape == (3 * (256 + 14), 8 * 176, 3)
    first = P.draw_pose(next(iter(P.gallery().values())))
    assert np.array_equal(grid[:256, :176], first)


def test_real_annotation_file(capsys, tmp_path, shared_dir):
    csv = shared_dir / "data" / "deepfashion" / "fasion-resize-annotation-test.csv"
    out = tmp_path / "real.png"
    code, _, _ = run(capsys, "pose", "draw", csv, "--name", FLAT, "--image",
                     shared_dir / "data" / "images" / "women2.jpg", "-o", out)  # fmt: skip
    assert code == 0 and P.read_image(out).shape == P.read_image(shared_dir / "data" / "images" / "women2.jpg").shape
    market = shared_dir / "data" / "market1501" / "market-annotation-test.csv"
    name = market.read_text().splitlines()[2].split(":")[0]
    code, _, _ = run(capsys, "pose", "convert", market, "--name", name, "-o", tmp_path / "market.json")
    assert code == 0 and P.read_pose_json(tmp_path / "market.json").frame == (128, 64)


# -- cfld pose detect with many photos: one detector, faulty photos listed ------------------------------------------

DATA = Path(__file__).resolve().parent / "data"
SUMMARY_KEYS = ["detected", "no_person", "several_people", "too_few_joints", "unreadable"]


def _needs_mediapipe():
    pytest.importorskip("mediapipe", reason="pose detection needs the 'detect' extra (mediapipe==0.10.14)")


def _grey(path, size=(176, 256)):
    from PIL import Image

    Image.new("RGB", size, (128, 128, 128)).save(path)
    return path


def _side_by_side(path, *photos):
    """The photos pasted next to each other on one white canvas (two people in one picture)."""
    from PIL import Image

    pictures = [Image.open(photo).convert("RGB") for photo in photos]
    canvas = Image.new("RGB", (sum(p.width for p in pictures), max(p.height for p in pictures)), (255, 255, 255))
    left = 0
    for picture in pictures:
        canvas.paste(picture, (left, 0))
        left += picture.width
    canvas.save(path)
    return path


def _files(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_detect_folder_with_one_detector_lists_the_photo_without_a_person(capsys, tmp_path, monkeypatch):
    _needs_mediapipe()
    import cfld.commands.pose.detection as detection

    made = []

    class Counting(detection.PoseDetector):
        def __init__(self, *args, **kwargs):
            made.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(detection, "PoseDetector", Counting)
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(DATA / "women1.jpg", photos / "women1.jpg")
    shutil.copy(DATA / "deepfashion_ref_4.png", photos / "ref.png")
    _grey(photos / "blank.png")
    (photos / "notes.txt").write_text("not a photo\n")  # only image suffixes are photos
    out, drawings = tmp_path / "poses", tmp_path / "drawings"
    code, stdout, err = run(capsys, "pose", "detect", photos, "-o", out, "--draw", drawings, "-j", "1")
    assert code == 0, err
    assert len(made) == 1 and made[0].get("segmentation") is True  # one detector for the three photos of a worker
    assert _files(out) == ["detect-summary.json", "ref.json", "women1.json"]
    assert _files(drawings) == ["ref.png", "women1.png"]
    summary = json.loads((out / "detect-summary.json").read_text())
    assert list(summary) == SUMMARY_KEYS
    assert summary == {"detected": ["ref.png", "women1.jpg"], "no_person": ["blank.png"], "several_people": [],
                       "too_few_joints": [], "unreadable": []}
    pose = P.read_pose_json(out / "women1.json")
    assert pose.frame == (256, 176) and pose.num_visible >= 16 and pose.name == "women1.jpg"
    assert P.read_image(drawings / "ref.png").shape == P.read_image(photos / "ref.png").shape
    assert "wrote the poses of 2 of 3 photos" in stdout
    assert "blank.png: no person found in the photo" in stdout
    assert re.search(r"^3 photos in [\d.]+ s \(\d+ ms per photo\)$", stdout, re.M), stdout
    assert "detecting poses" in err  # the progress bar
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left behind


def test_detect_two_people_side_by_side_are_listed(capsys, tmp_path, shared_dir):
    _needs_mediapipe()
    other = shared_dir / "data" / "deepfashion-real" / "images" / "fashionMENShirts_Polosid0000154003_1front.png"
    two = _side_by_side(tmp_path / "two.png", DATA / "deepfashion_ref_4.png", other)
    unreadable = tmp_path / "broken.jpg"
    unreadable.write_bytes(b"not a jpeg")
    out = tmp_path / "poses"
    code, stdout, err = run(capsys, "pose", "detect", two, DATA / "women1.jpg", unreadable, "-o", out, "--no-progress")
    assert code == 0, err
    assert "detecting poses" not in err
    summary = json.loads((out / "detect-summary.json").read_text())
    assert summary == {"detected": ["two.png", "women1.jpg"], "no_person": [], "several_people": ["two.png"],
                       "too_few_joints": [], "unreadable": ["broken.jpg"]}
    assert P.read_pose_json(out / "two.json").num_visible >= 14  # the most prominent person's pose is written
    assert "broken.jpg: cannot be read as an image" in stdout
    assert "several people in 1 photo" in stdout and "  two.png" in stdout
    # one photo: the pose is written, and a note says there were several people
    code, stdout, err = run(capsys, "pose", "detect", two, "-o", tmp_path / "one.json")
    assert code == 0 and "18 joints found" in stdout
    assert err.strip() == f"note: {two}: shows more than one person; the pose written is the most prominent one's"


def test_detect_photos_with_the_same_stem_are_refused_before_anything_is_written(capsys, tmp_path):
    for folder, name in (("a", "photo.jpg"), ("b", "Photo.png")):
        (tmp_path / folder).mkdir()
        shutil.copy(DATA / "women1.jpg", tmp_path / folder / name)
    out = tmp_path / "poses"
    assert_fails(capsys, ["pose", "detect", tmp_path / "a", tmp_path / "b", "-o", out],
                 "Photo.png", "same name stem as", "photo.jpg", "rename one")
    shutil.copy(DATA / "women1.jpg", tmp_path / "a" / "photo.png")  # within one folder too
    assert_fails(capsys, ["pose", "detect", tmp_path / "a", "-o", out], "photo.png", "same name stem")
    _grey(tmp_path / "detect-summary.png")
    assert_fails(capsys, ["pose", "detect", tmp_path / "b", tmp_path / "detect-summary.png", "-o", out],
                 "detect-summary.json", "the run's summary")
    assert not out.exists()


def test_detect_many_never_overwrites_without_overwrite(capsys, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(DATA / "women1.jpg", photos / "women1.jpg")
    _grey(photos / "blank.png")
    out = tmp_path / "poses"
    out.mkdir()
    (out / "women1.json").write_text("precious")
    assert_fails(capsys, ["pose", "detect", photos, "-o", out], "women1.json", "already exists", "--overwrite")
    (out / "detect-summary.json").write_text("precious too")
    assert_fails(capsys, ["pose", "detect", photos, "-o", out], "already exists (and 1 more", "--overwrite")
    assert _files(out) == ["detect-summary.json", "women1.json"] and (out / "women1.json").read_text() == "precious"
    # the drawings would replace the photos themselves: refused even with --overwrite
    shutil.copy(DATA / "deepfashion_ref_4.png", photos / "ref.png")
    assert_fails(capsys, ["pose", "detect", photos, "-o", out, "--draw", photos, "--overwrite"],
                 "blank.png", "is one of the photos, which an output would replace")
    assert (out / "women1.json").read_text() == "precious"
    _needs_mediapipe()
    code, stdout, err = run(capsys, "pose", "detect", photos, "-o", out, "--overwrite", "--no-progress")
    assert code == 0, err
    assert P.read_pose_json(out / "women1.json").num_visible >= 16
    assert json.loads((out / "detect-summary.json").read_text())["no_person"] == ["blank.png"]


@pytest.mark.parametrize(
    "make, fragments",
    [
        (lambda d: [_mkdir(d / "empty")], ["empty", "is a folder with nothing in it"]),
        (lambda d: [_write(_mkdir(d / "texts") / "a.txt", "x").parent],
         ["texts", "is a folder without photos", ".webp"]),
        (lambda d: [DATA / "women1.jpg", d / "missing.png"], ["missing.png", "no such file or folder"]),
        (lambda d: [DATA / "women1.jpg", DATA / "women2.jpg", "-o", _write(d / "taken.txt", "x")],
         ["taken.txt", "is a file", "-o names a folder"]),
        (lambda d: [DATA / "women1.jpg", DATA / "women2.jpg", "-o", d / "poses.json"],
         ["poses.json", "looks like a file name", "-o names a folder"]),
        (lambda d: [DATA / "women1.jpg", DATA / "women2.jpg", "--draw", d / "drawing.png"],
         ["drawing.png", "--draw names a folder"]),
        (lambda d: [DATA / "women1.jpg", "-o", _mkdir(d / "a_folder")], ["a_folder", "is a folder", "one PHOTO"]),
    ],
)  # fmt: skip
def test_detect_bad_inputs_are_one_line(capsys, tmp_path, make, fragments):
    args = [str(a) for a in make(tmp_path)]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "out")]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert_fails(capsys, ["pose", "detect", *args], *fragments)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


def test_detect_many_fails_when_no_photo_gives_a_pose(capsys, tmp_path):
    _needs_mediapipe()
    photos = _mkdir(tmp_path / "photos")
    _grey(photos / "blank.png")
    _write(photos / "broken.png", "not a png")
    out = tmp_path / "poses"
    code, stdout, err = run(capsys, "pose", "detect", photos, "-o", out, "--no-progress")
    assert code == 2
    assert err.strip().splitlines() == [f"error: {photos}: none of the 2 photos gave a pose (1 without a person, "
                                        "1 unreadable); nothing was written"]
    assert "blank.png: no person found" in stdout and "broken.png: cannot be read as an image" in stdout
    assert not out.exists()


def test_detect_help_shows_both_forms(capsys):
    code, out, _ = run(capsys, "pose", "detect", "--help")
    assert code == 0
    for text in ("cfld pose detect PHOTO -o pose.json", "cfld pose detect FOLDER -o DIR [--draw DIR2]",
                 "detect-summary.json", "several_people", "cfld pose detect photos/ -o poses/ --draw drawings/"):
        assert text in out, text


def _mkdir(path):
    path.mkdir(parents=True)
    return path

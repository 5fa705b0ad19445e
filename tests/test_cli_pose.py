"""`cfld pose ...` and `cfld demo` through the real entry point, cfld.cli.main."""

from __future__ import annotations

import json

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

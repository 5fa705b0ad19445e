"""The pose check of the generating commands (issue 31): `cfld transfer`, `animate` and `edit` score every result
against the pose it was asked for, print a line each, warn about each one that misses it (naming the file), and
write the scores beside the results; --pose-threshold moves the warning, --no-pose-check turns it all off.

The tiny reference model makes noise, in which nobody is found: its results all miss their poses. A real
DeepFashion photo scored against its own published keypoints is the case that passes.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image

from cfld.pose import gallery, write_pose_json
from conftest import SHARED, assert_fails, run

DATA = Path(__file__).resolve().parent / "data"
PHOTO, OTHER = DATA / "women1.jpg", DATA / "women2.jpg"
REAL = SHARED / "data" / "deepfashion-real"
ROW = ("[34,59,56,89,108,62,92,107,119,173,218,120,168,215,29,29,31,32]:"
       "[104,99,79,68,71,119,122,118,82,75,75,107,102,96,99,108,92,113]")  # an annotation row: pose1
FAST = ["--steps", "1", "--size", "64x44"]
COLUMNS = ["file", "pckh", "pck", "found", "person_found", "joints", "misses_pose"]


@pytest.fixture
def mediapipe():
    pytest.importorskip("mediapipe", reason="the pose check needs the 'detect' extra")


@pytest.fixture
def pose_file(tmp_path) -> Path:
    table = gallery()
    return write_pose_json(table[table.names[0]], tmp_path / "front.json")


def read_scores(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def assert_checked(stdout: str, err: str, results: dict[str, str], scores: Path) -> None:
    """Each result of ``results`` ({what its line starts with: what its warning names}) has its line and its
    warning, and the summary and the scores file are written."""
    for line, named in results.items():
        assert f"\n{line}: no person found (0 of " in stdout or f"\n{line}: PCKh " in stdout, stdout
        assert f"warning: {named} misses its target pose (PCK@0.1 " in err, err
    assert f"pose check: {len(results)} results in " in stdout and f"{len(results)} below PCK@0.1 0.5" in stdout
    assert f"wrote {scores}" in stdout


def test_transfer_scores_each_result(tiny_model_dir, pose_file, tmp_path, capsys, mediapipe):
    out = tmp_path / "out"
    args = ["transfer", "-s", PHOTO, "-p", pose_file, "-p", ROW, "-m", tiny_model_dir, "-o", out, *FAST]
    code, stdout, err = run(capsys, *args)
    assert code == 0, err
    names = ["women1_to_front.png", "women1_to_pose1.png"]
    assert_checked(stdout, err, {name: out / name for name in names}, out / "scores.csv")
    scores = read_scores(out / "scores.csv")
    assert [row["file"] for row in scores] == names
    assert all(row["misses_pose"] == "true" and float(row["pck"]) < 0.5 for row in scores)
    assert {row["joints"] for row in scores} == {"18"}

    # scores.csv is one of the results: never replaced silently, refused before anything slow
    for name in names:
        (out / name).unlink()
    assert_fails(capsys, args, f"{out / 'scores.csv'}: already exists", "--overwrite")
    assert not (out / names[0]).exists()
    # --no-pose-check: no line, no scores.csv written (so the one there is not in the way, and is left as it was)
    before = (out / "scores.csv").read_text()
    code, stdout, err = run(capsys, *args, "--no-pose-check", "--pose-threshold", "1")
    assert code == 0, err
    assert "PCK" not in stdout and "pose check" not in stdout and "warning" not in err
    assert (out / "scores.csv").read_text() == before and (out / names[0]).is_file()
    # --pose-threshold 0: nothing is below it, no warning
    code, stdout, err = run(capsys, *args, "--overwrite", "--pose-threshold", "0")
    assert code == 0, err
    assert "warning" not in err and "0 below PCK@0.1 0.0" in stdout
    assert [row["misses_pose"] for row in read_scores(out / "scores.csv")] == ["false", "false"]


def test_a_bad_threshold_is_one_line(pose_file, tmp_path, capsys):
    for command in (["transfer", "-s", PHOTO, "-p", pose_file, "-o", tmp_path / "o"],
                    ["edit", "interpolate", "-a", PHOTO, "-b", OTHER, "-p", pose_file, "-o", tmp_path / "s.png"]):
        assert_fails(capsys, [*command, "-m", "demo", "--pose-threshold", "2"], "--pose-threshold", "0<=x<=1")
    assert not (tmp_path / "o").exists() and not (tmp_path / "s.png").exists()


def test_animate_scores_each_frame(tiny_model_dir, tmp_path, capsys, mediapipe):
    table = gallery()
    poses = tmp_path / "poses"
    poses.mkdir()
    for i in range(2):
        write_pose_json(table[table.names[i]], poses / f"{i}.json")
    out = tmp_path / "out"
    out.mkdir()
    (out / "scores.csv").write_text("an earlier run's\n")
    args = ["animate", "-s", PHOTO, "-p", poses, "-m", tiny_model_dir, "-o", out, "--no-mp4", *FAST]
    assert_fails(capsys, args, f"{out / 'scores.csv'}: already exists")
    assert not (out / "frame_0000.png").exists()
    code, stdout, err = run(capsys, *args, "--overwrite")
    assert code == 0, err
    frames = ["frame_0000.png", "frame_0001.png"]
    assert_checked(stdout, err, {name: out / name for name in frames}, out / "scores.csv")
    assert [(row["file"], row["misses_pose"]) for row in read_scores(out / "scores.csv")] == [
        (name, "true") for name in frames]
    assert sorted(p.name for p in out.iterdir()) == ["animation.gif", *frames, "scores.csv"]


def test_edit_interpolate_scores_each_image_of_the_strip(tiny_model_dir, pose_file, tmp_path, capsys, mediapipe):
    strip = tmp_path / "strip.png"
    (tmp_path / "strip_scores.csv").write_text("an earlier run's\n")
    args = ["edit", "interpolate", "-a", PHOTO, "-b", OTHER, "-p", pose_file, "-n", "2", "-m", tiny_model_dir,
            "-o", strip, *FAST]
    assert_fails(capsys, args, f"{tmp_path / 'strip_scores.csv'}: already exists")
    assert not strip.exists()
    code, stdout, err = run(capsys, *args, "--overwrite")
    assert code == 0, err
    assert_checked(stdout, err, {"strip.png panel 1 (weight 0.00)": f"{strip} panel 1",
                                 "strip.png panel 2 (weight 1.00)": f"{strip} panel 2"}, tmp_path / "strip_scores.csv")
    scores = read_scores(tmp_path / "strip_scores.csv")
    assert [(row["file"], row["misses_pose"]) for row in scores] == [("strip.png panel 1", "true"),
                                                                      ("strip.png panel 2", "true")]


def test_help_tells_of_the_pose_check(capsys):
    for command in (["transfer"], ["animate"], ["edit", "style-transfer"], ["edit", "interpolate"]):
        code, out, _ = run(capsys, *command, "--help")
        assert code == 0
        text = " ".join(out.split()).replace("- ", "-")  # click breaks lines after a hyphen too
        assert "--pose-threshold SHARE" in text and "--no-pose-check" in text and "docs/pose-check.md" in text
        assert ("_scores.csv" if command[0] == "edit" else "scores.csv") in text


def test_a_real_photo_in_its_own_pose_passes(capsys, mediapipe):
    """A real DeepFashion photo scored against its own published keypoints: no warning, PCKh high; also at
    another size (the target is stretched onto the image, as a pose image is drawn)."""
    if not (REAL / "keypoints.csv").is_file():
        pytest.skip(f"needs ../shared/data/deepfashion-real (real DeepFashion photos with their keypoints; looked in "
                    f"{REAL})")
    from cfld.commands.pose_check import PoseCheck
    from cfld.pose import flat_name, read_annotation_csv

    table = read_annotation_csv(REAL / "keypoints.csv")
    name = "fashion/MEN/Jackets_Vests/id_00000653/04_1_front.jpg"
    photo = REAL / "images" / flat_name(name).replace(".jpg", ".png")
    picture = Image.open(photo).convert("RGB")
    assert (picture.height, picture.width) == table[name].frame
    check = PoseCheck()
    scores = check.run([(photo, picture, table[name]), (Path("small.png"), picture.resize((88, 128)), table[name])],
                       label=lambda path: path.name)
    stdout, err = capsys.readouterr()
    assert err == "" and "0 below PCK@0.1 0.5" in stdout
    assert f"{photo.name}: PCKh " in stdout and "small.png: PCKh " in stdout
    for score in scores:
        assert score.person and score.pckh >= 0.9 and score.pck >= 0.9 and not score.misses()

"""`cfld transfer` end to end, offline, on the reference's random-weight model saved in our format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from cfld.cli import main
from cfld.pose import gallery, write_pose_json

PHOTO = Path(__file__).resolve().parent / "data" / "women1.jpg"


def test_transfer_writes_results_and_grid(tiny_model_dir, tmp_path, capsys):
    table = gallery()
    pose_file = write_pose_json(table[table.names[0]], tmp_path / "front.json")
    row = "[34,59,56,89,108,62,92,107,119,173,218,120,168,215,29,29,31,32]:[104,99,79,68,71,119,122,118,82,75,75,107,102,96,99,108,92,113]"
    out = tmp_path / "out"
    args = ["transfer", "-s", str(PHOTO), "-p", str(pose_file), "-p", row, "-m", str(tiny_model_dir),
            "-o", str(out), "--steps", "2", "--seed", "5", "--grid", "--size", "128x88"]
    assert main(args) == 0
    results = sorted(p.name for p in out.glob("*.png"))
    assert results == ["grid.png", "women1_to_front.png", "women1_to_pose1.png"]
    image = Image.open(out / "women1_to_front.png")
    assert image.size == (88, 128)
    assert Image.open(out / "grid.png").size == (3 * 88, 2 * 128)
    first = np.asarray(image).copy()

    # results are never replaced silently; with --overwrite the same seed gives the same image
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
    assert np.array_equal(np.asarray(Image.open(out / "women1_to_front.png")), first)


def test_transfer_explains_missing_weights(tmp_path, capsys):
    code = main(["transfer", "-s", str(PHOTO), "-p", "x.json", "-m", str(tmp_path), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "is not a CFLD model" in err and "pytorch_model_1.bin" in err


def test_transfer_help_lists_the_options(capsys):
    assert main(["transfer", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--source", "--pose", "--model", "--steps", "--scheduler", "--guidance-pose",
                   "--guidance-appearance", "--seed", "--size", "--grid"):
        assert option in text


def test_transfer_pose_from_another_photo(tiny_model_dir, tmp_path, capsys):
    """--pose-from detects the pose in one photo and fits it into the source's frame; the grid shows it."""
    import pytest

    pytest.importorskip("mediapipe", reason="--pose-from needs the 'detect' extra")
    from cfld.pose import PoseDetector, pose_image, retarget

    other = PHOTO.parent / "women2.jpg"
    square = tmp_path / "square.png"  # a source of another shape: the pose must be fitted into its frame
    Image.open(PHOTO).resize((200, 200)).save(square)
    out = tmp_path / "out"
    args = ["transfer", "-s", str(square), "--pose-from", str(other), "-m", str(tiny_model_dir), "-o", str(out),
            "--steps", "2", "--size", "128x88", "--grid"]
    assert main(args) == 0
    assert "women2.jpg: 18 of 18 joints found" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("*.png")) == ["grid.png", "square_to_women2.png"]
    grid = np.asarray(Image.open(out / "grid.png")).astype(np.float32) / 255

    # the middle cell of the grid is the detected pose retargeted into the 200x200 source frame, not the
    # pose in its own 256x176 frame stretched like the square source
    from cfld.images import resize_output
    from cfld.pipeline import CFLDPipeline

    with PoseDetector() as detector:
        own = detector(other)
    pose_size = CFLDPipeline.from_pretrained(tiny_model_dir).config.pose_size

    def drawn(pose):
        picture = resize_output(pose_image(pose, pose_size)[None, :3], (128, 88))[0]
        return picture.clamp(0, 1).permute(1, 2, 0).numpy()

    cell = grid[:, 88:176]
    assert np.abs(cell - drawn(retarget(own, (200, 200)))).mean() < 0.01
    assert np.abs(cell - drawn(own)).mean() > 2 * np.abs(cell - drawn(retarget(own, (200, 200)))).mean()


def test_transfer_needs_a_pose(tiny_model_dir, tmp_path, capsys):
    assert main(["transfer", "-s", str(PHOTO), "-m", str(tiny_model_dir), "-o", str(tmp_path)]) == 2
    assert "--pose-from" in capsys.readouterr().err

"""Animation: a folder of poses or video frames -> frames, GIF and MP4, the source encoded once."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cfld import animation as A
from cfld.cli import main
from cfld.errors import InputError
from cfld.pose import gallery, write_pose_json

DATA = Path(__file__).resolve().parent / "data"
PHOTO = DATA / "women1.jpg"


def _pose_folder(folder: Path, picks: list[int]) -> Path:
    table = gallery()
    folder.mkdir()
    for i, pick in enumerate(picks):  # names whose natural order differs from their string order
        write_pose_json(table[table.names[pick]], folder / f"pose{i * 5}.json")
    return folder


def test_sequence_files_natural_order_and_clear_errors(tmp_path):
    folder = _pose_folder(tmp_path / "poses", [0, 1, 2, 3])
    kind, files = A.sequence_files(folder)
    assert kind == "poses" and [f.name for f in files] == ["pose0.json", "pose5.json", "pose10.json", "pose15.json"]

    with pytest.raises(InputError, match="no pose files"):
        A.sequence_files(_empty(tmp_path))
    shutil.copy(PHOTO, folder / "frame1.jpg")
    with pytest.raises(InputError, match="both pose files"):
        A.sequence_files(folder)
    with pytest.raises(InputError, match="is not a folder"):
        A.sequence_files(tmp_path / "missing")


def _empty(tmp_path: Path) -> Path:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.md").write_text("nothing here")
    return empty


def test_gif_and_mp4_writers(tmp_path):
    frames = [Image.new("RGB", (45, 64), (i * 60, 100, 200 - i * 60)) for i in range(4)]
    gif = A.write_gif(frames, tmp_path / "a.gif", fps=10)
    with Image.open(gif) as opened:
        assert opened.n_frames == 4 and opened.info["duration"] == 100 and opened.info["loop"] == 0
    mp4 = A.write_mp4(frames, tmp_path / "a.mp4", fps=10)
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    reader = imageio_ffmpeg.read_frames(str(mp4))
    meta = next(reader)
    decoded = [np.frombuffer(f, np.uint8).reshape(64, 46, 3) for f in reader]
    assert meta["size"] == (46, 64) and meta["fps"] == 10 and len(decoded) == 4  # odd width padded to even
    assert abs(int(decoded[3][30, 20, 0]) - 180) < 12  # the colours survive the encoding
    with pytest.raises(InputError, match="already exists"):
        A.write_mp4(frames, mp4)
    with pytest.raises(InputError, match="one size"):
        A.write_gif([frames[0], Image.new("RGB", (8, 8))], tmp_path / "b.gif")


def test_cli_animate_from_pose_files(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from cfld.pipeline import CFLDPipeline

    calls = []
    encode = CFLDPipeline.encode_source
    monkeypatch.setattr(CFLDPipeline, "encode_source", lambda self, s: calls.append(s) or encode(self, s))
    folder = _pose_folder(tmp_path / "poses", [0, 5, 0])  # the first pose comes back in the third frame
    out = tmp_path / "out"
    args = ["animate", "-s", str(PHOTO), "-p", str(folder), "-m", str(tiny_model_dir), "-o", str(out),
            "--steps", "2", "--size", "128x88", "--fps", "4", "--with-pose"]
    assert main(args) == 0
    assert "3 poses from poses" in capsys.readouterr().out
    assert len(calls) == 1  # the source is encoded once for all frames
    frames = [np.asarray(Image.open(out / f"frame_{i:04d}.png")) for i in range(3)]
    assert frames[0].shape == (128, 88, 3)
    # same noise, deterministic DDIM: the same pose gives the same frame, another pose another one
    assert np.array_equal(frames[0], frames[2])
    assert np.abs(frames[0].astype(int) - frames[1]).mean() > 1
    with Image.open(out / "animation.gif") as gif:
        assert gif.n_frames == 3 and gif.size == (2 * 88, 128) and gif.info["duration"] == 250
    assert (out / "animation.mp4").stat().st_size > 0

    assert main(args) == 2  # never overwritten silently
    assert "already exists" in capsys.readouterr().err


def test_cli_animate_from_video_frames(tiny_model_dir, shared_dir, tmp_path):
    pytest.importorskip("mediapipe", reason="poses of video frames are detected with the 'detect' extra")
    frames_dir = tmp_path / "clip"
    frames_dir.mkdir()
    for i, name in enumerate(["women2.jpg", "women3.jpg"]):
        shutil.copy(shared_dir / "data" / "images" / name, frames_dir / f"{i:03d}.jpg")
    out = tmp_path / "out"
    assert main(["animate", "-s", str(PHOTO), "-p", str(frames_dir), "-m", str(tiny_model_dir), "-o", str(out),
                 "--steps", "1", "--size", "64x44", "--no-mp4"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["animation.gif", "frame_0000.png", "frame_0001.png"]

    poses = A.load_pose_sequence(frames_dir, PHOTO, progress=False)
    assert [p.frame for p in poses] == [(256, 176)] * 2 and all(p.num_visible >= 16 for p in poses)


def test_cli_animate_rejects_a_folder_without_person(tiny_model_dir, tmp_path, capsys):
    pytest.importorskip("mediapipe")
    folder = tmp_path / "clip"
    folder.mkdir()
    Image.new("RGB", (176, 256), (200, 200, 200)).save(folder / "0.png")
    assert main(["animate", "-s", str(PHOTO), "-p", str(folder), "-m", str(tiny_model_dir),
                 "-o", str(tmp_path / "o")]) == 2
    assert "0.png: no person found" in capsys.readouterr().err

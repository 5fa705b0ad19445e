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
    monkeypatch.setattr(CFLDPipeline, "encode_source",
                        lambda self, s, *a, **k: calls.append(s) or encode(self, s, *a, **k))
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
    assert sorted(p.name for p in out.iterdir()) == ["animation.gif", "frame_0000.png", "frame_0001.png",
                                                     "scores.csv"]  # scores.csv: the pose check's

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


# -- framing: the source and the video frames framed as the training photos are ---------------------------------


def _canvas(top: int, left: int, photo: Path = PHOTO, height: int = 225) -> Image.Image:
    """``photo`` pasted into a wide 450x800 photo at half its height, at (top, left)."""
    picture = Image.open(photo).convert("RGB")
    canvas = Image.new("RGB", (800, 450), (200, 190, 180))
    canvas.paste(picture.resize((round(height * picture.width / picture.height), height), Image.BICUBIC), (left, top))
    return canvas


def test_framed_video_frames_keep_the_moves():
    """Each frame is framed, and with fit="frame" their poses share one crop, so a jump still rises and a step
    sideways still moves (by the distance in the clip, scaled into the crop); fit="body" places each frame's
    person on their own, like a training photo."""
    pytest.importorskip("mediapipe", reason="framing needs the 'detect' extra")
    from cfld.framing import Framer

    places = [(150, 520), (100, 520), (150, 460)]  # standing, 50 px higher (a jump), 60 px to the left (a step)
    frames = [_canvas(top, left) for top, left in places]
    with Framer() as framer:
        crops = [framer(frame, "frame").crop for frame in frames]
        kept = A.framed_pose_sequence(frames, framer, fit="frame", progress=False)
        each = A.framed_pose_sequence(frames, framer, fit="body", progress=False)
        smaller = A.framed_pose_sequence(frames, framer, (128, 88), fit="frame", progress=False)
    assert all(p.frame == (256, 176) for p in kept + each) and all(p.frame == (128, 88) for p in smaller)
    # the shared crop: the union of the frames' crops, grown to the model's shape
    top = min(c.top for c in crops)
    height = max(c.top + c.height for c in crops) - top
    width = max(max(c.left + c.width for c in crops) - min(c.left for c in crops), height * 176 / 256)
    scale_y, scale_x = 256 / max(height, width * 256 / 176), 176 / width
    both = kept[0].visible & kept[1].visible & kept[2].visible
    assert both.sum() >= 14
    rise = np.median(kept[0].xy[both, 1] - kept[1].xy[both, 1])
    step = np.median(kept[0].xy[both, 0] - kept[2].xy[both, 0])
    assert rise == pytest.approx(50 * scale_y, abs=3) and step == pytest.approx(60 * scale_x, abs=3)
    assert abs(np.median(kept[0].xy[both, 0] - kept[1].xy[both, 0])) < 2  # the jump does not move sideways
    # one by one: the same pose in every frame, wherever the person stands
    for pose in each[1:]:
        assert np.median(np.linalg.norm(pose.xy[both] - each[0].xy[both], axis=1)) < 3
    assert np.allclose(smaller[0].xy[both], (kept[0].xy[both] + 0.5) * [88 / 176, 128 / 256] - 0.5, atol=1e-6)


def test_cli_animate_frames_the_source_and_the_video_frames(tmp_path, capsys):
    pytest.importorskip("mediapipe", reason="framing needs the 'detect' extra")
    clip = tmp_path / "clip"
    clip.mkdir()
    for i, (top, left) in enumerate([(150, 520), (100, 520)]):
        _canvas(top, left, DATA / "women2.jpg").save(clip / f"{i}.png")
    source = tmp_path / "wide.png"
    _canvas(100, 300, height=300).save(source)
    out = tmp_path / "out"
    assert main(["animate", "-s", str(source), "-p", str(clip), "-m", "demo", "-o", str(out), "--steps", "1",
                 "--size", "64x44", "--no-mp4", "--save-framed"]) == 0
    stdout = capsys.readouterr().out
    assert f"{source}: framed (a " in stdout and "2 poses from frames" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["animation.gif", "frame_0000.png", "frame_0001.png",
                                                     "scores.csv", "wide_framed.json", "wide_framed.png"]
    import json

    assert json.loads((out / "wide_framed.json").read_text())["framed"] is True
    assert Image.open(out / "frame_0000.png").size == (44, 64)

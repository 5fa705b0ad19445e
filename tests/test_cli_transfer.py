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
    row = ("[34,59,56,89,108,62,92,107,119,173,218,120,168,215,29,29,31,32]:"
           "[104,99,79,68,71,119,122,118,82,75,75,107,102,96,99,108,92,113]")
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
    table = gallery()
    pose_file = write_pose_json(table[table.names[0]], tmp_path / "front.json")
    code = main(["transfer", "-s", str(PHOTO), "-p", str(pose_file), "-m", str(tmp_path), "-o", str(tmp_path / "o"),
                 "--no-frame"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "is not a CFLD model" in err and "pytorch_model_1.bin" in err


def test_transfer_help_lists_the_options(capsys):
    assert main(["transfer", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--source", "--pose", "--model", "--steps", "--scheduler", "--guidance-pose",
                   "--guidance-appearance", "--seed", "--size", "--grid", "--no-frame", "--save-framed"):
        assert option in text


def test_transfer_pose_from_another_photo(tiny_model_dir, tmp_path, capsys):
    """--pose-from with --no-frame detects the pose in one photo and fits it into the source's frame; the grid
    shows it."""
    import pytest

    pytest.importorskip("mediapipe", reason="--pose-from needs the 'detect' extra")
    from cfld.pose import PoseDetector, pose_image, retarget

    other = PHOTO.parent / "women2.jpg"
    square = tmp_path / "square.png"  # a source of another shape: the pose must be fitted into its frame
    Image.open(PHOTO).resize((200, 200)).save(square)
    out = tmp_path / "out"
    args = ["transfer", "-s", str(square), "--pose-from", str(other), "-m", str(tiny_model_dir), "-o", str(out),
            "--steps", "2", "--size", "128x88", "--grid", "--no-frame"]
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
    pose_size = CFLDPipeline.from_pretrained(tiny_model_dir).model.config.pose_size

    def drawn(pose):
        picture = resize_output(pose_image(pose, pose_size)[None, :3], (128, 88))[0]
        return picture.clamp(0, 1).permute(1, 2, 0).numpy()

    cell = grid[:, 88:176]
    assert np.abs(cell - drawn(retarget(own, (200, 200)))).mean() < 0.01
    assert np.abs(cell - drawn(own)).mean() > 2 * np.abs(cell - drawn(retarget(own, (200, 200)))).mean()


def test_transfer_needs_a_pose(tiny_model_dir, tmp_path, capsys):
    assert main(["transfer", "-s", str(PHOTO), "-m", str(tiny_model_dir), "-o", str(tmp_path)]) == 2
    assert "--pose-from" in capsys.readouterr().err


# -- framing: each photo framed as the training photos are, before the model sees it -----------------------------


def _canvas(photo: Path, path: Path, top: int = 100, left: int = 520, height: int = 225) -> tuple[int, int, int, int]:
    """``photo`` pasted off-centre into a wide 450x800 photo, at half its height; the rectangle (top, left, H, W)."""
    picture = Image.open(photo).convert("RGB")
    width = round(height * picture.width / picture.height)
    canvas = Image.new("RGB", (800, 450), (200, 190, 180))
    canvas.paste(picture.resize((width, height), Image.BICUBIC), (left, top))
    canvas.save(path)
    return top, left, height, width


def _old_transfer(source, pose, seed=0, steps=2, size=(64, 44)):
    """What `cfld transfer -m demo` made before framing: the photo itself, stretched by the pipeline."""
    import torch

    from cfld.images import load_image
    from cfld.model_names import demo_model_dir
    from cfld.pipeline import CFLDPipeline

    pipe = CFLDPipeline.from_pretrained(demo_model_dir())
    encoding = pipe.encode_source([load_image(source)], frame=False).select(torch.tensor([0]))
    result = pipe(encoding, pipe.pose_images([pose]), paired=True, num_inference_steps=steps,
                  generator=torch.Generator().manual_seed(seed), output_size=size, progress=False)
    return np.asarray(result.images[0])


def test_transfer_frames_a_wide_photo_and_saves_the_crop(tmp_path, capsys):
    """A wide photo is framed around its person before the model sees it: --save-framed keeps the framed picture
    and the crop box; --no-frame gives what the command gave before framing, bit for bit."""
    import json

    import pytest

    pytest.importorskip("mediapipe", reason="framing needs the 'detect' extra")
    from cfld.pose import pose_from_json

    table = gallery()
    pose_file = write_pose_json(table[table.names[0]], tmp_path / "front.json")
    wide = tmp_path / "wide.png"
    rect = _canvas(PHOTO, wide)
    out = tmp_path / "out"
    common = ["transfer", "-s", str(wide), "-p", str(pose_file), "-m", "demo", "--steps", "2", "--size", "64x44"]
    assert main([*common, "-o", str(out), "--save-framed"]) == 0
    stdout = capsys.readouterr().out
    assert f"{wide}: framed (a " in stdout and "of the 450x800 photo, HxW)" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["scores.csv", "wide_framed.json", "wide_framed.png",
                                                     "wide_to_front.png"]  # scores.csv: the pose check's
    record = json.loads((out / "wide_framed.json").read_text())
    assert record["framed"] is True and record["photo_size"] == [450, 800] and record["size"] == [64, 44]
    crop = record["crop"]
    found = (crop["top"], crop["left"], crop["height"], crop["width"])
    assert max(abs(a - b) for a, b in zip(found, rect)) <= 0.05 * rect[2], (found, rect)
    assert pose_from_json(record["pose"]).frame == (64, 44)
    assert Image.open(out / "wide_framed.png").size == (44, 64)
    framed_result = np.asarray(Image.open(out / "wide_to_front.png"))

    # --no-frame: the old behaviour, the whole wide photo stretched
    assert main([*common, "-o", str(tmp_path / "plain"), "--no-frame"]) == 0
    assert "framed" not in capsys.readouterr().out
    old = np.asarray(Image.open(tmp_path / "plain" / "wide_to_front.png"))
    assert np.array_equal(old, _old_transfer(wide, pose_file))
    assert not np.array_equal(old, framed_result)

    # --save-framed needs something framed; results and framed files are never replaced silently
    assert main([*common, "-o", str(out), "--save-framed", "--no-frame"]) == 2
    assert "--save-framed" in capsys.readouterr().err
    (out / "wide_to_front.png").unlink()
    assert main([*common, "-o", str(out), "--save-framed"]) == 2
    assert "wide_framed.png: already exists" in capsys.readouterr().err
    assert not (out / "wide_to_front.png").exists()


def test_transfer_of_a_dataset_photo_is_the_same_framed_or_not(tmp_path, capsys):
    """A photo framed like the training photos (a DeepFashion photo) goes through framing unchanged: the result is
    bit for bit the one of --no-frame, and the one before framing existed."""
    import pytest

    pytest.importorskip("mediapipe", reason="framing needs the 'detect' extra")
    table = gallery()
    pose_file = write_pose_json(table[table.names[3]], tmp_path / "side.json")
    common = ["transfer", "-s", str(PHOTO), "-p", str(pose_file), "-m", "demo", "--steps", "2", "--size", "64x44",
              "--seed", "3"]
    assert main([*common, "-o", str(tmp_path / "framed")]) == 0
    assert f"{PHOTO}: already framed, used as it is" in capsys.readouterr().out
    assert main([*common, "-o", str(tmp_path / "plain"), "--no-frame"]) == 0
    framed, plain = (np.asarray(Image.open(tmp_path / d / "women1_to_side.png")) for d in ("framed", "plain"))
    assert np.array_equal(framed, plain)
    assert np.array_equal(plain, _old_transfer(PHOTO, pose_file, seed=3))


def test_transfer_pose_from_a_framed_photo(tmp_path, capsys):
    """--pose-from frames the pose photo too: its pose is detected in its own framed crop, which has the shape of
    the sources' framed pictures, and used there as it is; wherever the two people stand in their photos."""
    import pytest

    pytest.importorskip("mediapipe", reason="framing needs the 'detect' extra")
    from cfld.framing import Framer
    from cfld.images import resize_output
    from cfld.model_names import demo_model_dir
    from cfld.pipeline import CFLDPipeline
    from cfld.pose import pose_image

    source, dancer = tmp_path / "source.png", tmp_path / "dancer.png"
    _canvas(PHOTO, source, top=100, left=520)
    _canvas(PHOTO.parent / "women2.jpg", dancer, top=60, left=80, height=300)  # elsewhere, larger
    out = tmp_path / "out"
    assert main(["transfer", "-s", str(source), "--pose-from", str(dancer), "-m", "demo", "-o", str(out),
                 "--steps", "1", "--size", "128x88", "--grid"]) == 0
    stdout = capsys.readouterr().out
    assert f"{source}: framed (a " in stdout and f"{dancer}: framed (a " in stdout
    assert f"{dancer}: " in stdout and "of 18 joints found" in stdout
    assert sorted(p.name for p in out.glob("*.png")) == ["grid.png", "source_to_dancer.png"]

    with Framer((128, 88)) as framer:
        framed = framer(dancer, str(dancer))
        own = framer(PHOTO.parent / "women2.jpg").pose  # the dancer's own (already framed) photo
    assert framed.pose.frame == (128, 88)
    # the framed pose is where the dancer stands in their own DeepFashion photo: framing undoes the canvas
    both = framed.pose.visible & own.visible
    scale = np.array([88 / 176, 128 / 256])
    error = np.linalg.norm(framed.pose.xy[both] - ((own.xy[both] + 0.5) * scale - 0.5), axis=1)
    assert both.sum() >= 14 and np.median(error) < 0.04 * 128

    # the grid's middle cell is the framed pose photo's pose, as it is
    pose_size = CFLDPipeline.from_pretrained(demo_model_dir()).model.config.pose_size
    grid = np.asarray(Image.open(out / "grid.png")).astype(np.float32) / 255
    drawn = resize_output(pose_image(framed.pose, pose_size)[None, :3], (128, 88))[0].clamp(0, 1).permute(1, 2, 0)
    assert np.abs(grid[:, 88:176] - drawn.numpy()).mean() < 0.01

    # --pose-fit belongs to --no-frame
    assert main(["transfer", "-s", str(source), "--pose-from", str(dancer), "-m", "demo", "-o", str(out),
                 "--pose-fit", "body"]) == 2
    assert "--pose-fit applies with --no-frame" in capsys.readouterr().err

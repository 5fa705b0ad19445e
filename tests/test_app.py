"""The web app's actions (what its buttons call) on the tiny reference model, without a browser."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio", reason="the web app needs the 'app' extra")

from cfld import app as web  # noqa: E402
from cfld.cli import main  # noqa: E402
from cfld.errors import InputError  # noqa: E402
from cfld.pose import draw_pose, gallery, retarget, write_pose_json  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
PHOTO, OTHER = DATA / "women1.jpg", DATA / "women2.jpg"


@pytest.fixture(scope="module")
def app(reference_pipeline):
    return web.build_app(reference_pipeline, default_steps=2).cfld_app


def test_repose_with_a_gallery_pose(app):
    result, drawing = app.repose(str(PHOTO), web.POSE_MODES[0], 3, None, None, 1, 2.0, 2.0, 7)
    assert result.size == (176, 256)
    table = gallery()
    assert np.array_equal(drawing, draw_pose(table[table.names[3]], (256, 176)))  # the pose that was picked
    again, _ = app.repose(str(PHOTO), web.POSE_MODES[0], 3, None, None, 1, 2.0, 2.0, 7)
    assert np.array_equal(np.asarray(result), np.asarray(again))  # same seed, same image


def test_the_fast_box_runs_the_fast_preset(app):
    from cfld import presets

    entries = []
    hook = app.pipe.unet.register_forward_pre_hook(lambda module, args: entries.append(args[0].shape[0]))
    try:
        fast, _ = app.repose(str(PHOTO), web.POSE_MODES[0], 3, None, None, 1, 2.0, 2.0, 7, True)
        assert sum(entries) == presets.FAST.unet_evaluations()  # the steps slider (1) is not used
        entries.clear()
        slow, _ = app.repose(str(PHOTO), web.POSE_MODES[0], 3, None, None, 1, 2.0, 2.0, 7, False)
        assert sum(entries) == 2  # one step of the slider, two guidance branches
    finally:
        hook.remove()
    assert not np.array_equal(np.asarray(fast), np.asarray(slow))


def test_repose_with_a_pose_json_fits_it_into_the_source_frame(app, tmp_path):
    table = gallery()
    pose = table[table.names[5]]
    pose_file = write_pose_json(pose, tmp_path / "pose.json")
    square = tmp_path / "square.png"
    Image.open(PHOTO).resize((300, 300)).save(square)
    _, drawing = app.repose(str(square), web.POSE_MODES[2], 0, None, str(pose_file), 1, 2.0, 2.0, 0)
    assert np.array_equal(drawing, draw_pose(retarget(pose, (300, 300)), (256, 176)))


def test_repose_with_the_pose_of_another_photo(app):
    pytest.importorskip("mediapipe", reason="needs the 'detect' extra")
    from cfld.pose import detect_pose

    _, drawing = app.repose(str(PHOTO), web.POSE_MODES[1], 0, str(OTHER), None, 1, 2.0, 2.0, 0)
    assert np.array_equal(drawing, draw_pose(detect_pose(OTHER), (256, 176)))  # both 256x176 frames


def test_clear_errors_for_bad_uploads(app, tmp_path, monkeypatch):
    with pytest.raises(InputError, match="person photo: no photo uploaded"):
        app.repose(None, web.POSE_MODES[0], 0, None, None, 1, 2, 2, 0)
    broken = tmp_path / "holiday.jpg"
    broken.write_bytes(b"not a picture")
    with pytest.raises(InputError, match=r"person photo \(holiday.jpg\): cannot be read as an image"):
        app.repose(str(broken), web.POSE_MODES[0], 0, None, None, 1, 2, 2, 0)
    monkeypatch.setattr(web, "MAX_PIXELS", 10_000)
    with pytest.raises(InputError, match="takes photos up to"):
        app.repose(str(PHOTO), web.POSE_MODES[0], 0, None, None, 1, 2, 2, 0)
    monkeypatch.undo()
    bad_json = tmp_path / "pose.json"
    bad_json.write_text('{"frame": [256, 176], "joints": []}')
    with pytest.raises(InputError, match=r"pose JSON \(pose.json\): 'joints' must list all 18"):
        app.repose(str(PHOTO), web.POSE_MODES[2], 0, None, str(bad_json), 1, 2, 2, 0)
    with pytest.raises(InputError, match="no file uploaded"):
        app.repose(str(PHOTO), web.POSE_MODES[2], 0, None, None, 1, 2, 2, 0)
    with pytest.raises(InputError, match="seed"):
        app.repose(str(PHOTO), web.POSE_MODES[0], 0, None, None, 1, 2, 2, -1)


def test_edit_and_interpolate(app, shared_dir):
    images = shared_dir / "data" / "images"
    strip = app.interpolate(str(PHOTO), str(OTHER), 2, 3, 1, 0)
    assert [label for _, label in strip] == ["0.00", "0.50", "1.00"]
    assert all(image.size == (176, 256) for image, _ in strip)
    pytest.importorskip("mediapipe", reason="the reference's pose is detected when no JSON is given")
    edited = app.style_transfer(str(images / "deepfashion_ref_4.png"), None,
                                str(images / "deepfashion_ref_4_mask_upper.png"), str(OTHER), 1, 0)
    assert edited.size == (176, 256)


def test_animate_tab(app, tmp_path):
    table = gallery()
    files = [str(write_pose_json(table[table.names[i]], tmp_path / f"{i}.json")) for i in (0, 1)]
    mp4, gif = app.animate(str(PHOTO), files, 4, 1, 0)
    assert Path(mp4).suffix == ".mp4" and Path(mp4).stat().st_size > 0
    with Image.open(gif) as opened:
        assert opened.n_frames == 2 and opened.size == (2 * 176, 256)  # pose | frame
    with pytest.raises(InputError, match="upload pose JSON files or video frames"):
        app.animate(str(PHOTO), [], 4, 1, 0)


def test_cli_app_needs_a_model_until_the_demo_model_exists(capsys, monkeypatch):
    from cfld.commands import app as command

    monkeypatch.setattr(command, "default_model", lambda: None)
    assert main(["app"]) == 2
    assert "--model" in capsys.readouterr().err
    assert main(["app", "--help"]) == 0
    assert "127.0.0.1" in capsys.readouterr().out

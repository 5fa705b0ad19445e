"""The web app's actions (what its buttons call) on the tiny reference model, without a browser: uploads are
framed like the training photos (as the command line frames them), a DeepFashion photo goes through unchanged,
and the framing box gives the old behaviour back."""

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
PHOTO, OTHER = DATA / "women1.jpg", DATA / "women2.jpg"  # real 256x176 DeepFashion photos
SQUARE = DATA / "deepfashion_ref_4.png"  # a DeepFashion photo stretched to 256x256 (not the model's aspect)
CANVAS_TOP, CANVAS_LEFT, CANVAS_SIDE = 120, 560, 250  # where SQUARE is pasted on a 900x500 grey canvas


@pytest.fixture(scope="module")
def app(reference_pipeline):
    app = web.build_app(reference_pipeline, default_steps=2).cfld_app
    yield app
    app.close()


@pytest.fixture
def mediapipe():
    pytest.importorskip("mediapipe", reason="framing needs the 'detect' extra")


@pytest.fixture
def canvas(tmp_path):
    """A wide grey photo with a person off-centre at half its height."""
    picture = Image.new("RGB", (900, 500), (128, 128, 128))
    picture.paste(Image.open(SQUARE).convert("RGB").resize((CANVAS_SIDE, CANVAS_SIDE), Image.BICUBIC),
                  (CANVAS_LEFT, CANVAS_TOP))
    picture.save(tmp_path / "holiday.png")
    return tmp_path / "holiday.png"


def generate(app, picture, pose, seed):
    """What the Re-pose tab's pipeline call makes of ``picture`` (one step, as the tests' calls)."""
    import torch

    return app.pipe(picture, pose, num_inference_steps=1, guidance_pose=2.0, guidance_appearance=2.0, frame=False,
                    output_size=(256, 176), generator=torch.Generator().manual_seed(seed)).images[0]


def same(a, b) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b))


def test_repose_with_a_gallery_pose(app):
    result, drawing, framed, note, _ = app.repose(str(PHOTO), web.POSE_MODES[0], 3, None, None, 1, 2.0, 2.0, 7)
    assert result.size == (176, 256) and framed.size == (176, 256) and note
    table = gallery()
    assert np.array_equal(drawing, draw_pose(table[table.names[3]], (256, 176)))  # the pose that was picked
    again, *_ = app.repose(str(PHOTO), web.POSE_MODES[0], 3, None, None, 1, 2.0, 2.0, 7)
    assert same(result, again)  # same seed, same image


def test_a_wide_photo_is_framed_before_the_model_sees_it(app, canvas, mediapipe):
    result, drawing, framed, note, _ = app.repose(str(canvas), web.POSE_MODES[0], 3, None, None, 1, 2.0, 2.0, 7)
    assert note.startswith("framed: a ") and "of the 500x900 photo" in note
    assert framed.size == (176, 256)
    # the crop is where the person was pasted: where framing the pasted photo itself puts it, moved onto the canvas
    scale = CANVAS_SIDE / 256
    own = app.frame(Image.open(SQUARE).convert("RGB"), "square").crop
    crop = app.frame(Image.open(canvas).convert("RGB"), "canvas").crop
    expected = (CANVAS_TOP + own.top * scale, CANVAS_LEFT + own.left * scale, own.height * scale, own.width * scale)
    assert np.abs(np.subtract((crop.top, crop.left, crop.height, crop.width), expected)).max() <= 8, (crop, expected)
    assert f"a {crop.height}x{crop.width} crop at top {crop.top}, left {crop.left}" in note
    # the framed picture is what the model was given, in the gallery pose (already in its 256x176 frame)
    table = gallery()
    assert same(result, generate(app, framed, table[table.names[3]], 7))
    assert np.array_equal(drawing, draw_pose(table[table.names[3]], (256, 176)))
    # and it shows the pasted photo's person: close to framing the pasted photo itself
    alone = app.frame(Image.open(SQUARE).convert("RGB"), "square").image
    assert np.abs(np.asarray(framed, float) - np.asarray(alone, float)).mean() < 12


def test_a_dataset_photo_goes_through_unchanged(app, mediapipe):
    result, drawing, framed, note, _ = app.repose(str(PHOTO), web.POSE_MODES[0], 3, None, None, 1, 2.0, 2.0, 7)
    assert note == web.PASSED_NOTE
    assert same(framed, Image.open(PHOTO).convert("RGB"))
    unframed, unframed_drawing, _, off, _ = app.repose(str(PHOTO), web.POSE_MODES[0], 3, None, None, 1, 2.0, 2.0, 7,
                                                    frame=False)
    assert off == web.UNFRAMED_NOTE
    assert same(result, unframed) and np.array_equal(drawing, unframed_drawing)


def test_framing_off_is_the_old_behaviour(app, canvas, mediapipe):
    table = gallery()
    pose = table[table.names[3]]
    result, drawing, shown, note, _ = app.repose(str(canvas), web.POSE_MODES[0], 3, None, None, 1, 2.0, 2.0, 7,
                                              frame=False, plain=True)  # plain background: no effect unframed
    assert note == web.UNFRAMED_NOTE
    photo = Image.open(canvas).convert("RGB")
    assert same(shown, photo.resize((176, 256), Image.BICUBIC))  # what the model sees: the photo stretched
    fitted = retarget(pose, (500, 900))  # the gallery pose fitted into the photo's own frame, as before
    assert same(result, generate(app, photo, fitted, 7))
    assert np.array_equal(drawing, draw_pose(fitted, (256, 176)))
    framed_result, *_ = app.repose(str(canvas), web.POSE_MODES[0], 3, None, None, 1, 2.0, 2.0, 7)
    assert not same(result, framed_result)


def test_plain_background(app, canvas, mediapipe):
    _, _, framed, note, _ = app.repose(str(canvas), web.POSE_MODES[0], 3, None, None, 1, 2.0, 2.0, 7, plain=True)
    assert note.startswith("framed: ") and note.endswith("; background made plain")
    corner = np.asarray(framed)[:8, :8].reshape(-1, 3)
    assert np.abs(corner.astype(int) - (241, 241, 242)).max() <= 2  # the training photos' colour, not the grey


def test_without_mediapipe_photos_are_used_as_they_are(reference_pipeline, canvas, monkeypatch):
    from cfld import image_processor
    from cfld.errors import MissingDependencyError
    from cfld.metrics import pose_accuracy

    def missing(*args, **kwargs):
        raise MissingDependencyError("pose detection needs MediaPipe: pip install 'cfld[detect]'")

    monkeypatch.setattr(image_processor, "PoseDetector", missing)  # where the app's framing makes its detector
    monkeypatch.setattr(pose_accuracy, "PoseDetector", missing)  # and where the pose check makes its own
    app = web.App(reference_pipeline, 2)
    _, _, shown, note, check = app.repose(str(canvas), web.POSE_MODES[0], 3, None, None, 1, 2.0, 2.0, 7)
    assert note.startswith("not framed: framing needs MediaPipe") and shown.size == (176, 256)
    assert check == "pose check: not run, it needs MediaPipe (pip install 'cfld[detect]')"


def test_the_fast_box_runs_the_fast_preset(app):
    from cfld import presets

    entries = []
    hook = app.pipe.unet.register_forward_pre_hook(lambda module, args: entries.append(args[0].shape[0]))
    try:
        fast, *_ = app.repose(str(PHOTO), web.POSE_MODES[0], 3, None, None, 1, 2.0, 2.0, 7, True)
        assert sum(entries) == presets.FAST.unet_evaluations()  # the steps slider (1) is not used
        entries.clear()
        slow, *_ = app.repose(str(PHOTO), web.POSE_MODES[0], 3, None, None, 1, 2.0, 2.0, 7, False)
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
    _, drawing, *_ = app.repose(str(square), web.POSE_MODES[2], 0, None, str(pose_file), 1, 2.0, 2.0, 0,
                                frame=False)
    assert np.array_equal(drawing, draw_pose(retarget(pose, (300, 300)), (256, 176)))  # framing off: the photo's frame


def test_a_pose_json_is_fitted_into_the_framed_picture(app, canvas, tmp_path, mediapipe):
    pose = retarget(gallery()[gallery().names[5]], (500, 900))  # e.g. a pose detected in another wide photo
    pose_file = write_pose_json(pose, tmp_path / "pose.json")
    _, drawing, _, note, _ = app.repose(str(canvas), web.POSE_MODES[2], 0, None, str(pose_file), 1, 2.0, 2.0, 0)
    assert note.startswith("framed: ")
    assert np.array_equal(drawing, draw_pose(retarget(pose, (256, 176)), (256, 176)))


def test_repose_with_the_pose_of_another_photo(app, canvas, mediapipe):
    from cfld.pose import detect_pose

    # framing on: the pose of the other photo's own framed crop (a DeepFashion photo: the whole of it)
    _, drawing, *_ = app.repose(str(PHOTO), web.POSE_MODES[1], 0, str(OTHER), None, 1, 2.0, 2.0, 0)
    own = app.frame(Image.open(OTHER).convert("RGB"), "other").pose
    assert own.frame == (256, 176) and np.array_equal(drawing, draw_pose(own, (256, 176)))
    # ... and of a wide photo: its person's pose in its framed crop, not squeezed into the whole wide frame
    _, drawing, *_ = app.repose(str(PHOTO), web.POSE_MODES[1], 0, str(canvas), None, 1, 2.0, 2.0, 0)
    assert np.array_equal(drawing, draw_pose(app.frame(Image.open(canvas).convert("RGB"), "canvas").pose, (256, 176)))
    # framing off: detected in the whole photo and fitted into the source's frame, as before
    _, drawing, *_ = app.repose(str(PHOTO), web.POSE_MODES[1], 0, str(OTHER), None, 1, 2.0, 2.0, 0, frame=False)
    assert np.array_equal(drawing, draw_pose(detect_pose(OTHER), (256, 176)))  # both 256x176 frames


def test_clear_errors_for_bad_uploads(app, tmp_path, monkeypatch):
    from cfld.app import inputs

    with pytest.raises(InputError, match="person photo: no photo uploaded"):
        app.repose(None, web.POSE_MODES[0], 0, None, None, 1, 2, 2, 0)
    broken = tmp_path / "holiday.jpg"
    broken.write_bytes(b"not a picture")
    with pytest.raises(InputError, match=r"person photo \(holiday.jpg\): cannot be read as an image"):
        app.repose(str(broken), web.POSE_MODES[0], 0, None, None, 1, 2, 2, 0)
    monkeypatch.setattr(inputs, "MAX_PIXELS", 10_000)
    with pytest.raises(InputError, match=r"^person photo \(women1.jpg\): is 176x256 pixels, more than the 10,000 we "
                                         r"accept$"):
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


def test_framing_errors_are_one_sentence_that_says_how_to_skip_it(app, tmp_path, mediapipe):
    from cfld.app.photo_framing import _unframed_hint

    empty = tmp_path / "wall.png"
    Image.new("RGB", (900, 500), (128, 128, 128)).save(empty)
    with pytest.raises(InputError, match=r"^person photo \(wall.png\): no person found .*; or untick the framing "
                                         r"box to use the photo as it is$") as caught:
        app.repose(str(empty), web.POSE_MODES[0], 0, None, None, 1, 2, 2, 0)
    assert "\n" not in str(caught.value)
    several = _unframed_hint("shows several people; framing needs a photo of one person (crop it to the one "
                                 "you mean, or pass --no-frame)")
    assert several.endswith("(crop it to the one you mean, or untick the framing box to use the photo as it is)")


def test_edit_and_interpolate(app, canvas):
    strip, _ = app.interpolate(str(PHOTO), str(canvas), 2, 3, 1, 0)
    assert [label for _, label in strip] == ["0.00", "0.50", "1.00"]
    assert all(image.size == (176, 256) for image, _ in strip)
    pytest.importorskip("mediapipe", reason="the reference's pose is detected when no JSON is given")
    mask = DATA / "deepfashion_ref_4_mask_upper.png"
    for frame in (True, False):  # SQUARE is framed (its mask cut with the same crop), or used as it is
        edited, _ = app.style_transfer(str(SQUARE), None, str(mask), str(canvas), 1, 0, frame=frame)
        assert edited.size == (176, 256)


def test_the_reference_mask_and_pose_json_are_cut_with_the_reference_crop(app, tmp_path, mediapipe):
    from cfld.pose import detect_pose

    reference = Image.open(SQUARE).convert("RGB")
    framed = app.frame(reference, "reference")
    assert framed.cropped and framed.crop.left > 40
    # a picture drawn on the reference photo, cut like the mask is, lines up with the framed picture
    cut = framed.apply_crop(reference)
    assert cut.size == (176, 256) and np.abs(np.asarray(cut, float) - np.asarray(framed.image, float)).mean() < 4
    # a pose JSON in the photo's pixels lands on the framed picture's person
    moved = framed.move_pose(detect_pose(reference))
    both = moved.visible & framed.pose.visible
    assert moved.frame == (256, 176) and both.sum() >= 12
    assert np.median(np.linalg.norm(moved.xy[both] - framed.pose.xy[both], axis=1)) < 6
    # a mask whose white lies outside the crop would edit nothing: one sentence
    edge = tmp_path / "edge_mask.png"
    pixels = np.zeros((256, 256, 3), np.uint8)
    pixels[:, :30] = 255
    Image.fromarray(pixels).save(edge)
    with pytest.raises(InputError, match=r"mask \(edge_mask.png\): has no white pixel inside the crop"):
        app.style_transfer(str(SQUARE), None, str(edge), str(OTHER), 1, 0)


def test_animate_tab(app, tmp_path):
    table = gallery()
    files = [str(write_pose_json(table[table.names[i]], tmp_path / f"{i}.json")) for i in (0, 1)]
    mp4, gif, _ = app.animate(str(PHOTO), files, 4, 1, 0)
    assert Path(mp4).suffix == ".mp4" and Path(mp4).stat().st_size > 0
    with Image.open(gif) as opened:
        assert opened.n_frames == 2 and opened.size == (2 * 176, 256)  # pose | frame
    canvas = tmp_path / "wide.png"
    Image.new("RGB", (900, 500), (128, 128, 128)).save(canvas)
    _, gif, _ = app.animate(str(canvas), files, 4, 1, 0, frame=False)  # framing off: nobody needs to be found
    with Image.open(gif) as opened:
        assert opened.size == (2 * 176, 256)
    with pytest.raises(InputError, match="upload pose JSON files or video frames"):
        app.animate(str(PHOTO), [], 4, 1, 0)


def test_each_result_shows_its_pose_check(app, tmp_path, mediapipe):
    """Under each result a line gives its pose check (PCKh, PCK, joints found), with a warning sentence when it
    misses its target pose: the tiny model's noise always does."""
    from cfld.metrics.pose_accuracy import PoseScore, PoseScorer

    table = gallery()
    result, _, _, _, check = app.repose(str(PHOTO), web.POSE_MODES[0], 3, None, None, 1, 2.0, 2.0, 7)
    with PoseScorer() as scorer:
        expected = scorer(result, table[table.names[3]])
    assert check.startswith(f"pose check: {expected.line()}") and expected.misses()
    assert "**Warning: the result misses its target pose** (PCK@0.1 0.00 < 0.5)" in check
    good = PoseScore(joints=16, found_joints=15, pck_hits=14, pckh_hits=15, person=True)
    assert app.pose_scores.line(good) == "pose check: PCKh 0.94, PCK 0.88, 15/16 joints found"

    _, check = app.interpolate(str(PHOTO), str(OTHER), 2, 2, 1, 0)
    assert "- weight 0.00: " in check and "- weight 1.00: " in check
    assert "**Warning: weight 0.00, weight 1.00 miss their target poses**" in check
    files = [str(write_pose_json(table[table.names[i]], tmp_path / f"{i}.json")) for i in (0, 1)]
    *_, check = app.animate(str(PHOTO), files, 4, 1, 0)
    assert "- frame 1 (0.json): " in check and "- frame 2 (1.json): " in check and "**Warning: frame 1" in check


def test_cli_app_needs_a_model_until_the_demo_model_exists(capsys, monkeypatch):
    from cfld.commands import app as command

    monkeypatch.setattr(command, "default_model", lambda: None)
    assert main(["app"]) == 2
    assert "--model" in capsys.readouterr().err
    assert main(["app", "--help"]) == 0
    assert "127.0.0.1" in capsys.readouterr().out

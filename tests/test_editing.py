"""Appearance editing (paper Sec. 4.6) on the reference's random-weight model: style transfer by mask and
style interpolation, from Python and from `cfld edit`, with a real DeepFashion photo and its clothing mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cfld.cli import main
from cfld.editing import latent_mask
from cfld.errors import InputError
from cfld.images import load_image, to_model_input
from cfld.pose import gallery

DATA = Path(__file__).resolve().parent / "data"
REFERENCE, MASK = DATA / "deepfashion_ref_4.png", DATA / "deepfashion_ref_4_mask_upper.png"
SOURCES = [DATA / "women1.jpg", DATA / "women2.jpg"]


def _pose():
    table = gallery()
    return table[table.names[0]]


def _kwargs(seed=0):
    """Sampling as the original: photos used as they are (``frame=False``; framing has its own tests below)."""
    return dict(num_inference_steps=3, generator=torch.Generator().manual_seed(seed), output_type="pt",
                return_latents=True, output_size=None, progress=False, frame=False)


@pytest.fixture(scope="module")
def editor(reference_pipeline):
    from cfld import CFLDEditPipeline

    return CFLDEditPipeline.from_pipe(reference_pipeline)


def test_style_transfer_keeps_the_reference_outside_the_mask(editor):
    pipe = editor
    out = pipe.style_transfer(REFERENCE, _pose(), SOURCES, MASK, **_kwargs())
    assert out.latents.shape[0] == 2
    z_ref = pipe.encode_images(to_model_input(load_image(REFERENCE), pipe.model.config.image_size)[None])
    mask = latent_mask(MASK, pipe.latent_size)[0, 0]
    outside, inside = mask == 0, mask == 1
    assert outside.any() and inside.any()
    # outside the mask: exactly the reference's latent; inside: generated, and different per source
    assert torch.equal(out.latents[:, :, outside], z_ref.expand(2, -1, -1, -1)[:, :, outside])
    assert (out.latents[:, :, inside] - z_ref[:, :, inside]).abs().mean() > 0.1
    assert not torch.allclose(out.latents[0][:, inside], out.latents[1][:, inside])


def test_empty_mask_is_refused(editor, tmp_path):
    Image.new("L", Image.open(REFERENCE).size).save(tmp_path / "empty.png")
    with pytest.raises(InputError, match="empty.png: is empty"):
        editor.style_transfer(REFERENCE, _pose(), SOURCES[0], tmp_path / "empty.png", **_kwargs())


def test_interpolation_ends_are_the_two_sources(editor):
    pipe = editor
    strip = pipe.interpolate(SOURCES[0], SOURCES[1], _pose(), [0.0, 0.5, 1.0], scheduler="ddim", **_kwargs(3)).latents
    assert strip.shape[0] == 3
    # same initial noise and a deterministic sampler: the ends are plain transfers of A and of B
    z_t = torch.randn((1, 4, *pipe.latent_size), generator=torch.Generator().manual_seed(3))
    for weight, source in ((0, SOURCES[0]), (2, SOURCES[1])):
        plain = pipe(source, _pose(), latents=z_t.clone(), scheduler="ddim", **_kwargs()).latents
        assert (plain - strip[weight : weight + 1]).abs().max().item() <= 1e-5
    assert not torch.allclose(strip[1], strip[0]) and not torch.allclose(strip[1], strip[2])


def test_edit_pipeline_shares_a_pipelines_components(reference_pipeline, editor):
    """CFLDEditPipeline (cfld.editing) is a CFLDPipeline on the same networks (diffusers' from_pipe); the sampling
    pipeline itself knows nothing of editing (pipeline.py imports nothing from editing.py)."""
    import cfld
    from cfld import CFLDEditPipeline, CFLDPipeline, editing

    assert cfld.CFLDEditPipeline is editing.CFLDEditPipeline and "CFLDEditPipeline" in cfld.__all__
    pipe = reference_pipeline
    for edit in (editor, CFLDEditPipeline(**pipe.components)):
        assert isinstance(edit, CFLDPipeline)
        assert all(getattr(edit, name) is part for name, part in pipe.components.items())  # shared, not copied
    assert editor.name_or_path == pipe.name_or_path and editor.guidance_type == pipe.guidance_type
    assert not hasattr(pipe, "style_transfer") and not hasattr(pipe, "interpolate")
    source = (Path(editing.__file__).parent / "pipeline.py").read_text()
    assert "editing" not in "".join(line for line in source.splitlines() if "import" in line)


def test_style_transfer_is_a_step_end_callback_that_chains_with_the_users(editor):
    """The keep-region blend is a diffusers step-end callback; a user's own callback runs after it and sees the
    blended latents."""
    seen = []

    def callback(pipe, step, timestep, tensors):
        seen.append((step, int(timestep), tensors["latents"].clone()))
        return tensors

    plain = editor.style_transfer(REFERENCE, _pose(), SOURCES[0], MASK, **_kwargs(4))
    watched = editor.style_transfer(REFERENCE, _pose(), SOURCES[0], MASK, callback_on_step_end=callback, **_kwargs(4))
    assert torch.equal(plain.latents, watched.latents)
    assert [s for s, _, _ in seen] == [0, 1, 2] and torch.equal(seen[-1][2], watched.latents)


def test_edit_pipeline_saves_and_loads_like_a_pipeline(editor, tmp_path):
    from cfld import CFLDEditPipeline

    folder = editor.save_pretrained(tmp_path / "edit-model")
    loaded = CFLDEditPipeline.from_pretrained(folder)
    assert type(loaded) is CFLDEditPipeline and loaded.name_or_path == str(folder)
    args = (SOURCES[0], SOURCES[1], _pose(), [0.0, 0.5])
    assert torch.equal(loaded.interpolate(*args, **_kwargs(6)).latents, editor.interpolate(*args, **_kwargs(6)).latents)


def test_cli_edit_commands(tiny_model_dir, tmp_path, capsys):
    common = ["-m", str(tiny_model_dir), "--steps", "2", "--size", "64x44"]
    pose = str(tmp_path / "pose.json")
    from cfld.pose import write_pose_json

    write_pose_json(_pose(), pose)
    out = tmp_path / "edited.png"
    args = ["edit", "style-transfer", "-r", str(REFERENCE), "--reference-pose", pose, "--mask", str(MASK),
            "-s", str(SOURCES[0]), "-s", str(SOURCES[1]), "-o", str(out), *common]
    assert main(args) == 0
    assert Image.open(out).size == (3 * 44, 64)
    # the pose check: each result (panels 2 and 3; panel 1 is the reference) against the reference's pose
    stdout = capsys.readouterr().out
    assert "edited.png panel 2 (look of " in stdout and "edited.png panel 3 (look of " in stdout
    scores = (tmp_path / "edited_scores.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in scores] == ["file", "edited.png panel 2", "edited.png panel 3"]
    assert main(args) == 2 and "already exists" in capsys.readouterr().err
    strip = tmp_path / "strip.png"
    assert main(["edit", "interpolate", "-a", str(SOURCES[0]), "-b", str(SOURCES[1]), "-p", pose, "-n", "4",
                 "-o", str(strip), *common]) == 0
    image = np.asarray(Image.open(strip))
    assert image.shape == (64, 4 * 44, 3)


def test_cli_style_transfer_detects_the_reference_pose(tiny_model_dir, tmp_path, capsys):
    """Without --reference-pose the reference's own pose is detected (the 'detect' extra)."""
    pytest.importorskip("mediapipe", reason="needs the 'detect' extra")
    out = tmp_path / "edited.png"
    assert main(["edit", "style-transfer", "-r", str(REFERENCE), "--mask", str(MASK), "-s", str(SOURCES[1]),
                 "-o", str(out), "-m", str(tiny_model_dir), "--steps", "1", "--size", "64x44"]) == 0
    assert "pose detected (18 of 18 joints)" in capsys.readouterr().out
    assert Image.open(out).size == (2 * 44, 64)


# -- framing: a framed reference's mask and pose are cut with its crop ---------------------------------------------


def test_framed_mask_and_pose_follow_the_crop():
    """The mask (at any resolution of the photo's shape) and a pose in the photo's frame, moved into the framed
    picture of a crop that reaches beyond the photo: known geometry, exact answers."""
    from cfld.framing import Crop, Framed
    from cfld.pose import Pose

    photo_size, size = (200, 300), (64, 44)
    crop = Crop(top=-20, left=40, height=160, width=110)  # 0.4 framed pixels per photo pixel
    placed = Framed(Image.new("RGB", (44, 64)), crop, size, None, True, photo_size, (0, 0, 0))
    mask = Image.new("L", (150, 100))  # half the photo's resolution
    mask.paste(255, (30, 20, 60, 40))  # photo pixels: columns 60..120, rows 40..80
    framed = np.asarray(placed.apply_crop(mask)) / 255
    assert framed.shape == (64, 44)
    expected = np.zeros((64, 44))
    expected[24:40, 8:32] = 1  # rows (40 + 20) * 0.4 .. (80 + 20) * 0.4, columns (60 - 40) * 0.4 .. (120 - 40) * 0.4
    assert np.abs(framed - expected)[expected == 1].max() < 0.35 and framed[expected == 0].max() < 0.6
    assert framed[:8].max() == 0  # above the photo: black padding
    assert np.abs(framed - expected).mean() < 0.02

    xy = np.full((18, 2), np.nan)
    xy[0], xy[1] = (59.5, 39.5), (119.5, 79.5)  # the rectangle's corners (pixel centres at integers: edges)
    confidence = np.r_[1.0, 1.0, np.zeros(16)]
    moved = placed.move_pose(Pose(xy, confidence, photo_size))
    assert moved.frame == size
    assert np.allclose(moved.xy[:2], [(7.5, 23.5), (31.5, 39.5)])  # the framed rectangle's corners, as above
    # a pose in a frame of another size is stretched onto the photo first, as the model would stretch it
    half = Pose(xy / 2 - 0.25, confidence, (100, 150))
    assert np.allclose(placed.move_pose(half).xy[:2], moved.xy[:2])


def _wide(photo, top=100, left=400, size=(450, 800), mode="RGB", fill=(200, 190, 180)):
    picture = Image.open(photo).convert(mode)
    canvas = Image.new(mode, (size[1], size[0]), fill)
    canvas.paste(picture, (left, top))
    return canvas


def test_cli_style_transfer_frames_the_reference_with_its_mask_and_pose(tiny_model_dir, tmp_path, capsys, monkeypatch):
    """A reference pasted into a wide photo, with its mask and its pose in that photo's frame: the pipeline gets the
    framed picture, the mask cut with the same crop (over the same clothes) and the pose moved into the crop (where
    the person is detected in the framed picture)."""
    pytest.importorskip("mediapipe", reason="framing needs the 'detect' extra")
    import json

    from cfld.editing import CFLDEditPipeline
    from cfld.pose import PoseDetector, write_pose_json

    reference, mask = tmp_path / "wide.png", tmp_path / "wide_mask.png"
    _wide(REFERENCE).save(reference)
    _wide(MASK, mode="L", fill=0).save(mask)
    with PoseDetector() as detector:
        pose = write_pose_json(detector(reference), tmp_path / "wide_pose.json")  # in the wide photo's frame
    seen = {}
    original = CFLDEditPipeline.style_transfer
    monkeypatch.setattr(CFLDEditPipeline, "style_transfer", lambda self, ref, p, sources, region, **kw: seen.update(
        ref=ref, pose=p, sources=sources, region=region) or original(self, ref, p, sources, region, **kw))
    out = tmp_path / "edited.png"
    args = ["edit", "style-transfer", "-r", str(reference), "--mask", str(mask), "-s", str(SOURCES[1]), "-o", str(out),
            "-m", str(tiny_model_dir), "--steps", "1", "--size", "128x88"]
    assert main([*args, "--reference-pose", str(pose), "--save-framed"]) == 0
    stdout = capsys.readouterr().out
    assert f"{reference}: framed (a " in stdout and f"{SOURCES[1]}: already framed, used as it is" in stdout
    assert Image.open(out).size == (2 * 88, 128)
    record = json.loads((tmp_path / "wide_framed.json").read_text())
    assert record["framed"] is True and (tmp_path / "women2_framed.png").is_file()
    framed = np.asarray(seen["ref"])
    assert framed.shape == (128, 88, 3) and np.array_equal(framed, np.asarray(Image.open(tmp_path / "wide_framed.png")))
    assert np.array_equal(np.asarray(seen["sources"][0]), np.asarray(Image.open(SOURCES[1]).convert("RGB")))

    # the mask, back through the crop, lies where it lay in the wide photo
    crop = record["crop"]
    region = np.asarray(seen["region"], dtype=np.float64) / 255
    ys, xs = np.nonzero(region > 0.5)
    back = (crop["left"] + (xs.mean() + 0.5) * crop["width"] / 88,
            crop["top"] + (ys.mean() + 0.5) * crop["height"] / 128)
    wide_ys, wide_xs = np.nonzero(np.asarray(Image.open(mask)) > 127)
    assert np.hypot(back[0] - wide_xs.mean() - 0.5, back[1] - wide_ys.mean() - 0.5) < 2
    # the given pose, moved into the crop, is where the person stands in the framed picture
    from cfld.pose import pose_from_json

    framed_pose = pose_from_json(record["pose"])
    both = seen["pose"].visible & framed_pose.visible
    assert seen["pose"].frame == (128, 88) and both.sum() >= 12
    assert np.median(np.linalg.norm(seen["pose"].xy[both] - framed_pose.xy[both], axis=1)) < 0.04 * 128

    # without --reference-pose the framed picture's own pose is used
    assert main([*args, "--overwrite"]) == 0
    assert f"{reference}: pose detected (" in capsys.readouterr().out
    assert seen["pose"] == framed_pose.replace(name=seen["pose"].name)
    # --no-frame: the photo, the mask and the pose as they are
    assert main([*args, "--reference-pose", str(pose), "--overwrite", "--no-frame"]) == 0
    assert seen["region"] == str(mask) and seen["ref"].size == (800, 450) and seen["pose"].frame == (450, 800)


def test_cli_interpolate_frames_both_photos(tiny_model_dir, tmp_path, capsys, monkeypatch):
    pytest.importorskip("mediapipe", reason="framing needs the 'detect' extra")
    from cfld.editing import CFLDEditPipeline
    from cfld.pose import write_pose_json

    wide = tmp_path / "wide.png"
    _wide(SOURCES[0], top=120, left=500).save(wide)
    seen = {}
    original = CFLDEditPipeline.interpolate
    monkeypatch.setattr(CFLDEditPipeline, "interpolate",
                        lambda self, a, b, *rest, **kw: seen.update(a=a, b=b) or original(self, a, b, *rest, **kw))
    pose = write_pose_json(_pose(), tmp_path / "pose.json")
    out = tmp_path / "strip.png"
    assert main(["edit", "interpolate", "-a", str(wide), "-b", str(SOURCES[1]), "-p", str(pose), "-n", "2",
                 "-o", str(out), "-m", str(tiny_model_dir), "--steps", "1", "--size", "64x44"]) == 0
    stdout = capsys.readouterr().out
    assert f"{wide}: framed (a " in stdout and f"{SOURCES[1]}: already framed, used as it is" in stdout
    assert seen["a"].size == (44, 64)  # framed at --size
    assert np.array_equal(np.asarray(seen["b"]), np.asarray(Image.open(SOURCES[1]).convert("RGB")))  # as it is
    assert Image.open(out).size == (2 * 44, 64)


def test_a_reference_with_nobody_is_refused_for_that_before_its_masks_shape():
    """prepare_reference: a reference photo in which nobody was found is refused naming that photo, even when its
    mask was made for another picture; with the reference's pose given, the mask's shape is what is refused; a
    (H, W) tensor mask is checked and cut as a picture is."""
    from cfld.editing import prepare_reference
    from cfld.framing import Crop, Framed

    photo = Image.new("RGB", (352, 512), (120, 160, 235))  # the models' shape: framing passes it through
    passed = Framed(photo, Crop(0, 0, 512, 352), (256, 176), None, False, (512, 352), (120, 160, 235))
    common = dict(name="landscape.png", mask_name="mask.png", way_around="(pass --no-frame)")
    with pytest.raises(InputError, match=r"^landscape\.png: no person found"):
        prepare_reference(photo, passed, MASK, **common)  # MASK is 256x256, not the photo's shape
    with pytest.raises(InputError, match=r"^mask\.png: is 256x256 \(HxW\) but the reference photo is 512x352"):
        prepare_reference(photo, passed, MASK, _pose(), **common)
    with pytest.raises(InputError, match=r"^mask\.png: is 256x256 \(HxW\) but the reference photo is 512x352"):
        prepare_reference(photo, passed, torch.ones(256, 256), _pose(), **common)
    cropped = Framed(photo.resize((176, 256)), Crop(0, 0, 512, 352), (256, 176), _pose(), True, (512, 352), (0, 0, 0))
    prepared = prepare_reference(photo, cropped, torch.ones(512, 352), **common)
    assert prepared.mask.size == (176, 256) and prepared.mask.getextrema() == (255, 255)

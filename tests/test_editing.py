"""Appearance editing (paper Sec. 4.6) on the reference's random-weight model: style transfer by mask and
style interpolation, from Python and from `cfld edit`, with a real DeepFashion photo and its clothing mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cfld.cli import main
from cfld.errors import InputError
from cfld.images import load_image, to_model_input
from cfld.pipeline import latent_mask
from cfld.pose import gallery

DATA = Path(__file__).resolve().parent / "data"
REFERENCE, MASK = DATA / "deepfashion_ref_4.png", DATA / "deepfashion_ref_4_mask_upper.png"
SOURCES = [DATA / "women1.jpg", DATA / "women2.jpg"]


def _pose():
    table = gallery()
    return table[table.names[0]]


def _kwargs(seed=0):
    return dict(num_inference_steps=3, generator=torch.Generator().manual_seed(seed), output_type="pt",
                return_latents=True, output_size=None, progress=False)


def test_style_transfer_keeps_the_reference_outside_the_mask(reference_pipeline):
    pipe = reference_pipeline
    out = pipe.style_transfer(REFERENCE, _pose(), SOURCES, MASK, **_kwargs())
    assert out.latents.shape[0] == 2
    z_ref = pipe.encode_images(to_model_input(load_image(REFERENCE), pipe.config.image_size)[None])
    mask = latent_mask(MASK, pipe.latent_size)[0, 0]
    outside, inside = mask == 0, mask == 1
    assert outside.any() and inside.any()
    # outside the mask: exactly the reference's latent; inside: generated, and different per source
    assert torch.equal(out.latents[:, :, outside], z_ref.expand(2, -1, -1, -1)[:, :, outside])
    assert (out.latents[:, :, inside] - z_ref[:, :, inside]).abs().mean() > 0.1
    assert not torch.allclose(out.latents[0][:, inside], out.latents[1][:, inside])


def test_empty_mask_is_refused(reference_pipeline, tmp_path):
    Image.new("L", Image.open(REFERENCE).size).save(tmp_path / "empty.png")
    with pytest.raises(InputError, match="empty.png: is empty"):
        reference_pipeline.style_transfer(REFERENCE, _pose(), SOURCES[0], tmp_path / "empty.png", **_kwargs())


def test_interpolation_ends_are_the_two_sources(reference_pipeline):
    pipe = reference_pipeline
    strip = pipe.interpolate(SOURCES[0], SOURCES[1], _pose(), [0.0, 0.5, 1.0], scheduler="ddim", **_kwargs(3)).latents
    assert strip.shape[0] == 3
    # same initial noise and a deterministic sampler: the ends are plain transfers of A and of B
    z_t = torch.randn((1, 4, *pipe.latent_size), generator=torch.Generator().manual_seed(3))
    for weight, source in ((0, SOURCES[0]), (2, SOURCES[1])):
        plain = pipe(source, _pose(), latents=z_t.clone(), scheduler="ddim", **_kwargs()).latents
        assert (plain - strip[weight : weight + 1]).abs().max().item() <= 1e-5
    assert not torch.allclose(strip[1], strip[0]) and not torch.allclose(strip[1], strip[2])


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

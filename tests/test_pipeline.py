"""CFLDPipeline on the reference's random-weight model: guidance paths, schedulers, saving, inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cfld.errors import InputError
from cfld.pipeline import CFLDPipeline, SourceEncoding
from cfld.pose import gallery
from cfld.schedulers import SCHEDULERS
from conftest import assert_usual_permissions

TESTS = Path(__file__).resolve().parent
PHOTO = TESTS / "data" / "women1.jpg"


def _poses(n: int):
    table = gallery()
    return [table[name] for name in table.names[:n]]


def _run(pipe, source=PHOTO, **kwargs):
    args = dict(num_inference_steps=3, generator=torch.Generator().manual_seed(7), output_type="pt",
                return_latents=True, progress=False, output_size=None)
    return pipe(source, _poses(2), **{**args, **kwargs})


def test_two_branch_path_equals_three_branch_path(reference_pipeline):
    """At w_pose == w_app the fused two-branch sampler gives the three-branch latents (up to rounding)."""
    three = _run(reference_pipeline, fuse_branches=False, guidance_pose=2.5, guidance_appearance=2.5)
    two = _run(reference_pipeline, fuse_branches=True, guidance_pose=2.5, guidance_appearance=2.5)
    assert (three.latents - two.latents).abs().max().item() <= 1e-4
    # and the weights matter: unequal weights run three branches and give other latents
    other = _run(reference_pipeline, guidance_pose=1.0, guidance_appearance=3.0)
    assert (other.latents - two.latents).abs().max().item() > 1e-3


def test_same_seed_same_images_and_source_encoded_once(reference_pipeline):
    first = _run(reference_pipeline)
    encoding = reference_pipeline.encode_source(PHOTO)
    assert isinstance(encoding, SourceEncoding) and len(encoding) == 1
    again = _run(reference_pipeline, source=encoding)
    assert torch.equal(first.latents, again.latents)
    different = _run(reference_pipeline, generator=torch.Generator().manual_seed(8))
    assert not torch.allclose(first.latents, different.latents)


def test_batching_over_sources_and_poses_is_source_major(reference_pipeline):
    """2 sources x 2 poses = 4 images; a batch size of 1 gives what one batch gives."""
    pipe = reference_pipeline
    ref = TESTS.parent.parent / "shared" / "data" / "images" / "women2.jpg"
    second = ref if ref.is_file() else PHOTO
    kwargs = dict(num_inference_steps=2, generator=torch.Generator().manual_seed(3), output_type="pt",
                  return_latents=True, progress=False, output_size=(64, 44))
    out = pipe([PHOTO, second], _poses(2), **kwargs)
    assert out.images.shape == (4, 3, 64, 44)
    kwargs["generator"] = torch.Generator().manual_seed(3)
    one_at_a_time = pipe([PHOTO, second], _poses(2), batch_size=1, **kwargs)
    assert (out.latents - one_at_a_time.latents).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_scheduler_samples(reference_pipeline, name):
    out = reference_pipeline(PHOTO, _poses(1), num_inference_steps=2, scheduler=name, progress=False,
                             generator=torch.Generator().manual_seed(0), output_size=(32, 22))
    assert len(out.images) == 1 and out.images[0].size == (22, 32)
    assert np.asarray(out.images[0]).std() > 0  # not a blank image


def test_save_and_load_roundtrip_gives_identical_samples(reference_pipeline, tiny_model_dir, tmp_path):
    loaded = CFLDPipeline.from_pretrained(tiny_model_dir)
    assert torch.equal(_run(loaded).latents, _run(reference_pipeline).latents)
    with pytest.raises(InputError, match="already exists"):
        loaded.save_pretrained(tiny_model_dir)
    assert loaded.save_pretrained(tiny_model_dir, overwrite=True) == tiny_model_dir
    assert not list(tiny_model_dir.parent.glob(".cfld-tiny*")), "temporary folders left behind"
    assert_usual_permissions(tiny_model_dir)


def test_components_rebuild_the_pipeline_on_the_same_networks(reference_pipeline):
    """``CFLDPipeline(**pipe.components)`` shares the networks and scheduler and samples the same (the way
    cfld.editing.CFLDEditPipeline is built on a pipeline)."""
    rebuilt = CFLDPipeline(**reference_pipeline.components)
    assert all(getattr(rebuilt, name) is part for name, part in reference_pipeline.components.items())
    assert torch.equal(_run(rebuilt).latents, _run(reference_pipeline).latents)


def test_pil_output_quantises_like_the_original(reference_pipeline):
    pt = reference_pipeline(PHOTO, _poses(1), num_inference_steps=1, generator=torch.Generator().manual_seed(1),
                            output_type="pt", progress=False)
    pil = reference_pipeline(PHOTO, _poses(1), num_inference_steps=1, generator=torch.Generator().manual_seed(1),
                             progress=False)
    expected = (pt.images[0] * 255).clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
    assert pil.images[0].size == (176, 256)
    assert torch.equal(torch.from_numpy(np.asarray(pil.images[0]).copy()), expected)


def test_bad_inputs_are_one_clear_sentence(reference_pipeline, tmp_path):
    pipe = reference_pipeline
    with pytest.raises(InputError, match="no such file"):
        pipe(tmp_path / "nobody.jpg", _poses(1), progress=False)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(InputError, match="broken.jpg: cannot be read as an image"):
        pipe(tmp_path / "broken.jpg", _poses(1), progress=False)
    with pytest.raises(InputError, match="pose tensor"):
        pipe(PHOTO, torch.zeros(21, 8, 8), progress=False)
    with pytest.raises(InputError, match="paired"):
        pipe(PHOTO, _poses(2), paired=True, progress=False)
    with pytest.raises(InputError, match="scheduler 'heun2'"):
        pipe(PHOTO, _poses(1), scheduler="heun2", progress=False)
    with pytest.raises(InputError, match="is not a CFLD model.*pytorch_model.bin"):
        CFLDPipeline.from_pretrained(tmp_path)


def test_bare_checkpoint_from_cfld_convert_loads_with_a_base(reference_pipeline, ref_dir, tmp_path):
    """`cfld convert` output (config.json + safetensors) + the VAE/scheduler of ``base`` = the same pipeline."""
    from cfld.checkpoint import save_checkpoint

    folder = save_checkpoint(tmp_path / "bare", reference_pipeline.model, reference_pipeline.unet)
    loaded = CFLDPipeline.from_pretrained(folder, base=ref_dir)
    assert torch.equal(_run(loaded).latents, _run(reference_pipeline).latents)


def test_half_precision_weights_sample_on_cpu(ref_dir, reference_pipeline):
    """bf16 weights (fp16 on CUDA in `cfld transfer`): latents stay float32 between steps, images come out finite."""
    pipe = CFLDPipeline.from_pretrained(ref_dir, base=ref_dir, config=reference_pipeline.model.config,
                                        torch_dtype=torch.bfloat16)
    assert pipe.dtype == torch.bfloat16 and pipe.model.dtype == torch.bfloat16
    out = _run(pipe)
    assert out.latents.dtype == torch.float32 and torch.isfinite(out.latents).all()
    full = _run(reference_pipeline)
    # same sampler, lower precision: close to the fp32 result but not identical
    assert 0 < (out.latents - full.latents).abs().mean().item() < 0.5

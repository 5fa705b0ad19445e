"""Agreement with the reference outputs of the original CFLD implementation.

Everything (seeds, keypoints, sizes, configs) is read from the reference directory (conftest's
``ref_dir``, ``golden_json`` and ``golden`` fixtures: $CFLD_REFERENCE_DIR or tests/data/reference_tiny),
so these tests pass on any directory of the same layout. Add new checks as new test functions.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

# -- pose images -----------------------------------------------------------------------------------

POSE_TENSOR = re.compile(r"pose_(?P<index>\d+)_(?P<height>\d+)x(?P<width>\d+)(?:_(?P<kind>rgb_uint8|heatmaps_f16))?")


def _golden_pose(entry: dict):
    """The pose of a golden.json ``poses[i]`` entry, read with our annotation-row reader."""
    from cfld.pose import parse_annotation_row

    row = f"{entry['keypoints_y']}:{entry['keypoints_x']}"
    return parse_annotation_row(row, frame=tuple(entry["old_size"]), source=f"golden.json pose {entry.get('name')}")


def _pose_tensors(golden: dict) -> list[tuple[str, int, tuple[int, int], str | None]]:
    found = []
    for key in sorted(golden):
        match = POSE_TENSOR.fullmatch(key)
        if match:
            size = (int(match["height"]), int(match["width"]))
            found.append((key, int(match["index"]), size, match["kind"]))
    return found


def test_every_golden_pose_is_readable(golden_json, golden):
    poses = golden_json["poses"]
    assert poses, "golden.json lists no poses"
    for entry in poses:
        pose = _golden_pose(entry)
        assert pose.frame == tuple(entry["old_size"]) and pose.num_visible > 0
    indices = {index for _, index, _, _ in _pose_tensors(golden)}
    assert indices and indices <= set(range(len(poses))), f"pose tensors for poses {sorted(indices)}"


def test_pose_images_match_the_original_renderer(golden_json, golden):
    """Our renderer against every ``pose_{i}_*`` tensor of the original.

    * ``pose_{i}_{H}x{W}`` (21 channels, float32): max |diff| <= 1e-5 (we expect, and get, 0).
    * ``pose_{i}_{H}x{W}_rgb_uint8``: the skeleton, exactly equal.
    * ``pose_{i}_{H}x{W}_heatmaps_f16``: the original's float32 heatmaps rounded to float16, so our
      float32 values may differ from them by float16's rounding: half a float16 ulp, i.e. at most
      2^-11 of the value for normal numbers plus 2^-25 absolute for subnormals. Rounded to float16
      ourselves, we must give the very same tensor.
    """
    import torch

    from cfld.pose import pose_image, render_heatmaps, render_skeleton

    checked = []
    for key, index, size, kind in _pose_tensors(golden):
        pose = _golden_pose(golden_json["poses"][index])
        expected = golden[key]
        assert tuple(expected.shape[-2:]) == size, f"{key} has shape {tuple(expected.shape)}"
        if kind is None:
            ours = pose_image(pose, size)
            assert ours.shape == expected.shape
            diff = (ours - expected).abs().max().item()
            assert diff <= 1e-5, f"{key}: max |diff| {diff}"
        elif kind == "rgb_uint8":
            ours = torch.from_numpy(render_skeleton(pose, size).transpose(2, 0, 1).copy())
            assert torch.equal(ours, expected), f"{key}: {(ours != expected).sum().item()} pixels differ"
        else:
            ours = torch.from_numpy(render_heatmaps(pose, size))
            bound = ours.abs() * 2.0**-11 + 2.0**-25
            assert ((ours - expected.float()).abs() <= bound).all(), f"{key}: beyond float16 rounding"
            assert torch.equal(ours.half(), expected), f"{key}: differs after rounding to float16"
        checked.append(key)
    assert checked, "no pose_{i}_* tensors in golden.safetensors"


def test_model_pose_input_is_the_rendered_golden_poses(golden_json, golden):
    """``input_pose_img`` (the batch of target poses fed to the model) is poses[0..B-1] rendered at its size."""
    from cfld.pose import pose_image

    if "input_pose_img" not in golden:
        pytest.skip("no input_pose_img in golden.safetensors")
    batch = golden["input_pose_img"]
    poses = golden_json["poses"]
    if batch.shape[0] != len(poses):
        pytest.skip(f"input_pose_img holds {batch.shape[0]} poses, golden.json lists {len(poses)}")
    size = tuple(batch.shape[-2:])
    for i, entry in enumerate(poses):
        ours = pose_image(_golden_pose(entry), size)
        assert np.abs(ours.numpy() - batch[i].numpy()).max() <= 1e-5, f"input_pose_img[{i}]"


# -- prompts: source image encoder H_S + perception-refined decoder H_D ---------------------------


def test_cond_c_matches_original(ref_dir, golden):
    """``cond_c`` = [learnable vector x B; H_D(f4 of H_S(input_img_cond))], built from config.yaml and the
    reference ``pytorch_model.bin``, eval mode, within 1e-5."""
    import torch
    import yaml

    from cfld.models import PerceptionRefinedDecoder, SourceImageEncoder

    config = yaml.safe_load((ref_dir / "config.yaml").read_text())
    weights = torch.load(ref_dir / "pytorch_model.bin", map_location="cpu", weights_only=True)
    encoder = SourceImageEncoder.from_original_config(config).eval()
    decoder = PerceptionRefinedDecoder.from_original_config(config).eval()
    encoder.load_original_state_dict(weights, ref_dir / "pytorch_model.bin")
    decoder.load_original_state_dict(weights, ref_dir / "pytorch_model.bin")
    images = golden["input_img_cond"]
    with torch.no_grad():
        prompts = torch.cat([weights["learnable_vector"].expand(images.shape[0], -1, -1), decoder(encoder(images)[-1])])
    assert prompts.shape == golden["cond_c"].shape
    diff = (prompts - golden["cond_c"]).abs().max().item()
    assert diff <= 1e-5, f"cond_c: max |diff| {diff}"


# -- sampling: CFLDPipeline with cumulative guidance, DDPM, the VAE --------------------------------


def _reference_sample(pipe, golden_json, golden, fuse: bool):
    import torch

    sample = golden_json["sample"]
    generator = torch.Generator().manual_seed(golden_json["seed"] + 4)  # the README's RNG protocol
    return pipe(
        golden["input_img_cond"], golden["input_pose_img"], paired=True,
        num_inference_steps=golden_json["steps"], guidance_pose=sample["w_pose"],
        guidance_appearance=sample["w_app"], generator=generator, fuse_branches=fuse,
        output_size=None, output_type="pt", return_latents=True, progress=False,
    )


@pytest.mark.parametrize("fuse", [False, True], ids=["three-branch", "two-branch"])
def test_sampling_matches_original(reference_pipeline, golden_json, golden, fuse):
    """``sample_z_0`` and ``sample_images`` within 1e-4: DDPM with the reference's scheduler config, its
    step count, seed and guidance weights; three UNet branches as the original, and our fused two."""
    pipe = reference_pipeline
    assert pipe.guidance_type == golden_json["sample"]["guidance"]
    out = _reference_sample(pipe, golden_json, golden, fuse)
    assert pipe.scheduler.timesteps.tolist() == golden_json["sample"]["timesteps"]
    for name, ours in (("sample_z_0", out.latents), ("sample_images", out.images)):
        assert ours.shape == golden[name].shape
        diff = (ours - golden[name]).abs().max().item()
        assert diff <= 1e-4, f"{name}: max |diff| {diff}"


def test_initial_noise_follows_the_rng_protocol(reference_pipeline, golden_json, golden):
    """z_T is the first draw of ``torch.Generator().manual_seed(seed + 4)``, as ``sample_z_T``."""
    import torch

    generator = torch.Generator().manual_seed(golden_json["seed"] + 4)
    z_t = torch.randn(golden["sample_z_T"].shape, generator=generator)
    assert torch.equal(z_t, golden["sample_z_T"])


def test_vae_encoding_matches_original(reference_pipeline, golden):
    """``vae_latent_mean_scaled`` = posterior mean of E(vae_input) x scaling_factor, within 1e-5."""
    ours = reference_pipeline.encode_images(golden["vae_input"])
    diff = (ours - golden["vae_latent_mean_scaled"]).abs().max().item()
    assert diff <= 1e-5, f"vae_latent_mean_scaled: max |diff| {diff}"


# -- conditions and one UNet call: CFLDModel (H_S, H_D, H_A, H_P) + stock UNet with HGA processors -----

COND_DOWN = re.compile(r"cond_down_(\d+)")
COND_UP = re.compile(r"cond_up_block_(\d+)_cross_attn_q")
UNET_EPS = re.compile(r"unet_eps_t(\d+)")


@pytest.fixture(scope="module")
def original_model(ref_dir, golden_json):
    """The reference's ``pytorch_model.bin`` + ``pytorch_model_1.bin`` through ``cfld.checkpoint.load_original``
    (strict keys), configured from its ``config.yaml`` and ``golden.json``'s UNet config; eval mode."""
    from cfld.checkpoint import load_original
    from cfld.models.config import CFLDConfig

    config = CFLDConfig.from_original_yaml(ref_dir / "config.yaml", unet=golden_json["unet_config"])
    return load_original(ref_dir, config)


@pytest.fixture(scope="module")
def our_conditions(original_model, golden):
    import torch

    model, _ = original_model
    with torch.no_grad():
        return model(golden["input_img_cond"], golden["input_pose_img"])


def _golden_family(golden: dict, pattern: re.Pattern) -> dict:
    return {int(m[1]): golden[k] for k in golden if (m := pattern.fullmatch(k))}


def _assert_close(ours, expected, name: str, tol: float = 1e-5) -> None:
    assert tuple(ours.shape) == tuple(expected.shape), f"{name}: shape {tuple(ours.shape)}, expected {tuple(expected.shape)}"
    diff = (ours - expected).abs().max().item()
    assert diff <= tol, f"{name}: max |diff| {diff}"


def test_pose_adapter_maps_match_original(our_conditions, golden):
    """``cond_down_i`` = H_P(input_pose_img)[i], the maps added at the end of UNet down block i, within 1e-5."""
    expected = _golden_family(golden, COND_DOWN)
    assert sorted(expected) == list(range(len(our_conditions.pose))), f"golden has cond_down_{sorted(expected)}"
    for i, ours in enumerate(our_conditions.pose):
        _assert_close(ours, expected[i], f"cond_down_{i}")


def test_hga_query_biases_match_original(original_model, our_conditions, golden):
    """``cond_up_block_{k}_cross_attn_q`` = phi_A(f_l) for every up-block cross-attention layer k, within 1e-5."""
    model, _ = original_model
    expected = _golden_family(golden, COND_UP)
    assert set(expected) == set(our_conditions.query_biases), f"golden layers {sorted(expected)}"
    assert set(expected) == {k for scale in model.config.hga_layers for k in scale}
    for k, ours in our_conditions.query_biases.items():
        _assert_close(ours, expected[k], f"cond_up_block_{k}_cross_attn_q")


def test_cfld_model_prompts_match_original(original_model, our_conditions, golden):
    """``cond_c`` through CFLDModel: [learnable unconditional prompt x B; H_D(H_S(input_img_cond))]."""
    import torch

    model, _ = original_model
    batch = golden["input_img_cond"].shape[0]
    prompts = torch.cat([model.unconditional_prompt(batch), our_conditions.prompt]).detach()
    _assert_close(prompts, golden["cond_c"], "cond_c")


def _unet_eps(unet, conditions, golden):
    """One UNet call on [z, z, z] with ``conditions`` already laid out as the README's three branches."""
    import torch

    (t, expected), = _golden_family(golden, UNET_EPS).items()
    z = golden["unet_input_latents"]
    with torch.no_grad():
        eps = unet(z.repeat(3, 1, 1, 1), t, **conditions.unet_kwargs()).sample
    return eps, expected, f"unet_eps_t{t}"


def test_unet_eps_from_golden_conditions(original_model, golden):
    """The stock UNet with our HGA processors, fed the GOLDEN conditions in the three-branch layout (prompts
    [c[:B], c[:B], c[B:]], pose maps [0, pose, pose], query biases [0, 0, bias]) gives ``unet_eps_t*``."""
    import torch

    from cfld.models.cfld import Conditions

    _, unet = original_model
    c = golden["cond_c"]
    batch = c.shape[0] // 2
    pose = [torch.cat([torch.zeros_like(m), m, m]) for _, m in sorted(_golden_family(golden, COND_DOWN).items())]
    biases = {k: torch.cat([torch.zeros_like(b), torch.zeros_like(b), b]) for k, b in _golden_family(golden, COND_UP).items()}
    conditions = Conditions(torch.cat([c[:batch], c[:batch], c[batch:]]), pose, biases)
    _assert_close(*_unet_eps(unet, conditions, golden))


def test_unet_eps_from_our_conditions(original_model, our_conditions, golden):
    """The whole path: our conditions of input_img_cond / input_pose_img, stacked by
    ``CFLDModel.guidance_batch`` for Eq. 7's branches (∅,∅), (∅,pose), (src,pose), give ``unet_eps_t*``."""
    from cfld.guidance import FULL, POSE_ONLY, UNCOND

    model, unet = original_model
    conditions = model.guidance_batch(our_conditions, [UNCOND, POSE_ONLY, FULL])
    _assert_close(*_unet_eps(unet, conditions, golden))


# -- evaluation metrics ------------------------------------------------------------------------------


def test_pixel_metrics_match_original_evaluation(golden_json, golden):
    """golden.json ``metrics`` (the original's per-pair PSNR, SSIM and SSIM_256 of ``metric_gt_uint8`` /
    ``metric_pred_uint8``) from our batched implementation, each within 1e-4."""
    from cfld.metrics import pixel_metrics

    if "metrics" not in golden_json or "metric_gt_uint8" not in golden:
        pytest.skip("no metrics / metric_*_uint8 in the reference directory")
    ours = pixel_metrics(golden["metric_gt_uint8"], golden["metric_pred_uint8"])
    expected = golden_json["metrics"]
    assert set(expected) <= set(ours), f"golden metrics {sorted(expected)}"
    for name, values in expected.items():
        assert len(values) == golden["metric_gt_uint8"].shape[0], name
        diff = np.abs(ours[name].numpy() - np.asarray(values, dtype=np.float64)).max()
        assert diff <= 1e-4, f"{name}: max |diff| {diff}"


def test_fid_matches_original_evaluation(golden_json, golden):
    """golden.json ``fid``: the original's Frechet distance of ``fid_feats_real`` and ``fid_feats_fake``."""
    from cfld.metrics import frechet_distance_from_features

    if "fid" not in golden_json or "fid_feats_real" not in golden:
        pytest.skip("no fid / fid_feats_* in the reference directory")
    ours = frechet_distance_from_features(golden["fid_feats_real"], golden["fid_feats_fake"])
    assert ours == pytest.approx(golden_json["fid"], rel=1e-6, abs=1e-6)

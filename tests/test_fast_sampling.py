"""The fast preset and guidance intervals: what `--fast` runs (UNet evaluations counted), and that the paper's
default path is untouched by them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, UNet2DConditionModel
from PIL import Image

from cfld import presets
from cfld.errors import InputError
from cfld.pose import gallery, write_pose_json
from conftest import assert_fails, run

PHOTO = Path(__file__).resolve().parent / "data" / "women1.jpg"


@pytest.fixture
def unet_evaluations(monkeypatch):
    """Counts the UNet's batch entries (one per branch per image per step) in this process; the shape check
    of a loading model (on the meta device, no arithmetic) is not counted."""
    counter = {"calls": 0, "entries": 0}
    forward = UNet2DConditionModel.forward

    def counting(self, sample, *args, **kwargs):
        if sample.device.type != "meta":
            counter["calls"] += 1
            counter["entries"] += sample.shape[0]
        return forward(self, sample, *args, **kwargs)

    monkeypatch.setattr(UNet2DConditionModel, "forward", counting)
    return counter


@pytest.fixture(scope="module")
def pose_file(tmp_path_factory) -> Path:
    table = gallery()
    return write_pose_json(table[table.names[0]], tmp_path_factory.mktemp("poses") / "front.json")


def test_guided_steps_and_evaluations():
    assert presets.guided_steps(10, None) == [True] * 10
    assert presets.guided_steps(10, (0.0, 0.6)) == [True] * 6 + [False] * 4
    assert presets.guided_steps(10, (0.2, 1.0)) == [False] * 2 + [True] * 8
    assert presets.guided_steps(4, (0.0, 0.0)) == [False] * 4
    assert presets.PAPER.unet_evaluations() == 100  # 50 steps x (unconditional + conditioned branch)
    assert presets.unet_evaluations(20, (0.0, 0.6)) == 12 * 2 + 8
    assert presets.unet_evaluations(50, None, branches=3) == 150  # the original's three-branch loop
    # the fast preset is what the README promises: at least 3x fewer UNet evaluations than DDPM-50
    assert presets.PAPER.unet_evaluations() >= 3 * presets.FAST.unet_evaluations()
    for bad in [(0.5,), (0.8, 0.2), (float("nan"), 1.0), (-0.1, 1.0), (0.0, 1.5), "ab", None]:
        with pytest.raises(InputError, match="guidance_interval"):
            presets.check_interval(bad)


def test_resolve_keeps_what_is_given():
    assert presets.resolve(False) == (50, "ddpm", None)
    assert presets.resolve(False, default_scheduler="ddim") == (50, "ddim", None)
    fast = presets.FAST
    interval = None if fast.guidance_interval == (0.0, 1.0) else fast.guidance_interval
    assert presets.resolve(True) == (fast.num_inference_steps, fast.scheduler, interval)
    assert presets.resolve(True, 7, "unipc", (0.0, 0.5)) == (7, "unipc", (0.0, 0.5))
    assert presets.resolve(False, interval=(0, 1)) == (50, "ddpm", None)


def test_pipeline_fast_runs_the_preset(reference_pipeline, unet_evaluations, monkeypatch):
    steps_seen = []
    set_timesteps = DPMSolverMultistepScheduler.set_timesteps
    monkeypatch.setattr(DPMSolverMultistepScheduler, "set_timesteps",
                        lambda self, n, *a, **k: steps_seen.append((n, self.config.use_karras_sigmas)) or
                        set_timesteps(self, n, *a, **k))
    table = gallery()
    poses = [table[table.names[0]], table[table.names[1]]]
    reference_pipeline(PHOTO, poses, fast=True, output_type="latent", progress=False)
    assert unet_evaluations["entries"] == 2 * presets.FAST.unet_evaluations()
    assert unet_evaluations["calls"] == presets.FAST.num_inference_steps  # both pairs in one batch per step
    assert steps_seen[-1] == (15, True)  # DPM-Solver++ with Karras sigmas, 15 steps


def test_guidance_interval_skips_the_unconditional_branch(reference_pipeline, unet_evaluations):
    table = gallery()
    pose = table[table.names[0]]
    kwargs = dict(num_inference_steps=8, output_type="latent", progress=False)
    z_t = torch.randn(1, 4, *reference_pipeline.latent_size, generator=torch.Generator().manual_seed(3))
    full = reference_pipeline(PHOTO, pose, latents=z_t, generator=torch.Generator().manual_seed(1), **kwargs).images
    assert unet_evaluations["entries"] == 16
    unet_evaluations["entries"] = 0
    half = reference_pipeline(PHOTO, pose, latents=z_t, generator=torch.Generator().manual_seed(1),
                              guidance_interval=(0.0, 0.5), **kwargs).images
    assert unet_evaluations["entries"] == 4 * 2 + 4 * 1
    assert not torch.equal(full, half)
    # the whole trajectory as the interval is the default path, bit for bit
    same = reference_pipeline(PHOTO, pose, latents=z_t, generator=torch.Generator().manual_seed(1),
                              guidance_interval=(0.0, 1.0), **kwargs).images
    assert torch.equal(full, same)
    # no guided step = guidance weight 1 everywhere (the conditioned branch alone), up to float rounding
    none = reference_pipeline(PHOTO, pose, latents=z_t, generator=torch.Generator().manual_seed(1),
                              guidance_interval=(0.0, 0.0), **kwargs).images
    weight_one = reference_pipeline(PHOTO, pose, latents=z_t, generator=torch.Generator().manual_seed(1),
                                    guidance_pose=1.0, guidance_appearance=1.0, **kwargs).images
    assert torch.allclose(none, weight_one, atol=1e-4)
    assert not torch.allclose(none, full, atol=1e-3)


def test_transfer_fast_is_the_preset_and_the_default_is_the_paper(tiny_model_dir, pose_file, tmp_path, capsys,
                                                                   unet_evaluations):
    base = ["transfer", "-s", PHOTO, "-p", pose_file, "-m", tiny_model_dir, "--size", "64x44"]
    code, _, err = run(capsys, *base, "-o", tmp_path / "fast", "--fast")
    assert code == 0, err
    assert unet_evaluations["entries"] == presets.FAST.unet_evaluations()
    unet_evaluations["entries"] = 0
    code, _, err = run(capsys, *base, "-o", tmp_path / "paper")
    assert code == 0, err
    assert unet_evaluations["entries"] == 100  # DDPM, 50 steps, two branches: the paper's sampler
    fast = presets.FAST
    code, _, err = run(capsys, *base, "-o", tmp_path / "by-hand", "--scheduler", fast.scheduler,
                       "--steps", fast.num_inference_steps)
    assert code == 0, err
    picture = lambda name: np.asarray(Image.open(tmp_path / name / "women1_to_front.png"))  # noqa: E731
    assert np.array_equal(picture("fast"), picture("by-hand"))
    assert not np.array_equal(picture("fast"), picture("paper"))
    # --steps still applies with --fast; a guidance interval is counted as it says
    unet_evaluations["entries"] = 0
    code, _, err = run(capsys, *base, "-o", tmp_path / "interval", "--fast", "--steps", "10",
                       "--guidance-interval", "0,0.6")
    assert code == 0, err
    assert unet_evaluations["entries"] == 6 * 2 + 4


def test_animate_and_edit_take_fast(tiny_model_dir, pose_file, tmp_path, capsys, unet_evaluations):
    poses = tmp_path / "poses"
    poses.mkdir()
    table = gallery()
    for i in range(2):
        write_pose_json(table[table.names[i]], poses / f"{i:02d}.json")
    code, _, err = run(capsys, "animate", "-s", PHOTO, "-p", poses, "-m", tiny_model_dir, "-o", tmp_path / "anim",
                       "--no-mp4", "--size", "64x44", "--fast")
    assert code == 0, err
    assert unet_evaluations["entries"] == 2 * presets.FAST.unet_evaluations()
    unet_evaluations["entries"] = 0
    code, _, err = run(capsys, "edit", "interpolate", "-a", PHOTO, "-b", PHOTO, "-p", pose_file, "-n", "2",
                       "-m", tiny_model_dir, "-o", tmp_path / "strip.png", "--size", "64x44", "--fast")
    assert code == 0, err
    assert unet_evaluations["entries"] == 2 * presets.FAST.unet_evaluations()


@pytest.mark.parametrize("value, fragment", [("0.5", "START,END"), ("a,b", "START,END"), ("0.8,0.2", "start <= end"),
                                             ("nan,1", "0 <= start"), ("0,2", "0 <= start"), ("", "START,END")])
def test_bad_guidance_intervals_are_one_line(tiny_model_dir, pose_file, tmp_path, capsys, value, fragment):
    assert_fails(capsys, ["transfer", "-s", PHOTO, "-p", pose_file, "-m", tiny_model_dir, "-o", tmp_path / "o",
                          "--guidance-interval", value], "--guidance-interval", fragment)
    assert not (tmp_path / "o").exists()


def test_help_says_what_fast_changes(capsys):
    for command in (["transfer"], ["animate"], ["sample"], ["edit", "style-transfer"]):
        code, out, _ = run(capsys, *command, "--help")
        assert code == 0
        text = " ".join(out.split())
        assert "--fast" in text and f"{presets.FAST.scheduler} in {presets.FAST.num_inference_steps} steps" in text
        assert "with --fast: 15" in text and "3.3x fewer UNet evaluations" in text


def test_gpu_benchmark_without_cuda_says_so_and_its_code_runs():
    """benchmarks/gpu.py cannot be measured here (no GPU): without CUDA it exits 0 saying why, and its whole code
    path runs on the CPU with a tiny model, so the script a GPU user runs is not untested."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"
    env = {"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "no CUDA device" in done.stdout
    done = subprocess.run([sys.executable, script, "--device", "cpu", "--preset", "tiny", "--batches", "2",
                           "--dtypes", "fp32", "--steps", "2"], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    import re

    for name in ("original-style", "ours (paper)", "ours (fast)"):  # a row of the final table each
        assert re.search(rf"^fp32\s+2\s+{re.escape(name)}\s+[\d.]+\s+[\d.]+x\s+-\s+[\d.]+$",
                         done.stdout, re.M), done.stdout


@pytest.mark.parametrize("name", ["euler", "euler-a"])
def test_sigma_space_schedulers_start_from_the_noise_of_their_own_first_step(reference_pipeline, name):
    """Euler scales z_T by sqrt(sigma_max^2 + 1) and each UNet input by 1 / sqrt(sigma_t^2 + 1): with sigma_max taken
    from the steps being run (the schedule set first), the first UNet input is z_T itself. Taking it from the
    1,000-step training schedule instead made every Euler image too noisy (SSIM 0.16 on the demo model)."""
    z_t = torch.randn(1, 4, *reference_pipeline.latent_size, generator=torch.Generator().manual_seed(4))
    inputs = []
    hook = reference_pipeline.unet.register_forward_pre_hook(lambda module, args: inputs.append(args[0].clone()))
    try:
        table = gallery()
        reference_pipeline(PHOTO, table[table.names[0]], latents=z_t, scheduler=name, num_inference_steps=15,
                           output_type="latent", progress=False, generator=torch.Generator().manual_seed(0))
    finally:
        hook.remove()
    first = inputs[0]
    assert torch.allclose(first[:1], z_t, atol=1e-5) and torch.allclose(first[1:], z_t, atol=1e-5)

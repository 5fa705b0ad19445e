"""Training's memory and speed levers (docs/training.md "Memory and speed"): each one's recipe key, what it keeps
exact, and its clear error where it cannot run. The cost of each is measured by benchmarks/train_cost.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cfld.cli import main
from cfld.errors import InputError
from cfld.models.cfld import CFLDModel, build_unet
from cfld.models.config import CFLDConfig
from cfld.training import TrainConfig
from cfld.training.checkpoints import optimizer_from_files, optimizer_to_files
from cfld.training.step import CFLDTrainingModule, adam_class, keep_frozen_in, set_trainable
from test_disk_full import small_prepared
from test_training import run, tiny

TESTS = Path(__file__).resolve().parent
BENCHMARKS = TESTS.parent / "benchmarks"


def tiny_models(seed: int = 0, drop_path: float = 0.0):
    torch.manual_seed(seed)
    config = CFLDConfig.preset("tiny")
    config.swin_drop_path = drop_path
    model, unet = CFLDModel.from_config(config), build_unet(config)
    for conv in model.appearance_encoder.zero_conv_outs:  # non-zero HGA outputs, so that gradients reach H_A
        torch.nn.init.normal_(conv.weight, std=0.02)
    set_trainable(model, unet, "paper")
    return config, model.train(), unet.train()


def inputs(config, pairs: int = 2, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    latent = (config.unet.get("in_channels", 4), *(s // 8 for s in config.image_size))
    return (torch.randn(pairs, 3, *config.cond_size, generator=g),
            torch.rand(2 * pairs, config.pose_channels, *config.pose_size, generator=g),
            torch.randn(2 * pairs, *latent, generator=g), torch.tensor([10, 500, 900, 999][: 2 * pairs]))


# -- frozen weights in 16 bits ------------------------------------------------------------------------------------


def test_frozen_weights_are_kept_in_16_bits_and_saved_as_loaded():
    config, model, unet = tiny_models()
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    frozen = sum(p.numel() for p in unet.parameters() if not p.requires_grad)
    assert keep_frozen_in(torch.bfloat16, unet) == 2 * frozen > 0
    for name, p in unet.named_parameters():
        assert p.dtype == (torch.float32 if p.requires_grad else torch.bfloat16), name
    after = unet.state_dict()  # checkpoints and save_pretrained see the weights as loaded, bit for bit
    assert after.keys() == before.keys() and all(after[k].dtype == before[k].dtype and torch.equal(after[k], before[k])
                                                 for k in before)
    module = CFLDTrainingModule(model, unet)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = module(*inputs(config)).float().pow(2).mean()
    loss.backward()
    trained = [p for p in unet.parameters() if p.requires_grad]
    assert all(p.grad is not None and p.grad.dtype == torch.float32 and p.grad.abs().sum() > 0 for p in trained)
    assert all(p.grad is None for p in unet.parameters() if not p.requires_grad)
    assert keep_frozen_in(torch.bfloat16, unet) == 0  # already done: nothing more
    # the trainer's sample grids and periodic evaluation sample from these weights under autocast
    from diffusers import AutoencoderKL

    from cfld.pipeline import CFLDPipeline

    vae = AutoencoderKL(block_out_channels=(8, 8, 8, 8), norm_num_groups=8, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    keep_frozen_in(torch.bfloat16, vae.requires_grad_(False))
    pipe = CFLDPipeline(model.eval(), unet.eval(), vae, "ddim")
    cond, pose, _, _ = inputs(config, pairs=1)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = pipe(cond, pose[:1], paired=True, num_inference_steps=2, output_type="pt", output_size=None,
                   generator=torch.Generator().manual_seed(0), progress=False)
    assert out.images.shape[0] == 1 and torch.isfinite(out.images.float()).all()


# -- activation checkpointing of the condition path -----------------------------------------------------------------


def test_condition_checkpointing_gives_the_same_numbers_with_less_kept_for_backward():
    """Swin drop path on: the recomputation in backward replays the same random draws; loss, every gradient and the
    random stream after the step are bit-identical, and less is kept between forward and backward."""
    results = []
    for checkpointing in (False, True):
        config, model, unet = tiny_models(drop_path=0.3)
        model.source_encoder.swin.set_grad_checkpointing(checkpointing)
        module = CFLDTrainingModule(model, unet, checkpoint_conditions=checkpointing)
        kept = []
        torch.manual_seed(5)
        with torch.autograd.graph.saved_tensors_hooks(
                lambda t, kept=kept: kept.append(t.numel() * t.element_size()) or t, lambda t: t):
            loss = module(*inputs(config)).pow(2).mean()
        loss.backward()
        grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
        results.append((loss.detach(), grads, torch.rand(4), sum(kept)))
    (loss_a, grads_a, next_a, kept_a), (loss_b, grads_b, next_b, kept_b) = results
    assert torch.equal(loss_a, loss_b) and torch.equal(next_a, next_b)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 50
    assert all(torch.equal(grads_a[k], grads_b[k]) for k in grads_a)
    assert kept_b < 0.8 * kept_a


# -- DDP, the optimizer ------------------------------------------------------------------------------------------------


def test_ddp_keeps_gradients_in_its_buckets_unless_asked(tmp_path):
    from cfld.training.preflight import make_accelerator

    config = tiny(mixed_precision="no")
    assert config.gradient_as_bucket_view is True
    assert make_accelerator(config, tmp_path).ddp_handler.gradient_as_bucket_view is True
    config.gradient_as_bucket_view = False
    handler = make_accelerator(config, tmp_path).ddp_handler
    assert handler is not None and handler.gradient_as_bucket_view is False


def test_adam8bit_is_refused_in_one_sentence_without_a_gpu(tmp_path, capsys):
    config = tiny(optimizer="adam8bit")
    config.validate()
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="adam8bit .*CUDA GPUs only; use optimizer: adam"):
            adam_class("adam8bit")
        path = tmp_path / "config.json"
        path.write_text(config.to_json())
        assert main(["train", "--config", str(path), "--output", str(tmp_path / "run"), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and "adam8bit" in err[0] and "CUDA" in err[0]
        assert not (tmp_path / "run").exists()  # refused before anything was written
    bad = tmp_path / "bad.yaml"
    bad.write_text("optimizer: sgd\n")
    with pytest.raises(InputError, match="optimizer must be one of adam, adam8bit"):
        TrainConfig.load(bad)
    bad.write_text("cache_latents: sometimes\n")
    with pytest.raises(InputError, match="cache_latents must be true, false or auto"):
        TrainConfig.load(bad)
    assert adam_class("adam") is torch.optim.Adam


def test_optimizer_state_with_plain_numbers_survives_a_checkpoint():
    """bitsandbytes keeps ``step`` as an int beside its tensors; a checkpoint keeps it, and its type."""
    state = {"state": {0: {"step": 7, "state1": torch.arange(4, dtype=torch.uint8), "gnorm": 0.5},
                       1: {"step": torch.tensor(3.0), "exp_avg": torch.ones(2)}},
             "param_groups": [{"lr": 1e-3, "params": [0, 1]}]}
    tensors, groups = optimizer_to_files(state)
    back = optimizer_from_files(tensors, groups)
    assert back["state"][0]["step"] == 7 and type(back["state"][0]["step"]) is int
    assert back["state"][0]["gnorm"] == 0.5 and type(back["state"][0]["gnorm"]) is float
    assert torch.equal(back["state"][0]["state1"], state["state"][0]["state1"])
    assert torch.equal(back["state"][1]["step"], torch.tensor(3.0)) and back["param_groups"] == groups


# -- the latent cache -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return small_prepared(tmp_path_factory, {"test": 1, "train": 6})


def small_vae(seed: int = 0):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(block_out_channels=(8, 8), norm_num_groups=4, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2).eval().requires_grad_(False)


def dataset_of(root: Path):
    from cfld.data import PoseTransferDataset

    return PoseTransferDataset(root, "train", image_size=(64, 48), cond_size=(32, 32), pose_size=(32, 32))


class Counting:
    """The VAE, counting the photos it encodes."""

    def __init__(self, vae):
        self.vae, self.photos = vae, 0

    def __getattr__(self, name):
        return getattr(self.vae, name)

    def encode(self, x):
        self.photos += x.shape[0]
        return self.vae.encode(x)


def test_the_latent_cache_holds_each_photos_posterior_and_draws_as_the_vae_does(prepared, tmp_path):
    from cfld.training.latent_cache import build_latent_cache
    from cfld.training.step import encode_latents

    data, vae = dataset_of(prepared), small_vae()
    cache = build_latent_cache(data, vae, tmp_path / "cache", batch_size=3, progress=False, shard_size=4)
    names = data.photo_names()
    assert len(cache) == len(names) > 4
    assert len(list((tmp_path / "cache").glob("*/shard-*.safetensors"))) == -(-len(names) // 4)
    mean, std = cache.posterior(names)
    with torch.no_grad():
        posterior = vae.encode(torch.stack([data.photo(n) for n in names])).latent_dist
    # the same numbers up to the rounding of encoding in other batches (3 photos at a time against all at once)
    assert (mean - posterior.mean).abs().max() < 1e-5 and (std - posterior.std).abs().max() < 1e-5
    # a training batch: the same eps from the same stream, so the same latents up to that rounding
    batch = {key: [] for key in ("img_src", "img_tgt", "name_src", "name_tgt")}
    for i in range(3):
        item = data[i]
        for key in batch:
            batch[key].append(item[key])
    batch = {k: torch.stack(v) if k.startswith("img") else v for k, v in batch.items()}
    torch.manual_seed(11)
    direct = encode_latents(batch, vae, "cpu")
    torch.manual_seed(11)
    cached = encode_latents(batch, vae, "cpu", cache)
    assert direct.shape == cached.shape == (6, 4, 32, 24)
    assert (direct - cached).abs().max() < 1e-4 and not torch.equal(direct, torch.zeros_like(direct))
    with pytest.raises(InputError, match="has no latents of photo 'nobody.jpg'"):
        cache.posterior(["nobody.jpg"])


def test_the_latent_cache_resumes_and_shares_out(prepared, tmp_path):
    import shutil

    from cfld.training.latent_cache import build_latent_cache

    root = tmp_path / "data"
    shutil.copytree(prepared, root)
    import threading

    data, base = dataset_of(root), small_vae()
    # two processes (threads here), sharing the shards out and waiting for each other
    vaes, caches, wait = [Counting(base), Counting(base)], [None, None], threading.Barrier(2, timeout=60)

    def process(rank):
        caches[rank] = build_latent_cache(data, vaes[rank], rank=rank, world=2, barrier=wait.wait, progress=False,
                                          shard_size=4)

    threads = [threading.Thread(target=process, args=(rank,)) for rank in (0, 1)]
    [t.start() for t in threads], [t.join() for t in threads]
    total = len(data.photo_names())
    assert vaes[1].photos == sum(min(4, total - start) for start in range(4, total, 8))
    assert vaes[0].photos + vaes[1].photos == total and None not in caches
    cache, vae = caches[0], Counting(base)
    (folder,) = (root / "latent-cache").iterdir()  # beside the dataset by default
    assert folder.name.startswith("train-") and folder.name.endswith("-64x48")
    # a killed encoding: the missing shard alone is encoded again, the other is kept as it was
    shards = sorted(folder.glob("shard-*.safetensors"))
    kept = shards[1].stat().st_mtime_ns
    shards[0].unlink()
    vae.photos = 0
    again = build_latent_cache(data, vae, progress=False, shard_size=4)
    assert vae.photos == 4 and shards[1].stat().st_mtime_ns == kept
    assert torch.equal(again.posterior(data.photo_names())[0], cache.posterior(data.photo_names())[0])
    # another VAE: another cache beside it
    build_latent_cache(data, small_vae(seed=1), progress=False)
    assert len(list((root / "latent-cache").iterdir())) == 2
    # another size of shards: each shard is checked against the photos of its rows, so all are encoded again
    vae.photos = 0
    build_latent_cache(data, vae, progress=False)
    assert vae.photos == total
    # tampered, foreign and stale shards: tests/test_data_trust.py


def test_training_from_the_latent_cache_follows_the_same_curve(prepared, tmp_path):
    """A run on prepared data caches by default (auto); its losses are those of the run that encodes at every
    step, up to the encoder's batch rounding; a second run encodes nothing."""
    data = {"kind": "prepared", "root": str(prepared)}
    config = tiny(data=data, max_steps=3, batch_size=2)
    assert config.cache_latents == "auto"
    cached = run(config, tmp_path / "cached")
    assert len(list((prepared / "latent-cache").glob("train-*/shard-*.safetensors"))) == 1
    direct = run(tiny(data=data, max_steps=3, batch_size=2, cache_latents=False), tmp_path / "direct")
    assert len(cached) == len(direct) == 3
    assert all(abs(cached[s] - direct[s]) <= 1e-5 * abs(direct[s]) + 1e-7 for s in direct), (cached, direct)
    with pytest.raises(InputError, match="cache_latents needs a prepared dataset"):
        run(tiny(cache_latents=True), tmp_path / "synthetic")
    assert not (tmp_path / "synthetic").exists()


def test_a_latent_cache_that_cannot_be_written_is_refused_or_skipped(prepared, tmp_path, monkeypatch):
    """A read-only dataset: ``true`` refuses before anything is written, ``auto`` encodes at every step instead
    (the tests run as root, for whom every folder is writable: os.access answers as for another user)."""
    from cfld.training import preflight

    data = {"kind": "prepared", "root": str(prepared)}
    config = tiny(data=data, latent_cache_dir=str(tmp_path / "ro" / "cache"))
    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(preflight.os, "access", lambda path, mode: Path(path) != tmp_path / "ro")
    dataset = dataset_of(prepared)
    assert preflight.uses_latent_cache(config, dataset, "recipe") is False
    config.cache_latents = True
    with pytest.raises(InputError, match=r"ro: is not writable, so the latent cache cannot be written there: set "
                                         r"latent_cache_dir to a writable folder, or cache_latents: false"):
        preflight.uses_latent_cache(config, dataset, "recipe")
    config.latent_cache_dir = str(tmp_path / "elsewhere")
    assert preflight.uses_latent_cache(config, dataset, "recipe") is True


# -- the benchmarks' code paths, on the tiny model --------------------------------------------------------------------


def test_train_cost_benchmark_runs_on_the_tiny_model():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(BENCHMARKS / "train_cost.py"), "--preset", "tiny", "--steps", "1",
                           "--threads", "1", "--rows", "off:1,2;+cache:1,2;ddp:1;ddp-copy:1"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=BENCHMARKS)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "| original (fp32 weights, bucket view) | 4.56 | 0.99 | 1.99 | 0.00 | 7.54 | 1.00x |" in out
    assert "| ours default + adam8bit | 2.86 | 0.99 | 0.51 | 0.00 | 4.36 | 0.58x |" in out
    assert "failed" not in out and out.count("| +cache | ") == 2 and "| 28 pairs (the paper) |" in out


def test_gpu_benchmark_train_mode_runs_its_code_on_the_cpu(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(BENCHMARKS / "gpu.py"), "--train", "--device", "cpu", "--preset", "tiny",
                           "--pairs", "1,2", "--dtypes", "bf16", "--json", str(tmp_path / "gpu.json")],
                          capture_output=True, text=True, timeout=300, env=env, cwd=BENCHMARKS)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((tmp_path / "gpu.json").read_text())
    assert {(r["dtype"], r["pairs"], r["levers"]) for r in rows} >= {("bf16", 1, "off"), ("bf16", 2, "on")}
    assert all(r["seconds_per_step"] > 0 and r["loss"] == r["loss"] for r in rows)  # finite, not NaN
    done = subprocess.run([sys.executable, str(BENCHMARKS / "gpu.py"), "--train"], capture_output=True, text=True,
                          timeout=120, env=env, cwd=BENCHMARKS)
    if not torch.cuda.is_available():
        assert done.returncode == 0 and "no CUDA device" in done.stdout

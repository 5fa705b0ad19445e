"""cfld.training and `cfld train`: the recipe's pieces, exact resume, NaN stop, checkpoints, 2-process sync."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cfld.checkpoint import load_checkpoint
from cfld.cli import main
from cfld.errors import InputError
from cfld.models.cfld import CFLDModel, build_unet, trainable_parameter_counts
from cfld.models.config import CFLDConfig
from cfld.training import TrainConfig, Trainer, TrainingError, cubic_timesteps, lr_factor, presets
from cfld.training.checkpoints import find_checkpoint
from cfld.training.step import set_trainable
from cfld.training.trainer import epoch_batches
from conftest import assert_usual_permissions

TESTS = Path(__file__).resolve().parent


def tiny(**changes) -> TrainConfig:
    """The CPU preset shrunk to seconds: 8 pairs, batch 2, a VAE trained for 2 steps."""
    config = TrainConfig.load("synthetic-cpu")
    config.vae = dict(config.vae, train_steps=2, batch_size=4, block_out_channels=[8, 8, 8], norm_num_groups=4)
    config.data = {"kind": "synthetic", "length": 8, "seed": 0, "photo_size": [64, 44]}
    config.batch_size, config.epochs, config.decay_epochs = 2, 3, (1,)
    config.warmup_steps, config.num_workers, config.torch_threads = 3, 0, 1
    config.checkpoint_every, config.sample_every, config.log_every = 0, 0, 1
    for key, value in changes.items():
        setattr(config, key, value)
    return config


class Interrupt(Exception):
    pass


def run(config: TrainConfig, output: Path, stop_after: int | None = None, **kwargs) -> dict[int, float]:
    losses: dict[int, float] = {}

    def callback(result):
        losses[result.step] = result.loss
        if stop_after is not None and result.step == stop_after:
            raise Interrupt

    try:
        Trainer(config, output, progress=False, **kwargs).train(callback)
    except Interrupt:
        pass
    return losses


# -- the recipe's pieces ----------------------------------------------------------------------------------


def test_cubic_timesteps_favour_large_t_and_stay_in_range():
    torch.manual_seed(0)
    t = cubic_timesteps(200_000, 1000)
    assert t.dtype == torch.int64 and t.min() >= 0 and t.max() <= 999
    assert abs(t.float().mean().item() - 749.5) < 3  # E[(1 - u^3) T] = 3T/4, minus 1/2 from truncation
    assert (t >= 500).float().mean().item() == pytest.approx(0.5 ** (1 / 3), abs=0.01)  # P(u^3 <= 1/2); uniform: 1/2


def test_lr_schedule_warmup_then_decay():
    f = lambda s: lr_factor(s, 1000, 0.1, [5000], 0.1)  # noqa: E731
    assert f(0) == pytest.approx(0.1 + 0.9 / 1000)
    assert f(499) == pytest.approx(0.55)
    assert f(999) == pytest.approx(1.0) and f(1000) == 1.0 and f(4999) == 1.0
    assert f(5000) == pytest.approx(0.1)


def test_paper_trainable_parameters_are_table_1():
    config = CFLDConfig.preset("sd15")
    with torch.device("meta"):
        model, unet = CFLDModel.from_config(config), build_unet(config)
    unet.requires_grad_(True)
    set_trainable(model, unet, "paper")
    assert trainable_parameter_counts(model, unet)["total"] == 248_224_312
    set_trainable(model, unet, "unet")
    assert trainable_parameter_counts(model, unet)["unet"] == sum(p.numel() for p in unet.parameters())


def test_epoch_batches_split_a_seeded_permutation_across_processes():
    one = epoch_batches(10, 3, 0, batch=2, rank=0, world=1, batches=5)
    assert sorted(i for b in one for i in b) == list(range(10))
    ranks = [epoch_batches(10, 3, 0, batch=2, rank=r, world=2, batches=2) for r in range(2)]
    assert [ranks[0][b] + ranks[1][b] for b in range(2)] == [one[0] + one[1], one[2] + one[3]]
    assert epoch_batches(10, 3, 1, 2, 0, 1, 5) != one  # a new order every epoch


def test_presets_load_and_bad_configs_are_input_errors(tmp_path):
    assert {"deepfashion-256", "deepfashion-512", "synthetic-cpu"} <= set(presets())
    paper = TrainConfig.load("deepfashion-256")
    assert ((paper.lr * paper.batch_size, paper.warmup_steps, paper.decay_epochs, paper.epochs)
            == (pytest.approx(1.12e-4), 1000, (50,), 100))
    assert paper.trainable == "paper" and paper.model_config().uncond_prob == 0.2
    bad = tmp_path / "bad.yaml"
    bad.write_text("batch_size: 4\nlearning_rate: 1\n")
    with pytest.raises(InputError, match="bad.yaml.*unknown training options learning_rate"):
        TrainConfig.load(bad)
    bad.write_text("lr: 5e-7\nbatch_size: 8\n")  # YAML 1.1 reads 5e-7 as a string; we read a number
    assert TrainConfig.load(bad).lr == 5e-7
    bad.write_text("mixed_precision: fp8\n")
    with pytest.raises(InputError, match="mixed_precision"):
        TrainConfig.load(bad)
    bad.write_text("unet: null\n")
    with pytest.raises(InputError, match="trainable: unet"):
        TrainConfig.load(bad)
    with pytest.raises(InputError, match="neither a training config file nor a preset"):
        TrainConfig.load(tmp_path / "missing.yaml")
    bad.write_text("model: no-such-preset\n")
    with pytest.raises(InputError, match=r"bad.yaml \(model\): no-such-preset is neither a preset \(sd15, tiny\) nor a "
                                         r"model folder or its config.json$"):
        TrainConfig.load(bad).model_config(bad)
    folder = tmp_path / "model"  # a checkpoint folder (its config.json) is a model's configuration too
    folder.mkdir()
    (folder / "config.json").write_text(CFLDConfig.preset("tiny").to_json())
    bad.write_text(f"model: {folder}\n")
    assert TrainConfig.load(bad).model_config(bad).to_dict() == CFLDConfig.preset("tiny").to_dict()


# -- training runs --------------------------------------------------------------------------------------------


def test_resume_after_interruption_continues_exactly(tmp_path):
    """Steps 4..6 (across an epoch boundary) after resuming from step 3 equal the uninterrupted run's."""
    whole = run(tiny(max_steps=6), tmp_path / "whole")
    first = run(tiny(max_steps=6, checkpoint_every=3), tmp_path / "cut", stop_after=5)  # dies after step 5
    assert find_checkpoint(tmp_path / "cut").name == "step-0000003"
    rest = run(tiny(max_steps=6, checkpoint_every=3), tmp_path / "cut", resume=True)
    assert [first[s] for s in (1, 2, 3)] == [whole[s] for s in (1, 2, 3)]
    assert sorted(rest) == [4, 5, 6]
    assert [rest[s] for s in (4, 5, 6)] == [whole[s] for s in (4, 5, 6)]
    _, unet_whole = load_checkpoint(tmp_path / "whole" / "checkpoints" / "step-0000006")
    _, unet_cut = load_checkpoint(tmp_path / "cut" / "checkpoints" / "step-0000006")
    for (name, a), b in zip(unet_whole.state_dict().items(), unet_cut.state_dict().values()):
        assert torch.equal(a, b), name


def test_run_writes_checkpoints_pipeline_and_logs_and_refuses_to_clobber(tmp_path):
    from cfld.pipeline import CFLDPipeline

    config = tiny(max_steps=4, checkpoint_every=1, keep_checkpoints=2, sample_every=2, sample_steps=2)
    losses = run(config, tmp_path)
    assert sorted(losses) == [1, 2, 3, 4] and all(torch.isfinite(torch.tensor(list(losses.values()))))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-0000003", "step-0000004"]
    state = json.loads((tmp_path / "checkpoints" / "step-0000004" / "trainer_state.json").read_text())
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (4, 1, 0)  # 4 steps per epoch
    model, unet = load_checkpoint(tmp_path / "checkpoints" / "step-0000004")  # our format, strict
    for folder in ("checkpoints", "model"):
        assert_usual_permissions(tmp_path / folder)
    assert model.config.image_size == (64, 64)
    pipe = CFLDPipeline.from_pretrained(tmp_path / "model")
    images = pipe(torch.zeros(1, 3, 64, 64), torch.zeros(1, 21, 64, 64), num_inference_steps=2, output_type="pt",
                  output_size=None, progress=False).images
    assert images.shape == (1, 3, 64, 64)
    events = list((tmp_path / "logs").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logged = EventAccumulator(str(events[0].parent), size_guidance={"images": 0}).Reload()
    assert {"loss", "loss_mse", "loss_rec", "lr"} <= set(logged.Tags()["scalars"])
    assert "samples" in logged.Tags()["images"]
    with pytest.raises(InputError, match="already holds a training run"):
        Trainer(config, tmp_path, progress=False).train()


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    def poison(result):
        if result.step == 2:
            with torch.no_grad():
                next(trainer.unet.parameters()).fill_(float("nan"))

    trainer = Trainer(tiny(max_steps=6, checkpoint_every=2), tmp_path, progress=False)
    with pytest.raises(TrainingError, match=r"loss became nan at step 3.*step-0000002"):
        trainer.train(poison)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-0000002"]
    _, unet = load_checkpoint(tmp_path / "checkpoints" / "step-0000002")
    assert all(torch.isfinite(p).all() for p in unet.parameters())
    assert not (tmp_path / "model").exists()


def test_cli_train_lists_presets_and_reports_bad_configs(tmp_path, capsys):
    assert main(["train", "--list-presets"]) == 0
    assert "synthetic-cpu" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: -1\n")
    assert main(["train", "--config", str(bad), "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert (err.startswith("error: ") and "epochs must be a whole number from 1" in err
            and len(err.strip().splitlines()) == 1)
    assert main(["train", "--output", str(tmp_path / "none"), "--resume"]) == 2


@pytest.mark.slow
def test_two_processes_stay_in_sync(tmp_path):
    """`accelerate launch` with 2 CPU processes (gloo): every step, both hold the same weights."""
    config = tiny(max_steps=3, batch_size=4, eval_every=3, eval_pairs=5, eval_steps=2, eval_metrics=["ssim"],
                  eval_data={"kind": "synthetic", "length": 5, "seed": 99, "photo_size": [64, 44]})
    (tmp_path / "config.json").write_text(config.to_json())
    # on CPUs accelerate's torchrun launcher (--multi_gpu) gives gloo processes when ACCELERATE_USE_CPU is set
    env = dict(os.environ, PYTHONPATH=str(TESTS.parent / "src"), OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="1")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(TESTS / "ddp_worker.py"),
               str(tmp_path / "config.json"), str(tmp_path / "run")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / "run" / f"weights-rank{r}.json").read_text()) for r in range(2)]
    assert len(ranks[0]) == 3 and ranks[0] == ranks[1]
    assert ranks[0][0] != ranks[0][-1]  # and they did change
    # the evaluation at step 3 was shared out (3 + 2 pairs) and scored once, by the main process
    (entry,) = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert entry["step"] == 3 and entry["num_pairs"] == 5 and 0 < entry["metrics"]["ssim"] < 1
    assert json.loads((tmp_path / "run" / "best" / "cfld-best.json").read_text())["step"] == 3


def test_a_deterministic_vae_encodes_to_its_mean():
    """``vae: {deterministic: true}``: trained on the posterior's mean, its variance then fixed near zero, so the
    posterior sample CFLD's training encodes with is the mean (a VAE trained on samples keeps a wide posterior)."""
    from cfld.data.synthetic import SyntheticPersons
    from cfld.training.autoencoder import train_autoencoder

    data = SyntheticPersons(4, (32, 32), (32, 32), (32, 32), seed=0, photo_size=(64, 44))
    spec = {"train_steps": 2, "batch_size": 4, "block_out_channels": [8, 8], "norm_num_groups": 4, "latent_channels": 8}
    images = torch.stack([data[i]["img_tgt"] for i in range(4)])
    deterministic = train_autoencoder(spec | {"deterministic": True}, data, (32, 32), progress=False)
    sampling = train_autoencoder(spec, data, (32, 32), progress=False)
    with torch.no_grad():
        fixed, sampled = deterministic.encode(images).latent_dist, sampling.encode(images).latent_dist
    assert fixed.mean.shape == (4, 8, 16, 16)
    assert fixed.std.max() < 1e-6 and torch.allclose(fixed.sample(), fixed.mean, atol=1e-5)
    assert sampled.std.mean() > 0.1  # what sampling-trained tiny VAEs keep


# -- a disk that fills ---------------------------------------------------------------------------------------------


def _full_disk(real, fails, after_bytes: int = 1000):
    """A stand-in for safetensors' ``save_file`` (``real``): for the files where ``fails(name)``, it writes part of
    the file, then fails as safetensors does on a full disk (its Rust error, not an OSError)."""
    from safetensors import SafetensorError

    def save_file(tensors, filename, metadata=None):
        if not fails(str(filename)):
            return real(tensors, filename, metadata=metadata)
        Path(filename).write_bytes(b"\0" * after_bytes)
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "
                              "\"No space left on device\" }) No space left on device (os error 28)")

    return save_file


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    """The condition model's and the UNet's tensors of a checkpoint folder, or of a pipeline folder (diffusers'
    layout)."""
    from safetensors.torch import load_file

    def file(name: str) -> Path:
        pipeline = folder / name / "diffusion_pytorch_model.safetensors"
        return pipeline if pipeline.is_file() else folder / f"{name}.safetensors"

    return {f"{name}:{k}": v for name in ("model", "unet") for k, v in load_file(file(name)).items()}


def test_a_full_disk_during_a_checkpoint_keeps_the_last_and_resumes_exactly(tmp_path, capsys, monkeypatch):
    """The 2nd checkpoint's write fails as on a full disk: exit 2 with one sentence (what, how much, what was kept),
    its temporary gone at once, step-2 intact; with space again, --resume ends with the uninterrupted run's weights."""
    import cfld.training.checkpoints as checkpoints

    config = tiny(max_steps=6, checkpoint_every=2)
    (tmp_path / "config.json").write_text(config.to_json())
    run(config, tmp_path / "whole")
    real = checkpoints.save_file
    monkeypatch.setattr(checkpoints, "save_file", _full_disk(real, lambda name: ".step-0000004.tmp" in name))
    monkeypatch.delenv("CFLD_DEBUG", raising=False)
    out = tmp_path / "cut"
    code = main(["train", "-c", str(tmp_path / "config.json"), "-o", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.splitlines()[-1].startswith("error: ") and "bug" not in err and "SafetensorError" not in err
    assert re.search(r"step-0000004: the checkpoint cannot be written \(No space left on device; it needs about "
                     r"[\d.]+ [kM]B, .* free\); the last good checkpoint is step-0000002: free space and run again "
                     r"with --resume", err), err
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000002"]  # no .step-0000004.tmp
    assert not (out / "model").exists()
    monkeypatch.setattr(checkpoints, "save_file", real)
    assert main(["train", "-o", str(out), "--resume", "--no-progress"]) == 0
    whole, resumed = _weights(tmp_path / "whole" / "model"), _weights(out / "model")
    assert whole.keys() == resumed.keys() and all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_a_full_disk_while_saving_the_trained_model_keeps_the_checkpoint(tmp_path, capsys, monkeypatch):
    """The final pipeline's write fails: exit 2 naming the trained model and the last checkpoint; no half model/
    folder or temporary is left, and --resume (with space again) writes the model without training further."""
    import safetensors.torch

    config = tiny(max_steps=2, checkpoint_every=2)
    (tmp_path / "config.json").write_text(config.to_json())
    # diffusers' writer (the trained pipeline's models) fails; our checkpoints' (cfld.checkpoint's own name) does not
    monkeypatch.setattr(safetensors.torch, "save_file",
                        _full_disk(safetensors.torch.save_file, lambda name: "/.model." in name))
    monkeypatch.delenv("CFLD_DEBUG", raising=False)
    out = tmp_path / "run"
    code = main(["train", "-c", str(tmp_path / "config.json"), "-o", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "the trained model cannot be written (No space left on device" in err and "bug" not in err
    assert "the last good checkpoint is" in err and "step-0000002" in err and "--resume" in err
    assert not (out / "model").exists()
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temporary left
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-0000002"]
    monkeypatch.undo()
    assert main(["train", "-o", str(out), "--resume", "--no-progress"]) == 0
    final, checkpoint = _weights(out / "model"), _weights(out / "checkpoints" / "step-0000002")
    assert final.keys() == checkpoint.keys() and all(torch.equal(final[k], checkpoint[k]) for k in final)

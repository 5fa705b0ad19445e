"""SIGKILL in the middle of writing: a training run killed while a checkpoint (or the final model) is being
written resumes to exactly the weights of an uninterrupted run, and nothing half-written is left behind."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cfld.io import is_temporary
from cfld.training import TrainConfig, Trainer
from conftest import TINY_TRAINING

CONFIG = {**TINY_TRAINING, "data": {**TINY_TRAINING["data"], "length": 16}, "warmup_steps": 2, "checkpoint_every": 1,
          "keep_checkpoints": 2, "max_steps": 6}


def _weights(run: Path) -> dict[str, str]:
    return {str(p.relative_to(run / "model")): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((run / "model").rglob("*.safetensors"))}


def _leftovers(run: Path) -> list[str]:
    return [str(p.relative_to(run)) for p in run.rglob("*") if is_temporary(p) or p.name.endswith(".tmp")]


def _train(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cfld", "train", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _kill_while_writing(config: Path, run: Path, env: dict, writing) -> Path:
    """Start a run and SIGKILL it the moment ``writing(run)`` names a temporary being written; return that
    temporary (still there: the kill came before its rename)."""
    for _ in range(5):
        process = _train(["-c", str(config), "-o", str(run), "--overwrite"], env)
        found = None
        while process.poll() is None:
            found = writing(run)
            if found is not None:
                os.kill(process.pid, signal.SIGKILL)
                break
            time.sleep(0.0005)
        process.wait()
        if found is not None and found.exists():
            return found
    pytest.fail("could not catch the run while it wrote (it finished first five times)")


def _entries(folder: Path, prefix: str) -> Path | None:
    try:
        return next((Path(e.path) for e in os.scandir(folder) if e.name.startswith(prefix)), None)
    except FileNotFoundError:
        return None


@pytest.mark.slow
def test_training_killed_while_writing_resumes_exactly(tmp_path):
    env = dict(os.environ, CFLD_DEBUG="1", PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(CONFIG))
    reference = tmp_path / "uninterrupted"
    Trainer(TrainConfig.load(config_file), reference, progress=False).train()
    expected = _weights(reference)

    # killed while a checkpoint is being written
    run = tmp_path / "killed-in-checkpoint"
    def second_checkpoint(r: Path) -> Path | None:  # with one complete checkpoint to resume from
        return _entries(r / "checkpoints", ".step-") if _entries(r / "checkpoints", "step-") else None

    half = _kill_while_writing(config_file, run, env, second_checkpoint)
    assert half.name.endswith(".tmp") and not (run / "model").exists()
    resumed = subprocess.run([sys.executable, "-m", "cfld", "train", "-o", str(run), "--resume"], env=env,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert _weights(run) == expected
    assert _leftovers(run) == []

    # killed while the final model is being written
    run = tmp_path / "killed-in-final-save"
    half = _kill_while_writing(config_file, run, env, lambda r: _entries(r, ".model."))
    assert is_temporary(half) and not (run / "model").exists()
    resumed = subprocess.run([sys.executable, "-m", "cfld", "train", "-o", str(run), "--resume"], env=env,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert _weights(run) == expected
    assert _leftovers(run) == []

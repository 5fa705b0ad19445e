"""Evaluation during training: periodic metrics in metrics.jsonl and TensorBoard, best/ by a chosen metric, and
both carried exactly through an interruption and --resume."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from cfld.errors import InputError
from cfld.training import TrainConfig
from cfld.training.checkpoints import find_checkpoint
from test_training import run, tiny

try:  # with MediaPipe the evaluation scores the pose too (cfld.metrics.pose_folders)
    import mediapipe  # noqa: F401

    POSE = {"pckh", "pck", "pose_found"}
except ImportError:
    POSE = set()

EVAL = dict(eval_every=1, eval_pairs=4, eval_steps=3, eval_metrics=["ssim", "psnr"], select_by="ssim",
            eval_batch_size=3, eval_data={"kind": "synthetic", "length": 6, "seed": 99, "photo_size": [64, 44]},
            max_steps=6)


def _history(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def _weights(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.safetensors"))}


def test_periodic_evaluation_logs_selects_best_and_survives_resume(tmp_path):
    whole = tmp_path / "whole"
    run(tiny(**EVAL), whole)
    history = _history(whole)
    assert [h["step"] for h in history] == [1, 2, 3, 4, 5, 6]
    assert all(set(h["metrics"]) == {"ssim", "psnr"} | POSE and h["num_pairs"] == 4 and h["size"] == [64, 64]
               for h in history)
    assert len({h["metrics"]["ssim"] for h in history}) > 1  # the model changes, and so do its numbers
    best_step = max(history, key=lambda h: h["metrics"]["ssim"])["step"]
    record = json.loads((whole / "best" / "cfld-best.json").read_text())
    assert record["step"] == best_step and record["metric"] == "ssim"
    assert record["value"] == max(h["metrics"]["ssim"] for h in history)
    assert record["sampling"]["num_inference_steps"] == 3
    from cfld.pipeline import CFLDPipeline

    CFLDPipeline.from_pretrained(whole / "best")  # a model cfld transfer -m takes
    state = json.loads((find_checkpoint(whole) / "trainer_state.json").read_text())
    assert state["evaluation"]["best"]["step"] == best_step and len(state["evaluation"]["history"]) == 6
    # TensorBoard has the numbers too
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((whole / "logs").rglob("events.out.tfevents.*")).parent))
    events.Reload()
    assert [e.step for e in events.Scalars("eval/ssim")] == [1, 2, 3, 4, 5, 6]

    # killed after step 5 with its last checkpoint at step 3: evaluations 4 and 5 (and perhaps best/) came after it
    cut = tmp_path / "cut"
    run(tiny(**EVAL, checkpoint_every=3), cut, stop_after=5)
    assert [h["step"] for h in _history(cut)] == [1, 2, 3, 4, 5]
    run(tiny(**EVAL, checkpoint_every=3), cut, resume=True)
    resumed = _history(cut)
    assert [h["step"] for h in resumed] == [1, 2, 3, 4, 5, 6]  # 4 and 5 evaluated again, not twice in the file
    assert [h["metrics"] for h in resumed] == [h["metrics"] for h in history]
    assert json.loads((cut / "best" / "cfld-best.json").read_text())["step"] == best_step
    assert _weights(cut / "best") == _weights(whole / "best")


def test_evaluation_and_sample_grids_leave_training_as_it_was(tmp_path):
    """Generating in the middle of training changes no loss: random streams and the VAE's slicing are restored."""
    plain = run(tiny(max_steps=4), tmp_path / "plain")
    busy = run(tiny(**{**EVAL, "max_steps": 4}, sample_every=1, sample_steps=2), tmp_path / "busy")
    assert busy == plain


def test_lower_is_better_metrics_and_a_new_best(tmp_path):
    from cfld.training.evaluation import PeriodicEvaluation

    config = tiny(**{**EVAL, "eval_metrics": ["psnr", "lpips"], "select_by": "lpips"})
    evaluation = PeriodicEvaluation.__new__(PeriodicEvaluation)
    evaluation.config, evaluation.best = config, {"step": 1, "value": 0.3, "metric": "lpips"}
    assert evaluation._improves(0.2) and not evaluation._improves(0.4)
    config.select_by = "psnr"
    evaluation.best = {"step": 1, "value": 20.0, "metric": "psnr"}
    assert evaluation._improves(21.0) and not evaluation._improves(19.0)


@pytest.mark.parametrize("changes, message", [
    ({"select_by": "fid", "eval_metrics": ["ssim"]}, "select_by fid is not one of eval_metrics"),
    ({"eval_metrics": ["sharpness"]}, "eval_metrics must be one of"),
    ({"eval_scheduler": "magic"}, "eval_scheduler"),
    ({"eval_size": [32, 32]}, "eval_size"),
    ({"eval_pairs": 0}, "eval_pairs"),
    ({"eval_data": {"kind": "pkg.module:Class"}}, "eval_data"),
])
def test_evaluation_options_are_checked(changes, message):
    data = {**tiny().to_dict(), **EVAL, **changes}
    with pytest.raises(InputError) as error:
        TrainConfig.from_dict(data, source="run.yaml")
    assert message in str(error.value) and "run.yaml" in str(error.value)


def test_an_unavailable_selection_metric_stops_before_writing(tmp_path, monkeypatch):
    from cfld.metrics.evaluate import ALL_METRICS
    from cfld.training import evaluation

    monkeypatch.setattr(evaluation, "available_metrics",
                        lambda metrics=ALL_METRICS: (["psnr", "ssim"], {"fid": "needs x.pth"}))
    config = tiny(**{**EVAL, "eval_metrics": None, "select_by": "fid"})
    with pytest.raises(InputError, match="select_by fid cannot be computed on this machine .needs x.pth"):
        run(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()

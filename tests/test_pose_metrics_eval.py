"""The pose check over a set (issue 31): `cfld evaluate --poses` on two published methods' real outputs gives the
pooled PCKh the benchmark measured, the source photos (right person, wrong pose) score far lower; target lookup by
any name style; scores.csv read back; training's evaluation scores the pose or says why not.

Real data: ../shared/data/deepfashion-real (photos and their published keypoints) and
../shared/data/deepfashion-generated (Deformable GANs and VUNet outputs for pairs of those photos).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED, assert_fails, run

REAL = SHARED / "data" / "deepfashion-real"
GENERATED = SHARED / "data" / "deepfashion-generated"
KEYPOINTS = REAL / "keypoints.csv"


@pytest.fixture(scope="module")
def real_data() -> Path:
    if not (KEYPOINTS.is_file() and (GENERATED / "generated.csv").is_file()):
        pytest.skip("needs ../shared/data/deepfashion-real and ../shared/data/deepfashion-generated beside the "
                    f"repository (looked in {SHARED / 'data'})")
    pytest.importorskip("mediapipe", reason="the pose check needs MediaPipe (pip install 'cfld[detect]')")
    return SHARED / "data"


def _rows(method: str) -> list[dict[str, str]]:
    with (GENERATED / "generated.csv").open(newline="") as f:
        return [row for row in csv.DictReader(f) if row["method"] == method]


@pytest.mark.parametrize("method, published", [("Deform", 0.94), ("VUNet", 0.92)])
def test_evaluate_gives_the_pckh_of_published_results(real_data, method, published, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    code, stdout, err = run(capsys, "evaluate", "-g", GENERATED / method, "-t", REAL / "images", "--poses", KEYPOINTS,
                            "--metrics", "psnr", "-o", out, "--quiet")
    assert code == 0, err
    result = json.loads(out.read_text())
    pairs = len(_rows(method))
    assert result["num_pairs"] == pairs and set(result["metrics"]) == {"psnr", "pckh", "pck", "pose_found"}
    assert result["metrics"]["pckh"] == pytest.approx(published, abs=0.01)  # what the benchmark measured
    assert result["metrics"]["pck"] > 0.85 and result["metrics"]["pose_found"] > 0.9
    assert "calPCKH" in result["protocols"]["pckh"] and "docs/pose-check.md" in result["protocols"]["pck"]
    pose = result["pose"]
    assert pose["images"] == pairs and pose["threshold"] == 0.5 and pose["misses_pose"] <= 3
    assert {"pckh_mean", "pck_std", "no_person", "found_mean"} <= set(pose)
    rows = result["per_pair"]
    assert all({"pckh", "pck", "pose_found", "person_found", "misses_pose"} <= set(row) for row in rows)
    assert sum(row["misses_pose"] for row in rows) == pose["misses_pose"]
    assert ["pckh", f"{result['metrics']['pckh']:.4f}"] in [line.split()[:2] for line in stdout.splitlines()]
    assert f"pose check: {pose['misses_pose']} of {pairs} images miss their target pose" in stdout


def test_the_source_photo_in_the_wrong_pose_scores_far_lower(real_data, tmp_path, capsys):
    """Copy the source photo as the 'result': the right person, the wrong pose (the benchmark: PCKh about 0.27)."""
    from cfld.pose import flat_name

    fake = tmp_path / "copied"
    fake.mkdir()
    for row in _rows("Deform"):
        shutil.copy(REAL / "images" / flat_name(row["source"]).replace(".jpg", ".png"), fake / Path(row["file"]).name)
    out = tmp_path / "metrics.json"
    code, stdout, err = run(capsys, "evaluate", "-g", fake, "-t", REAL / "images", "--poses", KEYPOINTS, "--metrics",
                            "psnr", "-o", out, "--quiet", "--pose-threshold", "0.4")
    assert code == 0, err
    result = json.loads(out.read_text())
    assert 0.2 < result["metrics"]["pckh"] < 0.35
    assert result["pose"]["misses_pose"] > len(_rows("Deform")) / 2 and result["pose"]["threshold"] == 0.4
    assert "(PCK@0.1 below 0.4)" in stdout


def test_targets_are_found_by_every_name_style_and_a_missing_one_is_one_line(real_data, tmp_path, capsys):
    from cfld.metrics.pose_folders import PoseTargets
    from cfld.pose import flat_name, read_annotation_csv

    table = read_annotation_csv(KEYPOINTS)
    targets = PoseTargets(table)
    name = "fashion/WOMEN/Dresses/id_00002629/02_3_back.jpg"
    if name not in table.names:
        name = table.names[0]
    flat = Path(flat_name(name)).stem
    for file in (name, f"{flat}.jpg", f"{flat}.png", f"{flat}.JPEG", f"sub/{flat}.png", Path(name).with_suffix(".png")):
        assert targets.pose(file) == table[name], file
    # cfld evaluate: a ground-truth image without a keypoint row names the CSV and the image
    gen, gt = tmp_path / "gen", tmp_path / "gt"
    gen.mkdir(), gt.mkdir()
    photo = REAL / "images" / f"{flat}.png"
    shutil.copy(photo, gen / "someone_2_unknownperson.png")
    shutil.copy(photo, gt / "unknownperson.png")
    assert_fails(capsys, ["evaluate", "-g", gen, "-t", gt, "--poses", KEYPOINTS, "--metrics", "psnr"],
                 str(KEYPOINTS), "no keypoint row for the ground-truth image unknownperson.png")
    assert_fails(capsys, ["evaluate", "-g", gen, "-t", gt, "--poses", tmp_path / "none.csv"], "none.csv",
                 "no such file")
    assert_fails(capsys, ["evaluate", "-g", gen, "-t", gt, "--poses", KEYPOINTS, "--data", tmp_path],
                 "--poses and --data")
    assert_fails(capsys, ["evaluate", "-g", gen], "-t/--ground-truth")


def test_without_mediapipe_the_pose_metrics_are_one_clear_line(real_data, tmp_path, capsys, monkeypatch):
    from cfld.errors import MissingDependencyError
    from cfld.metrics import pose_folders

    def missing():
        raise MissingDependencyError("pose detection needs MediaPipe: pip install 'cfld[detect]' (No module)")

    monkeypatch.setattr(pose_folders, "PoseScorer", missing)
    line = assert_fails(capsys, ["evaluate", "-g", GENERATED / "Deform", "-t", REAL / "images", "--poses", KEYPOINTS,
                                 "--metrics", "psnr"], "needs MediaPipe", "pip install 'cfld[detect]'")
    assert "Traceback" not in line
    code, _, err = run(capsys, "evaluate", "-g", GENERATED / "Deform", "-t", REAL / "images", "--metrics", "psnr",
                       "--quiet")
    assert code == 0, err  # without poses nothing needs MediaPipe


def test_scores_csv_reads_back_to_the_same_scores(tmp_path):
    from cfld.metrics.pose_accuracy import PoseScore, scores_csv
    from cfld.metrics.pose_folders import read_scores

    scores = [("a.png", PoseScore(17, 16, 13, 15, True)), ("b,c.png", PoseScore(5, 0, 0, None, False)),
              ("d.png", None), ("e.png", PoseScore(18, 18, 18, 18, True))]
    path = tmp_path / "scores.csv"
    path.write_text(scores_csv(scores, 0.5) + "f.png,x,y,z,maybe,3,true\n")
    assert read_scores(path) == {name: score for name, score in scores if score is not None}
    path.write_bytes(b"\xff\xfe not a CSV")
    assert read_scores(path) == {} and read_scores(tmp_path / "absent.csv") == {}


def test_a_pose_image_gives_back_its_joints():
    """Training's evaluation reads a target pose from any dataset's pose image (cfld.training.evaluation)."""
    from cfld.metrics.pose_accuracy import score_pose, stretch
    from cfld.pose import gallery, pose_image
    from cfld.training.evaluation import pose_from_image

    for target in list(gallery().values())[:6]:
        image = pose_image(target, (256, 256))
        found = pose_from_image(image)
        assert found.frame == (256, 256) and not (found.visible & ~target.visible).any()
        assert found.visible[target.visible & _inside(target)].all()  # a joint on the edge may be found too
        back = stretch(found, target.frame)
        error = np.abs(back.xy - target.xy)[found.visible]
        assert error.max() < 2.0  # within the pixel the heatmap was drawn at
        assert score_pose(back, target).pck == pytest.approx(found.visible.sum() / target.visible.sum())
    assert pose_from_image(image[:3]) is None


def _inside(pose) -> np.ndarray:
    h, w = pose.frame
    with np.errstate(invalid="ignore"):
        return (pose.xy[:, 0] >= 0) & (pose.xy[:, 0] < w) & (pose.xy[:, 1] >= 0) & (pose.xy[:, 1] < h)


def test_training_evaluation_goes_on_without_mediapipe(tmp_path, capsys, monkeypatch):
    from cfld.errors import MissingDependencyError
    from cfld.training import evaluation
    from test_training import run as train
    from test_training import tiny
    from test_training_evaluation import EVAL

    def missing(*args, **kwargs):
        raise MissingDependencyError("the pose check (PCKh, PCK) needs MediaPipe: pip install 'cfld[detect]'")

    monkeypatch.setattr(evaluation, "open_scorer", missing)
    train(tiny(**{**EVAL, "max_steps": 2, "eval_pairs": 2}), tmp_path / "run")
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [set(h["metrics"]) for h in history] == [{"ssim", "psnr"}] * 2
    out = capsys.readouterr().out
    assert out.count("without the pose metrics") == 1 and "pip install 'cfld[detect]'" in out

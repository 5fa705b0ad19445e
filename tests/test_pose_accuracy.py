"""The pose check (cfld.metrics.pose_accuracy): PCKh@0.5 as the pose-transfer papers compute it, PCK@0.1 and the
share of joints found, on hand-made poses, against a literal reading of the papers' formula, and on real images."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from cfld.errors import InputError
from cfld.metrics import pose_accuracy as PA
from cfld.pose import Pose, flat_name, read_annotation_csv

DATA = Path(__file__).parent / "data" / "pose_check"
FRAME = (256, 176)


def pose(points: dict[int, tuple[float, float]], frame=FRAME) -> Pose:
    xy = np.full((18, 2), np.nan)
    for joint, (x, y) in points.items():
        xy[joint] = (x, y)
    return Pose(xy, np.isfinite(xy[:, 0]).astype(float), frame)


# nose, neck, eyes, ears: a head box 20 wide (x 80..100) and 30 high (y 20..50); shoulders, hips, ankles below
TARGET = pose({0: (90, 30), 1: (90, 50), 14: (85, 25), 15: (95, 25), 16: (80, 20), 17: (100, 28),
               2: (70, 55), 5: (110, 55), 8: (80, 130), 11: (100, 130), 10: (80, 230), 13: (100, 230)})


def moved(target: Pose, joint: int, dx: float, dy: float) -> Pose:
    xy = target.xy.copy()
    xy[joint] += (dx, dy)
    return target.replace(xy=xy)


def test_head_size_is_the_box_of_the_head_joints_and_needs_two():
    assert PA.head_size(TARGET) == (20.0, 30.0)
    assert PA.head_size(pose({0: (90, 30), 2: (70, 55), 5: (110, 55)})) is None  # one head joint
    assert PA.head_size(pose({1: (90, 50), 16: (80, 20), 8: (80, 130)})) == (10.0, 30.0)


def test_a_perfect_match_scores_one_and_missing_target_joints_are_not_counted():
    score = PA.score_pose(TARGET, TARGET)
    assert (score.joints, score.pckh, score.pck, score.found, score.person) == (12, 1.0, 1.0, 1.0, True)
    assert not score.misses()


def test_pckh_is_strict_per_axis_against_half_the_head_box():
    # head box 20 x 30: a joint is hit when |dx| < 10 and |dy| < 15, on each axis alone
    assert PA.score_pose(moved(TARGET, 10, 9.9, 0), TARGET).pckh_hits == 12
    assert PA.score_pose(moved(TARGET, 10, 10.0, 0), TARGET).pckh_hits == 11  # the papers' "<", not "<="
    assert PA.score_pose(moved(TARGET, 10, 0, 14.9), TARGET).pckh_hits == 12
    assert PA.score_pose(moved(TARGET, 10, 9, 15), TARGET).pckh_hits == 11


def test_pck_uses_a_tenth_of_the_target_boxs_diagonal():
    diagonal = float(np.hypot(100 - 70, 230 - 20))  # the box of all 12 target joints
    inside = PA.score_pose(moved(TARGET, 13, 0.099 * diagonal, 0), TARGET)
    outside = PA.score_pose(moved(TARGET, 13, 0.101 * diagonal, 0), TARGET)
    assert (inside.pck_hits, outside.pck_hits) == (12, 11)


def test_joints_not_found_count_as_misses_and_nobody_found_scores_zero():
    xy = TARGET.xy.copy()
    xy[[10, 13]] = np.nan  # the ankles are not found
    partial = PA.score_pose(TARGET.replace(xy=xy, confidence=np.isfinite(xy[:, 0]).astype(float)), TARGET)
    assert (partial.found_joints, partial.pck_hits, partial.pckh_hits) == (10, 10, 10)
    nobody = PA.score_pose(None, TARGET)
    assert (nobody.pckh, nobody.pck, nobody.found, nobody.person) == (0.0, 0.0, 0.0, False)
    assert nobody.misses() and "no person found" in nobody.line()
    summary = PA.summarize([PA.score_pose(TARGET, TARGET), nobody])
    assert (summary["pckh"], summary["images"], summary["no_person"], summary["misses_pose"]) == (0.5, 2, 1, 1)


def test_a_target_without_a_head_has_no_pckh_and_is_left_out_of_the_pooled_pckh():
    headless = pose({0: (90, 30), 2: (70, 55), 5: (110, 55), 8: (80, 130)})
    score = PA.score_pose(headless, headless)
    assert score.pckh is None and score.pck == 1.0
    summary = PA.summarize([score, PA.score_pose(moved(TARGET, 10, 50, 0), TARGET)])
    assert summary["pckh"] == round(11 / 12, 4)  # the headless image's joints are not pooled
    assert summary["pck"] == round((4 + 11) / (4 + 12), 4)
    assert "n/a" in score.line()


def test_a_target_in_another_frame_is_stretched_onto_the_image():
    big = TARGET.replace(xy=(TARGET.xy + 0.5) * 2 - 0.5, frame=(512, 352))
    assert PA.score_pose(TARGET, big).pckh == 1.0
    assert PA.stretch(big, FRAME) == TARGET


def test_a_target_without_joints_is_refused():
    with pytest.raises(InputError, match="no joint"):
        PA.score_pose(None, pose({}))


def papers_pckh(predicted: list[Pose], targets: list[Pose]) -> float:
    """The papers' PCKh@0.5, written out literally from its description: -1 marks a missing joint; the head box of
    the target's joints 0, 1, 14-17 (at least two); a pair without it is skipped; hits over valid target joints."""
    correct = total = 0
    for found, target in zip(predicted, targets):
        tx = [-1 if not v else x for v, x in zip(target.visible, target.xy[:, 0])]
        ty = [-1 if not v else y for v, y in zip(target.visible, target.xy[:, 1])]
        px = [-1 if not v else x for v, x in zip(found.visible, found.xy[:, 0])]
        py = [-1 if not v else y for v, y in zip(found.visible, found.xy[:, 1])]
        head = [(tx[j], ty[j]) for j in (0, 1, 14, 15, 16, 17) if tx[j] != -1 and ty[j] != -1]
        if len(head) < 2:
            continue
        w = max(p[0] for p in head) - min(p[0] for p in head)
        h = max(p[1] for p in head) - min(p[1] for p in head)
        total += sum(1 for y in ty if y != -1)
        for j in range(18):
            if -1 not in (px[j], py[j], tx[j], ty[j]) and abs(px[j] - tx[j]) < 0.5 * w and abs(py[j] - ty[j]) < 0.5 * h:
                correct += 1
    return correct / total


def test_pooled_pckh_equals_the_papers_formula_on_the_published_keypoints(shared_dir):
    path = shared_dir / "data" / "deepfashion" / "fasion-resize-annotation-test.csv"
    if not path.is_file():
        pytest.skip(f"needs ../shared/data/deepfashion (looked for {path})")
    table = read_annotation_csv(path)
    rng = np.random.default_rng(0)
    targets = [table[name] for name in list(table)[:600]]
    targets = [t for t in targets if t.visible.any()]
    predicted = []
    for target in targets:  # the target jittered by up to 12 pixels, a joint in four dropped
        xy = target.xy + rng.uniform(-12, 12, target.xy.shape)
        keep = target.visible & (rng.random(18) > 0.25)
        predicted.append(target.replace(xy=np.where(keep[:, None], xy, np.nan), confidence=keep.astype(float)))
    ours = PA.summarize([PA.score_pose(p, t) for p, t in zip(predicted, targets)])["pckh"]
    assert 0.3 < ours < 0.9  # the jitter makes it a real test of the threshold
    assert ours == round(papers_pckh(predicted, targets), 4)


def test_real_targets_and_published_outputs_pass_and_copying_the_source_misses():
    pytest.importorskip("mediapipe", reason="the pose check needs MediaPipe (pip install 'cfld[detect]')")
    table = read_annotation_csv(DATA / "keypoints.csv")
    by_file = {flat_name(name).replace(".jpg", ""): table[name] for name in table}
    with PA.PoseScorer() as scorer:
        for generated in sorted(DATA.glob("*___*.png")):
            source, target = generated.stem.split("___")
            target_pose = by_file[target]
            for image in (generated, DATA / f"{target}.png"):
                score = scorer(image, target_pose)
                assert score.person and score.pckh == 1.0 and not score.misses(), (image.name, score)
            copy = scorer(DATA / f"{source}.png", target_pose)
            assert copy.pckh < 0.4 and copy.misses(), (source, copy)


def test_scores_csv_has_a_row_per_result_and_quotes_odd_names():
    rows = [("a.png", PA.score_pose(TARGET, TARGET)), ("b,c.png", None), ("d.png", PA.score_pose(None, TARGET))]
    text = PA.scores_csv(rows, 0.5)
    parsed = list(csv.DictReader(text.splitlines()))
    assert list(parsed[0]) == list(PA.SCORE_COLUMNS)
    assert parsed[0]["pckh"] == "1.0" and parsed[0]["misses_pose"] == "false"
    assert parsed[1]["file"] == "b,c.png" and parsed[1]["pck"] == ""
    assert parsed[2]["person_found"] == "false" and parsed[2]["misses_pose"] == "true"


def test_threshold_checks():
    assert PA.check_threshold(0.25) == 0.25
    for bad in (-0.1, 1.5, float("nan"), "0.5"):
        with pytest.raises(InputError, match="share in"):
            PA.check_threshold(bad)


def test_the_command_check_names_ten_misses_counts_the_rest_and_skips_an_empty_target(tmp_path, capsys):
    pytest.importorskip("mediapipe", reason="the pose check needs MediaPipe (pip install 'cfld[detect]')")
    from cfld.commands.pose_check import MAX_WARNINGS, PoseCheck

    grey = np.full((256, 176, 3), 128, np.uint8)  # nobody in it
    results = [(tmp_path / f"r{i:02d}.png", grey, TARGET) for i in range(MAX_WARNINGS + 2)]
    results.append((tmp_path / "empty.png", grey, pose({})))
    check = PoseCheck(0.5)
    scores = check.run(results, label=lambda path: path.name)
    out, err = capsys.readouterr()
    assert scores[-1] is None and "empty.png: not checked, its target pose has no joint" in out
    assert all(s is not None and s.misses() for s in scores[:-1])
    assert err.count("misses its target pose") == MAX_WARNINGS and "2 more results miss" in err
    assert f"pose check: {MAX_WARNINGS + 2} results" in out
    written = check.write(tmp_path / "scores.csv", [(p.name, s) for (p, _, _), s in zip(results, scores)])
    rows = list(csv.DictReader(written.read_text().splitlines()))
    assert len(rows) == MAX_WARNINGS + 3 and rows[-1]["pck"] == "" and rows[0]["misses_pose"] == "true"


def test_background_scoring_gives_the_scores_of_scoring_in_turn(tmp_path):
    pytest.importorskip("mediapipe", reason="the pose check needs MediaPipe (pip install 'cfld[detect]')")
    from cfld.metrics.pose_folders import BackgroundScoring

    table = read_annotation_csv(DATA / "keypoints.csv")
    by_file = {flat_name(name).replace(".jpg", ""): table[name] for name in table}
    items = [(image, by_file[image.stem.split("___")[-1]]) for image in sorted(DATA.glob("*.png"))]
    background = BackgroundScoring()
    for image, target in items:
        background.submit(image, target)
    background.submit(tmp_path / "missing.png", TARGET)  # unreadable: left out, for the caller to report
    background.submit(DATA / "nothing.png", pose({}))  # nothing to score against: not scored
    scores = background.results()
    with PA.PoseScorer() as scorer:
        assert scores == {image: scorer(image, target) for image, target in items}

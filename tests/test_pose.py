"""cfld.pose: the Pose type, every reader and writer, flip/retarget, the renderer and the gallery."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cfld import pose as P
from cfld.errors import InputError

# One real DeepFashion test row (fasion-resize-annotation-test.csv), 14 visible joints, 256x176 frame.
ROW = (
    "fashion/WOMEN/Tees_Tanks/id_00005085/45_1_front.jpg:"
    "[40,85,90,147,210,82,141,199,205,-1,-1,205,-1,-1,34,34,39, 40]:"
    "[88,89,56,49,35,124,129,111,58,-1,-1,98,-1,-1,81,96,72, 105]"
)
ROW_NAME = ROW.split(":")[0]
CSV_HEADER = "name:keypoints_y:keypoints_x,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,\n"


def _idx(name: str) -> int:
    return P.JOINT_NAMES.index(name)


@pytest.fixture
def pose() -> P.Pose:
    return P.parse_annotation_row(ROW)


def random_pose(rng: np.random.Generator, frame: tuple[int, int], missing: float = 0.2, spread: float = 1.0) -> P.Pose:
    """Keypoints anywhere within ``spread`` frame sizes around the frame, some missing, one joint inside."""
    height, width = frame
    xy = np.stack([rng.uniform(-spread * width, (1 + spread) * width - 1, P.NUM_JOINTS),
                   rng.uniform(-spread * height, (1 + spread) * height - 1, P.NUM_JOINTS)], axis=1)
    xy[0] = [rng.uniform(0, width - 1), rng.uniform(0, height - 1)]
    confidence = (rng.random(P.NUM_JOINTS) > missing).astype(float)
    confidence[0] = 1.0
    return P.Pose(xy, confidence, frame)


def loop_heatmaps(pose: P.Pose, size: tuple[int, int], sigma: float) -> np.ndarray:
    """The original's approach, joint by joint over a full meshgrid (reference for the vectorised one)."""
    height, width = size
    out = np.zeros((P.NUM_JOINTS, height, width), np.float32)
    cols, rows = np.meshgrid(np.arange(width), np.arange(height))
    for i, ((x, y), visible) in enumerate(zip(pose.xy, pose.visible)):
        if visible:
            py, px = int(y / pose.frame[0] * height), int(x / pose.frame[1] * width)
            out[i] = np.exp(-((rows - py) ** 2 + (cols - px) ** 2) / (2 * sigma**2))
    return out


# -- the skeleton definition -----------------------------------------------------------------------


def test_skeleton_tables_are_consistent():
    assert len(P.JOINT_NAMES) == len(P.JOINT_COLORS) == 18
    assert len(P.BONES) == len(P.BONE_COLORS) == 17
    # bones are the joint colours at 60 % brightness, as in OpenPose
    for bone, joint in zip(P.BONE_COLORS, P.JOINT_COLORS):
        assert bone == tuple(int(c * 0.6) for c in joint)
    # the tree: 17 bones connect all 18 joints, rooted at the neck
    assert {j for bone in P.BONES for j in bone} == set(range(18))


def test_flip_permutation_swaps_left_and_right():
    perm = P.FLIP_PERMUTATION
    assert [perm[i] for i in perm] == list(range(18))  # an involution
    for i, name in enumerate(P.JOINT_NAMES):
        other = P.JOINT_NAMES[perm[i]]
        if name.startswith("left_"):
            assert other == "right_" + name[5:]
        elif name.startswith("right_"):
            assert other == "left_" + name[6:]
        else:
            assert other == name


def test_body25_mapping_by_joint_names():
    body25 = ["Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip", "RHip",
              "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar", "LBigToe", "LSmallToe",
              "LHeel", "RBigToe", "RSmallToe", "RHeel"]  # fmt: skip

    def normal(name: str) -> str:
        return name.replace("R", "right_", 1).replace("L", "left_", 1).lower() if name[1].isupper() else name.lower()

    assert [normal(body25[j]) for j in P.BODY25_TO_COCO18] == list(P.JOINT_NAMES)


# -- the Pose type ---------------------------------------------------------------------------------


def test_pose_from_annotation_row(pose):
    assert pose.name == ROW_NAME
    assert pose.frame == (256, 176)
    assert pose.num_visible == 14
    assert not pose.visible[[_idx("right_knee"), _idx("right_ankle"), _idx("left_knee"), _idx("left_ankle")]].any()
    assert pose.xy[_idx("nose")].tolist() == [88.0, 40.0]  # (x, y)
    assert np.isnan(pose.xy[_idx("left_knee")]).all()
    ys, xs = pose.to_yx()
    assert ys[:3] == [40, 85, 90] and xs[9] == -1
    with pytest.raises(ValueError):
        pose.xy[0, 0] = 1.0  # read-only


def test_pose_equality_and_replace(pose):
    assert pose == P.parse_annotation_row(ROW)
    assert pose != pose.replace(name="other")
    assert pose != pose.replace(frame=(256, 177))


@pytest.mark.parametrize(
    "xy, confidence, frame, fault",
    [
        (np.zeros((17, 2)), np.ones(17), (256, 176), "expected 18"),
        (np.full((18, 2), np.nan), np.ones(18), (256, 176), "non-finite"),
        (np.zeros((18, 2)), np.full(18, -1.0), (256, 176), "not negative"),
        (np.zeros((18, 2)), np.ones(18), (0, 176), "positive"),
        (np.zeros((18, 2)), np.ones(18), (256.0, 176), "whole numbers"),
        (np.zeros((18, 2)), np.ones(18), (256, 176, 3), "whole numbers"),
        (np.full((18, 2), 600.0), np.ones(18), (256, 176), "frame size outside"),
        (np.full((18, 2), -5.0), np.ones(18), (256, 176), "no visible joint lies inside"),
    ],
)
def test_pose_rejects_bad_keypoints(xy, confidence, frame, fault):
    with pytest.raises(InputError, match=fault) as err:
        P.Pose(xy, confidence, frame, "my pose")
    assert str(err.value).startswith("my pose: ")


def test_joints_slightly_outside_are_kept_and_named(pose):
    xy = pose.xy.copy()
    xy[_idx("right_wrist")] = [-18, 120]
    moved = pose.replace(xy=xy)
    assert moved.outside.tolist() == [name == "right_wrist" for name in P.JOINT_NAMES]
    assert "right wrist" in moved.outside_note() and "256x176" in moved.outside_note()
    assert pose.outside_note() is None


def test_empty_pose_is_allowed_but_not_required_visible():
    empty = P.Pose.from_yx([-1] * 18, [-1] * 18, (256, 176), "empty")
    assert empty.num_visible == 0
    with pytest.raises(InputError, match="no visible joint"):
        empty.require_visible()


# -- annotation rows and files ---------------------------------------------------------------------


def test_annotation_row_without_name():
    pose = P.parse_annotation_row(ROW.split(":", 1)[1], frame=(128, 64 * 3))
    assert pose.name is None and pose.frame == (128, 192) and pose.num_visible == 14


@pytest.mark.parametrize(
    "row, fault",
    [
        ("x:[1,2,3]:[1,2,3]", "expected 18 y values"),
        ("x:" + ROW.split(":", 1)[1].replace("40,85", "40,abc"), "'abc' is not a number"),
        ("x:" + ROW.split(":", 1)[1].replace("40,85", "40,nan"), "'nan' is not a finite number"),
        ("x:40,85:[1]", "in brackets"),
        ("just a name", "is not an annotation row"),
        ("x:" + ":".join(["[" + ",".join(["-1"] * 18) + "]"] * 2), "no visible joint"),
        ("x:" + ":".join(["[" + ",".join(["900"] * 18) + "]"] * 2), "is the frame size right"),
    ],
)
def test_annotation_row_faults(row, fault):
    with pytest.raises(InputError, match=fault) as err:
        P.parse_annotation_row(row, source="row 7")
    assert str(err.value).startswith("row 7: ") and "\n" not in str(err.value)


def test_annotation_file_inline(tmp_path):
    other = ROW.replace("45_1_front", "46_2_side").replace("[40,85", "[41,85")
    empty = "fashion/WOMEN/Shorts/id_00000748/01_2_side.jpg:" + ":".join(["[" + ",".join(["-1"] * 18) + "]"] * 2)
    path = tmp_path / "fasion-annotation.csv"
    path.write_text(CSV_HEADER + ROW + "\n" + other + "\n\n" + empty + "\n")
    table = P.read_annotation_csv(path)
    assert len(table) == 3 and table.frame == (256, 176)
    assert list(table) == [ROW_NAME, other.split(":")[0], empty.split(":")[0]]
    assert table[ROW_NAME] == P.parse_annotation_row(ROW)
    assert table["fashionWOMENTees_Tanksid0000508545_1front.jpg"] == table[ROW_NAME]  # flattened name
    assert table[other.split(":")[0]].xy[0, 1] == 41
    assert table[empty.split(":")[0]].num_visible == 0  # kept, as in the data
    with pytest.raises(InputError, match="has no row named 'nope'"):
        table.pose("nope")
    assert P.load_pose(path, name=ROW_NAME) == table[ROW_NAME]
    with pytest.raises(InputError, match="holds 3 annotation rows; choose one by name"):
        P.load_pose(path)
    with pytest.raises(InputError, match="no visible joint"):
        P.load_pose(path, name=empty.split(":")[0])


@pytest.mark.parametrize(
    "bad_line, fault",
    [
        (ROW.replace("[40,85,", "[40,"), "line 3: expected 18 y values"),
        (ROW.replace("81,96,", "81,x6,"), "line 3: x value 'x6' is not a number"),
        (ROW.replace("81,96,", "81,NaN,"), "line 3: x value 'NaN' is not a finite number"),
        (ROW.replace("81,96,", "81,-400,"), "line 3: joint left eye at .* more than a frame size outside"),
        (ROW, "line 3: repeats the image name"),
        (ROW.split(":", 1)[1], "line 3: has no image name"),
    ],
)
def test_annotation_file_faults_name_the_line(tmp_path, bad_line, fault):
    if "repeats" not in fault:
        bad_line = bad_line.replace("45_1_front", "46_1_front")
    path = tmp_path / "annotations.csv"
    path.write_text(CSV_HEADER + ROW + "\n" + bad_line + "\n")
    with pytest.raises(InputError, match=fault) as err:
        P.read_annotation_csv(path)
    assert str(err.value).startswith(str(path))


def test_annotation_file_numbers_json_would_refuse(tmp_path):
    path = tmp_path / "annotations.csv"
    path.write_text(CSV_HEADER + ROW.replace("81,96,", "81,.5,") + "\n")  # not JSON, still a number
    assert P.read_annotation_csv(path)[ROW_NAME].xy[_idx("left_eye"), 0] == 0.5


def test_annotation_frames_and_flat_names(tmp_path):
    market = tmp_path / "market-annotation-test.csv"
    market.write_text("name:keypoints_y:keypoints_x\n0161_c3s3_033053_04.jpg: [14, 24, 25, 44, 61, 24, 42, 56, 61, 86, "
                      "112, 60, 86, 101, 12, 11, 10, -1]: [38, 33, 20, 14, 20, 46, 52, 63, 29, 33, 34, 43, 36, 14, 35, "
                      "39, 27, -1]\n")  # fmt: skip
    assert P.guess_annotation_frame(market) == P.MARKET1501_SIZE == (128, 64)
    assert P.read_annotation_csv(market)["0161_c3s3_033053_04.jpg"].frame == (128, 64)
    assert P.read_annotation_csv(market, frame=(256, 128)).frame == (256, 128)
    assert P.guess_annotation_frame("fasion-resize-annotation-test.csv") == P.DEEPFASHION_SIZE
    assert P.flat_name("fashion/WOMEN/Blouses_Shirts/id_00003372/03_3_back.jpg") == (
        "fashionWOMENBlouses_Shirtsid0000337203_3back.jpg"
    )
    assert P.flat_name("0161_c3s3_033053_04.jpg") == "0161_c3s3_033053_04.jpg"


def test_real_deepfashion_annotations(shared_dir):
    path = shared_dir / "data" / "deepfashion" / "fasion-resize-annotation-test.csv"
    table = P.read_annotation_csv(path)
    rows = path.read_text().splitlines()[1:]
    assert len(table) == len(rows) and table.frame == (256, 176)
    assert table[ROW_NAME] == P.parse_annotation_row(ROW)
    # every name of test.lst finds its row under the flattened name
    listed = (shared_dir / "data" / "deepfashion" / "test.lst").read_text().split()
    assert all(name in table for name in listed[:200])
    # the data has rows with no joints and joints just outside the frame; both load
    empties = sum(table[name].num_visible == 0 for name in table)
    outside = sum(table[name].outside.any() for name in table)
    assert 0 < empties < len(table) and 0 < outside < 100


@pytest.mark.parametrize("split", ["test", "train"])
def test_real_market_annotations(shared_dir, split):
    path = shared_dir / "data" / "market1501" / f"market-annotation-{split}.csv"
    table = P.read_annotation_csv(path)
    lines = path.read_text().splitlines()
    assert len(table) == len(lines) - 1 and table.frame == (128, 64)
    name, ys, xs = lines[1].rsplit(":", 2)
    pose = table[name]
    assert pose.to_yx() == (json.loads(ys), json.loads(xs))
    assert all(table[n].frame == (128, 64) for n in list(table)[:50])


# -- our JSON --------------------------------------------------------------------------------------


def test_json_round_trip(tmp_path, pose):
    unnamed = pose.replace(name=None, confidence=pose.confidence * 0.5)
    for original in (pose, P.retarget(P.flip(pose), (512, 300)), unnamed):
        path = P.write_pose_json(original, tmp_path / "pose.json", overwrite=True)
        assert P.read_pose_json(path) == original
        assert P.load_pose(path) == original
    data = json.loads(path.read_text())
    assert data["format"] == P.POSE_JSON_FORMAT and data["frame"] == [256, 176]
    assert [joint["name"] for joint in data["joints"]] == list(P.JOINT_NAMES)
    knee = data["joints"][_idx("left_knee")]
    assert knee == {"name": "left_knee", "x": None, "y": None, "confidence": 0.0}  # missing joints are explicit


def test_json_refuses_to_overwrite(tmp_path, pose):
    path = P.write_pose_json(pose, tmp_path / "pose.json")
    before = path.read_bytes()
    with pytest.raises(InputError, match="already exists"):
        P.write_pose_json(P.flip(pose), path)
    assert path.read_bytes() == before


def test_json_defaults_and_joint_order(tmp_path, pose):
    data = P.pose_to_json(pose)
    data["joints"].reverse()  # any order
    for joint in data["joints"]:
        joint.pop("confidence")  # default: 1 with coordinates, 0 without
    assert P.pose_from_json(data) == pose


def _json_with(change) -> dict:
    data = P.pose_to_json(P.parse_annotation_row(ROW))
    change(data)
    return data


@pytest.mark.parametrize(
    "data, fault",
    [
        (_json_with(lambda d: d["joints"].pop()), "must list all 18 COCO-18 joints, found 17"),
        (_json_with(lambda d: d["joints"][0].update(name="head")), "unknown joint 'head'"),
        (_json_with(lambda d: d["joints"][1].update(name="nose")), "joint 'nose' appears twice"),
        (_json_with(lambda d: d["joints"][0].update(x="88")), "joint 'nose' x must be a finite number"),
        (_json_with(lambda d: d["joints"][0].update(x=True)), "joint 'nose' x must be a finite number"),
        (_json_with(lambda d: d["joints"][9].update(confidence=0.7)), "has confidence 0.7 but no x and y"),
        (_json_with(lambda d: d["joints"][0].update(confidence=-1)), "negative confidence"),
        (_json_with(lambda d: d.update(frame=[256])), "two whole numbers"),
        (_json_with(lambda d: d.update(frame=[0, 176])), "positive"),
        (_json_with(lambda d: d.update(frame=[64, 32])), "is the frame size right"),
        (_json_with(lambda d: d.update(format="cfld.pose/v9")), "this version reads 'cfld.pose/v1'"),
        (_json_with(lambda d: d.pop("frame")), "neither a cfld pose"),
        ([1, 2], "neither a cfld pose .* nor OpenPose output"),
    ],
)
def test_json_faults(data, fault):
    with pytest.raises(InputError, match=fault) as err:
        P.pose_from_json(data, "pose.json")
    assert str(err.value).startswith("pose.json")


def test_json_file_faults(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"frame": [256, 176], "joints": [')
    with pytest.raises(InputError, match=r"bad.json: is not valid JSON \(.* line 1, column"):
        P.read_pose_json(bad)
    bad.write_text('{"frame": [256, 176], "joints": [{"name": "nose", "x": NaN}]}')
    with pytest.raises(InputError, match="NaN is not a number"):
        P.load_pose(bad)
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match="is not UTF-8 text"):
        P.load_pose(bad)
    with pytest.raises(InputError, match="no such file"):
        P.read_pose_json(tmp_path / "missing.json")
    nobody = P.pose_to_json(P.Pose.from_yx([-1] * 18, [-1] * 18, (256, 176)))
    bad.write_text(json.dumps(nobody))
    with pytest.raises(InputError, match="no visible joint"):
        P.load_pose(bad)
    good = P.write_pose_json(P.parse_annotation_row(ROW), tmp_path / "good.json")
    with pytest.raises(InputError, match="records a 256x176 frame, not the 512x512 asked for"):
        P.load_pose(good, frame=(512, 512))


# -- OpenPose JSON ---------------------------------------------------------------------------------


def openpose_doc(people: list[np.ndarray]) -> dict:
    return {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": p.ravel().tolist()} for p in people]}


def test_openpose_coco18_and_person_choice(tmp_path, pose):
    triplets = np.concatenate([np.nan_to_num(pose.xy), pose.confidence[:, None] * 0.8], axis=1)
    second = triplets.copy()
    second[:, 0] += 10
    path = tmp_path / "photo_keypoints.json"
    path.write_text(json.dumps(openpose_doc([triplets, second])))
    first = P.read_openpose_json(path, frame=(256, 176))
    assert np.array_equal(first.xy, pose.xy, equal_nan=True) and first.visible.tolist() == pose.visible.tolist()
    assert np.allclose(first.confidence[pose.visible], 0.8)
    other = P.load_pose(path, person=1, frame=(256, 176))
    assert np.allclose(other.xy[pose.visible, 0], pose.xy[pose.visible, 0] + 10)
    assert other.name == "photo_keypoints.json person 1"
    with pytest.raises(InputError, match="has 2 people .0 to 1.; there is no person 2"):
        P.read_openpose_json(path, (256, 176), person=2)
    with pytest.raises(InputError, match="does not record the image size"):
        P.load_pose(path)


def test_openpose_body25_maps_by_joint_name(tmp_path):
    rng = np.random.default_rng(0)
    body25 = np.concatenate([rng.uniform(10, 100, (25, 2)), np.ones((25, 1))], axis=1)
    body25[10, 2] = 0  # RKnee undetected
    path = tmp_path / "body25.json"
    path.write_text(json.dumps(openpose_doc([body25])))
    pose = P.read_openpose_json(path, (128, 128))
    assert np.array_equal(pose.xy[_idx("right_hip")], body25[9, :2])  # BODY_25 index 9 = RHip
    assert np.array_equal(pose.xy[_idx("left_ear")], body25[18, :2])
    assert not pose.visible[_idx("right_knee")] and pose.num_visible == 17
    assert not any(np.array_equal(point, body25[8, :2]) for point in pose.xy)  # MidHip is dropped


@pytest.mark.parametrize(
    "doc, fault",
    [
        ({"version": 1.3, "people": []}, "has no people"),
        ({"version": 1.3}, "nor OpenPose output"),
        ({"people": [{"pose_keypoints_2d": [1.0] * 30}]}, "has 30 pose_keypoints_2d values; expected 54"),
        ({"people": [{"pose_keypoints_2d": []}]}, "has no 'pose_keypoints_2d'"),
        ({"people": [{"pose_keypoints_2d": [0.0] * 54}]}, "no visible joint"),
        ({"people": [{"pose_keypoints_2d": ["a"] * 54}]}, "must be a finite number"),
        ({"people": [{"pose_keypoints_2d": [5000.0, 5000.0, 0.9] * 18}]}, "is the frame size right"),
    ],
)
def test_openpose_faults(tmp_path, doc, fault):
    path = tmp_path / "op.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=fault) as err:
        P.load_pose(path, frame=(720, 1280))
    assert str(err.value).startswith(str(path))


def test_load_pose_faults(tmp_path):
    with pytest.raises(InputError, match="no such file, and not an annotation row"):
        P.load_pose(tmp_path / "nothing.csv")
    with pytest.raises(InputError, match="is not a file"):
        P.load_pose(tmp_path)


# -- flip and retarget -----------------------------------------------------------------------------


def test_flip_mirrors_and_swaps(pose):
    flipped = P.flip(pose)
    assert flipped.frame == pose.frame and flipped.name == pose.name
    assert P.flip(flipped) == pose
    width = pose.frame[1]
    for name in ("right_wrist", "left_shoulder", "right_eye", "nose", "neck"):
        twin = P.JOINT_NAMES[P.FLIP_PERMUTATION[_idx(name)]]
        assert flipped.xy[_idx(twin)].tolist() == [width - 1 - pose.xy[_idx(name), 0], pose.xy[_idx(name), 1]]
    # a person facing the camera has the right shoulder on the image's left; the mirror image of such
    # a person also faces the camera, so with labels swapped the right shoulder stays on the left
    for p in (pose, flipped):
        assert p.xy[_idx("right_shoulder"), 0] < p.xy[_idx("left_shoulder"), 0]
    assert flipped.visible.tolist() == [pose.visible[P.FLIP_PERMUTATION[i]] for i in range(18)]


def test_flip_commutes_with_rendering():
    rng = np.random.default_rng(1)
    pose = random_pose(rng, (128, 64), spread=0.2)
    pose = pose.replace(xy=np.round(pose.xy))
    heat = P.render_heatmaps(pose, (128, 64))
    flipped = P.render_heatmaps(P.flip(pose), (128, 64))
    assert np.array_equal(flipped, heat[list(P.FLIP_PERMUTATION), :, ::-1])


def test_retarget_frame_keeps_aspect_and_centres(pose):
    square = P.retarget(pose, (256, 256))
    assert square.frame == (256, 256)
    assert np.array_equal(square.xy[pose.visible], pose.xy[pose.visible] + [40, 0])  # (256 - 176) / 2 bars
    photo = pose.replace(frame=(1080, 720), xy=pose.xy * 4)
    moved = P.retarget(photo, (256, 176))
    scale = min(256 / 1080, 176 / 720)
    v = pose.visible
    dist = lambda p: np.linalg.norm(p.xy[v][:, None] - p.xy[v][None], axis=-1)  # noqa: E731
    assert np.allclose(dist(moved), dist(photo) * scale)  # same shape, uniformly scaled
    # the photo's frame, scaled, sits centred: its corners map to symmetric positions
    corners = photo.replace(xy=np.tile([[-0.5, -0.5]], (18, 1)))
    assert np.allclose(P.retarget(corners, (256, 176)).xy[0] + 0.5, [(176 - 720 * scale) / 2, 0])


def test_retarget_body_fills_the_frame(pose):
    small = pose.replace(frame=(1000, 1000), xy=pose.xy / 4 + 300)
    fitted = P.retarget(small, (256, 176), fit="body", padding=0.1)
    v = pose.visible
    before, after = small.xy[v], fitted.xy[v]
    scale = np.ptp(after, axis=0) / np.ptp(before, axis=0)
    assert math.isclose(scale[0], scale[1])  # aspect kept
    assert np.allclose((after.min(axis=0) + after.max(axis=0)) / 2, [87.5, 127.5])  # centred
    padded = (np.ptp(before, axis=0) + 1) * scale[0] * 1.2  # the joints' pixels plus 10 % on each side
    assert np.isclose(padded, [176, 256]).any() and (padded <= [176 + 1e-9, 256 + 1e-9]).all()
    with pytest.raises(InputError, match="fit must be"):
        P.retarget(pose, (256, 176), fit="crop")


# -- rendering -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame, size, sigma",
    [((256, 176), (64, 64), 6.0), ((256, 176), (256, 176), 6.0), ((128, 64), (37, 53), 2.5),
     ((256, 176), (512, 512), 6.0), ((100, 100), (96, 80), 20.0)],
)  # fmt: skip
def test_vectorised_heatmaps_equal_the_loop(frame, size, sigma):
    rng = np.random.default_rng(sum(size))
    for _ in range(4):
        pose = random_pose(rng, frame)
        assert np.array_equal(P.render_heatmaps(pose, size, sigma), loop_heatmaps(pose, size, sigma))


def test_heatmap_details(pose):
    heat = P.render_heatmaps(pose, (256, 256))
    assert heat.shape == (18, 256, 256) and heat.dtype == np.float32
    assert not heat[~pose.visible].any()  # missing joints: empty channels
    nose = np.unravel_index(heat[_idx("nose")].argmax(), (256, 256))
    assert nose == (40, int(88 / 176 * 256))  # peak 1 at the scaled, truncated joint
    assert heat[_idx("nose")].max() == 1.0
    # truncation is towards zero, as in the original: x = -18 -> column -26.18 -> -26, not -27
    xy = pose.xy.copy()
    xy[_idx("right_wrist")] = [-18, 100]
    wrist = P.render_heatmaps(pose.replace(xy=xy), (256, 256))[_idx("right_wrist")]
    assert wrist[100, 0] == np.float32(np.exp(-(26**2) / 72))
    with pytest.raises(InputError, match="sigma must be a number in"):
        P.render_heatmaps(pose, 64, sigma=0)


def test_pose_image_channels(pose):
    image = P.pose_image(pose, (64, 64))
    assert tuple(image.shape) == (21, 64, 64) and str(image.dtype) == "torch.float32"
    skeleton = P.render_skeleton(pose, (64, 64))
    assert np.array_equal(image[:3].numpy(), (skeleton.transpose(2, 0, 1) / 255.0).astype(np.float32))
    assert np.array_equal(image[3:].numpy(), P.render_heatmaps(pose, (64, 64)))
    empty = P.Pose.from_yx([-1] * 18, [-1] * 18, (256, 176))
    assert not P.pose_image(empty, 32).any()  # an empty pose renders blank, like the original


def test_skeleton_colours_and_canvas(pose):
    picture = P.render_skeleton(pose, (256, 176))
    assert picture.shape == (256, 176, 3) and picture.dtype == np.uint8
    assert tuple(picture[40, 88]) == P.JOINT_COLORS[_idx("nose")]  # the joint disc, at full colour
    mid = ((56 + 49) // 2, (90 + 147) // 2)  # middle of bone right_shoulder -> right_elbow (bone 2)
    assert tuple(picture[mid[1], mid[0]]) == P.BONE_COLORS[2]
    canvas = np.full((256, 176, 3), 7, np.uint8)
    over = P.render_skeleton(pose, (256, 176), canvas)
    assert (over[0, 0] == 7).all() and tuple(over[40, 88]) == P.JOINT_COLORS[0] and (canvas == 7).all()
    with pytest.raises(InputError, match="must be a 256x176x3 uint8 picture"):
        P.render_skeleton(pose, (256, 176), canvas[:10])


def test_draw_pose_and_grid(tmp_path, pose):
    assert P.draw_pose(pose).shape == (256, 176, 3)
    photo = np.full((512, 352, 3), 200, np.uint8)
    picture = P.draw_pose(pose, background=photo)
    assert picture.shape == (512, 352, 3)
    assert (picture[0, 0] == 120).all()  # the photo, darkened so the skeleton shows
    assert tuple(picture[80, 176]) == P.JOINT_COLORS[0]  # nose at (88, 40) * 2
    grid = P.pose_grid([picture] * 5, ["a"] * 5, columns=2)
    assert grid.shape == (3 * (512 + 14), 2 * 352, 3)
    path = P.write_png(grid, tmp_path / "grid.png")
    assert np.array_equal(P.read_image(path), grid)
    with pytest.raises(InputError, match="already exists"):
        P.write_png(grid, path)
    (tmp_path / "text.png").write_text("not a picture")
    with pytest.raises(InputError, match="text.png: cannot be read as an image"):
        P.read_image(tmp_path / "text.png")


def test_draw_over_a_real_photo(shared_dir, pose):
    photo = P.read_image(shared_dir / "data" / "images" / "women1.jpg")
    picture = P.draw_pose(pose, background=photo)
    assert picture.shape == photo.shape
    assert (picture != (photo * 0.6).round().astype(np.uint8)).any(axis=-1).mean() > 0.01  # skeleton drawn


# -- gallery ---------------------------------------------------------------------------------------


def test_gallery_is_varied_and_drawable():
    gallery = P.gallery()
    assert len(gallery) == 24
    views = {name.rsplit("_", 1)[-1].removesuffix(".jpg") for name in gallery}
    assert {"front", "back", "side", "full", "additional"} <= views
    assert {name.split("/")[1] for name in gallery} == {"MEN", "WOMEN"}
    for name, pose in gallery.items():
        assert pose.frame == (256, 176) and pose.num_visible >= 5, name
    assert any(gallery[name].num_visible < 12 for name in gallery)  # partial poses too


def test_gallery_rows_are_real(shared_dir):
    table = P.read_annotation_csv(shared_dir / "data" / "deepfashion" / "fasion-resize-annotation-test.csv")
    for name, pose in P.gallery().items():
        assert table[name] == pose


def test_gallery_ships_with_the_package():
    assert (Path(P.__file__).parent.parent / "assets" / "pose_gallery.csv").is_file()

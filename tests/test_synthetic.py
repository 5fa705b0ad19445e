"""cfld.data.synthetic: procedurally drawn persons in real DeepFashion poses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cfld.data.synthetic import Person, SyntheticPersons, select_poses
from cfld.errors import InputError
from cfld.pose import PoseTable, gallery, pose_image

SIZES = {"image_size": (64, 64), "cond_size": (32, 32), "pose_size": (64, 48)}


def test_items_have_the_shared_schema_shapes_and_ranges():
    item = SyntheticPersons(3, **SIZES, seed=1)[2]
    assert set(item) == {"img_src", "img_tgt", "img_cond", "pose_img_src", "pose_img_tgt", "name_src", "name_tgt"}
    assert item["img_src"].shape == item["img_tgt"].shape == (3, 64, 64)
    assert item["img_cond"].shape == (3, 32, 32)
    assert item["pose_img_src"].shape == item["pose_img_tgt"].shape == (21, 64, 48)
    for key in ("img_src", "img_tgt", "img_cond"):
        assert item[key].dtype == torch.float32 and -1 <= item[key].min() and item[key].max() <= 1
    assert isinstance(item["name_src"], str) and item["name_src"] != item["name_tgt"]
    # a person, not a blank picture: many colours, and source and target differ (two poses)
    assert item["img_src"].std() > 0.1 and not torch.equal(item["img_src"], item["img_tgt"])


def test_deterministic_from_seed_and_index_and_different_across_seeds():
    a, b, c = (SyntheticPersons(4, **SIZES, seed=7), SyntheticPersons(4, **SIZES, seed=7),
               SyntheticPersons(4, **SIZES, seed=8))
    for key in ("img_src", "img_tgt", "img_cond", "pose_img_tgt"):
        assert torch.equal(a[3][key], b[3][key])
    assert not torch.equal(a[3]["img_src"], c[3]["img_src"])
    assert not torch.equal(a[0]["img_src"], a[1]["img_src"])


def test_pose_images_are_the_real_poses_named_in_the_item():
    table = gallery()
    item = SyntheticPersons(2, **SIZES, seed=3)[1]
    for side in ("src", "tgt"):
        name = item[f"name_{side}"].split("_", 2)[2]
        assert torch.equal(item[f"pose_img_{side}"], pose_image(table[name], SIZES["pose_size"]))


def test_same_person_in_both_images_and_condition_is_the_source():
    item = SyntheticPersons(1, **SIZES, seed=5)[0]
    # same background in both views (a studio session): the corner pixel
    assert torch.allclose(item["img_src"][:, 0, 0], item["img_tgt"][:, 0, 0], atol=1e-6)
    # without flipping the condition image is the source at the condition size
    small = torch.nn.functional.interpolate(item["img_src"][None], size=(32, 32), mode="area")[0]
    assert (small - item["img_cond"]).abs().mean() < 0.08


def test_front_and_back_of_the_garment_differ():
    pose = next(p for p in (gallery()[n] for n in gallery()) if p.visible[0])  # a pose facing the camera
    back = pose.replace(confidence=np.where(np.isin(np.arange(18), [0, 14, 15]), 0.0, pose.confidence))
    rng = np.random.default_rng(0)
    person = Person.random(rng)
    person.pattern = "hstripes"
    front_img, back_img = person.draw(pose, (256, 176)), person.draw(back, (256, 176))
    neck, hips = pose.xy[1], (pose.xy[8] + pose.xy[11]) / 2
    y0, y1 = int(neck[1] + 0.3 * (hips[1] - neck[1])), int(hips[1] - 0.1 * (hips[1] - neck[1]))
    x = int((neck[0] + hips[0]) / 2)
    chest_front, chest_back = front_img[y0:y1, x - 3 : x + 3].astype(int), back_img[y0:y1, x - 3 : x + 3].astype(int)
    assert np.abs(chest_front - chest_back).mean() > 20


def test_flip_cond_mirrors_the_condition_image_for_some_items():
    plain, flipped = SyntheticPersons(8, **SIZES, seed=2), SyntheticPersons(8, **SIZES, seed=2, flip_cond=True)
    mirrored = [torch.allclose(flipped[i]["img_cond"], plain[i]["img_cond"].flip(-1)) for i in range(8)]
    same = [torch.equal(flipped[i]["img_cond"], plain[i]["img_cond"]) for i in range(8)]
    assert any(mirrored) and any(same) and all(m or s for m, s in zip(mirrored, same))


def test_splits_partition_the_drawable_poses():
    table = gallery()
    every, train, test = (select_poses(table, s) for s in ("all", "train", "test"))
    names = lambda poses: {p.name for p in poses}  # noqa: E731
    assert names(train) | names(test) == names(every) and not names(train) & names(test)
    assert len(test) == len(every[::10]) and len(every) == 23  # one gallery pose lacks a hip


def test_bad_inputs_are_input_errors():
    with pytest.raises(InputError, match="length"):
        SyntheticPersons(0, **SIZES)
    table = gallery()
    one = PoseTable(table.names[:1], table.ys[:1], table.xs[:1], table.frame, "one.csv")
    with pytest.raises(InputError, match="one.csv.*drawable"):
        SyntheticPersons(2, **SIZES, poses=one)
    with pytest.raises(InputError, match="split"):
        select_poses(table, "val")


def test_real_deepfashion_keypoints(shared_dir):
    csv = shared_dir / "data" / "deepfashion" / "fasion-resize-annotation-test.csv"
    data = SyntheticPersons(2, **SIZES, poses=csv, split="test")
    assert len(data.poses) == 327  # every 10th of the 3,264 rows with neck, shoulders and hips
    assert data[1]["img_tgt"].shape == (3, 64, 64)


def test_garment_masks_cover_the_garments_in_the_target_pose():
    data = SyntheticPersons(12, **SIZES, seed=5)
    for index in range(12):
        masks = data.garment_masks(index)
        assert masks.shape == (2, 64, 64) and masks.dtype == bool
        assert masks[0].sum() > 20 and not (masks[0] & masks[1]).any()  # every pose shows the top; no overlap
        _, person, _, tgt = data._pair(index)
        image = ((data[index]["img_tgt"] + 1) / 2 * 255).permute(1, 2, 0).numpy()
        # pixels inside the lower garment of a plain-coloured bottom have that colour (up to resampling)
        if masks[1].sum() > 20:
            assert np.median(np.abs(image[masks[1]] - person.bottom), axis=0).max() < 8
        # the top's region holds only the top's colours (main, second, emblem), never the background
        top = image[masks[0]]
        colours = np.stack([person.top, person.top_second, person.emblem])
        nearest = np.abs(top[:, None] - colours[None]).max(axis=2).min(axis=1)
        assert np.median(nearest) < 8, index


def test_target_worn_by_another_person_is_the_same_pose_with_another_look():
    data = SyntheticPersons(4, **SIZES, seed=5)
    assert torch.equal(data.target_worn_by(2, 2), data[2]["img_tgt"])
    other = data.target_worn_by(2, 3)
    assert other.shape == (3, 64, 64) and not torch.equal(other, data[2]["img_tgt"])
    _, person, _, _ = data._pair(3)
    background = np.abs(((other + 1) / 2 * 255)[:, 0, 0].numpy() - np.clip(person.background, 0, 255)).max()
    assert background < 3  # the other person's studio, around the same pose

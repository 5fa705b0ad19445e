"""Dataset preparation (DeepFashion, Market-1501) on small fake release trees, and the torch Dataset.

The fake In-shop tree holds real DeepFashion photos (``../shared/data/images``) under names of real test
pairs, with the keypoint rows of those names taken from the real CSVs; the train split is written in
the flattened naming style, the test split in the path style, so both styles are read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cfld.cli import main
from cfld.data import (
    ITEM_KEYS,
    MANIFEST,
    PoseTransferDataset,
    deepfashion_key,
    market_key,
    market_train_pairs,
    prepare_deepfashion,
    prepare_market1501,
)
from cfld.errors import InputError
from cfld.images import load_image, to_model_input
from cfld.models.config import CFLDConfig
from cfld.pose import flat_name, pose_image, read_annotation_csv

MISSING = "fashion/WOMEN/Dresses/id_00099999/01_1_front.jpg"  # listed and paired, but not in the tree
SMALL = dict(image_size=(64, 64), cond_size=(32, 32), pose_size=(32, 32))


def _tree_digest(root: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(root)): (hashlib.sha1(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def inshop(shared_dir: Path, tmp_path_factory) -> dict:
    """A fake In-shop release: img_highres/ with 4 real photos under 10 names, and the published files."""
    base = tmp_path_factory.mktemp("inshop")
    data = shared_dir / "data" / "deepfashion"
    pair_lines = (data / "fasion-resize-pairs-test.csv").read_text().splitlines()[1:]
    pairs = [tuple(line.split(",")) for line in pair_lines[:6]]
    train_pairs, test_pairs = pairs[:3], pairs[3:]
    train_pairs.append((train_pairs[0][0], MISSING))
    photos = sorted((shared_dir / "data" / "images").glob("women*.jpg"))
    names = list(dict.fromkeys(n for p in pairs for n in p))
    images = base / "img_highres"
    for i, name in enumerate(names):
        dest = images / Path(name).relative_to("fashion")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(photos[i % len(photos)], dest)
    header, *rows = (data / "fasion-resize-annotation-test.csv").read_text().splitlines()
    by_name = {row.split(":", 1)[0]: row for row in rows}
    missing_row = by_name[names[0]].replace(names[0], MISSING, 1)
    ann = base / "annotations"
    ann.mkdir()
    for split, split_pairs, flat in (("train", train_pairs, True), ("test", test_pairs, False)):
        split_names = list(dict.fromkeys(n for p in split_pairs for n in p))
        style = flat_name if flat else (lambda n: n)
        (ann / f"{split}.lst").write_text("".join(f"{flat_name(n)}\n" for n in split_names))
        (ann / f"fasion-resize-pairs-{split}.csv").write_text(
            "from,to\n" + "".join(f"{style(a)},{style(b)}\n" for a, b in split_pairs))
        split_rows = [by_name.get(n, missing_row) for n in split_names]
        if flat:
            split_rows = [flat_name(r.split(":", 1)[0]) + ":" + r.split(":", 1)[1] for r in split_rows]
        (ann / f"fasion-resize-annotation-{split}.csv").write_text(header + "\n" + "\n".join(split_rows) + "\n")
    assert header.endswith(",,,")  # the real header's stray commas are part of the test
    return {"images": images, "annotations": ann, "train_pairs": train_pairs, "test_pairs": test_pairs,
            "base": base}


@pytest.fixture(scope="module")
def prepared(inshop, tmp_path_factory) -> tuple[Path, dict, list]:
    out = tmp_path_factory.mktemp("prepared") / "deepfashion"
    before = _tree_digest(inshop["base"])
    manifest, reports, counts = prepare_deepfashion(
        inshop["images"], inshop["annotations"], out, sizes=[None, (64, 44)], progress=False, workers=2)
    assert _tree_digest(inshop["base"]) == before  # the sources are never modified
    return out, manifest, reports


# -- names ------------------------------------------------------------------------------------------


def test_deepfashion_key_reads_both_naming_styles():
    flat = "fashionWOMENBlouses_Shirtsid0000337203_3back.jpg"
    for name in ("fashion/WOMEN/Blouses_Shirts/id_00003372/03_3_back.jpg",
                 "img_highres/WOMEN/Blouses_Shirts/id_00003372/03_3_back.jpg",
                 "WOMEN/Blouses_Shirts/id_00003372/03_3_back.jpg", flat):
        assert deepfashion_key(name) == flat
    for bad in ("women1.jpg", "fashion/WOMEN/03_3_back.jpg", "fashion/KIDS/Tees/id_1/01_1_front.jpg"):
        with pytest.raises(InputError, match="DeepFashion"):
            deepfashion_key(bad, "x.csv line 3")


def test_real_deepfashion_test_files_agree(shared_dir):
    """The published test pairs, list and keypoints name the same 4,038 images once keyed."""
    from cfld.data.published import read_name_list, read_pairs_csv

    data = shared_dir / "data" / "deepfashion"
    pairs = read_pairs_csv(data / "fasion-resize-pairs-test.csv", deepfashion_key)
    listed = set(read_name_list(data / "test.lst", deepfashion_key))
    rows = {deepfashion_key(n) for n in read_annotation_csv(data / "fasion-resize-annotation-test.csv").names}
    assert len(pairs) == 8570 and len(listed) == 4038 and rows == listed
    assert {n for p in pairs for n in p} <= listed


# -- DeepFashion preparation ------------------------------------------------------------------------------


def test_prepare_deepfashion_layout(prepared, inshop):
    out, manifest, reports = prepared
    assert manifest["dataset"] == "deepfashion" and manifest["frame"] == [256, 176]
    for split, pairs in (("train", inshop["train_pairs"]), ("test", inshop["test_pairs"])):
        entry = manifest["splits"][split]
        lines = (out / entry["pairs"]).read_text().splitlines()
        assert lines[0] == "from,to"
        kept = [p for p in pairs if MISSING not in p]
        assert lines[1:] == [f"{flat_name(a)},{flat_name(b)}" for a, b in kept]
        table = read_annotation_csv(out / entry["annotations"])
        assert all("/" not in name for name in table.names)
        for a, b in kept:
            for name in (a, b):
                copy = out / f"{split}_highres" / flat_name(name)
                assert copy.read_bytes() == (inshop["images"] / Path(name).relative_to("fashion")).read_bytes()
                with Image.open(out / f"{split}_64x44" / Path(flat_name(name)).with_suffix(".png")) as small:
                    assert small.size == (44, 64)
        original = read_annotation_csv(inshop["annotations"] / f"fasion-resize-annotation-{split}.csv")
        for name in original.names:
            assert np.array_equal(table[flat_name(name)].xy, original[name].xy, equal_nan=True)


def test_prepare_deepfashion_reports_missing_images(prepared, inshop):
    out, manifest, reports = prepared
    train = {r.split: r for r in reports}["train"]
    assert train.missing == [flat_name(MISSING)]
    assert train.pairs_listed == 4 and train.pairs == 3
    assert manifest["splits"]["train"]["report"]["missing_first"] == [flat_name(MISSING)]
    assert "1 image(s) missing from the sources: " + flat_name(MISSING) in "\n".join(train.lines())
    assert flat_name(MISSING) not in (out / "train.lst").read_text()


def test_prepare_rerun_is_a_noop(prepared, inshop):
    out, manifest, _ = prepared
    before = _tree_digest(out)
    again, _, counts = prepare_deepfashion(inshop["images"], inshop["annotations"], out, sizes=[None, (64, 44)],
                                           progress=False)
    assert counts == {"images_written": 0, "images_skipped": 2 * 12, "files_written": 0}
    assert again == manifest and _tree_digest(out) == before


def test_prepare_refuses_to_overwrite_without_asking(inshop, tmp_path):
    out = tmp_path / "df"
    prepare_deepfashion(inshop["images"], inshop["annotations"], out, splits=["test"], progress=False)
    pairs = out / "fasion-resize-pairs-test.csv"
    good = pairs.read_text()
    pairs.write_text("from,to\n")
    with pytest.raises(InputError, match="--overwrite") as err:
        prepare_deepfashion(inshop["images"], inshop["annotations"], out, splits=["test"], progress=False)
    assert "fasion-resize-pairs-test.csv" in str(err.value) and pairs.read_text() == "from,to\n"
    prepare_deepfashion(inshop["images"], inshop["annotations"], out, splits=["test"], overwrite=True, progress=False)
    assert pairs.read_text() == good


def test_prepare_adds_splits_and_sizes_later(inshop, tmp_path):
    out = tmp_path / "df"
    prepare_deepfashion(inshop["images"], inshop["annotations"], out, splits=["test"], progress=False)
    prepare_deepfashion(inshop["images"], inshop["annotations"], out, splits=["test"], sizes=[(64, 44)],
                        progress=False)
    manifest, _, counts = prepare_deepfashion(inshop["images"], inshop["annotations"], out, splits=["train"],
                                              progress=False)
    assert sorted(manifest["splits"]) == ["test", "train"]
    assert sorted(manifest["splits"]["test"]["images"]) == ["64x44", "original"]
    assert len(PoseTransferDataset(out, "test", images="64x44", **SMALL)) == len(inshop["test_pairs"])
    from cfld.data.prepare import earlier_manifest

    with pytest.raises(InputError, match="holds a prepared 'deepfashion' dataset"):
        earlier_manifest(out, "market1501")  # what prepare_market1501 checks before writing


def test_prepare_completes_an_interrupted_run(inshop, tmp_path):
    out = tmp_path / "df"
    prepare_deepfashion(inshop["images"], inshop["annotations"], out, splits=["test"], progress=False)
    (out / MANIFEST).unlink()
    next(iter((out / "test_highres").iterdir())).unlink()
    _, _, counts = prepare_deepfashion(inshop["images"], inshop["annotations"], out, splits=["test"], progress=False)
    assert counts["images_written"] == 1 and counts["files_written"] == 1  # one photo, the manifest


def test_a_killed_preparation_leaves_nothing_that_is_read_or_kept(inshop, tmp_path):
    """What a preparation killed mid-write leaves (a half-written image under its temporary name) is not an
    image to `cfld evaluate`, and the next preparation removes it."""
    from cfld.metrics.matching import list_images
    from conftest import dead_pid, temporary_name_of

    out = tmp_path / "df"
    prepare_deepfashion(inshop["images"], inshop["annotations"], out, splits=["test"], progress=False)
    images = out / "test_highres"
    victim = next(iter(sorted(images.iterdir())))
    half = temporary_name_of(images, victim.name, dead_pid())
    half.write_bytes(victim.read_bytes()[:100])
    victim.unlink()  # killed before the rename: the image itself is not there yet
    assert list_images(images, "generated images") == sorted(p for p in images.iterdir() if p != half)
    _, _, counts = prepare_deepfashion(inshop["images"], inshop["annotations"], out, splits=["test"], progress=False)
    assert counts["images_written"] == 1 and victim.is_file() and not half.exists()
    assert not [p for p in out.rglob(".*")]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_prepare_reports_an_unreadable_photo(inshop, tmp_path, damage):
    images = tmp_path / "img_highres"
    shutil.copytree(inshop["images"], images)
    name = inshop["test_pairs"][0][1]
    photo = images / Path(name).relative_to("fashion")
    photo.write_bytes(b"not a jpeg" if damage == "garbage" else photo.read_bytes()[: photo.stat().st_size // 2])
    _, reports, _ = prepare_deepfashion(images, inshop["annotations"], tmp_path / "df", splits=["test"], progress=False)
    assert reports[0].unreadable == [flat_name(name)]
    assert reports[0].pairs == len(inshop["test_pairs"]) - 1


def _copy_annotations(inshop, tmp_path) -> Path:
    ann = tmp_path / "annotations"
    shutil.copytree(inshop["annotations"], ann)
    return ann


@pytest.mark.parametrize(
    "file, line, text, message",
    [
        ("fasion-resize-pairs-test.csv", 3, "fashion/WOMEN/Dresses/id_00000001/01_1_front.jpg", "1 column"),
        ("fasion-resize-pairs-test.csv", 2, "a.jpg,notes.txt", "not an image file name"),
        ("fasion-resize-pairs-test.csv", 1, "source,target", "header from,to"),
        ("fasion-resize-annotation-test.csv", 3, "fashion/WOMEN/Dresses/id_00000001/01_1_front.jpg:[1,2]:[3,4]",
         "expected 18 y values"),
        ("test.lst", 2, "fashionWOMENDressesid0000000101_1front.jpg,extra", "not an image file name"),
    ],
)
def test_bad_rows_name_file_and_line(inshop, tmp_path, file, line, text, message):
    ann = _copy_annotations(inshop, tmp_path)
    lines = (ann / file).read_text().splitlines()
    lines[line - 1] = text
    (ann / file).write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=message) as err:
        prepare_deepfashion(inshop["images"], ann, tmp_path / "out", splits=["test"], progress=False)
    assert f"{ann / file} line {line}" in str(err.value)
    assert not (tmp_path / "out").exists()  # nothing written before the inputs are checked


def test_missing_train_files_are_named(inshop, tmp_path):
    ann = _copy_annotations(inshop, tmp_path)
    (ann / "fasion-resize-pairs-train.csv").unlink()
    with pytest.raises(InputError, match="fasion-resize-pairs-train.csv .*--split test"):
        prepare_deepfashion(inshop["images"], ann, tmp_path / "out", progress=False)


def test_fashion_spelling_and_output_inside_source(inshop, tmp_path):
    ann = _copy_annotations(inshop, tmp_path)
    for kind in ("pairs", "annotation"):
        (ann / f"fasion-resize-{kind}-test.csv").rename(ann / f"fashion-resize-{kind}-test.csv")
    manifest, _, _ = prepare_deepfashion(inshop["images"], ann, tmp_path / "out", splits=["test"], progress=False)
    assert manifest["splits"]["test"]["report"]["pairs"] == len(inshop["test_pairs"])
    with pytest.raises(InputError, match="never writes into its sources"):
        prepare_deepfashion(inshop["images"], ann, ann / "out", splits=["test"], progress=False)


# -- command line -----------------------------------------------------------------------------------------


def test_cli_prepare(inshop, tmp_path, capsys):
    assert main(["prepare", "--help"]) == 0
    listing = capsys.readouterr().out
    assert "deepfashion" in listing and "market1501" in listing
    out = tmp_path / "df"
    args = ["prepare", "deepfashion", "-i", str(inshop["images"]), "-a", str(inshop["annotations"]),
            "-o", str(out), "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "train: 6 images, 3 pairs (1 of 4 listed pairs left out)" in printed
    assert "missing from the sources: " + flat_name(MISSING) in printed
    assert main(args) == 0
    assert "0 written" in capsys.readouterr().out
    (out / "test.lst").write_text("changed\n")
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--size", "big"]) == 2  # an input error, not a traceback
    assert "--size" in capsys.readouterr().err


# -- the Dataset ------------------------------------------------------------------------------------------


def test_dataset_items(prepared):
    out, _, _ = prepared
    dataset = PoseTransferDataset(out, "train", **SMALL)
    assert len(dataset) == 3 and dataset.flip_prob == 0.5
    item = dataset[0]
    assert set(item) == set(ITEM_KEYS)
    assert item["img_src"].shape == item["img_tgt"].shape == (3, 64, 64)
    assert item["img_cond"].shape == (3, 32, 32)
    assert item["pose_img_src"].shape == item["pose_img_tgt"].shape == (21, 32, 32)
    for key in ("img_src", "img_tgt", "img_cond"):
        assert item[key].dtype == torch.float32 and -1 <= item[key].min() < 0 < item[key].max() <= 1
    assert 0 <= item["pose_img_tgt"].min() and item["pose_img_tgt"].max() <= 1
    src, tgt = dataset.pairs[0]
    assert (item["name_src"], item["name_tgt"]) == (src, tgt)
    table = read_annotation_csv(out / "fasion-resize-annotation-train.csv")
    assert torch.equal(item["pose_img_tgt"], pose_image(table[tgt], (32, 32)))
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=2)))
    assert batch["img_src"].shape == (2, 3, 64, 64) and len(batch["name_src"]) == 2


def test_dataset_stretches_like_the_original(prepared):
    """The 176x256 photo is stretched (not padded) to the paper's 512x512 image and 256x256 condition."""
    out, _, _ = prepared
    dataset = PoseTransferDataset(out, "test", CFLDConfig())
    item = dataset[0]
    photo = load_image(out / "test_highres" / item["name_src"])
    assert item["img_src"].shape == (3, 512, 512) and item["img_cond"].shape == (3, 256, 256)
    assert torch.equal(item["img_src"], to_model_input(photo, (512, 512)))
    assert torch.equal(item["img_cond"], to_model_input(photo, (256, 256)))  # no flip in test
    assert item["pose_img_src"].shape == (21, 256, 256)
    gt = item["img_gt"]
    assert gt.shape == (3, 256, 176) and 0 <= gt.min() and gt.max() <= 1
    assert torch.allclose(gt * 2 - 1, to_model_input(load_image(out / "test_highres" / item["name_tgt"]), (256, 176)),
                          atol=1e-6)


def test_dataset_flips_only_the_condition_image(prepared):
    out, _, _ = prepared
    plain = PoseTransferDataset(out, "train", flip_prob=0.0, **SMALL)[1]
    flipped = PoseTransferDataset(out, "train", flip_prob=1.0, **SMALL)[1]
    assert torch.equal(flipped["img_cond"], plain["img_cond"].flip(-1))
    assert not torch.equal(flipped["img_cond"], plain["img_cond"])
    for key in ("img_src", "img_tgt", "pose_img_src", "pose_img_tgt"):
        assert torch.equal(flipped[key], plain[key])
    dataset = PoseTransferDataset(out, "train", generator=torch.Generator().manual_seed(0), **SMALL)
    flips = [torch.equal(dataset[1]["img_cond"], flipped["img_cond"]) for _ in range(40)]
    assert 8 < sum(flips) < 32  # about half, and only these two outcomes
    again = PoseTransferDataset(out, "train", generator=torch.Generator().manual_seed(0), **SMALL)
    assert [torch.equal(again[1]["img_cond"], flipped["img_cond"]) for _ in range(40)] == flips


def test_dataset_reads_resized_copies_and_reports_problems(prepared, tmp_path):
    out, _, _ = prepared
    small = PoseTransferDataset(out, "test", images="64x44", **SMALL)
    assert small.image_path(small.pairs[0][0]).suffix == ".png"
    assert small[0]["img_src"].shape == (3, 64, 64)
    with pytest.raises(InputError, match="has no '256x176' images"):
        PoseTransferDataset(out, "test", images="256x176")
    with pytest.raises(InputError, match="cfld prepare"):
        PoseTransferDataset(tmp_path, "train")
    with pytest.raises(InputError, match="flip_prob"):
        PoseTransferDataset(out, "train", flip_prob=2.0)
    broken = tmp_path / "broken"
    broken.mkdir()
    manifest = json.loads((out / MANIFEST).read_text())
    del manifest["splits"]["test"]["pairs"]
    (broken / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="incomplete or damaged"):
        PoseTransferDataset(broken, "test", **SMALL)


# -- Market-1501 ------------------------------------------------------------------------------------------


def test_market_train_pairs_from_the_real_keypoints(shared_dir):
    data = shared_dir / "data" / "market1501"
    table = read_annotation_csv(data / "market-annotation-train.csv")
    assert len(table) == 12936 and table.frame == (128, 64)
    pairs = market_train_pairs(table)
    assert len(pairs) == 263632  # PATN's market-pairs-train.csv
    assert len(set(pairs)) == len(pairs)
    assert all(a != b and a.split("_")[0] == b.split("_")[0] for a, b in pairs[:5000])
    pose = table[pairs[0][0]]
    assert (pose.confidence[[2, 5, 8, 11]] > 0).all()  # both shoulders and hips


def test_market_real_test_files_agree(shared_dir):
    from cfld.data.published import read_pairs_csv

    data = shared_dir / "data" / "market1501"
    pairs = read_pairs_csv(data / "market-pairs-test.csv", market_key)
    table = read_annotation_csv(data / "market-annotation-test.csv")
    assert len(pairs) == 12000 and len(table) == 19732
    assert {n for p in pairs for n in p} <= set(table.names)
    assert market_key("bounding_box_test/0002_c1s1_000451_03.jpg") == "0002_c1s1_000451_03.jpg"
    with pytest.raises(InputError, match="Market-1501"):
        market_key("readme.txt")


def test_prepare_market1501(shared_dir, tmp_path):
    data = shared_dir / "data" / "market1501"
    all_pairs = market_train_pairs(read_annotation_csv(data / "market-annotation-train.csv"))
    train_names = list(dict.fromkeys(n for pair in all_pairs[:6] for n in pair))  # one person's valid photos
    test_pairs = (data / "market-pairs-test.csv").read_text().splitlines()[1:3]
    test_names = list(dict.fromkeys(n for line in test_pairs for n in line.split(",")))
    release = tmp_path / "Market-1501-v15.09.15"
    photo = Image.open(shared_dir / "data" / "images" / "women1.jpg").resize((64, 128))
    for folder, names in (("bounding_box_train", train_names), ("bounding_box_test", test_names[1:])):
        (release / folder).mkdir(parents=True)
        for name in names:
            photo.save(release / folder / name)
    ann = tmp_path / "annotations"
    ann.mkdir()
    for split, names in (("train", train_names), ("test", test_names)):
        header, *rows = (data / f"market-annotation-{split}.csv").read_text().splitlines()
        (ann / f"market-annotation-{split}.csv").write_text(
            "\n".join([header, *(r for r in rows if r.split(":", 1)[0] in names)]) + "\n")
    (ann / "market-pairs-test.csv").write_text("from,to\n" + "\n".join(test_pairs) + "\n")
    manifest, reports, counts = prepare_market1501(tmp_path, ann, tmp_path / "out", progress=False)
    out = tmp_path / "out"
    assert manifest["frame"] == [128, 64]
    valid = market_train_pairs(read_annotation_csv(ann / "market-annotation-train.csv"))
    lines = (out / "market-pairs-train.csv").read_text().splitlines()
    assert lines[1:] == [f"{a},{b}" for a, b in valid] and len(valid) >= 2
    assert "built from the keypoints" in "\n".join(reports[0].lines())
    assert reports[1].missing == [test_names[0]] and reports[1].pairs == 1
    assert sorted(os.listdir(out / "train")) == sorted(train_names)
    item = PoseTransferDataset(out, "test", **SMALL)[0]
    assert item["img_gt"].shape == (3, 128, 64) and item["pose_img_src"].shape == (21, 32, 32)
    assert json.loads((out / MANIFEST).read_text())["dataset"] == "market1501"
    _, _, counts = prepare_market1501(tmp_path, ann, tmp_path / "out", progress=False)
    assert counts["images_written"] == 0 and counts["files_written"] == 0


def test_training_reads_a_prepared_folder(prepared):
    """The paper presets' `data: {kind: prepared, root: ...}` builds this dataset at the model's sizes."""
    from cfld.errors import InputError
    from cfld.models.config import CFLDConfig
    from cfld.training.config import TrainConfig
    from cfld.training.datasets import build_dataset

    out, _, _ = prepared
    config = CFLDConfig.preset("tiny")
    dataset = build_dataset({"kind": "prepared", "root": str(out)}, config)
    assert isinstance(dataset, PoseTransferDataset) and len(dataset) == 3 and dataset.flip_prob == 0.5
    item = dataset[0]
    assert item["img_src"].shape == (3, *config.image_size) and item["img_cond"].shape == (3, *config.cond_size)
    assert item["pose_img_tgt"].shape == (config.pose_channels, *config.pose_size)
    assert build_dataset({"kind": "prepared", "root": str(out)}, config, split="test").split == "test"
    with pytest.raises(InputError, match="needs a 'root'"):
        build_dataset({"kind": "prepared"}, config)
    for preset in ("deepfashion-256", "deepfashion-512"):
        assert TrainConfig.load(preset).data["kind"] == "prepared"

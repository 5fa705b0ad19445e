"""`cfld prepare photos`: a catalogue of one's own photos (one folder per person) becomes a prepared dataset that
`cfld train`, `cfld sample` and `cfld evaluate` take unchanged. On the 246 real DeepFashion test photos of 116 people:
the split keeps every person on one side, the published same-person pairs of a side are among its pairs, and the
detected keypoints agree with the published ones as the detector does; wide photos are framed back; an interrupted
run goes on; bad catalogues get one sentence each."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cfld.cli import main
from cfld.data import photos as P
from cfld.data.photos.catalogue import prepared_name
from cfld.data.photos.files import person_pairs, split_people
from cfld.data.photos.report import REPORT
from cfld.errors import InputError
from conftest import REAL, assert_fails, needs_mediapipe, real_photo_catalogue, run

DATA = Path(__file__).resolve().parent / "data"
PHOTOS = (DATA / "women1.jpg", DATA / "women2.jpg")  # two real 256x176 DeepFashion photos of two people
DEMO = Path(__file__).resolve().parents[1] / "src" / "cfld" / "assets" / "demo_model"


def wide(photo: Path, top=100, left=520, height=225, size=(450, 800), colour=(200, 190, 180)) -> Image.Image:
    """``photo`` pasted off-centre into a wide canvas of another colour, at half the canvas's height."""
    picture = Image.open(photo).convert("RGB")
    width = round(height * picture.width / picture.height)
    canvas = Image.new("RGB", (size[1], size[0]), colour)
    canvas.paste(picture.resize((width, height), Image.BICUBIC), (left, top))
    return canvas


def small_catalogue(root: Path) -> Path:
    """Two people, each with their dataset photo and the same photo pasted into a wide canvas."""
    for i, photo in enumerate(PHOTOS):
        person = root / f"person {i}"
        person.mkdir(parents=True)
        shutil.copy(photo, person / "shop.jpg")
        wide(photo, left=80 + 300 * i).save(person / "street.png")
    return root


# -- the 246 real photos ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_catalogue(tmp_path_factory):
    """The real photos as a catalogue: one subfolder per DeepFashion id_ folder (116 people), and the catalogue
    prepared by the command line (with its default workers, every usable core)."""
    needs_mediapipe()
    root = tmp_path_factory.mktemp("real") / "catalogue"
    truth = real_photo_catalogue(root)
    out = root.parent / "prepared"
    code = main(["prepare", "photos", "-i", str(root), "-o", str(out), "--no-progress"])
    assert code == 0
    return root, out, truth


def test_real_catalogue_is_split_by_person_and_keeps_the_published_pairs(real_catalogue):
    root, out, truth = real_catalogue
    people = list(csv.DictReader((out / "people.csv").open()))
    assert list(people[0]) == ["name", "person", "split", "source"]
    side = {}
    for row in people:
        assert side.setdefault(row["person"], row["split"]) == row["split"]  # no person on both sides
        assert (root / row["source"]).is_file()  # every name traced back to its photo
    splits = {row["name"]: row["split"] for row in people}
    person_of = {row["name"]: row["person"] for row in people}
    name_of = {row["source"]: row["name"] for row in people}
    assert set(side.values()) == {"train", "test"} and 0.05 < sum(s == "test" for s in side.values()) / len(side) < 0.15

    # nothing left out silently: every photo is prepared or reported with its reason
    report = json.loads((out / REPORT).read_text())
    left_out = {entry["photo"]: key for key, entries in report["left_out_photos"].items() for entry in entries}
    assert sorted([*name_of, *left_out]) == sorted(truth)
    assert report["photos"] == 246 and sum(report["prepared"].values()) == len(people) >= 236

    # the pair lists: same-person pairs of one side; the published pairs.csv's pairs that fall on one side are there
    by_source = {annotation: source for source, annotation in truth.items()}
    for split in ("train", "test"):
        pairs = list(csv.reader((out / f"pairs-{split}.csv").open()))[1:]
        assert pairs and all(a != b and person_of[a] == person_of[b] == person_of[a] and splits[a] == split
                             for a, b in pairs)
        listed = set(map(tuple, pairs))
        published = [(name_of.get(by_source[a]), name_of.get(by_source[b]))
                     for a, b in csv.reader((REAL / "pairs.csv").open()) if a != "from"]
        on_side = [pair for pair in published if None not in pair and splits[pair[0]] == split]
        assert on_side and set(on_side) <= listed
        lst = (out / f"{split}.lst").read_text().split()
        assert sorted(p.name for p in (out / f"{split}_256x176").iterdir()) == sorted(lst)

    # the manifest is the prepared layout the dataset reader, sampling and evaluation read
    manifest = json.loads((out / "cfld-dataset.json").read_text())
    assert manifest["dataset"] == "photos" and manifest["frame"] == [256, 176]
    assert manifest["splits"]["test"]["images"]["original"] == {"dir": "test_256x176", "suffix": ".png"}


def test_real_catalogue_keypoints_agree_with_the_published_ones(real_catalogue):
    """PCK@0.1 of the prepared annotation rows against keypoints.csv, beside MediaPipe's own on these photos (91.2%
    measured by benchmarks/framing.py in the photos' own frame): the rows are the detector's, in whole pixels."""
    from cfld.pose import pck_counts, read_annotation_csv

    _, out, truth = real_catalogue
    published = read_annotation_csv(REAL / "keypoints.csv", (256, 176))
    people = list(csv.DictReader((out / "people.csv").open()))
    counts = np.zeros((1, 2))
    for split in ("train", "test"):
        table = read_annotation_csv(out / f"annotation-{split}.csv", (256, 176))
        for row in (r for r in people if r["split"] == split):
            found, expected = table[row["name"]], published[truth[row["source"]]]
            counts += pck_counts(np.where(found.visible[:, None], found.xy, np.nan), expected.xy, expected.visible)
    assert counts[0, 0] / counts[0, 1] >= 0.90, counts


def test_real_catalogue_rerun_is_a_noop(real_catalogue, capsys):
    _, out, _ = real_catalogue
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    code, stdout, err = run(capsys, "prepare", "photos", "-i", real_catalogue[0], "-o", out, "--no-progress")
    assert code == 0, err
    assert "all 246 photo(s) were framed by earlier runs" in stdout and "0 dataset file(s) written" in stdout
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    changed = [p.name for p in after if after[p] != before.get(p)]
    assert changed == [REPORT]  # the report of this run; nothing else is touched


def test_train_sample_and_evaluate_on_a_prepared_catalogue(real_catalogue, tmp_path, capsys):
    """The whole path on the CPU: 2 steps of fine-tuning the bundled tiny model on the catalogue (finetune-256 with
    its placeholders set), its test pairs sampled, and the results scored against the prepared test photos."""
    _, out, _ = real_catalogue
    run_dir, results = tmp_path / "run", tmp_path / "results"
    code, stdout, err = run(capsys, "train", "--config", "finetune-256", "--output", run_dir, "--max-steps", 2,
                            "--no-progress", "--set", f"data.root={out}", "--set", f"init_checkpoint={DEMO}",
                            "--set", f"vae={DEMO}", "--set", f"model={DEMO / 'model' / 'config.json'}",
                            "--set", "batch_size=2", "--set", "gradient_accumulation_steps=1",
                            "--set", "mixed_precision=no", "--set", "gradient_checkpointing=false",
                            "--set", "num_workers=0", "--set", "eval_every=0", "--set", "sample_every=0")
    assert code == 0, err
    assert "2 steps in all" in stdout and (run_dir / "model" / "model_index.json").is_file()
    code, stdout, err = run(capsys, "sample", "-m", run_dir / "model", "-d", out, "-o", results, "--limit", 3,
                            "--steps", 2, "--quiet")
    assert code == 0, err
    generated = sorted((results / "256x176").glob("*.png"))
    assert len(generated) == 3 and Image.open(generated[0]).size == (176, 256)
    code, stdout, err = run(capsys, "evaluate", "-g", results / "256x176", "-t", out / "test_256x176",
                            "--metrics", "psnr,ssim", "--quiet", "-o", tmp_path / "metrics.json")
    assert code == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["num_pairs"] == 3 and 0 < metrics["metrics"]["psnr"] < 60


def test_other_options_are_refused_then_applied_with_overwrite(real_catalogue, tmp_path, capsys):
    """Another seed moves people between the splits: refused without --overwrite (nothing changes), applied with
    it without framing again, and no picture is left behind in the split it left."""
    _, prepared, _ = real_catalogue
    out = tmp_path / "copy"
    shutil.copytree(prepared, out)
    before = (out / "people.csv").read_text()
    assert_fails(capsys, ["prepare", "photos", "-i", str(real_catalogue[0]), "-o", str(out), "--seed", "1",
                          "--no-progress"], "differ from what this preparation writes", "--overwrite")
    assert (out / "people.csv").read_text() == before
    code, stdout, err = run(capsys, "prepare", "photos", "-i", real_catalogue[0], "-o", out, "--seed", "1",
                            "--overwrite", "--no-progress")
    assert code == 0, err
    assert "were framed by earlier runs" in stdout
    assert (out / "people.csv").read_text() != before
    for split in ("train", "test"):
        assert sorted(p.name for p in (out / f"{split}_256x176").iterdir()) == sorted(
            (out / f"{split}.lst").read_text().split())


# -- framing, resuming, options -----------------------------------------------------------------------------------


def test_wide_photos_are_framed_back(tmp_path):
    """Photos pasted into wide canvases come back framed: the prepared picture is close to the photo itself, and
    the record keeps the crop in the photo's own pixels."""
    needs_mediapipe()
    root = small_catalogue(tmp_path / "catalogue")
    out = tmp_path / "out"
    _, report = P.prepare_photos(root, out, test_fraction=0, progress=False)
    assert report.prepared == {"train": 4} and report.pairs == {"train": 4}
    for i, photo in enumerate(PHOTOS):
        name = prepared_name(f"person {i}", "street.png")
        assert name == f"person-{i}_street.png"
        framed = np.asarray(Image.open(out / "train_256x176" / name), float)
        assert np.abs(framed - np.asarray(Image.open(photo).convert("RGB"), float)).mean() < 25
        record = json.loads((out / "framing" / name.replace(".png", ".json")).read_text())
        assert record["framing"]["framed"] is True and record["framing"]["photo_size"] == [450, 800]
        assert abs(record["framing"]["crop"]["left"] - (80 + 300 * i)) <= 12


def test_an_interrupted_run_goes_on_where_it_stopped(tmp_path):
    needs_mediapipe()
    from cfld.framing import Framer

    root = small_catalogue(tmp_path / "catalogue")
    out = tmp_path / "out"
    calls = []

    class Interrupted(Framer):
        def __call__(self, photo, source=None):
            if len(calls) == 2:
                raise KeyboardInterrupt
            calls.append(source)
            return super().__call__(photo, source)

    with pytest.raises(KeyboardInterrupt):
        P.prepare_photos(root, out, test_fraction=0, progress=False,
                         framer_factory=lambda size, plain: Interrupted(size, replace_background=plain))
    assert not (out / "cfld-dataset.json").exists()  # not a dataset yet
    assert len(list((out / "framing").glob("*.json"))) == 2 and not [p for p in out.rglob(".*") if p.is_file()]
    _, report = P.prepare_photos(root, out, test_fraction=0, progress=False)
    assert (report.framed_before, report.framed_now) == (2, 2)
    assert (out / "cfld-dataset.json").is_file() and report.prepared == {"train": 4}
    # a photo copied or touched is the same photo (its bytes decide); a changed one is framed again on request
    street = root / "person 0" / "street.png"
    os.utime(street, (1, 1))
    assert P.prepare_photos(root, out, test_fraction=0, progress=False)[1].framed_now == 0
    wide(PHOTOS[0], left=60).save(street)
    with pytest.raises(InputError,
                       match="other versions of them or with other options .person-0_street.png.; pass --overwrite"):
        P.prepare_photos(root, out, test_fraction=0, progress=False)
    assert P.prepare_photos(root, out, test_fraction=0, progress=False, overwrite=True)[1].framed_now == 1


def test_split_and_pairs_are_by_person_capped_and_stable():
    people = [f"p{i:03d}" for i in range(200)]
    split = split_people(people, 0.1, seed=0)
    assert sum(s == "test" for s in split.values()) == 20
    assert split_people(people, 0.1, seed=0) == split and split_people(people, 0.1, seed=1) != split
    more = split_people(people + [f"q{i}" for i in range(20)], 0.1, seed=0)
    assert sum(more[p] != split[p] for p in people) <= 3  # adding people leaves the others where they were
    assert set(split_people(["a", "b"], 0.5, 0).values()) == {"train", "test"}
    assert set(split_people(["a", "b", "c"], 0.01, 0).values()) == {"train", "test"}  # at least one each side
    assert set(split_people(["a", "b"], 1.0, 0).values()) == {"test"}
    with pytest.raises(InputError, match="--test-fraction 0"):
        split_people(["a"], 0.1, 0)
    names = [f"photo{i:02d}.png" for i in range(40)]
    pairs = person_pairs(names, 50, seed=0, person="alice")
    assert len(pairs) == 50 == len(set(pairs)) and all(a != b for a, b in pairs)
    assert pairs == person_pairs(names, 50, seed=0, person="alice") != person_pairs(names, 50, 0, "bob")
    assert len(person_pairs(names[:3], 50, 0, "carol")) == 6


def test_people_csv_and_min_joints(tmp_path, capsys):
    """A CSV names each photo's person (paths relative to the CSV's folder); a stricter --min-joints leaves photos
    out, reported with their joint count."""
    needs_mediapipe()
    shop = tmp_path / "shop"
    shop.mkdir()
    rows = ["photo,person"]
    for i, photo in enumerate(PHOTOS):
        for view in ("a", "b"):
            picture = Image.open(photo)
            (picture if view == "a" else picture.transpose(Image.FLIP_LEFT_RIGHT)).save(shop / f"{i}{view}.png")
            rows.append(f"{i}{view}.png,model {i}")
    (shop / "people.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "prepare", "photos", "--people", shop / "people.csv", "-o", out,
                            "--test-fraction", "0.5", "--no-progress")
    assert code == 0, err
    assert "train: 1 people, 2 photos, 2 pairs" in stdout and "test: 1 people, 2 photos, 2 pairs" in stdout
    sources = {row["source"]: row["person"] for row in csv.DictReader((out / "people.csv").open())}
    assert sources == {"0a.png": "model 0", "0b.png": "model 0", "1a.png": "model 1", "1b.png": "model 1"}
    (shop / "0b.png").unlink()
    Image.open(PHOTOS[0]).crop((0, 0, 176, 128)).save(shop / "0b.png")  # the upper body: no knees, no ankles
    code, stdout, err = run(capsys, "prepare", "photos", "--people", shop / "people.csv", "-o", tmp_path / "strict",
                            "--test-fraction", "0", "--min-joints", "14", "--no-progress")
    assert code == 0, err
    assert "train: 1 people, 2 photos, 2 pairs" in stdout
    report = json.loads((tmp_path / "strict" / REPORT).read_text())
    assert [e["photo"] for e in report["left_out_photos"]["too_few_joints"]] == ["0b.png"]
    assert "joints were found (--min-joints 14)" in report["left_out_photos"]["too_few_joints"][0]["reason"]
    assert report["left_out_photos"]["alone"] == [
        {"photo": "0a.png", "reason": "the only usable photo of model 0; no pair is possible"}]


# -- bad catalogues: one sentence each --------------------------------------------------------------------------------


def test_an_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert_fails(capsys, ["prepare", "photos", "-i", str(tmp_path / "empty"), "-o", str(tmp_path / "out")],
                 "holds no photos", "one subfolder per person")
    assert not (tmp_path / "out").exists()


def test_photos_in_the_top_folder(tmp_path, capsys):
    root = tmp_path / "catalogue"
    root.mkdir()
    shutil.copy(PHOTOS[0], root / "front.jpg")
    assert_fails(capsys, ["prepare", "photos", "-i", str(root), "-o", str(tmp_path / "out")],
                 "holds 1 photo(s) directly (front.jpg)", "a subfolder of their own", "--people")


def test_a_person_with_one_photo_is_reported_not_fatal(tmp_path, capsys):
    needs_mediapipe()
    root = small_catalogue(tmp_path / "catalogue")
    (root / "solo").mkdir()
    Image.open(PHOTOS[0]).transpose(Image.FLIP_LEFT_RIGHT).save(root / "solo" / "only.jpg")
    os.symlink(root / "person 1", root / "person 0" / "linked")  # inside the catalogue: not followed, said so
    code, stdout, err = run(capsys, "prepare", "photos", "-i", root, "-o", tmp_path / "out", "--test-fraction", "0",
                            "--no-progress")
    assert code == 0, err
    assert "left out, the only usable photo of its person (no pair possible): 1 (solo/only.jpg)" in stdout
    assert "1 linked folder(s) inside person folders were not followed" in stdout and "person 0/linked" in stdout
    report = json.loads((tmp_path / "out" / REPORT).read_text())
    assert report["left_out_photos"]["alone"] == [{"photo": "solo/only.jpg", "reason": "the only photo of solo"}]
    # nobody with two photos: nothing to prepare, said in one sentence, the reasons in the report
    for person in ("person 0", "person 1"):
        (root / person / "street.png").unlink()
    line = assert_fails(capsys, ["prepare", "photos", "-i", str(root), "-o", str(tmp_path / "none")],
                        "has no person with two usable photos, so no pair can be made")
    assert REPORT in line and json.loads((tmp_path / "none" / REPORT).read_text())["left_out"]["alone"] == 3


def test_two_photos_that_would_get_one_name(tmp_path, capsys):
    root = tmp_path / "catalogue"
    for person in ("anna-b", "anna b"):
        (root / person).mkdir(parents=True)
        for i, photo in enumerate(PHOTOS):
            shutil.copy(photo, root / person / f"{i}.jpg")
    (root / "anna b" / "0.jpg").write_bytes((root / "anna b" / "0.jpg").read_bytes() + b"\0")  # not a byte copy
    (root / "anna b" / "1.jpg").write_bytes((root / "anna b" / "1.jpg").read_bytes() + b"\0")
    assert_fails(capsys, ["prepare", "photos", "-i", str(root), "-o", str(tmp_path / "out")],
                 "anna b/0.jpg and anna-b/0.jpg would both be prepared as anna-b_0.png", "rename one")


def test_one_photo_under_two_people(tmp_path, capsys):
    root = tmp_path / "catalogue"
    for person in ("ann", "bea"):
        (root / person).mkdir(parents=True)
        shutil.copy(PHOTOS[0], root / person / f"{person}.jpg")
    assert_fails(capsys, ["prepare", "photos", "-i", str(root), "-o", str(tmp_path / "out")],
                 "ann/ann.jpg (ann) and bea/bea.jpg (bea) are the same photo under two people")


def test_a_link_outside_the_folder(tmp_path, capsys):
    root = tmp_path / "catalogue"
    (root / "ann").mkdir(parents=True)
    shutil.copy(PHOTOS[0], root / "ann" / "a.jpg")
    os.symlink(PHOTOS[1], root / "ann" / "b.jpg")
    line = assert_fails(capsys, ["prepare", "photos", "-i", str(root), "-o", str(tmp_path / "out")],
                        "is a symbolic link to", "outside", "copy the photo into the folder")
    assert "ann/b.jpg" in line


def test_a_csv_naming_missing_files(tmp_path, capsys):
    (tmp_path / "people.csv").write_text("photo,person\na.jpg,ann\nb.jpg,ann\nc.jpg,bea\n")
    shutil.copy(PHOTOS[0], tmp_path / "a.jpg")
    assert_fails(capsys, ["prepare", "photos", "--people", str(tmp_path / "people.csv"), "-o", str(tmp_path / "out")],
                 "names 2 photo(s) that are not in", "b.jpg, c.jpg")
    (tmp_path / "bad.csv").write_text("file,who\na.jpg,ann\n")
    assert_fails(capsys, ["prepare", "photos", "--people", str(tmp_path / "bad.csv"), "-o", str(tmp_path / "out")],
                 "bad.csv line 1", "photo and person")
    assert_fails(capsys, ["prepare", "photos", "-o", str(tmp_path / "out")], "needs -i FOLDER", "--people FILE")


def test_output_inside_the_catalogue_and_another_dataset(tmp_path, capsys):
    root = tmp_path / "catalogue"
    (root / "ann").mkdir(parents=True)
    shutil.copy(PHOTOS[0], root / "ann" / "a.jpg")
    assert_fails(capsys, ["prepare", "photos", "-i", str(root), "-o", str(root / "out")],
                 "lies inside the source folder")
    other = tmp_path / "deepfashion"
    other.mkdir()
    (other / "cfld-dataset.json").write_text(json.dumps({"format": "cfld.dataset/v1", "dataset": "deepfashion"}))
    assert_fails(capsys, ["prepare", "photos", "-i", str(root), "-o", str(other)], "holds a prepared 'deepfashion'")


def test_finetune_recipe():
    from cfld.training import TrainConfig

    config = TrainConfig.load("finetune-256", ["data.root=data/shop", "init_checkpoint=cfld-sd15", "lr=1e-6",
                                               "mixed_precision=no"])
    assert config.trainable == "paper" and config.data == {"kind": "prepared", "root": "data/shop"}
    assert config.init_checkpoint == "cfld-sd15" and config.lr == 1e-6 and config.mixed_precision == "no"
    assert TrainConfig.load("finetune-256").lr * 32 == pytest.approx(1e-5)
    with pytest.raises(InputError, match="must be KEY=VALUE"):
        TrainConfig.load("finetune-256", ["lr"])
    with pytest.raises(InputError, match="unknown training options colour"):
        TrainConfig.load("finetune-256", ["colour=red"])

"""Catalogue scale: `cfld prepare photos`, `cfld frame` and `cfld pose detect` share their photos over worker
processes and `prepare photos` over launched processes, and write the same files however the work is cut: on the
246 real photos of ../shared, one process, two workers and two launched processes give the same dataset byte for
byte (the seconds of the report aside); a worker killed mid-run is replaced and its photo framed again; a photo that
kills its worker twice is left out with its reason; a launched run stopped after its share goes on from the records."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from cfld.data import photos as P
from cfld.data.photos.report import REPORT
from cfld.errors import InputError
from cfld.framing import Framer
from cfld.launch import Processes
from conftest import assert_fails, needs_mediapipe, real_photo_catalogue, run

DATA = Path(__file__).resolve().parent / "data"
TIMINGS = ("seconds_in_this_run", "seconds_per_photo")


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))


def prepared_files(out: Path) -> dict[str, bytes]:
    """Every file of a prepared folder, the report without its seconds."""
    files = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name == REPORT:
            report = json.loads(data)
            data = json.dumps({k: v for k, v in report.items() if k not in TIMINGS}).encode()
        files[str(path.relative_to(out))] = data
    return files


def differences(a: dict[str, bytes], b: dict[str, bytes]) -> list[str]:
    return sorted(name for name in a.keys() | b.keys() if a.get(name) != b.get(name))


@pytest.fixture(scope="module")
def real_catalogue(tmp_path_factory) -> Path:
    """The 246 real photos as a catalogue, one folder per DeepFashion id_ folder (116 people)."""
    needs_mediapipe()
    root = tmp_path_factory.mktemp("scale") / "catalogue"
    real_photo_catalogue(root)
    return root


@pytest.fixture(scope="module")
def two_workers(real_catalogue) -> Path:
    out = real_catalogue.parent / "two-workers"
    done = subprocess.run([sys.executable, "-m", "cfld", "prepare", "photos", "-i", str(real_catalogue), "-o",
                           str(out), "--no-progress", "--workers", "2"], env=env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "246 photo(s) now (0 in earlier runs)" in done.stdout and "with 2 workers" in done.stdout
    return out


@pytest.mark.slow
def test_one_process_two_workers_and_two_launched_processes_give_the_same_dataset(real_catalogue, two_workers,
                                                                                  tmp_path, capsys):
    code, stdout, err = run(capsys, "prepare", "photos", "-i", real_catalogue, "-o", tmp_path / "one",
                            "--no-progress", "--workers", "1")
    assert code == 0, err
    assert "with 1 worker," in stdout
    reference = prepared_files(tmp_path / "one")
    assert len([name for name in reference if name.startswith("framing/")]) == 2 * 246  # a record and a picture each
    assert differences(prepared_files(two_workers), reference) == []

    launched = tmp_path / "launched"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "cfld", "prepare",
               "photos", "-i", str(real_catalogue), "-o", str(launched), "--no-progress"]
    done = subprocess.run(command, env=dict(env(), ACCELERATE_USE_CPU="1"), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("photos prepared") == 1  # one report, from the main process
    assert "with 1 worker in each of 2 processes" in done.stdout  # the cores shared among the launched processes
    assert differences(prepared_files(launched), reference) == []


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_replaced_and_its_photo_framed_again(real_catalogue, two_workers, tmp_path):
    """Seven people's photos; a worker is killed (SIGKILL, as the out-of-memory killer does) once some are framed:
    the run still ends well, and every record is the one the whole catalogue's run made."""
    import psutil

    catalogue = tmp_path / "catalogue"
    for person in sorted(real_catalogue.iterdir())[:7]:
        shutil.copytree(person, catalogue / person.name)
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "cfld", "prepare", "photos", "-i", str(catalogue), "-o",
                                str(out), "--no-progress", "--workers", "2"], env=env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.monotonic() + 120
    while process.poll() is None and killed is None and time.monotonic() < deadline:
        if len(list((out / "framing").glob("*.json"))) >= 2:
            workers = [child for child in psutil.Process(process.pid).children()
                       if "spawn_main" in " ".join(child.cmdline())]
            if workers:
                killed = workers[0].pid
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.01)
    stdout, stderr = process.communicate(timeout=300)
    assert killed is not None, "the run finished before a worker could be killed"
    assert process.returncode == 0, stderr[-3000:]
    photos = sum(1 for path in catalogue.rglob("*") if path.is_file())
    assert f"framed {photos} photo(s) now" in stdout and "unreadable" not in stdout
    whole = two_workers / "framing"
    made = {path.name: path.read_bytes() for path in (out / "framing").iterdir()}
    assert len([name for name in made if name.endswith(".json")]) == photos
    assert made == {name: (whole / name).read_bytes() for name in made}
    assert not [path for path in out.rglob(".*") if path.is_file()]  # the killed worker's temporary is gone


class KillingFramer(Framer):
    """Kills the worker that frames ``person 1``'s street photo, every time (as a crash inside a library would)."""

    def __call__(self, photo, source=None):
        if source == "person 1/street.png":
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__call__(photo, source)


def kill_on_street(size, plain):
    return KillingFramer(size, replace_background=plain)


def small_catalogue(root: Path) -> Path:
    """Three people, each with their dataset photo and the photo mirrored and pasted into a wider canvas."""
    for i, name in enumerate(("women1.jpg", "women2.jpg", "deepfashion_ref_4.png")):
        person = root / f"person {i}"
        person.mkdir(parents=True)
        picture = Image.open(DATA / name).convert("RGB")
        picture.save(person / "shop.png")
        canvas = Image.new("RGB", (picture.width * 2, picture.height), (200, 190, 180))
        canvas.paste(picture.transpose(Image.FLIP_LEFT_RIGHT), (picture.width // 2 + 10 * i, 0))
        canvas.save(person / "street.png")
    return root


def test_a_photo_that_kills_its_worker_twice_is_left_out_with_its_reason(tmp_path):
    needs_mediapipe()
    root = small_catalogue(tmp_path / "catalogue")
    _, report = P.prepare_photos(root, tmp_path / "out", test_fraction=0, progress=False, workers=2,
                                 framer_factory=kill_on_street)
    [entry] = report.left_out["unreadable"]
    assert entry["photo"] == "person 1/street.png" and "was killed by SIGKILL, 2 times" in entry["reason"]
    assert [e["photo"] for e in report.left_out["alone"]] == ["person 1/shop.png"]
    assert report.prepared == {"train": 4}
    assert not (tmp_path / "out" / "framing" / "person-1_street.json").exists()  # tried again by the next run


class Rank(Processes):
    """One process of several, run alone: its share framed, no one to wait for (a launched run stopped there)."""

    def wait(self) -> None:
        pass

    def gather(self, value):
        return [value]


def test_a_launched_run_stopped_after_a_share_goes_on_from_its_records_and_merge_writes_the_rest(tmp_path,
                                                                                                  capsys):
    needs_mediapipe()
    root = small_catalogue(tmp_path / "catalogue")
    alone = tmp_path / "alone"
    P.prepare_photos(root, alone, test_fraction=0, progress=False)
    out = tmp_path / "out"
    manifest, report = P.prepare_photos(root, out, test_fraction=0, progress=False, processes=Rank(1, 2))
    assert manifest is None and report.framed_now == 3  # photos 1, 3, 5 of 6: the second process's share
    assert sorted(p.name for p in (out / "framing").glob("*.json")) == [
        "person-0_street.json", "person-1_street.json", "person-2_street.json"]
    assert not (out / "cfld-dataset.json").exists()  # the main process writes the dataset

    args = ["prepare", "photos", "-i", root, "-o", out, "--test-fraction", "0", "--no-progress"]
    assert_fails(capsys, [*args, "--merge"], f"error: {out}: has no framing record of 3 of the 6 photos",
                 "--merge frames nothing; wait for the processes framing them, or run without --merge")
    code, stdout, err = run(capsys, *args)
    assert code == 0, err
    assert "framed 3 photo(s) now (3 in earlier runs)" in stdout
    counts = ("framed_in_this_run", "framed_in_earlier_runs")
    ours, theirs = prepared_files(out), prepared_files(alone)
    assert differences(ours, theirs) == [REPORT]  # the same files; the report counts the runs
    assert {k: v for k, v in json.loads(ours[REPORT]).items() if k not in counts} == \
        {k: v for k, v in json.loads(theirs[REPORT]).items() if k not in counts}

    for path in out.iterdir():  # the dataset's files gone, the records kept: --merge writes them again
        if path.is_file():
            path.unlink()
    code, stdout, err = run(capsys, *args, "--merge")
    assert code == 0, err
    assert "all 6 photo(s) were framed by earlier runs" in stdout
    merged = prepared_files(out)
    assert differences(merged, ours) == [REPORT]
    assert {k: v for k, v in json.loads(merged[REPORT]).items() if k not in counts} == \
        {k: v for k, v in json.loads(ours[REPORT]).items() if k not in counts}


def test_frame_and_pose_detect_write_the_same_files_with_two_workers(tmp_path, capsys):
    needs_mediapipe()
    root = small_catalogue(tmp_path / "catalogue")
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in root.rglob("*.png"):
        shutil.copy(path, photos / f"{path.parent.name.replace(' ', '')}_{path.name}")
    Image.new("RGB", (300, 200), (90, 90, 90)).save(photos / "blank.png")
    (photos / "broken.jpg").write_bytes(b"not a picture")
    outputs = {}
    for workers in ("1", "2"):
        for command in (["frame"], ["pose", "detect"]):
            out = tmp_path / f"{command[-1]}-{workers}"
            code, stdout, err = run(capsys, *command, photos, "-o", out, "--workers", workers, "--no-progress")
            assert code == 0, err
            lines = [line.replace(str(out), "OUT") for line in stdout.splitlines()
                     if not re.search(r" in \d+\.\d s", line)]  # the seconds aside
            outputs[command[-1], workers] = ({p.name: p.read_bytes() for p in out.iterdir()}, lines)
    for command in ("frame", "detect"):
        assert outputs[command, "1"] == outputs[command, "2"]  # the files, and the lines in the photos' order
    files, lines = outputs["frame", "2"]
    assert len(files) == 12 and "blank.json" not in files
    assert any("broken.jpg" in line for line in lines) and any("blank.png" in line for line in lines)
    summary = json.loads(outputs["detect", "2"][0]["detect-summary.json"])
    assert len(summary["detected"]) == 6 and summary["unreadable"] == ["broken.jpg"]


def test_merge_refuses_a_folder_never_framed(tmp_path):
    needs_mediapipe()
    root = small_catalogue(tmp_path / "catalogue")
    with pytest.raises(InputError, match="has no framing record of 6 of the 6 photos"):
        P.prepare_photos(root, tmp_path / "out", test_fraction=0, progress=False, merge=True)

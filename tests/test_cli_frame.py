"""`cfld frame`: photos framed as the training photos are, with their records; and the framing options the other
commands share (--no-frame, --save-framed) where MediaPipe is missing."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cfld.cli import main
from conftest import SHARED, assert_fails, needs_mediapipe, run

DATA = Path(__file__).resolve().parent / "data"
PHOTO = DATA / "women1.jpg"  # a real 256x176 DeepFashion photo: already framed
OTHER = DATA / "women2.jpg"
REAL = SHARED / "data" / "deepfashion-real" / "images"


def canvas_with(photo: Path, size=(450, 800), top=100, left=520, height=225, colour=(200, 190, 180)):
    """A wide photo with ``photo`` pasted off-centre at ``height`` pixels (half the canvas's height): the picture
    and the pasted rectangle (top, left, height, width)."""
    picture = Image.open(photo).convert("RGB")
    width = round(height * picture.width / picture.height)
    canvas = Image.new("RGB", (size[1], size[0]), colour)
    canvas.paste(picture.resize((width, height), Image.BICUBIC), (left, top))
    return canvas, (top, left, height, width)


def nobody(height: int = 512, width: int = 352) -> Image.Image:
    """A photo with nobody in it: a sky-to-ground gradient, by default of the models' own shape (which framing
    passes through unchanged, as it does a dataset photo)."""
    rows = np.linspace(0.0, 1.0, height)[:, None, None]
    pixels = np.array([120, 150, 230]) * (1 - rows) + np.array([90, 140, 60]) * rows
    return Image.fromarray(np.broadcast_to(pixels, (height, width, 3)).astype(np.uint8))


def test_frame_a_folder(tmp_path, capsys, monkeypatch):
    """A real DeepFashion photo comes back as it was (framed: false), a wide photo framed around its person (the
    crop is where the photo was pasted), a blank photo and a photo of the models' shape with nobody in it are listed
    as left out, with nothing written for them, and the others are still written; one detector serves a worker's."""
    needs_mediapipe()
    from cfld import framing
    from cfld.pose import pose_from_json

    made = []
    init = framing.Framer.__init__
    monkeypatch.setattr(framing.Framer, "__init__", lambda self, *a, **k: made.append(1) or init(self, *a, **k))
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(PHOTO, photos / "women1.jpg")
    canvas, rect = canvas_with(PHOTO)
    canvas.save(photos / "wide.png")
    Image.new("RGB", (600, 400), (90, 90, 90)).save(photos / "blank.png")
    nobody().save(photos / "noperson.png")
    (photos / "notes.txt").write_text("not a photo")
    out = tmp_path / "out"

    code, stdout, err = run(capsys, "frame", photos, "-o", out, "-j", "1")  # one worker: this process
    assert code == 0, err
    assert len(made) == 1
    assert sorted(p.name for p in out.iterdir()) == ["wide.json", "wide.png", "women1.json", "women1.png"]
    assert f"{photos / 'women1.jpg'}: already framed, used as it is" in stdout
    assert f"{photos / 'wide.png'}: framed (a " in stdout
    assert "left out 2 photos (2 no person found):" in stdout
    assert f"  {photos / 'blank.png'}: no person found" in stdout
    assert f"  {photos / 'noperson.png'}: no person found" in stdout
    assert "noperson.png: already framed" not in stdout
    assert "framed 2 of 4 photos" in stdout

    # the dataset photo: untouched, bit for bit, and its record says so
    record = json.loads((out / "women1.json").read_text())
    assert record["framed"] is False and record["crop"] == {"top": 0, "left": 0, "height": 256, "width": 176}
    assert np.array_equal(np.asarray(Image.open(out / "women1.png")), np.asarray(Image.open(PHOTO).convert("RGB")))

    # the wide photo: the crop is the pasted rectangle, within a few percent of its height
    record = json.loads((out / "wide.json").read_text())
    assert record["format"] == "cfld.framing/v1" and record["framed"] is True
    assert record["size"] == [256, 176] and record["photo_size"] == [450, 800]
    crop = record["crop"]
    found = (crop["top"], crop["left"], crop["height"], crop["width"])
    assert max(abs(a - b) for a, b in zip(found, rect)) <= 0.05 * rect[2], (found, rect)
    assert Image.open(out / "wide.png").size == (176, 256)
    pose = pose_from_json(record["pose"], "wide.json")
    assert pose.frame == (256, 176) and pose.num_visible >= 14
    assert (out / "wide.json").read_text().startswith('{\n  "format"')  # indented, for people


def test_frame_reruns_keep_what_is_there_and_refuse_only_what_differs(tmp_path, capsys, monkeypatch):
    """The same run again keeps every output as it is, without detecting anything; a run with other settings finds
    them differing before any detection and replaces them only with --overwrite; a record left without its
    picture (a run stopped between the two) is framed again; a picture changed since is refused."""
    needs_mediapipe()
    from cfld import framing

    out = tmp_path / "out"
    canvas_with(PHOTO)[0].save(tmp_path / "wide.png")
    args = ["frame", str(PHOTO), str(tmp_path / "wide.png"), "-o", str(out), "--no-progress"]
    assert main(args) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    record = json.loads((out / "wide.json").read_text())
    assert record["photo"] == "wide.png" and record["plain_background"] is False
    assert len(record["photo_sha1"]) == len(record["picture_sha1"]) == 40

    def no_detection(*args, **kwargs):
        raise AssertionError("detected a photo whose outputs are already there")

    monkeypatch.setattr(framing.Framer, "__call__", no_detection)
    code, stdout, err = run(capsys, *args)
    assert code == 0, err
    assert f"{PHOTO}: kept as an earlier run framed it" in stdout and "2 of them kept from an earlier run" in stdout
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    # other settings: refused before any detection, naming the first output and how many more
    line = assert_fails(capsys, [*args, "--plain-background"], "women1.png", "already exists", "3 more of the outputs",
                        "--overwrite")
    assert "not what this run writes" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    monkeypatch.undo()

    # a record without its picture is framed again; the other photo is kept
    (out / "wide.png").unlink()
    code, stdout, err = run(capsys, *args)
    assert code == 0, err
    assert f"{tmp_path / 'wide.png'}: framed (a " in stdout and "1 of them kept" in stdout
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    # a picture changed since differs; --overwrite writes it again, as it was
    (out / "women1.png").write_bytes(b"changed")
    assert_fails(capsys, args, "women1.png", "already exists", "--overwrite")
    assert main([*args, "--overwrite"]) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_frame_overwrite_removes_what_an_earlier_version_wrote_for_a_photo_with_nobody(tmp_path, capsys):
    """Earlier versions wrote noperson.png and noperson.json for a photo of the models' shape with nobody in it:
    they are not what this run writes (refused), and --overwrite removes them, as the photo gets no file."""
    needs_mediapipe()
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    out.mkdir()
    shutil.copy(PHOTO, photos / "women1.jpg")
    nobody().save(photos / "noperson.png")
    nobody().save(out / "noperson.png")
    (out / "noperson.json").write_text(json.dumps({"format": "cfld.framing/v1", "framed": False, "pose": None}))
    args = ["frame", str(photos), "-o", str(out), "--no-progress", "-j", "1"]  # the full disk is this process's
    assert_fails(capsys, args, f"{out / 'noperson.png'}: already exists and is not what this run writes",
                 "1 more of the outputs", "--overwrite")
    code, stdout, err = run(capsys, *args, "--overwrite")
    assert code == 0, err
    assert f"  {photos / 'noperson.png'}: no person found in the photo (MediaPipe's pose detector saw nobody); its " \
           "earlier noperson.png and noperson.json were removed" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["women1.json", "women1.png"]


def test_frame_on_a_full_disk_keeps_what_it_wrote_and_goes_on(tmp_path, capsys, monkeypatch):
    """The disk fills at the second photo's picture: one sentence names that file, what it is and what is kept; the
    first photo's outputs stay, the second's record goes with its picture; the plain rerun frames only the second."""
    needs_mediapipe()
    import errno

    from cfld.io import is_temporary

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(PHOTO, photos / "a.jpg")
    shutil.copy(OTHER, photos / "b.jpg")
    out = tmp_path / "out"
    args = ["frame", str(photos), "-o", str(out), "--no-progress", "-j", "1"]  # the full disk is this process's
    write_bytes, pictures = Path.write_bytes, []

    def full_disk(self, data):
        if out in self.parents:
            pictures.append(self)
            if len(pictures) > 1:
                write_bytes(self, data[:100])  # what fitted
                raise OSError(errno.ENOSPC, "No space left on device")
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    line = assert_fails(capsys, args, f"{out / 'b.png'}: the framed picture cannot be written (No space left on "
                        "device", f"the 1 photo framed before is kept in {out} (its .png and .json): free space and "
                        "run the same command again to go on where it stopped")
    assert "b.jpg" not in line
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "a.png"]  # no temporary, no record without picture
    assert not [p for p in out.iterdir() if is_temporary(p)]
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.undo()

    code, stdout, err = run(capsys, *args)
    assert code == 0, err
    assert f"{photos / 'a.jpg'}: kept as an earlier run framed it" in stdout
    assert f"{photos / 'b.jpg'}: already framed, used as it is" in stdout
    assert "framed 2 of 2 photos" in stdout and "1 of them kept" in stdout
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name.startswith("a.")} == first


def test_frame_refuses_two_photos_of_one_stem(tmp_path, capsys):
    shutil.copy(PHOTO, tmp_path / "a.jpg")
    Image.open(PHOTO).save(tmp_path / "a.png")
    assert_fails(capsys, ["frame", str(tmp_path / "a.jpg"), str(tmp_path / "a.png"), "-o", str(tmp_path / "out")],
                 "a.png", "same name stem")
    assert not (tmp_path / "out").exists()


def test_frame_fails_only_when_no_photo_could_be_framed(tmp_path, capsys):
    needs_mediapipe()
    Image.new("RGB", (600, 400), (90, 90, 90)).save(tmp_path / "blank.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    code, stdout, err = run(capsys, "frame", tmp_path / "blank.png", tmp_path / "broken.jpg", "-o", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1
    assert "none of the 2 photos could be framed" in err and "nothing was written" in err
    assert "blank.png: no person found" in stdout and "broken.jpg: cannot be read as an image" in stdout
    assert not (tmp_path / "out").exists()
    # one photo: its own sentence; a photo of the models' shape with nobody in it is no different
    assert_fails(capsys, ["frame", str(tmp_path / "blank.png"), "-o", str(tmp_path / "out")], "blank.png",
                 "no person found")
    nobody().save(tmp_path / "noperson.png")
    assert_fails(capsys, ["frame", str(tmp_path / "noperson.png"), "-o", str(tmp_path / "out")],
                 f"{tmp_path / 'noperson.png'}: no person found")
    assert not (tmp_path / "out").exists()


def test_frame_plain_background_and_market_size(tmp_path, capsys):
    needs_mediapipe()
    from cfld.framing import DEEPFASHION_PLACEMENT

    canvas, _ = canvas_with(OTHER, colour=(40, 120, 60))
    canvas.save(tmp_path / "green.png")
    out = tmp_path / "out"
    assert main(["frame", str(tmp_path / "green.png"), "-o", str(out), "--plain-background", "--size", "128x64"]) == 0
    assert "background made plain" in capsys.readouterr().out
    picture = np.asarray(Image.open(out / "green.png"))
    assert picture.shape == (128, 64, 3)
    corners = picture[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == DEEPFASHION_PLACEMENT.background).all()  # the training photos' plain colour, not green
    assert json.loads((out / "green.json").read_text())["size"] == [128, 64]


def test_frame_real_test_photos_go_through_unchanged(tmp_path, capsys):
    """Real DeepFashion test photos (PNG, ../shared) are written bit for bit as they are."""
    needs_mediapipe()
    if not REAL.is_dir():
        pytest.skip(f"needs ../shared/data/deepfashion-real beside the repository (looked for {REAL})")
    photos = sorted(REAL.glob("*.png"))[:3]
    folder = tmp_path / "real"
    folder.mkdir()
    for photo in photos:
        shutil.copy(photo, folder / photo.name)
    assert main(["frame", str(folder), "-o", str(tmp_path / "out")]) == 0
    for photo in photos:
        assert json.loads((tmp_path / "out" / f"{photo.stem}.json").read_text())["framed"] is False
        written = np.asarray(Image.open(tmp_path / "out" / f"{photo.stem}.png"))
        assert np.array_equal(written, np.asarray(Image.open(photo).convert("RGB")))


def test_frame_help_and_listing(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "frame" in out
    code, out, _ = run(capsys, "frame", "--help")
    text = " ".join(out.split())
    assert code == 0
    for fragment in ("cfld frame PHOTO... -o DIR", "cfld frame FOLDER -o DIR", "--size", "--plain-background",
                     "--overwrite", "Examples:", "cfld frame photos/ -o framed/", '"crop"', "gets no file at all",
                     "listed as left out with its reason", "exits 0 when at least one photo was framed",
                     "fails (exit 2) when none was", "goes on where it stopped", "from 16 to 4096 pixels"):
        assert fragment in text, fragment


def test_without_mediapipe_framing_says_what_to_do(tmp_path, capsys, monkeypatch):
    """Framing needs MediaPipe: without it one line names the extra, and for the commands --no-frame too."""
    from cfld.pose import gallery, write_pose_json

    for name in ["mediapipe", *(m for m in sys.modules if m.startswith("mediapipe."))]:
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed, even if imported before
    pose = write_pose_json(gallery()[gallery().names[0]], tmp_path / "pose.json")
    line = assert_fails(capsys, ["frame", str(PHOTO), "-o", str(tmp_path / "framed")], "pip install 'cfld[detect]'")
    assert "--no-frame" not in line
    assert not (tmp_path / "framed").exists()
    for args in (["transfer", "-s", PHOTO, "-p", pose, "-m", "demo", "-o", tmp_path / "t"],
                 ["animate", "-s", PHOTO, "-p", tmp_path, "-m", "demo", "-o", tmp_path / "a", "--no-mp4"],
                 ["edit", "interpolate", "-a", PHOTO, "-b", OTHER, "-p", pose, "-m", "demo", "-o", tmp_path / "s.png"]):
        assert_fails(capsys, [str(a) for a in args], "pip install 'cfld[detect]'", "--no-frame")
    # and --no-frame works without it
    assert main(["transfer", "-s", str(PHOTO), "-p", str(pose), "-m", "demo", "-o", str(tmp_path / "t"), "--steps", "1",
                 "--size", "64x44", "--no-frame"]) == 0
    assert (tmp_path / "t" / "women1_to_pose.png").is_file()


def test_a_photo_of_two_people_is_refused_with_the_way_out(tmp_path, capsys):
    """`cfld frame` says why; the commands that frame also say that --no-frame uses the photo as it is."""
    needs_mediapipe()
    from cfld.pose import gallery, write_pose_json

    canvas = Image.new("RGB", (800, 450), (235, 235, 235))
    for photo, left in ((PHOTO, 80), (OTHER, 500)):
        canvas.paste(Image.open(photo).convert("RGB").resize((248, 360), Image.BICUBIC), (left, 60))
    canvas.save(tmp_path / "two.png")
    line = assert_fails(capsys, ["frame", str(tmp_path / "two.png"), "-o", str(tmp_path / "out")], "two.png",
                        "several people")
    assert "--no-frame" not in line
    pose = write_pose_json(gallery()[gallery().names[0]], tmp_path / "pose.json")
    assert_fails(capsys, ["transfer", "-s", str(tmp_path / "two.png"), "-p", str(pose), "-m", "demo", "-o",
                          str(tmp_path / "t")], "two.png", "several people", "--no-frame")
    assert not (tmp_path / "out").exists() and not (tmp_path / "t").exists()

"""A disk that fills while cfld writes: one sentence (exit 2) naming what was being written, the space it needed
where known and what is kept; the half-written temporary removed at once; everything written before intact.

The full disk is simulated at the write call (the writer writes part of the file, then the operating system's
ENOSPC, or safetensors' SafetensorError that carries it, is raised), so the tests run anywhere; one test also
fills a real small file system where this machine lets it mount one (root), else it is skipped.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from cfld import io as cio
from cfld.errors import InputError, WriteError, describe_unexpected
from conftest import SHARED, TINY_TRAINING, assert_fails, run

DEMO = Path(__file__).resolve().parents[1] / "src" / "cfld" / "assets" / "demo_model"
DATA = Path(__file__).resolve().parent / "data"
NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device"
SAFETENSORS_NO_SPACE = f"Error while serializing: I/O error: {NO_SPACE} (os error {errno.ENOSPC})"


def no_space() -> OSError:
    return OSError(errno.ENOSPC, NO_SPACE)


def temporaries(root: Path) -> list[Path]:
    """Every temporary of an unfinished write under ``root`` (io.temporary_name's ``.NAME.new-...tmp.SUFFIX``)."""
    return [path for path in root.rglob(".*.tmp*") if cio.is_temporary(path)]


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def fill_after(monkeypatch, owner, name: str, inside: Path, allowed: int, raise_=no_space, partial: bool = True):
    """Make ``owner.name`` (a writer taking the destination as its second argument or ``self``/first) write part
    of the file and fail as a full disk does once ``allowed`` writes under ``inside`` have succeeded. Returns the
    list of the paths it was called with."""
    original = getattr(owner, name)
    calls: list[Path] = []

    def writer(*args, **kwargs):
        target = next((Path(a) for a in args if isinstance(a, (str, os.PathLike)) and inside in Path(a).parents), None)
        if target is None:
            return original(*args, **kwargs)
        calls.append(target)
        if len(calls) <= allowed:
            return original(*args, **kwargs)
        if partial:
            os.makedirs(target.parent, exist_ok=True)
            with open(target, "wb") as handle:  # what fitted before the disk was full (not through the writer)
                handle.write(b"\x00" * 1000)
        raise raise_()

    monkeypatch.setattr(owner, name, writer)
    return calls


# -- the API -----------------------------------------------------------------------------------------------------------


def test_os_write_error_finds_the_refusal_behind_a_library_error():
    from safetensors import SafetensorError

    assert cio.os_write_error(error := no_space()) is error
    found = cio.os_write_error(SafetensorError(SAFETENSORS_NO_SPACE))
    assert isinstance(found, OSError) and found.errno == errno.ENOSPC and found.strerror == NO_SPACE
    try:  # torch.save into a file: a RuntimeError raised while handling the file's OSError
        try:
            raise no_space()
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")  # noqa: B904 (as torch raises it)
    except RuntimeError as error:
        assert cio.os_write_error(error).errno == errno.ENOSPC
    assert cio.os_write_error(RuntimeError("something else")) is None
    assert cio.os_write_error(InputError("x", "is not a picture")) is None
    wrapped = cio.write_failure("out.png", no_space())
    assert isinstance(wrapped, WriteError) and cio.os_write_error(wrapped).errno == errno.ENOSPC


def test_write_failure_names_what_it_needed_what_is_free_and_what_is_kept(tmp_path):
    assert (str(cio.write_failure(tmp_path / "x.png", no_space()))
            == f"{tmp_path / 'x.png'}: cannot be written ({NO_SPACE})")
    assert str(cio.write_failure(tmp_path / "x.png", PermissionError(13, "Permission denied"), what="the result",
                                 needed=5000, kept="the others are kept")) == \
        f"{tmp_path / 'x.png'}: the result cannot be written (Permission denied); the others are kept"
    message = str(cio.write_failure(tmp_path / "run" / "checkpoints" / "step-0000004", no_space(),
                                    what="the checkpoint", needed=40_200_000,
                                    kept="the last good checkpoint is step-0000003: free space and "
                                         "run again with --resume"))
    free = cio.format_size(shutil.disk_usage(tmp_path).free)
    assert message == (f"{tmp_path}/run/checkpoints/step-0000004: the checkpoint cannot be written ({NO_SPACE}; "
                       f"it needs about 40.2 MB, {free} are free); the last good checkpoint is step-0000003: "
                       "free space and run again with --resume")
    assert [cio.format_size(n) for n in (0, 1, 999, 1000, 3_149_000, 2 * 10**9)] == \
        ["0 bytes", "1 byte", "999 bytes", "1.0 kB", "3.1 MB", "2.0 GB"]
    (tmp_path / "f" / "g").mkdir(parents=True)
    (tmp_path / "f" / "a").write_bytes(b"x" * 10)
    (tmp_path / "f" / "g" / "b").write_bytes(b"x" * 5)
    os.link(tmp_path / "f" / "a", tmp_path / "f" / "g" / "a-again")
    assert cio.folder_bytes(tmp_path / "f") == 15 and cio.folder_bytes(tmp_path / "f" / "a") == 10
    assert cio.folder_bytes(tmp_path / "none") == 0


@pytest.mark.parametrize("failure", ["oserror", "safetensors"])
def test_atomic_writes_remove_their_temporary_at_once_and_keep_the_earlier_file(tmp_path, failure):
    from safetensors import SafetensorError

    error = no_space() if failure == "oserror" else SafetensorError(SAFETENSORS_NO_SPACE)
    (tmp_path / "w.bin").write_bytes(b"earlier")

    def fail(tmp):
        tmp.write_bytes(b"x" * 1000)
        raise error

    with pytest.raises(WriteError) as caught:
        with cio.atomic_path(tmp_path / "w.bin", overwrite=True, what="the weights", needed=1234) as tmp:
            fail(tmp)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'w.bin'}: the weights cannot be written ({NO_SPACE}; "
                              "it needs about 1.2 kB, ")
    assert message.endswith("are free); the file there before is kept as it was")
    assert (tmp_path / "w.bin").read_bytes() == b"earlier" and temporaries(tmp_path) == []

    # a folder: a failure of any write inside (also our own atomic writes there) is the folder's
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights").write_text("the model that was there")
    with pytest.raises(WriteError) as caught:
        with cio.atomic_folder(tmp_path / "model", overwrite=True, what="the model") as tmp:
            (tmp / "config.json").write_text("{}")
            with cio.atomic_path(tmp / "cfld" / "unet.safetensors", what="the UNet's weights") as inner:
                fail(inner)
    assert str(caught.value).startswith(f"{tmp_path / 'model'}: the model cannot be written ({NO_SPACE}; ")
    assert str(caught.value).endswith("; the folder there before is kept as it was")
    assert (tmp_path / "model" / "weights").read_text() == "the model that was there"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "w.bin"]
    # a bug stays a bug
    with pytest.raises(ZeroDivisionError):
        with cio.atomic_path(tmp_path / "z.bin") as tmp:
            tmp.write_bytes(b"x")
            1 / 0  # noqa: B018
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "w.bin"]


def test_the_last_resort_counts_a_safetensors_refusal_as_the_os_error_it_is(monkeypatch, capsys):
    from safetensors import SafetensorError

    assert describe_unexpected(SafetensorError(SAFETENSORS_NO_SPACE)) == \
        (f"a file could not be written ({NO_SPACE}); free space and run again", 2)
    assert describe_unexpected(SafetensorError("Error while deserializing header: HeaderTooLarge"))[1] == 1
    sentence, code = describe_unexpected(OSError(errno.ENOSPC, NO_SPACE, "/tmp/x.json"))
    assert code == 2 and sentence.startswith(f"/tmp/x.json: cannot be written ({NO_SPACE}; ")
    assert describe_unexpected(PermissionError(13, "Permission denied", "/srv/x.json")) == \
        ("/srv/x.json: Permission denied", 2)

    import cfld.pose

    def refused(*args, **kwargs):
        raise SafetensorError(SAFETENSORS_NO_SPACE)

    monkeypatch.setattr(cfld.pose, "write_pose_json", refused)
    row = ("[40,85,90,147,210,82,141,199,205,-1,-1,205,-1,-1,34,34,39,40]:"
           "[88,89,56,49,35,124,129,111,58,-1,-1,98,-1,-1,81,96,72,105]")
    assert_fails(capsys, ["pose", "convert", row, "-o", "/tmp/never.json"], "a file could not be written", NO_SPACE)


# -- cfld sample ------------------------------------------------------------------------------------------------------


def small_release(base: Path, pairs_per_split: dict[str, int]) -> tuple[Path, Path]:
    """A fake In-shop release (images, annotations) of the first real test pairs, their real keypoint rows and
    the real photos of tests/data under their names."""
    from cfld.pose import flat_name

    data = SHARED / "data" / "deepfashion"
    if not (data / "fasion-resize-pairs-test.csv").is_file():
        pytest.skip(f"needs ../shared/data/deepfashion beside the repository (looked for {data})")
    lines = (data / "fasion-resize-pairs-test.csv").read_text().splitlines()[1:]
    total = sum(pairs_per_split.values())
    pairs = [tuple(line.split(",")) for line in lines[:total]]
    photos = [DATA / "women1.jpg", DATA / "women2.jpg"]
    images = base / "img_highres"
    for i, name in enumerate(dict.fromkeys(n for p in pairs for n in p)):
        dest = images / Path(name).relative_to("fashion")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(photos[i % len(photos)], dest)
    header, *rows = (data / "fasion-resize-annotation-test.csv").read_text().splitlines()
    by_name = {row.split(":", 1)[0]: row for row in rows}
    ann = base / "annotations"
    ann.mkdir()
    start = 0
    for split, count in pairs_per_split.items():
        chosen = pairs[start:start + count]
        start += count
        names = list(dict.fromkeys(n for p in chosen for n in p))
        (ann / f"{split}.lst").write_text("".join(f"{flat_name(n)}\n" for n in names))
        (ann / f"fasion-resize-pairs-{split}.csv").write_text("from,to\n" + "".join(f"{a},{b}\n" for a, b in chosen))
        (ann / f"fasion-resize-annotation-{split}.csv").write_text(header + "\n" + "\n".join(by_name[n] for n in names)
                                                                   + "\n")
    return images, ann


def small_prepared(tmp_path_factory, pairs_per_split: dict[str, int]) -> Path:
    """A `cfld prepare deepfashion` folder of :func:`small_release`."""
    from cfld.data import prepare_deepfashion

    base = tmp_path_factory.mktemp("release")
    images, ann = small_release(base, pairs_per_split)
    out = base / "deepfashion"
    prepare_deepfashion(images, ann, out, progress=False, workers=1)
    return out


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return small_prepared(tmp_path_factory, {"test": 4, "train": 1})


SAMPLE = ["--steps", "2", "--quiet", "--batch-size", "1", "--size", "64x44"]


@pytest.fixture
def one_thread():
    """The tiny demo model samples several times faster on one thread than on two."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_sample_a_full_disk_keeps_the_done_pairs_and_a_rerun_goes_on(prepared, tmp_path, monkeypatch, capsys,
                                                                     one_thread):
    out = tmp_path / "results"
    code, _, err = run(capsys, "sample", "-m", DEMO, "-d", prepared, "-o", out, "--limit", "1", *SAMPLE)
    assert code == 0, err
    before = snapshot(out)
    calls = fill_after(monkeypatch, Image.Image, "save", out, allowed=1)  # the 2nd result of this run does not fit
    line = assert_fails(capsys, ["sample", "-m", DEMO, "-d", prepared, "-o", out, *SAMPLE],
                        ": the result cannot be written (No space left on device; ",
                        "are free); the 2 of 4 pairs already done are kept: free space and run the same command again")
    assert line.startswith(f"error: {out / '64x44'}/") and len(calls) == 2
    assert str(calls[1].name).startswith(".") and cio.is_temporary(calls[1])  # it wrote under a temporary name
    after = snapshot(out)
    assert {k: after[k] for k in before} == before and len(after) == len(before) + 1  # nothing lost, one more kept
    assert temporaries(out) == []  # nothing half-written
    monkeypatch.undo()
    code, stdout, err = run(capsys, "sample", "-m", DEMO, "-d", prepared, "-o", out, *SAMPLE)
    assert code == 0, err
    assert "2 of 4 pairs are already done; generating the other 2" in stdout
    assert len(list((out / "64x44").glob("*.png"))) == 4


def test_sample_into_a_real_full_file_system(prepared, tmp_path, capsys, one_thread):
    """A real tmpfs (root only), filled up to a little: the results that fit are kept, the rest is refused."""
    mount = tmp_path / "small"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    except OSError:
        pytest.skip("no mount command")
    if done.returncode != 0:
        pytest.skip("cannot mount a small file system here (not root)")
    try:
        free = shutil.disk_usage(mount).free
        (mount / "filler").write_bytes(b"\x00" * (free - 60_000))
        out = mount / "results"
        line = assert_fails(capsys, ["sample", "-m", DEMO, "-d", prepared, "-o", out, *SAMPLE[:-1], "256x176"],
                            "cannot be written (No space left on device", "free space and run the same command again")
        assert temporaries(mount) == [] and not [p for p in mount.rglob(".*") if p.is_file()]
        kept = [p for p in (out / "256x176").glob("*.png")]
        assert all(Image.open(p).size == (176, 256) for p in kept)  # whole pictures only
        print(line)
    finally:
        subprocess.run(["umount", str(mount)], check=False)


# -- cfld prepare -----------------------------------------------------------------------------------------------------


def test_prepare_deepfashion_a_full_disk_keeps_the_images_written(tmp_path, monkeypatch, capsys):
    images, ann = small_release(tmp_path / "release", {"test": 2, "train": 2})
    out = tmp_path / "deepfashion"
    args = ["prepare", "deepfashion", "-i", images, "-a", ann, "-o", out, "--no-progress", "-j", "1"]
    code, _, err = run(capsys, *args, "--split", "test")
    assert code == 0, err
    before = snapshot(out)
    calls = fill_after(monkeypatch, Path, "write_bytes", out, allowed=1)  # the 2nd train image does not fit
    line = assert_fails(capsys, [*args, "--split", "train"], "the copied photo cannot be written (No space left on "
                        "device; it needs about ", "are free); the 1 image(s) already written are kept: free space "
                        "and run the same command again to go on (it skips them)")
    assert line.startswith(f"error: {out / 'train_highres'}/") and len(calls) == 2
    after = snapshot(out)
    assert {k: after[k] for k in before} == before  # the test split and its manifest untouched
    assert len([k for k in after if k.startswith("train_highres/")]) == 1
    assert temporaries(out) == []

    # the lists, after every image: said so
    monkeypatch.undo()
    fill_after(monkeypatch, Path, "write_text", out, allowed=0)
    assert_fails(capsys, [*args, "--split", "train"], "the list cannot be written (No space left on device",
                 "image(s) are written and kept: free space and run the same command again to write the lists and "
                 "the manifest")
    assert temporaries(out) == [] and {k: snapshot(out)[k] for k in before} == before
    monkeypatch.undo()
    code, stdout, err = run(capsys, *args, "--split", "train")
    assert code == 0, err
    assert json.loads((out / "cfld-dataset.json").read_text())["splits"].keys() == {"test", "train"}


def test_prepare_photos_a_full_disk_keeps_the_framing_done(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mediapipe", reason="framing needs the 'detect' extra (mediapipe==0.10.14)")
    root = tmp_path / "catalogue"
    for i, photo in enumerate((DATA / "women1.jpg", DATA / "women2.jpg")):
        (root / f"person {i}").mkdir(parents=True)
        shutil.copy(photo, root / f"person {i}" / "a.jpg")
        Image.open(photo).transpose(Image.FLIP_LEFT_RIGHT).save(root / f"person {i}" / "b.png")
    out = tmp_path / "prepared"
    args = ["prepare", "photos", "-i", root, "-o", out, "--test-fraction", "0", "--no-progress", "-j", "1"]

    # framing: the 3rd framed photo does not fit; the two framed before are kept, and not framed again
    calls = fill_after(monkeypatch, Image.Image, "save", out, allowed=2)
    line = assert_fails(capsys, args, "the framed photo cannot be written (No space left on device",
                        "the framing of the 2 photo(s) framed before is kept in", "free space and run the same "
                        "command again to go on where it stopped")
    assert line.startswith(f"error: {out / 'framing'}/") and len(calls) == 3
    assert temporaries(out) == [] and len(list((out / "framing").glob("*.json"))) == 2
    framed = snapshot(out / "framing")

    # the dataset's files: the framing is kept, and a rerun frames nothing again
    monkeypatch.undo()
    fill_after(monkeypatch, Path, "write_text", out, allowed=2)  # the framing records of the other two photos fit
    assert_fails(capsys, args, "the list cannot be written (No space left on device",
                 f"the framing of every photo is kept in {out / 'framing'}: free space and run the same command "
                 "again to finish (no photo is framed again)")
    assert temporaries(out) == [] and not (out / "cfld-dataset.json").exists()
    assert {k: snapshot(out / "framing")[k] for k in framed} == framed
    monkeypatch.undo()
    code, stdout, err = run(capsys, *args)
    assert code == 0, err
    assert (out / "cfld-dataset.json").is_file()


# -- the trained model: CFLDPipeline.save_pretrained -------------------------------------------------------------------


def _fail_final_vae(monkeypatch, folder_name: str):
    """safetensors runs out of space while the VAE of ``folder_name`` (saved into its temporary) is written."""
    from diffusers import AutoencoderKL
    from safetensors import SafetensorError

    original = AutoencoderKL.save_pretrained

    def save_pretrained(self, directory, *args, **kwargs):
        parent = Path(directory).parent
        if cio.is_temporary(parent) and parent.name.startswith(f".{folder_name}."):
            Path(directory).mkdir(parents=True, exist_ok=True)
            (Path(directory) / "diffusion_pytorch_model.safetensors").write_bytes(b"\x00" * 1000)
            raise SafetensorError(SAFETENSORS_NO_SPACE)
        return original(self, directory, *args, **kwargs)

    monkeypatch.setattr(AutoencoderKL, "save_pretrained", save_pretrained)


def test_train_a_full_disk_at_the_final_model_keeps_the_checkpoints(tmp_path, monkeypatch, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY_TRAINING))
    output = tmp_path / "run"
    _fail_final_vae(monkeypatch, "model")
    line = assert_fails(capsys, ["train", "-c", config, "-o", output, "--no-progress", "--max-steps", "2"],
                        f"{output / 'model'}: ", "cannot be written (No space left on device; ")
    assert temporaries(output) == [] and not (output / "model").exists()
    checkpoints = sorted((output / "checkpoints").glob("step-*"))
    assert [p.name for p in checkpoints] == ["step-0000002"] and cio.folder_bytes(checkpoints[0]) > 100_000
    print(line)


def test_save_pretrained_over_a_model_keeps_it_when_the_disk_is_full(tmp_path, monkeypatch):
    from cfld.pipeline import CFLDPipeline

    pipe = CFLDPipeline.from_pretrained(DEMO)
    target = pipe.save_pretrained(tmp_path / "best")
    before = snapshot(target)
    _fail_final_vae(monkeypatch, "best")
    with pytest.raises(InputError) as caught:
        pipe.save_pretrained(target, overwrite=True)
    message = str(caught.value)
    assert message.startswith(f"{target}: cannot be written (No space left on device; ")
    assert message.endswith("are free); the folder there before is kept as it was")
    assert snapshot(target) == before and temporaries(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]

    # our checkpoint format alone (cfld convert): a new folder holds all of it or none of it
    from cfld import checkpoint

    monkeypatch.undo()
    fill_after(monkeypatch, checkpoint, "save_file", tmp_path / "ckpt", allowed=1,
               raise_=lambda: __import__("safetensors").SafetensorError(SAFETENSORS_NO_SPACE))
    with pytest.raises(WriteError, match=r"unet.safetensors: the UNet's weights cannot be written \(No space left on "
                                         r"device; it needs about [0-9.]+ MB, "):
        checkpoint.save_checkpoint(tmp_path / "ckpt", pipe.model, pipe.unet)
    assert list((tmp_path / "ckpt").iterdir()) == []

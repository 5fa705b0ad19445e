"""Reading what users give and writing what matters: the one image reader (EXIF orientation, 16-bit, alpha,
size guard), JSON/YAML limits, atomic writes and the temporaries a killed run leaves, the command line's
error boundary, and what a training config may name as its dataset."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from cfld import io as cio
from cfld.cli import main
from cfld.errors import InputError
from cfld.images import load_image
from cfld.io import temporaries
from cfld.pose import gallery, write_pose_json
from conftest import dead_pid, run, temporary_name_of

DATA = Path(__file__).resolve().parent / "data"
PHOTO = DATA / "deepfashion_ref_4.png"
ORIENTATION = 0x0112


def _with_orientation(image: Image.Image, orientation: int, path: Path) -> Path:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    image.save(path, exif=exif)
    return path


# -- the one image reader ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation,stored", [
    (3, lambda im: im.transpose(Image.ROTATE_180)),
    (6, lambda im: im.transpose(Image.ROTATE_90)),   # a phone held upright: pixels stored sideways
    (8, lambda im: im.transpose(Image.ROTATE_270)),
    (2, lambda im: im.transpose(Image.FLIP_LEFT_RIGHT)),
])
def test_exif_orientation_is_applied(tmp_path, orientation, stored):
    upright = Image.open(PHOTO).convert("RGB").resize((176, 256))
    path = _with_orientation(stored(upright), orientation, tmp_path / f"phone{orientation}.png")
    assert (Image.open(path).size == upright.size) == (orientation in (2, 3))  # stored as the camera saw it
    assert np.array_equal(np.asarray(load_image(path)), np.asarray(upright))


def test_transfer_and_pose_drawing_see_the_photo_upright(tiny_model_dir, tmp_path, capsys):
    """End to end: a phone photo stored sideways with its EXIF orientation gives the same result as the
    upright photo, in `cfld transfer` and as the background of `cfld pose draw`."""
    upright = Image.open(PHOTO).convert("RGB").resize((176, 256))
    upright.save(tmp_path / "upright.png")
    _with_orientation(upright.transpose(Image.ROTATE_90), 6, tmp_path / "phone.png")
    pose = write_pose_json(gallery()[gallery().names[3]], tmp_path / "pose.json")
    for name in ("upright", "phone"):
        assert main(["transfer", "-s", str(tmp_path / f"{name}.png"), "-p", str(pose), "-m", str(tiny_model_dir),
                     "-o", str(tmp_path / name), "--steps", "2", "--size", "64x44"]) == 0
        assert main(["pose", "draw", str(pose), "--image", str(tmp_path / f"{name}.png"),
                     "-o", str(tmp_path / f"{name}_pose.png")]) == 0
    capsys.readouterr()
    results = [np.asarray(Image.open(tmp_path / n / f"{n}_to_pose.png")) for n in ("upright", "phone")]
    assert np.array_equal(*results)
    drawings = [np.asarray(Image.open(tmp_path / f"{n}_pose.png")) for n in ("upright", "phone")]
    assert drawings[0].shape == (256, 176, 3) and np.array_equal(*drawings)


def test_16_bit_pictures_are_scaled_not_clipped(tmp_path):
    eight = np.asarray(Image.open(PHOTO).convert("RGB"))
    gray = np.asarray(Image.open(PHOTO).convert("L"))
    cv2.imwrite(str(tmp_path / "rgb16.png"), (eight[..., ::-1].astype(np.uint16) * 257))
    cv2.imwrite(str(tmp_path / "gray16.png"), gray.astype(np.uint16) * 257)
    assert Image.open(tmp_path / "gray16.png").mode.startswith("I")  # what Pillow would clip to white
    assert np.array_equal(np.asarray(load_image(tmp_path / "rgb16.png")), eight)
    assert np.array_equal(np.asarray(load_image(tmp_path / "gray16.png")), np.stack([gray] * 3, axis=-1))
    half = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "ramp16.png"), half)
    assert np.array_equal(np.asarray(load_image(tmp_path / "ramp16.png"))[..., 0],
                          np.rint(half / 257.0).astype(np.uint8))


def test_evaluate_scores_a_16_bit_copy_as_identical(tmp_path, capsys):
    gen, truth = tmp_path / "generated", tmp_path / "truth"
    gen.mkdir(), truth.mkdir()
    gray = np.asarray(Image.open(PHOTO).convert("L"))
    Image.fromarray(gray).save(truth / "a.png")
    cv2.imwrite(str(gen / "a.png"), gray.astype(np.uint16) * 257)
    code, out, err = run(capsys, "evaluate", "-g", gen, "-t", truth, "--metrics", "psnr,ssim", "--quiet",
                         "-o", tmp_path / "m.json")
    assert code == 0, err
    metrics = json.loads((tmp_path / "m.json").read_text())["metrics"]
    assert metrics["psnr"] is None and metrics["ssim"] == pytest.approx(1.0)  # PSNR of identical images: inf


def test_transparency_is_laid_on_white_and_masks_on_black(tmp_path):
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[8:24, 8:24] = (255, 0, 0, 255)
    Image.fromarray(rgba).save(tmp_path / "cutout.png")
    photo = np.asarray(load_image(tmp_path / "cutout.png"))
    assert tuple(photo[0, 0]) == (255, 255, 255) and tuple(photo[16, 16]) == (255, 0, 0)
    from cfld.images import BLACK

    mask = np.asarray(load_image(tmp_path / "cutout.png", background=BLACK))
    assert tuple(mask[0, 0]) == (0, 0, 0)


def test_large_and_bomb_pictures_are_refused_before_decoding(tmp_path):
    Image.new("1", (9000, 9000)).save(tmp_path / "big.png")  # 81 megapixels, 100 kB
    with pytest.raises(InputError, match=r"big.png: is 9000x9000 pixels, more than the 64,000,000"):
        load_image(tmp_path / "big.png")
    from cfld.pose import read_image

    with pytest.raises(InputError, match="big.png"):
        read_image(tmp_path / "big.png")  # what `cfld pose draw --image` reads


# -- JSON and YAML ------------------------------------------------------------------------------------------------


def test_documents_are_plain_bounded_data(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: [1,\n  b: 2\n")
    with pytest.raises(InputError) as error:
        cio.read_yaml(path)
    assert "\n" not in str(error.value) and "line" in str(error.value)
    path.write_text("x: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(InputError, match="not valid YAML"):
        cio.read_yaml(path)
    path.write_text("root: 2024-01-01\n")  # a folder named by a date: text, as no option is a date
    assert cio.read_yaml(path) == {"root": "2024-01-01"}
    path.write_text("names: !!set {a, b}\n")
    with pytest.raises(InputError, match="holds a set"):
        cio.read_yaml(path)
    path.write_text("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{k}: &{k} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, k in zip("abcde", "bcdef")))
    with pytest.raises(InputError, match=r"uses YAML anchors/aliases \(&a / \*a\) at line 1, column 4"):
        cio.read_yaml(path)
    path.write_text("[" * 50_000 + "]" * 50_000)
    with pytest.raises(InputError, match="nested"):
        cio.read_json(path)
    path.write_text('{"x": Infinity}')
    with pytest.raises(InputError, match="Infinity is not a number"):
        cio.read_json(path)


# -- writing: atomic, and the temporaries a killed process leaves ---------------------------------------------------


def test_stale_temporaries_go_live_ones_stay(tmp_path):
    dead = dead_pid()
    stale = temporary_name_of(tmp_path, "a_to_b.png", dead)
    stale.write_bytes(b"half a picture")
    live = temporary_name_of(tmp_path, "c_to_d.png", os.getpid())
    live.write_bytes(b"being written right now")
    foreign = temporary_name_of(tmp_path, "e.png", dead, host="0123abcd")
    foreign.write_bytes(b"another machine's")
    old_foreign = temporary_name_of(tmp_path, "f.png", dead, host="0123abcd")
    old_foreign.write_bytes(b"another machine's, long ago")
    os.utime(old_foreign, (time.time() - 3 * 86400,) * 2)
    kept = tmp_path / ".hidden_but_mine.png"
    kept.write_bytes(b"not ours")
    removed = cio.remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([stale, old_foreign])
    assert live.exists() and foreign.exists() and kept.exists() and not stale.exists()


def test_an_interrupted_folder_replacement_is_put_back(tmp_path):
    """Killed between renaming the old folder aside and moving the new one in: the old one comes back."""
    aside = temporary_name_of(tmp_path, "model", dead_pid(), kind="old")
    aside.mkdir()
    (aside / "weights").write_text("the model that was there")
    new = temporary_name_of(tmp_path, "model", dead_pid())
    new.mkdir()
    cio.remove_stale_temporaries(tmp_path)
    assert (tmp_path / "model" / "weights").read_text() == "the model that was there"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_writes_clean_up_after_a_killed_writer_and_readers_ignore_its_files(tmp_path, capsys):
    from cfld.metrics.matching import list_images

    left = temporary_name_of(tmp_path, "x_to_y.png", dead_pid())
    left.write_bytes(b"\x89PNG half")
    assert cio.is_temporary(left) and left.suffix == ".png"
    Image.open(PHOTO).save(tmp_path / "x_to_y.png")
    assert list_images(tmp_path, "generated images") == [tmp_path / "x_to_y.png"]  # the temporary is not an image
    temporaries._cleaned.discard(tmp_path.resolve())
    cio.atomic_write_text(tmp_path / "notes.txt", "next write into the folder\n")
    assert not left.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "x_to_y.png"]


def test_atomic_writes_name_the_path_they_cannot_write(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="file: is a file, not a folder"):
        cio.atomic_write_text(tmp_path / "file" / "out.txt", "y")
    with pytest.raises(InputError, match="cannot be written"):
        cio.atomic_write_text("/sys/cfld-test/out.txt", "y")
    with pytest.raises(InputError, match="cannot be written"):
        cio.check_output_folder("/sys/cfld-test/deeper")
    target = tmp_path / "new" / "deeper"
    cio.check_output_folder(target)
    assert not (tmp_path / "new").exists() and sorted(tmp_path.iterdir()) == [tmp_path / "file"]


# -- the command line's boundary ---------------------------------------------------------------------------------


def test_unexpected_errors_are_one_line_or_a_traceback_with_debug(monkeypatch, capsys):
    import cfld.pose

    def broken(*args, **kwargs):
        raise RuntimeError("something\nwent wrong")

    monkeypatch.setattr(cfld.pose, "write_pose_json", broken)
    row = ("[40,85,90,147,210,82,141,199,205,-1,-1,205,-1,-1,34,34,39,40]:"
           "[88,89,56,49,35,124,129,111,58,-1,-1,98,-1,-1,81,96,72,105]")
    monkeypatch.setenv("CFLD_DEBUG", "0")
    code, out, err = run(capsys, "pose", "convert", row, "-o", "/tmp/never.json")
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("error: unexpected RuntimeError: something went wrong; this is a bug in cfld")
    assert "--debug" in err and "Traceback" not in err
    with pytest.raises(RuntimeError, match="went wrong"):
        main(["--debug", "pose", "convert", row, "-o", "/tmp/never.json"])
    monkeypatch.setenv("CFLD_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["pose", "convert", row, "-o", "/tmp/never.json"])

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/srv/results/x.json")

    monkeypatch.setattr(cfld.pose, "write_pose_json", refused)
    code, out, err = run(capsys, "pose", "convert", row, "-o", "/tmp/never.json")
    assert code == 2 and err == "error: /srv/results/x.json: Permission denied\n"


def test_usage_errors_are_one_line_with_a_pointer_to_help(capsys):
    code, out, err = run(capsys, "transfer", "-s", "x.png", "--steps", "0")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: Invalid value for '--steps'") and "cfld transfer --help" in err
    code, out, err = run(capsys, "no-such-command")
    assert code == 2 and err.count("\n") == 1 and "No such command" in err


# -- what a training config may name -------------------------------------------------------------------------------


def test_a_config_names_datasets_never_code(tmp_path):
    from torch.utils.data import Dataset

    from cfld.training import TrainConfig, register_dataset
    from cfld.training.datasets import build_dataset, check_data_spec

    module = "cfld_sentinel_that_must_never_be_imported"
    with pytest.raises(InputError, match="names Python code"):
        check_data_spec({"kind": f"{module}:Data"})
    with pytest.raises(InputError, match="names Python code"):
        check_data_spec({"kind": "subprocess:run", "args": f"touch {tmp_path / 'PWNED'}", "shell": True})
    assert module not in sys.modules and not (tmp_path / "PWNED").exists()

    class Pairs(Dataset):
        def __init__(self, length: int, image_size, cond_size, pose_size):
            self.length, self.sizes = length, (image_size, cond_size, pose_size)

        def __len__(self):
            return self.length

        def __getitem__(self, index):
            image, cond, pose = self.sizes
            return {"img_src": torch.zeros(3, *image), "img_tgt": torch.zeros(3, *image),
                    "img_cond": torch.zeros(3, *cond), "pose_img_src": torch.zeros(21, *pose),
                    "pose_img_tgt": torch.zeros(21, *pose)}

    register_dataset("fuzz-pairs", Pairs)
    with pytest.raises(TypeError):
        register_dataset("not-a-dataset", dict)
    config = TrainConfig.load("synthetic-cpu")
    config.data = {"kind": "fuzz-pairs", "length": 5}
    config.validate()
    dataset = build_dataset(config.data, config.model_config())
    assert isinstance(dataset, Pairs) and len(dataset) == 5 and dataset.sizes[0] == (64, 64)
    with pytest.raises(InputError, match="options colour that fuzz-pairs does not take"):
        check_data_spec({"kind": "fuzz-pairs", "length": 5, "colour": 1})

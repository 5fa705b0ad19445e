"""`cfld evaluate` through the real entry point, on real DeepFashion photos (../shared/data/images)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageFilter

from conftest import assert_fails, run

FLAT = "fashionWOMENBlouses_Shirtsid0000337203_3back"
PIXEL = "psnr,ssim,ssim_256"


@pytest.fixture
def folders(tmp_path, shared_dir):
    """ground truth: the four 176x256 women photos under flattened names, one as a path-style tree;
    generated: blurred copies named the public result sets' ways."""
    gt, gen = tmp_path / "gt", tmp_path / "gen"
    gt.mkdir()
    gen.mkdir()
    for i in range(1, 5):
        photo = Image.open(shared_dir / "data" / "images" / f"women{i}.jpg").convert("RGB")
        name = f"fashionWOMENDressesid000000{i}01_1front"
        photo.save(gt / f"{name}.jpg", quality=95)
        blurred = photo.filter(ImageFilter.GaussianBlur(1 + i))
        styles = [f"{name}.png", f"{FLAT}.jpg_2_{name}.jpg.png", f"{FLAT}___{name}_vis.png", f"{FLAT}_2_{name}.png"]
        blurred.save(gen / styles[i - 1])
    return gen, gt


def test_evaluate_pixel_metrics_to_json(capsys, folders, tmp_path):
    gen, gt = folders
    out = tmp_path / "metrics.json"
    code, stdout, err = run(capsys, "evaluate", "-g", gen, "-t", gt, "--metrics", PIXEL, "-o", out, "--quiet")
    assert code == 0, err
    assert "4 pairs at 256x176" in stdout and "original: scikit-image" in stdout
    result = json.loads(out.read_text())
    assert result["num_pairs"] == 4 and set(result["metrics"]) == {"psnr", "ssim", "ssim_256"}
    assert all(v.startswith("original") for v in result["protocols"].values())
    rows = {row["ground_truth"]: row for row in result["per_pair"]}
    assert len(rows) == 4
    # each row is scikit-image's number for that pair (as the original computes it)
    from skimage.metrics import structural_similarity

    ssim = []
    for i in range(1, 5):
        row = rows[f"fashionWOMENDressesid000000{i}01_1front.jpg"]
        truth = np.asarray(Image.open(gt / row["ground_truth"]), dtype=np.float32).transpose(2, 0, 1) / 255
        generated = np.asarray(Image.open(gen / row["generated"]), dtype=np.float32).transpose(2, 0, 1) / 255
        expected = structural_similarity(truth, generated, data_range=1, win_size=51, channel_axis=0)
        assert row["ssim"] == pytest.approx(expected, abs=1e-4) and 0.3 < row["ssim"] < 0.999
        ssim.append(row["ssim"])
    assert result["metrics"]["ssim"] == pytest.approx(np.mean(ssim))
    # never replaced without --overwrite
    assert_fails(capsys, ["evaluate", "-g", gen, "-t", gt, "--metrics", PIXEL, "-o", out], "metrics.json",
                 "--overwrite")
    code, _, _ = run(capsys, "evaluate", "-g", gen, "-t", gt, "--metrics", "psnr", "-o", out, "--overwrite", "--quiet")
    assert code == 0 and set(json.loads(out.read_text())["metrics"]) == {"psnr"}


def test_evaluate_resizes_or_refuses_other_sizes(capsys, folders):
    gen, gt = folders
    name = "fashionWOMENDressesid000000101_1front.png"
    Image.open(gen / name).resize((352, 512), Image.BICUBIC).save(gen / name)
    code, stdout, err = run(capsys, "evaluate", "-g", gen, "-t", gt, "--metrics", "ssim", "--quiet")
    assert code == 0, err
    assert_fails(capsys, ["evaluate", "-g", gen, "-t", gt, "--metrics", "ssim", "--size-mismatch", "error", "--quiet"],
                 name, "512x352", "not the evaluation size 256x176")


def test_evaluate_bad_inputs(capsys, folders, tmp_path):
    gen, gt = folders
    assert_fails(capsys, ["evaluate", "-g", tmp_path / "nope", "-t", gt], "nope", "no such folder")
    (tmp_path / "empty").mkdir()
    assert_fails(capsys, ["evaluate", "-g", gen, "-t", tmp_path / "empty"], "empty", "holds no images")
    assert_fails(capsys, ["evaluate", "-g", gen, "-t", gt, "--metrics", "psnr,is"], "--metrics", "'is'")
    assert_fails(capsys, ["evaluate", "-g", gen, "-t", gt, "--size", "32x32"], "--size", "too small")
    Image.new("RGB", (176, 256)).save(gen / "someone_else.png")
    assert_fails(capsys, ["evaluate", "-g", gen, "-t", gt, "--metrics", PIXEL],
                 "1 of 5 generated images match no image", "someone_else.png")
    (gen / "someone_else.png").unlink()
    (gen / f"{FLAT}___fashionWOMENDressesid000000301_1front_vis.png").write_bytes(b"\x89PNG but truncated")
    assert_fails(capsys, ["evaluate", "-g", gen, "-t", gt, "--metrics", PIXEL, "--quiet"],
                 "fashionWOMENDressesid000000301_1front_vis.png", "cannot be read as an image")


def test_evaluate_name_map(capsys, folders, tmp_path):
    gen, gt = folders
    for i, file in enumerate(sorted(gen.iterdir())):
        file.rename(gen / f"result_{i}.png")
    assert_fails(capsys, ["evaluate", "-g", gen, "-t", gt, "--metrics", "psnr"], "match no image")
    mapping = tmp_path / "map.csv"
    truths = sorted(p.name for p in gt.iterdir())
    lines = ["generated,ground_truth"]
    for i, file in enumerate(sorted(gen.iterdir())):
        lines.append(f"{file.name},{truths[i]}")
    mapping.write_text("\n".join(lines) + "\n")
    code, stdout, err = run(capsys, "evaluate", "-g", gen, "-t", gt, "--metrics", "psnr", "--name-map", mapping,
                            "--quiet")
    assert code == 0 and "4 pairs" in stdout, err
    mapping.write_text("a,b\nx,y\n")
    assert_fails(capsys, ["evaluate", "-g", gen, "-t", gt, "--name-map", mapping], "map.csv", "generated,ground_truth")


def test_evaluate_missing_weights_is_one_clear_line(capsys, folders, tmp_path, monkeypatch):
    gen, gt = folders
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    line = assert_fails(capsys, ["evaluate", "-g", gen, "-t", gt, "--metrics", "psnr,fid"],
                        "inception_v3_google-0cc3c7bd.pth", "--inception-weights")
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in line
    assert_fails(capsys, ["evaluate", "-g", gen, "-t", gt, "--metrics", "lpips"], "alexnet-owt-7be5be79.pth")
    assert_fails(capsys,
                 ["evaluate", "-g", gen, "-t", gt, "--metrics", "lpips", "--alexnet-weights", tmp_path / "a.pth"],
                 "a.pth", "no such file")


def test_evaluate_help_has_examples(capsys):
    code, stdout, _ = run(capsys, "evaluate", "--help")
    assert code == 0 and "Examples:" in stdout and "--fid-reference" in stdout and "_2_" in stdout
    code, stdout, _ = run(capsys, "--help")
    assert "evaluate" in stdout

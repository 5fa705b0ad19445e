"""Shared test fixtures: where the reference tensors and the shared data live."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# The suite never reaches the network: a Hub id that is not a local folder fails at once. Set before
# huggingface_hub is first imported, which reads it once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cfld.cli import main  # noqa: E402

# An unexpected exception inside a command is a bug: under test it must raise with its traceback rather than
# become the one-line "this is a bug" message users see (tests that check that message unset this).
os.environ.setdefault("CFLD_DEBUG", "1")

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SHARED = REPO.parent / "shared"
BUNDLED_REFERENCE = TESTS / "data" / "reference_tiny"
REAL = SHARED / "data" / "deepfashion-real"  # 246 real test photos, their published keypoints and pairs


# The smallest training recipe that runs the whole loop in seconds on a CPU (a 2-step VAE, 8 synthetic pairs),
# as a plain mapping: what a user's YAML would hold. Tests copy it and change what they test.
TINY_TRAINING = {
    "model": {"preset": "tiny", "image_size": [64, 64]},
    "unet": None,
    "vae": {"train_steps": 2, "batch_size": 4, "block_out_channels": [8, 8, 8], "norm_num_groups": 4},
    "trainable": "unet",
    "data": {"kind": "synthetic", "length": 8, "seed": 0, "photo_size": [64, 44]},
    "batch_size": 2, "epochs": 1, "decay_epochs": [1], "warmup_steps": 1, "mixed_precision": "no",
    "gradient_checkpointing": False, "num_workers": 0, "torch_threads": 1, "checkpoint_every": 2,
    "sample_every": 0, "log_every": 1,
}


def needs_mediapipe() -> None:
    pytest.importorskip("mediapipe", reason="framing needs the 'detect' extra (mediapipe==0.10.14)")


def need_real() -> Path:
    """../shared's 246 real DeepFashion test photos (skipping the test where they are not beside the repository)."""
    if not (REAL / "provenance.csv").is_file():
        pytest.skip(f"needs ../shared/data/deepfashion-real beside the repository (looked for {REAL})")
    return REAL


def real_photo_catalogue(root: Path) -> dict[str, str]:
    """The real photos copied into ``root`` as a catalogue, one subfolder per DeepFashion id_ folder (116 people);
    returns each photo's path in it -> its published annotation name."""
    import csv
    import shutil

    truth = {}
    for row in csv.DictReader((need_real() / "provenance.csv").open()):
        person = row["annotation_name"].split("/")[3]
        (root / person).mkdir(parents=True, exist_ok=True)
        shutil.copy(REAL / "images" / row["image"], root / person / row["image"])
        truth[f"{person}/{row['image']}"] = row["annotation_name"]
    return truth


def reference_dir() -> Path:
    """The directory of reference outputs: $CFLD_REFERENCE_DIR, else the copy bundled in tests/."""
    return Path(os.environ.get("CFLD_REFERENCE_DIR", BUNDLED_REFERENCE)).resolve()


@pytest.fixture(scope="session")
def ref_dir() -> Path:
    path = reference_dir()
    if not (path / "golden.json").is_file():
        pytest.fail(f"CFLD_REFERENCE_DIR={path} has no golden.json")
    return path


@pytest.fixture(scope="session")
def golden_json(ref_dir: Path) -> dict:
    return json.loads((ref_dir / "golden.json").read_text())


@pytest.fixture(scope="session")
def golden(ref_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(ref_dir / "golden.safetensors"))


@pytest.fixture(scope="session")
def original_config(ref_dir: Path) -> dict:
    """The reference's original ``config.yaml`` (a yacs dump) as nested dicts."""
    import yaml

    return yaml.safe_load((ref_dir / "config.yaml").read_text())


@pytest.fixture(scope="session")
def original_weights(ref_dir: Path) -> dict:
    """The reference's ``pytorch_model.bin`` (condition model, original key layout), read safely."""
    import torch

    return torch.load(ref_dir / "pytorch_model.bin", map_location="cpu", weights_only=True)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the repository (real DeepFashion files, photos, paper)."""
    if not SHARED.is_dir():
        pytest.skip(f"needs ../shared beside the repository (looked for {SHARED}); it holds the real data files")
    return SHARED


@pytest.fixture(scope="session")
def reference_pipeline(ref_dir: Path, golden_json: dict):
    """The original implementation's random-weight model of the reference directory as a CFLDPipeline:
    its ``pytorch_model*.bin``, ``config.yaml`` (+ ``golden.json``'s UNet config), ``vae/`` and
    ``scheduler/``. Shared by the tests, which must not modify it."""
    from cfld.models.config import CFLDConfig
    from cfld.pipeline import CFLDPipeline

    config = CFLDConfig.from_original_yaml(ref_dir / "config.yaml", unet=golden_json["unet_config"])
    return CFLDPipeline.from_pretrained(ref_dir, base=ref_dir, config=config)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, reference_pipeline) -> Path:
    """The reference model saved in our own format (what `cfld transfer --model` takes)."""
    return reference_pipeline.save_pretrained(tmp_path_factory.mktemp("models") / "cfld-tiny")


# -- command-line helpers shared by the CLI tests (import them: from conftest import run, assert_fails) --


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_fails(capsys, args, *fragments):
    """Exit status 2 and exactly one line, 'error: <source>: <fault>', on stderr."""
    code, out, err = run(capsys, *args)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def dead_pid() -> int:
    """The process id of a process that has ended (as a killed run's is)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def temporary_name_of(folder: Path, name: str, pid: int, kind: str = "new", host: str | None = None) -> Path:
    """The name cfld's atomic writes give ``folder/name`` while process ``pid`` (of ``host``) writes it."""
    from cfld import io as cio

    parts = cio.temporary_name(folder / name, kind).name.split("-")  # .NAME.KIND, HOST, PID, RANDOM.tmp.SUFFIX
    path = folder / "-".join([parts[0], host or parts[1], str(pid), parts[3]])
    assert cio.is_temporary(path)
    return path


def assert_usual_permissions(folder: Path) -> None:
    """Every file and folder under ``folder`` is as readable as what ``open`` / ``mkdir`` make (the umask's),
    not owner-only like a temporary file."""
    mask = os.umask(0)
    os.umask(mask)
    for item in (folder, *folder.rglob("*")):
        expected = (0o777 if item.is_dir() else 0o666) & ~mask
        assert item.stat().st_mode & 0o777 == expected, f"{item}: mode {oct(item.stat().st_mode & 0o777)}"

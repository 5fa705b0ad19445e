"""Shared test fixtures: where the reference tensors and the shared data live."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SHARED = REPO.parent / "shared"
BUNDLED_REFERENCE = TESTS / "data" / "reference_tiny"


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
def shared_dir() -> Path:
    """../shared beside the repository (real DeepFashion files, photos, paper)."""
    if not SHARED.is_dir():
        pytest.skip(f"needs ../shared beside the repository (looked for {SHARED}); it holds the real data files")
    return SHARED

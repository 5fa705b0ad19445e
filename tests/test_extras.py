"""Optional extras: without them the features say which extra to install, in one line (exit status 2)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

from cfld.cli import main
from cfld.errors import MissingDependencyError

PHOTO = Path(__file__).resolve().parent / "data" / "women1.jpg"


@pytest.mark.parametrize(
    ("module", "args", "hint"),
    [
        ("mediapipe", ["pose", "detect", str(PHOTO), "-o", "never.json"], "pip install 'cfld[detect]'"),
        ("gradio", ["app", "-m", "never"], "pip install 'cfld[app]'"),
    ],
)
def test_missing_extra_is_one_line(module, args, hint, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in [module, *(m for m in sys.modules if m.startswith(module + "."))]:
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed, even if imported before
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and hint in err
    assert not (tmp_path / "never.json").exists()


def test_mp4_without_imageio_ffmpeg(monkeypatch, tmp_path):
    from cfld.animation import write_mp4

    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    with pytest.raises(MissingDependencyError, match=r"cfld\[animate\]"):
        write_mp4([Image.new("RGB", (8, 8))], tmp_path / "a.mp4")
    assert not (tmp_path / "a.mp4").exists()

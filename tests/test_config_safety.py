"""Configs cannot hang or flood: what a user hands `cfld train` (a config file, `--set`), the original config.yaml
of `cfld convert`, and a model id that is neither a folder nor reachable on the Hugging Face hub each give one
sentence on stderr, at once.

The faults a tester met: a nine-line "billion laughs" YAML (anchors and aliases) in `--set` or a config file hung
`cfld train` until it was killed; `--set vae=foo/bar` without a network printed the hub client's retries and
tracebacks (12 lines, after 23 s). Processes that may hang, or whose stderr the hub client writes to, run as a
user runs them: a subprocess, without CFLD_DEBUG.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, TINY_TRAINING, assert_fails

HUB_ID = "foo/bar"
BOMB = "{" + ", ".join(
    ["a: &a [x, x, x, x, x, x, x, x, x]"]
    + [f"{k}: &{k} [{', '.join([f'*{p}'] * 9)}]" for p, k in zip("abcdefgh", "bcdefghi")]) + "}"
DEEP = "[" * 100_000 + "]" * 100_000
NO_NETWORK = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}  # a closed port: refused at once
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}


def cfld(*args: object, env: dict[str, str] | None = None, timeout: float = 120,
         first_on_path: Path | None = None) -> tuple[int, list[str]]:
    """Run `cfld ARGS` as a user does (no CFLD_DEBUG), offline: its exit status and its stderr's lines.
    ``first_on_path``: a folder put before the package on PYTHONPATH (a ``sitecustomize.py`` there runs first)."""
    path = os.pathsep.join(str(p) for p in (first_on_path, REPO / "src") if p is not None)
    environment = dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="1",
                       **(env or OFFLINE))
    environment.pop("CFLD_DEBUG", None)
    done = subprocess.run([sys.executable, "-m", "cfld", *map(str, args)], env=environment, capture_output=True,
                          text=True, timeout=timeout)
    return done.returncode, done.stderr.strip().splitlines()


def one_error(code: int, lines: list[str], *fragments: str) -> str:
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, lines)
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def recipe(tmp_path: Path, **changes: object) -> Path:
    """The test-size training recipe (conftest.TINY_TRAINING) with ``changes``, as a user's YAML file."""
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({**TINY_TRAINING, **changes}))
    return path


# -- YAML: anchors and aliases, nesting, size -----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["--set", "file"])
def test_a_billion_laughs_is_refused_at_once_in_one_sentence(tmp_path, where):
    if where == "--set":
        args, source = ["-c", "synthetic-cpu", "--set", f"noise_scheduler={BOMB}"], "--set noise_scheduler"
    else:
        path = recipe(tmp_path)
        path.write_text(path.read_text() + f"noise_scheduler: {BOMB}\n")
        args, source = ["-c", path], str(path)
    code, lines = cfld("train", *args, "-o", tmp_path / "run", timeout=60)  # it hung until killed at 120 s
    line = one_error(code, lines, f"{source}: uses YAML anchors/aliases (&a / *a)", "do not allow")
    assert "line 1" in line if where == "--set" else "line" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text", ["base: &b {beta_start: 0.001}\nother: 1\n", "noise_scheduler: *b\n"])
def test_any_anchor_or_alias_is_refused(tmp_path, capsys, text):
    path = recipe(tmp_path)
    path.write_text(path.read_text() + text)
    assert_fails(capsys, ["train", "-c", path, "-o", tmp_path / "run"], str(path), "anchors/aliases")


def test_deep_nesting_is_one_sentence_not_a_recursion_error(tmp_path, capsys):
    assert_fails(capsys, ["train", "-c", "synthetic-cpu", "-o", tmp_path / "run", "--set", f"noise_scheduler={DEEP}"],
                 "--set noise_scheduler: is nested more than 100 levels deep")
    path = recipe(tmp_path)
    path.write_text(path.read_text() + f"noise_scheduler: {DEEP}\n")
    assert_fails(capsys, ["train", "-c", path, "-o", tmp_path / "run"], f"{path}: is nested more than 100 levels")
    json_path = tmp_path / "recipe.json"
    json_path.write_text(json.dumps(TINY_TRAINING)[:-1] + ', "noise_scheduler": ' + DEEP + "}")
    assert_fails(capsys, ["train", "-c", json_path, "-o", tmp_path / "run"], str(json_path), "nested too deeply")


def test_huge_configs_and_numbers_are_refused(tmp_path, capsys):
    path = recipe(tmp_path)
    base = path.read_text()
    path.write_text(base.replace("seed: 0", "seed: " + "9" * 9_542_425))  # 9**9999999 written out: 9.5 MB
    assert_fails(capsys, ["train", "-c", path, "-o", tmp_path / "run"],
                 f"{path}: is 9.5 MB, more than the 1.0 MB a training config may be")
    path.write_text(base + "seed: " + "9" * 5000 + "\n")
    assert_fails(capsys, ["train", "-c", path, "-o", tmp_path / "run"], "holds a number 5,000 characters long")
    assert_fails(capsys, ["train", "-c", "synthetic-cpu", "-o", tmp_path / "run", "--set", "seed=0x" + "f" * 5000],
                 "--set seed: holds a number 5,002 characters long")
    path.write_text(base + "eval_size: [" + "1, " * 30_000 + "1]\n")
    assert_fails(capsys, ["train", "-c", path, "-o", tmp_path / "run"], "holds more than 20,000 values")
    json_path = tmp_path / "recipe.json"
    json_path.write_text(json.dumps({**TINY_TRAINING, "eval_size": [1] * 600_000}))
    assert_fails(capsys, ["train", "-c", json_path, "-o", tmp_path / "run"], "more than the 1.0 MB a training config")


def test_set_values_that_are_not_yaml_are_still_text():
    from cfld.training.config import apply_overrides

    assert apply_overrides({}, ["data.root=[mine", "lr=1e-5", "mixed_precision=no"]) == {
        "data": {"root": "[mine"}, "lr": "1e-5", "mixed_precision": "no"}


def test_the_original_config_yaml_refuses_aliases_too(tmp_path, capsys):
    source = tmp_path / "checkpoints"
    source.mkdir()
    (source / "pytorch_model.bin").write_bytes(b"")  # never read: the config is refused first
    (source / "config.yaml").write_text("MODEL: &m {A: 1}\nOTHER: *m\n")
    assert_fails(capsys, ["convert", source, tmp_path / "out"], str(source / "config.yaml"), "anchors/aliases")


# -- model ids that are neither a folder nor reachable on the Hub ------------------------------------------------


def test_an_unreachable_vae_is_one_line_without_the_hub_clients_log(tmp_path):
    """No network (a closed port): the hub client retries 5 times over ~23 s, logging each retry; the user sees
    one line. (Here its waits between retries are skipped, by a sitecustomize.py run before cfld: the same
    retries and logs, 20 s sooner.)"""
    fast = tmp_path / "no-waits"
    fast.mkdir()
    (fast / "sitecustomize.py").write_text(
        "import huggingface_hub.utils._http as http\n"
        "import time, types\n"
        "http.time = types.SimpleNamespace(**{n: getattr(time, n) for n in dir(time) if not n.startswith('_')})\n"
        "http.time.sleep = lambda seconds: None\n")
    code, lines = cfld("train", "-c", recipe(tmp_path, vae=HUB_ID), "-o", tmp_path / "run", env=NO_NETWORK,
                       first_on_path=fast)
    one_error(code, lines, f"error: {HUB_ID}: cannot be downloaded from the Hugging Face Hub (no network "
                           "connection?) and is not a local folder")


@pytest.mark.parametrize("option", ["vae", "unet"])
def test_an_uncached_hub_id_offline_is_one_line(tmp_path, option):
    args = ["-c", "synthetic-cpu", "--set", f"vae={HUB_ID}"] if option == "vae" else \
        ["-c", recipe(tmp_path, unet=HUB_ID, trainable="paper")]
    code, lines = cfld("train", *args, "-o", tmp_path / "run")
    one_error(code, lines, f"error: {HUB_ID}: cannot be downloaded from the Hugging Face Hub (HF_HUB_OFFLINE=1), "
                           "is not in its cache and is not a local folder")


def test_an_init_checkpoint_that_is_no_folder_is_one_line(tmp_path, capsys):
    assert_fails(capsys, ["train", "-c", recipe(tmp_path, init_checkpoint=HUB_ID), "-o", tmp_path / "run"],
                 f"error: {HUB_ID}: no such folder")


def test_sample_and_transfer_with_an_unreachable_model_are_one_line(tmp_path):
    from cfld.data.prepare import MANIFEST, MANIFEST_FORMAT

    code, lines = cfld("transfer", "--no-frame", "-s", REPO / "tests" / "data" / "women1.jpg", "-p",
                       "x:[" + ",".join(["40"] * 18) + "]:[" + ",".join(["30"] * 18) + "]", "-m", HUB_ID,
                       "-o", tmp_path / "out", env=OFFLINE)
    one_error(code, lines, f"error: {HUB_ID}: ", "HF_HUB_OFFLINE=1")
    data = tmp_path / "data"
    data.mkdir()
    (data / MANIFEST).write_text(json.dumps({"format": MANIFEST_FORMAT, "frame": [256, 176], "splits": {}}))
    code, lines = cfld("sample", "-m", HUB_ID, "-d", data, "-o", tmp_path / "results", env=OFFLINE)
    one_error(code, lines, f"error: {HUB_ID}: ", "HF_HUB_OFFLINE=1")


@pytest.mark.filterwarnings("ignore:The `local_dir_use_symlinks` argument is deprecated")
def test_only_the_cache_to_read_is_said_so(monkeypatch):
    """`local_files_only` without HF_HUB_OFFLINE (the Python API): the Hub was not asked, so no network is blamed."""
    from huggingface_hub import constants

    from cfld import checkpoint
    from cfld.errors import InputError

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(InputError, match=f"^{HUB_ID}: is not in the Hugging Face Hub cache, which alone was to be "
                                         r"read \(local_files_only\), and is not a local folder$"):
        checkpoint.load_sd15_vae(HUB_ID, local_files_only=True)


def test_what_the_hub_answered_is_said_in_a_few_words():
    """diffusers re-raises the Hub client's errors as OSError: the cause is found along the chain."""
    import httpx
    from huggingface_hub import errors

    from cfld.model_names import NO_NETWORK, hub_problem

    def raised(cause: BaseException) -> OSError:
        try:
            try:
                raise cause
            except Exception as error:
                raise OSError("foo/bar does not appear to have a file named config.json.") from error
        except OSError as error:
            return error

    response = httpx.Response(404, request=httpx.Request("HEAD", "https://huggingface.co/foo/bar"))
    assert "nor a repository on the Hugging Face Hub" in hub_problem(raised(
        errors.RepositoryNotFoundError("404", response=response)))
    assert "is a gated repository" in hub_problem(raised(errors.GatedRepoError("403", response=response)))
    assert hub_problem(raised(httpx.ConnectError("[Errno 111] Connection refused"))) == NO_NETWORK
    assert hub_problem(raised(errors.RemoteEntryNotFoundError("404", response=response))) is None  # no such file
    assert hub_problem(OSError("a damaged file")) is None


@pytest.mark.parametrize("option, said", [
    ("data.length=100000000000", "length must be a whole number from 1 to 100,000,000 (pairs), got 100000000000"),
    ("data.length=true", "length must be a whole number from 1 to 100,000,000 (pairs), got True"),
    ("data.photo_size=[100000, 100000]", "photo_size must be from 16 to 4096 pixels a side, got 100000x100000"),
    ("data.photo_size=[1, 1]", "photo_size must be from 16 to 4096 pixels a side, got 1x1"),
])
def test_synthetic_data_sizes_that_cannot_fit_are_refused_before_any_work(tmp_path, capsys, option, said):
    """Drawn data too large for memory (an epoch's order of 10^11 pairs, a 100000x100000 photo) was an 'unexpected'
    allocation error deep in training; now one sentence before anything is written."""
    assert_fails(capsys, ["train", "-c", "synthetic-cpu", "--set", option, "-o", tmp_path / "run"],
                 f"(data): synthetic dataset: {said}")
    assert not (tmp_path / "run").exists()

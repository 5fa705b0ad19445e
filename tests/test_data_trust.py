"""Training never uses data it was not given: every latent cache shard proves what it holds (tampered, stale or
foreign shards are encoded again, with a line saying which and why), and a resumed run refuses a dataset that
changed under it unless --new-data (src/cfld/training/latent_cache.py, data_identity.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from cfld.cli import main
from test_disk_full import small_prepared
from test_training import tiny
from test_training_levers import Counting, dataset_of, small_vae

SHARD = 4  # photos per shard here, so that the small dataset has several


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return small_prepared(tmp_path_factory, {"test": 1, "train": 6})


def other_photos(root: Path) -> None:
    """``root`` as if prepared again from other photos of the same size: each photo's bytes swapped with the next
    one's of other content (the small release alternates two real photos)."""
    images = sorted(p for p in (root / "train_highres").iterdir() if p.is_file())
    contents = [p.read_bytes() for p in images]
    for path, content in zip(images, contents[1:] + contents[:1]):
        path.write_bytes(content)
    assert any(p.read_bytes() != c for p, c in zip(images, contents))


def rewrite(path: Path, change) -> None:
    """Shard ``path`` with its tensors changed by ``change`` and its record (metadata) kept."""
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path), metadata=meta)


def _other_dataset_shard(root, data, folder, base):
    """Shard 0 of the same VAE's cache of another prepared dataset (the same names, other photos)."""
    other = root.parent / "other"
    shutil.copytree(root, other, ignore=shutil.ignore_patterns("latent-cache"))
    other_photos(other)
    from cfld.training.latent_cache import build_latent_cache

    built = build_latent_cache(dataset_of(other), base, other / "cache", progress=False, shard_size=SHARD)
    shutil.copy(built.folder / "shard-00000.safetensors", folder / "shard-00000.safetensors")


def _other_vae_shard(root, data, folder, base):
    from cfld.training.latent_cache import build_latent_cache

    built = build_latent_cache(data, small_vae(seed=1), root / "elsewhere", progress=False, shard_size=SHARD)
    shutil.copy(built.folder / "shard-00001.safetensors", folder / "shard-00001.safetensors")


def _other_vae_cache_renamed(root, data, folder, base):
    """Another VAE's whole cache put in this VAE's place, its index edited to name this VAE."""
    from cfld.training.latent_cache import build_latent_cache

    built = build_latent_cache(data, small_vae(seed=1), root / "elsewhere", progress=False, shard_size=SHARD)
    index = json.loads((folder / "cache.json").read_text())
    shutil.rmtree(folder)
    shutil.copytree(built.folder, folder)
    (folder / "cache.json").write_text(json.dumps(index))


def _negative_std(root, data, folder, base):
    rewrite(folder / "shard-00000.safetensors", lambda t: t["std"].__setitem__((0, 0, 0, 0), -0.5))


def _nan(root, data, folder, base):
    rewrite(folder / "shard-00001.safetensors", lambda t: t["mean"].__setitem__((1, 2, 3, 4), float("nan")))


def _changed_values(root, data, folder, base):
    rewrite(folder / "shard-00000.safetensors", lambda t: t["mean"].mul_(1.01))


def _half_size(root, data, folder, base):
    def halve(tensors):
        for key in tensors:
            tensors[key] = tensors[key][:, :, : tensors[key].shape[2] // 2].contiguous()

    rewrite(folder / "shard-00000.safetensors", halve)


def _no_record(root, data, folder, base):
    path = folder / "shard-00001.safetensors"
    save_file(load_file(str(path)), str(path))  # as an earlier cfld wrote shards


def _not_a_shard(root, data, folder, base):
    (folder / "shard-00000.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")


def _index_deleted(root, data, folder, base):
    (folder / "cache.json").unlink()


def _index_edited(root, data, folder, base):
    index = json.loads((folder / "cache.json").read_text())
    (folder / "cache.json").write_text(json.dumps(index | {"vae": "0123456789abcdef", "photos": 1}))


TAMPERING = [  # (what is done, the line that says so, the photos encoded again)
    (_other_dataset_shard, "shard-00000.safetensors was encoded from other versions of 3 of its 4 photos (e.g. ", 4),
    (_other_vae_shard, "shard-00001.safetensors was encoded by another VAE (or in another dtype)", None),
    (_other_vae_cache_renamed, "was encoded by another VAE", "all"),
    (_negative_std, "shard-00000.safetensors holds a negative standard deviation", 4),
    (_nan, "shard-00001.safetensors holds values that are not finite (NaN or infinite)", None),
    (_changed_values, "shard-00000.safetensors does not hold the values it was written with", 4),
    (_half_size, "shard-00000.safetensors holds a mean of shape (4, 4, 16, 24) torch.float32, not (4, 4, 32, 24)", 4),
    (_no_record, "shard-00001.safetensors has no record of what it was made from", None),
    (_not_a_shard, "shard-00000.safetensors cannot be read as a shard", 4),
    (_index_deleted, "cache.json: was missing; written again (every shard is checked on its own)", 0),
    (_index_edited, "cache.json: was not this cache’s index; written again", 0),
]


@pytest.mark.parametrize("tamper, line, encoded", TAMPERING, ids=[t[0].__name__.strip("_") for t in TAMPERING])
def test_a_shard_that_does_not_prove_what_it_holds_is_encoded_again(prepared, tmp_path, tamper, line, encoded):
    """Whatever was copied in, edited or damaged, the cache ends up holding exactly the latents of a clean
    encoding of this dataset by this VAE, and says which shard it encoded again and why."""
    from cfld.training.latent_cache import build_latent_cache

    root = tmp_path / "data"
    shutil.copytree(prepared, root, ignore=shutil.ignore_patterns("latent-cache"))
    data, base = dataset_of(root), small_vae()
    clean = build_latent_cache(data, base, progress=False, shard_size=SHARD)
    names = data.photo_names()
    expected = clean.posterior(names)
    tamper(root, data, clean.folder, base)
    lines: list[str] = []
    vae = Counting(base)
    again = build_latent_cache(data, vae, progress=False, shard_size=SHARD, report=lines.append)
    assert any(line in said for said in lines), lines
    last = len(names) - SHARD * (len(names) // SHARD) or SHARD
    assert vae.photos == {"all": len(names), None: last}.get(encoded, encoded)  # shard 1 is the last, partial one
    mean, std = again.posterior(names)
    assert torch.equal(mean, expected[0]) and torch.equal(std, expected[1])
    vae.photos, lines = 0, []
    build_latent_cache(data, vae, progress=False, shard_size=SHARD, report=lines.append)
    assert vae.photos == 0 and lines == []  # once encoded again, the cache is trusted as it is


def test_a_cache_is_kept_when_the_dataset_is_prepared_again_from_the_same_photos(prepared, tmp_path):
    """The shards are of the photos' bytes, not of the manifest: writing the manifest again costs nothing."""
    from cfld.training.latent_cache import build_latent_cache

    root = tmp_path / "data"
    shutil.copytree(prepared, root, ignore=shutil.ignore_patterns("latent-cache"))
    data, vae = dataset_of(root), Counting(small_vae())
    build_latent_cache(data, vae, progress=False, shard_size=SHARD)
    data.manifest_path.write_text(data.manifest_path.read_text() + "\n")
    vae.photos = 0
    build_latent_cache(dataset_of(root), vae, progress=False, shard_size=SHARD)
    assert vae.photos == 0


def test_a_shard_changed_while_training_runs_is_refused(prepared, tmp_path):
    from cfld.errors import InputError
    from cfld.training.latent_cache import build_latent_cache

    root = tmp_path / "data"
    shutil.copytree(prepared, root, ignore=shutil.ignore_patterns("latent-cache"))
    data = dataset_of(root)
    cache = build_latent_cache(data, small_vae(), progress=False, shard_size=SHARD)
    other = build_latent_cache(data, small_vae(seed=1), root / "elsewhere", progress=False, shard_size=SHARD)
    shutil.copy(other.folder / "shard-00001.safetensors", cache.folder / "shard-00001.safetensors")
    cache.posterior(data.photo_names()[:SHARD])  # shard 0 is as it was checked
    with pytest.raises(InputError, match=r"shard-00001.safetensors: changed while training ran \(it is not the shard "
                                         r"checked at the start\)"):
        cache.posterior(data.photo_names()[SHARD:])


# -- through `cfld train` ---------------------------------------------------------------------------------------


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a trained pipeline folder."""
    weights = {f"{part.parent.name}/{k}": v for part in sorted(folder.rglob("*.safetensors"))
               for k, v in load_file(part).items()}
    assert weights, folder
    return weights


def _train(capsys, *args) -> tuple[int, str, str]:
    code = main(["train", *map(str, args), "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def fixed_vae(folder: Path) -> str:
    """A small VAE saved as a diffusers folder, so that runs on different data encode with the same one."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(block_out_channels=(8, 8, 8), norm_num_groups=4, latent_channels=8,
                  down_block_types=("DownEncoderBlock2D",) * 3,
                  up_block_types=("UpDecoderBlock2D",) * 3).save_pretrained(folder)
    return str(folder)


def test_cli_train_never_trains_on_a_foreign_shard(prepared, tmp_path, capsys):
    """A shard replaced by the same VAE's shard of another prepared dataset (the same shape, the same names): the
    run says so, encodes it again, and trains exactly the weights of a run on a clean cache."""
    vae = fixed_vae(tmp_path / "vae")
    datasets = {}
    for name in ("data", "other"):
        datasets[name] = tmp_path / name
        shutil.copytree(prepared, datasets[name], ignore=shutil.ignore_patterns("latent-cache"))
        config = tiny(data={"kind": "prepared", "root": str(datasets[name])}, vae=vae, max_steps=2, batch_size=2)
        (tmp_path / f"{name}.json").write_text(config.to_json())
    other_photos(datasets["other"])
    for name, run in (("data", "clean"), ("other", "on-other")):
        code, _, err = _train(capsys, "-c", tmp_path / f"{name}.json", "-o", tmp_path / run)
        assert code == 0, err
    (folder,) = (datasets["data"] / "latent-cache").iterdir()
    (foreign,) = (datasets["other"] / "latent-cache").iterdir()
    assert foreign.name == folder.name  # the same VAE, the same size: a shard that fits in every way but its photos
    shutil.copy(foreign / "shard-00000.safetensors", folder / "shard-00000.safetensors")
    code, out, err = _train(capsys, "-c", tmp_path / "data.json", "-o", tmp_path / "tampered")
    assert code == 0, err
    assert f"latent cache: {folder / 'shard-00000.safetensors'} was encoded from other versions of " in out, out
    clean, tampered = _weights(tmp_path / "clean" / "model"), _weights(tmp_path / "tampered" / "model")
    assert clean.keys() == tampered.keys() and all(torch.equal(clean[k], tampered[k]) for k in clean)
    on_other = _weights(tmp_path / "on-other" / "model")
    assert not all(torch.equal(clean[k], on_other[k]) for k in clean)  # the other data trains other weights


def test_cli_resume_refuses_a_dataset_that_changed_unless_new_data(prepared, tmp_path, capsys):
    """The run records its data; --resume after the folder was prepared again from other photos (the same names
    and sizes) is refused in one sentence saying what changed; --new-data goes on, and says so."""
    root = tmp_path / "data"
    shutil.copytree(prepared, root, ignore=shutil.ignore_patterns("latent-cache"))
    config = tiny(data={"kind": "prepared", "root": str(root)}, max_steps=4, batch_size=2, checkpoint_every=2)
    (tmp_path / "config.json").write_text(config.to_json())
    out = tmp_path / "run"
    config.max_steps = 2
    (tmp_path / "two.json").write_text(config.to_json())
    assert _train(capsys, "-c", tmp_path / "two.json", "-o", out)[0] == 0
    record = json.loads((out / "data.json").read_text())
    state = json.loads((out / "checkpoints" / "step-0000002" / "trainer_state.json").read_text())
    assert state["data_digest"] == record["digest"] and len(record["photos"]) == len(dataset_of(root).photo_names())
    other_photos(root)
    (root / "cfld-dataset.json").touch()
    code, _, err = _train(capsys, "-c", tmp_path / "config.json", "-o", out, "--resume")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: {root}: is not the data {out / 'checkpoints' / 'step-0000002'} was trained on (")
    assert "photos changed (e.g. " in err and "): pass --new-data to go on training on it (fine-tuning on purpose), " \
                                               "or restore the data" in err, err
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000002"]  # nothing written
    code, _, err = _train(capsys, "-c", tmp_path / "config.json", "-o", out, "--new-data")
    assert code == 2 and err == "error: cfld train: --new-data goes with --resume (it lets a resumed run go on with " \
                               "other data)\n", err
    code, said, err = _train(capsys, "-c", tmp_path / "config.json", "-o", out, "--resume", "--new-data")
    assert code == 0, err
    assert "training goes on on new data (--new-data): " in said and "photos changed" in said
    state = json.loads((out / "checkpoints" / "step-0000004" / "trainer_state.json").read_text())
    assert state["data_digest"] == json.loads((out / "data.json").read_text())["digest"] != record["digest"]
    # the same data again: resumes without a word about it
    code, said, err = _train(capsys, "-c", tmp_path / "config.json", "-o", out, "--resume", "--max-steps", "4")
    assert code == 0 and "new data" not in said, err


def test_datasets_sharing_a_latent_cache_dir_get_folders_of_their_own(prepared, tmp_path):
    """Two datasets of other photos names in one latent_cache_dir: two folders, neither encoding the other's
    shards again; the same names (a folder prepared again) share one, where each shard is checked."""
    from cfld.training.latent_cache import build_latent_cache

    shared, lines = tmp_path / "shared-cache", []
    first = tmp_path / "first"
    shutil.copytree(prepared, first, ignore=shutil.ignore_patterns("latent-cache"))
    second = small_prepared_copy(tmp_path)
    vae = Counting(small_vae())
    for root in (first, second, first, second):
        build_latent_cache(dataset_of(root), vae, shared, progress=False, shard_size=SHARD, report=lines.append)
    assert len(list(shared.iterdir())) == 2 and lines == []
    total = len(dataset_of(first).photo_names()) + len(dataset_of(second).photo_names())
    assert vae.photos == total  # each photo encoded once


def small_prepared_copy(tmp_path: Path) -> Path:
    """Another prepared folder with other photo names (the first pairs of the test split, one more of them)."""
    class Factory:
        def mktemp(self, name):
            folder = tmp_path / name
            folder.mkdir()
            return folder

    return small_prepared(Factory(), {"test": 1, "train": 7})


def test_a_cache_place_taken_by_something_else_is_one_sentence(prepared, tmp_path, capsys):
    """A file where the cache's folder belongs (refused before the run writes anything), a folder where a shard
    belongs: one sentence each, nothing deleted."""
    from cfld.errors import InputError
    from cfld.training.latent_cache import build_latent_cache

    root = tmp_path / "data"
    shutil.copytree(prepared, root, ignore=shutil.ignore_patterns("latent-cache"))
    (root / "latent-cache").write_text("notes\n")
    (tmp_path / "config.json").write_text(tiny(data={"kind": "prepared", "root": str(root)}, max_steps=1,
                                               batch_size=2).to_json())
    code, _, err = _train(capsys, "-c", tmp_path / "config.json", "-o", tmp_path / "run")
    assert code == 2 and err == (f"error: {root / 'latent-cache'}: is a file where the latent cache's folder belongs: "
                                 "move it away, set latent_cache_dir to a folder, or cache_latents: false\n"), err
    assert not (tmp_path / "run").exists() and (root / "latent-cache").read_text() == "notes\n"
    (root / "latent-cache").unlink()
    data, vae = dataset_of(root), small_vae()
    folder = build_latent_cache(data, vae, progress=False, shard_size=SHARD).folder
    (folder / "shard-00000.safetensors").unlink()
    (folder / "shard-00000.safetensors").mkdir()
    with pytest.raises(InputError, match=r"shard-00000.safetensors: is a folder where a latent cache shard belongs: "
                                         r"delete it to encode the shard again"):
        build_latent_cache(data, vae, progress=False, shard_size=SHARD)

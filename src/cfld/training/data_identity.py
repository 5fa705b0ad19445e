"""What a run trains on: the identity of its dataset, recorded when the run starts and checked when it resumes.

A prepared dataset (``kind: prepared``) is known by the bytes of what training reads from it: the split's pairs
file, its keypoints file and every photo the pairs name (SHA-256 each, the photos hashed by a few threads). Any
other dataset is known by its options in the recipe (the synthetic persons are drawn from them), or by what its
class's ``identity()`` returns when it has one (a registered dataset may define it).

The record, ``OUTPUT/data.json``, keeps each file's digest, so that a resumed run whose data changed can say what
changed ("the keypoints file and 3 of 1,200 photos, e.g. a.jpg"); every checkpoint keeps the record's
``digest``. The latent cache takes each photo's digest from here (:mod:`.latent_cache`), so a photo is read and
hashed once per start.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..errors import InputError

FORMAT = "cfld-run-data/1"
RECORD = "data.json"  # in the run's folder
CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes (hashlib releases the GIL on large blocks, so threads hash in parallel)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(CHUNK):
                digest.update(block)
    except OSError as error:
        raise InputError(path, f"cannot be read to check what training reads ({error.strerror or error})") from None
    return digest.hexdigest()


def photo_digests(paths: Mapping[str, Path], progress: bool = False, threads: int = 8) -> dict[str, str]:
    """``{name: SHA-256}`` of each photo file, in the order given."""
    names = list(paths)
    with ThreadPoolExecutor(max_workers=threads) as pool, \
            tqdm(total=len(names), desc="checking the dataset's photos", unit="photo",
                 disable=not progress or len(names) < 2000) as bar:
        digests = []
        for digest in pool.map(file_sha256, (paths[name] for name in names)):
            digests.append(digest)
            bar.update()
    return dict(zip(names, digests))


def _digest(record: dict[str, Any]) -> str:
    parts = {key: record[key] for key in ("kind", "files", "photos", "options") if key in record}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def describe(dataset, spec: Mapping[str, Any], progress: bool = False) -> dict[str, Any]:
    """The record of what ``dataset`` (made from the recipe's ``data`` entry ``spec``) holds now."""
    record: dict[str, Any] = {"format": FORMAT, "kind": spec.get("kind")}
    files = getattr(dataset, "data_files", None)
    if callable(files):
        record["root"] = str(getattr(dataset, "root", ""))
        record["files"] = {role: file_sha256(path) for role, path in files().items()}
        names = dataset.photo_names()
        record["photos"] = photo_digests({name: dataset.image_path(name) for name in names}, progress)
    elif callable(getattr(dataset, "identity", None)):
        record["options"] = {"identity": str(dataset.identity())}
    else:
        record["options"] = json.loads(json.dumps(dict(spec), sort_keys=True, default=str))
    record["digest"] = _digest(record)
    return record


def changes(before: Mapping[str, Any] | None, now: Mapping[str, Any]) -> str:
    """What differs between two records, in words: "the pairs file and 3 of 1,200 photos (e.g. a.jpg)"."""
    if not before or before.get("digest") == now.get("digest"):
        return "its files are not the ones recorded" if before else "no record of the earlier data is left"
    if before.get("kind") != now.get("kind"):
        return f"it was {before.get('kind')} data and is now {now.get('kind')} data"
    if "options" in before or "options" in now:
        return "its options in the recipe differ"
    parts = [f"the {role} file" for role, digest in now.get("files", {}).items()
             if before.get("files", {}).get(role) != digest]
    old, new = before.get("photos", {}), now.get("photos", {})
    changed = [name for name, digest in new.items() if name in old and old[name] != digest]
    added = [name for name in new if name not in old]
    removed = [name for name in old if name not in new]
    for words, names in (("photos changed", changed), ("photos added", added), ("photos gone", removed)):
        if names:
            parts.append(f"{len(names):,} {words} ({_examples(names)})")
    return _join(parts) if parts else "its files are not the ones recorded"


def _examples(names: Sequence[str]) -> str:
    shown = ", ".join(names[:3])
    return f"e.g. {shown}" if len(names) > 3 else shown


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def read_record(output_dir: Path) -> dict[str, Any] | None:
    """The record a run wrote when it started (None if there is none or it cannot be read)."""
    try:
        record = json.loads((Path(output_dir) / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("format") == FORMAT else None


def check_resume(checkpoint: Path, state: Mapping[str, Any], now: Mapping[str, Any], output_dir: Path,
                 new_data: bool) -> str | None:
    """Refuse to resume ``checkpoint`` on data other than what it was trained on, unless ``new_data``; returns a
    line to print when the data changed and ``new_data`` allows it (or when the checkpoint has no record)."""
    recorded = state.get("data_digest")
    if recorded is None:
        return (f"{checkpoint.name} has no record of the data it was trained on (written by an earlier cfld); "
                "recording the data as it is now")
    if recorded == now["digest"]:
        return None
    before = read_record(output_dir)
    what = changes(before if before and before.get("digest") == recorded else None, now)
    where = now.get("root") or f"the {now.get('kind')} dataset"
    if not new_data:
        raise InputError(where, f"is not the data {checkpoint} was trained on ({what}): pass --new-data to go on "
                                "training on it (fine-tuning on purpose), or restore the data")
    return f"training goes on on new data (--new-data): {what}"

"""Files in and out, for every module that reads what a user gives or writes what matters.

Writing: results, checkpoints, models and prepared datasets are written under a temporary name beside their
destination and renamed into place in one step (:func:`atomic_path` for a file, :func:`atomic_folder` for a
folder), never replacing an existing one unless asked. A temporary name records the host and process that
made it (``.NAME.new-HOST-PID-RANDOM.tmp.SUFFIX``), so when a killed run left one behind, the next write into
that folder removes it (:func:`remove_stale_temporaries`) while never touching one that a live process is
still writing; readers of folders skip them (:func:`is_temporary`). An operating-system failure of a write
(read-only folder, disk full, a file where a folder should be) is an :class:`~cfld.errors.InputError` naming
the path.

Reading: :func:`read_text`, :func:`read_json` and :func:`read_yaml` read what a user hands us with a size
limit, refusing deep nesting, NaN/Infinity literals and YAML alias bombs, and turn every parser complaint into
one line naming the file, the line and the fault.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import InputError, one_line

MAX_TEXT_BYTES = 256 * 2**20  # the largest annotation file of the datasets is ~10 MB
MAX_NODES = 1_000_000  # values in one JSON/YAML document after YAML aliases are expanded
MAX_DEPTH = 100  # nesting of one JSON/YAML document: our formats need fewer than 10 levels
STALE_AFTER_S = 24 * 3600  # a temporary of another host is left alone for a day


# -- temporary names ---------------------------------------------------------------------------------------------

_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<kind>new|old)-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-z]{6}"
                        r"\.tmp(?P<suffix>\.[^.]+)?$")
_cleaned: set[Path] = set()


def temporary_name(path: Path, kind: str = "new") -> Path:
    """``.NAME.KIND-HOST-PID-RANDOM.tmp.SUFFIX`` beside ``path`` (the suffix kept: writers choose formats by it)."""
    token = f"{kind}-{_HOST}-{os.getpid()}-{secrets.token_hex(3)}"
    return path.with_name(f".{path.name}.{token}.tmp{path.suffix}")


def is_temporary(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a temporary file or folder of an unfinished write (to be ignored by readers)."""
    return _TEMPORARY.match(Path(path).name) is not None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries in ``folder`` that no live process is writing, and return them.

    A temporary is stale when its process (on this host) is gone, or, from another host, after a day. A
    stale ``old`` folder (the previous version of a folder that was being replaced) whose destination is
    missing is renamed back into place rather than removed: the replacement never finished.
    """
    folder = Path(folder)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match is None:
            continue
        path = Path(entry.path)
        try:
            if match["host"] == _HOST:
                if _alive(int(match["pid"])):
                    continue
            elif time.time() - entry.stat(follow_symlinks=False).st_mtime < STALE_AFTER_S:
                continue
            target = folder / (match["name"] + (match["suffix"] or "") if match["kind"] == "new" else match["name"])
            if match["kind"] == "old" and not target.exists():
                os.replace(path, target)
            elif entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except OSError:
            continue  # another process got there first, or we may not: leave it
    return removed


def _clean_once(folder: Path) -> None:
    key = folder.resolve()
    if key not in _cleaned:
        _cleaned.add(key)
        remove_stale_temporaries(folder)


# -- writing -----------------------------------------------------------------------------------------------------


def write_failure(path: str | os.PathLike, error: OSError) -> InputError:
    """An operating-system failure to write ``path`` as one sentence naming it."""
    reason = error.strerror or type(error).__name__
    return InputError(path, f"cannot be written ({reason})")


def check_writable(path: str | os.PathLike, overwrite: bool) -> Path:
    """Return ``path`` as a Path, refusing to replace an existing file unless ``overwrite`` is set."""
    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a folder; give a file name")
    if path.exists() and not overwrite:
        raise InputError(path, "already exists; pass --overwrite (overwrite=True) to replace it")
    return path


def _nearest_existing(path: Path) -> Path:
    """``path`` or its nearest parent that exists, which must be a folder (else an InputError naming it)."""
    for folder in (path, *path.parents):
        kind = path_kind(folder)
        if kind == "folder":
            return folder
        if kind is not None:
            raise InputError(folder, f"is a {kind}, not a folder")
    return Path(path.anchor or ".")


def check_output_folder(folder: str | os.PathLike) -> Path:
    """Refuse, before any long work, an output folder that cannot be written; leave the disk as it was.

    The folder (or, when it does not exist yet, its nearest existing parent) must be a folder in which a
    file can be created: this is tried, not guessed from permission bits (which a read-only file system or
    a root user make meaningless), and the trial file is removed again.
    """
    folder = Path(folder)
    try:
        fd, probe = tempfile.mkstemp(prefix=".cfld-write-check.", dir=_nearest_existing(folder))
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise write_failure(folder, error) from None
    return folder


def check_output_file(path: str | os.PathLike, overwrite: bool) -> Path:
    """:func:`check_writable` and :func:`check_output_folder` of its folder: a result file that cannot be
    written is refused before the work that would make it."""
    path = check_writable(path, overwrite)
    check_output_folder(path.parent)
    return path


def _make_parent(path: Path) -> None:
    _nearest_existing(path.parent)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_failure(path.parent, error) from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path`` in one step.

    A crash half-way leaves ``path`` as it was (absent or the old file), never a truncated file; the
    temporary a killed process leaves is removed by the next write into the folder.
    """
    path = check_writable(path, overwrite)
    _make_parent(path)
    _clean_once(path.parent)
    tmp_path = temporary_name(path)
    try:
        tmp_path.touch(exist_ok=False)
    except OSError as error:
        raise write_failure(path, error) from None
    try:
        yield tmp_path
        # after the write: some writers (safetensors) replace the file they are given with a new one
        usual_permissions(tmp_path)
        os.replace(tmp_path, path)
    except OSError as error:
        raise write_failure(path, error) from None
    finally:
        with contextlib.suppress(OSError):
            if tmp_path.exists():
                tmp_path.unlink()


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``path``; when the block succeeds, it becomes ``path``.

    An existing ``path`` is replaced only with ``overwrite``: it is first renamed aside, then the new folder
    takes its place, then the old one is deleted. A run killed between the two renames leaves the old
    folder aside under a temporary name, which the next write into the parent folder puts back.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise InputError(target, "already exists; pass overwrite=True (--overwrite) to replace it")
    if target.exists() and not target.is_dir():
        raise InputError(target, "is a file, not a folder")
    _make_parent(target)
    _clean_once(target.parent)
    tmp = temporary_name(target)
    try:
        tmp.mkdir()
    except OSError as error:
        raise write_failure(target, error) from None
    try:
        yield tmp
        usual_permissions(tmp)
        if target.exists():
            old = temporary_name(target, "old")
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except OSError as error:
        raise write_failure(target, error) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def usual_permissions(path: Path) -> None:
    """Give ``path`` (a file, or a folder and everything in it) the permissions ``open`` / ``mkdir`` would.

    What is written under a temporary name (``mkstemp``, ``mkdtemp``, safetensors' own temporary file) is
    owner-only; results renamed into place from there must be readable like any other file of the user.
    """
    mask = _umask()
    for item in (path, *path.rglob("*")) if path.is_dir() else (path,):
        os.chmod(item, (0o777 if item.is_dir() else 0o666) & ~mask)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Call ``write(tmp_path)`` and atomically move the result onto ``path``."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        write(tmp)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = False) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data), overwrite=overwrite)


def atomic_write_text(path: str | os.PathLike, text: str, overwrite: bool = False) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"), overwrite=overwrite)


# -- reading -----------------------------------------------------------------------------------------------------


def path_kind(path: str | os.PathLike) -> str | None:
    """``"file"``, ``"folder"``, ``"other"`` (a device, a socket ...) or None when nothing is there, for any text
    a user typed: a name too long or with a NUL byte is simply not there, rather than an OSError."""
    try:
        path = Path(path)
        if path.is_file():
            return "file"
        if path.is_dir():
            return "folder"
        return "other" if path.exists() else None
    except (OSError, ValueError):
        return None



def read_text(path: str | os.PathLike, what: str = "text file", limit: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of a file a user gave (a leading byte-order mark dropped), or one clear InputError."""
    path = Path(path)
    kind = path_kind(path)
    if kind is None:
        raise InputError(path, f"no such file (the {what})")
    if kind != "file":
        raise InputError(path, f"is a {kind}, not a file (the {what})")
    try:
        size = path.stat().st_size
        if size > limit:
            raise InputError(path, f"is {size / 2**20:.0f} MB, more than the {limit // 2**20} MB a {what} may be")
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(path, f"is not UTF-8 text (byte {error.start}), so not a {what}") from None
    except OSError as error:
        raise InputError(path, f"cannot be read ({error.strerror or type(error).__name__})") from None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json(text: str, source: object, what: str = "JSON file") -> Any:
    """``json.loads`` with one-line errors naming ``source``; NaN/Infinity and deep nesting are refused."""
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise InputError(source, f"is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})") from None
    except RecursionError:
        raise InputError(source, f"is nested too deeply to be a {what}") from None
    except ValueError as error:
        raise InputError(source, f"is not valid JSON ({error})") from None
    check_document(data, source, what)
    return data


def read_json(path: str | os.PathLike, what: str = "JSON file", limit: int = MAX_TEXT_BYTES) -> Any:
    """A JSON file a user gave, parsed, or one clear InputError naming it."""
    return parse_json(read_text(path, what, limit), path, what)


def read_json_object(path: str | os.PathLike, what: str = "JSON file") -> dict[str, Any]:
    data = read_json(path, what)
    if not isinstance(data, dict):
        raise InputError(path, f"is not a JSON object, so not a {what}")
    return data


def read_yaml(path: str | os.PathLike, what: str = "YAML file") -> Any:
    """A YAML file (``yaml.safe_load``: plain data only, never Python objects) or one clear InputError.

    Parser errors become one line with the line and column; aliases that expand to more than
    :data:`MAX_NODES` values (a "billion laughs" file) and nesting deeper than :data:`MAX_DEPTH` are refused.
    """
    import yaml

    text = read_text(path, what)
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(error.problem or error.context or "syntax error").split())
        raise InputError(path, f"is not valid YAML ({problem}{where})") from None
    except RecursionError:
        raise InputError(path, f"is nested too deeply to be a {what}") from None
    except yaml.YAMLError as error:
        raise InputError(path, f"is not valid YAML ({one_line(error)})") from None
    check_document(data, path, what)
    return data


_PLAIN = (str, int, float, bool, type(None), list, dict)


def check_document(data: Any, source: object, what: str) -> None:
    """Refuse a parsed document nested deeper than :data:`MAX_DEPTH`, holding more than :data:`MAX_NODES`
    values (counting every use of a YAML alias, without ever walking more than that), or holding anything
    but JSON's plain values (YAML dates, sets, binary) and text keys."""
    budget = [MAX_NODES]

    def walk(value: Any, depth: int) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise InputError(source, f"holds more than {MAX_NODES:,} values; that is not a {what}")
        if depth > MAX_DEPTH:
            raise InputError(source, f"is nested more than {MAX_DEPTH} levels deep; that is not a {what}")
        if not isinstance(value, _PLAIN):
            raise InputError(source, f"holds a {type(value).__name__} ({str(value)[:40]!r}); a {what} holds only "
                                     "text, numbers, true/false, null, lists and mappings")
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InputError(source, f"has the key {key!r}, which is not text; write keys as names")
                walk(item, depth + 1)
        elif isinstance(value, list):
            for item in value:
                walk(item, depth + 1)

    walk(data, 0)

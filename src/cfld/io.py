"""Files in and out, for every module that reads what a user gives or writes what matters.

Writing: results, checkpoints, models and prepared datasets are written under a temporary name beside their
destination and renamed into place in one step (:func:`atomic_path` for a file, :func:`atomic_folder` for a
folder), never replacing an existing one unless asked. A temporary name records the host and process that
made it (``.NAME.new-HOST-PID-RANDOM.tmp.SUFFIX``), so when a killed run left one behind, the next write into
that folder removes it (:func:`remove_stale_temporaries`) while never touching one that a live process is
still writing; readers of folders skip them (:func:`is_temporary`). An operating-system failure of a write
(read-only folder, disk full, a file where a folder should be) is a :class:`~cfld.errors.WriteError` (an
:class:`~cfld.errors.InputError`) naming the path, and, where the writer says them, what the file is, how much
space it needed and what was kept (:func:`write_failure`); its temporary is removed at once. A library that
reports the operating system's refusal in its own exception (safetensors: ``... (os error 28)``, torch.save: a
RuntimeError raised while handling the OSError) counts as that refusal (:func:`os_write_error`).

Reading: :func:`read_text`, :func:`read_json` and :func:`read_yaml` read what a user hands us with a size
limit, refusing deep nesting, NaN/Infinity literals and YAML alias bombs, and turn every parser complaint into
one line naming the file, the line and the fault.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import SPACE_ERRNOS, CFLDError, InputError, WriteError, one_line, os_error_in_message

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


def os_write_error(error: BaseException) -> OSError | None:
    """The operating-system failure behind a failed write, or None when ``error`` is something else (a bug).

    ``error`` itself when it is an OSError; the OSError a :class:`~cfld.errors.WriteError` was made from; for an
    exception whose message holds Rust's ``(os error N)`` (safetensors' SafetensorError),
    ``OSError(N, os.strerror(N))``; else the first of these among the exceptions it was raised from or while
    handling (torch.save into a file raises a RuntimeError while handling the file's OSError). Our other errors
    (input errors) are not write failures.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, WriteError):
            return current.os_error
        if isinstance(current, CFLDError):
            return None
        if isinstance(current, OSError):
            return current
        found = os_error_in_message(current)
        if found is not None:
            return found
        current = current.__cause__ if current.__cause__ is not None else (
            None if current.__suppress_context__ else current.__context__)
    return None


def format_size(size: int) -> str:
    """``512 bytes``, ``12.3 kB``, ``40.2 MB``, ``1.5 GB`` (powers of 1000, as disks are sold and ``df -H``)."""
    if size < 1000:
        return f"{size} byte{'' if size == 1 else 's'}"
    for unit in ("kB", "MB", "GB", "TB"):
        size /= 1000
        if size < 999.95 or unit == "TB":
            return f"{size:.1f} {unit}"
    raise AssertionError("unreachable")


def free_space(path: str | os.PathLike) -> int | None:
    """Bytes free to this user on the file system of ``path`` (its nearest existing folder), or None."""
    for folder in (Path(path), *Path(path).parents):
        try:
            if folder.is_dir():
                return shutil.disk_usage(folder).free
        except OSError:
            return None
    return None


def folder_bytes(path: str | os.PathLike) -> int:
    """The total size of the files under a folder (or of one file; 0 when nothing is there), each file counted
    once however many links it has: to say how much space a write of the same kind needs."""
    total, seen = 0, set()
    try:
        items = [Path(path)] if not Path(path).is_dir() else \
            [Path(root) / name for root, _, names in os.walk(path) for name in names]
    except OSError:
        return 0
    for item in items:
        try:
            stat = item.lstat()
        except OSError:
            continue
        if (stat.st_dev, stat.st_ino) not in seen:
            seen.add((stat.st_dev, stat.st_ino))
            total += stat.st_size
    return total


def write_failure(path: str | os.PathLike, error: OSError, *, what: str | None = None, needed: int | None = None,
                  kept: str | None = None) -> InputError:
    """An operating-system failure to write ``path`` as one sentence naming it (a :class:`WriteError`).

    With only ``(path, error)``: ``PATH: cannot be written (REASON)``. ``what`` says what the file is, ``needed``
    how many bytes it needs, ``kept`` what an interrupted run keeps and how to go on; on a full disk the free space
    left (after the temporary was removed) is measured. Unknown parts are left out::

        runs/a/checkpoints/step-0000004: the checkpoint cannot be written (No space left on device; it needs about
        40.2 MB, 3.1 MB are free); the last good checkpoint is step-0000003: free space and run again with --resume
    """
    return _failure(path, error, what, needed, kept, space=(what, needed, kept) != (None, None, None))


def _failure(path: str | os.PathLike, error: OSError, what: str | None, needed: int | None, kept: str | None,
             space: bool = True) -> WriteError:
    details = [error.strerror or type(error).__name__]
    if space and error.errno in SPACE_ERRNOS:
        amounts = [] if needed is None else [f"it needs about {format_size(needed)}"]
        free = free_space(Path(path).parent) if error.errno == errno.ENOSPC else None  # a quota is not free space
        if free is not None:
            amounts.append(f"{format_size(free)} {'is' if free == 1 else 'are'} free")
        if amounts:
            details.append(", ".join(amounts))
    problem = f"{what + ' ' if what else ''}cannot be written ({'; '.join(details)})"
    if kept:
        problem += f"; {kept}"
    return WriteError(path, problem, error, what=what, needed=needed, kept=kept)


@contextlib.contextmanager
def writing(what: str | Callable[[Path], str | None] | None = None,
            kept: str | Callable[[], str | None] | None = None) -> Iterator[None]:
    """Say a failed write of the block again with what the caller knows: what is written (unless the write
    said it; ``what`` may be a function of the path that failed), and what is kept (``kept`` may be a function,
    asked at the failure: counts are known then).

    A :class:`WriteError` of the block is raised again with them; so is a full disk that an operating-system
    error of the block reports with its file (a plain ``open``, ``mkdir``). Other errors pass unchanged.
    """
    try:
        yield
    except WriteError as error:
        raise _failure(error.path, error.os_error, error.what or _what_of(what, error.path), error.needed,
                       _kept_now(kept) or error.kept) from None
    except OSError as error:
        if error.errno not in SPACE_ERRNOS or not isinstance(error.filename, (str, os.PathLike)):
            raise
        raise _failure(error.filename, error, _what_of(what, error.filename), None, _kept_now(kept)) from None


def _what_of(what: str | Callable[[Path], str | None] | None, path: str | os.PathLike) -> str | None:
    return what(Path(path)) if callable(what) else what


def _kept_now(kept: str | Callable[[], str | None] | None) -> str | None:
    return kept() if callable(kept) else kept


def _remove(path: Path) -> None:
    """Remove a temporary file or folder, now (it takes space the user needs to see free)."""
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()


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
        raise _failure(path.parent, error, None, None, None) from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False, *, what: str | None = None,
                kept: str | None = None, needed: int | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path`` in one step.

    A crash half-way leaves ``path`` as it was (absent or the old file), never a truncated file; the
    temporary a killed process leaves is removed by the next write into the folder. A write the operating
    system refuses (a full disk; also as safetensors or torch.save report it, see :func:`os_write_error`) removes
    the temporary at once and raises :func:`write_failure` of ``path`` with ``what`` (what the file is),
    ``needed`` (its size, when the writer knows it) and ``kept`` (default: that the file there before is kept).
    """
    path = check_writable(path, overwrite)
    _make_parent(path)
    _clean_once(path.parent)
    if kept is None and path.exists():
        kept = "the file there before is kept as it was"
    tmp_path = temporary_name(path)
    try:
        tmp_path.touch(exist_ok=False)
    except OSError as error:
        raise _failure(path, error, what, needed, kept) from None
    try:
        yield tmp_path
        # after the write: some writers (safetensors) replace the file they are given with a new one
        usual_permissions(tmp_path)
        os.replace(tmp_path, path)
    except CFLDError:
        raise
    except Exception as error:
        _raise_if_refused(error, tmp_path, path, what, needed, kept)
        raise
    finally:
        _remove(tmp_path)


def _raise_if_refused(error: BaseException, temporary: Path, path: Path, what: str | None, needed: int | None,
                      kept: str | None) -> None:
    """A write the operating system refused: the temporary goes (before what is free is measured), then
    :func:`write_failure` of ``path``; anything else returns, to be raised as it is."""
    os_error = os_write_error(error)
    if os_error is not None:
        _remove(temporary)
        raise _failure(path, os_error, what, needed, kept) from None


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, overwrite: bool = False, *, what: str | None = None,
                  kept: str | None = None, needed: int | None = None) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``path``; when the block succeeds, it becomes ``path``.

    An existing ``path`` is replaced only with ``overwrite``: it is first renamed aside, then the new folder
    takes its place, then the old one is deleted. A run killed between the two renames leaves the old
    folder aside under a temporary name, which the next write into the parent folder puts back. A write of
    the block that the operating system refuses (a file in the folder, written by any means, including our
    atomic writes and safetensors) removes the temporary folder at once and raises :func:`write_failure` of
    ``path`` with ``what``, ``needed`` and ``kept`` (default: that the folder there before is kept).
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise InputError(target, "already exists; pass overwrite=True (--overwrite) to replace it")
    if target.exists() and not target.is_dir():
        raise InputError(target, "is a file, not a folder")
    _make_parent(target)
    _clean_once(target.parent)
    if kept is None and target.exists():
        kept = "the folder there before is kept as it was"
    tmp = temporary_name(target)
    try:
        tmp.mkdir()
    except OSError as error:
        raise _failure(target, error, what, needed, kept) from None
    try:
        yield tmp
        usual_permissions(tmp)
        if target.exists():
            old = temporary_name(target, "old")
            target.rename(old)
            try:
                tmp.rename(target)
            except OSError:
                old.rename(target)  # the folder that was there goes back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except WriteError as error:
        if not _inside(error.path, tmp):
            raise  # a write elsewhere, named as it is
        _remove(tmp)
        raise _failure(target, error.os_error, what, needed, kept) from None
    except CFLDError:
        raise
    except Exception as error:
        _raise_if_refused(error, tmp, target, what, needed, kept)
        raise
    finally:
        _remove(tmp)


def _inside(path: str | os.PathLike, folder: Path) -> bool:
    try:
        return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))
    except (TypeError, ValueError):
        return False


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

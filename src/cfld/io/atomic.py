"""Atomic writes: a file (:func:`atomic_path`) or a folder (:func:`atomic_folder`) is written under a temporary
name beside its destination and renamed into place in one step, never replacing an existing one unless asked; a
write the operating system refuses removes its temporary at once and says so in one sentence naming the path."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import CFLDError, InputError, WriteError, write_error, write_failure
from .failures import os_write_error
from .reading import path_kind
from .temporaries import clean_once, temporary_name


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
        raise write_error(path.parent, error, None, None, None) from None


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
    clean_once(path.parent)
    if kept is None and path.exists():
        kept = "the file there before is kept as it was"
    tmp_path = temporary_name(path)
    try:
        tmp_path.touch(exist_ok=False)
    except OSError as error:
        raise write_error(path, error, what, needed, kept) from None
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
        raise write_error(path, os_error, what, needed, kept) from None


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
    clean_once(target.parent)
    if kept is None and target.exists():
        kept = "the folder there before is kept as it was"
    tmp = temporary_name(target)
    try:
        tmp.mkdir()
    except OSError as error:
        raise write_error(target, error, what, needed, kept) from None
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
        raise write_error(target, error.os_error, what, needed, kept) from None
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

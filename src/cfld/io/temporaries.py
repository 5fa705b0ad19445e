"""Temporary names of unfinished writes: ``.NAME.new-HOST-PID-RANDOM.tmp.SUFFIX`` beside the destination (``old``:
the previous version of a folder being replaced). Readers skip them; the next write into a folder removes those
no live process is writing."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path

STALE_AFTER_S = 24 * 3600  # a temporary of another host is left alone for a day
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<kind>new|old)-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-z]{6}"
                        r"\.tmp(?P<suffix>\.[^.]+)?$")
_cleaned: set[Path] = set()  # folders cleaned by this process


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


def clean_once(folder: Path) -> None:
    key = folder.resolve()
    if key not in _cleaned:
        _cleaned.add(key)
        remove_stale_temporaries(folder)

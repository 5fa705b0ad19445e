"""Reading the files a dataset is published with: image lists (``train.lst``), pair files (``from,to``) and
where in a folder each lies. Every complaint names the file and the line."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import InputError

#: What a published image name ends in.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm")


def read_text_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot be read as text ({err.__class__.__name__}: {err})") from None


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def read_name_list(path: Path, normalise: Callable[[str, str], str]) -> list[str]:
    """A ``train.lst``/``test.lst``: one image name per line (blank lines ignored), normalised.

    ``normalise(name, source)`` turns a name of either naming style into the key used everywhere.
    """
    names = []
    for lineno, line in enumerate(read_text_lines(path), 1):
        name = line.strip()
        if not name:
            continue
        source = f"{path} line {lineno}"
        if not is_image_name(name) or "," in name or ":" in name:
            raise InputError(source, f"{name[:60]!r} is not an image file name (one name per line, like x.jpg)")
        names.append(normalise(name, source))
    if not names:
        raise InputError(path, "lists no images")
    return names


def read_pairs_csv(path: Path, normalise: Callable[[str, str], str]) -> list[tuple[str, str]]:
    """A pair file: a header naming the ``from`` and ``to`` columns, then one source/target pair per row.

    Stray empty columns and a leading index column (pandas ``to_csv`` with its index) are ignored.
    """
    rows = list(csv.reader(io.StringIO("\n".join(read_text_lines(path)))))
    if not rows:
        raise InputError(path, "is empty; a pair file starts with the header from,to")
    header = [cell.strip().lower() for cell in rows[0]]
    if "from" not in header or "to" not in header:
        raise InputError(f"{path} line 1", f"must be the header from,to, got {','.join(rows[0])[:60]!r}")
    i_from, i_to = header.index("from"), header.index("to")
    pairs = []
    for lineno, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        source = f"{path} line {lineno}"
        if len(row) <= max(i_from, i_to):
            raise InputError(source, f"has {len(row)} column(s); expected a 'from' and a 'to' image name")
        names = row[i_from].strip(), row[i_to].strip()
        for name in names:
            if not is_image_name(name):
                raise InputError(source, f"{name[:60]!r} is not an image file name")
        pairs.append((normalise(names[0], source), normalise(names[1], source)))
    if not pairs:
        raise InputError(path, "holds no pairs after its header")
    return pairs


def find_file(directory: Path, names: Sequence[str], what: str, hint: str = "") -> Path:
    """The first of ``names`` present in ``directory``, or an InputError saying what is missing."""
    for name in names:
        if (directory / name).is_file():
            return directory / name
    also = f" (nor {', '.join(names[1:])})" if len(names) > 1 else ""
    raise InputError(directory, f"has no {names[0]}{also}, the {what}{hint}")

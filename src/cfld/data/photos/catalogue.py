"""A catalogue of person photos: a folder with one subfolder per person, or a CSV of ``photo,person`` rows.

Reading one checks it as a whole before anything is framed: every photo gets its prepared name
``<person>_<photo>.png``, and a catalogue is refused (one sentence) when it holds no photos, photos outside a
person folder, two photos that would get one name, one photo under two people, or a link leading out of it. A
photo that copies another of the same person is set aside as a duplicate.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import InputError
from ...images import PHOTO_SUFFIXES
from ...io import path_kind, read_text
from ..prepare import first_names


@dataclass(frozen=True)
class Photo:
    """One photo of the catalogue: the file, its path relative to the catalogue, its person, its prepared name."""

    path: Path
    source: str
    person: str
    name: str


@dataclass
class Catalogue:
    """Every photo of a catalogue, people in order, and what was set aside while reading it."""

    root: Path
    photos: list[Photo]
    duplicates: dict[str, str] = field(default_factory=dict)  # source -> the photo of the same person it copies
    digests: dict[str, str] = field(default_factory=dict)  # source -> SHA-1 of the file (what a record is of)
    notes: list[str] = field(default_factory=list)

    def by_person(self) -> dict[str, list[Photo]]:
        people: dict[str, list[Photo]] = {}
        for photo in self.photos:
            if photo.source not in self.duplicates:
                people.setdefault(photo.person, []).append(photo)
        return people


def safe_part(text: str) -> str:
    """``text`` in the letters a file name can hold anywhere: ASCII letters and digits, other runs become ``-``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9]+", "-", ascii_text).strip("-") or "x"


def prepared_name(person: str, within: str) -> str:
    """``<person>_<photo>.png``: the one underscore separates the person from the photo's path (without its
    suffix, folders joined by ``-``), so names never hold the ``_2_`` of ``cfld sample``'s result names."""
    return f"{safe_part(person)}_{safe_part(str(Path(within).with_suffix('')))}.png"


def photos_key(name: str, source: str = "name") -> str:
    """A prepared photo's name as the pair and annotation files give it (a folder in front is dropped)."""
    base = name.strip().replace("\\", "/").rsplit("/", 1)[-1]
    if not base.lower().endswith(PHOTO_SUFFIXES):
        raise InputError(source, f"{name!r} is not a prepared photo's name like alice_front.png")
    return base


def _is_photo(path: Path) -> bool:
    return path.suffix.lower() in PHOTO_SUFFIXES and not path.name.startswith(".")


def _inside(root: Path, path: Path) -> Path:
    """``path`` resolved; a link that leads outside ``root`` is refused."""
    real = path.resolve()
    if real != root and root not in real.parents:
        raise InputError(path, f"is a symbolic link to {real}, outside {root}; copy the photo into the folder "
                               "(a catalogue holds its own photos)")
    return real


def read_folder_catalogue(folder: str | os.PathLike) -> Catalogue:
    """The catalogue of ``folder``: one subfolder per person, photos at any depth below it."""
    root = Path(folder)
    kind = path_kind(root)
    if kind != "folder":
        raise InputError(root, "no such folder" if kind is None else f"is a {kind}, not a folder of people")
    root = root.resolve()
    try:
        entries = sorted((p for p in root.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)
    except OSError as error:
        raise InputError(root, f"cannot be read ({error.strerror or type(error).__name__})") from None
    loose = [p.name for p in entries if p.is_file() and _is_photo(p)]
    if loose:
        raise InputError(root, f"holds {len(loose)} photo(s) directly ({first_names(loose)}); put each person's photos "
                               "in a subfolder of their own (FOLDER/<person>/photo.jpg), or name each photo's person "
                               "in a CSV given with --people")
    photos: list[Photo] = []
    ignored: list[str] = []
    empty: list[str] = []
    linked: list[str] = []
    for entry in entries:
        if not entry.is_dir():
            continue
        _inside(root, entry)
        found = 0
        for dirpath, dirnames, filenames in os.walk(entry):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for dirname in dirnames:
                if (Path(dirpath) / dirname).is_symlink():
                    _inside(root, Path(dirpath) / dirname)  # refused when it leads out of the catalogue
                    linked.append((Path(dirpath) / dirname).relative_to(root).as_posix())  # else not followed
            for filename in sorted(filenames):
                path = Path(dirpath) / filename
                if filename.startswith("."):
                    continue
                if not _is_photo(path):
                    ignored.append(path.relative_to(root).as_posix())
                    continue
                _inside(root, path)
                within = path.relative_to(entry).as_posix()
                name = prepared_name(entry.name, within)
                photos.append(Photo(path, path.relative_to(root).as_posix(), entry.name, name))
                found += 1
        if not found:
            empty.append(entry.name)
    catalogue = Catalogue(root, photos)
    if ignored:
        catalogue.notes.append(f"{len(ignored)} file(s) that are not photos ({' '.join(PHOTO_SUFFIXES)}) were "
                               f"ignored: {first_names(ignored)}")
    if empty:
        catalogue.notes.append(f"{len(empty)} person folder(s) without photos: {first_names(empty)}")
    if linked:
        catalogue.notes.append(f"{len(linked)} linked folder(s) inside person folders were not followed (move the "
                               f"photos into the person's folder to include them): {first_names(linked)}")
    return _checked(catalogue)


def read_people_csv(path: str | os.PathLike, folder: str | os.PathLike | None = None) -> Catalogue:
    """The catalogue a CSV names: a header with ``photo`` and ``person`` columns, then one photo per row, its path
    relative to ``folder`` (default: the CSV's own folder)."""
    path = Path(path)
    if path_kind(path) != "file":
        raise InputError(path, "no such file (the --people CSV of photo,person)")
    root = Path(folder) if folder is not None else path.parent
    if path_kind(root) != "folder":
        raise InputError(root, "no such folder (the photos' folder, -i)")
    root = root.resolve()
    rows = list(csv.reader(io.StringIO(read_text(path, "people CSV"))))
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if "photo" not in header or "person" not in header:
        raise InputError(f"{path} line 1", "must be a header naming the columns photo and person (photo,person)")
    i_photo, i_person = header.index("photo"), header.index("person")
    photos, missing = [], []
    seen: dict[str, int] = {}
    for lineno, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path} line {lineno}"
        if len(row) <= max(i_photo, i_person) or not row[i_photo].strip() or not row[i_person].strip():
            raise InputError(where, "needs a photo and a person")
        given, person = row[i_photo].strip(), row[i_person].strip()
        file = root / given
        if not file.is_file():
            missing.append(given)
            continue
        real = _inside(root, file)
        source = real.relative_to(root).as_posix()
        if source in seen:
            raise InputError(where, f"names {given} again (first on line {seen[source]}); a photo belongs to one "
                                    "person")
        seen[source] = lineno
        if not _is_photo(file):
            raise InputError(where, f"{given} is not a photo ({' '.join(PHOTO_SUFFIXES)})")
        photos.append(Photo(real, source, person, prepared_name(person, source)))
    if missing:
        raise InputError(path, f"names {len(missing)} photo(s) that are not in {root}: {first_names(missing)}")
    return _checked(Catalogue(root, photos))


def _checked(catalogue: Catalogue) -> Catalogue:
    """Refuse an empty catalogue, two photos that would get one name, and one photo under two people; set aside a
    photo that copies another of the same person."""
    if not catalogue.photos:
        raise InputError(catalogue.root, "holds no photos; give a folder with one subfolder per person "
                                         "(FOLDER/<person>/photo.jpg), or a CSV of photo,person with --people")
    names: dict[str, Photo] = {}
    for photo in catalogue.photos:
        if photo.name in names:
            other = names[photo.name]
            raise InputError(catalogue.root, f"{other.source} and {photo.source} would both be prepared as "
                                             f"{photo.name}; rename one of them")
        names[photo.name] = photo
    digests: dict[str, Photo] = {}
    for photo in catalogue.photos:
        try:
            digest = hashlib.sha1(photo.path.read_bytes()).hexdigest()
        except OSError:
            continue  # reported as unreadable when it is read
        catalogue.digests[photo.source] = digest
        first = digests.setdefault(digest, photo)
        if first is photo:
            continue
        if first.person != photo.person:
            raise InputError(catalogue.root, f"{first.source} ({first.person}) and {photo.source} ({photo.person}) "
                                             "are the same photo under two people; a photo belongs to one person, "
                                             "or the split would show it in both train and test")
        catalogue.duplicates[photo.source] = first.source
    return catalogue

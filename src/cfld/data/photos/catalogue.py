"""A catalogue of person photos: a folder with one subfolder per person, or a CSV of ``photo,person`` rows.

Reading one checks it as a whole before anything is framed: every photo gets its prepared name
``<person>_<photo>.png`` (:mod:`.names`; a person's name is read in NFC), and a catalogue is refused (one
sentence) when it holds no photos, photos outside a person folder, two photos that would get one name (or two names
that differ only in case, one file on macOS and Windows), one photo under two people, or a link leading out of it.
A photo that copies another of the same person is set aside as a duplicate; a photo whose name is not text, or a
link that leads to no file (a loop, a missing target), is left out with its reason.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import InputError
from ...images import PHOTO_SUFFIXES
from ...io import path_kind, read_text
from ..prepare import first_names
from .names import fold, is_system_entry, is_text, nfc, prepared_name, shown


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
    left_out: list[tuple[str, str, str]] = field(default_factory=list)  # (reason, photo, sentence) set aside

    def by_person(self) -> dict[str, list[Photo]]:
        people: dict[str, list[Photo]] = {}
        for photo in self.photos:
            if photo.source not in self.duplicates:
                people.setdefault(photo.person, []).append(photo)
        return people


def photos_key(name: str, source: str = "name") -> str:
    """A prepared photo's name as the pair and annotation files give it (a folder in front is dropped)."""
    base = name.strip().replace("\\", "/").rsplit("/", 1)[-1]
    if not base.lower().endswith(PHOTO_SUFFIXES):
        raise InputError(source, f"{name!r} is not a prepared photo's name like alice_front.png")
    return base


def _is_photo(path: Path) -> bool:
    return path.suffix.lower() in PHOTO_SUFFIXES


def _inside(root: Path, path: Path) -> Path:
    """``path`` resolved; a link that leads outside ``root`` is refused."""
    real = path.resolve()
    if real != root and root not in real.parents:
        raise InputError(path, f"is a symbolic link to {real}, outside {root}; copy the photo into the folder "
                               "(a catalogue holds its own photos)")
    return real


def _link_problem(path: Path) -> str | None:
    """Why ``path``, a symbolic link, leads to no file (a loop of links, a target that is not there), or None."""
    if not path.is_symlink():
        return None
    try:
        path.resolve(strict=True)
    except FileNotFoundError:
        return f"is a symbolic link to {shown(os.path.realpath(path))}, which does not exist"
    except (OSError, RuntimeError):  # a loop: RuntimeError before Python 3.13, OSError (ELOOP) after
        return "is a symbolic link in a loop of links, which leads to no file"
    return None


@dataclass
class _Found:
    """What reading a folder catalogue finds besides its photos, for its notes."""

    photos: list[Photo] = field(default_factory=list)
    left_out: list[tuple[str, str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # files that are not photos
    hidden: list[str] = field(default_factory=list)  # photos whose names begin with a dot
    empty: list[str] = field(default_factory=list)  # person folders without photos
    linked: list[str] = field(default_factory=list)  # linked folders inside person folders, not followed
    nowhere: list[str] = field(default_factory=list)  # links in the top folder that lead to nothing
    unlisted: list[str] = field(default_factory=list)  # folders that cannot be listed
    twins: list[str] = field(default_factory=list)  # person folders named alike in two Unicode forms

    def notes(self) -> list[str]:
        said = [
            (self.ignored, f"file(s) that are not photos ({' '.join(PHOTO_SUFFIXES)}) were ignored"),
            (self.hidden, "photo(s) whose names begin with a dot were ignored as hidden (rename them to include "
                          "them)"),
            (self.empty, "person folder(s) without photos"),
            (self.linked, "linked folder(s) inside person folders were not followed (move the photos into the "
                          "person's folder to include them)"),
            (self.nowhere, "link(s) in the catalogue's folder lead to nothing (a loop, or a target not there) and were "
                           "ignored"),
            (self.unlisted, "folder(s) could not be read and were ignored"),
            (self.twins, "person folder(s) name one person in two Unicode forms (composed and decomposed) and are "
                         "prepared as one person"),
        ]
        return [f"{len(names)} {what}: {first_names(names)}" for names, what in said if names]


def read_folder_catalogue(folder: str | os.PathLike) -> Catalogue:
    """The catalogue of ``folder``: one subfolder per person, photos at any depth below it. Entries of the system
    or of tools (:func:`.names.is_system_entry`) are passed over; any other folder is a person, whatever its name
    (``.carol`` too); a photo whose name begins with a dot is noted and ignored."""
    root = Path(folder)
    kind = path_kind(root)
    if kind != "folder":
        raise InputError(root, "no such folder" if kind is None else f"is a {kind}, not a folder of people")
    root = root.resolve()
    try:
        entries = sorted((p for p in root.iterdir() if not is_system_entry(p.name, p.is_dir())),
                         key=lambda p: p.name)
    except OSError as error:
        raise InputError(root, f"cannot be read ({error.strerror or type(error).__name__})") from None
    loose = [shown(p.name) for p in entries if p.is_file() and _is_photo(p) and not p.name.startswith(".")]
    if loose:
        raise InputError(root, f"holds {len(loose)} photo(s) directly ({first_names(loose)}); put each person's photos "
                               "in a subfolder of their own (FOLDER/<person>/photo.jpg), or name each photo's person "
                               "in a CSV given with --people")
    found = _Found()
    people: dict[str, list[str]] = {}  # person -> the folders of that name (two: its NFC and NFD forms)
    for entry in entries:
        if entry.is_dir():
            _read_person(root, entry, found)
            people.setdefault(nfc(entry.name), []).append(shown(entry.name))
        elif not entry.exists():
            found.nowhere.append(shown(entry.name))
        elif entry.is_file() and _is_photo(entry):
            found.hidden.append(shown(entry.name))
    found.twins = [name for names in people.values() if len(names) > 1 for name in names]
    return _checked(Catalogue(root, found.photos, notes=found.notes(), left_out=found.left_out))


def _read_person(root: Path, entry: Path, found: _Found) -> None:
    """The photos of one person folder, at any depth, into ``found``."""
    _inside(root, entry)
    person = nfc(entry.name)
    count = 0
    for dirpath, dirnames, filenames in os.walk(entry, onerror=lambda error: found.unlisted.append(
            shown(Path(error.filename).relative_to(root).as_posix()))):
        dirnames[:] = sorted(d for d in dirnames if not is_system_entry(d, folder=True))
        for dirname in dirnames:
            if (Path(dirpath) / dirname).is_symlink():
                _inside(root, Path(dirpath) / dirname)  # refused when it leads out of the catalogue
                found.linked.append(shown((Path(dirpath) / dirname).relative_to(root).as_posix()))  # not followed
        for filename in sorted(filenames):
            path = Path(dirpath) / filename
            source = path.relative_to(root).as_posix()
            if is_system_entry(filename, folder=False):
                continue
            if not _is_photo(path):
                found.ignored.append(shown(source))
                continue
            if filename.startswith("."):
                found.hidden.append(shown(source))
                continue
            count += 1
            if not is_text(source):
                found.left_out.append(("unusable_name", shown(source), "its name holds bytes that are not UTF-8 "
                                                                       "text; rename it"))
            elif problem := _link_problem(path):
                found.left_out.append(("unreadable", source, problem))
            else:
                _inside(root, path)
                within = path.relative_to(entry).as_posix()
                found.photos.append(Photo(path, source, person, prepared_name(person, within)))
    if not count:
        found.empty.append(shown(entry.name))


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
    photos, missing, left_out = [], [], []
    seen: dict[str, int] = {}
    for lineno, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path} line {lineno}"
        if len(row) <= max(i_photo, i_person) or not row[i_photo].strip() or not row[i_person].strip():
            raise InputError(where, "needs a photo and a person")
        given, person = row[i_photo].strip(), nfc(row[i_person].strip())
        file = _as_on_disk(root, given)
        if problem := _link_problem(file):
            left_out.append(("unreadable", given, problem))
            continue
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
    return _checked(Catalogue(root, photos, left_out=left_out))


def _as_on_disk(root: Path, given: str) -> Path:
    """``root / given``; where that is not there, the path whose names are the same text in another Unicode form
    (a CSV written in NFC for a folder that macOS wrote in NFD, or the other way round)."""
    path = root / given
    if os.path.lexists(path):
        return path
    found = root
    for part in Path(given).parts:
        if os.path.lexists(found / part) or part in ("..", "."):
            found = found / part
            continue
        try:
            twins = [entry.name for entry in os.scandir(found) if nfc(entry.name) == nfc(part)]
        except OSError:
            return path
        if len(twins) != 1:
            return path
        found = found / twins[0]
    return found


def _checked(catalogue: Catalogue) -> Catalogue:
    """Refuse an empty catalogue, two photos that would get one name (where case is ignored too), and one photo
    under two people; set aside a photo that copies another of the same person."""
    if not catalogue.photos and not catalogue.left_out:
        raise InputError(catalogue.root, "holds no photos; give a folder with one subfolder per person "
                                         "(FOLDER/<person>/photo.jpg), or a CSV of photo,person with --people")
    names: dict[str, Photo] = {}
    for photo in catalogue.photos:
        if (other := names.setdefault(fold(photo.name), photo)) is not photo:
            raise InputError(catalogue.root, _clash(other, photo))
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


def _clash(first: Photo, other: Photo) -> str:
    """The sentence refusing two photos of one prepared name, or of two that differ only in case."""
    if first.name != other.name:
        return (f"{first.source} and {other.source} would be prepared as {first.name} and {other.name}, which differ "
                "only in case, so they would be one file on macOS and Windows; rename one of them")
    twins = nfc(first.source) == nfc(other.source)
    forms = " (one name in two Unicode forms, composed and decomposed)" if twins else ""
    return f"{first.source} and {other.source}{forms} would both be prepared as {other.name}; rename one of them"

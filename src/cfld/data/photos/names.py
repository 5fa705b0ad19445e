"""What a catalogue's names become: the prepared name ``<person>_<photo>.png`` of each photo, valid on the file
systems of Windows, macOS and Linux and distinct on them, and which entries of a catalogue are the system's own.

The rule is one for every script (see ``docs/catalogue.md``):

* a name is read in Unicode's composed form (NFC), so a name macOS wrote decomposed (NFD) is the same name;
* its letters, marks and digits of any script are kept, and outside ASCII its symbols (emoji) too; every other run
  of characters (spaces, punctuation, ``_``, controls, the ``<>:"/\\|?*`` Windows refuses) becomes one ``-``, none
  at either end, and a name with nothing left is ``x``. ASCII names come out as they always did (``anna b`` ->
  ``anna-b``); ``_`` separates the person from the photo and nothing else;
* a prepared name's stem holds at most :data:`STEM_BYTES` bytes of UTF-8, so that ``cfld sample``'s
  ``<source>_2_<target>.png`` and the temporary names of atomic writes stay within the 255 bytes a name may have:
  a longer part is cut on a character boundary (never between a letter and its marks) and ends in ``-`` and 8
  hex digits of its hash, so two cut names stay two names;
* every prepared name ends in ``.png`` and holds a ``_`` before it, so it never ends in a dot or a space and is
  never a name Windows reserves (``CON``, ``NUL``, ``COM1``, ``LPT1`` ..., with any extension);
* two names that differ only in case are one file on macOS and Windows (:func:`fold`): the catalogue checks them.
"""

from __future__ import annotations

import hashlib
import unicodedata
from pathlib import PurePosixPath

from ...io import is_temporary

STEM_BYTES = 100  # two stems in a sample result's name, plus a temporary name's 44 bytes, fit in 255
NAME_BYTES = 255  # what a name may hold on ext4, APFS and (in UTF-16 units, more than this) NTFS
JOINERS = "\u200c\u200d"  # zero-width non-joiner and joiner: part of Persian, Indic and emoji spellings
WINDOWS_FORBIDDEN = '<>:"/\\|?*'
WINDOWS_RESERVED = frozenset(["CON", "PRN", "AUX", "NUL", *(f"{device}{n}" for device in ("COM", "LPT")
                                                             for n in "0123456789¹²³")])
#: Entries that systems and tools make in a folder themselves (compared ignoring case), never photos or people.
SYSTEM_ENTRIES = frozenset(name.casefold() for name in (
    ".DS_Store", ".AppleDouble", ".AppleDB", ".AppleDesktop", ".Spotlight-V100", ".Trashes", ".Trash", ".fseventsd",
    ".TemporaryItems", ".DocumentRevisions-V100", ".VolumeIcon.icns", ".apdisk", ".localized", "__MACOSX",
    "Thumbs.db", "desktop.ini", "$RECYCLE.BIN", "System Volume Information", ".git", ".svn", ".hg", ".bzr", ".dvc",
    ".ipynb_checkpoints", ".thumbnails", ".picasaoriginals", ".picasa.ini", ".directory", ".nomedia", "@eaDir",
    ".@__thumb", "#recycle", ".dropbox.cache", ".cache"))


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def is_text(name: str) -> bool:
    """Whether ``name`` is text: a file name of bytes that are not UTF-8 reads as lone surrogates in Python."""
    return not any("\ud800" <= char <= "\udfff" for char in name)


def shown(name: str) -> str:
    """``name`` as it can be printed: bytes that are not UTF-8 as ``\\xNN``."""
    return name if is_text(name) else name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_system_entry(name: str, folder: bool) -> bool:
    """Whether an entry of a catalogue is a system's or a tool's own (:data:`SYSTEM_ENTRIES`, macOS's ``._``
    files, cfld's temporaries), passed over without a word."""
    folded = name.casefold()
    return (folded in SYSTEM_ENTRIES or folded.startswith(".trash-") or is_temporary(name)
            or (not folder and name.startswith("._")))


def _kept(char: str) -> bool:
    if char.isascii():
        return char.isalnum()
    return unicodedata.category(char)[0] in "LMNS" or char in JOINERS


def safe_part(text: str) -> str:
    """``text`` as part of a prepared name: NFC, its letters, marks, digits (and symbols outside ASCII) kept, every
    other run one ``-`` (see the module docstring)."""
    runs = "".join(char if _kept(char) else " " for char in nfc(text)).split()
    return "-".join(run for run in (run.strip(JOINERS) for run in runs) if run) or "x"


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _breaks_before(text: str, i: int) -> bool:
    """Whether ``text`` may be cut before ``text[i]``: not before a mark, a joiner, an emoji's skin tone or the
    second half of a flag, nor after a joiner."""
    char = text[i]
    if unicodedata.category(char)[0] == "M" or char in JOINERS or text[i - 1] in JOINERS:
        return False
    if "\U0001f3fb" <= char <= "\U0001f3ff":
        return False
    flags = 0
    while i - flags > 0 and "\U0001f1e6" <= text[i - flags - 1] <= "\U0001f1ff":
        flags += 1
    return not ("\U0001f1e6" <= char <= "\U0001f1ff" and flags % 2)


def cut(part: str, limit: int) -> str:
    """``part`` within ``limit`` bytes of UTF-8: as it is when it fits, else its longest beginning that ends on a
    character boundary and leaves room for ``-`` and 8 hex digits of the whole part's SHA-1."""
    if _size(part) <= limit:
        return part
    room, used, end = limit - 9, 0, 0
    for i, char in enumerate(part):
        used += _size(char)
        if used > room:
            break
        if i + 1 < len(part) and _breaks_before(part, i + 1):
            end = i + 1
    digest = hashlib.sha1(part.encode("utf-8")).hexdigest()[:8]
    return f"{part[:end].rstrip('-')}-{digest}".lstrip("-")


def prepared_name(person: str, within: str) -> str:
    """``<person>_<photo>.png``: the one underscore separates the person from the photo's path (without its
    suffix, folders joined by ``-``), so names never hold the ``_2_`` of ``cfld sample``'s result names; the stem
    holds at most :data:`STEM_BYTES` bytes (the longer part cut first)."""
    person_part = safe_part(person)
    photo_part = safe_part(str(PurePosixPath(within).with_suffix("")))
    left = STEM_BYTES - 1
    if _size(person_part) + _size(photo_part) > left:
        half = left // 2
        if _size(person_part) <= half:
            photo_part = cut(photo_part, left - _size(person_part))
        elif _size(photo_part) <= half:
            person_part = cut(person_part, left - _size(photo_part))
        else:
            person_part, photo_part = cut(person_part, half), cut(photo_part, left - half)
    return f"{person_part}_{photo_part}.png"


def fold(name: str) -> str:
    """``name`` as file systems that ignore case compare it (NTFS's simple upper case; APFS's is close): two names
    of one fold are one file on macOS and Windows."""
    return "".join(upper if len(upper := char.upper()) == 1 else char for char in nfc(name))


def portable_problem(name: str) -> str | None:
    """Why ``name`` is not a file name Windows, macOS and Linux all take as it is, or None."""
    if not is_text(name):
        return "holds bytes that are not UTF-8 text"
    if name in ("", ".", ".."):
        return "is not a file name"
    if bad := sorted({char for char in name if char in WINDOWS_FORBIDDEN or unicodedata.category(char) == "Cc"}):
        return f"holds {' '.join(map(repr, bad))}, which Windows refuses in a file name"
    if name[-1] in ". ":
        return "ends in a dot or a space, which Windows drops"
    if name.split(".", 1)[0].rstrip(" ").upper() in WINDOWS_RESERVED:
        return "is a device name Windows reserves, whatever its extension"
    if _size(name) > NAME_BYTES:
        return f"holds {_size(name)} bytes, more than the {NAME_BYTES} a file name may have"
    if nfc(name) != name:
        return "is not in Unicode's composed form (NFC)"
    return None

"""Reading what a user hands us: text, JSON and YAML with a size limit, refusing deep nesting, NaN/Infinity
literals and YAML alias bombs; every parser complaint becomes one line naming the file, the line and the fault."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError, one_line

MAX_TEXT_BYTES = 256 * 2**20  # the largest annotation file of the datasets is ~10 MB
MAX_NODES = 1_000_000  # values in one JSON/YAML document after YAML aliases are expanded
MAX_DEPTH = 100  # nesting of one JSON/YAML document: our formats need fewer than 10 levels


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
        where = f"at line {error.lineno}, column {error.colno}"
        raise InputError(source, f"is not valid JSON ({error.msg} {where})") from None
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

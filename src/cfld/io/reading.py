"""Reading what a user hands us: text, JSON and YAML with a size limit, refusing deep nesting, NaN/Infinity
literals and YAML anchors and aliases; every parser complaint becomes one line naming the file, the line and the
fault."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError, format_size, one_line

MAX_TEXT_BYTES = 256 * 2**20  # the largest annotation file of the datasets is ~10 MB
MAX_NODES = 1_000_000  # values in one JSON document
MAX_DEPTH = 100  # nesting of one JSON/YAML document: our formats need fewer than 10 levels
MAX_CONFIG_BYTES = 2**20  # a config a user writes (a YAML/JSON training recipe: ~2 kB; the original config.yaml: ~3 kB)
MAX_CONFIG_VALUES = 20_000  # values in one YAML config: ours hold under 100, the original config.yaml ~300
MAX_NUMBER_CHARS = 100  # characters of one YAML number: the largest any option takes (eval_seed) has 19 digits
ANCHORS_REFUSED = "uses YAML anchors/aliases (&a / *a){where}, which cfld configs do not allow"


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
            raise InputError(path, f"is {format_size(size)}, more than the {format_size(limit)} a {what} may be")
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


class YAMLSyntaxError(InputError):
    """The text is not YAML at all (a parser complaint), as opposed to YAML that cfld refuses to read."""


class _Refused(Exception):
    """What :class:`ConfigLoader` refuses: ``problem`` with ``{where}`` (the line and column) and ``{what}``."""

    def __init__(self, problem: str, mark: Any):
        super().__init__(problem)
        self.problem, self.mark = problem, mark


class ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (plain data, never Python objects) that refuses, while the document is composed and so
    before anything is expanded or built: anchors and aliases (a "billion laughs" document is nine lines), nesting
    deeper than :data:`MAX_DEPTH` (PyYAML composes recursively), more than :data:`MAX_CONFIG_VALUES` values, and
    numbers longer than :data:`MAX_NUMBER_CHARS` characters."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.depth, self.values = 0, 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(ANCHORS_REFUSED, event.start_mark)
        self.values += 1
        if self.values > MAX_CONFIG_VALUES:
            raise _Refused(f"holds more than {MAX_CONFIG_VALUES:,} values; that is not a {{what}}", None)
        if self.depth > MAX_DEPTH:
            raise _Refused(f"is nested more than {MAX_DEPTH} levels deep{{where}}; that is not a {{what}}",
                           event.start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_bounded_int(self, node: yaml.ScalarNode) -> int:
        if len(node.value) > MAX_NUMBER_CHARS:
            raise _Refused(f"holds a number {len(node.value):,} characters long{{where}}; no option of a {{what}} "
                          "takes one that long", node.start_mark)
        return self.construct_yaml_int(node)


ConfigLoader.add_constructor("tag:yaml.org,2002:int", ConfigLoader.construct_bounded_int)
# a date-like value (a folder named 2024-01-01) stays the text it is: no option of a config is a date
ConfigLoader.add_constructor("tag:yaml.org,2002:timestamp", ConfigLoader.construct_yaml_str)


def parse_yaml(text: str, source: object, what: str = "YAML file") -> Any:
    """YAML text read with :class:`ConfigLoader`, then checked by :func:`check_document`; a parser complaint is one
    :class:`YAMLSyntaxError`, YAML that cfld refuses one :class:`InputError`, each naming ``source`` and the
    line and column."""
    loader = ConfigLoader(text)
    try:
        data = loader.get_single_data()
    except _Refused as refusal:
        raise InputError(source, refusal.problem.format(where=_where(refusal.mark), what=what)) from None
    except yaml.MarkedYAMLError as error:
        problem = " ".join(str(error.problem or error.context or "syntax error").split())
        raise YAMLSyntaxError(source, f"is not valid YAML ({problem}{_where(error.problem_mark)})") from None
    except RecursionError:
        raise InputError(source, f"is nested too deeply to be a {what}") from None
    except yaml.YAMLError as error:
        raise YAMLSyntaxError(source, f"is not valid YAML ({one_line(error)})") from None
    finally:
        loader.dispose()
    check_document(data, source, what)
    return data


def _where(mark: Any) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def read_yaml(path: str | os.PathLike, what: str = "YAML file", limit: int = MAX_CONFIG_BYTES) -> Any:
    """A YAML file a user gave (a config: at most ``limit`` bytes), parsed by :func:`parse_yaml`, or one clear
    InputError naming it."""
    return parse_yaml(read_text(path, what, limit), path, what)


_PLAIN = (str, int, float, bool, type(None), list, dict)


def check_document(data: Any, source: object, what: str) -> None:
    """Refuse a parsed document nested deeper than :data:`MAX_DEPTH`, holding more than :data:`MAX_NODES`
    values (never walking more than that), or holding anything but JSON's plain values (YAML sets, binary) and
    text keys. (YAML anchors and aliases never get here: :class:`ConfigLoader` refuses them while composing.)"""
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

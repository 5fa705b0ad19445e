"""Checks of the values in configs that users write, hand on or download: types, ranges, finiteness.

Configs are data. Every entry is checked before anything is built or written, and a wrong one is one
:class:`~cfld.errors.InputError` naming the file and the entry (``lr must be a positive number, got 'fast'``)
instead of a traceback from deep inside torch or diffusers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .errors import InputError


def shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fail(source: object, name: str, wanted: str, value: Any) -> InputError:
    return InputError(source, f"{name} must be {wanted}, got {shown(value)}")


def _number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def _range(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" from {_number(low)} to {_number(high)}"
    if low is not None:
        return f" of at least {_number(low)}"
    if high is not None:
        return f" of at most {_number(high)}"
    return ""


def check_int(value: Any, name: str, source: object, low: int | None = None, high: int | None = None) -> int:
    """A whole number (not a bool, not a string) in ``[low, high]``."""
    if not isinstance(value, int) or isinstance(value, bool) or (low is not None and value < low) or (
            high is not None and value > high):
        raise _fail(source, name, "a whole number" + _range(low, high), value)
    return int(value)


def check_float(value: Any, name: str, source: object, low: float | None = None, high: float | None = None,
                low_open: bool = False) -> float:
    """A finite number in ``[low, high]`` (``(low, high]`` with ``low_open``); YAML's ``5e-7`` string accepted."""
    if isinstance(value, str):  # YAML 1.1 reads 5e-7 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            raise _fail(source, name, "a number", value) from None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        if low_open:
            wanted = f"a finite number above {low:g}" + (f" and at most {high:g}" if high is not None else "")
        else:
            wanted = "a finite number" + _range(low, high)
        raise _fail(source, name, wanted, value)
    return float(value)


def check_bool(value: Any, name: str, source: object) -> bool:
    if not isinstance(value, bool):
        raise _fail(source, name, "true or false", value)
    return value


def check_str(value: Any, name: str, source: object, choices: Sequence[str] | None = None) -> str:
    if not isinstance(value, str) or (choices is not None and value not in choices):
        raise _fail(source, name, "one of " + ", ".join(choices) if choices else "a string", value)
    return value


def check_ints(value: Any, name: str, source: object, length: int | None = None, low: int | None = 1,
               high: int | None = None) -> tuple[int, ...]:
    """A list of whole numbers (``length`` of them, if given), each in ``[low, high]``."""
    wanted = (f"a list of {length} whole numbers" if length else "a list of whole numbers") + _range(low, high)
    if not isinstance(value, (list, tuple)) or (length is not None and len(value) != length) or not value:
        raise _fail(source, name, wanted, value)
    for item in value:
        if not isinstance(item, int) or isinstance(item, bool) or (low is not None and item < low) or (
                high is not None and item > high):
            raise _fail(source, name, wanted, value)
    return tuple(int(v) for v in value)


def check_floats(value: Any, name: str, source: object, length: int, low: float | None = None,
                 high: float | None = None) -> tuple[float, ...]:
    wanted = f"a list of {length} finite numbers" + _range(low, high)
    if not isinstance(value, (list, tuple)) or len(value) != length:
        raise _fail(source, name, wanted, value)
    try:
        return tuple(check_float(v, name, source, low, high) for v in value)
    except InputError:
        raise _fail(source, name, wanted, value) from None


def check_mapping(value: Any, name: str, source: object) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise _fail(source, name, "a mapping of names to values", value)
    return value

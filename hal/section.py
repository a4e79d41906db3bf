"""Device config sections: each backend declares its keys once; config check and builders share it.

A backend module exposes ``KEYS: dict[str, Key]`` and ``build(values, ctx)``. :func:`read_section`
checks one ``[evse.<device>]`` table against ``KEYS`` and returns the values with defaults filled
in, plus problems written as ``<path>.<key>: <what is wrong>`` for a field engineer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REQUIRED = object()


@dataclass(frozen=True)
class Key:
    """One key of a device section: its type, default (``REQUIRED`` if none), allowed values."""

    type: type | tuple[type, ...]
    default: Any = REQUIRED
    choices: tuple[Any, ...] | None = None
    doc: str = ""
    min: float | None = None
    max: float | None = None


def _type_name(t: type | tuple[type, ...]) -> str:
    if isinstance(t, tuple):
        if set(t) == {int, float}:
            return "a number"
        return " or ".join(_type_name(x) for x in t)
    return {"str": "a string", "int": "a whole number", "bool": "true or false", "float": "a number",
            "list": "a list", "dict": "a table"}.get(t.__name__, t.__name__)


def read_section(section: dict[str, Any], keys: dict[str, Key], path: str) -> tuple[dict[str, Any], list[str]]:
    """Check ``section`` (one device table, ``kind`` included) against ``keys``."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    for name, value in section.items():
        if name == "kind":
            continue
        key = keys.get(name)
        if key is None:
            known = ", ".join(["kind", *sorted(keys)])
            problems.append(f"{path}.{name}: unknown key (known: {known})")
            continue
        want = key.type if isinstance(key.type, tuple) else (key.type,)
        if (isinstance(value, bool) and bool not in want) or not isinstance(value, want):
            if float in want and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            else:
                problems.append(f"{path}.{name}: must be {_type_name(key.type)}, got {value!r}")
                continue
        if key.choices is not None and value not in key.choices:
            problems.append(f"{path}.{name}: must be one of {', '.join(map(str, key.choices))}, got {value!r}")
            continue
        if key.min is not None and value < key.min or key.max is not None and value > key.max:
            problems.append(f"{path}.{name}: must be between {key.min} and {key.max}, got {value!r}")
            continue
        values[name] = value
    for name, key in keys.items():
        if name in values:
            continue
        if key.default is REQUIRED:
            if not any(p.startswith(f"{path}.{name}:") for p in problems):
                problems.append(f"{path}.{name}: missing (required for this kind)")
        else:
            values[name] = key.default
    return values, problems

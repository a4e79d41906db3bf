"""Validation of OCPP payloads against the official JSON schemas shipped with the ``ocpp`` package.

Errors are raised as ``ocpp.exceptions`` classes carrying the CallError code that the OCPP-J
specification of the version asks for, with a message naming the offending field.

Beyond the schemas' own rules: an action name is looked up in the version's known actions
(:data:`KNOWN_ACTIONS`) before any file or cache is touched (so a name like
``../../v201/schemas/ResetRequest`` or one of 1,000 characters is NotImplemented, and the
validator caches hold one entry per real schema); ``format: date-time`` is checked (RFC 3339,
:func:`is_date_time`); integers are 32-bit and decimals finite and of sane magnitude
(:data:`INT_MAX`, :data:`DECIMAL_MAX`); a payload nested deeper than :data:`MAX_DEPTH` is a
FormationViolation without recursing into it.
"""

from __future__ import annotations

import decimal
import json
import math
import re
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import ocpp
from jsonschema import Draft4Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError as SchemaValidationError
from ocpp.exceptions import (
    FormationViolationError,
    FormatViolationError,
    NotImplementedError,
    OccurenceConstraintViolationError,
    OCPPError,
    PropertyConstraintViolationError,
    ProtocolError,
    TypeConstraintViolationError,
)

try:  # a compiled validator for the common case (valid payloads); jsonschema explains the invalid ones
    import fastjsonschema
except ImportError:  # pragma: no cover - optional speed-up
    fastjsonschema = None

SCHEMA_ROOT = Path(ocpp.__file__).parent
INT_MIN, INT_MAX = -(2**31), 2**31 - 1  # OCPP "integer": 32 bit (31 bit resolution, 1 sign bit)
DECIMAL_MAX = 2.0**31  # no OCPP decimal (a limit in A or W, a cost) comes near; beyond is absurd
MAX_DEPTH = 32  # JSON nesting of one payload; the deepest OCPP 1.6 / 2.0.1 payload needs about 8
_ACTION = re.compile(r"[A-Za-z0-9]{1,64}", re.ASCII)


def _actions(version: str) -> frozenset[str]:
    """The actions of ``version``: those with a request and a response schema in the ``ocpp`` package."""
    folder = SCHEMA_ROOT / ("v" + version.replace(".", "")) / "schemas"
    names = {p.stem for p in folder.glob("*.json")} if folder.is_dir() else set()
    request = "" if version == "1.6" else "Request"
    return frozenset(n[: -len("Response")] for n in names
                     if n.endswith("Response") and n[: -len("Response")] + request in names
                     and _ACTION.fullmatch(n[: -len("Response")]))


KNOWN_ACTIONS: dict[str, frozenset[str]] = {v: _actions(v) for v in ("1.6", "2.0.1")}


def is_known_action(version: str, action: object) -> bool:
    """True for an action name ``version`` defines; only these ever reach the file system or a cache."""
    return isinstance(action, str) and action in KNOWN_ACTIONS.get(version, frozenset())


# -- formats and number ranges -------------------------------------------------------------------
_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})",
                        re.ASCII)


def is_date_time(value: object) -> bool:
    """RFC 3339 date-time (what OCPP's ``format: date-time`` means): a real date and time with
    its offset (``Z`` or ``+hh:mm``; upper-case ``T`` and ``Z`` only), which converts to UTC.
    ``yesterday``, ``2026-02-30T00:00:00Z`` or a time without offset are not. Non-strings pass
    (the ``type`` keyword judges them)."""
    if not isinstance(value, str):
        return True
    if _DATE_TIME.fullmatch(value) is None:
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except (ValueError, OverflowError):
        return False
    return True


_FORMATS = FormatChecker(formats=())
_FORMATS.checks("date-time")(is_date_time)


def _number_problem(value: object) -> str | None:
    """Why a JSON number is out of OCPP's range (None when it is fine or not a number)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if INT_MIN <= value <= INT_MAX else "integer beyond 32 bits"
    if isinstance(value, float | decimal.Decimal):
        if not math.isfinite(value):
            return "not a finite number"
        return None if abs(value) <= DECIMAL_MAX else f"absurd magnitude (more than {DECIMAL_MAX:.0f})"
    return None


def _show(value: object) -> str:
    text = str(value) if isinstance(value, decimal.Decimal) else repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def _type(validator: Draft4Validator, types: object, instance: object, schema: dict):  # noqa: ANN202
    """``type``, plus OCPP's ranges: a 32-bit integer (TypeConstraintViolation beyond), a finite
    decimal of sane magnitude (infinite: TypeConstraintViolation; huge: PropertyConstraintViolation)."""
    errors = list(Draft4Validator.VALIDATORS["type"](validator, types, instance, schema))
    if errors:
        yield from errors
        return
    problem = _number_problem(instance)
    if problem is not None:
        kind = "range" if isinstance(instance, int) or not math.isfinite(instance) else "magnitude"  # type: ignore[arg-type]
        yield SchemaValidationError(f"{_show(instance)} is out of range: {problem}", validator=kind)


def _multiple_of(validator: Draft4Validator, dB: object, instance: object, schema: dict):  # noqa: ANN202, N803
    try:
        yield from Draft4Validator.VALIDATORS["multipleOf"](validator, dB, instance, schema)
    except (ArithmeticError, ValueError, TypeError):  # Decimal('1E+308') % Decimal('0.1'): beyond the precision
        yield SchemaValidationError(f"{_show(instance)} is not a multiple of {dB}")


_Validator = validators.extend(Draft4Validator, {"type": _type, "multipleOf": _multiple_of})
_NoRangeValidator = validators.extend(Draft4Validator, {"multipleOf": _multiple_of})  # our own payloads


def _schema_path(version: str, name: str) -> Path:
    return SCHEMA_ROOT / ("v" + version.replace(".", "")) / "schemas" / f"{name}.json"


@cache  # keyed by known actions only (see validate): bounded by twice the number of schema files
def _validator(version: str, name: str, ranges: bool = True) -> tuple[Draft4Validator, bool] | None:
    path = _schema_path(version, name)
    if not path.exists():
        return None
    text = path.read_text(encoding="utf-8-sig")
    schema = json.loads(text, parse_float=decimal.Decimal)
    kind = _Validator if ranges else _NoRangeValidator
    return kind(schema, format_checker=_FORMATS), "multipleOf" in text


@cache  # keyed by known actions only
def _fast_validator(version: str, name: str):  # noqa: ANN202 - a generated function
    """A fastjsonschema validator for ``name``, or None (not installed, or a schema with multipleOf,
    whose exact decimal semantics only the jsonschema path keeps). It may only be stricter than
    jsonschema (it checks date-time with :func:`is_date_time`, as jsonschema does here), never more
    lenient: whatever it refuses goes to jsonschema. Payloads with a number out of OCPP's ranges
    never take this path (it does not know them)."""
    if fastjsonschema is None:
        return None
    path = _schema_path(version, name)
    if not path.exists():
        return None
    text = path.read_text(encoding="utf-8-sig")
    if "multipleOf" in text:
        return None
    try:
        return fastjsonschema.compile(json.loads(text), use_default=False, formats={"date-time": is_date_time})
    except Exception:  # pragma: no cover - a schema it cannot compile: jsonschema alone
        return None


def schema_name(version: str, action: str, result: bool) -> str:
    if result:
        return action + "Response"
    return action + ("Request" if version != "1.6" else "")


def has_schema(version: str, action: str) -> bool:
    return is_known_action(version, action)


def shape_problem(payload: object, max_depth: int = MAX_DEPTH) -> tuple[str, bool] | None:
    """Walk ``payload`` (iteratively, so any depth is safe): (problem, out_of_range) for a payload
    nested deeper than ``max_depth`` (out_of_range False) or holding a number out of OCPP's ranges
    (True); None when neither."""
    stack: list[tuple[object, int]] = [(payload, 1)]
    found = None
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > max_depth:
                return f"nested deeper than {max_depth} levels", False
            stack.extend((v, depth + 1) for v in (node.values() if isinstance(node, dict) else node))
        elif found is None and _number_problem(node) is not None:
            found = (f"{_show(node)}: {_number_problem(node)}", True)
    return found


def validate(version: str, action: str, payload: object, result: bool = False, ranges: bool = True) -> None:
    """Raise an OCPPError whose ``code`` is the right CallError code when ``payload`` is invalid.
    An action ``version`` does not define is NotImplemented before any file or cache is touched.
    ``ranges`` False: numbers are not held to OCPP's ranges (our own payloads: a meter past
    2^31 Wh must still be reported, never make the station refuse to send its StartTransaction)."""
    if not is_known_action(version, action):
        shown = action[:40] + "..." if isinstance(action, str) and len(action) > 40 else action
        raise NotImplementedError(description=f"action {shown!r} is not implemented")
    name = schema_name(version, action, result)
    found = _validator(version, name, ranges)
    if found is None:
        raise NotImplementedError(description=f"action {action} is not implemented")
    shape = shape_problem(payload)
    if shape is not None and shape[1] and not ranges:
        shape = None
    if shape is not None and not shape[1]:
        formation = FormationViolationError if version == "1.6" else FormatViolationError
        raise formation(description=f"payload: {shape[0]}")
    fast = _fast_validator(version, name) if shape is None else None
    if fast is not None:
        try:
            fast(payload)
            return
        except Exception:
            pass  # jsonschema decides, and names the problem
    validator, decimals = found
    if decimals:
        payload = json.loads(json.dumps(payload), parse_float=decimal.Decimal)
    try:
        validator.validate(payload)
    except SchemaValidationError as e:
        raise to_ocpp_error(version, e) from None


def to_ocpp_error(version: str, e: SchemaValidationError) -> OCPPError:
    where = "/".join(str(p) for p in e.absolute_path)[:80] or "payload"
    message = e.message if len(e.message) <= 160 else e.message[:160] + "..."
    text = f"{where}: {message}"
    formation = FormationViolationError if version == "1.6" else FormatViolationError
    if e.validator == "required":
        if version == "1.6":
            return ProtocolError(description=text)
        return OccurenceConstraintViolationError(description=text) if version != "1.6" else ProtocolError(description=text)
    if e.validator in ("type", "range", "format"):  # range: beyond a 32-bit integer or not finite
        return TypeConstraintViolationError(description=text)
    if e.validator == "magnitude":  # a finite decimal of absurd size: a valid type, an invalid value
        return PropertyConstraintViolationError(description=text)
    if e.validator in ("maxLength", "minLength"):
        return TypeConstraintViolationError(description=text) if version == "1.6" else formation(description=text)
    if e.validator in ("enum", "minimum", "maximum", "multipleOf", "minItems", "maxItems"):
        if e.validator in ("minItems", "maxItems") and version != "1.6":
            return OccurenceConstraintViolationError(description=text)
        return PropertyConstraintViolationError(description=text)
    return formation(description=text)

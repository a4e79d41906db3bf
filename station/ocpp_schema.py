"""Validation of OCPP payloads against the official JSON schemas shipped with the ``ocpp`` package.

Errors are raised as ``ocpp.exceptions`` classes carrying the CallError code that the OCPP-J
specification of the version asks for, with a message naming the offending field.
"""

from __future__ import annotations

import decimal
import json
from functools import cache
from pathlib import Path

import ocpp
from jsonschema import Draft4Validator
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


@cache
def _validator(version: str, name: str) -> tuple[Draft4Validator, bool] | None:
    folder = SCHEMA_ROOT / ("v" + version.replace(".", "")) / "schemas"
    path = folder / f"{name}.json"
    if not path.exists():
        return None
    text = path.read_text(encoding="utf-8-sig")
    schema = json.loads(text, parse_float=decimal.Decimal)
    return Draft4Validator(schema), "multipleOf" in text


@cache
def _fast_validator(version: str, name: str):  # noqa: ANN202 - a generated function
    """A fastjsonschema validator for ``name``, or None (not installed, or a schema with multipleOf,
    whose exact decimal semantics only the jsonschema path keeps). It may only be stricter than
    jsonschema (it also checks formats), never more lenient: whatever it refuses goes to jsonschema."""
    if fastjsonschema is None:
        return None
    path = SCHEMA_ROOT / ("v" + version.replace(".", "")) / "schemas" / f"{name}.json"
    if not path.exists():
        return None
    text = path.read_text(encoding="utf-8-sig")
    if "multipleOf" in text:
        return None
    try:
        return fastjsonschema.compile(json.loads(text), use_default=False)
    except Exception:  # pragma: no cover - a schema it cannot compile: jsonschema alone
        return None


def schema_name(version: str, action: str, result: bool) -> str:
    if result:
        return action + "Response"
    return action + ("Request" if version != "1.6" else "")


def has_schema(version: str, action: str) -> bool:
    return _validator(version, schema_name(version, action, False)) is not None


def validate(version: str, action: str, payload: object, result: bool = False) -> None:
    """Raise an OCPPError whose ``code`` is the right CallError code when ``payload`` is invalid."""
    found = _validator(version, schema_name(version, action, result))
    if found is None:
        raise NotImplementedError(description=f"action {action} is not implemented")
    fast = _fast_validator(version, schema_name(version, action, result))
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
    where = "/".join(str(p) for p in e.absolute_path) or "payload"
    text = f"{where}: {e.message}"
    formation = FormationViolationError if version == "1.6" else FormatViolationError
    if e.validator == "required":
        if version == "1.6":
            return ProtocolError(description=text)
        return OccurenceConstraintViolationError(description=text) if version != "1.6" else ProtocolError(description=text)
    if e.validator in ("type",):
        return TypeConstraintViolationError(description=text)
    if e.validator in ("maxLength", "minLength"):
        return TypeConstraintViolationError(description=text) if version == "1.6" else formation(description=text)
    if e.validator in ("enum", "minimum", "maximum", "multipleOf", "minItems", "maxItems"):
        if e.validator in ("minItems", "maxItems") and version != "1.6":
            return OccurenceConstraintViolationError(description=text)
        return PropertyConstraintViolationError(description=text)
    return formation(description=text)

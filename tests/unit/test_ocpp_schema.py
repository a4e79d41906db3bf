"""station/ocpp_schema.py: the compiled fast path must never accept what jsonschema refuses, and the
errors (CallError code and description) must be the same as with jsonschema alone."""

from __future__ import annotations

import copy
import json

import pytest
from ocpp.exceptions import (
    FormationViolationError,
    NotImplementedError,
    PropertyConstraintViolationError,
    TypeConstraintViolationError,
)

from station import ocpp_schema

SCHEMAS = sorted((ocpp_schema.SCHEMA_ROOT / "v16" / "schemas").glob("*.json"))


ROOT: dict = {}


def resolve(schema: dict) -> dict:
    while "$ref" in schema:  # only local references: "#/definitions/Name"
        node: object = ROOT
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]  # type: ignore[index]
        schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}  # type: ignore[dict-item]
    return schema


def example(schema: dict) -> object:
    """A valid instance: every property filled in, first enum value, shortest useful values."""
    schema = resolve(schema)
    if "enum" in schema:
        return schema["enum"][0]
    t = schema.get("type")
    if t == "object":
        return {k: example(v) for k, v in schema.get("properties", {}).items()}
    if t == "array":
        return [example(schema.get("items", {}))] * max(1, schema.get("minItems", 1))
    if t == "string":
        return "2026-01-01T00:00:00.000Z" if schema.get("format") == "date-time" else "x"
    if t == "integer":
        return max(1, schema.get("minimum", 1))
    if t == "number":
        return 1.5 if "multipleOf" not in schema else 1
    if t == "boolean":
        return True
    return None


def mutations(schema: dict, value: object, path: tuple = ()) -> list[tuple[str, object]]:
    """Payload changes that (mostly) break the schema, each with a label."""
    out: list[tuple[str, object]] = []
    schema = resolve(schema)
    t = schema.get("type")
    if t == "object" and isinstance(value, dict):
        out.append(("unknown property", (path, {**value, "zzUnknown": 1})))
        for k in schema.get("required", []):
            out.append((f"missing {k}", (path, {x: y for x, y in value.items() if x != k})))
        for k, sub in schema.get("properties", {}).items():
            out += mutations(sub, value[k], (*path, k))
    elif t == "array" and isinstance(value, list):
        out.append(("empty list", (path, [])))
        out.append(("not a list", (path, {"a": 1})))
        out += mutations(schema.get("items", {}), value[0], (*path, 0))
    else:
        out.append(("wrong type", (path, [1])))
        if "enum" in schema:
            out.append(("not in enum", (path, "NotAnEnumValue")))
        if "maxLength" in schema:
            out.append(("too long", (path, "y" * (schema["maxLength"] + 1))))
        if t == "string":
            out.append(("a number", (path, 5)))
            out.append(("bad date", (path, "yesterday")))
        if t in ("integer", "number"):
            out.append(("float", (path, 1.25)))
            out.append(("bool", (path, True)))
            out.append(("string", (path, "1")))
            out.append(("negative", (path, -1)))
    return out


def apply(doc: object, path: tuple, new: object) -> object:
    if not path:
        return new
    doc = copy.deepcopy(doc)
    cur = doc
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = new
    return doc


def outcome(version: str, action: str, payload: object, result: bool) -> tuple[str, str] | None:
    try:
        ocpp_schema.validate(version, action, payload, result=result)
    except Exception as e:
        return type(e).__name__, str(getattr(e, "description", e))
    return None


@pytest.mark.skipif(ocpp_schema.fastjsonschema is None, reason="fastjsonschema is not installed")
@pytest.mark.parametrize("path", SCHEMAS, ids=[p.stem for p in SCHEMAS])
def test_fast_path_agrees_with_jsonschema(path, monkeypatch):
    name = path.stem
    result = name.endswith("Response")
    action = name[: -len("Response")] if result else name
    schema = json.loads(path.read_text(encoding="utf-8-sig"))
    ROOT.clear()
    ROOT.update(schema)
    valid = example(schema)
    cases = [("example", valid), ("empty", {}), ("not an object", [1])]
    cases += [(label, apply(valid, p, new)) for label, (p, new) in mutations(schema, valid)]
    with_fast = [outcome("1.6", action, payload, result) for _, payload in cases]
    monkeypatch.setattr(ocpp_schema, "fastjsonschema", None)
    ocpp_schema._fast_validator.cache_clear()
    try:
        without = [outcome("1.6", action, payload, result) for _, payload in cases]
    finally:
        ocpp_schema._fast_validator.cache_clear()
    assert with_fast[0] is None, f"the generated example should be valid: {with_fast[0]}"
    for (label, _), a, b in zip(cases, with_fast, without, strict=True):
        assert a == b, label


def test_fast_path_is_used_for_the_hot_answers():
    if ocpp_schema.fastjsonschema is None:
        pytest.skip("fastjsonschema is not installed")
    assert ocpp_schema._fast_validator("1.6", "GetConfigurationResponse") is not None
    assert ocpp_schema._fast_validator("1.6", "SetChargingProfile") is None  # multipleOf: jsonschema only


# -- issue 8: names, formats, ranges ----------------------------------------------------------------
def test_known_actions_come_from_the_schemas():
    v16 = ocpp_schema.KNOWN_ACTIONS["1.6"]
    assert {"Reset", "BootNotification", "ChangeConfiguration", "StartTransaction"} <= v16
    assert "ResetRequest" not in v16 and "Reset" in ocpp_schema.KNOWN_ACTIONS["2.0.1"]
    assert "TransactionEvent" not in v16 and "TransactionEvent" in ocpp_schema.KNOWN_ACTIONS["2.0.1"]


@pytest.mark.parametrize("value,ok", [
    ("2030-01-01T00:00:00Z", True), ("2030-01-01T00:00:00.5Z", True), ("2030-01-01T00:00:00.123456789+05:30", True),
    ("2030-01-01T00:00:00-01:00", True), ("9999-12-31T23:59:59Z", True),
    ("yesterday", False), ("", False), ("2030-01-01", False), ("2030-01-01T00:00:00", False),  # no offset
    ("2030-02-30T00:00:00Z", False), ("2030-01-01T24:00:00Z", False), ("2030-01-01 00:00:00Z", False),
    ("9999-12-31T23:59:59-01:00", False),  # beyond year 9999 in UTC
    ("٢٠٣٠-01-01T00:00:00Z", False), ("2030-01-01T00:00:00Z\n", False), ("0000-01-01T00:00:00Z", False),
])
def test_date_time_format(value, ok):
    assert ocpp_schema.is_date_time(value) is ok


@pytest.mark.parametrize("fast", [True, False])
def test_date_time_checked_on_both_paths(fast, monkeypatch):
    """The fast path used to refuse 'yesterday' and hand it to jsonschema, which did not check formats."""
    if not fast:
        monkeypatch.setattr(ocpp_schema, "fastjsonschema", None)
    ocpp_schema._fast_validator.cache_clear()
    try:
        with pytest.raises(TypeConstraintViolationError, match="date-time"):
            ocpp_schema.validate("1.6", "Heartbeat", {"currentTime": "yesterday"}, result=True)
        ocpp_schema.validate("1.6", "Heartbeat", {"currentTime": "2030-01-01T00:00:00Z"}, result=True)
    finally:
        ocpp_schema._fast_validator.cache_clear()


@pytest.mark.parametrize("value,error", [
    (2**31 - 1, None), (-(2**31), None), (2**31, TypeConstraintViolationError), (2**63, TypeConstraintViolationError),
    (-(2**31) - 1, TypeConstraintViolationError),
])
def test_integers_are_32_bit(value, error):
    payload = {"connectorId": value, "type": "Inoperative"}
    if error is None:
        ocpp_schema.validate("1.6", "ChangeAvailability", payload)
    else:
        with pytest.raises(error, match="32 bits"):
            ocpp_schema.validate("1.6", "ChangeAvailability", payload)


def charging_profile(limit: object = 6, min_rate: object = None) -> dict:
    schedule = {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}
    if min_rate is not None:
        schedule["minChargingRate"] = min_rate
    return {"connectorId": 1, "csChargingProfiles": {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose":
            "TxDefaultProfile", "chargingProfileKind": "Absolute", "chargingSchedule": schedule}}


@pytest.mark.parametrize("payload,error", [
    (charging_profile(min_rate=1e308), PropertyConstraintViolationError),
    (charging_profile(limit=1e20), PropertyConstraintViolationError),
    (charging_profile(limit=float("inf")), TypeConstraintViolationError),
    (charging_profile(limit=float("nan")), TypeConstraintViolationError),
    (charging_profile(limit=6.05), PropertyConstraintViolationError),  # multipleOf 0.1
    (charging_profile(limit=16.1, min_rate=6.2), None),
])
def test_decimals_are_finite_and_sane(payload, error):
    """minChargingRate 1e308 passed (or gave InternalError from the decimal multipleOf check)."""
    if error is None:
        ocpp_schema.validate("1.6", "SetChargingProfile", payload)
    else:
        with pytest.raises(error):
            ocpp_schema.validate("1.6", "SetChargingProfile", payload)


def test_deep_payload_is_a_formation_violation_without_recursion():
    deep: object = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(FormationViolationError, match="nested deeper"):
        ocpp_schema.validate("1.6", "DataTransfer", {"vendorId": "x", "data": deep})


def test_unknown_action_is_not_implemented_and_not_cached():
    before = ocpp_schema._validator.cache_info().currsize
    for name in ("../../v201/schemas/ResetRequest", "X" * 1000, "Nope"):
        with pytest.raises(NotImplementedError):
            ocpp_schema.validate("1.6", name, {})
    assert ocpp_schema._validator.cache_info().currsize == before

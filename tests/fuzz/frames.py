"""A seeded generator of hostile and schema-mutated OCPP-J frames, each with the answer it must get.

Every :class:`Case` is one websocket message a CSMS could send, and what the station must do with
it: ``DROP`` (no answer at all), a set of acceptable CallError codes, or ``ANSWER`` (a valid Call:
a CallResult that passes the response schema, or NotSupported / NotImplemented).

Two families:

- schema mutations (:func:`mutated`): a random *valid* payload for an action (built from the JSON
  schemas in the ``ocpp`` package: required and random optional fields, strings of random
  characters within maxLength, real RFC 3339 date-times, enums, 32-bit integers, multiples of
  0.1), then exactly one violation at a random place: a required field missing, an unknown
  field, a wrong type, a string too long, a value not in the enum, an integer beyond 32 bits, a
  number below its minimum, 1e308 / 1e400 / NaN, a bad date-time, an empty or too long list, a
  deep nesting. The expected code comes from the kind of violation (:data:`CODES`, the OCPP-J
  CallError table of the version), not from the validator under test.
- hostile frames (:func:`hostile`): no JSON, binary, nested 1,000 deep, unknown or float message
  types, message ids that are too long or no string, action names that are paths or 1,000
  characters, responses to no call, NaN, a Call of the wrong shape.

The generator is deterministic for a seed (``random.Random``), so a failure names its seed and
index and can be replayed.
"""

from __future__ import annotations

import copy
import json
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from station import ocpp_schema

DROP = "drop"
ANSWER = "answer"

# the CallError code each kind of violation gets, per OCPP-J version (station.rpc / station.ocpp_schema)
CODES = {
    "1.6": {"required": "ProtocolError", "additional": "FormationViolation", "type": "TypeConstraintViolation",
            "maxLength": "TypeConstraintViolation", "enum": "PropertyConstraintViolation",
            "minimum": "PropertyConstraintViolation", "maximum": "PropertyConstraintViolation",
            "multipleOf": "PropertyConstraintViolation", "minItems": "PropertyConstraintViolation",
            "maxItems": "PropertyConstraintViolation", "format": "TypeConstraintViolation",
            "range": "TypeConstraintViolation", "magnitude": "PropertyConstraintViolation",
            "notjson": "FormationViolation", "deep": "FormationViolation", "callshape": "FormationViolation",
            "unknown_action": "NotImplemented", "unknown_type": None, "no_id": None},
    "2.0.1": {"required": "OccurrenceConstraintViolation", "additional": "FormatViolation",
              "type": "TypeConstraintViolation", "maxLength": "FormatViolation", "enum": "PropertyConstraintViolation",
              "minimum": "PropertyConstraintViolation", "maximum": "PropertyConstraintViolation",
              "multipleOf": "PropertyConstraintViolation", "minItems": "OccurrenceConstraintViolation",
              "maxItems": "OccurrenceConstraintViolation", "format": "TypeConstraintViolation",
              "range": "TypeConstraintViolation", "magnitude": "PropertyConstraintViolation",
              "notjson": "FormatViolation", "deep": "FormatViolation", "callshape": "RpcFrameworkError",
              "unknown_action": "NotImplemented", "unknown_type": "MessageTypeNotSupported", "no_id": "RpcFrameworkError"},
}

# Calls a CSMS sends to a station (the rest of the known actions go the other way; DataTransfer both)
STATION_BOUND = {
    "1.6": ["CancelReservation", "CertificateSigned", "ChangeAvailability", "ChangeConfiguration", "ClearCache",
            "ClearChargingProfile", "DataTransfer", "DeleteCertificate", "ExtendedTriggerMessage", "GetCompositeSchedule",
            "GetConfiguration", "GetDiagnostics", "GetInstalledCertificateIds", "GetLocalListVersion", "GetLog",
            "InstallCertificate", "RemoteStartTransaction", "RemoteStopTransaction", "ReserveNow", "Reset",
            "SendLocalList", "SetChargingProfile", "SignedUpdateFirmware", "TriggerMessage", "UnlockConnector",
            "UpdateFirmware"],
    "2.0.1": ["CancelReservation", "CertificateSigned", "ChangeAvailability", "ClearCache", "ClearChargingProfile",
              "ClearDisplayMessage", "ClearVariableMonitoring", "CostUpdated", "CustomerInformation", "DataTransfer",
              "DeleteCertificate", "GetBaseReport", "GetChargingProfiles", "GetCompositeSchedule", "GetDisplayMessages",
              "GetInstalledCertificateIds", "GetLocalListVersion", "GetLog", "GetMonitoringReport", "GetReport",
              "GetTransactionStatus", "GetVariables", "InstallCertificate", "RequestStartTransaction",
              "RequestStopTransaction", "ReserveNow", "Reset", "SendLocalList", "SetChargingProfile",
              "SetDisplayMessage", "SetMonitoringBase", "SetMonitoringLevel", "SetNetworkProfile",
              "SetVariableMonitoring", "SetVariables", "TriggerMessage", "UnlockConnector", "UnpublishFirmware",
              "UpdateFirmware"],
}

# valid Calls that change nothing a later charging session needs (a storm against a live station
# sends valid frames of these only; the others only in broken form, which must not be acted on)
HARMLESS = {
    "1.6": ["GetConfiguration", "ChangeConfiguration", "DataTransfer", "GetLocalListVersion", "ClearCache",
            "CancelReservation", "RemoteStopTransaction", "ClearChargingProfile", "GetCompositeSchedule",
            "GetInstalledCertificateIds", "TriggerMessage"],
    "2.0.1": ["GetVariables", "DataTransfer", "GetLocalListVersion", "ClearCache", "CancelReservation",
              "GetTransactionStatus", "GetChargingProfiles", "GetInstalledCertificateIds"],
}

_E400 = "\u0001E400"  # a marker replaced by the JSON number 1e400 (a float overflow: infinity) in the text


@dataclass(frozen=True)
class Case:
    """One message and what must come back: DROP, ANSWER, or any of ``codes`` for ``uid``."""

    text: str | bytes
    uid: str | None  # the id an answer would carry (None: nothing can be answered)
    expect: str  # DROP | ANSWER | "error"
    codes: frozenset[str] = frozenset()
    label: str = ""
    action: str = ""


def _folder(version: str) -> Path:
    return ocpp_schema.SCHEMA_ROOT / ("v" + version.replace(".", "")) / "schemas"


def _schema(version: str, action: str) -> dict:
    name = action + ("" if version == "1.6" else "Request")
    return json.loads((_folder(version) / f"{name}.json").read_text(encoding="utf-8-sig"))


SCHEMA_NAMES = {v: frozenset(p.stem for p in _folder(v).glob("*.json")) for v in ("1.6", "2.0.1")}


class Generator:
    """Random valid payloads and their mutations for one OCPP version."""

    def __init__(self, version: str, seed: int) -> None:
        self.version = version
        self.rng = random.Random(seed)
        self.schemas = {a: _schema(version, a) for a in STATION_BOUND[version]}
        self.codes = CODES[version]
        self._n = 0

    # -- ids and text ----------------------------------------------------------------------------
    def uid(self) -> str:
        self._n += 1
        return f"fz{self._n}"

    def text(self, max_len: int) -> str:
        rng = self.rng
        n = rng.choice([0, 1, 2, 5, 10, max_len]) if max_len else rng.randrange(0, 30)
        n = min(n, max_len) if max_len else n
        alphabet = rng.choice([string.ascii_letters + string.digits, string.printable, "\"\\/'\n\r\t\x00\x1b{}[],:",
                               "äöüßéèñ€中文字😀\u2028\u2029\u200b"])
        return "".join(rng.choice(alphabet) for _ in range(n))

    def date_time(self) -> str:
        rng = self.rng
        tz = rng.choice(["Z", "+00:00", "+05:30", "-08:00"])
        frac = rng.choice(["", ".1", ".123", ".123456"])
        return (f"{rng.randrange(2000, 2100):04d}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T"
                f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}{frac}{tz}")

    # -- schemas ---------------------------------------------------------------------------------
    @staticmethod
    def resolve(root: dict, node: dict) -> dict:
        while "$ref" in node:
            target: Any = root
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            node = target
        return node

    def valid(self, root: dict, node: dict) -> object:
        node = self.resolve(root, node)
        rng = self.rng
        if "enum" in node:
            return rng.choice(node["enum"])
        t = node.get("type")
        if t == "object":
            props = node.get("properties", {})
            required = set(node.get("required", []))
            out = {k: self.valid(root, v) for k, v in props.items() if k in required or rng.random() < 0.5}
            if node.get("additionalProperties", True) is not False and rng.random() < 0.2:
                out["x" + self.text(8)] = self.text(10)
            return out
        if t == "array":
            lo = max(node.get("minItems", 0), 0)
            hi = min(node.get("maxItems", 3), lo + 3)
            return [self.valid(root, node.get("items", {})) for _ in range(rng.randint(lo, max(lo, hi)))]
        if t == "string":
            if node.get("format") == "date-time":
                return self.date_time()
            if node.get("format") == "uri":
                return "ftp://127.0.0.1/" + "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randrange(1, 9)))
            return self.text(node.get("maxLength", 0))
        if t == "integer":
            lo = node.get("minimum", rng.choice([0, -5]))
            hi = node.get("maximum", rng.choice([10, 1000, 2**31 - 1]))
            return rng.randint(int(lo), int(hi))
        if t == "number":
            if "multipleOf" in node:
                return rng.randrange(0, 100_000) / 10
            lo = node.get("minimum", 0)
            return round(lo + rng.random() * 1000, rng.choice([0, 1, 3]))
        if t == "boolean":
            return rng.random() < 0.5
        return self.text(10)  # no type (2.0.1 DataTransfer data): anything

    def sites(self, root: dict, node: dict, value: object, path: tuple = ()) -> Iterator[tuple[tuple, object, set[str]]]:
        """Every single violation that can be put at each place of ``value``: (path, new value, kinds)."""
        node = self.resolve(root, node)
        t = node.get("type")
        deep: object = "x"
        for _ in range(40):
            deep = [deep]
        if path:
            yield path, deep, {"deep"}
        if "enum" in node:
            yield path, "NotAnEnumValue" + self.text(3), {"enum"}
            yield path, self.rng.choice([5, True, None, ["x"]]), {"type", "enum"}
            return
        if t == "object" and isinstance(value, dict):
            for k in node.get("required", []):
                yield path, {x: y for x, y in value.items() if x != k}, {"required"}
            if node.get("additionalProperties", True) is False:
                yield path, {**value, "zzUnknown" + self.text(3): 1}, {"additional"}
            if path:
                yield path, self.rng.choice(["x", 5, [], None]), {"type"}
            props = node.get("properties", {})
            for k, v in value.items():
                if k in props:
                    yield from self.sites(root, props[k], v, (*path, k))
        elif t == "array" and isinstance(value, list):
            yield path, self.rng.choice([{}, "x", 5]), {"type"}
            if node.get("minItems", 0) >= 1:
                yield path, [], {"minItems"}
            if 0 < node.get("maxItems", 10**9) <= 50 and value:
                yield path, [value[0]] * (node["maxItems"] + 1), {"maxItems"}
            for i, item in enumerate(value[:2]):
                yield from self.sites(root, node.get("items", {}), item, (*path, i))
        elif t == "string":
            yield path, self.rng.choice([5, True, None, ["x"], {"a": 1}]), {"type"}
            if "maxLength" in node:
                yield path, "y" * (node["maxLength"] + 1 + self.rng.choice([0, 1000])), {"maxLength"}
            if node.get("format") == "date-time":
                for bad in ("yesterday", "2026-02-30T00:00:00Z", "2026-01-01T00:00:00", "2026-01-01", "",
                            "2026-01-01T25:00:00Z", "2026-01-01T00:00:00Z\n", "9999-12-31T23:59:59-01:00"):
                    yield path, bad, {"format"}
        elif t == "integer":
            yield path, self.rng.choice(["1", 1.5, True, None, [1]]), {"type"}
            extra = {"maximum"} if "maximum" in node else set()
            yield path, self.rng.choice([2**31, 2**63, 10**30]), {"range"} | extra
            if "minimum" in node and node["minimum"] - 1 >= -(2**31):
                yield path, int(node["minimum"]) - 1, {"minimum"}  # some schemas say "minimum": 0.0
        elif t == "number":
            yield path, self.rng.choice(["1", True, None]), {"type"}
            yield path, self.rng.choice([1e308, -1e300, 1e20]), {"magnitude", "multipleOf", "minimum"}
            yield path, _E400, {"range", "multipleOf"}
            yield path, float("nan"), {"notjson"}
            if "multipleOf" in node:
                yield path, 6.05, {"multipleOf"}
            if "minimum" in node:
                yield path, node["minimum"] - 1, {"minimum"}
        elif t == "boolean":
            yield path, self.rng.choice(["true", 1, None]), {"type"}

    # -- cases -----------------------------------------------------------------------------------
    def call(self, uid: str, action: str, payload: object, pretty: bool = False) -> str:
        """The Call's text; ``pretty``: line breaks and tabs between the tokens (still one valid frame)."""
        separators = (",\r\n\t", " :\n ") if pretty else None
        text = json.dumps([2, uid, action, payload], ensure_ascii=self.rng.random() < 0.5, separators=separators)
        return text.replace(json.dumps(_E400), "1e400")

    def valid_case(self, action: str | None = None) -> Case:
        action = action or self.rng.choice(STATION_BOUND[self.version])
        root = self.schemas[action]
        uid = self.uid()
        return Case(self.call(uid, action, self.valid(root, root)), uid, ANSWER, label="valid", action=action)

    def mutated(self, action: str | None = None, pretty: bool = False) -> Case:
        action = action or self.rng.choice(STATION_BOUND[self.version])
        root = self.schemas[action]
        payload = self.valid(root, root)
        sites = list(self.sites(root, root, payload))
        path, new, kinds = self.rng.choice(sites)
        uid = self.uid()
        if not path:
            doc: object = new
        else:
            doc = copy.deepcopy(payload)
            cur: Any = doc
            for p in path[:-1]:
                cur = cur[p]
            cur[path[-1]] = new
        codes = frozenset(c for k in kinds if (c := self.codes[k]) is not None)
        label = f"{'/'.join(map(str, path)) or 'payload'}: {'|'.join(sorted(kinds))}"
        return Case(self.call(uid, action, doc, pretty), uid, "error", codes, label, action)

    def hostile(self) -> Case:
        """One frame that breaks OCPP-J itself."""
        rng, codes, v = self.rng, self.codes, self.version
        uid = self.uid()
        no_id = codes["no_id"]

        def unreadable(text: str | bytes, label: str) -> Case:
            return Case(text, "-1" if no_id else None, "error" if no_id else DROP, frozenset({no_id} if no_id else ()), label)

        def error(text: str, kind: str, label: str, the_id: str = uid) -> Case:
            code = codes[kind]
            return Case(text, the_id, "error" if code else DROP, frozenset({code} if code else ()), label)

        choice = rng.randrange(17)
        action = rng.choice(STATION_BOUND[v])
        if choice == 0:
            return unreadable(rng.choice(["", " ", "not json", "{", "[2, \"x\"", "\x00", "nul", "[2,,]", "'a'"]), "no JSON")
        if choice == 1:
            return unreadable(rng.choice([b"", b"\xff\xfe", json.dumps([2, uid, "ClearCache", {}]).encode()]), "binary")
        if choice == 2:
            d = rng.choice([33, 1000, 5000, 100_000])
            return error(f'[2, "{uid}", "{action}", {{"a": {"[" * d}{"]" * d}}}]', "deep", f"nested {d}")
        if choice == 3:
            return unreadable("[" * rng.choice([1000, 50_000]), "deep garbage")
        if choice == 4:
            kind = rng.choice([0, 1, 5, 7, 9, -1, 2**40, 2.0, 3.0, 4.0, "2", True, False, None, [2], {"a": 2}])
            return error(json.dumps([kind, uid, action, {}]), "unknown_type", f"message type {kind!r}")
        if choice == 5:
            return unreadable(json.dumps([2, "i" * rng.choice([37, 100, 10_000]), "ClearCache", {}]), "id too long")
        if choice == 6:
            return unreadable(json.dumps([2, rng.choice([17, None, [], {}, "", True, 1.5]), "ClearCache", {}]), "id not a string")
        if choice == 7:
            bad = rng.choice(["../../v201/schemas/ResetRequest", "../v16/schemas/Reset", "A" * 1000, "reset", "RESET",
                              "Reset\n", "Reset ", "", "Heartbeat\u0000", "ResetRequest", "TransactionEvent",
                              "StartTransaction2", "/etc/passwd", "C:\\x", "Ｒｅｓｅｔ", self.text(50) or "x"])
            if bad in SCHEMA_NAMES[v] and v == "1.6" or bad + "Request" in SCHEMA_NAMES[v]:
                bad += "X"
            return error(json.dumps([2, uid, bad, {}]), "unknown_action", "unknown action")
        if choice == 8:
            frame = rng.choice([[2, uid, action], [2, uid, action, {}, {}], [2, uid, 5, {}], [2, uid, None, {}],
                                [2, uid, action, []], [2, uid, action, "x"], [2, uid, action, None], [2, uid]])
            return error(json.dumps(frame), "callshape", "call shape")
        if choice == 9:
            frame = rng.choice([[3, uid, {}], [3, uid, {"currentTime": "x"}], [4, uid, "GenericError", "", {}],
                                [4, uid, "X" * 1000, "\n" * 10, None], [3, uid], [4, uid]])
            return Case(json.dumps(frame), uid, DROP, label="response to no call")
        if choice == 10:
            lit = rng.choice(["NaN", "Infinity", "-Infinity"])
            return error(f'[2, "{uid}", "ChangeAvailability", {{"connectorId": {lit}, "type": "Inoperative"}}]',
                         "notjson", lit) if v == "1.6" else error(
                f'[2, "{uid}", "Reset", {{"type": "Immediate", "evseId": {lit}}}]', "notjson", lit)
        if choice == 11:
            return unreadable(rng.choice(["null", "true", "5", '"text"', "{}", '{"a": [2]}', "[]"]), "not an array")
        if choice == 12:  # whitespace and line breaks between tokens are fine JSON: a normal call
            case = self.mutated(action, pretty=True)
            return Case(case.text, case.uid, case.expect, case.codes, "whitespace + " + case.label, case.action)
        if choice == 13:  # very long string values
            s = "z" * rng.choice([300, 70_000])
            if v == "1.6":
                return error(json.dumps([2, uid, "ChangeAvailability", {"connectorId": 1, "type": s}]), "enum", "long enum")
            return error(json.dumps([2, uid, "Reset", {"type": s}]), "enum", "long enum")
        if choice == 14:  # the other version's action name
            other = "TransactionEvent" if v == "1.6" else "RemoteStartTransaction"
            return error(json.dumps([2, uid, other, {}]), "unknown_action", "other version's action")
        if choice == 15:  # a huge integer that is not even a Python int (over 4300 digits): no JSON for Python
            return unreadable(f'[2, "{uid}", "ClearCache", {{"a": {"9" * 5000}}}]', "huge integer")
        return self.mutated()

    def cases(self, count: int, valid: float = 0.1, hostile: float = 0.3,
              valid_actions: list[str] | None = None) -> Iterator[Case]:
        """``count`` cases: about ``valid`` of them valid Calls (of ``valid_actions``), ``hostile``
        OCPP-J breakers, the rest schema mutations of every station-bound action in turn."""
        actions = STATION_BOUND[self.version]
        for i in range(count):
            r = self.rng.random()
            if r < valid:
                yield self.valid_case(self.rng.choice(valid_actions or actions))
            elif r < valid + hostile:
                yield self.hostile()
            else:
                yield self.mutated(actions[i % len(actions)])


def describe(case: Case) -> str:
    text = case.text if isinstance(case.text, str) else repr(case.text)
    return f"{case.label} [{case.action}] {text[:300]!r}"

"""station.rpc on plain frames: OCPP-J framing, validation, one call in flight, the CallError dialects."""

from __future__ import annotations

import json

import pytest
from ocpp.exceptions import NotSupportedError, OCPPError

from station import rpc
from station.rpc import CallInFlight, RpcConnection


def frame(text: str | None) -> list:
    assert text is not None
    return json.loads(text)


# -- our calls ---------------------------------------------------------------------------------
def test_call_text_and_its_result():
    c = RpcConnection("1.6", first_id=41)
    uid, text = c.call("Heartbeat", {})
    assert uid == "42" and frame(text) == [2, "42", "Heartbeat", {}]
    ev = c.receive(json.dumps([3, "42", {"currentTime": "2030-01-01T00:00:00Z"}]))
    assert ev == rpc.ResultReceived("42", "Heartbeat", {"currentTime": "2030-01-01T00:00:00Z"})
    assert c.pending is None
    uid2, _ = c.call("Heartbeat", {})
    assert uid2 == "43"


def test_one_call_in_flight():
    c = RpcConnection("1.6")
    c.call("Heartbeat", {})
    with pytest.raises(CallInFlight):
        c.call("StatusNotification", {"connectorId": 0, "errorCode": "NoError", "status": "Available"})
    c.forget_call()
    c.call("StatusNotification", {"connectorId": 0, "errorCode": "NoError", "status": "Available"})


def test_invalid_call_payload_of_ours_is_refused_before_sending():
    c = RpcConnection("1.6")
    with pytest.raises(OCPPError, match="errorCode"):
        c.call("StatusNotification", {"connectorId": 0})
    assert c.pending is None


def test_call_error_for_our_call():
    c = RpcConnection("1.6", first_id=0)
    c.call("Heartbeat", {})
    ev = c.receive(json.dumps([4, "1", "NotSupported", "no", {"a": 1}]))
    assert ev == rpc.ErrorReceived("1", "Heartbeat", "NotSupported", "no", {"a": 1})
    assert c.pending is None


@pytest.mark.parametrize("raw", [[3, "other", {}], [4, "other", "GenericError", "", {}]])
def test_response_with_another_id_is_ignored_and_our_call_still_waits(raw):
    c = RpcConnection("1.6", first_id=0)
    c.call("Heartbeat", {})
    ev = c.receive(json.dumps(raw))
    assert isinstance(ev, rpc.ResponseIgnored) and ev.unique_id == "other"
    assert c.pending is not None and c.pending.unique_id == "1"


def test_late_response_after_forget_is_ignored():
    c = RpcConnection("1.6", first_id=0)
    c.call("Heartbeat", {})
    c.forget_call()  # timed out
    assert isinstance(c.receive(json.dumps([3, "1", {"currentTime": "x"}])), rpc.ResponseIgnored)


def test_call_result_that_is_not_an_object_fails_the_call():
    c = RpcConnection("2.0.1", first_id=0)
    c.call("Heartbeat", {})
    ev = c.receive(json.dumps([3, "1", None]))
    assert isinstance(ev, rpc.ErrorReceived) and ev.code == "FormatViolation"


@pytest.mark.parametrize(
    "action,payload,answer,code",
    [
        ("Heartbeat", {}, {}, "ProtocolError"),
        ("Heartbeat", {}, {"currentTime": "yesterday"}, "TypeConstraintViolation"),
        ("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "2030-01-01T00:00:00Z"},
         {"transactionId": "abc", "idTagInfo": {"status": "Accepted"}}, "TypeConstraintViolation"),
        ("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "2030-01-01T00:00:00Z"},
         {"transactionId": None, "idTagInfo": {"status": "Accepted"}}, "TypeConstraintViolation"),
        ("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "2030-01-01T00:00:00Z"},
         {"transactionId": 2**63, "idTagInfo": {"status": "Accepted"}}, "TypeConstraintViolation"),
        ("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "2030-01-01T00:00:00Z"},
         {"transactionId": 1, "idTagInfo": "Accepted"}, "TypeConstraintViolation"),
        ("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"},
         {"status": "Accepted", "currentTime": "2030-01-01T00:00:00Z", "interval": "abc"}, "TypeConstraintViolation"),
        ("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"},
         {"status": "Pending", "currentTime": "2030-01-01T00:00:00Z", "interval": 10**400}, "TypeConstraintViolation"),
        ("Authorize", {"idTag": "T"}, {"idTagInfo": {"status": "Fine"}}, "PropertyConstraintViolation"),
    ],
)
def test_call_result_breaking_the_schema_is_an_error_with_the_problem_named(action, payload, answer, code):
    """The CSMS's answer to our call is validated: a schema-invalid one is said as a CallError
    (its code names the violation) so the caller keeps its message and tries again."""
    c = RpcConnection("1.6", first_id=0)
    c.call(action, payload)
    ev = c.receive(json.dumps([3, "1", answer]))
    assert isinstance(ev, rpc.ErrorReceived) and ev.invalid_result, ev
    assert ev.code == code and ev.action == action and ev.result == answer
    assert f"CSMS's {action} response breaks the schema" in ev.description
    assert c.pending is None


def test_a_call_error_is_not_an_invalid_result():
    c = RpcConnection("1.6", first_id=0)
    c.call("Heartbeat", {})
    assert not c.receive(json.dumps([4, "1", "InternalError", "", {}])).invalid_result  # type: ignore[union-attr]


# -- calls of the CSMS -------------------------------------------------------------------------
def test_call_received_and_answered_once():
    c = RpcConnection("1.6")
    ev = c.receive('[2, "c1", "Reset", {"type": "Hard"}]')
    assert ev == rpc.CallReceived("c1", "Reset", {"type": "Hard"})
    assert c.unanswered == 1
    assert frame(c.result("c1", {"status": "Accepted"})) == [3, "c1", {"status": "Accepted"}]
    assert c.unanswered == 0
    with pytest.raises(KeyError):
        c.result("c1", {"status": "Accepted"})


def test_our_invalid_result_is_refused_and_the_call_stays_open_for_an_error():
    c = RpcConnection("1.6")
    c.receive('[2, "c1", "Reset", {"type": "Hard"}]')
    with pytest.raises(rpc.InvalidResult, match="Reset response"):
        c.result("c1", {"status": "Maybe"})
    err = frame(c.error("c1", "InternalError", "bug"))
    assert err == [4, "c1", "InternalError", "bug", {}]
    assert c.unanswered == 0


def test_error_for_an_ocpp_error_and_long_description_is_cut():
    c = RpcConnection("1.6")
    c.receive('[2, "c1", "Reset", {"type": "Hard"}]')
    err = frame(c.error_for("c1", NotSupportedError(description="x" * 400, details={"k": 1})))
    assert err[:3] == [4, "c1", "NotSupported"] and len(err[3]) == 255 and err[4] == {"k": 1}


@pytest.mark.parametrize(
    "version,raw,code",
    [
        ("1.6", '[2, "c1", "ChangeAvailability", {"type": "Inoperative"}]', "ProtocolError"),
        ("1.6", '[2, "c1", "Reset", {"type": "Gentle"}]', "PropertyConstraintViolation"),
        ("1.6", '[2, "c1", "Reset", {"type": "Hard", "x": 1}]', "FormationViolation"),
        ("1.6", '[2, "c1", "FlyToTheMoon", {}]', "NotImplemented"),
        ("2.0.1", '[2, "c1", "Reset", {"type": "Immediate", "x": 1}]', "FormatViolation"),
        ("2.0.1", '[2, "c1", "Reset", {}]', "OccurrenceConstraintViolation"),  # ocpp_schema says Occurence...
        ("2.0.1", '[2, "c1", "Reset", {"type": "Later"}]', "PropertyConstraintViolation"),
    ],
)
def test_schema_invalid_call_gets_the_versions_code(version, raw, code):
    c = RpcConnection(version)
    ev = c.receive(raw)
    assert isinstance(ev, rpc.FrameRejected)
    err = frame(ev.reply)
    assert err[0] == 4 and err[1] == "c1" and err[2] == code and err[3]
    assert c.unanswered == 0


# -- frames that break OCPP-J ------------------------------------------------------------------
UNREADABLE = ["not json", '{"a": 1}', "[]", "[2]", '[2, 17, "Heartbeat", {}]', "null", '[2, "", "Heartbeat", {}]',
              b"\xff\xfe"]


@pytest.mark.parametrize("raw", UNREADABLE)
def test_16_frame_without_message_id_is_dropped(raw):
    ev = RpcConnection("1.6").receive(raw)
    assert isinstance(ev, rpc.FrameRejected) and ev.reply is None and ev.reason


@pytest.mark.parametrize("raw", UNREADABLE)
def test_201_frame_without_message_id_gets_rpc_framework_error(raw):
    ev = RpcConnection("2.0.1").receive(raw)
    assert isinstance(ev, rpc.FrameRejected)
    err = frame(ev.reply)
    assert err[:3] == [4, "-1", "RpcFrameworkError"]


@pytest.mark.parametrize("raw", ['[2, "c1", "Heartbeat"]', '[2, "c1", "Reset", ["Hard"]]', '[2, "c1", 5, {}]'])
@pytest.mark.parametrize("version,code", [("1.6", "FormationViolation"), ("2.0.1", "RpcFrameworkError")])
def test_malformed_call(raw, version, code):
    ev = RpcConnection(version).receive(raw)
    assert isinstance(ev, rpc.FrameRejected) and frame(ev.reply)[:3] == [4, "c1", code]


@pytest.mark.parametrize("kind", [7, 5, 0, -2, "2", True, 2.0, 3.0, None, [2]])
def test_16_unknown_message_type_is_ignored(kind):
    """OCPP-J 1.6 4.1.3: a message type number not in the list (also 2.0, "2" or true, which are
    not the integer 2) makes the receiver ignore the message: no CallError goes back."""
    c = RpcConnection("1.6")
    ev = c.receive(json.dumps([kind, "m1", "Heartbeat", {}]))
    assert isinstance(ev, rpc.FrameRejected) and ev.reply is None and "message type" in ev.reason
    assert c.unanswered == 0


@pytest.mark.parametrize("kind", [7, 5, "2", True, 2.0])
def test_201_unknown_message_type_gets_message_type_not_supported(kind):
    ev = RpcConnection("2.0.1").receive(json.dumps([kind, "m1", "Heartbeat", {}]))
    assert isinstance(ev, rpc.FrameRejected) and frame(ev.reply)[:3] == [4, "m1", "MessageTypeNotSupported"]


def test_a_float_message_type_does_not_complete_our_call():
    c = RpcConnection("1.6", first_id=0)
    c.call("Heartbeat", {})
    assert isinstance(c.receive('[3.0, "1", {"currentTime": "2030-01-01T00:00:00Z"}]'), rpc.FrameRejected)
    assert c.pending is not None


# -- hostile frames ------------------------------------------------------------------------------
def nested(depth: int) -> str:
    return '[2, "deep", "DataTransfer", {"vendorId": "x", "data": ' + "[" * depth + "]" * depth + "}]"


@pytest.mark.parametrize("depth", [40, 1000, 100_000])
@pytest.mark.parametrize("version,code", [("1.6", "FormationViolation"), ("2.0.1", "FormatViolation")])
def test_deeply_nested_call_is_refused_without_recursion(version, code, depth):
    """A 2 KB frame nested 1,000 deep raised RecursionError out of receive() (the link task ended):
    now it is a CallError for its message id, read from the start of the frame."""
    c = RpcConnection(version)
    ev = c.receive(nested(depth))
    assert isinstance(ev, rpc.FrameRejected) and "nested deeper" in ev.reason
    assert frame(ev.reply)[:3] == [4, "deep", code]


def test_deeply_nested_garbage_without_an_id_is_dropped():
    assert RpcConnection("1.6").receive("[" * 5000).reply is None  # type: ignore[union-attr]
    assert RpcConnection("1.6").receive("{" * 3000).reply is None  # type: ignore[union-attr]
    assert frame(RpcConnection("2.0.1").receive("[" * 5000).reply)[:3] == [4, "-1", "RpcFrameworkError"]  # type: ignore[union-attr]


def test_deeply_nested_answer_to_our_call_fails_it():
    c = RpcConnection("1.6", first_id=0)
    c.call("Heartbeat", {})
    ev = c.receive('[3, "1", {"currentTime": ' + "[" * 2000 + "]" * 2000 + "}]")
    assert isinstance(ev, rpc.ErrorReceived) and ev.invalid_result and c.pending is None


def test_nesting_at_the_limit_is_parsed():
    depth = rpc.MAX_DEPTH - 3  # frame, payload, data: the rest is the nested list
    ev = RpcConnection("2.0.1").receive('[2, "ok", "DataTransfer", {"vendorId": "x", "data": ' + "[" * depth + "]" * depth + "}]")
    assert isinstance(ev, rpc.CallReceived)


@pytest.mark.parametrize("raw", [b'[2, "b1", "Heartbeat", {}]', b"\x00\x01"])
def test_binary_message_is_refused(raw):
    """OCPP-J carries text messages: a binary one is not read as a frame (1.6: dropped)."""
    c = RpcConnection("1.6")
    ev = c.receive(raw)
    assert isinstance(ev, rpc.FrameRejected) and ev.reply is None and "binary" in ev.reason and c.unanswered == 0
    assert frame(RpcConnection("2.0.1").receive(raw).reply)[:3] == [4, "-1", "RpcFrameworkError"]  # type: ignore[union-attr]


def test_message_id_over_36_characters_is_not_echoed():
    """A message id is at most 36 characters: a longer one is invalid, nothing answers it (1.6)
    or RpcFrameworkError with id -1 (2.0.1); exactly 36 is fine."""
    long_id = "x" * 37
    ev = RpcConnection("1.6").receive(json.dumps([2, long_id, "Heartbeat", {}]))
    assert isinstance(ev, rpc.FrameRejected) and ev.reply is None
    err = frame(RpcConnection("2.0.1").receive(json.dumps([2, long_id, "Heartbeat", {}])).reply)  # type: ignore[union-attr]
    assert err[:3] == [4, "-1", "RpcFrameworkError"] and long_id not in json.dumps(err)
    ev = RpcConnection("1.6").receive(json.dumps([2, "y" * 36, "ClearCache", {}]))
    assert isinstance(ev, rpc.CallReceived)


@pytest.mark.parametrize("action", ["../../v201/schemas/ResetRequest", "../v16/schemas/Reset", "A" * 1000, "Reset/../Reset",
                                    "reset", "Reset\n", "", "Heartbeat\u0000", "ResetRequest"])
def test_action_names_are_checked_before_any_file_access(action, monkeypatch):
    """Action names are looked up among the version's known actions first: a path, a 1,000-character
    name (InternalError before) or a wrong case is NotImplemented, and no file is opened."""
    from pathlib import Path

    touched: list[str] = []
    real_exists, real_read = Path.exists, Path.read_text

    def exists(self: Path, *a, **kw) -> bool:  # noqa: ANN002, ANN003
        touched.append(str(self))
        return real_exists(self, *a, **kw)

    def read_text(self: Path, *a, **kw) -> str:  # noqa: ANN002, ANN003
        touched.append(str(self))
        return real_read(self, *a, **kw)

    c = RpcConnection("1.6")
    with monkeypatch.context() as m:
        m.setattr(Path, "exists", exists)
        m.setattr(Path, "read_text", read_text)
        ev = c.receive(json.dumps([2, "a1", action, {"type": "Immediate"}]))
    assert not touched, f"files touched for action {action[:50]!r}: {touched}"
    assert isinstance(ev, rpc.FrameRejected)
    err = frame(ev.reply)
    assert err[:3] == [4, "a1", "NotImplemented"] and len(err[3]) <= 255


@pytest.mark.parametrize(
    "raw,code",
    [
        ('[2, "n1", "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": {"chargingProfileId": 1, "stackLevel": 0,'
         ' "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute", "chargingSchedule":'
         ' {"chargingRateUnit": "A", "minChargingRate": 1e308, "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6}]}}}]',
         "PropertyConstraintViolation"),
        ('[2, "n1", "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": {"chargingProfileId": 1, "stackLevel": 0,'
         ' "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute", "chargingSchedule":'
         ' {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 1e999}]}}}]',
         "TypeConstraintViolation"),
        ('[2, "n1", "ChangeAvailability", {"connectorId": NaN, "type": "Inoperative"}]', "FormationViolation"),
        ('[2, "n1", "ChangeAvailability", {"connectorId": Infinity, "type": "Inoperative"}]', "FormationViolation"),
        ('[2, "n1", "ChangeAvailability", {"connectorId": 4294967297, "type": "Inoperative"}]', "TypeConstraintViolation"),
        ('[2, "n1", "ReserveNow", {"connectorId": 1, "expiryDate": "yesterday", "idTag": "T", "reservationId": 1}]',
         "TypeConstraintViolation"),
        ('[2, "n1", "ReserveNow", {"connectorId": 1, "expiryDate": "2030-01-01T00:00:00", "idTag": "T", "reservationId": 1}]',
         "TypeConstraintViolation"),
        ('[2, "n1", "GetDiagnostics", {"location": "ftp://x/", "startTime": "2030-13-01T00:00:00Z"}]', "TypeConstraintViolation"),
    ],
)
def test_invalid_numbers_and_date_times_get_the_right_call_error(raw, code):
    """1e308 (absurd), 1e999 (not finite), NaN (no JSON), an integer beyond 32 bits, ``yesterday``
    or a date-time without offset: refused with the 1.6 CallError, never passed on (InternalError)."""
    c = RpcConnection("1.6")
    ev = c.receive(raw)
    assert isinstance(ev, rpc.FrameRejected), ev
    assert frame(ev.reply)[:3] == [4, "n1", code], ev.reply
    assert c.unanswered == 0


def test_valid_date_times_pass():
    c = RpcConnection("1.6")
    for i, t in enumerate(["2030-01-01T00:00:00Z", "2030-01-01T00:00:00.123Z", "2030-01-01T01:00:00+01:00",
                           "9999-12-31T23:59:59Z"]):
        ev = c.receive(json.dumps([2, f"d{i}", "ReserveNow", {"connectorId": 1, "expiryDate": t, "idTag": "T",
                                                               "reservationId": 1}]))
        assert isinstance(ev, rpc.CallReceived), (t, ev)


def test_a_second_call_with_the_same_id_while_the_first_is_answered_is_ignored():
    c = RpcConnection("1.6")
    assert isinstance(c.receive('[2, "same", "ClearCache", {}]'), rpc.CallReceived)
    ev = c.receive('[2, "same", "Reset", {"type": "Hard"}]')
    assert isinstance(ev, rpc.FrameRejected) and ev.reply is None
    assert frame(c.result("same", {"status": "Accepted"})) == [3, "same", {"status": "Accepted"}]


def test_the_validator_cache_holds_known_actions_only():
    """200,000 invented action names used to leave 200,000 cache entries (+46 MB)."""
    from station import ocpp_schema

    c = RpcConnection("1.6")
    for i in range(2000):
        c.receive(json.dumps([2, f"i{i}", f"Invented{i}", {}]))
    assert ocpp_schema._validator.cache_info().currsize <= 2 * len(ocpp_schema.KNOWN_ACTIONS["1.6"]) + 2 * len(
        ocpp_schema.KNOWN_ACTIONS["2.0.1"])


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_receive_never_raises_on_random_bytes(version):
    import random

    rng = random.Random(8)
    c = RpcConnection(version)
    pieces = ["[", "]", "{", "}", '"', ",", ":", "2", "3", "4", "1e999", "NaN", "-", ".", "true", "null", '"x"',
              '"Reset"', '"type"', '"\\u0000"', " ", "\n", "9" * 30]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 40)))
        ev = c.receive(text)
        assert ev is not None


# -- the dialects ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "version,given,said",
    [
        ("1.6", "FormatViolation", "FormationViolation"),
        ("1.6", "OccurrenceConstraintViolation", "OccurenceConstraintViolation"),
        ("1.6", "RpcFrameworkError", "FormationViolation"),
        ("1.6", "NoSuchCode", "GenericError"),
        ("2.0.1", "FormationViolation", "FormatViolation"),
        ("2.0.1", "OccurenceConstraintViolation", "OccurrenceConstraintViolation"),
        ("2.0.1", "MessageTypeNotSupported", "MessageTypeNotSupported"),
        ("2.0.1", "NotImplemented", "NotImplemented"),
    ],
)
def test_dialect_spells_codes_of_its_version(version, given, said):
    assert rpc.DIALECTS[version].code(given) == said
    c = RpcConnection(version)
    c.receive('[2, "c1", "Heartbeat", {}]')
    assert frame(c.error("c1", given))[2] == said


def test_unknown_version_is_refused():
    with pytest.raises(ValueError):
        RpcConnection("1.5")


def test_our_own_numbers_are_not_held_to_the_32_bit_range():
    """A DC charger passes 2^31 Wh (2.1 GWh) within its life: its StartTransaction meterStart must
    still go out (OCPP 1.6 says 32-bit; refusing to send would stop charging for good). Ranges
    apply to what the CSMS sends."""
    c = RpcConnection("1.6", first_id=0)
    _, text = c.call("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 2**33,
                                          "timestamp": "2030-01-01T00:00:00Z"})
    assert frame(text)[3]["meterStart"] == 2**33
    c.forget_call()
    with pytest.raises(OCPPError):  # the schema itself still holds for our payloads
        c.call("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": "many", "timestamp": "x"})

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
    assert ev == rpc.ResultReceived("42", "Heartbeat", {"currentTime": "2030-01-01T00:00:00Z"}, None)
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


def test_call_result_breaking_the_schema_is_passed_on_with_the_problem_named():
    c = RpcConnection("1.6", first_id=0)
    c.call("Heartbeat", {})
    ev = c.receive(json.dumps([3, "1", {}]))
    assert isinstance(ev, rpc.ResultReceived) and ev.payload == {}
    assert ev.problem and "currentTime" in ev.problem


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


@pytest.mark.parametrize("version,code", [("1.6", "FormationViolation"), ("2.0.1", "MessageTypeNotSupported")])
@pytest.mark.parametrize("kind", [7, 5, "2", True])
def test_unknown_message_type(version, code, kind):
    ev = RpcConnection(version).receive(json.dumps([kind, "m1", "Heartbeat", {}]))
    assert isinstance(ev, rpc.FrameRejected) and frame(ev.reply)[:3] == [4, "m1", code]


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

"""The link under bad input and bad networks (OCPP-J 1.6), against the real station process.

Bad frames get the CallError OCPP-J 1.6 asks for (or are dropped where there is no message id to
answer), and the station stays connected and keeps working. A CSMS request is answered while our
own call waits. The station reconnects with back-off after the CSMS goes away and after a refused
handshake. Security profile 1 sends HTTP Basic credentials, profile 0 none.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re

import pytest

from tests.integration.harness import CallErrorReply, ScriptedCsms, start_session


async def raw_call(csms: ScriptedCsms, uid: str, action: str, payload: object) -> list:
    """Send a Call frame exactly as given (no validation on our side); return the station's answer frame."""
    msg = await csms.send_call_raw([2, uid, action, payload], timeout=5)
    assert msg[1] == uid
    return msg


async def still_works(csms: ScriptedCsms) -> None:
    """The same connection still answers a well-formed request promptly."""
    got = await csms.call("GetConfiguration", {"key": ["HeartbeatInterval"]}, timeout=3)
    assert got["configurationKey"][0]["key"] == "HeartbeatInterval"
    assert csms.connections == 1 and csms.connected.is_set()


def reconnect_delays(log: str) -> list[float]:
    return [float(x) for x in re.findall(r"reconnecting in ([0-9.]+) s", log)]


# -- frames that are not OCPP-J at all --------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "this is not json",
        '{"not": "an array"}',
        "[]",
        "[2]",
        '[2, 17, "Heartbeat", {}]',  # the unique id must be a string: nothing to answer to
        "null",
        '"[2, \\"x\\", \\"Heartbeat\\", {}]"',
    ],
)
async def test_frame_without_message_id_is_dropped_and_link_stays(csms, booted, text):
    """A frame that is not a JSON array with a string message id cannot be answered (OCPP-J 1.6 has
    no RpcFrameworkError): the station drops it, sends nothing, keeps the connection and works on."""
    await booted()
    errors = len(csms.errors_from_station)
    await csms.send_text(text)
    await still_works(csms)
    assert len(csms.errors_from_station) == errors, csms.errors_from_station[errors:]


async def test_unknown_message_type_gets_formation_violation(csms, booted):
    """A message type id other than 2, 3, 4 (e.g. 7): CallError FormationViolation for that message id."""
    await booted()
    err = await csms.send_call_raw([7, "mt-7", "Heartbeat", {}], timeout=5)
    assert err[0] == 4 and err[1] == "mt-7" and err[2] == "FormationViolation"
    assert isinstance(err[3], str) and isinstance(err[4], dict)
    await still_works(csms)


@pytest.mark.parametrize("frame", [[2, "c-short", "Heartbeat"], [2, "c-list", "Reset", ["Hard"]], [2, "c-num", 5, {}]])
async def test_malformed_call_gets_formation_violation(csms, booted, frame):
    """A Call that is not [2, id, action, {payload}] gets FormationViolation for its id."""
    await booted()
    err = await csms.send_call_raw(frame, timeout=5)
    assert err[0] == 4 and err[1] == frame[1] and err[2] == "FormationViolation"
    await still_works(csms)


async def test_responses_to_no_call_are_ignored(csms, booted):
    """A CallResult or CallError whose id matches no call of ours is dropped silently."""
    await booted()
    await csms.send_text(json.dumps([3, "never-asked", {"currentTime": "2030-01-01T00:00:00Z"}]))
    await csms.send_text(json.dumps([4, "never-asked-2", "GenericError", "", {}]))
    await still_works(csms)
    assert not csms.errors_from_station


# -- calls that are well-formed frames but wrong requests -------------------------------------
async def test_unknown_action_gets_not_implemented(csms, booted):
    """An action OCPP 1.6 does not define -> CallError NotImplemented."""
    await booted()
    err = await raw_call(csms, "u-1", "FlyToTheMoon", {})
    assert err[0] == 4 and err[2] == "NotImplemented"
    await still_works(csms)


UNSUPPORTED_PROFILE_ACTIONS = {
    "Reservation": ("CancelReservation", {"reservationId": 1}),
    "SmartCharging": ("ClearChargingProfile", {}),
    "FirmwareManagement": ("GetDiagnostics", {"location": "ftp://example.com/"}),
}


async def test_action_of_unsupported_profile_gets_not_supported(csms, booted):
    """An OCPP 1.6 action of a feature profile the station does not list -> CallError NotSupported."""
    await booted()
    profiles = (await csms.call("GetConfiguration", {"key": ["SupportedFeatureProfiles"]}))["configurationKey"][0]["value"]
    missing = [p for p in UNSUPPORTED_PROFILE_ACTIONS if p not in profiles.split(",")]
    if not missing:
        pytest.skip("the station supports every profile with a CallError-only probe")
    action, payload = UNSUPPORTED_PROFILE_ACTIONS[missing[0]]
    err = await raw_call(csms, "ns-1", action, payload)
    assert err[0] == 4 and err[2] == "NotSupported", err
    await still_works(csms)


@pytest.mark.parametrize(
    "action,payload,code",
    [
        ("ChangeAvailability", {"type": "Inoperative"}, "ProtocolError"),  # required field missing
        ("ChangeAvailability", {"connectorId": "one", "type": "Inoperative"}, "TypeConstraintViolation"),
        ("RemoteStartTransaction", {"idTag": "X" * 21}, "TypeConstraintViolation"),  # CiString20Type
        ("ChangeAvailability", {"connectorId": 1, "type": "Sideways"}, "PropertyConstraintViolation"),
        ("Reset", {"type": "Gentle"}, "PropertyConstraintViolation"),
        ("ChangeAvailability", {"connectorId": 1, "type": "Inoperative", "extra": 1}, "FormationViolation"),
        ("UnlockConnector", {"connectorId": 1.5}, "TypeConstraintViolation"),
    ],
)
async def test_schema_invalid_payload_gets_right_call_error(csms, booted, action, payload, code):
    """A payload that breaks the 1.6 schema gets the CallError OCPP-J 1.6 names, and is not acted on."""
    sp = await booted()
    err = await raw_call(csms, f"bad-{action}", action, payload)
    assert err[0] == 4 and err[2] == code, err
    assert err[3] and isinstance(err[4], dict)
    await still_works(csms)
    await csms.no_call("StatusNotification", 0.5)
    assert (await sp.status())["evses"][0]["connectors"][0]["status"] == "Available"


@pytest.mark.parametrize(
    "action,payload,answer",
    [
        ("UnlockConnector", {"connectorId": 9}, {"status": "NotSupported"}),
        ("ChangeAvailability", {"connectorId": 9, "type": "Inoperative"}, {"status": "Rejected"}),
        ("RemoteStartTransaction", {"idTag": "A", "connectorId": 9}, {"status": "Rejected"}),
        ("TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 9}, {"status": "Rejected"}),
    ],
)
async def test_connector_that_does_not_exist(csms, booted, action, payload, answer):
    """Requests for connector 9 on a one-connector station are answered (not a CallError) with the
    status 1.6 gives for an unknown connector, and nothing happens to connector 1."""
    await booted()
    assert await csms.call(action, payload) == answer
    await csms.no_call("StatusNotification", 0.5)
    await still_works(csms)


async def test_station_keeps_working_after_a_burst_of_bad_input(csms, booted):
    """Every kind of bad input in a row on one connection, then a whole charging session on it."""
    sp = await booted()
    for text in ("not json", "{}", "[1]", json.dumps([3, "nobody", {}]), json.dumps([9, "x9", "A", {}])):
        await csms.send_text(text)
    for i, (action, payload) in enumerate([("FlyToTheMoon", {}), ("ChangeAvailability", {"type": "Inoperative"}),
                                           ("Reset", {"type": "Gentle"}), ("GetConfiguration", {"key": "Heartbeat"})]):
        with pytest.raises(CallErrorReply):
            msg = await raw_call(csms, f"burst-{i}", action, payload)
            raise CallErrorReply(msg[2], msg[3]) if msg[0] == 4 else AssertionError(f"accepted: {msg}")
    assert csms.connections == 1
    await start_session(csms, sp)
    await sp.swipe("TAG1")
    assert (await csms.expect("StopTransaction"))["transactionId"] == 1
    assert csms.connections == 1


# -- requests while our own call waits ----------------------------------------------------------
async def test_csms_request_answered_while_own_heartbeat_waits(csms, booted):
    """Our Heartbeat is unanswered (the CSMS keeps it waiting); CSMS requests are still answered at once."""
    await booted()
    csms.silent.add("Heartbeat")
    assert (await csms.call("TriggerMessage", {"requestedMessage": "Heartbeat"}))["status"] == "Accepted"
    await csms.expect("Heartbeat")
    loop = asyncio.get_running_loop()
    for _ in range(3):
        t0 = loop.time()
        await csms.call("GetConfiguration", {"key": ["HeartbeatInterval"]}, timeout=3)
        assert loop.time() - t0 < 1.0
    assert (await csms.call("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "30"}))["status"] == "Accepted"


async def test_csms_request_answered_while_own_status_notification_waits(csms, booted):
    """Our StatusNotification is unanswered; a RemoteStartTransaction is still answered promptly."""
    sp = await booted()
    csms.silent.add("StatusNotification")
    await sp.plug()
    await csms.expect_status(1, "Preparing")
    t0 = asyncio.get_running_loop().time()
    r = await csms.call("RemoteStartTransaction", {"idTag": "R1", "connectorId": 1}, timeout=3)
    assert r["status"] == "Accepted" and asyncio.get_running_loop().time() - t0 < 1.0


async def test_wrong_id_response_does_not_complete_our_call(csms, booted):
    """While our Heartbeat waits, a CallResult with another id is ignored; the one with the right id
    completes it, and the next call goes out right away."""
    sp = await booted()
    csms.silent.add("Heartbeat")
    await csms.call("TriggerMessage", {"requestedMessage": "Heartbeat"})
    await csms.expect("Heartbeat")
    hb = [r for r in csms.received if r.action == "Heartbeat"][-1]
    await csms.send_text(json.dumps([3, hb.unique_id + "-other", {"currentTime": "2030-01-01T00:00:00Z"}]))
    await sp.plug()  # its StatusNotification must wait behind the Heartbeat
    await csms.no_call("StatusNotification", 0.7)
    await csms.send_text(json.dumps([3, hb.unique_id, {"currentTime": "2030-01-01T00:00:00Z"}]))
    await csms.expect_status(1, "Preparing", timeout=2)


# -- reconnecting -------------------------------------------------------------------------------
async def test_reconnect_with_backoff_after_csms_goes_away(csms, booted):
    """The CSMS server goes down for a while: the station retries with growing delays (back-off),
    comes back by itself when the server is up again on the same address, without a new
    BootNotification, and works as before."""
    sp = await booted()
    await csms.close()
    await asyncio.wait_for(csms.disconnected.wait(), 5)
    await asyncio.sleep(4.0)  # attempts at <= 1 s and <= 3 s have failed by now: three delays logged
    delays = reconnect_delays(sp.log())
    assert len(delays) >= 3, delays
    assert all(b >= a for a, b in zip(delays, delays[1:], strict=False)), delays
    assert delays[-1] >= 1.0 and delays[-1] <= 60.0
    csms.mark()
    await csms.start(port=csms.port)
    await asyncio.wait_for(csms.connected.wait(), 20)
    assert csms.connections == 2
    await still_works_after_reconnect(csms)
    await start_session(csms, sp)
    assert len(csms.calls("BootNotification")) == 1


async def still_works_after_reconnect(csms: ScriptedCsms) -> None:
    got = await csms.call("GetConfiguration", {"key": ["HeartbeatInterval"]}, timeout=3)
    assert got["configurationKey"]


async def test_reconnect_after_connection_drop(csms, booted):
    """The CSMS closes the socket: the station reconnects within about a second, no reboot."""
    sp = await booted()
    await csms.drop_connection()
    await asyncio.wait_for(csms.disconnected.wait(), 5)
    await asyncio.wait_for(csms.connected.wait(), 5)
    await still_works_after_reconnect(csms)
    await start_session(csms, sp)
    assert len(csms.calls("BootNotification")) == 1 and csms.connections == 2


async def test_reconnect_after_handshake_rejection(csms, make_station):
    """The CSMS answers the first two handshakes with HTTP 401: the station keeps retrying, each
    time waiting longer, and gets in on the third; then it boots normally."""
    csms.reject_handshake = 2
    sp = make_station()
    sp.start()
    await csms.expect("BootNotification", timeout=30)
    assert csms.connections == 1  # the rejected handshakes never became sessions
    assert len(csms.handshake_times) == 3
    gaps = [b - a for a, b in zip(csms.handshake_times, csms.handshake_times[1:], strict=False)]
    assert gaps[0] >= 0.4 and gaps[1] >= gaps[0] * 0.95, gaps
    assert sp.log().count("HTTP 401") >= 2


async def test_handshake_rejected_after_csms_restart(csms, booted):
    """After an outage the CSMS first refuses the station (401), then lets it in: back to normal
    without a BootNotification, and a transaction message queued meanwhile is delivered."""
    sp = await booted()
    await start_session(csms, sp)
    await csms.close()
    await asyncio.wait_for(csms.disconnected.wait(), 5)
    await sp.swipe("TAG1")
    await asyncio.sleep(0.5)
    csms.reject_handshake = 1
    await csms.start(port=csms.port)
    stop = await csms.expect("StopTransaction", timeout=20)
    assert stop["transactionId"] == 1
    assert csms.reject_handshake == 0 and csms.connections == 2
    assert len(csms.calls("BootNotification")) == 1


# -- security profiles --------------------------------------------------------------------------
async def test_security_profile_1_sends_basic_auth(csms, booted, tmp_path):
    """Security profile 1: every handshake (also after a reconnect) carries HTTP Basic auth with
    the station id and AuthorizationKey; the key itself is write-only for GetConfiguration."""
    cfg = tmp_path / "sp1.toml"
    cfg.write_text("[station]\nsecurity_profile = 1\n\n[[evse]]\nid = 1\n")
    key = "0123456789abcdef0123"
    await booted(config=str(cfg), ocpp_config={"AuthorizationKey": key})
    expected = "Basic " + base64.b64encode(f"CS001:{key}".encode()).decode()
    assert csms.auth_headers == [expected]
    assert csms.paths == ["/ocpp/CS001"]
    got = await csms.call("GetConfiguration", {"key": ["AuthorizationKey"]})
    assert got["unknownKey"] == ["AuthorizationKey"] and not got["configurationKey"]
    assert key not in json.dumps(await csms.call("GetConfiguration", {}))
    await csms.drop_connection()
    await asyncio.wait_for(csms.disconnected.wait(), 5)
    await asyncio.wait_for(csms.connected.wait(), 5)
    assert csms.auth_headers == [expected, expected]


async def test_security_profile_0_sends_no_credentials(csms, booted):
    """Security profile 0 (the default): no Authorization header, even with an AuthorizationKey set."""
    await booted(ocpp_config={"AuthorizationKey": "0123456789abcdef0123"})
    assert csms.auth_headers == [None]
    assert csms.subprotocols == ["ocpp1.6"]

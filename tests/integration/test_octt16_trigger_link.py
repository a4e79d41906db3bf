"""Remote Trigger (2.21), DataTransfer (2.23), availability, MinimumStatusDuration, bad frames
and link behaviour, against the real station process over a real websocket."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.integration.harness import CallErrorReply, start_session


@pytest.mark.parametrize("what", ["BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
                                  "Heartbeat", "MeterValues", "StatusNotification"])
async def test_TC_054_trigger_message(csms, booted, what):
    await booted()
    before = len(csms.received)
    r = await csms.call("TriggerMessage", {"requestedMessage": what, "connectorId": 1})
    assert r["status"] == "Accepted"
    msg = await csms.expect(what, since=before)
    if what in ("StatusNotification", "MeterValues"):
        assert msg["connectorId"] == 1
    if what == "MeterValues":
        assert msg["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"


async def test_TC_054_trigger_status_station_wide(csms, booted):
    await booted(evses=2)
    assert (await csms.call("TriggerMessage", {"requestedMessage": "StatusNotification"}))["status"] == "Accepted"
    got = set()
    for _ in range(3):
        got.add((await csms.expect("StatusNotification"))["connectorId"])
    assert got == {0, 1, 2}


async def test_TC_055_trigger_message_rejected(csms, booted):
    await booted()
    r = await csms.call("TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 5})
    assert r["status"] == "Rejected"
    await csms.no_call("StatusNotification", 0.5)


async def test_TC_062_data_transfer_to_charge_point(csms, booted):
    await booted()
    r = await csms.call("DataTransfer", {"vendorId": "com.example", "messageId": "hello", "data": "x"})
    assert r["status"] in ("UnknownVendorId", "Rejected")


async def test_change_availability_scheduled_while_charging(csms, booted):
    sp = await booted()
    await start_session(csms, sp)
    r = await csms.call("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    assert r["status"] == "Scheduled"
    await sp.swipe("TAG1")
    await csms.expect("StopTransaction")
    await csms.expect_status(1, "Unavailable")
    r = await csms.call("ChangeAvailability", {"connectorId": 1, "type": "Operative"})
    assert r["status"] == "Accepted"
    await csms.expect_status(1, "Finishing")


async def test_change_availability_station_wide(csms, booted):
    await booted(evses=2)
    assert (await csms.call("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}))["status"] == "Accepted"
    await csms.expect_status(0, "Unavailable")
    for cid in (1, 2):
        await csms.expect("StatusNotification", lambda p, c=cid: p["connectorId"] == c and p["status"] == "Unavailable",
                          since=0)
    assert (await csms.call("ChangeAvailability", {"connectorId": 9, "type": "Inoperative"}))["status"] == "Rejected"


async def test_minimum_status_duration(csms, booted):
    sp = await booted(ocpp_config={"MinimumStatusDuration": "2"})
    await sp.plug()
    await asyncio.sleep(0.3)
    await sp.unplug()  # Preparing lasted 0.3 s: never reported
    await asyncio.sleep(2.5)
    assert not [p for p in csms.calls("StatusNotification") if p["status"] == "Preparing"]
    await sp.plug()
    await csms.expect_status(1, "Preparing", timeout=5)


# -- bad input ---------------------------------------------------------------------------------
async def test_bad_frames_get_the_right_call_error_and_station_keeps_working(csms, booted):
    sp = await booted()
    await csms.send_text("this is not json")
    await csms.send_text(json.dumps({"not": "an array"}))
    err = await csms.send_call_raw([7, "bad-type", "Heartbeat", {}])
    assert err[0] == 4 and err[2] == "FormationViolation"

    async def call_error(action, payload):
        with pytest.raises(CallErrorReply) as e:
            msg = await csms.send_call_raw([2, f"x-{action}-{len(csms.errors_from_station)}", action, payload])
            if msg[0] == 4:
                raise CallErrorReply(msg[2], msg[3])
        return e.value.code

    assert await call_error("FlyToTheMoon", {}) == "NotImplemented"
    assert await call_error("ChangeAvailability", {"type": "Inoperative"}) == "ProtocolError"
    assert await call_error("ChangeAvailability", {"connectorId": "one", "type": "Inoperative"}) == "TypeConstraintViolation"
    assert await call_error("ChangeAvailability", {"connectorId": 1, "type": "Sideways"}) == "PropertyConstraintViolation"
    assert await call_error("ChangeAvailability", {"connectorId": 1, "type": "Inoperative", "x": 1}) == "FormationViolation"
    assert await call_error("ReserveNow", {"connectorId": 1, "expiryDate": "2030-01-01T00:00:00Z", "idTag": "A",
                                           "reservationId": 1}) == "NotSupported"
    assert (await csms.call("UnlockConnector", {"connectorId": 9}))["status"] == "NotSupported"
    assert csms.connections == 1
    await start_session(csms, sp)


async def test_csms_request_answered_while_own_call_waits(csms, booted):
    sp = await booted()
    csms.silent.add("StatusNotification")
    await sp.plug()
    await csms.expect("StatusNotification")
    t0 = asyncio.get_running_loop().time()
    r = await csms.call("GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert r["configurationKey"] and asyncio.get_running_loop().time() - t0 < 2


async def test_reconnect_after_handshake_rejection(csms, make_station):
    csms.reject_handshake = 2
    sp = make_station()
    sp.start()
    await csms.expect("BootNotification", timeout=30)
    assert csms.connections == 1  # the two rejected handshakes never became sessions
    assert "HTTP 401" in sp.log()


async def test_reconnect_after_csms_restart(csms, booted):
    sp = await booted()
    await start_session(csms, sp)
    await csms.drop_connection()
    await csms.disconnected.wait()
    await sp.swipe("TAG1")
    await asyncio.wait_for(csms.connected.wait(), 15)
    stop = await csms.expect("StopTransaction", timeout=10)
    assert stop["transactionId"] == 1


async def test_security_profile_1_basic_auth(csms, booted, tmp_path):
    cfg = tmp_path / "sp1.toml"
    cfg.write_text('[station]\nsecurity_profile = 1\n\n[[evse]]\nid = 1\n')
    await booted(config=str(cfg), ocpp_config={"AuthorizationKey": "0123456789abcdef0123"})
    import base64

    assert csms.auth_headers[0] == "Basic " + base64.b64encode(b"CS001:0123456789abcdef0123").decode()
    got = await csms.call("GetConfiguration", {"key": ["AuthorizationKey"]})
    assert got["unknownKey"] == ["AuthorizationKey"]  # write-only


async def test_security_profile_0_sends_no_credentials(csms, booted):
    await booted()
    assert csms.auth_headers[0] is None


async def test_TC_042_1_get_local_list_version_not_supported(csms, booted):
    await booted()
    assert (await csms.call("GetLocalListVersion", {}))["listVersion"] == -1


async def test_TC_043_1_send_local_list_not_supported(csms, booted):
    await booted()
    r = await csms.call("SendLocalList", {"listVersion": 1, "updateType": "Full",
                                          "localAuthorizationList": [{"idTag": "A", "idTagInfo": {"status": "Accepted"}}]})
    assert r["status"] == "NotSupported"

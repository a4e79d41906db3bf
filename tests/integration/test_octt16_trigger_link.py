"""Remote Trigger (2.21), DataTransfer (2.23), availability, MinimumStatusDuration and the local
list answers of a station without one, against the real station (in process, on virtual time) over a real websocket.
Bad frames and link behaviour (reconnect, security profiles 0/1): test_link_robustness.py."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.harness import start_session


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

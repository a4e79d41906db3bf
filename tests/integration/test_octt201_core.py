"""OCPP 2.0.1 core cases over a real websocket (in process, virtual time): boot, status,
transactions by TxStartPoint / TxStopPoint, remote control, availability, reset."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import var
from tests.integration.harness import CallErrorReply


async def test_TC_B_01_CS_cold_boot_accepted(csms201, booted201):
    sp = await booted201()
    boot = csms201.calls("BootNotification")[0]
    assert boot["reason"] == "PowerUp"
    assert boot["chargingStation"]["vendorName"]
    status = csms201.calls("StatusNotification")[0]
    assert status["connectorStatus"] == "Available" and status["connectorId"] == 1
    assert csms201.subprotocols[0] == "ocpp2.0.1"
    assert sp.running


async def test_local_start_and_stop_default_points(csms201, booted201):
    """TxStartPoint PowerPathClosed, TxStopPoint EVConnected,Authorized (the defaults)."""
    sp = await booted201()
    await sp.plug()
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Occupied")
    await sp.swipe("TAG1")
    auth = await csms201.expect("Authorize")
    assert auth["idToken"] == {"idToken": "TAG1", "type": "ISO14443"}
    started = await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Started")
    assert started["seqNo"] == 0 and started["idToken"]["idToken"] == "TAG1"
    tx_id = started["transactionInfo"]["transactionId"]
    await sp.swipe("TAG1")
    ended = await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended")
    assert ended["transactionInfo"]["transactionId"] == tx_id
    assert ended["transactionInfo"]["stoppedReason"] == "Local"
    assert ended["triggerReason"] == "StopAuthorized"
    seqs = [p["seqNo"] for p in csms201.calls("TransactionEvent")]
    assert seqs == list(range(len(seqs)))


# -- B: provisioning ------------------------------------------------------------------------


async def test_TC_B_02_CS_cold_boot_pending(csms201, make_station201):
    csms201.boot_status, csms201.boot_interval = "Pending", 5
    sp = make_station201()
    sp.start()
    await csms201.expect("BootNotification", timeout=15)
    # while Pending the CSMS may trigger the BootNotification; nothing else is sent
    assert (await csms201.call("TriggerMessage", {"requestedMessage": "BootNotification"}))["status"] == "Accepted"
    await csms201.expect("BootNotification")
    assert not csms201.calls("StatusNotification")
    csms201.boot_status = "Accepted"
    await csms201.expect("BootNotification", timeout=10)
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Available")


async def test_TC_B_03_CS_cold_boot_rejected(csms201, make_station201):
    csms201.boot_status, csms201.boot_interval = "Rejected", 20
    sp = make_station201()
    sp.start()
    await csms201.expect("BootNotification", timeout=15)
    await csms201.no_call("BootNotification", within=15)
    assert not csms201.calls("StatusNotification") and not csms201.calls("Heartbeat")
    csms201.boot_status = "Accepted"
    await csms201.expect("BootNotification", timeout=10)  # after the interval
    await csms201.expect("StatusNotification")


async def test_TC_B_30_CS_pending_rejected_security_error(csms201, make_station201):
    csms201.boot_status, csms201.boot_interval = "Pending", 300
    sp = make_station201()
    sp.start()
    await csms201.expect("BootNotification", timeout=15)
    with pytest.raises(CallErrorReply) as e:
        await csms201.call("RequestStartTransaction", {"idToken": {"idToken": "T1", "type": "ISO14443"},
                                                       "remoteStartId": 1})
    assert e.value.code == "SecurityError"
    assert (await csms201.call("TriggerMessage", {"requestedMessage": "Heartbeat"}))["status"] == "Rejected"


async def test_TC_B_20_CS_reset_without_transaction_on_idle(csms201, booted201):
    await booted201()
    assert (await csms201.call("Reset", {"type": "OnIdle"}))["status"] == "Accepted"
    boot = await csms201.expect("BootNotification", timeout=30)
    assert boot["reason"] == "RemoteReset"


async def _charging(csms201, sp, tag="TAG1", evse=1) -> str:
    await sp.plug(evse)
    await sp.swipe(tag, evse)
    started = await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Started"
                                   and p["evse"]["id"] == evse)
    return started["transactionInfo"]["transactionId"]


async def test_TC_B_21_CS_reset_with_transaction_on_idle(csms201, booted201):
    sp = await booted201()
    tx_id = await _charging(csms201, sp)
    assert (await csms201.call("Reset", {"type": "OnIdle"}))["status"] == "Scheduled"
    await csms201.no_call("BootNotification", within=5)
    await sp.swipe("TAG1")
    ended = await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended")
    assert ended["transactionInfo"]["transactionId"] == tx_id
    boot = await csms201.expect("BootNotification", timeout=30)
    assert boot["reason"] == "RemoteReset"


async def test_TC_B_22_CS_reset_with_transaction_immediate(csms201, booted201):
    sp = await booted201()
    await _charging(csms201, sp)
    assert (await csms201.call("Reset", {"type": "Immediate"}))["status"] == "Accepted"
    ended = await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended")
    assert ended["transactionInfo"]["stoppedReason"] == "ImmediateReset"
    assert ended["triggerReason"] == "ResetCommand"
    await csms201.expect("BootNotification", timeout=30)


async def test_TC_B_23_CS_reset_unavailable_persists(csms201, booted201):
    await booted201()
    assert (await csms201.call("ChangeAvailability", {"operationalStatus": "Inoperative"}))["status"] == "Accepted"
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Unavailable")
    await csms201.call("Reset", {"type": "OnIdle"})
    await csms201.expect("BootNotification", timeout=30)
    after = await csms201.expect("StatusNotification", timeout=10)
    assert after["connectorStatus"] == "Unavailable"


async def test_TC_B_41_CS_reset_multiple_transactions_on_idle(csms201, booted201):
    sp = await booted201(evses=2)
    await _charging(csms201, sp, "TAG1", 1)
    await _charging(csms201, sp, "TAG2", 2)
    assert (await csms201.call("Reset", {"type": "OnIdle"}))["status"] == "Scheduled"
    await sp.swipe("TAG1", 1)
    await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended" and p["evse"]["id"] == 1)
    await csms201.no_call("BootNotification", within=3)
    await sp.swipe("TAG2", 2)
    await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended" and p["evse"]["id"] == 2)
    await csms201.expect("BootNotification", timeout=30)


async def test_TC_B_25_CS_reset_evse_without_transaction(csms201, booted201):
    await booted201()
    assert (await csms201.call("Reset", {"type": "OnIdle", "evseId": 1}))["status"] == "Accepted"
    await csms201.no_call("BootNotification", within=3)


async def test_TC_B_26_CS_reset_evse_with_transaction_on_idle(csms201, booted201):
    sp = await booted201()
    await _charging(csms201, sp)
    assert (await csms201.call("Reset", {"type": "OnIdle", "evseId": 1}))["status"] == "Scheduled"
    await sp.swipe("TAG1")
    await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended")


async def test_TC_B_27_CS_reset_evse_with_transaction_immediate(csms201, booted201):
    sp = await booted201()
    await _charging(csms201, sp)
    assert (await csms201.call("Reset", {"type": "Immediate", "evseId": 1}))["status"] == "Accepted"
    ended = await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended")
    assert ended["transactionInfo"]["stoppedReason"] == "ImmediateReset"
    await csms201.no_call("BootNotification", within=3)


async def test_reset_unknown_evse_rejected(csms201, booted201):
    await booted201()
    assert (await csms201.call("Reset", {"type": "Immediate", "evseId": 7}))["status"] == "Rejected"


async def test_TC_B_51_CS_status_change_offline_longer_than_threshold(csms201, booted201):
    sp = await booted201(variables=[var("OCPPCommCtrlr", "OfflineThreshold", "10")])
    await sp.link(False)
    await csms201.disconnected.wait()
    await asyncio.sleep(20)
    await sp.link(True)
    await csms201.connected.wait()
    # longer than OfflineThreshold: every connector's status again, changed or not
    got = await csms201.expect("StatusNotification", timeout=15)
    assert got["connectorStatus"] == "Available"


async def test_TC_B_52_CS_status_change_offline_shorter_than_threshold(csms201, booted201):
    sp = await booted201(variables=[var("OCPPCommCtrlr", "OfflineThreshold", "600")])
    await sp.link(False)
    await csms201.disconnected.wait()
    await sp.plug()
    await asyncio.sleep(2)
    await sp.link(True)
    await csms201.connected.wait()
    got = await csms201.expect("StatusNotification", timeout=15)
    assert got["connectorStatus"] == "Occupied"
    await csms201.no_call("StatusNotification", within=3, pred=lambda p: p["connectorStatus"] == "Available")


async def test_TC_B_57_CS_reconnect_after_connection_loss(csms201, booted201):
    await booted201()
    before = csms201.connections
    await csms201.drop_connection()
    await csms201.disconnected.wait()
    await csms201.connected.wait()
    assert csms201.connections == before + 1
    assert (await csms201.call("TriggerMessage", {"requestedMessage": "Heartbeat"}))["status"] == "Accepted"
    await csms201.expect("Heartbeat")


def _datetimes(value, out: list) -> list:
    if isinstance(value, dict):
        for v in value.values():
            _datetimes(v, out)
    elif isinstance(value, list):
        for v in value:
            _datetimes(v, out)
    elif isinstance(value, str) and len(value) >= 19 and value[4:5] == "-" and value[10:11] == "T":
        out.append(value)
    return out


async def test_every_timestamp_has_at_most_3_fractional_digits_and_z(csms201, booted201):
    """Interop (issue 10): one independent CSMS rejects 6 fractional digits or an offset."""
    import re

    sp = await booted201(variables=[var("SampledDataCtrlr", "TxUpdatedInterval", "10"),
                                    var("AlignedDataCtrlr", "Interval", "30")])
    await sp.plug()
    await sp.swipe("TAG1")
    await csms201.expect("TransactionEvent", lambda p: p["triggerReason"] == "MeterValuePeriodic", timeout=30)
    await asyncio.sleep(40)
    await sp.swipe("TAG1")
    await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended")
    stamps = _datetimes([r.payload for r in csms201.received], [])
    assert len(stamps) > 10
    bad = [s for s in stamps if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z", s)]
    assert not bad, bad

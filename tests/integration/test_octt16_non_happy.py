"""OCTT OCPP 1.6J Core non-happy flows (sections 2.10-2.16), performed against the real station.

Each test drives the real station through its local API (the EV, the card reader, faults, the lock,
the power switch) and plays the CSMS over a real websocket: in process on virtual time by default,
as a ``station run --sim`` process for the power failures (``kill -9``, tests marked ``process``).
Connection losses are the CSMS dropping the socket, the CSMS going away altogether, or the
station's own link switch.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from tests.integration.harness import (
    CallErrorReply,
    ScriptedCsms,
    StationProcess,
    start_session,
    until,
    wall_now,
)

# -- helpers ----------------------------------------------------------------------------------


async def connector(sp: StationProcess, evse: int = 1) -> dict:
    st = await sp.status()
    e = st["evses"][evse - 1]
    return {"status": e["connectors"][0]["status"], "error": e["connectors"][0]["error_code"],
            "tx": e["transaction"], "offered": e["offered_a"], "power": e["power_w"], "outbox": st["outbox"]}


async def go_offline(csms: ScriptedCsms, sp: StationProcess) -> None:
    await sp.link(False)
    await asyncio.wait_for(csms.disconnected.wait(), 5)


async def go_online(csms: ScriptedCsms, sp: StationProcess) -> None:
    csms.mark()
    await sp.link(True)
    await asyncio.wait_for(csms.connected.wait(), 15)


def order(csms: ScriptedCsms, since: int, actions: tuple[str, ...] = ("StartTransaction", "MeterValues", "StopTransaction")):
    """The transaction messages the station sent after index ``since``, as (action, payload)."""
    return [(r.action, r.payload) for r in csms.received[since:] if r.action in actions]


def energy(mv: dict) -> float:
    for v in mv["meterValue"][0]["sampledValue"]:
        if v.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register":
            return float(v["value"])
    raise AssertionError(f"no energy register in {mv}")


def ts(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


# -- 2.10 basic actions non-happy ---------------------------------------------------------------
@pytest.mark.parametrize("verdict", ["Invalid", "Blocked", "Expired"])
async def test_TC_023_authorize_invalid_plugged_first(csms, booted, verdict):
    """TC_023_CS: cable plugged, the driver presents an idTag, Authorize.conf is not Accepted.

    No StartTransaction; the connector stays Preparing and is not locked; a valid card afterwards
    still starts a session on it.
    """
    csms.responders["Authorize"] = lambda p: {"idTagInfo": {"status": verdict if p["idTag"] == "BAD" else "Accepted"}}
    sp = await booted()
    await sp.plug()
    await csms.expect_status(1, "Preparing")
    await sp.swipe("BAD")
    assert (await csms.expect("Authorize"))["idTag"] == "BAD"
    await csms.no_call("StartTransaction", 1.0)
    await csms.no_call("StatusNotification", 0.1, lambda p: p["status"] not in ("Preparing",))
    c = await connector(sp)
    assert c["status"] == "Preparing" and c["tx"] is None and not c["offered"]
    await sp.swipe("GOOD")
    start = await csms.expect("StartTransaction")
    assert start["idTag"] == "GOOD"
    await csms.expect_status(1, "Charging")


async def test_TC_023_authorize_invalid_identification_first(csms, booted):
    """TC_023_CS (no cable yet): an invalid idTag does not make the connector Preparing."""
    csms.responders["Authorize"] = lambda p: {"idTagInfo": {"status": "Invalid"}}
    sp = await booted()
    await sp.swipe("BAD")
    await csms.expect("Authorize")
    await csms.no_call("StatusNotification", 1.0)
    assert not csms.calls("StartTransaction")
    assert (await connector(sp))["status"] == "Available"
    # plugging in afterwards does not start anything for the rejected card
    await sp.plug()
    await csms.expect_status(1, "Preparing")
    await csms.no_call("StartTransaction", 1.0)


async def test_TC_024_lock_failure(csms, booted):
    """TC_024_CS: the connector lock fails when the transaction should start.

    No StartTransaction, no energy, StatusNotification Faulted / ConnectorLockFailure. When the lock
    works again and the cable is taken out, the fault clears (Available) and a new session works.
    """
    sp = await booted()
    await sp.api("POST", "/api/evses/1/sim", {"lock_jammed": True})
    await sp.plug()
    await csms.expect_status(1, "Preparing")
    await sp.swipe("TAG1")
    await csms.expect("Authorize")
    await csms.expect_status(1, "Faulted", error="ConnectorLockFailure")
    await csms.no_call("StartTransaction", 1.0)
    c = await connector(sp)
    assert c["tx"] is None and not c["offered"] and not c["power"]
    # repaired; the driver takes the cable out
    await sp.api("POST", "/api/evses/1/sim", {"lock_jammed": False})
    await sp.unplug()
    await csms.expect_status(1, "Available", error="NoError")
    await start_session(csms, sp)


# -- 2.11 remote actions non-happy ----------------------------------------------------------------
@pytest.mark.parametrize("why", ["occupied", "unavailable", "faulted"])
async def test_TC_026_remote_start_rejected(csms, booted, why):
    """TC_026_CS: RemoteStartTransaction for a connector that cannot start one -> Rejected, nothing starts."""
    sp = await booted()
    if why == "occupied":
        await start_session(csms, sp)
    elif why == "unavailable":
        assert (await csms.call("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}))["status"] == "Accepted"
        await csms.expect_status(1, "Unavailable")
    else:
        await sp.fault("GroundFailure", True)
        await csms.expect_status(1, "Faulted", error="GroundFailure")
    await sp.plug()
    csms.mark()
    r = await csms.call("RemoteStartTransaction", {"idTag": "OTHER", "connectorId": 1})
    assert r["status"] == "Rejected"
    await csms.no_call("StartTransaction", 1.0)
    assert not [p for p in csms.calls("Authorize") if p["idTag"] == "OTHER"]
    c = await connector(sp)
    if why == "occupied":
        assert c["tx"]["id_token"] == "TAG1"
    else:
        assert c["tx"] is None


async def test_TC_026_remote_start_rejected_without_connector_when_all_busy(csms, booted):
    """RemoteStartTransaction without connectorId while every connector is busy -> Rejected."""
    sp = await booted(evses=2)
    assert (await csms.call("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}))["status"] == "Accepted"
    await csms.expect_status(1, "Unavailable")
    await csms.expect_status(2, "Unavailable", since=0)
    assert (await csms.call("RemoteStartTransaction", {"idTag": "X"}))["status"] == "Rejected"
    await csms.no_call("StartTransaction", 0.5)
    assert all(e["transaction"] is None for e in (await sp.status())["evses"])


@pytest.mark.parametrize("cid", [0, 9])
async def test_TC_027_remote_start_connector_id_zero_or_unknown(csms, booted, cid):
    """TC_027_CS: RemoteStartTransaction with connectorId 0 (or a connector that does not exist) -> Rejected."""
    sp = await booted()
    await sp.plug()
    await csms.expect_status(1, "Preparing")
    assert (await csms.call("RemoteStartTransaction", {"idTag": "X", "connectorId": cid}))["status"] == "Rejected"
    await csms.no_call("StartTransaction", 1.0)
    assert (await connector(sp))["status"] == "Preparing"


async def test_TC_028_remote_stop_unknown_transaction(csms, booted):
    """TC_028_CS: RemoteStopTransaction for a transactionId the station does not run -> Rejected.

    The running transaction is left alone; the id of a transaction that already ended is unknown too.
    """
    sp = await booted()
    start = await start_session(csms, sp)
    assert start["idTag"] == "TAG1"
    assert (await csms.call("RemoteStopTransaction", {"transactionId": 4242}))["status"] == "Rejected"
    await csms.no_call("StopTransaction", 1.0)
    assert (await connector(sp))["status"] == "Charging"
    await sp.swipe("TAG1")
    await csms.expect("StopTransaction")
    assert (await csms.call("RemoteStopTransaction", {"transactionId": 1}))["status"] == "Rejected"


# -- 2.12 unlocking non-happy ----------------------------------------------------------------------
async def test_TC_030_unlock_failure_with_transaction(csms, booted):
    """TC_030_CS: UnlockConnector during a transaction with a jammed lock.

    The transaction is stopped first (UnlockCommand), energy stops, the answer is UnlockFailed.
    """
    sp = await booted()
    await start_session(csms, sp)
    await sp.api("POST", "/api/evses/1/sim", {"lock_jammed": True})
    assert (await csms.call("UnlockConnector", {"connectorId": 1}))["status"] == "UnlockFailed"
    stop = await csms.expect("StopTransaction")
    assert stop["reason"] == "UnlockCommand" and stop["transactionId"] == 1
    c = await connector(sp)
    assert c["tx"] is None and not c["offered"]


async def test_TC_030_unlock_failure_without_transaction(csms, booted):
    """TC_030_CS: the lock holds the plug after a session and will not open -> UnlockFailed; once free, Unlocked."""
    sp = await booted(ocpp_config={"UnlockConnectorOnEVSideDisconnect": "false"})
    await start_session(csms, sp)
    await sp.api("POST", "/api/evses/1/sim", {"lock_jammed": True})
    assert (await csms.call("RemoteStopTransaction", {"transactionId": 1}))["status"] == "Accepted"
    await csms.expect("StopTransaction")
    assert (await csms.call("UnlockConnector", {"connectorId": 1}))["status"] == "UnlockFailed"
    await sp.api("POST", "/api/evses/1/sim", {"lock_jammed": False})
    assert (await csms.call("UnlockConnector", {"connectorId": 1}))["status"] == "Unlocked"


@pytest.mark.parametrize("cid", [0, 2, 9])
async def test_TC_031_unlock_unknown_connector(csms, booted, cid):
    """TC_031_CS: UnlockConnector for a connector the station does not have -> NotSupported; nothing moves."""
    sp = await booted()
    await start_session(csms, sp)
    assert (await csms.call("UnlockConnector", {"connectorId": cid}))["status"] == "NotSupported"
    await csms.no_call("StopTransaction", 0.5)
    assert (await connector(sp))["status"] == "Charging"


# -- 2.13 power failure --------------------------------------------------------------------------
@pytest.mark.process  # power cut: kill -9
async def test_TC_032_1_power_failure_during_transaction(csms, booted):
    """TC_032_1_CS: power cut (kill -9) during a transaction with StopTxnSampledData configured.

    Without backup power the station ends the cut transaction when it is back: after the
    BootNotification it sends StopTransaction reason PowerLoss for transaction 1 with a meterStop no
    lower than the last MeterValues it reported, a timestamp between the start and the reboot, and
    the transactionData gathered before the cut (Transaction.Begin plus periodic samples). Exactly
    once: a further restart sends nothing again.
    """
    sp = await booted(ocpp_config={"MeterValueSampleInterval": "1",
                                   "StopTxnSampledData": "Energy.Active.Import.Register"})
    start = await start_session(csms, sp)
    await csms.expect("MeterValues", timeout=5)
    mv = await csms.expect("MeterValues", timeout=5)
    assert mv["transactionId"] == 1
    await asyncio.sleep(0.3)  # whatever comes after the last report, meterStop is at least that
    last = max(energy(m) for m in csms.calls("MeterValues"))
    sp.kill()
    await asyncio.wait_for(csms.disconnected.wait(), 5)
    before_boot = datetime.now(UTC)
    mark = csms.mark()
    sp.start()
    await csms.expect("BootNotification", timeout=15)
    stop = await csms.expect("StopTransaction", timeout=10)
    assert stop["reason"] == "PowerLoss" and stop["transactionId"] == 1
    assert stop["meterStop"] >= int(last) >= start["meterStart"]
    assert ts(start["timestamp"]) <= ts(stop["timestamp"]) <= before_boot
    data = stop["transactionData"]
    contexts = [sv["context"] for m in data for sv in m["sampledValue"]]
    assert contexts[0] == "Transaction.Begin" and "Sample.Periodic" in contexts and "Transaction.End" not in contexts
    assert [a for a, _ in order(csms, mark)] == ["StopTransaction"]
    await csms.expect_status(1, "Available", since=mark)
    # the queue empties (StartupOfTheDevice, queued like every critical security event, goes after it)
    await csms.expect("SecurityEventNotification", lambda p: p["type"] == "StartupOfTheDevice", since=mark)
    await until(lambda: _outbox_empty(sp))
    # a second, orderly restart reports nothing again
    sp.stop()
    await asyncio.wait_for(csms.disconnected.wait(), 5)
    csms.mark()
    sp.start()
    await csms.expect("BootNotification", timeout=15)
    await csms.no_call("StopTransaction", 1.5)


@pytest.mark.process  # power cut: kill -9
async def test_TC_032_2_power_failure_with_queued_messages(csms, booted):
    """TC_032_2_CS with an outage first: a transaction started offline, meter values queued, then a power cut.

    After the reboot everything is delivered in order and nothing is lost: StartTransaction, the
    queued MeterValues (carrying the transactionId the CSMS just gave), StopTransaction PowerLoss.
    """
    sp = await booted(ocpp_config={"MeterValueSampleInterval": "1", "AllowOfflineTxForUnknownId": "true"})
    await go_offline(csms, sp)
    await sp.plug()
    await sp.swipe("OFF1")
    await until(lambda: _has_tx(sp))
    await asyncio.sleep(2.5)  # meter values queue up while offline
    assert (await sp.status())["outbox"] >= 3
    sp.kill()
    csms.responders["StartTransaction"] = lambda p: {"transactionId": 31, "idTagInfo": {"status": "Accepted"}}
    mark = csms.mark()
    sp.start()
    await csms.expect("BootNotification", timeout=15)
    await csms.expect("StopTransaction", timeout=15)
    sent = order(csms, mark)
    actions = [a for a, _ in sent]
    assert actions[0] == "StartTransaction" and actions[-1] == "StopTransaction", actions
    assert actions.count("MeterValues") >= 2 and actions.count("StartTransaction") == 1, actions
    assert sent[0][1]["idTag"] == "OFF1"
    assert all(p["transactionId"] == 31 for a, p in sent[1:])
    mvs = [p for a, p in sent if a == "MeterValues"]
    stamps = [ts(m["meterValue"][0]["timestamp"]) for m in mvs]
    assert stamps == sorted(stamps)
    assert sent[-1][1]["reason"] == "PowerLoss"
    assert sent[-1][1]["meterStop"] >= int(max(energy(m) for m in mvs))
    # then StartupOfTheDevice, queued behind them like every critical security event: the queue empties
    await csms.expect("SecurityEventNotification", lambda p: p["type"] == "StartupOfTheDevice", since=mark)
    await until(lambda: _outbox_empty(sp))


@pytest.mark.process  # power cut: kill -9
async def test_TC_032_power_failure_without_sampled_meter_values(csms, booted):
    """A power cut with MeterValueSampleInterval=0 (nothing sampled): the PowerLoss StopTransaction
    still carries the energy delivered (the meter register read at boot) and a stop time near the
    cut (the station checkpoints running transactions every few seconds), not the start values."""
    sp = await booted(ocpp_config={"MeterValueSampleInterval": "0"})
    start = await start_session(csms, sp)
    await asyncio.sleep(5.5)
    sp.kill()
    cut = datetime.now(UTC)
    await asyncio.wait_for(csms.disconnected.wait(), 5)
    csms.mark()
    sp.start()
    stop = await csms.expect("StopTransaction", timeout=15)
    assert stop["reason"] == "PowerLoss" and stop["transactionId"] == 1
    assert stop["meterStop"] > start["meterStart"]
    assert ts(start["timestamp"]).timestamp() + 4.0 <= ts(stop["timestamp"]).timestamp() <= cut.timestamp()


@pytest.mark.process  # power cut: kill -9
async def test_TC_032_power_loss_report_waits_for_accepted_registration(csms, booted):
    """After a power cut the CSMS first answers BootNotification Pending: the station sends no
    transaction message until it is Accepted, then the PowerLoss StopTransaction follows."""
    sp = await booted()
    await start_session(csms, sp)
    sp.kill()
    await asyncio.wait_for(csms.disconnected.wait(), 5)
    csms.boot_status, csms.boot_interval = "Pending", 1
    csms.mark()
    sp.start()
    await csms.expect("BootNotification", timeout=15)
    await csms.no_call("StopTransaction", 1.5)
    csms.boot_status = "Accepted"
    await csms.expect("BootNotification", lambda p: True, timeout=5)
    stop = await csms.expect("StopTransaction", timeout=10)
    assert stop["reason"] == "PowerLoss" and stop["transactionId"] == 1


@pytest.mark.process  # power cut: kill -9
async def test_power_cut_while_offline_with_finished_transaction_queued(csms, booted):
    """A whole transaction happens offline, then a power cut before the link is back: after the
    reboot StartTransaction and StopTransaction (reason Local, not PowerLoss) are delivered in order,
    exactly once each."""
    sp = await booted(ocpp_config={"AllowOfflineTxForUnknownId": "true"})
    await go_offline(csms, sp)
    await sp.plug()
    await sp.swipe("OFF1")
    await until(lambda: _has_tx(sp))
    await asyncio.sleep(0.5)
    await sp.swipe("OFF1")
    await until(lambda: _no_tx(sp))
    sp.kill()
    csms.responders["StartTransaction"] = lambda p: {"transactionId": 44, "idTagInfo": {"status": "Accepted"}}
    mark = csms.mark()
    sp.start()
    await csms.expect("StopTransaction", timeout=15)
    await csms.no_call("StopTransaction", 1.0)
    sent = order(csms, mark)
    assert [a for a, _ in sent] == ["StartTransaction", "StopTransaction"]
    assert sent[1][1]["transactionId"] == 44 and sent[1][1]["reason"] == "Local" and sent[1][1]["idTag"] == "OFF1"


async def _has_tx(sp: StationProcess) -> bool:
    return (await connector(sp))["tx"] is not None


@pytest.mark.process  # power cut: kill -9
async def test_TC_034_power_failure_with_unavailable_status(csms, booted):
    """TC_034_CS: a connector set Inoperative stays Unavailable across a power cut; it cannot be used until Operative."""
    sp = await booted()
    assert (await csms.call("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}))["status"] == "Accepted"
    await csms.expect_status(1, "Unavailable")
    sp.kill()
    await asyncio.wait_for(csms.disconnected.wait(), 5)
    csms.mark()
    sp.start()
    await csms.expect("BootNotification", timeout=15)
    await csms.expect_status(1, "Unavailable")
    assert (await csms.call("RemoteStartTransaction", {"idTag": "X", "connectorId": 1}))["status"] == "Rejected"
    await sp.wait_api()
    await sp.plug()
    await sp.swipe("TAG1")
    await csms.no_call("StartTransaction", 1.0)
    assert (await csms.call("ChangeAvailability", {"connectorId": 1, "type": "Operative"}))["status"] == "Accepted"
    await csms.expect_status(1, "Preparing")


@pytest.mark.process  # power cut: kill -9
async def test_TC_034_scheduled_unavailable_survives_power_cut(csms, booted):
    """ChangeAvailability Inoperative during a transaction is Scheduled; a power cut ends the
    transaction (PowerLoss), so after the reboot the connector is Unavailable as the CSMS asked."""
    sp = await booted()
    await start_session(csms, sp)
    assert (await csms.call("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}))["status"] == "Scheduled"
    sp.kill()
    await asyncio.wait_for(csms.disconnected.wait(), 5)
    csms.mark()
    sp.start()
    await csms.expect("BootNotification", timeout=15)
    await csms.expect_status(1, "Unavailable")
    assert (await csms.expect("StopTransaction", since=0))["reason"] == "PowerLoss"


async def test_change_availability_operative_cancels_scheduled_inoperative(csms, booted):
    """Inoperative during a transaction is Scheduled; an Operative request before the transaction
    ends replaces it, so the connector stays available after the transaction."""
    sp = await booted()
    await start_session(csms, sp)
    assert (await csms.call("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}))["status"] == "Scheduled"
    assert (await csms.call("ChangeAvailability", {"connectorId": 1, "type": "Operative"}))["status"] == "Accepted"
    await sp.swipe("TAG1")
    await csms.expect("StopTransaction")
    await sp.unplug()
    await csms.expect_status(1, "Available")
    await csms.no_call("StatusNotification", 1.0, lambda p: p["status"] == "Unavailable")


# -- 2.14 offline behaviour ------------------------------------------------------------------------
async def test_TC_036_connection_loss_during_transaction(csms, booted):
    """TC_036_CS: the link is lost during a transaction; the session goes on.

    MeterValues sampled while offline and the StopTransaction are queued and delivered after the
    reconnect, in order, each with transactionId 1; the reconnect is not a reboot.
    """
    sp = await booted(ocpp_config={"MeterValueSampleInterval": "1"})
    await start_session(csms, sp)
    await go_offline(csms, sp)
    await asyncio.sleep(2.5)
    assert (await connector(sp))["status"] == "Charging"
    await sp.swipe("TAG1")
    await until(lambda: _no_tx(sp))
    queued = (await sp.status())["outbox"]
    assert queued >= 3  # >= 2 MeterValues + StopTransaction
    mark = len(csms.received)
    await go_online(csms, sp)
    stop = await csms.expect("StopTransaction", timeout=10)
    sent = order(csms, mark)
    assert [a for a, _ in sent] == ["MeterValues"] * (queued - 1) + ["StopTransaction"]
    assert all(p["transactionId"] == 1 for _, p in sent)
    stamps = [ts(p["meterValue"][0]["timestamp"]) for a, p in sent[:-1]]
    assert stamps == sorted(stamps) and stamps[-1] <= ts(stop["timestamp"])
    assert stop["reason"] == "Local" and stop["idTag"] == "TAG1"
    assert stop["meterStop"] >= int(max(energy(p) for _, p in sent[:-1]))
    assert len(csms.calls("BootNotification")) == 1, "a reconnect is not a reboot"
    await csms.expect_status(1, "Finishing", timeout=5, since=mark)


async def _no_tx(sp: StationProcess) -> bool:
    return (await connector(sp))["tx"] is None


async def test_TC_036_csms_outage_during_transaction(csms, booted):
    """The CSMS itself goes away mid-transaction (server down), then comes back on the same address.

    The station keeps charging, queues its MeterValues, reconnects by itself and delivers them in order.
    """
    sp = await booted(ocpp_config={"MeterValueSampleInterval": "1"})
    await start_session(csms, sp)
    await csms.close()
    await asyncio.wait_for(csms.disconnected.wait(), 5)
    await asyncio.sleep(2.5)
    c = await connector(sp)
    assert c["status"] == "Charging" and c["outbox"] >= 2
    mark = csms.mark()
    await csms.start(port=csms.port)
    await asyncio.wait_for(csms.connected.wait(), 20)
    await until(lambda: _outbox_empty(sp), timeout=10)
    sent = order(csms, mark)
    assert len(sent) >= 2 and all(a == "MeterValues" and p["transactionId"] == 1 for a, p in sent)
    stamps = [ts(p["meterValue"][0]["timestamp"]) for _, p in sent]
    assert stamps == sorted(stamps)
    assert len(csms.calls("BootNotification")) == 1
    await sp.swipe("TAG1")
    assert (await csms.expect("StopTransaction"))["transactionId"] == 1


async def _outbox_empty(sp: StationProcess) -> bool:
    return (await sp.status())["outbox"] == 0


async def test_TC_037_1_offline_start_valid_id(csms, booted):
    """TC_037_1_CS: offline, a cached valid idTag starts a transaction (LocalAuthorizeOffline=true).

    Energy flows at once; after the reconnect StartTransaction carries the idTag, the meter start and
    the time of the offline start, and the CSMS's transactionId is used from then on.
    """
    sp = await booted(ocpp_config={"LocalAuthorizeOffline": "true", "MeterValueSampleInterval": "1"})
    await start_session(csms, sp)  # TAG1 goes into the authorization cache
    await sp.swipe("TAG1")
    await csms.expect("StopTransaction")
    await sp.unplug()
    await csms.expect_status(1, "Available")
    await go_offline(csms, sp)
    await sp.plug()
    started_at = wall_now()
    await sp.swipe("TAG1")
    await until(lambda: _has_tx(sp))
    c = await connector(sp)
    assert c["status"] == "Charging" and c["offered"]
    await asyncio.sleep(1.5)
    csms.responders["StartTransaction"] = lambda p: {"transactionId": 12, "idTagInfo": {"status": "Accepted"}}
    mark = len(csms.received)
    await go_online(csms, sp)
    start = await csms.expect("StartTransaction", timeout=10)
    assert start["idTag"] == "TAG1" and start["connectorId"] == 1
    assert abs((ts(start["timestamp"]) - started_at).total_seconds()) < 1.5
    await csms.expect("MeterValues", timeout=5)
    assert not [1 for r in csms.received[mark:] if r.action == "Authorize"], "a cached id needs no Authorize"
    await until(lambda: _outbox_empty(sp))
    assert all(p["transactionId"] == 12 for a, p in order(csms, mark) if a != "StartTransaction")
    assert (await csms.call("RemoteStopTransaction", {"transactionId": 12}))["status"] == "Accepted"
    stop = await csms.expect("StopTransaction")
    assert stop["transactionId"] == 12 and stop["reason"] == "Remote"


async def test_TC_037_1_offline_cached_id_refused_when_local_authorize_offline_false(csms, booted):
    """With LocalAuthorizeOffline=false a cached idTag does not start a transaction while offline."""
    sp = await booted(ocpp_config={"LocalAuthorizeOffline": "false"})
    await start_session(csms, sp)
    await sp.swipe("TAG1")
    await csms.expect("StopTransaction")
    await sp.unplug()
    await go_offline(csms, sp)
    await sp.plug()
    await sp.swipe("TAG1")
    await asyncio.sleep(1.0)
    assert (await connector(sp))["tx"] is None
    assert (await sp.status())["outbox"] == 0


async def test_offline_unknown_id_refused_by_default(csms, booted):
    """Offline with AllowOfflineTxForUnknownId=false: an unknown idTag starts nothing and nothing is queued."""
    sp = await booted(ocpp_config={"AllowOfflineTxForUnknownId": "false"})
    await go_offline(csms, sp)
    await sp.plug()
    await sp.swipe("NOBODY")
    await asyncio.sleep(1.0)
    c = await connector(sp)
    assert c["tx"] is None and c["outbox"] == 0 and not c["offered"]
    await go_online(csms, sp)
    await csms.expect_status(1, "Preparing")
    await csms.no_call("StartTransaction", 1.0)


async def _offline_start_unknown(csms, booted, **keys):
    cfg = {"AllowOfflineTxForUnknownId": "true", "MeterValueSampleInterval": "1"}
    cfg.update(keys)
    sp = await booted(ocpp_config=cfg)
    await go_offline(csms, sp)
    await sp.plug()
    await sp.swipe("UNKNOWN")
    await until(lambda: _has_tx(sp))
    assert (await connector(sp))["status"] == "Charging"
    csms.responders["StartTransaction"] = lambda p: {"transactionId": 5, "idTagInfo": {"status": "Invalid"}}
    await go_online(csms, sp)
    start = await csms.expect("StartTransaction", timeout=10)
    assert start["idTag"] == "UNKNOWN"
    return sp


async def test_TC_037_2_offline_invalid_id_stop_transaction_on_invalid_id_false(csms, booted):
    """TC_037_2_CS: offline start with an unknown idTag; StartTransaction.conf says Invalid and
    StopTransactionOnInvalidId=false (MaxEnergyOnInvalidId=0): the transaction continues but energy
    delivery stops (SuspendedEVSE). The driver ends it with the same card: StopTransaction Local, id 5."""
    sp = await _offline_start_unknown(csms, booted, StopTransactionOnInvalidId="false")
    await csms.expect_status(1, "SuspendedEVSE", timeout=10)
    await csms.no_call("StopTransaction", 1.5)
    c = await connector(sp)
    assert c["tx"] is not None and c["tx"]["id"] == 5 and not c["power"]
    await sp.swipe("UNKNOWN")
    stop = await csms.expect("StopTransaction")
    assert stop["transactionId"] == 5 and stop["reason"] == "Local"


async def test_TC_037_2_max_energy_on_invalid_id(csms, booted):
    """StopTransactionOnInvalidId=false with MaxEnergyOnInvalidId=N: after the Invalid
    StartTransaction.conf the EV may still take energy until N Wh were delivered in the transaction,
    then energy stops (SuspendedEVSE); the transaction is not stopped."""
    sp = await _offline_start_unknown(csms, booted, StopTransactionOnInvalidId="false", MaxEnergyOnInvalidId="25")
    await asyncio.sleep(0.5)
    assert (await connector(sp))["status"] == "Charging"  # still below the allowance (22 kW: ~6 Wh/s)
    sus = await csms.expect_status(1, "SuspendedEVSE", timeout=10)
    assert sus
    await asyncio.sleep(0.5)
    c = await connector(sp)
    assert c["tx"] is not None and not c["power"]
    assert 25 <= c["tx"]["energy_wh"] <= 40
    assert not csms.calls("StopTransaction")


async def test_TC_037_3_offline_invalid_id_stop_transaction_on_invalid_id_true(csms, booted):
    """TC_037_3_CS: as TC_037_2 but StopTransactionOnInvalidId=true: the station stops the transaction
    with reason DeAuthorized (transactionId 5), energy stops and the connector is Finishing."""
    sp = await _offline_start_unknown(csms, booted, StopTransactionOnInvalidId="true")
    stop = await csms.expect("StopTransaction", timeout=10)
    assert stop["reason"] == "DeAuthorized" and stop["transactionId"] == 5
    await csms.expect_status(1, "Finishing")
    c = await connector(sp)
    assert c["tx"] is None and not c["offered"]


async def test_TC_038_offline_stop_transaction(csms, booted):
    """TC_038_CS: online start, the link drops, the driver stops with the card while offline.

    After the reconnect: StopTransaction for transaction 1 with idTag, reason Local and the time of
    the stop (not of the reconnect), and the status Finishing that changed while offline."""
    sp = await booted()
    await start_session(csms, sp)
    await go_offline(csms, sp)
    await sp.swipe("TAG1")
    await until(lambda: _no_tx(sp))
    stopped_at = wall_now()
    await asyncio.sleep(1.5)
    await go_online(csms, sp)
    stop = await csms.expect("StopTransaction", timeout=10)
    assert stop["transactionId"] == 1 and stop["idTag"] == "TAG1" and stop["reason"] == "Local"
    assert abs((ts(stop["timestamp"]) - stopped_at).total_seconds()) < 1.0
    await csms.expect_status(1, "Finishing", since=0)


async def test_TC_039_offline_transactions_in_order(csms, booted):
    """TC_039_CS: two complete transactions while offline; after the reconnect both are delivered in
    order (Start, Stop, Start, Stop) and each StopTransaction carries the transactionId the CSMS gave
    to its own StartTransaction."""
    sp = await booted(ocpp_config={"AllowOfflineTxForUnknownId": "true"})
    await go_offline(csms, sp)
    for tag in ("OFF1", "OFF2"):
        await sp.plug()
        await sp.swipe(tag)
        await until(lambda: _has_tx(sp))
        await asyncio.sleep(0.3)
        await sp.swipe(tag)
        await until(lambda: _no_tx(sp))
        await sp.unplug()
    ids = iter([77, 78])
    csms.responders["StartTransaction"] = lambda p: {"transactionId": next(ids), "idTagInfo": {"status": "Accepted"}}
    mark = len(csms.received)
    await go_online(csms, sp)
    await csms.expect("StopTransaction", lambda p: p["transactionId"] == 78, timeout=10)
    sent = order(csms, mark)
    assert [a for a, _ in sent] == ["StartTransaction", "StopTransaction"] * 2
    assert [sent[0][1]["idTag"], sent[2][1]["idTag"]] == ["OFF1", "OFF2"]
    assert [sent[1][1]["transactionId"], sent[3][1]["transactionId"]] == [77, 78]
    assert ts(sent[0][1]["timestamp"]) <= ts(sent[1][1]["timestamp"]) <= ts(sent[2][1]["timestamp"])
    assert sent[1][1]["meterStop"] >= sent[0][1]["meterStart"]


async def test_transaction_message_attempts_start_retried_then_accepted(csms, booted):
    """TransactionMessageAttempts=3, TransactionMessageRetryInterval=1: StartTransaction answered
    with a CallError twice is sent again after 1 s and then 2 s (interval x preceding transmissions);
    the third is accepted and later messages of the transaction use its transactionId."""
    sp = await booted(ocpp_config={"TransactionMessageAttempts": "3", "TransactionMessageRetryInterval": "1"})
    seen: list[float] = []

    def start(p):
        seen.append(asyncio.get_running_loop().time())
        if len(seen) < 3:
            return CallErrorReply("InternalError", "not now")
        return {"transactionId": 9, "idTagInfo": {"status": "Accepted"}}

    csms.responders["StartTransaction"] = start
    await sp.plug()
    await sp.swipe("TAG1")
    await csms.expect_status(1, "Charging")
    await until(lambda: _outbox_empty(sp), timeout=8)
    assert len(seen) == 3
    assert seen[1] - seen[0] >= 0.9 and seen[2] - seen[1] >= 1.9
    await sp.swipe("TAG1")
    assert (await csms.expect("StopTransaction"))["transactionId"] == 9
    assert len(csms.calls("StartTransaction")) == 3


async def test_transaction_message_attempts_gives_up(csms, booted):
    """A StopTransaction the CSMS keeps refusing (CallError) is sent exactly TransactionMessageAttempts
    times, then dropped; the queue moves on (a later transaction is delivered)."""
    sp = await booted(ocpp_config={"TransactionMessageAttempts": "2", "TransactionMessageRetryInterval": "1"})
    refused = {"n": 0}

    def stop(p):
        refused["n"] += 1
        return CallErrorReply("InternalError", "cannot store")

    csms.responders["StopTransaction"] = stop
    await start_session(csms, sp)
    await sp.swipe("TAG1")
    await until(lambda: _outbox_empty(sp), timeout=6)
    await csms.no_call("StopTransaction", 1.5)
    assert refused["n"] == 2
    del csms.responders["StopTransaction"]
    await sp.unplug()
    await start_session(csms, sp)
    await sp.swipe("TAG1")
    assert (await csms.expect("StopTransaction", lambda p: p["transactionId"] == 2))["reason"] == "Local"


# -- 2.15 configuration non-happy -------------------------------------------------------------------
async def test_TC_040_1_configuration_key_not_supported(csms, booted):
    """TC_040_1_CS: ChangeConfiguration of a key the station does not know -> NotSupported; it stays unknown."""
    await booted()
    assert (await csms.call("ChangeConfiguration", {"key": "NoSuchKey", "value": "1"}))["status"] == "NotSupported"
    got = await csms.call("GetConfiguration", {"key": ["NoSuchKey"]})
    assert got.get("unknownKey") == ["NoSuchKey"] and not got.get("configurationKey")


@pytest.mark.parametrize(
    "key,value",
    [
        ("MeterValueSampleInterval", "-1"),
        ("MeterValueSampleInterval", "abc"),
        ("HeartbeatInterval", "1.5"),
        ("StopTransactionOnInvalidId", "maybe"),
        ("MeterValuesSampledData", "Bogus.Measurand"),
        ("ConnectionTimeOut", ""),
    ],
)
async def test_TC_040_2_configuration_key_invalid_value(csms, booted, key, value):
    """TC_040_2_CS: ChangeConfiguration with a value the key cannot take -> Rejected; the old value stays."""
    await booted()
    before = (await csms.call("GetConfiguration", {"key": [key]}))["configurationKey"][0]["value"]
    assert (await csms.call("ChangeConfiguration", {"key": key, "value": value}))["status"] == "Rejected"
    after = (await csms.call("GetConfiguration", {"key": [key]}))["configurationKey"][0]
    assert after["value"] == before


@pytest.mark.parametrize("key", ["NumberOfConnectors", "SupportedFeatureProfiles", "GetConfigurationMaxKeys"])
async def test_TC_040_2_read_only_key_rejected(csms, booted, key):
    """ChangeConfiguration of a read-only key -> Rejected and the value is unchanged."""
    await booted()
    before = (await csms.call("GetConfiguration", {"key": [key]}))["configurationKey"][0]
    assert before["readonly"] is True
    assert (await csms.call("ChangeConfiguration", {"key": key, "value": "7"}))["status"] == "Rejected"
    assert (await csms.call("GetConfiguration", {"key": [key]}))["configurationKey"][0]["value"] == before["value"]


# -- 2.16 fault behaviour ----------------------------------------------------------------------------
async def test_TC_041_fault_behavior(csms, booted):
    """TC_041_CS: a fault makes the connector Faulted with its errorCode (and info); cleared it is
    Available again with NoError. While Faulted, a card or a remote start does not start anything."""
    sp = await booted()
    await sp.api("POST", "/api/evses/1/fault", {"error_code": "GroundFailure", "active": True, "info": "RCD tripped"})
    sn = await csms.expect_status(1, "Faulted", error="GroundFailure")
    assert sn.get("info") == "RCD tripped"
    await sp.plug()
    await sp.swipe("TAG1")
    assert (await csms.call("RemoteStartTransaction", {"idTag": "X", "connectorId": 1}))["status"] == "Rejected"
    await csms.no_call("StartTransaction", 1.0)
    await sp.unplug()
    await sp.fault("GroundFailure", False)
    await csms.expect_status(1, "Available", error="NoError")


async def test_TC_041_warning_error_code_keeps_connector_usable(csms, booted):
    """An error that does not stop the connector (ReaderFailure) is reported with the current status,
    not Faulted; clearing it sends NoError."""
    sp = await booted()
    await sp.fault("ReaderFailure", True)
    await csms.expect_status(1, "Available", error="ReaderFailure")
    await sp.fault("ReaderFailure", False)
    await csms.expect_status(1, "Available", error="NoError")


async def test_TC_041_fault_during_transaction_ends_it(csms, booted):
    """A fault during a transaction stops energy and ends the transaction (StopTransaction reason
    Other, with its meterStop); when the fault clears with the cable still in, Finishing, then Available."""
    sp = await booted(ocpp_config={"MeterValueSampleInterval": "1"})
    start = await start_session(csms, sp)
    await csms.expect("MeterValues", timeout=5)
    await sp.fault("OverCurrentFailure", True)
    await csms.expect_status(1, "Faulted", error="OverCurrentFailure")
    stop = await csms.expect("StopTransaction", since=0)
    assert stop["reason"] == "Other" and stop["transactionId"] == 1 and stop["meterStop"] >= start["meterStart"]
    c = await connector(sp)
    assert c["tx"] is None and not c["offered"] and not c["power"]
    await csms.no_call("MeterValues", 1.5)
    await sp.fault("OverCurrentFailure", False)
    await csms.expect_status(1, "Finishing", error="NoError")
    await sp.unplug()
    await csms.expect_status(1, "Available")


async def test_TC_041_fault_during_offline_transaction_is_reported_after_reconnect(csms, booted):
    """A fault while offline ends the transaction; its StopTransaction is not lost but delivered on reconnect."""
    sp = await booted()
    await start_session(csms, sp)
    await go_offline(csms, sp)
    await sp.fault("HighTemperature", True)
    await until(lambda: _no_tx(sp))
    await go_online(csms, sp)
    stop = await csms.expect("StopTransaction", timeout=10)
    assert stop["transactionId"] == 1 and stop["reason"] == "Other"
    await csms.expect_status(1, "Faulted", error="HighTemperature", since=0)

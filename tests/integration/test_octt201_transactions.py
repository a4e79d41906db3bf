"""OCPP 2.0.1 block E (transactions) and J (meter values) over a real websocket, in process on
virtual time: TxStartPoint / TxStopPoint options, local start and stop, EV-side disconnect,
GetTransactionStatus, offline behaviour and retries of TransactionEvents."""

from __future__ import annotations

import asyncio

from tests.conftest import var
from tests.integration.harness import CallErrorReply, start_transaction_201


def points(start: str, stop: str = "EVConnected,Authorized") -> list[dict]:
    return [var("TxCtrlr", "TxStartPoint", start), var("TxCtrlr", "TxStopPoint", stop)]


def started(p: dict) -> bool:
    return p["eventType"] == "Started"


def ended(p: dict) -> bool:
    return p["eventType"] == "Ended"


def seq_ok(csms, tx_id: str) -> None:
    seqs = [p["seqNo"] for p in csms.calls("TransactionEvent") if p["transactionInfo"]["transactionId"] == tx_id]
    assert seqs == list(range(len(seqs))), seqs


async def test_TC_E_01_CS_start_option_power_path_closed(csms201, booted201):
    sp = await booted201(variables=points("PowerPathClosed"))
    await sp.plug()
    await sp.swipe("TAG1")
    await csms201.expect("Authorize")
    ev = await csms201.expect("TransactionEvent", started)
    assert ev["transactionInfo"]["chargingState"] == "Charging"
    assert ev["idToken"] == {"idToken": "TAG1", "type": "ISO14443"}


async def test_TC_E_02_CS_start_option_energy_transfer(csms201, booted201):
    sp = await booted201(variables=points("EnergyTransfer"))
    ev = await start_transaction_201(csms201, sp)
    assert ev["transactionInfo"]["chargingState"] == "Charging"
    assert ev["triggerReason"] == "ChargingStateChanged"


async def test_TC_E_09_CS_start_option_ev_connected(csms201, booted201):
    sp = await booted201(variables=points("EVConnected"))
    await sp.plug()
    ev = await csms201.expect("TransactionEvent", started)
    assert ev["triggerReason"] == "CablePluggedIn" and "idToken" not in ev
    assert ev["transactionInfo"]["chargingState"] == "EVConnected"
    await sp.swipe("TAG1")
    upd = await csms201.expect("TransactionEvent", lambda p: p["triggerReason"] == "Authorized")
    assert upd["eventType"] == "Updated" and upd["idToken"]["idToken"] == "TAG1"
    seq_ok(csms201, ev["transactionInfo"]["transactionId"])


async def test_TC_E_10_CS_start_option_authorized_local(csms201, booted201):
    sp = await booted201(variables=points("Authorized"))
    await sp.swipe("TAG1")
    ev = await csms201.expect("TransactionEvent", started)
    assert ev["triggerReason"] == "Authorized" and ev["idToken"]["idToken"] == "TAG1"
    assert ev["transactionInfo"]["chargingState"] == "Idle"
    await sp.plug()
    upd = await csms201.expect("TransactionEvent", lambda p: p["triggerReason"] == "CablePluggedIn")
    assert upd["eventType"] == "Updated"


async def test_TC_E_13_CS_start_option_authorized_remote(csms201, booted201):
    await booted201(variables=points("Authorized"))
    answer = await csms201.call("RequestStartTransaction", {"idToken": {"idToken": "R1", "type": "Central"},
                                                            "remoteStartId": 42, "evseId": 1})
    assert answer["status"] == "Accepted"
    ev = await csms201.expect("TransactionEvent", started)
    assert ev["triggerReason"] == "RemoteStart"
    assert ev["transactionInfo"]["remoteStartId"] == 42


async def test_TC_E_12_CS_start_option_parking_bay_occupied(csms201, booted201):
    """No bay sensor: ParkingBayOccupancy is taken when the EV is detected at the connector."""
    sp = await booted201(variables=points("ParkingBayOccupancy"))
    await sp.plug()
    ev = await csms201.expect("TransactionEvent", started)
    assert ev["triggerReason"] == "CablePluggedIn"


async def test_TC_E_03_CS_local_start_cable_first(csms201, booted201):
    sp = await booted201()
    await sp.plug()
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Occupied")
    await sp.swipe("TAG1")
    await csms201.expect("Authorize")
    ev = await csms201.expect("TransactionEvent", started)
    assert ev["evse"] == {"id": 1, "connectorId": 1}


async def test_TC_E_04_CS_local_start_authorization_first(csms201, booted201):
    sp = await booted201()
    await sp.swipe("TAG1")
    await csms201.expect("Authorize")
    await sp.plug()
    ev = await csms201.expect("TransactionEvent", started)
    assert ev["idToken"]["idToken"] == "TAG1"


async def test_TC_E_05_CS_authorization_first_cable_timeout(csms201, booted201):
    sp = await booted201(variables=points("Authorized", "EVConnected,Authorized"))
    await sp.swipe("TAG1")
    ev = await csms201.expect("TransactionEvent", started)
    end = await csms201.expect("TransactionEvent", ended, timeout=15)
    assert end["triggerReason"] == "EVConnectTimeout"
    assert end["transactionInfo"]["stoppedReason"] == "Timeout"
    seq_ok(csms201, ev["transactionInfo"]["transactionId"])


async def test_TC_E_06_CS_local_stop_accepted(csms201, booted201):
    sp = await booted201()
    ev = await start_transaction_201(csms201, sp)
    await sp.swipe("TAG1")
    end = await csms201.expect("TransactionEvent", ended)
    assert end["triggerReason"] == "StopAuthorized"
    assert end["transactionInfo"]["stoppedReason"] == "Local"
    assert end["idToken"]["idToken"] == "TAG1"
    assert any(mv["sampledValue"][0]["context"] == "Transaction.End" for mv in end["meterValue"])
    seq_ok(csms201, ev["transactionInfo"]["transactionId"])


async def test_TC_E_14_CS_stop_point_ev_connected_ends_at_unplug(csms201, booted201):
    """TxStopPoint EVConnected: the local stop deauthorizes (Updated); the connection to the EV is
    lost (the simulated unplug stands for either side of the cable) and that ends it."""
    sp = await booted201(variables=points("PowerPathClosed", "EVConnected"))
    ev = await start_transaction_201(csms201, sp)
    await sp.swipe("TAG1")
    upd = await csms201.expect("TransactionEvent", lambda p: p["triggerReason"] == "StopAuthorized")
    assert upd["eventType"] == "Updated"
    await csms201.no_call("TransactionEvent", within=3, pred=ended)
    await sp.unplug()
    end = await csms201.expect("TransactionEvent", ended)
    assert end["triggerReason"] == "EVDeparted" and end["transactionInfo"]["stoppedReason"] == "Local"
    seq_ok(csms201, ev["transactionInfo"]["transactionId"])


async def test_TC_E_21_CS_stop_authorized_remote(csms201, booted201):
    sp = await booted201()
    ev = await start_transaction_201(csms201, sp)
    tx_id = ev["transactionInfo"]["transactionId"]
    assert (await csms201.call("RequestStopTransaction", {"transactionId": tx_id}))["status"] == "Accepted"
    end = await csms201.expect("TransactionEvent", ended)
    assert end["triggerReason"] == "RemoteStop" and end["transactionInfo"]["stoppedReason"] == "Remote"


async def test_TC_E_20_CS_ev_side_disconnect(csms201, booted201):
    sp = await booted201()
    await start_transaction_201(csms201, sp)
    await sp.unplug()
    end = await csms201.expect("TransactionEvent", ended)
    assert end["triggerReason"] == "EVCommunicationLost"
    assert end["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    assert len([p for p in csms201.calls("TransactionEvent") if ended(p)]) == 1


async def test_TC_E_26_CS_ev_side_disconnect_suspends(csms201, booted201):
    sp = await booted201(variables=[var("TxCtrlr", "StopTxOnEVSideDisconnect", "false")])
    await start_transaction_201(csms201, sp)
    await sp.unplug()
    upd = await csms201.expect("TransactionEvent", lambda p: p["triggerReason"] == "EVCommunicationLost")
    assert upd["eventType"] == "Updated"
    await csms201.no_call("TransactionEvent", within=3, pred=ended)


async def test_TC_E_16_CS_deauthorized_invalid_id_token(csms201, booted201):
    """The CSMS answers the Started event's idToken Invalid: the transaction is deauthorized and ends."""
    csms201.responders["TransactionEvent"] = (
        lambda p: {"idTokenInfo": {"status": "Invalid"}} if "idToken" in p else None)
    sp = await booted201(variables=[var("AuthCtrlr", "LocalPreAuthorize", "false")])
    csms201.responders["Authorize"] = lambda p: {"idTokenInfo": {"status": "Accepted"}}
    await start_transaction_201(csms201, sp)
    end = await csms201.expect("TransactionEvent", ended)
    assert end["triggerReason"] == "Deauthorized"
    assert end["transactionInfo"]["stoppedReason"] == "DeAuthorized"


async def test_TC_E_30_CS_transaction_status_ongoing_without_queue(csms201, booted201):
    sp = await booted201()
    ev = await start_transaction_201(csms201, sp)
    tx_id = ev["transactionInfo"]["transactionId"]
    got = await csms201.call("GetTransactionStatus", {"transactionId": tx_id})
    assert got == {"ongoingIndicator": True, "messagesInQueue": False}


async def test_TC_E_28_CS_transaction_status_unknown(csms201, booted201):
    await booted201()
    got = await csms201.call("GetTransactionStatus", {"transactionId": "no-such-tx"})
    assert got == {"ongoingIndicator": False, "messagesInQueue": False}


async def test_TC_E_31_32_CS_transaction_status_ended_with_and_without_queue(csms201, booted201):
    sp = await booted201()
    ev = await start_transaction_201(csms201, sp)
    tx_id = ev["transactionInfo"]["transactionId"]
    csms201.silent.add("TransactionEvent")  # the Ended event stays in the queue
    await sp.swipe("TAG1")
    await csms201.expect("TransactionEvent", ended)
    got = await csms201.call("GetTransactionStatus", {"transactionId": tx_id})
    assert got == {"ongoingIndicator": False, "messagesInQueue": True}
    csms201.silent.clear()
    await csms201.expect("TransactionEvent", ended, timeout=60)  # sent again
    await asyncio.sleep(1)
    got = await csms201.call("GetTransactionStatus", {"transactionId": tx_id})
    assert got == {"ongoingIndicator": False, "messagesInQueue": False}


async def test_TC_E_33_34_CS_transaction_status_without_id(csms201, booted201):
    sp = await booted201(variables=[var("AuthCtrlr", "OfflineTxForUnknownIdEnabled", "true")])
    assert await csms201.call("GetTransactionStatus", {}) == {"messagesInQueue": False}
    await sp.link(False)
    await sp.plug()
    await sp.swipe("TAG1")
    await asyncio.sleep(2)
    await sp.link(True)
    await csms201.connected.wait()
    csms201.silent.add("TransactionEvent")
    await csms201.expect("TransactionEvent", started, timeout=15)
    assert await csms201.call("GetTransactionStatus", {}) == {"messagesInQueue": True}


async def test_TC_E_40_CS_connection_loss_during_transaction(csms201, booted201):
    sp = await booted201()
    ev = await start_transaction_201(csms201, sp)
    tx_id = ev["transactionInfo"]["transactionId"]
    await sp.link(False)
    await csms201.disconnected.wait()
    await sp.swipe("TAG1")  # stopped while offline (the cache knows TAG1)
    await asyncio.sleep(2)
    await sp.link(True)
    end = await csms201.expect("TransactionEvent", ended, timeout=30)
    assert end["offline"] is True
    assert end["transactionInfo"]["transactionId"] == tx_id
    seq_ok(csms201, tx_id)


async def test_TC_E_43_CS_transaction_during_offline_period(csms201, booted201):
    sp = await booted201(variables=[var("AuthCtrlr", "OfflineTxForUnknownIdEnabled", "true")])
    await sp.link(False)
    await csms201.disconnected.wait()
    await sp.plug()
    await sp.swipe("OFF1")
    await asyncio.sleep(5)
    await sp.swipe("OFF1")
    await asyncio.sleep(2)
    await sp.link(True)
    s = await csms201.expect("TransactionEvent", started, timeout=30)
    e = await csms201.expect("TransactionEvent", ended, timeout=30)
    assert s["offline"] is True and e["offline"] is True
    assert s["transactionInfo"]["transactionId"] == e["transactionInfo"]["transactionId"]
    seq_ok(csms201, s["transactionInfo"]["transactionId"])


async def test_TC_E_50_CS_retry_max_count_reached_call_error(csms201, booted201):
    """A TransactionEvent the CSMS never answers is sent MessageAttempts times, then dropped."""
    sp = await booted201(variables=[var("OCPPCommCtrlr", "MessageAttempts", "3", instance="TransactionEvent")])
    csms201.responders["TransactionEvent"] = lambda p: CallErrorReply("InternalError", "no")
    await start_transaction_201(csms201, sp)
    await asyncio.sleep(30)
    tries = [p for p in csms201.calls("TransactionEvent") if started(p)]
    assert len(tries) == 3
    assert len({p["seqNo"] for p in tries}) == 1


async def test_TC_E_51_CS_retry_success_before_max_call_error(csms201, booted201):
    sp = await booted201(variables=[var("OCPPCommCtrlr", "MessageAttempts", "3", instance="TransactionEvent")])
    answers = iter([CallErrorReply("InternalError", "no"), None])
    csms201.responders["TransactionEvent"] = lambda p: next(answers, None)
    await start_transaction_201(csms201, sp)
    await asyncio.sleep(10)
    tries = [p for p in csms201.calls("TransactionEvent") if started(p)]
    assert len(tries) == 2


# -- J: meter values -----------------------------------------------------------------------


async def test_TC_J_07_CS_sampled_started_has_begin_values(csms201, booted201):
    sp = await booted201()
    ev = await start_transaction_201(csms201, sp)
    contexts = {sv["context"] for mv in ev["meterValue"] for sv in mv["sampledValue"]}
    assert contexts == {"Transaction.Begin"}


async def test_TC_J_09_CS_sampled_updated(csms201, booted201):
    sp = await booted201(variables=[var("SampledDataCtrlr", "TxUpdatedInterval", "10")])
    await start_transaction_201(csms201, sp)
    upd = await csms201.expect("TransactionEvent", lambda p: p["triggerReason"] == "MeterValuePeriodic", timeout=30)
    measurands = {sv.get("measurand") for mv in upd["meterValue"] for sv in mv["sampledValue"]}
    assert "Energy.Active.Import.Register" in measurands
    assert all(sv["context"] == "Sample.Periodic" for mv in upd["meterValue"] for sv in mv["sampledValue"])


async def test_TC_J_01_CS_clock_aligned_no_transaction(csms201, booted201):
    await booted201(variables=[var("AlignedDataCtrlr", "Interval", "60")])
    mv = await csms201.expect("MeterValues", timeout=130)
    assert mv["evseId"] == 1
    assert all(sv["context"] == "Sample.Clock" for m in mv["meterValue"] for sv in m["sampledValue"])


async def test_TC_J_02_CS_clock_aligned_transaction_ongoing(csms201, booted201):
    sp = await booted201(variables=[var("AlignedDataCtrlr", "Interval", "60")])
    await start_transaction_201(csms201, sp)
    upd = await csms201.expect("TransactionEvent", lambda p: p["triggerReason"] == "MeterValueClock", timeout=130)
    assert upd["eventType"] == "Updated"


async def test_TC_E_15_CS_stop_option_stop_authorized_local(csms201, booted201):
    """TxStopPoint Authorized: the driver's card ends the transaction (Ended, StopAuthorized)."""
    sp = await booted201(variables=points("PowerPathClosed", "Authorized"))
    ev = await start_transaction_201(csms201, sp)
    await sp.swipe("TAG1")
    end = await csms201.expect("TransactionEvent", ended)
    assert end["triggerReason"] == "StopAuthorized" and end["transactionInfo"]["stoppedReason"] == "Local"
    assert end["transactionInfo"]["transactionId"] == ev["transactionInfo"]["transactionId"]


async def test_TC_E_41_CS_retry_max_count_reached_no_answer(csms201, booted201):
    """The CSMS does not answer the TransactionEvent at all: sent MessageAttempts times, then dropped."""
    sp = await booted201(variables=[var("OCPPCommCtrlr", "MessageAttempts", "2", instance="TransactionEvent")])
    csms201.silent.add("TransactionEvent")
    await start_transaction_201(csms201, sp)
    await asyncio.sleep(200)
    tries = [r for r in csms201.received if r.action == "TransactionEvent" and started(r.payload)]
    assert len(tries) == 2
    assert len({r.unique_id for r in tries}) == 1  # the same message sent again


async def test_TC_E_42_CS_retry_success_before_max_no_answer(csms201, booted201):
    sp = await booted201(variables=[var("OCPPCommCtrlr", "MessageAttempts", "3", instance="TransactionEvent")])
    csms201.silent.add("TransactionEvent")
    await start_transaction_201(csms201, sp)
    csms201.silent.clear()
    await csms201.expect("TransactionEvent", started, timeout=120)
    await asyncio.sleep(200)
    tries = [p for p in csms201.calls("TransactionEvent") if started(p)]
    assert len(tries) == 2


async def test_TC_J_10_CS_sampled_ended_has_end_values(csms201, booted201):
    sp = await booted201(variables=[var("SampledDataCtrlr", "TxEndedMeasurands",
                                        "Energy.Active.Import.Register,Power.Active.Import")])
    await start_transaction_201(csms201, sp)
    await asyncio.sleep(30)
    await sp.swipe("TAG1")
    end = await csms201.expect("TransactionEvent", ended)
    values = {sv["measurand"]: sv for mv in end["meterValue"] for sv in mv["sampledValue"]}
    assert values["Energy.Active.Import.Register"]["context"] == "Transaction.End"
    assert values["Energy.Active.Import.Register"]["value"] > 0
    assert "Power.Active.Import" in values


async def test_TC_E_39_CS_deauthorized_timeout(csms201, booted201):
    """TxStartPoint EVConnected: nobody authorizes within EVConnectionTimeOut, the transaction ends."""
    sp = await booted201(variables=points("EVConnected", "EVConnected,Authorized")
                         + [var("TxCtrlr", "EVConnectionTimeOut", "20")])
    await sp.plug()
    ev = await csms201.expect("TransactionEvent", started)
    end = await csms201.expect("TransactionEvent", ended, timeout=40)
    assert end["triggerReason"] == "EVConnectTimeout" and end["transactionInfo"]["stoppedReason"] == "Timeout"
    assert end["transactionInfo"]["transactionId"] == ev["transactionInfo"]["transactionId"]


async def test_ev_connected_transaction_authorized_in_time_keeps_running(csms201, booted201):
    sp = await booted201(variables=points("EVConnected", "EVConnected,Authorized")
                         + [var("TxCtrlr", "EVConnectionTimeOut", "20")])
    await sp.plug()
    await csms201.expect("TransactionEvent", started)
    await sp.swipe("TAG1")
    await csms201.expect("TransactionEvent", lambda p: p["triggerReason"] == "Authorized")
    await csms201.no_call("TransactionEvent", within=60, pred=ended)


async def test_TC_E_29_CS_transaction_status_ongoing_with_queue(csms201, booted201):
    sp = await booted201()
    csms201.silent.add("TransactionEvent")  # the Started event stays in the queue
    ev = await start_transaction_201(csms201, sp)
    got = await csms201.call("GetTransactionStatus", {"transactionId": ev["transactionInfo"]["transactionId"]})
    assert got == {"ongoingIndicator": True, "messagesInQueue": True}


async def test_TC_J_03_CS_clock_aligned_values_in_ended(csms201, booted201):
    sp = await booted201(variables=[var("AlignedDataCtrlr", "TxEndedInterval", "60"),
                                    var("AlignedDataCtrlr", "TxEndedMeasurands", "Energy.Active.Import.Register")])
    await start_transaction_201(csms201, sp)
    await asyncio.sleep(190)
    await sp.swipe("TAG1")
    end = await csms201.expect("TransactionEvent", ended)
    clock = [mv for mv in end["meterValue"] if mv["sampledValue"][0]["context"] == "Sample.Clock"]
    assert len(clock) in (3, 4)  # 190 s pass 3 or 4 whole minutes of the wall clock
    assert all(mv["timestamp"].endswith(":00.000Z") for mv in clock)  # aligned to the minute
    readings = [mv["sampledValue"][0]["value"] for mv in clock]
    assert readings == sorted(readings) and readings[-1] > readings[0]


async def test_TC_J_02_sampled_tx_ended_interval_values_in_ended(csms201, booted201):
    sp = await booted201(variables=[var("SampledDataCtrlr", "TxEndedInterval", "30")])
    await start_transaction_201(csms201, sp)
    await asyncio.sleep(95)
    await sp.swipe("TAG1")
    end = await csms201.expect("TransactionEvent", ended)
    periodic = [mv for mv in end["meterValue"] if mv["sampledValue"][0]["context"] == "Sample.Periodic"]
    assert len(periodic) == 3


async def _charging_with(csms201, booted201, stop: str):
    sp = await booted201(variables=points("PowerPathClosed", stop))
    ev = await start_transaction_201(csms201, sp)
    return sp, ev["transactionInfo"]["transactionId"]


async def test_TC_E_07_CS_stop_power_path_closed_local_stop(csms201, booted201):
    sp, tx_id = await _charging_with(csms201, booted201, "PowerPathClosed")
    await sp.swipe("TAG1")
    end = await csms201.expect("TransactionEvent", ended)
    assert end["triggerReason"] == "StopAuthorized" and end["transactionInfo"]["stoppedReason"] == "Local"


async def test_TC_E_35_CS_stop_power_path_closed_remote_stop(csms201, booted201):
    sp, tx_id = await _charging_with(csms201, booted201, "PowerPathClosed")
    assert (await csms201.call("RequestStopTransaction", {"transactionId": tx_id}))["status"] == "Accepted"
    end = await csms201.expect("TransactionEvent", ended)
    assert end["triggerReason"] == "RemoteStop" and end["transactionInfo"]["stoppedReason"] == "Remote"


async def test_TC_E_37_CS_stop_power_path_closed_ev_side_disconnect(csms201, booted201):
    sp, tx_id = await _charging_with(csms201, booted201, "PowerPathClosed")
    await sp.unplug()
    end = await csms201.expect("TransactionEvent", ended)
    assert end["transactionInfo"]["stoppedReason"] == "EVDisconnected"


async def test_TC_E_08_CS_stop_energy_transfer_stop_authorized(csms201, booted201):
    sp, tx_id = await _charging_with(csms201, booted201, "EnergyTransfer")
    await sp.swipe("TAG1")
    end = await csms201.expect("TransactionEvent", ended)
    assert end["triggerReason"] == "StopAuthorized"


async def test_TC_E_22_CS_stop_energy_transfer_suspended_ev(csms201, booted201):
    """TxStopPoint EnergyTransfer: the EV stops drawing (SuspendedEV), which ends the transaction."""
    sp, tx_id = await _charging_with(csms201, booted201, "EnergyTransfer")
    await sp.ev(True)
    end = await csms201.expect("TransactionEvent", ended)
    assert end["transactionInfo"]["transactionId"] == tx_id
    assert end["transactionInfo"]["stoppedReason"] == "StoppedByEV"
    assert end["triggerReason"] == "ChargingStateChanged"


async def test_ev_pause_does_not_end_with_authorized_stop_point(csms201, booted201):
    sp, tx_id = await _charging_with(csms201, booted201, "EVConnected,Authorized")
    await sp.ev(True)
    upd = await csms201.expect("TransactionEvent", lambda p: p["triggerReason"] == "ChargingStateChanged"
                               and p["eventType"] == "Updated")
    assert upd["transactionInfo"]["chargingState"] == "SuspendedEV"
    await csms201.no_call("TransactionEvent", within=5, pred=ended)


async def test_TC_E_19_CS_stop_parking_bay_unoccupied(csms201, booted201):
    """No bay sensor: the bay is free when the EV has left (the cable is out)."""
    sp, tx_id = await _charging_with(csms201, booted201, "ParkingBayOccupancy")
    await sp.swipe("TAG1")
    await csms201.no_call("TransactionEvent", within=3, pred=ended)
    await sp.unplug()
    end = await csms201.expect("TransactionEvent", ended)
    assert end["triggerReason"] == "EVDeparted"


async def test_TC_E_44_CS_stop_transaction_during_offline_period(csms201, booted201):
    sp = await booted201()
    ev = await start_transaction_201(csms201, sp)
    await sp.link(False)
    await csms201.disconnected.wait()
    await sp.swipe("TAG1")
    await sp.unplug()
    await asyncio.sleep(3)
    await sp.link(True)
    end = await csms201.expect("TransactionEvent", ended, timeout=30)
    assert end["offline"] is True and end["transactionInfo"]["transactionId"] == ev["transactionInfo"]["transactionId"]
    assert end["triggerReason"] == "StopAuthorized"


async def test_TC_E_45_CS_stop_during_offline_period_same_group(csms201, booted201):
    """Another card of the same group (groupIdToken known from the Authorize answer) stops it off line."""
    csms201.responders["Authorize"] = lambda p: {"idTokenInfo": {"status": "Accepted",
                                                                 "groupIdToken": {"idToken": "GROUP", "type": "Central"}}}
    sp = await booted201()
    await sp.swipe("TAG2")  # TAG2 of the same group is in the cache now
    await asyncio.sleep(1)
    await sp.swipe("TAG2")  # (presented again: the wait for a cable is cancelled)
    ev = await start_transaction_201(csms201, sp)
    await sp.link(False)
    await csms201.disconnected.wait()
    await sp.swipe("TAG2")
    await asyncio.sleep(3)
    await sp.link(True)
    end = await csms201.expect("TransactionEvent", ended, timeout=30)
    assert end["transactionInfo"]["transactionId"] == ev["transactionInfo"]["transactionId"]
    assert end["idToken"]["idToken"] == "TAG2" and end["offline"] is True


async def test_TC_E_38_CS_ev_not_ready(csms201, booted201):
    """The EV does not ask for energy yet (state B): the transaction starts (Authorized start point),
    chargingState EVConnected; when the EV asks, Charging."""
    sp = await booted201(variables=points("Authorized"))
    await sp.plug()
    await sp.ev(True)
    await sp.swipe("TAG1")
    ev = await csms201.expect("TransactionEvent", started)
    assert ev["transactionInfo"]["chargingState"] in ("EVConnected", "SuspendedEV")
    await sp.ev(False)
    upd = await csms201.expect("TransactionEvent", lambda p: p["transactionInfo"].get("chargingState") == "Charging")
    assert upd["triggerReason"] == "ChargingStateChanged"


async def _lock_after_ev_side_unplug(csms201, booted201, unlock: str) -> bool:
    sp = await booted201(variables=[var("OCPPCommCtrlr", "UnlockOnEVSideDisconnect", unlock)])
    await start_transaction_201(csms201, sp)
    lock = sp.rt.hw[1].connector(1).lock
    assert lock.locked
    await sp.unplug()
    end = await csms201.expect("TransactionEvent", ended)
    assert end["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    await asyncio.sleep(2)
    return lock.locked


async def test_TC_E_24_CS_ev_side_disconnect_unlocks(csms201, booted201):
    assert await _lock_after_ev_side_unplug(csms201, booted201, "true") is False


async def test_TC_E_25_CS_ev_side_disconnect_stays_locked(csms201, booted201):
    assert await _lock_after_ev_side_unplug(csms201, booted201, "false") is True


async def test_TC_J_06_CS_no_clock_aligned_values_during_transaction(csms201, booted201):
    """SendDuringIdle: clock-aligned values only while no transaction runs."""
    sp = await booted201(variables=[var("AlignedDataCtrlr", "Interval", "60"),
                                    var("AlignedDataCtrlr", "SendDuringIdle", "true")])
    await csms201.expect("MeterValues", timeout=130)
    await start_transaction_201(csms201, sp)
    mark = csms201.mark()
    await asyncio.sleep(180)
    assert not [r for r in csms201.received[mark:] if r.action == "MeterValues"
                or (r.action == "TransactionEvent" and r.payload["triggerReason"] == "MeterValueClock")]


async def test_ev_side_disconnect_with_authorized_stop_point(csms201, booted201):
    sp = await booted201(variables=points("PowerPathClosed", "Authorized"))
    await start_transaction_201(csms201, sp)
    await sp.unplug()
    end = await csms201.expect("TransactionEvent", ended)
    assert end["triggerReason"] == "EVCommunicationLost"
    assert end["transactionInfo"]["stoppedReason"] == "EVDisconnected"


async def test_TC_E_17_CS_deauthorized_then_ev_side_disconnect(csms201, booted201):
    """E06.FR.04: TxStopPoint Authorized and the CSMS answers the transaction's idToken with a
    non-valid idTokenInfo: the transaction ends (Deauthorized); the EV unplugged afterwards sends
    no further event."""
    csms201.responders["TransactionEvent"] = (
        lambda p: {"idTokenInfo": {"status": "Invalid"}} if "idToken" in p else None)
    sp = await booted201(variables=points("PowerPathClosed", "Authorized"))
    await start_transaction_201(csms201, sp)
    end = await csms201.expect("TransactionEvent", ended)
    assert end["triggerReason"] == "Deauthorized" and end["transactionInfo"]["stoppedReason"] == "DeAuthorized"
    await sp.unplug()
    await csms201.no_call("TransactionEvent", within=5)


async def test_TC_E_54_CS_ev_side_disconnect_ev_not_able_to_charge(csms201, booted201):
    """An EV that never asks for energy (stays in state B): the transaction (started when
    authorized) ends when the EV is disconnected."""
    sp = await booted201(variables=points("Authorized", "EVConnected,Authorized"))
    await sp.plug()
    await sp.ev(True)
    await sp.swipe("TAG1")
    ev = await csms201.expect("TransactionEvent", started)
    await sp.unplug()
    end = await csms201.expect("TransactionEvent", ended)
    assert end["transactionInfo"]["transactionId"] == ev["transactionInfo"]["transactionId"]
    assert end["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    assert not any(p["transactionInfo"].get("chargingState") == "Charging" for p in csms201.calls("TransactionEvent"))


async def test_TC_E_52_CS_disable_remote_authorization(csms201, booted201):
    """DisableRemoteAuthorization: an unknown token is not sent to the CSMS and starts nothing; one
    in the local list starts the transaction."""
    sp = await booted201(variables=[var("AuthCtrlr", "DisableRemoteAuthorization", "true")])
    await csms201.call("SendLocalList", {"versionNumber": 1, "updateType": "Full", "localAuthorizationList": [
        {"idToken": {"idToken": "LISTED", "type": "ISO14443"}, "idTokenInfo": {"status": "Accepted"}}]})
    await sp.swipe("LISTED")
    await sp.plug()
    await csms201.expect("TransactionEvent", started)
    await sp.swipe("STRANGER", 1)
    await asyncio.sleep(2)
    assert not csms201.calls("Authorize")


async def test_TC_E_27_CS_suspended_ev_not_back_within_timeout(csms201, booted201):
    """StopTxOnEVSideDisconnect false: the unplug suspends the transaction; the EV does not come back
    within EVConnectionTimeOut and the transaction ends (Timeout)."""
    sp = await booted201(variables=[var("TxCtrlr", "StopTxOnEVSideDisconnect", "false"),
                                    var("TxCtrlr", "EVConnectionTimeOut", "30")])
    ev = await start_transaction_201(csms201, sp)
    await sp.unplug()
    await csms201.expect("TransactionEvent", lambda p: p["triggerReason"] == "EVCommunicationLost")
    end = await csms201.expect("TransactionEvent", ended, timeout=60)
    assert end["transactionInfo"]["transactionId"] == ev["transactionInfo"]["transactionId"]
    assert end["triggerReason"] == "EVConnectTimeout" and end["transactionInfo"]["stoppedReason"] == "Timeout"


async def test_suspended_ev_back_in_time_goes_on(csms201, booted201):
    sp = await booted201(variables=[var("TxCtrlr", "StopTxOnEVSideDisconnect", "false"),
                                    var("TxCtrlr", "EVConnectionTimeOut", "30")])
    await start_transaction_201(csms201, sp)
    await sp.unplug()
    await csms201.expect("TransactionEvent", lambda p: p["triggerReason"] == "EVCommunicationLost")
    await asyncio.sleep(10)
    await sp.plug()
    await csms201.expect("TransactionEvent", lambda p: p["triggerReason"] == "CablePluggedIn")
    await csms201.no_call("TransactionEvent", within=60, pred=ended)

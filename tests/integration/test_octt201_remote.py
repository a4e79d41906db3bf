"""OCPP 2.0.1 blocks F (remote control), G (availability) and P (data transfer) over a real
websocket, in process on virtual time."""

from __future__ import annotations

from tests.conftest import var
from tests.integration.harness import start_transaction_201


def started(p: dict) -> bool:
    return p["eventType"] == "Started"


def ended(p: dict) -> bool:
    return p["eventType"] == "Ended"


TOKEN = {"idToken": "R1", "type": "Central"}


async def test_TC_F_01_CS_remote_start_cable_first(csms201, booted201):
    sp = await booted201()
    await sp.plug()
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Occupied")
    answer = await csms201.call("RequestStartTransaction", {"idToken": TOKEN, "remoteStartId": 7, "evseId": 1})
    assert answer["status"] == "Accepted"
    await csms201.expect("Authorize")  # AuthorizeRemoteStart is true by default
    ev = await csms201.expect("TransactionEvent", started)
    assert ev["triggerReason"] == "RemoteStart"
    assert ev["transactionInfo"]["remoteStartId"] == 7
    assert ev["idToken"] == TOKEN


async def test_TC_F_02_CS_remote_start_first_authorize_remote_start_true(csms201, booted201):
    sp = await booted201()
    answer = await csms201.call("RequestStartTransaction", {"idToken": TOKEN, "remoteStartId": 8, "evseId": 1})
    assert answer["status"] == "Accepted"
    await csms201.expect("Authorize")
    await sp.plug()
    ev = await csms201.expect("TransactionEvent", started)
    assert ev["transactionInfo"]["remoteStartId"] == 8


async def test_TC_F_03_CS_remote_start_first_authorize_remote_start_false(csms201, booted201):
    sp = await booted201(variables=[var("AuthCtrlr", "AuthorizeRemoteStart", "false")])
    answer = await csms201.call("RequestStartTransaction", {"idToken": TOKEN, "remoteStartId": 9, "evseId": 1})
    assert answer["status"] == "Accepted"
    await sp.plug()
    ev = await csms201.expect("TransactionEvent", started)
    assert ev["transactionInfo"]["remoteStartId"] == 9
    assert not csms201.calls("Authorize")


async def test_TC_F_04_CS_remote_start_cable_timeout(csms201, booted201):
    await booted201(variables=[var("TxCtrlr", "TxStartPoint", "Authorized")])
    await csms201.call("RequestStartTransaction", {"idToken": TOKEN, "remoteStartId": 10, "evseId": 1})
    ev = await csms201.expect("TransactionEvent", started)
    end = await csms201.expect("TransactionEvent", ended, timeout=20)
    assert end["triggerReason"] == "EVConnectTimeout" and end["transactionInfo"]["stoppedReason"] == "Timeout"
    assert end["transactionInfo"]["transactionId"] == ev["transactionInfo"]["transactionId"]


async def test_remote_start_on_running_ev_connected_transaction_returns_its_id(csms201, booted201):
    sp = await booted201(variables=[var("TxCtrlr", "TxStartPoint", "EVConnected")])
    await sp.plug()
    ev = await csms201.expect("TransactionEvent", started)
    answer = await csms201.call("RequestStartTransaction", {"idToken": TOKEN, "remoteStartId": 11, "evseId": 1})
    assert answer == {"status": "Accepted", "transactionId": ev["transactionInfo"]["transactionId"]}


async def test_TC_F_05_CS_unlock_with_ongoing_transaction(csms201, booted201):
    sp = await booted201()
    await start_transaction_201(csms201, sp)
    answer = await csms201.call("UnlockConnector", {"evseId": 1, "connectorId": 1})
    assert answer["status"] == "OngoingAuthorizedTransaction"


async def test_TC_F_06_CS_unlock_without_transaction(csms201, booted201):
    sp = await booted201()
    await sp.plug()
    assert (await csms201.call("UnlockConnector", {"evseId": 1, "connectorId": 1}))["status"] == "Unlocked"


async def test_TC_F_10_CS_unlock_unknown_connector(csms201, booted201):
    await booted201()
    assert (await csms201.call("UnlockConnector", {"evseId": 1, "connectorId": 5}))["status"] == "UnknownConnector"
    assert (await csms201.call("UnlockConnector", {"evseId": 3, "connectorId": 1}))["status"] == "UnknownConnector"


async def test_TC_F_08_CS_remote_stop_success(csms201, booted201):
    sp = await booted201()
    ev = await start_transaction_201(csms201, sp)
    answer = await csms201.call("RequestStopTransaction", {"transactionId": ev["transactionInfo"]["transactionId"]})
    assert answer["status"] == "Accepted"
    end = await csms201.expect("TransactionEvent", ended)
    assert end["triggerReason"] == "RemoteStop"


async def test_TC_F_09_CS_remote_stop_rejected(csms201, booted201):
    await booted201()
    assert (await csms201.call("RequestStopTransaction", {"transactionId": "unknown"}))["status"] == "Rejected"


async def test_TC_F_11_CS_trigger_meter_values_specific_evse(csms201, booted201):
    await booted201(evses=2)
    answer = await csms201.call("TriggerMessage", {"requestedMessage": "MeterValues", "evse": {"id": 2}})
    assert answer["status"] == "Accepted"
    mv = await csms201.expect("MeterValues")
    assert mv["evseId"] == 2
    assert mv["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"


async def test_TC_F_12_CS_trigger_meter_values_all_evse(csms201, booted201):
    await booted201(evses=2)
    assert (await csms201.call("TriggerMessage", {"requestedMessage": "MeterValues"}))["status"] == "Accepted"
    got = {(await csms201.expect("MeterValues"))["evseId"], (await csms201.expect("MeterValues"))["evseId"]}
    assert got == {1, 2}


async def test_TC_F_13_CS_trigger_transaction_event_specific_evse(csms201, booted201):
    sp = await booted201(evses=2)
    await sp.plug(2)
    await sp.swipe("TAG1", 2)
    await csms201.expect("TransactionEvent", started)
    answer = await csms201.call("TriggerMessage", {"requestedMessage": "TransactionEvent", "evse": {"id": 2}})
    assert answer["status"] == "Accepted"
    ev = await csms201.expect("TransactionEvent", lambda p: p["triggerReason"] == "Trigger")
    assert ev["eventType"] == "Updated" and ev["evse"]["id"] == 2
    answer = await csms201.call("TriggerMessage", {"requestedMessage": "TransactionEvent", "evse": {"id": 1}})
    assert answer["status"] == "Rejected"


async def test_TC_F_14_CS_trigger_transaction_event_all_evse(csms201, booted201):
    sp = await booted201(evses=2)
    for evse, tag in ((1, "A"), (2, "B")):
        await sp.plug(evse)
        await sp.swipe(tag, evse)
        await csms201.expect("TransactionEvent", started)
    assert (await csms201.call("TriggerMessage", {"requestedMessage": "TransactionEvent"}))["status"] == "Accepted"
    a = await csms201.expect("TransactionEvent", lambda p: p["triggerReason"] == "Trigger")
    b = await csms201.expect("TransactionEvent", lambda p: p["triggerReason"] == "Trigger")
    assert {a["evse"]["id"], b["evse"]["id"]} == {1, 2}


async def test_TC_F_20_CS_trigger_heartbeat(csms201, booted201):
    await booted201()
    assert (await csms201.call("TriggerMessage", {"requestedMessage": "Heartbeat"}))["status"] == "Accepted"
    await csms201.expect("Heartbeat")


async def test_TC_F_23_24_CS_trigger_status_notification(csms201, booted201):
    sp = await booted201()
    answer = await csms201.call("TriggerMessage", {"requestedMessage": "StatusNotification",
                                                   "evse": {"id": 1, "connectorId": 1}})
    assert answer["status"] == "Accepted"
    assert (await csms201.expect("StatusNotification"))["connectorStatus"] == "Available"
    await sp.plug()
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Occupied")
    await csms201.call("TriggerMessage", {"requestedMessage": "StatusNotification", "evse": {"id": 1, "connectorId": 1}})
    assert (await csms201.expect("StatusNotification"))["connectorStatus"] == "Occupied"


async def test_TC_F_26_CS_trigger_boot_notification_rejected_when_accepted(csms201, booted201):
    await booted201()
    assert (await csms201.call("TriggerMessage", {"requestedMessage": "BootNotification"}))["status"] == "Rejected"


async def test_TC_F_27_CS_trigger_not_implemented(csms201, booted201):
    await booted201()
    answer = await csms201.call("TriggerMessage", {"requestedMessage": "PublishFirmwareStatusNotification"})
    assert answer["status"] == "NotImplemented"


# -- G: availability ------------------------------------------------------------------------


async def test_TC_G_01_02_CS_status_available_occupied_available(csms201, booted201):
    sp = await booted201()
    await sp.plug()
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Occupied")
    await sp.unplug()
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Available")


async def test_TC_G_03_04_CS_change_availability_evse(csms201, booted201):
    await booted201()
    answer = await csms201.call("ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 1}})
    assert answer["status"] == "Accepted"
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Unavailable")
    answer = await csms201.call("ChangeAvailability", {"operationalStatus": "Operative", "evse": {"id": 1}})
    assert answer["status"] == "Accepted"
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Available")


async def test_TC_G_05_06_CS_change_availability_station(csms201, booted201):
    await booted201(evses=2)
    assert (await csms201.call("ChangeAvailability", {"operationalStatus": "Inoperative"}))["status"] == "Accepted"
    got = {(await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Unavailable"))["evseId"]
           for _ in range(2)}
    assert got == {1, 2}
    assert (await csms201.call("ChangeAvailability", {"operationalStatus": "Operative"}))["status"] == "Accepted"
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Available")


async def test_TC_G_07_CS_change_availability_connector(csms201, booted201):
    await booted201()
    answer = await csms201.call("ChangeAvailability", {"operationalStatus": "Inoperative",
                                                       "evse": {"id": 1, "connectorId": 1}})
    assert answer["status"] == "Accepted"
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Unavailable")


async def test_TC_G_09_CS_operative_to_operative(csms201, booted201):
    await booted201()
    answer = await csms201.call("ChangeAvailability", {"operationalStatus": "Operative", "evse": {"id": 1}})
    assert answer["status"] == "Accepted"
    await csms201.no_call("StatusNotification", within=3)


async def test_TC_G_11_CS_change_availability_evse_with_transaction(csms201, booted201):
    sp = await booted201()
    await start_transaction_201(csms201, sp)
    answer = await csms201.call("ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 1}})
    assert answer["status"] == "Scheduled"
    await sp.swipe("TAG1")
    await csms201.expect("TransactionEvent", ended)
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Unavailable")


async def test_TC_G_14_CS_change_availability_station_with_transaction(csms201, booted201):
    sp = await booted201()
    await start_transaction_201(csms201, sp)
    assert (await csms201.call("ChangeAvailability", {"operationalStatus": "Inoperative"}))["status"] == "Scheduled"
    await sp.swipe("TAG1")
    await csms201.expect("TransactionEvent", ended)
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Unavailable")


async def test_TC_G_18_CS_evse_availability_persists_reboot(csms201, booted201):
    sp = await booted201()
    await csms201.call("ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 1}})
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Unavailable")
    await sp.stop()
    sp.start()
    await csms201.expect("BootNotification", timeout=15)
    assert (await csms201.expect("StatusNotification"))["connectorStatus"] == "Unavailable"


async def test_TC_G_21_CS_station_availability_persists_reboot(csms201, booted201):
    sp = await booted201()
    await csms201.call("ChangeAvailability", {"operationalStatus": "Inoperative"})
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Unavailable")
    await sp.stop()
    sp.start()
    await csms201.expect("BootNotification", timeout=15)
    assert (await csms201.expect("StatusNotification"))["connectorStatus"] == "Unavailable"


async def test_TC_G_20_CS_lock_failure_faulted(csms201, booted201):
    sp = await booted201()
    await sp.fault("ConnectorLockFailure", True)
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Faulted")
    await sp.fault("ConnectorLockFailure", False)
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Available")


# -- P: data transfer -------------------------------------------------------------------------


async def test_TC_P_01_CS_data_transfer_unknown_vendor(csms201, booted201):
    await booted201()
    answer = await csms201.call("DataTransfer", {"vendorId": "com.example", "messageId": "x", "data": "y"})
    assert answer["status"] == "UnknownVendorId"


async def test_TC_P_03_CS_custom_data_is_accepted(csms201, booted201):
    await booted201()
    answer = await csms201.call("GetTransactionStatus", {"customData": {"vendorId": "com.example", "extra": 1}})
    assert answer["messagesInQueue"] is False


async def test_data_transfer_from_the_station_201(csms201, booted201):
    """DataTransfer the other way: the local API sends one and returns the CSMS's answer."""
    sp = await booted201()
    csms201.responders["DataTransfer"] = lambda p: {"status": "Accepted", "data": {"echo": p.get("data")}}
    got = await sp.api("POST", "/api/data-transfer", {"vendor_id": "com.example", "message_id": "m1",
                                                       "data": {"a": 1}})
    assert got == {"status": "Accepted", "data": {"echo": {"a": 1}}}
    sent = await csms201.expect("DataTransfer")
    assert sent == {"vendorId": "com.example", "messageId": "m1", "data": {"a": 1}}
    bad = await sp.api("POST", "/api/data-transfer", {"message_id": "m1"}, expect=400)
    assert "vendor_id" in bad["error"]


async def test_AQ_6_CS_copes_with_handshake_rejection(csms201, make_station201):
    """AQ-6: the CSMS rejects the websocket handshake twice; the station keeps trying and boots."""
    csms201.reject_handshake = 2
    sp = make_station201()
    sp.start()
    await csms201.expect("BootNotification", timeout=120)
    assert len(csms201.handshake_times) >= 3


async def test_TC_G_08_CS_connector_inoperative_to_operative(csms201, booted201):
    await booted201()
    evse = {"id": 1, "connectorId": 1}
    await csms201.call("ChangeAvailability", {"operationalStatus": "Inoperative", "evse": evse})
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Unavailable")
    assert (await csms201.call("ChangeAvailability", {"operationalStatus": "Operative", "evse": evse}))["status"] \
        == "Accepted"
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Available")


async def _same_state_twice(csms201, evse: dict | None, state: str) -> None:
    body = {"operationalStatus": state, **({"evse": evse} if evse else {})}
    if state == "Inoperative":
        await csms201.call("ChangeAvailability", body)
        await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Unavailable")
    assert (await csms201.call("ChangeAvailability", body))["status"] == "Accepted"
    await csms201.no_call("StatusNotification", within=3)


async def test_TC_G_10_CS_evse_inoperative_to_inoperative(csms201, booted201):
    await booted201()
    await _same_state_twice(csms201, {"id": 1}, "Inoperative")


async def test_TC_G_12_CS_station_operative_to_operative(csms201, booted201):
    await booted201()
    await _same_state_twice(csms201, None, "Operative")


async def test_TC_G_13_CS_station_inoperative_to_inoperative(csms201, booted201):
    await booted201()
    await _same_state_twice(csms201, None, "Inoperative")


async def test_TC_G_15_CS_connector_operative_to_operative(csms201, booted201):
    await booted201()
    await _same_state_twice(csms201, {"id": 1, "connectorId": 1}, "Operative")


async def test_TC_G_16_CS_connector_inoperative_to_inoperative(csms201, booted201):
    await booted201()
    await _same_state_twice(csms201, {"id": 1, "connectorId": 1}, "Inoperative")


async def test_TC_G_17_CS_connector_with_ongoing_transaction(csms201, booted201):
    sp = await booted201()
    await start_transaction_201(csms201, sp)
    answer = await csms201.call("ChangeAvailability", {"operationalStatus": "Inoperative",
                                                       "evse": {"id": 1, "connectorId": 1}})
    assert answer["status"] == "Scheduled"
    await sp.swipe("TAG1")
    await csms201.expect("TransactionEvent", ended)
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Unavailable")


async def test_TC_G_19_CS_connector_availability_persists_reboot(csms201, booted201):
    sp = await booted201()
    await csms201.call("ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 1, "connectorId": 1}})
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Unavailable")
    await sp.stop()
    sp.start()
    await csms201.expect("BootNotification", timeout=15)
    assert (await csms201.expect("StatusNotification"))["connectorStatus"] == "Unavailable"


async def test_TC_F_07_CS_unlock_without_transaction_no_cable(csms201, booted201):
    await booted201()
    assert (await csms201.call("UnlockConnector", {"evseId": 1, "connectorId": 1}))["status"] == "Unlocked"

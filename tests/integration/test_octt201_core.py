"""OCPP 2.0.1 core cases over a real websocket (in process, virtual time): boot, status,
transactions by TxStartPoint / TxStopPoint, remote control, availability, reset."""

from __future__ import annotations


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

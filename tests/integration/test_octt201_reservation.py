"""OCPP 2.0.1 block H (reservation), TC_H_01..TC_H_24, over a real websocket, in process, on
virtual time: ReserveNow for an EVSE, for any EVSE and by connector type, CancelReservation,
ReservationStatusUpdate (Expired, Removed), the Reserved status, the reservationId of the
transaction that uses it, who may use it (idToken, groupIdToken), and a restart."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from station.core.clock import iso
from tests.conftest import var
from tests.integration.harness import wall_now

GROUP = {"idToken": "GROUP1", "type": "Central"}


def reserve(rid: int = 1, tag: str = "TAG1", evse: int | None = 1, seconds: float = 600, **extra) -> dict:
    p: dict = {"id": rid, "expiryDateTime": iso(wall_now() + timedelta(seconds=seconds)),
               "idToken": {"idToken": tag, "type": "ISO14443"}}
    if evse is not None:
        p["evseId"] = evse
    p.update(extra)
    return p


async def reserve_now(csms201, **kw) -> str:
    return (await csms201.call("ReserveNow", reserve(**kw)))["status"]


async def expect_status(csms201, evse: int, status: str, timeout: float = 10) -> dict:
    return await csms201.expect("StatusNotification",
                                lambda p: p["evseId"] == evse and p["connectorStatus"] == status, timeout=timeout)


async def started(csms201) -> dict:
    return await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Started")


async def charge(csms201, sp, tag: str = "TAG1", evse: int = 1) -> dict:
    await sp.plug(evse)
    await sp.swipe(tag, evse)
    return await started(csms201)


# -- H01 reserve a specific EVSE -------------------------------------------------------------------------
async def test_TC_H_01_CS_reserve_specific_evse_valid_id_token(csms201, booted201):
    sp = await booted201()
    assert await reserve_now(csms201) == "Accepted"
    await expect_status(csms201, 1, "Reserved")
    await sp.swipe("TAG1")  # the driver identifies first: the EVSE is theirs, Available again
    await expect_status(csms201, 1, "Available")
    await sp.plug()
    tx = await started(csms201)
    assert tx["reservationId"] == 1
    assert tx["idToken"]["idToken"] == "TAG1"
    await asyncio.sleep(700)  # past the expiry: the used reservation is gone, nothing to report
    assert not csms201.calls("ReservationStatusUpdate")


async def test_TC_H_02_CS_reserve_specific_evse_different_id_token(csms201, booted201):
    sp = await booted201()
    assert await reserve_now(csms201) == "Accepted"
    await expect_status(csms201, 1, "Reserved")
    await sp.swipe("TAG2")
    await csms201.expect("Authorize", lambda p: p["idToken"]["idToken"] == "TAG2")
    await sp.plug()
    await csms201.no_call("TransactionEvent", 3, lambda p: p["eventType"] == "Started")
    r = await csms201.call("RequestStartTransaction", {"idToken": {"idToken": "TAG2", "type": "ISO14443"},
                                                        "remoteStartId": 7, "evseId": 1})
    assert r["status"] == "Rejected"
    # the reserved token still may
    await sp.swipe("TAG1")
    assert (await started(csms201))["reservationId"] == 1


async def test_TC_H_03_CS_reserve_specific_evse_occupied_reserved(csms201, booted201):
    await booted201()
    assert await reserve_now(csms201) == "Accepted"
    assert await reserve_now(csms201, rid=2, tag="TAG2") == "Occupied"


async def test_TC_H_04_CS_reserve_specific_evse_occupied(csms201, booted201):
    """An EV plugged in (no driver yet) occupies the EVSE, as a transaction does."""
    sp = await booted201(evses=2)
    await sp.plug(1)
    await expect_status(csms201, 1, "Occupied")
    assert await reserve_now(csms201) == "Occupied"
    await charge(csms201, sp, "TAG9", evse=2)
    assert await reserve_now(csms201, evse=2) == "Occupied"
    assert await reserve_now(csms201, evse=None) == "Occupied"


async def test_TC_H_06_CS_reserve_specific_evse_unavailable(csms201, booted201):
    await booted201()
    r = await csms201.call("ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 1}})
    assert r["status"] == "Accepted"
    await expect_status(csms201, 1, "Unavailable")
    assert await reserve_now(csms201) == "Unavailable"


async def test_reserve_specific_evse_faulted(csms201, booted201):
    sp = await booted201()
    await sp.fault("GroundFailure", True)
    await expect_status(csms201, 1, "Faulted")
    assert await reserve_now(csms201) == "Faulted"


async def test_TC_H_07_CS_reservation_ended_not_used(csms201, booted201):
    await booted201()
    assert await reserve_now(csms201, seconds=60) == "Accepted"
    await expect_status(csms201, 1, "Reserved")
    update = await csms201.expect("ReservationStatusUpdate", timeout=90)
    assert update == {"reservationId": 1, "reservationUpdateStatus": "Expired"}
    await expect_status(csms201, 1, "Available")


# -- H01 reserve an unspecified EVSE -----------------------------------------------------------------------
async def test_TC_H_08_CS_reserve_unspecified_evse_accepted(csms201, booted201):
    sp = await booted201(evses=2)
    assert await reserve_now(csms201, evse=None) == "Accepted"
    # one of two EVSEs held: neither needs to show Reserved
    await csms201.no_call("StatusNotification", 2, lambda p: p["connectorStatus"] == "Reserved")
    tx = await charge(csms201, sp, "TAG1", evse=2)
    assert tx["reservationId"] == 1 and tx["evse"]["id"] == 2


async def test_TC_H_09_CS_reserve_unspecified_evse_occupied_reserved(csms201, booted201):
    await booted201(evses=2)
    assert await reserve_now(csms201, rid=1, evse=1) == "Accepted"
    assert await reserve_now(csms201, rid=2, evse=2, tag="TAG2") == "Accepted"
    assert await reserve_now(csms201, rid=3, evse=None, tag="TAG3") == "Occupied"


async def test_TC_H_10_CS_reserve_unspecified_evse_occupied(csms201, booted201):
    sp = await booted201(evses=1)  # every EVSE occupied: this station has one
    await charge(csms201, sp, "TAG9")
    assert await reserve_now(csms201, evse=None) == "Occupied"


async def test_TC_H_12_CS_reserve_unspecified_evse_unavailable(csms201, booted201):
    await booted201(evses=2)
    r = await csms201.call("ChangeAvailability", {"operationalStatus": "Inoperative"})
    assert r["status"] == "Accepted"
    assert await reserve_now(csms201, evse=None) == "Unavailable"


async def test_TC_H_13_CS_reserve_unspecified_evse_rejected(csms201, booted201):
    """ReservationCtrlr.NonEvseSpecific false: only reservations of an EVSE are made."""
    await booted201(variables=[var("ReservationCtrlr", "NonEvseSpecific", "false")])
    assert await reserve_now(csms201, evse=None) == "Rejected"
    assert await reserve_now(csms201, evse=1) == "Accepted"


async def test_TC_H_13_CS_reserve_unspecified_evse_rejected_when_disabled(csms201, booted201):
    await booted201(variables=[var("ReservationCtrlr", "Enabled", "false")])
    assert await reserve_now(csms201, evse=None) == "Rejected"


async def test_TC_H_14_CS_reserve_unspecified_evse_as_many_as_available(csms201, booted201):
    """Two EVSEs, two reservations of any EVSE: both EVSEs show Reserved; a third is Occupied."""
    await booted201(evses=2)
    assert await reserve_now(csms201, rid=1, evse=None) == "Accepted"
    assert await reserve_now(csms201, rid=2, evse=None, tag="TAG2") == "Accepted"
    await expect_status(csms201, 1, "Reserved")
    await expect_status(csms201, 2, "Reserved")
    assert await reserve_now(csms201, rid=3, evse=None, tag="TAG3") == "Occupied"


async def test_TC_H_15_CS_reserve_connector_with_specific_type(csms201, booted201):
    sp = await booted201()
    assert await reserve_now(csms201, rid=1, connectorType="cCCS2") == "Rejected"
    assert await reserve_now(csms201, rid=1, connectorType="sType2") == "Accepted"
    await expect_status(csms201, 1, "Reserved")
    assert (await charge(csms201, sp))["reservationId"] == 1


async def test_TC_H_16_CS_reserve_connector_type_as_many_as_available(csms201, booted201):
    await booted201(evses=2)
    assert await reserve_now(csms201, rid=1, evse=None, connectorType="sType2") == "Accepted"
    assert await reserve_now(csms201, rid=2, evse=None, tag="TAG2", connectorType="sType2") == "Accepted"
    await expect_status(csms201, 1, "Reserved")
    await expect_status(csms201, 2, "Reserved")
    assert await reserve_now(csms201, rid=3, evse=None, tag="TAG3", connectorType="sType2") == "Occupied"


# -- H02 cancel ------------------------------------------------------------------------------------------
async def test_TC_H_17_CS_cancel_reservation_success(csms201, booted201):
    await booted201()
    assert await reserve_now(csms201) == "Accepted"
    await expect_status(csms201, 1, "Reserved")
    assert (await csms201.call("CancelReservation", {"reservationId": 1}))["status"] == "Accepted"
    await expect_status(csms201, 1, "Available")
    await asyncio.sleep(700)
    assert not csms201.calls("ReservationStatusUpdate")


async def test_TC_H_18_CS_cancel_reservation_rejected(csms201, booted201):
    await booted201()
    assert (await csms201.call("CancelReservation", {"reservationId": 5}))["status"] == "Rejected"


# -- H03 use a reserved EVSE; H04 removed ---------------------------------------------------------------
async def test_TC_H_19_CS_use_reserved_evse_with_group_id(csms201, booted201):
    sp = await booted201()
    csms201.responders["Authorize"] = lambda p: {"idTokenInfo": {"status": "Accepted", "groupIdToken": GROUP}}
    assert await reserve_now(csms201, groupIdToken=GROUP) == "Accepted"
    await expect_status(csms201, 1, "Reserved")
    tx = await charge(csms201, sp, "TAG2")
    assert tx["reservationId"] == 1 and tx["idToken"]["idToken"] == "TAG2"


async def test_TC_H_21_CS_cancels_reservation_when_unavailable(csms201, booted201):
    await booted201()
    assert await reserve_now(csms201) == "Accepted"
    await expect_status(csms201, 1, "Reserved")
    r = await csms201.call("ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 1}})
    assert r["status"] == "Accepted"
    await expect_status(csms201, 1, "Unavailable")
    update = await csms201.expect("ReservationStatusUpdate", since=0)
    assert update == {"reservationId": 1, "reservationUpdateStatus": "Removed"}
    assert (await csms201.call("CancelReservation", {"reservationId": 1}))["status"] == "Rejected"
    r = await csms201.call("ChangeAvailability", {"operationalStatus": "Operative", "evse": {"id": 1}})
    assert r["status"] == "Accepted"
    await expect_status(csms201, 1, "Available")


async def test_TC_H_22_CS_reserve_specific_evse_configured_to_reject(csms201, booted201):
    await booted201(variables=[var("ReservationCtrlr", "Enabled", "false")])
    assert await reserve_now(csms201) == "Rejected"
    await csms201.no_call("StatusNotification", 2, lambda p: p["connectorStatus"] == "Reserved")


async def test_TC_H_23_CS_replace_reservation_same_evse(csms201, booted201):
    """The same id for the same EVSE and another token: Accepted, Reserved again, for the new token."""
    sp = await booted201()
    assert await reserve_now(csms201, rid=1) == "Accepted"
    await expect_status(csms201, 1, "Reserved")
    assert await reserve_now(csms201, rid=1, tag="TAG2") == "Accepted"
    await expect_status(csms201, 1, "Reserved")
    await sp.plug()
    await sp.swipe("TAG1")
    await csms201.no_call("TransactionEvent", 3, lambda p: p["eventType"] == "Started")
    await sp.swipe("TAG2")
    assert (await started(csms201))["reservationId"] == 1


async def test_TC_H_23_CS_replace_reservation(csms201, booted201):
    sp = await booted201(evses=2)
    assert await reserve_now(csms201, rid=1, evse=1) == "Accepted"
    await expect_status(csms201, 1, "Reserved")
    assert await reserve_now(csms201, rid=1, evse=2) == "Accepted"
    await expect_status(csms201, 1, "Available")
    await csms201.expect("StatusNotification", lambda p: p["evseId"] == 2 and p["connectorStatus"] == "Reserved",
                         since=0)
    tx = await charge(csms201, sp, "TAG1", evse=2)
    assert tx["reservationId"] == 1


async def test_TC_H_24_CS_reserve_unspecified_evse_group_id_token(csms201, booted201):
    sp = await booted201(evses=1)  # one EVSE: the reservation without an EVSE holds it (Reserved)
    csms201.responders["Authorize"] = lambda p: {"idTokenInfo": {"status": "Accepted", "groupIdToken": GROUP}}
    assert await reserve_now(csms201, evse=None, groupIdToken=GROUP) == "Accepted"
    await expect_status(csms201, 1, "Reserved")
    tx = await charge(csms201, sp, "TAG2")
    assert tx["reservationId"] == 1


# -- a restart ----------------------------------------------------------------------------------------------
async def restart(csms201, sp, off_s: float = 0) -> None:
    await sp.stop()
    await asyncio.sleep(off_s)
    csms201.mark()
    sp.start()
    await csms201.expect("BootNotification", timeout=15)
    await sp.wait_api()


async def test_reservation_survives_restart(csms201, booted201):
    sp = await booted201()
    assert await reserve_now(csms201, seconds=600) == "Accepted"
    await expect_status(csms201, 1, "Reserved")
    await restart(csms201, sp)
    await expect_status(csms201, 1, "Reserved")
    update = await csms201.expect("ReservationStatusUpdate", timeout=700)
    assert update["reservationUpdateStatus"] == "Expired"


async def test_reservation_expired_while_off_is_reported(csms201, booted201):
    sp = await booted201()
    assert await reserve_now(csms201, seconds=60) == "Accepted"
    await restart(csms201, sp, off_s=120)
    await expect_status(csms201, 1, "Available")
    update = await csms201.expect("ReservationStatusUpdate", since=0)
    assert update == {"reservationId": 1, "reservationUpdateStatus": "Expired"}


async def test_reservation_id_when_transaction_started_at_ev_connected(csms201, booted201):
    """TxStartPoint EVConnected: the transaction starts before the driver; the event of the
    authorization that uses the reservation names it."""
    sp = await booted201(variables=[var("TxCtrlr", "TxStartPoint", "EVConnected")])
    assert await reserve_now(csms201) == "Accepted"
    await expect_status(csms201, 1, "Reserved")
    await sp.plug()
    first = await started(csms201)
    assert "reservationId" not in first
    await sp.swipe("TAG1")
    used = await csms201.expect("TransactionEvent", lambda p: p["triggerReason"] == "Authorized")
    assert used["reservationId"] == 1
    await asyncio.sleep(5)
    assert sum("reservationId" in p for p in csms201.calls("TransactionEvent")) == 1


async def test_TC_B_24_CS_reset_reserved_persists(csms201, booted201):
    """Reset (OnIdle) of a station with a reservation: after the reboot the EVSE is Reserved again,
    and the reservation is still used by its token."""
    sp = await booted201()
    assert await reserve_now(csms201, seconds=3600) == "Accepted"
    await expect_status(csms201, 1, "Reserved")
    assert (await csms201.call("Reset", {"type": "OnIdle"}))["status"] == "Accepted"
    boot = await csms201.expect("BootNotification", timeout=30)
    assert boot["reason"] == "RemoteReset"
    await expect_status(csms201, 1, "Reserved", timeout=30)
    await sp.wait_api()
    tx = await charge(csms201, sp)
    assert tx["reservationId"] == 1

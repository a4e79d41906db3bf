"""OCTT OCPP 1.6J Reservation cases (section 2.20) performed against the real station (in process,
on virtual time, over the real websocket), plus a reservation that survives a restart and one
replaced by a ReserveNow with the same id."""

from __future__ import annotations

from datetime import timedelta

from station.core.clock import iso
from tests.integration.harness import start_session, wall_now


def expiry(seconds: float = 600) -> str:
    return iso(wall_now() + timedelta(seconds=seconds))


async def reserve(csms, connector: int, id_tag: str = "TAG1", rid: int = 1, seconds: float = 600, **extra) -> str:
    payload = {"connectorId": connector, "expiryDate": expiry(seconds), "idTag": id_tag, "reservationId": rid, **extra}
    return (await csms.call("ReserveNow", payload))["status"]


# -- reservation of a connector ----------------------------------------------------------------
async def test_TC_046_1_reservation_of_a_connector_local_start(csms, booted):
    sp = await booted()
    assert await reserve(csms, 1, "TAG1", rid=11) == "Accepted"
    await csms.expect_status(1, "Reserved")
    # another driver's card is refused at the reserved connector: no transaction
    await sp.swipe("OTHER")
    await csms.expect("Authorize", lambda p: p["idTag"] == "OTHER")
    await csms.no_call("StartTransaction", 1.0)
    assert sp.rt.station.status_of(1)[0].label == "Reserved"
    await sp.swipe("TAG1")
    await csms.expect("Authorize", lambda p: p["idTag"] == "TAG1")
    await csms.expect_status(1, "Preparing")
    await sp.plug()
    start = await csms.expect("StartTransaction")
    assert start["idTag"] == "TAG1" and start["reservationId"] == 11
    await csms.expect_status(1, "Charging")
    # used: gone (cancelling it now is Rejected)
    assert (await csms.call("CancelReservation", {"reservationId": 11}))["status"] == "Rejected"


async def test_TC_046_2_reservation_of_a_connector_remote_start(csms, booted):
    sp = await booted()
    assert await reserve(csms, 1, "TAG1", rid=12) == "Accepted"
    await csms.expect_status(1, "Reserved")
    r = await csms.call("RemoteStartTransaction", {"idTag": "OTHER", "connectorId": 1})
    assert r["status"] == "Rejected"
    r = await csms.call("RemoteStartTransaction", {"idTag": "TAG1", "connectorId": 1})
    assert r["status"] == "Accepted"
    await csms.expect_status(1, "Preparing")
    await sp.plug()
    start = await csms.expect("StartTransaction")
    assert start["idTag"] == "TAG1" and start["reservationId"] == 12
    await csms.expect_status(1, "Charging")


async def test_TC_047_reservation_of_a_connector_expire(csms, booted):
    sp = await booted()
    assert await reserve(csms, 1, "TAG1", rid=13, seconds=30) == "Accepted"
    await csms.expect_status(1, "Reserved")
    await csms.no_call("StatusNotification", 25.0)
    await csms.expect_status(1, "Available", timeout=10)
    assert (await csms.call("CancelReservation", {"reservationId": 13}))["status"] == "Rejected"
    # after the expiry anyone may charge, and the start carries no reservationId
    start = await start_session(csms, sp, "OTHER")
    assert "reservationId" not in start


async def test_TC_048_1_reservation_of_a_connector_faulted(csms, booted):
    sp = await booted()
    await sp.fault("GroundFailure", True)
    await csms.expect_status(1, "Faulted")
    assert await reserve(csms, 1) == "Faulted"


async def test_TC_048_2_reservation_of_a_connector_occupied(csms, booted):
    sp = await booted()
    await start_session(csms, sp)
    assert await reserve(csms, 1, "TAG2") == "Occupied"


async def test_TC_048_2_occupied_by_another_reservation(csms, booted):
    await booted()
    assert await reserve(csms, 1, "TAG1", rid=1) == "Accepted"
    assert await reserve(csms, 1, "TAG2", rid=2) == "Occupied"


async def test_TC_048_3_reservation_of_a_connector_unavailable(csms, booted):
    await booted()
    assert (await csms.call("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}))["status"] == "Accepted"
    await csms.expect_status(1, "Unavailable")
    assert await reserve(csms, 1) == "Unavailable"


async def test_TC_048_4_reservation_of_a_connector_rejected(csms, booted):
    await booted()
    assert await reserve(csms, 7) == "Rejected"  # no such connector
    assert await reserve(csms, 1, seconds=-60) == "Rejected"  # the expiry has passed
    await csms.no_call("StatusNotification", 0.5, lambda p: p["status"] == "Reserved")


# -- reservation of the charge point (connector 0) -----------------------------------------------
async def test_TC_049_reservation_of_a_charge_point_transaction(csms, booted):
    sp = await booted()
    assert await reserve(csms, 0, "TAG1", rid=21) == "Accepted"
    await csms.expect_status(1, "Reserved")  # one connector: it is the one kept free
    await sp.swipe("TAG1")
    await csms.expect_status(1, "Preparing")
    await sp.plug()
    start = await csms.expect("StartTransaction")
    assert start["idTag"] == "TAG1" and start["reservationId"] == 21
    await csms.expect_status(1, "Charging")


async def test_TC_049_two_connectors_the_last_free_one_is_kept(csms, booted):
    """Connector 0 on a station with two: none shows Reserved while both are free; once another
    driver takes one, the other shows Reserved and refuses other idTags; the reserved idTag uses it."""
    sp = await booted(evses=2)
    assert await reserve(csms, 0, "TAG1", rid=22) == "Accepted"
    await csms.no_call("StatusNotification", 0.5, lambda p: p["status"] == "Reserved")
    before = csms.mark()
    start = await start_session(csms, sp, "OTHER")  # at connector 1
    assert "reservationId" not in start
    await csms.expect_status(2, "Reserved", since=before)
    # the kept connector is not for others, and connector 2 cannot be reserved for anyone else
    assert await reserve(csms, 2, "TAG3", rid=23) == "Occupied"
    assert await reserve(csms, 0, "TAG3", rid=24) == "Occupied"
    await sp.swipe("OTHER2", evse=2)
    await csms.expect("Authorize", lambda p: p["idTag"] == "OTHER2")
    await csms.no_call("StartTransaction", 1.0)
    await sp.plug(evse=2)
    await sp.swipe("TAG1", evse=2)
    start = await csms.expect("StartTransaction", lambda p: p["connectorId"] == 2)
    assert start["idTag"] == "TAG1" and start["reservationId"] == 22


async def test_TC_050_1_reservation_of_a_charge_point_faulted(csms, booted):
    sp = await booted()
    await sp.fault("GroundFailure", True)
    await csms.expect_status(1, "Faulted")
    assert await reserve(csms, 0) == "Faulted"


async def test_TC_050_2_reservation_of_a_charge_point_occupied(csms, booted):
    sp = await booted()
    await start_session(csms, sp)
    assert await reserve(csms, 0, "TAG2") == "Occupied"


async def test_TC_050_3_reservation_of_a_charge_point_unavailable(csms, booted):
    await booted()
    assert (await csms.call("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}))["status"] == "Accepted"
    await csms.expect_status(1, "Unavailable")
    assert await reserve(csms, 0) == "Unavailable"


async def test_TC_050_4_reservation_of_a_charge_point_rejected(csms, booted):
    sp = await booted()
    conf = await csms.call("GetConfiguration", {"key": ["ReserveConnectorZeroSupported"]})
    assert conf["configurationKey"] == [{"key": "ReserveConnectorZeroSupported", "readonly": True, "value": "true"}]
    # a station built without it (the key is read-only: it describes the station)
    sp.rt.adapter.keys.values["ReserveConnectorZeroSupported"] = "false"
    assert await reserve(csms, 0) == "Rejected"
    assert await reserve(csms, 1) == "Accepted"  # a connector of its own still can be


# -- cancel ---------------------------------------------------------------------------------------
async def test_TC_051_cancel_reservation(csms, booted):
    sp = await booted()
    assert await reserve(csms, 1, "TAG1", rid=31) == "Accepted"
    await csms.expect_status(1, "Reserved")
    assert (await csms.call("CancelReservation", {"reservationId": 31}))["status"] == "Accepted"
    await csms.expect_status(1, "Available")
    start = await start_session(csms, sp, "OTHER")
    assert "reservationId" not in start


async def test_TC_052_cancel_reservation_rejected(csms, booted):
    await booted()
    assert (await csms.call("CancelReservation", {"reservationId": 99}))["status"] == "Rejected"


async def test_TC_053_use_a_reserved_connector_with_parent_id_tag(csms, booted):
    csms.responders["Authorize"] = lambda p: {"idTagInfo": {"status": "Accepted", "parentIdTag": "PARENT"}}
    sp = await booted()
    assert await reserve(csms, 1, "TAG1", rid=41, parentIdTag="PARENT") == "Accepted"
    await csms.expect_status(1, "Reserved")
    await sp.swipe("TAG2")  # another card of the same group
    assert (await csms.expect("Authorize"))["idTag"] == "TAG2"
    await csms.expect_status(1, "Preparing")
    await sp.plug()
    start = await csms.expect("StartTransaction")
    assert start["idTag"] == "TAG2" and start["reservationId"] == 41


async def test_reserved_connector_refuses_a_card_of_another_parent(csms, booted):
    csms.responders["Authorize"] = lambda p: {"idTagInfo": {"status": "Accepted", "parentIdTag": "ELSE"}}
    sp = await booted()
    assert await reserve(csms, 1, "TAG1", rid=42, parentIdTag="PARENT") == "Accepted"
    await csms.expect_status(1, "Reserved")
    await sp.plug()
    await sp.swipe("TAG2")
    await csms.expect("Authorize")
    await csms.no_call("StartTransaction", 1.0)


# -- replacing, restarting ----------------------------------------------------------------------------
async def test_reserve_now_with_the_same_id_replaces(csms, booted):
    await booted()
    assert await reserve(csms, 1, "TAG1", rid=51) == "Accepted"
    await csms.expect_status(1, "Reserved")
    assert await reserve(csms, 1, "TAG2", rid=51) == "Accepted"  # same id: replaced, not Occupied
    r = await csms.call("RemoteStartTransaction", {"idTag": "TAG1", "connectorId": 1})
    assert r["status"] == "Rejected"
    r = await csms.call("RemoteStartTransaction", {"idTag": "TAG2", "connectorId": 1})
    assert r["status"] == "Accepted"


async def test_reservation_survives_a_restart_and_expires_on_wall_clock_time(csms, booted):
    sp = await booted()
    assert await reserve(csms, 1, "TAG1", rid=61, seconds=120) == "Accepted"
    await csms.expect_status(1, "Reserved")
    await sp.stop()
    sp.start()
    await csms.expect("BootNotification", timeout=15)
    await csms.expect_status(1, "Reserved")
    r = await csms.call("RemoteStartTransaction", {"idTag": "OTHER", "connectorId": 1})
    assert r["status"] == "Rejected"
    await csms.expect_status(1, "Available", timeout=130)
    assert (await csms.call("CancelReservation", {"reservationId": 61}))["status"] == "Rejected"


async def test_reservation_expired_while_the_station_was_off(csms, booted):
    import asyncio

    sp = await booted()
    assert await reserve(csms, 1, "TAG1", rid=62, seconds=20) == "Accepted"
    await csms.expect_status(1, "Reserved")
    await sp.stop()
    await asyncio.sleep(30)  # virtual time: the station is off past the expiry
    csms.mark()
    sp.start()
    await csms.expect("BootNotification", timeout=15)
    await csms.expect_status(1, "Available")
    assert (await csms.call("CancelReservation", {"reservationId": 62}))["status"] == "Rejected"


async def test_remote_start_without_connector_takes_the_one_reserved_for_the_idtag(csms, booted):
    sp = await booted(evses=2)
    assert await reserve(csms, 2, "TAG1", rid=71) == "Accepted"
    await csms.expect_status(2, "Reserved")
    r = await csms.call("RemoteStartTransaction", {"idTag": "TAG1"})
    assert r["status"] == "Accepted"
    await csms.expect_status(2, "Preparing")
    await sp.plug(evse=2)
    start = await csms.expect("StartTransaction")
    assert start["connectorId"] == 2 and start["reservationId"] == 71
    # another idTag without a connector gets the free one, never the reserved one
    assert await reserve(csms, 1, "TAG9", rid=72) == "Accepted"
    r = await csms.call("RemoteStartTransaction", {"idTag": "OTHER"})
    assert r["status"] == "Rejected"


async def test_a_wall_clock_set_forward_past_the_expiry_ends_the_reservation_within_seconds(csms, booted):
    """Expiry is a wall-clock instant: a clock stepped past it ends the reservation at the
    station's next timer (its checkpoint, every 5 s), not when a monotonic wait would be over."""
    import asyncio

    await booted()
    assert await reserve(csms, 1, "TAG1", rid=31, seconds=600) == "Accepted"
    await csms.expect_status(1, "Reserved")
    await asyncio.sleep(60)
    loop = asyncio.get_running_loop()
    loop.wall_start += timedelta(minutes=15)
    jumped = loop.time()
    await csms.expect_status(1, "Available", timeout=30)
    assert loop.time() - jumped <= 6

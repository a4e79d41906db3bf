"""idTags are case-insensitive end to end (1.6 CiString): a card read as "04abcdef" is the card the
CSMS put in the local list, the cache or a reservation as "04ABCDEF", and stops its own
transaction. Over the scripted CSMS, in process on virtual time."""

from __future__ import annotations

import asyncio

from tests.integration.harness import start_session
from tests.integration.test_octt16_local_list import full
from tests.integration.test_octt16_reservation import reserve


async def offline(csms, sp) -> None:
    await sp.link(False)
    await asyncio.wait_for(csms.disconnected.wait(), 5)


async def test_a_local_list_entry_authorizes_its_card_in_another_case_offline(csms, booted):
    sp = await booted(ocpp_config={"AuthorizationCacheEnabled": "false", "LocalAuthorizeOffline": "true"})
    assert (await csms.call("SendLocalList", full(1, "04ABCDEF")))["status"] == "Accepted"
    await offline(csms, sp)
    await sp.plug()
    await sp.swipe("04abcdef")
    await asyncio.sleep(2)
    assert sp.rt.station.status_of(1)[0].label == "Charging"


async def test_a_cached_card_in_another_case_is_accepted_offline(csms, booted):
    sp = await booted(ocpp_config={"LocalAuthorizeOffline": "true"})
    await start_session(csms, sp, "CardOne")  # Authorize Accepted: cached
    await sp.swipe("CARDONE")  # the same card: stops, without asking
    stop = await csms.expect("StopTransaction")
    assert stop["reason"] == "Local" and len(csms.calls("Authorize")) == 1
    await sp.unplug()
    await csms.expect_status(1, "Available")
    await offline(csms, sp)
    await sp.plug()
    await sp.swipe("cardone")
    await asyncio.sleep(2)
    assert sp.rt.station.status_of(1)[0].label == "Charging"


async def test_a_reservation_serves_its_card_in_another_case(csms, booted):
    sp = await booted()
    assert await reserve(csms, 1, "RESTAG", rid=21) == "Accepted"
    await csms.expect_status(1, "Reserved")
    await sp.swipe("restag")
    await csms.expect_status(1, "Preparing")
    await sp.plug()
    start = await csms.expect("StartTransaction")
    assert start["idTag"] == "restag" and start["reservationId"] == 21

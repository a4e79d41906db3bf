"""OCPP 2.0.1 blocks O (display messages) and I (tariff and cost) over a real websocket."""

from __future__ import annotations

from datetime import timedelta

from station.core.clock import iso
from tests.integration.harness import start_transaction_201


def message(mid: int, text: str, priority: str = "NormalCycle", **extra) -> dict:
    return {"message": {"id": mid, "priority": priority, "message": {"format": "UTF8", "content": text}, **extra}}


async def test_TC_O_01_TC_O_07_CS_set_display_message_and_get_it_by_id(csms201, booted201):
    sp = await booted201()
    assert (await csms201.call("SetDisplayMessage", message(1, "Welcome")))["status"] == "Accepted"
    assert (await csms201.call("GetDisplayMessages", {"requestId": 5, "id": [1]}))["status"] == "Accepted"
    got = await csms201.expect("NotifyDisplayMessages")
    assert got["requestId"] == 5 and got["messageInfo"][0]["message"]["content"] == "Welcome"
    assert (await sp.status())["display"] == [{"id": 1, "priority": "NormalCycle", "text": "Welcome"}]


async def test_TC_O_03_TC_O_33_CS_get_display_messages_none_configured(csms201, booted201):
    await booted201()
    assert (await csms201.call("GetDisplayMessages", {"requestId": 6, "id": [99]}))["status"] == "Unknown"


async def test_TC_O_04_TC_O_05_CS_clear_display_message(csms201, booted201):
    await booted201()
    await csms201.call("SetDisplayMessage", message(2, "Out of order tomorrow"))
    assert (await csms201.call("ClearDisplayMessage", {"id": 2}))["status"] == "Accepted"
    assert (await csms201.call("ClearDisplayMessage", {"id": 2}))["status"] == "Unknown"


async def test_TC_O_10_TC_O_19_CS_unknown_transaction_and_format(csms201, booted201):
    await booted201()
    answer = await csms201.call("SetDisplayMessage", message(3, "x", transactionId="nope"))
    assert answer["status"] == "UnknownTransaction"
    bad = message(4, "<b>x</b>")
    bad["message"]["message"]["format"] = "HTML"
    assert (await csms201.call("SetDisplayMessage", bad))["status"] == "NotSupportedMessageFormat"


async def test_TC_O_12_TC_O_20_CS_replace_by_id_and_persist_over_reboot(csms201, booted201):
    sp = await booted201()
    await csms201.call("SetDisplayMessage", message(1, "old", "InFront"))
    await csms201.call("SetDisplayMessage", message(1, "new", "AlwaysFront"))
    await sp.stop()
    sp.start()
    await csms201.expect("BootNotification", timeout=15, since=csms201.mark())
    await sp.wait_api()
    assert (await sp.status())["display"] == [{"id": 1, "priority": "AlwaysFront", "text": "new"}]


async def test_TC_I_01_CS_cost_updated_shown_with_the_transaction(csms201, booted201):
    sp = await booted201()
    ev = await start_transaction_201(csms201, sp)
    tx_id = ev["transactionInfo"]["transactionId"]
    assert await csms201.call("CostUpdated", {"totalCost": 1.25, "transactionId": tx_id}) == {}
    tx = (await sp.status())["evses"][0]["transaction"]
    assert tx["id"] == tx_id and tx["cost"] == 1.25


async def test_TC_O_02_TC_O_08_CS_get_all_and_by_priority(csms201, booted201):
    await booted201()
    await csms201.call("SetDisplayMessage", message(1, "a", "NormalCycle"))
    await csms201.call("SetDisplayMessage", message(2, "b", "InFront"))
    await csms201.call("GetDisplayMessages", {"requestId": 1})
    got = await csms201.expect("NotifyDisplayMessages")
    assert sorted(m["id"] for m in got["messageInfo"]) == [1, 2]
    await csms201.call("GetDisplayMessages", {"requestId": 2, "priority": "InFront"})
    got = await csms201.expect("NotifyDisplayMessages", lambda p: p["requestId"] == 2)
    assert [m["id"] for m in got["messageInfo"]] == [2]


async def test_TC_O_09_TC_O_34_CS_by_state(csms201, booted201):
    await booted201()
    await csms201.call("SetDisplayMessage", message(1, "charging now", state="Charging"))
    assert (await csms201.call("GetDisplayMessages", {"requestId": 3, "state": "Charging"}))["status"] == "Accepted"
    answer = await csms201.call("GetDisplayMessages", {"requestId": 4, "id": [1], "state": "Idle"})
    assert answer["status"] == "Unknown"


async def test_TC_O_13_TC_O_14_CS_shown_from_start_until_end(csms201, booted201):
    import asyncio

    from tests.integration.harness import wall_now

    sp = await booted201()
    start = wall_now() + timedelta(seconds=60)
    end = start + timedelta(seconds=60)
    await csms201.call("SetDisplayMessage", message(5, "later", startDateTime=iso(start), endDateTime=iso(end)))
    assert (await sp.status())["display"] == []
    await asyncio.sleep(90)
    assert [m["id"] for m in (await sp.status())["display"]] == [5]
    await asyncio.sleep(60)
    assert (await sp.status())["display"] == []


async def test_TC_I_07_CS_total_cost_in_transaction_event_response(csms201, booted201):
    csms201.responders["TransactionEvent"] = lambda p: {"totalCost": 2.5}
    sp = await booted201()
    await start_transaction_201(csms201, sp)
    import asyncio

    await asyncio.sleep(1)
    assert (await sp.status())["evses"][0]["transaction"]["cost"] == 2.5


async def test_TC_O_36_CS_state_charging(csms201, booted201):
    sp = await booted201()
    await csms201.call("SetDisplayMessage", message(7, "charging", state="Charging"))
    assert (await sp.status())["display"] == []
    await start_transaction_201(csms201, sp)
    assert [m["id"] for m in (await sp.status())["display"]] == [7]


async def test_TC_O_37_CS_state_idle(csms201, booted201):
    sp = await booted201()
    await csms201.call("SetDisplayMessage", message(8, "welcome", state="Idle"))
    assert [m["id"] for m in (await sp.status())["display"]] == [8]
    await start_transaction_201(csms201, sp)
    assert (await sp.status())["display"] == []


async def test_TC_O_38_CS_state_unavailable(csms201, booted201):
    sp = await booted201()
    await csms201.call("SetDisplayMessage", message(9, "out of order", state="Unavailable"))
    assert (await sp.status())["display"] == []
    await csms201.call("ChangeAvailability", {"operationalStatus": "Inoperative"})
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Unavailable")
    assert [m["id"] for m in (await sp.status())["display"]] == [9]


async def test_TC_O_22_CS_multiple_in_front_newest_first(csms201, booted201):
    sp = await booted201()
    await csms201.call("SetDisplayMessage", message(1, "first", "InFront"))
    await csms201.call("SetDisplayMessage", message(2, "second", "InFront"))
    await csms201.call("SetDisplayMessage", message(3, "cycle", "NormalCycle"))
    assert [m["id"] for m in (await sp.status())["display"]] == [2, 1, 3]


async def test_TC_O_06_CS_message_for_a_transaction(csms201, booted201):
    sp = await booted201()
    ev = await start_transaction_201(csms201, sp)
    tx_id = ev["transactionInfo"]["transactionId"]
    assert (await csms201.call("SetDisplayMessage", message(4, "your session", transactionId=tx_id)))["status"] \
        == "Accepted"
    assert [m["id"] for m in (await sp.status())["display"]] == [4]
    await sp.swipe("TAG1")
    await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended")
    assert (await sp.status())["display"] == []


async def test_TC_I_02_CS_final_total_cost_after_charging(csms201, booted201):
    csms201.responders["TransactionEvent"] = lambda p: {"totalCost": 4.2} if p["eventType"] == "Ended" else None
    sp = await booted201()
    ev = await start_transaction_201(csms201, sp)
    await sp.swipe("TAG1")
    await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended")
    import asyncio

    await asyncio.sleep(1)
    last = (await sp.status())["evses"][0]["last_transaction"]
    assert last == {"id": ev["transactionInfo"]["transactionId"], "cost": 4.2}


async def test_TC_O_39_CS_state_faulted(csms201, booted201):
    sp = await booted201()
    await csms201.call("SetDisplayMessage", message(11, "sorry", state="Faulted"))
    assert (await sp.status())["display"] == []
    await sp.fault("GroundFailure", True)
    await csms201.expect("StatusNotification", lambda p: p["connectorStatus"] == "Faulted")
    assert [m["id"] for m in (await sp.status())["display"]] == [11]


async def test_TC_O_11_TC_O_35_CS_unknown_parameters_and_priority_mismatch(csms201, booted201):
    await booted201()
    await csms201.call("SetDisplayMessage", message(1, "a", "NormalCycle"))
    assert (await csms201.call("GetDisplayMessages", {"requestId": 1, "id": [2, 3]}))["status"] == "Unknown"
    answer = await csms201.call("GetDisplayMessages", {"requestId": 2, "id": [1], "priority": "AlwaysFront"})
    assert answer["status"] == "Unknown"


async def test_TC_O_27_TC_O_28_CS_transaction_message_start_and_end_time(csms201, booted201):
    import asyncio

    from tests.integration.harness import wall_now

    sp = await booted201()
    ev = await start_transaction_201(csms201, sp)
    start = wall_now() + timedelta(seconds=60)
    await csms201.call("SetDisplayMessage", message(6, "half way", transactionId=ev["transactionInfo"]["transactionId"],
                                                    startDateTime=iso(start),
                                                    endDateTime=iso(start + timedelta(seconds=60))))
    assert (await sp.status())["display"] == []
    await asyncio.sleep(90)
    assert [m["id"] for m in (await sp.status())["display"]] == [6]
    await asyncio.sleep(60)
    assert (await sp.status())["display"] == []


async def test_TC_O_30_CS_transaction_messages_multiple_in_front(csms201, booted201):
    sp = await booted201()
    ev = await start_transaction_201(csms201, sp)
    tx_id = ev["transactionInfo"]["transactionId"]
    await csms201.call("SetDisplayMessage", message(1, "first", "InFront", transactionId=tx_id))
    await csms201.call("SetDisplayMessage", message(2, "second", "InFront", transactionId=tx_id))
    assert [m["id"] for m in (await sp.status())["display"]] == [2, 1]

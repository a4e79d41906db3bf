"""OCPP 2.0.1 blocks O (display messages) and I (tariff and cost) over a real websocket."""

from __future__ import annotations


def message(mid: int, text: str, priority: str = "NormalCycle", **extra) -> dict:
    return {"message": {"id": mid, "priority": priority, "message": {"format": "UTF8", "content": text}, **extra}}


async def test_TC_O_01_CS_set_display_message_and_get_it_back(csms201, booted201):
    sp = await booted201()
    assert (await csms201.call("SetDisplayMessage", message(1, "Welcome")))["status"] == "Accepted"
    assert (await csms201.call("GetDisplayMessages", {"requestId": 5, "id": [1]}))["status"] == "Accepted"
    got = await csms201.expect("NotifyDisplayMessages")
    assert got["requestId"] == 5 and got["messageInfo"][0]["message"]["content"] == "Welcome"
    assert (await sp.status())["display"] == [{"id": 1, "priority": "NormalCycle", "text": "Welcome"}]


async def test_TC_O_13_CS_get_display_messages_unknown(csms201, booted201):
    await booted201()
    assert (await csms201.call("GetDisplayMessages", {"requestId": 6, "id": [99]}))["status"] == "Unknown"


async def test_TC_O_14_CS_clear_display_message(csms201, booted201):
    await booted201()
    await csms201.call("SetDisplayMessage", message(2, "Out of order tomorrow"))
    assert (await csms201.call("ClearDisplayMessage", {"id": 2}))["status"] == "Accepted"
    assert (await csms201.call("ClearDisplayMessage", {"id": 2}))["status"] == "Unknown"


async def test_TC_O_20_CS_display_message_unknown_transaction_and_format(csms201, booted201):
    await booted201()
    answer = await csms201.call("SetDisplayMessage", message(3, "x", transactionId="nope"))
    assert answer["status"] == "UnknownTransaction"
    bad = message(4, "<b>x</b>")
    bad["message"]["message"]["format"] = "HTML"
    assert (await csms201.call("SetDisplayMessage", bad))["status"] == "NotSupportedMessageFormat"


async def test_display_messages_persist_and_replace_by_id(csms201, booted201):
    sp = await booted201()
    await csms201.call("SetDisplayMessage", message(1, "old", "InFront"))
    await csms201.call("SetDisplayMessage", message(1, "new", "AlwaysFront"))
    await sp.stop()
    sp.start()
    await csms201.expect("BootNotification", timeout=15, since=csms201.mark())
    await sp.wait_api()
    assert (await sp.status())["display"] == [{"id": 1, "priority": "AlwaysFront", "text": "new"}]


async def test_I_cost_updated_shown_with_the_transaction(csms201, booted201):
    sp = await booted201()
    await sp.plug()
    await sp.swipe("TAG1")
    ev = await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Started")
    tx_id = ev["transactionInfo"]["transactionId"]
    assert await csms201.call("CostUpdated", {"totalCost": 1.25, "transactionId": tx_id}) == {}
    tx = (await sp.status())["evses"][0]["transaction"]
    assert tx["id"] == tx_id and tx["cost"] == 1.25

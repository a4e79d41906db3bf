"""OCPP 2.0.1 blocks O (display messages) and I (tariff and cost): what the station shows the driver.

O01-O06: SetDisplayMessage keeps a message (a new one with the same id replaces it) for the
station's display, with its priority, state, validity window and transaction;
GetDisplayMessages answers Accepted and sends the matching ones in NotifyDisplayMessages parts,
or Unknown when none match; ClearDisplayMessage removes one. Messages persist across a restart
(store namespace ``display201``). The station has no screen of its own: the local API
(``GET /api/status``, ``display``) is where a display (or the field page) reads them.
I02/I03: CostUpdated and a TransactionEvent answer's totalCost are kept with the transaction and
shown the same way (``cost``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from station.core.clock import parse_iso
from station.ocpp201.handlers import Routes

if TYPE_CHECKING:
    from station.ocpp201.adapter import Ocpp201Adapter

routes = Routes("DisplayMessage")
NS = "display201"


class Display:
    """The display messages and running costs of one station."""

    def __init__(self, ad: Ocpp201Adapter) -> None:
        self.ad = ad
        self.costs: dict[str, float] = {}  # transactionId -> totalCost
        self.final: dict[int, dict] = {}  # EVSE id -> the last ended transaction's id and total cost (I02)

    def messages(self) -> list[dict]:
        return sorted(self.ad.store.items(NS).values(), key=lambda m: m["id"])

    def states(self) -> set[str]:
        """The MessageStateEnumType values that hold now (O01: a message with a state is shown
        only in that state): Charging, Faulted, Idle, Unavailable."""
        now: set[str] = set()
        st = self.ad.station
        states = [st.status_of(cid)[0].label for cid in st.connectors]
        if "Charging" in states:
            now.add("Charging")
        if "Faulted" in states:
            now.add("Faulted")
        if not st.operative or "Unavailable" in states:
            now.add("Unavailable")
        if all(c.transaction is None for c in st.connectors.values()) and st.operative:
            now.add("Idle")
        return now

    def shown(self) -> list[dict]:
        """What a display shows now: valid messages for the present state and transaction, by
        priority (AlwaysFront first), the newest first within a priority."""
        now = self.ad.scheduler.now()
        order = {"AlwaysFront": 0, "InFront": 1, "NormalCycle": 2}
        states = self.states()
        running = {t.transaction_id for t in self.ad.transactions.open.values()}
        out = []
        for m in self.messages():
            start, end = m.get("startDateTime"), m.get("endDateTime")
            if (start and parse_iso(start) > now) or (end and parse_iso(end) <= now):
                continue
            if m.get("state") and m["state"] not in states:
                continue
            if m.get("transactionId") and m["transactionId"] not in running:
                continue
            out.append(m)
        return sorted(out, key=lambda m: (order.get(m["priority"], 3), -int(m.get("_set", 0))))

    def cost_updated(self, transaction_id: str, total: float, final_evse: int | None = None) -> None:
        """A running total (CostUpdated, TransactionEvent answers); ``final_evse``: the total of
        the Ended event of a transaction on that EVSE, shown after it (I02)."""
        self.costs[transaction_id] = total
        if final_evse is not None:
            self.final[final_evse] = {"id": transaction_id, "cost": total}
            self.costs.pop(transaction_id, None)
        self.ad.log.info("running cost of transaction %s: %.2f %s", transaction_id, total,
                         self.ad.text("TariffCostCtrlr", "Currency"))


def service(ad: Ocpp201Adapter) -> Display:
    return Display(ad)


def _display(ad: Ocpp201Adapter) -> Display:
    return ad.services["display"]


@routes.on("SetDisplayMessage")
async def set_display_message(ad: Ocpp201Adapter, p: dict) -> dict:
    msg = p["message"]
    if not ad.flag("DisplayMessageCtrlr", "Enabled"):
        return {"status": "Rejected"}
    if msg["message"]["format"] not in ad.members("DisplayMessageCtrlr", "SupportedFormats"):
        return {"status": "NotSupportedMessageFormat"}
    if msg["priority"] not in ad.members("DisplayMessageCtrlr", "SupportedPriorities"):
        return {"status": "NotSupportedPriority"}
    tx_id = msg.get("transactionId")
    if tx_id is not None and ad.transactions.by_id(tx_id) is None:
        return {"status": "UnknownTransaction"}
    existing = {m["id"] for m in _display(ad).messages()}
    if msg["id"] not in existing and len(existing) >= ad.integer("DisplayMessageCtrlr", "DisplayMessages"):
        return {"status": "Rejected", "statusInfo": {"reasonCode": "NoCapacity"}}
    ad.store.put(NS, str(msg["id"]), {**msg, "_set": _next_order(ad)})
    ad.log.info("display message %d set (%s): %s", msg["id"], msg["priority"], msg["message"]["content"][:80])
    return {"status": "Accepted"}


def _next_order(ad: Ocpp201Adapter) -> int:
    """A number that grows with every message set (the newest of a priority is shown first)."""
    n = int(ad.store.get(NS + "_order", "n", 0)) + 1
    ad.store.put(NS + "_order", "n", n)
    return n


def _public(m: dict) -> dict:
    return {k: v for k, v in m.items() if not k.startswith("_")}


@routes.on("GetDisplayMessages")
async def get_display_messages(ad: Ocpp201Adapter, p: dict) -> Any:
    ids = set(p.get("id") or [])
    found = [m for m in _display(ad).messages()
             if (not ids or m["id"] in ids) and (p.get("priority") is None or m["priority"] == p["priority"])
             and (p.get("state") is None or m.get("state") == p["state"])]
    if not found:
        return {"status": "Unknown"}

    async def notify() -> None:
        await ad.send_parts("NotifyDisplayMessages", "messageInfo", [_public(m) for m in found], 10,
                            {"requestId": p["requestId"]}, numbered=False)

    return {"status": "Accepted"}, notify


@routes.on("ClearDisplayMessage")
async def clear_display_message(ad: Ocpp201Adapter, p: dict) -> dict:
    key = str(p["id"])
    if ad.store.get(NS, key) is None:
        return {"status": "Unknown"}
    ad.store.delete(NS, key)
    return {"status": "Accepted"}


@routes.on("CostUpdated")
async def cost_updated(ad: Ocpp201Adapter, p: dict) -> dict:
    _display(ad).cost_updated(p["transactionId"], float(p["totalCost"]))
    return {}

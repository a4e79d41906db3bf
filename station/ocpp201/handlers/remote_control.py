"""OCPP 2.0.1 block F (remote control) and B11/B12 (reset): RequestStartTransaction,
RequestStopTransaction, UnlockConnector, TriggerMessage, Reset; and P01 DataTransfer.

Remote start and stop are Rejected while the BootNotification is not Accepted: a CSMS that has
not accepted the station must not make it charge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from station.logsafe import text as safe
from station.ocpp201.handlers import Routes

if TYPE_CHECKING:
    from station.ocpp201.adapter import Ocpp201Adapter

routes = Routes("RemoteControl")

REJECTED = {"status": "Rejected"}


@routes.on("RequestStartTransaction")
async def request_start_transaction(ad: Ocpp201Adapter, p: dict) -> dict:
    if not ad.registered:
        ad.log.warning("RequestStartTransaction while registration is %s: Rejected", ad.registration)
        return REJECTED
    evse_id = p.get("evseId")
    if evse_id is not None and not ad.connectors_of(evse_id):
        return REJECTED
    profile = p.get("chargingProfile")
    if profile is not None and profile.get("chargingProfilePurpose") != "TxProfile":
        ad.log.info("RequestStartTransaction Rejected: its chargingProfile is not a TxProfile")
        return REJECTED
    token = p["idToken"]
    # the station's own choice (a connector reserved for the token, else one with a cable in, e.g.
    # a transaction started at EVConnected and not yet authorized, else a free one), on the EVSE named
    cid = ad.station.remote_start_connector(token["idToken"],
                                            ad.connectors_of(evse_id) if evse_id is not None else ad.connectors())
    if cid is None:
        return REJECTED
    ok = await ad.station.remote_start(cid, token["idToken"], profile, token_type=token["type"])
    if not ok:
        return REJECTED
    tx_id = ad.transactions.remote_start_accepted(cid, token, p["remoteStartId"])
    answer: dict[str, Any] = {"status": "Accepted"}
    if tx_id is not None:
        answer["transactionId"] = tx_id
    return answer


@routes.on("RequestStopTransaction")
async def request_stop_transaction(ad: Ocpp201Adapter, p: dict) -> dict:
    if not ad.registered:
        return REJECTED
    t = ad.transactions.by_id(p["transactionId"])
    if t is None:
        return REJECTED
    tx = ad.transactions.core_tx(t.cid)
    if tx is not None and tx.active:
        await ad.station.remote_stop(tx)
    else:
        ad.transactions.remote_stop_unauthorized(t)
    return {"status": "Accepted"}


@routes.on("UnlockConnector")
async def unlock_connector(ad: Ocpp201Adapter, p: dict) -> dict:
    cid = ad.connector_number(p["evseId"], p["connectorId"])
    if cid is None:
        return {"status": "UnknownConnector"}
    tx = ad.transactions.core_tx(cid)
    if tx is not None and tx.active:
        return {"status": "OngoingAuthorizedTransaction"}
    result = await ad.station.unlock(cid)
    return {"status": "Unlocked" if result == "Unlocked" else "UnlockFailed"}


@routes.on("Reset")
async def reset(ad: Ocpp201Adapter, p: dict) -> Any:
    evse_id = p.get("evseId")
    kind = p["type"]
    if evse_id is not None and not ad.connectors_of(evse_id):
        return REJECTED
    target = evse_id or 0
    if kind == "OnIdle" and ad.busy(evse_id):
        ad.schedule_reset(target, kind)
        where = f"EVSE {target}" if target else "station"
        ad.station.on_event(f"reset ({where}) scheduled for when it is idle")
        return {"status": "Scheduled"}

    async def after() -> None:
        await ad.reset(target, kind)

    return {"status": "Accepted"}, after


@routes.on("TriggerMessage")
async def trigger_message(ad: Ocpp201Adapter, p: dict) -> Any:
    what = p["requestedMessage"]
    evse = p.get("evse")
    cids = ad.connectors()
    if evse is not None:
        if "connectorId" in evse:
            cid = ad.connector_number(evse["id"], evse["connectorId"])
            cids = [cid] if cid is not None else []
        else:
            cids = ad.connectors_of(evse["id"])
        if not cids:
            return REJECTED
    if what != "BootNotification" and not ad.registered:
        return REJECTED  # B02: nothing but a BootNotification before the boot is Accepted
    if what == "BootNotification":
        if ad.registered:
            return REJECTED  # F06.FR.17: already accepted

        async def boot() -> None:
            ad.registrar.connected()

        return {"status": "Accepted"}, boot
    if what == "Heartbeat":
        return {"status": "Accepted"}, lambda: ad.send_quietly("Heartbeat", {})
    if what == "StatusNotification":
        async def status() -> None:
            ad.status.trigger(cids)

        return {"status": "Accepted"}, status
    if what == "MeterValues":
        async def meter_values() -> None:
            await ad.trigger_meter_values(cids)

        return {"status": "Accepted"}, meter_values
    if what == "TransactionEvent":
        running = [c for c in cids if c in ad.transactions.open]
        if not running:
            return REJECTED

        async def events() -> None:
            for c in running:
                await ad.station.read_meter(c)
                ad.transactions.triggered(c)

        return {"status": "Accepted"}, events
    hook = ad.triggers.get(what)  # a block's own message (handlers/__init__.py services)
    if hook is not None:
        return hook(cids)
    return {"status": "NotImplemented"}


@routes.on("DataTransfer")
async def data_transfer(ad: Ocpp201Adapter, p: dict) -> dict:
    ad.log.info("DataTransfer from CSMS: vendor %s message %s", safe(p.get("vendorId"), 255), safe(p.get("messageId"), 50))
    return {"status": "UnknownVendorId"}

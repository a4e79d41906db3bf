"""OCPP 1.6 Core profile: the CSMS's requests (section 5) and the station's answers.

Remote start and stop are Rejected while the station is not registered (BootNotification not
Accepted): a CSMS that has not accepted the station yet must not make it charge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from station.ocpp16.handlers import Routes

try:  # the shared helper (station/logsafe.py)
    from station.logsafe import text as _logsafe
except ImportError:  # pragma: no cover - until it lands
    _logsafe = None


def safe(text: object, limit: int = 120) -> str:
    """CSMS-supplied text for a log line: control characters escaped, cut at ``limit``."""
    if _logsafe is not None:
        return str(_logsafe(text, limit))
    s = repr(str(text))[1:-1]
    return s if len(s) <= limit else s[:limit] + "..."

if TYPE_CHECKING:
    from station.ocpp16.adapter import Ocpp16Adapter

routes = Routes("Core")

REJECTED = {"status": "Rejected"}


@routes.on("ChangeAvailability")
async def change_availability(ad: Ocpp16Adapter, p: dict) -> dict:
    cid = p["connectorId"]
    if cid != 0 and cid not in ad.station.connectors:
        return REJECTED
    return {"status": ad.station.change_availability(cid, p["type"] == "Operative")}


@routes.on("ChangeConfiguration")
async def change_configuration(ad: Ocpp16Adapter, p: dict) -> Any:
    key = ad.keys.canonical(p["key"]) or p["key"]
    status, why = ad.keys.change(key, p["value"])
    if why:
        # the CSMS's text is escaped (no forged log lines); a secret's value is never logged
        secret = key in ad.keys.defs and ad.keys.defs[key].secret
        shown = "(secret, not logged)" if secret else safe(p["value"], 80)
        ad.log.info("ChangeConfiguration %s=%s: %s (%s)", safe(p["key"], 60), shown, status, safe(why, 120))
    answer = {"status": status}
    if status not in ("Accepted", "RebootRequired"):
        return answer
    after = ad.key_changed(key)
    return (answer, after) if after is not None else answer


@routes.on("GetConfiguration")
async def get_configuration(ad: Ocpp16Adapter, p: dict) -> dict:
    found, unknown = ad.keys.report(p.get("key"))
    out: dict = {"configurationKey": found}
    if unknown:
        out["unknownKey"] = unknown
    return out


@routes.on("ClearCache")
async def clear_cache(ad: Ocpp16Adapter, p: dict) -> dict:
    ad.station.clear_cache()  # the cache lives in our own store: clearing cannot fail
    return {"status": "Accepted"}


@routes.on("DataTransfer")
async def data_transfer(ad: Ocpp16Adapter, p: dict) -> dict:
    ad.log.info("DataTransfer from CSMS: vendor %s message %s", safe(p.get("vendorId"), 255), safe(p.get("messageId"), 50))
    return {"status": "UnknownVendorId"}


@routes.on("RemoteStartTransaction")
async def remote_start_transaction(ad: Ocpp16Adapter, p: dict) -> dict:
    if not ad.registered:
        ad.log.warning("RemoteStartTransaction while registration is %s: Rejected", ad.registration)
        return REJECTED
    cid = p.get("connectorId")
    if cid is not None and (cid <= 0 or cid not in ad.station.connectors):
        return REJECTED
    profile = p.get("chargingProfile")
    if profile is not None:
        from station.ocpp16.handlers.smart_charging import remote_start_problem  # noqa: PLC0415 (profile module)

        why = remote_start_problem(ad, cid, profile)
        if why:
            ad.log.info("RemoteStartTransaction with chargingProfile Rejected: %s", why)
            return REJECTED
    ok = await ad.station.remote_start(cid, p["idTag"], profile)
    return {"status": "Accepted" if ok else "Rejected"}


@routes.on("RemoteStopTransaction")
async def remote_stop_transaction(ad: Ocpp16Adapter, p: dict) -> dict:
    if not ad.registered:
        ad.log.warning("RemoteStopTransaction while registration is %s: Rejected", ad.registration)
        return REJECTED
    tx = ad.station.find_transaction(lambda t: t.transaction_id == p["transactionId"])
    if tx is None:
        return REJECTED
    await ad.station.remote_stop(tx)
    return {"status": "Accepted"}


@routes.on("Reset")
async def reset(ad: Ocpp16Adapter, p: dict) -> Any:
    async def after() -> None:
        await ad.station.reset(p["type"])

    return {"status": "Accepted"}, after


@routes.on("UnlockConnector")
async def unlock_connector(ad: Ocpp16Adapter, p: dict) -> dict:
    cid = p["connectorId"]
    if cid not in ad.station.connectors:
        return {"status": "NotSupported"}
    return {"status": await ad.station.unlock(cid)}

"""OCPP 1.6 Remote Trigger profile: TriggerMessage (section 5.17). The answer goes out first, the
triggered message after it. MeterValues: connectorId 0 is the main meter (the station's total),
no connectorId means every connector, one MeterValues each. DiagnosticsStatusNotification and
FirmwareStatusNotification report what runs now (Uploading; Downloading, Downloaded, Installing), else Idle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from station.ocpp16.handlers import Routes

if TYPE_CHECKING:
    from station.ocpp16.adapter import Ocpp16Adapter

routes = Routes("RemoteTrigger")


def unknown_connector(ad: Ocpp16Adapter, cid: int | None) -> bool:
    """A trigger for a connector this station does not have (0 and none are the station): Rejected."""
    return cid is not None and cid != 0 and cid not in ad.station.connectors


@routes.on("TriggerMessage")
async def trigger_message(ad: Ocpp16Adapter, p: dict) -> Any:
    what = p["requestedMessage"]
    cid = p.get("connectorId")
    if unknown_connector(ad, cid):
        return {"status": "Rejected"}

    async def boot() -> None:
        await ad.registrar.boot(again=True)

    async def heartbeat() -> None:
        await ad.registrar.heartbeat()

    async def status() -> None:
        await ad.status.trigger(cid)

    async def meter_values() -> None:
        await ad.trigger_meter_values(cid)

    async def diagnostics() -> None:
        await ad.send_quietly("DiagnosticsStatusNotification", {"status": ad.firmware.diagnostics_status})

    async def firmware() -> None:
        await ad.send_quietly("FirmwareStatusNotification", {"status": ad.firmware.firmware_status})

    senders = {
        "BootNotification": boot,
        "Heartbeat": heartbeat,
        "StatusNotification": status,
        "MeterValues": meter_values,
        "DiagnosticsStatusNotification": diagnostics,
        "FirmwareStatusNotification": firmware,
    }
    if what not in senders:
        return {"status": "NotImplemented"}
    return {"status": "Accepted"}, senders[what]

"""OCPP 1.6 Firmware Management profile: UpdateFirmware (5.16) and GetDiagnostics (5.9), with
FirmwareStatusNotification and DiagnosticsStatusNotification; the work is done by
station/firmware.py (``service`` builds it for an adapter).

The answer goes out first, the job after it. An UpdateFirmware whose location this station
cannot use (not http, https or ftp) is answered (its answer has no status) and then reported
DownloadFailed; a GetDiagnostics with such a location is answered without a fileName (no file
will be uploaded).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from station.core.clock import iso, parse_iso
from station.core.transaction import StopReason
from station.firmware import FirmwareService, installed_version
from station.ocpp16 import vocabulary
from station.ocpp16.handlers import Routes
from station.transfer import TransferError, client_context, parse_location

if TYPE_CHECKING:
    from station.ocpp16.adapter import Ocpp16Adapter

routes = Routes("FirmwareManagement")


def service(ad: Ocpp16Adapter) -> FirmwareService:
    """The firmware and diagnostics service of one adapter (one station generation)."""

    async def notify(action: str, status: str) -> bool:
        return await ad.send_quietly(action, {"status": status}) is not None

    async def notify_firmware(status: str) -> bool:
        return await notify("FirmwareStatusNotification", status)

    async def notify_diagnostics(status: str) -> bool:
        return await notify("DiagnosticsStatusNotification", status)

    async def restart() -> None:
        st = ad.station
        st.on_event("restarting into the new firmware")
        await st.stop_all(StopReason.Reboot)
        if st.restart_request is not None and not st.restart_request.done():
            st.restart_request.set_result("Firmware")

    def connector(cid: int) -> dict:
        state, fault = ad.station.status_of(cid)
        c = ad.station.connectors[cid]
        return {"status": str(vocabulary.status(state)), "fault": fault, "operative": c.operative,
                "plugged": c.plugged, "faults": dict(c.faults),
                "transaction": c.transaction.transaction_id if c.transaction is not None else None}

    def summary() -> dict:
        st = ad.station
        keys, _ = ad.keys.report(None)  # secrets are never reported
        return {
            "station_id": ad.cfg.id,
            "vendor": ad.cfg.vendor,
            "model": ad.cfg.model,
            "firmware_version": installed_version(ad.store, ad.cfg.firmware_version),
            "ocpp": "1.6",
            "registration": ad.registration,
            "online": ad.online,
            "queued_transaction_messages": len(ad.outbox),
            "connectors": {cid: connector(cid) for cid in st.connectors},
            "configuration": {k["key"]: k["value"] for k in keys},
        }

    files = None if ad.cfg.state_dir == ":memory:" else Path(ad.cfg.state_path()) / "firmware"
    return FirmwareService(
        scheduler=ad.scheduler, store=ad.store, log=ad.log, spawn=ad.spawn, notify_firmware=notify_firmware,
        notify_diagnostics=notify_diagnostics, restart=restart, summary=summary, station_id=ad.cfg.id,
        ssl_context=lambda: client_context(ad.cfg.ca_file), files_dir=files,
        busy=lambda: sum(c.transaction is not None for c in ad.station.connectors.values()),
        signed=lambda: getattr(ad, "security", None),  # SignedUpdateFirmware (handlers/security.py)
    )


@routes.on("UpdateFirmware")
async def update_firmware(ad: Ocpp16Adapter, p: dict) -> Any:
    fw: FirmwareService = ad.firmware
    retrieve = parse_iso(p["retrieveDate"])
    try:
        parse_location(p["location"])
    except TransferError as e:
        ad.log.warning("UpdateFirmware: %s; reporting DownloadFailed", e)

        async def failed() -> None:
            await ad.send_quietly("FirmwareStatusNotification", {"status": "DownloadFailed"})

        return {}, failed
    ad.log.info("UpdateFirmware accepted: download at %s", iso(retrieve))

    async def begin() -> None:
        fw.update_firmware(p["location"], retrieve, p.get("retries", 0), p.get("retryInterval", 0))

    return {}, begin


@routes.on("GetDiagnostics")
async def get_diagnostics(ad: Ocpp16Adapter, p: dict) -> Any:
    fw: FirmwareService = ad.firmware
    start = parse_iso(p["startTime"]) if "startTime" in p else None
    stop = parse_iso(p["stopTime"]) if "stopTime" in p else None
    try:
        parse_location(p["location"])
    except TransferError as e:
        ad.log.warning("GetDiagnostics: %s; no file will be uploaded", e)
        return {}
    name = fw.diagnostics_file_name()

    async def begin() -> None:
        fw.get_diagnostics(p["location"], name, p.get("retries", 0), p.get("retryInterval", 0), start, stop)

    return {"fileName": name}, begin

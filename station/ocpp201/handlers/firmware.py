"""OCPP 2.0.1 block L (firmware management): L01 Secure Firmware Update with
FirmwareStatusNotification, on the shared firmware engine (station/firmware.py).

UpdateFirmware is checked before the answer:

- no signingCertificate or no signature: Rejected (this station only does the secure update of
  L01; OCTT TC_L_18 requires the refusal);
- the signing certificate is not valid now or not issued by an installed
  ManufacturerRootCertificate: InvalidCertificate and the security event
  InvalidFirmwareSigningCertificate (L01.FR.02/03); listed in its CRL: RevokedCertificate;
- a location this station cannot use, or a bad date: Rejected;
- an update is already being installed (Installing, InstallRebooting): Rejected, it cannot be
  cancelled any more (L01.FR.27); any other update not yet done is cancelled and the new one
  answered AcceptedCanceled (L01.FR.24).

The job itself is the engine's (kept in the store across a restart, retried, installed only once
no transaction runs), with this module as its ``SignedFirmware`` side: every status goes out as
FirmwareStatusNotification with the requestId (L01.FR.01): DownloadScheduled (retrieveDateTime
ahead), Downloading, Downloaded or DownloadFailed, SignatureVerified or InvalidSignature (with the
security event InvalidFirmwareSignature), InstallScheduled (installDateTime ahead, or the
installation waits for running transactions), Installing, InstallationFailed (not a valid
package) or InstallRebooting, then the restart with BootNotification reason FirmwareUpdate and the
new firmwareVersion, after which Installed and the security event FirmwareUpdated.

While the installation waits for transactions to end, every EVSE not in use is set Unavailable,
and so is each one whose transaction ends meanwhile (L01.FR.07), unless
ChargingStation.AllowNewSessionsPendingFirmwareUpdate is true. Those EVSEs (remembered in the
store) are made available again when the update ends without installing, is replaced, or after
the restart.

TriggerMessage FirmwareStatusNotification reports the current status with its requestId, or Idle
when no update runs.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from station.core.clock import parse_iso
from station.core.transaction import StopReason
from station.firmware import FirmwareService, installed_version
from station.logsafe import text as safe
from station.ocpp201.handlers import Routes
from station.revocation import check_revocation, issuer_among
from station.security import (
    MANUFACTURER_ROOT,
    CertificateProblem,
    CertificateStore,
    check_signing_certificate,
    firmware_signature_ok,
    parse_chain,
)
from station.transfer import TransferError, client_context, parse_location

if TYPE_CHECKING:
    from station.ocpp201.adapter import Ocpp201Adapter

routes = Routes("FirmwareManagement")

# store: "installed" (the requestId to report Installed for), "updated_event" (FirmwareUpdated to
# raise), "held" (the connectors set Unavailable while an installation waits)
NS = "ocpp201.firmware"
# statuses after which no update runs (TriggerMessage then reports Idle)
FINAL = frozenset({"DownloadFailed", "InvalidSignature", "InstallationFailed", "InstallVerificationFailed", "Installed"})
NOT_CANCELABLE = frozenset({"Installing", "InstallRebooting"})
DEFAULT_RETRIES = 1  # UpdateFirmware without retries / retryInterval: the station decides
DEFAULT_RETRY_INTERVAL_S = 30


def security_event(ad: Ocpp201Adapter, kind: str, tech_info: str = "") -> None:
    """A security event for the CSMS: through the security block's service when there is one,
    else written to the security log (``<state>/security/security-log.jsonl``, which GetLog
    SecurityLog uploads) and queued in the outbox (SecurityEventNotification, sent in order once
    online)."""
    svc = ad.services.get("security")
    record = getattr(svc, "event", None)
    if callable(record):
        record(kind, tech_info)
        return
    payload: dict[str, Any] = {"type": kind, "timestamp": ad.now_iso()}
    if tech_info:
        payload["techInfo"] = tech_info[:255]
    ad.log.warning("security event %s%s", kind, f": {tech_info}" if tech_info else "")
    if ad.cfg.state_dir != ":memory:":
        try:
            folder = ad.cfg.state_path() / "security"
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            with (folder / "security-log.jsonl").open("a") as f:
                f.write(json.dumps({"timestamp": payload["timestamp"], "type": kind, "techInfo": tech_info[:255]}) + "\n")
        except OSError as e:
            ad.log.error("security log not written: %s", e)
    ad.outbox.add("SecurityEventNotification", payload)


def certificates(ad: Ocpp201Adapter) -> CertificateStore:
    """The station's certificate store: the security block's, else the one in the state directory
    (``<state>/security``, as the security engine keeps it)."""
    certs = getattr(ad.services.get("security"), "certs", None)
    if isinstance(certs, CertificateStore):
        return certs
    folder = Path(tempfile.mkdtemp(prefix="station-security-")) if ad.cfg.state_dir == ":memory:" \
        else ad.cfg.state_path() / "security"
    return CertificateStore(folder)


class Firmware201:
    """The 2.0.1 side of the firmware engine (see the module docstring)."""

    def __init__(self, ad: Ocpp201Adapter) -> None:
        self.ad = ad
        self.store = ad.store
        self.status: tuple[str, int | None] = ("Idle", None)  # the last status reported and its requestId
        self.waiting = False  # the installation waits for transactions to end
        self._certs: CertificateStore | None = None
        files = None if ad.cfg.state_dir == ":memory:" else Path(ad.cfg.state_path()) / "firmware"
        self.engine = FirmwareService(
            scheduler=ad.scheduler, store=ad.store, log=ad.log, spawn=ad.spawn,
            notify_firmware=self._notify_unsigned, notify_diagnostics=self._no_diagnostics,
            restart=self._restart, summary=self.summary, station_id=ad.cfg.id,
            ssl_context=lambda: client_context(ad.cfg.ca_file), files_dir=files,
            busy=self.running, signed=lambda: self, on_wait_idle=self._installation_waits,
        )
        ad.triggers["FirmwareStatusNotification"] = self.trigger

    @property
    def certs(self) -> CertificateStore:
        if self._certs is None:
            self._certs = certificates(self.ad)
        return self._certs

    # -- life cycle (adapter services) -----------------------------------------------------------
    def start(self) -> None:
        self.release()  # EVSEs held for an installation before a restart are available again

    def stop(self) -> None:
        self.engine.stop()

    def registered(self) -> None:
        if self.store.get(NS, "updated_event"):  # once, whatever happens to the Installed report
            self.store.delete(NS, "updated_event")
            security_event(self.ad, "FirmwareUpdated",
                           f"firmware {installed_version(self.store, self.ad.cfg.firmware_version)}")
        request_id = self.store.get(NS, "installed")
        if request_id is not None:
            self.ad.spawn(self._report_installed(int(request_id)))
        self.engine.registered()

    def transaction_ended(self) -> None:
        self.engine.transaction_ended()
        if self.waiting and not self._new_sessions_allowed():
            self.hold_free_evses()

    async def _report_installed(self, request_id: int) -> None:
        if await self.notify_signed("Installed", request_id):
            self.store.delete(NS, "installed")

    # -- UpdateFirmware --------------------------------------------------------------------------
    def begin(self, request_id: int, location: str, retrieve: Any, install: Any, retries: int, interval: int,
              signed: dict) -> None:
        """Start the job (after the answer); a job not yet done is replaced."""
        self.waiting = False
        self.release()
        self.status = ("Idle", None)
        self.engine.update_firmware(location, retrieve, retries, interval, signed=signed, install_at=install)
        if retrieve > self.ad.scheduler.now():
            self.ad.spawn(self.notify_signed("DownloadScheduled", request_id))

    def cancelable(self) -> bool:
        return self.status[0] not in NOT_CANCELABLE

    # -- the engine's SignedFirmware side ---------------------------------------------------------
    async def notify_signed(self, status: str, request_id: int) -> bool:
        final = status in FINAL
        self.status = ("Idle", None) if final else (status, request_id)
        if final:
            self.waiting = False
            self.release()
        answer = await self.ad.send_quietly("FirmwareStatusNotification", {"status": status, "requestId": request_id})
        return answer is not None

    def signature_ok(self, signed: dict, data: bytes) -> bool:
        try:
            cert = parse_chain(signed["signingCertificate"])[0]
        except (CertificateProblem, KeyError, TypeError):
            cert = None
        ok = cert is not None and firmware_signature_ok(cert, str(signed.get("signature", "")), data)
        if not ok:
            self.ad.log.error("firmware of request %s: the signature does not match", signed.get("requestId"))
            security_event(self.ad, "InvalidFirmwareSignature", "the firmware signature does not match the signing certificate")
        return ok

    def signed_installed(self, request_id: int) -> None:
        """In the store transaction that installs: Installed is reported after the restart."""
        self.store.put(NS, "installed", request_id)
        self.store.put(NS, "updated_event", True)

    async def _notify_unsigned(self, status: str) -> bool:
        """A job without a signed part (kept from a 1.6 run of this station): statuses without requestId."""
        return await self.ad.send_quietly("FirmwareStatusNotification", {"status": status}) is not None

    async def _no_diagnostics(self, status: str) -> bool:
        self.ad.log.warning("DiagnosticsStatusNotification %s is not an OCPP 2.0.1 message: not sent", status)
        return False

    # -- the installation waits for transactions (L01.FR.07) --------------------------------------
    def _busy(self, cid: int) -> bool:
        tx = self.ad.transactions
        return cid in tx.open or tx.core_tx(cid) is not None

    def running(self) -> int:
        """How many connectors have a transaction."""
        return sum(self._busy(cid) for cid in self.ad.connectors())

    def _new_sessions_allowed(self) -> bool:
        return self.ad.flag("ChargingStation", "AllowNewSessionsPendingFirmwareUpdate")

    async def _installation_waits(self, running: int) -> None:
        self.waiting = True
        if not self._new_sessions_allowed():
            self.hold_free_evses()
        status, request_id = self.status
        if status != "InstallScheduled" and request_id is not None:
            await self.notify_signed("InstallScheduled", request_id)

    def hold_free_evses(self) -> None:
        """Every EVSE none of whose connectors has a transaction: Unavailable (remembered)."""
        held = set(self._held())
        for evse_id in self.ad.layout:
            cids = self.ad.connectors_of(evse_id)
            if any(self._busy(c) for c in cids):
                continue
            for c in cids:
                if c not in held and self.ad.station.connectors[c].operative:
                    self.ad.station.change_availability(c, False)
                    held.add(c)
        if held:
            self.store.put(NS, "held", sorted(held))

    def release(self) -> None:
        """The EVSEs held for an installation: available again."""
        held = self._held()
        if not held:
            return
        self.store.delete(NS, "held")
        for c in held:
            if c in self.ad.station.connectors:
                self.ad.station.change_availability(c, True)

    def _held(self) -> list[int]:
        held = self.store.get(NS, "held")
        return [int(c) for c in held] if isinstance(held, list) else []

    # -- restart into the new firmware ------------------------------------------------------------
    async def _restart(self) -> None:
        from station.ocpp201.adapter import NS as ADAPTER_NS  # noqa: PLC0415 - the adapter imports this package

        st = self.ad.station
        self.ad.store.put(ADAPTER_NS, "boot_reason", "FirmwareUpdate")
        st.on_event("restarting into the new firmware")
        await st.stop_all(StopReason.Reboot)
        if st.restart_request is not None and not st.restart_request.done():
            st.restart_request.set_result("Firmware")

    # -- TriggerMessage ---------------------------------------------------------------------------
    def trigger(self, cids: list[int]) -> Any:
        status, request_id = self.status

        async def report() -> None:
            payload: dict[str, Any] = {"status": status}
            if status != "Idle" and request_id is not None:
                payload["requestId"] = request_id
            await self.ad.send_quietly("FirmwareStatusNotification", payload)

        return {"status": "Accepted"}, report

    # -- what a diagnostics log says about the station ----------------------------------------------
    def summary(self) -> dict:
        ad = self.ad
        config = {}
        for item in ad.dm.base_report("ConfigurationInventory") or []:
            comp, var = item["component"], item["variable"]
            name = comp["name"] + (f"[{comp['evse']['id']}]" if "evse" in comp else "") + "." + var["name"] + \
                (f".{var['instance']}" if var.get("instance") else "")
            actual = next((a for a in item["variableAttribute"] if a.get("type") == "Actual"), {})
            if "value" in actual:  # never a WriteOnly (secret) value
                config[name] = actual["value"]
        return {
            "station_id": ad.cfg.id, "vendor": ad.cfg.vendor, "model": ad.cfg.model,
            "firmware_version": installed_version(ad.store, ad.cfg.firmware_version), "ocpp": "2.0.1",
            "registration": ad.registration, "online": ad.online, "queued_messages": len(ad.outbox),
            "connectors": {str(cid): {"evse": list(ad.address(cid)), "status": ad.status.current(cid),
                                      "operative": ad.station.connectors[cid].operative,
                                      "transaction": ad.transactions.open[cid].transaction_id if cid in ad.transactions.open else None}
                           for cid in ad.connectors()},
            "firmware_update": {"status": self.status[0], "requestId": self.status[1]},
            "configuration": config,
        }


def service(ad: Ocpp201Adapter) -> Firmware201:
    return Firmware201(ad)


def _block(ad: Ocpp201Adapter) -> Firmware201:
    return ad.services["firmware"]


@routes.on("UpdateFirmware")
async def update_firmware(ad: Ocpp201Adapter, p: dict) -> Any:
    block = _block(ad)
    fw = p["firmware"]
    request_id = p["requestId"]
    if not fw.get("signingCertificate") or not fw.get("signature"):
        ad.log.warning("UpdateFirmware %s without signingCertificate and signature: Rejected (secure update only)", request_id)
        return {"status": "Rejected", "statusInfo": {"reasonCode": "MissingSignature",
                                                     "additionalInfo": "signingCertificate and signature are required"}}
    try:
        parse_location(fw["location"])
        retrieve = parse_iso(fw["retrieveDateTime"])
        install = parse_iso(fw["installDateTime"]) if fw.get("installDateTime") else None
    except (TransferError, ValueError, TypeError) as e:
        ad.log.warning("UpdateFirmware refused: %s", safe(e, 200))
        return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidValue", "additionalInfo": safe(e, 500)}}
    now = ad.scheduler.now()
    certs = block.certs
    try:
        cert = check_signing_certificate(certs, fw["signingCertificate"], now)
    except CertificateProblem as e:
        ad.log.warning("UpdateFirmware %s: %s", request_id, e)
        security_event(ad, "InvalidFirmwareSigningCertificate", str(e))
        return {"status": "InvalidCertificate"}
    result = await check_revocation(cert, issuer_among(cert, certs.roots(MANUFACTURER_ROOT)), now,
                                    ssl_context=client_context(ad.cfg.ca_file))
    if result.status == "revoked":
        ad.log.warning("UpdateFirmware %s: the signing certificate is revoked: %s", request_id, result.reason)
        security_event(ad, "InvalidFirmwareSigningCertificate", f"revoked certificate: {result.reason}")
        return {"status": "RevokedCertificate"}
    if not block.cancelable():
        ad.log.warning("UpdateFirmware %s while firmware is being installed: Rejected", request_id)
        return {"status": "Rejected", "statusInfo": {"reasonCode": "InstallationOngoing"}}
    replaced = block.engine.pending()
    retries = p.get("retries", DEFAULT_RETRIES)
    interval = p.get("retryInterval", DEFAULT_RETRY_INTERVAL_S)
    signed = {"requestId": request_id, "signingCertificate": fw["signingCertificate"], "signature": fw["signature"]}

    async def begin() -> None:
        block.begin(request_id, fw["location"], retrieve, install, retries, interval, signed)

    return {"status": "AcceptedCanceled" if replaced else "Accepted"}, begin

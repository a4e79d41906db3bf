"""OCPP 1.6 security extension (whitepaper edition 3): the CSMS's security requests and the
station's side of the security profiles.

Requests: ExtendedTriggerMessage, CertificateSigned, InstallCertificate, DeleteCertificate,
GetInstalledCertificateIds, GetLog (SecurityLog and DiagnosticsLog, uploaded over HTTP(S) or FTP
with station/transfer.py, with LogStatusNotification). The station sends SignCertificate (its CSR, on ExtendedTriggerMessage
SignChargePointCertificate) and SecurityEventNotification: every event goes to the security log
(``<state>/security/security-log.jsonl``); the whitepaper's critical ones are also queued in the
outbox, like transaction messages (stored, in order, sent when online, retried).

Security profile (``SecurityService``): the profile in use is the station config's
``station.security_profile`` or, if higher, the one a CSMS upgraded it to (store namespace
``security``, key ``profile``). ChangeConfiguration SecurityProfile only goes up, and only when
what the new profile needs is there (2: a CentralSystemRootCertificate installed or
``station.ca_file``, and an AuthorizationKey; 3: a ChargePointCertificate). Accepted, the station
reconnects with the new profile once the answer is out (profiles 2 and 3 from a ws://
``csms_url``: on ``station.csms_url_tls``, else ``csms_url`` with wss:// in place of ws://); the new profile is kept (persisted) when that connection opens. If it
fails to connect ``PROFILE_TRIAL_ATTEMPTS`` times in a row the station falls back to the previous
profile (the key says it again) and logs an ERROR. A restart during the trial starts with the
profile last confirmed. Downgrading needs the operator: the config's profile and removing the
``security`` entry of the state (``--state-dir`` afresh).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import websockets

from station import logsafe
from station.core.clock import iso, parse_iso
from station.link import CallErrorReceived, NotConnected
from station.ocpp16.handlers import Routes
from station.revocation import check_revocation, issuer_among
from station.security import (
    CSMS_ROOT,
    MANUFACTURER_ROOT,
    ROOT_TYPES,
    CertificateProblem,
    CertificateStore,
    HashData,
    check_signing_certificate,
    firmware_signature_ok,
    parse_chain,
)
from station.security import client_context as tls_client_context
from station.transfer import TransferError, client_context, parse_location, upload

if TYPE_CHECKING:
    from station.ocpp16.adapter import Ocpp16Adapter

routes = Routes("Security")

NS = "security"
PROFILE_TRIAL_ATTEMPTS = 3
SECURITY_LOG_MAX = 2000  # lines kept in the security log (the oldest half goes when it is full)
# the whitepaper's critical security events: sent to the CSMS (the others are only logged)
CRITICAL_EVENTS = frozenset({
    "FirmwareUpdated", "FailedToAuthenticateAtCentralSystem", "CentralSystemFailedToAuthenticate",
    "SettingSystemTime", "StartupOfTheDevice", "ResetOrReboot", "SecurityLogWasCleared",
    "ReconfigurationOfSecurityParameters", "MemoryExhaustion", "TamperDetectionActivated",
    "InvalidFirmwareSignature", "InvalidFirmwareSigningCertificate", "InvalidCentralSystemCertificate",
    "InvalidChargePointCertificate", "InvalidTLSVersion", "InvalidTLSCipherSuite",
})


class SecurityService:
    """The adapter's security state: certificate store, security profile, security events."""

    def __init__(self, ad: Ocpp16Adapter) -> None:
        self.ad = ad
        cfg = ad.cfg
        memory = cfg.state_dir == ":memory:"
        if memory:  # a temporary folder only if a certificate is ever looked at; the log in memory
            self.certs = CertificateStore(lambda: Path(tempfile.mkdtemp(prefix="station-security-")))
            self.log_file: Path | None = None
            self._log_lines: list[str] = []
        else:
            folder = cfg.state_path() / NS
            self.certs = CertificateStore(folder)
            self.log_file = folder / "security-log.jsonl"
        confirmed = ad.store.get(NS, "profile")
        self.profile = max(cfg.security_profile, int(confirmed) if isinstance(confirmed, int | str) and str(confirmed).isdigit() else 0)
        self.trial: tuple[int, int] | None = None  # (previous, new) until the new profile connects
        self.trial_failures = 0
        self.failure_events: set[str] = set()  # events of the current run of failed connections (sent once)
        self.log_upload: tuple[str, int | None] = ("Idle", None)
        self.started = False  # StartupOfTheDevice / ResetOrReboot reported (on the first connection)
        self.signed_status: tuple[str, int | None] = ("Idle", None)  # its last status and requestId

    # -- the link for a profile ---------------------------------------------------------------
    def url(self, profile: int | None = None) -> str:
        profile = self.profile if profile is None else profile
        base = self.ad.cfg.csms_url
        if profile >= 2 and base.lower().startswith("ws://"):
            base = getattr(self.ad.cfg, "csms_url_tls", None) or "wss://" + base[5:]
        return base.rstrip("/") + "/" + self.ad.cfg.id

    def basic_auth(self, profile: int | None = None) -> tuple[str, str] | None:
        profile = self.profile if profile is None else profile
        password = self.ad.keys.get("AuthorizationKey")
        if profile not in (1, 2):
            return None
        if not password:
            self.ad.log.warning("security profile %d needs AuthorizationKey; connecting without basic auth", profile)
            return None
        return (self.ad.cfg.id, password)

    def ssl_context(self, profile: int | None = None) -> ssl.SSLContext | None:
        """Profiles 2 and 3: installed roots (and station.ca_file); 3 also the client certificate.
        None when it cannot be built (the link then names the unreadable CA file)."""
        profile = self.profile if profile is None else profile
        if not self.url(profile).lower().startswith("wss://"):
            return None
        if profile == 3 and not self.certs.has_client_certificate():
            self.ad.log.error("security profile 3 needs a ChargePointCertificate: none is installed (SignCertificate)")
        try:
            return tls_client_context(self.certs, self.ad.cfg.ca_file, client_certificate=profile == 3)
        except (OSError, ssl.SSLError):
            return None

    def configure(self, profile: int) -> None:
        link = self.ad.link
        if link is None:
            return
        link.url = self.url(profile)
        link.ssl = self.ssl_context(profile)
        link.set_basic_auth(self.basic_auth(profile))

    def tls_changed(self) -> None:
        """Installed certificates changed: the next TLS connection uses them."""
        if self.ad.link is not None and self.ad.link.url.lower().startswith("wss://"):
            self.ad.link.ssl = self.ssl_context()

    # -- SecurityProfile -----------------------------------------------------------------------
    def change_profile(self, value: str) -> tuple[str, str]:
        """ChangeConfiguration SecurityProfile: (status, why). Only upward, only if usable."""
        if not value.isdigit() or int(value) not in (0, 1, 2, 3):
            return "Rejected", "SecurityProfile must be 0, 1, 2 or 3"
        new = int(value)
        if new <= self.profile:
            return "Rejected", f"SecurityProfile {new}: the profile only goes up (it is {self.profile})"
        if new in (1, 2) and not self.ad.keys.get("AuthorizationKey"):
            return "Rejected", f"SecurityProfile {new} needs an AuthorizationKey"
        if new >= 2 and not self.certs.roots(CSMS_ROOT) and not self.ad.cfg.ca_file:
            return "Rejected", f"SecurityProfile {new} needs a CentralSystemRootCertificate"
        if new == 3 and not self.certs.has_client_certificate():
            return "Rejected", "SecurityProfile 3 needs a ChargePointCertificate"
        self.trial = (self.profile, new)
        self.trial_failures = 0
        self.profile = new
        self.ad.keys.values["SecurityProfile"] = str(new)
        return "Accepted", ""

    def after_profile_change(self) -> Callable[[], Awaitable[None]] | None:
        if self.trial is None or self.ad.link is None:
            return None
        link, new = self.ad.link, self.trial[1]

        async def reconnect() -> None:
            self.configure(new)
            await link.reconnect(f"SecurityProfile changed to {new}")

        return reconnect

    def registered(self) -> None:
        """BootNotification Accepted: the first time in this run of the station (a Reset starts a
        new one), StartupOfTheDevice or ResetOrReboot, sent at once (not queued behind the
        transaction messages of the previous run; logged in the security log either way)."""
        if self.started:
            return
        self.started = True
        after_reset = self.ad.link is not None and self.ad.link.reconnecting
        kind = "ResetOrReboot" if after_reset else "StartupOfTheDevice"
        self.event(kind, queue=False)
        self.ad.spawn(self.ad.send_quietly("SecurityEventNotification", {"type": kind, "timestamp": iso(self.ad.scheduler.now())}))
        request_id = self.ad.store.get(NS, "signed_installed")
        if request_id is not None:  # a SignedUpdateFirmware installed before this restart
            self.ad.store.delete(NS, "signed_installed")
            self.event("FirmwareUpdated", f"firmware {self.ad.cfg.firmware_version}")
            self.ad.spawn(self.ad.send_quietly("SignedFirmwareStatusNotification", {"status": "Installed", "requestId": request_id}))

    # -- signed firmware (station/firmware.py's SignedFirmware) ----------------------------------
    async def notify_signed(self, status: str, request_id: int) -> bool:
        """SignedFirmwareStatusNotification; the last status is what ExtendedTriggerMessage reports."""
        final = status in ("DownloadFailed", "InvalidSignature", "InstallationFailed")
        self.signed_status = ("Idle", None) if final else (status, request_id)
        return await self.ad.send_quietly("SignedFirmwareStatusNotification",
                                          {"status": status, "requestId": request_id}) is not None

    def signature_ok(self, signed: dict, data: bytes) -> bool:
        """The signature over the downloaded file, by the signing certificate checked when the
        request came (the security event InvalidFirmwareSignature when it does not match)."""
        try:
            cert = parse_chain(signed["signingCertificate"])[0]
            ok = firmware_signature_ok(cert, signed["signature"], data)
        except (CertificateProblem, ValueError, KeyError, TypeError, IndexError):
            ok = False
        if not ok:
            self.ad.log.error("signed firmware: the signature does not match")
            self.event("InvalidFirmwareSignature", "the firmware signature does not match the signing certificate")
        return ok

    def signed_installed(self, request_id: int) -> None:
        """Called in the store transaction that installs: Installed is reported after the restart."""
        self.ad.store.put(NS, "signed_installed", request_id)

    def connected(self) -> None:
        self.failure_events.clear()
        if self.trial is not None:
            previous, new = self.trial
            self.trial = None
            self.ad.store.put(NS, "profile", new)
            self.ad.log.warning("security profile %d in use (was %d)", new, previous)
            self.event("ReconfigurationOfSecurityParameters", f"SecurityProfile {previous} -> {new}")

    def link_failed(self, e: BaseException) -> None:
        """A connection attempt failed: the security event it is (once per run of failures), and
        the fall-back of a new profile that does not connect."""
        kind = None
        if isinstance(e, ssl.SSLCertVerificationError):
            kind = "InvalidCentralSystemCertificate"
        elif isinstance(e, ssl.SSLError) and "VERSION" in str(getattr(e, "reason", "") or "").upper():
            kind = "InvalidTLSVersion"
        elif isinstance(e, ssl.SSLError) and "CIPHER" in str(getattr(e, "reason", "") or "").upper():
            kind = "InvalidTLSCipherSuite"
        elif isinstance(e, websockets.InvalidStatus) and e.response.status_code in (401, 403):
            kind = "FailedToAuthenticateAtCentralSystem"
        if kind is not None and kind not in self.failure_events:
            self.failure_events.add(kind)
            self.event(kind, logsafe.text(e, 200))
        if self.trial is not None:
            self.trial_failures += 1
            if self.trial_failures >= PROFILE_TRIAL_ATTEMPTS:
                previous, new = self.trial
                self.trial = None
                self.profile = previous
                self.ad.keys.values["SecurityProfile"] = str(previous)
                self.ad.log.error("security profile %d failed to connect %d times: back to profile %d",
                                  new, PROFILE_TRIAL_ATTEMPTS, previous)
                self.configure(previous)

    # -- security events -------------------------------------------------------------------------
    def event(self, kind: str, tech_info: str = "", queue: bool = True) -> None:
        """A security event: in the security log; a critical one also queued for the CSMS."""
        now = self.ad.scheduler.now()
        record = {"timestamp": iso(now), "type": kind, "techInfo": tech_info[:255]}
        self._append_log(record)
        self.ad.log.warning("security event %s%s", kind, f": {tech_info}" if tech_info else "")
        if kind in CRITICAL_EVENTS and queue:
            payload = {"type": kind, "timestamp": iso(now)}
            if tech_info:
                payload["techInfo"] = tech_info[:255]
            self.ad.outbox.add("SecurityEventNotification", payload)

    def _append_log(self, record: dict) -> None:
        try:
            if self.log_file is None:
                lines = self._log_lines
                lines.append(json.dumps(record))
            else:
                with self.log_file.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                lines = self.log_file.read_text().splitlines()
            if len(lines) > SECURITY_LOG_MAX:
                if self.log_file is None:
                    del lines[:-SECURITY_LOG_MAX // 2]
                else:
                    self.log_file.write_text("\n".join(lines[-SECURITY_LOG_MAX // 2:]) + "\n")
                dropped = len(lines) - SECURITY_LOG_MAX // 2
                self.event("SecurityLogWasCleared", f"security log full ({SECURITY_LOG_MAX} records): the oldest {dropped} dropped")
        except OSError as e:
            self.ad.log.error("security log not written: %s", e)

    def security_log(self, oldest: datetime | None, latest: datetime | None) -> str:
        out = []
        try:
            lines = self._log_lines if self.log_file is None else self.log_file.read_text().splitlines()
        except OSError:
            lines = []
        for line in lines:
            try:
                rec = json.loads(line)
                at = parse_iso(rec["timestamp"])
            except (ValueError, KeyError, TypeError):
                continue
            if (oldest is None or at >= oldest) and (latest is None or at <= latest):
                out.append(line)
        return "\n".join(out) + ("\n" if out else "")

    def diagnostics_log(self) -> str:
        ad = self.ad
        found, _ = ad.keys.report(None)  # never the secret keys
        state = {
            "station": ad.cfg.id, "firmwareVersion": ad.cfg.firmware_version, "time": iso(ad.scheduler.now()),
            "securityProfile": self.profile, "registration": ad.registration,
            "connectors": {str(c): conn.state.value if hasattr(conn.state, "value") else str(conn.state)
                           for c, conn in ad.station.connectors.items()},
            "configuration": {f["key"]: f["value"] for f in found},
        }
        return json.dumps(state, indent=2) + "\n"


# -- requests of the CSMS --------------------------------------------------------------------------
def _svc(ad: Ocpp16Adapter) -> SecurityService:
    return ad.security


@routes.on("ExtendedTriggerMessage")
async def extended_trigger_message(ad: Ocpp16Adapter, p: dict) -> Any:
    from station.ocpp16.handlers.remote_trigger import trigger_message, unknown_connector

    what = p["requestedMessage"]
    cid = p.get("connectorId")
    if unknown_connector(ad, cid):
        return {"status": "Rejected"}
    if what == "SignChargePointCertificate":
        return {"status": "Accepted"}, lambda: sign_certificate(ad)
    if what == "LogStatusNotification":
        status, request_id = _svc(ad).log_upload

        async def log_status() -> None:
            payload: dict = {"status": status}
            if request_id is not None and status == "Uploading":
                payload["requestId"] = request_id
            await ad.send_quietly("LogStatusNotification", payload)

        return {"status": "Accepted"}, log_status
    if what == "FirmwareStatusNotification":  # the security extension's: SignedFirmwareStatusNotification
        status, request_id = _svc(ad).signed_status

        async def firmware_status() -> None:
            payload: dict = {"status": status}
            if request_id is not None and status != "Idle":
                payload["requestId"] = request_id
            await ad.send_quietly("SignedFirmwareStatusNotification", payload)

        return {"status": "Accepted"}, firmware_status
    if what in ("BootNotification", "Heartbeat", "MeterValues", "StatusNotification"):
        plain = {"requestedMessage": what}
        if cid is not None:
            plain["connectorId"] = cid
        return await trigger_message(ad, plain)
    return {"status": "NotImplemented"}


async def sign_certificate(ad: Ocpp16Adapter) -> None:
    """A new key pair and CSR (O = CpoName, CN = the serial number, else the station id), sent
    in SignCertificate; the signed chain comes in CertificateSigned."""
    svc = _svc(ad)
    cn = ad.cfg.serial or ad.cfg.id
    csr = svc.certs.new_csr(cn, ad.keys.get("CpoName"))  # an EC key: quick enough inline
    try:
        resp = await ad.call("SignCertificate", {"csr": csr})
    except (TimeoutError, CallErrorReceived, NotConnected) as e:
        ad.log.warning("SignCertificate failed: %s", e)
        return
    if resp.get("status") != "Accepted":
        ad.log.warning("the CSMS rejected the certificate signing request")


@routes.on("CertificateSigned")
async def certificate_signed(ad: Ocpp16Adapter, p: dict) -> Any:
    svc = _svc(ad)
    try:
        certs = svc.certs.check_signed_chain(p["certificateChain"], ad.scheduler.now(),
                                             ad.keys.int("CertificateSignedMaxChainSize"))
    except CertificateProblem as e:
        ad.log.warning("CertificateSigned rejected: %s", e)
        svc.event("InvalidChargePointCertificate", str(e))
        return {"status": "Rejected"}
    leaf_issuer = certs[1] if len(certs) > 1 else issuer_among(certs[0], [r for k in ROOT_TYPES for r in svc.certs.roots(k)])
    if await revoked(ad, certs[0], leaf_issuer, "CertificateSigned", "InvalidChargePointCertificate"):
        return {"status": "Rejected"}
    try:
        svc.certs.accept_signed(certs)
    except OSError as e:
        ad.log.error("CertificateSigned: cannot store the certificate: %s", e)
        return {"status": "Rejected"}
    ad.log.info("new ChargePointCertificate installed")
    link = ad.link
    if svc.profile < 3 or link is None:
        return {"status": "Accepted"}

    async def reconnect() -> None:
        svc.configure(svc.profile)
        await link.reconnect("new ChargePointCertificate: connecting with it")

    return {"status": "Accepted"}, reconnect


@routes.on("InstallCertificate")
async def install_certificate(ad: Ocpp16Adapter, p: dict) -> dict:
    svc = _svc(ad)
    try:
        svc.certs.install_root(p["certificateType"], p["certificate"], ad.scheduler.now(),
                               ad.keys.int("CertificateStoreMaxLength"), ad.keys.bool("AdditionalRootCertificateCheck"))
    except CertificateProblem as e:
        ad.log.warning("InstallCertificate %s rejected: %s", logsafe.text(p["certificateType"], 40), e)
        return {"status": "Rejected"}
    except OSError as e:
        ad.log.error("InstallCertificate: cannot store the certificate: %s", e)
        return {"status": "Failed"}
    svc.tls_changed()
    return {"status": "Accepted"}


@routes.on("GetInstalledCertificateIds")
async def get_installed_certificate_ids(ad: Ocpp16Adapter, p: dict) -> dict:
    kind = p["certificateType"]
    found = _svc(ad).certs.installed(kind) if kind in ROOT_TYPES else []
    if not found:
        return {"status": "NotFound"}
    return {"status": "Accepted", "certificateHashData": [h.as_ocpp() for h in found]}


@routes.on("DeleteCertificate")
async def delete_certificate(ad: Ocpp16Adapter, p: dict) -> dict:
    svc = _svc(ad)
    hit = svc.certs.find(HashData.from_ocpp(p["certificateHashData"]))
    if hit is None:
        return {"status": "NotFound"}
    kind, path = hit
    if kind == CSMS_ROOT and svc.profile >= 2 and len(svc.certs.roots(CSMS_ROOT)) == 1 and not ad.cfg.ca_file:
        ad.log.warning("DeleteCertificate: the only CentralSystemRootCertificate is in use (profile %d): kept", svc.profile)
        return {"status": "Failed"}
    try:
        path.unlink()
    except OSError as e:
        ad.log.error("DeleteCertificate failed: %s", e)
        return {"status": "Failed"}
    svc.tls_changed()
    return {"status": "Accepted"}


@routes.on("GetLog")
async def get_log(ad: Ocpp16Adapter, p: dict) -> Any:
    """GetLog: SecurityLog (the security log's records between the timestamps) or DiagnosticsLog
    (the firmware service's diagnostics bundle: log lines and state, else a state summary),
    uploaded to the remoteLocation directory (HTTP(S) PUT, POST fallback, or FTP:
    station/transfer.py) with retries; LogStatusNotification Uploading, then Uploaded or
    UploadFailure. A GetLog while an upload runs takes over (AcceptedCanceled)."""
    svc = _svc(ad)
    loc = p["log"]
    url = loc["remoteLocation"]
    try:
        parse_location(url)
        oldest = parse_iso(loc["oldestTimestamp"]) if loc.get("oldestTimestamp") else None
        latest = parse_iso(loc["latestTimestamp"]) if loc.get("latestTimestamp") else None
    except (TransferError, ValueError, TypeError) as e:
        ad.log.warning("GetLog refused: %s", logsafe.text(e, 200))
        return {"status": "Rejected"}
    request_id = p["requestId"]
    kind = p["logType"]
    stamp = ad.scheduler.now().strftime("%Y%m%dT%H%M%SZ")
    firmware = getattr(ad, "firmware", None)
    if kind == "SecurityLog":
        filename, body = f"{ad.cfg.id}-SecurityLog-{stamp}.log", svc.security_log(oldest, latest).encode()
    elif firmware is not None and hasattr(firmware, "bundle"):
        filename, body = f"{ad.cfg.id}-DiagnosticsLog-{stamp}.tar.gz", firmware.bundle(oldest, latest)
    else:
        filename, body = f"{ad.cfg.id}-DiagnosticsLog-{stamp}.log", svc.diagnostics_log().encode()
    retries = max(0, min(int(p.get("retries") or 0), 10))
    interval = max(0, min(int(p.get("retryInterval") or 0), 3600))
    canceled = svc.log_upload[0] == "Uploading"
    svc.log_upload = ("Uploading", request_id)

    async def upload_log() -> None:
        await ad.send_quietly("LogStatusNotification", {"status": "Uploading", "requestId": request_id})
        status = "UploadFailure"
        for attempt in range(retries + 1):
            if svc.log_upload[1] != request_id:
                return  # a newer GetLog took over
            try:
                await upload(url, filename, body, ssl_context=client_context(ad.cfg.ca_file), timeout=120)
                status = "Uploaded"
                break
            except TransferError as e:
                ad.log.warning("GetLog upload failed (attempt %d of %d): %s", attempt + 1, retries + 1, e)
            if attempt < retries:
                await asyncio.sleep(interval)
        if svc.log_upload[1] != request_id:
            return
        svc.log_upload = ("Idle", None)
        await ad.send_quietly("LogStatusNotification", {"status": status, "requestId": request_id})

    answer = {"status": "AcceptedCanceled" if canceled else "Accepted", "filename": filename}
    return answer, upload_log


# -- revocation (station/revocation.py) -------------------------------------------------------------
async def revoked(ad: Ocpp16Adapter, cert: Any, issuer: Any, request: str, event: str) -> bool:
    """The certificate's CRL (if it names one) lists it: logged and the security ``event`` raised.
    A CRL that cannot be fetched or checked is a soft fail: True is not returned, but it is logged
    and kept in the security log (RevocationCheckFailed, not sent to the CSMS)."""
    result = await check_revocation(cert, issuer, ad.scheduler.now(), ssl_context=client_context(ad.cfg.ca_file))
    if result.status == "revoked":
        ad.log.warning("%s: the certificate is revoked: %s", request, result.reason)
        _svc(ad).event(event, f"revoked certificate: {result.reason}")
        return True
    if result.status == "unknown":
        ad.log.warning("%s: revocation not checked (accepted): %s", request, logsafe.text(result.reason, 200))
        _svc(ad).event("RevocationCheckFailed", f"{request}: {result.reason}")
    return False


# -- SignedUpdateFirmware ---------------------------------------------------------------------------
@routes.on("SignedUpdateFirmware")
async def signed_update_firmware(ad: Ocpp16Adapter, p: dict) -> Any:
    """The signing certificate is checked before the answer (InvalidCertificate, and the security
    event InvalidFirmwareSigningCertificate), then its CRL if it names one (``revoked``:
    RevokedCertificate and the same event; a CRL that cannot be fetched is a soft fail);
    DownloadScheduled when retrieveDateTime is ahead. The
    job itself is the firmware service's (station/firmware.py: kept in the store across a restart,
    retried, installed only once no transaction runs): Downloading, Downloaded, the signature over
    the file checked (InvalidSignature and the event InvalidFirmwareSignature), SignatureVerified,
    Installing, the package checked (InstallationFailed), InstallRebooting and the restart into the
    new version, after which Installed and the event FirmwareUpdated are reported. A job not yet
    done is replaced (AcceptedCanceled)."""
    svc = _svc(ad)
    fw = p["firmware"]
    request_id = p["requestId"]
    try:
        cert = check_signing_certificate(svc.certs, fw["signingCertificate"], ad.scheduler.now())
    except CertificateProblem as e:
        ad.log.warning("SignedUpdateFirmware: %s", e)
        svc.event("InvalidFirmwareSigningCertificate", str(e))
        return {"status": "InvalidCertificate"}
    issuer = issuer_among(cert, svc.certs.roots(MANUFACTURER_ROOT))
    if await revoked(ad, cert, issuer, "SignedUpdateFirmware", "InvalidFirmwareSigningCertificate"):
        return {"status": "RevokedCertificate"}
    try:
        parse_location(fw["location"])
        retrieve = parse_iso(fw["retrieveDateTime"])
    except (TransferError, ValueError, TypeError) as e:
        ad.log.warning("SignedUpdateFirmware refused: %s", logsafe.text(e, 200))
        return {"status": "Rejected"}
    retries = max(0, min(int(p.get("retries") or 0), 10))
    interval = max(0, min(int(p.get("retryInterval") or 0), 3600))
    firmware = ad.firmware
    running = firmware.pending()
    signed = {"requestId": request_id, "signingCertificate": fw["signingCertificate"], "signature": fw["signature"]}

    async def begin() -> None:
        if retrieve > ad.scheduler.now():
            await svc.notify_signed("DownloadScheduled", request_id)
        firmware.update_firmware(fw["location"], retrieve, retries, interval, signed=signed)

    return {"status": "AcceptedCanceled" if running else "Accepted"}, begin

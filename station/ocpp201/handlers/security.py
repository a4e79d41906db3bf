"""OCPP 2.0.1 functional blocks A (security) and M (certificate management), on the shared
security engine (station/security_service.py: certificate store, TLS contexts, security log and
events, revocation).

- A02/A03 certificate renewal: TriggerMessage SignChargingStationCertificate (``ad.triggers``), or
  the station itself when its certificate expires within 30 days (checked at each start and once a
  day), makes a new key pair on the station (EC P-256, mode 0600, never logged) and sends its CSR in
  SignCertificateRequest (CN the serial number, else the station id; O
  ``SecurityCtrlr.OrganizationName``). CertificateSigned is checked (PEM, validity, each
  certificate signed by the next and by an installed root that names the top one's issuer, the
  leaf carries the pending key, ``MaxCertificateChainSize``, its CRL): Rejected with the event
  InvalidChargingStationCertificate, or Accepted and used from the next connection (with
  security profile 3 the station reconnects with it once the answer is out). TriggerMessage
  SignV2GCertificate and SignCombinedCertificate do the same for the V2G certificate (ISO 15118,
  kept in ``<state>/security/v2g``) and for one certificate serving both (a CSR without
  certificateType; its CertificateSigned without one stores it for both). No
  CertificateSigned within ``CertSigningWaitMinimum`` seconds: a new CSR, the wait doubled each
  time, at most ``CertSigningRepeatTimes`` more (A02.FR.17-19). A SignCertificate the CSMS
  rejects ends the renewal.
- M01-M05: InstallCertificate (CSMSRootCertificate, ManufacturerRootCertificate,
  V2GRootCertificate, MORootCertificate: one CA certificate, valid now), GetInstalledCertificateIds
  (every type, or those asked), DeleteCertificate (the charging station certificate, and the only
  CSMS root while TLS depends on it, cannot be deleted: Failed). ``SecurityCtrlr.CertificateEntries``
  counts the installed certificates.
- A04 SecurityEventNotification: every event is in the security log; the critical ones (Part 2
  appendix) are queued in the outbox. StartupOfTheDevice / ResetOrReboot after the first
  BootNotification Accepted of each start; failed connections (InvalidCsmsCertificate,
  InvalidTLSVersion, FailedToAuthenticateAtCsms) once per run of failures.

Security profiles 1-3, BasicAuthPassword (A01) and the profile upgrade (A05) belong to the
network connection profiles: handlers/network.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from station.link import CallErrorReceived, NotConnected
from station.ocpp201.handlers import Routes
from station.revocation import issuer_among
from station.security import (
    CP,
    CSMS_ROOT,
    MANUFACTURER_ROOT,
    MO_ROOT,
    ROOT_TYPES,
    V2G,
    V2G_ROOT,
    CertificateProblem,
    HashData,
    hash_data,
)
from station.security_service import EventNames, SecurityEngine

if TYPE_CHECKING:
    from station.ocpp201.adapter import Ocpp201Adapter

routes = Routes("Security")

# the certificate types of 2.0.1 and the store's names for them
STORE_TYPE = {"CSMSRootCertificate": CSMS_ROOT, "ManufacturerRootCertificate": MANUFACTURER_ROOT,
              "V2GRootCertificate": V2G_ROOT, "MORootCertificate": MO_ROOT}
WIRE_TYPE = {v: k for k, v in STORE_TYPE.items()}
CERTIFICATE_STORE_MAX = 50  # installed root certificates at most
RENEW_BEFORE_S = 30 * 86_400  # A03: the station asks for a new certificate this long before its own expires
EXPIRY_CHECK_S = 86_400  # and looks once a day
# Part 2 appendix 1 "Security events": the critical ones are sent to the CSMS
CRITICAL_EVENTS = frozenset({
    "FirmwareUpdated", "FailedToAuthenticateAtCsms", "CsmsFailedToAuthenticate", "SettingSystemTime",
    "StartupOfTheDevice", "ResetOrReboot", "SecurityLogWasCleared", "ReconfigurationOfSecurityParameters",
    "MemoryExhaustion", "TamperDetectionActivated", "InvalidFirmwareSignature", "InvalidFirmwareSigningCertificate",
    "InvalidCsmsCertificate", "InvalidChargingStationCertificate", "InvalidTLSVersion", "InvalidTLSCipherSuite",
    "MaintenanceLoginAccepted", "MaintenanceLoginFailed", "AttemptedReplayAttacks",
})
CS_CERT, V2G_CERT = "ChargingStationCertificate", "V2GCertificate"  # CertificateSigningUseEnumType
NAMES = EventNames(csms_certificate="InvalidCsmsCertificate", authentication="FailedToAuthenticateAtCsms")


class Security201(SecurityEngine):
    """The shared engine with the 2.0.1 vocabulary, plus the certificate renewal (A02/A03)."""

    def __init__(self, ad: Ocpp201Adapter) -> None:
        super().__init__(ad, NAMES, CRITICAL_EVENTS)
        self.ad: Ocpp201Adapter = ad
        self.started = False  # StartupOfTheDevice / ResetOrReboot raised in this run
        self._renewal: Any = None  # the timer of the next SignCertificateRequest
        self._renewal_left = 0  # SignCertificateRequests still allowed in this renewal
        self._renewal_wait = 0.0
        self._renewal_kind: str | None = CS_CERT  # what the pending CSR is for (None: combined)
        self._expiry_check: Any = None
        ad.triggers["SignChargingStationCertificate"] = lambda cids: ({"status": "Accepted"}, self.renew)
        ad.triggers["SignV2GCertificate"] = lambda cids: ({"status": "Accepted"}, lambda: self.renew(V2G_CERT))
        ad.triggers["SignCombinedCertificate"] = lambda cids: ({"status": "Accepted"}, lambda: self.renew(None))
        ad.dm.provide("SecurityCtrlr", "CertificateEntries", self.entries)

    def entries(self) -> int:
        return self.certs.count() + sum(1 for use in (CP, V2G) if self.certs.has_client_certificate(use))

    def stop(self) -> None:
        self._stop_renewal()
        if self._expiry_check is not None:
            self._expiry_check.cancel()
            self._expiry_check = None

    def registered(self) -> None:
        """BootNotification Accepted, the first time in this run: StartupOfTheDevice, or
        ResetOrReboot when the station started again after a reset (queued like every critical event)."""
        if self.started:
            return
        self.started = True
        self.event("StartupOfTheDevice" if self.ad.boot_reason == "PowerUp" else "ResetOrReboot",
                   f"boot reason {self.ad.boot_reason}")
        self.check_expiry()

    def check_expiry(self) -> None:
        """A03: the charging station certificate expires within RENEW_BEFORE_S: the station starts
        the renewal itself (unless one is waiting for its certificate). Checked once a day."""
        self._expiry_check = self.ad.scheduler.call_later(EXPIRY_CHECK_S, self.check_expiry)
        cert = self.certs.client_certificate()
        if cert is None or self._renewal is not None or not self.ad.online:
            return
        left = (cert.not_valid_after_utc - self.ad.scheduler.now()).total_seconds()
        if left < RENEW_BEFORE_S:
            self.ad.log.warning("the charging station certificate expires in %.0f days: asking for a new one", left / 86_400)
            self.ad.spawn(self.renew())

    def certificates_changed(self) -> None:
        network = self.ad.services.get("network")
        if network is not None:
            network.certificates_changed()

    def profile(self) -> int:
        network = self.ad.services.get("network")
        return int(network.current()["securityProfile"]) if network is not None else self.ad.cfg.security_profile

    # -- A02/A03 renewal -------------------------------------------------------------------------
    async def renew(self, kind: str | None = "ChargingStationCertificate") -> None:
        """A new CSR for ``kind`` (ChargingStationCertificate, V2GCertificate; None: one
        certificate for both, the combined one), with its repeats."""
        self._stop_renewal()
        self._renewal_kind = kind
        self._renewal_left = max(0, self.ad.integer("SecurityCtrlr", "CertSigningRepeatTimes"))
        self._renewal_wait = float(max(0, self.ad.integer("SecurityCtrlr", "CertSigningWaitMinimum")))
        await self._sign_request()

    async def _sign_request(self) -> None:
        self._renewal = None
        cn = self.ad.cfg.serial or self.ad.cfg.id
        kind = self._renewal_kind
        csr = self.certs.new_csr(cn, self.ad.text("SecurityCtrlr", "OrganizationName"), V2G if kind == V2G_CERT else CP)
        request = {"csr": csr} if kind is None else {"csr": csr, "certificateType": kind}
        try:
            resp = await self.ad.call("SignCertificate", request)
        except (TimeoutError, CallErrorReceived, NotConnected) as e:
            self.ad.log.warning("SignCertificateRequest failed: %s", e)
            resp = None
        if resp is not None and resp.get("status") != "Accepted":
            self.ad.log.warning("the CSMS rejected the certificate signing request: renewal ended")
            return
        self._wait_for_certificate()

    def _wait_for_certificate(self) -> None:
        """No CertificateSigned within the wait: send the CSR again (A02.FR.17-19)."""
        if self._renewal_left <= 0 or self._renewal_wait <= 0:
            return
        self._renewal_left -= 1
        wait, self._renewal_wait = self._renewal_wait, self._renewal_wait * 2
        self._renewal = self.ad.scheduler.call_later(wait, lambda: self.ad.spawn(self._sign_request()))

    def _stop_renewal(self) -> None:
        if self._renewal is not None:
            self._renewal.cancel()
            self._renewal = None


def service(ad: Ocpp201Adapter) -> Security201:
    return Security201(ad)


def _svc(ad: Ocpp201Adapter) -> Security201:
    return ad.services["security"]


# -- requests of the CSMS --------------------------------------------------------------------------
@routes.on("CertificateSigned")
async def certificate_signed(ad: Ocpp201Adapter, p: dict) -> Any:
    svc = _svc(ad)
    kind = p.get("certificateType")  # absent: for both uses when a combined CSR is pending
    use = V2G if kind == V2G_CERT else CP
    also = (V2G,) if kind is None and svc._renewal_kind is None else ()
    try:
        certs = svc.certs.check_signed_chain(p["certificateChain"], ad.scheduler.now(),
                                             ad.integer("SecurityCtrlr", "MaxCertificateChainSize"), use)
    except CertificateProblem as e:
        ad.log.warning("CertificateSigned rejected: %s", e)
        svc.event("InvalidChargingStationCertificate", str(e))
        return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidCertificate", "additionalInfo": str(e)[:512]}}
    if await svc.chain_revoked(certs, "CertificateSigned", "InvalidChargingStationCertificate"):
        return {"status": "Rejected", "statusInfo": {"reasonCode": "CertificateRevoked"}}
    try:
        svc.certs.accept_signed(certs, use, also)
    except OSError as e:
        ad.log.error("CertificateSigned: cannot store the certificate: %s", e)
        return {"status": "Rejected", "statusInfo": {"reasonCode": "InternalError"}}
    svc._stop_renewal()
    ad.log.info("new %s installed", "V2G certificate" if use == V2G else "charging station certificate")
    network = ad.services.get("network")
    link = ad.link
    if use == V2G or svc.profile() < 3 or link is None or network is None:
        return {"status": "Accepted"}

    async def reconnect() -> None:
        network.configure()
        network.register_again = True
        await link.reconnect("new charging station certificate: connecting with it")

    return {"status": "Accepted"}, reconnect


@routes.on("InstallCertificate")
async def install_certificate(ad: Ocpp201Adapter, p: dict) -> dict:
    svc = _svc(ad)
    kind = STORE_TYPE[p["certificateType"]]
    try:
        svc.certs.install_root(kind, p["certificate"], ad.scheduler.now(), CERTIFICATE_STORE_MAX,
                               ad.flag("SecurityCtrlr", "AdditionalRootCertificateCheck"))
    except CertificateProblem as e:
        ad.log.warning("InstallCertificate %s rejected: %s", p["certificateType"], e)
        return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidCertificate", "additionalInfo": str(e)[:512]}}
    except OSError as e:
        ad.log.error("InstallCertificate: cannot store the certificate: %s", e)
        return {"status": "Failed"}
    svc.certificates_changed()
    return {"status": "Accepted"}


def _chain_hashes(svc: Security201, use: str, algorithm: str = "SHA256") -> list[HashData]:
    """The hash data of the station's own chain of ``use``, leaf first (each certificate's issuer:
    the next in the chain, for the top one an installed root)."""
    chain = svc.certs.client_chain(use)
    roots = [r for k in ROOT_TYPES for r in svc.certs.roots(k)]
    return [hash_data(c, chain[i + 1] if i + 1 < len(chain) else issuer_among(c, roots), algorithm)
            for i, c in enumerate(chain)]


@routes.on("GetInstalledCertificateIds")
async def get_installed_certificate_ids(ad: Ocpp201Adapter, p: dict) -> dict:
    svc = _svc(ad)
    wanted = p.get("certificateType") or [*STORE_TYPE, "V2GCertificateChain"]
    found = []
    for wire in wanted:
        kind = STORE_TYPE.get(wire)
        if kind is None:  # V2GCertificateChain: the V2G certificate and its sub-CAs
            chain = _chain_hashes(svc, V2G)
            if chain:
                entry: dict = {"certificateType": wire, "certificateHashData": chain[0].as_ocpp()}
                if len(chain) > 1:
                    entry["childCertificateHashData"] = [h.as_ocpp() for h in chain[1:]]
                found.append(entry)
            continue
        found += [{"certificateType": wire, "certificateHashData": h.as_ocpp()} for h in svc.certs.installed(kind)]
    if not found:
        return {"status": "NotFound"}
    return {"status": "Accepted", "certificateHashDataChain": found}


@routes.on("DeleteCertificate")
async def delete_certificate(ad: Ocpp201Adapter, p: dict) -> dict:
    svc = _svc(ad)
    wanted = HashData.from_ocpp(p["certificateHashData"])
    own = [h for use in (CP, V2G) for h in _chain_hashes(svc, use, wanted.hash_algorithm)[:1]]
    if any((h.issuer_name_hash, h.serial_number) == (wanted.issuer_name_hash, wanted.serial_number) for h in own):
        ad.log.warning("DeleteCertificate: the station's own certificate is not deleted")
        return {"status": "Failed", "statusInfo": {"reasonCode": "NotAllowed",
                                                   "additionalInfo": "the charging station certificate cannot be deleted"}}
    hit = svc.certs.find(wanted)
    if hit is None:
        return {"status": "NotFound"}
    kind, path = hit
    if (kind == CSMS_ROOT and svc.profile() >= 2 and len(svc.certs.roots(CSMS_ROOT)) == 1
            and not ad.cfg.ca_file):
        ad.log.warning("DeleteCertificate: the only CSMSRootCertificate is in use (profile %d): kept", svc.profile())
        return {"status": "Failed", "statusInfo": {"reasonCode": "NotAllowed",
                                                   "additionalInfo": "the only CSMS root certificate is in use"}}
    try:
        path.unlink()
    except OSError as e:
        ad.log.error("DeleteCertificate failed: %s", e)
        return {"status": "Failed"}
    svc.certificates_changed()
    return {"status": "Accepted"}

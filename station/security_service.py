"""The version-independent security engine both OCPP adapters use (1.6 security whitepaper,
2.0.1 functional blocks A and M).

What is the same in 1.6 and 2.0.1 lives here, once:

- the certificate store (:class:`station.security.CertificateStore`, ``<state>/security``)
- the TLS context of a connection for a security profile: the installed CSMS roots and
  ``station.ca_file``, and for profile 3 the station's own certificate (``ssl_context``)
- the security log (``<state>/security/security-log.jsonl``, bounded: the oldest half goes when
  it is full, itself a ``SecurityLogWasCleared`` event) and security events: every event is
  logged, a critical one is also queued in the outbox (stored, in order, sent when online)
- what a failed connection attempt means as a security event (an untrusted CSMS certificate, a
  TLS version or cipher refused, HTTP 401/403), raised once per run of failures
- the revocation check of a certificate the CSMS sends (its CRL, soft fail)

What differs is vocabulary, passed in by the adapter: the event names (1.6
``InvalidCentralSystemCertificate``, 2.0.1 ``InvalidCsmsCertificate``, ...) and which events are
critical. Private keys never reach a log line or an exception text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import websockets

from station import logsafe
from station.core.clock import iso
from station.revocation import check_revocation, issuer_among
from station.security import ROOT_TYPES, CertificateStore, security_log_lines, security_log_text
from station.security import client_context as tls_client_context
from station.transfer import client_context

NS = "security"
SECURITY_LOG_MAX = 2000  # lines kept in the security log (the oldest half goes when it is full)


@dataclass(frozen=True)
class EventNames:
    """The names one OCPP version gives the events this engine raises itself."""

    csms_certificate: str  # the CSMS's TLS certificate is not trusted
    authentication: str  # the CSMS refused our credentials (HTTP 401/403)
    tls_version: str = "InvalidTLSVersion"
    tls_cipher: str = "InvalidTLSCipherSuite"
    log_cleared: str = "SecurityLogWasCleared"
    revocation_failed: str = "RevocationCheckFailed"


class Host(Protocol):
    """What the engine needs of its adapter."""

    cfg: Any
    store: Any
    log: logging.Logger
    outbox: Any
    scheduler: Any


class SecurityEngine:
    """Certificate store, TLS contexts, security log and events of one station."""

    def __init__(self, ad: Host, names: EventNames, critical: frozenset[str]) -> None:
        self.ad = ad
        self.names = names
        self.critical = critical
        cfg = ad.cfg
        self.log_file: Path | None = None
        self._log_lines: list[str] = []  # the security log of a station whose state is in memory
        if cfg.state_dir == ":memory:":
            # a temporary folder only if a certificate is ever looked at (a fleet of thousands makes none)
            self.certs = CertificateStore(lambda: Path(tempfile.mkdtemp(prefix="station-security-")))
        else:
            folder = cfg.state_path() / NS
            self.certs = CertificateStore(folder)
            self.log_file = folder / "security-log.jsonl"
        self.failure_events: set[str] = set()  # events of the current run of failed connections (raised once)

    @property
    def log_max(self) -> int:
        return SECURITY_LOG_MAX

    # -- TLS -------------------------------------------------------------------------------------
    def ssl_context(self, url: str, profile: int) -> ssl.SSLContext | None:
        """wss:// (profiles 2 and 3): trust the installed CSMS roots and ``station.ca_file``;
        profile 3 also presents the station's certificate. None for ws://, or when the context
        cannot be built (the link then names the unreadable CA file)."""
        if not url.lower().startswith("wss://"):
            return None
        if profile == 3 and not self.certs.has_client_certificate():
            self.ad.log.error("security profile 3 needs a charging station certificate: none is installed")
        try:
            return tls_client_context(self.certs, self.ad.cfg.ca_file, client_certificate=profile == 3)
        except (OSError, ssl.SSLError):
            return None

    def csms_root_available(self) -> bool:
        """A CSMS root to check the CSMS's certificate against: installed, or ``station.ca_file``."""
        from station.security import CSMS_ROOT  # noqa: PLC0415

        return bool(self.certs.roots(CSMS_ROOT)) or bool(self.ad.cfg.ca_file)

    # -- connection attempts ------------------------------------------------------------------------
    def failure_event(self, e: BaseException) -> str | None:
        """The security event a failed connection attempt is, if any."""
        n = self.names
        reason = str(getattr(e, "reason", "") or "").upper()
        if isinstance(e, ssl.SSLCertVerificationError):
            return n.csms_certificate
        if isinstance(e, ssl.SSLError) and ("VERSION" in reason or "PROTOCOL" in reason):
            return n.tls_version
        if isinstance(e, ssl.SSLError) and "CIPHER" in reason:
            return n.tls_cipher
        if isinstance(e, websockets.InvalidStatus) and e.response.status_code in (401, 403):
            return n.authentication
        return None

    def attempt_failed(self, e: BaseException) -> None:
        """A connection attempt failed: its security event, once per run of failures."""
        kind = self.failure_event(e)
        if kind is not None and kind not in self.failure_events:
            self.failure_events.add(kind)
            self.event(kind, logsafe.text(e, 200))

    def connection_opened(self) -> None:
        self.failure_events.clear()

    # -- security events ----------------------------------------------------------------------------
    def event(self, kind: str, tech_info: str = "", queue: bool = True) -> None:
        """A security event: in the security log; a critical one also queued for the CSMS."""
        now = self.ad.scheduler.now()
        record = {"timestamp": iso(now), "type": kind, "techInfo": tech_info[:255]}
        self._append_log(record)
        self.ad.log.warning("security event %s%s", kind, f": {tech_info}" if tech_info else "")
        if kind in self.critical and queue:
            self.ad.outbox.add("SecurityEventNotification", self.notification(kind, tech_info))

    def notification(self, kind: str, tech_info: str = "") -> dict:
        """The SecurityEventNotification payload (the same shape in 1.6 and 2.0.1)."""
        payload = {"type": kind, "timestamp": iso(self.ad.scheduler.now())}
        if tech_info:
            payload["techInfo"] = tech_info[:255]
        return payload

    def _append_log(self, record: dict) -> None:
        limit = self.log_max
        try:
            if self.log_file is None:
                lines = self._log_lines
                lines.append(json.dumps(record))
            else:
                with self.log_file.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                lines = self.log_file.read_text().splitlines()
            if len(lines) > limit:
                if self.log_file is None:
                    del lines[:-limit // 2]
                else:
                    self.log_file.write_text("\n".join(lines[-limit // 2:]) + "\n")
                dropped = len(lines) - limit // 2 if self.log_file is not None else limit // 2 + 1
                self.event(self.names.log_cleared, f"security log full ({limit} records): the oldest {dropped} dropped")
        except OSError as e:
            self.ad.log.error("security log not written: %s", e)

    def security_log(self, oldest: datetime | None, latest: datetime | None) -> str:
        """The security log's records between the timestamps (either may be None), one JSON a line."""
        if self.log_file is None:
            return security_log_lines(self._log_lines, oldest, latest)
        return security_log_text(self.log_file, oldest, latest)

    # -- revocation ---------------------------------------------------------------------------------
    async def chain_revoked(self, certs: list[Any], request: str, event: str) -> bool:
        """Every certificate of a chain against its issuer's CRL (the next one in the chain; for the
        top one an installed root), the downloads side by side (each bounded by the CRL timeout)."""
        roots = [r for k in ROOT_TYPES for r in self.certs.roots(k)]
        issuers = [certs[i + 1] if i + 1 < len(certs) else issuer_among(c, roots) for i, c in enumerate(certs)]
        checks = await asyncio.gather(*(self.revoked(c, issuer, request, event) for c, issuer in zip(certs, issuers, strict=True)))
        return any(checks)

    async def revoked(self, cert: Any, issuer: Any, request: str, event: str) -> bool:
        """The certificate's CRL (if it names one) lists it: logged and the security ``event``
        raised. A CRL that cannot be fetched or checked is a soft fail: not revoked, but logged and
        kept in the security log (not sent to the CSMS)."""
        result = await check_revocation(cert, issuer, self.ad.scheduler.now(), ssl_context=client_context(self.ad.cfg.ca_file))
        if result.status == "revoked":
            self.ad.log.warning("%s: the certificate is revoked: %s", request, result.reason)
            self.event(event, f"revoked certificate: {result.reason}")
            return True
        if result.status == "unknown":
            self.ad.log.warning("%s: revocation not checked (accepted): %s", request, logsafe.text(result.reason, 200))
            self.event(self.names.revocation_failed, f"{request}: {result.reason}")
        return False


__all__ = ["NS", "SECURITY_LOG_MAX", "EventNames", "SecurityEngine"]

"""OCPP 2.0.1 block N (diagnostics): N01 GetLog with LogStatusNotification, and N09 / N10
CustomerInformation with NotifyCustomerInformation.

GetLog uploads, on the shared upload engine (station/firmware.py ``LogUploads``, as 1.6 does):

- SecurityLog: the security log's records between oldestTimestamp and latestTimestamp (the
  security block's log when it has one, else the file the security engines keep,
  ``<state>/security/security-log.jsonl``);
- DiagnosticsLog: the firmware engine's bundle (the recent log lines of that window and a state
  summary without secrets) as a tar.gz.

The file goes to the remoteLocation directory (HTTP(S) PUT, POST fallback, or FTP) with
``retries`` more attempts ``retryInterval`` apart; LogStatusNotification Uploading, then Uploaded
or what the server's last refusal means (``upload_failure``: PermissionDenied,
NotSupportedOperation, BadMessage; else UploadFailure), each with the requestId. A location this station cannot use is Rejected. A GetLog while an upload runs
cancels it: AcceptedCanceled, and the abandoned request is reported AcceptedCanceled before the new
one's Uploading. TriggerMessage LogStatusNotification reports Uploading with its requestId, else Idle.

CustomerInformation: Invalid without customerIdentifier, idToken or customerCertificate; Rejected
when neither report nor clear is asked. Accepted, the station reports (``report``) what it holds
about the customer, then (``clear``) removes it, and sends the report as NotifyCustomerInformation
parts of at most 512 characters (seqNo from 0, tbc, one generatedAt), one part saying so when it
holds nothing (also when only clearing). What a station holds about an idToken: its authorization
cache entry (cleared), its local authorization list entry (reported, not cleared: the list is the
CSMS's, changed with SendLocalList), the transactions running with it, and the charging sessions
the store keeps for it (the ended ones cleared, except those a queued message still needs). The station keeps no
customer identifiers and no customer (ISO 15118) certificates.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from station.core.clock import parse_iso
from station.firmware import LogUploads
from station.logsafe import text as safe
from station.ocpp201.handlers import Routes
from station.security import security_log_text
from station.transfer import TransferError, client_context, parse_location

if TYPE_CHECKING:
    from datetime import datetime

    from station.ocpp201.adapter import Ocpp201Adapter

routes = Routes("Diagnostics")

MAX_RETRIES = 10
MAX_RETRY_INTERVAL_S = 3600
PART_CHARS = 512  # NotifyCustomerInformationRequest.data maxLength
MAX_REPORT_CHARS = 64 * PART_CHARS
NO_DATA = "No information about this customer is held by the charging station."


# the server's answer in a TransferError text (station/transfer.py: "HTTP 403", "STOR x -> 530 ...")
_FAILURES = (
    (re.compile(r"HTTP (401|403)\b|(-> |\(|: )(530|532)\b"), "PermissionDenied"),
    (re.compile(r"HTTP (405|501)\b|(-> |\(|: )(502|504)\b"), "NotSupportedOperation"),
    (re.compile(r"HTTP 400\b|(-> |\(|: )(500|501)\b"), "BadMessage"),
)


def upload_failure(e: TransferError) -> str:
    """The LogStatusNotification status of a failed upload attempt: PermissionDenied (HTTP 401/403,
    FTP 530/532), NotSupportedOperation (HTTP 405/501 to PUT and POST, FTP 502/504), BadMessage
    (HTTP 400, FTP 500/501), else UploadFailure."""
    text = str(e)
    return next((status for pattern, status in _FAILURES if pattern.search(text)), "UploadFailure")


class Diagnostics201:
    """GetLog uploads of one adapter and the LogStatusNotification trigger."""

    def __init__(self, ad: Ocpp201Adapter) -> None:
        self.ad = ad

        async def notify(status: str, request_id: int) -> Any:
            return await ad.send_quietly("LogStatusNotification", {"status": status, "requestId": request_id})

        self.uploads = LogUploads(scheduler=ad.scheduler, log=ad.log, spawn=ad.spawn, notify=notify,
                                  ssl_context=lambda: client_context(ad.cfg.ca_file), classify=upload_failure,
                                  announce_cancel=True)
        ad.triggers["LogStatusNotification"] = self.trigger

    def stop(self) -> None:
        self.uploads.stop()

    def trigger(self, cids: list[int]) -> Any:
        status, request_id = self.uploads.state

        async def report() -> None:
            payload: dict[str, Any] = {"status": status}
            if status == "Uploading" and request_id is not None:
                payload["requestId"] = request_id
            await self.ad.send_quietly("LogStatusNotification", payload)

        return {"status": "Accepted"}, report

    # -- the logs --------------------------------------------------------------------------------
    def security_log(self, oldest: datetime | None, latest: datetime | None) -> bytes:
        svc = self.ad.services.get("security")
        own = getattr(svc, "security_log", None)
        if callable(own):
            return str(own(oldest, latest)).encode()
        return security_log_text(self.ad.cfg.state_path() / "security" / "security-log.jsonl", oldest, latest).encode()

    def diagnostics_log(self, oldest: datetime | None, latest: datetime | None) -> tuple[str, bytes]:
        firmware = self.ad.services.get("firmware")
        engine = getattr(firmware, "engine", None)
        if engine is not None:
            return "tar.gz", engine.bundle(oldest, latest)
        state = {"station": self.ad.cfg.id, "ocpp": "2.0.1", "registration": self.ad.registration,
                 "time": self.ad.now_iso()}
        return "json", json.dumps(state, indent=2).encode()


def service(ad: Ocpp201Adapter) -> Diagnostics201:
    return Diagnostics201(ad)


def _svc(ad: Ocpp201Adapter) -> Diagnostics201:
    return ad.services["diagnostics"]


@routes.on("GetLog")
async def get_log(ad: Ocpp201Adapter, p: dict) -> Any:
    svc = _svc(ad)
    loc = p["log"]
    url = loc["remoteLocation"]
    request_id = p["requestId"]
    try:
        parse_location(url)
        oldest = parse_iso(loc["oldestTimestamp"]) if loc.get("oldestTimestamp") else None
        latest = parse_iso(loc["latestTimestamp"]) if loc.get("latestTimestamp") else None
    except (TransferError, ValueError, TypeError) as e:
        ad.log.warning("GetLog %s refused: %s", request_id, safe(e, 200))
        return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidURL", "additionalInfo": safe(e, 500)}}
    stamp = ad.scheduler.now().strftime("%Y%m%dT%H%M%SZ")
    if p["logType"] == "SecurityLog":
        filename, body = f"{ad.cfg.id}-SecurityLog-{stamp}.log", svc.security_log(oldest, latest)
    else:
        ext, body = svc.diagnostics_log(oldest, latest)
        filename = f"{ad.cfg.id}-DiagnosticsLog-{stamp}.{ext}"
    filename = filename[:255]
    retries = max(0, min(int(p.get("retries") or 0), MAX_RETRIES))
    interval = max(0, min(int(p.get("retryInterval") or 0), MAX_RETRY_INTERVAL_S))
    canceled = svc.uploads.busy

    async def begin() -> None:
        svc.uploads.start(request_id, url, filename, body, retries, interval)

    return {"status": "AcceptedCanceled" if canceled else "Accepted", "filename": filename}, begin


# -- N09 / N10 CustomerInformation ------------------------------------------------------------------
def customer_data(ad: Ocpp201Adapter, p: dict, clear: bool) -> list[str]:
    """What the station holds about the customer of ``p`` (lines of text); with ``clear``, the
    cache entry is removed once reported."""
    lines: list[str] = []
    token = p.get("idToken")
    if isinstance(token, dict):
        value = str(token.get("idToken", ""))
        label = f"idToken {value} ({token.get('type')})"
        st = ad.station
        listed = st.local_list.get(value)
        if listed is not None:
            lines.append(f"{label}: local authorization list entry, {json.dumps(listed.to_ocpp(), sort_keys=True)}")
        cached = st.cache.get(value)
        if cached is not None:
            lines.append(f"{label}: authorization cache entry, {json.dumps(cached.to_ocpp(), sort_keys=True)}")
        for t in ad.transactions.open.values():
            if isinstance(t.id_token, dict) and t.id_token.get("idToken") == value:
                lines.append(f"{label}: transaction {t.transaction_id} running on EVSE {t.evse_id} connector "
                             f"{t.connector_id} since {t.started_at or 'unknown'}")
        for _, cid, data, running in ad.store.tx_of(value):
            energy = (data.get("meter_last_wh") or 0) - (data.get("meter_start_wh") or 0)
            evse_id, connector_id = ad.address(cid) if cid in ad.connectors() else (0, cid)
            lines.append(f"{label}: {'running' if running else 'ended'} charging session on EVSE {evse_id} connector "
                         f"{connector_id} started {data.get('started_at')}, {energy:.0f} Wh")
        if clear and st.forget(value):
            lines.append(f"{label}: authorization cache entry cleared")
        if clear and (n := ad.store.tx_forget(value)):
            lines.append(f"{label}: {n} ended charging session(s) cleared")
    return lines


def parts(text: str) -> list[str]:
    text = text[:MAX_REPORT_CHARS]
    return [text[i:i + PART_CHARS] for i in range(0, len(text), PART_CHARS)] or [NO_DATA]


@routes.on("CustomerInformation")
async def customer_information(ad: Ocpp201Adapter, p: dict) -> Any:
    if not any(p.get(k) for k in ("customerIdentifier", "idToken", "customerCertificate")):
        return {"status": "Invalid", "statusInfo": {"reasonCode": "MissingParam",
                                                    "additionalInfo": "customerIdentifier, idToken or customerCertificate"}}
    if not p["report"] and not p["clear"]:
        return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidValue",
                                                     "additionalInfo": "neither report nor clear asked"}}
    request_id = p["requestId"]

    async def notify() -> None:
        lines = customer_data(ad, p, p["clear"])
        if not p["report"]:
            lines = [line for line in lines if line.endswith("cleared")]
        text = "\n".join(lines) if lines else NO_DATA
        generated_at = ad.now_iso()
        chunks = parts(text)
        for seq_no, chunk in enumerate(chunks):
            await ad.send_quietly("NotifyCustomerInformation", {
                "data": chunk, "seqNo": seq_no, "tbc": seq_no < len(chunks) - 1,
                "generatedAt": generated_at, "requestId": request_id})

    return {"status": "Accepted"}, notify

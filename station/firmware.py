"""Firmware update and diagnostics upload (version independent; the 1.6 wire side is in
station/ocpp16/handlers/firmware.py).

Firmware: ``update_firmware`` keeps the job in the store (namespace ``firmware``) and arms a one-shot
timer for its retrieve date (a job survives a restart). Then: Downloading, the download with
``retries`` more attempts ``retry_interval`` apart (DownloadFailed after the last), Downloaded,
Installing (once no transaction runs: 1.6 recommends waiting until the charging sessions have
ended), the package checked (``verify_package``: InstallationFailed when it is not a valid
package), the new version stored with an "Installed" report pending, and the station restarted
into it (a transaction that started in between ends with reason Reboot). After the restart the station boots with the
installed version (``installed_version``) and, once the CSMS has accepted it, reports Installed.

A signed update (the 1.6 security extension's SignedUpdateFirmware) is the same job with a
``signed`` part (requestId, signing certificate, signature): its statuses go to ``SignedFirmware``
(SignedFirmwareStatusNotification), the signature over the downloaded file is checked after
Downloaded (InvalidSignature, else SignatureVerified), InstallRebooting comes before the restart,
and ``SignedFirmware.signed_installed`` marks the installation (in the same store transaction) for
the Installed report after it. Kept across a restart, waiting for the transactions and retried
like a plain one.

Per-version parts: ``install_at`` (2.0.1 installDateTime) holds a downloaded and verified file
until that time (InstallScheduled first); ``on_wait_idle(running)`` is told when the installation
has to wait for running transactions (2.0.1 sets the free EVSEs Unavailable, L01.FR.07); the
status wording goes through ``notify_firmware`` or the ``SignedFirmware`` hooks.

A package is a JSON object (``make_package``): ``format`` ``station-firmware/1``, ``version`` (1-50
characters), ``payload`` (base64) and its ``sha256``. On a real station the payload would be the
image to flash; the simulated station only records the version.

Log uploads (``LogUploads``: 1.6 security extension GetLog and 2.0.1 N01 GetLog): one upload at a
time, retried ``retries`` more times ``retry_interval`` apart on the scheduler; Uploading, then
Uploaded or a failure status (UploadFailure unless the version's ``classify`` says more, e.g.
PermissionDenied). A new request takes over from a running one (the caller answers
AcceptedCanceled; with ``announce_cancel`` the abandoned request is reported AcceptedCanceled).

Diagnostics: ``get_diagnostics`` names a file at once (the answer carries it), bundles the recent
log lines between start and stop time (``DiagnosticsLog``, a bounded ring) and a state summary as a
tar.gz, and uploads it with retries: Uploading, then Uploaded or UploadFailed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import logging
import ssl
import tarfile
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from station.scheduler import Scheduler, Timer
from station.store import Store
from station.transfer import MAX_DOWNLOAD_BYTES, TransferError, download, parse_location, upload

NS = "firmware"
PACKAGE_FORMAT = "station-firmware/1"
MAX_RETRIES = 10  # more attempts than this are not made, whatever the CSMS asks
MAX_RETRY_INTERVAL_S = 24 * 3600
LOG_LINES = 1000  # INFO and above, each cut at LOG_LINE_CHARS: ~0.3 MB at most per station
LOG_LINE_CHARS = 300

Notify = Callable[[str], Awaitable[bool]]


class SignedFirmware(Protocol):
    """What a signed job needs from the security extension."""

    async def notify_signed(self, status: str, request_id: int) -> bool: ...

    def signature_ok(self, signed: dict, data: bytes) -> bool: ...

    def signed_installed(self, request_id: int) -> None: ...


class PackageError(Exception):
    """The downloaded file is not an installable firmware package."""


def make_package(version: str, payload: bytes = b"") -> bytes:
    """A firmware package of this station (tests, tools)."""
    return json.dumps({"format": PACKAGE_FORMAT, "version": version, "sha256": hashlib.sha256(payload).hexdigest(),
                       "payload": base64.b64encode(payload).decode()}).encode()


def verify_package(data: bytes) -> str:
    """The version of a valid package; raises PackageError."""
    try:
        pkg = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise PackageError("not a firmware package (not JSON)") from None
    if not isinstance(pkg, dict) or pkg.get("format") != PACKAGE_FORMAT:
        raise PackageError(f"not a firmware package (format is not {PACKAGE_FORMAT})")
    version = pkg.get("version")
    if not isinstance(version, str) or not 1 <= len(version) <= 50 or not version.isprintable():
        raise PackageError("package version missing or not 1-50 printable characters")
    try:
        payload = base64.b64decode(str(pkg.get("payload", "")), validate=True)
    except ValueError:
        raise PackageError("package payload is not base64") from None
    if hashlib.sha256(payload).hexdigest() != pkg.get("sha256"):
        raise PackageError("package payload does not match its sha256 (corrupt)")
    return version


def installed_version(store: Store, default: str) -> str:
    """The firmware version to report in BootNotification: the last installed package's, else ``default``."""
    v = store.get(NS, "version")
    return v if isinstance(v, str) and v else default


class DiagnosticsLog(logging.Handler):
    """The last ``LOG_LINES`` lines (INFO and above) of a logger with their (scheduler) time, for
    diagnostics files.
    One per logger: ``attach`` finds the one already there (it outlives a station restart: the
    store, which the runtime keeps across restarts, marks whose lines they are)."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        super().__init__(logging.INFO)
        self.now = now
        self.lines: deque[tuple[datetime, str]] = deque(maxlen=LOG_LINES)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    owner: object = None

    @classmethod
    def attach(cls, logger: logging.Logger, now: Callable[[], datetime], owner: object) -> DiagnosticsLog:
        if isinstance(logger, logging.LoggerAdapter):  # a fleet's shared logger (station/stationlog.py)
            return _StationRings.ring(logger, now, owner)
        for h in logger.handlers:
            if isinstance(h, cls):
                if h.owner is not owner:  # another station run with this logger: not its lines
                    h.lines.clear()
                h.now, h.owner = now, owner
                return h
        h = cls(now)
        h.owner = owner
        logger.addHandler(h)
        return h

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append((self.now(), self.format(record)[:LOG_LINE_CHARS]))
        except Exception:  # pragma: no cover - a log line must never break the station
            self.handleError(record)

    def between(self, start: datetime | None, stop: datetime | None) -> list[str]:
        return [f"{t.isoformat()} {line}" for t, line in list(self.lines)
                if (start is None or t >= start) and (stop is None or t <= stop)]


class _StationRings(logging.Handler):
    """One handler on a fleet's shared logger: each station's lines go to that station's own ring
    (``record.station``, set by station.stationlog.StationLog)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.rings: dict[str, DiagnosticsLog] = {}

    def emit(self, record: logging.LogRecord) -> None:
        ring = self.rings.get(getattr(record, "station", ""))
        if ring is not None and record.levelno >= ring.level:
            ring.emit(record)

    @classmethod
    def ring(cls, adapter: logging.LoggerAdapter, now: Callable[[], datetime], owner: object) -> DiagnosticsLog:
        base = adapter.logger
        router = next((h for h in base.handlers if isinstance(h, cls)), None)
        if router is None:
            router = cls()
            base.addHandler(router)
        sid = str((adapter.extra or {}).get("station", ""))
        ring = router.rings.get(sid)
        if ring is None:
            ring = router.rings[sid] = DiagnosticsLog(now)
        elif ring.owner is not owner:
            ring.lines.clear()
        ring.now, ring.owner = now, owner
        return ring


class FirmwareService:
    """UpdateFirmware and GetDiagnostics jobs of one station generation (see the module docstring)."""

    def __init__(self, *, scheduler: Scheduler, store: Store, log: logging.Logger,
                 spawn: Callable[[Awaitable[Any]], Any], notify_firmware: Notify, notify_diagnostics: Notify,
                 restart: Callable[[], Awaitable[None]], summary: Callable[[], dict], station_id: str,
                 ssl_context: Callable[[], ssl.SSLContext | None] = lambda: None,
                 files_dir: Path | None = None, max_bytes: int = MAX_DOWNLOAD_BYTES,
                 transfer_timeout: float = 300.0, busy: Callable[[], int] = lambda: 0,
                 signed: Callable[[], SignedFirmware | None] = lambda: None,
                 on_wait_idle: Callable[[int], Awaitable[None]] | None = None) -> None:
        self.scheduler = scheduler
        self.store = store
        self.log = log
        self.spawn = spawn
        self.notify_firmware = notify_firmware
        self.notify_diagnostics = notify_diagnostics
        self.restart = restart
        self.summary = summary
        self.station_id = station_id
        self.ssl_context = ssl_context
        self.files_dir = files_dir
        self.max_bytes = max_bytes
        self.transfer_timeout = transfer_timeout
        self.busy = busy  # how many transactions run
        self.signed = signed  # the security extension's side of signed jobs
        self.on_wait_idle = on_wait_idle  # told when an installation starts waiting for transactions
        self._idle: asyncio.Future | None = None  # an installation waits for the station to be idle
        self.firmware_status = "Idle"  # Downloading / Downloaded / Installing while a job runs
        self.diagnostics_status = "Idle"  # Uploading while an upload runs
        self.diag_log = DiagnosticsLog.attach(log, scheduler.now, store)
        self._timer: Timer | None = None
        self._job: asyncio.Future | None = None
        self._upload: asyncio.Future | None = None
        self._stopped = False

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Nothing until the CSMS has accepted the station (``registered``): no status goes out before."""

    def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in (self._job, self._upload):
            if task is not None and not task.done():
                task.cancel()

    def registered(self) -> None:
        """The CSMS accepted the station: report an installation done before the restart, and take
        up a firmware job kept from before it."""
        if self.store.get(NS, "report") == "Installed":
            self.spawn(self._report_installed())
        job = self.store.get(NS, "job")
        idle = self._timer is None and (self._job is None or self._job.done())
        if isinstance(job, dict) and idle and not self._stopped:
            self.log.info("firmware update from %s still to do (kept across a restart)", _shown(job.get("location")))
            self._arm(job)

    async def _report_installed(self) -> None:
        if await self.notify_firmware("Installed"):
            self.store.delete(NS, "report")

    # -- firmware ------------------------------------------------------------------------------
    def pending(self) -> bool:
        """A firmware job is kept (not yet installed, failed or replaced)."""
        return isinstance(self.store.get(NS, "job"), dict)

    def update_firmware(self, location: str, retrieve_at: datetime, retries: int = 0, retry_interval: float = 0,
                        signed: dict | None = None, install_at: datetime | None = None) -> None:
        """A new firmware job (replaces one not yet done); ``signed``: requestId, signingCertificate and
        signature of a signed update (JSON values: the job is kept in the store); ``install_at``: not
        installed before that time."""
        parse_location(location)  # raises TransferError: checked before the answer
        if self._job is not None and not self._job.done():
            self.log.warning("UpdateFirmware while an update runs: the running one is abandoned")
            self._job.cancel()
        if self._timer is not None:
            self._timer.cancel()
        job = {"location": location, "retrieve_at": retrieve_at.isoformat(),
               "retries": max(0, min(int(retries), MAX_RETRIES)),
               "retry_interval": max(0.0, min(float(retry_interval), MAX_RETRY_INTERVAL_S))}
        if signed is not None:
            job["signed"] = signed
        if install_at is not None:
            job["install_at"] = install_at.isoformat()
        self.store.put(NS, "job", job)
        self._arm(job)

    def _arm(self, job: dict) -> None:
        try:
            at = datetime.fromisoformat(job["retrieve_at"])
        except (KeyError, TypeError, ValueError):
            self.store.delete(NS, "job")
            return
        delay = (at - self.scheduler.now()).total_seconds()
        if delay > 0:
            self.log.info("firmware download from %s at %s (in %.0f s)", _shown(job["location"]), job["retrieve_at"], delay)
        self._timer = self.scheduler.call_at_wall(at, self._begin, job)  # a clock set meanwhile re-arms it

    def _begin(self, job: dict) -> None:
        self._timer = None
        if not self._stopped:
            self._job = self.spawn(self._run(job))

    async def _run(self, job: dict) -> None:
        location = job["location"]
        signed = job.get("signed")
        hooks = self.signed() if signed is not None else None
        if signed is not None and hooks is None:
            self.log.error("signed firmware update from %s dropped: no security extension", _shown(location))
            self.store.delete(NS, "job")
            return

        async def status(s: str, final: bool = False) -> None:
            if hooks is None:
                await self._set_firmware(s, idle=final)
            else:
                await hooks.notify_signed(s, signed["requestId"])

        data: bytes | None = None
        await status("Downloading")
        for attempt in range(1 + int(job["retries"])):
            if attempt:
                await self._sleep(float(job["retry_interval"]))
            try:
                data = await download(location, timeout=self.transfer_timeout, max_bytes=self.max_bytes,
                                      ssl_context=self.ssl_context())
                break
            except TransferError as e:
                self.log.warning("firmware download attempt %d of %d failed: %s", attempt + 1, 1 + job["retries"], e)
            except Exception as e:  # a client bug must still end in DownloadFailed, not a dead job
                self.log.error("firmware download attempt %d failed unexpectedly: %s: %s", attempt + 1, type(e).__name__, e)
        if data is None:
            self.store.delete(NS, "job")
            await status("DownloadFailed", final=True)
            return
        self.log.info("firmware downloaded from %s (%d bytes)", _shown(location), len(data))
        self._keep_file(data)
        await status("Downloaded")
        if hooks is not None:
            if not hooks.signature_ok(signed, data):
                self.store.delete(NS, "job")
                await status("InvalidSignature", final=True)
                return
            await status("SignatureVerified")
        await self._install_time(job, status)
        await self._wait_idle()
        await status("Installing")
        try:
            version = verify_package(data)
        except PackageError as e:
            self.log.error("firmware from %s not installed: %s", _shown(location), e)
            self.store.delete(NS, "job")
            await status("InstallationFailed", final=True)
            return
        with self.store.atomic():
            self.store.put(NS, "version", version)
            if hooks is None:
                self.store.put(NS, "report", "Installed")
            else:
                hooks.signed_installed(signed["requestId"])
            self.store.delete(NS, "job")
        if hooks is not None:
            await status("InstallRebooting")
        self.log.warning("firmware %s installed: restarting the station into it", version)
        await self.restart()

    async def _install_time(self, job: dict, status: Callable[[str], Awaitable[None]]) -> None:
        """A job with an installation time still ahead: InstallScheduled, then wait for it."""
        try:
            at = datetime.fromisoformat(job["install_at"]) if job.get("install_at") else None
        except (TypeError, ValueError):
            at = None
        delay = (at - self.scheduler.now()).total_seconds() if at is not None else 0.0
        if delay <= 0:
            return
        self.log.info("firmware installation scheduled at %s (in %.0f s)", job["install_at"], delay)
        await status("InstallScheduled")
        await self._sleep(delay)

    async def _wait_idle(self) -> None:
        running = self.busy()
        if not running:
            return
        self.log.info("firmware installation waits until the %d running transaction(s) have ended", running)
        self._idle = asyncio.get_running_loop().create_future()
        try:
            if self.on_wait_idle is not None:
                await self.on_wait_idle(running)
            if self.busy():  # (a transaction may have ended meanwhile)
                await self._idle
        finally:
            self._idle = None

    def transaction_ended(self) -> None:
        """A transaction ended: an installation waiting for that may go on (checked once the
        station has settled)."""
        if self._idle is not None:
            self.scheduler.call_later(0, self._check_idle)

    def _check_idle(self) -> None:
        if self._idle is not None and not self._idle.done() and not self.busy():
            self._idle.set_result(None)

    async def _set_firmware(self, status: str, idle: bool = False) -> None:
        self.firmware_status = "Idle" if idle else status
        await self.notify_firmware(status)

    def _keep_file(self, data: bytes) -> None:
        if self.files_dir is None:
            return
        try:
            self.files_dir.mkdir(parents=True, exist_ok=True)
            (self.files_dir / "firmware.pkg").write_bytes(data)
        except OSError as e:
            self.log.warning("cannot keep the firmware file in %s: %s", self.files_dir, e)

    # -- diagnostics ---------------------------------------------------------------------------
    def diagnostics_file_name(self) -> str:
        """The name of the next diagnostics file (the GetDiagnostics answer carries it)."""
        return f"diagnostics-{_file_safe(self.station_id)}-{self.scheduler.now():%Y%m%dT%H%M%SZ}.tar.gz"

    def get_diagnostics(self, location: str, file_name: str, retries: int = 0, retry_interval: float = 0,
                        start: datetime | None = None, stop: datetime | None = None) -> None:
        """Bundle the diagnostics file and upload it to ``location`` as ``file_name`` (in the background)."""
        parse_location(location)  # raises TransferError
        if self._upload is not None and not self._upload.done():
            self.log.warning("GetDiagnostics while an upload runs: the running one is abandoned")
            self._upload.cancel()
        data = self.bundle(start, stop)
        self._upload = self.spawn(self._send_diagnostics(location, file_name, data, max(0, min(int(retries), MAX_RETRIES)),
                                                         max(0.0, min(float(retry_interval), MAX_RETRY_INTERVAL_S))))

    def bundle(self, start: datetime | None, stop: datetime | None) -> bytes:
        """log.txt (the log lines between start and stop) and state.json, as a tar.gz."""
        lines = self.diag_log.between(start, stop)
        state = dict(self.summary())
        state["generated_at"] = self.scheduler.now().isoformat()
        state["log_window"] = {"start": start.isoformat() if start else None, "stop": stop.isoformat() if stop else None,
                               "lines": len(lines)}
        files = {"log.txt": ("\n".join(lines) + "\n").encode(),
                 "state.json": json.dumps(state, indent=2, default=str).encode()}
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for fname, content in files.items():
                info = tarfile.TarInfo(fname)
                info.size = len(content)
                info.mtime = int(self.scheduler.now().timestamp())
                tar.addfile(info, io.BytesIO(content))
        return buf.getvalue()

    async def _send_diagnostics(self, location: str, name: str, data: bytes, retries: int, interval: float) -> None:
        self.diagnostics_status = "Uploading"
        await self.notify_diagnostics("Uploading")
        ok = False
        for attempt in range(1 + retries):
            if attempt:
                await self._sleep(interval)
            try:
                await upload(location, name, data, timeout=self.transfer_timeout, ssl_context=self.ssl_context())
                ok = True
                break
            except TransferError as e:
                self.log.warning("diagnostics upload attempt %d of %d failed: %s", attempt + 1, 1 + retries, e)
            except Exception as e:  # a client bug must still end in UploadFailed
                self.log.error("diagnostics upload attempt %d failed unexpectedly: %s: %s", attempt + 1, type(e).__name__, e)
        self.diagnostics_status = "Idle"
        if ok:
            self.log.info("diagnostics %s uploaded to %s (%d bytes)", name, _shown(location), len(data))
        await self.notify_diagnostics("Uploaded" if ok else "UploadFailed")

    # -- helpers -------------------------------------------------------------------------------
    async def _sleep(self, seconds: float) -> None:
        await _sleep(self.scheduler, seconds)


class LogUploads:
    """GetLog uploads of one station generation, version independent (see the module docstring).

    ``notify(status, request_id)`` sends the version's LogStatusNotification; ``state`` is the last
    status and its request id, ("Idle", None) when nothing runs (TriggerMessage reports it)."""

    def __init__(self, *, scheduler: Scheduler, log: logging.Logger, spawn: Callable[[Awaitable[Any]], Any],
                 notify: Callable[[str, int], Awaitable[Any]],
                 ssl_context: Callable[[], ssl.SSLContext | None] = lambda: None, transfer_timeout: float = 120.0,
                 classify: Callable[[TransferError], str] = lambda e: "UploadFailure",
                 announce_cancel: bool = False) -> None:
        self.scheduler = scheduler
        self.log = log
        self.spawn = spawn
        self.notify = notify
        self.ssl_context = ssl_context
        self.transfer_timeout = transfer_timeout
        self.classify = classify
        self.announce_cancel = announce_cancel
        self.state: tuple[str, int | None] = ("Idle", None)
        self._task: asyncio.Future | None = None

    @property
    def busy(self) -> bool:
        return self.state[0] == "Uploading"

    def start(self, request_id: int, location: str, file_name: str, data: bytes, retries: int = 0,
              retry_interval: float = 0) -> bool:
        """Upload ``data`` as ``file_name`` to the directory ``location`` (after the answer: call it
        from the answer's ``after``). Returns True when a running upload was abandoned for it."""
        parse_location(location)  # raises TransferError
        canceled = self.state if self.busy else None
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self.state = ("Uploading", request_id)
        self._task = self.spawn(self._run(request_id, location, file_name, data,
                                          max(0, min(int(retries), MAX_RETRIES)),
                                          max(0.0, min(float(retry_interval), MAX_RETRY_INTERVAL_S)), canceled))
        return canceled is not None

    def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _run(self, request_id: int, location: str, name: str, data: bytes, retries: int, interval: float,
                   canceled: tuple[str, int | None] | None) -> None:
        if canceled is not None and self.announce_cancel and canceled[1] is not None:
            self.log.warning("log upload %s abandoned for request %s", canceled[1], request_id)
            await self.notify("AcceptedCanceled", canceled[1])
        await self.notify("Uploading", request_id)
        status = "UploadFailure"
        for attempt in range(1 + retries):
            if attempt:
                await _sleep(self.scheduler, interval)
            try:
                await upload(location, name, data, timeout=self.transfer_timeout, ssl_context=self.ssl_context())
                status = "Uploaded"
                break
            except TransferError as e:
                status = self.classify(e)
                self.log.warning("log upload attempt %d of %d failed: %s", attempt + 1, 1 + retries, e)
            except Exception as e:  # a client bug must still end in a failure status
                status = "UploadFailure"
                self.log.error("log upload attempt %d failed unexpectedly: %s: %s", attempt + 1, type(e).__name__, e)
        if status == "Uploaded":
            self.log.info("log %s uploaded to %s (%d bytes)", name, _shown(location), len(data))
        self.state = ("Idle", None)
        await self.notify(status, request_id)


async def _sleep(scheduler: Scheduler, seconds: float) -> None:
    """Wait on the scheduler's timer (virtual time in tests)."""
    fut = asyncio.get_running_loop().create_future()
    timer = scheduler.call_later(seconds, lambda: fut.done() or fut.set_result(None))
    try:
        await fut
    finally:
        timer.cancel()


def _shown(url: object) -> str:
    try:
        return parse_location(str(url)).shown()
    except TransferError:
        return "(bad URL)"


def _file_safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:40]

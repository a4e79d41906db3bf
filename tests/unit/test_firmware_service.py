"""station/firmware.py's FirmwareService without a CSMS: its notifications, timers and store, on
virtual time with a real loopback HTTP server."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from station.firmware import NS, DiagnosticsLog, FirmwareService, make_package
from station.scheduler import LoopScheduler
from station.store import MemoryStore
from station.tasks import Tasks
from tests.transfer_servers import HttpFileServer

pytestmark = pytest.mark.virtual_time


class Harness:
    def __init__(self, store: MemoryStore | None = None, busy: int = 0) -> None:
        self.sent: list[tuple[str, str, float]] = []
        self.restarts = 0
        self.busy = busy
        self.store = store or MemoryStore()
        self.scheduler = LoopScheduler()
        self.tasks = Tasks(logging.getLogger("test.fw"), "fw")
        self.fw = FirmwareService(
            scheduler=self.scheduler, store=self.store, log=logging.getLogger("test.fw"), spawn=self.tasks.spawn,
            notify_firmware=lambda s: self._note("fw", s), notify_diagnostics=lambda s: self._note("diag", s),
            restart=self._restart, summary=lambda: {"k": "v"}, station_id="CS/1", busy=lambda: self.busy,
        )

    async def _note(self, kind: str, status: str) -> bool:
        self.sent.append((kind, status, self.scheduler.monotonic()))
        return True

    async def _restart(self) -> None:
        self.restarts += 1

    def statuses(self, kind: str = "fw") -> list[str]:
        return [s for k, s, _ in self.sent if k == kind]


async def until(cond, timeout: float = 600) -> None:  # noqa: ANN001
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.5)


async def test_a_new_update_replaces_a_pending_one_and_the_timer_waits_for_the_retrieve_date():
    srv = await HttpFileServer(files={"/a": make_package("1.1"), "/b": make_package("1.2")}).start()
    h = Harness()
    try:
        now = h.scheduler.now()
        h.fw.update_firmware(srv.url("/a"), now + timedelta(seconds=300))
        h.fw.update_firmware(srv.url("/b"), now + timedelta(seconds=100))
        t0 = h.scheduler.monotonic()
        await until(lambda: h.restarts == 1)
        assert h.statuses() == ["Downloading", "Downloaded", "Installing"]
        assert h.sent[0][2] - t0 == pytest.approx(100, abs=1)
        assert srv.requests == [("GET", "/b")]
        assert h.store.get(NS, "version") == "1.2" and h.store.get(NS, "job") is None
        await asyncio.sleep(400)
        assert srv.requests == [("GET", "/b")]  # the replaced job never runs
    finally:
        h.fw.stop()
        await srv.close()


async def test_a_stopped_service_starts_nothing_and_a_kept_job_waits_for_registration():
    srv = await HttpFileServer(files={"/a": make_package("1.1")}).start()
    h = Harness()
    try:
        h.fw.update_firmware(srv.url("/a"), h.scheduler.now() + timedelta(seconds=60))
        h.fw.stop()
        await asyncio.sleep(120)
        assert not h.sent and not srv.requests
        again = Harness(store=h.store)  # the next generation, same store
        again.fw.start()
        await asyncio.sleep(10)
        assert not again.sent
        again.fw.registered()
        await until(lambda: again.restarts == 1)
        assert again.statuses() == ["Downloading", "Downloaded", "Installing"]
        third = Harness(store=h.store)
        third.fw.registered()
        await until(lambda: third.statuses() == ["Installed"])
        assert third.store.get(NS, "report") is None
        third.fw.stop()
    finally:
        await srv.close()


async def test_installation_waits_for_busy_station():
    srv = await HttpFileServer(files={"/a": make_package("1.1")}).start()
    h = Harness(busy=1)
    try:
        h.fw.update_firmware(srv.url("/a"), h.scheduler.now())
        await until(lambda: "Downloaded" in h.statuses())
        await asyncio.sleep(3600)
        assert h.statuses() == ["Downloading", "Downloaded"] and h.fw.firmware_status == "Downloaded"
        h.fw.transaction_ended()  # another one still runs
        await asyncio.sleep(1)
        assert h.restarts == 0
        h.busy = 0
        h.fw.transaction_ended()
        await until(lambda: h.restarts == 1)
        assert h.statuses()[-1] == "Installing"
    finally:
        h.fw.stop()
        await srv.close()


def test_diagnostics_log_window_and_owner():
    log = logging.getLogger("test.fw.diaglog")
    log.setLevel(logging.DEBUG)
    clock = [datetime(2026, 1, 1, tzinfo=UTC)]
    owner = object()
    ring = DiagnosticsLog.attach(log, lambda: clock[0], owner)
    log.info("one")
    clock[0] += timedelta(hours=1)
    log.debug("not kept: below INFO")
    log.warning("two %s", "x" * 1000)
    lines = ring.between(None, None)
    assert len(lines) == 2 and "one" in lines[0] and len(lines[1]) < 400
    assert ring.between(clock[0] - timedelta(minutes=1), None) == lines[1:]
    assert ring.between(None, clock[0] - timedelta(minutes=1)) == lines[:1]
    assert DiagnosticsLog.attach(log, lambda: clock[0], owner) is ring and len(ring.lines) == 2
    assert DiagnosticsLog.attach(log, lambda: clock[0], object()) is ring and not ring.lines  # another run
    log.removeHandler(ring)


class FakeSigned:
    """The security extension's side of a signed job (station/firmware.py SignedFirmware)."""

    def __init__(self, h: Harness, good: bool) -> None:
        self.h, self.good, self.checked = h, good, []

    async def notify_signed(self, status: str, request_id: int) -> bool:
        self.h.sent.append(("signed", f"{status} {request_id}", self.h.scheduler.monotonic()))
        return True

    def signature_ok(self, signed: dict, data: bytes) -> bool:
        self.checked.append((signed["signature"], data))
        return self.good

    def signed_installed(self, request_id: int) -> None:
        self.h.store.put("test", "signed_installed", request_id)


@pytest.mark.parametrize("good", [True, False])
async def test_a_signed_job_checks_the_signature_waits_for_the_transactions_and_marks_its_installation(good):
    pkg = make_package("4.0")
    srv = await HttpFileServer(files={"/s": pkg}).start()
    h = Harness(busy=1)
    hooks = FakeSigned(h, good)
    h.fw.signed = lambda: hooks
    try:
        h.fw.update_firmware(srv.url("/s"), h.scheduler.now(), signed={"requestId": 7, "signature": "sig"})
        assert h.fw.pending() and h.store.get(NS, "job")["signed"]["requestId"] == 7
        await until(lambda: any("Downloaded" in s for s in h.statuses("signed")))
        await asyncio.sleep(60)
        assert hooks.checked == [("sig", pkg)]
        if not good:
            assert h.statuses("signed") == ["Downloading 7", "Downloaded 7", "InvalidSignature 7"]
            assert not h.fw.pending() and h.store.get(NS, "version") is None
            h.busy = 0
            h.fw.transaction_ended()
            await asyncio.sleep(60)
            assert h.restarts == 0
            return
        assert h.statuses("signed")[-1] == "SignatureVerified 7" and h.restarts == 0  # a transaction runs
        h.busy = 0
        h.fw.transaction_ended()
        await until(lambda: h.restarts == 1)
        assert h.statuses("signed") == ["Downloading 7", "Downloaded 7", "SignatureVerified 7", "Installing 7",
                                        "InstallRebooting 7"]
        assert not h.statuses("fw")  # no plain FirmwareStatusNotification
        assert h.store.get(NS, "version") == "4.0" and h.store.get("test", "signed_installed") == 7
        assert h.store.get(NS, "report") is None and not h.fw.pending()
    finally:
        h.fw.stop()
        await srv.close()

"""Issue 8, the local API and start-up: nothing a local client or a damaged state file does may take
the station out of service.

Start-up: a damaged state file (``station.sqlite`` that is not a database, or whose pages are
malformed) used to stop every start with exit 2, for good; now it is moved aside to
``station.sqlite.corrupt-<UTC time>`` for a technician, said at ERROR, and the station starts with an
empty state. A file that is sound but cannot be used (a newer release's schema) is still refused.

The station runs in process on virtual time (tests/integration/inproc.py), spoken to over real
loopback sockets; timeouts cost no real time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from pathlib import Path

import pytest

from station.api import HEAD_TIMEOUT_S, IDLE_TIMEOUT_S, MAX_CONNECTIONS, Api
from station.config import StationConfig
from station.runtime import Runtime
from station.store import DB_NAME, SCHEMA_VERSION, StoreError

# -- a damaged state file ----------------------------------------------------------------------------


def _aside(state: Path) -> list[Path]:
    return sorted(p for p in state.iterdir() if p.name.startswith(f"{DB_NAME}.corrupt-") and p.name[-4:] not in ("-wal", "-shm"))


async def test_a_state_file_that_is_not_a_database_is_moved_aside_and_the_station_starts(csms, booted, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    garbage = os.urandom(8192)
    (state / DB_NAME).write_bytes(garbage)
    sp = await booted()  # used to end at once: "state file ...: file is not a database", exit 2
    assert (await sp.status())["registration"] == "Accepted"
    [aside] = _aside(state)
    assert aside.read_bytes() == garbage  # kept for a technician, untouched
    lines = [ln for ln in sp.log().splitlines() if "is damaged" in ln]
    assert len(lines) == 1 and " ERROR " in lines[0], lines
    assert f"state file {state / DB_NAME} is damaged (file is not a database): moved aside to {aside}" in lines[0]
    # the new file is sound: the next start moves nothing aside
    await sp.stop()
    sp.start()
    await sp.wait_api()
    assert _aside(state) == [aside] and sp.log().count("is damaged") == 1


def _cfg(tmp_path: Path) -> StationConfig:
    return StationConfig(id="CS-DMG", csms_url="ws://127.0.0.1:9/ocpp", state_dir=str(tmp_path / "state"), simulated=True)


def _sound_file_with_rows(path: Path, rows: int = 400) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE filler (n INTEGER PRIMARY KEY, text TEXT)")
    db.executemany("INSERT INTO filler VALUES (?, ?)", [(n, "x" * 200) for n in range(rows)])
    db.commit()
    db.close()


async def test_a_file_with_malformed_pages_is_moved_aside(tmp_path, caplog):
    """Page 1 (the header and schema) intact, later pages overwritten: opens, but is not sound."""
    cfg = _cfg(tmp_path)
    path = Path(cfg.state_dir) / DB_NAME
    _sound_file_with_rows(path)
    with open(path, "r+b") as f:
        f.seek(4096 * 5)
        f.write(b"\xff" * 4096 * 3)
    caplog.set_level(logging.ERROR, logger="test.damage")
    rt = Runtime(cfg, log=logging.getLogger("test.damage"))
    try:
        assert rt.store.get("store", "created") == 1  # a fresh, working store
        assert rt.store.db.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    finally:
        await rt.close()
    [aside] = _aside(Path(cfg.state_dir))
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert "is damaged (" in caplog.records[0].getMessage() and str(aside) in caplog.records[0].getMessage()


async def test_a_damaged_first_release_file_is_moved_aside_not_taken_over(tmp_path, monkeypatch, caplog):
    """Default state directory: the first release's ./state/station.sqlite is taken over; damaged,
    it used to stop every start ("cannot move it")."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / DB_NAME).write_bytes(b"not a database" * 100)
    caplog.set_level(logging.ERROR, logger="test.damage")
    rt = Runtime(StationConfig(id="CS-OLD", csms_url="ws://127.0.0.1:9/ocpp", simulated=True),
                 log=logging.getLogger("test.damage"))
    try:
        assert rt.store.path == str(Path("state") / "CS-OLD" / DB_NAME) and rt.store.adopted_from is None
    finally:
        await rt.close()
    [aside] = _aside(tmp_path / "state")
    assert aside.read_bytes() == b"not a database" * 100
    [record] = caplog.records
    assert f"of the first release is damaged (file is not a database): moved aside to {Path('state') / aside.name}" \
        in record.getMessage()


async def test_a_sound_file_of_a_newer_release_is_still_refused_and_not_moved(tmp_path):
    cfg = _cfg(tmp_path)
    path = Path(cfg.state_dir) / DB_NAME
    _sound_file_with_rows(path, 3)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="written by a newer release"):
        Runtime(cfg, log=logging.getLogger("test.damage"))
    assert _aside(Path(cfg.state_dir)) == [] and path.exists()


# -- the local API: a bounded number of connections, each with its time limits -----------------------
# 1,100 idle connections used to exhaust the station's file descriptors (its CSMS reconnect then
# failed) and wrote 142,294 tracebacks to the log. These open limit + 5 at most.


def _now() -> float:
    return asyncio.get_running_loop().time()


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _until_closed(reader: asyncio.StreamReader, limit: float = 120) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), limit)


async def _get_status(port: int) -> int:
    reader, writer = await _open(port)
    writer.write(b"GET /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = await _until_closed(reader, 5)
    writer.close()
    return int(data.split(b" ", 2)[1])


async def _wait(cond, timeout: float = 30.0) -> None:
    deadline = _now() + timeout
    while not cond():
        assert _now() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_connections_beyond_the_limit_get_503_at_once_and_one_warning(csms, booted):
    sp = await booted()
    rt = sp.rt
    log = logging.getLogger("station.CS001")
    api = Api(lambda: rt, log, max_connections=4)  # the limit shrunk for the test (default MAX_CONNECTIONS)
    port = await api.start("127.0.0.1", 0)
    try:
        idle = [await _open(port) for _ in range(4)]
        await _wait(lambda: api.open_connections == 4)
        t0 = _now()
        refused = []
        for _ in range(5):
            reader, writer = await _open(port)
            refused.append(await _until_closed(reader, 5))
            writer.close()
        assert _now() - t0 < 1.0  # at once, not after a timeout
        for answer in refused:
            assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer
            assert b"Connection: close\r\n" in answer and b"Retry-After: 1\r\n" in answer
            assert answer.endswith(b'{"error": "too many connections (limit 4): try again later"}')
        assert api.open_connections == 4 and api.refused == 5
        warnings = [ln for ln in sp.log().splitlines() if "local API: 4 connections open, the limit" in ln]
        assert len(warnings) == 1 and " WARNING " in warnings[0], warnings
        # while the API is full the CSMS link still reconnects, and the station still works
        handshakes = len(csms.handshake_times)
        await csms.drop_connection()
        await _wait(lambda: len(csms.handshake_times) > handshakes and rt.adapter.link.is_connected)
        # one idle connection closes: a new client is served again
        idle.pop()[1].close()
        await _wait(lambda: api.open_connections == 3)
        assert await _get_status(port) == 200
        for _, writer in idle:
            writer.close()
    finally:
        await api.close()
    assert "Traceback" not in sp.log()


async def test_idle_connections_are_closed_after_the_head_timeout_and_the_limit_frees(csms, booted):
    """The station's own API (the defaults): MAX_CONNECTIONS + 5 connections that send nothing."""
    sp = await booted()
    api = sp.api_server
    assert (api.max_connections, api.head_timeout, api.idle_timeout) == (MAX_CONNECTIONS, HEAD_TIMEOUT_S, IDLE_TIMEOUT_S)
    conns = [await _open(sp.api_port) for _ in range(MAX_CONNECTIONS + 5)]
    t0 = _now()
    answers = await asyncio.gather(*(_until_closed(reader) for reader, _ in conns))
    took = _now() - t0
    assert sum(a.startswith(b"HTTP/1.1 503 ") for a in answers) == 5
    assert sum(a == b"" for a in answers) == MAX_CONNECTIONS  # idle: closed without a word
    assert HEAD_TIMEOUT_S <= took < HEAD_TIMEOUT_S + 1, took
    for _, writer in conns:
        writer.close()
    assert api.open_connections == 0
    assert (await sp.status())["connected"] is True
    log = sp.log()
    assert "Traceback" not in log and log.count("connections open, the limit") == 1


async def test_a_keep_alive_connection_is_closed_after_the_idle_timeout(csms, booted):
    sp = await booted()
    reader, writer = await _open(sp.api_port)
    writer.write(b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert b"Connection: keep-alive" in head
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    t0 = _now()
    assert await _until_closed(reader) == b""
    assert IDLE_TIMEOUT_S <= _now() - t0 < IDLE_TIMEOUT_S + 1
    writer.close()


async def test_a_head_sent_byte_by_byte_gets_408_after_the_head_timeout(csms, booted):
    """Slowloris: a request that never finishes its head, one byte every few seconds."""
    sp = await booted()
    reader, writer = await _open(sp.api_port)
    t0 = _now()
    writer.write(b"GET /api/status HTTP/1.1\r\n")
    answer = b""
    for _ in range(20):
        try:
            answer = await asyncio.wait_for(reader.read(1), 3)  # the server's answer, if it has come
            break
        except TimeoutError:
            writer.write(b"X")
    answer += await _until_closed(reader, 5)
    took = _now() - t0
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and b"Connection: close" in answer, answer
    assert answer.endswith(b'{"error": "request head not complete within 10 s"}')
    assert HEAD_TIMEOUT_S <= took <= HEAD_TIMEOUT_S + 3, took
    writer.close()
    assert "Traceback" not in sp.log()


async def test_a_body_that_never_comes_gets_408(csms, booted):
    sp = await booted()
    reader, writer = await _open(sp.api_port)
    writer.write(b"POST /api/link HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 30\r\n\r\n{\"con")
    t0 = _now()
    answer = await _until_closed(reader)
    assert answer.startswith(b"HTTP/1.1 408 ") and answer.endswith(b'{"error": "body not complete within 10 s"}')
    assert 10 <= _now() - t0 < 11
    writer.close()
    assert (await sp.status())["connected"] is True  # nothing was done


# -- [::1]: the IPv6 loopback works for the CSMS and for the API ---------------------------------------

async def test_a_csms_and_an_api_on_ipv6_loopback(make_station, caplog):
    import json
    from datetime import UTC, datetime

    from websockets.asyncio.server import serve

    from station.cli import has_ipv6

    if not has_ipv6():
        pytest.skip("this machine has no IPv6 (the station says so in one line: test_config.py)")
    actions: list[str] = []

    async def session(ws) -> None:
        async for frame in ws:
            _, unique_id, action, _ = json.loads(frame)
            actions.append(action)
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            answer = {"status": "Accepted", "currentTime": now, "interval": 300} if action == "BootNotification" else (
                {"currentTime": now} if action == "Heartbeat" else {})
            await ws.send(json.dumps([3, unique_id, answer]))

    async with serve(session, "::1", 0, subprotocols=["ocpp1.6"]) as server:  # type: ignore[list-item]
        port = server.sockets[0].getsockname()[1]
        sp = make_station(url=f"ws://[::1]:{port}/ocpp")
        sp.start()
        await sp.wait_api()
        await _wait(lambda: sp.rt.adapter is not None and sp.rt.adapter.registration == "Accepted")
        assert actions[0] == "BootNotification"
        api = Api(lambda: sp.rt, logging.getLogger("station.CS001"))
        api_port = await api.start("::1", 0)
        try:
            reader, writer = await asyncio.open_connection("::1", api_port)
            writer.write(b"GET /api/status HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), 5)
            writer.close()
        finally:
            await api.close()
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        status = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert status["connected"] is True and status["registration"] == "Accepted"
        await sp.stop()

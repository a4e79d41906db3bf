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

import logging
import os
import sqlite3
from pathlib import Path

import pytest

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

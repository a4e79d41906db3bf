"""The SQLite store (station/store.py): numbered migrations (a state file of the first release is
upgraded in place), the per-directory lock (in process and across real processes, released by
kill -9), the in-memory store with the same interface, and full durability."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from station import store as store_mod
from station.store import (
    DB_NAME,
    SCHEMA_VERSION,
    MemoryStore,
    StateDirLocked,
    Store,
    StoreError,
    adopt_legacy_state,
    open_state_dir,
)

ROOT = Path(__file__).resolve().parents[2]

# The schema of the first release, copied here on purpose: the migration test must keep building
# the file that release wrote, whatever station/store.py says later.
FIRST_RELEASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (ns, key));
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL,
    payload TEXT NOT NULL,
    tx_local INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS transactions (
    local_id INTEGER PRIMARY KEY,
    connector_id INTEGER NOT NULL,
    id_tag TEXT NOT NULL,
    data TEXT NOT NULL,
    transaction_id INTEGER,
    open INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS auth (kind TEXT NOT NULL, id_tag TEXT NOT NULL, info TEXT NOT NULL, PRIMARY KEY (kind, id_tag));
"""


def first_release_file(path: Path) -> None:
    """A state file as the first release left it: WAL, its schema, user_version 1, a running
    transaction, a queued StopTransaction of an earlier one, keys, cache and the applied flag."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(FIRST_RELEASE_SCHEMA)
    db.execute("PRAGMA user_version=1")
    kv = [("ocpp16", "HeartbeatInterval", "120"), ("ocpp16", "AuthorizationKey", "0123456789abcdef"),
          ("station", "tx_counter", 7), ("station", "ocpp_config_applied", True), ("availability", "1", False)]
    for ns, key, value in kv:
        db.execute("INSERT INTO kv VALUES(?,?,?)", (ns, key, json.dumps(value)))
    db.execute("INSERT INTO outbox(action, payload, tx_local, attempts) VALUES(?,?,?,?)",
               ("StopTransaction", json.dumps({"meterStop": 1500, "reason": "Local"}), 6, 1))
    data = {"meter_start_wh": 1000, "started_at": "2026-11-01T10:00:00.000Z", "meter_last_wh": 1200}
    db.execute("INSERT INTO transactions VALUES(?,?,?,?,?,?)", (6, 1, "OLD", json.dumps(data), 41, 0))
    db.execute("INSERT INTO transactions VALUES(?,?,?,?,?,?)", (7, 1, "CARD", json.dumps(data), 42, 1))
    db.execute("INSERT INTO auth VALUES(?,?,?)", ("cache", "CARD", json.dumps({"status": "Accepted"})))
    db.close()  # leaves the WAL checkpointed, as a clean stop of the first release did


def test_a_first_release_state_file_is_upgraded_in_place(tmp_path):
    path = tmp_path / "state" / DB_NAME
    first_release_file(path)
    s = Store(path)
    assert s.version == SCHEMA_VERSION == 4
    assert s.get("ocpp16", "HeartbeatInterval") == "120" and s.get("station", "tx_counter") == 7
    assert s.get("availability", "1") is False
    assert s.get("station", "ocpp_config_applied") is None  # replaced by per-key records
    assert s.outbox_first() == (1, "StopTransaction", {"meterStop": 1500, "reason": "Local"}, 6, 1)
    assert [(r[0], r[2], r[4]) for r in s.tx_open()] == [(7, "CARD", 42)]
    assert s.tx_id(6) == 41 and s.next_local_tx() == 8
    assert s.auth_all("cache") == {"CARD": {"status": "Accepted"}}
    assert s.config_file_get("HeartbeatInterval") is None
    assert s.updated_at("ocpp16", "HeartbeatInterval") is None  # written before times were kept
    before = time.time()
    s.put("ocpp16", "HeartbeatInterval", "60")
    assert before <= (s.updated_at("ocpp16", "HeartbeatInterval") or 0) <= time.time()
    s.config_file_put("HeartbeatInterval", "120", "file")
    s.close()
    again = Store(path)  # reopening changes nothing
    assert again.version == SCHEMA_VERSION and again.config_file_get("HeartbeatInterval") == ("120", "file")
    assert again.outbox_len() == 1
    again.close()


def test_a_new_file_gets_every_migration(tmp_path):
    s = Store(tmp_path / DB_NAME)
    tables = {r[0] for r in s.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"kv", "outbox", "transactions", "auth", "config_file"} <= tables
    assert s.version == SCHEMA_VERSION
    s.close()


def test_a_file_from_a_newer_release_is_refused_untouched(tmp_path):
    path = tmp_path / DB_NAME
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 5}")
    db.close()
    with pytest.raises(StoreError) as e:
        Store(path)
    assert f"schema {SCHEMA_VERSION + 5}" in str(e.value) and str(path) in str(e.value)


def test_a_failing_migration_leaves_the_file_at_its_old_version(tmp_path, monkeypatch):
    path = tmp_path / DB_NAME
    first_release_file(path)

    def broken(db):
        db.execute("CREATE TABLE half_done (x)")
        raise sqlite3.OperationalError("disk on fire")

    monkeypatch.setattr(store_mod, "MIGRATIONS", [store_mod.MIGRATIONS[0], broken])
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", 2)
    with pytest.raises(StoreError, match="disk on fire"):
        Store(path)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    assert db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name='half_done'").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 1
    db.close()


def test_every_commit_is_synchronous_full(tmp_path):
    s = Store(tmp_path / DB_NAME)
    assert s.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s.close()


# -- the same interface in memory ---------------------------------------------------------------

@pytest.fixture(params=["file", "memory", "memory-path"])
def any_store(request, tmp_path):
    s = {"file": lambda: Store(tmp_path / DB_NAME), "memory": MemoryStore, "memory-path": lambda: Store(":memory:")}
    st = s[request.param]()
    yield st
    st.close()


def test_every_store_does_the_same(any_store):
    s = any_store
    s.put("ns", "k", {"a": 1})
    assert s.get("ns", "k") == {"a": 1} and s.items("ns") == {"k": {"a": 1}}
    s.delete("ns", "k")
    assert s.get("ns", "k", "gone") == "gone"
    first = s.outbox_add("StartTransaction", {"idTag": "A"}, 1)
    s.outbox_add("StopTransaction", {"meterStop": 5}, 1)
    s.outbox_attempt(first)
    assert s.outbox_first() == (first, "StartTransaction", {"idTag": "A"}, 1, 1) and s.outbox_len() == 2
    s.outbox_remove(first)
    assert [a for _, a, _, _ in s.outbox_all()] == ["StopTransaction"]
    n = s.next_local_tx()
    s.tx_save(n, 1, "A", {"meter_start_wh": 0})
    s.tx_set_id(n, 99)
    assert s.tx_open() == [(n, 1, "A", {"meter_start_wh": 0}, 99)] and s.tx_id(n) == 99
    s.auth_put("cache", "A", {"status": "Accepted"})
    assert s.auth_all("cache") == {"A": {"status": "Accepted"}}
    s.config_file_put("K", "v", "csms")
    assert s.config_file_get("K") == ("v", "csms")


def test_memory_stores_share_nothing_and_touch_no_disk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, b = MemoryStore(), MemoryStore()
    a.put("ns", "k", 1)
    assert b.get("ns", "k") is None and a.lock is None
    assert list(tmp_path.iterdir()) == []
    a.close()
    b.close()


# -- the per-directory lock ---------------------------------------------------------------------

def test_a_second_open_of_one_directory_is_refused_naming_it_and_the_pid(tmp_path):
    d = tmp_path / "state" / "CP-1"
    first = open_state_dir(d)
    with pytest.raises(StateDirLocked) as e:
        open_state_dir(d)
    assert e.value.pid == os.getpid() and e.value.directory == d
    assert str(e.value) == (f"state directory {d} is in use by another station (pid {os.getpid()}); "
                            "give each station its own --state-dir")
    first.put("ns", "k", 1)  # the holder is untouched
    first.close()
    again = open_state_dir(d)  # released by close
    assert again.get("ns", "k") == 1
    again.close()


HOLDER = """
import sys, time
from station.store import open_state_dir
s = open_state_dir(sys.argv[1])
print("ready", flush=True)
time.sleep(60)
"""


def test_the_lock_holds_across_processes_and_kill_9_releases_it(tmp_path):
    d = tmp_path / "state"
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(d)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        with pytest.raises(StateDirLocked) as e:
            open_state_dir(d)
        assert e.value.pid == child.pid and f"(pid {child.pid})" in str(e.value)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        s = open_state_dir(d)  # the kernel dropped the dead holder's lock
        assert (d / "station.lock").read_text().strip() == str(os.getpid())
        s.close()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)


@pytest.mark.parametrize("make", ["file-in-the-way", "parent-is-a-file"])
def test_an_unusable_directory_is_one_line_naming_it(tmp_path, make):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    d = blocker if make == "file-in-the-way" else blocker / "state"
    with pytest.raises(StoreError) as e:
        open_state_dir(d)
    assert str(e.value).startswith(f"state directory {d}: ") and "\n" not in str(e.value)


def test_an_unreadable_state_file_is_one_line(tmp_path):
    d = tmp_path / "state"
    d.mkdir()
    (d / DB_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError) as e:
        open_state_dir(d)
    assert str(e.value).startswith(f"state file {d / DB_NAME}: ")
    open_state_dir(tmp_path / "other").close()  # and the failed open left no lock behind
    (d / DB_NAME).unlink()
    open_state_dir(d).close()


# -- the first release's shared default directory -----------------------------------------------

def test_the_shared_default_state_file_is_adopted_once(tmp_path):
    legacy = tmp_path / "state"
    first_release_file(legacy / DB_NAME)
    own = legacy / "CP-1"
    s = open_state_dir(own)
    s.close()
    (own / DB_NAME).unlink()  # nothing of its own yet
    for suffix in ("-wal", "-shm"):
        (own / f"{DB_NAME}{suffix}").unlink(missing_ok=True)
    assert adopt_legacy_state(legacy, own) is True
    assert not (legacy / DB_NAME).exists()
    s = open_state_dir(own)
    assert [r[2] for r in s.tx_open()] == ["CARD"] and s.outbox_len() == 1
    s.close()
    first_release_file(legacy / DB_NAME)
    assert adopt_legacy_state(legacy, own) is False  # it has its own now: never overwritten
    assert (legacy / DB_NAME).exists()


# -- the runtime opens the station's own directory ---------------------------------------------

async def test_the_runtime_defaults_to_state_per_id_locked(tmp_path, monkeypatch, caplog):
    from station.config import StationConfig
    from station.runtime import Runtime

    monkeypatch.chdir(tmp_path)
    first_release_file(tmp_path / "state" / DB_NAME)  # ./state as the first release left it
    a = Runtime(StationConfig(id="CP-A", simulated=True))
    b = Runtime(StationConfig(id="CP-B", simulated=True))
    try:
        assert Path(a.store.path) == Path("state") / "CP-A" / DB_NAME
        assert Path(b.store.path) == Path("state") / "CP-B" / DB_NAME
        assert [r[2] for r in a.store.tx_open()] == ["CARD"] and b.store.tx_open() == []  # adopted by one only
        assert "moved to state/CP-A" in caplog.text
        with pytest.raises(StateDirLocked) as e:
            Runtime(StationConfig(id="CP-A", simulated=True))
        assert e.value.directory == Path("state") / "CP-A"
    finally:
        await a.close()
        await b.close()
    again = Runtime(StationConfig(id="CP-A", simulated=True))  # released by close
    await again.close()


async def test_the_runtime_keeps_memory_state_on_no_disk(tmp_path, monkeypatch):
    from station.config import StationConfig
    from station.runtime import Runtime

    monkeypatch.chdir(tmp_path)
    rt = Runtime(StationConfig(id="CP-M", state_dir=":memory:", simulated=True))
    assert isinstance(rt.store, MemoryStore)
    await rt.close()
    assert list(tmp_path.iterdir()) == []


# -- issue 8: atomic pairs, unique ids, bounds ----------------------------------------------------
def test_atomic_writes_all_or_nothing(tmp_path):
    """Two writes in atomic(): an exception between them (a crash) leaves neither on disk."""
    path = tmp_path / DB_NAME
    s = Store(path)
    seq = s.outbox_add("StartTransaction", {"connectorId": 1}, 1)
    s.tx_save(1, 1, "TAG", {"meter_start_wh": 0})
    with pytest.raises(RuntimeError), s.atomic():
        s.outbox_remove(seq)
        raise RuntimeError("power cut between the two writes")
        s.tx_set_id(1, 5)  # noqa: B018 - never reached
    assert s.outbox_len() == 1 and s.tx_id(1) is None
    with s.atomic():
        s.outbox_remove(seq)
        with s.atomic():  # nested: joins the outer transaction
            s.tx_set_id(1, 5)
    s.close()
    again = Store(path)
    assert again.outbox_len() == 0 and again.tx_id(1) == 5
    again.close()


def test_atomic_is_uncommitted_until_it_ends(tmp_path):
    """Another connection (what a restart after kill -9 would read) sees nothing of an unfinished atomic()."""
    path = tmp_path / DB_NAME
    s = Store(path)
    seq = s.outbox_add("StartTransaction", {}, 1)
    other = sqlite3.connect(str(path))
    with s.atomic():
        s.outbox_remove(seq)
        assert other.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 1
    assert other.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
    other.close()
    s.close()


def test_a_queued_message_keeps_its_unique_id_across_reopening(tmp_path):
    path = tmp_path / DB_NAME
    s = Store(path)
    seq = s.outbox_add("StartTransaction", {}, 1)
    ids = iter(["first-id", "second-id"])
    assert s.outbox_unique_id(seq, lambda: next(ids)) == "first-id"
    s.close()
    again = Store(path)
    assert again.outbox_unique_id(seq, lambda: next(ids)) == "first-id"  # the same after a restart
    again.close()


def test_the_authorization_cache_keeps_the_most_recent_entries(tmp_path):
    s = Store(tmp_path / DB_NAME)
    evicted = []
    for n in range(7):
        evicted += s.auth_put("cache", f"T{n}", {"status": "Accepted"}, keep=5)
    assert evicted == ["T0", "T1"]
    s.auth_put("cache", "T2", {"status": "Blocked"}, keep=5)  # written again: the most recent now
    assert s.auth_put("cache", "T7", {"status": "Accepted"}, keep=5) == ["T3"]
    assert set(s.auth_all("cache")) == {"T2", "T4", "T5", "T6", "T7"}
    s.auth_put("local", "L1", {"status": "Accepted"})  # other kinds are not counted
    assert len(s.auth_all("cache")) == 5
    s.close()


def test_closed_transactions_are_pruned_beyond_the_bound(tmp_path):
    s = Store(tmp_path / DB_NAME)
    for n in range(1, 31):
        s.tx_save(n, 1, "TAG", {"meter_start_wh": n}, open_=n == 3)  # 3 is still open
    s.outbox_add("StopTransaction", {}, 5)  # 5's StopTransaction is not delivered yet
    s.tx_prune(keep=10)
    left = {r[0] for r in s.db.execute("SELECT local_id FROM transactions")}
    assert left == {3, 5} | set(range(21, 31))
    s.close()

"""The station's persistent state: one SQLite file (WAL) under the station's own state directory.

Holds OCPP configuration values, the transaction outbox, transactions, the authorization cache
and local list, and small key/value facts (availability, boot counters). Every write is committed
at once with ``synchronous=FULL`` (each commit reaches the disk before it returns), so a power
cut loses nothing that was acknowledged: a queued StopTransaction is never lost. Writes that
belong together (a transaction closed and its StopTransaction queued; the CSMS's transactionId
and the StartTransaction's removal from the queue) go in one :meth:`Store.atomic` block: all of
them reach the disk or none. A queued message keeps the OCPP-J unique id it was first sent with.
Bounded: closed transactions beyond ``TX_KEEP_CLOSED`` are pruned, the authorization cache keeps
``AUTH_CACHE_MAX`` entries.

- :func:`open_state_dir` opens a station's directory: it takes the directory's lock first
  (``station.lock``, ``fcntl.flock``: a second process on the same directory is refused with
  :class:`StateDirLocked`, naming the directory and the pid holding it; the kernel releases the
  lock when the holder dies, even by ``kill -9``), then opens ``station.sqlite`` in it.
- ``Store(path)`` opens a file without the lock (tests); ``Store(":memory:")`` or
  :class:`MemoryStore` is the same interface in memory (tests): nothing on disk, no lock.
- :class:`DictStore` is the same interface on plain dicts, without SQLite (a fleet of thousands of
  stations in one process: no connection, no page cache per station; values are kept as their
  JSON text, so what is read is a copy, as from SQLite).
- The schema is built by numbered migrations (``PRAGMA user_version``): a file written by an
  earlier release is upgraded in place when it is opened; a file from a newer release is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

DB_NAME = "station.sqlite"
LOCK_NAME = "station.lock"

# Version 1: the schema of the first release (it wrote user_version 1 with exactly these tables).
SCHEMA_V1 = """
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
SCHEMA = SCHEMA_V1  # the name the first release used


def _v1(db: sqlite3.Connection) -> None:
    for statement in SCHEMA_V1.split(";"):
        if statement.strip():
            db.execute(statement)


def _v2(db: sqlite3.Connection) -> None:
    # when each value was last written (wall clock; NULL for values the first release wrote)
    db.execute("ALTER TABLE kv ADD COLUMN updated_at REAL")
    # --ocpp-config bookkeeping, per key: the value the file had when it was last applied, and who
    # set the value in use (file / csms). The first release only kept one flag, "applied once".
    db.execute(
        "CREATE TABLE config_file (key TEXT PRIMARY KEY, file_value TEXT NOT NULL, source TEXT NOT NULL)"
    )
    db.execute("DELETE FROM kv WHERE ns='station' AND key='ocpp_config_applied'")


def _v3(db: sqlite3.Connection) -> None:
    # the OCPP-J unique id a queued message was (or is about to be) sent with: a message resent
    # after a power cut carries the same id, so the CSMS can recognise a repeat
    db.execute("ALTER TABLE outbox ADD COLUMN unique_id TEXT")
    # when a cache entry was last written (the cache keeps the AUTH_CACHE_MAX most recent)
    db.execute("ALTER TABLE auth ADD COLUMN written_at REAL")


def _v4(db: sqlite3.Connection) -> None:
    # idTags are case-insensitive (CiString; station.core.auth.id_tag_key folds ASCII letters, as
    # NOCASE does): one entry per idTag whatever its case. Of entries that differ only in case,
    # the one written last stays.
    db.execute("CREATE TABLE auth_v4 (kind TEXT NOT NULL, id_tag TEXT NOT NULL COLLATE NOCASE, info TEXT NOT NULL, "
               "written_at REAL, PRIMARY KEY (kind, id_tag))")
    db.execute("INSERT OR REPLACE INTO auth_v4(kind, id_tag, info, written_at) SELECT kind, id_tag, info, written_at "
               "FROM auth ORDER BY written_at IS NOT NULL, written_at, rowid")
    db.execute("DROP TABLE auth")
    db.execute("ALTER TABLE auth_v4 RENAME TO auth")


# MIGRATIONS[n - 1] brings a file from user_version n - 1 to n. Append only; never edit one
# that was released (a file out there already has it).
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3, _v4]
SCHEMA_VERSION = len(MIGRATIONS)


# Bounds (docs/reliability.md "Bounds"): closed transactions kept once the CSMS has them (open ones
# and those a queued message refers to are always kept), and authorization cache entries.
TX_KEEP_CLOSED = 200
AUTH_CACHE_MAX = 1000


class StoreError(Exception):
    """The state cannot be opened or used; the message is one line for the field engineer."""


class StateDirLocked(StoreError):
    """Another station process holds the state directory."""

    def __init__(self, directory: Path, pid: int | None) -> None:
        held = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"state directory {directory} is in use by another station ({held}); "
            "give each station its own --state-dir"
        )
        self.directory = directory
        self.pid = pid


class DirLock:
    """An exclusive ``flock`` on ``<directory>/station.lock`` holding our pid, until :meth:`release`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / LOCK_NAME
        try:
            self.fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreError(f"state directory {directory}: cannot create {LOCK_NAME} ({e.strerror})") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = self._holder()
            os.close(self.fd)
            self.fd = None
            raise StateDirLocked(directory, pid) from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def _holder(self) -> int | None:
        assert self.fd is not None
        try:
            return int(os.pread(self.fd, 32, 0).decode().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


def storage_full(e: BaseException) -> bool:
    """The error says the disk (or SQLite's page limit) or the memory is full."""
    if isinstance(e, MemoryError):
        return True
    return isinstance(e, sqlite3.OperationalError) and (
        getattr(e, "sqlite_errorname", "") == "SQLITE_FULL" or "database or disk is full" in str(e))


class _Watched:
    """The SQLite connection, telling the store's ``on_full`` of a full disk or memory (the
    security event MemoryExhaustion); the error itself goes on to the caller unchanged."""

    def __init__(self, db: sqlite3.Connection, store: Store) -> None:
        self._db = db
        self._store = store

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except (sqlite3.OperationalError, MemoryError) as e:
            if storage_full(e) and self._store.on_full is not None:
                try:
                    self._store.on_full(e)
                except Exception:  # noqa: BLE001 - a failing report must not hide the store's error
                    pass
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


class Store:
    def __init__(self, path: str | Path, lock: DirLock | None = None) -> None:
        self.path = str(path)
        self.lock = lock
        self.on_full: Callable[[BaseException], None] | None = None  # a write found the disk or memory full
        self.adopted_from: Path | None = None  # see open_state_dir
        self._depth = 0  # atomic() nesting
        memory = self.path == ":memory:"
        self.persistent = not memory  # whatever is written survives a restart
        try:
            if not memory:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self.db = _Watched(sqlite3.connect(self.path, isolation_level=None, check_same_thread=False), self)
            if not memory:
                self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except sqlite3.DatabaseError as e:
            if lock is not None:
                lock.release()
            raise StoreError(f"state file {self.path}: {e}") from None
        except OSError as e:
            if lock is not None:
                lock.release()
            raise StoreError(f"state directory {Path(self.path).parent}: {e.strerror or e}") from None

    @property
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        have = self.version
        if have > SCHEMA_VERSION:
            raise StoreError(
                f"state file {self.path} was written by a newer release (schema {have}; this one knows "
                f"up to {SCHEMA_VERSION}): upgrade the station, or start it on an empty --state-dir"
            )
        for n in range(have + 1, SCHEMA_VERSION + 1):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                MIGRATIONS[n - 1](self.db)
                self.db.execute(f"PRAGMA user_version={n}")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        # a read-only file opens fine and fails at the first write: find out now, not mid-session
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("INSERT OR IGNORE INTO kv(ns, key, value) VALUES('store', 'created', '1')")
        self.db.execute("COMMIT")

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """Writes that belong together: all of them reach the disk, or none (one SQLite
        transaction, committed with synchronous=FULL). Nested uses join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self.db.execute("ROLLBACK")
            raise
        self._depth = 0
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    # -- key/value ---------------------------------------------------------------------------
    def get(self, ns: str, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM kv WHERE ns=? AND key=?", (ns, key)).fetchone()
        return json.loads(row[0]) if row else default

    def put(self, ns: str, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT INTO kv(ns, key, value, updated_at) VALUES(?,?,?,?) "
            "ON CONFLICT(ns, key) DO UPDATE SET value=excluded.value, updated_at=excluded.updated_at",
            (ns, key, json.dumps(value), time.time()),
        )

    def updated_at(self, ns: str, key: str) -> float | None:
        """When the value was last written (seconds since the epoch); None if unknown or absent."""
        row = self.db.execute("SELECT updated_at FROM kv WHERE ns=? AND key=?", (ns, key)).fetchone()
        return row[0] if row else None

    def items(self, ns: str) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM kv WHERE ns=?", (ns,))}

    def delete(self, ns: str, key: str) -> None:
        self.db.execute("DELETE FROM kv WHERE ns=? AND key=?", (ns, key))

    # -- outbox ------------------------------------------------------------------------------
    def outbox_add(self, action: str, payload: dict, tx_local: int | None = None) -> int:
        cur = self.db.execute(
            "INSERT INTO outbox(action, payload, tx_local) VALUES(?,?,?)", (action, json.dumps(payload), tx_local)
        )
        return int(cur.lastrowid or 0)

    def outbox_first(self) -> tuple[int, str, dict, int | None, int] | None:
        row = self.db.execute("SELECT seq, action, payload, tx_local, attempts FROM outbox ORDER BY seq LIMIT 1").fetchone()
        if row is None:
            return None
        return row[0], row[1], json.loads(row[2]), row[3], row[4]

    def outbox_unique_id(self, seq: int, new: Callable[[], str]) -> str:
        """The OCPP-J unique id of a queued message: the one it was sent with before, or ``new()``,
        stored (committed) before this returns, so a resend after a power cut uses the same id."""
        row = self.db.execute("SELECT unique_id FROM outbox WHERE seq=?", (seq,)).fetchone()
        if row is not None and row[0]:
            return str(row[0])
        uid = new()
        self.db.execute("UPDATE outbox SET unique_id=? WHERE seq=?", (uid, seq))
        return uid

    def outbox_all(self) -> list[tuple[int, str, dict, int | None]]:
        return [
            (r[0], r[1], json.loads(r[2]), r[3])
            for r in self.db.execute("SELECT seq, action, payload, tx_local FROM outbox ORDER BY seq")
        ]

    def outbox_attempt(self, seq: int) -> None:
        self.db.execute("UPDATE outbox SET attempts = attempts + 1 WHERE seq=?", (seq,))

    def outbox_remove(self, seq: int) -> None:
        self.db.execute("DELETE FROM outbox WHERE seq=?", (seq,))

    def outbox_len(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    # -- transactions ------------------------------------------------------------------------
    def next_local_tx(self) -> int:
        n = int(self.get("station", "tx_counter", 0)) + 1
        self.put("station", "tx_counter", n)
        return n

    def tx_save(self, local_id: int, connector_id: int, id_tag: str, data: dict, open_: bool = True) -> None:
        self.db.execute(
            "INSERT INTO transactions(local_id, connector_id, id_tag, data, open) VALUES(?,?,?,?,?) "
            "ON CONFLICT(local_id) DO UPDATE SET data=excluded.data, open=excluded.open",
            (local_id, connector_id, id_tag, json.dumps(data), int(open_)),
        )

    def tx_set_id(self, local_id: int, transaction_id: int | None) -> None:
        self.db.execute("UPDATE transactions SET transaction_id=? WHERE local_id=?", (transaction_id, local_id))

    def tx_id(self, local_id: int) -> int | None:
        row = self.db.execute("SELECT transaction_id FROM transactions WHERE local_id=?", (local_id,)).fetchone()
        return row[0] if row else None

    def tx_open(self) -> list[tuple[int, int, str, dict, int | None]]:
        return [
            (r[0], r[1], r[2], json.loads(r[3]), r[4])
            for r in self.db.execute(
                "SELECT local_id, connector_id, id_tag, data, transaction_id FROM transactions WHERE open=1"
            )
        ]

    def tx_prune(self, keep: int | None = None) -> None:
        """Forget closed transactions beyond the ``keep`` most recent ones; open ones and those a
        queued message refers to always stay."""
        self.db.execute(
            "DELETE FROM transactions WHERE open=0 AND local_id NOT IN "
            "(SELECT local_id FROM transactions ORDER BY local_id DESC LIMIT ?) "
            "AND local_id NOT IN (SELECT tx_local FROM outbox WHERE tx_local IS NOT NULL)",
            (TX_KEEP_CLOSED if keep is None else keep,),
        )

    def tx_of(self, id_tag: str) -> list[tuple[int, int, dict, bool]]:
        """The transactions kept for ``id_tag`` (open and recently closed), oldest first:
        (local id, connector, data, open) (2.0.1 CustomerInformation)."""
        return [
            (r[0], r[1], json.loads(r[2]), bool(r[3]))
            for r in self.db.execute(
                "SELECT local_id, connector_id, data, open FROM transactions WHERE id_tag=? COLLATE NOCASE ORDER BY local_id", (id_tag,)
            )
        ]

    def tx_forget(self, id_tag: str) -> int:
        """Forget the closed transactions of ``id_tag`` no queued message refers to; how many."""
        cur = self.db.execute(
            "DELETE FROM transactions WHERE id_tag=? COLLATE NOCASE AND open=0 "
            "AND local_id NOT IN (SELECT tx_local FROM outbox WHERE tx_local IS NOT NULL)", (id_tag,))
        return int(cur.rowcount or 0)

    # -- authorization cache / local list (idTags: case-insensitive keys) ---------------------
    def auth_all(self, kind: str) -> dict[str, dict]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT id_tag, info FROM auth WHERE kind=?", (kind,))}

    def auth_put(self, kind: str, id_tag: str, info: dict, keep: int | None = None) -> list[str]:
        """Store an entry (it replaces the idTag's entry in any case: the key is case-insensitive). ``keep``: at most this many entries of ``kind`` stay, the least recently
        written ones go (the authorization cache: ``AUTH_CACHE_MAX``); returns the id tags evicted."""
        with self.atomic():
            self.db.execute(
                "INSERT INTO auth(kind, id_tag, info, written_at) VALUES(?,?,?,?) "
                "ON CONFLICT(kind, id_tag) DO UPDATE SET id_tag=excluded.id_tag, info=excluded.info, "
                "written_at=excluded.written_at",
                (kind, id_tag, json.dumps(info), self._tick()),
            )
            if keep is None:
                return []
            evicted = [r[0] for r in self.db.execute(
                "SELECT id_tag FROM auth WHERE kind=? ORDER BY written_at DESC, rowid DESC LIMIT -1 OFFSET ?",
                (kind, max(0, keep)),
            )]
            self.db.executemany("DELETE FROM auth WHERE kind=? AND id_tag=?", [(kind, t) for t in evicted])
            return evicted

    def _tick(self) -> float:
        """A strictly increasing write time (wall clock; never equal to or below the last one)."""
        now = time.time()
        last = getattr(self, "_last_tick", 0.0)
        self._last_tick = now if now > last else last + 1e-6
        return self._last_tick

    def auth_remove(self, kind: str, id_tag: str) -> None:
        self.db.execute("DELETE FROM auth WHERE kind=? AND id_tag=?", (kind, id_tag))

    def auth_clear(self, kind: str) -> None:
        self.db.execute("DELETE FROM auth WHERE kind=?", (kind,))

    # -- --ocpp-config bookkeeping -----------------------------------------------------------
    def config_file_get(self, key: str) -> tuple[str, str] | None:
        """(file value last applied, source of the value in use: "file" or "csms") for one key."""
        row = self.db.execute("SELECT file_value, source FROM config_file WHERE key=?", (key,)).fetchone()
        return (row[0], row[1]) if row else None

    def config_file_put(self, key: str, file_value: str, source: str) -> None:
        self.db.execute(
            "INSERT INTO config_file(key, file_value, source) VALUES(?,?,?) "
            "ON CONFLICT(key) DO UPDATE SET file_value=excluded.file_value, source=excluded.source",
            (key, file_value, source),
        )


class MemoryStore(Store):
    """The same interface, in memory: nothing on disk, no lock (tests, fleets)."""

    def __init__(self) -> None:
        super().__init__(":memory:")


def open_state_dir(directory: str | Path, adopt_from: str | Path | None = None) -> Store:
    """Lock a station's state directory (created if missing) and open its store.

    ``adopt_from``: the shared default directory of the first release (see
    :func:`adopt_legacy_state`); its state file is moved in, under the lock, when this directory
    has none yet (``store.adopted_from`` then says from where).

    Raises :class:`StateDirLocked` when another process holds it, :class:`StoreError` when it
    cannot be created, written or read (one line naming the directory and the problem)."""
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise StoreError(f"state directory {d}: not a directory")
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"state directory {d}: cannot create it ({e.strerror or e})") from None
    if not os.access(d, os.W_OK | os.X_OK):
        raise StoreError(f"state directory {d}: not writable by this user")
    lock = DirLock(d)
    adopted = None
    try:
        if adopt_from is not None and adopt_legacy_state(adopt_from, d):
            adopted = Path(adopt_from) / DB_NAME
    except StoreError:
        lock.release()
        raise
    store = Store(d / DB_NAME, lock=lock)
    store.adopted_from = adopted
    return store


def adopt_legacy_state(legacy_dir: str | Path, directory: str | Path) -> bool:
    """Move the state file the first release kept in the shared default directory (``state/``,
    the same for every station id) into this station's own directory, once, if it has none yet.

    The caller holds the lock of ``directory``; the legacy directory is locked while moving."""
    legacy, d = Path(legacy_dir), Path(directory)
    src, dst = legacy / DB_NAME, d / DB_NAME
    if not src.exists() or dst.exists():
        return False
    try:
        lock = DirLock(legacy)
    except StateDirLocked:  # a station runs on it (given as its --state-dir): it is that one's
        return False
    try:
        db = sqlite3.connect(str(src), isolation_level=None)
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything into the main file
        finally:
            db.close()
        d.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(f"{src}{suffix}")
    except (OSError, sqlite3.DatabaseError) as e:
        raise StoreError(f"state file {src}: cannot move it to {d} ({e})") from None
    finally:
        lock.release()
    return True


class DictStore:
    """The interface of :class:`Store` on dicts, in memory, without SQLite (fleets). ``atomic()``
    needs no rollback here: a write that fails half way cannot happen in memory."""

    persistent = False
    path = ":memory:"

    def __init__(self) -> None:
        self.lock = None
        self.on_full: Callable[[BaseException], None] | None = None
        self.adopted_from: Path | None = None
        self._kv: dict[tuple[str, str], tuple[str, float]] = {}
        self._outbox: dict[int, list] = {}  # seq -> [action, payload JSON, tx_local, attempts, unique_id]
        self._seq = 0
        self._tx: dict[int, list] = {}  # local_id -> [connector_id, id_tag, data JSON, transaction_id, open]
        self._auth: dict[str, dict[str, tuple[str, float]]] = {}
        self._config_file: dict[str, tuple[str, str]] = {}
        self._last_tick = 0.0

    version = SCHEMA_VERSION

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        yield

    def close(self) -> None:
        pass

    # -- key/value ---------------------------------------------------------------------------
    def get(self, ns: str, key: str, default: Any = None) -> Any:
        v = self._kv.get((ns, key))
        return json.loads(v[0]) if v is not None else default

    def put(self, ns: str, key: str, value: Any) -> None:
        self._kv[(ns, key)] = (json.dumps(value), time.time())

    def updated_at(self, ns: str, key: str) -> float | None:
        v = self._kv.get((ns, key))
        return v[1] if v is not None else None

    def items(self, ns: str) -> dict[str, Any]:
        return {k: json.loads(v[0]) for (n, k), v in self._kv.items() if n == ns}

    def delete(self, ns: str, key: str) -> None:
        self._kv.pop((ns, key), None)

    # -- outbox ------------------------------------------------------------------------------
    def outbox_add(self, action: str, payload: dict, tx_local: int | None = None) -> int:
        self._seq += 1
        self._outbox[self._seq] = [action, json.dumps(payload), tx_local, 0, None]
        return self._seq

    def outbox_first(self) -> tuple[int, str, dict, int | None, int] | None:
        for seq, (action, payload, tx_local, attempts, _) in self._outbox.items():
            return seq, action, json.loads(payload), tx_local, attempts
        return None

    def outbox_unique_id(self, seq: int, new: Callable[[], str]) -> str:
        row = self._outbox.get(seq)
        if row is not None and row[4]:
            return str(row[4])
        uid = new()
        if row is not None:
            row[4] = uid
        return uid

    def outbox_all(self) -> list[tuple[int, str, dict, int | None]]:
        return [(seq, r[0], json.loads(r[1]), r[2]) for seq, r in self._outbox.items()]

    def outbox_attempt(self, seq: int) -> None:
        row = self._outbox.get(seq)
        if row is not None:
            row[3] += 1

    def outbox_remove(self, seq: int) -> None:
        self._outbox.pop(seq, None)

    def outbox_len(self) -> int:
        return len(self._outbox)

    # -- transactions ------------------------------------------------------------------------
    def next_local_tx(self) -> int:
        n = int(self.get("station", "tx_counter", 0)) + 1
        self.put("station", "tx_counter", n)
        return n

    def tx_save(self, local_id: int, connector_id: int, id_tag: str, data: dict, open_: bool = True) -> None:
        row = self._tx.get(local_id)
        if row is None:
            self._tx[local_id] = [connector_id, id_tag, json.dumps(data), None, bool(open_)]
        else:
            row[2], row[4] = json.dumps(data), bool(open_)

    def tx_set_id(self, local_id: int, transaction_id: int | None) -> None:
        row = self._tx.get(local_id)
        if row is not None:
            row[3] = transaction_id

    def tx_id(self, local_id: int) -> int | None:
        row = self._tx.get(local_id)
        return row[3] if row is not None else None

    def tx_open(self) -> list[tuple[int, int, str, dict, int | None]]:
        return [(lid, r[0], r[1], json.loads(r[2]), r[3]) for lid, r in sorted(self._tx.items()) if r[4]]

    def tx_prune(self, keep: int | None = None) -> None:
        keep = TX_KEEP_CLOSED if keep is None else keep
        recent = set(sorted(self._tx, reverse=True)[:keep])
        queued = {r[2] for r in self._outbox.values() if r[2] is not None}
        for lid in [lid for lid, r in self._tx.items() if not r[4] and lid not in recent and lid not in queued]:
            del self._tx[lid]

    # -- authorization cache / local list ----------------------------------------------------
    def auth_all(self, kind: str) -> dict[str, dict]:
        return {tag: json.loads(v[0]) for tag, v in self._auth.get(kind, {}).items()}

    def auth_put(self, kind: str, id_tag: str, info: dict, keep: int | None = None) -> list[str]:
        entries = self._auth.setdefault(kind, {})
        entries.pop(id_tag, None)  # re-inserted last: the dict's order is the order of writing
        entries[id_tag] = (json.dumps(info), self._tick())
        if keep is None or len(entries) <= max(0, keep):
            return []
        evicted = list(entries)[: len(entries) - max(0, keep)]
        for tag in evicted:
            del entries[tag]
        return evicted[::-1]

    def _tick(self) -> float:
        now = time.time()
        self._last_tick = now if now > self._last_tick else self._last_tick + 1e-6
        return self._last_tick

    def auth_remove(self, kind: str, id_tag: str) -> None:
        self._auth.get(kind, {}).pop(id_tag, None)

    def auth_clear(self, kind: str) -> None:
        self._auth.pop(kind, None)

    # -- --ocpp-config bookkeeping -----------------------------------------------------------
    def config_file_get(self, key: str) -> tuple[str, str] | None:
        return self._config_file.get(key)

    def config_file_put(self, key: str, file_value: str, source: str) -> None:
        self._config_file[key] = (file_value, source)

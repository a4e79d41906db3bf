"""The station's persistent state: one SQLite file (WAL) under the state directory.

Holds OCPP configuration values, the transaction outbox, transactions, the authorization cache
and local list, and small key/value facts (availability, boot counters). Writes are committed at
once so that a power cut loses nothing that was acknowledged.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

SCHEMA = """
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


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self.db.close()

    # -- key/value ---------------------------------------------------------------------------
    def get(self, ns: str, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM kv WHERE ns=? AND key=?", (ns, key)).fetchone()
        return json.loads(row[0]) if row else default

    def put(self, ns: str, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT INTO kv(ns, key, value) VALUES(?,?,?) ON CONFLICT(ns, key) DO UPDATE SET value=excluded.value",
            (ns, key, json.dumps(value)),
        )

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

    def tx_set_id(self, local_id: int, transaction_id: int) -> None:
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

    def tx_prune(self, keep: int = 200) -> None:
        self.db.execute(
            "DELETE FROM transactions WHERE open=0 AND local_id NOT IN "
            "(SELECT local_id FROM transactions ORDER BY local_id DESC LIMIT ?) "
            "AND local_id NOT IN (SELECT tx_local FROM outbox WHERE tx_local IS NOT NULL)",
            (keep,),
        )

    # -- authorization cache / local list ----------------------------------------------------
    def auth_all(self, kind: str) -> dict[str, dict]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT id_tag, info FROM auth WHERE kind=?", (kind,))}

    def auth_put(self, kind: str, id_tag: str, info: dict) -> None:
        self.db.execute(
            "INSERT INTO auth(kind, id_tag, info) VALUES(?,?,?) ON CONFLICT(kind, id_tag) DO UPDATE SET info=excluded.info",
            (kind, id_tag, json.dumps(info)),
        )

    def auth_remove(self, kind: str, id_tag: str) -> None:
        self.db.execute("DELETE FROM auth WHERE kind=? AND id_tag=?", (kind, id_tag))

    def auth_clear(self, kind: str) -> None:
        self.db.execute("DELETE FROM auth WHERE kind=?", (kind,))

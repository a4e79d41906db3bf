"""The recording CSMS of the chaos campaign (bench/chaos.py), in its own process so that it can be
killed with SIGKILL and restarted on the same port.

    python bench/chaos_csms.py --port PORT --record FILE [--mode normal|slow:S|silent]

It answers an OCPP 1.6 station like tests/integration/harness.py ScriptedCsms does (every boot
Accepted, every idTag Accepted, transaction ids counting from 1) and records every call it
receives, as one JSON line in FILE, *before* answering it; the line reaches the file (``write``
and ``flush``: the kernel keeps it across a SIGKILL of this process) before the answer leaves:

    {"ev": "call", "conn": 3, "uid": "...", "action": "StartTransaction", "payload": {...},
     "tx": 17, "at": 12.5, "schema": null}
    {"ev": "answer", "uid": "...", "action": "StartTransaction"}
    {"ev": "connect", "conn": 3, "path": "/ocpp/CS1"}

A StartTransaction whose unique id and payload it has seen before (a retry of the same message) is
answered with the transaction id it gave the first time; one with a new unique id gets a new transaction
id, as a CSMS that does not recognise a message sent again under another id would do. After a
restart it reads FILE back, so transaction ids and unique ids carry on.

Modes, changed with a line on stdin (``normal``, ``slow 2.5``, ``silent``): slow delays every
answer by that many seconds; silent records calls and never answers them. For every answer sent
it writes ``answered <action> <uid>`` on stdout (the campaign uses it to kill the station a few
milliseconds after an answer).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from websockets.asyncio.server import ServerConnection, serve  # noqa: E402

from station import ocpp_schema  # noqa: E402


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class RecordingCsms:
    def __init__(self, record: Path, mode: str = "normal") -> None:
        self.record_path = record
        self.tx_of_uid: dict[str, int] = {}
        self.next_tx = 1
        self.conns = 0
        if record.exists():  # a restart: carry on numbering
            for line in record.read_text().splitlines():
                try:
                    r = json.loads(line)
                except ValueError:
                    continue  # a line cut by the kill
                if r.get("ev") == "connect":
                    self.conns = max(self.conns, r["conn"])
                if r.get("ev") == "call" and r.get("tx") is not None:
                    self.tx_of_uid.setdefault(self.retry_key(r["uid"], r["payload"]), r["tx"])
                    self.next_tx = max(self.next_tx, r["tx"] + 1)
        self.out = open(record, "a")  # noqa: SIM115 - open for the life of the process
        self.delay = 0.0
        self.silent = False
        self.set_mode(mode)

    @staticmethod
    def retry_key(uid: str, payload: Any) -> str:
        """A message sent again: the same unique id *and* the same payload (a station may use a unique
        id again for another message after a restart; OCPP asks uniqueness per connection only)."""
        return uid + "|" + json.dumps(payload, sort_keys=True)

    def set_mode(self, mode: str) -> None:
        words = mode.replace(":", " ").split()
        if not words:
            return
        self.silent = words[0] == "silent"
        self.delay = float(words[1]) if words[0] == "slow" and len(words) > 1 else 0.0

    def write(self, rec: dict) -> None:
        self.out.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self.out.flush()

    async def session(self, ws: ServerConnection) -> None:
        self.conns += 1
        conn = self.conns
        self.write({"ev": "connect", "conn": conn, "path": ws.request.path if ws.request else "", "at": time.time()})
        try:
            async for raw in ws:
                await self.on_frame(ws, conn, raw)
        except Exception:  # the station went away: nothing to answer
            pass

    async def on_frame(self, ws: ServerConnection, conn: int, raw: str | bytes) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            self.write({"ev": "garbage", "conn": conn, "raw": str(raw)[:200]})
            return
        if not isinstance(msg, list) or not msg or msg[0] != 2 or len(msg) != 4:
            return  # CallResult / CallError: this CSMS sends no calls
        _, uid, action, payload = msg
        schema = None
        try:
            ocpp_schema.validate("1.6", action, payload)
        except Exception as e:
            schema = str(e)[:200]
        tx = None
        if action == "StartTransaction":
            key = self.retry_key(uid, payload)
            tx = self.tx_of_uid.get(key)
            if tx is None:
                tx = self.tx_of_uid[key] = self.next_tx
                self.next_tx += 1
        self.write({"ev": "call", "conn": conn, "uid": uid, "action": action, "payload": payload, "tx": tx,
                    "at": time.time(), "schema": schema, "mode": "silent" if self.silent else self.delay})
        if self.silent:
            return
        if self.delay:
            await asyncio.sleep(self.delay)
            if self.silent:  # went silent while this answer waited
                return
        await ws.send(json.dumps([3, uid, self.answer(action, payload, tx)]))
        self.write({"ev": "answer", "uid": uid, "action": action})
        sys.stdout.write(f"answered {action} {uid}\n")
        sys.stdout.flush()

    @staticmethod
    def answer(action: str, p: dict, tx: int | None) -> dict:
        if action == "BootNotification":
            return {"status": "Accepted", "currentTime": now_iso(), "interval": 300}
        if action == "Heartbeat":
            return {"currentTime": now_iso()}
        if action in ("Authorize", "StopTransaction"):
            return {"idTagInfo": {"status": "Accepted"}}
        if action == "StartTransaction":
            return {"transactionId": tx, "idTagInfo": {"status": "Accepted"}}
        if action == "DataTransfer":
            return {"status": "Accepted"}
        return {}


async def read_commands(csms: RecordingCsms) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        csms.set_mode(line.decode().strip())


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--record", required=True)
    ap.add_argument("--mode", default="normal")
    a = ap.parse_args()
    csms = RecordingCsms(Path(a.record), a.mode)
    async with serve(csms.session, "127.0.0.1", a.port, subprotocols=["ocpp1.6"]):  # type: ignore[list-item]
        sys.stdout.write(f"ready {a.port}\n")
        sys.stdout.flush()
        await read_commands(csms)  # the campaign closed our stdin: it is done


if __name__ == "__main__":
    asyncio.run(main())

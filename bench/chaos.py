"""Power-loss and chaos campaign: does the station deliver every transaction message exactly once,
in order, whatever happens to its power, its CSMS and its network?

    .venv/bin/python bench/chaos.py [--kills 200] [--seed 1] [--csms-kills 20] [--link-drops 20]
                                    [--slow 10] [--silent 5] [--duration 3600] [--json FILE]

Loopback only, bounded (``--kills`` station kills, ``--duration`` seconds at most). It runs the
real station process (``python -m station run --sim``, tests/integration/harness.py
StationProcess) against a recording CSMS in its own process (bench/chaos_csms.py) and drives
charging sessions through the station's local API without pause (plug, swipe a card of its own
per session, charge a few seconds, swipe again or unplug to stop, unplug). Meanwhile, at random:

- ``kill -9`` of the station (power loss; restarted on the same state directory); some kills are
  aimed a few milliseconds after the CSMS answered a transaction message, where a non-atomic
  "sent / answered / removed" pair would show;
- ``kill -9`` of the CSMS (restarted on the same port a moment later);
- link drops (``POST /api/link``) of a few seconds;
- a slow CSMS (every answer delayed 0.3-5 s, under the station's 30 s call timeout) and a silent
  CSMS (records calls and answers none, for up to ``--silent-max`` seconds).

What the station had to deliver is known from three sources: every entry ever seen in its
outbox (its SQLite file is read, read-only, every 0.2 s and after every kill, when it is exactly
what the power cut left), every transaction ever seen in its transactions table or in
``GET /api/status``, and whatever reached the CSMS (it existed). At the end chaos stops, the CSMS
answers normally, and the campaign waits until the station's outbox is empty and no transaction
runs. It then compares with what the CSMS recorded and prints:

- messages expected / delivered / lost (StartTransaction, MeterValues, StopTransaction);
- duplicated: one message delivered under two unique ids (for StartTransaction an orphan: two
  transaction ids at the CSMS for one charging session); the same unique id and payload again is
  a retry, counted apart and harmless;
- reordered: per transaction, Start before its MeterValues (in sampling order) before its Stop;
- misattributed: a MeterValues or Stop carrying another session's transaction id;
- transactions started / stopped at the CSMS (every started one must be stopped).

Last, one clean session (charge 2.5 s, stop by card) shows the station still charges and reports.
Exit status 1 if anything is lost, duplicated, reordered, misattributed or left unstopped, or the
clean session fails; 2 if the campaign could not run (the station did not come up or never
emptied its outbox).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.harness import StationProcess, free_port  # noqa: E402

TX_ACTIONS = ("StartTransaction", "MeterValues", "StopTransaction")
SHORT = {"StartTransaction": "Start", "MeterValues": "MeterValues", "StopTransaction": "Stop"}

# the station's OCPP settings for the campaign: samples every 2 s (MeterValues to lose), quick retries,
# and sessions that may start offline (every session has a card of its own, unknown offline)
OCPP_CONFIG = {
    "MeterValueSampleInterval": "2",
    "TransactionMessageRetryInterval": "1",
    "AllowOfflineTxForUnknownId": "true",
    "ConnectionTimeOut": "5",  # a card accepted after its EV left waits at most 5 s for a cable
}


def canon(action: str, payload: dict) -> tuple[str, str]:
    """A message's identity: its action and its payload without the transaction id (which the station
    fills in when it sends a queued MeterValues or StopTransaction)."""
    body = {k: v for k, v in payload.items() if k != "transactionId"} if isinstance(payload, dict) else payload
    return action, json.dumps(body, sort_keys=True, separators=(",", ":"))


# -- the recording CSMS, in its own process ---------------------------------------------------------
class CsmsProcess:
    def __init__(self, port: int, record: Path, log: Path) -> None:
        self.port = port
        self.record = record
        self.log_path = log
        self.mode = "normal"
        self.proc: asyncio.subprocess.Process | None = None
        self.answers: asyncio.Queue[tuple[str, float]] = asyncio.Queue()
        self.kills = 0
        self._reader: asyncio.Task | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        if self.running:
            return
        for attempt in range(50):
            with open(self.log_path, "a") as log:
                self.proc = await asyncio.create_subprocess_exec(
                    sys.executable, str(ROOT / "bench" / "chaos_csms.py"), "--port", str(self.port),
                    "--record", str(self.record), "--mode", self.mode,
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
                )
            assert self.proc.stdout is not None
            try:
                line = await asyncio.wait_for(self.proc.stdout.readline(), 15)
            except TimeoutError:
                line = b""
            if line.startswith(b"ready"):
                self._reader = asyncio.create_task(self._read(self.proc))
                return
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
            await asyncio.sleep(0.1 * (attempt + 1))  # the port may still be held for a moment
        raise RuntimeError(f"CSMS did not start on port {self.port}; see {self.log_path}")

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            words = line.decode().split()
            if len(words) >= 2 and words[0] == "answered":
                self.answers.put_nowait((words[1], time.monotonic()))

    async def kill(self) -> None:
        if self.running:
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
            self.kills += 1

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        if self.running:
            assert self.proc is not None and self.proc.stdin is not None
            with contextlib.suppress(Exception):
                self.proc.stdin.write(mode.encode() + b"\n")

    async def close(self) -> None:
        if self.running:
            assert self.proc is not None and self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                await self.kill()

    def records(self) -> list[dict]:
        out = []
        if self.record.exists():
            for line in self.record.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out


# -- the station ------------------------------------------------------------------------------------
class ChaosStation(StationProcess):
    def __init__(self, *a: Any, log_level: str = "info", **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.log_level = log_level

    def args(self) -> list[str]:
        args = super().args()
        args[args.index("--log-level") + 1] = self.log_level
        return args


class Observer:
    """Reads the station's SQLite file (read-only) and remembers every outbox entry and transaction
    it ever saw there."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.outbox: dict[int, tuple[str, dict, int | None]] = {}
        self.txs: dict[int, dict] = {}
        self.snapshots = 0
        self.failures = 0

    def snapshot(self) -> None:
        if not self.db.exists():
            return
        try:
            con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=2)
            try:
                rows = con.execute("SELECT seq, action, payload, tx_local FROM outbox").fetchall()
                txs = con.execute("SELECT local_id, connector_id, id_tag, transaction_id, open FROM transactions").fetchall()
            finally:
                con.close()
        except sqlite3.Error:
            self.failures += 1
            return
        self.snapshots += 1
        for seq, action, payload, tx_local in rows:
            if seq not in self.outbox:
                self.outbox[seq] = (action, json.loads(payload), tx_local)
        for local_id, cid, id_tag, tx_id, open_ in txs:
            t = self.txs.setdefault(local_id, {"connector": cid, "id_tag": id_tag, "tx_ids": set(), "open": open_})
            t["open"] = open_
            if tx_id is not None:
                t["tx_ids"].add(tx_id)


# -- the campaign -----------------------------------------------------------------------------------
@dataclass
class Counts:
    station_kills: int = 0
    aimed_kills: int = 0
    csms_kills: int = 0
    link_drops: int = 0
    slow: int = 0
    silent: int = 0
    sessions: int = 0
    api_errors: int = 0
    restarts_failed: int = 0


@dataclass
class Campaign:
    args: argparse.Namespace
    work: Path
    counts: Counts = field(default_factory=Counts)
    status_tags: dict[str, int] = field(default_factory=dict)  # card -> local id, seen in GET /api/status

    def __post_init__(self) -> None:
        self.rng = random.Random(self.args.seed)
        self.csms = CsmsProcess(free_port(), self.work / "csms.jsonl", self.work / "csms.log")
        self.station = ChaosStation(self.work, f"ws://127.0.0.1:{self.csms.port}/ocpp", station_id="CHAOS1",
                                    ocpp_config=OCPP_CONFIG, log_level=self.args.station_log_level)
        self.observer = Observer(self.station.state_dir / "station.sqlite")
        self.up = asyncio.Event()
        self.final = False  # the clean session after the chaos (waits patiently)
        self.generation = 0
        self.chaos_over = asyncio.Event()
        self.mode_lock = asyncio.Lock()
        self.csms_lock = asyncio.Lock()
        self.background: set[asyncio.Task] = set()
        self.deadline = time.monotonic() + self.args.duration

    def say(self, text: str) -> None:
        if not self.args.quiet:
            print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    async def api(self, method: str, path: str, body: dict | None = None) -> dict | None:
        try:
            return await self.station.api(method, path, body, expect=None)
        except Exception:
            self.counts.api_errors += 1
            return None

    async def station_start(self) -> None:
        self.station.start()
        await self.station.wait_api(30)
        self.generation += 1
        self.up.set()

    # -- sessions -------------------------------------------------------------------------------
    def _tx(self, status: dict | None) -> dict | None:
        if not status or not status.get("evses"):
            return None
        return status["evses"][0].get("transaction")

    async def _wait_tx(self, pred: Any, timeout: float, gen: int) -> dict | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end and gen == self.generation and not (self.chaos_over.is_set() and not self.final):
            status = await self.api("GET", "/api/status")
            tx = self._tx(status)
            if tx is not None and tx.get("id_token"):
                self.status_tags.setdefault(tx["id_token"], tx.get("local_id"))
            if status is not None and pred(tx):
                return status
            await asyncio.sleep(0.1)
        return None

    async def sessions(self) -> None:
        n = 0
        while not self.chaos_over.is_set():
            await self.up.wait()
            gen = self.generation
            n += 1
            tag = f"S{self.args.seed % 1000:03d}-{n:05d}"
            self.counts.sessions += 1
            await self.session(tag, gen)

    async def session(self, tag: str, gen: int, hold: float | None = None) -> bool:
        """One charging session; True if the station ran a transaction for it. ``hold``: charge that
        long and stop by card (the final check), else a random time and way."""
        rng = self.rng
        if await self.api("POST", "/api/evses/1/plug", {}) is None:
            return False
        await asyncio.sleep(rng.uniform(0, 0.3) if hold is None else 0)
        await self.api("POST", "/api/evses/1/swipe", {"id_token": tag})
        got = await self._wait_tx(lambda tx: tx is not None and tx.get("id_token") == tag, 12, gen)
        if got is not None:
            end = time.monotonic() + (rng.uniform(0.3, 6) if hold is None else hold)
            while time.monotonic() < end and gen == self.generation and (hold or not self.chaos_over.is_set()):
                await asyncio.sleep(0.1)
            if gen != self.generation:
                return True
            if hold is not None or rng.random() < 0.75:
                await self.api("POST", "/api/evses/1/swipe", {"id_token": tag})
                await self._wait_tx(lambda tx: tx is None, 12, gen)
        await self.api("POST", "/api/evses/1/unplug", {})
        await self._wait_tx(lambda tx: tx is None, 12, gen)
        await asyncio.sleep(rng.uniform(0, 0.5) if hold is None else 0)
        return got is not None

    # -- chaos ----------------------------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but no longer than the chaos lasts."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.chaos_over.wait(), seconds)

    async def _csms_kill(self) -> None:
        await self._pause(self.rng.uniform(0, 2))
        async with self.csms_lock:  # one CSMS at a time: a second kill waits for the restart
            if self.chaos_over.is_set():
                return
            await self.csms.kill()
            self.counts.csms_kills += 1
            await self._pause(self.rng.uniform(0.1, 3))
            await self.csms.start()

    async def _link_drop(self) -> None:
        await self._pause(self.rng.uniform(0, 2))
        if self.chaos_over.is_set():
            return
        await self.api("POST", "/api/link", {"connected": False})
        self.counts.link_drops += 1
        await self._pause(self.rng.uniform(0.5, 6))
        await self.api("POST", "/api/link", {"connected": True})

    async def _mode(self, silent: bool) -> None:
        async with self.mode_lock:
            if self.chaos_over.is_set():
                return
            if silent:
                self.csms.set_mode("silent")
                self.counts.silent += 1
                length = self.rng.uniform(2, self.args.silent_max)
            else:
                self.csms.set_mode(f"slow {self.rng.uniform(0.3, 5):.2f}")
                self.counts.slow += 1
                length = self.rng.uniform(3, 15)
            await self._pause(length)
            self.csms.set_mode("normal")

    async def _aimed_instant(self) -> bool:
        """Wait for the CSMS to answer a transaction message, then a few milliseconds more."""
        want = self.rng.choice([("StartTransaction",), ("StopTransaction",), TX_ACTIONS])
        while not self.csms.answers.empty():
            self.csms.answers.get_nowait()
        end = time.monotonic() + min(8.0, 2 * self.args.max_gap)
        while (left := end - time.monotonic()) > 0:
            try:
                action, _ = await asyncio.wait_for(self.csms.answers.get(), left)
            except TimeoutError:
                return False
            if action in want:
                await asyncio.sleep(self.rng.uniform(0, 0.015))
                return True
        return False

    async def chaos(self) -> None:
        a, rng = self.args, self.rng
        plan: dict[int, list[str]] = defaultdict(list)
        for kind, count in (("csms", a.csms_kills), ("link", a.link_drops), ("slow", a.slow), ("silent", a.silent)):
            for _ in range(count):
                plan[rng.randrange(max(1, a.kills))].append(kind)
        for i in range(a.kills):
            if time.monotonic() > self.deadline:
                self.say(f"--duration reached after {i} station kills")
                break
            for kind in plan.get(i, []):
                if kind == "csms":
                    self._spawn(self._csms_kill())
                elif kind == "link":
                    self._spawn(self._link_drop())
                else:
                    self._spawn(self._mode(kind == "silent"))
            r = rng.random()
            aimed = False
            if r < a.aimed:
                aimed = await self._aimed_instant()
            elif r < a.aimed + (1 - a.aimed) * 0.6:
                await asyncio.sleep(rng.uniform(0.05, min(1.5, a.max_gap)))
            else:
                await asyncio.sleep(rng.uniform(min(1.5, a.max_gap), a.max_gap))
            self.up.clear()
            self.generation += 1  # a session in flight stops at once (its card must not reach the next process)
            self.station.kill()
            self.observer.snapshot()  # exactly what the power cut left
            self.counts.station_kills += 1
            self.counts.aimed_kills += aimed
            if (i + 1) % 10 == 0 or i + 1 == a.kills:
                self.say(f"{i + 1} station kills, {self.counts.sessions} sessions, {self.counts.csms_kills} CSMS kills")
            if rng.random() < 0.3:
                await asyncio.sleep(rng.uniform(0, 0.5))
            try:
                await self.station_start()
            except AssertionError:
                self.counts.restarts_failed += 1
                raise

    async def observe(self) -> None:
        while True:
            self.observer.snapshot()
            await asyncio.sleep(0.2)

    # -- the end --------------------------------------------------------------------------------
    async def settle(self) -> bool:
        """Chaos off: a healthy CSMS, the link on; wait until the outbox is empty, no transaction runs and
        the connector is Available (not Preparing: a card of the last session may still wait for a cable)."""
        self.csms.set_mode("normal")
        if not self.csms.running:
            await self.csms.start()
        if not self.station.running:
            await self.station_start()
        await self.api("POST", "/api/link", {"connected": True})
        end = time.monotonic() + self.args.settle
        quiet_since = None
        while time.monotonic() < end:
            st = await self.api("GET", "/api/status")
            tx = self._tx(st)
            if st is not None and tx is not None:  # a session left running (its driver was killed with it)
                await self.api("POST", "/api/evses/1/unplug", {})
            idle = st is not None and all(c.get("status") == "Available" for c in st["evses"][0].get("connectors", []))
            if st is not None and st.get("outbox") == 0 and tx is None and idle and st.get("registration") == "Accepted":
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 0.5:
                    return True
            else:
                quiet_since = None
            await asyncio.sleep(0.25)
        return False

    async def run(self) -> dict:
        t0 = time.monotonic()
        await self.csms.start()
        await self.station_start()
        observer = asyncio.create_task(self.observe())
        driver = asyncio.create_task(self.sessions())
        try:
            await self.chaos()
        finally:
            self.chaos_over.set()  # the driver ends its session, the episodes end
            for task in list(self.background):
                with contextlib.suppress(Exception):
                    await task
            with contextlib.suppress(Exception):
                await asyncio.wait_for(driver, 40)
            driver.cancel()
            self.say("chaos over; waiting for the outbox to empty")
            settled = await self.settle()
            self.say(f"settled: {settled}; one clean session")
            # the station still charges and reports after all that: one clean session
            self.final = True
            final_ok = settled and await self.session(f"S{self.args.seed % 1000:03d}-final", self.generation, hold=2.5)
            settled = settled and await self.settle()
            self.observer.snapshot()
            observer.cancel()
            final = await self.api("GET", "/api/status")
            await self.station.aclose()
            self.observer.snapshot()
            await self.csms.close()
        report = analyse(self.csms.records(), self.observer, self.status_tags)
        report["settled"] = settled
        report["final_session"] = final_ok
        report["final_outbox"] = final.get("outbox") if final else None
        report["chaos"] = self.counts.__dict__
        report["seconds"] = round(time.monotonic() - t0, 1)
        log = self.station.log()
        report["station_log"] = {
            "tracebacks": log.count("Traceback"),
            "dropped": sum(1 for line in log.splitlines() if "dropped" in line and any(x in line for x in TX_ACTIONS)),
            "dropped_lines": [line for line in log.splitlines() if "dropped" in line and any(x in line for x in TX_ACTIONS)][:20],
        }
        return report


# -- the verdict ------------------------------------------------------------------------------------
def analyse(records: list[dict], obs: Observer, status_tags: dict[str, int]) -> dict:
    """Compare what the CSMS recorded with what the station had to deliver."""
    calls = [(i, r) for i, r in enumerate(records) if r.get("ev") == "call" and r.get("action") in TX_ACTIONS]
    # deliveries of each message (by content); each distinct unique id is one delivery, a repeat of
    # the same unique id with the same payload is a retry
    by_key: dict[tuple[str, str], list[tuple[int, dict]]] = defaultdict(list)
    for i, r in calls:
        by_key[canon(r["action"], r["payload"])].append((i, r))
    uid_payloads: dict[str, set] = defaultdict(set)
    for _, r in calls:
        uid_payloads[r["uid"]].add(canon(r["action"], r["payload"]))
    uid_reused = sum(1 for keys in uid_payloads.values() if len(keys) > 1)

    retries: Counter = Counter()
    duplicated: Counter = Counter()
    duplicate_examples: list[dict] = []
    first_at: dict[tuple[str, str], int] = {}
    for key, recs in by_key.items():
        uids = []
        for _, r in recs:
            if r["uid"] not in uids:
                uids.append(r["uid"])
            else:
                retries[key[0]] += 1
        first_at[key] = recs[0][0]
        if len(uids) > 1:
            duplicated[key[0]] += len(uids) - 1
            if len(duplicate_examples) < 10:
                duplicate_examples.append({"action": key[0], "payload": json.loads(key[1]), "unique_ids": uids,
                                           "transaction_ids": sorted({r.get("tx") or r["payload"].get("transactionId")
                                                                      for _, r in recs} - {None})})

    # transactions at the CSMS: one per distinct StartTransaction (unique id + payload)
    starts: dict[int, dict] = {}  # tx id -> payload
    start_at: dict[int, int] = {}
    for i, r in calls:
        if r["action"] == "StartTransaction" and r.get("tx") is not None and r["tx"] not in starts:
            starts[r["tx"]] = r["payload"]
            start_at[r["tx"]] = i
    tx_of_tag: dict[str, set[int]] = defaultdict(set)
    for tx, p in starts.items():
        tx_of_tag[p["idTag"]].add(tx)
    stops_at: dict[int, int] = {}
    meters_at: dict[int, list[tuple[int, dict]]] = defaultdict(list)
    seen_mv: set = set()
    for i, r in calls:
        t = r["payload"].get("transactionId")
        if r["action"] == "StopTransaction":
            stops_at.setdefault(t, i)
        elif r["action"] == "MeterValues" and t is not None:
            k = (r["uid"], canon(r["action"], r["payload"]))
            if k not in seen_mv:
                seen_mv.add(k)
                meters_at[t].append((i, r["payload"]))

    # what the station had to deliver
    expected: dict[tuple[str, str], dict] = {}
    for _seq, (action, payload, tx_local) in sorted(obs.outbox.items()):
        if action in TX_ACTIONS:
            expected.setdefault(canon(action, payload), {"tx_local": tx_local})
    for key in by_key:
        expected.setdefault(key, {"tx_local": None})
    lost_examples: list[dict] = []
    lost: Counter = Counter()
    delivered: Counter = Counter()
    exp_count: Counter = Counter()
    for key, info in expected.items():
        exp_count[key[0]] += 1
        if key in by_key:
            delivered[key[0]] += 1
        else:
            lost[key[0]] += 1
            if len(lost_examples) < 20:
                lost_examples.append({"action": key[0], "payload": json.loads(key[1]), "tx_local": info["tx_local"]})

    # every session that became a transaction at the station must have a Start and a Stop delivered
    tag_of_local = {lid: t["id_tag"] for lid, t in obs.txs.items()}
    tags = set(tag_of_local.values()) | set(status_tags) | set(tx_of_tag)
    start_tags = {p["idTag"] for p in starts.values()}
    queued_start_tags = {json.loads(k[1]).get("idTag") for k in expected if k[0] == "StartTransaction"}
    stopped_tags = {starts[t]["idTag"] for t in stops_at if t in starts}
    queued_stop_locals = {i["tx_local"] for k, i in expected.items() if k[0] == "StopTransaction"}
    local_of_tag = {v: k for k, v in tag_of_local.items()}
    for tag in sorted(tags):
        if tag not in start_tags and tag not in queued_start_tags:
            exp_count["StartTransaction"] += 1
            lost["StartTransaction"] += 1
            lost_examples.append({"action": "StartTransaction", "session": tag, "never queued": True})
        if tag not in stopped_tags and local_of_tag.get(tag) not in queued_stop_locals:
            exp_count["StopTransaction"] += 1
            lost["StopTransaction"] += 1
            lost_examples.append({"action": "StopTransaction", "session": tag, "never queued": True})

    # order per transaction and attribution
    reordered: Counter = Counter()
    reorder_examples: list[dict] = []
    misattributed = 0
    for tx, i_start in start_at.items():
        i_stop = stops_at.get(tx)
        if i_stop is not None and i_stop < i_start:
            reordered["StopTransaction"] += 1
        last_ts = ""
        for i, p in meters_at.get(tx, []):
            ts = min((mv.get("timestamp", "") for mv in p.get("meterValue", [])), default="")
            if i < i_start or (i_stop is not None and i > i_stop) or ts < last_ts:
                reordered["MeterValues"] += 1
                if len(reorder_examples) < 10:
                    reorder_examples.append({"transaction": tx, "meter_values": p})
            last_ts = max(last_ts, ts)
    for _, r in calls:
        if r["action"] != "StartTransaction" and r["payload"].get("transactionId") not in starts:
            misattributed += 1  # a transaction id the CSMS never gave
    for key, info in expected.items():
        if key[0] == "StartTransaction" or info["tx_local"] is None or key not in by_key:
            continue
        tag = tag_of_local.get(info["tx_local"])
        for _, r in by_key[key]:
            t = r["payload"].get("transactionId")
            if tag is not None and (t not in starts or starts[t]["idTag"] != tag):
                misattributed += 1
                break

    unstopped = sorted(set(starts) - set(stops_at))
    orphans = [t for t in unstopped if any(o in stops_at for o in tx_of_tag[starts[t]["idTag"]] - {t})]
    meter_back = [t for t, p in starts.items() if t in stops_at and
                  any(r["payload"].get("meterStop", 0) < p["meterStart"] for _, r in calls
                      if r["action"] == "StopTransaction" and r["payload"].get("transactionId") == t)]
    # the meter register between transactions, in the order they started: never below the last meterStop
    stop_meter = {r["payload"].get("transactionId"): r["payload"].get("meterStop", 0) for _, r in calls
                  if r["action"] == "StopTransaction"}
    backwards: list[int] = []
    last = None
    for t, p in sorted(starts.items(), key=lambda kv: kv[1]["timestamp"]):
        if last is not None and p["meterStart"] < last:
            backwards.append(last - p["meterStart"])
        last = stop_meter.get(t, p["meterStart"])
    schema = [f'{r["action"]}: {r["schema"]}' for r in records if r.get("ev") == "call" and r.get("schema")]
    return {
        "expected": dict(exp_count), "delivered": dict(delivered), "lost": dict(lost),
        "duplicated": dict(duplicated), "retries": dict(retries), "reordered": dict(reordered),
        "misattributed": misattributed,
        "transactions": {"sessions_with_transaction": len(tags), "started_at_csms": len(starts),
                         "stopped_at_csms": len(set(stops_at) & set(starts)), "unstopped": unstopped,
                         "orphans": orphans, "stop_meter_below_start": meter_back,
                         "meter_backwards_between": {"count": len(backwards), "max_wh": max(backwards, default=0)}},
        "unique_ids_reused_for_other_messages": uid_reused,
        "schema_problems": schema[:10],
        "outbox_entries_seen": len(obs.outbox), "snapshots": obs.snapshots, "snapshot_failures": obs.failures,
        "examples": {"lost": lost_examples[:20], "duplicated": duplicate_examples, "reordered": reorder_examples},
    }


def failed(report: dict) -> bool:
    t = report["transactions"]
    return bool(sum(report["lost"].values()) or sum(report["duplicated"].values()) or sum(report["reordered"].values())
                or report["misattributed"] or t["unstopped"] or report.get("final_session") is False)


def print_report(report: dict, args: argparse.Namespace) -> None:
    def row(name: str, d: dict) -> str:
        cells = "  ".join(f"{SHORT[a]} {d.get(a, 0)}" for a in TX_ACTIONS)
        return f"  {name:<12} {sum(d.values()):>6}   ({cells})"

    c, t = report["chaos"], report["transactions"]
    print()
    print(f"chaos campaign, seed {args.seed}: {report['seconds']} s")
    print(f"  station kill -9: {c['station_kills']} ({c['aimed_kills']} aimed just after a CSMS answer), "
          f"CSMS kill -9: {c['csms_kills']}, link drops: {c['link_drops']}, slow CSMS: {c['slow']}, "
          f"silent CSMS: {c['silent']}, sessions driven: {c['sessions']}")
    print("messages")
    for name in ("expected", "delivered", "lost", "duplicated", "reordered", "retries"):
        print(row(name, report[name]))
    print(f"  misattributed {report['misattributed']}")
    print(f"transactions: {t['sessions_with_transaction']} sessions became transactions; CSMS saw "
          f"{t['started_at_csms']} started, {t['stopped_at_csms']} stopped; unstopped {len(t['unstopped'])} "
          f"{t['unstopped'][:20]} (orphans {t['orphans'][:20]})")
    print(f"a clean session after the chaos: {'charged and reported' if report['final_session'] else 'FAILED'}")
    print(f"outbox at the end: {report['final_outbox']} (settled: {report['settled']}); outbox entries observed: "
          f"{report['outbox_entries_seen']} in {report['snapshots']} snapshots")
    sl = report["station_log"]
    print(f"station log: {sl['tracebacks']} tracebacks, {sl['dropped']} transaction messages logged as dropped")
    if t["stop_meter_below_start"]:
        print(f"note: meterStop below meterStart in transactions {t['stop_meter_below_start'][:20]}")
    if t["meter_backwards_between"]["count"]:
        mb = t["meter_backwards_between"]
        print(f"note: a transaction's meterStart was below the previous meterStop {mb['count']} times "
              f"(up to {mb['max_wh']} Wh): the meter ran backwards across a restart")
    if report["unique_ids_reused_for_other_messages"]:
        print(f"note: {report['unique_ids_reused_for_other_messages']} unique ids were used again for another message")
    if report["schema_problems"]:
        print(f"note: schema problems: {report['schema_problems']}")
    for kind, items in report["examples"].items():
        for item in items[:5]:
            print(f"  {kind}: {json.dumps(item)[:300]}")
    print("RESULT:", "FAIL" if failed(report) else "PASS")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=200, help="station kill -9 (default 200)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--csms-kills", type=int, default=20, help="CSMS kill -9 (default 20)")
    ap.add_argument("--link-drops", type=int, default=20, help="link drops through the API (default 20)")
    ap.add_argument("--slow", type=int, default=10, help="slow-CSMS episodes (default 10)")
    ap.add_argument("--silent", type=int, default=5, help="silent-CSMS episodes (default 5)")
    ap.add_argument("--silent-max", type=float, default=40.0, help="longest silence, s (default 40)")
    ap.add_argument("--aimed", type=float, default=0.3, help="share of kills aimed just after a CSMS answer (0.3)")
    ap.add_argument("--max-gap", type=float, default=6.0,
                    help="longest time from a restart to the next kill, s (default 6; 40%% of gaps are over 1.5 s)")
    ap.add_argument("--duration", type=float, default=3600.0, help="cap on the chaos phase, s (default 3600)")
    ap.add_argument("--settle", type=float, default=180.0, help="how long the end may take to empty the outbox, s")
    ap.add_argument("--station-log-level", default="info", choices=["debug", "info", "warning", "error"])
    ap.add_argument("--json", help="write the report as JSON to this file")
    ap.add_argument("--keep", help="keep the work directory (logs, CSMS record, state) here")
    ap.add_argument("--quiet", action="store_true")
    return ap.parse_args(argv)


async def amain(args: argparse.Namespace) -> int:
    # the station runs from this tree (the one bench/chaos.py is in): a frozen copy, e.g.
    # `git archive HEAD | tar -x -C /tmp/snap`, keeps edits made meanwhile out of a long run
    os.chdir(ROOT)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    campaign = Campaign(args, work)
    try:
        report = await campaign.run()
    except AssertionError as e:  # the station did not come up
        print(f"campaign could not run: {e}", file=sys.stderr)
        return 2
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    report["seed"] = args.seed
    print_report(report, args)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=list))
    if not report["settled"]:
        return 2 if not failed(report) else 1
    return 1 if failed(report) else 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(amain(parse(argv)))


if __name__ == "__main__":
    sys.exit(main())

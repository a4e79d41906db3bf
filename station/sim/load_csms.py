"""A small, fast OCPP 1.6J and 2.0.1 CSMS (the version each station asks for) for load tests of the fleet (tests/integration/test_fleet.py,
bench/fleet.py): it accepts every station and every card, numbers transactions, keeps per-station
counts of what it received (and duplicated message ids), and can send TriggerMessage to connected
stations and time their answers (the CSMS -> station round trip of the benchmarks).

It is no CSMS to trust with anything: no persistence, no authentication, no limits beyond
small websocket buffers. One asyncio loop, no threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import logging
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

log = logging.getLogger("load-csms")


@dataclass
class Seen:
    """What the CSMS knows of one station."""

    actions: Counter = field(default_factory=Counter)
    ids: set[str] = field(default_factory=set)
    duplicates: int = 0
    open_tx: dict[int | str, int] = field(default_factory=dict)  # transactionId -> meterStart (2.0.1: seqNo 0)
    version: str = "1.6"
    stopped_tx: int = 0
    unknown_stops: int = 0
    booted: bool = False
    connections: int = 0
    starts: dict[str, dict] = field(default_factory=dict)  # message id -> the StartTransaction answer given


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class LoadCsms:
    def __init__(self, heartbeat_interval: int = 300, track_ids: bool = True) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.track_ids = track_ids
        self.stations: dict[str, Seen] = {}
        self.connected: dict[str, ServerConnection] = {}
        self.received = 0
        self.sent = 0
        self.trigger_rtt: list[float] = []  # seconds, CSMS -> station TriggerMessage answered
        self.trigger_errors: Counter = Counter()
        self._tx_ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future] = {}
        self._uids = itertools.count(1)
        self._server: Any = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0, backlog: int = 4096) -> int:
        self._server = await serve(self._session, host, port, subprotocols=["ocpp1.6", "ocpp2.0.1"],  # type: ignore[list-item]
                                   ping_interval=None, max_size=65536, max_queue=4, write_limit=4096,
                                   compression=None, backlog=backlog)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # -- connections --------------------------------------------------------------------------
    async def _session(self, ws: ServerConnection) -> None:
        sid = (ws.request.path if ws.request else "/").rstrip("/").rsplit("/", 1)[-1]
        seen = self.stations.get(sid)
        if seen is None:
            seen = self.stations[sid] = Seen()
        seen.connections += 1
        seen.version = "2.0.1" if ws.subprotocol == "ocpp2.0.1" else "1.6"
        self.connected[sid] = ws
        try:
            async for raw in ws:
                self.received += 1
                msg = json.loads(raw)
                if msg[0] == 2:
                    _, uid, action, payload = msg
                    repeat = False
                    if self.track_ids:
                        repeat = uid in seen.ids
                        if repeat:
                            seen.duplicates += 1
                        seen.ids.add(uid)
                    seen.actions[action] += 1
                    if repeat and action == "StartTransaction" and uid in seen.starts:
                        result = seen.starts[uid]  # a resend (the answer was lost): the same transaction
                    else:
                        result = (self.answer201(seen, action, payload) if seen.version == "2.0.1"
                                  else self.answer(seen, action, payload))
                        if action == "StartTransaction" and self.track_ids:
                            seen.starts[uid] = result
                    await ws.send(json.dumps([3, uid, result]))
                    self.sent += 1
                elif msg[0] in (3, 4):
                    fut = self._pending.pop(msg[1], None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
        except Exception as e:  # a station that breaks the connection must not stop the CSMS
            log.debug("session %s ended: %s", sid, e)
        finally:
            if self.connected.get(sid) is ws:
                del self.connected[sid]

    def answer(self, seen: Seen, action: str, p: dict) -> dict:
        if action == "BootNotification":
            seen.booted = True
            return {"status": "Accepted", "currentTime": _now(), "interval": self.heartbeat_interval}
        if action == "Heartbeat":
            return {"currentTime": _now()}
        if action == "Authorize":
            return {"idTagInfo": {"status": "Accepted"}}
        if action == "StartTransaction":
            tx = next(self._tx_ids)
            seen.open_tx[tx] = int(p.get("meterStart", 0))
            return {"transactionId": tx, "idTagInfo": {"status": "Accepted"}}
        if action == "StopTransaction":
            if seen.open_tx.pop(p.get("transactionId"), None) is None:
                seen.unknown_stops += 1
            else:
                seen.stopped_tx += 1
            return {"idTagInfo": {"status": "Accepted"}}
        if action == "DataTransfer":
            return {"status": "UnknownVendorId"}
        return {}

    def answer201(self, seen: Seen, action: str, p: dict) -> dict:
        """The same in 2.0.1: a TransactionEvent Started opens, Ended closes a transaction."""
        if action in ("BootNotification", "Heartbeat", "DataTransfer"):
            return self.answer(seen, action, p)  # the same answers in both versions
        if action == "Authorize":
            return {"idTokenInfo": {"status": "Accepted"}}
        if action == "TransactionEvent":
            tx = p["transactionInfo"]["transactionId"]
            if p["eventType"] == "Started":
                seen.open_tx[tx] = 0
                seen.actions["StartTransaction"] += 1  # counted like 1.6 starts and stops
            elif p["eventType"] == "Ended":
                seen.actions["StopTransaction"] += 1
                if seen.open_tx.pop(tx, None) is None:
                    seen.unknown_stops += 1
                else:
                    seen.stopped_tx += 1
            return {"idTokenInfo": {"status": "Accepted"}} if "idToken" in p else {}
        return {}

    # -- CSMS -> station ----------------------------------------------------------------------
    async def call(self, sid: str, action: str, payload: dict, timeout: float = 30.0) -> list:
        """Send a Call to a connected station and return its answer frame ([3, ...] or [4, ...])."""
        ws = self.connected[sid]
        uid = f"c{next(self._uids)}"
        fut = asyncio.get_running_loop().create_future()
        self._pending[uid] = fut
        try:
            await ws.send(json.dumps([2, uid, action, payload]))
            self.sent += 1
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(uid, None)

    async def trigger(self, sid: str, message: str = "Heartbeat", timeout: float = 30.0) -> float:
        """TriggerMessage to one station: the seconds until its answer (recorded in ``trigger_rtt``)."""
        t0 = time.perf_counter()
        try:
            answer = await self.call(sid, "TriggerMessage", {"requestedMessage": message}, timeout)
        except Exception as e:
            self.trigger_errors[type(e).__name__] += 1
            raise
        rtt = time.perf_counter() - t0
        if answer[0] != 3 or answer[2].get("status") != "Accepted":
            self.trigger_errors["not Accepted"] += 1
        self.trigger_rtt.append(rtt)
        return rtt

    async def trigger_load(self, rate: float, duration: float, message: str = "Heartbeat", seed: int = 1) -> None:
        """TriggerMessage to random connected stations, ``rate`` a second for ``duration`` seconds
        (bounded: it ends by itself), each one answered or timed out before the end."""
        rng = random.Random(seed)
        loop = asyncio.get_running_loop()
        end = loop.time() + duration
        tasks: set[asyncio.Task] = set()
        n = 0
        start = loop.time()
        while loop.time() < end:
            ids = list(self.connected)
            if ids:
                t = asyncio.ensure_future(self.trigger(rng.choice(ids), message))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
            n += 1
            await asyncio.sleep(max(0.0, start + n / rate - loop.time()))
        if tasks:
            await asyncio.wait(tasks, timeout=35)

    # -- results ------------------------------------------------------------------------------
    def summary(self) -> dict:
        rtt = self.trigger_rtt
        total = Counter()
        for s in self.stations.values():
            total.update(s.actions)
        return {
            "stations_seen": len(self.stations),
            "connected": len(self.connected),
            "booted": sum(1 for s in self.stations.values() if s.booted),
            "received": self.received,
            "sent": self.sent,
            "actions": dict(total),
            "duplicates": sum(s.duplicates for s in self.stations.values()),
            "open_transactions": sum(len(s.open_tx) for s in self.stations.values()),
            "stopped_transactions": sum(s.stopped_tx for s in self.stations.values()),
            "unknown_stops": sum(s.unknown_stops for s in self.stations.values()),
            "trigger": {"count": len(rtt), "errors": dict(self.trigger_errors),
                        "p50_ms": _ms(percentile(rtt, 50)), "p99_ms": _ms(percentile(rtt, 99)),
                        "max_ms": _ms(max(rtt) if rtt else None)},
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _serve(args: Any) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:  # root may go past the hard limit (a CSMS for 20,000 stations needs more than 20,000)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(hard, 65536), max(hard, 65536)))
    except (ValueError, OSError):
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    csms = LoadCsms(heartbeat_interval=args.heartbeat, track_ids=not args.no_ids)
    port = await csms.start(args.host, args.port)
    print(f"listening on {port}", flush=True)
    loop = asyncio.get_running_loop()
    end = loop.time() + args.duration
    t0 = time.process_time()

    steady: dict[str, float] = {}

    async def work() -> None:
        await asyncio.sleep(max(0.0, min(args.trigger_after, args.duration)))
        gc.collect()
        gc.freeze()  # the connections of the ramp-up stay: out of the collector's way (no long pauses)
        steady.update(t=loop.time(), received=csms.received, sent=csms.sent, cpu=time.process_time(),
                      connected=len(csms.connected))
        if args.trigger_rate > 0:
            await csms.trigger_load(args.trigger_rate, max(0.0, end - loop.time()))
        else:
            await asyncio.sleep(max(0.0, end - loop.time()))

    job = asyncio.ensure_future(work())
    loop.add_signal_handler(signal.SIGTERM, job.cancel)  # SIGTERM: the summary now
    with contextlib.suppress(asyncio.CancelledError):
        await job
    summary = csms.summary()
    summary["cpu_s"] = round(time.process_time() - t0, 2)
    if steady:  # from --trigger-after to the end: the steady state of the fleet under test
        dt = max(1e-6, loop.time() - steady["t"])
        summary["steady"] = {"seconds": round(dt, 1), "connected_at_start": steady["connected"],
                             "received_per_s": round((csms.received - steady["received"]) / dt, 1),
                             "sent_per_s": round((csms.sent - steady["sent"]) / dt, 1),
                             "csms_cpu_percent": round(100 * (time.process_time() - steady["cpu"]) / dt, 1)}
    print(json.dumps(summary), flush=True)
    if args.linger > 0:  # still serving: the stations under test stop cleanly against a live CSMS
        linger = asyncio.ensure_future(asyncio.sleep(args.linger))
        loop.add_signal_handler(signal.SIGTERM, linger.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await linger
    await csms.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m station.sim.load_csms --port P [--duration S] [--trigger-rate R --trigger-after S]``:
    serve for S seconds (bounded; SIGTERM ends it sooner), then print the summary as one JSON line."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m station.sim.load_csms", description=main.__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--heartbeat", type=int, default=300)
    p.add_argument("--duration", type=float, default=60.0, help="serve this long, then print the summary")
    p.add_argument("--trigger-rate", type=float, default=0.0, help="TriggerMessage(Heartbeat) per second to random stations")
    p.add_argument("--trigger-after", type=float, default=0.0, help="start the triggers this many seconds in")
    p.add_argument("--linger", type=float, default=0.0, help="serve this long after the summary (then exit)")
    p.add_argument("--no-ids", action="store_true", help="do not keep message ids (duplicates are not counted)")
    args = p.parse_args(argv)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Long fuzz campaign: 100k+ generated hostile and schema-mutated frames against the station, then a flood.

    .venv/bin/python bench/fuzz_frames.py [--frames 100000] [--seed 1] [--flood 200000] [--window 8]

Bounded and loopback only. The station runs in process (tests/integration/inproc.py: the real
Runtime, a real websocket on 127.0.0.1) on a VirtualTimeLoop, so idle time costs nothing.

1. storm: ``--frames`` cases of tests/fuzz/frames.py (OCPP 1.6: schema mutations of all 26
   CSMS -> station actions, OCPP-J breakers, valid calls of harmless actions), each judged as in
   the CI test (tests/fuzz/storm.py); then the same link must answer TriggerMessage Heartbeat and
   GetConfiguration, and a charging session must work.
2. flood: a CSMS that sends ``--flood`` GetConfiguration calls as fast as the socket takes them
   and never reads an answer. Before issue 8 every call became a task (42 -> 417 MB); now the
   station handles at most MAX_CSMS_CALLS at once and stops reading (back-pressure). Printed: how
   many calls the socket took, the station's tasks at most, memory growth, what the link did.

Prints counts per outcome, failures (at most 50), frames/s and the process's VmRSS (station and
CSMS share the process: the growth is what matters).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from websockets.asyncio.server import serve  # noqa: E402

from station import link as link_module  # noqa: E402
from station.scheduler import VirtualTimeLoop  # noqa: E402
from tests.fuzz.frames import HARMLESS, Generator  # noqa: E402
from tests.fuzz.storm import storm  # noqa: E402
from tests.integration.harness import ScriptedCsms, now_iso, start_session  # noqa: E402
from tests.integration.inproc import InProcessStation  # noqa: E402

FAST = {"HeartbeatInterval": "300", "MeterValueSampleInterval": "0", "ConnectionTimeOut": "5",
        "TransactionMessageRetryInterval": "1"}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class QuietStation(InProcessStation):
    """The in-process station with its log counted per level (the last lines kept), not stored whole."""

    def _capture_log(self) -> None:
        if self._levels is None:
            self.levels: collections.Counter = collections.Counter()
            self.tail: collections.deque = collections.deque(maxlen=200)
            self._levels = [lg.level for lg in self._loggers]
            handler = self._handler

            def emit(record: logging.LogRecord) -> None:
                self.levels[record.levelname] += 1
                if record.levelno >= logging.WARNING:
                    self.tail.append(handler.format(record))

            handler.emit = emit  # type: ignore[method-assign]
            handler.setLevel(logging.INFO)
            for lg in self._loggers:
                lg.setLevel(logging.INFO)
                lg.addHandler(handler)

    def log(self) -> str:
        return "\n".join(self.tail) + "\n"


async def boot(csms: ScriptedCsms, tmp: Path, url: str | None = None) -> QuietStation:
    tmp.mkdir(parents=True, exist_ok=True)
    sp = QuietStation(tmp, url or f"ws://127.0.0.1:{csms.port}/ocpp", ocpp_config=dict(FAST))
    sp.start()
    await csms.expect("BootNotification", timeout=15)
    await csms.expect_status(1, "Available", since=0)
    await sp.wait_api()
    csms.mark()
    return sp


async def phase_storm(args: argparse.Namespace, tmp: Path) -> bool:
    csms = ScriptedCsms()
    await csms.start()
    sp = await boot(csms, tmp / "storm")
    gen = Generator("1.6", args.seed)
    rss0, t0 = rss_mb(), time.perf_counter()
    out = await storm(csms, "1.6", gen.cases(args.frames, valid=0.1, hostile=0.25, valid_actions=HARMLESS["1.6"]),
                      window=args.window)
    took = time.perf_counter() - t0
    rss1 = rss_mb()
    print(f"storm: {out.sent} frames in {took:.1f} s ({out.sent / took:.0f} frames/s), seed {args.seed}, window {args.window}")
    for what, n in sorted(out.counts.items(), key=lambda kv: -kv[1]):
        print(f"  {what:30s} {n:7d}")
    print(f"  failures: {len(out.failures)}" + ("" if not out.failures else " (first ones below)"))
    for f in out.failures[:50]:
        print("   ", f)
    after_ok = True
    try:
        connections = csms.connections
        assert (await csms.call("TriggerMessage", {"requestedMessage": "Heartbeat"}))["status"] == "Accepted"
        await csms.expect("Heartbeat")
        await csms.call("GetConfiguration", {"key": ["HeartbeatInterval"]})
        await start_session(csms, sp)
        await sp.swipe("TAG1")
        await csms.expect("StopTransaction")
        print(f"  after the storm: same connection ({connections} in all), Heartbeat trigger, GetConfiguration and a "
              "charging session: ok")
    except Exception as e:  # noqa: BLE001 - reported, the campaign goes on
        after_ok = False
        print(f"  after the storm: FAILED: {type(e).__name__}: {e}")
    print(f"  station log: {dict(sp.levels)} records; 'Traceback' in warnings: {'Traceback' in sp.log()}")
    print(f"  VmRSS {rss0:.0f} -> {rss1:.0f} MB (station and CSMS in one process)")
    await sp.aclose()
    await csms.close()
    return not out.failures and after_ok and csms.connections == 1


async def phase_flood(args: argparse.Namespace, tmp: Path) -> bool:
    """A CSMS that floods GetConfiguration and never reads; bounded by --flood calls and 600 s of (virtual) time."""
    booted = asyncio.Event()
    stats = {"sent": 0, "max_tasks": 0, "connections": 0}
    sp: QuietStation | None = None
    loop = asyncio.get_running_loop()

    async def session(ws) -> None:  # noqa: ANN001
        stats["connections"] += 1
        if stats["connections"] > 1:
            await ws.wait_closed()
            return
        async for raw in ws:  # warm-up: answer the boot and the status notifications
            msg = json.loads(raw)
            answer = {"status": "Accepted", "currentTime": now_iso(), "interval": 300} if msg[2] == "BootNotification" else {}
            await ws.send(json.dumps([3, msg[1], answer]))
            if msg[2] == "StatusNotification" and msg[3]["connectorId"] == 1:
                break
        booted.set()
        frame = json.dumps([2, "x", "GetConfiguration", {"key": ["HeartbeatInterval"]}])
        deadline = loop.time() + 600
        try:
            for i in range(args.flood):
                await ws.send(frame.replace('"x"', f'"f{i}"', 1))
                stats["sent"] += 1
                if i % 1000 == 0 and sp is not None and sp.rt is not None:
                    stats["max_tasks"] = max(stats["max_tasks"], len(asyncio.all_tasks()))
                if loop.time() > deadline:
                    break
        except Exception as e:  # noqa: BLE001 - the station closed the socket: reported
            stats["ended"] = f"{type(e).__name__}: {e}"

    server = await serve(session, "127.0.0.1", 0, subprotocols=["ocpp1.6"], max_queue=16)  # type: ignore[list-item]
    port = server.sockets[0].getsockname()[1]
    rss0 = rss_mb()
    tasks0 = len(asyncio.all_tasks())
    (tmp / "flood").mkdir(parents=True, exist_ok=True)
    sp = QuietStation(tmp / "flood", f"ws://127.0.0.1:{port}/ocpp", ocpp_config=dict(FAST))
    sp.start()
    await asyncio.wait_for(booted.wait(), 30)
    t0, v0 = time.perf_counter(), loop.time()
    while stats["sent"] < args.flood and loop.time() - v0 < 600 and "ended" not in stats:
        await asyncio.sleep(1)
        stats["max_tasks"] = max(stats["max_tasks"], len(asyncio.all_tasks()))
    rss1 = rss_mb()
    print(f"flood: the CSMS sent {stats['sent']} of {args.flood} GetConfiguration calls without reading an answer, "
          f"{loop.time() - v0:.0f} s virtual, {time.perf_counter() - t0:.1f} s real")
    print(f"  tasks in the process: {tasks0} before, at most {stats['max_tasks']} during "
          f"(MAX_CSMS_CALLS = {getattr(link_module, 'MAX_CSMS_CALLS', 'none')})")
    print(f"  VmRSS {rss0:.0f} -> {rss1:.0f} MB; station link: {stats.get('ended', 'socket still open')}; "
          f"connections {stats['connections']}")
    warn = [line for line in sp.tail if "reading paused" in line or "ping" in line.lower()]
    print(f"  station said: {warn[:2]}")
    await sp.aclose()
    server.close()
    await asyncio.wait_for(server.wait_closed(), 30)
    return rss1 - rss0 < 100


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--window", type=int, default=8, help="frames awaiting their answer at once")
    p.add_argument("--flood", type=int, default=200_000, help="calls of the never-reading CSMS (0: no flood)")
    args = p.parse_args()
    print(f"machine: {platform.machine()} {platform.system()} {platform.release()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    loop = VirtualTimeLoop()
    try:
        with tempfile.TemporaryDirectory() as d:
            ok = loop.run_until_complete(phase_storm(args, Path(d)))
            if args.flood:
                ok = loop.run_until_complete(phase_flood(args, Path(d))) and ok
    finally:
        loop.close()
    print("result:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

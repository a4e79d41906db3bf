"""Benchmark: CSMS -> station request round trip, resident memory and idle CPU of the station.

    .venv/bin/python bench/roundtrip.py [--n 1000] [--idle 20]

Starts the real station process (simulated hardware) against a scripted CSMS on 127.0.0.1, then
sends N GetConfiguration and N TriggerMessage(Heartbeat) calls one after another and measures
each CallResult round trip. Memory is VmRSS from /proc; idle CPU is utime+stime over --idle s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.harness import ScriptedCsms, StationProcess  # noqa: E402


class ProfiledStation(StationProcess):
    """The same station process under cProfile (written when it exits after SIGTERM)."""

    def __init__(self, *a, profile: str, **kw) -> None:
        super().__init__(*a, **kw)
        self.profile = profile

    def args(self) -> list[str]:
        args = super().args()
        assert args[1:3] == ["-m", "station"]
        return [args[0], "-m", "cProfile", "-o", self.profile, *args[1:]]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(csms: ScriptedCsms, action: str, payload: dict, n: int) -> list[float]:
    """Round trips as the station causes them: the CSMS side sends raw frames and does not validate
    (``ScriptedCsms.call`` would add its own schema validation to every sample)."""
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        reply = await csms.send_call_raw([2, f"b{action}{i}", action, payload])
        out.append((time.perf_counter() - t0) * 1000)
        assert reply[0] == 3, reply
    return out


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown")
    return f"nproc {os.cpu_count()}, CPU {model}, Python {sys.version.split()[0]}, {os.uname().sysname} {os.uname().release}"


def summary(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p99 = ms[int(len(ms) * 0.99) - 1]
    return f"| {name} | {len(ms)} | {statistics.median(ms):.2f} | {p99:.2f} | {ms[-1]:.2f} |"


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--idle", type=float, default=20.0)
    ap.add_argument("--profile", help="run the station under cProfile and write its stats to this file")
    args = ap.parse_args()
    csms = ScriptedCsms()
    url = await csms.start()
    with tempfile.TemporaryDirectory() as tmp:
        kw = {"extra": ["--log-level", "warning"]}
        sp = (ProfiledStation(Path(tmp), url, "BENCH-1", 1, {"HeartbeatInterval": "300"}, profile=args.profile, **kw)
              if args.profile else StationProcess(Path(tmp), url, "BENCH-1", 1, {"HeartbeatInterval": "300"}, **kw))
        sp.start()
        try:
            await csms.expect("BootNotification", timeout=20)
            await sp.wait_api()
            await asyncio.sleep(1.0)
            pid = sp.proc.pid
            rss_idle_start = rss_mb(pid)
            c0 = cpu_s(pid)
            await asyncio.sleep(args.idle)
            idle_cpu = (cpu_s(pid) - c0) / args.idle * 100
            gc = await measure(csms, "GetConfiguration", {}, args.n)
            tm = await measure(csms, "TriggerMessage", {"requestedMessage": "Heartbeat"}, args.n)
            rss_after = rss_mb(pid)
        finally:
            sp.stop()
            await csms.close()
    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}\n")
    print("| request | n | median ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    print(summary("GetConfiguration (all keys)", gc))
    print(summary("TriggerMessage Heartbeat", tm))
    print(f"\nresident memory: {rss_idle_start:.1f} MB after boot, {rss_after:.1f} MB after {2 * args.n} requests")
    print(f"idle CPU: {idle_cpu:.2f} % of one core over {args.idle:.0f} s")


if __name__ == "__main__":
    asyncio.run(main())

"""What a fleet's station costs: ``python -m station.sim.fleet_measure --count N --csms-url URL``
builds N stations in this (fresh) process, connects and boots them, lets them settle, and prints
one JSON line: bytes per station (RSS growth of the process, built and booted), asyncio tasks per
station, the seconds to boot them all. The CSMS must run in another process (its memory is not
ours). Used by the budget test (tests/integration/test_fleet.py) and bench/fleet.py.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import time

from station.sim.fleet import Fleet, FleetProfile, raise_nofile, station_ids


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmRSS in /proc/self/status")


async def measure(count: int, csms_url: str, settle_s: float = 1.0, timeout_s: float = 120.0,
                  profile: FleetProfile | None = None) -> dict:
    raise_nofile(count + 64)
    profile = profile or FleetProfile(sessions_per_hour=0, busy_at_start=0)
    fleet = Fleet(csms_url, station_ids("MEASURE-", count, range(count)), profile, concurrency=200)
    import station.runtime  # noqa: F401 - modules are loaded once per process: not a station's cost

    gc.collect()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    fleet.build()
    gc.collect()
    rss_built = rss_bytes()
    run = asyncio.ensure_future(fleet.run(None))
    deadline = time.perf_counter() + timeout_s
    while True:
        await asyncio.sleep(0.1)
        fleet.sample()
        if fleet.stats.booted >= count or time.perf_counter() > deadline or run.done():
            break
    boot_s = time.perf_counter() - t0
    await asyncio.sleep(settle_s)
    gc.collect()
    rss_up = rss_bytes()
    tasks = len(asyncio.all_tasks())
    fleet.sample()
    out = {
        "count": count, "booted": fleet.stats.booted, "connected": fleet.stats.connected, "boot_s": round(boot_s, 2),
        "bytes_per_station_built": (rss_built - rss0) // count, "bytes_per_station": (rss_up - rss0) // count,
        "tasks_per_station": round(tasks / count, 2), "errors": dict(fleet.stats.errors),
    }
    fleet.stop()
    await run
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m station.sim.fleet_measure", description=__doc__)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--csms-url", required=True)
    p.add_argument("--settle", type=float, default=1.0)
    p.add_argument("--ocpp", choices=["1.6", "2.0.1"], default="1.6", help="OCPP version of every station")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    profile = FleetProfile(sessions_per_hour=0, busy_at_start=0, versions={args.ocpp: 1.0})
    out = asyncio.run(measure(args.count, args.csms_url, args.settle, profile=profile))
    print(json.dumps({"ocpp": args.ocpp, **out}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

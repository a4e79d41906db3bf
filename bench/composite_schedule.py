"""Benchmark: the composite schedule of 10 stacked charging profiles over 24 h.

    .venv/bin/python bench/composite_schedule.py [--n 2000]

Ten profiles on connector 1's side (station/core/charging.py, pure, no I/O): a
ChargePointMaxProfile (Recurring Daily, 24 hourly periods), and nine TxDefaultProfile /
TxProfile stack levels of Absolute, Recurring (Daily across midnight, Weekly) and Relative
schedules, in A and W, with 4-24 periods each and durations that end inside the day, so the
stacking falls through levels. Each run is one ``ProfileSet.composite`` of a connector with a
running transaction for 86,400 s (every breakpoint of every profile evaluated), plus its 1.6 form
(``to_ocpp("W")``). Target: under 1 ms (median).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from station.core.charging import ChargingProfile, ConnectorContext, ProfileSet  # noqa: E402
from station.core.clock import iso  # noqa: E402

T0 = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)


def profile(pid: int, purpose: str, stack: int, kind: str, periods: list[tuple[int, float]], unit: str = "A",
            start: datetime | None = None, duration: int | None = None, recurrency: str | None = None,
            cid: int = 1) -> ChargingProfile:
    sched: dict = {"chargingRateUnit": unit,
                   "chargingSchedulePeriod": [{"startPeriod": s, "limit": v} for s, v in periods]}
    if start is not None:
        sched["startSchedule"] = iso(start)
    if duration is not None:
        sched["duration"] = duration
    cp: dict = {"chargingProfileId": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
                "chargingProfileKind": kind, "chargingSchedule": sched}
    if recurrency:
        cp["recurrencyKind"] = recurrency
    return ChargingProfile.from_ocpp(cid if purpose != "ChargePointMaxProfile" else 0, cp, T0)


def ten_profiles() -> ProfileSet:
    hourly = [(h * 3600, 20.0 + (h % 5) * 2) for h in range(24)]
    return ProfileSet([
        profile(1, "ChargePointMaxProfile", 0, "Recurring", hourly, start=T0.replace(hour=0), recurrency="Daily"),
        profile(2, "TxDefaultProfile", 0, "Absolute", [(i * 7200, 16.0 + i % 3) for i in range(12)], start=T0, cid=0),
        profile(3, "TxDefaultProfile", 1, "Recurring", [(0, 10.0), (4 * 3600, 14.0)], start=T0.replace(hour=22),
                duration=8 * 3600, recurrency="Daily", cid=0),
        profile(4, "TxDefaultProfile", 2, "Recurring", [(i * 1800, 8.0 + i) for i in range(8)], unit="A",
                start=T0 - timedelta(days=1), duration=4 * 3600, recurrency="Weekly"),
        profile(5, "TxDefaultProfile", 3, "Absolute", [(i * 900, 4000.0 + 300 * i) for i in range(16)], unit="W",
                start=T0 + timedelta(hours=3), duration=4 * 3600),
        profile(6, "TxDefaultProfile", 4, "Relative", [(i * 600, 12.0 + (i % 4)) for i in range(12)], duration=7200),
        profile(7, "TxProfile", 0, "Relative", [(i * 3600, 18.0 - i % 6) for i in range(24)]),
        profile(8, "TxProfile", 1, "Absolute", [(i * 1200, 9000.0 - 200 * i) for i in range(10)], unit="W",
                start=T0 + timedelta(hours=6), duration=3 * 3600),
        profile(9, "TxProfile", 2, "Recurring", [(0, 6.0), (1800, 11.0), (3600, 7.0), (5400, 13.0)],
                start=T0.replace(hour=1), duration=2 * 3600, recurrency="Daily"),
        profile(10, "TxProfile", 3, "Absolute", [(i * 300, 10.0 + i % 7) for i in range(24)],
                start=T0 + timedelta(hours=12), duration=2 * 3600),
    ])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    ps = ten_profiles()
    ctx = ConnectorContext(1, phases=3, max_a=32.0, tx_start=T0 - timedelta(minutes=30))
    comp = ps.composite(ctx, T0, 86_400, sharers=1)
    times = []
    for _ in range(args.n):
        t = time.perf_counter()
        ps.composite(ctx, T0, 86_400, sharers=1).to_ocpp("W")
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    p99 = times[max(0, int(len(times) * 0.99) - 1)]
    median = statistics.median(times)
    print(f"10 stacked profiles, 24 h: {len(comp.periods)} composite periods; n={args.n} "
          f"median {median:.3f} ms, p99 {p99:.3f} ms, max {times[-1]:.3f} ms "
          f"(target under 1 ms: {'met' if median < 1.0 else 'NOT met'})")


if __name__ == "__main__":
    main()

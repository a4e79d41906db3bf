"""The Scheduler: one source of time; virtual time in tests skips idle waits."""

from __future__ import annotations

import asyncio
import time

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from station.scheduler import LoopScheduler, ManualScheduler, VirtualTimeLoop


def test_manual_scheduler_fires_due_timers_in_order_and_skips_cancelled():
    s = ManualScheduler()
    fired: list[tuple[str, float]] = []
    s.call_later(5, lambda: fired.append(("b", s.monotonic())))
    s.call_later(1, lambda: fired.append(("a", s.monotonic())))
    t = s.call_later(3, lambda: fired.append(("x", s.monotonic())))
    t.cancel()
    start = s.monotonic()
    s.advance(4)
    assert [name for name, _ in fired] == ["a"]
    s.advance(1)
    assert [(n, at - start) for n, at in fired] == [("a", 1.0), ("b", 5.0)]
    assert s.pending == 0


def test_manual_scheduler_rearmed_timer_is_a_periodic_job():
    s = ManualScheduler()
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(s.monotonic())
        s.call_later(10, tick)

    s.call_later(10, tick)
    s.advance(35)
    assert len(ticks) == 3
    assert (s.now() - ManualScheduler().now()).total_seconds() == 35


def test_virtual_time_loop_skips_idle_time_with_real_loopback_websockets():
    async def main() -> tuple[float, float]:
        async def echo(ws):
            async for m in ws:
                await asyncio.sleep(30)
                await ws.send(m)

        sched = LoopScheduler()
        async with serve(echo, "127.0.0.1", 0) as srv:
            port = srv.sockets[0].getsockname()[1]
            t0, w0 = sched.monotonic(), sched.now()
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                await ws.send("x")
                assert await ws.recv() == "x"
                await asyncio.sleep(600)
            return sched.monotonic() - t0, (sched.now() - w0).total_seconds()

    loop = VirtualTimeLoop()
    real = time.monotonic()
    try:
        mono, wall = loop.run_until_complete(main())
    finally:
        loop.close()
    assert mono >= 630 and abs(wall - mono) < 1e-6
    assert time.monotonic() - real < 5  # the waits were skipped, not slept


def test_virtual_time_loop_waits_for_threads_in_real_time():
    async def main() -> str:
        return await asyncio.to_thread(lambda: (time.sleep(0.05), "done")[1])

    loop = VirtualTimeLoop()
    try:
        assert loop.run_until_complete(asyncio.wait_for(main(), 1.0)) == "done"
    finally:
        loop.close()

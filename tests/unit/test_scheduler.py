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


# -- timers on wall-clock instants (call_at_wall) ---------------------------------------------------
def wall_jump_rig():
    from datetime import timedelta

    s = ManualScheduler()
    fired: list = []
    due = s.now() + timedelta(seconds=600)
    s.call_at_wall(due, lambda: fired.append(s.now()))

    def tick() -> None:  # any other timer of the station (e.g. its 5 s checkpoint)
        s.call_later(5, tick)

    s.call_later(5, tick)
    return s, fired, due, timedelta


def test_a_wall_timer_fires_at_its_instant_when_the_wall_clock_is_set_forward():
    s, fired, due, timedelta = wall_jump_rig()
    s.advance(100)
    s._wall0 += timedelta(seconds=1000)  # NTP sets the clock forward: the instant has passed
    s.advance(5)  # the next timer of any kind notices the jump
    assert len(fired) == 1 and fired[0] - due <= timedelta(seconds=1005 - 500)  # not 500 s more
    assert fired[0] <= due + timedelta(seconds=505) and s.pending == 1  # only the tick is left


def test_a_wall_timer_fires_at_its_instant_when_the_wall_clock_is_set_forward_less_than_its_wait():
    s, fired, due, timedelta = wall_jump_rig()
    s._wall0 += timedelta(seconds=300)
    s.advance(299)  # 300 s of wall time are left at the jump, 299 s later (+ the tick's 5) it fires
    assert not fired
    s.advance(10)
    assert len(fired) == 1 and abs((fired[0] - due).total_seconds()) <= 5


def test_a_wall_timer_waits_for_its_instant_when_the_wall_clock_is_set_back():
    s, fired, due, timedelta = wall_jump_rig()
    s._wall0 -= timedelta(seconds=3600)
    s.advance(700)  # its monotonic wait is over, its wall instant is not
    assert not fired
    s.advance(3600 - 700 + 600 + 5)
    assert len(fired) == 1 and abs((fired[0] - due).total_seconds()) <= 5


def test_a_cancelled_wall_timer_never_fires_even_after_a_jump():
    s, fired, due, timedelta = wall_jump_rig()
    s._wall0 += timedelta(seconds=30)
    s.advance(5)
    s._wall0 += timedelta(seconds=30)
    timers = list(s._wall_timers)
    assert len(timers) == 1
    timers[0].cancel()
    s.advance(5000)
    assert not fired and not s._wall_timers


def test_a_wall_timer_on_the_virtual_time_loop_follows_a_wall_clock_set_forward():
    from datetime import timedelta

    loop = VirtualTimeLoop()

    async def main() -> float:
        s = LoopScheduler()
        fired = asyncio.Event()
        s.call_at_wall(s.now() + timedelta(hours=1), fired.set)
        t0 = loop.time()
        s.call_later(10, lambda: None)  # another timer
        await asyncio.sleep(5)
        loop.wall_start += timedelta(minutes=50)  # the wall clock jumps 50 min forward
        await fired.wait()
        return loop.time() - t0

    try:
        waited = loop.run_until_complete(main())
    finally:
        loop.close()
    assert 600 <= waited <= 610  # 10 min of wall time were left: not the 55 min the monotonic timer had

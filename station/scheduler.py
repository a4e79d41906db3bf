"""One source of time for a station: ``now()`` (wall clock), ``monotonic()`` and one-shot timers.

Everything periodic in the station (heartbeat, sampled and clock-aligned meter values, connection
timeout, retries, checkpoints) is a one-shot timer re-armed when it fires: no polling loops, so an
idle station wakes only for its own timers. What is due at a wall-clock instant (a charging
profile's period boundary, a reservation's expiry) is a ``call_at_wall`` timer, armed again from
the wall clock when it is found to have jumped (see ``_WallClock``).

- ``LoopScheduler``: the running asyncio loop (production, and in-process tests on a
  ``VirtualTimeLoop``). Wall time follows the system clock, or the loop's clock when the loop is
  virtual, so timestamps move with virtual time.
- ``ManualScheduler``: no loop at all; time moves only with ``advance()``, which fires the due
  timers in order. For the pure core's unit tests and for a fleet's shared timer wheel.
- ``TimerWheel``: one shared timer wheel for the many stations of a fleet (station/sim/fleet.py):
  timers are kept in buckets of ``tick`` seconds and the wheel holds a single loop timer, for the
  earliest bucket, whatever the number of stations. ``TimerWheel.station(phase)`` gives each
  station its own view with a fixed jitter, so that timers set at the same moment for the same
  interval (10,000 stations booted together, clock-aligned meter values) do not all wake together.
- ``VirtualTimeLoop``: an asyncio event loop whose clock jumps to the next timer whenever nothing
  is ready (no callback, no readable socket, no thread at work). Real loopback sockets still work:
  data written on loopback is readable before the write returns. A test that waits 300 s of
  heartbeat interval takes milliseconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import selectors
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """What the station needs of time. Also a ``station.core.clock.Clock``."""

    def now(self) -> datetime: ...
    def monotonic(self) -> float: ...
    def call_at(self, when: float, fn: Callable[..., Any], *args: Any) -> Timer: ...
    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer: ...
    def call_at_wall(self, when: datetime, fn: Callable[..., Any], *args: Any) -> Timer: ...
    def on_wall_jump(self, cb: Callable[[], Any]) -> None: ...
    def off_wall_jump(self, cb: Callable[[], Any]) -> None: ...


# A change of the wall clock against monotonic time beyond this is a jump (NTP stepping the clock,
# an operator setting it): timers on wall-clock instants are then armed again from wall time.
WALL_JUMP_S = 1.0
# while someone listens for wall-clock jumps, the clock is also looked at this often (a jump is no
# event one can wait for; other timers firing look at it too, this bounds the delay when none do)
WALL_WATCH_S = 10.0


class _WallTimer:
    __slots__ = ("when", "fn", "args", "inner", "owner", "cancelled")

    def __init__(self, when: datetime, fn: Callable[..., Any], args: tuple, owner: _WallClock) -> None:
        self.when, self.fn, self.args, self.owner = when, fn, args, owner
        self.inner: Any = None
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        if self.inner is not None:
            self.inner.cancel()
        self.owner._wall_timers.discard(self)


class _WallClock:
    """Timers on wall-clock instants (``call_at_wall``: a charging-profile period boundary, a
    reservation's expiry) over the scheduler's monotonic timers.

    A monotonic timer armed for "in 600 s" fires late by the step when the wall clock is set
    forward meanwhile, early when it is set back. So whenever any timer of the scheduler fires
    (the station always has some: its checkpoint every few seconds, the heartbeat), the offset
    between wall and monotonic time is compared with the last one seen; when it moved by more
    than WALL_JUMP_S every wall timer is armed again from the wall clock (one whose instant has
    passed fires at once) and the ``on_wall_jump`` listeners are told (what depends on the wall
    time now, e.g. the charging limit, is evaluated again). A wall timer that fires early (the
    clock was set back) is armed again instead of running."""

    _wall_timers: set[_WallTimer]
    _wall_offset: float | None
    _wall_listeners: dict[Callable[[], Any], None]  # an ordered set: O(1) removal (fleets)

    def now(self) -> datetime: ...  # provided by the scheduler
    def monotonic(self) -> float: ...
    def _raw_call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Any: ...

    def _offset_now(self) -> float:
        return self.now().timestamp() - self.monotonic()

    def call_at_wall(self, when: datetime, fn: Callable[..., Any], *args: Any) -> Timer:
        """Call ``fn(*args)`` when the wall clock reaches ``when`` (at once if it has)."""
        t = _WallTimer(when, fn, args, self)
        if self._wall_offset is None:
            self._wall_offset = self._offset_now()
        self._wall_timers.add(t)
        self._arm_wall(t)
        return t

    def _arm_wall(self, t: _WallTimer) -> None:
        if t.inner is not None:
            t.inner.cancel()
        t.inner = self._raw_call_later(max(0.0, (t.when - self.now()).total_seconds()), self._wall_fired, t)

    def _wall_fired(self, t: _WallTimer) -> None:
        self.check_wall_clock()
        if t.cancelled:
            return
        if (t.when - self.now()).total_seconds() > WALL_JUMP_S:
            self._arm_wall(t)  # early: the clock was set back; armed again for its instant
            return
        self._wall_timers.discard(t)
        t.fn(*t.args)

    _wall_watch: Any = None  # the watch timer while there are listeners

    def on_wall_jump(self, cb: Callable[[], Any]) -> None:
        """``cb()`` after the wall timers were armed again for a jump of the wall clock (noticed
        within WALL_WATCH_S)."""
        self._wall_listeners[cb] = None
        if self._wall_offset is None:
            self._wall_offset = self._offset_now()
        if self._wall_watch is None:
            self._wall_watch = self._raw_call_later(WALL_WATCH_S, self._watch_fired)

    def off_wall_jump(self, cb: Callable[[], Any]) -> None:
        """Stop telling ``cb`` (a stopped service: nothing may keep it alive across a reset)."""
        self._wall_listeners.pop(cb, None)
        if not self._wall_listeners and self._wall_watch is not None:
            self._wall_watch.cancel()
            self._wall_watch = None

    def _watch_fired(self) -> None:
        self._wall_watch = None
        self.check_wall_clock()
        if self._wall_listeners:
            self._wall_watch = self._raw_call_later(WALL_WATCH_S, self._watch_fired)

    def check_wall_clock(self) -> bool:
        """Re-arm the wall timers if the wall clock jumped since the last check (then tell the
        ``on_wall_jump`` listeners); True if it did."""
        offset = self._offset_now()
        last, self._wall_offset = self._wall_offset, offset
        if last is None or abs(offset - last) <= WALL_JUMP_S:
            return False
        for t in list(self._wall_timers):
            self._arm_wall(t)
        for cb in list(self._wall_listeners):
            cb()
        return True

    def _run(self, fn: Callable[..., Any], args: tuple) -> None:
        """Every timer of the scheduler runs through here: the wall clock is checked first."""
        if self._wall_timers or self._wall_listeners:
            self.check_wall_clock()
        fn(*args)


class LoopScheduler(_WallClock):
    """Time and timers of the running asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        self._wall0: datetime | None = None
        self._mono0 = 0.0
        self._wall_timers = set()
        self._wall_offset = None
        self._wall_listeners = {}

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def now(self) -> datetime:
        loop = self.loop
        if isinstance(loop, VirtualTimeLoop):
            return loop.wall_start + timedelta(seconds=loop.time() - loop.time_start)
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return self.loop.time()

    def call_at(self, when: float, fn: Callable[..., Any], *args: Any) -> Timer:
        return self.loop.call_at(when, self._run, fn, args)

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        return self.loop.call_later(max(0.0, delay), self._run, fn, args)

    def _raw_call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Any:
        return self.loop.call_later(max(0.0, delay), fn, *args)


class _ManualTimer:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualScheduler(_WallClock):
    """Time that moves only when told to; due timers fire, in order, inside ``advance()``. Tests
    set the wall clock by moving ``_wall0``."""

    def __init__(self, start: datetime | None = None) -> None:
        self._wall0 = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 1000.0
        self._mono0 = self._mono
        self._heap: list[tuple[float, int, _ManualTimer, Callable[..., Any], tuple]] = []
        self._seq = itertools.count()
        self._wall_timers = set()
        self._wall_offset = None
        self._wall_listeners = {}

    def now(self) -> datetime:
        return self._wall0 + timedelta(seconds=self._mono - self._mono0)

    def monotonic(self) -> float:
        return self._mono

    def call_at(self, when: float, fn: Callable[..., Any], *args: Any) -> Timer:
        t = _ManualTimer()
        heapq.heappush(self._heap, (when, next(self._seq), t, fn, args))
        return t

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        return self.call_at(self._mono + max(0.0, delay), fn, *args)

    def _raw_call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Any:
        t = _ManualTimer()
        heapq.heappush(self._heap, (self._mono + max(0.0, delay), next(self._seq), t, fn, args))
        return t

    @property
    def pending(self) -> int:
        """Timers armed by the scheduler's users (not its own wall-clock watch)."""
        return sum(1 for entry in self._heap if not entry[2].cancelled and entry[2] is not self._wall_watch)

    def advance(self, seconds: float) -> None:
        end = self._mono + seconds
        while self._heap and self._heap[0][0] <= end:
            when, _, t, fn, args = heapq.heappop(self._heap)
            if t.cancelled:
                continue
            self._mono = max(self._mono, when)
            self._run(fn, args)
        self._mono = end


class _WheelTimer:
    __slots__ = ("fn", "args", "bucket", "wheel")

    def __init__(self, fn: Callable[..., Any], args: tuple, bucket: int, wheel: TimerWheel) -> None:
        self.fn = fn
        self.args = args
        self.bucket = bucket
        self.wheel: TimerWheel | None = wheel

    def cancel(self) -> None:
        """O(1): the timer leaves its bucket at once (a re-armed heartbeat leaves nothing behind)."""
        wheel = self.wheel
        if wheel is not None:
            self.wheel = None
            wheel.pending -= 1
            bucket = wheel._buckets.get(self.bucket)
            if bucket is not None:
                bucket.pop(self, None)


class TimerWheel(_WallClock):
    """Timers of many stations on one loop timer, in buckets of ``tick`` seconds.

    A timer never fires before its time and at most ``tick`` after it. Within a bucket, timers run
    in the order they were set. ``wakeups`` counts the loop timer's runs, ``fired`` the timers
    run; both let a fleet show what its idle stations cost. Wall-clock timers and jump listeners
    (``call_at_wall``, ``on_wall_jump``) are the wheel's, shared by its stations: the wall clock
    is looked at once per run of the wheel, not once per station."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, tick: float = 0.01) -> None:
        self._clock = LoopScheduler(loop)
        self.tick = tick
        self._buckets: dict[int, dict[_WheelTimer, None]] = {}
        self._heap: list[int] = []  # bucket numbers, each once
        self._handle: asyncio.TimerHandle | None = None
        self._armed: int | None = None  # the bucket the loop timer is set for
        self.pending = 0
        self.wakeups = 0
        self.fired = 0
        self._wall_timers = set()
        self._wall_offset = None
        self._wall_listeners = {}

    def now(self) -> datetime:
        return self._clock.now()

    def monotonic(self) -> float:
        return self._clock.monotonic()

    def call_at(self, when: float, fn: Callable[..., Any], *args: Any) -> Timer:
        n = math.ceil(when / self.tick)
        bucket = self._buckets.get(n)
        if bucket is None:
            bucket = self._buckets[n] = {}
            heapq.heappush(self._heap, n)
        t = _WheelTimer(fn, args, n, self)
        bucket[t] = None
        self.pending += 1
        if self._armed is None or n < self._armed:
            self._arm(n)
        return t

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        return self.call_at(self.monotonic() + max(0.0, delay), fn, *args)

    def _raw_call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Any:
        return self.call_later(delay, fn, *args)

    def station(self, phase: float, max_jitter: float = 2.0) -> StationClock:
        """A station's view of the wheel; ``phase`` in [0, 1) fixes its share of the jitter."""
        return StationClock(self, phase, max_jitter)

    def _arm(self, n: int) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed = n
        self._handle = self._clock.loop.call_at(n * self.tick, self._run)

    def _run(self) -> None:  # type: ignore[override]
        self._handle = None
        self._armed = None
        self.wakeups += 1
        if self._wall_timers or self._wall_listeners:
            self.check_wall_clock()
        loop = self._clock.loop
        due_n = math.floor(loop.time() / self.tick + 1e-9)
        heap, buckets = self._heap, self._buckets
        due = []  # taken out first: a timer set by one that fires runs on the next turn, never in this one
        while heap and heap[0] <= due_n:
            bucket = buckets.pop(heapq.heappop(heap), None)
            if bucket:
                due.append(bucket)
        for bucket in due:
            for t in bucket:
                if t.wheel is None:
                    continue  # cancelled by a timer of the same turn
                t.wheel = None
                self.pending -= 1
                self.fired += 1
                try:
                    t.fn(*t.args)
                except Exception as e:  # as the loop does for its own timers: report, go on
                    loop.call_exception_handler({"message": "exception in a timer of the fleet's wheel",
                                                 "exception": e})
        while heap and not buckets.get(heap[0]):
            buckets.pop(heapq.heappop(heap), None)  # emptied by cancels
        if heap:
            self._arm(heap[0])


class StationClock:
    """One station's Scheduler on a shared :class:`TimerWheel`.

    A timer of ``JITTER_FROM`` seconds or more is moved later by ``phase`` times the smaller of
    ``max_jitter`` and a tenth of its delay: the station's timers keep their intervals, but
    stations with different phases wake at different moments. Short timers (status delays,
    retries of a second) are not moved."""

    JITTER_FROM = 5.0
    __slots__ = ("wheel", "phase", "max_jitter")

    def __init__(self, wheel: TimerWheel, phase: float, max_jitter: float = 2.0) -> None:
        self.wheel = wheel
        self.phase = phase
        self.max_jitter = max_jitter

    def now(self) -> datetime:
        return self.wheel.now()

    def monotonic(self) -> float:
        return self.wheel.monotonic()

    def _jitter(self, delay: float) -> float:
        return self.phase * min(self.max_jitter, delay / 10) if delay >= self.JITTER_FROM else 0.0

    def call_at(self, when: float, fn: Callable[..., Any], *args: Any) -> Timer:
        return self.wheel.call_at(when + self._jitter(when - self.wheel.monotonic()), fn, *args)

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        return self.wheel.call_later(delay + self._jitter(delay), fn, *args)

    # wall-clock instants are the same for every station: the wheel's, without jitter
    def call_at_wall(self, when: datetime, fn: Callable[..., Any], *args: Any) -> Timer:
        return self.wheel.call_at_wall(when, fn, *args)

    def on_wall_jump(self, cb: Callable[[], Any]) -> None:
        self.wheel.on_wall_jump(cb)

    def off_wall_jump(self, cb: Callable[[], Any]) -> None:
        self.wheel.off_wall_jump(cb)

    def check_wall_clock(self) -> bool:
        return self.wheel.check_wall_clock()


class _VirtualSelector:
    """Wraps the loop's selector: never sleeps for real while a timer could simply be jumped to."""

    def __init__(self, selector: selectors.BaseSelector, loop: VirtualTimeLoop) -> None:
        self._sel = selector
        self._loop = loop

    def select(self, timeout: float | None = None) -> list:
        events = self._sel.select(0)
        if events or timeout == 0:
            return events
        if self._loop.threads_busy:
            # a thread (to_thread, executor) is working: wait for it in real time, and let virtual
            # time pass as much as real time did
            t0 = time.monotonic()
            events = self._sel.select(0.05 if timeout is None else min(timeout, 0.05))
            self._loop.skip(time.monotonic() - t0)
            return events
        # give loopback peers one more chance (a connect() handshake in flight), then jump
        events = self._sel.select(0.0002)
        if events:
            return events
        if timeout is None:
            return self._sel.select(None)  # nothing scheduled at all: only I/O can wake us
        self._loop.skip(timeout)
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sel, name)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time (tests): idle time is skipped, not waited."""

    def __init__(self) -> None:
        super().__init__()
        self._vtime = 1000.0
        self.time_start = self._vtime
        self.wall_start = datetime.now(UTC).replace(microsecond=0)
        self._threads = 0
        self._selector = _VirtualSelector(self._selector, self)  # type: ignore[assignment]

    def time(self) -> float:
        return self._vtime

    def skip(self, seconds: float) -> None:
        if seconds > 0:
            self._vtime += seconds

    @property
    def threads_busy(self) -> bool:
        return self._threads > 0

    def run_in_executor(self, executor: Any, func: Callable[..., Any], *args: Any) -> asyncio.Future:
        fut = super().run_in_executor(executor, func, *args)
        self._threads += 1

        def done(_: asyncio.Future) -> None:
            self._threads -= 1

        fut.add_done_callback(done)
        return fut

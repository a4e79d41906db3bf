"""Meter value schedules, version independent: sampled (every N seconds of a transaction) and
clock-aligned (at every multiple of N seconds after midnight UTC), and the station's total reading.

A schedule is a one-shot timer on the station's Scheduler, re-armed when it fires; it does not
poll. The interval is asked for again at every arming, and ``interval_changed()`` re-arms at once,
so a new interval (1.6 MeterValueSampleInterval / ClockAlignedDataInterval, 2.0.1
SampledDataTxUpdatedInterval / AlignedDataInterval) applies from the next sample. An interval of 0
leaves no timer at all. What a sample holds and how it is sent is the adapter's callback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from hal.types import MeterReading
from station.scheduler import Scheduler, Timer

Interval = Callable[[], float]


class _Schedule:
    """A one-shot timer re-armed when it fires, calling ``fire()`` from ``start()`` until ``stop()``.
    Subclasses say when the next one is due (``_next``)."""

    def __init__(self, scheduler: Scheduler, interval: Interval, fire: Callable[[], None]) -> None:
        self.scheduler = scheduler
        self.interval = interval
        self.fire = fire
        self._timer: Timer | None = None
        self.running = False

    def start(self) -> None:
        self.running = True
        self._started()
        self._arm()

    def stop(self) -> None:
        self.running = False
        self._cancel()

    def interval_changed(self) -> None:
        """The next one comes by the new interval (at once, if that is already past)."""
        if self.running:
            self._reset()
            self._arm()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        self._cancel()
        interval = float(self.interval())
        if interval <= 0:
            return
        self._timer = self.scheduler.call_later(self._next(interval), self._fired)

    def _fired(self) -> None:
        self._timer = None
        if not self.running:
            return
        self._fired_now()
        self._arm()
        self.fire()

    def _started(self) -> None: ...
    def _reset(self) -> None: ...
    def _fired_now(self) -> None: ...

    def _next(self, interval: float) -> float:
        raise NotImplementedError


class SampledSchedule(_Schedule):
    """Calls ``fire()`` every ``interval()`` seconds from ``start()`` until ``stop()``."""

    def __init__(self, scheduler: Scheduler, interval: Interval, fire: Callable[[], None]) -> None:
        super().__init__(scheduler, interval, fire)
        self._last = scheduler.monotonic()

    def _started(self) -> None:
        self._last = self.scheduler.monotonic()

    def _fired_now(self) -> None:
        self._last = self.scheduler.monotonic()

    def _next(self, interval: float) -> float:
        # one new interval after the last sample (or now, if that is past)
        return max(0.0, self._last + interval - self.scheduler.monotonic())


def next_aligned(now: datetime, interval_s: float) -> datetime:
    """The first multiple of ``interval_s`` after midnight (of ``now``'s day, UTC) strictly after ``now``."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = (now - midnight).total_seconds()
    return midnight + timedelta(seconds=(int(elapsed // interval_s) + 1) * interval_s)


class AlignedSchedule(_Schedule):
    """Calls ``fire()`` at every clock-aligned boundary of ``interval()`` seconds."""

    def __init__(self, scheduler: Scheduler, interval: Interval, fire: Callable[[], None]) -> None:
        super().__init__(scheduler, interval, fire)
        self._due: datetime | None = None

    def _reset(self) -> None:
        self._due = None

    def _next(self, interval: float) -> float:
        now = self.scheduler.now()
        # after a boundary fired, the next one is after it even if the timer woke a hair early
        self._due = next_aligned(max(now, self._due) if self._due is not None else now, interval)
        return (self._due - now).total_seconds()


def station_total(readings: Sequence[MeterReading]) -> MeterReading | None:
    """The station's main meter as the sum of its EVSEs' meters: energy, power and per-phase
    currents add up; voltage and frequency are the grid's (the first meter that has them)."""
    if not readings:
        return None

    def total(values: list[float | None]) -> float | None:
        return None if any(v is None for v in values) else sum(v for v in values if v is not None)

    currents = [r.current_a for r in readings]
    current: tuple[float, ...] | None = None
    if all(c is not None for c in currents):
        width = max(len(c) for c in currents if c is not None)
        current = tuple(sum(c[i] for c in currents if c is not None and i < len(c)) for i in range(width))
    return MeterReading(
        energy_import_wh=sum(r.energy_import_wh for r in readings),
        energy_export_wh=total([r.energy_export_wh for r in readings]),
        power_w=total([r.power_w for r in readings]),
        current_a=current,
        voltage_v=next((r.voltage_v for r in readings if r.voltage_v is not None), None),
        frequency_hz=next((r.frequency_hz for r in readings if r.frequency_hz is not None), None),
    )

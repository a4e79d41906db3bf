"""IEC 61851-1 control pilot: PWM duty cycle out (the current offered), CP state in.

``offer(amps)``: ``None`` = steady +12 V (no PWM, not offering), ``0`` = nothing to draw
(treated as a pause), a current in A = the duty cycle of IEC 61851-1 table A.8. Below 6 A
(:data:`MIN_CURRENT_A`) an EVSE cannot offer energy: such a current is not offered at all
(steady +12 V, like ``0``), never rounded up to the 10 % (6 A) duty. ``on_state`` reports every
debounced change of the CP state (A-F).
"""

from __future__ import annotations

from typing import Protocol

from hal.types import CpCallback, CpState

MIN_CURRENT_A = 6.0  # IEC 61851-1: the least current a PWM can offer
NOT_OFFERING = 100.0  # steady +12 V: no PWM, the EV may not draw


def offers_energy(amps: float | None) -> bool:
    """Does offering ``amps`` let an EV draw anything? Not below 6 A (IEC 61851-1)."""
    return amps is not None and amps >= MIN_CURRENT_A


def duty_cycle_for_current(amps: float) -> float:
    """Duty cycle (percent) that offers ``amps`` per IEC 61851-1: 6-51 A -> A/0.6, 51-80 A -> A/2.5+64.
    Below 6 A nothing can be offered: 100 % (steady +12 V, not offering)."""
    if amps < MIN_CURRENT_A:
        return NOT_OFFERING
    if amps <= 51:
        return amps / 0.6
    return min(amps / 2.5 + 64, 96.0)


def current_for_duty_cycle(duty: float) -> float:
    """Inverse of :func:`duty_cycle_for_current` for 10-96 % (what an EV reads)."""
    if duty < 8:
        return 0.0
    if duty <= 85:
        return max(duty * 0.6, 6.0)
    return (duty - 64) * 2.5


class ControlPilot(Protocol):
    state: CpState
    offered_a: float | None

    async def offer(self, amps: float | None) -> None: ...
    def on_state(self, cb: CpCallback) -> None: ...


# IEC 61851-1 table A.3: the nominal +12/9/6/3/0/-12 V levels with +-1.5 V bands (wider than the
# standard's +-1 V so that divider tolerances do not matter; the bands do not overlap).
_BANDS: tuple[tuple[float, float, CpState], ...] = (
    (10.5, 14.0, CpState.A),
    (7.5, 10.5, CpState.B),
    (4.5, 7.5, CpState.C),
    (1.5, 4.5, CpState.D),
    (-1.5, 1.5, CpState.E),
    (-14.0, -10.5, CpState.F),
)


def classify_cp(volts: float) -> CpState | None:
    """CP state for the positive level of the pilot in volts; ``None`` between bands or out of range."""
    for low, high, state in _BANDS:
        if low <= volts < high:
            return state
    return None


class Debouncer:
    """Reports a CP state only after ``count`` equal readings in a row; invalid readings restart it."""

    def __init__(self, count: int = 3, initial: CpState = CpState.A) -> None:
        self.count = count
        self.state = initial
        self._candidate: CpState | None = None
        self._seen = 0

    def feed(self, reading: CpState | None) -> CpState | None:
        """Feed one reading; returns the new state when it changes, else ``None``."""
        if reading is None or reading == self.state:
            self._candidate, self._seen = None, 0
            return None
        if reading != self._candidate:
            self._candidate, self._seen = reading, 0
        self._seen += 1
        if self._seen >= self.count:
            self.state, self._candidate, self._seen = reading, None, 0
            return reading
        return None

"""IEC 61851-1 control pilot: PWM duty cycle out (the current offered), CP state in.

``offer(amps)``: ``None`` = steady +12 V (no PWM, not offering), ``0`` = PWM but nothing to draw
(treated as a pause), a current in A = the duty cycle of IEC 61851-1 table A.8. ``on_state``
reports every debounced change of the CP state (A-F).
"""

from __future__ import annotations

from typing import Protocol

from hal.types import CpCallback, CpState


def duty_cycle_for_current(amps: float) -> float:
    """Duty cycle (percent) that offers ``amps`` per IEC 61851-1: 6-51 A -> A/0.6, 51-80 A -> A/2.5+64."""
    if amps < 6:
        return 0.0 if amps <= 0 else 10.0  # below 6 A: cannot charge; 10 % is the lowest defined
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

"""Motor connector lock (socket outlets) driven by two GPIO outputs through an H-bridge.

Config (``[evse.lock]``, ``kind = "gpio"``): ``lock_pin`` and ``unlock_pin`` drive the two
directions of the motor (never both at once); ``feedback`` reads the lock's position switch,
logical "on" = locked. A move is a pulse of ``pulse_ms``; the feedback is then checked and the
move retried up to ``retries`` times. A lock that does not reach the position within
``timeout_s`` reports failure: the station answers UnlockConnector with UnlockFailed or puts the
connector in Faulted with ConnectorLockFailure. Without a feedback switch the lock cannot know
and reports every move as done (document this for such hardware).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hal.gpio import pin_keys, pin_spec
from hal.section import Key

KEYS: dict[str, Key] = {
    **pin_keys("lock_pin", doc="H-bridge input that drives the motor towards locked"),
    **pin_keys("unlock_pin", doc="H-bridge input that drives the motor towards unlocked"),
    **pin_keys("feedback", required=False, doc="position switch, on = locked; -1 = none"),
    "pulse_ms": Key(int, 300, min=10, max=5000, doc="length of one motor pulse"),
    "retries": Key(int, 2, min=0, max=10, doc="extra pulses when the feedback disagrees"),
    "timeout_s": Key((int, float), 3.0, min=0.1, max=60, doc="longest time one lock/unlock may take"),
}


class GpioMotorLock:
    def __init__(self, lock_out: Any, unlock_out: Any, feedback: Any | None = None, pulse_s: float = 0.3,
                 retries: int = 2, timeout_s: float = 3.0) -> None:
        self._lock_out = lock_out
        self._unlock_out = unlock_out
        self._feedback = feedback
        self._pulse_s = pulse_s
        self._retries = retries
        self._timeout_s = timeout_s
        self._lock_out.set(False)
        self._unlock_out.set(False)
        self.locked = feedback.read() if feedback is not None else False
        self.pulses = 0
        self._busy = asyncio.Lock()

    async def _pulse(self, out: Any) -> None:
        other = self._unlock_out if out is self._lock_out else self._lock_out
        other.set(False)  # never drive both half-bridges
        out.set(True)
        self.pulses += 1
        try:
            await asyncio.sleep(self._pulse_s)
        finally:
            out.set(False)

    async def _move(self, to_locked: bool) -> bool:
        async with self._busy:
            out = self._lock_out if to_locked else self._unlock_out
            deadline = time.monotonic() + self._timeout_s
            for _ in range(self._retries + 1):
                await self._pulse(out)
                if self._feedback is None:
                    self.locked = to_locked
                    return True
                if self._feedback.read() == to_locked:
                    self.locked = to_locked
                    return True
                if time.monotonic() >= deadline:
                    break
            self.locked = self._feedback.read()
            return False

    async def lock(self) -> bool:
        return await self._move(True)

    async def unlock(self) -> bool:
        return await self._move(False)

    async def stop(self) -> None:
        self._lock_out.set(False)
        self._unlock_out.set(False)


def build(values: dict[str, Any], ctx: Any) -> GpioMotorLock:
    pins = ctx.pins()
    lock_spec, unlock_spec = pin_spec(values, "lock_pin"), pin_spec(values, "unlock_pin")
    if lock_spec == unlock_spec:
        raise ValueError(f"evse {ctx.evse_id}: lock.unlock_pin: must differ from lock.lock_pin")
    fb = pin_spec(values, "feedback")
    return GpioMotorLock(
        pins.output(lock_spec),
        pins.output(unlock_spec),
        pins.input(fb) if fb is not None else None,
        values["pulse_ms"] / 1000.0,
        values["retries"],
        float(values["timeout_s"]),
    )

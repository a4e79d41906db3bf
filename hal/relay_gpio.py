"""Contactor driven by a GPIO output, with an optional auxiliary (mirror) contact read back.

Config (``[evse.relay]``, ``kind = "gpio"``): ``pin`` drives the contactor coil (through a driver
transistor or relay board); ``feedback`` reads its auxiliary contact, logical "on" = main contacts
closed (set ``feedback_active_low`` for a normally-closed mirror contact that pulls to ground).

With feedback the relay checks every switch after ``settle_ms`` and keeps watching while idle:

* commanded closed but the contacts stay open -> :class:`RelayError` "failed to close"
  (the station puts the connector in Faulted, PowerSwitchFailure, and ends the transaction);
* commanded open but the contacts stay closed -> welded: a PowerSwitchFailure fault is reported
  once and :class:`RelayError` raised; the fault clears when the contacts are seen open again.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hal.aio import stop_task
from hal.gpio import pin_keys, pin_spec
from hal.section import Key
from hal.types import Fault, FaultCallback, Listeners, RelayError

KEYS: dict[str, Key] = {
    **pin_keys("pin", doc="output line of the contactor coil"),
    **pin_keys("feedback", required=False, doc="input line of the auxiliary contact; -1 = none"),
    "settle_ms": Key(int, 150, min=0, max=5000, doc="time the contactor needs to move"),
    "watch_interval_s": Key((int, float), 1.0, min=0.05, max=60, doc="how often feedback is checked while idle"),
}


class GpioRelay:
    def __init__(self, output: Any, feedback: Any | None = None, settle_s: float = 0.15,
                 watch_interval_s: float = 1.0) -> None:
        self._out = output
        self._feedback = feedback
        self._settle_s = settle_s
        self._watch_interval_s = watch_interval_s
        self.closed = False
        self._out.set(False)
        self._faults = Listeners()
        self._fault_active: str | None = None  # "welded" / "opened" while reported
        self._watch: asyncio.Task | None = None
        self._busy = asyncio.Lock()

    def on_fault(self, cb: FaultCallback) -> None:
        self._faults.add(cb)

    def _contacts_closed(self) -> bool | None:
        return None if self._feedback is None else self._feedback.read()

    def _report(self, problem: str | None, info: str = "") -> None:
        if problem == self._fault_active:
            return
        if problem is None:
            self._faults.emit(Fault("PowerSwitchFailure", False, f"contactor feedback agrees again ({info})"))
        else:
            self._faults.emit(Fault("PowerSwitchFailure", True, info))
        self._fault_active = problem

    async def set(self, closed: bool) -> None:
        async with self._busy:
            self._out.set(closed)
            self.closed = closed
            if self._feedback is None:
                return
            await asyncio.sleep(self._settle_s)
            contacts = self._contacts_closed()
            if closed and not contacts:
                self._out.set(False)  # do not leave a coil energized that does not pull in
                self.closed = False
                raise RelayError("contactor failed to close: the feedback contact stays open")
            if not closed and contacts:
                self._report("welded", "contactor welded: still closed after the open command")
                raise RelayError("contactor welded: still closed after the open command")
            self._report(None, "open" if not closed else "closed")

    def check(self) -> None:
        """Compare the feedback with the command once (the idle watch calls this)."""
        contacts = self._contacts_closed()
        if contacts is None or self._busy.locked():
            return
        if not self.closed and contacts:
            self._report("welded", "contactor welded: closed while commanded open")
        elif self.closed and not contacts:
            self._report("opened", "contactor opened by itself while commanded closed")
        else:
            self._report(None, "closed" if contacts else "open")

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(self._watch_interval_s)
            self.check()

    async def start(self) -> None:
        if self._feedback is not None and self._watch is None:
            self._watch = asyncio.get_running_loop().create_task(self._watch_loop(), name="relay-watch")

    async def stop(self) -> None:
        task, self._watch = self._watch, None
        await stop_task(task)
        self._out.set(False)


def build(values: dict[str, Any], ctx: Any) -> GpioRelay:
    pins = ctx.pins()
    out = pins.output(pin_spec(values, "pin"), initial=False)
    fb_spec = pin_spec(values, "feedback")
    feedback = pins.input(fb_spec) if fb_spec is not None else None
    return GpioRelay(out, feedback, values["settle_ms"] / 1000.0, float(values["watch_interval_s"]))

"""Tamper input: the enclosure's tamper switch (door, lid, cabinet) on a GPIO input.

Config (``[hardware]``, station-wide: one enclosure): ``tamper`` is the input line (-1, the
default: none fitted) with the usual pin keys ``tamper_chip``, ``tamper_active_low`` and
``tamper_pull``; logical "on" means tampered (opened). ``tamper_interval_s``: how often the
input is read (a GPIO input is read by polling, like the contactor's aux contact; a level must be
read twice in a row to count, so a single glitch is no tamper).

Each change is reported to ``on_change`` callbacks (``True``: tampered). An input already active
when the station starts is reported at start (the station cannot know whether it was reported
before a power cut). The station turns an activation into the security event
TamperDetectionActivated, the same path as the simulator's ``POST /api/tamper``. A read that fails
is logged once (and once when reads work again); the watch goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from hal.aio import stop_task
from hal.gpio import pin_keys, pin_spec
from hal.section import Key
from hal.types import HalError, Listeners

log = logging.getLogger("hal")

KEYS: dict[str, Key] = {
    **pin_keys("tamper", required=False, doc="input line of the enclosure's tamper switch (on = opened); -1 = none"),
    "tamper_interval_s": Key((int, float), 0.5, min=0.05, max=10, doc="how often the tamper input is read"),
}


class TamperInput:
    def __init__(self, pin: Any, interval_s: float = 0.5) -> None:
        self._pin = pin
        self.interval_s = interval_s
        self.active = False
        self._listeners = Listeners()
        self._candidate: bool | None = None  # a new level read once, not yet taken
        self._failing = False
        self._task: asyncio.Task | None = None

    def on_change(self, cb: Callable[[bool], None]) -> None:
        self._listeners.add(cb)

    def _read(self) -> bool | None:
        try:
            level = bool(self._pin.read())
        except (OSError, HalError) as e:
            if not self._failing:
                log.error("tamper input: cannot read it: %s", e)
                self._failing = True
            return None
        if self._failing:
            log.warning("tamper input: readable again")
            self._failing = False
        return level

    def poll(self) -> None:
        """Read once: a level other than the current one is taken when read twice in a row."""
        level = self._read()
        if level is None or level == self.active:
            self._candidate = None
            return
        if self._candidate is level:
            self._candidate = None
            self.active = level
            log.warning("tamper input %s", "active: the enclosure was opened" if level else "inactive again")
            self._listeners.emit(level)
        else:
            self._candidate = level

    async def start(self) -> None:
        if self._read():
            self.active = True
            log.warning("tamper input active at start")
            self._listeners.emit(True)
        self._task = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.poll()

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        self._pin.close()


def build_tamper(values: dict[str, Any], pins: Any) -> TamperInput | None:
    """The tamper input the ``[hardware]`` values describe (checked against KEYS), or None."""
    spec = pin_spec(values, "tamper")
    if spec is None:
        return None
    return TamperInput(pins.input(spec), float(values["tamper_interval_s"]))

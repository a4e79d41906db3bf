"""Contactor (relay) that switches the power to the EV.

``set(closed)`` switches it; backends with a feedback contact check the result and raise
:class:`~hal.types.RelayError` (failed to close) or report a welded contact through the fault
listeners. The station opens the relay before it unlocks and closes it only after locking.
"""

from __future__ import annotations

from typing import Protocol

from hal.types import FaultCallback, Listeners


class Relay(Protocol):
    closed: bool

    async def set(self, closed: bool) -> None: ...
    def on_fault(self, cb: FaultCallback) -> None: ...


class SimRelay:
    """A relay in memory. ``weld()`` simulates a welded contact for fault tests."""

    def __init__(self) -> None:
        self.closed = False
        self.welded = False
        self.switch_count = 0
        self._faults = Listeners()

    async def set(self, closed: bool) -> None:
        if closed != self.closed:
            self.switch_count += 1
        if self.welded and not closed:
            from hal.types import Fault, RelayError

            self._faults.emit(Fault("PowerSwitchFailure", True, "relay welded"))
            raise RelayError("relay welded: still closed after open command")
        self.closed = closed

    def on_fault(self, cb: FaultCallback) -> None:
        self._faults.add(cb)

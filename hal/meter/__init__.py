"""Energy meters. Backends: ``sim`` (the simulated EV's energy), ``modbus`` (RTU / TCP), ``i2c``.

``read()`` returns a :class:`~hal.types.MeterReading` or raises :class:`~hal.types.MeterError`.
Backends retry transient errors themselves; the station keeps the last good reading and reports
a PowerMeterFailure once when a meter stops answering.
"""

from __future__ import annotations

from typing import Protocol

from hal.types import MeterReading


class EnergyMeter(Protocol):
    async def read(self) -> MeterReading: ...
    async def close(self) -> None: ...

"""OCPP 1.6 MeterValue / SampledValue objects from the core's neutral samples."""

from __future__ import annotations

from datetime import datetime

from station.core.clock import iso
from station.core.metering import Sample

# core unit -> OCPP 1.6 UnitOfMeasure (1.6 has no "Hz"; its note on Frequency names "Hertz")
UNITS_16 = {"Hz": "Hertz"}


def meter_value(samples: list[Sample], context: str, at: datetime, location: str = "Outlet") -> dict:
    """One 1.6 MeterValue: a timestamp and the samples as sampledValue, all with ``context``."""
    return {"timestamp": iso(at), "sampledValue": [sampled_value(s, context, location) for s in samples]}


def sampled_value(s: Sample, context: str, location: str = "Outlet") -> dict:
    out = {"value": _num(s.value), "context": context, "format": "Raw", "measurand": s.measurand, "location": location}
    if s.unit:
        out["unit"] = UNITS_16.get(s.unit, s.unit)
    if s.phase:
        out["phase"] = s.phase
    return out


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"

"""OCPP 2.0.1 MeterValueType / SampledValueType objects from the core's neutral samples.

In 2.0.1 a sampled value is a number and its unit an object (``unitOfMeasure``); energy is
reported in Wh, the default unit, so it carries no unitOfMeasure at all.
"""

from __future__ import annotations

from datetime import datetime

from station.core.clock import iso
from station.core.metering import Sample

DEFAULT_UNIT = "Wh"


def meter_value(samples: list[Sample], context: str, at: datetime, location: str = "Outlet") -> dict:
    """One MeterValueType: a timestamp and the samples, all with ``context`` (ReadingContextEnumType)."""
    return {"timestamp": iso(at), "sampledValue": [sampled_value(s, context, location) for s in samples]}


def sampled_value(s: Sample, context: str, location: str = "Outlet") -> dict:
    value = int(s.value) if float(s.value).is_integer() else float(s.value)
    out: dict = {"value": value, "context": context, "measurand": s.measurand, "location": location}
    if s.phase:
        out["phase"] = s.phase
    if s.unit and s.unit != DEFAULT_UNIT:
        out["unitOfMeasure"] = {"unit": "Celsius" if s.unit == "Celsius" else s.unit}
    return out

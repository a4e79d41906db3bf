"""Turn a meter reading into OCPP sampled values for the configured measurands.

Measurands use the OCPP names (``Energy.Active.Import.Register``, ``Power.Active.Import``,
``Current.Import``, ``Voltage``, ``Frequency``, ...). Per-phase quantities give one value per
connected phase. Quantities the meter cannot deliver are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

from hal.types import MeterReading

SUPPORTED_MEASURANDS = (
    "Energy.Active.Import.Register",
    "Energy.Active.Export.Register",
    "Power.Active.Import",
    "Current.Import",
    "Current.Offered",
    "Voltage",
    "Frequency",
    "Power.Offered",
    "Power.Factor",
    "Temperature",
    "SoC",
)

PHASES = ("L1", "L2", "L3")


@dataclass(frozen=True, slots=True)
class Sample:
    measurand: str
    value: float
    unit: str
    phase: str | None = None


def parse_measurands(csv: str) -> list[str]:
    return [m.strip() for m in csv.split(",") if m.strip()]


def invalid_measurands(csv: str) -> list[str]:
    return [m for m in parse_measurands(csv) if m not in SUPPORTED_MEASURANDS]


def samples_for(
    reading: MeterReading,
    measurands: list[str],
    phases: int = 3,
    offered_a: float | None = None,
) -> list[Sample]:
    out: list[Sample] = []
    for m in measurands:
        if m == "Energy.Active.Import.Register":
            out.append(Sample(m, round(reading.energy_import_wh, 1), "Wh"))
        elif m == "Energy.Active.Export.Register" and reading.energy_export_wh is not None:
            out.append(Sample(m, round(reading.energy_export_wh, 1), "Wh"))
        elif m == "Power.Active.Import" and reading.power_w is not None:
            out.append(Sample(m, round(reading.power_w, 1), "W"))
        elif m == "Current.Import" and reading.current_a is not None:
            for i, amps in enumerate(reading.current_a[:phases]):
                out.append(Sample(m, round(amps, 2), "A", PHASES[i]))
        elif m == "Voltage" and reading.voltage_v is not None:
            for i, volts in enumerate(reading.voltage_v[:phases]):
                out.append(Sample(m, round(volts, 1), "V", PHASES[i] + "-N"))
        elif m == "Frequency" and reading.frequency_hz is not None:
            out.append(Sample(m, round(reading.frequency_hz, 2), "Hz"))
        elif m == "Current.Offered" and offered_a is not None:
            out.append(Sample(m, round(offered_a, 1), "A"))
        elif m == "Power.Offered" and offered_a is not None:
            out.append(Sample(m, round(offered_a * 230.0 * phases, 1), "W"))
        elif m == "Power.Factor" and reading.power_factor is not None:
            out.append(Sample(m, reading.power_factor, ""))
        elif m == "Temperature" and reading.temperature_c is not None:
            out.append(Sample(m, reading.temperature_c, "Celsius"))
    return out

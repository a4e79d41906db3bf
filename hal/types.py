"""Plain data shared by the hal device kinds: pilot states, meter readings, id tokens, errors."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field


class HalError(Exception):
    """A device did not do what it was told. ``error_code`` is the OCPP 1.6 ChargePointErrorCode."""

    error_code = "OtherError"

    def __init__(self, message: str, error_code: str | None = None) -> None:
        super().__init__(message)
        if error_code:
            self.error_code = error_code


class LockError(HalError):
    error_code = "ConnectorLockFailure"


class RelayError(HalError):
    error_code = "PowerSwitchFailure"


class MeterError(HalError):
    error_code = "PowerMeterFailure"


class ReaderError(HalError):
    error_code = "ReaderFailure"


class CpState(enum.StrEnum):
    """IEC 61851-1 control pilot states as seen by the EVSE."""

    A = "A"  # +12 V: no EV
    B = "B"  # +9 V: EV connected, not ready
    C = "C"  # +6 V: EV ready, charging requested
    D = "D"  # +3 V: charging with ventilation
    E = "E"  # 0 V: short / no power
    F = "F"  # -12 V: EVSE not available / fault


@dataclass(slots=True)
class MeterReading:
    """One snapshot of an energy meter. Missing quantities are ``None``."""

    energy_import_wh: float
    energy_export_wh: float | None = None
    power_w: float | None = None
    current_a: tuple[float, ...] | None = None  # per phase L1..L3
    voltage_v: tuple[float, ...] | None = None  # per phase L1-N..L3-N
    frequency_hz: float | None = None
    power_factor: float | None = None
    temperature_c: float | None = None


@dataclass(frozen=True, slots=True)
class IdToken:
    """A card or other identifier presented at a reader. ``type`` uses OCPP 2.0.1 IdTokenEnumType names."""

    id_token: str
    type: str = "ISO14443"


@dataclass(slots=True)
class Fault:
    """A hardware fault report: OCPP 1.6 error code, whether active, free text, and the connector
    of the EVSE it concerns (its pilot or lock; 0: the whole EVSE, e.g. relay, meter, RCD)."""

    error_code: str
    active: bool
    info: str = ""
    connector_id: int = 0


FaultCallback = Callable[[Fault], None]
TokenCallback = Callable[[IdToken], None]
CpCallback = Callable[[CpState], None]


@dataclass
class Listeners:
    """A tiny fan-out helper used by devices that report events."""

    callbacks: list[Callable] = field(default_factory=list)

    def add(self, cb: Callable) -> None:
        self.callbacks.append(cb)

    def emit(self, *args: object) -> None:
        for cb in list(self.callbacks):
            cb(*args)

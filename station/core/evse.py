"""EVSEs and connectors: the facts the station knows about each outlet and the OCPP status they imply.

Status is *derived* from facts (plugged, faults, availability, transaction, reservation, energy
flow) rather than stored, so it can never disagree with them. Names follow OCPP 1.6
ChargePointStatus; the 2.0.1 adapter maps them to ConnectorStatusEnumType.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from station.core.transaction import Transaction


class Status(enum.StrEnum):
    Available = "Available"
    Preparing = "Preparing"
    Charging = "Charging"
    SuspendedEV = "SuspendedEV"
    SuspendedEVSE = "SuspendedEVSE"
    Finishing = "Finishing"
    Reserved = "Reserved"
    Unavailable = "Unavailable"
    Faulted = "Faulted"


# OCPP 1.6 ChargePointErrorCode values
ERROR_CODES = (
    "ConnectorLockFailure",
    "EVCommunicationError",
    "GroundFailure",
    "HighTemperature",
    "InternalError",
    "LocalListConflict",
    "NoError",
    "OtherError",
    "OverCurrentFailure",
    "OverVoltage",
    "PowerMeterFailure",
    "PowerSwitchFailure",
    "ReaderFailure",
    "ResetFailure",
    "UnderVoltage",
    "WeakSignal",
)

# Errors that make a connector unusable (Faulted). Others are reported as warnings with the current status.
# EVCommunicationError is not one: OCPP 1.6 section 7.6 says it "is not a real error in the sense
# that the Charge Point doesn't need to go to the faulted state. Instead, it should go to the
# SuspendedEVSE state" (see Connector.status).
BLOCKING_ERRORS = frozenset(
    {
        "ConnectorLockFailure",
        "GroundFailure",
        "HighTemperature",
        "InternalError",
        "OverCurrentFailure",
        "OverVoltage",
        "PowerSwitchFailure",
        "UnderVoltage",
        "OtherError",
    }
)


@dataclass
class Reservation:
    reservation_id: int
    id_tag: str
    expiry_monotonic: float
    parent_id_tag: str | None = None


@dataclass
class PendingAuthorization:
    """A driver identified before plugging in: waits for the cable until ``deadline``."""

    id_tag: str
    parent_id_tag: str | None
    deadline: float
    remote: bool = False
    charging_profile: dict | None = None
    id_token_type: str = "ISO14443"


@dataclass
class Connector:
    connector_id: int
    operative: bool = True
    scheduled_operative: bool | None = None  # ChangeAvailability waiting for the transaction to end
    faults: dict[str, str] = field(default_factory=dict)  # error code -> info, active faults
    plugged: bool = False
    ev_requesting: bool = False  # CP state C/D
    energy_offered: bool = False  # a current > 0 offered with the PWM (the contactor follows the EV, see Station)
    limited_to_zero: bool = False  # smart charging / invalid id: EVSE suspends
    ventilation_required: bool = False  # CP state D: this station has no ventilation, no energy
    transaction: Transaction | None = None
    pending: PendingAuthorization | None = None
    starting: PendingAuthorization | None = None  # authorized and plugged: locking, reading the meter
    reservation: Reservation | None = None
    finishing: bool = False

    @property
    def error_code(self) -> str:
        """The code to report: a blocking fault first (a Faulted status names its cause), else the oldest."""
        for code in self.faults:
            if code in BLOCKING_ERRORS:
                return code
        for code in self.faults:
            return code
        return "NoError"

    @property
    def ev_comm_error(self) -> bool:
        return "EVCommunicationError" in self.faults

    @property
    def faulted(self) -> bool:
        return any(code in BLOCKING_ERRORS for code in self.faults)

    def status(self) -> Status:
        if self.faulted:
            return Status.Faulted
        if self.transaction is not None:
            if self.ev_comm_error or (self.plugged and self.ventilation_required):
                return Status.SuspendedEVSE
            if not self.plugged or not self.ev_requesting:
                if self.limited_to_zero:
                    return Status.SuspendedEVSE
                return Status.SuspendedEV
            if self.energy_offered and not self.limited_to_zero:
                return Status.Charging
            return Status.SuspendedEVSE
        if not self.operative:
            return Status.Unavailable
        if self.finishing and self.plugged:
            return Status.Finishing
        if self.reservation is not None:
            return Status.Reserved
        if self.plugged or self.pending is not None or self.starting is not None:
            return Status.Preparing
        return Status.Available

    @property
    def available_for_new_session(self) -> bool:
        return self.status() in (Status.Available, Status.Preparing) and self.transaction is None


@dataclass
class Evse:
    """One EVSE with its connectors (one power path: one of them charges at a time). Each
    Connector's ``connector_id`` is the station's number for it (1.6 connectorId): the EVSE's own
    id when it has one connector."""

    evse_id: int
    connectors: list[Connector]
    max_current_a: float = 32.0
    phases: int = 3
    fixed_cable: bool = False

    @property
    def connector(self) -> Connector:
        return self.connectors[0]


def station_status(operative: bool, faults: dict[str, str]) -> Status:
    """Status of connector 0 (the station as a whole)."""
    if any(code in BLOCKING_ERRORS for code in faults):
        return Status.Faulted
    return Status.Available if operative else Status.Unavailable

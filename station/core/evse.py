"""EVSEs and connectors: the facts the station knows about each outlet and the state they imply.

The state (a neutral ConnectorState) is *derived* from facts (plugged, faults, availability,
transaction, reservation, energy flow) rather than stored, so it can never disagree with them.
No OCPP version speaks here: station/ocpp16/vocabulary.py maps states and faults to 1.6
ChargePointStatus and ChargePointErrorCode; the 2.0.1 adapter maps them to its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from station.core.model import BLOCKING_FAULTS, ConnectorState, FaultKind

if TYPE_CHECKING:
    from station.core.transaction import Transaction


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
    faults: dict[str, str] = field(default_factory=dict)  # fault code (a FaultKind) -> info, the active ones
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
    def reported_fault(self) -> str | None:
        """The fault to report: a blocking one first (a faulted connector names its cause), else
        the oldest warning; None when nothing is wrong."""
        for code in self.faults:
            if code in BLOCKING_FAULTS:
                return code
        return next(iter(self.faults), None)

    @property
    def ev_comm_error(self) -> bool:
        return FaultKind.EVCommunication in self.faults

    @property
    def faulted(self) -> bool:
        return any(code in BLOCKING_FAULTS for code in self.faults)

    def state(self) -> ConnectorState:
        S = ConnectorState
        if self.faulted:
            return S.Faulted
        if self.transaction is not None:
            if self.ev_comm_error or (self.plugged and self.ventilation_required):
                return S.SuspendedEVSE
            if not self.plugged or not self.ev_requesting:
                if self.limited_to_zero:
                    return S.SuspendedEVSE
                return S.SuspendedEV
            if self.energy_offered and not self.limited_to_zero:
                return S.Charging
            return S.SuspendedEVSE
        if not self.operative:
            return S.Unavailable
        if self.finishing and self.plugged:
            return S.Finishing
        if self.reservation is not None and self.pending is None and self.starting is None:
            return S.Reserved  # (the reserved driver identified: Preparing, as any start)
        if self.plugged or self.pending is not None or self.starting is not None:
            return S.Preparing
        return S.Available

    @property
    def available_for_new_session(self) -> bool:
        return self.state() in (ConnectorState.Available, ConnectorState.Preparing) and self.transaction is None


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


def station_state(operative: bool, faults: dict[str, str]) -> ConnectorState:
    """State of the station as a whole (1.6 connector 0): faulted, available or unavailable."""
    if any(code in BLOCKING_FAULTS for code in faults):
        return ConnectorState.Faulted
    return ConnectorState.Available if operative else ConnectorState.Unavailable

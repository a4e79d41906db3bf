"""Neutral types of the station core: what an EVSE session is fed (events) and what it asks for (effects).

No OCPP version speaks here. EVSEs and connectors are addressed as (evse_id, connector_id); an
IdToken keeps its type; faults are named by kind, stops by reason. Each OCPP adapter turns the
domain events into its own messages (1.6 StartTransaction / StatusNotification, 2.0.1
TransactionEvent). The IEC 61851-1 control pilot states (A-F) are neutral already and are shared
with the hal.

Events flow into :meth:`station.core.session.Session.handle`; effects flow out and are carried
out, in order, by the driver (station/station.py). Effects that need hardware or the network
(lock, pilot, contactor, meter, Authorize) come back as result events; nothing waits inside the
core.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hal.types import CpState
from station.core.auth import IdTagInfo
from station.core.transaction import StopReason

if TYPE_CHECKING:
    from station.core.transaction import Transaction

__all__ = ["CpState", "StopReason", "IdTagInfo"]  # re-exported: the neutral names in one place

MIN_CURRENT_A = 6.0  # IEC 61851-1: below 6 A an EVSE cannot offer energy; it suspends instead

PILOT_FAULT_INFO = "control pilot state"


@dataclass(frozen=True, slots=True)
class IdToken:
    """An identifier presented by a driver or sent by the CSMS; ``type`` uses the 2.0.1
    IdTokenEnumType names (ISO14443, ISO15693, eMAID, Central, Local, ...)."""

    value: str
    type: str = "ISO14443"


@dataclass(frozen=True, slots=True)
class ConnectorAddress:
    evse_id: int
    connector_id: int


class FaultKind(enum.StrEnum):
    """What went wrong, by kind. The values are the fault codes the hal reports
    (``HalError.error_code``, ``Fault.error_code`` in hal/types.py); a connector's ``faults`` are
    keyed by them. Each adapter maps them to its version's words: 1.6 ChargePointErrorCode in
    station/ocpp16/vocabulary.py; 2.0.1 reports them as events of its own. A code the hal (or the
    local API) reports that is not listed here is kept as it is and treated as a warning."""

    ConnectorLock = "ConnectorLockFailure"
    EVCommunication = "EVCommunicationError"
    GroundFailure = "GroundFailure"
    HighTemperature = "HighTemperature"
    Internal = "InternalError"
    OverCurrent = "OverCurrentFailure"
    OverVoltage = "OverVoltage"
    UnderVoltage = "UnderVoltage"
    PowerMeter = "PowerMeterFailure"
    PowerSwitch = "PowerSwitchFailure"
    Reader = "ReaderFailure"
    Other = "OtherError"


# faults that make a connector unusable (energy off, a running transaction ends). The EV
# communication error is deliberately not one: energy stops but the transaction goes on
# (SuspendedEVSE, OCPP 1.6 section 7.6).
BLOCKING_FAULTS = frozenset(
    {
        FaultKind.ConnectorLock,
        FaultKind.GroundFailure,
        FaultKind.HighTemperature,
        FaultKind.Internal,
        FaultKind.OverCurrent,
        FaultKind.OverVoltage,
        FaultKind.PowerSwitch,
        FaultKind.UnderVoltage,
        FaultKind.Other,
    }
)


class ConnectorState(enum.StrEnum):
    """What a connector is doing, derived from its facts (station/core/evse.py). Each adapter
    maps it: 1.6 ChargePointStatus (station/ocpp16/vocabulary.py), 2.0.1 ConnectorStatusEnumType
    (everything but available, reserved, unavailable and faulted is Occupied there). ``label`` is
    the word the station's log and the local API show (a stable contract: the familiar names)."""

    Available = "available"
    Preparing = "preparing"  # occupied: a cable in or a driver identified, no transaction yet
    Charging = "charging"
    SuspendedEV = "suspended_ev"
    SuspendedEVSE = "suspended_evse"
    Finishing = "finishing"
    Reserved = "reserved"
    Unavailable = "unavailable"
    Faulted = "faulted"

    @property
    def label(self) -> str:
        """The word for people and the local API's ``status``: the member's name (``Charging``)."""
        return self.name

    @property
    def occupied(self) -> bool:
        """In use or being used (2.0.1 Occupied): a cable, a driver or a transaction."""
        return self in (ConnectorState.Preparing, ConnectorState.Charging, ConnectorState.SuspendedEV,
                        ConnectorState.SuspendedEVSE, ConnectorState.Finishing)


# -- events: what the session is told ----------------------------------------------------------


class Event:
    """Base of everything fed to Session.handle."""


@dataclass(frozen=True)
class CpStateChanged(Event):
    connector_id: int
    state: CpState


@dataclass(frozen=True)
class FaultChanged(Event):
    connector_id: int
    code: str
    active: bool
    info: str = ""


@dataclass(frozen=True)
class IdTokenPresented(Event):
    connector_id: int
    token: IdToken
    request_id: int


@dataclass(frozen=True)
class AuthorizationResult(Event):
    """The answer to AskAuthorization (cache, local list, CSMS or the offline rules)."""

    request_id: int
    info: IdTagInfo


@dataclass(frozen=True)
class RemoteStartRequested(Event):
    connector_id: int
    token: IdToken
    request_id: int
    charging_profile: dict | None = None


@dataclass(frozen=True)
class StopRequested(Event):
    connector_id: int
    reason: StopReason
    id_token: str | None = None
    unlock: bool = True


@dataclass(frozen=True)
class UnlockRequested(Event):
    connector_id: int
    request_id: int


@dataclass(frozen=True)
class AvailabilityRequested(Event):
    connector_id: int
    operative: bool


@dataclass(frozen=True)
class StationAvailability(Event):
    """Connector 0 / the whole station is (in)operative."""

    operative: bool


@dataclass(frozen=True)
class LimitChanged(Event):
    connector_id: int
    amps: float | None


@dataclass(frozen=True)
class StartResult(Event):
    """The CSMS answered the transaction start with this authorization info."""

    connector_id: int
    local_id: int
    info: IdTagInfo


@dataclass(frozen=True)
class TimerFired(Event):
    name: str
    connector_id: int


@dataclass(frozen=True)
class MeterRead(Event):
    connector_id: int
    energy_wh: float
    power_w: float | None = None


@dataclass(frozen=True)
class MeterFailed(Event):
    connector_id: int
    info: str


@dataclass(frozen=True)
class TransactionPrepared(Event):
    """Result of PrepareTransaction: the plug is locked (or not), the meter's start value, our number."""

    connector_id: int
    locked: bool
    meter_wh: int = 0
    local_id: int = 0


@dataclass(frozen=True)
class UnlockResult(Event):
    connector_id: int
    ok: bool
    request_id: int | None = None


@dataclass(frozen=True)
class HardwareFailed(Event):
    """A pilot / contactor command raised: the device is faulty (``code`` a FaultKind)."""

    connector_id: int
    effect: Effect
    code: str
    info: str


# -- effects: what the session asks the driver to do --------------------------------------------


class Effect:
    """Base of everything returned by Session.handle."""


@dataclass(frozen=True)
class SetPilot(Effect):
    """Offer ``amps`` with the PWM; ``None``: stop offering (steady +12 V), 0: pause (offer nothing)."""

    connector_id: int
    amps: float | None


@dataclass(frozen=True)
class SetContactor(Effect):
    """Close or open the EVSE's power path."""

    closed: bool


@dataclass(frozen=True)
class PrepareTransaction(Effect):
    """Lock the plug, read the meter and number the transaction; answered by TransactionPrepared."""

    connector_id: int


@dataclass(frozen=True)
class Unlock(Effect):
    connector_id: int
    request_id: int | None = None


@dataclass(frozen=True)
class AskAuthorization(Effect):
    """Decide on a token (cache, local list, CSMS, offline rules); answered by AuthorizationResult."""

    request_id: int
    connector_id: int
    token: IdToken


@dataclass(frozen=True)
class ReadMeter(Effect):
    connector_id: int


@dataclass(frozen=True)
class BeginTransaction(Effect):
    """Persist the new transaction and announce it (domain event: transaction started)."""

    connector_id: int
    transaction: Transaction


@dataclass(frozen=True)
class EndTransaction(Effect):
    """Read the meter (the relay is open by now), persist and announce the end (transaction stopped)."""

    connector_id: int
    transaction: Transaction


@dataclass(frozen=True)
class Persist(Effect):
    kind: str
    key: str
    value: object


@dataclass(frozen=True)
class StartTimer(Effect):
    """Arm (or re-arm: one timer per name and connector) a one-shot timer; fires TimerFired."""

    name: str
    connector_id: int
    delay_s: float


@dataclass(frozen=True)
class CancelTimer(Effect):
    name: str
    connector_id: int


@dataclass(frozen=True)
class ReportStatus(Effect):
    """The connector's status may have changed: report it (domain event: status changed).
    ``announce``: a warning just raised while an older one is active, reported once on its own."""

    connector_id: int
    announce: str | None = None


@dataclass(frozen=True)
class Reply(Effect):
    """Answer a command that carried ``request_id`` (a short word for humans and the API)."""

    request_id: int
    value: str


@dataclass(frozen=True)
class Note(Effect):
    """A human-readable line for the log and the demo."""

    text: str


# -- domain events: what happened, for the adapters (also effects: the driver hands them on) ---------


class DomainEvent(Effect):
    """Something an OCPP adapter may report."""


@dataclass(frozen=True)
class EvConnected(DomainEvent):
    connector_id: int


@dataclass(frozen=True)
class EvDeparted(DomainEvent):
    connector_id: int


@dataclass(frozen=True)
class Authorized(DomainEvent):
    connector_id: int
    token: IdToken
    info: IdTagInfo


@dataclass(frozen=True)
class AuthorizationDropped(DomainEvent):
    """A driver authorized before plugging in is no longer waited for: the cable did not come in
    time (``timed_out``), or the same token was presented again to cancel."""

    connector_id: int
    timed_out: bool


@dataclass(frozen=True)
class PowerPathClosed(DomainEvent):
    connector_id: int


@dataclass(frozen=True)
class PowerPathOpened(DomainEvent):
    connector_id: int


@dataclass(frozen=True)
class EnergyTransferStarted(DomainEvent):
    connector_id: int
    amps: float


@dataclass(frozen=True)
class EnergyTransferStopped(DomainEvent):
    connector_id: int


@dataclass(frozen=True)
class StopTransactionRequested(DomainEvent):
    """A running transaction is being ended, and why."""

    connector_id: int
    reason: StopReason


@dataclass(frozen=True)
class TransactionStarted(DomainEvent):
    transaction: Transaction


@dataclass(frozen=True)
class TransactionStopped(DomainEvent):
    transaction: Transaction


@dataclass(frozen=True)
class StatusChanged(DomainEvent):
    """The connector's state (or the fault it reports) changed; ``fault`` None: nothing wrong."""

    connector_id: int
    state: ConnectorState
    fault: str | None
    info: str = ""


def is_urgent(effects: list[Effect]) -> bool:
    """A batch that takes energy away (stop offering, open the contactor) runs at once, ahead of
    anything queued: safety never waits behind a lock motor or a meter read."""
    return any(
        (isinstance(e, SetContactor) and not e.closed) or (isinstance(e, SetPilot) and not e.amps) for e in effects
    )

"""OCPP 1.6 vocabulary: the core's neutral terms in 1.6 words.

The core (station/core/) speaks ConnectorState, FaultKind and StopReason; this module is the one
place that turns them into 1.6 ChargePointStatus, ChargePointErrorCode and Reason (1.6 sections
7.7, 7.6 and 7.42). The 2.0.1 adapter maps the same neutral terms to ConnectorStatusEnumType and
ReasonEnumType in its own package.
"""

from __future__ import annotations

import enum

from station.core.model import ConnectorState, FaultKind, StopReason


class ChargePointStatus(enum.StrEnum):
    """OCPP 1.6 ChargePointStatus (section 7.7)."""

    Available = "Available"
    Preparing = "Preparing"
    Charging = "Charging"
    SuspendedEV = "SuspendedEV"
    SuspendedEVSE = "SuspendedEVSE"
    Finishing = "Finishing"
    Reserved = "Reserved"
    Unavailable = "Unavailable"
    Faulted = "Faulted"


STATUS: dict[ConnectorState, ChargePointStatus] = {
    ConnectorState.Available: ChargePointStatus.Available,
    ConnectorState.Preparing: ChargePointStatus.Preparing,
    ConnectorState.Charging: ChargePointStatus.Charging,
    ConnectorState.SuspendedEV: ChargePointStatus.SuspendedEV,
    ConnectorState.SuspendedEVSE: ChargePointStatus.SuspendedEVSE,
    ConnectorState.Finishing: ChargePointStatus.Finishing,
    ConnectorState.Reserved: ChargePointStatus.Reserved,
    ConnectorState.Unavailable: ChargePointStatus.Unavailable,
    ConnectorState.Faulted: ChargePointStatus.Faulted,
}

# OCPP 1.6 ChargePointErrorCode values (section 7.6)
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

ERROR_CODE: dict[FaultKind, str] = {
    FaultKind.ConnectorLock: "ConnectorLockFailure",
    FaultKind.EVCommunication: "EVCommunicationError",
    FaultKind.GroundFailure: "GroundFailure",
    FaultKind.HighTemperature: "HighTemperature",
    FaultKind.Internal: "InternalError",
    FaultKind.OverCurrent: "OverCurrentFailure",
    FaultKind.OverVoltage: "OverVoltage",
    FaultKind.UnderVoltage: "UnderVoltage",
    FaultKind.PowerMeter: "PowerMeterFailure",
    FaultKind.PowerSwitch: "PowerSwitchFailure",
    FaultKind.Reader: "ReaderFailure",
    FaultKind.Other: "OtherError",
}

REASON: dict[StopReason, str] = {
    StopReason.DeAuthorized: "DeAuthorized",
    StopReason.EmergencyStop: "EmergencyStop",
    StopReason.EVDisconnected: "EVDisconnected",
    StopReason.HardReset: "HardReset",
    StopReason.Local: "Local",
    StopReason.StoppedByEV: "Other",
    StopReason.Timeout: "Other",  # 1.6 never stops on an EV pause; the word is for completeness
    StopReason.MasterPass: "Local",  # 1.6 has no master pass: a local stop
    StopReason.Other: "Other",
    StopReason.PowerLoss: "PowerLoss",
    StopReason.Reboot: "Reboot",
    StopReason.Remote: "Remote",
    StopReason.SoftReset: "SoftReset",
    StopReason.UnlockCommand: "UnlockCommand",
}


def status(state: ConnectorState) -> ChargePointStatus:
    """The ChargePointStatus of a connector state."""
    return STATUS[state]


def error_code(fault: str | None) -> str:
    """The ChargePointErrorCode of a reported fault: NoError for none; a code the hal or the local
    API reported that is a 1.6 code but no FaultKind (WeakSignal, ...) as it is; anything else
    OtherError."""
    if fault is None:
        return "NoError"
    if fault in ERROR_CODE:
        return ERROR_CODE[FaultKind(fault)]
    return fault if fault in ERROR_CODES else "OtherError"


def reason(stop: StopReason | None) -> str:
    """The 1.6 Reason of a StopTransaction (Other when none was recorded)."""
    return REASON[stop] if stop is not None else "Other"

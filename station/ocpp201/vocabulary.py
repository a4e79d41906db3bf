"""The OCPP 2.0.1 words for the core's neutral states, reasons and authorization answers.

ConnectorStatusEnumType has five values: everything the core calls preparing, charging,
suspended or finishing is ``Occupied``. A transaction's ``stoppedReason`` (ReasonEnumType) and the
``triggerReason`` of its last TransactionEvent follow from the core's StopReason. An
IdTokenInfo becomes the core's IdTagInfo: statuses the core does not know (NoCredit,
NotAllowedTypeEVSE, NotAtThisLocation, NotAtThisTime, Unknown) refuse the token like Invalid,
and the groupIdToken plays the part of 1.6's parentIdTag.
"""

from __future__ import annotations

from station.core.auth import IdTagInfo
from station.core.model import ConnectorState
from station.core.transaction import StopReason

_STATUS = {
    ConnectorState.Available: "Available",
    ConnectorState.Reserved: "Reserved",
    ConnectorState.Unavailable: "Unavailable",
    ConnectorState.Faulted: "Faulted",
}


def connector_status(state: ConnectorState, plugged: bool) -> str:
    """ConnectorStatusEnumType: Occupied when a cable is in or a transaction runs (a driver who
    identified before plugging in leaves the connector Available in 2.0.1)."""
    if state in _STATUS:
        return _STATUS[state]
    if state is ConnectorState.Preparing and not plugged:
        return "Available"
    return "Occupied"


def charging_state(state: ConnectorState, plugged: bool) -> str:
    """ChargingStateEnumType of a transaction's connector."""
    if state is ConnectorState.Charging:
        return "Charging"
    if state is ConnectorState.SuspendedEV:
        return "SuspendedEV"
    if state is ConnectorState.SuspendedEVSE:
        return "SuspendedEVSE"
    return "EVConnected" if plugged else "Idle"


STOPPED_REASON = {
    StopReason.DeAuthorized: "DeAuthorized",
    StopReason.EmergencyStop: "EmergencyStop",
    StopReason.EVDisconnected: "EVDisconnected",
    StopReason.HardReset: "ImmediateReset",
    StopReason.SoftReset: "ImmediateReset",
    StopReason.Local: "Local",
    StopReason.StoppedByEV: "StoppedByEV",
    StopReason.Timeout: "Timeout",
    StopReason.MasterPass: "MasterPass",
    StopReason.Other: "Other",
    StopReason.PowerLoss: "PowerLoss",
    StopReason.Reboot: "Reboot",
    StopReason.Remote: "Remote",
    StopReason.UnlockCommand: "Other",
}

STOP_TRIGGER = {
    StopReason.DeAuthorized: "Deauthorized",
    StopReason.EmergencyStop: "AbnormalCondition",
    StopReason.EVDisconnected: "EVCommunicationLost",
    StopReason.HardReset: "ResetCommand",
    StopReason.SoftReset: "ResetCommand",
    StopReason.Local: "StopAuthorized",
    StopReason.StoppedByEV: "ChargingStateChanged",
    StopReason.Timeout: "EVConnectTimeout",
    StopReason.MasterPass: "StopAuthorized",
    StopReason.Other: "AbnormalCondition",
    StopReason.PowerLoss: "AbnormalCondition",
    StopReason.Reboot: "AbnormalCondition",  # a local stop (SIGTERM): no CSMS command
    StopReason.Remote: "RemoteStop",
    StopReason.UnlockCommand: "UnlockCommand",
}


def stopped_reason(reason: StopReason | None) -> str:
    return STOPPED_REASON.get(reason, "Other") if reason is not None else "Other"


def stop_trigger(reason: StopReason | None) -> str:
    return STOP_TRIGGER.get(reason, "AbnormalCondition") if reason is not None else "AbnormalCondition"


CORE_STATUSES = ("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx")


def id_tag_info(id_token_info: dict) -> IdTagInfo:
    """An IdTokenInfoType as the core's IdTagInfo."""
    status = id_token_info.get("status", "Invalid")
    group = id_token_info.get("groupIdToken") or {}
    return IdTagInfo(status if status in CORE_STATUSES else "Invalid",
                     id_token_info.get("cacheExpiryDateTime"), group.get("idToken"))


def id_token_info(info: IdTagInfo) -> dict:
    """The core's IdTagInfo as an IdTokenInfoType (group tokens are of type Central)."""
    out: dict = {"status": info.status}
    if info.expiry_date:
        out["cacheExpiryDateTime"] = info.expiry_date
    if info.parent_id_tag:
        out["groupIdToken"] = {"idToken": info.parent_id_tag, "type": "Central"}
    return out

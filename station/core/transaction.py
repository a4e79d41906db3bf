"""Transactions: who started them, on which connector, with which meter readings, and why they ended."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class StopReason(enum.StrEnum):
    """Why a transaction ended, in the core's own words. Each adapter maps them to its version's
    vocabulary: 1.6 Reason in station/ocpp16/vocabulary.py, 2.0.1 ReasonEnumType in its own.
    ``label`` is the word the station's log shows (``stopped (Local)``)."""

    DeAuthorized = "deauthorized"
    EmergencyStop = "emergency_stop"
    EVDisconnected = "ev_disconnected"
    HardReset = "hard_reset"
    Local = "local"
    Timeout = "timeout"  # the EV of a suspended transaction did not come back in time (2.0.1 E10)
    StoppedByEV = "stopped_by_ev"  # the EV stopped drawing and the stop point says that ends it (2.0.1)
    MasterPass = "master_pass"  # a token of the master pass group stopped it (2.0.1 C16)
    Other = "other"
    PowerLoss = "power_loss"
    Reboot = "reboot"
    Remote = "remote"
    SoftReset = "soft_reset"
    UnlockCommand = "unlock_command"

    @property
    def label(self) -> str:
        """The word for people (the session log, the demo): the member's name."""
        return self.name


@dataclass
class Transaction:
    local_id: int  # our own number, known before the CSMS answers StartTransaction
    connector_id: int
    id_tag: str
    meter_start_wh: int
    started_at: datetime
    parent_id_tag: str | None = None
    reservation_id: int | None = None
    transaction_id: int | None = None  # the CSMS's number, once StartTransaction.conf arrived
    remote: bool = False
    charging_profile: dict | None = None
    meter_last_wh: int | None = None
    stop_reason: StopReason | None = None
    stop_id_tag: str | None = None
    stopped_at: datetime | None = None
    meter_stop_wh: int | None = None
    deauthorized: bool = False
    samples: list[dict] = field(default_factory=list)  # transactionData for StopTransaction
    id_token_type: str = "ISO14443"  # the IdToken's type (2.0.1 IdTokenEnumType), kept with its value

    @property
    def active(self) -> bool:
        return self.stopped_at is None

    def energy_wh(self) -> int:
        last = self.meter_stop_wh if self.meter_stop_wh is not None else self.meter_last_wh
        return max(0, (last if last is not None else self.meter_start_wh) - self.meter_start_wh)

"""Connector state derivation (station/core/evse.py): every neutral ConnectorState and every
fault, derived from the facts a connector knows, and their 1.6 words (station/ocpp16/vocabulary.py):
ChargePointStatus, ChargePointErrorCode, Reason."""

from __future__ import annotations

import pytest

from station.core.clock import FakeClock
from station.core.evse import (
    Connector,
    PendingAuthorization,
    Reservation,
    station_state,
)
from station.core.model import BLOCKING_FAULTS, FaultKind, StopReason
from station.core.model import ConnectorState as Status
from station.core.transaction import Transaction
from station.ocpp16 import vocabulary
from station.ocpp16.vocabulary import ERROR_CODES, ChargePointStatus

# Spec 1.6 section 7.6 names no "faulted" flag per code; these are the codes that make a connector
# unusable. EVCommunicationError is deliberately missing: the spec says it "is not a real error in
# the sense that the Charge Point doesn't need to go to the faulted state. Instead, it should go to
# the SuspendedEVSE state."
BLOCKING = [
    "ConnectorLockFailure",
    "GroundFailure",
    "HighTemperature",
    "InternalError",
    "OtherError",
    "OverCurrentFailure",
    "OverVoltage",
    "PowerSwitchFailure",
    "UnderVoltage",
]
# warnings: reported with the connector's normal status
NON_BLOCKING = ["LocalListConflict", "PowerMeterFailure", "ReaderFailure", "ResetFailure", "WeakSignal"]


def test_error_code_lists_cover_every_ocpp16_code():
    assert sorted(BLOCKING + NON_BLOCKING + ["EVCommunicationError", "NoError"]) == sorted(ERROR_CODES)


def test_blocking_faults_are_the_blocking_codes():
    assert sorted(vocabulary.error_code(f) for f in BLOCKING_FAULTS) == sorted(BLOCKING)


def test_every_neutral_term_has_its_16_word():
    """Each ConnectorState, FaultKind and StopReason maps to a 1.6 word; the neutral values are
    not the 1.6 words themselves (a forgotten mapping cannot slip onto the wire unnoticed)."""
    assert {vocabulary.status(s) for s in Status} == set(ChargePointStatus)
    assert all(vocabulary.status(s).name == s.name and str(vocabulary.status(s)) != str(s) for s in Status)
    assert all(vocabulary.error_code(f) in ERROR_CODES for f in FaultKind)
    assert len({vocabulary.error_code(f) for f in FaultKind}) == len(FaultKind)
    reasons = {"DeAuthorized", "EmergencyStop", "EVDisconnected", "HardReset", "Local", "Other", "PowerLoss",
               "Reboot", "Remote", "SoftReset", "UnlockCommand"}  # 1.6 Reason, section 7.42
    assert {vocabulary.reason(r) for r in StopReason} == reasons
    assert all(str(r) not in reasons for r in StopReason)
    assert vocabulary.reason(None) == "Other"


@pytest.mark.parametrize("fault,code", [(None, "NoError"), (FaultKind.GroundFailure, "GroundFailure"),
                                        ("WeakSignal", "WeakSignal"), ("SomethingNew", "OtherError")])
def test_reported_fault_in_16_words(fault, code):
    """NoError for none; a 1.6 code that is no FaultKind (injected through the API) as it is; a code
    1.6 does not know is OtherError, never an invalid errorCode."""
    assert vocabulary.error_code(fault) == code


def tx() -> Transaction:
    return Transaction(1, 1, "TAG", 100, FakeClock().now())


def conn(**facts) -> Connector:
    c = Connector(1)
    for k, v in facts.items():
        setattr(c, k, v)
    return c


# One row per status (and per way of reaching it): the facts and the status they imply.
STATUS_CASES = [
    ("idle", {}, Status.Available),
    ("cable plugged, no driver yet", {"plugged": True}, Status.Preparing),
    ("driver identified, waiting for the cable", {"pending": PendingAuthorization("T", None, 0)}, Status.Preparing),
    ("energy flowing", {"plugged": True, "ev_requesting": True, "energy_offered": True, "transaction": "tx"},
     Status.Charging),
    ("EV does not take the offered energy (state B)", {"plugged": True, "energy_offered": True, "transaction": "tx"},
     Status.SuspendedEV),
    ("EV unplugged, transaction kept", {"transaction": "tx"}, Status.SuspendedEV),
    ("EV asks, EVSE does not offer", {"plugged": True, "ev_requesting": True, "transaction": "tx"},
     Status.SuspendedEVSE),
    ("limit 0 A while the EV asks",
     {"plugged": True, "ev_requesting": True, "energy_offered": True, "limited_to_zero": True, "transaction": "tx"},
     Status.SuspendedEVSE),
    ("limit 0 A while the EV pauses", {"plugged": True, "limited_to_zero": True, "transaction": "tx"},
     Status.SuspendedEVSE),
    ("transaction over, cable still in", {"plugged": True, "finishing": True}, Status.Finishing),
    ("finishing flag without a cable is stale", {"finishing": True}, Status.Available),
    ("reserved", {"reservation": Reservation(1, "T", 0)}, Status.Reserved),
    ("reserved and a cable is plugged: stays Reserved until the id is presented",
     {"reservation": Reservation(1, "T", 0), "plugged": True}, Status.Reserved),
    ("inoperative", {"operative": False}, Status.Unavailable),
    ("inoperative with a cable", {"operative": False, "plugged": True}, Status.Unavailable),
    ("inoperative and reserved", {"operative": False, "reservation": Reservation(1, "T", 0)}, Status.Unavailable),
    ("inoperative (scheduled) while charging: the transaction goes on",
     {"operative": False, "plugged": True, "ev_requesting": True, "energy_offered": True, "transaction": "tx"},
     Status.Charging),
    ("blocking fault", {"faults": {"GroundFailure": ""}}, Status.Faulted),
    ("blocking fault beats a transaction",
     {"faults": {"OverCurrentFailure": ""}, "plugged": True, "ev_requesting": True, "energy_offered": True,
      "transaction": "tx"}, Status.Faulted),
    ("blocking fault beats Unavailable", {"faults": {"HighTemperature": ""}, "operative": False}, Status.Faulted),
]


@pytest.mark.parametrize("name,facts,expected", STATUS_CASES, ids=[c[0] for c in STATUS_CASES])
def test_status_from_facts(name, facts, expected):
    if facts.get("transaction") == "tx":
        facts = {**facts, "transaction": tx()}
    c = conn(**facts)
    assert c.state() is expected
    assert c.reported_fault == next(iter(c.faults), None)


def test_every_status_is_reachable():
    assert {c[2] for c in STATUS_CASES} == set(Status)


@pytest.mark.parametrize("code", BLOCKING)
@pytest.mark.parametrize(
    "facts",
    [{}, {"plugged": True}, {"plugged": True, "ev_requesting": True, "energy_offered": True, "transaction": "tx"},
     {"operative": False}, {"reservation": Reservation(1, "T", 0)}],
    ids=["idle", "plugged", "charging", "inoperative", "reserved"],
)
def test_blocking_error_faults_the_connector_whatever_it_was_doing(code, facts):
    if facts.get("transaction") == "tx":
        facts = {**facts, "transaction": tx()}
    c = conn(faults={code: "info"}, **facts)
    assert c.state() is Status.Faulted
    assert c.reported_fault == code and c.faulted
    assert not c.available_for_new_session


@pytest.mark.parametrize("code", NON_BLOCKING)
@pytest.mark.parametrize(
    "facts,expected",
    [({}, Status.Available), ({"plugged": True}, Status.Preparing),
     ({"plugged": True, "ev_requesting": True, "energy_offered": True, "transaction": "tx"}, Status.Charging),
     ({"operative": False}, Status.Unavailable)],
    ids=["idle", "plugged", "charging", "inoperative"],
)
def test_non_blocking_error_is_a_warning_with_the_normal_status(code, facts, expected):
    if facts.get("transaction") == "tx":
        facts = {**facts, "transaction": tx()}
    c = conn(faults={code: "info"}, **facts)
    assert c.state() is expected
    assert c.reported_fault == code and not c.faulted


def test_ev_communication_error_suspends_a_transaction_instead_of_faulting():
    """1.6 section 7.6: EVCommunicationError -> SuspendedEVSE, not Faulted."""
    c = conn(faults={"EVCommunicationError": "CP state E"}, plugged=True, ev_requesting=True, energy_offered=True,
             transaction=tx())
    assert c.state() is Status.SuspendedEVSE and c.reported_fault == "EVCommunicationError" and not c.faulted
    idle = conn(faults={"EVCommunicationError": ""}, plugged=True)
    assert idle.state() is Status.Preparing and idle.reported_fault == "EVCommunicationError"


def test_faulted_connector_reports_the_blocking_code_not_an_earlier_warning():
    c = Connector(1)
    c.faults["PowerMeterFailure"] = "meter silent"
    c.faults["GroundFailure"] = "RCD tripped"
    assert c.state() is Status.Faulted
    assert c.reported_fault == "GroundFailure"


def test_fault_cleared_returns_to_the_derived_status():
    c = conn(plugged=True)
    c.faults["GroundFailure"] = ""
    assert c.state() is Status.Faulted
    c.faults.pop("GroundFailure")
    assert c.state() is Status.Preparing and c.reported_fault is None


def test_available_for_new_session():
    assert Connector(1).available_for_new_session
    assert conn(plugged=True).available_for_new_session
    assert not conn(operative=False).available_for_new_session
    assert not conn(reservation=Reservation(1, "T", 0)).available_for_new_session
    assert not conn(plugged=True, transaction=tx()).available_for_new_session
    assert not conn(plugged=True, finishing=True).available_for_new_session


@pytest.mark.parametrize(
    "operative,faults,expected",
    [(True, {}, Status.Available), (False, {}, Status.Unavailable),
     (True, {"InternalError": ""}, Status.Faulted), (False, {"HighTemperature": ""}, Status.Faulted),
     (True, {"WeakSignal": ""}, Status.Available), (False, {"ReaderFailure": ""}, Status.Unavailable)],
)
def test_connector_zero_status(operative, faults, expected):
    assert station_state(operative, faults) is expected

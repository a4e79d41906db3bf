"""Connector status derivation (station/core/evse.py): every OCPP 1.6 ChargePointStatus and every
ChargePointErrorCode, derived from the facts a connector knows."""

from __future__ import annotations

import pytest

from station.core.clock import FakeClock
from station.core.evse import (
    ERROR_CODES,
    Connector,
    PendingAuthorization,
    Reservation,
    Status,
    station_status,
)
from station.core.transaction import Transaction

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
    assert c.status() is expected
    assert c.error_code == next(iter(c.faults), "NoError")


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
    assert c.status() is Status.Faulted
    assert c.error_code == code and c.faulted
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
    assert c.status() is expected
    assert c.error_code == code and not c.faulted


def test_ev_communication_error_suspends_a_transaction_instead_of_faulting():
    """1.6 section 7.6: EVCommunicationError -> SuspendedEVSE, not Faulted."""
    c = conn(faults={"EVCommunicationError": "CP state E"}, plugged=True, ev_requesting=True, energy_offered=True,
             transaction=tx())
    assert c.status() is Status.SuspendedEVSE and c.error_code == "EVCommunicationError" and not c.faulted
    idle = conn(faults={"EVCommunicationError": ""}, plugged=True)
    assert idle.status() is Status.Preparing and idle.error_code == "EVCommunicationError"


def test_faulted_connector_reports_the_blocking_code_not_an_earlier_warning():
    c = Connector(1)
    c.faults["PowerMeterFailure"] = "meter silent"
    c.faults["GroundFailure"] = "RCD tripped"
    assert c.status() is Status.Faulted
    assert c.error_code == "GroundFailure"


def test_fault_cleared_returns_to_the_derived_status():
    c = conn(plugged=True)
    c.faults["GroundFailure"] = ""
    assert c.status() is Status.Faulted
    c.faults.pop("GroundFailure")
    assert c.status() is Status.Preparing and c.error_code == "NoError"


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
    assert station_status(operative, faults) is expected

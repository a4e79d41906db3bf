"""Unit tests of the pure core (no I/O) with a fake clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hal.types import MeterReading
from station.core.auth import AuthRules, IdTagInfo, Verdict, decide
from station.core.clock import FakeClock, iso, parse_iso
from station.core.evse import Connector, PendingAuthorization, Reservation, Status
from station.core.metering import invalid_measurands, samples_for
from station.core.transaction import Transaction


def tx(clock):
    return Transaction(1, 1, "T", 100, clock.now())


def test_connector_status_derivation():
    clock = FakeClock()
    c = Connector(1)
    assert c.status() is Status.Available
    c.plugged = True
    assert c.status() is Status.Preparing
    c.transaction = tx(clock)
    assert c.status() is Status.SuspendedEV
    c.ev_requesting, c.energy_offered = True, True
    assert c.status() is Status.Charging
    c.limited_to_zero = True
    assert c.status() is Status.SuspendedEVSE
    c.limited_to_zero = False
    c.faults["GroundFailure"] = ""
    assert c.status() is Status.Faulted and c.error_code == "GroundFailure"
    c.faults.clear()
    c.transaction, c.finishing = None, True
    assert c.status() is Status.Finishing
    c.plugged, c.finishing = False, False
    c.operative = False
    assert c.status() is Status.Unavailable
    c.operative = True
    c.reservation = Reservation(1, "T", 0)
    assert c.status() is Status.Reserved
    c.reservation = None
    c.pending = PendingAuthorization("T", None, 0)
    assert c.status() is Status.Preparing


def test_non_blocking_error_keeps_status():
    c = Connector(1)
    c.faults["PowerMeterFailure"] = "meter not answering"
    assert c.status() is Status.Available and c.error_code == "PowerMeterFailure"


NOW = parse_iso("2026-06-01T12:00:00Z")
ACC = IdTagInfo("Accepted")
EXPIRED = IdTagInfo("Accepted", expiry_date="2026-05-01T00:00:00Z")


@pytest.mark.parametrize(
    "online,rules,cache,expected",
    [
        (True, AuthRules(), {}, Verdict.ASK_CSMS),
        (True, AuthRules(local_pre_authorize=True), {"A": ACC}, Verdict.ACCEPT),
        (True, AuthRules(local_pre_authorize=True), {"A": EXPIRED}, Verdict.ASK_CSMS),
        (True, AuthRules(local_pre_authorize=True, authorization_cache_enabled=False), {"A": ACC}, Verdict.ASK_CSMS),
        (False, AuthRules(), {"A": ACC}, Verdict.ACCEPT),
        (False, AuthRules(local_authorize_offline=False), {"A": ACC}, Verdict.REJECT),
        (False, AuthRules(), {"A": EXPIRED}, Verdict.REJECT),
        (False, AuthRules(), {"A": IdTagInfo("Blocked")}, Verdict.REJECT),
        (False, AuthRules(), {}, Verdict.REJECT),
        (False, AuthRules(allow_offline_tx_for_unknown_id=True), {}, Verdict.ACCEPT),
        (False, AuthRules(allow_offline_tx_for_unknown_id=True), {"A": IdTagInfo("Blocked")}, Verdict.REJECT),
    ],
)
def test_authorization_decisions(online, rules, cache, expected):
    assert decide("A", online, rules, {}, cache, NOW).verdict is expected


def test_local_list_wins_over_cache():
    d = decide("A", False, AuthRules(), {"A": IdTagInfo("Blocked")}, {"A": ACC}, NOW)
    assert d.verdict is Verdict.REJECT and d.source == "local_list"


def test_samples_per_phase_and_units():
    r = MeterReading(1234.56, 0.0, 7360.0, (16.0, 16.0, 0.0), (230.0, 231.0, 229.0), 50.0)
    s = samples_for(r, ["Energy.Active.Import.Register", "Current.Import", "Voltage", "Frequency"], phases=2)
    assert [(x.measurand, x.phase, x.unit) for x in s] == [
        ("Energy.Active.Import.Register", None, "Wh"),
        ("Current.Import", "L1", "A"), ("Current.Import", "L2", "A"),
        ("Voltage", "L1-N", "V"), ("Voltage", "L2-N", "V"),
        ("Frequency", None, "Hz"),
    ]
    assert invalid_measurands("Energy.Active.Import.Register,Nonsense") == ["Nonsense"]


def test_fake_clock_and_iso():
    c = FakeClock()
    t0 = c.now()
    c.advance(61.5)
    assert c.now() - t0 == timedelta(seconds=61.5)
    assert iso(parse_iso("2026-01-01T00:00:01.250Z")) == "2026-01-01T00:00:01.250Z"

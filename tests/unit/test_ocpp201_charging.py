"""OCPP 2.0.1 charging profiles on the shared engine (station/ocpp201/charging_profiles.py and the
2.0.1 parts of station/core/charging.py): a ChargingProfileType in neutral terms, K01's checks with
their reasonCode, records that survive a restart whatever the version, replacement of a profile
with the same stackLevel and purpose only when validities overlap, external constraints as a
limit, a TxProfile applying to its own transaction only, and the CompositeScheduleType."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from station.core.charging import (
    EXTERNAL,
    MAX_PROFILE,
    TX_PROFILE,
    Capabilities,
    ChargingProfile,
    ConnectorContext,
    ProfileError,
    ProfileSet,
)
from station.core.clock import iso
from station.ocpp201.charging_profiles import check, composite_schedule, from_wire, to_wire

T0 = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)
CAPS = Capabilities(max_stack_level=10, allowed_units=frozenset({"A", "W"}), max_periods=4, max_installed=3)


def wire(pid: int = 1, purpose: str = "TxDefaultProfile", stack: int = 0, periods: list[tuple[int, float]] | None = None,
         kind: str = "Absolute", unit: str = "A", start: datetime | None = T0, **extra: object) -> dict:
    sched: dict = {"id": 1, "chargingRateUnit": unit,
                   "chargingSchedulePeriod": [{"startPeriod": s, "limit": v} for s, v in (periods or [(0, 16.0)])]}
    if start is not None:
        sched["startSchedule"] = iso(start)
    return {"id": pid, "stackLevel": stack, "chargingProfilePurpose": purpose, "chargingProfileKind": kind,
            "chargingSchedule": [sched], **extra}


def reason(cp: dict, evse: int = 1, running: dict | None = None, installed: ProfileSet | None = None,
           remote_start: bool = False) -> str | None:
    p = from_wire(evse, cp, T0)
    why = check(p, cp, evse_ids=[1, 2], caps=CAPS, running=running or {},
                installed=installed or ProfileSet(overlapping_only=True), remote_start=remote_start)
    return None if why is None else why[0]


def test_from_wire_is_neutral():
    cp = wire(4, "ChargingStationMaxProfile", stack=2, periods=[(0, 11000.0), (60, 7000.0)], unit="W",
              validTo=iso(T0 + timedelta(hours=1)))
    p = from_wire(0, cp, T0)
    assert (p.id, p.connector_id, p.stack_level, p.purpose, p.unit) == (4, 0, 2, MAX_PROFILE, "W")
    assert [(x.start_s, x.limit) for x in p.periods] == [(0, 11000.0), (60, 7000.0)]
    assert p.start_schedule == T0 and p.valid_to == T0 + timedelta(hours=1) and p.source == "CSO"
    assert to_wire(p) == cp
    with pytest.raises(ProfileError):
        from_wire(1, {**cp, "chargingSchedule": []}, T0)
    remote = from_wire(1, wire(5, "TxProfile", kind="Relative", start=None), T0, transaction_id="tx-9")
    assert remote.transaction_id == "tx-9" and to_wire(remote)["transactionId"] == "tx-9"


@pytest.mark.parametrize("cp, evse, running, code", [
    (wire(), 9, {}, "UnknownEvse"),
    (wire(purpose="ChargingStationExternalConstraints"), 0, {}, "InvalidValue"),
    (wire(purpose="ChargingStationMaxProfile"), 1, {}, "InvalidValue"),
    (wire(purpose="ChargingStationMaxProfile", kind="Relative", start=None), 0, {}, "InvalidValue"),
    (wire(purpose="TxProfile", transactionId="t1"), 0, {1: "t1"}, "InvalidValue"),
    (wire(purpose="TxProfile"), 1, {1: "t1"}, "MissingParam"),
    (wire(purpose="TxProfile", transactionId="t1"), 1, {}, "TxNotFound"),
    (wire(purpose="TxProfile", transactionId="t2"), 1, {1: "t1"}, "TxNotFound"),
    (wire(stack=11), 1, {}, "InvalidStackLevel"),
    (wire(unit="kW"), 1, {}, "UnsupportedRateUnit"),
    (wire(periods=[(0, 1.0), (10, 2.0), (20, 3.0), (30, 4.0), (40, 5.0)]), 1, {}, "InvalidSchedule"),
    (wire(periods=[(10, 1.0)]), 1, {}, "InvalidSchedule"),
    (wire(periods=[(0, 1.0), (0, 2.0)]), 1, {}, "InvalidSchedule"),
    (wire(kind="Relative"), 1, {}, "InvalidSchedule"),
    (wire(start=None), 1, {}, "InvalidSchedule"),
    (wire(kind="Recurring"), 1, {}, "InvalidSchedule"),
    (wire(validFrom=iso(T0), validTo=iso(T0)), 1, {}, "InvalidSchedule"),
    (wire(), 1, {}, None),
    (wire(purpose="TxProfile", transactionId="t1"), 1, {1: "t1"}, None),
    (wire(kind="Recurring", recurrencyKind="Weekly"), 0, {}, None),
])
def test_K01_checks(cp, evse, running, code):
    assert reason(cp, evse, running) == code


def test_K01_rate_unit_the_station_does_not_support():
    """TC_K_12 (a station with one RateUnit): the other unit is Rejected."""
    cp = wire(unit="W", periods=[(0, 11000.0)])
    p = from_wire(1, cp, T0)
    amps_only = Capabilities(max_stack_level=10, allowed_units=frozenset({"A"}), max_periods=4, max_installed=3)
    why = check(p, cp, evse_ids=[1], caps=amps_only, running={}, installed=ProfileSet(overlapping_only=True))
    assert why is not None and why[0] == "UnsupportedRateUnit"


def test_K01_phase_to_use_and_second_schedule_checked():
    cp = wire()
    cp["chargingSchedule"][0]["chargingSchedulePeriod"][0].update(numberPhases=1, phaseToUse=2)
    assert reason(cp) == "InvalidSchedule"
    two = wire()
    two["chargingSchedule"].append({"id": 2, "chargingRateUnit": "kW", "startSchedule": iso(T0),
                                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 1.0}]})
    assert reason(two) == "UnsupportedRateUnit"


def test_K01_FR_39_tx_profile_stack_level_of_its_transaction_taken():
    ps = ProfileSet(overlapping_only=True)
    ps.install(from_wire(1, wire(1, "TxProfile", transactionId="t1"), T0))
    assert reason(wire(2, "TxProfile", transactionId="t1"), running={1: "t1"}, installed=ps) == "InvalidStackLevel"
    assert reason(wire(1, "TxProfile", transactionId="t1"), running={1: "t1"}, installed=ps) is None  # same id: replaces
    assert reason(wire(2, "TxProfile", stack=1, transactionId="t1"), running={1: "t1"}, installed=ps) is None


def test_K01_FR_52_53_tx_default_stack_level_station_wide_or_per_evse():
    ps = ProfileSet(overlapping_only=True)
    ps.install(from_wire(1, wire(1, stack=2), T0))
    assert reason(wire(2, stack=2), evse=0, installed=ps) == "DuplicateProfile"
    assert reason(wire(2, stack=3), evse=0, installed=ps) is None
    assert reason(wire(2, stack=2), evse=2, installed=ps) is None  # another EVSE
    ps.install(from_wire(0, wire(3, stack=5), T0))
    assert reason(wire(4, stack=5), evse=2, installed=ps) == "DuplicateProfile"
    assert reason(wire(3, stack=5), evse=2, installed=ps) is None  # the same id moves


def test_old_1_6_record_still_loads():
    cp = {"chargingProfileId": 3, "stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile",
          "chargingProfileKind": "Relative",
          "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}]}}
    p = ChargingProfile.from_record({"connectorId": 1, "installedAt": iso(T0), "profile": cp})
    assert (p.id, p.connector_id, p.unit, p.periods[0].limit) == (3, 1, "A", 10.0)
    assert ChargingProfile.from_record(p.record()) == p


def test_remote_start_profile_checks():
    assert reason(wire(1, "TxProfile", kind="Relative", start=None), remote_start=True) is None
    assert reason(wire(1, "TxProfile", kind="Relative", start=None, transactionId="x"), remote_start=True) == "InvalidValue"


def test_entries_limit():
    ps = ProfileSet(overlapping_only=True)
    for pid in (1, 2, 3):
        ps.install(from_wire(1, wire(pid, stack=pid), T0))
    assert reason(wire(4, stack=4), installed=ps) == "TooManyElements"
    assert reason(wire(3, stack=7), installed=ps) is None  # replaces id 3


def test_record_round_trip_keeps_2_0_1_profile():
    cp = wire(7, "TxProfile", kind="Relative", start=None, periods=[(0, 6.0), (300, 9.5)], transactionId="abc-1")
    cp["chargingSchedule"][0]["duration"] = 900
    p = from_wire(2, cp, T0)
    back = ChargingProfile.from_record(p.record())
    assert back == p and back.raw == cp and back.transaction_id == "abc-1" and back.source == "CSO"


def test_same_stack_level_and_purpose_replaced_only_when_validity_overlaps():
    week = from_wire(1, wire(1, validFrom=iso(T0), validTo=iso(T0 + timedelta(days=5))), T0)
    weekend = from_wire(1, wire(2, validFrom=iso(T0 + timedelta(days=5)), validTo=iso(T0 + timedelta(days=7))), T0)
    ps = ProfileSet([week, weekend], overlapping_only=True)
    assert sorted(ps.profiles) == [1, 2]
    always = from_wire(1, wire(3), T0)
    assert [q.id for q in ps.install(always)] == [1, 2]
    legacy = ProfileSet([week, weekend])  # 1.6: same stack level and purpose replace whatever their validity
    assert sorted(legacy.profiles) == [2]


def test_external_constraints_limit_the_evse_and_the_station():
    ps = ProfileSet(overlapping_only=True)
    ps.install(from_wire(0, wire(1, periods=[(0, 20.0)]), T0))  # a TxDefaultProfile for every EVSE
    ctx = ConnectorContext(1, tx_start=T0)
    ext = ChargingProfile(id=9, connector_id=1, stack_level=0, purpose=EXTERNAL, kind="Absolute", unit="A",
                          periods=from_wire(1, wire(periods=[(0, 12.0)]), T0).periods, installed_at=T0,
                          start_schedule=T0, source="EMS")
    ps.install(ext)
    assert ps.limit_at(ctx, T0).amps == 12.0
    assert ps.limit_at(ConnectorContext(2, tx_start=T0), T0).amps == 20.0  # another EVSE: not limited
    station_wide = ChargingProfile(**{**ext.__dict__, "id": 10, "connector_id": 0, "periods": ext.periods[:1]})
    ps.clear(profile_id=9)
    ps.install(station_wide)
    assert ps.limit_at(ctx, T0, sharers=2).amps == 6.0  # shared like the station's maximum
    assert [p.amps for p in ps.composite_station([ctx, ConnectorContext(2, tx_start=T0)], T0, 60).periods] == [12.0]


def test_tx_profile_applies_to_its_own_transaction_only():
    tx = from_wire(1, wire(1, "TxProfile", periods=[(0, 8.0)], transactionId="t1"), T0)
    assert tx.purpose == TX_PROFILE
    ps = ProfileSet([tx], overlapping_only=True)
    assert ps.limit_at(ConnectorContext(1, tx_start=T0, tx_id="t1"), T0).amps == 8.0
    assert ps.limit_at(ConnectorContext(1, tx_start=T0, tx_id="t2"), T0).amps is None
    assert ps.limit_at(ConnectorContext(1), T0).amps is None  # no transaction


def test_composite_schedule_type_in_amperes_and_watts():
    ps = ProfileSet([from_wire(1, wire(1, periods=[(0, 10.0), (60, 16.0)]), T0)], overlapping_only=True)
    c = ps.composite(ConnectorContext(1, phases=3, max_a=32.0, tx_start=T0), T0, 120)
    amps = composite_schedule(1, c, "A")
    assert amps == {"evseId": 1, "duration": 120, "scheduleStart": iso(T0), "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0, "numberPhases": 3},
                                               {"startPeriod": 60, "limit": 16.0, "numberPhases": 3}]}
    watts = composite_schedule(1, c, "W")
    assert [p["limit"] for p in watts["chargingSchedulePeriod"]] == [6900.0, 11040.0]

"""Smart charging, pure (station/core/charging.py): worked examples of validity, stacking,
recurrence across midnight and week boundaries, relative schedules during a transaction, A versus
W, connector 0 shared between connectors, minChargingRate, and SetChargingProfile's checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from station.core.charging import (
    Capabilities,
    ChargingProfile,
    ConnectorContext,
    ProfileError,
    ProfileSet,
    problems,
    tenths,
)
from station.core.clock import iso

T0 = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)  # a Monday, 20:00 UTC


def prof(pid: int, purpose: str = "TxDefaultProfile", stack: int = 0, periods: list[tuple[int, float]] | None = None,
         cid: int = 0, kind: str = "Absolute", unit: str = "A", start: datetime | None = T0, duration: int | None = None,
         recurrency: str | None = None, phases: int | None = None, min_rate: float | None = None,
         **extra: object) -> ChargingProfile:
    sched: dict = {"chargingRateUnit": unit, "chargingSchedulePeriod": [
        {"startPeriod": s, "limit": v, **({"numberPhases": phases} if phases else {})} for s, v in (periods or [(0, 16.0)])]}
    if start is not None:
        sched["startSchedule"] = iso(start)
    if duration is not None:
        sched["duration"] = duration
    if min_rate is not None:
        sched["minChargingRate"] = min_rate
    cp: dict = {"chargingProfileId": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
                "chargingProfileKind": kind, "chargingSchedule": sched, **extra}
    if recurrency:
        cp["recurrencyKind"] = recurrency
    return ChargingProfile.from_ocpp(cid, cp, T0)


def at(ps: ProfileSet, ctx: ConnectorContext, when: datetime, sharers: int = 1) -> float | None:
    return ps.limit_at(ctx, when, sharers).amps


def limits(ps: ProfileSet, ctx: ConnectorContext, start: datetime, duration: int, sharers: int = 1) -> list[tuple[int, float]]:
    return [(p.start_s, p.amps) for p in ps.composite(ctx, start, duration, sharers).periods]


CHARGING = ConnectorContext(1, phases=3, max_a=32.0, tx_start=T0)
IDLE = ConnectorContext(1, phases=3, max_a=32.0)


# -- stacking ---------------------------------------------------------------------------------------
def test_higher_stack_level_wins_while_it_runs_then_the_lower_one_applies():
    ps = ProfileSet([prof(1, stack=0, periods=[(0, 16.0)]),
                     prof(2, stack=1, periods=[(0, 10.0), (1800, 8.0)], duration=3600)])
    assert limits(ps, CHARGING, T0, 7200) == [(0, 10.0), (1800, 8.0), (3600, 16.0)]
    assert at(ps, CHARGING, T0 + timedelta(seconds=3599)) == 8.0
    assert at(ps, CHARGING, T0 + timedelta(seconds=3600)) == 16.0
    assert ps.next_change(CHARGING, T0) == T0 + timedelta(seconds=1800)
    assert ps.next_change(CHARGING, T0 + timedelta(seconds=1800)) == T0 + timedelta(seconds=3600)
    assert ps.next_change(CHARGING, T0 + timedelta(seconds=3600)) is None  # nothing changes any more


def test_same_purpose_and_stack_level_replaces_and_same_id_replaces():
    ps = ProfileSet([prof(1, stack=0, periods=[(0, 16.0)])])
    gone = ps.install(prof(2, stack=0, periods=[(0, 12.0)]))
    assert [p.id for p in gone] == [1] and set(ps.profiles) == {2}
    gone = ps.install(prof(2, purpose="ChargePointMaxProfile", stack=3, periods=[(0, 20.0)]))
    assert [p.id for p in gone] == [2] and ps.profiles[2].purpose == "ChargePointMaxProfile"
    # another connector's TxDefaultProfile with the same stack level is a different profile
    ps.install(prof(3, stack=0, cid=1))
    ps.install(prof(4, stack=0, cid=2))
    assert set(ps.profiles) == {2, 3, 4}


def test_valid_from_and_valid_to_bound_a_profile():
    ps = ProfileSet([prof(1, stack=0, periods=[(0, 16.0)]),
                     prof(2, stack=1, periods=[(0, 6.0)], validFrom=iso(T0 + timedelta(hours=1)),
                          validTo=iso(T0 + timedelta(hours=2)))])
    assert limits(ps, CHARGING, T0, 3 * 3600) == [(0, 16.0), (3600, 6.0), (7200, 16.0)]


# -- recurrence -------------------------------------------------------------------------------------
def test_daily_recurring_across_midnight():
    # every day from 22:00: 10 A until 02:00, then 16 A until 06:00; nothing after (8 h duration)
    start = T0.replace(hour=22)
    ps = ProfileSet([prof(1, kind="Recurring", recurrency="Daily", start=start,
                          periods=[(0, 10.0), (4 * 3600, 16.0)], duration=8 * 3600)])
    day2 = start + timedelta(days=1)
    assert at(ps, CHARGING, day2 + timedelta(hours=1)) == 10.0  # 23:00 on the next day
    assert at(ps, CHARGING, day2 + timedelta(hours=2)) == 10.0  # 00:00 exactly
    assert at(ps, CHARGING, day2 + timedelta(hours=3, minutes=59)) == 10.0  # 01:59
    assert at(ps, CHARGING, day2 + timedelta(hours=4)) == 16.0  # 02:00
    assert at(ps, CHARGING, day2 + timedelta(hours=9)) is None  # 07:00: outside the daily window
    noon = day2 + timedelta(hours=14)  # 12:00 the day after: next change is 22:00 the same day
    assert ps.next_change(CHARGING, noon) == start + timedelta(days=2)
    assert limits(ps, CHARGING, day2.replace(hour=21), 6 * 3600) == [(0, 32.0), (3600, 10.0), (5 * 3600, 16.0)]


def test_weekly_recurring_across_the_week_boundary():
    # Sundays 23:00 (the week turns at midnight) for 3 h: 6 A
    sunday = T0 - timedelta(days=1) + timedelta(hours=3)  # Sunday 1 March 23:00
    assert sunday.weekday() == 6
    ps = ProfileSet([prof(1, kind="Recurring", recurrency="Weekly", start=sunday, periods=[(0, 6.0)], duration=3 * 3600)])
    next_week = sunday + timedelta(weeks=3)
    assert at(ps, CHARGING, next_week + timedelta(hours=2)) == 6.0  # Monday 01:00
    assert at(ps, CHARGING, next_week + timedelta(hours=4)) is None
    assert at(ps, CHARGING, next_week + timedelta(days=1)) is None  # Monday 23:00 is not Sunday
    assert ps.next_change(CHARGING, next_week + timedelta(hours=5)) == next_week + timedelta(weeks=1)


def test_recurring_before_its_start_schedule_does_not_apply():
    ps = ProfileSet([prof(1, kind="Recurring", recurrency="Daily", start=T0 + timedelta(days=1), periods=[(0, 6.0)])])
    assert at(ps, CHARGING, T0 + timedelta(hours=2)) is None
    assert at(ps, CHARGING, T0 + timedelta(days=1, hours=2)) == 6.0


# -- relative ---------------------------------------------------------------------------------------
def test_relative_schedule_runs_from_the_transaction_start():
    ps = ProfileSet([prof(1, kind="Relative", start=None, periods=[(0, 8.0), (600, 20.0)], duration=1800)])
    started = T0 + timedelta(minutes=5)
    ctx = ConnectorContext(1, tx_start=started)
    assert at(ps, ctx, started + timedelta(seconds=599)) == 8.0
    assert at(ps, ctx, started + timedelta(seconds=600)) == 20.0
    assert at(ps, ctx, started + timedelta(seconds=1800)) is None
    # asked 300 s into the transaction: the composite starts at the ask, its boundaries follow the start
    assert limits(ps, ctx, started + timedelta(seconds=300), 3600) == [(0, 8.0), (300, 20.0), (1500, 32.0)]
    assert ps.next_change(ctx, started) == started + timedelta(seconds=600)
    # without a transaction it runs from the requested start, and no timer is wanted for it
    assert limits(ps, IDLE, T0, 3600) == [(0, 8.0), (600, 20.0), (1800, 32.0)]
    assert ps.next_change(IDLE, T0) is None


def test_tx_profile_overrules_tx_default_only_during_a_transaction_of_its_connector():
    ps = ProfileSet([prof(1, stack=5, periods=[(0, 16.0)]),
                     prof(2, purpose="TxProfile", cid=1, stack=0, kind="Relative", start=None, periods=[(0, 10.0)], duration=60)])
    assert at(ps, CHARGING, T0) == 10.0
    assert at(ps, CHARGING, T0 + timedelta(seconds=60)) == 16.0  # the TxProfile ended: the default again
    assert at(ps, IDLE, T0) == 16.0
    assert at(ps, ConnectorContext(2, tx_start=T0), T0) == 16.0


# -- units ------------------------------------------------------------------------------------------
def test_watts_and_amperes_with_the_evse_phases_and_number_phases():
    ps = ProfileSet([prof(1, unit="W", periods=[(0, 11040.0)])])
    assert at(ps, CHARGING, T0) == pytest.approx(16.0)  # 11,040 W / (230 V x 3)
    single = ConnectorContext(1, phases=1, max_a=32.0, tx_start=T0)
    assert at(ps, single, T0) == pytest.approx(48.0)  # one phase: 11,040 W / 230 V
    ps = ProfileSet([prof(1, unit="W", periods=[(0, 3680.0)], phases=1)])
    assert at(ps, CHARGING, T0) == pytest.approx(16.0)  # numberPhases 1 on a 3-phase EVSE
    comp = ps.composite(CHARGING, T0, 600)
    assert comp.to_ocpp("W")["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 3680.0, "numberPhases": 1}]
    assert comp.to_ocpp("A")["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 16.0, "numberPhases": 1}]


def test_composite_never_above_the_evse_maximum():
    ps = ProfileSet([prof(1, periods=[(0, 63.0)])])
    assert limits(ps, CHARGING, T0, 60) == [(0, 32.0)]


# -- connector 0 --------------------------------------------------------------------------------------
def test_connector_0_profiles_are_shared():
    ps = ProfileSet([prof(1, purpose="ChargePointMaxProfile", periods=[(0, 24.0)]),
                     prof(2, cid=0, periods=[(0, 16.0)])])
    c1 = ConnectorContext(1, tx_start=T0)
    c2 = ConnectorContext(2, tx_start=T0)
    # alone: its TxDefaultProfile (16 A) is below the station's 24 A
    assert at(ps, c1, T0, sharers=1) == 16.0
    # two charging: the 24 A of the station are shared, 12 A each; the TxDefaultProfile of connector 0 applies to both
    assert at(ps, c1, T0, sharers=2) == 12.0 and at(ps, c2, T0, sharers=2) == 12.0
    # the station's composite: the sum of its connectors within the ChargePointMaxProfile
    station = ps.composite_station([c1, c2], T0, 600)
    assert [(p.start_s, p.amps) for p in station.periods] == [(0, 24.0)]
    assert station.to_ocpp("A")["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 24.0}]
    # a connector's own TxDefaultProfile overrules connector 0's, whatever the stack levels
    ps.install(prof(3, cid=2, stack=0, periods=[(0, 6.0)]))
    ps.install(prof(4, cid=0, stack=9, periods=[(0, 20.0)]))
    assert at(ps, c2, T0) == 6.0 and at(ps, c1, T0) == 20.0


def test_min_charging_rate_offers_nothing_below_it():
    ps = ProfileSet([prof(1, purpose="ChargePointMaxProfile", periods=[(0, 16.0)]),
                     prof(2, periods=[(0, 16.0)], min_rate=10.0)])
    assert at(ps, CHARGING, T0, sharers=1) == 16.0
    assert at(ps, CHARGING, T0, sharers=2) == 0.0  # 8 A would be below the EV's 10 A
    assert ps.composite(CHARGING, T0, 60).to_ocpp("A")["minChargingRate"] == 10.0


# -- checks -------------------------------------------------------------------------------------------
CAPS = Capabilities(max_stack_level=3, allowed_units=frozenset({"A"}), max_periods=2, max_installed=2)


@pytest.mark.parametrize(("p", "running", "why"), [
    (prof(1, purpose="ChargePointMaxProfile", cid=1), {}, "connector 0 only"),
    (prof(1, purpose="TxProfile", cid=1), {}, "no transaction"),
    (prof(1, purpose="TxProfile", cid=0), {1: 5}, "not on 0"),
    (prof(1, purpose="TxProfile", cid=1, transactionId=6), {1: 5}, "transactionId 6"),
    (prof(1, stack=4), {}, "ChargeProfileMaxStackLevel"),
    (prof(1, unit="W"), {}, "not allowed"),
    (prof(1, periods=[(0, 1.0), (60, 2.0), (120, 3.0)]), {}, "ChargingScheduleMaxPeriods"),
    (prof(1, periods=[(10, 1.0)]), {}, "start at 0"),
    (prof(1, periods=[(0, 1.0), (0, 2.0)]), {}, "increasing"),
    (prof(1, kind="Recurring"), {}, "recurrencyKind"),
    (prof(1, cid=5), {}, "does not exist"),
    (prof(1, validFrom=iso(T0), validTo=iso(T0)), {}, "validTo"),
])
def test_problems(p, running, why):
    found = problems(p, connector_ids=[1, 2], caps=CAPS, running=running)
    assert found is not None and why in found


def test_acceptable_profiles_and_the_installed_maximum():
    ps = ProfileSet()
    ok = prof(1, purpose="TxProfile", cid=1, transactionId=5)
    assert problems(ok, connector_ids=[1, 2], caps=CAPS, running={1: 5}, installed=ps) is None
    assert problems(prof(1, purpose="TxProfile", cid=1), connector_ids=[1], caps=CAPS, running={1: None}) is None
    ps.install(prof(1, stack=0))
    ps.install(prof(2, stack=1))
    assert "MaxChargingProfilesInstalled" in (problems(prof(3, stack=2), connector_ids=[1], caps=CAPS, running={},
                                                       installed=ps) or "")
    assert problems(prof(3, stack=1), connector_ids=[1], caps=CAPS, running={}, installed=ps) is None  # replaces 2
    # a remote start's TxProfile: no transaction yet, and no transactionId allowed
    rs = prof(1, purpose="TxProfile", cid=1)
    assert problems(rs, connector_ids=[1], caps=CAPS, running={}, remote_start=True) is None
    with_id = prof(1, purpose="TxProfile", cid=1, transactionId=3)
    assert "transactionId" in (problems(with_id, connector_ids=[1], caps=CAPS, running={}, remote_start=True) or "")


def test_clear_by_id_and_by_criteria():
    ps = ProfileSet([prof(1, cid=0, stack=0), prof(2, cid=1, stack=0), prof(3, purpose="ChargePointMaxProfile", stack=0),
                     prof(4, cid=1, stack=1)])
    assert [p.id for p in ps.clear(profile_id=9)] == []
    assert [p.id for p in ps.clear(profile_id=2)] == [2]
    assert sorted(p.id for p in ps.clear(purpose="TxDefaultProfile", stack_level=0)) == [1]
    assert [p.id for p in ps.clear(connector_id=1)] == [4]
    assert [p.id for p in ps.clear()] == [3]
    assert len(ps) == 0


def test_stored_record_round_trip_and_unusable_profile():
    p = prof(7, kind="Recurring", recurrency="Weekly", periods=[(0, 10.0), (60, 12.0)], duration=120, min_rate=6.0)
    again = ChargingProfile.from_record(p.record())
    assert again == p
    with pytest.raises(ProfileError):
        ChargingProfile.from_ocpp(1, {"chargingProfileId": 1}, T0)


def test_limits_go_out_in_tenths_never_above():
    assert tenths(10.87) == 10.8 and tenths(15.9999999) == 16.0 and tenths(6.0) == 6.0
    ps = ProfileSet([prof(1, unit="W", periods=[(0, 7500.0)])])  # 10.869... A
    assert ps.composite(CHARGING, T0, 60).to_ocpp("A")["chargingSchedulePeriod"][0]["limit"] == 10.8


def test_next_change_far_ahead():
    # an Absolute profile that starts in 30 days, a Weekly one valid from 20 days on: the timer is armed for them
    far = ProfileSet([prof(1, start=T0 + timedelta(days=30), periods=[(0, 10.0)])])
    assert far.next_change(CHARGING, T0) == T0 + timedelta(days=30)
    weekly = ProfileSet([prof(1, kind="Recurring", recurrency="Weekly", start=T0, periods=[(0, 10.0)], duration=3600,
                              validFrom=iso(T0 + timedelta(days=20)))])
    assert weekly.next_change(CHARGING, T0) == T0 + timedelta(days=20)
    assert weekly.next_change(CHARGING, T0 + timedelta(days=20)) == T0 + timedelta(days=21)

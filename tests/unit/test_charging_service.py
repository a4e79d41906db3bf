"""The smart charging service (station/charging.py) on a ManualScheduler, a real SQLite store and a
stand-in for the station (what it applies is recorded): the limit changes exactly at each period
boundary by one one-shot timer, a wall clock set back does not apply a later period early, and
the profiles come back from the store."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from station.charging import NS, ChargingService
from station.core.charging import ChargingProfile
from station.core.clock import iso
from station.core.evse import Connector, Evse
from station.core.transaction import Transaction
from station.scheduler import ManualScheduler
from station.store import Store

T0 = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)
LOG = logging.getLogger("test")


class FakeStation:
    def __init__(self) -> None:
        self.evses = {1: Evse(1, [Connector(1)])}
        self.connectors = {1: self.evses[1].connectors[0]}
        self.applied: list[tuple[datetime, int, float | None]] = []
        self.clock: ManualScheduler | None = None

    def evse_of(self, cid: int) -> Evse:
        return self.evses[1]

    def apply_limit(self, cid: int, amps: float | None, phases: int | None = None) -> None:
        assert self.clock is not None
        self.applied.append((self.clock.now(), cid, amps))


def absolute(pid: int, periods: list[tuple[int, float]], start: datetime = T0, **kw: object) -> ChargingProfile:
    cp = {"chargingProfileId": pid, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
          "chargingProfileKind": "Absolute", "chargingSchedule": {
              "chargingRateUnit": "A", "startSchedule": iso(start),
              "chargingSchedulePeriod": [{"startPeriod": s, "limit": v} for s, v in periods]}, **kw}
    return ChargingProfile.from_ocpp(0, cp, T0)


def make(tmp_path):
    sched = ManualScheduler(T0)
    st = FakeStation()
    st.clock = sched
    store = Store(tmp_path / "s.sqlite")
    svc = ChargingService(st, store, sched, LOG)  # type: ignore[arg-type]
    svc.start()
    return sched, st, store, svc


def test_limit_changes_exactly_at_each_boundary_with_one_timer(tmp_path):
    sched, st, store, svc = make(tmp_path)
    svc.install(absolute(1, [(0, 16.0), (600, 10.0), (1800, 6.0)]))
    assert st.applied[-1] == (T0, 1, 16.0)
    assert sched.pending == 1  # one timer, for the next boundary
    sched.advance(599.9)
    assert st.applied[-1][2] == 16.0
    sched.advance(0.1)
    assert st.applied[-1] == (T0 + timedelta(seconds=600), 1, 10.0)
    sched.advance(1200)
    assert st.applied[-1] == (T0 + timedelta(seconds=1800), 1, 6.0)
    assert sched.pending == 0  # nothing changes any more: no timer
    store.close()


def test_wall_clock_set_back_does_not_apply_the_next_period_early(tmp_path):
    sched, st, store, svc = make(tmp_path)
    svc.install(absolute(1, [(0, 16.0), (600, 10.0)]))
    sched._wall0 -= timedelta(hours=1)  # NTP sets the clock back an hour
    sched.advance(600)  # the timer fires (monotonic), the wall clock says 19:10: before the schedule
    assert st.applied[-1][2] is None  # not the 10 A of 20:10
    assert sched.pending == 1
    sched.advance(3000)  # 20:00 on the wall clock
    assert st.applied[-1] == (T0, 1, 16.0)
    sched.advance(600)
    assert st.applied[-1] == (T0 + timedelta(seconds=600), 1, 10.0)
    store.close()


def test_profiles_come_back_from_the_store_and_tx_profiles_end_with_the_transaction(tmp_path):
    sched, st, store, svc = make(tmp_path)
    svc.install(absolute(1, [(0, 12.0)]))
    tx = Transaction(local_id=1, connector_id=1, id_tag="T", meter_start_wh=0, started_at=T0,
                     charging_profile={"chargingProfileId": 9, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
                                       "chargingProfileKind": "Relative", "chargingSchedule": {
                                           "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 4140}]}})
    st.connectors[1].transaction = tx
    svc.transaction_started(tx)
    assert st.applied[-1][2] == 6.0  # 4,140 W / (230 V x 3)
    assert set(store.items(NS)) == {"1", "9"}
    svc.stop()
    again = ChargingService(st, store, sched, LOG)  # type: ignore[arg-type]
    assert set(again.profiles.profiles) == {1, 9}
    tx.stopped_at = T0 + timedelta(minutes=5)
    st.connectors[1].transaction = None
    again.start()
    again.transaction_stopped(tx)
    assert set(again.profiles.profiles) == {1} and set(store.items(NS)) == {"1"}
    store.put(NS, "5", {"connectorId": 0, "profile": {"nonsense": True}})
    third = ChargingService(st, store, sched, LOG)  # type: ignore[arg-type]
    assert set(third.profiles.profiles) == {1} and "5" not in store.items(NS)  # unreadable: dropped, logged
    store.close()


def test_a_profile_past_its_valid_to_is_removed_at_that_boundary(tmp_path):
    sched, st, store, svc = make(tmp_path)
    svc.install(absolute(1, [(0, 10.0)], validTo=iso(T0 + timedelta(hours=1))))
    assert st.applied[-1][2] == 10.0
    sched.advance(3600)
    assert st.applied[-1] == (T0 + timedelta(hours=1), 1, None)
    assert len(svc.profiles) == 0 and store.items(NS) == {}
    store.close()


def test_wall_clock_set_forward_does_not_apply_the_next_period_late(tmp_path):
    sched, st, store, svc = make(tmp_path)
    svc.install(absolute(1, [(0, 16.0), (600, 10.0), (1800, 6.0)]))

    def checkpoint() -> None:  # the station's own 5 s timer
        sched.call_later(5, checkpoint)

    sched.call_later(5, checkpoint)
    sched.advance(100)
    sched._wall0 += timedelta(seconds=1000)  # NTP sets the clock forward: 20:18:20, past 20:10
    sched.advance(5)
    assert st.applied[-1][2] == 10.0 and st.applied[-1][0] <= T0 + timedelta(seconds=1105)
    sched.advance(1800 - 1105 - 1)
    assert st.applied[-1][2] == 10.0
    sched.advance(1)
    assert st.applied[-1] == (T0 + timedelta(seconds=1800), 1, 6.0)  # exactly at 20:30 on the wall clock
    store.close()

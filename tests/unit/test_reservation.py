"""The reservation rules (station/core/reservation.py) and the session's part: who may use a
reserved connector, which connector shows Reserved, what ReserveNow answers, which reservation a
starting transaction uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from station.core import model as m
from station.core.auth import IdTagInfo
from station.core.evse import Connector, Evse
from station.core.evse import Reservation as Hold
from station.core.model import ConnectorState as State
from station.core.reservation import Condition, Reservation, ReservationBook, ReservationStatus, may_use
from station.core.session import Session

T0 = datetime(2026, 1, 1, tzinfo=UTC)
F, OCC, X, U = Condition.Free, Condition.Occupied, Condition.Faulted, Condition.Unavailable
S = ReservationStatus


def res(rid: int, cid: int, tag: str = "A", parent: str | None = None, minutes: int = 10) -> Reservation:
    return Reservation(rid, cid, tag, T0 + timedelta(minutes=minutes), parent)


def book(*rs: Reservation) -> ReservationBook:
    b = ReservationBook()
    for r in rs:
        b.add(r)
    return b


# -- who may use it ----------------------------------------------------------------------------
@pytest.mark.parametrize("tag,parent,ok", [
    ("A", None, True),  # the reserved idTag
    ("B", "P", True),  # a card of the reservation's parentIdTag
    ("B", None, False),
    ("B", "Q", False),
])
def test_may_use_the_idtag_or_its_parent(tag, parent, ok):
    assert may_use("A", "P", tag, parent) is ok


def test_without_a_parent_only_the_idtag():
    assert not may_use("A", None, "B", None)


# -- ReserveNow on a connector ----------------------------------------------------------------
@pytest.mark.parametrize("cond,status", [(F, S.Accepted), (OCC, S.Occupied), (X, S.Faulted), (U, S.Unavailable)])
def test_reserve_a_connector_by_its_condition(cond, status):
    assert book().decide(res(1, 1), {1: cond}, F, True) is status


def test_a_connector_reserved_by_another_id_is_occupied_the_same_id_replaces():
    b = book(res(1, 1, "A"))
    assert b.decide(res(2, 1, "B"), {1: F}, F, True) is S.Occupied
    assert b.decide(res(1, 1, "B"), {1: F}, F, True) is S.Accepted
    assert b.add(res(1, 1, "B")) == res(1, 1, "A")  # replaced
    assert list(b.by_id.values()) == [res(1, 1, "B")]


def test_unknown_connector_is_rejected_and_station_state_wins():
    assert book().decide(res(1, 3), {1: F}, F, True) is S.Rejected
    assert book().decide(res(1, 1), {1: F}, X, True) is S.Faulted
    assert book().decide(res(1, 1), {1: F}, U, True) is S.Unavailable


def test_the_connector_kept_for_a_connector_0_reservation_cannot_be_reserved():
    b = book(res(9, 0, "Z"))
    assert b.decide(res(1, 1), {1: F, 2: OCC}, F, True) is S.Occupied
    assert b.decide(res(1, 1), {1: F, 2: F}, F, True) is S.Accepted


# -- ReserveNow on connector 0 -----------------------------------------------------------------
def test_connector_0_needs_the_key():
    assert book().decide(res(1, 0), {1: F}, F, False) is S.Rejected


@pytest.mark.parametrize("conds,status", [
    ({1: F}, S.Accepted),
    ({1: OCC}, S.Occupied),
    ({1: X}, S.Faulted),
    ({1: U}, S.Unavailable),
    ({1: X, 2: OCC}, S.Occupied),
    ({1: X, 2: U}, S.Faulted),
    ({1: OCC, 2: F}, S.Accepted),
])
def test_connector_0_by_the_connectors(conds, status):
    assert book().decide(res(1, 0), conds, F, True) is status


def test_connector_0_keeps_one_free_connector_per_reservation():
    b = book(res(1, 0, "A"))
    assert b.decide(res(2, 0, "B"), {1: F}, F, True) is S.Occupied
    assert b.decide(res(2, 0, "B"), {1: F, 2: F}, F, True) is S.Accepted
    assert b.decide(res(1, 0, "B"), {1: F}, F, True) is S.Accepted  # the same id: replaced


# -- which connector shows Reserved -------------------------------------------------------------
def test_held_shows_own_reservations_always_and_connector_0_on_the_last_free_one():
    own, zero = res(1, 1), res(2, 0, "B")
    assert book(own).held({1: OCC, 2: F}) == {1: own}
    assert book(zero).held({1: F, 2: F}) == {}
    assert book(zero).held({1: OCC, 2: F}) == {2: zero}
    assert book(zero).held({1: OCC, 2: OCC}) == {}
    assert book(own, zero).held({1: F, 2: F}) == {1: own, 2: zero}


def test_expiry_on_wall_clock_and_next_expiry():
    b = book(res(1, 1, minutes=5), res(2, 0, minutes=10))
    assert b.next_expiry() == T0 + timedelta(minutes=5)
    assert b.expired(T0 + timedelta(minutes=4)) == []
    assert b.expired(T0 + timedelta(minutes=5)) == [res(1, 1, minutes=5)]
    assert b.next_expiry() == T0 + timedelta(minutes=10)


def test_store_round_trip():
    r = res(7, 0, "A", "P")
    assert Reservation.from_store(7, r.to_store()) == r


def test_used_by_the_connectors_own_or_a_connector_0_one_for_the_idtag():
    own, zero = res(1, 1, "A"), res(2, 0, "B", "P")
    b = book(own, zero)
    assert b.used_by(1, "A", None) == own
    assert b.used_by(2, "A", None) is None  # a connector's own reservation is for that connector only
    assert b.used_by(2, "C", "P") == zero  # connector 0: any connector, the parent's cards too
    assert b.used_by(1, "X", None, reservation_id=2) == zero


# -- the session ----------------------------------------------------------------------------------
class Rig:
    def __init__(self) -> None:
        self.s = Session(Evse(1, [Connector(1)], max_current_a=16.0))
        self.now = T0
        self.rid = 0

    @property
    def conn(self) -> Connector:
        return self.s.connectors[1]

    def feed(self, ev: m.Event) -> list[m.Effect]:
        self.now += timedelta(seconds=1)
        return self.s.handle(ev, self.now)

    def card(self, tag: str, info: IdTagInfo) -> list[m.Effect]:
        self.rid += 1
        out = self.feed(m.IdTokenPresented(1, m.IdToken(tag), self.rid))
        ask = next(e for e in out if isinstance(e, m.AskAuthorization))
        return self.feed(m.AuthorizationResult(ask.request_id, info))


def test_session_refuses_another_idtag_at_a_reserved_connector():
    r = Rig()
    r.conn.reservation = Hold(5, "A", 0.0, "P")
    r.feed(m.CpStateChanged(1, m.CpState.B))
    assert r.conn.state() is State.Reserved  # a cable alone does not take a reservation
    out = r.card("B", IdTagInfo("Accepted", parent_id_tag="Q"))
    assert m.Reply(r.rid, "reserved") in out and m.PrepareTransaction(1) not in out
    assert r.conn.state() is State.Reserved


def test_session_lets_a_card_of_the_parent_start_and_names_the_reservation():
    r = Rig()
    r.conn.reservation = Hold(5, "A", 0.0, "P")
    r.feed(m.CpStateChanged(1, m.CpState.B))
    out = r.card("B", IdTagInfo("Accepted", parent_id_tag="P"))
    assert m.PrepareTransaction(1) in out
    out = r.feed(m.TransactionPrepared(1, True, 1000, 7))
    begin = next(e for e in out if isinstance(e, m.BeginTransaction))
    assert begin.transaction.reservation_id == 5 and begin.transaction.id_tag == "B"
    assert r.conn.reservation is None


def test_reserved_driver_identified_before_the_cable_shows_preparing():
    r = Rig()
    r.conn.reservation = Hold(5, "A", 0.0)
    r.card("A", IdTagInfo("Accepted"))
    assert r.conn.state() is State.Preparing


def test_remote_start_for_another_idtag_is_refused_at_a_reserved_connector():
    r = Rig()
    r.conn.reservation = Hold(5, "A", 0.0)
    out = r.feed(m.RemoteStartRequested(1, m.IdToken("B", "Central"), 1))
    ask = next(e for e in out if isinstance(e, m.AskAuthorization))
    out = r.feed(m.AuthorizationResult(ask.request_id, IdTagInfo("Accepted")))
    assert m.Reply(1, "reserved") in out and r.conn.pending is None


# -- the driver: expiry timer on wall-clock time, persistence ----------------------------------------
def make_station(tmp_path, sched):
    import logging

    from hal.board import build_evse
    from station.station import Station
    from station.store import Store

    store = Store(tmp_path / "s.sqlite")
    st = Station(station_id="T", evses=[Evse(1, [Connector(1)])], hardware={1: build_evse(1, {}, clock=sched.monotonic)},
                 store=store, clock=sched, log=logging.getLogger("test.reservation"))
    return st, store


def test_expiry_timer_checks_the_wall_clock_again_and_the_book_survives_a_restart(tmp_path):
    from station.scheduler import ManualScheduler

    sched = ManualScheduler(T0)
    st, store = make_station(tmp_path, sched)
    assert st.reserve_now(1, "A", T0 + timedelta(seconds=60), 5) == "Accepted"
    assert st.status_of(1)[0] is State.Reserved
    assert store.items("reservation") == {"5": res(5, 1, minutes=1).to_store()}
    sched._wall0 -= timedelta(seconds=30)  # the wall clock is set back 30 s (NTP) meanwhile
    sched.advance(60)  # the timer fires: 30 s still to go on the wall clock, so it is kept and re-armed
    assert st.status_of(1)[0] is State.Reserved
    st2, store2 = make_station(tmp_path, sched)  # as after a restart: the book comes back from the store
    assert list(st2.reservations.by_id) == [5] and st2.connectors[1].reservation is None  # shown once started
    store2.close()
    sched.advance(30)  # now expired on the wall clock
    assert st.status_of(1)[0] is State.Available and st.reservations.by_id == {}
    assert store.items("reservation") == {}
    store.close()


def test_unreadable_stored_reservation_is_dropped(tmp_path):
    from station.scheduler import ManualScheduler

    sched = ManualScheduler(T0)
    st, store = make_station(tmp_path, sched)
    store.put("reservation", "x", {"connector_id": 1})
    store.put("reservation", "8", {"connector_id": 9, "id_tag": "A", "expiry": "2026-01-01T01:00:00Z"})
    store.close()
    st, store = make_station(tmp_path, sched)
    assert st.reservations.by_id == {} and store.items("reservation") == {}
    store.close()

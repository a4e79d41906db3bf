"""The per-EVSE session (station/core/session.py) on its own, pure: events in, effects out, no loop.

The safety rules are decided in the very call that reports the danger (a blocking fault, CP state
E/F, an unplug), whatever authorization is still waiting for the CSMS; the answer, when it comes,
is judged against the state then. Also: below 6 A nothing is offered, a parentIdTag from the
start's answer counts (OCTT TC_069_CS), and the core imports no asyncio and no I/O.
"""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from station.core import model as m
from station.core.auth import IdTagInfo
from station.core.evse import Connector, Evse
from station.core.model import ConnectorState as State
from station.core.model import StopReason
from station.core.session import CABLE_TIMER, Session
from station.core.settings import Settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Rig:
    """A session and the answers a driver would give, by hand."""

    def __init__(self, **settings) -> None:
        self.s = Session(Evse(1, [Connector(1)], max_current_a=16.0), Settings(**settings))
        self.now = T0
        self.rid = 0

    @property
    def conn(self) -> Connector:
        return self.s.connectors[1]

    def feed(self, ev: m.Event) -> list[m.Effect]:
        self.now += timedelta(seconds=1)
        return self.s.handle(ev, self.now)

    def next_rid(self) -> int:
        self.rid += 1
        return self.rid

    def card(self, tag: str) -> list[m.Effect]:
        return self.feed(m.IdTokenPresented(1, m.IdToken(tag), self.next_rid()))

    def answer(self, effects: list[m.Effect], info: IdTagInfo) -> list[m.Effect]:
        ask = one(effects, m.AskAuthorization)
        return self.feed(m.AuthorizationResult(ask.request_id, info))

    def charging(self, tag: str = "A", parent: str | None = None) -> None:
        self.feed(m.CpStateChanged(1, m.CpState.B))
        out = self.answer(self.card(tag), IdTagInfo("Accepted", parent_id_tag=parent))
        assert m.PrepareTransaction(1) in out
        out = self.feed(m.TransactionPrepared(1, True, 1000, 7))
        assert m.SetPilot(1, 16.0) in out and not any(isinstance(e, m.SetContactor) for e in out)  # PWM first
        out = self.feed(m.CpStateChanged(1, m.CpState.C))  # the EV asks for energy
        assert m.SetContactor(True) in out
        assert self.conn.state() is State.Charging


def one(effects: list[m.Effect], kind: type) -> m.Effect:
    found = [e for e in effects if isinstance(e, kind)]
    assert len(found) == 1, f"{kind.__name__} in {effects}"
    return found[0]


def stops_energy(effects: list[m.Effect]) -> bool:
    """Pilot stops offering, then the contactor opens, in this order."""
    kinds = [(type(e), getattr(e, "amps", getattr(e, "closed", None))) for e in effects]
    return (m.SetPilot, None) in kinds and (m.SetContactor, False) in kinds and kinds.index(
        (m.SetPilot, None)) < kinds.index((m.SetContactor, False))


def gives_energy(effects: list[m.Effect]) -> bool:
    return any((isinstance(e, m.SetPilot) and e.amps) or (isinstance(e, m.SetContactor) and e.closed)
               or isinstance(e, m.PrepareTransaction) for e in effects)


# -- safety while an authorization waits for the CSMS ------------------------------------------

@pytest.mark.parametrize(
    "danger,reason",
    [
        (m.FaultChanged(1, "GroundFailure", True, "RCD tripped"), StopReason.Other),
        (m.CpStateChanged(1, m.CpState.E), StopReason.Other),
        (m.CpStateChanged(1, m.CpState.F), StopReason.Other),
        (m.CpStateChanged(1, m.CpState.A), StopReason.EVDisconnected),
    ],
)
def test_danger_while_a_stop_card_is_being_authorized_stops_the_energy_in_the_same_call(danger, reason):
    r = Rig()
    r.charging("A", parent="FLEET")
    tx = r.conn.transaction
    asking = r.card("B")  # a card of the same group: Authorize goes to the CSMS, no answer yet
    assert isinstance(asking[-1], m.AskAuthorization) and not stops_energy(asking)
    out = r.feed(danger)
    assert stops_energy(out)
    assert one(out, m.EndTransaction).transaction is tx and tx.stop_reason is reason and not tx.active
    assert r.conn.transaction is None
    if reason is StopReason.Other:
        assert r.conn.state() is State.Faulted
    assert not r.s.wants(m.SetContactor(True)) and not r.s.wants(m.SetPilot(1, 16.0))
    # the CSMS answers at last: nothing is switched on again, the card did not stop anything
    late = r.answer(asking, IdTagInfo("Accepted", parent_id_tag="FLEET"))
    assert not gives_energy(late) and m.Reply(asking[-1].request_id, "not allowed to stop") in late


def test_fault_while_a_remote_start_is_being_authorized_starts_nothing():
    r = Rig(authorize_remote_tx_requests=True)
    r.feed(m.CpStateChanged(1, m.CpState.B))
    asking = r.feed(m.RemoteStartRequested(1, m.IdToken("R1", "Central"), 5))
    assert isinstance(asking[-1], m.AskAuthorization)
    out = r.feed(m.CpStateChanged(1, m.CpState.E))
    assert r.conn.state() is State.Faulted and not gives_energy(out)
    late = r.answer(asking, IdTagInfo("Accepted"))
    assert not gives_energy(late) and m.Reply(5, "unavailable") in late and r.conn.transaction is None


def test_fault_while_the_plug_is_being_locked_abandons_the_start():
    r = Rig()
    r.feed(m.CpStateChanged(1, m.CpState.B))
    r.answer(r.card("A"), IdTagInfo("Accepted"))
    assert r.s.wants(m.PrepareTransaction(1))
    r.feed(m.FaultChanged(1, "OverCurrentFailure", True))
    assert not r.s.wants(m.PrepareTransaction(1))  # not started if it was still queued
    out = r.feed(m.TransactionPrepared(1, True, 1000, 7))  # or it was already under way
    assert r.conn.transaction is None and not gives_energy(out)
    assert m.Unlock(1) not in out  # the fault holds the plug


def test_same_card_stops_at_once_without_asking():
    r = Rig()
    r.charging("A")
    out = r.card("A")
    assert stops_energy(out) and not any(isinstance(e, m.AskAuthorization) for e in out)
    kinds = [type(e) for e in out]
    assert kinds.index(m.SetContactor) < kinds.index(m.EndTransaction) < kinds.index(m.Unlock)  # relay open before unlock
    assert out[-1] == m.Reply(r.rid, "stopped")


# -- IEC 61851-1 -------------------------------------------------------------------------------

@pytest.mark.parametrize("amps", [0, 0.5, 3, 5.9])
def test_a_limit_below_6_a_offers_nothing_and_suspends(amps):
    r = Rig()
    r.charging()
    out = r.feed(m.LimitChanged(1, amps))
    assert m.SetPilot(1, 0) in out and m.SetContactor(False) in out
    assert not any(isinstance(e, m.SetPilot) and e.amps for e in out)
    assert r.conn.state() is State.SuspendedEVSE and not r.s.contactor_wanted()
    assert r.s.offered_current() == 0  # what Current.Offered reports: what the pilot offers
    out = r.feed(m.LimitChanged(1, 6))
    assert m.SetPilot(1, 6.0) in out and r.s.offered_current() == 6


def test_contactor_follows_the_ev_b_opens_c_closes_d_opens():
    r = Rig()
    r.charging()
    assert m.SetContactor(False) in r.feed(m.CpStateChanged(1, m.CpState.B))
    assert r.conn.state() is State.SuspendedEV
    assert m.SetContactor(True) in r.feed(m.CpStateChanged(1, m.CpState.C))
    assert m.SetContactor(False) in r.feed(m.CpStateChanged(1, m.CpState.D))
    assert r.conn.state() is State.SuspendedEVSE


def test_ev_communication_error_suspends_and_resumes_the_same_transaction():
    r = Rig()
    r.charging()
    tx = r.conn.transaction
    out = r.feed(m.FaultChanged(1, "EVCommunicationError", True))
    assert stops_energy(out) and r.conn.transaction is tx and r.conn.state() is State.SuspendedEVSE
    out = r.feed(m.FaultChanged(1, "EVCommunicationError", False))
    assert m.SetPilot(1, 16.0) in out


# -- hardware results --------------------------------------------------------------------------

def test_lock_failure_comes_back_as_an_event_and_nothing_is_offered():
    r = Rig()
    r.feed(m.CpStateChanged(1, m.CpState.B))
    r.answer(r.card("A"), IdTagInfo("Accepted"))
    out = r.feed(m.TransactionPrepared(1, False))
    assert not gives_energy(out) and r.conn.transaction is None
    assert r.conn.state() is State.Faulted and r.conn.reported_fault == "ConnectorLockFailure"


def test_contactor_that_fails_to_close_ends_the_transaction():
    r = Rig()
    r.charging()
    tx = r.conn.transaction
    out = r.feed(m.HardwareFailed(1, m.SetContactor(True), "PowerSwitchFailure", "did not close"))
    assert m.SetPilot(1, None) in out and tx.stop_reason is StopReason.Other
    assert r.conn.state() is State.Faulted and not r.s.wants(m.Unlock(1))  # a live cable stays locked


# -- authorization rules ------------------------------------------------------------------------

def test_TC_069_parent_from_the_start_answer_lets_a_card_of_the_group_stop():
    r = Rig()
    r.charging("A")  # Authorize.conf named no parent
    tx = r.conn.transaction
    r.feed(m.StartResult(1, tx.local_id, IdTagInfo("Accepted", parent_id_tag="FLEET")))
    assert tx.parent_id_tag == "FLEET"
    out = r.answer(r.card("B"), IdTagInfo("Accepted", parent_id_tag="FLEET"))
    assert stops_energy(out) and tx.stop_reason is StopReason.Local and tx.stop_id_tag == "B"


def test_other_group_may_not_stop():
    r = Rig()
    r.charging("A", parent="FLEET")
    out = r.answer(r.card("B"), IdTagInfo("Accepted", parent_id_tag="OTHER"))
    assert not stops_energy(out) and r.conn.transaction is not None


def test_invalid_id_at_start_stops_or_limits_to_max_energy():
    r = Rig(stop_on_invalid_id=True)
    r.charging()
    tx = r.conn.transaction
    out = r.feed(m.StartResult(1, tx.local_id, IdTagInfo("Invalid")))
    assert stops_energy(out) and tx.stop_reason is StopReason.DeAuthorized

    r = Rig(stop_on_invalid_id=False, max_energy_on_invalid_id_wh=500)
    r.charging()
    tx = r.conn.transaction
    out = r.feed(m.StartResult(1, tx.local_id, IdTagInfo("Invalid")))
    assert r.conn.transaction is tx and any(isinstance(e, m.StartTimer) for e in out)
    assert r.feed(m.TimerFired("max_energy_on_invalid_id", 1)) == [m.ReadMeter(1)]
    out = r.feed(m.MeterRead(1, 1200, 11000))
    assert any(isinstance(e, m.StartTimer) for e in out) and r.conn.state() is State.Charging
    out = r.feed(m.MeterRead(1, 1500, 11000))  # 500 Wh taken: no more
    assert m.SetPilot(1, 0) in out and r.conn.state() is State.SuspendedEVSE and r.conn.transaction is tx


def test_card_before_the_cable_waits_connection_timeout_then_drops():
    r = Rig(connection_timeout_s=30)
    out = r.answer(r.card("A"), IdTagInfo("Accepted"))
    assert m.StartTimer(CABLE_TIMER, 1, 30) in out and r.conn.state() is State.Preparing
    r.feed(m.TimerFired(CABLE_TIMER, 1))
    assert r.conn.pending is None and r.conn.state() is State.Available


def test_two_presentations_while_asking_are_judged_in_order():
    r = Rig()
    first, second = r.card("A"), r.card("A")
    assert m.Reply(1, "accepted") in r.answer(first, IdTagInfo("Accepted"))
    assert m.Reply(2, "cancelled") in r.answer(second, IdTagInfo("Accepted"))
    assert r.conn.pending is None


def test_scheduled_inoperative_applies_when_the_transaction_ends():
    r = Rig()
    r.charging()
    assert r.feed(m.AvailabilityRequested(1, False)) == [m.Persist("availability", "1", False)]
    assert r.conn.state() is State.Charging
    r.card("A")
    assert r.conn.state() is State.Unavailable and r.conn.scheduled_operative is None


def test_id_token_keeps_its_type():
    r = Rig()
    r.feed(m.CpStateChanged(1, m.CpState.B))
    r.answer(r.feed(m.IdTokenPresented(1, m.IdToken("04AABB", "ISO15693"), 1)), IdTagInfo("Accepted"))
    r.feed(m.TransactionPrepared(1, True, 0, 3))
    assert r.conn.transaction.id_token_type == "ISO15693"


# -- purity --------------------------------------------------------------------------------------

FORBIDDEN = {"asyncio", "ocpp", "websockets", "sqlite3", "socket", "threading", "gpiod", "serial", "smbus2"}


def test_a_connector_is_unavailable_while_the_evse_serves_another():
    """One power path per EVSE: a free connector is Unavailable while its sibling starts or has a
    transaction; a faulted one stays Faulted; the connector's own facts are untouched."""
    s = Session(Evse(1, [Connector(1), Connector(2)], max_current_a=16.0), Settings())
    now = T0
    s.handle(m.CpStateChanged(2, m.CpState.B), now)
    assert s.state_of(1) is State.Available and s.state_of(2) is State.Preparing
    ask = one(s.handle(m.IdTokenPresented(2, m.IdToken("A"), 1), now), m.AskAuthorization)
    assert m.PrepareTransaction(2) in s.handle(m.AuthorizationResult(ask.request_id, IdTagInfo("Accepted")), now)
    assert s.state_of(1) is State.Unavailable and s.connectors[1].state() is State.Available  # starting on 2
    s.handle(m.TransactionPrepared(2, True, 0, 1), now)
    s.handle(m.CpStateChanged(1, m.CpState.B), now)
    assert s.state_of(1) is State.Unavailable
    s.handle(m.FaultChanged(1, "HighTemperature", True), now)
    assert s.state_of(1) is State.Faulted
    s.handle(m.FaultChanged(1, "HighTemperature", False), now)
    s.handle(m.CpStateChanged(2, m.CpState.A), now)  # unplugged: the transaction on 2 ends
    assert s.connectors[2].transaction is None and s.state_of(1) is State.Preparing


def test_the_core_imports_no_asyncio_and_no_io():
    core = Path(__file__).resolve().parents[2] / "station" / "core"
    for path in core.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
                # no OCPP version's vocabulary either: the adapters map the neutral terms
                assert not name.startswith(("station.ocpp16", "station.ocpp201")), f"{path.name} imports {name}"


def test_the_core_names_no_16_status_or_error_code():
    """ChargePointStatus, the 1.6 Reason words and the 1.6-only error codes live in
    station/ocpp16/vocabulary.py: no string of the core's code (docstrings aside) is one of them
    (member names may be the same words; their values are the core's own)."""
    core = Path(__file__).resolve().parents[2] / "station" / "core"
    used: set[str] = set()
    for path in core.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                used.add(node.value)
            elif isinstance(node, ast.ClassDef):
                used.add(node.name)
    for word in ("ChargePointStatus", "NoError", "LocalListConflict", "WeakSignal", "ResetFailure",
                 "Available", "SuspendedEVSE", "EVDisconnected", "PowerLoss", "Local"):
        assert word not in used, word

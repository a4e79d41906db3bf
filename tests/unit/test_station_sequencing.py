"""The Station object (station/station.py) in-process with simulated hardware (hal.board.build_evse)
and a fake adapter that records what the station reports: the safety order of a real charger
(lock before the relay closes; the pilot stops offering and the relay opens before the unlock),
EV-side disconnects as configured, faults that stop the energy, and the commands of the CSMS."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hal.board import build_evse
from hal.types import CpState, IdToken
from station.core.auth import AuthRules, IdTagInfo
from station.core.clock import FakeClock, iso
from station.core.evse import Connector, Evse
from station.core.model import ConnectorState, StopReason
from station.core.settings import Settings
from station.ocpp16 import vocabulary
from station.station import Station
from station.store import Store


class FakeAdapter:
    """Stands in for the OCPP adapter: records status changes and transactions, answers Authorize."""

    def __init__(self) -> None:
        self.settings = Settings()
        self.statuses: list[tuple[int, str, str]] = []
        self.started: list = []
        self.stopped: list = []
        self.authorized: list[str] = []
        self.answers: dict[str, IdTagInfo] = {}
        self.is_online = True
        self.held: set[str] = set()  # these tags' Authorize never gets an answer (a CSMS that hangs)

    @property
    def online(self) -> bool:
        return self.is_online

    async def authorize(self, id_tag: str, token_type: str | None = None) -> IdTagInfo | None:
        self.authorized.append(id_tag)
        if id_tag in self.held:
            await asyncio.get_running_loop().create_future()  # never answered
        if not self.is_online:
            return None
        return self.answers.get(id_tag, IdTagInfo("Accepted"))

    def status_changed(self, cid, state, fault, info) -> None:
        # in 1.6 words, as the 1.6 adapter sends them
        self.statuses.append((cid, str(vocabulary.status(state)), vocabulary.error_code(fault)))

    def transaction_started(self, tx) -> None:
        self.started.append(tx)

    def transaction_stopped(self, tx) -> None:
        self.stopped.append(tx)

    def status_list(self, cid: int = 1) -> list[str]:
        return [s for c, s, _ in self.statuses if c == cid]


class Rig:
    def __init__(self, st: Station, ad: FakeAdapter, hw, order: list[str], clock: FakeClock, store: Store) -> None:
        self.st, self.ad, self.hw, self.order, self.clock, self.store = st, ad, hw, order, clock, store

    @property
    def conn(self) -> Connector:
        return self.st.connectors[1]

    def status(self) -> str:
        return self.conn.state().label

    async def plug(self, amps: float = 32, phases: int = 3) -> None:
        self.hw.plant.plug(amps, phases)
        await settle()

    async def unplug(self) -> None:
        self.hw.plant.unplug()
        await settle()

    async def charging(self, tag: str = "A") -> None:
        await self.plug()
        assert await self.st.present_id_tag(1, tag) == "accepted"
        await settle()
        assert self.status() == "Charging"
        self.order.clear()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def make(tmp_path, fixed_cable: bool = False, store: Store | None = None, phases: int = 3, **settings) -> Rig:
    clock = FakeClock()
    hw = build_evse(1, {}, clock=clock.monotonic, phases=phases)
    order: list[str] = []
    relay_set, lock, unlock, offer = hw.relay.set, hw.lock.lock, hw.lock.unlock, hw.pilot.offer

    async def rec_relay(closed):
        order.append("relay closed" if closed else "relay open")
        await relay_set(closed)

    async def rec_lock():
        order.append("lock")
        return await lock()

    async def rec_unlock():
        order.append("unlock")
        return await unlock()

    async def rec_offer(amps):
        order.append("offer none" if amps is None else f"offer {amps:g}")
        await offer(amps)

    hw.relay.set, hw.lock.lock, hw.lock.unlock, hw.pilot.offer = rec_relay, rec_lock, rec_unlock, rec_offer
    store = store or Store(tmp_path / "s.sqlite")
    st = Station(station_id="T", evses=[Evse(1, [Connector(1)], max_current_a=16.0, fixed_cable=fixed_cable,
                                             phases=phases)],
                 hardware={1: hw}, store=store, clock=clock, log=logging.getLogger("t"))
    ad = FakeAdapter()
    for k, v in settings.items():
        setattr(ad.settings, k, v)
    st.attach(ad)
    hw.pilot.on_state(lambda s: st.cp_state(1, s))
    hw.on_fault(lambda f: st.fault(1, f))
    if hw.reader is not None:
        hw.reader.on_token(lambda t: st.token(1, t))
    await st.start()
    await settle()
    order.clear()
    return Rig(st, ad, hw, order, clock, store)


def before(order: list[str], first: str, then: str) -> bool:
    return first in order and then in order and order.index(first) < order.index(then)


# -- starting ---------------------------------------------------------------------------------

async def test_boot_reports_every_connector_and_leaves_power_off(tmp_path):
    r = await make(tmp_path)
    assert r.ad.statuses == [(1, "Available", "NoError"), (0, "Available", "NoError")]
    assert not r.hw.relay.closed and r.hw.pilot.offered_a is None and not r.hw.lock.locked


async def test_cable_first_then_card_locks_before_the_relay_closes(tmp_path):
    r = await make(tmp_path)
    await r.plug()
    assert r.status() == "Preparing" and r.order == []  # nothing moves for a cable alone
    assert await r.st.present_id_tag(1, "A") == "accepted"
    await settle()
    assert before(r.order, "lock", "relay closed")
    assert before(r.order, "lock", "offer 16")  # offers the EVSE maximum, not the EV's 32 A
    assert r.hw.relay.closed and r.hw.lock.locked and r.hw.pilot.offered_a == 16
    assert r.status() == "Charging"
    assert r.ad.status_list() == ["Available", "Preparing", "Charging"]
    assert len(r.ad.started) == 1 and r.ad.started[0].id_tag == "A" and r.ad.authorized == ["A"]


async def test_card_first_then_cable(tmp_path):
    r = await make(tmp_path)
    assert await r.st.present_id_tag(1, "A") == "accepted"
    assert r.status() == "Preparing" and r.order == [] and not r.ad.started
    await r.plug()
    assert before(r.order, "lock", "relay closed") and r.status() == "Charging"


async def test_same_card_again_before_the_cable_cancels(tmp_path):
    r = await make(tmp_path)
    await r.st.present_id_tag(1, "A")
    assert await r.st.present_id_tag(1, "A") == "cancelled"
    assert r.status() == "Available" and r.conn.pending is None


async def test_rejected_card_does_not_move_anything(tmp_path):
    r = await make(tmp_path)
    r.ad.answers["BAD"] = IdTagInfo("Blocked")
    await r.plug()
    assert await r.st.present_id_tag(1, "BAD") == "rejected"
    assert r.order == [] and not r.ad.started and r.status() == "Preparing"


async def test_card_at_the_simulated_reader_starts_charging(tmp_path):
    r = await make(tmp_path)
    await r.plug()
    r.hw.plant.reader.present(IdToken("RFID1"))
    await settle()
    assert r.status() == "Charging" and r.ad.started[0].id_tag == "RFID1"


async def test_jammed_lock_never_closes_the_relay(tmp_path):
    r = await make(tmp_path)
    r.hw.plant.lock.jammed = True
    await r.plug()
    await r.st.present_id_tag(1, "A")
    await settle()
    assert "relay closed" not in r.order and not r.hw.relay.closed and r.hw.pilot.offered_a is None
    assert not r.ad.started and r.conn.transaction is None
    assert r.ad.statuses[-1] == (1, "Faulted", "ConnectorLockFailure")


# -- stopping ---------------------------------------------------------------------------------

async def test_local_stop_stops_offering_opens_the_relay_then_unlocks(tmp_path):
    r = await make(tmp_path)
    await r.charging()
    assert await r.st.present_id_tag(1, "A") == "stopped"
    assert r.order[:2] == ["offer none", "relay open"]
    assert before(r.order, "relay open", "unlock")
    assert not r.hw.relay.closed and not r.hw.lock.locked and r.hw.pilot.offered_a is None
    tx = r.ad.stopped[0]
    assert tx.stop_reason is StopReason.Local and tx.stop_id_tag == "A"
    assert r.status() == "Finishing"
    await r.unplug()
    assert r.ad.status_list()[-2:] == ["Finishing", "Available"]


async def test_energy_is_metered_between_start_and_stop(tmp_path):
    r = await make(tmp_path)
    await r.charging()
    r.clock.advance(1800)  # half an hour at 16 A on 3 phases
    await r.st.present_id_tag(1, "A")
    tx = r.ad.stopped[0]
    assert tx.meter_stop_wh - tx.meter_start_wh == pytest.approx(16 * 230 * 3 / 2, abs=1)


async def test_another_card_may_not_stop_unless_same_parent(tmp_path):
    r = await make(tmp_path)
    r.ad.answers["A"] = IdTagInfo("Accepted", parent_id_tag="FLEET")
    r.ad.answers["B"] = IdTagInfo("Accepted", parent_id_tag="OTHER")
    r.ad.answers["C"] = IdTagInfo("Accepted", parent_id_tag="FLEET")
    await r.charging("A")
    assert await r.st.present_id_tag(1, "B") == "not allowed to stop"
    assert r.hw.relay.closed and not r.ad.stopped
    assert await r.st.present_id_tag(1, "C") == "stopped"
    assert r.ad.stopped[0].stop_id_tag == "C"


async def test_ev_disconnect_stops_and_unlocks_by_default(tmp_path):
    r = await make(tmp_path)
    await r.charging()
    await r.unplug()
    tx = r.ad.stopped[0]
    assert tx.stop_reason is StopReason.EVDisconnected
    assert before(r.order, "relay open", "unlock") and r.order[0] == "offer none"
    assert not r.hw.lock.locked and r.status() == "Available"


async def test_ev_disconnect_stops_but_keeps_the_lock_when_configured(tmp_path):
    r = await make(tmp_path, unlock_on_ev_side_disconnect=False)
    await r.charging()
    await r.unplug()
    assert r.ad.stopped[0].stop_reason is StopReason.EVDisconnected
    assert "unlock" not in r.order and r.hw.lock.locked and not r.hw.relay.closed


async def test_ev_disconnect_keeps_the_transaction_when_configured(tmp_path):
    r = await make(tmp_path, stop_on_ev_side_disconnect=False)
    await r.charging()
    await r.unplug()
    assert not r.ad.stopped and r.conn.transaction is not None
    assert r.order[:2] == ["offer none", "relay open"] and "unlock" not in r.order
    assert not r.hw.relay.closed and r.hw.lock.locked and r.hw.pilot.offered_a is None
    assert r.status() == "SuspendedEV"
    r.order.clear()
    await r.plug()  # the EV comes back: energy again, the same transaction
    assert r.hw.relay.closed and r.status() == "Charging" and len(r.ad.started) == 1


async def test_ev_pauses_and_resumes(tmp_path):
    r = await make(tmp_path)
    await r.charging()
    r.hw.plant.suspend(True)  # C -> B: IEC 61851-1 wants the contactor open in state B
    await settle()
    assert r.status() == "SuspendedEV" and not r.hw.relay.closed and r.hw.pilot.offered_a == 16
    r.hw.plant.suspend(False)  # B -> C: energy again
    await settle()
    assert r.status() == "Charging" and r.hw.relay.closed


async def test_contactor_closes_only_when_the_ev_asks_for_energy(tmp_path):
    """PWM first (state B with current offered), contactor only in state C; state D (ventilation)
    gets no energy on this station: SuspendedEVSE."""
    from hal.types import CpState

    r = await make(tmp_path)
    await r.plug()
    r.hw.plant.suspend(True)  # an EV that stays in B for now
    await r.st.present_id_tag(1, "A")
    await settle()
    assert r.ad.started and r.hw.pilot.offered_a == 16 and not r.hw.relay.closed
    assert "relay closed" not in r.order and r.status() == "SuspendedEV"
    r.hw.plant.suspend(False)
    await settle()
    assert r.hw.relay.closed and before(r.order, "offer 16", "relay closed") and r.status() == "Charging"
    r.hw.plant.ev.needs_ventilation = True  # the EV asks for ventilation: state D
    r.hw.plant.update()
    await settle()
    assert r.hw.pilot.state is CpState.D
    assert not r.hw.relay.closed and r.status() == "SuspendedEVSE"
    r.hw.plant.ev.needs_ventilation = False
    r.hw.plant.update()
    await settle()
    assert r.hw.relay.closed and r.status() == "Charging"


# -- faults -----------------------------------------------------------------------------------

@pytest.mark.parametrize("code", ["GroundFailure", "OverCurrentFailure", "HighTemperature", "OverVoltage"])
async def test_blocking_fault_stops_the_energy_and_the_transaction(tmp_path, code):
    r = await make(tmp_path)
    await r.charging()
    r.hw.plant.fault(code, True, "test")
    await settle()
    assert r.order[:2] == ["offer none", "relay open"]
    assert not r.hw.relay.closed and r.hw.pilot.offered_a is None and r.hw.plant.power_w() == 0
    assert len(r.ad.stopped) == 1 and r.ad.stopped[0].stop_reason is StopReason.Other
    assert r.ad.statuses[-1] == (1, "Faulted", code)
    assert "unlock" not in r.order  # the plug stays held while the fault is active
    assert await r.st.present_id_tag(1, "A") == "unavailable"
    r.hw.plant.fault(code, False)
    await settle()
    assert r.ad.statuses[-1] == (1, "Finishing", "NoError")


async def test_fault_before_a_session_refuses_cards(tmp_path):
    r = await make(tmp_path)
    r.hw.plant.fault("GroundFailure", True)
    await settle()
    await r.plug()
    assert await r.st.present_id_tag(1, "A") == "unavailable"
    assert r.order == [] and r.status() == "Faulted"


async def test_fault_drops_a_waiting_authorization(tmp_path):
    r = await make(tmp_path)
    await r.st.present_id_tag(1, "A")
    r.hw.plant.fault("InternalError", True)
    await settle()
    r.hw.plant.fault("InternalError", False)
    await settle()
    await r.plug()
    assert not r.ad.started and r.status() == "Preparing"


async def test_warning_fault_does_not_stop_charging(tmp_path):
    r = await make(tmp_path)
    await r.charging()
    r.hw.plant.fault("ReaderFailure", True)
    await settle()
    assert r.hw.relay.closed and not r.ad.stopped
    assert r.ad.statuses[-1] == (1, "Charging", "ReaderFailure")


async def test_silent_meter_is_a_warning_and_the_last_reading_is_kept(tmp_path):
    r = await make(tmp_path)
    await r.charging()
    r.clock.advance(600)
    await r.st.read_meter(1)
    last = r.conn.transaction.meter_last_wh
    r.hw.plant.meter.failing = True
    r.clock.advance(600)
    assert await r.st.read_meter(1) is not None  # the last good reading
    assert r.ad.statuses[-1] == (1, "Charging", "PowerMeterFailure") and r.hw.relay.closed
    await r.st.present_id_tag(1, "A")
    tx = r.ad.stopped[0]
    assert tx.meter_stop_wh == last  # never a made-up value
    assert r.ad.status_list()[-2:] == ["Charging", "Finishing"]  # straight to Finishing, no Preparing between


async def test_pilot_state_e_faults_the_connector_and_ends_the_transaction(tmp_path):
    """CP state E (CP shorted): contactor open at once, Faulted (OtherError), transaction ended; clears after."""
    r = await make(tmp_path)
    await r.charging()
    r.hw.plant.pilot_fault(CpState.E)
    await settle()
    assert r.order[:2] == ["offer none", "relay open"] and not r.hw.relay.closed
    assert len(r.ad.stopped) == 1 and r.ad.stopped[0].stop_reason is StopReason.Other and r.conn.transaction is None
    assert r.ad.statuses[-1] == (1, "Faulted", "OtherError")
    r.hw.plant.pilot_fault(None)  # the pilot is healthy again; the EV is still plugged
    await settle()
    assert r.ad.statuses[-1][2] == "NoError" and r.status() != "Faulted"


async def test_diode_fault_suspends_the_transaction_and_recovers(tmp_path):
    """EVCommunicationError from the pilot (diode check): energy off, SuspendedEVSE (1.6 section 7.6), no stop."""
    r = await make(tmp_path)
    await r.charging()
    r.hw.plant.fault("EVCommunicationError", True, "EV diode check")
    await settle()
    assert not r.hw.relay.closed and not r.ad.stopped and r.conn.transaction is not None and r.hw.lock.locked
    assert r.ad.statuses[-1] == (1, "SuspendedEVSE", "EVCommunicationError")
    r.hw.plant.fault("EVCommunicationError", False)
    await settle()
    assert r.hw.relay.closed and r.status() == "Charging" and r.ad.statuses[-1] == (1, "Charging", "NoError")


async def test_welded_relay_is_reported_once_and_the_plug_stays_locked(tmp_path):
    r = await make(tmp_path)
    await r.charging()
    r.hw.relay.welded = True
    await r.st.present_id_tag(1, "A")
    await settle()
    assert len(r.ad.stopped) == 1
    assert "PowerSwitchFailure" in r.conn.faults and r.status() == "Faulted"
    assert r.hw.pilot.offered_a is None  # the pilot at least stops offering


# -- commands from the CSMS --------------------------------------------------------------------

async def test_unlock_connector_stops_first_then_unlocks(tmp_path):
    r = await make(tmp_path)
    await r.charging()
    assert await r.st.unlock(1) == "Unlocked"
    assert r.order[:2] == ["offer none", "relay open"] and before(r.order, "relay open", "unlock")
    assert r.ad.stopped[0].stop_reason is StopReason.UnlockCommand and not r.hw.lock.locked


async def test_unlock_with_a_jammed_lock_fails(tmp_path):
    r = await make(tmp_path)
    await r.charging()
    r.hw.plant.lock.jammed = True
    assert await r.st.unlock(1) == "UnlockFailed"
    assert not r.hw.relay.closed


async def test_unlock_on_a_fixed_cable_is_not_supported(tmp_path):
    r = await make(tmp_path, fixed_cable=True)
    assert await r.st.unlock(1) == "NotSupported"


async def test_remote_start_before_the_cable(tmp_path):
    r = await make(tmp_path)
    assert await r.st.remote_start(1, "R1") is True
    await settle()
    assert r.status() == "Preparing" and r.ad.authorized == ["R1"]
    await r.plug()
    assert r.status() == "Charging" and r.ad.started[0].remote and before(r.order, "lock", "relay closed")


async def test_remote_start_without_authorize_when_configured(tmp_path):
    r = await make(tmp_path, authorize_remote_tx_requests=False)
    await r.plug()
    assert await r.st.remote_start(None, "R1") is True
    await settle()
    assert r.ad.authorized == [] and r.status() == "Charging"


async def test_remote_start_refused_when_busy(tmp_path):
    r = await make(tmp_path)
    await r.charging()
    assert await r.st.remote_start(1, "R2") is False
    assert await r.st.remote_start(None, "R2") is False
    assert await r.st.remote_start(7, "R2") is False


async def test_remote_stop(tmp_path):
    r = await make(tmp_path)
    await r.charging()
    await r.st.remote_stop(r.conn.transaction)
    await settle()
    assert r.ad.stopped[0].stop_reason is StopReason.Remote and before(r.order, "relay open", "unlock")


async def test_inoperative_during_a_transaction_is_scheduled(tmp_path):
    r = await make(tmp_path)
    await r.charging()
    assert r.st.change_availability(1, False) == "Scheduled"
    assert r.status() == "Charging"
    await r.st.present_id_tag(1, "A")
    assert r.status() == "Unavailable"
    assert r.st.change_availability(1, True) == "Accepted"
    assert r.status() == "Finishing"


async def test_availability_survives_a_restart(tmp_path):
    r = await make(tmp_path)
    assert r.st.change_availability(0, False) == "Accepted"
    assert await r.st.present_id_tag(1, "A") == "unavailable"
    again = await make(tmp_path, store=r.store)
    assert again.ad.statuses[-1] == (0, "Unavailable", "NoError")
    assert await again.st.remote_start(1, "R") is False


@pytest.mark.parametrize("kind,reason", [("Hard", "HardReset"), ("Soft", "SoftReset")])
async def test_reset_stops_transactions_then_asks_for_a_restart(tmp_path, kind, reason):
    r = await make(tmp_path)
    await r.charging()
    await r.st.reset(kind)
    assert r.ad.stopped[0].stop_reason is StopReason[reason] and not r.hw.relay.closed
    assert r.st.restart_request.done() and r.st.restart_request.result() == kind


async def test_limit_zero_suspends_and_a_new_limit_resumes(tmp_path):
    r = await make(tmp_path)
    await r.charging()
    await r.st.set_limit(1, 0)
    await settle()
    assert r.hw.pilot.offered_a == 0 and r.status() == "SuspendedEVSE" and r.hw.plant.power_w() == 0
    await r.st.set_limit(1, 10)
    await settle()
    assert r.hw.pilot.offered_a == 10 and r.status() == "Charging"
    await r.st.set_limit(1, 63)  # never more than the EVSE's maximum
    assert r.hw.pilot.offered_a == 16


# -- authorization and power loss --------------------------------------------------------------

async def test_offline_card_from_the_cache_without_asking(tmp_path):
    r = await make(tmp_path)
    r.st.remember("CACHED", IdTagInfo("Accepted"))
    r.ad.is_online = False
    await r.plug()
    assert await r.st.present_id_tag(1, "CACHED") == "accepted"
    assert r.ad.authorized == [] and r.status() == "Charging"


async def test_offline_unknown_card_follows_allow_offline_tx_for_unknown_id(tmp_path):
    r = await make(tmp_path)
    r.ad.is_online = False
    await r.plug()
    assert await r.st.present_id_tag(1, "X") == "rejected"
    r.ad.settings.auth = AuthRules(allow_offline_tx_for_unknown_id=True)
    assert await r.st.present_id_tag(1, "X") == "accepted"


async def test_csms_answer_is_cached_and_survives_a_restart(tmp_path):
    r = await make(tmp_path)
    await r.st.present_id_tag(1, "A")
    again = await make(tmp_path, store=r.store)
    assert again.st.cache["A"].status == "Accepted"


async def test_pre_authorize_skips_the_csms_for_a_cached_card(tmp_path):
    r = await make(tmp_path)
    r.st.remember("A", IdTagInfo("Accepted"))
    r.ad.settings.auth = AuthRules(local_pre_authorize=True)
    await r.plug()
    assert await r.st.present_id_tag(1, "A") == "accepted" and r.ad.authorized == []


async def test_a_transaction_cut_by_power_loss_is_ended_on_the_next_start(tmp_path):
    r = await make(tmp_path)
    await r.charging()
    r.clock.advance(3600)
    await r.st.read_meter(1)
    r.st.save_transaction(r.conn.transaction)
    last_wh = r.conn.transaction.meter_last_wh
    # power cut: nothing is stopped; a new station starts on the same store
    again = await make(tmp_path, store=r.store)
    assert len(again.ad.stopped) == 1
    tx = again.ad.stopped[0]
    assert tx.stop_reason is StopReason.PowerLoss and tx.meter_stop_wh == last_wh and tx.id_tag == "A"
    assert iso(tx.stopped_at) == iso(r.clock.now())
    assert again.store.tx_open() == [] and not again.hw.relay.closed


async def test_meter_failing_at_the_stop_goes_straight_to_finishing(tmp_path):
    """Charging -> Finishing, never a Preparing in between while the stop is still being carried out."""
    r = await make(tmp_path)
    await r.charging()
    r.hw.plant.meter.failing = True
    await r.st.present_id_tag(1, "A")
    assert r.ad.stopped[0].stop_reason is StopReason.Local
    assert [s for s in r.ad.status_list() if s != "Charging"][-1:] == ["Finishing"]
    assert "Preparing" not in r.ad.status_list()[r.ad.status_list().index("Charging"):]


# -- safety never waits for the CSMS (issue 7) ---------------------------------------------------

async def iterations_until(cond, limit: int = 5) -> int:
    """Loop iterations until ``cond()`` holds (0: at once), at most ``limit``."""
    for n in range(limit + 1):
        if cond():
            return n
        await asyncio.sleep(0)
    raise AssertionError("not within a few loop iterations")


DANGERS = {
    "ground fault": (lambda r: r.hw.plant.fault("GroundFailure", True, "RCD"), "Other", "Faulted"),
    "CP state E": (lambda r: r.hw.plant.pilot_fault(CpState.E), "Other", "Faulted"),
    "CP state F": (lambda r: r.hw.plant.pilot_fault(CpState.F), "Other", "Faulted"),
    "unplug": (lambda r: r.hw.plant.unplug(), "EVDisconnected", "Available"),
}


@pytest.mark.parametrize("danger", list(DANGERS))
async def test_danger_while_a_stop_card_waits_for_authorize_opens_the_contactor_at_once(tmp_path, danger):
    """A card of another driver at a running transaction: Authorize goes to a CSMS that does not
    answer. A fault, CP E/F or an unplug must not wait for it: pilot off and contactor open within
    a loop iteration or two, Faulted at once, the transaction ended with its reason."""
    r = await make(tmp_path)
    await r.charging("A")
    r.ad.held.add("B")
    card = asyncio.ensure_future(r.st.present_id_tag(1, "B"))
    await settle()
    assert r.ad.authorized[-1] == "B" and not card.done() and r.hw.relay.closed
    do, reason, status = DANGERS[danger]
    t0 = asyncio.get_running_loop().time()
    do(r)
    if status == "Faulted":
        assert r.status() == "Faulted"  # at once, in the hardware callback
    assert await iterations_until(lambda: not r.hw.relay.closed) <= 2
    assert r.hw.pilot.offered_a is None and r.hw.plant.power_w() == 0
    assert r.order[:2] == ["offer none", "relay open"]
    assert asyncio.get_running_loop().time() - t0 < 0.05
    await settle()
    assert len(r.ad.stopped) == 1 and r.ad.stopped[0].stop_reason is StopReason[reason]
    assert r.ad.statuses[-1][1] == status and not card.done()
    card.cancel()


async def test_fault_while_a_remote_start_waits_for_authorize_starts_nothing(tmp_path):
    """RemoteStartTransaction with AuthorizeRemoteTxRequests: while Authorize waits, a ground fault
    makes the connector Faulted at once; the late answer starts nothing."""
    r = await make(tmp_path, authorize_remote_tx_requests=True)
    await r.plug()
    gate = asyncio.get_running_loop().create_future()

    async def slow(id_tag, token_type=None):
        r.ad.authorized.append(id_tag)
        await gate
        return IdTagInfo("Accepted")

    r.ad.authorize = slow
    assert await r.st.remote_start(1, "R1") is True
    await settle()
    assert r.ad.authorized == ["R1"] and r.status() == "Preparing"
    r.hw.plant.fault("GroundFailure", True)
    assert r.status() == "Faulted"
    gate.set_result(None)
    await settle()
    assert not r.ad.started and "lock" not in r.order and not r.hw.relay.closed and r.status() == "Faulted"


# -- below 6 A nothing is offered (IEC 61851-1) ----------------------------------------------------

@pytest.mark.parametrize("amps", [0.5, 3, 5.9])
async def test_a_limit_between_0_and_6_a_offers_nothing(tmp_path, amps):
    r = await make(tmp_path)
    await r.charging()
    await r.st.set_limit(1, amps)
    await settle()
    assert r.hw.pilot.offered_a == 0 and not r.hw.relay.closed
    assert r.status() == "SuspendedEVSE" and r.hw.plant.current_a() == 0 and r.hw.plant.power_w() == 0
    assert r.hw.pilot.state is CpState.B  # the simulated EV sees no offer: it does not ask for energy
    await r.st.set_limit(1, 6)
    await settle()
    assert r.hw.pilot.offered_a == 6 and r.hw.relay.closed and r.hw.plant.current_a() == 6


def test_simulated_ev_draws_nothing_below_6_a():
    from hal.sim import SimPlant

    plant = SimPlant(clock=lambda: 0.0)
    plant.plug(32, 3)
    plant.relay.closed = True
    plant.pilot.offered_a = 3
    plant.update()
    assert plant.pilot.state is CpState.B and plant.current_a() == 0


# -- the simulated EVSE's phases --------------------------------------------------------------------

async def test_single_phase_evse_delivers_single_phase_power_to_a_three_phase_ev(tmp_path):
    r = await make(tmp_path, phases=1)
    await r.plug(amps=32, phases=3)
    assert await r.st.present_id_tag(1, "A") == "accepted"
    await settle()
    assert r.status() == "Charging"
    assert r.hw.plant.power_w() == pytest.approx(16 * 230.0)
    reading = await r.st.read_meter(1)
    assert reading.current_a == (16, 0, 0)


async def test_sim_config_evse_2_is_built_single_phase(tmp_path):
    from station.config import load
    from station.runtime import Runtime

    cfg = load("config/sim.toml")
    cfg.state_dir = str(tmp_path / "state")
    rt = Runtime(cfg)
    try:
        plant = rt.hw[2].plant
        plant.plug(32, 3)
        plant.relay.closed = True
        plant.pilot.offered_a = 16
        assert plant.power_w() == pytest.approx(16 * 230.0)
        assert rt.hw[1].plant.phases == 3
    finally:
        rt.store.close()


# -- OCTT TC_069_CS ----------------------------------------------------------------------------------

async def test_TC_069_parent_id_tag_from_start_transaction_conf_lets_a_group_card_stop(tmp_path):
    """Authorize.conf for A names no parent; StartTransaction.conf does (FLEET). A second card whose
    Authorize.conf says parent FLEET stops the transaction."""
    r = await make(tmp_path)
    r.ad.answers["A"] = IdTagInfo("Accepted")
    r.ad.answers["B"] = IdTagInfo("Accepted", parent_id_tag="FLEET")
    await r.charging("A")
    tx = r.conn.transaction
    r.st.on_start_result(tx, IdTagInfo("Accepted", parent_id_tag="FLEET"))
    assert tx.parent_id_tag == "FLEET"
    assert await r.st.present_id_tag(1, "B") == "stopped"
    assert r.ad.stopped[0].stop_id_tag == "B" and r.ad.stopped[0].stop_reason is StopReason.Local


# -- timers of the station's clock ----------------------------------------------------------------------

@pytest.mark.virtual_time
async def test_connection_timeout_is_a_timer_of_the_scheduler(tmp_path):
    from station.scheduler import LoopScheduler

    sched = LoopScheduler()
    hw = build_evse(1, {}, clock=sched.monotonic)
    st = Station(station_id="T", evses=[Evse(1, [Connector(1)], max_current_a=16.0)], hardware={1: hw},
                 store=Store(tmp_path / "s.sqlite"), clock=sched, log=logging.getLogger("t"))
    ad = FakeAdapter()
    ad.settings.connection_timeout_s = 30
    st.attach(ad)
    await st.start()
    armed = []
    real = sched.call_later
    sched.call_later = lambda d, fn, *a: armed.append(d) or real(d, fn, *a)
    assert await st.present_id_tag(1, "A") == "accepted"
    assert 30 in armed and st.connectors[1].state().label == "Preparing"
    t0 = sched.monotonic()
    while st.connectors[1].pending is not None:
        await asyncio.sleep(1)
    assert 30 <= sched.monotonic() - t0 < 32 and st.connectors[1].state().label == "Available"
    await st.stop()


# -- several connectors per EVSE -----------------------------------------------------------------------

async def make_two_connectors(tmp_path) -> tuple[Station, FakeAdapter, object]:
    """EVSE 1 with two connectors (station connectors 1 and 2): one relay and meter, a pilot and a
    lock each."""
    clock = FakeClock()
    hw = build_evse(1, {}, clock=clock.monotonic, connectors=[{}, {}])
    st = Station(station_id="T", evses=[Evse(1, [Connector(1), Connector(2)], max_current_a=16.0)],
                 hardware={1: hw}, store=Store(tmp_path / "s.sqlite"), clock=clock, log=logging.getLogger("t"))
    ad = FakeAdapter()
    st.attach(ad)
    hw.on_cp_state(lambda n, s: st.cp_state(1, s, n))
    hw.on_fault(lambda f: st.fault(1, f))
    hw.reader.on_token(lambda t: st.token(1, t))
    await st.start()
    await settle()
    return st, ad, hw


async def test_two_connectors_on_one_evse_charge_one_at_a_time(tmp_path):
    st, ad, hw = await make_two_connectors(tmp_path)
    assert set(hw.connectors) == {1, 2} and hw.pilot is hw.connectors[1].pilot and hw.lock is hw.connectors[1].lock
    hw.plant.plug(32, 3, connector=2)
    await settle()
    assert st.connectors[2].state().label == "Preparing" and st.connectors[1].state().label == "Available"
    assert await st.present_id_tag(2, "A") == "accepted"
    await settle()
    assert st.connectors[2].state().label == "Charging" and hw.relay.closed
    assert hw.connectors[2].pilot.offered_a == 16 and hw.connectors[2].lock.locked
    assert hw.connectors[1].pilot.offered_a is None and not hw.connectors[1].lock.locked
    assert hw.plant.power_w() == pytest.approx(16 * 230 * 3)
    hw.plant.plug(32, 3, connector=1)
    await settle()
    assert await st.present_id_tag(1, "B") == "unavailable"  # one power path: the EVSE is busy
    assert await st.remote_start(1, "R") is False
    # a card at the EVSE's reader goes to the connector whose transaction it started
    hw.plant.reader.present(IdToken("A"))
    await settle()
    assert ad.stopped[0].connector_id == 2 and ad.stopped[0].stop_reason is StopReason.Local and not hw.relay.closed
    assert await st.present_id_tag(1, "B") == "accepted"
    await settle()
    assert st.connectors[1].state().label == "Charging" and hw.connectors[1].pilot.offered_a == 16


async def test_the_other_connector_is_reported_unavailable_while_the_power_path_serves_one(tmp_path):
    """One power path per EVSE: from the accepted start on connector 2 until its transaction has
    ended, connector 1 cannot charge and says so (Unavailable), then Available again."""
    st, ad, hw = await make_two_connectors(tmp_path)
    hw.plant.plug(32, 3, connector=2)
    await settle()
    assert await st.present_id_tag(2, "A") == "accepted"
    await settle()
    assert ad.status_list(2)[-1] == "Charging" and ad.status_list(1) == ["Available", "Unavailable"]
    assert st.status_of(1) == (ConnectorState.Unavailable, None) and st.connectors[1].available_for_new_session
    hw.plant.unplug(connector=2)
    await settle()
    assert ad.stopped and ad.status_list(1) == ["Available", "Unavailable", "Available"]
    assert ad.status_list(2)[-1] == "Available"


async def test_remote_start_without_a_connector_picks_the_one_with_the_cable(tmp_path):
    """RemoteStartTransaction without connectorId: the EV is at connector 2, so the transaction
    starts there (not on connector 1, waiting for a cable that is not coming)."""
    st, ad, hw = await make_two_connectors(tmp_path)
    hw.plant.plug(32, 3, connector=2)
    await settle()
    assert await st.remote_start(None, "R") is True
    await settle()
    assert ad.started and ad.started[0].connector_id == 2 and st.connectors[2].state().label == "Charging"
    assert st.connectors[1].pending is None


async def test_a_fault_of_one_connector_or_of_the_whole_evse(tmp_path):
    st, ad, hw = await make_two_connectors(tmp_path)
    hw.plant.plug(32, 3, connector=2)
    await settle()
    await st.present_id_tag(2, "A")
    await settle()
    hw.plant.pilot_fault(CpState.E, connector=1)  # connector 1's pilot shorted: only connector 1
    await settle()
    assert st.connectors[1].state().label == "Faulted" and st.connectors[2].state().label == "Charging" and hw.relay.closed
    hw.plant.fault("GroundFailure", True)  # the EVSE's RCD: every connector, energy off at once
    assert st.connectors[2].state().label == "Faulted"
    await settle()
    assert not hw.relay.closed and ad.stopped[0].stop_reason is StopReason.Other
    assert "GroundFailure" in st.connectors[1].faults and st.status_of(2) == (ConnectorState.Faulted, "GroundFailure")


def test_config_lists_several_connectors_per_evse():
    from station.config import ConfigError, connector_numbers, parse

    cfg = parse({"evse": [
        {"id": 1, "connector": [{"id": 1, "connector_type": "sType2"}, {"connector_type": "cCCS2",
                                                                           "lock": {"kind": "none"}}]},
        {"id": 2},
    ]})
    assert [c.id for c in cfg.evses[0].connectors] == [1, 2] and cfg.evses[0].connectors[1].devices == {"lock": {"kind": "none"}}
    assert connector_numbers(cfg.evses) == {(1, 1): 1, (1, 2): 2, (2, 1): 3}
    assert connector_numbers(parse({"evse": [{"id": 1}, {"id": 2}]}).evses) == {(1, 1): 1, (2, 1): 2}
    with pytest.raises(ConfigError) as e:
        parse({"evse": [{"id": 1, "connector": [{"id": 2, "relay": {"kind": "sim"}}, {"pilot": {"kind": "nope"}}]}]})
    text = "\n".join(e.value.problems)
    assert "evse[0].connector[0].id: connectors count from 1 in order" in text
    assert "evse[0].connector[0].relay: unknown key" in text
    assert "evse[0].connector[1].pilot.kind: 'nope' is not a known backend" in text


async def test_runtime_builds_and_numbers_several_connectors(tmp_path):
    from station.config import parse
    from station.runtime import Runtime

    cfg = parse({"station": {"state_dir": str(tmp_path / "state")},
                 "evse": [{"id": 1, "connector": [{}, {}]}, {"id": 2}]})
    rt = Runtime(cfg)
    try:
        assert set(rt.hw[1].connectors) == {1, 2} and set(rt.hw[2].connectors) == {1}
        seen = []
        rt.station = type("S", (), {"cp_state": lambda self, evse, state, n=1: seen.append((evse, n, state))})()
        rt.hw[1].plant.plug(connector=2)
        assert seen == [(1, 2, CpState.B)]
    finally:
        rt.station = None
        rt.store.close()


async def test_a_simulated_meter_resumes_from_a_cut_transaction_of_its_own_evse(tmp_path):
    """The simulated meter never runs backwards across a power cut: it starts from the last reading
    of a transaction that was cut. That transaction's connector (2, of EVSE 1) is not an EVSE id:
    EVSE 1's meter resumes from it, EVSE 2's (connector 3) does not take it over."""
    from station.config import parse
    from station.runtime import Runtime

    cfg = parse({"station": {"state_dir": str(tmp_path / "state")},
                 "evse": [{"id": 1, "connector": [{}, {}]}, {"id": 2}]})
    rt = Runtime(cfg)
    rt.store.tx_save(1, 2, "A", {"meter_start_wh": 100, "started_at": iso(FakeClock().now()), "meter_last_wh": 5000})
    await rt.close()
    rt = Runtime(cfg)
    try:
        assert rt.hw[1].plant.energy_wh == 5000 and rt.hw[2].plant.energy_wh == 0
    finally:
        await rt.close()


async def test_a_late_open_does_not_undo_a_newer_close(tmp_path):
    """The urgent lane opens the contactor slowly while the normal lane already closed it again for a
    newer limit: what the session wants now is what the hardware ends with."""
    r = await make(tmp_path)
    await r.charging()
    relay_set = r.hw.relay.set

    async def slow_open(closed):
        if not closed:
            await asyncio.sleep(0.05)
        await relay_set(closed)

    r.hw.relay.set = slow_open
    first = asyncio.ensure_future(r.st.set_limit(1, 3))  # below 6 A: open
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    await r.st.set_limit(1, 10)  # 10 A again: close
    await first
    await settle()
    assert r.st.sessions[1].contactor_closed and r.hw.relay.closed
    assert r.status() == "Charging" and r.hw.pilot.offered_a == 10


async def test_finishing_is_reported_after_the_transaction_end_even_with_a_slow_meter(tmp_path):
    """The stop runs in the urgent lane and reads the meter (slowly); the CP change it causes is
    handled meanwhile: Finishing still comes after 'transaction stopped', as a CSMS expects."""
    r = await make(tmp_path)
    await r.charging()
    log: list[str] = []
    r.ad.status_changed = lambda cid, status, error, info: log.append(status.label)
    r.ad.transaction_stopped = lambda tx: log.append("stopped")
    read = r.hw.meter.read

    async def slow_read():
        await asyncio.sleep(0.05)
        return await read()

    r.hw.meter.read = slow_read
    assert await r.st.present_id_tag(1, "A") == "stopped"
    assert log == ["stopped", "Finishing"]

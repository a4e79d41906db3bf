"""The Station object in-process with simulated hardware: the safety order of a real charger."""

from __future__ import annotations

import asyncio
import logging

from hal.board import build_evse
from station.core.auth import IdTagInfo
from station.core.clock import FakeClock
from station.core.evse import Connector, Evse
from station.core.settings import Settings
from station.station import Station
from station.store import Store


class FakeAdapter:
    def __init__(self) -> None:
        self.settings = Settings()
        self.statuses: list[tuple[int, str, str]] = []
        self.started: list = []
        self.stopped: list = []

    @property
    def online(self) -> bool:
        return True

    async def authorize(self, id_tag: str) -> IdTagInfo | None:
        return IdTagInfo("Accepted")

    def status_changed(self, cid, status, error, info) -> None:
        self.statuses.append((cid, str(status), error))

    def transaction_started(self, tx) -> None:
        self.started.append(tx)

    def transaction_stopped(self, tx) -> None:
        self.stopped.append(tx)


async def make(tmp_path, **settings):
    clock = FakeClock()
    hw = build_evse(1, {}, clock=clock.monotonic)
    order: list[str] = []
    relay_set, lock, unlock = hw.relay.set, hw.lock.lock, hw.lock.unlock

    async def rec_relay(closed):
        order.append("relay closed" if closed else "relay open")
        await relay_set(closed)

    async def rec_lock():
        order.append("lock")
        return await lock()

    async def rec_unlock():
        order.append("unlock")
        return await unlock()

    hw.relay.set, hw.lock.lock, hw.lock.unlock = rec_relay, rec_lock, rec_unlock
    st = Station(station_id="T", evses=[Evse(1, [Connector(1)])], hardware={1: hw},
                 store=Store(tmp_path / "s.sqlite"), clock=clock, log=logging.getLogger("t"))
    ad = FakeAdapter()
    for k, v in settings.items():
        setattr(ad.settings, k, v)
    st.attach(ad)
    hw.pilot.on_state(lambda s: st.cp_state(1, s))
    hw.on_fault(lambda f: st.fault(1, f))
    await st.start()
    return st, ad, hw, order


async def settle():
    for _ in range(10):
        await asyncio.sleep(0)


async def test_lock_before_relay_and_relay_open_before_unlock(tmp_path):
    st, ad, hw, order = await make(tmp_path)
    order.clear()
    hw.plant.plug()
    await settle()
    assert await st.present_id_tag(1, "A") == "accepted"
    await settle()
    assert order.index("lock") < order.index("relay closed")
    assert hw.relay.closed and hw.lock.locked and st.connectors[1].status() == "Charging"
    order.clear()
    assert await st.present_id_tag(1, "A") == "stopped"
    assert order.index("relay open") < order.index("unlock")
    assert hw.pilot.offered_a is None and not hw.relay.closed
    assert ad.stopped[0].stop_reason == "Local"


async def test_ev_disconnect_keeps_transaction_when_configured(tmp_path):
    st, ad, hw, order = await make(tmp_path, stop_on_ev_side_disconnect=False)
    hw.plant.plug()
    await settle()
    await st.present_id_tag(1, "A")
    hw.plant.unplug()
    await settle()
    assert not ad.stopped and st.connectors[1].transaction is not None
    assert not hw.relay.closed and hw.lock.locked
    assert st.connectors[1].status() == "SuspendedEV"


async def test_fault_opens_relay_and_ends_transaction(tmp_path):
    st, ad, hw, order = await make(tmp_path)
    hw.plant.plug()
    await settle()
    await st.present_id_tag(1, "A")
    hw.plant.fault("GroundFailure", True)
    await settle()
    assert not hw.relay.closed and ad.stopped and ad.stopped[0].stop_reason == "Other"
    assert ad.statuses[-1] == (1, "Faulted", "GroundFailure")


async def test_welded_relay_is_reported_and_transaction_not_lost(tmp_path):
    st, ad, hw, order = await make(tmp_path)
    hw.plant.plug()
    await settle()
    await st.present_id_tag(1, "A")
    hw.relay.welded = True
    await st.present_id_tag(1, "A")
    await settle()
    assert len(ad.stopped) == 1  # stopped once, reported once
    assert ("PowerSwitchFailure" in st.connectors[1].faults)

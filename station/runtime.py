"""Runs one station from its config: builds hardware, store, core and adapter, and restarts the
station in-process after a Reset (the hardware stays: a reset does not unplug the car).

One ``Runtime`` per station; a fleet runs many in one event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from hal.board import EvseHardware, build_evse
from hal.types import CpState, Fault, IdToken
from station.config import StationConfig
from station.core.clock import Clock, SystemClock
from station.core.evse import Connector, Evse
from station.ocpp16.adapter import Ocpp16Adapter
from station.station import Station
from station.store import Store


class Runtime:
    def __init__(self, cfg: StationConfig, clock: Clock | None = None, log: logging.Logger | None = None) -> None:
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self.log = log or logging.getLogger(f"station.{cfg.id}")
        state = Path(cfg.state_dir)
        state.mkdir(parents=True, exist_ok=True)
        self.store = Store(state / "station.sqlite")
        self.hw: dict[int, EvseHardware] = {}
        self.shared_hw: dict = {}  # what EVSEs share: the pin factory, an RS-485 bus, an I2C bus
        # a simulated meter must never run backwards across a power cut: start from the highest
        # energy we know of (saved periodically, or the last reading of a transaction that was cut)
        last_tx_wh: dict[int, float] = {}
        for _, cid, _, data, _ in self.store.tx_open():
            last_tx_wh[cid] = max(last_tx_wh.get(cid, 0.0), float(data.get("meter_last_wh") or 0))
        for e in cfg.evses:
            devices = {} if cfg.simulated else e.devices
            start_wh = max(float(self.store.get("sim_energy_wh", str(e.id), 0.0)), last_tx_wh.get(e.id, 0.0))
            self.hw[e.id] = build_evse(
                e.id, devices, cfg.gpio, clock=self.clock.monotonic, start_wh=start_wh, shared=self.shared_hw
            )
            self._wire(e.id, self.hw[e.id])
        self.station: Station | None = None
        self.adapter: Ocpp16Adapter | None = None
        self.events: list[str] = []
        self.on_event = lambda text: None
        self.generation = 0
        self._stopping = asyncio.Event()

    def _wire(self, evse_id: int, hw: EvseHardware) -> None:
        """Hardware callbacks go to whichever station object is current (it changes on reset)."""

        def cp(state: CpState) -> None:
            if self.station is not None:
                self.station.cp_state(evse_id, state)

        def token(t: IdToken) -> None:
            if self.station is not None:
                self.station.token(evse_id, t)

        def fault(f: Fault) -> None:
            if self.station is not None:
                self.station.fault(evse_id, f)

        hw.pilot.on_state(cp)
        if hw.reader is not None:
            hw.reader.on_token(token)
        hw.on_fault(fault)

    def _event(self, text: str) -> None:
        self.events.append(text)
        del self.events[:-200]
        self.on_event(text)

    def _apply_initial_ocpp_config(self, adapter: Ocpp16Adapter) -> None:
        path = self.cfg.ocpp_config_file
        if not path or self.store.get("station", "ocpp_config_applied", False):
            return
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        for key, value in data.items():
            problem = adapter.keys.set_initial(key, str(value).lower() if isinstance(value, bool) else str(value))
            if problem:
                self.log.error("--ocpp-config: %s", problem)
        adapter.apply_keys()
        self.store.put("station", "ocpp_config_applied", True)

    async def run(self) -> None:
        for hw in self.hw.values():
            await hw.start()
        saver = asyncio.ensure_future(self._save_sim_energy())
        try:
            while not self._stopping.is_set():
                kind = await self._run_once()
                if kind is None:
                    break
                self.log.warning("%s reset: restarting the station", kind)
                self._event(f"station restarts after a {kind} reset")
        finally:
            saver.cancel()
            self._persist_sim_energy()
            for hw in self.hw.values():
                await hw.close()
            self.store.close()

    async def _run_once(self) -> str | None:
        self.generation += 1
        evses = [
            Evse(e.id, [Connector(e.id)], max_current_a=float(e.max_current), phases=e.phases, fixed_cable=e.fixed_cable)
            for e in self.cfg.evses
        ]
        station = Station(
            station_id=self.cfg.id, evses=evses, hardware=self.hw, store=self.store, clock=self.clock, log=self.log
        )
        station.on_event = self._event
        adapter = Ocpp16Adapter(station, self.store, self.cfg, self.clock, self.log)
        self._apply_initial_ocpp_config(adapter)
        station.attach(adapter)
        link = adapter.make_link()
        self.station, self.adapter = station, adapter
        await station.start()
        await adapter.start()
        link_task = asyncio.ensure_future(link.run())
        stop_task = asyncio.ensure_future(self._stopping.wait())
        assert station.restart_request is not None
        try:
            done, _ = await asyncio.wait({station.restart_request, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            kind = station.restart_request.result() if station.restart_request in done else None
            if kind is not None:
                await adapter.flush_outbox(5.0 if kind == "Soft" else 2.0)
            return kind
        finally:
            stop_task.cancel()
            await adapter.stop()
            await station.stop()
            link_task.cancel()
            await link.close()
            try:
                await link_task
            except (asyncio.CancelledError, Exception):
                pass

    def stop(self) -> None:
        self._stopping.set()

    def _persist_sim_energy(self) -> None:
        for evse_id, hw in self.hw.items():
            if hw.plant is not None:
                hw.plant.settle()
                self.store.put("sim_energy_wh", str(evse_id), hw.plant.energy_wh)

    async def _save_sim_energy(self) -> None:
        while True:
            await asyncio.sleep(2.0)
            self._persist_sim_energy()

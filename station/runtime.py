"""Runs one station from its config: builds hardware, store, core and adapter, and restarts the
station in-process after a Reset (the hardware stays: a reset does not unplug the car).

Life cycle: the state directory (``state/<id>`` unless configured) is locked for as long as the
runtime lives. :meth:`Runtime.stop` is a clean stop (SIGTERM, Ctrl-C): running transactions end
with reason Reboot at the time of the stop, queued transaction messages get up to
``stop_flush_s`` to reach the CSMS, and the log says what was ended, sent and left queued (left
over messages go out after the next start). A second :meth:`stop` skips the wait.

``--ocpp-config`` is applied at every start, per key: a value that changed in the file since it
was last applied is applied, unless the CSMS changed that key after the file was edited; an
unchanged value never overrides what the CSMS set. The log names the keys applied and kept.

One ``Runtime`` per station; a fleet runs many in one event loop (station/sim/fleet.py): it gives
each a ``DictStore`` (no SQLite), its view of the shared timer wheel as ``clock``, a logger adapter with the
station id, and sets ``link_observer``, ``ws_options``, ``events_kept`` and
``checkpoint_interval_s`` (a checkpoint saves running transactions for a power cut: nothing to
save to in memory) before ``run()``. With
a store in memory (``MemoryStore``, ``DictStore``) the simulated meter's energy is not saved periodically (nothing survives a
restart anyway; the plant keeps it across a Reset).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from hal.board import EvseHardware, build_evse
from hal.gpio import pin_factory
from hal.tamper import TamperInput, build_tamper
from hal.types import CpState, Fault, HalError, IdToken
from station.config import DEFAULT_STATE_ROOT, StationConfig, connector_numbers
from station.core.clock import Clock
from station.core.evse import Connector, Evse
from station.core.transaction import StopReason
from station.firmware import installed_version
from station.ocpp16.adapter import Ocpp16Adapter
from station.ocpp16.config_keys import NS
from station.ocpp201.adapter import Ocpp201Adapter
from station.ocpp201.device_model import NS as DM_NS
from station.scheduler import LoopScheduler
from station.station import Station
from station.store import DB_NAME, DirLock, MemoryStore, StateDirLocked, Store, StoreError, open_state_dir
from station.tasks import Event

MEMORY = ":memory:"  # --state-dir :memory: keeps the state in memory (tests, fleets; no lock)


def _damage(db: sqlite3.Connection) -> str | None:
    """What is wrong with an SQLite file (``PRAGMA quick_check``), or None if it is sound."""
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as e:
        if getattr(e, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
            return str(e)
        raise
    if rows == [("ok",)]:
        return None
    return "; ".join(str(r[0]) for r in rows[:3])


def _probe_damage(state: Path) -> str | None:
    """The state file could not be opened: whether it is damaged (None: some other reason)."""
    path = state / DB_NAME
    if not path.is_file():
        return None
    try:
        lock = DirLock(state)
    except StoreError:
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return _damage(db)
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return None  # cannot open it, locked, I/O error: not known to be damaged
    finally:
        lock.release()


def _move_aside(state: Path, damage: str) -> Path:
    """Rename the damaged state file (and its -wal, -shm) to station.sqlite.corrupt-<UTC time>."""
    path = state / DB_NAME
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{DB_NAME}.corrupt-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{DB_NAME}.corrupt-{stamp}-{n}")
    lock = DirLock(state)
    try:
        os.replace(path, aside)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{path}{suffix}", f"{aside}{suffix}")
    except OSError as e:
        raise StoreError(f"state file {path} is damaged ({damage}) and cannot be moved aside ({e.strerror or e}): "
                         "move or delete it by hand") from None
    finally:
        lock.release()
    return aside


class Runtime:
    def __init__(self, cfg: StationConfig, clock: Clock | None = None, log: logging.Logger | None = None,
                 store: Store | None = None) -> None:
        self.cfg = cfg
        self.clock = clock or LoopScheduler()  # one time source: the running loop (timers too)
        self.log = log or logging.getLogger(f"station.{cfg.id}")
        self.store = store if store is not None else self._open_store()
        try:
            self._build_hardware()
        except BaseException:
            self.store.close()  # and its directory lock
            raise
        self.station: Station | None = None
        self.adapter: Ocpp16Adapter | Ocpp201Adapter | None = None
        self.events: list[str] = []
        self.events_kept = 200  # session events kept for the API
        self.on_event = lambda text: None
        self.link_observer = None  # station.link.LinkObserver of every link (a fleet's statistics)
        self.ws_options: dict = {}  # extra websockets.connect() arguments of every link
        self.checkpoint_interval_s: float | None = None  # None: the station's own (5 s)
        self.generation = 0
        self.stop_flush_s = 8.0  # how long a clean stop waits for queued messages to go out
        self._stopping = Event()
        self._stop_now = Event()
        self._stop_waiter: asyncio.Future | None = None  # ends _run_once's wait at a stop()
        self._closed = False
        self._link_task: asyncio.Future | None = None  # the current generation's link.run()

    def _open_store(self) -> Store:
        """Lock and open the station's own state directory (raises station.store.StoreError)."""
        if self.cfg.state_dir == MEMORY:
            self.log.info("state in memory only (--state-dir %s): nothing survives a restart", MEMORY)
            return MemoryStore()
        state = self.cfg.state_path()
        # the first release kept every station in ./state: the default directory takes that file over
        legacy = None if self.cfg.state_dir else Path(DEFAULT_STATE_ROOT)
        try:
            store = open_state_dir(state, adopt_from=legacy)
            damage = _damage(store.db)
            if damage is not None:
                store.close()
        except StateDirLocked:
            raise
        except StoreError:
            damage = _probe_damage(state)
            legacy_damage = _probe_damage(legacy) if damage is None and legacy is not None else None
            if legacy_damage is not None and legacy is not None:
                # the first release's shared file, to be adopted, is the damaged one
                aside = _move_aside(legacy, legacy_damage)
                self.log.error("state file %s of the first release is damaged (%s): moved aside to %s for a "
                               "technician, not taken over", legacy / DB_NAME, legacy_damage, aside)
                store = open_state_dir(state, adopt_from=legacy)
            elif damage is None:
                raise  # not a damaged file (permissions, a newer release's schema): say so, exit 2
        if damage is not None:
            # a damaged file would keep the station from ever starting: keep it for a technician
            # and start clean, rather than stay out of service until someone drives out
            aside = _move_aside(state, damage)
            self.log.error("state file %s is damaged (%s): moved aside to %s for a technician; starting with an "
                           "empty state (transaction messages queued in it are not sent, OCPP settings are back "
                           "to their defaults)", state / DB_NAME, damage, aside)
            store = open_state_dir(state)
        if store.adopted_from is not None:
            self.log.warning("state file %s (shared by every station id in the first release) moved to %s",
                             store.adopted_from, state)
        self.log.debug("state directory %s locked", state)
        return store

    def _build_hardware(self) -> None:
        cfg = self.cfg
        self.hw: dict[int, EvseHardware] = {}
        self._sim_saved: dict[int, float] = {}  # EVSE -> simulated energy last stored
        self.shared_hw: dict = {}  # what EVSEs share: the pin factory, an RS-485 bus, an I2C bus
        # a simulated meter must never run backwards across a power cut: start from the highest
        # energy we know of (saved periodically, or the last reading of a transaction that was cut)
        last_tx_wh: dict[int, float] = {}  # EVSE -> the highest reading of a cut transaction on it
        evse_of = {cid: evse for (evse, _), cid in connector_numbers(cfg.evses).items()}
        for _, cid, _, data, _ in self.store.tx_open():
            evse = evse_of.get(cid, cid)
            last_tx_wh[evse] = max(last_tx_wh.get(evse, 0.0), float(data.get("meter_last_wh") or 0))
        for e in cfg.evses:
            devices = {} if cfg.simulated else e.devices
            start_wh = max(float(self.store.get("sim_energy_wh", str(e.id), 0.0)), last_tx_wh.get(e.id, 0.0))
            self.hw[e.id] = build_evse(
                e.id, devices, cfg.gpio, clock=self.clock.monotonic, start_wh=start_wh, shared=self.shared_hw,
                phases=e.phases, connectors=[{} if cfg.simulated else c.devices for c in e.connectors] or None,
            )
            self._wire(e.id, self.hw[e.id])
            plant = self.hw[e.id].plant
            if plant is not None:
                plant.on_reading = lambda wh, evse_id=e.id: self._save_sim_reading(evse_id, wh)
        self.tamper = self._build_tamper()

    def _build_tamper(self) -> TamperInput | None:
        """The enclosure's tamper switch ([hardware] tamper), on the station's pin factory; its
        changes go to the current adapter's security events (as POST /api/tamper's do)."""
        cfg = self.cfg
        if cfg.tamper.get("tamper", -1) < 0:
            return None
        try:
            pins = self.shared_hw.get("pins")
            if pins is None:
                pins = self.shared_hw["pins"] = pin_factory("sim" if cfg.simulated else cfg.gpio)
            tamper = build_tamper(cfg.tamper, pins)
        except HalError as e:
            raise HalError(f"hardware.tamper: {e}", e.error_code) from e
        if tamper is not None:
            tamper.on_change(self._tamper_changed)
        return tamper

    def _tamper_changed(self, active: bool) -> None:
        if self.adapter is not None:
            self.adapter.security_events.tamper(active)

    def _save_sim_reading(self, evse_id: int, wh: float) -> None:
        """A simulated meter reading is about to be used: its energy is stored first (synchronous
        FULL), so after a power cut the simulated meter never starts below a value already reported."""
        if wh > self._sim_saved.get(evse_id, -1.0):
            self.store.put("sim_energy_wh", str(evse_id), wh)
            self._sim_saved[evse_id] = wh

    def _wire(self, evse_id: int, hw: EvseHardware) -> None:
        """Hardware callbacks go to whichever station object is current (it changes on reset)."""

        def cp(connector_id: int, state: CpState) -> None:
            if self.station is not None:
                self.station.cp_state(evse_id, state, connector_id)

        def token(t: IdToken) -> None:
            if self.station is not None:
                self.station.token(evse_id, t)

        def fault(f: Fault) -> None:
            if self.station is not None:
                self.station.fault(evse_id, f)

        hw.on_cp_state(cp)  # every connector's pilot
        if hw.reader is not None:
            hw.reader.on_token(token)
        hw.on_fault(fault)

    def _event(self, text: str) -> None:
        """A session event in the demo's words: kept for the API, logged at INFO (the station
        logs connector status changes itself; those go to DEBUG here, not twice at INFO)."""
        if self.events_kept:
            self.events.append(text)
            del self.events[:-self.events_kept]
        status_change = text.startswith("connector ") and " is now " in text
        self.log.log(logging.DEBUG if status_change else logging.INFO, "%s", text)
        self.on_event(text)

    def _apply_initial_ocpp_config(self, adapter: Ocpp16Adapter | Ocpp201Adapter) -> None:
        """Apply ``--ocpp-config`` per key (see the module docstring) and log what was done."""
        path = self.cfg.ocpp_config_file
        if not path:
            return
        if isinstance(adapter, Ocpp201Adapter):
            self._apply_initial_variables(adapter, path)
            return
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            file_time = os.stat(path).st_mtime
        except (OSError, ValueError) as e:
            self.log.error("--ocpp-config %s: cannot read it (%s); nothing applied", path, e)
            return
        if not isinstance(data, dict):
            self.log.error("--ocpp-config %s: not a JSON object; nothing applied", path)
            return
        keys, store = adapter.keys, self.store
        applied: list[str] = []
        for raw_key, raw in data.items():
            value = str(raw).lower() if isinstance(raw, bool) else str(raw)
            name = keys.canonical(raw_key)
            if name is None or keys.defs[name].readonly:
                problem = keys.set_initial(raw_key, value)  # explains it (unknown key, read-only)
                if problem:
                    self.log.error("--ocpp-config: %s", problem)
                continue
            record = store.config_file_get(name)
            current = keys.get(name)
            if record is not None and record[0] == value:
                continue  # this line of the file did not change: whatever is in use stays
            if current == value:
                store.config_file_put(name, value, "file")
                continue
            set_by_file = record is not None and record[1] == "file" and current == record[0]
            if not set_by_file and store.get(NS, name) is not None:
                # someone else set the value in use: the CSMS (or the first release, which kept no record)
                changed = store.updated_at(NS, name)
                if changed is None or changed > file_time:
                    when = "before this release kept a record" if changed is None else \
                        f"at {datetime.fromtimestamp(changed, UTC):%Y-%m-%d %H:%M:%S} UTC, after the file was edited"
                    self.log.warning("--ocpp-config: %s not applied: the CSMS set it %s; its value stays",
                                     name, when)
                    store.config_file_put(name, value, "csms")
                    continue
            problem = keys.set_initial(name, value)
            if problem:
                self.log.error("--ocpp-config: %s", problem)
                continue
            store.config_file_put(name, value, "file")
            applied.append(name)
        if applied:
            adapter.apply_keys()
            self.log.info("--ocpp-config %s: applied %s", path, ", ".join(applied))
        else:
            self.log.info("--ocpp-config %s: nothing new to apply", path)

    def _apply_initial_variables(self, adapter: Ocpp201Adapter, path: str) -> None:
        """2.0.1 ``--ocpp-config``: a JSON list shaped like SetVariablesRequest.setVariableData."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            self.log.error("--ocpp-config %s: cannot read it (%s); nothing applied", path, e)
            return
        if not isinstance(data, list):
            self.log.error("--ocpp-config %s: not a JSON list of setVariableData; nothing applied", path)
            return
        # the same rule as 1.6, per variable: a value changed in the file since it was last applied
        # is applied, unless the CSMS set that variable after the file was edited
        file_time = os.stat(path).st_mtime
        dm, store = adapter.dm, self.store
        todo, keys = [], []
        for item in data:
            key = dm.stored_key(item) if isinstance(item, dict) else None
            value = item.get("attributeValue") if isinstance(item, dict) else None
            if key is None or not isinstance(value, str):
                todo.append(item)  # apply_config_file names the problem
                keys.append(None)
                continue
            record = store.config_file_get(f"dm201:{key}")
            if record is not None and record[0] == value:
                continue  # unchanged in the file: whatever is in use stays
            set_by_file = record is not None and record[1] == "file"
            changed = store.updated_at(DM_NS, key)
            if not set_by_file and store.get(DM_NS, key) is not None and (changed is None or changed > file_time):
                self.log.warning("--ocpp-config: %s not applied: the CSMS set it after the file was edited", key)
                store.config_file_put(f"dm201:{key}", value, "csms")
                continue
            todo.append(item)
            keys.append((key, value))
        problems = dm.apply_config_file(todo) if todo else []
        failed = {p.split(" ", 2)[1] for p in problems if p.startswith("entry ")}
        for n, k in enumerate(keys, 1):
            if k is not None and str(n) not in failed:
                store.config_file_put(f"dm201:{k[0]}", k[1], "file")
        for problem in problems:
            self.log.error("--ocpp-config: %s", problem)
        adapter.apply_variables()
        self.log.info("--ocpp-config %s: %d variable(s) applied, %d problem(s)", path,
                      len(todo) - len(problems), len(problems))

    async def run(self) -> None:
        for hw in self.hw.values():
            await hw.start()
        if self.tamper is not None:
            await self.tamper.start()
        saver = asyncio.ensure_future(self._save_sim_energy()) if getattr(self.store, "persistent", True) else None
        try:
            while not self._stopping.is_set():
                kind = await self._run_once()
                if kind is None:
                    break
                self.log.warning("%s reset: restarting the station", kind)
                self._event(f"station restarts after a {kind} reset")
        finally:
            if saver is not None:
                saver.cancel()
            self._persist_sim_energy()
            await self.close()

    async def close(self) -> None:
        """Release the hardware and the store (and its directory lock); idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.tamper is not None:
            await self.tamper.stop()
        for hw in self.hw.values():
            await hw.close()
        self.store.close()

    async def _run_once(self) -> str | None:
        self.generation += 1
        numbers = connector_numbers(self.cfg.evses)  # (EVSE, connector in it) -> 1.6 connectorId
        evses = [
            Evse(e.id, [Connector(numbers[(e.id, n)]) for n in range(1, max(1, len(e.connectors)) + 1)],
                 max_current_a=float(e.max_current), phases=e.phases, fixed_cable=e.fixed_cable)
            for e in self.cfg.evses
        ]
        station = Station(
            station_id=self.cfg.id, evses=evses, hardware=self.hw, store=self.store, clock=self.clock, log=self.log
        )
        station.on_event = self._event
        if self.checkpoint_interval_s:
            station.checkpoint_interval_s = self.checkpoint_interval_s
        # the firmware version BootNotification reports: an installed package's (station/firmware.py)
        cfg = dataclasses.replace(self.cfg, firmware_version=installed_version(self.store, self.cfg.firmware_version))
        adapter_class: type = Ocpp201Adapter if cfg.ocpp == "2.0.1" else Ocpp16Adapter
        adapter = adapter_class(station, self.store, cfg, self.clock, self.log)
        self._apply_initial_ocpp_config(adapter)
        station.attach(adapter)
        link = adapter.make_link(reconnecting=self.generation > 1)  # after a Reset: not at once
        link.observer = self.link_observer
        link.ws_options = self.ws_options
        self.station, self.adapter = station, adapter
        if self.tamper is not None and self.tamper.active:  # the enclosure is open as this run starts
            adapter.security_events.tamper(True)
        await station.start()
        await adapter.start()
        link_task = asyncio.ensure_future(link.run())
        self._link_task = link_task
        # a stop() ends the wait below through this future (a future, not a task waiting on the
        # event: one task less per station, which counts in a fleet)
        stop_task: asyncio.Future = asyncio.get_running_loop().create_future()
        self._stop_waiter = stop_task
        if self._stopping.is_set():
            stop_task.set_result(None)
        assert station.restart_request is not None
        try:
            done, _ = await asyncio.wait({station.restart_request, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            kind = station.restart_request.result() if station.restart_request in done else None
            if kind is not None:
                await adapter.flush_outbox(5.0 if kind == "Soft" else 2.0)
            else:
                await self._clean_stop(station, adapter)
            return kind
        finally:
            stop_task.cancel()
            self._stop_waiter = None
            self._link_task = None  # ended on purpose from here on
            await adapter.stop()
            await station.stop()
            link_task.cancel()
            await link.close()
            try:
                await link_task
            except (asyncio.CancelledError, Exception):
                pass

    async def _clean_stop(self, station: Station, adapter: Ocpp16Adapter | Ocpp201Adapter) -> None:
        """End running transactions (Reboot), give their messages a bounded time, say what was done."""
        try:
            stopped = await asyncio.wait_for(station.stop_all(StopReason.Reboot), 10.0)
        except TimeoutError:
            self.log.error("stopping: the hardware did not answer within 10 s; an open transaction "
                           "is reported as a power loss after the next start")
            stopped = []
        if not stopped:
            self.log.info("stopping: no transaction was running")
        for tx in stopped:
            self.log.info("stopping: transaction %s on connector %d ended (Reboot), %d Wh",
                          tx.transaction_id if tx.transaction_id is not None else f"(local {tx.local_id})",
                          tx.connector_id, tx.energy_wh())
        queued = self.store.outbox_len()
        if queued and adapter.online and not self._stop_now.is_set():
            flush = asyncio.ensure_future(adapter.flush_outbox(self.stop_flush_s))
            now = asyncio.ensure_future(self._stop_now.wait())
            await asyncio.wait({flush, now}, return_when=asyncio.FIRST_COMPLETED)
            for t in (flush, now):
                t.cancel()
        left = self.store.outbox_len()
        if left:
            link = adapter.link
            why = "" if adapter.online else (" (connected, but not registered: BootNotification not Accepted)"
                                             if link is not None and link.is_connected else " (not connected to the CSMS)")
            self.log.warning("stopping: %d transaction message(s) still queued%s; they are sent after the next start",
                             left, why)
        elif queued:
            self.log.info("stopping: %d transaction message(s) delivered to the CSMS", queued)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def health_problem(self) -> str | None:
        """Why the station cannot do its job any more (the systemd watchdog stops being petted, so
        systemd restarts it), or None. The link is supervised and never ends by itself: if its task
        ended anyway, the station would stay off line for ever without this."""
        task = self._link_task
        if task is None or not task.done() or self._stopping.is_set() or self._closed:
            return None
        exc = None if task.cancelled() else task.exception()
        return f"the CSMS link task ended ({type(exc).__name__}: {exc})" if exc else "the CSMS link task ended"

    def stop(self) -> None:
        """A clean stop; called again while stopping, it no longer waits for the CSMS."""
        if self._stopping.is_set():
            self._stop_now.set()
        self._stopping.set()
        waiter = self._stop_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _persist_sim_energy(self) -> None:
        for evse_id, hw in self.hw.items():
            if hw.plant is not None:
                hw.plant.settle()
                self.store.put("sim_energy_wh", str(evse_id), hw.plant.energy_wh)

    async def _save_sim_energy(self) -> None:
        while True:
            await asyncio.sleep(2.0)
            self._persist_sim_energy()

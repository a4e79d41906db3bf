"""One charging station: the core facts plus the hardware sequencing a real charger needs.

It reacts to hardware events (cable, CP state, card, faults) and to commands from the OCPP adapter
(remote start/stop, unlock, availability, reset), and tells the adapter what happened (status
changes, transactions started and stopped). It is version independent: it never builds an OCPP
message. One object per station, no module-level state, so thousands can share one process.

Safety order: the connector is locked before the relay closes, and the relay opens (after the
pilot stops offering current) before the connector unlocks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Protocol

from hal.board import EvseHardware
from hal.types import CpState, Fault, HalError, IdToken, MeterReading
from station.core.auth import IdTagInfo, Verdict, decide
from station.core.clock import Clock, iso, parse_iso
from station.core.evse import Connector, Evse, PendingAuthorization, Status, station_status
from station.core.settings import Settings
from station.core.transaction import StopReason, Transaction
from station.store import Store
from station.tasks import Tasks


class Adapter(Protocol):
    settings: Settings

    @property
    def online(self) -> bool: ...
    async def authorize(self, id_tag: str) -> IdTagInfo | None: ...
    def status_changed(self, connector_id: int, status: Status, error_code: str, info: str) -> None: ...
    def transaction_started(self, tx: Transaction) -> None: ...
    def transaction_stopped(self, tx: Transaction) -> None: ...


PILOT_FAULT_INFO = "control pilot state"


class Station:
    def __init__(
        self,
        *,
        station_id: str,
        evses: list[Evse],
        hardware: dict[int, EvseHardware],
        store: Store,
        clock: Clock,
        log: logging.Logger,
    ) -> None:
        self.station_id = station_id
        self.evses = {e.evse_id: e for e in evses}
        self.connectors: dict[int, Connector] = {e.evse_id: e.connector for e in evses}
        self.hw = hardware
        self.store = store
        self.clock = clock
        self.log = log
        self.adapter: Adapter | None = None
        self.settings = Settings()
        self.operative: bool = bool(store.get("availability", "0", True))
        self.station_faults: dict[str, str] = {}
        self.cache: dict[str, IdTagInfo] = {k: IdTagInfo(**v) for k, v in store.auth_all("cache").items()}
        self.local_list: dict[str, IdTagInfo] = {k: IdTagInfo(**v) for k, v in store.auth_all("local").items()}
        self.meter_cache: dict[int, MeterReading] = {}
        self.limits_a: dict[int, float | None] = {}
        self.restart_request: asyncio.Future[str] | None = None
        self._locks: dict[int, asyncio.Lock] = {cid: asyncio.Lock() for cid in self.connectors}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self.tasks = Tasks(log, "station")
        self.spawn = self.tasks.spawn
        self._last_status: dict[int, tuple[Status, str]] = {}
        self.checkpoint_interval_s = 5.0  # running transactions are saved at least this often
        self.on_event: Callable[[str], None] = lambda text: None  # human-readable events (demo, logs)
        for cid, conn in self.connectors.items():
            conn.operative = bool(store.get("availability", str(cid), True))

    # -- life cycle --------------------------------------------------------------------------
    def attach(self, adapter: Adapter) -> None:
        self.adapter = adapter
        self.settings = adapter.settings

    async def start(self) -> None:
        self.restart_request = asyncio.get_running_loop().create_future()
        for cid, hw in self.hw.items():
            conn = self.connectors[cid]
            state = getattr(hw.pilot, "state", CpState.A)
            conn.plugged = state in (CpState.B, CpState.C, CpState.D)
            conn.ev_requesting = state in (CpState.C, CpState.D)
            if state in (CpState.E, CpState.F):
                conn.faults["OtherError"] = f"{PILOT_FAULT_INFO} {state}"
            # faults the devices reported before this station object existed (start-up, a reset)
            for code, info in getattr(hw, "active_faults", {}).items():
                conn.faults.setdefault(code, info[:50])
            await self._safe(hw.pilot.offer(None), cid)
            if hw.relay.closed:
                await self._safe(hw.relay.set(False), cid)
        await self._recover_transactions()
        for cid in self.connectors:
            self.notify_status(cid, force=True)
        self.notify_status(0, force=True)
        self.spawn(self._checkpoint_loop())

    async def stop(self) -> None:
        for t in self._timers.values():
            t.cancel()
        self.tasks.cancel_all()

    # -- status ------------------------------------------------------------------------------
    def status_of(self, connector_id: int) -> tuple[Status, str]:
        if connector_id == 0:
            st = station_status(self.operative, self.station_faults)
            return st, next(iter(self.station_faults), "NoError")
        conn = self.connectors[connector_id]
        return conn.status(), conn.error_code

    def notify_status(self, connector_id: int, force: bool = False, announce: str | None = None) -> None:
        """Report the connector's status if it changed. ``announce``: a warning-level error code
        just raised while an older one is still active; 1.6 carries one errorCode per
        StatusNotification, so the new one is reported once on its own (the older one again when
        the new one clears)."""
        status, error = self.status_of(connector_id)
        if (
            announce is not None
            and connector_id
            and announce != error
            and announce in self.connectors[connector_id].faults
            and not self.connectors[connector_id].faulted
        ):
            error = announce
        if not force and self._last_status.get(connector_id) == (status, error):
            return
        self._last_status[connector_id] = (status, error)
        info = ""
        if connector_id:
            info = self.connectors[connector_id].faults.get(error, "")
        self.log.info("connector %d: %s%s", connector_id, status, "" if error == "NoError" else f" ({error})")
        if connector_id:
            self.on_event(f"connector {connector_id} is now {status}" + ("" if error == "NoError" else f" ({error})"))
        if self.adapter is not None:
            self.adapter.status_changed(connector_id, status, error, info)

    # -- hardware events ---------------------------------------------------------------------
    def cp_state(self, evse_id: int, state: CpState) -> None:
        self.spawn(self._cp_state(evse_id, state))

    def token(self, evse_id: int, token: IdToken) -> None:
        self.spawn(self.present_id_tag(evse_id, token.id_token))

    def fault(self, evse_id: int, fault: Fault) -> None:
        self.spawn(self._fault(evse_id, fault))

    async def _cp_state(self, cid: int, state: CpState) -> None:
        conn = self.connectors[cid]
        async with self._locks[cid]:
            was_plugged = conn.plugged
            if state in (CpState.E, CpState.F):
                # IEC 61851-1: E (CP shorted to PE / no pilot) and F (pilot fault) -> open the contactor
                # at once; the connector is Faulted (OtherError) and a running transaction ends.
                what = "CP shorted" if state is CpState.E else "pilot fault"
                await self._set_fault(cid, "OtherError", True, f"{PILOT_FAULT_INFO} {state} ({what})")
                return
            pilot_restored = conn.faults.get("OtherError", "").startswith(PILOT_FAULT_INFO)
            if pilot_restored:
                await self._set_fault(cid, "OtherError", False)
            conn.plugged = state in (CpState.B, CpState.C, CpState.D)
            conn.ev_requesting = state in (CpState.C, CpState.D)
            if state is CpState.D and not conn.ventilation_required:
                self.on_event(f"connector {cid}: the EV asks for ventilation (state D); this station has none")
            conn.ventilation_required = state is CpState.D
            if conn.plugged and not was_plugged:
                self.on_event(f"EV plugged in at connector {cid}")
                if conn.transaction is not None:
                    await self._energize(cid)  # an EV came back to a running transaction
                elif conn.pending is not None and conn.operative and not conn.faulted:
                    await self._start(cid, conn.pending.id_tag, conn.pending.parent_id_tag, conn.pending)
            elif not conn.plugged and was_plugged:
                self.on_event(f"EV unplugged from connector {cid}")
                conn.finishing = False
                if conn.transaction is not None:
                    if self.settings.stop_on_ev_side_disconnect:
                        await self._stop(
                            cid, StopReason.EVDisconnected, unlock=self.settings.unlock_on_ev_side_disconnect
                        )
                    else:
                        await self._deenergize(cid)
                else:
                    await self._unlock_hw(cid)
            elif pilot_restored and conn.plugged and conn.transaction is not None:
                await self._energize(cid)  # the pilot is healthy again: resume the suspended transaction
            if conn.transaction is not None and conn.plugged:
                await self._apply_contactor(cid)  # C: close, back to B (EV pauses) or D: open
            self.notify_status(cid)

    async def _fault(self, cid: int, fault: Fault) -> None:
        async with self._locks[cid]:
            await self._set_fault(cid, fault.error_code, fault.active, fault.info)

    async def _set_fault(self, cid: int, code: str, active: bool, info: str = "") -> None:
        conn = self.connectors[cid]
        if active:
            if code in conn.faults:
                return
            conn.faults[code] = info[:50]
            self.on_event(f"fault at connector {cid}: {code} {info}".rstrip())
            if conn.faulted and conn.transaction is not None:
                await self._stop(cid, StopReason.Other, unlock=False)
            elif conn.faulted and conn.pending is not None:
                conn.pending = None
            elif code == "EVCommunicationError" and conn.transaction is not None:
                await self._deenergize(cid)  # SuspendedEVSE (1.6 section 7.6), the transaction goes on
        else:
            if conn.faults.pop(code, None) is None:
                return
            self.on_event(f"fault cleared at connector {cid}: {code}")
            if code == "EVCommunicationError" and conn.transaction is not None and conn.plugged and not conn.faulted:
                await self._energize(cid)  # the EV talks properly again: resume the suspended transaction
        self.notify_status(cid, announce=code if active else None)

    # -- authorization -----------------------------------------------------------------------
    async def authorize(self, id_tag: str) -> IdTagInfo:
        """Decide on an id tag presented locally: cache, local list, CSMS, offline rules."""
        online = self.adapter is not None and self.adapter.online
        d = decide(id_tag, online, self.settings.auth, self.local_list, self.cache, self.clock.now())
        if d.verdict is Verdict.ASK_CSMS:
            info = await self.adapter.authorize(id_tag) if self.adapter is not None else None
            if info is not None:
                self.remember(id_tag, info)
                return info
            d = decide(id_tag, False, self.settings.auth, self.local_list, self.cache, self.clock.now())
        if d.info is not None and d.verdict is Verdict.ACCEPT:
            return d.info
        return d.info if d.info is not None and d.info.status != "Accepted" else IdTagInfo("Invalid")

    def remember(self, id_tag: str, info: IdTagInfo) -> None:
        """Update the authorization cache with an IdTagInfo the CSMS sent."""
        if not self.settings.auth.authorization_cache_enabled or id_tag in self.local_list:
            return
        self.cache[id_tag] = info
        self.store.auth_put("cache", id_tag, asdict(info))

    def clear_cache(self) -> bool:
        self.cache.clear()
        self.store.auth_clear("cache")
        return True

    async def present_id_tag(self, cid: int, id_tag: str) -> str:
        """A card at the reader of connector ``cid``. Returns a short word saying what happened."""
        conn = self.connectors.get(cid)
        if conn is None:
            return "unknown connector"
        self.on_event(f"card {id_tag} presented at connector {cid}")
        async with self._locks[cid]:
            tx = conn.transaction
            if tx is not None:
                if id_tag == tx.id_tag:
                    await self._stop(cid, StopReason.Local, id_tag=id_tag)
                    self.notify_status(cid)
                    return "stopped"
                info = await self.authorize(id_tag)
                if info.status == "Accepted" and tx.parent_id_tag and info.parent_id_tag == tx.parent_id_tag:
                    await self._stop(cid, StopReason.Local, id_tag=id_tag)
                    self.notify_status(cid)
                    return "stopped"
                self.on_event(f"card {id_tag} may not stop the transaction on connector {cid}")
                return "not allowed to stop"
            if not conn.operative or conn.faulted or not self.operative:
                self.on_event(f"connector {cid} is not available; card ignored")
                return "unavailable"
            if conn.pending is not None and conn.pending.id_tag == id_tag:
                conn.pending = None
                self._cancel_timer(cid)
                self.notify_status(cid)
                return "cancelled"
            info = await self.authorize(id_tag)
            if info.status != "Accepted":
                self.on_event(f"card {id_tag} rejected ({info.status})")
                return "rejected"
            self.on_event(f"card {id_tag} accepted")
            pending = PendingAuthorization(id_tag, info.parent_id_tag, 0.0)
            if conn.plugged:
                await self._start(cid, id_tag, info.parent_id_tag, pending)
            else:
                self._wait_for_cable(cid, pending)
            self.notify_status(cid)
            return "accepted"

    def _wait_for_cable(self, cid: int, pending: PendingAuthorization) -> None:
        conn = self.connectors[cid]
        conn.pending = pending
        self._cancel_timer(cid)
        timeout = max(1.0, self.settings.connection_timeout_s)
        self._timers[cid] = asyncio.get_running_loop().call_later(timeout, self._cable_timeout, cid)
        self.on_event(f"waiting up to {timeout:.0f} s for the cable at connector {cid}")

    def _cancel_timer(self, cid: int) -> None:
        t = self._timers.pop(cid, None)
        if t is not None:
            t.cancel()

    def _cable_timeout(self, cid: int) -> None:
        conn = self.connectors[cid]
        if conn.pending is not None and conn.transaction is None:
            self.on_event(f"no cable at connector {cid} in time: authorization dropped")
            conn.pending = None
            self.notify_status(cid)

    # -- transactions ------------------------------------------------------------------------
    async def _start(self, cid: int, id_tag: str, parent: str | None, pending: PendingAuthorization) -> None:
        conn, hw = self.connectors[cid], self.hw[cid]
        self._cancel_timer(cid)
        conn.pending = None
        conn.finishing = False
        if not await self._lock_hw(cid):
            self.on_event(f"connector {cid}: lock failed, transaction not started")
            conn.faults["ConnectorLockFailure"] = "lock did not close"
            self.notify_status(cid)
            return
        reading = await self.read_meter(cid)
        start_wh = int(reading.energy_import_wh) if reading else 0
        tx = Transaction(
            local_id=self.store.next_local_tx(),
            connector_id=cid,
            id_tag=id_tag,
            meter_start_wh=start_wh,
            started_at=self.clock.now(),
            parent_id_tag=parent,
            remote=pending.remote,
            charging_profile=pending.charging_profile,
            meter_last_wh=start_wh,
        )
        conn.transaction = tx
        self.save_transaction(tx)
        self.on_event(f"transaction started on connector {cid} for {id_tag} (meter {start_wh} Wh)")
        if self.adapter is not None:
            self.adapter.transaction_started(tx)
        if conn.reservation is not None:
            conn.reservation = None
        await self._energize(cid)
        _ = hw

    async def _energize(self, cid: int) -> None:
        conn, hw = self.connectors[cid], self.hw[cid]
        if conn.transaction is None or not conn.plugged or conn.faulted or conn.ev_comm_error:
            return
        limit = self.offered_current(cid)
        tx = conn.transaction
        conn.limited_to_zero = limit <= 0 or (tx.deauthorized and not self._invalid_id_allowance_left(tx))
        if conn.limited_to_zero:
            await hw.pilot.offer(0)
            conn.energy_offered = False
            return
        # IEC 61851-1: offer the current with the PWM first; the contactor closes only when the EV
        # asks for energy (state C), never with the EV in state B (see _apply_contactor)
        await hw.pilot.offer(limit)
        conn.energy_offered = True
        # the pilot knows best whether the EV already asks for energy (a simulated EV answers at once)
        state = getattr(hw.pilot, "state", None)
        if state is not None:
            conn.ev_requesting = state in (CpState.C, CpState.D)
            conn.ventilation_required = state is CpState.D
        await self._apply_contactor(cid)

    async def _apply_contactor(self, cid: int) -> None:
        """Close the contactor exactly when energy may flow: a transaction, current offered, the EV in
        state C (D needs ventilation, which this station does not have), no fault; else open it."""
        conn, hw = self.connectors[cid], self.hw[cid]
        want = (
            conn.transaction is not None
            and conn.plugged
            and conn.energy_offered
            and conn.ev_requesting
            and not conn.ventilation_required
            and not conn.limited_to_zero
            and not conn.faulted
            and not conn.ev_comm_error
        )
        if want and not hw.relay.closed:
            if not await self._safe(hw.relay.set(True), cid):
                conn.energy_offered = False
                await hw.pilot.offer(None)
        elif not want and hw.relay.closed:
            await self._safe(hw.relay.set(False), cid)

    async def _deenergize(self, cid: int) -> None:
        conn, hw = self.connectors[cid], self.hw[cid]
        await hw.pilot.offer(None)
        await self._safe(hw.relay.set(False), cid)
        conn.energy_offered = False

    def offered_current(self, cid: int) -> float:
        evse = self.evses[cid]
        limit = self.limits_a.get(cid)
        return evse.max_current_a if limit is None else max(0.0, min(limit, evse.max_current_a))

    async def set_limit(self, cid: int, amps: float | None) -> None:
        """Apply a charging limit (smart charging); ``None`` removes it."""
        self.limits_a[cid] = amps
        conn = self.connectors[cid]
        if conn.transaction is not None and conn.plugged:
            async with self._locks[cid]:
                await self._energize(cid)
                self.notify_status(cid)

    async def _stop(
        self, cid: int, reason: StopReason, id_tag: str | None = None, unlock: bool = True
    ) -> Transaction | None:
        conn = self.connectors[cid]
        tx = conn.transaction
        if tx is None:
            return None
        conn.transaction = None  # first, so that a fault raised while switching off cannot stop it twice
        conn.finishing = conn.plugged  # and a status reported meanwhile is Finishing, not Preparing
        await self._deenergize(cid)
        reading = await self.read_meter(cid)
        tx.meter_stop_wh = int(reading.energy_import_wh) if reading else (tx.meter_last_wh or tx.meter_start_wh)
        tx.stopped_at = self.clock.now()
        tx.stop_reason = reason
        tx.stop_id_tag = id_tag
        conn.limited_to_zero = False
        conn.finishing = conn.plugged
        self.save_transaction(tx)
        self.on_event(
            f"transaction on connector {cid} stopped ({reason}); {tx.energy_wh()} Wh delivered"
        )
        if self.adapter is not None:
            self.adapter.transaction_stopped(tx)
        if unlock:
            await self._unlock_hw(cid)
        if conn.scheduled_operative is not None:
            self._set_operative(cid, conn.scheduled_operative)
            conn.scheduled_operative = None
        return tx

    async def _checkpoint_loop(self) -> None:
        """Save running transactions now and then (meter, time), whatever MeterValueSampleInterval
        says, so that a power cut loses at most this much: the PowerLoss StopTransaction carries
        the time and meter of the last checkpoint."""
        while True:
            await asyncio.sleep(self.checkpoint_interval_s)
            for cid, conn in self.connectors.items():
                # idle connectors too: a meter that died is reported before the next driver comes
                await self.read_meter(cid)
                if conn.transaction is not None:
                    self.save_transaction(conn.transaction)

    def save_transaction(self, tx: Transaction) -> None:
        data = {
            "meter_start_wh": tx.meter_start_wh,
            "started_at": iso(tx.started_at),
            "parent_id_tag": tx.parent_id_tag,
            "reservation_id": tx.reservation_id,
            "meter_last_wh": tx.meter_last_wh,
            "last_seen": iso(self.clock.now()),
            "samples": tx.samples,
        }
        self.store.tx_save(tx.local_id, tx.connector_id, tx.id_tag, data, open_=tx.active)

    async def _recover_transactions(self) -> None:
        """Transactions still open in the store were cut by a power loss: end them now (PowerLoss)."""
        for local_id, cid, id_tag, data, tx_id in self.store.tx_open():
            tx = Transaction(
                local_id=local_id,
                connector_id=cid,
                id_tag=id_tag,
                meter_start_wh=data["meter_start_wh"],
                started_at=parse_iso(data["started_at"]),
                parent_id_tag=data.get("parent_id_tag"),
                transaction_id=tx_id,
                meter_last_wh=data.get("meter_last_wh"),
                samples=data.get("samples", []),
            )
            tx.meter_stop_wh = tx.meter_last_wh if tx.meter_last_wh is not None else tx.meter_start_wh
            # no energy flows while the power is off: the meter register now says what was delivered
            reading = await self.read_meter(cid) if cid in self.connectors else None
            if reading is not None:
                tx.meter_stop_wh = max(tx.meter_stop_wh, int(reading.energy_import_wh))
            tx.stopped_at = parse_iso(data.get("last_seen", data["started_at"]))
            tx.stop_reason = StopReason.PowerLoss
            self.store.tx_save(local_id, cid, id_tag, data, open_=False)
            self.log.warning("transaction %d on connector %d was cut by a power loss: ending it", local_id, cid)
            self.on_event(f"transaction on connector {cid} was cut by a power loss; reporting its end")
            if self.adapter is not None:
                self.adapter.transaction_stopped(tx)
            if cid in self.connectors:
                self.connectors[cid].finishing = self.connectors[cid].plugged

    def on_start_result(self, tx: Transaction, info: IdTagInfo) -> None:
        """The CSMS answered StartTransaction: record its idTagInfo and act on a refusal."""
        self.remember(tx.id_tag, info)
        conn = self.connectors.get(tx.connector_id)
        if info.status == "Accepted" or conn is None or conn.transaction is not tx:
            return
        self.on_event(f"CSMS refused {tx.id_tag} for the running transaction ({info.status})")
        if self.settings.stop_on_invalid_id:
            self.spawn(self._locked_stop(tx.connector_id, StopReason.DeAuthorized))
        else:
            # StopTransactionOnInvalidId=false: the transaction goes on, but energy only up to
            # MaxEnergyOnInvalidId (0: none at all) - SuspendedEVSE once used up
            tx.deauthorized = True
            self.spawn(self._locked_energize(tx.connector_id))
            if self._invalid_id_allowance_left(tx):
                self.spawn(self._watch_invalid_id_allowance(tx))

    def _invalid_id_allowance_left(self, tx: Transaction) -> bool:
        """MaxEnergyOnInvalidId: may a transaction whose idTag the CSMS refused still take energy?"""
        cap = self.settings.max_energy_on_invalid_id_wh
        return bool(cap) and tx.energy_wh() < (cap or 0)

    async def _watch_invalid_id_allowance(self, tx: Transaction) -> None:
        cid = tx.connector_id
        while tx.active and self.connectors[cid].transaction is tx:
            await self.read_meter(cid)
            if not self._invalid_id_allowance_left(tx):
                self.on_event(f"connector {cid}: MaxEnergyOnInvalidId reached, energy stopped")
                await self._locked_energize(cid)
                return
            await asyncio.sleep(0.5)

    async def _locked_stop(self, cid: int, reason: StopReason, id_tag: str | None = None) -> Transaction | None:
        async with self._locks[cid]:
            tx = await self._stop(cid, reason, id_tag=id_tag)
            self.notify_status(cid)
            return tx

    async def _locked_energize(self, cid: int) -> None:
        async with self._locks[cid]:
            await self._energize(cid)
            self.notify_status(cid)

    # -- commands from the CSMS --------------------------------------------------------------
    def find_transaction(self, pred: Callable[[Transaction], bool]) -> Transaction | None:
        for conn in self.connectors.values():
            if conn.transaction is not None and pred(conn.transaction):
                return conn.transaction
        return None

    async def remote_start(self, cid: int | None, id_tag: str, profile: dict | None = None) -> bool:
        if cid is None:
            cid = next((c for c, conn in self.connectors.items() if conn.available_for_new_session), None)
            if cid is None:
                return False
        conn = self.connectors.get(cid)
        if conn is None or not conn.available_for_new_session or not self.operative:
            return False
        self.spawn(self._remote_start(cid, id_tag, profile))
        return True

    async def _remote_start(self, cid: int, id_tag: str, profile: dict | None) -> None:
        conn = self.connectors[cid]
        async with self._locks[cid]:
            self.on_event(f"remote start for {id_tag} on connector {cid}")
            parent = None
            if self.settings.authorize_remote_tx_requests:
                info = await self.authorize(id_tag)
                if info.status != "Accepted":
                    self.on_event(f"remote start refused: {id_tag} is {info.status}")
                    return
                parent = info.parent_id_tag
            if conn.transaction is not None:
                return
            pending = PendingAuthorization(id_tag, parent, 0.0, remote=True, charging_profile=profile)
            if conn.plugged:
                await self._start(cid, id_tag, parent, pending)
            else:
                self._wait_for_cable(cid, pending)
            self.notify_status(cid)

    async def remote_stop(self, tx: Transaction) -> None:
        self.spawn(self._locked_stop(tx.connector_id, StopReason.Remote))

    async def unlock(self, cid: int) -> str:
        """UnlockConnector: end a running transaction first, then release the plug."""
        conn = self.connectors[cid]
        if self.evses[cid].fixed_cable:
            return "NotSupported"
        async with self._locks[cid]:
            if conn.transaction is not None:
                await self._stop(cid, StopReason.UnlockCommand, unlock=False)
            ok = await self._unlock_hw(cid)
            self.notify_status(cid)
        return "Unlocked" if ok else "UnlockFailed"

    def change_availability(self, cid: int, operative: bool) -> str:
        targets = list(self.connectors) if cid == 0 else [cid]
        scheduled = False
        if cid == 0:
            self.operative = operative
            self.store.put("availability", "0", operative)
        for c in targets:
            conn = self.connectors[c]
            if conn.transaction is not None and not operative:
                conn.scheduled_operative = operative
                # persisted now: a power cut ends the transaction (PowerLoss), so after the reboot
                # the change is due and must not be forgotten (TC_034)
                self.store.put("availability", str(c), operative)
                scheduled = True
            else:
                conn.scheduled_operative = None  # a newer request replaces a scheduled one
                self._set_operative(c, operative)
        if cid == 0:
            self.notify_status(0)
        return "Scheduled" if scheduled else "Accepted"

    def _set_operative(self, cid: int, operative: bool) -> None:
        conn = self.connectors[cid]
        conn.operative = operative
        self.store.put("availability", str(cid), operative)
        if not operative and conn.pending is not None:
            conn.pending = None
            self._cancel_timer(cid)
        self.notify_status(cid)

    async def stop_all(self, reason: StopReason) -> list[Transaction]:
        stopped = []
        for cid in self.connectors:
            async with self._locks[cid]:
                tx = await self._stop(cid, reason)
                if tx is not None:
                    stopped.append(tx)
                self.notify_status(cid)
        return stopped

    async def reset(self, kind: str) -> None:
        """Reset Soft / Hard: end transactions with the right reason, then ask for a restart."""
        reason = StopReason.HardReset if kind == "Hard" else StopReason.SoftReset
        self.on_event(f"{kind} reset requested")
        await self.stop_all(reason)
        if self.restart_request is not None and not self.restart_request.done():
            self.restart_request.set_result(kind)

    # -- hardware helpers --------------------------------------------------------------------
    async def read_meter(self, cid: int) -> MeterReading | None:
        hw = self.hw[cid]
        try:
            reading = await hw.meter.read()
        except HalError as e:
            if "PowerMeterFailure" not in self.connectors[cid].faults:
                self.log.error("meter of connector %d: %s", cid, e)
                await self._set_fault(cid, "PowerMeterFailure", True, "meter not answering")
            return self.meter_cache.get(cid)
        if "PowerMeterFailure" in self.connectors[cid].faults:
            await self._set_fault(cid, "PowerMeterFailure", False)
        self.meter_cache[cid] = reading
        tx = self.connectors[cid].transaction
        if tx is not None:
            tx.meter_last_wh = int(reading.energy_import_wh)
        return reading

    async def _lock_hw(self, cid: int) -> bool:
        try:
            return await self.hw[cid].lock.lock()
        except HalError as e:
            self.log.error("lock of connector %d: %s", cid, e)
            return False

    async def _unlock_hw(self, cid: int) -> bool:
        try:
            ok = await self.hw[cid].lock.unlock()
        except HalError as e:
            self.log.error("unlock of connector %d: %s", cid, e)
            ok = False
        if not ok:
            self.on_event(f"connector {cid}: unlock failed")
        elif "ConnectorLockFailure" in self.connectors[cid].faults:
            # the lock moves again (repaired, cable out): the connector is usable again (Faulted -> Available)
            await self._set_fault(cid, "ConnectorLockFailure", False)
        return ok

    async def _safe(self, op: Awaitable, cid: int) -> bool:
        try:
            await op
            return True
        except HalError as e:
            self.log.error("connector %d: %s", cid, e)
            await self._set_fault(cid, e.error_code, True, str(e))
            return False

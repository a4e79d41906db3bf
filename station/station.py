"""One charging station: the asyncio driver of the per-EVSE sessions (station/core/session.py).

The sessions decide; this driver feeds them hardware events (cable, CP state, card, faults),
commands of the OCPP adapter (remote start/stop, unlock, availability, reset, limits) and the
results of what they asked for, and carries out their effects on the hal, the store and the
adapter, in order. It is version independent: it never builds an OCPP message. One object per
station, no module-level state, so thousands can share one process.

Each EVSE has two lanes of effects. A batch that takes energy away (stop offering, open the
contactor) goes to the urgent lane and starts at once; everything else runs in order in the
normal lane. Just before an effect that gives energy (offer a current, close the contactor, lock
for a start) the session is asked whether it still wants it, so an older command never undoes a
newer stop. Authorization runs beside the lanes: nothing waits for the CSMS while holding an EVSE.

Timers (connection timeout, MaxEnergyOnInvalidId checks, checkpoints) are one-shot timers of the
station's clock when it is a Scheduler (station/scheduler.py), else of the running loop,
re-armed when they fire; no polling loops.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from hal.board import EvseHardware
from hal.types import CpState, Fault, HalError, IdToken, MeterReading
from station.core import model as m
from station.core.auth import IdTagInfo, IdTagMap, Verdict, decide, list_conflict, same_id_tag
from station.core.clock import Clock, iso, parse_iso
from station.core.evse import Connector, Evse, station_state
from station.core.evse import Reservation as Hold
from station.core.model import PILOT_FAULT_INFO, ConnectorState, is_urgent
from station.core.reservation import Condition, Reservation, ReservationBook, ReservationStatus, may_use
from station.core.session import Session
from station.core.settings import Settings
from station.core.transaction import StopReason, Transaction
from station.store import AUTH_CACHE_MAX, Store
from station.tasks import Tasks

__all__ = ["Adapter", "Station", "PILOT_FAULT_INFO"]

RESERVATION_NS = "reservation"  # store key/value namespace: reservation id -> Reservation.to_store()
_RESERVATION_TIMER = ("reservation_expiry", 0)


class Adapter(Protocol):
    settings: Settings

    @property
    def online(self) -> bool: ...
    # token_type: the IdToken's type, for a version whose Authorize carries it (2.0.1)
    async def authorize(self, id_tag: str, token_type: str | None = None) -> IdTagInfo | None: ...
    def status_changed(self, connector_id: int, state: ConnectorState, fault: str | None, info: str) -> None: ...
    def transaction_started(self, tx: Transaction) -> None: ...
    def transaction_stopped(self, tx: Transaction) -> None: ...
    # optional: ``domain_event(event: station.core.model.DomainEvent) -> None`` gets every domain
    # event (EV connected, authorized, power path closed, energy transfer started/stopped, ...)
    # optional: ``local_list_conflict(id_tag: str, listed: IdTagInfo, answer: IdTagInfo) -> None``:
    # the CSMS answered about an idTag of the local list with another status


_AT_ONCE = (m.StartTimer, m.CancelTimer, m.ReportStatus, m.Reply, m.Note, m.DomainEvent)


@dataclass
class _Lane:
    name: str
    queue: deque[m.Effect] = field(default_factory=deque)
    task: asyncio.Task | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()


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
        # connector number (1.6 connectorId) -> its facts; with one connector per EVSE it is numbered
        # like the EVSE, with several the station numbers them in order (see station.config)
        self.connectors: dict[int, Connector] = {c.connector_id: c for e in evses for c in e.connectors}
        self.hw = hardware
        self.store = store
        self.clock = clock
        self.log = log
        self.adapter: Adapter | None = None
        self.settings = Settings()
        self.operative: bool = bool(store.get("availability", "0", True))
        self.station_faults: dict[str, str] = {}
        # idTags are case-insensitive: both are found whatever the case presented
        self.cache: IdTagMap[IdTagInfo] = IdTagMap((k, IdTagInfo(**v)) for k, v in store.auth_all("cache").items())
        self.local_list: IdTagMap[IdTagInfo] = IdTagMap((k, IdTagInfo(**v)) for k, v in store.auth_all("local").items())
        self.meter_cache: dict[int, MeterReading] = {}
        self.limits_a: dict[int, float | None] = {}
        self.limits_phases: dict[int, int] = {}  # EVSE id -> phases of its charging limit
        self.restart_request: asyncio.Future[str] | None = None
        self.sessions: dict[int, Session] = {e.evse_id: Session(e, self.settings) for e in evses}
        # connector number -> (EVSE id, the connector's number within its EVSE, from 1)
        self._evse_of: dict[int, int] = {c.connector_id: e.evse_id for e in evses for c in e.connectors}
        self._local_of: dict[int, int] = {c.connector_id: n for e in evses for n, c in enumerate(e.connectors, 1)}
        self._global: dict[tuple[int, int], int] = {(self._evse_of[c], n): c for c, n in self._local_of.items()}
        self._lanes: dict[int, tuple[_Lane, _Lane]] = {
            e.evse_id: (_Lane(f"evse {e.evse_id} urgent"), _Lane(f"evse {e.evse_id}")) for e in evses
        }
        self._timers: dict[tuple[str, int], Any] = {}
        self._replies: dict[int, asyncio.Future[str]] = {}
        self._ending: dict[int, int] = {}  # connector -> EndTransaction effects not carried out yet
        self._ids = itertools.count(1)
        self.tasks = Tasks(log, "station")
        self.spawn = self.tasks.spawn
        self._last_status: dict[int, tuple[ConnectorState, str | None]] = {}
        self.checkpoint_interval_s = 5.0  # running transactions are saved at least this often
        self.on_event: Callable[[str], None] = lambda text: None  # human-readable events (demo, logs)
        self._stopped = False
        for cid, conn in self.connectors.items():
            conn.operative = bool(store.get("availability", str(cid), True))
        for s in self.sessions.values():
            s.station_operative = self.operative
        self.reservations = ReservationBook()
        # told when a reservation ends unused: "Expired" (its time passed) or "Removed" (its connector
        # became Faulted or Unavailable, when ``reservations_follow_availability``); 2.0.1 reports
        # them (ReservationStatusUpdate), 1.6 has nothing to say
        self.reservation_ended: Callable[[Reservation, str], None] = lambda r, why: None
        self.reservations_follow_availability = False
        # a cable in (no driver yet) makes the connector Occupied for ReserveNow (2.0.1 shows it
        # Occupied; 1.6 reserves a Preparing connector)
        self.reservations_cable_occupies = False
        for key, value in store.items(RESERVATION_NS).items():
            try:
                r = Reservation.from_store(int(key), value)
            except (KeyError, TypeError, ValueError, AttributeError):
                log.error("stored reservation %r is unreadable (%r): dropped", key, value)
                store.delete(RESERVATION_NS, key)
                continue
            if r.connector_id and r.connector_id not in self.connectors:
                log.error("stored reservation %d names connector %d, which this station does not have: dropped",
                          r.reservation_id, r.connector_id)
                store.delete(RESERVATION_NS, key)
                continue
            self.reservations.add(r)

    # -- life cycle --------------------------------------------------------------------------
    def attach(self, adapter: Adapter) -> None:
        self.adapter = adapter
        self.settings = adapter.settings
        for s in self.sessions.values():
            s.settings = adapter.settings

    async def start(self) -> None:
        self.restart_request = asyncio.get_running_loop().create_future()
        for cid, conn in self.connectors.items():
            hw = self.hw[self._evse_of[cid]]
            pilot = self._pilot(cid)
            state = getattr(pilot, "state", CpState.A)
            conn.plugged = state in (CpState.B, CpState.C, CpState.D)
            conn.ev_requesting = state in (CpState.C, CpState.D)
            if state in (CpState.E, CpState.F):
                conn.faults[m.FaultKind.Other] = f"{PILOT_FAULT_INFO} {state}"
            # faults the devices reported before this station object existed (start-up, a reset)
            for code, info in getattr(hw, "active_faults", {}).items():
                conn.faults.setdefault(code, info[:50])
            try:
                await pilot.offer(None)
                if hw.relay.closed:
                    await hw.relay.set(False)
            except HalError as e:
                self.log.error("connector %d: %s", cid, e)
                conn.faults.setdefault(e.error_code, str(e)[:50])
        await self._recover_transactions()
        self._reservations_due(notify=False)  # expired while the station was off: gone; the rest re-armed
        for cid in self.connectors:
            self.notify_status(cid, force=True)
        self.notify_status(0, force=True)
        self._arm_checkpoint()

    async def stop(self) -> None:
        self._stopped = True
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()
        for lanes in self._lanes.values():
            for lane in lanes:
                lane.queue.clear()
                if lane.task is not None:
                    lane.task.cancel()
        for fut in self._replies.values():
            fut.cancel()
        self.tasks.cancel_all()

    # -- status ------------------------------------------------------------------------------
    def status_of(self, connector_id: int) -> tuple[ConnectorState, str | None]:
        """The connector's state and the fault it reports (None: nothing wrong); 0: the station."""
        if connector_id == 0:
            st = station_state(self.operative, self.station_faults)
            return st, next(iter(self.station_faults), None)
        conn = self.connectors[connector_id]
        return self._session(connector_id).state_of(connector_id), conn.reported_fault

    def notify_status(self, connector_id: int, force: bool = False, announce: str | None = None) -> None:
        """Report the connector's state if it changed. ``announce``: a warning-level fault just
        raised while an older one is still active; 1.6 carries one errorCode per
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
        if connector_id and error is not None:
            info = self.connectors[connector_id].faults.get(error, "")
        said = status.label + ("" if error is None else f" ({error})")
        self.log.info("connector %d: %s", connector_id, said)
        if connector_id:
            self.on_event(f"connector {connector_id} is now {said}")
        if self.adapter is not None:
            self.adapter.status_changed(connector_id, status, error, info)
        self._publish(m.StatusChanged(connector_id, status, error, info))

    # -- feeding the sessions ------------------------------------------------------------------
    def _session(self, cid: int) -> Session:
        return self.sessions[self._evse_of[cid]]

    def _feed(self, cid: int, event: m.Event) -> None:
        """Hand one event to the connector's session and queue its effects (at once when urgent)."""
        session = self._session(cid)
        effects = session.handle(event, self.clock.now())
        # what must survive a power cut is written at once, before the caller answers anyone
        # (ChangeAvailability Scheduled, TC_034); the order of store writes among themselves is kept
        for e in effects:
            if isinstance(e, m.Persist):
                self.store.put(e.kind, e.key, e.value)
        effects = [e for e in effects if not isinstance(e, m.Persist)]
        if not effects:
            return
        self._note_ending(effects)
        urgent, normal = self._lanes[session.evse.evse_id]
        lane = urgent if is_urgent(effects) else normal
        if not lane.running and not lane.queue:
            # an idle lane: what needs no waiting (status, timers, replies, notes) is done now
            while effects and isinstance(effects[0], _AT_ONCE):
                self._execute_now(effects.pop(0))
        if effects:
            lane.queue.extend(effects)
            self._kick(session, lane)

    def _continue(self, session: Session, lane: _Lane, event: m.Event) -> None:
        """The result of an effect: its consequences run next in the same lane, before the rest."""
        effects = session.handle(event, self.clock.now())
        self._note_ending(effects)
        lane.queue.extendleft(reversed(effects))

    def _note_ending(self, effects: list[m.Effect]) -> None:
        """A transaction being ended: its connector's status waits for the end to be announced (the
        adapter hears 'transaction stopped' before 'Finishing'), whichever lane reports first."""
        for e in effects:
            if isinstance(e, m.EndTransaction):
                self._ending[e.connector_id] = self._ending.get(e.connector_id, 0) + 1

    def _kick(self, session: Session, lane: _Lane) -> None:
        if not lane.running and not self._stopped:
            lane.task = asyncio.get_running_loop().create_task(self._drain(session, lane), name=lane.name)

    async def _drain(self, session: Session, lane: _Lane) -> None:
        while lane.queue:
            effect = lane.queue.popleft()
            try:
                await self._execute(session, lane, effect)
            except asyncio.CancelledError:
                raise
            except Exception:  # one effect that went wrong must not stop the EVSE's lane
                self.log.exception("%s: %s failed", lane.name, type(effect).__name__)

    async def _settled(self, cid: int) -> None:
        """Wait until everything queued for the connector's EVSE has been carried out."""
        me = asyncio.current_task()
        lanes = self._lanes[self._evse_of[cid]]
        while True:
            busy = [lane.task for lane in lanes if lane.running and lane.task is not me]
            if not busy:
                return
            await asyncio.wait(busy)  # type: ignore[arg-type]

    def _request(self) -> tuple[int, asyncio.Future[str]]:
        rid = next(self._ids)
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._replies[rid] = fut
        return rid, fut

    async def _ask(self, cid: int, event: m.Event, rid: int, fut: asyncio.Future[str]) -> str:
        try:
            self._feed(cid, event)
            word = await fut
            await self._settled(cid)
            return word
        finally:
            self._replies.pop(rid, None)

    # -- carrying out effects ------------------------------------------------------------------
    def evse_of(self, cid: int) -> Evse:
        """The EVSE connector ``cid`` belongs to."""
        return self.evses[self._evse_of[cid]]

    def _connector_hw(self, cid: int) -> Any:
        return self.hw[self._evse_of[cid]].connector(self._local_of[cid])

    def _pilot(self, cid: int) -> Any:
        return self._connector_hw(cid).pilot

    async def _execute(self, session: Session, lane: _Lane, e: m.Effect) -> None:
        if not session.wants(e):
            if isinstance(e, m.Unlock):  # refused (the power path may be live): the command fails
                self._continue(session, lane, m.UnlockResult(e.connector_id, False, e.request_id))
            return
        if isinstance(e, m.SetPilot):
            if await self._offer(session, lane, e) and not e.amps:
                # taking the offer away is never skipped; if a newer command (in the other lane) wants
                # a current again by now, that is what the pilot ends with
                target = session.pilot.get(e.connector_id)
                again = m.SetPilot(e.connector_id, target)
                if target and session.wants(again):
                    await self._offer(session, lane, again)
        elif isinstance(e, m.SetContactor):
            if await self._switch(session, lane, e) and not e.closed and session.wants(m.SetContactor(True)):
                await self._switch(session, lane, m.SetContactor(True))  # a newer close came in meanwhile
        elif isinstance(e, m.PrepareTransaction):
            cid = e.connector_id
            if not await self._lock_hw(cid):
                self._continue(session, lane, m.TransactionPrepared(cid, False))
                return
            reading = await self._read_meter(cid)
            start_wh = int(reading.energy_import_wh) if reading else 0
            self._continue(session, lane, m.TransactionPrepared(cid, True, start_wh, self.store.next_local_tx()))
        elif isinstance(e, m.Unlock):
            ok = await self._unlock_hw(e.connector_id)
            self._continue(session, lane, m.UnlockResult(e.connector_id, ok, e.request_id))
        elif isinstance(e, m.AskAuthorization):
            self.spawn(self._authorize_for(e))
        elif isinstance(e, m.ReadMeter):
            await self._read_meter(e.connector_id)
        elif isinstance(e, m.BeginTransaction):
            tx = e.transaction
            with self.store.atomic():  # the transaction and its StartTransaction: both or neither
                used = self._reservation_used(tx)
                self.save_transaction(tx)
                if self.adapter is not None:
                    self.adapter.transaction_started(tx)
            if used:
                self._reservations_changed()
            self.on_event(f"transaction started on connector {tx.connector_id} for {tx.id_tag} (meter {tx.meter_start_wh} Wh)")
            self._publish(m.TransactionStarted(tx))
        elif isinstance(e, m.EndTransaction):
            try:
                await self._end_transaction(e.transaction)
            finally:
                left = self._ending.get(e.connector_id, 1) - 1
                if left > 0:
                    self._ending[e.connector_id] = left
                else:
                    self._ending.pop(e.connector_id, None)
        else:
            self._execute_now(e)

    def _execute_now(self, e: m.Effect) -> None:
        """The effects that need no waiting."""
        if isinstance(e, m.Persist):
            self.store.put(e.kind, e.key, e.value)
        elif isinstance(e, m.StartTimer):
            self._arm(e.name, e.connector_id, e.delay_s)
        elif isinstance(e, m.CancelTimer):
            t = self._timers.pop((e.name, e.connector_id), None)
            if t is not None:
                t.cancel()
        elif isinstance(e, m.ReportStatus):
            self._project_reservations()
            if e.connector_id not in self._ending:  # else reported by the ending batch, after the end
                self.notify_status(e.connector_id, announce=e.announce)
            # the other connectors of the EVSE follow its power path (Unavailable while it serves this one)
            for other in self._session(e.connector_id).connectors:
                if other != e.connector_id and other not in self._ending:
                    self.notify_status(other)
        elif isinstance(e, m.Reply):
            fut = self._replies.get(e.request_id)
            if fut is not None and not fut.done():
                fut.set_result(e.value)
        elif isinstance(e, m.Note):
            self.on_event(e.text)
        elif isinstance(e, m.DomainEvent):
            self._publish(e)
        else:
            raise TypeError(f"unknown effect {e!r}")

    async def _offer(self, session: Session, lane: _Lane, e: m.SetPilot) -> bool:
        try:
            await self._pilot(e.connector_id).offer(e.amps)
            return True
        except HalError as err:
            self.log.error("connector %d: %s", e.connector_id, err)
            self._continue(session, lane, m.HardwareFailed(e.connector_id, e, err.error_code, str(err)))
            return False

    async def _switch(self, session: Session, lane: _Lane, e: m.SetContactor) -> bool:
        try:
            await self.hw[session.evse.evse_id].relay.set(e.closed)
            return True
        except HalError as err:
            cid = session.active_connector()
            self.log.error("connector %d: %s", cid, err)
            self._continue(session, lane, m.HardwareFailed(cid, e, err.error_code, str(err)))
            return False

    def _publish(self, event: m.DomainEvent) -> None:
        hook = getattr(self.adapter, "domain_event", None)
        if hook is not None:
            hook(event)

    async def _end_transaction(self, tx: Transaction) -> None:
        cid = tx.connector_id
        reading = await self._read_meter(cid)
        tx.meter_stop_wh = int(reading.energy_import_wh) if reading else (tx.meter_last_wh or tx.meter_start_wh)
        with self.store.atomic():  # closed in the store and its StopTransaction queued: both or neither
            self.save_transaction(tx)
            if self.adapter is not None:
                self.adapter.transaction_stopped(tx)
        self.on_event(f"transaction on connector {cid} stopped ({tx.stop_reason.label if tx.stop_reason else 'Other'}); {tx.energy_wh()} Wh delivered")
        self._publish(m.TransactionStopped(tx))

    async def _authorize_for(self, e: m.AskAuthorization) -> None:
        try:
            info = await self.authorize(e.token.value, e.token.type)
        except Exception:
            self.log.exception("authorization of %s failed; treated as Invalid", e.token.value)
            info = IdTagInfo("Invalid")
        self._feed(e.connector_id, m.AuthorizationResult(e.request_id, info))

    def _arm(self, name: str, cid: int, delay: float) -> None:
        old = self._timers.pop((name, cid), None)
        if old is not None:
            old.cancel()
        self._timers[(name, cid)] = self._call_later(delay, self._timer_fired, name, cid)

    def _call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Any:
        call_later = getattr(self.clock, "call_later", None)
        if call_later is None:
            return asyncio.get_running_loop().call_later(max(0.0, delay), fn, *args)
        return call_later(delay, fn, *args)

    def _timer_fired(self, name: str, cid: int) -> None:
        self._timers.pop((name, cid), None)
        if not self._stopped:
            self._feed(cid, m.TimerFired(name, cid))

    def _arm_checkpoint(self) -> None:
        if not self._stopped:
            self._timers[("checkpoint", 0)] = self._call_later(
                self.checkpoint_interval_s, lambda: self.spawn(self._checkpoint())
            )

    async def _checkpoint(self) -> None:
        """Save running transactions now and then (meter, time), whatever MeterValueSampleInterval
        says, so that a power cut loses at most this much: the PowerLoss StopTransaction carries
        the time and meter of the last checkpoint. A re-armed one-shot timer."""
        try:
            for cid, conn in self.connectors.items():
                # idle connectors too: a meter that died is reported before the next driver comes
                await self._read_meter(cid)
                if conn.transaction is not None:
                    self.save_transaction(conn.transaction)
        finally:
            self._arm_checkpoint()

    # -- hardware events ---------------------------------------------------------------------
    def cp_state(self, evse_id: int, state: CpState, connector_id: int = 1) -> None:
        """The pilot of connector ``connector_id`` (its number within the EVSE) reads a new CP state."""
        cid = self._global[(evse_id, connector_id)]
        self._feed(cid, m.CpStateChanged(cid, state))

    def token(self, evse_id: int, token: IdToken) -> None:
        """A card at the EVSE's reader: for the connector whose transaction it started, else the
        one with a cable and no transaction, else the first."""
        self.spawn(self.present_id_tag(self._card_connector(evse_id, token.id_token), token.id_token, token.type))

    def _card_connector(self, evse_id: int, id_tag: str) -> int:
        conns = [self.connectors[c.connector_id] for c in self.evses[evse_id].connectors]
        for pick in (
            lambda c: c.transaction is not None and same_id_tag(c.transaction.id_tag, id_tag),
            lambda c: c.transaction is not None,
            lambda c: c.plugged and c.transaction is None,
        ):
            found = next((c for c in conns if pick(c)), None)
            if found is not None:
                return found.connector_id
        return conns[0].connector_id

    def fault(self, evse_id: int, fault: Fault) -> None:
        """A device fault: of one connector's pilot or lock, or (connector 0) of the whole EVSE."""
        local = getattr(fault, "connector_id", 0)
        if local:
            targets = [self._global[(evse_id, local)]]
        else:
            targets = [c.connector_id for c in self.evses[evse_id].connectors]
        for cid in targets:
            self._feed(cid, m.FaultChanged(cid, fault.error_code, fault.active, fault.info))

    # -- authorization -----------------------------------------------------------------------
    async def authorize(self, id_tag: str, token_type: str | None = None) -> IdTagInfo:
        """Decide on an id tag presented locally: cache, local list, CSMS, offline rules.
        ``token_type`` (the IdToken's type) goes to an adapter that asks with it (2.0.1)."""
        online = self.adapter is not None and self.adapter.online
        d = decide(id_tag, online, self.settings.auth, self.local_list, self.cache, self.clock.now(), token_type)
        if d.verdict is Verdict.ASK_CSMS:
            info = await self.adapter.authorize(id_tag, token_type) if self.adapter is not None else None
            if info is not None:
                self.check_list_conflict(id_tag, info)
                self.remember(id_tag, info)
                return info
            d = decide(id_tag, False, self.settings.auth, self.local_list, self.cache, self.clock.now())
        if d.info is not None and d.verdict is Verdict.ACCEPT:
            if d.source == "cache":
                # used: the most recently used entry now, the last the full cache evicts (LRU), and its
                # lifetime starts again
                self.remember(id_tag, d.info)
            return d.info
        return d.info if d.info is not None and d.info.status != "Accepted" else IdTagInfo("Invalid")

    def check_list_conflict(self, id_tag: str, answer: IdTagInfo) -> None:
        """A CSMS answer about an idTag contradicts the local list: the adapter tells the CSMS (1.6:
        StatusNotification LocalListConflict); the list stays as the CSMS last sent it."""
        listed = list_conflict(id_tag, answer, self.settings.auth, self.local_list)
        if listed is None:
            return
        self.log.warning("local list conflict: %s is %s in the list, the CSMS says %s", id_tag, listed.status,
                         answer.status)
        report = getattr(self.adapter, "local_list_conflict", None)
        if report is not None:
            report(id_tag, listed, answer)

    def remember(self, id_tag: str, info: IdTagInfo) -> None:
        """Update the authorization cache with an IdTagInfo the CSMS sent."""
        rules = self.settings.auth
        if not rules.authorization_cache_enabled or id_tag in self.local_list:
            return
        if rules.cache_lifetime_s:
            # its lifetime counts from now (2.0.1 AuthCacheCtrlr.LifeTime)
            info = replace(info, last_used=iso(self.clock.now()))
        self.cache[id_tag] = info
        # the cache keeps the AUTH_CACHE_MAX most recently written entries (store and memory alike)
        for evicted in self.store.auth_put("cache", id_tag, asdict(info), keep=AUTH_CACHE_MAX):
            self.cache.pop(evicted, None)

    def clear_cache(self) -> bool:
        self.cache.clear()
        self.store.auth_clear("cache")
        return True

    def forget(self, id_tag: str) -> bool:
        """Drop one id token from the authorization cache (CustomerInformation clear); False: not cached."""
        if self.cache.pop(id_tag, None) is None:
            return False
        self.store.auth_remove("cache", id_tag)
        return True

    async def present_id_tag(self, cid: int, id_tag: str, token_type: str = "ISO14443") -> str:
        """A card at the reader of connector ``cid``. Returns a short word saying what happened:
        stopped, not allowed to stop, unavailable, cancelled, rejected, reserved (for another idTag), accepted."""
        if cid not in self.connectors:
            return "unknown connector"
        rid, fut = self._request()
        word = await self._ask(cid, m.IdTokenPresented(cid, m.IdToken(id_tag, token_type), rid), rid, fut)
        if word == "master pass":
            await self._master_pass(id_tag)
        return word

    async def _master_pass(self, id_tag: str) -> None:
        """A master pass was presented (a station without a display): every running transaction ends
        (2.0.1 C16, reason MasterPass)."""
        running = [cid for cid, conn in self.connectors.items() if conn.transaction is not None]
        self.on_event(f"master pass {id_tag}: stopping {len(running)} transaction(s)")
        for cid in running:
            self._feed(cid, m.StopRequested(cid, StopReason.MasterPass, id_tag))
        for cid in running:
            await self._settled(cid)

    # -- transactions ------------------------------------------------------------------------
    def offered_current(self, cid: int) -> float:
        return self._session(cid).offered_current()

    async def set_limit(self, cid: int, amps: float | None) -> None:
        """Apply a charging limit (smart charging); ``None`` removes it. Below 6 A nothing is offered."""
        self.apply_limit(cid, amps)
        await self._settled(cid)

    def apply_limit(self, cid: int, amps: float | None, phases: int | None = None) -> None:
        """set_limit without waiting: the new offer is queued at once (a start about to offer the
        old limit offers the new one instead; station/charging.py calls it from its timer).
        ``phases``: the limit's numberPhases; an EVSE that can switch phases feeds that many
        (switched before the new current is offered)."""
        self.limits_a[cid] = amps
        evse_id = self._evse_of[cid]
        hw = self.hw.get(evse_id)
        if hw is not None and phases is not None and self.limits_phases.get(evse_id) != phases:
            self.limits_phases[evse_id] = phases
            if hw.switch_phases(phases if phases < self.evses[evse_id].phases else None):
                self.log.info("EVSE %d: charging on %d phase(s)", evse_id, min(phases, self.evses[evse_id].phases))
        self._feed(cid, m.LimitChanged(cid, amps))

    def save_transaction(self, tx: Transaction) -> None:
        data = {
            "meter_start_wh": tx.meter_start_wh,
            "started_at": iso(tx.started_at),
            "parent_id_tag": tx.parent_id_tag,
            "reservation_id": tx.reservation_id,
            "meter_last_wh": tx.meter_last_wh,
            "last_seen": iso(self.clock.now()),
            "samples": tx.samples,
            "id_token_type": tx.id_token_type,
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
                id_token_type=data.get("id_token_type", "ISO14443"),
            )
            tx.meter_stop_wh = tx.meter_last_wh if tx.meter_last_wh is not None else tx.meter_start_wh
            # no energy flows while the power is off: the meter register now says what was delivered
            reading = await self._read_meter(cid) if cid in self.connectors else None
            if reading is not None:
                tx.meter_stop_wh = max(tx.meter_stop_wh, int(reading.energy_import_wh))
            tx.stopped_at = parse_iso(data.get("last_seen", data["started_at"]))
            tx.stop_reason = StopReason.PowerLoss
            with self.store.atomic():  # closed and its StopTransaction queued: both or neither
                self.store.tx_save(local_id, cid, id_tag, data, open_=False)
                if self.adapter is not None:
                    self.adapter.transaction_stopped(tx)
            self.log.warning("transaction %d on connector %d was cut by a power loss: ending it", local_id, cid)
            self.on_event(f"transaction on connector {cid} was cut by a power loss; reporting its end")
            if cid in self.connectors:
                self.connectors[cid].finishing = self.connectors[cid].plugged

    def on_start_result(self, tx: Transaction, info: IdTagInfo) -> None:
        """The CSMS answered StartTransaction: record its idTagInfo (its parentIdTag too) and act on a refusal."""
        self.check_list_conflict(tx.id_tag, info)
        self.remember(tx.id_tag, info)
        if tx.connector_id not in self.connectors:
            return
        self._feed(tx.connector_id, m.StartResult(tx.connector_id, tx.local_id, info))
        if tx.active and info.parent_id_tag:
            self.save_transaction(tx)

    # -- commands from the CSMS --------------------------------------------------------------
    def find_transaction(self, pred: Callable[[Transaction], bool]) -> Transaction | None:
        for conn in self.connectors.values():
            if conn.transaction is not None and pred(conn.transaction):
                return conn.transaction
        return None

    def _free_for(self, c: int, id_tag: str, parent: str | None) -> bool:
        """Whether a remote start for ``id_tag`` (its parent ``parent``) may use connector ``c``."""
        conn = self.connectors[c]
        r = conn.reservation
        if r is not None:
            # a reserved connector serves the reserved idTag (or its parent's) only, 5.13 / TC_046_2
            if not may_use(r.id_tag, r.parent_id_tag, id_tag, parent):
                return False
            usable = conn.state() in (ConnectorState.Reserved, ConnectorState.Available, ConnectorState.Preparing)
            return usable and conn.transaction is None and self._session(c).may_start(c)
        return conn.available_for_new_session and self._session(c).may_start(c)

    def remote_start_connector(self, id_tag: str, among: list[int] | None = None) -> int | None:
        """The connector a remote start names none goes to (of ``among``, else any): one reserved
        for the idTag, then a free one with a cable in first (the EV is there), else the first free."""
        parent = self._known_parent(id_tag)
        free = [c for c in (self.connectors if among is None else among)
                if c in self.connectors and self._free_for(c, id_tag, parent)]
        return next((c for c in free if self.connectors[c].reservation is not None),
                    next((c for c in free if self.connectors[c].plugged), next(iter(free), None)))

    async def remote_start(self, cid: int | None, id_tag: str, profile: dict | None = None,
                           token_type: str = "Central") -> bool:
        if cid is None:
            cid = self.remote_start_connector(id_tag)
            if cid is None:
                return False
        if cid not in self.connectors or not self._free_for(cid, id_tag, self._known_parent(id_tag)) \
                or not self.operative:
            return False
        self._feed(cid, m.RemoteStartRequested(cid, m.IdToken(id_tag, token_type), next(self._ids), profile))
        return True

    # -- reservations (1.6 sections 3.13, 5.13, 5.2; rules in station/core/reservation.py) --------
    def _known_parent(self, id_tag: str) -> str | None:
        """The parentIdTag the station knows for an idTag (local list, then the cache), or None."""
        info = self.local_list.get(id_tag) or self.cache.get(id_tag)
        return info.parent_id_tag if info is not None else None

    def _condition(self, cid: int) -> Condition:
        conn = self.connectors[cid]
        if conn.faulted:
            return Condition.Faulted
        if not conn.operative or not self.operative:
            return Condition.Unavailable
        if (conn.transaction is not None or conn.starting is not None or conn.pending is not None
                or (conn.finishing and conn.plugged) or not self._session(cid).may_start(cid)
                or (self.reservations_cable_occupies and conn.plugged)):
            return Condition.Occupied
        return Condition.Free

    def _station_condition(self) -> Condition:
        state = station_state(self.operative, self.station_faults)
        if state is ConnectorState.Faulted:
            return Condition.Faulted
        return Condition.Free if state is ConnectorState.Available else Condition.Unavailable

    def reserve_now(self, cid: int, id_tag: str, expiry: datetime, reservation_id: int,
                    parent_id_tag: str | None = None, zero_supported: bool = True) -> str:
        """ReserveNow: Accepted, Faulted, Occupied, Rejected or Unavailable. ``expiry``: a wall-clock
        datetime; ``cid`` 0 reserves any connector (when ``zero_supported``). The same id replaces."""
        if cid != 0 and cid not in self.connectors:
            return str(ReservationStatus.Rejected)
        if expiry <= self.clock.now():
            self.log.info("reservation %d: expiry %s has passed already: Rejected", reservation_id, iso(expiry))
            return str(ReservationStatus.Rejected)
        r = Reservation(reservation_id, cid, id_tag, expiry, parent_id_tag or self._known_parent(id_tag))
        conditions = {c: self._condition(c) for c in self.connectors}
        status = self.reservations.decide(r, conditions, self._station_condition(), zero_supported)
        if status is ReservationStatus.Accepted:
            replaced = self.reservations.add(r)
            self.store.put(RESERVATION_NS, str(reservation_id), r.to_store())
            where = "any connector" if cid == 0 else f"connector {cid}"
            self.on_event(f"reservation {reservation_id} {'replaced' if replaced else 'made'}: {where} "
                          f"for {id_tag} until {iso(expiry)}")
            self._reservations_changed()
        return str(status)

    def cancel_reservation(self, reservation_id: int) -> bool:
        """CancelReservation: False for an unknown id."""
        r = self.reservations.cancel(reservation_id)
        if r is None:
            return False
        self.store.delete(RESERVATION_NS, str(reservation_id))
        self.on_event(f"reservation {reservation_id} cancelled")
        self._reservations_changed()
        return True

    def _reservation_used(self, tx: Transaction) -> bool:
        """A transaction starts: the reservation it uses ends, and the transaction names it (inside
        the caller's store.atomic: the reservation's end and the StartTransaction go together)."""
        r = self.reservations.used_by(tx.connector_id, tx.id_tag, tx.parent_id_tag, tx.reservation_id)
        tx.reservation_id = None if r is None else r.reservation_id
        if r is None:
            return False
        self.reservations.cancel(r.reservation_id)
        self.store.delete(RESERVATION_NS, str(r.reservation_id))
        self.on_event(f"reservation {r.reservation_id} used by {tx.id_tag} on connector {tx.connector_id}")
        return True

    def _reservations_changed(self) -> None:
        self._arm_reservation_timer()
        self._project_reservations()

    def _arm_reservation_timer(self) -> None:
        """One one-shot timer for the next expiry (wall clock); it checks the time again when it
        fires, so a clock set meanwhile neither ends a reservation early nor loses it."""
        old = self._timers.pop(_RESERVATION_TIMER, None)
        if old is not None:
            old.cancel()
        due = self.reservations.next_expiry()
        if due is None or self._stopped:
            return
        call_at_wall = getattr(self.clock, "call_at_wall", None)
        if call_at_wall is not None:  # a Scheduler: re-armed for the instant when the wall clock jumps
            self._timers[_RESERVATION_TIMER] = call_at_wall(due, self._reservations_due)
            return
        delay = max(0.0, (due - self.clock.now()).total_seconds())
        self._timers[_RESERVATION_TIMER] = self._call_later(min(delay, 86_400.0), self._reservations_due)

    def _reservations_due(self, notify: bool = True) -> None:
        self._timers.pop(_RESERVATION_TIMER, None)
        for r in self.reservations.expired(self.clock.now()):
            self.store.delete(RESERVATION_NS, str(r.reservation_id))
            self.log.info("reservation %d for %s expired", r.reservation_id, r.id_tag)
            self.on_event(f"reservation {r.reservation_id} expired")
            self.reservation_ended(r, "Expired")
        self._arm_reservation_timer()
        self._project_reservations(notify)

    def _project_reservations(self, notify: bool = True) -> None:
        """Put each reservation on the connector that shows it (Reserved), and report the changes."""
        conditions = {c: self._condition(c) for c in self.connectors}
        if self.reservations_follow_availability:
            self._remove_unusable(conditions)
        held = self.reservations.held(conditions)
        changed = []
        for cid, conn in self.connectors.items():
            r = held.get(cid)
            want = None if r is None else Hold(r.reservation_id, r.id_tag, 0.0, r.parent_id_tag)
            if conn.reservation != want:
                conn.reservation = want
                changed.append(cid)
        if notify:
            for cid in changed:
                if cid not in self._ending:
                    self.notify_status(cid)

    def _remove_unusable(self, conditions: dict[int, Condition]) -> None:
        """A reservation of a connector that became Faulted or Unavailable ends (2.0.1 reports it
        Removed); the connector shows its own state."""
        for cid, r in self.reservations.specific().items():
            if conditions.get(cid) in (Condition.Faulted, Condition.Unavailable):
                self.reservations.cancel(r.reservation_id)
                self.store.delete(RESERVATION_NS, str(r.reservation_id))
                self.log.info("reservation %d removed: connector %d is %s", r.reservation_id, cid, conditions[cid])
                self.on_event(f"reservation {r.reservation_id} removed (connector {cid} {conditions[cid]})")
                self.reservation_ended(r, "Removed")
                self._arm_reservation_timer()

    async def remote_stop(self, tx: Transaction) -> None:
        self._feed(tx.connector_id, m.StopRequested(tx.connector_id, StopReason.Remote))

    async def stop_transaction(self, cid: int, reason: StopReason) -> None:
        """End the connector's transaction (if any) with ``reason`` and wait until it is carried out."""
        self._feed(cid, m.StopRequested(cid, reason))
        await self._settled(cid)

    async def unlock(self, cid: int) -> str:
        """UnlockConnector: end a running transaction first, then release the plug."""
        if self.evse_of(cid).fixed_cable:
            return "NotSupported"
        rid, fut = self._request()
        return await self._ask(cid, m.UnlockRequested(cid, rid), rid, fut)

    def change_availability(self, cid: int, operative: bool) -> str:
        targets = list(self.connectors) if cid == 0 else [cid]
        if cid == 0:
            self.operative = operative
            self.store.put("availability", "0", operative)
            for c in self.connectors:
                self._feed(c, m.StationAvailability(operative))
        for c in targets:
            self._feed(c, m.AvailabilityRequested(c, operative))
        scheduled = any(self.connectors[c].scheduled_operative is not None for c in targets)
        if cid == 0:
            self.notify_status(0)
        return "Scheduled" if scheduled else "Accepted"

    async def stop_all(self, reason: StopReason) -> list[Transaction]:
        stopped = []
        for cid, conn in self.connectors.items():
            tx = conn.transaction
            self._feed(cid, m.StopRequested(cid, reason))
            await self._settled(cid)
            if tx is not None:
                stopped.append(tx)
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
        """Read the connector's meter (the last good reading when it does not answer)."""
        reading = await self._read_meter(cid)
        await self._settled(cid)
        return reading

    async def _read_meter(self, cid: int) -> MeterReading | None:
        hw = self.hw[self._evse_of[cid]]
        try:
            reading = await hw.meter.read()
        except HalError as e:
            if m.FaultKind.PowerMeter not in self.connectors[cid].faults:
                self.log.error("meter of connector %d: %s", cid, e)
                self._feed(cid, m.MeterFailed(cid, "meter not answering"))
            return self.meter_cache.get(cid)
        self.meter_cache[cid] = reading
        self._feed(cid, m.MeterRead(cid, reading.energy_import_wh, reading.power_w))
        return reading

    async def _lock_hw(self, cid: int) -> bool:
        try:
            return bool(await self._connector_hw(cid).lock.lock())
        except HalError as e:
            self.log.error("lock of connector %d: %s", cid, e)
            return False

    async def _unlock_hw(self, cid: int) -> bool:
        try:
            return bool(await self._connector_hw(cid).lock.unlock())
        except HalError as e:
            self.log.error("unlock of connector %d: %s", cid, e)
            return False

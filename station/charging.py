"""Smart charging service: keeps the installed charging profiles and applies their limit.

The profiles (station/core/charging.py decides what they mean) are kept in the store's key/value
namespace ``charging_profiles`` (profile id -> its record), so they survive a restart. After every
change (a profile installed or cleared, a transaction started or ended) and at every period
boundary the limit of each EVSE is evaluated and, when it changed, handed to the station
(``Station.apply_limit``: the pilot offer, below 6 A nothing is offered; and the limit's
numberPhases, which a phase-switching EVSE - today the simulated one - feeds). The next boundary is
one one-shot timer of the scheduler on the boundary's wall-clock instant, re-armed when it fires:
no polling. A wall clock set forward or back is noticed by the scheduler at the next timer of
the station (its checkpoint runs every few seconds) and the boundary timer is armed again from
the wall clock: a boundary is never applied early, nor late by the step.

A TxProfile lives as long as its transaction: it is removed when the transaction ends. The
chargingProfile of a RemoteStartTransaction is installed as the transaction starts, before the
first current is offered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from station.core.charging import (
    TX_PROFILE,
    Capabilities,
    ChargingProfile,
    Composite,
    ConnectorContext,
    ProfileError,
    ProfileSet,
    tenths,
)
from station.core.transaction import Transaction
from station.scheduler import Scheduler, Timer
from station.station import Station
from station.store import Store

NS = "charging_profiles"
MAX_COMPOSITE_S = 31 * 86_400  # a composite schedule covers at most 31 days (a bounded answer)


class ChargingService:
    def __init__(self, station: Station, store: Store, scheduler: Scheduler, log: logging.Logger,
                 capabilities: Callable[[], Capabilities] = Capabilities) -> None:
        self.station = station
        self.store = store
        self.scheduler = scheduler
        self.log = log
        self.capabilities = capabilities
        self.profiles = ProfileSet()
        self._timer: Timer | None = None
        self._due: datetime | None = None
        self._applied: dict[int, tuple[int, float | None, int]] = {}  # EVSE id -> (connector, amps, phases) applied
        self._running = False
        self._jump_watch = False
        for key, rec in store.items(NS).items():
            try:
                self.profiles.install(ChargingProfile.from_record(rec))
            except (ProfileError, KeyError, TypeError, ValueError) as e:
                log.error("stored charging profile %s is unreadable (%s): dropped", key, e)
                store.delete(NS, key)

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._running = True
        if not self._jump_watch:
            self._jump_watch = True
            # the wall clock jumped: the limit of the new wall time now, and the boundary after it
            self.scheduler.on_wall_jump(self.reevaluate)
        # a TxProfile whose transaction did not survive the restart is of no use any more
        for p in [p for p in self.profiles.profiles.values() if p.purpose == TX_PROFILE]:
            if self._tx(p.connector_id) is None:
                self._forget(self.profiles.clear(profile_id=p.id))
        self.reevaluate()

    def stop(self) -> None:
        self._running = False
        if self._jump_watch:
            self._jump_watch = False
            self.scheduler.off_wall_jump(self.reevaluate)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- facts of the station --------------------------------------------------------------
    def _tx(self, cid: int) -> Transaction | None:
        conn = self.station.connectors.get(cid)
        tx = conn.transaction if conn is not None else None
        return tx if tx is not None and tx.active else None

    def context(self, cid: int) -> ConnectorContext:
        evse = self.station.evse_of(cid)
        tx = self._tx(cid)
        return ConnectorContext(cid, evse.phases, evse.max_current_a, tx.started_at if tx is not None else None)

    def running(self) -> dict[int, int | None]:
        """Connector -> the CSMS's id of its running transaction (None until numbered)."""
        return {cid: tx.transaction_id for cid in self.station.connectors if (tx := self._tx(cid)) is not None}

    def _sharers(self, cid: int) -> int:
        """How many connectors share the ChargePointMaxProfile when ``cid`` charges."""
        others = sum(1 for c in self.station.connectors if c != cid and self._tx(c) is not None)
        return others + 1

    # -- profiles --------------------------------------------------------------------------
    def install(self, p: ChargingProfile) -> None:
        """Install (and store) a checked profile, replacing what it replaces; apply at once."""
        with self.store.atomic():
            gone = self.profiles.install(p)
            for old in gone:
                self.store.delete(NS, str(old.id))
            self.store.put(NS, str(p.id), p.record())
        self.log.info("charging profile %d installed (%s, connector %d, stack level %d)%s", p.id, p.purpose,
                      p.connector_id, p.stack_level, f"; replaces {[q.id for q in gone]}" if gone else "")
        self.reevaluate()

    def clear(self, profile_id: int | None = None, connector_id: int | None = None, purpose: str | None = None,
              stack_level: int | None = None) -> list[ChargingProfile]:
        gone = self.profiles.clear(profile_id, connector_id, purpose, stack_level)
        self._forget(gone)
        if gone:
            self.log.info("charging profile(s) %s cleared", [p.id for p in gone])
            self.reevaluate()
        return gone

    def _forget(self, gone: list[ChargingProfile]) -> None:
        with self.store.atomic():
            for p in gone:
                self.store.delete(NS, str(p.id))

    def composite(self, cid: int, duration_s: int) -> Composite:
        """GetCompositeSchedule from now; at most MAX_COMPOSITE_S ahead (the answer says its duration)."""
        now = self.scheduler.now()
        duration_s = max(0, min(int(duration_s), MAX_COMPOSITE_S))
        if cid == 0:
            return self.profiles.composite_station([self.context(c) for c in self.station.connectors], now, duration_s)
        return self.profiles.composite(self.context(cid), now, duration_s, self._sharers(cid))

    # -- transactions ----------------------------------------------------------------------
    def transaction_started(self, tx: Transaction) -> None:
        """Called inside the store transaction that records the start and queues StartTransaction:
        nothing here may make that fail (a failure is logged; the transaction goes on)."""
        try:
            if tx.charging_profile:
                try:
                    p = ChargingProfile.from_ocpp(tx.connector_id, tx.charging_profile, self.scheduler.now())
                except ProfileError as e:  # checked when the remote start was accepted: should not happen
                    self.log.error("chargingProfile of the remote start not installed: %s", e)
                else:
                    self.install(p)
                    return
            self.reevaluate()
        except Exception:
            self.log.exception("charging limit at the start of the transaction on connector %d", tx.connector_id)

    def transaction_stopped(self, tx: Transaction) -> None:
        """Its TxProfiles end with it (and the others' share of the ChargePointMaxProfile grows)."""
        try:
            gone = [p for p in self.profiles.profiles.values()
                    if p.purpose == TX_PROFILE and p.connector_id == tx.connector_id]
            for p in gone:
                self.profiles.clear(profile_id=p.id)
            self._forget(gone)
            self.reevaluate()
        except Exception:
            self.log.exception("charging limit at the end of the transaction on connector %d", tx.connector_id)

    # -- applying the limit ----------------------------------------------------------------
    def reevaluate(self, at: datetime | None = None) -> None:
        """Apply each EVSE's limit now and arm the timer for the next boundary."""
        if not self._running:
            return
        now = self.scheduler.now()
        if at is not None and now < at <= now + timedelta(seconds=1):
            now = at  # a timer a hair early: evaluate at the boundary it was armed for
        # (far early: the wall clock was set back; evaluated now, the timer is armed for the boundary again)
        expired = [p for p in self.profiles.profiles.values() if p.valid_to is not None and p.valid_to <= now]
        if expired:  # never valid again: they would only take room (MaxChargingProfilesInstalled)
            for p in expired:
                self.profiles.clear(profile_id=p.id)
            self._forget(expired)
            self.log.info("charging profile(s) %s expired (validTo passed): removed", [p.id for p in expired])
        nexts: list[datetime] = []
        for evse in self.station.evses.values():
            # the connector the EVSE's power path serves: the one with a transaction, else the first
            cid = next((c.connector_id for c in evse.connectors if self._tx(c.connector_id) is not None),
                       evse.connectors[0].connector_id)
            ctx = self.context(cid)
            sharers = self._sharers(cid)
            limit = self.profiles.limit_at(ctx, now, sharers)
            amps = None if limit.amps is None else tenths(limit.amps)  # 0.1 A steps, never above the limit
            if self._applied.get(evse.evse_id) != (cid, amps, limit.phases):
                self._applied[evse.evse_id] = (cid, amps, limit.phases)
                self.log.info("connector %d: charging limit %s", cid,
                              "none" if amps is None else f"{amps} A on {limit.phases} phase(s)")
                self.station.apply_limit(cid, amps, limit.phases)
            nxt = self.profiles.next_change(ctx, now, sharers=sharers)
            if nxt is not None:
                nexts.append(nxt)
        self._arm(min(nexts) if nexts else None, now)

    def _arm(self, when: datetime | None, now: datetime) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due = when
        if when is not None:
            # on the wall clock: a clock set forward or back re-arms it for the boundary's instant
            self._timer = self.scheduler.call_at_wall(when, self._fired)

    def _fired(self) -> None:
        self._timer = None
        due, self._due = self._due, None
        try:
            self.reevaluate(due)
        except Exception:  # a timer callback must never die silently with the limit half applied
            self.log.exception("charging limit re-evaluation failed")

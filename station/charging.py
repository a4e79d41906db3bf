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

The service speaks the core's neutral terms; what differs between OCPP versions is a few methods
a version's subclass overrides (station/ocpp201/handlers/smart_charging.py): ``target`` (what a
profile is set on: the 1.6 connector, the 2.0.1 EVSE), ``tx_facts`` (the running transaction as
the version sees it), ``remote_profile`` (the chargingProfile of a remote start in the version's
shape), ``station_contexts`` and ``limit_changed`` (told after each new limit reached the pilot).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
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
from station.core.evse import Evse
from station.core.transaction import Transaction
from station.scheduler import Scheduler, Timer
from station.station import Station
from station.store import Store

NS = "charging_profiles"
MAX_COMPOSITE_S = 31 * 86_400  # a composite schedule covers at most 31 days (a bounded answer)


@dataclass(frozen=True)
class TxFacts:
    """A running transaction as the charging rules need it."""

    transaction_id: int | str | None  # None while the CSMS has not numbered it (1.6)
    started_at: datetime


class ChargingService:
    OVERLAPPING_ONLY = False  # same purpose and stack level replace whatever their validity (1.6)

    def __init__(self, station: Station, store: Store, scheduler: Scheduler, log: logging.Logger,
                 capabilities: Callable[[], Capabilities] = Capabilities) -> None:
        self.station = station
        self.store = store
        self.scheduler = scheduler
        self.log = log
        self.capabilities = capabilities
        self.profiles = ProfileSet(overlapping_only=self.OVERLAPPING_ONLY)
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
        alive = {(self.target(cid), f.transaction_id) for cid in self.station.connectors
                 if (f := self.tx_facts(cid)) is not None}
        targets = {t for t, _ in alive}
        for p in [p for p in self.profiles.profiles.values() if p.purpose == TX_PROFILE]:
            if p.connector_id not in targets or (p.transaction_id is not None
                                                 and (p.connector_id, p.transaction_id) not in alive
                                                 and (p.connector_id, None) not in alive):
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

    # -- facts of the station (what a version's subclass may see differently) -------------------
    def _tx(self, cid: int) -> Transaction | None:
        conn = self.station.connectors.get(cid)
        tx = conn.transaction if conn is not None else None
        return tx if tx is not None and tx.active else None

    def target(self, cid: int) -> int:
        """What a profile for connector ``cid`` is set on (1.6: the connector itself)."""
        return cid

    def tx_facts(self, cid: int) -> TxFacts | None:
        """The transaction running on connector ``cid`` (1.6: the core session's)."""
        tx = self._tx(cid)
        return None if tx is None else TxFacts(tx.transaction_id, tx.started_at)

    def remote_profile(self, tx: Transaction) -> ChargingProfile:
        """The profile of a remote start's chargingProfile (1.6 csChargingProfiles). Raises ProfileError."""
        assert tx.charging_profile is not None
        return ChargingProfile.from_ocpp(tx.connector_id, tx.charging_profile, self.scheduler.now())

    def limit_changed(self, cid: int, amps: float | None) -> None:
        """Told after a new limit of connector ``cid`` was handed to the station."""

    def context(self, cid: int) -> ConnectorContext:
        evse = self.station.evse_of(cid)
        f = self.tx_facts(cid)
        return ConnectorContext(self.target(cid), evse.phases, evse.max_current_a,
                                f.started_at if f is not None else None, f.transaction_id if f is not None else None)

    def station_contexts(self) -> list[ConnectorContext]:
        """The contexts whose schedules add up to the station's composite schedule."""
        return [self.context(c) for c in self.station.connectors]

    def serving(self, evse: Evse) -> int:
        """The connector an EVSE's power path serves: the one with a transaction, else the first."""
        return next((c.connector_id for c in evse.connectors if self.tx_facts(c.connector_id) is not None),
                    evse.connectors[0].connector_id)

    def running(self) -> dict[int, int | str | None]:
        """Target (connector or EVSE) -> the id of its running transaction (None until numbered)."""
        return {self.target(cid): f.transaction_id for cid in self.station.connectors
                if (f := self.tx_facts(cid)) is not None}

    def _sharers(self, cid: int) -> int:
        """How many connectors share the ChargePointMaxProfile when ``cid`` charges."""
        others = sum(1 for c in self.station.connectors if c != cid and self.tx_facts(c) is not None)
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
            return self.profiles.composite_station(self.station_contexts(), now, duration_s)
        return self.profiles.composite(self.context(cid), now, duration_s, self._sharers(cid))

    # -- transactions ----------------------------------------------------------------------
    def transaction_started(self, tx: Transaction) -> None:
        """Called inside the store transaction that records the start and queues StartTransaction:
        nothing here may make that fail (a failure is logged; the transaction goes on)."""
        try:
            if tx.charging_profile:
                try:
                    p = self.remote_profile(tx)
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
            self.end_tx_profiles(self.target(tx.connector_id))
        except Exception:
            self.log.exception("charging limit at the end of the transaction on connector %d", tx.connector_id)

    def end_tx_profiles(self, target: int, transaction_id: int | str | None = None) -> None:
        """The transaction on ``target`` ended: its TxProfiles go (only those naming
        ``transaction_id`` or none when it is given), and the limits are evaluated again."""
        gone = [p for p in self.profiles.profiles.values()
                if p.purpose == TX_PROFILE and p.connector_id == target
                and (transaction_id is None or p.transaction_id in (None, transaction_id))]
        for p in gone:
            self.profiles.clear(profile_id=p.id)
        self._forget(gone)
        self.reevaluate()

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
        changed: list[tuple[int, float | None]] = []
        for evse in self.station.evses.values():
            cid = self.serving(evse)
            ctx = self.context(cid)
            sharers = self._sharers(cid)
            limit = self.profiles.limit_at(ctx, now, sharers)
            amps = None if limit.amps is None else tenths(limit.amps)  # 0.1 A steps, never above the limit
            if self._applied.get(evse.evse_id) != (cid, amps, limit.phases):
                self._applied[evse.evse_id] = (cid, amps, limit.phases)
                self.log.info("connector %d: charging limit %s", cid,
                              "none" if amps is None else f"{amps} A on {limit.phases} phase(s)")
                self.station.apply_limit(cid, amps, limit.phases)
                changed.append((cid, amps))
            nxt = self.profiles.next_change(ctx, now, sharers=sharers)
            if nxt is not None:
                nexts.append(nxt)
        self._arm(min(nexts) if nexts else None, now)
        for cid, amps in changed:
            try:
                self.limit_changed(cid, amps)
            except Exception:  # the limit is applied; telling about it must not undo that
                self.log.exception("reporting the new charging limit of connector %d", cid)

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

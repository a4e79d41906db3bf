"""The per-EVSE session state machine: ``handle(event, now) -> effects``, pure.

Like a sans-I/O protocol it is fed events (CP state, faults, cards, answers of the CSMS,
results of hardware commands, timers) and returns the effects the driver must carry out, in
order. It never awaits, never touches a device or the network, and takes the time as an
argument.

Safety is decided here, synchronously: a blocking fault, CP state E/F or an unplug stops
offering current and opens the contactor in the effects of that very call, whatever
authorization is still pending on the network. An authorization is an effect (AskAuthorization)
whose answer comes back later as an event and is judged against the state *then*.

Rules kept from the charger's behaviour:

- IEC 61851-1: the PWM offers the current first; the contactor closes only in state C (the EV
  asks) and opens in B; D (ventilation) gets no energy here; below 6 A nothing is offered
  (SuspendedEVSE).
- The plug is locked before the contactor closes; the pilot stops offering and the contactor
  opens before the plug is unlocked.
- EV communication error: energy off, the transaction goes on (SuspendedEVSE).
- A CSMS refusal of the running transaction's token: stop (StopTransactionOnInvalidId) or go on
  with at most MaxEnergyOnInvalidId.
- A driver identified before the cable waits ConnectionTimeOut for it.
- ChangeAvailability Inoperative during a transaction is scheduled for its end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from station.core.auth import IdTagInfo, same_id_tag
from station.core.evse import Connector, Evse, PendingAuthorization
from station.core.model import (
    MIN_CURRENT_A,
    PILOT_FAULT_INFO,
    AskAuthorization,
    AuthorizationDropped,
    AuthorizationResult,
    Authorized,
    AvailabilityRequested,
    BeginTransaction,
    CancelTimer,
    ConnectorState,
    CpState,
    CpStateChanged,
    Effect,
    EndTransaction,
    EnergyTransferStarted,
    EnergyTransferStopped,
    EvConnected,
    EvDeparted,
    Event,
    FaultChanged,
    FaultKind,
    HardwareFailed,
    IdToken,
    IdTokenPresented,
    LimitChanged,
    MeterFailed,
    MeterRead,
    Note,
    Persist,
    PowerPathClosed,
    PowerPathOpened,
    PrepareTransaction,
    ReadMeter,
    RemoteStartRequested,
    Reply,
    ReportStatus,
    SetContactor,
    SetPilot,
    StartResult,
    StartTimer,
    StationAvailability,
    StopReason,
    StopRequested,
    StopTransactionRequested,
    TimerFired,
    TransactionPrepared,
    Unlock,
    UnlockRequested,
    UnlockResult,
)
from station.core.reservation import may_use
from station.core.settings import Settings
from station.core.transaction import Transaction

CABLE_TIMER = "connection_timeout"
# states a connector shows when it has no transaction and is usable: Unavailable instead while the
# EVSE's power path serves another connector
_FREE_STATES = frozenset({ConnectorState.Available, ConnectorState.Preparing, ConnectorState.Finishing,
                          ConnectorState.Reserved})
ALLOWANCE_TIMER = "max_energy_on_invalid_id"


@dataclass(frozen=True)
class _Request:
    """An authorization asked for and not answered yet."""

    connector_id: int
    token: IdToken
    remote: bool = False
    charging_profile: dict | None = None
    stop_of: int | None = None  # local id of the transaction the card was presented at


class Session:
    """One EVSE: its connectors' facts, its contactor, its pending authorizations."""

    def __init__(self, evse: Evse, settings: Settings | None = None) -> None:
        self.evse = evse
        self.settings = settings or Settings()
        self.connectors: dict[int, Connector] = {c.connector_id: c for c in evse.connectors}
        self.station_operative = True
        self.limit_a: float | None = None
        self.contactor_closed = False  # as commanded
        self.pilot: dict[int, float | None] = {cid: None for cid in self.connectors}  # as commanded
        self._requests: dict[int, _Request] = {}
        self._now = datetime.min

    # -- queries (pure) ----------------------------------------------------------------------
    def offered_current(self) -> float:
        """What the EVSE may offer now: its maximum, or the limit; below 6 A nothing (IEC 61851-1),
        so Current.Offered / Power.Offered report the 0 A the pilot really offers."""
        limit = self.limit_a
        top = self.evse.max_current_a
        amps = top if limit is None else max(0.0, min(limit, top))
        return amps if amps >= MIN_CURRENT_A else 0.0

    def allowance_left(self, tx: Transaction) -> bool:
        """MaxEnergyOnInvalidId: may a transaction whose token the CSMS refused still take energy?"""
        cap = self.settings.max_energy_on_invalid_id_wh
        return bool(cap) and tx.energy_wh() < (cap or 0)

    def active_connector(self) -> int:
        """The connector the EVSE's power path serves now (one with a transaction), else the first."""
        return next((c.connector_id for c in self.connectors.values() if c.transaction is not None),
                    next(iter(self.connectors)))

    def state_of(self, connector_id: int) -> ConnectorState:
        """The connector's state with its EVSE around it: one power path per EVSE, so while another
        connector has a transaction or is starting one, this one cannot charge and is Unavailable
        (unless it is faulted or has a transaction of its own)."""
        conn = self.connectors[connector_id]
        state = conn.state()
        if state in _FREE_STATES and self._power_path_taken(conn):
            return ConnectorState.Unavailable
        return state

    def _power_path_taken(self, conn: Connector) -> bool:
        return any(c is not conn and (c.transaction is not None or c.starting is not None)
                   for c in self.connectors.values())

    def may_start(self, connector_id: int) -> bool:
        """Could a new session start at this connector now (no transaction, usable, EVSE free)?"""
        conn = self.connectors[connector_id]
        return conn.transaction is None and conn.starting is None and self._available(conn)

    def contactor_wanted(self) -> bool:
        """Energy may flow exactly when a connector has a transaction, current is offered, the EV
        is in state C (not D: no ventilation here) and nothing is wrong."""
        return any(
            c.transaction is not None
            and c.plugged
            and c.energy_offered
            and c.ev_requesting
            and not c.ventilation_required
            and not c.limited_to_zero
            and not c.faulted
            and not c.ev_comm_error
            for c in self.connectors.values()
        )

    def wants(self, effect: Effect) -> bool:
        """Is an effect that gives energy still wanted now? The driver asks just before carrying
        it out, so a fault that came in meanwhile is never overridden by an older command."""
        if isinstance(effect, SetContactor) and effect.closed:
            return self.contactor_closed and self.contactor_wanted()
        if isinstance(effect, SetPilot) and effect.amps:
            conn = self.connectors.get(effect.connector_id)
            return conn is not None and self.pilot.get(effect.connector_id) == effect.amps and not conn.faulted
        if isinstance(effect, PrepareTransaction):
            conn = self.connectors.get(effect.connector_id)
            return conn is not None and conn.starting is not None
        if isinstance(effect, Unlock):
            # a contactor that did not open (welded) may keep the cable live: the plug stays held
            conn = self.connectors.get(effect.connector_id)
            return conn is not None and FaultKind.PowerSwitch not in conn.faults
        return True

    # -- the one entry point -------------------------------------------------------------------
    def handle(self, event: Event, now: datetime) -> list[Effect]:
        self._now = now
        method = getattr(self, "_on_" + type(event).__name__, None)
        if method is None:
            raise TypeError(f"Session cannot handle {type(event).__name__}")
        out: list[Effect] = method(event)
        return out

    # -- hardware events -----------------------------------------------------------------------
    def _on_CpStateChanged(self, ev: CpStateChanged) -> list[Effect]:
        cid, state = ev.connector_id, ev.state
        conn = self.connectors[cid]
        out: list[Effect] = []
        was_plugged = conn.plugged
        if state in (CpState.E, CpState.F):
            # IEC 61851-1: E (CP shorted to PE / no pilot) and F (pilot fault) -> open the contactor
            # at once; the connector is Faulted (OtherError) and a running transaction ends.
            what = "CP shorted" if state is CpState.E else "pilot fault"
            return self._set_fault(conn, FaultKind.Other, True, f"{PILOT_FAULT_INFO} {state} ({what})")
        pilot_restored = conn.faults.get(FaultKind.Other, "").startswith(PILOT_FAULT_INFO)
        if pilot_restored:
            out += self._set_fault(conn, FaultKind.Other, False)
        conn.plugged = state in (CpState.B, CpState.C, CpState.D)
        conn.ev_requesting = state in (CpState.C, CpState.D)
        if state is CpState.D and not conn.ventilation_required:
            out.append(Note(f"connector {cid}: the EV asks for ventilation (state D); this station has none"))
        conn.ventilation_required = state is CpState.D
        if conn.plugged and not was_plugged:
            out += [Note(f"EV plugged in at connector {cid}"), EvConnected(cid)]
            if conn.transaction is not None:
                out += self._energize(conn)  # an EV came back to a running transaction
            elif conn.pending is not None and conn.operative and not conn.faulted:
                out += self._start(conn, conn.pending)
        elif not conn.plugged and was_plugged:
            out += [Note(f"EV unplugged from connector {cid}"), EvDeparted(cid)]
            conn.finishing = False
            if conn.transaction is not None:
                if self.settings.stop_on_ev_side_disconnect:
                    out += self._stop(
                        conn, StopReason.EVDisconnected, unlock=self.settings.unlock_on_ev_side_disconnect
                    )
                else:
                    out += self._deenergize(conn)
            else:
                out += self._deenergize(conn) if self.pilot.get(cid) is not None else []
                out.append(Unlock(cid))
        elif pilot_restored and conn.plugged and conn.transaction is not None:
            out += self._energize(conn)  # the pilot is healthy again: resume the suspended transaction
        if conn.transaction is not None and conn.plugged:
            out += self._contactor()  # C: close; back to B (EV pauses) or D: open
        out.append(ReportStatus(cid))
        return out

    def _on_FaultChanged(self, ev: FaultChanged) -> list[Effect]:
        return self._set_fault(self.connectors[ev.connector_id], ev.code, ev.active, ev.info)

    def _on_HardwareFailed(self, ev: HardwareFailed) -> list[Effect]:
        if isinstance(ev.effect, SetContactor) and ev.effect.closed:
            self.contactor_closed = False
        conn = self.connectors[ev.connector_id]
        out: list[Effect] = []
        if isinstance(ev.effect, SetContactor) and ev.effect.closed:
            out += self._deenergize(conn, open_contactor=False)
        return out + self._set_fault(conn, ev.code, True, ev.info)

    def _set_fault(self, conn: Connector, code: str, active: bool, info: str = "") -> list[Effect]:
        cid = conn.connector_id
        out: list[Effect] = []
        if active:
            if code in conn.faults:
                return []
            conn.faults[code] = info[:50]
            out.append(Note(f"fault at connector {cid}: {code} {info}".rstrip()))
            if conn.faulted:
                if conn.transaction is not None:
                    out += self._stop(conn, StopReason.Other, unlock=False)
                else:
                    out += self._deenergize(conn) if self.pilot.get(cid) is not None or self.contactor_closed else []
                    if conn.pending is not None:
                        conn.pending = None
                        out.append(CancelTimer(CABLE_TIMER, cid))
                    conn.starting = None
            elif code == FaultKind.EVCommunication and conn.transaction is not None:
                out += self._deenergize(conn)  # SuspendedEVSE (1.6 section 7.6), the transaction goes on
        else:
            if conn.faults.pop(code, None) is None:
                return []
            out.append(Note(f"fault cleared at connector {cid}: {code}"))
            if code == FaultKind.EVCommunication and conn.transaction is not None and conn.plugged and not conn.faulted:
                out += self._energize(conn)  # the EV talks properly again: resume the suspended transaction
        out.append(ReportStatus(cid, announce=code if active else None))
        return out

    def _on_MeterRead(self, ev: MeterRead) -> list[Effect]:
        conn = self.connectors[ev.connector_id]
        out: list[Effect] = []
        if FaultKind.PowerMeter in conn.faults:
            out += self._set_fault(conn, FaultKind.PowerMeter, False)
        tx = conn.transaction
        if tx is not None:
            tx.meter_last_wh = int(ev.energy_wh)
            if tx.deauthorized and not conn.limited_to_zero:
                if self.allowance_left(tx):
                    out.append(StartTimer(ALLOWANCE_TIMER, conn.connector_id, self._allowance_check_in(tx, ev.power_w)))
                else:
                    out.append(Note(f"connector {conn.connector_id}: MaxEnergyOnInvalidId reached, energy stopped"))
                    out += self._energize(conn) + [ReportStatus(conn.connector_id)]
        return out

    def _allowance_check_in(self, tx: Transaction, power_w: float | None) -> float:
        """Seconds until the allowance is checked again: half the time the rest would last at the
        present power, between 0.2 and 2 s (a re-armed timer, not a poll)."""
        left_wh = (self.settings.max_energy_on_invalid_id_wh or 0) - tx.energy_wh()
        if not power_w or power_w <= 0:
            return 2.0
        return max(0.2, min(2.0, left_wh / power_w * 3600.0 / 2))

    def _on_MeterFailed(self, ev: MeterFailed) -> list[Effect]:
        return self._set_fault(self.connectors[ev.connector_id], FaultKind.PowerMeter, True, ev.info)

    def _on_TimerFired(self, ev: TimerFired) -> list[Effect]:
        conn = self.connectors[ev.connector_id]
        if ev.name == CABLE_TIMER:
            if conn.pending is not None and conn.transaction is None:
                conn.pending = None
                return [Note(f"no cable at connector {ev.connector_id} in time: authorization dropped"),
                        AuthorizationDropped(ev.connector_id, True), ReportStatus(ev.connector_id)]
            return []
        if ev.name == ALLOWANCE_TIMER:
            tx = conn.transaction
            if tx is not None and tx.deauthorized and not conn.limited_to_zero:
                return [ReadMeter(ev.connector_id)]
            return []
        raise ValueError(f"unknown timer {ev.name!r}")

    # -- cards and authorization ---------------------------------------------------------------
    def _on_IdTokenPresented(self, ev: IdTokenPresented) -> list[Effect]:
        conn = self.connectors[ev.connector_id]
        out: list[Effect] = [Note(f"card {ev.token.value} presented at connector {ev.connector_id}")]
        tx = conn.transaction
        if tx is not None:
            if same_id_tag(ev.token.value, tx.id_tag):
                return out + self._stop(conn, StopReason.Local, id_token=ev.token.value) + [
                    ReportStatus(ev.connector_id), Reply(ev.request_id, "stopped")]
            return out + self._ask(ev.request_id, _Request(ev.connector_id, ev.token, stop_of=tx.local_id))
        if not self._available(conn):
            return out + [Note(f"connector {ev.connector_id} is not available; card ignored"),
                          Reply(ev.request_id, "unavailable")]
        if conn.pending is not None and same_id_tag(conn.pending.id_tag, ev.token.value):
            conn.pending = None
            return out + [CancelTimer(CABLE_TIMER, ev.connector_id), AuthorizationDropped(ev.connector_id, False),
                          ReportStatus(ev.connector_id), Reply(ev.request_id, "cancelled")]
        return out + self._ask(ev.request_id, _Request(ev.connector_id, ev.token))

    def _ask(self, rid: int, req: _Request) -> list[Effect]:
        self._requests[rid] = req
        return [AskAuthorization(rid, req.connector_id, req.token)]

    def _available(self, conn: Connector) -> bool:
        """May a new session start at this connector? One power path per EVSE: not while another
        connector of the EVSE has a transaction or is starting one."""
        return conn.operative and not conn.faulted and self.station_operative and not self._power_path_taken(conn)

    def _on_AuthorizationResult(self, ev: AuthorizationResult) -> list[Effect]:
        req = self._requests.pop(ev.request_id, None)
        if req is None:
            return []
        if req.remote:
            return self._remote_authorized(ev.request_id, req, ev.info)
        conn = self.connectors[req.connector_id]
        cid, tag, info = req.connector_id, req.token.value, ev.info
        tx = conn.transaction
        master = self.settings.auth.master_pass_group
        if master and info.status == "Accepted" and info.parent_id_tag == master:
            # a master pass never starts a transaction; the driver ends the running ones (2.0.1 C16)
            return [Note(f"card {tag} is a master pass"), Reply(ev.request_id, "master pass")]
        if req.stop_of is not None:
            # presented at a running transaction: judged against the state now, which may have changed
            if tx is None or tx.local_id != req.stop_of:
                return [Note(f"card {tag}: the transaction on connector {cid} has already ended"),
                        Reply(ev.request_id, "not allowed to stop")]
            if info.status == "Accepted" and same_id_tag(info.parent_id_tag, tx.parent_id_tag):
                return self._stop(conn, StopReason.Local, id_token=tag) + [ReportStatus(cid), Reply(ev.request_id, "stopped")]
            return [Note(f"card {tag} may not stop the transaction on connector {cid}"),
                    Reply(ev.request_id, "not allowed to stop")]
        if tx is not None:
            # another session started meanwhile: the card now asks to stop that one
            if same_id_tag(tag, tx.id_tag) or (info.status == "Accepted" and same_id_tag(info.parent_id_tag, tx.parent_id_tag)):
                return self._stop(conn, StopReason.Local, id_token=tag) + [ReportStatus(cid), Reply(ev.request_id, "stopped")]
            return [Note(f"card {tag} may not stop the transaction on connector {cid}"),
                    Reply(ev.request_id, "not allowed to stop")]
        if not self._available(conn):
            return [Note(f"connector {cid} is not available; card ignored"), Reply(ev.request_id, "unavailable")]
        if info.status != "Accepted":
            return [Note(f"card {tag} rejected ({info.status})"), Reply(ev.request_id, "rejected")]
        if not self._may_use_reservation(conn, tag, info.parent_id_tag):
            return [Note(f"card {tag}: connector {cid} is reserved for another idTag"), Reply(ev.request_id, "reserved")]
        if conn.pending is not None and same_id_tag(conn.pending.id_tag, tag):
            conn.pending = None  # presented twice while asking: the second presentation cancels
            return [CancelTimer(CABLE_TIMER, cid), AuthorizationDropped(cid, False), ReportStatus(cid),
                    Reply(ev.request_id, "cancelled")]
        out: list[Effect] = [Note(f"card {tag} accepted"), Authorized(cid, req.token, info)]
        pending = PendingAuthorization(tag, info.parent_id_tag, 0.0, id_token_type=req.token.type)
        out += self._begin_or_wait(conn, pending)
        return out + [ReportStatus(cid), Reply(ev.request_id, "accepted")]

    def _on_RemoteStartRequested(self, ev: RemoteStartRequested) -> list[Effect]:
        out: list[Effect] = [Note(f"remote start for {ev.token.value} on connector {ev.connector_id}")]
        req = _Request(ev.connector_id, ev.token, remote=True, charging_profile=ev.charging_profile)
        if self.settings.authorize_remote_tx_requests:
            return out + self._ask(ev.request_id, req)
        return out + self._remote_authorized(ev.request_id, req, None)

    def _remote_authorized(self, rid: int, req: _Request, info: IdTagInfo | None) -> list[Effect]:
        conn = self.connectors[req.connector_id]
        tag = req.token.value
        if info is not None and info.status != "Accepted":
            return [Note(f"remote start refused: {tag} is {info.status}"), Reply(rid, "rejected")]
        if conn.transaction is not None or conn.starting is not None:
            return [Reply(rid, "busy")]
        if not self._available(conn):
            return [Note(f"remote start for {tag}: connector {req.connector_id} is not available any more"),
                    Reply(rid, "unavailable")]
        if info is not None and not self._may_use_reservation(conn, tag, info.parent_id_tag):
            return [Note(f"remote start for {tag}: connector {req.connector_id} is reserved for another idTag"),
                    Reply(rid, "reserved")]
        parent = info.parent_id_tag if info is not None else None
        out: list[Effect] = []
        if info is not None:
            out.append(Authorized(req.connector_id, req.token, info))
        pending = PendingAuthorization(tag, parent, 0.0, remote=True, charging_profile=req.charging_profile,
                                       id_token_type=req.token.type)
        out += self._begin_or_wait(conn, pending)
        return out + [ReportStatus(req.connector_id), Reply(rid, "accepted")]

    @staticmethod
    def _may_use_reservation(conn: Connector, id_tag: str, parent_id_tag: str | None) -> bool:
        """A connector showing Reserved serves only the reserved idTag or one of its parentIdTag (5.13)."""
        r = conn.reservation
        return r is None or may_use(r.id_tag, r.parent_id_tag, id_tag, parent_id_tag)

    def _begin_or_wait(self, conn: Connector, pending: PendingAuthorization) -> list[Effect]:
        if conn.plugged:
            return self._start(conn, pending)
        conn.pending = pending
        timeout = max(1.0, self.settings.connection_timeout_s)
        return [StartTimer(CABLE_TIMER, conn.connector_id, timeout),
                Note(f"waiting up to {timeout:.0f} s for the cable at connector {conn.connector_id}")]

    # -- transactions ----------------------------------------------------------------------------
    def _start(self, conn: Connector, pending: PendingAuthorization) -> list[Effect]:
        conn.pending = None
        conn.finishing = False
        conn.starting = pending
        return [CancelTimer(CABLE_TIMER, conn.connector_id), PrepareTransaction(conn.connector_id)]

    def _on_TransactionPrepared(self, ev: TransactionPrepared) -> list[Effect]:
        conn = self.connectors[ev.connector_id]
        cid = ev.connector_id
        pending, conn.starting = conn.starting, None
        if pending is None or not conn.plugged or conn.faulted or conn.transaction is not None:
            # abandoned meanwhile (unplugged, faulted): no transaction; free the plug unless a fault holds it
            out: list[Effect] = [Note(f"connector {cid}: start abandoned")]
            if ev.locked and not conn.faulted:
                out.append(Unlock(cid))
            return out + [ReportStatus(cid)]
        if not ev.locked:
            conn.faults[FaultKind.ConnectorLock] = "lock did not close"
            return [Note(f"connector {cid}: lock failed, transaction not started"), ReportStatus(cid)]
        tx = Transaction(
            local_id=ev.local_id,
            connector_id=cid,
            id_tag=pending.id_tag,
            meter_start_wh=ev.meter_wh,
            started_at=self._now,
            parent_id_tag=pending.parent_id_tag,
            remote=pending.remote,
            charging_profile=pending.charging_profile,
            meter_last_wh=ev.meter_wh,
            id_token_type=pending.id_token_type,
        )
        r = conn.reservation
        if r is not None and may_use(r.id_tag, r.parent_id_tag, pending.id_tag, pending.parent_id_tag):
            tx.reservation_id = r.reservation_id  # the reservation ends with this start (StartTransaction names it)
        conn.transaction = tx
        conn.reservation = None
        return [BeginTransaction(cid, tx)] + self._energize(conn) + [ReportStatus(cid)]

    def _energize(self, conn: Connector) -> list[Effect]:
        cid = conn.connector_id
        tx = conn.transaction
        if tx is None or not conn.plugged or conn.faulted or conn.ev_comm_error:
            return []
        limit = self.offered_current()
        # IEC 61851-1: below 6 A nothing can be offered: the EVSE suspends (pilot not offering)
        conn.limited_to_zero = limit < MIN_CURRENT_A or (tx.deauthorized and not self.allowance_left(tx))
        out: list[Effect] = []
        if conn.limited_to_zero:
            conn.energy_offered = False
            if self.pilot.get(cid) != 0:
                out.append(EnergyTransferStopped(cid))
            self.pilot[cid] = 0
            return [SetPilot(cid, 0), *out, *self._contactor()]
        # offer the current with the PWM first; the contactor closes only when the EV asks for
        # energy (state C), never in state B
        conn.energy_offered = True
        if self.pilot.get(cid) != limit:
            out.append(EnergyTransferStarted(cid, limit))
        self.pilot[cid] = limit
        return [SetPilot(cid, limit), *out, *self._contactor()]

    def _deenergize(self, conn: Connector, open_contactor: bool = True) -> list[Effect]:
        """Stop offering, then open the contactor (always told again: it is cheap and safe)."""
        cid = conn.connector_id
        out: list[Effect] = [SetPilot(cid, None)]
        if self.pilot.get(cid):
            out.append(EnergyTransferStopped(cid))
        self.pilot[cid] = None
        conn.energy_offered = False
        if open_contactor:
            if any(c is not conn and c.transaction is not None for c in self.connectors.values()):
                return out + self._contactor()  # the power path serves another connector of the EVSE
            if self.contactor_closed:
                out.append(PowerPathOpened(cid))
            self.contactor_closed = False
            out.append(SetContactor(False))
        return out

    def _contactor(self) -> list[Effect]:
        want = self.contactor_wanted()
        active = self.active_connector()
        if want and not self.contactor_closed:
            self.contactor_closed = True
            return [SetContactor(True), PowerPathClosed(active)]
        if not want and self.contactor_closed:
            self.contactor_closed = False
            return [SetContactor(False), PowerPathOpened(active)]
        return []

    def _stop(
        self, conn: Connector, reason: StopReason, id_token: str | None = None, unlock: bool = True
    ) -> list[Effect]:
        tx = conn.transaction
        if tx is None:
            return []
        cid = conn.connector_id
        conn.transaction = None  # first: the transaction has ended, whatever is still pending
        conn.finishing = conn.plugged  # and a status reported meanwhile is Finishing, not Preparing
        tx.stopped_at = self._now
        tx.stop_reason = reason
        tx.stop_id_tag = id_token
        conn.limited_to_zero = False
        out: list[Effect] = [StopTransactionRequested(cid, reason), *self._deenergize(conn),
                             CancelTimer(ALLOWANCE_TIMER, cid), EndTransaction(cid, tx)]
        if unlock:
            out.append(Unlock(cid))
        if conn.scheduled_operative is not None:
            out += self._set_operative(conn, conn.scheduled_operative)
            conn.scheduled_operative = None
        return out

    def _on_StopRequested(self, ev: StopRequested) -> list[Effect]:
        conn = self.connectors[ev.connector_id]
        return self._stop(conn, ev.reason, ev.id_token, ev.unlock) + [ReportStatus(ev.connector_id)]

    def _on_StartResult(self, ev: StartResult) -> list[Effect]:
        conn = self.connectors[ev.connector_id]
        tx = conn.transaction
        if tx is None or tx.local_id != ev.local_id:
            return []
        if ev.info.parent_id_tag:
            # the CSMS named the parent in its answer to the start (not only in Authorize): a card of
            # the same group may stop the transaction (OCTT TC_069_CS)
            tx.parent_id_tag = ev.info.parent_id_tag
        if ev.info.status == "Accepted":
            return []
        out: list[Effect] = [Note(f"CSMS refused {tx.id_tag} for the running transaction ({ev.info.status})")]
        if self.settings.stop_on_invalid_id:
            return out + self._stop(conn, StopReason.DeAuthorized) + [ReportStatus(ev.connector_id)]
        # StopTransactionOnInvalidId=false: the transaction goes on, but energy only up to
        # MaxEnergyOnInvalidId (0: none at all) - SuspendedEVSE once used up
        tx.deauthorized = True
        out += self._energize(conn) + [ReportStatus(ev.connector_id)]
        if self.allowance_left(tx) and not conn.limited_to_zero:
            out.append(StartTimer(ALLOWANCE_TIMER, ev.connector_id, 0.5))
        return out

    # -- commands ----------------------------------------------------------------------------------
    def _on_UnlockRequested(self, ev: UnlockRequested) -> list[Effect]:
        conn = self.connectors[ev.connector_id]
        out = self._stop(conn, StopReason.UnlockCommand, unlock=False)
        return out + [Unlock(ev.connector_id, ev.request_id)]

    def _on_UnlockResult(self, ev: UnlockResult) -> list[Effect]:
        conn = self.connectors[ev.connector_id]
        out: list[Effect] = []
        if not ev.ok:
            out.append(Note(f"connector {ev.connector_id}: unlock failed"))
        elif FaultKind.ConnectorLock in conn.faults:
            # the lock moves again (repaired, cable out): the connector is usable again (Faulted -> Available)
            out += self._set_fault(conn, FaultKind.ConnectorLock, False)
        if ev.request_id is not None:
            out += [ReportStatus(ev.connector_id), Reply(ev.request_id, "Unlocked" if ev.ok else "UnlockFailed")]
        return out

    def _on_AvailabilityRequested(self, ev: AvailabilityRequested) -> list[Effect]:
        conn = self.connectors[ev.connector_id]
        if conn.transaction is not None and not ev.operative:
            conn.scheduled_operative = ev.operative
            # persisted now: a power cut ends the transaction (PowerLoss), so after the reboot the
            # change is due and must not be forgotten (TC_034)
            return [Persist("availability", str(ev.connector_id), ev.operative)]
        conn.scheduled_operative = None  # a newer request replaces a scheduled one
        return self._set_operative(conn, ev.operative)

    def _set_operative(self, conn: Connector, operative: bool) -> list[Effect]:
        cid = conn.connector_id
        conn.operative = operative
        out: list[Effect] = [Persist("availability", str(cid), operative)]
        if not operative and conn.pending is not None:
            conn.pending = None
            out.append(CancelTimer(CABLE_TIMER, cid))
        return out + [ReportStatus(cid)]

    def _on_StationAvailability(self, ev: StationAvailability) -> list[Effect]:
        self.station_operative = ev.operative
        return []

    def _on_LimitChanged(self, ev: LimitChanged) -> list[Effect]:
        self.limit_a = ev.amps
        conn = self.connectors[ev.connector_id]
        if conn.transaction is not None and conn.plugged:
            return self._energize(conn) + [ReportStatus(ev.connector_id)]
        return []

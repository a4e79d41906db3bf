"""OCPP 2.0.1 transactions (Part 2 block E): when a transaction starts and ends by TxStartPoint and
TxStopPoint, and the TransactionEvent messages that tell the CSMS.

The core knows one kind of session: a driver authorized on a connector with a cable in, from its
start to its stop (station/core/session.py). A 2.0.1 transaction is wider or narrower as the
TxCtrlr says, and is made here from the core's domain events:

- it starts at the first TxStartPoint reached: ``EVConnected`` (cable plugged in),
  ``Authorized`` (a token accepted, remote start included), ``PowerPathClosed`` (the core's
  session started: authorized and plugged; the contactor then follows the EV),
  ``EnergyTransfer`` (energy flows), ``ParkingBayOccupancy`` (no bay sensor here: taken as
  EVConnected). ``DataSigned`` is never reached (no signed meter): the other points still apply.
- it ends when a TxStopPoint is no longer true: ``EVConnected`` (cable out), ``Authorized``,
  ``PowerPathClosed`` and ``EnergyTransfer`` (the core session stopped: card, remote stop,
  deauthorization, reset, fault; a pause of the EV does not end it — see docs/FEATURES.md).
  When only EVConnected is a stop point, a stop of the session is an ``Updated`` event and the
  transaction ends when the cable comes out.
- ``seqNo`` counts from 0 per transaction without gaps and is kept in the store with the
  transaction, so a restart continues it; every event goes through the persistent outbox in
  order, with ``offline: true`` when it was made while the station was not online.

Nothing here does I/O but through the adapter: ``TransactionEvents`` builds payloads and hands
them to ``adapter.queue_event``.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from station.core import model as m
from station.core.clock import iso
from station.core.metering import parse_measurands, samples_for
from station.core.reservation import may_use
from station.core.transaction import StopReason, Transaction
from station.ocpp201 import vocabulary
from station.ocpp201.meter_values import meter_value

if TYPE_CHECKING:
    from station.ocpp201.adapter import Ocpp201Adapter

ENDED_VALUES_MAX = 200  # samples kept for the Ended event of one transaction (the oldest go first)
NS = "tx201"  # store namespace: transactionId -> Tx201 as a dict (open ones only)
START_POINTS = ("ParkingBayOccupancy", "EVConnected", "Authorized", "DataSigned", "PowerPathClosed", "EnergyTransfer")
SESSION_STOP_POINTS = {"Authorized", "PowerPathClosed", "EnergyTransfer", "DataSigned"}


@dataclass
class Tx201:
    """An open 2.0.1 transaction: its id, where it runs, the next seqNo and what was reported."""

    transaction_id: str
    cid: int  # the station's connector number (core); evse_id / connector_id are the 2.0.1 address
    evse_id: int
    connector_id: int
    seq_no: int = 0
    local_id: int | None = None  # the core session's transaction, once it started
    id_token: dict | None = None  # IdTokenType, once known
    token_sent: bool = False
    remote_start_id: int | None = None
    charging_state: str = "Idle"
    stopped_reason: str | None = None  # the core session ended; waiting for the cable (EVConnected stop point)
    started_at: str = ""
    reservation_id: int | None = None  # the reservation this transaction used (H03)
    reservation_sent: bool = False  # reservationId went out (in the first event after it was used)
    # J02/J03: samples of SampledDataCtrlr / AlignedDataCtrlr TxEndedMeasurands taken every
    # TxEndedInterval during the transaction, sent with the Ended event (at most ENDED_VALUES_MAX)
    ended_values: list = field(default_factory=list)

    def to_store(self) -> dict:
        return asdict(self)

    @classmethod
    def from_store(cls, d: dict) -> Tx201:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class _Pending:
    """Facts of a connector before its transaction starts (a token, a remote start)."""

    token: dict | None = None
    remote_start_id: int | None = None
    reservation_id: int | None = None


class TransactionEvents:
    def __init__(self, ad: Ocpp201Adapter) -> None:
        self.ad = ad
        self.open: dict[int, Tx201] = {}  # connector number -> its open transaction
        self.pending: dict[int, _Pending] = {}
        self._timers: dict[int, Any] = {}  # connector number -> EVConnectionTimeOut timer
        for d in ad.store.items(NS).values():
            try:
                t = Tx201.from_store(d)
            except TypeError:
                continue
            self.open[t.cid] = t

    # -- configuration ---------------------------------------------------------------------
    def start_points(self) -> set[str]:
        return set(self.ad.members("TxCtrlr", "TxStartPoint"))

    def stop_points(self) -> set[str]:
        return set(self.ad.members("TxCtrlr", "TxStopPoint"))

    def by_id(self, transaction_id: str) -> Tx201 | None:
        return next((t for t in self.open.values() if t.transaction_id == transaction_id), None)

    def core_tx(self, cid: int) -> Transaction | None:
        conn = self.ad.station.connectors.get(cid)
        return conn.transaction if conn is not None else None

    # -- building and queueing events ------------------------------------------------------
    def _save(self, t: Tx201) -> None:
        self.ad.store.put(NS, t.transaction_id, t.to_store())

    def _event(self, t: Tx201, event_type: str, trigger: str, *, meter: list[dict] | None = None,
               id_token: dict | None = None, info: dict | None = None) -> None:
        now = self.ad.scheduler.now()
        tx_info: dict[str, Any] = {"transactionId": t.transaction_id}
        state, plugged = self.ad.connector_facts(t.cid)
        if event_type != "Ended" or t.stopped_reason is None:
            t.charging_state = vocabulary.charging_state(state, plugged) if event_type != "Ended" else "Idle"
        tx_info["chargingState"] = t.charging_state
        if info:
            tx_info.update(info)
        payload: dict[str, Any] = {
            "eventType": event_type,
            "timestamp": iso(now),
            "triggerReason": trigger,
            "seqNo": t.seq_no,
            "transactionInfo": tx_info,
            "evse": {"id": t.evse_id, "connectorId": t.connector_id},
        }
        if not self.ad.online:
            payload["offline"] = True
        token = id_token
        if token is None and t.id_token is not None and not t.token_sent:
            token = t.id_token
        if token is not None:
            payload["idToken"] = token
            if token is t.id_token:
                t.token_sent = True
        if meter:
            payload["meterValue"] = meter
        if t.reservation_id is not None and not t.reservation_sent:
            payload["reservationId"] = t.reservation_id
            t.reservation_sent = True
        t.seq_no += 1
        with self.ad.store.atomic():  # the next seqNo and the event queued: both or neither (no gap)
            if event_type == "Ended":
                self.ad.store.delete(NS, t.transaction_id)
            else:
                self._save(t)
            self.ad.queue_event(payload, t.local_id)
        if event_type == "Ended":
            self.open.pop(t.cid, None)

    def _meter(self, cid: int, measurands_var: str, context: str, component: str = "SampledDataCtrlr") -> list[dict]:
        reading = self.ad.station.meter_cache.get(cid)
        if reading is not None and reading.power_w is not None:
            self.ad.power_seen(cid, reading.power_w)
        measurands = parse_measurands(self.ad.text(component, measurands_var))
        if reading is None or not measurands:
            return []
        samples = samples_for(reading, measurands, self.ad.station.evse_of(cid).phases,
                              self.ad.station.offered_current(cid))
        return [meter_value(samples, context, self.ad.scheduler.now())] if samples else []

    def _start(self, cid: int, trigger: str, token: dict | None = None) -> Tx201:
        evse_id, connector_id = self.ad.address(cid)
        pend = self.pending.pop(cid, _Pending())
        t = Tx201(str(uuid.uuid4()), cid, evse_id, connector_id, started_at=iso(self.ad.scheduler.now()))
        t.id_token = token or pend.token
        t.remote_start_id = pend.remote_start_id
        core = self.core_tx(cid)
        if core is not None and core.active:
            t.local_id = core.local_id
            if t.id_token is None:
                t.id_token = {"idToken": core.id_tag, "type": core.id_token_type or "ISO14443"}
        self.open[cid] = t
        info = {"remoteStartId": t.remote_start_id} if t.remote_start_id is not None else None
        if t.remote_start_id is not None and trigger in ("Authorized", "ChargingStateChanged", "CablePluggedIn"):
            trigger = "RemoteStart"  # F01/F02: the transaction a RequestStartTransaction started
        t.reservation_id = pend.reservation_id if pend.reservation_id is not None else (core.reservation_id if core else None)
        self.ad.log.info("transaction %s started on EVSE %d (%s)", t.transaction_id, evse_id, trigger)
        self._event(t, "Started", trigger, meter=self._meter(cid, "TxStartedMeasurands", "Transaction.Begin"),
                    info=info)
        self.ad.transaction_opened(t)
        return t

    def _end(self, t: Tx201, trigger: str, reason: str, stop_token: dict | None = None) -> None:
        self._cancel_connection_timeout(t.cid)
        t.charging_state = "Idle" if not self.ad.connector_facts(t.cid)[1] else "EVConnected"
        self.ad.log.info("transaction %s ended on EVSE %d (%s, %s)", t.transaction_id, t.evse_id, trigger, reason)
        meter = list(t.ended_values) + self._meter(t.cid, "TxEndedMeasurands", "Transaction.End")
        self._event(t, "Ended", trigger, meter=meter, id_token=stop_token, info={"stoppedReason": reason})
        self.ad.transaction_closed(t)

    # -- what the driver and the CSMS did ----------------------------------------------------
    def remote_start_accepted(self, cid: int, token: dict, remote_start_id: int) -> str | None:
        """RequestStartTransaction was accepted for ``cid``: its transactionId if one runs already
        (started at EVConnected), after which it carries remoteStartId."""
        t = self.open.get(cid)
        if t is not None:
            t.remote_start_id = remote_start_id
            t.id_token = token
            t.token_sent = False
            self._save(t)
            if not self.ad.authorize_remote_start():
                self._event(t, "Updated", "RemoteStart", info={"remoteStartId": remote_start_id})
            return t.transaction_id
        self.pending[cid] = _Pending(token=token, remote_start_id=remote_start_id)
        if not self.ad.authorize_remote_start() and "Authorized" in self.start_points():
            return self._start(cid, "RemoteStart").transaction_id
        return None

    def remote_stop_unauthorized(self, t: Tx201) -> None:
        """RequestStopTransaction of a transaction without a session (started at EVConnected, no
        driver yet): it ends now."""
        self._end(t, "RemoteStop", "Remote")

    def domain_event(self, ev: m.DomainEvent) -> None:
        if isinstance(ev, m.EvConnected):
            self._ev_connected(ev.connector_id)
        elif isinstance(ev, m.EvDeparted):
            self._ev_departed(ev.connector_id)
        elif isinstance(ev, m.Authorized):
            self._authorized(ev.connector_id, {"idToken": ev.token.value, "type": ev.token.type},
                             self._reservation_for(ev))
        elif isinstance(ev, m.PowerPathClosed):
            if ev.connector_id not in self.open and "PowerPathClosed" in self.start_points():
                self._start(ev.connector_id, "ChargingStateChanged")
        elif isinstance(ev, m.EnergyTransferStarted):
            if ev.connector_id not in self.open and "EnergyTransfer" in self.start_points():
                self._start(ev.connector_id, "ChargingStateChanged")
        elif isinstance(ev, m.AuthorizationDropped):
            t = self.open.get(ev.connector_id)
            self.pending.pop(ev.connector_id, None)
            if t is not None and self.core_tx(ev.connector_id) is None and not self.ad.connector_facts(t.cid)[1]:
                if ev.timed_out:
                    self._end(t, "EVConnectTimeout", "Timeout")
                else:
                    self._end(t, "StopAuthorized", "Local")
        elif isinstance(ev, m.StatusChanged):
            self._status(ev.connector_id)

    def _ev_connected(self, cid: int) -> None:
        self._cancel_connection_timeout(cid)  # back in time (a suspended transaction goes on)
        t = self.open.get(cid)
        if t is not None:
            self._event(t, "Updated", "CablePluggedIn")
        elif self.start_points() & {"EVConnected", "ParkingBayOccupancy"}:
            t = self._start(cid, "CablePluggedIn")
            if t.id_token is None and t.local_id is None and cid in self.open:
                self._arm_connection_timeout(t)

    def _ev_departed(self, cid: int) -> None:
        t = self.open.get(cid)
        if t is None:
            return
        if t.local_id is not None and t.stopped_reason is None:
            # the session runs, or its stop by this unplug is on its way (E09): that stop ends it
            core = self.core_tx(cid)
            if core is not None and core.active and not self.ad.station.settings.stop_on_ev_side_disconnect:
                self._event(t, "Updated", "EVCommunicationLost")
                # E10 / TC_E_27: suspended; the EV has EVConnectionTimeOut to come back
                timeout = max(1, self.ad.integer("TxCtrlr", "EVConnectionTimeOut"))
                self._cancel_connection_timeout(cid)
                self._timers[cid] = self.ad.scheduler.call_later(timeout, self._not_back, cid, t.transaction_id)
            return
        if t.stopped_reason is not None:
            self._end(t, "EVDeparted", t.stopped_reason)
        else:
            self._end(t, "EVDeparted", "EVDisconnected")

    def _reservation_for(self, ev: m.Authorized) -> int | None:
        """The reservation the connector shows, if the token just authorized may use it (it ends
        with the start of this driver's session)."""
        conn = self.ad.station.connectors.get(ev.connector_id)
        r = conn.reservation if conn is not None else None
        if r is None or not may_use(r.id_tag, r.parent_id_tag, ev.token.value, ev.info.parent_id_tag):
            return None
        return r.reservation_id

    def _authorized(self, cid: int, token: dict, reservation_id: int | None = None) -> None:
        self._cancel_connection_timeout(cid)
        t = self.open.get(cid)
        if t is not None:
            if reservation_id is not None and t.reservation_id is None:
                t.reservation_id = reservation_id
            if t.id_token is None or not t.token_sent:
                t.id_token = token
                t.token_sent = False
                self._event(t, "Updated", "RemoteStart" if t.remote_start_id is not None and t.seq_no <= 1 else "Authorized")
            return
        pend = self.pending.setdefault(cid, _Pending())
        pend.token = token
        if reservation_id is not None:
            pend.reservation_id = reservation_id
        if "Authorized" in self.start_points():
            self._start(cid, "Authorized")

    def _status(self, cid: int) -> None:
        t = self.open.get(cid)
        if t is None or t.stopped_reason is not None:
            return
        state, plugged = self.ad.connector_facts(cid)
        new = vocabulary.charging_state(state, plugged)
        core = self.core_tx(cid)
        if new == "SuspendedEV" and t.charging_state == "Charging" and core is not None and core.active \
                and self.stop_points() & {"EnergyTransfer", "PowerPathClosed"}:
            # E: the EV stopped drawing (the power path opens): with these stop points that ends it
            t.charging_state = new
            self.ad.spawn(self.ad.station.stop_transaction(cid, StopReason.StoppedByEV))
            return
        if new != t.charging_state:
            self._event(t, "Updated", "ChargingStateChanged")

    # -- the core session started and stopped (called inside the store transaction) -------------
    def session_started(self, tx: Transaction) -> None:
        self._cancel_connection_timeout(tx.connector_id)
        t = self.open.get(tx.connector_id)
        if t is not None:
            t.local_id = tx.local_id
            if tx.reservation_id is not None and t.reservation_id is None:
                t.reservation_id = tx.reservation_id  # named in the transaction's next event
            if t.id_token is None:
                t.id_token = {"idToken": tx.id_tag, "type": tx.id_token_type or "ISO14443"}
            self._save(t)
            return
        if tx.reservation_id is not None:
            self.pending.setdefault(tx.connector_id, _Pending()).reservation_id = tx.reservation_id
        if not (self.start_points() & {"PowerPathClosed", "EnergyTransfer"}) or \
                self.start_points() & {"EVConnected", "Authorized", "ParkingBayOccupancy"}:
            # the start point was passed without an event of its own (a restart, a remote start
            # not needing authorization): the session's start is the transaction's start
            self._start(tx.connector_id, "Authorized" if not tx.remote else "RemoteStart")

    def session_stopped(self, tx: Transaction) -> None:
        t = self.open.get(tx.connector_id)
        if t is None or (t.local_id is not None and t.local_id != tx.local_id):
            t = next((o for o in self.open.values() if o.local_id == tx.local_id), None)
        if t is None:
            return
        reason = vocabulary.stopped_reason(tx.stop_reason)
        trigger = vocabulary.stop_trigger(tx.stop_reason)
        if tx.deauthorized and tx.stop_reason in (StopReason.DeAuthorized, None):
            trigger, reason = "Deauthorized", "DeAuthorized"
        stop_token = None
        if tx.stop_id_tag and trigger == "StopAuthorized":
            stop_token = {"idToken": tx.stop_id_tag, "type": tx.id_token_type or "ISO14443"}
        plugged = self.ad.connector_facts(tx.connector_id)[1] and tx.stop_reason is not StopReason.PowerLoss
        stops = self.stop_points()
        if plugged and stops and not (stops & SESSION_STOP_POINTS):
            # TxStopPoint EVConnected only: the transaction lasts until the cable is out
            t.stopped_reason = reason
            self._event(t, "Updated", trigger, id_token=stop_token)
            return
        self._end(t, trigger, reason, stop_token)

    # -- EV connected, nobody authorized (E03 / TC_E_39) --------------------------------------------
    def _arm_connection_timeout(self, t: Tx201) -> None:
        """A transaction started by the cable ends when nobody is authorized within EVConnectionTimeOut."""
        timeout = max(1, self.ad.integer("TxCtrlr", "EVConnectionTimeOut"))
        self._timers[t.cid] = self.ad.scheduler.call_later(timeout, self._connection_timeout, t.cid, t.transaction_id)

    def _cancel_connection_timeout(self, cid: int) -> None:
        timer = self._timers.pop(cid, None)
        if timer is not None:
            timer.cancel()

    def _connection_timeout(self, cid: int, transaction_id: str) -> None:
        self._timers.pop(cid, None)
        t = self.open.get(cid)
        if t is None or t.transaction_id != transaction_id or t.local_id is not None or t.id_token is not None:
            return
        self.ad.log.info("transaction %s: nobody authorized within EVConnectionTimeOut", transaction_id)
        self._end(t, "EVConnectTimeout", "Timeout")

    def _not_back(self, cid: int, transaction_id: str) -> None:
        """The EV of a suspended transaction did not come back within EVConnectionTimeOut: it ends."""
        self._timers.pop(cid, None)
        t = self.open.get(cid)
        core = self.core_tx(cid)
        if t is None or t.transaction_id != transaction_id or core is None or not core.active \
                or self.ad.connector_facts(cid)[1]:
            return
        self.ad.log.info("transaction %s: the EV did not come back within EVConnectionTimeOut", transaction_id)
        self.ad.spawn(self.ad.station.stop_transaction(cid, StopReason.Timeout))

    def stop(self) -> None:
        for cid in list(self._timers):
            self._cancel_connection_timeout(cid)

    # -- meter values during a transaction -----------------------------------------------------
    def ended_sample(self, cid: int, component: str) -> None:
        """TxEndedInterval came round: keep a sample of TxEndedMeasurands for the Ended event."""
        t = self.open.get(cid)
        if t is None:
            return
        context = "Sample.Clock" if component == "AlignedDataCtrlr" else "Sample.Periodic"
        values = self._meter(cid, "TxEndedMeasurands", context, component=component)
        if values:
            t.ended_values = (t.ended_values + values)[-ENDED_VALUES_MAX:]
            self._save(t)

    def periodic(self, cid: int) -> None:
        t = self.open.get(cid)
        if t is None:
            return
        meter = self._meter(cid, "TxUpdatedMeasurands", "Sample.Periodic")
        if meter:
            self._event(t, "Updated", "MeterValuePeriodic", meter=meter)

    def clock_aligned(self, cid: int) -> bool:
        """An aligned sample of a connector with a transaction (False: it has none)."""
        t = self.open.get(cid)
        if t is None:
            return False
        meter = self._meter(cid, "Measurands", "Sample.Clock", component="AlignedDataCtrlr")
        if meter:
            self._event(t, "Updated", "MeterValueClock", meter=meter)
        return True

    def triggered(self, cid: int) -> bool:
        """TriggerMessage TransactionEvent: an Updated event with trigger Trigger (False: none runs)."""
        t = self.open.get(cid)
        if t is None:
            return False
        self._event(t, "Updated", "Trigger", meter=self._meter(cid, "TxUpdatedMeasurands", "Trigger"))
        return True

    def charging_rate_changed(self, cid: int) -> bool:
        """K/E: the charging limit of the transaction's EVSE changed (station/ocpp201/handlers/
        smart_charging.py decides when): an Updated event, triggerReason ChargingRateChanged."""
        t = self.open.get(cid)
        if t is None:
            return False
        self._event(t, "Updated", "ChargingRateChanged")
        return True

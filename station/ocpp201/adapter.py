"""OCPP 2.0.1 adapter: translates between the station and the 2.0.1 wire messages.

It wires the same version-independent services as the 1.6 adapter (registration, outbox,
metering schedules, the station driver and its core sessions) to 2.0.1: the device model
(device_model.py) holds every setting as component/variable; StatusNotification per EVSE and
connector (status.py); transactions by TxStartPoint / TxStopPoint with numbered TransactionEvents
(transaction_event.py); the CSMS's requests per functional block in handlers/ behind one routing
table. All time comes from one Scheduler.

The station's connectors are numbered 1..n across EVSEs (the core's and 1.6's connectorId);
2.0.1 addresses a connector as (evseId, connectorId within the EVSE): ``address()`` and
``connector_number()`` translate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from ocpp.exceptions import NotSupportedError, SecurityError

from station.adapter_base import AdapterBase, as_scheduler
from station.config import StationConfig, connector_numbers
from station.core import model as m
from station.core.auth import IdTagInfo
from station.core.clock import Clock, iso
from station.core.metering import parse_measurands, samples_for
from station.core.model import ConnectorState
from station.core.settings import Settings
from station.core.transaction import StopReason, Transaction
from station.link import CallErrorReceived, Link, NotConnected
from station.metering import AlignedSchedule, SampledSchedule
from station.ocpp201 import vocabulary
from station.ocpp201.authorization import auth_rules
from station.ocpp201.device_model import DeviceModel
from station.ocpp201.handlers import Handler, blocks, routing_table
from station.ocpp201.meter_values import meter_value
from station.ocpp201.status import StatusReporter
from station.ocpp201.transaction_event import TransactionEvents, Tx201
from station.outbox import Outbox
from station.security_events import SecurityEventSources
from station.station import Station
from station.store import Store
from station.tasks import Tasks

NS = "ocpp201"  # store namespace of the adapter's own facts (boot reason)



# what the CSMS may ask while the BootNotification is Pending (B02): configure and inspect the station
WHILE_PENDING = frozenset({"GetVariables", "SetVariables", "GetBaseReport", "GetReport", "TriggerMessage",
                           "SetNetworkProfile", "Reset", "InstallCertificate", "GetInstalledCertificateIds",
                           "DeleteCertificate", "CertificateSigned", "ChangeAvailability", "DataTransfer"})

# the variables whose change the adapter applies at once
WATCHED = (
    ("OCPPCommCtrlr", "HeartbeatInterval"), ("AlignedDataCtrlr", "Interval"), ("SampledDataCtrlr", "TxUpdatedInterval"),
    ("AlignedDataCtrlr", "TxEndedInterval"), ("SampledDataCtrlr", "TxEndedInterval"),
    ("TxCtrlr", "EVConnectionTimeOut"), ("TxCtrlr", "StopTxOnEVSideDisconnect"), ("TxCtrlr", "StopTxOnInvalidId"),
    ("TxCtrlr", "MaxEnergyOnInvalidId"), ("OCPPCommCtrlr", "UnlockOnEVSideDisconnect"), ("AuthCtrlr", "Enabled"),
    ("AuthCtrlr", "AuthorizeRemoteStart"), ("AuthCtrlr", "LocalPreAuthorize"), ("AuthCtrlr", "LocalAuthorizeOffline"),
    ("AuthCtrlr", "OfflineTxForUnknownIdEnabled"), ("AuthCacheCtrlr", "Enabled"), ("LocalAuthListCtrlr", "Enabled"),
)


class TransactionMessages:
    """The 2.0.1 part of the outbox: TransactionEvents carry the station's own transactionId, so
    nothing is filled in when they are sent. MessageAttemptsTransactionEvent and
    MessageAttemptIntervalTransactionEvent (E13) say how often and how far apart a message the
    CSMS did not accept is sent again; then it is dropped, as 2.0.1 allows."""

    # E13.FR.01: no answer (a timeout) is a failed attempt too, like a CallError
    timeouts_are_attempts = True

    def __init__(self, adapter: Ocpp201Adapter) -> None:
        self.ad = adapter

    def prepare(self, action: str, payload: dict, tx_local: int | None) -> dict | None:
        return payload

    def check(self, action: str, response: Any) -> str | None:
        if not isinstance(response, dict):
            return "the answer is not an object"
        return None

    def record(self, action: str, payload: dict, tx_local: int | None, response: dict) -> None:
        if action == "TransactionEvent" and payload.get("eventType") == "Ended":
            self.ad.store.tx_prune()

    def delivered(self, action: str, payload: dict, tx_local: int | None, response: dict) -> None:
        if action == "TransactionEvent":
            self.ad.event_answered(payload, tx_local, response)

    def gave_up(self, action: str, payload: dict, tx_local: int | None) -> None:
        self.ad.log.error("%s seqNo %s of transaction %s was not accepted by the CSMS after %d attempts: dropped",
                          action, payload.get("seqNo"), payload.get("transactionInfo", {}).get("transactionId"),
                          self.max_attempts())

    def max_attempts(self) -> int:
        return max(1, self.ad.integer("OCPPCommCtrlr", "MessageAttempts", instance="TransactionEvent"))

    def retry_interval(self) -> float:
        return float(self.ad.integer("OCPPCommCtrlr", "MessageAttemptInterval", instance="TransactionEvent"))




class Ocpp201Adapter(AdapterBase):
    version = "2.0.1"

    def __init__(self, station: Station, store: Store, cfg: StationConfig, clock: Clock, log: logging.Logger) -> None:
        self.station = station
        self.store = store
        self.cfg = cfg
        self.scheduler = as_scheduler(clock)
        self.clock = self.scheduler
        self.log = log
        numbers = connector_numbers(cfg.evses)
        self._address = {cid: pair for pair, cid in numbers.items() if cid in station.connectors}
        self._number = {pair: cid for cid, pair in self._address.items()}
        layout: dict[int, list[int]] = {}
        for evse_id, connector_id in sorted(self._number):
            layout.setdefault(evse_id, []).append(connector_id)
        self.layout = layout
        identity = {"vendor": cfg.vendor, "model": cfg.model, "serial": cfg.serial,
                    "firmware_version": cfg.firmware_version}
        self.dm = DeviceModel(store, layout, identity, log)
        self.device_model = self.dm
        self._station_values()
        self.settings = Settings()
        self.apply_variables()
        self.link: Link | None = None
        self.tasks = Tasks(log, "ocpp")
        self.spawn = self.tasks.spawn
        modules = blocks()
        self.routes: dict[str, Handler] = routing_table(*(mod.routes for mod in modules))
        self.services: dict[str, Any] = {}
        # TriggerMessage requestedMessage -> fn(cids) returning the answer (or (answer, after)) of a
        # message a block's service sends (FirmwareStatusNotification, LogStatusNotification, ...)
        self.triggers: dict[str, Callable[[list[int]], Any]] = {}
        self.registrar = self._registration(lambda: self.integer("OCPPCommCtrlr", "HeartbeatInterval"))
        self.status = StatusReporter(self)
        self.outbox = Outbox(
            store=store, scheduler=self.scheduler, log=log, send=self.call, online=lambda: self.online,
            policy=TransactionMessages(self), spawn=self.spawn,
        )
        self.transactions = TransactionEvents(self)
        self.aligned = AlignedSchedule(
            self.scheduler, lambda: self.integer("AlignedDataCtrlr", "Interval"), lambda: self.spawn(self._send_aligned())
        )
        self._sampling: dict[int, SampledSchedule] = {}
        self._sampling_ended: dict[int, SampledSchedule] = {}  # SampledDataCtrlr.TxEndedInterval
        self.aligned_ended = AlignedSchedule(  # AlignedDataCtrlr.TxEndedInterval: samples for the Ended event
            self.scheduler, lambda: self.integer("AlignedDataCtrlr", "TxEndedInterval"),
            lambda: self.spawn(self._ended_samples(list(self.transactions.open), "AlignedDataCtrlr")))
        self.reset_scheduled: dict[int, str] = {}  # EVSE id (0: the station) -> reset type, waiting for idle
        for mod in modules:  # the blocks' own services (handlers/__init__.py)
            make = getattr(mod, "service", None)
            if make is not None:
                self.services[mod.__name__.rsplit(".", 1)[-1]] = make(self)
        self.security = self.services["security"]  # the shared security engine (handlers/security.py)
        self.security_events = SecurityEventSources(self)  # InvalidMessages, MemoryExhaustion, tamper
        self.boot_reason = str(store.get(NS, "boot_reason", "PowerUp"))
        store.put(NS, "boot_reason", "PowerUp")  # the next start is a power-up unless a reset says otherwise
        for component, variable in WATCHED:
            self.dm.subscribe(component, variable, self._variable_changed)

    def _station_values(self) -> None:
        """The device model's values only the station knows: the time, each EVSE's power, the
        security profile in use."""
        self.dm.provide("ClockCtrlr", "DateTime", lambda: iso(self.scheduler.now()))
        for evse in self.station.evses.values():
            self._actual("EVSE", "Power", round(evse.max_current_a * 230.0 * evse.phases), evse=evse.evse_id,
                         attribute="MaxSet")
        self._actual("SecurityCtrlr", "SecurityProfile", self.cfg.security_profile)

    def _actual(self, component: str, variable: str, value: Any, **kw: Any) -> None:
        try:
            self.dm.set_actual(component, variable, value, **kw)
        except (KeyError, ValueError) as e:
            self.log.warning("device model %s.%s = %r not kept: %s", component, variable, value, e)

    def availability_changed(self, cid: int, status: str) -> None:
        """A connector's ConnectorStatus: its AvailabilityState, its EVSE's and the station's."""
        evse_id, connector_id = self.address(cid)
        self._actual("Connector", "AvailabilityState", status, evse=evse_id, connector=connector_id)
        faults = [self.station.status_of(c)[1] for c in self.connectors_of(evse_id)]
        self._actual("Connector", "Problem", faults[self.connectors_of(evse_id).index(cid)] is not None,
                     evse=evse_id, connector=connector_id)
        self._actual("EVSE", "Problem", any(f is not None for f in faults), evse=evse_id)
        states = [self.status.current(c) for c in self.connectors_of(evse_id)]
        for word in ("Occupied", "Faulted", "Reserved", "Available", "Unavailable"):
            if word in states:
                self._actual("EVSE", "AvailabilityState", word, evse=evse_id)
                break
        self._actual("ChargingStation", "AvailabilityState", "Available" if self.station.operative else "Unavailable")

    def power_seen(self, cid: int, watts: float) -> None:
        """A meter reading's power: the EVSE's Power (Actual), which monitors may watch."""
        self._actual("EVSE", "Power", round(max(0.0, watts), 1), evse=self.address(cid)[0])

    # -- device model reads ------------------------------------------------------------------
    def _value(self, component: str, variable: str, **kw: Any) -> Any:
        return self.dm.value(component, variable, **kw)

    def integer(self, component: str, variable: str, **kw: Any) -> int:
        v = self._value(component, variable, **kw)
        try:
            return int(v)
        except (TypeError, ValueError):
            return 0

    def flag(self, component: str, variable: str, **kw: Any) -> bool:
        v = self._value(component, variable, **kw)
        return v if isinstance(v, bool) else str(v).lower() == "true"

    def text(self, component: str, variable: str, **kw: Any) -> str:
        v = self._value(component, variable, **kw)
        if isinstance(v, list | tuple):
            return ",".join(str(x) for x in v)
        return "" if v is None else str(v)

    def members(self, component: str, variable: str, **kw: Any) -> list[str]:
        v = self._value(component, variable, **kw)
        if isinstance(v, list | tuple):
            return [str(x) for x in v]
        return parse_measurands(str(v or ""))

    def apply_variables(self) -> None:
        s = self.settings
        s.connection_timeout_s = float(self.integer("TxCtrlr", "EVConnectionTimeOut"))
        s.stop_on_ev_side_disconnect = self.flag("TxCtrlr", "StopTxOnEVSideDisconnect")
        s.unlock_on_ev_side_disconnect = self.flag("OCPPCommCtrlr", "UnlockOnEVSideDisconnect")
        s.stop_on_invalid_id = self.flag("TxCtrlr", "StopTxOnInvalidId")
        s.max_energy_on_invalid_id_wh = self.integer("TxCtrlr", "MaxEnergyOnInvalidId") or None
        s.authorize_remote_tx_requests = self.authorize_remote_start()
        s.auth = auth_rules(self)  # station/ocpp201/authorization.py

    def authorize_remote_start(self) -> bool:
        return self.flag("AuthCtrlr", "AuthorizeRemoteStart")

    def _variable_changed(self, ck: tuple, vk: tuple, value: Any) -> None:
        component, variable = ck[0], vk[0]
        self.apply_variables()
        if variable == "HeartbeatInterval":
            self.registrar.heartbeat_interval_changed()
        elif component == "AlignedDataCtrlr" and variable == "Interval":
            self.aligned.interval_changed()
        elif component == "SampledDataCtrlr" and variable == "TxUpdatedInterval":
            for schedule in self._sampling.values():
                schedule.interval_changed()
        elif component == "SampledDataCtrlr" and variable == "TxEndedInterval":
            for schedule in self._sampling_ended.values():
                schedule.interval_changed()
        elif component == "AlignedDataCtrlr" and variable == "TxEndedInterval":
            self.aligned_ended.interval_changed()

    # -- addresses ---------------------------------------------------------------------------
    def address(self, cid: int) -> tuple[int, int]:
        """The station's connector number as (evseId, connectorId)."""
        return self._address[cid]

    def connector_number(self, evse_id: int, connector_id: int = 1) -> int | None:
        return self._number.get((evse_id, connector_id))

    def connectors(self) -> list[int]:
        """Every connector number of the station, in order."""
        return sorted(self._address)

    def connectors_of(self, evse_id: int) -> list[int]:
        return [cid for (e, _), cid in sorted(self._number.items()) if e == evse_id]

    def connector_facts(self, cid: int) -> tuple[ConnectorState, bool]:
        state, _ = self.station.status_of(cid)
        return state, self.station.connectors[cid].plugged

    # -- life cycle --------------------------------------------------------------------------
    # the connection: the network connection profile in use (handlers/network.py) decides the URL,
    # the security profile, Basic auth and TLS; the security block (handlers/security.py) turns
    # failed attempts into security events
    def basic_auth(self) -> tuple[str, str] | None:
        """HTTP Basic credentials of security profiles 1 and 2: the station id and BasicAuthPassword."""
        network = self.services.get("network")
        if network is not None:
            return network.basic_auth()
        password = self.text("SecurityCtrlr", "BasicAuthPassword")
        return (self.cfg.id, password) if password and self.cfg.security_profile in (1, 2) else None

    def url(self) -> str:
        network = self.services.get("network")
        return network.url() if network is not None else self.cfg.url_for_station()

    def make_link(self, ssl: Any = None, reconnecting: bool = False) -> Link:
        network = self.services.get("network")
        kind: Any = Link if network is None else partial(network.link_type, delay=network.retry_delay)
        self.link = kind(
            url=self.url(),
            version="2.0.1",
            handler=self.handle,
            on_open=self.on_open,
            on_close=self.on_close,
            log=self.log,
            basic_auth=self.basic_auth(),
            ssl=ssl or (network.ssl_context() if network is not None else None),
            ca_file=self.cfg.ca_file,
            on_failure=self._link_failed,
            on_invalid=self.security_events.invalid_message,
            ping_interval=float(self.integer("OCPPCommCtrlr", "WebSocketPingInterval")) or None,
            reconnecting=reconnecting,
        )
        if network is not None:
            network.attach(self.link)
        return self.link

    def _link_failed(self, e: BaseException) -> None:
        """A connection attempt failed: its security event, and the network profile fallback."""
        security = self.services.get("security")
        if security is not None:
            security.attempt_failed(e)
        network = self.services.get("network")
        if network is not None:
            network.attempt_failed(e)

    def _each_service(self, hook: str) -> None:
        for name, svc in self.services.items():
            fn = getattr(svc, hook, None)
            if fn is None:
                continue
            try:
                fn()
            except Exception:  # noqa: BLE001 - one block's failure must not stop the others
                self.log.exception("%s.%s() failed", name, hook)

    def _tell_services(self, hook: str, *args: Any) -> None:
        """Tell the blocks' services that have ``hook`` about a transaction: ``transaction_started``
        / ``transaction_stopped`` (the core session, inside the store transaction of its start or
        stop), ``tx_opened`` / ``tx_closed`` (the 2.0.1 transaction)."""
        for name, svc in self.services.items():
            fn = getattr(svc, hook, None)
            if fn is None:
                continue
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - one block's failure must not stop the transaction
                self.log.exception("%s.%s() failed", name, hook)

    def _clock_set(self) -> None:
        """The wall clock jumped (set by hand, NTP stepping it): security event SettingSystemTime."""
        self.security.event("SettingSystemTime", f"the system time was changed (now {iso(self.scheduler.now())})")

    async def start(self) -> None:
        if hasattr(self.scheduler, "on_wall_jump"):
            self.scheduler.on_wall_jump(self._clock_set)
        self._each_service("start")
        self.aligned.start()
        self.aligned_ended.start()
        self.outbox.kick()
        for t in list(self.transactions.open.values()):
            self.transaction_opened(t)

    async def stop(self) -> None:
        if hasattr(self.scheduler, "off_wall_jump"):
            self.scheduler.off_wall_jump(self._clock_set)
        self._each_service("stop")
        self.registrar.stop()
        self.aligned.stop()
        self.aligned_ended.stop()
        self.transactions.stop()
        for schedules in (self._sampling, self._sampling_ended):
            for schedule in schedules.values():
                schedule.stop()
            schedules.clear()
        self.status.stop()
        self.outbox.stop()
        self.tasks.cancel_all()


    async def on_open(self) -> None:
        security, network = self.services.get("security"), self.services.get("network")
        if security is not None:
            security.connection_opened()
        if network is not None and network.connected():  # new credentials: the CSMS sees a new session
            self.spawn(self.registrar.boot(again=True))
            return
        self.registrar.connected()
        if self.registrar.accepted:
            self.status.reconnected()
            self.outbox.kick()
            self._each_service("reconnected")
            self.security_events.deliver_held()  # a MemoryExhaustion raised while offline

    def on_close(self) -> None:
        self.registrar.disconnected()
        self.status.disconnected()

    async def send_parts(self, action: str, key: str, items: list, per: int, fields: dict,
                         numbered: bool = True) -> None:
        """A message too long for one: ``items`` in parts of ``per`` under ``key``, each with
        ``fields``, seqNo from 0 (when ``numbered``) and tbc on all but the last. A part the CSMS
        does not take ends the series (the CSMS asks again)."""
        per = max(1, per)
        parts = [items[i:i + per] for i in range(0, len(items), per)]
        for n, part in enumerate(parts):
            payload = {**fields, key: part}
            if numbered:
                payload["seqNo"] = n
            if n < len(parts) - 1:
                payload["tbc"] = True
            if await self.send_quietly(action, payload) is None:
                return

    # -- registration (B01-B04) ---------------------------------------------------------------
    def boot_payload(self) -> dict:
        cs: dict = {"model": self.cfg.model[:20], "vendorName": self.cfg.vendor[:50],
                    "firmwareVersion": self.cfg.firmware_version[:50]}
        if self.cfg.serial:
            cs["serialNumber"] = self.cfg.serial[:25]
        return {"chargingStation": cs, "reason": self.boot_reason}

    def _boot_answered(self, status: str, interval: int) -> None:
        self.station.on_event(f"CSMS answered BootNotification: {status}")
        if status != "Accepted":
            return
        if interval > 0:
            problems = self.dm.set_variables([{"component": {"name": "OCPPCommCtrlr"},
                                               "variable": {"name": "HeartbeatInterval"},
                                               "attributeValue": str(interval)}], source="BootNotification")
            if problems and problems[0].get("attributeStatus") not in ("Accepted", "RebootRequired"):
                self.log.warning("BootNotification interval %d s is not a usable HeartbeatInterval; keeping %s s",
                                 interval, self.integer("OCPPCommCtrlr", "HeartbeatInterval"))
        if self.link is not None:
            self.link.registered()
        self.status.send_all()
        self.outbox.kick()
        self._each_service("registered")
        self.security_events.deliver_held()

    # -- status (G01-G05) ---------------------------------------------------------------------
    def status_changed(self, connector_id: int, state: ConnectorState, fault: str | None, info: str) -> None:
        if connector_id in self._address:
            self.status.changed(connector_id)

    # -- authorization (C01) ------------------------------------------------------------------
    async def authorize(self, id_tag: str, token_type: str | None = None) -> IdTagInfo | None:
        if not self.online:
            return None
        token = {"idToken": id_tag, "type": token_type or "ISO14443"}
        try:
            resp = await self.call("Authorize", {"idToken": token})
        except (TimeoutError, CallErrorReceived, NotConnected) as e:
            self.log.warning("Authorize failed: %s; using offline rules", e)
            return None
        if not isinstance(resp, dict) or not isinstance(resp.get("idTokenInfo"), dict):
            self.log.warning("Authorize answer unusable; using offline rules")
            return None
        return vocabulary.id_tag_info(resp["idTokenInfo"])

    # -- transactions (E) ----------------------------------------------------------------------
    def domain_event(self, event: m.DomainEvent) -> None:
        self.transactions.domain_event(event)

    def transaction_started(self, tx: Transaction) -> None:
        self.transactions.session_started(tx)
        self._tell_services("transaction_started", tx)

    def transaction_stopped(self, tx: Transaction) -> None:
        self.transactions.session_stopped(tx)
        self._tell_services("transaction_stopped", tx)
        self._maybe_reset()
        self._each_service("transaction_ended")  # e.g. a firmware installation waiting for idle

    def queue_event(self, payload: dict, tx_local: int | None) -> None:
        self.outbox.add("TransactionEvent", payload, tx_local)

    def transaction_opened(self, t: Tx201) -> None:
        old = self._sampling.pop(t.cid, None)
        if old is not None:
            old.stop()
        schedule = SampledSchedule(self.scheduler, lambda: self.integer("SampledDataCtrlr", "TxUpdatedInterval"),
                                   lambda cid=t.cid: self.spawn(self._sample(cid)))
        self._sampling[t.cid] = schedule
        schedule.start()
        old_ended = self._sampling_ended.pop(t.cid, None)
        if old_ended is not None:
            old_ended.stop()
        ended = SampledSchedule(self.scheduler, lambda: self.integer("SampledDataCtrlr", "TxEndedInterval"),
                                lambda cid=t.cid: self.spawn(self._ended_samples([cid], "SampledDataCtrlr")))
        self._sampling_ended[t.cid] = ended
        ended.start()
        self._tell_services("tx_opened", t)

    def transaction_closed(self, t: Tx201) -> None:
        for schedules in (self._sampling, self._sampling_ended):
            schedule = schedules.pop(t.cid, None)
            if schedule is not None:
                schedule.stop()
        self._tell_services("tx_closed", t)
        self.spawn(self._closed_later())

    async def _closed_later(self) -> None:
        self._maybe_reset()
        self._each_service("transaction_ended")

    def event_answered(self, payload: dict, tx_local: int | None, response: dict) -> None:
        """The CSMS answered a TransactionEvent: an idTokenInfo about the token sent with it."""
        if "totalCost" in response and "display" in self.services:  # I03: the running cost
            ended = payload.get("eventType") == "Ended"
            self.services["display"].cost_updated(payload["transactionInfo"]["transactionId"],
                                                  float(response["totalCost"]),
                                                  payload.get("evse", {}).get("id") if ended else None)
        info = response.get("idTokenInfo")
        token = payload.get("idToken")
        if not isinstance(info, dict) or not isinstance(token, dict):
            return
        tag_info = vocabulary.id_tag_info(info)
        self.station.remember(token["idToken"], tag_info)
        if tx_local is None:
            return
        tx = self.station.find_transaction(lambda t: t.local_id == tx_local)
        if tx is not None and tx.active and payload.get("eventType") != "Ended" and tx.id_tag == token["idToken"]:
            self.station.on_start_result(tx, tag_info)

    async def _ended_samples(self, cids: list[int], component: str) -> None:
        for cid in cids:
            await self.station.read_meter(cid)
            self.transactions.ended_sample(cid, component)

    async def _sample(self, cid: int) -> None:
        await self.station.read_meter(cid)
        self.transactions.periodic(cid)

    async def _send_aligned(self) -> None:
        """AlignedDataCtrlr.Interval came round: Sample.Clock values, in the transaction's events
        for a connector with a transaction, as MeterValues for the others. With SendDuringIdle
        true they are sent only while no transaction runs at all (J01, TC_J_06)."""
        measurands = parse_measurands(self.text("AlignedDataCtrlr", "Measurands"))
        if not measurands:
            return
        if self.flag("AlignedDataCtrlr", "SendDuringIdle") and self.transactions.open:
            return
        for cid in self.connectors():
            reading = await self.station.read_meter(cid)
            if reading is None:
                continue
            if self.transactions.clock_aligned(cid):
                continue
            if not self.online:
                continue
            samples = samples_for(reading, measurands, self.station.evse_of(cid).phases)
            if samples:
                evse_id, _ = self.address(cid)
                mv = meter_value(samples, "Sample.Clock", self.scheduler.now())
                self.spawn(self.send_quietly("MeterValues", {"evseId": evse_id, "meterValue": [mv]}))

    async def trigger_meter_values(self, cids: list[int]) -> None:
        """TriggerMessage MeterValues: one MeterValues per EVSE named (of its first connector)."""
        measurands = parse_measurands(self.text("SampledDataCtrlr", "TxUpdatedMeasurands"))
        done: set[int] = set()
        for cid in cids:
            evse_id, _ = self.address(cid)
            if evse_id in done:
                continue
            done.add(evse_id)
            reading = await self.station.read_meter(cid)
            if reading is None:
                continue
            samples = samples_for(reading, measurands, self.station.evse_of(cid).phases, self.station.offered_current(cid))
            mv = meter_value(samples, "Trigger", self.scheduler.now())
            await self.send_quietly("MeterValues", {"evseId": evse_id, "meterValue": [mv]})


    # -- reset (B11, B12) ---------------------------------------------------------------------
    def busy(self, evse_id: int | None = None) -> bool:
        cids = self.connectors_of(evse_id) if evse_id else self.connectors()
        return any(c in self.transactions.open or self.transactions.core_tx(c) is not None for c in cids)

    def schedule_reset(self, evse_id: int, kind: str) -> None:
        self.reset_scheduled[evse_id] = kind

    def _maybe_reset(self) -> None:
        for evse_id in list(self.reset_scheduled):
            if not self.busy(evse_id or None):
                kind = self.reset_scheduled.pop(evse_id)
                self.spawn(self.reset(evse_id, kind))

    async def reset(self, evse_id: int, kind: str) -> None:
        """Reset the station (``evse_id`` 0) or one EVSE: transactions end (ImmediateReset), then the
        station restarts, or the EVSE is made available again."""
        if evse_id == 0:
            self.store.put(NS, "boot_reason", "RemoteReset")
            await self.station.reset("Hard" if kind == "Immediate" else "Soft")
            return
        for cid in self.connectors_of(evse_id):
            tx = self.transactions.core_tx(cid)
            if tx is not None:
                await self.station.stop_transaction(cid, StopReason.HardReset)
        self.station.on_event(f"EVSE {evse_id} reset")

    # -- CSMS requests -----------------------------------------------------------------------
    async def handle(self, action: str, payload: dict) -> Any:
        self.registrar.activity()
        handler = self.routes.get(action)
        if handler is None:
            raise NotSupportedError(description=f"{action} is not supported by this station")
        status = self.registrar.status
        if status == "Rejected" or (status != "Accepted" and action not in WHILE_PENDING):
            # B02.FR.xx / B03.FR.xx: before the boot is Accepted only provisioning requests are served
            raise SecurityError(description=f"{action} refused: BootNotification is {status or 'not answered yet'}")
        return await handler(self, payload)

    def now_iso(self) -> str:
        return iso(self.scheduler.now())


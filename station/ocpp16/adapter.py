"""OCPP 1.6J adapter: translates between the station and the 1.6 wire messages.

It wires the version-independent services (station/registration.py: boot and heartbeat;
station/outbox.py: transaction messages in order across outages; station/metering.py: sampled and
clock-aligned schedules) to 1.6: its configuration keys (config_keys.py), StatusNotification
(status.py), MeterValue objects (meter_values.py), and the CSMS's requests, handled per feature
profile in handlers/ behind one routing table (PROFILES). All time comes from one Scheduler.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any

from ocpp.exceptions import NotSupportedError

from station.adapter_base import AdapterBase, as_scheduler
from station.config import StationConfig
from station.core.auth import AuthRules, IdTagInfo
from station.core.clock import Clock, iso
from station.core.metering import parse_measurands, samples_for
from station.core.model import ConnectorState, StopReason
from station.core.settings import Settings
from station.core.transaction import Transaction
from station.link import CallErrorReceived, Link, NotConnected
from station.metering import AlignedSchedule, SampledSchedule, station_total
from station.ocpp16 import vocabulary
from station.ocpp16.answers import answer_problem
from station.ocpp16.config_keys import ConfigurationKeys
from station.ocpp16.handlers import (
    Handler,
    Routes,
    core,
    local_list,
    remote_trigger,
    reservation,
    routing_table,
)
from station.ocpp16.handlers import firmware as firmware_handlers
from station.ocpp16.handlers import security as security_handlers
from station.ocpp16.handlers import smart_charging as smart_charging_handlers
from station.ocpp16.meter_values import meter_value, sampled_value
from station.ocpp16.security_events import SecurityEventSources
from station.ocpp16.status import StatusReporter
from station.outbox import Outbox
from station.station import Station
from station.store import Store
from station.tasks import Tasks

TX_ACTIONS = ("StartTransaction", "StopTransaction", "MeterValues")

# the feature profiles whose requests this station answers (SupportedFeatureProfiles lists them)
PROFILES: tuple[Routes, ...] = (core.routes, remote_trigger.routes, local_list.routes, reservation.routes,
                                firmware_handlers.routes, smart_charging_handlers.routes, security_handlers.routes)
ROUTES: Mapping[str, Handler] = MappingProxyType(routing_table(*PROFILES))


class TransactionMessages:
    """The 1.6 part of the outbox: StopTransaction and MeterValues carry the transactionId the
    CSMS gave in its StartTransaction answer, unknown when they were queued (offline).

    A StartTransaction the CSMS refused TransactionMessageAttempts times (CallError or an unusable
    answer, see answers.py) is dropped, as 1.6 allows; its transaction is then marked with
    ``NO_TRANSACTION_ID`` (-1, a value this station never gets from a CSMS: it checks that ids are
    32-bit integers and keeps -1 for this) and its later messages still go out: MeterValues
    without a transactionId (optional in 1.6: readings of the connector), StopTransaction with
    transactionId -1, so the CSMS still gets the energy, times and idTag of the session."""

    NO_TRANSACTION_ID = -1

    def __init__(self, adapter: Ocpp16Adapter) -> None:
        self.ad = adapter

    def prepare(self, action: str, payload: dict, tx_local: int | None) -> dict | None:
        if action in ("StopTransaction", "MeterValues") and tx_local is not None:
            tx_id = self.ad.store.tx_id(tx_local)
            if tx_id is None:
                return None
            if tx_id == self.NO_TRANSACTION_ID and action == "MeterValues":
                payload.pop("transactionId", None)
            else:
                payload["transactionId"] = tx_id
        return payload

    def check(self, action: str, response: Any) -> str | None:
        return answer_problem(action, response)

    def record(self, action: str, payload: dict, tx_local: int | None, response: dict) -> None:
        if action == "StartTransaction" and tx_local is not None:
            tx_id = response["transactionId"]
            if tx_id == self.NO_TRANSACTION_ID:
                self.ad.log.warning("the CSMS numbered a transaction -1 (the id this station keeps for "
                                    "'not registered'): later messages carry -1")
            self.ad.store.tx_set_id(tx_local, tx_id)
        elif action == "StopTransaction":
            self.ad.store.tx_prune()

    def delivered(self, action: str, payload: dict, tx_local: int | None, response: dict) -> None:
        if action == "StartTransaction" and tx_local is not None:
            self.ad.start_confirmed(tx_local, response)
        elif action == "StopTransaction" and "idTagInfo" in response and payload.get("idTag"):
            self.ad.station.remember(payload["idTag"], IdTagInfo.from_ocpp(response["idTagInfo"]))

    def gave_up(self, action: str, payload: dict, tx_local: int | None) -> None:
        if action == "StartTransaction" and tx_local is not None:
            self.ad.store.tx_set_id(tx_local, self.NO_TRANSACTION_ID)
            self.ad.log.error("transaction %d was never registered by the CSMS: its MeterValues go without a "
                              "transactionId, its StopTransaction with transactionId -1", tx_local)

    def max_attempts(self) -> int:
        return self.ad.keys.int("TransactionMessageAttempts")

    def retry_interval(self) -> float:
        return float(self.ad.keys.int("TransactionMessageRetryInterval"))




class Ocpp16Adapter(AdapterBase):
    version = "1.6"
    _sampled_value = staticmethod(sampled_value)  # kept for tests/unit/test_core_metering.py

    def __init__(self, station: Station, store: Store, cfg: StationConfig, clock: Clock, log: logging.Logger) -> None:
        self.station = station
        self.store = store
        self.cfg = cfg
        self.scheduler = as_scheduler(clock)
        self.clock = self.scheduler
        self.log = log
        self.security = security_handlers.SecurityService(self)  # certificates, SecurityProfile, security events
        self.keys = ConfigurationKeys(store, len(station.connectors), self.security.profile, log=log)
        self.keys.writers["SecurityProfile"] = self.security.change_profile
        self.settings = Settings()
        self.apply_keys()
        self.link: Link | None = None
        self.tasks = Tasks(log, "ocpp")
        self.spawn = self.tasks.spawn
        self.security_events = SecurityEventSources(self)  # InvalidMessages, MemoryExhaustion, tamper
        self.routes: Mapping[str, Handler] = ROUTES  # one table, shared by every station of the process
        self.registrar = self._registration(lambda: self.keys.int("HeartbeatInterval"))
        self.status = StatusReporter(
            station=station, keys=self.keys, scheduler=self.scheduler, log=log, call=self.call,
            spawn=self.spawn, online=lambda: self.online,
        )
        self.outbox = Outbox(
            store=store, scheduler=self.scheduler, log=log, send=self.call, online=lambda: self.online,
            policy=TransactionMessages(self), spawn=self.spawn,
        )
        self.aligned = AlignedSchedule(
            self.scheduler, lambda: self.keys.int("ClockAlignedDataInterval"), lambda: self.spawn(self._send_aligned())
        )
        self._sampling: dict[int, SampledSchedule] = {}
        self.firmware = firmware_handlers.service(self)  # UpdateFirmware, GetDiagnostics (station/firmware.py)
        self.charging = smart_charging_handlers.service(self)  # charging profiles and limits (station/charging.py)

    # -- settings from keys ------------------------------------------------------------------
    def apply_keys(self) -> None:
        k = self.keys
        self.settings.connection_timeout_s = float(k.int("ConnectionTimeOut"))
        self.settings.stop_on_ev_side_disconnect = k.bool("StopTransactionOnEVSideDisconnect")
        self.settings.unlock_on_ev_side_disconnect = k.bool("UnlockConnectorOnEVSideDisconnect")
        self.settings.stop_on_invalid_id = k.bool("StopTransactionOnInvalidId")
        self.settings.max_energy_on_invalid_id_wh = k.int("MaxEnergyOnInvalidId") or None
        self.settings.authorize_remote_tx_requests = k.bool("AuthorizeRemoteTxRequests")
        self.settings.auth = AuthRules(
            authorization_cache_enabled=k.bool("AuthorizationCacheEnabled"),
            local_auth_list_enabled=k.bool("LocalAuthListEnabled"),
            local_pre_authorize=k.bool("LocalPreAuthorize"),
            local_authorize_offline=k.bool("LocalAuthorizeOffline"),
            allow_offline_tx_for_unknown_id=k.bool("AllowOfflineTxForUnknownId"),
        )

    def key_changed(self, key: str) -> Callable[[], Awaitable[None]] | None:
        """ChangeConfiguration accepted ``key``: apply it now. Returns what must wait until the
        answer is on the wire (a reconnect), or None."""
        self.apply_keys()
        if key == "HeartbeatInterval":
            self.registrar.heartbeat_interval_changed()
        elif key == "MeterValueSampleInterval":
            for schedule in self._sampling.values():
                schedule.interval_changed()
        elif key == "ClockAlignedDataInterval":
            self.aligned.interval_changed()
        elif key == "AuthorizationKey":
            return self._reconnect_with_new_key()
        elif key == "SecurityProfile":
            return self.security.after_profile_change()
        return None

    # -- life cycle --------------------------------------------------------------------------
    def basic_auth(self) -> tuple[str, str] | None:
        """HTTP Basic credentials of security profiles 1 and 2 (the station id, AuthorizationKey)."""
        return self.security.basic_auth()

    def make_link(self, ssl: Any = None, reconnecting: bool = False) -> Link:
        self.link = Link(
            url=self.security.url(),
            version="1.6",
            handler=self.handle,
            on_open=self.on_open,
            on_close=self.on_close,
            log=self.log,
            basic_auth=self.basic_auth(),
            ssl=ssl or self.security.ssl_context(),  # profiles 2, 3: installed roots, client certificate
            ca_file=self.cfg.ca_file,
            on_failure=self.security.link_failed,
            on_invalid=self.security_events.invalid_message,
            ping_interval=float(self.keys.int("WebSocketPingInterval")) or None,
            reconnecting=reconnecting,
        )
        return self.link

    def _clock_set(self) -> None:
        """The wall clock jumped (set by hand, NTP stepping it): security event SettingSystemTime."""
        self.security.event("SettingSystemTime", f"the system time was changed (now {iso(self.scheduler.now())})")

    async def start(self) -> None:
        if hasattr(self.scheduler, "on_wall_jump"):
            self.scheduler.on_wall_jump(self._clock_set)
        self.aligned.start()
        self.outbox.kick()
        self.firmware.start()
        self.charging.start()

    async def stop(self) -> None:
        if hasattr(self.scheduler, "off_wall_jump"):
            self.scheduler.off_wall_jump(self._clock_set)
        self.registrar.stop()
        self.firmware.stop()
        self.charging.stop()
        self.aligned.stop()
        for schedule in self._sampling.values():
            schedule.stop()
        self._sampling.clear()
        self.status.stop()
        self.outbox.stop()
        self.tasks.cancel_all()


    async def on_open(self) -> None:
        self.security.connected()
        self.registrar.connected()
        if self.registrar.accepted:
            self.status.resend_changed()
            self.outbox.kick()
            self.security_events.deliver_held()  # a MemoryExhaustion raised while offline

    def on_close(self) -> None:
        self.registrar.disconnected()

    # -- registration ------------------------------------------------------------------------
    def boot_payload(self) -> dict:
        payload = {
            "chargePointVendor": self.cfg.vendor[:20],
            "chargePointModel": self.cfg.model[:20],
            "firmwareVersion": self.cfg.firmware_version[:50],
        }
        if self.cfg.serial:
            # chargeBoxSerialNumber is deprecated in 1.6 but still read by many CSMSs and test suites
            payload["chargePointSerialNumber"] = self.cfg.serial[:25]
            payload["chargeBoxSerialNumber"] = self.cfg.serial[:25]
        return payload

    def _boot_answered(self, status: str, interval: int) -> None:
        self.station.on_event(f"CSMS answered BootNotification: {status}")
        if status != "Accepted":
            return
        if interval > 0 and self.keys.change("HeartbeatInterval", str(interval))[0] != "Accepted":
            self.log.warning("BootNotification interval %d s is out of the HeartbeatInterval range; keeping %s s",
                             interval, self.keys.get("HeartbeatInterval"))
        if self.link is not None:
            self.link.registered()  # the link's reconnect back-off starts over
        self.status.send_all()
        self.outbox.kick()
        self.security.registered()  # StartupOfTheDevice / ResetOrReboot
        self.security_events.deliver_held()
        self.firmware.registered()  # an installation done before the restart is reported

    def _reconnect_with_new_key(self) -> Callable[[], Awaitable[None]] | None:
        """AuthorizationKey changed (security whitepaper "update password", OCTT TC_073_CS): once
        the answer is sent, connect again with the new password."""
        credentials = self.basic_auth()
        link = self.link
        if credentials is None or link is None:
            return None

        async def reconnect() -> None:
            link.set_basic_auth(credentials)
            await link.reconnect("AuthorizationKey changed: connecting with the new password")

        return reconnect

    # -- status ------------------------------------------------------------------------------
    def status_changed(self, connector_id: int, state: ConnectorState, fault: str | None, info: str) -> None:
        self.status.changed(connector_id, state, fault)

    def local_list_conflict(self, id_tag: str, listed: IdTagInfo, answer: IdTagInfo) -> None:
        """1.6 section 3.5.2: a conflict between the local list and an answer of the CSMS is told by
        a StatusNotification on connector 0 with errorCode LocalListConflict."""
        self.status.report_error(0, "LocalListConflict", f"{id_tag}: list {listed.status}, CSMS {answer.status}")

    # -- authorization -----------------------------------------------------------------------
    async def authorize(self, id_tag: str, token_type: str | None = None) -> IdTagInfo | None:
        """Authorize.req (1.6 knows no token type: ``token_type`` is not sent)."""
        if not self.online:
            return None
        try:
            resp = await self.call("Authorize", {"idTag": id_tag})
        except (TimeoutError, CallErrorReceived, NotConnected) as e:
            self.log.warning("Authorize failed: %s; using offline rules", e)
            return None
        problem = answer_problem("Authorize", resp)
        if problem:
            self.log.warning("Authorize answer unusable (%s); using offline rules", problem)
            return None
        return IdTagInfo.from_ocpp(resp["idTagInfo"])

    # -- transactions ------------------------------------------------------------------------
    def transaction_started(self, tx: Transaction) -> None:
        self.charging.transaction_started(tx)  # its limit before its first offer
        payload = {
            "connectorId": tx.connector_id,
            "idTag": tx.id_tag,
            "meterStart": tx.meter_start_wh,
            "timestamp": iso(tx.started_at),
        }
        if tx.reservation_id is not None:
            payload["reservationId"] = tx.reservation_id
        self.outbox.add("StartTransaction", payload, tx.local_id)
        self._add_stop_samples(tx, "Transaction.Begin", self.station.meter_cache.get(tx.connector_id))
        old = self._sampling.pop(tx.connector_id, None)
        if old is not None:
            old.stop()
        schedule = SampledSchedule(
            self.scheduler, lambda: self.keys.int("MeterValueSampleInterval"), lambda: self.spawn(self._sample(tx))
        )
        self._sampling[tx.connector_id] = schedule
        schedule.start()

    def transaction_stopped(self, tx: Transaction) -> None:
        self.charging.transaction_stopped(tx)
        self.firmware.transaction_ended()  # an installation waiting for the station to be idle
        schedule = self._sampling.pop(tx.connector_id, None)
        if schedule is not None:
            schedule.stop()
        if tx.stop_reason is not None and tx.stop_reason is not StopReason.PowerLoss:
            self._add_stop_samples(tx, "Transaction.End", self.station.meter_cache.get(tx.connector_id))
        payload: dict = {
            "transactionId": 0,  # filled in when sent: the CSMS's id may not be known yet
            "meterStop": int(tx.meter_stop_wh or 0),
            "timestamp": iso(tx.stopped_at or self.scheduler.now()),
            "reason": vocabulary.reason(tx.stop_reason),
        }
        if tx.stop_id_tag:
            payload["idTag"] = tx.stop_id_tag
        if tx.samples:
            payload["transactionData"] = tx.samples
        self.outbox.add("StopTransaction", payload, tx.local_id)

    def start_confirmed(self, tx_local: int, resp: dict) -> None:
        """The CSMS answered StartTransaction: keep its transactionId, act on its idTagInfo."""
        tx_id = int(resp["transactionId"])  # checked (answers.py) and stored with the message's removal
        info = IdTagInfo.from_ocpp(resp["idTagInfo"])
        tx = self.station.find_transaction(lambda t: t.local_id == tx_local)
        if tx is not None:
            tx.transaction_id = tx_id
            self.station.on_event(f"CSMS numbered the transaction on connector {tx.connector_id}: transaction {tx_id}")
            self.station.on_start_result(tx, info)

    def queue_meter_values(self, tx: Transaction, meter_values: list[dict]) -> None:
        self.outbox.add("MeterValues", {"connectorId": tx.connector_id, "transactionId": 0, "meterValue": meter_values}, tx.local_id)


    # -- meter values ------------------------------------------------------------------------
    def _add_stop_samples(self, tx: Transaction, context: str, reading: Any) -> None:
        measurands = parse_measurands(self.keys.get("StopTxnSampledData"))
        if not measurands or reading is None:
            return
        samples = samples_for(reading, measurands, self.station.evse_of(tx.connector_id).phases)
        tx.samples.append(meter_value(samples, context, self.scheduler.now()))
        self.station.save_transaction(tx)

    async def _sample(self, tx: Transaction) -> None:
        """MeterValueSampleInterval came round: a Sample.Periodic MeterValues for the transaction."""
        if not tx.active:
            return
        reading = await self.station.read_meter(tx.connector_id)
        if reading is None or not tx.active:
            return
        phases = self.station.evse_of(tx.connector_id).phases
        offered = self.station.offered_current(tx.connector_id)
        now = self.scheduler.now()
        samples = samples_for(reading, parse_measurands(self.keys.get("MeterValuesSampledData")), phases, offered)
        if samples:
            self.queue_meter_values(tx, [meter_value(samples, "Sample.Periodic", now)])
        stop_m = parse_measurands(self.keys.get("StopTxnSampledData"))
        if stop_m:
            tx.samples.append(meter_value(samples_for(reading, stop_m, phases, offered), "Sample.Periodic", now))
        self.station.save_transaction(tx)

    async def _send_aligned(self) -> None:
        """ClockAlignedDataInterval came round: Sample.Clock values of every connector."""
        measurands = parse_measurands(self.keys.get("MeterValuesAlignedData"))
        stop_m = parse_measurands(self.keys.get("StopTxnAlignedData"))
        for cid, conn in self.station.connectors.items():
            reading = await self.station.read_meter(cid)
            if reading is None:
                continue
            phases = self.station.evse_of(cid).phases
            now = self.scheduler.now()
            tx = conn.transaction
            samples = samples_for(reading, measurands, phases)
            if tx is not None:
                if samples:
                    self.queue_meter_values(tx, [meter_value(samples, "Sample.Clock", now)])
                if stop_m:
                    tx.samples.append(meter_value(samples_for(reading, stop_m, phases), "Sample.Clock", now))
                    self.station.save_transaction(tx)
            elif samples and self.online:
                payload = {"connectorId": cid, "meterValue": [meter_value(samples, "Sample.Clock", now)]}
                self.spawn(self.send_quietly("MeterValues", payload))

    async def trigger_meter_values(self, cid: int | None) -> None:
        """TriggerMessage MeterValues (5.17): connector 0 is the main meter, the station's total;
        no connectorId: every connector, one MeterValues each."""
        measurands = parse_measurands(self.keys.get("MeterValuesSampledData"))
        if cid == 0:
            # one reading per EVSE meter (its connectors share it: counted once)
            firsts = [e.connectors[0].connector_id for e in self.station.evses.values()]
            readings = [r for c in firsts if (r := await self.station.read_meter(c)) is not None]
            total = station_total(readings)
            if total is None:
                return
            phases = max(e.phases for e in self.station.evses.values())
            samples = samples_for(total, measurands, phases)
            mv = meter_value(samples, "Trigger", self.scheduler.now(), location="Inlet")
            await self.send_quietly("MeterValues", {"connectorId": 0, "meterValue": [mv]})
            return
        for c in [cid] if cid is not None else list(self.station.connectors):
            reading = await self.station.read_meter(c)
            if reading is None:
                continue
            samples = samples_for(reading, measurands, self.station.evse_of(c).phases, self.station.offered_current(c))
            payload: dict = {"connectorId": c, "meterValue": [meter_value(samples, "Trigger", self.scheduler.now())]}
            tx = self.station.connectors[c].transaction
            if tx is not None and tx.transaction_id is not None:
                payload["transactionId"] = tx.transaction_id
            await self.send_quietly("MeterValues", payload)

    # -- CSMS requests -----------------------------------------------------------------------
    async def handle(self, action: str, payload: dict) -> Any:
        self.registrar.activity()
        handler = self.routes.get(action)
        if handler is None:
            raise NotSupportedError(description=f"{action} is not supported by this station")
        return await handler(self, payload)

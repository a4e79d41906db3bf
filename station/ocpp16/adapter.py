"""OCPP 1.6J adapter: translates between the station core and the 1.6 wire messages.

Owns the 1.6 configuration keys, the boot / heartbeat cycle, the status reporting (with
MinimumStatusDuration), the transaction outbox (StartTransaction, StopTransaction and transaction
MeterValues delivered in order across outages and power loss), sampled and clock-aligned meter
values, and the handlers for the Core and Remote Trigger requests of the CSMS.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from ocpp.exceptions import NotSupportedError

from station.config import StationConfig
from station.core.auth import AuthRules, IdTagInfo
from station.core.clock import Clock, iso
from station.core.evse import Status
from station.core.metering import Sample, parse_measurands, samples_for
from station.core.settings import Settings
from station.core.transaction import Transaction
from station.link import CallErrorReceived, Link, NotConnected
from station.ocpp16.config_keys import ConfigurationKeys
from station.station import Station
from station.store import Store
from station.tasks import Tasks

TX_ACTIONS = ("StartTransaction", "StopTransaction", "MeterValues")


class Ocpp16Adapter:
    version = "1.6"

    def __init__(self, station: Station, store: Store, cfg: StationConfig, clock: Clock, log: logging.Logger) -> None:
        self.station = station
        self.store = store
        self.cfg = cfg
        self.clock = clock
        self.log = log
        self.keys = ConfigurationKeys(store, len(station.connectors))
        self.settings = Settings()
        self.apply_keys()
        self.registration: str | None = None  # Accepted | Pending | Rejected
        self.accepted = asyncio.Event()
        self.outbox_wakeup = asyncio.Event()
        self.link: Link | None = None
        self.tasks = Tasks(log, "ocpp")
        self.spawn = self.tasks.spawn
        self._last_sent_status: dict[int, tuple[str, str]] = {}
        self._status_timers: dict[int, asyncio.TimerHandle] = {}
        self._reported_status: dict[int, tuple[Status, str]] = {}
        self._sample_tasks: dict[int, asyncio.Task] = {}
        self._last_message = clock.monotonic()
        self.heartbeat_interval = float(self.keys.int("HeartbeatInterval"))
        self.on_event = station.on_event

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
            local_auth_list_enabled=False,  # Local Auth List Management profile not yet supported
            local_pre_authorize=k.bool("LocalPreAuthorize"),
            local_authorize_offline=k.bool("LocalAuthorizeOffline"),
            allow_offline_tx_for_unknown_id=k.bool("AllowOfflineTxForUnknownId"),
        )

    # -- life cycle --------------------------------------------------------------------------
    def make_link(self, ssl: Any = None) -> Link:
        profile = self.cfg.security_profile
        password = self.keys.get("AuthorizationKey")
        basic = (self.cfg.id, password) if profile in (1, 2) and password else None
        if profile in (1, 2) and not password:
            self.log.warning("security profile %d needs AuthorizationKey; connecting without basic auth", profile)
        self.link = Link(
            url=self.cfg.url_for_station(),
            version="1.6",
            handler=self.handle,
            on_open=self.on_open,
            on_close=self.on_close,
            log=self.log,
            basic_auth=basic,
            ssl=ssl,
            ping_interval=float(self.keys.int("WebSocketPingInterval")) or None,
        )
        return self.link

    async def start(self) -> None:
        self.spawn(self._heartbeat_loop())
        self.spawn(self._outbox_loop())
        self.spawn(self._aligned_loop())

    async def stop(self) -> None:
        self.tasks.cancel_all()
        for h in self._status_timers.values():
            h.cancel()

    @property
    def online(self) -> bool:
        return self.link is not None and self.link.is_connected and self.registration == "Accepted"

    async def call(self, action: str, payload: dict, timeout: float | None = None) -> dict:
        assert self.link is not None
        resp = await self.link.call(action, payload, timeout)
        self._last_message = self.clock.monotonic()
        return resp

    async def on_open(self) -> None:
        if self.registration != "Accepted":
            await self._boot()
        else:
            self._resend_changed_statuses()
            self.outbox_wakeup.set()

    def on_close(self) -> None:
        self.outbox_wakeup.set()

    async def _boot(self) -> None:
        payload = {
            "chargePointVendor": self.cfg.vendor[:20],
            "chargePointModel": self.cfg.model[:20],
            "firmwareVersion": self.cfg.firmware_version[:50],
        }
        if self.cfg.serial:
            payload["chargePointSerialNumber"] = self.cfg.serial[:25]
        while self.link is not None and self.link.is_connected:
            try:
                resp = await self.call("BootNotification", payload)
            except (TimeoutError, CallErrorReceived) as e:
                self.log.warning("BootNotification failed: %s; retrying in 30 s", e)
                await asyncio.sleep(30)
                continue
            except NotConnected:
                return
            status = resp.get("status")
            interval = int(resp.get("interval", 0) or 0)
            self.registration = status
            self.on_event(f"CSMS answered BootNotification: {status}")
            if status == "Accepted":
                if interval > 0:
                    self.heartbeat_interval = float(interval)
                    self.keys.values["HeartbeatInterval"] = str(interval)
                    self.store.put("ocpp16", "HeartbeatInterval", str(interval))
                self.accepted.set()
                for cid in [0, *self.station.connectors]:
                    self._send_status_now(cid)
                self.outbox_wakeup.set()
                return
            # Pending or Rejected: wait the interval (the CSMS may configure us meanwhile), try again
            wait = interval if interval > 0 else 30
            self.log.info("registration %s; BootNotification again in %d s", status, wait)
            await asyncio.sleep(wait)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if not self.online or self.heartbeat_interval <= 0:
                continue
            if self.clock.monotonic() - self._last_message >= self.heartbeat_interval:
                await self._heartbeat()

    async def _heartbeat(self) -> None:
        try:
            await self.call("Heartbeat", {})
        except (TimeoutError, CallErrorReceived, NotConnected) as e:
            self.log.warning("Heartbeat failed: %s", e)
            self._last_message = self.clock.monotonic()

    # -- status ------------------------------------------------------------------------------
    def status_changed(self, connector_id: int, status: Status, error_code: str, info: str) -> None:
        # what the station reported (it may name a newly raised warning while an older one is
        # still active); sent now, or after MinimumStatusDuration if nothing newer comes
        self._reported_status[connector_id] = (status, error_code)
        handle = self._status_timers.pop(connector_id, None)
        if handle is not None:
            handle.cancel()
        delay = self.keys.int("MinimumStatusDuration")
        if delay > 0 and self._last_sent_status.get(connector_id) is not None:
            self._status_timers[connector_id] = asyncio.get_running_loop().call_later(
                delay, self._send_status_now, connector_id
            )
        else:
            self._send_status_now(connector_id)

    def _send_status_now(self, connector_id: int) -> None:
        self._status_timers.pop(connector_id, None)
        if not self.online:
            return
        status, error = self.station.status_of(connector_id)
        reported = self._reported_status.pop(connector_id, None)
        if reported is not None and reported[0] == status and connector_id:
            if reported[1] in self.station.connectors[connector_id].faults:
                error = reported[1]
        self._last_sent_status[connector_id] = (str(status), error)
        self.spawn(self._send_status(connector_id, str(status), error))

    async def _send_status(self, connector_id: int, status: str, error: str) -> None:
        payload: dict = {"connectorId": connector_id, "errorCode": error, "status": status, "timestamp": iso(self.clock.now())}
        if connector_id:
            info = self.station.connectors[connector_id].faults.get(error, "")
            if info:
                payload["info"] = info[:50]
        try:
            await self.call("StatusNotification", payload)
        except (TimeoutError, CallErrorReceived, NotConnected) as e:
            self.log.warning("StatusNotification failed: %s", e)
            self._last_sent_status.pop(connector_id, None)

    def _resend_changed_statuses(self) -> None:
        for cid in [0, *self.station.connectors]:
            status, error = self.station.status_of(cid)
            if self._last_sent_status.get(cid) != (str(status), error):
                self._send_status_now(cid)

    # -- authorization -----------------------------------------------------------------------
    async def authorize(self, id_tag: str) -> IdTagInfo | None:
        if not self.online:
            return None
        try:
            resp = await self.call("Authorize", {"idTag": id_tag})
        except (TimeoutError, CallErrorReceived, NotConnected) as e:
            self.log.warning("Authorize failed: %s; using offline rules", e)
            return None
        return IdTagInfo.from_ocpp(resp.get("idTagInfo", {}))

    # -- transactions ------------------------------------------------------------------------
    def transaction_started(self, tx: Transaction) -> None:
        payload = {
            "connectorId": tx.connector_id,
            "idTag": tx.id_tag,
            "meterStart": tx.meter_start_wh,
            "timestamp": iso(tx.started_at),
        }
        if tx.reservation_id is not None:
            payload["reservationId"] = tx.reservation_id
        self.store.outbox_add("StartTransaction", payload, tx.local_id)
        self.outbox_wakeup.set()
        self._add_stop_samples(tx, "Transaction.Begin", self.station.meter_cache.get(tx.connector_id))
        interval = self.keys.int("MeterValueSampleInterval")
        if interval > 0:
            self._sample_tasks[tx.connector_id] = self.spawn(self._sample_loop(tx, interval))

    def transaction_stopped(self, tx: Transaction) -> None:
        task = self._sample_tasks.pop(tx.connector_id, None)
        if task is not None:
            task.cancel()
        if tx.stop_reason is not None and tx.stop_reason != "PowerLoss":
            self._add_stop_samples(tx, "Transaction.End", self.station.meter_cache.get(tx.connector_id))
        payload: dict = {
            "transactionId": 0,  # filled in when sent: the CSMS's id may not be known yet
            "meterStop": int(tx.meter_stop_wh or 0),
            "timestamp": iso(tx.stopped_at or self.clock.now()),
            "reason": str(tx.stop_reason or "Other"),
        }
        if tx.stop_id_tag:
            payload["idTag"] = tx.stop_id_tag
        if tx.samples:
            payload["transactionData"] = tx.samples
        self.store.outbox_add("StopTransaction", payload, tx.local_id)
        self.outbox_wakeup.set()

    def _add_stop_samples(self, tx: Transaction, context: str, reading: Any) -> None:
        measurands = parse_measurands(self.keys.get("StopTxnSampledData"))
        if not measurands or reading is None:
            return
        samples = samples_for(reading, measurands, self.station.evses[tx.connector_id].phases)
        tx.samples.append(self._meter_value(samples, context))
        self.station.save_transaction(tx)

    def _meter_value(self, samples: list[Sample], context: str) -> dict:
        return {
            "timestamp": iso(self.clock.now()),
            "sampledValue": [self._sampled_value(s, context) for s in samples],
        }

    @staticmethod
    def _sampled_value(s: Sample, context: str) -> dict:
        out = {"value": _num(s.value), "context": context, "format": "Raw", "measurand": s.measurand, "location": "Outlet"}
        if s.unit:
            out["unit"] = UNITS_16.get(s.unit, s.unit)
        if s.phase:
            out["phase"] = s.phase
        return out

    async def _sample_loop(self, tx: Transaction, interval: int) -> None:
        while tx.active:
            await asyncio.sleep(interval)
            if not tx.active:
                return
            reading = await self.station.read_meter(tx.connector_id)
            if reading is None:
                continue
            phases = self.station.evses[tx.connector_id].phases
            offered = self.station.offered_current(tx.connector_id)
            samples = samples_for(reading, parse_measurands(self.keys.get("MeterValuesSampledData")), phases, offered)
            if samples:
                self.queue_meter_values(tx, [self._meter_value(samples, "Sample.Periodic")])
            stop_m = parse_measurands(self.keys.get("StopTxnSampledData"))
            if stop_m:
                tx.samples.append(self._meter_value(samples_for(reading, stop_m, phases, offered), "Sample.Periodic"))
            self.station.save_transaction(tx)

    def queue_meter_values(self, tx: Transaction, meter_values: list[dict]) -> None:
        payload = {"connectorId": tx.connector_id, "transactionId": 0, "meterValue": meter_values}
        self.store.outbox_add("MeterValues", payload, tx.local_id)
        self.outbox_wakeup.set()

    async def _aligned_loop(self) -> None:
        while True:
            interval = self.keys.int("ClockAlignedDataInterval")
            if interval <= 0:
                await asyncio.sleep(1.0)
                continue
            now = self.clock.now()
            midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
            elapsed = (now - midnight).total_seconds()
            nxt = midnight + timedelta(seconds=(int(elapsed // interval) + 1) * interval)
            await asyncio.sleep(max(0.05, (nxt - now).total_seconds()))
            if self.keys.int("ClockAlignedDataInterval") != interval:
                continue
            await self._send_aligned()

    async def _send_aligned(self) -> None:
        measurands = parse_measurands(self.keys.get("MeterValuesAlignedData"))
        stop_m = parse_measurands(self.keys.get("StopTxnAlignedData"))
        for cid, conn in self.station.connectors.items():
            reading = await self.station.read_meter(cid)
            if reading is None:
                continue
            phases = self.station.evses[cid].phases
            tx = conn.transaction
            samples = samples_for(reading, measurands, phases)
            if tx is not None:
                if samples:
                    self.queue_meter_values(tx, [self._meter_value(samples, "Sample.Clock")])
                if stop_m:
                    tx.samples.append(self._meter_value(samples_for(reading, stop_m, phases), "Sample.Clock"))
                    self.station.save_transaction(tx)
            elif samples and self.online:
                payload = {"connectorId": cid, "meterValue": [self._meter_value(samples, "Sample.Clock")]}
                self.spawn(self._send_quietly("MeterValues", payload))

    async def _send_quietly(self, action: str, payload: dict) -> dict | None:
        try:
            return await self.call(action, payload)
        except (TimeoutError, CallErrorReceived, NotConnected) as e:
            self.log.warning("%s failed: %s", action, e)
            return None

    async def _outbox_loop(self) -> None:
        """Deliver queued transaction messages in order, once online, with the configured retries."""
        while True:
            item = self.store.outbox_first()
            if item is None or not self.online:
                self.outbox_wakeup.clear()
                await self.outbox_wakeup.wait()
                continue
            seq, action, payload, tx_local, attempts = item
            if action in ("StopTransaction", "MeterValues") and tx_local is not None:
                tx_id = self.store.tx_id(tx_local)
                if tx_id is None:
                    self.log.error("%s for a transaction the CSMS never registered: dropped", action)
                    self.store.outbox_remove(seq)
                    continue
                payload["transactionId"] = tx_id
            try:
                resp = await self.call(action, payload)
            except NotConnected:
                continue
            except (TimeoutError, CallErrorReceived) as e:
                self.store.outbox_attempt(seq)
                max_attempts = max(1, self.keys.int("TransactionMessageAttempts"))
                if attempts + 1 >= max_attempts:
                    self.log.error("%s not accepted after %d attempts (%s): dropped", action, attempts + 1, e)
                    self.store.outbox_remove(seq)
                else:
                    wait = self.keys.int("TransactionMessageRetryInterval") * (attempts + 1)
                    self.log.warning("%s failed (%s); attempt %d again in %d s", action, e, attempts + 2, wait)
                    await asyncio.sleep(wait)
                continue
            self.store.outbox_remove(seq)
            if action == "StartTransaction" and tx_local is not None:
                self._start_confirmed(tx_local, resp)
            elif action == "StopTransaction" and "idTagInfo" in resp and payload.get("idTag"):
                self.station.remember(payload["idTag"], IdTagInfo.from_ocpp(resp["idTagInfo"]))

    def _start_confirmed(self, tx_local: int, resp: dict) -> None:
        tx_id = int(resp.get("transactionId", 0))
        self.store.tx_set_id(tx_local, tx_id)
        info = IdTagInfo.from_ocpp(resp.get("idTagInfo", {}))
        tx = self.station.find_transaction(lambda t: t.local_id == tx_local)
        if tx is not None:
            tx.transaction_id = tx_id
            self.station.on_start_result(tx, info)

    def outbox_empty(self) -> bool:
        return self.store.outbox_len() == 0

    # -- CSMS requests -----------------------------------------------------------------------
    async def handle(self, action: str, payload: dict) -> Any:
        self._last_message = self.clock.monotonic()
        method = getattr(self, "on_" + action, None)
        if method is None:
            raise NotSupportedError(description=f"{action} is not supported by this station")
        return await method(payload)

    def _connector(self, cid: int) -> bool:
        return cid in self.station.connectors

    async def on_ChangeAvailability(self, p: dict) -> dict:
        cid = p["connectorId"]
        if cid != 0 and not self._connector(cid):
            return {"status": "Rejected"}
        return {"status": self.station.change_availability(cid, p["type"] == "Operative")}

    async def on_ChangeConfiguration(self, p: dict) -> dict:
        status, why = self.keys.change(p["key"], p["value"])
        if why:
            self.log.info("ChangeConfiguration %s=%r: %s (%s)", p["key"], p["value"], status, why)
        if status in ("Accepted", "RebootRequired"):
            self.apply_keys()
            if p["key"] == "HeartbeatInterval":
                self.heartbeat_interval = float(self.keys.int("HeartbeatInterval"))
        return {"status": status}

    async def on_GetConfiguration(self, p: dict) -> dict:
        found, unknown = self.keys.report(p.get("key"))
        out: dict = {"configurationKey": found}
        if unknown:
            out["unknownKey"] = unknown
        return out

    async def on_ClearCache(self, p: dict) -> dict:
        self.station.clear_cache()  # the cache lives in our own store: clearing cannot fail
        return {"status": "Accepted"}

    async def on_GetLocalListVersion(self, p: dict) -> dict:
        # Local Auth List Management is not supported yet: OCPP 1.6 says listVersion -1
        return {"listVersion": -1}

    async def on_SendLocalList(self, p: dict) -> dict:
        return {"status": "NotSupported"}

    async def on_DataTransfer(self, p: dict) -> dict:
        self.log.info("DataTransfer from CSMS: vendor %s message %s", p.get("vendorId"), p.get("messageId"))
        return {"status": "UnknownVendorId"}

    async def on_RemoteStartTransaction(self, p: dict) -> dict:
        cid = p.get("connectorId")
        if cid is not None and (cid <= 0 or not self._connector(cid)):
            return {"status": "Rejected"}
        profile = p.get("chargingProfile")
        if profile is not None and profile.get("chargingProfilePurpose") != "TxProfile":
            return {"status": "Rejected"}
        ok = await self.station.remote_start(cid, p["idTag"], profile)
        return {"status": "Accepted" if ok else "Rejected"}

    async def on_RemoteStopTransaction(self, p: dict) -> dict:
        tx = self.station.find_transaction(lambda t: t.transaction_id == p["transactionId"])
        if tx is None:
            return {"status": "Rejected"}
        await self.station.remote_stop(tx)
        return {"status": "Accepted"}

    async def on_Reset(self, p: dict) -> Any:
        async def after() -> None:
            await self.station.reset(p["type"])

        return {"status": "Accepted"}, after

    async def on_UnlockConnector(self, p: dict) -> dict:
        cid = p["connectorId"]
        if not self._connector(cid):
            return {"status": "NotSupported"}
        return {"status": await self.station.unlock(cid)}

    async def on_TriggerMessage(self, p: dict) -> Any:
        what = p["requestedMessage"]
        cid = p.get("connectorId")
        if cid is not None and cid != 0 and not self._connector(cid):
            return {"status": "Rejected"}
        senders = {
            "BootNotification": self._trigger_boot,
            "Heartbeat": self._heartbeat,
            "StatusNotification": lambda: self._trigger_status(cid),
            "MeterValues": lambda: self._trigger_meter_values(cid),
            "DiagnosticsStatusNotification": lambda: self._send_quietly("DiagnosticsStatusNotification", {"status": "Idle"}),
            "FirmwareStatusNotification": lambda: self._send_quietly("FirmwareStatusNotification", {"status": "Idle"}),
        }
        if what not in senders:
            return {"status": "NotImplemented"}
        return {"status": "Accepted"}, senders[what]

    async def _trigger_boot(self) -> None:
        self.registration = None
        await self._boot()

    async def _trigger_status(self, cid: int | None) -> None:
        targets = [cid] if cid is not None else [0, *self.station.connectors]
        for c in targets:
            status, error = self.station.status_of(c)
            self._last_sent_status[c] = (str(status), error)
            await self._send_status(c, str(status), error)

    async def _trigger_meter_values(self, cid: int | None) -> None:
        targets = [cid] if cid else list(self.station.connectors)
        measurands = parse_measurands(self.keys.get("MeterValuesSampledData"))
        for c in targets:
            reading = await self.station.read_meter(c)
            if reading is None:
                continue
            evse = self.station.evses[c]
            samples = samples_for(reading, measurands, evse.phases, self.station.offered_current(c))
            payload: dict = {"connectorId": c, "meterValue": [self._meter_value(samples, "Trigger")]}
            tx = self.station.connectors[c].transaction
            if tx is not None and tx.transaction_id is not None:
                payload["transactionId"] = tx.transaction_id
            await self._send_quietly("MeterValues", payload)

    async def flush_outbox(self, timeout: float) -> None:
        """Give queued transaction messages a chance to go out (before a reset)."""
        deadline = self.clock.monotonic() + timeout
        while self.online and not self.outbox_empty() and self.clock.monotonic() < deadline:
            await asyncio.sleep(0.05)


# core unit -> OCPP 1.6 UnitOfMeasure (1.6 has no "Hz"; its note on Frequency names "Hertz")
UNITS_16 = {"Hz": "Hertz"}


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"

"""OCPP 1.6 StatusNotification reporting: what the station reports becomes a StatusNotification
now, or after MinimumStatusDuration (a one-shot timer) if nothing newer comes; after a reconnect
only the connectors whose status changed meanwhile are reported again; TriggerMessage reports on
request. A status that could not be delivered is reported again at the next chance. The
station's neutral connector states and faults become 1.6 words here (vocabulary.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from station.core.clock import iso
from station.core.model import ConnectorState
from station.link import CallErrorReceived, NotConnected
from station.ocpp16 import vocabulary
from station.ocpp16.config_keys import ConfigurationKeys
from station.scheduler import Scheduler, Timer
from station.station import Station


class StatusReporter:
    def __init__(
        self,
        *,
        station: Station,
        keys: ConfigurationKeys,
        scheduler: Scheduler,
        log: logging.Logger,
        call: Callable[[str, dict], Awaitable[dict]],
        spawn: Callable[[Awaitable[Any]], Any],
        online: Callable[[], bool],
    ) -> None:
        self.station = station
        self.keys = keys
        self.scheduler = scheduler
        self.log = log
        self._call = call
        self._spawn = spawn
        self._online = online
        self._last_sent: dict[int, tuple[str, str]] = {}
        self._timers: dict[int, Timer] = {}
        self._reported: dict[int, tuple[ConnectorState, str | None]] = {}

    def connector_ids(self) -> list[int]:
        return [0, *self.station.connectors]

    def current(self, connector_id: int) -> tuple[str, str]:
        """The connector's 1.6 status and errorCode now."""
        state, fault = self.station.status_of(connector_id)
        return str(vocabulary.status(state)), vocabulary.error_code(fault)

    def changed(self, connector_id: int, state: ConnectorState, fault: str | None) -> None:
        """The station reported a state (it may name a newly raised warning while an older one is
        still active): sent now, or after MinimumStatusDuration if nothing newer comes."""
        self._reported[connector_id] = (state, fault)
        timer = self._timers.pop(connector_id, None)
        if timer is not None:
            timer.cancel()
        delay = self.keys.int("MinimumStatusDuration")
        if delay > 0 and self._last_sent.get(connector_id) is not None:
            self._timers[connector_id] = self.scheduler.call_later(delay, self.send_now, connector_id)
        else:
            self.send_now(connector_id)

    def send_now(self, connector_id: int) -> None:
        self._timers.pop(connector_id, None)
        if not self._online():
            return
        state, fault = self.station.status_of(connector_id)
        reported = self._reported.pop(connector_id, None)
        if reported is not None and reported[0] == state and connector_id:
            if reported[1] is not None and reported[1] in self.station.connectors[connector_id].faults:
                fault = reported[1]
        status, error = str(vocabulary.status(state)), vocabulary.error_code(fault)
        self._last_sent[connector_id] = (status, error)
        self._spawn(self._send(connector_id, status, error, fault))

    def send_all(self) -> None:
        """After BootNotification Accepted: every connector, 0 included."""
        for cid in self.connector_ids():
            self.send_now(cid)

    def resend_changed(self) -> None:
        """After a reconnect: the connectors whose status is not the one last sent."""
        for cid in self.connector_ids():
            if self._last_sent.get(cid) != self.current(cid):
                self.send_now(cid)

    async def trigger(self, connector_id: int | None) -> None:
        """TriggerMessage StatusNotification: the one connector, or all of them."""
        for cid in [connector_id] if connector_id is not None else self.connector_ids():
            state, fault = self.station.status_of(cid)
            status, error = str(vocabulary.status(state)), vocabulary.error_code(fault)
            self._last_sent[cid] = (status, error)
            await self._send(cid, status, error, fault)

    def report_error(self, connector_id: int, error_code: str, info: str) -> None:
        """Tell the CSMS of an error that is no lasting state of the connector (LocalListConflict):
        one StatusNotification with the connector's status now and ``error_code``; the next one
        carries the connector's own errorCode again."""
        if not self._online():
            return
        status, _ = self.current(connector_id)
        self._spawn(self._send(connector_id, status, error_code, None, info))

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    async def _send(self, connector_id: int, status: str, error: str, fault: str | None, info: str = "") -> None:
        payload: dict = {"connectorId": connector_id, "errorCode": error, "status": status,
                         "timestamp": iso(self.scheduler.now())}
        if connector_id and fault is not None:
            info = self.station.connectors[connector_id].faults.get(fault, "")
        if info:
            payload["info"] = info[:50]
        try:
            await self._call("StatusNotification", payload)
        except (TimeoutError, CallErrorReceived, NotConnected) as e:
            self.log.warning("StatusNotification failed: %s", e)
            self._last_sent.pop(connector_id, None)

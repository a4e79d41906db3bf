"""OCPP 2.0.1 StatusNotification (G01-G05): one per connector, sent when its
ConnectorStatusEnumType changes (a change inside Occupied — preparing, charging, suspended — is
not a change in 2.0.1; TransactionEvent's chargingState says it). Nothing is sent before the
BootNotification is Accepted; all connectors are reported once it is. While the link is down the
last status of each connector is kept: after a reconnect only the connectors whose status changed
are reported — all of them when the station was off line longer than OCPPCommCtrlr.OfflineThreshold
(TC_B_51 / TC_B_52).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from station.link import CallErrorReceived, NotConnected
from station.ocpp201 import vocabulary

if TYPE_CHECKING:
    from station.ocpp201.adapter import Ocpp201Adapter


class StatusReporter:
    def __init__(self, ad: Ocpp201Adapter) -> None:
        self.ad = ad
        self.sent: dict[int, str] = {}  # connector number -> the status the CSMS has
        self._offline_since: float | None = None
        self._stopped = False

    def current(self, cid: int) -> str:
        state, plugged = self.ad.connector_facts(cid)
        return vocabulary.connector_status(state, plugged)

    def payload(self, cid: int, status: str | None = None) -> dict:
        evse_id, connector_id = self.ad.address(cid)
        return {"timestamp": self.ad.now_iso(), "connectorStatus": status or self.current(cid),
                "evseId": evse_id, "connectorId": connector_id}

    def changed(self, cid: int) -> None:
        if self._stopped:
            return
        status = self.current(cid)
        self.ad.availability_changed(cid, status)
        if not self.ad.online:
            return
        if self.sent.get(cid) != status:
            self._send(cid, status)

    def _send(self, cid: int, status: str) -> None:
        self.sent[cid] = status
        self.ad.log.info("connector %d/%d: %s", *self.ad.address(cid), status)
        self.ad.spawn(self._deliver(cid, self.payload(cid, status)))

    async def _deliver(self, cid: int, payload: dict) -> None:
        try:
            await self.ad.call("StatusNotification", payload)
        except (TimeoutError, CallErrorReceived, NotConnected) as e:
            self.ad.log.warning("StatusNotification failed: %s; sent again at the next chance", e)
            if self.sent.get(cid) == payload["connectorStatus"]:
                self.sent.pop(cid, None)

    def send_all(self) -> None:
        """Every connector's status (the boot was accepted)."""
        for cid in self.ad.connectors():
            self._send(cid, self.current(cid))

    def trigger(self, cids: list[int]) -> None:
        for cid in cids:
            self._send(cid, self.current(cid))

    def disconnected(self) -> None:
        if self._offline_since is None:
            self._offline_since = self.ad.scheduler.monotonic()

    def reconnected(self) -> None:
        since, self._offline_since = self._offline_since, None
        threshold = self.ad.integer("OCPPCommCtrlr", "OfflineThreshold")
        if since is not None and self.ad.scheduler.monotonic() - since > threshold:
            self.send_all()
            return
        for cid in self.ad.connectors():
            self.changed(cid)

    def stop(self) -> None:
        self._stopped = True

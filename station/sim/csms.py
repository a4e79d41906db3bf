"""A small demo CSMS (OCPP 1.6J and 2.0.1 server) for `station demo` and for trying the station out.

It accepts every station, authorizes every id tag except those starting with ``BLOCK``, numbers
transactions, and tells what it receives in plain words through ``on_event``. It speaks the
version the station asks for in the websocket handshake (subprotocol ``ocpp1.6`` or ``ocpp2.0.1``).
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from websockets.asyncio.server import ServerConnection, serve


class DemoCsms:
    def __init__(self, on_event: Callable[[str], None] = print, heartbeat_interval: int = 300) -> None:
        self.on_event = on_event
        self.heartbeat_interval = heartbeat_interval
        self._tx_ids = itertools.count(1001)
        self.server = None
        self.port = 0
        self.log = logging.getLogger("demo-csms")
        self.received: list[tuple[str, str, dict]] = []

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self.server = await serve(self._session, host, port, subprotocols=["ocpp1.6", "ocpp2.0.1"])  # type: ignore[list-item]
        self.port = self.server.sockets[0].getsockname()[1] if hasattr(self.server, "sockets") else port
        return self.port

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _session(self, ws: ServerConnection) -> None:
        station = (ws.request.path if ws.request else "/").rstrip("/").rsplit("/", 1)[-1]
        self.on_event(f"station {station} connected")
        try:
            async for raw in ws:
                msg = json.loads(raw)
                if msg[0] != 2:
                    continue
                _, uid, action, payload = msg
                self.received.append((station, action, payload))
                if ws.subprotocol == "ocpp2.0.1":
                    result = self.answer201(station, action, payload)
                else:
                    result = self.answer(station, action, payload)
                await ws.send(json.dumps([3, uid, result]))
        except Exception as e:  # a broken station must not stop the demo CSMS
            self.log.debug("session %s ended: %s", station, e)
        self.on_event(f"station {station} disconnected")

    def answer(self, station: str, action: str, p: dict) -> dict:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        say = self.on_event
        if action == "BootNotification":
            say(f"{station} booted ({p.get('chargePointVendor')} {p.get('chargePointModel')}): accepted")
            return {"status": "Accepted", "currentTime": now, "interval": self.heartbeat_interval}
        if action == "Heartbeat":
            return {"currentTime": now}
        if action == "StatusNotification":
            err = "" if p.get("errorCode") == "NoError" else f" ({p.get('errorCode')})"
            say(f"{station} connector {p['connectorId']}: {p['status']}{err}")
            return {}
        if action == "Authorize":
            ok = not p["idTag"].upper().startswith("BLOCK")
            say(f"{station} asks about card {p['idTag']}: {'accepted' if ok else 'blocked'}")
            return {"idTagInfo": {"status": "Accepted" if ok else "Blocked"}}
        if action == "StartTransaction":
            tx = next(self._tx_ids)
            say(f"{station} started transaction {tx} on connector {p['connectorId']} for {p['idTag']}, meter {p['meterStart']} Wh")
            return {"transactionId": tx, "idTagInfo": {"status": "Accepted"}}
        if action == "StopTransaction":
            say(f"{station} stopped transaction {p['transactionId']} ({p.get('reason', 'Local')}), meter {p['meterStop']} Wh")
            return {"idTagInfo": {"status": "Accepted"}}
        if action == "MeterValues":
            parts = []
            for mv in p.get("meterValue", []):
                for sv in mv.get("sampledValue", []):
                    if sv.get("phase"):
                        continue
                    parts.append(f"{sv.get('measurand', 'Energy.Active.Import.Register')} = {sv['value']} {sv.get('unit', '')}".strip())
            say(f"{station} meter values: " + ", ".join(parts))
            return {}
        if action == "DataTransfer":
            return {"status": "UnknownVendorId"}
        return {}

    def answer201(self, station: str, action: str, p: dict) -> dict:
        """The same CSMS in OCPP 2.0.1 words."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        say = self.on_event
        if action == "BootNotification":
            cs = p.get("chargingStation", {})
            say(f"{station} booted ({cs.get('vendorName')} {cs.get('model')}, OCPP 2.0.1): accepted")
            return {"status": "Accepted", "currentTime": now, "interval": self.heartbeat_interval}
        if action == "Heartbeat":
            return {"currentTime": now}
        if action == "StatusNotification":
            say(f"{station} EVSE {p['evseId']} connector {p['connectorId']}: {p['connectorStatus']}")
            return {}
        if action in ("Authorize", "TransactionEvent") and "idToken" in p:
            token = p["idToken"]["idToken"]
            ok = not token.upper().startswith("BLOCK")
            if action == "Authorize":
                say(f"{station} asks about card {token}: {'accepted' if ok else 'blocked'}")
            else:
                self._say_event(station, p)
            return {"idTokenInfo": {"status": "Accepted" if ok else "Blocked"}}
        if action == "TransactionEvent":
            self._say_event(station, p)
            return {}
        if action == "DataTransfer":
            return {"status": "UnknownVendorId"}
        return {}

    def _say_event(self, station: str, p: dict) -> None:
        info = p["transactionInfo"]
        values = [f"{sv.get('measurand', 'Energy.Active.Import.Register')} = {sv['value']}"
                  f" {sv.get('unitOfMeasure', {}).get('unit', 'Wh')}"
                  for mv in p.get("meterValue", []) for sv in mv.get("sampledValue", []) if not sv.get("phase")]
        what = {"Started": "started", "Updated": "updated", "Ended": "ended"}[p["eventType"]]
        extra = f", {info['stoppedReason']}" if "stoppedReason" in info else ""
        self.on_event(f"{station} transaction {info['transactionId'][:8]} {what} ({p['triggerReason']}{extra})"
                      + (": " + ", ".join(values) if values else ""))

"""The local HTTP API (JSON): station status and controls for the simulated or real station.

A deliberately small HTTP/1.1 server on asyncio streams (no framework): ``GET /api/status`` and
the ``POST /api/...`` controls listed in the README. Errors come back as 4xx with
``{"error": "..."}``, never a traceback.

Security (a web page open in the engineer's browser must not drive the charger):

- a POST must carry ``Content-Type: application/json`` (415 otherwise): an HTML form or a
  "simple" cross-site request cannot send it without the browser asking first (CORS preflight,
  which this API never grants);
- a POST with an ``Origin`` other than the API's own (``http://host:port``; also the name the
  browser used for it when that is a loopback name, e.g. through an SSH tunnel) is refused (403);
  no ``Origin`` (curl, scripts) is fine;
- with a token (required by the CLI on any address but loopback) every request needs
  ``Authorization: Bearer <token>`` (401 otherwise).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from hal.types import IdToken
from station.config import is_loopback
from station.core.clock import iso
from station.ocpp16.vocabulary import ERROR_CODES, error_code

ID_TOKEN_TYPES = ("ISO14443", "ISO15693", "KeyCode", "Local", "MacAddress", "Central", "eMAID", "NoAuthorization")


class ApiError(Exception):
    def __init__(self, status: int, message: str, allow: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.allow = allow  # the Allow header of a 405
        self.headers = headers or {}  # e.g. WWW-Authenticate of a 401


REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large", 415: "Unsupported Media Type",
           500: "Internal Server Error"}


EVSE_PATH = re.compile(r"/api/evses/(\d+)/(plug|unplug|swipe|ev|fault|sim)")


class Api:
    def __init__(self, runtime_getter: Callable[[], Any], log: logging.Logger, token: str | None = None) -> None:
        self.get_runtime = runtime_getter
        self.log = log
        self.token = token or None  # every request needs "Authorization: Bearer <token>"
        self.server: asyncio.AbstractServer | None = None
        self.host = ""
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        self.server = await asyncio.start_server(self._client, host, port)
        sock = self.server.sockets[0]
        self.host, self.port = host, int(sock.getsockname()[1])
        return self.port

    # -- who may ask -------------------------------------------------------------------------
    def _check_token(self, headers: dict[str, str]) -> None:
        if self.token is None:
            return
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise ApiError(401, "token missing or wrong: send Authorization: Bearer <token>",
                           headers={"WWW-Authenticate": 'Bearer realm="station"'})

    def _own_origins(self) -> set[str]:
        host = f"[{self.host}]" if ":" in self.host else self.host
        hosts = {host.lower()}
        if is_loopback(self.host):
            hosts |= {"127.0.0.1", "localhost", "[::1]"}
        return {f"http://{h}:{self.port}" for h in hosts}

    def _check_post(self, headers: dict[str, str]) -> None:
        """CSRF: only this API's own pages (or no browser at all) may send a JSON POST."""
        origin = headers.get("origin")
        if origin is not None:
            o = origin.strip().lower().rstrip("/")
            host = headers.get("host", "").strip().lower()
            # the name the browser used for this API: fine when it is a loopback name (an SSH
            # tunnel, localhost), or with a token (a rebinding page cannot know it)
            named = bool(host) and o == f"http://{host}" and (is_loopback(urlsplit(o).hostname or "") or
                                                                self.token is not None)
            if o not in self._own_origins() and not named:
                raise ApiError(403, f"Origin: {origin[:100]} is not this API's own page; requests from other "
                                    "web pages are refused")
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise ApiError(415, "Content-Type: a POST must be application/json")

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                try:
                    method, path, _ = line.decode("latin-1").split(" ", 2)
                except ValueError:
                    await self._reply(writer, 400, {"error": "bad request line"}, close=True)
                    return
                headers: dict[str, str] = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                try:
                    length = int(headers.get("content-length", "0") or 0)
                except ValueError:
                    length = -1
                if length < 0:
                    await self._reply(writer, 400, {"error": "Content-Length: not a number of bytes"}, close=True)
                    return
                if length > 65536:
                    await self._reply(writer, 413, {"error": "body too large"}, close=True)
                    return
                body = await reader.readexactly(length) if length else b""
                allow, extra = None, {}
                try:
                    self._check_token(headers)
                    status, result = 200, await self.dispatch(method, path.split("?")[0], body, headers)
                except ApiError as e:
                    status, result, allow, extra = e.status, {"error": e.message}, e.allow, e.headers
                except Exception as e:  # never a traceback to the caller
                    self.log.error("API %s %s failed: %s", method, path, e, exc_info=True)
                    status, result = 500, {"error": f"internal error: {e}"}
                close = headers.get("connection", "").lower() == "close"
                await self._reply(writer, status, result, close=close, allow=allow, extra=extra)
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def _reply(
        self, writer: asyncio.StreamWriter, status: int, body: Any, close: bool = False, allow: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(body).encode()
        reason = REASONS.get(status, "Error")
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            f"Connection: {'close' if close else 'keep-alive'}\r\n"
            + (f"Allow: {allow}\r\n" if allow else "")
            + "".join(f"{k}: {v}\r\n" for k, v in (extra or {}).items())
            + "\r\n"
        )
        writer.write(head.encode() + data)
        await writer.drain()

    @staticmethod
    def _gpio(rt: Any, data: dict) -> dict:
        """Simulated GPIO only: make an input stuck at a level (true/false) or free it again (null)."""
        from hal.gpio import SimPinFactory

        pins = rt.shared_hw.get("pins")
        if not isinstance(pins, SimPinFactory):
            raise ApiError(409, "/api/gpio works only with hardware.gpio = \"sim\"")
        line = _field(data, "line", int)
        chip = data.get("chip", "gpiochip0")
        pin = pins.pins.get((chip, line))
        if pin is None:
            used = ", ".join(f"{c}:{n}" for c, n in sorted(pins.pins))
            raise ApiError(404, f"line: no device uses {chip} line {line} (used: {used or 'none'})")
        if "stuck" not in data or not (data["stuck"] is None or isinstance(data["stuck"], bool)):
            raise ApiError(400, "stuck: must be true, false or null")
        pin.stuck = data["stuck"]
        return {"chip": chip, "line": line, "level": pin.level, "stuck": pin.stuck}

    @staticmethod
    def _sim_devices(plant: Any, data: dict) -> dict:
        return _sim_devices_impl(plant, data)

    async def dispatch(self, method: str, path: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
        rt = self.get_runtime()
        if path == "/api/status":
            if method != "GET":
                raise ApiError(405, "use GET", allow="GET")
            return status_of(rt)
        if method != "POST":
            if path in ("/api/link", "/api/gpio") or EVSE_PATH.fullmatch(path):
                raise ApiError(405, f"use POST for {path}", allow="POST")
            raise ApiError(404, f"no such endpoint: {method} {path}")
        if path not in ("/api/link", "/api/gpio") and not EVSE_PATH.fullmatch(path):
            raise ApiError(404, f"no such endpoint: {path}")
        self._check_post(headers or {})
        data = _json(body)
        if path == "/api/link":
            connected = _field(data, "connected", bool)
            link = rt.adapter.link if rt.adapter else None
            if link is None:
                raise ApiError(409, "station is not running")
            link.set_enabled(connected)
            return {"connected": connected}
        if path == "/api/gpio":
            return self._gpio(rt, data)
        m = EVSE_PATH.fullmatch(path)
        if not m:
            raise ApiError(404, f"no such endpoint: {path}")
        evse_id, action = int(m.group(1)), m.group(2)
        hw = rt.hw.get(evse_id)
        if hw is None:
            raise ApiError(404, f"no EVSE {evse_id} (this station has {', '.join(map(str, sorted(rt.hw)))})")
        plant = hw.plant
        if action == "swipe":
            token = _field(data, "id_token", str)
            ttype = data.get("type", "ISO14443")
            if ttype not in ID_TOKEN_TYPES:
                raise ApiError(400, f"type: must be one of {', '.join(ID_TOKEN_TYPES)}")
            if not token or len(token) > 20:
                raise ApiError(400, "id_token: must be 1-20 characters (OCPP 1.6 IdToken)")
            if plant is None or hw.reader is not plant.reader:
                # a real reader: still allow a token for tests and service, through the station
                if rt.station is None:
                    raise ApiError(409, "station is not running")
                rt.station.token(evse_id, IdToken(token, ttype))
            else:
                plant.reader.present(IdToken(token, ttype))
            return {"ok": True}
        if plant is None or hw.pilot is not plant.pilot:
            raise ApiError(409, f"EVSE {evse_id} has real hardware: {action} works only in simulated mode")
        if action == "plug":
            max_current = data.get("max_current")
            phases = data.get("phases")
            if max_current is not None and (
                isinstance(max_current, bool) or not isinstance(max_current, int | float) or not 0 < max_current <= 80
            ):
                raise ApiError(400, "max_current: must be a number of amperes between 0 and 80")
            if phases is not None and (isinstance(phases, bool) or phases not in (1, 2, 3)):
                raise ApiError(400, "phases: must be 1, 2 or 3")
            plant.plug(max_current, phases)
        elif action == "unplug":
            plant.unplug()
        elif action == "ev":
            plant.suspend(_field(data, "suspend", bool))
        elif action == "sim":
            return self._sim_devices(plant, data)
        elif action == "fault":
            code = _field(data, "error_code", str)
            if code not in ERROR_CODES or code == "NoError":
                raise ApiError(400, f"error_code: must be an OCPP error code such as {', '.join(ERROR_CODES[:4])}")
            plant.fault(code, _field(data, "active", bool), str(data.get("info", ""))[:50])
        return {"ok": True}


SIM_SWITCHES = ("lock_jammed", "relay_welded", "meter_failing", "pilot_short")


def _sim_devices_impl(plant: Any, data: dict) -> dict:
    """Make simulated devices misbehave (fault tests): a jammed lock, a welded relay, a silent meter,
    a shorted control pilot."""
    unknown = [k for k in data if k not in SIM_SWITCHES]
    if unknown:
        raise ApiError(400, f"{unknown[0]}: unknown switch (known: {', '.join(SIM_SWITCHES)})")
    for key, value in data.items():
        if not isinstance(value, bool):
            raise ApiError(400, f"{key}: must be true or false")
    if "lock_jammed" in data:
        plant.lock.jammed = data["lock_jammed"]
    if "relay_welded" in data:
        plant.relay.welded = data["relay_welded"]
    if "meter_failing" in data:
        plant.meter.failing = data["meter_failing"]
    if "pilot_short" in data:  # CP shorted to PE: the pilot reads state E
        from hal.types import CpState

        plant.pilot_fault(CpState.E if data["pilot_short"] else None)
    return {"lock_jammed": plant.lock.jammed, "relay_welded": plant.relay.welded, "meter_failing": plant.meter.failing,
            "pilot_short": plant.pilot_error is not None}


def _json(body: bytes) -> dict:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        raise ApiError(400, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "body must be a JSON object")
    return data


def _field(data: dict, name: str, typ: type) -> Any:
    if name not in data:
        raise ApiError(400, f"{name}: missing")
    if not isinstance(data[name], typ):
        raise ApiError(400, f"{name}: must be {'true or false' if typ is bool else typ.__name__}")
    return data[name]


def status_of(rt: Any) -> dict:
    st, ad = rt.station, rt.adapter
    out: dict = {
        "id": rt.cfg.id,
        "ocpp_version": rt.cfg.ocpp,
        "connected": bool(ad and ad.link and ad.link.is_connected),
        # idle | connecting | connected | waiting (back-off) | disabled (POST /api/link) | closed
        "link": ad.link.state if ad and ad.link else None,
        "last_error": (ad.link.last_error or None) if ad and ad.link else None,
        "registration": ad.registration if ad else None,
        "outbox": rt.store.outbox_len(),
        "evses": [],
    }
    if st is None:
        return out
    for evse_id, evse in st.evses.items():
        conn = evse.connector
        state, fault = st.status_of(evse_id)
        status, error = state.label, error_code(fault)
        reading = st.meter_cache.get(evse_id)
        hw = rt.hw[evse_id]
        plant = hw.plant
        power = plant.power_w() if plant is not None and hw.meter is plant.meter else (reading.power_w if reading else None)
        tx = conn.transaction
        out["evses"].append(
            {
                "id": evse_id,
                "connectors": [{"id": conn.connector_id, "status": str(status), "error_code": error}],
                "transaction": None
                if tx is None
                else {
                    "id": tx.transaction_id,
                    "local_id": tx.local_id,
                    "id_token": tx.id_tag,
                    "energy_wh": max(0, int((reading.energy_import_wh if reading else tx.meter_start_wh) - tx.meter_start_wh)),
                    "start": iso(tx.started_at),
                },
                "power_w": power,
                "offered_a": hw.pilot.offered_a,
            }
        )
    return out

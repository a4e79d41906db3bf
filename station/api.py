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

Bounds (the constants below; docs/reliability.md "Bounds"): a limited number of connections (one
more is refused with 503 at once), a time limit for each request's head and body and for an idle
keep-alive connection, and limits on line, header and body sizes. What a client gets wrong is
answered (4xx) or the connection closed, never logged as a traceback; ``HEAD`` is ``GET`` without
the body.
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


class TextBody(str):
    """An answer that is text, not JSON (the fleet's Prometheus ``GET /metrics``)."""

    content_type = "text/plain; version=0.0.4; charset=utf-8"


class ApiError(Exception):
    def __init__(self, status: int, message: str, allow: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.allow = allow  # the Allow header of a 405
        self.headers = headers or {}  # e.g. WWW-Authenticate of a 401


REASONS = {100: "Continue", 200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 413: "Payload Too Large",
           414: "URI Too Long", 415: "Unsupported Media Type", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
           505: "HTTP Version Not Supported"}

# Bounds (docs/reliability.md "Bounds"): nothing a local client sends or leaves open can use up the
# station's file descriptors, memory or log, nor keep a connection forever.
MAX_CONNECTIONS = 32  # open at once; one more is answered 503 at once and closed
HEAD_TIMEOUT_S = 10.0  # to send the request line and headers, from the connection or the request's first byte
IDLE_TIMEOUT_S = 30.0  # keep-alive: between the end of an answer and the next request's first byte
BODY_TIMEOUT_S = 10.0  # to send the body (Content-Length bytes)
WRITE_TIMEOUT_S = 10.0  # for the client to take an answer
MAX_LINE = 8192  # bytes of the request line (414) or one header line (431)
MAX_HEADERS = 100  # header lines of a request (431)
MAX_HEAD = 32768  # bytes of the request line and headers together (431)
MAX_BODY = 65536  # bytes (413)
LOG_EVERY_S = 60.0  # a warning that repeats (connections refused, an unexpected failure) at most this often

HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token


class _Refuse(Exception):
    """A request the server answers with an error and then closes the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


POST_PATHS = ("/api/link", "/api/gpio", "/api/tamper", "/api/data-transfer", "/api/external-limit")
EVSE_PATH = re.compile(r"/api/evses/(\d+)/(plug|unplug|swipe|ev|fault|sim)")


class Api:
    """The local API server. ``max_connections``, ``head_timeout`` and ``idle_timeout`` default to
    the bounds above (tests shrink them)."""

    def __init__(self, runtime_getter: Callable[[], Any], log: logging.Logger, token: str | None = None, *,
                 max_connections: int = MAX_CONNECTIONS, head_timeout: float = HEAD_TIMEOUT_S,
                 idle_timeout: float = IDLE_TIMEOUT_S) -> None:
        self.get_runtime = runtime_getter
        self.log = log
        self.token = token or None  # every request needs "Authorization: Bearer <token>"
        self.server: asyncio.AbstractServer | None = None
        self.host = ""
        self.port = 0
        self.max_connections = max_connections
        self.head_timeout = head_timeout
        self.idle_timeout = idle_timeout
        self.open_connections = 0
        self.refused = 0  # connections refused for the limit, since the start
        self._said: dict[str, float] = {}  # what -> loop time it was last logged
        self._unsaid: dict[str, int] = {}  # what -> how many times it was not logged since
        self._connections: dict[asyncio.Task, asyncio.StreamWriter] = {}  # open ones, by their handler task
        self._closing = False

    async def start(self, host: str, port: int) -> int:
        self.server = await asyncio.start_server(self._client, host, port, limit=MAX_LINE)
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
        """Stop listening and end the open connections (an answer being written gets a moment)."""
        self._closing = True
        if self.server is not None:
            self.server.close()
        for writer in list(self._connections.values()):
            writer.close()
        tasks = set(self._connections)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=1.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        if self.server is not None:
            await self.server.wait_closed()

    def _say_now(self, what: str) -> int | None:
        """Rate limit: the number of times ``what`` went unsaid since it was last said, if it may be
        said now (at most once per LOG_EVERY_S), else None (and it is counted)."""
        now = asyncio.get_running_loop().time()
        last = self._said.get(what)
        if last is not None and now - last < LOG_EVERY_S:
            self._unsaid[what] = self._unsaid.get(what, 0) + 1
            return None
        self._said[what] = now
        return self._unsaid.pop(what, 0)

    # -- connections -------------------------------------------------------------------------
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.open_connections >= self.max_connections:
            self._refuse(writer)
            return
        self.open_connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._connections[task] = writer
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, OSError):
            pass  # the client went away, or would not send or take its bytes in time: its problem
        except asyncio.CancelledError:
            if not self._closing:
                raise
            # ended by close(): return normally (asyncio 3.11 logs a traceback for a cancelled handler)
        except Exception as e:  # a bug of ours: said (rate-limited), the server goes on
            unsaid = self._say_now("failure")
            if unsaid is not None:
                self.log.error("local API: a connection failed: %s: %s%s", type(e).__name__, e,
                               f" ({unsaid} more since the last report)" if unsaid else "", exc_info=True)
        finally:
            self.open_connections -= 1
            self._connections.pop(task, None)  # type: ignore[arg-type]
            writer.close()

    def _refuse(self, writer: asyncio.StreamWriter) -> None:
        """One connection too many: 503 at once, closed; no request read, nothing awaited."""
        self.refused += 1
        unsaid = self._say_now("limit")
        if unsaid is not None:
            self.log.warning("local API: %d connections open, the limit: new ones are refused (503) until some "
                             "close%s", self.open_connections,
                             f"; {unsaid} refused since the last warning" if unsaid else "")
        data = json.dumps({"error": f"too many connections (limit {self.max_connections}): try again later"}).encode()
        writer.write(self._head(503, len(data), close=True, extra={"Retry-After": "1"}) + data)
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Requests on one connection, one after the other (keep-alive), each within its bounds."""
        wait = self.head_timeout  # a new connection must start its request as soon as a head may take
        while True:
            try:
                async with asyncio.timeout(wait):
                    first = await reader.read(1)
            except TimeoutError:
                return  # idle: closed without a word
            if not first:
                return
            wait = self.idle_timeout
            try:
                try:
                    async with asyncio.timeout(self.head_timeout):
                        method, path, version, headers = await self._read_head(reader, first)
                except TimeoutError:
                    raise _Refuse(408, f"request head not complete within {self.head_timeout:g} s") from None
                length = self._body_length(headers)
                if headers.get("expect", "").lower() == "100-continue" and length:
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                try:
                    async with asyncio.timeout(BODY_TIMEOUT_S):
                        body = await reader.readexactly(length) if length else b""
                except TimeoutError:
                    raise _Refuse(408, f"body not complete within {BODY_TIMEOUT_S:g} s") from None
            except _Refuse as e:
                await self._reply(writer, e.status, {"error": e.message}, close=True)
                return
            status, result, allow, extra = await self._answer(method, path, body, headers)
            conn = headers.get("connection", "").lower()
            close = conn == "close" or (version == "HTTP/1.0" and conn != "keep-alive")
            await self._reply(writer, status, result, close=close, allow=allow, extra=extra, head_only=method == "HEAD")
            if close:
                return

    async def _read_head(self, reader: asyncio.StreamReader, first: bytes) -> tuple[str, str, str, dict[str, str]]:
        """The request line and headers, within MAX_LINE, MAX_HEADERS and MAX_HEAD."""
        try:
            line = first + await reader.readline() if first != b"\n" else first
        except ValueError:  # over the stream limit (MAX_LINE)
            raise _Refuse(414, f"request line longer than {MAX_LINE} bytes") from None
        parts = line.decode("latin-1").rstrip("\r\n").split(" ")
        if len(parts) != 3 or not parts[0].isalpha() or not parts[1] or not parts[2].startswith("HTTP/"):
            raise _Refuse(400, "bad request line")
        method, path, version = parts
        if version not in ("HTTP/1.0", "HTTP/1.1"):
            raise _Refuse(505, f"{version[:20]} is not supported: use HTTP/1.1")
        headers: dict[str, str] = {}
        size, count = len(line), 0
        while True:
            try:
                h = await reader.readline()
            except ValueError:
                raise _Refuse(431, f"a header line is longer than {MAX_LINE} bytes") from None
            if h in (b"\r\n", b"\n"):
                break
            if not h.endswith(b"\n"):
                raise asyncio.IncompleteReadError(h, None)  # closed in the middle of the head
            size, count = size + len(h), count + 1
            if count > MAX_HEADERS:
                raise _Refuse(431, f"more than {MAX_HEADERS} header lines")
            if size > MAX_HEAD:
                raise _Refuse(431, f"request head larger than {MAX_HEAD} bytes")
            k, colon, v = h.decode("latin-1").partition(":")
            if not colon or not HEADER_NAME.fullmatch(k):
                raise _Refuse(400, "bad header line")
            name = k.lower()
            if name in headers and name in ("content-length", "host", "authorization", "content-type", "origin"):
                raise _Refuse(400, f"{k}: given twice")
            headers[name] = v.strip()
        return method, path, version, headers

    @staticmethod
    def _body_length(headers: dict[str, str]) -> int:
        if "transfer-encoding" in headers:
            raise _Refuse(501, "Transfer-Encoding is not supported: send the body with Content-Length")
        value = headers.get("content-length", "0") or "0"
        if not value.isascii() or not value.isdigit():
            raise _Refuse(400, "Content-Length: not a number of bytes")
        if len(value) > 12 or int(value) > MAX_BODY:
            raise _Refuse(413, "body too large")
        return int(value)

    async def _answer(self, method: str, path: str, body: bytes, headers: dict[str, str]
                      ) -> tuple[int, Any, str | None, dict[str, str]]:
        try:
            self._check_token(headers)
            return 200, await self.dispatch(method, path.split("?")[0], body, headers), None, {}
        except ApiError as e:
            return e.status, {"error": e.message}, e.allow, e.headers
        except Exception as e:  # never a traceback to the caller; ours in the log, rate-limited
            unsaid = self._say_now("500")  # one key: the rate limiter's own memory stays bounded
            if unsaid is not None:
                self.log.error("API %s %s failed: %s%s", method, path[:200], e,
                               f" ({unsaid} more since the last report)" if unsaid else "", exc_info=True)
            return 500, {"error": f"internal error: {e}"}, None, {}

    @staticmethod
    def _head(status: int, length: int, close: bool, allow: str | None = None,
              extra: dict[str, str] | None = None, content_type: str = "application/json") -> bytes:
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\nConnection: {'close' if close else 'keep-alive'}\r\n"
            + (f"Allow: {allow}\r\n" if allow else "")
            + "".join(f"{k}: {v}\r\n" for k, v in (extra or {}).items())
            + "\r\n"
        )
        return head.encode()

    async def _reply(
        self, writer: asyncio.StreamWriter, status: int, body: Any, close: bool = False, allow: str | None = None,
        extra: dict[str, str] | None = None, head_only: bool = False,
    ) -> None:
        """The answer (HEAD: the same head, the same Content-Length, no body)."""
        if isinstance(body, TextBody):
            data, ctype = body.encode(), body.content_type
        else:
            data, ctype = json.dumps(body).encode(), "application/json"
        writer.write(self._head(status, len(data), close, allow, extra, ctype) + (b"" if head_only else data))
        async with asyncio.timeout(WRITE_TIMEOUT_S):
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
    def _tamper(rt: Any, data: dict) -> dict:
        """The tamper input of simulated hardware (the security event TamperDetectionActivated)."""
        active = _field(data, "active", bool)
        if rt.adapter is None:
            raise ApiError(409, "station is not running")
        if all(hw.plant is None for hw in rt.hw.values()):
            raise ApiError(409, "/api/tamper works only with simulated hardware")
        rt.adapter.security_events.tamper(active)
        return {"active": active}

    @staticmethod
    def _external_limit(rt: Any, data: dict) -> dict:
        """2.0.1: an external limit (an energy management system's) on the station or one EVSE."""
        svc = getattr(rt.adapter, "services", {}).get("smart_charging") if rt.adapter is not None else None
        if svc is None or not hasattr(svc, "external_limit"):
            raise ApiError(409, "external limits are an OCPP 2.0.1 feature (NotifyChargingLimit)")
        evse = data.get("evse", 0)
        if not isinstance(evse, int) or isinstance(evse, bool) or (evse != 0 and evse not in rt.hw):
            raise ApiError(400, f"evse: 0 (the station) or one of {', '.join(map(str, sorted(rt.hw)))}")
        limit = data.get("limit")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int | float) or not 0 <= limit <= 1e6):
            raise ApiError(400, "limit: a number from 0, or null to lift the limit")
        unit = data.get("unit", "A")
        if unit not in ("A", "W"):
            raise ApiError(400, "unit: A or W")
        source = data.get("source", "EMS")
        if source not in ("EMS", "SO", "Other"):
            raise ApiError(400, "source: EMS, SO or Other")
        changed = svc.external_limit(evse, None if limit is None else float(limit), unit, source)
        return {"evse": evse, "limit": limit, "unit": unit, "source": source, "changed": changed}

    @staticmethod
    async def _data_transfer(rt: Any, data: dict) -> dict:
        """DataTransfer to the CSMS (vendor-specific data, both OCPP versions); the CSMS's answer."""
        from station.link import CallErrorReceived, NotConnected  # noqa: PLC0415

        vendor = _field(data, "vendor_id", str)
        if not vendor or len(vendor) > 255:
            raise ApiError(400, "vendor_id: must be 1-255 characters")
        payload: dict = {"vendorId": vendor}
        if "message_id" in data:
            mid = _field(data, "message_id", str)
            if len(mid) > 50:
                raise ApiError(400, "message_id: must be at most 50 characters")
            payload["messageId"] = mid
        if "data" in data:
            if rt.cfg.ocpp == "1.6" and not isinstance(data["data"], str):
                raise ApiError(400, "data: must be a string in OCPP 1.6")
            payload["data"] = data["data"]
        ad = rt.adapter
        if ad is None or not ad.online:
            raise ApiError(409, "not connected to the CSMS (or BootNotification not Accepted)")
        try:
            answer = await ad.call("DataTransfer", payload)
        except (TimeoutError, CallErrorReceived, NotConnected) as e:
            raise ApiError(502, f"DataTransfer failed: {e}") from None
        return {"status": answer.get("status"), "data": answer.get("data")}

    @staticmethod
    def _sim_devices(plant: Any, data: dict) -> dict:
        return _sim_devices_impl(plant, data)

    async def dispatch(self, method: str, path: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
        rt = self.get_runtime()
        if path == "/api/status":
            if method not in ("GET", "HEAD"):
                raise ApiError(405, "use GET", allow="GET, HEAD")
            return status_of(rt)
        if method != "POST":
            if path in POST_PATHS or EVSE_PATH.fullmatch(path):
                raise ApiError(405, f"use POST for {path}", allow="POST")
            raise ApiError(404, f"no such endpoint: {method} {path}")
        if path not in POST_PATHS and not EVSE_PATH.fullmatch(path):
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
        if path == "/api/tamper":
            return self._tamper(rt, data)
        if path == "/api/data-transfer":
            return await self._data_transfer(rt, data)
        if path == "/api/external-limit":
            return self._external_limit(rt, data)
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
            longest = 36 if rt.cfg.ocpp == "2.0.1" else 20
            if not token or len(token) > longest:
                raise ApiError(400, f"id_token: must be 1-{longest} characters (OCPP {rt.cfg.ocpp} IdToken)")
            if plant is None or hw.reader is not plant.reader:
                # a real reader: still allow a token for tests and service, through the station
                if rt.station is None:
                    raise ApiError(409, "station is not running")
                rt.station.token(evse_id, IdToken(token, ttype))
            else:
                plant.reader.present(IdToken(token, ttype))
            return {"ok": True}
        # the connector within the EVSE (from 1, as [[evse.connector]] numbers them); default 1
        connector = data.get("connector", 1)
        if isinstance(connector, bool) or not isinstance(connector, int) or connector not in hw.connectors:
            raise ApiError(400, f"connector: EVSE {evse_id} has connector(s) {', '.join(map(str, sorted(hw.connectors)))}")
        if plant is None or hw.connector(connector).pilot is not plant.outlet(connector).pilot:
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
            plant.plug(max_current, phases, connector)
        elif action == "unplug":
            plant.unplug(connector)
        elif action == "ev":
            plant.suspend(_field(data, "suspend", bool), connector)
        elif action == "sim":
            return self._sim_devices(plant, data)
        elif action == "fault":
            code = _field(data, "error_code", str)
            if code not in ERROR_CODES or code == "NoError":
                raise ApiError(400, f"error_code: must be an OCPP error code such as {', '.join(ERROR_CODES[:4])}")
            # without "connector": a fault of the whole EVSE (all its connectors), else of that connector
            plant.fault(code, _field(data, "active", bool), str(data.get("info", ""))[:50],
                        connector if "connector" in data else 0)
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
    except ValueError:  # also bytes that are not UTF-8
        raise ApiError(400, "body is not valid JSON") from None
    except RecursionError:  # [[[[... a few thousand deep: still within MAX_BODY
        raise ApiError(400, "body is not valid JSON: nested too deeply") from None
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
    display = getattr(ad, "services", {}).get("display") if ad is not None else None
    if display is not None:  # 2.0.1: display messages and running costs for the driver
        out["display"] = [{"id": m["id"], "priority": m["priority"], "text": m["message"]["content"]}
                          for m in display.shown()]
    for evse_id, evse in st.evses.items():
        # the connector the EVSE's one power path serves: the one with a transaction, else the first
        conn = next((c for c in evse.connectors if c.transaction is not None), evse.connectors[0])
        cids = [c.connector_id for c in evse.connectors]
        reading = st.meter_cache.get(conn.connector_id) or next(
            (r for c in cids if (r := st.meter_cache.get(c)) is not None), None)
        hw = rt.hw[evse_id]
        plant = hw.plant
        power = plant.power_w() if plant is not None and hw.meter is plant.meter else (reading.power_w if reading else None)
        tx = conn.transaction
        connectors = []
        for n, c in enumerate(evse.connectors, 1):
            # status words: the local API's own (a stable contract, whatever OCPP version is spoken)
            state, fault = st.status_of(c.connector_id)
            connectors.append({"id": c.connector_id, "connector": n, "status": state.label,
                               "error_code": error_code(fault)})
        out["evses"].append(
            {
                "id": evse_id,
                "connectors": connectors,
                "transaction": None
                if tx is None
                else {
                    "connector_id": tx.connector_id,
                    "id": tx.transaction_id,
                    "local_id": tx.local_id,
                    "id_token": tx.id_tag,
                    "energy_wh": max(0, int((reading.energy_import_wh if reading else tx.meter_start_wh) - tx.meter_start_wh)),
                    "start": iso(tx.started_at),
                },
                "power_w": power,
                "offered_a": hw.connector(cids.index(conn.connector_id) + 1).pilot.offered_a,
            }
        )
        if display is not None and tx is None and evse_id in display.final:
            out["evses"][-1]["last_transaction"] = display.final[evse_id]  # 2.0.1 I02: the final cost
        t201 = ad.transactions.open.get(tx.connector_id) if tx is not None and display is not None else None
        if t201 is not None:  # 2.0.1: the station's transactionId and the running cost the CSMS sent
            out["evses"][-1]["transaction"]["id"] = t201.transaction_id
            if t201.transaction_id in display.costs:
                out["evses"][-1]["transaction"]["cost"] = display.costs[t201.transaction_id]
    return out

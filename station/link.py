"""The websocket link to the CSMS: connect, authenticate, reconnect, and exchange OCPP-J frames.

- security profile 0 (plain ws) and 1 (ws + HTTP basic auth); 2 and 3 (TLS) take an ``ssl`` context
- reconnect with exponential back-off and jitter
- one outgoing call in flight at a time, each with a response timeout
- CSMS requests are answered in their own task, so a handler never waits on our own call
- a handler may return ``(payload, after)``: ``after()`` runs once the CallResult is on the wire
  (TriggerMessage: answer Accepted, then send the triggered message)
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import ssl as ssl_mod
from collections.abc import Awaitable, Callable
from typing import Any

import websockets
from ocpp.exceptions import InternalError, NotImplementedError, OCPPError
from websockets.asyncio.client import ClientConnection, connect

from station import ocpp_schema
from station.tasks import Tasks

Handler = Callable[[str, dict], Awaitable[Any]]


class CallErrorReceived(Exception):
    def __init__(self, code: str, description: str, details: Any = None) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.details = details


class NotConnected(Exception):
    pass


class Link:
    def __init__(
        self,
        *,
        url: str,
        version: str,
        handler: Handler,
        on_open: Callable[[], Awaitable[None]],
        on_close: Callable[[], None],
        log: logging.Logger,
        basic_auth: tuple[str, str] | None = None,
        ssl: ssl_mod.SSLContext | None = None,
        ping_interval: float | None = 60,
        call_timeout: float = 30.0,
        backoff_min: float = 1.0,
        backoff_max: float = 60.0,
    ) -> None:
        self.url = url
        self.version = version
        self.subprotocol = "ocpp" + version
        self.handler = handler
        self.on_open = on_open
        self.on_close = on_close
        self.log = log
        self.basic_auth = basic_auth
        self.ssl = ssl
        self.ping_interval = ping_interval
        self.call_timeout = call_timeout
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.ws: ClientConnection | None = None
        self.enabled = asyncio.Event()
        self.enabled.set()
        self.connected = asyncio.Event()
        self._call_lock = asyncio.Lock()
        self._pending: tuple[str, asyncio.Future] | None = None
        self._msg_id = random.randrange(1 << 20)
        self.tasks = Tasks(log, "link")
        self._spawn = self.tasks.spawn
        self.frames_in = 0
        self.frames_out = 0
        self.last_error: str = ""

    # -- public ------------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self.connected.is_set()

    def set_enabled(self, enabled: bool) -> None:
        """Allow or forbid the connection (the local API's 'link' switch)."""
        if enabled:
            self.enabled.set()
        else:
            self.enabled.clear()
            if self.ws is not None:
                self._spawn(self.ws.close())

    async def call(self, action: str, payload: dict, timeout: float | None = None) -> dict:
        """Send a Call and wait for its CallResult payload; raises CallErrorReceived, TimeoutError or NotConnected."""
        ocpp_schema.validate(self.version, action, payload)
        async with self._call_lock:
            ws = self.ws
            if ws is None or not self.connected.is_set():
                raise NotConnected(action)
            self._msg_id += 1
            unique_id = str(self._msg_id)
            fut: asyncio.Future = asyncio.get_running_loop().create_future()
            self._pending = (unique_id, fut)
            try:
                await self._send(ws, [2, unique_id, action, payload])
                return await asyncio.wait_for(fut, timeout or self.call_timeout)
            except websockets.ConnectionClosed:
                raise NotConnected(action) from None
            finally:
                self._pending = None

    async def run(self) -> None:
        """Keep a connection up until cancelled."""
        failures = 0
        while True:
            await self.enabled.wait()
            try:
                headers = {}
                if self.basic_auth is not None:
                    user, password = self.basic_auth
                    token = base64.b64encode(f"{user}:{password}".encode()).decode()
                    headers["Authorization"] = "Basic " + token
                async with connect(
                    self.url,
                    subprotocols=[self.subprotocol],  # type: ignore[list-item]
                    additional_headers=headers,
                    ssl=self.ssl,
                    ping_interval=self.ping_interval or None,
                    ping_timeout=self.ping_interval or None,
                    open_timeout=15,
                    close_timeout=2,
                    proxy=None,
                    compression=None,
                ) as ws:
                    if ws.subprotocol != self.subprotocol:
                        self.last_error = f"CSMS did not accept subprotocol {self.subprotocol}"
                        self.log.error("%s (it answered %r); closing", self.last_error, ws.subprotocol)
                        await ws.close(1002, "subprotocol required")
                        raise ConnectionError(self.last_error)
                    failures = 0
                    self.ws = ws
                    self.connected.set()
                    self.log.info("connected to %s", self.url)
                    self._spawn(self._opened())
                    await self._read_loop(ws)
                    self.last_error = f"connection closed ({ws.close_code})"
            except asyncio.CancelledError:
                raise
            except (OSError, websockets.WebSocketException, ConnectionError, TimeoutError) as e:
                self.last_error = _describe(e)
                self.log.warning("CSMS connection failed: %s", self.last_error)
            finally:
                was = self.connected.is_set()
                self.connected.clear()
                self.ws = None
                if self._pending is not None and not self._pending[1].done():
                    self._pending[1].set_exception(NotConnected("connection lost"))
                if was:
                    self.log.warning("disconnected from CSMS")
                    self.on_close()
            failures += 1
            delay = min(self.backoff_max, self.backoff_min * 2 ** min(failures - 1, 10))
            delay = delay * random.uniform(0.5, 1.0)
            if not self.enabled.is_set():
                continue
            self.log.info("reconnecting in %.1f s", delay)
            await asyncio.sleep(delay)

    async def close(self) -> None:
        self.tasks.cancel_all()
        if self.ws is not None:
            await self.ws.close()

    # -- internals ---------------------------------------------------------------------------
    async def _opened(self) -> None:
        await self.on_open()

    async def _send(self, ws: ClientConnection, frame: list) -> None:
        text = json.dumps(frame, separators=(",", ":"))
        self.log.debug("-> %s", text)
        self.frames_out += 1
        await ws.send(text)

    async def _read_loop(self, ws: ClientConnection) -> None:
        async for raw in ws:
            self.frames_in += 1
            self.log.debug("<- %s", raw)
            await self._dispatch(ws, raw)

    async def _dispatch(self, ws: ClientConnection, raw: str | bytes) -> None:
        try:
            frame = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            self.log.warning("dropped a frame that is not JSON: %.200r", raw)
            if self.version != "1.6":
                await self._send_error(ws, "-1", "RpcFrameworkError", "message is not valid JSON")
            return
        if not isinstance(frame, list) or len(frame) < 3 or not isinstance(frame[1], str):
            self.log.warning("dropped a frame that is not an OCPP-J message: %.200r", raw)
            if self.version != "1.6":
                await self._send_error(ws, "-1", "RpcFrameworkError", "not an OCPP-J message array")
            return
        kind, unique_id = frame[0], frame[1]
        if kind == 2:
            if len(frame) != 4 or not isinstance(frame[2], str) or not isinstance(frame[3], dict):
                code = "FormationViolation" if self.version == "1.6" else "FormatViolation"
                await self._send_error(ws, unique_id, code, "a Call needs [2, id, action, {payload}]")
                return
            self._spawn(self._handle_call(ws, unique_id, frame[2], frame[3]))
        elif kind in (3, 4):
            pending = self._pending
            if pending is None or pending[0] != unique_id or pending[1].done():
                self.log.warning("dropped a response to no call of ours (id %s)", unique_id)
                return
            if kind == 3:
                pending[1].set_result(frame[2] if isinstance(frame[2], dict) else {})
            else:
                code = frame[2] if len(frame) > 2 else "GenericError"
                desc = frame[3] if len(frame) > 3 else ""
                pending[1].set_exception(CallErrorReceived(str(code), str(desc), frame[4] if len(frame) > 4 else None))
        else:
            code = "FormationViolation" if self.version == "1.6" else "MessageTypeNotSupported"
            await self._send_error(ws, unique_id, code, f"unknown message type id {kind!r}")

    async def _handle_call(self, ws: ClientConnection, unique_id: str, action: str, payload: dict) -> None:
        after = None
        try:
            ocpp_schema.validate(self.version, action, payload)
            result = await self.handler(action, payload)
            if isinstance(result, tuple):
                result, after = result
            ocpp_schema.validate(self.version, action, result, result=True)
        except OCPPError as e:
            await self._send_error(ws, unique_id, e.code, e.description or "", e.details)
            return
        except Exception as e:  # a bug of ours: answer InternalError, keep the connection
            self.log.error("handler for %s failed: %s", action, e, exc_info=True)
            err = InternalError(description=f"{action} failed: {e}")
            await self._send_error(ws, unique_id, err.code, err.description)
            return
        try:
            await self._send(ws, [3, unique_id, result])
        except websockets.ConnectionClosed:
            return
        if after is not None:
            self._spawn(after())

    async def _send_error(self, ws: ClientConnection, unique_id: str, code: str, desc: str, details: Any = None) -> None:
        try:
            await self._send(ws, [4, unique_id, code, desc[:255], details or {}])
        except websockets.ConnectionClosed:
            pass


def _describe(e: BaseException) -> str:
    if isinstance(e, websockets.InvalidStatus):
        return f"CSMS refused the websocket handshake with HTTP {e.response.status_code}"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


__all__ = ["Link", "CallErrorReceived", "NotConnected", "NotImplementedError"]

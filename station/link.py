"""The websocket link to the CSMS: connect, authenticate, reconnect, and carry OCPP-J frames.

The OCPP-J rules (framing, validation, one call in flight, the CallError dialect of the version)
are in :mod:`station.rpc`; this module does the I/O around them:

- security profile 0 (plain ws) and 1 (ws + HTTP Basic auth); for wss:// (profiles 2 and 3) the
  given ``ssl`` context, or a default one that verifies the CSMS certificate against the
  system's CAs or ``ca_file``
- reconnect with exponential back-off: the first wait after a lost connection (or, with
  ``reconnecting``, before the first connection of a link that replaces one, as after a Reset)
  is randomized, ``backoff_min`` to 3 x ``backoff_min`` (1-3 s), each further one twice the
  previous, up to ``backoff_max``. The
  back-off restarts only when the CSMS really serves the station: :meth:`Link.registered`
  (BootNotification Accepted) or, once registered, a CallResult on a later connection; a CSMS
  that accepts the socket and closes it sees growing waits.
- never a silent dead link: every failed attempt is logged with its cause and kept in
  ``last_error``; an unexpected exception is logged with its traceback and the link goes on
  after the back-off
- one outgoing call in flight at a time, each with a response timeout; a CallResult that breaks
  the action's response schema raises :class:`InvalidAnswer` (a :class:`CallErrorReceived`),
  so outbox and registration keep their message and try again as after a CallError
- CSMS requests are answered in their own task, so a handler never waits on our own call; at
  most :data:`MAX_CSMS_CALLS` at once. OCPP-J lets the CSMS have one call in flight; a CSMS that
  sends more is served up to that bound, beyond it the link stops reading the socket until an
  answer is out (back-pressure: TCP slows the CSMS down, every call is still answered, in order,
  and memory stays bounded even when the CSMS never reads our answers)
- a handler's ``after()`` tasks (TriggerMessage) are bounded too (:data:`MAX_AFTER_TASKS`):
  beyond it the triggered message is not sent again (logged)
- whatever a frame holds, the reader goes on: rpc refuses hostile frames (depth, binary, ids),
  and an unexpected error in handling one frame is logged and the next frame is read
- frames are logged at DEBUG with secrets masked and control characters escaped
  (:mod:`station.logsafe`); CSMS-supplied text in other log lines is escaped too; bad frames
  make at most :data:`BAD_FRAME_LOG_BURST` WARNING lines a minute (the rest at DEBUG, counted)
- an invalid CSMS URL (``ws://host:99999``) is a clear ERROR in the log and ``last_error``, each
  attempt, with back-off; the link task never ends on it
- a handler may return ``(payload, after)``: ``after()`` runs once the CallResult is on the wire
  (TriggerMessage: answer Accepted, then send the triggered message)
- ``observer`` (a fleet's statistics, station/sim/fleet.py) is told of connections opened and
  closed, failed attempts, our calls with their response times and the CSMS's requests;
  ``ws_options`` go to ``websockets.connect`` (a fleet's small buffers)
- :meth:`Link.close` and :meth:`Link.reconnect` first let the answers being made go out (at
  most ``drain_timeout``), then close the socket (Hard reset, new AuthorizationKey)
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import ssl as ssl_mod
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import websockets
from ocpp.exceptions import InternalError, NotImplementedError, OCPPError
from websockets.asyncio.client import ClientConnection, connect
from websockets.protocol import State
from websockets.uri import parse_uri

from station import logsafe, rpc
from station.tasks import Event, Tasks

Handler = Callable[[str, dict], Awaitable[Any]]

MAX_CSMS_CALLS = 16  # CSMS calls being handled at once; beyond, the socket is not read (back-pressure)
MAX_AFTER_TASKS = 16  # after() tasks (a triggered message) waiting or running at once
BAD_FRAME_LOG_BURST = 20  # WARNING lines about bad frames per minute; the rest at DEBUG, counted


class CallErrorReceived(Exception):
    """The CSMS answered our call with a CallError. ``str()`` is log-safe (escaped, bounded);
    ``code`` and ``description`` are as the CSMS sent them."""

    def __init__(self, code: str, description: str, details: Any = None) -> None:
        super().__init__(f"{logsafe.text(code, 100)}: {logsafe.text(description, 500)}")
        self.code = code
        self.description = description
        self.details = details


class InvalidAnswer(CallErrorReceived):
    """The CSMS's CallResult breaks the action's response schema (``code`` names the violation,
    e.g. TypeConstraintViolation; ``payload`` is what it sent): handled like a CallError."""

    def __init__(self, code: str, description: str, payload: Any = None) -> None:
        super().__init__(code, description)
        self.payload = payload


class NotConnected(Exception):
    pass


class LinkObserver(Protocol):
    """What a link tells whoever watches many of them (a fleet's statistics)."""

    def opened(self) -> None: ...
    def closed(self) -> None: ...
    def failed(self, e: BaseException) -> None: ...
    def answered(self, action: str, seconds: float, error: BaseException | None) -> None: ...
    def request(self, action: str) -> None: ...


class LinkError(Exception):
    """A connection attempt that failed for a reason of its own (e.g. subprotocol refused)."""


class InvalidUrl(LinkError):
    """The CSMS URL cannot be connected to as it is (bad port, scheme, host): logged at ERROR."""


def check_url(url: str) -> None:
    """Raise :class:`InvalidUrl` with a one-line reason if ``url`` is no usable ws:// or wss:// URL."""
    try:
        parse_uri(url)
    except Exception as e:
        raise InvalidUrl(f"invalid CSMS URL {logsafe.text(url, 200)!r}: {logsafe.text(e, 200)}") from None


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
        ca_file: str | None = None,
        ping_interval: float | None = 60,
        call_timeout: float = 30.0,
        backoff_min: float = 1.0,
        backoff_max: float = 60.0,
        drain_timeout: float = 2.0,
        open_timeout: float = 15.0,
        reconnecting: bool = False,
        on_failure: Callable[[BaseException], None] | None = None,
        on_invalid: Callable[[str], None] | None = None,
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
        self.ca_file = ca_file
        self.ping_interval = ping_interval
        self.call_timeout = call_timeout
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.drain_timeout = drain_timeout
        self.open_timeout = open_timeout
        self.reconnecting = reconnecting  # replaces a link that just closed (Reset): wait before connecting
        self.on_failure = on_failure  # told of every failed connection attempt (security events, profile fall-back)
        self.on_invalid = on_invalid  # told why, for each CSMS frame answered with a CallError (InvalidMessages)
        self.rpc = rpc.RpcConnection(version)
        self.ws: ClientConnection | None = None
        self.enabled = Event()
        self.enabled.set()
        self.connected = Event()
        self._call_lock = asyncio.Lock()
        self._pending: asyncio.Future | None = None
        self._answering: set[asyncio.Task] = set()  # CSMS calls whose answer is not on the wire yet
        self._call_slots = asyncio.Semaphore(MAX_CSMS_CALLS)
        self._after: set[asyncio.Task] = set()
        self._throttled = False  # the bound of CSMS calls was reached on this connection (logged once)
        self._bad_frames = logsafe.Throttle(BAD_FRAME_LOG_BURST, 60.0)
        self.tasks = Tasks(log, "link")
        self._spawn = self.tasks.spawn
        self._attempt = 0  # reconnect waits since the CSMS last served us
        self._first_delay = 0.0
        self._registered = False
        self._closed = False
        self._wake = Event()  # close(): a run() waiting out a back-off ends at once
        self._closing_for: str | None = None  # why we close the socket ourselves (reconnect, disable)
        self.frames_in = 0
        self.frames_out = 0
        self.last_error: str = ""
        self.state = "idle"  # idle | connecting | connected | waiting | disabled | closed
        self.next_attempt_at: float | None = None  # loop time of the next attempt while waiting
        self.observer: LinkObserver | None = None
        self.ws_options: dict[str, Any] = {}  # extra websockets.connect() arguments (buffer sizes)

    # -- public ------------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self.connected.is_set()

    def set_enabled(self, enabled: bool) -> None:
        """Allow or forbid the connection (the local API's 'link' switch)."""
        if enabled:
            if not self.enabled.is_set():
                self._attempt = 0
            self.enabled.set()
        else:
            self.enabled.clear()
            if self.ws is not None:
                self._spawn(self._close_socket(self.ws, "link switched off"))

    def registered(self) -> None:
        """BootNotification was Accepted: the CSMS serves us, the reconnect back-off starts over."""
        self._registered = True
        self._attempt = 0

    def set_basic_auth(self, basic: tuple[str, str] | None) -> None:
        """Credentials (station id, password) for the next handshakes; None: no Basic auth."""
        self.basic_auth = basic

    def reconnect(self, reason: str) -> asyncio.Task:
        """Close the connection once the answers being made are on the wire, then connect again
        after the short first delay (e.g. with new credentials). Awaiting the task is optional."""
        self.log.warning("reconnecting to the CSMS: %s", reason)
        self._attempt = 0
        return self._spawn(self._close_socket(self.ws, reason))

    async def call(self, action: str, payload: dict, timeout: float | None = None, unique_id: str | None = None) -> dict:
        """Send a Call and wait for its CallResult payload; raises CallErrorReceived, TimeoutError or NotConnected.
        ``unique_id``: send it with this message id (a queued message resent), else a new one."""
        async with self._call_lock:
            ws = self.ws
            if ws is None or not self.connected.is_set():
                raise NotConnected(action)
            _, text = self.rpc.call(action, payload, unique_id)
            loop = asyncio.get_running_loop()
            fut: asyncio.Future = loop.create_future()
            self._pending = fut
            observer, t0, error = self.observer, loop.time(), None
            try:
                await self._send(ws, text)
                return await asyncio.wait_for(fut, timeout or self.call_timeout)
            except websockets.ConnectionClosed:
                error = NotConnected(action)
                raise error from None
            except BaseException as e:
                error = e
                raise
            finally:
                if observer is not None:
                    observer.answered(action, loop.time() - t0, error)
                self._pending = None
                self.rpc.forget_call()
                if fut.done() and not fut.cancelled():
                    fut.exception()  # closed while our frame was being sent: NotConnected is raised, not logged as lost

    async def run(self) -> None:
        """Keep a connection up until cancelled or closed. Never ends on an error: each failed
        attempt is logged with its cause (``last_error``), then the next one follows the back-off."""
        first = True
        while not self._closed:
            if not self.enabled.is_set():
                self.state = "disabled"
                await self.enabled.wait()
                delay = 0.0  # switched on again: connect at once
            elif first:
                delay = self._startup_delay()
            else:
                delay = self._next_delay()
            first = False
            if delay > 0:
                self.state = "waiting"
                self.next_attempt_at = asyncio.get_running_loop().time() + delay
                self.log.info("reconnecting in %.1f s", delay)
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    pass
                self.next_attempt_at = None
                if self._closed:
                    break
                if not self.enabled.is_set():
                    continue
            try:
                await self._connection()
            except asyncio.CancelledError:
                raise
            except InvalidUrl as e:
                self.last_error = str(e)
                self.log.error("CSMS connection impossible: %s (fix the configuration; trying again after the back-off)",
                               self.last_error)
                self._failed(e)
            except (OSError, websockets.WebSocketException, LinkError, TimeoutError) as e:
                self.last_error = _describe(e, self)
                self.log.warning("CSMS connection failed: %s", self.last_error)
                self._failed(e)
            except Exception as e:  # a bug of ours or of a library: say so, and keep the link alive
                self.last_error = f"link failed unexpectedly: {type(e).__name__}: {logsafe.text(e, 300)}"
                self.log.error("%s; the link goes on after the back-off", self.last_error, exc_info=True)
        self.state = "closed"

    async def close(self) -> None:
        """Stop for good: the answers being made go out first (at most ``drain_timeout``), then the
        socket closes and the link's tasks end."""
        self._closed = True
        self._wake.set()
        self.enabled.set()  # a run() waiting to be switched on ends
        await self._close_socket(self.ws, "station stops")
        await self._drain()  # run() may be closing the socket itself (it was cancelled first)
        self.tasks.cancel_all()  # not the caller: close() may be awaited by an after() of ours
        self.state = "closed"

    def _failed(self, e: BaseException) -> None:
        if self.observer is not None:
            self.observer.failed(e)
        if self.on_failure is not None and self.state != "connected":  # a connection that closed later is no failed attempt
            try:
                self.on_failure(e)
            except Exception as err:
                self.log.error("on_failure failed: %s", err, exc_info=True)

    # -- the connection ----------------------------------------------------------------------
    async def _connection(self) -> None:
        """One connection: handshake, subprotocol check, read until it closes."""
        self.state = "connecting"
        check_url(self.url)
        headers = {}
        if self.basic_auth is not None:
            user, password = self.basic_auth
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers["Authorization"] = "Basic " + token
        ws = await connect(
            self.url,
            subprotocols=[self.subprotocol],  # type: ignore[list-item]
            additional_headers=headers,
            ping_interval=self.ping_interval or None,
            ping_timeout=self.ping_interval or None,
            open_timeout=self.open_timeout,
            close_timeout=2,
            proxy=None,
            compression=None,
            **self._tls(),
            **self.ws_options,
        )
        was_open = False
        try:
            if ws.subprotocol != self.subprotocol:
                raise LinkError(f"CSMS did not accept subprotocol {self.subprotocol} (it answered {ws.subprotocol!r})")
            self.rpc.reset()
            self._closing_for = None
            self._throttled = False
            self.ws = ws
            self.connected.set()
            self.state = "connected"
            was_open = True
            if self.observer is not None:
                self.observer.opened()
            self.log.info("connected to %s", self.url)
            if not self.enabled.is_set():  # switched off during the handshake
                await self._close_socket(ws, "link switched off")
            else:
                self._spawn(self.on_open())
            async for raw in ws:
                self.frames_in += 1
                if self.log.isEnabledFor(logging.DEBUG):
                    self.log.debug("<- %s", logsafe.frame(raw))
                try:
                    await self._dispatch(ws, raw)
                except (asyncio.CancelledError, websockets.ConnectionClosed):
                    raise
                except Exception as e:  # a bug of ours: this frame is lost, the link reads the next one
                    self.log.error("handling a frame of the CSMS failed: %s: %s", type(e).__name__, logsafe.text(e),
                                   exc_info=True)
            if self._closing_for is None:
                self.last_error = f"CSMS closed the connection ({_close_text(ws)})"
                self.log.warning("%s", self.last_error)
        finally:
            await self._close_socket(ws, "subprotocol required" if not was_open else None, code=1002 if not was_open else 1000)
            if was_open:
                if self.observer is not None:
                    self.observer.closed()
                self.log.warning("disconnected from CSMS")
                try:
                    self.on_close()
                except Exception as e:
                    self.last_error = f"link failed unexpectedly: on_close: {type(e).__name__}: {e}"
                    self.log.error("%s", self.last_error, exc_info=True)

    async def _close_socket(self, ws: ClientConnection | None, reason: str | None, code: int = 1000) -> None:
        """No new calls; the answers being made go out (bounded); then the socket closes."""
        if ws is None:
            return
        if ws is self.ws:
            self.connected.clear()
            self.ws = None
            if self._pending is not None and not self._pending.done():
                self._pending.set_exception(NotConnected("connection closed"))
            if reason is not None:
                self._closing_for = reason
        if ws.state is State.OPEN:
            await self._drain()
        await ws.close(code, reason or "")

    async def _drain(self) -> None:
        """Wait (at most ``drain_timeout``) until the answers being made are on the wire."""
        if not self._answering:
            return
        _, late = await asyncio.wait(set(self._answering), timeout=self.drain_timeout)
        if late:
            self.log.warning("closing with %d CSMS request(s) unanswered after %.1f s", len(late), self.drain_timeout)

    def _tls(self) -> dict:
        if not self.url.lower().startswith("wss://"):
            return {}
        if self.ssl is None:  # verifies the certificate and the host name; TLS 1.2 at least (security whitepaper)
            ctx = ssl_mod.create_default_context(cafile=self.ca_file or None)
            ctx.minimum_version = ssl_mod.TLSVersion.TLSv1_2
            self.ssl = ctx
        return {"ssl": self.ssl}

    # -- back-off ----------------------------------------------------------------------------
    def _startup_delay(self) -> float:
        """0, unless this link replaces one that just closed (the station restarts after a Reset):
        then the randomized first delay, as after a lost connection."""
        return self._next_delay() if self.reconnecting else 0.0

    def _next_delay(self) -> float:
        self._attempt += 1
        if self._attempt == 1:
            self._first_delay = random.uniform(self.backoff_min, 3 * self.backoff_min)
        return min(self.backoff_max, self._first_delay * 2 ** min(self._attempt - 1, 16))

    # -- frames ------------------------------------------------------------------------------
    async def _send(self, ws: ClientConnection, text: str) -> None:
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("-> %s", logsafe.frame(text))
        self.frames_out += 1
        await ws.send(text)

    async def _dispatch(self, ws: ClientConnection, raw: str | bytes) -> None:
        event = self.rpc.receive(raw)
        if isinstance(event, rpc.CallReceived):
            await self._call_slot()
            task = self._spawn(self._handle_call(ws, event))
            self._answering.add(task)
            task.add_done_callback(self._call_done)
        elif isinstance(event, rpc.ResultReceived | rpc.ErrorReceived):
            fut = self._pending
            if fut is None or fut.done():
                self.log.warning("dropped a response to no call of ours (id %s)", logsafe.text(event.unique_id))
                return
            if isinstance(event, rpc.ResultReceived):
                if self._registered:
                    self._attempt = 0  # the CSMS serves a registered station: back-off starts over
                fut.set_result(event.payload)
            elif event.invalid_result:
                self.log.warning("%s; treated as a CallError %s", logsafe.text(event.description), event.code)
                fut.set_exception(InvalidAnswer(event.code, event.description, event.result))
            else:
                fut.set_exception(CallErrorReceived(event.code, event.description, event.details))
        elif isinstance(event, rpc.ResponseIgnored):
            self._warn_bad("dropped a response to no call of ours (id %s: %s)", logsafe.text(event.unique_id, 40),
                           event.reason)
        else:
            shown = logsafe.frame(raw, 200) if isinstance(raw, str) else f"<{len(raw)} bytes>"
            self._warn_bad("bad frame from the CSMS (%s): %s%s", logsafe.text(event.reason, 300), shown,
                           "; answered with a CallError" if event.reply is not None else "; ignored")
            if event.reply is not None:
                await self._send_quietly(ws, event.reply)
                if self.on_invalid is not None:
                    try:
                        self.on_invalid(event.reason)
                    except Exception as err:  # noqa: BLE001 - a report must not end the connection
                        self.log.error("on_invalid failed: %s", err, exc_info=True)

    def _warn_bad(self, msg: str, *args: object) -> None:
        """A WARNING about a bad frame, at most BAD_FRAME_LOG_BURST a minute (the rest at DEBUG, counted)."""
        allowed, held = self._bad_frames.allow(asyncio.get_running_loop().time())
        if allowed:
            suffix = f" ({held} more bad frames were logged at DEBUG only)" if held else ""
            self.log.warning(msg + suffix, *args)
        else:
            self.log.debug(msg, *args)

    async def _call_slot(self) -> None:
        """A slot for one more CSMS call being handled; while all are taken the socket is not read."""
        if self._call_slots.locked() and not self._throttled:
            self._throttled = True
            self.log.warning("the CSMS has %d calls waiting for their answers (OCPP-J allows one): reading paused "
                             "until one is answered", MAX_CSMS_CALLS)
        await self._call_slots.acquire()

    def _call_done(self, task: asyncio.Task) -> None:
        self._answering.discard(task)
        self._call_slots.release()

    async def _handle_call(self, ws: ClientConnection, call: rpc.CallReceived) -> None:
        after = None
        if self.observer is not None:
            self.observer.request(call.action)
        try:
            result = await self.handler(call.action, call.payload)
            if isinstance(result, tuple):
                result, after = result
            text = self.rpc.result(call.unique_id, result)
        except OCPPError as e:
            text = self.rpc.error_for(call.unique_id, e)
            after = None
        except Exception as e:  # a bug of ours: answer InternalError, keep the connection
            self.log.error("handler for %s failed: %s", call.action, logsafe.text(e), exc_info=True)
            err = InternalError(description=f"{call.action} failed: {e}")
            text = self.rpc.error_for(call.unique_id, err)
            after = None
        if await self._send_quietly(ws, text) and after is not None:
            if len(self._after) >= MAX_AFTER_TASKS:
                self.log.warning("%d triggered messages are waiting to be sent: the one after %s is not sent again",
                                 len(self._after), call.action)
                return
            task = self._spawn(after())
            self._after.add(task)
            task.add_done_callback(self._after.discard)

    async def _send_quietly(self, ws: ClientConnection, text: str) -> bool:
        try:
            await self._send(ws, text)
            return True
        except websockets.ConnectionClosed:
            return False


def _close_text(ws: ClientConnection) -> str:
    code, reason = ws.close_code, ws.close_reason
    if code is None:
        return "no close frame"
    return f"code {code}" + (f" {logsafe.text(reason, 200)}" if reason else "")


def _describe(e: BaseException, link: Link) -> str:
    if isinstance(e, websockets.InvalidStatus):
        status = e.response.status_code
        hint = " (wrong station id or AuthorizationKey?)" if status in (401, 403) else ""
        return f"CSMS refused the websocket handshake with HTTP {status}{hint}"
    if isinstance(e, ssl_mod.SSLCertVerificationError):
        where = f"CA file {link.ca_file}" if link.ca_file else "the system's CAs (set station.ca_file?)"
        return f"TLS: the CSMS certificate is not trusted by {where}: certificate verify failed ({e.verify_message or e})"
    if isinstance(e, FileNotFoundError) and link.ca_file and e.filename in (None, link.ca_file):
        return f"TLS: cannot read CA file {link.ca_file}: {e.strerror}"
    if isinstance(e, ssl_mod.SSLError):
        return f"TLS: {e.reason or e}" + (f" (CA file {link.ca_file})" if link.ca_file else "")
    if isinstance(e, TimeoutError) and not str(e):
        return f"no answer from the CSMS within {link.open_timeout:g} s"
    return f"{type(e).__name__}: {logsafe.text(e, 300)}" if str(e) else type(e).__name__


__all__ = ["BAD_FRAME_LOG_BURST", "MAX_AFTER_TASKS", "MAX_CSMS_CALLS", "CallErrorReceived", "InvalidAnswer", "InvalidUrl", "Link",
           "LinkObserver", "NotConnected",
           "NotImplementedError", "check_url"]

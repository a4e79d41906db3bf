"""Test harness: a scripted CSMS on a real websocket and the real station process.

``ScriptedCsms`` plays the CSMS side like the OCTT does: it answers the station's calls (default
answers can be replaced per action), sends its own calls, sends raw frames, and validates every
frame the station sends against the OCPP 1.6 JSON schemas of the ``ocpp`` package.
``StationProcess`` runs ``python -m station run --sim ...`` as a separate process with its own
state directory, and talks to its local HTTP API (tests marked ``process``; the others run the
station in process: tests/integration/inproc.py).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from station import ocpp_schema
from station.scheduler import LoopScheduler

VERSION = "1.6"


def wall_now() -> datetime:
    """The wall clock the station sees: the system clock, or the virtual one on a ``VirtualTimeLoop``."""
    try:
        return LoopScheduler(asyncio.get_running_loop()).now()
    except RuntimeError:  # no running loop
        return datetime.now(UTC)


def now_iso() -> str:
    return wall_now().strftime("%Y-%m-%dT%H:%M:%S.000Z")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    action: str
    payload: dict
    unique_id: str
    at: float


class CallErrorReply(Exception):
    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


@dataclass
class ScriptedCsms:
    boot_status: str = "Accepted"
    boot_interval: int = 300
    responders: dict[str, Callable[[dict], dict | None]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    errors_from_station: list[list] = field(default_factory=list)
    schema_problems: list[str] = field(default_factory=list)
    connections: int = 0
    auth_headers: list[str | None] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    subprotocols: list[str | None] = field(default_factory=list)
    reject_handshake: int = 0  # answer the next N handshakes with HTTP 401
    version: str = VERSION  # the OCPP version spoken (subprotocol, schemas, default answers)

    def __post_init__(self) -> None:
        self.ws: ServerConnection | None = None
        self.port = 0
        self._ids = itertools.count(1)
        self._tx_ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future] = {}
        self._new = asyncio.Condition()
        self._cursor = 0
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.server = None
        self.answer_delay: float = 0.0
        self.silent: set[str] = set()  # actions the CSMS does not answer (time-out tests)
        self.handshake_times: list[float] = []  # loop time of every websocket handshake attempt

    # -- server --------------------------------------------------------------------------------
    async def start(self, port: int = 0, ssl: Any = None) -> str:
        """Listen on 127.0.0.1 (``port`` 0: any free port; give the old port to come back after close()).
        ``ssl``: a server SSLContext, wss:// from then on (kept across restarts)."""
        self.ssl = ssl if ssl is not None else getattr(self, "ssl", None)

        async def process_request(conn: ServerConnection, request: Any) -> Any:
            self.handshake_times.append(asyncio.get_running_loop().time())
            if self.reject_handshake > 0:
                self.reject_handshake -= 1
                return conn.respond(401, "Unauthorized\n")
            return None

        self.server = await serve(
            self._session, "127.0.0.1", port, subprotocols=[f"ocpp{self.version}"], process_request=process_request,  # type: ignore[list-item]
            ssl=self.ssl,
        )
        self.port = self.server.sockets[0].getsockname()[1]
        return f"{'wss' if self.ssl else 'ws'}://127.0.0.1:{self.port}/ocpp"

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def drop_connection(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def _session(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.connections += 1
        self.paths.append(ws.request.path if ws.request else "")
        self.auth_headers.append(ws.request.headers.get("Authorization") if ws.request else None)
        self.subprotocols.append(ws.subprotocol)
        self.disconnected.clear()
        self.connected.set()
        try:
            async for raw in ws:
                await self._on_frame(ws, raw)
        except Exception:
            pass
        finally:
            if self.ws is ws:
                self.ws = None
                self.connected.clear()
                self.disconnected.set()
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("station disconnected"))

    async def _on_frame(self, ws: ServerConnection, raw: str | bytes) -> None:
        msg = json.loads(raw)
        if msg[0] == 2:
            _, uid, action, payload = msg
            try:
                ocpp_schema.validate(self.version, action, payload)
            except Exception as e:
                self.schema_problems.append(f"{action}: {e}")
            self.received.append(Received(action, payload, uid, asyncio.get_running_loop().time()))
            async with self._new:
                self._new.notify_all()
            if action in self.silent:
                return
            result = self.default_answer(action, payload)
            if action in self.responders:
                custom = self.responders[action](payload)
                if custom is not None:
                    result = custom
            if self.answer_delay:
                await asyncio.sleep(self.answer_delay)
            if isinstance(result, CallErrorReply):
                await ws.send(json.dumps([4, uid, result.code, result.description, {}]))
            else:
                await ws.send(json.dumps([3, uid, result]))
        elif msg[0] in (3, 4):
            fut = self._pending.pop(msg[1], None)
            if msg[0] == 4:
                self.errors_from_station.append(msg)
            if fut is not None and not fut.done():
                fut.set_result(msg)

    def default_answer(self, action: str, p: dict) -> dict:
        if self.version == "2.0.1":
            return self.default_answer_201(action, p)
        if action == "BootNotification":
            return {"status": self.boot_status, "currentTime": now_iso(), "interval": self.boot_interval}
        if action == "Heartbeat":
            return {"currentTime": now_iso()}
        if action == "Authorize":
            return {"idTagInfo": {"status": "Accepted"}}
        if action == "StartTransaction":
            return {"transactionId": next(self._tx_ids), "idTagInfo": {"status": "Accepted"}}
        if action == "StopTransaction":
            return {"idTagInfo": {"status": "Accepted"}}
        if action == "DataTransfer":
            return {"status": "Accepted"}
        return {}

    def default_answer_201(self, action: str, p: dict) -> dict:
        if action == "BootNotification":
            return {"status": self.boot_status, "currentTime": now_iso(), "interval": self.boot_interval}
        if action == "Heartbeat":
            return {"currentTime": now_iso()}
        if action == "Authorize":
            return {"idTokenInfo": {"status": "Accepted"}}
        if action == "TransactionEvent" and "idToken" in p:
            return {"idTokenInfo": {"status": "Accepted"}}
        if action == "DataTransfer":
            return {"status": "Accepted"}
        return {}

    # -- what the station sent -----------------------------------------------------------------
    def calls(self, action: str | None = None) -> list[dict]:
        return [r.payload for r in self.received if action is None or r.action == action]

    def mark(self) -> int:
        """Remember how far we have read; expect() looks only at later frames."""
        self._cursor = len(self.received)
        return self._cursor

    async def expect(
        self, action: str, pred: Callable[[dict], bool] | None = None, timeout: float = 10.0, since: int | None = None
    ) -> dict:
        """Wait for the next call ``action`` (after the cursor) matching ``pred``; advances the cursor past it."""
        start = self._cursor if since is None else since

        def find() -> int | None:
            for i in range(start, len(self.received)):
                r = self.received[i]
                if r.action == action and (pred is None or pred(r.payload)):
                    return i
            return None

        async def wait() -> int:
            async with self._new:
                while (i := find()) is None:
                    await self._new.wait()
                return i

        try:
            i = await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            seen = [f"{r.action} {json.dumps(r.payload)[:120]}" for r in self.received[start:]]
            raise AssertionError(f"no {action} within {timeout}s; station sent since: {seen}") from None
        self._cursor = i + 1
        return self.received[i].payload

    async def expect_status(self, connector: int, status: str, timeout: float = 10.0, error: str | None = None,
                            since: int | None = None) -> dict:
        return await self.expect(
            "StatusNotification",
            lambda p: p["connectorId"] == connector and p["status"] == status and (error is None or p["errorCode"] == error),
            timeout,
            since,
        )

    async def no_call(self, action: str, within: float, pred: Callable[[dict], bool] | None = None) -> None:
        start = len(self.received)
        await asyncio.sleep(within)
        got = [r for r in self.received[start:] if r.action == action and (pred is None or pred(r.payload))]
        assert not got, f"unexpected {action}: {[r.payload for r in got]}"

    # -- CSMS -> station -----------------------------------------------------------------------
    async def call(self, action: str, payload: dict, timeout: float = 10.0) -> dict:
        """Send a Call; return the CallResult payload or raise CallErrorReply. Validates both ways."""
        ocpp_schema.validate(self.version, action, payload)
        msg = await self.send_call_raw([2, f"csms-{next(self._ids)}", action, payload], timeout)
        if msg[0] == 4:
            raise CallErrorReply(msg[2], msg[3])
        try:
            ocpp_schema.validate(self.version, action, msg[2], result=True)
        except Exception as e:
            self.schema_problems.append(f"{action} response: {e}")
            raise
        return msg[2]

    async def send_call_raw(self, frame: list, timeout: float = 10.0) -> list:
        await asyncio.wait_for(self.connected.wait(), timeout)
        uid = frame[1]
        fut = asyncio.get_running_loop().create_future()
        self._pending[uid] = fut
        assert self.ws is not None
        await self.ws.send(json.dumps(frame))
        return await asyncio.wait_for(fut, timeout)

    async def send_text(self, text: str) -> None:
        await asyncio.wait_for(self.connected.wait(), 10)
        assert self.ws is not None
        await self.ws.send(text)


class ApiControls:
    """The local API's controls, for any station object with ``async api(method, path, body)``."""

    async def api(self, method: str, path: str, body: dict | None = None, expect: int | None = 200) -> dict:
        raise NotImplementedError

    async def plug(self, evse: int = 1, **ev: Any) -> None:
        await self.api("POST", f"/api/evses/{evse}/plug", ev or None)

    async def unplug(self, evse: int = 1) -> None:
        await self.api("POST", f"/api/evses/{evse}/unplug")

    async def swipe(self, id_token: str, evse: int = 1) -> None:
        await self.api("POST", f"/api/evses/{evse}/swipe", {"id_token": id_token})

    async def ev(self, suspend: bool, evse: int = 1) -> None:
        await self.api("POST", f"/api/evses/{evse}/ev", {"suspend": suspend})

    async def fault(self, error_code: str, active: bool, evse: int = 1) -> None:
        await self.api("POST", f"/api/evses/{evse}/fault", {"error_code": error_code, "active": active})

    async def link(self, connected: bool) -> None:
        await self.api("POST", "/api/link", {"connected": connected})

    async def status(self) -> dict:
        return await self.api("GET", "/api/status")


class StationProcess(ApiControls):
    """The real station, as a separate process (``python -m station run``)."""

    process = True

    def __init__(self, tmp: Path, csms_url: str, station_id: str = "CS001", evses: int = 1, ocpp_config: dict | None = None,
                 extra: list[str] | None = None, config: str | None = None) -> None:
        self.config = config
        self.sim = True  # --sim: every device simulated whatever the config says
        self.tmp = tmp
        self.state_dir = tmp / "state"
        self.csms_url = csms_url
        self.id = station_id
        self.evses = evses
        self.api_port = free_port()
        self.extra = extra or []
        self.ocpp_config = ocpp_config
        self.proc: subprocess.Popen | None = None
        self.log_path = tmp / "station.log"
        self.starts = 0

    def args(self) -> list[str]:
        args = [sys.executable, "-m", "station", "run", *(["--sim"] if self.sim else []), "--csms-url", self.csms_url, "--id", self.id,
                "--state-dir", str(self.state_dir), "--api", f"127.0.0.1:{self.api_port}", "--log-level", "debug"]
        args += ["--config", self.config] if self.config else ["--evses", str(self.evses)]
        if self.ocpp_config is not None:
            path = self.tmp / "ocpp-config.json"
            path.write_text(json.dumps(self.ocpp_config))
            args += ["--ocpp-config", str(path)]
        return args + self.extra

    def start(self) -> None:
        self._wait_exit_blocking()  # a restart: the previous process has been asked to stop and is ending
        self.starts += 1
        log = open(self.log_path, "a")  # noqa: SIM115 - the child owns it
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(self.args(), stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()

    def kill(self) -> None:
        """Power loss: SIGKILL, nothing is flushed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> asyncio.Future | None:
        """A clean stop (SIGTERM), without blocking the event loop: the CSMS in this loop can still answer
        the station's last calls and its close frame (a blocking wait here cost every test the station's
        2 s websocket close timeout). ``await sp.stop()`` waits until the process has exited."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._wait_exit_blocking()
            return None
        return loop.create_task(self._exited(proc))

    async def _exited(self, proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
        if proc is None:
            return
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait(5)
                return
            await asyncio.sleep(0.01)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _wait_exit_blocking(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    async def aclose(self) -> None:
        """Teardown: stop, and wait (without blocking the loop) until the process has exited."""
        await (self.stop() or asyncio.sleep(0))

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    # -- local API ----------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict | None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    async def api(self, method: str, path: str, body: dict | None = None, expect: int | None = 200) -> dict:
        status, data = await asyncio.to_thread(self._request, method, path, body)
        if expect is not None:
            assert status == expect, f"{method} {path} -> {status} {data}"
        return data

    async def wait_api(self, timeout: float = 15.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                await self.api("GET", "/api/status")
                return
            except (OSError, urllib.error.URLError):
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError("station API did not come up:\n" + self.log()[-3000:]) from None
                if self.proc is not None and self.proc.poll() is not None:
                    raise AssertionError("station exited:\n" + self.log()[-3000:]) from None
                await asyncio.sleep(0.1)


async def until(check, timeout: float = 5.0, step: float = 0.1):
    """Poll an async ``check`` until it returns something truthy (bounded)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = await check()
        if got:
            return got
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {got!r})")
        await asyncio.sleep(step)


async def start_session(csms: ScriptedCsms, sp: Any, tag: str = "TAG1") -> dict:
    """Plug in at connector 1, present ``tag``, and wait until the station is Charging; returns StartTransaction."""
    await sp.plug()
    await csms.expect_status(1, "Preparing")
    await sp.swipe(tag)
    start = await csms.expect("StartTransaction")
    await csms.expect_status(1, "Charging")
    return start


async def start_transaction_201(csms: ScriptedCsms, sp: Any, tag: str = "TAG1", evse: int = 1) -> dict:
    """OCPP 2.0.1: plug the EV in, present ``tag``; the TransactionEvent Started the CSMS gets."""
    await sp.plug(evse)
    await sp.swipe(tag, evse)
    return await csms.expect("TransactionEvent", lambda p: p["eventType"] == "Started" and p["evse"]["id"] == evse)


async def go_offline_201(csms, sp: Any) -> None:
    """Drop the station's link and wait until the CSMS sees it gone."""
    await sp.link(False)
    await asyncio.wait_for(csms.disconnected.wait(), 5)


async def restart_201(csms, sp: Any) -> None:
    """A clean restart of a 2.0.1 station: stopped, started, booted again, EVSE 1 reported."""
    await sp.stop()
    csms.mark()
    sp.start()
    await csms.expect("BootNotification", timeout=15)
    await csms.expect("StatusNotification", lambda p: p["evseId"] == 1)
    await sp.wait_api()

"""The real station object graph in the test's own event loop, with the same methods as ``StationProcess``.

``InProcessStation`` builds its config exactly as ``station run --sim ...`` does (the same command
line goes through ``station.cli``), then runs ``station.runtime.Runtime`` (hardware, store,
station, adapter, link) and the local API (``station.api.Api``) as tasks of the running loop, with
a ``LoopScheduler`` for all of the station's time. On a ``VirtualTimeLoop`` (the default loop of
the in-process tests, see tests/conftest.py) idle time is skipped: a 300 s heartbeat interval or a
2 s close timeout costs no real time. The CSMS link is a real websocket on 127.0.0.1 and the API is
spoken over a real loopback HTTP socket, with asyncio streams only (a thread would make the virtual
loop wait in real time).

``stop()`` then ``start()`` on the same state directory is a clean restart, as SIGTERM and a new
process are. A power cut (``kill -9``) is not something a task can do to itself: tests that need
one run the station as a process (``@pytest.mark.process``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from station.api import Api
from station.cli import _parser, build_config
from station.runtime import Runtime
from station.scheduler import LoopScheduler
from tests.integration.harness import ApiControls

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"  # as station run logs


class _LogLines(logging.Handler):
    """Keeps the station's log records as text, like the process's log file."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.lines = lines
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # pragma: no cover - a bad format string in a log call must not break the test
            self.handleError(record)


class InProcessStation(ApiControls):
    """The real station (``Runtime`` + ``Api``) as tasks of the running event loop."""

    process = False

    def __init__(self, tmp: Path, csms_url: str, station_id: str = "CS001", evses: int = 1, ocpp_config: dict | None = None,
                 extra: list[str] | None = None, config: str | None = None) -> None:
        self.config = config
        self.sim = True
        self.tmp = tmp
        self.state_dir = tmp / "state"
        self.csms_url = csms_url
        self.id = station_id
        self.evses = evses
        self.api_port = 0
        self.extra = extra or []
        self.ocpp_config = ocpp_config
        self.starts = 0
        self.rt: Runtime | None = None
        self.api_server: Api | None = None
        self._task: asyncio.Task | None = None
        self._ready: asyncio.Event | None = None
        self._stop_asked = False
        self._lines: list[str] = []
        self._handler = _LogLines(self._lines)
        self._loggers = [logging.getLogger(f"station.{station_id}"), logging.getLogger("hal")]
        self._levels: list[int] | None = None

    # -- life cycle ---------------------------------------------------------------------------
    def args(self) -> list[str]:
        """The ``station run`` command line this station is built from (no --api: it listens on a free port)."""
        args = ["run", *(["--sim"] if self.sim else []), "--csms-url", self.csms_url, "--id", self.id,
                "--state-dir", str(self.state_dir), "--log-level", "debug"]
        args += ["--config", self.config] if self.config else ["--evses", str(self.evses)]
        if self.ocpp_config is not None:
            path = self.tmp / "ocpp-config.json"
            path.write_text(json.dumps(self.ocpp_config))
            args += ["--ocpp-config", str(path)]
        return args + self.extra

    def start(self) -> None:
        """Start the station (after a ``stop()``: once the previous run has ended, like a new process)."""
        if self.running and not self._stop_asked:
            raise RuntimeError(f"station {self.id} is running: stop() it before starting it again")
        self.starts += 1
        self._stop_asked = False
        previous = self._task
        self._ready = asyncio.Event()
        self._task = asyncio.ensure_future(self._main(previous, self._ready))

    def stop(self) -> asyncio.Future:
        """A clean stop (as SIGTERM is); ``await sp.stop()`` waits until the station has ended."""
        self._stop_asked = True
        if self.rt is not None:
            self.rt.stop()
        return asyncio.ensure_future(self._ended(self._task))

    @staticmethod
    async def _ended(task: asyncio.Task | None) -> None:
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    def kill(self) -> None:
        raise NotImplementedError("a power cut (kill -9) needs the station as a process: mark the test @pytest.mark.process")

    async def aclose(self) -> None:
        """Stop (unless the test already did: a second stop would skip waiting for the CSMS) and wait
        until the station has ended (teardown)."""
        if self._stop_asked:
            await self._ended(self._task)
        else:
            await self.stop()
        self._release_log()

    def log(self) -> str:
        return "\n".join(self._lines) + ("\n" if self._lines else "")

    async def _main(self, previous: asyncio.Task | None, ready: asyncio.Event) -> None:
        """What ``station run`` does (station/cli.py ``_run``), minus signals and systemd."""
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        self._capture_log()
        api: Api | None = None
        rt: Runtime | None = None
        try:
            cfg = build_config(_parser().parse_args(self.args()))
            log = self._loggers[0]
            rt = Runtime(cfg, clock=LoopScheduler(), log=log)
            api = Api(lambda: rt, log, token=cfg.api_token)
            self.api_port = await api.start("127.0.0.1", 0)
            log.info("local API on http://127.0.0.1:%d/api/status", self.api_port)
            log.info("station %s (OCPP %s) connecting to %s", cfg.id, cfg.ocpp, cfg.url_for_station())
            self.rt, self.api_server = rt, api
            if self._stop_asked:
                rt.stop()
            ready.set()
            await rt.run()
        except Exception as e:
            self._lines.append(f"station ended with {type(e).__name__}: {e}")
            logging.getLogger(__name__).exception("in-process station %s failed", self.id)
            raise
        finally:
            ready.set()
            if api is not None:
                await api.close()
            if rt is not None:
                await rt.close()  # idempotent: releases the store's directory lock if run() never did
            self.rt = None

    def _capture_log(self) -> None:
        if self._levels is None:
            self._levels = [lg.level for lg in self._loggers]
            for lg in self._loggers:
                lg.setLevel(logging.DEBUG)
                lg.addHandler(self._handler)

    def _release_log(self) -> None:
        if self._levels is not None:
            for lg, level in zip(self._loggers, self._levels, strict=True):
                lg.removeHandler(self._handler)
                lg.setLevel(level)
            self._levels = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # -- local API, over a real loopback HTTP socket ------------------------------------------
    async def _request(self, method: str, path: str, body: dict | None) -> tuple[int, dict]:
        if self._ready is not None:
            await asyncio.wait_for(self._ready.wait(), 15)
        if self.rt is None or self.api_port == 0:
            raise ConnectionRefusedError(f"station {self.id} is not running")
        data = json.dumps(body).encode() if body is not None else b""
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.api_port}\r\nContent-Type: application/json\r\n"
        if data or method != "GET":
            head += f"Content-Length: {len(data)}\r\n"
        head += "Connection: close\r\n\r\n"
        reader, writer = await asyncio.open_connection("127.0.0.1", self.api_port)
        try:
            writer.write(head.encode("latin-1") + data)
            await writer.drain()
            status_line = await reader.readline()
            status = int(status_line.split()[1])
            length = None
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            raw = await (reader.readexactly(length) if length is not None else reader.read())
        finally:
            writer.close()
        return status, json.loads(raw) if raw else {}

    async def api(self, method: str, path: str, body: dict | None = None, expect: int | None = 200) -> dict:
        status, data = await asyncio.wait_for(self._request(method, path, body), 5)
        if expect is not None:
            assert status == expect, f"{method} {path} -> {status} {data}"
        return data

    async def wait_api(self, timeout: float = 15.0) -> None:
        if self._ready is None:
            raise AssertionError("station was never started")
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            raise AssertionError("station API did not come up:\n" + self.log()[-3000:]) from None
        if self.rt is None:
            raise AssertionError("station exited:\n" + self.log()[-3000:])
        await self.api("GET", "/api/status")

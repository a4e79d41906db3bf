"""Fixtures of the integration tests: a scripted CSMS and the station under test.

The station runs in process by default (``tests/integration/inproc.py``: the real object graph in
the test's event loop, on a ``VirtualTimeLoop`` so idle time is skipped). A test that needs a real
process — a power cut (kill -9), the command line, systemd notify, hardware peers — is marked
``@pytest.mark.process``: it gets ``StationProcess`` (``python -m station run --sim``) and a
normal, real-time event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest

from station.scheduler import VirtualTimeLoop
from tests.integration.harness import ScriptedCsms, StationProcess
from tests.integration.inproc import InProcessStation

# Fast defaults for tests: short intervals so cases finish in seconds.
FAST = {"HeartbeatInterval": "300", "MeterValueSampleInterval": "0", "ConnectionTimeOut": "5",
        "TransactionMessageRetryInterval": "1"}

# a test that uses one of these gets the station in process, on virtual time (unless marked process)
STATION_FIXTURES = frozenset({"csms", "make_station", "booted", "csms201", "make_station201", "booted201"})


def var(component: str, variable: str, value: str, instance: str | None = None, evse: int | None = None) -> dict:
    """One SetVariableData (2.0.1 --ocpp-config and SetVariables)."""
    c: dict = {"name": component}
    if evse is not None:
        c["evse"] = {"id": evse}
    v: dict = {"name": variable}
    if instance is not None:
        v["instance"] = instance
    return {"component": c, "variable": v, "attributeValue": value}


# Fast defaults of the 2.0.1 tests, as --ocpp-config (the SetVariableData list shape)
FAST201 = [var("TxCtrlr", "EVConnectionTimeOut", "5"), var("SampledDataCtrlr", "TxUpdatedInterval", "0"),
           var("AlignedDataCtrlr", "Interval", "0"),
           var("OCPPCommCtrlr", "MessageAttemptInterval", "1", instance="TransactionEvent")]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--station-process", action="store_true",
        help="run every station test against the station as a process, in real time (slow; a cross-check of the in-process runs)",
    )


def as_process(item: pytest.Item) -> bool:
    return item.get_closest_marker("process") is not None or bool(item.config.getoption("station_process"))


def on_virtual_time(item: pytest.Item) -> bool:
    if as_process(item):
        return False
    return item.get_closest_marker("virtual_time") is not None or bool(STATION_FIXTURES & set(item.fixturenames))


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The event loop of each async test: virtual time for in-process station tests, real time otherwise."""
    if on_virtual_time(item):
        return {"virtual_time": VirtualTimeLoop}
    return {"real_time": asyncio.new_event_loop}


@pytest.fixture
async def csms():
    c = ScriptedCsms()
    await c.start()
    yield c
    await c.close()
    assert not c.schema_problems, f"station sent schema-invalid frames: {c.schema_problems}"


@pytest.fixture
async def make_station(request, tmp_path, csms):
    """make_station(...) -> a station not yet started: in process, or a process if the test is marked ``process``."""
    made: list[StationProcess | InProcessStation] = []
    marked_process = as_process(request.node)
    virtual = isinstance(asyncio.get_running_loop(), VirtualTimeLoop)

    def make(ocpp_config: dict | None = None, evses: int = 1, station_id: str = "CS001", extra: list[str] | None = None,
             url: str | None = None, fast: bool = True, config: str | None = None,
             process: bool | None = None) -> StationProcess | InProcessStation:
        cfg = dict(FAST) if fast else {}
        cfg.update(ocpp_config or {})
        as_process = marked_process if process is None else process
        if as_process and virtual:
            raise pytest.UsageError("a station process runs in real time: mark the test @pytest.mark.process")
        kind = StationProcess if as_process else InProcessStation
        sp = kind(tmp_path, url or f"ws://127.0.0.1:{csms.port}/ocpp", station_id, evses, cfg, extra, config)
        made.append(sp)
        return sp

    yield make
    for sp in made:
        if isinstance(sp, InProcessStation):
            await sp.aclose()
        else:
            sp.stop()


@pytest.fixture
async def booted(csms, make_station):
    """A started station that has booted (Accepted) and reported its connectors Available."""

    async def boot(**kw):
        sp = make_station(**kw)
        sp.start()
        await csms.expect("BootNotification", timeout=15)
        for cid in range(0, sp.evses + 1):
            await csms.expect("StatusNotification", lambda p, c=cid: p["connectorId"] == c, timeout=10, since=0)
        await sp.wait_api()
        csms.mark()
        return sp

    return boot


@pytest.fixture
async def csms201():
    c = ScriptedCsms(version="2.0.1")
    await c.start()
    yield c
    await c.close()
    assert not c.schema_problems, f"station sent schema-invalid frames: {c.schema_problems}"


@pytest.fixture
async def make_station201(request, tmp_path, csms201):
    """make_station201(variables=[...], evses=2, ...) -> an OCPP 2.0.1 station not yet started, in
    process; two EVSEs by default (issue 10: the 2.0.1 test station has two)."""
    made: list[InProcessStation] = []

    def make(variables: list[dict] | None = None, evses: int = 2, station_id: str = "CS201",
             extra: list[str] | None = None, url: str | None = None, fast: bool = True,
             config: str | None = None) -> InProcessStation:
        cfg = list(FAST201) if fast else []
        cfg += variables or []
        sp = InProcessStation(tmp_path, url or f"ws://127.0.0.1:{csms201.port}/ocpp", station_id, evses, cfg,  # type: ignore[arg-type]
                              ["--ocpp", "2.0.1", *(extra or [])], config)
        made.append(sp)
        return sp

    yield make
    for sp in made:
        await sp.aclose()


@pytest.fixture
async def booted201(csms201, make_station201):
    """A started 2.0.1 station that has booted (Accepted) and reported its connectors."""

    async def boot(**kw):
        sp = make_station201(**kw)
        sp.start()
        await csms201.expect("BootNotification", timeout=15)
        for evse in range(1, sp.evses + 1):
            await csms201.expect("StatusNotification", lambda p, e=evse: p["evseId"] == e, timeout=10, since=0)
        await sp.wait_api()
        csms201.mark()
        return sp

    return boot

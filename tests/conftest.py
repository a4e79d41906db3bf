from __future__ import annotations

import pytest

from tests.integration.harness import ScriptedCsms, StationProcess

# Fast defaults for tests: short intervals so cases finish in seconds.
FAST = {"HeartbeatInterval": "300", "MeterValueSampleInterval": "0", "ConnectionTimeOut": "5",
        "TransactionMessageRetryInterval": "1"}


@pytest.fixture
async def csms():
    c = ScriptedCsms()
    await c.start()
    yield c
    await c.close()
    assert not c.schema_problems, f"station sent schema-invalid frames: {c.schema_problems}"


@pytest.fixture
def make_station(tmp_path, csms):
    made: list[StationProcess] = []

    def make(ocpp_config: dict | None = None, evses: int = 1, station_id: str = "CS001", extra: list[str] | None = None,
             url: str | None = None, fast: bool = True, config: str | None = None) -> StationProcess:
        cfg = dict(FAST) if fast else {}
        cfg.update(ocpp_config or {})
        sp = StationProcess(tmp_path, url or f"ws://127.0.0.1:{csms.port}/ocpp", station_id, evses, cfg, extra, config)
        made.append(sp)
        return sp

    yield make
    for sp in made:
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

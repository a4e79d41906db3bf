"""The parts of fleet mode (issue 11) that need no CSMS: the shared timer wheel and its per-station
jitter, the dict store (the same answers as the SQLite one), profiles, shards, the response-time
histogram, the Prometheus text, the fleet API's rules and the command line's refusals."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from station.api import TextBody
from station.scheduler import StationClock, TimerWheel, VirtualTimeLoop
from station.sim.fleet import (
    FleetError,
    FleetStats,
    Histogram,
    merge_snapshots,
    parse_profile,
    parse_shard,
    prometheus,
    shard_range,
    station_ids,
)
from station.sim.fleet_cli import FleetApi
from station.store import DictStore, Store

ROOT = Path(__file__).resolve().parents[2]


# -- the timer wheel ----------------------------------------------------------------------------
def _on_virtual_loop(coro_fn):
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro_fn())
    finally:
        loop.close()


def test_wheel_never_fires_early_at_most_a_tick_late_and_in_order():
    async def go():
        loop = asyncio.get_running_loop()
        wheel = TimerWheel(tick=0.01)
        fired: list[tuple[str, float, float]] = []
        for name, delay in (("c", 3.0), ("a", 1.0), ("b", 2.0), ("a2", 1.0)):
            due = loop.time() + delay
            wheel.call_later(delay, lambda n=name, d=due: fired.append((n, d, loop.time())))
        await asyncio.sleep(5)
        assert [n for n, _, _ in fired] == ["a", "a2", "b", "c"]
        for _, due, at in fired:
            assert due <= at <= due + 0.01 + 1e-9
        assert wheel.pending == 0
        # four timers in three buckets: three loop wake-ups, not one per timer
        assert wheel.fired == 4 and wheel.wakeups == 3

    _on_virtual_loop(go)


def test_wheel_cancel_leaves_nothing_behind_and_a_rearmed_timer_is_periodic():
    async def go():
        wheel = TimerWheel()
        fired: list[int] = []
        timers = [wheel.call_later(100, fired.append, i) for i in range(1000)]
        for t in timers:
            t.cancel()
            t.cancel()  # twice is harmless
        assert wheel.pending == 0
        ticks: list[float] = []

        def tick() -> None:
            ticks.append(wheel.monotonic())
            wheel.call_later(10, tick)

        wheel.call_later(10, tick)
        await asyncio.sleep(35)
        assert fired == [] and len(ticks) == 3
        assert wheel.wakeups == 3  # the cancelled timers' bucket never woke the loop

    _on_virtual_loop(go)


def test_wheel_timer_set_by_a_timer_for_now_runs_on_the_next_turn_not_in_a_loop():
    async def go():
        wheel = TimerWheel()
        runs: list[int] = []

        def again() -> None:
            runs.append(1)
            if len(runs) < 100:
                wheel.call_later(0, again)

        wheel.call_later(0, again)
        await asyncio.sleep(0.5)
        assert len(runs) == 100
        assert wheel.wakeups >= 100  # one per turn: the loop got control between them

    _on_virtual_loop(go)


def test_wheel_reports_a_failing_timer_and_goes_on():
    async def go():
        loop = asyncio.get_running_loop()
        seen: list[dict] = []
        loop.set_exception_handler(lambda _loop, ctx: seen.append(ctx))
        wheel = TimerWheel()
        ok: list[int] = []
        wheel.call_later(1, lambda: 1 / 0)
        wheel.call_later(1, ok.append, 1)
        await asyncio.sleep(2)
        assert ok == [1] and isinstance(seen[0]["exception"], ZeroDivisionError)

    _on_virtual_loop(go)


def test_station_jitter_spreads_aligned_timers_and_keeps_short_ones_exact():
    async def go():
        wheel = TimerWheel(tick=0.01)
        clocks = [wheel.station(i / 100, max_jitter=2.0) for i in range(100)]
        fired: list[float] = []
        start = wheel.monotonic()
        for c in clocks:  # 100 stations booted together, each arming a 300 s heartbeat
            c.call_later(300, lambda: fired.append(wheel.monotonic() - start))
        short: list[float] = []
        clocks[99].call_later(1.0, lambda: short.append(wheel.monotonic() - start))
        await asyncio.sleep(400)
        assert short and 1.0 <= short[0] <= 1.01
        assert min(fired) >= 300 and max(fired) <= 302.01
        assert len({round(t, 2) for t in fired}) >= 90  # spread over ~2 s, not one moment
        assert wheel.wakeups >= 90

    _on_virtual_loop(go)


def test_station_clock_is_a_scheduler():
    wheel = TimerWheel(asyncio.new_event_loop())
    c = wheel.station(0.5)
    assert isinstance(c, StationClock)
    assert c.now().tzinfo is not None and isinstance(c.monotonic(), float)
    wheel._clock.loop.close()


# -- the dict store answers as the SQLite store does ----------------------------------------------
def _exercise(store) -> list:
    out: list = []
    store.put("ns", "a", {"x": [1, 2]})
    store.put("ns", "b", "text")
    store.put("other", "a", 3)
    got = store.get("ns", "a")
    got["x"].append(3)  # a copy: the stored value is not changed through it
    out += [store.get("ns", "a"), store.get("ns", "zz", "dflt"), sorted(store.items("ns").items())]
    store.delete("ns", "b")
    out.append(sorted(store.items("ns")))
    out.append(store.updated_at("ns", "a") is not None)
    s1 = store.outbox_add("StartTransaction", {"connectorId": 1}, 1)
    store.outbox_add("MeterValues", {"connectorId": 1}, 1)
    first = store.outbox_first()
    first[2]["changed"] = True  # a copy too
    out += [store.outbox_first(), store.outbox_len()]
    out.append(store.outbox_unique_id(s1, lambda: "uid-1"))
    out.append(store.outbox_unique_id(s1, lambda: "uid-2"))  # the first id stays
    store.outbox_attempt(s1)
    out.append(store.outbox_first()[4])
    store.outbox_remove(s1)
    out += [store.outbox_all(), store.outbox_len()]
    for n in range(1, 6):
        lid = store.next_local_tx()
        store.tx_save(lid, 1, f"TAG{n}", {"meter_last_wh": n}, open_=n == 5)
        store.tx_set_id(lid, 100 + n)
    out += [store.tx_id(2), store.tx_id(99), store.tx_open()]
    store.tx_prune(keep=2)
    out.append([store.tx_id(n) for n in range(1, 6)])  # 1 is kept: a queued message refers to it
    for n in range(5):
        store.auth_put("cache", f"T{n}", {"status": "Accepted"}, keep=3)
    out.append(store.auth_put("cache", "T9", {"status": "Blocked"}, keep=3))
    store.auth_put("cache", "T3", {"status": "Expired"}, keep=3)  # rewritten: the most recent again
    out.append(store.auth_put("cache", "T10", {"status": "Accepted"}, keep=3))
    out.append(sorted(store.auth_all("cache").items()))
    store.auth_remove("cache", "T3")
    store.auth_clear("list")
    out.append(sorted(store.auth_all("cache")))
    store.config_file_put("HeartbeatInterval", "60", "file")
    out += [store.config_file_get("HeartbeatInterval"), store.config_file_get("Nope")]
    with store.atomic(), store.atomic():
        store.put("ns", "in-atomic", 1)
    out.append(store.get("ns", "in-atomic"))
    return out


def test_dict_store_gives_the_answers_of_the_sqlite_store():
    sqlite = Store(":memory:")
    try:
        expected = _exercise(sqlite)
    finally:
        sqlite.close()
    d = DictStore()
    assert _exercise(d) == expected
    assert d.persistent is False


# -- profiles, ids, shards ----------------------------------------------------------------------
def test_profile_parses_every_section_and_names_the_bad_key():
    p = parse_profile({
        "seed": 7, "sessions": {"per_hour": 2, "minutes": [5, 10], "busy_at_start": 0.5},
        "ev": {"max_current": [16, 32], "phases": [1, 3]}, "cards": {"pool": 10, "prefix": "C"},
        "link": {"drops_per_hour": 0.5}, "versions": {"1.6": 1}, "csms": {"expected_requests": ["TriggerMessage"]},
        "ocpp16": {"MeterValueSampleInterval": 30, "AuthorizationCacheEnabled": False},
    })
    assert p.seed == 7 and p.session_minutes == (5.0, 10.0) and p.ev_phases == (1, 3)
    assert p.expected_requests == frozenset({"TriggerMessage"})
    assert p.ocpp16_keys == {"MeterValueSampleInterval": "30", "AuthorizationCacheEnabled": "false"}
    for bad, words in (
        ({"sesions": {}}, "unknown key 'sesions'"),
        ({"sessions": {"per_hour": -1}}, "sessions.per_hour"),
        ({"sessions": {"minutes": [10, 5]}}, "sessions.minutes"),
        ({"ev": {"phases": [4]}}, "ev.phases"),
        ({"versions": {"1.5": 1}}, "unknown OCPP version '1.5'"),
        ({"ocpp16": {"NumberOfConnectors": 2}}, "not a writable"),
        ({"ocpp16": {"HeartbeatInterval": "soon"}}, "ocpp16.HeartbeatInterval"),
        ({"cards": {"prefix": "X" * 13}}, "cards.prefix"),
    ):
        with pytest.raises(FleetError, match=words.replace("(", r"\(")):
            parse_profile(bad)


def test_shards_are_disjoint_and_cover_every_station():
    for count in (1, 7, 100, 10_001):
        for k in (1, 2, 3, 8):
            ranges = [shard_range(count, (i, k)) for i in range(k)]
            seen = [n for r in ranges for n in r]
            assert seen == list(range(count))
    ids = station_ids("CS-", 100_000, range(99_998, 100_000))
    assert ids == ["CS-99998", "CS-99999"]
    assert station_ids("X", 10, range(2)) == ["X00000", "X00001"]


def test_shard_auto_reads_the_indexed_job():
    assert parse_shard("2/5") == (2, 5)
    assert parse_shard("auto", env={"JOB_COMPLETION_INDEX": "3", "FLEET_SHARDS": "4"}) == (3, 4)
    assert parse_shard("auto", shards=8, env={"JOB_COMPLETION_INDEX": "3", "FLEET_SHARDS": "4"}) == (3, 8)
    with pytest.raises(FleetError, match="JOB_COMPLETION_INDEX"):
        parse_shard("auto", shards=2, env={})
    with pytest.raises(FleetError, match="--shards K or FLEET_SHARDS"):
        parse_shard("auto", env={"JOB_COMPLETION_INDEX": "0"})
    for bad in ("3/3", "1", "a/b", "-1/2"):
        with pytest.raises(FleetError):
            parse_shard(bad)


# -- statistics ---------------------------------------------------------------------------------
def test_histogram_percentiles_within_ten_percent_and_merge():
    h = Histogram()
    for ms in range(1, 1001):  # 1 .. 1000 ms
        h.add(ms / 1000)
    assert 0.5 <= h.percentile(50) <= 0.5 * 1.1
    assert 0.99 <= h.percentile(99) <= 0.99 * 1.1
    other = Histogram()
    other.add(5.0)
    h.merge(other)
    assert h.count == 1001 and h.percentile(100) >= 5.0
    assert Histogram().percentile(99) is None


def test_limit_names_file_descriptors_ports_or_the_csms():
    st = FleetStats()
    assert st.limit() is None
    st.errors["csms: handshake timeout"] += 3
    assert "the CSMS is the limit" in st.limit() and "handshake timeout" in st.limit()
    st.errors["os: too many open files"] += 1
    assert "the OS is the limit" in st.limit() and "RLIMIT_NOFILE" in st.limit()


def _snap(connected: int, hist: Histogram) -> dict:
    return {"stations": 10, "started": 10, "connected": connected, "booted": connected, "sessions_running": 2,
            "sessions_done": 1, "msgs_per_s": {"in": 1.0, "out": 2.0}, "msgs": {"in": 10, "out": 20},
            "csms_response_ms": {"p50": 1.0, "p99": 2.0}, "errors": {'csms: HTTP 503 "x"': 1},
            "csms_requests": {"TriggerMessage": 4}, "limit": None, "histogram": hist.counts, "response_sum_s": 0.5}


def test_prometheus_text_of_merged_processes():
    h = Histogram()
    for s in (0.001, 0.02, 0.2):
        h.add(s)
    merged = merge_snapshots([_snap(10, h), _snap(7, h)])
    assert merged["connected"] == 17 and merged["errors"] == {'csms: HTTP 503 "x"': 2}
    text = prometheus(merged)
    lines = text.splitlines()
    assert "station_fleet_connected 17" in lines
    assert 'station_fleet_errors_total{kind="csms: HTTP 503 \\"x\\""} 2' in lines
    assert 'station_fleet_csms_requests_total{action="TriggerMessage"} 8' in lines
    assert 'station_fleet_csms_response_seconds_bucket{le="0.005"} 2' in lines
    assert 'station_fleet_csms_response_seconds_bucket{le="+Inf"} 6' in lines
    assert "station_fleet_csms_response_seconds_count 6" in lines
    for line in lines:  # every sample line: name{labels} value
        if not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            float(value)
            assert name.startswith("station_fleet_")


# -- the fleet's local API keeps the station API's rules --------------------------------------------
async def _http(port: int, head: str) -> tuple[int, str, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    top, _, body = data.partition(b"\r\n\r\n")
    lines = top.decode().split("\r\n")
    ctype = next((line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("content-type")), "")
    return int(lines[0].split()[1]), ctype, body


async def test_fleet_api_serves_json_and_metrics_and_asks_for_the_token():
    h = Histogram()
    h.add(0.01)
    api = FleetApi(lambda: _snap(3, h), __import__("logging").getLogger("test"), token="s3cret")
    port = await api.start("127.0.0.1", 0)
    try:
        status, _, body = await _http(port, "GET /api/fleet HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert status == 401 and b"token" in body
        auth = "Authorization: Bearer s3cret\r\nConnection: close\r\n"
        status, ctype, body = await _http(port, f"GET /api/fleet HTTP/1.1\r\n{auth}\r\n")
        assert status == 200 and ctype == "application/json"
        data = json.loads(body)
        assert data["connected"] == 3 and "histogram" not in data
        status, ctype, body = await _http(port, f"GET /metrics HTTP/1.1\r\n{auth}\r\n")
        assert status == 200 and ctype == TextBody.content_type
        assert b"station_fleet_connected 3\n" in body
        status, _, _ = await _http(port, f"POST /metrics HTTP/1.1\r\n{auth}Content-Length: 0\r\n\r\n")
        assert status == 405
        status, _, _ = await _http(port, f"GET /api/status HTTP/1.1\r\n{auth}\r\n")
        assert status == 404
    finally:
        await api.close()


# -- the command line ---------------------------------------------------------------------------
def _fleet(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "station", "fleet", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def test_cli_refuses_what_cannot_work_in_one_line(tmp_path):
    profile = tmp_path / "p.toml"
    profile.write_text('[versions]\n"1.6" = 0.5\n"2.1" = 0.5\n')
    bad_variable = tmp_path / "v.toml"
    bad_variable.write_text('[ocpp201]\n"TxCtrlr.TxStartPoint" = "Sometimes"\n')
    cases = [
        (["--count", "10", "--csms-url", "ws://127.0.0.1:9/ocpp", "--profile", str(profile)], "unknown OCPP version"),
        (["--count", "10", "--csms-url", "ws://127.0.0.1:9/ocpp", "--profile", str(bad_variable)],
         "ocpp201.TxCtrlr.TxStartPoint"),
        (["--count", "0", "--csms-url", "ws://127.0.0.1:9/ocpp"], "--count"),
        (["--count", "5", "--csms-url", "http://x/ocpp"], "--csms-url"),
        (["--count", "5", "--csms-url", "ws://127.0.0.1:9/ocpp", "--shard", "5/5"], "--shard 5/5"),
        (["--count", "5", "--csms-url", "ws://127.0.0.1:9/ocpp", "--api", "0.0.0.0:0"], "needs a token"),
    ]
    for args, words in cases:
        r = _fleet(*args)
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], (args, r.stderr)
        assert "Traceback" not in r.stderr


# -- one logger for many stations -----------------------------------------------------------------
def test_station_log_names_the_station_and_keeps_each_stations_diagnostics_apart():
    import logging
    from datetime import UTC, datetime

    from station.firmware import DiagnosticsLog
    from station.stationlog import StationLog

    base = logging.getLogger("test.fleet.shared")
    base.setLevel(logging.INFO)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    base.addHandler(keep)
    try:
        a, b = StationLog(base, "CS-A"), StationLog(base, "CS-B")
        now = lambda: datetime(2026, 1, 1, tzinfo=UTC)  # noqa: E731
        ring_a = DiagnosticsLog.attach(a, now, owner="store-a")
        ring_b = DiagnosticsLog.attach(b, now, owner="store-b")
        a.info("booted %s", "ok")
        b.warning("lost %d", 3)
        a.debug("not kept: below INFO")
        assert [r.getMessage() for r in records] == ["[CS-A] booted ok", "[CS-B] lost 3"]
        assert [r.station for r in records] == ["CS-A", "CS-B"]  # type: ignore[attr-defined]
        assert [line.split(" ", 1)[1] for line in ring_a.between(None, None)] == ["INFO test.fleet.shared: [CS-A] booted ok"]
        assert len(ring_b.between(None, None)) == 1 and "lost 3" in ring_b.between(None, None)[0]
        # the same station after a restart (same store): the same ring; another store: emptied
        assert DiagnosticsLog.attach(a, now, owner="store-a") is ring_a and ring_a.lines
        DiagnosticsLog.attach(a, now, owner="store-x")
        assert not ring_a.lines
        assert "test.fleet.shared.CS-A" not in logging.Logger.manager.loggerDict
    finally:
        base.removeHandler(keep)
        for h in list(base.handlers):
            base.removeHandler(h)


# -- the OS as the limit, named before the start ----------------------------------------------------
def test_descriptor_limit_raised_to_the_hard_one_or_named(monkeypatch):
    from station.sim import fleet_stats as fleet_mod

    limits = {"now": (1024, 4096)}
    monkeypatch.setattr(fleet_mod.resource, "getrlimit", lambda _: limits["now"])

    def setrlimit(_: int, value: tuple[int, int]) -> None:
        if value[1] != limits["now"][1]:
            raise ValueError("not allowed to raise maximum limit")
        limits["now"] = value

    monkeypatch.setattr(fleet_mod.resource, "setrlimit", setrlimit)
    assert fleet_mod.raise_nofile(2000) == (4096, 4096)
    limits["now"] = (1024, 4096)
    with pytest.raises(FleetError, match=r"needs about 5000 file descriptors, RLIMIT_NOFILE allows 4096 \(hard limit 4096\)"):
        fleet_mod.raise_nofile(5000)


def test_more_stations_than_local_ports_is_refused_naming_the_range(monkeypatch):
    from station.cli import _parser
    from station.sim import fleet_cli

    monkeypatch.setattr(fleet_cli, "local_port_range", lambda: (60000, 60999))
    ns = _parser().parse_args(["fleet", "--count", "3000", "--csms-url", "ws://127.0.0.1:9/ocpp"])
    with pytest.raises(FleetError, match=r"ip_local_port_range 60000-60999 has 1000"):
        fleet_cli._plan(ns)
    ns = _parser().parse_args(["fleet", "--count", "3000", "--csms-url", "ws://127.0.0.1:9/ocpp", "--shard", "2/3"])
    _, parts = fleet_cli._plan(ns)  # a third of them fits
    assert [len(p) for p in parts] == [1000]


def test_profile_ocpp201_variables_become_store_values(tmp_path):
    from station.ocpp201.device_model import NS, DeviceModel
    from station.sim.fleet_profile import load_profile
    from station.store import MemoryStore

    path = tmp_path / "p.toml"
    path.write_text('[ocpp201]\n"SampledDataCtrlr.TxUpdatedInterval" = 45\n'
                    '"OCPPCommCtrlr.MessageAttempts[TransactionEvent]" = 5\n')
    profile = load_profile(str(path))
    store = MemoryStore()
    for key, value in profile.ocpp201_variables.items():
        store.put(NS, key, value)
    dm = DeviceModel(store, {1: [1]}, {})
    assert dm.value("SampledDataCtrlr", "TxUpdatedInterval") == 45
    assert dm.value("OCPPCommCtrlr", "MessageAttempts", instance="TransactionEvent") == 5

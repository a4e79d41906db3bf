"""Fleet mode: many real stations with simulated hardware and EVs in one process, to load a CSMS.

Every station is the real firmware — ``Runtime``, ``Station``, the OCPP adapter, ``Link`` — with
simulated hardware (``hal.sim``), so it answers every CSMS request as a station in the field does.
What a fleet shares, so that a station costs little:

- time: one :class:`~station.scheduler.TimerWheel` holds every station's timers on one loop
  timer; each station sees it through its own ``StationClock`` with a fixed jitter phase, so the
  heartbeats and meter values of 10,000 stations booted together do not wake together;
- state: a ``DictStore`` per station (plain dicts: no SQLite connection, no file, no lock);
- logging: one logger (``station.fleet``), the station id as context (station/stationlog.py);
- tables: configuration key definitions, the routing table and the schema validators are built
  once per process;
- the websocket: small buffers (``FLEET_WS_OPTIONS``);
- the garbage collector: the objects of built and booted stations live as long as the fleet, so
  they are frozen (``gc.freeze()``) once the ramp-up is over: a full collection then scans only
  what came later instead of every station (0.7 s at 5,000 stations, a pause every CSMS request
  in flight would wait for). ``gc`` in the statistics shows the collections and the longest pause.

The behaviour of the simulated drivers comes from a profile (TOML, :func:`load_profile`):
sessions per hour, session length, EV current and phases, the card pool, connection drops, the
share of each OCPP version, and which requests the CSMS is expected to send. A driver plugs in,
holds a card, charges (the station sends its meter values), holds the card again to stop,
unplugs, and pauses; every step is a timer of the station's clock, no task and no polling.

The profile, ids and shards are in station/sim/fleet_profile.py; the statistics
(station/sim/fleet_stats.py, :class:`FleetStats`): connected, booted, sessions running, messages a second each way,
the CSMS's response time p50/p99 (for the stations' own calls), errors by kind, and which limit
was hit (file descriptors, local ports, the CSMS). Shown as one updating terminal line, served as
``GET /api/fleet`` (JSON) and ``GET /metrics`` (Prometheus text) on the local API, summed up at the
end. ``--shard I/K`` runs one K-th of the ids; ``--processes P`` forks P workers, each a shard.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from hal.types import IdToken
from station.config import EvseConfig, StationConfig
from station.ocpp16.config_keys import NS as OCPP16_NS
from station.scheduler import StationClock, TimerWheel
from station.sim.fleet_profile import (  # noqa: F401 - the fleet's public names, in one place
    INDEX_ENV,
    SHARDS_ENV,
    VERSIONS,
    FleetError,
    FleetProfile,
    load_profile,
    parse_profile,
    parse_shard,
    shard_range,
    station_ids,
)
from station.sim.fleet_stats import (  # noqa: F401
    PROM_BUCKETS_S,
    FleetStats,
    Histogram,
    _fmt_ms,
    _ms,
    classify,
    local_port_range,
    merge_snapshots,
    merged_line,
    print_summary,
    prometheus,
    raise_nofile,
)
from station.stationlog import StationLog
from station.store import DictStore

IMPLEMENTED = ("1.6", "2.0.1")  # what this build can run in a fleet (VERSIONS: what --ocpp and [versions] may name)
FLEET_WS_OPTIONS = {"max_size": 256 * 1024, "max_queue": 4, "write_limit": 4096}
CHECKPOINT_S = 60.0  # transaction checkpoints (for a power cut) of a station whose state is in memory anyway


# -- one simulated station ----------------------------------------------------------------------
IDLE, PLUGGED, CHARGING, UNPLUGGING = 0, 1, 2, 3


class SimStation:
    """A real station (``Runtime``) and its simulated driver; also its link's observer."""

    __slots__ = ("fleet", "id", "version", "rt", "task", "clock", "state", "card", "timer", "drop_timer",
                 "sessions", "first", "counted_open")

    def __init__(self, fleet: Fleet, sid: str, version: str, clock: StationClock) -> None:
        self.fleet = fleet
        self.id = sid
        self.version = version
        self.clock = clock
        self.rt: Any = None
        self.task: asyncio.Task | None = None
        self.state = IDLE
        self.card = ""
        self.timer: Any = None
        self.drop_timer: Any = None
        self.sessions = 0  # sessions this driver started (plugged in and held a card)
        self.first = True  # the first connection attempt has not ended yet (ramp-up slot held)
        self.counted_open = False

    # -- LinkObserver -----------------------------------------------------------------------
    def opened(self) -> None:
        st = self.fleet.stats
        st.connected += 1
        st.connections += 1
        self.counted_open = True
        self._first_done()

    def closed(self) -> None:
        if self.counted_open:
            self.counted_open = False
            self.fleet.stats.connected -= 1

    def failed(self, e: BaseException) -> None:
        self.fleet.stats.errors[classify(e)] += 1
        self._first_done()

    def answered(self, action: str, seconds: float, error: BaseException | None) -> None:
        self.fleet.stats.answered(action, seconds, error)

    def request(self, action: str) -> None:
        fleet = self.fleet
        fleet.stats.requests[action] += 1
        expected = fleet.profile.expected_requests
        if expected is not None and action not in expected:
            fleet.stats.errors[f"csms: unexpected request {action}"] += 1

    def _first_done(self) -> None:
        if self.first:
            self.first = False
            self.fleet._ramp_slots.release()

    # -- the driver -------------------------------------------------------------------------
    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        self.timer = self.clock.call_later(delay, fn)

    def begin(self) -> None:
        p, rng = self.fleet.profile, self.fleet.rng
        if rng.random() < p.busy_at_start:
            self._later(rng.uniform(1.0, 10.0), self._plug)
        else:
            self._pause()
        if p.drops_per_hour > 0:
            self.drop_timer = self.clock.call_later(rng.expovariate(p.drops_per_hour / 3600), self._drop)

    def _pause(self) -> None:
        p = self.fleet.profile
        self.state = IDLE
        if p.sessions_per_hour > 0:
            self._later(self.fleet.rng.expovariate(p.sessions_per_hour / 3600), self._plug)

    def _plant(self) -> Any:
        return self.rt.hw[1].plant

    def _plug(self) -> None:
        p, rng = self.fleet.profile, self.fleet.rng
        self._plant().plug(rng.choice(p.ev_max_current), rng.choice(p.ev_phases))
        self.state = PLUGGED
        self._later(rng.uniform(*p.plug_to_card_s), self._card_on)

    def _card_on(self) -> None:
        p, rng = self.fleet.profile, self.fleet.rng
        self.card = f"{p.card_prefix}{rng.randrange(p.cards):06d}"
        self._plant().reader.present(IdToken(self.card))
        self.state = CHARGING
        self.sessions += 1
        self._later(rng.uniform(*p.session_minutes) * 60, self._card_off)

    def _card_off(self) -> None:
        self._plant().reader.present(IdToken(self.card))
        self.state = UNPLUGGING
        self._later(self.fleet.rng.uniform(*self.fleet.profile.unplug_after_s), self._unplug)

    def _unplug(self) -> None:
        self._plant().unplug()
        self.fleet.stats.sessions_done += 1
        self._pause()

    def _drop(self) -> None:
        link = self.rt.adapter.link if self.rt is not None and self.rt.adapter is not None else None
        ws = link.ws if link is not None else None
        if ws is not None and ws.transport is not None:
            self.fleet.stats.errors["sim: connection dropped on purpose"] += 1
            ws.transport.abort()
        p = self.fleet.profile
        self.drop_timer = self.clock.call_later(self.fleet.rng.expovariate(p.drops_per_hour / 3600), self._drop)

    def halt(self) -> None:
        """The driver stops acting (the station itself stops with its runtime)."""
        for t in (self.timer, self.drop_timer):
            if t is not None:
                t.cancel()
        self.timer = self.drop_timer = None

    # -- what the statistics read -----------------------------------------------------------
    def frames(self) -> tuple[int, int]:
        ad = self.rt.adapter if self.rt is not None else None
        link = ad.link if ad is not None else None
        return (link.frames_in, link.frames_out) if link is not None else (0, 0)

    @property
    def booted(self) -> bool:
        ad = self.rt.adapter if self.rt is not None else None
        return ad is not None and ad.registered

    @property
    def charging(self) -> bool:
        st = self.rt.station if self.rt is not None else None
        return st is not None and any(c.transaction is not None for c in st.connectors.values())


# -- the fleet ----------------------------------------------------------------------------------
def _build(fleet: Fleet, sid: str, clock: StationClock, version: str, ns: str, preset: dict[str, str]) -> Any:
    """One fleet station of ``version``: simulated, its state in a dict store holding ``preset``
    (store namespace ``ns``: its OCPP settings, as if the CSMS had set them)."""
    from station.runtime import Runtime

    cfg = StationConfig(id=sid, ocpp=version, csms_url=fleet.csms_url, state_dir=":memory:", simulated=True,
                        evses=[EvseConfig(1)])
    store = DictStore()
    for key, value in preset.items():
        store.put(ns, key, value)
    rt = Runtime(cfg, clock=clock, log=StationLog(fleet.log, sid), store=store)  # type: ignore[arg-type]
    rt.events_kept = 0
    rt.ws_options = FLEET_WS_OPTIONS
    rt.stop_flush_s = fleet.stop_flush_s
    rt.checkpoint_interval_s = CHECKPOINT_S
    return rt


def _build_1_6(fleet: Fleet, sid: str, clock: StationClock) -> Any:
    return _build(fleet, sid, clock, "1.6", OCPP16_NS, fleet.profile.ocpp16_keys)


def _build_2_0_1(fleet: Fleet, sid: str, clock: StationClock) -> Any:
    from station.ocpp201.device_model import NS as DM_NS

    return _build(fleet, sid, clock, "2.0.1", DM_NS, fleet.profile.ocpp201_variables)  # device-model store keys


# how a station of each OCPP version is built
BUILDERS: dict[str, Callable[[Fleet, str, StationClock], Any]] = {"1.6": _build_1_6, "2.0.1": _build_2_0_1}


class Fleet:
    """Stations ``ids`` of one process against ``csms_url``. ``run(duration)`` builds, ramps up,
    runs until the duration ends or :meth:`stop`, stops every station cleanly and returns the
    summary."""

    def __init__(self, csms_url: str, ids: Sequence[str], profile: FleetProfile | None = None, *,
                 version: str | None = None, concurrency: int = 200, ramp_rate: float | None = None,
                 tick: float = 0.01, max_jitter: float = 10.0, status: Callable[[str], None] | None = None,
                 status_every: float = 1.0, stop_flush_s: float = 5.0, log: logging.Logger | None = None) -> None:
        self.csms_url = csms_url
        self.ids = list(ids)
        self.profile = profile or FleetProfile()
        if version is not None:
            self.profile.versions = {version: 1.0}
        for v in self.profile.versions:
            if v not in IMPLEMENTED:
                raise FleetError(f"OCPP {v} stations are not implemented in this build yet (fleet runs "
                                 f"{', '.join(IMPLEMENTED)})")
        self.concurrency = max(1, concurrency)
        self.ramp_rate = ramp_rate
        self.tick = tick
        self.max_jitter = max_jitter
        self.status = status
        self.status_every = status_every
        self.stop_flush_s = stop_flush_s
        self.log = log or logging.getLogger("station.fleet")
        self.rng = random.Random(self.profile.seed)
        self.stats = FleetStats()
        self.stations: list[SimStation] = []
        self.wheel: TimerWheel | None = None
        self._ramp_slots = asyncio.Semaphore(self.concurrency)
        self._stop = asyncio.Event()
        self._ramp_done = False
        self._ramp_done_at = 0.0
        self._frozen = False
        self._last_tick: float | None = None

    def _version_for(self, n: int) -> str:
        versions = self.profile.versions
        if len(versions) == 1:
            return next(iter(versions))
        return self.rng.choices(list(versions), weights=list(versions.values()))[0]

    def build(self) -> None:
        """Every station object, none connected yet."""
        if self.wheel is None:
            self.wheel = TimerWheel(tick=self.tick)
        for n, sid in enumerate(self.ids):
            version = self._version_for(n)
            sim = SimStation(self, sid, version, self.wheel.station(self.rng.random(), self.max_jitter))
            sim.rt = BUILDERS[version](self, sid, sim.clock)
            sim.rt.link_observer = sim
            self.stations.append(sim)
        self.stats.stations = len(self.stations)

    def stop(self) -> None:
        self._stop.set()

    async def ramp(self) -> None:
        """Start the stations: at most ``concurrency`` connecting at once (as fast as the CSMS
        accepts them), at most ``ramp_rate`` a second if given."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for n, sim in enumerate(self.stations):
            if self._stop.is_set():
                break
            await self._ramp_slots.acquire()
            if self.ramp_rate:
                wait = t0 + n / self.ramp_rate - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            sim.task = asyncio.ensure_future(sim.rt.run())
            sim.task.add_done_callback(self._station_ended)
            self.stats.started += 1
            sim.begin()
        self._ramp_done = True
        self._ramp_done_at = loop.time()

    def _station_ended(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.stats.errors[f"station: ended with {type(task.exception()).__name__}"] += 1
            self.log.error("a station ended: %s", task.exception(), exc_info=task.exception())

    def sample(self) -> None:
        """Refresh the counters read from the stations (each status tick)."""
        st = self.stats
        loop_now = time.monotonic()
        fin = fout = booted = charging = 0
        for sim in self.stations:
            if sim.rt is None:
                continue
            i, o = sim.frames()
            fin += i
            fout += o
            booted += sim.booted
            charging += sim.charging
        if self._last_tick is not None:
            dt = max(1e-6, loop_now - self._last_tick)
            st.rate_in = max(0, fin - st.msgs_in) / dt
            st.rate_out = max(0, fout - st.msgs_out) / dt
        self._last_tick = loop_now
        st.msgs_in, st.msgs_out, st.booted, st.sessions = fin, fout, booted, charging
        st.p50, st.p99 = st.window.percentile(50), st.window.percentile(99)
        st.window = Histogram()
        if (self._ramp_done and not self._frozen and self.stations
                and (booted >= len(self.stations) or asyncio.get_running_loop().time() - self._ramp_done_at > 30)):
            self.freeze()

    def freeze(self) -> None:
        """The stations are built and booted: their objects leave the garbage collector's scans."""
        self._frozen = True
        gc.freeze()  # no gc.collect() first: at 10,000 stations that alone is a 2 s pause
        self.stats.gc_frozen = gc.get_freeze_count()
        self.stats.in_steady = True

    def snapshot(self) -> dict:
        """GET /api/fleet."""
        st, wheel = self.stats, self.wheel
        return {
            "stations": st.stations, "started": st.started, "connected": st.connected, "booted": st.booted,
            "sessions_running": st.sessions, "sessions_done": st.sessions_done,
            "msgs_per_s": {"in": round(st.rate_in, 1), "out": round(st.rate_out, 1)},
            "msgs": {"in": st.msgs_in, "out": st.msgs_out},
            "csms_response_ms": {"p50": _ms(st.p50), "p99": _ms(st.p99),
                                 "total_p50": _ms(st.total.percentile(50)), "total_p99": _ms(st.total.percentile(99)),
                                 "count": st.total.count,
                                 "steady_p50": _ms(st.steady.percentile(50)), "steady_p99": _ms(st.steady.percentile(99)),
                                 "steady_count": st.steady.count},
            "errors": dict(st.errors), "csms_requests": dict(st.requests), "limit": st.limit(),
            "timers": {"pending": wheel.pending if wheel else 0, "wakeups": wheel.wakeups if wheel else 0,
                       "fired": wheel.fired if wheel else 0},
            "gc": {"collections": st.gc_collections, "max_pause_ms": _ms(st.gc_max_pause), "frozen": st.gc_frozen},
            "uptime_s": round(time.monotonic() - st.started_at, 1),
            "response_sum_s": round(st.total.sum, 3),
            "histogram": st.total.counts,
            "steady_histogram": st.steady.counts,
        }

    def status_line(self) -> str:
        st = self.stats
        errs = sum(st.errors.values())
        top = ", ".join(f"{k} {v}" for k, v in st.errors.most_common(2))
        return (f"connected {st.connected}/{st.stations}  booted {st.booted}  sessions {st.sessions}  "
                f"msgs/s in {st.rate_in:.0f} out {st.rate_out:.0f}  CSMS p50 {_fmt_ms(st.p50)} p99 {_fmt_ms(st.p99)}  "
                f"errors {errs}" + (f" ({top})" if top else ""))

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.status_every)
            self.sample()
            if self.status is not None:
                self.status(self.status_line())

    async def run(self, duration: float | None = None) -> dict:
        if not self.stations:
            self.build()
        ticker = asyncio.ensure_future(self._ticker())
        ramp = asyncio.ensure_future(self.ramp())
        gc.callbacks.append(self.stats.gc_callback)
        try:
            stop = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait({stop}, timeout=duration)
            stop.cancel()
        finally:
            ramp.cancel()
            await self.shutdown()
            ticker.cancel()
            self.sample()
            gc.callbacks.remove(self.stats.gc_callback)
            if self._frozen:
                gc.unfreeze()
        return self.summary()

    async def shutdown(self) -> None:
        """Drivers halt, every station stops cleanly (running sessions end, queued messages get
        ``stop_flush_s``), bounded."""
        self.stats.stopping = True
        for sim in self.stations:
            sim.halt()
            if sim.rt is not None:
                sim.rt.stop()
        tasks = [sim.task for sim in self.stations if sim.task is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.stop_flush_s + 15)
            for t in late:
                t.cancel()
            if late:
                await asyncio.wait(late, timeout=5)
        for sim in self.stations:
            if sim.task is None and sim.rt is not None:
                await sim.rt.close()

    def summary(self) -> dict:
        s = self.snapshot()
        s.pop("histogram", None)
        s.pop("steady_histogram", None)
        s["queued_at_end"] = sum(sim.rt.store.outbox_len() for sim in self.stations if sim.rt is not None)
        s["sessions_started"] = sum(sim.sessions for sim in self.stations)
        # transactions the stations began (a card refused offline starts none): what the CSMS must have
        s["transactions"] = sum(int(sim.rt.store.get("station", "tx_counter", 0) or 0)
                                for sim in self.stations if sim.rt is not None)
        return s

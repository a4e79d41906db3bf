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

Statistics (:class:`FleetStats`): connected, booted, sessions running, messages a second each way,
the CSMS's response time p50/p99 (for the stations' own calls), errors by kind, and which limit
was hit (file descriptors, local ports, the CSMS). Shown as one updating terminal line, served as
``GET /api/fleet`` (JSON) and ``GET /metrics`` (Prometheus text) on the local API, summed up at the
end. ``--shard I/K`` runs one K-th of the ids; ``--processes P`` forks P workers, each a shard.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import math
import os
import random
import resource
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hal.types import IdToken
from station.config import EvseConfig, StationConfig
from station.ocpp16.config_keys import NS as OCPP16_NS
from station.scheduler import StationClock, TimerWheel
from station.stationlog import StationLog
from station.store import DictStore

VERSIONS = ("1.6", "2.0.1")  # what --ocpp and [versions] may name
IMPLEMENTED = ("1.6",)  # what this build can run in a fleet
FLEET_WS_OPTIONS = {"max_size": 256 * 1024, "max_queue": 4, "write_limit": 4096}
CHECKPOINT_S = 60.0  # transaction checkpoints (for a power cut) of a station whose state is in memory anyway
SHARDS_ENV = "FLEET_SHARDS"  # --shard auto: how many shards (else --shards)
INDEX_ENV = "JOB_COMPLETION_INDEX"  # --shard auto: which one (a Kubernetes Indexed Job)


class FleetError(Exception):
    """Something that keeps the fleet from starting; one line for the engineer."""


# -- the profile --------------------------------------------------------------------------------
@dataclass
class FleetProfile:
    """What the simulated drivers and the stations do (see docs/fleet.md for the TOML form)."""

    sessions_per_hour: float = 1.0  # per station: the pause between sessions is exponential
    session_minutes: tuple[float, float] = (10.0, 60.0)  # charging time, uniform
    plug_to_card_s: tuple[float, float] = (2.0, 10.0)
    unplug_after_s: tuple[float, float] = (5.0, 60.0)
    busy_at_start: float = 0.25  # share of stations whose first session starts right after boot
    ev_max_current: tuple[float, ...] = (16.0, 32.0)  # A; one picked per session
    ev_phases: tuple[int, ...] = (1, 3)
    cards: int = 1000
    card_prefix: str = "FLEETCARD"
    drops_per_hour: float = 0.0  # per station: the network drops the connection (TCP abort)
    versions: dict[str, float] = field(default_factory=lambda: {"1.6": 1.0})
    expected_requests: frozenset[str] | None = None  # None: any CSMS request is expected
    ocpp16_keys: dict[str, str] = field(default_factory=dict)  # configuration keys of every 1.6 station
    seed: int = 1


_PROFILE_KEYS = {
    "seed": None,
    "sessions": {"per_hour", "minutes", "plug_to_card_s", "unplug_after_s", "busy_at_start"},
    "ev": {"max_current", "phases"},
    "cards": {"pool", "prefix"},
    "link": {"drops_per_hour"},
    "versions": None,
    "csms": {"expected_requests"},
    "ocpp16": None,
}


def _pair(value: Any, where: str) -> tuple[float, float]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = [value, value]
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in value)
            or value[0] > value[1]):
        raise FleetError(f"{where}: must be [low, high] with 0 <= low <= high, or one number")
    return float(value[0]), float(value[1])


def _number(value: Any, where: str, low: float = 0.0, high: float = math.inf) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise FleetError(f"{where}: must be a number from {low:g} to {high:g}")
    return float(value)


def parse_profile(data: dict, source: str = "profile") -> FleetProfile:
    """A profile from parsed TOML; every problem is a FleetError naming the key."""
    p = FleetProfile()
    for key, value in data.items():
        if key not in _PROFILE_KEYS:
            raise FleetError(f"{source}: unknown key {key!r} (known: {', '.join(_PROFILE_KEYS)})")
        allowed = _PROFILE_KEYS[key]
        if allowed is not None:
            if not isinstance(value, dict):
                raise FleetError(f"{source}: [{key}] must be a table")
            unknown = set(value) - allowed
            if unknown:
                raise FleetError(f"{source}: [{key}] unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(allowed))})")
    if "seed" in data:
        if not isinstance(data["seed"], int):
            raise FleetError(f"{source}: seed must be a whole number")
        p.seed = data["seed"]
    s = data.get("sessions", {})
    if "per_hour" in s:
        p.sessions_per_hour = _number(s["per_hour"], "sessions.per_hour", 0, 3600)
    if "minutes" in s:
        p.session_minutes = _pair(s["minutes"], "sessions.minutes")
    if "plug_to_card_s" in s:
        p.plug_to_card_s = _pair(s["plug_to_card_s"], "sessions.plug_to_card_s")
    if "unplug_after_s" in s:
        p.unplug_after_s = _pair(s["unplug_after_s"], "sessions.unplug_after_s")
    if "busy_at_start" in s:
        p.busy_at_start = _number(s["busy_at_start"], "sessions.busy_at_start", 0, 1)
    ev = data.get("ev", {})
    if "max_current" in ev:
        cur = ev["max_current"] if isinstance(ev["max_current"], list) else [ev["max_current"]]
        p.ev_max_current = tuple(_number(c, "ev.max_current", 6, 80) for c in cur) or p.ev_max_current
    if "phases" in ev:
        ph = ev["phases"] if isinstance(ev["phases"], list) else [ev["phases"]]
        if not ph or any(x not in (1, 2, 3) or isinstance(x, bool) for x in ph):
            raise FleetError("ev.phases: must be 1, 2 or 3, or a list of them")
        p.ev_phases = tuple(ph)
    cards = data.get("cards", {})
    if "pool" in cards:
        p.cards = int(_number(cards["pool"], "cards.pool", 1, 10_000_000))
    if "prefix" in cards:
        if not isinstance(cards["prefix"], str) or len(cards["prefix"]) > 12:
            raise FleetError("cards.prefix: must be text of at most 12 characters (idTag is 20)")
        p.card_prefix = cards["prefix"]
    link = data.get("link", {})
    if "drops_per_hour" in link:
        p.drops_per_hour = _number(link["drops_per_hour"], "link.drops_per_hour", 0, 3600)
    if "versions" in data:
        v = data["versions"]
        if not isinstance(v, dict) or not v:
            raise FleetError(f"{source}: [versions] must map an OCPP version to its share, e.g. \"1.6\" = 1.0")
        for name, share in v.items():
            if name not in VERSIONS:
                raise FleetError(f"versions: unknown OCPP version {name!r} (known: {', '.join(VERSIONS)})")
            _number(share, f"versions.{name}", 0)
        if sum(v.values()) <= 0:
            raise FleetError("versions: the shares add up to 0")
        p.versions = {k: float(x) for k, x in v.items() if x > 0}
    if "expected_requests" in data.get("csms", {}):
        req = data["csms"]["expected_requests"]
        if not isinstance(req, list) or not all(isinstance(r, str) for r in req):
            raise FleetError("csms.expected_requests: must be a list of OCPP action names")
        p.expected_requests = frozenset(req)
    keys = data.get("ocpp16", {})
    if not isinstance(keys, dict):
        raise FleetError(f"{source}: [ocpp16] must be a table of configuration keys")
    p.ocpp16_keys = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in keys.items()}
    if p.ocpp16_keys:
        from station.ocpp16.config_keys import shared_definitions

        defs, names, _ = shared_definitions(1)
        for k, v in p.ocpp16_keys.items():
            name = names.get(k.lower())
            if name is None or defs[name].readonly:
                raise FleetError(f"ocpp16.{k}: not a writable 1.6 configuration key")
            check = defs[name].check
            problem = check(v) if check else None
            if problem:
                raise FleetError(f"ocpp16.{k}: {problem}")
    return p


def load_profile(path: str | None) -> FleetProfile:
    if path is None:
        return FleetProfile()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise FleetError(f"--profile {path}: cannot read it ({e.strerror or e})") from None
    except tomllib.TOMLDecodeError as e:
        raise FleetError(f"--profile {path}: not valid TOML ({e})") from None
    return parse_profile(data, f"--profile {path}")


# -- ids and shards -----------------------------------------------------------------------------
def parse_shard(text: str, shards: int | None = None, env: dict[str, str] | None = None) -> tuple[int, int]:
    """``I/K`` (0 <= I < K) or ``auto``: I from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job),
    K from ``shards`` (--shards) or FLEET_SHARDS."""
    env = os.environ if env is None else env
    if text == "auto":
        index = env.get(INDEX_ENV)
        k = shards if shards is not None else env.get(SHARDS_ENV)
        if index is None:
            raise FleetError(f"--shard auto: {INDEX_ENV} is not set (it is, in a Kubernetes Indexed Job)")
        if k is None:
            raise FleetError(f"--shard auto: give the number of shards with --shards K or {SHARDS_ENV}")
        text = f"{index}/{k}"
    i, sep, k = text.partition("/")
    if not sep or not i.strip().isdigit() or not k.strip().isdigit():
        raise FleetError(f"--shard {text}: must be I/K (e.g. 0/4) or auto")
    ii, kk = int(i), int(k)
    if not 0 <= ii < kk:
        raise FleetError(f"--shard {text}: needs 0 <= I < K")
    return ii, kk


def shard_range(count: int, shard: tuple[int, int]) -> range:
    """The station numbers of one shard: K shards cover 0..count-1 with disjoint ranges."""
    i, k = shard
    return range(count * i // k, count * (i + 1) // k)


def station_ids(prefix: str, count: int, numbers: range) -> list[str]:
    width = max(5, len(str(max(0, count - 1))))
    return [f"{prefix}{n:0{width}d}" for n in numbers]


# -- statistics ---------------------------------------------------------------------------------
_BUCKET_RATIO = 1.1
_BUCKET_MIN_S = 0.0001
_BUCKETS = 150  # 0.1 ms * 1.1^150 ~ 160 s
PROM_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _bucket(seconds: float) -> int:
    if seconds <= _BUCKET_MIN_S:
        return 0
    return min(_BUCKETS - 1, int(math.log(seconds / _BUCKET_MIN_S, _BUCKET_RATIO)) + 1)


def _bucket_top(i: int) -> float:
    return _BUCKET_MIN_S * _BUCKET_RATIO ** i


class Histogram:
    """Response times in log buckets (10 % wide): percentiles of any number of samples in fixed
    memory, and histograms of several processes add up."""

    def __init__(self, counts: list[int] | None = None) -> None:
        self.counts = counts or [0] * _BUCKETS
        self.sum = 0.0

    def add(self, seconds: float) -> None:
        self.counts[_bucket(seconds)] += 1
        self.sum += seconds

    def merge(self, other: Histogram) -> None:
        for i, c in enumerate(other.counts):
            self.counts[i] += c
        self.sum += other.sum

    @property
    def count(self) -> int:
        return sum(self.counts)

    def percentile(self, p: float) -> float | None:
        total = self.count
        if not total:
            return None
        rank = max(1, math.ceil(total * p / 100))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                return _bucket_top(i)
        return _bucket_top(_BUCKETS - 1)

    def le(self, bound: float) -> int:
        """How many samples are at most ``bound`` (by bucket; for Prometheus buckets)."""
        return sum(c for i, c in enumerate(self.counts) if _bucket_top(i) <= bound * 1.0000001)


def classify(e: BaseException) -> str:
    """A failed connection attempt as an error kind (``os:`` and ``csms:`` name the limit)."""
    import websockets

    if isinstance(e, OSError) and e.errno in (errno.EMFILE, errno.ENFILE):
        return "os: too many open files"
    if isinstance(e, OSError) and e.errno == errno.EADDRNOTAVAIL:
        return "os: no free local port"
    if isinstance(e, ConnectionRefusedError):
        return "csms: connection refused"
    if isinstance(e, ConnectionResetError):
        return "csms: connection reset"
    if isinstance(e, TimeoutError):
        return "csms: handshake timeout"
    if isinstance(e, websockets.InvalidStatus):
        return f"csms: HTTP {e.response.status_code}"
    if isinstance(e, websockets.ConnectionClosed):
        return "csms: closed during the handshake"
    return f"connect: {type(e).__name__}"


class FleetStats:
    """Counters of the whole fleet (one object, shared by every station of the process)."""

    def __init__(self) -> None:
        self.connected = 0
        self.connections = 0  # opened since the start
        self.errors: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()  # CSMS requests by action
        self.calls: Counter[str] = Counter()  # our calls answered, by action
        self.window = Histogram()  # response times since the last tick
        self.total = Histogram()
        self.steady = Histogram()  # from the end of the ramp-up until the fleet stops
        self.in_steady = False
        self.msgs_in = 0  # frames received / sent, summed at each tick
        self.msgs_out = 0
        self.rate_in = 0.0
        self.rate_out = 0.0
        self.p50: float | None = None
        self.p99: float | None = None
        self.booted = 0
        self.sessions = 0
        self.sessions_done = 0
        self.started = 0
        self.stations = 0
        self.started_at = time.monotonic()
        self.stopping = False  # the fleet stops: calls refused by closing links are no errors
        self.gc_collections = 0
        self.gc_max_pause = 0.0  # seconds, the longest collection since the start
        self.gc_frozen = 0  # objects moved out of the collector's way (gc.freeze) after the ramp-up
        self._gc_t0 = 0.0

    def gc_callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_t0 = time.perf_counter()
        else:
            self.gc_collections += 1
            self.gc_max_pause = max(self.gc_max_pause, time.perf_counter() - self._gc_t0)

    def answered(self, action: str, seconds: float, error: BaseException | None) -> None:
        from station.link import CallErrorReceived, NotConnected

        if error is None:
            self.calls[action] += 1
            self.window.add(seconds)
            self.total.add(seconds)
            if self.in_steady and not self.stopping:
                self.steady.add(seconds)
        elif isinstance(error, TimeoutError):
            self.errors[f"csms: no answer to {action} in time"] += 1
        elif isinstance(error, CallErrorReceived):
            self.errors[f"csms: CallError to {action}"] += 1
        elif isinstance(error, NotConnected):
            if not self.stopping:
                self.errors["link: call while disconnected"] += 1
        elif not isinstance(error, asyncio.CancelledError):
            self.errors[f"call: {type(error).__name__}"] += 1

    def limit(self, nofile: int | None = None) -> str | None:
        """Which limit the errors point at, in one line, or None."""
        e = self.errors
        if e["os: too many open files"]:
            soft = nofile or resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            return (f"the OS is the limit: {e['os: too many open files']} connection(s) failed with 'too many open "
                    f"files' (RLIMIT_NOFILE is {soft}: raise it with ulimit -n / LimitNOFILE=, or use "
                    "--processes or --shard)")
        if e["os: no free local port"]:
            lo, hi = local_port_range()
            return (f"the OS is the limit: {e['os: no free local port']} connection(s) found no free local port "
                    f"(net.ipv4.ip_local_port_range {lo}-{hi}: {hi - lo + 1} ports per CSMS address)")
        csms = {k: v for k, v in e.items() if k.startswith("csms:")}
        if csms:
            worst = max(csms, key=lambda k: csms[k])
            return (f"the CSMS is the limit: {sum(csms.values())} failure(s), most '{worst[6:]}' ({csms[worst]})"
                    + (f"; its p99 response time is {self.p99 * 1000:.0f} ms" if self.p99 else ""))
        return None


def local_port_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def raise_nofile(need: int) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE towards the hard one when ``need`` exceeds it; returns
    (soft, hard) after. Raises FleetError naming the limit when even the hard one is too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        target = hard if hard != resource.RLIM_INFINITY else max(need, soft)  # as far as allowed
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft != resource.RLIM_INFINITY and soft < need:
        raise FleetError(f"the OS is the limit: this process needs about {need} file descriptors, RLIMIT_NOFILE "
                         f"allows {soft} (hard limit {hard}): raise it (ulimit -Hn, systemd LimitNOFILE=) or "
                         "split the fleet with --processes or --shard")
    return soft, hard


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
def _build_1_6(fleet: Fleet, sid: str, clock: StationClock) -> Any:
    from station.runtime import Runtime

    cfg = StationConfig(id=sid, ocpp="1.6", csms_url=fleet.csms_url, state_dir=":memory:", simulated=True,
                        evses=[EvseConfig(1)])
    store = DictStore()
    for key, value in fleet.profile.ocpp16_keys.items():
        store.put(OCPP16_NS, key, value)  # as if the CSMS had set them
    rt = Runtime(cfg, clock=clock, log=StationLog(fleet.log, sid), store=store)  # type: ignore[arg-type]
    rt.events_kept = 0
    rt.ws_options = FLEET_WS_OPTIONS
    rt.stop_flush_s = fleet.stop_flush_s
    rt.checkpoint_interval_s = CHECKPOINT_S
    return rt


# how a station of each OCPP version is built; 2.0.1 joins once station/ocpp201 lands
BUILDERS: dict[str, Callable[[Fleet, str, StationClock], Any]] = {"1.6": _build_1_6}


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


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _fmt_ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def prometheus(snap: dict) -> str:
    """``GET /metrics``: the snapshot as Prometheus text (exposition format 0.0.4)."""
    lines = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP station_fleet_{name} {help_}")
        lines.append(f"# TYPE station_fleet_{name} {kind}")
        for labels, value in samples:
            lines.append(f"station_fleet_{name}{labels} {value:g}")

    metric("stations", "gauge", "Stations in this fleet process.", [("", snap["stations"])])
    metric("connected", "gauge", "Stations connected to the CSMS.", [("", snap["connected"])])
    metric("booted", "gauge", "Stations whose BootNotification was accepted.", [("", snap["booted"])])
    metric("sessions_running", "gauge", "Transactions running.", [("", snap["sessions_running"])])
    metric("sessions_done_total", "counter", "Sessions completed (unplugged).", [("", snap["sessions_done"])])
    metric("messages_total", "counter", "OCPP frames, by direction (in: from the CSMS).",
           [('{direction="in"}', snap["msgs"]["in"]), ('{direction="out"}', snap["msgs"]["out"])])
    metric("errors_total", "counter", "Errors by kind.",
           [(f'{{kind="{_label(k)}"}}', v) for k, v in sorted(snap["errors"].items())])
    metric("csms_requests_total", "counter", "Requests of the CSMS, by action.",
           [(f'{{action="{_label(k)}"}}', v) for k, v in sorted(snap["csms_requests"].items())])
    h = Histogram(list(snap["histogram"]))
    buckets = [(f'{{le="{b:g}"}}', h.le(b)) for b in PROM_BUCKETS_S] + [('{le="+Inf"}', h.count)]
    lines.append("# HELP station_fleet_csms_response_seconds Time the CSMS took to answer the stations' calls.")
    lines.append("# TYPE station_fleet_csms_response_seconds histogram")
    for labels, value in buckets:
        lines.append(f"station_fleet_csms_response_seconds_bucket{labels} {value}")
    lines.append(f"station_fleet_csms_response_seconds_count {h.count}")
    lines.append(f"station_fleet_csms_response_seconds_sum {snap.get('response_sum_s', 0.0):g}")
    return "\n".join(lines) + "\n"


def _label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def merge_snapshots(snaps: Sequence[dict]) -> dict:
    """Several processes' snapshots as one (counts add up; percentiles from the summed histogram)."""
    out: dict[str, Any] = {"stations": 0, "started": 0, "connected": 0, "booted": 0, "sessions_running": 0,
                           "sessions_done": 0, "msgs_per_s": {"in": 0.0, "out": 0.0}, "msgs": {"in": 0, "out": 0},
                           "errors": Counter(), "csms_requests": Counter(), "processes": len(snaps)}
    h = Histogram()
    hs = Histogram()
    p50s, p99s = [], []
    limits = []
    for s in snaps:
        for k in ("stations", "started", "connected", "booted", "sessions_running", "sessions_done"):
            out[k] += s.get(k, 0)
        for d in ("in", "out"):
            out["msgs_per_s"][d] = round(out["msgs_per_s"][d] + s["msgs_per_s"][d], 1)
            out["msgs"][d] += s["msgs"][d]
        out["errors"].update(s["errors"])
        out["csms_requests"].update(s["csms_requests"])
        h.merge(Histogram(list(s["histogram"])))
        if "steady_histogram" in s:
            hs.merge(Histogram(list(s["steady_histogram"])))
        if s["csms_response_ms"]["p99"] is not None:
            p50s.append(s["csms_response_ms"]["p50"])
            p99s.append(s["csms_response_ms"]["p99"])
        if s.get("limit"):
            limits.append(s["limit"])
    out["errors"], out["csms_requests"] = dict(out["errors"]), dict(out["csms_requests"])
    out["csms_response_ms"] = {"p50": max(p50s) if p50s else None, "p99": max(p99s) if p99s else None,
                               "total_p50": _ms(h.percentile(50)), "total_p99": _ms(h.percentile(99)), "count": h.count,
                               "steady_p50": _ms(hs.percentile(50)), "steady_p99": _ms(hs.percentile(99)),
                               "steady_count": hs.count}
    out["limit"] = limits[0] if limits else None
    out["histogram"] = h.counts
    out["response_sum_s"] = round(sum(s.get("response_sum_s", 0.0) for s in snaps), 3)
    return out


def merged_line(s: dict) -> str:
    errs = sum(s["errors"].values())
    r = s["csms_response_ms"]
    return (f"[{s['processes']} processes] connected {s['connected']}/{s['stations']}  booted {s['booted']}  "
            f"sessions {s['sessions_running']}  msgs/s in {s['msgs_per_s']['in']:.0f} out {s['msgs_per_s']['out']:.0f}  "
            f"CSMS p50 {r['p50'] if r['p50'] is not None else '-'} ms p99 {r['p99'] if r['p99'] is not None else '-'} ms  "
            f"errors {errs}")


def print_summary(s: dict, out: Any = None) -> None:
    out = out or sys.stderr
    r = s["csms_response_ms"]
    lines = [
        "fleet summary:",
        f"  stations {s['stations']}, connected at the end {s['connected']}, booted {s['booted']}",
        f"  sessions started {s.get('sessions_started', '-')}, completed {s['sessions_done']}, running at the end "
        f"{s['sessions_running']}; transaction messages still queued {s.get('queued_at_end', '-')}",
        f"  messages: {s['msgs']['in']} in, {s['msgs']['out']} out",
        f"  CSMS response time over the run: p50 {r['total_p50']} ms, p99 {r['total_p99']} ms ({r['count']} calls); "
        f"after the ramp-up: p50 {r.get('steady_p50')} ms, p99 {r.get('steady_p99')} ms ({r.get('steady_count')} calls)",
        "  errors: " + (", ".join(f"{k} {v}" for k, v in sorted(s["errors"].items())) or "none"),
    ]
    if s.get("limit"):
        lines.append(f"  LIMIT: {s['limit']}")
    print("\n".join(lines), file=out, flush=True)

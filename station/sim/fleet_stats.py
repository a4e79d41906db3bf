"""Fleet mode's statistics: response-time histograms, error kinds and the limit they point at,
the OS limits checked at start, the Prometheus text, several processes' snapshots merged, the
summary. See station/sim/fleet.py and docs/fleet.md."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import resource
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from station.sim.fleet_profile import FleetError

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

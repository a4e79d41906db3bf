"""``station fleet``: the command line around station/sim/fleet.py.

One process runs its stations on one event loop; ``--processes P`` forks P workers (each runs a
disjoint part of this process's ids and reports to the parent once a second over a pipe); the
parent shows the whole fleet on one line, serves the local API, and sums up at the end.

Exit codes: 0 after the run, 1 when the run hit a limit (named in the summary: file descriptors,
local ports, the CSMS), 2 for a command line or profile that cannot work (one line).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any

from station.api import Api, ApiError, TextBody
from station.config import API_TOKEN_ENV, is_loopback
from station.link import InvalidUrl, check_url
from station.sim.fleet import (
    IMPLEMENTED,
    Fleet,
    FleetError,
    FleetProfile,
    load_profile,
    local_port_range,
    merge_snapshots,
    merged_line,
    parse_shard,
    print_summary,
    prometheus,
    raise_nofile,
    shard_range,
    station_ids,
)

FDS_SPARE = 64  # file descriptors of a process beyond one per station (API, pipes, logs, the loop)


class FleetApi(Api):
    """The local API of a fleet: ``GET /api/fleet`` (JSON) and ``GET /metrics`` (Prometheus),
    with the station API's rules (loopback unless a token; limits; no tracebacks)."""

    def __init__(self, snapshot: Any, log: logging.Logger, token: str | None = None) -> None:
        super().__init__(lambda: None, log, token=token)
        self.snapshot = snapshot

    async def dispatch(self, method: str, path: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
        if path not in ("/api/fleet", "/metrics"):
            raise ApiError(404, f"no such endpoint: {method} {path} (a fleet serves /api/fleet and /metrics)")
        if method not in ("GET", "HEAD"):
            raise ApiError(405, "use GET", allow="GET, HEAD")
        snap = self.snapshot()
        if path == "/metrics":
            return TextBody(prometheus(snap))
        return {k: v for k, v in snap.items() if not k.endswith("histogram")}


def _fail(text: str) -> int:
    print(f"station fleet: {text}", file=sys.stderr)
    return 2


def _plan(args: argparse.Namespace) -> tuple[FleetProfile, list[list[str]]]:
    """The profile and, per worker process, its station ids (raises FleetError)."""
    if args.count < 1:
        raise FleetError(f"--count: must be 1 or more, got {args.count}")
    if args.processes < 1:
        raise FleetError(f"--processes: must be 1 or more, got {args.processes}")
    if args.ocpp is not None and args.ocpp not in IMPLEMENTED:
        raise FleetError(f"--ocpp {args.ocpp}: not implemented in fleet mode yet (station/ocpp201 is being written); "
                         f"use --ocpp {' or '.join(IMPLEMENTED)}")
    if not args.id_prefix or len(args.id_prefix) > 12 or not all(c.isalnum() or c in "-_." for c in args.id_prefix):
        raise FleetError("--id-prefix: 1-12 letters, digits, '-', '_' or '.'")
    try:
        check_url(args.csms_url)
    except InvalidUrl as e:
        raise FleetError(f"--csms-url: {e}") from None
    profile = load_profile(args.profile)
    if args.ocpp is not None:
        profile.versions = {args.ocpp: 1.0}
    for v in profile.versions:
        if v not in IMPLEMENTED:
            raise FleetError(f"--profile: [versions] gives OCPP {v} a share, but fleet mode runs only "
                             f"{', '.join(IMPLEMENTED)} in this build")
    shard = parse_shard(args.shard, args.shards) if args.shard else (0, 1)
    numbers = shard_range(args.count, shard)
    if len(numbers) == 0:
        raise FleetError(f"--shard {args.shard}: no station falls into this shard of --count {args.count}")
    lo, hi = local_port_range()
    if len(numbers) > hi - lo + 1:
        raise FleetError(f"the OS is the limit: {len(numbers)} stations on this machine need as many local ports to "
                         f"one CSMS address; net.ipv4.ip_local_port_range {lo}-{hi} has {hi - lo + 1}: widen it, or "
                         "run shards on several machines (--shard)")
    ids = station_ids(args.id_prefix, args.count, numbers)
    parts = [ids[len(ids) * i // args.processes: len(ids) * (i + 1) // args.processes] for i in range(args.processes)]
    return profile, [p for p in parts if p]


def _api_token(args: argparse.Namespace) -> tuple[str, int, str | None] | None:
    if not args.api:
        return None
    host, _, port = args.api.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise FleetError(f"--api {args.api}: must be HOST:PORT")
    token = os.environ.get(API_TOKEN_ENV) or None
    if not is_loopback(host) and not token:
        raise FleetError(f"--api {args.api}: any address but loopback needs a token ({API_TOKEN_ENV})")
    return host, int(port), token


def run_fleet(args: argparse.Namespace) -> int:
    try:
        profile, parts = _plan(args)
        api = _api_token(args)
        if len(parts) == 1:
            raise_nofile(len(parts[0]) + FDS_SPARE)
    except FleetError as e:
        return _fail(str(e))
    try:
        if len(parts) == 1:
            summary = asyncio.run(_single(args, profile, parts[0], api))
        else:
            workers = _start_workers(args, profile, parts)  # forked before any event loop exists here
            summary = asyncio.run(_parent(args, workers, api))
    except FleetError as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return 130
    if summary is None:
        return 2
    print_summary(summary)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({k: v for k, v in summary.items() if not k.endswith("histogram")}, f, indent=2)
    if summary.get("limit"):
        print(f"station fleet: LIMIT: {summary['limit']}", file=sys.stderr)
        return 1
    return 0


class _StatusLine:
    """One updating line on a terminal; a line every 10 s when the output is a file."""

    def __init__(self, out: Any = None) -> None:
        self.out = out or sys.stderr
        self.tty = self.out.isatty()
        self.n = 0

    def __call__(self, text: str) -> None:
        self.n += 1
        if self.tty:
            self.out.write("\r\x1b[2K" + text)
            self.out.flush()
        elif self.n % 10 == 0:
            print(text, file=self.out, flush=True)

    def end(self) -> None:
        if self.tty and self.n:
            self.out.write("\n")
            self.out.flush()


def _on_signals(stop: Any) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop)


async def _serve_api(api: tuple[str, int, str | None] | None, snapshot: Any) -> FleetApi | None:
    if api is None:
        return None
    host, port, token = api
    server = FleetApi(snapshot, logging.getLogger("station.fleet"), token)
    try:
        actual = await server.start(host, port)
    except OSError as e:
        raise FleetError(f"--api {host}:{port}: cannot listen there ({(e.strerror or str(e)).lower()})") from None
    print(f"station fleet: API on http://{host}:{actual}/api/fleet and /metrics", file=sys.stderr, flush=True)
    return server


async def _single(args: argparse.Namespace, profile: FleetProfile, ids: list[str],
                  api: tuple[str, int, str | None] | None, report: Connection | None = None) -> dict:
    status = _StatusLine() if report is None else None
    fleet = Fleet(args.csms_url, ids, profile, concurrency=args.concurrency, ramp_rate=args.ramp_rate,
                  status=status)
    _on_signals(fleet.stop)
    server = await _serve_api(api, fleet.snapshot) if report is None else None
    reporter = None
    if report is not None:
        async def send() -> None:
            while True:
                await asyncio.sleep(1.0)
                report.send(("snapshot", fleet.snapshot()))

        reporter = asyncio.ensure_future(send())
    try:
        fleet.build()
        print(f"station fleet: {len(ids)} stations {ids[0]} .. {ids[-1]} -> {args.csms_url}", file=sys.stderr,
              flush=True)
        summary = await fleet.run(args.duration)
    finally:
        if reporter is not None:
            reporter.cancel()
        if status is not None:
            status.end()
        if server is not None:
            await server.close()
    summary["histogram"] = fleet.stats.total.counts
    summary["steady_histogram"] = fleet.stats.steady.counts
    return summary


def _worker(args: argparse.Namespace, profile: FleetProfile, ids: list[str], conn: Connection) -> None:
    """A forked worker: its own event loop, its part of the ids; reports over ``conn``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; SIGTERM stops the run cleanly
    try:
        raise_nofile(len(ids) + FDS_SPARE)
        summary = asyncio.run(_single(args, profile, ids, None, conn))
        conn.send(("summary", summary))
    except FleetError as e:
        conn.send(("error", str(e)))
    except Exception as e:  # the parent names it; no traceback lost either
        logging.getLogger("station.fleet").exception("fleet worker failed")
        conn.send(("error", f"worker failed: {type(e).__name__}: {e}"))
    finally:
        conn.close()


def _start_workers(args: argparse.Namespace, profile: FleetProfile, parts: list[list[str]]
                   ) -> list[tuple[Any, Connection, int]]:
    ctx = multiprocessing.get_context("fork")
    workers = []
    for ids in parts:
        mine, theirs = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_worker, args=(args, profile, ids, theirs), name=f"fleet-worker-{len(workers)}")
        p.start()
        theirs.close()
        workers.append((p, mine, len(ids)))
    return workers


async def _parent(args: argparse.Namespace, workers: list[tuple[Any, Connection, int]],
                  api: tuple[str, int, str | None] | None) -> dict | None:
    parts = workers
    latest: dict[int, dict] = {}
    summaries: dict[int, dict] = {}
    errors: list[str] = []
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def receive(i: int, conn: Connection) -> None:
        try:
            kind, data = conn.recv()
        except (EOFError, OSError):
            loop.remove_reader(conn.fileno())
            if i not in summaries and not any(e.startswith(f"worker {i}") for e in errors):
                errors.append(f"worker {i} ended without a summary")
            if len(summaries) + len(errors) >= len(parts):
                done.set()
            return
        if kind == "snapshot":
            latest[i] = data
        elif kind == "summary":
            summaries[i] = data
        else:
            errors.append(f"worker {i}: {data}")
        if len(summaries) + len(errors) >= len(parts):
            done.set()

    for i, (_, conn, _) in enumerate(workers):
        loop.add_reader(conn.fileno(), receive, i, conn)

    def stop() -> None:
        for p, _, _ in workers:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGTERM)

    _on_signals(stop)
    status = _StatusLine()

    def snapshot() -> dict:
        return merge_snapshots([latest[i] for i in sorted(latest)])

    server = await _serve_api(api, snapshot)
    print(f"station fleet: {sum(n for _, _, n in workers)} stations in {len(workers)} processes -> {args.csms_url}",
          file=sys.stderr, flush=True)
    try:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 1.0)
            if latest:
                status(merged_line(snapshot()))
    finally:
        status.end()
        if server is not None:
            await server.close()
        for p, conn, _ in workers:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(conn.fileno())
            await loop.run_in_executor(None, p.join, 30)
    for e in errors:
        print(f"station fleet: {e}", file=sys.stderr)
    if not summaries:
        return None
    merged = merge_snapshots([summaries[i] for i in sorted(summaries)])
    merged["queued_at_end"] = sum(s.get("queued_at_end", 0) for s in summaries.values())
    merged["sessions_started"] = sum(s.get("sessions_started", 0) for s in summaries.values())
    return merged

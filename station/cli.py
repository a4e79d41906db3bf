"""Command line: ``station run | demo | fleet | config check | hw check``.

    station run [--config FILE] [--csms-url URL] [--id ID] [--ocpp 1.6|2.0.1] [--sim] [--evses N]
                [--state-dir DIR] [--api HOST:PORT] [--ocpp-config FILE] [--log-level LEVEL]
    station demo [--ocpp 1.6|2.0.1]
    station fleet --count N --csms-url URL [--ocpp 1.6|2.0.1] [--id-prefix P] [--profile FILE]
                  [--shard I/K|auto] [--api HOST:PORT] [--processes P] [--duration S]
    station config check FILE
    station hw check --config FILE

Exit codes of ``run``: 0 after a clean stop (SIGTERM, Ctrl-C), 2 for a configuration that cannot
work (including a state directory that cannot be used or is held by another station, and an API
address that cannot be bound), 3 for hardware that cannot be opened. Every one of them is one
line naming the problem, never a traceback. A second SIGTERM / Ctrl-C while stopping skips the
wait for the CSMS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from station import __version__
from station.config import (
    API_TOKEN_ENV,
    ConfigError,
    EvseConfig,
    StationConfig,
    api_problems,
    is_loopback,
    load,
    validate_station,
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="station", description="OCPP charging-station firmware and simulator")
    p.add_argument("--version", action="version", version=f"station {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the station")
    run.add_argument("--config", help="station config file (TOML)")
    run.add_argument("--csms-url", help="CSMS websocket URL; the station id is appended to its path")
    run.add_argument("--id", help="charging station id")
    run.add_argument("--ocpp", choices=["1.6", "2.0.1"], help="OCPP version")
    run.add_argument("--sim", action="store_true", help="simulated hardware for every device")
    run.add_argument("--evses", type=int, help="simulated station with N EVSEs of one connector each")
    run.add_argument("--state-dir", help="where the station keeps its SQLite state (default: state/<id>; "
                                                 ":memory: keeps nothing across restarts)")
    run.add_argument("--api", help="serve the local HTTP API on HOST:PORT (e.g. 127.0.0.1:8080); any "
                                   f"address but loopback needs a token (station.api_token or {API_TOKEN_ENV})")
    run.add_argument("--ocpp-config", help="OCPP settings (JSON) applied at start: a value changed in the file is "
                                           "applied unless the CSMS changed that key after the file was edited")
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    demo = sub.add_parser("demo", help="a demo CSMS and a simulated station showing a whole charging session")
    demo.add_argument("--ocpp", choices=["1.6", "2.0.1"], default="1.6", help="OCPP version the demo speaks")
    fleet = sub.add_parser("fleet", help="N simulated stations in one process, to load a CSMS (docs/fleet.md)")
    fleet.add_argument("--count", type=int, required=True, help="stations in the whole fleet (all shards together)")
    fleet.add_argument("--csms-url", required=True, help="CSMS websocket URL; each station id is appended to its path")
    fleet.add_argument("--ocpp", choices=["1.6", "2.0.1"], help="OCPP version of every station (else the profile's "
                                                               "[versions] shares; default 1.6)")
    fleet.add_argument("--id-prefix", default="FLEET-", help="station ids are PREFIX00000, PREFIX00001, ...")
    fleet.add_argument("--profile", help="behaviour of the simulated drivers (TOML, see docs/fleet.md)")
    fleet.add_argument("--shard", help="I/K: run the I-th of K disjoint id ranges; auto: I from JOB_COMPLETION_INDEX")
    fleet.add_argument("--shards", type=int, help="with --shard auto: the number of shards (else FLEET_SHARDS)")
    fleet.add_argument("--processes", type=int, default=1, help="fork P worker processes, each running a part")
    fleet.add_argument("--duration", type=float, help="stop after S seconds (default: until Ctrl-C / SIGTERM)")
    fleet.add_argument("--api", help="serve GET /api/fleet and GET /metrics on HOST:PORT (loopback unless a token "
                                     f"is set in {API_TOKEN_ENV})")
    fleet.add_argument("--concurrency", type=int, default=200, help="connections being opened at once during the ramp-up")
    fleet.add_argument("--ramp-rate", type=float, help="at most this many stations started a second")
    fleet.add_argument("--log-level", default="error", choices=["debug", "info", "warning", "error"])
    fleet.add_argument("--json", metavar="FILE", help="write the summary as JSON to FILE at the end")
    cfg = sub.add_parser("config", help="configuration tools")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    check = cfg_sub.add_parser("check", help="validate a config file")
    check.add_argument("file")
    hw = sub.add_parser("hw", help="hardware tools")
    hw_sub = hw.add_subparsers(dest="hw_command", required=True)
    hw_check = hw_sub.add_parser("check", help="open every device of a config and read it; nothing is switched")
    hw_check.add_argument("--config", required=True, help="station config file (TOML)")
    hw_check.add_argument("--wait-card", type=float, default=0.0, metavar="S",
                          help="wait up to S seconds for a card at each reader")
    return p


# flags that override a key of the config file: a problem with the value is named by both
FLAG_KEYS = {"csms_url": "--csms-url", "id": "--id", "ocpp": "--ocpp", "state_dir": "--state-dir", "api": "--api"}


def build_config(args: argparse.Namespace) -> StationConfig:
    """The config of ``station run``: the file (if any), then the flags over it. A flag given
    empty (``--id ''``) is refused, never replaced by a default; a problem with a flag's value
    names the flag and the key (``--id / station.id: ...``)."""
    empty = [flag for flag, value in (("--config", args.config), ("--ocpp-config", args.ocpp_config),
                                      *((FLAG_KEYS[k], getattr(args, k)) for k in FLAG_KEYS))
             if value is not None and not value.strip()]
    if empty:
        raise ConfigError([f"{flag}: empty; leave the flag out to use the default" for flag in empty])
    cfg = load(args.config) if args.config is not None else StationConfig()
    given: set[str] = set()
    for key in FLAG_KEYS:
        value = getattr(args, key)
        if value is not None:
            setattr(cfg, key, value)
            given.add(key)
    _token_from_env(cfg)
    if args.sim:
        cfg.simulated = True
    if args.evses is not None:
        if not 1 <= args.evses <= 64:
            raise ConfigError([f"--evses: must be between 1 and 64, got {args.evses}"])
        cfg.evses = [EvseConfig(i + 1) for i in range(args.evses)]
        cfg.simulated = True
    if args.ocpp_config is not None:
        cfg.ocpp_config_file = args.ocpp_config
        problems = _check_ocpp_config(args.ocpp_config, cfg.ocpp)
        if problems:
            raise ConfigError(problems)
    if cfg.ocpp_config_file is None and not cfg.simulated and args.config is None:
        cfg.simulated = True
    problems: list[str] = []
    validate_station(cfg, problems)
    problems += api_problems(cfg)
    if problems:
        raise ConfigError([_name_flag(p, given) for p in problems])
    return cfg


def _name_flag(problem: str, given: set[str]) -> str:
    """'station.id: ...' -> '--id / station.id: ...' when the value came from --id."""
    for key in given:
        if problem.startswith(f"station.{key}:"):
            return f"{FLAG_KEYS[key]} / {problem}"
    return problem


def _token_from_env(cfg: StationConfig) -> None:
    """STATION_API_TOKEN overrides station.api_token (keeps the secret out of files and argv)."""
    token = os.environ.get(API_TOKEN_ENV)
    if token:
        cfg.api_token = token


def _check_ocpp_config(path: str, version: str) -> list[str]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        return [f"--ocpp-config {path}: cannot read ({e.strerror})"]
    except UnicodeDecodeError as e:
        return [f"--ocpp-config {path}: not valid UTF-8 (byte {e.object[e.start]:#04x} at offset {e.start})"]
    except ValueError as e:
        return [f"--ocpp-config {path}: not valid JSON ({e})"]
    except RecursionError:
        return [f"--ocpp-config {path}: not valid JSON (nested too deeply)"]
    if version == "1.6" and not isinstance(data, dict):
        return [f"--ocpp-config {path}: for OCPP 1.6 it must be a JSON object {{\"KeyName\": \"value\"}}"]
    if version == "2.0.1" and not isinstance(data, list):
        return [f"--ocpp-config {path}: for OCPP 2.0.1 it must be a JSON list of setVariableData"]
    return []


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("websockets").setLevel(logging.WARNING)


async def _run(cfg: StationConfig) -> int:
    from hal.types import HalError
    from station.api import Api
    from station.runtime import Runtime
    from station.sdnotify import notify, watchdog_interval
    from station.store import StoreError

    log = logging.getLogger(f"station.{cfg.id}")
    try:
        rt = Runtime(cfg, log=log)
    except StoreError as e:  # state directory unusable or held by another station
        print(f"station: {e}", file=sys.stderr)
        return 2
    except (HalError, ValueError) as e:  # a device that cannot be opened: say which, no traceback
        print(f"station: hardware: {e}", file=sys.stderr)
        return 3
    api = None
    if cfg.api:
        host, port = cfg.api_address()
        api = Api(lambda: rt, log, token=cfg.api_token)
        try:
            actual = await api.start(host, port)
        except OSError as e:
            await rt.close()
            # errno text ("address already in use"); a resolver error has a negative errno
            why = (os.strerror(e.errno) if isinstance(e.errno, int) and e.errno > 0 else e.strerror or str(e)).lower()
            if ":" in host and not has_ipv6():
                why += "; this machine has no IPv6"
            print(f"station: --api / station.api {cfg.api}: cannot listen there ({why})", file=sys.stderr)
            return 2
        shown = f"[{host}]" if ":" in host else host
        log.info("local API on http://%s:%d/api/status%s", shown, actual,
                 "" if is_loopback(host) else " (token required)")
    loop = asyncio.get_running_loop()

    def on_signal(name: str) -> None:
        if rt.stopping:
            log.warning("%s again: stopping now, without waiting for the CSMS", name)
        else:
            log.info("%s: stopping cleanly (%s again to skip waiting for the CSMS)", name, name)
            notify("STOPPING=1")  # systemd: stopping (the watchdog is still petted meanwhile)
        rt.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal, sig.name)
    log.info("station %s (OCPP %s) connecting to %s; state in %s", cfg.id, cfg.ocpp, cfg.url_for_station(),
             cfg.state_path())
    notify("READY=1")
    host_check = asyncio.ensure_future(check_csms_host(cfg, log))
    wd = watchdog_interval()
    wd_task = None
    if wd:

        async def pet() -> None:
            while (problem := rt.health_problem()) is None:
                notify("WATCHDOG=1")
                await asyncio.sleep(wd)
            log.error("%s: no longer telling systemd the station is alive, so that it restarts it", problem)

        wd_task = asyncio.ensure_future(pet())
    try:
        await rt.run()
    finally:
        host_check.cancel()
        if wd_task:
            wd_task.cancel()
        if api:
            await api.close()
        if not rt.stopping:
            notify("STOPPING=1")
    return 0


def has_ipv6() -> bool:
    """Whether this machine can use IPv6 at all (an IPv6 loopback socket can be bound)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


async def check_csms_host(cfg: StationConfig, log: logging.Logger, timeout: float = 10.0) -> str | None:
    """Once at start: say in one line, naming the setting, when the CSMS host cannot be reached
    for a reason no retry will cure soon (an IPv6 address on a machine without IPv6) or that the
    engineer should check (a name the resolver does not know). The station starts anyway and
    keeps trying: the network or its DNS may come up later. Returns the line logged, if any."""
    url = urlsplit(cfg.csms_url)
    host = url.hostname or ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    line = None
    if ip is not None:
        if ip.version == 6 and not has_ipv6():
            line = (f"--csms-url / station.csms_url: {host} is an IPv6 address, but this machine has no IPv6: "
                    "the station cannot reach the CSMS there; use its IPv4 address or a name")
            log.error("%s", line)
        return line
    try:
        await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(
            host, url.port or (443 if url.scheme == "wss" else 80), type=socket.SOCK_STREAM), timeout)
    except socket.gaierror as e:
        line = (f"--csms-url / station.csms_url: the CSMS host {host} cannot be resolved ({e.strerror}); "
                "check the name and the network's DNS; the station keeps trying")
        log.warning("%s", line)
    except (TimeoutError, OSError):
        pass  # a slow or absent resolver: the link says what happens when it connects
    return line


async def _demo(version: str = "1.6") -> int:
    from station.runtime import Runtime
    from station.sim.csms import DemoCsms

    start = time.monotonic()

    def say(who: str, text: str) -> None:
        print(f"[{time.monotonic() - start:5.1f}s] {who:8} {text}", flush=True)

    csms = DemoCsms(lambda t: say("CSMS", t))
    port = await csms.start()
    say("demo", f"demo CSMS listening on ws://127.0.0.1:{port}/ocpp")
    with tempfile.TemporaryDirectory(prefix="station-demo-") as state:
        ocpp_cfg = Path(state) / "ocpp.json"
        if version == "2.0.1":
            ocpp_cfg.write_text(json.dumps([{"component": {"name": "SampledDataCtrlr"},
                                             "variable": {"name": "TxUpdatedInterval"}, "attributeValue": "3"}]))
        else:
            ocpp_cfg.write_text(json.dumps({"MeterValueSampleInterval": "3",
                                            "MeterValuesSampledData": "Energy.Active.Import.Register,Power.Active.Import"}))
        cfg = StationConfig(
            id="DEMO-001",
            ocpp=version,
            csms_url=f"ws://127.0.0.1:{port}/ocpp",
            state_dir=state,
            simulated=True,
            ocpp_config_file=str(ocpp_cfg),
        )
        rt = Runtime(cfg, log=logging.getLogger("station.demo"))
        rt.on_event = lambda t: say("station", t)
        task = asyncio.ensure_future(rt.run())
        plant = rt.hw[1].plant
        assert plant is not None

        async def until(cond, timeout: float = 10.0) -> None:
            deadline = time.monotonic() + timeout
            while not cond():
                if time.monotonic() > deadline:
                    raise TimeoutError("the demo got stuck; run with `station run --log-level debug` to see why")
                await asyncio.sleep(0.05)

        await until(lambda: rt.adapter is not None and rt.adapter.online)
        await asyncio.sleep(0.5)
        say("demo", "a driver plugs an EV (32 A, 3 phases) into connector 1")
        plant.plug(32, 3)
        await asyncio.sleep(1.0)
        say("demo", "the driver holds card DEMO-CARD-1 at the reader")
        plant.reader.present(__import__("hal.types", fromlist=["IdToken"]).IdToken("DEMO-CARD-1"))
        await until(lambda: rt.station is not None and rt.station.connectors[1].transaction is not None)
        say("demo", "charging for 10 seconds (meter values every 3 s) ...")
        await asyncio.sleep(10)
        say("demo", "the driver holds the same card again to stop")
        plant.reader.present(__import__("hal.types", fromlist=["IdToken"]).IdToken("DEMO-CARD-1"))
        await until(lambda: rt.station.connectors[1].transaction is None)
        await until(lambda: rt.store.outbox_len() == 0)
        await asyncio.sleep(0.5)
        say("demo", "the driver unplugs the EV")
        plant.unplug()
        await asyncio.sleep(1.0)
        rt.stop()
        await task
    await csms.close()
    say("demo", "done: a whole session - plug, card, start, meter values, stop. Next: README.md")
    return 0


def _problems(header: str, e: ConfigError) -> None:
    print(header, file=sys.stderr)
    for problem in e.problems:
        print(f"  - {problem}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "config":
        try:
            cfg = load(args.file)
            _token_from_env(cfg)
            if api_problems(cfg):
                raise ConfigError(api_problems(cfg))
        except ConfigError as e:
            _problems(f"{args.file}: {len(e.problems)} problem(s):", e)
            return 1
        print(f"{args.file}: OK (station {cfg.id}, OCPP {cfg.ocpp}, {len(cfg.evses)} EVSE(s))")
        return 0
    if args.command == "hw":
        _setup_logging("error")
        try:
            cfg = load(args.config)
        except ConfigError as e:
            _problems(f"{args.config}: {len(e.problems)} problem(s):", e)
            return 2
        from station.hwcheck import run_check

        try:
            return asyncio.run(run_check(cfg, args.wait_card))
        except KeyboardInterrupt:
            return 130
    if args.command == "fleet":
        from station.sim.fleet_cli import run_fleet

        _setup_logging(args.log_level)
        return run_fleet(args)
    if args.command == "demo":
        _setup_logging("error")
        try:
            return asyncio.run(_demo(args.ocpp))
        except KeyboardInterrupt:
            return 130
    _setup_logging(args.log_level)
    try:
        cfg = build_config(args)
    except ConfigError as e:
        _problems("station: the configuration has problems:", e)
        return 2
    try:
        return asyncio.run(_run(cfg))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Command line: ``station run | demo | config check | hw check``.

    station run [--config FILE] [--csms-url URL] [--id ID] [--ocpp 1.6|2.0.1] [--sim] [--evses N]
                [--state-dir DIR] [--api HOST:PORT] [--ocpp-config FILE] [--log-level LEVEL]
    station demo
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
import json
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

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
    sub.add_parser("demo", help="a demo CSMS and a simulated station showing a whole charging session")
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


def build_config(args: argparse.Namespace) -> StationConfig:
    cfg = load(args.config) if args.config else StationConfig()
    if args.csms_url:
        cfg.csms_url = args.csms_url
    if args.id:
        cfg.id = args.id
    if args.ocpp:
        cfg.ocpp = args.ocpp
    if args.state_dir:
        cfg.state_dir = args.state_dir
    if args.api:
        cfg.api = args.api
    _token_from_env(cfg)
    if args.sim:
        cfg.simulated = True
    if args.evses is not None:
        if not 1 <= args.evses <= 64:
            raise ConfigError([f"--evses: must be between 1 and 64, got {args.evses}"])
        cfg.evses = [EvseConfig(i + 1) for i in range(args.evses)]
        cfg.simulated = True
    if args.ocpp_config:
        cfg.ocpp_config_file = args.ocpp_config
        problems = _check_ocpp_config(args.ocpp_config, cfg.ocpp)
        if problems:
            raise ConfigError(problems)
    if cfg.ocpp_config_file is None and not cfg.simulated and not args.config:
        cfg.simulated = True
    problems: list[str] = []
    validate_station(cfg, problems)
    problems += api_problems(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


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
    except ValueError as e:
        return [f"--ocpp-config {path}: not valid JSON ({e})"]
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
    wd = watchdog_interval()
    wd_task = None
    if wd:

        async def pet() -> None:
            while True:
                notify("WATCHDOG=1")
                await asyncio.sleep(wd)

        wd_task = asyncio.ensure_future(pet())
    try:
        await rt.run()
    finally:
        if wd_task:
            wd_task.cancel()
        if api:
            await api.close()
        if not rt.stopping:
            notify("STOPPING=1")
    return 0


async def _demo() -> int:
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
        ocpp_cfg.write_text(json.dumps({"MeterValueSampleInterval": "3", "MeterValuesSampledData": "Energy.Active.Import.Register,Power.Active.Import"}))
        cfg = StationConfig(
            id="DEMO-001",
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
    if args.command == "demo":
        _setup_logging("error")
        try:
            return asyncio.run(_demo())
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

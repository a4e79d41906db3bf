"""Benchmark: one energy-meter reading through the Modbus backend, per model and transport.

    .venv/bin/python bench/meter_read.py [--n 200]

For every register map a pymodbus server (tests/hal/modbus_peer.py) serves the meter over Modbus
TCP on 127.0.0.1; SDM630 and ABB B23 also over Modbus RTU on a pseudo-terminal line at 9600 and
19200 baud. Each reading is ``ModbusMeter.read()`` (all the map's requests, decoding included);
the numbers say how often a station can poll its meters and how long the RS-485 bus is busy.
A pseudo-terminal has no baud rate of its own, so RTU times show the protocol and software cost,
not the wire time (at 9600 baud 80 registers take about 0.18 s on a real line).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.roundtrip import machine  # noqa: E402
from hal.board import build_evse  # noqa: E402
from hal.meter.registers import MODELS  # noqa: E402
from tests.hal.modbus_peer import MeterImage, MeterServer, PtyPair  # noqa: E402

VALUES = {"energy_import_kwh": 1234.5, "power_w": 7360.0, "voltage_l1_v": 230.1, "current_l1_a": 10.7,
          "frequency_hz": 50.0}


async def measure(section: dict, n: int) -> tuple[float, float, float, int]:
    hw = build_evse(1, {"meter": {"kind": "modbus", **section}}, shared={})
    times = []
    try:
        await hw.meter.read()  # connect
        for _ in range(n):
            t = time.perf_counter()
            await hw.meter.read()
            times.append((time.perf_counter() - t) * 1000)
    finally:
        await hw.meter.close()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1], times[-1], len(times)


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=200)
    args = p.parse_args()
    print(machine())
    print("| model | transport | requests per reading | n | median ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|---|")
    for name, regmap in MODELS.items():
        image = MeterImage(regmap, {k: v for k, v in VALUES.items() if k in regmap.registers})
        server = await MeterServer({1: image}).start_tcp()
        try:
            before = len(server.requests)
            med, p99, mx, n = await measure({"transport": "tcp", "model": name, "host": "127.0.0.1",
                                             "tcp_port": server.port}, args.n)
            per = (len(server.requests) - before) / (n + 1)
            print(f"| {name} | TCP | {per:g} | {n} | {med:.2f} | {p99:.2f} | {mx:.2f} |")
        finally:
            await server.stop()
    for name in ("sdm630", "abb-b23"):
        for baud in (9600, 19200):
            line = await PtyPair().start()
            server = await MeterServer({1: MeterImage(MODELS[name], {})}).start_rtu(line.paths[0], baudrate=baud)
            try:
                med, p99, mx, n = await measure({"transport": "rtu", "model": name, "port": line.paths[1],
                                                 "baudrate": baud}, args.n)
                print(f"| {name} | RTU {baud} (pty) | - | {n} | {med:.2f} | {p99:.2f} | {mx:.2f} |")
            finally:
                await server.stop()
                line.close()


if __name__ == "__main__":
    asyncio.run(main())

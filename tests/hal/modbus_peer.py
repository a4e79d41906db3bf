"""Test peers for the Modbus meter backend: real pymodbus servers playing energy meters.

* :class:`MeterImage` turns physical values into the registers a given meter model would hold
  (encoded here with :mod:`struct`, independently of the backend's decoder).
* :class:`MeterServer` serves one or more images (one per unit id) over Modbus TCP on 127.0.0.1
  or Modbus RTU on a pseudo-terminal. It can go silent (a dead meter: requests get no answer),
  refuse with an exception response, be stopped and started again, and counts requests.
* :class:`PtyPair` links two pseudo-terminals like a null-modem cable: bytes written to one
  slave come out of the other. The link can be cut (nothing gets through) and mended.

Only 127.0.0.1 and local ptys are used.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import termios
import tty
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from hal.meter.registers import HOLDING, RegisterMap

# Values every test meter reports (physical units; energies in kWh as the meters count them).
KNOWN = {
    "energy_import_kwh": 1234.5,
    "energy_export_kwh": 12.3,
    "power_w": 7360.0,
    "current_l1_a": 32.1,
    "current_l2_a": 31.9,
    "current_l3_a": 32.0,
    "voltage_l1_v": 230.1,
    "voltage_l2_v": 229.8,
    "voltage_l3_v": 231.0,
    "frequency_hz": 50.01,
    "power_factor": 0.98,
}

_STRUCT = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "int64": "q", "uint64": "Q"}


def encode_value(value: float, encoding: str, scale: float, word_order: str) -> list[int]:
    """Registers a meter holds for ``value`` (big-endian bytes in each register)."""
    if encoding == "float32":
        data = struct.pack(">f", value / scale)
    else:
        data = struct.pack(">" + _STRUCT[encoding], round(value / scale))
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return list(reversed(words)) if word_order == "little" else words


class MeterImage:
    """The register contents of one meter of a model."""

    def __init__(self, regmap: RegisterMap, values: dict[str, float] | None = None) -> None:
        self.map = regmap
        self.words: dict[int, int] = {}
        self.set(values if values is not None else KNOWN)

    def set(self, values: dict[str, float]) -> None:
        for name, value in values.items():
            reg = self.map.registers.get(name)
            if reg is None:
                continue
            for i, w in enumerate(encode_value(value, reg.encoding, reg.scale, self.map.word_order)):
                self.words[reg.address + i] = w

    def span(self) -> tuple[int, int]:
        lo = min(r.address for r in self.map.registers.values())
        hi = max(r.address + r.count for r in self.map.registers.values())
        return lo, hi


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PtyPair:
    """Two pseudo-terminals joined back to back by a copy loop on the event loop."""

    def __init__(self) -> None:
        self.masters: list[int] = []
        self.slaves: list[int] = []
        self.paths: list[str] = []
        self.cut = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> PtyPair:
        for _ in range(2):
            m, s = os.openpty()
            tty.setraw(s, termios.TCSANOW)  # no echo, no line editing, before anyone opens it
            os.set_blocking(m, False)
            self.masters.append(m)
            self.slaves.append(s)  # kept open so the master never reads EIO
            self.paths.append(os.ttyname(s))
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.masters[0], self._copy, self.masters[0], self.masters[1])
        self._loop.add_reader(self.masters[1], self._copy, self.masters[1], self.masters[0])
        return self

    def _copy(self, src: int, dst: int) -> None:
        try:
            data = os.read(src, 4096)
        except OSError:
            return
        if data and not self.cut:
            with contextlib.suppress(OSError):
                os.write(dst, data)

    def close(self) -> None:
        if self._loop is not None:
            for m in self.masters:
                self._loop.remove_reader(m)
            self._loop = None
        for fd in self.masters + self.slaves:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.masters, self.slaves = [], []


class MeterServer:
    """A pymodbus server answering for one or more meters (unit id -> :class:`MeterImage`).

    ``strict``: registers between the map's quantities are invalid (the server answers "illegal
    data address" for a request spanning them), else they read as 0.
    """

    def __init__(self, images: dict[int, MeterImage], strict: bool = False) -> None:
        self.images = images
        self.strict = strict
        self.silent = False  # no answers at all: a dead meter
        self.silent_units: set[int] = set()  # these meters alone are dead
        self.refuse: int | None = None  # answer every request with this exception code
        self.requests: list[tuple[int, int, int, int]] = []  # (unit, function, address, count)
        self.server: Any = None
        self.port = 0
        self.serial_path = ""
        self._stopped = asyncio.Event()

    def _device(self, unit: int, image: MeterImage) -> SimDevice:
        lo, hi = image.span()
        if self.strict:
            data = [SimData(a, values=[w], datatype=DataType.REGISTERS) for a, w in sorted(image.words.items())]
        else:
            data = [SimData(lo, count=hi - lo, values=0, datatype=DataType.REGISTERS)]
        unused = [SimData(0, datatype=DataType.INVALID)]
        bits = [SimData(0, values=False, datatype=DataType.BITS)]
        hr, ir = (data, unused) if image.map.function == HOLDING else (unused, data)

        async def action(function_code: int, start_address: int, address: int, count: int,
                         registers: list[int], set_values: Any) -> ExcCodes | None:
            self.requests.append((unit, function_code, address, count))
            if self.silent or unit in self.silent_units:
                # A dead meter: hold the request until the server stops (bounded), so no answer
                # ever reaches the client, not even a late one.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), 10.0)
                return ExcCodes.DEVICE_BUSY
            if self.refuse is not None:
                return ExcCodes(self.refuse)
            for a, w in image.words.items():
                if 0 <= a - start_address < len(registers):
                    registers[a - start_address] = w
            return None

        return SimDevice(unit, simdata=(bits, bits, hr, ir), action=action)

    def go_silent(self) -> None:
        self.silent = True

    def come_back(self) -> None:
        self.silent = False

    def _devices(self) -> list[SimDevice]:
        return [self._device(unit, image) for unit, image in self.images.items()]

    async def start_tcp(self, port: int | None = None) -> MeterServer:
        self._stopped = asyncio.Event()
        self.port = port or self.port or free_port()
        self.server = ModbusTcpServer(self._devices(), address=("127.0.0.1", self.port))
        await self.server.serve_forever(background=True)
        return self

    async def start_rtu(self, path: str, baudrate: int = 9600) -> MeterServer:
        self._stopped = asyncio.Event()
        self.serial_path = path
        self.server = ModbusSerialServer(self._devices(), framer=FramerType.RTU, port=path, baudrate=baudrate)
        await self.server.serve_forever(background=True)
        return self

    async def stop(self) -> None:
        self.silent = False
        self._stopped.set()
        if self.server is not None:
            await self.server.shutdown()
            self.server = None
        await asyncio.sleep(0)

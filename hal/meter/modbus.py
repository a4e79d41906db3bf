"""Energy meters on Modbus RTU (RS-485) or Modbus TCP, read with pymodbus's asyncio clients.

The register layout of each model is plain data in :mod:`hal.meter.registers`. One reading is a
few requests: the map's registers grouped into as few contiguous blocks as the meter accepts.

Meters on one bus (the same serial port, or the same TCP host:port, e.g. an RTU gateway) share
one client through ``BuildContext.extra`` and take turns with an :class:`asyncio.Lock`: RS-485 is
half-duplex and a gateway forwards one request at a time. Every attempt (connect + request) is
bounded by ``timeout_s``; a failed attempt is retried ``retries`` times, then :meth:`read` raises
:class:`~hal.types.MeterError` - never another exception, never a hang. When a bus keeps
failing its connection is closed and opened again on the next attempt, so a meter (or gateway,
or USB adapter) that comes back is read again without a restart.

pymodbus is imported only when a meter is built, so ``import hal.meter.modbus`` works without it.
"""

from __future__ import annotations

import asyncio
import math
import os
import struct
from dataclasses import dataclass
from typing import Any

from hal.meter.registers import MODELS, Reg, RegisterMap
from hal.section import Key
from hal.types import MeterError, MeterReading

KEYS: dict[str, Key] = {
    "transport": Key(str, choices=("rtu", "tcp"), doc="rtu: RS-485 serial line; tcp: Modbus TCP (meter or gateway)"),
    "model": Key(str, choices=tuple(MODELS), doc="meter model (register map)"),
    "unit": Key(int, 1, min=1, max=247, doc="Modbus device id of the meter"),
    "port": Key(str, None, doc="serial device for rtu, e.g. /dev/ttyUSB0"),
    "baudrate": Key(int, 9600, choices=(1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)),
    "parity": Key(str, "N", choices=("N", "E", "O")),
    "stopbits": Key(int, 1, choices=(1, 2)),
    "host": Key(str, None, doc="meter or gateway address for tcp, e.g. 192.168.1.50"),
    "tcp_port": Key(int, 502, min=1, max=65535),
    "timeout_s": Key((int, float), 1.0, min=0.05, max=30.0, doc="bound of one attempt (connect + request)"),
    "retries": Key(int, 2, min=0, max=10, doc="attempts after the first before the meter counts as failed"),
}

ILLEGAL_ADDRESS = 0x02
_EXCEPTION_NAMES = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "device failure",
    0x05: "acknowledge",
    0x06: "device busy",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target did not respond",
}


def problems(values: dict[str, Any], path: str) -> list[str]:
    """Problems between keys of one checked ``[evse.meter]`` section (kind modbus)."""
    out: list[str] = []
    if values.get("transport") == "rtu" and not values.get("port"):
        out.append(f"{path}.port: missing (needed for transport rtu)")
    if values.get("transport") == "tcp" and not values.get("host"):
        out.append(f"{path}.host: missing (needed for transport tcp)")
    return out


def build(values: dict[str, Any], ctx: Any) -> ModbusMeter:
    path = f"evse {ctx.evse_id}: meter"
    found = problems(values, path)
    if found:
        raise ValueError("; ".join(found))
    bus = _Bus.shared(values, ctx.extra, path)
    return ModbusMeter(MODELS[values["model"]], bus, unit=values["unit"], timeout_s=float(values["timeout_s"]),
                       retries=values["retries"])


# -- plan and decode ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One request: ``count`` registers from ``start`` holding the named quantities."""

    start: int
    count: int
    names: tuple[str, ...]

    def has_gaps(self, regs: dict[str, Reg]) -> bool:
        return self.count > sum(regs[n].count for n in self.names)


def plan(regmap: RegisterMap, max_gap: int | None = None, names: tuple[str, ...] | None = None) -> list[Block]:
    """Group the map's registers into blocks of at most ``max_count`` registers, spanning at most
    ``max_gap`` unused registers between two quantities."""
    gap = regmap.max_gap if max_gap is None else max_gap
    wanted = names if names is not None else tuple(regmap.registers)
    items = sorted(((regmap.registers[n], n) for n in wanted), key=lambda x: x[0].address)
    blocks: list[Block] = []
    start = end = -1
    current: list[str] = []
    for reg, name in items:
        reg_end = reg.address + reg.count
        if current and reg.address - end <= gap and reg_end - start <= regmap.max_count:
            current.append(name)
            end = max(end, reg_end)
            continue
        if current:
            blocks.append(Block(start, end - start, tuple(current)))
        start, end, current = reg.address, reg_end, [name]
    if current:
        blocks.append(Block(start, end - start, tuple(current)))
    return blocks


def decode(words: list[int], reg: Reg, word_order: str, int_sentinels: bool = False) -> float | None:
    """Physical value of one quantity from its registers (``None`` if the meter marks it missing)."""
    if word_order == "little":
        words = list(reversed(words))
    data = b"".join(int(w & 0xFFFF).to_bytes(2, "big") for w in words)
    if reg.encoding == "float32":
        value = struct.unpack(">f", data)[0]
        if not math.isfinite(value):
            return None
        # float32 carries about 7 significant digits: 12.3 arrives as 12.30000019; report 12.3.
        return float(f"{value:.7g}") * reg.scale
    raw = int.from_bytes(data, "big", signed=reg.signed)
    if int_sentinels:
        bits = 16 * reg.count
        if raw == ((1 << (bits - 1)) - 1 if reg.signed else (1 << bits) - 1):
            return None
    decimals = max(0, -math.floor(math.log10(reg.scale))) if reg.scale < 1 else 0
    return round(raw * reg.scale, decimals)


def _is_connection_error(e: BaseException) -> bool:
    """The connection itself is broken (not just one unanswered request): open it afresh."""
    if isinstance(e, OSError):  # includes ConnectionError and serial.SerialException
        return True
    try:
        from pymodbus.exceptions import ConnectionException
    except ImportError:  # pragma: no cover
        return False
    return isinstance(e, ConnectionException)


# -- the shared bus -------------------------------------------------------------------------------


class _Refused(Exception):
    """The meter answered with a Modbus exception response."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(f"exception response 0x{code:02X} ({_EXCEPTION_NAMES.get(code, 'unknown')})")


class _Bus:
    """One Modbus client (serial port or TCP connection) shared by the meters on it."""

    def __init__(self, transport: str, settings: dict[str, Any]) -> None:
        self.transport = transport
        self.settings = settings
        self.where = settings["port"] if transport == "rtu" else f"{settings['host']}:{settings['tcp_port']}"
        self.key = f"modbus:{transport}:{self.where}"
        self.units: set[int] = set()
        self.timeout_s = 0.0
        self.lock = asyncio.Lock()
        self.client: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.failures = 0  # consecutive failed attempts that were not a meter's answer
        self.reconnect_after = 3
        self.extra: dict[str, Any] | None = None

    @classmethod
    def shared(cls, values: dict[str, Any], extra: dict[str, Any], path: str) -> _Bus:
        transport = values["transport"]
        if transport == "rtu":
            settings = {k: values[k] for k in ("port", "baudrate", "parity", "stopbits")}
        else:
            settings = {k: values[k] for k in ("host", "tcp_port")}
        bus = cls(transport, settings)
        existing = extra.get(bus.key)
        if existing is None:
            extra[bus.key] = bus
        else:
            for k, v in settings.items():
                if existing.settings[k] != v:
                    raise ValueError(f"{path}.{k}: {v!r} differs from {existing.settings[k]!r} "
                                     f"used by another meter on {bus.where}")
            bus = existing
        if values["unit"] in bus.units:
            raise ValueError(f"{path}.unit: {values['unit']} is already used by another meter on {bus.where}")
        bus.units.add(values["unit"])
        bus.timeout_s = max(bus.timeout_s, float(values["timeout_s"]))
        bus.reconnect_after = max(bus.reconnect_after, values["retries"] + 1)
        bus.extra = extra
        return bus

    def _make_client(self) -> Any:
        try:
            from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
        except ImportError as e:  # pragma: no cover - pymodbus is a dependency of the package
            raise MeterError(f"meter on {self.where}: the modbus backend needs pymodbus ({e})") from e
        # pymodbus's own retries and reconnect task are off: every attempt is bounded and retried here.
        common = {"timeout": self.timeout_s + 1.0, "retries": 0, "reconnect_delay": 0}
        s = self.settings
        if self.transport == "rtu":
            return AsyncModbusSerialClient(s["port"], baudrate=s["baudrate"], parity=s["parity"],
                                           stopbits=s["stopbits"], bytesize=8, **common)
        return AsyncModbusTcpClient(s["host"], port=s["tcp_port"], **common)

    def check_loop(self) -> None:
        """A client and lock belong to one event loop; start afresh if the loop changed."""
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            self.drop()
            self.lock = asyncio.Lock()
            self.loop = loop

    async def request(self, function: int, start: int, count: int, unit: int) -> list[int]:
        """One request; the caller holds :attr:`lock` and bounds the time."""
        if self.client is None:
            self.client = self._make_client()
        if not self.client.connected:
            if not await self.client.connect():
                raise ConnectionError(f"cannot open {self.where}{self._why_not()}")
        if function == 0x04:
            rr = await self.client.read_input_registers(start, count=count, device_id=unit)
        else:
            rr = await self.client.read_holding_registers(start, count=count, device_id=unit)
        if rr.isError():
            raise _Refused(getattr(rr, "exception_code", 0))
        regs = list(getattr(rr, "registers", None) or [])
        if len(regs) != count:
            raise ValueError(f"answer has {len(regs)} registers, asked for {count}")
        return regs

    def _why_not(self) -> str:
        """Why a serial port would not open (pymodbus only logs it)."""
        if self.transport != "rtu":
            return " (nothing answers there)"
        port = self.settings["port"]
        if not os.path.exists(port):
            return " (no such serial device: is the adapter plugged in?)"
        if not os.access(port, os.R_OK | os.W_OK):
            return " (permission denied: is the user in group dialout?)"
        return ""

    def drop(self) -> None:
        """Close the connection; the next request opens it again."""
        client, self.client = self.client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing a broken connection must not fail the caller
                pass

    def release(self, unit: int) -> None:
        self.units.discard(unit)
        if not self.units:
            self.drop()
            if self.extra is not None and self.extra.get(self.key) is self:
                del self.extra[self.key]


# -- the meter ------------------------------------------------------------------------------------


class ModbusMeter:
    """An :class:`~hal.meter.EnergyMeter` read over Modbus with a register map."""

    def __init__(self, regmap: RegisterMap, bus: _Bus, unit: int = 1, timeout_s: float = 1.0,
                 retries: int = 2) -> None:
        self.map = regmap
        self.bus = bus
        self.unit = unit
        self.timeout_s = timeout_s
        self.retries = retries
        self.blocks = plan(regmap)
        self.requests = 0  # requests sent, for diagnostics and tests
        self._closed = False

    def __repr__(self) -> str:
        return f"ModbusMeter({self.map.name}, unit {self.unit} on {self.bus.where})"

    def _fail(self, what: str, err: BaseException | str) -> MeterError:
        return MeterError(f"{self.map.name} unit {self.unit} on {self.bus.where}: {what}: {err}")

    async def read(self) -> MeterReading:
        if self._closed:
            raise self._fail("read", "meter is closed")
        values: dict[str, float | None] = {}
        blocks = list(self.blocks)
        i = 0
        while i < len(blocks):
            block = blocks[i]
            try:
                words = await self._read_block(block)
            except _Refused as e:
                if e.code != ILLEGAL_ADDRESS or not block.has_gaps(self.map.registers):
                    raise self._fail(self._what(block), e) from None
                # The meter does not answer for the unused registers between quantities: from now on
                # read only the registers the map names.
                tight = plan(self.map, max_gap=0, names=block.names)
                blocks[i : i + 1] = tight
                self.blocks = list(blocks)
                continue
            for name in block.names:
                reg = self.map.registers[name]
                off = reg.address - block.start
                values[name] = decode(words[off : off + reg.count], reg, self.map.word_order,
                                      self.map.int_sentinels)
            i += 1
        return self._reading(values)

    def _what(self, block: Block) -> str:
        fn = "input" if self.map.function == 0x04 else "holding"
        return f"reading {block.count} {fn} registers at 0x{block.start:04X}"

    async def _read_block(self, block: Block) -> list[int]:
        bus = self.bus
        last: BaseException | str = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(min(0.05, self.timeout_s / 10))
            bus.check_loop()
            async with bus.lock:
                self.requests += 1
                try:
                    words = await asyncio.wait_for(
                        bus.request(self.map.function, block.start, block.count, self.unit), self.timeout_s)
                except _Refused as e:
                    bus.failures = 0  # the line works; this meter said no
                    if e.code == ILLEGAL_ADDRESS and block.has_gaps(self.map.registers):
                        raise
                    last = e
                    continue
                except TimeoutError:
                    last = f"no answer within {self.timeout_s:g} s"
                except Exception as e:  # noqa: BLE001 - pymodbus, pyserial and OS errors all mean "failed"
                    last = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                    if _is_connection_error(e):
                        bus.drop()
                else:
                    bus.failures = 0
                    return words
                bus.failures += 1
                if bus.failures >= bus.reconnect_after:
                    bus.drop()  # a half-open TCP connection or a replugged adapter: open afresh
                    bus.failures = 0
        if isinstance(last, _Refused):
            raise self._fail(self._what(block), f"{last} after {self.retries + 1} attempts")
        raise self._fail(self._what(block), f"{last} (after {self.retries + 1} attempts)")

    def _reading(self, v: dict[str, float | None]) -> MeterReading:
        imp = v.get("energy_import_kwh")
        if imp is None:
            raise self._fail("energy import", "the meter reports no value")
        exp = v.get("energy_export_kwh")

        def phases(kind: str, unit: str) -> tuple[float, ...] | None:
            names = [f"{kind}_l{i}_{unit}" for i in (1, 2, 3) if f"{kind}_l{i}_{unit}" in self.map.registers]
            got = [v.get(n) for n in names]
            if not got or any(x is None for x in got):
                return None
            return tuple(float(x) for x in got if x is not None)

        return MeterReading(
            energy_import_wh=imp * 1000.0,
            energy_export_wh=None if exp is None else exp * 1000.0,
            power_w=v.get("power_w"),
            current_a=phases("current", "a"),
            voltage_v=phases("voltage", "v"),
            frequency_hz=v.get("frequency_hz"),
            power_factor=v.get("power_factor"),
        )

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.bus.release(self.unit)

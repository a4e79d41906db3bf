"""Analog Devices ADE7953 single-phase energy metering IC on I2C (smbus2).

What this relies on from the ADE7953 data sheet (Rev. C):

* I2C slave address 0x38 (7-bit). Every access starts with the 16-bit register address, most
  significant byte first; a write continues with the data bytes, a read is a repeated start and
  the data bytes, most significant first (one ``i2c_rdwr`` with a write and a read message).
* Register width follows the address: 0x000-0x0FF 8 bit, 0x100-0x1FF 16 bit, 0x200-0x2FF 24 bit,
  0x300-0x3FF the same 24-bit registers as 32-bit words (signed ones sign-extended, unsigned ones
  zero-padded). The 32-bit copies are used: AWATT 0x312 / BWATT 0x313 (signed), IRMSA 0x31A /
  IRMSB 0x31B, VRMS 0x31C (unsigned), AENERGYA 0x31E / AENERGYB 0x31F (signed).
* PERIOD 0x10E (16 bit, unsigned): line period in cycles of a 223 kHz clock, f = 223 kHz / (PERIOD + 1).
  PFA 0x10A / PFB 0x10B (16 bit, signed): power factor, 1 LSB = 2^-15.
* LCYCMODE 0x004 (8 bit), bit 6 RSTREAD (set at reset, 0x40): reading an energy register clears
  it. The backend writes 0x40 (read-with-reset, no line-cycle accumulation) and adds every read
  to running import/export totals in software, so the totals never go backwards and the 24-bit
  register never overflows as long as the meter is read every few minutes.
* After power-up the data sheet asks to write 0xAD to the unlock register 0x0FE and 0x0030 to
  register 0x120 ("optimum settings"); done once before the first reading.

The calibration constants (``wh_per_lsb``, ``v_per_lsb``, ``a_per_lsb``, ``w_per_lsb``) depend on
the board's voltage divider and shunt/CT, so they are required keys.

The blocking smbus2 calls run in a thread under the I2C bus's lock (one SMBus and lock per bus
number for the whole station, shared with other I2C devices such as the pilot's ADC).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from hal.section import Key
from hal.types import MeterError, MeterReading

DEFAULT_ADDRESS = 0x38

LCYCMODE = 0x004
RSTREAD = 0x40
UNLOCK = 0x0FE
UNLOCK_KEY = 0xAD
SETTING_120 = 0x120
SETTING_120_VALUE = 0x0030
PFA, PFB = 0x10A, 0x10B
PERIOD = 0x10E
AWATT, BWATT = 0x312, 0x313
IRMSA, IRMSB = 0x31A, 0x31B
VRMS = 0x31C
AENERGYA, AENERGYB = 0x31E, 0x31F

PERIOD_CLOCK_HZ = 223_000.0
SIGNED = {AWATT, BWATT, AENERGYA, AENERGYB, PFA, PFB}

_positive = 1e-15

KEYS: dict[str, Key] = {
    "bus": Key(int, 1, min=0, max=255, doc="I2C bus number (/dev/i2c-N)"),
    "address": Key(int, DEFAULT_ADDRESS, min=0x03, max=0x77, doc="7-bit I2C address (0x38 per data sheet)"),
    "channel": Key(str, "a", choices=("a", "b"), doc="current channel the EVSE's phase goes through"),
    "wh_per_lsb": Key((int, float), min=_positive, doc="Wh per LSB of the active-energy register"),
    "v_per_lsb": Key((int, float), min=_positive, doc="V per LSB of VRMS"),
    "a_per_lsb": Key((int, float), min=_positive, doc="A per LSB of IRMSx"),
    "w_per_lsb": Key((int, float), min=_positive, doc="W per LSB of xWATT"),
    "retries": Key(int, 2, min=0, max=10, doc="repeats of a failed I2C transfer"),
    "timeout_s": Key((int, float), 2.0, min=0.1, max=30.0, doc="bound of one reading"),
}


def width(register: int) -> int:
    """Bytes of a register, from its address range."""
    if not 0 <= register <= 0x3FF:
        raise ValueError(f"ADE7953 register 0x{register:03X} out of range")
    return register // 0x100 + 1


def _consume(fut: asyncio.Future) -> None:
    """Retrieve the outcome of a transfer nobody waits for any more (no 'never retrieved' noise)."""
    if not fut.cancelled():
        fut.exception()


def build(values: dict[str, Any], ctx: Any) -> Ade7953Meter:
    from hal.pilot_gpio import open_i2c_bus

    bus, lock = open_i2c_bus(ctx, values["bus"])
    return Ade7953Meter(
        bus,
        lock=lock,
        address=values["address"],
        channel=values["channel"],
        wh_per_lsb=float(values["wh_per_lsb"]),
        v_per_lsb=float(values["v_per_lsb"]),
        a_per_lsb=float(values["a_per_lsb"]),
        w_per_lsb=float(values["w_per_lsb"]),
        retries=values["retries"],
        timeout_s=float(values["timeout_s"]),
        name=f"ADE7953 at 0x{values['address']:02X} on i2c-{values['bus']}",
    )


class Ade7953Meter:
    """An :class:`~hal.meter.EnergyMeter` on an ADE7953. ``bus`` is an smbus2 ``SMBus`` (or a fake
    with the same ``i2c_rdwr``); ``lock`` a :class:`threading.Lock` shared by all users of that bus."""

    def __init__(self, bus: Any, *, lock: threading.Lock | None = None, address: int = DEFAULT_ADDRESS,
                 channel: str = "a", wh_per_lsb: float, v_per_lsb: float, a_per_lsb: float, w_per_lsb: float,
                 retries: int = 2, timeout_s: float = 2.0, name: str | None = None) -> None:
        self.bus = bus
        self.lock = lock or threading.Lock()
        self.address = address
        self.wh_per_lsb = wh_per_lsb
        self.v_per_lsb = v_per_lsb
        self.a_per_lsb = a_per_lsb
        self.w_per_lsb = w_per_lsb
        self.retries = retries
        self.timeout_s = timeout_s
        self.name = name or f"ADE7953 at 0x{address:02X}"
        b = channel == "b"
        self.reg_energy = AENERGYB if b else AENERGYA
        self.reg_irms = IRMSB if b else IRMSA
        self.reg_watt = BWATT if b else AWATT
        self.reg_pf = PFB if b else PFA
        self.import_wh = 0.0
        self.export_wh = 0.0
        self._ready = False
        self._closed = False
        self._busy: asyncio.Future | None = None  # the transfer of the last reading
        self._one_at_a_time = asyncio.Lock()

    # -- register access (run in a worker thread, under the bus lock) --------------------------

    def _transfer(self, register: int, data: bytes | None = None) -> int:
        from smbus2 import i2c_msg

        addr = bytes((register >> 8, register & 0xFF))
        last: Exception | None = None
        for _ in range(self.retries + 1):
            try:
                if data is not None:
                    self.bus.i2c_rdwr(i2c_msg.write(self.address, addr + data))
                    return 0
                n = width(register)
                rd = i2c_msg.read(self.address, n)
                self.bus.i2c_rdwr(i2c_msg.write(self.address, addr), rd)
                raw = bytes(rd)
                if len(raw) != n:
                    raise OSError(f"short read: {len(raw)} of {n} bytes")
                return int.from_bytes(raw, "big", signed=register in SIGNED)
            except OSError as e:
                last = e
        what = "writing" if data is not None else "reading"
        raise MeterError(f"{self.name}: {what} register 0x{register:03X} failed after "
                         f"{self.retries + 1} attempts: {last}")

    def _write(self, register: int, value: int) -> None:
        self._transfer(register, value.to_bytes(width(register), "big"))

    def _setup(self) -> None:
        self._write(UNLOCK, UNLOCK_KEY)
        self._write(SETTING_120, SETTING_120_VALUE)
        self._write(LCYCMODE, RSTREAD)
        got = self._transfer(LCYCMODE)
        if got != RSTREAD:
            raise MeterError(f"{self.name}: LCYCMODE reads 0x{got:02X} after writing 0x{RSTREAD:02X} "
                             "(not an ADE7953, or the bus garbles data)")
        self._ready = True

    def _sample(self) -> MeterReading:
        with self.lock:
            try:
                if not self._ready:
                    self._setup()
                # Energy first: the read clears the register, so count it at once - whatever fails later.
                counts = self._transfer(self.reg_energy)
                if counts >= 0:
                    self.import_wh += counts * self.wh_per_lsb
                else:
                    self.export_wh += -counts * self.wh_per_lsb
                vrms = self._transfer(VRMS)
                irms = self._transfer(self.reg_irms)
                watt = self._transfer(self.reg_watt)
                period = self._transfer(PERIOD)
                pf = self._transfer(self.reg_pf)
            except MeterError:
                self._ready = False  # the chip may have been reset: set it up again next time
                raise
            except Exception as e:  # noqa: BLE001 - whatever the bus object raises is a meter failure
                self._ready = False
                raise MeterError(f"{self.name}: {type(e).__name__}: {e}") from e
        return MeterReading(
            energy_import_wh=self.import_wh,
            energy_export_wh=self.export_wh,
            power_w=watt * self.w_per_lsb,
            current_a=(irms * self.a_per_lsb,),
            voltage_v=(vrms * self.v_per_lsb,),
            frequency_hz=PERIOD_CLOCK_HZ / (period + 1) if 0 < period < 0xFFFF else None,
            power_factor=pf / 32768.0,
        )

    # -- EnergyMeter ------------------------------------------------------------------------

    async def read(self) -> MeterReading:
        if self._closed:
            raise MeterError(f"{self.name}: meter is closed")
        async with self._one_at_a_time:
            if self._busy is not None and not self._busy.done():
                # A transfer that timed out still runs in its thread (and will still count its
                # energy); do not pile up more threads behind a hung bus.
                raise MeterError(f"{self.name}: the previous I2C transfer has not finished yet")
            self._busy = task = asyncio.ensure_future(asyncio.to_thread(self._sample))
            try:
                return await asyncio.wait_for(asyncio.shield(task), self.timeout_s)
            except TimeoutError:
                task.add_done_callback(_consume)
                raise MeterError(f"{self.name}: I2C transfer did not finish within {self.timeout_s:g} s") from None
            except MeterError:
                raise
            except Exception as e:  # noqa: BLE001 - whatever the bus object raises is a meter failure
                raise MeterError(f"{self.name}: {type(e).__name__}: {e}") from e

    async def close(self) -> None:
        self._closed = True

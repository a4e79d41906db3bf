"""IEC 61851-1 control pilot on a Raspberry Pi: hardware PWM out, CP voltage in through an ADS1115.

Out: the Pi's hardware PWM (``/sys/class/pwm/pwmchip<N>/pwm<C>``, enabled with ``dtoverlay=pwm``)
drives the +-12 V pilot driver (an op-amp or a push-pull stage) at 1 kHz. 100 % duty = steady
+12 V (not offering), the duty of :func:`~hal.pilot.duty_cycle_for_current` = offering that
current, 0 % = steady -12 V (state F, station not available; used on stop). ``pwm_inverted`` is
for driver stages that invert.

In: the pilot's positive level, held by a peak detector, through a resistor divider into
channel ``channel_high`` of an ADS1115 (I2C, smbus2). ``scale`` and ``offset`` turn ADC volts
into CP volts (``cp = adc * scale + offset``; the defaults fit a divider that maps -12..+12 V
onto 0..3.3 V). Optionally ``channel_low`` reads the negative level for the EV diode check: while
PWM runs and an EV is connected the low level must be -12 V; if not, an EVCommunicationError
fault is reported (energy off, SuspendedEVSE) until the diode is seen again.

Every ``sample_ms`` the level is read and classified (:func:`~hal.pilot.classify_cp`); a new
state is reported after ``debounce`` equal readings. A meter of I2C errors: the ADC not
answering is reported as an InternalError fault once, and cleared when it answers again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any

from hal.aio import stop_task
from hal.pilot import NOT_OFFERING, Debouncer, classify_cp, duty_cycle_for_current, offers_energy
from hal.section import Key
from hal.types import CpCallback, CpState, Fault, FaultCallback, HalError, Listeners

log = logging.getLogger("hal.pilot")

PWM_PERIOD_NS = 1_000_000  # 1 kHz

KEYS: dict[str, Key] = {
    "pwm_chip": Key(int, 0, min=0, max=15, doc="N of /sys/class/pwm/pwmchipN"),
    "pwm_channel": Key(int, 0, min=0, max=3, doc="C of pwmchipN/pwmC"),
    "pwm_inverted": Key(bool, False, doc="true when the driver stage inverts the PWM"),
    "pwm_sysfs": Key(str, "/sys/class/pwm", doc="sysfs PWM root; change only for tests"),
    "i2c_bus": Key(int, 1, min=0, max=31, doc="N of /dev/i2c-N"),
    "adc_address": Key(int, 0x48, min=0x48, max=0x4B, doc="ADS1115 address (ADDR pin: 0x48-0x4B)"),
    "channel_high": Key(int, 0, min=0, max=3, doc="ADS1115 input of the positive CP level"),
    "channel_low": Key(int, -1, min=-1, max=3, doc="ADS1115 input of the negative CP level; -1 = none"),
    "scale": Key((int, float), 24.0 / 3.3, doc="CP volts per ADC volt"),
    "offset": Key((int, float), -12.0, doc="CP volts at 0 V on the ADC"),
    "sample_ms": Key(int, 50, min=5, max=1000, doc="time between two CP readings"),
    "debounce": Key(int, 3, min=1, max=20, doc="equal readings needed before a state change counts"),
}


class SysfsPwm:
    """One channel of the Linux PWM sysfs interface."""

    def __init__(self, root: str, chip: int, channel: int, inverted: bool = False) -> None:
        self.chip_dir = Path(root) / f"pwmchip{chip}"
        self.dir = self.chip_dir / f"pwm{channel}"
        self.channel = channel
        self.inverted = inverted
        self.duty_percent: float | None = None

    def _write(self, name: str, value: object) -> None:
        try:
            (self.dir / name).write_text(f"{value}\n")
        except OSError as e:
            raise HalError(f"pilot PWM {self.dir}/{name}: {e}") from e

    def open(self) -> None:
        if not self.dir.exists():
            try:
                (self.chip_dir / "export").write_text(f"{self.channel}\n")
            except OSError as e:
                raise HalError(
                    f"pilot PWM: cannot export channel {self.channel} of {self.chip_dir} ({e}); "
                    "is dtoverlay=pwm set in /boot/firmware/config.txt?"
                ) from e
            for _ in range(50):  # udev may need a moment to create the files
                if (self.dir / "period").exists():
                    break
                time.sleep(0.01)
        self._write("duty_cycle", 0)  # the period may not shrink below the duty cycle
        self._write("period", PWM_PERIOD_NS)
        self._write("enable", 1)

    def set_duty(self, percent: float) -> None:
        duty = 100.0 - percent if self.inverted else percent
        self._write("duty_cycle", round(PWM_PERIOD_NS * duty / 100.0))
        self.duty_percent = percent


class Ads1115:
    """Single-shot reads of one ADS1115 input against GND, +-4.096 V range, 860 samples/s."""

    REG_CONVERSION = 0x00
    REG_CONFIG = 0x01
    LSB_V = 4.096 / 32768

    def __init__(self, bus: Any, address: int = 0x48) -> None:
        self.bus = bus
        self.address = address

    def read_volts(self, channel: int) -> float:
        # OS=1 (start), MUX=1xx (AINx vs GND), PGA=001 (+-4.096 V), MODE=1 (single shot),
        # DR=111 (860 SPS), comparator off (COMP_QUE=11)
        config = 0x8000 | ((0b100 | channel) << 12) | (0b001 << 9) | 0x0100 | (0b111 << 5) | 0b11
        self.bus.write_i2c_block_data(self.address, self.REG_CONFIG, [config >> 8, config & 0xFF])
        for _ in range(20):  # a conversion takes ~1.2 ms at 860 SPS
            time.sleep(0.0012)
            hi, lo = self.bus.read_i2c_block_data(self.address, self.REG_CONFIG, 2)
            if hi & 0x80:  # OS bit set again: conversion done
                break
        else:
            raise OSError("ADS1115 conversion did not finish")
        hi, lo = self.bus.read_i2c_block_data(self.address, self.REG_CONVERSION, 2)
        raw = (hi << 8) | lo
        if raw & 0x8000:
            raw -= 0x10000
        return raw * self.LSB_V


class GpioPilot:
    def __init__(self, pwm: SysfsPwm, adc: Ads1115, channel_high: int = 0, channel_low: int = -1,
                 scale: float = 24.0 / 3.3, offset: float = -12.0, sample_s: float = 0.05,
                 debounce: int = 3, bus_lock: threading.Lock | None = None) -> None:
        self.pwm = pwm
        self.adc = adc
        self.channel_high = channel_high
        self.channel_low = channel_low
        self.scale = scale
        self.offset = offset
        self.sample_s = sample_s
        self._debouncer = Debouncer(debounce)
        self.state = CpState.A
        self.offered_a: float | None = None
        self._states = Listeners()
        self._faults = Listeners()
        self._active_faults: set[str] = set()
        self._task: asyncio.Task | None = None
        self._offer_lock = asyncio.Lock()
        self._bus_lock = bus_lock or threading.Lock()
        self.last_cp_volts: float | None = None

    def on_state(self, cb: CpCallback) -> None:
        self._states.add(cb)

    def on_fault(self, cb: FaultCallback) -> None:
        self._faults.add(cb)

    async def offer(self, amps: float | None) -> None:
        """Offer ``amps``: below 6 A (and ``None`` / 0) the PWM stops (100 %, steady +12 V); never
        the 10 % duty of 6 A for less. Offers are carried out one after the other, in call order."""
        duty = duty_cycle_for_current(amps) if offers_energy(amps) else NOT_OFFERING
        async with self._offer_lock:
            await asyncio.to_thread(self.pwm.set_duty, duty)
            self.offered_a = amps

    def _fault(self, code: str, active: bool, info: str) -> None:
        if active == (code in self._active_faults):
            return
        (self._active_faults.add if active else self._active_faults.discard)(code)
        self._faults.emit(Fault(code, active, info))

    def _read(self) -> tuple[float, float | None]:
        with self._bus_lock:
            high = self.adc.read_volts(self.channel_high) * self.scale + self.offset
            low = None
            if self.channel_low >= 0:
                low = self.adc.read_volts(self.channel_low) * self.scale + self.offset
        return high, low

    async def sample(self) -> None:
        """Read the CP once, debounce, report changes and diode faults."""
        try:
            high, low = await asyncio.to_thread(self._read)
        except OSError as e:
            if "InternalError" not in self._active_faults:
                log.error("pilot ADC at 0x%02x: %s", self.adc.address, e)
            self._fault("InternalError", True, f"control pilot ADC not answering: {e}")
            return
        self._fault("InternalError", False, "control pilot ADC answers again")
        self.last_cp_volts = high
        changed = self._debouncer.feed(classify_cp(high))
        if changed is not None:
            self.state = changed
            self._states.emit(changed)
        pwm_on = self.pwm.duty_percent is not None and 0 < self.pwm.duty_percent < 100
        if low is not None and pwm_on and self.state in (CpState.B, CpState.C, CpState.D):
            self._fault("EVCommunicationError", low > -10.5, f"EV diode check: pilot low level {low:.1f} V")

    async def _loop(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self.sample_s)

    async def start(self) -> None:
        await asyncio.to_thread(self.pwm.open)
        await self.offer(None)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="pilot-sample")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)
        try:
            await asyncio.to_thread(self.pwm.set_duty, 0.0)  # steady -12 V: state F, not available
        except HalError as e:
            log.error("%s", e)


def open_i2c_bus(ctx: Any, bus: int) -> tuple[Any, threading.Lock]:
    """One smbus2 bus (and its lock) per bus number, shared by all devices of the station."""
    key = f"i2c-{bus}"
    if key not in ctx.extra:
        try:
            from smbus2 import SMBus
        except ImportError as e:
            raise HalError("I2C devices need smbus2: pip install 'ocpp-station[rpi]'") from e
        try:
            ctx.extra[key] = (SMBus(bus), threading.Lock())
        except OSError as e:
            raise HalError(f"cannot open /dev/i2c-{bus}: {e} (is I2C enabled with raspi-config?)") from e
    return ctx.extra[key]


def build(values: dict[str, Any], ctx: Any) -> GpioPilot:
    bus, lock = open_i2c_bus(ctx, values["i2c_bus"])
    pwm = SysfsPwm(values["pwm_sysfs"], values["pwm_chip"], values["pwm_channel"], values["pwm_inverted"])
    return GpioPilot(
        pwm,
        Ads1115(bus, values["adc_address"]),
        values["channel_high"],
        values["channel_low"],
        float(values["scale"]),
        float(values["offset"]),
        values["sample_ms"] / 1000.0,
        values["debounce"],
        bus_lock=lock,
    )

"""Stand-ins for what a test machine lacks: a GPIO chip behind gpiod's API, RPi.GPIO, an ADS1115.

FakeChip is driven through the real ``gpiod`` package's LineSettings and enums (only the kernel
chip is fake: this machine's kernel has no gpio-sim), so the backend's requests are checked the
way libgpiod would see them: path, direction, bias, active-low, one owner per line.
"""

from __future__ import annotations

import errno
import types
from collections.abc import Callable

import gpiod
from gpiod.line import Bias, Direction, Value


class FakeChip:
    """Physical line levels of one chip. ``wire(line, fn)`` makes an input read ``fn()``."""

    def __init__(self, path: str = "/dev/gpiochip0", lines: int = 54) -> None:
        self.path = path
        self.lines = lines
        self.level: dict[int, bool] = {}
        self.settings: dict[int, gpiod.LineSettings] = {}
        self.owner: dict[int, str] = {}
        self.wires: dict[int, Callable[[], bool]] = {}

    def module(self) -> types.SimpleNamespace:
        return types.SimpleNamespace(request_lines=self.request_lines, LineSettings=gpiod.LineSettings, line=gpiod.line)

    def wire(self, line: int, fn: Callable[[], bool]) -> None:
        self.wires[line] = fn

    def physical(self, line: int) -> bool:
        if line in self.wires:
            return self.wires[line]()
        if line in self.level:
            return self.level[line]
        return self.settings[line].bias == Bias.PULL_UP  # an open input follows its pull

    def request_lines(self, path: str, config: dict, consumer: str | None = None, **_: object) -> FakeRequest:
        if path != self.path:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        for line in config:
            if not 0 <= line < self.lines:
                raise OSError(errno.EINVAL, "Invalid argument")
            if line in self.owner:
                raise OSError(errno.EBUSY, "Device or resource busy")
        for line, settings in config.items():
            self.owner[line] = consumer or ""
            self.settings[line] = settings
            if settings.direction == Direction.OUTPUT:
                self.level[line] = (settings.output_value == Value.ACTIVE) != settings.active_low
        return FakeRequest(self, list(config))


class FakeRequest:
    def __init__(self, chip: FakeChip, lines: list[int]) -> None:
        self.chip = chip
        self.offsets = lines
        self.released = False

    def set_value(self, line: int, value: Value) -> None:
        assert not self.released and line in self.offsets
        s = self.chip.settings[line]
        if s.direction != Direction.OUTPUT:
            raise OSError(errno.EPERM, "Operation not permitted")
        self.chip.level[line] = (value == Value.ACTIVE) != s.active_low

    def get_value(self, line: int) -> Value:
        assert not self.released and line in self.offsets
        active = self.chip.physical(line) != self.chip.settings[line].active_low
        return Value.ACTIVE if active else Value.INACTIVE

    def release(self) -> None:
        self.released = True
        for line in self.offsets:
            self.chip.owner.pop(line, None)


class FakeRpiGpio:
    """The parts of RPi.GPIO the backend uses, with its errors for misuse."""

    BCM, BOARD = 11, 10
    OUT, IN = 0, 1
    HIGH, LOW = 1, 0
    PUD_OFF, PUD_DOWN, PUD_UP = 20, 21, 22

    def __init__(self) -> None:
        self.mode: int | None = None
        self.setups: dict[int, tuple[int, int]] = {}
        self.level: dict[int, int] = {}
        self.wires: dict[int, Callable[[], bool]] = {}
        self.cleaned: list[int] = []

    def setwarnings(self, on: bool) -> None:
        pass

    def setmode(self, mode: int) -> None:
        self.mode = mode

    def setup(self, pin: int, direction: int, initial: int = -1, pull_up_down: int = 20) -> None:
        if self.mode is None:
            raise RuntimeError("Please set pin numbering mode using GPIO.setmode(GPIO.BOARD) or GPIO.setmode(GPIO.BCM)")
        if not 0 <= pin <= 27:
            raise ValueError("The channel sent is invalid on a Raspberry Pi")
        self.setups[pin] = (direction, pull_up_down)
        if direction == self.OUT:
            self.level[pin] = initial if initial != -1 else self.LOW

    def output(self, pin: int, value: int) -> None:
        if self.setups.get(pin, (None,))[0] != self.OUT:
            raise RuntimeError("The GPIO channel has not been set up as an OUTPUT")
        self.level[pin] = value

    def input(self, pin: int) -> int:
        if pin not in self.setups:
            raise RuntimeError("You must setup() the GPIO channel first")
        if pin in self.wires:
            return int(self.wires[pin]())
        if pin in self.level:
            return self.level[pin]
        return int(self.setups[pin][1] == self.PUD_UP)

    def cleanup(self, pin: int | None = None) -> None:
        self.cleaned.append(pin)


class FakeAds1115Bus:
    """An I2C bus with one ADS1115: config/conversion registers, single-shot conversions.

    ``volts[channel]`` is the voltage at each input (a number or a callable); ``fail`` makes every
    transfer raise OSError (EREMOTEIO) as smbus2 does when a chip does not acknowledge.
    """

    def __init__(self, address: int = 0x48) -> None:
        self.address = address
        self.volts: dict[int, float | Callable[[], float]] = {0: 0.0, 1: 0.0, 2: 0.0, 3: 0.0}
        self.config = 0x8583  # power-on default
        self.conversion = 0
        self.fail = False
        self.transfers = 0

    def _check(self, address: int) -> None:
        self.transfers += 1
        if self.fail or address != self.address:
            raise OSError(errno.EREMOTEIO, "Remote I/O error")

    def write_i2c_block_data(self, address: int, register: int, data: list[int]) -> None:
        self._check(address)
        assert register == 0x01 and len(data) == 2
        config = data[0] << 8 | data[1]
        mux, pga = (config >> 12) & 0x7, (config >> 9) & 0x7
        assert mux >= 4, "single-ended inputs only"
        fsr = {0: 6.144, 1: 4.096, 2: 2.048, 3: 1.024, 4: 0.512}.get(pga, 0.256)
        v = self.volts[mux - 4]
        v = v() if callable(v) else v
        raw = max(-32768, min(32767, round(v / fsr * 32768)))
        self.conversion = raw & 0xFFFF
        self.config = config | 0x8000  # conversion done at once

    def read_i2c_block_data(self, address: int, register: int, length: int) -> list[int]:
        self._check(address)
        value = self.conversion if register == 0x00 else self.config
        return [value >> 8, value & 0xFF][:length]

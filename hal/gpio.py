"""Pin access. Backends: ``sim`` (in memory), and on a Raspberry Pi ``gpiod`` / ``rpigpio``.

A pin is addressed by ``(chip, line)``; ``active_low`` inverts the logical level so that the rest
of the code always speaks of "on" / "off".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from hal.section import REQUIRED, Key
from hal.types import HalError


@dataclass(frozen=True, slots=True)
class PinSpec:
    line: int
    chip: str = "gpiochip0"
    active_low: bool = False
    pull: str = "none"  # none | up | down  (inputs only)


class OutputPin(Protocol):
    def set(self, on: bool) -> None: ...
    def get(self) -> bool: ...
    def close(self) -> None: ...


class InputPin(Protocol):
    def read(self) -> bool: ...
    def close(self) -> None: ...


class PinFactory(Protocol):
    def output(self, spec: PinSpec, initial: bool = False) -> OutputPin: ...
    def input(self, spec: PinSpec) -> InputPin: ...


class SimPin:
    """An in-memory pin. Inputs can be driven by tests with :meth:`drive`."""

    def __init__(self, spec: PinSpec, initial: bool = False) -> None:
        self.spec = spec
        self.level = initial
        self.stuck: bool | None = None  # a stuck input (a welded aux contact, a broken switch) reads this

    def set(self, on: bool) -> None:
        self.level = on

    def get(self) -> bool:
        return self.level if self.stuck is None else self.stuck

    def read(self) -> bool:
        return self.get()

    def drive(self, on: bool) -> None:
        self.level = on

    def close(self) -> None:
        pass


class SimPinFactory:
    """Pin factory for simulated mode and tests; remembers every pin it made.

    An output and an input with the same chip and line are the same pin, so a feedback input can
    be "wired" to its output in a config (relay ``feedback = pin``): the simulated contactor then
    follows its coil until the API makes the input stuck (POST /api/gpio).
    """

    def __init__(self) -> None:
        self.pins: dict[tuple[str, int], SimPin] = {}

    def _pin(self, spec: PinSpec, initial: bool) -> SimPin:
        key = (spec.chip, spec.line)
        if key not in self.pins:
            self.pins[key] = SimPin(spec, initial)
        return self.pins[key]

    def output(self, spec: PinSpec, initial: bool = False) -> SimPin:
        return self._pin(spec, initial)

    def input(self, spec: PinSpec) -> SimPin:
        return self._pin(spec, False)


def _chip_path(chip: str) -> str:
    return chip if chip.startswith("/") else f"/dev/{chip}"


class GpiodPin:
    """One line requested through libgpiod v2. libgpiod applies ``active_low`` itself."""

    def __init__(self, request: Any, line: int, value_type: Any) -> None:
        self._request = request
        self._line = line
        self._value = value_type

    def set(self, on: bool) -> None:
        self._request.set_value(self._line, self._value.ACTIVE if on else self._value.INACTIVE)

    def get(self) -> bool:
        return self._request.get_value(self._line) == self._value.ACTIVE

    read = get

    def close(self) -> None:
        self._request.release()


class GpiodPinFactory:
    """Pins through the ``gpiod`` package (libgpiod v2 character device): every Raspberry Pi, Pi 5 included.

    ``gpiod_module`` is for tests (a module with gpiod's API); by default the real one is imported.
    """

    CONSUMER = "ocpp-station"

    def __init__(self, gpiod_module: Any = None) -> None:
        if gpiod_module is None:
            try:
                import gpiod as gpiod_module
            except ImportError as e:
                raise HalError(
                    "hardware.gpio = 'gpiod' needs the gpiod package (libgpiod v2): pip install 'ocpp-station[rpi]'"
                ) from e
        self.gpiod = gpiod_module
        self.line = gpiod_module.line

    def _request(self, spec: PinSpec, settings: Any, kind: str) -> Any:
        try:
            return self.gpiod.request_lines(
                _chip_path(spec.chip), consumer=self.CONSUMER, config={spec.line: settings}
            )
        except OSError as e:
            raise HalError(f"gpio {spec.chip} line {spec.line} ({kind}): cannot request it: {e}") from e

    def output(self, spec: PinSpec, initial: bool = False) -> GpiodPin:
        line = self.line
        settings = self.gpiod.LineSettings(
            direction=line.Direction.OUTPUT,
            active_low=spec.active_low,
            output_value=line.Value.ACTIVE if initial else line.Value.INACTIVE,
        )
        return GpiodPin(self._request(spec, settings, "output"), spec.line, line.Value)

    def input(self, spec: PinSpec) -> GpiodPin:
        line = self.line
        bias = {"up": line.Bias.PULL_UP, "down": line.Bias.PULL_DOWN, "none": line.Bias.DISABLED}[spec.pull]
        settings = self.gpiod.LineSettings(direction=line.Direction.INPUT, active_low=spec.active_low, bias=bias)
        return GpiodPin(self._request(spec, settings, "input"), spec.line, line.Value)


class RpiGpioPin:
    """One pin through RPi.GPIO (BCM numbering); ``active_low`` is applied here."""

    def __init__(self, gpio: Any, spec: PinSpec) -> None:
        self._gpio = gpio
        self.spec = spec

    def set(self, on: bool) -> None:
        self._gpio.output(self.spec.line, self._gpio.HIGH if on != self.spec.active_low else self._gpio.LOW)

    def get(self) -> bool:
        return bool(self._gpio.input(self.spec.line)) != self.spec.active_low

    read = get

    def close(self) -> None:
        self._gpio.cleanup(self.spec.line)


class RpiGpioPinFactory:
    """Pins through RPi.GPIO, for Raspberry Pi models before the Pi 5 (``chip`` is ignored: BCM numbers)."""

    def __init__(self, gpio_module: Any = None) -> None:
        if gpio_module is None:
            try:
                import RPi.GPIO as gpio_module  # type: ignore[no-redef]
            except (ImportError, RuntimeError) as e:
                raise HalError(
                    f"hardware.gpio = 'rpigpio' needs RPi.GPIO on a Raspberry Pi 1-4 ({e}); on a Pi 5 use 'gpiod'"
                ) from e
        self.gpio = gpio_module
        self.gpio.setwarnings(False)
        self.gpio.setmode(self.gpio.BCM)

    def output(self, spec: PinSpec, initial: bool = False) -> RpiGpioPin:
        g = self.gpio
        try:
            g.setup(spec.line, g.OUT, initial=g.HIGH if initial != spec.active_low else g.LOW)
        except (RuntimeError, ValueError) as e:
            raise HalError(f"gpio {spec.line} (output): {e}") from e
        return RpiGpioPin(g, spec)

    def input(self, spec: PinSpec) -> RpiGpioPin:
        g = self.gpio
        pud = {"up": g.PUD_UP, "down": g.PUD_DOWN, "none": g.PUD_OFF}[spec.pull]
        try:
            g.setup(spec.line, g.IN, pull_up_down=pud)
        except (RuntimeError, ValueError) as e:
            raise HalError(f"gpio {spec.line} (input): {e}") from e
        return RpiGpioPin(g, spec)


GPIO_BACKENDS = ("sim", "gpiod", "rpigpio")


def pin_factory(name: str) -> PinFactory:
    """Return the pin factory a config names: ``sim``, ``gpiod`` or ``rpigpio``."""
    if name == "sim":
        return SimPinFactory()
    if name == "gpiod":
        return GpiodPinFactory()
    if name == "rpigpio":
        return RpiGpioPinFactory()
    raise ValueError(f"unknown gpio backend {name!r} (known: {', '.join(GPIO_BACKENDS)})")


def pin_keys(prefix: str, required: bool = True, doc: str = "") -> dict[str, Key]:
    """The config keys of one pin: ``<prefix>`` (line number), ``<prefix>_chip``, ``_active_low``, ``_pull``."""
    return {
        prefix: Key(int, REQUIRED if required else -1, doc=doc, min=0 if required else -1, max=511),
        f"{prefix}_chip": Key(str, "gpiochip0"),
        f"{prefix}_active_low": Key(bool, False),
        f"{prefix}_pull": Key(str, "none", choices=("none", "up", "down")),
    }


def pin_spec(values: dict[str, Any], prefix: str) -> PinSpec | None:
    """The :class:`PinSpec` for keys made by :func:`pin_keys`; ``None`` when the line is -1 (not fitted)."""
    line = values[prefix]
    if line < 0:
        return None
    return PinSpec(
        line=line,
        chip=values[f"{prefix}_chip"],
        active_low=values[f"{prefix}_active_low"],
        pull=values[f"{prefix}_pull"],
    )

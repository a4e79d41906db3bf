"""Pin access. Backends: ``sim`` (in memory), and on a Raspberry Pi ``gpiod`` / ``rpigpio``.

A pin is addressed by ``(chip, line)``; ``active_low`` inverts the logical level so that the rest
of the code always speaks of "on" / "off".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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

    def set(self, on: bool) -> None:
        self.level = on

    def get(self) -> bool:
        return self.level

    def read(self) -> bool:
        return self.level

    def drive(self, on: bool) -> None:
        self.level = on

    def close(self) -> None:
        pass


class SimPinFactory:
    """Pin factory for simulated mode and tests; remembers every pin it made."""

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


def pin_factory(name: str) -> PinFactory:
    """Return the pin factory a config names: ``sim``, ``gpiod`` or ``rpigpio``."""
    if name == "sim":
        return SimPinFactory()
    raise ValueError(f"unknown gpio backend {name!r} (known: sim)")

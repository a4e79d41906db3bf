"""Builds the devices of each EVSE from the ``[[evse]]`` sections of the station config.

Every device section has a ``kind`` (the backend name). ``sim`` devices of one EVSE share a
:class:`~hal.sim.SimPlant` (simulated EV, pilot, relay, meter, reader), so a fully simulated EVSE
behaves like a real one with a car attached. New backends register a builder in ``BUILDERS``.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hal.lock import ConnectorLock, NoLock
from hal.meter import EnergyMeter
from hal.pilot import ControlPilot
from hal.relay import Relay
from hal.rfid import RfidReader
from hal.section import Key, read_section
from hal.sim import SimPlant
from hal.types import Fault, FaultCallback, HalError, Listeners

log = logging.getLogger("hal")


@dataclass
class EvseHardware:
    """The devices of one EVSE. ``plant`` is set when any device is simulated."""

    relay: Relay
    lock: ConnectorLock
    pilot: ControlPilot
    meter: EnergyMeter
    reader: RfidReader | None
    plant: SimPlant | None = None
    faults: Listeners = field(default_factory=Listeners)
    closers: list[Callable[[], Any]] = field(default_factory=list)
    active_faults: dict[str, str] = field(default_factory=dict)  # error code -> info, as last reported

    def __post_init__(self) -> None:
        self.faults.add(self._track)

    def _track(self, fault: Fault) -> None:
        if fault.active:
            self.active_faults[fault.error_code] = fault.info
        else:
            self.active_faults.pop(fault.error_code, None)

    def on_fault(self, cb: FaultCallback) -> None:
        self.faults.add(cb)

    async def start(self) -> None:
        """Start every device. One that cannot start is reported as a fault, not as a crash:
        the station still comes up and tells the CSMS (e.g. Faulted, ReaderFailure)."""
        for name, dev in (("reader", self.reader), ("pilot", self.pilot), ("relay", self.relay), ("lock", self.lock)):
            start = getattr(dev, "start", None)
            if start is None:
                continue
            try:
                await start()
            except HalError as e:
                log.error("%s: %s", name, e)
                self.faults.emit(Fault(e.error_code, True, f"{name}: {e}"))

    async def close(self) -> None:
        """Stop every device (pilot to F, relay open, lock motor off); errors are logged, not raised."""
        for name, dev in (("reader", self.reader), ("meter", self.meter), ("pilot", self.pilot),
                          ("relay", self.relay), ("lock", self.lock)):
            stop = getattr(dev, "close" if name == "meter" else "stop", None)
            if stop is None:
                continue
            try:
                await stop()
            except HalError as e:
                log.error("%s: %s", name, e)
        for c in self.closers:
            c()


@dataclass
class BuildContext:
    """What a device builder may need besides its own section."""

    evse_id: int
    plant: SimPlant
    gpio: Any = None  # a hal.gpio.PinFactory, made on first use
    gpio_backend: str = "sim"
    extra: dict[str, Any] = field(default_factory=dict)

    def pins(self) -> Any:
        """The pin factory of the configured GPIO backend, one for all EVSEs of the station."""
        if self.gpio is None:
            from hal.gpio import pin_factory

            self.gpio = self.extra.get("pins")
            if self.gpio is None:
                self.gpio = self.extra["pins"] = pin_factory(self.gpio_backend)
        return self.gpio


Builder = Callable[[dict[str, Any], BuildContext], Any]

# device kind -> backend name -> builder(section, context)
BUILDERS: dict[str, dict[str, Builder]] = {
    "relay": {"sim": lambda s, c: c.plant.relay},
    "lock": {"sim": lambda s, c: c.plant.lock, "none": lambda s, c: NoLock()},
    "pilot": {"sim": lambda s, c: c.plant.pilot},
    "meter": {"sim": lambda s, c: c.plant.meter},
    "reader": {"sim": lambda s, c: c.plant.reader, "none": lambda s, c: None},
}

DEVICE_KINDS = tuple(BUILDERS)

# Real backends: (device, kind) -> module exposing ``KEYS`` (hal.section.Key per config key) and
# ``build(values, ctx)``. The modules import their hardware library (gpiod, smbus2, pyserial,
# pymodbus, pyscard) only when a device is built, so a laptop without them can still check configs.
BACKEND_MODULES: dict[tuple[str, str], str] = {
    ("relay", "gpio"): "hal.relay_gpio",
    ("lock", "gpio"): "hal.lock_gpio",
    ("pilot", "gpio"): "hal.pilot_gpio",
    ("meter", "modbus"): "hal.meter.modbus",
    ("meter", "ade7953"): "hal.meter.ade7953",
    ("reader", "pn532"): "hal.rfid.pn532",
    ("reader", "pcsc"): "hal.rfid.pcsc",
}
KEYS: dict[tuple[str, str], dict[str, Key]] = {}
CROSS_CHECKS: dict[tuple[str, str], Callable[[dict[str, Any], str], list[str]]] = {}


def _register() -> None:
    for (device, kind), modname in BACKEND_MODULES.items():
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:  # that backend is not part of this build
            if e.name != modname:
                raise
            continue
        KEYS[(device, kind)] = mod.KEYS
        if hasattr(mod, "problems"):  # checks between keys (e.g. transport rtu needs a port)
            CROSS_CHECKS[(device, kind)] = mod.problems
        BUILDERS[device][kind] = _checked(device, kind, mod.build)


def _checked(device: str, kind: str, build: Callable[[dict[str, Any], BuildContext], Any]) -> Builder:
    def builder(section: dict[str, Any], ctx: BuildContext) -> Any:
        values, problems = read_section(section, KEYS[(device, kind)], f"evse {ctx.evse_id}: {device}")
        if problems:
            raise ValueError("; ".join(problems))
        return build(values, ctx)

    return builder


def check_device(device: str, section: dict[str, Any], path: str) -> list[str]:
    """Problems of one device section (its kind and, for real backends, every key)."""
    kind = section.get("kind", "sim")
    if kind not in BUILDERS[device]:
        return [f"{path}.kind: {kind!r} is not a known backend (known: {', '.join(backends(device))})"]
    keys = KEYS.get((device, kind))
    if keys is None:
        extra = sorted(set(section) - {"kind"})
        return [f"{path}.{k}: unknown key (kind {kind!r} takes no other keys)" for k in extra]
    values, problems = read_section(section, keys, path)
    cross = CROSS_CHECKS.get((device, kind))
    if cross is not None and not problems:
        problems = cross(values, path)
    return problems


def backends(device: str) -> list[str]:
    return sorted(BUILDERS[device])


def build_evse(
    evse_id: int,
    devices: dict[str, dict[str, Any]],
    gpio_backend: str = "sim",
    clock: Callable[[], float] = time.monotonic,
    start_wh: float = 0.0,
    shared: dict[str, Any] | None = None,
    phases: int = 3,
) -> EvseHardware:
    """Build one EVSE. ``devices`` maps device kind -> its config section (with ``kind``);
    ``phases``: wired to the EVSE (a simulated EV draws on no more of them)."""
    plant = SimPlant(clock=clock, start_wh=start_wh, phases=phases)
    ctx = BuildContext(evse_id=evse_id, plant=plant, gpio_backend=gpio_backend, extra=shared if shared is not None else {})
    built: dict[str, Any] = {}
    for device in DEVICE_KINDS:
        section = devices.get(device, {"kind": "sim"})
        kind = section.get("kind", "sim")
        try:
            builder = BUILDERS[device][kind]
        except KeyError:
            raise ValueError(
                f"evse {evse_id}: {device}.kind = {kind!r} is not known (known: {', '.join(backends(device))})"
            ) from None
        try:
            built[device] = builder(section, ctx)
        except HalError as e:
            raise HalError(f"evse {evse_id}: {device} ({kind}): {e}", e.error_code) from e
    uses_sim = any(devices.get(d, {"kind": "sim"}).get("kind", "sim") == "sim" for d in DEVICE_KINDS)
    hw = EvseHardware(
        relay=built["relay"],
        lock=built["lock"],
        pilot=built["pilot"],
        meter=built["meter"],
        reader=built["reader"],
        plant=plant if uses_sim else None,
    )
    plant.on_fault(hw.faults.emit)
    if not uses_sim or built["relay"] is not plant.relay:
        on_fault = getattr(built["relay"], "on_fault", None)
        if on_fault is not None:
            on_fault(hw.faults.emit)
    for dev in (built["pilot"], built["lock"], built["meter"], built["reader"]):
        if dev is not None and hasattr(dev, "on_fault") and dev is not plant.relay:
            dev.on_fault(hw.faults.emit)
    return hw


_register()

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
from hal.types import CpState, Fault, FaultCallback, HalError, Listeners

log = logging.getLogger("hal")


@dataclass
class ConnectorHardware:
    """The devices of one connector of an EVSE: its control pilot and its lock."""

    pilot: ControlPilot
    lock: ConnectorLock


@dataclass
class EvseHardware:
    """The devices of one EVSE: one relay and meter (and reader) for the EVSE, a pilot and a lock
    per connector in ``connectors`` (numbered from 1). ``pilot`` and ``lock`` are connector 1's.
    ``plant`` is set when any device is simulated."""

    relay: Relay
    lock: ConnectorLock
    pilot: ControlPilot
    meter: EnergyMeter
    reader: RfidReader | None
    plant: SimPlant | None = None
    faults: Listeners = field(default_factory=Listeners)
    closers: list[Callable[[], Any]] = field(default_factory=list)
    active_faults: dict[str, str] = field(default_factory=dict)  # error code -> info, as last reported
    connectors: dict[int, ConnectorHardware] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.connectors:
            self.connectors = {1: ConnectorHardware(self.pilot, self.lock)}
        self.faults.add(self._track)

    def connector(self, connector_id: int) -> ConnectorHardware:
        """Connector ``connector_id`` (1 when the EVSE has one connector, whatever is asked)."""
        if len(self.connectors) == 1:
            return next(iter(self.connectors.values()))
        return self.connectors[connector_id]

    def on_cp_state(self, cb: Callable[[int, CpState], None]) -> None:
        """``cb(connector_id, state)`` for every CP state change of every connector's pilot."""
        for n, ch in self.connectors.items():
            ch.pilot.on_state(lambda state, n=n: cb(n, state))

    def _devices(self) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = [("reader", self.reader)]
        many = len(self.connectors) > 1
        out += [(f"connector {n} pilot" if many else "pilot", ch.pilot) for n, ch in self.connectors.items()]
        out.append(("relay", self.relay))
        out += [(f"connector {n} lock" if many else "lock", ch.lock) for n, ch in self.connectors.items()]
        return out

    def _track(self, fault: Fault) -> None:
        if fault.active:
            self.active_faults[fault.error_code] = fault.info
        else:
            self.active_faults.pop(fault.error_code, None)

    def on_fault(self, cb: FaultCallback) -> None:
        self.faults.add(cb)

    def switch_phases(self, phases: int | None) -> bool:
        """Feed ``phases`` phases (a charging limit's numberPhases; None: all that are wired).
        Only the simulated plant can switch today (no phase-switching contactor device yet): False
        when this EVSE cannot, and it then feeds every wired phase."""
        if self.plant is None:
            return False
        self.plant.switch_phases(phases)
        return True

    async def start(self) -> None:
        """Start every device. One that cannot start is reported as a fault, not as a crash:
        the station still comes up and tells the CSMS (e.g. Faulted, ReaderFailure)."""
        for name, dev in self._devices():
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
        for name, dev in [*self._devices(), ("meter", self.meter)]:
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
    connector_id: int = 1  # the connector a pilot or lock is built for
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
    "lock": {"sim": lambda s, c: c.plant.outlet(c.connector_id).lock, "none": lambda s, c: NoLock()},
    "pilot": {"sim": lambda s, c: c.plant.outlet(c.connector_id).pilot},
    "meter": {"sim": lambda s, c: c.plant.meter},
    "reader": {"sim": lambda s, c: c.plant.reader, "none": lambda s, c: None},
}

DEVICE_KINDS = tuple(BUILDERS)
CONNECTOR_DEVICES = ("pilot", "lock")  # one per connector; the others one per EVSE

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
    connectors: list[dict[str, dict[str, Any]]] | None = None,
) -> EvseHardware:
    """Build one EVSE. ``devices`` maps device kind -> its config section (with ``kind``);
    ``phases``: wired to the EVSE (a simulated EV draws on no more of them). ``connectors``: one
    dict per connector (numbered from 1) with its own ``pilot`` and ``lock`` sections; a connector
    that names neither uses the EVSE's (``devices``). Without it the EVSE has one connector."""
    per_connector = connectors or [{}]
    plant = SimPlant(clock=clock, start_wh=start_wh, phases=phases, connectors=len(per_connector))
    ctx = BuildContext(evse_id=evse_id, plant=plant, gpio_backend=gpio_backend, extra=shared if shared is not None else {})

    def build(device: str, section: dict[str, Any], where: str) -> Any:
        kind = section.get("kind", "sim")
        try:
            builder = BUILDERS[device][kind]
        except KeyError:
            raise ValueError(
                f"evse {evse_id}: {where}{device}.kind = {kind!r} is not known (known: {', '.join(backends(device))})"
            ) from None
        try:
            return builder(section, ctx)
        except HalError as e:
            raise HalError(f"evse {evse_id}: {where}{device} ({kind}): {e}", e.error_code) from e

    built: dict[str, Any] = {}
    sections: list[dict[str, Any]] = []
    for device in DEVICE_KINDS:
        if device in CONNECTOR_DEVICES:
            continue
        section = devices.get(device, {"kind": "sim"})
        sections.append(section)
        built[device] = build(device, section, "")
    outlets: dict[int, ConnectorHardware] = {}
    for n, own in enumerate(per_connector, start=1):
        ctx.connector_id = n
        where = f"connector {n}: " if len(per_connector) > 1 else ""
        made = {}
        for device in CONNECTOR_DEVICES:
            section = own.get(device) or devices.get(device, {"kind": "sim"})
            sections.append(section)
            made[device] = build(device, section, where)
        outlets[n] = ConnectorHardware(pilot=made["pilot"], lock=made["lock"])
    ctx.connector_id = 1
    uses_sim = any(sec.get("kind", "sim") == "sim" for sec in sections)
    hw = EvseHardware(
        relay=built["relay"],
        lock=outlets[1].lock,
        pilot=outlets[1].pilot,
        meter=built["meter"],
        reader=built["reader"],
        plant=plant if uses_sim else None,
        connectors=outlets,
    )
    plant.on_fault(hw.faults.emit)
    if not uses_sim or built["relay"] is not plant.relay:
        on_fault = getattr(built["relay"], "on_fault", None)
        if on_fault is not None:
            on_fault(hw.faults.emit)
    for dev in (built["meter"], built["reader"]):
        if dev is not None and hasattr(dev, "on_fault") and dev is not plant.relay:
            dev.on_fault(hw.faults.emit)
    many = len(outlets) > 1
    for n, ch in outlets.items():
        for dev in (ch.pilot, ch.lock):
            if hasattr(dev, "on_fault"):
                dev.on_fault(_tagged(hw.faults.emit, n) if many else hw.faults.emit)
    return hw


def _tagged(emit: Callable[[Fault], None], connector_id: int) -> FaultCallback:
    """Fault reports of one connector's devices carry its number."""

    def cb(fault: Fault) -> None:
        emit(Fault(fault.error_code, fault.active, fault.info, connector_id))

    return cb


_register()

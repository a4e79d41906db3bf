"""The simulated plant of one EVSE: per connector an EV on a cable, its pilot and lock; the relay
and the meter of the EVSE.

The simulated EV draws what it is offered (up to its own maximum, on the phases both it and the
EVSE have, and no more than the EVSE switched to for a charging limit's numberPhases) while the relay is closed, the pilot offers at least 6 A and it is not suspended, so
energy and power are realistic. Below 6 A nothing is offered (IEC 61851-1): the EV stays in B.
Energy is integrated from a monotonic clock function, so tests can use a fake clock.

A real meter's register never runs backwards, across power cuts too. The simulated one keeps its
energy in memory, so whoever runs it sets ``SimPlant.on_reading``: it is called with the energy
of every reading before the reading is returned (the station persists it there, before the value
can appear in any message), and a plant built again starts from the highest value kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hal.lock import SimLock
from hal.pilot import offers_energy
from hal.relay import SimRelay
from hal.rfid.sim import SimReader
from hal.types import CpCallback, CpState, Fault, FaultCallback, Listeners, MeterReading

NOMINAL_VOLTAGE = 230.0


class SimEv:
    """The car: plugged or not, its maximum current and phases, and whether it wants energy."""

    def __init__(self) -> None:
        self.plugged = False
        self.max_current_a = 32.0
        self.phases = 3
        self.suspended = False
        self.needs_ventilation = False  # asks for energy with state D instead of C


class SimPilot:
    """Pilot of a simulated connector: its CP state follows the simulated EV and the offered current."""

    def __init__(self, plant: SimPlant) -> None:
        self._plant = plant  # the EVSE (a SimPlant) of this pilot
        self.offered_a: float | None = None
        self.state = CpState.A
        self._listeners = Listeners()

    async def offer(self, amps: float | None) -> None:
        self._plant.settle()
        self.offered_a = amps
        self._plant.update()

    def on_state(self, cb: CpCallback) -> None:
        self._listeners.add(cb)

    def _set_state(self, state: CpState) -> None:
        if state != self.state:
            self.state = state
            self._listeners.emit(state)


class SimMeter:
    """Meter of a simulated EVSE: integrates the EV's power over the plant's clock."""

    def __init__(self, plant: SimPlant) -> None:
        self._plant = plant
        self.failing = False

    async def read(self) -> MeterReading:
        if self.failing:
            from hal.types import MeterError

            raise MeterError("simulated meter does not answer")
        return self._plant.reading()

    async def close(self) -> None:
        pass


class SimOutlet:
    """One connector of a simulated EVSE: the EV on its cable, its pilot and its lock."""

    def __init__(self, plant: SimPlant, connector_id: int) -> None:
        self.connector_id = connector_id
        self.ev = SimEv()
        self.lock = SimLock()
        self.pilot = SimPilot(plant)
        self.pilot_error: CpState | None = None  # E (short) or F: the pilot reads this whatever the EV does

    def current_a(self, relay_closed: bool) -> float:
        ev, offered = self.ev, self.pilot.offered_a
        if not (ev.plugged and relay_closed and offers_energy(offered) and not ev.suspended):
            return 0.0
        assert offered is not None
        return min(offered, ev.max_current_a)

    def update(self) -> None:
        ev, pilot = self.ev, self.pilot
        if self.pilot_error is not None:
            pilot._set_state(self.pilot_error)
        elif not ev.plugged:
            pilot._set_state(CpState.A)
        elif ev.suspended or not offers_energy(pilot.offered_a):
            pilot._set_state(CpState.B)
        else:
            pilot._set_state(CpState.D if ev.needs_ventilation else CpState.C)


class SimPlant:
    """``ev``, ``pilot``, ``lock`` and ``pilot_error`` are connector 1's; ``outlets`` has them all."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, start_wh: float = 0.0, phases: int = 3,
                 connectors: int = 1) -> None:
        self.clock = clock
        self.phases = phases  # wired to the EVSE: a single-phase EVSE feeds one phase whatever the EV has
        # a phase-switching EVSE feeds fewer phases than it is wired for when a charging limit says
        # so (numberPhases): None feeds every wired phase
        self.switched_phases: int | None = None
        self.outlets: dict[int, SimOutlet] = {n: SimOutlet(self, n) for n in range(1, max(1, connectors) + 1)}
        self.relay = SimRelay()
        self.meter = SimMeter(self)
        self.reader = SimReader()
        self.energy_wh = start_wh
        # called with the energy of each reading before it is returned (persist it: never backwards)
        self.on_reading: Callable[[float], None] | None = None
        self._last = clock()
        self._faults = Listeners()
        self.relay.on_fault(self._faults.emit)
        self._relay_set = self.relay.set
        self.relay.set = self._relay_and_update  # type: ignore[method-assign]

    def outlet(self, connector_id: int = 1) -> SimOutlet:
        if connector_id not in self.outlets:
            self.outlets[connector_id] = SimOutlet(self, connector_id)
        return self.outlets[connector_id]

    @property
    def ev(self) -> SimEv:
        return self.outlets[1].ev

    @property
    def pilot(self) -> SimPilot:
        return self.outlets[1].pilot

    @property
    def lock(self) -> SimLock:
        return self.outlets[1].lock

    @property
    def pilot_error(self) -> CpState | None:
        return self.outlets[1].pilot_error

    async def _relay_and_update(self, closed: bool) -> None:
        self.settle()
        await self._relay_set(closed)
        self.update()

    # -- physics -----------------------------------------------------------------------------
    def current_a(self) -> float:
        """Current per phase drawn through the EVSE (by whichever connector's EV takes it)."""
        return sum(o.current_a(self.relay.closed) for o in self.outlets.values())

    def _phases_of(self, outlet: SimOutlet) -> int:
        return max(1, min(self.phases, self.switched_phases or self.phases, outlet.ev.phases))

    def switch_phases(self, phases: int | None) -> None:
        """Feed ``phases`` phases (1-3; None: every wired one) from now on; the EV draws on them."""
        self.settle()
        self.switched_phases = None if phases is None else max(1, min(3, int(phases)))

    @property
    def active_phases(self) -> int:
        """Phases energy flows on: those the EVSE is wired for and the EV's charger has."""
        drawing = [o for o in self.outlets.values() if o.current_a(self.relay.closed) > 0]
        return max((self._phases_of(o) for o in drawing), default=self._phases_of(self.outlets[1]))

    def power_w(self) -> float:
        return sum(o.current_a(self.relay.closed) * NOMINAL_VOLTAGE * self._phases_of(o) for o in self.outlets.values())

    def settle(self) -> None:
        """Add the energy drawn since the last call."""
        now = self.clock()
        self.energy_wh += self.power_w() * max(0.0, now - self._last) / 3600.0
        self._last = now

    def reading(self) -> MeterReading:
        self.settle()
        if self.on_reading is not None:
            self.on_reading(round(self.energy_wh, 3))
        currents = [0.0, 0.0, 0.0]
        for o in self.outlets.values():
            amps = o.current_a(self.relay.closed)
            for i in range(self._phases_of(o)):
                currents[i] += amps
        return MeterReading(
            energy_import_wh=round(self.energy_wh, 3),
            energy_export_wh=0.0,
            power_w=self.power_w(),
            current_a=tuple(currents),
            voltage_v=(NOMINAL_VOLTAGE,) * 3,
            frequency_hz=50.0,
        )

    def update(self) -> None:
        """Recompute the CP states from the EVs and the pilots."""
        for o in list(self.outlets.values()):
            o.update()

    # -- what a person (or the API) does -------------------------------------------------------
    def plug(self, max_current_a: float | None = None, phases: int | None = None, connector: int = 1) -> None:
        self.settle()
        ev = self.outlet(connector).ev
        if max_current_a is not None:
            ev.max_current_a = float(max_current_a)
        if phases is not None:
            ev.phases = int(phases)
        ev.plugged = True
        ev.suspended = False
        self.update()

    def unplug(self, connector: int = 1) -> None:
        self.settle()
        self.outlet(connector).ev.plugged = False
        self.update()

    def suspend(self, suspended: bool, connector: int = 1) -> None:
        self.settle()
        self.outlet(connector).ev.suspended = suspended
        self.update()

    def pilot_fault(self, state: CpState | None, connector: int = 1) -> None:
        """Force the CP state to E (e.g. a diode short) or F until called with ``None``."""
        self.outlet(connector).pilot_error = state
        self.update()

    def fault(self, error_code: str, active: bool, info: str = "", connector: int = 0) -> None:
        """A fault of connector ``connector`` (its pilot or lock); 0: of the whole EVSE."""
        self._faults.emit(Fault(error_code, active, info, connector))

    def on_fault(self, cb: FaultCallback) -> None:
        self._faults.add(cb)

"""GPIO backends (gpiod v2, RPi.GPIO) and the devices on them: relay with feedback, motor lock."""

from __future__ import annotations

import asyncio

import pytest

from hal.board import build_evse, check_device
from hal.gpio import GpiodPinFactory, PinSpec, RpiGpioPinFactory
from hal.lock_gpio import GpioMotorLock
from hal.relay_gpio import GpioRelay
from hal.types import HalError, RelayError
from tests.hal.gpio_fakes import FakeChip, FakeRpiGpio


# -- pin factories ------------------------------------------------------------------------------
def test_gpiod_output_active_low_drives_the_physical_line_inverted():
    chip = FakeChip()
    pins = GpiodPinFactory(chip.module())
    out = pins.output(PinSpec(17, active_low=True), initial=False)
    assert chip.level[17] is True  # inactive + active-low = physically high
    out.set(True)
    assert chip.level[17] is False and out.get() is True
    assert chip.owner[17] == "ocpp-station"


def test_gpiod_input_pull_and_active_low():
    chip = FakeChip()
    pins = GpiodPinFactory(chip.module())
    up = pins.input(PinSpec(5, pull="up"))
    inv = pins.input(PinSpec(6, pull="up", active_low=True))
    assert up.read() is True and inv.read() is False  # nothing connected: the pull-up wins
    chip.wire(6, lambda: False)  # a switch pulls it to ground
    assert inv.read() is True


def test_gpiod_errors_name_the_line():
    chip = FakeChip()
    pins = GpiodPinFactory(chip.module())
    pins.output(PinSpec(17))
    with pytest.raises(HalError, match="gpiochip0 line 17.*busy"):
        pins.output(PinSpec(17))
    with pytest.raises(HalError, match="gpiochip4 line 3"):
        pins.input(PinSpec(3, chip="gpiochip4"))


def test_gpiod_release_frees_the_line():
    chip = FakeChip()
    pins = GpiodPinFactory(chip.module())
    pins.output(PinSpec(22)).close()
    pins.output(PinSpec(22))  # may be requested again


def test_rpigpio_backend_uses_bcm_numbers_levels_and_pulls():
    g = FakeRpiGpio()
    pins = RpiGpioPinFactory(g)
    assert g.mode == g.BCM
    out = pins.output(PinSpec(17, active_low=True), initial=False)
    assert g.level[17] == g.HIGH
    out.set(True)
    assert g.level[17] == g.LOW and out.get()
    inp = pins.input(PinSpec(27, pull="down"))
    assert g.setups[27] == (g.IN, g.PUD_DOWN) and inp.read() is False
    with pytest.raises(HalError, match="gpio 40"):
        pins.output(PinSpec(40))
    out.close()
    assert g.cleaned == [17]


def test_rpigpio_missing_on_a_laptop_is_a_clear_error():
    with pytest.raises(HalError, match="RPi.GPIO"):
        RpiGpioPinFactory()


# -- relay -----------------------------------------------------------------------------------------
class Contactor:
    """Physics of a contactor on the fake chip: the aux contact follows the coil unless welded/dead."""

    def __init__(self, chip: FakeChip, coil: int, aux: int) -> None:
        self.chip, self.coil = chip, coil
        self.welded = False
        self.dead = False  # coil burnt: never pulls in
        chip.wire(aux, self.closed)

    def closed(self) -> bool:
        if self.welded:
            return True
        return self.chip.level[self.coil] and not self.dead


def relay_on_chip(**kw) -> tuple[GpioRelay, Contactor, list]:
    chip = FakeChip()
    pins = GpiodPinFactory(chip.module())
    relay = GpioRelay(pins.output(PinSpec(23)), pins.input(PinSpec(24, pull="down")), settle_s=0.01, **kw)
    faults: list = []
    relay.on_fault(faults.append)
    return relay, Contactor(chip, 23, 24), faults


async def test_relay_closes_and_opens_with_agreeing_feedback():
    relay, contactor, faults = relay_on_chip()
    await relay.set(True)
    assert relay.closed and contactor.closed()
    await relay.set(False)
    assert not relay.closed and not contactor.closed() and faults == []


async def test_relay_failed_to_close_raises_and_leaves_the_coil_off():
    relay, contactor, faults = relay_on_chip()
    contactor.dead = True
    with pytest.raises(RelayError, match="failed to close") as e:
        await relay.set(True)
    assert e.value.error_code == "PowerSwitchFailure"
    assert not relay.closed and contactor.chip.level[23] is False


async def test_relay_weld_on_open_is_reported_once_and_cleared_when_repaired():
    relay, contactor, faults = relay_on_chip()
    await relay.set(True)
    contactor.welded = True
    with pytest.raises(RelayError, match="welded"):
        await relay.set(False)
    with pytest.raises(RelayError):
        await relay.set(False)
    relay.check()
    assert [(f.error_code, f.active) for f in faults] == [("PowerSwitchFailure", True)]
    contactor.welded = False
    relay.check()
    assert [(f.error_code, f.active) for f in faults] == [("PowerSwitchFailure", True), ("PowerSwitchFailure", False)]


async def test_relay_watch_sees_a_weld_while_idle():
    relay, contactor, faults = relay_on_chip(watch_interval_s=0.02)
    await relay.start()
    try:
        contactor.welded = True
        for _ in range(100):
            if faults:
                break
            await asyncio.sleep(0.01)
        assert faults and faults[0].active and "welded" in faults[0].info
    finally:
        await relay.stop()
    assert contactor.chip.level[23] is False


async def test_relay_without_feedback_trusts_the_command():
    chip = FakeChip()
    relay = GpioRelay(GpiodPinFactory(chip.module()).output(PinSpec(23)))
    await relay.set(True)
    assert chip.level[23] and relay.closed


# -- lock -----------------------------------------------------------------------------------------
class LockMotor:
    """A lock actuator: each pulse on a direction moves it there, unless jammed."""

    def __init__(self, chip: FakeChip) -> None:
        self.chip = chip
        self.locked = False
        self.jammed = False
        self.moves_needed = 1  # pulses needed to reach the end position (sticky lock: 2)
        self._progress = 0
        self.both_driven = False
        chip.wire(26, lambda: self.locked)

    def tick(self) -> None:
        lk, ul = self.chip.level.get(5, False), self.chip.level.get(6, False)
        self.both_driven |= lk and ul
        if self.jammed or lk == ul:
            return
        if lk != self.locked:
            self._progress += 1
            if self._progress >= self.moves_needed:
                self.locked, self._progress = lk, 0


def lock_on_chip(retries=2) -> tuple[GpioMotorLock, LockMotor]:
    chip = FakeChip()
    pins = GpiodPinFactory(chip.module())
    motor = LockMotor(chip)
    lock = GpioMotorLock(
        pins.output(PinSpec(5)), pins.output(PinSpec(6)), pins.input(PinSpec(26)), pulse_s=0.01, retries=retries
    )
    original = lock._pulse

    async def pulse(out):  # the motor moves while the pulse is on
        out.set(True)
        motor.tick()
        out.set(False)
        await original(out)

    lock._pulse = pulse
    return lock, motor


async def test_lock_and_unlock_follow_the_feedback_switch():
    lock, motor = lock_on_chip()
    assert await lock.lock() and motor.locked and lock.locked
    assert await lock.unlock() and not motor.locked and not lock.locked
    assert not motor.both_driven


async def test_sticky_lock_succeeds_on_a_retry():
    lock, motor = lock_on_chip()
    motor.moves_needed = 2
    assert await lock.lock() and motor.locked
    assert lock.pulses == 2


async def test_jammed_lock_reports_failure_after_its_retries():
    lock, motor = lock_on_chip(retries=2)
    assert await lock.lock()
    motor.jammed = True
    assert await lock.unlock() is False
    assert lock.pulses == 1 + 3 and lock.locked  # the feedback still says locked


# -- config -------------------------------------------------------------------------------------
def test_check_device_names_the_bad_keys():
    problems = check_device("relay", {"kind": "gpio", "feedback": "x", "settle_ms": -5, "colour": 1}, "evse[0].relay")
    assert "evse[0].relay.pin: missing (required for this kind)" in problems
    assert any(p.startswith("evse[0].relay.feedback: must be a whole number") for p in problems)
    assert any(p.startswith("evse[0].relay.settle_ms: must be between") for p in problems)
    assert any(p.startswith("evse[0].relay.colour: unknown key") for p in problems)
    assert check_device("lock", {"kind": "sim", "pin": 3}, "evse[0].lock") == [
        "evse[0].lock.pin: unknown key (kind 'sim' takes no other keys)"
    ]


def test_build_evse_with_gpio_relay_and_lock_on_shared_pins():
    from hal.gpio import SimPinFactory

    shared = {"pins": SimPinFactory()}
    devices = {
        "relay": {"kind": "gpio", "pin": 23, "feedback": 24, "settle_ms": 0},
        "lock": {"kind": "gpio", "lock_pin": 5, "unlock_pin": 6, "feedback": 26},
    }
    hw = build_evse(1, devices, "sim", shared=shared)
    assert isinstance(hw.relay, GpioRelay) and isinstance(hw.lock, GpioMotorLock)
    assert set(shared["pins"].pins) >= {("gpiochip0", 23), ("gpiochip0", 24), ("gpiochip0", 5), ("gpiochip0", 26)}
    with pytest.raises(ValueError, match="unlock_pin: must differ"):
        build_evse(2, {"lock": {"kind": "gpio", "lock_pin": 5, "unlock_pin": 5}}, "sim", shared={})


def test_check_device_runs_a_backends_checks_between_keys():
    assert check_device("meter", {"kind": "modbus", "transport": "rtu", "model": "sdm630"}, "evse[0].meter") == [
        "evse[0].meter.port: missing (needed for transport rtu)"
    ]
    assert check_device("meter", {"kind": "modbus", "transport": "tcp", "model": "sdm630", "host": "10.0.0.5"},
                        "evse[0].meter") == []

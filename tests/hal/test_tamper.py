"""The tamper input (hal/tamper.py): an enclosure switch on a GPIO input, read through the real
gpiod backend on the fake chip, debounced, reported once per change."""

from __future__ import annotations

import asyncio

import pytest

from hal.gpio import GpiodPinFactory, SimPinFactory
from hal.section import read_section
from hal.tamper import KEYS, TamperInput, build_tamper
from tests.hal.gpio_fakes import FakeChip


def values(**section):
    v, problems = read_section(section, KEYS, "hardware")
    assert not problems, problems
    return v


def test_no_line_no_tamper_input():
    assert build_tamper(values(), SimPinFactory()) is None


@pytest.mark.virtual_time
async def test_an_open_enclosure_is_reported_once_debounced_and_closing_it_too():
    chip = FakeChip()
    door = {"open": False}
    chip.wire(5, lambda: door["open"])  # NC switch to GND with the pull-up: high when the door opens
    t = build_tamper(values(tamper=5, tamper_pull="up", tamper_interval_s=0.1), GpiodPinFactory(chip.module()))
    assert isinstance(t, TamperInput)
    seen: list[bool] = []
    t.on_change(seen.append)
    await t.start()
    assert chip.owner[5] == "ocpp-station" and chip.settings[5].bias.name == "PULL_UP"
    await asyncio.sleep(1)
    assert seen == [] and not t.active
    door["open"] = True  # a glitch of one reading is no tamper
    await asyncio.sleep(0.1)
    door["open"] = False
    await asyncio.sleep(1)
    assert seen == []
    door["open"] = True
    await asyncio.sleep(1)
    assert seen == [True] and t.active
    door["open"] = False
    await asyncio.sleep(1)
    assert seen == [True, False]
    await t.stop()
    assert 5 not in chip.owner  # the line is released


@pytest.mark.virtual_time
async def test_an_enclosure_open_at_start_is_reported_at_start():
    chip = FakeChip()
    chip.wire(7, lambda: False)  # active low: a switch that pulls to ground when opened
    t = build_tamper(values(tamper=7, tamper_active_low=True, tamper_interval_s=0.2), GpiodPinFactory(chip.module()))
    seen: list[bool] = []
    t.on_change(seen.append)
    await t.start()
    assert seen == [True] and t.active
    await t.stop()


@pytest.mark.virtual_time
async def test_a_read_error_is_logged_and_the_watch_goes_on(caplog):
    class Flaky:
        def __init__(self) -> None:
            self.n = 0

        def read(self) -> bool:
            self.n += 1
            if self.n in (3, 4, 5):
                raise OSError("gpio read failed")
            return self.n > 6

        def close(self) -> None:
            pass

    t = TamperInput(Flaky(), interval_s=0.1)
    seen: list[bool] = []
    t.on_change(seen.append)
    await t.start()
    await asyncio.sleep(2)
    assert seen == [True]
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "gpio read failed" in errors[0].getMessage()  # said once, not per reading
    await t.stop()

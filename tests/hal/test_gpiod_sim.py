"""The gpiod backend against the kernel's own GPIO simulator (gpio-sim), where the kernel has it.

gpio-sim makes a real GPIO chip from configfs; the backend then goes through libgpiod and the
kernel's character device exactly as on a Raspberry Pi. Needs root, configfs and the gpio-sim
driver (``modprobe gpio-sim``); skipped with the reason otherwise. The CI machine's kernel has no
configfs, so there this runs nowhere but on developer machines; tests/hal/test_gpio_devices.py
covers the backend against the gpiod package with a fake chip everywhere.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from hal.gpio import GpiodPinFactory, PinSpec

CONFIGFS = Path("/sys/kernel/config/gpio-sim")


@pytest.fixture
def sim_chip():
    if os.geteuid() != 0:
        pytest.skip("gpio-sim needs root")
    if not CONFIGFS.exists():
        with contextlib.suppress(OSError):  # no modprobe (containers): nothing to load
            subprocess.run(["modprobe", "gpio-sim"], capture_output=True, check=False)
    if not CONFIGFS.exists():
        pytest.skip("no gpio-sim here: the kernel has no configfs or no gpio-sim driver")
    dev = CONFIGFS / f"station-test-{os.getpid()}"
    bank = dev / "bank0"
    dev.mkdir()
    bank.mkdir()
    (bank / "num_lines").write_text("8")
    (bank / "label").write_text("station-test")
    (dev / "live").write_text("1")
    try:
        chip = (bank / "chip_name").read_text().strip()
        platform = Path("/sys/devices/platform") / (dev / "dev_name").read_text().strip() / chip
        yield chip, platform
    finally:
        (dev / "live").write_text("0")
        bank.rmdir()
        dev.rmdir()


def test_output_active_low_reaches_the_kernel_line(sim_chip):
    chip, platform = sim_chip
    pins = GpiodPinFactory()
    out = pins.output(PinSpec(3, chip=chip, active_low=True), initial=False)
    assert (platform / "sim_gpio3" / "value").read_text().strip() == "1"  # inactive, active-low: high
    out.set(True)
    assert (platform / "sim_gpio3" / "value").read_text().strip() == "0"
    out.close()


def test_input_reads_what_the_simulator_pulls(sim_chip):
    chip, platform = sim_chip
    pins = GpiodPinFactory()
    inp = pins.input(PinSpec(5, chip=chip, active_low=True))
    (platform / "sim_gpio5" / "pull").write_text("pull-down")
    time.sleep(0.01)
    assert inp.read() is True  # low level, active-low: on
    (platform / "sim_gpio5" / "pull").write_text("pull-up")
    time.sleep(0.01)
    assert inp.read() is False
    inp.close()

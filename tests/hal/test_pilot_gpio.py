"""Control pilot on sysfs PWM + ADS1115: duty cycles, CP state classification, debouncing, faults."""

from __future__ import annotations

import asyncio

import pytest

from hal.board import build_evse, check_device
from hal.pilot import Debouncer, classify_cp, duty_cycle_for_current
from hal.pilot_gpio import Ads1115, GpioPilot, SysfsPwm
from hal.types import CpState, HalError
from tests.hal.gpio_fakes import FakeAds1115Bus

SCALE, OFFSET = 24.0 / 3.3, -12.0


def adc_volts_for(cp_volts: float) -> float:
    return (cp_volts - OFFSET) / SCALE


def fake_sysfs(tmp_path, chip=0):
    """A pwmchip directory as the kernel shows it; export creates the channel's files."""
    d = tmp_path / f"pwmchip{chip}"
    d.mkdir(parents=True)
    (d / "npwm").write_text("2\n")
    return d


def export(chipdir, channel=0):
    ch = chipdir / f"pwm{channel}"
    ch.mkdir()
    for name in ("period", "duty_cycle", "enable"):
        (ch / name).write_text("0\n")
    return ch


@pytest.mark.parametrize(
    ("volts", "state"),
    [(12.0, "A"), (11.2, "A"), (9.0, "B"), (8.1, "B"), (6.0, "C"), (3.0, "D"), (0.0, "E"), (-12.0, "F"), (-11.0, "F")],
)
def test_classify_cp_levels_of_iec_61851(volts, state):
    assert classify_cp(volts) == CpState(state)


@pytest.mark.parametrize("volts", [-5.0, -20.0, 15.0])
def test_levels_outside_every_band_are_not_a_state(volts):
    assert classify_cp(volts) is None


def test_debouncer_needs_equal_readings_in_a_row():
    d = Debouncer(3)
    assert d.feed(CpState.B) is None and d.feed(CpState.B) is None
    assert d.feed(CpState.C) is None  # a different reading restarts the count
    assert d.feed(CpState.B) is None and d.feed(CpState.B) is None
    assert d.feed(None) is None  # invalid readings restart it too
    assert [d.feed(CpState.B) for _ in range(3)] == [None, None, CpState.B]
    assert d.state is CpState.B


def test_ads1115_single_shot_config_and_conversion():
    bus = FakeAds1115Bus()
    bus.volts[2] = 1.65
    adc = Ads1115(bus)
    assert adc.read_volts(2) == pytest.approx(1.65, abs=0.001)
    # start, AIN2 vs GND, +-4.096 V, single shot, 860 SPS, comparator off
    assert bus.config == 0x8000 | (0b110 << 12) | (0b001 << 9) | 0x0100 | (0b111 << 5) | 0b11
    bus.volts[0] = -0.2  # below ground: negative codes
    assert adc.read_volts(0) == pytest.approx(-0.2, abs=0.001)


def test_sysfs_pwm_exports_sets_1khz_and_duty(tmp_path):
    chipdir = fake_sysfs(tmp_path)
    pwm = SysfsPwm(str(tmp_path), 0, 0)
    with pytest.raises(HalError, match="cannot export channel 0"):  # the fake has no export: nothing appears
        (chipdir / "export").mkdir()  # writing to a directory fails like a kernel refusing
        pwm.open()
    (chipdir / "export").rmdir()
    ch = export(chipdir)
    pwm.open()
    assert (ch / "period").read_text() == "1000000\n" and (ch / "enable").read_text() == "1\n"
    pwm.set_duty(duty_cycle_for_current(16))
    assert (ch / "duty_cycle").read_text() == f"{round(1_000_000 * 16 / 0.6 / 100)}\n"
    inv = SysfsPwm(str(tmp_path), 0, 0, inverted=True)
    inv.set_duty(25.0)
    assert (ch / "duty_cycle").read_text() == "750000\n"


async def make_pilot(tmp_path, low_channel=-1, debounce=2):
    export(fake_sysfs(tmp_path))
    bus = FakeAds1115Bus()
    bus.volts[0] = adc_volts_for(12.0)
    bus.volts[1] = adc_volts_for(-12.0)
    pilot = GpioPilot(SysfsPwm(str(tmp_path), 0, 0), Ads1115(bus), 0, low_channel, SCALE, OFFSET, 0.005, debounce)
    states, faults = [], []
    pilot.on_state(states.append)
    pilot.on_fault(faults.append)
    return pilot, bus, states, faults


async def test_pilot_reports_plug_in_and_charging_request_after_debounce(tmp_path):
    pilot, bus, states, faults = await make_pilot(tmp_path)
    await pilot.offer(None)
    assert pilot.pwm.duty_percent == 100.0  # steady +12 V
    bus.volts[0] = adc_volts_for(9.0)
    await pilot.sample()
    assert states == []  # one reading is not enough
    await pilot.sample()
    assert states == [CpState.B] and pilot.state is CpState.B
    await pilot.offer(32)
    assert pilot.pwm.duty_percent == pytest.approx(32 / 0.6)
    bus.volts[0] = adc_volts_for(6.2)
    await pilot.sample()
    await pilot.sample()
    bus.volts[0] = adc_volts_for(3.1)  # ventilation requested
    await pilot.sample()
    await pilot.sample()
    assert states == [CpState.B, CpState.C, CpState.D] and faults == []


async def test_pilot_short_gives_state_e_and_unknown_levels_are_ignored(tmp_path):
    pilot, bus, states, faults = await make_pilot(tmp_path)
    bus.volts[0] = adc_volts_for(-5.0)  # between bands: noise, no state
    for _ in range(5):
        await pilot.sample()
    assert states == []
    bus.volts[0] = adc_volts_for(0.0)
    await pilot.sample()
    await pilot.sample()
    assert states == [CpState.E]


async def test_missing_diode_is_an_ev_communication_error_until_seen_again(tmp_path):
    pilot, bus, states, faults = await make_pilot(tmp_path, low_channel=1, debounce=1)
    await pilot.offer(16)
    bus.volts[0] = adc_volts_for(9.0)
    bus.volts[1] = adc_volts_for(-9.0)  # the negative half does not reach -12 V
    await pilot.sample()
    assert states == [CpState.B]
    assert [(f.error_code, f.active) for f in faults] == [("EVCommunicationError", True)]
    await pilot.sample()
    assert len(faults) == 1  # reported once
    bus.volts[1] = adc_volts_for(-12.0)
    await pilot.sample()
    assert [(f.error_code, f.active) for f in faults][-1] == ("EVCommunicationError", False)


async def test_adc_not_answering_is_one_internal_error_and_clears(tmp_path):
    pilot, bus, states, faults = await make_pilot(tmp_path)
    bus.fail = True
    await pilot.sample()
    await pilot.sample()
    assert [(f.error_code, f.active) for f in faults] == [("InternalError", True)]
    bus.fail = False
    await pilot.sample()
    assert [(f.error_code, f.active) for f in faults][-1] == ("InternalError", False)


async def test_start_samples_in_the_background_and_stop_sets_state_f(tmp_path):
    pilot, bus, states, faults = await make_pilot(tmp_path)
    await pilot.start()
    try:
        bus.volts[0] = adc_volts_for(9.0)
        for _ in range(200):
            if states:
                break
            await asyncio.sleep(0.005)
        assert states == [CpState.B]
    finally:
        await pilot.stop()
    assert pilot.pwm.duty_percent == 0.0  # steady -12 V: not available
    assert (tmp_path / "pwmchip0" / "pwm0" / "duty_cycle").read_text() == "0\n"


def test_pilot_config_keys_are_checked():
    problems = check_device("pilot", {"kind": "gpio", "adc_address": 0x50, "channel_high": 4}, "evse[0].pilot")
    assert any(p.startswith("evse[0].pilot.adc_address: must be between") for p in problems)
    assert any(p.startswith("evse[0].pilot.channel_high: must be between") for p in problems)


def test_build_pilot_shares_the_i2c_bus(tmp_path):
    bus = FakeAds1115Bus()
    import threading

    shared = {"i2c-1": (bus, threading.Lock())}
    hw1 = build_evse(1, {"pilot": {"kind": "gpio", "pwm_sysfs": str(tmp_path)}}, shared=shared)
    hw2 = build_evse(2, {"pilot": {"kind": "gpio", "pwm_sysfs": str(tmp_path), "pwm_channel": 1,
                                   "adc_address": 0x49}}, shared=shared)
    assert hw1.pilot.adc.bus is hw2.pilot.adc.bus is bus
    assert hw2.pilot.adc.address == 0x49 and hw2.pilot.pwm.dir.name == "pwm1"


@pytest.mark.parametrize("amps", [0.1, 1, 3, 5.99])
async def test_below_6_a_the_pwm_never_offers(tmp_path, amps):
    """IEC 61851-1: less than 6 A cannot be offered; the pilot must not round it up to the 10 %
    duty of 6 A (an EV would draw 6 A). It stops offering instead: 100 %, steady +12 V."""
    pilot, bus, states, faults = await make_pilot(tmp_path)
    await pilot.offer(amps)
    assert pilot.pwm.duty_percent == 100.0
    assert (tmp_path / "pwmchip0" / "pwm0" / "duty_cycle").read_text() == "1000000\n"
    assert duty_cycle_for_current(amps) == 100.0
    await pilot.offer(6)
    assert pilot.pwm.duty_percent == pytest.approx(10.0)


async def test_offers_are_carried_out_in_call_order(tmp_path):
    """Two offers in flight (a stop right after a start): the last one called is what stays."""
    import time

    pilot, *_ = await make_pilot(tmp_path)
    write = pilot.pwm.set_duty

    def slow_write(percent):  # the first write (the offer) takes longer than the second (the stop)
        if percent != 100.0:
            time.sleep(0.05)
        write(percent)

    pilot.pwm.set_duty = slow_write
    await asyncio.gather(pilot.offer(32), pilot.offer(None))
    assert pilot.pwm.duty_percent == 100.0 and pilot.offered_a is None

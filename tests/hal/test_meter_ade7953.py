"""ADE7953 energy meter (hal.meter.ade7953) against a fake I2C bus that behaves like the chip."""

from __future__ import annotations

import asyncio
import ctypes
import threading
import time

import pytest

from hal.board import BUILDERS, BuildContext, check_device
from hal.meter import ade7953
from hal.meter.ade7953 import Ade7953Meter
from hal.sim import SimPlant
from hal.types import MeterError

pytestmark = pytest.mark.timeout(30)

I2C_M_RD = 0x0001
CAL = {"wh_per_lsb": 0.01, "v_per_lsb": 1e-4, "a_per_lsb": 1e-5, "w_per_lsb": 0.1}


class FakeAde7953:
    """An smbus2-like bus with one ADE7953 on it, speaking the chip's I2C register protocol."""

    def __init__(self, address: int = 0x38) -> None:
        self.address = address
        self.regs: dict[int, int] = {0x004: 0x40}  # LCYCMODE reset value: RSTREAD set
        self.fail = 0  # next transfers that end in an I/O error
        self.hang = 0.0  # seconds the next transfer blocks
        self.transfers: list[tuple[str, int]] = []
        self.problems: list[str] = []  # protocol mistakes of the driver

    # chip side
    def set(self, register: int, value: int) -> None:
        self.regs[register] = value

    def accumulate(self, counts: int) -> None:
        """The chip integrates active energy into AENERGYA (24-bit signed, wraps)."""
        v = self.regs.get(0x31E, 0) + counts
        self.regs[0x31E] = ((v + (1 << 23)) % (1 << 24)) - (1 << 23)

    def _width(self, register: int) -> int:
        return register // 0x100 + 1

    def i2c_rdwr(self, *msgs) -> None:
        if self.hang:
            hang, self.hang = self.hang, 0.0
            time.sleep(hang)
        if self.fail:
            self.fail -= 1
            raise OSError(121, "Remote I/O error")
        if any(m.addr != self.address for m in msgs):
            raise OSError(121, "Remote I/O error")  # nobody acknowledges
        first = bytes(msgs[0])
        if msgs[0].flags & I2C_M_RD or len(first) < 2:
            self.problems.append(f"transfer must start with a 2-byte address write: {msgs!r}")
            raise OSError(5, "I/O error")
        register = (first[0] << 8) | first[1]
        width = self._width(register)
        if len(msgs) == 1:  # write: address + data
            data = first[2:]
            if len(data) != width:
                self.problems.append(f"write of {len(data)} bytes to 0x{register:03X} (width {width})")
            self.regs[register] = int.from_bytes(data, "big")
            self.transfers.append(("w", register))
            return
        rd = msgs[1]
        if len(msgs) != 2 or not rd.flags & I2C_M_RD:
            self.problems.append(f"read must be write+read: {msgs!r}")
            raise OSError(5, "I/O error")
        if rd.len != width:
            self.problems.append(f"read of {rd.len} bytes from 0x{register:03X} (width {width})")
        value = self.regs.get(register, 0) & ((1 << (8 * width)) - 1)  # two's complement on the wire
        ctypes.memmove(rd.buf, value.to_bytes(width, "big")[: rd.len], rd.len)
        self.transfers.append(("r", register))
        if register in (0x31E, 0x31F, 0x21E, 0x21F) and self.regs.get(0x004, 0) & 0x40:
            self.regs[register] = 0  # read-with-reset


def meter(chip: FakeAde7953, **kw) -> Ade7953Meter:
    return Ade7953Meter(chip, **{**CAL, "timeout_s": 1.0, **kw})


async def test_setup_writes_and_scaled_reading():
    chip = FakeAde7953()
    chip.set(0x31C, 2_301_000)  # VRMS -> 230.1 V
    chip.set(0x31A, 3_210_000)  # IRMSA -> 32.1 A
    chip.set(0x312, 73_600)  # AWATT -> 7360 W
    chip.set(0x10E, 4459)  # PERIOD -> 223000 / 4460 = 50.0 Hz
    chip.set(0x10A, round(0.98 * 32768))  # PFA
    chip.accumulate(12_345)  # 123.45 Wh
    m = meter(chip)
    r = await m.read()
    assert chip.problems == []
    assert ("w", 0x0FE) in chip.transfers and ("w", 0x120) in chip.transfers
    assert chip.regs[0x0FE] == 0xAD and chip.regs[0x120] == 0x30 and chip.regs[0x004] == 0x40
    assert r.voltage_v == (pytest.approx(230.1),)
    assert r.current_a == (pytest.approx(32.1),)
    assert r.power_w == pytest.approx(7360.0)
    assert r.frequency_hz == pytest.approx(50.0)
    assert r.power_factor == pytest.approx(0.98, abs=1e-4)
    assert r.energy_import_wh == pytest.approx(123.45)
    assert r.energy_export_wh == 0.0
    assert chip.regs[0x31E] == 0  # read with reset


async def test_energy_accumulates_and_never_goes_backwards():
    chip = FakeAde7953()
    m = meter(chip)
    last = -1.0
    total = 0
    for step in (100, 0, 250, 7, 0, 1000):
        chip.accumulate(step)
        total += step
        r = await m.read()
        assert r.energy_import_wh >= last
        last = r.energy_import_wh
    assert last == pytest.approx(total * 0.01)
    # the setup is done once
    assert chip.transfers.count(("w", 0x0FE)) == 1


async def test_negative_energy_counts_as_export_not_as_a_smaller_import():
    chip = FakeAde7953()
    m = meter(chip)
    chip.accumulate(500)
    r1 = await m.read()
    chip.accumulate(-200)
    chip.set(0x312, -20_000)
    r2 = await m.read()
    assert r2.energy_import_wh == pytest.approx(r1.energy_import_wh) == pytest.approx(5.0)
    assert r2.energy_export_wh == pytest.approx(2.0)
    assert r2.power_w == pytest.approx(-2000.0)


async def test_energy_read_is_counted_even_when_a_later_register_fails():
    chip = FakeAde7953()
    m = meter(chip, retries=0)
    await m.read()
    chip.accumulate(300)
    original = chip.i2c_rdwr

    def fail_after_energy(*msgs):
        original(*msgs)
        if chip.transfers[-1] == ("r", 0x31E):
            chip.fail = 1  # the next transfer (VRMS) fails
    chip.i2c_rdwr = fail_after_energy
    with pytest.raises(MeterError):
        await m.read()
    chip.i2c_rdwr = original
    r = await m.read()
    assert r.energy_import_wh == pytest.approx(3.0)


async def test_io_errors_are_retried_then_meter_error():
    chip = FakeAde7953()
    m = meter(chip, retries=2)
    await m.read()
    chip.fail = 2  # two failures: the third attempt works
    await m.read()
    chip.fail = 100
    with pytest.raises(MeterError, match=r"ADE7953.*0x31E.*3 attempts.*Remote I/O") as e:
        await m.read()
    assert e.value.error_code == "PowerMeterFailure"
    chip.fail = 0
    chip.regs[0x004] = 0x40
    r = await m.read()  # recovers (and sets the chip up again: it may have been reset)
    assert r.energy_import_wh == 0.0
    assert chip.transfers.count(("w", 0x0FE)) == 2


async def test_wrong_address_is_a_meter_error():
    chip = FakeAde7953(address=0x39)
    with pytest.raises(MeterError, match="0x38"):
        await meter(chip, retries=1).read()


async def test_chip_not_keeping_settings_is_a_meter_error():
    chip = FakeAde7953()
    original = chip.i2c_rdwr

    def ignore_lcycmode(*msgs):
        if len(msgs) == 1 and bytes(msgs[0])[:2] == b"\x00\x04":
            return
        original(*msgs)
    chip.i2c_rdwr = ignore_lcycmode
    chip.regs[0x004] = 0x00
    with pytest.raises(MeterError, match="LCYCMODE"):
        await meter(chip).read()


async def test_hung_bus_is_bounded():
    chip = FakeAde7953()
    chip.hang = 0.5
    m = meter(chip, timeout_s=0.2)
    t0 = time.monotonic()
    with pytest.raises(MeterError, match="did not finish"):
        await m.read()
    assert time.monotonic() - t0 < 0.5
    with pytest.raises(MeterError, match="not finished yet"):
        await m.read()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the stuck transfer finishes after 0.5 s
        try:
            r = await m.read()
            break
        except MeterError:
            await asyncio.sleep(0.1)
    else:
        pytest.fail("meter did not recover")
    assert r.energy_import_wh == 0.0


async def test_channel_b_reads_the_b_registers():
    chip = FakeAde7953()
    chip.set(0x31B, 100_000)
    chip.set(0x313, 5_000)
    chip.set(0x31F, 40)
    m = meter(chip, channel="b")
    r = await m.read()
    assert r.current_a == (pytest.approx(1.0),)
    assert r.power_w == pytest.approx(500.0)
    assert r.energy_import_wh == pytest.approx(0.4)
    assert ("r", 0x31F) in chip.transfers and ("r", 0x31E) not in chip.transfers


async def test_no_line_signal_gives_no_frequency():
    chip = FakeAde7953()
    chip.set(0x10E, 0xFFFF)
    assert (await meter(chip).read()).frequency_hz is None


async def test_concurrent_reads_take_turns():
    chip = FakeAde7953()
    m = meter(chip)
    chip.accumulate(1000)
    rs = await asyncio.gather(*(m.read() for _ in range(5)))
    assert max(r.energy_import_wh for r in rs) == pytest.approx(10.0)


def test_register_widths():
    assert ade7953.width(0x004) == 1 and ade7953.width(0x10E) == 2
    assert ade7953.width(0x21E) == 3 and ade7953.width(0x31E) == 4
    with pytest.raises(ValueError):
        ade7953.width(0x400)


def test_build_via_board_shares_one_bus_and_lock_per_bus_number():
    chip = FakeAde7953()
    lock = threading.Lock()
    shared = {"i2c-3": (chip, lock)}  # the bus another I2C device of the station opened
    ctx = BuildContext(evse_id=1, plant=SimPlant(), extra=shared)
    m = BUILDERS["meter"]["ade7953"]({"kind": "ade7953", "bus": 3, **CAL}, ctx)
    assert isinstance(m, Ade7953Meter)
    assert m.bus is chip and m.lock is lock and m.address == 0x38
    assert "i2c-3" in m.name


async def test_build_via_board_reads():
    chip = FakeAde7953()
    chip.set(0x31C, 2_300_000)
    ctx = BuildContext(evse_id=1, plant=SimPlant(), extra={"i2c-1": (chip, threading.Lock())})
    m = BUILDERS["meter"]["ade7953"]({"kind": "ade7953", **CAL}, ctx)
    assert (await m.read()).voltage_v == (pytest.approx(230.0),)
    await m.close()
    with pytest.raises(MeterError, match="closed"):
        await m.read()


def test_check_device_names_missing_calibration_and_bad_keys():
    p = check_device("meter", {"kind": "ade7953"}, "evse[0].meter")
    assert sorted(p) == sorted(f"evse[0].meter.{k}: missing (required for this kind)"
                               for k in ("wh_per_lsb", "v_per_lsb", "a_per_lsb", "w_per_lsb"))
    p = check_device("meter", {"kind": "ade7953", **CAL, "address": 0x80, "channel": "c"}, "m")
    assert any(x.startswith("m.address:") for x in p) and any(x.startswith("m.channel:") for x in p)
    assert check_device("meter", {"kind": "ade7953", **CAL, "wh_per_lsb": 1}, "m") == []

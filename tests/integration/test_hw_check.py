"""`station hw check --config`: every device opened and read through its real backend, nothing switched."""

from __future__ import annotations

import asyncio
import sys

from hal.meter.registers import MODELS
from tests.hal.modbus_peer import MeterImage, MeterServer
from tests.hal.pn532_peer import Card, FakePn532
from tests.integration.test_hardware_e2e import BOARD, UID, VALUES, tcp_meter


async def hw_check(tmp_path, board: str, *extra: str) -> tuple[int, str]:
    path = tmp_path / "board.toml"
    path.write_text(board)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "station", "hw", "check", "--config", str(path), *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode()


async def test_every_device_answers(tmp_path):
    meter = await MeterServer({1: MeterImage(MODELS["sdm630"], VALUES)}).start_tcp()
    pn532 = FakePn532()
    pn532.put(Card(bytes.fromhex(UID)))
    try:
        rc, out = await hw_check(tmp_path, BOARD.format(meter=tcp_meter(meter), reader=pn532.path), "--wait-card", "5")
    finally:
        pn532.close()
        await meter.stop()
    assert rc == 0, out
    assert "meter  modbus   ok    1234.500 kWh import, 12.300 kWh export, 7360 W, 230.1/229.8/231.0 V" in out
    assert "relay  gpio     ok    open (aux contact agrees)" in out
    assert f"reader pn532    ok    card {UID} (ISO14443)" in out
    assert "all devices answer" in out
    assert not pn532.violations


async def test_a_device_that_does_not_answer_fails_the_check(tmp_path):
    meter = await MeterServer({1: MeterImage(MODELS["sdm630"], VALUES)}).start_tcp()
    meter.go_silent()
    pn532 = FakePn532()
    pn532.silent = True
    try:
        rc, out = await hw_check(tmp_path, BOARD.format(meter=tcp_meter(meter), reader=pn532.path))
    finally:
        pn532.close()
        await meter.stop()
    assert rc == 1, out
    assert "meter  modbus   FAIL  PowerMeterFailure:" in out
    assert "reader pn532    FAIL  ReaderFailure:" in out and pn532.path in out
    assert "Traceback" not in out


async def test_a_device_that_cannot_be_opened_is_named(tmp_path):
    board = BOARD.format(meter='transport = "rtu"\nport = "/dev/ttyNOPE-meter"', reader="/dev/ttyNOPE-pn532")
    board = board.replace('gpio = "sim"', 'gpio = "gpiod"').replace("feedback = 23", 'feedback = 24\npin_chip = "gpiochip99"')
    rc, out = await hw_check(tmp_path, board)
    assert rc == 3, out
    assert out.startswith("station: hardware: evse 1: relay (gpio): gpio gpiochip99 line 23")
    assert "Traceback" not in out


async def test_a_wrong_config_names_the_key(tmp_path):
    board = BOARD.format(meter='transport = "rtu"', reader="/dev/ttyX").replace('model = "sdm630"', 'model = "sdm999"')
    rc, out = await hw_check(tmp_path, board)
    assert rc == 2, out
    assert "evse[0].meter.model: must be one of" in out and "sdm999" in out

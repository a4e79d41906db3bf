"""`station run --config <board>.toml` with real device peers: what reaches the CSMS.

The station runs as its own process, not simulated: its meter is a Modbus TCP client talking to
a pymodbus server on 127.0.0.1, its card reader a PN532 driver talking to a fake PN532 on a
pseudo-terminal, its contactor and lock GPIO devices on the simulated pin backend (this machine
has no GPIO chip). The pilot is the simulated EV, driven through the local API.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from hal.meter.registers import MODELS
from tests.hal.modbus_peer import MeterImage, MeterServer, PtyPair
from tests.hal.pn532_peer import Card, FakePn532

pytestmark = pytest.mark.process  # hardware peers (threads, ptys, pcscd) and a real process: real time

ROOT = Path(__file__).resolve().parents[2]
UID = "04A2B3C4D5E680"
VALUES = {
    "energy_import_kwh": 1234.5,
    "energy_export_kwh": 12.3,
    "power_w": 7360.0,
    "current_l1_a": 10.7,
    "current_l2_a": 10.6,
    "current_l3_a": 10.7,
    "voltage_l1_v": 230.1,
    "voltage_l2_v": 229.8,
    "voltage_l3_v": 231.0,
    "frequency_hz": 50.01,
    "power_factor": 0.98,
}
SAMPLED = "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage"

BOARD = """
[station]
id = "HW-1"
csms_url = "ws://127.0.0.1:9/ocpp"

[hardware]
gpio = "sim"

[[evse]]
id = 1
max_current = 16
phases = 3

[evse.relay]
kind = "gpio"
pin = 23
feedback = 23          # simulated GPIO: the aux contact input follows the coil output
settle_ms = 20
watch_interval_s = 0.2

[evse.lock]
kind = "gpio"
lock_pin = 5
unlock_pin = 6
pulse_ms = 20

[evse.pilot]
kind = "sim"

[evse.meter]
kind = "modbus"
model = "sdm630"
{meter}
timeout_s = 0.3
retries = 1

[evse.reader]
kind = "pn532"
port = "{reader}"
poll_interval_s = 0.05
timeout_s = 0.3
"""


@pytest.fixture
async def peers():
    image = MeterImage(MODELS["sdm630"], VALUES)
    meter = await MeterServer({1: image}).start_tcp()
    pn532 = FakePn532()
    yield meter, image, pn532
    pn532.close()
    await meter.stop()


def tcp_meter(meter: MeterServer) -> str:
    return f'transport = "tcp"\nhost = "127.0.0.1"\ntcp_port = {meter.port}'


async def launch(tmp_path, csms, make_station, board: str, env: dict[str, str] | None = None):
    """``station run --config board.toml`` (real backends, not --sim); returns once Available."""
    path = tmp_path / "board.toml"
    path.write_text(board)
    sp = make_station(config=str(path), station_id="HW-1",
                      ocpp_config={"MeterValueSampleInterval": "1", "MeterValuesSampledData": SAMPLED})
    sp.sim = False
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})  # the station process inherits it (e.g. where pcscd listens)
    try:
        sp.start()
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    await csms.expect_status(1, "Available", timeout=15, since=0)
    await sp.wait_api()
    csms.mark()
    return sp


@pytest.fixture
async def hw_station(tmp_path, csms, make_station, peers):
    meter, image, pn532 = peers
    return await launch(tmp_path, csms, make_station, BOARD.format(meter=tcp_meter(meter), reader=pn532.path))


def value_of(meter_values: dict, measurand: str, phase: str | None = None) -> float:
    for mv in meter_values["meterValue"]:
        for s in mv["sampledValue"]:
            if s.get("measurand", "Energy.Active.Import.Register") == measurand and s.get("phase") == phase:
                return float(s["value"])
    raise AssertionError(f"no {measurand} {phase or ''} in {meter_values}")


async def start_with_card(csms, sp, pn532) -> dict:
    await sp.plug()
    await csms.expect_status(1, "Preparing")
    pn532.put(Card(bytes.fromhex(UID)))
    auth = await csms.expect("Authorize")
    assert auth == {"idTag": UID}
    start = await csms.expect("StartTransaction")
    await csms.expect_status(1, "Charging")
    return start


async def test_card_on_pn532_starts_and_stops_with_energy_from_the_modbus_meter(csms, hw_station, peers):
    meter, image, pn532 = peers
    sp = hw_station
    start = await start_with_card(csms, sp, pn532)
    assert start["idTag"] == UID and start["meterStart"] == 1234500
    mv = await csms.expect("MeterValues", timeout=10)
    assert value_of(mv, "Power.Active.Import") == pytest.approx(7360.0, abs=1)
    assert value_of(mv, "Energy.Active.Import.Register") == pytest.approx(1234500, abs=1)
    assert value_of(mv, "Voltage", "L2-N") == pytest.approx(229.8, abs=0.05)
    assert value_of(mv, "Current.Import", "L1") == pytest.approx(10.7, abs=0.05)
    # the card stays on the reader for many polls: it is not read again
    await csms.no_call("Authorize", 1.0)
    await csms.no_call("StopTransaction", 0.1)
    image.set({"energy_import_kwh": 1240.0})
    pn532.remove()
    await asyncio.sleep(0.3)
    pn532.put(Card(bytes.fromhex(UID)))  # presented again: ends the session
    stop = await csms.expect("StopTransaction")
    assert stop["meterStop"] == 1240000 and stop["reason"] == "Local"
    status = await sp.status()
    assert status["evses"][0]["transaction"] is None


async def test_dead_meter_is_reported_once_and_cleared(csms, hw_station, peers):
    meter, image, pn532 = peers
    sp = hw_station
    await start_with_card(csms, sp, pn532)
    meter.go_silent()
    sn = await csms.expect("StatusNotification", lambda p: p["errorCode"] == "PowerMeterFailure", timeout=15)
    assert sn["connectorId"] == 1 and sn["status"] == "Charging"  # not blocking: the transaction goes on
    await csms.no_call("StopTransaction", 1.5)
    meter.come_back()
    await csms.expect("StatusNotification", lambda p: p["errorCode"] == "NoError" and p["status"] == "Charging",
                      timeout=15)
    reported = [p for p in csms.calls("StatusNotification") if p["errorCode"] == "PowerMeterFailure"]
    assert len(reported) == 1


async def test_welded_contactor_faults_the_connector(csms, hw_station, peers):
    meter, image, pn532 = peers
    sp = hw_station
    await start_with_card(csms, sp, pn532)
    await sp.api("POST", "/api/gpio", {"line": 23, "stuck": True})  # aux contact stays closed
    pn532.remove()
    await asyncio.sleep(0.3)
    pn532.put(Card(bytes.fromhex(UID)))  # the driver ends the session: the contactor must open
    await csms.expect_status(1, "Faulted", error="PowerSwitchFailure", timeout=10)
    stop = await csms.expect("StopTransaction", since=0)
    assert stop["meterStop"] == 1234500
    await sp.api("POST", "/api/gpio", {"line": 23, "stuck": None})  # repaired: the contact opens
    sn = await csms.expect("StatusNotification", lambda p: p["errorCode"] == "NoError", timeout=10)
    assert sn["status"] != "Faulted"


async def test_contactor_that_does_not_close_faults_the_connector_and_ends_the_transaction(csms, hw_station, peers):
    meter, image, pn532 = peers
    sp = hw_station
    await sp.api("POST", "/api/gpio", {"line": 23, "stuck": False})  # the aux contact never closes
    await sp.plug()
    await csms.expect_status(1, "Preparing")
    pn532.put(Card(bytes.fromhex(UID)))
    await csms.expect_status(1, "Faulted", error="PowerSwitchFailure", timeout=10)
    status = await sp.status()
    assert status["evses"][0]["transaction"] is None
    # 1.6: the transaction starts once authorized and plugged; the contactor that then fails ends it
    stop = await csms.expect("StopTransaction", since=0)
    assert stop["reason"] == "Other" and stop["meterStop"] == 1234500


async def test_cp_short_state_e_faults_the_connector_and_ends_the_transaction(csms, hw_station, peers):
    meter, image, pn532 = peers
    sp = hw_station
    await start_with_card(csms, sp, pn532)
    await sp.api("POST", "/api/evses/1/sim", {"pilot_short": True})
    sn = await csms.expect_status(1, "Faulted", error="OtherError", timeout=10)
    assert "control pilot state E" in sn.get("info", "")
    stop = await csms.expect("StopTransaction", since=0)
    assert stop["reason"] == "Other"
    await sp.api("POST", "/api/evses/1/sim", {"pilot_short": False})
    sn = await csms.expect("StatusNotification", lambda p: p["errorCode"] == "NoError", timeout=10)
    assert sn["status"] in ("Preparing", "Finishing")


async def test_pn532_that_stops_answering_is_a_reader_failure(csms, hw_station, peers):
    meter, image, pn532 = peers
    sp = hw_station
    pn532.silent = True
    sn = await csms.expect("StatusNotification", lambda p: p["errorCode"] == "ReaderFailure", timeout=15)
    assert sn["connectorId"] == 1 and sn["status"] == "Available"
    pn532.silent = False
    await csms.expect("StatusNotification", lambda p: p["errorCode"] == "NoError", timeout=15)
    # and cards work again
    await sp.plug()
    pn532.put(Card(bytes.fromhex(UID)))
    await csms.expect("StartTransaction", timeout=10)


async def test_modbus_rtu_meter_on_a_serial_line(tmp_path, csms, make_station):
    """The same station with its meter on RS-485 (Modbus RTU over a pseudo-terminal pair)."""
    line = await PtyPair().start()
    image = MeterImage(MODELS["sdm630"], VALUES)
    meter = await MeterServer({3: image}).start_rtu(line.paths[0], baudrate=19200)
    pn532 = FakePn532()
    try:
        meter_keys = f'transport = "rtu"\nport = "{line.paths[1]}"\nbaudrate = 19200\nunit = 3'
        sp = await launch(tmp_path, csms, make_station, BOARD.format(meter=meter_keys, reader=pn532.path))
        start = await start_with_card(csms, sp, pn532)
        assert start["meterStart"] == 1234500
        mv = await csms.expect("MeterValues", timeout=10)
        assert value_of(mv, "Voltage", "L3-N") == pytest.approx(231.0, abs=0.05)
        assert {r[0] for r in meter.requests} == {3}  # only the configured Modbus id was asked
        line.cut = True  # the RS-485 cable is cut
        await csms.expect("StatusNotification", lambda p: p["errorCode"] == "PowerMeterFailure", timeout=15)
        line.cut = False
        await csms.expect("StatusNotification", lambda p: p["errorCode"] == "NoError", timeout=15)
    finally:
        pn532.close()
        await meter.stop()
        line.close()


@pytest.mark.slow
@pytest.mark.timeout(900)  # a fresh machine first installs pcscd, vpcd and pyscard (apt, pip build)
async def test_pcsc_reader_on_a_real_pcscd_starts_a_session(tmp_path, csms, make_station):
    """The station with a PC/SC reader: pcscd with the vpcd virtual reader, a virtual ISO 15693 tag."""
    from tests.hal.pcsc_stack import (
        PcscDaemon,
        VirtualCard,
        contactless_atr,
        ensure_installed,
        ensure_pyscard,
    )

    why = ensure_pyscard() or ensure_installed()
    if why:
        pytest.skip(why)
    daemon = PcscDaemon(tmp_path / "pcsc")
    daemon.start()
    image = MeterImage(MODELS["sdm630"], VALUES)
    meter = await MeterServer({1: image}).start_tcp()
    card = None
    try:
        board = BOARD.format(meter=tcp_meter(meter), reader="-")
        board = board[: board.index("[evse.reader]")] + '[evse.reader]\nkind = "pcsc"\nreader = "Virtual PCD"\n'
        sp = await launch(tmp_path, csms, make_station, board, env=daemon.env())  # the private pcscd socket
        await sp.plug()
        await csms.expect_status(1, "Preparing")
        card = VirtualCard(daemon.port, bytes.fromhex("E004010012345678"), contactless_atr(0x0B, 0x000C))
        assert (await csms.expect("Authorize", timeout=15)) == {"idTag": "E004010012345678"}
        start = await csms.expect("StartTransaction")
        assert start["meterStart"] == 1234500
        await csms.no_call("Authorize", 1.5)  # the tag stays on the reader: read once
        daemon.stop()  # PC/SC service gone: the reader is gone
        await csms.expect("StatusNotification", lambda p: p["errorCode"] == "ReaderFailure", timeout=15)
    finally:
        if card is not None:
            card.remove()
        daemon.stop()
        await meter.stop()


async def test_lock_that_does_not_move_gives_unlock_failed(tmp_path, csms, make_station, peers):
    """Motor lock with a position switch: the switch stays at "locked" -> UnlockConnector UnlockFailed."""
    meter, image, pn532 = peers
    board = BOARD.format(meter=tcp_meter(meter), reader=pn532.path)
    board = board.replace("pulse_ms = 20", "pulse_ms = 20\nfeedback = 26\nretries = 1")
    sp = await launch(tmp_path, csms, make_station, board)
    await sp.api("POST", "/api/gpio", {"line": 26, "stuck": True})  # the switch reports "locked", for ever
    await start_with_card(csms, sp, pn532)
    r = await csms.call("UnlockConnector", {"connectorId": 1})
    assert r == {"status": "UnlockFailed"}
    stop = await csms.expect("StopTransaction", since=0)
    assert stop["reason"] == "UnlockCommand"


async def test_rpi4_board_profile_as_shipped_runs_with_peers_on_its_ports(tmp_path, csms, make_station):
    """config/rpi4-1evse-modbus.toml itself, with only what this machine lacks swapped: the serial
    ports point at test peers (pymodbus RTU server at the profile's 9600 8N1 / id 1, fake PN532),
    the GPIO backend is simulated with the aux contact wired to the coil, and the pilot (PWM and
    I2C ADC, absent here) is the simulated EV."""
    text = (ROOT / "config" / "rpi4-1evse-modbus.toml").read_text()
    line = await PtyPair().start()
    meter = await MeterServer({1: MeterImage(MODELS["sdm630"], VALUES)}).start_rtu(line.paths[0], baudrate=9600)
    pn532 = FakePn532()
    try:
        swaps = [
            ('port = "/dev/ttyUSB0"', f'port = "{line.paths[1]}"'),
            ('port = "/dev/serial0"', f'port = "{pn532.path}"'),
            ('gpio = "gpiod"', 'gpio = "sim"'),
            ("feedback = 24", "feedback = 23"),
        ]
        for old, new in swaps:
            assert text.count(old) == 1, old
            text = text.replace(old, new)
        head, rest = text.split("[evse.pilot]", 1)
        text = head + '[evse.pilot]\nkind = "sim"\n\n' + rest[rest.index("[evse.meter]"):]
        text = text.replace("feedback = 26\n", "")  # the lock's switch: nothing drives it here
        sp = await launch(tmp_path, csms, make_station, text)
        start = await start_with_card(csms, sp, pn532)
        assert start["meterStart"] == 1234500
        mv = await csms.expect("MeterValues", timeout=10)
        assert value_of(mv, "Power.Active.Import") == pytest.approx(7360.0, abs=1)
    finally:
        pn532.close()
        await meter.stop()
        line.close()


async def test_devices_missing_at_start_are_reported_not_fatal(tmp_path, csms, make_station):
    """A PN532 port that does not exist and a meter nobody answers for: the station still comes up,
    reports ReaderFailure and PowerMeterFailure, and uses the meter once it answers."""
    from tests.hal.modbus_peer import free_port

    port = free_port()
    board = BOARD.format(meter=f'transport = "tcp"\nhost = "127.0.0.1"\ntcp_port = {port}', reader="/dev/ttyNOPE-pn532")
    path = tmp_path / "board.toml"
    path.write_text(board)
    sp = make_station(config=str(path), station_id="HW-1")
    sp.sim = False
    sp.start()
    sn = await csms.expect("StatusNotification", lambda p: p["connectorId"] == 1, timeout=15)
    assert sn["errorCode"] == "ReaderFailure" and sn["status"] == "Available"
    await csms.expect("StatusNotification", lambda p: p["errorCode"] == "PowerMeterFailure", timeout=15, since=0)
    assert "Traceback" not in sp.log()
    meter = await MeterServer({1: MeterImage(MODELS["sdm630"], VALUES)}).start_tcp(port)
    try:
        await csms.expect("StatusNotification", lambda p: p["errorCode"] != "PowerMeterFailure", timeout=15)
    finally:
        await meter.stop()

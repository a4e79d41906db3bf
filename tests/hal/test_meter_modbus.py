"""Modbus energy meters (hal.meter.modbus) against real pymodbus servers on 127.0.0.1 and ptys."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from hal.board import BUILDERS, BuildContext, build_evse, check_device
from hal.meter.modbus import ModbusMeter, decode, plan
from hal.meter.registers import MODELS, Reg
from hal.sim import SimPlant
from hal.types import MeterError
from tests.hal.modbus_peer import KNOWN, MeterImage, MeterServer, PtyPair

pytestmark = pytest.mark.timeout(30)

FAST = {"timeout_s": 0.3, "retries": 1}


@pytest.fixture
async def servers():
    made: list[MeterServer] = []

    async def start(images: dict[int, MeterImage], strict: bool = False, rtu_path: str | None = None) -> MeterServer:
        srv = MeterServer(images, strict=strict)
        made.append(srv)
        return await (srv.start_rtu(rtu_path) if rtu_path else srv.start_tcp())

    yield start
    for srv in made:
        await srv.stop()


@pytest.fixture
async def pty():
    pair = await PtyPair().start()
    yield pair
    pair.close()


@pytest.fixture
async def meters():
    made: list[ModbusMeter] = []
    yield made
    for m in made:
        await m.close()


def make(made: list, shared: dict, evse_id: int = 1, **section) -> ModbusMeter:
    """Build through the board's checked builder (key check + defaults), sharing ``shared``."""
    ctx = BuildContext(evse_id=evse_id, plant=SimPlant(), extra=shared)
    meter = BUILDERS["meter"]["modbus"]({"kind": "modbus", **section}, ctx)
    made.append(meter)
    return meter


def assert_known(model: str, reading, values: dict[str, float] = KNOWN) -> None:
    regs = MODELS[model].registers

    def tol(name: str) -> float:
        reg = regs[name]
        return reg.scale / 2 + 1e-9 if reg.encoding != "float32" else abs(values[name]) * 1e-6 + 1e-9

    assert reading.energy_import_wh == pytest.approx(values["energy_import_kwh"] * 1000,
                                                     abs=tol("energy_import_kwh") * 1000)
    if "energy_export_kwh" in regs:
        assert reading.energy_export_wh == pytest.approx(values["energy_export_kwh"] * 1000,
                                                         abs=tol("energy_export_kwh") * 1000)
    else:
        assert reading.energy_export_wh is None
    for name, got in (("power_w", reading.power_w), ("frequency_hz", reading.frequency_hz),
                      ("power_factor", reading.power_factor)):
        if name in regs:
            assert got == pytest.approx(values[name], abs=tol(name)), name
        else:
            assert got is None, name
    for kind, unit, got in (("current", "a", reading.current_a), ("voltage", "v", reading.voltage_v)):
        names = [f"{kind}_l{i}_{unit}" for i in (1, 2, 3) if f"{kind}_l{i}_{unit}" in regs]
        if not names:
            assert got is None
            continue
        assert got is not None and len(got) == len(names)
        for name, g in zip(names, got, strict=True):
            assert g == pytest.approx(values[name], abs=tol(name)), name


# -- register maps and decoding --------------------------------------------------------------------


def test_models_are_named_in_lower_case_and_have_import_energy():
    assert {"sdm630", "sdm120", "sdm72d", "abb-b23", "abb-b24", "em340"} <= set(MODELS)
    for name, m in MODELS.items():
        assert name == name.lower()
        assert "energy_import_kwh" in m.registers
        assert m.function in (0x03, 0x04)


def test_plan_groups_registers_into_few_requests():
    assert [(b.start, b.count) for b in plan(MODELS["sdm630"])] == [(0x0000, 76)]
    abb = plan(MODELS["abb-b23"])
    assert [(b.start, b.count) for b in abb] == [(0x5000, 8), (0x5B00, 0x5B3B - 0x5B00)]
    em = plan(MODELS["em340"])
    assert all(b.count <= 50 for b in em) and len(em) == 2
    for name, m in MODELS.items():  # every quantity is in exactly one block, inside it
        seen = [n for b in plan(m) for n in b.names]
        assert sorted(seen) == sorted(m.registers), name
        for b in plan(m):
            assert b.count <= m.max_count
            for n in b.names:
                r = m.registers[n]
                assert b.start <= r.address and r.address + r.count <= b.start + b.count


def test_decode_word_order_sign_and_sentinels():
    assert decode([0x0001, 0x0002], Reg(0, "int32", 1), "big") == 0x00010002
    assert decode([0x0002, 0x0001], Reg(0, "int32", 1), "little") == 0x00010002
    assert decode([0xFFFF, 0xFFFE], Reg(0, "int32", 0.01), "big") == pytest.approx(-0.02)
    assert decode([0xFFFF], Reg(0, "uint16", 0.01), "big", int_sentinels=True) is None
    assert decode([0x7FFF, 0xFFFF], Reg(0, "int32", 0.1), "big", int_sentinels=True) is None
    assert decode([0x7FC0, 0x0000], Reg(0), "big") is None  # float32 NaN
    assert decode([0x0000, 0x0000, 0x0001, 0xE240], Reg(0, "uint64", 0.01), "big") == pytest.approx(1234.56)


def test_import_works_without_pymodbus():
    code = "import sys; sys.modules['pymodbus'] = None; import hal.meter.modbus; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert out.stdout.strip() == "ok", out.stderr


# -- every model over TCP, some over RTU --------------------------------------------------------------


@pytest.mark.parametrize("model", sorted(MODELS))
async def test_every_model_reads_known_values_over_tcp(model, servers, meters):
    srv = await servers({7: MeterImage(MODELS[model])})
    meter = make(meters, {}, transport="tcp", model=model, unit=7, host="127.0.0.1", tcp_port=srv.port, **FAST)
    reading = await meter.read()
    assert_known(model, reading)
    # one request per planned block, with the model's function code
    assert len(srv.requests) == len(plan(MODELS[model]))
    assert {r[1] for r in srv.requests} == {MODELS[model].function}


@pytest.mark.parametrize("model", ["sdm630", "abb-b23", "em340", "sdm120"])
async def test_models_read_over_rtu_on_a_pty_pair(model, servers, meters, pty):
    await servers({3: MeterImage(MODELS[model])}, rtu_path=pty.paths[0])
    meter = make(meters, {}, transport="rtu", model=model, unit=3, port=pty.paths[1], baudrate=19200, **FAST)
    assert_known(model, await meter.read())
    assert_known(model, await meter.read())


async def test_reading_follows_changing_values(servers, meters):
    image = MeterImage(MODELS["abb-b23"])
    srv = await servers({1: image})
    meter = make(meters, {}, transport="tcp", model="abb-b23", host="127.0.0.1", tcp_port=srv.port, **FAST)
    first = await meter.read()
    image.set({"energy_import_kwh": 1234.57, "power_w": -150.25})
    second = await meter.read()
    assert second.energy_import_wh == pytest.approx(1234570.0)
    assert second.energy_import_wh >= first.energy_import_wh
    assert second.power_w == pytest.approx(-150.25)


# -- faults --------------------------------------------------------------------------------------


async def test_dead_meter_raises_meter_error_in_bounded_time_then_recovers(servers, meters):
    srv = await servers({1: MeterImage(MODELS["sdm630"])})
    meter = make(meters, {}, transport="tcp", model="sdm630", host="127.0.0.1", tcp_port=srv.port,
                 timeout_s=0.3, retries=2)
    await meter.read()
    srv.go_silent()
    t0 = time.monotonic()
    with pytest.raises(MeterError) as e:
        await meter.read()
    took = time.monotonic() - t0
    assert took < 0.3 * 3 + 0.5
    assert took >= 0.3 * 3 - 0.05  # it did retry
    msg = str(e.value)
    assert "SDM630" in msg and "unit 1" in msg and f"127.0.0.1:{srv.port}" in msg and "no answer" in msg
    assert e.value.error_code == "PowerMeterFailure"
    srv.come_back()
    assert_known("sdm630", await meter.read())


async def test_server_gone_then_back_on_the_same_port(servers, meters):
    srv = await servers({1: MeterImage(MODELS["em340"])})
    meter = make(meters, {}, transport="tcp", model="em340", host="127.0.0.1", tcp_port=srv.port, **FAST)
    await meter.read()
    await srv.stop()
    t0 = time.monotonic()
    with pytest.raises(MeterError):
        await meter.read()
    assert time.monotonic() - t0 < 0.3 * 2 + 0.5
    await srv.start_tcp(srv.port)
    assert_known("em340", await meter.read())


async def test_cut_rs485_line_then_mended(servers, meters, pty):
    await servers({2: MeterImage(MODELS["sdm630"])}, rtu_path=pty.paths[0])
    meter = make(meters, {}, transport="rtu", model="sdm630", unit=2, port=pty.paths[1], **FAST)
    await meter.read()
    pty.cut = True
    t0 = time.monotonic()
    with pytest.raises(MeterError, match="no answer"):
        await meter.read()
    assert time.monotonic() - t0 < 0.3 * 2 + 0.5
    pty.cut = False
    await asyncio.sleep(0.05)
    assert_known("sdm630", await meter.read())


async def test_exception_response_is_a_meter_error(servers, meters):
    srv = await servers({1: MeterImage(MODELS["abb-b23"])})
    meter = make(meters, {}, transport="tcp", model="abb-b23", host="127.0.0.1", tcp_port=srv.port, **FAST)
    srv.refuse = 0x02
    t0 = time.monotonic()
    with pytest.raises(MeterError, match="illegal data address") as e:
        await meter.read()
    assert time.monotonic() - t0 < 1.0
    assert "0x5000" in str(e.value)
    srv.refuse = None
    assert_known("abb-b23", await meter.read())


async def test_wrong_function_code_answer_is_a_meter_error(servers, meters):
    # the server holds SDM registers as input registers; an ABB map asks for holding ones
    srv = await servers({1: MeterImage(MODELS["sdm630"])})
    meter = make(meters, {}, transport="tcp", model="abb-b23", host="127.0.0.1", tcp_port=srv.port, **FAST)
    with pytest.raises(MeterError):
        await meter.read()


async def test_meter_refusing_gaps_is_read_register_by_register(servers, meters):
    srv = await servers({1: MeterImage(MODELS["sdm630"])}, strict=True)
    meter = make(meters, {}, transport="tcp", model="sdm630", host="127.0.0.1", tcp_port=srv.port, **FAST)
    assert_known("sdm630", await meter.read())
    blocks = meter.blocks
    assert all(not b.has_gaps(MODELS["sdm630"].registers) for b in blocks)
    srv.requests.clear()
    assert_known("sdm630", await meter.read())
    assert len(srv.requests) == len(blocks)  # the tight plan is kept


async def test_missing_serial_port_is_a_meter_error(meters):
    meter = make(meters, {}, transport="rtu", model="sdm630", port="/dev/does-not-exist-ttyUSB9", **FAST)
    with pytest.raises(MeterError, match="does-not-exist.*no such serial device"):
        await meter.read()


async def test_nobody_listening_is_a_meter_error(meters):
    from tests.hal.modbus_peer import free_port

    meter = make(meters, {}, transport="tcp", model="sdm630", host="127.0.0.1", tcp_port=free_port(), **FAST)
    with pytest.raises(MeterError):
        await meter.read()


# -- shared bus ---------------------------------------------------------------------------------------


async def test_two_meters_share_one_tcp_client_and_read_concurrently(servers, meters):
    other = dict(KNOWN, energy_import_kwh=99.9, power_w=1200.0, current_l1_a=5.2)
    srv = await servers({1: MeterImage(MODELS["sdm630"]), 2: MeterImage(MODELS["sdm630"], other)})
    shared: dict = {}
    a = make(meters, shared, 1, transport="tcp", model="sdm630", unit=1, host="127.0.0.1", tcp_port=srv.port, **FAST)
    b = make(meters, shared, 2, transport="tcp", model="sdm630", unit=2, host="127.0.0.1", tcp_port=srv.port, **FAST)
    assert a.bus is b.bus
    for _ in range(5):
        ra, rb = await asyncio.gather(a.read(), b.read())
        assert_known("sdm630", ra)
        assert_known("sdm630", rb, other)
    assert {r[0] for r in srv.requests} == {1, 2}


async def test_two_meters_on_one_rs485_line_take_turns(servers, meters, pty):
    other = dict(KNOWN, energy_import_kwh=4321.0, voltage_l2_v=228.4)
    await servers({5: MeterImage(MODELS["em340"]), 6: MeterImage(MODELS["em340"], other)}, rtu_path=pty.paths[0])
    shared: dict = {}
    a = make(meters, shared, 1, transport="rtu", model="em340", unit=5, port=pty.paths[1], **FAST)
    b = make(meters, shared, 2, transport="rtu", model="em340", unit=6, port=pty.paths[1], **FAST)
    assert a.bus is b.bus
    for _ in range(5):
        ra, rb = await asyncio.gather(a.read(), b.read())
        assert_known("em340", ra)
        assert_known("em340", rb, other)


async def test_one_dead_meter_does_not_break_its_neighbour(servers, meters, pty):
    srv = await servers({5: MeterImage(MODELS["sdm630"]), 9: MeterImage(MODELS["sdm630"])}, rtu_path=pty.paths[0])
    srv.silent_units.add(9)
    shared: dict = {}
    live = make(meters, shared, 1, transport="rtu", model="sdm630", unit=5, port=pty.paths[1], **FAST)
    dead = make(meters, shared, 2, transport="rtu", model="sdm630", unit=9, port=pty.paths[1], **FAST)
    t0 = time.monotonic()
    ra, rd = await asyncio.gather(live.read(), dead.read(), return_exceptions=True)
    assert isinstance(rd, MeterError) and "unit 9" in str(rd)
    assert_known("sdm630", ra)
    assert time.monotonic() - t0 < 0.3 * 2 + 0.5
    for _ in range(3):
        assert_known("sdm630", await live.read())
    srv.silent_units.clear()
    assert_known("sdm630", await dead.read())


async def test_closing_the_last_meter_releases_the_bus(servers):
    srv = await servers({1: MeterImage(MODELS["sdm630"]), 2: MeterImage(MODELS["sdm630"])})
    shared: dict = {}
    made: list = []
    a = make(made, shared, 1, transport="tcp", model="sdm630", unit=1, host="127.0.0.1", tcp_port=srv.port, **FAST)
    b = make(made, shared, 2, transport="tcp", model="sdm630", unit=2, host="127.0.0.1", tcp_port=srv.port, **FAST)
    await a.read()
    await a.close()
    assert shared  # b still uses it
    await b.read()
    await b.close()
    assert not shared
    with pytest.raises(MeterError, match="closed"):
        await a.read()


# -- configuration -----------------------------------------------------------------------------------


def test_build_evse_with_a_modbus_meter():
    hw = build_evse(1, {"meter": {"kind": "modbus", "transport": "tcp", "model": "sdm630", "host": "127.0.0.1"}},
                    shared={"x": 1})
    assert isinstance(hw.meter, ModbusMeter)
    assert hw.meter.unit == 1 and hw.meter.timeout_s == 1.0 and hw.meter.retries == 2
    assert hw.meter.bus.where == "127.0.0.1:502"


async def test_build_evse_meter_reads(servers):
    srv = await servers({1: MeterImage(MODELS["sdm120"])})
    hw = build_evse(1, {"meter": {"kind": "modbus", "transport": "tcp", "model": "sdm120", "host": "127.0.0.1",
                                  "tcp_port": srv.port, "timeout_s": 0.5}}, shared={})
    try:
        assert_known("sdm120", await hw.meter.read())
    finally:
        await hw.meter.close()


def test_cross_key_problems_name_the_key():
    with pytest.raises(ValueError, match=r"evse 1: meter\.port: missing \(needed for transport rtu\)"):
        build_evse(1, {"meter": {"kind": "modbus", "transport": "rtu", "model": "sdm630"}}, shared={})
    with pytest.raises(ValueError, match=r"evse 2: meter\.host: missing"):
        build_evse(2, {"meter": {"kind": "modbus", "transport": "tcp", "model": "sdm630"}}, shared={})


def test_check_device_names_bad_keys():
    base = {"kind": "modbus", "transport": "tcp", "host": "10.0.0.2"}
    assert check_device("meter", {**base, "model": "sdm630"}, "evse[0].meter") == []
    p = check_device("meter", {**base, "model": "sdm999"}, "evse[0].meter")
    assert len(p) == 1 and p[0].startswith("evse[0].meter.model: must be one of") and "sdm630" in p[0]
    p = check_device("meter", {**base, "model": "sdm630", "unit": 0}, "evse[0].meter")
    assert len(p) == 1 and p[0].startswith("evse[0].meter.unit:")
    p = check_device("meter", {**base, "model": "sdm630", "unit": 300}, "evse[0].meter")
    assert len(p) == 1 and p[0].startswith("evse[0].meter.unit:")
    p = check_device("meter", {"kind": "modbus", "model": "sdm630"}, "m")
    assert p == ["m.transport: missing (required for this kind)"]
    p = check_device("meter", {**base, "model": "sdm630", "parity": "X", "baud": 9600}, "m")
    assert any(x.startswith("m.parity:") for x in p) and any(x.startswith("m.baud: unknown key") for x in p)


def test_meters_on_one_port_must_agree_on_line_settings_and_units():
    shared: dict = {}
    made: list = []
    make(made, shared, 1, transport="rtu", model="sdm630", unit=1, port="/dev/ttyUSB0")
    with pytest.raises(ValueError, match=r"evse 2: meter\.baudrate: 19200 differs from 9600"):
        make(made, shared, 2, transport="rtu", model="sdm630", unit=2, port="/dev/ttyUSB0", baudrate=19200)
    with pytest.raises(ValueError, match=r"evse 3: meter\.unit: 1 is already used"):
        make(made, shared, 3, transport="rtu", model="sdm630", unit=1, port="/dev/ttyUSB0")
    other = make(made, shared, 4, transport="rtu", model="em340", unit=2, port="/dev/ttyUSB0")
    assert other.bus is made[0].bus

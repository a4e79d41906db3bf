"""Several connectors per EVSE ([[evse.connector]]) over the real websocket (scripted CSMS on
127.0.0.1, the station in process on virtual time): a StatusNotification per connector, charging
on connector 2, connector 1 Unavailable while 2 charges (one power path per EVSE), TriggerMessage
MeterValues per connector and for the main meter (the EVSE's one meter counted once), the local
API per connector (status of each, ``connector`` honoured by plug / unplug / ev / fault, 400 for an
unknown one), and 1.6 connector numbers that differ from EVSE ids (a second EVSE's connector 3)."""

from __future__ import annotations

import asyncio

import pytest

from hal.board import build_evse
from hal.types import Fault
from station.config import load
from station.hwcheck import check_evse, run_check

TWO_CONNECTORS = """[station]
id = "MC-1"

[[evse]]
id = 1
max_current = 32
phases = 3

[[evse.connector]]
id = 1
connector_type = "cType2"

[[evse.connector]]
id = 2
connector_type = "cCCS2"
"""

# a second, single-phase EVSE: its one connector is 1.6 connector 3 (the EVSE's id is 2)
SECOND_EVSE = """
[[evse]]
id = 2
max_current = 16
phases = 1
"""


def config(tmp_path, text: str) -> str:
    path = tmp_path / "station.toml"
    path.write_text(text)
    return str(path)


def energy(mv: dict) -> float:
    return float(next(s["value"] for s in mv["meterValue"][0]["sampledValue"]
                      if s["measurand"] == "Energy.Active.Import.Register"))


def connectors(status: dict, evse: int = 1) -> list[dict]:
    return next(e for e in status["evses"] if e["id"] == evse)["connectors"]


async def api_post(sp, what: str, body: dict, expect: int = 200, evse: int = 1) -> dict:
    return await sp.api("POST", f"/api/evses/{evse}/{what}", body, expect=expect)


async def test_two_connectors_of_one_evse_charge_in_turn_and_report_each(csms, booted, tmp_path):
    sp = await booted(config=config(tmp_path, TWO_CONNECTORS))
    for cid in (0, 1, 2):  # after the boot: every connector, 0 included
        await csms.expect("StatusNotification", lambda p, c=cid: p["connectorId"] == c and p["status"] == "Available"
                          and p["errorCode"] == "NoError", since=0)
    assert connectors(await sp.status()) == [
        {"id": 1, "connector": 1, "status": "Available", "error_code": "NoError"},
        {"id": 2, "connector": 2, "status": "Available", "error_code": "NoError"},
    ]

    # an unknown connector is refused, nothing is plugged
    for bad in (3, 0, "2", True):
        answer = await api_post(sp, "plug", {"connector": bad}, expect=400)
        assert "connector" in answer["error"]
    await api_post(sp, "unplug", {"connector": 9}, expect=400)

    # the cable goes into connector 2: only connector 2 is Preparing
    await api_post(sp, "plug", {"connector": 2, "max_current": 32})
    await csms.expect_status(2, "Preparing")
    await sp.swipe("TAG2")
    start = await csms.expect("StartTransaction")
    assert start["connectorId"] == 2
    await csms.expect_status(2, "Charging", since=0)
    await csms.expect_status(1, "Unavailable", since=0)  # one power path: connector 1 cannot charge now
    assert not [p for p in csms.calls("StatusNotification") if p["connectorId"] == 1 and p["status"] == "Preparing"]
    st = await sp.status()
    assert [(c["id"], c["status"]) for c in connectors(st)] == [(1, "Unavailable"), (2, "Charging")]
    evse = st["evses"][0]
    assert evse["transaction"]["connector_id"] == 2 and evse["transaction"]["id_token"] == "TAG2"
    assert evse["offered_a"] == 32 and evse["power_w"] > 0

    await asyncio.sleep(60)  # a minute of charging on connector 2

    # TriggerMessage MeterValues per connector: 2 with its transaction, 1 without
    csms.mark()
    for cid in (2, 1):
        r = await csms.call("TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": cid})
        assert r["status"] == "Accepted"
        mv = await csms.expect("MeterValues", lambda p, c=cid: p["connectorId"] == c)
        assert ("transactionId" in mv) == (cid == 2)
    r = await csms.call("TriggerMessage", {"requestedMessage": "MeterValues"})
    assert r["status"] == "Accepted"
    each = {}
    for _ in range(2):
        mv = await csms.expect("MeterValues")
        each[mv["connectorId"]] = energy(mv)
    assert set(each) == {1, 2} and each[2] > 300  # 22 kW for a minute
    # connector 0, the main meter: the EVSE's one meter, counted once (not once per connector)
    await csms.call("TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 0})
    main = await csms.expect("MeterValues", lambda p: p["connectorId"] == 0)
    assert each[2] <= energy(main) <= each[2] + 5, (main, each)

    # the EV pauses and resumes on connector 2 (the API's "connector" on /ev)
    await api_post(sp, "ev", {"suspend": True, "connector": 2})
    await csms.expect_status(2, "SuspendedEV")
    await api_post(sp, "ev", {"suspend": False, "connector": 2})
    await csms.expect_status(2, "Charging")

    # unplugged from connector 2: the transaction ends, connector 1 is free again
    await api_post(sp, "unplug", {"connector": 2})
    stop = await csms.expect("StopTransaction")
    assert stop["reason"] == "EVDisconnected"
    await csms.expect_status(2, "Available", since=0)
    await csms.expect_status(1, "Available")

    # now connector 1 charges, connector 2 is Unavailable
    await api_post(sp, "plug", {"connector": 1})
    await csms.expect_status(1, "Preparing")
    await sp.swipe("TAG1")
    assert (await csms.expect("StartTransaction"))["connectorId"] == 1
    await csms.expect_status(1, "Charging", since=0)
    await csms.expect_status(2, "Unavailable", since=0)
    st = await sp.status()
    assert [(c["id"], c["status"]) for c in connectors(st)] == [(1, "Charging"), (2, "Unavailable")]


async def test_a_fault_injected_at_one_connector_faults_only_that_one(csms, booted, tmp_path):
    sp = await booted(config=config(tmp_path, TWO_CONNECTORS))
    await api_post(sp, "fault", {"error_code": "ConnectorLockFailure", "active": True, "connector": 2})
    await csms.expect_status(2, "Faulted", error="ConnectorLockFailure")
    assert [(c["id"], c["status"], c["error_code"]) for c in connectors(await sp.status())] == [
        (1, "Available", "NoError"), (2, "Faulted", "ConnectorLockFailure")]
    await api_post(sp, "fault", {"error_code": "ConnectorLockFailure", "active": False, "connector": 2})
    await csms.expect_status(2, "Available", error="NoError")
    # no "connector": a fault of the whole EVSE reaches both
    await api_post(sp, "fault", {"error_code": "GroundFailure", "active": True})
    await csms.expect_status(1, "Faulted", error="GroundFailure", since=0)
    await csms.expect_status(2, "Faulted", error="GroundFailure", since=0)
    await api_post(sp, "fault", {"error_code": "GroundFailure", "active": True, "connector": 3}, expect=400)


async def test_connector_numbers_that_differ_from_evse_ids(csms, booted, tmp_path):
    """EVSE 1 has connectors 1 and 2, EVSE 2's connector is 1.6 connector 3: the adapter finds each
    connector's EVSE (its phases), the API reports it and plugs it by its number within the EVSE."""
    sp = await booted(config=config(tmp_path, TWO_CONNECTORS + SECOND_EVSE),
                      ocpp_config={"MeterValuesSampledData": "Energy.Active.Import.Register,Current.Import"})
    await csms.expect("StatusNotification", lambda p: p["connectorId"] == 3, since=0)
    assert connectors(await sp.status(), evse=2) == [
        {"id": 3, "connector": 1, "status": "Available", "error_code": "NoError"}]
    await api_post(sp, "plug", {"connector": 2}, expect=400, evse=2)
    await api_post(sp, "plug", {"connector": 1, "phases": 3}, evse=2)
    await csms.expect_status(3, "Preparing")
    await sp.swipe("TAG3", evse=2)
    assert (await csms.expect("StartTransaction"))["connectorId"] == 3
    await csms.expect_status(3, "Charging", since=0)
    assert [c["status"] for c in connectors(await sp.status())] == ["Available", "Available"]  # EVSE 1 untouched
    await asyncio.sleep(10)
    await csms.call("TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 3})
    mv = await csms.expect("MeterValues", lambda p: p["connectorId"] == 3)
    currents = [s for s in mv["meterValue"][0]["sampledValue"] if s["measurand"] == "Current.Import"]
    # a single-phase EVSE: one phase's current (EVSE 1 would give three)
    assert len(currents) == 1 and float(currents[0]["value"]) == 16, currents


@pytest.mark.virtual_time
async def test_hw_check_checks_every_connectors_pilot_and_lock():
    """`station hw check` on an EVSE with two connectors: a line for each connector's pilot and
    lock, and a pilot fault of connector 2 fails connector 2's pilot only."""
    hw = build_evse(1, {}, connectors=[{}, {}])
    asyncio.get_running_loop().call_later(
        0.1, hw.faults.emit, Fault("OtherError", True, "pilot: no PWM read back", 2))
    lines: list[str] = []
    ok = await check_evse(1, hw, {}, 0, lines.append, [{}, {"pilot": "gpio"}])
    text = "\n".join(lines)
    assert not ok, text
    assert "connector 1 pilot sim      ok    state A" in text, text
    assert "connector 2 pilot gpio     FAIL  OtherError: pilot: no PWM read back" in text, text
    assert "connector 1 lock  sim      ok    unlocked" in text and "connector 2 lock  sim      ok    unlocked" in text


@pytest.mark.virtual_time
async def test_hw_check_of_a_config_with_two_connectors(tmp_path):
    lines: list[str] = []
    cfg = load(config(tmp_path, TWO_CONNECTORS))
    assert await run_check(cfg, 0, lines.append) == 0, lines
    assert sum("pilot" in line for line in lines) == 2 and sum(" lock " in line for line in lines) == 2, lines

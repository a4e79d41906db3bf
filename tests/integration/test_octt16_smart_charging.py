"""OCTT OCPP 1.6J Smart Charging cases (section 2.22) performed against the real station (in
process, on virtual time, over the real websocket): the limit reaches the EV (the pilot's offered
current and the power the simulated EV draws in GET /api/status), GetCompositeSchedule answers,
profiles replaced, cleared, stacked, and kept across a restart."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from station.core.clock import iso
from tests.integration.harness import start_session, until, wall_now

MAX_A = 32.0  # the simulated EVSE's maximum current (config default)


def profile(pid: int = 1, purpose: str = "TxDefaultProfile", stack: int = 0, periods: list[tuple[int, float]] | None = None,
            unit: str = "A", kind: str = "Relative", duration: int | None = None, start: str | None = None,
            **extra: object) -> dict:
    sched: dict = {"chargingRateUnit": unit,
                   "chargingSchedulePeriod": [{"startPeriod": s, "limit": v} for s, v in (periods or [(0, 10.0)])]}
    if duration is not None:
        sched["duration"] = duration
    if start is not None:
        sched["startSchedule"] = start
    return {"chargingProfileId": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
            "chargingProfileKind": kind, "chargingSchedule": sched, **extra}


async def set_profile(csms, cid: int, cp: dict) -> str:
    return (await csms.call("SetChargingProfile", {"connectorId": cid, "csChargingProfiles": cp}))["status"]


async def evse(sp) -> dict:
    return (await sp.status())["evses"][0]


async def settle() -> None:
    await asyncio.sleep(0.5)  # virtual time: the offer and the EV's answer to it


# -- TC_056 / TC_082: TxDefaultProfile ----------------------------------------------------------
async def test_TC_056_tx_default_profile(csms, booted):
    """A TxDefaultProfile on connector 1 before any transaction: the next transaction charges at
    its limit (pilot offer, the EV's draw), and the composite schedule says so."""
    sp = await booted()
    assert await set_profile(csms, 1, profile(periods=[(0, 10.0)])) == "Accepted"
    await start_session(csms, sp)
    await settle()
    e = await evse(sp)
    assert e["offered_a"] == 10.0
    assert e["power_w"] is not None and 0 < e["power_w"] <= 10.0 * 230 * 3 + 1
    comp = await csms.call("GetCompositeSchedule", {"connectorId": 1, "duration": 600, "chargingRateUnit": "A"})
    assert comp["status"] == "Accepted"
    assert comp["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 10.0


async def test_TC_082_tx_default_profile_with_ongoing_transaction(csms, booted):
    """A TxDefaultProfile set (on connector 0: every connector) while charging applies at once."""
    sp = await booted()
    await start_session(csms, sp)
    await settle()
    assert (await evse(sp))["offered_a"] == MAX_A
    assert await set_profile(csms, 0, profile(periods=[(0, 12.0)])) == "Accepted"
    await settle()
    assert (await evse(sp))["offered_a"] == 12.0
    # a profile with the same purpose and stack level replaces it
    assert await set_profile(csms, 0, profile(pid=2, periods=[(0, 14.0)])) == "Accepted"
    await settle()
    assert (await evse(sp))["offered_a"] == 14.0


# -- TC_057 / TC_058: TxProfile -----------------------------------------------------------------
async def test_TC_057_tx_profile(csms, booted):
    sp = await booted()
    await start_session(csms, sp)
    tx_id = (await evse(sp))["transaction"]["id"]
    cp = profile(pid=5, purpose="TxProfile", periods=[(0, 8.0)], transactionId=tx_id)
    assert await set_profile(csms, 1, cp) == "Accepted"
    await settle()
    e = await evse(sp)
    assert e["transaction"]["id"] == tx_id
    assert e["offered_a"] == 8.0
    # the TxProfile ends with its transaction: the next one charges at the EVSE's maximum
    await sp.swipe("TAG1")
    await csms.expect("StopTransaction")
    comp = await csms.call("GetCompositeSchedule", {"connectorId": 1, "duration": 60})
    assert comp["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == MAX_A


async def test_TC_058_1_tx_profile_without_transaction(csms, booted):
    await booted()
    assert await set_profile(csms, 1, profile(purpose="TxProfile", periods=[(0, 8.0)])) == "Rejected"


async def test_TC_058_2_tx_profile_wrong_transaction_id(csms, booted):
    sp = await booted()
    await start_session(csms, sp)
    tx_id = (await evse(sp))["transaction"]["id"]
    cp = profile(purpose="TxProfile", periods=[(0, 8.0)], transactionId=tx_id + 100)
    assert await set_profile(csms, 1, cp) == "Rejected"
    await settle()
    assert (await evse(sp))["offered_a"] == MAX_A


# -- TC_066: GetCompositeSchedule -----------------------------------------------------------------
async def test_TC_066_get_composite_schedule(csms, booted):
    """Composite of a TxDefaultProfile within a ChargePointMaxProfile, for connector 1 and 0, in A and W."""
    await booted()
    now = wall_now().replace(microsecond=0)
    assert await set_profile(csms, 0, profile(pid=1, purpose="ChargePointMaxProfile", kind="Absolute",
                                              start=iso(now), periods=[(0, 20.0)])) == "Accepted"
    assert await set_profile(csms, 1, profile(pid=2, kind="Absolute", start=iso(now),
                                              periods=[(0, 24.0), (300, 10.0)], duration=600)) == "Accepted"
    comp = await csms.call("GetCompositeSchedule", {"connectorId": 1, "duration": 900, "chargingRateUnit": "A"})
    assert comp["status"] == "Accepted" and comp["connectorId"] == 1
    sched = comp["chargingSchedule"]
    assert sched["chargingRateUnit"] == "A" and sched["duration"] == 900
    assert [(p["startPeriod"], p["limit"]) for p in sched["chargingSchedulePeriod"]] == [(0, 20.0), (300, 10.0), (600, 20.0)]
    watts = await csms.call("GetCompositeSchedule", {"connectorId": 1, "duration": 900, "chargingRateUnit": "W"})
    assert [p["limit"] for p in watts["chargingSchedule"]["chargingSchedulePeriod"]] == [13800.0, 6900.0, 13800.0]
    station = await csms.call("GetCompositeSchedule", {"connectorId": 0, "duration": 900})
    assert station["status"] == "Accepted" and station["connectorId"] == 0
    assert [p["limit"] for p in station["chargingSchedule"]["chargingSchedulePeriod"]] == [20.0, 10.0, 20.0]
    bad = await csms.call("GetCompositeSchedule", {"connectorId": 7, "duration": 60})
    assert bad == {"status": "Rejected"}


# -- TC_067: ClearChargingProfile -----------------------------------------------------------------
async def test_TC_067_clear_charging_profile(csms, booted):
    sp = await booted()
    await start_session(csms, sp)
    assert await set_profile(csms, 1, profile(pid=7, periods=[(0, 9.0)])) == "Accepted"
    assert await set_profile(csms, 0, profile(pid=8, stack=2, periods=[(0, 11.0)])) == "Accepted"
    await settle()
    assert (await evse(sp))["offered_a"] == 9.0  # the connector's own TxDefaultProfile overrules connector 0's
    assert (await csms.call("ClearChargingProfile", {"id": 7}))["status"] == "Accepted"
    await settle()
    assert (await evse(sp))["offered_a"] == 11.0
    assert (await csms.call("ClearChargingProfile", {"id": 7}))["status"] == "Unknown"
    by_criteria = {"connectorId": 0, "chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 2}
    assert (await csms.call("ClearChargingProfile", by_criteria))["status"] == "Accepted"
    await settle()
    assert (await evse(sp))["offered_a"] == MAX_A
    assert (await csms.call("ClearChargingProfile", {}))["status"] == "Unknown"


# -- TC_072: stacking -----------------------------------------------------------------------------
async def test_TC_072_stacking_charging_profiles(csms, booted):
    """Stack level 1 (60 s) over stack level 0: 8 A, then exactly at its end 16 A (a timer, not polling)."""
    sp = await booted()
    await start_session(csms, sp)
    assert await set_profile(csms, 0, profile(pid=1, stack=0, periods=[(0, 16.0)], duration=86400)) == "Accepted"
    assert await set_profile(csms, 0, profile(pid=2, stack=1, periods=[(0, 8.0)], duration=60)) == "Accepted"
    await settle()
    assert (await evse(sp))["offered_a"] == 8.0
    comp = await csms.call("GetCompositeSchedule", {"connectorId": 1, "duration": 300})
    periods = comp["chargingSchedule"]["chargingSchedulePeriod"]
    assert [p["limit"] for p in periods] == [8.0, 16.0]
    # the transaction started a little before the profiles: stack level 1 ends 60 s after that start
    boundary = periods[1]["startPeriod"]
    assert 50 <= boundary <= 60
    await asyncio.sleep(boundary - 1)
    assert (await evse(sp))["offered_a"] == 8.0
    await asyncio.sleep(2)
    assert (await evse(sp))["offered_a"] == 16.0


# -- TC_059 / TC_060: RemoteStartTransaction with a chargingProfile --------------------------------
async def test_TC_059_remote_start_with_charging_profile(csms, booted):
    sp = await booted()
    await sp.plug()
    await csms.expect_status(1, "Preparing")
    cp = profile(pid=3, purpose="TxProfile", periods=[(0, 7.0), (120, 13.0)])
    ans = await csms.call("RemoteStartTransaction", {"connectorId": 1, "idTag": "TAG1", "chargingProfile": cp})
    assert ans["status"] == "Accepted"
    await csms.expect("StartTransaction")
    await csms.expect_status(1, "Charging")
    await settle()
    assert (await evse(sp))["offered_a"] == 7.0
    await asyncio.sleep(120)
    assert (await evse(sp))["offered_a"] == 13.0


async def test_TC_060_remote_start_with_charging_profile_rejected(csms, booted):
    sp = await booted()
    await sp.plug()
    await csms.expect_status(1, "Preparing")
    wrong_purpose = profile(pid=3, purpose="TxDefaultProfile", periods=[(0, 7.0)])
    ans = await csms.call("RemoteStartTransaction", {"connectorId": 1, "idTag": "TAG1", "chargingProfile": wrong_purpose})
    assert ans["status"] == "Rejected"
    too_high = profile(pid=3, purpose="TxProfile", stack=99, periods=[(0, 7.0)])
    ans = await csms.call("RemoteStartTransaction", {"connectorId": 1, "idTag": "TAG1", "chargingProfile": too_high})
    assert ans["status"] == "Rejected"
    await csms.no_call("StartTransaction", 2.0)


# -- beyond the OCTT cases ------------------------------------------------------------------------
async def test_limit_below_6_amps_offers_nothing_and_profiles_survive_a_restart(csms, booted):
    sp = await booted()
    now = wall_now().replace(microsecond=0)
    cp = profile(pid=4, kind="Absolute", start=iso(now - timedelta(minutes=1)), periods=[(0, 5.0)])
    assert await set_profile(csms, 0, cp) == "Accepted"
    assert (await csms.call("Reset", {"type": "Soft"}))["status"] == "Accepted"
    await csms.expect("BootNotification", timeout=15)
    await csms.expect_status(1, "Available")
    comp = await csms.call("GetCompositeSchedule", {"connectorId": 1, "duration": 60})
    assert comp["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 5.0
    await sp.plug()
    await csms.expect_status(1, "Preparing")
    await sp.swipe("TAG1")
    await csms.expect("StartTransaction")
    await settle()
    e = await evse(sp)
    assert not e["offered_a"]  # below 6 A: nothing offered (IEC 61851-1)
    assert not e["power_w"]


async def test_set_charging_profile_checks_the_configuration_keys(csms, booted):
    await booted()
    conf = await csms.call("GetConfiguration", {"key": ["ChargeProfileMaxStackLevel", "ChargingScheduleAllowedChargingRateUnit",
                                                        "ChargingScheduleMaxPeriods", "MaxChargingProfilesInstalled",
                                                        "SupportedFeatureProfiles"]})
    values = {k["key"]: k["value"] for k in conf["configurationKey"]}
    assert "SmartCharging" in values["SupportedFeatureProfiles"].split(",")
    assert await set_profile(csms, 0, profile(stack=int(values["ChargeProfileMaxStackLevel"]) + 1)) == "Rejected"
    many = [(i * 60, 10.0) for i in range(int(values["ChargingScheduleMaxPeriods"]) + 1)]
    assert await set_profile(csms, 0, profile(periods=many)) == "Rejected"
    assert await set_profile(csms, 1, profile(purpose="ChargePointMaxProfile")) == "Rejected"
    assert await set_profile(csms, 9, profile()) == "Rejected"
    cap = int(values["MaxChargingProfilesInstalled"])
    for i in range(cap):
        assert await set_profile(csms, 0, profile(pid=100 + i, stack=i % 10, purpose=("TxDefaultProfile", "ChargePointMaxProfile")[i // 10],
                                                  periods=[(0, 30.0)])) == "Accepted"
    assert await set_profile(csms, 1, profile(pid=999, periods=[(0, 30.0)])) == "Rejected"
    assert await set_profile(csms, 0, profile(pid=100, periods=[(0, 20.0)])) == "Accepted"  # a replacement still fits


async def test_charge_point_max_profile_is_shared_by_the_charging_connectors(csms, booted):
    """Connector 0's ChargePointMaxProfile (20 A for the station) and TxDefaultProfile (16 A for
    every connector): one car gets 16 A; two share the 20 A, 10 A each; when one stops, 16 A again."""
    sp = await booted(evses=2)
    assert await set_profile(csms, 0, profile(pid=1, purpose="ChargePointMaxProfile", periods=[(0, 20.0)])) == "Accepted"
    assert await set_profile(csms, 0, profile(pid=2, periods=[(0, 16.0)])) == "Accepted"
    await start_session(csms, sp)
    await settle()
    first, second = (await sp.status())["evses"]
    assert first["offered_a"] == 16.0
    await sp.plug(evse=2)
    await csms.expect_status(2, "Preparing")
    await sp.swipe("TAG2", evse=2)
    await csms.expect("StartTransaction", lambda p: p["connectorId"] == 2)
    await csms.expect_status(2, "Charging")
    await settle()
    first, second = (await sp.status())["evses"]
    assert first["offered_a"] == 10.0 and second["offered_a"] == 10.0
    station = await csms.call("GetCompositeSchedule", {"connectorId": 0, "duration": 60, "chargingRateUnit": "W"})
    assert station["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 20.0 * 230 * 3
    await sp.swipe("TAG1")
    await csms.expect("StopTransaction")
    await settle()
    first, second = (await sp.status())["evses"]
    assert second["offered_a"] == 16.0


async def test_composite_schedule_of_a_huge_duration_is_bounded(csms, booted):
    """A daily profile and a duration of 68 years: the answer covers 31 days (it says so), not millions of periods."""
    await booted()
    now = wall_now().replace(microsecond=0)
    daily = profile(pid=1, kind="Recurring", recurrencyKind="Daily", start=iso(now), periods=[(0, 10.0), (3600, 16.0)],
                    duration=7200)
    assert await set_profile(csms, 0, daily) == "Accepted"
    comp = await csms.call("GetCompositeSchedule", {"connectorId": 1, "duration": 2**31 - 1})
    sched = comp["chargingSchedule"]
    assert comp["status"] == "Accepted" and sched["duration"] == 31 * 86_400
    assert len(sched["chargingSchedulePeriod"]) == 3 * 31
    assert [p["limit"] for p in sched["chargingSchedulePeriod"][:4]] == [10.0, 16.0, MAX_A, 10.0]


async def test_profiles_survive_a_station_restart_and_tx_profiles_end_with_their_transaction(csms, booted):
    """A clean stop and a new start (a new process's object graph, the SQLite store reopened): the
    TxDefaultProfile is still installed and applied; the TxProfile of the transaction the stop ended is not."""
    sp = await booted()
    assert await set_profile(csms, 0, profile(pid=1, periods=[(0, 9.0)])) == "Accepted"
    await start_session(csms, sp)
    tx_id = (await evse(sp))["transaction"]["id"]
    assert await set_profile(csms, 1, profile(pid=2, purpose="TxProfile", periods=[(0, 7.0)], transactionId=tx_id)) == "Accepted"
    await settle()
    assert (await evse(sp))["offered_a"] == 7.0
    await sp.stop()
    csms.mark()
    sp.start()
    await csms.expect("BootNotification", timeout=15)
    await sp.wait_api()
    comp = await csms.call("GetCompositeSchedule", {"connectorId": 1, "duration": 60})
    assert comp["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 9.0
    assert (await csms.call("ClearChargingProfile", {"id": 2}))["status"] == "Unknown"
    assert (await csms.call("ClearChargingProfile", {"id": 1}))["status"] == "Accepted"


# -- numberPhases reaches the simulated EV ----------------------------------------------------------
def phased(pid: int, unit: str, periods: list[tuple[int, float, int]]) -> dict:
    p = profile(pid=pid, unit=unit)
    p["chargingSchedule"]["chargingSchedulePeriod"] = [
        {"startPeriod": s, "limit": v, "numberPhases": n} for s, v, n in periods]
    return p


async def test_the_simulated_ev_charges_on_the_number_of_phases_of_the_period(csms, booted):
    """A TxDefaultProfile of 16 A on 1 phase, then 16 A on 3 phases from minute 1: the EVSE
    switches phases at the boundary and the simulated EV's power follows (16 A x 230 V x phases)."""
    sp = await booted()
    assert await set_profile(csms, 1, phased(1, "A", [(0, 16.0, 1), (60, 16.0, 3)])) == "Accepted"
    await start_session(csms, sp)
    await settle()
    e = await evse(sp)
    assert e["offered_a"] == 16.0 and e["power_w"] == 16.0 * 230
    await asyncio.sleep(60)
    e = await evse(sp)
    assert e["offered_a"] == 16.0 and e["power_w"] == 16.0 * 230 * 3


async def test_a_limit_in_watts_on_one_phase_offers_its_current_on_that_phase(csms, booted):
    """7360 W on 1 phase is 32 A on one phase; 6900 W on 3 phases is 10 A on each."""
    sp = await booted()
    assert await set_profile(csms, 0, phased(2, "W", [(0, 7360.0, 1), (60, 6900.0, 3)])) == "Accepted"
    await start_session(csms, sp)
    await settle()
    e = await evse(sp)
    assert e["offered_a"] == 32.0 and e["power_w"] == 7360.0
    await asyncio.sleep(60)
    e = await evse(sp)
    assert e["offered_a"] == 10.0 and e["power_w"] == 6900.0


async def test_a_wall_clock_set_forward_applies_the_boundary_it_passed_within_seconds(csms, booted):
    """An Absolute profile: 16 A, then 10 A from minute 10 of the wall clock. The wall clock is set
    forward by 15 minutes at minute 1: 10 A is offered within seconds (the station's next timer
    notices the jump), not 9 minutes later when a monotonic timer would have fired."""
    sp = await booted()
    start = wall_now()
    cp = profile(kind="Absolute", start=iso(start), periods=[(0, 16.0), (600, 10.0)])
    assert await set_profile(csms, 0, cp) == "Accepted"
    await start_session(csms, sp)
    await settle()
    assert (await evse(sp))["offered_a"] == 16.0
    await asyncio.sleep(60 - (wall_now() - start).total_seconds())
    loop = asyncio.get_running_loop()
    loop.wall_start += timedelta(minutes=15)  # NTP steps the clock
    jumped = loop.time()
    await until(lambda: _offered(sp, 10.0), timeout=30, step=0.5)
    assert loop.time() - jumped <= 6  # the checkpoint runs every 5 s


async def _offered(sp, amps: float) -> bool:
    return (await evse(sp))["offered_a"] == amps

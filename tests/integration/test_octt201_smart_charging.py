"""OCTT OCPP 2.0.1 Smart Charging cases (functional block K, certification profile section 4.5)
performed against the real station (in process, on virtual time, over the real websocket): the
answers to SetChargingProfile / GetChargingProfiles / ClearChargingProfile / GetCompositeSchedule,
the ReportChargingProfiles that follow, the limit reaching the EV (the pilot's offer in GET
/api/status) and the TransactionEvent ChargingRateChanged when it changes during a transaction."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from station.core.clock import iso, parse_iso
from tests.conftest import var
from tests.integration.harness import CallErrorReply, wall_now

MAX_A = 32.0  # the simulated EVSE's maximum current (config default)


def profile(pid: int = 1, purpose: str = "TxDefaultProfile", stack: int = 0,
            periods: list[tuple[int, float]] | None = None, unit: str = "A", kind: str = "Relative",
            start: str | None = None, duration: int | None = None, tx: str | None = None, **extra: object) -> dict:
    sched: dict = {"id": pid, "chargingRateUnit": unit,
                   "chargingSchedulePeriod": [{"startPeriod": s, "limit": v} for s, v in (periods or [(0, 10.0)])]}
    if start is not None:
        sched["startSchedule"] = start
    if duration is not None:
        sched["duration"] = duration
    cp: dict = {"id": pid, "stackLevel": stack, "chargingProfilePurpose": purpose, "chargingProfileKind": kind,
                "chargingSchedule": [sched], **extra}
    if tx is not None:
        cp["transactionId"] = tx
    return cp


def absolute(pid: int, periods: list[tuple[int, float]], purpose: str = "TxDefaultProfile", stack: int = 0,
             offset_s: int = 0, **kw: object) -> dict:
    """An Absolute profile whose schedule starts ``offset_s`` from now."""
    return profile(pid, purpose, stack, periods, kind="Absolute", start=iso(wall_now() + timedelta(seconds=offset_s)),
                   **kw)


async def set_profile(csms201, evse: int, cp: dict) -> dict:
    return await csms201.call("SetChargingProfile", {"evseId": evse, "chargingProfile": cp})


async def offered(sp, evse: int = 1) -> float:
    return (await sp.status())["evses"][evse - 1]["offered_a"]


async def settle() -> None:
    await asyncio.sleep(0.5)  # virtual time: the offer and the EV's answer to it


async def start_tx(csms201, sp, evse: int = 1, tag: str = "TAG1") -> str:
    """Plug in and authorize on ``evse``: the transaction (TxStartPoint PowerPathClosed) runs; its id."""
    await sp.plug(evse)
    await sp.swipe(tag, evse)
    started = await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Started" and p["evse"]["id"] == evse)
    await settle()
    return started["transactionInfo"]["transactionId"]


async def composite(csms201, evse: int, duration: int = 600, unit: str = "A") -> dict:
    return await csms201.call("GetCompositeSchedule", {"evseId": evse, "duration": duration, "chargingRateUnit": unit})


def limits(answer: dict) -> list[tuple[int, float]]:
    return [(p["startPeriod"], p["limit"]) for p in answer["schedule"]["chargingSchedulePeriod"]]


async def reports(csms201, request_id: int) -> list[dict]:
    """The ReportChargingProfiles of ``request_id``, up to the one without tbc."""
    got = []
    while True:
        r = await csms201.expect("ReportChargingProfiles", lambda p: p["requestId"] == request_id)
        got.append(r)
        if not r.get("tbc", False):
            return got


def reported_ids(rs: list[dict]) -> set[int]:
    return {cp["id"] for r in rs for cp in r["chargingProfile"]}


async def get_profiles(csms201, request_id: int, criteria: dict, evse: int | None = None) -> tuple[str, list[dict]]:
    req: dict = {"requestId": request_id, "chargingProfile": criteria}
    if evse is not None:
        req["evseId"] = evse
    answer = await csms201.call("GetChargingProfiles", req)
    if answer["status"] != "Accepted":
        return answer["status"], []
    return answer["status"], await reports(csms201, request_id)


# -- K01 SetChargingProfile -------------------------------------------------------------------------
async def test_TC_K_01_CS_tx_default_profile_specific_evse(csms201, booted201):
    """A TxDefaultProfile on EVSE 1: the next transaction there charges at its limit, EVSE 2 not."""
    sp = await booted201(evses=2)
    assert (await set_profile(csms201, 1, profile(periods=[(0, 10.0)])))["status"] == "Accepted"
    await start_tx(csms201, sp, 1)
    await start_tx(csms201, sp, 2, tag="TAG2")
    assert await offered(sp, 1) == 10.0
    assert await offered(sp, 2) == MAX_A
    assert limits(await composite(csms201, 1))[0] == (0, 10.0)


async def test_TC_K_10_CS_tx_default_profile_all_evse(csms201, booted201):
    sp = await booted201(evses=2)
    assert (await set_profile(csms201, 0, profile(periods=[(0, 12.0)])))["status"] == "Accepted"
    await start_tx(csms201, sp, 1)
    await start_tx(csms201, sp, 2, tag="TAG2")
    assert await offered(sp, 1) == 12.0
    assert await offered(sp, 2) == 12.0


async def test_TC_K_60_CS_tx_profile_with_ongoing_transaction(csms201, booted201):
    """A TxProfile for the running transaction: Accepted, the EV gets its limit at once, and the
    CSMS hears of the new rate (TransactionEvent Updated, ChargingRateChanged)."""
    sp = await booted201()
    tx_id = await start_tx(csms201, sp)
    assert await offered(sp) == MAX_A
    answer = await set_profile(csms201, 1, profile(5, "TxProfile", periods=[(0, 8.0)], tx=tx_id))
    assert answer["status"] == "Accepted"
    ev = await csms201.expect("TransactionEvent", lambda p: p["triggerReason"] == "ChargingRateChanged")
    assert ev["eventType"] == "Updated" and ev["transactionInfo"]["transactionId"] == tx_id
    await settle()
    assert await offered(sp) == 8.0
    assert limits(await composite(csms201, 1))[0] == (0, 8.0)


async def test_TC_K_02_CS_tx_profile_without_ongoing_transaction(csms201, booted201):
    await booted201()
    answer = await set_profile(csms201, 1, profile(5, "TxProfile", tx="no-such-transaction"))
    assert answer["status"] == "Rejected"
    assert answer["statusInfo"]["reasonCode"] == "TxNotFound"


async def test_TC_K_11_CS_tx_profile_not_on_all_evse(csms201, booted201):
    sp = await booted201()
    tx_id = await start_tx(csms201, sp)
    answer = await set_profile(csms201, 0, profile(5, "TxProfile", tx=tx_id))
    assert answer["status"] == "Rejected" and answer["statusInfo"]["reasonCode"] == "InvalidValue"
    assert await offered(sp) == MAX_A


async def test_TC_K_03_CS_charging_station_max_profile(csms201, booted201):
    """A ChargingStationMaxProfile on evseId 0 limits the station (shared by the EVSEs that charge);
    on an EVSE it is Rejected."""
    sp = await booted201(evses=2)
    bad = await set_profile(csms201, 1, absolute(7, [(0, 16.0)], "ChargingStationMaxProfile"))
    assert bad["status"] == "Rejected"
    ok = await set_profile(csms201, 0, absolute(7, [(0, 16.0)], "ChargingStationMaxProfile"))
    assert ok["status"] == "Accepted"
    await start_tx(csms201, sp, 1)
    assert await offered(sp, 1) == 16.0
    await start_tx(csms201, sp, 2, tag="TAG2")
    await settle()
    assert await offered(sp, 1) == 8.0 and await offered(sp, 2) == 8.0
    station = await composite(csms201, 0)
    assert station["schedule"]["evseId"] == 0 and limits(station)[0] == (0, 16.0)
    assert limits(await composite(csms201, 0, unit="W"))[0] == (0, 16.0 * 230 * 3)


async def test_TC_K_14_CS_unexisting_evse(csms201, booted201):
    await booted201()
    answer = await set_profile(csms201, 9, profile())
    assert answer["status"] == "Rejected" and answer["statusInfo"]["reasonCode"] == "UnknownEvse"


async def test_TC_K_16_CS_unknown_transaction_id(csms201, booted201):
    sp = await booted201()
    await start_tx(csms201, sp)
    answer = await set_profile(csms201, 1, profile(5, "TxProfile", periods=[(0, 8.0)], tx="not-this-one"))
    assert answer["status"] == "Rejected" and answer["statusInfo"]["reasonCode"] == "TxNotFound"
    assert await offered(sp) == MAX_A


async def test_TC_K_15_CS_not_supported(csms201, booted201):
    """Smart charging switched off (SmartChargingCtrlr.Enabled false): CallError NotSupported."""
    await booted201(variables=[var("SmartChargingCtrlr", "Enabled", "false")])
    with pytest.raises(CallErrorReply) as e:
        await set_profile(csms201, 1, profile())
    assert e.value.code == "NotSupported"


async def test_K01_schedule_checks_rejected_with_reason(csms201, booted201):
    """K01: stackLevel above ProfileStackLevel, periods out of order, a Relative profile with a
    startSchedule, an Absolute one without, external constraints from the CSMS: Rejected."""
    await booted201()
    cases = [
        (profile(stack=11), "InvalidStackLevel"),
        (profile(periods=[(0, 10.0), (0, 8.0)]), "InvalidSchedule"),
        (profile(periods=[(60, 10.0)]), "InvalidSchedule"),
        (profile(start=iso(wall_now())), "InvalidSchedule"),
        (profile(kind="Absolute"), "InvalidSchedule"),
        (profile(kind="Recurring", start=iso(wall_now())), "InvalidSchedule"),
        (profile(purpose="ChargingStationExternalConstraints"), "InvalidValue"),
    ]
    for cp, code in cases:
        answer = await set_profile(csms201, 1, cp)
        assert answer["status"] == "Rejected", cp
        assert answer["statusInfo"]["reasonCode"] == code, (cp, answer)
    status, _ = await get_profiles(csms201, 1, {})
    assert status == "NoProfiles"


async def test_TC_K_19_CS_recurring_profile(csms201, booted201):
    """A Daily Recurring profile: 6 A for the first hour of each day from its start, then 20 A."""
    sp = await booted201()
    start = wall_now() - timedelta(days=2, minutes=30)  # its third repetition started half an hour ago
    cp = profile(3, kind="Recurring", start=iso(start), periods=[(0, 6.0), (3600, 20.0)], recurrencyKind="Daily")
    assert (await set_profile(csms201, 1, cp))["status"] == "Accepted"
    await start_tx(csms201, sp)
    assert await offered(sp) == 6.0
    got = limits(await composite(csms201, 1, duration=86_400))
    assert got[0] == (0, 6.0)
    assert got[1][1] == 20.0 and abs(got[1][0] - 1800) <= 2
    assert got[2][1] == 6.0 and abs(got[2][0] - (86_400 - 1800)) <= 2


async def test_TC_K_21_CS_valid_from(csms201, booted201):
    """A profile valid from 2 minutes on: no limit before, its limit from then on (a timer, no poll)."""
    sp = await booted201()
    cp = profile(4, periods=[(0, 9.0)], validFrom=iso(wall_now() + timedelta(seconds=120)))
    assert (await set_profile(csms201, 1, cp))["status"] == "Accepted"
    await start_tx(csms201, sp)
    assert await offered(sp) == MAX_A
    got = limits(await composite(csms201, 1))
    assert got[0] == (0, MAX_A) and got[1][1] == 9.0 and abs(got[1][0] - 120) <= 3
    await asyncio.sleep(125)
    assert await offered(sp) == 9.0


async def test_TC_K_22_CS_valid_to(csms201, booted201):
    sp = await booted201()
    cp = profile(4, periods=[(0, 9.0)], validTo=iso(wall_now() + timedelta(seconds=120)))
    assert (await set_profile(csms201, 1, cp))["status"] == "Accepted"
    await start_tx(csms201, sp)
    assert await offered(sp) == 9.0
    await asyncio.sleep(125)
    assert await offered(sp) == MAX_A
    status, _ = await get_profiles(csms201, 2, {"chargingProfileId": [4]})
    assert status == "NoProfiles"  # expired profiles are removed


async def test_TC_K_23_CS_start_schedule(csms201, booted201):
    """An Absolute profile whose schedule started 100 s ago: its second period (from 120 s) comes
    20 s from now; the composite schedule is relative to now."""
    sp = await booted201()
    cp = absolute(6, [(0, 10.0), (120, 14.0)], offset_s=-100, duration=600)
    assert (await set_profile(csms201, 1, cp))["status"] == "Accepted"
    await start_tx(csms201, sp)
    assert await offered(sp) == 10.0
    got = limits(await composite(csms201, 1))
    assert got[0] == (0, 10.0) and got[1][1] == 14.0 and abs(got[1][0] - 20) <= 3
    await asyncio.sleep(25)
    assert await offered(sp) == 14.0


async def test_TC_K_28_CS_tx_default_profile_with_transaction_ongoing(csms201, booted201):
    sp = await booted201()
    tx_id = await start_tx(csms201, sp)
    assert (await set_profile(csms201, 1, profile(periods=[(0, 12.0)])))["status"] == "Accepted"
    ev = await csms201.expect("TransactionEvent", lambda p: p["triggerReason"] == "ChargingRateChanged")
    assert ev["transactionInfo"]["transactionId"] == tx_id
    await settle()
    assert await offered(sp) == 12.0


async def test_TC_K_04_CS_replace_with_charging_profile_id(csms201, booted201):
    sp = await booted201()
    await start_tx(csms201, sp)
    assert (await set_profile(csms201, 1, profile(2, periods=[(0, 12.0)])))["status"] == "Accepted"
    await settle()
    assert await offered(sp) == 12.0
    assert (await set_profile(csms201, 1, profile(2, stack=3, periods=[(0, 7.0)])))["status"] == "Accepted"
    await settle()
    assert await offered(sp) == 7.0
    _, rs = await get_profiles(csms201, 3, {})
    assert [cp["stackLevel"] for r in rs for cp in r["chargingProfile"]] == [3]


async def test_TC_K_13_CS_persistent_over_reboot(csms201, booted201):
    sp = await booted201()
    assert (await set_profile(csms201, 1, profile(8, periods=[(0, 11.0)])))["status"] == "Accepted"
    assert (await set_profile(csms201, 0, absolute(9, [(0, 20.0)], "ChargingStationMaxProfile")))["status"] == "Accepted"
    await sp.stop()
    csms201.mark()
    sp.start()
    await csms201.expect("BootNotification", timeout=15)
    await csms201.expect("StatusNotification", timeout=10)
    _, rs = await get_profiles(csms201, 4, {})
    assert reported_ids(rs) == {8, 9}
    await start_tx(csms201, sp)
    assert await offered(sp) == 11.0


# -- K05 / F01 RequestStartTransaction with a chargingProfile ------------------------------------
async def test_TC_K_37_CS_remote_start_with_charging_profile(csms201, booted201):
    sp = await booted201()
    await sp.plug(1)
    cp = profile(21, "TxProfile", periods=[(0, 6.0), (300, 9.0)])
    answer = await csms201.call("RequestStartTransaction", {"idToken": {"idToken": "RS1", "type": "Central"},
                                                            "remoteStartId": 77, "evseId": 1, "chargingProfile": cp})
    assert answer["status"] == "Accepted"
    started = await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Started")
    tx_id = started["transactionInfo"]["transactionId"]
    await settle()
    assert await offered(sp) == 6.0
    got = limits(await composite(csms201, 1))
    assert got[0] == (0, 6.0) and got[1][1] == 9.0
    _, rs = await get_profiles(csms201, 5, {"chargingProfilePurpose": "TxProfile"}, evse=1)
    assert rs[0]["chargingProfile"][0]["transactionId"] == tx_id
    await asyncio.sleep(300)
    assert await offered(sp) == 9.0
    # the TxProfile ends with its transaction
    await sp.swipe("RS1")
    await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended")
    status, _ = await get_profiles(csms201, 6, {"chargingProfilePurpose": "TxProfile"})
    assert status == "NoProfiles"


# -- K08 GetCompositeSchedule ------------------------------------------------------------------------
async def test_TC_K_39_CS_composite_no_profile(csms201, booted201):
    await booted201()
    answer = await composite(csms201, 1, duration=300)
    assert answer["status"] == "Accepted"
    s = answer["schedule"]
    assert s["evseId"] == 1 and s["duration"] == 300 and s["chargingRateUnit"] == "A"
    assert abs((parse_iso(s["scheduleStart"]) - wall_now()).total_seconds()) < 5
    assert limits(answer) == [(0, MAX_A)]


async def test_TC_K_40_CS_composite_stacking(csms201, booted201):
    """Two TxDefaultProfiles: stack level 1 (150 s) over stack level 0 (6 / 8 / 10 A)."""
    sp = await booted201()
    low = absolute(1, [(0, 6.0), (100, 8.0), (200, 10.0)], stack=0, duration=400)
    high = absolute(2, [(0, 7.0), (100, 9.0)], stack=1, duration=150)
    assert (await set_profile(csms201, 1, low))["status"] == "Accepted"
    assert (await set_profile(csms201, 1, high))["status"] == "Accepted"
    await start_tx(csms201, sp)
    got = limits(await composite(csms201, 1, duration=450))
    assert [v for _, v in got] == [7.0, 9.0, 8.0, 10.0, MAX_A]
    assert all(abs(s - e) <= 2 for (s, _), e in zip(got, [0, 100, 150, 200, 400], strict=False))
    in_w = await composite(csms201, 1, duration=400, unit="W")
    assert in_w["schedule"]["chargingSchedulePeriod"][0]["limit"] == 7.0 * 230 * 3


async def test_TC_K_41_CS_composite_combining_purposes(csms201, booted201):
    """ChargingStationMaxProfile 10 A, TxDefaultProfile 12 A, TxProfile 8 A then 14 A: the minimum."""
    sp = await booted201()
    tx_id = await start_tx(csms201, sp)
    assert (await set_profile(csms201, 0, absolute(1, [(0, 10.0)], "ChargingStationMaxProfile")))["status"] == "Accepted"
    assert (await set_profile(csms201, 1, profile(2, periods=[(0, 12.0)])))["status"] == "Accepted"
    tx = profile(3, "TxProfile", periods=[(0, 8.0), (120, 14.0)], kind="Absolute", start=iso(wall_now()), tx=tx_id)
    assert (await set_profile(csms201, 1, tx))["status"] == "Accepted"
    got = limits(await composite(csms201, 1, duration=300))
    assert [v for _, v in got] == [8.0, 10.0]
    await settle()
    assert await offered(sp) == 8.0


async def test_TC_K_47_CS_composite_unknown_evse(csms201, booted201):
    await booted201()
    answer = await composite(csms201, 5)
    assert answer["status"] == "Rejected" and "schedule" not in answer


# -- K09 GetChargingProfiles -------------------------------------------------------------------------
async def installed_three(csms201, sp) -> str:
    """Max profile on 0 (id 1), TxDefaultProfile on EVSE 1 (id 2, stack 2), TxProfile on EVSE 1 (id 3)."""
    tx_id = await start_tx(csms201, sp)
    assert (await set_profile(csms201, 0, absolute(1, [(0, 20.0)], "ChargingStationMaxProfile")))["status"] == "Accepted"
    assert (await set_profile(csms201, 1, profile(2, stack=2, periods=[(0, 12.0)])))["status"] == "Accepted"
    assert (await set_profile(csms201, 1, profile(3, "TxProfile", stack=1, tx=tx_id)))["status"] == "Accepted"
    return tx_id


async def test_TC_K_29_CS_get_charging_profiles_evse_0(csms201, booted201):
    sp = await booted201()
    await installed_three(csms201, sp)
    _, rs = await get_profiles(csms201, 10, {}, evse=0)
    assert reported_ids(rs) == {1} and rs[0]["evseId"] == 0 and rs[0]["chargingLimitSource"] == "CSO"
    assert rs[0]["chargingProfile"][0]["chargingProfilePurpose"] == "ChargingStationMaxProfile"


async def test_TC_K_30_CS_get_charging_profiles_evse_above_0(csms201, booted201):
    sp = await booted201()
    await installed_three(csms201, sp)
    _, rs = await get_profiles(csms201, 11, {}, evse=1)
    assert reported_ids(rs) == {2, 3} and all(r["evseId"] == 1 for r in rs)


async def test_TC_K_31_CS_get_charging_profiles_no_evse(csms201, booted201):
    """Every profile, one ReportChargingProfiles per EVSE (tbc on all but the last)."""
    sp = await booted201()
    await installed_three(csms201, sp)
    _, rs = await get_profiles(csms201, 12, {})
    assert reported_ids(rs) == {1, 2, 3}
    assert [r["evseId"] for r in rs] == [0, 1] and [r.get("tbc", False) for r in rs] == [True, False]


async def test_TC_K_32_CS_get_charging_profiles_by_id(csms201, booted201):
    sp = await booted201()
    await installed_three(csms201, sp)
    _, rs = await get_profiles(csms201, 13, {"chargingProfileId": [2, 3]})
    assert reported_ids(rs) == {2, 3}
    status, _ = await get_profiles(csms201, 14, {"chargingProfileId": [99]})
    assert status == "NoProfiles"


async def test_TC_K_33_CS_get_charging_profiles_evse_and_stack_level(csms201, booted201):
    sp = await booted201()
    await installed_three(csms201, sp)
    _, rs = await get_profiles(csms201, 15, {"stackLevel": 2}, evse=1)
    assert reported_ids(rs) == {2}


async def test_TC_K_34_CS_get_charging_profiles_evse_and_source(csms201, booted201):
    sp = await booted201()
    await installed_three(csms201, sp)
    _, rs = await get_profiles(csms201, 16, {"chargingLimitSource": ["CSO"]}, evse=1)
    assert reported_ids(rs) == {2, 3}
    status, _ = await get_profiles(csms201, 17, {"chargingLimitSource": ["EMS", "SO"]}, evse=1)
    assert status == "NoProfiles"


async def test_TC_K_35_CS_get_charging_profiles_evse_and_purpose(csms201, booted201):
    sp = await booted201()
    tx_id = await installed_three(csms201, sp)
    _, rs = await get_profiles(csms201, 18, {"chargingProfilePurpose": "TxProfile"}, evse=1)
    assert reported_ids(rs) == {3} and rs[0]["chargingProfile"][0]["transactionId"] == tx_id


async def test_TC_K_36_CS_get_charging_profiles_evse_purpose_and_stack_level(csms201, booted201):
    sp = await booted201()
    await installed_three(csms201, sp)
    _, rs = await get_profiles(csms201, 19, {"chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 2}, evse=1)
    assert reported_ids(rs) == {2}
    status, _ = await get_profiles(csms201, 20, {"chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 1}, evse=1)
    assert status == "NoProfiles"


# -- K10 ClearChargingProfile --------------------------------------------------------------------------
async def test_TC_K_05_CS_clear_with_charging_profile_id(csms201, booted201):
    sp = await booted201()
    await start_tx(csms201, sp)
    assert (await set_profile(csms201, 1, profile(2, periods=[(0, 12.0)])))["status"] == "Accepted"
    await settle()
    assert await offered(sp) == 12.0
    assert (await csms201.call("ClearChargingProfile", {"chargingProfileId": 2}))["status"] == "Accepted"
    await settle()
    assert await offered(sp) == MAX_A
    assert (await get_profiles(csms201, 21, {}))[0] == "NoProfiles"


async def test_TC_K_06_CS_clear_with_stack_level_purpose_one_profile(csms201, booted201):
    sp = await booted201()
    await installed_three(csms201, sp)
    answer = await csms201.call("ClearChargingProfile", {"chargingProfileCriteria": {
        "chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 2}})
    assert answer["status"] == "Accepted"
    _, rs = await get_profiles(csms201, 22, {})
    assert reported_ids(rs) == {1, 3}


async def test_TC_K_07_CS_clear_unknown_stack_level_purpose(csms201, booted201):
    sp = await booted201()
    await installed_three(csms201, sp)
    answer = await csms201.call("ClearChargingProfile", {"chargingProfileCriteria": {
        "chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 7}})
    assert answer["status"] == "Unknown"
    _, rs = await get_profiles(csms201, 23, {})
    assert reported_ids(rs) == {1, 2, 3}


async def test_TC_K_08_CS_clear_without_previous_profile(csms201, booted201):
    await booted201()
    assert (await csms201.call("ClearChargingProfile", {"chargingProfileId": 1}))["status"] == "Unknown"
    assert (await csms201.call("ClearChargingProfile", {}))["status"] == "Unknown"


async def test_TC_K_09_CS_clear_tx_default_profile_with_ongoing_transaction(csms201, booted201):
    sp = await booted201()
    tx_id = await start_tx(csms201, sp)
    assert (await set_profile(csms201, 1, profile(2, periods=[(0, 10.0)])))["status"] == "Accepted"
    await settle()
    assert await offered(sp) == 10.0
    csms201.mark()
    answer = await csms201.call("ClearChargingProfile", {"chargingProfileCriteria": {
        "evseId": 1, "chargingProfilePurpose": "TxDefaultProfile"}})
    assert answer["status"] == "Accepted"
    ev = await csms201.expect("TransactionEvent", lambda p: p["triggerReason"] == "ChargingRateChanged")
    assert ev["transactionInfo"]["transactionId"] == tx_id
    await settle()
    assert await offered(sp) == MAX_A
    assert (await sp.status())["evses"][0]["transaction"] is not None  # still charging


async def test_TC_K_24_CS_clear_stack_level_purpose_multiple_profiles(csms201, booted201):
    """Conditional (more than one EVSE): TxDefaultProfiles of stack level 1 on EVSE 1 and 2 and
    one of stack level 2: the criteria clear both of level 1."""
    await booted201(evses=2)
    for pid, evse, stack in ((1, 1, 1), (2, 2, 1), (3, 1, 2)):
        assert (await set_profile(csms201, evse, profile(pid, stack=stack)))["status"] == "Accepted"
    answer = await csms201.call("ClearChargingProfile", {"chargingProfileCriteria": {
        "chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 1}})
    assert answer["status"] == "Accepted"
    _, rs = await get_profiles(csms201, 24, {})
    assert reported_ids(rs) == {3}


# -- the limit during a transaction, as the CSMS hears of it ------------------------------------------
async def test_K_period_boundary_reaches_the_ev_and_is_reported(csms201, booted201):
    """A TxProfile 16 A then 6 A from 60 s: at the boundary (a timer, no poll) the offer drops
    and a TransactionEvent ChargingRateChanged tells the CSMS."""
    sp = await booted201()
    tx_id = await start_tx(csms201, sp)
    cp = profile(5, "TxProfile", periods=[(0, 16.0), (60, 6.0)], kind="Absolute", start=iso(wall_now()), tx=tx_id)
    assert (await set_profile(csms201, 1, cp))["status"] == "Accepted"
    await csms201.expect("TransactionEvent", lambda p: p["triggerReason"] == "ChargingRateChanged")
    await settle()
    assert await offered(sp) == 16.0
    before = wall_now()
    ev = await csms201.expect("TransactionEvent", lambda p: p["triggerReason"] == "ChargingRateChanged", timeout=90)
    assert 55 <= (parse_iso(ev["timestamp"]) - before).total_seconds() <= 62
    await settle()
    assert await offered(sp) == 6.0


async def test_K_limit_change_significance(csms201, booted201):
    """SmartChargingCtrlr.LimitChangeSignificance 50 %: 32 A -> 20 A (37.5 %) is not reported;
    then 8 A is, being 75 % below the rate last reported (32 A)."""
    sp = await booted201(variables=[var("SmartChargingCtrlr", "LimitChangeSignificance", "50")])
    tx_id = await start_tx(csms201, sp)
    assert (await set_profile(csms201, 1, profile(1, periods=[(0, 20.0)])))["status"] == "Accepted"
    await settle()
    assert await offered(sp) == 20.0
    assert not [p for p in csms201.calls("TransactionEvent") if p["triggerReason"] == "ChargingRateChanged"]
    assert (await set_profile(csms201, 1, profile(2, "TxProfile", periods=[(0, 8.0)], tx=tx_id)))["status"] == "Accepted"
    await csms201.expect("TransactionEvent", lambda p: p["triggerReason"] == "ChargingRateChanged")
    await settle()
    assert await offered(sp) == 8.0


async def test_TC_K_38_CS_remote_start_ignores_profile_without_smart_charging(csms201, booted201):
    """SmartChargingCtrlr.Enabled false: the remote start is Accepted, its TxProfile ignored."""
    sp = await booted201(variables=[var("SmartChargingCtrlr", "Enabled", "false")])
    await sp.plug(1)
    cp = profile(21, "TxProfile", periods=[(0, 6.0)])
    answer = await csms201.call("RequestStartTransaction", {"idToken": {"idToken": "RS1", "type": "Central"},
                                                            "remoteStartId": 78, "evseId": 1, "chargingProfile": cp})
    assert answer["status"] == "Accepted"
    await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Started")
    await settle()
    assert await offered(sp) == MAX_A
    assert (await get_profiles(csms201, 30, {}))[0] == "NoProfiles"


async def test_K_entries_charging_profiles_variable(csms201, booted201):
    """SmartChargingCtrlr.EntriesChargingProfiles counts the installed profiles (read from the
    station's device model: GetVariables is another block's)."""
    sp = await booted201()

    def entries() -> int:
        return sp.rt.adapter.dm.value("SmartChargingCtrlr", "EntriesChargingProfiles")

    assert entries() == 0
    assert (await set_profile(csms201, 1, profile(1)))["status"] == "Accepted"
    assert (await set_profile(csms201, 0, absolute(2, [(0, 20.0)], "ChargingStationMaxProfile")))["status"] == "Accepted"
    assert entries() == 2
    assert (await csms201.call("ClearChargingProfile", {"chargingProfileId": 1}))["status"] == "Accepted"
    assert entries() == 1


async def test_K_tx_profile_before_the_session_tx_start_point_ev_connected(csms201, booted201):
    """TxStartPoint EVConnected: the transaction runs from the plug; a TxProfile for it, set before
    the driver is authorized, is the first current the EV is offered; it ends with the transaction."""
    sp = await booted201(variables=[var("TxCtrlr", "TxStartPoint", "EVConnected")])
    await sp.plug(1)
    started = await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Started")
    tx_id = started["transactionInfo"]["transactionId"]
    assert (await set_profile(csms201, 1, profile(5, "TxProfile", periods=[(0, 7.0)], tx=tx_id)))["status"] == "Accepted"
    await sp.swipe("TAG1")
    await csms201.expect("TransactionEvent", lambda p: p["triggerReason"] == "Authorized")
    await settle()
    assert await offered(sp) == 7.0
    await sp.unplug(1)
    await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended")
    assert (await get_profiles(csms201, 31, {}))[0] == "NoProfiles"


async def test_TC_P_04_CS_custom_data_in_a_charging_profile(csms201, booted201):
    await booted201()
    profile = {"id": 77, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
               "chargingProfileKind": "Absolute", "customData": {"vendorId": "com.example", "tariff": "A"},
               "chargingSchedule": [{"id": 1, "startSchedule": "2026-01-01T00:00:00Z", "chargingRateUnit": "A",
                                     "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]}]}
    answer = await csms201.call("SetChargingProfile", {"evseId": 0, "chargingProfile": profile})
    assert answer["status"] == "Accepted"


async def test_TC_K_52_CS_external_limit_reported_and_notified(csms201, booted201):
    """K11-K13: an energy management system limits the station (the local API is its input): the
    limit reaches the EV, NotifyChargingLimit tells the CSMS, GetChargingProfiles reports the
    ChargingStationExternalConstraints with source EMS; lifting it sends ClearedChargingLimit."""
    sp = await booted201(variables=[var("SmartChargingCtrlr", "NotifyChargingLimitWithSchedules", "true")])
    got = await sp.api("POST", "/api/external-limit", {"evse": 0, "limit": 10, "unit": "A"})
    assert got["changed"] is True
    note = await csms201.expect("NotifyChargingLimit")
    assert note["chargingLimit"]["chargingLimitSource"] == "EMS"
    assert note["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"] == 10.0
    answer = await csms201.call("GetChargingProfiles", {"requestId": 9, "chargingProfile": {
        "chargingLimitSource": ["EMS"]}})
    assert answer["status"] == "Accepted"
    rep = await csms201.expect("ReportChargingProfiles")
    assert rep["chargingLimitSource"] == "EMS"
    assert rep["chargingProfile"][0]["chargingProfilePurpose"] == "ChargingStationExternalConstraints"
    await sp.plug()
    await sp.swipe("TAG1")
    await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Started")
    await asyncio.sleep(1)
    assert (await sp.status())["evses"][0]["offered_a"] == 10.0
    await sp.api("POST", "/api/external-limit", {"evse": 0, "limit": None})
    cleared = await csms201.expect("ClearedChargingLimit")
    assert cleared == {"chargingLimitSource": "EMS"}
    await asyncio.sleep(1)
    assert (await sp.status())["evses"][0]["offered_a"] > 10.0
    bad = await sp.api("POST", "/api/external-limit", {"evse": 5, "limit": 3}, expect=400)
    assert "evse" in bad["error"]

"""Issue 7, OCPP 1.6 adapter: the defects found by trying the station against independent CSMSs,
each proved fixed over the real websocket (scripted CSMS on 127.0.0.1, the station in process on
virtual time), and the one-shot-timer schedules of the shared services on a ManualScheduler."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime

from station.metering import AlignedSchedule, SampledSchedule, next_aligned
from station.scheduler import ManualScheduler
from tests.integration.harness import CallErrorReply, start_session

KEY1 = "0123456789abcdef0123"
KEY2 = "fedcba9876543210fedcba"


def basic(station_id: str, key: str) -> str:
    return "Basic " + base64.b64encode(f"{station_id}:{key}".encode()).decode()


def toml(tmp_path, name: str, station: str) -> str:
    path = tmp_path / name
    path.write_text(f"[station]\n{station}\n\n[[evse]]\nid = 1\n")
    return str(path)


def energy(mv: dict) -> float:
    return float(next(s["value"] for s in mv["meterValue"][0]["sampledValue"]
                      if s["measurand"] == "Energy.Active.Import.Register"))


async def until_registration(sp, status: str) -> None:
    for _ in range(100):
        if (await sp.status())["registration"] == status:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"registration never became {status}")


# -- a. TriggerMessage MeterValues: 0 is the main meter, none is every connector (1.6 5.17) ---------
async def test_trigger_meter_values_connector_0_is_the_station_total_and_none_is_every_connector(csms, booted):
    sp = await booted(evses=2)
    for evse, tag in ((1, "TAG1"), (2, "TAG2")):
        await sp.plug(evse)
        await csms.expect_status(evse, "Preparing")
        await sp.swipe(tag, evse)
        await csms.expect("StartTransaction", lambda p, c=evse: p["connectorId"] == c)
    await asyncio.sleep(60)  # both charge for a minute
    for evse, tag in ((1, "TAG1"), (2, "TAG2")):
        await sp.swipe(tag, evse)
        await csms.expect("StopTransaction", since=0, timeout=10)
    await csms.expect_status(1, "Finishing", since=0)
    await csms.expect_status(2, "Finishing", since=0)

    csms.mark()
    assert (await csms.call("TriggerMessage", {"requestedMessage": "MeterValues"}))["status"] == "Accepted"
    each = {}
    for _ in range(2):
        mv = await csms.expect("MeterValues")
        each[mv["connectorId"]] = energy(mv)
    assert set(each) == {1, 2} and each[1] > 0 and each[2] > 0

    r = await csms.call("TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 0})
    assert r["status"] == "Accepted"
    main = await csms.expect("MeterValues")
    assert main["connectorId"] == 0 and "transactionId" not in main
    assert abs(energy(main) - (each[1] + each[2])) <= 0.2, (main, each)
    assert {s["context"] for s in main["meterValue"][0]["sampledValue"]} == {"Trigger"}
    await csms.no_call("MeterValues", 1.0)  # one message for connector 0, not one per connector


# -- b. configuration keys are CiString: case-insensitive ------------------------------------------
async def test_change_and_get_configuration_find_keys_case_insensitively(csms, booted):
    await booted()
    r = await csms.call("ChangeConfiguration", {"key": "ConnectionTimeout", "value": "42"})
    assert r["status"] == "Accepted"
    got = await csms.call("GetConfiguration", {"key": ["connectiontimeout", "ConnectionTimeOut"]})
    assert got["configurationKey"] == [{"key": "ConnectionTimeOut", "readonly": False, "value": "42"}] * 2
    assert "unknownKey" not in got
    r = await csms.call("ChangeConfiguration", {"key": "numberofconnectors", "value": "3"})
    assert r["status"] == "Rejected"  # found, and read-only
    r = await csms.call("ChangeConfiguration", {"key": "ConnectionTimeOutX", "value": "3"})
    assert r["status"] == "NotSupported"


async def test_connection_timeout_set_under_another_case_applies(csms, booted):
    sp = await booted()
    assert (await csms.call("ChangeConfiguration", {"key": "connectiontimeout", "value": "2"}))["status"] == "Accepted"
    await sp.swipe("TAG1")
    await csms.expect_status(1, "Preparing")
    await csms.expect_status(1, "Available", timeout=4)  # the 5 s of the test config would not have run out


# -- c. SecurityProfile: one source (station.security_profile), reported as the link uses it ----------
async def test_security_profile_from_ocpp_config_does_not_contradict_the_link(csms, booted):
    sp = await booted(ocpp_config={"SecurityProfile": "1", "AuthorizationKey": KEY1})
    got = await csms.call("GetConfiguration", {"key": ["SecurityProfile"]})
    # writable (security whitepaper: ChangeConfiguration may raise it, test_octt16_security.py)
    assert got["configurationKey"] == [{"key": "SecurityProfile", "readonly": False, "value": "0"}]
    assert csms.auth_headers == [None]  # profile 0, as reported
    assert "station.security_profile" in sp.log()  # the ignored --ocpp-config value is named


async def test_security_profile_of_the_station_config_is_reported(csms, booted, tmp_path):
    await booted(config=toml(tmp_path, "sp1.toml", "security_profile = 1"), ocpp_config={"AuthorizationKey": KEY1})
    got = await csms.call("GetConfiguration", {"key": ["SecurityProfile"]})
    assert got["configurationKey"][0]["value"] == "1"
    assert csms.auth_headers == [basic("CS001", KEY1)]


# -- d. BootNotification: chargeBoxSerialNumber too --------------------------------------------------
async def test_boot_notification_carries_both_serial_numbers(csms, make_station, tmp_path):
    sp = make_station(config=toml(tmp_path, "serial.toml", 'serial = "SN-0042"'))
    sp.start()
    boot = await csms.expect("BootNotification", timeout=15)
    assert boot["chargePointSerialNumber"] == "SN-0042"
    assert boot["chargeBoxSerialNumber"] == "SN-0042"


# -- e. remote start / stop while the boot is Pending: Rejected ------------------------------------------
async def test_remote_start_while_boot_pending_is_rejected(csms, make_station):
    csms.boot_status = "Pending"
    sp = make_station()
    sp.start()
    await csms.expect("BootNotification", timeout=15)
    await sp.wait_api()
    await until_registration(sp, "Pending")
    await sp.plug()
    r = await csms.call("RemoteStartTransaction", {"idTag": "TAG1", "connectorId": 1})
    assert r["status"] == "Rejected"
    r = await csms.call("RemoteStartTransaction", {"idTag": "TAG1"})
    assert r["status"] == "Rejected"
    await csms.no_call("StartTransaction", 2.0)


async def test_remote_stop_while_boot_pending_is_rejected(csms, booted):
    sp = await booted()
    await start_session(csms, sp)
    tx_id = 1  # the scripted CSMS numbers transactions from 1
    csms.boot_status = "Pending"
    assert (await csms.call("TriggerMessage", {"requestedMessage": "BootNotification"}))["status"] == "Accepted"
    await csms.expect("BootNotification")
    await until_registration(sp, "Pending")
    r = await csms.call("RemoteStopTransaction", {"transactionId": tx_id})
    assert r["status"] == "Rejected"
    await csms.no_call("StopTransaction", 1.0)
    csms.boot_status = "Accepted"  # accepted again: the same request is carried out
    await csms.call("TriggerMessage", {"requestedMessage": "BootNotification"})
    await until_registration(sp, "Accepted")
    assert (await csms.call("RemoteStopTransaction", {"transactionId": tx_id}))["status"] == "Accepted"
    stop = await csms.expect("StopTransaction")
    assert stop["reason"] == "Remote"


# -- f. AuthorizationKey changed: reconnect with it (OCTT TC_073_CS) ------------------------------------
async def test_TC_073_update_authorization_key_reconnects_with_it(csms, booted, tmp_path):
    await booted(config=toml(tmp_path, "sp1.toml", "security_profile = 1"), ocpp_config={"AuthorizationKey": KEY1})
    assert csms.auth_headers == [basic("CS001", KEY1)]
    r = await csms.call("ChangeConfiguration", {"key": "AuthorizationKey", "value": KEY2})
    assert r["status"] == "Accepted"
    await asyncio.wait_for(csms.disconnected.wait(), 5)
    await asyncio.wait_for(csms.connected.wait(), 10)
    assert csms.auth_headers == [basic("CS001", KEY1), basic("CS001", KEY2)]
    got = await csms.call("GetConfiguration", {"key": ["HeartbeatInterval"]})  # the new connection works
    assert got["configurationKey"]
    assert len(csms.calls("BootNotification")) == 1  # a reconnect, not a reboot


async def test_authorization_key_change_with_profile_0_keeps_the_connection(csms, booted):
    await booted()
    assert (await csms.call("ChangeConfiguration", {"key": "AuthorizationKey", "value": KEY2}))["status"] == "Accepted"
    await asyncio.sleep(3)
    assert csms.connections == 1 and csms.auth_headers == [None]


# -- g. a changed MeterValueSampleInterval applies to the running transaction -------------------------
async def test_sample_interval_set_during_a_transaction_starts_sampling(csms, booted):
    sp = await booted()  # MeterValueSampleInterval 0: no samples
    await start_session(csms, sp)
    await csms.no_call("MeterValues", 5.0)
    assert (await csms.call("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "2"}))["status"] == "Accepted"
    csms.mark()
    first = await csms.expect("MeterValues", timeout=3)
    second = await csms.expect("MeterValues", timeout=3)
    assert first["transactionId"] == second["transactionId"] == 1
    times = [r.at for r in csms.received if r.action == "MeterValues"]
    assert abs((times[-1] - times[-2]) - 2.0) < 0.5, times


async def test_shorter_sample_interval_applies_from_the_next_sample(csms, booted):
    sp = await booted(ocpp_config={"MeterValueSampleInterval": "60"})
    await start_session(csms, sp)
    assert (await csms.call("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "3"}))["status"] == "Accepted"
    mv = await csms.expect("MeterValues", timeout=5)  # not after the old 60 s
    assert mv["meterValue"][0]["sampledValue"][0]["context"] == "Sample.Periodic"
    await csms.expect("MeterValues", timeout=4)
    assert (await csms.call("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "0"}))["status"] == "Accepted"
    await csms.no_call("MeterValues", 10.0)  # 0: no more samples


# -- h. BootNotification Accepted: the link's back-off starts over -----------------------------------
async def test_boot_accepted_resets_the_reconnect_back_off(csms, make_station):
    """Three refused handshakes grow the back-off; once the boot is Accepted a dropped connection
    is retried after the short first delay (1-3 s), not after the grown one (8 s or more)."""
    csms.reject_handshake = 3
    sp = make_station()
    sp.start()
    await csms.expect("BootNotification", timeout=60)
    await csms.expect_status(1, "Available", since=0)
    assert len(csms.handshake_times) == 4
    await csms.drop_connection()
    await asyncio.wait_for(csms.disconnected.wait(), 5)
    dropped = asyncio.get_running_loop().time()
    await asyncio.wait_for(csms.connected.wait(), 30)
    assert csms.handshake_times[-1] - dropped <= 3.5, csms.handshake_times
    assert sp.running


# -- boot retry and heartbeat as re-armed timers -----------------------------------------------------
async def test_boot_notification_that_fails_is_sent_again_after_30_s(csms, make_station):
    answers = iter([CallErrorReply("InternalError", "not now")])
    csms.responders["BootNotification"] = lambda p: next(answers, None)
    sp = make_station()
    sp.start()
    await csms.expect("BootNotification", timeout=15)
    await csms.no_call("BootNotification", 25.0)
    await csms.expect("BootNotification", timeout=10)
    await csms.expect_status(1, "Available")
    boots = [r.at for r in csms.received if r.action == "BootNotification"]
    assert abs((boots[1] - boots[0]) - 30.0) < 1.0, boots
    await until_registration(sp, "Accepted")


# -- heartbeat as a re-armed timer ------------------------------------------------------------------
async def test_heartbeat_after_the_interval_and_changed_interval_applies(csms, booted):
    csms.boot_interval = 20  # the BootNotification answer sets HeartbeatInterval
    await booted()
    await csms.no_call("Heartbeat", 15.0)
    await csms.expect("Heartbeat", timeout=10)
    assert (await csms.call("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "5"}))["status"] == "Accepted"
    csms.mark()
    await csms.expect("Heartbeat", timeout=7)
    await csms.expect("Heartbeat", timeout=7)
    times = [r.at for r in csms.received if r.action == "Heartbeat"]
    assert abs((times[-1] - times[-2]) - 5.0) < 0.5, times


# -- the schedules of station/metering.py on a ManualScheduler ---------------------------------------
def test_sampled_schedule_is_a_rearmed_timer_that_follows_a_changed_interval():
    s = ManualScheduler()
    interval = [10.0]
    fired: list[float] = []
    sched = SampledSchedule(s, lambda: interval[0], lambda: fired.append(s.monotonic()))
    t0 = s.monotonic()
    sched.start()
    s.advance(25)
    assert [t - t0 for t in fired] == [10, 20]
    interval[0] = 2
    sched.interval_changed()  # the next sample one new interval after the last one: already due
    s.advance(0)
    assert [t - t0 for t in fired] == [10, 20, 25]
    s.advance(4)
    assert [t - t0 for t in fired] == [10, 20, 25, 27, 29]
    interval[0] = 0
    sched.interval_changed()
    s.advance(100)
    assert len(fired) == 5 and s.pending == 0  # 0: no timer at all
    interval[0] = 5
    sched.interval_changed()
    sched.stop()
    s.advance(100)
    assert len(fired) == 5 and s.pending == 0


def test_aligned_schedule_fires_on_clock_boundaries():
    s = ManualScheduler(start=datetime(2026, 1, 1, 10, 0, 7, tzinfo=UTC))
    interval = [15.0]
    fired: list[datetime] = []
    sched = AlignedSchedule(s, lambda: interval[0], lambda: fired.append(s.now()))
    sched.start()
    s.advance(40)
    assert [t.second for t in fired] == [15, 30, 45]
    interval[0] = 60
    sched.interval_changed()
    s.advance(60)
    assert [(t.minute, t.second) for t in fired[3:]] == [(1, 0)]
    assert s.pending == 1
    sched.stop()
    assert s.pending == 0
    assert next_aligned(datetime(2026, 1, 1, 23, 59, 50, tzinfo=UTC), 900) == datetime(2026, 1, 2, tzinfo=UTC)

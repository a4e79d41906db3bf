"""Security events the station observes outside the security requests (whitepaper ed. 3, issue 9):
InvalidMessages (throttled), MemoryExhaustion, TamperDetectionActivated.
In process, virtual time, over the real websocket; each test asserts the SecurityEventNotification
the CSMS receives.
"""

from __future__ import annotations

import sqlite3

from station.ocpp16.security_events import INVALID_MESSAGES_INTERVAL_S, MEMORY_EXHAUSTION_INTERVAL_S
from tests.integration.harness import CallErrorReply, ScriptedCsms


def events(csms: ScriptedCsms, kind: str) -> list[dict]:
    return [p for p in csms.calls("SecurityEventNotification") if p["type"] == kind]


async def test_invalid_messages_event_for_a_refused_call_throttled(csms, booted):
    await booted()
    # a ChangeConfiguration that breaks its schema: answered with a CallError
    answer = await csms.send_call_raw([2, "bad-1", "ChangeConfiguration", {"key": 5}])
    assert answer[0] == 4 and answer[1] == "bad-1"
    ev = await csms.expect("SecurityEventNotification", lambda p: p["type"] == "InvalidMessages")
    assert "ChangeConfiguration" in ev["techInfo"]
    # a burst of bad frames within the bound: answered, but no storm of events
    for i in range(20):
        answer = await csms.send_call_raw([2, f"bad-{i + 2}", "Reset", {"type": "Sometimes"}])
        assert answer[0] == 4
    await csms.no_call("SecurityEventNotification", INVALID_MESSAGES_INTERVAL_S - 10,
                       lambda p: p["type"] == "InvalidMessages")
    assert len(events(csms, "InvalidMessages")) == 1
    # after the bound: the next refused frame is reported, with the count of those held back
    await csms.no_call("SecurityEventNotification", 11, lambda p: p["type"] == "InvalidMessages")
    assert (await csms.send_call_raw([2, "bad-late", "Reset", {}]))[0] == 4
    ev = await csms.expect("SecurityEventNotification", lambda p: p["type"] == "InvalidMessages")
    assert "20 more" in ev["techInfo"]
    # a valid call is no invalid message
    assert await csms.call("GetConfiguration", {"key": ["HeartbeatInterval"]})
    await csms.no_call("SecurityEventNotification", INVALID_MESSAGES_INTERVAL_S + 5,
                       lambda p: p["type"] == "InvalidMessages")


class _FullDisk:
    """The SQLite connection of a store whose disk is full: every write fails as SQLite says it."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def execute(self, sql: str, params: object = ()) -> sqlite3.Cursor:
        if sql.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
            raise sqlite3.OperationalError("database or disk is full")
        return self.db.execute(sql, params)

    def __getattr__(self, name: str) -> object:
        return getattr(self.db, name)


async def test_memory_exhaustion_when_the_state_store_is_full(csms, booted):
    sp = await booted()
    store = sp.rt.adapter.store
    real = store.db._db
    store.db._db = _FullDisk(real)
    try:
        try:
            await csms.call("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "30"})
        except CallErrorReply:
            pass  # the write failed: the station says so
        ev = await csms.expect("SecurityEventNotification", lambda p: p["type"] == "MemoryExhaustion")
        assert "database or disk is full" in ev["techInfo"]
        # more failed writes within the bound: no second event
        try:
            await csms.call("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "40"})
        except CallErrorReply:
            pass
        await csms.no_call("SecurityEventNotification", MEMORY_EXHAUSTION_INTERVAL_S - 60,
                           lambda p: p["type"] == "MemoryExhaustion")
        assert len(events(csms, "MemoryExhaustion")) == 1
    finally:
        store.db._db = real
    # space again: the station works on
    assert (await csms.call("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "30"}))["status"] == "Accepted"


async def test_tamper_detection_activated_once_per_activation(csms, booted):
    sp = await booted()
    assert await sp.api("POST", "/api/tamper", {"active": True}) == {"active": True}
    ev = await csms.expect("SecurityEventNotification", lambda p: p["type"] == "TamperDetectionActivated")
    assert ev["timestamp"]
    await sp.api("POST", "/api/tamper", {"active": True})  # still active: no new event
    await csms.no_call("SecurityEventNotification", 5, lambda p: p["type"] == "TamperDetectionActivated")
    await sp.api("POST", "/api/tamper", {"active": False})
    await sp.api("POST", "/api/tamper", {"active": True})
    await csms.expect("SecurityEventNotification", lambda p: p["type"] == "TamperDetectionActivated")
    assert len(events(csms, "TamperDetectionActivated")) == 2
    await sp.api("POST", "/api/tamper", {"active": "yes"}, expect=400)


async def test_memory_exhaustion_while_offline_is_sent_when_the_station_is_online_again(csms, booted):
    """The disk is full while the CSMS is out of reach: the event cannot go through the outbox
    (it lives on that disk), so it is kept in memory and sent once the link is back, even while the
    disk is still full; once delivered it is not sent again."""
    import asyncio

    sp = await booted()
    await sp.link(False)
    await asyncio.wait_for(csms.disconnected.wait(), 5)
    store = sp.rt.adapter.store
    real = store.db._db
    store.db._db = _FullDisk(real)
    try:
        try:
            store.put("test", "write", 1)
        except sqlite3.OperationalError:
            pass
        await asyncio.sleep(5)
        assert not events(csms, "MemoryExhaustion")
        await sp.link(True)
        ev = await csms.expect("SecurityEventNotification", lambda p: p["type"] == "MemoryExhaustion", timeout=30)
        assert "database or disk is full" in ev["techInfo"]
    finally:
        store.db._db = real
    await sp.link(False)
    await sp.link(True)
    await csms.no_call("SecurityEventNotification", 30, lambda p: p["type"] == "MemoryExhaustion")
    assert len(events(csms, "MemoryExhaustion")) == 1


async def test_memory_exhaustion_whose_send_fails_is_sent_again(csms, booted):
    answers = iter([CallErrorReply("InternalError", "busy")])
    csms.responders["SecurityEventNotification"] = lambda p: next(answers, None) if p["type"] == "MemoryExhaustion" else None
    sp = await booted()
    store = sp.rt.adapter.store
    real = store.db._db
    store.db._db = _FullDisk(real)
    try:
        try:
            store.put("test", "write", 1)
        except sqlite3.OperationalError:
            pass
        await csms.expect("SecurityEventNotification", lambda p: p["type"] == "MemoryExhaustion")
        await csms.expect("SecurityEventNotification", lambda p: p["type"] == "MemoryExhaustion", timeout=120)
    finally:
        store.db._db = real


async def test_boot_security_events_go_through_the_outbox(csms, booted):
    """StartupOfTheDevice is queued like the other critical events: a CallError for it is an
    attempt, and it is sent again with the same message id (it was sent once, directly, before)."""
    answers = iter([CallErrorReply("InternalError", "try again")])
    csms.responders["SecurityEventNotification"] = lambda p: next(answers, None)
    await booted()
    first = await csms.expect("SecurityEventNotification", lambda p: p["type"] == "StartupOfTheDevice", since=0)
    again = await csms.expect("SecurityEventNotification", lambda p: p["type"] == "StartupOfTheDevice", timeout=120)
    assert first["timestamp"] == again["timestamp"]
    sent = [r for r in csms.received if r.action == "SecurityEventNotification"]
    assert len(sent) == 2 and sent[0].unique_id == sent[1].unique_id


async def test_tamper_detection_from_the_hardware_tamper_input(csms, make_station, tmp_path):
    """[hardware] tamper = 23 (simulated GPIO): the enclosure opened on the input line raises
    TamperDetectionActivated, by the same path as POST /api/tamper; once per activation."""
    config = tmp_path / "station.toml"
    config.write_text('[hardware]\ngpio = "sim"\ntamper = 23\ntamper_interval_s = 0.2\n\n[[evse]]\nid = 1\n')
    sp = make_station(config=str(config))
    sp.start()
    await csms.expect("BootNotification", timeout=15)
    await csms.expect_status(1, "Available", since=0)
    await sp.wait_api()
    await csms.no_call("SecurityEventNotification", 5, lambda p: p["type"] == "TamperDetectionActivated")
    await sp.api("POST", "/api/gpio", {"line": 23, "stuck": True})  # the door opens
    ev = await csms.expect("SecurityEventNotification", lambda p: p["type"] == "TamperDetectionActivated")
    assert ev["timestamp"]
    await csms.no_call("SecurityEventNotification", 5, lambda p: p["type"] == "TamperDetectionActivated")
    await sp.api("POST", "/api/gpio", {"line": 23, "stuck": False})
    await csms.no_call("SecurityEventNotification", 2, lambda p: p["type"] == "TamperDetectionActivated")
    await sp.api("POST", "/api/gpio", {"line": 23, "stuck": True})
    await csms.expect("SecurityEventNotification", lambda p: p["type"] == "TamperDetectionActivated")
    assert len(events(csms, "TamperDetectionActivated")) == 2


async def test_setting_system_time_when_the_wall_clock_jumps(csms, booted):
    """The system time is set (by hand, or NTP steps it): SettingSystemTime, once per jump."""
    import asyncio
    from datetime import timedelta

    await booted()
    await csms.no_call("SecurityEventNotification", within=10, pred=lambda p: p["type"] == "SettingSystemTime")
    loop = asyncio.get_running_loop()
    loop.wall_start += timedelta(minutes=15)
    got = await csms.expect("SecurityEventNotification", lambda p: p["type"] == "SettingSystemTime", timeout=30)
    assert "system time" in got.get("techInfo", "")
    await csms.no_call("SecurityEventNotification", within=20, pred=lambda p: p["type"] == "SettingSystemTime")

"""OCTT OCPP 1.6J section 2.17, Local Authorization List (TC_042_1, TC_042_2, TC_043, TC_043_1,
TC_043_2, TC_043_3, TC_008), performed against the real station in process on virtual time over
a real websocket; plus the list in use online and offline (LocalPreAuthorize,
LocalAuthorizeOffline), its precedence over the authorization cache, a restart, and a store
failure in the middle of an update.

A station without the profile is the station with LocalAuthListEnabled false: it answers
GetLocalListVersion -1 and SendLocalList NotSupported (TC_042_1, TC_043_1).
"""

from __future__ import annotations

import asyncio

from station.store import Store
from tests.integration.harness import start_session

ACCEPTED = {"status": "Accepted"}


def full(version: int, *tags: str, info: dict | None = None) -> dict:
    return {"listVersion": version, "updateType": "Full",
            "localAuthorizationList": [{"idTag": t, "idTagInfo": info or ACCEPTED} for t in tags]}


async def version(csms) -> int:
    return (await csms.call("GetLocalListVersion", {}))["listVersion"]


async def key(csms, name: str) -> str:
    return (await csms.call("GetConfiguration", {"key": [name]}))["configurationKey"][0]["value"]


async def go_offline(csms, sp) -> None:
    await sp.link(False)
    await asyncio.wait_for(csms.disconnected.wait(), 5)


# -- TC_042: GetLocalListVersion --------------------------------------------------------------------
async def test_TC_042_1_get_local_list_version_not_supported(csms, booted):
    """A station without a local list in use (LocalAuthListEnabled false): version -1."""
    await booted(ocpp_config={"LocalAuthListEnabled": "false"})
    assert await version(csms) == -1


async def test_TC_042_2_get_local_list_version_empty(csms, booted):
    """An empty list is version 0: on a new station, and after a full update without entries."""
    await booted()
    assert await key(csms, "LocalAuthListEnabled") == "true"
    assert "LocalAuthListManagement" in (await key(csms, "SupportedFeatureProfiles")).split(",")
    assert await version(csms) == 0
    assert (await csms.call("SendLocalList", full(3, "TAG1")))["status"] == "Accepted"
    assert await version(csms) == 3
    r = await csms.call("SendLocalList", {"listVersion": 4, "updateType": "Full", "localAuthorizationList": []})
    assert r["status"] == "Accepted"
    assert await version(csms) == 0


# -- TC_043: SendLocalList -------------------------------------------------------------------------
async def test_TC_043_send_local_authorization_list(csms, booted, make_station):
    """Full, then Differential (add, update, remove); the list and its version survive a restart
    and the list is what authorizes (LocalPreAuthorize)."""
    sp = await booted(ocpp_config={"LocalPreAuthorize": "true", "AuthorizationCacheEnabled": "false"})
    assert (await csms.call("SendLocalList", full(1, "TAG1", "TAG2", "TAG3")))["status"] == "Accepted"
    assert await version(csms) == 1
    diff = {"listVersion": 2, "updateType": "Differential", "localAuthorizationList": [
        {"idTag": "TAG2"},  # no idTagInfo: removed
        {"idTag": "TAG3", "idTagInfo": {"status": "Blocked"}},
        {"idTag": "TAG4", "idTagInfo": {"status": "Accepted", "expiryDate": "2099-01-01T00:00:00.000Z"}},
    ]}
    assert (await csms.call("SendLocalList", diff))["status"] == "Accepted"
    assert await version(csms) == 2
    assert set(sp.rt.station.local_list) == {"TAG1", "TAG3", "TAG4"}

    await sp.stop()
    csms.mark()
    sp.start()
    await csms.expect("BootNotification", timeout=15)
    await csms.expect_status(1, "Available", since=0)
    await sp.wait_api()
    assert await version(csms) == 2
    n_auth = len(csms.calls("Authorize"))
    await sp.plug()
    await csms.expect_status(1, "Preparing")
    await sp.swipe("TAG4")  # in the list, valid: no Authorize
    start = await csms.expect("StartTransaction")
    assert start["idTag"] == "TAG4"
    assert len(csms.calls("Authorize")) == n_auth
    await sp.swipe("TAG4")
    await csms.expect("StopTransaction")
    await sp.unplug()
    await csms.expect_status(1, "Available")
    await sp.plug()
    await sp.swipe("TAG3")  # Blocked in the list: LocalPreAuthorize does not apply, the CSMS is asked
    assert (await csms.expect("Authorize"))["idTag"] == "TAG3"


async def test_TC_043_1_send_local_list_not_supported(csms, booted):
    """LocalAuthListEnabled false: NotSupported, and nothing is written."""
    sp = await booted(ocpp_config={"LocalAuthListEnabled": "false"})
    r = await csms.call("SendLocalList", full(1, "A"))
    assert r["status"] == "NotSupported"
    assert sp.rt.station.local_list == {}
    assert (await csms.call("ChangeConfiguration", {"key": "LocalAuthListEnabled", "value": "true"}))["status"] == "Accepted"
    assert await version(csms) == 0


async def test_TC_043_2_send_local_list_version_mismatch(csms, booted):
    """A Differential whose version is not newer than the list's: VersionMismatch, nothing changes;
    a Full with any version is taken (the CSMS's way to resynchronise)."""
    sp = await booted()
    assert (await csms.call("SendLocalList", full(5, "TAG1")))["status"] == "Accepted"
    for v in (5, 4):
        diff = {"listVersion": v, "updateType": "Differential",
                "localAuthorizationList": [{"idTag": "TAG2", "idTagInfo": ACCEPTED}]}
        assert (await csms.call("SendLocalList", diff))["status"] == "VersionMismatch"
    assert await version(csms) == 5
    assert set(sp.rt.station.local_list) == {"TAG1"}
    assert (await csms.call("SendLocalList", full(2, "TAG2")))["status"] == "Accepted"
    assert await version(csms) == 2


async def test_TC_043_3_send_local_list_failed(csms, booted):
    """More entries than SendLocalListMaxLength, a list that would grow past LocalAuthListMaxLength,
    an idTag twice, a Full entry without idTagInfo: Failed, and the old list and version stay."""
    sp = await booted()
    send_max = int(await key(csms, "SendLocalListMaxLength"))
    list_max = int(await key(csms, "LocalAuthListMaxLength"))
    assert (await csms.call("SendLocalList", full(1, "KEEP")))["status"] == "Accepted"
    too_many = full(2, *(f"T{i}" for i in range(send_max + 1)))
    assert (await csms.call("SendLocalList", too_many))["status"] == "Failed"
    assert (await csms.call("SendLocalList", full(2, "A", "A")))["status"] == "Failed"
    no_info = {"listVersion": 2, "updateType": "Full", "localAuthorizationList": [{"idTag": "A"}]}
    assert (await csms.call("SendLocalList", no_info))["status"] == "Failed"
    assert await version(csms) == 1 and set(sp.rt.station.local_list) == {"KEEP"}
    # fill the list to its length, then one more by a Differential
    filled = full(2, *(f"T{i}" for i in range(list_max)))
    assert (await csms.call("SendLocalList", filled))["status"] == "Accepted"
    one_more = {"listVersion": 3, "updateType": "Differential",
                "localAuthorizationList": [{"idTag": "EXTRA", "idTagInfo": ACCEPTED}]}
    assert (await csms.call("SendLocalList", one_more))["status"] == "Failed"
    assert await version(csms) == 2 and len(sp.rt.station.local_list) == list_max


async def test_TC_043_3_a_store_failure_mid_update_fails_and_keeps_the_old_list(csms, booted, monkeypatch):
    """The store fails after part of a Full update is written: Failed, the old list and version are
    still in use (and on disk: the update was one transaction), and the next update works."""
    sp = await booted(ocpp_config={"LocalPreAuthorize": "true", "AuthorizationCacheEnabled": "false"})
    assert (await csms.call("SendLocalList", full(1, "TAG1", "TAG2")))["status"] == "Accepted"
    real_put, calls = Store.auth_put, []

    def failing_put(self, kind, *a, **kw):
        calls.append(kind)
        if len(calls) == 2:
            raise OSError("disk I/O error")
        return real_put(self, kind, *a, **kw)

    monkeypatch.setattr(Store, "auth_put", failing_put)
    assert (await csms.call("SendLocalList", full(2, "NEW1", "NEW2", "NEW3")))["status"] == "Failed"
    monkeypatch.undo()
    assert calls == ["local", "local"]
    assert await version(csms) == 1
    assert set(sp.rt.station.local_list) == {"TAG1", "TAG2"}
    assert set(sp.rt.store.auth_all("local")) == {"TAG1", "TAG2"}
    await sp.plug()
    await csms.expect_status(1, "Preparing")
    await sp.swipe("TAG1")
    await csms.expect("StartTransaction")
    assert not csms.calls("Authorize")
    assert (await csms.call("SendLocalList", full(2, "NEW1")))["status"] == "Accepted"
    assert await version(csms) == 2


# -- TC_008: start with an id in the list ------------------------------------------------------------
async def test_TC_008_start_with_id_in_local_authorization_list(csms, booted):
    """LocalPreAuthorize true: a card in the list starts at once, without Authorize."""
    sp = await booted(ocpp_config={"LocalPreAuthorize": "true", "AuthorizationCacheEnabled": "false"})
    assert (await csms.call("SendLocalList", full(1, "TAG1")))["status"] == "Accepted"
    await sp.swipe("TAG1")
    await csms.expect_status(1, "Preparing")
    await sp.plug()
    start = await csms.expect("StartTransaction")
    assert start["idTag"] == "TAG1"
    await csms.expect_status(1, "Charging")
    assert not csms.calls("Authorize"), "an id in the local list starts without Authorize"


async def test_list_id_without_local_pre_authorize_is_authorized_online_and_the_answer_does_not_change_the_list(csms, booted):
    csms.responders["Authorize"] = lambda p: {"idTagInfo": {"status": "Blocked"}}
    sp = await booted(ocpp_config={"LocalPreAuthorize": "false"})
    assert (await csms.call("SendLocalList", full(1, "TAG1")))["status"] == "Accepted"
    await sp.plug()
    await csms.expect_status(1, "Preparing")
    await sp.swipe("TAG1")
    assert (await csms.expect("Authorize"))["idTag"] == "TAG1"
    await csms.no_call("StartTransaction", 1.0)
    assert sp.rt.station.local_list["TAG1"].status == "Accepted"
    assert "TAG1" not in sp.rt.station.cache  # list ids are not cached (3.5.2)


async def test_disabling_the_list_stops_its_use_and_enabling_brings_it_back(csms, booted):
    """LocalAuthListEnabled is applied at once (the decision follows the key)."""
    sp = await booted(ocpp_config={"LocalPreAuthorize": "true", "AuthorizationCacheEnabled": "false"})
    assert (await csms.call("SendLocalList", full(7, "TAG1")))["status"] == "Accepted"
    assert (await csms.call("ChangeConfiguration", {"key": "LocalAuthListEnabled", "value": "false"}))["status"] == "Accepted"
    assert await version(csms) == -1
    await sp.swipe("TAG1")
    assert (await csms.expect("Authorize"))["idTag"] == "TAG1"  # the list is not used
    await csms.expect_status(1, "Preparing")
    await sp.swipe("TAG1")  # cancel
    await csms.expect_status(1, "Available")
    assert (await csms.call("ChangeConfiguration", {"key": "LocalAuthListEnabled", "value": "true"}))["status"] == "Accepted"
    assert await version(csms) == 7  # the entries were kept
    n_auth = len(csms.calls("Authorize"))
    await sp.plug()
    await sp.swipe("TAG1")
    await csms.expect("StartTransaction")
    assert len(csms.calls("Authorize")) == n_auth


# -- offline ----------------------------------------------------------------------------------------
async def test_offline_a_list_id_starts_with_local_authorize_offline(csms, booted):
    sp = await booted(ocpp_config={"LocalAuthorizeOffline": "true", "AuthorizationCacheEnabled": "false"})
    assert (await csms.call("SendLocalList", full(1, "TAG1")))["status"] == "Accepted"
    await go_offline(csms, sp)
    await sp.plug()
    await sp.swipe("TAG1")
    for _ in range(50):
        st = await sp.status()
        if st["evses"][0]["transaction"] is not None:
            break
        await asyncio.sleep(0.1)
    assert st["evses"][0]["transaction"]["id_token"] == "TAG1"


async def test_offline_list_id_refused_when_local_authorize_offline_false(csms, booted):
    sp = await booted(ocpp_config={"LocalAuthorizeOffline": "false", "AuthorizationCacheEnabled": "false"})
    assert (await csms.call("SendLocalList", full(1, "TAG1")))["status"] == "Accepted"
    await go_offline(csms, sp)
    await sp.plug()
    await sp.swipe("TAG1")
    await asyncio.sleep(1.0)
    st = await sp.status()
    assert st["evses"][0]["transaction"] is None and st["outbox"] == 0


async def test_the_list_takes_precedence_over_the_cache(csms, booted):
    """TAG1 is in the cache as Accepted (a session); the list says Blocked: offline it is refused."""
    sp = await booted(ocpp_config={"LocalAuthorizeOffline": "true", "AuthorizationCacheEnabled": "true"})
    await start_session(csms, sp)
    await sp.swipe("TAG1")
    await csms.expect("StopTransaction")
    await sp.unplug()
    await csms.expect_status(1, "Available")
    assert sp.rt.station.cache["TAG1"].status == "Accepted"
    r = await csms.call("SendLocalList", full(1, "TAG1", info={"status": "Blocked"}))
    assert r["status"] == "Accepted"
    await go_offline(csms, sp)
    await sp.plug()
    await sp.swipe("TAG1")
    await asyncio.sleep(1.0)
    st = await sp.status()
    assert st["evses"][0]["transaction"] is None and st["outbox"] == 0


# -- LocalListConflict (1.6 section 3.5.2) ---------------------------------------------------------
def conflicts(csms) -> list[dict]:
    return [p for p in csms.calls("StatusNotification") if p["errorCode"] == "LocalListConflict"]


async def test_a_start_answer_contradicting_the_list_is_reported_as_local_list_conflict(csms, booted):
    """The list says Accepted (started at once, LocalPreAuthorize), StartTransaction.conf says
    Blocked: a StatusNotification on connector 0 with errorCode LocalListConflict. The list is not
    changed by it (only SendLocalList changes it)."""
    csms.responders["StartTransaction"] = lambda p: {"transactionId": 5, "idTagInfo": {"status": "Blocked"}}
    sp = await booted(ocpp_config={"LocalPreAuthorize": "true", "AuthorizationCacheEnabled": "false"})
    assert (await csms.call("SendLocalList", full(1, "TAG1")))["status"] == "Accepted"
    await sp.plug()
    await sp.swipe("tag1")  # in the list (in any case): no Authorize
    await csms.expect("StartTransaction")
    sn = await csms.expect("StatusNotification", lambda p: p["errorCode"] == "LocalListConflict")
    assert sn["connectorId"] == 0 and sn["status"] == "Available" and "TAG1" in sn.get("info", "").upper()
    assert not csms.calls("Authorize")
    assert sp.rt.station.local_list["TAG1"].status == "Accepted"
    # the status reported afterwards is the plain one again
    await csms.call("TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 0})
    sn = await csms.expect("StatusNotification", lambda p: p["connectorId"] == 0)
    assert sn["errorCode"] == "NoError"


async def test_an_authorize_answer_contradicting_the_list_is_reported_as_local_list_conflict(csms, booted):
    csms.responders["Authorize"] = lambda p: {"idTagInfo": {"status": "Blocked"}}
    sp = await booted(ocpp_config={"LocalPreAuthorize": "false"})
    assert (await csms.call("SendLocalList", full(1, "TAG1")))["status"] == "Accepted"
    await sp.plug()
    await sp.swipe("TAG1")
    await csms.expect("Authorize")
    sn = await csms.expect("StatusNotification", lambda p: p["errorCode"] == "LocalListConflict")
    assert sn["connectorId"] == 0
    await csms.no_call("StartTransaction", 1.0)


async def test_answers_that_agree_with_the_list_or_concern_ids_outside_it_raise_no_conflict(csms, booted):
    csms.responders["Authorize"] = lambda p: {"idTagInfo": {"status": "Blocked" if p["idTag"] == "OTHER" else "Accepted"}}
    sp = await booted(ocpp_config={"LocalPreAuthorize": "false"})
    assert (await csms.call("SendLocalList", full(1, "TAG1")))["status"] == "Accepted"
    await sp.plug()
    await sp.swipe("OTHER")  # not in the list: a refusal is no conflict
    await csms.expect("Authorize")
    await sp.swipe("TAG1")  # in the list, and the CSMS agrees
    await csms.expect("StartTransaction")
    await csms.expect_status(1, "Charging")
    await asyncio.sleep(1)
    assert not conflicts(csms)


async def test_no_conflict_is_reported_while_the_list_is_not_in_use(csms, booted):
    csms.responders["Authorize"] = lambda p: {"idTagInfo": {"status": "Blocked"}}
    sp = await booted(ocpp_config={"LocalPreAuthorize": "false"})
    assert (await csms.call("SendLocalList", full(1, "TAG1")))["status"] == "Accepted"
    r = await csms.call("ChangeConfiguration", {"key": "LocalAuthListEnabled", "value": "false"})
    assert r["status"] == "Accepted"
    await sp.plug()
    await sp.swipe("TAG1")
    await csms.expect("Authorize")
    await asyncio.sleep(1)
    assert not conflicts(csms)

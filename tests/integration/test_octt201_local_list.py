"""OCPP 2.0.1 block D (local authorization list) and the block C cases about the list in use:
TC_D_01..TC_D_10, TC_C_21..TC_C_31, TC_C_40, TC_C_43, TC_C_58 — over a real websocket, in process,
on virtual time. The list's rules are the shared engine's (station/local_list.py), as for 1.6."""

from __future__ import annotations

import asyncio

from tests.conftest import var
from tests.integration.harness import go_offline_201, restart_201

ACCEPTED = {"status": "Accepted"}
PRE_AUTHORIZE = var("AuthCtrlr", "LocalPreAuthorize", "true")


def entry(tag: str, info: dict | None = ACCEPTED, kind: str = "ISO14443") -> dict:
    e: dict = {"idToken": {"idToken": tag, "type": kind}}
    if info is not None:
        e["idTokenInfo"] = info
    return e


def send(version: int, update: str, *entries: dict) -> dict:
    p: dict = {"versionNumber": version, "updateType": update}
    if entries:
        p["localAuthorizationList"] = list(entries)
    return p


async def version(csms201) -> int:
    return (await csms201.call("GetLocalListVersion", {}))["versionNumber"]


async def status(csms201, payload: dict) -> str:
    return (await csms201.call("SendLocalList", payload))["status"]


def dm_value(sp, component: str, variable: str) -> object:
    """A device model value as the station reports it (GetVariables is another block's)."""
    return sp.rt.adapter.dm.value(component, variable)


async def entries(csms201, sp) -> int:
    return int(dm_value(sp, "LocalAuthListCtrlr", "Entries"))


# -- D01 SendLocalList, D02 GetLocalListVersion --------------------------------------------------------
async def test_TC_D_01_CS_send_local_list_full(csms201, booted201):
    sp = await booted201()
    assert await version(csms201) == 0
    assert await status(csms201, send(1, "Full", entry("TAG1"), entry("TAG2", {"status": "Blocked"}))) == "Accepted"
    assert await version(csms201) == 1
    assert await entries(csms201, sp) == 2
    # a full update replaces the list
    assert await status(csms201, send(2, "Full", entry("TAG3"))) == "Accepted"
    assert await version(csms201) == 2 and await entries(csms201, sp) == 1


async def test_TC_D_02_CS_send_local_list_differential_update(csms201, booted201):
    sp = await booted201()
    assert await status(csms201, send(1, "Full", entry("TAG1"))) == "Accepted"
    assert await status(csms201, send(2, "Differential", entry("TAG2"), entry("TAG1", {"status": "Blocked"}))) == "Accepted"
    assert await version(csms201) == 2 and await entries(csms201, sp) == 2


async def test_TC_D_03_CS_send_local_list_differential_remove(csms201, booted201):
    sp = await booted201()
    assert await status(csms201, send(1, "Full", entry("TAG1"), entry("TAG2"))) == "Accepted"
    assert await status(csms201, send(2, "Differential", entry("TAG1", None))) == "Accepted"
    assert await version(csms201) == 2 and await entries(csms201, sp) == 1


async def test_TC_D_04_CS_send_local_list_full_with_empty_list(csms201, booted201):
    sp = await booted201()
    assert await status(csms201, send(3, "Full", entry("TAG1"))) == "Accepted"
    assert await status(csms201, send(4, "Full")) == "Accepted"
    assert await version(csms201) == 4 and await entries(csms201, sp) == 0


async def test_TC_D_05_CS_send_local_list_differential_with_empty_list(csms201, booted201):
    """Without entries a differential update only sets the version, of an empty list too."""
    sp = await booted201()
    assert await status(csms201, send(3, "Differential")) == "Accepted"
    assert await version(csms201) == 3 and await entries(csms201, sp) == 0
    assert await status(csms201, send(3, "Differential")) == "VersionMismatch"
    assert await status(csms201, send(4, "Full", entry("TAG1"))) == "Accepted"
    assert await status(csms201, send(5, "Differential")) == "Accepted"
    assert await version(csms201) == 5 and await entries(csms201, sp) == 1


async def test_TC_D_06_CS_send_local_list_version_mismatch(csms201, booted201):
    sp = await booted201()
    assert await status(csms201, send(5, "Full", entry("TAG1"))) == "Accepted"
    assert await status(csms201, send(5, "Differential", entry("TAG2"))) == "VersionMismatch"
    assert await status(csms201, send(4, "Differential", entry("TAG2"))) == "VersionMismatch"
    assert await version(csms201) == 5 and await entries(csms201, sp) == 1


async def test_TC_D_07_CS_send_local_list_persistent_over_reboot(csms201, booted201):
    sp = await booted201(variables=[PRE_AUTHORIZE])
    assert await status(csms201, send(7, "Full", entry("TAG1"))) == "Accepted"
    await restart_201(csms201, sp)
    assert await version(csms201) == 7 and await entries(csms201, sp) == 1
    # and the list is used: accepted without an Authorize
    await sp.plug()
    await sp.swipe("TAG1")
    started = await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Started")
    assert started["idToken"]["idToken"] == "TAG1"
    assert not csms201.calls("Authorize")


async def test_TC_D_08_CS_get_local_list_version_success(csms201, booted201):
    await booted201()
    assert await version(csms201) == 0
    assert await status(csms201, send(42, "Full", entry("TAG1"))) == "Accepted"
    assert await version(csms201) == 42


async def test_TC_D_10_CS_get_local_list_version_function_disabled(csms201, booted201):
    await booted201(variables=[var("LocalAuthListCtrlr", "Enabled", "false")])
    assert await version(csms201) == 0
    assert await status(csms201, send(1, "Full", entry("TAG1"))) == "Failed"


async def test_send_local_list_limits_fail(csms201, booted201):
    """More entries than ItemsPerMessage, or an id token twice: Failed, nothing changes."""
    sp = await booted201()
    n = int(dm_value(sp, "LocalAuthListCtrlr", "ItemsPerMessage"))
    many = [entry(f"T{i}") for i in range(n + 1)]
    assert await status(csms201, send(1, "Full", *many)) == "Failed"
    assert await status(csms201, send(1, "Full", entry("A"), entry("A"))) == "Failed"
    assert await version(csms201) == 0 and await entries(csms201, sp) == 0


async def test_send_local_list_version_zero_fails(csms201, booted201):
    """D01.FR.18: versionNumber 0 (or less) is refused, Full or Differential."""
    sp = await booted201()
    assert await status(csms201, send(0, "Full", entry("A"))) == "Failed"
    assert await status(csms201, send(0, "Full")) == "Failed"
    assert await status(csms201, send(0, "Differential", entry("A"))) == "Failed"
    assert await version(csms201) == 0 and await entries(csms201, sp) == 0


# -- C13/C14 the list in use online ------------------------------------------------------------------
async def test_TC_C_27_CS_online_local_list_accepted(csms201, booted201):
    sp = await booted201(variables=[PRE_AUTHORIZE])
    assert await status(csms201, send(1, "Full", entry("TAG1"))) == "Accepted"
    await sp.plug()
    await sp.swipe("TAG1")
    started = await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Started")
    assert started["idToken"] == {"idToken": "TAG1", "type": "ISO14443"}
    assert not csms201.calls("Authorize")


async def _refused_then_asked(csms201, sp, answer: str) -> dict:
    csms201.responders["Authorize"] = lambda p: {"idTokenInfo": {"status": answer}}
    await sp.plug()
    await sp.swipe("TAG1")
    return await csms201.expect("Authorize")


async def test_TC_C_28_CS_online_local_list_invalid_not_accepted(csms201, booted201):
    """The list says Invalid: the station asks (post-authorize); the CSMS says Invalid: no transaction."""
    sp = await booted201(variables=[PRE_AUTHORIZE])
    assert await status(csms201, send(1, "Full", entry("TAG1", {"status": "Invalid"}))) == "Accepted"
    auth = await _refused_then_asked(csms201, sp, "Invalid")
    assert auth["idToken"]["idToken"] == "TAG1"
    await csms201.no_call("TransactionEvent", 3, lambda p: p["eventType"] == "Started")


async def test_TC_C_29_CS_online_local_list_restricted(csms201, booted201):
    """A list entry whose validity (cacheExpiryDateTime) has passed is not used; the CSMS is asked."""
    sp = await booted201(variables=[PRE_AUTHORIZE])
    info = {"status": "Accepted", "cacheExpiryDateTime": "2020-01-01T00:00:00Z"}
    assert await status(csms201, send(1, "Full", entry("TAG1", info))) == "Accepted"
    await _refused_then_asked(csms201, sp, "NotAtThisTime")
    await csms201.no_call("TransactionEvent", 3, lambda p: p["eventType"] == "Started")


async def test_TC_C_30_CS_online_local_list_expired(csms201, booted201):
    sp = await booted201(variables=[PRE_AUTHORIZE])
    assert await status(csms201, send(1, "Full", entry("TAG1", {"status": "Expired"}))) == "Accepted"
    await _refused_then_asked(csms201, sp, "Expired")
    await csms201.no_call("TransactionEvent", 3, lambda p: p["eventType"] == "Started")


async def test_TC_C_31_CS_online_local_list_invalid_accepted(csms201, booted201):
    """The list says Invalid, the CSMS now says Accepted: the transaction starts."""
    sp = await booted201(variables=[PRE_AUTHORIZE])
    assert await status(csms201, send(1, "Full", entry("TAG1", {"status": "Invalid"}))) == "Accepted"
    await _refused_then_asked(csms201, sp, "Accepted")
    started = await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Started")
    assert started["idToken"]["idToken"] == "TAG1"


async def test_TC_C_58_CS_online_local_list_disable_post_authorize(csms201, booted201):
    sp = await booted201(variables=[PRE_AUTHORIZE, var("LocalAuthListCtrlr", "DisablePostAuthorize", "true")])
    assert await status(csms201, send(1, "Full", entry("TAG1", {"status": "Blocked"}))) == "Accepted"
    await sp.plug()
    await sp.swipe("TAG1")
    await csms201.no_call("Authorize", 3)
    assert not [p for p in csms201.calls("TransactionEvent") if p["eventType"] == "Started"]


# -- C15 the list in use offline ---------------------------------------------------------------------
async def _offline_swipe(csms201, sp, tag: str = "TAG1") -> None:
    await go_offline_201(csms201, sp)
    await sp.plug()
    await sp.swipe(tag)


async def test_TC_C_21_CS_offline_local_list_accepted(csms201, booted201):
    sp = await booted201()
    assert await status(csms201, send(1, "Full", entry("TAG1"))) == "Accepted"
    await _offline_swipe(csms201, sp)
    await asyncio.sleep(2)
    await sp.link(True)
    started = await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Started", timeout=30)
    assert started["offline"] is True and started["idToken"]["idToken"] == "TAG1"
    assert not csms201.calls("Authorize")


async def _offline_refused(csms201, sp, info: dict) -> None:
    assert await status(csms201, send(1, "Full", entry("TAG1", info))) == "Accepted"
    await _offline_swipe(csms201, sp)
    await asyncio.sleep(3)
    await sp.link(True)
    await csms201.expect("StatusNotification", timeout=30)
    await csms201.no_call("TransactionEvent", 3, lambda p: p["eventType"] == "Started")
    assert not csms201.calls("Authorize")


async def test_TC_C_22_CS_offline_local_list_invalid(csms201, booted201):
    sp = await booted201()
    await _offline_refused(csms201, sp, {"status": "Invalid"})


async def test_TC_C_23_CS_offline_local_list_restricted(csms201, booted201):
    sp = await booted201()
    await _offline_refused(csms201, sp, {"status": "NotAtThisLocation"})


async def test_TC_C_24_CS_offline_local_list_expired(csms201, booted201):
    sp = await booted201()
    await _offline_refused(csms201, sp, {"status": "Accepted", "cacheExpiryDateTime": "2020-01-01T00:00:00Z"})


async def test_TC_C_25_CS_offline_local_list_over_cache(csms201, booted201):
    """The cache says Accepted (an earlier Authorize), the list says Blocked: the list wins."""
    sp = await booted201()
    await sp.swipe("TAG1")  # no cable: authorized, cached, then dropped by the timeout
    await csms201.expect("Authorize")
    await asyncio.sleep(8)
    assert await status(csms201, send(1, "Full", entry("TAG1", {"status": "Blocked"}))) == "Accepted"
    csms201.mark()
    await _offline_swipe(csms201, sp)
    await asyncio.sleep(3)
    await sp.link(True)
    await csms201.expect("StatusNotification", timeout=30)
    await csms201.no_call("TransactionEvent", 3, lambda p: p["eventType"] == "Started")


# -- C09 group id with the list ------------------------------------------------------------------------
GROUP = {"idToken": "GROUP1", "type": "Central"}


async def test_TC_C_40_CS_group_id_success_with_local_list(csms201, booted201):
    """Started by TAG1 (group GROUP1, from the list), stopped by TAG2 of the same group."""
    sp = await booted201(variables=[PRE_AUTHORIZE])
    info = {"status": "Accepted", "groupIdToken": GROUP}
    assert await status(csms201, send(1, "Full", entry("TAG1", info), entry("TAG2", info))) == "Accepted"
    await sp.plug()
    await sp.swipe("TAG1")
    started = await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Started")
    await sp.swipe("TAG2")
    ended = await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended")
    assert ended["transactionInfo"]["transactionId"] == started["transactionInfo"]["transactionId"]
    assert ended["transactionInfo"]["stoppedReason"] == "Local"
    assert ended["idToken"]["idToken"] == "TAG2"
    assert not csms201.calls("Authorize")


async def test_TC_C_43_CS_group_id_invalid_status_with_local_list(csms201, booted201):
    """TAG2 has the group but is Blocked in the list and the CSMS says Blocked: it cannot stop."""
    sp = await booted201(variables=[PRE_AUTHORIZE])
    csms201.responders["Authorize"] = lambda p: {"idTokenInfo": {"status": "Blocked", "groupIdToken": GROUP}}
    assert await status(csms201, send(1, "Full", entry("TAG1", {"status": "Accepted", "groupIdToken": GROUP}),
                                      entry("TAG2", {"status": "Blocked", "groupIdToken": GROUP}))) == "Accepted"
    await sp.plug()
    await sp.swipe("TAG1")
    await csms201.expect("TransactionEvent", lambda p: p["eventType"] == "Started")
    await sp.swipe("TAG2")
    await csms201.expect("Authorize")
    await csms201.no_call("TransactionEvent", 3, lambda p: p["eventType"] == "Ended")

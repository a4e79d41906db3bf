"""OCPP 2.0.1 block C (authorization) over a real websocket, in process, on virtual time: id token
types, Authorize answers that refuse, group id tokens, the authorization cache (lifetime,
post-authorize, persistence, ClearCache), the offline rules, the master pass and authorization
switched off. The cases about the local list are in test_octt201_local_list.py.

TxStartPoint / TxStopPoint are the defaults (PowerPathClosed; EVConnected,Authorized)."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import var
from tests.integration.harness import go_offline_201, restart_201

PRE_AUTHORIZE = var("AuthCtrlr", "LocalPreAuthorize", "true")
GROUP = {"idToken": "GROUP1", "type": "Central"}
MASTER = {"idToken": "MASTER", "type": "Central"}


def is_started(p: dict) -> bool:
    return p["eventType"] == "Started"


def is_ended(p: dict) -> bool:
    return p["eventType"] == "Ended"


async def present(sp, tag: str, kind: str = "ISO14443", evse: int = 1) -> None:
    await sp.api("POST", f"/api/evses/{evse}/swipe", {"id_token": tag, "type": kind})


def answer(csms201, **by_tag: dict) -> None:
    """Authorize answers by idToken (Accepted for the others)."""
    csms201.responders["Authorize"] = lambda p: {"idTokenInfo": by_tag.get(p["idToken"]["idToken"], {"status": "Accepted"})}


def locked(sp, evse: int = 1) -> bool:
    return sp.rt.station.hw[evse].connector(1).lock.locked


async def session(csms201, sp, tag: str = "TAG1", evse: int = 1) -> dict:
    await sp.plug(evse)
    await sp.swipe(tag, evse)
    return await csms201.expect("TransactionEvent", is_started)


async def stop(csms201, sp, tag: str = "TAG1", evse: int = 1) -> dict:
    await sp.swipe(tag, evse)
    ended = await csms201.expect("TransactionEvent", is_ended)
    await sp.unplug(evse)
    await asyncio.sleep(1)
    return ended


async def cache(csms201, sp, tag: str = "TAG1", info: dict | None = None) -> None:
    """Put ``tag`` in the authorization cache: an Authorize answered ``info`` (no cable: dropped after
    EVConnectionTimeOut)."""
    answer(csms201, **{tag: info or {"status": "Accepted"}})
    await sp.swipe(tag)
    await csms201.expect("Authorize", lambda p: p["idToken"]["idToken"] == tag)
    await asyncio.sleep(8)
    csms201.responders.pop("Authorize", None)
    csms201.mark()


# -- C01 id token types ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["ISO14443", "ISO15693", "KeyCode", "Local", "MacAddress", "eMAID", "Central"])
async def test_C01_id_token_types(csms201, booted201, kind):
    sp = await booted201()
    await sp.plug()
    await present(sp, "TOKEN-1", kind)
    auth = await csms201.expect("Authorize")
    assert auth["idToken"] == {"idToken": "TOKEN-1", "type": kind}
    started = await csms201.expect("TransactionEvent", is_started)
    assert started["idToken"] == {"idToken": "TOKEN-1", "type": kind}


async def test_C01_no_authorization_token_type(csms201, booted201):
    """NoAuthorization: accepted locally, no Authorize."""
    sp = await booted201()
    await sp.plug()
    await present(sp, "ANYONE", "NoAuthorization")
    started = await csms201.expect("TransactionEvent", is_started)
    assert started["idToken"]["type"] == "NoAuthorization"
    assert not csms201.calls("Authorize")


async def test_C01_authorization_disabled(csms201, booted201):
    """AuthCtrlr.Enabled false: every token is accepted without asking."""
    sp = await booted201(variables=[var("AuthCtrlr", "Enabled", "false")])
    answer(csms201, TAG1={"status": "Blocked"})
    started = await session(csms201, sp)
    assert started["idToken"]["idToken"] == "TAG1"
    assert not csms201.calls("Authorize")


# -- C01 refused ------------------------------------------------------------------------------------------
async def _refused(csms201, sp, status: str) -> None:
    answer(csms201, TAG1={"status": status})
    await sp.plug()
    await sp.swipe("TAG1")
    await csms201.expect("Authorize")
    await csms201.no_call("TransactionEvent", 3, is_started)
    assert not locked(sp)


async def test_TC_C_02_CS_local_start_authorization_invalid(csms201, booted201):
    await _refused(csms201, await booted201(), "Invalid")


async def test_TC_C_06_CS_local_start_authorization_blocked(csms201, booted201):
    await _refused(csms201, await booted201(), "Blocked")


async def test_TC_C_07_CS_local_start_authorization_expired(csms201, booted201):
    await _refused(csms201, await booted201(), "Expired")


async def test_TC_C_56_CS_local_start_authorization_unknown(csms201, booted201):
    await _refused(csms201, await booted201(), "Unknown")


@pytest.mark.parametrize("status", ["NoCredit", "NotAllowedTypeEVSE", "NotAtThisLocation", "NotAtThisTime"])
async def test_C01_other_refusals(csms201, booted201, status):
    await _refused(csms201, await booted201(), status)


async def test_TC_C_05_CS_authorization_invalid_cable_lock(csms201, booted201):
    """A station with a cable lock: the token comes first and is refused; nothing starts, the plug
    is never locked, also once the EV is plugged in; an accepted token then locks it."""
    sp = await booted201()
    answer(csms201, TAG1={"status": "Invalid"})
    await sp.swipe("TAG1")
    await csms201.expect("Authorize")
    await csms201.no_call("TransactionEvent", 3)
    assert not locked(sp)
    await sp.plug()
    await csms201.no_call("TransactionEvent", 3)
    assert not locked(sp)
    await sp.swipe("TAG2")
    await csms201.expect("TransactionEvent", is_started)
    assert locked(sp)


# -- C09 group id tokens -------------------------------------------------------------------------------------
async def test_TC_C_04_CS_local_stop_different_id_token(csms201, booted201):
    """Another (valid) token of no group in common does not stop the transaction."""
    sp = await booted201()
    await session(csms201, sp)
    await sp.swipe("TAG2")
    auth = await csms201.expect("Authorize", lambda p: p["idToken"]["idToken"] == "TAG2")
    assert auth["idToken"]["type"] == "ISO14443"
    await csms201.no_call("TransactionEvent", 5, is_ended)
    ended = await stop(csms201, sp, "TAG1")
    assert ended["transactionInfo"]["stoppedReason"] == "Local"


async def test_TC_C_39_CS_group_id_success(csms201, booted201):
    """A token of the same groupIdToken stops the transaction (StopAuthorized, Local)."""
    sp = await booted201()
    answer(csms201, TAG1={"status": "Accepted", "groupIdToken": GROUP},
           TAG2={"status": "Accepted", "groupIdToken": GROUP})
    started = await session(csms201, sp)
    ended = await stop(csms201, sp, "TAG2")
    assert ended["transactionInfo"]["transactionId"] == started["transactionInfo"]["transactionId"]
    assert ended["transactionInfo"]["stoppedReason"] == "Local"
    assert ended["triggerReason"] == "StopAuthorized"
    assert ended["idToken"]["idToken"] == "TAG2"


async def test_TC_C_42_CS_not_stopped_by_group_id(csms201, booted201):
    """A token of the same group that the CSMS says is Invalid does not stop the transaction."""
    sp = await booted201()
    answer(csms201, TAG1={"status": "Accepted", "groupIdToken": GROUP},
           TAG2={"status": "Invalid", "groupIdToken": GROUP})
    await session(csms201, sp)
    await sp.swipe("TAG2")
    await csms201.expect("Authorize", lambda p: p["idToken"]["idToken"] == "TAG2")
    await csms201.no_call("TransactionEvent", 5, is_ended)


async def test_TC_C_41_CS_group_id_success_with_cache(csms201, booted201):
    sp = await booted201(variables=[PRE_AUTHORIZE])
    await cache(csms201, sp, "TAG2", {"status": "Accepted", "groupIdToken": GROUP})
    answer(csms201, TAG1={"status": "Accepted", "groupIdToken": GROUP})
    await session(csms201, sp)
    csms201.mark()
    ended = await stop(csms201, sp, "TAG2")
    assert ended["idToken"]["idToken"] == "TAG2"
    assert not [p for p in csms201.calls("Authorize")[1:] if p["idToken"]["idToken"] == "TAG2"]


async def test_TC_C_44_CS_group_id_invalid_status_with_cache(csms201, booted201):
    sp = await booted201(variables=[PRE_AUTHORIZE])
    await cache(csms201, sp, "TAG2", {"status": "Blocked", "groupIdToken": GROUP})
    answer(csms201, TAG1={"status": "Accepted", "groupIdToken": GROUP},
           TAG2={"status": "Blocked", "groupIdToken": GROUP})
    await session(csms201, sp)
    await sp.swipe("TAG2")
    await csms201.no_call("TransactionEvent", 3, is_ended)


# -- C10/C12 authorization cache -----------------------------------------------------------------------------
async def test_TC_C_08_CS_cache_accepted(csms201, booted201):
    sp = await booted201(variables=[PRE_AUTHORIZE])
    await cache(csms201, sp)
    started = await session(csms201, sp)
    assert started["idToken"]["idToken"] == "TAG1"
    assert not csms201.calls("Authorize")[1:]


async def test_TC_C_09_CS_cache_invalid_not_accepted(csms201, booted201):
    sp = await booted201(variables=[PRE_AUTHORIZE])
    await cache(csms201, sp, info={"status": "Invalid"})
    answer(csms201, TAG1={"status": "Invalid"})
    await sp.plug()
    await sp.swipe("TAG1")
    await csms201.expect("Authorize")  # post-authorize
    await csms201.no_call("TransactionEvent", 3, is_started)


async def test_TC_C_10_CS_cache_restricted(csms201, booted201):
    """A cached entry whose cacheExpiryDateTime passed is not used: the CSMS is asked."""
    sp = await booted201(variables=[PRE_AUTHORIZE])
    await cache(csms201, sp, info={"status": "Accepted", "cacheExpiryDateTime": "2020-01-01T00:00:00Z"})
    answer(csms201, TAG1={"status": "NotAtThisTime"})
    await sp.plug()
    await sp.swipe("TAG1")
    await csms201.expect("Authorize")
    await csms201.no_call("TransactionEvent", 3, is_started)


async def test_TC_C_11_CS_cache_expired(csms201, booted201):
    sp = await booted201(variables=[PRE_AUTHORIZE])
    await cache(csms201, sp, info={"status": "Expired"})
    answer(csms201, TAG1={"status": "Expired"})
    await sp.plug()
    await sp.swipe("TAG1")
    await csms201.expect("Authorize")
    await csms201.no_call("TransactionEvent", 3, is_started)


async def test_TC_C_12_CS_cache_invalid_accepted(csms201, booted201):
    sp = await booted201(variables=[PRE_AUTHORIZE])
    await cache(csms201, sp, info={"status": "Invalid"})
    started = await session(csms201, sp)
    assert csms201.calls("Authorize")
    assert started["idToken"]["idToken"] == "TAG1"


async def test_TC_C_13_CS_cache_accepted_cable_later(csms201, booted201):
    sp = await booted201(variables=[PRE_AUTHORIZE])
    await cache(csms201, sp)
    await sp.swipe("TAG1")
    await asyncio.sleep(2)
    await sp.plug()
    started = await csms201.expect("TransactionEvent", is_started)
    assert started["idToken"]["idToken"] == "TAG1"
    assert len(csms201.calls("Authorize")) == 1  # the one that filled the cache


async def test_TC_C_57_CS_cache_disable_post_authorize(csms201, booted201):
    sp = await booted201(variables=[PRE_AUTHORIZE, var("AuthCacheCtrlr", "DisablePostAuthorize", "true")])
    await cache(csms201, sp, info={"status": "Blocked"})
    await sp.plug()
    await sp.swipe("TAG1")
    await csms201.no_call("Authorize", 3)
    assert not [p for p in csms201.calls("TransactionEvent") if is_started(p)]


async def test_TC_C_32_CS_cache_persistent_over_reboot(csms201, booted201):
    sp = await booted201(variables=[PRE_AUTHORIZE])
    await cache(csms201, sp)
    await restart_201(csms201, sp)
    await session(csms201, sp)
    assert not csms201.calls("Authorize")[1:]


async def test_TC_C_33_CS_cache_updated_on_authorize_response(csms201, booted201):
    """Cached Accepted; the CSMS then says Blocked: offline the token is refused."""
    sp = await booted201()
    await cache(csms201, sp)
    await cache(csms201, sp, info={"status": "Blocked"})
    await go_offline_201(csms201, sp)
    await sp.plug()
    await sp.swipe("TAG1")
    await asyncio.sleep(3)
    await sp.link(True)
    await csms201.expect("StatusNotification", timeout=30)
    await csms201.no_call("TransactionEvent", 3, is_started)


async def test_TC_C_34_CS_cache_updated_on_transaction_response(csms201, booted201):
    """The answer to TransactionEvent carries idTokenInfo Blocked: the cache learns it."""
    sp = await booted201(variables=[var("TxCtrlr", "StopTxOnInvalidId", "true")])
    csms201.responders["TransactionEvent"] = (
        lambda p: {"idTokenInfo": {"status": "Blocked"}} if "idToken" in p else {})
    await session(csms201, sp)
    ended = await csms201.expect("TransactionEvent", is_ended)
    assert ended["transactionInfo"]["stoppedReason"] == "DeAuthorized"
    assert sp.rt.station.cache["TAG1"].status == "Blocked"


async def test_TC_C_36_CS_cache_without_local_pre_authorize(csms201, booted201):
    sp = await booted201(variables=[var("AuthCtrlr", "LocalPreAuthorize", "false")])
    await cache(csms201, sp)
    await session(csms201, sp)
    assert len(csms201.calls("Authorize")) == 2  # asked again although cached


async def test_TC_C_37_CS_clear_cache_accepted(csms201, booted201):
    sp = await booted201(variables=[PRE_AUTHORIZE])
    await cache(csms201, sp)
    assert (await csms201.call("ClearCache", {}))["status"] == "Accepted"
    assert not sp.rt.station.cache
    await session(csms201, sp)
    assert len(csms201.calls("Authorize")) == 2


async def test_TC_C_38_CS_clear_cache_rejected(csms201, booted201):
    await booted201(variables=[var("AuthCacheCtrlr", "Enabled", "false")])
    assert (await csms201.call("ClearCache", {}))["status"] == "Rejected"


async def test_TC_C_46_CS_cache_lifetime(csms201, booted201):
    """AuthCacheCtrlr.LifeTime 60 s: after it the entry is not used; the CSMS is asked again."""
    sp = await booted201(variables=[PRE_AUTHORIZE, var("AuthCacheCtrlr", "LifeTime", "60")])
    await cache(csms201, sp)
    await session(csms201, sp)
    assert len(csms201.calls("Authorize")) == 1
    await stop(csms201, sp)
    await asyncio.sleep(70)
    csms201.mark()
    await session(csms201, sp)
    assert len(csms201.calls("Authorize")) == 2


async def test_cache_lifetime_counts_from_last_use(csms201, booted201):
    """LifeTime 60 s counts from the last use: used after 40 s, still valid 50 s later."""
    sp = await booted201(variables=[PRE_AUTHORIZE, var("AuthCacheCtrlr", "LifeTime", "60")])
    await cache(csms201, sp)  # written, then 8 s of EVConnectionTimeOut
    await asyncio.sleep(30)
    await session(csms201, sp)
    await stop(csms201, sp)
    await asyncio.sleep(45)
    await session(csms201, sp)
    assert len(csms201.calls("Authorize")) == 1  # only the one that filled the cache


async def test_cache_disabled_not_used(csms201, booted201):
    sp = await booted201(variables=[PRE_AUTHORIZE, var("AuthCacheCtrlr", "Enabled", "false")])
    await cache(csms201, sp)
    assert not sp.rt.station.cache
    await session(csms201, sp)
    assert len(csms201.calls("Authorize")) == 2


# -- C05 StopTxOnInvalidId / MaxEnergyOnInvalidId with a cached token ----------------------------------------------
def refuse_token(csms201) -> None:
    """The CSMS answers Invalid to every TransactionEvent that carries an idToken."""
    csms201.responders["TransactionEvent"] = (
        lambda p: {"idTokenInfo": {"status": "Invalid"}} if "idToken" in p else {})


async def offline_cached_session(csms201, sp) -> dict:
    """EV plugged in; offline, the cached token starts a transaction; back online its events go
    out (offline: true) and the CSMS says Invalid. Returns the Started event."""
    await cache(csms201, sp)
    refuse_token(csms201)
    await sp.plug()
    await go_offline_201(csms201, sp)
    await sp.swipe("TAG1")
    await asyncio.sleep(3)
    await sp.link(True)
    started = await csms201.expect("TransactionEvent", is_started, timeout=30)
    assert started["offline"] is True and started["idToken"]["idToken"] == "TAG1"
    return started


def invalid_id(stop: bool, max_wh: int) -> list[dict]:
    return [PRE_AUTHORIZE, var("AuthCtrlr", "LocalAuthorizeOffline", "true"),
            var("TxCtrlr", "StopTxOnInvalidId", "true" if stop else "false"),
            var("TxCtrlr", "MaxEnergyOnInvalidId", str(max_wh))]


async def test_TC_C_16_CS_cache_stop_tx_on_invalid_id(csms201, booted201):
    sp = await booted201(variables=invalid_id(True, 0))
    started = await offline_cached_session(csms201, sp)
    ended = await csms201.expect("TransactionEvent", is_ended)
    assert ended["transactionInfo"]["transactionId"] == started["transactionInfo"]["transactionId"]
    assert ended["transactionInfo"]["stoppedReason"] == "DeAuthorized"
    assert ended["triggerReason"] == "Deauthorized"
    assert sp.rt.station.cache["TAG1"].status == "Invalid"  # the cache learnt it


async def test_TC_C_18_CS_cache_stop_tx_on_invalid_id_with_max_energy(csms201, booted201):
    """StopTxOnInvalidId true wins over MaxEnergyOnInvalidId: Deauthorized."""
    sp = await booted201(variables=invalid_id(True, 500))
    await offline_cached_session(csms201, sp)
    ended = await csms201.expect("TransactionEvent", is_ended)
    assert ended["triggerReason"] == "Deauthorized"


async def test_TC_C_17_CS_cache_no_stop_on_invalid_id(csms201, booted201):
    """StopTxOnInvalidId false, MaxEnergyOnInvalidId 0: the transaction goes on without energy."""
    sp = await booted201(variables=invalid_id(False, 0))
    await offline_cached_session(csms201, sp)
    await csms201.expect("TransactionEvent", lambda p: p["transactionInfo"].get("chargingState") == "SuspendedEVSE")
    await csms201.no_call("TransactionEvent", 8, lambda p: p["triggerReason"] == "Deauthorized" or is_ended(p))


async def test_TC_C_15_CS_cache_no_stop_on_invalid_id_max_energy(csms201, booted201):
    """StopTxOnInvalidId false, MaxEnergyOnInvalidId 10 kWh: energy goes on (up to it), no Deauthorized."""
    sp = await booted201(variables=invalid_id(False, 10_000))
    await offline_cached_session(csms201, sp)
    await csms201.no_call("TransactionEvent", 8, lambda p: p["triggerReason"] == "Deauthorized" or is_ended(p)
                          or p["transactionInfo"].get("chargingState") == "SuspendedEVSE")
    assert sp.rt.station.connectors[1].transaction is not None


async def test_max_energy_on_invalid_id_used_up(csms201, booted201):
    """StopTxOnInvalidId false, MaxEnergyOnInvalidId 100 Wh: energy until then, then SuspendedEVSE."""
    sp = await booted201(variables=invalid_id(False, 100))
    await offline_cached_session(csms201, sp)
    await csms201.expect("TransactionEvent", lambda p: p["transactionInfo"].get("chargingState") == "SuspendedEVSE",
                         timeout=120)
    assert not [p for p in csms201.calls("TransactionEvent") if is_ended(p)]


# -- C15 offline -----------------------------------------------------------------------------------------------
async def _offline_attempt(csms201, sp, tag: str = "TAG1") -> dict | None:
    await go_offline_201(csms201, sp)
    await sp.plug()
    await sp.swipe(tag)
    await asyncio.sleep(3)
    await sp.link(True)
    await csms201.expect("StatusNotification", timeout=30)
    await asyncio.sleep(3)
    return next((p for p in csms201.calls("TransactionEvent") if is_started(p)), None)


async def test_TC_C_26_CS_offline_unknown_id_allowed(csms201, booted201):
    sp = await booted201(variables=[var("AuthCtrlr", "OfflineTxForUnknownIdEnabled", "true")])
    started = await _offline_attempt(csms201, sp, "STRANGER")
    assert started is not None and started["offline"] is True and started["idToken"]["idToken"] == "STRANGER"


async def test_offline_unknown_id_refused(csms201, booted201):
    sp = await booted201(variables=[var("AuthCtrlr", "OfflineTxForUnknownIdEnabled", "false")])
    assert await _offline_attempt(csms201, sp, "STRANGER") is None


async def test_offline_cached_token_local_authorize_offline(csms201, booted201):
    sp = await booted201(variables=[var("AuthCtrlr", "LocalAuthorizeOffline", "true")])
    await cache(csms201, sp)
    started = await _offline_attempt(csms201, sp)
    assert started is not None and started["offline"] is True


async def test_offline_cached_token_without_local_authorize_offline(csms201, booted201):
    sp = await booted201(variables=[var("AuthCtrlr", "LocalAuthorizeOffline", "false")])
    await cache(csms201, sp)
    assert await _offline_attempt(csms201, sp) is None


# -- C16 master pass -------------------------------------------------------------------------------------------
MASTER_VARS = [var("AuthCtrlr", "MasterPassGroupId", "MASTER")]


async def test_TC_C_45_CS_master_pass_cannot_start(csms201, booted201):
    """The master pass is accepted by the CSMS, then the EV is plugged in: nothing starts."""
    sp = await booted201(variables=MASTER_VARS)
    answer(csms201, BOSS={"status": "Accepted", "groupIdToken": MASTER})
    await sp.swipe("BOSS")
    await csms201.expect("Authorize")
    await sp.plug()
    await csms201.no_call("TransactionEvent", 5)
    assert not locked(sp)


async def test_TC_C_14_CS_cache_master_pass_group(csms201, booted201):
    """The master pass, known from the cache, stops the running transaction without an Authorize."""
    sp = await booted201(variables=[*MASTER_VARS, PRE_AUTHORIZE])
    await cache(csms201, sp, "BOSS", {"status": "Accepted", "groupIdToken": MASTER})
    started = await session(csms201, sp)
    await sp.swipe("BOSS")
    ended = await csms201.expect("TransactionEvent", is_ended)
    assert ended["transactionInfo"]["transactionId"] == started["transactionInfo"]["transactionId"]
    assert ended["triggerReason"] == "StopAuthorized"
    assert ended["transactionInfo"]["stoppedReason"] == "MasterPass"
    assert len(csms201.calls("Authorize")) == 2  # the cache's and TAG1's; none for the master pass


async def test_TC_C_49_CS_master_pass_stops_all_transactions(csms201, booted201):
    """Without a display: the master pass ends every transaction, stoppedReason MasterPass."""
    sp = await booted201(evses=2, variables=MASTER_VARS)
    answer(csms201, BOSS={"status": "Accepted", "groupIdToken": MASTER})
    one = await session(csms201, sp, "TAG1", 1)
    two = await session(csms201, sp, "TAG2", 2)
    await sp.swipe("BOSS", 1)
    ended = [await csms201.expect("TransactionEvent", is_ended), await csms201.expect("TransactionEvent", is_ended)]
    ids = {p["transactionInfo"]["transactionId"] for p in ended}
    assert ids == {one["transactionInfo"]["transactionId"], two["transactionInfo"]["transactionId"]}
    for p in ended:
        assert p["transactionInfo"]["stoppedReason"] == "MasterPass"
        assert p["triggerReason"] == "StopAuthorized"
        assert p["idToken"]["idToken"] == "BOSS"


async def test_disable_remote_authorization(csms201, booted201):
    """AuthCtrlr.DisableRemoteAuthorization: no Authorize; the cache decides, an unknown token is refused."""
    sp = await booted201(evses=2)
    await cache(csms201, sp)
    sp.rt.adapter.dm.set_variables([var("AuthCtrlr", "DisableRemoteAuthorization", "true")])
    await session(csms201, sp, "TAG1", 1)
    await sp.plug(2)
    await sp.swipe("STRANGER", 2)
    await csms201.no_call("TransactionEvent", 3, is_started)
    assert len(csms201.calls("Authorize")) == 1  # the one that filled the cache


async def test_cache_policy_lru(csms201, booted201, monkeypatch):
    """AuthCacheCtrlr.Policy LRU: with room for two, the entry least recently used goes."""
    import station.station

    monkeypatch.setattr(station.station, "AUTH_CACHE_MAX", 2)
    sp = await booted201(variables=[PRE_AUTHORIZE])
    assert sp.rt.adapter.text("AuthCacheCtrlr", "Policy") == "LRU"
    await cache(csms201, sp, "A")
    await cache(csms201, sp, "B")
    await session(csms201, sp, "A")  # A used from the cache (no Authorize): now the most recent
    await stop(csms201, sp, "A")
    await cache(csms201, sp, "C")
    assert set(sp.rt.station.cache) == {"A", "C"}
    storage = int(sp.rt.adapter.dm.value("AuthCacheCtrlr", "Storage"))
    assert storage > 0
    assert (await csms201.call("ClearCache", {}))["status"] == "Accepted"
    assert int(sp.rt.adapter.dm.value("AuthCacheCtrlr", "Storage")) == 0

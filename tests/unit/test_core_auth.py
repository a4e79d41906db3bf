"""Authorization decisions (station/core/auth.py): every combination of online/offline,
LocalPreAuthorize, LocalAuthorizeOffline, AllowOfflineTxForUnknownId, AuthorizationCacheEnabled,
LocalAuthListEnabled, cache versus local list, and entries that expired with the passage of time.

References: OCPP 1.6 section 3.5 (local authorization, cache, local list, unknown offline
authorization) and the configuration keys of section 9.1.
"""

from __future__ import annotations

import itertools

import pytest

from station.core.auth import AuthRules, IdTagInfo, Verdict, decide
from station.core.clock import FakeClock, iso, parse_iso

NOW = parse_iso("2026-06-01T12:00:00Z")
VALID = IdTagInfo("Accepted")
VALID_UNTIL_TOMORROW = IdTagInfo("Accepted", expiry_date="2026-06-02T12:00:00Z")
EXPIRED_BY_TIME = IdTagInfo("Accepted", expiry_date="2026-06-01T11:59:59Z")
NOT_ACCEPTED = {s: IdTagInfo(s) for s in ("Blocked", "Expired", "Invalid", "ConcurrentTx")}

# what the station knows about tag "A": where, and how good it is
KNOWLEDGE = {
    "unknown": ({}, {}),
    "cache valid": ({}, {"A": VALID}),
    "cache valid with future expiry": ({}, {"A": VALID_UNTIL_TOMORROW}),
    "cache expired by time": ({}, {"A": EXPIRED_BY_TIME}),
    **{f"cache {s}": ({}, {"A": info}) for s, info in NOT_ACCEPTED.items()},
    "list valid": ({"A": VALID}, {}),
    "list expired by time": ({"A": EXPIRED_BY_TIME}, {}),
    **{f"list {s}": ({"A": info}, {}) for s, info in NOT_ACCEPTED.items()},
    "list Blocked, cache valid": ({"A": IdTagInfo("Blocked")}, {"A": VALID}),
    "list valid, cache Blocked": ({"A": VALID}, {"A": IdTagInfo("Blocked")}),
    # the list takes precedence over the cache even when its entry is no good and the cache's is
    "list expired by time, cache valid": ({"A": EXPIRED_BY_TIME}, {"A": VALID}),
    "list Expired, cache valid": ({"A": IdTagInfo("Expired")}, {"A": VALID}),
    "list valid with future expiry, cache expired by time": ({"A": VALID_UNTIL_TOMORROW}, {"A": EXPIRED_BY_TIME}),
}


def expected_verdict(online: bool, rules: AuthRules, knowledge: str) -> tuple[Verdict, str]:
    """The specification, written independently of the code under test."""
    local, cache = KNOWLEDGE[knowledge]
    entry, source = None, ""
    if rules.local_auth_list_enabled and "A" in local:  # the local list has priority over the cache
        entry, source = local["A"], "local_list"
    elif rules.authorization_cache_enabled and "A" in cache:
        entry, source = cache["A"], "cache"
    valid = entry is not None and entry.status == "Accepted" and (
        entry.expiry_date is None or parse_iso(entry.expiry_date) > NOW)
    if online:
        # LocalPreAuthorize: start at once for locally *valid* ids; anything else goes to the CSMS
        if rules.local_pre_authorize and valid:
            return Verdict.ACCEPT, source
        return Verdict.ASK_CSMS, ""
    if valid and rules.local_authorize_offline:
        return Verdict.ACCEPT, source
    if entry is not None and not valid:
        # 3.5.4: ids with a status other than Accepted, or expired by time, MUST be rejected
        return Verdict.REJECT, source
    # unknown, or known-valid but LocalAuthorizeOffline forbids using it: it "cannot be explicitly
    # authorized by Local Authorization List or Authorization Cache entries" (3.5.4)
    if rules.allow_offline_tx_for_unknown_id:
        return Verdict.ACCEPT, "offline_unknown"
    return Verdict.REJECT, "unknown"


FLAGS = ("authorization_cache_enabled", "local_auth_list_enabled", "local_pre_authorize", "local_authorize_offline",
         "allow_offline_tx_for_unknown_id")
ALL_RULES = [AuthRules(**dict(zip(FLAGS, bits, strict=True))) for bits in itertools.product((False, True), repeat=5)]


@pytest.mark.parametrize("knowledge", list(KNOWLEDGE))
@pytest.mark.parametrize("online", [True, False], ids=["online", "offline"])
def test_every_combination_of_rules(online, knowledge):
    local, cache = KNOWLEDGE[knowledge]
    for rules in ALL_RULES:
        d = decide("A", online, rules, local, cache, NOW)
        want, source = expected_verdict(online, rules, knowledge)
        assert (d.verdict, d.source) == (want, source), rules
        if d.verdict is Verdict.ACCEPT:
            assert d.info is not None and d.info.status == "Accepted"


# The cases a reader will look for, spelled out.
def test_online_without_pre_authorize_always_asks_even_for_a_cached_id():
    assert decide("A", True, AuthRules(), {}, {"A": VALID}, NOW).verdict is Verdict.ASK_CSMS


def test_online_pre_authorize_accepts_cached_id_without_asking():
    d = decide("A", True, AuthRules(local_pre_authorize=True), {}, {"A": VALID}, NOW)
    assert d.verdict is Verdict.ACCEPT and d.source == "cache" and d.info is VALID


def test_online_pre_authorize_asks_for_an_expired_or_blocked_entry():
    rules = AuthRules(local_pre_authorize=True)
    assert decide("A", True, rules, {}, {"A": EXPIRED_BY_TIME}, NOW).verdict is Verdict.ASK_CSMS
    assert decide("A", True, rules, {"A": IdTagInfo("Blocked")}, {}, NOW).verdict is Verdict.ASK_CSMS


def test_offline_valid_cache_entry_accepted_with_local_authorize_offline():
    d = decide("A", False, AuthRules(local_authorize_offline=True), {}, {"A": VALID}, NOW)
    assert d.verdict is Verdict.ACCEPT and d.source == "cache"


def test_offline_local_authorize_offline_false_does_not_use_the_cache():
    d = decide("A", False, AuthRules(local_authorize_offline=False), {}, {"A": VALID}, NOW)
    assert d.verdict is Verdict.REJECT


def test_offline_unknown_id_needs_allow_offline_tx_for_unknown_id():
    assert decide("X", False, AuthRules(), {}, {}, NOW).verdict is Verdict.REJECT
    d = decide("X", False, AuthRules(allow_offline_tx_for_unknown_id=True), {}, {}, NOW)
    assert d.verdict is Verdict.ACCEPT and d.source == "offline_unknown"


@pytest.mark.parametrize("status", list(NOT_ACCEPTED))
def test_offline_known_but_not_accepted_is_rejected_even_when_unknown_ids_are_allowed(status):
    rules = AuthRules(allow_offline_tx_for_unknown_id=True)
    assert decide("A", False, rules, {"A": IdTagInfo(status)}, {}, NOW).verdict is Verdict.REJECT
    assert decide("A", False, rules, {}, {"A": IdTagInfo(status)}, NOW).verdict is Verdict.REJECT


def test_offline_expired_by_passage_of_time_is_rejected_even_when_unknown_ids_are_allowed():
    rules = AuthRules(allow_offline_tx_for_unknown_id=True)
    assert decide("A", False, rules, {}, {"A": EXPIRED_BY_TIME}, NOW).verdict is Verdict.REJECT


def test_cache_disabled_makes_a_cached_id_unknown():
    rules = AuthRules(authorization_cache_enabled=False)
    assert decide("A", False, rules, {}, {"A": VALID}, NOW).verdict is Verdict.REJECT
    rules = AuthRules(authorization_cache_enabled=False, allow_offline_tx_for_unknown_id=True)
    assert decide("A", False, rules, {}, {"A": IdTagInfo("Blocked")}, NOW).source == "offline_unknown"


def test_local_list_wins_over_cache():
    d = decide("A", False, AuthRules(), {"A": IdTagInfo("Blocked")}, {"A": VALID}, NOW)
    assert d.verdict is Verdict.REJECT and d.source == "local_list"
    d = decide("A", False, AuthRules(local_auth_list_enabled=False), {"A": IdTagInfo("Blocked")}, {"A": VALID}, NOW)
    assert d.verdict is Verdict.ACCEPT and d.source == "cache"


def test_online_pre_authorize_asks_the_csms_when_the_list_entry_is_no_good_even_if_the_cache_is():
    """LocalPreAuthorize starts at once on a valid *list* entry; a list entry that is not valid is
    not overruled by the cache: the CSMS is asked (3.5: the list has priority over the cache)."""
    rules = AuthRules(local_pre_authorize=True)
    assert decide("A", True, rules, {"A": EXPIRED_BY_TIME}, {"A": VALID}, NOW).verdict is Verdict.ASK_CSMS
    d = decide("A", True, rules, {"A": VALID}, {"A": IdTagInfo("Blocked")}, NOW)
    assert d.verdict is Verdict.ACCEPT and d.source == "local_list"


def test_a_disabled_list_is_not_used_online_either():
    rules = AuthRules(local_pre_authorize=True, local_auth_list_enabled=False)
    assert decide("A", True, rules, {"A": VALID}, {}, NOW).verdict is Verdict.ASK_CSMS


def test_entry_expires_as_the_fake_clock_moves():
    clock = FakeClock(NOW)
    entry = IdTagInfo("Accepted", expiry_date=iso(NOW.replace(hour=13)))
    rules = AuthRules()
    assert decide("A", False, rules, {}, {"A": entry}, clock.now()).verdict is Verdict.ACCEPT
    clock.advance(3599)
    assert decide("A", False, rules, {}, {"A": entry}, clock.now()).verdict is Verdict.ACCEPT
    clock.advance(1)  # exactly at the expiry date: no longer valid
    assert decide("A", False, rules, {}, {"A": entry}, clock.now()).verdict is Verdict.REJECT


def test_unparseable_expiry_date_is_not_valid():
    assert not IdTagInfo("Accepted", expiry_date="next tuesday").valid_at(NOW)


def test_id_tag_info_round_trip_through_ocpp():
    d = {"status": "Accepted", "expiryDate": "2026-06-02T12:00:00.000Z", "parentIdTag": "P"}
    assert IdTagInfo.from_ocpp(d).to_ocpp() == d
    assert IdTagInfo.from_ocpp({}).status == "Invalid"
    assert IdTagInfo("Blocked").to_ocpp() == {"status": "Blocked"}


def test_fake_clock_and_ocpp_timestamps():
    c = FakeClock()
    t0, m0 = c.now(), c.monotonic()
    c.advance(61.5)
    assert (c.now() - t0).total_seconds() == 61.5 and c.monotonic() - m0 == 61.5
    assert iso(parse_iso("2026-01-01T00:00:01.250Z")) == "2026-01-01T00:00:01.250Z"
    assert iso(parse_iso("2026-01-01T02:00:00+02:00")) == "2026-01-01T00:00:00.000Z"
    assert parse_iso("2026-01-01T00:00:00").tzinfo is not None  # naive times are taken as UTC


# -- a CSMS answer contradicting the local list (1.6 3.5.2, LocalListConflict) ----------------------
def test_list_conflict_is_an_answer_with_another_status_for_an_id_in_the_list_in_use():
    from station.core.auth import IdTagMap, list_conflict

    listed = IdTagMap({"A": VALID, "B": IdTagInfo("Blocked")})
    on, off = AuthRules(), AuthRules(local_auth_list_enabled=False)
    assert list_conflict("a", IdTagInfo("Blocked"), on, listed) == VALID
    assert list_conflict("B", IdTagInfo("Accepted"), on, listed) == IdTagInfo("Blocked")
    assert list_conflict("A", IdTagInfo("Accepted", parent_id_tag="P"), on, listed) is None  # same status
    assert list_conflict("C", IdTagInfo("Blocked"), on, listed) is None  # not in the list
    assert list_conflict("A", IdTagInfo("Blocked"), off, listed) is None  # the list is not in use

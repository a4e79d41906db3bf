"""The authorization rules 2.0.1 added to the shared engines, pure: AuthCtrlr.Enabled false,
token types that need no authorization (NoAuthorization), DisablePostAuthorize of the cache and of
the local list, DisableRemoteAuthorization, the master pass group in the session, and the local
list version of 2.0.1 (an empty list keeps its version). The 1.6 defaults are left as they were
(tests/unit/test_core_auth.py, tests/unit/test_local_list.py)."""

from __future__ import annotations

from station.core import model as m
from station.core.auth import AuthRules, IdTagInfo, Verdict, decide
from station.core.clock import parse_iso
from station.core.local_list import ListEntry, ListLimits, UpdateOutcome, UpdateType, plan_update
from tests.unit.test_core_session import Rig, one, stops_energy

NOW = parse_iso("2026-06-01T12:00:00Z")
LIMITS = ListLimits(10, 10)


def test_authorization_disabled_accepts_everything_without_asking():
    for online in (True, False):
        d = decide("X", online, AuthRules(enabled=False), {"X": IdTagInfo("Blocked")}, {}, NOW)
        assert d.verdict is Verdict.ACCEPT and d.info.status == "Accepted"


def test_no_authorization_token_type_is_accepted_locally():
    rules = AuthRules(unchecked_types=frozenset({"NoAuthorization"}))
    assert decide("X", True, rules, {}, {}, NOW, "NoAuthorization").verdict is Verdict.ACCEPT
    assert decide("X", True, rules, {}, {}, NOW, "ISO14443").verdict is Verdict.ASK_CSMS
    assert decide("X", True, AuthRules(), {}, {}, NOW, "NoAuthorization").verdict is Verdict.ASK_CSMS  # 1.6


def test_post_authorize_asks_about_a_known_entry_that_is_not_valid_unless_disabled():
    blocked = {"X": IdTagInfo("Blocked")}
    pre = AuthRules(local_pre_authorize=True)
    assert decide("X", True, pre, {}, blocked, NOW).verdict is Verdict.ASK_CSMS
    assert decide("X", True, pre, blocked, {}, NOW).verdict is Verdict.ASK_CSMS
    no_cache_post = AuthRules(local_pre_authorize=True, cache_post_authorize=False)
    assert decide("X", True, no_cache_post, {}, blocked, NOW).verdict is Verdict.REJECT
    assert decide("X", True, no_cache_post, blocked, {}, NOW).verdict is Verdict.ASK_CSMS
    no_list_post = AuthRules(local_pre_authorize=True, local_list_post_authorize=False)
    assert decide("X", True, no_list_post, blocked, {}, NOW).verdict is Verdict.REJECT
    # without LocalPreAuthorize the CSMS is asked anyway
    assert decide("X", True, AuthRules(cache_post_authorize=False), {}, blocked, NOW).verdict is Verdict.ASK_CSMS


def test_remote_authorization_disabled_decides_locally():
    rules = AuthRules(ask_csms=False)
    assert decide("X", True, rules, {}, {"X": IdTagInfo("Accepted")}, NOW).verdict is Verdict.ACCEPT
    assert decide("X", True, rules, {"X": IdTagInfo("Blocked")}, {}, NOW).verdict is Verdict.REJECT
    assert decide("Y", True, rules, {}, {}, NOW).verdict is Verdict.REJECT


def test_master_pass_never_starts_and_is_reported_to_the_driver():
    r = Rig(auth=AuthRules(master_pass_group="MASTER"))
    r.feed(m.CpStateChanged(1, m.CpState.B))
    out = r.answer(r.card("BOSS"), IdTagInfo("Accepted", parent_id_tag="MASTER"))
    assert m.Reply(1, "master pass") in out
    assert not any(isinstance(e, (m.PrepareTransaction, m.Authorized)) for e in out)


def test_master_pass_at_a_running_transaction_is_reported_not_judged_as_a_stop():
    r = Rig(auth=AuthRules(master_pass_group="MASTER"))
    r.charging("A")
    out = r.answer(r.card("BOSS"), IdTagInfo("Accepted", parent_id_tag="MASTER"))
    assert any(isinstance(e, m.Reply) and e.value == "master pass" for e in out)
    assert not stops_energy(out)  # the driver stops every transaction with reason MasterPass
    assert one(out, m.Reply)


def test_no_master_pass_configured_a_group_token_is_an_ordinary_one():
    r = Rig(auth=AuthRules())
    r.charging("A", parent="MASTER")
    out = r.answer(r.card("B"), IdTagInfo("Accepted", parent_id_tag="MASTER"))
    assert stops_energy(out) and r.conn.transaction is None


def test_local_list_2_0_1_keeps_the_version_of_an_empty_list():
    full_empty = plan_update({}, 3, UpdateType.FULL, 4, [], LIMITS, empty_is_zero=False)
    assert full_empty.outcome is UpdateOutcome.ACCEPTED and full_empty.version == 4
    diff_empty = plan_update({}, 4, UpdateType.DIFFERENTIAL, 5, [], LIMITS, empty_is_zero=False)
    assert diff_empty.outcome is UpdateOutcome.ACCEPTED and diff_empty.version == 5
    again = plan_update({}, 5, UpdateType.DIFFERENTIAL, 5, [], LIMITS, empty_is_zero=False)
    assert again.outcome is UpdateOutcome.VERSION_MISMATCH
    removed = plan_update({"A": IdTagInfo("Accepted")}, 5, UpdateType.DIFFERENTIAL, 6, [ListEntry("A", None)], LIMITS,
                          empty_is_zero=False)
    assert removed.version == 6
    # 1.6: an empty list is version 0
    assert plan_update({}, 3, UpdateType.FULL, 4, [], LIMITS).version == 0


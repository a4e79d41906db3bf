"""idTags are CiString: case-insensitive (OCPP 1.6 section 4 "CiString20Type"; 2.0.1's idToken is a
CiString36 too). One helper (station.core.auth.same_id_tag / id_tag_key) is what every comparison
uses: the authorization cache, the local list and its updates, reservations (idTag and
parentIdTag), stopping a transaction with the same card, and the store's keys.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict

from station.core import model as m
from station.core.auth import AuthRules, IdTagInfo, IdTagMap, Verdict, decide, id_tag_key, same_id_tag
from station.core.local_list import ListEntry, ListLimits, UpdateOutcome, UpdateType, applied, plan_update
from station.core.reservation import may_use
from station.store import DB_NAME, Store
from tests.unit.test_core_auth import NOW
from tests.unit.test_core_session import Rig, one

OK = IdTagInfo("Accepted")
LIMITS = ListLimits(max_length=10, send_max_length=10)


def test_the_helper_ignores_case_and_nothing_else():
    assert same_id_tag("04A1b2C3", "04a1B2c3") and id_tag_key("ABC") == id_tag_key("abc")
    assert not same_id_tag("ABC", "ABD") and not same_id_tag("ABC", "ABC ")
    assert not same_id_tag("ABC", None) and not same_id_tag(None, None)


def test_the_map_finds_an_id_tag_in_any_case_and_keeps_the_spelling_last_written():
    mp = IdTagMap({"TagOne": OK})
    assert "tagone" in mp and mp["TAGONE"] is OK and mp.get("tAgOnE") is OK and list(mp) == ["TagOne"]
    mp["TAGONE"] = IdTagInfo("Blocked")
    assert len(mp) == 1 and list(mp) == ["TAGONE"] and mp == {"TAGONE": IdTagInfo("Blocked")}
    del mp["tagone"]
    assert not mp


def test_decide_finds_a_list_and_a_cache_entry_whatever_the_case_presented():
    local, cache = IdTagMap({"LIST1": OK}), IdTagMap({"Cache1": OK})
    rules = AuthRules(local_authorize_offline=True)
    for tag, source in (("list1", "local_list"), ("CACHE1", "cache")):
        d = decide(tag, False, rules, local, cache, NOW)
        assert (d.verdict, d.source) == (Verdict.ACCEPT, source)
    # and online, with LocalPreAuthorize, the list's Blocked entry is found (asked, never started)
    blocked = IdTagMap({"B1": IdTagInfo("Blocked")})
    assert decide("b1", False, rules, blocked, IdTagMap(), NOW).verdict is Verdict.REJECT


def test_a_reservation_serves_its_id_tag_and_its_parent_in_any_case():
    assert may_use("RES1", None, "res1", None)
    assert may_use("RES1", "FLEET", "OTHER", "fleet")
    assert not may_use("RES1", "FLEET", "OTHER", "fleet2")


def test_the_same_card_in_another_case_stops_the_transaction_without_asking():
    r = Rig()
    r.charging("04ABCDEF")
    out = r.card("04abcdef")
    assert not any(isinstance(e, m.AskAuthorization) for e in out)
    assert one(out, m.EndTransaction).transaction.stop_reason is m.StopReason.Local
    assert m.Reply(r.rid, "stopped") in out


def test_a_card_of_the_same_parent_in_another_case_stops_the_transaction():
    r = Rig()
    r.charging("A", parent="FLEET")
    out = r.answer(r.card("B"), IdTagInfo("Accepted", parent_id_tag="fleet"))
    assert m.Reply(r.rid, "stopped") in out


def test_an_update_naming_one_id_tag_twice_in_two_cases_fails():
    for kind in UpdateType:
        plan = plan_update({}, 0, kind, 1, [ListEntry("TAG", OK), ListEntry("tag", OK)], LIMITS)
        assert plan.outcome is UpdateOutcome.FAILED


def test_a_differential_update_replaces_and_removes_entries_whatever_the_case():
    entries = IdTagMap({"TAG1": OK, "TAG2": OK})
    plan = plan_update(entries, 1, UpdateType.DIFFERENTIAL, 2,
                       [ListEntry("tag1", IdTagInfo("Blocked")), ListEntry("Tag2", None)], LIMITS)
    assert plan.outcome is UpdateOutcome.ACCEPTED
    after = applied(entries, plan)
    assert len(after) == 1 and after["TAG1"] == IdTagInfo("Blocked") and "tag2" not in after


def test_a_full_list_at_its_length_may_be_replaced_by_a_differential_in_another_case():
    entries = IdTagMap({f"T{i}": OK for i in range(10)})
    plan = plan_update(entries, 1, UpdateType.DIFFERENTIAL, 2, [ListEntry("t3", IdTagInfo("Blocked"))], LIMITS)
    assert plan.outcome is UpdateOutcome.ACCEPTED and len(applied(entries, plan)) == 10


def test_the_store_keeps_one_entry_per_id_tag_whatever_the_case(tmp_path):
    s = Store(tmp_path / DB_NAME)
    s.auth_put("cache", "CARD", asdict(OK))
    s.auth_put("cache", "card", asdict(IdTagInfo("Blocked")))
    assert s.auth_all("cache") == {"card": asdict(IdTagInfo("Blocked"))}
    s.auth_put("local", "L1", asdict(OK))
    s.auth_remove("local", "l1")
    assert s.auth_all("local") == {}
    s.close()


def test_a_version_3_file_with_one_id_tag_in_two_cases_keeps_the_newest(tmp_path):
    path = tmp_path / DB_NAME
    s = Store(path)
    s.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TABLE auth")
    db.execute("CREATE TABLE auth (kind TEXT NOT NULL, id_tag TEXT NOT NULL, info TEXT NOT NULL, "
               "written_at REAL, PRIMARY KEY (kind, id_tag))")
    rows = [("cache", "CARD", {"status": "Accepted"}, 2.0), ("cache", "card", {"status": "Blocked"}, 3.0),
            ("cache", "Card", {"status": "Expired"}, 1.0), ("local", "L1", {"status": "Accepted"}, None)]
    for kind, tag, info, at in rows:
        db.execute("INSERT INTO auth VALUES(?,?,?,?)", (kind, tag, json.dumps(info), at))
    db.execute("PRAGMA user_version=3")
    db.close()
    s = Store(path)
    assert s.auth_all("cache") == {"card": {"status": "Blocked"}}
    assert s.auth_all("local") == {"L1": {"status": "Accepted"}}
    s.close()

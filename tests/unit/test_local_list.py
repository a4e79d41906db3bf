"""The Local Authorization List: its update rules (station/core/local_list.py, pure) and its
atomic update in a real SQLite store (station/local_list.py), including a failure in the middle
of the write, which must leave the old list and version on disk and in memory.

References: OCPP 1.6 sections 3.5.3, 5.10 (GetLocalListVersion: 0 for an empty list) and 5.15
(SendLocalList: Full replaces, Differential adds/updates entries with idTagInfo and removes those
without, unique idTags, VersionMismatch, Failed).
"""

from __future__ import annotations

import logging
from dataclasses import asdict

import pytest

from station.core.auth import IdTagInfo
from station.core.local_list import (
    ListEntry,
    ListLimits,
    UpdateOutcome,
    UpdateType,
    applied,
    list_version,
    plan_update,
)
from station.local_list import KIND, NS, LocalList
from station.store import Store

FULL, DIFF = UpdateType.FULL, UpdateType.DIFFERENTIAL
OK = IdTagInfo("Accepted")
BLOCKED = IdTagInfo("Blocked")
LIMITS = ListLimits(max_length=3, send_max_length=3)
LOG = logging.getLogger("test.local_list")


def e(tag: str, info: IdTagInfo | None = OK) -> ListEntry:
    return ListEntry(tag, info)


# -- the rules (pure) -------------------------------------------------------------------------------
def test_an_empty_list_is_version_0_whatever_it_was_given():
    assert list_version({}, 7) == 0
    assert list_version({"A": OK}, 7) == 7


def test_full_replaces_the_list():
    plan = plan_update({"OLD": OK}, 1, FULL, 2, [e("A"), e("B", BLOCKED)], LIMITS)
    assert plan.outcome is UpdateOutcome.ACCEPTED and plan.version == 2 and plan.replace
    assert applied({"OLD": OK}, plan) == {"A": OK, "B": BLOCKED}


def test_full_may_lower_the_version():
    """A full list is the truth whatever version the station had (the CSMS resynchronises with it)."""
    plan = plan_update({"A": OK}, 9, FULL, 3, [e("B")], LIMITS)
    assert plan.outcome is UpdateOutcome.ACCEPTED and plan.version == 3


def test_full_without_entries_empties_the_list_and_its_version_is_0():
    plan = plan_update({"A": OK}, 4, FULL, 5, [], LIMITS)
    assert plan.outcome is UpdateOutcome.ACCEPTED and plan.version == 0
    assert applied({"A": OK}, plan) == {}


@pytest.mark.parametrize("version", [0, -1])
def test_full_with_entries_needs_a_version_of_1_or_more(version):
    plan = plan_update({"A": OK}, 4, FULL, version, [e("B")], LIMITS)
    assert plan.outcome is UpdateOutcome.FAILED and plan.version == 4


def test_full_entry_without_id_tag_info_fails():
    plan = plan_update({}, 0, FULL, 1, [e("A"), e("B", None)], LIMITS)
    assert plan.outcome is UpdateOutcome.FAILED and "'B'" in plan.reason


def test_differential_adds_updates_and_removes():
    current = {"A": OK, "B": OK, "C": OK}
    plan = plan_update(current, 1, DIFF, 2, [e("A", BLOCKED), e("B", None), e("D")], ListLimits(4, 4))
    assert plan.outcome is UpdateOutcome.ACCEPTED and plan.version == 2 and not plan.replace
    assert applied(current, plan) == {"A": BLOCKED, "C": OK, "D": OK}


def test_differential_removing_an_id_tag_not_in_the_list_is_no_error():
    plan = plan_update({"A": OK}, 1, DIFF, 2, [e("X", None)], LIMITS)
    assert plan.outcome is UpdateOutcome.ACCEPTED and plan.remove == ()
    assert applied({"A": OK}, plan) == {"A": OK}


def test_differential_without_entries_leaves_the_entries_and_takes_the_version():
    plan = plan_update({"A": OK}, 1, DIFF, 2, [], LIMITS)
    assert plan.outcome is UpdateOutcome.ACCEPTED and plan.version == 2
    assert applied({"A": OK}, plan) == {"A": OK}


def test_differential_that_empties_the_list_leaves_version_0():
    plan = plan_update({"A": OK}, 1, DIFF, 2, [e("A", None)], LIMITS)
    assert plan.outcome is UpdateOutcome.ACCEPTED and plan.version == 0


@pytest.mark.parametrize("version", [5, 4, 0, -3])
def test_differential_not_newer_than_the_list_is_a_version_mismatch(version):
    plan = plan_update({"A": OK}, 5, DIFF, version, [e("B")], LIMITS)
    assert plan.outcome is UpdateOutcome.VERSION_MISMATCH and plan.version == 5
    assert applied({"A": OK}, plan) == {"A": OK}


def test_differential_on_an_empty_list_compares_with_version_0():
    """The list was emptied by a full update that carried version 9: it is version 0 now."""
    assert plan_update({}, 9, DIFF, 1, [e("A")], LIMITS).outcome is UpdateOutcome.ACCEPTED
    assert plan_update({}, 0, DIFF, 0, [e("A")], LIMITS).outcome is UpdateOutcome.VERSION_MISMATCH


@pytest.mark.parametrize("kind", [FULL, DIFF])
def test_more_entries_than_one_update_may_carry_fail(kind):
    plan = plan_update({}, 0, kind, 1, [e(f"T{i}") for i in range(4)], ListLimits(10, 3))
    assert plan.outcome is UpdateOutcome.FAILED and "at most 3" in plan.reason


def test_full_longer_than_the_list_may_be_fails():
    plan = plan_update({}, 0, FULL, 1, [e(f"T{i}") for i in range(4)], ListLimits(3, 10))
    assert plan.outcome is UpdateOutcome.FAILED


def test_differential_that_would_overfill_the_list_fails_and_one_that_replaces_does_not():
    current = {"A": OK, "B": OK, "C": OK}
    assert plan_update(current, 1, DIFF, 2, [e("D")], LIMITS).outcome is UpdateOutcome.FAILED
    # D added while C goes: still 3
    assert plan_update(current, 1, DIFF, 2, [e("D"), e("C", None)], LIMITS).outcome is UpdateOutcome.ACCEPTED
    assert plan_update(current, 1, DIFF, 2, [e("A", BLOCKED)], LIMITS).outcome is UpdateOutcome.ACCEPTED


@pytest.mark.parametrize("kind", [FULL, DIFF])
def test_an_id_tag_twice_in_one_update_fails(kind):
    plan = plan_update({}, 0, kind, 1, [e("A"), e("A", BLOCKED)], LIMITS)
    assert plan.outcome is UpdateOutcome.FAILED and "twice" in plan.reason


# -- the store: atomic, persistent ------------------------------------------------------------------
@pytest.fixture
def path(tmp_path):
    return tmp_path / "state" / "station.sqlite"


def opened(path) -> LocalList:
    store = Store(path)
    entries = {k: IdTagInfo(**v) for k, v in store.auth_all(KIND).items()}  # as Station loads it
    return LocalList(store, entries, LOG)


def test_updates_survive_reopening_the_store(path):
    ll = opened(path)
    assert ll.version() == 0
    assert ll.update(FULL, 3, [e("A"), e("B", IdTagInfo("Accepted", "2030-01-01T00:00:00.000Z", "P"))],
                     LIMITS).outcome is UpdateOutcome.ACCEPTED
    assert ll.update(DIFF, 4, [e("A", None), e("C", BLOCKED)], LIMITS).outcome is UpdateOutcome.ACCEPTED
    ll.store.close()
    again = opened(path)
    assert again.version() == 4
    assert again.entries == {"B": IdTagInfo("Accepted", "2030-01-01T00:00:00.000Z", "P"), "C": BLOCKED}
    again.store.close()


def test_a_refused_update_writes_nothing(path):
    ll = opened(path)
    ll.update(FULL, 3, [e("A")], LIMITS)
    assert ll.update(DIFF, 3, [e("B")], LIMITS).outcome is UpdateOutcome.VERSION_MISMATCH
    assert ll.update(FULL, 4, [e("B"), e("B")], LIMITS).outcome is UpdateOutcome.FAILED
    assert ll.version() == 3 and ll.entries == {"A": OK}
    assert ll.store.auth_all(KIND) == {"A": asdict(OK)}
    ll.store.close()


class Crash(Exception):
    pass


@pytest.mark.parametrize("kind,after_writes", [(FULL, 0), (FULL, 2), (DIFF, 1), (DIFF, 3)])
def test_a_failure_in_the_middle_of_the_write_leaves_the_old_list_and_version(path, monkeypatch, kind, after_writes):
    """The store fails after some of the update's rows are written (a disk error, or the power cut
    that the rollback stands for): the answer is Failed, and the old list and version are what
    memory holds, what the store holds and what a reopened file holds."""
    ll = opened(path)
    ll.update(FULL, 1, [e("A"), e("B"), e("C")], ListLimits(10, 10))
    old_entries = dict(ll.entries)
    real_put = Store.auth_put
    writes = {"n": 0}

    def failing_put(self, *a, **kw):
        if writes["n"] == after_writes:
            raise Crash("disk I/O error")
        writes["n"] += 1
        return real_put(self, *a, **kw)

    monkeypatch.setattr(Store, "auth_put", failing_put)
    update = [e("D"), e("E"), e("F"), e("G")] if kind is FULL else [e("A", None), e("B", BLOCKED), e("X"), e("Y"), e("Z")]
    plan = ll.update(kind, 2, update, ListLimits(10, 10))
    assert plan.outcome is UpdateOutcome.FAILED and "disk I/O error" in plan.reason
    assert writes["n"] == after_writes  # it did fail in the middle
    assert ll.entries == old_entries and ll.version() == 1
    assert {k: IdTagInfo(**v) for k, v in ll.store.auth_all(KIND).items()} == old_entries
    assert ll.store.get(NS, "version") == 1
    monkeypatch.undo()
    # the store is usable afterwards (no transaction left open), and the file holds the old list
    assert ll.update(DIFF, 2, [e("Q")], ListLimits(10, 10)).outcome is UpdateOutcome.ACCEPTED
    ll.store.close()
    again = opened(path)
    assert again.version() == 2 and again.entries == {**old_entries, "Q": OK}
    again.store.close()


def test_a_failure_writing_the_version_also_keeps_the_old_entries(path, monkeypatch):
    ll = opened(path)
    ll.update(FULL, 1, [e("A")], LIMITS)
    real = Store.put

    def put(self, ns, key, value):
        if ns == NS:
            raise Crash("no space left on device")
        return real(self, ns, key, value)

    monkeypatch.setattr(Store, "put", put)
    assert ll.update(FULL, 2, [e("B")], LIMITS).outcome is UpdateOutcome.FAILED
    monkeypatch.undo()
    assert ll.entries == {"A": OK} and ll.store.auth_all(KIND) == {"A": asdict(OK)} and ll.version() == 1
    ll.store.close()


KILLED_MID_UPDATE = """
import logging, os, sys
from station.core.auth import IdTagInfo
from station.core.local_list import ListEntry, ListLimits, UpdateType
from station.local_list import KIND, LocalList
from station.store import Store

store = Store(sys.argv[1])
ll = LocalList(store, {k: IdTagInfo(**v) for k, v in store.auth_all(KIND).items()}, logging.getLogger("child"))
real_put, n = Store.auth_put, [0]

def put(self, *a, **kw):
    n[0] += 1
    if n[0] == 3:
        os._exit(9)  # the power goes: no rollback, no close, rows of the update already written
    return real_put(self, *a, **kw)

Store.auth_put = put
ll.update(UpdateType.FULL, 2, [ListEntry(f"NEW{i}", IdTagInfo("Accepted")) for i in range(5)], ListLimits(10, 10))
sys.exit(0)  # not reached
"""


def test_a_process_killed_in_the_middle_of_an_update_leaves_the_old_list_and_version(path):
    """A real process dies (os._exit) after two rows of a full update are written, inside the
    store transaction: the file, opened again, has the old list and version."""
    import subprocess
    import sys

    ll = opened(path)
    ll.update(FULL, 1, [e("A"), e("B")], LIMITS)
    ll.store.close()
    child = subprocess.run([sys.executable, "-c", KILLED_MID_UPDATE, str(path)], capture_output=True, text=True, timeout=30)
    assert child.returncode == 9, child.stderr
    again = opened(path)
    assert again.version() == 1 and again.entries == {"A": OK, "B": OK}
    again.store.close()

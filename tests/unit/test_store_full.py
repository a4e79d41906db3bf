"""The store tells ``on_full`` when SQLite finds the disk full (the security event MemoryExhaustion):
a real SQLITE_FULL, made with PRAGMA max_page_count; the error still reaches the caller."""

from __future__ import annotations

import sqlite3

import pytest

from station.store import Store, storage_full


def test_on_full_is_told_of_a_real_sqlite_full_and_the_error_goes_on(tmp_path):
    s = Store(tmp_path / "s.sqlite")
    told: list[BaseException] = []
    s.on_full = told.append
    pages = s.db.execute("PRAGMA page_count").fetchone()[0]
    s.db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(sqlite3.OperationalError, match="full"):
        for i in range(1000):
            s.put("filler", str(i), "x" * 2000)
    assert len(told) == 1 and storage_full(told[0])
    assert s.get("store", "created") == 1  # reads still work
    s.close()


def test_other_errors_are_not_memory_exhaustion(tmp_path):
    s = Store(tmp_path / "s.sqlite")
    told: list[BaseException] = []
    s.on_full = told.append
    with pytest.raises(sqlite3.OperationalError):
        s.db.execute("SELECT * FROM no_such_table")
    assert told == []
    assert storage_full(MemoryError())
    assert not storage_full(sqlite3.OperationalError("database is locked"))
    s.close()


def test_a_failing_report_does_not_hide_the_error(tmp_path):
    s = Store(tmp_path / "s.sqlite")

    def broken(e: BaseException) -> None:
        raise RuntimeError("report failed")

    s.on_full = broken
    pages = s.db.execute("PRAGMA page_count").fetchone()[0]
    s.db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(sqlite3.OperationalError, match="full"):
        for i in range(1000):
            s.put("filler", str(i), "x" * 2000)
    s.close()

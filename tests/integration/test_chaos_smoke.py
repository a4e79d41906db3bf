"""The power-loss and chaos campaign (bench/chaos.py), tiny: a few kill -9 of the real station
process and one of the CSMS, a link drop and a slow CSMS, then nothing lost, duplicated or
reordered. The long run (200+ kills) and its figures: docs/reliability.md.

The campaign's verdict is checked too, on recorded traffic made up here: a message the station
queued and the CSMS never saw is lost, one StartTransaction under two unique ids is an orphan, a
MeterValues after its StopTransaction is reordered, the same unique id again is only a retry.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_chaos() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_chaos", ROOT / "bench" / "chaos.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_chaos"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.process
def test_chaos_campaign_smoke_nothing_lost_duplicated_or_reordered(tmp_path: Path) -> None:
    report_file = tmp_path / "report.json"
    cmd = [sys.executable, str(ROOT / "bench" / "chaos.py"), "--kills", "3", "--seed", "11", "--csms-kills", "1",
           "--link-drops", "1", "--slow", "1", "--silent", "0", "--aimed", "0.34", "--max-gap", "2", "--settle", "30",
           "--json", str(report_file), "--keep", str(tmp_path / "work"), "--quiet"]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert report_file.exists(), run.stdout + run.stderr
    report = json.loads(report_file.read_text())
    summary = run.stdout[-3000:]
    assert report["chaos"]["station_kills"] == 3, summary
    assert report["settled"] and report["final_outbox"] == 0, summary
    assert report["final_session"], summary  # the station still charges and reports after the chaos
    assert sum(report["expected"].values()) > 0 and report["expected"] == report["delivered"], summary
    assert not any(report["lost"].values()), summary
    assert not any(report["duplicated"].values()), summary
    assert not any(report["reordered"].values()), summary
    assert report["misattributed"] == 0, summary
    tx = report["transactions"]
    assert tx["started_at_csms"] >= 1 and tx["started_at_csms"] == tx["stopped_at_csms"] and not tx["unstopped"], summary
    assert report["station_log"]["tracebacks"] == 0, summary
    assert run.returncode == 0 and "RESULT: PASS" in run.stdout, summary


# -- the verdict on made-up traffic ---------------------------------------------------------------
def call(uid: str, action: str, payload: dict, tx: int | None = None) -> dict:
    return {"ev": "call", "conn": 1, "uid": uid, "action": action, "payload": payload, "tx": tx, "schema": None}


START = {"connectorId": 1, "idTag": "S1", "meterStart": 0, "timestamp": "2026-01-01T00:00:00.000Z"}
MV = {"connectorId": 1, "meterValue": [{"timestamp": "2026-01-01T00:00:02.000Z", "sampledValue": [{"value": "5"}]}]}
STOP = {"meterStop": 9, "timestamp": "2026-01-01T00:00:05.000Z", "reason": "Local", "idTag": "S1"}


def observed(chaos: ModuleType, *entries: tuple[str, dict]) -> object:
    obs = chaos.Observer(Path("/nonexistent"))
    obs.txs[1] = {"connector": 1, "id_tag": "S1", "tx_ids": set(), "open": 0}
    for seq, (action, payload) in enumerate(entries, 1):
        obs.outbox[seq] = (action, {**payload, "transactionId": 0} if action != "StartTransaction" else payload, 1)
    return obs


def test_verdict_clean_traffic_with_a_retry_passes() -> None:
    chaos = load_chaos()
    obs = observed(chaos, ("StartTransaction", START), ("MeterValues", MV), ("StopTransaction", STOP))
    records = [call("a", "StartTransaction", START, tx=1), call("a", "StartTransaction", START, tx=1),
               call("b", "MeterValues", {**MV, "transactionId": 1}), call("c", "StopTransaction", {**STOP, "transactionId": 1})]
    r = chaos.analyse(records, obs, {"S1": 1})
    assert r["expected"] == r["delivered"] == {"StartTransaction": 1, "MeterValues": 1, "StopTransaction": 1}
    assert r["retries"] == {"StartTransaction": 1} and not r["duplicated"] and not r["lost"]
    assert not chaos.failed(r)


def test_verdict_finds_lost_orphan_reordered_and_misattributed() -> None:
    chaos = load_chaos()
    obs = observed(chaos, ("StartTransaction", START), ("MeterValues", MV), ("StopTransaction", STOP))
    # the queued MeterValues never arrives: lost
    r = chaos.analyse([call("a", "StartTransaction", START, tx=1), call("c", "StopTransaction", {**STOP, "transactionId": 1})],
                      obs, {})
    assert r["lost"] == {"MeterValues": 1} and chaos.failed(r)
    # the Start again under a new unique id: a second transaction at the CSMS that is never stopped
    r = chaos.analyse([call("a", "StartTransaction", START, tx=1), call("a2", "StartTransaction", START, tx=2),
                       call("b", "MeterValues", {**MV, "transactionId": 2}), call("c", "StopTransaction", {**STOP, "transactionId": 2})],
                      obs, {})
    assert r["duplicated"] == {"StartTransaction": 1} and r["transactions"]["orphans"] == [1] and chaos.failed(r)
    # MeterValues after the Stop: reordered
    r = chaos.analyse([call("a", "StartTransaction", START, tx=1), call("c", "StopTransaction", {**STOP, "transactionId": 1}),
                       call("b", "MeterValues", {**MV, "transactionId": 1})], obs, {})
    assert r["reordered"] == {"MeterValues": 1} and not r["lost"] and chaos.failed(r)
    # the Stop carries another session's transaction id
    other = {**START, "idTag": "S2"}
    r = chaos.analyse([call("a", "StartTransaction", START, tx=1), call("x", "StartTransaction", other, tx=2),
                       call("b", "MeterValues", {**MV, "transactionId": 1}), call("c", "StopTransaction", {**STOP, "transactionId": 2})],
                      obs, {})
    assert r["misattributed"] == 1 and chaos.failed(r)


def test_verdict_a_transaction_seen_at_the_station_but_never_queued_is_lost() -> None:
    chaos = load_chaos()
    obs = observed(chaos)  # the station showed transaction S1, but no message of it was ever seen
    r = chaos.analyse([], obs, {"S1": 1})
    assert r["lost"] == {"StartTransaction": 1, "StopTransaction": 1} and chaos.failed(r)

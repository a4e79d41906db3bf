"""Station config validation, OCPP 1.6 configuration keys, and `station config check`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from station.config import ConfigError, load, parse
from station.ocpp16.config_keys import ConfigurationKeys
from station.store import Store

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "data,problem",
    [
        ({"station": {"csms_urll": "ws://x"}}, "station.csms_urll: unknown key"),
        ({"station": {"csms_url": "http://x"}}, "station.csms_url: must be a ws:// or wss:// URL"),
        ({"station": {"security_profile": 2}}, "station.security_profile: profile 2 needs a wss:// csms_url"),
        ({"station": {"security_profile": "1"}}, "station.security_profile: must be a whole number"),
        ({"station": {"ocpp": "1.5"}}, "station.ocpp: must be one of"),
        ({"station": {"id": "a/b"}}, "station.id: must be 1-48 characters"),
        ({"evse": [{"id": 1, "max_current": 100}]}, "evse[0].max_current: must be between 6 and 80 A"),
        ({"evse": [{"id": 1, "phases": 2}]}, "evse[0].phases: must be 1 or 3"),
        ({"evse": [{"id": 1, "meter": {"kind": "magic"}}]}, "evse[0].meter.kind: 'magic' is not a known backend"),
        ({"hardware": {"gpio": "arduino"}}, "hardware.gpio: must be sim, gpiod or rpigpio"),
        ({"extra": {}}, "extra: unknown section"),
    ],
)
def test_config_problems_name_the_key(data, problem):
    with pytest.raises(ConfigError) as e:
        parse(data)
    assert any(p.startswith(problem) for p in e.value.problems), e.value.problems


def test_good_config_and_example():
    cfg = parse({"station": {"id": "CP-9", "csms_url": "wss://c/ocpp", "security_profile": 2},
                 "evse": [{"id": 1}, {"id": 2, "phases": 1, "max_current": 16}]})
    assert cfg.url_for_station() == "wss://c/ocpp/CP-9" and len(cfg.evses) == 2
    assert load(ROOT / "config" / "sim.toml").evses


def test_config_check_cli(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[station]\ncsms_url = "http://nope"\n')
    r = subprocess.run([sys.executable, "-m", "station", "config", "check", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1 and "station.csms_url" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "station", "config", "check", str(ROOT / "config" / "sim.toml")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "OK" in r.stdout
    bad.write_text("this is = = not toml")
    r = subprocess.run([sys.executable, "-m", "station", "config", "check", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1 and "not valid TOML" in r.stderr


def test_run_refuses_bad_flags_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "station", "run", "--csms-url", "ftp://x", "--state-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "station.csms_url" in r.stderr and "Traceback" not in r.stderr


def test_configuration_keys_persist_and_validate(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    keys = ConfigurationKeys(store, 2)
    assert keys.change("HeartbeatInterval", "42") == ("Accepted", "")
    assert keys.change("HeartbeatInterval", "x")[0] == "Rejected"
    assert keys.change("NumberOfConnectors", "5")[0] == "Rejected"
    assert keys.change("Nope", "1")[0] == "NotSupported"
    assert keys.change("StopTransactionOnInvalidId", "maybe")[0] == "Rejected"
    store.close()
    keys2 = ConfigurationKeys(Store(tmp_path / "s.sqlite"), 2)
    assert keys2.get("HeartbeatInterval") == "42" and keys2.get("NumberOfConnectors") == "2"
    found, unknown = keys2.report(["AuthorizationKey", "HeartbeatInterval"])
    assert unknown == ["AuthorizationKey"] and found[0]["value"] == "42"

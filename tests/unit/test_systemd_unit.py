"""systemd/station.service: the directives the station relies on, and `systemd-analyze verify`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "station.service"


def directives() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key}", []).append(value)
    return out


def test_the_unit_asks_for_what_the_station_does():
    d = directives()
    assert d["Service.Type"] == ["notify"]  # station/sdnotify.py sends READY=1
    assert d["Service.WatchdogSec"] == ["30"]  # ... and WATCHDOG=1 every WATCHDOG_USEC/2
    assert d["Service.Restart"] == ["always"]
    assert d["Service.ExecStart"] == ["/opt/station/.venv/bin/station run --config /etc/station/station.toml"]
    assert d["Service.User"] == ["station"]
    assert d["Service.StateDirectory"] == ["station"]
    assert set(d["Service.SupplementaryGroups"][0].split()) == {"gpio", "i2c", "dialout"}
    for key, value in [("ProtectSystem", "strict"), ("ProtectHome", "true"), ("NoNewPrivileges", "true"),
                       ("PrivateTmp", "true"), ("ReadWritePaths", "/var/lib/station")]:
        assert d[f"Service.{key}"] == [value], key
    # hardware access: nothing that hides /dev or limits it to an allow list
    assert "Service.PrivateDevices" not in d and "Service.ProtectClock" not in d and "Service.DeviceAllow" not in d
    # the notify socket is AF_UNIX
    assert "AF_UNIX" in d["Service.RestrictAddressFamilies"][0].split()
    assert d["Install.WantedBy"] == ["multi-user.target"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path):
    """Only the missing /opt/station binary may be reported: no unknown keys, no bad values."""
    copy = tmp_path / "station.service"
    copy.write_text(UNIT.read_text().replace("/opt/station/.venv/bin/station", shutil.which("true") or "/bin/true"))
    r = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (r.stdout + r.stderr).splitlines() if "station.service" in line]
    assert r.returncode == 0 and problems == [], r.stdout + r.stderr

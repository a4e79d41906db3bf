"""systemd notifications (station/sdnotify.py) against real AF_UNIX datagram sockets, and the real
`station run` process telling systemd READY=1, WATCHDOG=1 and STOPPING=1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from station.sdnotify import notify, watchdog_interval
from tests.integration.harness import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    srv.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield srv
    srv.close()


def test_notify_sends_each_message_as_one_datagram(notify_socket):
    assert notify("READY=1")
    assert notify("WATCHDOG=1")
    assert notify("STATUS=charging 2 EVs\nREADY=1")
    assert notify_socket.recv(256) == b"READY=1"
    assert notify_socket.recv(256) == b"WATCHDOG=1"
    assert notify_socket.recv(256) == b"STATUS=charging 2 EVs\nREADY=1"


def test_notify_to_an_abstract_socket(monkeypatch):
    name = f"station-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind("\0" + name)
        srv.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("READY=1")
        assert srv.recv(64) == b"READY=1"


def test_notify_without_systemd(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False


def test_notify_to_a_socket_that_is_gone(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens.sock"))
    assert notify("READY=1") is False  # never raises: the station runs on without systemd


@pytest.mark.parametrize("usec,expected", [("30000000", 15.0), ("1000000", 0.5), ("", None), ("abc", None),
                                           (None, None)])
def test_watchdog_interval_is_half_of_watchdog_usec(monkeypatch, usec, expected):
    if usec is None:
        monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    else:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    assert watchdog_interval() == expected


def test_station_process_reports_ready_pets_the_watchdog_and_says_stopping(tmp_path, notify_socket):
    """What systemd sees with Type=notify and WatchdogSec=1 (WATCHDOG_USEC=1000000): READY=1 once,
    then WATCHDOG=1 about every 0.5 s, and STOPPING=1 on SIGTERM. No CSMS is needed for that."""
    env = {**os.environ, "WATCHDOG_USEC": "1000000", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "station", "run", "--sim", "--id", "SD1", "--state-dir", str(tmp_path / "state"),
         "--csms-url", f"ws://127.0.0.1:{free_port()}/ocpp", "--log-level", "warning"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        got: list[tuple[float, bytes]] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and sum(1 for _, m in got if m == b"WATCHDOG=1") < 3:
            message = notify_socket.recv(256)
            got.append((time.monotonic(), message))
        messages = [m for _, m in got]
        assert messages[0] == b"READY=1" and messages.count(b"READY=1") == 1
        pets = [t for t, m in got if m == b"WATCHDOG=1"]
        assert len(pets) == 3
        gaps = [b - a for a, b in zip(pets, pets[1:], strict=False)]
        assert all(0.2 < g < 0.95 for g in gaps), gaps  # every WatchdogSec/2, well inside WatchdogSec
        proc.send_signal(signal.SIGTERM)
        stopping = False
        for _ in range(20):
            if notify_socket.recv(256) == b"STOPPING=1":
                stopping = True
                break
        assert stopping
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert b"Traceback" not in (proc.stderr.read() if proc.stderr else b"")

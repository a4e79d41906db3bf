"""The station as a real process (``python -m station run``): what only a process can show.

A clean stop by SIGTERM while charging (StopTransaction reason Reboot at the stop time, and no
PowerLoss after the restart), the session at the default log level, one line and exit 2 for a
port in use, an unusable or already held state directory and an API on the network without a
token, and one state directory per station id by default (two stations in one directory used to
end each other's transactions as a power loss).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.harness import free_port, start_session

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]


def ts(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def run_cli(*args: str, cwd: Path | str = ROOT, env: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "station", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def one_line(r: subprocess.CompletedProcess) -> str:
    """The whole of stderr, asserted to be one line without a traceback."""
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


# -- SIGTERM / Ctrl-C while charging ----------------------------------------------------------------

async def test_sigterm_while_charging_ends_the_transaction_with_reason_reboot(csms, booted):
    """systemctl stop / restart: the transaction ends now, reason Reboot, with the stop time and the
    meter of the stop; the CSMS gets it before the process exits, and the restart reports no power loss."""
    sp = await booted()
    start = await start_session(csms, sp)
    await asyncio.sleep(1.5)  # some energy flows
    before = datetime.now(UTC)
    await sp.stop()  # SIGTERM, then wait for the exit
    after = datetime.now(UTC)
    assert sp.proc.returncode == 0, sp.log()[-2000:]
    stops = csms.calls("StopTransaction")
    assert len(stops) == 1, stops
    stop = stops[0]
    assert stop["reason"] == "Reboot" and stop["transactionId"] == 1
    assert before - timedelta(seconds=1) <= ts(stop["timestamp"]) <= after
    assert stop["meterStop"] > start["meterStart"]
    log = sp.log()
    assert "SIGTERM: stopping cleanly" in log
    assert "stopping: transaction 1 on connector 1 ended (Reboot)" in log
    assert "stopping: 1 transaction message(s) delivered to the CSMS" in log
    mark = csms.mark()
    sp.start()
    await csms.expect("BootNotification", timeout=15)
    await csms.no_call("StopTransaction", 2.0)
    assert all(r.action != "StopTransaction" for r in csms.received[mark:])
    assert (await sp.status())["outbox"] == 0


async def test_sigterm_while_offline_queues_the_reboot_stop_for_the_next_start(csms, booted):
    """No CSMS at the stop: the StopTransaction (Reboot, stop time) is kept, the log says so, and it is
    sent after the restart - not a PowerLoss with the time of the last checkpoint."""
    sp = await booted()
    await start_session(csms, sp)
    await sp.link(False)
    await asyncio.wait_for(csms.disconnected.wait(), 5)
    await asyncio.sleep(0.5)
    before = datetime.now(UTC)
    await sp.stop()
    assert sp.proc.returncode == 0
    assert "stopping: 1 transaction message(s) still queued (not connected to the CSMS); they are sent after " \
           "the next start" in sp.log()
    assert csms.calls("StopTransaction") == []
    sp.start()
    stop = await csms.expect("StopTransaction", timeout=15)
    assert stop["reason"] == "Reboot" and stop["transactionId"] == 1
    assert before - timedelta(seconds=1) <= ts(stop["timestamp"]) <= before + timedelta(seconds=5)
    await csms.no_call("StopTransaction", 1.0)


# -- the session at the default log level ---------------------------------------------------------

async def test_the_session_is_in_the_log_at_level_info(csms, booted):
    sp = await booted(extra=["--log-level", "info"])
    await start_session(csms, sp, tag="CARD-7")
    await sp.swipe("CARD-7")
    await csms.expect("StopTransaction", timeout=10)
    await sp.unplug()
    await csms.expect_status(1, "Available", timeout=10)
    assert (await csms.call("RemoteStartTransaction", {"idTag": "REMOTE-1", "connectorId": 1}))["status"] == "Accepted"
    await csms.expect("Authorize", lambda p: p["idTag"] == "REMOTE-1", timeout=10)
    await asyncio.sleep(0.3)
    log = sp.log()
    for words in ("CSMS answered BootNotification: Accepted", "card CARD-7 presented at connector 1",
                  "card CARD-7 accepted", "transaction started on connector 1 for CARD-7",
                  "CSMS numbered the transaction on connector 1: transaction 1",
                  "transaction on connector 1 stopped (Local);", "remote start for REMOTE-1"):
        assert f"INFO    station.CS001: {words}" in log, f"{words!r} not logged at INFO:\n{log[-3000:]}"
    assert " Wh delivered" in log
    assert "connector 1 is now" not in log  # the station's own status line says it once
    assert "DEBUG" not in log and "<- [" not in log and "-> [" not in log  # frames only at debug


# -- one line, exit 2 ---------------------------------------------------------------------------

def test_api_port_in_use_is_one_line_and_exit_2(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run_cli("run", "--sim", "--csms-url", "ws://127.0.0.1:9/ocpp", "--state-dir", str(tmp_path / "s"),
                    "--api", f"127.0.0.1:{port}")
    assert r.returncode == 2
    assert one_line(r) == f"station: --api / station.api 127.0.0.1:{port}: cannot listen there (address already in use)"


@pytest.mark.parametrize("how", ["a-file", "under-a-file"])
def test_an_unusable_state_directory_is_one_line_and_exit_2(tmp_path, how):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    state = blocker if how == "a-file" else blocker / "state"
    r = run_cli("run", "--sim", "--csms-url", "ws://127.0.0.1:9/ocpp", "--state-dir", str(state))
    assert r.returncode == 2
    line = one_line(r)
    assert line.startswith(f"station: state directory {state}: "), line
    assert line.endswith("not a directory") or line.endswith("(Not a directory)"), line


def test_a_network_api_without_a_token_is_refused(tmp_path):
    args = ("run", "--sim", "--csms-url", "ws://127.0.0.1:9/ocpp", "--state-dir", str(tmp_path / "s"),
            "--api", f"0.0.0.0:{free_port()}")
    r = run_cli(*args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "station.api: 0.0.0.0 is not a loopback address" in r.stderr and "STATION_API_TOKEN" in r.stderr


async def test_a_network_api_with_a_token_needs_it(tmp_path, csms):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "station", "run", "--sim", "--csms-url",
                             f"ws://127.0.0.1:{csms.port}/ocpp", "--state-dir", str(tmp_path / "s"),
                             "--api", f"0.0.0.0:{port}"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "STATION_API_TOKEN": "t0ken-" * 4})
    try:
        await csms.expect("BootNotification", timeout=15)

        async def get(headers: str) -> bytes:
            for _ in range(100):
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    break
                except OSError:
                    await asyncio.sleep(0.1)
            writer.write(f"GET /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n".encode())
            data = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            return data

        assert (await get("")).startswith(b"HTTP/1.1 401")
        assert (await get(f"Authorization: Bearer {'t0ken-' * 4}\r\n")).startswith(b"HTTP/1.1 200")
    finally:
        # a clean stop, waited for without blocking this loop: the CSMS in it must still answer the
        # station's last calls (a blocking wait left the stop waiting for an answer that never came)
        proc.terminate()
        deadline = asyncio.get_running_loop().time() + 20
        while proc.poll() is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
            raise AssertionError("the station did not stop within 20 s of SIGTERM")


# -- the state directory: per station id, locked ----------------------------------------------------

async def test_a_second_station_on_the_same_state_directory_is_refused(csms, booted):
    sp = await booted()
    r = await asyncio.to_thread(run_cli, "run", "--sim", "--csms-url", f"ws://127.0.0.1:{csms.port}/ocpp",
                                "--id", "OTHER", "--state-dir", str(sp.state_dir))
    assert r.returncode == 2
    assert one_line(r) == (f"station: state directory {sp.state_dir} is in use by another station "
                           f"(pid {sp.proc.pid}); give each station its own --state-dir")
    # the refused station never connected (the first one may still be sending its startup
    # security event, queued since issue 9: not a message of the second)
    assert csms.connections == 1 and csms.paths == ["/ocpp/CS001"]
    assert (await sp.status())["connected"] is True


async def test_stations_without_state_dir_each_get_their_own(tmp_path, csms):
    """Two ids started in one directory without --state-dir: state/<id> each. Before, both used ./state
    and the second ended the first one's running transaction as a power loss."""
    procs: list[subprocess.Popen] = []
    ports = {}

    def start(station_id: str) -> None:
        ports[station_id] = free_port()
        log = open(tmp_path / f"{station_id}.log", "a")  # noqa: SIM115 - the child owns it
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "station", "run", "--sim", "--id", station_id, "--csms-url",
             f"ws://127.0.0.1:{csms.port}/ocpp", "--api", f"127.0.0.1:{ports[station_id]}",
             "--ocpp-config", str(ocpp_cfg)],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)}))
        log.close()

    async def post(station_id: str, path: str, body: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", ports[station_id])
        writer.write((f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}").encode())
        assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 200")
        writer.close()

    ocpp_cfg = tmp_path / "ocpp.json"
    ocpp_cfg.write_text('{"MeterValueSampleInterval": "0"}')
    try:
        start("CP-A")
        await csms.expect("BootNotification", timeout=15)
        await csms.expect_status(1, "Available", timeout=10)
        await post("CP-A", "/api/evses/1/plug", "{}")
        await post("CP-A", "/api/evses/1/swipe", '{"id_token": "TAG-A"}')
        await csms.expect("StartTransaction", timeout=10)
        await asyncio.sleep(6)  # CP-A checkpoints its running transaction
        start("CP-B")
        deadline = time.monotonic() + 15
        while "/ocpp/CP-B" not in csms.paths and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await csms.expect("BootNotification", timeout=15)
        await csms.no_call("StopTransaction", 2.0)
        assert csms.calls("StopTransaction") == []
        assert (tmp_path / "state" / "CP-A" / "station.sqlite").exists()
        assert (tmp_path / "state" / "CP-B" / "station.sqlite").exists()
        assert not (tmp_path / "state" / "station.sqlite").exists()
    finally:
        for p in procs:
            p.kill()
            p.wait(10)


@pytest.fixture
def as_other_user(tmp_path):
    """A directory every user can reach and a way to run the CLI as an unprivileged user (root may
    write anywhere, so as root the test runs the station as nobody)."""
    import shutil
    import tempfile

    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv (util-linux) to run the station as the user nobody")
    base = Path(tempfile.mkdtemp(prefix="station-ro-", dir="/tmp"))
    base.chmod(0o755)

    def run(*args: str) -> subprocess.CompletedProcess:
        # setpriv, not Popen(user=...): the interpreter may live under /root, which nobody cannot search
        cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "station", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(base)})

    yield base, run
    shutil.rmtree(base, ignore_errors=True)


def test_a_state_directory_the_user_may_not_write_is_one_line_and_exit_2(as_other_user):
    base, run = as_other_user
    state = base / "state"
    state.mkdir(mode=0o755)  # root's, read-only for the station's user
    for d, why in ((state, "not writable by this user"), (state / "sub", "cannot create it (Permission denied)")):
        r = run("run", "--sim", "--csms-url", "ws://127.0.0.1:9/ocpp", "--state-dir", str(d))
        assert r.returncode == 2
        assert one_line(r) == f"station: state directory {d}: {why}"


def test_a_state_file_the_user_may_not_write_is_one_line_and_exit_2(as_other_user):
    from station.store import Store

    base, run = as_other_user
    state = base / "state"
    state.mkdir()
    state.chmod(0o777)
    Store(state / "station.sqlite").close()  # root's file, 0644
    r = run("run", "--sim", "--csms-url", "ws://127.0.0.1:9/ocpp", "--state-dir", str(state))
    assert r.returncode == 2
    line = one_line(r)
    assert line.startswith(f"station: state file {state / 'station.sqlite'}: "), line
    assert "readonly" in line or "read-only" in line or "unable to open" in line, line


# -- issue 8: start-up input that used to give a traceback, a silent default or no start at all ------

@pytest.mark.parametrize("args,problem", [
    (["--id", ""], "--id: empty; leave the flag out to use the default"),  # ran as CP-001
    (["--csms-url", ""], "--csms-url: empty; leave the flag out to use the default"),  # ran against :9000
    (["--csms-url", "ws://[::1/ocpp"], "--csms-url / station.csms_url: not a valid URL (Invalid IPv6 URL)"),
    (["--config", "{latin1}"], "{latin1}: not valid UTF-8 (byte 0xe9 in line 2)"),  # a UnicodeDecodeError
])
def test_start_up_input_that_cannot_work_is_one_problem_and_exit_2(tmp_path, args, problem):
    latin1 = tmp_path / "station.toml"
    latin1.write_bytes('[station]\nvendor = "Soci\xe9t\xe9"\n'.encode("latin-1"))
    args = [a.format(latin1=latin1) for a in args]
    r = run_cli("run", "--sim", "--state-dir", str(tmp_path / "s"), *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert lines[0] == "station: the configuration has problems:" and len(lines) == 2, r.stderr
    assert lines[1].startswith(f"  - {problem.format(latin1=latin1)}"), r.stderr


def test_config_check_refuses_a_csms_port_out_of_range(tmp_path):
    """ws://host:99999 passed `config check` and then failed at every connect."""
    path = tmp_path / "station.toml"
    path.write_text('[station]\ncsms_url = "ws://csms.example:99999/ocpp"\n')
    r = run_cli("config", "check", str(path))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.splitlines() == [f"{path}: 1 problem(s):", "  - station.csms_url: the port must be a number from "
                                     "1 to 65535, got 99999 in 'ws://csms.example:99999/ocpp'"]


async def test_a_damaged_state_file_is_moved_aside_and_the_process_starts(csms, booted, tmp_path):
    """It used to be `station: state file ...: file is not a database`, exit 2, at every start."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "station.sqlite").write_bytes(b"\0garbage" * 1000)
    sp = await booted()
    assert (await sp.status())["registration"] == "Accepted"
    [aside] = [p.name for p in state.iterdir() if p.name.startswith("station.sqlite.corrupt-")]
    assert (state / aside).read_bytes() == b"\0garbage" * 1000
    errors = [ln for ln in sp.log().splitlines() if " ERROR " in ln]
    assert len(errors) == 1 and f"is damaged (file is not a database): moved aside to {state / aside}" in errors[0]

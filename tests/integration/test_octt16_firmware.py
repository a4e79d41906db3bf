"""OCTT OCPP 1.6J Firmware Management (2.18) and Diagnostics (2.19) cases performed against the
real station (in process, on virtual time) with real HTTP(S) and FTP servers on 127.0.0.1
(tests/transfer_servers.py), including servers that refuse or break mid-transfer."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import timedelta

import pytest

from station.firmware import make_package
from tests.integration.harness import start_session, wall_now
from tests.tls import make_pki, server_context
from tests.transfer_servers import FtpFileServer, HttpFileServer


def iso_in(seconds: float) -> str:
    return (wall_now() + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.fixture
async def http():
    srv = await HttpFileServer().start()
    yield srv
    await srv.close()


@pytest.fixture
async def ftp():
    srv = await FtpFileServer(user="cs", password="secret").start()
    yield srv
    await srv.close()


def fw_status(status: str):
    return lambda p: p["status"] == status


async def expect_firmware(csms, *statuses: str, timeout: float = 30) -> None:
    for s in statuses:
        await csms.expect("FirmwareStatusNotification", fw_status(s), timeout=timeout)


# -- 2.18 Firmware Management -------------------------------------------------------------------
async def test_TC_044_1_firmware_update_download_and_install(csms, booted, http):
    """UpdateFirmware over HTTP: Downloading, Downloaded, Installing; the station restarts into the
    new version (BootNotification reports it), then Installed; the version stays after a restart."""
    http.files["/fw/2.0.0.pkg"] = make_package("2.0.0", b"image bytes")
    sp = await booted()
    assert csms.calls("BootNotification")[0]["firmwareVersion"] == "0.1.0"
    assert await csms.call("UpdateFirmware", {"location": http.url("/fw/2.0.0.pkg"), "retrieveDate": iso_in(0)}) == {}
    await expect_firmware(csms, "Downloading", "Downloaded", "Installing")
    boot = await csms.expect("BootNotification", timeout=30)
    assert boot["firmwareVersion"] == "2.0.0"
    await csms.expect_status(1, "Available")
    await expect_firmware(csms, "Installed")
    order = [(r.action, r.payload.get("status")) for r in csms.received if r.action in ("FirmwareStatusNotification", "BootNotification")]
    assert order[-5:] == [("FirmwareStatusNotification", "Downloading"), ("FirmwareStatusNotification", "Downloaded"),
                          ("FirmwareStatusNotification", "Installing"), ("BootNotification", None),
                          ("FirmwareStatusNotification", "Installed")]
    assert (sp.state_dir / "firmware" / "firmware.pkg").read_bytes() == http.files["/fw/2.0.0.pkg"]
    # a plain restart boots the installed version again and reports Installed only once
    await sp.stop()
    csms.mark()
    sp.start()
    assert (await csms.expect("BootNotification", timeout=15))["firmwareVersion"] == "2.0.0"
    await csms.expect_status(1, "Available")
    await csms.no_call("FirmwareStatusNotification", 5)


async def test_TC_044_1_over_ftp_and_https_with_retrieve_date_in_the_future(csms, booted, ftp, http, tmp_path):
    """retrieveDate ten minutes ahead: nothing before it (a restart meanwhile keeps the job), the
    download at that time over FTP; then the same over HTTPS with the station trusting the test CA."""
    ftp.files["/pub/fw.pkg"] = make_package("3.1.0")
    pki = make_pki(tmp_path / "pki")
    config = tmp_path / "station.toml"  # the station trusts the test CA for HTTPS too (station.ca_file)
    config.write_text(f'[station]\nca_file = "{pki.ca_file}"\n\n[[evse]]\nid = 1\n')
    sp = await booted(config=str(config))
    await csms.call("UpdateFirmware", {"location": ftp.url("/pub/fw.pkg", "cs", "secret"), "retrieveDate": iso_in(600),
                                       "retries": 1, "retryInterval": 30})
    await csms.no_call("FirmwareStatusNotification", 250)
    await sp.stop()
    sp.start()
    await csms.expect("BootNotification", timeout=15)
    await csms.no_call("FirmwareStatusNotification", 250)
    assert not any(c.startswith("RETR") for c in ftp.commands)
    await expect_firmware(csms, "Downloading", "Downloaded", "Installing", timeout=200)
    assert (await csms.expect("BootNotification", timeout=30))["firmwareVersion"] == "3.1.0"
    await expect_firmware(csms, "Installed")

    https = await HttpFileServer(files={"/fw.pkg": make_package("3.2.0")}, ssl=server_context(pki)).start()
    try:
        await csms.call("UpdateFirmware", {"location": f"https://localhost:{https.port}/fw.pkg", "retrieveDate": iso_in(0)})
        await expect_firmware(csms, "Downloading", "Downloaded", "Installing")
        assert (await csms.expect("BootNotification", timeout=30))["firmwareVersion"] == "3.2.0"
        await expect_firmware(csms, "Installed")
    finally:
        await https.close()


async def test_firmware_installation_waits_until_the_charging_session_has_ended(csms, booted, http):
    """1.6 5.16 recommends installing once the Charge Point is idle: the download goes ahead, the
    installation (and the restart) only after the transaction has ended, never stopping it."""
    http.files["/fw.pkg"] = make_package("2.0.0")
    sp = await booted()
    await start_session(csms, sp)
    await csms.call("UpdateFirmware", {"location": http.url("/fw.pkg"), "retrieveDate": iso_in(0)})
    await expect_firmware(csms, "Downloading", "Downloaded")
    await csms.no_call("FirmwareStatusNotification", 600)
    await csms.call("TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"})
    assert (await csms.expect("FirmwareStatusNotification"))["status"] == "Downloaded"
    assert not csms.calls("StopTransaction")
    await sp.swipe("TAG1")  # the driver ends the session
    stop = await csms.expect("StopTransaction", timeout=30)
    assert stop["reason"] == "Local"
    await expect_firmware(csms, "Installing")
    assert (await csms.expect("BootNotification", timeout=30))["firmwareVersion"] == "2.0.0"
    await expect_firmware(csms, "Installed")


async def test_TC_044_2_firmware_update_download_failed(csms, booted, http):
    """The server answers 404: Downloading, then after 1 + retries attempts retryInterval apart,
    DownloadFailed; the station does not restart."""
    await booted()
    t0 = csms.mark()
    await csms.call("UpdateFirmware", {"location": http.url("/fw/missing.pkg"), "retrieveDate": iso_in(0),
                                       "retries": 2, "retryInterval": 60})
    await expect_firmware(csms, "Downloading")
    await expect_firmware(csms, "DownloadFailed", timeout=200)
    assert len(http.requests) == 3
    gaps = [b - a for a, b in zip(http.times, http.times[1:], strict=False)]
    assert gaps == [pytest.approx(60, abs=1)] * 2  # retryInterval apart
    assert [r.payload["status"] for r in csms.received[t0:] if r.action == "FirmwareStatusNotification"] == \
        ["Downloading", "DownloadFailed"]
    await csms.no_call("BootNotification", 5)
    conf = await csms.call("TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"})
    assert conf["status"] == "Accepted"
    assert (await csms.expect("FirmwareStatusNotification"))["status"] == "Idle"


@pytest.mark.parametrize("how", ["ftp_breaks", "ftp_refuses", "http_breaks", "bad_scheme"])
async def test_TC_044_2_download_failed_server_breaks_or_refuses(csms, booted, http, ftp, how):
    data = make_package("9.9.9", b"x" * 100_000)
    ftp.files["/fw.pkg"] = http.files["/fw.pkg"] = data
    ftp.break_after = http.break_after = 20_000
    ftp.refuse = how == "ftp_refuses"
    url = {"ftp_breaks": ftp.url("/fw.pkg", "cs", "secret"), "ftp_refuses": ftp.url("/fw.pkg", "cs", "secret"),
           "http_breaks": http.url("/fw.pkg"), "bad_scheme": "sftp://127.0.0.1/fw.pkg"}[how]
    await booted()
    await csms.call("UpdateFirmware", {"location": url, "retrieveDate": iso_in(0), "retries": 1, "retryInterval": 5})
    await expect_firmware(csms, "DownloadFailed", timeout=60)
    await csms.no_call("BootNotification", 5)
    assert not any(p["status"] in ("Downloaded", "Installing") for p in csms.calls("FirmwareStatusNotification"))


async def test_TC_044_3_firmware_update_installation_failed(csms, booted, http):
    """A corrupt package downloads but does not install: Installing, InstallationFailed, no restart,
    the old version stays."""
    http.files["/fw.pkg"] = make_package("2.0.0", b"image").replace(b"aW1hZ2U=", b"aW1hZ2F=")
    sp = await booted()
    await csms.call("UpdateFirmware", {"location": http.url("/fw.pkg"), "retrieveDate": iso_in(0)})
    await expect_firmware(csms, "Downloading", "Downloaded", "Installing", "InstallationFailed")
    await csms.no_call("BootNotification", 10)
    assert "sha256" in sp.log()
    await sp.stop()
    sp.start()
    assert (await csms.expect("BootNotification", timeout=15))["firmwareVersion"] == "0.1.0"


async def test_trigger_firmware_status_reports_downloading(csms, booted, http):
    http.files["/fw.pkg"] = make_package("2.0.0")
    http.delay = 120  # a slow server
    await booted()
    await csms.call("UpdateFirmware", {"location": http.url("/fw.pkg"), "retrieveDate": iso_in(0)})
    await expect_firmware(csms, "Downloading")
    assert (await csms.call("TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"}))["status"] == "Accepted"
    assert (await csms.expect("FirmwareStatusNotification"))["status"] == "Downloading"  # the real state, not Idle
    await expect_firmware(csms, "Downloaded", "Installing", "Installed", timeout=200)


async def test_download_cut_by_a_reset_starts_again_once_the_station_is_accepted(csms, booted, http):
    """A Reset during a slow download: the job is kept; after the reboot it starts over, and its
    Downloading goes out after the BootNotification was accepted, not before (nor lost)."""
    http.files["/fw.pkg"] = make_package("4.0.0")
    http.delay = 120
    await booted()
    await csms.call("UpdateFirmware", {"location": http.url("/fw.pkg"), "retrieveDate": iso_in(0)})
    await expect_firmware(csms, "Downloading")
    assert (await csms.call("Reset", {"type": "Hard"}))["status"] == "Accepted"
    boot_at = len(csms.received)
    await csms.expect("BootNotification", timeout=30)
    http.delay = 0
    await expect_firmware(csms, "Downloading", "Downloaded", "Installing", timeout=200)
    assert (await csms.expect("BootNotification", timeout=30))["firmwareVersion"] == "4.0.0"
    await expect_firmware(csms, "Installed")
    after_reset = [r.action for r in csms.received[boot_at:]]
    assert after_reset.index("BootNotification") < after_reset.index("FirmwareStatusNotification")


@pytest.mark.process  # power cut: kill -9
async def test_power_cut_during_download_resumes_the_update(csms, booted, http):
    """The station as a process loses power during a download: after the reboot the job (kept in
    its state directory) starts over, installs, and the process-restarted station reports 5.0.0."""
    http.files["/fw.pkg"] = make_package("5.0.0")
    http.delay = 30
    sp = await booted()
    await csms.call("UpdateFirmware", {"location": http.url("/fw.pkg"), "retrieveDate": iso_in(0)})
    await expect_firmware(csms, "Downloading")
    sp.kill()
    http.delay = 0
    csms.mark()
    sp.start()
    assert (await csms.expect("BootNotification", timeout=20))["firmwareVersion"] == "0.1.0"
    await expect_firmware(csms, "Downloading", "Downloaded", "Installing")
    assert (await csms.expect("BootNotification", timeout=20))["firmwareVersion"] == "5.0.0"
    await expect_firmware(csms, "Installed")


# -- 2.19 Diagnostics ---------------------------------------------------------------------------
def unpack(data: bytes) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()}  # type: ignore[union-attr]


async def test_TC_045_1_get_diagnostics(csms, booted, ftp):
    """GetDiagnostics to an FTP directory: the answer names the file, Uploading, Uploaded; the file
    holds the station's log and state (no secrets)."""
    sp = await booted(ocpp_config={"AuthorizationKey": "0123456789abcdef0123"})
    conf = await csms.call("GetDiagnostics", {"location": ftp.url("/diag/", "cs", "secret")})
    name = conf["fileName"]
    assert name.startswith("diagnostics-CS001-") and name.endswith(".tar.gz")
    await csms.expect("DiagnosticsStatusNotification", fw_status("Uploading"))
    await csms.expect("DiagnosticsStatusNotification", fw_status("Uploaded"), timeout=60)
    files = unpack(ftp.uploads[f"/diag/{name}"])
    assert "BootNotification" in files["log.txt"]
    state = json.loads(files["state.json"])
    assert state["station_id"] == "CS001" and state["registration"] == "Accepted"
    assert state["connectors"]["1"]["status"] == "Available" and state["firmware_version"] == "0.1.0"
    assert "AuthorizationKey" not in files["state.json"] and "0123456789abcdef0123" not in json.dumps(files)
    assert sp.running


async def test_TC_045_1_get_diagnostics_over_http_with_time_window(csms, booted, http):
    http.no_put = True  # the station falls back to a multipart POST
    await booted()
    await csms.no_call("Heartbeat", 5)
    start = iso_in(-2)  # whole seconds: after the boot
    assert (await csms.call("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "-17"}))["status"] == "Rejected"
    conf = await csms.call("GetDiagnostics", {"location": http.url("/upload"), "startTime": start, "stopTime": iso_in(30)})
    await csms.expect("DiagnosticsStatusNotification", fw_status("Uploaded"), timeout=60)
    log = unpack(http.uploads[f"/upload/{conf['fileName']}"])["log.txt"]
    assert "ChangeConfiguration" in log and "BootNotification" not in log


async def test_TC_045_2_get_diagnostics_upload_failed(csms, booted, ftp):
    """The FTP server refuses: Uploading, then after 1 + retries attempts UploadFailed."""
    ftp.refuse = True
    await booted()
    t0 = csms.mark()
    conf = await csms.call("GetDiagnostics", {"location": ftp.url("/diag/", "cs", "secret"), "retries": 2, "retryInterval": 20})
    assert "fileName" in conf
    await csms.expect("DiagnosticsStatusNotification", fw_status("Uploading"))
    assert (await csms.call("TriggerMessage", {"requestedMessage": "DiagnosticsStatusNotification"}))["status"] == "Accepted"
    await csms.expect("DiagnosticsStatusNotification", fw_status("Uploading"))
    await csms.expect("DiagnosticsStatusNotification", fw_status("UploadFailed"), timeout=100)
    assert [r.payload["status"] for r in csms.received[t0:] if r.action == "DiagnosticsStatusNotification"] == \
        ["Uploading", "Uploading", "UploadFailed"]
    await csms.call("TriggerMessage", {"requestedMessage": "DiagnosticsStatusNotification"})
    assert (await csms.expect("DiagnosticsStatusNotification"))["status"] == "Idle"


@pytest.mark.parametrize("how", ["ftp_breaks", "http_500", "bad_scheme"])
async def test_TC_045_2_upload_failed_mid_transfer_or_refused(csms, booted, http, ftp, how):
    ftp.break_after = 10
    http.status = 500
    url = {"ftp_breaks": ftp.url("/diag/", "cs", "secret"), "http_500": http.url("/up"), "bad_scheme": "file:///tmp/"}[how]
    await booted()
    conf = await csms.call("GetDiagnostics", {"location": url})
    if how == "bad_scheme":
        assert conf == {}  # no file will be uploaded
        await csms.no_call("DiagnosticsStatusNotification", 5)
        return
    await csms.expect("DiagnosticsStatusNotification", fw_status("UploadFailed"), timeout=60)
    assert not ftp.uploads and not http.uploads

"""OCTT OCPP 2.0.1 block L (firmware management) cases against the real station (in process, on
virtual time, over a real websocket) with a real HTTP file server on 127.0.0.1: L01 Secure
Firmware Update with its FirmwareStatusNotifications, the restart into the new firmware
(BootNotification reason FirmwareUpdate), the security events, and the installation that waits
for running transactions (EVSEs Unavailable meanwhile unless AllowNewSessionsPendingFirmwareUpdate).

Not applicable to this station: TC_L_12 / TC_L_13 (for a station that cannot download during a
transaction; this one downloads and verifies at once and only waits to install: TC_L_14 /
TC_L_15), TC_L_16 (installing during a transaction), TC_L_11 (for a station that cannot cancel an
update; this one cancels any not yet installing: TC_L_10)."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from station.firmware import make_package
from station.security import MANUFACTURER_ROOT, CertificateStore
from tests.conftest import var
from tests.integration.harness import now_iso, wall_now
from tests.integration.test_security_revocation import cert_with_crl, make_crl
from tests.tls import make_ca, pem
from tests.transfer_servers import HttpFileServer


def iso_in(seconds: float) -> str:
    return (wall_now() + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def sign(data: bytes, key: ec.EllipticCurvePrivateKey) -> str:
    return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


@pytest.fixture
async def http():
    srv = await HttpFileServer().start()
    yield srv
    await srv.close()


@pytest.fixture
def pki():
    """The manufacturer root and a firmware signing certificate issued by it."""
    root = make_ca("Manufacturer Root")
    return root, make_ca("Firmware Signing", signer=root)


@pytest.fixture
async def fw_station(csms201, make_station201, pki):
    """A booted 2.0.1 station whose certificate store holds the ManufacturerRootCertificate."""

    async def boot(**kw):
        sp = make_station201(**kw)
        CertificateStore(sp.state_dir / "security").install_root(MANUFACTURER_ROOT, pem(pki[0][0]), wall_now(), 10)
        sp.start()
        await csms201.expect("BootNotification", timeout=15)
        for evse in range(1, sp.evses + 1):
            await csms201.expect("StatusNotification", lambda p, e=evse: p["evseId"] == e, timeout=10, since=0)
        await sp.wait_api()
        csms201.mark()
        return sp

    return boot


def request(request_id: int, location: str, signing, data: bytes | None = None, signature: str | None = None,
            retrieve: str | None = None, install: str | None = None, **extra) -> dict:
    fw = {"location": location, "retrieveDateTime": retrieve or now_iso(), "signingCertificate": pem(signing[0]),
          "signature": signature if signature is not None else sign(data or b"", signing[1])}
    if install is not None:
        fw["installDateTime"] = install
    return {"requestId": request_id, "firmware": fw, **extra}


def statuses(csms, request_id: int | None = None) -> list[str]:
    return [p["status"] for p in csms.calls("FirmwareStatusNotification")
            if request_id is None or p.get("requestId") == request_id]


async def expect_fw(csms, *wanted: str, timeout: float = 60) -> None:
    for s in wanted:
        await csms.expect("FirmwareStatusNotification", lambda p, s=s: p["status"] == s, timeout=timeout)


async def installed(csms, version: str, request_id: int) -> None:
    """The reboot into ``version`` and what follows it: Installed and the security event."""
    boot = await csms.expect("BootNotification", timeout=60)
    assert boot["reason"] == "FirmwareUpdate"
    assert boot["chargingStation"]["firmwareVersion"] == version
    await csms.expect("SecurityEventNotification", lambda p: p["type"] == "FirmwareUpdated", timeout=30, since=0)
    done = await csms.expect("FirmwareStatusNotification", lambda p: p["status"] == "Installed", timeout=30, since=0)
    assert done["requestId"] == request_id


async def test_TC_L_01_CS_secure_firmware_update_installation_successful(csms201, fw_station, http, pki):
    data = make_package("2.0.0", b"image")
    http.files["/fw.bin"] = data
    sp = await fw_station()
    assert csms201.calls("BootNotification")[0]["chargingStation"]["firmwareVersion"] != "2.0.0"
    r = await csms201.call("UpdateFirmware", request(11, http.url("/fw.bin"), pki[1], data))
    assert r == {"status": "Accepted"}
    await installed(csms201, "2.0.0", 11)
    assert statuses(csms201) == ["Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallRebooting",
                                 "Installed"]
    assert {p["requestId"] for p in csms201.calls("FirmwareStatusNotification")} == {11}
    # nothing runs any more: a triggered report says Idle, without requestId
    r = await csms201.call("TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"})
    assert r == {"status": "Accepted"}
    assert await csms201.expect("FirmwareStatusNotification") == {"status": "Idle"}
    # a plain restart boots the installed version with reason PowerUp and reports nothing more
    await sp.stop()
    csms201.mark()
    sp.start()
    boot = await csms201.expect("BootNotification", timeout=15)
    assert boot["reason"] == "PowerUp" and boot["chargingStation"]["firmwareVersion"] == "2.0.0"
    await csms201.no_call("FirmwareStatusNotification", 10)


async def test_TC_L_02_CS_secure_firmware_update_install_scheduled(csms201, fw_station, http, pki):
    """installDateTime ten minutes ahead: downloaded and verified at once, InstallScheduled, and
    installed only at that time."""
    data = make_package("2.1.0")
    http.files["/fw.bin"] = data
    await fw_station()
    r = await csms201.call("UpdateFirmware", request(12, http.url("/fw.bin"), pki[1], data, install=iso_in(600)))
    assert r == {"status": "Accepted"}
    await expect_fw(csms201, "Downloading", "Downloaded", "SignatureVerified", "InstallScheduled")
    await csms201.no_call("FirmwareStatusNotification", 500)
    r = await csms201.call("TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"})
    assert await csms201.expect("FirmwareStatusNotification") == {"status": "InstallScheduled", "requestId": 12}
    assert not csms201.calls("BootNotification")[1:]
    await expect_fw(csms201, "Installing", timeout=200)
    await installed(csms201, "2.1.0", 12)
    assert [s for s in statuses(csms201, 12) if s != "InstallScheduled"] == [
        "Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallRebooting", "Installed"]


async def test_TC_L_03_CS_secure_firmware_update_download_scheduled(csms201, fw_station, http, pki):
    """retrieveDateTime ten minutes ahead: DownloadScheduled, no download before that time (a
    restart meanwhile keeps the job), then the update."""
    data = make_package("2.2.0")
    http.files["/fw.bin"] = data
    sp = await fw_station()
    r = await csms201.call("UpdateFirmware", request(13, http.url("/fw.bin"), pki[1], data, retrieve=iso_in(600)))
    assert r == {"status": "Accepted"}
    await expect_fw(csms201, "DownloadScheduled")
    await csms201.no_call("FirmwareStatusNotification", 250)
    await sp.stop()
    sp.start()
    await csms201.expect("BootNotification", timeout=15)
    await csms201.no_call("FirmwareStatusNotification", 250)
    assert not http.requests
    await expect_fw(csms201, "Downloading", timeout=200)
    await installed(csms201, "2.2.0", 13)
    assert statuses(csms201, 13) == ["DownloadScheduled", "Downloading", "Downloaded", "SignatureVerified",
                                     "Installing", "InstallRebooting", "Installed"]


async def test_TC_L_05_CS_secure_firmware_update_invalid_certificate(csms201, fw_station, http, pki):
    """A signing certificate no installed ManufacturerRootCertificate issued: InvalidCertificate,
    the security event InvalidFirmwareSigningCertificate, nothing downloaded."""
    data = make_package("2.0.0")
    http.files["/fw.bin"] = data
    await fw_station()
    stranger = make_ca("Firmware Signing", signer=make_ca("Another Root"))
    r = await csms201.call("UpdateFirmware", request(15, http.url("/fw.bin"), stranger, data))
    assert r == {"status": "InvalidCertificate"}
    event = await csms201.expect("SecurityEventNotification", lambda p: p["type"] == "InvalidFirmwareSigningCertificate")
    assert event["timestamp"].endswith("Z")
    await csms201.no_call("FirmwareStatusNotification", 30)
    assert not http.requests


async def test_TC_L_05_CS_secure_firmware_update_revoked_certificate(csms201, fw_station, http, pki):
    """A signing certificate its CRL lists as revoked: RevokedCertificate and the security event;
    one the CRL does not list is Accepted."""
    root = pki[0]
    revoked = cert_with_crl("Firmware Signing", root, http.url("/crl.der"))
    good = cert_with_crl("Firmware Signing 2", root, http.url("/crl.der"))
    http.files["/crl.der"] = make_crl(root, [revoked[0].serial_number])
    data = make_package("2.0.0")
    http.files["/fw.bin"] = data
    await fw_station()
    r = await csms201.call("UpdateFirmware", request(14, http.url("/fw.bin"), revoked, data, retrieve=iso_in(3600)))
    assert r == {"status": "RevokedCertificate"}
    event = await csms201.expect("SecurityEventNotification", lambda p: p["type"] == "InvalidFirmwareSigningCertificate")
    assert "revoked" in event.get("techInfo", "")
    assert ("GET", "/crl.der") in http.requests
    r = await csms201.call("UpdateFirmware", request(15, http.url("/fw.bin"), good, data, retrieve=iso_in(3600)))
    assert r == {"status": "Accepted"}
    assert await csms201.expect("FirmwareStatusNotification") == {"status": "DownloadScheduled", "requestId": 15}
    assert statuses(csms201, 14) == []


async def test_TC_L_06_CS_secure_firmware_update_invalid_signature(csms201, fw_station, http, pki):
    data = make_package("2.0.0")
    http.files["/fw.bin"] = data
    await fw_station()
    other_key = ec.generate_private_key(ec.SECP256R1())
    r = await csms201.call("UpdateFirmware", request(16, http.url("/fw.bin"), pki[1], signature=sign(data, other_key)))
    assert r == {"status": "Accepted"}
    await expect_fw(csms201, "InvalidSignature")
    await csms201.expect("SecurityEventNotification", lambda p: p["type"] == "InvalidFirmwareSignature", since=0)
    assert statuses(csms201) == ["Downloading", "Downloaded", "InvalidSignature"]
    await csms201.no_call("BootNotification", 30)
    await csms201.call("TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"})
    assert await csms201.expect("FirmwareStatusNotification") == {"status": "Idle"}


async def test_TC_L_07_CS_secure_firmware_update_download_failed(csms201, fw_station, http, pki):
    """Nothing at the location: Downloading, then after 1 + retries attempts retryInterval apart,
    DownloadFailed; no restart."""
    await fw_station()
    r = await csms201.call("UpdateFirmware", request(17, http.url("/missing.bin"), pki[1], b"x", retries=2, retryInterval=20))
    assert r == {"status": "Accepted"}
    await expect_fw(csms201, "Downloading", "DownloadFailed", timeout=120)
    assert statuses(csms201) == ["Downloading", "DownloadFailed"]
    assert len(http.requests) == 3
    assert [round(b - a) for a, b in zip(http.times, http.times[1:], strict=False)] == [20, 20]
    await csms201.no_call("BootNotification", 10)


async def test_TC_L_08_CS_secure_firmware_update_installation_failed(csms201, fw_station, http, pki):
    """A correctly signed file that is not an installable package: InstallationFailed, no restart,
    the version unchanged."""
    data = b"not a firmware package"
    http.files["/fw.bin"] = data
    await fw_station()
    version = csms201.calls("BootNotification")[0]["chargingStation"]["firmwareVersion"]
    r = await csms201.call("UpdateFirmware", request(18, http.url("/fw.bin"), pki[1], data))
    assert r == {"status": "Accepted"}
    await expect_fw(csms201, "InstallationFailed")
    assert statuses(csms201) == ["Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallationFailed"]
    await csms201.no_call("BootNotification", 30)
    await csms201.call("TriggerMessage", {"requestedMessage": "BootNotification"})  # already accepted: Rejected
    assert csms201.calls("BootNotification")[-1]["chargingStation"]["firmwareVersion"] == version


async def test_TC_L_10_CS_secure_firmware_update_accepted_canceled(csms201, fw_station, http, pki):
    """A second UpdateFirmware while the first waits for its retrieve time: AcceptedCanceled; only
    the second one is downloaded and installed."""
    first, second = make_package("3.0.0"), make_package("3.1.0")
    http.files["/first.bin"], http.files["/second.bin"] = first, second
    await fw_station()
    r = await csms201.call("UpdateFirmware", request(1, http.url("/first.bin"), pki[1], first, retrieve=iso_in(300)))
    assert r == {"status": "Accepted"}
    assert (await csms201.expect("FirmwareStatusNotification")) == {"status": "DownloadScheduled", "requestId": 1}
    r = await csms201.call("UpdateFirmware", request(2, http.url("/second.bin"), pki[1], second))
    assert r == {"status": "AcceptedCanceled"}
    await installed(csms201, "3.1.0", 2)
    assert statuses(csms201, 2) == ["Downloading", "Downloaded", "SignatureVerified", "Installing",
                                    "InstallRebooting", "Installed"]
    assert statuses(csms201, 1) == ["DownloadScheduled"]
    assert ("GET", "/first.bin") not in http.requests


async def test_TC_L_18_CS_secure_firmware_update_missing_signing_certificate_and_signature(csms201, fw_station, http):
    data = make_package("2.0.0")
    http.files["/fw.bin"] = data
    await fw_station()
    r = await csms201.call("UpdateFirmware", {"requestId": 19, "firmware": {"location": http.url("/fw.bin"),
                                                                            "retrieveDateTime": now_iso()}})
    assert r["status"] == "Rejected"
    await csms201.no_call("FirmwareStatusNotification", 30)
    assert not http.requests


async def start_charging(csms, sp, evse: int, tag: str) -> str:
    await sp.plug(evse)
    await sp.swipe(tag, evse)
    started = await csms.expect("TransactionEvent", lambda p: p["eventType"] == "Started" and p["evse"]["id"] == evse)
    return started["transactionInfo"]["transactionId"]


async def stop_charging(csms, sp, evse: int, tag: str, tx_id: str) -> None:
    await sp.swipe(tag, evse)
    await csms.expect("TransactionEvent", lambda p: p["eventType"] == "Ended"
                      and p["transactionInfo"]["transactionId"] == tx_id, timeout=30)


def unavailable(p: dict, evse: int) -> bool:
    return p["evseId"] == evse and p["connectorStatus"] == "Unavailable"


async def test_TC_L_15_CS_install_waits_for_the_transaction_allow_new_sessions_false(csms201, fw_station, http, pki):
    """AllowNewSessionsPendingFirmwareUpdate false: downloaded and verified
    while EVSE 1 charges, then InstallScheduled and the free EVSE 2 Unavailable; installed only once
    the transaction has ended (it is not stopped by the update); after the restart both EVSEs are
    available again."""
    data = make_package("4.0.0")
    http.files["/fw.bin"] = data
    sp = await fw_station(evses=2, variables=[var("ChargingStation", "AllowNewSessionsPendingFirmwareUpdate", "false")])
    tx_id = await start_charging(csms201, sp, 1, "TAG1")
    csms201.mark()
    r = await csms201.call("UpdateFirmware", request(21, http.url("/fw.bin"), pki[1], data))
    assert r == {"status": "Accepted"}
    await expect_fw(csms201, "Downloading", "Downloaded", "SignatureVerified", "InstallScheduled")
    await csms201.expect("StatusNotification", lambda p: unavailable(p, 2), since=0)
    await csms201.no_call("FirmwareStatusNotification", 600)
    assert not [p for p in csms201.calls("StatusNotification") if unavailable(p, 1)]  # EVSE 1 charges on
    assert not [p for p in csms201.calls("TransactionEvent") if p["eventType"] == "Ended"]
    await stop_charging(csms201, sp, 1, "TAG1", tx_id)
    await expect_fw(csms201, "Installing")
    await installed(csms201, "4.0.0", 21)
    ended = [p for p in csms201.calls("TransactionEvent") if p["eventType"] == "Ended"]
    assert [p["transactionInfo"]["stoppedReason"] for p in ended] == ["Local"]
    # after the restart EVSE 2 is Available again
    boots = [i for i, r in enumerate(csms201.received) if r.action == "BootNotification"]
    after = [r.payload for r in csms201.received[boots[-1]:] if r.action == "StatusNotification" and r.payload["evseId"] == 2]
    assert after and after[-1]["connectorStatus"] == "Available"


async def test_TC_L_14_CS_install_waits_for_all_transactions_allow_new_sessions_true(csms201, fw_station, http, pki):
    """AllowNewSessionsPendingFirmwareUpdate true: EVSE 2 stays available and
    a second transaction starts there while the installation waits; installed only once both
    have ended."""
    data = make_package("4.1.0")
    http.files["/fw.bin"] = data
    sp = await fw_station(evses=2, variables=[var("ChargingStation", "AllowNewSessionsPendingFirmwareUpdate", "true")])
    tx1 = await start_charging(csms201, sp, 1, "TAG1")
    r = await csms201.call("UpdateFirmware", request(22, http.url("/fw.bin"), pki[1], data))
    assert r == {"status": "Accepted"}
    await expect_fw(csms201, "SignatureVerified", "InstallScheduled")
    tx2 = await start_charging(csms201, sp, 2, "TAG2")
    await stop_charging(csms201, sp, 1, "TAG1", tx1)
    await csms201.no_call("FirmwareStatusNotification", 300, lambda p: p["status"] == "Installing")
    assert not [p for p in csms201.calls("StatusNotification") if p["connectorStatus"] == "Unavailable"]
    await stop_charging(csms201, sp, 2, "TAG2", tx2)
    await expect_fw(csms201, "Installing")
    await installed(csms201, "4.1.0", 22)


async def test_firmware_status_trigger_while_the_installation_waits(csms201, fw_station, http, pki):
    """TriggerMessage FirmwareStatusNotification reports the real state: InstallScheduled with the
    requestId while the installation waits; a new UpdateFirmware then cancels the waiting one
    (AcceptedCanceled) and the EVSE held for it is released."""
    data = make_package("5.0.0")
    http.files["/fw.bin"] = data
    sp = await fw_station(evses=2)
    tx_id = await start_charging(csms201, sp, 1, "TAG1")
    await csms201.call("UpdateFirmware", request(31, http.url("/fw.bin"), pki[1], data))
    await expect_fw(csms201, "InstallScheduled")
    await csms201.expect("StatusNotification", lambda p: unavailable(p, 2), since=0)
    await csms201.call("TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"})
    assert await csms201.expect("FirmwareStatusNotification") == {"status": "InstallScheduled", "requestId": 31}
    r = await csms201.call("UpdateFirmware", request(32, http.url("/fw.bin"), pki[1], data, retrieve=iso_in(3600)))
    assert r == {"status": "AcceptedCanceled"}
    await csms201.expect("StatusNotification", lambda p: p["evseId"] == 2 and p["connectorStatus"] == "Available")
    assert (await csms201.expect("FirmwareStatusNotification")) == {"status": "DownloadScheduled", "requestId": 32}
    await stop_charging(csms201, sp, 1, "TAG1", tx_id)
    await csms201.no_call("FirmwareStatusNotification", 60)


async def test_update_firmware_while_installing_is_rejected(csms201, fw_station, http, pki):
    """Once Installing, an update cannot be cancelled any more (L01.FR.27): a new UpdateFirmware
    is Rejected and the installation goes on. (The CSMS holds back its answer to Installing, so
    the station stays in that state long enough to be asked.)"""
    data = make_package("6.0.0")
    http.files["/fw.bin"] = data
    await fw_station()

    def hold(p: dict) -> None:
        if p["status"] == "SignatureVerified":
            csms201.silent.add("FirmwareStatusNotification")

    csms201.responders["FirmwareStatusNotification"] = hold
    await csms201.call("UpdateFirmware", request(71, http.url("/fw.bin"), pki[1], data))
    await expect_fw(csms201, "Installing")
    r = await csms201.call("UpdateFirmware", request(72, http.url("/fw.bin"), pki[1], data))
    assert r["status"] == "Rejected"
    csms201.silent.clear()
    await installed(csms201, "6.0.0", 71)
    assert statuses(csms201, 72) == []


async def test_TC_F_17_TC_F_18_CS_trigger_firmware_status_idle(csms201, booted201):
    """No update runs: FirmwareStatusNotification Idle, also when the trigger names an EVSE."""
    await booted201()
    assert (await csms201.call("TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"}))["status"] \
        == "Accepted"
    assert await csms201.expect("FirmwareStatusNotification") == {"status": "Idle"}
    answer = await csms201.call("TriggerMessage", {"requestedMessage": "FirmwareStatusNotification", "evse": {"id": 1}})
    assert answer["status"] == "Accepted"
    assert await csms201.expect("FirmwareStatusNotification") == {"status": "Idle"}


async def test_TC_F_19_CS_trigger_firmware_status_downloading(csms201, fw_station, pki):
    """A download in progress (a slow server): the trigger reports Downloading with the requestId."""
    data = make_package("6.0.0")
    slow = await HttpFileServer(files={"/fw.bin": data}, delay=60).start()
    try:
        await fw_station()
        await csms201.call("UpdateFirmware", request(61, slow.url("/fw.bin"), pki[1], data))
        await expect_fw(csms201, "Downloading")
        await csms201.call("TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"})
        assert await csms201.expect("FirmwareStatusNotification") == {"status": "Downloading", "requestId": 61}
    finally:
        await slow.close()

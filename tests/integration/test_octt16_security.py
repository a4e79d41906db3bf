"""OCTT 1.6 section 2.24 (security whitepaper edition 3), in process over real websockets and real
TLS on 127.0.0.1, with certificates made by the test (tests/tls.py): certificate installation and
deletion, the station's CSR signed by a test CA and used as its TLS client certificate, security
events, GetLog, and SecurityProfile upgrades with their fall-back.
(TC_073 and TC_086 are in test_issue7_ocpp16.py and test_link_tls.py.)
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import ssl
import stat
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from station.security import CertificateStore, hash_data
from tests.integration.harness import ScriptedCsms, now_iso, start_session, wall_now
from tests.integration.test_link_tls import KEY, tls_config
from tests.tls import Pki, make_ca, make_pki, pem, server_context, sign_csr
from tests.transfer_servers import FtpFileServer, HttpFileServer


def client_cert_der(csms: ScriptedCsms) -> bytes | None:
    """The client certificate the station presented on the CSMS's current connection."""
    assert csms.ws is not None
    sslobj = csms.ws.transport.get_extra_info("ssl_object")
    return sslobj.getpeercert(binary_form=True)


async def restart_tls(csms: ScriptedCsms, ctx) -> str:  # noqa: ANN001 - an SSLContext
    await csms.close()
    if csms.ws is not None:
        await csms.ws.close()
    return await csms.start(port=csms.port, ssl=ctx)


async def tls_station(csms: ScriptedCsms, make_station, tmp_path: Path, pki: Pki, profile: int = 2,  # noqa: ANN001
                      ctx=None, ca: bool = True, boot: bool = True):  # noqa: ANN001, ANN201
    await csms.close()
    url = await csms.start(ssl=ctx or server_context(pki))
    sp = make_station(config=tls_config(tmp_path, pki if ca else None, profile), url=url,
                      ocpp_config={"AuthorizationKey": KEY})
    sp.start()
    if boot:
        await csms.expect("BootNotification", timeout=20)
        await csms.expect("StatusNotification", lambda p: p["connectorId"] == 1, timeout=10, since=0)
        await sp.wait_api()
        csms.mark()
    return sp


async def get_client_certificate(csms: ScriptedCsms, ca: x509.Certificate, ca_key) -> str:  # noqa: ANN001
    """ExtendedTriggerMessage SignChargePointCertificate -> SignCertificate -> CertificateSigned."""
    csms.responders["SignCertificate"] = lambda p: {"status": "Accepted"}
    r = await csms.call("ExtendedTriggerMessage", {"requestedMessage": "SignChargePointCertificate"})
    assert r == {"status": "Accepted"}
    req = await csms.expect("SignCertificate", timeout=10)
    chain = sign_csr(req["csr"], ca, ca_key)
    assert (await csms.call("CertificateSigned", {"certificateChain": chain}))["status"] == "Accepted"
    return chain


def security_events(csms: ScriptedCsms, kind: str) -> list[dict]:
    return [p for p in csms.calls("SecurityEventNotification") if p["type"] == kind]


# -- certificates -----------------------------------------------------------------------------
async def test_TC_074_update_charge_point_certificate_by_request_of_central_system(csms, make_station, tmp_path):
    pki = make_pki(tmp_path / "pki")
    sp = await tls_station(csms, make_station, tmp_path, pki)
    await csms.call("ChangeConfiguration", {"key": "CpoName", "value": "Test CPO"})
    ca, ca_key = make_ca("CPO Sub CA")
    chain = await get_client_certificate(csms, ca, ca_key)
    csr = x509.load_pem_x509_csr(csms.calls("SignCertificate")[0]["csr"].encode())
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=CS001,O=Test CPO"
    store = CertificateStore(sp.state_dir / "security")
    assert store.client_certificate() == x509.load_pem_x509_certificate(chain.encode())
    mode = stat.S_IMODE(os.stat(store.key_file).st_mode)
    assert mode == 0o600, oct(mode)
    key_text = store.key_file.read_text()
    body = "".join(line for line in key_text.splitlines() if "-----" not in line)
    assert body[:40] not in sp.log()  # never logged
    assert not store.pending_key_file.exists()


async def test_TC_075_1_install_manufacturer_root_certificate(csms, booted, tmp_path):
    await booted()
    ca, _ = make_ca("Manufacturer Root")
    r = await csms.call("InstallCertificate", {"certificateType": "ManufacturerRootCertificate", "certificate": pem(ca)})
    assert r == {"status": "Accepted"}
    got = await csms.call("GetInstalledCertificateIds", {"certificateType": "ManufacturerRootCertificate"})
    assert got == {"status": "Accepted", "certificateHashData": [hash_data(ca).as_ocpp()]}
    none = await csms.call("GetInstalledCertificateIds", {"certificateType": "CentralSystemRootCertificate"})
    assert none == {"status": "NotFound"}
    bad = await csms.call("InstallCertificate", {"certificateType": "ManufacturerRootCertificate", "certificate": "junk"})
    assert bad == {"status": "Rejected"}


async def test_TC_075_2_install_central_system_root_certificate_used_for_the_next_connection(csms, make_station, tmp_path):
    """The installed CentralSystemRootCertificate is trusted at once: the CSMS's next certificate
    is from that new root, and the station reconnects to it."""
    pki = make_pki(tmp_path / "pki")
    new = make_pki(tmp_path / "new", ca_name="New CSMS Root")
    await tls_station(csms, make_station, tmp_path, pki)
    r = await csms.call("InstallCertificate", {"certificateType": "CentralSystemRootCertificate",
                                               "certificate": new.ca_file.read_text()})
    assert r == {"status": "Accepted"}
    got = await csms.call("GetInstalledCertificateIds", {"certificateType": "CentralSystemRootCertificate"})
    assert got["certificateHashData"] == [hash_data(x509.load_pem_x509_certificate(new.ca_file.read_bytes())).as_ocpp()]
    connections = csms.connections
    await restart_tls(csms, server_context(new))
    await asyncio.wait_for(csms.connected.wait(), 30)
    assert csms.connections == connections + 1
    assert (await csms.call("GetConfiguration", {"key": ["SecurityProfile"]}))["configurationKey"][0]["value"] == "2"


async def test_TC_076_delete_a_specific_certificate(csms, booted, tmp_path):
    await booted()
    one, _ = make_ca("Root One")
    two, _ = make_ca("Root Two")
    for c in (one, two):
        r = await csms.call("InstallCertificate", {"certificateType": "CentralSystemRootCertificate", "certificate": pem(c)})
        assert r["status"] == "Accepted"
    got = await csms.call("GetInstalledCertificateIds", {"certificateType": "CentralSystemRootCertificate"})
    assert sorted(h["serialNumber"] for h in got["certificateHashData"]) == sorted(format(c.serial_number, "x") for c in (one, two))
    target = hash_data(one).as_ocpp()
    assert (await csms.call("DeleteCertificate", {"certificateHashData": target}))["status"] == "Accepted"
    got = await csms.call("GetInstalledCertificateIds", {"certificateType": "CentralSystemRootCertificate"})
    assert got["certificateHashData"] == [hash_data(two).as_ocpp()]
    assert (await csms.call("DeleteCertificate", {"certificateHashData": target}))["status"] == "NotFound"


async def test_the_only_central_system_root_in_use_is_not_deleted(csms, make_station, tmp_path):
    """Profile 2 without station.ca_file: deleting the one root the link trusts would lock the
    station out: Failed."""
    pki = make_pki(tmp_path / "pki")
    sp = await tls_station(csms, make_station, tmp_path, pki, ca=False, boot=False)
    CertificateStore(sp.state_dir / "security").install_root(
        "CentralSystemRootCertificate", pki.ca_file.read_text(), datetime.now(UTC), 20)
    await csms.expect("BootNotification", timeout=60)  # installed before the start, as a factory would
    root = x509.load_pem_x509_certificate(pki.ca_file.read_bytes())
    r = await csms.call("DeleteCertificate", {"certificateHashData": hash_data(root).as_ocpp()})
    assert r == {"status": "Failed"}


# -- security events ---------------------------------------------------------------------------
async def test_TC_077_invalid_charge_point_certificate_security_event(csms, booted, tmp_path):
    await booted()
    csms.responders["SignCertificate"] = lambda p: {"status": "Accepted"}
    assert (await csms.call("ExtendedTriggerMessage", {"requestedMessage": "SignChargePointCertificate"}))["status"] == "Accepted"
    await csms.expect("SignCertificate")
    ca, ca_key = make_ca("CPO Sub CA")
    other = CertificateStore(tmp_path / "other")
    wrong_key_chain = sign_csr(other.new_csr("CS001", ""), ca, ca_key)  # signed, but for another key
    r = await csms.call("CertificateSigned", {"certificateChain": wrong_key_chain})
    assert r == {"status": "Rejected"}
    ev = await csms.expect("SecurityEventNotification", lambda p: p["type"] == "InvalidChargePointCertificate")
    assert "public key" in ev.get("techInfo", "")
    assert (await csms.call("CertificateSigned", {"certificateChain": "not a certificate"}))["status"] == "Rejected"


async def test_TC_078_invalid_central_system_certificate_security_event(csms, make_station, tmp_path):
    """The CSMS first shows a certificate of another root: no connection; once it shows a trusted
    one the station boots and reports InvalidCentralSystemCertificate (queued while offline, once)."""
    pki = make_pki(tmp_path / "pki")
    wrong = make_pki(tmp_path / "wrong", ca_name="Wrong Root")
    sp = await tls_station(csms, make_station, tmp_path, pki, ctx=server_context(wrong), boot=False)
    await sp.wait_api()
    for _ in range(200):
        if "not trusted" in ((await sp.status())["last_error"] or ""):
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(20)  # several failed attempts
    assert csms.connections == 0
    await restart_tls(csms, server_context(pki))
    await csms.expect("BootNotification", timeout=90, since=0)
    ev = await csms.expect("SecurityEventNotification", lambda p: p["type"] == "InvalidCentralSystemCertificate",
                           timeout=20, since=0)
    assert "certificate verify failed" in ev["techInfo"]
    await asyncio.sleep(2)
    assert len(security_events(csms, "InvalidCentralSystemCertificate")) == 1


async def test_startup_of_the_device_security_event(csms, booted):
    await booted()
    await csms.expect("SecurityEventNotification", lambda p: p["type"] == "StartupOfTheDevice", since=0)


# -- GetLog ------------------------------------------------------------------------------------------
async def test_TC_079_get_security_log(csms, booted):
    await booted()
    await csms.expect("SecurityEventNotification", lambda p: p["type"] == "StartupOfTheDevice", since=0)
    server = await HttpFileServer().start()
    try:
        r = await csms.call("GetLog", {"logType": "SecurityLog", "requestId": 7, "log": {"remoteLocation": server.url("/logs/")}})
        assert r["status"] == "Accepted" and r["filename"].startswith("CS001-SecurityLog-")
        assert (await csms.expect("LogStatusNotification")) == {"status": "Uploading", "requestId": 7}
        assert (await csms.expect("LogStatusNotification")) == {"status": "Uploaded", "requestId": 7}
        [(path, body)] = server.uploads.items()
        assert path.endswith("/logs/" + r["filename"]), path
        records = [json.loads(line) for line in body.decode().splitlines()]
        assert [x["type"] for x in records] == ["StartupOfTheDevice"]
    finally:
        await server.close()


async def test_get_log_of_a_time_window_over_ftp(csms, booted):
    """Only the records between oldestTimestamp and latestTimestamp; FTP works as HTTP does."""
    await booted()
    await csms.expect("SecurityEventNotification", lambda p: p["type"] == "StartupOfTheDevice", since=0)
    await asyncio.sleep(60)
    after = now_iso()
    await asyncio.sleep(60)
    assert (await csms.call("CertificateSigned", {"certificateChain": "junk"}))["status"] == "Rejected"  # an event
    server = await FtpFileServer().start()
    try:
        r = await csms.call("GetLog", {"logType": "SecurityLog", "requestId": 9,
                                       "log": {"remoteLocation": server.url("/up/"), "oldestTimestamp": after}})
        await csms.expect("LogStatusNotification", lambda p: p["status"] == "Uploaded")
        [body] = server.uploads.values()
        assert [json.loads(line)["type"] for line in body.decode().splitlines()] == ["InvalidChargePointCertificate"]
        assert r["filename"] in next(iter(server.uploads))
    finally:
        await server.close()


async def test_get_diagnostics_log(csms, booted):
    await booted(ocpp_config={"AuthorizationKey": KEY})
    server = await HttpFileServer().start()
    try:
        r = await csms.call("GetLog", {"logType": "DiagnosticsLog", "requestId": 8, "log": {"remoteLocation": server.url("/d/")}})
        assert r["status"] == "Accepted"
        await csms.expect("LogStatusNotification", lambda p: p["status"] == "Uploaded")
        [body] = server.uploads.values()
        assert KEY.encode() not in body
        if r["filename"].endswith(".tar.gz"):  # the firmware service's bundle
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                body = tar.extractfile("state.json").read()
        assert b'"HeartbeatInterval"' in body and KEY.encode() not in body
    finally:
        await server.close()


async def test_get_log_upload_refused_reports_upload_failure_after_the_retries(csms, booted):
    await booted()
    server = await HttpFileServer(status=500).start()
    try:
        r = await csms.call("GetLog", {"logType": "SecurityLog", "requestId": 3, "retries": 2, "retryInterval": 5,
                                       "log": {"remoteLocation": server.url("/logs/")}})
        assert r["status"] == "Accepted"
        await csms.expect("LogStatusNotification", lambda p: p["status"] == "Uploading")
        assert (await csms.expect("LogStatusNotification", timeout=30)) == {"status": "UploadFailure", "requestId": 3}
        assert len(server.requests) == 3
    finally:
        await server.close()
    r = await csms.call("GetLog", {"logType": "SecurityLog", "requestId": 4, "log": {"remoteLocation": "gopher://127.0.0.1/x"}})
    assert r == {"status": "Rejected"}


async def test_extended_trigger_message(csms, booted):
    await booted()
    assert (await csms.call("ExtendedTriggerMessage", {"requestedMessage": "Heartbeat"}))["status"] == "Accepted"
    await csms.expect("Heartbeat")
    assert (await csms.call("ExtendedTriggerMessage", {"requestedMessage": "LogStatusNotification"}))["status"] == "Accepted"
    assert (await csms.expect("LogStatusNotification")) == {"status": "Idle"}
    r = await csms.call("ExtendedTriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 9})
    assert r["status"] == "Rejected"


# -- security profiles -------------------------------------------------------------------------------
def profile3_context(pki: Pki, client_ca: x509.Certificate, required: bool = False):  # noqa: ANN201
    """A CSMS that takes profile 2 and profile 3 stations (a client certificate, if shown, must be
    of ``client_ca``); ``required``: profile 3 only."""
    ctx = server_context(pki, client_ca=pem(client_ca))
    if not required:
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


async def test_TC_083_upgrade_security_profile_2_to_3(csms, make_station, tmp_path):
    pki = make_pki(tmp_path / "pki")
    ca, ca_key = make_ca("CPO Sub CA")
    sp = await tls_station(csms, make_station, tmp_path, pki, ctx=profile3_context(pki, ca))
    assert client_cert_der(csms) is None
    chain = await get_client_certificate(csms, ca, ca_key)
    r = await csms.call("ChangeConfiguration", {"key": "SecurityProfile", "value": "3"})
    assert r == {"status": "Accepted"}
    await asyncio.wait_for(csms.disconnected.wait(), 10)
    await asyncio.wait_for(csms.connected.wait(), 10)
    leaf = x509.load_pem_x509_certificate(chain.encode())
    assert client_cert_der(csms) == leaf.public_bytes(Encoding.DER)
    assert csms.auth_headers[-1] is None  # profile 3: no Basic auth
    got = await csms.call("GetConfiguration", {"key": ["SecurityProfile"]})
    assert got["configurationKey"] == [{"key": "SecurityProfile", "readonly": False, "value": "3"}]
    await csms.expect("SecurityEventNotification", lambda p: p["type"] == "ReconfigurationOfSecurityParameters")
    # persisted: a restart connects with profile 3 again
    await sp.stop()
    sp.start()
    await asyncio.wait_for(csms.connected.wait(), 20)
    await csms.expect("BootNotification", timeout=20)
    assert client_cert_der(csms) is not None


async def test_TC_083_new_profile_that_fails_to_connect_falls_back_to_the_previous(csms, make_station, tmp_path):
    """Profile 3 with a client certificate the CSMS does not trust: three failed attempts, then
    the station connects with profile 2 again and the key says 2."""
    pki = make_pki(tmp_path / "pki")
    trusted, _ = make_ca("Trusted client CA")
    untrusted, untrusted_key = make_ca("Another client CA")
    sp = await tls_station(csms, make_station, tmp_path, pki, ctx=profile3_context(pki, trusted))
    await get_client_certificate(csms, untrusted, untrusted_key)
    assert (await csms.call("ChangeConfiguration", {"key": "SecurityProfile", "value": "3"}))["status"] == "Accepted"
    await asyncio.wait_for(csms.disconnected.wait(), 10)
    connections = csms.connections
    await asyncio.wait_for(csms.connected.wait(), 120)
    assert csms.connections == connections + 1 and client_cert_der(csms) is None
    assert csms.auth_headers[-1] == "Basic " + base64.b64encode(f"CS001:{KEY}".encode()).decode()
    got = await csms.call("GetConfiguration", {"key": ["SecurityProfile"]})
    assert got["configurationKey"][0]["value"] == "2"
    assert "back to profile 2" in sp.log()


async def test_TC_083_upgrade_1_to_2_needs_a_root_and_falls_back_when_tls_fails(csms, booted, tmp_path):
    """1 -> 2 without a CentralSystemRootCertificate: Rejected. With one, Accepted: the station tries
    wss:// on the CSMS's address (which here speaks plain ws), fails, and is back on profile 1."""
    from tests.integration.test_issue7_ocpp16 import toml

    sp = await booted(config=toml(tmp_path, "sp1.toml", "security_profile = 1"), ocpp_config={"AuthorizationKey": KEY})
    assert (await csms.call("ChangeConfiguration", {"key": "SecurityProfile", "value": "2"}))["status"] == "Rejected"
    root, _ = make_ca("CSMS Root")
    r = await csms.call("InstallCertificate", {"certificateType": "CentralSystemRootCertificate", "certificate": pem(root)})
    assert r["status"] == "Accepted"
    assert (await csms.call("ChangeConfiguration", {"key": "SecurityProfile", "value": "2"}))["status"] == "Accepted"
    await asyncio.wait_for(csms.disconnected.wait(), 10)
    await asyncio.wait_for(csms.connected.wait(), 120)
    assert (await csms.call("GetConfiguration", {"key": ["SecurityProfile"]}))["configurationKey"][0]["value"] == "1"
    assert "back to profile 1" in sp.log()


async def test_TC_084_downgrade_security_profile_rejected(csms, make_station, tmp_path):
    pki = make_pki(tmp_path / "pki")
    await tls_station(csms, make_station, tmp_path, pki)
    for lower in ("0", "1", "2"):
        assert (await csms.call("ChangeConfiguration", {"key": "SecurityProfile", "value": lower}))["status"] == "Rejected"
    assert (await csms.call("ChangeConfiguration", {"key": "SecurityProfile", "value": "3"}))["status"] == "Rejected"  # no client cert
    await asyncio.sleep(3)
    assert csms.connections == 1
    got = await csms.call("GetConfiguration", {"key": ["SecurityProfile"]})
    assert got["configurationKey"][0]["value"] == "2"


async def test_TC_085_basic_authentication_valid_username_password(csms, booted, tmp_path):
    from tests.integration.test_issue7_ocpp16 import toml

    csms.reject_handshake = 1  # the first handshake is refused (401): a security event, then it works
    await booted(config=toml(tmp_path, "sp1.toml", "security_profile = 1"), ocpp_config={"AuthorizationKey": KEY})
    want = "Basic " + base64.b64encode(f"CS001:{KEY}".encode()).decode()
    assert csms.auth_headers == [want]
    await csms.expect("SecurityEventNotification", lambda p: p["type"] == "FailedToAuthenticateAtCentralSystem", since=0)


async def test_TC_087_tls_client_side_certificate_valid(csms, make_station, tmp_path):
    """Profile 3 from the station config, with a provisioned client certificate: the CSMS requires
    and checks it."""
    pki = make_pki(tmp_path / "pki")
    ca, ca_key = make_ca("CPO Sub CA")
    state = tmp_path / "state" / "security"
    store = CertificateStore(state)
    chain = sign_csr(store.new_csr("CS001", "Test CPO"), ca, ca_key)
    store.accept_signed(store.check_signed_chain(chain, datetime.now(UTC), 10000))
    await tls_station(csms, make_station, tmp_path, pki, profile=3, ctx=profile3_context(pki, ca, required=True))
    assert client_cert_der(csms) is not None
    assert csms.auth_headers == [None]


# -- SignedUpdateFirmware ------------------------------------------------------------------------------
def signed_firmware(version: str, signer_key) -> tuple[bytes, str]:  # noqa: ANN001 - an EC private key
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from station.firmware import make_package

    data = make_package(version, b"image")
    return data, base64.b64encode(signer_key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


async def signed_update(csms: ScriptedCsms, booted, signature_of=None, retrieve: str | None = None,  # noqa: ANN001, ANN201
                        before=None):  # noqa: ANN001
    """A booted station with the manufacturer root installed, a file server with a signed package,
    and the SignedUpdateFirmware request (after ``before(station)``, at ``retrieve``, default now);
    returns (station, answer, server, request)."""
    sp = await booted()
    if before is not None:
        await before(sp)
    root = make_ca("Manufacturer Root")
    signing = make_ca("Firmware Signing", signer=root)
    r = await csms.call("InstallCertificate", {"certificateType": "ManufacturerRootCertificate", "certificate": pem(root[0])})
    assert r["status"] == "Accepted"
    data, signature = signed_firmware("2.0.0", signing[1])
    if signature_of is not None:
        signature = signed_firmware(*signature_of(signing))[1]
    server = await HttpFileServer(files={"/fw.pkg": data}).start()
    req = {"requestId": 5, "retries": 1, "retryInterval": 5,
           "firmware": {"location": server.url("/fw.pkg"), "retrieveDateTime": retrieve or now_iso(),
                        "signingCertificate": pem(signing[0]), "signature": signature}}
    answer = await csms.call("SignedUpdateFirmware", req)
    return sp, answer, server, req


def iso_in(seconds: float) -> str:
    return (wall_now() + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def fw_statuses(csms: ScriptedCsms) -> list[str]:
    return [p["status"] for p in csms.calls("SignedFirmwareStatusNotification")]


async def test_TC_080_secure_firmware_update(csms, booted):
    sp, answer, server, _ = await signed_update(csms, booted)
    try:
        assert answer == {"status": "Accepted"}
        boot = await csms.expect("BootNotification", timeout=60)  # restarted into the new firmware
        assert boot["firmwareVersion"] == "2.0.0"
        await csms.expect("SignedFirmwareStatusNotification", lambda p: p["status"] == "Installed", timeout=20)
        assert fw_statuses(csms) == ["Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallRebooting",
                                     "Installed"]
        assert all(p["requestId"] == 5 for p in csms.calls("SignedFirmwareStatusNotification"))
        await csms.expect("SecurityEventNotification", lambda p: p["type"] == "FirmwareUpdated", timeout=20, since=0)
    finally:
        await server.close()


async def test_TC_081_secure_firmware_update_invalid_signature(csms, booted):
    """Signed by another key (of the same subject): InvalidSignature, the security event, no install."""
    sp, answer, server, _ = await signed_update(csms, booted, signature_of=lambda s: ("2.0.0", make_ca("x")[1]))
    try:
        assert answer == {"status": "Accepted"}
        await csms.expect("SignedFirmwareStatusNotification", lambda p: p["status"] == "InvalidSignature", timeout=30)
        await csms.expect("SecurityEventNotification", lambda p: p["type"] == "InvalidFirmwareSignature", timeout=20)
        assert fw_statuses(csms) == ["Downloading", "Downloaded", "InvalidSignature"]
        r = await csms.call("ExtendedTriggerMessage", {"requestedMessage": "FirmwareStatusNotification"})
        assert r == {"status": "Accepted"}
        assert (await csms.expect("SignedFirmwareStatusNotification")) == {"status": "Idle"}
        await asyncio.sleep(5)
        assert len(csms.calls("BootNotification")) == 1  # no restart
    finally:
        await server.close()


async def test_TC_080_signed_update_while_charging_waits_until_the_transaction_has_ended(csms, booted):
    """The signed file downloads and its signature is checked while the car charges; the
    installation (and the restart) come only once the driver has ended the session: the
    transaction is not stopped by the update."""
    sp, answer, server, _ = await signed_update(csms, booted, before=lambda sp: start_session(csms, sp))
    try:
        assert answer == {"status": "Accepted"}
        await csms.expect("SignedFirmwareStatusNotification", lambda p: p["status"] == "SignatureVerified", timeout=30)
        await csms.no_call("SignedFirmwareStatusNotification", 600)  # charging: no installation
        assert not csms.calls("StopTransaction")
        assert len(csms.calls("BootNotification")) == 1
        r = await csms.call("ExtendedTriggerMessage", {"requestedMessage": "FirmwareStatusNotification"})
        assert r == {"status": "Accepted"}
        assert (await csms.expect("SignedFirmwareStatusNotification")) == {"status": "SignatureVerified", "requestId": 5}
        await sp.swipe("TAG1")  # the driver ends the session
        stop = await csms.expect("StopTransaction", timeout=30)
        assert stop["reason"] == "Local"
        boot = await csms.expect("BootNotification", timeout=60)
        assert boot["firmwareVersion"] == "2.0.0"
        await csms.expect("SignedFirmwareStatusNotification", lambda p: p["status"] == "Installed", timeout=20)
        assert [s for s in fw_statuses(csms) if s != "SignatureVerified"][-3:] == ["Installing", "InstallRebooting",
                                                                                    "Installed"]
        assert len(csms.calls("StopTransaction")) == 1
    finally:
        await server.close()


async def test_TC_080_signed_update_is_kept_across_a_restart_before_its_retrieve_date(csms, booted):
    """retrieveDateTime ten minutes ahead: DownloadScheduled; the station restarts meanwhile, and
    the update is still carried out at that time (signature checked, installed, Installed)."""
    sp, answer, server, _ = await signed_update(csms, booted, retrieve=iso_in(600))
    try:
        assert answer == {"status": "Accepted"}
        await csms.expect("SignedFirmwareStatusNotification", lambda p: p["status"] == "DownloadScheduled")
        await sp.stop()
        sp.start()
        await csms.expect("BootNotification", timeout=15)
        await csms.no_call("SignedFirmwareStatusNotification", 250)
        assert not server.requests
        boot = await csms.expect("BootNotification", timeout=900)  # restarted into the new firmware
        assert boot["firmwareVersion"] == "2.0.0"
        await csms.expect("SignedFirmwareStatusNotification", lambda p: p["status"] == "Installed", timeout=20)
        assert fw_statuses(csms) == ["DownloadScheduled", "Downloading", "Downloaded", "SignatureVerified", "Installing",
                                     "InstallRebooting", "Installed"]
        assert all(p["requestId"] == 5 for p in csms.calls("SignedFirmwareStatusNotification"))
    finally:
        await server.close()


async def test_signed_update_firmware_with_a_certificate_of_no_installed_root(csms, booted):
    await booted()
    stranger = make_ca("Not the manufacturer")
    req = {"requestId": 6, "firmware": {"location": "http://127.0.0.1:1/fw", "retrieveDateTime": now_iso(),
                                        "signingCertificate": pem(stranger[0]), "signature": "AAAA"}}
    assert (await csms.call("SignedUpdateFirmware", req)) == {"status": "InvalidCertificate"}
    await csms.expect("SecurityEventNotification", lambda p: p["type"] == "InvalidFirmwareSigningCertificate")
    await csms.no_call("SignedFirmwareStatusNotification", 3)


async def test_TC_083_upgrade_1_to_2_connects_to_csms_url_tls(csms, make_station, tmp_path):
    """Profile 1 on ws://; the CSMS installs its root and raises SecurityProfile to 2: the station
    connects to station.csms_url_tls over TLS with Basic auth, and keeps profile 2 across a restart."""
    pki = make_pki(tmp_path / "pki")
    tls = ScriptedCsms()
    tls_url = await tls.start(ssl=server_context(pki))
    try:
        cfg = tmp_path / "sp1.toml"
        cfg.write_text(f'[station]\nsecurity_profile = 1\ncsms_url = "ws://127.0.0.1/ocpp"\ncsms_url_tls = "{tls_url}"\n'
                       "\n[[evse]]\nid = 1\n")
        sp = make_station(config=str(cfg), ocpp_config={"AuthorizationKey": KEY})
        sp.start()
        await csms.expect("BootNotification", timeout=20)
        r = await csms.call("InstallCertificate", {"certificateType": "CentralSystemRootCertificate",
                                                   "certificate": pki.ca_file.read_text()})
        assert r["status"] == "Accepted"
        assert (await csms.call("ChangeConfiguration", {"key": "SecurityProfile", "value": "2"}))["status"] == "Accepted"
        await asyncio.wait_for(tls.connected.wait(), 30)
        assert tls.paths == ["/ocpp/CS001"]
        assert tls.auth_headers == ["Basic " + base64.b64encode(f"CS001:{KEY}".encode()).decode()]
        got = await tls.call("GetConfiguration", {"key": ["SecurityProfile"]})
        assert got["configurationKey"][0]["value"] == "2"
        await tls.expect("SecurityEventNotification", lambda p: p["type"] == "ReconfigurationOfSecurityParameters")
        await sp.stop()
        sp.start()
        await tls.expect("BootNotification", timeout=20)
        assert tls.connections == 2 and csms.connections == 1
    finally:
        await tls.close()
    assert not tls.schema_problems


async def test_the_signed_firmware_status_reported_by_trigger_survives_a_restart(csms, booted):
    """A signed update scheduled ten minutes ahead (DownloadScheduled), the station restarts: an
    ExtendedTriggerMessage FirmwareStatusNotification reports DownloadScheduled with its requestId
    (the kept job's last status), not Idle. Once the job has ended it is Idle again."""
    sp, answer, server, _ = await signed_update(csms, booted, retrieve=iso_in(600))
    try:
        await csms.expect("SignedFirmwareStatusNotification", lambda p: p["status"] == "DownloadScheduled")
        await sp.stop()
        sp.start()
        await csms.expect("BootNotification", timeout=15)
        await sp.wait_api()
        r = await csms.call("ExtendedTriggerMessage", {"requestedMessage": "FirmwareStatusNotification"})
        assert r == {"status": "Accepted"}
        assert (await csms.expect("SignedFirmwareStatusNotification")) == {"status": "DownloadScheduled", "requestId": 5}
        await csms.expect("BootNotification", timeout=900)  # installed, restarted
        await csms.expect("SignedFirmwareStatusNotification", lambda p: p["status"] == "Installed", timeout=20)
        await csms.call("ExtendedTriggerMessage", {"requestedMessage": "FirmwareStatusNotification"})
        assert (await csms.expect("SignedFirmwareStatusNotification")) == {"status": "Idle"}
    finally:
        await server.close()

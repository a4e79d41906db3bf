"""OCTT 2.0.1 functional blocks A (security) and M (certificate management), in process over real
websockets and real TLS on 127.0.0.1 with certificates made by the test (tests/tls.py): security
profiles 1, 2 and 3, the BasicAuthPassword update, the charging station certificate renewal,
security profile upgrades (SetNetworkProfile), certificate installation, listing and deletion,
and security events. Every frame is checked against the 2.0.1 schemas by the scripted CSMS.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import stat
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from station.security import CSMS_ROOT, CertificateStore, hash_data
from tests.conftest import var
from tests.integration.harness import ScriptedCsms
from tests.tls import Pki, make_ca, make_pki, pem, server_context, sign_csr

PASSWORD = "0123456789abcdef0123"  # 20 characters: a valid BasicAuthPassword
NEW_PASSWORD = "fedcba9876543210fedcba98"


def basic(password: str, station_id: str = "CS201") -> str:
    return "Basic " + base64.b64encode(f"{station_id}:{password}".encode()).decode()


def config(tmp_path: Path, profile: int, pki: Pki | None = None, name: str = "station.toml") -> str:
    """A station config of ``profile`` (2 and 3: wss://, ``pki``'s root as station.ca_file)."""
    scheme = "wss" if profile >= 2 else "ws"
    ca = f'ca_file = "{pki.ca_file}"\n' if pki else ""
    path = tmp_path / name
    path.write_text(f'[station]\nsecurity_profile = {profile}\ncsms_url = "{scheme}://127.0.0.1/ocpp"\n{ca}\n'
                    "[[evse]]\nid = 1\n")
    return str(path)


def client_cert_der(csms: ScriptedCsms) -> bytes | None:
    assert csms.ws is not None
    return csms.ws.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)


def profile3_context(pki: Pki, client_ca: x509.Certificate, required: bool = False) -> ssl.SSLContext:
    """A CSMS taking profile 2 and 3 stations (a client certificate, if shown, must be of
    ``client_ca``); ``required``: profile 3 only."""
    ctx = server_context(pki, client_ca=pem(client_ca))
    if not required:
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def events(csms: ScriptedCsms, kind: str) -> list[dict]:
    return [p for p in csms.calls("SecurityEventNotification") if p["type"] == kind]


async def boot_seen(csms: ScriptedCsms, sp, since: int | None = None) -> None:  # noqa: ANN001
    await csms.expect("BootNotification", timeout=30, since=since)
    await csms.expect("StatusNotification", lambda p: p["evseId"] == 1, timeout=10, since=since)
    await sp.wait_api()
    csms.mark()


async def plain_station(csms: ScriptedCsms, make_station201, tmp_path: Path, profile: int = 1,  # noqa: ANN001, ANN201
                        variables: list[dict] | None = None):
    sp = make_station201(config=config(tmp_path, profile),
                         variables=[var("SecurityCtrlr", "BasicAuthPassword", PASSWORD), *(variables or [])])
    sp.start()
    await boot_seen(csms, sp, since=0)
    return sp


async def tls_station(csms: ScriptedCsms, make_station201, tmp_path: Path, pki: Pki, profile: int = 2,  # noqa: ANN001, ANN201
                      ctx: ssl.SSLContext | None = None, boot: bool = True, variables: list[dict] | None = None,
                      ca_file: bool = True):
    """The test's CSMS now on TLS (``ctx``, default ``pki``'s server certificate) and a station of
    ``profile`` trusting ``pki``'s root."""
    await csms.close()
    url = await csms.start(ssl=ctx or server_context(pki))
    sp = make_station201(config=config(tmp_path, profile, pki if ca_file else None), url=url,
                         variables=[var("SecurityCtrlr", "BasicAuthPassword", PASSWORD), *(variables or [])])
    sp.start()
    if boot:
        await boot_seen(csms, sp, since=0)
    return sp


async def restart_tls(csms: ScriptedCsms, ctx: ssl.SSLContext) -> None:
    await csms.close()
    if csms.ws is not None:
        await csms.ws.close()
    await csms.start(port=csms.port, ssl=ctx)


def provision_client_certificate(tmp_path: Path, ca: x509.Certificate, ca_key) -> str:  # noqa: ANN001
    """A charging station certificate put in the station's store before it starts (factory)."""
    store = CertificateStore(tmp_path / "state" / "security")
    chain = sign_csr(store.new_csr("CS201", "Test CPO"), ca, ca_key)
    store.accept_signed(store.check_signed_chain(chain, datetime.now(UTC), 10000))
    return chain


async def renew(csms: ScriptedCsms, ca: x509.Certificate, ca_key) -> tuple[dict, str, dict]:  # noqa: ANN001
    """Reusable state RenewChargingStationCertificate: TriggerMessage SignChargingStationCertificate,
    SignCertificateRequest, CertificateSignedRequest. (request, chain, CertificateSigned answer)"""
    csms.responders["SignCertificate"] = lambda p: {"status": "Accepted"}
    r = await csms.call("TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"})
    assert r == {"status": "Accepted"}
    req = await csms.expect("SignCertificate", timeout=10)
    chain = sign_csr(req["csr"], ca, ca_key)
    answer = await csms.call("CertificateSigned", {"certificateChain": chain, "certificateType": "ChargingStationCertificate"})
    return req, chain, answer


async def get_variable(csms: ScriptedCsms, component: str, variable: str, instance: str | None = None) -> str:
    v = {"name": variable} if instance is None else {"name": variable, "instance": instance}
    r = await csms.call("GetVariables", {"getVariableData": [{"component": {"name": component}, "variable": v}]})
    result = r["getVariableResult"][0]
    assert result["attributeStatus"] == "Accepted", result
    return result["attributeValue"]


async def set_variable(csms: ScriptedCsms, component: str, variable: str, value: str) -> dict:
    r = await csms.call("SetVariables", {"setVariableData": [{"component": {"name": component},
                                                              "variable": {"name": variable}, "attributeValue": value}]})
    return r["setVariableResult"][0]


# -- security profiles 1, 2, 3 (A00) ---------------------------------------------------------------
async def test_TC_A_01_CS_basic_authentication_valid_username_password(csms201, make_station201, tmp_path):
    csms201.reject_handshake = 1  # the first handshake is refused (401): a security event, then it works
    await plain_station(csms201, make_station201, tmp_path, profile=1)
    assert csms201.auth_headers == [basic(PASSWORD)]
    assert csms201.paths == ["/ocpp/CS201"]
    ev = await csms201.expect("SecurityEventNotification", lambda p: p["type"] == "FailedToAuthenticateAtCsms", since=0)
    assert "401" in ev["techInfo"]
    assert await get_variable(csms201, "SecurityCtrlr", "SecurityProfile") == "1"


async def test_TC_A_04_CS_tls_server_side_certificate_valid(csms201, make_station201, tmp_path):
    pki = make_pki(tmp_path / "pki")
    await tls_station(csms201, make_station201, tmp_path, pki)
    assert csms201.connections == 1
    assert csms201.auth_headers == [basic(PASSWORD)]  # profile 2: TLS and Basic auth
    assert client_cert_der(csms201) is None
    await csms201.expect("SecurityEventNotification", lambda p: p["type"] == "StartupOfTheDevice", since=0)
    assert await get_variable(csms201, "SecurityCtrlr", "SecurityProfile") == "2"


async def test_TC_A_05_CS_tls_server_side_certificate_invalid(csms201, make_station201, tmp_path):
    """The CSMS shows a certificate of a root the station does not trust: no connection; once it
    shows a trusted one the station boots and reports InvalidCsmsCertificate, once."""
    pki = make_pki(tmp_path / "pki")
    wrong = make_pki(tmp_path / "wrong", ca_name="Wrong Root")
    sp = await tls_station(csms201, make_station201, tmp_path, pki, ctx=server_context(wrong), boot=False)
    await sp.wait_api()
    await asyncio.sleep(20)  # several failed attempts
    assert "not trusted" in sp.rt.adapter.link.last_error
    assert csms201.connections == 0
    await restart_tls(csms201, server_context(pki))
    await csms201.expect("BootNotification", timeout=90, since=0)
    ev = await csms201.expect("SecurityEventNotification", lambda p: p["type"] == "InvalidCsmsCertificate",
                              timeout=20, since=0)
    assert "certificate verify failed" in ev["techInfo"]
    await asyncio.sleep(2)
    assert len(events(csms201, "InvalidCsmsCertificate")) == 1


async def tls11_only_server() -> tuple[asyncio.AbstractServer, int]:
    """A CSMS whose TLS stops at version 1.1: it answers a ClientHello that offers only TLS 1.2
    and 1.3 with the protocol_version alert (RFC 5246 7.2.2), as such a server does. (The OpenSSL
    of the test machine refuses to serve TLS 1.1 itself.)"""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(4096)  # the ClientHello
            writer.write(bytes([0x15, 0x03, 0x02, 0x00, 0x02, 0x02, 0x46]))  # alert(fatal, protocol_version), TLS 1.1
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_TC_A_06_CS_tls_version_too_low(csms201, make_station201, tmp_path):
    """A CSMS that speaks TLS 1.1 at most: the station (TLS 1.2 at least) does not connect, says
    why, and reports InvalidTLSVersion once it can connect."""
    pki = make_pki(tmp_path / "pki")
    await csms201.close()
    old, port = await tls11_only_server()
    sp = make_station201(config=config(tmp_path, 2, pki), url=f"wss://127.0.0.1:{port}/ocpp",
                         variables=[var("SecurityCtrlr", "BasicAuthPassword", PASSWORD)])
    sp.start()
    await sp.wait_api()
    await asyncio.sleep(20)
    link = sp.rt.adapter.link
    assert "TLS" in link.last_error and "VERSION" in link.last_error.upper(), link.last_error
    assert link.ssl.minimum_version >= ssl.TLSVersion.TLSv1_2
    old.close()
    await old.wait_closed()
    await csms201.start(port=port, ssl=server_context(pki))
    await csms201.expect("BootNotification", timeout=90, since=0)
    ev = await csms201.expect("SecurityEventNotification", lambda p: p["type"] == "InvalidTLSVersion", timeout=20, since=0)
    assert "VERSION" in ev["techInfo"].upper()
    assert len(events(csms201, "InvalidTLSVersion")) == 1


async def test_TC_A_07_CS_tls_client_side_certificate_valid(csms201, make_station201, tmp_path):
    """Profile 3 from the station config with a provisioned certificate: the CSMS requires and
    checks it; no Basic auth."""
    pki = make_pki(tmp_path / "pki")
    ca, ca_key = make_ca("CPO Sub CA")
    chain = provision_client_certificate(tmp_path, ca, ca_key)
    await tls_station(csms201, make_station201, tmp_path, pki, profile=3, ctx=profile3_context(pki, ca, required=True))
    assert client_cert_der(csms201) == x509.load_pem_x509_certificate(chain.encode()).public_bytes(Encoding.DER)
    assert csms201.auth_headers == [None]
    assert await get_variable(csms201, "SecurityCtrlr", "SecurityProfile") == "3"


# -- A01 BasicAuthPassword -----------------------------------------------------------------------------
async def test_TC_A_09_CS_update_basic_auth_password_accepted(csms201, make_station201, tmp_path):
    sp = await plain_station(csms201, make_station201, tmp_path, profile=1)
    mark = csms201.mark()
    r = await set_variable(csms201, "SecurityCtrlr", "BasicAuthPassword", NEW_PASSWORD)
    assert r["attributeStatus"] == "Accepted"
    await asyncio.wait_for(csms201.disconnected.wait(), 10)
    await asyncio.wait_for(csms201.connected.wait(), 30)
    assert csms201.auth_headers == [basic(PASSWORD), basic(NEW_PASSWORD)]
    await csms201.expect("BootNotification", since=mark, timeout=20)  # the new session registers
    assert NEW_PASSWORD not in sp.log()
    got = await csms201.call("GetVariables", {"getVariableData": [{"component": {"name": "SecurityCtrlr"},
                                                                   "variable": {"name": "BasicAuthPassword"}}]})
    assert got["getVariableResult"][0]["attributeStatus"] == "Rejected"  # write-only
    await csms201.expect("SecurityEventNotification", lambda p: p["type"] == "ReconfigurationOfSecurityParameters",
                         since=mark)
    # kept: after a Reset (the --ocpp-config file still names the old one) the new password is used
    mark = csms201.mark()
    assert (await csms201.call("Reset", {"type": "Immediate"}))["status"] == "Accepted"
    await csms201.expect("BootNotification", since=mark, timeout=60)
    assert csms201.auth_headers[-1] == basic(NEW_PASSWORD)


async def test_TC_A_10_CS_update_basic_auth_password_rejected(csms201, make_station201, tmp_path):
    """A password shorter than 16 characters is Rejected; the station keeps the old one (it
    connects with it again after the CSMS closes the connection)."""
    await plain_station(csms201, make_station201, tmp_path, profile=1)
    r = await set_variable(csms201, "SecurityCtrlr", "BasicAuthPassword", "short")
    assert r["attributeStatus"] == "Rejected"
    assert r["attributeStatusInfo"]["reasonCode"] == "ValueTooLow"
    await asyncio.sleep(3)
    assert csms201.connections == 1  # no reconnect for a rejected password
    await csms201.drop_connection()
    await asyncio.wait_for(csms201.connected.wait(), 30)
    assert csms201.auth_headers == [basic(PASSWORD), basic(PASSWORD)]


# -- A02/A03 charging station certificate renewal ---------------------------------------------------------
async def test_TC_A_11_CS_update_charging_station_certificate_success(csms201, make_station201, tmp_path):
    pki = make_pki(tmp_path / "pki")
    ca, ca_key = make_ca("CPO Sub CA")
    old_chain = provision_client_certificate(tmp_path, ca, ca_key)
    sp = await tls_station(csms201, make_station201, tmp_path, pki, profile=3, ctx=profile3_context(pki, ca, required=True),
                           variables=[var("SecurityCtrlr", "OrganizationName", "Test CPO")])
    assert client_cert_der(csms201) == x509.load_pem_x509_certificate(old_chain.encode()).public_bytes(Encoding.DER)
    mark = csms201.mark()
    req, chain, answer = await renew(csms201, ca, ca_key)
    assert answer == {"status": "Accepted"}
    assert req["certificateType"] == "ChargingStationCertificate"
    csr = x509.load_pem_x509_csr(req["csr"].encode())
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=CS201,O=Test CPO"
    # used for the next connection: the station connects again with it, and registers
    await asyncio.wait_for(csms201.disconnected.wait(), 10)
    await asyncio.wait_for(csms201.connected.wait(), 30)
    await csms201.expect("BootNotification", since=mark, timeout=20)
    assert client_cert_der(csms201) == x509.load_pem_x509_certificate(chain.encode()).public_bytes(Encoding.DER)
    store = CertificateStore(sp.state_dir / "security")
    mode = stat.S_IMODE(os.stat(store.key_file).st_mode)
    assert mode == 0o600, oct(mode)
    body = "".join(line for line in store.key_file.read_text().splitlines() if "-----" not in line)
    assert body[:40] not in sp.log()  # the private key is never logged
    assert not store.pending_key_file.exists()


async def test_TC_A_14_CS_update_charging_station_certificate_invalid(csms201, make_station201, tmp_path):
    await plain_station(csms201, make_station201, tmp_path, profile=1)
    csms201.responders["SignCertificate"] = lambda p: {"status": "Accepted"}
    assert (await csms201.call("TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"}))["status"] == "Accepted"
    await csms201.expect("SignCertificate")
    ca, ca_key = make_ca("CPO Sub CA")
    other = CertificateStore(tmp_path / "other")
    wrong_key_chain = sign_csr(other.new_csr("CS201", ""), ca, ca_key)  # signed, but for another key
    r = await csms201.call("CertificateSigned", {"certificateChain": wrong_key_chain})
    assert r["status"] == "Rejected"
    ev = await csms201.expect("SecurityEventNotification", lambda p: p["type"] == "InvalidChargingStationCertificate")
    assert "public key" in ev["techInfo"]
    assert (await csms201.call("CertificateSigned", {"certificateChain": "not a certificate"}))["status"] == "Rejected"
    assert (await csms201.call("CertificateSigned", {"certificateChain": wrong_key_chain,
                                                     "certificateType": "V2GCertificate"}))["status"] == "Rejected"


async def test_TC_A_15_CS_sign_certificate_request_rejected(csms201, make_station201, tmp_path):
    await plain_station(csms201, make_station201, tmp_path, profile=1,
                        variables=[var("SecurityCtrlr", "CertSigningWaitMinimum", "5")])
    csms201.responders["SignCertificate"] = lambda p: {"status": "Rejected"}
    r = await csms201.call("TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"})
    assert r == {"status": "Accepted"}
    await csms201.expect("SignCertificate")
    await csms201.no_call("SignCertificate", 60)  # a rejected request is not repeated
    assert len(csms201.calls("SignCertificate")) == 1


async def test_TC_A_23_CS_certificate_signed_request_timeout(csms201, make_station201, tmp_path):
    """No CertificateSigned within CertSigningWaitMinimum: the CSR again, the wait doubled each
    time, CertSigningRepeatTimes times (A02.FR.17-19)."""
    await plain_station(csms201, make_station201, tmp_path, profile=1,
                        variables=[var("SecurityCtrlr", "CertSigningWaitMinimum", "10"),
                                   var("SecurityCtrlr", "CertSigningRepeatTimes", "2")])
    csms201.responders["SignCertificate"] = lambda p: {"status": "Accepted"}
    await csms201.call("TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"})
    await csms201.expect("SignCertificate")
    await csms201.expect("SignCertificate", timeout=20)
    await csms201.expect("SignCertificate", timeout=30)
    await csms201.no_call("SignCertificate", 120)
    times = [r.at for r in csms201.received if r.action == "SignCertificate"]
    assert len(times) == 3
    assert 9 <= times[1] - times[0] <= 12 and 19 <= times[2] - times[1] <= 22, times
    csrs = [p["csr"] for p in csms201.calls("SignCertificate")]
    assert len(set(csrs)) == 3  # a new key pair each time
    # the certificate for the last CSR is the one accepted
    ca, ca_key = make_ca("CPO Sub CA")
    assert (await csms201.call("CertificateSigned", {"certificateChain": sign_csr(csrs[0], ca, ca_key)}))["status"] == "Rejected"
    assert (await csms201.call("CertificateSigned", {"certificateChain": sign_csr(csrs[-1], ca, ca_key)}))["status"] == "Accepted"


async def test_certificate_signed_in_time_stops_the_repeats(csms201, make_station201, tmp_path):
    await plain_station(csms201, make_station201, tmp_path, profile=1,
                        variables=[var("SecurityCtrlr", "CertSigningWaitMinimum", "10")])
    ca, ca_key = make_ca("CPO Sub CA")
    _, _, answer = await renew(csms201, ca, ca_key)
    assert answer == {"status": "Accepted"}
    await csms201.no_call("SignCertificate", 60)
    assert await get_variable(csms201, "SecurityCtrlr", "CertificateEntries") == "1"


# -- A05 security profile upgrade -------------------------------------------------------------------------
def network_profile(url: str, profile: int, slot: int = 1) -> dict:
    return {"configurationSlot": slot,
            "connectionData": {"ocppVersion": "OCPP20", "ocppTransport": "JSON", "ocppCsmsUrl": url,
                               "messageTimeout": 30, "securityProfile": profile, "ocppInterface": "Wired0"}}


async def test_TC_A_19_CS_upgrade_security_profile_accepted(csms201, make_station201, tmp_path):
    """Profile 1 -> 2: SetNetworkProfile (a TLS CSMS), NetworkConfigurationPriority, Reset; the
    station connects with TLS, keeps profile 2, and the slot of profile 1 leaves the priority."""
    pki = make_pki(tmp_path / "pki")
    await plain_station(csms201, make_station201, tmp_path, profile=1)
    tls = ScriptedCsms(version="2.0.1")
    url = await tls.start(ssl=server_context(pki))
    try:
        r = await csms201.call("InstallCertificate", {"certificateType": "CSMSRootCertificate",
                                                      "certificate": pki.ca_file.read_text()})
        assert r == {"status": "Accepted"}
        assert (await csms201.call("SetNetworkProfile", network_profile(url, 2)))["status"] == "Accepted"
        r = await set_variable(csms201, "OCPPCommCtrlr", "NetworkConfigurationPriority", "1,0")
        assert r["attributeStatus"] == "Accepted"
        assert (await csms201.call("Reset", {"type": "OnIdle"}))["status"] == "Accepted"
        boot = await tls.expect("BootNotification", timeout=60, since=0)
        assert boot["reason"] == "RemoteReset"
        assert tls.auth_headers == [basic(PASSWORD)]
        await tls.expect("SecurityEventNotification", lambda p: p["type"] == "ReconfigurationOfSecurityParameters",
                         timeout=20, since=0)
        assert await get_variable(tls, "SecurityCtrlr", "SecurityProfile") == "2"
        assert await get_variable(tls, "OCPPCommCtrlr", "NetworkConfigurationPriority") == "1"
        assert await get_variable(tls, "OCPPCommCtrlr", "ActiveNetworkProfile") == "1"
        assert not tls.schema_problems, tls.schema_problems
    finally:
        await tls.close()


async def test_upgrade_security_profile_that_fails_to_connect_falls_back(csms201, make_station201, tmp_path):
    """The new profile's CSMS does not answer: after NetworkProfileConnectionAttempts failed
    attempts the station is back on the previous profile and slot."""
    await plain_station(csms201, make_station201, tmp_path, profile=1,
                        variables=[var("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", "2")])
    root, _ = make_ca("CSMS Root")
    await csms201.call("InstallCertificate", {"certificateType": "CSMSRootCertificate", "certificate": pem(root)})
    dead = ScriptedCsms(version="2.0.1")
    url = await dead.start()
    await dead.close()  # nothing listens there any more
    assert (await csms201.call("SetNetworkProfile", network_profile(url.replace("ws://", "wss://"), 2)))["status"] == "Accepted"
    assert (await set_variable(csms201, "OCPPCommCtrlr", "NetworkConfigurationPriority", "1,0"))["attributeStatus"] == "Accepted"
    mark = csms201.mark()
    assert (await csms201.call("Reset", {"type": "OnIdle"}))["status"] == "Accepted"
    await csms201.expect("BootNotification", timeout=120, since=mark)
    assert await get_variable(csms201, "SecurityCtrlr", "SecurityProfile") == "1"
    assert await get_variable(csms201, "OCPPCommCtrlr", "ActiveNetworkProfile") == "0"
    assert csms201.auth_headers[-1] == basic(PASSWORD)


async def test_TC_A_20_CS_upgrade_security_profile_no_valid_csms_root_certificate(csms201, make_station201, tmp_path):
    await plain_station(csms201, make_station201, tmp_path, profile=1)
    r = await csms201.call("SetNetworkProfile", network_profile("wss://127.0.0.1:1/ocpp", 2))
    assert r["status"] == "Rejected"
    assert "CSMSRootCertificate" in r["statusInfo"]["additionalInfo"]


async def test_TC_A_21_CS_upgrade_security_profile_no_valid_charging_station_certificate(csms201, make_station201, tmp_path):
    pki = make_pki(tmp_path / "pki")
    await tls_station(csms201, make_station201, tmp_path, pki, profile=2)
    r = await csms201.call("SetNetworkProfile", network_profile("wss://127.0.0.1:1/ocpp", 3))
    assert r["status"] == "Rejected"
    assert "ChargingStationCertificate" in r["statusInfo"]["additionalInfo"]


async def test_TC_A_22_CS_upgrade_security_profile_downgrade_rejected(csms201, make_station201, tmp_path):
    pki = make_pki(tmp_path / "pki")
    await tls_station(csms201, make_station201, tmp_path, pki, profile=2)
    r = await csms201.call("SetNetworkProfile", network_profile("ws://127.0.0.1:1/ocpp", 1))
    assert r["status"] == "Rejected" and r["statusInfo"]["reasonCode"] == "NoSecurityDowngrade"
    await asyncio.sleep(3)
    assert csms201.connections == 1
    assert await get_variable(csms201, "SecurityCtrlr", "SecurityProfile") == "2"


# -- M certificate management ------------------------------------------------------------------------------
async def test_TC_M_01_CS_install_ca_certificate_csms_root(csms201, make_station201, tmp_path):
    await plain_station(csms201, make_station201, tmp_path)
    ca, _ = make_ca("CSMS Root")
    r = await csms201.call("InstallCertificate", {"certificateType": "CSMSRootCertificate", "certificate": pem(ca)})
    assert r == {"status": "Accepted"}
    got = await csms201.call("GetInstalledCertificateIds", {"certificateType": ["CSMSRootCertificate"]})
    assert got == {"status": "Accepted", "certificateHashDataChain": [
        {"certificateType": "CSMSRootCertificate", "certificateHashData": hash_data(ca).as_ocpp()}]}
    assert await get_variable(csms201, "SecurityCtrlr", "CertificateEntries") == "1"


async def test_TC_M_02_CS_install_ca_certificate_manufacturer_root(csms201, make_station201, tmp_path):
    await plain_station(csms201, make_station201, tmp_path)
    ca, _ = make_ca("Manufacturer Root")
    r = await csms201.call("InstallCertificate", {"certificateType": "ManufacturerRootCertificate", "certificate": pem(ca)})
    assert r == {"status": "Accepted"}
    got = await csms201.call("GetInstalledCertificateIds", {"certificateType": ["ManufacturerRootCertificate"]})
    assert got["certificateHashDataChain"] == [{"certificateType": "ManufacturerRootCertificate",
                                                "certificateHashData": hash_data(ca).as_ocpp()}]


async def test_TC_M_03_04_14_16_CS_install_and_retrieve_v2g_and_mo_root_certificates(csms201, make_station201, tmp_path):
    await plain_station(csms201, make_station201, tmp_path)
    for kind in ("V2GRootCertificate", "MORootCertificate"):
        ca, _ = make_ca(kind)
        assert (await csms201.call("InstallCertificate", {"certificateType": kind, "certificate": pem(ca)}))["status"] == "Accepted"
        got = await csms201.call("GetInstalledCertificateIds", {"certificateType": [kind]})
        assert got["certificateHashDataChain"] == [{"certificateType": kind, "certificateHashData": hash_data(ca).as_ocpp()}]


async def test_TC_M_07_CS_install_ca_certificate_rejected_invalid(csms201, make_station201, tmp_path):
    await plain_station(csms201, make_station201, tmp_path)
    r = await csms201.call("InstallCertificate", {"certificateType": "CSMSRootCertificate", "certificate": "junk"})
    assert r["status"] == "Rejected"
    ca, ca_key = make_ca("CPO Sub CA")
    store = CertificateStore(tmp_path / "other")
    leaf = sign_csr(store.new_csr("x", ""), ca, ca_key)  # no CA certificate
    r = await csms201.call("InstallCertificate", {"certificateType": "ManufacturerRootCertificate", "certificate": leaf})
    assert r["status"] == "Rejected"
    assert (await csms201.call("GetInstalledCertificateIds", {}))["status"] == "NotFound"


async def install_both(csms: ScriptedCsms) -> tuple[x509.Certificate, x509.Certificate]:
    csms_root, _ = make_ca("CSMS Root")
    manufacturer, _ = make_ca("Manufacturer Root")
    for kind, c in (("CSMSRootCertificate", csms_root), ("ManufacturerRootCertificate", manufacturer)):
        assert (await csms.call("InstallCertificate", {"certificateType": kind, "certificate": pem(c)}))["status"] == "Accepted"
    return csms_root, manufacturer


async def test_TC_M_12_13_CS_retrieve_certificates_per_type(csms201, make_station201, tmp_path):
    await plain_station(csms201, make_station201, tmp_path)
    csms_root, manufacturer = await install_both(csms201)
    for kind, c in (("CSMSRootCertificate", csms_root), ("ManufacturerRootCertificate", manufacturer)):
        got = await csms201.call("GetInstalledCertificateIds", {"certificateType": [kind]})
        assert got == {"status": "Accepted", "certificateHashDataChain": [
            {"certificateType": kind, "certificateHashData": hash_data(c).as_ocpp()}]}


async def test_TC_M_17_CS_retrieve_csms_root_and_manufacturer_root(csms201, make_station201, tmp_path):
    await plain_station(csms201, make_station201, tmp_path)
    csms_root, manufacturer = await install_both(csms201)
    got = await csms201.call("GetInstalledCertificateIds",
                             {"certificateType": ["CSMSRootCertificate", "ManufacturerRootCertificate"]})
    assert got["status"] == "Accepted"
    assert sorted((e["certificateType"], e["certificateHashData"]["serialNumber"]) for e in got["certificateHashDataChain"]) == \
        sorted([("CSMSRootCertificate", format(csms_root.serial_number, "x")),
                ("ManufacturerRootCertificate", format(manufacturer.serial_number, "x"))])


async def test_TC_M_18_CS_retrieve_all_certificate_types(csms201, make_station201, tmp_path):
    await plain_station(csms201, make_station201, tmp_path)
    await install_both(csms201)
    got = await csms201.call("GetInstalledCertificateIds", {})
    assert got["status"] == "Accepted"
    assert sorted(e["certificateType"] for e in got["certificateHashDataChain"]) == \
        ["CSMSRootCertificate", "ManufacturerRootCertificate"]
    assert await get_variable(csms201, "SecurityCtrlr", "CertificateEntries") == "2"


async def test_TC_M_19_CS_retrieve_certificates_no_matching_certificate(csms201, make_station201, tmp_path):
    await plain_station(csms201, make_station201, tmp_path)
    ca, _ = make_ca("Manufacturer Root")
    await csms201.call("InstallCertificate", {"certificateType": "ManufacturerRootCertificate", "certificate": pem(ca)})
    got = await csms201.call("GetInstalledCertificateIds", {"certificateType": ["CSMSRootCertificate", "V2GCertificateChain"]})
    assert got == {"status": "NotFound"}


async def test_TC_M_20_22_CS_delete_certificate_success_and_not_found(csms201, make_station201, tmp_path):
    await plain_station(csms201, make_station201, tmp_path)
    csms_root, manufacturer = await install_both(csms201)
    target = hash_data(manufacturer).as_ocpp()
    assert (await csms201.call("DeleteCertificate", {"certificateHashData": target}))["status"] == "Accepted"
    got = await csms201.call("GetInstalledCertificateIds", {})
    assert got["certificateHashDataChain"] == [{"certificateType": "CSMSRootCertificate",
                                                "certificateHashData": hash_data(csms_root).as_ocpp()}]
    assert (await csms201.call("DeleteCertificate", {"certificateHashData": target}))["status"] == "NotFound"  # TC_M_22
    assert await get_variable(csms201, "SecurityCtrlr", "CertificateEntries") == "1"


async def test_TC_M_23_CS_delete_charging_station_certificate_failed(csms201, make_station201, tmp_path):
    pki = make_pki(tmp_path / "pki")
    ca, ca_key = make_ca("CPO Sub CA")
    chain = provision_client_certificate(tmp_path, ca, ca_key)
    await tls_station(csms201, make_station201, tmp_path, pki, profile=3, ctx=profile3_context(pki, ca, required=True))
    leaf = x509.load_pem_x509_certificate(chain.encode())
    r = await csms201.call("DeleteCertificate", {"certificateHashData": hash_data(leaf, ca).as_ocpp()})
    assert r["status"] == "Failed"
    store = CertificateStore(tmp_path / "state" / "security")
    assert store.has_client_certificate()


async def test_only_csms_root_in_use_is_not_deleted(csms201, make_station201, tmp_path):
    """Profile 2 trusting only the installed root (no station.ca_file): deleting it would cut the
    station off, so it is kept (Failed)."""
    pki = make_pki(tmp_path / "pki")
    root = x509.load_pem_x509_certificate(pki.ca_file.read_bytes())
    CertificateStore(tmp_path / "state" / "security").install_root(CSMS_ROOT, pem(root), datetime.now(UTC), 10)
    await tls_station(csms201, make_station201, tmp_path, pki, profile=2, ca_file=False)
    r = await csms201.call("DeleteCertificate", {"certificateHashData": hash_data(root).as_ocpp()})
    assert r["status"] == "Failed"
    got = await csms201.call("GetInstalledCertificateIds", {"certificateType": ["CSMSRootCertificate"]})
    assert got["status"] == "Accepted"


async def test_startup_and_reset_security_events(csms201, make_station201, tmp_path):
    await plain_station(csms201, make_station201, tmp_path)
    await csms201.expect("SecurityEventNotification", lambda p: p["type"] == "StartupOfTheDevice", since=0)
    mark = csms201.mark()
    assert (await csms201.call("Reset", {"type": "Immediate"}))["status"] == "Accepted"
    await csms201.expect("BootNotification", timeout=60, since=mark)
    ev = await csms201.expect("SecurityEventNotification", lambda p: p["type"] == "ResetOrReboot", since=mark, timeout=20)
    assert ev["timestamp"].endswith("Z")
    assert len(events(csms201, "StartupOfTheDevice")) == 1


async def test_invalid_messages_and_tamper_security_events(csms201, make_station201, tmp_path):
    """The version-independent event sources (station/security_events.py) on 2.0.1: a CSMS call
    that breaks its schema (CallError and InvalidMessages) and the tamper input
    (TamperDetectionActivated, critical, queued)."""
    sp = await plain_station(csms201, make_station201, tmp_path)
    answer = await csms201.send_call_raw([2, "bad-1", "SetNetworkProfile", {"configurationSlot": "one"}])
    assert answer[0] == 4 and answer[1] == "bad-1"
    ev = await csms201.expect("SecurityEventNotification", lambda p: p["type"] == "InvalidMessages")
    assert "SetNetworkProfile" in ev["techInfo"]
    assert await sp.api("POST", "/api/tamper", {"active": True}) == {"active": True}
    await csms201.expect("SecurityEventNotification", lambda p: p["type"] == "TamperDetectionActivated")


async def test_upgraded_security_profile_is_kept_across_a_restart(csms201, make_station201, tmp_path):
    """Once profile 2 has connected, a restart connects with it again; the profile 1 slot (the
    station config's) is not used any more, even if the CSMS of profile 2 is away for a while."""
    pki = make_pki(tmp_path / "pki")
    sp = await plain_station(csms201, make_station201, tmp_path, profile=1)
    tls = ScriptedCsms(version="2.0.1")
    url = await tls.start(ssl=server_context(pki))
    try:
        await csms201.call("InstallCertificate", {"certificateType": "CSMSRootCertificate", "certificate": pki.ca_file.read_text()})
        assert (await csms201.call("SetNetworkProfile", network_profile(url, 2)))["status"] == "Accepted"
        assert (await set_variable(csms201, "OCPPCommCtrlr", "NetworkConfigurationPriority", "1,0"))["attributeStatus"] == "Accepted"
        assert (await csms201.call("Reset", {"type": "Immediate"}))["status"] == "Accepted"
        await tls.expect("BootNotification", timeout=60, since=0)
        # the CSMS names slot 0 (profile 1) again: accepted, but a lower profile is never used again
        r = await set_variable(tls, "OCPPCommCtrlr", "NetworkConfigurationPriority", "1,0")
        assert r["attributeStatus"] == "Accepted"
        await sp.stop()
        await tls.close()  # the profile 2 CSMS is away while the station starts again
        connections = csms201.connections
        sp.start()
        await asyncio.sleep(60)
        assert csms201.connections == connections  # no fallback to profile 1
        await tls.start(port=tls.port)
        await tls.expect("BootNotification", timeout=120, since=tls.mark())
        assert await get_variable(tls, "SecurityCtrlr", "SecurityProfile") == "2"
        assert not tls.schema_problems, tls.schema_problems
    finally:
        await tls.close()


async def test_A03_station_renews_its_certificate_before_it_expires(csms201, make_station201, tmp_path):
    """A03: a charging station certificate that expires within 30 days: after its boot the station
    sends a SignCertificateRequest by itself; the signed certificate is accepted."""
    pki = make_pki(tmp_path / "pki")
    ca, ca_key = make_ca("CPO Sub CA")
    store = CertificateStore(tmp_path / "state" / "security")
    short = sign_csr(store.new_csr("CS201", ""), ca, ca_key, days=10)
    store.accept_signed(store.check_signed_chain(short, datetime.now(UTC), 10000))
    csms201.responders["SignCertificate"] = lambda p: {"status": "Accepted"}
    await tls_station(csms201, make_station201, tmp_path, pki, profile=3, ctx=profile3_context(pki, ca, required=True))
    req = await csms201.expect("SignCertificate", timeout=20, since=0)
    assert req["certificateType"] == "ChargingStationCertificate"
    r = await csms201.call("CertificateSigned", {"certificateChain": sign_csr(req["csr"], ca, ca_key, days=365)})
    assert r == {"status": "Accepted"}
    await asyncio.wait_for(csms201.connected.wait(), 30)
    await csms201.no_call("SignCertificate", 120)
    assert len(csms201.calls("SignCertificate")) == 1


async def test_A03_expiry_checked_again_later(csms201, make_station201, tmp_path, monkeypatch):
    """30 days and 30 minutes left at the boot: not renewed yet; at the next check (every hour
    here, a day in the station) less than 30 days are left and the station asks."""
    from station.ocpp201.handlers import security

    monkeypatch.setattr(security, "EXPIRY_CHECK_S", 3_600)
    pki = make_pki(tmp_path / "pki")
    ca, ca_key = make_ca("CPO Sub CA")
    store = CertificateStore(tmp_path / "state" / "security")
    chain = sign_csr(store.new_csr("CS201", ""), ca, ca_key, days=30 + 35 / 1440)  # valid from 5 minutes ago
    store.accept_signed(store.check_signed_chain(chain, datetime.now(UTC), 10000))
    await tls_station(csms201, make_station201, tmp_path, pki, profile=3, ctx=profile3_context(pki, ca, required=True))
    await csms201.no_call("SignCertificate", 3_000)
    await csms201.expect("SignCertificate", timeout=1_000)


async def test_TC_A_12_CS_update_v2g_certificate_success(csms201, make_station201, tmp_path):
    await plain_station(csms201, make_station201, tmp_path, profile=1)
    csms201.responders["SignCertificate"] = lambda p: {"status": "Accepted"}
    assert (await csms201.call("TriggerMessage", {"requestedMessage": "SignV2GCertificate"}))["status"] == "Accepted"
    req = await csms201.expect("SignCertificate")
    assert req["certificateType"] == "V2GCertificate"
    root, root_key = make_ca("V2G Root")
    sub = make_ca("CPO Sub CA", signer=(root, root_key))
    chain = sign_csr(req["csr"], *sub) + pem(sub[0])
    assert (await csms201.call("InstallCertificate", {"certificateType": "V2GRootCertificate", "certificate": pem(root)}))["status"] == "Accepted"
    r = await csms201.call("CertificateSigned", {"certificateChain": chain, "certificateType": "V2GCertificate"})
    assert r == {"status": "Accepted"}
    store = CertificateStore(tmp_path / "state" / "security")
    assert store.has_client_certificate("v2g") and not store.has_client_certificate()
    assert stat.S_IMODE(os.stat(store.folder / "v2g" / "key.pem").st_mode) == 0o600
    got = await csms201.call("GetInstalledCertificateIds", {"certificateType": ["V2GCertificateChain"]})
    leaf = x509.load_pem_x509_certificate(chain.encode())
    assert got == {"status": "Accepted", "certificateHashDataChain": [{
        "certificateType": "V2GCertificateChain", "certificateHashData": hash_data(leaf, sub[0]).as_ocpp(),
        "childCertificateHashData": [hash_data(sub[0], root).as_ocpp()]}]}
    await asyncio.sleep(3)
    assert csms201.connections == 1  # a V2G certificate is no reason to reconnect
    # a ChargingStationCertificate for the V2G request's key: no CSR of that kind is pending
    r = await csms201.call("CertificateSigned", {"certificateChain": chain, "certificateType": "ChargingStationCertificate"})
    assert r["status"] == "Rejected"


async def test_TC_A_13_CS_update_combined_certificate_success(csms201, make_station201, tmp_path):
    await plain_station(csms201, make_station201, tmp_path, profile=1)
    csms201.responders["SignCertificate"] = lambda p: {"status": "Accepted"}
    assert (await csms201.call("TriggerMessage", {"requestedMessage": "SignCombinedCertificate"}))["status"] == "Accepted"
    req = await csms201.expect("SignCertificate")
    assert "certificateType" not in req  # one certificate for both uses
    ca, ca_key = make_ca("CPO Sub CA")
    chain = sign_csr(req["csr"], ca, ca_key)
    assert (await csms201.call("CertificateSigned", {"certificateChain": chain}))["status"] == "Accepted"
    store = CertificateStore(tmp_path / "state" / "security")
    leaf = x509.load_pem_x509_certificate(chain.encode())
    assert store.client_certificate() == leaf and store.client_certificate("v2g") == leaf
    assert await get_variable(csms201, "SecurityCtrlr", "CertificateEntries") == "2"


async def test_setting_system_time_when_the_wall_clock_jumps_201(csms201, booted201):
    """A04: the system time is changed (by hand, NTP): SecurityEventNotification SettingSystemTime."""
    import asyncio as _asyncio
    from datetime import timedelta as _timedelta

    await booted201()
    _asyncio.get_running_loop().wall_start += _timedelta(minutes=15)
    await csms201.expect("SecurityEventNotification", lambda p: p["type"] == "SettingSystemTime", timeout=30)


async def test_profile_3_client_certificate_rejected_by_the_csms(csms201, make_station201, tmp_path):
    """The CSMS does not accept the station's client certificate (issued by a CA it does not
    trust): no session, the link names the TLS failure, and it keeps trying; once the CSMS trusts
    that CA the station connects and boots."""
    pki = make_pki(tmp_path / "pki")
    ca, ca_key = make_ca("CPO Sub CA")
    other_ca, _ = make_ca("Another CA")
    provision_client_certificate(tmp_path, ca, ca_key)
    sp = await tls_station(csms201, make_station201, tmp_path, pki, profile=3,
                           ctx=profile3_context(pki, other_ca, required=True), boot=False)
    await asyncio.sleep(20)
    assert not csms201.calls("BootNotification")
    status = await sp.status()
    assert status["connected"] is False and status["last_error"]
    await restart_tls(csms201, profile3_context(pki, ca, required=True))
    await csms201.expect("BootNotification", timeout=120, since=0)

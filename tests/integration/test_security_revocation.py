"""Security extension: RevokedCertificate by CRL (station/revocation.py) for SignedUpdateFirmware and
CertificateSigned, and a CertificateSigned chain checked up to an installed root. In process on
virtual time; the CRLs are served by the loopback HTTP server, certificates and CRLs made here."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.integration.harness import ScriptedCsms, now_iso
from tests.integration.test_octt16_security import fw_statuses, security_events, signed_firmware
from tests.tls import make_ca, pem, sign_csr
from tests.transfer_servers import HttpFileServer


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)])


def cert_with_crl(cn: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], crl_url: str,
                  key: ec.EllipticCurvePrivateKey | None = None, ca: bool = False,
                  ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate issued by ``issuer`` naming ``crl_url`` in its CRL Distribution Points."""
    now = datetime.now(UTC) - timedelta(minutes=5)
    key = key or ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer[0].subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(crl_url)], relative_name=None, reasons=None, crl_issuer=None)]),
            critical=False)
        .sign(issuer[1], hashes.SHA256())
    )
    return cert, key


def make_crl(issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], serials: list[int]) -> bytes:
    now = datetime.now(UTC) - timedelta(minutes=5)
    b = (x509.CertificateRevocationListBuilder().issuer_name(issuer[0].subject)
         .last_update(now).next_update(now + timedelta(days=1)))
    for s in serials:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(s).revocation_date(now).build())
    return b.sign(issuer[1], hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def security_log(sp) -> list[dict]:  # noqa: ANN001
    path = sp.state_dir / "security" / "security-log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def signed_update_with_crl(csms: ScriptedCsms, booted, crl: str):  # noqa: ANN001, ANN201
    """Manufacturer root installed; the signing certificate names a CRL; ``crl``: "revoked" (it
    lists the signing certificate), "good" (it lists another serial) or "missing" (404)."""
    sp = await booted()
    server = await HttpFileServer().start()
    root = make_ca("Manufacturer Root")
    signing = cert_with_crl("Firmware Signing", root, server.url("/root.crl"))
    if crl != "missing":
        server.files["/root.crl"] = make_crl(root, [signing[0].serial_number if crl == "revoked" else 12345])
    r = await csms.call("InstallCertificate", {"certificateType": "ManufacturerRootCertificate", "certificate": pem(root[0])})
    assert r["status"] == "Accepted"
    data, signature = signed_firmware("2.0.0", signing[1])
    server.files["/fw.pkg"] = data
    req = {"requestId": 7, "firmware": {"location": server.url("/fw.pkg"), "retrieveDateTime": now_iso(),
                                        "signingCertificate": pem(signing[0]), "signature": signature}}
    return sp, await csms.call("SignedUpdateFirmware", req), server


async def test_TC_080_signed_update_firmware_with_a_revoked_signing_certificate(csms, booted):
    sp, answer, server = await signed_update_with_crl(csms, booted, "revoked")
    try:
        assert answer == {"status": "RevokedCertificate"}
        ev = await csms.expect("SecurityEventNotification", lambda p: p["type"] == "InvalidFirmwareSigningCertificate")
        assert "revoked" in ev["techInfo"]
        await csms.no_call("SignedFirmwareStatusNotification", 30)
        assert server.requests == [("GET", "/root.crl")]  # the firmware is not even downloaded
        assert len(csms.calls("BootNotification")) == 1  # nothing installed, no restart
    finally:
        await server.close()


async def test_TC_080_signed_update_firmware_with_a_signing_certificate_not_revoked(csms, booted):
    sp, answer, server = await signed_update_with_crl(csms, booted, "good")
    try:
        assert answer == {"status": "Accepted"}
        boot = await csms.expect("BootNotification", timeout=60)
        assert boot["firmwareVersion"] == "2.0.0"
        await csms.expect("SignedFirmwareStatusNotification", lambda p: p["status"] == "Installed", timeout=20)
        assert fw_statuses(csms) == ["Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallRebooting",
                                     "Installed"]
        assert server.requests[0] == ("GET", "/root.crl")
        assert not security_events(csms, "InvalidFirmwareSigningCertificate")
        assert not [r for r in security_log(sp) if r["type"] == "RevocationCheckFailed"]
    finally:
        await server.close()


async def test_TC_080_signed_update_firmware_whose_crl_cannot_be_fetched_is_a_soft_fail(csms, booted):
    """The CRL server answers 404: the update goes on (logged, a security log entry that is not
    sent to the CSMS)."""
    sp, answer, server = await signed_update_with_crl(csms, booted, "missing")
    try:
        assert answer == {"status": "Accepted"}
        await csms.expect("SignedFirmwareStatusNotification", lambda p: p["status"] == "Installed", timeout=60)
        entries = [r for r in security_log(sp) if r["type"] == "RevocationCheckFailed"]
        assert len(entries) == 1 and "HTTP 404" in entries[0]["techInfo"]
        assert "revocation not checked" in sp.log()
        assert not security_events(csms, "RevocationCheckFailed")
        assert not security_events(csms, "InvalidFirmwareSigningCertificate")
    finally:
        await server.close()


# -- CertificateSigned -------------------------------------------------------------------------------
async def requested_csr(csms: ScriptedCsms) -> str:
    csms.responders["SignCertificate"] = lambda p: {"status": "Accepted"}
    assert (await csms.call("ExtendedTriggerMessage", {"requestedMessage": "SignChargePointCertificate"}))["status"] == "Accepted"
    return (await csms.expect("SignCertificate"))["csr"]


def sign_with_crl(csr_pem: str, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], crl_url: str) -> x509.Certificate:
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    now = datetime.now(UTC) - timedelta(minutes=5)
    return (
        x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca[0].subject).public_key(csr.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(crl_url)], relative_name=None, reasons=None, crl_issuer=None)]),
            critical=False)
        .sign(ca[1], hashes.SHA256())
    )


async def test_certificate_signed_chain_checked_up_to_the_installed_central_system_root(csms, booted):
    """A chain whose sub-CA claims the installed root as issuer but is signed by another key:
    Rejected (InvalidChargePointCertificate); signed by the installed root: Accepted."""
    await booted()
    root = make_ca("CPO Root")
    r = await csms.call("InstallCertificate", {"certificateType": "CentralSystemRootCertificate", "certificate": pem(root[0])})
    assert r["status"] == "Accepted"
    impostor = (root[0], ec.generate_private_key(ec.SECP256R1()))  # the root's name, another key
    forged_sub = make_ca("CPO Sub CA", signer=impostor)
    csr = await requested_csr(csms)
    chain = sign_csr(csr, *forged_sub) + pem(forged_sub[0])
    assert (await csms.call("CertificateSigned", {"certificateChain": chain})) == {"status": "Rejected"}
    ev = await csms.expect("SecurityEventNotification", lambda p: p["type"] == "InvalidChargePointCertificate")
    assert "installed root" in ev["techInfo"]
    sub = make_ca("CPO Sub CA", signer=root)
    chain = sign_csr(csr, *sub) + pem(sub[0])
    assert (await csms.call("CertificateSigned", {"certificateChain": chain})) == {"status": "Accepted"}


async def test_certificate_signed_chain_of_no_installed_root_is_accepted_as_before(csms, booted):
    await booted()
    r = await csms.call("InstallCertificate", {"certificateType": "CentralSystemRootCertificate",
                                               "certificate": pem(make_ca("Another CPO Root")[0])})
    assert r["status"] == "Accepted"
    sub = make_ca("CPO Sub CA", signer=make_ca("CPO Root"))
    chain = sign_csr(await requested_csr(csms), *sub) + pem(sub[0])
    assert (await csms.call("CertificateSigned", {"certificateChain": chain})) == {"status": "Accepted"}


async def test_certificate_signed_with_a_revoked_charge_point_certificate(csms, booted):
    await booted()
    server = await HttpFileServer().start()
    try:
        sub = make_ca("CPO Sub CA")
        csr = await requested_csr(csms)
        leaf = sign_with_crl(csr, sub, server.url("/sub.crl"))
        server.files["/sub.crl"] = make_crl(sub, [leaf.serial_number])
        chain = pem(leaf) + pem(sub[0])
        assert (await csms.call("CertificateSigned", {"certificateChain": chain})) == {"status": "Rejected"}
        ev = await csms.expect("SecurityEventNotification", lambda p: p["type"] == "InvalidChargePointCertificate")
        assert "revoked" in ev["techInfo"]
        leaf = sign_with_crl(csr, sub, server.url("/sub.crl"))  # a new serial, not listed
        chain = pem(leaf) + pem(sub[0])
        assert (await csms.call("CertificateSigned", {"certificateChain": chain})) == {"status": "Accepted"}
    finally:
        await server.close()


async def test_TC_080_signed_update_firmware_whose_crl_server_does_not_answer_is_answered_in_time(csms, booted):
    """A CRL server that answers after a minute: the answer comes after the CRL timeout (5 s), well
    within the CSMS's call timeout; a soft fail (Accepted, the security log says why)."""
    sp = await booted()
    server = await HttpFileServer(delay=60).start()
    try:
        root = make_ca("Manufacturer Root")
        signing = cert_with_crl("Firmware Signing", root, server.url("/root.crl"))
        server.files["/root.crl"] = make_crl(root, [signing[0].serial_number])
        r = await csms.call("InstallCertificate", {"certificateType": "ManufacturerRootCertificate", "certificate": pem(root[0])})
        assert r["status"] == "Accepted"
        data, signature = signed_firmware("2.0.0", signing[1])
        req = {"requestId": 8, "firmware": {"location": "http://127.0.0.1:1/fw.pkg", "retrieveDateTime": now_iso(),
                                            "signingCertificate": pem(signing[0]), "signature": signature}}
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert (await csms.call("SignedUpdateFirmware", req, timeout=30)) == {"status": "Accepted"}
        assert 4 <= loop.time() - t0 <= 8
        entries = [r for r in security_log(sp) if r["type"] == "RevocationCheckFailed"]
        assert len(entries) == 1 and "timed out" in entries[0]["techInfo"]
    finally:
        await server.close()


async def test_certificate_signed_with_a_revoked_sub_ca_in_the_chain(csms, booted):
    """Every certificate of the chain is checked: a leaf that is not revoked, issued by a sub-CA
    that its root's CRL lists, is Rejected (InvalidChargePointCertificate); the same chain under a
    sub-CA the CRL does not list is Accepted."""
    await booted()
    server = await HttpFileServer().start()
    try:
        root = make_ca("CPO Root")
        r = await csms.call("InstallCertificate", {"certificateType": "CentralSystemRootCertificate",
                                                   "certificate": pem(root[0])})
        assert r["status"] == "Accepted"
        revoked_sub = cert_with_crl("CPO Sub CA", root, server.url("/root.crl"), ca=True)
        server.files["/root.crl"] = make_crl(root, [revoked_sub[0].serial_number])
        csr = await requested_csr(csms)
        leaf = sign_with_crl(csr, revoked_sub, server.url("/sub.crl"))
        server.files["/sub.crl"] = make_crl(revoked_sub, [])  # the leaf itself is not listed
        chain = pem(leaf) + pem(revoked_sub[0])
        assert (await csms.call("CertificateSigned", {"certificateChain": chain})) == {"status": "Rejected"}
        ev = await csms.expect("SecurityEventNotification", lambda p: p["type"] == "InvalidChargePointCertificate")
        assert "revoked" in ev["techInfo"]
        good_sub = cert_with_crl("CPO Sub CA", root, server.url("/root.crl"), ca=True)
        leaf = sign_with_crl(csr, good_sub, server.url("/good-sub.crl"))
        server.files["/good-sub.crl"] = make_crl(good_sub, [])
        chain = pem(leaf) + pem(good_sub[0])
        assert (await csms.call("CertificateSigned", {"certificateChain": chain})) == {"status": "Accepted"}
    finally:
        await server.close()

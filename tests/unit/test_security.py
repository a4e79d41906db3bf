"""station/security.py: the certificate store (roots, the charge point's key and chain), the checks
of a signed chain, hash data, file modes, and the TLS client context; the SecurityProfile key's
writer in ConfigurationKeys; profile 3 accepted by the config check."""

from __future__ import annotations

import hashlib
import os
import ssl
import stat
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from station.config import parse
from station.ocpp16.config_keys import ConfigurationKeys
from station.security import (
    CSMS_ROOT,
    MANUFACTURER_ROOT,
    CertificateProblem,
    CertificateStore,
    HashData,
    client_context,
    hash_data,
    write_private,
)
from station.store import Store
from tests.tls import make_ca, make_pki, pem, sign_csr

NOW = datetime.now(UTC)


@pytest.fixture
def store(tmp_path):
    return CertificateStore(tmp_path / "security")


def test_store_folder_and_private_keys_are_owner_only(store, tmp_path):
    store.new_csr("CP1", "CPO")
    assert stat.S_IMODE(os.stat(store.folder).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(store.pending_key_file).st_mode) == 0o600
    secret = tmp_path / "x" / "secret.pem"
    write_private(secret, b"k")
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600 and secret.read_bytes() == b"k"
    assert [p.name for p in secret.parent.iterdir()] == ["secret.pem"]  # no temporary file left


def test_csr_carries_cpo_name_and_serial_and_its_signed_chain_is_accepted(store):
    csr_pem = store.new_csr("SERIAL-1", "My CPO")
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert csr.is_signature_valid and csr.subject.rfc4514_string() == "CN=SERIAL-1,O=My CPO"
    ca, key = make_ca("Sub CA")
    chain = sign_csr(csr_pem, ca, key) + pem(ca)  # leaf, then its issuer
    certs = store.check_signed_chain(chain, NOW, 10000)
    store.accept_signed(certs)
    assert store.has_client_certificate() and not store.pending_key_file.exists()
    assert stat.S_IMODE(os.stat(store.key_file).st_mode) == 0o600
    assert store.client_certificate().subject == csr.subject


@pytest.mark.parametrize("case", ["too_big", "expired", "not_yet", "wrong_key", "broken_chain", "no_pending", "junk"])
def test_signed_chain_problems(store, tmp_path, case):
    ca, key = make_ca("Sub CA")
    other_ca, _ = make_ca("Other CA")
    csr = store.new_csr("CP1", "")
    chain = sign_csr(csr, ca, key)
    size = 10000
    if case == "too_big":
        size = len(chain) - 1
    elif case == "expired":
        chain = sign_csr(csr, ca, key, days=1, start=NOW - timedelta(days=3))
    elif case == "not_yet":
        chain = sign_csr(csr, ca, key, start=NOW + timedelta(days=1))
    elif case == "wrong_key":
        chain = sign_csr(CertificateStore(tmp_path / "other").new_csr("CP1", ""), ca, key)
    elif case == "broken_chain":
        chain = chain + pem(other_ca)
    elif case == "no_pending":
        store.pending_key_file.unlink()
    elif case == "junk":
        chain = "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"
    with pytest.raises(CertificateProblem):
        store.check_signed_chain(chain, NOW, size)
    assert not store.has_client_certificate()


def test_hash_data_of_a_root_is_ocsp_style(store):
    ca, _ = make_ca("Root")
    h = hash_data(ca)
    assert h.issuer_name_hash == hashlib.sha256(ca.subject.public_bytes()).hexdigest()
    point = ca.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert h.issuer_key_hash == hashlib.sha256(point).hexdigest()
    assert h.serial_number == format(ca.serial_number, "x")
    assert HashData.from_ocpp(h.as_ocpp()) == h


def test_install_find_and_count(store):
    one, _ = make_ca("One")
    two, _ = make_ca("Two")
    store.install_root(CSMS_ROOT, pem(one), NOW, 20)
    store.install_root(CSMS_ROOT, pem(one), NOW, 20)  # again: no second copy
    store.install_root(MANUFACTURER_ROOT, pem(two), NOW, 20)
    assert store.count() == 2
    assert store.installed(CSMS_ROOT) == [hash_data(one)]
    assert store.find(hash_data(two))[0] == MANUFACTURER_ROOT
    assert store.find(HashData("00", "00", "1")) is None
    with pytest.raises(CertificateProblem, match="full"):
        store.install_root(CSMS_ROOT, pem(make_ca("Three")[0]), NOW, 2)


def test_install_rejects_what_is_no_usable_root(store, tmp_path):
    pki = make_pki(tmp_path / "pki")
    leaf = pki.cert_file.read_text()
    with pytest.raises(CertificateProblem, match="CA"):
        store.install_root(CSMS_ROOT, leaf, NOW, 20)
    ca, _ = make_ca("Root")
    with pytest.raises(CertificateProblem, match="expired"):
        store.install_root(CSMS_ROOT, pem(ca), NOW + timedelta(days=3), 20)
    with pytest.raises(CertificateProblem):
        store.install_root("ChargePointCertificate", pem(ca), NOW, 20)
    with pytest.raises(CertificateProblem, match="one certificate"):
        store.install_root(CSMS_ROOT, pem(ca) + pem(ca), NOW, 20)
    assert store.count() == 0


def test_additional_root_certificate_check(store):
    """A new CSMS root must be signed by the installed one, which it then replaces."""
    old = make_ca("Old Root")
    store.install_root(CSMS_ROOT, pem(old[0]), NOW, 20, additional_check=True)
    stranger, _ = make_ca("Stranger")
    with pytest.raises(CertificateProblem, match="AdditionalRootCertificateCheck"):
        store.install_root(CSMS_ROOT, pem(stranger), NOW, 20, additional_check=True)
    new, _ = make_ca("New Root", signer=old)
    store.install_root(CSMS_ROOT, pem(new), NOW, 20, additional_check=True)
    assert [c.subject for c in store.roots(CSMS_ROOT)] == [new.subject]


def test_client_context_trusts_installed_roots_and_presents_the_certificate(store, tmp_path):
    pki = make_pki(tmp_path / "pki")
    assert client_context(store, None, False).verify_mode == ssl.CERT_REQUIRED  # the system's CAs
    store.install_root(CSMS_ROOT, pki.ca_file.read_text(), NOW, 20)
    ctx = client_context(store, None, client_certificate=True)  # none installed yet: no client cert, no error
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2 and ctx.check_hostname
    assert len(ctx.get_ca_certs()) == 1
    ca, key = make_ca("Sub CA")
    store.accept_signed(store.check_signed_chain(sign_csr(store.new_csr("CP1", ""), ca, key), NOW, 10000))
    client_context(store, str(pki.ca_file), client_certificate=True)  # loads key and chain


def test_security_profile_writer_goes_through_its_owner(tmp_path):
    keys = ConfigurationKeys(Store(tmp_path / "s.sqlite"), 1, security_profile=1)
    assert keys.change("SecurityProfile", "2")[0] == "Rejected"  # read-only without a writer
    seen = []
    keys.writers["SecurityProfile"] = lambda v: (seen.append(v), ("Accepted", ""))[1]
    assert keys.change("securityprofile", "2") == ("Accepted", "")
    assert seen == ["2"]
    assert keys.report(["SecurityProfile"])[0][0]["readonly"] is False
    keys.store.close()


def test_profile_3_is_accepted_by_the_config_check():
    cfg = parse({"station": {"security_profile": 3, "csms_url": "wss://c/ocpp"}})
    assert cfg.security_profile == 3


def test_firmware_signing_certificate_and_signature(store):
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from station.security import check_signing_certificate, firmware_signature_ok

    root = make_ca("Manufacturer Root")
    signing = make_ca("Signing", signer=root)
    with pytest.raises(CertificateProblem, match="no ManufacturerRootCertificate"):
        check_signing_certificate(store, pem(signing[0]), NOW)
    store.install_root(MANUFACTURER_ROOT, pem(root[0]), NOW, 20)
    cert = check_signing_certificate(store, pem(signing[0]), NOW)
    with pytest.raises(CertificateProblem, match="not issued"):
        check_signing_certificate(store, pem(make_ca("Stranger")[0]), NOW)
    with pytest.raises(CertificateProblem, match="expired"):
        check_signing_certificate(store, pem(signing[0]), NOW + timedelta(days=3))
    data = b"firmware image"
    good = base64.b64encode(signing[1].sign(data, ec.ECDSA(hashes.SHA256()))).decode()
    assert firmware_signature_ok(cert, good, data)
    assert not firmware_signature_ok(cert, good, data + b"!")
    assert not firmware_signature_ok(cert, "not base64!", data)
    other = base64.b64encode(make_ca("x")[1].sign(data, ec.ECDSA(hashes.SHA256()))).decode()
    assert not firmware_signature_ok(cert, other, data)


@pytest.mark.parametrize(("value", "problem"), [("ws://c/ocpp", "must be a wss:// URL"), ("wss://c:0x/ocpp", "port")])
def test_csms_url_tls_must_be_a_wss_url(value, problem):
    from station.config import ConfigError

    with pytest.raises(ConfigError, match=problem):
        parse({"station": {"security_profile": 1, "csms_url": "ws://c/ocpp", "csms_url_tls": value}})
    cfg = parse({"station": {"security_profile": 1, "csms_url": "ws://c/ocpp", "csms_url_tls": "wss://c:8443/ocpp"}})
    assert cfg.csms_url_tls == "wss://c:8443/ocpp"


@pytest.mark.parametrize("algorithm", ["SHA256", "SHA384", "SHA512"])
def test_a_certificate_is_found_by_the_hash_algorithm_the_csms_uses(store, algorithm):
    ca, _ = make_ca("Root")
    store.install_root(CSMS_ROOT, pem(ca), NOW, 20)
    wanted = hash_data(ca, algorithm=algorithm)
    assert len(wanted.issuer_name_hash) == {"SHA256": 64, "SHA384": 96, "SHA512": 128}[algorithm]
    assert store.find(HashData.from_ocpp(wanted.as_ocpp()))[0] == CSMS_ROOT

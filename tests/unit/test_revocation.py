"""station/revocation.py: CRL Distribution Point URLs and a certificate's status by a CRL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from station.revocation import check_revocation, crl_status, crl_urls, issuer_among
from tests.integration.test_security_revocation import cert_with_crl, make_crl
from tests.tls import make_ca

NOW = datetime.now(UTC)


def stale_crl(issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], serials: list[int]) -> bytes:
    b = (x509.CertificateRevocationListBuilder().issuer_name(issuer[0].subject)
         .last_update(NOW - timedelta(days=3)).next_update(NOW - timedelta(days=1)))
    for s in serials:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(s).revocation_date(NOW - timedelta(days=3)).build())
    return b.sign(issuer[1], hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def test_crl_urls_only_http_and_https():
    root = make_ca("Root")
    assert crl_urls(root[0]) == []
    cert, _ = cert_with_crl("Leaf", root, "ftp://127.0.0.1/x.crl")
    assert crl_urls(cert) == []
    cert, _ = cert_with_crl("Leaf", root, "http://127.0.0.1/x.crl")
    assert crl_urls(cert) == ["http://127.0.0.1/x.crl"]


def test_crl_status_listed_not_listed_forged_stale_and_garbage():
    root = make_ca("Root")
    cert, _ = cert_with_crl("Leaf", root, "http://127.0.0.1/x.crl")
    assert crl_status(make_crl(root, [cert.serial_number]), cert, root[0], NOW).status == "revoked"
    assert crl_status(make_crl(root, [1]), cert, root[0], NOW).status == "good"
    forged = (root[0], ec.generate_private_key(ec.SECP256R1()))  # the root's name, another key
    assert crl_status(make_crl(forged, [1]), cert, root[0], NOW).status == "unknown"
    assert crl_status(make_crl(forged, [cert.serial_number]), cert, root[0], NOW).status == "unknown"
    assert crl_status(stale_crl(root, [cert.serial_number]), cert, root[0], NOW).status == "revoked"  # PEM, stale
    stale = crl_status(stale_crl(root, [1]), cert, root[0], NOW)
    assert stale.status == "unknown" and "out of date" in stale.reason
    assert crl_status(b"not a crl", cert, root[0], NOW).status == "unknown"


def test_issuer_among():
    root, other = make_ca("Root"), make_ca("Other")
    cert, _ = cert_with_crl("Leaf", root, "http://127.0.0.1/x.crl")
    assert issuer_among(cert, [other[0], root[0]]) == root[0]
    assert issuer_among(cert, [other[0]]) is None
    assert issuer_among(root[0], [root[0]]) == root[0]


def test_check_revocation_without_crl_or_issuer_and_unreachable():
    root = make_ca("Root")
    cert, _ = cert_with_crl("Leaf", root, "http://127.0.0.1:1/x.crl")
    assert asyncio.run(check_revocation(root[0], root[0], NOW)).status == "no_crl"
    assert asyncio.run(check_revocation(cert, None, NOW)).status == "unknown"
    r = asyncio.run(check_revocation(cert, root[0], NOW, timeout=5))
    assert r.status == "unknown" and "not fetched" in r.reason


def test_signed_chain_checked_up_to_an_installed_root(tmp_path):
    """station/security.py's CertificateStore.check_signed_chain: a root of the top certificate's
    issuer name is installed: its signature is required; the root itself in the chain is fine;
    no root of that name: not checked."""
    import pytest

    from station.security import CSMS_ROOT, MANUFACTURER_ROOT, CertificateProblem, CertificateStore
    from tests.tls import pem, sign_csr

    store = CertificateStore(tmp_path / "security")
    root = make_ca("CPO Root")
    store.install_root(CSMS_ROOT, pem(root[0]), NOW, 10)
    sub = make_ca("Sub CA", signer=root)
    forged = make_ca("Sub CA", signer=(root[0], ec.generate_private_key(ec.SECP256R1())))
    stranger = make_ca("Sub CA", signer=make_ca("Another Root"))
    csr = store.new_csr("CP1", "")
    assert len(store.check_signed_chain(sign_csr(csr, *sub) + pem(sub[0]), NOW, 0)) == 2
    assert len(store.check_signed_chain(sign_csr(csr, *sub) + pem(sub[0]) + pem(root[0]), NOW, 0)) == 3
    assert len(store.check_signed_chain(sign_csr(csr, *stranger) + pem(stranger[0]), NOW, 0)) == 2
    with pytest.raises(CertificateProblem, match="installed root"):
        store.check_signed_chain(sign_csr(csr, *forged) + pem(forged[0]), NOW, 0)
    direct = sign_csr(csr, *root)  # the leaf alone, issued by the root
    assert len(store.check_signed_chain(direct, NOW, 0)) == 1
    mroot = make_ca("Manufacturer Root")
    store.install_root(MANUFACTURER_ROOT, pem(mroot[0]), NOW, 10)
    with pytest.raises(CertificateProblem, match="installed root"):
        store.check_signed_chain(sign_csr(csr, mroot[0], ec.generate_private_key(ec.SECP256R1())), NOW, 0)

"""Certificate revocation by CRL (security whitepaper: RevokedCertificate), version independent.

``check_revocation`` looks at a certificate's CRL Distribution Points extension; for the first
http(s) URL it downloads the CRL with station/transfer.py (at most ``CRL_MAX_BYTES``, within
``CRL_TIMEOUT_S``), checks that the CRL is issued and signed by the certificate's issuer (for a
firmware signing certificate: the installed ManufacturerRootCertificate that issued it) and looks
the certificate's serial number up in it.

The answer is a ``Revocation``: ``revoked`` (listed), ``good`` (a valid, current CRL does not list
it), ``no_crl`` (the certificate names no http(s) CRL: nothing to check) or ``unknown`` (the CRL
could not be fetched, is not signed by the issuer, or is out of date). ``unknown`` is a soft fail:
the caller goes on, logs it and keeps a security log entry (a station often reaches only its CSMS;
refusing every update while a CRL server is down would leave known-vulnerable firmware in place,
and the certificate still has to chain to an installed root). No OCSP.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from station.security import issued_by
from station.transfer import TransferError, download

CRL_MAX_BYTES = 1024 * 1024
CRL_TIMEOUT_S = 5.0  # the answer waits for it: well within a CSMS's call timeout


@dataclass(frozen=True)
class Revocation:
    status: str  # "revoked", "good", "no_crl" or "unknown"
    reason: str = ""


def crl_urls(cert: x509.Certificate) -> list[str]:
    """The http(s) URLs of the certificate's CRL Distribution Points, in order."""
    try:
        points = cert.extensions.get_extension_for_oid(ExtensionOID.CRL_DISTRIBUTION_POINTS).value
    except x509.ExtensionNotFound:
        return []
    out = []
    for point in points:
        for name in point.full_name or []:
            if isinstance(name, x509.UniformResourceIdentifier) and name.value.lower().startswith(("http://", "https://")):
                out.append(name.value)
    return out


def issuer_among(cert: x509.Certificate, candidates: list[x509.Certificate]) -> x509.Certificate | None:
    """The candidate that issued ``cert`` (``cert`` itself when it is one of them)."""
    for c in candidates:
        if c == cert or issued_by(cert, c):
            return c
    return None


def crl_status(crl_data: bytes, cert: x509.Certificate, issuer: x509.Certificate, now: datetime) -> Revocation:
    """The certificate's status by a downloaded CRL (DER or PEM); pure."""
    try:
        crl = (x509.load_pem_x509_crl(crl_data) if crl_data.lstrip().startswith(b"-----")
               else x509.load_der_x509_crl(crl_data))
    except ValueError:
        return Revocation("unknown", "the CRL is not a DER or PEM certificate revocation list")
    if crl.issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
        return Revocation("unknown", "the CRL is not signed by the certificate's issuer")
    if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
        return Revocation("revoked", f"serial {cert.serial_number:x} is listed in the CRL of {issuer.subject.rfc4514_string()}")
    next_update = crl.next_update_utc
    if next_update is not None and now > next_update:
        return Revocation("unknown", f"the CRL is out of date (next update was {next_update.isoformat()})")
    return Revocation("good")


async def check_revocation(cert: x509.Certificate, issuer: x509.Certificate | None, now: datetime, *,
                           ssl_context: ssl.SSLContext | None = None, timeout: float = CRL_TIMEOUT_S,
                           max_bytes: int = CRL_MAX_BYTES) -> Revocation:
    """Download the certificate's CRL and check it (see the module docstring); never raises."""
    urls = crl_urls(cert)
    if not urls:
        return Revocation("no_crl")
    if issuer is None:
        return Revocation("unknown", "the issuer of the certificate is not known: its CRL cannot be checked")
    try:
        data = await download(urls[0], timeout=timeout, max_bytes=max_bytes, ssl_context=ssl_context)
    except TransferError as e:
        return Revocation("unknown", f"CRL not fetched: {e}")
    return crl_status(data, cert, issuer, now)

"""Security whitepaper (OCPP 1.6 edition 3) cryptography: the station's certificate store, its key
pair and certificate signing request, the checks of a signed chain, and the TLS contexts of
security profiles 2 and 3. Version independent (the 2.0.1 adapter uses it as it is).

The store is a folder of the state directory (``<state>/security``, mode 0700):

- ``roots/<CertificateType>/<sha256 of the DER>.pem``: installed root certificates
  (``CentralSystemRootCertificate``, ``ManufacturerRootCertificate``; 2.0.1 also
  ``V2GRootCertificate``, ``MORootCertificate``)
- ``cp/key.pem`` + ``cp/chain.pem``: the charge point's private key and its signed certificate
  chain (leaf first), used as the TLS client certificate of profile 3
- ``cp/pending-key.pem``: the key of the last CSR, until its signed certificate arrives
- ``v2g/``: the same for the 2.0.1 V2G certificate (ISO 15118)

Private keys are written with mode 0600 (created so, never widened), atomically (a temporary file
then a rename), and never logged or put in an exception text. Certificates are PEM.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from station.core.clock import parse_iso

CSMS_ROOT = "CentralSystemRootCertificate"
MANUFACTURER_ROOT = "ManufacturerRootCertificate"
V2G_ROOT = "V2GRootCertificate"  # 2.0.1 only (ISO 15118)
MO_ROOT = "MORootCertificate"  # 2.0.1 only (ISO 15118)
ROOT_TYPES = (CSMS_ROOT, MANUFACTURER_ROOT, V2G_ROOT, MO_ROOT)
CP_CERT = "ChargePointCertificate"
CP, V2G = "cp", "v2g"  # the station's own certificates: charge point (TLS client) and V2G (2.0.1, ISO 15118)
LEAF_USES = (CP, V2G)


class CertificateProblem(ValueError):
    """A certificate or chain that cannot be used; ``str()`` says why (no key material in it)."""


@dataclass(frozen=True)
class HashData:
    """CertificateHashDataType: identifies an installed certificate (SHA256, as OCSP does)."""

    issuer_name_hash: str
    issuer_key_hash: str
    serial_number: str
    hash_algorithm: str = "SHA256"

    def as_ocpp(self) -> dict:
        return {"hashAlgorithm": self.hash_algorithm, "issuerNameHash": self.issuer_name_hash,
                "issuerKeyHash": self.issuer_key_hash, "serialNumber": self.serial_number}

    @staticmethod
    def from_ocpp(d: dict) -> HashData:
        return HashData(str(d.get("issuerNameHash", "")).lower(), str(d.get("issuerKeyHash", "")).lower(),
                        str(d.get("serialNumber", "")).lower().lstrip("0") or "0", str(d.get("hashAlgorithm", "")))


def parse_chain(pem: str) -> list[x509.Certificate]:
    """The certificates of a PEM text, in order; CertificateProblem if there is none or one is broken."""
    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise CertificateProblem("not a PEM certificate (chain)") from None
    if not certs:
        raise CertificateProblem("no certificate in the text")
    return certs


def check_valid_at(cert: x509.Certificate, now: datetime) -> None:
    if now < cert.not_valid_before_utc:
        raise CertificateProblem(f"certificate {_cn(cert)!r} is not valid before {cert.not_valid_before_utc.isoformat()}")
    if now > cert.not_valid_after_utc:
        raise CertificateProblem(f"certificate {_cn(cert)!r} expired on {cert.not_valid_after_utc.isoformat()}")


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """``cert`` names ``issuer`` as its issuer and carries its valid signature."""
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def public_key_bytes(key: object) -> bytes:
    """The subjectPublicKey BIT STRING content (what OCSP's issuerKeyHash hashes)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]


HASH_ALGORITHMS = {"SHA256": "sha256", "SHA384": "sha384", "SHA512": "sha512"}


def hash_data(cert: x509.Certificate, issuer: x509.Certificate | None = None, algorithm: str = "SHA256") -> HashData:
    """The certificate's hash data; ``issuer``: its issuer's certificate (itself when self-issued)."""
    issuer_key = (issuer or cert).public_key()
    h = HASH_ALGORITHMS.get(algorithm, "sha256")
    return HashData(hashlib.new(h, cert.issuer.public_bytes()).hexdigest(),
                    hashlib.new(h, public_key_bytes(issuer_key)).hexdigest(),
                    format(cert.serial_number, "x"), algorithm if algorithm in HASH_ALGORITHMS else "SHA256")


def _cn(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file: mode 0600 from its creation, atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # mkstemp creates it 0600
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(".tmp-" + path.name)
    tmp.write_bytes(data)
    os.replace(tmp, path)


class CertificateStore:
    """Installed roots and the charge point's own key and certificate, in ``folder``.

    ``folder`` may be a function making it (a station with its state in memory: a temporary
    directory, made only when a certificate is first looked at, so a fleet of thousands of
    stations makes none unless the CSMS manages certificates)."""

    def __init__(self, folder: Path | Callable[[], Path]) -> None:
        self._make: Callable[[], Path] | None = None
        self._folder: Path | None = None
        if callable(folder):
            self._make = folder
        else:
            self._open(Path(folder))

    def _open(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(folder, 0o700)
        self._folder = folder

    @property
    def folder(self) -> Path:
        if self._folder is None:
            assert self._make is not None
            self._open(Path(self._make()))
        assert self._folder is not None
        return self._folder

    # -- roots -------------------------------------------------------------------------------
    def _root_dir(self, kind: str) -> Path:
        if kind not in ROOT_TYPES:
            raise CertificateProblem(f"unknown certificate type {kind!r}")
        return self.folder / "roots" / kind

    def roots(self, kind: str) -> list[x509.Certificate]:
        folder = self._root_dir(kind)
        out = []
        for f in sorted(folder.glob("*.pem")) if folder.is_dir() else []:
            try:
                out.append(x509.load_pem_x509_certificate(f.read_bytes()))
            except ValueError:
                continue  # a damaged file is not trusted
        return out

    def count(self) -> int:
        return sum(len(self.roots(k)) for k in ROOT_TYPES)

    def install_root(self, kind: str, pem: str, now: datetime, max_count: int, additional_check: bool = False) -> None:
        """InstallCertificate: raises CertificateProblem (answer Rejected) or OSError (Failed).

        ``additional_check`` (AdditionalRootCertificateCheck): a new CentralSystemRootCertificate
        must be signed by the one installed, which it replaces."""
        certs = parse_chain(pem)
        if len(certs) != 1:
            raise CertificateProblem("one certificate expected")
        cert = certs[0]
        check_valid_at(cert, now)
        bc = _basic_constraints(cert)
        if bc is None or not bc.ca:
            raise CertificateProblem("not a CA certificate (basicConstraints CA:TRUE missing)")
        name = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest() + ".pem"
        target = self._root_dir(kind) / name
        if target.exists():
            return  # installed already: Accepted again
        replaced: list[Path] = []
        if additional_check and kind == CSMS_ROOT:
            current = self.roots(CSMS_ROOT)
            if current:
                if not any(issued_by(cert, old) for old in current):
                    raise CertificateProblem("AdditionalRootCertificateCheck: the new root is not signed by the installed one")
                replaced = [p for p in self._root_dir(kind).glob("*.pem")]
        if self.count() - len(replaced) >= max_count:
            raise CertificateProblem(f"certificate store full (CertificateStoreMaxLength {max_count})")
        write_public(target, _pem(cert))
        for p in replaced:
            p.unlink(missing_ok=True)

    def installed(self, kind: str) -> list[HashData]:
        """GetInstalledCertificateIds of one type."""
        certs = self.roots(kind)
        every = [c for k in ROOT_TYPES for c in self.roots(k)]
        return [hash_data(c, self._issuer_of(c, every)) for c in certs]

    @staticmethod
    def _issuer_of(cert: x509.Certificate, pool: list[x509.Certificate]) -> x509.Certificate | None:
        if cert.issuer == cert.subject:
            return cert
        return next((c for c in pool if c.subject == cert.issuer and issued_by(cert, c)), None)

    def find(self, wanted: HashData) -> tuple[str, Path] | None:
        every = [c for k in ROOT_TYPES for c in self.roots(k)]
        for kind in ROOT_TYPES:
            folder = self._root_dir(kind)
            for f in sorted(folder.glob("*.pem")) if folder.is_dir() else []:
                try:
                    cert = x509.load_pem_x509_certificate(f.read_bytes())
                except ValueError:
                    continue
                h = hash_data(cert, self._issuer_of(cert, every), wanted.hash_algorithm)
                if (h.issuer_name_hash, h.issuer_key_hash, h.serial_number) == (
                        wanted.issuer_name_hash, wanted.issuer_key_hash, wanted.serial_number):
                    return kind, f
        return None

    def csms_roots_pem(self) -> str:
        return "".join(_pem(c).decode() for c in self.roots(CSMS_ROOT))

    # -- the charge point's key and certificate ---------------------------------------------
    # ``use``: "cp", the charge point / charging station certificate (TLS client, profile 3), or
    # "v2g", the 2.0.1 V2G certificate (ISO 15118): each in its own folder, with its own pending key
    def _leaf(self, use: str, name: str) -> Path:
        if use not in LEAF_USES:
            raise CertificateProblem(f"unknown certificate use {use!r}")
        return self.folder / use / name

    @property
    def key_file(self) -> Path:
        return self._leaf(CP, "key.pem")

    @property
    def chain_file(self) -> Path:
        return self._leaf(CP, "chain.pem")

    @property
    def pending_key_file(self) -> Path:
        return self._leaf(CP, "pending-key.pem")

    def has_client_certificate(self, use: str = "cp") -> bool:
        return self._leaf(use, "key.pem").is_file() and self._leaf(use, "chain.pem").is_file()

    def client_chain(self, use: str = "cp") -> list[x509.Certificate]:
        """The installed chain of ``use`` (leaf first), [] if none or unreadable."""
        path = self._leaf(use, "chain.pem")
        if not path.is_file():
            return []
        try:
            return parse_chain(path.read_text())
        except CertificateProblem:
            return []

    def client_certificate(self, use: str = "cp") -> x509.Certificate | None:
        chain = self.client_chain(use)
        return chain[0] if chain else None

    def new_csr(self, common_name: str, organization: str, use: str = "cp") -> str:
        """A new key pair (EC P-256, kept as the pending key of ``use``, mode 0600) and its CSR in PEM."""
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64] or "charge point")]
        if organization:
            attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization[:64]))
        csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs)).sign(key, hashes.SHA256())
        write_private(self._leaf(use, "pending-key.pem"), key.private_bytes(serialization.Encoding.PEM,
                                                                            serialization.PrivateFormat.PKCS8,
                                                                            serialization.NoEncryption()))
        return csr.public_bytes(serialization.Encoding.PEM).decode()

    def check_signed_chain(self, chain_pem: str, now: datetime, max_size: int, use: str = "cp") -> list[x509.Certificate]:
        """CertificateSigned: the chain must fit ``max_size`` characters, be valid now, each
        certificate signed by the next, and its leaf must carry the pending key's public key.
        When an installed root names the top certificate's issuer, the top certificate must be
        signed by it too (``_check_up_to_root``). Returns the chain; CertificateProblem says what is wrong."""
        if max_size and len(chain_pem) > max_size:
            raise CertificateProblem(f"chain of {len(chain_pem)} characters exceeds CertificateSignedMaxChainSize {max_size}")
        certs = parse_chain(chain_pem)
        for c in certs:
            check_valid_at(c, now)
        for child, parent in zip(certs, certs[1:], strict=False):
            if not issued_by(child, parent):
                raise CertificateProblem(f"certificate {_cn(child)!r} is not signed by the next one in the chain")
        self._check_up_to_root(certs[-1], now)
        key = self._load_key(self._leaf(use, "pending-key.pem"))
        if key is None:
            raise CertificateProblem("no certificate signing request is pending")
        if public_key_bytes(certs[0].public_key()) != public_key_bytes(key.public_key()):
            raise CertificateProblem("the certificate does not carry the public key of the pending request")
        return certs

    def _check_up_to_root(self, top: x509.Certificate, now: datetime) -> None:
        """The chain's top certificate, when an installed root (CentralSystemRootCertificate or
        ManufacturerRootCertificate) carries the name of its issuer: signed by one of those roots,
        valid now. No installed root of that name: not checked (the station may not have the
        CPO's root)."""
        roots = [r for k in ROOT_TYPES for r in self.roots(k)]
        if top in roots:
            return
        named = [r for r in roots if r.subject == top.issuer]
        if not named:
            return
        good = [r for r in named if issued_by(top, r)]
        if not good:
            raise CertificateProblem(f"certificate {_cn(top)!r} is not signed by the installed root "
                                     f"{top.issuer.rfc4514_string()!r}")
        if not any(r.not_valid_before_utc <= now <= r.not_valid_after_utc for r in good):
            check_valid_at(good[0], now)  # raises: the installed root that signed it is not valid now

    def accept_signed(self, certs: list[x509.Certificate], use: str = "cp", also: tuple[str, ...] = ()) -> None:
        """The checked chain becomes the certificate of ``use`` (and of each of ``also``: a
        combined certificate), the pending key its key."""
        pending = self._leaf(use, "pending-key.pem")
        key_pem = pending.read_bytes()
        for other in also:
            write_private(self._leaf(other, "key.pem"), key_pem)
            write_public(self._leaf(other, "chain.pem"), b"".join(_pem(c) for c in certs))
        write_public(self._leaf(use, "chain.pem"), b"".join(_pem(c) for c in certs))
        os.replace(pending, self._leaf(use, "key.pem"))

    def provision(self, chain_pem: str, key_pem: bytes) -> None:
        """Factory provisioning: install a key and its certificate chain (checked to match)."""
        certs = parse_chain(chain_pem)
        key = serialization.load_pem_private_key(key_pem, None)
        if public_key_bytes(certs[0].public_key()) != public_key_bytes(key.public_key()):
            raise CertificateProblem("the certificate does not carry the key's public key")
        write_private(self.key_file, key_pem)
        write_public(self.chain_file, b"".join(_pem(c) for c in certs))

    @staticmethod
    def _load_key(path: Path):  # noqa: ANN205 - a cryptography private key or None
        try:
            return serialization.load_pem_private_key(path.read_bytes(), None)
        except (OSError, ValueError, TypeError):
            return None


def check_signing_certificate(store: CertificateStore, signing_pem: str, now: datetime) -> x509.Certificate:
    """SignedUpdateFirmware: the firmware signing certificate, valid now and issued by an installed
    ManufacturerRootCertificate (directly, or the root itself); CertificateProblem otherwise."""
    cert = parse_chain(signing_pem)[0]
    check_valid_at(cert, now)
    roots = store.roots(MANUFACTURER_ROOT)
    if not roots:
        raise CertificateProblem("no ManufacturerRootCertificate is installed")
    if not any(cert == r or issued_by(cert, r) for r in roots):
        raise CertificateProblem(f"signing certificate {_cn(cert)!r} is not issued by an installed ManufacturerRootCertificate")
    return cert


def firmware_signature_ok(cert: x509.Certificate, signature_b64: str, data: bytes) -> bool:
    """The firmware file's signature (base64; ECDSA or RSA PKCS#1 v1.5, SHA-256) by ``cert``'s key."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except ValueError:
        return False
    key = cert.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
        return True
    except InvalidSignature:
        return False


def security_log_text(path: Path, oldest: datetime | None, latest: datetime | None) -> str:
    """The security log's records (JSON lines with an ISO ``timestamp``, the log the security
    engines keep) between ``oldest`` and ``latest`` (None: unbounded), for GetLog SecurityLog."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        lines = []
    return security_log_lines(lines, oldest, latest)


def security_log_lines(lines: list[str], oldest: datetime | None, latest: datetime | None) -> str:
    """The same, of log lines already read (a station whose state is in memory keeps them there)."""
    out = []
    for line in lines:
        try:
            at = parse_iso(json.loads(line)["timestamp"])
        except (ValueError, KeyError, TypeError):
            continue
        if (oldest is None or at >= oldest) and (latest is None or at <= latest):
            out.append(line)
    return "\n".join(out) + ("\n" if out else "")


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def client_context(store: CertificateStore, ca_file: str | None, client_certificate: bool) -> ssl.SSLContext:
    """The TLS context of profiles 2 and 3: TLS 1.2 at least; the CSMS certificate and host name
    checked against the installed CentralSystemRootCertificates and ``ca_file`` (neither: the
    system's CAs); profile 3 (``client_certificate``) presents the charge point certificate."""
    roots = store.csms_roots_pem()
    if roots or ca_file:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if ca_file:
            ctx.load_verify_locations(cafile=ca_file)
        if roots:
            ctx.load_verify_locations(cadata=roots)
    else:
        ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_certificate and store.has_client_certificate():
        ctx.load_cert_chain(store.chain_file, store.key_file)
    return ctx


__all__ = ["CP_CERT", "CSMS_ROOT", "MANUFACTURER_ROOT", "MO_ROOT", "ROOT_TYPES", "V2G_ROOT", "CertificateProblem", "CertificateStore", "HashData",
           "check_signing_certificate", "check_valid_at", "client_context", "firmware_signature_ok", "hash_data", "issued_by", "parse_chain", "write_private"]

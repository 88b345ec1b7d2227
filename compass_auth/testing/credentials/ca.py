"""A throw-away certificate authority for the emulator's TLS.

EC P-256 everywhere: key generation takes well under a millisecond, which keeps
``DevCluster.start()`` fast, and every TLS stack we test against accepts it.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

logger = logging.getLogger(__name__)

# Backdate certificates a little: a client whose clock is slightly behind must
# not see a "not yet valid" certificate (kubeadm backdates by 5 minutes too).
_BACKDATE = datetime.timedelta(minutes=5)
_VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # "EC PRIVATE KEY" (SEC1) is what kubeadm writes and every loader accepts.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    attributes = [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations
    ]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _subject_alt_names(names: Iterable[str]) -> x509.SubjectAlternativeName:
    """DNS names as DNS SANs, literal addresses as IP SANs (TLS matches them separately)."""
    general: list[x509.GeneralName] = []
    for name in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(general)


class CertificateAuthority:
    """A self-signed CA (CN ``kubernetes``, like kubeadm's) issuing leaf certificates."""

    def __init__(self, common_name: str = "kubernetes") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        subject = _name(common_name)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + 10 * _VALIDITY)
            .add_extension(
                x509.BasicConstraints(ca=True, path_length=None), critical=True
            )
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem: bytes = self._cert.public_bytes(serialization.Encoding.PEM)

    def _leaf(
        self,
        subject: x509.Name,
        usage: x509.ObjectIdentifier,
        names: Iterable[str] = (),
        *,
        expired: bool = False,
        self_signed: bool = False,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        if expired:
            # Expired yesterday: far beyond any clock-skew tolerance.
            start, end = now - 2 * _VALIDITY, now - datetime.timedelta(days=1)
        else:
            start, end = now - _BACKDATE, now + _VALIDITY
        signer_key = key if self_signed else self._key
        issuer = subject if self_signed else self._cert.subject
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(
                x509.BasicConstraints(ca=False, path_length=None), critical=True
            )
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if not self_signed:
            # Python >= 3.13 verifies with VERIFY_X509_STRICT, which wants AKI.
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self._key.public_key()
                ),
                critical=False,
            )
        names = tuple(names)
        if names:
            builder = builder.add_extension(_subject_alt_names(names), critical=False)
        cert = builder.sign(signer_key, hashes.SHA256())
        return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def issue_server(
        self, names: Iterable[str], *, expired: bool = False, self_signed: bool = False
    ) -> Issued:
        """A serving certificate (CN ``kube-apiserver``) for the given DNS names and IPs.

        ``expired`` and ``self_signed`` produce the broken certificates that
        TLS-failure tests need; a verifying client must refuse both.
        """
        return self._leaf(
            _name("kube-apiserver"),
            ExtendedKeyUsageOID.SERVER_AUTH,
            names,
            expired=expired,
            self_signed=self_signed,
        )

    def issue_client(
        self, common_name: str, organizations: Iterable[str] = ()
    ) -> Issued:
        """A client certificate; the API server maps CN to user and O to groups."""
        return self._leaf(
            _name(common_name, organizations), ExtendedKeyUsageOID.CLIENT_AUTH
        )


def _key_usage(cert_sign: bool) -> x509.KeyUsage:
    """Signatures and key encipherment; ``keyCertSign`` for the CA alone."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )

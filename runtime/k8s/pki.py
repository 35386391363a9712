"""The cluster's certificates and keys, as kubeadm lays them out (``cmd/kubeadm/app/phases/certs``).

One CA signs every serving and client certificate: the API server's serving certificate
(its Service IP, its address and the ``kubernetes.default.svc`` names), its client
certificate for the kubelets (``--kubelet-client-certificate``), each node's serving
certificate (what the API server verifies when it proxies exec and port-forward) and
client certificate (``system:node:<name>`` in ``system:nodes``, so the Node authorizer and
NodeRestriction apply to it as to a real kubelet), and the client certificates of the
controller manager, the scheduler and the admin.  The service-account key pair signs and
verifies tokens.  Written with the ``cryptography`` library; every key is mode 0600.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Certificates of a test cluster live as long as a nightly run could; kubeadm's default is a year.
VALIDITY = datetime.timedelta(days=30)


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _name(common: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    return x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


class CertificateAuthority:
    """The cluster CA (``ca.crt``/``ca.key`` in ``directory``), created on first use."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pair = CertPair(self.dir / "ca.crt", self.dir / "ca.key")
        if not self.pair.cert.exists():
            self._create()
        self.cert = x509.load_pem_x509_certificate(self.pair.cert.read_bytes())
        self.key = serialization.load_pem_private_key(self.pair.key.read_bytes(), None)

    def _create(self) -> None:
        key = _key()
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(_name("serve-chaos-ca")).issuer_name(_name("serve-chaos-ca"))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        _write_key(self.pair.key, key)
        self.pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, common: str, orgs: tuple[str, ...] = (), server: bool = False,
              client: bool = False, dns: tuple[str, ...] = (), ips: tuple[str, ...] = ()) -> CertPair:
        """A certificate for ``common`` (and ``orgs``: Kubernetes groups) as ``<name>.crt``/``.key``."""
        pair = CertPair(self.dir / f"{name}.crt", self.dir / f"{name}.key")
        if pair.cert.exists() and pair.key.exists():
            return pair
        key = _key()
        now = datetime.datetime.now(datetime.timezone.utc)
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + \
                 ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        builder = (x509.CertificateBuilder().subject_name(_name(common, orgs)).issuer_name(self.cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
        alt = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        if alt:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        _write_key(pair.key, key)
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return pair


def service_account_keys(directory: Path) -> CertPair:
    """The key pair that signs service-account tokens (``sa.pub``/``sa.key``, as kubeadm names them)."""
    pair = CertPair(directory / "sa.pub", directory / "sa.key")
    if not pair.key.exists():
        key = _key()
        _write_key(pair.key, key)
        pair.cert.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo))
    return pair


def kubeconfig(server: str, ca: Path, client: CertPair, user: str, cluster: str = "serve-chaos") -> dict:
    """A kubeconfig (as a dict) for ``user`` with certificate files; the context is named ``cluster``."""
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": cluster,
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(client.cert), "client-key": str(client.key)}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
    }

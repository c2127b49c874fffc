"""Certificates for the test bed's migration TLS: a CA per bed (and any
other CA a test wants, to play an untrusted host), and per host the five
files QEMU's migration TLS reads from migrate_tls_x509_cert_dir, with the
host's management address and name as subject alternative names (QEMU
checks the destination's certificate against the address it connects
to)."""
import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _builder(subject, issuer, key):
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2)))


class CA:
    def __init__(self, name):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.cert = (_builder(_name(name), _name(name), self.key)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                                  False, False), True)
                     .sign(self.key, hashes.SHA256()))

    def _leaf(self, key, host, address, purpose):
        return (_builder(_name(host), self.cert.subject, key)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
                .add_extension(x509.KeyUsage(True, False, True, False, False, False, False,
                                             False, False), True)
                .add_extension(x509.ExtendedKeyUsage([purpose]), False)
                .add_extension(x509.SubjectAlternativeName(
                    [x509.DNSName(host), x509.IPAddress(ipaddress.ip_address(address))]), False)
                .sign(self.key, hashes.SHA256()))

    def issue(self, directory, host, address):
        """Write ca-cert.pem, server-cert.pem/-key.pem, client-cert.pem/-key.pem."""
        os.makedirs(directory, exist_ok=True)
        pem = serialization.Encoding.PEM
        files = {"ca-cert.pem": self.cert.public_bytes(pem)}
        for role, purpose in (("server", ExtendedKeyUsageOID.SERVER_AUTH),
                              ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            files[f"{role}-cert.pem"] = self._leaf(key, host, address, purpose).public_bytes(pem)
            files[f"{role}-key.pem"] = key.private_bytes(
                pem, serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption())
        for name, data in files.items():
            path = os.path.join(directory, name)
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(path, 0o600 if name.endswith("-key.pem") else 0o644)


def readable_by_qemu(directory, group="libvirt-qemu"):
    """QEMU opens its TLS files itself, as its own user: the keys become
    readable by its group (0640), as a Debian host's /etc/pki/qemu has them."""
    import shutil
    for name in os.listdir(directory):
        if name.endswith("-key.pem"):
            path = os.path.join(directory, name)
            shutil.chown(path, group=group)
            os.chmod(path, 0o640)

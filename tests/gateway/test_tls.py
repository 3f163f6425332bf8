"""`python -m gateway` with a certificate and key serves TLS 1.3 only: a client limited to TLS 1.2 fails the
handshake, a TLS 1.3 client is served. Real sockets, real OpenSSL on both sides."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from voicereel.stack import free_port, port_open, python_service


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def tls_gateway(supervisor, tmp_path: Path, redis_url: str):
    cert, key = self_signed(tmp_path)
    port = free_port()
    env = {
        "VR_PROFILE": "test",
        "VR_HOST": "127.0.0.1",
        "VR_PORT": str(port),
        "VR_DATABASE_URL": f"sqlite:///{tmp_path / 'tls.db'}",
        "VR_REDIS_URL": redis_url,
        "VR_DATA_DIR": str(tmp_path),
        "VR_STORAGE_DIR": str(tmp_path / "storage"),
        "VR_TLS_CERTFILE": str(cert),
        "VR_TLS_KEYFILE": str(key),
        "VR_LOG_LEVEL": "WARNING",
    }
    service = supervisor.start(python_service("gateway-tls", ["-m", "gateway"], lambda: port_open(port), env, tmp_path))
    yield port, cert
    supervisor.stop(service)
    supervisor.services.remove(service)


def client_context(cert: Path, version: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    context.minimum_version = version
    context.maximum_version = version
    return context


def test_tls12_client_is_refused(tls_gateway) -> None:
    port, cert = tls_gateway
    context = client_context(cert, ssl.TLSVersion.TLSv1_2)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        pytest.raises(ssl.SSLError) as refused,
        context.wrap_socket(raw, server_hostname="127.0.0.1"),
    ):
        pass
    # The handshake fails for the protocol version, not the certificate: the server drops the connection on the
    # 1.2-only hello, and the same certificate and trust serve the 1.3 client below.
    assert not isinstance(refused.value, ssl.SSLCertVerificationError)


def test_tls13_client_is_served(tls_gateway) -> None:
    port, cert = tls_gateway
    context = client_context(cert, ssl.TLSVersion.TLSv1_3)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() == "TLSv1.3"
    response = httpx.get(f"https://127.0.0.1:{port}/healthz", verify=context, timeout=10)
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response.headers["x-request-id"]
    # Plain HTTP on the TLS port gets nothing useful.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).raise_for_status()

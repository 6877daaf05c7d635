"""Test support for the e-mail notifier: an aiosmtpd SMTP server on loopback that records what
it received, with optional AUTH, STARTTLS (a self-signed certificate made at test time) and a
number of first messages it answers with a temporary (or permanent) failure."""

from __future__ import annotations

import email
import shutil
import ssl
import subprocess
import threading
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support import free_port


class Received:
    def __init__(self, envelope: Any, session: Any, tls: bool):
        self.mail_from: str = envelope.mail_from
        self.rcpt_tos: list[str] = list(envelope.rcpt_tos)
        self.message: Message = email.message_from_bytes(envelope.original_content)
        self.login: str | None = (session.auth_data.login.decode()
                                  if isinstance(session.auth_data, LoginPassword) else None)
        self.tls = tls


class SmtpReceiver:
    """An SMTP server on 127.0.0.1. ``fail_first`` DATA commands are answered ``fail_reply``
    (a 4xx: try later); ``credentials`` (user, password) turns AUTH on; ``tls`` a
    ``(certfile, keyfile)`` pair turns STARTTLS on (offered, not required)."""

    def __init__(self, credentials: tuple[str, str] | None = None,
                 tls: tuple[Path, Path] | None = None):
        self.messages: list[Received] = []
        self.attempts = 0
        self.fail_first = 0
        self.fail_reply = "451 4.3.0 Try again later"
        self.auth_failures: list[str] = []
        self.lock = threading.Lock()
        self.credentials = credentials
        kwargs: dict[str, Any] = {}
        if credentials is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True,
                          auth_require_tls=tls is not None)
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            kwargs["tls_context"] = context
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port(), **kwargs)

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def start(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and self.credentials is not None
              and (auth_data.login.decode(), auth_data.password.decode()) == self.credentials)
        if not ok:
            with self.lock:
                self.auth_failures.append(mechanism)
        # Not handled: aiosmtpd answers a failure with 535 itself.
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.attempts += 1
            if self.attempts <= self.fail_first:
                return self.fail_reply
            self.messages.append(Received(envelope, session, session.ssl is not None))
        return "250 2.0.0 OK"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made now: with the `cryptography` package when
    it is installed, else with the openssl program (`make test` installs it); fails when
    neither is there."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        _with_cryptography(cert, key)
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.fail("neither the cryptography package nor openssl makes a certificate: "
                        "`make test` installs the Debian package openssl")
        subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True)
    return cert, key


def _with_cryptography(cert: Path, key: Path) -> None:
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(private.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256()))
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))

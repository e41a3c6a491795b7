"""Real SMTP servers for the tests (aiosmtpd on loopback), and the fixtures around them.

Each fixture starts a server of its own on a free port (the OS picks it, so
no two tests collide) and stops it afterwards. A server records what it
accepted — envelope and raw bytes — and can be told, while running, to
refuse (``refuse(451)``, ``refuse(550, at="data")``), to drop the connection
after the message's data without answering (``drop()``), to stall a
session at RCPT or after the message's data, unanswered until ``accept()``
(``stall("rcpt")``, ``stall("data")``; ``wait_stalled()`` says when a
session got there), or to accept again (``accept()``).

Fixtures: ``smtp_server`` (accepts), ``smtp_tempfail_server`` (451 at RCPT),
``smtp_permfail_server`` (550 at RCPT), ``smtp_dropping_server`` (drops after
DATA), ``smtp_hangup_server`` (closes every connection before the greeting),
``smtp_closed_port`` (nothing listens: connection refused),
``smtp_starttls_server`` (STARTTLS and a login required) and
``smtp_ssl_server`` (implicit TLS, login offered); these two need the
``openssl`` command for a throwaway certificate, and fail without it.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

SMTP_USER = "desk"
SMTP_PASSWORD = "s3cret-pass"


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes  # as the server got it, dot-unstuffed, CRLF line ends
    authenticated: bool  # the client logged in first


class _RecordingHandler:
    def __init__(self) -> None:
        self.messages: list[ReceivedMail] = []
        self.refusal: tuple[int, str] | None = None
        self.dropping = False
        self._lock = threading.Lock()
        self.stall_at: Literal["rcpt", "data"] | None = None
        self.stalled = threading.Event()  # a session is held at stall_at
        self.released = threading.Event()

    async def _stall(self) -> None:
        self.stalled.set()
        # Polled, not awaited in a thread: a session whose client died is
        # cancelled by aiosmtpd, and stopping the server never hangs on it.
        while not self.released.is_set():
            await asyncio.sleep(0.01)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.refusal and self.refusal[1] == "rcpt":
            return _refusal_reply(self.refusal[0])
        if self.stall_at == "rcpt":
            await self._stall()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.dropping:
            assert server.transport is not None
            server.transport.abort()
            return "421 never heard by the client"
        if self.refusal and self.refusal[1] == "data":
            return _refusal_reply(self.refusal[0])
        raw = envelope.original_content
        assert isinstance(raw, bytes)
        with self._lock:
            self.messages.append(
                ReceivedMail(str(envelope.mail_from), tuple(envelope.rcpt_tos), raw,
                             bool(session.authenticated))
            )
        if self.stall_at == "data":
            # Kept, as a server that queued it and then hung before answering.
            await self._stall()
        return "250 2.0.0 OK queued"


def _refusal_reply(code: int) -> str:
    if 400 <= code < 500:
        return f"{code} 4.7.1 Try again later (test server)"
    return f"{code} 5.1.1 Mailbox unavailable (test server)"


class _LoopbackController(Controller):
    """An aiosmtpd Controller on 127.0.0.1 and a port the OS picks."""

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=0, **kwargs)

    def _trigger_server(self) -> None:
        # Bound by now: learn the port before the start-up probe connects to it.
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class _HangUp(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class _HangUpController(_LoopbackController):
    def factory(self) -> Any:
        return _HangUp()


class SmtpTestServer:
    """A running test server: where it listens, what it received, how it behaves."""

    # What a client needs to log in to the servers that require it.
    username = SMTP_USER
    password = SMTP_PASSWORD

    def __init__(self, controller: _LoopbackController, handler: _RecordingHandler,
                 security: Literal["plain", "starttls", "ssl"] = "plain",
                 ca_file: Path | None = None) -> None:
        self._controller = controller
        self._handler = handler
        self.security = security
        self.ca_file = ca_file  # the certificate to trust, for the TLS servers
        self.host = "127.0.0.1"
        self.port = 0

    def start(self) -> SmtpTestServer:
        self._controller.start()
        self.port = self._controller.port
        return self

    def stop(self) -> None:
        self._handler.released.set()
        self._controller.stop()

    @property
    def messages(self) -> list[ReceivedMail]:
        return self._handler.messages

    def accept(self) -> None:
        self._handler.refusal = None
        self._handler.dropping = False
        self._handler.stall_at = None
        self._handler.released.set()

    def refuse(self, code: int, at: Literal["rcpt", "data"] = "rcpt") -> None:
        self._handler.refusal = (code, at)

    def drop(self) -> None:
        self._handler.dropping = True

    def stall(self, at: Literal["rcpt", "data"]) -> None:
        """Hold every session at ``at`` (after keeping the message, for "data")."""
        self._handler.stalled.clear()
        self._handler.released.clear()
        self._handler.stall_at = at

    def wait_stalled(self, timeout: float) -> bool:
        """Whether a session reached the stall within ``timeout`` seconds."""
        return self._handler.stalled.wait(timeout)

    def smtp_settings(self, **overrides: object) -> dict[str, object]:
        """The ``smtp`` section of Settings for sending to this server."""
        return {"host": self.host, "port": self.port, "security": self.security,
                "ca_file": self.ca_file, "timeout_seconds": 5, **overrides}


def _authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                  auth_data: object) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login.decode() == SMTP_USER
        and auth_data.password.decode() == SMTP_PASSWORD
    )
    return AuthResult(success=ok, handled=False)


def _running(request: pytest.FixtureRequest, server: SmtpTestServer) -> SmtpTestServer:
    server.start()
    request.addfinalizer(server.stop)
    return server


def _plain(request: pytest.FixtureRequest) -> SmtpTestServer:
    handler = _RecordingHandler()
    return _running(request, SmtpTestServer(_LoopbackController(handler), handler))


@pytest.fixture
def smtp_server(request: pytest.FixtureRequest) -> SmtpTestServer:
    """A server that accepts every message (until told otherwise)."""
    return _plain(request)


@pytest.fixture
def smtp_tempfail_server(request: pytest.FixtureRequest) -> SmtpTestServer:
    """A server that answers RCPT with 451 (as greylisting does)."""
    server = _plain(request)
    server.refuse(451)
    return server


@pytest.fixture
def smtp_permfail_server(request: pytest.FixtureRequest) -> SmtpTestServer:
    """A server that answers RCPT with 550 (no such mailbox)."""
    server = _plain(request)
    server.refuse(550)
    return server


@pytest.fixture
def smtp_dropping_server(request: pytest.FixtureRequest) -> SmtpTestServer:
    """A server that takes the message's data, then drops the connection unanswered."""
    server = _plain(request)
    server.drop()
    return server


@pytest.fixture
def smtp_hangup_server(request: pytest.FixtureRequest) -> SmtpTestServer:
    """A port that accepts TCP connections and closes them before any greeting."""
    handler = _RecordingHandler()
    return _running(request, SmtpTestServer(_HangUpController(handler), handler))


@pytest.fixture
def smtp_closed_port() -> int:
    """A loopback port nothing listens on: connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class TlsFiles:
    cert: Path  # also the CA file a client trusts: the certificate is self-signed
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A throwaway self-signed certificate for 127.0.0.1 and localhost."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the openssl command is needed for a test certificate (apt install openssl)")
    base = tmp_path_factory.mktemp("tls")
    files = TlsFiles(base / "cert.pem", base / "key.pem")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(files.key), "-out", str(files.cert)],
        check=True, capture_output=True,
    )
    return files


@pytest.fixture
def smtp_starttls_server(request: pytest.FixtureRequest, tls_files: TlsFiles) -> SmtpTestServer:
    """A submission-style server: STARTTLS and a login are required before mail."""
    handler = _RecordingHandler()
    controller = _LoopbackController(
        handler, tls_context=tls_files.server_context(), require_starttls=True,
        auth_required=True, auth_require_tls=True, authenticator=_authenticate,
    )
    return _running(request, SmtpTestServer(controller, handler, "starttls", tls_files.cert))


@pytest.fixture
def smtp_ssl_server(request: pytest.FixtureRequest, tls_files: TlsFiles) -> SmtpTestServer:
    """An implicit-TLS server (as on port 465) that offers a login."""
    handler = _RecordingHandler()
    controller = _LoopbackController(
        handler, ssl_context=tls_files.server_context(),
        # aiosmtpd counts only STARTTLS as TLS, and warns when it must require
        # a login without it: AUTH is offered here, and the tests check that
        # the mail came after a login (ReceivedMail.authenticated).
        auth_require_tls=False, authenticator=_authenticate,
    )
    return _running(request, SmtpTestServer(controller, handler, "ssl", tls_files.cert))



class _OAuthHandler(_RecordingHandler):
    """Records mail, and signs clients in by XOAUTH2 / OAUTHBEARER bearer tokens."""

    def __init__(self, check: Callable[[str], str | None]) -> None:
        super().__init__()
        self.check = check  # token -> the user it names, None when not valid

    async def _bearer(self, server: SMTP, args: list[str], user_key: str) -> AuthResult:
        if len(args) > 1:
            response = base64.b64decode(args[1]).decode()
        else:
            answer = await server.challenge_auth("")
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=False)
            response = answer.decode()
        fields = dict(part.split("=", 1) for part in response.split("\x01") if "=" in part)
        user = fields.get(user_key, "").rstrip(",")
        token = fields.get("auth", "").removeprefix("Bearer ")
        return AuthResult(success=bool(user) and self.check(token) == user, handled=False)

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, "user")

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, "n,a")


def oauth_smtp_server(request: pytest.FixtureRequest,
                      check: Callable[[str], str | None]) -> SmtpTestServer:
    """A plain listener that takes AUTH XOAUTH2 / OAUTHBEARER, each token ``check``-ed."""
    handler = _OAuthHandler(check)
    controller = _LoopbackController(handler, auth_require_tls=False)
    return _running(request, SmtpTestServer(controller, handler))


class _DkimHandler(_RecordingHandler):
    """Records mail whose DKIM signature dkimpy verifies; refuses the rest (550 5.7.20)."""

    def __init__(self, dns: Callable[..., bytes]) -> None:
        super().__init__()
        self.dns = dns

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        import dkim

        raw = envelope.original_content or b""
        if not dkim.verify(raw, dnsfunc=self.dns):
            return "550 5.7.20 No passing DKIM signature found (test server)"
        return await super().handle_DATA(server, session, envelope)


def dkim_smtp_server(request: pytest.FixtureRequest,
                     dns: Callable[..., bytes]) -> SmtpTestServer:
    """A listener that takes only mail with a valid DKIM signature; ``dns`` answers the
    TXT lookups of the public keys (dkimpy's ``dnsfunc``, in place of the DNS)."""
    handler = _DkimHandler(dns)
    return _running(request, SmtpTestServer(_LoopbackController(handler), handler))

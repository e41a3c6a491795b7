"""A private Dovecot IMAP server for the tests, and the pytest fixtures around it.

One server runs per test session (it starts in well under a second, but the
IMAP tests are many); every test gets an account of its own, so no test sees
another's mail. A test may stop, restart or kick the server: the next test's
fixture starts it again if it is down.

The server lives in a temp dir of its own (config, mail, sockets, log) and
listens on a free loopback port. It needs Debian's ``dovecot-imapd``
(``dovecot`` and ``doveadm``); without it the tests that use it fail.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from imapclient import IMAPClient

_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
DOVECOT = shutil.which("dovecot", path=_SEARCH_PATH)
DOVEADM = shutil.which("doveadm", path=_SEARCH_PATH)

_CONFIG = """\
base_dir = {base}/run
state_dir = {base}/state
instance_name = madoguchi-test
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
log_path = {base}/dovecot.log
mail_location = maildir:{base}/mail/%u
mail_fsync = never
first_valid_uid = 1
default_login_user = {login_user}
default_internal_user = {internal_user}
verbose_proctitle = yes
{oauth}service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/users/%u
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={base}/mail/%u
}}
"""

# Sign-in with a bearer token (XOAUTH2, OAUTHBEARER), checked by RFC 7662
# introspection at the test's OAuth server; passwords still work beside it.
# No auth cache: a revoked token is refused at once.
_OAUTH = """\
auth_mechanisms = plain login xoauth2 oauthbearer
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {base}/dovecot-oauth2.conf.ext
}}
"""
_OAUTH_ARGS = """\
introspection_mode = post
introspection_url = {url}
username_attribute = username
active_attribute = active
active_value = true
"""

_APPENDUID = re.compile(rb"APPENDUID (\d+) (\d+)")


class DovecotError(Exception):
    """The test server could not be started, stopped or driven."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _users() -> tuple[str, str, int, int]:
    """Login user, internal user, and the uid/gid that own the mail."""
    if os.geteuid() == 0:
        # Dovecot's login processes refuse to run as root, and so does
        # mail access: use the accounts the Debian package creates.
        nobody = pwd.getpwnam("nobody")
        return "dovenull", "dovecot", nobody.pw_uid, nobody.pw_gid
    me = pwd.getpwuid(os.geteuid())
    return me.pw_name, me.pw_name, me.pw_uid, me.pw_gid


class Dovecot:
    """One private Dovecot instance: ``start()``, ``stop()``, ``restart()``, accounts."""

    host = "127.0.0.1"

    def __init__(self, root: Path | None = None, *, introspection_url: str | None = None) -> None:
        if DOVECOT is None or DOVEADM is None:
            raise DovecotError("dovecot/doveadm not found (apt-get install dovecot-imapd)")
        # Not pytest's tmp_path: its parents are private to the user running
        # the tests, and Dovecot's unprivileged processes must reach the files.
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="madoguchi-dovecot-"))
        self.root.chmod(0o755)
        self.config = self.root / "dovecot.conf"
        self.log_file = self.root / "dovecot.log"
        self._users_dir = self.root / "users"
        self._passwords: dict[str, str] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.introspection_url = introspection_url
        login_user, internal_user, self._uid, self._gid = _users()
        self._identity = {"login_user": login_user, "internal_user": internal_user,
                          "uid": self._uid, "gid": self._gid}
        for sub in ("run", "state", "mail", "users"):
            (self.root / sub).mkdir(exist_ok=True)
        os.chown(self.root / "mail", self._uid, self._gid)

    # -- life cycle -------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start on the port used before, or a free one; return once it greets."""
        if self.running:
            return
        attempts = 1 if self.port else 3
        for attempt in range(attempts):
            if not self.port or attempt:
                # A free port may be taken by someone else before Dovecot binds it.
                self.port = _free_port()
            oauth = ""
            if self.introspection_url:
                oauth = _OAUTH.format(base=self.root)
                args = self.root / "dovecot-oauth2.conf.ext"
                args.write_text(_OAUTH_ARGS.format(url=self.introspection_url),
                                encoding="utf-8")
                args.chmod(0o644)
            self.config.write_text(
                _CONFIG.format(base=self.root, port=self.port, oauth=oauth, **self._identity),
                encoding="utf-8",
            )
            if self._launch(timeout):
                return
        raise DovecotError(f"dovecot did not start; its log ends:\n{self.log_tail()}")

    def _launch(self, timeout: float) -> bool:
        # The child keeps its own copy of the descriptor.
        with open(self.root / "dovecot.out", "ab") as output:
            self._process = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(self.config)],
                stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return False
            if self._greets():
                return True
            time.sleep(0.02)
        self.stop()
        return False

    def _greets(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as sock:
                return sock.recv(64).startswith(b"* OK")
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down; its clients' connections die with it."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def restart(self) -> None:
        """Stop and start again on the same port, with the same mail."""
        self.stop()
        self.start()

    def ensure_running(self) -> None:
        if not self.running:
            self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Dovecot:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def log_tail(self, lines: int = 30) -> str:
        texts = []
        for path in (self.log_file, self.root / "dovecot.out"):
            if path.exists():
                texts.extend(path.read_text(encoding="utf-8", errors="replace").splitlines())
        return "\n".join(texts[-lines:])

    # -- accounts and administration ---------------------------------------

    def add_user(self, username: str, password: str | None = None) -> DovecotAccount:
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", username):
            raise ValueError(f"unsuitable test user name: {username!r}")
        password = password or secrets.token_hex(8)
        self._passwords[username] = password
        # One passwd-file per user: a user added to a shared file that Dovecot
        # had already read was refused (it did not notice the change at once).
        # Written whole, then renamed, so a half-written file is never read.
        tmp = self._users_dir / f".{username}.tmp"
        tmp.write_text(f"{username}:{{PLAIN}}{password}\n", encoding="utf-8")
        tmp.chmod(0o644)
        os.replace(tmp, self._users_dir / username)
        return DovecotAccount(self, username, password)

    def doveadm(self, *args: str) -> str:
        done = subprocess.run(
            [str(DOVEADM), "-c", str(self.config), *args],
            capture_output=True, text=True, timeout=30, check=False,
        )
        if done.returncode != 0:
            raise DovecotError(f"doveadm {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def kick(self, username: str, timeout: float = 10.0) -> None:
        """Drop every connection ``username`` has; return once they are gone.

        The client sees its socket close (or a BYE) at its next command.
        """
        # doveadm exits non-zero when there was nobody to kick: not an error here.
        subprocess.run(
            [str(DOVEADM), "-c", str(self.config), "kick", username],
            capture_output=True, timeout=30, check=False,
        )
        deadline = time.monotonic() + timeout
        while username in self.doveadm("who", username).split():
            if time.monotonic() > deadline:
                raise DovecotError(f"{username} still connected after doveadm kick")
            time.sleep(0.02)

    @contextmanager
    def client(self, username: str) -> Iterator[IMAPClient]:
        client = IMAPClient(self.host, self.port, ssl=False, timeout=10)
        try:
            client.login(username, self._passwords[username])
            yield client
        finally:
            try:
                client.logout()
            except Exception:  # the test may have broken the connection on purpose
                client.shutdown()


class DovecotAccount:
    """One test's user on the server, and what a test does with its mail.

    Folder names are the server's own (Dovecot's separator here is ".").
    """

    def __init__(self, server: Dovecot, username: str, password: str) -> None:
        self.server = server
        self.username = username
        self.password = password
        self.password_file = server.root / f"password-{username}"
        self.password_file.write_text(password, encoding="utf-8")

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    def client(self) -> AbstractContextManager[IMAPClient]:
        return self.server.client(self.username)

    def append(
        self,
        raw: bytes,
        *,
        folder: str = "INBOX",
        internaldate: datetime | None = None,
        flags: Sequence[str] = (),
    ) -> int:
        """APPEND a message as it is; return its UID."""
        if internaldate is not None and internaldate.tzinfo is None:
            raise ValueError("internaldate must be timezone-aware")
        with self.client() as client:
            answer = client.append(folder, raw, flags=tuple(flags), msg_time=internaldate)
        found = _APPENDUID.search(answer)
        if found is None:
            raise DovecotError(f"no APPENDUID in {answer!r}")
        return int(found.group(2))

    def create_folder(self, folder: str) -> None:
        with self.client() as client:
            client.create_folder(folder)

    def delete_folder(self, folder: str) -> None:
        with self.client() as client:
            client.delete_folder(folder)

    def folders(self) -> list[str]:
        with self.client() as client:
            return sorted(name for _flags, _sep, name in client.list_folders())

    def messages(self, folder: str = "INBOX") -> dict[int, set[str]]:
        """UID to flags of every message in ``folder`` (read-only: changes nothing)."""
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            fetched = client.fetch(client.search(), ["FLAGS"])
        return {
            uid: {flag.decode() for flag in data[b"FLAGS"]} for uid, data in fetched.items()
        }

    def raw_messages(self, folder: str = "INBOX") -> dict[int, bytes]:
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            fetched = client.fetch(client.search(), ["BODY.PEEK[]"])
        return {uid: data[b"BODY[]"] for uid, data in fetched.items()}

    def uidvalidity(self, folder: str = "INBOX") -> int:
        with self.client() as client:
            return int(client.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])

    def new_uidvalidity(self, folder: str = "INBOX") -> int:
        """Give ``folder`` a new UIDVALIDITY, as a server does after a rebuild."""
        value = self.uidvalidity(folder) + 1000
        self.server.doveadm(
            "mailbox", "update", "-u", self.username, "--uid-validity", str(value), folder
        )
        return value

    def kick(self) -> None:
        self.server.kick(self.username)


_serial = itertools.count(1)


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[Dovecot]:
    """The session's Dovecot; a test that needs a server of its own makes a ``Dovecot()``."""
    if DOVECOT is None or DOVEADM is None:
        # Fail, not skip: a suite that quietly skips its IMAP tests is not green.
        pytest.fail("Dovecot is not installed: scripts/setup.sh --test installs dovecot-imapd")
    with Dovecot() as server:
        yield server


@pytest.fixture
def dovecot(dovecot_server: Dovecot, request: pytest.FixtureRequest) -> DovecotAccount:
    """A fresh account (empty INBOX) on a running Dovecot, named after the test."""
    dovecot_server.ensure_running()
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return dovecot_server.add_user(f"t{next(_serial)}-{slug}".rstrip("-"))

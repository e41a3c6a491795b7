"""The IMAP side of a poll: one logged-in connection with the folder selected.

``Mailbox`` opens the connection (ssl, starttls or plain), learns the
server's hierarchy delimiter, creates the ``move_to`` folder when needed,
selects (or, when nothing is ever changed on the server, examines) the
folder, then searches, fetches and marks by UID. The poller
(``ingest.sources.imap``) decides what to do with what it fetches.

Every imaplib or socket error becomes ``ImapUnavailable`` (retry later) or
``ImapCommandFailed`` (the server refused: likely configuration).
"""

from __future__ import annotations

import imaplib
import logging
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime

from imapclient import IMAPClient

from madoguchi.config.settings import ImapSource
from madoguchi.ticketing.oauth import OAuthError, token_source

log = logging.getLogger("madoguchi.ingest.imap")

DELETED = r"\Deleted"


class ImapSourceError(Exception):
    """The poll stopped; the desk's position is where the last commit left it."""


class ImapUnavailable(ImapSourceError):
    """The server could not be reached, or the connection was lost: retry later."""


class ImapCommandFailed(ImapSourceError):
    """The server refused something (login, SELECT, CREATE...): likely configuration."""


@contextmanager
def imap_errors(action: str) -> Iterator[None]:
    """Turn imaplib/socket errors raised while doing ``action`` into ours."""
    try:
        yield
    except (imaplib.IMAP4.abort, OSError) as exc:
        raise ImapUnavailable(f"{action}: {exc}") from exc
    except imaplib.IMAP4.error as exc:
        raise ImapCommandFailed(f"{action}: {exc}") from exc


@dataclass(frozen=True)
class Fetched:
    """One message fetched: its UID, bytes and INTERNALDATE (UTC)."""

    uid: int
    raw: bytes
    internaldate: datetime


class Mailbox:
    """One logged-in connection with the folder selected: the IMAP side of a poll."""

    def __init__(self, source: ImapSource) -> None:
        self.source = source
        self.client: IMAPClient | None = None
        self.delimiter = "/"
        self.uidvalidity = 0

    def open(self) -> None:
        src = self.source
        context = ssl.create_default_context() if src.security != "plain" else None
        with imap_errors(f"connect to {src.host}:{src.port} ({src.security})"):
            self.client = IMAPClient(
                src.host,
                src.port,
                ssl=src.security == "ssl",
                ssl_context=context if src.security == "ssl" else None,
                timeout=src.timeout_seconds,
            )
            # INTERNALDATE with its offset, not naive local time.
            self.client.normalise_times = False
            if src.security == "starttls":
                self.client.starttls(context)
        self._sign_in()
        with imap_errors("list the hierarchy delimiter"):
            listed = self.client.list_folders("", "")
        if listed and listed[0][1]:
            delimiter = listed[0][1]
            self.delimiter = delimiter.decode() if isinstance(delimiter, bytes) else delimiter
        if src.after_commit == "move":
            self._ensure_folder(self.server_name(src.move_to))
        with imap_errors(f"select {src.folder}"):
            # EXAMINE when nothing is ever to be changed on the server.
            selected = self.client.select_folder(
                self.server_name(src.folder), readonly=src.after_commit == "none"
            )
        self.uidvalidity = int(selected[b"UIDVALIDITY"])
        log.debug("%s: %s selected on %s:%d, UIDVALIDITY %d, %s messages",
                  src.name, src.folder, src.host, src.port, self.uidvalidity,
                  selected.get(b"EXISTS"))

    def _sign_in(self) -> None:
        """LOGIN with the password, or SASL XOAUTH2/OAUTHBEARER with a bearer token.

        A refused token is fetched again once and tried again on the same
        connection (it may have been revoked or expired early), so the poll
        goes on; refused twice, or no token to be had, is ``ImapCommandFailed``.
        """
        assert self.client is not None
        src = self.source
        if src.oauth is None:
            password = src.password()
            with imap_errors(f"login as {src.username}"):
                self.client.login(src.username, password)
            return
        tokens = token_source(f"sources.{src.name}", src.oauth)
        for attempt in (1, 2):
            try:
                token = tokens.token()
            except OAuthError as exc:
                raise ImapCommandFailed(str(exc)) from exc
            try:
                with imap_errors(f"{src.oauth.mechanism} sign-in as {src.username}"):
                    if src.oauth.mechanism == "OAUTHBEARER":
                        self.client.oauthbearer_login(src.username, token)
                    else:
                        self.client.oauth2_login(src.username, token)
                return
            except ImapCommandFailed as exc:
                tokens.invalidate()
                if attempt == 2:
                    raise ImapCommandFailed(
                        f"{exc}: refused with a new token too; is the app still allowed "
                        f"this mailbox (consent, IMAP enabled for {src.username})?") from exc
                log.warning("%s: the server refused the token (%s); fetching a new one",
                            src.name, exc)

    def server_name(self, folder: str) -> str:
        return folder if self.delimiter == "/" else folder.replace("/", self.delimiter)

    def _ensure_folder(self, name: str) -> None:
        assert self.client is not None
        with imap_errors(f"create {name}"):
            if not self.client.folder_exists(name):
                self.client.create_folder(name)
                # Subscribed, so that people looking with a mail client see it.
                self.client.subscribe_folder(name)
                log.info("%s: created folder %s", self.source.name, name)

    def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # the connection is often what failed: just drop it
            with suppress(OSError):
                client.shutdown()

    def uids_after(self, last_uid: int) -> list[int]:
        assert self.client is not None
        with imap_errors("search new mail"):
            found = self.client.search(["UID", f"{last_uid + 1}:*"])
        # "N:*" always matches the highest UID, even one below N.
        return sorted(uid for uid in found if uid > last_uid)

    def present(self, uids: Sequence[int]) -> list[int]:
        assert self.client is not None
        with imap_errors("search marked mail"):
            return sorted(self.client.search(["UID", uid_set(uids)]))

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        assert self.client is not None
        with imap_errors("fetch sizes"):
            fetched = self.client.fetch(uids, ["RFC822.SIZE"])
        return {uid: int(data[b"RFC822.SIZE"]) for uid, data in fetched.items()
                if b"RFC822.SIZE" in data}

    def fetch_range(self, first: int, last: int) -> list[Fetched]:
        """Fetch the messages still in the folder with UIDs ``first``..``last``."""
        assert self.client is not None
        self.sync()
        with imap_errors(f"search UIDs {first}:{last}"):
            found = self.client.search(["UID", f"{first}:{last}"])
        # "N:M" matches the highest UID when it is below N, like "N:*".
        uids = sorted(uid for uid in found if first <= uid <= last)
        return self.fetch(uids) if uids else []

    def sync(self) -> None:
        """See every message the folder holds now (NOOP), not only those of the SELECT.

        Another daemon may have claimed UIDs that arrived after this
        connection selected the folder: without this, a SEARCH here would not
        find them, and the claim would be settled as if they had vanished.
        """
        assert self.client is not None
        with imap_errors("NOOP"):
            self.client.noop()

    def fetch(self, uids: Sequence[int]) -> list[Fetched]:
        assert self.client is not None
        with imap_errors(f"fetch UIDs {uid_set(uids)}"):
            # BODY.PEEK: fetching must not set \\Seen; that is the mark's job.
            fetched = self.client.fetch(uids, ["BODY.PEEK[]", "INTERNALDATE"])
        return [
            Fetched(uid, data[b"BODY[]"], data[b"INTERNALDATE"].astimezone(UTC))
            for uid, data in sorted(fetched.items())
            if data.get(b"BODY[]") is not None and b"INTERNALDATE" in data
        ]

    def mark(self, uids: Sequence[int]) -> None:
        """Move or flag ``uids`` as configured (they must still be in the folder)."""
        assert self.client is not None
        src = self.source
        if src.after_commit == "flag":
            with imap_errors(f"flag {src.flag}"):
                self.client.add_flags(uids, [src.flag], silent=True)
            return
        target = self.server_name(src.move_to)
        with imap_errors(f"move to {target}"):
            if self.client.has_capability("MOVE"):
                self.client.move(uids, target)
                return
            self.client.copy(uids, target)
            self.client.add_flags(uids, [DELETED], silent=True)
            if self.client.has_capability("UIDPLUS"):
                self.client.uid_expunge(uids)
            else:
                # A plain EXPUNGE would also remove what others marked \Deleted;
                # the copies are safe, the server's own expunge will tidy up.
                log.warning("%s: server lacks UIDPLUS: moved mail left flagged \\Deleted",
                            src.name)


def uid_set(uids: Sequence[int]) -> str:
    return ",".join(str(uid) for uid in uids)

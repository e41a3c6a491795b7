"""IMAP IDLE (RFC 2177): a connection that waits for the server to announce new mail.

``IdleWatcher`` is a thread per IMAP source. It signs in as a poll does
(``Mailbox``: password or OAuth), selects the folder and sits in IDLE; when
the server sends ``EXISTS`` it calls ``announce``, which must not block
(the daemon polls that source at once, on a thread of its own), and stays
in IDLE. IDLE is
issued again every ``idle_seconds`` (servers may end it after 30 minutes);
a lost connection is opened again after a doubling backoff with jitter.
It takes nothing itself: the poll does, through the claims, so several
daemons watching one mailbox keep every guarantee of the poll. The poll
every ``interval_seconds`` stays as the fallback for an announcement
missed while reconnecting; a poll is also asked for after each (re)connect.

The watcher beats (``beat``) at least every ``CHECK_SECONDS`` while it
waits, so the daemon's supervision sees one that hangs.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from time import monotonic
from typing import Any

from madoguchi.config.settings import ImapSource
from madoguchi.ingest.sources.backoff import one_line
from madoguchi.ingest.sources.mailbox import Mailbox, imap_errors
from madoguchi.ticketing.backoff import backoff_delay

log = logging.getLogger("madoguchi.ingest.idle")

# The longest one wait for the server's news lasts: the watcher beats this often.
CHECK_SECONDS = 5.0

# (state, detail, next beat within seconds)
Beat = Callable[[str, str, float], None]


def announces_mail(responses: list[Any]) -> bool:
    """Whether IDLE responses tell of new mail (``* n EXISTS``), not only expunges or flags."""
    return any(isinstance(r, tuple) and len(r) >= 2 and r[1] == b"EXISTS" for r in responses)


class IdleWatcher(threading.Thread):
    """One source's IDLE connection, kept open until ``stop()``."""

    def __init__(self, source: ImapSource, announce: Callable[[], None], beat: Beat, *,
                 active: Callable[[], bool] = lambda: True,
                 backoff_base_seconds: float = 1.0, backoff_max_seconds: float = 300.0) -> None:
        super().__init__(name=f"idle-{source.name}", daemon=True)
        self.source = source
        self.announce = announce
        self.beat = beat
        self.active = active  # False: this daemon does not poll the source now
        self.base, self.ceiling = backoff_base_seconds, backoff_max_seconds
        self.stopping = threading.Event()
        self.failures = 0
        self.idles = 0  # IDLE commands issued (re-issues included)
        self._rng = random.Random()

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        while not self.stopping.is_set():
            if not self.active():
                self.beat("standby", "", CHECK_SECONDS)
                self.stopping.wait(CHECK_SECONDS / 5)
                continue
            try:
                self._watch()
            except Exception as exc:  # the server, the network, the sign-in: try again
                self.failures += 1
                wait = backoff_delay(self.failures, base_seconds=self.base,
                                     max_seconds=self.ceiling, rng=self._rng).total_seconds()
                log.warning("%s: IDLE connection failed (%d in a row), again in %.1f s: %s",
                            self.source.name, self.failures, wait, one_line(exc))
                self.beat("reconnecting", one_line(exc), wait + CHECK_SECONDS)
                self.stopping.wait(wait)

    def _watch(self) -> None:
        box = Mailbox(self.source)
        try:
            box.open()
            assert box.client is not None
            if not box.client.has_capability("IDLE"):
                log.warning("%s: the server has no IDLE: polled every %.0f s only",
                            self.source.name, self.source.interval_seconds)
                self.beat("unsupported", "no IDLE capability", float("inf"))
                self.stopping.wait()
                return
            self.failures = 0
            log.info("%s: waiting for new mail with IDLE", self.source.name)
            self.announce()  # what came while this connection was not there
            while not self.stopping.is_set() and self.active():
                self._idle_once(box)
        finally:
            box.close()

    def _idle_once(self, box: Mailbox) -> None:
        """One IDLE command, ended by ``idle_seconds`` or ``stop()``.

        News of mail is announced while the connection stays in IDLE (the
        poll runs elsewhere): Dovecot tells of mail delivered while a client
        is out of IDLE only when asked, so the watcher leaves IDLE only to
        issue it again, and asks (NOOP) in between.
        """
        client = box.client
        assert client is not None
        with imap_errors("IDLE"):
            client.idle()
            self.idles += 1
            ends = monotonic() + self.source.idle_seconds
            while not self.stopping.is_set() and self.active() and monotonic() < ends:
                self.beat("idle", "", CHECK_SECONDS)
                wait = min(CHECK_SECONDS, max(0.01, ends - monotonic()))
                if announces_mail(client.idle_check(timeout=wait)):
                    self.announce()
            _text, responses = client.idle_done()
            _text, more = client.noop()
        if announces_mail(responses) or announces_mail(more):
            self.announce()

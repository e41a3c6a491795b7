"""What the application does for the desk's safety as it starts, and says in ``status``.

- ``harden_process``: files the desk creates (database, blobs, backups,
  exports, FAX replies) are its user's alone — umask 077, as the systemd
  unit's ``UMask=0077`` — whatever the shell's umask was;
- ``mail_trust_note``: with no trusted authserv-id, no follow-up can be
  vouched for; the start of intake logs it and ``madoguchi status`` shows it.
"""

from __future__ import annotations

import logging
import os

from madoguchi.config import Settings

log = logging.getLogger("madoguchi.security")

UMASK = 0o077


def harden_process() -> None:
    os.umask(UMASK)


def mail_trust_note(settings: Settings) -> str:
    """One line on how far the desk can trust a From address."""
    ids = settings.trusted_authserv_ids
    if not ids:
        return ("mail trust:  NONE — trusted_authserv_ids is empty: no sender is vouched for, "
                "every follow-up that joins a ticket is flagged unverified_sender")
    return (f"mail trust:  Authentication-Results of {', '.join(ids)} above "
            f"{settings.trusted_results_above_received} Received header(s)")


def warn_at_intake(settings: Settings) -> None:
    if not settings.trusted_authserv_ids:
        log.warning("trusted_authserv_ids is empty: the desk's mail server vouches for no "
                    "sender, so a forged From cannot be told from a real one; follow-ups "
                    "are flagged unverified_sender (see docs/security.md)")

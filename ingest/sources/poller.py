"""What the daemon polls: any configured source, whatever its kind."""

from __future__ import annotations

from typing import Protocol


class PollOutcomes(Protocol):
    """What every kind of poll reports (``imap.PollReport``, ``folder.FolderReport``)."""

    created: int
    threaded: int
    duplicate: int
    quarantined: int


class Poller(Protocol):
    """One source (IMAP, Maildir, .eml folder, FAX spool) and how to take what is new in it."""

    def poll_once(self) -> PollOutcomes:
        """Take everything new once, each item committed before it is marked taken.

        Raises when the source or the desk fails; what was committed stays
        committed, and the next poll carries on from there.
        """
        ...

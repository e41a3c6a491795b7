"""What the daemon polls: any configured source, whatever its kind."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from madoguchi.ingest.sources.folder import FolderReport
    from madoguchi.ingest.sources.imap import PollReport


class Poller(Protocol):
    """One source (IMAP, Maildir, .eml folder, FAX spool) and how to take what is new in it."""

    def poll_once(self) -> PollReport | FolderReport:
        """Take everything new once, each item committed before it is marked taken.

        Raises when the source or the desk fails; what was committed stays
        committed, and the next poll carries on from there.
        """
        ...

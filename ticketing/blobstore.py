"""Content-addressed files on disk: raw messages, attachments, FAX pages.

A blob is written to a temporary name, flushed to disk, and renamed into
place, so a crash leaves either the whole file or none (a stray temporary
file at worst, which ``sweep_temporaries`` removes). Blobs are never
altered: the same bytes always have the same name.

Folders are created 0700 and files 0600, whatever the umask: they hold
customers' mail. ``delete`` removes a blob for a privacy erasure or the
retention policy (``ticketing.privacy``), once nothing names it.

A disk that is full (or over quota, or turned read-only after an error)
raises ``StorageUnavailableError``: the desk's fault, not the document's, so
callers retry the input later instead of quarantining it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
from contextlib import suppress
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
# What makes a write fail whatever is written: the storage, not the data.
_STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


class StorageUnavailableError(OSError):
    """The blob store cannot take data now (disk full, quota, read-only): retry later.

    An ``OSError`` with the original ``errno``, so it survives the trip back
    from a worker process (exceptions cross it pickled, as ``cls(*args)``).
    """


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._tmp = self.root / "tmp"
        self.root.parent.mkdir(parents=True, exist_ok=True)
        for folder in (self.root, self._tmp):
            folder.mkdir(mode=DIR_MODE, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes, *, durable: bool = True) -> str:
        """Store ``data``; return its sha256. Idempotent.

        ``durable=False`` skips the fsync so that a batch can call ``sync()``
        once before its database commit instead of once per file.
        """
        digest = hashlib.sha256(data).hexdigest()
        final = self.path_for(digest)
        if final.exists():
            return digest
        tmp = self._tmp / f"{digest}.{os.getpid()}.tmp"
        try:
            final.parent.parent.mkdir(mode=DIR_MODE, exist_ok=True)
            final.parent.mkdir(mode=DIR_MODE, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                if durable:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, final)
        except OSError as exc:
            if exc.errno not in _STORAGE_ERRNOS:
                raise
            # A half-written temporary would only take more of the space that is missing.
            with suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise StorageUnavailableError(
                exc.errno, f"cannot store {len(data)} bytes in {self.root}: {exc.strerror}",
                str(final),
            ) from exc
        return digest

    def sync(self) -> None:
        """Make every blob written so far durable: one sync for a whole batch."""
        os.sync()

    def get(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def delete(self, sha256: str) -> bool:
        """Remove a blob (the caller knows nothing names it any more); True if it was there."""
        try:
            self.path_for(sha256).unlink()
        except FileNotFoundError:
            return False
        return True

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()

    def sweep_temporaries(self, older_than: float = 3600.0) -> int:
        """Remove temporaries a crash left behind; the number removed.

        Only those untouched for ``older_than`` seconds: another process
        sharing the store may be writing a younger one right now.
        """
        removed = 0
        cutoff = time.time() - older_than
        for tmp in self._tmp.glob("*.tmp"):
            with suppress(OSError):  # gone meanwhile: renamed into place
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    removed += 1
        return removed

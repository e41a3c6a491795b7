"""Content-addressed files on disk: raw messages, attachments, FAX pages.

A blob is written to a temporary name, flushed to disk, and renamed into
place, so a crash leaves either the whole file or none (a stray temporary
file at worst, which ``sweep_temporaries`` removes). Blobs are never
altered: the same bytes always have the same name.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)

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
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp / f"{digest}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, final)
        return digest

    def sync(self) -> None:
        """Make every blob written so far durable: one sync for a whole batch."""
        os.sync()

    def get(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()

    def sweep_temporaries(self) -> int:
        removed = 0
        for tmp in self._tmp.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
            removed += 1
        return removed
